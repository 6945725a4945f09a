package api

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/berth-registry/berth/blobstore"
	"github.com/berth-registry/berth/meta"
)

// storeBlobs adapts a real blob store to Blobs for the import tests.
type storeBlobs struct{ st *blobstore.Store }

func (b storeBlobs) Stat(d digest.Digest) (int64, error)    { return b.st.Stat(d) }
func (b storeBlobs) Open(d digest.Digest) (*os.File, error) { return b.st.Open(d) }
func (b storeBlobs) Put(ctx context.Context, r io.Reader, d digest.Digest) (int64, error) {
	return b.st.Put(ctx, r, d)
}
func (b storeBlobs) NewUpload(id string, algs ...digest.Algorithm) (Upload, error) {
	u, err := b.st.NewUpload(id, algs...)
	if err != nil {
		return nil, err
	}
	return u, nil
}
func (b storeBlobs) Upload(id string) (Upload, error) {
	u, err := b.st.Upload(id)
	if err != nil {
		return nil, err
	}
	return u, nil
}

// importFixture is the auth fixture (users, workspaces p1pub, p1priv, p2pub,
// p2priv) with a real blob store in a temporary directory.
type importFixture struct {
	*authFixture
	root string
	st   *blobstore.Store
}

func newImportFixture(t *testing.T, lim ImportLimits) *importFixture {
	t.Helper()
	f := newAuthFixture(t, func(c *Config) { c.Import = lim })
	root := t.TempDir()
	st, err := blobstore.Open(root, blobstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	f.s.blobs = storeBlobs{st}
	return &importFixture{authFixture: f, root: root, st: st}
}

var adminAuth = basicAuth("admin", "admin-pw")

// post imports body into ws with the query q ("repository=x&tag=y").
func (f *importFixture) post(ws, q, auth string, body io.Reader, hdr ...string) *httptest.ResponseRecorder {
	target := "/api/v1/workspaces/" + ws + "/import"
	if q != "" {
		target += "?" + q
	}
	hdr = append([]string{"Content-Type", "application/x-tar"}, hdr...)
	return f.do("POST", target, auth, body, hdr...)
}

// leftovers returns the blob files and upload sessions in the store.
func (f *importFixture) leftovers() (blobs, sessions int) {
	f.t.Helper()
	if err := f.st.Walk(func(digest.Digest, int64) error { blobs++; return nil }); err != nil {
		f.t.Fatal(err)
	}
	ents, err := os.ReadDir(filepath.Join(f.root, "uploads"))
	if err != nil {
		f.t.Fatal(err)
	}
	return blobs, len(ents)
}

// ---- archive builders ----

type tarEntry struct {
	name string
	typ  byte // 0: regular file
	body []byte
	link string
}

func mkTar(t testing.TB, entries []tarEntry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Mode: 0o644, Typeflag: e.typ, Linkname: e.link, Format: tar.FormatPAX}
		if e.typ == 0 {
			h.Typeflag = tar.TypeReg
			h.Size = int64(len(e.body))
		}
		if e.typ == tar.TypeDir {
			h.Mode = 0o755
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			if _, err := tw.Write(e.body); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func gz(t testing.TB, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// mkLayer is a layer tar holding one file.
func mkLayer(t testing.TB, file, content string) []byte {
	return mkTar(t, []tarEntry{{name: file, body: []byte(content)}})
}

func hexOf(d meta.Digest) string { return strings.TrimPrefix(string(d), "sha256:") }

// legacyImage is one image of a docker save archive.
type legacyImage struct {
	tags   []string
	layers [][]byte
	config []byte // built by legacyEntries when nil
}

func legacyConfig(layers [][]byte) []byte {
	var ids []string
	for _, l := range layers {
		ids = append(ids, string(meta.DigestOf("sha256", l)))
	}
	b, _ := json.Marshal(map[string]any{
		"architecture": "amd64", "os": "linux", "config": map[string]any{},
		"rootfs": map[string]any{"type": "layers", "diff_ids": ids},
	})
	return b
}

// legacyEntries lays images out as docker save does: <config hex>.json,
// <layer id>/layer.tar (a repeated layer as a symlink to the first copy, as
// docker writes it), repositories, and manifest.json (last when metaLast).
func legacyEntries(images []legacyImage, metaLast bool) []tarEntry {
	var files []tarEntry
	var list []map[string]any
	seen := map[meta.Digest]string{}
	seenConfig := map[string]bool{}
	for i := range images {
		im := &images[i]
		if im.config == nil {
			im.config = legacyConfig(im.layers)
		}
		cfgName := hexOf(meta.DigestOf("sha256", im.config)) + ".json"
		if !seenConfig[cfgName] {
			seenConfig[cfgName] = true
			files = append(files, tarEntry{name: cfgName, body: im.config})
		}
		var layerNames []string
		for _, l := range im.layers {
			d := meta.DigestOf("sha256", l)
			id := fmt.Sprintf("%x", []byte(hexOf(d)[:16])) // a v1 id, not the digest
			name := id + "/layer.tar"
			if first, ok := seen[d]; ok {
				name = fmt.Sprintf("img%d-%s/layer.tar", i, id)
				files = append(files, tarEntry{name: filepath.Dir(name), typ: tar.TypeDir},
					tarEntry{name: name, typ: tar.TypeSymlink, link: "../" + first})
			} else {
				seen[d] = name
				files = append(files, tarEntry{name: id, typ: tar.TypeDir}, tarEntry{name: name, body: l},
					tarEntry{name: id + "/VERSION", body: []byte("1.0")})
			}
			layerNames = append(layerNames, name)
		}
		list = append(list, map[string]any{"Config": cfgName, "RepoTags": im.tags, "Layers": layerNames})
	}
	mj, _ := json.Marshal(list)
	metaFiles := []tarEntry{{name: "manifest.json", body: mj}, {name: "repositories", body: []byte(`{}`)}}
	if metaLast {
		return append(files, metaFiles...)
	}
	return append(metaFiles, files...)
}

// ociBlob is content of an OCI layout.
type ociBlob struct {
	mediaType string
	data      []byte
}

func (b ociBlob) desc() map[string]any {
	return map[string]any{"mediaType": b.mediaType, "digest": meta.DigestOf("sha256", b.data), "size": len(b.data)}
}

func (b ociBlob) entry() tarEntry {
	return tarEntry{name: "blobs/sha256/" + hexOf(meta.DigestOf("sha256", b.data)), body: b.data}
}

// ociImage returns an image manifest with its config and layers.
func ociImage(t testing.TB, arch string, layers ...[]byte) (manifest ociBlob, blobs []ociBlob) {
	t.Helper()
	var ls []ociBlob
	for _, l := range layers {
		ls = append(ls, ociBlob{"application/vnd.oci.image.layer.v1.tar+gzip", gz(t, l)})
	}
	var ids []string
	for _, l := range layers {
		ids = append(ids, string(meta.DigestOf("sha256", l)))
	}
	cb, _ := json.Marshal(map[string]any{"architecture": arch, "os": "linux", "rootfs": map[string]any{"type": "layers", "diff_ids": ids}})
	cfg := ociBlob{"application/vnd.oci.image.config.v1+json", cb}
	var lds []map[string]any
	for _, l := range ls {
		lds = append(lds, l.desc())
	}
	mb, _ := json.Marshal(map[string]any{"schemaVersion": 2, "mediaType": meta.MediaTypeOCIManifest, "config": cfg.desc(), "layers": lds})
	return ociBlob{meta.MediaTypeOCIManifest, mb}, append([]ociBlob{cfg}, ls...)
}

// ociIndexJSON is an index.json listing the manifests with annotations.
func ociIndexJSON(entries ...map[string]any) []byte {
	b, _ := json.Marshal(map[string]any{"schemaVersion": 2, "mediaType": meta.MediaTypeOCIIndex, "manifests": entries})
	return b
}

func withAnnotations(desc map[string]any, kv ...string) map[string]any {
	a := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		a[kv[i]] = kv[i+1]
	}
	desc["annotations"] = a
	return desc
}

// decodeImport decodes a 201 answer.
func decodeImport(t *testing.T, w *httptest.ResponseRecorder) importResult {
	t.Helper()
	if w.Code != http.StatusCreated {
		t.Fatalf("import: %d %s", w.Code, w.Body)
	}
	var res importResult
	if err := json.Unmarshal(w.Body.Bytes(), &res); err != nil {
		t.Fatal(err)
	}
	return res
}

// tagged returns the manifest content repo:tag resolves to.
func (f *importFixture) tagged(repo, tag string) ([]byte, *meta.ManifestInfo) {
	f.t.Helper()
	tg, err := meta.GetTag(f.kv, repo, tag)
	if err != nil {
		f.t.Fatalf("tag %s:%s: %v", repo, tag, err)
	}
	info, content, err := meta.GetManifest(f.kv, repo, tg.Digest)
	if err != nil {
		f.t.Fatalf("manifest %s@%s: %v", repo, tg.Digest, err)
	}
	return content, info
}

// blobBytes reads a stored blob.
func (f *importFixture) blobBytes(d meta.Digest) []byte {
	f.t.Helper()
	fh, err := f.st.Open(digest.Digest(d))
	if err != nil {
		f.t.Fatalf("blob %s: %v", d, err)
	}
	defer fh.Close()
	b, err := io.ReadAll(fh)
	if err != nil {
		f.t.Fatal(err)
	}
	return b
}

// ---- tests ----

func TestImportLegacy(t *testing.T) {
	l1, l2, l3 := mkLayer(t, "a.txt", "base layer"), mkLayer(t, "b.txt", "app layer"), mkLayer(t, "c.txt", "other")
	for _, tc := range []struct {
		name     string
		gzip     bool
		metaLast bool
	}{
		{"plain, metadata first", false, false},
		{"plain, metadata last", false, true},
		{"gzip, metadata last", true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newImportFixture(t, ImportLimits{})
			images := []legacyImage{
				{tags: []string{"app:v1", "registry.example.com:5000/team/app:stable"}, layers: [][]byte{l1, l2}},
				{tags: []string{"docker.io/library/tool:1.0"}, layers: [][]byte{l1, l3}}, // l1 again: a symlink
			}
			arch := mkTar(t, legacyEntries(images, tc.metaLast))
			if tc.gzip {
				arch = gz(t, arch)
			}
			res := decodeImport(t, f.post("p1priv", "", adminAuth, bytes.NewReader(arch)))
			want := []string{"p1priv/app:v1", "p1priv/team/app:stable", "p1priv/tool:1.0"}
			var got []string
			for _, im := range res.Images {
				got = append(got, im.Repository+":"+im.Tag)
			}
			if strings.Join(got, " ") != strings.Join(want, " ") {
				t.Fatalf("images %v, want %v", got, want)
			}
			for i, ref := range want {
				repo, tag, _ := strings.Cut(ref, ":")
				im := images[0]
				if i == 2 {
					im = images[1]
				}
				content, info := f.tagged(repo, tag)
				if info.MediaType != meta.MediaTypeDockerManifest || meta.DigestOf("sha256", content) != res.Images[i].Digest {
					t.Errorf("%s: media type %s, digest %s; answer said %s", ref, info.MediaType, meta.DigestOf("sha256", content), res.Images[i].Digest)
				}
				m, err := meta.ParseManifest("", content)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(f.blobBytes(m.Config.Digest), im.config) {
					t.Errorf("%s: config differs from the archive's", ref)
				}
				if len(m.Layers) != len(im.layers) {
					t.Fatalf("%s: %d layers, want %d", ref, len(m.Layers), len(im.layers))
				}
				for j, l := range m.Layers {
					if l.MediaType != mediaTypeDockerLayerTar || !bytes.Equal(f.blobBytes(l.Digest), im.layers[j]) {
						t.Errorf("%s: layer %d (%s) differs from the archive's", ref, j, l.MediaType)
					}
					if _, err := meta.GetLinkedBlob(f.kv, repo, l.Digest); err != nil {
						t.Errorf("%s: layer %d not linked: %v", ref, j, err)
					}
				}
			}
			// Config, l1, l2, l3 and the second config: 5 blobs; no session left.
			if blobs, sessions := f.leftovers(); blobs != 5 || sessions != 0 {
				t.Errorf("store holds %d blobs and %d sessions, want 5 and 0", blobs, sessions)
			}
		})
	}
}

func TestImportOCI(t *testing.T) {
	f := newImportFixture(t, ImportLimits{})
	shared := mkLayer(t, "base", "shared base")
	m1, b1 := ociImage(t, "amd64", shared, mkLayer(t, "x", "one"))
	m2, b2 := ociImage(t, "arm64", shared, mkLayer(t, "y", "two"))
	m3, b3 := ociImage(t, "amd64", mkLayer(t, "z", "three"))
	ib, _ := json.Marshal(map[string]any{"schemaVersion": 2, "mediaType": meta.MediaTypeOCIIndex, "manifests": []map[string]any{
		withPlatform(m1.desc(), "amd64"), withPlatform(m2.desc(), "arm64"),
	}})
	multi := ociBlob{meta.MediaTypeOCIIndex, ib}
	var entries []tarEntry
	seen := map[string]bool{}
	for _, b := range append(append(append(b1, b2...), b3...), m1, m2, m3, multi) {
		if e := b.entry(); !seen[e.name] {
			seen[e.name] = true
			entries = append(entries, e)
		}
	}
	// Docker 25 writes one index.json entry per name; skopeo a ref name.
	entries = append(entries,
		tarEntry{name: "oci-layout", body: []byte(`{"imageLayoutVersion":"1.0.0"}`)},
		tarEntry{name: "index.json", body: ociIndexJSON(
			withAnnotations(multi.desc(), annotationContainerName, "docker.io/acme/multi:2.0", annotationRefName, "2.0"),
			withAnnotations(m3.desc(), annotationContainerName, "docker.io/acme/single:1"),
			withAnnotations(m3.desc(), annotationContainerName, "docker.io/acme/single:latest"),
		)})
	for _, zip := range []bool{false, true} {
		arch := mkTar(t, entries)
		if zip {
			arch = gz(t, arch)
		}
		res := decodeImport(t, f.post("p1pub", "", basicAuth("dev", "dev-pw"), bytes.NewReader(arch)))
		var got []string
		for _, im := range res.Images {
			got = append(got, im.Repository+":"+im.Tag+"@"+string(im.Digest))
		}
		want := []string{
			"p1pub/acme/multi:2.0@" + string(meta.DigestOf("sha256", multi.data)),
			"p1pub/acme/single:1@" + string(meta.DigestOf("sha256", m3.data)),
			"p1pub/acme/single:latest@" + string(meta.DigestOf("sha256", m3.data)),
		}
		if strings.Join(got, " ") != strings.Join(want, " ") {
			t.Fatalf("images\n%v, want\n%v", got, want)
		}
		if len(res.Images[0].Manifests) != 2 || res.Images[0].Manifests[1].Platform.Architecture != "arm64" {
			t.Errorf("index result: %+v", res.Images[0].Manifests)
		}
		// The index's children are stored (untagged) and its bytes are the archive's.
		content, _ := f.tagged("p1pub/acme/multi", "2.0")
		if !bytes.Equal(content, multi.data) {
			t.Errorf("index bytes differ from the archive's")
		}
		for _, m := range []ociBlob{m1, m2} {
			if _, c, err := meta.GetManifest(f.kv, "p1pub/acme/multi", meta.DigestOf("sha256", m.data)); err != nil || !bytes.Equal(c, m.data) {
				t.Errorf("child manifest: %v", err)
			}
		}
		for _, b := range append(b1, b2...) {
			if !bytes.Equal(f.blobBytes(meta.DigestOf("sha256", b.data)), b.data) {
				t.Errorf("blob differs")
			}
		}
		if _, sessions := f.leftovers(); sessions != 0 {
			t.Errorf("%d upload sessions left", sessions)
		}
	}

	// Bare ref names need a repository.
	arch := mkTar(t, append(append([]tarEntry{}, entries[:len(entries)-1]...),
		tarEntry{name: "index.json", body: ociIndexJSON(withAnnotations(m3.desc(), annotationRefName, "v9"))}))
	if w := f.post("p1pub", "", adminAuth, bytes.NewReader(arch)); w.Code != 400 || !strings.Contains(w.Body.String(), "only by the tag") {
		t.Errorf("ref name without repository: %d %s", w.Code, w.Body)
	}
	res := decodeImport(t, f.post("p1pub", "repository=mirror/single", adminAuth, bytes.NewReader(arch)))
	if len(res.Images) != 1 || res.Images[0].Repository != "p1pub/mirror/single" || res.Images[0].Tag != "v9" {
		t.Errorf("with ?repository=: %+v", res.Images)
	}
}

func withPlatform(desc map[string]any, arch string) map[string]any {
	desc["platform"] = map[string]string{"os": "linux", "architecture": arch}
	return desc
}

func TestImportOverrides(t *testing.T) {
	f := newImportFixture(t, ImportLimits{})
	one := mkTar(t, legacyEntries([]legacyImage{{tags: []string{"app:v1"}, layers: [][]byte{mkLayer(t, "a", "1")}}}, true))
	two := mkTar(t, legacyEntries([]legacyImage{
		{tags: []string{"app:v1"}, layers: [][]byte{mkLayer(t, "a", "1")}},
		{tags: []string{"tool:v2"}, layers: [][]byte{mkLayer(t, "b", "2")}},
	}, true))
	untagged := mkTar(t, legacyEntries([]legacyImage{{layers: [][]byte{mkLayer(t, "c", "3")}}}, true))
	for _, tc := range []struct {
		q    string
		body []byte
		want string // "repo:tag ..." or "!<status> <text>"
	}{
		{"repository=x/y&tag=t1", one, "p1priv/x/y:t1"},
		{"tag=t2", one, "p1priv/app:t2"},
		{"repository=z", two, "p1priv/z:v1 p1priv/z:v2"},
		{"tag=t3", two, "!400 ?tag= names one tag"},
		{"repository=z", untagged, "p1priv/z:latest"},
		{"", untagged, "!400 has no name in the archive"},
		{"repository=Bad", one, "!400 invalid repository name"},
		{"tag=.bad", one, "!400 invalid tag"},
	} {
		w := f.post("p1priv", tc.q, adminAuth, bytes.NewReader(tc.body))
		if status, text, ok := strings.Cut(tc.want, " "); ok && strings.HasPrefix(status, "!") {
			if fmt.Sprint(w.Code) != status[1:] || !strings.Contains(w.Body.String(), text) {
				t.Errorf("%s: %d %s, want %s", tc.q, w.Code, w.Body, tc.want)
			}
			continue
		}
		res := decodeImport(t, w)
		var got []string
		for _, im := range res.Images {
			got = append(got, im.Repository+":"+im.Tag)
		}
		if strings.Join(got, " ") != tc.want {
			t.Errorf("%s: %v, want %s", tc.q, got, tc.want)
		}
	}
}

// An existing tag moves to the imported image; the old manifest stays.
func TestImportOverwritesTag(t *testing.T) {
	f := newImportFixture(t, ImportLimits{})
	first := decodeImport(t, f.post("p1priv", "", adminAuth, bytes.NewReader(mkTar(t,
		legacyEntries([]legacyImage{{tags: []string{"app:v1"}, layers: [][]byte{mkLayer(t, "a", "old")}}}, true)))))
	second := decodeImport(t, f.post("p1priv", "", adminAuth, bytes.NewReader(mkTar(t,
		legacyEntries([]legacyImage{{tags: []string{"app:v1"}, layers: [][]byte{mkLayer(t, "a", "new")}}}, true)))))
	if first.Images[0].Digest == second.Images[0].Digest {
		t.Fatal("two different images got one digest")
	}
	if tg, err := meta.GetTag(f.kv, "p1priv/app", "v1"); err != nil || tg.Digest != second.Images[0].Digest {
		t.Errorf("tag: %v %v, want %s", tg, err, second.Images[0].Digest)
	}
	if _, _, err := meta.GetManifest(f.kv, "p1priv/app", first.Images[0].Digest); err != nil {
		t.Errorf("the previous manifest: %v", err)
	}
}

func TestImportAccess(t *testing.T) {
	f := newImportFixture(t, ImportLimits{})
	arch := mkTar(t, legacyEntries([]legacyImage{{tags: []string{"app:v1"}, layers: [][]byte{mkLayer(t, "a", "1")}}}, true))
	for _, tc := range []struct {
		ws, auth string
		want     int
	}{
		{"p1priv", "", http.StatusUnauthorized},
		{"p1priv", basicAuth("bob", "bob-pw"), http.StatusNotFound}, // another project's private workspace
		{"p1pub", basicAuth("bob", "bob-pw"), http.StatusForbidden}, // public: seen, not writable
		{"p1priv", basicAuth("guest", "guest-pw"), http.StatusForbidden},
		{"p1priv", basicAuth("robot$p1+ro", "ro-secret"), http.StatusForbidden},
		{"nosuch", adminAuth, http.StatusNotFound},
		{"p1priv", basicAuth("robot$p1+ci", "ci-secret"), http.StatusCreated},
		{"p1priv", basicAuth("alice", "alice-pw"), http.StatusCreated},
	} {
		w := f.post(tc.ws, "", tc.auth, bytes.NewReader(arch))
		if w.Code != tc.want {
			t.Errorf("%s as %q: %d %s, want %d", tc.ws, tc.auth, w.Code, w.Body, tc.want)
		}
	}
	if blobs, sessions := f.leftovers(); blobs != 2 || sessions != 0 {
		t.Errorf("store: %d blobs, %d sessions; want 2, 0", blobs, sessions)
	}
}

// failingReader returns the archive's first n bytes, then an error: a client
// that disconnects half way.
type failingReader struct {
	r io.Reader
	n int
}

func (f *failingReader) Read(p []byte) (int, error) {
	if f.n <= 0 {
		return 0, errors.New("connection reset by peer")
	}
	if len(p) > f.n {
		p = p[:f.n]
	}
	n, err := f.r.Read(p)
	f.n -= n
	return n, err
}

func TestImportRefused(t *testing.T) {
	layer := mkLayer(t, "a.txt", "content")
	good := legacyEntries([]legacyImage{{tags: []string{"app:v1"}, layers: [][]byte{layer}}}, true)
	// with returns good with the entries of fix replaced or added.
	with := func(fix func([]tarEntry) []tarEntry) []byte {
		return mkTar(t, fix(append([]tarEntry{}, good...)))
	}
	set := func(es []tarEntry, name string, e tarEntry) []tarEntry {
		for i := range es {
			if es[i].name == name {
				es[i] = e
				return es
			}
		}
		return append(es, e)
	}
	var layerName, cfgName string
	for _, e := range good {
		if strings.HasSuffix(e.name, "/layer.tar") {
			layerName = e.name
		}
		if strings.HasSuffix(e.name, ".json") && e.name != "manifest.json" {
			cfgName = e.name
		}
	}
	manifestJSON := func(config string, tags []string, layers ...string) tarEntry {
		b, _ := json.Marshal([]map[string]any{{"Config": config, "RepoTags": tags, "Layers": layers}})
		return tarEntry{name: "manifest.json", body: b}
	}
	m, blobs := ociImage(t, "amd64", layer)
	ociGood := []tarEntry{{name: "oci-layout", body: []byte(`{"imageLayoutVersion":"1.0.0"}`)}}
	for _, b := range append(blobs, m) {
		ociGood = append(ociGood, b.entry())
	}
	ociWith := func(index []byte, more ...tarEntry) []byte {
		return mkTar(t, append(append(append([]tarEntry{}, ociGood...), more...), tarEntry{name: "index.json", body: index}))
	}
	named := withAnnotations(m.desc(), annotationContainerName, "app:v1")
	full := mkTar(t, good)
	gzFull := gz(t, full)
	corruptGz := bytes.Clone(gzFull)
	corruptGz[len(corruptGz)-6] ^= 0xff // the CRC-32 of the trailer

	for _, tc := range []struct {
		name   string
		body   io.Reader
		q      string
		status int
		text   string
	}{
		{"dot-dot path", bytes.NewReader(with(func(es []tarEntry) []tarEntry {
			return append(es, tarEntry{name: "../evil", body: []byte("x")})
		})), "", 400, "leaves the archive"},
		{"dot-dot inside a path", bytes.NewReader(with(func(es []tarEntry) []tarEntry {
			return append(es, tarEntry{name: "a/../../evil", body: []byte("x")})
		})), "", 400, "leaves the archive"},
		{"absolute path", bytes.NewReader(with(func(es []tarEntry) []tarEntry {
			return append(es, tarEntry{name: "/etc/evil", body: []byte("x")})
		})), "", 400, "absolute path"},
		{"symlink out", bytes.NewReader(with(func(es []tarEntry) []tarEntry {
			return append(es, tarEntry{name: "x/link", typ: tar.TypeSymlink, link: "../../etc/passwd"})
		})), "", 400, "points outside"},
		{"absolute symlink", bytes.NewReader(with(func(es []tarEntry) []tarEntry {
			return append(es, tarEntry{name: "link", typ: tar.TypeSymlink, link: "/etc/passwd"})
		})), "", 400, "points outside"},
		{"hard link out", bytes.NewReader(with(func(es []tarEntry) []tarEntry {
			return append(es, tarEntry{name: "link", typ: tar.TypeLink, link: "../etc/passwd"})
		})), "", 400, "points outside"},
		{"path through a symlink", bytes.NewReader(with(func(es []tarEntry) []tarEntry {
			return append(es, tarEntry{name: "d", typ: tar.TypeSymlink, link: filepath.Dir(layerName)},
				tarEntry{name: "d/layer2.tar", body: []byte("x")})
		})), "", 400, "paths through links"},
		{"symlink aliasing a named file", bytes.NewReader(with(func(es []tarEntry) []tarEntry {
			return append(es, tarEntry{name: layerName, typ: tar.TypeSymlink, link: "../" + cfgName})
		})), "", 400, "appears twice"},
		{"symlink loop", bytes.NewReader(with(func(es []tarEntry) []tarEntry {
			return append(es, tarEntry{name: "l1", typ: tar.TypeSymlink, link: "l2"}, tarEntry{name: "l2", typ: tar.TypeSymlink, link: "l1"})
		})), "", 400, "loop"},
		{"dangling link", bytes.NewReader(with(func(es []tarEntry) []tarEntry {
			return append(es, tarEntry{name: "l1", typ: tar.TypeLink, link: "nowhere"})
		})), "", 400, "not in the archive"},
		{"char device", bytes.NewReader(with(func(es []tarEntry) []tarEntry {
			return append(es, tarEntry{name: "dev/null", typ: tar.TypeChar})
		})), "", 400, "device file"},
		{"block device", bytes.NewReader(with(func(es []tarEntry) []tarEntry {
			return append(es, tarEntry{name: "sda", typ: tar.TypeBlock})
		})), "", 400, "device file"},
		{"fifo", bytes.NewReader(with(func(es []tarEntry) []tarEntry {
			return append(es, tarEntry{name: "pipe", typ: tar.TypeFifo})
		})), "", 400, "named pipe"},
		{"manifest.json names a missing layer", bytes.NewReader(with(func(es []tarEntry) []tarEntry {
			return set(es, "manifest.json", manifestJSON(cfgName, []string{"app:v1"}, "nope/layer.tar"))
		})), "", 400, "names nope/layer.tar, which is not in the archive"},
		{"manifest.json names a missing config", bytes.NewReader(with(func(es []tarEntry) []tarEntry {
			return set(es, "manifest.json", manifestJSON("nope.json", []string{"app:v1"}, layerName))
		})), "", 400, "names nope.json, which is not in the archive"},
		{"manifest.json names a path outside", bytes.NewReader(with(func(es []tarEntry) []tarEntry {
			return set(es, "manifest.json", manifestJSON(cfgName, []string{"app:v1"}, "../"+layerName))
		})), "", 400, "not a path inside the archive"},
		{"diff_id mismatch", bytes.NewReader(with(func(es []tarEntry) []tarEntry {
			return set(es, layerName, tarEntry{name: layerName, body: mkLayer(t, "a.txt", "tampered")})
		})), "", 400, "rootfs.diff_ids[0]"},
		{"fewer diff_ids than layers", bytes.NewReader(with(func(es []tarEntry) []tarEntry {
			return set(es, "manifest.json", manifestJSON(cfgName, []string{"app:v1"}, layerName, layerName))
		})), "", 400, "lists 2 layers but its config's rootfs.diff_ids has 1"},
		{"config digest mismatch", bytes.NewReader(with(func(es []tarEntry) []tarEntry {
			c := legacyConfig([][]byte{layer})
			c = append(c[:len(c)-1], []byte(`,"x":1}`)...)
			return set(es, cfgName, tarEntry{name: cfgName, body: c})
		})), "", 400, "is named for"},
		{"tag in another workspace", bytes.NewReader(with(func(es []tarEntry) []tarEntry {
			return set(es, "manifest.json", manifestJSON(cfgName, []string{"registry.test/p2priv/app:v1"}, layerName))
		})), "", 400, "can only create tags in p1priv"},
		{"no metadata", bytes.NewReader(mkTar(t, []tarEntry{{name: layerName, body: layer}})), "", 400, "neither manifest.json"},
		{"empty manifest.json", bytes.NewReader(with(func(es []tarEntry) []tarEntry {
			return set(es, "manifest.json", tarEntry{name: "manifest.json", body: []byte("[]")})
		})), "", 400, "lists no images"},
		{"manifest.json not JSON", bytes.NewReader(with(func(es []tarEntry) []tarEntry {
			return set(es, "manifest.json", tarEntry{name: "manifest.json", body: []byte("[{")})
		})), "", 400, "manifest.json: malformed JSON"},
		{"two images, one tag", bytes.NewReader(mkTar(t, legacyEntries([]legacyImage{
			{tags: []string{"app:v1"}, layers: [][]byte{layer}}, {tags: []string{"app:v1"}, layers: [][]byte{mkLayer(t, "b", "b")}},
		}, true))), "", 400, "would both be tagged p1priv/app:v1"},
		{"duplicate entry", bytes.NewReader(with(func(es []tarEntry) []tarEntry {
			return append(es, tarEntry{name: "./" + layerName, body: layer})
		})), "", 400, "appears twice"},
		{"truncated between entries", bytes.NewReader(full[:len(full)/2]), "", 400, "cut short"},
		{"truncated in an entry", bytes.NewReader(full[:len(full)/2+700]), "", 400, "cut short"},
		{"truncated gzip", bytes.NewReader(gzFull[:len(gzFull)/2]), "", 400, "cut short"},
		{"corrupt gzip", bytes.NewReader(corruptGz), "", 400, "gzip"},
		{"zstd", bytes.NewReader([]byte{0x28, 0xb5, 0x2f, 0xfd, 0, 0, 0}), "", 400, "zstd"},
		{"not a tar", strings.NewReader(strings.Repeat("hello world ", 100)), "", 400, "not a valid tar"},
		{"empty body", strings.NewReader(""), "", 400, "empty"},
		{"client disconnects", &failingReader{r: bytes.NewReader(full), n: len(full) - 3000}, "", 400, "disconnect"},
		{"client disconnects (gzip)", &failingReader{r: bytes.NewReader(gzFull), n: len(gzFull) / 2}, "", 400, "disconnect"},
		{"OCI blob digest mismatch", bytes.NewReader(ociWith(ociIndexJSON(named),
			tarEntry{name: "blobs/sha256/" + strings.Repeat("ab", 32), body: []byte("not this")})), "", 400, "does not match its name"},
		{"OCI large blob digest mismatch", bytes.NewReader(ociWith(ociIndexJSON(named),
			tarEntry{name: "blobs/sha256/" + strings.Repeat("cd", 32), body: bytes.Repeat([]byte{1}, 5<<20)})), "", 400, "does not match its name"},
		{"index.json names a missing manifest", bytes.NewReader(ociWith(ociIndexJSON(withAnnotations(
			map[string]any{"mediaType": meta.MediaTypeOCIManifest, "digest": "sha256:" + strings.Repeat("ef", 32), "size": 10},
			annotationContainerName, "app:v1")))), "", 400, "which is not in the archive"},
		{"index.json names a missing layer", bytes.NewReader(mkTar(t, append(append([]tarEntry{}, ociGood[:2]...), m.entry(),
			tarEntry{name: "index.json", body: ociIndexJSON(named)}))), "", 400, "layers[0] names blobs/sha256/"},
		{"index.json size mismatch", bytes.NewReader(ociWith(ociIndexJSON(withAnnotations(
			map[string]any{"mediaType": meta.MediaTypeOCIManifest, "digest": meta.DigestOf("sha256", m.data), "size": len(m.data) + 1},
			annotationContainerName, "app:v1")))), "", 400, "size of"},
		{"index.json empty", bytes.NewReader(ociWith([]byte(`{"schemaVersion":2,"manifests":[]}`))), "", 400, "lists no images"},
		{"OCI tag in another workspace", bytes.NewReader(ociWith(ociIndexJSON(withAnnotations(m.desc(),
			annotationContainerName, "registry.test/p2pub/app:v1")))), "", 400, "can only create tags in p1priv"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newImportFixture(t, ImportLimits{})
			w := f.post("p1priv", tc.q, adminAuth, tc.body)
			if w.Code != tc.status || !strings.Contains(w.Body.String(), tc.text) {
				t.Errorf("%d %s, want %d with %q", w.Code, w.Body, tc.status, tc.text)
			}
			f.noTrace(t)
		})
	}
}

// noTrace checks that a refused import left nothing: no repository, tag,
// manifest or blob record besides the fixture's, no blob file, no session.
func (f *importFixture) noTrace(t *testing.T) {
	t.Helper()
	repos, _, err := meta.ListRepositories(f.kv, "", 100)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"p1priv/app", "p1pub/app", "p2priv/app", "p2pub/app"}; strings.Join(repos, " ") != strings.Join(want, " ") {
		t.Errorf("repositories %v, want the fixture's %v", repos, want)
	}
	for _, r := range repos {
		if tags, _, err := meta.ListTags(f.kv, r, "", 100); err != nil || len(tags) != 0 {
			t.Errorf("%s has tags %v (%v)", r, tags, err)
		}
	}
	n := 0
	if err := meta.ScanBlobs(f.kv, "", func(*meta.Blob) error { n++; return nil }); err != nil {
		t.Fatal(err)
	}
	if n != len(fixtureWorkspaces) {
		t.Errorf("%d blobs recorded, want the fixture's %d", n, len(fixtureWorkspaces))
	}
	if blobs, sessions := f.leftovers(); blobs != 0 || sessions != 0 {
		t.Errorf("store holds %d blob files and %d sessions, want none", blobs, sessions)
	}
}

func TestImportLimits(t *testing.T) {
	layer := mkLayer(t, "a.txt", strings.Repeat("x", 20000))
	arch := mkTar(t, legacyEntries([]legacyImage{{tags: []string{"app:v1"}, layers: [][]byte{layer}}}, true))

	t.Run("entries", func(t *testing.T) {
		f := newImportFixture(t, ImportLimits{MaxEntries: 3})
		if w := f.post("p1priv", "", adminAuth, bytes.NewReader(arch)); w.Code != 400 || !strings.Contains(w.Body.String(), "more than 3 entries") {
			t.Errorf("%d %s", w.Code, w.Body)
		}
		f.noTrace(t)
	})
	t.Run("decompressed size", func(t *testing.T) {
		f := newImportFixture(t, ImportLimits{MaxBytes: 16 << 10})
		if w := f.post("p1priv", "", adminAuth, bytes.NewReader(gz(t, arch))); w.Code != 413 || !strings.Contains(w.Body.String(), "uncompressed") {
			t.Errorf("%d %s", w.Code, w.Body)
		}
		f.noTrace(t)
	})
	form := func(t *testing.T, fields ...string) (*bytes.Buffer, string) {
		var buf bytes.Buffer
		mw := multipart.NewWriter(&buf)
		for i := 0; i+1 < len(fields); i += 2 {
			_ = mw.WriteField(fields[i], fields[i+1])
		}
		fw, err := mw.CreateFormFile("file", "image.tar")
		if err != nil {
			t.Fatal(err)
		}
		fw.Write(arch)
		mw.Close()
		return &buf, mw.FormDataContentType()
	}
	t.Run("browser upload", func(t *testing.T) {
		f := newImportFixture(t, ImportLimits{MaxBrowserBytes: int64(len(arch)) + 4096})
		body, ct := form(t, "repository", "from/form", "tag", "t1")
		res := decodeImport(t, f.post("p1priv", "", adminAuth, body, "Content-Type", ct))
		if len(res.Images) != 1 || res.Images[0].Repository != "p1priv/from/form" || res.Images[0].Tag != "t1" {
			t.Errorf("form fields: %+v", res.Images)
		}
		// The raw body has no such limit.
		decodeImport(t, f.post("p1priv", "", adminAuth, bytes.NewReader(append(bytes.Clone(arch), make([]byte, 8192)...))))
	})
	t.Run("browser upload over the limit", func(t *testing.T) {
		f := newImportFixture(t, ImportLimits{MaxBrowserBytes: 8 << 10})
		body, ct := form(t)
		// With a Content-Length: refused before reading.
		r := httptest.NewRequest("POST", "/api/v1/workspaces/p1priv/import", &panicReader{})
		r.ContentLength = int64(body.Len())
		r.Header.Set("Content-Type", ct)
		r.Header.Set("Authorization", adminAuth)
		w := httptest.NewRecorder()
		f.s.ServeHTTP(w, r)
		if w.Code != 413 || !strings.Contains(w.Body.String(), "limit for uploads from the browser") {
			t.Errorf("with Content-Length: %d %s", w.Code, w.Body)
		}
		// Without one (chunked): refused once the count passes the limit.
		r = httptest.NewRequest("POST", "/api/v1/workspaces/p1priv/import", io.MultiReader(body))
		r.ContentLength = -1
		r.Header.Set("Content-Type", ct)
		r.Header.Set("Authorization", adminAuth)
		w = httptest.NewRecorder()
		f.s.ServeHTTP(w, r)
		if w.Code != 413 {
			t.Errorf("chunked: %d %s", w.Code, w.Body)
		}
		f.noTrace(t)
	})
	t.Run("content type", func(t *testing.T) {
		f := newImportFixture(t, ImportLimits{})
		if w := f.post("p1priv", "", adminAuth, bytes.NewReader(arch), "Content-Type", "application/json"); w.Code != 415 {
			t.Errorf("%d %s", w.Code, w.Body)
		}
		// gzip is recognised by its magic whatever the type says.
		decodeImport(t, f.post("p1priv", "", adminAuth, bytes.NewReader(gz(t, arch)), "Content-Type", "application/octet-stream"))
	})
}

// panicReader fails the test if the body is read.
type panicReader struct{}

func (*panicReader) Read([]byte) (int, error) { panic("the body was read") }

func TestImportProgressStream(t *testing.T) {
	f := newImportFixture(t, ImportLimits{})
	arch := mkTar(t, legacyEntries([]legacyImage{{tags: []string{"app:v1"}, layers: [][]byte{mkLayer(t, "a", "1")}}}, true))
	lines := func(w *httptest.ResponseRecorder) []map[string]any {
		t.Helper()
		if w.Code != 200 || w.Header().Get("Content-Type") != "application/x-ndjson" {
			t.Fatalf("%d %q", w.Code, w.Header().Get("Content-Type"))
		}
		var out []map[string]any
		sc := bufio.NewScanner(w.Body)
		for sc.Scan() {
			var m map[string]any
			if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
				t.Fatalf("line %q: %v", sc.Text(), err)
			}
			out = append(out, m)
		}
		return out
	}
	ls := lines(f.post("p1priv", "", adminAuth, bytes.NewReader(arch), "Accept", "application/x-ndjson"))
	var phases []string
	for _, l := range ls {
		phases = append(phases, l["phase"].(string))
	}
	got := strings.Join(phases, " ")
	if !strings.HasPrefix(got, "upload upload import") || !strings.HasSuffix(got, "import done") {
		t.Errorf("phases %q", got)
	}
	if up := ls[1]; up["bytes"].(float64) != float64(len(arch)) || up["total"].(float64) != float64(len(arch)) {
		t.Errorf("upload line %v, want %d bytes", up, len(arch))
	}
	last := ls[len(ls)-1]["result"].(map[string]any)["images"].([]any)[0].(map[string]any)
	if last["repository"] != "p1priv/app" || last["tag"] != "v1" {
		t.Errorf("result %v", last)
	}
	// A refusal after the stream began is its last line.
	ls = lines(f.post("p1priv", "", adminAuth, bytes.NewReader(arch[:len(arch)/2]), "Accept", "application/x-ndjson"))
	end := ls[len(ls)-1]
	if end["phase"] != "error" || end["status"].(float64) != 400 || !strings.Contains(end["error"].(map[string]any)["message"].(string), "cut short") {
		t.Errorf("error line %v", end)
	}
	// Refusals before reading keep their status.
	if w := f.post("p1priv", "", basicAuth("guest", "guest-pw"), bytes.NewReader(arch), "Accept", "application/x-ndjson"); w.Code != 403 {
		t.Errorf("guest: %d", w.Code)
	}
}

func TestSplitImageRef(t *testing.T) {
	o := importOptions{ws: "team", hosts: []string{"reg.example.com", "localhost:5000"}}
	for _, tc := range []struct{ ref, want string }{
		{"alpine:3.19", "team/alpine:3.19"},
		{"alpine", "team/alpine:latest"},
		{"docker.io/library/alpine:latest", "team/alpine:latest"},
		{"docker.io/acme/app:v1", "team/acme/app:v1"},
		{"ghcr.io/org/sub/app:v2", "team/org/sub/app:v2"},
		{"localhost/app:v1", "team/app:v1"},
		{"myhost:5000/app", "team/app:latest"},
		{"org/app@sha256:" + strings.Repeat("a", 64), "team/org/app:latest"},
		{"reg.example.com/team/app:v1", "team/app:v1"},
		{"REG.example.com/team/app:v1", "team/app:v1"},
		{"localhost:5000/team/x/y:z", "team/x/y:z"},
		{"reg.example.com/other/app:v1", "!workspace other"},
		{"reg.example.com/team:v1", "!not a repository"},
	} {
		host, p, tag, err := splitImageRef(tc.ref)
		got := ""
		if err == nil {
			var repo string
			repo, err = rerootRef(o, host, p, tc.ref)
			got = repo + ":" + tag
		}
		if err != nil {
			got = "!" + err.Error()
		}
		if strings.HasPrefix(tc.want, "!") && strings.Contains(got, tc.want[1:]) {
			continue
		}
		if got != tc.want {
			t.Errorf("%s: got %s, want %s", tc.ref, got, tc.want)
		}
	}
}

// The streaming rule: a layer reaches the store through one upload session,
// whatever the order of entries, and a repeated layer is stored once.
func TestImportStreamsOnce(t *testing.T) {
	f := newImportFixture(t, ImportLimits{})
	big := mkLayer(t, "big.bin", strings.Repeat("0123456789abcdef", 512<<10)) // 8 MiB: streamed
	var opened []string
	f.s.blobs = countingBlobs{Blobs: f.s.blobs, opened: &opened}
	arch := mkTar(t, legacyEntries([]legacyImage{
		{tags: []string{"a:1"}, layers: [][]byte{big}},
		{tags: []string{"b:1"}, layers: [][]byte{big}},
	}, true))
	res := decodeImport(t, f.post("p1priv", "", adminAuth, bytes.NewReader(arch)))
	if len(res.Images) != 2 || res.Images[0].Layers[0].Digest != res.Images[1].Layers[0].Digest {
		t.Fatalf("%+v", res.Images)
	}
	if len(opened) != 1 {
		t.Errorf("%d upload sessions opened, want 1 (the layer; configs are held)", len(opened))
	}
	if !bytes.Equal(f.blobBytes(res.Images[0].Layers[0].Digest), big) {
		t.Error("layer differs")
	}
}

type countingBlobs struct {
	Blobs
	opened *[]string
}

func (c countingBlobs) NewUpload(id string, algs ...digest.Algorithm) (Upload, error) {
	*c.opened = append(*c.opened, id)
	return c.Blobs.NewUpload(id, algs...)
}

// OCI layouts may name blobs by sha512; such a blob is hashed with sha512 as it
// streams and stored under that digest.
func TestImportSHA512Blob(t *testing.T) {
	f := newImportFixture(t, ImportLimits{})
	layer := make([]byte, 4*importSmallMax) // large enough to be streamed
	_, _ = rand.NewChaCha8([32]byte{5}).Read(layer)
	ld := meta.DigestOf("sha512", layer)
	cfg := []byte(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}`)
	cd := meta.DigestOf("sha256", cfg)
	mb, _ := json.Marshal(map[string]any{"schemaVersion": 2, "mediaType": meta.MediaTypeOCIManifest,
		"config": map[string]any{"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": len(cfg)},
		"layers": []map[string]any{{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": ld, "size": len(layer)}}})
	m := ociBlob{meta.MediaTypeOCIManifest, mb}
	arch := mkTar(t, []tarEntry{
		{name: "blobs/sha512/" + strings.TrimPrefix(string(ld), "sha512:"), body: layer},
		{name: "blobs/sha256/" + hexOf(cd), body: cfg},
		m.entry(),
		{name: "index.json", body: ociIndexJSON(withAnnotations(m.desc(), annotationRefName, "app:v1"))},
	})
	res := decodeImport(t, f.post("p1priv", "", adminAuth, bytes.NewReader(arch)))
	if len(res.Images) != 1 || res.Images[0].Layers[0].Digest != ld {
		t.Fatalf("%+v", res.Images)
	}
	if !bytes.Equal(f.blobBytes(ld), layer) {
		t.Error("sha512 layer differs")
	}
	// A wrong sha512 name is refused.
	bad := mkTar(t, []tarEntry{{name: "blobs/sha512/" + strings.Repeat("ab", 64), body: layer}})
	if w := f.post("p1priv", "", adminAuth, bytes.NewReader(bad)); w.Code != 400 || !strings.Contains(w.Body.String(), "does not match its name") {
		t.Errorf("%d %s", w.Code, w.Body)
	}
}

// Uploads that cannot tell their digest are hashed by the importer.
func TestImportWithoutUploadDigest(t *testing.T) {
	f := newImportFixture(t, ImportLimits{})
	f.s.blobs = plainUploads{f.s.blobs}
	big := mkLayer(t, "big.bin", strings.Repeat("z", 1<<20))
	res := decodeImport(t, f.post("p1priv", "", adminAuth, bytes.NewReader(mkTar(t,
		legacyEntries([]legacyImage{{tags: []string{"app:v1"}, layers: [][]byte{big}}}, false)))))
	if d := res.Images[0].Layers[0].Digest; d != meta.DigestOf("sha256", big) || !bytes.Equal(f.blobBytes(d), big) {
		t.Errorf("layer %s", d)
	}
}

// plainUploads hides the uploads' Digest method.
type plainUploads struct{ Blobs }

type plainUpload struct{ Upload }

func (p plainUploads) NewUpload(id string, algs ...digest.Algorithm) (Upload, error) {
	u, err := p.Blobs.NewUpload(id, algs...)
	if err != nil {
		return nil, err
	}
	return plainUpload{u}, nil
}
