package node

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"time"
)

// Readiness (/readyz) says whether a load balancer should send this node
// requests: it is draining, it knows no Raft leader (writes and fresh reads
// would fail with 503), its state machine is far behind the commit index (it
// would serve old tags until it catches up, and every miss would wait), or its
// data disk cannot take a write or is almost full. /healthz, by contrast, only
// says the process answers: an orchestrator restarts on /healthz and stops
// routing on /readyz, so a node that is catching up or whose disk is full is
// left alone to recover instead of being restarted.
const (
	// readyMaxApplyLag is how many entries the applied index may trail the
	// commit index. It is not zero: AppliedIndex counts command entries only,
	// so a log that ends with no-op or configuration entries keeps a small
	// gap for good (cluster.Cluster.AppliedIndex).
	readyMaxApplyLag = 1024
	// readyMinFreeBytes is the free space the data disk must keep: below it
	// pushes fail (a layer is often hundreds of MiB) and Pebble cannot
	// compact, so the node should stop taking traffic before it is stuck.
	readyMinFreeBytes = 256 << 20
	// readyDiskCheckEvery bounds how often the disk probe (a small file
	// written, fsynced and removed) runs however often /readyz is asked,
	// since the endpoint is unauthenticated.
	readyDiskCheckEvery = 2 * time.Second
)

// diskCheck caches the result of the data disk probe.
type diskCheck struct {
	minFree int64 // 0: readyMinFreeBytes (tests lower or raise it)

	mu      sync.Mutex // guards the fields below
	checked time.Time
	err     error
}

// ready reports why the node should not get traffic, or nil. It is
// api.Config.Ready, called by every /readyz request.
func (n *Node) ready() error {
	if n.draining.Load() {
		return errors.New("draining")
	}
	if _, id := n.cluster.Leader(); id == "" {
		return errors.New("no raft leader")
	}
	if commit, applied := n.cluster.CommitIndex(), n.cluster.AppliedIndex(); commit > applied+readyMaxApplyLag {
		return fmt.Errorf("applied index %d trails the commit index %d by %d entries", applied, commit, commit-applied)
	}
	return n.readyz.check(n.cfg.DataDir, n.clock())
}

// check probes dir at most once per readyDiskCheckEvery and returns the last
// result.
func (d *diskCheck) check(dir string, now time.Time) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.checked.IsZero() && now.Sub(d.checked) >= 0 && now.Sub(d.checked) < readyDiskCheckEvery {
		return d.err
	}
	d.checked, d.err = now, probeDisk(dir, d.minFreeBytes())
	return d.err
}

func (d *diskCheck) minFreeBytes() int64 {
	if d.minFree > 0 {
		return d.minFree
	}
	return readyMinFreeBytes
}

// probeDisk writes, fsyncs and removes a small file in dir, then checks the
// space left for unprivileged writers.
func probeDisk(dir string, minFree int64) error {
	f, err := os.CreateTemp(dir, ".readyz-*")
	if err != nil {
		return fmt.Errorf("data disk not writable: %w", err)
	}
	name := f.Name()
	_, err = f.Write([]byte("ready\n"))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if rerr := os.Remove(name); err == nil && rerr != nil {
		err = rerr
	}
	if err != nil {
		return fmt.Errorf("data disk not writable: %w", err)
	}
	du, err := diskUsage(dir)
	if err != nil && runtime.GOOS != "linux" {
		return nil // diskUsage reads Linux only: writable is all we can tell here
	}
	if err != nil {
		return fmt.Errorf("data disk: %w", err)
	}
	if du.FreeBytes < uint64(minFree) {
		return fmt.Errorf("data disk almost full: %d MiB free in %s, want at least %d MiB",
			du.FreeBytes>>20, filepath.Clean(dir), minFree>>20)
	}
	return nil
}
