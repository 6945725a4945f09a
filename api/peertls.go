package api

import (
	"crypto/tls"
	"net/http"
	"net/http/httputil"
)

// usePeerTLS makes the upload proxy reach the owning node over HTTPS with
// cfg: the cluster's client configuration (this node's certificate, the
// cluster CA), as every other call between nodes.
func usePeerTLS(p *httputil.ReverseProxy, cfg *tls.Config) {
	rewrite := p.Rewrite
	p.Rewrite = func(pr *httputil.ProxyRequest) {
		rewrite(pr)
		pr.Out.URL.Scheme = "https"
	}
	if t, ok := p.Transport.(*http.Transport); ok {
		t.TLSClientConfig = cfg.Clone()
	}
}
