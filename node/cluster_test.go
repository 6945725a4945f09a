package node

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/berth-registry/berth/meta"
)

func freePort(t *testing.T, network string) string {
	t.Helper()
	if network == "udp" {
		for {
			addr := freePort(t, "tcp")
			if c, err := net.ListenPacket("udp", addr); err == nil {
				c.Close()
				return addr
			}
		}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

type testCluster struct {
	t     *testing.T
	key   string
	nodes []*Node
	urls  []string
	cfgs  []Config
}

// startClusterNode starts node i of an in-process cluster (real Raft over TCP,
// real gossip, real HTTP, each node in its own data directory).
func (c *testCluster) start(i int, cfg Config) {
	c.t.Helper()
	n, err := New(cfg, nil)
	if err != nil {
		c.t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := n.Start(ctx); err != nil {
		c.t.Fatalf("start %s: %v", cfg.NodeID, err)
	}
	c.t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		_ = n.Shutdown(ctx)
	})
	c.nodes[i], c.urls[i], c.cfgs[i] = n, "http://"+n.Addr(), cfg
}

func newTestCluster(t *testing.T, size int) *testCluster {
	return newTestClusterWith(t, size, nil)
}

// newTestClusterWith starts a cluster of size nodes, applying mutate (when not
// nil) to each node's configuration before it starts, and waits until every
// node is a voter.
func newTestClusterWith(t *testing.T, size int, mutate func(cfg *Config)) *testCluster {
	t.Helper()
	dir := t.TempDir()
	key := filepath.Join(dir, "cluster.key")
	if err := os.WriteFile(key, bytes.Repeat([]byte("k"), 32), 0o600); err != nil {
		t.Fatal(err)
	}
	c := &testCluster{t: t, key: key, nodes: make([]*Node, size), urls: make([]string, size), cfgs: make([]Config, size)}
	var seed string
	for i := 0; i < size; i++ {
		cfg := Defaults()
		cfg.NodeID = fmt.Sprintf("n%d", i+1)
		cfg.DataDir = filepath.Join(dir, cfg.NodeID)
		cfg.Listen = "127.0.0.1:0"
		cfg.RaftListen = freePort(t, "tcp")
		cfg.GossipListen = freePort(t, "udp")
		cfg.ClusterKeyFile = key
		cfg.AdminPassword = testAdminPassword
		cfg.ReplicateInterval = 200 * time.Millisecond
		cfg.Zone = fmt.Sprintf("z%d", i%2)
		if i > 0 {
			cfg.Join = []string{seed}
		} else {
			seed = cfg.GossipListen
		}
		if mutate != nil {
			mutate(&cfg)
		}
		c.start(i, cfg)
	}
	// Wait until every node is a voter.
	waitFor(t, 30*time.Second, "all nodes in the raft configuration", func() bool {
		s, err := c.nodes[0].cluster.Servers()
		return err == nil && len(s) == size
	})
	return c
}

func waitFor(t *testing.T, d time.Duration, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (c *testCluster) leader() int {
	for i, n := range c.nodes {
		if n != nil && !n.draining.Load() && n.cluster.IsLeader() {
			return i
		}
	}
	return -1
}

func TestClusterPushAnywherePullEverywhere(t *testing.T) {
	if testing.Short() {
		t.Skip("cluster test")
	}
	c := newTestCluster(t, 3)
	follower := (c.leader() + 1) % 3
	// Push through a follower: its writes are forwarded to the leader, and
	// its 201 comes after it applied them itself.
	cfg, layer := []byte(`{"architecture":"amd64"}`), bytes.Repeat([]byte("cluster"), 50000)
	base := c.urls[follower]
	cd, ld := pushBlob(t, base, "library/app", cfg), pushBlob(t, base, "library/app", layer)
	m := imageManifest(cd, ld, len(cfg), len(layer))
	if r := do(t, "PUT", base+"/v2/library/app/manifests/1.0", m, "Content-Type", ociManifest); r.status != 201 {
		t.Fatalf("put manifest through follower: %d %s", r.status, r.body)
	}
	// Acknowledged means stored on min_replicas (2) nodes.
	locs, _ := meta.BlobLocations(c.nodes[follower].fsm.Reader(), meta.Digest(ld))
	if len(locs) < 2 {
		t.Fatalf("blob acknowledged on %v, want at least 2 nodes", locs)
	}
	// Every node serves the image, byte-identical.
	for i, u := range c.urls {
		r := do(t, "GET", u+"/v2/library/app/manifests/1.0", nil)
		if r.status != 200 || !bytes.Equal(r.body, m) {
			t.Fatalf("node %d manifest: %d", i, r.status)
		}
		r = do(t, "GET", u+"/v2/library/app/blobs/"+ld, nil)
		if r.status != 200 || !bytes.Equal(r.body, layer) {
			t.Fatalf("node %d blob: %d (%d bytes)", i, r.status, len(r.body))
		}
	}
	// The replicator brings every blob to every node (replicas = all).
	waitFor(t, 20*time.Second, "3 copies of the layer", func() bool {
		locs, _ := meta.BlobLocations(c.nodes[0].fsm.Reader(), meta.Digest(ld))
		return len(locs) == 3
	})

	// An upload started on one node continues on the others: the session's
	// owner gets every request streamed through to it.
	data := bytes.Repeat([]byte("round-robin"), 30000)
	r := do(t, "POST", c.urls[0]+"/v2/library/rr/blobs/uploads/", nil)
	if r.status != 202 {
		t.Fatalf("start upload: %d %s", r.status, r.body)
	}
	loc := r.header.Get("Location")
	half := len(data) / 2
	r = do(t, "PATCH", c.urls[1]+loc, data[:half], "Content-Range", fmt.Sprintf("0-%d", half-1))
	if r.status != 202 {
		t.Fatalf("patch through node 1: %d %s", r.status, r.body)
	}
	r = do(t, "PATCH", c.urls[2]+r.header.Get("Location"), data[half:], "Content-Range", fmt.Sprintf("%d-%d", half, len(data)-1))
	if r.status != 202 || r.header.Get("Range") != fmt.Sprintf("0-%d", len(data)-1) {
		t.Fatalf("patch through node 2: %d %s %s", r.status, r.body, r.header.Get("Range"))
	}
	r = do(t, "PUT", c.urls[1]+r.header.Get("Location")+"?digest="+sha(data), nil)
	if r.status != 201 {
		t.Fatalf("finish through node 1: %d %s", r.status, r.body)
	}
	for i, u := range c.urls {
		if r := do(t, "GET", u+"/v2/library/rr/blobs/"+sha(data), nil); r.status != 200 || !bytes.Equal(r.body, data) {
			t.Fatalf("node %d: round-robin blob %d", i, r.status)
		}
	}

	// The leader goes away: a new one is elected and writes continue on the survivors.
	old := c.leader()
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	if err := c.nodes[old].Shutdown(ctx); err != nil {
		t.Fatalf("drain leader: %v", err)
	}
	cancel()
	survivor := (old + 1) % 3
	waitFor(t, 20*time.Second, "a write after the leader left", func() bool {
		r := do(t, "POST", c.urls[survivor]+"/v2/library/app/blobs/uploads/?digest="+sha([]byte("after")), []byte("after"))
		return r.status == 201
	})
	t.Logf("first write %s after the leader drained", time.Since(start).Round(time.Millisecond))
	for i := range c.nodes {
		if i == old {
			continue
		}
		if r := do(t, "GET", c.urls[i]+"/v2/library/app/manifests/1.0", nil); r.status != 200 {
			t.Fatalf("node %d after failover: %d", i, r.status)
		}
	}
}

// TestFollowerReadAfterQuiet: a follower's tag read after the cluster went
// quiet answers at once. Its read index is the leader's applied index; when
// the follower holds that entry without knowing it is committed, it asks the
// leader for a no-op after a short wait (meta.Noop) instead of waiting out
// the read barrier's timeout for someone else's write. (The chaos harness saw
// followers one entry behind for 90s in a quiet cluster; this in-process
// cluster does not always end up in that state, so the test guards the read
// path rather than reproducing it.)
func TestFollowerReadAfterQuiet(t *testing.T) {
	if testing.Short() {
		t.Skip("cluster test")
	}
	c := newTestCluster(t, 3)
	leader := c.leader()
	base := c.urls[leader]
	cfg, layer := []byte(`{"architecture":"amd64","quiet":true}`), []byte("quiet layer")
	cd, ld := pushBlob(t, base, "library/quiet", cfg), pushBlob(t, base, "library/quiet", layer)
	m := imageManifest(cd, ld, len(cfg), len(layer))
	if r := do(t, "PUT", base+"/v2/library/quiet/manifests/1.0", m, "Content-Type", ociManifest); r.status != 201 {
		t.Fatalf("put manifest: %d %s", r.status, r.body)
	}
	// Quiet: the replicator and the audit log finish their entries.
	time.Sleep(3 * time.Second)
	for i, u := range c.urls {
		if i == leader {
			continue
		}
		start := time.Now()
		r := do(t, "GET", u+"/v2/library/quiet/manifests/1.0", nil)
		if took := time.Since(start); r.status != 200 || !bytes.Equal(r.body, m) || took > 3*time.Second {
			t.Fatalf("follower n%d: GET the tag after a quiet spell: %d in %s", i+1, r.status, took)
		}
	}
}
