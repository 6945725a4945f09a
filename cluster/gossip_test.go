package cluster

import (
	"bytes"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// testKey returns a gossip key of n bytes starting at b.
func testKey(n int, b byte) []byte {
	k := make([]byte, n)
	for i := range k {
		k[i] = b + byte(i)
	}
	return k
}

// fastGossip is a gossip config on loopback with short timers for tests.
func fastGossip(id string, key []byte) GossipConfig {
	return GossipConfig{
		NodeID:           id,
		Zone:             "zone-" + id,
		BindAddr:         "127.0.0.1:0",
		Key:              key,
		APIAddr:          "http://api-" + id + ":5000",
		RaftAddr:         "raft-" + id + ":7000",
		ProbeInterval:    100 * time.Millisecond,
		ProbeTimeout:     100 * time.Millisecond,
		GossipInterval:   20 * time.Millisecond,
		SuspicionMult:    3,
		PushPullInterval: time.Second,
		UpdateTimeout:    2 * time.Second,
	}
}

func startGossip(t *testing.T, cfg GossipConfig, reg prometheus.Registerer) *Gossip {
	t.Helper()
	g, err := NewGossip(cfg, nil, reg)
	if err != nil {
		t.Fatalf("NewGossip(%s): %v", cfg.NodeID, err)
	}
	t.Cleanup(func() { _ = g.Shutdown() })
	return g
}

func join(t *testing.T, g *Gossip, seeds ...string) {
	t.Helper()
	if n, err := g.Join(seeds); err != nil || n != len(seeds) {
		t.Fatalf("%s Join(%v): got (%d, %v), want (%d, nil)", g.cfg.NodeID, seeds, n, err, len(seeds))
	}
}

// memberIs reports whether g knows member id and it satisfies cond.
func memberIs(g *Gossip, id string, cond func(Member) bool) bool {
	m, ok := g.Member(id)
	return ok && cond(m)
}

func TestGossip(t *testing.T) {
	t.Parallel()
	key := testKey(32, 1)
	reg := prometheus.NewRegistry()
	g1 := startGossip(t, fastGossip("n1", key), reg)
	g2 := startGossip(t, fastGossip("n2", key), nil)
	g3 := startGossip(t, fastGossip("n3", key), nil)
	changes := g1.Changes()

	if h, p, err := net.SplitHostPort(g1.Addr()); err != nil || h != "127.0.0.1" || p == "0" {
		t.Fatalf("Addr: got %q, want 127.0.0.1 and a picked port", g1.Addr())
	}
	start := time.Now()
	join(t, g2, g1.Addr())
	join(t, g3, g2.Addr()) // n1 learns of n3 through n2
	all := []*Gossip{g1, g2, g3}
	eventually(t, 5*time.Second, "every gossip to see 3 alive members", func() bool {
		for _, g := range all {
			ms := g.Members()
			if len(ms) != 3 {
				return false
			}
			for _, m := range ms {
				if m.State != Alive {
					return false
				}
			}
		}
		return true
	})
	t.Logf("3 members converged in %v", time.Since(start))
	for _, g := range all {
		ms := g.Members()
		for i, want := range all {
			w := want.cfg
			m := ms[i]
			if m.ID != w.NodeID || m.Zone != w.Zone || m.APIAddr != w.APIAddr || m.RaftAddr != w.RaftAddr ||
				m.GossipAddr != want.Addr() || m.Draining || m.Since.IsZero() {
				t.Fatalf("%s sees member %d as %+v, want id %s zone %s api %s raft %s gossip %s",
					g.cfg.NodeID, i, m, w.NodeID, w.Zone, w.APIAddr, w.RaftAddr, want.Addr())
			}
		}
		if self := g.Self(); self.ID != g.cfg.NodeID || self.State != Alive || self.RTT != 0 {
			t.Fatalf("%s Self: got %+v", g.cfg.NodeID, self)
		}
	}
	select {
	case <-changes:
	default:
		t.Fatal("Changes was not signalled by joins")
	}

	eventually(t, 5*time.Second, "probe RTTs", func() bool {
		return memberIs(g1, "n2", func(m Member) bool { return m.RTT > 0 }) &&
			memberIs(g1, "n3", func(m Member) bool { return m.RTT > 0 })
	})
	m2, _ := g1.Member("n2")
	t.Logf("n1 -> n2 RTT %v", m2.RTT)
	if _, ok := g1.Member("nope"); ok {
		t.Fatal("Member(nope): got ok")
	}

	// Metrics: members by state, RTT samples.
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var alive float64
	var rttSamples uint64
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			switch mf.GetName() {
			case "berth_gossip_members":
				if labelValue(m, "state") == "alive" {
					alive = m.GetGauge().GetValue()
				}
			case "berth_gossip_rtt_seconds":
				rttSamples = m.GetHistogram().GetSampleCount()
			}
		}
	}
	if alive != 3 || rttSamples == 0 {
		t.Fatalf("metrics: alive members %v, rtt samples %d; want 3 and > 0", alive, rttSamples)
	}

	// Draining spreads through the metadata.
	if err := g2.SetDraining(true); err != nil {
		t.Fatalf("SetDraining: %v", err)
	}
	if !g2.Self().Draining {
		t.Fatal("Self().Draining after SetDraining(true): false")
	}
	eventually(t, 5*time.Second, "n2 to be seen draining", func() bool {
		return memberIs(g1, "n2", func(m Member) bool { return m.Draining && m.State == Alive }) &&
			memberIs(g3, "n2", func(m Member) bool { return m.Draining })
	})

	// A member that leaves is Left, not Dead.
	if err := g3.Leave(2 * time.Second); err != nil {
		t.Fatalf("Leave: %v", err)
	}
	if s := g3.Self().State; s != Left {
		t.Fatalf("Self().State after Leave: got %v, want left", s)
	}
	eventually(t, 5*time.Second, "n3 to be seen as left", func() bool {
		return memberIs(g1, "n3", func(m Member) bool { return m.State == Left }) &&
			memberIs(g2, "n3", func(m Member) bool { return m.State == Left })
	})

	// A member that stops without leaving is Dead, and remembered.
	stopped := time.Now()
	if err := g2.Shutdown(); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if _, ok := <-g2.Changes(); ok {
		t.Fatal("Changes after Shutdown: want a closed channel")
	}
	eventually(t, 10*time.Second, "n2 to be seen as dead", func() bool {
		return memberIs(g1, "n2", func(m Member) bool { return m.State == Dead })
	})
	t.Logf("n2 seen dead %v after it stopped", time.Since(stopped))
	if ms := g1.Members(); len(ms) != 3 {
		t.Fatalf("Members after a leave and a failure: got %d, want 3 (remembered)", len(ms))
	}
	if err := g2.SetDraining(false); !errors.Is(err, ErrGossipShutdown) {
		t.Fatalf("SetDraining after Shutdown: got %v, want ErrGossipShutdown", err)
	}
	if err := g2.Leave(time.Second); !errors.Is(err, ErrGossipShutdown) {
		t.Fatalf("Leave after Shutdown: got %v, want ErrGossipShutdown", err)
	}
	if err := g2.Shutdown(); err != nil {
		t.Fatalf("second Shutdown: %v", err)
	}
}

func labelValue(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

func TestGossipWrongKey(t *testing.T) {
	t.Parallel()
	g1 := startGossip(t, fastGossip("n1", testKey(32, 1)), nil)
	other := startGossip(t, fastGossip("other", testKey(32, 2)), nil)
	plain := startGossip(t, fastGossip("plain", nil), nil)
	for _, g := range []*Gossip{other, plain} {
		n, err := g.Join([]string{g1.Addr()})
		if err == nil || n != 0 {
			t.Fatalf("%s Join with the wrong key: got (%d, %v), want (0, error)", g.cfg.NodeID, n, err)
		}
	}
	time.Sleep(300 * time.Millisecond)
	for _, g := range []*Gossip{g1, other, plain} {
		if ms := g.Members(); len(ms) != 1 {
			t.Fatalf("%s members: got %+v, want itself only", g.cfg.NodeID, ms)
		}
	}
}

func TestGossipSuspect(t *testing.T) {
	// memberlist does not expose suspicion: a member this node's probes have
	// not heard from for two probe rounds is reported Suspect.
	now := time.Now()
	g := &Gossip{
		cfg:   GossipConfig{NodeID: "n1"},
		probe: 100 * time.Millisecond,
		ptime: 50 * time.Millisecond,
		members: map[string]*member{
			"n2": {Member: Member{ID: "n2", State: Alive, Since: now.Add(-time.Hour)}, heard: now},
			"n3": {Member: Member{ID: "n3", State: Alive, Since: now.Add(-time.Hour)}, heard: now.Add(-time.Second)},
			"n4": {Member: Member{ID: "n4", State: Dead, Since: now.Add(-time.Minute)}, heard: now.Add(-time.Minute)},
			"n5": {Member: Member{ID: "n5", State: Left, Since: now.Add(-forgetAfter - time.Minute)}},
		},
	}
	var got []string
	for _, m := range g.Members() {
		got = append(got, m.ID+"="+m.State.String())
	}
	want := "n1=alive n2=alive n3=suspect n4=dead" // n5 is forgotten
	if s := strings.Join(got, " "); s != want {
		t.Fatalf("Members: got %q, want %q", s, want)
	}
}

func TestNewGossipInvalidConfig(t *testing.T) {
	tests := []struct {
		name string
		edit func(*GossipConfig)
	}{
		{"no node id", func(c *GossipConfig) { c.NodeID = "" }},
		{"short key", func(c *GossipConfig) { c.Key = testKey(15, 0) }},
		{"no port", func(c *GossipConfig) { c.BindAddr = "127.0.0.1" }},
		{"bad port", func(c *GossipConfig) { c.BindAddr = "127.0.0.1:x" }},
		{"advertise unresolvable", func(c *GossipConfig) { c.Advertise = "no-such-host.invalid:7946" }},
		{"metadata too long", func(c *GossipConfig) { c.APIAddr = string(bytes.Repeat([]byte("a"), 500)) }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := fastGossip("n1", nil)
			tc.edit(&cfg)
			g, err := NewGossip(cfg, nil, nil)
			if !errors.Is(err, ErrInvalidConfig) {
				if g != nil {
					g.Shutdown()
				}
				t.Fatalf("NewGossip: got %v, want ErrInvalidConfig", err)
			}
		})
	}
}
