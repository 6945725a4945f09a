package cluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"testing"
	"time"
)

// freeAddrs returns n loopback addresses whose ports were free a moment ago.
func freeAddrs(t *testing.T, n int) []string {
	t.Helper()
	var addrs []string
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		addrs = append(addrs, l.Addr().String())
	}
	return addrs
}

// leaderOf returns the node that is leader, waiting up to d for exactly one.
func leaderOf(t *testing.T, d time.Duration, nodes ...*testNode) *testNode {
	t.Helper()
	var leader *testNode
	eventually(t, d, "a single leader", func() bool {
		leader = nil
		for _, n := range nodes {
			if n.c.IsLeader() {
				if leader != nil {
					return false
				}
				leader = n
			}
		}
		return leader != nil
	})
	return leader
}

func TestThreeNodes(t *testing.T) {
	t.Parallel()
	addrs := freeAddrs(t, 3)
	var peers []Server
	for i, a := range addrs {
		peers = append(peers, Server{ID: fmt.Sprintf("n%d", i+1), Addr: a})
	}
	var nodes []*testNode
	for i, p := range peers {
		nodes = append(nodes, newTestNode(t, Config{
			NodeID:             p.ID,
			RaftListen:         addrs[i],
			Bootstrap:          true,
			Peers:              peers,
			HeartbeatTimeout:   500 * time.Millisecond,
			ElectionTimeout:    500 * time.Millisecond,
			LeaderLeaseTimeout: 250 * time.Millisecond,
		}))
	}
	for _, n := range nodes {
		n.start(t, nil)
	}
	start := time.Now()
	leader := leaderOf(t, 10*time.Second, nodes...)
	t.Logf("first leader %s after %v", leader.cfg.NodeID, time.Since(start))

	var sum int64
	var idx uint64
	for i := int64(1); i <= 5; i++ {
		sum += i
		var got int64
		got, idx = propose(t, leader.c, i)
		if got != sum {
			t.Fatalf("Propose(%d): got %d, want %d", i, got, sum)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, n := range nodes {
		if err := n.c.WaitApplied(ctx, idx); err != nil {
			t.Fatalf("%s WaitApplied(%d): %v", n.cfg.NodeID, idx, err)
		}
		if v, applied, _, _ := n.fsm.state(); v != sum || applied < idx {
			t.Fatalf("%s FSM: value %d applied %d, want %d and >= %d", n.cfg.NodeID, v, applied, sum, idx)
		}
		// The leader's append time reaches every node's FSM: meta.ApplyAt
		// stamps the state with it, so it must be the same instant everywhere.
		if at, want := n.fsm.appendedAt(idx), leader.fsm.appendedAt(idx); at.IsZero() || !at.Equal(want) {
			t.Fatalf("%s: entry %d AppendedAt %v, the leader applied it with %v", n.cfg.NodeID, idx, at, want)
		}
		if addr, id := n.c.Leader(); id != leader.cfg.NodeID || addr != leader.c.Addr() {
			t.Fatalf("%s Leader: got (%s, %s), want (%s, %s)", n.cfg.NodeID, addr, id, leader.c.Addr(), leader.cfg.NodeID)
		}
	}

	var followers []*testNode
	for _, n := range nodes {
		if n != leader {
			followers = append(followers, n)
		}
	}
	begin := time.Now()
	if _, _, err := followers[0].c.Propose(ctx, addCmd(100)); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("Propose on a follower: got %v, want ErrNotLeader", err)
	}
	if err := followers[0].c.Barrier(ctx); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("Barrier on a follower: got %v, want ErrNotLeader", err)
	}
	if d := time.Since(begin); d > time.Second {
		t.Fatalf("follower refusals took %v", d)
	}
	if err := leader.c.Barrier(ctx); err != nil {
		t.Fatalf("Barrier on the leader: %v", err)
	}

	// Kill the leader: the other two elect a new one, which takes proposals.
	old := leader
	old.stop(t)
	start = time.Now()
	leader = leaderOf(t, 10*time.Second, followers...)
	t.Logf("new leader %s after %v", leader.cfg.NodeID, time.Since(start))
	got, idx2 := propose(t, leader.c, 10)
	if got != sum+10 || idx2 <= idx {
		t.Fatalf("Propose on the new leader: got (%d, %d), want (%d, > %d)", got, idx2, sum+10, idx)
	}
	for _, n := range followers {
		if err := n.c.WaitApplied(ctx, idx2); err != nil {
			t.Fatalf("%s WaitApplied(%d): %v", n.cfg.NodeID, idx2, err)
		}
	}

	// The old leader comes back on its own state (Bootstrap is ignored) and
	// catches up.
	old.start(t, nil)
	if err := old.c.WaitApplied(ctx, idx2); err != nil {
		t.Fatalf("restarted %s WaitApplied(%d): %v", old.cfg.NodeID, idx2, err)
	}
	if v, _, applies, _ := old.fsm.state(); v != sum+10 || applies != 6 {
		t.Fatalf("restarted %s FSM: value %d applies %d, want %d and 6", old.cfg.NodeID, v, applies, sum+10)
	}
	if err := old.c.WaitLeader(ctx); err != nil {
		t.Fatalf("restarted %s WaitLeader: %v", old.cfg.NodeID, err)
	}
}
