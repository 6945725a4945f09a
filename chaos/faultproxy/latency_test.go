package faultproxy

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"
)

// sinkServer reads every connection to its end and answers with the hex
// SHA-256 of what it read and a newline, then closes.
func sinkServer(t *testing.T) string {
	return serve(t, func(c net.Conn) {
		h := sha256.New()
		if _, err := io.Copy(h, c); err != nil {
			return
		}
		_, _ = io.WriteString(c, hex.EncodeToString(h.Sum(nil))+"\n")
	})
}

// mirrorServer writes back every byte it reads, and closes after the end.
func mirrorServer(t *testing.T) string {
	return serve(t, func(c net.Conn) { _, _ = io.Copy(c, c) })
}

func serve(t *testing.T, handle func(net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(20 * time.Second))
				handle(c)
			}()
		}
	}()
	return ln.Addr().String()
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	r := rand.NewChaCha8([32]byte{1})
	_, _ = r.Read(b)
	return b
}

// timedEcho round-trips a line and returns how long it took.
func (c *client) timedEcho(line string) time.Duration {
	c.t.Helper()
	start := time.Now()
	c.mustEcho(line)
	return time.Since(start)
}

// TestLatency: a latency d delays each direction by d, so a round trip by 2d,
// on open and new connections, and clearing it brings the round trip back.
func TestLatency(t *testing.T) {
	p := newProxy(t, Config{Target: echoServer(t)})
	c := dial(t, nil, p.Addr())
	c.mustEcho("warm up")

	const d = 100 * time.Millisecond
	p.SetLatency(d, 0)
	if got, j := p.Latency("any"); got != d || j != 0 {
		t.Fatalf("Latency = %v±%v, want %v", got, j, d)
	}
	for _, cl := range []*client{c, dial(t, nil, p.Addr())} {
		if rtt := cl.timedEcho("slow"); rtt < 2*d || rtt > 2*d+time.Second {
			t.Errorf("round trip with %v latency took %v, want %v (+ a little)", d, rtt, 2*d)
		}
	}
	if s := p.Stats(); s.Delayed != 4 || s.Stalls != 0 {
		t.Errorf("stats %+v, want 4 delayed chunks (2 round trips), no stalls", s)
	}

	p.SetLatency(0, 0)
	if rtt := c.timedEcho("fast again"); rtt >= d {
		t.Errorf("round trip after clearing the latency took %v, want well under %v", rtt, d)
	}
	if s := p.Stats(); s.Delayed != 4 {
		t.Errorf("stats %+v, want still 4 delayed chunks", s)
	}
}

// TestLatencyJitterKeepsOrder sends lines in separate chunks through a jitter
// as large as the delay: they still arrive in order.
func TestLatencyJitterKeepsOrder(t *testing.T) {
	p := newProxy(t, Config{Target: echoServer(t)})
	p.SetLatency(30*time.Millisecond, 30*time.Millisecond)
	c := dial(t, nil, p.Addr())
	const n = 40
	go func() {
		for i := range n {
			if _, err := fmt.Fprintf(c.c, "%d\n", i); err != nil {
				return
			}
			time.Sleep(2 * time.Millisecond)
		}
	}()
	_ = c.c.SetDeadline(time.Now().Add(5 * time.Second))
	for i := range n {
		line, err := c.r.ReadString('\n')
		if err != nil {
			t.Fatalf("answer %d: %v", i, err)
		}
		if want := "echo: " + strconv.Itoa(i) + "\n"; line != want {
			t.Fatalf("answer %d: got %q, want %q", i, line, want)
		}
	}
	if s := p.Stats(); s.Delayed == 0 {
		t.Errorf("stats %+v, want delayed chunks", s)
	}
}

// TestLatencyThroughput sends 8 MiB through a 50ms latency: the delay line is
// a pipeline, far faster than a chunk per 50ms (which would take 12.8s).
func TestLatencyThroughput(t *testing.T) {
	p := newProxy(t, Config{Target: sinkServer(t)})
	const d = 50 * time.Millisecond
	p.SetLatency(d, 0)
	data := randomBytes(8 << 20)
	sum := sha256.Sum256(data)

	c := dial(t, nil, p.Addr())
	_ = c.c.SetDeadline(time.Now().Add(9 * time.Second))
	start := time.Now()
	werr := make(chan error, 1)
	go func() {
		_, err := c.c.Write(data)
		if err == nil {
			err = c.c.(*net.TCPConn).CloseWrite()
		}
		werr <- err
	}()
	got, err := c.r.ReadString('\n')
	elapsed := time.Since(start)
	if err := errors.Join(err, <-werr); err != nil {
		t.Fatalf("after %v: %v", elapsed, err)
	}
	if got != hex.EncodeToString(sum[:])+"\n" {
		t.Fatalf("the target got other bytes: hash %q", got)
	}
	// The end of the data, then the answer, each d late.
	if elapsed < 2*d {
		t.Errorf("took %v, want at least %v", elapsed, 2*d)
	}
	slowest := time.Duration(len(data)/chunkSize) * d // a chunk per delay
	rate := float64(len(data)) / elapsed.Seconds() / (1 << 20)
	t.Logf("8 MiB through %v latency: %v (%.0f MiB/s)", d, elapsed, rate)
	if elapsed > slowest/10 {
		t.Errorf("took %v, want well under %v (a chunk per delay): not a pipeline", elapsed, slowest/10)
	}
}

// TestSourceLatency delays one link only, and ClearSourceFaults and
// ClearSourceModes heal it. The sources dial from different loopback
// addresses.
func TestSourceLatency(t *testing.T) {
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
	const d = 100 * time.Millisecond
	slow := func(c *client, what string) {
		t.Helper()
		if rtt := c.timedEcho(what); rtt < 2*d || rtt > 2*d+time.Second {
			t.Errorf("%s: round trip took %v, want %v", what, rtt, 2*d)
		}
	}
	fast := func(c *client, what string) {
		t.Helper()
		if rtt := c.timedEcho(what); rtt >= d {
			t.Errorf("%s: round trip took %v, want well under %v", what, rtt, d)
		}
	}

	p.SetSourceLatency("127.0.0.2", d, 0)
	slow(a, "the delayed link")
	fast(b, "the other link")
	slow(dial(t, from("127.0.0.2"), p.Addr()), "a new connection on the delayed link")
	p.ClearSourceFaults()
	fast(a, "the delayed link after ClearSourceFaults")

	// A source's own latency, even none, overrides the proxy's.
	p.SetLatency(d, 0)
	p.SetSourceLatency("127.0.0.3", 0, 0)
	slow(a, "a link with the proxy's latency")
	fast(b, "a link with none of its own")

	// Drop wins over latency; ClearSourceModes clears the latency too.
	p.SetLatency(0, 0)
	p.SetSourceLatency("127.0.0.2", d, 0)
	p.SetSourceMode("127.0.0.2", Drop)
	start := time.Now()
	a.mustBeReset("the dropped link")
	if e := time.Since(start); e >= d {
		t.Errorf("the dropped link's reset took %v, want it at once", e)
	}
	p.ClearSourceModes()
	fast(dial(t, from("127.0.0.2"), p.Addr()), "the link after ClearSourceModes")
	if got, _ := p.Latency("127.0.0.2"); got != 0 {
		t.Errorf("Latency after ClearSourceModes = %v, want 0", got)
	}
}

// TestBlackholeWinsOverLatency: a chunk queued in the delay line when the
// link is blackholed is never delivered.
func TestBlackholeWinsOverLatency(t *testing.T) {
	p := newProxy(t, Config{Target: echoServer(t)})
	p.SetLatency(200*time.Millisecond, 0)
	c := dial(t, nil, p.Addr())
	if _, err := io.WriteString(c.c, "queued\n"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond) // read and queued, not yet due
	p.SetMode(Blackhole)
	_ = c.c.SetDeadline(time.Now().Add(600 * time.Millisecond))
	if got, err := c.r.ReadString('\n'); !isTimeout(err) {
		t.Fatalf("held connection: got %q, %v; want nothing", got, err)
	}
	p.SetMode(Pass)
	c.mustBeReset("the held connection after the blackhole")
	if s := p.Stats(); s.Delayed != 0 {
		t.Errorf("stats %+v, want nothing delivered", s)
	}
}

func TestRTO(t *testing.T) {
	p := newProxy(t, Config{Target: "127.0.0.1:1"})
	for n, want := range map[int]time.Duration{
		1: 200 * time.Millisecond, 2: 400 * time.Millisecond, 3: 800 * time.Millisecond,
		4: 1600 * time.Millisecond, 5: 3 * time.Second, 50: 3 * time.Second,
	} {
		if got := p.rto(n); got != want {
			t.Errorf("rto(%d) = %v, want %v", n, got, want)
		}
	}
}

// TestLossStall: with loss 1 every chunk stalls the default first
// retransmission timeout (200ms), so a round trip takes 400ms more, unless the
// connection is reset (a chance of 1/10 per chunk). Seeded: with seed 2 the
// first connection is reset on its request, the second passes, on every run.
func TestLossStall(t *testing.T) {
	p := newProxy(t, Config{Target: echoServer(t), Seed: 2})
	p.SetLoss(1)
	if got := p.Loss("x"); got != 1 {
		t.Fatalf("Loss = %v, want 1", got)
	}
	resets := 0
	for attempt := 0; ; attempt++ {
		if attempt == 10 {
			t.Fatalf("every connection was reset")
		}
		c := dial(t, nil, p.Addr())
		start := time.Now()
		got, err := c.roundTrip("hello", 5*time.Second)
		elapsed := time.Since(start)
		if err != nil {
			if isTimeout(err) {
				t.Fatalf("round trip: %v after %v; want an answer or a reset", err, elapsed)
			}
			resets++
			continue
		}
		if got != "echo: hello" {
			t.Fatalf("round trip: got %q", got)
		}
		if elapsed < 400*time.Millisecond || elapsed > 1400*time.Millisecond {
			t.Errorf("round trip through loss 1 took %v, want 400ms (+ a little)", elapsed)
		}
		break
	}
	s := p.Stats()
	if resets != 1 || s.LossResets != 1 || s.Stalls != 2 {
		t.Errorf("%d connections reset, stats %+v; want 1 reset (seed 2) and 2 stalls", resets, s)
	}
}

// transfer sends data through addr to a mirror, reads it back, and checks it
// comes back whole and in order. errCorrupt: it did not.
func transfer(addr string, data []byte) (time.Duration, error) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(8 * time.Second))
	start := time.Now()
	werr := make(chan error, 1)
	go func() {
		_, err := c.Write(data)
		if err == nil {
			err = c.(*net.TCPConn).CloseWrite()
		}
		werr <- err
	}()
	var got bytes.Buffer
	_, rerr := io.Copy(&got, c)
	elapsed := time.Since(start)
	if err := errors.Join(rerr, <-werr); err != nil {
		return elapsed, err
	}
	if sum, want := sha256.Sum256(got.Bytes()), sha256.Sum256(data); sum != want {
		return elapsed, fmt.Errorf("%w: %d bytes back of %d", errCorrupt, got.Len(), len(data))
	}
	return elapsed, nil
}

var errCorrupt = errors.New("the bytes came back changed")

// TestLossTransfers: through loss 0.3 transfers take longer, and come through
// intact and in order unless their connection is reset, and every reset is
// counted. Short retransmission timeouts keep it quick.
func TestLossTransfers(t *testing.T) {
	const rto = 20 * time.Millisecond
	p := newProxy(t, Config{Target: mirrorServer(t), LossRTO: rto, LossMaxRTO: 4 * rto})
	data := randomBytes(128 << 10)

	if _, err := transfer(p.Addr(), data); err != nil {
		t.Fatalf("without loss: %v", err)
	}

	p.SetLoss(0.3)
	var (
		mu                      sync.Mutex
		passed, resets, stalled int
		corrupt, timeout        error
		deadline                = time.Now().Add(6 * time.Second)
		enough                  = func() bool { return passed >= 3 && resets >= 1 && stalled >= 1 }
		transfers               int
	)
	for transfers < 80 && time.Now().Before(deadline) && !enough() {
		var wg sync.WaitGroup
		for range 8 {
			transfers++
			wg.Add(1)
			go func() {
				defer wg.Done()
				elapsed, err := transfer(p.Addr(), data)
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err == nil:
					passed++
					if elapsed >= rto {
						stalled++
					}
				case errors.Is(err, errCorrupt):
					corrupt = err
				case isTimeout(err):
					timeout = err
				default:
					resets++
				}
			}()
		}
		wg.Wait()
	}
	if corrupt != nil || timeout != nil {
		t.Fatalf("through loss: %v, %v", corrupt, timeout)
	}
	s := p.Stats()
	t.Logf("%d transfers: %d passed (%d slowed), %d reset; stats %+v", transfers, passed, stalled, resets, s)
	if !enough() {
		t.Errorf("want at least 3 transfers through (one slowed by a stall) and 1 reset")
	}
	if s.LossResets != int64(resets) || s.Stalls == 0 {
		t.Errorf("stats %+v, want %d loss resets and stalls", s, resets)
	}

	// Loss 0 passes again.
	p.SetLoss(0)
	if _, err := transfer(p.Addr(), data); err != nil {
		t.Fatalf("after loss 0: %v", err)
	}
	if s2 := p.Stats(); s2.Stalls != s.Stalls || s2.LossResets != s.LossResets {
		t.Errorf("stats %+v after loss 0, want no new stalls or resets (had %+v)", s2, s)
	}
}
