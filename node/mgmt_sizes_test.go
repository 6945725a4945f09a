package node

import (
	"bytes"
	"encoding/json"
	"testing"
)

// TestManagementSizesAndPusher checks the figures the console shows: a
// workspace's and a repository's size, the last push, and who pushed a tag.
func TestManagementSizesAndPusher(t *testing.T) {
	_, base := startNode(t, t.TempDir())
	cfg, layer := []byte(`{"architecture":"amd64"}`), bytes.Repeat([]byte("z"), 4000)
	cd, ld := pushBlob(t, base, "library/app", cfg), pushBlob(t, base, "library/app", layer)
	m := imageManifest(cd, ld, len(cfg), len(layer))
	if r := do(t, "PUT", base+"/v2/library/app/manifests/v1", m, "Content-Type", ociManifest); r.status != 201 {
		t.Fatalf("push: %d %s", r.status, r.body)
	}
	var tags struct {
		Items []struct {
			Name, PushedBy string
			Size           int64
		}
	}
	r := do(t, "GET", base+"/api/v1/repositories/library/app/tags", nil)
	if err := json.Unmarshal(r.body, &tags); err != nil || len(tags.Items) != 1 {
		t.Fatalf("tags: %d %s", r.status, r.body)
	}
	if got := tags.Items[0]; got.PushedBy != "admin" || got.Size != int64(len(m)+len(cfg)+len(layer)) {
		t.Errorf("tag: got %+v, want pushed by admin, size %d", got, len(m)+len(cfg)+len(layer))
	}
	var repos struct {
		Items []struct {
			Name   string
			Size   int64
			Pushed string
		}
	}
	r = do(t, "GET", base+"/api/v1/workspaces/library/repositories", nil)
	if err := json.Unmarshal(r.body, &repos); err != nil || len(repos.Items) != 1 {
		t.Fatalf("repositories: %d %s", r.status, r.body)
	}
	if got := repos.Items[0]; got.Size != int64(len(m)+len(cfg)+len(layer)) || got.Pushed == "" || got.Pushed[:4] == "0001" {
		t.Errorf("repository: got %+v", got)
	}
	var ws struct{ Size int64 }
	r = do(t, "GET", base+"/api/v1/workspaces/library", nil)
	if err := json.Unmarshal(r.body, &ws); err != nil || ws.Size != int64(len(cfg)+len(layer)) {
		t.Errorf("workspace size: got %d (%s), want %d", ws.Size, r.body, len(cfg)+len(layer))
	}
}
