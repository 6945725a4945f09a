package node

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble"
	"github.com/opencontainers/go-digest"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/berth-registry/berth/api"
	"github.com/berth-registry/berth/blobstore"
	"github.com/berth-registry/berth/cluster"
	"github.com/berth-registry/berth/meta"
	"github.com/berth-registry/berth/meta/fsm"
)

// Node is one running Berth node. Create it with New, then Start; Shutdown stops
// it. Its methods are safe for concurrent use.
type Node struct {
	cfg     Config
	clock   func() time.Time
	log     *slog.Logger
	reg     *prometheus.Registry
	db      *pebble.DB
	fsm     *fsm.FSM
	cluster *cluster.Cluster
	blobs   *blobstore.Store
	api     *api.Server
	http    *http.Server
	// metricsHTTP serves /metrics on --metrics-listen; nil when unset.
	metricsHTTP *http.Server
	metrics     *nodeMetrics
	status      *nodeStatus // cluster status, node removal, disk and blob gauges
	peers       *peerClient
	fetches     fetchGroup
	reads       readBatcher
	tls         *tlsState      // certificates (tls.go)
	audit       *auditLog      // batches audit events into Raft (audit.go)
	gc          *gcState       // garbage collection: write gate, touched blobs, coordinator (gc.go)
	faults      *faultInjector // storage and clock faults: the chaos build only (faults.go); nil otherwise

	// internalToken is the node-to-node credential (from the cluster key; a
	// random one for a single node, whose internal API nobody else calls).
	internalToken string
	clusterKey    []byte
	gossip        *cluster.Gossip // nil for a single node

	mu       sync.Mutex // guards the fields below
	ln       net.Listener
	stopped  bool
	stopBG   context.CancelFunc
	bgDone   chan struct{}
	bgWG     sync.WaitGroup // the reconciler and the replicator
	draining atomic.Bool
	readyz   diskCheck // the data disk probe of /readyz (ready.go)
	serveErr chan error
}

// New opens the node's stores and joins (or bootstraps) its cluster. It does not
// listen yet; Start does.
func New(cfg Config, logger *slog.Logger) (*Node, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(cfg.DataDir, 0o750); err != nil {
		return nil, fmt.Errorf("node: data dir: %w", err)
	}
	n := &Node{cfg: cfg, clock: time.Now, log: logger, reg: prometheus.NewRegistry()}
	if cfg.Clock != nil {
		n.clock = cfg.Clock
	}
	n.fetches.inflight = map[digest.Digest]*fetchCall{}
	n.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	var err error
	if n.faults, err = newFaultInjector(n.reg); err != nil {
		return nil, err
	}
	n.clock = n.faults.clock(n.clock) // with the chaos build's offset; unchanged otherwise
	if n.metrics, err = newNodeMetrics(n.reg); err != nil {
		return nil, err
	}
	n.reg.MustRegister(newWorkspaceUsage(n))
	if n.status, err = newNodeStatus(n, n.reg); err != nil {
		return nil, err
	}
	if n.gc, err = newGCState(n, n.reg); err != nil {
		return nil, err
	}
	if cfg.clustered() {
		if n.clusterKey, err = cfg.loadClusterKey(); err != nil {
			return nil, err
		}
	} else {
		n.clusterKey = make([]byte, 32)
		_, _ = rand.Read(n.clusterKey)
	}
	if n.tls, err = newTLSState(cfg, n.clock, logger.With("component", "tls"), n.reg); err != nil {
		return nil, err
	}
	n.internalToken = internalToken(n.clusterKey)
	n.peers = &peerClient{http: &http.Client{Transport: &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 3 * time.Second, KeepAlive: 15 * time.Second}).DialContext,
		MaxIdleConnsPerHost: 16, IdleConnTimeout: time.Minute, ResponseHeaderTimeout: time.Minute,
		TLSClientConfig: n.tls.peerClientConfig(),
	}}, token: n.internalToken, scheme: n.tls.peerScheme()}
	ok := false
	defer func() {
		if !ok {
			n.closeStores()
		}
	}()
	// FS is nil (the OS's) except in the chaos build, which injects faults.
	// A failed write or sync of Pebble's WAL is fatal: the commit pipeline
	// cannot go on after it (fsyncgate: retrying an fsync may report success
	// for lost data), so Pebble calls Logger.Fatalf ("pebble: fatal commit
	// error"), and pebbleLogger exits the process with status 1. Every Raft
	// log append and FSM batch goes through that WAL, so the node fails stop
	// before it acknowledges the write; a restart replays the WAL, which after
	// a failed sync may still hold the unacknowledged write from the page
	// cache (TestFaultMetaWriteKillsNode).
	db, err := pebble.Open(filepath.Join(cfg.DataDir, "meta"), &pebble.Options{Logger: pebbleLogger{logger}, FS: n.faults.pebbleFS()})
	if err != nil {
		return nil, fmt.Errorf("node: open metadata store: %w", err)
	}
	n.db = db
	if n.fsm, err = fsm.New(db, logger.With("component", "fsm")); err != nil {
		return nil, err
	}
	// Only a node that joins nobody bootstraps; the others wait for the leader
	// to add them. A node with Raft state ignores Bootstrap and rejoins.
	raftServerTLS, raftClientTLS := n.tls.raftConfigs()
	n.cluster, err = cluster.New(cluster.Config{
		NodeID:     cfg.NodeID,
		DataDir:    cfg.DataDir,
		RaftListen: cfg.RaftListen,
		Advertise:  cfg.RaftAdvertise,
		Bootstrap:  len(cfg.Join) == 0,

		SnapshotThreshold: cfg.RaftSnapshotThreshold,
		SnapshotInterval:  cfg.RaftSnapshotInterval,
		TrailingLogs:      cfg.RaftTrailingLogs,

		ServerTLS: raftServerTLS, ClientTLS: raftClientTLS,
	}, n.fsm, db, logger.With("component", "raft"), n.reg)
	if err != nil {
		return nil, err
	}
	// The store keeps blobs/ and uploads/ under the data directory.
	n.blobs, err = blobstore.Open(cfg.DataDir, blobstore.Options{
		Clock:      n.clock,
		UploadTTL:  cfg.UploadTTL,
		Logger:     logger.With("component", "blobstore"),
		Registerer: n.reg,
		Faults:     n.faults.blobFaults(), // nil except in the chaos build
	})
	if err != nil {
		return nil, err
	}
	if n.audit, err = newAuditLog(cfg, n.clock, n.Propose, logger.With("component", "audit"), n.reg); err != nil {
		return nil, err
	}
	var apiCluster api.Cluster // nil for a single node: no peers, no stale reads
	if cfg.clustered() {
		apiCluster = clusterView{n}
	}
	n.api, err = api.New(api.Config{
		NodeID:        cfg.NodeID,
		Logger:        logger.With("component", "api"),
		Registerer:    n.reg,
		Ready:         n.ready,
		Clock:         n.clock,
		TokenTTL:      cfg.TokenTTL,
		AnonymousPull: cfg.AnonymousPull,
		ExternalURL:   cfg.ExternalURL,
		Import:        api.ImportLimits{MaxBytes: cfg.ImportMaxBytes, MaxEntries: cfg.ImportMaxEntries},
		PeerTLS:       n.tls.peerClientConfig(),
	}, api.Deps{
		Cluster:  apiCluster,
		Meta:     n.fsm.Reader(),
		Proposer: proposer{n},
		Blobs:    blobsAdapter{n},

		ClusterAdmin: n.status,
		Audit:        n.audit,
		Backup:       backupServer{n},
		Fsck:         n,
	})
	if err != nil {
		return nil, err
	}
	metrics := promhttp.HandlerFor(n.reg, promhttp.HandlerOpts{Registry: n.reg})
	// No http.ServeMux: it would clean and redirect paths such as /v2/a/../b,
	// which the registry must refuse as invalid names instead.
	// With a separate metrics address, /metrics is served only there.
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/metrics" && cfg.MetricsListen == "" {
			metrics.ServeHTTP(w, r)
			return
		}
		if strings.HasPrefix(r.URL.Path, internalPrefix) {
			n.serveInternal(w, r)
			return
		}
		n.api.ServeHTTP(w, r)
	})
	n.http = &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
		TLSConfig:         n.tls.serverConfig(), // nil: plain HTTP
	}
	if cfg.MetricsListen != "" {
		n.metricsHTTP = &http.Server{
			Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path != "/metrics" {
					http.NotFound(w, r)
					return
				}
				metrics.ServeHTTP(w, r)
			}),
			ReadHeaderTimeout: 10 * time.Second,
		}
	}
	ok = true
	return n, nil
}

// Start listens on the configured address and serves until Shutdown.
func (n *Node) Start(ctx context.Context) error {
	ln, err := net.Listen("tcp", n.cfg.Listen)
	if err != nil {
		return fmt.Errorf("node: listen: %w", err)
	}
	bgctx, stop := context.WithCancel(context.Background())
	ok := false
	defer func() {
		if !ok {
			stop()
			ln.Close()
		}
	}()
	if n.cfg.clustered() {
		if err := n.startGossip(bgctx, ln.Addr().String()); err != nil {
			return err
		}
	}
	wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	if err := n.cluster.WaitLeader(wctx); err != nil {
		return fmt.Errorf("node: waiting for a raft leader: %w", err)
	}
	if n.cluster.IsLeader() {
		if err := n.bootstrap(wctx); err != nil {
			return err
		}
	}
	plain, err := n.listenPlain()
	if err != nil {
		return err
	}
	if n.metricsHTTP != nil {
		mln, err := net.Listen("tcp", n.cfg.MetricsListen)
		if err != nil {
			if plain != nil {
				plain.Close()
			}
			return fmt.Errorf("node: metrics listener: %w", err)
		}
		go func() {
			if err := n.metricsHTTP.Serve(mln); !errors.Is(err, http.ErrServerClosed) {
				n.log.Error("metrics listener stopped", "err", err)
			}
		}()
	}
	ok = true
	n.mu.Lock()
	n.ln = ln
	n.stopBG = stop
	n.bgDone = make(chan struct{})
	n.serveErr = make(chan error, 2) // the HTTPS and the plain listener
	n.mu.Unlock()
	go n.background(bgctx)
	go n.audit.run(bgctx)
	n.bgWG.Add(1)
	go func() {
		defer n.bgWG.Done()
		n.gcLoop(bgctx)
	}()
	go n.serve(ln, plain)
	if n.gossip != nil {
		n.bgWG.Add(2)
		go func() {
			defer n.bgWG.Done()
			n.cluster.RunReconciler(bgctx, n.gossip, cluster.MembershipConfig{MaxVoters: n.cfg.MaxVoters, DeadNodeTimeout: n.cfg.DeadNodeTimeout})
		}()
		go func() {
			defer n.bgWG.Done()
			n.replicateLoop(bgctx)
		}()
	}
	n.log.Info("serving", "addr", ln.Addr().String(), "node", n.cfg.NodeID, "data_dir", n.cfg.DataDir)
	return nil
}

// Addr is the address the API listens on, once started.
func (n *Node) Addr() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.ln == nil {
		return ""
	}
	return n.ln.Addr().String()
}

// Done returns a channel that receives the HTTP server's error if it stops
// serving on its own.
func (n *Node) Done() <-chan error { return n.serveErr }

// background runs the node's housekeeping: upload sessions idle past their TTL
// are removed by their owner.
func (n *Node) background(ctx context.Context) {
	defer close(n.bgDone)
	t := time.NewTicker(time.Minute)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if c, err := n.blobs.ExpireUploads(); err != nil {
				n.log.Warn("expire uploads", "err", err)
			} else if c > 0 {
				n.log.Info("expired upload sessions", "count", c)
			}
		}
	}
}

// Shutdown stops taking requests, lets in-flight ones finish (bounded by ctx),
// then stops Raft and closes the stores. It is idempotent.
func (n *Node) Shutdown(ctx context.Context) error {
	n.mu.Lock()
	if n.stopped {
		n.mu.Unlock()
		return nil
	}
	n.stopped = true
	started := n.ln != nil
	n.mu.Unlock()
	var errs []error
	if started {
		// Drain: tell the others, stop taking requests and let in-flight ones
		// finish, hand off leadership, leave gossip, then stop.
		n.draining.Store(true)
		if n.gossip != nil {
			_ = n.gossip.SetDraining(true)
		}
		if n.metricsHTTP != nil {
			_ = n.metricsHTTP.Close()
		}
		if err := n.http.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("http shutdown: %w", err))
			n.http.Close()
		}
		n.audit.stop(ctx) // the events of the requests that just finished
		if n.gossip != nil {
			if err := n.cluster.TransferLeadership(ctx); err != nil {
				n.log.Warn("drain: leadership transfer", "err", err)
			}
			if err := n.gossip.Leave(5 * time.Second); err != nil {
				n.log.Warn("drain: leave gossip", "err", err)
			}
		}
		n.stopBG()
		<-n.bgDone
		n.bgWG.Wait()
	}
	errs = append(errs, n.closeStores())
	return errors.Join(errs...)
}

func (n *Node) closeStores() error {
	var errs []error
	if n.gossip != nil {
		if err := n.gossip.Shutdown(); err != nil {
			errs = append(errs, err)
		}
	}
	if n.cluster != nil {
		if err := n.cluster.Shutdown(); err != nil {
			errs = append(errs, err)
		}
	}
	if n.blobs != nil {
		if err := n.blobs.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	if n.db != nil {
		if err := n.db.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close metadata store: %w", err))
		}
		n.db = nil
	}
	return errors.Join(errs...)
}

// proposer adapts the node to api.Proposer.
type proposer struct{ n *Node }

func (p proposer) Propose(ctx context.Context, c meta.Command) error { return p.n.Propose(ctx, c) }

// Propose commits a metadata command through Raft and returns once it is applied
// on this node, with the command's domain error if it was refused.
func (n *Node) Propose(ctx context.Context, c meta.Command) error {
	if pb, ok := c.(*meta.PutBlob); ok && len(pb.Nodes) == 0 {
		nodes, err := n.placeNewBlob(ctx, pb)
		if err != nil {
			return err
		}
		pb.Nodes = nodes
	}
	data, err := meta.Encode(c)
	if err != nil {
		return err
	}
	// A garbage collection sweep pauses writes: wait for it (gc.go).
	release, err := n.gc.admit(ctx)
	if err != nil {
		return err
	}
	defer release()
	if n.gossip != nil && !n.cluster.IsLeader() {
		n.metrics.forwarded.Inc()
		fctx, cancel := context.WithTimeout(ctx, 12*time.Second)
		defer cancel()
		return n.forwardPropose(fctx, data)
	}
	resp, _, err := n.cluster.Propose(ctx, data)
	if errors.Is(err, cluster.ErrNotLeader) || errors.Is(err, cluster.ErrNoLeader) ||
		errors.Is(err, cluster.ErrLeadershipLost) || errors.Is(err, cluster.ErrShutdown) {
		return fmt.Errorf("%w: %v", api.ErrUnavailable, err)
	}
	if err != nil {
		return err
	}
	if err, ok := resp.(error); ok {
		return err
	}
	return nil
}

// placeNewBlob makes sure a blob that is about to be recorded is on
// MinReplicas nodes. A blob the cluster already records (a mount, a re-push)
// keeps its locations.
func (n *Node) placeNewBlob(ctx context.Context, pb *meta.PutBlob) ([]string, error) {
	if nodes, err := meta.BlobLocations(n.fsm.Reader(), pb.Digest); err == nil && len(nodes) > 0 {
		return nil, nil
	}
	if _, err := n.blobs.Stat(digest.Digest(pb.Digest)); err != nil {
		return nil, fmt.Errorf("node: record blob %s: not on this node: %w", pb.Digest, err)
	}
	return n.ensureReplicas(ctx, digest.Digest(pb.Digest), pb.Size)
}

// blobsAdapter adapts the node's blob store to api.Blobs; a blob the cluster
// has and this node lacks is fetched from the nearest holder on Open. Every
// check (Stat: a mount), read (Open), and write (Put, Commit) of a digest
// touches it first, for garbage collection (gc.go).
type blobsAdapter struct{ n *Node }

var _ api.BlobToucher = blobsAdapter{}

func (b blobsAdapter) Touch(ctx context.Context, d digest.Digest) { b.n.gc.touch(ctx, d) }
func (b blobsAdapter) Stat(d digest.Digest) (int64, error) {
	b.n.gc.touch(context.Background(), d)
	return b.n.blobs.Stat(d)
}
func (b blobsAdapter) Open(d digest.Digest) (*os.File, error) {
	b.n.gc.touch(context.Background(), d)
	return b.n.openBlob(d)
}
func (b blobsAdapter) Put(ctx context.Context, r io.Reader, d digest.Digest) (int64, error) {
	b.n.gc.touch(ctx, d)
	return b.n.blobs.Put(ctx, r, d)
}
func (b blobsAdapter) NewUpload(id string, algs ...digest.Algorithm) (api.Upload, error) {
	u, err := b.n.blobs.NewUpload(id, algs...)
	if err != nil {
		return nil, err
	}
	return touchingUpload{u, b.n}, nil
}
func (b blobsAdapter) Upload(id string) (api.Upload, error) {
	u, err := b.n.blobs.Upload(id)
	if err != nil {
		return nil, err
	}
	return touchingUpload{u, b.n}, nil
}

// touchingUpload is an upload session whose Commit touches its digest first.
type touchingUpload struct {
	*blobstore.Upload
	n *Node
}

func (u touchingUpload) Commit(ctx context.Context, expected digest.Digest, expectedSize int64) (int64, error) {
	u.n.gc.touch(ctx, expected)
	return u.Upload.Commit(ctx, expected, expectedSize)
}

// pebbleLogger sends Pebble's log lines to slog.
type pebbleLogger struct{ l *slog.Logger }

func (p pebbleLogger) Infof(format string, args ...any) {
	p.l.Debug(fmt.Sprintf(format, args...), "component", "pebble")
}
func (p pebbleLogger) Errorf(format string, args ...any) {
	p.l.Error(fmt.Sprintf(format, args...), "component", "pebble")
}
func (p pebbleLogger) Fatalf(format string, args ...any) {
	p.l.Error(fmt.Sprintf(format, args...), "component", "pebble")
	os.Exit(1)
}
