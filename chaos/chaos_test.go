//go:build linux

package chaos

import (
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// TestChaosShort is the seeded run `make test` carries: 3 nodes, 100s of
// workload under a dozen faults dealt from every kind (kills, pauses,
// partitions, loss and latency, disk faults, a wiped node, clock skew), then
// every checker. BERTH_CHAOS_NETWORK picks netns or proxy (default: netns
// when root). BERTH_CHAOS_SEED replays a seed. The run
// directory is kept and printed when a checker fails.
// Every checker must pass, "linearizable" (every read, mid-fault ones
// included) among them: it found that tag reads were answered from local state
// without a read barrier (fixed: tag reads now wait for a batched read index).
func TestChaosShort(t *testing.T) {
	if testing.Short() {
		t.Skip("chaos: skipped in -short mode")
	}
	seed := uint64(20261127)
	if s := os.Getenv("BERTH_CHAOS_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("BERTH_CHAOS_SEED: %v", err)
		}
		seed = v
	}
	bin := filepath.Join(t.TempDir(), "berth")
	if err := Build(t.Context(), "..", bin); err != nil {
		if os.Getenv("BERTH_E2E_REQUIRE") == "1" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	dir, err := os.MkdirTemp("", "berth-chaos-test-")
	if err != nil {
		t.Fatal(err)
	}
	res, err := Run(t.Context(), Config{
		Bin: bin, Dir: dir, Nodes: 3, Clients: 6, Duration: 100 * time.Second, Seed: seed,
		Logf: t.Logf, Network: os.Getenv("BERTH_CHAOS_NETWORK"),
	})
	if err != nil {
		t.Fatalf("seed %d: %v (kept %s)", seed, err, dir)
	}
	t.Log(res.Summary())
	for _, v := range res.Verdicts {
		t.Logf("%s: ok=%v %s", v.Name, v.OK, v.Detail)
		for _, p := range v.Problems {
			t.Errorf("%s: %s", v.Name, p)
		}
	}
	if len(res.Faults) < 8 {
		t.Errorf("only %d fault kinds ran: %v", len(res.Faults), res.Schedule)
	}
	if !res.OK() {
		t.Errorf("seed %d failed; history, schedule and node logs kept in %s", seed, dir)
		return
	}
	_ = os.RemoveAll(dir)
}
