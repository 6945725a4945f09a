package deploytest

import (
	"bufio"
	"os"
	"strings"
	"testing"

	"github.com/berth-registry/berth/node"
)

// TestSystemdUnit checks berth.service's command line against the binary and
// the example configuration against the node's configuration type.
func TestSystemdUnit(t *testing.T) {
	f, err := os.Open(deployPath("systemd", "berth.service"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var exec []string
	keys := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		k, v, ok := strings.Cut(line, "=")
		if !ok || strings.HasPrefix(line, "#") {
			continue
		}
		keys[k] = v
		if k == "ExecStart" {
			exec = strings.Fields(v)
		}
	}
	if len(exec) < 2 || exec[0] != "/usr/local/bin/berth" {
		t.Fatalf("ExecStart %q", exec)
	}
	flags := parseServe(t, "berth.service ExecStart", exec[1:])
	if flags["config"] != "/etc/berth/berth.yaml" || flags["data-dir"] != "/var/lib/berth" {
		t.Errorf("ExecStart flags %v, want --config=/etc/berth/berth.yaml and --data-dir=/var/lib/berth", flags)
	}
	if keys["StateDirectory"] != "berth" || keys["User"] != "berth" || keys["KillSignal"] != "SIGTERM" {
		t.Errorf("unit: StateDirectory %q, User %q, KillSignal %q", keys["StateDirectory"], keys["User"], keys["KillSignal"])
	}

	cfg := node.Defaults()
	if err := node.LoadFile(deployPath("systemd", "berth.yaml"), &cfg); err != nil {
		t.Fatal(err)
	}
	cfg.DataDir = flags["data-dir"]
	if err := cfg.Validate(); err != nil {
		t.Errorf("the example configuration does not validate: %v", err)
	}
	if len(cfg.Join) == 0 || cfg.GossipAdvertise == "" || cfg.RaftAdvertise == "" || cfg.Advertise == "" {
		t.Errorf("the example configuration is not a cluster member's: %+v", cfg)
	}
	for _, pair := range [][2]string{{cfg.Listen, cfg.Advertise}, {cfg.RaftListen, cfg.RaftAdvertise}, {cfg.GossipListen, cfg.GossipAdvertise}} {
		if port(t, "berth.yaml", pair[0]) != port(t, "berth.yaml", pair[1]) {
			t.Errorf("berth.yaml listens on %s but advertises %s", pair[0], pair[1])
		}
	}
}
