package main

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestStatusCLI(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a node")
	}
	base := startAdminTestNode(t)
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	t.Setenv("BERTH_USER", "admin")
	t.Setenv("BERTH_PASSWORD", adminTestPassword)
	t.Setenv("BERTH_SERVER", "")

	var st struct {
		Node, Leader string
		Term         uint64
		Nodes        []struct {
			ID, State, Suffrage string
			IsLeader            bool
			AppliedIndex        uint64
			Disk                struct{ CapacityBytes uint64 }
		}
	}
	code, out, errs := cli(t, "status", "--server", base, "--json")
	if code != 0 {
		t.Fatalf("berth status --json: exit %d\n%s%s", code, out, errs)
	}
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("berth status --json: %v\n%s", err, out)
	}
	if st.Leader == "" || st.Term == 0 || len(st.Nodes) != 1 {
		t.Fatalf("status: %+v", st)
	}
	if n := st.Nodes[0]; n.ID != st.Leader || !n.IsLeader || n.State != "alive" || n.Suffrage != "voter" || n.AppliedIndex == 0 || n.Disk.CapacityBytes == 0 {
		t.Errorf("node: %+v", n)
	}

	// The table: one line per node, the leader marked, no lag.
	out = mustCLI(t, "status", "--server", base)
	for _, want := range []string{"Leader: " + st.Leader, "NODE", "LAG", "DISK USED", "BACKLOG", st.Leader, "leader", "alive"} {
		if !strings.Contains(out, want) {
			t.Errorf("status table lacks %q:\n%s", want, out)
		}
	}

	// A single node cannot remove itself; an unknown node is refused; a
	// missing argument is a usage error.
	if code, _, errs := cli(t, "cluster", "remove", st.Leader, "--server", base); code != 1 || !strings.Contains(errs, "CONFLICT") {
		t.Errorf("cluster remove self: exit %d %q", code, errs)
	}
	if code, _, errs := cli(t, "cluster", "remove", "nobody", "--server", base); code != 1 || !strings.Contains(errs, "NOT_FOUND") {
		t.Errorf("cluster remove nobody: exit %d %q", code, errs)
	}
	if code, _, _ := cli(t, "cluster", "remove", "--server", base); code != 2 {
		t.Errorf("cluster remove without a node: exit %d, want 2", code)
	}

	// Without the admin's credentials: refused, exit 1.
	t.Setenv("BERTH_PASSWORD", "wrong-password")
	if code, _, _ := cli(t, "status", "--server", base); code != 1 {
		t.Errorf("status with a wrong password: exit %d, want 1", code)
	}
}

func TestPrintStatusNoLeader(t *testing.T) {
	var st clusterStatus
	if err := json.Unmarshal([]byte(`{"node":"n2","leader":"","term":7,"nodes":[
		{"id":"n1","zone":"a","state":"dead","suffrage":"voter","error":"not alive in gossip (dead): no figures of its own"},
		{"id":"n2","zone":"b","state":"alive","suffrage":"voter","raftState":"candidate","appliedIndex":40,"replicationBacklog":3,
		 "disk":{"capacityBytes":1000,"usedBytes":250,"freeBytes":750}}]}`), &st); err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	if err := printStatus(&adminEnv{stdout: &b}, &st); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{"Leader: none", "n1: not alive in gossip", "25%", "40", "dead"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
}
