// Command berth-chaos runs Berth's fault harness (package chaos) once:
//
//	go run ./chaos/cmd/berth-chaos -duration 30m -seed 42 -nodes 3
//
// It builds ./cmd/berth (unless -bin is given), prints one summary line and
// exits 1 when a checker failed, keeping the run's directory (history,
// schedule, node logs) for replay with the same seed.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/berth-registry/berth/chaos"
)

func main() {
	duration := flag.Duration("duration", 2*time.Minute, "how long the workload and the nemesis run")
	seed := flag.Uint64("seed", uint64(time.Now().UnixNano()), "the schedule's and the workload's seed")
	nodes := flag.Int("nodes", 3, "cluster size (3 or 5)")
	clients := flag.Int("clients", 6, "concurrent clients")
	bin := flag.String("bin", "", "a berth binary (default: build ./cmd/berth)")
	allow := flag.String("allow", "", "comma-separated checkers whose failure does not fail the run (known bugs)")
	keep := flag.Bool("keep", false, "keep the run directory even when every check passes")
	network := flag.String("network", "", "netns (each node in a network namespace; root), proxy (TCP proxies per link), or empty: netns when it works")
	faults := flag.String("faults", "", "comma-separated fault kinds to draw from (default: all: "+strings.Join(chaos.FaultKinds, ",")+")")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	dir, err := os.MkdirTemp("", fmt.Sprintf("berth-chaos-%d-", *seed))
	if err != nil {
		fatal(err)
	}
	if *bin == "" {
		*bin = filepath.Join(dir, "berth")
		if err := chaos.Build(ctx, ".", *bin); err != nil {
			fatal(err)
		}
	}
	res, err := chaos.Run(ctx, chaos.Config{
		Bin: *bin, Dir: filepath.Join(dir, "run"), Nodes: *nodes, Clients: *clients, Duration: *duration, Seed: *seed,
		Allow: splitList(*allow), Network: *network, Faults: splitList(*faults),
		Logf: func(f string, a ...any) { fmt.Fprintf(os.Stderr, f+"\n", a...) },
	})
	if err != nil {
		fatal(fmt.Errorf("seed %d: %w (run directory kept: %s)", *seed, err, dir))
	}
	fmt.Println(res.Summary())
	if !res.OK() {
		for _, v := range res.Verdicts {
			for _, p := range v.Problems {
				fmt.Fprintf(os.Stderr, "%s: %s\n", v.Name, p)
			}
		}
		os.Exit(1)
	}
	if !*keep {
		_ = os.RemoveAll(dir)
	}
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "berth-chaos:", err)
	os.Exit(2)
}

func splitList(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, ",")
}
