package cluster

import (
	"testing"
)

// A node seeded with a state at index 500 (a restored backup) starts raft
// after that index, without a bootstrap and without restoring the snapshot
// into its FSM again, and leads a cluster of itself.
func TestSeedSnapshot(t *testing.T) {
	n := newTestNode(t, fastConfig("r1"))
	n.fsm.value, n.fsm.applied = 42, 500
	if err := SeedSnapshot(n.dir, "r1", "", 500, n.fsm, nil); err != nil {
		t.Fatal(err)
	}
	if err := SeedSnapshot(n.dir, "r1", "", 500, n.fsm, nil); err == nil {
		t.Fatal("seeding twice: no error")
	}
	c := n.start(t, nil)
	waitLeader(t, c)
	got, idx := propose(t, c, 1)
	if got != 43 || idx <= 500 {
		t.Fatalf("propose after seed: value %d at index %d, want 43 after 500", got, idx)
	}
	if _, _, _, restores := n.fsm.state(); restores != 0 {
		t.Fatalf("the FSM was restored %d times, want 0", restores)
	}
	if s, err := c.Servers(); err != nil || len(s) != 1 || s[0].ID != "r1" {
		t.Fatalf("servers %v %v", s, err)
	}
}
