package cluster

import (
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/memberlist"
	"github.com/prometheus/client_golang/prometheus"
)

// ErrGossipShutdown is returned by Gossip methods called after Shutdown.
var ErrGossipShutdown = errors.New("cluster: gossip shut down")

// GossipConfig configures a Gossip. Zero timing fields take memberlist's
// LAN defaults (memberlist.DefaultLANConfig), noted on each field; tests
// shorten them.
type GossipConfig struct {
	// NodeID names this node in gossip. Required; it must equal the raft
	// server id (Config.NodeID), which is how the reconciler matches the two.
	NodeID string
	// Zone is this node's zone label ("" is the default zone).
	Zone string
	// BindAddr is the "host:port" gossip listens on, TCP and UDP on the same
	// port. An empty host binds every interface; port 0 picks a free port.
	// Required.
	BindAddr string
	// Advertise is the "host:port" other nodes use to reach this node's
	// gossip, for NAT and containers. A host name is resolved once, at
	// NewGossip. Port 0 or no port means the bound port. Empty means the
	// bound address (or, when bound to every interface, a private IP of
	// this host, as memberlist picks it).
	Advertise string
	// Key is the cluster key memberlist encrypts and authenticates every
	// gossip message with (AES-GCM; 16, 24 or 32 bytes). A node with another
	// key, or none, cannot join or talk to the cluster. Nil means
	// unencrypted gossip, for tests and development only: NewGossip logs a
	// warning.
	Key []byte
	// APIAddr is this node's HTTP address, carried in its gossip metadata.
	APIAddr string
	// RaftAddr is this node's raft address (Cluster.Addr), carried in its
	// gossip metadata so the leader can add it to the raft configuration.
	RaftAddr string

	// ProbeInterval is how often this node probes a random member.
	// Default 1s.
	ProbeInterval time.Duration
	// ProbeTimeout is how long a probe waits for an ack before it tries
	// indirect probes; about the 99th percentile RTT. Default 500ms.
	ProbeTimeout time.Duration
	// GossipInterval is how often queued messages are gossiped.
	// Default 200ms.
	GossipInterval time.Duration
	// SuspicionMult scales how long a member stays suspect before it is
	// declared dead: SuspicionMult * max(1, log10(members)) * ProbeInterval.
	// Default 4.
	SuspicionMult int
	// PushPullInterval is how often a full state sync with a random member
	// happens. Default 30s.
	PushPullInterval time.Duration
	// UpdateTimeout bounds how long SetDraining waits for its update to be
	// gossiped. Default 5s.
	UpdateTimeout time.Duration
}

// DefaultGossipUpdateTimeout is GossipConfig.UpdateTimeout's default.
const DefaultGossipUpdateTimeout = 5 * time.Second

const (
	// gossipLabel is prepended to every gossip packet and stream (and is
	// authenticated data when encryption is on), so a Berth node never
	// merges with another memberlist cluster (Consul, Nomad...) that happens
	// to be reachable on the same network.
	gossipLabel = "berth"
	// deadNodeReclaim is how long a dead member's name stays bound to its
	// old address. memberlist's default (never, until the dead member is
	// forgotten) would reject a node restarted on a new address (a new pod
	// IP) for GossipToTheDeadTime; a second is enough to keep two live
	// processes with the same id from flapping.
	deadNodeReclaim = time.Second
	// forgetAfter is how long a dead or left member is remembered (for
	// Members and the reconciler's "dead for longer than"). It is much
	// longer than any sensible DeadNodeTimeout.
	forgetAfter = 72 * time.Hour
	// rttWeight is the weight of a new sample in the RTT moving average.
	rttWeight = 0.25
)

// MemberState is the state of a member as this node sees it.
type MemberState int

// Member states.
const (
	// Alive: the member answers probes.
	Alive MemberState = iota
	// Suspect: memberlist still lists the member, but this node has had no
	// ack from it for longer than a probe round should take. memberlist
	// v0.7 does not expose its own suspect state, so this is an estimate
	// from this node's probes (see Gossip.Members); it turns Dead when
	// memberlist declares the member failed, or Alive on the next ack.
	Suspect
	// Dead: memberlist declared the member failed.
	Dead
	// Left: the member announced it was leaving (Gossip.Leave).
	Left
)

// String returns "alive", "suspect", "dead" or "left".
func (s MemberState) String() string {
	switch s {
	case Alive:
		return "alive"
	case Suspect:
		return "suspect"
	case Dead:
		return "dead"
	case Left:
		return "left"
	default:
		return "unknown(" + strconv.Itoa(int(s)) + ")"
	}
}

// Member is one node of the cluster as this node's gossip sees it.
type Member struct {
	ID         string
	Zone       string
	APIAddr    string
	RaftAddr   string
	GossipAddr string // host:port of its gossip
	State      MemberState
	// RTT is a moving average of this node's probe round trips to the
	// member; 0 if none has completed yet (and always 0 for this node).
	RTT time.Duration
	// Draining is set by the member itself (Gossip.SetDraining).
	Draining bool
	// Since is when State began, as this node observed it.
	Since time.Time
}

// nodeMeta is the metadata every node gossips about itself (memberlist's
// Node.Meta, at most memberlist.MetaMaxSize = 512 bytes). It is JSON with
// short names: a newer node may add fields, which older nodes ignore; V is
// bumped only for a change old nodes would misread.
type nodeMeta struct {
	V        int    `json:"v"`
	Zone     string `json:"z,omitempty"`
	API      string `json:"a,omitempty"`
	Raft     string `json:"r,omitempty"`
	Draining bool   `json:"d,omitempty"`
	// Leaving is set just before Gossip.Leave sends memberlist's leave
	// message. memberlist tells the event delegate that a member is gone
	// but not whether it failed or left, so this is how the others know.
	Leaving bool `json:"l,omitempty"`
}

const nodeMetaVersion = 1

// member is what Gossip keeps per member.
type member struct {
	Member
	heard   time.Time // last probe ack, or when it (re)joined
	leaving bool      // its metadata says Leaving
}

// Gossip is this node's membership in the cluster's gossip
// (hashicorp/memberlist). Its methods are safe for concurrent use.
// NewGossip starts it; Shutdown stops it.
type Gossip struct {
	cfg     GossipConfig
	logger  *slog.Logger
	ml      *memberlist.Memberlist
	addr    string // set once in NewGossip, under mu
	metrics *gossipMetrics
	probe   time.Duration // memberlist's ProbeInterval
	ptime   time.Duration // memberlist's ProbeTimeout

	life sync.Mutex // serializes SetDraining, Leave and Shutdown

	mu       sync.Mutex // guards the fields below (and memberlist's callbacks)
	members  map[string]*member
	draining bool
	leaving  bool
	left     bool
	shutdown bool
	subs     []chan struct{}
}

// NewGossip starts gossip on cfg.BindAddr. It does not contact anyone: see
// Join. The returned Gossip knows only itself until then.
//
// logger may be nil (nothing is logged); reg may be nil (no metrics). The
// berth_gossip_* collectors are unregistered by Shutdown.
func NewGossip(cfg GossipConfig, logger *slog.Logger, reg prometheus.Registerer) (*Gossip, error) {
	if cfg.NodeID == "" {
		return nil, fmt.Errorf("%w: gossip NodeID is empty", ErrInvalidConfig)
	}
	switch len(cfg.Key) {
	case 0, 16, 24, 32:
	default:
		return nil, fmt.Errorf("%w: gossip key is %d bytes, want 16, 24 or 32", ErrInvalidConfig, len(cfg.Key))
	}
	if cfg.UpdateTimeout <= 0 {
		cfg.UpdateTimeout = DefaultGossipUpdateTimeout
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	logger = logger.With("node", cfg.NodeID)

	mc := memberlist.DefaultLANConfig()
	mc.Name = cfg.NodeID
	host, port, err := splitHostPort(cfg.BindAddr)
	if err != nil {
		return nil, fmt.Errorf("%w: gossip bind address: %w", ErrInvalidConfig, err)
	}
	if host == "" {
		host = "0.0.0.0"
	}
	mc.BindAddr, mc.BindPort, mc.AdvertisePort = host, port, port
	if cfg.Advertise != "" {
		ip, aport, err := resolveAdvertise(cfg.Advertise)
		if err != nil {
			return nil, fmt.Errorf("%w: gossip advertise address: %w", ErrInvalidConfig, err)
		}
		mc.AdvertiseAddr = ip
		if aport != 0 {
			mc.AdvertisePort = aport
		}
	}
	setDur := func(dst *time.Duration, v time.Duration) {
		if v > 0 {
			*dst = v
		}
	}
	setDur(&mc.ProbeInterval, cfg.ProbeInterval)
	setDur(&mc.ProbeTimeout, cfg.ProbeTimeout)
	setDur(&mc.GossipInterval, cfg.GossipInterval)
	setDur(&mc.PushPullInterval, cfg.PushPullInterval)
	if cfg.SuspicionMult > 0 {
		mc.SuspicionMult = cfg.SuspicionMult
	}
	mc.Label = gossipLabel
	mc.DeadNodeReclaimTime = deadNodeReclaim
	if len(cfg.Key) > 0 {
		mc.SecretKey = append([]byte(nil), cfg.Key...)
	} else {
		logger.Warn("gossip is not encrypted: set a cluster key outside tests and development")
	}
	// memberlist writes "[LEVEL] memberlist: ..." lines to a *log.Logger;
	// the adapter maps the tag to the slog level (slog.NewLogLogger would
	// log every debug line at one fixed level).
	mc.Logger = log.New(newHCLogger(logger, "memberlist").StandardWriter(
		&hclog.StandardLoggerOptions{InferLevels: true}), "", 0)

	g := &Gossip{
		cfg:     cfg,
		logger:  logger,
		probe:   mc.ProbeInterval,
		ptime:   mc.ProbeTimeout,
		members: make(map[string]*member),
	}
	// The longest metadata this node can send must fit, or memberlist
	// panics in UpdateNode.
	if full, err := g.encodeMeta(true, true); err != nil || len(full) > memberlist.MetaMaxSize {
		return nil, fmt.Errorf("%w: gossip metadata (zone, API and raft addresses) is %d bytes, above memberlist's %d",
			ErrInvalidConfig, len(full), memberlist.MetaMaxSize)
	}
	d := &gossipDelegate{g: g}
	mc.Delegate, mc.Events, mc.Ping, mc.Conflict = d, d, d, d

	g.metrics, err = newGossipMetrics(reg, g)
	if err != nil {
		return nil, err
	}
	ml, err := memberlist.Create(mc)
	if err != nil {
		g.metrics.unregister()
		return nil, fmt.Errorf("cluster: start gossip on %s: %w", cfg.BindAddr, err)
	}
	g.ml = ml
	self := ml.LocalNode()
	g.mu.Lock() // a metrics scrape may already read it
	g.addr = net.JoinHostPort(self.Addr.String(), strconv.Itoa(int(self.Port)))
	g.mu.Unlock()
	logger.Info("gossip started", "addr", g.addr, "bind", net.JoinHostPort(mc.BindAddr, strconv.Itoa(mc.BindPort)),
		"zone", cfg.Zone, "encrypted", len(cfg.Key) > 0)
	return g, nil
}

func splitHostPort(addr string) (string, int, error) {
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.Atoi(p)
	if err != nil || port < 0 || port > 65535 {
		return "", 0, fmt.Errorf("bad port in %q", addr)
	}
	return host, port, nil
}

// resolveAdvertise returns the IP of an advertise address (memberlist takes
// only an IP) and its port, 0 if it has none.
func resolveAdvertise(addr string) (string, int, error) {
	host, port := addr, 0
	if strings.Contains(addr, ":") {
		h, p, err := splitHostPort(addr)
		if err != nil {
			return "", 0, err
		}
		host, port = h, p
	}
	if ip := net.ParseIP(host); ip != nil {
		return ip.String(), port, nil
	}
	ips, err := net.LookupIP(host)
	if err != nil {
		return "", 0, err
	}
	if len(ips) == 0 {
		return "", 0, fmt.Errorf("%s has no address", host)
	}
	for _, ip := range ips {
		if ip.To4() != nil {
			return ip.String(), port, nil
		}
	}
	return ips[0].String(), port, nil
}

// Addr returns the gossip address other nodes reach this node at (the
// advertised host and the bound port): what they pass to Join.
func (g *Gossip) Addr() string { return g.addr }

// Join contacts the given seeds ("host:port", or "host" for this node's own
// gossip port) and syncs state with each one that answers. It returns how
// many answered, and an error only if none did; it can be retried (a seed
// may be this node itself, or not yet started).
func (g *Gossip) Join(seeds []string) (int, error) {
	// Not under g.life: a join can wait for unreachable seeds for
	// memberlist's TCPTimeout (10s), and Shutdown must not wait for it.
	if g.isShutdown() {
		return 0, ErrGossipShutdown
	}
	n, err := g.ml.Join(seeds)
	if err != nil {
		return n, fmt.Errorf("cluster: gossip join %s: %w", strings.Join(seeds, ","), err)
	}
	g.logger.Info("gossip joined", "seeds", seeds, "contacted", n)
	return n, nil
}

// Members returns every member this node knows, itself included, sorted by
// ID: the alive ones and those dead or left in the last 72 hours (with
// Since, for "dead for longer than").
//
// A member memberlist still counts as alive is reported Suspect when this
// node's own probes have had no ack from it for longer than two probe
// rounds (each member is probed once per round, so a healthy member is
// acked at least that often).
func (g *Gossip) Members() []Member {
	now := time.Now()
	g.mu.Lock()
	defer g.mu.Unlock()
	out := make([]Member, 0, len(g.members)+1)
	out = append(out, g.selfLocked())
	suspectAfter := g.suspectAfterLocked()
	for id, m := range g.members {
		if id == g.cfg.NodeID {
			continue
		}
		if m.State != Alive && now.Sub(m.Since) > forgetAfter {
			delete(g.members, id)
			continue
		}
		out = append(out, g.viewLocked(m, now, suspectAfter))
	}
	slices.SortFunc(out, func(a, b Member) int { return strings.Compare(a.ID, b.ID) })
	return out
}

// Member returns the member with the given id, and false if this node knows
// no such member.
func (g *Gossip) Member(id string) (Member, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if id == g.cfg.NodeID {
		return g.selfLocked(), true
	}
	m, ok := g.members[id]
	if !ok {
		return Member{}, false
	}
	return g.viewLocked(m, time.Now(), g.suspectAfterLocked()), true
}

// Self returns this node as a member: Alive, or Left after Leave.
func (g *Gossip) Self() Member {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.selfLocked()
}

func (g *Gossip) selfLocked() Member {
	m := Member{
		ID:         g.cfg.NodeID,
		Zone:       g.cfg.Zone,
		APIAddr:    g.cfg.APIAddr,
		RaftAddr:   g.cfg.RaftAddr,
		GossipAddr: g.addr,
		Draining:   g.draining,
	}
	if s, ok := g.members[g.cfg.NodeID]; ok {
		m.Since = s.Since
	}
	if g.left {
		m.State = Left
	}
	return m
}

// suspectAfterLocked is how long without an ack makes an alive member
// Suspect: memberlist probes the members one after the other in a shuffled
// order, so the gap between two probes of one member is under two rounds.
func (g *Gossip) suspectAfterLocked() time.Duration {
	others := 0
	for id, m := range g.members {
		if id != g.cfg.NodeID && m.State == Alive {
			others++
		}
	}
	return time.Duration(2*max(others, 1)+1)*g.probe + g.ptime
}

func (g *Gossip) viewLocked(m *member, now time.Time, suspectAfter time.Duration) Member {
	v := m.Member
	if v.State == Alive && now.Sub(m.heard) > suspectAfter {
		v.State = Suspect
		v.Since = m.heard.Add(suspectAfter)
	}
	return v
}

// SetDraining sets this node's Draining flag and gossips it. The flag is set
// locally even when the returned error says the update was not gossiped in
// time (the periodic state sync carries it later).
func (g *Gossip) SetDraining(draining bool) error {
	g.life.Lock()
	defer g.life.Unlock()
	if g.isShutdown() {
		return ErrGossipShutdown
	}
	g.mu.Lock()
	changed := g.draining != draining
	g.draining = draining
	g.mu.Unlock()
	if !changed {
		return nil
	}
	g.notify()
	if err := g.ml.UpdateNode(g.cfg.UpdateTimeout); err != nil {
		return fmt.Errorf("cluster: gossip draining=%v: %w", draining, err)
	}
	g.logger.Info("gossip draining", "draining", draining)
	return nil
}

// Leave announces that this node leaves the cluster, so the others see it
// as Left (not Dead) and the leader removes it from raft at once. It waits
// up to timeout for each of its two messages (the Leaving flag, then
// memberlist's leave) to be gossiped. Gossip keeps running until Shutdown;
// a left node cannot rejoin without a new Gossip.
func (g *Gossip) Leave(timeout time.Duration) error {
	g.life.Lock()
	defer g.life.Unlock()
	if g.isShutdown() {
		return ErrGossipShutdown
	}
	g.mu.Lock()
	already := g.left
	g.leaving = true
	g.mu.Unlock()
	if already {
		return nil
	}
	var errs []error
	// The Leaving flag must be gossiped before the leave message: the leave
	// message would replace it in memberlist's queue.
	if err := g.ml.UpdateNode(timeout); err != nil {
		errs = append(errs, fmt.Errorf("announce leaving: %w", err))
	}
	if err := g.ml.Leave(timeout); err != nil {
		errs = append(errs, fmt.Errorf("leave: %w", err))
	}
	g.mu.Lock()
	g.left = true
	if s, ok := g.members[g.cfg.NodeID]; ok {
		s.State, s.Since = Left, time.Now()
	}
	g.mu.Unlock()
	g.notify()
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("cluster: gossip %w", err)
	}
	g.logger.Info("gossip left")
	return nil
}

// Changes returns a new channel that receives a value after any change of
// membership: a member joined, failed, left or changed its metadata
// (addresses, draining), including this node. Signals are coalesced (a
// consumer that is behind sees one), so on each receive read Members
// again. Each consumer calls Changes once; the channel is closed by
// Shutdown (at once if Shutdown already ran).
func (g *Gossip) Changes() <-chan struct{} {
	ch := make(chan struct{}, 1)
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.shutdown {
		close(ch)
		return ch
	}
	g.subs = append(g.subs, ch)
	return ch
}

func (g *Gossip) notify() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.notifyLocked()
}

func (g *Gossip) notifyLocked() {
	for _, ch := range g.subs {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

func (g *Gossip) isShutdown() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.shutdown
}

// Shutdown stops gossip at once, without Leave: the others see this node
// fail (Dead). It closes the Changes channels and unregisters the metrics.
// It is idempotent; Members and Self keep working on the last state.
func (g *Gossip) Shutdown() error {
	g.life.Lock()
	defer g.life.Unlock()
	g.mu.Lock()
	if g.shutdown {
		g.mu.Unlock()
		return nil
	}
	g.shutdown = true
	subs := g.subs
	g.subs = nil
	g.mu.Unlock()
	err := g.ml.Shutdown()
	for _, ch := range subs {
		close(ch)
	}
	g.metrics.unregister()
	g.logger.Info("gossip stopped")
	if err != nil {
		return fmt.Errorf("cluster: gossip shutdown: %w", err)
	}
	return nil
}

func (g *Gossip) encodeMeta(draining, leaving bool) ([]byte, error) {
	return json.Marshal(nodeMeta{
		V:        nodeMetaVersion,
		Zone:     g.cfg.Zone,
		API:      g.cfg.APIAddr,
		Raft:     g.cfg.RaftAddr,
		Draining: draining,
		Leaving:  leaving,
	})
}

// memberFromNode builds a Member from memberlist's view of a node. A node
// whose metadata cannot be decoded keeps empty addresses: it is never added
// to raft.
func (g *Gossip) memberFromNode(n *memberlist.Node) (Member, bool) {
	m := Member{ID: n.Name, GossipAddr: n.Address()}
	var meta nodeMeta
	if err := json.Unmarshal(n.Meta, &meta); err != nil || meta.V < 1 {
		g.logger.Warn("gossip member with unreadable metadata", "member", n.Name, "addr", m.GossipAddr, "err", err)
		return m, false
	}
	m.Zone, m.APIAddr, m.RaftAddr, m.Draining = meta.Zone, meta.API, meta.Raft, meta.Draining
	return m, meta.Leaving
}
