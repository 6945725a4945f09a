package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/berth-registry/berth/node"
)

// adminReq sends a request with the test admin's Basic credentials.
func adminReq(t *testing.T, method, url string, body []byte, hdr ...string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth("admin", adminTestPassword)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// TestBackupRestoreCLI: berth backup of a serving node, again (nothing
// downloaded twice), berth restore into a new data dir, serve it, pull.
func TestBackupRestoreCLI(t *testing.T) {
	if testing.Short() {
		t.Skip("starts nodes")
	}
	base := startAdminTestNode(t)
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	t.Setenv("BERTH_USER", "")
	t.Setenv("BERTH_PASSWORD", "")
	const ociManifest = "application/vnd.oci.image.manifest.v1+json"
	type image struct {
		ref      string
		manifest []byte
		blobs    map[string][]byte
	}
	var images []image
	for i := range 3 {
		cfg := []byte(fmt.Sprintf(`{"architecture":"amd64","n":%d}`, i))
		layer := bytes.Repeat([]byte(fmt.Sprintf("layer %d ", i)), 10000)
		im := image{ref: fmt.Sprintf("library/cli%d:%d", i%2, i), blobs: map[string][]byte{}}
		repo, tag, _ := strings.Cut(im.ref, ":")
		for _, b := range [][]byte{cfg, layer} {
			if code, body := adminReq(t, "POST", base+"/v2/"+repo+"/blobs/uploads/?digest="+sha256Digest(b), b); code != http.StatusCreated {
				t.Fatalf("push blob: %d %s", code, body)
			}
			im.blobs[sha256Digest(b)] = b
		}
		im.manifest = []byte(fmt.Sprintf(`{"schemaVersion":2,"mediaType":%q,"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":%q,"size":%d},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":%q,"size":%d}]}`,
			ociManifest, sha256Digest(cfg), len(cfg), sha256Digest(layer), len(layer)))
		if code, body := adminReq(t, "PUT", base+"/v2/"+repo+"/manifests/"+tag, im.manifest, "Content-Type", ociManifest); code != http.StatusCreated {
			t.Fatalf("push manifest: %d %s", code, body)
		}
		images = append(images, im)
	}

	dir := filepath.Join(t.TempDir(), "backup")
	creds := []string{"--server", base, "--user", "admin", "--password", adminTestPassword}
	out := mustCLI(t, append([]string{"backup", dir}, creds...)...)
	if !strings.Contains(out, "6 downloaded") {
		t.Errorf("first backup: %s", out)
	}
	out = mustCLI(t, append([]string{"backup", dir}, creds...)...)
	if !strings.Contains(out, "0 downloaded") || !strings.Contains(out, "6 already in the backup") {
		t.Errorf("second backup: %s", out)
	}
	// Usage errors and refusals.
	if code, _, _ := cli(t, "backup", "--server", base); code != 2 {
		t.Errorf("backup without DIR: exit %d, want 2", code)
	}
	if code, _, _ := cli(t, "backup", dir, "--server", base, "--user", "admin", "--password", "wrong-password"); code != 1 {
		t.Errorf("backup with a wrong password: exit %d, want 1", code)
	}
	if code, _, _ := cli(t, "restore", dir); code != 2 {
		t.Errorf("restore without --data-dir: exit %d, want 2", code)
	}

	data := filepath.Join(t.TempDir(), "restored")
	out = mustCLI(t, "restore", dir, "--data-dir", data, "--node-id", "restored1")
	if !strings.Contains(out, "3 manifests") {
		t.Errorf("restore: %s", out)
	}
	if code, _, _ := cli(t, "restore", dir, "--data-dir", data, "--node-id", "restored1"); code != 1 {
		t.Errorf("restore over a seeded data dir: exit %d, want 1", code)
	}
	cfg := node.Defaults()
	cfg.NodeID, cfg.DataDir, cfg.Listen = "restored1", data, "127.0.0.1:0"
	n, err := node.New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := n.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer n.Shutdown(context.Background())
	restored := "http://" + n.Addr()
	for _, im := range images {
		repo, tag, _ := strings.Cut(im.ref, ":")
		if code, body := adminReq(t, "GET", restored+"/v2/"+repo+"/manifests/"+tag, nil, "Accept", ociManifest); code != http.StatusOK || !bytes.Equal(body, im.manifest) {
			t.Fatalf("restored %s: %d %s", im.ref, code, body)
		}
		for d, want := range im.blobs {
			if code, body := adminReq(t, "GET", restored+"/v2/"+repo+"/blobs/"+d, nil); code != http.StatusOK || !bytes.Equal(body, want) {
				t.Fatalf("restored blob %s: %d (%d bytes)", d, code, len(body))
			}
		}
	}
}
