package faultproxy

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// echoServer answers every line with "echo: <line>" and passes a half-close
// on: after the client's EOF it writes "bye" and closes.
func echoServer(t *testing.T) string {
	t.Helper()
	return serve(t, func(c net.Conn) {
		r := bufio.NewReader(c)
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				if err == io.EOF {
					_, _ = io.WriteString(c, "bye\n")
				}
				return
			}
			if _, err := io.WriteString(c, "echo: "+line); err != nil {
				return
			}
		}
	})
}

func newProxy(t *testing.T, cfg Config) *Proxy {
	t.Helper()
	p, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	return p
}

type client struct {
	t *testing.T
	c net.Conn
	r *bufio.Reader
}

func dial(t *testing.T, d *net.Dialer, addr string) *client {
	t.Helper()
	if d == nil {
		d = &net.Dialer{}
	}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &client{t: t, c: c, r: bufio.NewReader(c)}
}

// dialReset checks that a new connection through addr is reset (or refused)
// at once: the dial itself may already see the reset.
func dialReset(t *testing.T, d *net.Dialer, addr, what string) {
	t.Helper()
	if d == nil {
		d = &net.Dialer{}
	}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		if isTimeout(err) {
			t.Fatalf("%s: dial: %v; want a reset", what, err)
		}
		return
	}
	t.Cleanup(func() { c.Close() })
	(&client{t: t, c: c, r: bufio.NewReader(c)}).mustBeReset(what)
}

// roundTrip sends a line and returns the answer, or the error when none comes
// within d.
func (c *client) roundTrip(line string, d time.Duration) (string, error) {
	if err := c.c.SetDeadline(time.Now().Add(d)); err != nil {
		return "", err
	}
	if _, err := io.WriteString(c.c, line+"\n"); err != nil {
		return "", err
	}
	s, err := c.r.ReadString('\n')
	return strings.TrimSuffix(s, "\n"), err
}

func (c *client) mustEcho(line string) {
	c.t.Helper()
	got, err := c.roundTrip(line, 5*time.Second)
	if err != nil || got != "echo: "+line {
		c.t.Fatalf("round trip %q: got %q, %v; want %q", line, got, err, "echo: "+line)
	}
}

// mustBeReset checks that the connection fails quickly without an answer.
func (c *client) mustBeReset(what string) {
	c.t.Helper()
	start := time.Now()
	got, err := c.roundTrip("anyone?", 5*time.Second)
	if err == nil || isTimeout(err) {
		c.t.Fatalf("%s: got %q, %v after %s; want the connection reset or closed at once", what, got, err, time.Since(start))
	}
}

// mustBeHeld checks that nothing comes back and the connection stays open.
func (c *client) mustBeHeld(what string) {
	c.t.Helper()
	got, err := c.roundTrip("anyone?", 300*time.Millisecond)
	if !isTimeout(err) {
		c.t.Fatalf("%s: got %q, %v; want no answer (a timeout)", what, got, err)
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func TestPass(t *testing.T) {
	p := newProxy(t, Config{Target: echoServer(t)})
	c := dial(t, nil, p.Addr())
	c.mustEcho("hello")
	c.mustEcho("again")
	// A half-close reaches the target, and its answer and close come back.
	if err := c.c.(*net.TCPConn).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	_ = c.c.SetDeadline(time.Now().Add(5 * time.Second))
	rest, err := io.ReadAll(c.r)
	if err != nil || string(rest) != "bye\n" {
		t.Fatalf("after CloseWrite: got %q, %v; want %q and EOF", rest, err, "bye\n")
	}
	waitFor(t, "the connection to be forgotten", func() bool { return p.Stats().Open == 0 })
	if s := p.Stats(); s.Accepted != 1 || s.Forwarded != 1 || s.Dropped != 0 {
		t.Errorf("stats %+v, want 1 accepted and forwarded, none dropped", s)
	}
}

func TestDrop(t *testing.T) {
	p := newProxy(t, Config{Target: echoServer(t)})
	open := dial(t, nil, p.Addr())
	open.mustEcho("before")

	p.SetMode(Drop)
	if got := p.Mode(""); got != Drop {
		t.Fatalf("Mode = %v, want drop", got)
	}
	open.mustBeReset("open connection after SetMode(Drop)")
	dialReset(t, nil, p.Addr(), "new connection in drop mode")

	p.SetMode(Pass)
	dial(t, nil, p.Addr()).mustEcho("after")
	if s := p.Stats(); s.Dropped != 2 || s.Forwarded != 2 {
		t.Errorf("stats %+v, want 2 dropped and 2 forwarded", s)
	}
}

func TestBlackhole(t *testing.T) {
	p := newProxy(t, Config{Target: echoServer(t)})
	open := dial(t, nil, p.Addr())
	open.mustEcho("before")

	p.SetMode(Blackhole)
	open.mustBeHeld("open connection in blackhole mode")
	fresh := dial(t, nil, p.Addr())
	fresh.mustBeHeld("new connection in blackhole mode")
	if s := p.Stats(); s.Held != 2 || s.Open != 2 {
		t.Errorf("stats %+v, want 2 held and open", s)
	}

	// Leaving the blackhole resets what it held; new connections pass.
	p.SetMode(Pass)
	open.mustBeReset("held connection after the blackhole ended")
	fresh.mustBeReset("held new connection after the blackhole ended")
	dial(t, nil, p.Addr()).mustEcho("after")
}

func TestDialFailure(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close()
	p := newProxy(t, Config{Target: dead})
	dialReset(t, nil, p.Addr(), "connection to a target that is down")
	if s := p.Stats(); s.DialFailed != 1 {
		t.Errorf("stats %+v, want 1 dial failure", s)
	}
}

// TestSourceModes cuts one link (one source) and leaves the others alone. The
// sources dial from different loopback addresses.
func TestSourceModes(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("needs 127.0.0.2 and 127.0.0.3, which only Linux has without setup")
	}
	p := newProxy(t, Config{Target: echoServer(t), Source: func(c net.Conn) string {
		host, _, _ := net.SplitHostPort(c.RemoteAddr().String())
		return host
	}})
	from := func(ip string) *net.Dialer { return &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}} }
	a, b := dial(t, from("127.0.0.2"), p.Addr()), dial(t, from("127.0.0.3"), p.Addr())
	a.mustEcho("a")
	b.mustEcho("b")

	p.SetSourceMode("127.0.0.2", Drop)
	a.mustBeReset("the dropped link's open connection")
	b.mustEcho("b still passes")
	dialReset(t, from("127.0.0.2"), p.Addr(), "a new connection on the dropped link")

	p.SetSourceMode("127.0.0.3", Blackhole)
	b.mustBeHeld("the blackholed link's open connection")

	// The default mode applies to sources without their own.
	p.SetMode(Drop)
	dialReset(t, from("127.0.0.4"), p.Addr(), "another source in drop mode")
	dial(t, from("127.0.0.3"), p.Addr()).mustBeHeld("the blackholed link keeps its own mode")

	p.SetMode(Pass)
	p.ClearSourceModes()
	b.mustBeReset("the held connection after the links healed")
	dial(t, from("127.0.0.2"), p.Addr()).mustEcho("healed a")
	dial(t, from("127.0.0.3"), p.Addr()).mustEcho("healed b")
}

func TestClose(t *testing.T) {
	p, err := New(Config{Target: echoServer(t)})
	if err != nil {
		t.Fatal(err)
	}
	passing := dial(t, nil, p.Addr())
	passing.mustEcho("x")
	p.SetSourceMode("", Blackhole)
	held := dial(t, nil, p.Addr())
	held.mustBeHeld("held")
	if err := p.Close(); err != nil { // waits for every goroutine
		t.Fatal(err)
	}
	if !errors.Is(p.Close(), ErrClosed) {
		t.Error("second Close: want ErrClosed")
	}
	passing.mustBeReset("a connection after Close")
	held.mustBeReset("a held connection after Close")
	if c, err := net.DialTimeout("tcp", p.Addr(), time.Second); err == nil {
		c.Close()
		t.Error("dial after Close succeeded; want it refused")
	}
}

// TestPeerProcess tells apart connections from this process and from a child.
func TestPeerProcess(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("PeerProcess needs /proc")
	}
	type seen struct {
		pid int
		err error
	}
	got := make(chan seen, 4)
	var mu sync.Mutex
	var pids []int // the processes to search; guarded by mu
	setPIDs := func(p []int) {
		mu.Lock()
		pids = p
		mu.Unlock()
	}
	p := newProxy(t, Config{Target: echoServer(t), Source: func(c net.Conn) string {
		mu.Lock()
		search := pids
		mu.Unlock()
		pid, err := PeerProcess(c, search)
		got <- seen{pid, err}
		return strconv.Itoa(pid)
	}})

	child := exec.Command(os.Args[0], "-test.run=^TestHelperDialer$")
	child.Env = append(os.Environ(), "FAULTPROXY_HELPER_DIAL="+p.Addr())
	stdin, err := child.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := child.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		stdin.Close()
		_ = child.Wait()
	}()
	setPIDs([]int{os.Getpid(), child.Process.Pid})

	// The child dials, round-trips once through the proxy and reports.
	if _, err := fmt.Fprintln(stdin, "go"); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "ok") {
		t.Fatalf("helper: %q, %v", line, err)
	}
	if s := <-got; s.err != nil || s.pid != child.Process.Pid {
		t.Errorf("the child's connection: PeerProcess = %d, %v; want %d", s.pid, s.err, child.Process.Pid)
	}

	dial(t, nil, p.Addr()).mustEcho("mine")
	if s := <-got; s.err != nil || s.pid != os.Getpid() {
		t.Errorf("this process's connection: PeerProcess = %d, %v; want %d", s.pid, s.err, os.Getpid())
	}

	// Searching every process finds the same; searching the wrong ones, nothing.
	setPIDs(nil)
	dial(t, nil, p.Addr()).mustEcho("all")
	if s := <-got; s.err != nil || s.pid != os.Getpid() {
		t.Errorf("search of every process: PeerProcess = %d, %v; want %d", s.pid, s.err, os.Getpid())
	}
	setPIDs([]int{child.Process.Pid})
	dial(t, nil, p.Addr()).mustEcho("other")
	if s := <-got; !errors.Is(s.err, ErrPeerUnknown) {
		t.Errorf("search of the wrong process: PeerProcess = %d, %v; want ErrPeerUnknown", s.pid, s.err)
	}
}

// TestHelperDialer is the child of TestPeerProcess: it waits for a line on
// stdin, dials FAULTPROXY_HELPER_DIAL, round-trips once, prints "ok", and keeps
// the connection until stdin closes.
func TestHelperDialer(t *testing.T) {
	addr := os.Getenv("FAULTPROXY_HELPER_DIAL")
	if addr == "" {
		t.Skip("helper process for TestPeerProcess")
	}
	in := bufio.NewReader(os.Stdin)
	if _, err := in.ReadString('\n'); err != nil {
		os.Exit(1)
	}
	c := dial(t, nil, addr)
	got, err := c.roundTrip("child", 5*time.Second)
	if err != nil || got != "echo: child" {
		fmt.Printf("failed: %q %v\n", got, err)
		os.Exit(1)
	}
	fmt.Println("ok")
	_, _ = io.Copy(io.Discard, in)
	os.Exit(0)
}

func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
