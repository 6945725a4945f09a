package cluster

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble"
	"github.com/hashicorp/raft"
	"github.com/prometheus/client_golang/prometheus"
)

// counterFSM is the test FSM: a counter in memory and the index of the last
// entry it applied, which it skips entries at or below (as the real FSM does
// with its index in Pebble). Keeping one value across a restart stands for a
// persistent FSM; a new value stands for one that lost its state.
type counterFSM struct {
	gate chan struct{} // if set, Apply waits for a receive from it

	mu       sync.Mutex // guards the fields below
	value    int64
	applied  uint64
	applies  int // entries applied, not skipped
	restores int
	appended map[uint64]time.Time // index -> the leader's AppendedAt, as this node got it
}

var (
	_ raft.FSM       = (*counterFSM)(nil)
	_ AppliedIndexer = (*counterFSM)(nil)
)

func addCmd(n int64) []byte { return binary.BigEndian.AppendUint64(nil, uint64(n)) }

func (f *counterFSM) Apply(l *raft.Log) any {
	if f.gate != nil {
		<-f.gate
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if l.Index <= f.applied {
		return nil
	}
	f.value += int64(binary.BigEndian.Uint64(l.Data))
	f.applied = l.Index
	if f.appended == nil {
		f.appended = map[uint64]time.Time{}
	}
	f.appended[l.Index] = l.AppendedAt
	f.applies++
	return f.value
}

// appendedAt returns the AppendedAt of the entry at index as applied here.
func (f *counterFSM) appendedAt(index uint64) time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.appended[index]
}

func (f *counterFSM) AppliedIndex() uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.applied
}

func (f *counterFSM) state() (value int64, applied uint64, applies, restores int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.value, f.applied, f.applies, f.restores
}

func (f *counterFSM) Snapshot() (raft.FSMSnapshot, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	b := binary.BigEndian.AppendUint64(nil, uint64(f.value))
	return counterSnapshot(binary.BigEndian.AppendUint64(b, f.applied)), nil
}

func (f *counterFSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		return err
	}
	if len(b) != 16 {
		return errors.New("counter snapshot: bad length")
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.value = int64(binary.BigEndian.Uint64(b))
	f.applied = binary.BigEndian.Uint64(b[8:])
	f.restores++
	return nil
}

type counterSnapshot []byte

func (s counterSnapshot) Persist(sink raft.SnapshotSink) error {
	if _, err := sink.Write(s); err != nil {
		_ = sink.Cancel()
		return err
	}
	return sink.Close()
}

func (counterSnapshot) Release() {}

// testNode is one node's durable parts: its directory, its Pebble database
// and its FSM, which outlive a Cluster across restarts.
type testNode struct {
	dir string
	db  *pebble.DB
	fsm *counterFSM
	cfg Config
	c   *Cluster
}

func newTestNode(t *testing.T, cfg Config) *testNode {
	t.Helper()
	dir := t.TempDir()
	cfg.DataDir = dir
	n := &testNode{dir: dir, db: openDB(t, filepath.Join(dir, "pebble")), fsm: &counterFSM{}, cfg: cfg}
	t.Cleanup(func() {
		if n.c != nil {
			_ = n.c.Shutdown()
		}
		_ = n.db.Close()
	})
	return n
}

// start starts a Cluster on the node's database and FSM.
func (n *testNode) start(t *testing.T, reg prometheus.Registerer) *Cluster {
	t.Helper()
	c, err := New(n.cfg, n.fsm, n.db, nil, reg)
	if err != nil {
		t.Fatalf("New(%s): %v", n.cfg.NodeID, err)
	}
	n.c = c
	return c
}

func (n *testNode) stop(t *testing.T) {
	t.Helper()
	if err := n.c.Shutdown(); err != nil {
		t.Fatalf("Shutdown(%s): %v", n.cfg.NodeID, err)
	}
}

// fastConfig is a single-node config with short timeouts for tests.
func fastConfig(id string) Config {
	return Config{
		NodeID:             id,
		Bootstrap:          true,
		HeartbeatTimeout:   200 * time.Millisecond,
		ElectionTimeout:    200 * time.Millisecond,
		LeaderLeaseTimeout: 100 * time.Millisecond,
	}
}

func waitLeader(t *testing.T, c *Cluster) time.Duration {
	t.Helper()
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.WaitLeader(ctx); err != nil {
		t.Fatalf("WaitLeader: %v", err)
	}
	for !c.IsLeader() {
		if ctx.Err() != nil {
			t.Fatalf("node did not become leader")
		}
		time.Sleep(5 * time.Millisecond)
	}
	return time.Since(start)
}

func propose(t *testing.T, c *Cluster, n int64) (int64, uint64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, idx, err := c.Propose(ctx, addCmd(n))
	if err != nil {
		t.Fatalf("Propose(%d): %v", n, err)
	}
	v, ok := resp.(int64)
	if !ok {
		t.Fatalf("Propose(%d): response %#v, want int64", n, resp)
	}
	return v, idx
}

// eventually polls cond until it holds or d passes.
func eventually(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
