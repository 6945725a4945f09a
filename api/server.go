package api

import (
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httputil"
	"strconv"
	"strings"
	"time"

	"github.com/julienschmidt/httprouter"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/berth-registry/berth/meta"
)

// Config configures a Server.
type Config struct {
	NodeID           string // prefix of upload ids: the node that owns a session
	MaxManifestBytes int64  // default 4 MiB
	Clock            func() time.Time
	Logger           *slog.Logger
	Registerer       prometheus.Registerer // nil: no metrics
	// Ready reports whether the node should get traffic (not draining, has a
	// leader, applied index close to the commit index, data disk writable with
	// room left); /readyz answers 503 with the error otherwise. nil: always
	// ready. /healthz answers 200 whenever the process serves HTTP.
	Ready func() error

	// PeerTLS, when set, is the client TLS configuration of calls to other
	// nodes (the upload proxy): HTTPS with this node's cluster certificate,
	// verified against the cluster CA.
	PeerTLS *tls.Config

	// Service is the token service name (the JWT audience and the challenge's
	// service); default "berth".
	Service string
	// ExternalURL, when set, is the base of the token realm (for a load balancer
	// that rewrites hosts); otherwise the realm is built from the request's Host.
	ExternalURL string
	// TokenTTL is the lifetime of issued tokens; default 5 minutes. Removing a
	// member or disabling a user takes effect by the next token.
	TokenTTL time.Duration
	// AnonymousPull lets requests without credentials pull from public workspaces.
	AnonymousPull bool
	// Import bounds archive imports (POST /api/v1/workspaces/:workspace/import).
	Import ImportLimits
}

// Deps are the Server's collaborators.
type Deps struct {
	Cluster  Cluster // nil for a single node
	Meta     meta.Reader
	Proposer Proposer
	Blobs    Blobs
	// ClusterAdmin serves the cluster routes (GET /api/v1/cluster, node
	// removal); nil: they answer 501.
	ClusterAdmin ClusterAdmin
	// Audit receives the audit events of requests (audit.go); nil: nothing
	// is audited.
	Audit Auditor
	// Backup serves the backup routes; nil: they answer 501.
	Backup Backup
	// Fsck serves POST /api/v1/fsck; nil: it answers 501.
	Fsck Fscker
}

// Server serves the registry's HTTP API. It is safe for concurrent use.
type Server struct {
	cfg     Config
	meta    meta.Reader
	propose Proposer
	blobs   Blobs
	auth    *authState
	log     *slog.Logger
	metrics *metrics
	router  *httprouter.Router
	cluster Cluster
	// clusterAdmin serves the cluster routes; nil: they answer 501.
	clusterAdmin ClusterAdmin
	// audit receives audit events; nil: none are recorded.
	audit Auditor
	// backup serves the backup routes; nil: they answer 501.
	backup Backup
	// fsckRunner serves POST /api/v1/fsck; nil: it answers 501.
	fsckRunner Fscker
	// uploadProxy streams requests for another node's upload sessions to it.
	uploadProxy *httputil.ReverseProxy
}

// New returns a Server.
func New(cfg Config, deps Deps) (*Server, error) {
	if cfg.MaxManifestBytes <= 0 {
		cfg.MaxManifestBytes = 4 << 20
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.NodeID == "" || !validUploadIDPart(cfg.NodeID) {
		return nil, errors.New("api: node id must be non-empty and use only [A-Za-z0-9_-]")
	}
	if deps.Meta == nil || deps.Proposer == nil || deps.Blobs == nil {
		return nil, errors.New("api: Meta, Proposer and Blobs are required")
	}
	if cfg.Service == "" {
		cfg.Service = "berth"
	}
	if cfg.TokenTTL <= 0 {
		cfg.TokenTTL = 5 * time.Minute
	}
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, err
	}
	auth, err := newAuthState(cfg)
	if err != nil {
		return nil, err
	}
	s := &Server{
		cfg: cfg, meta: deps.Meta, propose: deps.Proposer, blobs: deps.Blobs,
		auth: auth, log: cfg.Logger, metrics: m,
	}
	r := httprouter.New()
	r.RedirectTrailingSlash = false
	r.RedirectFixedPath = false
	r.HandleMethodNotAllowed = false
	for _, method := range []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete} {
		r.Handle(method, "/v2/*rest", s.serveV2)
	}
	r.GET("/v2", s.serveV2)
	r.GET("/healthz", func(w http.ResponseWriter, _ *http.Request, _ httprouter.Params) {
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write([]byte("ok\n"))
	})
	r.GET("/readyz", s.serveReady)
	s.registerAuth(r)
	s.registerManagement(r)
	s.registerConsole(r)
	r.NotFound = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.writeError(w, r, errNotFound)
	})
	s.router = r
	s.cluster = deps.Cluster
	s.clusterAdmin = deps.ClusterAdmin
	s.audit, s.backup = deps.Audit, deps.Backup
	s.fsckRunner = deps.Fsck
	s.uploadProxy = newUploadProxy(cfg.NodeID)
	if cfg.PeerTLS != nil {
		usePeerTLS(s.uploadProxy, cfg.PeerTLS)
	}
	return s, nil
}

func (s *Server) serveReady(w http.ResponseWriter, _ *http.Request, _ httprouter.Params) {
	w.Header().Set("Cache-Control", "no-store")
	if s.cfg.Ready != nil {
		if err := s.cfg.Ready(); err != nil {
			http.Error(w, "not ready: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
	}
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write([]byte("ready\n"))
}

// ServeHTTP gives every request an id (X-Request-Id, kept if the client sent a
// sane one), counts it and logs one line for it.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	id := r.Header.Get("X-Request-Id")
	if id == "" || len(id) > 64 {
		var b [8]byte
		_, _ = rand.Read(b[:])
		id = hex.EncodeToString(b[:])
		r.Header.Set("X-Request-Id", id)
	}
	rw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
	rw.Header().Set("X-Request-Id", id)
	rw.Header().Set("Docker-Distribution-API-Version", "registry/2.0")
	note := s.auditBegin(r)
	s.router.ServeHTTP(rw, r)
	s.auditEnd(r, note, rw.status, rw.Header(), id)
	d := time.Since(start)
	route := routeLabel(r)
	s.metrics.observe(route, r.Method, rw.status, d, rw.written, r.ContentLength)
	level := slog.LevelInfo
	if rw.status >= 500 {
		level = slog.LevelError
	}
	if s.log.Enabled(r.Context(), level) {
		s.log.LogAttrs(r.Context(), level, "request",
			slog.String("id", id), slog.String("method", r.Method), slog.String("path", r.URL.Path),
			slog.Int("status", rw.status), slog.Int64("bytes_out", rw.written),
			slog.Duration("duration", d), slog.String("remote", r.RemoteAddr))
	}
}

// routeLabel names the route for metrics without unbounded values.
func routeLabel(r *http.Request) string {
	p := r.URL.Path
	switch {
	case p == "/v2/" || p == "/v2":
		return "base"
	case p == "/healthz" || p == "/readyz":
		return p[1:]
	case p == "/auth/token":
		return "token"
	case strings.HasPrefix(p, "/api/v1/"):
		return "api"
	case p == "/" || strings.HasPrefix(p, "/console/"):
		return "console"
	}
	if len(p) < 4 || p[:4] != "/v2/" {
		return "other"
	}
	rt, err := parseV2Path(p[3:])
	if err != nil {
		return "invalid"
	}
	return rt.Kind.String()
}

type statusWriter struct {
	http.ResponseWriter
	status      int
	written     int64
	wroteHeader bool
}

func (w *statusWriter) WriteHeader(code int) {
	if !w.wroteHeader {
		w.status = code
		w.wroteHeader = true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	w.wroteHeader = true
	n, err := w.ResponseWriter.Write(b)
	w.written += int64(n)
	return n, err
}

// ReadFrom keeps sendfile for blob bodies (http.ServeContent copies an *os.File).
func (w *statusWriter) ReadFrom(r io.Reader) (int64, error) {
	w.wroteHeader = true
	var n int64
	var err error
	if rf, ok := w.ResponseWriter.(io.ReaderFrom); ok {
		n, err = rf.ReadFrom(r)
	} else {
		n, err = io.Copy(w.ResponseWriter, r)
	}
	w.written += n
	return n, err
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	var ae *authError
	if errors.As(err, &ae) {
		s.setAuthHeaders(w, r, ae)
	}
	if errors.Is(err, ErrUnavailable) {
		w.Header().Set("Retry-After", "1")
	}
	writeError(w, r, err, s.log)
}

func setContentLength(w http.ResponseWriter, n int64) {
	w.Header().Set("Content-Length", strconv.FormatInt(n, 10))
}
