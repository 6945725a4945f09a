package blobstore

// FaultOp names a filesystem operation of the store at which Options.Faults is
// consulted.
type FaultOp uint8

// The operations Options.Faults sees, and the path it is given for each.
const (
	// FaultCreate: creating a session directory (its path), a session's data
	// file, or a temporary state file (the session directory's "state.tmp").
	FaultCreate FaultOp = iota + 1
	// FaultWrite: writing one chunk (at most 1 MiB) of upload data (the data
	// file), or a state file's bytes (the temporary file).
	FaultWrite
	// FaultSync: an fsync of a data file, a state file or a directory.
	FaultSync
	// FaultRename: renaming a state file into place, or a verified upload to its
	// blob path (the commit; the upload's data file).
	FaultRename
)

// String returns the operation's name: create, write, sync or rename.
func (op FaultOp) String() string {
	switch op {
	case FaultCreate:
		return "create"
	case FaultWrite:
		return "write"
	case FaultSync:
		return "sync"
	case FaultRename:
		return "rename"
	}
	return "unknown"
}

// fault asks Options.Faults whether op on path fails; nil without a hook.
func (s *Store) fault(op FaultOp, path string) error {
	if s.faults == nil {
		return nil
	}
	return s.faults(op, path)
}
