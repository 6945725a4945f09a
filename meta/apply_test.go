package meta

import (
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"
)

var t0 = time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC)

func dg(s string) Digest { return DigestOf("sha256", []byte(s)) }

func mustApply(t *testing.T, txn Txn, index uint64, c Command) any {
	t.Helper()
	data, err := Encode(c)
	if err != nil {
		t.Fatal(err)
	}
	return Apply(txn, index, data)
}

func TestEncodeDecodeRoundTrip(t *testing.T) {
	cmds := []Command{
		&PutBlob{Repo: "a/b", Digest: dg("x"), Size: 3, Time: t0},
		&PutManifest{Repo: "a/b", Digest: dg("m"), Content: []byte(`{"x":1}`), Tags: []string{"v1"}, Time: t0,
			Info: ManifestInfo{MediaType: "application/vnd.oci.image.manifest.v1+json", Size: 7, Blobs: []Digest{dg("x")}}},
		&DeleteManifest{Repo: "a/b", Digest: dg("m"), Time: t0},
		&DeleteTag{Repo: "a/b", Tag: "v1", Time: t0},
		&UnlinkBlob{Repo: "a/b", Digest: dg("x"), Time: t0},
	}
	for _, c := range cmds {
		data, err := Encode(c)
		if err != nil {
			t.Fatal(err)
		}
		got, err := Decode(data)
		if err != nil {
			t.Fatalf("decode %T: %v", c, err)
		}
		if !reflect.DeepEqual(got, c) {
			t.Errorf("got %#v, want %#v", got, c)
		}
	}
}

func TestDecodeCorruptAndUnknown(t *testing.T) {
	for _, tc := range []struct {
		name string
		data []byte
		want error
	}{
		{"empty", nil, ErrCommandCorrupt},
		{"bad version", []byte{9, 1, 0, '{', '}'}, ErrCommandCorrupt},
		{"unknown type", []byte{commandVersion, 200, 0, '{', '}'}, ErrCommandCorrupt},
		{"bad json", []byte{commandVersion, byte(CmdPutBlob), 0, '{'}, ErrCommandCorrupt},
		{"unknown ignorable", []byte{commandVersion, 200, flagIgnorable, '{', '}'}, nil},
	} {
		c, err := Decode(tc.data)
		if !errors.Is(err, tc.want) || (tc.want == nil && c != nil) {
			t.Errorf("%s: got %v, %v, want %v", tc.name, c, err, tc.want)
		}
	}
}

func pushImage(t *testing.T, txn Txn, repo string, idx uint64, tag string, layers ...string) Digest {
	t.Helper()
	var blobs []Digest
	for _, l := range layers {
		if r := mustApply(t, txn, idx, &PutBlob{Repo: repo, Digest: dg(l), Size: int64(len(l)), Time: t0}); r != nil {
			t.Fatalf("put blob: %v", r)
		}
		blobs = append(blobs, dg(l))
	}
	content := []byte(fmt.Sprintf(`{"layers":%q}`, layers))
	d := DigestOf("sha256", content)
	var tags []string
	if tag != "" {
		tags = []string{tag}
	}
	r := mustApply(t, txn, idx, &PutManifest{Repo: repo, Digest: d, Content: content, Tags: tags, Time: t0,
		Info: ManifestInfo{MediaType: "application/vnd.oci.image.manifest.v1+json", Size: int64(len(content)), Blobs: blobs}})
	if r != nil {
		t.Fatalf("put manifest: %v", r)
	}
	return d
}

func TestPutManifestAndReads(t *testing.T) {
	txn := seededTxn(t)
	d := pushImage(t, txn, "lib/app", 1, "v1", "cfg", "layer1")
	info, content, err := GetManifest(txn, "lib/app", d)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := DigestOf("sha256", content), d; got != want {
		t.Errorf("content digest: got %v, want %v", got, want)
	}
	if got, want := info.Created, t0; !got.Equal(want) {
		t.Errorf("created: got %v, want %v", got, want)
	}
	tag, err := GetTag(txn, "lib/app", "v1")
	if err != nil || tag.Digest != d {
		t.Fatalf("tag: got %v %v, want %v", tag, err, d)
	}
	if _, err := GetLinkedBlob(txn, "lib/app", dg("layer1")); err != nil {
		t.Errorf("linked blob: %v", err)
	}
	// Knowing a digest grants nothing in another repository.
	if _, err := GetLinkedBlob(txn, "other/app", dg("layer1")); !errors.Is(err, ErrBlobUnknown) {
		t.Errorf("blob through another repo: got %v, want ErrBlobUnknown", err)
	}
	repos, more, err := ListRepositories(txn, "", 0)
	if err != nil || more || !reflect.DeepEqual(repos, []string{"lib/app"}) {
		t.Errorf("repos: got %v %v %v", repos, more, err)
	}
}

func TestPutManifestRefusesUnknownBlobAtomically(t *testing.T) {
	txn := seededTxn(t)
	mustApply(t, txn, 1, &PutBlob{Repo: "a/x", Digest: dg("cfg"), Size: 3, Time: t0})
	before := txn.clone()
	content := []byte(`{}`)
	r := mustApply(t, txn, 2, &PutManifest{Repo: "a/x", Digest: DigestOf("sha256", content), Content: content,
		Tags: []string{"v1"}, Time: t0,
		Info: ManifestInfo{MediaType: "m", Blobs: []Digest{dg("cfg"), dg("missing")}}})
	if err, _ := r.(error); !errors.Is(err, ErrManifestBlobUnknown) {
		t.Fatalf("got %v, want ErrManifestBlobUnknown", r)
	}
	if !reflect.DeepEqual(txn.m, before.m) {
		t.Errorf("a refused manifest changed the state")
	}
	// A child manifest of an index must exist as well.
	r = mustApply(t, txn, 3, &PutManifest{Repo: "a/x", Digest: dg("idx"), Content: content, Time: t0,
		Info: ManifestInfo{MediaType: "i", Manifests: []Digest{dg("nochild")}}})
	if err, _ := r.(error); !errors.Is(err, ErrManifestBlobUnknown) {
		t.Fatalf("index: got %v, want ErrManifestBlobUnknown", r)
	}
}

func TestTagsMoveAndDelete(t *testing.T) {
	txn := seededTxn(t)
	d1 := pushImage(t, txn, "a/x", 1, "latest", "l1")
	d2 := pushImage(t, txn, "a/x", 2, "latest", "l2")
	if tags, _ := TagsOf(txn, "a/x", d1); len(tags) != 0 {
		t.Errorf("old manifest still has tags %v", tags)
	}
	if tags, _ := TagsOf(txn, "a/x", d2); !reflect.DeepEqual(tags, []string{"latest"}) {
		t.Errorf("new manifest tags: got %v, want [latest]", tags)
	}
	// Deleting a tag keeps the manifest.
	if r := mustApply(t, txn, 3, &DeleteTag{Repo: "a/x", Tag: "latest", Time: t0}); r != nil {
		t.Fatal(r)
	}
	if _, _, err := GetManifest(txn, "a/x", d2); err != nil {
		t.Errorf("manifest after tag delete: %v", err)
	}
	if r := mustApply(t, txn, 4, &DeleteTag{Repo: "a/x", Tag: "latest", Time: t0}); !errors.Is(r.(error), ErrManifestUnknown) {
		t.Errorf("second tag delete: got %v, want ErrManifestUnknown", r)
	}
	// Deleting a manifest removes its tags.
	pushImage(t, txn, "a/x", 5, "v2", "l2")
	if r := mustApply(t, txn, 6, &DeleteManifest{Repo: "a/x", Digest: d2, Time: t0}); r != nil {
		t.Fatal(r)
	}
	if _, err := GetTag(txn, "a/x", "v2"); !errors.Is(err, ErrManifestUnknown) {
		t.Errorf("tag of deleted manifest: got %v, want ErrManifestUnknown", err)
	}
}

func TestListTagsPagination(t *testing.T) {
	txn := seededTxn(t)
	for i, tag := range []string{"c", "a", "b", "d", "e"} {
		pushImage(t, txn, "a/x", uint64(i+1), tag, "l")
	}
	var all []string
	last := ""
	for {
		page, more, err := ListTags(txn, "a/x", last, 2)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, page...)
		if !more {
			break
		}
		last = page[len(page)-1]
	}
	if want := []string{"a", "b", "c", "d", "e"}; !reflect.DeepEqual(all, want) {
		t.Errorf("got %v, want %v", all, want)
	}
	if _, _, err := ListTags(txn, "no/repo", "", 0); !errors.Is(err, ErrNameUnknown) {
		t.Errorf("unknown repo: got %v, want ErrNameUnknown", err)
	}
}

func TestReferrers(t *testing.T) {
	txn := seededTxn(t)
	subject := pushImage(t, txn, "a/x", 1, "v1", "l")
	mustApply(t, txn, 2, &PutBlob{Repo: "a/x", Digest: dg("sbom"), Size: 4, Time: t0})
	for i, at := range []string{"application/sbom", "application/sig"} {
		content := []byte(fmt.Sprintf(`{"n":%d}`, i))
		r := mustApply(t, txn, uint64(3+i), &PutManifest{Repo: "a/x", Digest: DigestOf("sha256", content), Content: content, Time: t0,
			Info: ManifestInfo{MediaType: "application/vnd.oci.image.manifest.v1+json", ArtifactType: at, Subject: subject,
				Size: int64(len(content)), Blobs: []Digest{dg("sbom")}}})
		if r != nil {
			t.Fatal(r)
		}
	}
	all, _ := ListReferrers(txn, "a/x", subject, "")
	sboms, _ := ListReferrers(txn, "a/x", subject, "application/sbom")
	if len(all) != 2 || len(sboms) != 1 || sboms[0].ArtifactType != "application/sbom" {
		t.Errorf("got %v and %v", all, sboms)
	}
	if r := mustApply(t, txn, 9, &DeleteManifest{Repo: "a/x", Digest: sboms[0].Digest, Time: t0}); r != nil {
		t.Fatal(r)
	}
	if all, _ := ListReferrers(txn, "a/x", subject, ""); len(all) != 1 {
		t.Errorf("after delete: got %d referrers, want 1", len(all))
	}
}

func TestUnlinkBlob(t *testing.T) {
	txn := seededTxn(t)
	mustApply(t, txn, 1, &PutBlob{Repo: "a/x", Digest: dg("b"), Size: 1, Time: t0})
	mustApply(t, txn, 1, &PutBlob{Repo: "b/y", Digest: dg("b"), Size: 1, Time: t0})
	if repos, _ := ReposWithBlob(txn, dg("b")); !reflect.DeepEqual(repos, []string{"a/x", "b/y"}) {
		t.Errorf("repos with blob: got %v, want [a/x b/y]", repos)
	}
	if r := mustApply(t, txn, 2, &UnlinkBlob{Repo: "a/x", Digest: dg("b"), Time: t0}); r != nil {
		t.Fatal(r)
	}
	if repos, _ := ReposWithBlob(txn, dg("b")); !reflect.DeepEqual(repos, []string{"b/y"}) {
		t.Errorf("repos with blob after unlink: got %v, want [b/y]", repos)
	}
	if _, err := GetLinkedBlob(txn, "a/x", dg("b")); !errors.Is(err, ErrBlobUnknown) {
		t.Errorf("got %v, want ErrBlobUnknown", err)
	}
	if r := mustApply(t, txn, 3, &UnlinkBlob{Repo: "a/x", Digest: dg("b"), Time: t0}); !errors.Is(r.(error), ErrBlobUnknown) {
		t.Errorf("second unlink: got %v, want ErrBlobUnknown", r)
	}
}

func TestBlobLocations(t *testing.T) {
	txn := seededTxn(t)
	mustApply(t, txn, 1, &PutBlob{Repo: "a/x", Digest: dg("b"), Size: 1, Nodes: []string{"n1", "n2"}, Time: t0})
	if r := mustApply(t, txn, 2, &SetBlobLocation{Digest: dg("b"), Node: "n3", Time: t0}); r != nil {
		t.Fatal(r)
	}
	if r := mustApply(t, txn, 3, &SetBlobLocation{Digest: dg("b"), Node: "n1", Remove: true, Time: t0}); r != nil {
		t.Fatal(r)
	}
	if got, _ := BlobLocations(txn, dg("b")); !reflect.DeepEqual(got, []string{"n2", "n3"}) {
		t.Errorf("locations: got %v, want [n2 n3]", got)
	}
	if r := mustApply(t, txn, 4, &SetBlobLocation{Digest: dg("unknown"), Node: "n1", Time: t0}); !errors.Is(r.(error), ErrBlobUnknown) {
		t.Errorf("location of an unknown blob: got %v, want ErrBlobUnknown", r)
	}
	var seen []Digest
	_ = ScanBlobs(txn, "", func(b *Blob) error { seen = append(seen, b.Digest); return nil })
	if len(seen) != 1 || seen[0] != dg("b") {
		t.Errorf("scan: got %v", seen)
	}
}

// TestApplyAtStampsLeaderTime: with the leader's append time, a command's
// Time (the proposer's clock, possibly skewed) is replaced, to the
// millisecond; without one it is kept. Garbage collection compares blob
// stamps with the leader's clock, so a follower running fast must not stamp
// its uploads into the future.
func TestApplyAtStampsLeaderTime(t *testing.T) {
	skewed := t0.Add(14 * time.Minute)
	leader := t0.Add(1234567891 * time.Nanosecond).In(time.FixedZone("x", 3600))
	data, err := Encode(&PutBlob{Repo: "a/b", Digest: dg("x"), Size: 3, Time: skewed})
	if err != nil {
		t.Fatal(err)
	}
	txn := seededTxn(t)
	if res := ApplyAt(txn, 100, data, leader); res != nil {
		t.Fatal(res)
	}
	b, err := GetBlob(txn, dg("x"))
	if err != nil {
		t.Fatal(err)
	}
	want := t0.Add(1234 * time.Millisecond)
	if !b.Created.Equal(want) || !b.Pushed.Equal(want) || b.Created.Location() != time.UTC {
		t.Errorf("blob stamped %v / %v, want the leader's append time %v (UTC, ms)", b.Created, b.Pushed, want)
	}

	txn = seededTxn(t)
	if res := ApplyAt(txn, 100, data, time.Time{}); res != nil {
		t.Fatal(res)
	}
	if b, _ := GetBlob(txn, dg("x")); b == nil || !b.Created.Equal(skewed) {
		t.Errorf("without an append time: blob stamped %v, want the command's %v", b, skewed)
	}
}
