package meta

import (
	"errors"
	"fmt"
	"reflect"
	"testing"
)

// applyOK applies c at the next index of seq and fails the test on a refusal.
func applyOK(t *testing.T, txn Txn, seq *uint64, c Command) {
	t.Helper()
	*seq++
	if r := mustApply(t, txn, *seq, c); r != nil {
		t.Fatalf("%T: %v", c, r)
	}
}

// applyErr applies c and checks that it is refused with want.
func applyErr(t *testing.T, txn Txn, seq *uint64, c Command, want error) {
	t.Helper()
	*seq++
	r := mustApply(t, txn, *seq, c)
	if err, _ := r.(error); !errors.Is(err, want) {
		t.Fatalf("%T: got %v, want %v", c, r, want)
	}
}

// putReferrer stores an artifact manifest in repo whose subject is subject.
func putReferrer(t *testing.T, txn Txn, seq *uint64, repo string, subject Digest, name string, tags ...string) Digest {
	t.Helper()
	applyOK(t, txn, seq, &PutBlob{Repo: repo, Digest: dg(name + "-blob"), Size: 7, Time: t0})
	content := []byte(fmt.Sprintf(`{"artifact":%q}`, name))
	d := DigestOf("sha256", content)
	applyOK(t, txn, seq, &PutManifest{Repo: repo, Digest: d, Content: content, Tags: tags, Time: t0,
		Info: ManifestInfo{MediaType: "application/vnd.oci.image.manifest.v1+json", ArtifactType: "application/sbom",
			Subject: subject, Size: int64(len(content)), Blobs: []Digest{dg(name + "-blob")}}})
	return d
}

func TestSoftDeleteHidesAndRestoreBrings(t *testing.T) {
	txn := seededTxn(t)
	seq := uint64(100)
	d := pushImage(t, txn, "a/app", 1, "v1", "cfg", "layer")
	applyOK(t, txn, &seq, &PutManifest{Repo: "a/app", Digest: d, Content: mustContent(t, txn, "a/app", d), Tags: []string{"latest"}, Time: t0,
		Info: mustInfo(t, txn, "a/app", d)})
	sbom := putReferrer(t, txn, &seq, "a/app", d, "sbom")

	type check struct {
		tags      []string // ListTags
		manifest  bool     // GetManifest by digest
		referrers int      // ListReferrers of d
		blob      bool     // GetLinkedBlob(layer)
		repo      bool     // GetRepository and the catalog
		workspace bool
	}
	state := func() check {
		var c check
		c.tags, _, _ = ListTags(txn, "a/app", "", 0)
		_, _, err := GetManifest(txn, "a/app", d)
		c.manifest = err == nil
		refs, _ := ListReferrers(txn, "a/app", d, "")
		c.referrers = len(refs)
		_, err = GetLinkedBlob(txn, "a/app", dg("layer"))
		c.blob = err == nil
		_, err = GetRepository(txn, "a/app")
		repos, _, _ := ListRepositories(txn, "", 0)
		c.repo = err == nil && len(repos) == 1
		_, err = GetWorkspace(txn, "a")
		c.workspace = err == nil
		return c
	}
	all := check{tags: []string{"latest", "v1"}, manifest: true, referrers: 1, blob: true, repo: true, workspace: true}
	if got := state(); !reflect.DeepEqual(got, all) {
		t.Fatalf("before: got %+v, want %+v", got, all)
	}
	for _, tc := range []struct {
		name  string
		del   Command
		id    string
		kind  string
		after check
	}{
		{"tag", &DeleteTag{Repo: "a/app", Tag: "v1", By: "alice", Time: t0}, TagItemID("a/app", "v1"), TrashTag,
			check{tags: []string{"latest"}, manifest: true, referrers: 1, blob: true, repo: true, workspace: true}},
		{"manifest", &DeleteManifest{Repo: "a/app", Digest: d, By: "alice", Time: t0}, ManifestItemID("a/app", d), TrashManifest,
			check{referrers: 1, blob: true, repo: true, workspace: true}},
		{"referrer", &DeleteManifest{Repo: "a/app", Digest: sbom, By: "alice", Time: t0}, ManifestItemID("a/app", sbom), TrashManifest,
			check{tags: []string{"latest", "v1"}, manifest: true, blob: true, repo: true, workspace: true}},
		{"blob link", &UnlinkBlob{Repo: "a/app", Digest: dg("layer"), By: "alice", Time: t0}, BlobItemID("a/app", dg("layer")), TrashBlob,
			check{tags: []string{"latest", "v1"}, manifest: true, referrers: 1, repo: true, workspace: true}},
		{"repository", &DeleteRepository{Repo: "a/app", By: "alice", Time: t0}, RepositoryItemID("a/app"), TrashRepository,
			check{workspace: true}},
		{"workspace", &DeleteWorkspace{Name: "a", By: "alice", Time: t0}, WorkspaceItemID("a"), TrashWorkspace,
			check{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			applyOK(t, txn, &seq, tc.del)
			if got := state(); !reflect.DeepEqual(got, tc.after) {
				t.Errorf("deleted: got %+v, want %+v", got, tc.after)
			}
			items, err := ListTrash(txn, "a")
			if err != nil || len(items) != 1 {
				t.Fatalf("trash: got %+v %v, want one item", items, err)
			}
			if it := items[0]; it.ID != tc.id || it.Kind != tc.kind || it.DeletedBy != "alice" || !it.Deleted.Equal(t0) {
				t.Errorf("trash item: got %+v, want id %s kind %s by alice", it, tc.id, tc.kind)
			}
			// Deleting what is already deleted: the same answer as for
			// something that never existed.
			*(&seq)++
			if r := mustApply(t, txn, seq, tc.del); r == nil {
				t.Errorf("second delete succeeded")
			}
			applyOK(t, txn, &seq, &Restore{Workspace: "a", ID: tc.id, By: "bob", Time: t0})
			if got := state(); !reflect.DeepEqual(got, all) {
				t.Errorf("restored: got %+v, want %+v", got, all)
			}
			if items, _ := ListTrash(txn, "a"); len(items) != 0 {
				t.Errorf("trash after restore: %+v", items)
			}
		})
	}
	applyErr(t, txn, &seq, &Restore{Workspace: "a", ID: "tag:a/app:nope", Time: t0}, ErrTrashUnknown)
}

func mustInfo(t *testing.T, r Reader, repo string, d Digest) ManifestInfo {
	t.Helper()
	info, _, err := GetManifest(r, repo, d)
	if err != nil {
		t.Fatal(err)
	}
	return *info
}

func mustContent(t *testing.T, r Reader, repo string, d Digest) []byte {
	t.Helper()
	_, c, err := GetManifest(r, repo, d)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestRestoreConflictsAndMerges(t *testing.T) {
	txn := seededTxn(t)
	seq := uint64(100)
	d1 := pushImage(t, txn, "a/app", 1, "v1", "l1")
	d2 := pushImage(t, txn, "a/app", 2, "v2", "l2")

	// A tag pushed again since its delete wins; the trashed one is refused.
	applyOK(t, txn, &seq, &DeleteTag{Repo: "a/app", Tag: "v1", Time: t0})
	applyOK(t, txn, &seq, &PutManifest{Repo: "a/app", Digest: d2, Content: mustContent(t, txn, "a/app", d2), Tags: []string{"v1"}, Time: t0,
		Info: mustInfo(t, txn, "a/app", d2)})
	applyErr(t, txn, &seq, &Restore{Workspace: "a", ID: TagItemID("a/app", "v1"), Time: t0}, ErrConflict)

	// Things in a deleted repository come back with it, not before.
	applyOK(t, txn, &seq, &DeleteManifest{Repo: "a/app", Digest: d1, Time: t0})
	applyOK(t, txn, &seq, &DeleteRepository{Repo: "a/app", Time: t0})
	applyErr(t, txn, &seq, &Restore{Workspace: "a", ID: ManifestItemID("a/app", d1), Time: t0}, ErrConflict)

	// A push into the deleted repository's name starts a new, empty one.
	d3 := pushImage(t, txn, "a/app", 3, "v2", "l3")
	if tags, _, _ := ListTags(txn, "a/app", "", 0); !reflect.DeepEqual(tags, []string{"v2"}) {
		t.Fatalf("new repository's tags: got %v, want [v2]", tags)
	}
	if _, err := GetLinkedBlob(txn, "a/app", dg("l2")); !errors.Is(err, ErrBlobUnknown) {
		t.Errorf("old link visible in the new repository: %v", err)
	}
	// Restoring merges: what was pushed since wins (v2 stays on d3), the rest
	// comes back (v1 on d2, the old links).
	applyOK(t, txn, &seq, &Restore{Workspace: "a", ID: RepositoryItemID("a/app"), Time: t0})
	if tg, _ := GetTag(txn, "a/app", "v2"); tg.Digest != d3 {
		t.Errorf("v2 after restore: got %s, want %s (the newer push)", tg.Digest, d3)
	}
	if tg, _ := GetTag(txn, "a/app", "v1"); tg == nil || tg.Digest != d2 {
		t.Errorf("v1 after restore: got %+v, want %s", tg, d2)
	}
	if tags, _ := TagsOf(txn, "a/app", d2); !reflect.DeepEqual(tags, []string{"v1"}) {
		t.Errorf("tag index of d2: got %v, want [v1] (v2 moved on)", tags)
	}
	if repos, _ := ReposWithBlob(txn, dg("l2")); !reflect.DeepEqual(repos, []string{"a/app"}) {
		t.Errorf("blob index after restore: got %v", repos)
	}
	// Now the manifest deleted before the repository comes back too, with its tags.
	applyOK(t, txn, &seq, &Restore{Workspace: "a", ID: ManifestItemID("a/app", d1), Time: t0})
	if _, _, err := GetManifest(txn, "a/app", d1); err != nil {
		t.Errorf("manifest after restore: %v", err)
	}

	// A deleted workspace's name stays taken; restoring needs its project.
	applyOK(t, txn, &seq, &DeleteWorkspace{Name: "b", Time: t0})
	applyErr(t, txn, &seq, &PutWorkspace{Name: "b", Project: "p", Visibility: Private, Create: true, Time: t0}, ErrConflict)
	if w, err := DeletedWorkspace(txn, "b"); err != nil || w.Project != "p" {
		t.Errorf("deleted workspace record: got %+v %v", w, err)
	}
	applyOK(t, txn, &seq, &Restore{Workspace: "b", ID: WorkspaceItemID("b"), Time: t0})
	if _, err := GetWorkspace(txn, "b"); err != nil {
		t.Errorf("workspace after restore: %v", err)
	}
}
