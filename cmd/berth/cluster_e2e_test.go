//go:build unix

package main

// Multi-process fault tests of a Berth cluster (issue 4, "Faults that must be
// survived" and "Performance"). TestCluster builds the berth binary the way
// TestE2E does (with -race when this test binary has it; BERTH_E2E_RACE
// overrides), starts three `berth serve` processes on 127.0.0.1 with ports
// chosen at run time, and runs its subtests against that one cluster, each
// leaving it healthy for the next:
//
//	round-robin    every request of crane and skopeo pushes goes to the next node
//	kill-leader    kill -9 of the leader under a stream of pushes (failover time);
//	               it comes back with its data once the others removed it from Raft
//	stop-follower  SIGSTOP of a follower past the election timeout, then SIGCONT
//	snapshot-join  a new, empty node joins and catches up through a Raft snapshot
//	wipe           a node's data directory is wiped; copies are restored
//	performance    a 256 MiB layer and 50 small images, cluster against one node
//	partition      a follower is cut off (faultproxy: dropped, then blackholed) and healed
//
// After each subtest every acknowledged image is pulled from every live node
// and compared by digest, and the nodes' metadata digests
// (/internal/v1/state-digest) must be equal at the same applied index.
//
// Every node advertises a chaos/faultproxy in front of its Raft port and one in
// front of its API (the internal API and blob copies between nodes use the
// advertised address), so the partition test can cut a node's links both ways;
// the proxies tell the sending node of a connection by the process that owns
// its socket. Gossip (UDP) is not proxied: a partitioned node still looks alive
// to the others, which is the harder case for them.
//
// The nodes run with --replicate-interval 500ms, --dead-node-timeout 5s and a
// Raft log compacted after 16 entries (8 kept), so a node that falls behind
// catches up through a snapshot. The performance figures are logged in one line
// starting with "cluster performance:" (go test -v shows it).
//
// Environment: as TestE2E (BERTH_E2E_REQUIRE, BERTH_E2E_RACE, BERTH_TOOLS_BIN);
// BERTH_E2E_URL does not apply. `go test -short` skips this test. A subtest can
// run alone (-run 'TestCluster/wipe'). The file builds on unix only (SIGSTOP);
// the partition subtest needs Linux's /proc.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/berth-registry/berth/chaos/faultproxy"
)

const (
	// Flags every node of the test cluster runs with (besides its addresses).
	clusterReplicateInterval = "500ms"
	clusterDeadNodeTimeout   = "5s"

	// failoverTarget is the target for the time from killing the
	// leader to the first successful write; failoverLimit fails the test.
	failoverTarget = 3 * time.Second
	failoverLimit  = 10 * time.Second

	// convergeTimeout bounds how long live nodes may take to reach the same
	// applied index with equal metadata digests.
	convergeTimeout = 30 * time.Second

	ociManifestType = "application/vnd.oci.image.manifest.v1+json"
	manifestAccept  = "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, " +
		"application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json"
)

func TestCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("cluster e2e: skipped in -short mode")
	}
	t.Setenv("BERTH_ADMIN_PASSWORD", e2eAdminPassword)
	start := time.Now()
	c := newEcluster(t, 3)
	t.Logf("cluster e2e: 3 nodes ready in %s", time.Since(start).Round(time.Millisecond))

	for _, st := range []struct {
		name string
		run  func(*testing.T)
	}{
		{"round-robin", c.testRoundRobin},
		{"kill-leader", c.testKillLeader},
		{"stop-follower", c.testStopFollower},
		{"snapshot-join", c.testSnapshotJoin},
		{"wipe", c.testWipe},
		{"performance", c.testPerformance},
		{"partition", c.testPartition},
	} {
		t.Run(st.name, func(t *testing.T) {
			began := time.Now()
			st.run(t)
			if !t.Failed() && st.name != "performance" {
				c.checkInvariants(t)
			}
			t.Logf("cluster e2e: %s took %s", st.name, time.Since(began).Round(time.Millisecond))
		})
	}
	t.Logf("cluster e2e: total %s", time.Since(start).Round(time.Millisecond))
}

// ---- the cluster ----

// ecluster is the cluster under test and what its subtests share.
type ecluster struct {
	e       *e2e // tools, client environment, the built binary
	t       *testing.T
	dir     string
	keyFile string
	token   string // the internal API credential (from the cluster key)
	nodes   []*cnode
	http    *http.Client
	acked   ackSet
	perf    perfFigures

	mu   sync.Mutex     // guards pids
	pids map[int]string // running node processes: pid -> node id
}

// cnode is one berth serve process of the cluster: its addresses and data dir
// survive restarts.
type cnode struct {
	c                    *ecluster
	id, dataDir, logPath string
	api, raft, gossip    string // what it listens on
	seed                 string // gossip address it joins ("" bootstraps)
	apiProxy, raftProxy  *faultproxy.Proxy
	starts               int
	cmd                  *exec.Cmd
	done                 chan struct{} // closed when cmd has exited
	waitErr              error         // valid after done is closed
	paused               bool          // SIGSTOPped
	removed              bool          // left the cluster for good
}

func newEcluster(t *testing.T, size int) *ecluster {
	root, err := repoRoot()
	if err != nil {
		t.Fatalf("cluster e2e: %v", err)
	}
	e := &e2e{
		root:     root,
		shared:   filepath.Clean(filepath.Join(root, "..", "shared", "tools")),
		toolsBin: toolsBin(),
		require:  os.Getenv(envE2ERequire) == "1",
		runID:    randomHex(t, 4),
	}
	work := t.TempDir()
	e.clientEnv = clientEnv(t, work)
	e.race = raceBuild()
	e.bin = buildBerth(t, root, filepath.Join(work, "berth"), e.race)

	c := &ecluster{
		e:    e,
		t:    t,
		dir:  t.TempDir(),
		pids: map[int]string{},
		http: &http.Client{Transport: &http.Transport{
			MaxIdleConnsPerHost: 64, IdleConnTimeout: time.Minute, DisableCompression: true,
		}},
	}
	c.keyFile = filepath.Join(c.dir, "cluster.key")
	key := randomBytes(t, 32)
	if err := os.WriteFile(c.keyFile, []byte(hex.EncodeToString(key)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	m := hmac.New(sha256.New, key)
	m.Write([]byte("berth internal api v1"))
	c.token = hex.EncodeToString(m.Sum(nil))

	t.Cleanup(c.shutdown)
	for i := 0; i < size; i++ {
		n := c.newNode(t)
		n.start(t)
		if i == 0 {
			// The others join through node 1; wait until it leads.
			c.waitLeader(t, 30*time.Second)
		}
	}
	c.waitMembers(t, c.live(), 30*time.Second)
	return c
}

// newNode adds a node (not started) with fresh addresses, data dir and proxies.
// Every node but the first joins the first.
func (c *ecluster) newNode(t *testing.T) *cnode {
	t.Helper()
	id := fmt.Sprintf("n%d", len(c.nodes)+1)
	n := &cnode{
		c: c, id: id,
		dataDir: filepath.Join(c.dir, id, "data"),
		logPath: filepath.Join(c.dir, id+".log"),
		api:     freeAddr(t),
		raft:    freeAddr(t),
		gossip:  freeGossipAddr(t),
	}
	if len(c.nodes) > 0 {
		n.seed = c.nodes[0].gossip
	}
	var err error
	if n.apiProxy, err = faultproxy.New(faultproxy.Config{Target: n.api, Source: c.source}); err != nil {
		t.Fatal(err)
	}
	if n.raftProxy, err = faultproxy.New(faultproxy.Config{Target: n.raft, Source: c.source}); err != nil {
		t.Fatal(err)
	}
	c.nodes = append(c.nodes, n)
	return n
}

// source names the node process that dialed a proxied connection ("" for
// anything else, such as this test).
func (c *ecluster) source(conn net.Conn) string {
	c.mu.Lock()
	pids := make([]int, 0, len(c.pids))
	for pid := range c.pids {
		pids = append(pids, pid)
	}
	c.mu.Unlock()
	pid, err := faultproxy.PeerProcess(conn, pids)
	if err != nil {
		return ""
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.pids[pid]
}

// freeGossipAddr is a port free for both TCP and UDP (memberlist binds both).
func freeGossipAddr(t *testing.T) string {
	t.Helper()
	for range 100 {
		addr := freeAddr(t)
		if pc, err := net.ListenPacket("udp", addr); err == nil {
			pc.Close()
			return addr
		}
	}
	t.Fatal("no free TCP+UDP port")
	return ""
}

func (n *cnode) args() []string {
	args := []string{"serve",
		"--node-id", n.id,
		"--data-dir", n.dataDir,
		"--listen", n.api,
		"--raft-listen", n.raft,
		"--gossip-listen", n.gossip,
		"--advertise", n.apiProxy.Addr(),
		"--raft-advertise", n.raftProxy.Addr(),
		"--cluster-key-file", n.c.keyFile,
		"--replicate-interval", clusterReplicateInterval,
		"--dead-node-timeout", clusterDeadNodeTimeout,
		// Small, to make a new node catch up through a snapshot. Trailing logs
		// stay well above the snapshot threshold: hashicorp/raft v1.8 panics
		// ("log not found") when a returning node's own log starts after the
		// snapshot the leader installs on it (its installSnapshot keeps a stale
		// last-log index; hashicorp/raft#697), which trailing logs far below
		// the threshold made possible here.
		"--raft-snapshot-threshold", "16",
		"--raft-snapshot-interval", "1s",
		"--raft-trailing-logs", "64",
		"--token-ttl", "1h",
		"--shutdown-timeout", "10s",
	}
	if n.seed != "" {
		args = append(args, "--join", n.seed)
	}
	return args
}

// start runs the node on its data dir and waits until its API answers (a
// joining node listens only once it has a Raft leader).
func (n *cnode) start(t *testing.T) {
	t.Helper()
	n.starts++
	logf, err := os.OpenFile(n.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	args := n.args()
	fmt.Fprintf(logf, "==== cluster e2e: start #%d: %s %s\n", n.starts, n.c.e.bin, strings.Join(args, " "))
	cmd := exec.Command(n.c.e.bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	killWithParent(cmd)
	if err := cmd.Start(); err != nil {
		logf.Close()
		t.Fatalf("start %s: %v", n.id, err)
	}
	n.cmd, n.done, n.paused, n.removed = cmd, make(chan struct{}), false, false
	n.c.mu.Lock()
	n.c.pids[cmd.Process.Pid] = n.id
	n.c.mu.Unlock()
	go func(done chan struct{}) {
		n.waitErr = cmd.Wait()
		logf.Close()
		close(done)
	}(n.done)

	ctx, cancel := context.WithTimeout(t.Context(), readyTimeout)
	defer cancel()
	began := time.Now()
	if err := waitReady(ctx, n.url(), n.done); err != nil {
		n.kill()
		t.Fatalf("%s (start #%d) not ready on %s: %v (exit: %v)", n.id, n.starts, n.api, err, n.exitErr())
	}
	t.Logf("cluster e2e: %s (start #%d, pid %d) ready on %s in %s", n.id, n.starts, cmd.Process.Pid, n.api, time.Since(began).Round(time.Millisecond))
}

func (n *cnode) url() string { return "http://" + n.api }

func (n *cnode) running() bool {
	if n.done == nil {
		return false
	}
	select {
	case <-n.done:
		return false
	default:
		return true
	}
}

func (n *cnode) exitErr() error {
	if n.running() {
		return errors.New("still running")
	}
	return n.waitErr
}

func (n *cnode) forget() {
	n.c.mu.Lock()
	delete(n.c.pids, n.cmd.Process.Pid)
	n.c.mu.Unlock()
}

// kill sends SIGKILL and waits for the exit.
func (n *cnode) kill() {
	if !n.running() {
		return
	}
	_ = n.cmd.Process.Kill()
	<-n.done
	n.forget()
}

// terminate sends SIGTERM (a drain) and waits for exit status 0.
func (n *cnode) terminate() error {
	if !n.running() {
		return fmt.Errorf("%s is not running (exit: %v)", n.id, n.waitErr)
	}
	if n.paused {
		_ = n.cmd.Process.Signal(syscall.SIGCONT)
		n.paused = false
	}
	if err := n.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return err
	}
	defer n.forget()
	select {
	case <-n.done:
	case <-time.After(stopTimeout):
		_ = n.cmd.Process.Kill()
		<-n.done
		return fmt.Errorf("%s did not exit within %s of SIGTERM; killed", n.id, stopTimeout)
	}
	if n.waitErr != nil {
		return fmt.Errorf("%s: exit after SIGTERM: %v (want exit status 0)", n.id, n.waitErr)
	}
	return nil
}

func (n *cnode) signal(t *testing.T, sig syscall.Signal) {
	t.Helper()
	if err := n.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("%s: %v: %v", n.id, sig, err)
	}
	switch sig {
	case syscall.SIGSTOP:
		n.paused = true
	case syscall.SIGCONT:
		n.paused = false
	}
}

func (n *cnode) logSize() int64 {
	fi, err := os.Stat(n.logPath)
	if err != nil {
		return 0
	}
	return fi.Size()
}

// logContains reports whether a line of the node's log holds every needle.
func (n *cnode) logContains(needles ...string) bool { return n.logContainsSince(0, needles...) }

// logContainsSince is logContains for the log after offset.
func (n *cnode) logContainsSince(offset int64, needles ...string) bool {
	b, err := os.ReadFile(n.logPath)
	if err != nil || int64(len(b)) < offset {
		return false
	}
	b = b[offset:]
	for _, l := range bytes.Split(b, []byte("\n")) {
		all := true
		for _, s := range needles {
			if !bytes.Contains(l, []byte(s)) {
				all = false
				break
			}
		}
		if all {
			return true
		}
	}
	return false
}

// shutdown stops every node (SIGTERM, in parallel), fails the test on a data
// race report, and shows the nodes' logs when the test failed.
func (c *ecluster) shutdown() {
	t := c.t
	var wg sync.WaitGroup
	for _, n := range c.nodes {
		if !n.running() {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := n.terminate(); err != nil {
				t.Errorf("cluster e2e: stopping %s: %v", n.id, err)
			}
		}()
	}
	wg.Wait()
	for _, n := range c.nodes {
		_ = n.apiProxy.Close()
		_ = n.raftProxy.Close()
		if c.e.race && n.logContainsRace() {
			t.Errorf("cluster e2e: the race detector reported a data race in %s (see its log)", n.id)
		}
	}
	if t.Failed() {
		for _, n := range c.nodes {
			(&server{name: "cluster-" + n.id, logPath: n.logPath}).dumpLog(t)
		}
	}
}

func (n *cnode) logContainsRace() bool {
	b, err := os.ReadFile(n.logPath)
	return err == nil && bytes.Contains(b, []byte("WARNING: DATA RACE"))
}

// live returns the nodes that run and are members (paused ones included).
func (c *ecluster) live() []*cnode {
	var out []*cnode
	for _, n := range c.nodes {
		if n.running() && !n.removed {
			out = append(out, n)
		}
	}
	return out
}

func without(nodes []*cnode, drop ...*cnode) []*cnode {
	var out []*cnode
	for _, n := range nodes {
		if !slices.Contains(drop, n) {
			out = append(out, n)
		}
	}
	return out
}

func ids(nodes []*cnode) string {
	s := make([]string, len(nodes))
	for i, n := range nodes {
		s[i] = n.id
	}
	return strings.Join(s, ",")
}

// ---- observing the cluster ----

// metrics returns the berth_raft_* gauges of a node.
func (c *ecluster) raftGauges(ctx context.Context, n *cnode) (map[string]float64, error) {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, n.url()+"/metrics", nil)
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET /metrics: %s", resp.Status)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "berth_raft_") {
			continue
		}
		name, val, ok := strings.Cut(line, " ")
		if !ok || strings.Contains(name, "{") {
			continue
		}
		if v, err := strconv.ParseFloat(val, 64); err == nil {
			out[name] = v
		}
	}
	return out, sc.Err()
}

// waitLeader returns the node that leads (berth_raft_state 2), waiting up to d.
func (c *ecluster) waitLeader(t *testing.T, d time.Duration) *cnode {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		var leader *cnode
		var term float64
		for _, n := range c.live() {
			if n.paused {
				continue
			}
			g, err := c.raftGauges(t.Context(), n)
			if err == nil && g["berth_raft_state"] == 2 && g["berth_raft_term"] >= term {
				leader, term = n, g["berth_raft_term"]
			}
		}
		if leader != nil {
			return leader
		}
		if time.Now().After(deadline) {
			t.Fatalf("no raft leader among %s after %s", ids(c.live()), d)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitMembers waits until every node in nodes has the same leader and knows
// every other one as alive in gossip (berth_gossip_members), so copies can go
// everywhere.
func (c *ecluster) waitMembers(t *testing.T, nodes []*cnode, d time.Duration) {
	t.Helper()
	if err := c.membersAlive(t.Context(), nodes, d); err != nil {
		t.Fatal(err)
	}
}

// membersAlive is waitMembers returning the failure.
func (c *ecluster) membersAlive(ctx context.Context, nodes []*cnode, d time.Duration) error {
	deadline := time.Now().Add(d)
	for {
		var seen []string
		ok := true
		for _, n := range nodes {
			alive, err := c.gossipAlive(ctx, n)
			if err != nil || alive != len(nodes) {
				ok = false
			}
			seen = append(seen, fmt.Sprintf("%s sees %d alive (%v)", n.id, alive, err))
		}
		if ok {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("gossip: %s do not all see each other alive after %s: %s", ids(nodes), d, strings.Join(seen, "; "))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (c *ecluster) gossipAlive(ctx context.Context, n *cnode) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, n.url()+"/metrics", nil)
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if l := sc.Text(); strings.HasPrefix(l, "berth_gossip_members{") && strings.Contains(l, `state="alive"`) {
			_, v, _ := strings.Cut(l, "} ")
			f, err := strconv.ParseFloat(v, 64)
			return int(f), err
		}
	}
	return 0, fmt.Errorf("%s: no berth_gossip_members{state=\"alive\"} metric", n.id)
}

type stateDigest struct {
	Node   string `json:"node"`
	Index  uint64 `json:"index"`
	Digest string `json:"digest"`
}

func (c *ecluster) stateDigest(ctx context.Context, n *cnode) (stateDigest, error) {
	var sd stateDigest
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, n.url()+"/internal/v1/state-digest", nil)
	req.Header.Set("Authorization", "Berth-Cluster "+c.token)
	resp, err := c.http.Do(req)
	if err != nil {
		return sd, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
		return sd, fmt.Errorf("%s: state-digest: %s %s", n.id, resp.Status, bytes.TrimSpace(b))
	}
	err = json.NewDecoder(resp.Body).Decode(&sd)
	return sd, err
}

// waitConverged waits until every node in nodes reports the same applied index
// and then requires equal metadata digests at it.
func (c *ecluster) waitConverged(t *testing.T, nodes []*cnode, d time.Duration) {
	t.Helper()
	began := time.Now()
	deadline := began.Add(d)
	var last []stateDigest
	var lastErr error
	for time.Now().Before(deadline) {
		last, lastErr = last[:0], nil
		for _, n := range nodes {
			sd, err := c.stateDigest(t.Context(), n)
			if err != nil {
				lastErr = err
				break
			}
			last = append(last, sd)
		}
		if lastErr == nil && len(last) == len(nodes) {
			same := true
			for _, sd := range last[1:] {
				same = same && sd.Index == last[0].Index
			}
			if same {
				for _, sd := range last[1:] {
					if sd.Digest != last[0].Digest {
						t.Errorf("metadata diverged at applied index %d: %+v", last[0].Index, last)
						return
					}
				}
				t.Logf("cluster e2e: %s converged at applied index %d (digest %.12s) in %s",
					ids(nodes), last[0].Index, last[0].Digest, time.Since(began).Round(time.Millisecond))
				return
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s did not reach the same applied index within %s: last %+v (err %v)", ids(nodes), d, last, lastErr)
}

// checkInvariants: every acknowledged image is pullable, byte-identical, from
// every live node, and their metadata is equal.
func (c *ecluster) checkInvariants(t *testing.T) {
	t.Helper()
	live := c.live()
	c.waitConverged(t, live, convergeTimeout)
	c.checkPullable(t, live, c.acked.all())
}

// ensureAcked pushes a few images when no subtest has yet (a subtest run on
// its own with -run).
func (c *ecluster) ensureAcked(t *testing.T) []*timage {
	t.Helper()
	if images := c.acked.all(); len(images) > 0 {
		return images
	}
	live := c.live()
	for i := range 3 {
		im := newSmallImage(c.repo("seed"), fmt.Sprintf("s%d", i), 4<<10)
		if err := c.pushRetry(t.Context(), im, 20*time.Second, func() *cnode { return live[mrand.IntN(len(live))] }, nil); err != nil {
			t.Fatal(err)
		}
		c.acked.add(im)
	}
	return c.acked.all()
}

// ---- images and registry requests ----

// blobRef is one blob of a test image; data is nil for the big ones (checked
// by digest only).
type blobRef struct {
	digest string
	size   int64
	data   []byte
}

// timage is an image the test pushed or expects: its manifest bytes and blobs.
type timage struct {
	repo, tag string
	manifest  []byte
	digest    string
	blobs     []blobRef
}

// newSmallImage is a one-layer OCI image of random bytes.
func newSmallImage(repo, tag string, layerSize int) *timage {
	layer := make([]byte, layerSize)
	_, _ = rand.Read(layer)
	ld := sha256Digest(layer)
	config := fmt.Appendf(nil, `{"architecture":"amd64","os":"linux","config":{"Env":["TAG=%s"]},"rootfs":{"type":"layers","diff_ids":[%q]}}`, tag, ld)
	cd := sha256Digest(config)
	m := fmt.Appendf(nil, `{"schemaVersion":2,"mediaType":%q,"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":%q,"size":%d},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":%q,"size":%d}]}`,
		ociManifestType, cd, len(config), ld, len(layer))
	return &timage{repo: repo, tag: tag, manifest: m, digest: sha256Digest(m), blobs: []blobRef{
		{digest: cd, size: int64(len(config)), data: config},
		{digest: ld, size: int64(len(layer)), data: layer},
	}}
}

// imageFromManifest describes an image by its manifest as the registry holds
// it (pushed by a client tool); the blobs are checked by digest.
func imageFromManifest(t *testing.T, repo, tag string, m []byte) *timage {
	t.Helper()
	var doc struct {
		Config struct {
			Digest string `json:"digest"`
			Size   int64  `json:"size"`
		} `json:"config"`
		Layers []struct {
			Digest string `json:"digest"`
			Size   int64  `json:"size"`
		} `json:"layers"`
	}
	mustJSON(t, m, &doc)
	im := &timage{repo: repo, tag: tag, manifest: m, digest: sha256Digest(m)}
	im.blobs = append(im.blobs, blobRef{digest: doc.Config.Digest, size: doc.Config.Size})
	for _, l := range doc.Layers {
		im.blobs = append(im.blobs, blobRef{digest: l.Digest, size: l.Size})
	}
	return im
}

// ackSet is every image whose push was acknowledged (201 for its manifest).
type ackSet struct {
	mu   sync.Mutex // guards list
	list []*timage
}

func (a *ackSet) add(im ...*timage) {
	a.mu.Lock()
	a.list = append(a.list, im...)
	a.mu.Unlock()
}

func (a *ackSet) all() []*timage {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.list)
}

func (c *ecluster) repo(name string) string { return "library/cluster-" + c.e.runID + "/" + name }

// do sends one request with the admin's Basic credentials. hdr is key, value
// pairs.
func (c *ecluster) do(ctx context.Context, method, u string, body io.Reader, size int64, hdr ...string) (int, http.Header, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return 0, nil, nil, err
	}
	if body != nil {
		req.ContentLength = size
	}
	req.SetBasicAuth(e2eAdminUser, e2eAdminPassword)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	return resp.StatusCode, resp.Header, b, err
}

// pushBlob uploads a blob in one request (POST ?digest=); 201 is success.
func (c *ecluster) pushBlob(ctx context.Context, n *cnode, repo string, b blobRef) (int, []byte, error) {
	st, _, body, err := c.do(ctx, http.MethodPost, n.url()+"/v2/"+repo+"/blobs/uploads/?digest="+b.digest,
		bytes.NewReader(b.data), int64(len(b.data)), "Content-Type", "application/octet-stream")
	return st, body, err
}

func (c *ecluster) putManifest(ctx context.Context, n *cnode, im *timage, ref string) (int, []byte, error) {
	st, _, body, err := c.do(ctx, http.MethodPut, n.url()+"/v2/"+im.repo+"/manifests/"+ref,
		bytes.NewReader(im.manifest), int64(len(im.manifest)), "Content-Type", ociManifestType)
	return st, body, err
}

// pushOnce pushes an image through one node without retrying; it returns the
// first answer that is not a success.
func (c *ecluster) pushOnce(ctx context.Context, n *cnode, im *timage) (int, []byte, error) {
	for _, b := range im.blobs {
		if st, body, err := c.pushBlob(ctx, n, im.repo, b); err != nil || st != http.StatusCreated {
			return st, body, err
		}
	}
	return c.putManifest(ctx, n, im, im.tag)
}

// retryable: a connection error or a 5xx (a client behind a load balancer
// retries those on another node).
func retryable(st int, err error) bool { return err != nil || st >= 500 }

// pushRetry pushes an image, every request through a node pick returns,
// retrying connection errors and 5xx after a short backoff until budget is
// spent. ok is called with the send and answer times of every 201.
func (c *ecluster) pushRetry(ctx context.Context, im *timage, budget time.Duration, pick func() *cnode, ok func(sent, got time.Time)) error {
	deadline := time.Now().Add(budget)
	step := func(what string, send func(ctx context.Context, n *cnode) (int, []byte, error)) error {
		for attempt := 1; ; attempt++ {
			n := pick()
			rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			sent := time.Now()
			st, body, err := send(rctx, n)
			cancel()
			if err == nil && st == http.StatusCreated {
				if ok != nil {
					ok(sent, time.Now())
				}
				return nil
			}
			if !retryable(st, err) {
				return fmt.Errorf("%s %s:%s through %s: %d %s", what, im.repo, im.tag, n.id, st, oneLine(string(body), 300))
			}
			if time.Now().After(deadline) || ctx.Err() != nil {
				return fmt.Errorf("%s %s:%s: no success in %s (%d attempts; last through %s: %d %v %s)",
					what, im.repo, im.tag, budget, attempt, n.id, st, err, oneLine(string(body), 300))
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	for _, b := range im.blobs {
		if err := step("blob "+b.digest[:19], func(ctx context.Context, n *cnode) (int, []byte, error) {
			return c.pushBlob(ctx, n, im.repo, b)
		}); err != nil {
			return err
		}
	}
	return step("manifest", func(ctx context.Context, n *cnode) (int, []byte, error) {
		return c.putManifest(ctx, n, im, im.tag)
	})
}

// checkPullable pulls every image from every node (manifest by tag and by
// digest, every blob) and compares digests and bytes.
func (c *ecluster) checkPullable(t *testing.T, nodes []*cnode, images []*timage) {
	t.Helper()
	if len(images) == 0 {
		return
	}
	began := time.Now()
	var mu sync.Mutex
	var problems []string
	report := func(format string, args ...any) {
		mu.Lock()
		problems = append(problems, fmt.Sprintf(format, args...))
		mu.Unlock()
	}
	var wg sync.WaitGroup
	for _, n := range nodes {
		work := make(chan *timage)
		for range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for im := range work {
					if err := c.pullImage(t.Context(), n, im); err != nil {
						report("%s: %v", n.id, err)
					}
				}
			}()
		}
		go func() {
			for _, im := range images {
				work <- im
			}
			close(work)
		}()
	}
	wg.Wait()
	sort.Strings(problems)
	for i, p := range problems {
		if i == 20 {
			t.Errorf("... and %d more", len(problems)-20)
			break
		}
		t.Error(p)
	}
	if len(problems) == 0 {
		t.Logf("cluster e2e: %d images pulled from each of %s, byte-identical, in %s", len(images), ids(nodes), time.Since(began).Round(time.Millisecond))
	}
}

// pullImage pulls one image from one node and checks every byte by digest.
func (c *ecluster) pullImage(ctx context.Context, n *cnode, im *timage) error {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	for _, ref := range []string{im.tag, im.digest} {
		st, _, body, err := c.do(ctx, http.MethodGet, n.url()+"/v2/"+im.repo+"/manifests/"+ref, nil, 0, "Accept", manifestAccept)
		if err != nil || st != http.StatusOK {
			return fmt.Errorf("GET %s manifest %s: %d %v %s", im.repo, ref, st, err, oneLine(string(body), 200))
		}
		if !bytes.Equal(body, im.manifest) {
			return fmt.Errorf("GET %s manifest %s: %d bytes (%s), want %s", im.repo, ref, len(body), sha256Digest(body), im.digest)
		}
	}
	for _, b := range im.blobs {
		if err := c.pullBlob(ctx, n, im.repo, b); err != nil {
			return err
		}
	}
	return nil
}

func (c *ecluster) pullBlob(ctx context.Context, n *cnode, repo string, b blobRef) error {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, n.url()+"/v2/"+repo+"/blobs/"+b.digest, nil)
	req.SetBasicAuth(e2eAdminUser, e2eAdminPassword)
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("GET %s blob %s: %v", repo, b.digest, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("GET %s blob %s: %s %s", repo, b.digest, resp.Status, oneLine(string(msg), 200))
	}
	h := sha256.New()
	size, err := io.Copy(h, resp.Body)
	if err != nil {
		return fmt.Errorf("GET %s blob %s: after %d bytes: %v", repo, b.digest, size, err)
	}
	if got := "sha256:" + hex.EncodeToString(h.Sum(nil)); got != b.digest || size != b.size {
		return fmt.Errorf("GET %s blob %s: got %d bytes hashing to %s, want %d bytes", repo, b.digest, size, got, b.size)
	}
	return nil
}

// blobPath is where a node keeps a blob (blobstore layout).
func (n *cnode) blobPath(digest string) string {
	h := hexOf(digest)
	return filepath.Join(n.dataDir, "blobs", "sha256", h[:2], h)
}

func (n *cnode) hasBlob(digest string) bool {
	_, err := os.Stat(n.blobPath(digest))
	return err == nil
}

// ---- round-robin ----

// roundRobin is a load balancer that sends every request to the next backend.
type roundRobin struct {
	addr  string
	next  atomic.Uint64
	count []atomic.Int64
}

func (c *ecluster) startRoundRobin(t *testing.T, backends []*cnode) *roundRobin {
	t.Helper()
	lb := &roundRobin{count: make([]atomic.Int64, len(backends))}
	proxy := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			i := int(lb.next.Add(1)-1) % len(backends)
			lb.count[i].Add(1)
			pr.Out.URL.Scheme = "http"
			pr.Out.URL.Host = backends[i].api
			pr.Out.Host = pr.In.Host // the nodes build Location and realms for the client's host
		},
		FlushInterval: -1,
		Transport:     &http.Transport{DisableCompression: true, MaxIdleConnsPerHost: 16},
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: proxy, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close() })
	lb.addr = ln.Addr().String()
	return lb
}

func (c *ecluster) testRoundRobin(t *testing.T) {
	crane := c.e.need(t, "crane", c.e.goInstallHint(craneModule))
	r := c.e.runner(t, 3*time.Minute)
	nodes := c.live()
	lb := c.startRoundRobin(t, nodes)
	c.e.login(t, lb.addr)
	for _, n := range nodes {
		c.e.login(t, n.api)
	}
	dir := t.TempDir()
	base := lb.addr + "/" + c.repo("rr")

	// crane push of two OCI layouts, every request to the next node.
	var pushed []*timage
	images := map[string]*image{}
	for _, tag := range []string{"v1", "v2"} {
		im := newImage(t, 1<<20, 64<<10)
		layout := filepath.Join(dir, tag)
		im.writeLayout(t, layout, tag)
		r.run("", crane, "push", "--insecure", layout, base+":"+tag)
		images[tag] = im
		pushed = append(pushed, &timage{repo: c.repo("rr"), tag: tag, manifest: im.manifest, digest: im.manifestDigest,
			blobs: imageFromManifest(t, c.repo("rr"), tag, im.manifest).blobs})
	}
	// crane copy to another repository (a cross-repository mount or re-upload).
	r.run("", crane, "copy", "--insecure", base+":v1", lb.addr+"/"+c.repo("rr-copy")+":v1")
	cp := *pushed[0]
	cp.repo = c.repo("rr-copy")
	pushed = append(pushed, &cp)

	t.Run("skopeo", func(t *testing.T) {
		skopeo := c.e.need(t, "skopeo", "apt-get install -y skopeo")
		g := []string{"--insecure-policy"}
		// An OCI layout pushed by skopeo, and a registry-to-registry copy.
		im := newImage(t, 512<<10)
		layout := filepath.Join(dir, "skopeo")
		im.writeLayout(t, layout, "v3")
		r.run("", skopeo, append(g, "copy", "-q", "--dest-tls-verify=false", "oci:"+layout+":v3", "docker://"+lb.addr+"/"+c.repo("rr-skopeo")+":v3")...)
		r.run("", skopeo, append(g, "copy", "-q", "--src-tls-verify=false", "--dest-tls-verify=false",
			"docker://"+base+":v2", "docker://"+lb.addr+"/"+c.repo("rr-skopeo")+":v2")...)
		for _, tag := range []string{"v3", "v2"} {
			raw := r.run("", skopeo, append(g, "inspect", "--raw", "--tls-verify=false", "docker://"+lb.addr+"/"+c.repo("rr-skopeo")+":"+tag)...)
			pushed = append(pushed, imageFromManifest(t, c.repo("rr-skopeo"), tag, raw))
		}
		if got := pushed[len(pushed)-1].digest; got != images["v2"].manifestDigest {
			t.Errorf("skopeo copy registry to registry: digest %s, want %s", got, images["v2"].manifestDigest)
		}
	})

	// Every node served a share of the requests.
	var shares []string
	for i, n := range nodes {
		got := lb.count[i].Load()
		shares = append(shares, fmt.Sprintf("%s=%d", n.id, got))
		if got == 0 {
			t.Errorf("the load balancer sent nothing to %s", n.id)
		}
	}
	t.Logf("cluster e2e: round-robin requests per node: %s", strings.Join(shares, " "))

	// Every image from every node directly, by digest.
	c.checkPullable(t, nodes, pushed)
	// And with crane from each node: a full pull as an OCI layout.
	for _, n := range nodes {
		out := filepath.Join(dir, "pull-"+n.id)
		r.run("", crane, "pull", "--insecure", "--format", "oci", n.api+"/"+c.repo("rr")+":v1", out)
		images["v1"].checkLayoutBlobs(t, out)
		if got := strings.TrimSpace(string(r.run("", crane, "digest", "--insecure", n.api+"/"+c.repo("rr-copy")+":v1"))); got != images["v1"].manifestDigest {
			t.Errorf("crane digest on %s: %s, want %s", n.id, got, images["v1"].manifestDigest)
		}
	}
	if !t.Failed() {
		c.acked.add(pushed...)
	}
}

// ---- kill -9 the leader ----

func (c *ecluster) testKillLeader(t *testing.T) {
	leader := c.waitLeader(t, 15*time.Second)
	repo := c.repo("stream")
	nodes := c.live()
	pick := func() *cnode { return nodes[mrand.IntN(len(nodes))] } // the dead one too: a client does not know

	var (
		mu         sync.Mutex // guards the fields below
		acked      []*timage
		killedAt   time.Time
		firstWrite time.Time // the first 201 of a request sent after the kill
		failures   []error
	)
	onOK := func(sent, got time.Time) {
		mu.Lock()
		defer mu.Unlock()
		if !killedAt.IsZero() && !sent.Before(killedAt) && firstWrite.IsZero() {
			firstWrite = got
		}
	}
	ctx, cancel := context.WithCancel(t.Context())
	var stop atomic.Bool
	const workers = 2
	var wg sync.WaitGroup
	defer func() { // also when the test fails half way
		stop.Store(true)
		cancel()
		wg.Wait()
	}()
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; !stop.Load() && ctx.Err() == nil; i++ {
				im := newSmallImage(repo, fmt.Sprintf("w%d-%03d", w, i), 2<<10)
				if err := c.pushRetry(ctx, im, 20*time.Second, pick, onOK); err != nil {
					if ctx.Err() == nil {
						mu.Lock()
						failures = append(failures, err)
						mu.Unlock()
					}
					continue
				}
				mu.Lock()
				acked = append(acked, im)
				mu.Unlock()
			}
		}()
	}
	count := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(acked)
	}
	waitUntil(t, 20*time.Second, "10 pushes before the kill", func() bool { return count() >= 10 })

	survivors := without(c.live(), leader)
	logMarks := map[*cnode]int64{}
	for _, n := range survivors {
		logMarks[n] = n.logSize()
	}
	mu.Lock()
	killedAt = time.Now()
	mu.Unlock()
	leader.kill()
	before := count()
	t.Logf("cluster e2e: killed the leader %s (kill -9) after %d acknowledged pushes", leader.id, before)
	waitUntil(t, 30*time.Second, "a successful write after the kill", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return !firstWrite.IsZero()
	})
	waitUntil(t, 20*time.Second, "10 more pushes after the failover", func() bool { return count() >= before+10 })
	stop.Store(true)
	wg.Wait()
	t.Logf("cluster e2e: the stream stopped %s after the kill", time.Since(killedAt).Round(time.Millisecond))

	failover := firstWrite.Sub(killedAt)
	c.perf.failover = failover
	t.Logf("cluster e2e: leader failover: first successful write %s after kill -9 of %s (target %s); %d pushes acknowledged",
		failover.Round(time.Millisecond), leader.id, failoverTarget, len(acked))
	if failover > failoverLimit {
		t.Errorf("leader failover took %s, above the %s limit (target %s)", failover, failoverLimit, failoverTarget)
	}
	for _, err := range failures {
		t.Errorf("a push did not succeed through its retries: %v", err)
	}
	c.acked.add(acked...)
	c.checkPullable(t, survivors, acked)
	c.waitConverged(t, survivors, convergeTimeout)

	// The killed node stays down until the others have removed it from Raft
	// (dead in gossip for longer than --dead-node-timeout), then comes back
	// with its data and its own flags: it must rejoin and catch up.
	waitUntil(t, 30*time.Second, leader.id+" removed from the raft configuration", func() bool {
		for _, n := range survivors {
			if n.logContainsSince(logMarks[n], `"raft membership changed"`, `"change":"remove"`, `"server":"`+leader.id+`"`) {
				return true
			}
		}
		return false
	})
	downFor := time.Since(killedAt)
	leader.start(t)
	began := time.Now()
	if err := c.membersAlive(t.Context(), c.live(), 15*time.Second); err != nil {
		t.Errorf("%s (flags: %s) did not rejoin after being down %s, longer than --dead-node-timeout %s: %v",
			leader.id, joinFlag(leader), downFor.Round(time.Millisecond), clusterDeadNodeTimeout, err)
		// Let the next subtests run on three nodes: restart it with a seed.
		if leader.seed == "" {
			if err := leader.terminate(); err != nil {
				t.Errorf("stop %s: %v", leader.id, err)
				leader.kill()
			}
			leader.seed = survivors[0].gossip
			t.Logf("cluster e2e: restarting %s with --join %s so that the next subtests have three nodes", leader.id, leader.seed)
			leader.start(t)
			c.waitMembers(t, c.live(), 30*time.Second)
		}
		return
	}
	t.Logf("cluster e2e: %s restarted %s after the kill; gossip saw it alive everywhere %s later",
		leader.id, downFor.Round(time.Millisecond), time.Since(began).Round(time.Millisecond))
}

func joinFlag(n *cnode) string {
	if n.seed == "" {
		return "no --join: it bootstrapped the cluster"
	}
	return "--join " + n.seed
}

// waitUntil polls ok every 20ms for up to d.
func waitUntil(t *testing.T, d time.Duration, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// ---- SIGSTOP a follower ----

func (c *ecluster) testStopFollower(t *testing.T) {
	leader := c.waitLeader(t, 15*time.Second)
	f := without(c.live(), leader)[0]
	others := without(c.live(), f)
	repo := c.repo("stopped")
	const pause = 3500 * time.Millisecond // above the election timeout (1s) and the heartbeat timeout (1s)

	f.signal(t, syscall.SIGSTOP)
	stoppedAt := time.Now()
	defer func() {
		if f.paused {
			f.signal(t, syscall.SIGCONT)
		}
	}()
	t.Logf("cluster e2e: SIGSTOP %s (the leader is %s)", f.id, leader.id)

	// A push sent to the stopped node must not succeed: its client times out.
	type answer struct {
		st   int
		err  error
		body []byte
	}
	probe := make(chan answer, 1)
	go func() {
		im := newSmallImage(repo, "to-stopped", 1<<10)
		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
		defer cancel()
		st, body, err := c.pushOnce(ctx, f, im)
		probe <- answer{st, err, body}
	}()

	// Meanwhile pushes through the others go on until the SIGCONT.
	type span struct{ began, ended time.Time }
	var (
		mu     sync.Mutex // guards during and spans
		during []*timage
		spans  []span
	)
	var stopPushing atomic.Bool
	pushed := make(chan struct{})
	defer func() { // also when the test fails half way
		stopPushing.Store(true)
		<-pushed
	}()
	go func() {
		defer close(pushed)
		pick := func() *cnode { return others[mrand.IntN(len(others))] }
		for i := 0; !stopPushing.Load() && t.Context().Err() == nil; i++ {
			im := newSmallImage(repo, fmt.Sprintf("during-%02d", i), 4<<10)
			began := time.Now()
			if err := c.pushRetry(t.Context(), im, 20*time.Second, pick, nil); err != nil {
				t.Errorf("push through %s while %s is stopped: %v", ids(others), f.id, err)
				continue
			}
			mu.Lock()
			during = append(during, im)
			spans = append(spans, span{began, time.Now()})
			mu.Unlock()
		}
	}()
	if a := <-probe; a.err == nil {
		t.Errorf("a push to the stopped node %s was answered: %d %s; want no answer while it is stopped", f.id, a.st, oneLine(string(a.body), 200))
	} else {
		t.Logf("cluster e2e: push to the stopped node: no answer (%v)", a.err)
	}
	time.Sleep(time.Until(stoppedAt.Add(pause)))
	f.signal(t, syscall.SIGCONT)
	contAt := time.Now()
	stopPushing.Store(true)
	<-pushed
	var slowest time.Duration
	for _, sp := range spans {
		slowest = max(slowest, sp.ended.Sub(sp.began))
		// A push that was pending for seconds and got its answer only once
		// the stopped node ran again was waiting for it: the majority must
		// not depend on a node that does not answer.
		if sp.began.Before(contAt.Add(-2*time.Second)) && sp.ended.After(contAt) {
			t.Errorf("a push through %s was pending from %s before the SIGCONT of %s until %s after it: it waited for the stopped node",
				ids(others), contAt.Sub(sp.began).Round(time.Millisecond), f.id, sp.ended.Sub(contAt).Round(time.Millisecond))
		}
	}
	t.Logf("cluster e2e: SIGCONT %s after %s; %d images pushed through %s meanwhile, the slowest in %s (retries included)",
		f.id, pause, len(during), ids(others), slowest.Round(time.Millisecond))
	if len(during) == 0 {
		t.Errorf("no push through %s succeeded while %s was stopped", ids(others), f.id)
	}
	c.acked.add(during...)

	// Behind as it is, the node must not answer from stale state: what was
	// pushed while it was stopped is served (it catches up first) or refused
	// with 503, never 404.
	for _, im := range during {
		st, _, body, err := c.do(t.Context(), http.MethodGet, f.url()+"/v2/"+im.repo+"/manifests/"+im.tag, nil, 0, "Accept", manifestAccept)
		switch {
		case err != nil:
			t.Errorf("%s right after SIGCONT: GET %s: %v", f.id, im.tag, err)
		case st == http.StatusOK && !bytes.Equal(body, im.manifest):
			t.Errorf("%s right after SIGCONT: GET %s: wrong manifest %s", f.id, im.tag, sha256Digest(body))
		case st != http.StatusOK && st != http.StatusServiceUnavailable:
			t.Errorf("%s right after SIGCONT: GET %s: %d %s; want 200 (or 503), never an answer from stale state",
				f.id, im.tag, st, oneLine(string(body), 200))
		}
	}
	c.waitConverged(t, c.live(), convergeTimeout)
}

// ---- a new node catches up through a snapshot ----

func (c *ecluster) testSnapshotJoin(t *testing.T) {
	// The others compact their logs (threshold 16, 8 kept); make sure there
	// is more than that since the first entry.
	live := c.live()
	for i := range 20 {
		im := newSmallImage(c.repo("before-join"), fmt.Sprintf("b%02d", i), 1<<10)
		if err := c.pushRetry(t.Context(), im, 20*time.Second, func() *cnode { return live[mrand.IntN(len(live))] }, nil); err != nil {
			t.Fatal(err)
		}
		c.acked.add(im)
	}
	time.Sleep(2500 * time.Millisecond) // a snapshot interval or two (1s, jittered)

	n := c.newNode(t)
	n.seed = strings.Join([]string{c.nodes[0].gossip, c.nodes[1].gossip}, ",")
	n.start(t)
	live = c.live()
	c.waitMembers(t, live, 30*time.Second)
	c.waitConverged(t, live, convergeTimeout)
	if !n.logContains("Installed remote snapshot") {
		t.Errorf("%s caught up without installing a Raft snapshot (no \"Installed remote snapshot\" in its log); the test expects the log to be compacted", n.id)
	}
	c.checkPullable(t, []*cnode{n}, c.acked.all())

	// It leaves again (SIGTERM drains and leaves), so the next tests run on three.
	if err := n.terminate(); err != nil {
		t.Errorf("drain %s: %v", n.id, err)
	}
	n.removed = true
	waitUntil(t, 30*time.Second, n.id+" removed from the raft configuration", func() bool {
		for _, o := range c.live() {
			if o.logContains(`"raft membership changed"`, `"change":"remove"`, `"server":"`+n.id+`"`) {
				return true
			}
		}
		return false
	})
}

// ---- wipe a node's data directory ----

func (c *ecluster) testWipe(t *testing.T) {
	leader := c.waitLeader(t, 15*time.Second)
	var w *cnode
	for _, n := range c.live() {
		if n != leader && n.seed != "" { // it restarts with its --join: not the bootstrap node
			w = n
			break
		}
	}
	if w == nil {
		t.Fatalf("no follower with a --join flag among %s (leader %s)", ids(c.live()), leader.id)
	}
	others := without(c.live(), w)
	images := c.ensureAcked(t)

	// Pulls from the others go on the whole time and must all succeed.
	ctx, cancel := context.WithCancel(t.Context())
	var pulls atomic.Int64
	var pullErrs []error
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, o := range others {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ctx.Err() == nil; i++ {
				im := images[i%len(images)]
				if err := c.pullImage(ctx, o, im); err != nil && ctx.Err() == nil {
					mu.Lock()
					pullErrs = append(pullErrs, fmt.Errorf("%s: %w", o.id, err))
					mu.Unlock()
				}
				pulls.Add(1)
			}
		}()
	}

	w.kill()
	if err := os.RemoveAll(w.dataDir); err != nil {
		t.Fatal(err)
	}
	t.Logf("cluster e2e: killed %s and removed its data directory", w.id)
	w.start(t)
	c.waitMembers(t, c.live(), 30*time.Second)

	// replicas = all: every blob comes back to its disk.
	var want []string
	for _, im := range images {
		for _, b := range im.blobs {
			want = append(want, b.digest)
		}
	}
	began := time.Now()
	waitUntil(t, 60*time.Second, fmt.Sprintf("%d blob files back on %s", len(want), w.id), func() bool {
		for _, d := range want {
			if !w.hasBlob(d) {
				return false
			}
		}
		return true
	})
	t.Logf("cluster e2e: %s holds all %d blobs again %s after its restart", w.id, len(want), time.Since(began).Round(time.Millisecond))
	cancel()
	wg.Wait()
	t.Logf("cluster e2e: %d pulls from %s while %s was wiped and repaired", pulls.Load(), ids(others), w.id)
	for i, err := range pullErrs {
		if i == 10 {
			t.Errorf("... and %d more failed pulls", len(pullErrs)-10)
			break
		}
		t.Errorf("a pull failed while %s was wiped: %v", w.id, err)
	}
}

// ---- partition a follower ----

// partition cuts f's Raft and API links both ways with mode m: everything
// sent to f's proxies, and everything f sends to the others' proxies.
func (c *ecluster) partition(f *cnode, m faultproxy.Mode) {
	for _, n := range c.nodes {
		if n == f {
			n.raftProxy.SetMode(m)
			n.apiProxy.SetMode(m)
			continue
		}
		n.raftProxy.SetSourceMode(f.id, m)
		n.apiProxy.SetSourceMode(f.id, m)
	}
}

func (c *ecluster) heal() {
	for _, n := range c.nodes {
		for _, p := range []*faultproxy.Proxy{n.raftProxy, n.apiProxy} {
			p.SetMode(faultproxy.Pass)
			p.ClearSourceModes()
		}
	}
}

func (c *ecluster) testPartition(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("partition: the proxies tell the nodes' connections apart through /proc (Linux only)")
	}
	leader := c.waitLeader(t, 15*time.Second)
	f := without(c.live(), leader)[0]
	others := without(c.live(), f)
	pickOther := func() *cnode { return others[mrand.IntN(len(others))] }
	repo := c.repo("partition")
	existing := c.ensureAcked(t)[0] // its blobs are on every node

	// writeBound is how long a write to the cut-off node may take to be
	// refused: a follower forwards a write to the leader it last knew for up
	// to 30s (node.Propose) before it answers 503.
	const writeBound = 35 * time.Second

	for _, mode := range []faultproxy.Mode{faultproxy.Drop, faultproxy.Blackhole} {
		t.Run(mode.String(), func(t *testing.T) {
			// What the others' Raft proxies did to f's connections proves
			// that its outgoing links were cut too (they count nothing else).
			cutCount := func() (n int64) {
				for _, o := range others {
					s := o.raftProxy.Stats()
					n += s.Dropped + s.Held
				}
				return n
			}
			cutBefore := cutCount()
			c.partition(f, mode)
			cut := time.Now()
			healed := false
			defer func() {
				if !healed {
					c.heal()
				}
			}()
			t.Logf("cluster e2e: partitioned %s (%s); the leader is %s", f.id, mode, leader.id)

			// Writes sent to f: a metadata-only write (a new tag for an
			// image every node has) and a whole push, right away and once f
			// has lost its leader. Each must be refused in bounded time.
			type probe struct {
				what    string
				st      int
				err     error
				took    time.Duration
				pending *timage // what a 2xx would have acknowledged
			}
			var mu sync.Mutex
			var probes []probe
			var wg sync.WaitGroup
			send := func(delay time.Duration, what string, op func(ctx context.Context) (int, []byte, error), im *timage) {
				defer wg.Done()
				time.Sleep(delay)
				ctx, cancel := context.WithTimeout(t.Context(), writeBound+time.Second)
				defer cancel()
				began := time.Now()
				st, _, err := op(ctx)
				mu.Lock()
				probes = append(probes, probe{what, st, err, time.Since(began), im})
				mu.Unlock()
			}
			for round, delay := range []time.Duration{0, 2500 * time.Millisecond} {
				tagged := *existing
				tagged.tag = fmt.Sprintf("partitioned-%s-%d", mode, round)
				im := newSmallImage(repo, fmt.Sprintf("to-%s-%s-%d", f.id, mode, round), 2<<10)
				wg.Add(2)
				go send(delay, fmt.Sprintf("tag %s at +%s", tagged.tag, delay), func(ctx context.Context) (int, []byte, error) {
					return c.putManifest(ctx, f, &tagged, tagged.tag)
				}, &tagged)
				go send(delay, fmt.Sprintf("push %s at +%s", im.tag, delay), func(ctx context.Context) (int, []byte, error) {
					return c.pushOnce(ctx, f, im)
				}, im)
			}

			// Writes through the others go on (the majority has a leader),
			// three at once, each within a few seconds.
			var during []*timage
			var pushes sync.WaitGroup
			for i := range 3 {
				im := newSmallImage(repo, fmt.Sprintf("majority-%s-%d", mode, i), 4<<10)
				pushes.Add(1)
				go func() {
					defer pushes.Done()
					began := time.Now()
					if err := c.pushRetry(t.Context(), im, 15*time.Second, pickOther, nil); err != nil {
						t.Errorf("push through %s while %s is partitioned (%s): %v", ids(others), f.id, mode, err)
						return
					}
					if d := time.Since(began); d > 5*time.Second {
						t.Errorf("push %s through %s took %s while %s was partitioned (%s); a cut-off follower must not stall the majority",
							im.tag, ids(others), d.Round(time.Millisecond), f.id, mode)
					}
					mu.Lock()
					during = append(during, im)
					mu.Unlock()
				}()
			}
			pushes.Wait()

			// f must not serve what it cannot know: a read of an image pushed
			// meanwhile is refused (503), never answered 404 from stale state.
			for _, im := range during {
				ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
				began := time.Now()
				st, _, body, err := c.do(ctx, http.MethodGet, f.url()+"/v2/"+im.repo+"/manifests/"+im.tag, nil, 0, "Accept", manifestAccept)
				cancel()
				if err != nil || st != http.StatusServiceUnavailable {
					t.Errorf("partitioned %s (%s): GET %s: %d %v %s after %s; want 503 (it cannot catch up)",
						f.id, mode, im.tag, st, err, oneLine(string(body), 200), time.Since(began).Round(time.Millisecond))
				}
			}

			wg.Wait()
			for _, p := range probes {
				t.Logf("cluster e2e: write to partitioned %s (%s), %s: %d %v after %s", f.id, mode, p.what, p.st, p.err, p.took.Round(time.Millisecond))
				if p.err == nil && p.st >= 200 && p.st < 300 {
					// An acknowledgement must at least be durable on the
					// majority, which f cannot reach: check before healing.
					t.Errorf("partitioned %s acknowledged a write (%s: %d)", f.id, p.what, p.st)
					if err := c.pullImage(t.Context(), leader, p.pending); err != nil {
						t.Errorf("... and the leader %s does not have it: %v", leader.id, err)
					}
				}
				if p.took > writeBound {
					t.Errorf("a write to partitioned %s (%s), %s, was not refused within %s (%d %v after %s); want a bounded 503",
						f.id, mode, p.what, writeBound, p.st, p.err, p.took.Round(time.Millisecond))
				}
			}
			// f dials the others only once it stops hearing from the leader and
			// starts an election; when the writes above were refused quickly,
			// give it time to do so before checking its links were cut.
			for deadline := time.Now().Add(10 * time.Second); cutCount() == cutBefore && time.Now().Before(deadline); {
				time.Sleep(100 * time.Millisecond)
			}
			if cutCount() == cutBefore {
				t.Errorf("no Raft connection from %s to %s was cut during the partition: the proxies did not tell %s's connections apart", f.id, ids(others), f.id)
			}
			c.heal()
			healed = true
			t.Logf("cluster e2e: healed %s after %s", f.id, time.Since(cut).Round(time.Millisecond))
			c.acked.add(during...)
			c.waitConverged(t, c.live(), convergeTimeout)
			c.checkPullable(t, []*cnode{f}, during)
		})
	}
}

// ---- performance ----

type perfFigures struct {
	failover time.Duration
}

// bigBlob is a deterministic pseudo-random blob generated on the fly.
type bigBlob struct {
	seed   [32]byte
	size   int64
	digest string
}

func newBigBlob(t *testing.T, size int64) *bigBlob {
	b := &bigBlob{size: size}
	copy(b.seed[:], randomBytes(t, 32))
	h := sha256.New()
	if _, err := io.Copy(h, b.reader()); err != nil {
		t.Fatal(err)
	}
	b.digest = "sha256:" + hex.EncodeToString(h.Sum(nil))
	return b
}

func (b *bigBlob) reader() io.Reader { return io.LimitReader(mrand.NewChaCha8(b.seed), b.size) }

// pushBig uploads b through base (POST, then PUT with the whole body) and a
// manifest naming it, and returns the time it took.
func (c *ecluster) pushBig(ctx context.Context, base, repo string, b *bigBlob) (time.Duration, error) {
	began := time.Now()
	st, hdr, body, err := c.do(ctx, http.MethodPost, base+"/v2/"+repo+"/blobs/uploads/", nil, 0)
	if err != nil || st != http.StatusAccepted {
		return 0, fmt.Errorf("start upload: %d %v %s", st, err, oneLine(string(body), 200))
	}
	loc, err := url.Parse(hdr.Get("Location"))
	if err != nil {
		return 0, err
	}
	q := loc.Query()
	q.Set("digest", b.digest)
	loc.RawQuery = q.Encode()
	u := base + loc.String()
	if loc.IsAbs() {
		u = loc.String()
	}
	st, _, body, err = c.do(ctx, http.MethodPut, u, b.reader(), b.size, "Content-Type", "application/octet-stream")
	if err != nil || st != http.StatusCreated {
		return 0, fmt.Errorf("upload %d bytes: %d %v %s", b.size, st, err, oneLine(string(body), 200))
	}
	config := fmt.Appendf(nil, `{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[%q]}}`, b.digest)
	cref := blobRef{digest: sha256Digest(config), size: int64(len(config)), data: config}
	if st, _, body, err = c.do(ctx, http.MethodPost, base+"/v2/"+repo+"/blobs/uploads/?digest="+cref.digest,
		bytes.NewReader(config), cref.size); err != nil || st != http.StatusCreated {
		return 0, fmt.Errorf("config: %d %v %s", st, err, oneLine(string(body), 200))
	}
	m := fmt.Appendf(nil, `{"schemaVersion":2,"mediaType":%q,"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":%q,"size":%d},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":%q,"size":%d}]}`,
		ociManifestType, cref.digest, cref.size, b.digest, b.size)
	if st, _, body, err = c.do(ctx, http.MethodPut, base+"/v2/"+repo+"/manifests/big", bytes.NewReader(m), int64(len(m)),
		"Content-Type", ociManifestType); err != nil || st != http.StatusCreated {
		return 0, fmt.Errorf("manifest: %d %v %s", st, err, oneLine(string(body), 200))
	}
	return time.Since(began), nil
}

// pullBig downloads b from base, checks its digest and returns the time.
func (c *ecluster) pullBig(ctx context.Context, base, repo string, b *bigBlob) (time.Duration, error) {
	began := time.Now()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/v2/"+repo+"/blobs/"+b.digest, nil)
	req.SetBasicAuth(e2eAdminUser, e2eAdminPassword)
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("GET blob: %s", resp.Status)
	}
	h := sha256.New()
	n, err := io.Copy(h, resp.Body)
	if err != nil {
		return 0, err
	}
	if got := "sha256:" + hex.EncodeToString(h.Sum(nil)); got != b.digest || n != b.size {
		return 0, fmt.Errorf("GET blob: %d bytes hashing to %s, want %d bytes %s", n, got, b.size, b.digest)
	}
	return time.Since(began), nil
}

func mibps(size int64, d time.Duration) float64 { return float64(size) / (1 << 20) / d.Seconds() }

// pushSmall pushes count small images through the nodes in turn with a few
// concurrent clients, and returns images per second. blobDone, when not nil,
// is told every blob's 201 time.
func (c *ecluster) pushSmall(t *testing.T, nodes []*cnode, repo string, count int, blobDone func(digest string, at time.Time)) float64 {
	t.Helper()
	var next atomic.Int64
	var wg sync.WaitGroup
	var mu sync.Mutex
	var errs []error
	began := time.Now()
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= count {
					return
				}
				n := nodes[i%len(nodes)]
				im := newSmallImage(repo, fmt.Sprintf("p%03d", i), 16<<10)
				ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
				err := func() error {
					for _, b := range im.blobs {
						st, body, err := c.pushBlob(ctx, n, im.repo, b)
						if err != nil || st != http.StatusCreated {
							return fmt.Errorf("blob through %s: %d %v %s", n.id, st, err, oneLine(string(body), 200))
						}
						if blobDone != nil {
							blobDone(b.digest, time.Now())
						}
					}
					if st, body, err := c.putManifest(ctx, n, im, im.tag); err != nil || st != http.StatusCreated {
						return fmt.Errorf("manifest through %s: %d %v %s", n.id, st, err, oneLine(string(body), 200))
					}
					return nil
				}()
				cancel()
				if err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	rate := float64(count) / time.Since(began).Seconds()
	for _, err := range errs {
		t.Errorf("small image push: %v", err)
	}
	return rate
}

// single is a one-node berth for the comparison, started the way TestE2E does.
func (c *ecluster) single(t *testing.T) *cnode {
	s := startNewServer(t, c.e.bin, "cluster-perf-single", c.e.race)
	return &cnode{c: c, id: "single", api: s.addr, dataDir: s.dataDir}
}

func (c *ecluster) testPerformance(t *testing.T) {
	const bigSize = 256 << 20
	nodes := c.live()
	leader := c.waitLeader(t, 15*time.Second)
	follower := without(nodes, leader)[0]
	other := without(nodes, leader, follower)[0]
	single := c.single(t)
	big := newBigBlob(t, bigSize)
	ctx := t.Context()

	// A 256 MiB layer: pushed through a follower (its metadata is forwarded
	// to the leader; its 201 waits for a second copy), pulled back from the
	// same node and from another one.
	pushC, err := c.pushBig(ctx, follower.url(), c.repo("perf-big"), big)
	if err != nil {
		t.Fatalf("cluster: push 256 MiB through %s: %v", follower.id, err)
	}
	pushedAt := time.Now()
	pullC, err := c.pullBig(ctx, follower.url(), c.repo("perf-big"), big)
	if err != nil {
		t.Fatalf("cluster: pull 256 MiB from %s: %v", follower.id, err)
	}
	pullOther, err := c.pullBig(ctx, other.url(), c.repo("perf-big"), big)
	if err != nil {
		t.Fatalf("cluster: pull 256 MiB from %s: %v", other.id, err)
	}
	waitUntil(t, 60*time.Second, "the 256 MiB blob on every node", func() bool {
		for _, n := range nodes {
			if !n.hasBlob(big.digest) {
				return false
			}
		}
		return true
	})
	bigLag := time.Since(pushedAt)
	pushS, err := c.pushBig(ctx, single.url(), "library/perf-big", big)
	if err != nil {
		t.Fatalf("single node: push 256 MiB: %v", err)
	}
	pullS, err := c.pullBig(ctx, single.url(), "library/perf-big", big)
	if err != nil {
		t.Fatalf("single node: pull 256 MiB: %v", err)
	}

	// 50 small images, and the replication lag of each of their blobs: from
	// its 201 to its file being on every node.
	const small = 50
	var mu sync.Mutex
	waiting := map[string]time.Time{}
	var lags []time.Duration
	stopWatch := make(chan struct{})
	watchDone := make(chan struct{})
	go func() {
		defer close(watchDone)
		for {
			select {
			case <-stopWatch:
				return
			case <-time.After(5 * time.Millisecond):
			}
			mu.Lock()
			for d, at := range waiting {
				all := true
				for _, n := range nodes {
					if !n.hasBlob(d) {
						all = false
						break
					}
				}
				if all {
					lags = append(lags, time.Since(at))
					delete(waiting, d)
				}
			}
			mu.Unlock()
		}
	}()
	rateC := c.pushSmall(t, nodes, c.repo("perf-small"), small, func(d string, at time.Time) {
		mu.Lock()
		waiting[d] = at
		mu.Unlock()
	})
	waitUntil(t, 30*time.Second, "every small blob on every node", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(waiting) == 0
	})
	close(stopWatch)
	<-watchDone
	rateS := c.pushSmall(t, []*cnode{single}, "library/perf-small", small, nil)

	slices.Sort(lags)
	pct := func(p float64) time.Duration {
		if len(lags) == 0 {
			return 0
		}
		return lags[min(len(lags)-1, int(p*float64(len(lags))))]
	}
	load, _ := os.ReadFile("/proc/loadavg")
	t.Logf("cluster performance: (berth race=%v, %d CPUs shared by 3 nodes, 1 single node and the clients, load average %s; cluster traffic through faultproxies) "+
		"256 MiB layer push: cluster %.0f MiB/s (%s, through follower %s), single %.0f MiB/s (%s); "+
		"pull: cluster %.0f MiB/s same node, %.0f MiB/s other node, single %.0f MiB/s; third copy of the 256 MiB layer %s after its push; "+
		"%d small images: cluster %.1f images/s, single %.1f images/s; replication lag (blob 201 to file on all 3 nodes) p50 %s p99 %s over %d blobs; "+
		"leader failover (kill -9 to first successful write) %s",
		c.e.race, runtime.NumCPU(), strings.Join(strings.Fields(string(load))[:min(3, len(strings.Fields(string(load))))], " "), mibps(bigSize, pushC), pushC.Round(time.Millisecond), follower.id, mibps(bigSize, pushS), pushS.Round(time.Millisecond),
		mibps(bigSize, pullC), mibps(bigSize, pullOther), mibps(bigSize, pullS), bigLag.Round(time.Millisecond),
		small, rateC, rateS, pct(0.50).Round(time.Millisecond), pct(0.99).Round(time.Millisecond), len(lags),
		c.perf.failover.Round(time.Millisecond))
}
