package node

import "github.com/prometheus/client_golang/prometheus"

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
		readBarriers: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "berth_cluster_read_barriers_total", Help: "Read-index rounds (each serves every read that queued for it).",
		}),
	}
	for _, c := range []prometheus.Collector{m.replicateSeconds, m.replicaBytes, m.replicaReceived, m.fetchedBlobs, m.repairs, m.backlog, m.forwarded, m.readBarriers} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}
