package node

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"net/http"
	"os"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/berth-registry/berth/api"
	"github.com/berth-registry/berth/blobstore"
	"github.com/berth-registry/berth/meta"
)

// peer is another live node as gossip sees it.
type peer struct {
	ID, Zone, APIAddr string
	RTT               time.Duration
}

// nearest orders peers for reading: same zone first, then lowest round trip.
func (n *Node) nearest(peers []peer) {
	sort.SliceStable(peers, func(i, j int) bool {
		si, sj := peers[i].Zone == n.cfg.Zone, peers[j].Zone == n.cfg.Zone
		if si != sj {
			return si
		}
		return rttOrMax(peers[i].RTT) < rttOrMax(peers[j].RTT)
	})
}

// spread orders peers for placing copies: other zones first (a copy in another
// zone survives the loss of this one), then lowest round trip.
func (n *Node) spread(peers []peer) {
	sort.SliceStable(peers, func(i, j int) bool {
		oi, oj := peers[i].Zone != n.cfg.Zone, peers[j].Zone != n.cfg.Zone
		if oi != oj {
			return oi
		}
		return rttOrMax(peers[i].RTT) < rttOrMax(peers[j].RTT)
	})
}

func rttOrMax(d time.Duration) time.Duration {
	if d <= 0 {
		return time.Hour
	}
	return d
}

// ensureReplicas is called before a new blob is recorded: it copies the local
// blob to peers until MinReplicas nodes hold it (or every node, when the
// cluster has fewer), and returns the nodes that hold it. A blob's 201 is therefore sent
// only when it is stored on MinReplicas nodes.
func (n *Node) ensureReplicas(ctx context.Context, d digest.Digest, size int64) ([]string, error) {
	holders := []string{n.cfg.NodeID}
	peers, members := n.copyTargets()
	want := min(n.cfg.MinReplicas, members)
	if len(holders) >= want {
		return holders, nil
	}
	// A node that knows no leader cannot record the blob anyway: fail before
	// copying anything (a partitioned node answers 503 at once).
	if _, id := n.cluster.Leader(); id == "" {
		return nil, fmt.Errorf("%w: no leader to record blob %s", api.ErrUnavailable, d)
	}
	start := time.Now()
	defer func() { n.metrics.replicateSeconds.Observe(time.Since(start).Seconds()) }()

	// Copies run in parallel, as many as are still needed; a peer that fails
	// or stalls (a stopped process, a black-holed link that gossip still sees
	// alive) is given up after copyTimeout and the next peer is tried.
	type result struct {
		id  string
		err error
	}
	results := make(chan result, len(peers))
	next, running, extra := 0, 0, 0
	var errs []error
	launch := func() {
		p := peers[next]
		next++
		running++
		go func() {
			cctx, cancel := context.WithTimeout(ctx, copyTimeout(size))
			defer cancel()
			results <- result{p.ID, n.pushBlob(cctx, p, d, size)}
		}()
	}
	// Hedging: when the copies in flight are slower than a healthy peer would
	// be, one more peer is started as well and the first to finish counts.
	hedge := time.NewTimer(hedgeDelay(size))
	defer hedge.Stop()
	for len(holders) < want {
		for len(holders)+running-extra < want && next < len(peers) {
			launch()
		}
		if running == 0 {
			break
		}
		select {
		case r := <-results:
			running--
			if r.err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", r.id, r.err))
				if extra > 0 {
					extra--
				}
				continue
			}
			holders = append(holders, r.id)
		case <-hedge.C:
			if next < len(peers) {
				extra++
				launch()
			}
			hedge.Reset(hedgeDelay(size))
		}
	}
	// Copies still in flight finish on their own; their results are dropped
	// (the buffered channel keeps them from blocking) and the peers keep a
	// verified copy that the replicator records.
	if len(holders) < want {
		return nil, fmt.Errorf("%w: blob %s is on %d of %d required nodes: %v", api.ErrUnavailable, d, len(holders), want, errors.Join(errs...))
	}
	return holders, nil
}

// copyTargets returns the peers a push copies to, in order: the live ones
// (gossip), spread over zones, then the other Raft servers at the address
// gossip last knew for them (a view that can hold a reachable node dead for a
// while after a partition). members is how many nodes the cluster has (its
// Raft servers): MinReplicas is bounded by it, never by how many peers look
// alive, so a push is not acknowledged with fewer copies than promised
// because gossip lost sight of the others (the chaos harness found acked
// blobs held by one node only, lost with that node's disk).
func (n *Node) copyTargets() ([]peer, int) {
	peers := n.livePeers()
	n.spread(peers)
	members := 1 + len(peers)
	servers, err := n.cluster.Servers()
	if err != nil || len(servers) == 0 {
		return peers, members
	}
	members = len(servers)
	seen := map[string]bool{n.cfg.NodeID: true}
	for _, p := range peers {
		seen[p.ID] = true
	}
	for _, sv := range servers {
		if seen[sv.ID] {
			continue
		}
		if addr, ok := n.lastAPI(sv.ID); ok {
			peers = append(peers, peer{ID: sv.ID, APIAddr: addr})
		}
	}
	return peers, members
}

// hedgeDelay is how long a copy may take before another peer is tried too:
// half a second plus the bytes at 100 MB/s.
func hedgeDelay(size int64) time.Duration {
	return 500*time.Millisecond + time.Duration(size/(100<<20))*time.Second
}

// copyTimeout bounds one node-to-node copy of size bytes: a few seconds to
// connect and answer, plus the bytes at a pessimistic 20 MB/s.
func copyTimeout(size int64) time.Duration {
	return 5*time.Second + time.Duration(size/(20<<20))*time.Second
}

// pushBlob streams the local copy of d to a peer, which verifies it.
func (n *Node) pushBlob(ctx context.Context, p peer, d digest.Digest, size int64) error {
	f, err := n.blobs.Open(d)
	if err != nil {
		return err
	}
	defer f.Close()
	resp, err := n.peers.do(ctx, http.MethodPut, p.APIAddr, "blobs/"+string(d), f, size)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
		return fmt.Errorf("peer answered %d: %s", resp.StatusCode, msg)
	}
	n.metrics.replicaBytes.Add(float64(size))
	return nil
}

// fetchGroup makes one fetch per digest however many callers ask.
type fetchGroup struct {
	mu       sync.Mutex // guards inflight
	inflight map[digest.Digest]*fetchCall
}

type fetchCall struct {
	done chan struct{}
	err  error
}

// fetch brings a recorded blob this node lacks from the nearest live holder,
// verifies it while it streams into the local store, and records the new copy.
func (n *Node) fetch(ctx context.Context, d digest.Digest) error {
	g := &n.fetches
	g.mu.Lock()
	if c, ok := g.inflight[d]; ok {
		g.mu.Unlock()
		select {
		case <-c.done:
			return c.err
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	c := &fetchCall{done: make(chan struct{})}
	g.inflight[d] = c
	g.mu.Unlock()
	// The fetch outlives a client that goes away: others may be waiting for it.
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Minute)
	c.err = n.fetchOnce(fctx, d)
	cancel()
	g.mu.Lock()
	delete(g.inflight, d)
	g.mu.Unlock()
	close(c.done)
	return c.err
}

func (n *Node) fetchOnce(ctx context.Context, d digest.Digest) error {
	if _, err := n.blobs.Stat(d); err == nil {
		return nil
	}
	holders, err := meta.BlobLocations(n.fsm.Reader(), meta.Digest(d))
	if err != nil {
		return err
	}
	isHolder := map[string]bool{}
	for _, h := range holders {
		isHolder[h] = true
	}
	var candidates []peer
	for _, p := range n.livePeers() {
		if isHolder[p.ID] {
			candidates = append(candidates, p)
		}
	}
	if len(candidates) == 0 {
		return fmt.Errorf("%w: no live node holds blob %s", api.ErrUnavailable, d)
	}
	n.nearest(candidates)
	var size int64
	if b, err := meta.GetBlob(n.fsm.Reader(), meta.Digest(d)); err == nil {
		size = b.Size
	}
	var errs []error
	for _, p := range candidates {
		// A holder that stalls is given up after a bounded time; the next one
		// is tried.
		cctx, cancel := context.WithTimeout(ctx, copyTimeout(size))
		err := n.fetchFrom(cctx, p, d)
		cancel()
		if err == nil {
			return nil
		}
		errs = append(errs, fmt.Errorf("%s: %w", p.ID, err))
	}
	return fmt.Errorf("%w: fetch blob %s: %v", api.ErrUnavailable, d, errors.Join(errs...))
}

func (n *Node) fetchFrom(ctx context.Context, p peer, d digest.Digest) error {
	resp, err := n.peers.do(ctx, http.MethodGet, p.APIAddr, "blobs/"+string(d), nil, -1)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("peer answered %d", resp.StatusCode)
	}
	size, err := n.blobs.Put(ctx, resp.Body, d)
	if err != nil {
		return err
	}
	n.metrics.fetchedBlobs.Inc()
	n.metrics.replicaBytes.Add(float64(size))
	if b, err := meta.GetBlob(n.fsm.Reader(), meta.Digest(d)); err == nil {
		n.metrics.replicationLag.Observe(n.clock().Sub(b.Created).Seconds())
	}
	return n.Propose(ctx, &meta.SetBlobLocation{Digest: meta.Digest(d), Node: n.cfg.NodeID, Time: n.clock()})
}

// shouldHold reports whether this node is one of the nodes a blob is placed
// on: every node when Replicas is 0 ("all"), else the first Replicas live nodes
// by rendezvous hashing, so every node computes the same placement.
func (n *Node) shouldHold(d digest.Digest, live []string) bool {
	if n.cfg.Replicas <= 0 || len(live) <= n.cfg.Replicas {
		return true
	}
	type scored struct {
		id    string
		score uint64
	}
	s := make([]scored, len(live))
	for i, id := range live {
		h := fnv.New64a()
		h.Write([]byte(d))
		h.Write([]byte(id))
		s[i] = scored{id, h.Sum64()}
	}
	sort.Slice(s, func(i, j int) bool { return s[i].score > s[j].score })
	for _, x := range s[:n.cfg.Replicas] {
		if x.id == n.cfg.NodeID {
			return true
		}
	}
	return false
}

// replicateLoop is the replicator: it brings every blob this node should hold
// onto local disk (repairing after a node is lost or wiped), and corrects the
// recorded locations of this node against what is really on disk.
func (n *Node) replicateLoop(ctx context.Context) {
	n.scrubLocations(ctx)
	t := time.NewTicker(n.cfg.ReplicateInterval)
	defer t.Stop()
	for {
		n.replicatePass(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (n *Node) replicatePass(ctx context.Context) {
	live := []string{n.cfg.NodeID}
	for _, p := range n.livePeers() {
		live = append(live, p.ID)
	}
	// The leader also forgets the copies of nodes that are neither in the
	// Raft configuration nor alive (removed after the dead-node timeout or by
	// an admin), so reads never go looking for them.
	known := map[string]bool{}
	leader := n.cluster.IsLeader()
	if leader {
		servers, err := n.cluster.Servers()
		if err != nil {
			leader = false
		}
		for _, sv := range servers {
			known[sv.ID] = true
		}
		for _, id := range live {
			known[id] = true
		}
	}
	state := n.fsm.Reader()
	backlog := 0
	var missing []digest.Digest
	var changes []*meta.SetBlobLocation
	err := meta.ScanBlobs(state, "", func(b *meta.Blob) error {
		d := digest.Digest(b.Digest)
		holders, err := meta.BlobLocations(state, b.Digest)
		if err != nil {
			return err
		}
		recorded := false
		for _, h := range holders {
			if h == n.cfg.NodeID {
				recorded = true
			} else if leader && !known[h] {
				changes = append(changes, &meta.SetBlobLocation{Digest: b.Digest, Node: h, Remove: true})
			}
		}
		_, serr := n.blobs.Stat(d)
		switch {
		case serr == nil && !recorded:
			// A verified copy that the metadata does not list (a node that
			// restarted after it was removed, or a fetch whose record was
			// lost): adopt it.
			changes = append(changes, &meta.SetBlobLocation{Digest: b.Digest, Node: n.cfg.NodeID})
		case errors.Is(serr, blobstore.ErrBlobUnknown):
			if recorded {
				// Recorded here but not on disk: a wiped data directory
				// whose records came back with a snapshot from the others
				// (scrubLocations at start saw none). The record would make
				// reads and the other nodes count a copy that is not there.
				changes = append(changes, &meta.SetBlobLocation{Digest: b.Digest, Node: n.cfg.NodeID, Remove: true})
			}
			if n.shouldHold(d, live) {
				backlog++
				missing = append(missing, d)
			}
		}
		return nil
	})
	if err != nil {
		n.log.Warn("replicator: scan", "err", err)
		return
	}
	// Location changes go out many at a time: Raft appends concurrent
	// proposals together. One at a time, a wiped node that had fetched
	// thousands of blobs back took minutes of back-to-back writes to record
	// them (the chaos harness saw a cluster that never went quiet).
	var failed atomic.Bool
	var wg sync.WaitGroup
	sem := make(chan struct{}, locationProposals)
	for _, c := range changes {
		if failed.Load() || ctx.Err() != nil {
			break
		}
		c.Time = n.clock()
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			if err := n.Propose(ctx, c); err != nil {
				failed.Store(true)
				n.log.Debug("replicator: record location", "digest", c.Digest, "node", c.Node, "err", err)
			}
		})
	}
	wg.Wait()
	n.metrics.backlog.Set(float64(backlog))
	// Repairs run several at a time: one at a time (a fetch, an fsync and a
	// Raft proposal each), a wiped node took minutes to get thousands of
	// small blobs back.
	var mu sync.Mutex // guards backlog
	var fwg sync.WaitGroup
	fsem := make(chan struct{}, repairFetches)
	for _, d := range missing {
		if ctx.Err() != nil {
			break
		}
		fsem <- struct{}{}
		fwg.Go(func() {
			defer func() { <-fsem }()
			if err := n.fetch(ctx, d); err != nil {
				n.log.Debug("replicator: fetch", "digest", d, "err", err)
				return
			}
			n.metrics.repairs.Inc()
			mu.Lock()
			backlog--
			n.metrics.backlog.Set(float64(backlog))
			mu.Unlock()
		})
	}
	fwg.Wait()
}

// locationProposals bounds the replicator's location changes in flight, and
// repairFetches its blob fetches.
const (
	locationProposals = 32
	repairFetches     = 8
)

// scrubLocations removes the recorded locations of this node whose file is not
// on disk (a wiped or damaged data directory), so reads go elsewhere and the
// replicator copies them back.
func (n *Node) scrubLocations(ctx context.Context) {
	var lost []meta.Digest
	_ = meta.ScanBlobs(n.fsm.Reader(), "", func(b *meta.Blob) error {
		nodes, err := meta.BlobLocations(n.fsm.Reader(), b.Digest)
		if err != nil {
			return err
		}
		for _, id := range nodes {
			if id == n.cfg.NodeID {
				if _, err := n.blobs.Stat(digest.Digest(b.Digest)); errors.Is(err, blobstore.ErrBlobUnknown) {
					lost = append(lost, b.Digest)
				}
			}
		}
		return nil
	})
	for _, d := range lost {
		if err := n.Propose(ctx, &meta.SetBlobLocation{Digest: d, Node: n.cfg.NodeID, Remove: true, Time: n.clock()}); err != nil {
			n.log.Warn("scrub: drop lost location", "digest", d, "err", err)
			return
		}
	}
	if len(lost) > 0 {
		n.log.Warn("scrub: blobs recorded on this node are missing from disk; they will be copied back", "count", len(lost))
	}
}

// openBlob opens a local blob, fetching it from the nearest holder first when
// the cluster has it and this node does not.
func (n *Node) openBlob(d digest.Digest) (*os.File, error) {
	f, err := n.blobs.Open(d)
	if !errors.Is(err, blobstore.ErrBlobUnknown) {
		return f, err
	}
	if _, merr := meta.GetBlob(n.fsm.Reader(), meta.Digest(d)); merr != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	if ferr := n.fetch(ctx, d); ferr != nil {
		return nil, ferr
	}
	return n.blobs.Open(d)
}
