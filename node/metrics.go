package node

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/berth-registry/berth/meta"
)

// nodeMetrics are the replication subsystem's collectors.
type nodeMetrics struct {
	replicateSeconds prometheus.Histogram
	replicaBytes     prometheus.Counter
	replicaReceived  prometheus.Counter
	fetchedBlobs     prometheus.Counter
	repairs          prometheus.Counter
	backlog          prometheus.Gauge
	forwarded        prometheus.Counter
	readBarriers     prometheus.Counter
	readNudges       prometheus.Counter
	replicationLag   prometheus.Histogram
}

func newNodeMetrics(reg prometheus.Registerer) (*nodeMetrics, error) {
	m := &nodeMetrics{
		replicateSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "berth_replication_push_seconds",
			Help:    "Time to copy a new blob to min_replicas nodes before it is acknowledged.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 16),
		}),
		replicaBytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "berth_replication_copied_bytes_total", Help: "Blob bytes copied between nodes (pushed to or fetched from peers).",
		}),
		replicaReceived: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "berth_replication_received_total", Help: "Blob replicas received from peers.",
		}),
		fetchedBlobs: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "berth_replication_fetches_total", Help: "Blobs fetched from a peer because this node lacked them.",
		}),
		repairs: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "berth_replication_repairs_total", Help: "Blobs the replicator copied to this node to restore the replica count.",
		}),
		backlog: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "berth_replication_backlog", Help: "Blobs this node should hold but does not yet.",
		}),
		forwarded: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "berth_cluster_forwarded_proposals_total", Help: "Metadata commands forwarded to the leader.",
		}),
		replicationLag: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "berth_replication_lag_seconds",
			Help:    "Time from a blob being recorded to the replicator copying it onto this node.",
			Buckets: prometheus.ExponentialBuckets(0.01, 2, 16),
		}),
		readBarriers: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "berth_cluster_read_barriers_total", Help: "Read-index rounds (each serves every read that queued for it).",
		}),
		readNudges: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "berth_cluster_read_nudges_total",
			Help: "Reads on this follower that asked the leader for a no-op entry to learn that the entries they wait for are committed (after a quiet spell).",
		}),
	}
	for _, c := range []prometheus.Collector{m.replicateSeconds, m.replicaBytes, m.replicaReceived, m.fetchedBlobs, m.repairs, m.backlog, m.forwarded, m.readBarriers, m.readNudges, m.replicationLag} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// workspaceUsage exports berth_workspace_stored_bytes{workspace}: the bytes of
// the distinct blobs linked into each workspace, from the metadata (the same on
// every node). Workspaces are created by admins, so the label is bounded by
// them; the figure is recomputed at most once a minute.
type workspaceUsage struct {
	n    *Node
	desc *prometheus.Desc

	mu   sync.Mutex // guards the fields below
	at   time.Time
	last map[string]int64
}

func newWorkspaceUsage(n *Node) *workspaceUsage {
	return &workspaceUsage{n: n, desc: prometheus.NewDesc("berth_workspace_stored_bytes",
		"Bytes of the distinct blobs linked into a workspace's repositories.", []string{"workspace"}, nil)}
}

func (w *workspaceUsage) Describe(ch chan<- *prometheus.Desc) { ch <- w.desc }

func (w *workspaceUsage) Collect(ch chan<- prometheus.Metric) {
	w.mu.Lock()
	if w.last == nil || time.Since(w.at) > time.Minute {
		if usage, err := meta.WorkspaceUsage(w.n.fsm.Reader()); err == nil {
			w.last, w.at = usage, time.Now()
		}
	}
	usage := w.last
	w.mu.Unlock()
	for ws, b := range usage {
		ch <- prometheus.MustNewConstMetric(w.desc, prometheus.GaugeValue, float64(b), ws)
	}
}
