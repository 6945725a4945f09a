//go:build linux

package netns

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The test binary doubles as the program run inside the namespaces: with
// helperEnv set, TestMain runs the helper named by it instead of the tests.
const helperEnv = "BERTH_NETNS_HELPER"

const port = 7411

func TestMain(m *testing.M) {
	switch os.Getenv(helperEnv) {
	case "":
		os.Exit(m.Run())
	case "serve":
		serve()
	case "dial":
		// args: proto addr timeout payload
		a := os.Args[len(os.Args)-4:]
		d, _ := time.ParseDuration(a[2])
		fmt.Println(dial(a[0], a[1], d, a[3]))
		os.Exit(0)
	default:
		fmt.Fprintln(os.Stderr, "unknown helper", os.Getenv(helperEnv))
		os.Exit(2)
	}
}

// serve listens on TCP and UDP port on every address, prints READY and serves
// until killed. TCP: one command line per connection:
//
//	ping      -> "pong"
//	sink N    reads N bytes -> "done"
//	source N  writes N bytes
//	seen X    -> "yes" if a UDP datagram "mark:X" arrived, else "no"
//
// UDP: every datagram is echoed; "mark:X" is also remembered.
func serve() {
	ln, err := net.Listen("tcp", fmt.Sprintf(":%d", port))
	if err != nil {
		fmt.Println("FAIL", err)
		os.Exit(1)
	}
	pc, err := net.ListenPacket("udp", fmt.Sprintf(":%d", port))
	if err != nil {
		fmt.Println("FAIL", err)
		os.Exit(1)
	}
	var mu sync.Mutex
	marks := map[string]bool{}
	go func() {
		buf := make([]byte, 2048)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			msg := string(buf[:n])
			if m, ok := strings.CutPrefix(msg, "mark:"); ok {
				mu.Lock()
				marks[m] = true
				mu.Unlock()
			}
			pc.WriteTo(buf[:n], from)
		}
	}()
	fmt.Println("READY")
	for {
		c, err := ln.Accept()
		if err != nil {
			os.Exit(1)
		}
		go func() {
			defer c.Close()
			r := bufio.NewReader(c)
			line, err := r.ReadString('\n')
			if err != nil {
				return
			}
			f := strings.Fields(line)
			if len(f) == 0 {
				return
			}
			arg := ""
			if len(f) > 1 {
				arg = f[1]
			}
			size, _ := strconv.ParseInt(arg, 10, 64)
			switch f[0] {
			case "ping":
				io.WriteString(c, "pong\n")
			case "sink":
				if _, err := io.CopyN(io.Discard, r, size); err == nil {
					io.WriteString(c, "done\n")
				}
			case "source":
				io.CopyN(c, zeros{}, size)
			case "seen":
				mu.Lock()
				ok := marks[arg]
				mu.Unlock()
				if ok {
					io.WriteString(c, "yes\n")
				} else {
					io.WriteString(c, "no\n")
				}
			}
		}()
	}
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }

// dial reaches the helper server at addr and reports OK, TIMEOUT, REFUSED or
// "ERR <error>". TCP: connect and ping; UDP: send payload, await the echo.
func dial(proto, addr string, timeout time.Duration, payload string) string {
	deadline := time.Now().Add(timeout)
	c, err := net.DialTimeout(proto, addr, timeout)
	if err != nil {
		return classify(err)
	}
	defer c.Close()
	c.SetDeadline(deadline)
	if proto == "tcp" {
		payload = "ping\n"
	}
	if _, err := io.WriteString(c, payload); err != nil {
		return classify(err)
	}
	buf := make([]byte, 64)
	n, err := c.Read(buf)
	if err != nil {
		return classify(err)
	}
	if got := string(buf[:n]); proto == "tcp" && got != "pong\n" || proto == "udp" && got != payload {
		return "ERR unexpected reply " + strconv.Quote(got)
	}
	return "OK"
}

func classify(err error) string {
	var ne net.Error
	switch {
	case errors.As(err, &ne) && ne.Timeout():
		return "TIMEOUT"
	case errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET):
		return "REFUSED"
	}
	return "ERR " + err.Error()
}

// ---- test scaffolding ----

var prefixSeq struct {
	sync.Mutex
	n int
}

// newNet skips the test unless Available, and returns a Net of size nodes
// with a prefix unique to this test and process, closed at cleanup.
func newNet(t *testing.T, size int) *Net {
	t.Helper()
	skipUnlessAvailable(t)
	nt, err := New(uniquePrefix(), size)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		if err := nt.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return nt
}

func skipUnlessAvailable(t *testing.T) {
	t.Helper()
	if err := Available(); err != nil {
		t.Skip("network namespaces unavailable:", err)
	}
}

func uniquePrefix() string {
	prefixSeq.Lock()
	defer prefixSeq.Unlock()
	prefixSeq.n++
	// a letter per test, then 4 hex digits of the pid: 5 characters.
	return fmt.Sprintf("%c%04x", 'a'+prefixSeq.n%26, os.Getpid()%0x10000)
}

func helperCmd(nt *Net, i int, mode string, args ...string) *exec.Cmd {
	exe, err := os.Executable()
	if err != nil {
		panic(err)
	}
	cmd := nt.Command(i, exe, args...)
	// Under -race a program sleeps 1 s at exit unless told otherwise.
	cmd.Env = append(os.Environ(), helperEnv+"="+mode, "GORACE=atexit_sleep_ms=0")
	return cmd
}

// startServer starts the helper server in node i and waits until it listens.
func startServer(t *testing.T, nt *Net, i int) *exec.Cmd {
	t.Helper()
	cmd := helperCmd(nt, i, "serve")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	ready := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(out).ReadString('\n')
		ready <- strings.TrimSpace(line)
		io.Copy(io.Discard, out)
	}()
	select {
	case line := <-ready:
		if line != "READY" {
			t.Fatalf("server in node %d: %q", i, line)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("server in node %d not ready", i)
	}
	return cmd
}

const host = -1

const dialTimeout = 800 * time.Millisecond

// probe dials node to's server from node from (or the host) and returns the
// helper's verdict.
func probe(t *testing.T, nt *Net, from, to int, proto, payload string) string {
	addr := net.JoinHostPort(nt.IP(to), strconv.Itoa(port))
	if payload == "" {
		payload = "ping"
	}
	if from == host {
		return dial(proto, addr, dialTimeout, payload)
	}
	cmd := helperCmd(nt, from, "dial", proto, addr, dialTimeout.String(), payload)
	cmd.Stderr = nil
	done := make(chan struct{})
	var out []byte
	var err error
	go func() { out, err = cmd.Output(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		cmd.Process.Kill()
		<-done
		return "ERR helper hung"
	}
	if err != nil {
		return fmt.Sprintf("ERR helper: %v: %s", err, out)
	}
	return strings.TrimSpace(string(out))
}

type path struct {
	from, to int
	proto    string
	want     string
}

func (p path) String() string {
	name := func(i int) string {
		if i == host {
			return "host"
		}
		return strconv.Itoa(i)
	}
	return fmt.Sprintf("%s %s->%s", p.proto, name(p.from), name(p.to))
}

// expect checks all paths concurrently.
func expect(t *testing.T, nt *Net, stage string, paths ...path) {
	t.Helper()
	got := make([]string, len(paths))
	var wg sync.WaitGroup
	for k, p := range paths {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got[k] = probe(t, nt, p.from, p.to, p.proto, "")
		}()
	}
	wg.Wait()
	for k, p := range paths {
		if got[k] != p.want {
			t.Errorf("%s: %v: got %s, want %s", stage, p, got[k], p.want)
		}
	}
}

// all returns every ordered pair of nodes plus host->node, TCP and UDP, all
// expecting OK except those in fail (keyed "from>to", host = -1), which want
// failWant.
func all(nt *Net, failWant string, fail ...string) []path {
	bad := map[string]bool{}
	for _, f := range fail {
		bad[f] = true
	}
	var ps []path
	for from := host; from < nt.Size(); from++ {
		for to := 0; to < nt.Size(); to++ {
			if from == to {
				continue
			}
			want := "OK"
			if bad[fmt.Sprintf("%d>%d", from, to)] {
				want = failWant
			}
			for _, proto := range []string{"tcp", "udp"} {
				ps = append(ps, path{from, to, proto, want})
			}
		}
	}
	return ps
}

func startServers(t *testing.T, nt *Net) {
	for i := 0; i < nt.Size(); i++ {
		startServer(t, nt, i)
	}
}

func heal(t *testing.T, nt *Net) {
	t.Helper()
	if err := nt.Heal(); err != nil {
		t.Fatalf("Heal: %v", err)
	}
}

// ---- tests ----

func TestValidation(t *testing.T) {
	for _, c := range []struct {
		prefix string
		n      int
	}{{"", 3}, {"abcdef", 3}, {"a-b", 3}, {"a b", 3}, {"ok", 0}, {"ok", MaxNodes + 1}} {
		if nt, err := New(c.prefix, c.n); err == nil {
			nt.Close()
			t.Errorf("New(%q, %d): no error", c.prefix, c.n)
		}
	}
}

func TestPickSubnet(t *testing.T) {
	routes := parseRoutes(`default via 192.0.2.1 dev eth0
10.0.0.0/9 dev tun0 scope link
unreachable 10.128.0.0/10
192.0.2.0/24 dev eth0 proto kernel scope link src 192.0.2.2
local 10.192.5.7 dev eth0 table local proto kernel scope host src 10.192.5.7
broadcast 127.255.255.255 dev lo table local proto kernel scope link src 127.0.0.1
`)
	if len(routes) != 5 {
		t.Fatalf("parseRoutes: %v", routes)
	}
	for _, prefix := range []string{"a", "b", "xyz12", "00000"} {
		p, err := pickSubnet(prefix, routes)
		if err != nil {
			t.Fatal(err)
		}
		if p.Bits() != 24 || !netip.MustParsePrefix("10.192.0.0/10").Contains(p.Addr()) || p.Contains(netip.MustParseAddr("10.192.5.7")) {
			t.Errorf("pickSubnet(%q) = %v", prefix, p)
		}
	}
	// With nothing in the way, different prefixes start at different places.
	seen := map[netip.Prefix]bool{}
	for _, prefix := range []string{"a", "b", "xyz12", "00000"} {
		p, _ := pickSubnet(prefix, nil)
		seen[p] = true
	}
	if len(seen) != 4 {
		t.Errorf("different prefixes should get different subnets: %v", seen)
	}
	if _, err := pickSubnet("a", []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}); err == nil {
		t.Error("pickSubnet with 10/8 routed: no error")
	}
}

func TestConnectivityAndCut(t *testing.T) {
	nt := newNet(t, 3)
	if nt.Size() != 3 || nt.IP(0) == nt.IP(1) || !strings.HasSuffix(nt.HostIP(), ".254") || !strings.HasSuffix(nt.IP(2), ".3") {
		t.Fatalf("addresses: host %s nodes %s %s %s", nt.HostIP(), nt.IP(0), nt.IP(1), nt.IP(2))
	}
	startServers(t, nt)
	expect(t, nt, "initial", all(nt, "")...)

	if err := nt.Cut(0, 1); err != nil {
		t.Fatal(err)
	}
	// 0->1 blackholed; 1->0 TCP fails too (SYN-ACK lost), UDP 1->0 arrives
	// but its echo is lost. Everything else passes.
	expect(t, nt, "Cut(0,1)", all(nt, "TIMEOUT", "0>1", "1>0")...)
	// One-way: a datagram 1->0 arrives, 0->1 does not.
	probe(t, nt, 1, 0, "udp", "mark:arrives")
	probe(t, nt, 0, 1, "udp", "mark:lost")
	if got := ask(t, nt, 0, "seen arrives"); got != "yes" {
		t.Errorf("Cut(0,1): datagram 1->0 seen by 0: %s, want yes", got)
	}
	if got := ask(t, nt, 1, "seen lost"); got != "no" {
		t.Errorf("Cut(0,1): datagram 0->1 seen by 1: %s, want no", got)
	}
	heal(t, nt)
	heal(t, nt) // idempotent
	expect(t, nt, "healed", all(nt, "")...)
}

// ask sends a command line to node i's server from the host and returns the
// reply line.
func ask(t *testing.T, nt *Net, i int, cmd string) string {
	t.Helper()
	c, err := net.DialTimeout("tcp", net.JoinHostPort(nt.IP(i), strconv.Itoa(port)), 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Second))
	fmt.Fprintln(c, cmd)
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		t.Fatalf("%s: %v", cmd, err)
	}
	return strings.TrimSpace(line)
}

func TestReject(t *testing.T) {
	nt := newNet(t, 3)
	startServers(t, nt)
	if err := nt.Reject(0, 1); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	expect(t, nt, "Reject(0,1)", path{0, 1, "tcp", "REFUSED"}, path{0, 1, "udp", "REFUSED"},
		path{1, 2, "tcp", "OK"}, path{0, 2, "tcp", "OK"}, path{host, 1, "tcp", "OK"}, path{host, 0, "udp", "OK"})
	if d := time.Since(start); d > dialTimeout+5*time.Second {
		t.Errorf("refusal took %v", d)
	}
	// The refusal is fast: well under the dial timeout, measured in-helper.
	t0 := time.Now()
	if got := probe(t, nt, 0, 1, "tcp", ""); got != "REFUSED" {
		t.Errorf("Reject(0,1): tcp 0->1: %s", got)
	}
	t.Logf("refused dial including helper start: %v", time.Since(t0))
	heal(t, nt)
	expect(t, nt, "healed", path{0, 1, "tcp", "OK"}, path{0, 1, "udp", "OK"})
}

func TestIsolateAndPartition(t *testing.T) {
	nt := newNet(t, 3)
	startServers(t, nt)
	if err := nt.Isolate(2); err != nil {
		t.Fatal(err)
	}
	expect(t, nt, "Isolate(2)", all(nt, "TIMEOUT", "0>2", "2>0", "1>2", "2>1")...)
	heal(t, nt)

	// Node 0 alone; the unlisted 1 and 2 form a group.
	if err := nt.Partition([]int{0}); err != nil {
		t.Fatal(err)
	}
	expect(t, nt, "Partition({0})", all(nt, "TIMEOUT", "0>1", "1>0", "0>2", "2>0")...)
	heal(t, nt)

	if err := nt.Partition([]int{0, 2}, []int{1}); err != nil {
		t.Fatal(err)
	}
	expect(t, nt, "Partition({0,2},{1})", all(nt, "TIMEOUT", "0>1", "1>0", "2>1", "1>2")...)
	heal(t, nt)
	expect(t, nt, "healed", all(nt, "")...)

	if err := nt.Partition([]int{0}, []int{0, 1}); err == nil {
		t.Error("Partition with a node in two groups: no error")
	}
	if err := nt.Partition([]int{3}); err == nil {
		t.Error("Partition with node out of range: no error")
	}
	if err := nt.Cut(1, 1); err == nil {
		t.Error("Cut(1,1): no error")
	}
}

func TestLoss(t *testing.T) {
	nt := newNet(t, 3)
	startServers(t, nt)
	if err := nt.Loss(1, 0); err != nil {
		t.Fatal(err)
	}
	expect(t, nt, "Loss(1,0)", all(nt, "")...)
	if err := nt.Loss(1, 1.0); err != nil {
		t.Fatal(err)
	}
	expect(t, nt, "Loss(1,1)", all(nt, "TIMEOUT", "0>1", "1>0", "2>1", "1>2")...)
	heal(t, nt)
	// A fractional loss applies (iptables accepts the statistic match);
	// most pings still pass at 1%.
	if err := nt.Loss(1, 0.01); err != nil {
		t.Fatal(err)
	}
	if err := nt.Loss(1, 0.01); err != nil { // repeated: no-op
		t.Fatal(err)
	}
	if err := nt.Loss(1, 1.5); err == nil {
		t.Error("Loss(1, 1.5): no error")
	}
	heal(t, nt)
	expect(t, nt, "healed", all(nt, "")...)
}

// transfer moves size bytes between the host and node i's server: up (node
// sends, "source") or down (host sends, "sink"). It returns the time taken.
func transfer(t *testing.T, nt *Net, i int, up bool, size int64) time.Duration {
	c, err := net.DialTimeout("tcp", net.JoinHostPort(nt.IP(i), strconv.Itoa(port)), 2*time.Second)
	if err != nil {
		t.Error(err)
		return 0
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	start := time.Now()
	if up {
		fmt.Fprintf(c, "source %d\n", size)
		n, err := io.Copy(io.Discard, c)
		if err != nil || n != size {
			t.Errorf("source: %d bytes, %v", n, err)
		}
	} else {
		fmt.Fprintf(c, "sink %d\n", size)
		if _, err := io.CopyN(c, zeros{}, size); err != nil {
			t.Errorf("sink: %v", err)
		}
		line, err := bufio.NewReader(c).ReadString('\n')
		if err != nil || line != "done\n" {
			t.Errorf("sink: %q, %v", line, err)
		}
	}
	return time.Since(start)
}

func transferBoth(t *testing.T, nt *Net, i int, size int64) (up, down time.Duration) {
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); up = transfer(t, nt, i, true, size) }()
	go func() { defer wg.Done(); down = transfer(t, nt, i, false, size) }()
	wg.Wait()
	return up, down
}

func TestSlow(t *testing.T) {
	nt := newNet(t, 2)
	startServer(t, nt, 1)
	const size = 1 << 20
	up, down := transferBoth(t, nt, 1, size)
	t.Logf("unshaped 1 MiB: up %v, down %v", up, down)
	if up > time.Second || down > time.Second {
		t.Errorf("unshaped 1 MiB took up %v, down %v", up, down)
	}
	if err := nt.Slow(1, 2000); err != nil {
		t.Fatal(err)
	}
	// 1 MiB at 2000 kbit/s is 4.2 s.
	up, down = transferBoth(t, nt, 1, size)
	t.Logf("2000 kbit 1 MiB: up %v, down %v", up, down)
	if up < 2*time.Second || down < 2*time.Second {
		t.Errorf("Slow(1, 2000): 1 MiB took up %v, down %v, want > 2s", up, down)
	}
	heal(t, nt)
	heal(t, nt)
	up, down = transferBoth(t, nt, 1, size)
	if up > time.Second || down > time.Second {
		t.Errorf("healed: 1 MiB took up %v, down %v", up, down)
	}
	if err := nt.Slow(1, 0); err == nil {
		t.Error("Slow(1, 0): no error")
	}
}

func TestLatency(t *testing.T) {
	nt := newNet(t, 2)
	startServer(t, nt, 1)
	err := nt.Latency(1, 100*time.Millisecond)
	if errors.Is(err, errors.ErrUnsupported) {
		t.Logf("Latency unsupported here: %v", err)
		if err2 := nt.Latency(0, time.Millisecond); !errors.Is(err2, errors.ErrUnsupported) {
			t.Errorf("second Latency: %v, want ErrUnsupported", err2)
		}
		expect(t, nt, "after failed Latency", path{0, 1, "tcp", "OK"}, path{host, 1, "tcp", "OK"})
		return
	}
	if err != nil {
		t.Fatalf("Latency: %v", err)
	}
	// netem present: a host->1 ping takes at least two delays.
	start := time.Now()
	if got := ask(t, nt, 1, "ping"); got != "pong" {
		t.Errorf("ping: %s", got)
	}
	if d := time.Since(start); d < 200*time.Millisecond {
		t.Errorf("Latency(1, 100ms): ping took %v", d)
	}
	heal(t, nt)
}

func TestCommandPidAndSignals(t *testing.T) {
	nt := newNet(t, 1)
	cmd := startServer(t, nt, 0)
	pid := cmd.Process.Pid
	exe, _ := os.Executable()
	if got, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid)); err != nil || got != exe {
		t.Errorf("pid %d runs %q (%v), want the program itself %q", pid, got, err, exe)
	}
	var inNs, ours syscall.Stat_t
	if err := syscall.Stat(fmt.Sprintf("/proc/%d/ns/net", pid), &inNs); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Stat("/run/netns/"+nt.Namespace(0), &ours); err != nil {
		t.Fatal(err)
	}
	if inNs.Ino != ours.Ino || inNs.Dev != ours.Dev {
		t.Errorf("pid %d is not in namespace %s", pid, nt.Namespace(0))
	}
	expect(t, nt, "running", path{host, 0, "tcp", "OK"})

	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	waitState(t, pid, "T")
	// The kernel still completes the handshake, but the stopped server never
	// answers.
	expect(t, nt, "SIGSTOP", path{host, 0, "tcp", "TIMEOUT"}, path{host, 0, "udp", "TIMEOUT"})
	if err := syscall.Kill(pid, syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	expect(t, nt, "SIGCONT", path{host, 0, "tcp", "OK"})
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	err := cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Errorf("after SIGKILL: Wait = %v, want killed by SIGKILL", err)
	}
}

func waitState(t *testing.T, pid int, want string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			t.Fatal(err)
		}
		// "pid (comm) S ..."
		s := string(b)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(f) > 0 && f[0] == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("pid %d: state %v, want %s", pid, f[:1], want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// leftovers lists the namespaces, links and host FORWARD rules named for
// prefix.
func leftovers(t *testing.T, prefix string) []string {
	t.Helper()
	var left []string
	list, err := run("", "ip", "netns", "list")
	if err != nil {
		t.Fatal(err)
	}
	for _, ns := range netnsNames(list) {
		if strings.HasPrefix(ns, "berth-"+prefix+"-") {
			left = append(left, "netns "+ns)
		}
	}
	links, err := run("", "ip", "-o", "link", "show")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range linkNames(links) {
		if strings.HasPrefix(l, "bn-"+prefix+"-") {
			left = append(left, "link "+l)
		}
	}
	rules, err := run("", "iptables", "-w", "-S", "FORWARD")
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range strings.Split(rules, "\n") {
		if strings.Contains(r, "berth-netns-"+prefix) {
			left = append(left, "rule "+r)
		}
	}
	return left
}

func TestCloseWithRunningProcess(t *testing.T) {
	skipUnlessAvailable(t)
	prefix := uniquePrefix()
	nt, err := New(prefix, 2)
	if err != nil {
		t.Fatal(err)
	}
	defer nt.Close()
	if bridgeNetfilter() {
		if got := leftovers(t, prefix); !strings.Contains(strings.Join(got, "\n"), "rule ") {
			t.Errorf("br_netfilter on but no FORWARD rule: %v", got)
		}
	}
	cmd := startServer(t, nt, 1)
	if err := nt.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := nt.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if left := leftovers(t, prefix); len(left) > 0 {
		t.Errorf("after Close: %v", left)
	}
	// Close kills nothing.
	if err := cmd.Process.Signal(syscall.Signal(0)); err != nil {
		t.Errorf("server after Close: %v", err)
	}
	if err := nt.Cut(0, 1); err == nil {
		t.Error("Cut after Close: no error")
	}
	if err := nt.Heal(); err != nil {
		t.Errorf("Heal after Close: %v", err)
	}
}

func TestNewCleansUpCrashedRun(t *testing.T) {
	skipUnlessAvailable(t)
	prefix := uniquePrefix()
	crashed, err := New(prefix, 2)
	if err != nil {
		t.Fatal(err)
	}
	// The crashed run also had more nodes, one with a process still inside
	// (which keeps its namespace alive after the name is gone).
	for _, c := range [][]string{
		{"netns", "add", "berth-" + prefix + "-7"},
		{"link", "add", "bn-" + prefix + "-7", "type", "veth", "peer", "name", "eth0", "netns", "berth-" + prefix + "-7"},
	} {
		if _, err := run("", "ip", c...); err != nil {
			t.Fatal(err)
		}
	}
	if err := crashed.Cut(0, 1); err != nil {
		t.Fatal(err)
	}
	startServer(t, crashed, 0)

	nt, err := New(prefix, 3) // crashed is never closed
	if err != nil {
		t.Fatalf("New over a crashed run: %v", err)
	}
	defer nt.Close()
	for _, obj := range leftovers(t, prefix) {
		if obj == "netns berth-"+prefix+"-7" || obj == "link bn-"+prefix+"-7" {
			t.Errorf("stale %s survived New", obj)
		}
	}
	startServers(t, nt)
	expect(t, nt, "after crash", all(nt, "")...)
	if err := nt.Close(); err != nil {
		t.Fatal(err)
	}
	if left := leftovers(t, prefix); len(left) > 0 {
		t.Errorf("after Close: %v", left)
	}
}
