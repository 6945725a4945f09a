package chaos

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/berth-registry/berth/chaos/netns"
)

// Config configures one run.
type Config struct {
	Bin      string        // the berth binary
	Dir      string        // the run's directory (created; kept on failure)
	Nodes    int           // 3 or 5
	Clients  int           // concurrent workload clients
	Duration time.Duration // of the workload and the nemesis
	Seed     uint64
	Faults   []string             // kinds to draw from; nil means FaultKinds
	Logf     func(string, ...any) // progress; nil is silent
	// Allow names checkers whose failure is a known, reported Berth bug:
	// their verdict is shown (FAIL(allowed)) but does not fail the run.
	Allow []string
	// Network is "netns" (each node in its own network namespace; needs
	// root), "proxy" (per-link TCP proxies) or "" (netns when it works here,
	// else proxy).
	Network string
}

// Result is what a run saw.
type Result struct {
	Seed     uint64         `json:"seed"`
	Duration time.Duration  `json:"duration"`
	Nodes    int            `json:"nodes"`
	Network  string         `json:"network"`
	Crashes  []crash        `json:"crashes,omitempty"`
	Ops      map[string]int `json:"ops"`    // by outcome
	Kinds    map[string]int `json:"kinds"`  // by kind/outcome
	Faults   map[string]int `json:"faults"` // applied, by kind
	Schedule []Fault        `json:"schedule"`
	Verdicts []Verdict      `json:"verdicts"`
	Dir      string         `json:"dir"`
	Allowed  []string       `json:"allowed,omitempty"`
}

// OK reports whether every checker passed.
func (r *Result) OK() bool {
	for _, v := range r.Verdicts {
		if !v.OK && !slices.Contains(r.Allowed, v.Name) {
			return false
		}
	}
	return true
}

// Summary is the run's one line.
func (r *Result) Summary() string {
	var vs []string
	for _, v := range r.Verdicts {
		s := "ok"
		if !v.OK {
			s = "FAIL"
			if slices.Contains(r.Allowed, v.Name) {
				s = "FAIL(allowed)"
			}
		}
		vs = append(vs, v.Name+"="+s)
	}
	verdict := "PASS"
	if !r.OK() {
		verdict = "FAIL (kept " + r.Dir + ")"
	}
	return fmt.Sprintf("berth-chaos seed=%d duration=%s nodes=%d network=%s ops=%s faults=%s checks=[%s] %s",
		r.Seed, r.Duration, r.Nodes, r.Network, kv(r.Ops), kv(r.Faults), strings.Join(vs, " "), verdict)
}

func kv(m map[string]int) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s:%d", k, m[k])
	}
	return "{" + strings.Join(parts, ",") + "}"
}

// Build compiles ./cmd/berth of the module at root into out, with the
// `chaos` build tag: the binary serves /internal/v1/faults (storage faults
// and clock skew; node/faults_chaos.go), which release builds do not have.
func Build(ctx context.Context, root, out string) error {
	cmd := exec.CommandContext(ctx, "go", "build", "-tags", "chaos", "-trimpath", "-o", out, "./cmd/berth")
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("chaos: go build ./cmd/berth: %v\n%s", err, b)
	}
	return nil
}

// Run starts the cluster, runs the workload and the nemesis for
// cfg.Duration, heals, checks, and writes history.json, schedule.json and
// result.json into cfg.Dir. The error is for a run that could not be made
// (the cluster did not start); a failed check is in the Result.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	logf := cfg.Logf
	if logf == nil {
		logf = func(string, ...any) {}
	}
	if cfg.Nodes == 0 {
		cfg.Nodes = 3
	}
	if cfg.Clients == 0 {
		cfg.Clients = 6
	}
	if cfg.Faults == nil {
		cfg.Faults = FaultKinds
	}
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return nil, err
	}
	if cfg.Network != "" && cfg.Network != "netns" && cfg.Network != "proxy" {
		return nil, fmt.Errorf("chaos: network %q: want netns, proxy or empty", cfg.Network)
	}
	if cfg.Network == "netns" {
		if err := netns.Available(); err != nil {
			return nil, fmt.Errorf("chaos: network namespaces: %w", err)
		}
	}
	c, err := newCluster(cfg.Bin, cfg.Dir, cfg.Nodes, fmt.Sprintf("c%04x", cfg.Seed%0x10000^uint64(os.Getpid()%0x10000)), cfg.Network == "proxy")
	if err != nil {
		return nil, err
	}
	defer c.shutdown()
	// As root, the last node's data directory is a small tmpfs that the
	// disk-full fault fills.
	if unmount, err := mountTmpfs(c.nodes[len(c.nodes)-1].dataDir); err == nil {
		c.tmpfs = c.nodes[len(c.nodes)-1]
		defer unmount()
	} else {
		logf("chaos: no tmpfs for the disk-full fault (%v): ENOSPC is injected instead", err)
	}
	for i, n := range c.nodes {
		if err := n.start(ctx); err != nil {
			return nil, err
		}
		if i == 0 {
			if _, err := c.waitLeader(ctx, 30*time.Second); err != nil {
				return nil, err
			}
		}
	}
	// Every node must have applied the membership before the faults begin.
	if v := waitConverged(ctx, c, 60*time.Second, nil); !v.OK {
		return nil, fmt.Errorf("chaos: cluster did not form: %s", strings.Join(v.Problems, "; "))
	}
	logf("chaos: %d nodes up in %s (network: %s)", cfg.Nodes, cfg.Dir, c.net.kind())

	h := &history{t0: time.Now()}
	w := newWorkload(c, h, cfg.Seed)
	if err := w.setup(ctx); err != nil {
		return nil, err
	}
	nm := &nemesis{c: c, fs: schedule(cfg.Seed, cfg.Duration, cfg.Faults)}

	monCtx, stopMon := context.WithCancel(ctx)
	defer stopMon()
	samplesCh := make(chan []leaderSample, 1)
	go func() { samplesCh <- monitorLeaders(monCtx, c, h) }()

	wctx, stop := context.WithTimeout(ctx, cfg.Duration)
	nm.start = time.Now()
	var wg sync.WaitGroup
	for i := range cfg.Clients {
		wg.Go(func() { w.client(wctx, i) })
	}
	wg.Go(func() { nm.run(wctx) })
	wg.Wait()
	stop()
	workloadEnd := time.Now()
	logf("chaos: workload done (%d ops); healing", len(h.all()))

	// Heal: every link passes, every node runs and is resumed.
	if err := c.net.heal(); err != nil {
		return nil, err
	}
	for _, n := range c.nodes {
		if n.isPaused() {
			_ = n.signal(syscall.SIGCONT)
		}
	}
	if err := c.startAll(ctx); err != nil {
		return nil, err
	}
	res := &Result{Seed: cfg.Seed, Duration: cfg.Duration, Nodes: cfg.Nodes, Network: c.net.kind(), Dir: cfg.Dir, Allowed: cfg.Allow,
		Ops: map[string]int{}, Kinds: map[string]int{}, Faults: map[string]int{}}
	res.Verdicts = append(res.Verdicts, waitConverged(ctx, c, 90*time.Second, func(n *node) {
		_, _, _, _ = w.do(ctx, n, http.MethodGet, "/v2/"+w.repos[0]+"/manifests/"+w.tags[0], nil, "Accept", manifestAccept)
	}))
	// BERTH_CHAOS_HOLD keeps a cluster that did not converge running for five
	// minutes, to look at its nodes' /metrics and internal API.
	if v := res.Verdicts[len(res.Verdicts)-1]; !v.OK && os.Getenv("BERTH_CHAOS_HOLD") != "" {
		for _, n := range c.nodes {
			logf("chaos: HOLD %s %s", n.id, n.url())
		}
		time.Sleep(5 * time.Minute)
	}

	// Final reads of every tag on every node, after convergence.
	for i, n := range c.nodes {
		for _, repo := range w.repos {
			for _, tag := range w.tags {
				w.read(ctx, cfg.Clients+i, n, repo, tag, "final-read")
			}
		}
		for _, tag := range w.trashTags() {
			w.read(ctx, cfg.Clients+i, n, trashRepo, tag, "final-read")
		}
	}
	stopMon()
	samples := <-samplesCh

	ops := h.all()
	w.mu.Lock()
	written := map[string]*image{}
	for k, v := range w.written {
		written[k] = v
	}
	w.mu.Unlock()
	res.Verdicts = append(res.Verdicts,
		checkRefused(ctx, w, ops),
	)
	res.Verdicts = append(res.Verdicts, checkGC(ctx, w, workloadEnd.Add(orphanMinAge+2*time.Second))...)
	res.Verdicts = append(res.Verdicts,
		checkPullable(ctx, w, ops),
		checkBodies(ops, written),
		checkLinearizable(ops, cfg.Dir, 2*time.Minute, true),
		checkLinearizable(ops, cfg.Dir, 2*time.Minute, false),
		checkOneLeader(samples),
		checkFsck(ctx, w),
	)
	c.mu.Lock()
	res.Crashes = append([]crash(nil), c.crashes...)
	c.mu.Unlock()
	res.Verdicts = append(res.Verdicts, checkCrashes(res.Crashes))
	for _, op := range ops {
		res.Ops[op.Outcome]++
		res.Kinds[op.Kind+"/"+op.Outcome]++
	}
	res.Schedule = nm.faults()
	for _, f := range res.Schedule {
		if f.Node != "" {
			res.Faults[f.Kind]++
		}
	}
	for name, v := range map[string]any{"history.json": ops, "schedule.json": res.Schedule, "leaders.json": samples, "result.json": res} {
		b, err := json.MarshalIndent(v, "", " ")
		if err == nil {
			err = os.WriteFile(filepath.Join(cfg.Dir, name), b, 0o644)
		}
		if err != nil {
			return res, err
		}
	}
	return res, nil
}
