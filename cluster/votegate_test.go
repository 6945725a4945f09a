package cluster

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// TestWipedVoterWaits: a follower that lost its disk and comes back under its
// old ID must not vote before it has caught up. One follower (lag) is down
// while the leader and the other follower (w) commit entries; w loses its
// disk and the leader stops; lag and the empty w come up. If w voted, lag
// would lead without the committed entries and the old leader's log would be
// cut back to it. With the gate nobody leads until the old leader returns,
// and every entry survives.
func TestWipedVoterWaits(t *testing.T) {
	t.Parallel()
	addrs := freeAddrs(t, 3)
	var peers []Server
	for i, a := range addrs {
		peers = append(peers, Server{ID: fmt.Sprintf("n%d", i+1), Addr: a})
	}
	cfgOf := func(i int, bootstrap bool) Config {
		return Config{NodeID: peers[i].ID, RaftListen: addrs[i], Bootstrap: bootstrap, Peers: peers,
			HeartbeatTimeout: 300 * time.Millisecond, ElectionTimeout: 300 * time.Millisecond, LeaderLeaseTimeout: 150 * time.Millisecond}
	}
	var nodes []*testNode
	for i := range peers {
		nodes = append(nodes, newTestNode(t, cfgOf(i, true)))
		nodes[i].start(t, nil)
	}
	leader := leaderOf(t, 10*time.Second, nodes...)
	var lag, w *testNode
	wi := 0
	for i, n := range nodes {
		switch {
		case n == leader:
		case lag == nil:
			lag = n
		default:
			w, wi = n, i
		}
	}
	lag.stop(t)
	var sum int64
	var idx uint64
	for i := int64(1); i <= 5; i++ {
		sum += i
		var got int64
		if got, idx = propose(t, leader.c, i); got != sum {
			t.Fatalf("propose %d: got %d, want %d", i, got, sum)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := w.c.WaitApplied(ctx, idx); err != nil {
		t.Fatal(err)
	}
	w.stop(t)
	leader.stop(t)

	// w lost its disk: a new, empty data directory; it does not bootstrap.
	wiped := newTestNode(t, cfgOf(wi, false))
	reg := prometheus.NewRegistry()
	lag.start(t, nil)
	wiped.start(t, reg)
	if !wiped.c.Fresh() || wiped.c.Voting() {
		t.Fatalf("wiped node: Fresh %v Voting %v, want true, false", wiped.c.Fresh(), wiped.c.Voting())
	}
	for end := time.Now().Add(3 * time.Second); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		if lag.c.IsLeader() || wiped.c.IsLeader() {
			t.Fatalf("a leader was elected without the committed entries (lag leads: %v, wiped leads: %v)", lag.c.IsLeader(), wiped.c.IsLeader())
		}
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var refused float64 = -1
	for _, mf := range mfs {
		if mf.GetName() == "berth_raft_votes_refused_total" {
			refused = mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	if refused < 1 {
		t.Fatalf("berth_raft_votes_refused_total = %v on the wiped node, want its refusals", refused)
	}

	// The old leader returns; the entries are all there, everywhere.
	leader.start(t, nil)
	l := leaderOf(t, 10*time.Second, leader, lag, wiped)
	got, idx2 := propose(t, l.c, 100)
	if got != sum+100 {
		t.Fatalf("after the old leader returned: value %d, want %d (committed entries lost)", got, sum+100)
	}
	for _, n := range []*testNode{leader, lag, wiped} {
		if err := n.c.WaitApplied(ctx, idx2); err != nil {
			t.Fatalf("%s: %v", n.cfg.NodeID, err)
		}
		if v, _, _, _ := n.fsm.state(); v != sum+100 {
			t.Fatalf("%s: value %d, want %d", n.cfg.NodeID, v, sum+100)
		}
	}
	eventually(t, 5*time.Second, "the wiped node votes again", wiped.c.Voting)
}
