package node

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/berth-registry/berth/api"
	"github.com/berth-registry/berth/meta"
)

// The audit log's node side: the API hands every event to auditLog.Record,
// which only appends to a slice; a loop proposes the waiting events as one
// meta.AppendAudit command every auditFlushInterval, or as soon as auditBatch
// are waiting, so the hot path never waits for Raft. A command that fails (no
// leader) is proposed again with the same events and ids: one that was
// committed after all is not stored twice (AppendAudit skips known ids). At
// most auditMaxPending events wait; beyond that the oldest are dropped and
// counted (berth_audit_events_dropped_total), so a cluster without a leader
// does not grow a node's memory without bound.
const (
	auditFlushInterval = 200 * time.Millisecond
	auditBatch         = 100
	auditMaxPending    = 10_000
)

// auditLog batches audit events into Raft commands. Record is safe for
// concurrent use; run and stop are called once each by the node.
type auditLog struct {
	node    string
	clock   func() time.Time
	propose func(ctx context.Context, c meta.Command) error
	keep    int
	maxAge  time.Duration
	log     *slog.Logger

	recorded, dropped, failures prometheus.Counter

	kick    chan struct{} // a full batch is waiting
	stopped chan struct{} // closed by stop: the loop ends
	done    chan struct{} // closed when the loop has ended

	mu      sync.Mutex // guards the fields below
	pending []meta.AuditEvent
	seq     uint64
}

var _ api.Auditor = (*auditLog)(nil)

func newAuditLog(cfg Config, clock func() time.Time, propose func(context.Context, meta.Command) error, logger *slog.Logger, reg prometheus.Registerer) (*auditLog, error) {
	a := &auditLog{
		node: cfg.NodeID, clock: clock, propose: propose, keep: cfg.AuditKeep, maxAge: cfg.AuditMaxAge, log: logger,
		recorded: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "berth_audit_events_recorded_total", Help: "Audit events recorded by this node.",
		}),
		dropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "berth_audit_events_dropped_total", Help: "Audit events dropped because too many waited for Raft.",
		}),
		failures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "berth_audit_append_failures_total", Help: "Audit batches whose Raft command failed (they are retried).",
		}),
		kick:    make(chan struct{}, 1),
		stopped: make(chan struct{}),
		done:    make(chan struct{}),
	}
	pendingGauge := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "berth_audit_events_pending", Help: "Audit events waiting to be appended through Raft.",
	}, func() float64 {
		a.mu.Lock()
		defer a.mu.Unlock()
		return float64(len(a.pending))
	})
	for _, c := range []prometheus.Collector{a.recorded, a.dropped, a.failures, pendingGauge} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return a, nil
}

// Record implements api.Auditor: it assigns the event its id and queues it.
// Missing fields that AppendAudit requires are filled in, so that one careless
// caller cannot get a whole batch refused.
func (a *auditLog) Record(ev meta.AuditEvent) {
	if ev.Node == "" {
		ev.Node = a.node
	}
	if ev.Time.UnixNano() <= 0 {
		ev.Time = a.clock().UTC()
	}
	if ev.Action == "" {
		ev.Action = "unknown"
	}
	if ev.Outcome != meta.AuditSuccess && ev.Outcome != meta.AuditFailure {
		ev.Outcome = meta.AuditSuccess
		if ev.Status >= 400 {
			ev.Outcome = meta.AuditFailure
		}
	}
	a.mu.Lock()
	a.seq++
	ev.ID = meta.AuditID(ev.Time, ev.Node, a.seq)
	if len(a.pending) >= auditMaxPending {
		a.pending = a.pending[1:]
		a.dropped.Inc()
	}
	a.pending = append(a.pending, ev)
	full := len(a.pending) >= auditBatch
	a.mu.Unlock()
	a.recorded.Inc()
	if full {
		select {
		case a.kick <- struct{}{}:
		default:
		}
	}
}

// run proposes the waiting events until stop is called.
func (a *auditLog) run(ctx context.Context) {
	defer close(a.done)
	t := time.NewTicker(auditFlushInterval)
	defer t.Stop()
	for {
		select {
		case <-a.stopped:
			return
		case <-ctx.Done():
			return
		case <-t.C:
		case <-a.kick:
		}
		for a.flush(ctx) {
		}
	}
}

// stop ends the loop and proposes what still waits, bounded by ctx (the
// node's shutdown). Events recorded afterwards stay unproposed.
func (a *auditLog) stop(ctx context.Context) {
	close(a.stopped)
	<-a.done
	for a.flush(ctx) {
	}
}

// flush proposes one batch of waiting events. It reports whether it did and
// more are waiting.
func (a *auditLog) flush(ctx context.Context) bool {
	a.mu.Lock()
	batch := append([]meta.AuditEvent(nil), a.pending[:min(len(a.pending), auditBatch)]...)
	a.mu.Unlock()
	if len(batch) == 0 || ctx.Err() != nil {
		return false
	}
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	err := a.propose(pctx, &meta.AppendAudit{Events: batch, Keep: a.keep, MaxAge: a.maxAge})
	cancel()
	if err != nil && !meta.IsDomainError(err) {
		a.failures.Inc()
		a.log.Warn("audit: append failed; retrying", "events", len(batch), "err", err)
		return false
	}
	if err != nil {
		// Refused as invalid: retrying would refuse it again.
		a.log.Error("audit: batch refused; dropping it", "events", len(batch), "err", err)
		a.dropped.Add(float64(len(batch)))
	}
	sent := make(map[string]bool, len(batch))
	for _, ev := range batch {
		sent[ev.ID] = true
	}
	a.mu.Lock()
	kept := a.pending[:0]
	for _, ev := range a.pending {
		if !sent[ev.ID] {
			kept = append(kept, ev)
		}
	}
	clear(a.pending[len(kept):])
	a.pending = kept
	more := len(a.pending) > 0
	a.mu.Unlock()
	return more
}

// recordAudit records an event of the node itself rather than of a request
// (a garbage collection started by its schedule, for instance).
func (n *Node) recordAudit(action, object, outcome, detail string) {
	if n.audit == nil {
		return
	}
	n.audit.Record(meta.AuditEvent{
		Time: n.clock().UTC(), Node: n.cfg.NodeID, User: "berth:" + n.cfg.NodeID,
		Action: action, Object: object, Outcome: outcome, Detail: detail,
	})
}
