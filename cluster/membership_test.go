package cluster

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

func TestPlanChange(t *testing.T) {
	now := time.Now()
	cfg := MembershipConfig{MaxVoters: 3, DeadNodeTimeout: time.Minute}
	voter := func(id string) raft.Server {
		return raft.Server{Suffrage: raft.Voter, ID: raft.ServerID(id), Address: raft.ServerAddress("r-" + id)}
	}
	nonvoter := func(id string) raft.Server {
		s := voter(id)
		s.Suffrage = raft.Nonvoter
		return s
	}
	alive := func(id string) Member { return Member{ID: id, RaftAddr: "r-" + id, State: Alive, Since: now} }
	with := func(m Member, edit func(*Member)) Member { edit(&m); return m }
	deadFor := func(id string, d time.Duration) Member {
		return with(alive(id), func(m *Member) { m.State, m.Since = Dead, now.Add(-d) })
	}

	tests := []struct {
		name    string
		servers []raft.Server
		members []Member
		missing map[string]time.Time
		want    string // "" = no change
	}{
		{"in sync", []raft.Server{voter("n1"), voter("n2")}, []Member{alive("n1"), alive("n2")}, nil, ""},
		{"joined member becomes a voter", []raft.Server{voter("n1")}, []Member{alive("n1"), alive("n2")}, nil,
			"add voter n2 r-n2"},
		{"beyond MaxVoters a non-voter", []raft.Server{voter("n1"), voter("n2"), voter("n3")},
			[]Member{alive("n1"), alive("n2"), alive("n3"), alive("n4")}, nil, "add non-voter n4 r-n4"},
		{"adds in id order", []raft.Server{voter("n1")}, []Member{alive("n1"), alive("n3"), alive("n2")}, nil,
			"add voter n2 r-n2"},
		{"not a draining member", []raft.Server{voter("n1")},
			[]Member{alive("n1"), with(alive("n2"), func(m *Member) { m.Draining = true })}, nil, ""},
		{"not a suspect member", []raft.Server{voter("n1")},
			[]Member{alive("n1"), with(alive("n2"), func(m *Member) { m.State = Suspect })}, nil, ""},
		{"not a member without raft address", []raft.Server{voter("n1")},
			[]Member{alive("n1"), with(alive("n2"), func(m *Member) { m.RaftAddr = "" })}, nil, ""},
		{"left member removed at once", []raft.Server{voter("n1"), voter("n2")},
			[]Member{alive("n1"), with(alive("n2"), func(m *Member) { m.State = Left })}, nil, "remove n2"},
		{"dead member kept until the timeout", []raft.Server{voter("n1"), voter("n2")},
			[]Member{alive("n1"), deadFor("n2", 59*time.Second)}, nil, ""},
		{"dead member removed after the timeout", []raft.Server{voter("n1"), nonvoter("n2")},
			[]Member{alive("n1"), deadFor("n2", 61*time.Second)}, nil, "remove n2"},
		{"suspect member kept", []raft.Server{voter("n1"), voter("n2")},
			[]Member{alive("n1"), with(deadFor("n2", time.Hour), func(m *Member) { m.State = Suspect })}, nil, ""},
		{"never itself", []raft.Server{voter("n1"), voter("n2")},
			[]Member{with(alive("n1"), func(m *Member) { m.State = Left }), alive("n2")}, nil, ""},
		{"server unknown to gossip kept until the timeout", []raft.Server{voter("n1"), voter("n2")},
			[]Member{alive("n1")}, map[string]time.Time{"n2": now.Add(-30 * time.Second)}, ""},
		{"server unknown to gossip removed after the timeout", []raft.Server{voter("n1"), voter("n2")},
			[]Member{alive("n1")}, map[string]time.Time{"n2": now.Add(-2 * time.Minute)}, "remove n2"},
		{"removal before addition", []raft.Server{voter("n1"), voter("n2"), voter("n3")},
			[]Member{alive("n1"), alive("n2"), deadFor("n3", time.Hour), alive("n4")}, nil, "remove n3"},
		{"new raft address of a voter", []raft.Server{voter("n1"), voter("n2")},
			[]Member{alive("n1"), with(alive("n2"), func(m *Member) { m.RaftAddr = "new" })}, nil, "add voter n2 new"},
		{"new raft address of a non-voter", []raft.Server{voter("n1"), nonvoter("n2")},
			[]Member{alive("n1"), with(alive("n2"), func(m *Member) { m.RaftAddr = "new" })}, nil, "add non-voter n2 new"},
		{"promote into a free seat", []raft.Server{voter("n1"), voter("n2"), nonvoter("n4")},
			[]Member{alive("n1"), alive("n2"), alive("n4")}, nil, "add voter n4 r-n4"},
		{"no promotion of a draining non-voter", []raft.Server{voter("n1"), nonvoter("n4")},
			[]Member{alive("n1"), with(alive("n4"), func(m *Member) { m.Draining = true })}, nil, ""},
		{"no promotion when seats are full", []raft.Server{voter("n1"), voter("n2"), voter("n3"), nonvoter("n4")},
			[]Member{alive("n1"), alive("n2"), alive("n3"), alive("n4")}, nil, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ch, ok := planChange(raft.Configuration{Servers: tc.servers}, tc.members, "n1", cfg, now, tc.missing)
			got := ""
			if ok {
				got = strings.TrimSpace(fmt.Sprintf("%s %s %s", ch.kind, ch.id, ch.addr))
			}
			if got != tc.want {
				t.Fatalf("planChange: got %q (%s), want %q", got, ch.reason, tc.want)
			}
		})
	}
}

// memberNode is a test node with raft on TCP loopback and gossip.
type memberNode struct {
	*testNode
	g *Gossip
}

func newMemberNode(t *testing.T, id string, bootstrap bool) *memberNode {
	t.Helper()
	cfg := Config{
		NodeID:             id,
		RaftListen:         "127.0.0.1:0",
		Bootstrap:          bootstrap,
		HeartbeatTimeout:   300 * time.Millisecond,
		ElectionTimeout:    300 * time.Millisecond,
		LeaderLeaseTimeout: 150 * time.Millisecond,
	}
	n := &memberNode{testNode: newTestNode(t, cfg)}
	n.start(t, "127.0.0.1:0")
	return n
}

// start starts raft, then gossip on gossipAddr carrying raft's address.
func (n *memberNode) start(t *testing.T, gossipAddr string) {
	t.Helper()
	c := n.testNode.start(t, nil)
	gcfg := fastGossip(n.cfg.NodeID, testKey(32, 7))
	gcfg.BindAddr = gossipAddr
	gcfg.RaftAddr = c.Addr()
	n.g = startGossip(t, gcfg, nil)
}

// stop stops gossip (without leaving) and raft, as a crash would.
func (n *memberNode) stop(t *testing.T) {
	t.Helper()
	if err := n.g.Shutdown(); err != nil {
		t.Fatal(err)
	}
	n.testNode.stop(t)
}

// runReconciler runs RunReconciler for n until the test ends.
func (n *memberNode) runReconciler(t *testing.T, cfg MembershipConfig) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { n.c.RunReconciler(ctx, n.g, cfg) })
	t.Cleanup(func() { cancel(); wg.Wait() })
}

// configIs reports whether c's raft configuration is exactly want, given as
// "id:voter" or "id:nonvoter" in id order.
func configIs(c *Cluster, want ...string) bool {
	servers, err := c.Servers()
	if err != nil || len(servers) != len(want) {
		return false
	}
	for i, s := range servers {
		if s.ID+":"+s.Suffrage != want[i] {
			return false
		}
	}
	return true
}

func serversString(c *Cluster) string {
	servers, err := c.Servers()
	if err != nil {
		return err.Error()
	}
	var b strings.Builder
	for _, s := range servers {
		fmt.Fprintf(&b, "%s:%s@%s leader=%v ", s.ID, s.Suffrage, s.Addr, s.IsLeader)
	}
	return b.String()
}

func TestMembership(t *testing.T) {
	t.Parallel()
	mcfg := MembershipConfig{MaxVoters: 3, DeadNodeTimeout: 2 * time.Second, Interval: 200 * time.Millisecond}

	// The first node bootstraps alone; the others start without bootstrap
	// and only gossip.
	n1 := newMemberNode(t, "n1", true)
	waitLeader(t, n1.c)
	n1.runReconciler(t, mcfg)
	nodes := []*memberNode{n1}
	for _, id := range []string{"n2", "n3"} {
		n := newMemberNode(t, id, false)
		n.runReconciler(t, mcfg)
		nodes = append(nodes, n)
	}
	start := time.Now()
	for _, n := range nodes[1:] {
		join(t, n.g, n1.g.Addr())
	}
	eventually(t, 10*time.Second, "3 voters", func() bool {
		return configIs(n1.c, "n1:voter", "n2:voter", "n3:voter")
	})
	t.Logf("n2 and n3 added as voters %v after joining gossip", time.Since(start))

	// Beyond MaxVoters a node joins as a non-voter.
	n4 := newMemberNode(t, "n4", false)
	n4.runReconciler(t, mcfg)
	nodes = append(nodes, n4)
	start = time.Now()
	join(t, n4.g, nodes[2].g.Addr())
	eventually(t, 10*time.Second, "n4 as a non-voter", func() bool {
		return configIs(n1.c, "n1:voter", "n2:voter", "n3:voter", "n4:nonvoter")
	})
	t.Logf("n4 added as a non-voter after %v", time.Since(start))

	// A proposal on the leader is applied everywhere, the non-voter included.
	v, idx := propose(t, n1.c, 5)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, n := range nodes {
		if err := n.c.WaitApplied(ctx, idx); err != nil {
			t.Fatalf("%s WaitApplied(%d): %v", n.cfg.NodeID, idx, err)
		}
		if got, _, _, _ := n.fsm.state(); got != v {
			t.Fatalf("%s FSM value: got %d, want %d", n.cfg.NodeID, got, v)
		}
	}
	if err := n4.c.WaitLeader(ctx); err != nil {
		t.Fatal(err)
	}
	if _, id := n4.c.Leader(); id != "n1" {
		t.Fatalf("n4 Leader: got %q, want n1", id)
	}
	if lc := n4.c.LastContact(); time.Since(lc) > 5*time.Second {
		t.Fatalf("n4 LastContact: %v ago", time.Since(lc))
	}

	// A restarted node keeps its data and id; on a new raft port, the
	// leader follows its new address.
	n2 := nodes[1]
	oldAddr, gossipAddr := n2.c.Addr(), n2.g.Addr()
	n2.stop(t)
	start = time.Now()
	n2.start(t, gossipAddr)
	n2.runReconciler(t, mcfg)
	join(t, n2.g, n1.g.Addr())
	newAddr := n2.c.Addr()
	if newAddr == oldAddr {
		t.Fatalf("restarted n2 on the same raft address %s", newAddr)
	}
	eventually(t, 10*time.Second, "n2's new raft address in the configuration", func() bool {
		servers, _ := n1.c.Servers()
		for _, s := range servers {
			if s.ID == "n2" {
				return s.Addr == newAddr && s.Suffrage == SuffrageVoter
			}
		}
		return false
	})
	t.Logf("n2 restarted, new raft address in use after %v: %s", time.Since(start), serversString(n1.c))
	v, idx = propose(t, n1.c, 6)
	if err := n2.c.WaitApplied(ctx, idx); err != nil {
		t.Fatalf("restarted n2 WaitApplied(%d): %v", idx, err)
	}
	if got, _, applies, _ := n2.fsm.state(); got != v || applies != 2 {
		t.Fatalf("restarted n2 FSM: value %d applies %d, want %d and 2", got, applies, v)
	}

	// A node that dies is removed after DeadNodeTimeout, and the non-voter
	// takes its voter seat.
	n3 := nodes[2]
	n3.stop(t)
	start = time.Now()
	eventually(t, 15*time.Second, "n3 removed and n4 promoted", func() bool {
		return configIs(n1.c, "n1:voter", "n2:voter", "n4:voter")
	})
	t.Logf("n3 removed and n4 promoted %v after n3 stopped", time.Since(start))
	v, idx = propose(t, n1.c, 7)
	for _, n := range []*memberNode{n2, n4} {
		if err := n.c.WaitApplied(ctx, idx); err != nil {
			t.Fatalf("%s WaitApplied(%d): %v", n.cfg.NodeID, idx, err)
		}
	}

	// Admin removal and leadership transfer.
	if err := n1.c.RemoveServer(ctx, "n3"); !errors.Is(err, ErrUnknownServer) {
		t.Fatalf("RemoveServer(n3) again: got %v, want ErrUnknownServer", err)
	}
	if err := n2.c.RemoveServer(ctx, "n4"); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("RemoveServer on a follower: got %v, want ErrNotLeader", err)
	}
	if err := n2.c.TransferLeadership(ctx); err != nil {
		t.Fatalf("TransferLeadership on a follower: got %v, want nil", err)
	}
	start = time.Now()
	if err := n1.c.TransferLeadership(ctx); err != nil {
		t.Fatalf("TransferLeadership: %v", err)
	}
	leader := leaderOf(t, 5*time.Second, n1.testNode, n2.testNode, n4.testNode)
	if leader == n1.testNode {
		t.Fatal("n1 is still the leader after TransferLeadership")
	}
	t.Logf("leadership moved to %s in %v", leader.cfg.NodeID, time.Since(start))
	servers, err := leader.c.Servers()
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range servers {
		if s.IsLeader != (s.ID == leader.cfg.NodeID) {
			t.Fatalf("Servers: %s IsLeader %v, leader is %s", s.ID, s.IsLeader, leader.cfg.NodeID)
		}
	}
}

func TestSingleNodeMembershipOps(t *testing.T) {
	t.Parallel()
	n := newMemberNode(t, "n1", true)
	waitLeader(t, n.c)
	ctx := context.Background()
	if err := n.c.TransferLeadership(ctx); err != nil {
		t.Fatalf("TransferLeadership alone: got %v, want nil", err)
	}
	if !n.c.IsLeader() {
		t.Fatal("lost leadership")
	}
	if err := n.c.RemoveServer(ctx, "n1"); !errors.Is(err, ErrLastVoter) {
		t.Fatalf("RemoveServer(self, the last voter): got %v, want ErrLastVoter", err)
	}
	if err := n.c.Reconcile(ctx, n.g.Members(), MembershipConfig{}); err != nil {
		t.Fatalf("Reconcile alone: %v", err)
	}
	if !configIs(n.c, "n1:voter") {
		t.Fatalf("configuration: %s", serversString(n.c))
	}

	// A follower's Reconcile does nothing.
	f := newMemberNode(t, "n2", false)
	if err := f.c.Reconcile(ctx, []Member{{ID: "n3", RaftAddr: "127.0.0.1:1", State: Alive}}, MembershipConfig{}); err != nil {
		t.Fatalf("Reconcile on a non-leader: got %v, want nil", err)
	}
}
