package cluster

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

// Raft over mutual TLS. With Config.ServerTLS and Config.ClientTLS set, the
// raft transport is raft.NetworkTransport over tlsStreamLayer: it accepts only
// connections whose client certificate verifies (ServerTLS must require and
// verify one), and dials with ClientTLS (its certificate, and the cluster CA to
// verify the other node). A connection without a valid certificate fails its
// handshake on the first read in raft's connection handler, so a slow or
// hostile client never holds up the accept loop.

// ErrTLSConfig is wrapped by New for TLS settings it refuses.
var ErrTLSConfig = errors.New("cluster: tls config")

// tlsStreamLayer is a raft.StreamLayer over TLS.
type tlsStreamLayer struct {
	net.Listener             // a tls.Listener
	advertise    net.Addr    // the address other nodes dial
	client       *tls.Config // for Dial
}

var _ raft.StreamLayer = (*tlsStreamLayer)(nil)

// Dial implements raft.StreamLayer. The handshake is part of the dial and is
// bounded by timeout.
func (s *tlsStreamLayer) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	return tls.DialWithDialer(&net.Dialer{Timeout: timeout}, "tcp", string(address), s.client)
}

// Addr implements net.Listener: the advertised address, which raft stores in
// the configuration.
func (s *tlsStreamLayer) Addr() net.Addr {
	if s.advertise != nil {
		return s.advertise
	}
	return s.Listener.Addr()
}

// checkTLS refuses a server configuration that would let a node without a
// cluster certificate speak raft.
func checkTLS(cfg Config) error {
	if cfg.ServerTLS == nil || cfg.ClientTLS == nil {
		return fmt.Errorf("%w: ServerTLS and ClientTLS go together", ErrTLSConfig)
	}
	if cfg.ServerTLS.ClientAuth != tls.RequireAndVerifyClientCert || cfg.ServerTLS.ClientCAs == nil {
		return fmt.Errorf("%w: ServerTLS must require and verify client certificates against the cluster CA", ErrTLSConfig)
	}
	if cfg.ServerTLS.GetCertificate == nil && len(cfg.ServerTLS.Certificates) == 0 {
		return fmt.Errorf("%w: ServerTLS has no certificate", ErrTLSConfig)
	}
	if cfg.ClientTLS.GetClientCertificate == nil && len(cfg.ClientTLS.Certificates) == 0 {
		return fmt.Errorf("%w: ClientTLS has no certificate", ErrTLSConfig)
	}
	if cfg.RaftListen == "" {
		return fmt.Errorf("%w: TLS needs a TCP transport (RaftListen)", ErrTLSConfig)
	}
	return nil
}

// newTLSTransport is newTransport for mutual TLS.
func newTLSTransport(cfg Config, logger hclog.Logger) (raft.Transport, string, error) {
	if err := checkTLS(cfg); err != nil {
		return nil, "", err
	}
	var adv net.Addr
	if cfg.Advertise != "" {
		a, err := net.ResolveTCPAddr("tcp", cfg.Advertise)
		if err != nil {
			return nil, "", fmt.Errorf("%w: advertise %q: %w", ErrInvalidConfig, cfg.Advertise, err)
		}
		adv = a
	}
	ln, err := net.Listen("tcp", cfg.RaftListen)
	if err != nil {
		return nil, "", fmt.Errorf("cluster: raft transport on %s: %w", cfg.RaftListen, err)
	}
	if adv == nil {
		// Like raft's TCP transport: an unspecified bind address cannot be
		// dialled by the others.
		if a, ok := ln.Addr().(*net.TCPAddr); ok && a.IP.IsUnspecified() {
			ln.Close()
			return nil, "", fmt.Errorf("%w: raft listens on %s; set the advertised raft address", ErrInvalidConfig, a)
		}
	}
	stream := &tlsStreamLayer{
		Listener:  tls.NewListener(ln, cfg.ServerTLS),
		advertise: adv,
		client:    cfg.ClientTLS,
	}
	t := raft.NewNetworkTransportWithLogger(stream, tcpMaxPool, tcpTimeout, logger.Named("transport"))
	return t, string(t.LocalAddr()), nil
}
