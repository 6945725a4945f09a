package chaos

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/berth-registry/berth/chaos/faultproxy"
)

// FaultKinds are the nemesis's faults. A fault names its target by role; the
// node is chosen when it starts (the follower by the seeded random index).
var FaultKinds = []string{
	"kill-leader", "kill-follower",
	"pause-leader", "pause-follower",
	"isolate-leader-drop", "isolate-follower-drop",
	"isolate-leader-blackhole", "isolate-follower-blackhole",
}

// Fault is one scheduled fault.
type Fault struct {
	At      time.Duration `json:"at"` // from the start of the workload
	Kind    string        `json:"kind"`
	Hold    time.Duration `json:"hold"` // how long it lasts before healing
	Pick    int           `json:"pick"` // which follower, modulo their number
	Node    string        `json:"node,omitempty"`
	Began   time.Duration `json:"began,omitempty"`
	Healed  time.Duration `json:"healed,omitempty"`
	Skipped string        `json:"skipped,omitempty"` // why it did not run
	Error   string        `json:"error,omitempty"`
}

// schedule draws the faults of a run of duration d from seed: one at a time,
// each held 2-7s, with 2-5s of calm between them.
func schedule(seed uint64, d time.Duration, kinds []string) []Fault {
	r := rand.New(rand.NewPCG(seed, 2))
	var out []Fault
	at := 3 * time.Second
	for {
		f := Fault{At: at, Kind: kinds[r.IntN(len(kinds))], Hold: 2*time.Second + time.Duration(r.Int64N(int64(5*time.Second))), Pick: r.IntN(1 << 16)}
		if f.At+f.Hold > d-2*time.Second {
			return out
		}
		out = append(out, f)
		at = f.At + f.Hold + 2*time.Second + time.Duration(r.Int64N(int64(3*time.Second)))
	}
}

// nemesis runs a schedule against the cluster.
type nemesis struct {
	c     *cluster
	start time.Time
	mu    sync.Mutex // guards faults
	fs    []Fault
}

func (nm *nemesis) faults() []Fault {
	nm.mu.Lock()
	defer nm.mu.Unlock()
	return append([]Fault(nil), nm.fs...)
}

// run applies the faults in order until ctx ends; each fault is healed
// before the next (and before run returns).
func (nm *nemesis) run(ctx context.Context) {
	for i := range nm.fs {
		nm.mu.Lock()
		f := nm.fs[i]
		nm.mu.Unlock()
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Until(nm.start.Add(f.At))):
		}
		nm.apply(ctx, &f)
		nm.mu.Lock()
		nm.fs[i] = f
		nm.mu.Unlock()
	}
}

func (nm *nemesis) apply(ctx context.Context, f *Fault) {
	c := nm.c
	leader := c.leader(ctx)
	if leader == nil {
		f.Skipped = "no leader"
		return
	}
	target := leader
	if strings.Contains(f.Kind, "follower") {
		var fol []*node
		for _, n := range c.nodes {
			if n != leader && n.running() {
				fol = append(fol, n)
			}
		}
		if len(fol) == 0 {
			f.Skipped = "no follower"
			return
		}
		target = fol[f.Pick%len(fol)]
	}
	f.Node = target.id
	f.Began = time.Since(nm.start)
	wait := func() {
		select {
		case <-ctx.Done():
		case <-time.After(f.Hold):
		}
	}
	switch {
	case strings.Contains(f.Kind, "kill"):
		target.kill()
		wait()
		if target.seed == "" { // the bootstrap node rejoins through another
			for _, n := range c.nodes {
				if n != target {
					target.mu.Lock()
					target.seed = n.gossip
					target.mu.Unlock()
					break
				}
			}
		}
		if err := target.start(context.WithoutCancel(ctx)); err != nil {
			f.Error = err.Error()
		}
	case strings.Contains(f.Kind, "pause"):
		if err := target.signal(syscall.SIGSTOP); err != nil {
			f.Error = err.Error()
		}
		wait()
		if err := target.signal(syscall.SIGCONT); err != nil {
			f.Error = err.Error()
		}
	case strings.Contains(f.Kind, "isolate"):
		m := faultproxy.Drop
		if strings.Contains(f.Kind, "blackhole") {
			m = faultproxy.Blackhole
		}
		c.isolate(target, m)
		wait()
		c.heal()
	default:
		f.Error = fmt.Sprintf("unknown fault kind %q", f.Kind)
	}
	f.Healed = time.Since(nm.start)
}
