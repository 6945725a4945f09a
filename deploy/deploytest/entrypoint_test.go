package deploytest

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// entrypoint runs deploy/berth-entrypoint.sh with /bin/sh, berth replaced by
// echo, and returns the command line it would run.
func entrypoint(t *testing.T, env []string, args ...string) string {
	t.Helper()
	cmd := exec.Command("/bin/sh", append([]string{deployPath("berth-entrypoint.sh")}, args...)...)
	cmd.Env = append([]string{"BERTH_BIN=echo", "PATH=" + os.Getenv("PATH")}, env...)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("entrypoint %v %v: %v", env, args, err)
	}
	return strings.TrimSpace(string(out))
}

func TestEntrypoint(t *testing.T) {
	data := t.TempDir()
	peers := "BERTH_PEERS=b1:7946,b2:7946,b3:7946"
	serve := func(id string) []string {
		return []string{"serve", "--node-id=" + id, "--data-dir", data, "--gossip-advertise=" + id + ":7946"}
	}
	line := func(args ...string) string { return strings.Join(args, " ") }
	for _, tc := range []struct {
		name string
		env  []string
		args []string
		want string
	}{
		{"not serve", []string{peers}, []string{"version"}, "version"},
		{"no peers", nil, serve("b1"), line(serve("b1")...)},
		{"bootstrap node, first start", []string{peers, "BERTH_BOOTSTRAP_NODE=b1"}, serve("b1"), line(serve("b1")...)},
		{"other node", []string{peers, "BERTH_BOOTSTRAP_NODE=b1"}, serve("b2"), line(serve("b2")...) + " --join=b1:7946,b3:7946"},
		{"no bootstrap node", []string{peers}, serve("b1"), line(serve("b1")...) + " --join=b2:7946,b3:7946"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := entrypoint(t, tc.env, tc.args...); got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
	// Once the bootstrap node has Raft state, it joins like the others.
	if err := os.Mkdir(filepath.Join(data, "raft"), 0o700); err != nil {
		t.Fatal(err)
	}
	if got, want := entrypoint(t, []string{peers, "BERTH_BOOTSTRAP_NODE=b1"}, serve("b1")...), line(serve("b1")...)+" --join=b2:7946,b3:7946"; got != want {
		t.Errorf("restart of the bootstrap node: got %q, want %q", got, want)
	}
}
