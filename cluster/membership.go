package cluster

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/hashicorp/raft"
)

// Errors of the membership operations.
var (
	// ErrUnknownServer: the raft configuration has no server with that id.
	ErrUnknownServer = errors.New("cluster: no such raft server")
	// ErrLastVoter: the change would leave the configuration without a
	// voter.
	ErrLastVoter = errors.New("cluster: refusing to remove the last voter")
)

// MembershipConfig configures how the leader turns gossip membership into
// the raft configuration. Zero fields take the defaults.
type MembershipConfig struct {
	// MaxVoters is how many voters the configuration holds at most: alive
	// members join as voters up to this count and as non-voters after it
	// (they replicate and serve everything but do not vote). Default 5:
	// a quorum of 3 survives 2 failures; more voters only slow commits.
	MaxVoters int
	// DeadNodeTimeout is how long a member must be dead (or unknown to
	// gossip) before the leader removes it from the configuration. A member
	// that left is removed at once. Default 30m: long enough for a reboot
	// or a rolling upgrade, short enough that a lost node does not count
	// against the quorum for long.
	DeadNodeTimeout time.Duration
	// Interval is how often RunReconciler reconciles besides on every
	// gossip change and leadership change. Default 5s.
	Interval time.Duration
}

// Defaults of MembershipConfig.
const (
	DefaultMaxVoters         = 5
	DefaultDeadNodeTimeout   = 30 * time.Minute
	DefaultReconcileInterval = 5 * time.Second
)

func (cfg MembershipConfig) withDefaults() MembershipConfig {
	if cfg.MaxVoters <= 0 {
		cfg.MaxVoters = DefaultMaxVoters
	}
	if cfg.DeadNodeTimeout <= 0 {
		cfg.DeadNodeTimeout = DefaultDeadNodeTimeout
	}
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultReconcileInterval
	}
	return cfg
}

// Suffrage values of ServerInfo.
const (
	SuffrageVoter    = "voter"
	SuffrageNonvoter = "nonvoter"
)

// ServerInfo is one server of the raft configuration.
type ServerInfo struct {
	ID       string
	Addr     string
	Suffrage string // SuffrageVoter or SuffrageNonvoter
	IsLeader bool
}

// Servers returns the latest raft configuration as this node knows it,
// sorted by ID: the newest configuration entry in its log, which may not be
// committed yet (on the leader, a change in flight shows at once; on a
// follower it may lag the leader's). IsLeader marks the leader this node
// knows of.
func (c *Cluster) Servers() ([]ServerInfo, error) {
	f := c.raft.GetConfiguration()
	if err := mapRaftError(f.Error()); err != nil {
		return nil, fmt.Errorf("raft configuration: %w", err)
	}
	_, leader := c.raft.LeaderWithID()
	var out []ServerInfo
	for _, s := range f.Configuration().Servers {
		suffrage := SuffrageNonvoter
		if s.Suffrage == raft.Voter {
			suffrage = SuffrageVoter
		}
		out = append(out, ServerInfo{ID: string(s.ID), Addr: string(s.Address), Suffrage: suffrage, IsLeader: s.ID == leader})
	}
	slices.SortFunc(out, func(a, b ServerInfo) int { return cmp.Compare(a.ID, b.ID) })
	return out, nil
}

// LastContact returns when this node last heard from a leader. It is
// meaningful on a follower; a leader does not update it.
func (c *Cluster) LastContact() time.Time { return c.raft.LastContact() }

// TransferLeadership hands leadership to the most up-to-date other voter
// and returns once raft reports the transfer done. It returns nil at once if
// this node is not the leader or is the only voter. Bounded by ctx and
// Config.ApplyTimeout.
func (c *Cluster) TransferLeadership(ctx context.Context) error {
	if c.stopped() {
		return fmt.Errorf("transfer leadership: %w", ErrShutdown)
	}
	if !c.IsLeader() {
		return nil
	}
	servers, err := c.Servers()
	if err != nil {
		return fmt.Errorf("transfer leadership: %w", err)
	}
	others := 0
	for _, s := range servers {
		if s.Suffrage == SuffrageVoter && s.ID != c.cfg.NodeID {
			others++
		}
	}
	if others == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, c.cfg.ApplyTimeout)
	defer cancel()
	start := time.Now()
	if err := waitFuture(ctx, c.raft.LeadershipTransfer()); err != nil {
		return fmt.Errorf("transfer leadership: %w", err)
	}
	leader, id := c.Leader()
	c.logger.Info("raft leadership transferred", "to", id, "to_addr", leader, "took", time.Since(start))
	return nil
}

// RemoveServer removes the server id from the raft configuration (the
// admin's `berth cluster remove`, for a node that is gone for good). It must
// run on the leader (ErrNotLeader otherwise) and returns once the change is
// committed. It refuses to remove the last voter (ErrLastVoter) and an id
// that is not in the configuration (ErrUnknownServer). Removing the leader
// itself makes it step down once the change is committed.
//
// A node that is still alive in gossip is added again by the reconciler:
// stop the node first.
func (c *Cluster) RemoveServer(ctx context.Context, id string) error {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.ApplyTimeout)
	defer cancel()
	if err := c.awaitLeadership(ctx); err != nil {
		return fmt.Errorf("remove server %s: %w", id, err)
	}
	f := c.raft.GetConfiguration()
	if err := mapRaftError(f.Error()); err != nil {
		return fmt.Errorf("remove server %s: %w", id, err)
	}
	conf := f.Configuration()
	i := slices.IndexFunc(conf.Servers, func(s raft.Server) bool { return s.ID == raft.ServerID(id) })
	if i < 0 {
		return fmt.Errorf("remove server %s: %w", id, ErrUnknownServer)
	}
	if conf.Servers[i].Suffrage == raft.Voter && countVoters(conf) <= 1 {
		return fmt.Errorf("remove server %s: %w", id, ErrLastVoter)
	}
	ch := change{kind: changeRemove, id: id, reason: "removed by an admin"}
	if err := c.applyChange(ctx, ch, f.Index()); err != nil {
		return fmt.Errorf("remove server %s: %w", id, err)
	}
	return nil
}

// Reconcile makes one step of bringing the raft configuration in line with
// gossip's members: on the leader, it applies at most one configuration
// change and returns once it is committed (or ctx ends, bounded by
// Config.ApplyTimeout too). On a follower it does nothing and returns nil.
//
// The changes, the first that applies in this order:
//  1. remove a server (never this node, never the last voter) whose member
//     Left, or has been Dead, or unknown to gossip, for longer than
//     DeadNodeTimeout;
//  2. re-add a server whose member gossips another RaftAddr, with that
//     address and the same suffrage (raft updates the address);
//  3. add an Alive, non-draining member that is not in the configuration:
//     as a voter while there are fewer than MaxVoters, else as a non-voter;
//  4. promote an Alive, non-draining non-voter while there are fewer than
//     MaxVoters voters (after a voter was removed).
//
// Suspect members are neither added nor removed. Changes are made against
// the configuration just read (raft's prevIndex), so concurrent callers
// cannot stack changes on a stale view.
func (c *Cluster) Reconcile(ctx context.Context, members []Member, cfg MembershipConfig) error {
	_, err := c.reconcile(ctx, members, cfg.withDefaults())
	return err
}

// reconcile is Reconcile; it reports whether it changed the configuration.
func (c *Cluster) reconcile(ctx context.Context, members []Member, cfg MembershipConfig) (bool, error) {
	if c.stopped() {
		return false, fmt.Errorf("reconcile: %w", ErrShutdown)
	}
	if !c.IsLeader() {
		c.mu.Lock()
		clear(c.missing)
		c.mu.Unlock()
		return false, nil
	}
	f := c.raft.GetConfiguration()
	if err := mapRaftError(f.Error()); err != nil {
		return false, fmt.Errorf("reconcile: %w", err)
	}
	conf := f.Configuration()
	now := time.Now()
	missing := c.trackMissing(conf, members, now)
	ch, ok := planChange(conf, members, c.cfg.NodeID, cfg, now, missing)
	if !ok {
		return false, nil
	}
	ctx, cancel := context.WithTimeout(ctx, c.cfg.ApplyTimeout)
	defer cancel()
	if err := c.applyChange(ctx, ch, f.Index()); err != nil {
		return false, fmt.Errorf("reconcile: %w", err)
	}
	return true, nil
}

// trackMissing records since when each server of conf has been absent from
// members (gossip forgets nothing it saw for days, so an absent server is
// one this node's gossip never saw since it started) and returns that map.
func (c *Cluster) trackMissing(conf raft.Configuration, members []Member, now time.Time) map[string]time.Time {
	known := make(map[string]bool, len(members))
	for _, m := range members {
		known[m.ID] = true
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.missing == nil {
		c.missing = make(map[string]time.Time)
	}
	inConf := make(map[string]bool, len(conf.Servers))
	for _, s := range conf.Servers {
		id := string(s.ID)
		inConf[id] = true
		if known[id] {
			delete(c.missing, id)
		} else if _, ok := c.missing[id]; !ok {
			c.missing[id] = now
		}
	}
	out := make(map[string]time.Time, len(c.missing))
	for id, t := range c.missing {
		if !inConf[id] {
			delete(c.missing, id)
			continue
		}
		out[id] = t
	}
	return out
}

type changeKind int

const (
	changeAddVoter changeKind = iota
	changeAddNonvoter
	changeRemove
)

func (k changeKind) String() string {
	switch k {
	case changeAddVoter:
		return "add voter"
	case changeAddNonvoter:
		return "add non-voter"
	default:
		return "remove"
	}
}

// change is one raft configuration change.
type change struct {
	kind   changeKind
	id     string
	addr   string // empty for changeRemove
	reason string
}

func countVoters(conf raft.Configuration) int {
	n := 0
	for _, s := range conf.Servers {
		if s.Suffrage == raft.Voter {
			n++
		}
	}
	return n
}

// planChange picks the next configuration change (see Reconcile for the
// rules), or reports false when conf already matches members. It is pure:
// self is this node's id, missing says since when each server of conf has
// been unknown to gossip.
func planChange(conf raft.Configuration, members []Member, self string, cfg MembershipConfig,
	now time.Time, missing map[string]time.Time,
) (change, bool) {
	byID := make(map[string]Member, len(members))
	for _, m := range members {
		byID[m.ID] = m
	}
	servers := slices.Clone(conf.Servers)
	slices.SortFunc(servers, func(a, b raft.Server) int { return cmp.Compare(a.ID, b.ID) })
	voters := countVoters(conf)

	// 1. Remove what is gone.
	for _, s := range servers {
		id := string(s.ID)
		if id == self {
			continue
		}
		var reason string
		m, ok := byID[id]
		switch {
		case !ok:
			if since, ok := missing[id]; ok && now.Sub(since) > cfg.DeadNodeTimeout {
				reason = fmt.Sprintf("unknown to gossip for %v", now.Sub(since).Round(time.Second))
			}
		case m.State == Left:
			reason = "left the cluster"
		case m.State == Dead && now.Sub(m.Since) > cfg.DeadNodeTimeout:
			reason = fmt.Sprintf("dead for %v", now.Sub(m.Since).Round(time.Second))
		}
		if reason == "" || (s.Suffrage == raft.Voter && voters <= 1) {
			continue
		}
		return change{kind: changeRemove, id: id, reason: reason}, true
	}

	// 2. Follow a changed raft address.
	for _, s := range servers {
		m, ok := byID[string(s.ID)]
		if string(s.ID) == self || !ok || m.State != Alive || m.RaftAddr == "" || m.RaftAddr == string(s.Address) {
			continue
		}
		kind := changeAddNonvoter
		if s.Suffrage == raft.Voter {
			kind = changeAddVoter
		}
		return change{kind: kind, id: m.ID, addr: m.RaftAddr,
			reason: fmt.Sprintf("raft address changed from %s", s.Address)}, true
	}

	// 3. Add who joined.
	inConf := make(map[string]raft.Server, len(servers))
	for _, s := range servers {
		inConf[string(s.ID)] = s
	}
	ready := func(m Member) bool { return m.State == Alive && !m.Draining && m.RaftAddr != "" && m.ID != self }
	sorted := slices.Clone(members)
	slices.SortFunc(sorted, func(a, b Member) int { return cmp.Compare(a.ID, b.ID) })
	for _, m := range sorted {
		if _, ok := inConf[m.ID]; ok || !ready(m) {
			continue
		}
		if voters < cfg.MaxVoters {
			return change{kind: changeAddVoter, id: m.ID, addr: m.RaftAddr, reason: "joined"}, true
		}
		return change{kind: changeAddNonvoter, id: m.ID, addr: m.RaftAddr,
			reason: fmt.Sprintf("joined; already %d voters", voters)}, true
	}

	// 4. Promote a non-voter into a free voter seat.
	if voters < cfg.MaxVoters {
		for _, s := range servers {
			m, ok := byID[string(s.ID)]
			if s.Suffrage == raft.Voter || !ok || !ready(m) {
				continue
			}
			return change{kind: changeAddVoter, id: m.ID, addr: string(s.Address),
				reason: fmt.Sprintf("promoted; %d voters of %d", voters, cfg.MaxVoters)}, true
		}
	}
	return change{}, false
}

// applyChange proposes ch against the configuration at prevIndex and waits
// for it to be committed.
func (c *Cluster) applyChange(ctx context.Context, ch change, prevIndex uint64) error {
	id, addr := raft.ServerID(ch.id), raft.ServerAddress(ch.addr)
	var f raft.IndexFuture
	switch ch.kind {
	case changeAddVoter:
		f = c.raft.AddVoter(id, addr, prevIndex, remaining(ctx))
	case changeAddNonvoter:
		f = c.raft.AddNonvoter(id, addr, prevIndex, remaining(ctx))
	case changeRemove:
		f = c.raft.RemoveServer(id, prevIndex, remaining(ctx))
	}
	start := time.Now()
	if err := waitFuture(ctx, f); err != nil {
		c.logger.Warn("raft membership change failed", "change", ch.kind.String(), "server", ch.id,
			"server_addr", ch.addr, "reason", ch.reason, "err", err)
		return fmt.Errorf("%s %s: %w", ch.kind, ch.id, err)
	}
	c.logger.Info("raft membership changed", "change", ch.kind.String(), "server", ch.id,
		"server_addr", ch.addr, "reason", ch.reason, "index", f.Index(), "took", time.Since(start))
	return nil
}

// maxStepsPerRound bounds how many changes RunReconciler makes back to back
// before it waits for the next signal, so a change that does not stick
// (raft refusing it the same way each time) cannot spin.
const maxStepsPerRound = 8

// RunReconciler reconciles the raft configuration with g's members until
// ctx ends or the Cluster shuts down: on every gossip change, on every
// leadership change and every cfg.Interval, making changes one at a time
// until there is nothing left to do. It acts only while this node leads, so
// every node runs it. Errors are logged and retried at the next signal.
func (c *Cluster) RunReconciler(ctx context.Context, g *Gossip, cfg MembershipConfig) {
	cfg = cfg.withDefaults()
	changes := g.Changes()
	t := time.NewTicker(cfg.Interval)
	defer t.Stop()
	for {
		leaderChanged := c.leaderChange()
		for range maxStepsPerRound {
			changed, err := c.reconcile(ctx, g.Members(), cfg)
			if err != nil {
				if ctx.Err() != nil || errors.Is(err, ErrShutdown) {
					return
				}
				if errors.Is(err, ErrNotLeader) || errors.Is(err, ErrLeadershipLost) {
					c.logger.Debug("membership reconcile stopped: leadership changed", "err", err)
				} else {
					c.logger.Warn("membership reconcile failed", "err", err)
				}
				break
			}
			if !changed {
				break
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-c.stop:
			return
		case _, ok := <-changes:
			if !ok {
				changes = nil // gossip shut down; keep to the ticker
			}
		case <-leaderChanged:
		case <-t.C:
		}
	}
}
