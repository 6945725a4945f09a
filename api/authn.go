package api

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/berth-registry/berth/meta"
)

// Authentication: who is calling. A request carries nothing (anonymous), a
// Bearer token from /auth/token (verified against the cluster's keys; the hot
// path), the console's session cookie (only without an Authorization header;
// see console.go), or Basic credentials (a user or a robot; checked against the bcrypt
// hash through a short-lived cache so the slow hash is not paid per request).
//
// For /v2/ the verified token itself is what is granted: its access claim is
// checked by authorize without reading the metadata. The token's subject is
// turned back into a Principal (from current metadata) only when a decision
// needs it: the catalog, a denial, the management API.

const (
	basicCacheTTL = 30 * time.Second
	basicCacheMax = 4096
)

// dummyHash is a bcrypt hash (cost 10, the default) of a password nobody has. An
// unknown user name is checked against it so that it takes as long to refuse as
// a wrong password.
var dummyHash = []byte("$2a$10$nZ8ftkZ/C.0gfaBzVdxTdOh3gvka5NKb5qfnAdft3TJp.5n.4rA0W")

type authCtxKey struct{}

// authInfo is what authentication established for one request. It is used by
// the request's goroutine only.
type authInfo struct {
	token      *verifiedToken // nil unless the request carried a Bearer token
	principal  *Principal     // for a token, set once resolved
	resolveErr error
	resolved   bool
}

// withAuth returns r carrying info, for authorize and canPull.
func withAuth(r *http.Request, info *authInfo) *http.Request {
	return r.WithContext(context.WithValue(r.Context(), authCtxKey{}, info))
}

// requestAuth returns the authentication of r: the one serveV2 stored, or a
// fresh one.
func (s *Server) requestAuth(r *http.Request) (*authInfo, error) {
	if info, ok := r.Context().Value(authCtxKey{}).(*authInfo); ok {
		return info, nil
	}
	return s.authn(r)
}

// authenticate is the one authentication point: it returns the caller of r, built
// from the current metadata. No credentials: an anonymous principal and no error.
// Bad credentials or a bad token: a 401 UNAUTHORIZED (an *authError, which
// Server.writeError answers with the Bearer challenge, error="invalid_token" for
// tokens); too many failed logins: 429 TOOMANYREQUESTS with Retry-After. A token
// whose user was since deleted or disabled, or whose robot was revoked, disabled
// or expired, is refused as invalid_token.
func (s *Server) authenticate(r *http.Request) (*Principal, error) {
	info, err := s.requestAuth(r)
	if err != nil {
		return nil, err
	}
	return s.principalOf(info)
}

// authn reads the credentials of r. A token is verified but its subject is not
// looked up (see principalOf).
func (s *Server) authn(r *http.Request) (*authInfo, error) {
	h := r.Header.Get("Authorization")
	if h == "" {
		// The console's session cookie (api/console.go), with its CSRF check.
		if info, ok, err := s.sessionAuthn(r); ok {
			return info, err
		}
		return &authInfo{principal: &Principal{Kind: Anonymous}, resolved: true}, nil
	}
	scheme, cred, _ := strings.Cut(h, " ")
	switch {
	case strings.EqualFold(scheme, "Bearer"):
		vt, err := s.verifyToken(strings.TrimSpace(cred))
		if err != nil {
			s.auth.metrics.fail(failInvalidToken)
			if !errors.Is(err, errTokenInvalid) {
				return nil, err // reading the key set failed: a 500, not the client's fault
			}
			s.log.LogAttrs(r.Context(), slog.LevelDebug, "token refused",
				slog.String("id", r.Header.Get("X-Request-Id")), slog.String("error", err.Error()))
			return nil, s.invalidToken()
		}
		return &authInfo{token: vt}, nil
	case strings.EqualFold(scheme, "Basic"):
		user, pass, ok := r.BasicAuth()
		if !ok {
			break
		}
		p, err := s.checkPassword(r, user, pass)
		if errors.Is(err, errBadCredentials) {
			return nil, &authError{ae: errBadCredentials, challenge: true}
		}
		if err != nil {
			return nil, err
		}
		return &authInfo{principal: p, resolved: true}, nil
	}
	s.auth.metrics.fail(failMalformed)
	return nil, &authError{ae: errUnauthorized("unsupported or malformed Authorization header"), challenge: true}
}

// principalOf returns the principal of info, resolving a token's subject once.
func (s *Server) principalOf(info *authInfo) (*Principal, error) {
	if !info.resolved {
		info.resolved = true
		info.principal, info.resolveErr = s.subjectPrincipal(info.token.subject)
	}
	return info.principal, info.resolveErr
}

// subjectPrincipal rebuilds the principal a token was issued to from the current
// metadata.
func (s *Server) subjectPrincipal(name string) (*Principal, error) {
	if name == "" {
		return &Principal{Kind: Anonymous}, nil
	}
	if project, robot, ok := meta.ParseRobotLogin(name); ok {
		rb, err := meta.GetRobot(s.meta, project, robot)
		if errors.Is(err, meta.ErrRobotUnknown) {
			return nil, s.invalidToken()
		}
		if err != nil {
			return nil, err
		}
		if !robotActive(rb, s.cfg.Clock()) {
			return nil, s.invalidToken()
		}
		return robotPrincipal(rb), nil
	}
	u, err := meta.GetUser(s.meta, name)
	if errors.Is(err, meta.ErrUserUnknown) {
		return nil, s.invalidToken()
	}
	if err != nil {
		return nil, err
	}
	if u.Disabled {
		return nil, s.invalidToken()
	}
	return s.userPrincipal(u)
}

func (s *Server) userPrincipal(u *meta.User) (*Principal, error) {
	ms, err := meta.MembershipsOf(s.meta, u.Name)
	if err != nil {
		return nil, err
	}
	roles := make(map[string]meta.Role, len(ms))
	for _, m := range ms {
		roles[m.Project] = m.Role
	}
	return &Principal{Kind: UserPrincipal, Name: u.Name, CloudAdmin: u.CloudAdmin, Roles: roles}, nil
}

func robotPrincipal(rb *meta.Robot) *Principal {
	return &Principal{Kind: RobotPrincipal, Name: meta.RobotLogin(rb.Project, rb.Name), Robot: rb}
}

// robotActive reports whether a robot may authenticate at now.
func robotActive(rb *meta.Robot, now time.Time) bool {
	return !rb.Disabled && (rb.Expires.IsZero() || now.Before(rb.Expires))
}

// checkPassword authenticates a user or robot by password, rate-limited per
// client address and name. It returns errBadCredentials for an unknown name, a
// wrong password, or a disabled user or robot (told apart in the metric only),
// a 429 authError when the caller is locked out, or a storage error.
func (s *Server) checkPassword(r *http.Request, name, pass string) (*Principal, error) {
	if len(name) > maxCredentials {
		name = name[:maxCredentials]
	}
	ip, now := clientIP(r), s.cfg.Clock()
	if wait := s.auth.limiter.blocked(ip, name, now); wait > 0 {
		s.auth.metrics.fail(failRateLimited)
		return nil, tooManyAttempts(wait)
	}
	p, reason, err := s.verifyPassword(name, pass, now)
	if err == nil && reason != "" && s.cluster != nil {
		// A node that has not caught up (it just joined, or its data was
		// wiped) may not know the account yet: catch up before refusing.
		if berr := s.cluster.ReadBarrier(r.Context()); berr != nil {
			return nil, berr
		}
		p, reason, err = s.verifyPassword(name, pass, now)
	}
	if err != nil {
		return nil, err
	}
	if reason != "" {
		s.auth.limiter.fail(ip, name, now)
		s.auth.metrics.fail(reason)
		return nil, errBadCredentials
	}
	return p, nil
}

// verifyPassword returns the principal, or the failure reason.
func (s *Server) verifyPassword(name, pass string, now time.Time) (*Principal, string, error) {
	var hash []byte
	active := false
	var build func() (*Principal, error)
	if project, robot, ok := meta.ParseRobotLogin(name); ok {
		rb, err := meta.GetRobot(s.meta, project, robot)
		switch {
		case errors.Is(err, meta.ErrRobotUnknown):
		case err != nil:
			return nil, "", err
		default:
			hash, active = rb.SecretHash, robotActive(rb, now)
			build = func() (*Principal, error) { return robotPrincipal(rb), nil }
		}
	} else if meta.ValidName(name) {
		u, err := meta.GetUser(s.meta, name)
		switch {
		case errors.Is(err, meta.ErrUserUnknown):
		case err != nil:
			return nil, "", err
		default:
			hash, active = u.PasswordHash, !u.Disabled
			build = func() (*Principal, error) { return s.userPrincipal(u) }
		}
	}
	if len(hash) == 0 || len(pass) > maxCredentials {
		_ = s.auth.compare(dummyHash, []byte(pass[:min(len(pass), 72)]))
		return nil, failBadCredentials, nil
	}
	if !s.passwordMatches(name, pass, hash, now) {
		return nil, failBadCredentials, nil
	}
	// Checked after the password, so that a disabled account cannot be told
	// from a wrong password without knowing the password.
	if !active {
		return nil, failDisabled, nil
	}
	p, err := build()
	return p, "", err
}

// passwordMatches checks pass against hash through the cache. The cache key
// covers the stored hash, so a password change takes effect at once.
func (s *Server) passwordMatches(name, pass string, hash []byte, now time.Time) bool {
	k := basicKey(name, pass, hash)
	if s.auth.basic.hit(k, now) {
		s.auth.metrics.cacheHits.Inc()
		return true
	}
	if s.auth.compare(hash, []byte(pass)) != nil {
		return false
	}
	s.auth.basic.put(k, now)
	return true
}

func basicKey(name, pass string, hash []byte) [32]byte {
	h := sha256.New()
	var n [8]byte
	for _, b := range [][]byte{[]byte(name), []byte(pass), hash} {
		binary.BigEndian.PutUint64(n[:], uint64(len(b)))
		h.Write(n[:])
		h.Write(b)
	}
	var k [32]byte
	h.Sum(k[:0])
	return k
}

// basicCache remembers, for basicCacheTTL, the credentials whose hash check
// succeeded. Failures are never cached. It is safe for concurrent use.
type basicCache struct {
	mu sync.Mutex // guards m
	m  map[[32]byte]time.Time
}

func newBasicCache() *basicCache { return &basicCache{m: map[[32]byte]time.Time{}} }

func (c *basicCache) hit(k [32]byte, now time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	exp, ok := c.m[k]
	if ok && !now.Before(exp) {
		delete(c.m, k)
		return false
	}
	return ok
}

func (c *basicCache) put(k [32]byte, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= basicCacheMax {
		for k, exp := range c.m {
			if !now.Before(exp) {
				delete(c.m, k)
			}
		}
		if len(c.m) >= basicCacheMax {
			clear(c.m)
		}
	}
	c.m[k] = now.Add(basicCacheTTL)
}

// clientIP is the address the request came from. Forwarding headers are not
// trusted: a client could name any address in them and escape its rate limit.
func clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}
