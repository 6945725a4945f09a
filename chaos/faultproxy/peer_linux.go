package faultproxy

import (
	"bufio"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// PeerProcess returns the id of the process that owns the other end of c, a
// TCP connection between two sockets of this machine (loopback): the socket
// whose local address is c's remote address and whose remote address is c's
// local address, looked up in /proc/net/tcp{,6}, and the process holding that
// socket, found by its inode in /proc/<pid>/fd. Only the processes in pids are
// searched; none means every process (slower). ErrPeerUnknown: none of them
// holds it (the dialer may already have closed it).
//
// Call it while the dialer is sure to hold its socket, such as right after
// accepting the connection.
func PeerProcess(c net.Conn, pids []int) (int, error) {
	local, err1 := netip.ParseAddrPort(c.LocalAddr().String())
	remote, err2 := netip.ParseAddrPort(c.RemoteAddr().String())
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("faultproxy: peer of %v: not a TCP/IP connection", c.RemoteAddr())
	}
	// The peer's socket: its local end is our remote end.
	inode, err := socketInode(remote, local)
	if err != nil {
		return 0, err
	}
	if len(pids) == 0 {
		ents, err := os.ReadDir("/proc")
		if err != nil {
			return 0, fmt.Errorf("%w: %v", ErrUnsupported, err)
		}
		for _, e := range ents {
			if pid, err := strconv.Atoi(e.Name()); err == nil {
				pids = append(pids, pid)
			}
		}
	}
	want := "socket:[" + inode + "]"
	for _, pid := range pids {
		dir := filepath.Join("/proc", strconv.Itoa(pid), "fd")
		fds, err := os.ReadDir(dir)
		if err != nil {
			continue // gone, or not ours to read
		}
		for _, fd := range fds {
			if l, err := os.Readlink(filepath.Join(dir, fd.Name())); err == nil && l == want {
				return pid, nil
			}
		}
	}
	return 0, fmt.Errorf("%w: socket %s (%v -> %v)", ErrPeerUnknown, inode, remote, local)
}

// socketInode finds the inode of the TCP socket with the given local and
// remote addresses.
func socketInode(local, remote netip.AddrPort) (string, error) {
	for _, name := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		f, err := os.Open(name)
		if err != nil {
			if os.IsNotExist(err) {
				continue
			}
			return "", fmt.Errorf("%w: %v", ErrUnsupported, err)
		}
		inode, found, err := scanSockets(f, local, remote)
		f.Close()
		if err != nil {
			return "", fmt.Errorf("faultproxy: read %s: %w", name, err)
		}
		if found {
			return inode, nil
		}
	}
	return "", fmt.Errorf("%w: no socket %v -> %v", ErrPeerUnknown, local, remote)
}

func scanSockets(f *os.File, local, remote netip.AddrPort) (string, bool, error) {
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 4096), 1<<20)
	first := true
	for sc.Scan() {
		if first { // the header
			first = false
			continue
		}
		fields := strings.Fields(sc.Text())
		if len(fields) < 10 {
			continue
		}
		l, err1 := parseProcAddr(fields[1])
		r, err2 := parseProcAddr(fields[2])
		if err1 != nil || err2 != nil {
			continue
		}
		if sameAddrPort(l, local) && sameAddrPort(r, remote) {
			return fields[9], true, nil
		}
	}
	return "", false, sc.Err()
}

func sameAddrPort(a, b netip.AddrPort) bool {
	return a.Port() == b.Port() && a.Addr().Unmap() == b.Addr().Unmap()
}

// parseProcAddr parses "0100007F:1F90": the address as the kernel's 32-bit
// words in host byte order, the port in hex.
func parseProcAddr(s string) (netip.AddrPort, error) {
	ip, port, ok := strings.Cut(s, ":")
	if !ok || (len(ip) != 8 && len(ip) != 32) {
		return netip.AddrPort{}, fmt.Errorf("bad address %q", s)
	}
	raw, err := hex.DecodeString(ip)
	if err != nil {
		return netip.AddrPort{}, err
	}
	b := make([]byte, len(raw))
	for i := 0; i < len(raw); i += 4 {
		// hex gives the word's value most significant byte first; the
		// address is the word's bytes as they are in memory.
		binary.NativeEndian.PutUint32(b[i:], binary.BigEndian.Uint32(raw[i:i+4]))
	}
	p, err := strconv.ParseUint(port, 16, 16)
	if err != nil {
		return netip.AddrPort{}, err
	}
	addr, _ := netip.AddrFromSlice(b)
	return netip.AddrPortFrom(addr, uint16(p)), nil
}
