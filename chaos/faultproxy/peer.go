package faultproxy

import "errors"

// ErrPeerUnknown: PeerProcess found no process (among those it searched)
// that owns the other end of the connection.
var ErrPeerUnknown = errors.New("faultproxy: peer process unknown")

// ErrUnsupported: PeerProcess needs Linux's /proc.
var ErrUnsupported = errors.New("faultproxy: peer process lookup needs /proc (Linux)")
