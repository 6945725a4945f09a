package faultproxy

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Mode is what a Proxy does with the connections of a link.
type Mode int

const (
	// Pass forwards bytes both ways, half-closes included.
	Pass Mode = iota
	// Drop resets connections: new ones are accepted and reset at once (the
	// dialer sees its connection refused or reset before any answer), and the
	// link's open connections are reset when the mode is set. A peer that is
	// down or refuses looks like this.
	Drop
	// Blackhole holds connections: new ones are accepted and never answered,
	// nothing is forwarded either way and nothing is closed, so the dialer
	// waits for its own timeouts. Open connections of the link stop
	// forwarding and are held (their target side is closed). Leaving
	// Blackhole resets the held connections: their bytes are lost.
	Blackhole
)

func (m Mode) String() string {
	switch m {
	case Pass:
		return "pass"
	case Drop:
		return "drop"
	case Blackhole:
		return "blackhole"
	}
	return fmt.Sprintf("Mode(%d)", int(m))
}

// ErrClosed is returned by the methods of a closed Proxy.
var ErrClosed = errors.New("faultproxy: closed")

// Config configures a Proxy.
type Config struct {
	// Listen is the address to listen on; default "127.0.0.1:0".
	Listen string
	// Target is the address every passed connection is forwarded to. Required.
	Target string
	// Source names the sender of an accepted connection, the link it belongs
	// to, for SetSourceMode. It is called once per connection, before
	// anything is forwarded, from the connection's own goroutine. Nil: every
	// connection's source is "".
	Source func(net.Conn) string
	// DialTimeout bounds dialing Target; default 5s. A connection whose
	// target cannot be dialed is reset.
	DialTimeout time.Duration

	// LossRTO is the stall of a chunk lost by SetLoss, the first
	// retransmission timeout; default 200ms. Each further loss in a row (in
	// one direction of one connection) doubles it, up to LossMaxRTO (default
	// 3s).
	LossRTO    time.Duration
	LossMaxRTO time.Duration
	// Seed, if not 0, makes the latency jitter and the losses a function of
	// the seed, the connection's number (in the order they were accepted),
	// its direction and the chunks it carried. 0: seeded at random.
	Seed uint64
}

// Stats counts what a Proxy did.
type Stats struct {
	Accepted   int64 // connections accepted
	Forwarded  int64 // connected to the target and forwarded
	Dropped    int64 // reset by Drop (when accepted or later)
	Held       int64 // held by Blackhole (when accepted or later)
	DialFailed int64 // reset because the target could not be dialed
	Open       int   // connections open now (forwarding or held)

	Delayed    int64 // chunks delivered late by SetLatency (either direction)
	Stalls     int64 // chunks stalled by SetLoss (a retransmission timeout)
	LossResets int64 // connections reset by SetLoss (both sides)
}

// Proxy is a TCP proxy with per-link faults. Its methods are safe for
// concurrent use. Close stops it and closes every connection.
type Proxy struct {
	cfg Config
	ln  net.Listener
	wg  sync.WaitGroup // the accept loop and one goroutine per connection

	mu      sync.Mutex // guards the fields below
	mode    Mode
	sources map[string]Mode
	faults  faults             // latency and loss of sources without their own
	srcLat  map[string]latency // SetSourceLatency
	srcLoss map[string]float64 // SetSourceLoss
	conns   map[*pconn]struct{}
	stats   Stats
	closed  bool

	// Counted by the forwarding goroutines, without mu.
	delayed, stalls atomic.Int64
}

// pconn is one accepted connection. Its fields are guarded by Proxy.mu.
type pconn struct {
	src    string
	num    uint64 // in the order accepted, from 1
	client net.Conn
	up     net.Conn  // nil until dialed, and while held
	lines  [2]*dline // client to target and back; halted when held or done
	held   bool      // blackholed: kept open, nothing forwarded
	done   bool      // closed for good; the goroutines leave it alone
}

// New listens on cfg.Listen and starts forwarding to cfg.Target in Pass mode.
func New(cfg Config) (*Proxy, error) {
	if cfg.Target == "" {
		return nil, errors.New("faultproxy: no target")
	}
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:0"
	}
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = 5 * time.Second
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("faultproxy: listen: %w", err)
	}
	if cfg.LossRTO <= 0 {
		cfg.LossRTO = 200 * time.Millisecond
	}
	if cfg.LossMaxRTO <= 0 {
		cfg.LossMaxRTO = 3 * time.Second
	}
	cfg.LossMaxRTO = max(cfg.LossMaxRTO, cfg.LossRTO)
	p := &Proxy{
		cfg: cfg, ln: ln, sources: map[string]Mode{}, conns: map[*pconn]struct{}{},
		srcLat: map[string]latency{}, srcLoss: map[string]float64{},
	}
	p.wg.Add(1)
	go p.acceptLoop()
	return p, nil
}

// Addr is the address the proxy listens on.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Target is the address the proxy forwards to.
func (p *Proxy) Target() string { return p.cfg.Target }

// SetMode sets the mode of every source that has no mode of its own, and
// applies it to the open connections at once.
func (p *Proxy) SetMode(m Mode) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.mode = m
	p.applyLocked()
}

// SetSourceMode sets the mode of one source's connections (one link),
// overriding SetMode's, and applies it to its open connections at once.
func (p *Proxy) SetSourceMode(src string, m Mode) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.sources[src] = m
	p.applyLocked()
}

// ClearSourceModes removes every mode set by SetSourceMode, and every
// latency and loss set by SetSourceLatency and SetSourceLoss: it heals every
// link (to the proxy-wide mode, latency and loss). ClearSourceFaults clears
// only the latencies and losses.
func (p *Proxy) ClearSourceModes() {
	p.mu.Lock()
	defer p.mu.Unlock()
	clear(p.sources)
	clear(p.srcLat)
	clear(p.srcLoss)
	p.applyLocked()
}

// Mode returns the mode that applies to src's connections.
func (p *Proxy) Mode(src string) Mode {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.modeLocked(src)
}

// Stats returns the counters.
func (p *Proxy) Stats() Stats {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := p.stats
	s.Open = len(p.conns)
	s.Delayed = p.delayed.Load()
	s.Stalls = p.stalls.Load()
	return s
}

// Close stops listening, closes every connection and waits for the proxy's
// goroutines to end.
func (p *Proxy) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return ErrClosed
	}
	p.closed = true
	err := p.ln.Close()
	for c := range p.conns {
		p.finishLocked(c, false)
	}
	p.mu.Unlock()
	p.wg.Wait()
	return err
}

func (p *Proxy) modeLocked(src string) Mode {
	if m, ok := p.sources[src]; ok {
		return m
	}
	return p.mode
}

// applyLocked brings every open connection in line with its link's mode.
func (p *Proxy) applyLocked() {
	for c := range p.conns {
		switch m := p.modeLocked(c.src); {
		case m == Drop:
			p.stats.Dropped++
			p.finishLocked(c, true)
		case m == Blackhole && !c.held:
			p.holdLocked(c)
		case m == Pass && c.held:
			p.finishLocked(c, true)
		}
	}
}

// holdLocked blackholes c: its target side is closed (which ends the copy
// goroutines), the client side stays open and unread.
func (p *Proxy) holdLocked(c *pconn) {
	c.held = true
	p.stats.Held++
	c.halt()
	if c.up != nil {
		c.up.Close()
		c.up = nil
	}
}

// finishLocked closes both sides of c and forgets it; reset sends the client
// a TCP reset instead of an orderly close.
func (p *Proxy) finishLocked(c *pconn, reset bool) {
	if c.done {
		return
	}
	c.done = true
	c.halt()
	if reset {
		resetConn(c.client)
	} else {
		c.client.Close()
	}
	if c.up != nil {
		c.up.Close()
	}
	delete(p.conns, c)
}

// resetConn closes c with SO_LINGER 0, so the peer gets a RST: its next read
// or write fails at once.
func resetConn(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	c.Close()
}

func (p *Proxy) acceptLoop() {
	defer p.wg.Done()
	for {
		conn, err := p.ln.Accept()
		if err != nil {
			p.mu.Lock()
			closed := p.closed
			p.mu.Unlock()
			if closed || errors.Is(err, net.ErrClosed) {
				return
			}
			time.Sleep(10 * time.Millisecond) // EMFILE and the like: do not spin
			continue
		}
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			conn.Close()
			return
		}
		p.stats.Accepted++
		num := uint64(p.stats.Accepted)
		p.wg.Add(1)
		p.mu.Unlock()
		go p.handle(conn, num)
	}
}

// handle classifies a new connection, applies its link's mode and, in Pass
// mode, forwards it until either side is done.
func (p *Proxy) handle(conn net.Conn, num uint64) {
	defer p.wg.Done()
	c := &pconn{client: conn, num: num, lines: [2]*dline{newDline(), newDline()}}
	if p.cfg.Source != nil {
		c.src = p.cfg.Source(conn)
	}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		conn.Close()
		return
	}
	p.conns[c] = struct{}{}
	switch p.modeLocked(c.src) {
	case Drop:
		p.stats.Dropped++
		p.finishLocked(c, true)
		p.mu.Unlock()
		return
	case Blackhole:
		p.holdLocked(c)
		p.mu.Unlock()
		return
	}
	p.mu.Unlock()

	up, err := net.DialTimeout("tcp", p.cfg.Target, p.cfg.DialTimeout)
	p.mu.Lock()
	if err != nil {
		if !c.done && !c.held {
			p.stats.DialFailed++
			p.finishLocked(c, true)
		}
		p.mu.Unlock()
		return
	}
	if c.done || c.held { // the mode changed (or Close ran) while dialing
		p.mu.Unlock()
		up.Close()
		return
	}
	c.up = up
	p.stats.Forwarded++
	p.mu.Unlock()

	// Forward both ways, each direction through its delay line (degrade.go).
	// An orderly end of one direction is passed on as a half-close; an error
	// ends both. Once held, the client side is read at most once more (into
	// a halted line): the rest of what it sends stays unread.
	var wg sync.WaitGroup
	wg.Add(4)
	for dir, ends := range [2][2]net.Conn{{conn, up}, {up, conn}} {
		l, r := c.lines[dir], p.newRand(c, dir)
		go func() {
			defer wg.Done()
			p.read(c, l, ends[0], r)
		}()
		go func() {
			defer wg.Done()
			p.write(c, l, ends[1])
		}()
	}
	wg.Wait()
	p.mu.Lock()
	if !c.held { // a held connection stays open until its mode changes or Close
		p.finishLocked(c, false)
	}
	p.mu.Unlock()
}
