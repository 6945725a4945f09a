package node

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/cockroachdb/pebble"
	"github.com/opencontainers/go-digest"

	"github.com/berth-registry/berth/api"
	"github.com/berth-registry/berth/blobstore"
	"github.com/berth-registry/berth/cluster"
	"github.com/berth-registry/berth/meta"
	"github.com/berth-registry/berth/meta/fsm"
)

// Backup and restore.
//
// A backup directory holds:
//
//	backup.json            BackupManifest: format, time, source, applied index, snapshot digest, counts
//	meta.snapshot          the metadata at one applied index, in the FSM's snapshot format (the
//	                       format of Raft snapshots: uvarint-length-prefixed keys and values)
//	blobs/<alg>/<xx>/<hex> every blob the snapshot records, in the blob store's own layout
//
// WriteBackup (berth backup) downloads the snapshot from a running node, reads
// the blobs it records from a scratch copy of it, and downloads each blob the
// directory does not hold yet (incremental: blobs are content-addressed and
// immutable, so one present under its digest is the blob; each download is
// verified against its digest while it streams). meta.snapshot and
// backup.json are replaced only once every blob is present, so the directory
// always holds one complete backup. The cluster keeps serving throughout.
//
// RestoreBackup (berth restore) seeds the data directory of a new node,
// offline, before its first start: it restores the snapshot into a fresh
// Pebble, copies every blob in (verified again), rewrites the blob locations
// (they named the old cluster's nodes) to the new node, records a "restore"
// audit event, and writes the state as the node's first Raft snapshot
// (cluster.SeedSnapshot) at the snapshot's applied index with a configuration
// of the new node alone. `berth serve` on that directory then starts as the
// leader of a one-node cluster serving every image; other nodes join it as
// usual (they install that snapshot).

// BackupFormat is the version of the backup directory layout.
const BackupFormat = 1

// Files of a backup directory.
const (
	backupManifestFile = "backup.json"
	backupSnapshotFile = "meta.snapshot"
)

// BackupManifest describes a backup (backup.json).
type BackupManifest struct {
	Format         int         `json:"format"`
	Created        time.Time   `json:"created"`
	Source         string      `json:"source,omitempty"` // the server it was taken from
	AppliedIndex   uint64      `json:"applied_index"`
	SnapshotSHA256 string      `json:"snapshot_sha256"`
	SnapshotBytes  int64       `json:"snapshot_bytes"`
	Counts         meta.Counts `json:"counts"`
	// What this run did: blobs downloaded, and blobs the directory held already.
	BlobsCopied  int    `json:"blobs_copied"`
	BytesCopied  int64  `json:"bytes_copied"`
	BlobsSkipped int    `json:"blobs_skipped"`
	Duration     string `json:"duration"`
}

// BackupSource is where WriteBackup reads a cluster from.
type BackupSource interface {
	// Snapshot streams the metadata snapshot. The reader fails at its end if
	// the stream was not complete.
	Snapshot(ctx context.Context) (io.ReadCloser, error)
	// Blob streams one blob's bytes; ErrBackupBlobMissing if the cluster no
	// longer has it.
	Blob(ctx context.Context, d meta.Digest) (io.ReadCloser, error)
	// Name says where the backup comes from, for the manifest.
	Name() string
}

// ErrBackupBlobMissing: a blob the snapshot records is no longer in the
// cluster (deleted and collected after the snapshot was taken).
var ErrBackupBlobMissing = errors.New("node: backup: blob missing from the cluster")

// BackupOptions tune WriteBackup. Zero values take the defaults.
type BackupOptions struct {
	Logger   *slog.Logger
	Clock    func() time.Time
	Parallel int  // concurrent blob downloads, default 4
	Prune    bool // remove blobs of the directory that the new snapshot does not record
}

// WriteBackup writes a backup of src into dir (created if needed), reusing
// the blobs dir already holds. See the package comment above for the layout.
func WriteBackup(ctx context.Context, dir string, src BackupSource, opts BackupOptions) (*BackupManifest, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Clock == nil {
		opts.Clock = time.Now
	}
	if opts.Parallel <= 0 {
		opts.Parallel = 4
	}
	start := opts.Clock()
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("node: backup: %w", err)
	}
	// 1. The snapshot, into a partial file.
	partial := filepath.Join(dir, "."+backupSnapshotFile+".partial")
	defer os.Remove(partial)
	sum, size, err := downloadSnapshot(ctx, src, partial)
	if err != nil {
		return nil, err
	}
	// 2. What it records, read from a scratch copy.
	scratch, err := os.MkdirTemp(dir, ".scratch-")
	if err != nil {
		return nil, fmt.Errorf("node: backup: %w", err)
	}
	defer os.RemoveAll(scratch)
	st, err := openSnapshotState(partial, scratch, opts.Logger)
	if err != nil {
		return nil, err
	}
	index := st.fsm.AppliedIndex()
	counts, cerr := meta.Count(st.fsm.Reader())
	var blobs []meta.Blob
	berr := meta.ScanBlobs(st.fsm.Reader(), "", func(b *meta.Blob) error {
		blobs = append(blobs, *b)
		return nil
	})
	st.close()
	if err := errors.Join(cerr, berr); err != nil {
		return nil, fmt.Errorf("node: backup: read snapshot: %w", err)
	}
	// 3. The blobs.
	store, err := blobstore.Open(dir, blobstore.Options{Logger: opts.Logger.With("component", "blobstore")})
	if err != nil {
		return nil, fmt.Errorf("node: backup: %w", err)
	}
	defer store.Close()
	m := &BackupManifest{
		Format: BackupFormat, Source: src.Name(), AppliedIndex: index,
		SnapshotSHA256: sum, SnapshotBytes: size, Counts: counts,
	}
	if err := copyBlobs(ctx, store, src, blobs, opts, m); err != nil {
		return nil, err
	}
	// 4. Replace the previous backup's snapshot and manifest.
	if err := os.Rename(partial, filepath.Join(dir, backupSnapshotFile)); err != nil {
		return nil, fmt.Errorf("node: backup: %w", err)
	}
	m.Created, m.Duration = opts.Clock().UTC(), opts.Clock().Sub(start).Round(time.Millisecond).String()
	if err := writeFileAtomic(filepath.Join(dir, backupManifestFile), m); err != nil {
		return nil, err
	}
	if opts.Prune {
		if err := pruneBlobs(store, dir, blobs, opts.Logger); err != nil {
			return m, err
		}
	}
	opts.Logger.Info("backup written", "dir", dir, "applied_index", index, "blobs", len(blobs),
		"copied", m.BlobsCopied, "skipped", m.BlobsSkipped, "bytes_copied", m.BytesCopied)
	return m, nil
}

// downloadSnapshot writes src's snapshot to path, synced, and returns its
// SHA-256 and size.
func downloadSnapshot(ctx context.Context, src BackupSource, path string) (string, int64, error) {
	rc, err := src.Snapshot(ctx)
	if err != nil {
		return "", 0, fmt.Errorf("node: backup: snapshot: %w", err)
	}
	defer rc.Close()
	f, err := os.OpenFile(path, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o640)
	if err != nil {
		return "", 0, fmt.Errorf("node: backup: %w", err)
	}
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(f, h), rc)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", 0, fmt.Errorf("node: backup: snapshot: %w", err)
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}

// copyBlobs downloads every blob store lacks, opts.Parallel at a time.
func copyBlobs(ctx context.Context, store *blobstore.Store, src BackupSource, blobs []meta.Blob, opts BackupOptions, m *BackupManifest) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	work := make(chan meta.Blob)
	var mu sync.Mutex // guards m's counters and errs
	var errs []error
	var wg sync.WaitGroup
	for range opts.Parallel {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for b := range work {
				n, err := copyBlob(ctx, store, src, b)
				mu.Lock()
				switch {
				case err != nil:
					errs = append(errs, err)
					if !errors.Is(err, ErrBackupBlobMissing) {
						cancel() // a transport or disk failure: stop
					}
				case n < 0:
					m.BlobsSkipped++
				default:
					m.BlobsCopied++
					m.BytesCopied += n
				}
				mu.Unlock()
			}
		}()
	}
feed:
	for _, b := range blobs {
		select {
		case work <- b:
		case <-ctx.Done():
			break feed
		}
	}
	close(work)
	wg.Wait()
	if len(errs) > 0 {
		missing := 0
		for _, e := range errs {
			if errors.Is(e, ErrBackupBlobMissing) {
				missing++
			}
		}
		if missing > 0 {
			opts.Logger.Warn("backup: blobs recorded in the snapshot are gone from the cluster (deleted and collected meanwhile); run the backup again",
				"missing", missing)
		}
		return fmt.Errorf("node: backup incomplete, the previous backup in the directory is kept: %w", errors.Join(errs[:min(len(errs), 5)]...))
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("node: backup: %w", err)
	}
	return nil
}

// copyBlob downloads one blob into store unless it is there: -1 for a blob
// that was there, else the bytes copied.
func copyBlob(ctx context.Context, store *blobstore.Store, src BackupSource, b meta.Blob) (int64, error) {
	d := digest.Digest(b.Digest)
	if size, err := store.Stat(d); err == nil && size == b.Size {
		return -1, nil
	}
	rc, err := src.Blob(ctx, b.Digest)
	if err != nil {
		return 0, fmt.Errorf("blob %s: %w", b.Digest, err)
	}
	defer rc.Close()
	n, err := store.Put(ctx, rc, d) // verified against the digest as it streams
	if err != nil {
		return 0, fmt.Errorf("blob %s: %w", b.Digest, err)
	}
	if n != b.Size {
		return 0, fmt.Errorf("blob %s: %d bytes, the metadata says %d", b.Digest, n, b.Size)
	}
	return n, nil
}

// pruneBlobs removes the blobs of the directory that blobs does not list.
func pruneBlobs(store *blobstore.Store, dir string, blobs []meta.Blob, logger *slog.Logger) error {
	keep := make(map[string]bool, len(blobs))
	for _, b := range blobs {
		keep[b.Digest.Hex()] = true
	}
	root := filepath.Join(dir, "blobs")
	removed := 0
	err := filepath.WalkDir(root, func(path string, e os.DirEntry, err error) error {
		if err != nil || e.IsDir() || strings.HasPrefix(e.Name(), ".") || keep[e.Name()] {
			return err
		}
		removed++
		return os.Remove(path)
	})
	logger.Info("backup: pruned blobs the snapshot does not record", "removed", removed)
	return err
}

// snapshotState is a snapshot restored into a Pebble database.
type snapshotState struct {
	db  *pebble.DB
	fsm *fsm.FSM
}

func (s *snapshotState) close() error { return s.db.Close() }

// openSnapshotState restores the snapshot file into a new Pebble database in
// dbDir.
func openSnapshotState(snapshot, dbDir string, logger *slog.Logger) (*snapshotState, error) {
	f, err := os.Open(snapshot)
	if err != nil {
		return nil, fmt.Errorf("node: open snapshot: %w", err)
	}
	db, err := pebble.Open(dbDir, &pebble.Options{Logger: pebbleLogger{logger}})
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("node: open metadata store: %w", err)
	}
	m, err := fsm.New(db, logger)
	if err == nil {
		err = m.Restore(f) // closes f
	} else {
		f.Close()
	}
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("node: restore snapshot %s: %w", snapshot, err)
	}
	if m.AppliedIndex() == 0 {
		db.Close()
		return nil, fmt.Errorf("node: snapshot %s holds no applied index: not a Berth metadata snapshot", snapshot)
	}
	return &snapshotState{db: db, fsm: m}, nil
}

// RestoreOptions say which node a backup seeds.
type RestoreOptions struct {
	DataDir string // the new node's data directory: empty, or without metadata and Raft state
	NodeID  string // the new node's id: blob locations are rewritten to it
	// RaftAddr is the Raft address the node will advertise: its
	// --raft-advertise, else its --raft-listen; empty for a single node
	// without a Raft port (its node id then names it).
	RaftAddr string
	Actor    string // who restores, for the audit event (the OS user)
	Logger   *slog.Logger
	Clock    func() time.Time
}

// RestoreBackup seeds opts.DataDir from the backup in dir (see the package
// comment above) and returns the backup's manifest. On failure it removes the
// metadata and Raft state it wrote, so it can be run again.
func RestoreBackup(ctx context.Context, dir string, opts RestoreOptions) (m *BackupManifest, err error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Clock == nil {
		opts.Clock = time.Now
	}
	check := Defaults()
	check.NodeID, check.DataDir = opts.NodeID, opts.DataDir
	if err := check.Validate(); err != nil {
		return nil, fmt.Errorf("node: restore: %w", err)
	}
	m, err = ReadBackupManifest(dir)
	if err != nil {
		return nil, err
	}
	metaDir, raftDir := filepath.Join(opts.DataDir, "meta"), filepath.Join(opts.DataDir, "raft")
	for _, p := range []string{metaDir, raftDir} {
		if _, err := os.Stat(p); err == nil {
			return nil, fmt.Errorf("node: restore: %s exists: restore seeds a new node; use an empty data dir", p)
		}
	}
	if err := os.MkdirAll(opts.DataDir, 0o750); err != nil {
		return nil, fmt.Errorf("node: restore: %w", err)
	}
	defer func() {
		if err != nil {
			os.RemoveAll(metaDir)
			os.RemoveAll(raftDir)
		}
	}()
	snapPath := filepath.Join(dir, backupSnapshotFile)
	if sum, err := fileSHA256(snapPath); err != nil || sum != m.SnapshotSHA256 {
		return nil, fmt.Errorf("node: restore: %s does not match backup.json (sha256 %s, want %s, %v)", snapPath, sum, m.SnapshotSHA256, err)
	}
	st, err := openSnapshotState(snapPath, metaDir, opts.Logger)
	if err != nil {
		return nil, err
	}
	defer func() {
		if cerr := st.close(); err == nil && cerr != nil {
			err = fmt.Errorf("node: restore: close metadata store: %w", cerr)
		}
	}()
	if st.fsm.AppliedIndex() != m.AppliedIndex {
		return nil, fmt.Errorf("node: restore: snapshot at index %d, backup.json says %d", st.fsm.AppliedIndex(), m.AppliedIndex)
	}
	// Blobs: every one the metadata records, copied and verified.
	backupBlobs, err := blobstore.Open(dir, blobstore.Options{Logger: opts.Logger})
	if err != nil {
		return nil, fmt.Errorf("node: restore: backup blobs: %w", err)
	}
	defer backupBlobs.Close()
	nodeBlobs, err := blobstore.Open(opts.DataDir, blobstore.Options{Logger: opts.Logger})
	if err != nil {
		return nil, fmt.Errorf("node: restore: %w", err)
	}
	defer nodeBlobs.Close()
	copied := 0
	err = meta.ScanBlobs(st.fsm.Reader(), "", func(b *meta.Blob) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		d := digest.Digest(b.Digest)
		if size, err := nodeBlobs.Stat(d); err == nil && size == b.Size {
			return nil
		}
		f, err := backupBlobs.Open(d)
		if err != nil {
			return fmt.Errorf("blob %s is not in the backup: %w", b.Digest, err)
		}
		defer f.Close()
		if _, err := nodeBlobs.Put(ctx, f, d); err != nil {
			return fmt.Errorf("blob %s: %w", b.Digest, err)
		}
		copied++
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("node: restore: %w", err)
	}
	// Locations and the audit event, in one batch that keeps the applied index.
	b := st.db.NewIndexedBatch()
	defer b.Close()
	txn := pebbleTxn{b}
	moved, err := meta.RelocateBlobs(txn, opts.NodeID, func(meta.Digest) bool { return true })
	if err != nil {
		return nil, fmt.Errorf("node: restore: relocate blobs: %w", err)
	}
	now := opts.Clock().UTC()
	actor := opts.Actor
	if actor == "" {
		actor = "berth restore"
	}
	ev := meta.AuditEvent{
		ID: meta.AuditID(now, opts.NodeID, 0), Time: now, Node: opts.NodeID, User: actor,
		Action: "restore", Object: dir, Outcome: meta.AuditSuccess,
		Detail: fmt.Sprintf("backup of %s (%s) at index %d", m.Created.Format(time.RFC3339), m.Source, m.AppliedIndex),
	}
	data, err := meta.Encode(&meta.AppendAudit{Events: []meta.AuditEvent{ev}})
	if err != nil {
		return nil, err
	}
	if r := meta.Apply(txn, m.AppliedIndex, data); r != nil {
		return nil, fmt.Errorf("node: restore: audit event: %v", r)
	}
	if err := b.Commit(pebble.Sync); err != nil {
		return nil, fmt.Errorf("node: restore: %w", err)
	}
	// Raft starts from this state.
	if err := cluster.SeedSnapshot(opts.DataDir, opts.NodeID, opts.RaftAddr, st.fsm.AppliedIndex(), st.fsm, opts.Logger); err != nil {
		return nil, err
	}
	opts.Logger.Info("restored", "from", dir, "data_dir", opts.DataDir, "node", opts.NodeID,
		"applied_index", m.AppliedIndex, "blobs", moved, "blobs_copied", copied)
	return m, nil
}

// ReadBackupManifest reads dir/backup.json.
func ReadBackupManifest(dir string) (*BackupManifest, error) {
	b, err := os.ReadFile(filepath.Join(dir, backupManifestFile))
	if err != nil {
		return nil, fmt.Errorf("node: backup manifest: %w", err)
	}
	var m BackupManifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("node: backup manifest %s: %w", dir, err)
	}
	if m.Format != BackupFormat {
		return nil, fmt.Errorf("node: backup in %s has format %d; this berth reads format %d", dir, m.Format, BackupFormat)
	}
	return &m, nil
}

func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// writeFileAtomic writes v as indented JSON through a synced temporary file
// and a rename.
func writeFileAtomic(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+"-*")
	if err != nil {
		return fmt.Errorf("node: write %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.Write(append(b, '\n'))
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		return fmt.Errorf("node: write %s: %w", path, err)
	}
	return nil
}

// pebbleTxn is meta.Txn over an indexed Pebble batch, for the offline rewrite
// of a restore.
type pebbleTxn struct{ b *pebble.Batch }

func (t pebbleTxn) Get(key []byte) ([]byte, error) {
	v, closer, err := t.b.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, meta.ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	defer closer.Close()
	return append([]byte(nil), v...), nil
}
func (t pebbleTxn) Set(key, value []byte) error { return t.b.Set(key, value, nil) }
func (t pebbleTxn) Delete(key []byte) error     { return t.b.Delete(key, nil) }
func (t pebbleTxn) Scan(start, end []byte, fn func(k, v []byte) error) error {
	it, err := t.b.NewIter(&pebble.IterOptions{LowerBound: start, UpperBound: end})
	if err != nil {
		return err
	}
	for it.First(); it.Valid(); it.Next() {
		if err := fn(it.Key(), it.Value()); err != nil {
			it.Close()
			return err
		}
	}
	err = it.Error()
	if cerr := it.Close(); err == nil {
		err = cerr
	}
	return err
}

// The server side: the node serves its snapshot to GET /api/v1/backup/snapshot.

// backupServer adapts the node to api.Backup.
type backupServer struct{ n *Node }

var _ api.Backup = backupServer{}

// WriteSnapshot writes the FSM's snapshot at the current applied index. On a
// cluster it first catches up with the leader (ReadIndex), so the backup holds
// every write acknowledged before it started.
func (b backupServer) WriteSnapshot(ctx context.Context, w io.Writer) error {
	if b.n.gossip != nil {
		if err := b.n.ReadBarrier(ctx); err != nil {
			return fmt.Errorf("node: backup: catch up with the leader: %w", err)
		}
	}
	snap, err := b.n.fsm.Snapshot()
	if err != nil {
		return err
	}
	defer snap.Release()
	return snap.Persist(&writerSink{w: w})
}

// writerSink is a raft.SnapshotSink over a writer.
type writerSink struct {
	w         io.Writer
	cancelled bool
}

func (s *writerSink) Write(p []byte) (int, error) { return s.w.Write(p) }
func (s *writerSink) Close() error                { return nil }
func (s *writerSink) ID() string                  { return "backup" }
func (s *writerSink) Cancel() error               { s.cancelled = true; return nil }

// HTTPBackupSource reads a backup from a node's management API with a cloud
// admin's credentials (berth backup).
type HTTPBackupSource struct {
	Server string       // base URL, such as https://registry.example.com
	Client *http.Client // without an overall timeout: blobs can be large
	// Authorize sets the request's credentials; Refresh gets new ones after a
	// 401 (an expired token), once per request.
	Authorize func(*http.Request)
	Refresh   func() error
}

var _ BackupSource = (*HTTPBackupSource)(nil)

// Name implements BackupSource.
func (s *HTTPBackupSource) Name() string { return s.Server }

func (s *HTTPBackupSource) get(ctx context.Context, path string) (*http.Response, error) {
	for attempt := 0; ; attempt++ {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.Server+path, nil)
		if err != nil {
			return nil, err
		}
		if s.Authorize != nil {
			s.Authorize(req)
		}
		resp, err := s.Client.Do(req)
		if err != nil {
			return nil, err
		}
		if resp.StatusCode == http.StatusUnauthorized && attempt == 0 && s.Refresh != nil {
			resp.Body.Close()
			if err := s.Refresh(); err != nil {
				return nil, err
			}
			continue
		}
		return resp, nil
	}
}

func httpError(resp *http.Response) error {
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	var e struct {
		Errors []struct{ Code, Message string }
	}
	if json.Unmarshal(msg, &e) == nil && len(e.Errors) > 0 {
		return fmt.Errorf("server answered %d: %s (%s)", resp.StatusCode, e.Errors[0].Message, e.Errors[0].Code)
	}
	return fmt.Errorf("server answered %d: %s", resp.StatusCode, strings.TrimSpace(string(msg)))
}

// Snapshot implements BackupSource.
func (s *HTTPBackupSource) Snapshot(ctx context.Context) (io.ReadCloser, error) {
	resp, err := s.get(ctx, "/api/v1/backup/snapshot")
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		return nil, httpError(resp)
	}
	return &trailerCheck{resp: resp, h: sha256.New()}, nil
}

// trailerCheck reads a snapshot body and, at its end, compares its SHA-256
// with the trailer the server sent after it.
type trailerCheck struct {
	resp *http.Response
	h    hash.Hash
}

func (t *trailerCheck) Read(p []byte) (int, error) {
	n, err := t.resp.Body.Read(p)
	t.h.Write(p[:n])
	if errors.Is(err, io.EOF) {
		want := t.resp.Trailer.Get(api.SnapshotDigestTrailer)
		if got := hex.EncodeToString(t.h.Sum(nil)); got != want {
			return n, fmt.Errorf("snapshot stream incomplete or corrupt: sha256 %s, the server's trailer says %q", got, want)
		}
	}
	return n, err
}

func (t *trailerCheck) Close() error { return t.resp.Body.Close() }

// Blob implements BackupSource.
func (s *HTTPBackupSource) Blob(ctx context.Context, d meta.Digest) (io.ReadCloser, error) {
	resp, err := s.get(ctx, "/api/v1/backup/blobs/"+url.PathEscape(string(d)))
	if err != nil {
		return nil, err
	}
	switch resp.StatusCode {
	case http.StatusOK:
		return resp.Body, nil
	case http.StatusNotFound:
		resp.Body.Close()
		return nil, ErrBackupBlobMissing
	}
	defer resp.Body.Close()
	return nil, httpError(resp)
}
