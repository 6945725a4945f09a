package fsm

import (
	"bytes"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/cockroachdb/pebble"
	"github.com/hashicorp/raft"

	"github.com/berth-registry/berth/meta"
)

func openDB(t *testing.T, dir string) *pebble.DB {
	t.Helper()
	db, err := pebble.Open(dir, &pebble.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return db
}

// seed creates the workspaces the tests push into, as entries 1 to 3; the
// tests' own entries start at index 10.
func seed(t *testing.T, f *FSM) {
	t.Helper()
	for i, r := range f.ApplyBatch([]*raft.Log{
		entry(t, 1, &meta.PutProject{Name: "p", Create: true, Time: t0}),
		entry(t, 2, &meta.PutWorkspace{Name: "a", Project: "p", Visibility: meta.Private, Create: true, Time: t0}),
		entry(t, 3, &meta.PutWorkspace{Name: "b", Project: "p", Visibility: meta.Private, Create: true, Time: t0}),
	}) {
		if r != nil {
			t.Fatalf("seed %d: %v", i, r)
		}
	}
}

func entry(t *testing.T, index uint64, c meta.Command) *raft.Log {
	t.Helper()
	data, err := meta.Encode(c)
	if err != nil {
		t.Fatal(err)
	}
	return &raft.Log{Index: index, Term: 1, Type: raft.LogCommand, Data: data}
}

var (
	t0 = time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC)
	d1 = meta.DigestOf("sha256", []byte("one"))
	d2 = meta.DigestOf("sha256", []byte("two"))
)

func TestApplyPersistsAndSkipsReplay(t *testing.T) {
	dir := t.TempDir()
	db := openDB(t, dir)
	f, err := New(db, nil)
	if err != nil {
		t.Fatal(err)
	}
	seed(t, f)
	resps := f.ApplyBatch([]*raft.Log{
		entry(t, 11, &meta.PutBlob{Repo: "a/x", Digest: d1, Size: 3, Time: t0}),
		entry(t, 12, &meta.UnlinkBlob{Repo: "a/x", Digest: d2, Time: t0}), // refused: not linked
		{Index: 13, Term: 1, Type: raft.LogNoop},
	})
	if resps[0] != nil {
		t.Errorf("entry 1: got %v, want nil", resps[0])
	}
	if err, _ := resps[1].(error); !errors.Is(err, meta.ErrBlobUnknown) {
		t.Errorf("entry 2: got %v, want ErrBlobUnknown", resps[1])
	}
	if got, want := f.AppliedIndex(), uint64(13); got != want {
		t.Errorf("applied: got %v, want %v", got, want)
	}
	select {
	case <-f.WaitApplied(13):
	default:
		t.Error("WaitApplied(13) not closed at applied index 13")
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	// Reopen: the applied index is read back, and a replay of entry 1 after the
	// blob was unlinked must not bring the link back.
	db = openDB(t, dir)
	defer db.Close()
	f, err = New(db, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := f.AppliedIndex(), uint64(13); got != want {
		t.Fatalf("applied after reopen: got %v, want %v", got, want)
	}
	f.Apply(entry(t, 14, &meta.UnlinkBlob{Repo: "a/x", Digest: d1, Time: t0}))
	f.Apply(entry(t, 11, &meta.PutBlob{Repo: "a/x", Digest: d1, Size: 3, Time: t0}))
	if _, err := meta.GetLinkedBlob(f.Reader(), "a/x", d1); !errors.Is(err, meta.ErrBlobUnknown) {
		t.Errorf("replayed entry was applied again: got %v, want ErrBlobUnknown", err)
	}
}

type sink struct {
	bytes.Buffer
	canceled bool
}

func (s *sink) ID() string    { return "test" }
func (s *sink) Cancel() error { s.canceled = true; return nil }
func (s *sink) Close() error  { return nil }

func TestSnapshotRestore(t *testing.T) {
	src := openDB(t, t.TempDir())
	defer src.Close()
	f, _ := New(src, nil)
	seed(t, f)
	f.ApplyBatch([]*raft.Log{
		entry(t, 11, &meta.PutBlob{Repo: "a/x", Digest: d1, Size: 3, Time: t0}),
		entry(t, 12, &meta.PutBlob{Repo: "b/y", Digest: d2, Size: 3, Time: t0}),
	})
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	// A write after the snapshot must not be in it.
	f.Apply(entry(t, 13, &meta.UnlinkBlob{Repo: "a/x", Digest: d1, Time: t0}))
	var s sink
	if err := snap.Persist(&s); err != nil {
		t.Fatal(err)
	}
	snap.Release()

	dst := openDB(t, t.TempDir())
	defer dst.Close()
	g, _ := New(dst, nil)
	// State that the snapshot replaces.
	seed(t, g)
	g.Apply(entry(t, 11, &meta.PutBlob{Repo: "a/stale", Digest: d1, Size: 3, Time: t0}))
	if err := g.Restore(io.NopCloser(&s)); err != nil {
		t.Fatal(err)
	}
	if got, want := g.AppliedIndex(), uint64(12); got != want {
		t.Errorf("applied after restore: got %v, want %v", got, want)
	}
	repos, _, err := meta.ListRepositories(g.Reader(), "", 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(repos) != 2 || repos[0] != "a/x" || repos[1] != "b/y" { // a/stale is gone
		t.Errorf("repos after restore: got %v, want [a/x b/y]", repos)
	}
	if _, err := meta.GetLinkedBlob(g.Reader(), "a/x", d1); err != nil {
		t.Errorf("blob linked at snapshot time: %v", err)
	}
	// The restored state digests the same as a node that applied the same
	// entries itself, and differently once one more entry is applied.
	h := openDB(t, t.TempDir())
	defer h.Close()
	hf, _ := New(h, nil)
	seed(t, hf)
	hf.ApplyBatch([]*raft.Log{
		entry(t, 11, &meta.PutBlob{Repo: "a/x", Digest: d1, Size: 3, Time: t0}),
		entry(t, 12, &meta.PutBlob{Repo: "b/y", Digest: d2, Size: 3, Time: t0}),
	})
	ig, dg, err := g.StateDigest()
	ih, dh, err2 := hf.StateDigest()
	if err != nil || err2 != nil || ig != 12 || ih != 12 || dg != dh {
		t.Errorf("digests at 12: restored %x, replayed %x (%v %v)", dg[:4], dh[:4], err, err2)
	}
	hf.Apply(entry(t, 13, &meta.UnlinkBlob{Repo: "a/x", Digest: d1, Time: t0}))
	if _, d, _ := hf.StateDigest(); d == dg {
		t.Error("digest did not change with the state")
	}
}

func TestCorruptEntryPanics(t *testing.T) {
	db := openDB(t, t.TempDir())
	defer db.Close()
	f, _ := New(db, nil)
	defer func() {
		if recover() == nil {
			t.Error("a corrupt entry did not stop the FSM")
		}
	}()
	f.Apply(&raft.Log{Index: 1, Type: raft.LogCommand, Data: []byte{1, 99, 0}})
}
