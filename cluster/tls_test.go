package cluster

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"net"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

// testCA is a certificate authority made up for a test.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
}

func newTestCA(t *testing.T, name string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &testCA{cert: cert, key: key, pool: pool}
}

// issue returns a node certificate for server and client authentication.
func (ca *testCA) issue(t *testing.T, name string) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// mtls returns the server and client configurations of a node with cert.
func (ca *testCA) mtls(cert tls.Certificate) (server, client *tls.Config) {
	server = &tls.Config{
		Certificates: []tls.Certificate{cert}, ClientAuth: tls.RequireAndVerifyClientCert,
		ClientCAs: ca.pool, MinVersion: tls.VersionTLS12,
	}
	client = &tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: ca.pool, MinVersion: tls.VersionTLS12}
	return server, client
}

func TestRaftOverMutualTLS(t *testing.T) {
	t.Parallel()
	ca := newTestCA(t, "cluster CA")
	addrs := freeAddrs(t, 3)
	var peers []Server
	for i, a := range addrs {
		peers = append(peers, Server{ID: fmt.Sprintf("n%d", i+1), Addr: a})
	}
	var nodes []*testNode
	for i, p := range peers {
		server, client := ca.mtls(ca.issue(t, p.ID))
		nodes = append(nodes, newTestNode(t, Config{
			NodeID: p.ID, RaftListen: addrs[i], Bootstrap: true, Peers: peers,
			HeartbeatTimeout: 500 * time.Millisecond, ElectionTimeout: 500 * time.Millisecond,
			LeaderLeaseTimeout: 250 * time.Millisecond,
			ServerTLS:          server, ClientTLS: client,
		}))
	}
	for _, n := range nodes {
		n.start(t, nil)
	}
	leader := leaderOf(t, 10*time.Second, nodes...)
	got, idx := propose(t, leader.c, 7)
	if got != 7 {
		t.Fatalf("propose: got %d, want 7", got)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, n := range nodes {
		if err := n.c.WaitApplied(ctx, idx); err != nil {
			t.Fatalf("%s: %v", n.cfg.NodeID, err)
		}
	}

	// A raft transport whose certificate the cluster CA did not sign, or that
	// has none, cannot talk to the leader.
	rogue := newTestCA(t, "rogue CA")
	for name, client := range map[string]*tls.Config{
		"no client certificate": {RootCAs: ca.pool},
		"another CA's":          {RootCAs: ca.pool, Certificates: []tls.Certificate{rogue.issue(t, "n9")}},
	} {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		server, _ := ca.mtls(ca.issue(t, "n9"))
		trans := raft.NewNetworkTransportWithLogger(&tlsStreamLayer{Listener: tls.NewListener(ln, server), client: client},
			1, 2*time.Second, hclog.NewNullLogger())
		var out raft.RequestVoteResponse
		err = trans.RequestVote("n1", raft.ServerAddress(leader.c.Addr()), &raft.RequestVoteRequest{
			RPCHeader: raft.RPCHeader{ID: []byte("n9"), Addr: []byte(ln.Addr().String())},
			Term:      1000, LastLogIndex: 1 << 40, LastLogTerm: 1000,
		}, &out)
		trans.Close()
		if err == nil {
			t.Errorf("%s: a vote request reached the leader (granted %v)", name, out.Granted)
		}
	}
	// Leadership did not move: the requests above (with a huge term) were
	// never read.
	if !leader.c.IsLeader() {
		t.Errorf("the leader lost leadership to a refused connection")
	}
	// Plain TCP is no raft either.
	conn, err := net.DialTimeout("tcp", leader.c.Addr(), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	_ = conn.SetDeadline(time.Now().Add(2 * time.Second))
	_, _ = conn.Write([]byte{0, 1, 2, 3})
	if _, err := conn.Read(make([]byte, 1)); err == nil {
		t.Errorf("plain TCP got an answer from the TLS raft port")
	}
	conn.Close()
}

func TestTLSConfigRefused(t *testing.T) {
	ca := newTestCA(t, "ca")
	server, client := ca.mtls(ca.issue(t, "n1"))
	weak := server.Clone()
	weak.ClientAuth = tls.VerifyClientCertIfGiven
	noCert := client.Clone()
	noCert.Certificates = nil
	for name, cfg := range map[string]Config{
		"client auth not required": {ServerTLS: weak, ClientTLS: client, RaftListen: "127.0.0.1:0"},
		"client without cert":      {ServerTLS: server, ClientTLS: noCert, RaftListen: "127.0.0.1:0"},
		"server only":              {ServerTLS: server, RaftListen: "127.0.0.1:0"},
		"no tcp transport":         {ServerTLS: server, ClientTLS: client},
	} {
		cfg.NodeID = "n1"
		n := newTestNode(t, cfg)
		if _, err := New(n.cfg, n.fsm, n.db, nil, nil); !errors.Is(err, ErrTLSConfig) {
			t.Errorf("%s: got %v, want ErrTLSConfig", name, err)
		}
	}
}
