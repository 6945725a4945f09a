package fsm

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/berth-registry/berth/meta"
)

// gcLoad loads images into f (each with its own blobs, located on two
// nodes), deletes every tenth, and returns the next log index.
func gcLoad(t *testing.T, f *FSM, images, blobsPer int) uint64 {
	idx := uint64(10)
	var batch []*raft.Log
	flush := func() {
		for i, r := range f.ApplyBatch(batch) {
			if r != nil {
				t.Fatalf("entry %d: %v", batch[i].Index, r)
			}
		}
		batch = batch[:0]
	}
	add := func(c meta.Command) {
		idx++
		data, err := meta.Encode(c)
		if err != nil {
			t.Fatal(err)
		}
		batch = append(batch, &raft.Log{Index: idx, Term: 1, Type: raft.LogCommand, Data: data})
		if len(batch) == 1024 {
			flush()
		}
	}
	for i := range images {
		repo := fmt.Sprintf("a/img%03d", i%100)
		var blobs []meta.Digest
		for j := range blobsPer {
			d := meta.DigestOf("sha256", []byte(fmt.Sprintf("blob %d %d", i, j)))
			add(&meta.PutBlob{Repo: repo, Digest: d, Size: 1000, Nodes: []string{"n1", "n2"}, Time: t0})
			blobs = append(blobs, d)
		}
		content := []byte(fmt.Sprintf(`{"image":%d}`, i))
		add(&meta.PutManifest{Repo: repo, Digest: meta.DigestOf("sha256", content), Content: content,
			Tags: []string{fmt.Sprintf("t%d", i)}, Time: t0,
			Info: meta.ManifestInfo{MediaType: meta.MediaTypeOCIManifest, Size: int64(len(content)), Blobs: blobs}})
	}
	for i := 0; i < images; i += 10 {
		content := []byte(fmt.Sprintf(`{"image":%d}`, i))
		add(&meta.DeleteManifest{Repo: fmt.Sprintf("a/img%03d", i%100), Digest: meta.DigestOf("sha256", content), Time: t0})
	}
	flush()
	return idx
}

// gcSweep marks f on a snapshot and applies the sweep; it returns the mark's
// and the apply's durations.
func gcSweep(t *testing.T, f *FSM, idx uint64) (*meta.GCPlan, time.Duration, time.Duration) {
	opts := meta.GCOptions{Now: t0.Add(time.Hour)}
	apply := func(c meta.Command) {
		idx++
		if r := f.Apply(entry(t, idx, c)); r != nil {
			t.Fatal(r)
		}
	}
	apply(&meta.GCStart{ID: "gc-1", Time: t0})
	apply(&meta.GCBegin{ID: "gc-1", Leader: "x", Options: opts, Time: t0})
	r, markIndex, release, err := f.SnapshotReader()
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	plan, err := meta.Mark(r, opts)
	release()
	if err != nil {
		t.Fatal(err)
	}
	mark := time.Since(start)
	plan.ID, plan.Leader, plan.MarkIndex, plan.Time = "gc-1", "x", markIndex, t0
	apply(plan)
	apply(&meta.GCPause{ID: "gc-1", Leader: "x", Time: t0})
	idx++
	sweep := entry(t, idx, &meta.GCSweep{ID: "gc-1", Leader: "x", DirtyThrough: idx, Time: t0})
	start = time.Now()
	if r := f.Apply(sweep); r != nil {
		t.Fatal(r)
	}
	return plan, mark, time.Since(start)
}

// TestGCSweepOnPebble runs the sweep on Pebble (range tombstones for
// locations and trash payloads): what was swept is gone with every index
// entry, the rest is untouched, and two replicas end in the same state.
func TestGCSweepOnPebble(t *testing.T) {
	var digests [2][32]byte
	for i := range 2 {
		db := openDB(t, t.TempDir())
		f, err := New(db, nil)
		if err != nil {
			t.Fatal(err)
		}
		seed(t, f)
		idx := gcLoad(t, f, 300, 5)
		plan, mark, apply := gcSweep(t, f, idx)
		t.Logf("mark %s, sweep apply %s: %d blobs, %d trash items", mark, apply, len(plan.Blobs), len(plan.Items))
		if len(plan.Blobs) != 150 || len(plan.Items) != 30 {
			t.Fatalf("plan: %d blobs, %d items; want 150 and 30", len(plan.Blobs), len(plan.Items))
		}
		r := f.Reader()
		for _, b := range plan.Blobs {
			if _, err := meta.GetBlob(r, b.Digest); !errors.Is(err, meta.ErrBlobUnknown) {
				t.Fatalf("swept blob %s: %v", b.Digest, err)
			}
			if locs, _ := meta.BlobLocations(r, b.Digest); len(locs) != 0 {
				t.Fatalf("locations of a swept blob: %v", locs)
			}
			if repos, _ := meta.ReposWithBlob(r, b.Digest); len(repos) != 0 {
				t.Fatalf("repositories of a swept blob: %v", repos)
			}
		}
		if items, _ := meta.ListTrash(r, "a"); len(items) != 0 {
			t.Fatalf("trash after the sweep: %d items", len(items))
		}
		kept := meta.DigestOf("sha256", []byte("blob 1 0"))
		if locs, _ := meta.BlobLocations(r, kept); len(locs) != 2 {
			t.Fatalf("a kept blob lost its locations: %v", locs)
		}
		if _, err := meta.GetLinkedBlob(r, "a/img001", kept); err != nil {
			t.Fatalf("a kept link: %v", err)
		}
		_, sum, err := f.StateDigest()
		if err != nil {
			t.Fatal(err)
		}
		digests[i] = sum
		db.Close()
	}
	if digests[0] != digests[1] {
		t.Error("two replicas applying the same entries differ")
	}
}

// TestGCSweepOnPebbleScale marks and sweeps 100,000 blobs and 10,000
// manifests (a tenth deleted) on Pebble, without Raft: the figures of the
// metadata part of a run (a tenth of that under -race).
func TestGCSweepOnPebbleScale(t *testing.T) {
	if testing.Short() {
		t.Skip("loads 110,000 entries")
	}
	db := openDB(t, t.TempDir())
	defer db.Close()
	f, err := New(db, nil)
	if err != nil {
		t.Fatal(err)
	}
	seed(t, f)
	images := 10000 / gcScaleDivisor
	idx := gcLoad(t, f, images, 10)
	plan, mark, apply := gcSweep(t, f, idx)
	t.Logf("%d blobs, %d manifests: mark %s, sweep apply %s (%d blobs, %d trash items)", images*10, images, mark, apply, len(plan.Blobs), len(plan.Items))
	if len(plan.Blobs) != images || len(plan.Items) != images/10 {
		t.Errorf("plan: %d blobs, %d items; want %d and %d", len(plan.Blobs), len(plan.Items), images, images/10)
	}
}
