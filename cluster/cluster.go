package cluster

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble"
	"github.com/hashicorp/raft"
	"github.com/prometheus/client_golang/prometheus"
)

// Errors of this package, checked with errors.Is. Every error returned by a
// Cluster method that has one of these meanings wraps it.
var (
	// ErrNotLeader: this node is not the leader, and another node is known
	// to be. The command was not proposed.
	ErrNotLeader = errors.New("cluster: not the leader")
	// ErrNoLeader: no leader became known within the time allowed. The
	// command was not proposed. It is transient: retry later (HTTP 503).
	ErrNoLeader = errors.New("cluster: no leader")
	// ErrLeadershipLost: this node lost leadership after the command was
	// appended to its log and before it was committed. The command may or
	// may not be committed and applied later.
	ErrLeadershipLost = errors.New("cluster: leadership lost, outcome unknown")
	// ErrShutdown: the Cluster has been shut down.
	ErrShutdown = errors.New("cluster: shut down")
	// ErrInvalidConfig is wrapped by New for a Config it cannot run.
	ErrInvalidConfig = errors.New("cluster: invalid config")
)

// Server is one voter of the configuration a new cluster is bootstrapped
// with.
type Server struct {
	ID   string // raft server id (Config.NodeID of that node)
	Addr string // raft address the other nodes dial (host:port)
}

// Config configures a Cluster. Zero durations and counts take the defaults
// documented on each field.
type Config struct {
	// NodeID is this node's raft server id. Required; it must never change
	// for a given data directory.
	NodeID string
	// DataDir holds the snapshot store, in DataDir/raft/snapshots (two
	// snapshots are retained). Required.
	DataDir string
	// RaftListen is the TCP address of the raft transport ("host:port";
	// port 0 picks a free one). Empty means a single node on an in-memory
	// transport that opens no port.
	RaftListen string
	// Advertise is the raft address other nodes dial. With a TCP transport
	// it must resolve to an IP address; it is needed when RaftListen binds
	// an unspecified address such as 0.0.0.0. With the in-memory transport
	// it only names this node in the configuration (default NodeID).
	Advertise string
	// Bootstrap writes an initial configuration if the node has no raft
	// state yet (no term, log or snapshot); a node with state ignores it,
	// so a restart reuses its state.
	Bootstrap bool
	// Peers is the configuration Bootstrap writes: every voter, this node
	// included. Every node bootstrapped together must be given the same
	// Peers. Empty means a single-node cluster of this node at its own
	// address, the usual start: further nodes start with Bootstrap false,
	// join gossip, and are added by the leader's reconciler (membership.go).
	Peers []Server
	// ApplyTimeout bounds Propose and Barrier as a whole (waiting for a
	// leader, enqueueing, committing, applying) on top of the caller's ctx.
	// Default 10s.
	ApplyTimeout time.Duration
	// SnapshotThreshold is the number of log entries after which raft takes
	// a snapshot and compacts the log. Default 8192.
	SnapshotThreshold uint64
	// SnapshotInterval is how often raft checks SnapshotThreshold.
	// Default 2m.
	SnapshotInterval time.Duration
	// TrailingLogs is how many entries raft keeps behind a snapshot so a
	// slightly lagging follower catches up without a snapshot. Default 10240.
	TrailingLogs uint64
	// HeartbeatTimeout is how long a follower waits without hearing from a
	// leader before it starts an election. It also bounds how fast a
	// restarted single node becomes leader again (between one and two
	// timeouts). Default 1s.
	HeartbeatTimeout time.Duration
	// ElectionTimeout is how long a candidate waits for votes. Default 1s.
	ElectionTimeout time.Duration
	// LeaderLeaseTimeout is how long a leader stays leader without hearing
	// from a quorum. Must not exceed HeartbeatTimeout. Default 500ms.
	LeaderLeaseTimeout time.Duration

	// ServerTLS and ClientTLS, when set, run raft over mutual TLS (tls.go):
	// ServerTLS for accepted connections (it must require and verify client
	// certificates against the cluster CA), ClientTLS for dialled ones. They
	// need RaftListen. Nil: plain TCP.
	ServerTLS, ClientTLS *tls.Config
}

// Defaults of Config. The timeouts are raft's own LAN defaults: a few
// hundred milliseconds more for a restart than the fastest safe settings, in
// exchange for not flapping leadership under load in a multi-node cluster.
const (
	DefaultApplyTimeout       = 10 * time.Second
	DefaultSnapshotThreshold  = 8192
	DefaultSnapshotInterval   = 2 * time.Minute
	DefaultTrailingLogs       = 10240
	DefaultHeartbeatTimeout   = time.Second
	DefaultElectionTimeout    = time.Second
	DefaultLeaderLeaseTimeout = 500 * time.Millisecond
)

func (cfg Config) withDefaults() Config {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&cfg.ApplyTimeout, DefaultApplyTimeout)
	def(&cfg.SnapshotInterval, DefaultSnapshotInterval)
	def(&cfg.HeartbeatTimeout, DefaultHeartbeatTimeout)
	def(&cfg.ElectionTimeout, DefaultElectionTimeout)
	def(&cfg.LeaderLeaseTimeout, DefaultLeaderLeaseTimeout)
	if cfg.SnapshotThreshold == 0 {
		cfg.SnapshotThreshold = DefaultSnapshotThreshold
	}
	if cfg.TrailingLogs == 0 {
		cfg.TrailingLogs = DefaultTrailingLogs
	}
	return cfg
}

func (cfg Config) validate() error {
	if cfg.NodeID == "" {
		return fmt.Errorf("%w: NodeID is empty", ErrInvalidConfig)
	}
	if cfg.DataDir == "" {
		return fmt.Errorf("%w: DataDir is empty", ErrInvalidConfig)
	}
	if len(cfg.Peers) == 0 {
		return nil
	}
	seen := make(map[string]bool, len(cfg.Peers))
	for _, p := range cfg.Peers {
		if p.ID == "" || p.Addr == "" {
			return fmt.Errorf("%w: peer %q at %q: empty id or address", ErrInvalidConfig, p.ID, p.Addr)
		}
		if seen[p.ID] {
			return fmt.Errorf("%w: peer %q listed twice", ErrInvalidConfig, p.ID)
		}
		seen[p.ID] = true
	}
	if !seen[cfg.NodeID] {
		return fmt.Errorf("%w: Peers does not list this node %q", ErrInvalidConfig, cfg.NodeID)
	}
	if cfg.RaftListen == "" && len(cfg.Peers) > 1 {
		return fmt.Errorf("%w: several Peers need a TCP transport (RaftListen)", ErrInvalidConfig)
	}
	return nil
}

// AppliedIndexer is implemented by an FSM that persists the index of the last
// entry it applied (in the same batch as the entry's changes; raft hands the
// FSM command entries only, so no-op and barrier indexes are never seen).
// New reads it once, before raft starts, to detect an FSM that is behind the
// newest snapshot (see doc.go), and after each FSM.Restore, on raft's FSM
// goroutine, to know how far the restored state reaches.
type AppliedIndexer interface {
	AppliedIndex() uint64
}

// Cluster is one running raft node. Its methods are safe for concurrent use.
// New starts it; Shutdown stops it and must be called before the Pebble
// database it was given is closed.
type Cluster struct {
	cfg     Config
	logger  *slog.Logger
	raft    *raft.Raft
	logs    *LogStore
	applied *appliedFSM
	addr    string // advertised raft address
	metrics *metrics
	gate    *voteGate // nil unless the node started without state and without bootstrapping

	observer *raft.Observer
	obsCh    chan raft.Observation
	stop     chan struct{} // closed when Shutdown starts
	wg       sync.WaitGroup

	shutdownOnce sync.Once
	shutdownErr  error // result of the first Shutdown, set inside shutdownOnce

	mu            sync.Mutex           // guards the fields below
	leaderChanged chan struct{}        // closed and replaced on every leader change
	missing       map[string]time.Time // raft servers unknown to gossip, since when (reconcile)
}

// New starts a raft node for fsm, keeping the raft log and stable values in
// db (next to the FSM's own keys, see doc.go) and snapshots in
// cfg.DataDir/raft/snapshots. If cfg.Bootstrap is set and there is no raft
// state yet, it first writes the initial configuration (cfg.Peers, or just
// this node). It returns without waiting for a leader: see WaitLeader.
//
// logger may be nil (nothing is logged); reg may be nil (no metrics are
// registered). The Cluster does not own db or fsm; the caller closes db after
// Shutdown.
func New(cfg Config, fsm raft.FSM, db *pebble.DB, logger *slog.Logger, reg prometheus.Registerer) (*Cluster, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if fsm == nil || db == nil {
		return nil, fmt.Errorf("%w: nil fsm or pebble db", ErrInvalidConfig)
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	logger = logger.With("node", cfg.NodeID)
	hl := newHCLogger(logger, "raft")

	rcfg, err := raftConfig(cfg, hl)
	if err != nil {
		return nil, err
	}
	logs, err := NewLogStore(db)
	if err != nil {
		return nil, fmt.Errorf("cluster: %w", err)
	}
	snaps, err := newSnapshotStore(cfg.DataDir, db, hl)
	if err != nil {
		return nil, err
	}
	restore, err := needsSnapshotRestore(fsm, snaps, logs, logger)
	if err != nil {
		return nil, err
	}
	rcfg.NoSnapshotRestoreOnStart = !restore

	newTrans := newTransport
	if cfg.ServerTLS != nil || cfg.ClientTLS != nil {
		newTrans = newTLSTransport
	}
	trans, addr, err := newTrans(cfg, hl)
	if err != nil {
		return nil, err
	}
	// A node without Raft state that does not bootstrap votes only once it
	// has caught up with a leader (votegate.go).
	existing, err := raft.HasExistingState(logs, logs, snaps)
	if err != nil {
		if c, ok := trans.(raft.WithClose); ok {
			_ = c.Close()
		}
		return nil, fmt.Errorf("cluster: check raft state: %w", err)
	}
	var gate *voteGate
	var running atomic.Pointer[raft.Raft]
	if !existing && !cfg.Bootstrap {
		gate = newVoteGate(trans, raft.ServerID(cfg.NodeID))
		gate.lastIndex = func() uint64 {
			if r := running.Load(); r != nil {
				return r.LastIndex()
			}
			return 0
		}
		gate.onOpen = func() { logger.Info("raft: caught up with the leader; this node votes from now on") }
		trans = gate
		logger.Info("raft: no state and not bootstrapping: refusing votes until caught up with a leader")
	}
	closeTrans := func() {
		if c, ok := trans.(raft.WithClose); ok {
			_ = c.Close()
		}
	}
	if cfg.Bootstrap {
		if err := bootstrap(cfg, rcfg, logs, snaps, trans, addr, logger); err != nil {
			closeTrans()
			return nil, err
		}
	}
	// The cache keeps the newest entries in memory, so replicating to a
	// follower that is just behind does not read them back from Pebble.
	cache, err := raft.NewLogCache(512, logs)
	if err != nil {
		closeTrans()
		return nil, fmt.Errorf("cluster: log cache: %w", err)
	}
	wrapped, applied := wrapFSM(fsm, snaps)
	r, err := raft.NewRaft(rcfg, wrapped, cache, logs, snaps, trans)
	if err != nil {
		closeTrans()
		return nil, fmt.Errorf("cluster: start raft: %w", err)
	}
	running.Store(r)

	c := &Cluster{
		cfg:           cfg,
		logger:        logger,
		raft:          r,
		logs:          logs,
		applied:       applied,
		addr:          addr,
		gate:          gate,
		stop:          make(chan struct{}),
		leaderChanged: make(chan struct{}),
	}
	c.metrics, err = newMetrics(reg, r, c.AppliedIndex, c.votesRefused)
	if err != nil {
		_ = r.Shutdown().Error() // also closes the transport
		return nil, err
	}
	c.watchLeader()
	logger.Info("raft started", "addr", addr, "transport", transportKind(cfg),
		"last_index", r.LastIndex(), "restore_snapshot_on_start", restore)
	return c, nil
}

// Fresh reports whether the node started without Raft state and without
// bootstrapping: a new node, or one that lost its disk (votegate.go).
func (c *Cluster) Fresh() bool { return c.gate != nil }

// Voting reports whether the node grants votes: always, unless it is fresh
// and has not caught up with a leader yet.
func (c *Cluster) Voting() bool { return c.gate == nil || c.gate.Open() }

func (c *Cluster) votesRefused() float64 {
	if c.gate == nil {
		return 0
	}
	return float64(c.gate.refused.Load())
}

func transportKind(cfg Config) string {
	if cfg.RaftListen == "" {
		return "inmem"
	}
	if cfg.ServerTLS != nil {
		return "tls"
	}
	return "tcp"
}

// watchLeader starts the goroutine that turns raft's leader observations
// into the leader-change counter and wakes up waiters.
func (c *Cluster) watchLeader() {
	c.obsCh = make(chan raft.Observation, 16)
	c.observer = raft.NewObserver(c.obsCh, false, func(o *raft.Observation) bool {
		_, ok := o.Data.(raft.LeaderObservation)
		return ok
	})
	c.raft.RegisterObserver(c.observer)
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		for {
			select {
			case <-c.stop:
				return
			case o := <-c.obsCh:
				lo, ok := o.Data.(raft.LeaderObservation)
				if !ok {
					continue
				}
				if lo.LeaderID != "" {
					c.metrics.leaderChanges.Inc()
				}
				c.logger.Info("raft leader changed", "leader_id", lo.LeaderID, "leader_addr", lo.LeaderAddr)
				c.notifyLeaderChange()
			}
		}
	}()
}

func (c *Cluster) notifyLeaderChange() {
	c.mu.Lock()
	close(c.leaderChanged)
	c.leaderChanged = make(chan struct{})
	c.mu.Unlock()
}

// leaderChange returns a channel closed at the next leader change.
func (c *Cluster) leaderChange() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.leaderChanged
}

func (c *Cluster) stopped() bool {
	select {
	case <-c.stop:
		return true
	default:
		return false
	}
}

// IsLeader reports whether this node is the leader now. Leadership can end
// right after; Barrier confirms it.
func (c *Cluster) IsLeader() bool { return c.raft.State() == raft.Leader }

// Leader returns the raft address and id of the leader as this node knows
// it, or two empty strings if it knows none.
func (c *Cluster) Leader() (addr, id string) {
	a, i := c.raft.LeaderWithID()
	return string(a), string(i)
}

// Addr returns the raft address this node advertises (with RaftListen
// "host:0", the port that was picked).
func (c *Cluster) Addr() string { return c.addr }

// AppliedIndex returns the index up to which this node's FSM has applied
// the log: every command entry at or below it is reflected in the FSM's
// state, as seen by a read that starts after this call. It is updated by the
// FSM goroutine right after FSM.Apply returns, so after Propose returns
// index i, AppliedIndex() >= i on that node.
//
// It counts the entries raft hands to the FSM (commands), not the no-op,
// barrier and configuration entries raft keeps to itself, so it can stay
// below CommitIndex for good when the log ends with such an entry. To make a
// follower's read current, wait for an index that is an AppliedIndex (or a
// Propose index) of the leader, never for the leader's CommitIndex.
func (c *Cluster) AppliedIndex() uint64 { return c.applied.applied.Load() }

// WaitApplied returns once AppliedIndex() >= index. It is bounded by ctx
// only; it returns an error wrapping ctx's error when ctx ends first, and
// ErrShutdown after Shutdown.
func (c *Cluster) WaitApplied(ctx context.Context, index uint64) error {
	if c.stopped() {
		return fmt.Errorf("wait applied: %w", ErrShutdown)
	}
	if err := c.applied.wait(ctx, index, c.stop); err != nil {
		return fmt.Errorf("wait applied: %w", err)
	}
	return nil
}

// CommitIndex returns the index of the last entry this node knows to be
// committed (raft's, any entry type).
func (c *Cluster) CommitIndex() uint64 { return c.raft.CommitIndex() }

// Stats returns raft's diagnostic values (state, term, indexes, peers...).
// The keys are raft's and may change with its version; it is for humans.
func (c *Cluster) Stats() map[string]string { return c.raft.Stats() }

// Shutdown stops the raft node and closes its transport; pending and later
// Propose, Barrier and WaitLeader calls return ErrShutdown. It does not
// transfer leadership first: a draining node calls TransferLeadership. It is
// idempotent; every call returns the result of the first. The Pebble
// database may be closed once it returns.
func (c *Cluster) Shutdown() error {
	c.shutdownOnce.Do(func() {
		close(c.stop)
		c.raft.DeregisterObserver(c.observer)
		if err := c.raft.Shutdown().Error(); err != nil {
			c.shutdownErr = fmt.Errorf("cluster: shutdown: %w", err)
		}
		c.wg.Wait()
		c.metrics.unregister()
		c.logger.Info("raft stopped", "last_index", c.raft.LastIndex(), "applied_index", c.AppliedIndex())
	})
	return c.shutdownErr
}
