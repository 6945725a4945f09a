package node

import (
	"archive/tar"
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// The archive import end to end on a real node: archives written by the
// project's mk-docker-archive.sh, by skopeo (docker-archive and oci-archive),
// pulled back with crane and skopeo and compared with the archive; refusals that
// leave no trace; a large archive with the node's heap watched; the browser
// upload limit.

type importAnswer struct {
	Images []struct {
		Repository string `json:"repository"`
		Tag        string `json:"tag"`
		Digest     string `json:"digest"`
		MediaType  string `json:"mediaType"`
		Config     string `json:"config"`
		Layers     []struct {
			Digest string `json:"digest"`
			Size   int64  `json:"size"`
		} `json:"layers"`
	} `json:"images"`
}

// postImport sends an archive to POST /api/v1/workspaces/<ws>/import.
func postImport(t *testing.T, base, ws, query string, body io.Reader) resp {
	t.Helper()
	u := base + "/api/v1/workspaces/" + ws + "/import"
	if query != "" {
		u += "?" + query
	}
	req, err := http.NewRequest("POST", u, body)
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth("admin", testAdminPassword)
	req.Header.Set("Content-Type", "application/x-tar")
	r, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Body.Close()
	b, _ := io.ReadAll(r.Body)
	return resp{r.StatusCode, r.Header, b}
}

func importFile(t *testing.T, base, ws, query, path string) importAnswer {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r := postImport(t, base, ws, query, f)
	if r.status != http.StatusCreated {
		t.Fatalf("import %s: %d %s", filepath.Base(path), r.status, r.body)
	}
	var a importAnswer
	if err := json.Unmarshal(r.body, &a); err != nil {
		t.Fatal(err)
	}
	return a
}

// findTool returns a client tool from the tools cache or PATH, or skips.
func findTool(t *testing.T, name string) string {
	t.Helper()
	cache := os.Getenv("BERTH_TOOLS_BIN")
	if cache == "" {
		c := os.Getenv("XDG_CACHE_HOME")
		if c == "" {
			home, _ := os.UserHomeDir()
			c = filepath.Join(home, ".cache")
		}
		cache = filepath.Join(c, "berth-tools", "bin")
	}
	if p := filepath.Join(cache, name); fileExists(p) {
		return p
	}
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	t.Skipf("%s is not installed (.ci/install-test-tools.sh installs it)", name)
	return ""
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

// sharedTool returns ../shared/tools/<name> beside the repository, or skips.
func sharedTool(t *testing.T, name string) string {
	t.Helper()
	dir, _ := os.Getwd()
	for ; dir != filepath.Dir(dir); dir = filepath.Dir(dir) {
		if fileExists(filepath.Join(dir, "go.mod")) {
			break
		}
	}
	p := filepath.Join(filepath.Dir(dir), "shared", "tools", name)
	if !fileExists(p) {
		t.Skipf("%s not found beside the repository", p)
	}
	return p
}

// clients runs crane and skopeo with their own Docker config holding the
// node's credentials.
type clients struct {
	t    *testing.T
	host string
	env  []string
}

func newClients(t *testing.T, host string) *clients {
	home := t.TempDir()
	dcfg := filepath.Join(home, ".docker")
	if err := os.MkdirAll(dcfg, 0o700); err != nil {
		t.Fatal(err)
	}
	auth := base64.StdEncoding.EncodeToString([]byte("admin:" + testAdminPassword))
	b, _ := json.Marshal(map[string]any{"auths": map[string]any{host: map[string]string{"auth": auth}}})
	if err := os.WriteFile(filepath.Join(dcfg, "config.json"), b, 0o600); err != nil {
		t.Fatal(err)
	}
	env := []string{"HOME=" + home, "DOCKER_CONFIG=" + dcfg, "TMPDIR=" + home, "PATH=" + os.Getenv("PATH"),
		"REGISTRY_AUTH_FILE=" + filepath.Join(dcfg, "config.json"), "XDG_RUNTIME_DIR=" + home}
	return &clients{t: t, host: host, env: env}
}

func (c *clients) run(tool string, args ...string) []byte {
	c.t.Helper()
	cmd := exec.Command(tool, args...)
	cmd.Env = c.env
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		c.t.Fatalf("%s %s: %v\n%s", filepath.Base(tool), strings.Join(args, " "), err, stderr.Bytes())
	}
	return out
}

// archiveImage is what an archive says one image is: its config and its layer
// blobs (as stored: the layer tar of a legacy archive, the blob of an OCI one),
// and for an OCI layout the manifest's own bytes.
type archiveImage struct {
	manifest []byte // OCI layout only
	config   []byte
	layers   [][]byte
}

// readArchiveImage reads the first image of a (small) archive.
func readArchiveImage(t *testing.T, path string) archiveImage {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	files := map[string][]byte{}
	links := map[string]string{}
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		name := strings.TrimPrefix(filepath.Clean(h.Name), "./")
		switch h.Typeflag {
		case tar.TypeReg:
			b, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			files[name] = b
		case tar.TypeSymlink:
			links[name] = filepath.Join(filepath.Dir(name), h.Linkname)
		}
	}
	get := func(name string) []byte {
		if l, ok := links[name]; ok {
			name = l
		}
		b, ok := files[name]
		if !ok {
			t.Fatalf("%s: no %s", path, name)
		}
		return b
	}
	if idx, ok := files["index.json"]; ok {
		var index struct{ Manifests []struct{ Digest string } }
		if err := json.Unmarshal(idx, &index); err != nil {
			t.Fatal(err)
		}
		blob := func(d string) []byte { return get("blobs/sha256/" + strings.TrimPrefix(d, "sha256:")) }
		mb := blob(index.Manifests[0].Digest)
		var m struct {
			Config struct{ Digest string }
			Layers []struct{ Digest string }
		}
		if err := json.Unmarshal(mb, &m); err != nil {
			t.Fatal(err)
		}
		im := archiveImage{manifest: mb, config: blob(m.Config.Digest)}
		for _, l := range m.Layers {
			im.layers = append(im.layers, blob(l.Digest))
		}
		return im
	}
	var list []struct {
		Config string
		Layers []string
	}
	if err := json.Unmarshal(get("manifest.json"), &list); err != nil {
		t.Fatal(err)
	}
	im := archiveImage{config: get(list[0].Config)}
	for _, l := range list[0].Layers {
		im.layers = append(im.layers, get(l))
	}
	return im
}

func sha256Hex(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// pullAndCompare pulls ref with crane and skopeo and compares the config and
// layers with the archive's.
func (c *clients) pullAndCompare(ref string, want archiveImage) {
	t := c.t
	t.Helper()
	crane := findTool(t, "crane")
	manifest := c.run(crane, "manifest", "--insecure", ref)
	if want.manifest != nil && !bytes.Equal(manifest, want.manifest) {
		t.Errorf("%s: crane manifest differs from the archive's\n got %s\nwant %s", ref, manifest, want.manifest)
	}
	if got := c.run(crane, "config", "--insecure", ref); !bytes.Equal(got, want.config) {
		t.Errorf("%s: crane config differs from the archive's\n got %s\nwant %s", ref, got, want.config)
	}
	var m struct{ Layers []struct{ Digest string } }
	if err := json.Unmarshal(manifest, &m); err != nil {
		t.Fatal(err)
	}
	if len(m.Layers) != len(want.layers) {
		t.Fatalf("%s: %d layers, want %d", ref, len(m.Layers), len(want.layers))
	}
	repo := ref[:strings.LastIndexByte(ref, ':')]
	for i, l := range m.Layers {
		if got := c.run(crane, "blob", "--insecure", repo+"@"+l.Digest); !bytes.Equal(got, want.layers[i]) {
			t.Errorf("%s: layer %d (crane blob) differs from the archive's", ref, i)
		}
	}
	skopeo, err := exec.LookPath("skopeo")
	if err != nil {
		t.Log("skopeo not installed: pulled with crane only")
		return
	}
	dir := filepath.Join(t.TempDir(), "pulled")
	c.run(skopeo, "copy", "--src-tls-verify=false", "docker://"+ref, "dir:"+dir)
	for i, l := range want.layers {
		got, err := os.ReadFile(filepath.Join(dir, sha256Hex(l)))
		if err != nil || !bytes.Equal(got, l) {
			t.Errorf("%s: layer %d (skopeo copy) missing or different: %v", ref, i, err)
		}
	}
	if got, err := os.ReadFile(filepath.Join(dir, sha256Hex(want.config))); err != nil || !bytes.Equal(got, want.config) {
		t.Errorf("%s: config (skopeo copy) missing or different: %v", ref, err)
	}
}

// storeState counts the node's blob files and upload sessions.
func storeState(t *testing.T, dir string) (blobs, sessions int) {
	t.Helper()
	_ = filepath.WalkDir(filepath.Join(dir, "blobs"), func(_ string, d os.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			blobs++
		}
		return nil
	})
	ents, _ := os.ReadDir(filepath.Join(dir, "uploads"))
	return blobs, len(ents)
}

func TestImportArchives(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a node and runs client tools")
	}
	dir := t.TempDir()
	_, base := startNode(t, dir)
	host := strings.TrimPrefix(base, "http://")
	cl := newClients(t, host)
	work := t.TempDir()
	mk := sharedTool(t, "mk-docker-archive.sh")

	// A docker save archive of a directory tree, by mk-docker-archive.sh.
	src := filepath.Join(work, "src")
	if err := os.MkdirAll(filepath.Join(src, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	_ = os.WriteFile(filepath.Join(src, "etc", "hello.txt"), []byte("hello from the archive\n"), 0o644)
	_ = os.WriteFile(filepath.Join(src, "big.bin"), bytes.Repeat([]byte("berth"), 300_000), 0o644)
	mkTar := filepath.Join(work, "mk.tar")
	cl.run("bash", mk, mkTar, "app:v1", src)

	t.Run("mk-docker-archive", func(t *testing.T) {
		cl := &clients{t: t, host: host, env: cl.env}
		a := importFile(t, base, "a", "", mkTar)
		if len(a.Images) != 1 || a.Images[0].Repository != "a/app" || a.Images[0].Tag != "v1" {
			t.Fatalf("answer %+v", a)
		}
		cl.pullAndCompare(host+"/a/app:v1", readArchiveImage(t, mkTar))
	})
	t.Run("skopeo docker-archive", func(t *testing.T) {
		cl := &clients{t: t, host: host, env: cl.env}
		skopeo := findTool(t, "skopeo")
		out := filepath.Join(t.TempDir(), "skopeo.tar")
		cl.run(skopeo, "copy", "docker-archive:"+mkTar, "docker-archive:"+out+":example.com/team/tool:2.0")
		a := importFile(t, base, "a", "", out)
		if len(a.Images) != 1 || a.Images[0].Repository != "a/team/tool" || a.Images[0].Tag != "2.0" {
			t.Fatalf("answer %+v", a)
		}
		cl.pullAndCompare(host+"/a/team/tool:2.0", readArchiveImage(t, out))
	})
	t.Run("skopeo oci-archive gzip", func(t *testing.T) {
		cl := &clients{t: t, host: host, env: cl.env}
		skopeo := findTool(t, "skopeo")
		out := filepath.Join(t.TempDir(), "oci.tar")
		cl.run(skopeo, "copy", "docker-archive:"+mkTar, "oci-archive:"+out+":v3")
		gzPath := out + ".gz"
		cl.run("sh", "-c", "gzip -c "+out+" > "+gzPath)
		// skopeo names the image by tag only: the repository comes from the call.
		a := importFile(t, base, "a", "repository=oci/app", gzPath)
		if len(a.Images) != 1 || a.Images[0].Repository != "a/oci/app" || a.Images[0].Tag != "v3" {
			t.Fatalf("answer %+v", a)
		}
		want := readArchiveImage(t, out)
		if a.Images[0].Digest != "sha256:"+sha256Hex(want.manifest) {
			t.Errorf("digest %s: the OCI manifest's bytes were not kept", a.Images[0].Digest)
		}
		cl.pullAndCompare(host+"/a/oci/app:v3", want)
	})

	t.Run("refused", func(t *testing.T) {
		good, err := os.ReadFile(mkTar)
		if err != nil {
			t.Fatal(err)
		}
		entries := tarEntries(t, good)
		rebuild := func(fix func(map[string]tarFile) map[string]tarFile) []byte {
			m := map[string]tarFile{}
			for k, v := range entries {
				m[k] = v
			}
			return writeTarFiles(t, fix(m))
		}
		var layerName, cfgName string
		for name := range entries {
			if strings.HasSuffix(name, "/layer.tar") {
				layerName = name
			} else if strings.HasSuffix(name, ".json") && !strings.HasSuffix(name, "manifest.json") {
				cfgName = name
			}
		}
		tampered := func(name string) func(map[string]tarFile) map[string]tarFile {
			return func(m map[string]tarFile) map[string]tarFile {
				e := m[name]
				e.body = append(bytes.Clone(e.body[:len(e.body)-1]), e.body[len(e.body)-1]^1)
				m[name] = e
				return m
			}
		}
		blobsBefore, _ := storeState(t, dir)
		for _, tc := range []struct {
			name, text string
			body       []byte
		}{
			{"dot-dot", "leaves the archive", rebuild(func(m map[string]tarFile) map[string]tarFile {
				m["../x"] = tarFile{typ: tar.TypeReg, body: []byte("x")}
				return m
			})},
			{"absolute", "absolute path", rebuild(func(m map[string]tarFile) map[string]tarFile {
				m["/etc/x"] = tarFile{typ: tar.TypeReg, body: []byte("x")}
				return m
			})},
			{"symlink out", "points outside", rebuild(func(m map[string]tarFile) map[string]tarFile {
				m["evil"] = tarFile{typ: tar.TypeSymlink, link: "../../../etc/shadow"}
				return m
			})},
			{"hard link out", "points outside", rebuild(func(m map[string]tarFile) map[string]tarFile {
				m["evil"] = tarFile{typ: tar.TypeLink, link: "../etc/shadow"}
				return m
			})},
			{"path through a symlink", "paths through links", rebuild(func(m map[string]tarFile) map[string]tarFile {
				m["sub"] = tarFile{typ: tar.TypeSymlink, link: "."}
				m["sub/extra"] = tarFile{typ: tar.TypeReg, body: []byte("x")}
				return m
			})},
			{"device", "device file", rebuild(func(m map[string]tarFile) map[string]tarFile {
				m["dev/sda"] = tarFile{typ: tar.TypeBlock}
				return m
			})},
			{"missing layer", "which is not in the archive", rebuild(func(m map[string]tarFile) map[string]tarFile {
				delete(m, layerName)
				return m
			})},
			{"diff_id mismatch", "rootfs.diff_ids[0]", rebuild(tampered(layerName))},
			{"config digest mismatch", "is named for", rebuild(tampered(cfgName))},
			{"another workspace", "can only create tags in a", rebuild(func(m map[string]tarFile) map[string]tarFile {
				for name, e := range m {
					if strings.HasSuffix(name, "manifest.json") {
						e.body = bytes.Replace(e.body, []byte(`"app:v1"`), []byte(`"`+host+`/b/app:v1"`), 1)
						m[name] = e
					}
				}
				return m
			})},
			{"truncated", "cut short", good[:len(good)/2]},
		} {
			t.Run(tc.name, func(t *testing.T) {
				r := postImport(t, base, "a", "", bytes.NewReader(tc.body))
				if r.status != http.StatusBadRequest || !strings.Contains(string(r.body), tc.text) {
					t.Errorf("%d %s, want 400 with %q", r.status, r.body, tc.text)
				}
			})
		}
		// Nothing left: no new tags in a or b, no blob file, no session.
		for _, repo := range []string{"a/app", "b/app"} {
			r := do(t, "GET", base+"/v2/"+repo+"/tags/list", nil)
			var tl struct{ Tags []string }
			_ = json.Unmarshal(r.body, &tl)
			if repo == "a/app" && (r.status != 200 || strings.Join(tl.Tags, ",") != "v1") {
				t.Errorf("%s tags: %d %s, want only v1 from the first import", repo, r.status, r.body)
			}
			if repo == "b/app" && r.status != http.StatusNotFound {
				t.Errorf("%s: %d %s, want 404", repo, r.status, r.body)
			}
		}
		if blobs, sessions := storeState(t, dir); blobs != blobsBefore || sessions != 0 {
			t.Errorf("store: %d blob files (%d before), %d sessions: a refused archive left something", blobs, blobsBefore, sessions)
		}
	})

	t.Run("client disconnects", func(t *testing.T) {
		good, _ := os.ReadFile(mkTar)
		blobsBefore, _ := storeState(t, dir)
		conn, err := net.Dial("tcp", host)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(conn, "POST /api/v1/workspaces/a/import?repository=gone HTTP/1.1\r\nHost: %s\r\nAuthorization: Basic %s\r\n"+
			"Content-Type: application/x-tar\r\nContent-Length: %d\r\n\r\n", host,
			base64.StdEncoding.EncodeToString([]byte("admin:"+testAdminPassword)), len(good))
		_, _ = conn.Write(good[:len(good)/2])
		// The client stops sending half way (its side of the connection
		// closes); the node answers on the other side.
		if err := conn.(*net.TCPConn).CloseWrite(); err != nil {
			t.Fatal(err)
		}
		_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		res, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		conn.Close()
		if res.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), "disconnect") {
			t.Errorf("%d %s, want 400 saying the upload was cut", res.StatusCode, body)
		}
		if blobs, sessions := storeState(t, dir); blobs != blobsBefore || sessions != 0 {
			t.Errorf("store: %d blob files (%d before), %d sessions after the client went away", blobs, blobsBefore, sessions)
		}
		if r := do(t, "GET", base+"/v2/a/gone/tags/list", nil); r.status != http.StatusNotFound {
			t.Errorf("a/gone: %d %s, want 404", r.status, r.body)
		}
	})
}

type tarFile struct {
	typ  byte
	body []byte
	link string
}

func tarEntries(t *testing.T, b []byte) map[string]tarFile {
	t.Helper()
	out := map[string]tarFile{}
	tr := tar.NewReader(bytes.NewReader(b))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(tr)
		out[h.Name] = tarFile{typ: h.Typeflag, body: body, link: h.Linkname}
	}
}

// writeTarFiles writes the entries with manifest.json last, as docker save may.
func writeTarFiles(t *testing.T, m map[string]tarFile) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	var names []string
	for n := range m {
		if !strings.HasSuffix(n, "manifest.json") {
			names = append(names, n)
		}
	}
	for n := range m {
		if strings.HasSuffix(n, "manifest.json") {
			names = append(names, n)
		}
	}
	for _, n := range names {
		e := m[n]
		h := &tar.Header{Name: n, Typeflag: e.typ, Mode: 0o644, Linkname: e.link, Format: tar.FormatPAX}
		if e.typ == tar.TypeReg {
			h.Size = int64(len(e.body))
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if e.typ == tar.TypeReg {
			_, _ = tw.Write(e.body)
		}
	}
	_ = tw.Close()
	return buf.Bytes()
}

// writeLargeArchive writes a docker save archive whose one layer holds a file of
// size pseudo-random bytes, generated as it is written: the layer first, then
// its config and manifest.json last, so the importer cannot know it is a layer
// until the end. It returns the layer's digest.
func writeLargeArchive(w io.Writer, size int64) (string, error) {
	tw := tar.NewWriter(w)
	layerSize := int64(512) + (size+511)&^511 + 1024
	if err := tw.WriteHeader(&tar.Header{Name: "layer/layer.tar", Typeflag: tar.TypeReg, Mode: 0o644, Size: layerSize}); err != nil {
		return "", err
	}
	h := sha256.New()
	inner := tar.NewWriter(io.MultiWriter(tw, h))
	if err := inner.WriteHeader(&tar.Header{Name: "big.bin", Typeflag: tar.TypeReg, Mode: 0o644, Size: size}); err != nil {
		return "", err
	}
	rng := rand.NewChaCha8([32]byte{1, 2, 3})
	if _, err := io.CopyN(inner, rng, size); err != nil {
		return "", err
	}
	if err := inner.Close(); err != nil {
		return "", err
	}
	diffID := "sha256:" + hex.EncodeToString(h.Sum(nil))
	cfg := []byte(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":["` + diffID + `"]}}`)
	cfgName := sha256Hex(cfg) + ".json"
	manifest := []byte(`[{"Config":"` + cfgName + `","RepoTags":["big:1"],"Layers":["layer/layer.tar"]}]`)
	for _, f := range []struct {
		name string
		body []byte
	}{{cfgName, cfg}, {"manifest.json", manifest}} {
		if err := tw.WriteHeader(&tar.Header{Name: f.name, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(f.body))}); err != nil {
			return "", err
		}
		if _, err := tw.Write(f.body); err != nil {
			return "", err
		}
	}
	return diffID, tw.Close()
}

// TestImportLargeArchiveMemory imports a 512 MiB archive generated on the fly
// (BERTH_IMPORT_TEST_MIB changes the size) and watches the heap of this process,
// which runs the node: it must stay flat, whatever the archive's size.
func TestImportLargeArchiveMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("streams a large archive")
	}
	mib := int64(512)
	if v := os.Getenv("BERTH_IMPORT_TEST_MIB"); v != "" {
		if _, err := fmt.Sscan(v, &mib); err != nil {
			t.Fatal(err)
		}
	}
	dir := t.TempDir()
	_, base := startNode(t, dir)

	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	before := ms.HeapInuse
	var peak atomic.Uint64
	peak.Store(before)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		var ms runtime.MemStats
		for {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > peak.Load() {
				peak.Store(ms.HeapInuse)
			}
		}
	}()

	pr, pw := io.Pipe()
	diffID := make(chan string, 1)
	go func() {
		d, err := writeLargeArchive(pw, mib<<20)
		diffID <- d
		pw.CloseWithError(err)
	}()
	start := time.Now()
	r := postImport(t, base, "a", "", pr)
	took := time.Since(start)
	close(stop)
	wg.Wait()
	if r.status != http.StatusCreated {
		t.Fatalf("import: %d %s", r.status, r.body)
	}
	var a importAnswer
	if err := json.Unmarshal(r.body, &a); err != nil {
		t.Fatal(err)
	}
	d := <-diffID
	if len(a.Images) != 1 || len(a.Images[0].Layers) != 1 || a.Images[0].Layers[0].Digest != d {
		t.Fatalf("answer %s, want one layer %s", r.body, d)
	}
	if h := do(t, "HEAD", base+"/v2/a/big/blobs/"+d, nil); h.status != 200 || h.header.Get("Content-Length") != fmt.Sprint(a.Images[0].Layers[0].Size) {
		t.Errorf("layer blob: %d %s", h.status, h.header.Get("Content-Length"))
	}
	growth := int64(peak.Load()) - int64(before)
	t.Logf("imported %d MiB in %v (%.0f MiB/s); heap in use %d MiB before, peak %d MiB (growth %.1f MiB)",
		mib, took.Round(time.Millisecond), float64(mib)/took.Seconds(), before>>20, peak.Load()>>20, float64(growth)/(1<<20))
	if growth > 64<<20 {
		t.Errorf("heap grew by %d MiB while importing %d MiB: not streaming", growth>>20, mib)
	}
}

// TestImportBrowserLimit sends the headers of a console upload just over 2 GiB
// and no body: the node answers 413 at once, without reading the body.
func TestImportBrowserLimit(t *testing.T) {
	dir := t.TempDir()
	_, base := startNode(t, dir)
	host := strings.TrimPrefix(base, "http://")
	conn, err := net.Dial("tcp", host)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST /api/v1/workspaces/a/import HTTP/1.1\r\nHost: %s\r\nAuthorization: Basic %s\r\n"+
		"Content-Type: multipart/form-data; boundary=xyz\r\nContent-Length: %d\r\n\r\n", host,
		base64.StdEncoding.EncodeToString([]byte("admin:"+testAdminPassword)), int64(2<<30)+1)
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	res, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatal("no answer without the body: the node waited for it")
		}
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusRequestEntityTooLarge || !strings.Contains(string(body), "2 GiB") {
		t.Errorf("%d %s, want 413 naming the 2 GiB limit", res.StatusCode, body)
	}
	if blobs, sessions := storeState(t, dir); blobs != 0 || sessions != 0 {
		t.Errorf("store: %d blob files, %d sessions, want none", blobs, sessions)
	}
}
