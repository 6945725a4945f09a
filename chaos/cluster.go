package chaos

import (
	"bufio"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/berth-registry/berth/chaos/faultproxy"
)

// AdminUser and AdminPassword are the credentials the nodes are started with
// (BERTH_ADMIN_PASSWORD) and the workload uses.
const (
	AdminUser     = "admin"
	AdminPassword = "chaos-admin-password"
)

// orphanMinAge is the nodes' --gc-orphan-min-age: the final garbage
// collection starts this long after the last client operation, so every file
// left without a record is fair game to it.
const orphanMinAge = 10 * time.Second

// cluster is the set of berth processes under test. Its methods are safe for
// concurrent use.
type cluster struct {
	bin, dir, keyFile, token string
	http                     *http.Client
	nodes                    []*node
	net                      network
	tmpfs                    *node // the node whose data dir is a small tmpfs (full-disk fault), or nil

	mu      sync.Mutex     // guards pids and crashes
	pids    map[int]string // running node processes: pid -> node id
	crashes []crash
}

// crash is a node process that exited without being killed or stopped.
type crash struct {
	Node      string `json:"node"`
	At        string `json:"at"`
	Exit      string `json:"exit"`
	DiskFault bool   `json:"diskFault"` // a disk fault was on it: failing stop is expected
}

// node is one berth serve process; its addresses, data dir and proxies
// survive restarts.
type node struct {
	c                 *cluster
	idx               int
	id, dataDir, log  string
	api, raft, gossip string // what it listens on
	adv               nodeAddrs

	mu        sync.Mutex // guards the fields below
	seed      string     // gossip address it joins ("" bootstraps)
	starts    int
	cmd       *exec.Cmd
	done      chan struct{} // closed when cmd has exited
	paused    bool
	stopping  bool // the harness ends it: its exit is no crash
	diskFault bool // a disk fault is on: failing stop is expected
}

func (n *node) setDiskFault(on bool) {
	n.mu.Lock()
	n.diskFault = on
	n.mu.Unlock()
}

func newCluster(bin, dir string, size int, prefix string, forceProxy bool) (*cluster, error) {
	c := &cluster{bin: bin, dir: dir, pids: map[int]string{},
		http: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64, IdleConnTimeout: time.Minute, DisableCompression: true}},
	}
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	c.keyFile = filepath.Join(dir, "cluster.key")
	if err := os.WriteFile(c.keyFile, []byte(hex.EncodeToString(key)+"\n"), 0o600); err != nil {
		return nil, err
	}
	m := hmac.New(sha256.New, key)
	m.Write([]byte("berth internal api v1"))
	c.token = hex.EncodeToString(m.Sum(nil))
	var err error
	if c.net, err = newNetwork(c, size, prefix, forceProxy); err != nil {
		return nil, err
	}
	for i := range size {
		n := &node{c: c, idx: i, id: fmt.Sprintf("n%d", i+1), dataDir: filepath.Join(dir, fmt.Sprintf("n%d", i+1)), log: filepath.Join(dir, fmt.Sprintf("n%d.log", i+1))}
		listen, adv, err := c.net.addrs(i)
		if err != nil {
			c.net.close()
			return nil, err
		}
		n.api, n.raft, n.gossip, n.adv = listen.api, listen.raft, listen.gossip, adv
		if i > 0 {
			n.seed = c.nodes[0].adv.gossip
		}
		c.nodes = append(c.nodes, n)
	}
	return c, nil
}

// freeAddr returns a free 127.0.0.1 port, free for UDP too when udp is set
// (memberlist binds both).
func freeAddr(udp bool) (string, error) {
	for range 100 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return "", err
		}
		addr := l.Addr().String()
		l.Close()
		if !udp {
			return addr, nil
		}
		if pc, err := net.ListenPacket("udp", addr); err == nil {
			pc.Close()
			return addr, nil
		}
	}
	return "", errors.New("chaos: no free TCP+UDP port")
}

// source names the node process that dialed a proxied connection.
func (c *cluster) source(conn net.Conn) string {
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

func (n *node) url() string { return "http://" + n.api }

func (n *node) args() []string {
	args := []string{"serve",
		"--node-id", n.id, "--data-dir", n.dataDir,
		"--listen", n.api, "--raft-listen", n.raft, "--gossip-listen", n.gossip,
		"--advertise", n.adv.api, "--raft-advertise", n.adv.raft, "--gossip-advertise", n.adv.gossip,
		"--cluster-key-file", n.c.keyFile,
		"--replicate-interval", "500ms",
		// Longer than any fault the nemesis holds: a killed node keeps its
		// Raft membership and comes back with its data.
		"--dead-node-timeout", "60s",
		"--raft-snapshot-threshold", "64", "--raft-snapshot-interval", "2s", "--raft-trailing-logs", "256",
		"--token-ttl", "1h", "--shutdown-timeout", "10s",
		// Garbage collection as tight as it goes: every unreachable blob is
		// fair game at once (an upload racing a run loses, and its manifest
		// is refused), and a deleted item is reclaimed after 3s.
		"--gc-grace-period", "0", "--gc-deleted-retention", "3s", "--gc-orphan-min-age", orphanMinAge.String(),
	}
	if n.seed != "" {
		args = append(args, "--join", n.seed)
	}
	return args
}

// start runs the node and waits until its API answers.
func (n *node) start(ctx context.Context) error {
	done, err := n.launch()
	if err != nil {
		return err
	}
	return n.waitReady(ctx, 60*time.Second, done)
}

// launch runs the node; done is closed when it exits.
func (n *node) launch() (<-chan struct{}, error) {
	n.mu.Lock()
	n.starts++
	logf, err := os.OpenFile(n.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		n.mu.Unlock()
		return nil, err
	}
	args := n.args()
	fmt.Fprintf(logf, "==== chaos: start #%d at %s: %s %s\n", n.starts, time.Now().UTC().Format(time.RFC3339Nano), n.c.bin, strings.Join(args, " "))
	cmd := n.c.net.command(n.idx, n.c.bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = append(os.Environ(), "BERTH_ADMIN_PASSWORD="+AdminPassword)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		n.mu.Unlock()
		return nil, fmt.Errorf("start %s: %w", n.id, err)
	}
	done := make(chan struct{})
	n.cmd, n.done, n.paused, n.stopping = cmd, done, false, false
	n.mu.Unlock()
	n.c.mu.Lock()
	n.c.pids[cmd.Process.Pid] = n.id
	n.c.mu.Unlock()
	go func() {
		err := cmd.Wait()
		fmt.Fprintf(logf, "==== chaos: %s exited at %s: %v\n", n.id, time.Now().UTC().Format(time.RFC3339Nano), err)
		logf.Close()
		n.mu.Lock()
		expected, disk := n.stopping, n.diskFault
		n.mu.Unlock()
		n.c.mu.Lock()
		delete(n.c.pids, cmd.Process.Pid)
		if !expected {
			n.c.crashes = append(n.c.crashes, crash{Node: n.id, At: time.Now().UTC().Format(time.RFC3339Nano), Exit: fmt.Sprint(err), DiskFault: disk})
		}
		n.c.mu.Unlock()
		close(done)
	}()
	return done, nil
}

func (n *node) waitReady(ctx context.Context, d time.Duration, exited <-chan struct{}) error {
	cl := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(d)
	var last error
	for time.Now().Before(deadline) {
		resp, err := cl.Get(n.url() + "/v2/")
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusUnauthorized {
				return nil
			}
			err = fmt.Errorf("GET /v2/: %s", resp.Status)
		}
		last = err
		select {
		case <-exited:
			return fmt.Errorf("%s exited before it was ready (see %s; last probe: %v)", n.id, n.log, last)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return fmt.Errorf("%s not ready within %s (last probe: %v)", n.id, d, last)
}

func (n *node) running() bool {
	n.mu.Lock()
	done := n.done
	n.mu.Unlock()
	if done == nil {
		return false
	}
	select {
	case <-done:
		return false
	default:
		return true
	}
}

func (n *node) isPaused() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.paused
}

// kill sends SIGKILL (after SIGCONT if paused) and waits for the exit.
func (n *node) kill() {
	if !n.running() {
		return
	}
	n.mu.Lock()
	cmd, done := n.cmd, n.done
	n.paused, n.stopping = false, true
	n.mu.Unlock()
	_ = cmd.Process.Kill()
	<-done
}

// restart starts the node again unless it runs. The node that bootstrapped
// the cluster rejoins through another one.
func (n *node) restart(ctx context.Context) error {
	if n.running() {
		return nil
	}
	n.mu.Lock()
	if n.seed == "" {
		for _, o := range n.c.nodes {
			if o != n {
				n.seed = o.adv.gossip
				break
			}
		}
	}
	n.mu.Unlock()
	return n.start(ctx)
}

// startAll starts every node that does not run, together (a cluster that
// lost them all needs a quorum back before any answers).
func (c *cluster) startAll(ctx context.Context) error {
	var mu sync.Mutex
	var first error
	var wg sync.WaitGroup
	for _, n := range c.nodes {
		if n.running() {
			continue
		}
		wg.Go(func() {
			if err := n.restart(ctx); err != nil {
				mu.Lock()
				if first == nil {
					first = err
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return first
}

// setFaults replaces the storage faults and clock offset of a node (the
// chaos build's PUT /internal/v1/faults).
func (c *cluster) setFaults(ctx context.Context, n *node, body string) error {
	return c.internal(ctx, n, http.MethodPut, "/internal/v1/faults", body)
}

func (c *cluster) clearFaults(ctx context.Context, n *node) error {
	return c.internal(ctx, n, http.MethodDelete, "/internal/v1/faults", "")
}

func (c *cluster) internal(ctx context.Context, n *node, method, path, body string) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, _ := http.NewRequestWithContext(ctx, method, n.url()+path, rd)
	req.Header.Set("Authorization", "Berth-Cluster "+c.token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("%s: %s %s: %w", n.id, method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s: %s %s: %s %s", n.id, method, path, resp.Status, strings.TrimSpace(string(b)))
	}
	return nil
}

func (n *node) signal(sig syscall.Signal) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd == nil {
		return fmt.Errorf("%s: not started", n.id)
	}
	if err := n.cmd.Process.Signal(sig); err != nil {
		return fmt.Errorf("%s: %v: %w", n.id, sig, err)
	}
	n.paused = sig == syscall.SIGSTOP
	return nil
}

// stop ends the node with SIGTERM, then SIGKILL after 20s.
func (n *node) stop() {
	if !n.running() {
		return
	}
	if n.isPaused() {
		_ = n.signal(syscall.SIGCONT)
	}
	n.mu.Lock()
	n.stopping = true
	n.mu.Unlock()
	_ = n.signal(syscall.SIGTERM)
	n.mu.Lock()
	done := n.done
	n.mu.Unlock()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		n.kill()
	}
}

// shutdown stops every node and closes the proxies.
func (c *cluster) shutdown() {
	var wg sync.WaitGroup
	for _, n := range c.nodes {
		wg.Go(n.stop)
	}
	wg.Wait()
	_ = c.net.close()
}

// raftGauges returns berth_raft_term and berth_raft_state of a node.
func (c *cluster) raftGauges(ctx context.Context, n *node) (term, state float64, err error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, n.url()+"/metrics", nil)
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, 0, fmt.Errorf("GET /metrics: %s", resp.Status)
	}
	found := 0
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		name, val, ok := strings.Cut(sc.Text(), " ")
		if !ok {
			continue
		}
		v, perr := strconv.ParseFloat(val, 64)
		switch {
		case perr != nil:
		case name == "berth_raft_term":
			term, found = v, found+1
		case name == "berth_raft_state":
			state, found = v, found+1
		}
	}
	if err := sc.Err(); err != nil {
		return 0, 0, err
	}
	if found < 2 {
		return 0, 0, errors.New("no berth_raft_term/berth_raft_state in /metrics")
	}
	return term, state, nil
}

// leader returns the running, unpaused node that leads in the highest term,
// or nil.
func (c *cluster) leader(ctx context.Context) *node {
	var best *node
	var bestTerm float64 = -1
	for _, n := range c.nodes {
		if !n.running() || n.isPaused() {
			continue
		}
		term, state, err := c.raftGauges(ctx, n)
		if err == nil && state == 2 && term > bestTerm {
			best, bestTerm = n, term
		}
	}
	return best
}

func (c *cluster) waitLeader(ctx context.Context, d time.Duration) (*node, error) {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		if l := c.leader(ctx); l != nil {
			return l, nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return nil, fmt.Errorf("no raft leader within %s", d)
}

type stateDigest struct {
	Node   string `json:"node"`
	Index  uint64 `json:"index"`
	Digest string `json:"digest"`
}

func (c *cluster) stateDigest(ctx context.Context, n *node) (stateDigest, error) {
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
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return sd, fmt.Errorf("%s: state-digest: %s %s", n.id, resp.Status, strings.TrimSpace(string(b)))
	}
	err = json.NewDecoder(resp.Body).Decode(&sd)
	return sd, err
}
