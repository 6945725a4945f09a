package faultproxy

import (
	"errors"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"sync"
	"time"
)

// Network degradation: latency and loss on the links that Pass.
//
// Each direction of a forwarded connection is a delay line: a reader reads a
// chunk (up to chunkSize bytes, whatever one read returns) from one side,
// stamps it with the time it is due and queues it; a writer writes the queued
// chunks to the other side, in order, each when it is due. Reading goes on
// while earlier chunks wait, so a delay d is a one-way delay (a chunk read at
// t is written at t+d), not a pause between chunks: throughput is bounded by
// maxQueued/d per direction, not chunkSize/d.
//
// Latency d with jitter j delays every chunk, in both directions, by a delay
// drawn uniformly from [d-j, d+j] (at least 0), but never before the chunk
// ahead of it: the order of the bytes is kept. A round trip (a request and
// its answer) thus takes 2d more. The orderly end of a direction (a
// half-close) is delayed as its data is. The handshake is not: a dialer's
// connection is accepted at once.
//
// Loss p: TCP hides lost packets from the application, which sees instead a
// stall while the sender waits for its retransmission timeout, and, on a path
// that keeps losing, a connection that dies. So each chunk, independently,
// with probability p is "lost": it and every chunk behind it in its direction
// are delivered one retransmission timeout later (Config.LossRTO, default
// 200ms, doubled for each loss in a row in that direction, capped at
// Config.LossMaxRTO, default 3s). And with probability p/10 per chunk the
// connection dies instead: when that chunk is due (after the data ahead of it
// is delivered), both sides are reset and the chunk is never delivered.
//
// Latency and loss are looked up for every chunk, so a change applies to the
// open connections from their next chunk on; chunks already queued keep the
// time they were given. Drop and Blackhole win over both: a dropped or held
// connection forwards nothing, queued chunks are discarded.

const (
	// chunkSize is the most one read takes from a side.
	chunkSize = 32 << 10
	// maxQueued is the most bytes one direction of a connection holds in its
	// delay line; a reader waits while it is full.
	maxQueued = 4 << 20
	// resetRatio: the chance per chunk that loss p resets the connection is
	// p/resetRatio.
	resetRatio = 10
)

type latency struct{ d, jitter time.Duration }

// faults is what degrades a link.
type faults struct {
	lat  latency
	loss float64
}

// SetLatency delays every chunk of every connection, both ways, by d±jitter
// (a one-way delay: a round trip takes 2d more), except on the sources given
// their own by SetSourceLatency. 0, 0 removes it.
func (p *Proxy) SetLatency(d, jitter time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.faults.lat = cleanLatency(d, jitter)
}

// SetSourceLatency sets the latency of one source's connections (one link),
// overriding SetLatency's; 0, 0 overrides it with none. ClearSourceFaults and
// ClearSourceModes remove it.
func (p *Proxy) SetSourceLatency(src string, d, jitter time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.srcLat[src] = cleanLatency(d, jitter)
}

// SetLoss makes every connection, except on the sources given their own by
// SetSourceLoss, lose a fraction prob (0 to 1) of its chunks: each stalls a
// retransmission timeout, and prob/10 of them reset the connection instead
// (see the package's notes on degradation). 0 removes it.
func (p *Proxy) SetLoss(prob float64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.faults.loss = cleanLoss(prob)
}

// SetSourceLoss sets the loss of one source's connections (one link),
// overriding SetLoss's; 0 overrides it with none. ClearSourceFaults and
// ClearSourceModes remove it.
func (p *Proxy) SetSourceLoss(src string, prob float64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.srcLoss[src] = cleanLoss(prob)
}

// ClearSourceFaults removes every latency and loss set by SetSourceLatency and
// SetSourceLoss, and leaves the modes set by SetSourceMode.
func (p *Proxy) ClearSourceFaults() {
	p.mu.Lock()
	defer p.mu.Unlock()
	clear(p.srcLat)
	clear(p.srcLoss)
}

// Latency returns the latency that applies to src's connections.
func (p *Proxy) Latency(src string) (d, jitter time.Duration) {
	f := p.faultsFor(src)
	return f.lat.d, f.lat.jitter
}

// Loss returns the loss that applies to src's connections.
func (p *Proxy) Loss(src string) float64 { return p.faultsFor(src).loss }

func (p *Proxy) faultsFor(src string) faults {
	p.mu.Lock()
	defer p.mu.Unlock()
	f := p.faults
	if l, ok := p.srcLat[src]; ok {
		f.lat = l
	}
	if l, ok := p.srcLoss[src]; ok {
		f.loss = l
	}
	return f
}

func cleanLatency(d, jitter time.Duration) latency {
	const most = time.Duration(math.MaxInt64 / 4) // keeps the sums in range
	return latency{min(max(d, 0), most), min(max(jitter, 0), most)}
}

func cleanLoss(prob float64) float64 {
	if !(prob > 0) { // NaN too
		return 0
	}
	return min(prob, 1)
}

// newRand returns the random source of one direction of c.
func (p *Proxy) newRand(c *pconn, dir int) *rand.Rand {
	if p.cfg.Seed != 0 {
		return rand.New(rand.NewPCG(p.cfg.Seed, c.num<<1|uint64(dir)))
	}
	return rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
}

// chunk is what a delay line carries: data, or the end of the direction.
type chunk struct {
	b       []byte
	at      time.Time // when it is due
	eof     bool      // the orderly end: half-close the other side
	reset   bool      // the connection dies here (loss)
	delayed bool      // by latency
	stalled bool      // by loss
}

// dline is the queue of one direction of a connection: one reader pushes, one
// writer takes.
type dline struct {
	mu     sync.Mutex
	q      []chunk
	size   int // bytes in q
	halted bool
	more   chan struct{} // a chunk was pushed (capacity 1)
	room   chan struct{} // a chunk was taken (capacity 1)
	stop   chan struct{} // closed by halt
}

func newDline() *dline {
	return &dline{more: make(chan struct{}, 1), room: make(chan struct{}, 1), stop: make(chan struct{})}
}

func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// halt discards the queue and ends push and next for good.
func (l *dline) halt() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.halted {
		l.halted = true
		l.q, l.size = nil, 0
		close(l.stop)
	}
}

// push queues ch, waiting while the line is full. False: halted.
func (l *dline) push(ch chunk) bool {
	for {
		l.mu.Lock()
		if l.halted {
			l.mu.Unlock()
			return false
		}
		if l.size == 0 || l.size+len(ch.b) <= maxQueued {
			l.q = append(l.q, ch)
			l.size += len(ch.b)
			l.mu.Unlock()
			signal(l.more)
			return true
		}
		l.mu.Unlock()
		select {
		case <-l.room:
		case <-l.stop:
			return false
		}
	}
}

// next waits for the first chunk to be due and takes it. False: halted.
func (l *dline) next(t *time.Timer) (chunk, bool) {
	for {
		l.mu.Lock()
		if l.halted {
			l.mu.Unlock()
			return chunk{}, false
		}
		if len(l.q) == 0 {
			l.mu.Unlock()
			select {
			case <-l.more:
				continue
			case <-l.stop:
				return chunk{}, false
			}
		}
		ch := l.q[0]
		if wait := time.Until(ch.at); wait > 0 {
			// Only next takes chunks: the first stays first.
			l.mu.Unlock()
			t.Reset(wait)
			select {
			case <-t.C:
				continue
			case <-l.stop:
				t.Stop()
				return chunk{}, false
			}
		}
		l.q[0] = chunk{}
		l.q = l.q[1:]
		l.size -= len(ch.b)
		l.mu.Unlock()
		signal(l.room)
		return ch, true
	}
}

// halt stops c's delay lines. Called with Proxy.mu held.
func (c *pconn) halt() {
	for _, l := range c.lines {
		l.halt()
	}
}

// read reads one direction of c from src into l, stamping every chunk with
// its link's latency and loss. An orderly end is queued (to be passed on as a
// half-close); an error ends c.
func (p *Proxy) read(c *pconn, l *dline, src net.Conn, r *rand.Rand) {
	buf := make([]byte, chunkSize)
	var last time.Time // when the chunk ahead is due
	lost := 0          // losses in a row
	for {
		n, err := src.Read(buf)
		if n > 0 {
			f := p.faultsFor(c.src)
			ch := chunk{b: append([]byte(nil), buf[:n]...)}
			ch.at, ch.delayed = due(time.Now(), f.lat, r)
			if ch.at.Before(last) {
				ch.at = last
			}
			if f.loss > 0 {
				switch {
				case r.Float64() < f.loss/resetRatio:
					ch.reset = true
				case r.Float64() < f.loss:
					lost++
					ch.stalled = true
					ch.at = ch.at.Add(p.rto(lost))
				default:
					lost = 0
				}
			} else {
				lost = 0
			}
			last = ch.at
			if !l.push(ch) || ch.reset {
				return // halted; or nothing more gets through
			}
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				ch := chunk{eof: true}
				ch.at, _ = due(time.Now(), p.faultsFor(c.src).lat, r)
				if ch.at.Before(last) {
					ch.at = last
				}
				l.push(ch)
				return
			}
			p.fail(c)
			return
		}
	}
}

// due returns when a chunk read at now is due under lat, and whether it is
// delayed.
func due(now time.Time, lat latency, r *rand.Rand) (time.Time, bool) {
	d := lat.d
	if lat.jitter > 0 {
		d += time.Duration(r.Int64N(2*int64(lat.jitter)+1)) - lat.jitter
	}
	if d <= 0 {
		return now, false
	}
	return now.Add(d), true
}

// rto is the stall of the n-th loss in a row.
func (p *Proxy) rto(n int) time.Duration {
	d := p.cfg.LossRTO
	for i := 1; i < n && d < p.cfg.LossMaxRTO; i++ {
		d *= 2
	}
	return min(d, p.cfg.LossMaxRTO)
}

// write writes the chunks of l to dst as they fall due, until the end of the
// direction, a loss reset, an error or a halt.
func (p *Proxy) write(c *pconn, l *dline, dst net.Conn) {
	t := time.NewTimer(time.Hour)
	t.Stop()
	for {
		ch, ok := l.next(t)
		if !ok {
			return
		}
		switch {
		case ch.reset:
			p.lossReset(c)
			return
		case ch.eof:
			if cw, ok := dst.(interface{ CloseWrite() error }); ok {
				if err := cw.CloseWrite(); err != nil {
					p.fail(c)
				}
			}
			return
		}
		if ch.delayed {
			p.delayed.Add(1)
		}
		if ch.stalled {
			p.stalls.Add(1)
		}
		if _, err := dst.Write(ch.b); err != nil {
			p.fail(c)
			return
		}
	}
}

// fail ends c after an error on either side (which unblocks the rest of its
// goroutines), unless it is held or done.
func (p *Proxy) fail(c *pconn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !c.done && !c.held {
		p.finishLocked(c, false)
	}
}

// lossReset resets both sides of c: loss killed it.
func (p *Proxy) lossReset(c *pconn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if c.done || c.held {
		return
	}
	p.stats.LossResets++
	if tc, ok := c.up.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	p.finishLocked(c, true)
}
