package fsm

import (
	"errors"
	"testing"

	"github.com/berth-registry/berth/meta"
)

func TestSnapshotReaderIsStable(t *testing.T) {
	db := openDB(t, t.TempDir())
	defer db.Close()
	f, err := New(db, nil)
	if err != nil {
		t.Fatal(err)
	}
	seed(t, f)
	f.Apply(entry(t, 10, &meta.PutBlob{Repo: "a/x", Digest: d1, Size: 1, Time: t0}))
	r, index, release, err := f.SnapshotReader()
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	f.Apply(entry(t, 11, &meta.PutBlob{Repo: "a/x", Digest: d2, Size: 1, Time: t0}))
	if index != 10 {
		t.Errorf("snapshot index: got %d, want 10", index)
	}
	if _, err := meta.GetBlob(r, d1); err != nil {
		t.Errorf("snapshot: %v", err)
	}
	if _, err := meta.GetBlob(r, d2); !errors.Is(err, meta.ErrBlobUnknown) {
		t.Errorf("the snapshot sees a later apply: %v", err)
	}
	if _, err := meta.GetBlob(f.Reader(), d2); err != nil {
		t.Errorf("latest state: %v", err)
	}
}
