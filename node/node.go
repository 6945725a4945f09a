package node

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
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
	log     *slog.Logger
	reg     *prometheus.Registry
	db      *pebble.DB
	fsm     *fsm.FSM
	cluster *cluster.Cluster
	blobs   *blobstore.Store
	api     *api.Server
	http    *http.Server

	mu       sync.Mutex // guards the fields below
	ln       net.Listener
	stopped  bool
	stopBG   context.CancelFunc
	bgDone   chan struct{}
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
	n := &Node{cfg: cfg, log: logger, reg: prometheus.NewRegistry()}
	n.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	ok := false
	defer func() {
		if !ok {
			n.closeStores()
		}
	}()
	db, err := pebble.Open(filepath.Join(cfg.DataDir, "meta"), &pebble.Options{Logger: pebbleLogger{logger}})
	if err != nil {
		return nil, fmt.Errorf("node: open metadata store: %w", err)
	}
	n.db = db
	if n.fsm, err = fsm.New(db, logger.With("component", "fsm")); err != nil {
		return nil, err
	}
	n.cluster, err = cluster.New(cluster.Config{
		NodeID:     cfg.NodeID,
		DataDir:    cfg.DataDir,
		RaftListen: cfg.RaftListen,
		Bootstrap:  true,
	}, n.fsm, db, logger.With("component", "raft"), n.reg)
	if err != nil {
		return nil, err
	}
	n.blobs, err = blobstore.Open(filepath.Join(cfg.DataDir, "blobs"), blobstore.Options{
		UploadTTL:  cfg.UploadTTL,
		Logger:     logger.With("component", "blobstore"),
		Registerer: n.reg,
	})
	if err != nil {
		return nil, err
	}
	n.api, err = api.New(api.Config{
		NodeID:     cfg.NodeID,
		Logger:     logger.With("component", "api"),
		Registerer: n.reg,
		Ready:      n.ready,
	}, api.Deps{
		Meta:     n.fsm.Reader(),
		Proposer: proposer{n},
		Blobs:    blobsAdapter{n.blobs},
	})
	if err != nil {
		return nil, err
	}
	metrics := promhttp.HandlerFor(n.reg, promhttp.HandlerOpts{Registry: n.reg})
	// No http.ServeMux: it would clean and redirect paths such as /v2/a/../b,
	// which the registry must refuse as invalid names instead.
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/metrics" {
			metrics.ServeHTTP(w, r)
			return
		}
		n.api.ServeHTTP(w, r)
	})
	n.http = &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
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
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := n.cluster.WaitLeader(wctx); err != nil {
		ln.Close()
		return fmt.Errorf("node: waiting for a raft leader: %w", err)
	}
	bgctx, stop := context.WithCancel(context.Background())
	n.mu.Lock()
	n.ln = ln
	n.stopBG = stop
	n.bgDone = make(chan struct{})
	n.serveErr = make(chan error, 1)
	n.mu.Unlock()
	go n.background(bgctx)
	go func() { n.serveErr <- n.http.Serve(ln) }()
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

func (n *Node) ready() error {
	if _, id := n.cluster.Leader(); id == "" {
		return errors.New("no raft leader")
	}
	return nil
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
		if err := n.http.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("http shutdown: %w", err))
			n.http.Close()
		}
		n.stopBG()
		<-n.bgDone
	}
	errs = append(errs, n.closeStores())
	return errors.Join(errs...)
}

func (n *Node) closeStores() error {
	var errs []error
	if n.cluster != nil {
		if err := n.cluster.Shutdown(); err != nil {
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

// proposer adapts the cluster to api.Proposer.
type proposer struct{ n *Node }

func (p proposer) Propose(ctx context.Context, c meta.Command) error {
	data, err := meta.Encode(c)
	if err != nil {
		return err
	}
	resp, _, err := p.n.cluster.Propose(ctx, data)
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

// blobsAdapter adapts blobstore.Store to api.Blobs.
type blobsAdapter struct{ s *blobstore.Store }

func (b blobsAdapter) Stat(d digest.Digest) (int64, error)    { return b.s.Stat(d) }
func (b blobsAdapter) Open(d digest.Digest) (*os.File, error) { return b.s.Open(d) }
func (b blobsAdapter) Put(ctx context.Context, r io.Reader, d digest.Digest) (int64, error) {
	return b.s.Put(ctx, r, d)
}
func (b blobsAdapter) NewUpload(id string, algs ...digest.Algorithm) (api.Upload, error) {
	u, err := b.s.NewUpload(id, algs...)
	if err != nil {
		return nil, err
	}
	return u, nil
}
func (b blobsAdapter) Upload(id string) (api.Upload, error) {
	u, err := b.s.Upload(id)
	if err != nil {
		return nil, err
	}
	return u, nil
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
