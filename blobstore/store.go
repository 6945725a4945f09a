package blobstore

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/opencontainers/go-digest"
	"github.com/prometheus/client_golang/prometheus"
)

// DefaultUploadTTL is the idle time after which ExpireUploads removes a session when
// Options.UploadTTL is zero. An hour outlives any sensible pause between a client's
// PATCHes, and an abandoned session holds disk only that long.
const DefaultUploadTTL = time.Hour

// Options configures a Store. The zero value is usable.
type Options struct {
	Clock      func() time.Time      // nil = time.Now; stamps session start and activity
	UploadTTL  time.Duration         // idle time after which a session expires; 0 = DefaultUploadTTL
	Logger     *slog.Logger          // nil = discard
	Registerer prometheus.Registerer // nil = no metrics are registered

	// Faults, when set, is called before each filesystem operation that
	// changes the store's files (see FaultOp), with the path it applies to. A
	// non-nil error is returned, unchanged, as that operation's error from the
	// OS (wrap it in an *fs.PathError to look like one), the operation is not
	// performed, and the store takes its usual error path: the Write, Commit
	// or Put fails and nothing half-done is left as a blob. It is for fault
	// injection (the chaos build); production leaves it nil, which costs a nil
	// check. It is called from several goroutines at once.
	Faults func(op FaultOp, path string) error
}

// Store is the content-addressed blob store and its upload sessions under one root
// directory. It is safe for concurrent use; nothing else may write under its root,
// and one root belongs to one Store at a time (a second Store on the same root, as
// after a restart, is fine once the first is no longer used).
type Store struct {
	blobsDir   string
	uploadsDir string
	now        func() time.Time
	ttl        time.Duration
	log        *slog.Logger
	faults     func(op FaultOp, path string) error // Options.Faults; nil: none
	m          *metrics
	bufs       sync.Pool // *[]byte of bufSize, for Write's pipeline

	mu       sync.Mutex // guards the fields below; never held across I/O
	sessions map[string]*sessionEntry
	closed   atomic.Bool    // written under mu (ordering it with inflight), read anywhere
	inflight sync.WaitGroup // operations that passed enter
}

// Open opens the store at root, creating root/blobs and root/uploads as needed, and
// removes what a crash may have left: one-shot Put sessions and half-written state
// files. Sessions themselves survive and are resumed with Store.Upload.
func Open(root string, opts Options) (*Store, error) {
	if root == "" {
		return nil, errors.New("blobstore: open: empty root")
	}
	s := &Store{
		blobsDir:   filepath.Join(root, "blobs"),
		uploadsDir: filepath.Join(root, "uploads"),
		now:        opts.Clock,
		ttl:        opts.UploadTTL,
		log:        opts.Logger,
		faults:     opts.Faults,
		sessions:   make(map[string]*sessionEntry),
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.ttl <= 0 {
		s.ttl = DefaultUploadTTL
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.bufs.New = func() any { b := make([]byte, bufSize); return &b }
	for _, dir := range []string{
		filepath.Join(s.blobsDir, string(digest.SHA256)),
		filepath.Join(s.blobsDir, string(digest.SHA512)),
		s.uploadsDir,
	} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("blobstore: open %s: %w", root, err)
		}
	}
	if err := s.makePrefixDirs(); err != nil {
		return nil, fmt.Errorf("blobstore: open %s: %w", root, err)
	}
	open, err := s.cleanUploads()
	if err != nil {
		return nil, fmt.Errorf("blobstore: open %s: %w", root, err)
	}
	if s.m, err = newMetrics(opts.Registerer); err != nil {
		return nil, fmt.Errorf("blobstore: open %s: %w", root, err)
	}
	s.m.uploadsOpen.Set(float64(open))
	return s, nil
}

// makePrefixDirs creates the 256 two-character directories of each algorithm once, and
// fsyncs their parents, so that Commit finds its directory in place and need not
// fsync a parent that another commit may have just created.
func (s *Store) makePrefixDirs() error {
	for alg := range hexLen {
		algDir := filepath.Join(s.blobsDir, string(alg))
		created := false
		for i := range 256 {
			err := os.Mkdir(filepath.Join(algDir, fmt.Sprintf("%02x", i)), 0o755)
			if err == nil {
				created = true
			} else if !errors.Is(err, fs.ErrExist) {
				return err
			}
		}
		if created {
			if err := s.syncDir(algDir); err != nil {
				return err
			}
		}
	}
	return nil
}

// cleanUploads removes crash leftovers under uploads/ and counts the sessions.
func (s *Store) cleanUploads() (int, error) {
	entries, err := os.ReadDir(s.uploadsDir)
	if err != nil {
		return 0, err
	}
	open := 0
	for _, e := range entries {
		name := e.Name()
		dir := filepath.Join(s.uploadsDir, name)
		if strings.HasPrefix(name, putPrefix) {
			s.log.Info("blobstore: removing interrupted put", "dir", dir)
			if err := os.RemoveAll(dir); err != nil {
				return 0, err
			}
			continue
		}
		if !e.IsDir() || checkID(name) != nil {
			continue // not ours; leave it alone
		}
		open++
		tmps, err := filepath.Glob(filepath.Join(dir, stateTempPattern))
		if err != nil {
			return 0, err
		}
		for _, t := range tmps {
			if err := os.Remove(t); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return 0, err
			}
		}
	}
	return open, nil
}

// Close marks the store closed: every later call returns ErrClosed. It waits for
// calls in progress. A Write stops at its next buffer boundary (1 MiB), but one that
// is blocked reading its reader keeps Close waiting until that read returns, so
// cancel in-flight requests first.
func (s *Store) Close() error {
	s.mu.Lock()
	s.closed.Store(true)
	s.mu.Unlock()
	s.inflight.Wait()
	return nil
}

// enter admits one operation unless the store is closed; pair with exit.
func (s *Store) enter() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed.Load() {
		return ErrClosed
	}
	s.inflight.Add(1)
	return nil
}

func (s *Store) exit() { s.inflight.Done() }

// isClosed reports whether Close has been called (for long loops to stop early).
func (s *Store) isClosed() bool { return s.closed.Load() }

// Path returns the file that holds d (root/blobs/<alg>/<first two hex>/<hex>), whether
// or not it exists. ErrDigestInvalid or ErrDigestUnsupported for a bad digest.
func (s *Store) Path(d digest.Digest) (string, error) {
	alg, hex, err := parseDigest(d)
	if err != nil {
		return "", fmt.Errorf("path %s: %w", d, err)
	}
	return s.blobPath(alg, hex), nil
}

// Stat returns the size of blob d. ErrBlobUnknown when it is not stored;
// ErrDigestInvalid (or ErrDigestUnsupported, which matches it) for a bad digest.
func (s *Store) Stat(d digest.Digest) (int64, error) {
	if err := s.enter(); err != nil {
		return 0, fmt.Errorf("stat %s: %w", d, err)
	}
	defer s.exit()
	alg, hex, err := parseDigest(d)
	if err != nil {
		return 0, fmt.Errorf("stat %s: %w", d, err)
	}
	fi, err := os.Stat(s.blobPath(alg, hex))
	if errors.Is(err, fs.ErrNotExist) {
		return 0, fmt.Errorf("stat %s: %w", d, ErrBlobUnknown)
	}
	if err != nil {
		return 0, fmt.Errorf("stat %s: %w", d, err)
	}
	return fi.Size(), nil
}

// Open opens blob d for reading; the caller closes the file. The file is complete and
// verified, and stays readable through the handle even if the blob is deleted.
// ErrBlobUnknown when it is not stored.
func (s *Store) Open(d digest.Digest) (*os.File, error) {
	if err := s.enter(); err != nil {
		return nil, fmt.Errorf("open %s: %w", d, err)
	}
	defer s.exit()
	alg, hex, err := parseDigest(d)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", d, err)
	}
	f, err := os.Open(s.blobPath(alg, hex))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("open %s: %w", d, ErrBlobUnknown)
	}
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", d, err)
	}
	return f, nil
}

// Delete removes blob d; nil if it is not stored. The removal is not fsynced: a blob
// that reappears after a power loss is garbage that the next GC finds again. Ordering
// a Delete against a Commit of the same digest is the caller's business (GC re-checks
// metadata per digest before it deletes).
func (s *Store) Delete(d digest.Digest) error {
	if err := s.enter(); err != nil {
		return fmt.Errorf("delete %s: %w", d, err)
	}
	defer s.exit()
	alg, hex, err := parseDigest(d)
	if err != nil {
		return fmt.Errorf("delete %s: %w", d, err)
	}
	if err := os.Remove(s.blobPath(alg, hex)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("delete %s: %w", d, err)
	}
	return nil
}
