package node

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/berth-registry/berth/api"
	"github.com/berth-registry/berth/cluster"
	"github.com/berth-registry/berth/meta"
)

// The internal API is how nodes talk to each other over HTTP, on the same
// listener as the registry API under /internal/v1/. Every call carries the
// cluster's credential, derived from the cluster key; a caller without it gets
// 401 and nothing else.
//
//	POST /internal/v1/propose          body: an encoded meta command; the leader applies it
//	GET  /internal/v1/read-index       the leader's applied index after a barrier (Raft's ReadIndex)
//	GET  /internal/v1/state-digest     this node's applied index and a digest of its metadata
//	PUT  /internal/v1/blobs/<digest>   store a replica of a blob (verified while it streams)
//	GET  /internal/v1/blobs/<digest>   read this node's copy of a blob
//	GET  /internal/v1/local-status     this node's own figures for the cluster status (status.go)
//	POST /internal/v1/remove-server    body {"id": NODE}; the leader removes it from Raft (status.go)
//	POST /internal/v1/gc/begin?run=ID  a garbage collection run began (gc.go)
//	GET  /internal/v1/gc/touched?run=ID&index=N  once index is applied: digests touched since (gc.go)
//	POST /internal/v1/fsck?repair=1     check (and repair) this node's blob files (fsck.go)
//	GET, PUT, DELETE /internal/v1/faults  fault injection, in the chaos build only (faults.go)
const internalPrefix = "/internal/v1/"

// maxCommandBytes bounds a forwarded command: a 4 MiB manifest, JSON-encoded.
const maxCommandBytes = 8 << 20

// internalToken derives the internal credential from the cluster key.
func internalToken(key []byte) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte("berth internal api v1"))
	return hex.EncodeToString(m.Sum(nil))
}

func (n *Node) internalAuthorized(r *http.Request) bool {
	if n.tls.mutual() && !peerVerified(r) {
		return false // with mutual TLS, also a client certificate of the cluster CA (tls.go)
	}
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Berth-Cluster ")
	return ok && subtle.ConstantTimeCompare([]byte(got), []byte(n.internalToken)) == 1
}

type proposeResult struct {
	Index   uint64 `json:"index"`
	Code    string `json:"code,omitempty"`    // a meta domain error code
	Message string `json:"message,omitempty"` // its message
}

// serveInternal handles /internal/v1/.
func (n *Node) serveInternal(w http.ResponseWriter, r *http.Request) {
	if !n.internalAuthorized(r) {
		http.Error(w, "cluster credentials required", http.StatusUnauthorized)
		return
	}
	path := strings.TrimPrefix(r.URL.Path, internalPrefix)
	switch {
	case path == "propose" && r.Method == http.MethodPost:
		n.servePropose(w, r)
	case path == "read-index" && r.Method == http.MethodGet:
		n.serveReadIndex(w, r)
	case path == "state-digest" && r.Method == http.MethodGet:
		index, sum, err := n.fsm.StateDigest()
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		writeInternalJSON(w, map[string]any{"node": n.cfg.NodeID, "index": index, "digest": hex.EncodeToString(sum[:])})
	case path == "local-status" && r.Method == http.MethodGet:
		n.status.serveLocalStatus(w, r)
	case path == "remove-server" && r.Method == http.MethodPost:
		n.status.serveRemoveServer(w, r)
	case path == "gc/begin" && r.Method == http.MethodPost:
		n.serveGCBegin(w, r)
	case path == "gc/touched" && r.Method == http.MethodGet:
		n.serveGCTouched(w, r)
	case path == "fsck" && r.Method == http.MethodPost:
		n.serveFsck(w, r)
	case faultsEnabled && path == "faults":
		n.serveFaults(w, r)
	case strings.HasPrefix(path, "blobs/") && (r.Method == http.MethodPut || r.Method == http.MethodGet || r.Method == http.MethodHead):
		d, err := meta.ParseDigest(strings.TrimPrefix(path, "blobs/"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if r.Method == http.MethodPut {
			n.serveReceiveBlob(w, r, digest.Digest(d))
		} else {
			n.serveLocalBlob(w, r, digest.Digest(d))
		}
	default:
		http.Error(w, "no such internal endpoint", http.StatusNotFound)
	}
}

// servePropose applies a command forwarded by a follower. The leader never
// forwards again (at most one hop): a node that is not the leader answers 503.
func (n *Node) servePropose(w http.ResponseWriter, r *http.Request) {
	data, err := io.ReadAll(io.LimitReader(r.Body, maxCommandBytes+1))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if len(data) > maxCommandBytes {
		http.Error(w, "command too large", http.StatusRequestEntityTooLarge)
		return
	}
	if _, err := meta.Decode(data); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	// A garbage collection sweep pauses writes: wait for it (gc.go).
	release, err := n.gc.admit(r.Context())
	if err != nil {
		w.Header().Set("Retry-After", "1")
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
		return
	}
	defer release()
	resp, index, err := n.cluster.Propose(r.Context(), data)
	if err != nil {
		w.Header().Set("Retry-After", "1")
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
		return
	}
	out := proposeResult{Index: index}
	if rerr, ok := resp.(error); ok {
		out.Code, out.Message = meta.ErrorCode(rerr), rerr.Error()
	}
	writeInternalJSON(w, out)
}

func (n *Node) serveReadIndex(w http.ResponseWriter, r *http.Request) {
	if !n.cluster.IsLeader() {
		http.Error(w, "not the leader", http.StatusServiceUnavailable)
		return
	}
	if err := n.cluster.VerifyLeader(r.Context()); err != nil {
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
		return
	}
	if r.URL.Query().Get("nudge") == "1" {
		// The asking follower has the entries but not their commit: a no-op
		// entry carries the commit index to it (meta.Noop).
		if err := n.Propose(r.Context(), &meta.Noop{}); err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
	}
	writeInternalJSON(w, proposeResult{Index: n.cluster.AppliedIndex()})
}

func writeInternalJSON(w http.ResponseWriter, v any) {
	b, _ := json.Marshal(v)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	_, _ = w.Write(b)
}

// serveReceiveBlob stores a replica pushed by a peer; the store verifies the
// digest while the bytes stream in, so a corrupt copy is never kept.
func (n *Node) serveReceiveBlob(w http.ResponseWriter, r *http.Request, d digest.Digest) {
	n.gc.touch(r.Context(), d) // a replica of a push racing a file delete keeps its file
	if size, err := n.blobs.Stat(d); err == nil {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("X-Berth-Size", strconv.FormatInt(size, 10))
		w.WriteHeader(http.StatusOK)
		return
	}
	if _, err := n.blobs.Put(r.Context(), r.Body, d); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	n.metrics.replicaReceived.Inc()
	w.WriteHeader(http.StatusCreated)
}

func (n *Node) serveLocalBlob(w http.ResponseWriter, r *http.Request, d digest.Digest) {
	f, err := n.blobs.Open(d)
	if err != nil {
		http.Error(w, "blob not on this node", http.StatusNotFound)
		return
	}
	defer f.Close()
	w.Header().Set("Content-Type", "application/octet-stream")
	http.ServeContent(w, r, "", time.Time{}, f)
}

// peerClient calls other nodes' internal API.
type peerClient struct {
	http   *http.Client
	token  string
	scheme string // "https" with mutual TLS (tls.go), else "http"
}

func (c *peerClient) do(ctx context.Context, method, addr, path string, body io.Reader, size int64) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.scheme+"://"+addr+internalPrefix+path, body)
	if err != nil {
		return nil, err
	}
	if size >= 0 {
		req.ContentLength = size
	}
	req.Header.Set("Authorization", "Berth-Cluster "+c.token)
	return c.http.Do(req)
}

// errNoLeaderAddr: the leader is known to Raft but not (yet) to gossip.
var errNoLeaderAddr = errors.New("node: leader address unknown")

// leaderAPI returns the leader's internal API address.
func (n *Node) leaderAPI() (string, error) {
	_, id := n.cluster.Leader()
	if id == "" {
		return "", cluster.ErrNoLeader
	}
	addr, ok := n.lastAPI(id)
	if !ok {
		return "", errNoLeaderAddr
	}
	return addr, nil
}

// forwardPropose sends an encoded command to the leader and waits until this
// node has applied it, so the node that answers the client already serves what
// it stored (read-your-writes).
func (n *Node) forwardPropose(ctx context.Context, data []byte) error {
	addr, err := n.leaderAPI()
	if err != nil {
		return fmt.Errorf("%w: %v", api.ErrUnavailable, err)
	}
	resp, err := n.peers.do(ctx, http.MethodPost, addr, "propose", bytes.NewReader(data), int64(len(data)))
	if err != nil {
		return fmt.Errorf("%w: forward to leader: %v", api.ErrUnavailable, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return fmt.Errorf("%w: leader answered %d: %s", api.ErrUnavailable, resp.StatusCode, bytes.TrimSpace(msg))
	}
	var out proposeResult
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return fmt.Errorf("%w: leader's answer: %v", api.ErrUnavailable, err)
	}
	if err := n.cluster.WaitApplied(ctx, out.Index); err != nil {
		return fmt.Errorf("%w: waiting to apply %d: %v", api.ErrUnavailable, out.Index, err)
	}
	if out.Code != "" || out.Message != "" {
		return meta.ErrorFromCode(out.Code, out.Message)
	}
	return nil
}

// ReadBarrier makes this node's state at least as new as the leader's at the
// time of the call (Raft's ReadIndex over the internal API). A local read that
// misses calls it before answering 404, so a follower never says "unknown" from
// stale state.
//
// Concurrent callers share rounds, as etcd batches its linearizable reads: a
// caller waits for the next round that starts after it arrived, so one leader
// round trip serves every read that queued meanwhile.
func (n *Node) ReadBarrier(ctx context.Context) error {
	ch := make(chan error, 1)
	b := &n.reads
	b.mu.Lock()
	b.waiting = append(b.waiting, ch)
	if !b.running {
		b.running = true
		go n.readRounds()
	}
	b.mu.Unlock()
	select {
	case err := <-ch:
		return err
	case <-ctx.Done():
		return fmt.Errorf("%w: read barrier: %v", api.ErrUnavailable, ctx.Err())
	}
}

// readBatcher queues the callers of ReadBarrier for the next round.
type readBatcher struct {
	mu      sync.Mutex // guards the fields below
	waiting []chan error
	running bool
}

func (n *Node) readRounds() {
	b := &n.reads
	for {
		b.mu.Lock()
		batch := b.waiting
		b.waiting = nil
		if len(batch) == 0 {
			b.running = false
			b.mu.Unlock()
			return
		}
		b.mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := n.readBarrierOnce(ctx)
		cancel()
		n.metrics.readBarriers.Inc()
		for _, ch := range batch {
			ch <- err
		}
	}
}

func (n *Node) readBarrierOnce(ctx context.Context) error {
	if n.cluster.IsLeader() {
		if err := n.cluster.VerifyLeader(ctx); err != nil {
			return fmt.Errorf("%w: %v", api.ErrUnavailable, err)
		}
		return nil
	}
	index, err := n.readIndex(ctx, "read-index")
	if err != nil {
		return err
	}
	// hashicorp/raft tells a follower a new commit index only with the next
	// entry it sends (heartbeats do not carry it): after a quiet spell this
	// node may hold the entry at index without knowing it is committed, and
	// would wait for the next write. After a short wait, ask the leader for a
	// no-op entry that carries the commit.
	wctx, cancel := context.WithTimeout(ctx, nudgeAfter)
	err = n.cluster.WaitApplied(wctx, index)
	cancel()
	if err != nil && ctx.Err() == nil {
		n.metrics.readNudges.Inc()
		if index, err = n.readIndex(ctx, "read-index?nudge=1"); err != nil {
			return err
		}
		err = n.cluster.WaitApplied(ctx, index)
	}
	if err != nil {
		return fmt.Errorf("%w: catching up to %d: %v", api.ErrUnavailable, index, err)
	}
	return nil
}

// nudgeAfter is how long a follower's read waits to apply the leader's read
// index before it asks the leader for a no-op entry.
const nudgeAfter = 250 * time.Millisecond

// readIndex asks the leader for its read index (path: read-index, with
// ?nudge=1 to have it append a no-op first).
func (n *Node) readIndex(ctx context.Context, path string) (uint64, error) {
	addr, err := n.leaderAPI()
	if err != nil {
		return 0, fmt.Errorf("%w: %v", api.ErrUnavailable, err)
	}
	resp, err := n.peers.do(ctx, http.MethodGet, addr, path, nil, -1)
	if err != nil {
		return 0, fmt.Errorf("%w: read index: %v", api.ErrUnavailable, err)
	}
	defer resp.Body.Close()
	var out proposeResult
	if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&out) != nil {
		return 0, fmt.Errorf("%w: read index: leader answered %d", api.ErrUnavailable, resp.StatusCode)
	}
	return out.Index, nil
}

// clusterView adapts the node to api.Cluster.
type clusterView struct{ n *Node }

func (c clusterView) PeerAPI(id string) (string, bool)      { return c.n.peerAPI(id) }
func (c clusterView) ReadBarrier(ctx context.Context) error { return c.n.ReadBarrier(ctx) }
