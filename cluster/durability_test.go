package cluster

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/cockroachdb/pebble"
	"github.com/cockroachdb/pebble/vfs"
	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

// TestSyncedWriteMakesFSMWritesDurable checks the durability design in
// doc.go on a file system that loses every unsynced byte in a "crash": an
// FSM write committed with pebble.NoSync survives once the log store or the
// snapshot store has made a synced write after it.
func TestSyncedWriteMakesFSMWritesDurable(t *testing.T) {
	fsmKey := []byte("\x01meta/applied")
	tests := []struct {
		name    string
		after   func(t *testing.T, s *LogStore, db *pebble.DB) // runs after the FSM write
		survive bool
	}{
		{"nothing synced after it", func(*testing.T, *LogStore, *pebble.DB) {}, false},
		{"StoreLogs", func(t *testing.T, s *LogStore, _ *pebble.DB) {
			if err := s.StoreLogs(logs(1, 1)); err != nil {
				t.Fatal(err)
			}
		}, true},
		{"SetUint64", func(t *testing.T, s *LogStore, _ *pebble.DB) {
			if err := s.SetUint64([]byte("CurrentTerm"), 2); err != nil {
				t.Fatal(err)
			}
		}, true},
		{"DeleteRange", func(t *testing.T, s *LogStore, _ *pebble.DB) {
			if err := s.DeleteRange(1, 1); err != nil {
				t.Fatal(err)
			}
		}, true},
		{"snapshot Create", func(t *testing.T, _ *LogStore, db *pebble.DB) {
			snaps, err := newSnapshotStore(t.TempDir(), db, hclog.NewNullLogger())
			if err != nil {
				t.Fatal(err)
			}
			_, trans := raft.NewInmemTransport("n1")
			sink, err := snaps.Create(raft.SnapshotVersionMax, 5, 1, raft.Configuration{}, 1, trans)
			if err != nil {
				t.Fatal(err)
			}
			_ = sink.Cancel()
		}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			mem := vfs.NewStrictMem()
			// The database directory itself must be durable in its parent.
			if err := mem.MkdirAll("db", 0o755); err != nil {
				t.Fatal(err)
			}
			root, err := mem.OpenDir("")
			if err != nil {
				t.Fatal(err)
			}
			if err := root.Sync(); err != nil {
				t.Fatal(err)
			}
			root.Close()
			db, err := pebble.Open("db", &pebble.Options{FS: mem})
			if err != nil {
				t.Fatal(err)
			}
			s, err := NewLogStore(db)
			if err != nil {
				t.Fatal(err)
			}
			if err := db.Set(fsmKey, []byte("7"), pebble.NoSync); err != nil {
				t.Fatal(err)
			}
			tc.after(t, s, db)

			// Crash: drop everything that was not synced.
			mem.SetIgnoreSyncs(true)
			_ = db.Close()
			mem.ResetToSyncedState()
			mem.SetIgnoreSyncs(false)

			db, err = pebble.Open("db", &pebble.Options{FS: mem})
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			_, closer, err := db.Get(fsmKey)
			if err == nil {
				closer.Close()
			}
			if got := err == nil; got != tc.survive {
				t.Fatalf("FSM write survived the crash: got %v, want %v (err %v)", got, tc.survive, err)
			}
		})
	}
}

// batchingFSM is counterFSM as a raft.BatchingFSM.
type batchingFSM struct {
	*counterFSM
	batches int
}

func (b *batchingFSM) ApplyBatch(logs []*raft.Log) []any {
	b.batches++
	out := make([]any, len(logs))
	for i, l := range logs {
		if l.Type == raft.LogCommand {
			out[i] = b.Apply(l)
		}
	}
	return out
}

func TestBatchingFSMKeepsBatching(t *testing.T) {
	t.Parallel()
	n := newTestNode(t, fastConfig("n1"))
	fsm := &batchingFSM{counterFSM: n.fsm}
	wrapped, _ := wrapFSM(fsm, nil)
	if _, ok := wrapped.(raft.BatchingFSM); !ok {
		t.Fatal("wrapped batching FSM is not a raft.BatchingFSM")
	}
	c, err := New(n.cfg, fsm, n.db, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	n.c = c
	waitLeader(t, c)
	got, idx := propose(t, c, 4)
	if got != 4 || c.AppliedIndex() < idx {
		t.Fatalf("Propose: got %d, applied %d, want 4 and >= %d", got, c.AppliedIndex(), idx)
	}
	n.stop(t)
	if fsm.batches == 0 {
		t.Fatal("ApplyBatch was never called")
	}
}

func TestWaitApplied(t *testing.T) {
	t.Parallel()
	n := newTestNode(t, fastConfig("n1"))
	n.fsm.gate = make(chan struct{})
	c := n.start(t, nil)
	waitLeader(t, c)

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.WaitApplied(ctx, 0); err != nil {
		t.Fatalf("WaitApplied(0): %v", err)
	}
	type result struct {
		idx uint64
		err error
	}
	proposed := make(chan result, 1)
	go func() {
		_, idx, err := c.Propose(ctx, addCmd(1))
		proposed <- result{idx, err}
	}()
	// The entry is committed but held in the FSM: a short wait times out.
	eventually(t, 5*time.Second, "the entry to be committed", func() bool { return c.CommitIndex() > c.AppliedIndex() })
	target := c.CommitIndex()
	short, cancelShort := context.WithTimeout(ctx, 30*time.Millisecond)
	defer cancelShort()
	if err := c.WaitApplied(short, target); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitApplied while the FSM is held: got %v, want DeadlineExceeded", err)
	}
	waited := make(chan error, 1)
	go func() { waited <- c.WaitApplied(ctx, target) }()
	close(n.fsm.gate)
	r := <-proposed
	if r.err != nil {
		t.Fatalf("Propose: %v", r.err)
	}
	if err := <-waited; err != nil {
		t.Fatalf("WaitApplied(%d): %v", target, err)
	}
	if err := c.WaitApplied(ctx, r.idx); err != nil {
		t.Fatalf("WaitApplied(%d): %v", r.idx, err)
	}

	// Shutdown ends a wait for an index that will not come.
	go func() { waited <- c.WaitApplied(context.Background(), r.idx+100) }()
	time.Sleep(20 * time.Millisecond)
	n.stop(t)
	select {
	case err := <-waited:
		if !errors.Is(err, ErrShutdown) {
			t.Fatalf("WaitApplied during Shutdown: got %v, want ErrShutdown", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("WaitApplied did not return on Shutdown")
	}
}
