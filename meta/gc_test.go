package meta

import (
	"errors"
	"fmt"
	"reflect"
	"sort"
	"testing"
	"time"
)

// gcRun runs a whole GC on txn as the coordinator would, without the pause's
// network part: start, begin, mark, pause, re-mark, sweep.
func gcRun(t *testing.T, txn *memTxn, seq *uint64, opts GCOptions) *GCRun {
	t.Helper()
	id := fmt.Sprintf("gc-%d", *seq)
	applyOK(t, txn, seq, &GCStart{ID: id, By: "admin", Workspace: opts.Workspace, Time: opts.Now})
	applyOK(t, txn, seq, &GCBegin{ID: id, Leader: "n1", Options: opts, Time: opts.Now})
	markIndex := *seq
	plan, err := Mark(txn.clone(), opts)
	if err != nil {
		t.Fatal(err)
	}
	stage(t, txn, seq, id, plan, markIndex)
	applyOK(t, txn, seq, &GCPause{ID: id, Leader: "n1", Time: opts.Now})
	dirty, last, err := ReadDirty(txn, markIndex)
	if err != nil {
		t.Fatal(err)
	}
	ex := Remark(txn, plan, dirty, nil)
	applyOK(t, txn, seq, &GCSweep{ID: id, Leader: "n1", DirtyThrough: last, Exclude: ex, Candidates: plan.Counts, Time: opts.Now})
	run, err := GetGCRun(txn, id)
	if err != nil {
		t.Fatal(err)
	}
	return run
}

// stage commits plan as the leader does before it pauses.
func stage(t *testing.T, txn *memTxn, seq *uint64, id string, plan *GCPlan, markIndex uint64) {
	t.Helper()
	plan.ID, plan.Leader, plan.MarkIndex = id, "n1", markIndex
	applyOK(t, txn, seq, plan)
}

func blobNames(t *testing.T, r Reader, names ...string) []string {
	t.Helper()
	var out []string
	for _, n := range names {
		if _, err := GetBlob(r, dg(n)); err == nil {
			out = append(out, n)
		}
	}
	return out
}

// index stores an image index of children in repo, tagged with tags.
func index(t *testing.T, txn Txn, seq *uint64, repo string, tags []string, children ...Digest) Digest {
	t.Helper()
	content := []byte(fmt.Sprintf(`{"manifests":%q}`, children))
	d := DigestOf("sha256", content)
	applyOK(t, txn, seq, &PutManifest{Repo: repo, Digest: d, Content: content, Tags: tags, Time: t0,
		Info: ManifestInfo{MediaType: "application/vnd.oci.image.index.v1+json", Size: int64(len(content)), Manifests: children}})
	return d
}

func TestGCReachability(t *testing.T) {
	now := t0.Add(48 * time.Hour)
	all := []string{"base", "app1", "app2", "child1", "child2", "sbom-blob", "orphan", "young", "stray"}
	for _, tc := range []struct {
		name      string
		opts      GCOptions
		setup     func(t *testing.T, txn *memTxn, seq *uint64)
		wantBlobs []string
		wantGone  []string // manifests (by label) that must be gone
	}{{
		name: "untagged stays without delete_untagged",
		opts: GCOptions{},
		setup: func(t *testing.T, txn *memTxn, seq *uint64) {
			applyOK(t, txn, seq, &DeleteTag{Repo: "a/app", Tag: "v2", Time: t0})
		},
		wantBlobs: []string{"base", "app1", "app2", "child1", "child2", "sbom-blob", "young"},
	}, {
		name: "delete_untagged reclaims an untagged image, keeps shared layers",
		opts: GCOptions{DeleteUntagged: true},
		setup: func(t *testing.T, txn *memTxn, seq *uint64) {
			applyOK(t, txn, seq, &DeleteTag{Repo: "a/app", Tag: "v2", Time: t0})
		},
		wantBlobs: []string{"base", "app1", "child1", "child2", "sbom-blob", "young"},
		wantGone:  []string{"app2"},
	}, {
		name: "an untagged child of a tagged index stays",
		opts: GCOptions{DeleteUntagged: true},
		setup: func(t *testing.T, txn *memTxn, seq *uint64) {
			// the children are untagged from the start; only the index is tagged
		},
		wantBlobs: []string{"base", "app1", "app2", "child1", "child2", "sbom-blob", "young"},
	}, {
		name: "untagging the index frees its children",
		opts: GCOptions{DeleteUntagged: true},
		setup: func(t *testing.T, txn *memTxn, seq *uint64) {
			applyOK(t, txn, seq, &DeleteTag{Repo: "a/multi", Tag: "latest", Time: t0})
		},
		wantBlobs: []string{"base", "app1", "app2", "sbom-blob", "young"},
		wantGone:  []string{"index", "child1", "child2"},
	}, {
		name: "a referrer of a live subject stays; the subject keeps it",
		opts: GCOptions{DeleteUntagged: true},
		setup: func(t *testing.T, txn *memTxn, seq *uint64) {
		},
		wantBlobs: []string{"base", "app1", "app2", "child1", "child2", "sbom-blob", "young"},
	}, {
		name: "a referrer goes with its reclaimed subject",
		opts: GCOptions{DeleteUntagged: true},
		setup: func(t *testing.T, txn *memTxn, seq *uint64) {
			applyOK(t, txn, seq, &DeleteTag{Repo: "a/app", Tag: "v1", Time: t0})
		},
		wantBlobs: []string{"base", "app2", "child1", "child2", "young"},
		wantGone:  []string{"app1", "sbom"},
	}, {
		name: "a tagged referrer keeps its untagged subject",
		opts: GCOptions{DeleteUntagged: true},
		setup: func(t *testing.T, txn *memTxn, seq *uint64) {
			applyOK(t, txn, seq, &DeleteTag{Repo: "a/app", Tag: "v1", Time: t0})
			sbom := manifestOf(t, txn, "sbom")
			applyOK(t, txn, seq, &PutManifest{Repo: "a/app", Digest: sbom, Content: mustContent(t, txn, "a/app", sbom),
				Tags: []string{"sbom"}, Time: t0, Info: mustInfo(t, txn, "a/app", sbom)})
		},
		wantBlobs: []string{"base", "app1", "app2", "child1", "child2", "sbom-blob", "young"},
	}, {
		name: "a deleted manifest within retention keeps its blobs and stays restorable",
		opts: GCOptions{Retention: 24 * time.Hour},
		setup: func(t *testing.T, txn *memTxn, seq *uint64) {
			applyOK(t, txn, seq, &DeleteManifest{Repo: "a/app", Digest: manifestOf(t, txn, "app2"), Time: now.Add(-time.Hour)})
		},
		wantBlobs: []string{"base", "app1", "app2", "child1", "child2", "sbom-blob", "young"},
	}, {
		name: "a deleted manifest past retention is reclaimed with its blobs",
		opts: GCOptions{Retention: 24 * time.Hour},
		setup: func(t *testing.T, txn *memTxn, seq *uint64) {
			applyOK(t, txn, seq, &DeleteManifest{Repo: "a/app", Digest: manifestOf(t, txn, "app2"), Time: now.Add(-25 * time.Hour)})
		},
		wantBlobs: []string{"base", "app1", "child1", "child2", "sbom-blob", "young"},
		wantGone:  []string{"app2"},
	}, {
		name: "retention 0 reclaims a deleted repository at once",
		opts: GCOptions{},
		setup: func(t *testing.T, txn *memTxn, seq *uint64) {
			applyOK(t, txn, seq, &DeleteRepository{Repo: "a/multi", Time: now})
		},
		wantBlobs: []string{"base", "app1", "app2", "sbom-blob", "young"},
		wantGone:  []string{"index", "child1", "child2"},
	}, {
		name: "a deleted workspace within retention keeps everything",
		opts: GCOptions{Retention: time.Hour},
		setup: func(t *testing.T, txn *memTxn, seq *uint64) {
			applyOK(t, txn, seq, &DeleteWorkspace{Name: "a", Time: now})
		},
		wantBlobs: []string{"base", "app1", "app2", "child1", "child2", "sbom-blob", "young"},
	}, {
		name:      "the grace period protects a young unreferenced blob only",
		opts:      GCOptions{GracePeriod: time.Hour},
		setup:     func(t *testing.T, txn *memTxn, seq *uint64) {},
		wantBlobs: []string{"base", "app1", "app2", "child1", "child2", "sbom-blob", "young"},
	}, {
		name: "a scoped run leaves other workspaces alone",
		opts: GCOptions{Workspace: "b"},
		setup: func(t *testing.T, txn *memTxn, seq *uint64) {
			applyOK(t, txn, seq, &DeleteRepository{Repo: "a/multi", Time: now})
		},
		wantBlobs: []string{"base", "app1", "app2", "child1", "child2", "sbom-blob", "young", "stray"},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			txn := seededTxn(t)
			seq := uint64(100)
			pushImage(t, txn, "a/app", 1, "v1", "base", "app1")
			pushImage(t, txn, "a/app", 2, "v2", "base", "app2")
			putReferrer(t, txn, &seq, "a/app", manifestOf(t, txn, "app1"), "sbom")
			c1 := pushImage(t, txn, "a/multi", 3, "", "base", "child1")
			c2 := pushImage(t, txn, "a/multi", 4, "", "base", "child2")
			index(t, txn, &seq, "a/multi", []string{"latest"}, c1, c2)
			applyOK(t, txn, &seq, &PutBlob{Repo: "b/x", Digest: dg("orphan"), Size: 6, Time: t0})
			applyOK(t, txn, &seq, &PutBlob{Repo: "b/x", Digest: dg("young"), Size: 5, Time: now.Add(-time.Minute)})
			applyOK(t, txn, &seq, &PutBlob{Repo: "a/app", Digest: dg("stray"), Size: 5, Time: t0})
			tc.setup(t, txn, &seq)
			if tc.opts.GracePeriod == 0 {
				tc.opts.GracePeriod = 10 * time.Minute // "young" is one minute old
			}
			tc.opts.Now = now
			run := gcRun(t, txn, &seq, tc.opts)
			if run.State != GCDone {
				t.Fatalf("run state %s", run.State)
			}
			got := blobNames(t, txn, all...)
			sort.Strings(got)
			want := append([]string(nil), tc.wantBlobs...)
			sort.Strings(want)
			if !reflect.DeepEqual(got, want) {
				t.Errorf("blobs left: got %v, want %v", got, want)
			}
			for _, label := range tc.wantGone {
				if d := manifestOf(t, txn, label); d != "" {
					if _, _, err := GetManifest(txn, repoOf(label), d); err == nil {
						t.Errorf("manifest %s survived", label)
					}
				}
			}
			// Whatever was swept left no dangling record behind.
			checkNoDangling(t, txn)
		})
	}
}

// manifestLabels maps a test label to the content its manifest was pushed with.
func manifestOf(t *testing.T, r Reader, label string) Digest {
	t.Helper()
	var content []byte
	switch label {
	case "app1":
		content = []byte(fmt.Sprintf(`{"layers":%q}`, []string{"base", "app1"}))
	case "app2":
		content = []byte(fmt.Sprintf(`{"layers":%q}`, []string{"base", "app2"}))
	case "child1":
		content = []byte(fmt.Sprintf(`{"layers":%q}`, []string{"base", "child1"}))
	case "child2":
		content = []byte(fmt.Sprintf(`{"layers":%q}`, []string{"base", "child2"}))
	case "sbom":
		content = []byte(`{"artifact":"sbom"}`)
	case "index":
		c1, c2 := manifestOf(t, r, "child1"), manifestOf(t, r, "child2")
		content = []byte(fmt.Sprintf(`{"manifests":%q}`, []Digest{c1, c2}))
	}
	return DigestOf("sha256", content)
}

func repoOf(label string) string {
	switch label {
	case "child1", "child2", "index":
		return "a/multi"
	}
	return "a/app"
}

// checkNoDangling checks that no link, location or repository index entry
// names a blob that is gone, and no live manifest names a missing blob.
func checkNoDangling(t *testing.T, txn *memTxn) {
	t.Helper()
	for k := range txn.m {
		for _, table := range []string{"l/", "bl/", "bn/"} {
			if len(k) > len(table) && k[:len(table)] == table {
				var d string
				if table == "l/" {
					_, d, _ = splitRepoKey([]byte(k), "l/")
				} else {
					d, _, _ = splitRepoKey([]byte(k), table)
				}
				if _, ok := txn.m["b/"+d]; !ok {
					t.Errorf("dangling %q", k)
				}
			}
		}
		if len(k) > 2 && k[:2] == "m/" {
			repo, d, _ := splitRepoKey([]byte(k), "m/")
			info := mustInfo(t, txn, repo, Digest(d))
			for _, b := range info.Blobs {
				if _, err := GetLinkedBlob(txn, repo, b); err != nil {
					t.Errorf("live manifest %s@%s names missing blob %s", repo, d, b)
				}
			}
		}
	}
}

func TestGCRunSlotAndDirtyCheck(t *testing.T) {
	txn := seededTxn(t)
	seq := uint64(100)
	now := t0.Add(time.Hour)
	applyOK(t, txn, &seq, &PutBlob{Repo: "a/x", Digest: dg("old"), Size: 3, Time: t0})
	opts := GCOptions{Now: now}

	applyOK(t, txn, &seq, &GCStart{ID: "gc-1", By: "admin", Time: now})
	applyErr(t, txn, &seq, &GCStart{ID: "gc-2", By: "admin", Time: now}, ErrConflict)
	applyErr(t, txn, &seq, &GCPause{ID: "gc-1", Leader: "n1", Time: now}, ErrConflict) // not claimed yet
	applyOK(t, txn, &seq, &GCBegin{ID: "gc-1", Leader: "n1", Options: opts, Time: now})
	markIndex := seq
	plan, err := Mark(txn.clone(), opts)
	if err != nil || len(plan.Blobs) != 1 {
		t.Fatalf("plan: %+v %v", plan, err)
	}
	// A mount of the candidate after the snapshot: dirty, so the re-mark keeps it.
	applyOK(t, txn, &seq, &PutBlob{Repo: "b/y", Digest: dg("old"), Size: 3, Time: now})
	stage(t, txn, &seq, "gc-1", plan, markIndex)
	applyErr(t, txn, &seq, &GCPause{ID: "gc-1", Leader: "n2", Time: now}, ErrConflict) // another leader's
	applyOK(t, txn, &seq, &GCPause{ID: "gc-1", Leader: "n1", Time: now})
	if p, _ := WritesPaused(txn); !p {
		t.Fatal("writes not paused")
	}
	// A sweep that did not see the dirty entry is refused and changes nothing.
	applyErr(t, txn, &seq, &GCSweep{ID: "gc-1", Leader: "n1", DirtyThrough: markIndex, Time: now}, ErrConflict)
	dirty, last, _ := ReadDirty(txn, markIndex)
	ex := Remark(txn, plan, dirty, nil)
	if len(plan.Blobs) != 0 || len(ex.Blobs) != 1 {
		t.Fatalf("re-mark kept %v as candidates, excluded %v", plan.Blobs, ex.Blobs)
	}
	applyOK(t, txn, &seq, &GCSweep{ID: "gc-1", Leader: "n1", DirtyThrough: last, Exclude: ex, Time: now})
	if _, err := GetBlob(txn, dg("old")); err != nil {
		t.Errorf("mounted blob swept: %v", err)
	}
	if p, _ := WritesPaused(txn); p {
		t.Error("writes still paused after the sweep")
	}
	if _, _, err := ReadDirty(txn, 0); err != nil {
		t.Fatal(err)
	}
	if e, _, _ := ReadDirty(txn, 0); len(e) != 0 {
		t.Errorf("dirty log not cleared: %v", e)
	}

	// Abort frees the slot; the next run works.
	applyOK(t, txn, &seq, &GCStart{ID: "gc-3", By: "admin", Time: now})
	applyOK(t, txn, &seq, &GCBegin{ID: "gc-3", Leader: "n1", Options: opts, Time: now})
	applyOK(t, txn, &seq, &GCAbort{ID: "gc-3", Reason: "leader changed", Time: now})
	if run, _ := GetGCRun(txn, "gc-3"); run.State != GCAborted || len(run.Errors) != 1 {
		t.Errorf("aborted run: %+v", run)
	}
	applyOK(t, txn, &seq, &GCStart{ID: "gc-4", By: "admin", DryRun: true, Time: now})
	if runs, _ := ListGCRuns(txn); len(runs) != 3 {
		t.Errorf("history: got %d runs, want 3", len(runs))
	}
	applyOK(t, txn, &seq, &GCNodeDone{ID: "gc-1", Node: "n1", Report: GCNodeReport{Files: 1, Bytes: 3}, Time: now})
	if run, _ := GetGCRun(txn, "gc-1"); run.Nodes["n1"] == nil || run.Nodes["n1"].Bytes != 3 {
		t.Errorf("node report: %+v", run.Nodes)
	}
	applyErr(t, txn, &seq, &GCStart{ID: "Bad ID", By: "admin", Time: now}, ErrInvalid)
}

func TestGCSweepSkipsItemDeletedAgain(t *testing.T) {
	txn := seededTxn(t)
	seq := uint64(100)
	pushImage(t, txn, "a/app", 1, "v1", "l1")
	applyOK(t, txn, &seq, &DeleteTag{Repo: "a/app", Tag: "v1", Time: t0})
	now := t0.Add(time.Hour)
	opts := GCOptions{Now: now, Retention: time.Minute}
	applyOK(t, txn, &seq, &GCStart{ID: "gc-1", Time: now})
	applyOK(t, txn, &seq, &GCBegin{ID: "gc-1", Leader: "n1", Options: opts, Time: now})
	plan, _ := Mark(txn.clone(), opts)
	if len(plan.Items) != 1 {
		t.Fatalf("items: %+v", plan.Items)
	}
	// Restored and deleted again after the mark: a fresh item, not the old
	// one; the dirty entries take it out of the plan.
	mark := seq
	stage(t, txn, &seq, "gc-1", plan, mark)
	applyOK(t, txn, &seq, &Restore{Workspace: "a", ID: TagItemID("a/app", "v1"), Time: now})
	applyOK(t, txn, &seq, &DeleteTag{Repo: "a/app", Tag: "v1", Time: now})
	applyOK(t, txn, &seq, &GCPause{ID: "gc-1", Leader: "n1", Time: now})
	dirty, last, _ := ReadDirty(txn, mark)
	ex := Remark(txn, plan, dirty, nil)
	applyOK(t, txn, &seq, &GCSweep{ID: "gc-1", Leader: "n1", DirtyThrough: last, Exclude: ex, Time: now})
	if _, err := GetTrashItem(txn, "a", TagItemID("a/app", "v1")); err != nil {
		t.Errorf("a delete made after the mark was reclaimed: %v", err)
	}
	if run, _ := GetGCRun(txn, "gc-1"); run.Reclaimed.TrashItems != 0 {
		t.Errorf("reclaimed: %+v", run.Reclaimed)
	}
}

func TestRemarkFollowsDeletedDirtyManifest(t *testing.T) {
	// A manifest pushed after the snapshot and deleted before the re-mark is in
	// the trash: what it needs must stay restorable.
	txn := seededTxn(t)
	seq := uint64(100)
	now := t0.Add(time.Hour)
	applyOK(t, txn, &seq, &PutBlob{Repo: "a/x", Digest: dg("l"), Size: 1, Time: t0})
	opts := GCOptions{Now: now, Retention: time.Hour}
	applyOK(t, txn, &seq, &GCStart{ID: "gc-1", Time: now})
	applyOK(t, txn, &seq, &GCBegin{ID: "gc-1", Leader: "n1", Options: opts, Time: now})
	mark := seq
	plan, _ := Mark(txn.clone(), opts)
	content := []byte(`{"late":1}`)
	d := DigestOf("sha256", content)
	applyOK(t, txn, &seq, &PutManifest{Repo: "a/x", Digest: d, Content: content, Time: now,
		Info: ManifestInfo{MediaType: "m", Blobs: []Digest{dg("l")}}})
	applyOK(t, txn, &seq, &DeleteRepository{Repo: "a/x", Time: now})
	dirty, _, _ := ReadDirty(txn, mark)
	Remark(txn, plan, dirty, nil)
	if len(plan.Blobs) != 0 {
		t.Errorf("blob of a manifest trashed since the mark is still a candidate: %v", plan.Blobs)
	}
	if !errors.Is(func() error { _, err := GetRepository(txn, "a/x"); return err }(), ErrNameUnknown) {
		t.Error("repository not deleted")
	}
}

// TestGCSweepMany sweeps few and many records (the mark finds the links of
// many candidates with one scan of the index): nothing dangles either way.
func TestGCSweepMany(t *testing.T) {
	for _, n := range []int{128, 512} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			txn := seededTxn(t)
			seq := uint64(100)
			now := t0.Add(time.Hour)
			keep := pushImage(t, txn, "b/keep", 1, "v1", "kept layer")
			for i := range n {
				name := fmt.Sprintf("garbage %d", i)
				applyOK(t, txn, &seq, &PutBlob{Repo: "a/x", Digest: dg(name), Size: 10, Nodes: []string{"n1", "n2"}, Time: t0})
				applyOK(t, txn, &seq, &PutBlob{Repo: "b/y", Digest: dg(name), Size: 10, Time: t0})
				pushImage(t, txn, "a/tagged", seq, fmt.Sprintf("t%d", i), "kept layer")
				applyOK(t, txn, &seq, &DeleteTag{Repo: "a/tagged", Tag: fmt.Sprintf("t%d", i), Time: t0})
			}
			run := gcRun(t, txn, &seq, GCOptions{Now: now})
			if run.Reclaimed.Blobs != n || run.Reclaimed.Tags != n || run.Reclaimed.Bytes != int64(10*n) {
				t.Errorf("reclaimed %+v, want %d blobs and %d tags", run.Reclaimed, n, n)
			}
			checkNoDangling(t, txn)
			for k := range txn.m {
				if len(k) > 3 && k[:3] == "xp/" {
					t.Errorf("payload left: %q", k)
				}
			}
			if _, err := GetLinkedBlob(txn, "b/keep", dg("kept layer")); err != nil {
				t.Errorf("kept layer: %v", err)
			}
			if _, _, err := GetManifest(txn, "b/keep", keep); err != nil {
				t.Errorf("kept manifest: %v", err)
			}
		})
	}
}
