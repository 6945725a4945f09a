package meta

import (
	"errors"
	"fmt"
	"reflect"
	"time"
)

var timeType = reflect.TypeFor[time.Time]()

// restamp sets the Time field of a command (a pointer to a struct) to at.
func restamp(c any, at time.Time) {
	v := reflect.ValueOf(c)
	if v.Kind() != reflect.Pointer || v.IsNil() || v.Elem().Kind() != reflect.Struct {
		return
	}
	if f := v.Elem().FieldByName("Time"); f.IsValid() && f.CanSet() && f.Type() == timeType {
		f.Set(reflect.ValueOf(at))
	}
}

// Apply decodes one log entry and applies it to txn. It is deterministic: it reads
// no clock, no randomness, no network and no blob file, so every node that applies
// the same entries holds the same state.
//
// The returned value is nil on success or a domain error (ErrBlobUnknown, ...)
// that the proposer hands to its client; a domain error leaves txn unchanged,
// because every apply function checks everything before it writes anything.
// An entry that cannot be decoded, or a storage error, is returned as a non-domain
// error; the FSM treats those as fatal.
func Apply(txn Txn, index uint64, data []byte) any {
	return ApplyAt(txn, index, data, time.Time{})
}

// ApplyAt is Apply for an entry the leader appended at `appended` (Raft's
// Log.AppendedAt, which the log keeps): a command's Time becomes that
// instant, to the millisecond. Every stamp in the state then comes from one
// clock, the leader's, which is also the clock garbage collection compares
// them with; the clock of the node that proposed (which may be skewed by
// minutes) no longer decides how old a blob or a deleted item is. The chaos
// harness found this: a follower running 14 minutes fast stamped its uploads
// 14 minutes into the future, and garbage collection kept them as fresh
// until then. A zero `appended` (an entry from before AppendedAt, or a test)
// keeps the proposer's Time.
func ApplyAt(txn Txn, index uint64, data []byte, appended time.Time) any {
	c, err := Decode(data)
	if err != nil {
		return fmt.Errorf("apply entry %d: %w", index, err)
	}
	if !appended.IsZero() {
		restamp(c, appended.UTC().Truncate(time.Millisecond))
	}
	switch c := c.(type) {
	case nil:
		return nil // an ignorable command from a newer version
	case *PutBlob:
		return errOrNil(applyPutBlob(txn, index, c))
	case *PutManifest:
		return errOrNil(applyPutManifest(txn, index, c))
	case *DeleteManifest:
		return errOrNil(applyDeleteManifest(txn, index, c))
	case *DeleteTag:
		return errOrNil(applyDeleteTag(txn, index, c))
	case *UnlinkBlob:
		return errOrNil(applyUnlinkBlob(txn, index, c))
	case *PutUser:
		return errOrNil(applyPutUser(txn, c))
	case *DeleteUser:
		return errOrNil(applyDeleteUser(txn, c))
	case *PutProject:
		return errOrNil(applyPutProject(txn, c))
	case *DeleteProject:
		return errOrNil(applyDeleteProject(txn, c))
	case *SetMember:
		return errOrNil(applySetMember(txn, c))
	case *PutWorkspace:
		return errOrNil(applyPutWorkspace(txn, c))
	case *DeleteWorkspace:
		return errOrNil(applyDeleteWorkspace(txn, index, c))
	case *PutRobot:
		return errOrNil(applyPutRobot(txn, c))
	case *DeleteRobot:
		return errOrNil(applyDeleteRobot(txn, c))
	case *PutSigningKey:
		return errOrNil(applyPutSigningKey(txn, c))
	case *SetRepoDescription:
		return errOrNil(applySetRepoDescription(txn, c))
	case *SetBlobLocation:
		return errOrNil(applySetBlobLocation(txn, c))
	case *AppendAudit:
		return errOrNil(applyAppendAudit(txn, c))
	case *DeleteRepository:
		return errOrNil(applyDeleteRepository(txn, index, c))
	case *Restore:
		return errOrNil(applyRestore(txn, index, c))
	case *GCStart:
		return errOrNil(applyGCStart(txn, c))
	case *GCBegin:
		return errOrNil(applyGCBegin(txn, c))
	case *GCPause:
		return errOrNil(applyGCPause(txn, c))
	case *GCSweep:
		return errOrNil(applyGCSweep(txn, c))
	case *GCFinish:
		return errOrNil(applyGCFinish(txn, c))
	case *GCAbort:
		return errOrNil(applyGCAbort(txn, c))
	case *GCStats:
		return errOrNil(applyGCStats(txn, c))
	case *GCNodeDone:
		return errOrNil(applyGCNodeDone(txn, c))
	case *Noop:
		return nil
	case *GCPlan:
		return errOrNil(applyGCPlan(txn, c))
	default:
		return fmt.Errorf("apply entry %d: %w: no apply for type %d", index, ErrCommandCorrupt, c.Type())
	}
}

// errOrNil keeps a nil error from becoming a non-nil interface value.
func errOrNil(err error) any {
	if err == nil {
		return nil
	}
	return err
}

// IsDomainError reports whether err (a value returned by Apply) is a refusal that
// left the state unchanged, as opposed to a corrupt entry or storage failure.
func IsDomainError(err error) bool { return ErrorCode(err) != "" }

func has(r Reader, key []byte) (bool, error) {
	_, err := r.Get(key)
	if errors.Is(err, ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}

func ensureRepo(txn Txn, repo string, c interface{ created() Repository }) error {
	ok, err := has(txn, repoKey(repo))
	if err != nil || ok {
		return err
	}
	return txn.Set(repoKey(repo), encodeJSON(c.created()))
}

func (c *PutBlob) created() Repository     { return Repository{Created: c.Time} }
func (c *PutManifest) created() Repository { return Repository{Created: c.Time} }

// checkWorkspace refuses content for a repository whose workspace does not
// exist: workspaces are created, never implied by a push.
func checkWorkspace(r Reader, repo string) error {
	_, err := GetWorkspace(r, WorkspaceOf(repo))
	return err
}

// applyPutBlob records a blob and links it into the repository. Every push or
// mount renews the blob's Pushed time, which garbage collection's grace period
// counts from, and while a run is active marks the blob dirty.
func applyPutBlob(txn Txn, index uint64, c *PutBlob) error {
	if err := checkWorkspace(txn, c.Repo); err != nil {
		return err
	}
	if err := ensureRepo(txn, c.Repo, c); err != nil {
		return err
	}
	b, err := GetBlob(txn, c.Digest)
	switch {
	case errors.Is(err, ErrBlobUnknown):
		b = &Blob{Size: c.Size, Created: c.Time}
	case err != nil:
		return err
	}
	b.Pushed = c.Time
	if err := txn.Set(blobKey(c.Digest), encodeJSON(b)); err != nil {
		return err
	}
	for _, node := range c.Nodes {
		if err := txn.Set(blobNodeKey(c.Digest, node), nil); err != nil {
			return err
		}
	}
	if err := noteDirty(txn, index, &DirtyEntry{Blobs: []Digest{c.Digest}}); err != nil {
		return err
	}
	ok, err := has(txn, linkKey(c.Repo, c.Digest))
	if err != nil || ok {
		return err
	}
	if err := txn.Set(linkKey(c.Repo, c.Digest), encodeJSON(linkRecord{Created: c.Time})); err != nil {
		return err
	}
	return txn.Set(blobRepoKey(c.Digest, c.Repo), nil)
}

func applyPutManifest(txn Txn, index uint64, c *PutManifest) error {
	if err := checkWorkspace(txn, c.Repo); err != nil {
		return err
	}
	for _, d := range c.Info.Blobs {
		linked, err := has(txn, linkKey(c.Repo, d))
		if err != nil {
			return err
		}
		if !linked {
			// A manifest may name another manifest of the repository as a blob
			// (artifacts do); its bytes are then the manifest's.
			if linked, err = has(txn, manifestKey(c.Repo, d)); err != nil {
				return err
			}
		}
		if !linked {
			return fmt.Errorf("%w: %s", ErrManifestBlobUnknown, d)
		}
	}
	for _, d := range c.Info.Manifests {
		ok, err := has(txn, manifestKey(c.Repo, d))
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("%w: manifest %s", ErrManifestBlobUnknown, d)
		}
	}
	// Checks are done; from here on only writes.
	if err := ensureRepo(txn, c.Repo, c); err != nil {
		return err
	}
	info := c.Info
	info.Created, info.Pushed = c.Time, c.Time
	if old, _, err := getManifest(txn, c.Repo, c.Digest); err == nil {
		info.Created = old.Created // a re-push keeps the first push time
	} else if !errors.Is(err, ErrManifestUnknown) {
		return err
	}
	if err := txn.Set(manifestKey(c.Repo, c.Digest), encodeManifest(&info, c.Content)); err != nil {
		return err
	}
	for _, tag := range c.Tags {
		if err := setTag(txn, c.Repo, tag, c.Digest, c); err != nil {
			return err
		}
	}
	if info.Subject != "" {
		desc := Referrer{
			MediaType:    info.MediaType,
			Digest:       c.Digest,
			Size:         info.Size,
			ArtifactType: info.ArtifactType,
			Annotations:  info.Annotations,
		}
		if err := txn.Set(referrerKey(c.Repo, info.Subject, c.Digest), encodeJSON(desc)); err != nil {
			return err
		}
	}
	return noteDirty(txn, index, &DirtyEntry{Manifests: []ManifestRef{{Repo: c.Repo, Digest: c.Digest}}})
}

func setTag(txn Txn, repo, tag string, d Digest, c *PutManifest) error {
	if v, err := txn.Get(tagKey(repo, tag)); err == nil {
		old, err := decodeTag(tag, v)
		if err != nil {
			return err
		}
		if old.Digest == d {
			return nil
		}
		if err := txn.Delete(tagIndexKey(repo, old.Digest, tag)); err != nil {
			return err
		}
	} else if !errors.Is(err, ErrNotFound) {
		return err
	}
	if err := txn.Set(tagKey(repo, tag), encodeJSON(Tag{Digest: d, Updated: c.Time, PushedBy: c.By})); err != nil {
		return err
	}
	return txn.Set(tagIndexKey(repo, d, tag), nil)
}

func applySetBlobLocation(txn Txn, c *SetBlobLocation) error {
	if c.Node == "" {
		return fmt.Errorf("%w: blob location without a node", ErrInvalid)
	}
	if c.Remove {
		return txn.Delete(blobNodeKey(c.Digest, c.Node))
	}
	if ok, err := has(txn, blobKey(c.Digest)); err != nil || !ok {
		if err == nil {
			err = fmt.Errorf("%w: %s", ErrBlobUnknown, c.Digest)
		}
		return err
	}
	return txn.Set(blobNodeKey(c.Digest, c.Node), nil)
}
