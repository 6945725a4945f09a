package cluster

import (
	"context"
	"fmt"
	"io"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/raft"
)

// appliedFSM wraps the FSM handed to New to track which entries the FSM has
// really applied. raft.Raft.AppliedIndex is not that: raft sets it when it
// hands a batch to its FSM goroutine (raft.go processLogs), so it can be
// ahead of the FSM (a read after waiting for it could miss the entry) and
// also behind it (an Apply future can resolve first).
//
// The tracked index counts only what reaches the FSM (commands; a batching
// FSM also gets configuration entries), never the no-op and barrier entries
// raft keeps to itself. It means: every command at or below it is reflected
// in the FSM's state. See Cluster.AppliedIndex.
//
// raft.ConfigurationStore is not forwarded (it is experimental in raft and
// Berth's FSM does not need it).
type appliedFSM struct {
	raft.FSM
	snaps raft.SnapshotStore

	applied atomic.Uint64
	nwait   atomic.Int32 // len(waiters), read without mu on the apply path

	mu      sync.Mutex // guards waiters
	waiters []appliedWaiter
}

type appliedWaiter struct {
	index uint64
	ch    chan struct{}
}

// wrapFSM returns fsm wrapped by an appliedFSM, still a raft.BatchingFSM if
// fsm is one. The tracked index starts at the FSM's own applied index when
// it implements AppliedIndexer, else at 0.
func wrapFSM(fsm raft.FSM, snaps raft.SnapshotStore) (raft.FSM, *appliedFSM) {
	a := &appliedFSM{FSM: fsm, snaps: snaps}
	if ai, ok := fsm.(AppliedIndexer); ok {
		a.applied.Store(ai.AppliedIndex())
	}
	if b, ok := fsm.(raft.BatchingFSM); ok {
		return &appliedBatchingFSM{appliedFSM: a, batching: b}, a
	}
	return a, a
}

// Apply implements raft.FSM.
func (a *appliedFSM) Apply(l *raft.Log) any {
	resp := a.FSM.Apply(l)
	a.advance(l.Index)
	return resp
}

// Restore implements raft.FSM. Afterwards the tracked index is the FSM's own
// (AppliedIndexer) or else the index of the newest snapshot, which is the
// one raft restores (at start, or just received from the leader).
func (a *appliedFSM) Restore(rc io.ReadCloser) error {
	if err := a.FSM.Restore(rc); err != nil {
		return err
	}
	var index uint64
	if ai, ok := a.FSM.(AppliedIndexer); ok {
		index = ai.AppliedIndex()
	} else if metas, err := a.snaps.List(); err == nil && len(metas) > 0 {
		index = metas[0].Index
	}
	a.applied.Store(index)
	a.wake(index)
	return nil
}

// advance records that the entry at index was applied. Only raft's FSM
// goroutine calls it (through Apply and ApplyBatch), so load-then-store is
// not a race.
func (a *appliedFSM) advance(index uint64) {
	if index <= a.applied.Load() {
		return
	}
	a.applied.Store(index)
	if a.nwait.Load() > 0 {
		a.wake(index)
	}
}

func (a *appliedFSM) wake(index uint64) {
	a.mu.Lock()
	defer a.mu.Unlock()
	kept := a.waiters[:0]
	for _, w := range a.waiters {
		if w.index <= index {
			close(w.ch)
		} else {
			kept = append(kept, w)
		}
	}
	clear(a.waiters[len(kept):])
	a.waiters = kept
	a.nwait.Store(int32(len(kept)))
}

// wait returns once the tracked index is at least index, or ctx ends, or
// stop is closed.
func (a *appliedFSM) wait(ctx context.Context, index uint64, stop <-chan struct{}) error {
	if a.applied.Load() >= index {
		return nil
	}
	w := appliedWaiter{index: index, ch: make(chan struct{})}
	a.mu.Lock()
	a.waiters = append(a.waiters, w)
	a.nwait.Store(int32(len(a.waiters)))
	a.mu.Unlock()
	// An advance between the first check and the registration did not see
	// this waiter; check again now that it is registered.
	if a.applied.Load() >= index {
		a.wake(a.applied.Load())
	}
	select {
	case <-w.ch:
		return nil
	case <-stop:
		a.drop(w)
		return ErrShutdown
	case <-ctx.Done():
		a.drop(w)
		if a.applied.Load() >= index {
			return nil
		}
		return fmt.Errorf("applied index %d, waiting for %d: %w", a.applied.Load(), index, ctx.Err())
	}
}

func (a *appliedFSM) drop(w appliedWaiter) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for i, x := range a.waiters {
		if x.ch == w.ch {
			a.waiters = append(a.waiters[:i], a.waiters[i+1:]...)
			break
		}
	}
	a.nwait.Store(int32(len(a.waiters)))
}

// appliedBatchingFSM is appliedFSM for an FSM that is a raft.BatchingFSM.
type appliedBatchingFSM struct {
	*appliedFSM
	batching raft.BatchingFSM
}

// ApplyBatch implements raft.BatchingFSM.
func (a *appliedBatchingFSM) ApplyBatch(logs []*raft.Log) []any {
	resp := a.batching.ApplyBatch(logs)
	if len(logs) > 0 {
		a.advance(logs[len(logs)-1].Index)
	}
	return resp
}
