package node

// Cluster status and node removal: the node side of GET /api/v1/cluster and
// DELETE /api/v1/cluster/nodes/:node, the internal routes they use
// (GET /internal/v1/local-status, POST /internal/v1/remove-server), and the
// disk and blob gauges of /metrics.
//
// The answering node knows the Raft configuration and gossip's view; every
// other figure (indexes, last contact, disk, blobs, backlog) is the node's own,
// so it asks each live peer for them in parallel, each with a short timeout: a
// slow or dead peer costs the answer at most peerStatusTimeout, never a hang.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/berth-registry/berth/api"
	"github.com/berth-registry/berth/cluster"
	"github.com/berth-registry/berth/meta"
)

const (
	// peerStatusTimeout bounds each peer's answer to local-status.
	peerStatusTimeout = 2 * time.Second
	// blobCountTTL is how long a count of the blob files on disk is reused:
	// counting walks the whole blob directory, too much for every scrape or
	// status call of a large store.
	blobCountTTL = 30 * time.Second
	// removeConcurrency is how many location drops are proposed at once when
	// a node is removed (Raft batches them).
	removeConcurrency = 8
)

// nodeStatus reports this node's figures and serves the cluster routes
// (api.ClusterAdmin). Its methods are safe for concurrent use.
type nodeStatus struct {
	n *Node

	mu        sync.Mutex // guards the fields below; never held across I/O
	blobs     int64
	blobBytes int64
	countedAt time.Time     // zero until the first count
	counting  chan struct{} // closed when the count in flight ends; nil when none

	// The gauges of /metrics, computed at scrape time: the file system
	// figures with one statfs call, the blob figures from the count
	// blobCounts keeps for blobCountTTL.
	diskCapacity, diskUsed, diskFree, storedBlobs, storedBytes *prometheus.Desc
}

var (
	_ api.ClusterAdmin     = (*nodeStatus)(nil)
	_ prometheus.Collector = (*nodeStatus)(nil)
)

// newNodeStatus returns the node's status reporter and registers its gauges
// on reg.
func newNodeStatus(n *Node, reg prometheus.Registerer) (*nodeStatus, error) {
	s := &nodeStatus{
		n: n,
		diskCapacity: prometheus.NewDesc("berth_disk_capacity_bytes",
			"Size of the file system that holds the data directory.", nil, nil),
		diskUsed: prometheus.NewDesc("berth_disk_used_bytes",
			"Bytes used on the file system that holds the data directory (by anything).", nil, nil),
		diskFree: prometheus.NewDesc("berth_disk_free_bytes",
			"Bytes the node may still write on the file system of its data directory.", nil, nil),
		storedBlobs: prometheus.NewDesc("berth_blobstore_blobs",
			"Blob files stored on this node (counted at most every 30s).", nil, nil),
		storedBytes: prometheus.NewDesc("berth_blobstore_stored_bytes",
			"Total size of the blob files stored on this node (counted at most every 30s).", nil, nil),
	}
	if err := reg.Register(s); err != nil {
		return nil, fmt.Errorf("node: register status metrics: %w", err)
	}
	return s, nil
}

// blobCounts returns the number and total size of the blob files on disk and
// when they were counted. A count older than blobCountTTL is returned as is
// while a new one runs in the background; only the very first call waits for
// a count (bounded by ctx: ok is false if it ends first or the walk fails).
func (s *nodeStatus) blobCounts(ctx context.Context) (count, size int64, asOf time.Time, ok bool) {
	s.mu.Lock()
	fresh := !s.countedAt.IsZero() && s.n.clock().Sub(s.countedAt) < blobCountTTL
	if fresh || (!s.countedAt.IsZero() && s.counting != nil) {
		defer s.mu.Unlock()
		return s.blobs, s.blobBytes, s.countedAt, true
	}
	done := s.counting
	if done == nil {
		done = make(chan struct{})
		s.counting = done
		go s.count(done)
	}
	first := s.countedAt.IsZero()
	c, b, at := s.blobs, s.blobBytes, s.countedAt
	s.mu.Unlock()
	if !first {
		return c, b, at, true // stale while the new count runs
	}
	select {
	case <-done:
	case <-ctx.Done():
		return 0, 0, time.Time{}, false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.blobs, s.blobBytes, s.countedAt, !s.countedAt.IsZero()
}

// count walks the blob store once and publishes the result. The store's Close
// waits for a walk in progress, so this ends before the node's stores close.
func (s *nodeStatus) count(done chan struct{}) {
	var c, b int64
	at := s.n.clock()
	err := s.n.blobs.Walk(func(_ digest.Digest, size int64) error {
		c++
		b += size
		return nil
	})
	s.mu.Lock()
	if err == nil {
		s.blobs, s.blobBytes, s.countedAt = c, b, at
	} else {
		s.n.log.Debug("status: count blobs", "err", err)
	}
	s.counting = nil
	s.mu.Unlock()
	close(done)
}

// local returns this node's own figures.
func (s *nodeStatus) local(ctx context.Context) api.NodeLocal {
	n := s.n
	stats := n.cluster.Stats()
	l := api.NodeLocal{
		RaftState:          strings.ToLower(stats["state"]),
		CommitIndex:        n.cluster.CommitIndex(),
		AppliedIndex:       n.cluster.AppliedIndex(),
		ReplicationBacklog: int64(gaugeValue(n.metrics.backlog)),
	}
	l.Term, _ = strconv.ParseUint(stats["term"], 10, 64)
	if !n.cluster.IsLeader() {
		if lc := n.cluster.LastContact(); !lc.IsZero() {
			age := n.clock().Sub(lc).Seconds()
			l.LastContact, l.LastContactAgeSeconds = &lc, &age
		}
	}
	if d, err := diskUsage(n.cfg.DataDir); err == nil {
		l.Disk = d
	}
	l.Blobs, l.BlobBytes, l.BlobsAsOf, _ = s.blobCounts(ctx)
	return l
}

// gaugeValue reads a gauge's current value.
func gaugeValue(g prometheus.Gauge) float64 {
	var m dto.Metric
	if err := g.Write(&m); err != nil || m.Gauge == nil {
		return 0
	}
	return m.Gauge.GetValue()
}

// ClusterStatus lists the Raft configuration's servers and the alive members
// not in it yet, with each node's own figures.
func (s *nodeStatus) ClusterStatus(ctx context.Context) (*api.ClusterStatus, error) {
	n := s.n
	servers, err := n.cluster.Servers()
	if err != nil {
		return nil, fmt.Errorf("%w: %v", api.ErrUnavailable, err)
	}
	_, leader := n.cluster.Leader()
	out := &api.ClusterStatus{Node: n.cfg.NodeID, Leader: leader}
	out.Term, _ = strconv.ParseUint(n.cluster.Stats()["term"], 10, 64)

	byID := map[string]*api.ClusterNode{}
	for _, sv := range servers {
		byID[sv.ID] = &api.ClusterNode{ID: sv.ID, RaftAddr: sv.Addr, Suffrage: sv.Suffrage,
			IsLeader: sv.IsLeader || (leader != "" && sv.ID == leader), State: "unknown"}
	}
	if n.gossip == nil {
		self, ok := byID[n.cfg.NodeID]
		if !ok {
			self = &api.ClusterNode{ID: n.cfg.NodeID}
			byID[self.ID] = self
		}
		self.Zone, self.State, self.Draining = n.cfg.Zone, cluster.Alive.String(), n.draining.Load()
		self.APIAddr = n.cfg.Advertise
		if self.APIAddr == "" {
			self.APIAddr = n.Addr()
		}
	} else {
		for _, m := range n.gossip.Members() {
			c, ok := byID[m.ID]
			if !ok {
				// A member that is not in the configuration is shown while it
				// may join; one that died or left after its removal is gone.
				if m.State != cluster.Alive && m.State != cluster.Suspect {
					continue
				}
				c = &api.ClusterNode{ID: m.ID, RaftAddr: m.RaftAddr}
				byID[m.ID] = c
			}
			c.Zone, c.APIAddr, c.GossipAddr = m.Zone, m.APIAddr, m.GossipAddr
			c.State, c.Draining = m.State.String(), m.Draining
			c.RTTMillis = float64(m.RTT.Microseconds()) / 1000
			if c.RaftAddr == "" {
				c.RaftAddr = m.RaftAddr
			}
		}
	}

	var wg sync.WaitGroup
	for id, c := range byID {
		switch {
		case id == n.cfg.NodeID:
			wg.Add(1)
			go func() {
				defer wg.Done()
				lctx, cancel := context.WithTimeout(ctx, peerStatusTimeout)
				defer cancel()
				l := s.local(lctx)
				c.NodeLocal = &l
			}()
		case c.State != cluster.Alive.String() && c.State != cluster.Suspect.String():
			c.Error = "not alive in gossip (" + c.State + "): no figures of its own"
		case c.APIAddr == "":
			c.Error = "gossip carries no API address for it"
		default:
			wg.Add(1)
			go func() {
				defer wg.Done()
				l, err := s.peerLocal(ctx, c.APIAddr)
				if err != nil {
					c.Error = err.Error()
					return
				}
				c.NodeLocal = l
			}()
		}
	}
	wg.Wait()
	for _, c := range byID {
		out.Nodes = append(out.Nodes, *c)
	}
	slices.SortFunc(out.Nodes, func(a, b api.ClusterNode) int { return strings.Compare(a.ID, b.ID) })
	return out, nil
}

// peerLocal asks a peer for its own figures.
func (s *nodeStatus) peerLocal(ctx context.Context, addr string) (*api.NodeLocal, error) {
	ctx, cancel := context.WithTimeout(ctx, peerStatusTimeout)
	defer cancel()
	resp, err := s.n.peers.do(ctx, http.MethodGet, addr, "local-status", nil, -1)
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("no answer within %s", peerStatusTimeout)
		}
		return nil, fmt.Errorf("local status: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return nil, fmt.Errorf("local status: answered %d: %s", resp.StatusCode, bytes.TrimSpace(msg))
	}
	var l api.NodeLocal
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&l); err != nil {
		return nil, fmt.Errorf("local status: %v", err)
	}
	return &l, nil
}

// serveLocalStatus answers GET /internal/v1/local-status.
func (s *nodeStatus) serveLocalStatus(w http.ResponseWriter, r *http.Request) {
	writeInternalJSON(w, s.local(r.Context()))
}

// RemoveNode removes id from the Raft configuration (on the leader, forwarded
// there if need be) and then drops it from every blob's locations. The
// removal from Raft comes first: a refusal (last voter) leaves the
// locations as they were.
func (s *nodeStatus) RemoveNode(ctx context.Context, id string) (*api.NodeRemoval, error) {
	n := s.n
	if id == n.cfg.NodeID {
		return nil, fmt.Errorf("%w: %s is the node serving this request; ask another node to remove it", api.ErrNodeRemoveRefused, id)
	}
	servers, err := n.cluster.Servers()
	if err != nil {
		return nil, fmt.Errorf("%w: %v", api.ErrUnavailable, err)
	}
	inRaft := slices.ContainsFunc(servers, func(sv cluster.ServerInfo) bool { return sv.ID == id })
	var m cluster.Member
	inGossip := false
	if n.gossip != nil {
		m, inGossip = n.gossip.Member(id)
	}
	res := &api.NodeRemoval{Node: id}
	if inRaft {
		err := s.removeServer(ctx, id)
		switch {
		case err == nil:
			res.RemovedFromRaft = true
			n.log.Info("removed a node from raft", "removed", id)
		case errors.Is(err, cluster.ErrUnknownServer):
			// Removed meanwhile (the reconciler, or another admin).
		default:
			return nil, err
		}
	}
	dropped, err := s.dropLocations(ctx, id)
	res.LocationsDropped = dropped
	if err != nil {
		return nil, fmt.Errorf("remove node %s: dropped %d blob locations, then: %w", id, dropped, err)
	}
	if !inRaft && !inGossip && dropped == 0 {
		return nil, fmt.Errorf("%w: %s", api.ErrNodeUnknown, id)
	}
	if inGossip && (m.State == cluster.Alive || m.State == cluster.Suspect) {
		res.Warning = fmt.Sprintf("node %s is still %s in gossip: the leader adds it back to Raft while it runs; "+
			"stop it (or wipe and rejoin it) and remove it again once it is down", id, m.State)
	}
	return res, nil
}

// removeServer removes id from the Raft configuration: here when this node
// leads, else through the leader's internal API (one hop).
func (s *nodeStatus) removeServer(ctx context.Context, id string) error {
	n := s.n
	if n.cluster.IsLeader() || n.gossip == nil {
		return raftRemoveError(id, n.cluster.RemoveServer(ctx, id))
	}
	addr, err := n.leaderAPI()
	if err != nil {
		return fmt.Errorf("%w: %v", api.ErrUnavailable, err)
	}
	body, _ := json.Marshal(removeServerRequest{ID: id})
	fctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	resp, err := n.peers.do(fctx, http.MethodPost, addr, "remove-server", bytes.NewReader(body), int64(len(body)))
	if err != nil {
		return fmt.Errorf("%w: forward removal to the leader: %v", api.ErrUnavailable, err)
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	msg = bytes.TrimSpace(msg)
	switch resp.StatusCode {
	case http.StatusOK:
		return nil
	case http.StatusNotFound:
		return fmt.Errorf("remove server %s: %w", id, cluster.ErrUnknownServer)
	case http.StatusConflict:
		return fmt.Errorf("%w: %s", api.ErrNodeRemoveRefused, msg)
	}
	return fmt.Errorf("%w: leader answered %d: %s", api.ErrUnavailable, resp.StatusCode, msg)
}

// raftRemoveError turns cluster.RemoveServer's errors into the API's.
func raftRemoveError(id string, err error) error {
	switch {
	case err == nil, errors.Is(err, cluster.ErrUnknownServer):
		return err
	case errors.Is(err, cluster.ErrLastVoter):
		return fmt.Errorf("%w: %s is the last voter of the cluster", api.ErrNodeRemoveRefused, id)
	}
	return fmt.Errorf("%w: %v", api.ErrUnavailable, err)
}

type removeServerRequest struct {
	ID string `json:"id"`
}

// serveRemoveServer answers POST /internal/v1/remove-server on the leader: 200
// removed, 404 not in the configuration, 409 refused (last voter), 503 not the
// leader (it never forwards again) or no quorum.
func (s *nodeStatus) serveRemoveServer(w http.ResponseWriter, r *http.Request) {
	var req removeServerRequest
	if err := json.NewDecoder(io.LimitReader(r.Body, 4096)).Decode(&req); err != nil || req.ID == "" {
		http.Error(w, "body: {\"id\": NODE} expected", http.StatusBadRequest)
		return
	}
	if !s.n.cluster.IsLeader() {
		w.Header().Set("Retry-After", "1")
		http.Error(w, "not the leader", http.StatusServiceUnavailable)
		return
	}
	err := raftRemoveError(req.ID, s.n.cluster.RemoveServer(r.Context(), req.ID))
	switch {
	case err == nil:
		s.n.log.Info("removed a node from raft on request of a peer", "removed", req.ID)
		writeInternalJSON(w, map[string]string{"removed": req.ID})
	case errors.Is(err, cluster.ErrUnknownServer):
		http.Error(w, err.Error(), http.StatusNotFound)
	case errors.Is(err, api.ErrNodeRemoveRefused):
		http.Error(w, strings.TrimPrefix(err.Error(), api.ErrNodeRemoveRefused.Error()+": "), http.StatusConflict)
	default:
		w.Header().Set("Retry-After", "1")
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
	}
}

// dropLocations removes id from the locations of every blob that lists it and
// returns how many it changed. The replicator then brings those blobs back to
// their replica count on the remaining nodes.
func (s *nodeStatus) dropLocations(ctx context.Context, id string) (int, error) {
	n := s.n
	r := n.fsm.Reader()
	var held []meta.Digest
	err := meta.ScanBlobs(r, "", func(b *meta.Blob) error {
		nodes, err := meta.BlobLocations(r, b.Digest)
		if err != nil {
			return err
		}
		if slices.Contains(nodes, id) {
			held = append(held, b.Digest)
		}
		return ctx.Err()
	})
	if err != nil {
		return 0, fmt.Errorf("scan blob locations: %w", err)
	}
	var (
		mu      sync.Mutex // guards dropped and errs
		dropped int
		errs    []error
		wg      sync.WaitGroup
		work    = make(chan meta.Digest)
	)
	for range min(removeConcurrency, len(held)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for d := range work {
				err := n.Propose(ctx, &meta.SetBlobLocation{Digest: d, Node: id, Remove: true, Time: n.clock()})
				mu.Lock()
				if err == nil {
					dropped++
				} else if len(errs) < 3 {
					errs = append(errs, fmt.Errorf("%s: %w", d, err))
				}
				mu.Unlock()
			}
		}()
	}
	for _, d := range held {
		mu.Lock()
		failed := len(errs) > 0
		mu.Unlock()
		if failed || ctx.Err() != nil {
			break
		}
		work <- d
	}
	close(work)
	wg.Wait()
	if len(errs) == 0 && ctx.Err() != nil {
		errs = append(errs, ctx.Err())
	}
	if dropped < len(held) {
		return dropped, fmt.Errorf("%d of %d blob locations not dropped: %w", len(held)-dropped, len(held), errors.Join(errs...))
	}
	return dropped, nil
}

// Describe implements prometheus.Collector.
func (s *nodeStatus) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{s.diskCapacity, s.diskUsed, s.diskFree, s.storedBlobs, s.storedBytes} {
		ch <- d
	}
}

// Collect implements prometheus.Collector. A figure that cannot be read (no
// statfs on this platform, the first blob count still running after 5s) is
// left out of the scrape rather than reported as 0.
func (s *nodeStatus) Collect(ch chan<- prometheus.Metric) {
	if d, err := diskUsage(s.n.cfg.DataDir); err == nil {
		ch <- prometheus.MustNewConstMetric(s.diskCapacity, prometheus.GaugeValue, float64(d.CapacityBytes))
		ch <- prometheus.MustNewConstMetric(s.diskUsed, prometheus.GaugeValue, float64(d.UsedBytes))
		ch <- prometheus.MustNewConstMetric(s.diskFree, prometheus.GaugeValue, float64(d.FreeBytes))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if c, b, _, ok := s.blobCounts(ctx); ok {
		ch <- prometheus.MustNewConstMetric(s.storedBlobs, prometheus.GaugeValue, float64(c))
		ch <- prometheus.MustNewConstMetric(s.storedBytes, prometheus.GaugeValue, float64(b))
	}
}
