// Package netns gives every node of a chaos test cluster its own Linux
// network namespace so that the fault harness can break the real network
// between nodes with iptables and tc.
//
// # Topology
//
// New(prefix, n) creates n namespaces named Namespace(i) = "berth-<prefix>-<i>"
// and one bridge Bridge() = "bn-<prefix>-br" in the host (the caller's)
// namespace. Node i is joined to the bridge by a veth pair: the host end is
// Veth(i) = "bn-<prefix>-<i>", the namespace end is called "eth0". The /24 is a
// free private 10.X.Y.0/24 (not overlapping any route of the host); the
// bridge has HostIP() = 10.X.Y.254 and node i has IP(i) = 10.X.Y.(i+1). Each
// namespace has lo up and only the subnet route (no default route).
//
// The harness process stays in the host namespace and reaches every node over
// the bridge; programs run inside node i with Command(i, ...).
//
// # Faults
//
// Faults between nodes are iptables rules in a chain named BERTH in the filter
// table of each node's namespace, jumped to from the top of INPUT; Heal
// flushes it. Every rule matches the source address of one other node, so
// traffic between the host and a node (the clients) is never affected by Cut,
// Reject, Partition, Isolate or Loss. Rules sit on the receiving node's INPUT,
// never on OUTPUT: a DROP in OUTPUT makes the sender's own send/connect fail
// at once with EPERM, which is not what a lost packet looks like.
//
// Faults accumulate until Heal: Cut(0,1) then Cut(1,2) leaves both cuts in
// place. Applying a fault that is already in place is a no-op (so repeating
// Loss(i, 0.3) does not compound the loss).
//
// Slow and Latency are tc qdiscs on both ends of node i's veth pair: the
// namespace end shapes what node i sends, the host end what node i receives.
// They therefore affect all of node i's traffic, including its traffic with
// the host (clients). Both use the root qdisc, so for one node the latest Slow
// or Latency call replaces the previous one.
//
// # Host firewall
//
// If the host has br_netfilter loaded with
// /proc/sys/net/bridge/bridge-nf-call-iptables = 1 (as Docker does, usually
// with a FORWARD policy of DROP), bridged node↔node frames traverse the host's
// iptables FORWARD chain. New then inserts
//
//	-A FORWARD -i <bridge> -o <bridge> -m comment --comment berth-netns-<prefix> -j ACCEPT
//
// at the top of the host's FORWARD chain and Close removes it. Only the
// iptables in PATH is used: a DROP from another firewall (for instance an
// iptables-legacy or native nftables ruleset next to an iptables-nft one) is
// not overridden. If br_netfilter is loaded only after New, bridged traffic
// may be dropped by such a host.
//
// # Requirements
//
// Root (euid 0, with CAP_NET_ADMIN and CAP_SYS_ADMIN in the initial user
// namespace) and the ip, iptables, iptables-restore and tc commands. Available
// checks them; tests should skip when it returns an error.
//
// Every command's stderr is part of the error it causes. Methods of a Net are
// safe for concurrent use; they are serialized by a mutex. The package keeps no
// global state.
package netns

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Chain is the iptables chain, in the filter table of every node namespace,
// that holds the faults.
const Chain = "BERTH"

// MaxNodes is the largest n New accepts (node addresses .1 to .253).
const MaxNodes = 253

// cmdTimeout bounds every external command.
const cmdTimeout = 30 * time.Second

// nsDev is the name of the veth end inside every node namespace.
const nsDev = "eth0"

// Net is a set of node namespaces joined by a bridge. Create it with New and
// release it with Close.
type Net struct {
	prefix string
	n      int
	subnet netip.Prefix // 10.X.Y.0/24

	mu      sync.Mutex
	closed  bool
	applied map[string]bool // namespace + "\x00" + rule spec, in place since the last Heal
	shaped  map[int]bool    // nodes that may have a root qdisc of ours
	netem   error           // non-nil once sch_netem was found missing
}

// Available reports whether this process can build a Net: Linux, euid 0, ip,
// iptables, iptables-restore and tc in PATH, and a probe namespace can be
// created, given a bridge, a veth pair and an iptables chain, and deleted.
// The error says what is missing.
func Available() error {
	if runtime.GOOS != "linux" {
		return fmt.Errorf("netns: needs Linux, this is %s", runtime.GOOS)
	}
	if os.Geteuid() != 0 {
		return fmt.Errorf("netns: needs root, euid is %d", os.Geteuid())
	}
	for _, tool := range []string{"ip", "iptables", "iptables-restore", "tc"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("netns: %w", err)
		}
	}
	// Not of the form berth-<prefix>-<i>, so no New ever removes it.
	name := fmt.Sprintf("berthprobe%d", os.Getpid())
	if _, err := run("", "ip", "netns", "add", name); err != nil {
		return err
	}
	_, err := run("link add pb0 type bridge\nlink add pv0 type veth peer name pv1\n",
		"ip", "-n", name, "-batch", "-")
	if err == nil {
		_, err = run("*filter\n:"+Chain+" - [0:0]\n-I INPUT 1 -j "+Chain+"\nCOMMIT\n",
			"ip", "netns", "exec", name, "iptables-restore", "-w", "--noflush")
	}
	if _, derr := run("", "ip", "netns", "del", name); err == nil {
		err = derr
	}
	return err
}

// validPrefix: 1 to 5 ASCII letters or digits.
func validPrefix(p string) bool {
	if len(p) < 1 || len(p) > 5 {
		return false
	}
	for _, c := range p {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9') {
			return false
		}
	}
	return true
}

// New creates n node namespaces (1 <= n <= MaxNodes) and the bridge joining
// them and the host; see the package documentation for names and addresses.
// prefix (1 to 5 ASCII letters or digits) must be unique among the runs
// sharing this machine; it is part of every name, so link names stay within
// the kernel's 15 characters. Objects left with the same prefix by an earlier
// run that did not Close (a crash) are removed first; processes still running
// in such namespaces are not killed but lose their network.
//
// On error everything New created is removed again.
func New(prefix string, n int) (*Net, error) {
	if !validPrefix(prefix) {
		return nil, fmt.Errorf("netns: prefix %q: want 1 to 5 ASCII letters or digits", prefix)
	}
	if n < 1 || n > MaxNodes {
		return nil, fmt.Errorf("netns: %d nodes: want 1 to %d", n, MaxNodes)
	}
	if err := purge(prefix); err != nil {
		return nil, fmt.Errorf("netns: removing objects of an earlier run: %w", err)
	}
	routes, err := run("", "ip", "-o", "-4", "route", "show", "table", "all")
	if err != nil {
		return nil, err
	}
	subnet, err := pickSubnet(prefix, parseRoutes(routes))
	if err != nil {
		return nil, err
	}
	nt := &Net{prefix: prefix, n: n, subnet: subnet,
		applied: map[string]bool{}, shaped: map[int]bool{}}
	if err := nt.setup(); err != nil {
		if perr := purge(prefix); perr != nil {
			err = fmt.Errorf("%w (cleanup: %v)", err, perr)
		}
		return nil, err
	}
	return nt, nil
}

func (nt *Net) setup() error {
	br := nt.Bridge()
	var b strings.Builder
	fmt.Fprintf(&b, "link add %s type bridge\n", br)
	fmt.Fprintf(&b, "addr add %s/24 dev %s\n", nt.HostIP(), br)
	fmt.Fprintf(&b, "link set %s up\n", br)
	for i := 0; i < nt.n; i++ {
		fmt.Fprintf(&b, "netns add %s\n", nt.Namespace(i))
		fmt.Fprintf(&b, "link add %s type veth peer name %s netns %s\n", nt.Veth(i), nsDev, nt.Namespace(i))
		fmt.Fprintf(&b, "link set %s master %s up\n", nt.Veth(i), br)
	}
	if _, err := run(b.String(), "ip", "-batch", "-"); err != nil {
		return err
	}
	for i := 0; i < nt.n; i++ {
		ns := nt.Namespace(i)
		batch := fmt.Sprintf("link set lo up\naddr add %s/24 dev %s\nlink set %s up\n", nt.IP(i), nsDev, nsDev)
		if _, err := run(batch, "ip", "-n", ns, "-batch", "-"); err != nil {
			return err
		}
		if _, err := run("*filter\n:"+Chain+" - [0:0]\n-I INPUT 1 -j "+Chain+"\nCOMMIT\n",
			"ip", "netns", "exec", ns, "iptables-restore", "-w", "--noflush"); err != nil {
			return err
		}
	}
	if bridgeNetfilter() {
		if _, err := run("", "iptables", append([]string{"-w", "-I", "FORWARD", "1"}, forwardRule(nt.prefix)...)...); err != nil {
			return err
		}
	}
	return nil
}

// bridgeNetfilter reports whether bridged IPv4 traffic passes the host's
// iptables (br_netfilter loaded and enabled).
func bridgeNetfilter() bool {
	b, err := os.ReadFile("/proc/sys/net/bridge/bridge-nf-call-iptables")
	return err == nil && strings.TrimSpace(string(b)) == "1"
}

func bridgeName(prefix string) string { return "bn-" + prefix + "-br" }

// forwardRule is the host FORWARD rule (without chain) letting bridged
// traffic of the prefix's bridge pass.
func forwardRule(prefix string) []string {
	br := bridgeName(prefix)
	return []string{"-i", br, "-o", br, "-m", "comment", "--comment", "berth-netns-" + prefix, "-j", "ACCEPT"}
}

// purge removes every object named for prefix: the host FORWARD rule, links
// bn-<prefix>-*, namespaces berth-<prefix>-<digits>. Missing objects are
// fine. Host veth ends are deleted explicitly (which also removes the
// namespace end) because deleting a namespace that still has processes only
// unmounts its name, and the kernel frees a namespace asynchronously.
func purge(prefix string) error {
	var errs []error
	for k := 0; k < 16; k++ {
		if _, err := run("", "iptables", append([]string{"-w", "-D", "FORWARD"}, forwardRule(prefix)...)...); err != nil {
			break // no (more) such rule, or no usable iptables
		}
	}
	links, err := run("", "ip", "-o", "link", "show")
	if err != nil {
		return err
	}
	br := bridgeName(prefix)
	var bridge bool
	for _, name := range linkNames(links) {
		if name == br {
			bridge = true
			continue
		}
		if strings.HasPrefix(name, "bn-"+prefix+"-") {
			if err := delLink(name); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if bridge {
		if err := delLink(br); err != nil {
			errs = append(errs, err)
		}
	}
	list, err := run("", "ip", "netns", "list")
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	for _, ns := range netnsNames(list) {
		rest, ok := strings.CutPrefix(ns, "berth-"+prefix+"-")
		if !ok || !allDigits(rest) {
			continue
		}
		if _, err := run("", "ip", "netns", "del", ns); err != nil && !strings.Contains(err.Error(), "No such file") {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func delLink(name string) error {
	_, err := run("", "ip", "link", "del", name)
	if err != nil && strings.Contains(err.Error(), "Cannot find device") {
		return nil // gone already, e.g. the peer of a deleted veth end
	}
	return err
}

func allDigits(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// linkNames parses `ip -o link show`: "5: name@peer: <...> ...".
func linkNames(out string) []string {
	var names []string
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		name := strings.TrimSuffix(f[1], ":")
		if at := strings.IndexByte(name, '@'); at >= 0 {
			name = name[:at]
		}
		names = append(names, name)
	}
	return names
}

// netnsNames parses `ip netns list`: "name (id: 3)" or "name".
func netnsNames(out string) []string {
	var names []string
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) > 0 {
			names = append(names, f[0])
		}
	}
	return names
}

// parseRoutes returns the destinations of `ip -o -4 route show table all`,
// skipping default routes.
func parseRoutes(out string) []netip.Prefix {
	types := map[string]bool{"unicast": true, "local": true, "broadcast": true, "multicast": true,
		"anycast": true, "unreachable": true, "blackhole": true, "prohibit": true, "throw": true, "nat": true}
	var ps []netip.Prefix
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		dst := f[0]
		if types[dst] && len(f) > 1 {
			dst = f[1]
		}
		if dst == "default" {
			continue
		}
		if p, err := netip.ParsePrefix(dst); err == nil {
			ps = append(ps, p.Masked())
		} else if a, err := netip.ParseAddr(dst); err == nil {
			ps = append(ps, netip.PrefixFrom(a, a.BitLen()))
		}
	}
	return ps
}

// pickSubnet returns the first 10.X.Y.0/24 overlapping none of routes,
// searching from a point derived from prefix so that concurrent runs with
// different prefixes are unlikely to race for the same subnet.
func pickSubnet(prefix string, routes []netip.Prefix) (netip.Prefix, error) {
	h := fnv.New32a()
	h.Write([]byte(prefix))
	start := h.Sum32() % 65536
	for k := uint32(0); k < 65536; k++ {
		v := (start + k) % 65536
		p := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(v >> 8), byte(v), 0}), 24)
		free := true
		for _, r := range routes {
			if r.Overlaps(p) {
				free = false
				break
			}
		}
		if free {
			return p, nil
		}
	}
	return netip.Prefix{}, errors.New("netns: no free 10.X.Y.0/24: every one overlaps a route")
}

// Size returns the number of nodes.
func (nt *Net) Size() int { return nt.n }

// Prefix returns the prefix given to New.
func (nt *Net) Prefix() string { return nt.prefix }

// Subnet returns the nodes' /24, such as "10.23.7.0/24".
func (nt *Net) Subnet() string { return nt.subnet.String() }

// HostIP returns the host's (the bridge's) address, 10.X.Y.254.
func (nt *Net) HostIP() string { return nt.addr(254) }

// IP returns node i's address, 10.X.Y.(i+1). It panics if i is out of range.
func (nt *Net) IP(i int) string {
	nt.mustNode(i)
	return nt.addr(byte(i + 1))
}

func (nt *Net) addr(last byte) string {
	a := nt.subnet.Addr().As4()
	a[3] = last
	return netip.AddrFrom4(a).String()
}

// Namespace returns the name of node i's network namespace,
// "berth-<prefix>-<i>" (as in `ip netns list`, /run/netns). It panics if i is
// out of range.
func (nt *Net) Namespace(i int) string {
	nt.mustNode(i)
	return "berth-" + nt.prefix + "-" + strconv.Itoa(i)
}

// Bridge returns the name of the bridge in the host namespace,
// "bn-<prefix>-br".
func (nt *Net) Bridge() string { return bridgeName(nt.prefix) }

// Veth returns the name of the host end of node i's veth pair,
// "bn-<prefix>-<i>" (its other end is eth0 in Namespace(i)). It panics if i
// is out of range.
func (nt *Net) Veth(i int) string {
	nt.mustNode(i)
	return "bn-" + nt.prefix + "-" + strconv.Itoa(i)
}

func (nt *Net) mustNode(i int) {
	if i < 0 || i >= nt.n {
		panic(fmt.Sprintf("netns: node %d out of range [0,%d)", i, nt.n))
	}
}

// Command returns a command running name with args inside node i's namespace
// through `ip netns exec`, which execs the program after entering the
// namespace: once started, cmd.Process.Pid is the program's own process, so
// signals (SIGKILL, SIGSTOP, ...) sent to it reach the program. name is
// looked up in PATH by ip; the environment, working directory and standard
// streams are the cmd's as usual. It panics if i is out of range.
//
// The process belongs to the caller; Close does not kill it.
func (nt *Net) Command(i int, name string, args ...string) *exec.Cmd {
	return exec.Command("ip", append([]string{"netns", "exec", nt.Namespace(i), name}, args...)...)
}

// Close removes the host FORWARD rule, the veth pairs, the bridge and the
// namespaces. It kills no process: programs still running in a namespace keep
// running there, left with only lo. Close is idempotent; after it, fault
// methods return errors.
func (nt *Net) Close() error {
	nt.mu.Lock()
	defer nt.mu.Unlock()
	if nt.closed {
		return nil
	}
	nt.closed = true
	return purge(nt.prefix)
}

// run runs a command with stdin (if not empty) and returns its stdout; the
// error includes the command line and its stderr.
func run(stdin, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(stderr.String())
		if msg == "" {
			msg = strings.TrimSpace(stdout.String())
		}
		return stdout.String(), fmt.Errorf("netns: %s %s: %w: %s", name, strings.Join(args, " "), err, msg)
	}
	return stdout.String(), nil
}

// sortedKeys returns m's keys in order.
func sortedKeys[V any](m map[int]V) []int {
	keys := make([]int, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Ints(keys)
	return keys
}
