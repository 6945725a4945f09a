package api

import (
	"encoding/json"
	"errors"
	"mime"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/julienschmidt/httprouter"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/crypto/bcrypt"
)

// The token service: /auth/token trades credentials for a short-lived signed
// token whose access claim is what was asked for, intersected with what the
// caller may do (Docker registry token specification, docs/spec/auth/token.md
// and oauth.md in Distribution).
//
//   - GET with Basic credentials (or none: an anonymous token), query service,
//     scope (repeatable; "repository:<name>:<actions>" or "registry:catalog:*"),
//     account, offline_token. Answer {"token", "access_token", "expires_in",
//     "issued_at"}.
//   - POST application/x-www-form-urlencoded, grant_type=password with username,
//     password, scope (space separated), service, client_id: containerd's OAuth2
//     flow. Answer {"access_token", "token", "expires_in", "issued_at", "scope"}.
//     grant_type=refresh_token (we issue no refresh tokens) and any other grant
//     answer 400 {"error":"unsupported_grant_type"}, on which containerd falls
//     back to GET.
//
// Asking for more than is allowed is not an error: the token simply lacks it,
// and the registry answers insufficient_scope when it is used for more.
const (
	maxScopes      = 64  // scopes looked at per request; the rest are ignored
	maxScopeLen    = 512 // a longer scope string is ignored
	maxTokenForm   = 16 << 10
	maxCredentials = 1024 // bytes of a user name or password looked at
)

// authState is the Server's authentication machinery.
type authState struct {
	keys    *keySet
	parser  *jwt.Parser
	tokens  *tokenCache
	basic   *basicCache
	limiter *loginLimiter
	metrics *authMetrics
	// compare checks a password against its bcrypt hash; tests count its calls.
	compare func(hash, password []byte) error
}

func newAuthState(cfg Config) (*authState, error) {
	m, err := newAuthMetrics(cfg.Registerer)
	if err != nil {
		return nil, err
	}
	return &authState{
		keys:    &keySet{},
		parser:  newTokenParser(cfg),
		tokens:  &tokenCache{max: tokenCacheMax},
		basic:   newBasicCache(),
		limiter: newLoginLimiter(),
		metrics: m,
		compare: bcrypt.CompareHashAndPassword,
	}, nil
}

// authMetrics count token issues, refusals by reason and Basic cache hits. No
// label carries a user name.
type authMetrics struct {
	tokensIssued prometheus.Counter
	failures     *prometheus.CounterVec
	cacheHits    prometheus.Counter
}

// Failure reasons, the only values of berth_auth_failures_total's label.
const (
	failBadCredentials = "bad_credentials" // unknown user or wrong password
	failDisabled       = "disabled"        // disabled user or robot, or an expired robot
	failInvalidToken   = "invalid_token"   // a Bearer token that does not verify
	failRateLimited    = "rate_limited"    // too many failed logins
	failMalformed      = "malformed"       // an Authorization header we cannot read
)

func newAuthMetrics(reg prometheus.Registerer) (*authMetrics, error) {
	m := &authMetrics{
		tokensIssued: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "berth_auth_tokens_issued_total", Help: "Bearer tokens issued by /auth/token.",
		}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "berth_auth_failures_total", Help: "Refused authentications by reason.",
		}, []string{"reason"}),
		cacheHits: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "berth_auth_basic_cache_hits_total", Help: "Basic credential checks answered without running the password hash.",
		}),
	}
	for _, r := range []string{failBadCredentials, failDisabled, failInvalidToken, failRateLimited, failMalformed} {
		m.failures.WithLabelValues(r)
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.tokensIssued, m.failures, m.cacheHits} {
			if err := reg.Register(c); err != nil {
				return nil, err
			}
		}
	}
	return m, nil
}

func (m *authMetrics) fail(reason string) { m.failures.WithLabelValues(reason).Inc() }

// registerAuth serves the token endpoint.
func (s *Server) registerAuth(r *httprouter.Router) {
	r.GET("/auth/token", s.serveToken)
	r.POST("/auth/token", s.serveOAuthToken)
}

// authError is a refusal by authentication or authorization: the OCI error to
// send and the headers that go with it. Server.writeError sets the headers
// (the challenge's realm depends on the request), then the error table answers
// the wrapped apiError.
type authError struct {
	ae         *apiError
	challenge  bool   // WWW-Authenticate: Bearer ...
	scope      string // the challenge's scope; "" for none
	reason     string // the challenge's error: "", "invalid_token" or "insufficient_scope"
	basic      bool   // WWW-Authenticate: Basic (the token endpoint's own refusals)
	retryAfter time.Duration
}

func (e *authError) Error() string { return e.ae.Error() }
func (e *authError) Unwrap() error { return e.ae }

// setHeaders sets the headers of an authError on w.
func (s *Server) setAuthHeaders(w http.ResponseWriter, r *http.Request, e *authError) {
	h := w.Header()
	if e.challenge {
		h.Set("WWW-Authenticate", s.challenge(r, e.scope, e.reason))
	}
	if e.basic {
		h.Set("WWW-Authenticate", `Basic realm="`+quoteSafe(s.cfg.Service)+`"`)
	}
	if e.retryAfter > 0 {
		h.Set("Retry-After", strconv.Itoa(int((e.retryAfter+time.Second-1)/time.Second)))
	}
}

// challenge builds the Bearer challenge. The realm is the configured external URL
// or the scheme and Host the client used: clients such as crane refuse a realm on
// another host of a loopback address, and behind a load balancer the client's
// Host is the balancer's.
func (s *Server) challenge(r *http.Request, scope, reason string) string {
	var b strings.Builder
	b.WriteString(`Bearer realm="`)
	b.WriteString(quoteSafe(s.realmBase(r)))
	b.WriteString(`/auth/token",service="`)
	b.WriteString(quoteSafe(s.cfg.Service))
	b.WriteByte('"')
	if scope != "" {
		b.WriteString(`,scope="`)
		b.WriteString(quoteSafe(scope))
		b.WriteByte('"')
	}
	if reason != "" {
		b.WriteString(`,error="`)
		b.WriteString(reason)
		b.WriteByte('"')
	}
	return b.String()
}

func (s *Server) realmBase(r *http.Request) string {
	if s.cfg.ExternalURL != "" {
		return strings.TrimRight(s.cfg.ExternalURL, "/")
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	// A TLS-terminating load balancer says which scheme the client used.
	if p := r.Header.Get("X-Forwarded-Proto"); p == "https" || p == "http" {
		scheme = p
	}
	return scheme + "://" + r.Host
}

// quoteSafe drops the characters that would end or escape a quoted-string.
func quoteSafe(s string) string {
	if !strings.ContainsAny(s, "\"\\\r\n") {
		return s
	}
	return strings.Map(func(r rune) rune {
		if r == '"' || r == '\\' || r == '\r' || r == '\n' {
			return -1
		}
		return r
	}, s)
}

// Constructors of the refusals. Messages never echo client input.
func errUnauthorized(msg string) *apiError {
	return newError(CodeUnauthorized, http.StatusUnauthorized, "%s", msg)
}

func (s *Server) needLogin(scope string) error {
	return &authError{ae: errUnauthorized("authentication required"), challenge: true, scope: scope}
}

func (s *Server) invalidToken() error {
	return &authError{ae: errUnauthorized("invalid or expired token; request a new one"), challenge: true, reason: "invalid_token"}
}

func (s *Server) insufficientScope(scope string) error {
	return &authError{ae: errUnauthorized("the token does not grant this access; request a token with this scope"),
		challenge: true, scope: scope, reason: "insufficient_scope"}
}

var errBadCredentials = errUnauthorized("incorrect username or password")

func tooManyAttempts(wait time.Duration) error {
	return &authError{ae: newError(CodeTooManyRequests, http.StatusTooManyRequests, "too many failed login attempts; retry later"), retryAfter: wait}
}

// parseScopes reads requested scopes: each value may hold several separated by
// spaces (the OAuth2 form). Malformed scopes, unknown types or actions, and
// invalid repository names are dropped without comment; requests for the same
// resource are merged. At most maxScopes are looked at.
func parseScopes(values []string) []accessEntry {
	var out []accessEntry
	seen := 0
	for _, v := range values {
		for _, raw := range strings.Fields(v) {
			if seen++; seen > maxScopes {
				return out
			}
			e, ok := parseScope(raw)
			if !ok {
				continue
			}
			merged := false
			for i := range out {
				if out[i].Type == e.Type && out[i].Name == e.Name {
					out[i].Actions = unionActions(out[i].Actions, e.Actions)
					merged = true
					break
				}
			}
			if !merged {
				out = append(out, e)
			}
		}
	}
	return out
}

// parseScope parses "type:name:actions". The name may hold ':' (a registry
// host:port in some clients' scopes), so type ends at the first ':' and actions
// start after the last.
func parseScope(s string) (accessEntry, bool) {
	if len(s) > maxScopeLen {
		return accessEntry{}, false
	}
	i, j := strings.IndexByte(s, ':'), strings.LastIndexByte(s, ':')
	if i < 0 || i == j {
		return accessEntry{}, false
	}
	typ, name, acts := s[:i], s[i+1:j], s[j+1:]
	switch typ {
	case "repository":
		if !validRepoName(name) {
			return accessEntry{}, false
		}
		var actions []string
		for _, a := range strings.Split(acts, ",") {
			switch a {
			case "pull", "push", "delete":
				actions = unionActions(actions, []string{a})
			case "*":
				actions = unionActions(actions, []string{"pull", "push", "delete"})
			}
		}
		if len(actions) == 0 {
			return accessEntry{}, false
		}
		return accessEntry{Type: typ, Name: name, Actions: actions}, true
	case "registry":
		if name != "catalog" || !slices.Contains(strings.Split(acts, ","), "*") {
			return accessEntry{}, false
		}
		return accessEntry{Type: typ, Name: name, Actions: []string{"*"}}, true
	}
	return accessEntry{}, false
}

// unionActions returns the actions of a and b in the canonical order pull, push,
// delete, "*".
func unionActions(a, b []string) []string {
	var out []string
	for _, x := range []string{"pull", "push", "delete", "*"} {
		if slices.Contains(a, x) || slices.Contains(b, x) {
			out = append(out, x)
		}
	}
	return out
}

// scopeString renders an access entry as a scope.
func scopeString(e accessEntry) string {
	return e.Type + ":" + e.Name + ":" + strings.Join(e.Actions, ",")
}

// grant intersects the asked scopes with what p may do now. Entries with
// nothing granted are left out.
func (s *Server) grant(p *Principal, asked []accessEntry) ([]accessEntry, error) {
	out := []accessEntry{}
	wsCache := newWorkspaceCache(s)
	for _, a := range asked {
		var actions []string
		switch a.Type {
		case "registry":
			if p.Kind != Anonymous || s.cfg.AnonymousPull {
				actions = []string{"*"}
			}
		case "repository":
			ws, err := wsCache.forRepo(a.Name)
			if err != nil {
				return nil, err
			}
			for _, act := range a.Actions {
				if s.can(p, ws, Action(act)) {
					actions = append(actions, act)
				}
			}
		}
		if len(actions) > 0 {
			out = append(out, accessEntry{Type: a.Type, Name: a.Name, Actions: actions})
		}
	}
	return out, nil
}

type tokenResponse struct {
	Token       string `json:"token"`
	AccessToken string `json:"access_token"`
	ExpiresIn   int    `json:"expires_in"`
	IssuedAt    string `json:"issued_at"`
	Scope       string `json:"scope,omitempty"`
}

// serveToken answers GET /auth/token.
func (s *Server) serveToken(w http.ResponseWriter, r *http.Request, _ httprouter.Params) {
	p, err := s.tokenCaller(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	resp, err := s.newTokenResponse(r, p, r.URL.Query()["scope"], false)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeTokenJSON(w, http.StatusOK, resp)
}

// tokenCaller authenticates a token request: Basic credentials, or none for an
// anonymous token. Refusals carry a Basic challenge (the token endpoint takes
// passwords, not tokens).
func (s *Server) tokenCaller(r *http.Request) (*Principal, error) {
	h := r.Header.Get("Authorization")
	if h == "" {
		return &Principal{Kind: Anonymous}, nil
	}
	user, pass, ok := r.BasicAuth()
	if !ok {
		s.auth.metrics.fail(failMalformed)
		return nil, &authError{ae: errUnauthorized("the token endpoint takes Basic credentials"), basic: true}
	}
	p, err := s.checkPassword(r, user, pass)
	if err != nil {
		var ae *authError
		if errors.As(err, &ae) {
			return nil, err
		}
		if errors.Is(err, errBadCredentials) {
			return nil, &authError{ae: errBadCredentials, basic: true}
		}
		return nil, err
	}
	return p, nil
}

func (s *Server) newTokenResponse(r *http.Request, p *Principal, scopes []string, withScope bool) (*tokenResponse, error) {
	access, err := s.grant(p, parseScopes(scopes))
	if err != nil {
		return nil, err
	}
	tok, issued, ttl, err := s.issueToken(r.Context(), p, access)
	if err != nil {
		return nil, err
	}
	resp := &tokenResponse{
		Token: tok, AccessToken: tok,
		ExpiresIn: int(ttl / time.Second),
		IssuedAt:  issued.Format(time.RFC3339),
	}
	if withScope {
		granted := make([]string, len(access))
		for i, a := range access {
			granted[i] = scopeString(a)
		}
		resp.Scope = strings.Join(granted, " ")
	}
	return resp, nil
}

func writeTokenJSON(w http.ResponseWriter, status int, v any) {
	b, _ := json.Marshal(v)
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("Pragma", "no-cache")
	setContentLength(w, int64(len(b)))
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// oauthError answers an OAuth2 error (RFC 6749 section 5.2).
func oauthError(w http.ResponseWriter, status int, code, desc string) {
	writeTokenJSON(w, status, struct {
		Error       string `json:"error"`
		Description string `json:"error_description,omitempty"`
	}{code, desc})
}

// serveOAuthToken answers POST /auth/token, the OAuth2 password grant.
func (s *Server) serveOAuthToken(w http.ResponseWriter, r *http.Request, _ httprouter.Params) {
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if mt != "application/x-www-form-urlencoded" {
		oauthError(w, http.StatusBadRequest, "invalid_request", "the body must be application/x-www-form-urlencoded")
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxTokenForm)
	if err := r.ParseForm(); err != nil {
		oauthError(w, http.StatusBadRequest, "invalid_request", "malformed form body")
		return
	}
	switch r.PostForm.Get("grant_type") {
	case "password":
	case "":
		oauthError(w, http.StatusBadRequest, "invalid_request", "grant_type is required")
		return
	default:
		// refresh_token included: Berth issues no refresh tokens, and containerd
		// falls back to GET with Basic credentials on a 400.
		oauthError(w, http.StatusBadRequest, "unsupported_grant_type", "use grant_type=password or GET with Basic credentials")
		return
	}
	user, pass := r.PostForm.Get("username"), r.PostForm.Get("password")
	if user == "" {
		oauthError(w, http.StatusBadRequest, "invalid_request", "username and password are required")
		return
	}
	p, err := s.checkPassword(r, user, pass)
	if err != nil {
		var ae *authError
		switch {
		case errors.As(err, &ae) && ae.retryAfter > 0:
			s.setAuthHeaders(w, r, ae)
			oauthError(w, http.StatusTooManyRequests, "slow_down", "too many failed login attempts; retry later")
		case errors.Is(err, errBadCredentials):
			oauthError(w, http.StatusBadRequest, "invalid_grant", "incorrect username or password")
		default:
			s.writeError(w, r, err)
		}
		return
	}
	resp, err := s.newTokenResponse(r, p, r.PostForm["scope"], true)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeTokenJSON(w, http.StatusOK, resp)
}
