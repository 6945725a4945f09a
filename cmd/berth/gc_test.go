package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/berth-registry/berth/node"
)

// startGCTestNode runs a node whose garbage collection has no grace period
// and no deleted-item retention, so a test reclaims at once.
func startGCTestNode(t *testing.T) string {
	t.Helper()
	cfg := node.Defaults()
	cfg.DataDir = t.TempDir()
	cfg.Listen = "127.0.0.1:0"
	cfg.AdminPassword = adminTestPassword
	cfg.GCGracePeriod, cfg.GCDeletedRetention = 0, 0
	n, err := node.New(cfg, nil)
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
		_ = n.Shutdown(ctx)
	})
	return "http://" + n.Addr()
}

func shaOf(b []byte) string {
	h := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(h[:])
}

// pushTestImage pushes a one-layer image as the admin and returns the
// manifest's digest.
func pushTestImage(t *testing.T, base, repo, tag string) string {
	t.Helper()
	req := func(method, path string, body []byte, ct string) int {
		r, err := http.NewRequest(method, base+path, bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		r.SetBasicAuth("admin", adminTestPassword)
		if ct != "" {
			r.Header.Set("Content-Type", ct)
		}
		resp, err := http.DefaultClient.Do(r)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	cfg, layer := []byte(`{"os":"linux"}`), bytes.Repeat([]byte("gc cli layer "), 1000)
	for _, b := range [][]byte{cfg, layer} {
		if s := req("POST", "/v2/"+repo+"/blobs/uploads/?digest="+shaOf(b), b, ""); s != 201 {
			t.Fatalf("push blob: %d", s)
		}
	}
	m := []byte(fmt.Sprintf(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",`+
		`"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":%q,"size":%d},`+
		`"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":%q,"size":%d}]}`,
		shaOf(cfg), len(cfg), shaOf(layer), len(layer)))
	if s := req("PUT", "/v2/"+repo+"/manifests/"+tag, m, "application/vnd.oci.image.manifest.v1+json"); s != 201 {
		t.Fatalf("push manifest: %d", s)
	}
	return shaOf(m)
}

func manifestStatus(t *testing.T, base, repo, ref string) int {
	t.Helper()
	r, _ := http.NewRequest("GET", base+"/v2/"+repo+"/manifests/"+ref, nil)
	r.SetBasicAuth("admin", adminTestPassword)
	resp, err := http.DefaultClient.Do(r)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func TestGCCLI(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a node")
	}
	base := startGCTestNode(t)
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	t.Setenv("BERTH_USER", "admin")
	t.Setenv("BERTH_PASSWORD", adminTestPassword)
	t.Setenv("BERTH_SERVER", base)
	gcPollInterval = 50 * time.Millisecond

	mustCLI(t, "workspace", "create", "cli", "--project", "default")
	digest := pushTestImage(t, base, "cli/app", "1.0")

	// Delete a tag, find it in the trash, restore it.
	if out := mustCLI(t, "delete", "cli/app:1.0"); !strings.Contains(out, "tag:cli/app:1.0") {
		t.Errorf("delete tag: %q", out)
	}
	if s := manifestStatus(t, base, "cli/app", "1.0"); s != 404 {
		t.Errorf("deleted tag: %d, want 404", s)
	}
	if out := mustCLI(t, "trash", "list", "cli"); !strings.Contains(out, "tag:cli/app:1.0") || !strings.Contains(out, "admin") {
		t.Errorf("trash list: %q", out)
	}
	mustCLI(t, "trash", "restore", "cli", "tag:cli/app:1.0")
	if s := manifestStatus(t, base, "cli/app", "1.0"); s != 200 {
		t.Errorf("restored tag: %d, want 200", s)
	}
	// The manifest by digest, then the repository.
	mustCLI(t, "delete", "cli/app@"+digest)
	mustCLI(t, "trash", "restore", "cli", "manifest:cli/app@"+digest)
	mustCLI(t, "delete", "cli/app")

	// A dry run reports, a run reclaims; --wait prints the report.
	out := mustCLI(t, "gc", "--dry-run", "--wait")
	if !strings.Contains(out, "would reclaim: 2 blobs") || !strings.Contains(out, "dry run") {
		t.Errorf("dry run report: %q", out)
	}
	if s := manifestStatus(t, base, "cli/app", digest); s != 404 {
		t.Errorf("deleted repository's manifest: %d, want 404", s)
	}
	out = mustCLI(t, "gc", "--wait")
	if !strings.Contains(out, "reclaimed: 2 blobs") || !strings.Contains(out, "1 repositories") || !strings.Contains(out, "node1") {
		t.Errorf("run report: %q", out)
	}
	out = mustCLI(t, "gc", "list")
	if strings.Count(out, "gc-") != 2 {
		t.Errorf("gc list: %q", out)
	}
	id := strings.Fields(strings.Split(out, "\n")[1])[0]
	if out := mustCLI(t, "gc", "show", id); !strings.Contains(out, id) {
		t.Errorf("gc show: %q", out)
	}
	if out := mustCLI(t, "gc", "show", id, "--json"); !strings.Contains(out, `"state": "done"`) {
		t.Errorf("gc show --json: %q", out)
	}
	// Nothing is restorable any more.
	if code, _, errs := cli(t, "trash", "restore", "cli", "repository:cli/app"); code != 1 || !strings.Contains(errs, "unknown") {
		t.Errorf("restore after gc: exit %d %q, want 1", code, errs)
	}

	// fsck: clean, with and without repair.
	if out := mustCLI(t, "fsck"); !strings.Contains(out, "node1") {
		t.Errorf("fsck: %q", out)
	}
	mustCLI(t, "fsck", "--repair")

	// Usage errors are exit code 2.
	for _, args := range [][]string{{"delete", "noslash"}, {"trash"}, {"trash", "restore", "cli"}, {"gc", "show"}} {
		if code, _, _ := cli(t, args...); code != 2 {
			t.Errorf("berth %s: exit %d, want 2", strings.Join(args, " "), code)
		}
	}
}

func TestDeletePath(t *testing.T) {
	for _, tc := range []struct{ ref, want string }{
		{"ws/app", "/api/v1/repositories/ws/app"},
		{"ws/a/b:v1", "/api/v1/repositories/ws/a/b/tags/v1"},
		{"ws/app@sha256:abc", "/api/v1/repositories/ws/app/manifests/sha256:abc"},
	} {
		if got, err := deletePath(tc.ref); err != nil || got != tc.want {
			t.Errorf("deletePath(%q): got %q %v, want %q", tc.ref, got, err, tc.want)
		}
	}
	if _, err := deletePath("noslash"); err == nil {
		t.Error("a name without a workspace was accepted")
	}
}
