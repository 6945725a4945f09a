package blobstore

import (
	"encoding"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"os"
	"path/filepath"
	"time"

	"github.com/opencontainers/go-digest"
)

// Files of a session directory.
const (
	dataName         = "data"
	stateName        = "state"
	stateTempPattern = "state.tmp-*"
	stateVersion     = 1
)

// errCorruptState marks a state file that exists but cannot be used.
var errCorruptState = errors.New("blobstore: corrupt upload state")

// sessionState is the state file: everything needed to resume a session after a
// restart without reading its data file.
type sessionState struct {
	Version  int                `json:"v"`
	Size     int64              `json:"size"`
	Started  time.Time          `json:"started"`
	Updated  time.Time          `json:"updated"` // last activity, by the store's clock
	Declared []digest.Algorithm `json:"declared,omitempty"`
	SHA256   []byte             `json:"sha256"`           // marshaled crypto/sha256 state at Size
	SHA512   []byte             `json:"sha512,omitempty"` // marshaled crypto/sha512 state at Size; absent once an undeclared session passed smallLimit
}

// readState loads dir's state file.
func readState(dir string) (*sessionState, error) {
	b, err := os.ReadFile(filepath.Join(dir, stateName))
	if err != nil {
		return nil, err
	}
	var st sessionState
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("%w: %v", errCorruptState, err)
	}
	if st.Version != stateVersion {
		return nil, fmt.Errorf("%w: version %d, want %d", errCorruptState, st.Version, stateVersion)
	}
	if st.Size < 0 || len(st.SHA256) == 0 {
		return nil, fmt.Errorf("%w: size %d, sha256 state %d bytes", errCorruptState, st.Size, len(st.SHA256))
	}
	return &st, nil
}

// writeState replaces dir's state file atomically: a temporary file is written and
// fsynced, then renamed over the old one. The directory is not fsynced: if the rename
// is lost in a power failure the previous state comes back, which is consistent (its
// size is at most the data file's, and Upload truncates the rest).
func (s *Store) writeState(dir string, st *sessionState) error {
	b, err := json.Marshal(st)
	if err != nil {
		return fmt.Errorf("encode state: %w", err)
	}
	if err := s.fault(FaultCreate, filepath.Join(dir, "state.tmp")); err != nil {
		return fmt.Errorf("write state: %w", err)
	}
	f, err := os.CreateTemp(dir, stateTempPattern)
	if err != nil {
		return err
	}
	tmp := f.Name()
	if err = s.fault(FaultWrite, tmp); err == nil {
		_, err = f.Write(b)
	}
	if err == nil {
		if err = s.fault(FaultSync, tmp); err == nil {
			err = f.Sync()
		}
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = s.rename(tmp, filepath.Join(dir, stateName))
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write state: %w", err)
	}
	return nil
}

// marshalHash returns h's internal state; nil for a nil h.
func marshalHash(h hash.Hash) ([]byte, error) {
	if h == nil {
		return nil, nil
	}
	m, ok := h.(encoding.BinaryMarshaler)
	if !ok {
		return nil, fmt.Errorf("hash %T cannot be marshaled", h)
	}
	return m.MarshalBinary()
}

// unmarshalHash returns a new hash from newHash with state b; nil for an empty b.
func unmarshalHash(newHash func() hash.Hash, b []byte) (hash.Hash, error) {
	if len(b) == 0 {
		return nil, nil
	}
	h := newHash()
	u, ok := h.(encoding.BinaryUnmarshaler)
	if !ok {
		return nil, fmt.Errorf("hash %T cannot be unmarshaled", h)
	}
	if err := u.UnmarshalBinary(b); err != nil {
		return nil, fmt.Errorf("%w: restore hash: %v", errCorruptState, err)
	}
	return h, nil
}
