package api

import (
	"context"
	"errors"
	"net/http"
	"net/http/httputil"
	"strings"
	"time"

	"github.com/berth-registry/berth/meta"
)

// forwardedHeader marks a request one node streamed through to another; the
// receiver never forwards it again (at most one hop).
const forwardedHeader = "X-Berth-Forwarded-By"

// fresh runs read, and when it misses (an unknown tag, manifest, blob link or
// repository) on a node of a cluster, catches up with the leader and reads once
// more. Reads that hit need no round trip.
func (s *Server) fresh(ctx context.Context, read func() error) error {
	err := read()
	if s.cluster == nil || !isMiss(err) {
		return err
	}
	if berr := s.cluster.ReadBarrier(ctx); berr != nil {
		return berr
	}
	return read()
}

// linearized runs read after a read barrier on a node of a cluster, so it sees
// every write acknowledged before it started, on any node. Tags move, so a read
// of a tag or a tag list goes through here; concurrent reads share one leader
// round trip (the node batches barriers).
func (s *Server) linearized(ctx context.Context, read func() error) error {
	if s.cluster != nil {
		if err := s.cluster.ReadBarrier(ctx); err != nil {
			return err
		}
	}
	return read()
}

func isMiss(err error) bool {
	return errors.Is(err, meta.ErrManifestUnknown) || errors.Is(err, meta.ErrBlobUnknown) ||
		errors.Is(err, meta.ErrNameUnknown)
}

// uploadOwner returns the node that owns an upload session id.
func uploadOwner(id string) string {
	owner, _, _ := strings.Cut(id, ".")
	return owner
}

// proxyUpload streams an upload request through to the node that owns the
// session and returns its answer unchanged. It reports false when the request
// is this node's to serve.
func (s *Server) proxyUpload(w http.ResponseWriter, r *http.Request, rt v2Route) bool {
	owner := uploadOwner(rt.Ref)
	if s.cluster == nil || owner == s.cfg.NodeID || r.Header.Get(forwardedHeader) != "" {
		return false
	}
	addr, ok := s.cluster.PeerAPI(owner)
	if !ok {
		// The owner is gone: the client restarts the blob.
		s.writeError(w, r, errUploadUnknown)
		return true
	}
	s.uploadProxy.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), proxyTargetKey{}, addr)))
	return true
}

type proxyTargetKey struct{}

// newUploadProxy streams requests through without buffering bodies either way.
func newUploadProxy(nodeID string) *httputil.ReverseProxy {
	return &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.Out.URL.Scheme = "http"
			pr.Out.URL.Host = pr.In.Context().Value(proxyTargetKey{}).(string)
			pr.Out.Host = pr.In.Host // the owner builds Location and realms for the client's host
			pr.Out.Header.Set(forwardedHeader, nodeID)
		},
		FlushInterval: -1,
		Transport: &http.Transport{
			MaxIdleConnsPerHost:   16,
			IdleConnTimeout:       time.Minute,
			ResponseHeaderTimeout: 10 * time.Minute,
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			w.Header().Set("Retry-After", "1")
			writeError(w, r, newError(CodeUnavailable, http.StatusServiceUnavailable, "the node that owns this upload did not answer"), nil)
		},
	}
}
