package blobstore

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the store's collectors. They always exist; they are registered only
// when Options.Registerer is set, so code never checks for nil.
type metrics struct {
	writtenBytes   prometheus.Counter
	committed      prometheus.Counter
	commitDuration prometheus.Histogram
	uploadsOpen    prometheus.Gauge
	uploadsExpired prometheus.Counter
	rehashBytes    prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		writtenBytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "berth_blobstore_written_bytes_total",
			Help: "Bytes appended to upload sessions.",
		}),
		committed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "berth_blobstore_blobs_committed_total",
			Help: "Uploads committed as blobs (including ones whose blob was already stored).",
		}),
		commitDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "berth_blobstore_commit_duration_seconds",
			Help:    "Time to verify, fsync and rename an upload into place.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16), // 0.5ms .. ~16s
		}),
		uploadsOpen: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "berth_blobstore_uploads_open",
			Help: "Upload sessions on disk (one-shot puts not included).",
		}),
		uploadsExpired: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "berth_blobstore_uploads_expired_total",
			Help: "Upload sessions removed after being idle longer than the upload TTL.",
		}),
		rehashBytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "berth_blobstore_rehash_bytes_total",
			Help: "Bytes read back to verify a sha512 digest of a large session that did not declare sha512.",
		}),
	}
	if reg == nil {
		return m, nil
	}
	all := []prometheus.Collector{m.writtenBytes, m.committed, m.commitDuration, m.uploadsOpen, m.uploadsExpired, m.rehashBytes}
	for i, c := range all {
		if err := reg.Register(c); err != nil {
			for _, done := range all[:i] {
				reg.Unregister(done)
			}
			return nil, fmt.Errorf("register metrics: %w", err)
		}
	}
	return m, nil
}
