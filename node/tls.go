package node

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// TLS, for clients and between nodes.
//
// Clients: with --tls-cert and --tls-key, --listen serves HTTPS only; an
// operator who also wants plain HTTP (a health check, a sidecar) asks for it
// with --listen-plain. The certificate files are read again when their
// modification time or size changes (checked at most every
// --tls-reload-interval, on a handshake), so a renewed certificate is served
// without a restart; a pair that does not load (a half-written renewal) is
// logged and the previous one stays in use.
//
// Between nodes: with --cluster-ca, --cluster-cert and --cluster-key, Raft runs
// over mutual TLS (cluster/tls.go), and the internal HTTP API, which shares
// the client listener, needs a client certificate issued by the cluster CA in
// addition to the cluster credential. The client listener therefore asks for
// client certificates and verifies them against the cluster CA when a client
// sends one (tls.VerifyClientCertIfGiven); docker and browsers send none and
// are not affected. Nodes call each other with the TLS server name
// internalServerName, for which the listener presents the node's cluster
// certificate, so the caller verifies its peer against the cluster CA whatever
// certificate the listener shows to clients (a public CA's, for instance).
//
// Peers are verified by their chain to the cluster CA, not by host name:
// addresses come from gossip and change with every pod, and holding a
// certificate of the cluster CA is what makes a node a member. The cluster CA
// must therefore be dedicated to the cluster. Node certificates need both the
// server and the client authentication extended key usages. Gossip stays
// encrypted and authenticated by the cluster key (memberlist).

// internalServerName is the TLS server name of calls between nodes.
const internalServerName = "berth-internal.cluster"

// defaultTLSReloadInterval bounds how often certificate files are checked.
const defaultTLSReloadInterval = 5 * time.Second

// tlsState holds a node's certificates. Its methods are safe for concurrent use.
type tlsState struct {
	serving *certReloader  // client-facing certificate; nil: plain HTTP
	cluster *certReloader  // this node's cluster certificate; nil: no mutual TLS
	ca      *x509.CertPool // the cluster CA; nil without mutual TLS

	mu      sync.Mutex // guards plainLn
	plainLn net.Listener
}

// validateTLS checks the TLS settings of a configuration.
func (c *Config) validateTLS() error {
	if (c.TLSCert == "") != (c.TLSKey == "") {
		return errors.New("node: --tls-cert and --tls-key go together")
	}
	n := 0
	for _, f := range []string{c.ClusterCA, c.ClusterCert, c.ClusterKey} {
		if f != "" {
			n++
		}
	}
	if n != 0 && n != 3 {
		return errors.New("node: --cluster-ca, --cluster-cert and --cluster-key go together")
	}
	if n == 3 && !c.clustered() {
		return errors.New("node: --cluster-ca needs a cluster member (--gossip-listen)")
	}
	if c.clustered() && (c.TLSCert != "") != (n == 3) {
		// Internal calls share the client listener: with HTTPS for clients
		// they need the cluster certificates, and mutual TLS needs HTTPS.
		return errors.New("node: a cluster member with TLS needs both --tls-cert/--tls-key and --cluster-ca/--cluster-cert/--cluster-key")
	}
	if c.ListenPlain != "" && c.TLSCert == "" {
		return errors.New("node: --listen-plain is an addition to an HTTPS --listen; without --tls-cert, --listen is plain HTTP already")
	}
	if c.TLSReloadInterval < 0 {
		return errors.New("node: --tls-reload-interval must not be negative")
	}
	return nil
}

// newTLSState loads the configured certificates; it fails on files that do
// not load, so a typo is found at start.
func newTLSState(cfg Config, clock func() time.Time, logger *slog.Logger, reg prometheus.Registerer) (*tlsState, error) {
	t := &tlsState{}
	interval := cfg.TLSReloadInterval
	if interval == 0 {
		interval = defaultTLSReloadInterval
	}
	var err error
	if cfg.TLSCert != "" {
		if t.serving, err = newCertReloader("serving", cfg.TLSCert, cfg.TLSKey, interval, clock, logger); err != nil {
			return nil, err
		}
	}
	if cfg.ClusterCA != "" {
		pem, err := os.ReadFile(cfg.ClusterCA)
		if err != nil {
			return nil, fmt.Errorf("node: cluster CA: %w", err)
		}
		t.ca = x509.NewCertPool()
		if !t.ca.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("node: cluster CA %s holds no PEM certificate", cfg.ClusterCA)
		}
		if t.cluster, err = newCertReloader("cluster", cfg.ClusterCert, cfg.ClusterKey, interval, clock, logger); err != nil {
			return nil, err
		}
	}
	for _, c := range []*certReloader{t.serving, t.cluster} {
		if c == nil || reg == nil {
			continue
		}
		g := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name:        "berth_tls_certificate_expiry_timestamp_seconds",
			Help:        "When the certificate in use expires (Unix time).",
			ConstLabels: prometheus.Labels{"cert": c.name},
		}, c.notAfter)
		if err := reg.Register(g); err != nil {
			return nil, err
		}
	}
	return t, nil
}

// mutual reports whether nodes talk mutual TLS.
func (t *tlsState) mutual() bool { return t.cluster != nil }

// peerScheme is the scheme of calls to other nodes.
func (t *tlsState) peerScheme() string {
	if t.mutual() {
		return "https"
	}
	return "http"
}

// serverConfig is the configuration of the client listener; nil for plain HTTP.
func (t *tlsState) serverConfig() *tls.Config {
	if t.serving == nil {
		return nil
	}
	cfg := &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetCertificate: func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
			if t.cluster != nil && hello.ServerName == internalServerName {
				return t.cluster.get(), nil
			}
			return t.serving.get(), nil
		},
	}
	if t.mutual() {
		cfg.ClientAuth = tls.VerifyClientCertIfGiven
		cfg.ClientCAs = t.ca
	}
	return cfg
}

// peerClientConfig is the configuration of calls to other nodes (internal
// API, upload proxy); nil without mutual TLS.
func (t *tlsState) peerClientConfig() *tls.Config {
	if !t.mutual() {
		return nil
	}
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		ServerName: internalServerName,
		// Verified by VerifyConnection against the cluster CA only, without a
		// host name (see the comment at the top).
		InsecureSkipVerify: true,
		VerifyConnection:   t.verifyPeer(x509.ExtKeyUsageServerAuth),
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return t.cluster.get(), nil
		},
	}
}

// raftConfigs are the server and client configurations of Raft's transport;
// nil without mutual TLS.
func (t *tlsState) raftConfigs() (server, client *tls.Config) {
	if !t.mutual() {
		return nil, nil
	}
	server = &tls.Config{
		MinVersion:     tls.VersionTLS12,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return t.cluster.get(), nil },
		ClientAuth:     tls.RequireAndVerifyClientCert,
		ClientCAs:      t.ca,
	}
	client = t.peerClientConfig()
	return server, client
}

// verifyPeer checks the chain of the other side's certificate to the cluster
// CA for usage.
func (t *tlsState) verifyPeer(usage x509.ExtKeyUsage) func(tls.ConnectionState) error {
	return func(cs tls.ConnectionState) error {
		if len(cs.PeerCertificates) == 0 {
			return errors.New("node: peer sent no certificate")
		}
		inter := x509.NewCertPool()
		for _, c := range cs.PeerCertificates[1:] {
			inter.AddCert(c)
		}
		_, err := cs.PeerCertificates[0].Verify(x509.VerifyOptions{
			Roots: t.ca, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{usage},
		})
		if err != nil {
			return fmt.Errorf("node: peer certificate not issued by the cluster CA: %w", err)
		}
		return nil
	}
}

// peerVerified reports whether r came with a client certificate that chains
// to the cluster CA (the listener verified it: VerifiedChains is set only for
// a certificate that verified).
func peerVerified(r *http.Request) bool {
	return r.TLS != nil && len(r.TLS.VerifiedChains) > 0
}

// listenPlain opens the --listen-plain listener; nil when not configured.
func (n *Node) listenPlain() (net.Listener, error) {
	if n.cfg.ListenPlain == "" {
		return nil, nil
	}
	ln, err := net.Listen("tcp", n.cfg.ListenPlain)
	if err != nil {
		return nil, fmt.Errorf("node: listen plain: %w", err)
	}
	n.tls.mu.Lock()
	n.tls.plainLn = ln
	n.tls.mu.Unlock()
	return ln, nil
}

// PlainAddr is the address of the --listen-plain listener, "" without one.
func (n *Node) PlainAddr() string {
	n.tls.mu.Lock()
	defer n.tls.mu.Unlock()
	if n.tls.plainLn == nil {
		return ""
	}
	return n.tls.plainLn.Addr().String()
}

// serve serves HTTP(S) on ln, and plain HTTP on plain when it is not nil,
// until Shutdown. The HTTPS listener's end is sent on serveErr; the plain one's
// only when it fails on its own.
func (n *Node) serve(ln, plain net.Listener) {
	if plain != nil {
		go func() {
			if err := n.http.Serve(plain); !errors.Is(err, http.ErrServerClosed) {
				n.serveErr <- fmt.Errorf("plain listener: %w", err)
			}
		}()
	}
	if n.tls.serving != nil {
		n.serveErr <- n.http.ServeTLS(ln, "", "")
		return
	}
	n.serveErr <- n.http.Serve(ln)
}

// certReloader serves a key pair from files, reloading it when they change.
type certReloader struct {
	name              string // "serving" or "cluster", for logs and metrics
	certFile, keyFile string
	interval          time.Duration
	clock             func() time.Time
	log               *slog.Logger

	mu      sync.Mutex // guards the fields below
	cert    *tls.Certificate
	stamp   string // modification times and sizes of the files loaded
	checked time.Time
}

func newCertReloader(name, certFile, keyFile string, interval time.Duration, clock func() time.Time, logger *slog.Logger) (*certReloader, error) {
	c := &certReloader{name: name, certFile: certFile, keyFile: keyFile, interval: interval, clock: clock, log: logger}
	stamp, err := c.fileStamp()
	if err != nil {
		return nil, fmt.Errorf("node: %s certificate: %w", name, err)
	}
	if err := c.load(stamp); err != nil {
		return nil, fmt.Errorf("node: %s certificate: %w", name, err)
	}
	c.checked = clock()
	return c, nil
}

func (c *certReloader) fileStamp() (string, error) {
	var stamp string
	for _, f := range []string{c.certFile, c.keyFile} {
		fi, err := os.Stat(f)
		if err != nil {
			return "", err
		}
		stamp += fmt.Sprintf("%d/%d;", fi.ModTime().UnixNano(), fi.Size())
	}
	return stamp, nil
}

// load reads the pair; c.mu is held or c is not shared yet.
func (c *certReloader) load(stamp string) error {
	pair, err := tls.LoadX509KeyPair(c.certFile, c.keyFile)
	if err != nil {
		return err
	}
	if pair.Leaf == nil && len(pair.Certificate) > 0 {
		pair.Leaf, _ = x509.ParseCertificate(pair.Certificate[0])
	}
	c.cert, c.stamp = &pair, stamp
	return nil
}

// get returns the current pair, reloading it first if the files changed and
// the last check is older than the interval.
func (c *certReloader) get() *tls.Certificate {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.clock()
	if now.Sub(c.checked) < c.interval {
		return c.cert
	}
	c.checked = now
	stamp, err := c.fileStamp()
	if err != nil || stamp == c.stamp {
		return c.cert
	}
	if err := c.load(stamp); err != nil {
		// Probably half-written: keep serving the old pair, retry later.
		c.log.Warn("tls: certificate files changed but do not load; keeping the previous one",
			"cert", c.name, "file", c.certFile, "err", err)
		return c.cert
	}
	var expires time.Time
	if c.cert.Leaf != nil {
		expires = c.cert.Leaf.NotAfter
	}
	c.log.Info("tls: certificate reloaded", "cert", c.name, "file", c.certFile, "expires", expires)
	return c.cert
}

// notAfter is the expiry of the pair in use, in Unix seconds.
func (c *certReloader) notAfter() float64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cert == nil || c.cert.Leaf == nil {
		return 0
	}
	return float64(c.cert.Leaf.NotAfter.Unix())
}
