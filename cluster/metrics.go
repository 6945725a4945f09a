package cluster

import (
	"fmt"
	"time"

	"github.com/hashicorp/raft"
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the berth_raft_* collectors of one Cluster. The gauges read
// the raft API at scrape time; they are registered on the Registerer given to
// New (none when it is nil) and unregistered by Shutdown, so a node can be
// restarted in the same process on the same registry.
type metrics struct {
	reg        prometheus.Registerer
	collectors []prometheus.Collector

	applySeconds  prometheus.Histogram
	leaderChanges prometheus.Counter
}

func newMetrics(reg prometheus.Registerer, r *raft.Raft, applied func() uint64, votesRefused func() float64) (*metrics, error) {
	gauge := func(name, help string, f func() float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, f)
	}
	m := &metrics{
		reg: reg,
		applySeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "berth_raft_apply_seconds",
			Help:    "Time from proposing a command on the leader to its being committed and applied locally, for successful proposals.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16), // 0.5ms .. ~16s
		}),
		leaderChanges: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "berth_raft_leader_changes_total",
			Help: "Times this node observed a new raft leader being established (itself included).",
		}),
	}
	m.collectors = []prometheus.Collector{
		m.applySeconds,
		m.leaderChanges,
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "berth_raft_votes_refused_total",
			Help: "Vote and pre-vote requests this node refused because it started without Raft state and has not caught up with a leader yet."}, votesRefused),
		gauge("berth_raft_state", "Raft state of this node: 0 follower, 1 candidate, 2 leader, 3 shutdown.",
			func() float64 { return float64(r.State()) }),
		gauge("berth_raft_term", "Current raft term.",
			func() float64 { return float64(r.CurrentTerm()) }),
		gauge("berth_raft_commit_index", "Index of the last raft entry known to be committed.",
			func() float64 { return float64(r.CommitIndex()) }),
		gauge("berth_raft_applied_index", "Index up to which the FSM on this node has applied the raft log (command entries; see Cluster.AppliedIndex).",
			func() float64 { return float64(applied()) }),
		gauge("berth_raft_last_log_index", "Index of the last entry in this node's raft log.",
			func() float64 { return float64(r.LastIndex()) }),
		gauge("berth_raft_last_contact_seconds", "Seconds since this follower last heard from the leader (0 on the leader; every follower exports its own).",
			func() float64 {
				if r.State() == raft.Leader {
					return 0
				}
				if t := r.LastContact(); !t.IsZero() {
					return time.Since(t).Seconds()
				}
				return -1
			}),
	}
	if reg == nil {
		return m, nil
	}
	for i, c := range m.collectors {
		if err := reg.Register(c); err != nil {
			for _, done := range m.collectors[:i] {
				reg.Unregister(done)
			}
			return nil, fmt.Errorf("cluster: register metrics: %w", err)
		}
	}
	return m, nil
}

// unregister removes the collectors from the registerer.
func (m *metrics) unregister() {
	if m.reg == nil {
		return
	}
	for _, c := range m.collectors {
		m.reg.Unregister(c)
	}
}
