package node

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// pkiCA is a certificate authority made up for a test.
type pkiCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
	pem  []byte
}

func newPKICA(t *testing.T, name string) *pkiCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &pkiCA{cert: cert, key: key, pool: pool, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// issue writes a certificate and key signed by ca to dir/name.{crt,key} and
// returns the serial number. ips become IP SANs (none for a cluster
// certificate, which is verified by its chain only).
func (ca *pkiCA) issue(t *testing.T, dir, name string, ips ...string) (certFile, keyFile string, serial *big.Int) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ = rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber: serial, Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	for _, ip := range ips {
		tmpl.IPAddresses = append(tmpl.IPAddresses, net.ParseIP(ip))
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key")
	// Written next to the target and renamed, as a certificate manager does.
	for f, b := range map[string][]byte{
		certFile: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		keyFile:  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}),
	} {
		if err := os.WriteFile(f+".tmp", b, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(f+".tmp", f); err != nil {
			t.Fatal(err)
		}
	}
	return certFile, keyFile, serial
}

// tlsDo is do over an HTTPS client.
func tlsDo(t *testing.T, c *http.Client, method, url string, body []byte, hdr ...string) resp {
	t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth("admin", testAdminPassword)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	r, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer r.Body.Close()
	b, _ := io.ReadAll(r.Body)
	return resp{r.StatusCode, r.Header, b}
}

// TestClusterMutualTLS runs three nodes with HTTPS for clients (certificates
// of a "public" CA) and mutual TLS between nodes (a cluster CA): a push
// through a follower is forwarded over mTLS, Raft and the internal API refuse
// callers without a cluster certificate, the plain listener is an addition
// that carries no internal calls, and a renewed certificate is served without
// a restart.
func TestClusterMutualTLS(t *testing.T) {
	if testing.Short() {
		t.Skip("cluster test")
	}
	dir := t.TempDir()
	key := filepath.Join(dir, "cluster.key")
	if err := os.WriteFile(key, bytes.Repeat([]byte("t"), 32), 0o600); err != nil {
		t.Fatal(err)
	}
	public, clusterCA := newPKICA(t, "public CA"), newPKICA(t, "cluster CA")
	caFile := filepath.Join(dir, "cluster-ca.crt")
	if err := os.WriteFile(caFile, clusterCA.pem, 0o600); err != nil {
		t.Fatal(err)
	}
	c := &testCluster{t: t, key: key, nodes: make([]*Node, 3), urls: make([]string, 3), cfgs: make([]Config, 3)}
	var seed string
	for i := range 3 {
		cfg := Defaults()
		cfg.NodeID = fmt.Sprintf("n%d", i+1)
		cfg.DataDir = filepath.Join(dir, cfg.NodeID)
		if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
			t.Fatal(err)
		}
		cfg.Listen, cfg.RaftListen, cfg.GossipListen = "127.0.0.1:0", freePort(t, "tcp"), freePort(t, "udp")
		cfg.ClusterKeyFile, cfg.AdminPassword = key, testAdminPassword
		cfg.ReplicateInterval = 200 * time.Millisecond
		cfg.TLSCert, cfg.TLSKey, _ = public.issue(t, cfg.DataDir, "serving", "127.0.0.1")
		cfg.ClusterCA = caFile
		cfg.ClusterCert, cfg.ClusterKey, _ = clusterCA.issue(t, cfg.DataDir, "node")
		cfg.TLSReloadInterval = 100 * time.Millisecond
		if i == 0 {
			cfg.ListenPlain = "127.0.0.1:0"
			seed = cfg.GossipListen
		} else {
			cfg.Join = []string{seed}
		}
		c.start(i, cfg)
		c.urls[i] = "https://" + c.nodes[i].Addr()
	}
	waitFor(t, 30*time.Second, "all nodes in the raft configuration", func() bool {
		s, err := c.nodes[0].cluster.Servers()
		return err == nil && len(s) == 3
	})
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: public.pool}}}

	// HTTPS for clients that trust the public CA; a push through a follower
	// is forwarded to the leader, and the layer replicated, over mutual TLS.
	follower := (c.leader() + 1) % 3
	cfgBlob, layer := []byte(`{"architecture":"arm64"}`), bytes.Repeat([]byte("mtls"), 50000)
	for _, b := range [][]byte{cfgBlob, layer} {
		if r := tlsDo(t, client, "POST", c.urls[follower]+"/v2/library/secure/blobs/uploads/?digest="+sha(b), b); r.status != http.StatusCreated {
			t.Fatalf("push blob through follower: %d %s", r.status, r.body)
		}
	}
	m := imageManifest(sha(cfgBlob), sha(layer), len(cfgBlob), len(layer))
	if r := tlsDo(t, client, "PUT", c.urls[follower]+"/v2/library/secure/manifests/1", m, "Content-Type", ociManifest); r.status != http.StatusCreated {
		t.Fatalf("push manifest through follower: %d %s", r.status, r.body)
	}
	for i, u := range c.urls {
		if r := tlsDo(t, client, "GET", u+"/v2/library/secure/blobs/"+sha(layer), nil); r.status != http.StatusOK || !bytes.Equal(r.body, layer) {
			t.Fatalf("node %d: pull over HTTPS: %d", i, r.status)
		}
	}
	// A client that does not trust the public CA is refused.
	if _, err := http.Get(c.urls[0] + "/v2/"); err == nil {
		t.Errorf("a client without the CA reached the HTTPS listener")
	}

	// Raft: without a client certificate, or with one of another CA, the
	// connection is refused.
	leader := c.nodes[c.leader()]
	for name, cert := range map[string][]tls.Certificate{"none": nil, "public CA's": {mustPair(t, public, dir)}} {
		conn, err := tls.Dial("tcp", leader.cluster.Addr(), &tls.Config{RootCAs: clusterCA.pool, InsecureSkipVerify: true, Certificates: cert})
		if err == nil {
			_ = conn.SetDeadline(time.Now().Add(2 * time.Second))
			_, err = conn.Write([]byte{0})
			if err == nil {
				_, err = conn.Read(make([]byte, 1))
			}
			conn.Close()
		}
		if err == nil {
			t.Errorf("raft connection with %s client certificate: not refused", name)
		}
	}
	// The internal API: the cluster credential alone is not enough.
	token := leader.internalToken
	req, _ := http.NewRequest("GET", c.urls[0]+internalPrefix+"state-digest", nil)
	req.Header.Set("Authorization", "Berth-Cluster "+token)
	if status := statusOf(t, client, req); status != http.StatusUnauthorized {
		t.Errorf("internal API with the credential but no client certificate: %d, want 401", status)
	}
	peer := &http.Client{Transport: &http.Transport{TLSClientConfig: c.nodes[1].tls.peerClientConfig()}}
	req, _ = http.NewRequest("GET", c.urls[0]+internalPrefix+"state-digest", nil)
	req.Header.Set("Authorization", "Berth-Cluster "+token)
	if status := statusOf(t, peer, req); status != http.StatusOK {
		t.Errorf("internal API as a node: %d, want 200", status)
	}

	// The plain listener serves clients but carries no internal calls.
	plain := "http://" + c.nodes[0].PlainAddr()
	if r := do(t, "GET", plain+"/v2/library/secure/manifests/1", nil, "Accept", ociManifest); r.status != http.StatusOK || !bytes.Equal(r.body, m) {
		t.Errorf("plain listener: %d", r.status)
	}
	if r := do(t, "GET", plain+internalPrefix+"state-digest", nil, "Authorization", "Berth-Cluster "+token); r.status != http.StatusUnauthorized {
		t.Errorf("internal API on the plain listener: %d, want 401", r.status)
	}

	// A renewed certificate is served without a restart.
	serialOf := func() *big.Int {
		conn, err := tls.Dial("tcp", c.nodes[2].Addr(), &tls.Config{RootCAs: public.pool})
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		return conn.ConnectionState().PeerCertificates[0].SerialNumber
	}
	before := serialOf()
	_, _, renewed := public.issue(t, c.cfgs[2].DataDir, "serving", "127.0.0.1")
	if renewed.Cmp(before) == 0 {
		t.Fatal("the renewed certificate has the old serial")
	}
	waitFor(t, 10*time.Second, "the renewed certificate", func() bool { return serialOf().Cmp(renewed) == 0 })
	// Half-written files keep the previous certificate in service.
	if err := os.WriteFile(c.cfgs[2].TLSKey, []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	if got := serialOf(); got.Cmp(renewed) != 0 {
		t.Errorf("after a bad key file: serial %v, want the renewed %v", got, renewed)
	}
	// The cluster certificate is reloaded too, and replication goes on.
	clusterCA.issue(t, c.cfgs[1].DataDir, "node")
	time.Sleep(300 * time.Millisecond)
	data := bytes.Repeat([]byte("after renewal"), 1000)
	if r := tlsDo(t, client, "POST", c.urls[1]+"/v2/library/secure/blobs/uploads/?digest="+sha(data), data); r.status != http.StatusCreated {
		t.Fatalf("push after renewing the cluster certificate: %d %s", r.status, r.body)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.nodes[1].ReadBarrier(ctx); err != nil {
		t.Fatalf("read index after renewing the cluster certificate: %v", err)
	}
}

func statusOf(t *testing.T, c *http.Client, req *http.Request) int {
	t.Helper()
	r, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	r.Body.Close()
	return r.StatusCode
}

func mustPair(t *testing.T, ca *pkiCA, dir string) tls.Certificate {
	t.Helper()
	cf, kf, _ := ca.issue(t, dir, "rogue")
	pair, err := tls.LoadX509KeyPair(cf, kf)
	if err != nil {
		t.Fatal(err)
	}
	return pair
}

func TestTLSConfigValidation(t *testing.T) {
	base := func() Config {
		c := Defaults()
		c.GossipListen, c.RaftListen, c.ClusterKeyFile = "127.0.0.1:0", "127.0.0.1:0", "k"
		return c
	}
	for name, tc := range map[string]struct {
		mut func(c *Config)
		ok  bool
	}{
		"plain cluster": {func(c *Config) {}, true},
		"full tls": {func(c *Config) {
			c.TLSCert, c.TLSKey, c.ClusterCA, c.ClusterCert, c.ClusterKey = "a", "b", "c", "d", "e"
		}, true},
		"cert without key":       {func(c *Config) { c.TLSCert = "a" }, false},
		"partial cluster tls":    {func(c *Config) { c.ClusterCA, c.ClusterCert = "c", "d" }, false},
		"https without mtls":     {func(c *Config) { c.TLSCert, c.TLSKey = "a", "b" }, false},
		"mtls without https":     {func(c *Config) { c.ClusterCA, c.ClusterCert, c.ClusterKey = "c", "d", "e" }, false},
		"listen-plain alone":     {func(c *Config) { c.ListenPlain = ":1" }, false},
		"single node https":      {func(c *Config) { c.GossipListen = ""; c.TLSCert, c.TLSKey = "a", "b" }, true},
		"single node with mtls":  {func(c *Config) { c.GossipListen = ""; c.ClusterCA, c.ClusterCert, c.ClusterKey = "c", "d", "e" }, false},
		"negative reload period": {func(c *Config) { c.TLSReloadInterval = -1 }, false},
	} {
		c := base()
		tc.mut(&c)
		if err := c.Validate(); (err == nil) != tc.ok {
			t.Errorf("%s: Validate() = %v, want ok %v", name, err, tc.ok)
		}
	}
}
