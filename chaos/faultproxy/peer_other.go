//go:build !linux

package faultproxy

import "net"

// PeerProcess returns the id of the process that owns the other end of c. It
// needs Linux's /proc; elsewhere it returns ErrUnsupported.
func PeerProcess(c net.Conn, pids []int) (int, error) { return 0, ErrUnsupported }
