package api

import (
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Failed logins are limited by two token buckets: one per client address and
// name (a password guesser against one account), one per client address (a
// sprayer trying many names). Only failures take tokens; a caller with an empty
// bucket is refused with 429 and Retry-After before its credentials are checked,
// so a locked-out guesser learns nothing and costs no hash. Time comes from the
// server's clock, so tests can move it.
const (
	loginFailuresPerMinute   = 10  // per address and name
	addressFailuresPerMinute = 100 // per address
	maxLimiters              = 1 << 16
)

// loginLimiter is safe for concurrent use.
type loginLimiter struct {
	mu     sync.Mutex // guards the maps
	byName map[string]*rate.Limiter
	byAddr map[string]*rate.Limiter
}

func newLoginLimiter() *loginLimiter {
	return &loginLimiter{byName: map[string]*rate.Limiter{}, byAddr: map[string]*rate.Limiter{}}
}

func perMinute(n int) *rate.Limiter { return rate.NewLimiter(rate.Limit(float64(n)/60), n) }

// blocked returns how long the caller must wait before its next attempt; 0 if
// it may try now.
func (l *loginLimiter) blocked(addr, name string, now time.Time) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	var wait time.Duration
	for _, lim := range []*rate.Limiter{l.byName[addr+"\x00"+name], l.byAddr[addr]} {
		if lim == nil {
			continue
		}
		if t := lim.TokensAt(now); t < 1 {
			w := time.Duration((1 - t) / float64(lim.Limit()) * float64(time.Second))
			wait = max(wait, max(w, time.Second))
		}
	}
	return wait
}

// fail records a failed attempt.
func (l *loginLimiter) fail(addr, name string, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	take := func(m map[string]*rate.Limiter, key string, n int) {
		lim := m[key]
		if lim == nil {
			if len(m) >= maxLimiters {
				prune(m, now)
			}
			lim = perMinute(n)
			m[key] = lim
		}
		lim.AllowN(now, 1)
	}
	take(l.byName, addr+"\x00"+name, loginFailuresPerMinute)
	take(l.byAddr, addr, addressFailuresPerMinute)
}

// prune drops the buckets that have refilled (they remember nothing), and half
// of the rest if that was not enough to bound memory.
func prune(m map[string]*rate.Limiter, now time.Time) {
	for k, lim := range m {
		if lim.TokensAt(now) >= float64(lim.Burst()) {
			delete(m, k)
		}
	}
	if len(m) >= maxLimiters {
		i := 0
		for k := range m {
			if i%2 == 0 {
				delete(m, k)
			}
			i++
		}
	}
}
