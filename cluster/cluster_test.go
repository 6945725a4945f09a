package cluster

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

func TestSingleNodeProposeAndRestart(t *testing.T) {
	t.Parallel()
	n := newTestNode(t, fastConfig("n1"))
	reg := prometheus.NewRegistry()
	c := n.start(t, reg)
	t.Logf("first election: %v", waitLeader(t, c))

	if addr, id := c.Leader(); id != "n1" || addr != c.Addr() || addr != "n1" {
		t.Fatalf("Leader: got (%q, %q), want (%q, %q)", addr, id, "n1", "n1")
	}
	var sum int64
	var last uint64
	for i := int64(1); i <= 5; i++ {
		sum += i
		got, idx := propose(t, c, i)
		if got != sum {
			t.Fatalf("Propose(%d): response %d, want %d", i, got, sum)
		}
		if idx <= last {
			t.Fatalf("Propose(%d): index %d, want > %d", i, idx, last)
		}
		last = idx
		if a := c.AppliedIndex(); a < idx {
			t.Fatalf("AppliedIndex after Propose: got %d, want >= %d", a, idx)
		}
		if ci := c.CommitIndex(); ci < idx {
			t.Fatalf("CommitIndex after Propose: got %d, want >= %d", ci, idx)
		}
	}
	if err := c.Barrier(context.Background()); err != nil {
		t.Fatalf("Barrier: %v", err)
	}
	if s := c.Stats(); s["state"] != "Leader" {
		t.Fatalf("Stats state: got %q, want Leader", s["state"])
	}
	lastLog := c.raft.LastIndex()
	var lastEntry raft.Log
	if err := c.logs.GetLog(last, &lastEntry); err != nil {
		t.Fatalf("GetLog(%d): %v", last, err)
	}

	n.stop(t)
	if err := c.Shutdown(); err != nil {
		t.Fatalf("second Shutdown: got %v, want nil", err)
	}
	if _, _, err := c.Propose(context.Background(), addCmd(1)); !errors.Is(err, ErrShutdown) {
		t.Fatalf("Propose after Shutdown: got %v, want ErrShutdown", err)
	}
	if err := c.WaitLeader(context.Background()); !errors.Is(err, ErrShutdown) {
		t.Fatalf("WaitLeader after Shutdown: got %v, want ErrShutdown", err)
	}
	if mfs, _ := reg.Gather(); len(mfs) != 0 {
		t.Fatalf("metrics after Shutdown: got %d families, want 0", len(mfs))
	}

	// Restart on the same database with the same (persistent) FSM: the log is
	// kept, raft replays it, the FSM skips every entry, and the node is
	// leader again. Bootstrap is still set and must be ignored.
	c = n.start(t, reg)
	t.Logf("re-election after restart: %v", waitLeader(t, c))
	if got := c.raft.LastIndex(); got < lastLog {
		t.Fatalf("LastIndex after restart: got %d, want >= %d", got, lastLog)
	}
	var again raft.Log
	if err := c.logs.GetLog(last, &again); err != nil || !equalLog(&again, &lastEntry) {
		t.Fatalf("entry %d after restart: got %+v, %v; want %+v", last, again, err, lastEntry)
	}
	if got, idx := propose(t, c, 6); got != sum+6 || idx <= last {
		t.Fatalf("Propose after restart: got (%d, %d), want (%d, > %d)", got, idx, sum+6, last)
	}
	if v, _, applies, _ := n.fsm.state(); v != sum+6 || applies != 6 {
		t.Fatalf("FSM after restart: value %d applies %d, want %d and 6 (replayed entries skipped)", v, applies, sum+6)
	}
	n.stop(t)

	// Restart with an FSM that lost its state: replaying the log rebuilds it.
	n.fsm = &counterFSM{}
	c = n.start(t, nil)
	waitLeader(t, c)
	if err := c.Barrier(context.Background()); err != nil {
		t.Fatalf("Barrier: %v", err)
	}
	if v, _, _, _ := n.fsm.state(); v != sum+6 {
		t.Fatalf("fresh FSM after replay: value %d, want %d", v, sum+6)
	}
}

func TestSnapshotRestart(t *testing.T) {
	t.Parallel()
	cfg := fastConfig("n1")
	cfg.TrailingLogs = 2 // compact the log (LogStore.DeleteRange) at each snapshot
	n := newTestNode(t, cfg)
	c := n.start(t, nil)
	waitLeader(t, c)
	for i := int64(1); i <= 10; i++ {
		propose(t, c, i)
	}
	if err := c.raft.Snapshot().Error(); err != nil {
		t.Fatalf("Snapshot: %v", err)
	}
	if first, _ := c.logs.FirstIndex(); first <= 1 {
		t.Fatalf("FirstIndex after snapshot: got %d, want the log compacted", first)
	}
	propose(t, c, 11)
	propose(t, c, 12)
	const want = 78 // 1+...+12
	n.stop(t)

	// Persistent FSM: not restored from the snapshot (NoSnapshotRestoreOnStart),
	// the entries after it are replayed and skipped.
	c = n.start(t, nil)
	waitLeader(t, c)
	if err := c.Barrier(context.Background()); err != nil {
		t.Fatal(err)
	}
	if v, _, applies, restores := n.fsm.state(); v != want || applies != 12 || restores != 0 {
		t.Fatalf("persistent FSM after restart: value %d applies %d restores %d, want %d, 12, 0", v, applies, restores, want)
	}
	// The newest snapshot now ends at a no-op or barrier entry above the
	// FSM's last command: that is not "behind".
	if err := c.raft.Snapshot().Error(); err != nil {
		t.Fatalf("Snapshot: %v", err)
	}
	n.stop(t)
	c = n.start(t, nil)
	waitLeader(t, c)
	if _, _, _, restores := n.fsm.state(); restores != 0 {
		t.Fatalf("FSM restored from a snapshot that only adds no-ops: restores %d, want 0", restores)
	}
	n.stop(t)

	// An FSM behind the newest snapshot (as after a crash during a snapshot
	// install) is restored from it, then the rest is replayed.
	n.fsm = &counterFSM{}
	c = n.start(t, nil)
	waitLeader(t, c)
	if err := c.Barrier(context.Background()); err != nil {
		t.Fatal(err)
	}
	if v, _, _, restores := n.fsm.state(); v != want || restores != 1 {
		t.Fatalf("fresh FSM after restart: value %d restores %d, want %d, 1", v, restores, want)
	}
}

func TestProposeBounded(t *testing.T) {
	t.Parallel()
	t.Run("canceled before the call", func(t *testing.T) {
		n := newTestNode(t, fastConfig("n1"))
		c := n.start(t, nil)
		waitLeader(t, c)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		start := time.Now()
		_, _, err := c.Propose(ctx, addCmd(1))
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Propose: got %v, want context.Canceled", err)
		}
		if d := time.Since(start); d > 100*time.Millisecond {
			t.Fatalf("Propose took %v", d)
		}
		if err := c.Barrier(ctx); !errors.Is(err, context.Canceled) {
			t.Fatalf("Barrier: got %v, want context.Canceled", err)
		}
		if _, _, applies, _ := n.fsm.state(); applies != 0 {
			t.Fatalf("FSM applied %d entries, want 0", applies)
		}
	})

	t.Run("canceled while the FSM is busy", func(t *testing.T) {
		n := newTestNode(t, fastConfig("n1"))
		n.fsm.gate = make(chan struct{})
		c := n.start(t, nil)
		waitLeader(t, c)
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		start := time.Now()
		_, _, err := c.Propose(ctx, addCmd(1))
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Propose: got %v, want context.DeadlineExceeded", err)
		}
		if d := time.Since(start); d > time.Second {
			t.Fatalf("Propose took %v", d)
		}
		close(n.fsm.gate) // the entry is still committed and applied
		eventually(t, 5*time.Second, "the entry to be applied", func() bool {
			_, _, applies, _ := n.fsm.state()
			return applies == 1
		})
	})

	t.Run("no leader", func(t *testing.T) {
		// No bootstrap and no state: this node never elects itself.
		cfg := fastConfig("n1")
		cfg.Bootstrap = false
		cfg.ApplyTimeout = 150 * time.Millisecond
		n := newTestNode(t, cfg)
		c := n.start(t, nil)

		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		if err := c.WaitLeader(ctx); !errors.Is(err, ErrNoLeader) || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("WaitLeader: got %v, want ErrNoLeader and DeadlineExceeded", err)
		}
		start := time.Now()
		_, _, err := c.Propose(context.Background(), addCmd(1)) // bounded by ApplyTimeout
		if !errors.Is(err, ErrNoLeader) {
			t.Fatalf("Propose: got %v, want ErrNoLeader", err)
		}
		if d := time.Since(start); d < 100*time.Millisecond || d > time.Second {
			t.Fatalf("Propose took %v, want about ApplyTimeout (150ms)", d)
		}
		if err := c.Barrier(context.Background()); !errors.Is(err, ErrNoLeader) {
			t.Fatalf("Barrier: got %v, want ErrNoLeader", err)
		}

		// Shutdown wakes a waiter at once.
		done := make(chan error, 1)
		go func() { done <- c.WaitLeader(context.Background()) }()
		time.Sleep(20 * time.Millisecond)
		n.stop(t)
		select {
		case err := <-done:
			if !errors.Is(err, ErrShutdown) {
				t.Fatalf("WaitLeader during Shutdown: got %v, want ErrShutdown", err)
			}
		case <-time.After(2 * time.Second):
			t.Fatal("WaitLeader did not return on Shutdown")
		}
	})
}

func TestSingleNodeTCP(t *testing.T) {
	t.Parallel()
	cfg := fastConfig("n1")
	cfg.RaftListen = "127.0.0.1:0"
	n := newTestNode(t, cfg)
	c := n.start(t, nil)
	waitLeader(t, c)
	host, port, err := net.SplitHostPort(c.Addr())
	if err != nil || host != "127.0.0.1" || port == "0" {
		t.Fatalf("Addr: got %q (%v), want 127.0.0.1 and a picked port", c.Addr(), err)
	}
	if got, _ := propose(t, c, 7); got != 7 {
		t.Fatalf("Propose: got %d, want 7", got)
	}
	n.stop(t)
	// The port is released.
	l, err := net.Listen("tcp", c.Addr())
	if err != nil {
		t.Fatalf("listen on the released raft port: %v", err)
	}
	l.Close()
}

func TestMetrics(t *testing.T) {
	t.Parallel()
	n := newTestNode(t, fastConfig("n1"))
	reg := prometheus.NewRegistry()
	c := n.start(t, reg)
	waitLeader(t, c)
	var idx uint64
	for i := int64(1); i <= 3; i++ {
		_, idx = propose(t, c, i)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]*dto.Metric{}
	for _, mf := range mfs {
		got[mf.GetName()] = mf.GetMetric()[0]
	}
	gauge := func(name string) float64 {
		m, ok := got[name]
		if !ok {
			t.Fatalf("metric %s missing", name)
		}
		return m.GetGauge().GetValue()
	}
	if v := gauge("berth_raft_state"); v != 2 {
		t.Fatalf("berth_raft_state: got %v, want 2 (leader)", v)
	}
	if v := gauge("berth_raft_term"); v < 1 {
		t.Fatalf("berth_raft_term: got %v, want >= 1", v)
	}
	for _, name := range []string{"berth_raft_commit_index", "berth_raft_applied_index", "berth_raft_last_log_index"} {
		if v := gauge(name); v < float64(idx) {
			t.Fatalf("%s: got %v, want >= %d", name, v, idx)
		}
	}
	if m := got["berth_raft_apply_seconds"]; m == nil || m.GetHistogram().GetSampleCount() != 3 {
		t.Fatalf("berth_raft_apply_seconds: got %v, want 3 samples", m)
	}
	if m := got["berth_raft_leader_changes_total"]; m == nil || m.GetCounter().GetValue() < 1 {
		t.Fatalf("berth_raft_leader_changes_total: got %v, want >= 1", m)
	}

	// A second node on the same registry is refused, not half-registered.
	n2 := newTestNode(t, fastConfig("n2"))
	if _, err := New(n2.cfg, n2.fsm, n2.db, nil, reg); err == nil {
		t.Fatal("New with a registry already holding berth_raft metrics: got nil error")
	}
}

func TestNewInvalidConfig(t *testing.T) {
	n := newTestNode(t, fastConfig("n1"))
	tests := []struct {
		name string
		edit func(*Config)
	}{
		{"no node id", func(c *Config) { c.NodeID = "" }},
		{"no data dir", func(c *Config) { c.DataDir = "" }},
		{"peers without self", func(c *Config) {
			c.RaftListen = "127.0.0.1:0"
			c.Peers = []Server{{"a", "127.0.0.1:1"}, {"b", "127.0.0.1:2"}}
		}},
		{"duplicate peer", func(c *Config) {
			c.RaftListen = "127.0.0.1:0"
			c.Peers = []Server{{"n1", "127.0.0.1:1"}, {"n1", "127.0.0.1:2"}}
		}},
		{"peer without address", func(c *Config) { c.Peers = []Server{{"n1", ""}} }},
		{"several peers in memory", func(c *Config) { c.Peers = []Server{{"n1", "a"}, {"n2", "b"}} }},
		{"lease above heartbeat", func(c *Config) { c.LeaderLeaseTimeout = 2 * c.HeartbeatTimeout }},
		{"advertise not resolvable", func(c *Config) {
			c.RaftListen = "127.0.0.1:0"
			c.Advertise = "no-such-host.invalid:7000"
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := n.cfg
			tc.edit(&cfg)
			c, err := New(cfg, n.fsm, n.db, nil, nil)
			if !errors.Is(err, ErrInvalidConfig) {
				if c != nil {
					c.Shutdown()
				}
				t.Fatalf("New: got %v, want ErrInvalidConfig", err)
			}
		})
	}
	if _, err := New(n.cfg, nil, n.db, nil, nil); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("New(nil fsm): got %v, want ErrInvalidConfig", err)
	}
	if _, err := New(n.cfg, n.fsm, nil, nil, nil); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("New(nil db): got %v, want ErrInvalidConfig", err)
	}
}

// syncBuffer is an io.Writer safe for the concurrent writes of raft's goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func TestRaftLogsThroughSlog(t *testing.T) {
	t.Parallel()
	var out syncBuffer
	logger := slog.New(slog.NewTextHandler(&out, &slog.HandlerOptions{Level: slog.LevelInfo}))
	n := newTestNode(t, fastConfig("n1"))
	c, err := New(n.cfg, n.fsm, n.db, logger, nil)
	if err != nil {
		t.Fatal(err)
	}
	n.c = c
	waitLeader(t, c)
	n.stop(t)
	s := out.String()
	for _, want := range []string{"entering leader state", "module=raft", "node=n1", "raft leader changed"} {
		if !strings.Contains(s, want) {
			t.Fatalf("log output lacks %q:\n%s", want, s)
		}
	}
	if strings.Contains(s, "level=DEBUG") {
		t.Fatalf("debug records passed an Info handler:\n%s", s)
	}
}

func TestHCLogAdapter(t *testing.T) {
	var out syncBuffer
	h := newHCLogger(slog.New(slog.NewTextHandler(&out, &slog.HandlerOptions{Level: slog.LevelDebug})), "raft")
	if h.IsTrace() || !h.IsDebug() || !h.IsInfo() {
		t.Fatalf("levels: trace %v debug %v info %v, want false true true", h.IsTrace(), h.IsDebug(), h.IsInfo())
	}
	h.Named("transport").With("peer", "n2").Warn("dial failed", "err", "boom")
	h.Trace("hidden")
	h.StandardLogger(&hclog.StandardLoggerOptions{InferLevels: true}).Print("[ERR] from std logger")
	s := out.String()
	for _, want := range []string{
		`level=WARN msg="dial failed" peer=n2 module=raft.transport err=boom`,
		`level=ERROR msg="from std logger" module=raft`,
	} {
		if !strings.Contains(s, want) {
			t.Fatalf("log output lacks %q:\n%s", want, s)
		}
	}
	if strings.Contains(s, "hidden") {
		t.Fatalf("trace record passed a Debug handler:\n%s", s)
	}
}
