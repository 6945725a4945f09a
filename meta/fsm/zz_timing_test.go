package fsm

import (
	"testing"
	"time"

	"github.com/cockroachdb/pebble"

	"github.com/berth-registry/berth/meta"
)

func TestZZTiming(t *testing.T) {
	db := openDB(t, t.TempDir())
	defer db.Close()
	f, _ := New(db, nil)
	seed(t, f)
	idx := gcLoad(t, f, 10000, 10)
	opts := meta.GCOptions{Now: t0.Add(time.Hour)}
	for _, c := range []meta.Command{&meta.GCStart{ID: "gc-1", Time: t0}, &meta.GCBegin{ID: "gc-1", Leader: "x", Options: opts, Time: t0}, &meta.GCPause{ID: "gc-1", Leader: "x", Time: t0}} {
		idx++
		f.Apply(entry(t, idx, c))
	}
	r, _, rel, _ := f.SnapshotReader()
	plan, _ := meta.Mark(r, opts)
	rel()
	idx++
	e := entry(t, idx, &meta.GCSweep{ID: "gc-1", Leader: "x", DirtyThrough: idx, Blobs: plan.Blobs, Items: plan.Items, Time: t0})
	st := time.Now()
	meta.Decode(e.Data)
	t.Logf("decode %s (%d bytes)", time.Since(st), len(e.Data))
	b := db.NewIndexedBatch()
	st = time.Now()
	res := meta.Apply(batchTxn{b}, idx, e.Data)
	t.Logf("apply into batch %s %v", time.Since(st), res)
	st = time.Now()
	b.Commit(pebble.NoSync)
	t.Logf("commit %s, batch %d bytes", time.Since(st), b.Len())
}
