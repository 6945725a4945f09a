package node

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/berth-registry/berth/meta"
)

// testImage is an image a test pushed, to pull back byte for byte.
type testImage struct {
	repo, tag string
	manifest  []byte
	blobs     map[string][]byte // digest -> bytes
}

// pushTestImage pushes a config and a layer (plus shared, when not nil) and a
// manifest tagged tag, through base.
func pushTestImage(t *testing.T, base, repo, tag string, shared []byte) testImage {
	t.Helper()
	im := testImage{repo: repo, tag: tag, blobs: map[string][]byte{}}
	cfg := []byte(fmt.Sprintf(`{"architecture":"amd64","image":%q}`, repo+":"+tag))
	layer := bytes.Repeat([]byte(repo+tag), 20000)
	if shared != nil {
		layer = shared
	}
	for _, b := range [][]byte{cfg, layer} {
		im.blobs[pushBlob(t, base, repo, b)] = b
	}
	im.manifest = imageManifest(sha(cfg), sha(layer), len(cfg), len(layer))
	if r := do(t, "PUT", base+"/v2/"+repo+"/manifests/"+tag, im.manifest, "Content-Type", ociManifest); r.status != http.StatusCreated {
		t.Fatalf("push %s:%s: %d %s", repo, tag, r.status, r.body)
	}
	return im
}

// checkPull pulls every image from base and compares it byte for byte.
func checkPull(t *testing.T, base string, images []testImage) {
	t.Helper()
	for _, im := range images {
		r := do(t, "GET", base+"/v2/"+im.repo+"/manifests/"+im.tag, nil, "Accept", ociManifest)
		if r.status != http.StatusOK || !bytes.Equal(r.body, im.manifest) {
			t.Fatalf("%s: pull %s:%s: %d %s", base, im.repo, im.tag, r.status, r.body)
		}
		for d, want := range im.blobs {
			r := do(t, "GET", base+"/v2/"+im.repo+"/blobs/"+d, nil)
			if r.status != http.StatusOK || !bytes.Equal(r.body, want) {
				t.Fatalf("%s: pull blob %s of %s: %d (%d bytes, want %d)", base, d, im.repo, r.status, len(r.body), len(want))
			}
		}
	}
}

func adminSource(base string) *HTTPBackupSource {
	return &HTTPBackupSource{
		Server:    base,
		Client:    &http.Client{},
		Authorize: func(r *http.Request) { r.SetBasicAuth("admin", testAdminPassword) },
	}
}

// TestBackupRestore backs up a 3-node cluster while it serves, backs it up
// again (nothing is downloaded twice), restores the backup into a new node,
// pulls every image from it, and has a second node join the restored one.
func TestBackupRestore(t *testing.T) {
	if testing.Short() {
		t.Skip("cluster test")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c := newTestCluster(t, 3)
	shared := bytes.Repeat([]byte("shared layer "), 30000)
	var images []testImage
	for i := range 4 {
		images = append(images, pushTestImage(t, c.urls[i%3], fmt.Sprintf("library/app%d", i%2), fmt.Sprintf("v%d", i), nil))
	}
	images = append(images, pushTestImage(t, c.urls[1], "library/shared", "a", shared),
		pushTestImage(t, c.urls[2], "library/shared", "b", shared))
	blobs := map[string]bool{}
	for _, im := range images {
		for d := range im.blobs {
			blobs[d] = true
		}
	}

	dir := t.TempDir()
	m1, err := WriteBackup(ctx, dir, adminSource(c.urls[1]), BackupOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if m1.BlobsCopied != len(blobs) || m1.BlobsSkipped != 0 || m1.Counts.Blobs != len(blobs) ||
		m1.Counts.Manifests != len(images) || m1.Counts.Tags != len(images) || m1.AppliedIndex == 0 {
		t.Fatalf("first backup: %+v, want %d blobs copied and %d manifests", m1, len(blobs), len(images))
	}
	for _, f := range []string{"backup.json", "meta.snapshot"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Fatal(err)
		}
	}
	// The cluster keeps serving; a second backup downloads no blob again
	// and picks up the new image.
	images = append(images, pushTestImage(t, c.urls[0], "library/late", "1", shared))
	newBlobs := 0
	for d := range images[len(images)-1].blobs {
		if !blobs[d] {
			newBlobs++
			blobs[d] = true
		}
	}
	m2, err := WriteBackup(ctx, dir, adminSource(c.urls[2]), BackupOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if m2.BlobsCopied != newBlobs || m2.BlobsSkipped != len(blobs)-newBlobs || m2.AppliedIndex <= m1.AppliedIndex {
		t.Fatalf("second backup: copied %d skipped %d index %d, want %d, %d and > %d",
			m2.BlobsCopied, m2.BlobsSkipped, m2.AppliedIndex, newBlobs, len(blobs)-newBlobs, m1.AppliedIndex)
	}

	// Restore into a new node's data directory, offline.
	rdir := filepath.Join(t.TempDir(), "r1")
	raftAddr := freePort(t, "tcp")
	if _, err := RestoreBackup(ctx, dir, RestoreOptions{DataDir: rdir, NodeID: "r1", RaftAddr: raftAddr, Actor: "test"}); err != nil {
		t.Fatal(err)
	}
	if _, err := RestoreBackup(ctx, dir, RestoreOptions{DataDir: rdir, NodeID: "r1"}); err == nil {
		t.Fatal("restoring into a data dir with metadata: no error")
	}
	nc := &testCluster{t: t, key: c.key, nodes: make([]*Node, 2), urls: make([]string, 2), cfgs: make([]Config, 2)}
	cfg := Defaults()
	cfg.NodeID, cfg.DataDir, cfg.Listen = "r1", rdir, "127.0.0.1:0"
	cfg.RaftListen, cfg.GossipListen, cfg.ClusterKeyFile = raftAddr, freePort(t, "udp"), c.key
	cfg.ReplicateInterval = 200 * time.Millisecond
	nc.start(0, cfg)
	checkPull(t, nc.urls[0], images)
	r1 := nc.nodes[0].fsm.Reader()
	for d := range blobs {
		if locs, _ := meta.BlobLocations(r1, meta.Digest(d)); !slices.Equal(locs, []string{"r1"}) {
			t.Errorf("blob %s located on %v after restore, want [r1]", d, locs)
		}
	}
	evs, _, err := meta.ListAudit(r1, meta.AuditFilter{Action: "restore"})
	if err != nil || len(evs) != 1 || evs[0].User != "test" || evs[0].Node != "r1" {
		t.Errorf("restore audit event: %+v %v", evs, err)
	}
	// The restored node takes writes, and a new node joins it and serves
	// everything (it installs the seeded snapshot).
	images = append(images, pushTestImage(t, nc.urls[0], "library/after", "1", nil))
	cfg2 := Defaults()
	cfg2.NodeID, cfg2.DataDir, cfg2.Listen = "r2", filepath.Join(t.TempDir(), "r2"), "127.0.0.1:0"
	cfg2.RaftListen, cfg2.GossipListen, cfg2.ClusterKeyFile = freePort(t, "tcp"), freePort(t, "udp"), c.key
	cfg2.Join = []string{cfg.GossipListen}
	cfg2.ReplicateInterval = 200 * time.Millisecond
	nc.start(1, cfg2)
	waitFor(t, 30*time.Second, "r2 in the restored cluster", func() bool {
		s, err := nc.nodes[0].cluster.Servers()
		return err == nil && len(s) == 2
	})
	waitFor(t, 30*time.Second, "r2 caught up", func() bool {
		return nc.nodes[1].cluster.AppliedIndex() >= nc.nodes[0].cluster.AppliedIndex()
	})
	checkPull(t, nc.urls[1], images)
}
