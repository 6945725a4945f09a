package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// writeTestArchive writes a docker save archive of one image with tags to path.
func writeTestArchive(t *testing.T, path string, zip bool, layerText string, tags ...string) {
	t.Helper()
	var layer bytes.Buffer
	lw := tar.NewWriter(&layer)
	_ = lw.WriteHeader(&tar.Header{Name: "hello.txt", Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(layerText))})
	_, _ = lw.Write([]byte(layerText))
	_ = lw.Close()
	sum := func(b []byte) string { h := sha256.Sum256(b); return hex.EncodeToString(h[:]) }
	cfg := []byte(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":["sha256:` + sum(layer.Bytes()) + `"]}}`)
	mj, _ := json.Marshal([]map[string]any{{"Config": sum(cfg) + ".json", "RepoTags": tags, "Layers": []string{"l1/layer.tar"}}})
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range []struct {
		name string
		body []byte
	}{{"l1/layer.tar", layer.Bytes()}, {sum(cfg) + ".json", cfg}, {"manifest.json", mj}} {
		_ = tw.WriteHeader(&tar.Header{Name: f.name, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(f.body))})
		_, _ = tw.Write(f.body)
	}
	_ = tw.Close()
	out := buf.Bytes()
	if zip {
		var z bytes.Buffer
		zw := gzip.NewWriter(&z)
		_, _ = zw.Write(out)
		_ = zw.Close()
		out = z.Bytes()
	}
	if err := os.WriteFile(path, out, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestImportCLI(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a node")
	}
	base := startAdminTestNode(t)
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	t.Setenv("BERTH_USER", "admin")
	t.Setenv("BERTH_PASSWORD", adminTestPassword)
	t.Setenv("BERTH_SERVER", base)
	mustCLI(t, "project", "create", "web")
	mustCLI(t, "workspace", "create", "apps", "--project", "web")
	dir := t.TempDir()
	plain, zipped, bad := filepath.Join(dir, "app.tar"), filepath.Join(dir, "tool.tar.gz"), filepath.Join(dir, "bad.tar")
	writeTestArchive(t, plain, false, "hello", "docker.io/library/app:v1")
	writeTestArchive(t, zipped, true, "tool", "tool:2.0", "tool:latest")

	out := mustCLI(t, "import", plain, "--to", "apps")
	if !strings.Contains(out, "apps/app") || !strings.Contains(out, "v1") || !strings.Contains(out, "sha256:") {
		t.Errorf("report:\n%s", out)
	}
	out = mustCLI(t, "import", zipped, "--to", "apps/mirror/tool:stable")
	if !strings.Contains(out, "apps/mirror/tool") || !strings.Contains(out, "stable") {
		t.Errorf("report with --to REPO:TAG:\n%s", out)
	}
	code, out, errs := cli(t, "import", zipped, "--to", "apps", "--json")
	var res struct {
		Images []struct{ Repository, Tag string }
	}
	if code != 0 || json.Unmarshal([]byte(out), &res) != nil || len(res.Images) != 2 || res.Images[1].Tag != "latest" {
		t.Errorf("--json: exit %d %s %s", code, out, errs)
	}
	if !strings.Contains(errs, "imported") {
		t.Errorf("no summary on standard error: %q", errs)
	}

	// Refusals: the server's message, exit 1; usage errors, exit 2.
	writeTestArchive(t, bad, false, "x", "registry.example.com/team/../evil:v1")
	if code, _, errs := cli(t, "import", bad, "--to", "apps"); code != 1 || !strings.Contains(errs, "not a valid repository name") {
		t.Errorf("bad archive: exit %d %q", code, errs)
	}
	if code, _, errs := cli(t, "import", plain, "--to", "nosuch"); code != 1 || !strings.Contains(errs, "nosuch") {
		t.Errorf("unknown workspace: exit %d %q", code, errs)
	}
	if code, _, errs := cli(t, "import", plain); code != 2 || !strings.Contains(errs, "--to") {
		t.Errorf("no --to: exit %d %q", code, errs)
	}
	if code, _, _ := cli(t, "import", filepath.Join(dir, "missing.tar"), "--to", "apps"); code != 1 {
		t.Errorf("missing file: exit %d", code)
	}
}

func TestParseImportTarget(t *testing.T) {
	for _, tc := range []struct{ in, ws, repo, tag string }{
		{"apps", "apps", "", ""},
		{"apps/web", "apps", "web", ""},
		{"apps/team/web:v1", "apps", "team/web", "v1"},
		{"", "", "", "!"},
		{"apps/", "", "", "!"},
		{"apps/web:", "", "", "!"},
		{"apps:v1", "", "", "!"},
	} {
		ws, repo, tag, err := parseImportTarget(tc.in)
		if tc.tag == "!" {
			if err == nil {
				t.Errorf("%q: no error", tc.in)
			}
			continue
		}
		if err != nil || ws != tc.ws || repo != tc.repo || tag != tc.tag {
			t.Errorf("%q: got %q %q %q %v", tc.in, ws, repo, tag, err)
		}
	}
}

func TestProgressBarPlain(t *testing.T) {
	var buf bytes.Buffer
	p := newProgressBar(&buf, 10<<20, false)
	p.start()
	p.sent.Store(5 << 20)
	p.mu.Lock()
	p.lastPlain = time.Now().Add(-time.Minute)
	p.mu.Unlock()
	p.draw(false)
	p.importing(1<<20, 4<<20)
	p.mu.Lock()
	p.lastPlain = time.Now().Add(-time.Minute)
	p.mu.Unlock()
	p.draw(false)
	p.stop("imported 10.0 MiB in 1s")
	got := buf.String()
	for _, want := range []string{"uploading 5.0 MiB of 10.0 MiB (50%) at ", "importing  25% (1.0 MiB of 4.0 MiB stored)", "imported 10.0 MiB in 1s\n"} {
		if !strings.Contains(got, want) {
			t.Errorf("output %q lacks %q", got, want)
		}
	}
	if strings.Contains(got, "\r") {
		t.Errorf("plain output redraws: %q", got)
	}
}
