package cluster

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/raft"
)

// leaderPoll is how often waiters re-check the leader besides being woken by
// leader observations (which raft may drop when the channel is full).
const leaderPoll = 25 * time.Millisecond

// Propose appends cmd to the raft log and returns once it is committed by a
// quorum and applied by this node's FSM, with the value the FSM's Apply
// returned (a domain error is such a value, not err) and the entry's index.
//
// It must run on the leader. If another node is the leader it returns
// ErrNotLeader without proposing (forwarding comes later). If no leader is
// known it waits for one, and returns ErrNoLeader if none appears in time.
// The whole call is bounded by ctx and Config.ApplyTimeout, whichever ends
// first; it never hangs. After an error wrapping ctx's error (Canceled or
// DeadlineExceeded) or ErrLeadershipLost the command may still be committed
// and applied: its outcome is unknown. ErrNotLeader and ErrNoLeader mean it
// was not proposed. After Shutdown it returns ErrShutdown.
func (c *Cluster) Propose(ctx context.Context, cmd []byte) (resp any, index uint64, err error) {
	if err := ctx.Err(); err != nil {
		return nil, 0, fmt.Errorf("propose: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, c.cfg.ApplyTimeout)
	defer cancel()
	if err := c.awaitLeadership(ctx); err != nil {
		return nil, 0, fmt.Errorf("propose: %w", err)
	}
	start := time.Now()
	f := c.raft.Apply(cmd, remaining(ctx))
	if err := waitFuture(ctx, f); err != nil {
		return nil, 0, fmt.Errorf("propose: %w", err)
	}
	c.metrics.applySeconds.Observe(time.Since(start).Seconds())
	return f.Response(), f.Index(), nil
}

// Barrier returns once this node, as leader, has applied every entry
// committed before the call. It commits a barrier entry through the log, so
// success also proves that this node was still the leader at that point: a
// read from the local FSM afterwards sees every write acknowledged before
// Barrier was called. Errors and bounds are those of Propose.
func (c *Cluster) Barrier(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("barrier: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, c.cfg.ApplyTimeout)
	defer cancel()
	if err := c.awaitLeadership(ctx); err != nil {
		return fmt.Errorf("barrier: %w", err)
	}
	if err := waitFuture(ctx, c.raft.Barrier(remaining(ctx))); err != nil {
		return fmt.Errorf("barrier: %w", err)
	}
	return nil
}

// WaitLeader returns once this node knows a leader (itself or another). It
// is bounded by ctx only; on ctx's end it returns an error wrapping both
// ErrNoLeader and ctx's error, and after Shutdown ErrShutdown. A follower
// may still name a leader that has just died until its heartbeat timeout.
func (c *Cluster) WaitLeader(ctx context.Context) error {
	for {
		changed := c.leaderChange()
		if c.stopped() {
			return fmt.Errorf("wait leader: %w", ErrShutdown)
		}
		if _, id := c.raft.LeaderWithID(); id != "" {
			return nil
		}
		if err := c.waitChange(ctx, changed); err != nil {
			return fmt.Errorf("wait leader: %w", err)
		}
	}
}

// awaitLeadership returns nil if this node is the leader, ErrNotLeader if
// another node is, and otherwise waits for a leader until ctx ends.
func (c *Cluster) awaitLeadership(ctx context.Context) error {
	for {
		changed := c.leaderChange()
		if c.stopped() {
			return ErrShutdown
		}
		if c.raft.State() == raft.Leader {
			return nil
		}
		if addr, id := c.raft.LeaderWithID(); id != "" && id != raft.ServerID(c.cfg.NodeID) {
			return fmt.Errorf("%w: leader is %s at %s", ErrNotLeader, id, addr)
		}
		if err := c.waitChange(ctx, changed); err != nil {
			return err
		}
	}
}

// waitChange waits for a leader change, a short poll interval, Shutdown or
// the end of ctx.
func (c *Cluster) waitChange(ctx context.Context, changed <-chan struct{}) error {
	t := time.NewTimer(leaderPoll)
	defer t.Stop()
	select {
	case <-changed:
		return nil
	case <-t.C:
		return nil
	case <-c.stop:
		return ErrShutdown
	case <-ctx.Done():
		return fmt.Errorf("%w: %w", ErrNoLeader, ctx.Err())
	}
}

// remaining is the time left before ctx's deadline, used as raft's enqueue
// timeout (0 would mean no timeout). ctx always has a deadline here.
func remaining(ctx context.Context) time.Duration {
	d, ok := ctx.Deadline()
	if !ok {
		return DefaultApplyTimeout
	}
	return max(time.Until(d), time.Millisecond)
}

// waitFuture waits for f or the end of ctx and maps raft's errors to this
// package's. Raft resolves every future eventually (at the latest with
// ErrRaftShutdown), so the helper goroutine does not outlive the node.
func waitFuture(ctx context.Context, f raft.Future) error {
	done := make(chan error, 1)
	go func() { done <- f.Error() }()
	select {
	case err := <-done:
		return mapRaftError(err)
	case <-ctx.Done():
		return fmt.Errorf("outcome unknown: %w", ctx.Err())
	}
}

func mapRaftError(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, raft.ErrNotLeader):
		return ErrNotLeader
	case errors.Is(err, raft.ErrLeadershipLost):
		return ErrLeadershipLost
	case errors.Is(err, raft.ErrRaftShutdown):
		return ErrShutdown
	case errors.Is(err, raft.ErrLeadershipTransferInProgress):
		return fmt.Errorf("%w: %w", ErrNoLeader, err)
	case errors.Is(err, raft.ErrEnqueueTimeout):
		// raft's enqueue timeout is the rest of ctx's deadline.
		return fmt.Errorf("%w: %w", context.DeadlineExceeded, err)
	default:
		return err
	}
}

// VerifyLeader confirms that this node is still the leader, with one heartbeat
// round to a quorum and no log entry. Every write this leader acknowledged was
// applied here before it was acknowledged, so a verified leader's state is
// fresh enough for a read that must not be stale.
func (c *Cluster) VerifyLeader(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.ApplyTimeout)
	defer cancel()
	if err := waitFuture(ctx, c.raft.VerifyLeader()); err != nil {
		return fmt.Errorf("verify leader: %w", err)
	}
	return nil
}
