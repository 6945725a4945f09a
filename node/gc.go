package node

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/berth-registry/berth/api"
	"github.com/berth-registry/berth/blobstore"
	"github.com/berth-registry/berth/cluster"
	"github.com/berth-registry/berth/meta"
)

// Garbage collection, the node's part (the model and the mark are meta's,
// meta/gc.go).
//
// The leader's coordinator (gcLoop on every node; only the leader acts) runs
// the requested run: it claims it (GCBegin), tells every live node the run
// began, marks on a Pebble snapshot and stages the plan through Raft
// (GCPlan), all while writes go on, then pauses writes:
// it closes its in-memory write gate and commits GCPause, which every node's
// write path obeys (Propose waits while a run is paused: writes wait, they are
// not failed; the wait is bounded by maxPauseWait, past which the sweep's
// dirty check still keeps them safe). It collects from every live node the
// digests clients checked (HEAD, GET), mounted or uploaded since the run
// began, waits for its in-flight proposals to settle, re-marks from the dirty
// entries committed since the snapshot and commits one GCSweep. The gate
// opens when the sweep is applied; the pause is measured from gate close to
// gate open and exported.
//
// A new leader aborts a run that another leader (or this node before a
// restart) claimed: the mark changed nothing, the sweep is one command, so the
// run ends aborted and never half swept; the next run starts from scratch.
//
// After a sweep, every node deletes its files for the swept digests at its own
// pace (sweepFiles), each under the digest's lock and only if the metadata does
// not have the blob again and no client touched it since the run began (a
// push of the same digest racing the delete keeps its file). It also removes
// orphans (files no metadata names, older than the grace period and not
// touched lately) and purges stale upload sessions, then reports (GCNodeDone).
//
// Open upload sessions do not know their digest until they commit, so they
// are protected by the grace period, which must be longer than any upload:
// a blob is a candidate only once its last push is older than the grace
// period. A commit touches its digest first, so a session that commits during
// a run is protected by the touched set.

const (
	gcPoll = 200 * time.Millisecond // how often the coordinator and the file sweeper look
	// maxPauseWait bounds how long a write waits for a pause to end; a pause
	// is milliseconds, a longer one means its leader went away.
	maxPauseWait = 10 * time.Second
	// gcPeerTimeout bounds each call to another node during a run.
	gcPeerTimeout = 5 * time.Second
	// minOrphanAge is the least Config.GCOrphanMinAge: how long a touched
	// digest is remembered at least; the orphan pass leaves a touched file
	// alone that long.
	minOrphanAge = 10 * time.Second
)

// gcMetrics are garbage collection's collectors.
type gcMetrics struct {
	runs      *prometheus.CounterVec
	duration  prometheus.Histogram
	pause     prometheus.Histogram
	reclaimed prometheus.Counter
}

func newGCMetrics(reg prometheus.Registerer) (*gcMetrics, error) {
	m := &gcMetrics{
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "berth_gc_runs_total", Help: "Garbage collection runs this node coordinated, by outcome (done, dry_run, aborted, failed).",
		}, []string{"outcome"}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "berth_gc_duration_seconds", Help: "Time from a run's claim to its sweep (or its end).",
			Buckets: prometheus.ExponentialBuckets(0.01, 2, 16),
		}),
		pause: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "berth_gc_pause_seconds", Help: "Time writes were paused for a sweep.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
		}),
		reclaimed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "berth_gc_reclaimed_bytes_total", Help: "Bytes of blob files this node deleted after sweeps (orphans included).",
		}),
	}
	for _, c := range []prometheus.Collector{m.runs, m.duration, m.pause, m.reclaimed} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// gcSettings are the node's GC configuration; tests change them at run time.
type gcSettings struct {
	grace, retention, schedule time.Duration
	deleteUntagged             bool
}

// gcHooks let tests act at the stages of a run (nil: none). A hook runs in
// the coordinator's goroutine and must return when ctx is done.
type gcHooks struct {
	marked func(ctx context.Context, runID string) // after the mark, before the pause
	paused func(ctx context.Context, runID string) // writes paused, before the re-mark and sweep
}

// gcState is a node's garbage collection state. It is safe for concurrent use.
type gcState struct {
	n            *Node
	m            *gcMetrics
	incarnation  string        // names this process's claims: a restarted node is another leader
	orphanMinAge time.Duration // Config.GCOrphanMinAge

	mu        sync.Mutex // guards the fields below
	settings  gcSettings
	hooks     *gcHooks
	processed map[string]bool      // runs whose files this node handled
	begun     map[string]time.Time // run id -> when this node learned it began

	gateMu   sync.Mutex // guards the gate fields below
	paused   bool
	resumed  chan struct{} // closed when the in-memory pause ends
	inflight int           // proposals admitted and not finished (the leader waits for them)

	stripes [256]sync.Mutex // per-digest locks: a touch and a file delete of one digest never interleave
	touchMu sync.Mutex      // guards touched
	touched map[digest.Digest]time.Time
}

func newGCState(n *Node, reg prometheus.Registerer) (*gcState, error) {
	m, err := newGCMetrics(reg)
	if err != nil {
		return nil, err
	}
	var b [6]byte
	_, _ = rand.Read(b[:])
	return &gcState{
		n: n, m: m, incarnation: n.cfg.NodeID + "-" + hex.EncodeToString(b[:]), orphanMinAge: n.cfg.GCOrphanMinAge,
		settings: gcSettings{grace: n.cfg.GCGracePeriod, retention: n.cfg.GCDeletedRetention,
			schedule: n.cfg.GCSchedule, deleteUntagged: n.cfg.GCDeleteUntagged},
		processed: map[string]bool{},
		begun:     map[string]time.Time{},
		touched:   map[digest.Digest]time.Time{},
	}, nil
}

func (g *gcState) get() gcSettings {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.settings
}

func (g *gcState) setSettings(s gcSettings) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.settings = s
}

func (g *gcState) setHooks(h *gcHooks) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.hooks = h
}

func (g *gcState) hook(ctx context.Context, stage, runID string) {
	g.mu.Lock()
	h := g.hooks
	g.mu.Unlock()
	if h == nil {
		return
	}
	switch {
	case stage == "marked" && h.marked != nil:
		h.marked(ctx, runID)
	case stage == "paused" && h.paused != nil:
		h.paused(ctx, runID)
	}
}

// The write gate.

// admit lets a write through once no GC pause is in effect, or after
// maxPauseWait; release must be called when the write is done. It waits on
// the in-memory gate (the leader during its sweep) and on the replicated run
// state (every node): writes wait, they do not fail, unless ctx ends. A
// draining node's own last writes (the audit flush) do not wait: the sweep's
// dirty check keeps the run safe from them.
func (g *gcState) admit(ctx context.Context) (release func(), err error) {
	deadline := time.Now().Add(maxPauseWait)
	for {
		g.gateMu.Lock()
		gated := g.paused
		wait := gated && !g.n.draining.Load()
		resumed := g.resumed
		g.gateMu.Unlock()
		if !wait && !g.n.draining.Load() {
			wait, _ = meta.WritesPaused(g.n.fsm.Reader())
		}
		if !wait || time.Now().After(deadline) {
			g.gateMu.Lock()
			g.inflight++
			g.gateMu.Unlock()
			return g.release, nil
		}
		var woken <-chan struct{}
		if gated {
			woken = resumed
		}
		t := time.NewTimer(2 * time.Millisecond)
		select {
		case <-woken:
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("%w: waiting for a gc pause to end: %v", api.ErrUnavailable, ctx.Err())
		}
		t.Stop()
	}
}

func (g *gcState) release() {
	g.gateMu.Lock()
	g.inflight--
	g.gateMu.Unlock()
}

// closeGate pauses this node's writes; openGate resumes them.
func (g *gcState) closeGate() {
	g.gateMu.Lock()
	defer g.gateMu.Unlock()
	if !g.paused {
		g.paused, g.resumed = true, make(chan struct{})
	}
}

func (g *gcState) openGate() {
	g.gateMu.Lock()
	defer g.gateMu.Unlock()
	if g.paused {
		g.paused = false
		close(g.resumed)
	}
}

// waitDrained waits until the writes admitted before the gate closed are done,
// at most d; it reports whether they are.
func (g *gcState) waitDrained(ctx context.Context, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for {
		g.gateMu.Lock()
		n := g.inflight
		g.gateMu.Unlock()
		if n == 0 {
			return true
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return false
		}
		time.Sleep(200 * time.Microsecond)
	}
}

// Touched digests.

func (g *gcState) stripe(d digest.Digest) *sync.Mutex {
	h := fnv.New32a()
	h.Write([]byte(d))
	return &g.stripes[h.Sum32()%uint32(len(g.stripes))]
}

// touch records that a client checked, read, mounted or is writing d, so a run
// in progress does not sweep it, and a file delete racing a new push of d
// keeps the file. While a run has paused writes, it waits for the sweep before
// returning: the caller reads the metadata after the sweep, so it never relies
// on a blob the sweep is removing.
func (g *gcState) touch(ctx context.Context, d digest.Digest) {
	st := g.stripe(d)
	st.Lock()
	g.touchMu.Lock()
	g.touched[d] = time.Now()
	g.touchMu.Unlock()
	st.Unlock()
	deadline := time.Now().Add(maxPauseWait)
	for {
		paused, _ := meta.WritesPaused(g.n.fsm.Reader())
		if !paused || time.Now().After(deadline) {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(2 * time.Millisecond):
		}
	}
}

// touchedAt returns when d was last touched (zero: not remembered).
func (g *gcState) touchedAt(d digest.Digest) time.Time {
	g.touchMu.Lock()
	defer g.touchMu.Unlock()
	return g.touched[d]
}

// touchKeep is how long touches are remembered: the orphan pass leaves a file
// touched that recently alone, whatever the grace period.
func (g *gcState) touchKeep() time.Duration { return max(g.get().grace, g.orphanMinAge) }

// pruneTouched forgets old touches and old run starts.
func (g *gcState) pruneTouched() {
	cut := time.Now().Add(-g.touchKeep() - time.Minute)
	g.mu.Lock()
	oldest := cut
	for id, t := range g.begun {
		if t.Before(time.Now().Add(-24 * time.Hour)) {
			delete(g.begun, id)
		} else if t.Before(oldest) && !g.processed[id] {
			oldest = t // a run still being handled keeps its touches
		}
	}
	g.mu.Unlock()
	g.touchMu.Lock()
	for d, t := range g.touched {
		if t.Before(oldest) {
			delete(g.touched, d)
		}
	}
	g.touchMu.Unlock()
}

// begin records when this node learned that run began (the first time only).
func (g *gcState) begin(runID string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if _, ok := g.begun[runID]; !ok {
		g.begun[runID] = time.Now()
	}
}

// since returns when run began on this node; without a record (a restart),
// the start of what touches remember, which keeps more, never less.
func (g *gcState) since(runID string) time.Time {
	g.mu.Lock()
	t, ok := g.begun[runID]
	g.mu.Unlock()
	if ok {
		return t
	}
	return time.Time{}
}

// touchedSince lists the digests touched at or after t.
func (g *gcState) touchedSince(t time.Time) []digest.Digest {
	g.touchMu.Lock()
	defer g.touchMu.Unlock()
	var out []digest.Digest
	for d, at := range g.touched {
		if !at.Before(t) {
			out = append(out, d)
		}
	}
	return out
}

// The loop.

// gcLoop runs on every node until ctx ends: the leader coordinates runs, every
// node deletes its files after sweeps.
func (n *Node) gcLoop(ctx context.Context) {
	t := time.NewTicker(gcPoll)
	defer t.Stop()
	lastFiles, lastPrune := time.Time{}, time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if n.cluster.IsLeader() {
			if err := n.coordinate(ctx); err != nil && ctx.Err() == nil {
				n.log.Warn("gc: coordinator", "err", err)
			}
		}
		if time.Since(lastFiles) >= time.Second {
			lastFiles = time.Now()
			n.sweepFiles(ctx)
		}
		if time.Since(lastPrune) >= time.Minute {
			lastPrune = time.Now()
			n.gc.pruneTouched()
		}
	}
}

// coordinate is one look of the leader's coordinator: run a requested run,
// abort one another leader claimed, or start one on schedule.
func (n *Node) coordinate(ctx context.Context) error {
	g := n.gc
	run, err := meta.ActiveGCRun(n.fsm.Reader())
	if err != nil {
		return err
	}
	if run == nil {
		return n.maybeSchedule(ctx)
	}
	switch run.State {
	case meta.GCRequested:
		n.runGC(ctx, run)
		return nil
	case meta.GCMarking, meta.GCPaused:
		if run.Leader == g.incarnation {
			return nil // cannot happen: runGC runs to its end in this goroutine
		}
		n.log.Warn("gc: aborting a run claimed by another leader", "run", run.ID, "leader", run.Leader, "state", run.State)
		err := n.proposeDirect(ctx, &meta.GCAbort{ID: run.ID, Reason: fmt.Sprintf("the leader changed while it was %s", run.State), Time: n.clock()})
		if err == nil {
			g.m.runs.WithLabelValues("aborted").Inc()
		}
		return err
	}
	return nil
}

// maybeSchedule starts a run when the schedule is due: the newest run in the
// history started more than the interval ago.
func (n *Node) maybeSchedule(ctx context.Context) error {
	every := n.gc.get().schedule
	if every <= 0 {
		return nil
	}
	runs, err := meta.ListGCRuns(n.fsm.Reader())
	if err != nil {
		return err
	}
	now := n.clock()
	if len(runs) > 0 && now.Sub(runs[0].Requested) < every {
		return nil
	}
	err = n.proposeDirect(ctx, &meta.GCStart{ID: meta.NewGCRunID(now), By: "schedule", Time: now})
	if errors.Is(err, meta.ErrConflict) {
		return nil // someone asked for one meanwhile
	}
	return err
}

// proposeDirect commits a command on this node as the leader, without the
// write gate (the coordinator's own commands during its pause).
func (n *Node) proposeDirect(ctx context.Context, c meta.Command) error {
	data, err := meta.Encode(c)
	if err != nil {
		return err
	}
	resp, _, err := n.cluster.Propose(ctx, data)
	if err != nil {
		return err
	}
	if err, ok := resp.(error); ok {
		return err
	}
	return nil
}

// runGC runs one requested run to its end. Errors end it (failed) when this
// node can still commit; when it lost the leadership, the next leader aborts it.
func (n *Node) runGC(ctx context.Context, run *meta.GCRun) {
	g := n.gc
	start := time.Now()
	set := g.get()
	opts := meta.GCOptions{Now: n.clock(), GracePeriod: set.grace, Retention: set.retention,
		DeleteUntagged: set.deleteUntagged, Workspace: run.Workspace}
	if run.DeleteUntagged != nil {
		opts.DeleteUntagged = *run.DeleteUntagged
	}
	log := n.log.With("run", run.ID)
	if err := n.proposeDirect(ctx, &meta.GCBegin{ID: run.ID, Leader: g.incarnation, Options: opts, Time: opts.Now}); err != nil {
		log.Warn("gc: claim", "err", err)
		return
	}
	log.Info("gc: run started", "dry_run", run.DryRun, "workspace", run.Workspace, "grace", opts.GracePeriod,
		"retention", opts.Retention, "delete_untagged", opts.DeleteUntagged)
	fail := func(step string, err error) {
		if ctx.Err() != nil || isLeadershipError(err) {
			log.Warn("gc: run interrupted; the next leader aborts it", "step", step, "err", err)
			return
		}
		log.Error("gc: run failed", "step", step, "err", err)
		ferr := n.proposeDirect(context.WithoutCancel(ctx), &meta.GCFinish{ID: run.ID, Leader: g.incarnation, State: meta.GCFailed,
			Error: step + ": " + err.Error(), Time: n.clock()})
		if ferr == nil {
			g.m.runs.WithLabelValues("failed").Inc()
		}
	}
	g.begin(run.ID)
	n.notifyPeers(ctx, "gc/begin?run="+url.QueryEscape(run.ID))

	// Mark on a snapshot; writes go on.
	markStart := time.Now()
	snap, markIndex, release, err := n.fsm.SnapshotReader()
	if err != nil {
		fail("snapshot", err)
		return
	}
	plan, err := meta.Mark(snap, opts)
	release()
	if err != nil {
		fail("mark", err)
		return
	}
	markDur := time.Since(markStart)
	log.Info("gc: marked", "index", markIndex, "took", markDur, "manifests", plan.ScannedManifests, "blobs", plan.ScannedBlobs,
		"candidate_blobs", plan.Counts.Blobs, "candidate_bytes", plan.Counts.Bytes, "candidate_manifests", plan.Counts.Manifests,
		"trash_items", plan.Counts.TrashItems, "truncated", plan.Truncated)
	g.hook(ctx, "marked", run.ID)
	if ctx.Err() != nil {
		return
	}
	if run.DryRun || plan.Empty() {
		err := n.proposeDirect(ctx, &meta.GCFinish{ID: run.ID, Leader: g.incarnation, State: meta.GCDone, MarkIndex: markIndex,
			Candidates: plan.Counts, Mark: markDur, Time: n.clock()})
		if err != nil {
			fail("finish", err)
			return
		}
		outcome := "done"
		if run.DryRun {
			outcome = "dry_run"
		}
		g.m.runs.WithLabelValues(outcome).Inc()
		g.m.duration.Observe(time.Since(start).Seconds())
		log.Info("gc: run finished without a sweep", "dry_run", run.DryRun, "took", time.Since(start))
		return
	}

	// Stage the plan through Raft while writes go on: the sweep, in the
	// pause, then only names what the re-mark takes back.
	plan.ID, plan.Leader, plan.MarkIndex, plan.Mark, plan.Time = run.ID, g.incarnation, markIndex, markDur, n.clock()
	if err := n.proposeDirect(ctx, plan); err != nil {
		fail("stage the plan", err)
		return
	}

	// Pause writes, re-mark what changed, sweep, resume.
	pauseStart := time.Now()
	g.closeGate()
	defer g.openGate()
	if err := n.proposeDirect(ctx, &meta.GCPause{ID: run.ID, Leader: g.incarnation, Time: n.clock()}); err != nil {
		fail("pause", err)
		return
	}
	pauseIndex := n.cluster.AppliedIndex()
	touched, err := n.collectTouched(ctx, run.ID, pauseIndex)
	if err != nil {
		fail("collect checked blobs", err)
		return
	}
	if !g.waitDrained(ctx, 2*time.Second) {
		log.Warn("gc: writes admitted before the pause are still running; the sweep's dirty check covers them")
	}
	g.hook(ctx, "paused", run.ID)
	if ctx.Err() != nil {
		return
	}
	expected := n.gcNodes()
	var exclude meta.GCExclusions
	for attempt := 0; ; attempt++ {
		cur := n.fsm.Reader()
		dirty, last, err := meta.ReadDirty(cur, markIndex)
		if err != nil {
			fail("read dirty entries", err)
			return
		}
		exclude.Add(meta.Remark(cur, plan, dirty, touched))
		sweep := &meta.GCSweep{ID: run.ID, Leader: g.incarnation, DirtyThrough: last, Exclude: exclude,
			Candidates: plan.Counts, Pause: time.Since(pauseStart), ExpectedNodes: expected, Time: n.clock()}
		err = n.proposeDirect(ctx, sweep)
		if err == nil {
			break
		}
		if !errors.Is(err, meta.ErrConflict) || attempt == 2 {
			fail("sweep", err)
			return
		}
		// A write admitted before the gate closed landed after the re-mark:
		// re-mark with it and try again.
	}
	g.openGate()
	pause, total := time.Since(pauseStart), time.Since(start)
	g.m.pause.Observe(pause.Seconds())
	g.m.duration.Observe(total.Seconds())
	g.m.runs.WithLabelValues("done").Inc()
	if err := n.proposeDirect(context.WithoutCancel(ctx), &meta.GCStats{ID: run.ID, Pause: pause, Duration: total, Time: n.clock()}); err != nil {
		log.Warn("gc: record figures", "err", err)
	}
	log.Info("gc: swept", "mark", markDur, "pause", pause, "took", total, "blobs", len(plan.Blobs),
		"manifests", len(plan.Manifests), "trash_items", len(plan.Items), "touched", len(touched))
}

func isLeadershipError(err error) bool {
	return errors.Is(err, cluster.ErrNotLeader) || errors.Is(err, cluster.ErrLeadershipLost) ||
		errors.Is(err, cluster.ErrNoLeader) || errors.Is(err, cluster.ErrShutdown)
}

// gcNodes are the nodes expected to report their file deletions after a
// sweep: the live ones. A node that was down handles the sweep when it is back
// (while the swept list is kept; after that its leftover files are orphans,
// which a later run or fsck --repair removes).
func (n *Node) gcNodes() []string {
	out := []string{n.cfg.NodeID}
	for _, p := range n.livePeers() {
		out = append(out, p.ID)
	}
	sort.Strings(out)
	return out
}

// notifyPeers posts to path on every live peer, best effort.
func (n *Node) notifyPeers(ctx context.Context, path string) {
	var wg sync.WaitGroup
	for _, p := range n.livePeers() {
		wg.Add(1)
		go func(p peer) {
			defer wg.Done()
			cctx, cancel := context.WithTimeout(ctx, gcPeerTimeout)
			defer cancel()
			resp, err := n.peers.do(cctx, http.MethodPost, p.APIAddr, path, nil, 0)
			if err != nil {
				n.log.Warn("gc: notify", "peer", p.ID, "err", err)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}(p)
	}
	wg.Wait()
}

// collectTouched gathers from every live node (this one included) the digests
// clients touched since the run began, each node answering once it applied the
// pause (index), so a touch after its answer waits for the sweep. A live node
// that does not answer fails the run: its clients' checks are unknown.
func (n *Node) collectTouched(ctx context.Context, runID string, index uint64) ([]meta.Digest, error) {
	var out []meta.Digest
	for _, d := range n.gc.touchedSince(n.gc.since(runID)) {
		out = append(out, meta.Digest(d))
	}
	type result struct {
		id      string
		digests []meta.Digest
		err     error
	}
	peers := n.livePeers()
	ch := make(chan result, len(peers))
	for _, p := range peers {
		go func(p peer) {
			cctx, cancel := context.WithTimeout(ctx, gcPeerTimeout)
			defer cancel()
			q := url.Values{"run": {runID}, "index": {strconv.FormatUint(index, 10)}}
			resp, err := n.peers.do(cctx, http.MethodGet, p.APIAddr, "gc/touched?"+q.Encode(), nil, -1)
			if err != nil {
				ch <- result{id: p.ID, err: err}
				return
			}
			defer resp.Body.Close()
			var body struct {
				Digests []meta.Digest `json:"digests"`
			}
			if resp.StatusCode != http.StatusOK {
				ch <- result{id: p.ID, err: fmt.Errorf("answered %d", resp.StatusCode)}
				return
			}
			if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
				ch <- result{id: p.ID, err: err}
				return
			}
			ch <- result{id: p.ID, digests: body.Digests}
		}(p)
	}
	var errs []error
	for range peers {
		r := <-ch
		if r.err != nil {
			errs = append(errs, fmt.Errorf("node %s: %w", r.id, r.err))
			continue
		}
		out = append(out, r.digests...)
	}
	return out, errors.Join(errs...)
}

// serveGCBegin answers POST /internal/v1/gc/begin?run=ID: a run began.
func (n *Node) serveGCBegin(w http.ResponseWriter, r *http.Request) {
	id := r.URL.Query().Get("run")
	if !meta.ValidGCID(id) {
		http.Error(w, "bad run id", http.StatusBadRequest)
		return
	}
	n.gc.begin(id)
	w.WriteHeader(http.StatusNoContent)
}

// serveGCTouched answers GET /internal/v1/gc/touched?run=ID&index=N: once
// this node applied index (the pause), the digests touched since the run
// began here.
func (n *Node) serveGCTouched(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	id := q.Get("run")
	index, err := strconv.ParseUint(q.Get("index"), 10, 64)
	if !meta.ValidGCID(id) || err != nil {
		http.Error(w, "bad run id or index", http.StatusBadRequest)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), gcPeerTimeout)
	defer cancel()
	if err := n.cluster.WaitApplied(ctx, index); err != nil {
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
		return
	}
	out := []meta.Digest{}
	for _, d := range n.gc.touchedSince(n.gc.since(id)) {
		out = append(out, meta.Digest(d))
	}
	writeInternalJSON(w, map[string]any{"digests": out})
}

// The file sweeper.

// sweepFiles deletes this node's files of every finished sweep it has not
// handled yet (a node that was down catches up while the swept list is kept),
// then reports.
func (n *Node) sweepFiles(ctx context.Context) {
	g := n.gc
	runs, err := meta.ListGCRuns(n.fsm.Reader())
	if err != nil {
		n.log.Warn("gc: list runs", "err", err)
		return
	}
	for i := len(runs) - 1; i >= 0; i-- { // oldest first
		run := &runs[i]
		if run.State != meta.GCDone || run.DryRun || run.Nodes[n.cfg.NodeID] != nil {
			continue
		}
		g.mu.Lock()
		done := g.processed[run.ID]
		g.mu.Unlock()
		if done {
			continue
		}
		rep := n.deleteSwept(ctx, run)
		if ctx.Err() != nil {
			return
		}
		err := n.Propose(ctx, &meta.GCNodeDone{ID: run.ID, Node: n.cfg.NodeID, Report: *rep, Time: n.clock()})
		if err != nil {
			n.log.Warn("gc: report file deletions; will retry", "run", run.ID, "err", err)
			return
		}
		g.mu.Lock()
		g.processed[run.ID] = true
		g.mu.Unlock()
		g.m.reclaimed.Add(float64(rep.Bytes + rep.OrphanBytes))
		n.log.Info("gc: files deleted", "run", run.ID, "files", rep.Files, "bytes", rep.Bytes, "kept", rep.Kept,
			"orphans", rep.Orphans, "uploads_expired", rep.UploadsExpired)
	}
}

// deleteSwept deletes the files of a run's swept blobs, the orphans, and the
// stale upload sessions of this node.
func (n *Node) deleteSwept(ctx context.Context, run *meta.GCRun) *meta.GCNodeReport {
	g := n.gc
	rep := &meta.GCNodeReport{}
	swept, err := meta.GetSweptBlobs(n.fsm.Reader(), run.ID)
	if err != nil {
		rep.Errors = append(rep.Errors, err.Error())
	}
	since := g.since(run.ID)
	for _, b := range swept {
		if ctx.Err() != nil {
			return rep
		}
		d := digest.Digest(b.Digest)
		size, deleted, kept, err := n.deleteIfGarbage(d, func(at time.Time) bool { return !at.IsZero() && !at.Before(since) })
		switch {
		case err != nil:
			rep.Errors = append(rep.Errors, err.Error())
		case kept:
			rep.Kept++
		case deleted:
			rep.Files++
			rep.Bytes += size
		}
	}
	if run.Workspace == "" {
		n.deleteOrphans(ctx, run.Options.GracePeriod, rep)
	}
	if c, err := n.blobs.ExpireUploads(); err != nil {
		rep.Errors = append(rep.Errors, err.Error())
	} else {
		rep.UploadsExpired = c
	}
	if len(rep.Errors) > 20 {
		rep.Errors = append(rep.Errors[:20], fmt.Sprintf("and %d more", len(rep.Errors)-20))
	}
	rep.Finished = n.clock()
	return rep
}

// deleteIfGarbage deletes d's file under d's lock unless the metadata records
// the blob or keep says its last touch protects it. It reports the file's
// size, whether it deleted it, and whether it kept it for those reasons.
func (n *Node) deleteIfGarbage(d digest.Digest, keep func(touched time.Time) bool) (int64, bool, bool, error) {
	st := n.gc.stripe(d)
	st.Lock()
	defer st.Unlock()
	if _, err := meta.GetBlob(n.fsm.Reader(), meta.Digest(d)); err == nil {
		return 0, false, true, nil // pushed again since the sweep
	} else if !errors.Is(err, meta.ErrBlobUnknown) {
		return 0, false, false, err
	}
	if keep(n.gc.touchedAt(d)) {
		return 0, false, true, nil
	}
	size, err := n.blobs.Stat(d)
	if errors.Is(err, blobstore.ErrBlobUnknown) {
		return 0, false, false, nil
	}
	if err != nil {
		return 0, false, false, err
	}
	if err := n.blobs.Delete(d); err != nil {
		return 0, false, false, err
	}
	return size, true, false, nil
}

// orphanAge returns how old d's file is by its modification time, and whether
// it exists.
func (n *Node) orphanAge(d digest.Digest) (time.Duration, bool) {
	p, err := n.blobs.Path(d)
	if err != nil {
		return 0, false
	}
	fi, err := os.Stat(p)
	if err != nil {
		return 0, false
	}
	return time.Since(fi.ModTime()), true
}

// isOrphan reports whether d's file is an orphan: no metadata names it, it is
// older than grace, and no client touched it lately.
func (n *Node) isOrphan(d digest.Digest, grace time.Duration) bool {
	if _, err := meta.GetBlob(n.fsm.Reader(), meta.Digest(d)); err == nil {
		return false
	}
	if at := n.gc.touchedAt(d); !at.IsZero() && time.Since(at) < n.gc.touchKeep() {
		return false
	}
	age, ok := n.orphanAge(d)
	return ok && age >= grace
}

// deleteOrphans removes the files no metadata names, older than grace.
func (n *Node) deleteOrphans(ctx context.Context, grace time.Duration, rep *meta.GCNodeReport) {
	var orphans []digest.Digest
	err := n.blobs.Walk(func(d digest.Digest, _ int64) error {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if n.isOrphan(d, grace) {
			orphans = append(orphans, d)
		}
		return nil
	})
	if err != nil && ctx.Err() == nil {
		rep.Errors = append(rep.Errors, err.Error())
	}
	keep := func(at time.Time) bool { return !at.IsZero() && time.Since(at) < n.gc.touchKeep() }
	for _, d := range orphans {
		size, deleted, _, err := n.deleteIfGarbage(d, keep)
		if err != nil {
			rep.Errors = append(rep.Errors, err.Error())
		} else if deleted {
			rep.Orphans++
			rep.OrphanBytes += size
		}
	}
}
