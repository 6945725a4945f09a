package chaos

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"
)

// FaultKinds are the nemesis's faults. A fault names its target by role; the
// node is chosen when it starts (a follower by the fault's seeded Pick).
//
//	kill-leader, kill-follower, kill-all   SIGKILL, held, restarted
//	pause-leader, pause-follower            SIGSTOP, held, SIGCONT
//	isolate-{leader,follower}-{drop,blackhole}
//	                                        every link of the node cut both
//	                                        ways, refused (drop) or silent
//	partition-leader-minority               the leader with fewer than half
//	                                        the nodes, the rest apart
//	partition-random                        two random halves
//	oneway-leader-out, oneway-leader-in     only the leader's outgoing, or
//	                                        incoming, traffic to its peers
//	                                        is lost
//	bridge                                  two sides that see only one
//	                                        node in the middle
//	loss, latency                           a node's links to its peers lose
//	                                        20-40% of packets or add
//	                                        100-400ms (network.go says how)
//	disk-full                               one node's data file system is
//	                                        filled (a tmpfs as root; injected
//	                                        ENOSPC otherwise)
//	disk-error-blobs, disk-error-meta       injected EIO on a node's blob
//	                                        store writes and syncs, or on
//	                                        its Pebble writes and syncs
//	wipe-follower                           a follower is killed, its data
//	                                        directory emptied, and it
//	                                        rejoins
//	wipe-then-failover                      the other followers are cut off
//	                                        while the leader and one follower
//	                                        commit; that follower is wiped and
//	                                        the leader killed; the network
//	                                        heals, the wiped follower comes
//	                                        back empty, then the leader
//	clock-skew                              a node's clock runs 1-15 minutes
//	                                        ahead or behind
var FaultKinds = []string{
	"kill-leader", "kill-follower", "kill-all",
	"pause-leader", "pause-follower",
	"isolate-leader-drop", "isolate-follower-drop",
	"isolate-leader-blackhole", "isolate-follower-blackhole",
	"partition-leader-minority", "partition-random",
	"oneway-leader-out", "oneway-leader-in", "bridge",
	"loss", "latency",
	"disk-full", "disk-error-blobs", "disk-error-meta",
	"wipe-follower", "wipe-then-failover", "clock-skew",
}

// Fault is one scheduled fault.
type Fault struct {
	At      time.Duration `json:"at"` // from the start of the workload
	Kind    string        `json:"kind"`
	Hold    time.Duration `json:"hold"` // how long it lasts before healing
	Pick    int           `json:"pick"` // which follower, modulo their number; sizes and signs
	Node    string        `json:"node,omitempty"`
	How     string        `json:"how,omitempty"` // what was done, for the record
	Began   time.Duration `json:"began,omitempty"`
	Healed  time.Duration `json:"healed,omitempty"`
	Skipped string        `json:"skipped,omitempty"` // why it did not run
	Error   string        `json:"error,omitempty"`
}

// schedule draws the faults of a run of duration d from seed, one at a
// time: kinds are dealt from a shuffled deck (every kind once before any
// twice), each held 2-6s, with 1-3s of calm between them.
func schedule(seed uint64, d time.Duration, kinds []string) []Fault {
	r := rand.New(rand.NewPCG(seed, 2))
	var deck []string
	var fs []Fault
	at := 3 * time.Second
	for {
		if len(deck) == 0 {
			deck = slices.Clone(kinds)
			r.Shuffle(len(deck), func(i, j int) { deck[i], deck[j] = deck[j], deck[i] })
		}
		f := Fault{At: at, Kind: deck[0], Hold: 2*time.Second + time.Duration(r.Int64N(int64(4*time.Second))), Pick: r.IntN(1 << 16)}
		deck = deck[1:]
		if f.At+f.Hold > d-2*time.Second {
			return fs
		}
		fs = append(fs, f)
		at = f.At + f.Hold + time.Second + time.Duration(r.Int64N(int64(2*time.Second)))
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
// before the next (and before run returns), and a fault that ran late
// pushes the next one back to keep a second of calm.
func (nm *nemesis) run(ctx context.Context) {
	var lastHealed time.Duration
	for i := range nm.fs {
		nm.mu.Lock()
		f := nm.fs[i]
		nm.mu.Unlock()
		at := max(f.At, lastHealed+time.Second)
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Until(nm.start.Add(at))):
		}
		nm.apply(ctx, &f)
		lastHealed = time.Since(nm.start)
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
	var fol []*node
	for _, n := range c.nodes {
		if n != leader && n.running() {
			fol = append(fol, n)
		}
	}
	target := leader
	if strings.Contains(f.Kind, "follower") {
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
	bg := context.WithoutCancel(ctx)
	hard := f.Pick%2 == 0
	errs := func(err error) {
		if err != nil && f.Error == "" {
			f.Error = err.Error()
		}
	}
	netFault := func(how string, do func() error) {
		f.How = how
		errs(do())
		wait()
		errs(c.net.heal())
	}
	switch k := f.Kind; {
	case k == "kill-all":
		f.Node = "all"
		for _, n := range c.nodes {
			n.kill()
		}
		wait()
		errs(c.startAll(bg))
	case strings.HasPrefix(k, "kill-"):
		target.kill()
		wait()
		errs(target.restart(bg))
	case strings.HasPrefix(k, "pause-"):
		errs(target.signal(syscall.SIGSTOP))
		wait()
		errs(target.signal(syscall.SIGCONT))
	case strings.HasPrefix(k, "isolate-"):
		netFault(c.net.kind(), func() error { return isolate(c.net, len(c.nodes), target.idx, strings.HasSuffix(k, "blackhole")) })
	case k == "partition-leader-minority":
		minority := []int{leader.idx}
		for _, n := range fol[:min(len(fol), (len(c.nodes)-1)/2-1)] {
			minority = append(minority, n.idx)
		}
		var rest []int
		for _, n := range c.nodes {
			if !slices.Contains(minority, n.idx) {
				rest = append(rest, n.idx)
			}
		}
		netFault(fmt.Sprintf("%v | %v, hard=%v", minority, rest, hard), func() error { return partition(c.net, [][]int{minority, rest}, hard) })
	case k == "partition-random":
		f.Node = "all"
		perm := rand.New(rand.NewPCG(uint64(f.Pick), 3)).Perm(len(c.nodes))
		a, b := perm[:len(perm)/2], perm[len(perm)/2:]
		netFault(fmt.Sprintf("%v | %v, hard=%v", a, b, hard), func() error { return partition(c.net, [][]int{a, b}, hard) })
	case k == "oneway-leader-out" || k == "oneway-leader-in":
		netFault(fmt.Sprintf("%s, hard=%v", c.net.kind(), hard), func() error {
			for _, n := range c.nodes {
				if n == leader {
					continue
				}
				var err error
				if k == "oneway-leader-out" {
					err = c.net.cut(leader.idx, n.idx, hard)
				} else {
					err = c.net.cut(n.idx, leader.idx, hard)
				}
				if err != nil {
					return err
				}
			}
			return nil
		})
	case k == "bridge":
		// The leader is one side's only node; the bridge sees both sides.
		if len(fol) < 2 {
			f.Skipped = "fewer than 2 followers"
			return
		}
		bridge := fol[f.Pick%len(fol)]
		a := []int{leader.idx}
		var b []int
		for i, n := range fol {
			switch {
			case n == bridge:
			case i%2 == 1 && len(c.nodes) > 3:
				a = append(a, n.idx)
			default:
				b = append(b, n.idx)
			}
		}
		f.Node = bridge.id
		netFault(fmt.Sprintf("%v | %s | %v, hard=%v", a, bridge.id, b, hard), func() error { return partition(c.net, [][]int{a, b}, hard) })
	case k == "loss":
		p := 0.2 + float64(f.Pick%21)/100
		var how string
		netFault("", func() error { var err error; how, err = c.net.loss(target.idx, p); return err })
		f.How = how
	case k == "latency":
		d := time.Duration(100+f.Pick%301) * time.Millisecond
		var how string
		netFault("", func() error { var err error; how, err = c.net.latency(target.idx, d); return err })
		f.How = how
	case k == "disk-full":
		nm.diskFull(bg, f, target, wait)
	case k == "disk-error-blobs" || k == "disk-error-meta":
		store, op, p := "blobs", "all", 0.3
		if k == "disk-error-meta" {
			store, op, p = "meta", "sync", 0.5
		}
		f.How = fmt.Sprintf("EIO on %s %s, p=%.1f", store, op, p)
		target.setDiskFault(true)
		errs(c.setFaults(bg, target, fmt.Sprintf(`{"disk":[{"store":%q,"op":%q,"error":"EIO","probability":%g}]}`, store, op, p)))
		wait()
		if target.running() {
			errs(c.clearFaults(bg, target))
		}
		target.setDiskFault(false)
		errs(target.restart(bg)) // a node that failed stop on the error comes back
	case k == "wipe-follower":
		target.kill()
		errs(emptyDir(target.dataDir))
		f.How = "killed, data directory emptied, rejoining through " + leader.id
		target.mu.Lock()
		target.seed = leader.adv.gossip
		target.mu.Unlock()
		wait()
		errs(target.restart(bg))
	case k == "wipe-then-failover":
		nm.wipeThenFailover(bg, f, leader, fol, wait)
	case k == "clock-skew":
		all := runningNodes(c)
		target = all[f.Pick%len(all)]
		f.Node = target.id
		off := time.Duration(1+f.Pick%15) * time.Minute
		if f.Pick%2 == 1 {
			off = -off
		}
		f.How = "clock offset " + off.String()
		errs(c.setFaults(bg, target, fmt.Sprintf(`{"clockOffset":%q}`, off.String())))
		wait()
		if target.running() {
			errs(c.clearFaults(bg, target))
		}
	default:
		f.Error = fmt.Sprintf("unknown fault kind %q", f.Kind)
	}
	// Whatever died under the fault (expected or not: the crash checker
	// tells) runs again before the next one.
	errs(c.startAll(bg))
	f.Healed = time.Since(nm.start)
}

func runningNodes(c *cluster) []*node {
	var out []*node
	for _, n := range c.nodes {
		if n.running() {
			out = append(out, n)
		}
	}
	return out
}

// wipeThenFailover: the one way a wiped node can cost acknowledged writes.
// While the followers but one (F) are cut off, the leader and F commit
// writes the others lack. F is killed and wiped, the leader killed, the
// network healed, and F restarted empty. If an empty node voted, the lagging
// followers and F would elect a leader without those writes, and the old
// leader's log would be cut back to it when it returns.
func (nm *nemesis) wipeThenFailover(ctx context.Context, f *Fault, leader *node, fol []*node, wait func()) {
	c := nm.c
	if len(fol) < 2 {
		f.Skipped = "fewer than 2 followers"
		return
	}
	wiped := fol[f.Pick%len(fol)]
	var lag []*node
	for _, n := range fol {
		if n != wiped {
			lag = append(lag, n)
		}
	}
	errs := func(err error) {
		if err != nil && f.Error == "" {
			f.Error = err.Error()
		}
	}
	f.Node = wiped.id
	f.How = fmt.Sprintf("%v cut off; %s wiped, leader %s killed; healed; %s back empty, %s later", ids(lag), wiped.id, leader.id, wiped.id, leader.id)
	for _, n := range lag {
		errs(isolate(c.net, len(c.nodes), n.idx, true))
	}
	time.Sleep(1500 * time.Millisecond) // writes commit on the leader and the wiped-to-be follower
	wiped.kill()
	errs(emptyDir(wiped.dataDir))
	leader.kill()
	errs(c.net.heal())
	wiped.mu.Lock()
	wiped.seed = lag[0].adv.gossip
	wiped.mu.Unlock()
	// The wiped node is not ready before there is a leader again: start it,
	// hold, bring the old leader back, then wait for both.
	exited, err := wiped.launch()
	errs(err)
	wait()
	errs(leader.restart(ctx))
	if err == nil {
		errs(wiped.waitReady(ctx, 60*time.Second, exited))
	}
}

func ids(ns []*node) []string {
	out := make([]string, len(ns))
	for i, n := range ns {
		out[i] = n.id
	}
	return out
}

// diskFull fills the node's data file system (the tmpfs the cluster gave
// one node, when it could mount one) or makes every write of the node fail
// with ENOSPC.
func (nm *nemesis) diskFull(ctx context.Context, f *Fault, target *node, wait func()) {
	c := nm.c
	if c.tmpfs != nil {
		target = c.tmpfs
		f.Node = target.id
		target.setDiskFault(true)
		ballast := filepath.Join(target.dataDir, "chaos-ballast")
		n, err := fill(ballast)
		f.How = fmt.Sprintf("tmpfs filled with a %d MiB ballast file", n>>20)
		if err != nil {
			f.Error = err.Error()
		}
		wait()
		if err := os.Remove(ballast); err != nil && f.Error == "" {
			f.Error = err.Error()
		}
		target.setDiskFault(false)
		if err := target.restart(ctx); err != nil && f.Error == "" {
			f.Error = err.Error()
		}
		return
	}
	f.How = "no tmpfs (not root): ENOSPC injected on every write of the node"
	target.setDiskFault(true)
	err := c.setFaults(ctx, target, `{"disk":[{"store":"all","op":"write","error":"ENOSPC","probability":1}]}`)
	wait()
	if target.running() {
		if err2 := c.clearFaults(ctx, target); err == nil {
			err = err2
		}
	}
	target.setDiskFault(false)
	if err2 := target.restart(ctx); err == nil {
		err = err2
	}
	if err != nil {
		f.Error = err.Error()
	}
}

// fill writes zeros to path until the file system is full.
func fill(path string) (int64, error) {
	fh, err := os.Create(path)
	if err != nil {
		return 0, err
	}
	defer fh.Close()
	buf := make([]byte, 1<<20)
	var n int64
	for len(buf) >= 512 {
		m, err := fh.Write(buf)
		n += int64(m)
		if err != nil {
			if !isNoSpace(err) {
				return n, err
			}
			buf = buf[:len(buf)/4]
		}
	}
	return n, nil
}

func isNoSpace(err error) bool {
	for e := err; e != nil; {
		if e == syscall.ENOSPC {
			return true
		}
		u, ok := e.(interface{ Unwrap() error })
		if !ok {
			return false
		}
		e = u.Unwrap()
	}
	return false
}

// emptyDir removes everything in dir (which may be a mount point).
func emptyDir(dir string) error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		if os.IsNotExist(err) {
			return nil
		}
		return err
	}
	for _, e := range ents {
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			return err
		}
	}
	return nil
}
