package blobstore

import (
	"context"
	"crypto/sha256"
	"crypto/sha512"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/opencontainers/go-digest"
)

// smallLimit is the size up to which a session that did not declare sha512 hashes it
// anyway. sha512 costs 2.5 to 3 times as much per byte as sha256 (BenchmarkSHA256,
// BenchmarkSHA512: 440 MB/s against 1.2 GB/s without SHA extensions), so hashing both
// for every upload would halve large-push throughput; for small blobs (configs, small
// layers) it is cheap, and it spares the re-read in Commit. See Upload.sum.
const smallLimit = 4 << 20

// Upload is one upload session: bytes appended by Write, hashed as they arrive, and
// turned into a blob by Commit. Handles for the same id returned by Store.Upload are
// the same *Upload. One Write, Commit or Cancel runs at a time; another one started
// meanwhile fails at once with ErrUploadBusy. ID, Size and StartedAt are safe to call
// at any time. After Commit, Cancel or expiry every operation returns
// ErrUploadUnknown.
type Upload struct {
	s         *Store
	id        string
	dir       string
	ephemeral bool // Put's session: no state file, not in the session map, not counted
	started   time.Time
	declared  []digest.Algorithm
	size      atomic.Int64 // bytes durably received; changes only under op

	op      sync.Mutex // held (TryLock) by the running Write, Commit or Cancel, and by expiry; guards the fields below
	h256    hash.Hash
	h512    hash.Hash     // nil once a session that did not declare sha512 passed smallLimit
	saved   *sessionState // the state at size(); Write rolls back to it on failure
	updated time.Time     // last activity, by the store's clock
	gone    bool          // removed from disk: committed, cancelled, expired or damaged
}

// sessionEntry is a slot in the store's session map. A slot is inserted before its
// session is created or loaded, so concurrent callers for one id wait for the one
// loader (a second load could truncate the data file under a running Write) while
// other ids never wait on it.
type sessionEntry struct {
	ready chan struct{} // closed once u or err is set
	u     *Upload       // set under Store.mu
	err   error         // set under Store.mu
}

// ID returns the session's id.
func (u *Upload) ID() string { return u.id }

// Size returns the bytes received so far: the sum of completed Writes. During a
// Write it still reports the size before that Write.
func (u *Upload) Size() int64 { return u.size.Load() }

// StartedAt returns when the session was created, by the store's clock.
func (u *Upload) StartedAt() time.Time { return u.started }

// Digest returns the sha256 digest of the bytes received so far, from the hash
// state kept while they streamed in: nothing is re-read. An importer that learns
// what a blob is only after storing it (a layer of an archive) commits it under
// this digest. ErrUploadBusy while another operation runs; ErrUploadUnknown once
// the session is gone.
func (u *Upload) Digest() (digest.Digest, error) {
	if err := u.begin(); err != nil {
		return "", fmt.Errorf("digest of upload %s: %w", u.id, err)
	}
	defer u.end()
	return digest.NewDigestFromBytes(digest.SHA256, u.h256.Sum(nil)), nil
}

// NewUpload creates the session id. algs are the digest algorithms the client
// declared up front, if any; sha256 is always computed, sha512 also when declared
// (see Commit for one that is not). ErrUploadInvalid for a malformed id or one that is
// taken; ErrDigestUnsupported for an algorithm other than sha256 and sha512.
func (s *Store) NewUpload(id string, algs ...digest.Algorithm) (*Upload, error) {
	if err := s.enter(); err != nil {
		return nil, fmt.Errorf("new upload %s: %w", id, err)
	}
	defer s.exit()
	if err := checkID(id); err != nil {
		return nil, fmt.Errorf("new upload: %w", err)
	}
	for _, alg := range algs {
		if err := checkAlgorithm(alg); err != nil {
			return nil, fmt.Errorf("new upload %s: %w", id, err)
		}
	}
	e := &sessionEntry{ready: make(chan struct{})}
	s.mu.Lock()
	if _, taken := s.sessions[id]; taken {
		s.mu.Unlock()
		return nil, fmt.Errorf("new upload %s: %w: id in use", id, ErrUploadInvalid)
	}
	s.sessions[id] = e
	s.mu.Unlock()
	u, err := s.create(id, false, algs)
	if err != nil {
		err = fmt.Errorf("new upload %s: %w", id, err)
	}
	s.settle(id, e, u, err)
	return u, err
}

// Upload returns the existing session id, also one created before a restart: its
// hash state is restored from the state file, and a data file that grew past it in a
// crash is truncated back. ErrUploadUnknown when there is no such session, or when its
// files were damaged (then they are removed); ErrUploadInvalid for a malformed id.
func (s *Store) Upload(id string) (*Upload, error) {
	if err := s.enter(); err != nil {
		return nil, fmt.Errorf("upload %s: %w", id, err)
	}
	defer s.exit()
	if err := checkID(id); err != nil {
		return nil, fmt.Errorf("upload: %w", err)
	}
	return s.session(id)
}

// session returns the session id from the map, loading it from disk the first time.
func (s *Store) session(id string) (*Upload, error) {
	s.mu.Lock()
	if e, ok := s.sessions[id]; ok {
		s.mu.Unlock()
		<-e.ready
		return e.u, e.err
	}
	e := &sessionEntry{ready: make(chan struct{})}
	s.sessions[id] = e
	s.mu.Unlock()
	u, err := s.load(id)
	if err != nil {
		err = fmt.Errorf("upload %s: %w", id, err)
	}
	s.settle(id, e, u, err)
	return u, err
}

// settle publishes the outcome of creating or loading e; a failed slot is removed.
func (s *Store) settle(id string, e *sessionEntry, u *Upload, err error) {
	s.mu.Lock()
	e.u, e.err = u, err
	if err != nil && s.sessions[id] == e {
		delete(s.sessions, id)
	}
	s.mu.Unlock()
	close(e.ready)
}

// forget drops u from the session map (it is gone, or must be reloaded from disk).
func (s *Store) forget(u *Upload) {
	if u.ephemeral {
		return
	}
	s.mu.Lock()
	if e, ok := s.sessions[u.id]; ok && e.u == u {
		delete(s.sessions, u.id)
	}
	s.mu.Unlock()
}

// create makes the session directory, an empty data file and, unless ephemeral, the
// first state file. The directory is not fsynced: a session lost to a power failure
// is answered ErrUploadUnknown and the client starts over.
func (s *Store) create(id string, ephemeral bool, algs []digest.Algorithm) (*Upload, error) {
	dir := filepath.Join(s.uploadsDir, id)
	if err := s.fault(FaultCreate, dir); err != nil {
		return nil, err
	}
	if err := os.Mkdir(dir, 0o755); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return nil, fmt.Errorf("%w: id in use", ErrUploadInvalid)
		}
		return nil, err
	}
	now := s.now()
	u := &Upload{
		s:         s,
		id:        id,
		dir:       dir,
		ephemeral: ephemeral,
		started:   now,
		updated:   now,
		h256:      sha256.New(),
		h512:      sha512.New(), // dropped past smallLimit unless declared
	}
	for _, alg := range algs {
		if !slices.Contains(u.declared, alg) {
			u.declared = append(u.declared, alg)
		}
	}
	err := func() error {
		data := filepath.Join(dir, dataName)
		if err := s.fault(FaultCreate, data); err != nil {
			return err
		}
		f, err := os.OpenFile(data, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		if err != nil {
			return err
		}
		if err := f.Close(); err != nil {
			return err
		}
		st, err := u.snapshot(0, now)
		if err != nil {
			return err
		}
		if !ephemeral {
			if err := s.writeState(dir, st); err != nil {
				return err
			}
		}
		u.saved = st
		return nil
	}()
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	if !ephemeral {
		s.m.uploadsOpen.Inc()
	}
	return u, nil
}

// load restores session id from its directory.
func (s *Store) load(id string) (*Upload, error) {
	dir := filepath.Join(s.uploadsDir, id)
	st, err := readState(dir)
	if errors.Is(err, fs.ErrNotExist) {
		// No directory, or one whose creation was interrupted (ExpireUploads removes
		// it once it is older than the TTL).
		return nil, ErrUploadUnknown
	}
	if errors.Is(err, errCorruptState) {
		return nil, s.damaged(dir, err)
	}
	if err != nil {
		return nil, err
	}
	u := &Upload{
		s:        s,
		id:       id,
		dir:      dir,
		started:  st.Started,
		updated:  st.Updated,
		declared: st.Declared,
		saved:    st,
	}
	if u.h256, err = unmarshalHash(sha256.New, st.SHA256); err != nil {
		return nil, s.damaged(dir, err)
	}
	if u.h512, err = unmarshalHash(sha512.New, st.SHA512); err != nil {
		return nil, s.damaged(dir, err)
	}
	if u.h512 == nil && u.declares(digest.SHA512) {
		return nil, s.damaged(dir, errors.New("declared sha512 state missing"))
	}
	data := filepath.Join(dir, dataName)
	fi, err := os.Stat(data)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, s.damaged(dir, err)
	}
	if err != nil {
		return nil, err
	}
	switch {
	case fi.Size() > st.Size:
		// A crash after bytes were written but before the state recorded them: they
		// were never acknowledged, so drop them and resume at the recorded size.
		s.log.Info("blobstore: truncating upload to its recorded size", "id", id, "data", fi.Size(), "state", st.Size)
		if err := os.Truncate(data, st.Size); err != nil {
			return nil, fmt.Errorf("truncate data: %w", err)
		}
	case fi.Size() < st.Size:
		// The state claims bytes the disk lost; the hash state cannot be rewound.
		return nil, s.damaged(dir, fmt.Errorf("data file has %d bytes, state %d", fi.Size(), st.Size))
	}
	u.size.Store(st.Size)
	return u, nil
}

// damaged removes a session directory that cannot be resumed and returns
// ErrUploadUnknown with the reason.
func (s *Store) damaged(dir string, reason error) error {
	s.log.Warn("blobstore: removing damaged upload", "dir", dir, "err", reason)
	if err := os.RemoveAll(dir); err != nil {
		s.log.Error("blobstore: remove damaged upload", "dir", dir, "err", err)
	} else {
		s.m.uploadsOpen.Dec()
	}
	return fmt.Errorf("%w: damaged: %v", ErrUploadUnknown, reason)
}

func (u *Upload) declares(alg digest.Algorithm) bool { return slices.Contains(u.declared, alg) }

// snapshot returns the state to persist at size; op must be held.
func (u *Upload) snapshot(size int64, now time.Time) (*sessionState, error) {
	s256, err := marshalHash(u.h256)
	if err != nil {
		return nil, err
	}
	s512, err := marshalHash(u.h512)
	if err != nil {
		return nil, err
	}
	return &sessionState{
		Version:  stateVersion,
		Size:     size,
		Started:  u.started,
		Updated:  now,
		Declared: u.declared,
		SHA256:   s256,
		SHA512:   s512,
	}, nil
}

// begin takes the session for one operation: ErrUploadBusy if another one runs,
// ErrClosed, or ErrUploadUnknown if the session is gone. On success the caller must
// call end.
func (u *Upload) begin() error {
	if !u.op.TryLock() {
		return ErrUploadBusy
	}
	if err := u.s.enter(); err != nil {
		u.op.Unlock()
		return err
	}
	if u.gone {
		u.end()
		return ErrUploadUnknown
	}
	return nil
}

func (u *Upload) end() {
	u.s.exit()
	u.op.Unlock()
}

// Write appends all of r to the session, hashing it on the way, and returns the
// number of bytes appended. r is read in 1 MiB buffers and never used after Write
// returns; memory stays bounded whatever its length. When Write returns nil the bytes
// are durable and recorded in the state file.
//
// A Write is all or nothing. When reading r fails, ctx is done (checked between
// buffers), or writing, syncing or recording fails, the bytes of this call are
// dropped: the data file is truncated back to the size the state file records, the
// hash state is restored, and (0, err) is returned. The session stays usable at
// Size(), so a client can ask for the upload's status and send the rest again.
// ErrUploadBusy if another operation runs on the session.
func (u *Upload) Write(ctx context.Context, r io.Reader) (int64, error) {
	if err := u.begin(); err != nil {
		return 0, fmt.Errorf("write upload %s: %w", u.id, err)
	}
	defer u.end()
	f, err := os.OpenFile(filepath.Join(u.dir, dataName), os.O_WRONLY, 0)
	if err != nil {
		return 0, fmt.Errorf("write upload %s: %w", u.id, err)
	}
	defer f.Close()

	start := u.size.Load()
	hashed := start
	n, readErr, err := u.s.stream(ctx, r, f, start, func(p []byte) {
		u.h256.Write(p)
		hashed += int64(len(p))
		if u.h512 != nil {
			if hashed > smallLimit && !u.declares(digest.SHA512) {
				u.h512 = nil // Commit re-reads the file if it is asked for sha512
			} else {
				u.h512.Write(p)
			}
		}
	})
	if err == nil {
		err = readErr
	}
	if err == nil && n > 0 {
		err = u.persist(f, start+n)
	}
	if err != nil {
		u.rollback(f)
		return 0, fmt.Errorf("write upload %s: %w", u.id, err)
	}
	u.s.m.writtenBytes.Add(float64(n))
	return n, nil
}

// persist records size as the session's durable size: the data is fsynced first, so
// the state file never claims bytes a power failure could lose (Commit trusts the
// streamed hash and does not re-read), then the state file is replaced. Put's
// session skips both: it is never resumed, and Commit fsyncs.
func (u *Upload) persist(f *os.File, size int64) error {
	now := u.s.now()
	st, err := u.snapshot(size, now)
	if err != nil {
		return err
	}
	if !u.ephemeral {
		err := u.s.fault(FaultSync, f.Name())
		if err == nil {
			err = f.Sync()
		}
		if err != nil {
			return fmt.Errorf("sync data: %w", err)
		}
		if err := u.s.writeState(u.dir, st); err != nil {
			return err
		}
	}
	u.saved = st
	u.updated = now
	u.size.Store(size)
	return nil
}

// rollback returns the session to u.saved (the state file) after a failed Write. If the data file
// cannot be truncated, the in-memory session is dropped: the next Store.Upload
// reloads it from the state file, truncating the data file then.
func (u *Upload) rollback(f *os.File) {
	h256, err256 := unmarshalHash(sha256.New, u.saved.SHA256)
	h512, err512 := unmarshalHash(sha512.New, u.saved.SHA512)
	if err := errors.Join(f.Truncate(u.saved.Size), err256, err512); err != nil {
		u.s.log.Error("blobstore: roll back upload; dropping it from memory", "id", u.id, "err", err)
		u.gone = true
		u.s.forget(u)
		return
	}
	u.h256, u.h512 = h256, h512
}

// Cancel removes the session and its files. ErrUploadUnknown if it is already gone;
// ErrUploadBusy while a Write or Commit runs on it.
func (u *Upload) Cancel() error {
	if err := u.begin(); err != nil {
		return fmt.Errorf("cancel upload %s: %w", u.id, err)
	}
	defer u.end()
	if err := u.remove(); err != nil {
		return fmt.Errorf("cancel upload %s: %w", u.id, err)
	}
	return nil
}

// remove deletes the session from disk and memory; op must be held. The session is
// gone even if deleting its files fails (ExpireUploads retries a directory without a
// state file).
func (u *Upload) remove() error {
	u.gone = true
	u.s.forget(u)
	if err := os.RemoveAll(u.dir); err != nil {
		return err
	}
	if !u.ephemeral {
		u.s.m.uploadsOpen.Dec()
	}
	return nil
}
