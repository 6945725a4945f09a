package cluster

import (
	"fmt"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/prometheus/client_golang/prometheus"
)

// gossipDelegate receives memberlist's callbacks. memberlist calls the event
// methods while it holds its own node lock: they only update Gossip's map
// and never call back into memberlist.
type gossipDelegate struct{ g *Gossip }

var (
	_ memberlist.Delegate         = (*gossipDelegate)(nil)
	_ memberlist.EventDelegate    = (*gossipDelegate)(nil)
	_ memberlist.PingDelegate     = (*gossipDelegate)(nil)
	_ memberlist.ConflictDelegate = (*gossipDelegate)(nil)
)

// NodeMeta implements memberlist.Delegate.
func (d *gossipDelegate) NodeMeta(limit int) []byte {
	g := d.g
	g.mu.Lock()
	draining, leaving := g.draining, g.leaving
	g.mu.Unlock()
	b, err := g.encodeMeta(draining, leaving)
	if err != nil || len(b) > limit { // checked by NewGossip; never happens
		g.logger.Error("gossip metadata too long", "bytes", len(b), "limit", limit, "err", err)
		return nil
	}
	return b
}

// NotifyMsg, GetBroadcasts, LocalState and MergeRemoteState implement
// memberlist.Delegate; Berth sends no user messages over gossip.
func (d *gossipDelegate) NotifyMsg([]byte)                {}
func (d *gossipDelegate) GetBroadcasts(int, int) [][]byte { return nil }
func (d *gossipDelegate) LocalState(bool) []byte          { return nil }
func (d *gossipDelegate) MergeRemoteState([]byte, bool)   {}

// NotifyJoin implements memberlist.EventDelegate: a new member, or one that
// was dead or left and is back.
func (d *gossipDelegate) NotifyJoin(n *memberlist.Node) {
	g := d.g
	m, _ := g.memberFromNode(n)
	now := time.Now()
	m.State, m.Since = Alive, now
	g.mu.Lock()
	if old, ok := g.members[n.Name]; ok {
		m.RTT = old.RTT
	}
	g.members[n.Name] = &member{Member: m, heard: now}
	g.notifyLocked()
	g.mu.Unlock()
	if n.Name != g.cfg.NodeID {
		g.logger.Info("gossip member joined", "member", m.ID, "zone", m.Zone, "addr", m.GossipAddr, "raft_addr", m.RaftAddr)
	}
}

// NotifyLeave implements memberlist.EventDelegate: a member failed or left.
func (d *gossipDelegate) NotifyLeave(n *memberlist.Node) {
	g := d.g
	m, leaving := g.memberFromNode(n)
	m.State, m.Since = Dead, time.Now()
	g.mu.Lock()
	if old, ok := g.members[n.Name]; ok {
		m.RTT = old.RTT
		// The Leaving flag may have arrived in an update before the leave.
		leaving = leaving || old.leaving
	}
	if leaving {
		m.State = Left
	}
	g.members[n.Name] = &member{Member: m, heard: m.Since}
	g.notifyLocked()
	g.mu.Unlock()
	g.logger.Info("gossip member gone", "member", m.ID, "state", m.State, "addr", m.GossipAddr)
}

// NotifyUpdate implements memberlist.EventDelegate: a member's metadata
// changed.
func (d *gossipDelegate) NotifyUpdate(n *memberlist.Node) {
	g := d.g
	m, leaving := g.memberFromNode(n)
	g.mu.Lock()
	old, ok := g.members[n.Name]
	if !ok {
		old = &member{Member: Member{State: Alive, Since: time.Now()}, heard: time.Now()}
		g.members[n.Name] = old
	}
	old.Zone, old.APIAddr, old.RaftAddr, old.GossipAddr, old.Draining = m.Zone, m.APIAddr, m.RaftAddr, m.GossipAddr, m.Draining
	old.leaving = leaving
	g.notifyLocked()
	g.mu.Unlock()
	g.logger.Info("gossip member updated", "member", m.ID, "draining", m.Draining, "leaving", leaving, "raft_addr", m.RaftAddr)
}

// NotifyPingComplete implements memberlist.PingDelegate: one of this node's
// probes was acked.
func (d *gossipDelegate) NotifyPingComplete(n *memberlist.Node, rtt time.Duration, _ []byte) {
	g := d.g
	g.metrics.rtt.Observe(rtt.Seconds())
	g.mu.Lock()
	defer g.mu.Unlock()
	m, ok := g.members[n.Name]
	if !ok {
		return
	}
	m.heard = time.Now()
	if m.RTT == 0 {
		m.RTT = rtt
	} else {
		m.RTT += time.Duration(rttWeight * float64(rtt-m.RTT))
	}
}

// AckPayload implements memberlist.PingDelegate.
func (d *gossipDelegate) AckPayload() []byte { return nil }

// NotifyConflict implements memberlist.ConflictDelegate: two live nodes
// claim the same id. memberlist keeps the first; this is a configuration
// error worth an error line.
func (d *gossipDelegate) NotifyConflict(existing, other *memberlist.Node) {
	d.g.logger.Error("two gossip members claim the same node id", "member", existing.Name,
		"addr", existing.Address(), "other_addr", other.Address())
}

// gossipMetrics are the berth_gossip_* collectors of one Gossip, registered
// on the Registerer given to NewGossip (none when nil) and unregistered by
// Shutdown. No label names a node: the member count is by state only.
type gossipMetrics struct {
	reg        prometheus.Registerer
	collectors []prometheus.Collector
	rtt        prometheus.Histogram
}

func newGossipMetrics(reg prometheus.Registerer, g *Gossip) (*gossipMetrics, error) {
	m := &gossipMetrics{
		reg: reg,
		rtt: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "berth_gossip_rtt_seconds",
			Help:    "Round-trip time of this node's successful gossip probes to other members.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16), // 0.1ms .. ~3.3s
		}),
	}
	members := &membersCollector{g: g, desc: prometheus.NewDesc("berth_gossip_members",
		"Cluster members as this node's gossip sees them (itself included), by state.", []string{"state"}, nil)}
	m.collectors = []prometheus.Collector{m.rtt, members}
	if reg == nil {
		return m, nil
	}
	for i, c := range m.collectors {
		if err := reg.Register(c); err != nil {
			for _, done := range m.collectors[:i] {
				reg.Unregister(done)
			}
			return nil, fmt.Errorf("cluster: register gossip metrics: %w", err)
		}
	}
	return m, nil
}

func (m *gossipMetrics) unregister() {
	if m.reg == nil {
		return
	}
	for _, c := range m.collectors {
		m.reg.Unregister(c)
	}
}

// membersCollector counts the members by state at scrape time.
type membersCollector struct {
	g    *Gossip
	desc *prometheus.Desc
}

func (c *membersCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *membersCollector) Collect(ch chan<- prometheus.Metric) {
	var counts [Left + 1]int
	for _, m := range c.g.Members() {
		if m.State >= Alive && m.State <= Left {
			counts[m.State]++
		}
	}
	for s, n := range counts {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(n), MemberState(s).String())
	}
}
