package node

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/berth-registry/berth/meta"
)

// startNode runs a real node (Pebble, Raft, blob store, HTTP) on a free loopback
// port in dir and stops it when the test ends.
func startNode(t *testing.T, dir string) (*Node, string) {
	t.Helper()
	return startNodeLogged(t, dir, nil)
}

// startNodeLogged is startNode logging to logger (nil: discarded).
func startNodeLogged(t *testing.T, dir string, logger *slog.Logger) (*Node, string) {
	t.Helper()
	cfg := Defaults()
	cfg.DataDir = dir
	cfg.Listen = "127.0.0.1:0"
	cfg.AdminPassword = testAdminPassword
	n, err := New(cfg, logger)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := n.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := n.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	// Workspaces the tests push into, owned by the bootstrap project.
	for _, ws := range []string{"a", "b"} {
		err := n.Propose(ctx, &meta.PutWorkspace{Name: ws, Project: "default", Visibility: meta.Private, Create: true, Time: time.Now()})
		if err != nil && !errors.Is(err, meta.ErrExists) {
			t.Fatal(err)
		}
	}
	return n, "http://" + n.Addr()
}

// testAdminPassword is the bootstrap admin's password in these tests; do sends
// it as Basic credentials, which /v2/ accepts besides tokens.
const testAdminPassword = "test-admin-password"

func sha(b []byte) string {
	h := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(h[:])
}

type resp struct {
	status int
	header http.Header
	body   []byte
}

func do(t *testing.T, method, url string, body []byte, hdr ...string) resp {
	t.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth("admin", testAdminPassword)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	r, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Body.Close()
	b, _ := io.ReadAll(r.Body)
	return resp{r.StatusCode, r.Header, b}
}

func (r resp) code() string {
	var e struct {
		Errors []struct{ Code string }
	}
	if json.Unmarshal(r.body, &e) != nil || len(e.Errors) == 0 {
		return ""
	}
	return e.Errors[0].Code
}

func pushBlob(t *testing.T, base, repo string, content []byte) string {
	t.Helper()
	d := sha(content)
	r := do(t, "POST", base+"/v2/"+repo+"/blobs/uploads/?digest="+d, content)
	if r.status != http.StatusCreated {
		t.Fatalf("push blob: status %d %s", r.status, r.body)
	}
	return d
}

func imageManifest(cfg, layer string, cfgSize, layerSize int) []byte {
	return []byte(fmt.Sprintf(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",`+
		`"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":%q,"size":%d},`+
		`"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":%q,"size":%d}]}`,
		cfg, cfgSize, layer, layerSize))
}

const ociManifest = "application/vnd.oci.image.manifest.v1+json"

func TestPushPullAndRestart(t *testing.T) {
	dir := t.TempDir()
	n, base := startNode(t, dir)
	cfg, layer := []byte(`{"architecture":"amd64"}`), bytes.Repeat([]byte("layer"), 1000)
	cd, ld := pushBlob(t, base, "library/app", cfg), pushBlob(t, base, "library/app", layer)
	m := imageManifest(cd, ld, len(cfg), len(layer))
	r := do(t, "PUT", base+"/v2/library/app/manifests/1.0", m, "Content-Type", ociManifest)
	if r.status != http.StatusCreated || r.header.Get("Docker-Content-Digest") != sha(m) {
		t.Fatalf("put manifest: %d %s %v", r.status, r.body, r.header)
	}
	check := func(base string) {
		t.Helper()
		r := do(t, "GET", base+"/v2/library/app/manifests/1.0", nil)
		if r.status != 200 || !bytes.Equal(r.body, m) || r.header.Get("Content-Type") != ociManifest {
			t.Fatalf("get manifest: %d %q", r.status, r.header.Get("Content-Type"))
		}
		r = do(t, "GET", base+"/v2/library/app/blobs/"+ld, nil)
		if r.status != 200 || !bytes.Equal(r.body, layer) {
			t.Fatalf("get blob: %d", r.status)
		}
		r = do(t, "GET", base+"/v2/library/app/blobs/"+ld, nil, "Range", "bytes=5-9")
		if r.status != http.StatusPartialContent || string(r.body) != "layer" {
			t.Fatalf("range: %d %q", r.status, r.body)
		}
		r = do(t, "GET", base+"/v2/library/app/blobs/"+ld, nil, "Range", "bytes=999999-")
		if r.status != http.StatusRequestedRangeNotSatisfiable {
			t.Fatalf("unsatisfiable range: got %d, want 416", r.status)
		}
	}
	check(base)

	// After a clean stop, a node on the same data directory serves the same bytes
	// and takes new pushes.
	if err := n.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	_, base = startNode(t, dir)
	check(base)
	pushBlob(t, base, "library/app", []byte("after restart"))
}

func TestBadInputChangesNothing(t *testing.T) {
	dir := t.TempDir()
	_, base := startNode(t, dir)
	cfg := []byte(`{}`)
	cd := pushBlob(t, base, "a/app", cfg)
	missing := sha([]byte("never pushed"))
	big := bytes.Repeat([]byte(" "), 4<<20+1)
	for _, tc := range []struct {
		name, method, path string
		body               []byte
		hdr                []string
		status             int
		code               string
	}{
		{"upper-case name", "GET", "/v2/A/app/tags/list", nil, nil, 400, "NAME_INVALID"},
		{"dot-dot name", "GET", "/v2/a/../b/tags/list", nil, nil, 400, "NAME_INVALID"},
		{"double slash", "GET", "/v2/a//b/tags/list", nil, nil, 400, "NAME_INVALID"},
		{"leading underscore", "GET", "/v2/_a/b/tags/list", nil, nil, 400, "NAME_INVALID"},
		{"long name", "GET", "/v2/" + strings.Repeat("a", 256) + "/tags/list", nil, nil, 400, "NAME_INVALID"},
		{"bad digest", "GET", "/v2/a/app/blobs/sha256:xyz", nil, nil, 400, "DIGEST_INVALID"},
		{"unsupported digest", "GET", "/v2/a/app/blobs/md5:d41d8cd98f00b204e9800998ecf8427e", nil, nil, 400, "DIGEST_INVALID"},
		{"digest mismatch", "POST", "/v2/a/app/blobs/uploads/?digest=" + missing, []byte("other bytes"), nil, 400, "DIGEST_INVALID"},
		{"manifest names unknown blob", "PUT", "/v2/a/app/manifests/v1", imageManifest(cd, missing, 2, 12), []string{"Content-Type", ociManifest}, 400, "MANIFEST_BLOB_UNKNOWN"},
		{"malformed json", "PUT", "/v2/a/app/manifests/v1", []byte(`{"schemaVersion":2,`), []string{"Content-Type", ociManifest}, 400, "MANIFEST_INVALID"},
		{"manifest too large", "PUT", "/v2/a/app/manifests/v1", big, []string{"Content-Type", ociManifest}, 413, "SIZE_INVALID"},
		{"content type contradicts body", "PUT", "/v2/a/app/manifests/v1", imageManifest(cd, cd, 2, 2), []string{"Content-Type", "application/vnd.oci.image.index.v1+json"}, 400, "MANIFEST_INVALID"},
		{"schema 1", "PUT", "/v2/a/app/manifests/v1", []byte(`{"schemaVersion":1,"name":"a/app","tag":"v1","fsLayers":[]}`), []string{"Content-Type", "application/vnd.docker.distribution.manifest.v1+prettyjws"}, 400, "MANIFEST_INVALID"},
		{"manifest digest mismatch", "PUT", "/v2/a/app/manifests/" + missing, imageManifest(cd, cd, 2, 2), []string{"Content-Type", ociManifest}, 400, "DIGEST_INVALID"},
		{"unknown upload", "PATCH", "/v2/a/app/blobs/uploads/node1.00000000000000000000000000000000.00000000", []byte("x"), nil, 404, "BLOB_UPLOAD_UNKNOWN"},
		{"traversal upload id", "PATCH", "/v2/a/app/blobs/uploads/..%2F..%2Fetc", []byte("x"), nil, 404, "NOT_FOUND"},
		{"blob of another repo", "GET", "/v2/b/other/blobs/" + cd, nil, nil, 404, "BLOB_UNKNOWN"},
		{"unknown manifest", "GET", "/v2/a/app/manifests/nope", nil, nil, 404, "MANIFEST_UNKNOWN"},
		{"unknown repo tags", "GET", "/v2/no/such/tags/list", nil, nil, 404, "NAME_UNKNOWN"},
		{"bad n", "GET", "/v2/a/app/tags/list?n=-1", nil, nil, 400, "PAGINATION_NUMBER_INVALID"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := do(t, tc.method, base+tc.path, tc.body, tc.hdr...)
			if r.status != tc.status || r.code() != tc.code {
				t.Errorf("got %d %s (%s), want %d %s", r.status, r.code(), r.body, tc.status, tc.code)
			}
		})
	}
	// Nothing was left behind: no tag, no other repository, no upload files.
	r := do(t, "GET", base+"/v2/_catalog", nil)
	if got, want := strings.TrimSpace(string(r.body)), `{"repositories":["a/app"]}`; got != want {
		t.Errorf("catalog: got %s, want %s", got, want)
	}
	r = do(t, "GET", base+"/v2/a/app/tags/list", nil)
	if got, want := strings.TrimSpace(string(r.body)), `{"name":"a/app","tags":[]}`; got != want {
		t.Errorf("tags: got %s, want %s", got, want)
	}
	entries, _ := os.ReadDir(filepath.Join(dir, "uploads"))
	if len(entries) != 0 {
		t.Errorf("upload files left behind: %d", len(entries))
	}
}

func TestChunkedUpload(t *testing.T) {
	_, base := startNode(t, t.TempDir())
	data := bytes.Repeat([]byte("0123456789"), 10000)
	r := do(t, "POST", base+"/v2/a/app/blobs/uploads/", nil)
	if r.status != http.StatusAccepted {
		t.Fatalf("start: %d %s", r.status, r.body)
	}
	loc := r.header.Get("Location")
	for off := 0; off < len(data); off += 30000 {
		end := min(off+30000, len(data))
		r = do(t, "PATCH", base+loc, data[off:end], "Content-Range", fmt.Sprintf("%d-%d", off, end-1))
		if r.status != http.StatusAccepted {
			t.Fatalf("patch at %d: %d %s", off, r.status, r.body)
		}
		if got, want := r.header.Get("Range"), fmt.Sprintf("0-%d", end-1); got != want {
			t.Fatalf("range: got %s, want %s", got, want)
		}
		loc = r.header.Get("Location")
		if off == 0 {
			// An out-of-order chunk is refused with 416 and changes nothing.
			r = do(t, "PATCH", base+loc, data[:10], "Content-Range", "0-9")
			if r.status != http.StatusRequestedRangeNotSatisfiable {
				t.Fatalf("out of order: got %d, want 416", r.status)
			}
			r = do(t, "GET", base+loc, nil)
			if r.status != http.StatusNoContent || r.header.Get("Range") != "0-29999" {
				t.Fatalf("status: %d %s", r.status, r.header.Get("Range"))
			}
		}
	}
	sep := "?"
	if strings.Contains(loc, "?") {
		sep = "&"
	}
	r = do(t, "PUT", base+loc+sep+"digest="+sha(data), nil)
	if r.status != http.StatusCreated {
		t.Fatalf("finish: %d %s", r.status, r.body)
	}
	r = do(t, "GET", base+"/v2/a/app/blobs/"+sha(data), nil)
	if !bytes.Equal(r.body, data) {
		t.Fatalf("pulled %d bytes, want the %d pushed", len(r.body), len(data))
	}
	// A session is only usable through the repository that opened it.
	r = do(t, "POST", base+"/v2/a/app/blobs/uploads/", nil)
	other := strings.Replace(r.header.Get("Location"), "/v2/a/app/", "/v2/b/app/", 1)
	if r = do(t, "GET", base+other, nil); r.status != 404 || r.code() != "BLOB_UPLOAD_UNKNOWN" {
		t.Errorf("session through another repo: got %d %s", r.status, r.code())
	}
}
