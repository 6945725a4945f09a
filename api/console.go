package api

// The web console and the session it runs on.
//
// Static files. The console (package api/console, embedded) is served at "/"
// (index.html) and "/console/<file>", with explicit content types (the host's
// MIME table is not consulted), an ETag per file so that reloads cost a 304,
// and a Content-Security-Policy that allows nothing but this origin: no
// inline script, no other host, no framing.
//
// Sessions. A browser cannot keep a Bearer token safe from script, so the
// console logs in with POST /api/v1/session {"username","password"}: the
// password is checked exactly as /auth/token checks it (same rate limit, same
// failure metric), and the answer sets the cookie berth_session: HttpOnly,
// SameSite=Strict, Path=/, Secure when the client came over https. Its value is
// an ES256 JWT signed with the cluster's token keys (so every node accepts a
// session another node opened, and nothing is stored), for the audience
// "<service>-console": a session is never accepted as a Bearer token, and a
// Bearer token is never accepted as a session. Its subject is looked up on
// every request, so disabling or deleting a user ends their sessions at once.
//
// CSRF. The token carries a random value (claim "csrf") that the login answer
// and GET /api/v1/session hand to the page. A request authenticated by the
// cookie whose method may change something (anything but GET, HEAD, OPTIONS)
// must send it back in the X-CSRF-Token header, else it is refused with 403
// and nothing changes. Another site can make the browser send the cookie (not
// with SameSite=Strict, but older browsers and same-site subdomains) but
// cannot read the value, which lives only in the page of this origin. The
// login itself takes application/json only, which a cross-site form cannot
// send without a preflight that we never grant.
//
// Lifetime. A session token lives sessionTTL; GET /api/v1/session (which the
// console calls while the user is active) renews it once it is older than
// sessionRenewAfter, keeping its csrf value and login time, up to sessionMaxAge
// after the login. DELETE /api/v1/session expires the cookie. Tokens are not
// revocable (no state is kept), so a copied cookie stays valid until its
// expiry, at most sessionTTL after its last renewal.

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/julienschmidt/httprouter"

	"github.com/berth-registry/berth/api/console"
)

const (
	sessionCookie = "berth_session"
	// csrfHeader carries the session's CSRF value on state-changing requests.
	csrfHeader = "X-CSRF-Token"

	sessionTTL        = 30 * time.Minute
	sessionRenewAfter = 5 * time.Minute
	sessionMaxAge     = 12 * time.Hour
)

// sessionClaims are the claims of a console session token.
type sessionClaims struct {
	jwt.RegisteredClaims
	CSRF     string `json:"csrf"`
	AuthTime int64  `json:"auth_time"` // when the password was checked (Unix seconds)
}

// sessionAudience is the audience of session tokens, never the Bearer tokens'.
func (s *Server) sessionAudience() string { return s.cfg.Service + "-console" }

// errCSRF refuses a cookie-authenticated change without the session's CSRF value.
var errCSRF = newError(CodeDenied, http.StatusForbidden,
	"missing or wrong %s header for this console session; reload the console", csrfHeader)

// safeMethod reports whether method changes nothing (RFC 9110 section 9.2.1).
func safeMethod(method string) bool {
	return method == http.MethodGet || method == http.MethodHead || method == http.MethodOptions
}

// sessionAuthn authenticates r by its session cookie, for authn. ok is false
// when r carries no session cookie (authentication goes on without it). A bad or
// expired session is 401 (the console then asks to log in again); a cookie
// without the CSRF header on a state-changing request is 403.
func (s *Server) sessionAuthn(r *http.Request) (info *authInfo, ok bool, err error) {
	c, err := r.Cookie(sessionCookie)
	if err != nil || c.Value == "" {
		return nil, false, nil
	}
	claims, err := s.verifySession(c.Value)
	if err != nil {
		return nil, true, err
	}
	if !safeMethod(r.Method) && !csrfMatches(r, claims) {
		return nil, true, errCSRF
	}
	p, err := s.subjectPrincipal(claims.Subject)
	if err != nil {
		return nil, true, err
	}
	return &authInfo{principal: p, resolved: true}, true, nil
}

func csrfMatches(r *http.Request, claims *sessionClaims) bool {
	got := r.Header.Get(csrfHeader)
	return got != "" && subtle.ConstantTimeCompare([]byte(got), []byte(claims.CSRF)) == 1
}

// verifySession checks a session token as verifyToken checks Bearer tokens
// (ES256 by a key of the cluster's key set, issuer, expiry with leeway), for the
// session audience. Every refusal but a failure to read the key set is an
// invalidToken error.
func (s *Server) verifySession(raw string) (*sessionClaims, error) {
	if len(raw) > maxTokenBytes {
		return nil, s.invalidSession()
	}
	parser := jwt.NewParser(
		jwt.WithValidMethods([]string{tokenAlg}),
		jwt.WithAudience(s.sessionAudience()),
		jwt.WithIssuer(tokenIssuer),
		jwt.WithLeeway(tokenLeeway),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithTimeFunc(s.cfg.Clock),
	)
	claims := &sessionClaims{}
	t, err := parser.ParseWithClaims(raw, claims, func(t *jwt.Token) (any, error) {
		kid, _ := t.Header["kid"].(string)
		if kid == "" || len(kid) > 128 {
			return nil, fmt.Errorf("%w: no key id", errTokenInvalid)
		}
		return s.verificationKey(kid)
	})
	if err != nil {
		if !errors.Is(err, errTokenInvalid) && errors.Is(err, jwt.ErrTokenUnverifiable) {
			return nil, err // reading the key set failed
		}
		s.auth.metrics.fail(failInvalidToken)
		return nil, s.invalidSession()
	}
	if !t.Valid || claims.CSRF == "" || claims.Subject == "" || claims.IssuedAt == nil ||
		s.cfg.Clock().After(time.Unix(claims.AuthTime, 0).Add(sessionMaxAge+tokenLeeway)) {
		s.auth.metrics.fail(failInvalidToken)
		return nil, s.invalidSession()
	}
	return claims, nil
}

func (s *Server) invalidSession() error {
	return &authError{ae: errUnauthorized("the console session is invalid or expired; log in again"), challenge: true, reason: "invalid_token"}
}

// signSession signs a session token for user. It expires sessionTTL from now,
// or sessionMaxAge after authTime if that is sooner.
func (s *Server) signSession(r *http.Request, user, csrf string, authTime time.Time) (string, time.Time, error) {
	kid, key, err := s.signingKey(r.Context())
	if err != nil {
		return "", time.Time{}, err
	}
	now := s.cfg.Clock().UTC().Truncate(time.Second)
	exp := now.Add(sessionTTL)
	if limit := authTime.Add(sessionMaxAge); limit.Before(exp) {
		exp = limit
	}
	var jti [16]byte
	_, _ = rand.Read(jti[:])
	t := jwt.NewWithClaims(jwt.SigningMethodES256, sessionClaims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    tokenIssuer,
			Subject:   user,
			Audience:  jwt.ClaimStrings{s.sessionAudience()},
			ExpiresAt: jwt.NewNumericDate(exp),
			NotBefore: jwt.NewNumericDate(now),
			IssuedAt:  jwt.NewNumericDate(now),
			ID:        hex.EncodeToString(jti[:]),
		},
		CSRF:     csrf,
		AuthTime: authTime.Unix(),
	})
	t.Header["kid"] = kid
	signed, err := t.SignedString(key)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("sign session: %w", err)
	}
	return signed, exp, nil
}

// setSessionCookie sets (value != "") or clears the session cookie.
func (s *Server) setSessionCookie(w http.ResponseWriter, r *http.Request, value string, exp time.Time) {
	c := &http.Cookie{
		Name: sessionCookie, Value: value, Path: "/",
		HttpOnly: true, SameSite: http.SameSiteStrictMode,
		Secure: strings.HasPrefix(s.realmBase(r), "https:"),
	}
	if value == "" {
		c.MaxAge = -1
		c.Expires = time.Unix(1, 0)
	} else {
		c.Expires = exp
		c.MaxAge = max(1, int(exp.Sub(s.cfg.Clock()).Seconds()))
	}
	http.SetCookie(w, c)
}

// sessionJSON is the answer of the session routes.
type sessionJSON struct {
	User      string    `json:"user"`
	CSRFToken string    `json:"csrfToken"` // send it as X-CSRF-Token on every change
	Expires   time.Time `json:"expires"`   // when the session ends unless renewed
	LoginTime time.Time `json:"loginTime"`
}

type sessionRequest struct {
	Username string `json:"username"`
	Password string `json:"password"`
}

// createSession: POST /api/v1/session logs a user in (robots use their secret
// with the registry clients, not the console).
func (s *Server) createSession(w http.ResponseWriter, r *http.Request, _ *Principal, _ httprouter.Params) error {
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/json" {
		return newError(CodeInvalid, http.StatusUnsupportedMediaType, "the body must be application/json")
	}
	var req sessionRequest
	if err := decodeMgmtBody(w, r, &req); err != nil {
		return err
	}
	if req.Username == "" || req.Password == "" {
		return mgmtInvalid("username and password are required")
	}
	p, err := s.checkPassword(r, req.Username, req.Password)
	if err != nil {
		return err
	}
	if p.Kind != UserPrincipal {
		return mgmtDenied("robot accounts cannot log in to the console; use their secret with docker login")
	}
	var b [32]byte
	_, _ = rand.Read(b[:])
	csrf := base64.RawURLEncoding.EncodeToString(b[:])
	now := s.cfg.Clock().UTC().Truncate(time.Second)
	tok, exp, err := s.signSession(r, p.Name, csrf, now)
	if err != nil {
		return err
	}
	s.setSessionCookie(w, r, tok, exp)
	return mgmtReply(w, r, http.StatusCreated, sessionJSON{User: p.Name, CSRFToken: csrf, Expires: exp, LoginTime: now})
}

// getSession: GET /api/v1/session answers the session of the cookie (401
// without one) and renews it when it is older than sessionRenewAfter.
func (s *Server) getSession(w http.ResponseWriter, r *http.Request, _ *Principal, _ httprouter.Params) error {
	c, err := r.Cookie(sessionCookie)
	if err != nil || c.Value == "" {
		return &authError{ae: errUnauthorized("no console session; log in"), challenge: true}
	}
	claims, err := s.verifySession(c.Value)
	if err != nil {
		return err
	}
	p, err := s.subjectPrincipal(claims.Subject)
	if err != nil {
		return err
	}
	authTime := time.Unix(claims.AuthTime, 0).UTC()
	exp := claims.ExpiresAt.UTC()
	if s.cfg.Clock().Sub(claims.IssuedAt.Time) >= sessionRenewAfter && exp.Before(authTime.Add(sessionMaxAge)) {
		tok, newExp, err := s.signSession(r, p.Name, claims.CSRF, authTime)
		if err != nil {
			return err
		}
		s.setSessionCookie(w, r, tok, newExp)
		exp = newExp
	}
	return mgmtReply(w, r, http.StatusOK, sessionJSON{User: p.Name, CSRFToken: claims.CSRF, Expires: exp, LoginTime: authTime})
}

// deleteSession: DELETE /api/v1/session logs out: it expires the cookie. A
// valid session must send its CSRF value (so another site cannot log the user
// out); an invalid or expired one is cleared all the same.
func (s *Server) deleteSession(w http.ResponseWriter, r *http.Request, _ *Principal, _ httprouter.Params) error {
	if c, err := r.Cookie(sessionCookie); err == nil && c.Value != "" {
		if claims, err := s.verifySession(c.Value); err == nil && !csrfMatches(r, claims) {
			return errCSRF
		}
	}
	s.setSessionCookie(w, r, "", time.Time{})
	return mgmtNoContent(w)
}

// consoleFile is one static file of the console, ready to serve.
type consoleFile struct {
	body  []byte
	ctype string
	etag  string
}

// consoleTypes are the content types of the console's files, by extension.
var consoleTypes = map[string]string{
	".html": "text/html; charset=utf-8",
	".js":   "text/javascript; charset=utf-8",
	".css":  "text/css; charset=utf-8",
	".json": "application/json; charset=utf-8",
	".svg":  "image/svg+xml",
}

// consoleCSP allows the page to load and call only its own origin.
const consoleCSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

// loadConsole reads the embedded files once.
func loadConsole() (map[string]*consoleFile, error) {
	files := map[string]*consoleFile{}
	err := fs.WalkDir(console.Files, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		ctype, ok := consoleTypes[path.Ext(p)]
		if !ok {
			return nil // the Go source of the package
		}
		b, err := fs.ReadFile(console.Files, p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		files[p] = &consoleFile{body: b, ctype: ctype, etag: `"` + hex.EncodeToString(sum[:12]) + `"`}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("api: console files: %w", err)
	}
	if files["index.html"] == nil {
		return nil, errors.New("api: console files: no index.html")
	}
	return files, nil
}

// registerConsole serves the console's files. The session routes are
// management routes (mgmtRoutes).
func (s *Server) registerConsole(r *httprouter.Router) {
	files, err := loadConsole()
	if err != nil {
		// The files are compiled in; a missing one is a broken build, which
		// TestConsoleFiles catches. Serve a plain error rather than panic.
		s.log.Error("console disabled", "error", err)
		files = map[string]*consoleFile{}
	}
	serve := func(w http.ResponseWriter, req *http.Request, name string) {
		f := files[name]
		if f == nil {
			s.writeError(w, req, errNotFound)
			return
		}
		h := w.Header()
		h.Set("Content-Type", f.ctype)
		h.Set("ETag", f.etag)
		h.Set("Cache-Control", "no-cache") // revalidate: a new binary serves new files
		h.Set("X-Content-Type-Options", "nosniff")
		if name == "index.html" {
			h.Set("Content-Security-Policy", consoleCSP)
			h.Set("X-Frame-Options", "DENY")
			h.Set("Referrer-Policy", "same-origin")
		}
		// No modification time: ServeContent answers If-None-Match with the ETag.
		http.ServeContent(w, req, name, time.Time{}, bytes.NewReader(f.body))
	}
	index := func(w http.ResponseWriter, req *http.Request, _ httprouter.Params) { serve(w, req, "index.html") }
	file := func(w http.ResponseWriter, req *http.Request, ps httprouter.Params) {
		serve(w, req, strings.TrimPrefix(ps.ByName("file"), "/"))
	}
	for _, m := range []string{http.MethodGet, http.MethodHead} {
		r.Handle(m, "/", index)
		r.Handle(m, "/console/*file", file)
	}
	r.GET("/console", func(w http.ResponseWriter, req *http.Request, _ httprouter.Params) {
		http.Redirect(w, req, "/", http.StatusFound)
	})
}
