package node

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/berth-registry/berth/api"
	"github.com/berth-registry/berth/cluster"
	"github.com/berth-registry/berth/meta"
)

// crash stops n the way kill -9 would look to the others: no drain, no
// leadership transfer, no gossip leave, so the others see it fail (suspect,
// then dead) and keep it in the Raft configuration. The test's cleanup
// Shutdown then does nothing.
func crash(t *testing.T, n *Node) {
	t.Helper()
	n.mu.Lock()
	n.stopped = true
	n.mu.Unlock()
	n.http.Close()
	n.stopBG()
	<-n.bgDone
	n.bgWG.Wait()
	if err := n.closeStores(); err != nil {
		t.Logf("crash %s: %v", n.cfg.NodeID, err)
	}
}

func getClusterStatus(t *testing.T, c *mgmtClient) api.ClusterStatus {
	t.Helper()
	var st api.ClusterStatus
	c.must(http.StatusOK, "GET", "/api/v1/cluster", nil, &st)
	return st
}

func statusNode(st api.ClusterStatus, id string) (api.ClusterNode, bool) {
	i := slices.IndexFunc(st.Nodes, func(n api.ClusterNode) bool { return n.ID == id })
	if i < 0 {
		return api.ClusterNode{}, false
	}
	return st.Nodes[i], true
}

func TestClusterStatusAndRemove(t *testing.T) {
	if testing.Short() {
		t.Skip("cluster test")
	}
	c := newTestCluster(t, 3)
	leader := c.leader()
	asker, victim := (leader+1)%3, (leader+2)%3
	askerID, victimID := c.cfgs[asker].NodeID, c.cfgs[victim].NodeID

	// Blobs on every node (replicas = all), so that the victim holds copies.
	cfgBlob, layer := []byte(`{"architecture":"arm64"}`), []byte(strings.Repeat("status", 10000))
	base := c.urls[asker]
	cd, ld := pushBlob(t, base, "library/st", cfgBlob), pushBlob(t, base, "library/st", layer)
	if r := do(t, "PUT", base+"/v2/library/st/manifests/v1", imageManifest(cd, ld, len(cfgBlob), len(layer)), "Content-Type", ociManifest); r.status != 201 {
		t.Fatalf("put manifest: %d %s", r.status, r.body)
	}
	for _, d := range []string{cd, ld} {
		waitFor(t, 20*time.Second, "3 copies of "+d, func() bool {
			locs, _ := meta.BlobLocations(c.nodes[leader].fsm.Reader(), meta.Digest(d))
			return len(locs) == 3
		})
	}

	admin := login(t, base, "admin", testAdminPassword)
	var st api.ClusterStatus
	waitFor(t, 15*time.Second, "every node's figures, applied indexes within 5", func() bool {
		st = getClusterStatus(t, admin)
		lo, hi := uint64(1<<63), uint64(0)
		for _, n := range st.Nodes {
			if n.NodeLocal == nil || n.Blobs < 2 {
				return false
			}
			lo, hi = min(lo, n.AppliedIndex), max(hi, n.AppliedIndex)
		}
		return len(st.Nodes) == 3 && hi-lo <= 5
	})
	if st.Node != askerID || st.Leader != c.cfgs[leader].NodeID || st.Term == 0 {
		t.Errorf("answered by %q, leader %q, term %d; want %s, %s, a term", st.Node, st.Leader, st.Term, askerID, c.cfgs[leader].NodeID)
	}
	leaders := 0
	for i, cfg := range c.cfgs {
		n, ok := statusNode(st, cfg.NodeID)
		if !ok {
			t.Fatalf("node %s missing from %+v", cfg.NodeID, st.Nodes)
		}
		if n.IsLeader {
			leaders++
		}
		if n.IsLeader != (i == leader) || n.Suffrage != cluster.SuffrageVoter || n.State != "alive" || n.Zone != cfg.Zone ||
			n.APIAddr == "" || n.RaftAddr == "" || n.GossipAddr == "" || n.Error != "" {
			t.Errorf("node %s: %+v", cfg.NodeID, n)
		}
		if n.Disk.CapacityBytes == 0 || n.Disk.UsedBytes == 0 || n.Disk.UsedBytes > n.Disk.CapacityBytes || n.BlobBytes < int64(len(layer)) {
			t.Errorf("node %s: disk %+v, %d blobs of %d bytes", cfg.NodeID, n.Disk, n.Blobs, n.BlobBytes)
		}
		wantRaft := "follower"
		if i == leader {
			wantRaft = "leader"
		}
		if n.RaftState != wantRaft || n.CommitIndex == 0 || n.Term != st.Term {
			t.Errorf("node %s: raft %s (want %s), commit %d, term %d (want %d)", cfg.NodeID, n.RaftState, wantRaft, n.CommitIndex, n.Term, st.Term)
		}
		if (n.LastContact == nil) != (i == leader) {
			t.Errorf("node %s: last contact %v", cfg.NodeID, n.LastContact)
		}
	}
	if leaders != 1 {
		t.Errorf("%d leaders in %+v", leaders, st.Nodes)
	}

	// Cloud admins only.
	admin.must(http.StatusCreated, "POST", "/api/v1/users", map[string]any{"name": "bob", "password": "bob-password"}, nil)
	bob := login(t, base, "bob", "bob-password")
	bob.expect(http.StatusForbidden, "DENIED", "GET", "/api/v1/cluster", nil)
	bob.expect(http.StatusForbidden, "DENIED", "DELETE", "/api/v1/cluster/nodes/"+victimID, nil)
	anon := &mgmtClient{t: t, base: base, user: "anonymous", anonymously: true}
	anon.expect(http.StatusUnauthorized, "UNAUTHORIZED", "GET", "/api/v1/cluster", nil)

	// The gauges of /metrics.
	metrics := string(do(t, "GET", base+"/metrics", nil).body)
	for _, name := range []string{"berth_disk_capacity_bytes", "berth_disk_used_bytes", "berth_disk_free_bytes", "berth_blobstore_blobs 2", "berth_blobstore_stored_bytes"} {
		if !strings.Contains(metrics, "\n"+name) {
			t.Errorf("/metrics lacks %q", name)
		}
	}

	// A follower dies: the others see it dead; the answer still comes quickly.
	crash(t, c.nodes[victim])
	waitFor(t, 30*time.Second, victimID+" dead in gossip", func() bool {
		n, _ := statusNode(getClusterStatus(t, admin), victimID)
		return n.State == "dead"
	})
	start := time.Now()
	st = getClusterStatus(t, admin)
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("status with a dead node took %s", took)
	}
	if n, _ := statusNode(st, victimID); n.NodeLocal != nil || n.Error == "" || n.Suffrage != cluster.SuffrageVoter {
		t.Errorf("dead node: %+v", n)
	}

	// Refusals: the node that serves the request, a node nobody knows.
	admin.expect(http.StatusConflict, "CONFLICT", "DELETE", "/api/v1/cluster/nodes/"+askerID, nil)
	admin.expect(http.StatusNotFound, "NOT_FOUND", "DELETE", "/api/v1/cluster/nodes/n9", nil)

	// The admin removes it through a follower: the leader changes the
	// configuration, the locations of its copies are dropped.
	var rm api.NodeRemoval
	admin.must(http.StatusOK, "DELETE", "/api/v1/cluster/nodes/"+victimID, nil, &rm)
	if rm.Node != victimID || !rm.RemovedFromRaft || rm.LocationsDropped < 2 || rm.Warning != "" {
		t.Errorf("removal: %+v", rm)
	}
	for _, i := range []int{leader, asker} {
		waitFor(t, 10*time.Second, victimID+" gone from the raft configuration of "+c.cfgs[i].NodeID, func() bool {
			servers, err := c.nodes[i].cluster.Servers()
			return err == nil && len(servers) == 2 &&
				!slices.ContainsFunc(servers, func(s cluster.ServerInfo) bool { return s.ID == victimID })
		})
		for _, d := range []string{cd, ld} {
			locs, err := meta.BlobLocations(c.nodes[i].fsm.Reader(), meta.Digest(d))
			if err != nil || len(locs) != 2 || slices.Contains(locs, victimID) {
				t.Errorf("%s: locations of %s: %v %v; want the 2 remaining nodes", c.cfgs[i].NodeID, d, locs, err)
			}
		}
	}
	st = getClusterStatus(t, admin)
	if len(st.Nodes) != 2 {
		t.Errorf("after the removal: %+v", st.Nodes)
	}
	// The copies on the remaining nodes stay (replicas = all: nothing to do).
	for _, i := range []int{leader, asker} {
		if r := do(t, "GET", c.urls[i]+"/v2/library/st/blobs/"+ld, nil); r.status != 200 || len(r.body) != len(layer) {
			t.Errorf("%s: layer %d", c.cfgs[i].NodeID, r.status)
		}
	}
	// Removing it again finds nothing left to do but is not an error while
	// gossip still remembers it.
	admin.must(http.StatusOK, "DELETE", "/api/v1/cluster/nodes/"+victimID, nil, &rm)
	if rm.RemovedFromRaft || rm.LocationsDropped != 0 {
		t.Errorf("second removal: %+v", rm)
	}
}

func TestClusterStatusSingleNode(t *testing.T) {
	_, base := startNode(t, t.TempDir())
	admin := login(t, base, "admin", testAdminPassword)
	st := getClusterStatus(t, admin)
	if len(st.Nodes) != 1 || st.Leader == "" || st.Node != st.Leader {
		t.Fatalf("single node status: %+v", st)
	}
	n := st.Nodes[0]
	if n.ID != st.Node || !n.IsLeader || n.State != "alive" || n.Suffrage != cluster.SuffrageVoter || n.NodeLocal == nil ||
		n.RaftState != "leader" || n.APIAddr == "" || n.Disk.CapacityBytes == 0 || n.Error != "" {
		t.Errorf("single node: %+v", n)
	}
	admin.expect(http.StatusConflict, "CONFLICT", "DELETE", "/api/v1/cluster/nodes/"+st.Node, nil)
	admin.expect(http.StatusNotFound, "NOT_FOUND", "DELETE", "/api/v1/cluster/nodes/other", nil)
}

func TestRaftRemoveError(t *testing.T) {
	for _, tc := range []struct {
		in   error
		want error
	}{
		{nil, nil},
		{fmt.Errorf("remove server n2: %w", cluster.ErrUnknownServer), cluster.ErrUnknownServer},
		{fmt.Errorf("remove server n2: %w", cluster.ErrLastVoter), api.ErrNodeRemoveRefused},
		{fmt.Errorf("remove server n2: %w", cluster.ErrNotLeader), api.ErrUnavailable},
		{io.ErrUnexpectedEOF, api.ErrUnavailable},
	} {
		got := raftRemoveError("n2", tc.in)
		if (got == nil) != (tc.want == nil) || (tc.want != nil && !errors.Is(got, tc.want)) {
			t.Errorf("raftRemoveError(%v) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

func TestBlobCountsCached(t *testing.T) {
	n, base := startNode(t, t.TempDir())
	ctx := t.Context()
	c0, _, at0, ok := n.status.blobCounts(ctx)
	if !ok || c0 != 0 || at0.IsZero() {
		t.Fatalf("first count: %d %v %v", c0, at0, ok)
	}
	pushBlob(t, base, "a/x", []byte("one blob"))
	if c, _, at, _ := n.status.blobCounts(ctx); c != 0 || !at.Equal(at0) {
		t.Errorf("within the TTL: %d blobs counted at %v, want the cached 0 of %v", c, at, at0)
	}
	// Past the TTL the stale count is answered while a new one runs.
	n.status.mu.Lock()
	n.status.countedAt = at0.Add(-blobCountTTL)
	n.status.mu.Unlock()
	waitFor(t, 5*time.Second, "a new count", func() bool {
		c, b, _, _ := n.status.blobCounts(ctx)
		return c == 1 && b == int64(len("one blob"))
	})
}
