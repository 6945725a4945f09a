package api

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/crypto/bcrypt"

	"github.com/berth-registry/berth/meta"
)

func tokenResp(t *testing.T, body []byte) tokenResponse {
	t.Helper()
	var tr tokenResponse
	if err := json.Unmarshal(body, &tr); err != nil {
		t.Fatalf("token response %s: %v", body, err)
	}
	return tr
}

func TestTokenRoundTrip(t *testing.T) {
	f := newAuthFixture(t, nil)
	w := f.do("GET", "/auth/token?service=berth&account=alice"+
		"&scope=repository:p1priv/app:pull,push,delete"+
		"&scope=repository:p2priv/app:pull"+ // not allowed: left out, no error
		"&scope=repository:p2pub/app:pull,push"+ // pull only
		"&scope=registry:catalog:*", basicAuth("alice", "alice-pw"), nil)
	if w.Code != http.StatusOK {
		t.Fatalf("token: %d %s", w.Code, w.Body)
	}
	if got := w.Header().Get("Cache-Control"); got != "no-store" {
		t.Errorf("Cache-Control: got %q, want no-store", got)
	}
	tr := tokenResp(t, w.Body.Bytes())
	if tr.Token == "" || tr.Token != tr.AccessToken {
		t.Fatalf("token and access_token: %q %q", tr.Token, tr.AccessToken)
	}
	if tr.ExpiresIn != 300 {
		t.Errorf("expires_in: got %d, want 300", tr.ExpiresIn)
	}
	if issued, err := time.Parse(time.RFC3339, tr.IssuedAt); err != nil || !issued.Equal(f.clock.Now().Truncate(time.Second)) {
		t.Errorf("issued_at: got %q (%v), want %v", tr.IssuedAt, err, f.clock.Now())
	}
	vt, err := f.s.verifyToken(tr.Token)
	if err != nil {
		t.Fatal(err)
	}
	want := []accessEntry{
		{"repository", "p1priv/app", []string{"pull", "push", "delete"}},
		{"repository", "p2pub/app", []string{"pull"}},
		{"registry", "catalog", []string{"*"}},
	}
	if vt.subject != "alice" || !reflect.DeepEqual(vt.access, want) {
		t.Errorf("claims: got %q %+v, want alice %+v", vt.subject, vt.access, want)
	}
	// The header names our key and ES256; the claims are the spec's.
	parts := strings.Split(tr.Token, ".")
	hdr, _ := base64.RawURLEncoding.DecodeString(parts[0])
	var h map[string]any
	_ = json.Unmarshal(hdr, &h)
	kid, _, _ := f.s.signingKey(context.Background())
	if h["alg"] != "ES256" || h["kid"] != kid {
		t.Errorf("header: got %v, want ES256 and kid %s", h, kid)
	}
	payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
	var c map[string]any
	_ = json.Unmarshal(payload, &c)
	for _, k := range []string{"iss", "sub", "aud", "exp", "nbf", "iat", "jti", "access"} {
		if _, ok := c[k]; !ok {
			t.Errorf("claim %s missing from %s", k, payload)
		}
	}
	if f.counter("berth_auth_tokens_issued_total") != 1 {
		t.Errorf("tokens issued metric: got %v, want 1", f.counter("berth_auth_tokens_issued_total"))
	}

	bearer := "Bearer " + tr.Token
	for _, tc := range []struct {
		method, path string
		status       int
		code         string
		challenge    string // substring of WWW-Authenticate
	}{
		{"GET", "/v2/", 200, "", ""},
		{"GET", "/v2/p1priv/app/tags/list", 200, "", ""},
		{"DELETE", "/v2/p1priv/app/manifests/" + string(meta.DigestOf("sha256", []byte("x"))), 404, "MANIFEST_UNKNOWN", ""},
		{"GET", "/v2/p2pub/app/tags/list", 200, "", ""},
		// alice may pull p1pub but did not ask: the client is told to fetch a token with it.
		{"GET", "/v2/p1pub/app/tags/list", 401, "UNAUTHORIZED", `scope="repository:p1pub/app:pull",error="insufficient_scope"`},
		// alice may not push to another project's public workspace, nor see its private one.
		{"PUT", "/v2/p2pub/app/manifests/v1", 403, "DENIED", ""},
		{"GET", "/v2/p2priv/app/tags/list", 403, "DENIED", ""},
		{"HEAD", "/v2/p2priv/app/blobs/" + string(meta.DigestOf("sha256", []byte("p2priv"))), 403, "", ""},
	} {
		w := f.do(tc.method, tc.path, bearer, nil)
		if w.Code != tc.status || errCode(w) != tc.code {
			t.Errorf("%s %s: got %d %s, want %d %s (%s)", tc.method, tc.path, w.Code, errCode(w), tc.status, tc.code, w.Body)
		}
		if tc.challenge != "" && !strings.Contains(w.Header().Get("WWW-Authenticate"), tc.challenge) {
			t.Errorf("%s %s: challenge %q lacks %q", tc.method, tc.path, w.Header().Get("WWW-Authenticate"), tc.challenge)
		}
	}

	// A token from one node is accepted by another over the same metadata.
	other, err := New(Config{NodeID: "n2", Clock: f.clock.Now}, Deps{Meta: f.kv, Proposer: f.kv, Blobs: authBlobs{}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := other.verifyToken(tr.Token); err != nil {
		t.Errorf("token from another node: %v", err)
	}
}

// TestKeyRotation: a key added by another node signs its tokens from then on;
// every node verifies tokens of every key.
func TestKeyRotation(t *testing.T) {
	f := newAuthFixture(t, nil)
	t1 := f.token("dev", "dev-pw", "repository:p1priv/app:pull")
	kid1, _, _ := f.s.signingKey(context.Background())

	priv, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, _ := x509.MarshalPKCS8PrivateKey(priv)
	f.clock.Add(time.Minute)
	f.must(&meta.PutSigningKey{ID: "newer", Algorithm: "ES256", Private: der, Time: f.clock.Now()})

	n2, err := New(Config{NodeID: "n2", Clock: f.clock.Now}, Deps{Meta: f.kv, Proposer: f.kv, Blobs: authBlobs{}})
	if err != nil {
		t.Fatal(err)
	}
	kid2, _, err := n2.signingKey(context.Background())
	if err != nil || kid2 != "newer" {
		t.Fatalf("new node signs with %q (%v), want the newest key", kid2, err)
	}
	t2, _, _, err := n2.issueToken(context.Background(), &Principal{Kind: UserPrincipal, Name: "dev"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.s.verifyToken(t2); err != nil {
		t.Errorf("token of a key added later: %v", err)
	}
	if _, err := n2.verifyToken(t1); err != nil {
		t.Errorf("token of the older key %s: %v", kid1, err)
	}
}

// TestForgedTokens: every forged or out-of-date token is refused with 401 and
// error="invalid_token", and changes nothing.
func TestForgedTokens(t *testing.T) {
	f := newAuthFixture(t, nil)
	ctx := context.Background()
	kid, key, err := f.s.signingKey(ctx)
	if err != nil {
		t.Fatal(err)
	}
	now := f.clock.Now()
	claims := func(mod func(*tokenClaims)) tokenClaims {
		c := tokenClaims{
			RegisteredClaims: jwt.RegisteredClaims{
				Issuer: "berth", Subject: "dev", Audience: jwt.ClaimStrings{"berth"},
				ExpiresAt: jwt.NewNumericDate(now.Add(5 * time.Minute)),
				NotBefore: jwt.NewNumericDate(now), IssuedAt: jwt.NewNumericDate(now), ID: "x",
			},
			Access: []accessEntry{{"repository", "p2priv/app", []string{"pull", "push"}}},
		}
		if mod != nil {
			mod(&c)
		}
		return c
	}
	sign := func(m jwt.SigningMethod, k any, c tokenClaims, hdr map[string]any) string {
		t.Helper()
		tok := jwt.NewWithClaims(m, c)
		tok.Header["kid"] = kid
		for name, v := range hdr {
			if v == nil {
				delete(tok.Header, name)
			} else {
				tok.Header[name] = v
			}
		}
		s, err := tok.SignedString(k)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	b64 := func(v any) string {
		b, _ := json.Marshal(v)
		return base64.RawURLEncoding.EncodeToString(b)
	}
	pubDER, _ := x509.MarshalPKIXPublicKey(&key.PublicKey)
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})
	foreign, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	foreignJWK := map[string]any{"kty": "EC", "crv": "P-256",
		"x": base64.RawURLEncoding.EncodeToString(foreign.X.FillBytes(make([]byte, 32))),
		"y": base64.RawURLEncoding.EncodeToString(foreign.Y.FillBytes(make([]byte, 32)))}
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)

	valid := sign(jwt.SigningMethodES256, key, claims(nil), nil)
	vparts := strings.Split(valid, ".")

	// The valid token and those within the leeway work; this proves the forged
	// ones fail for what was forged.
	for name, tok := range map[string]string{
		"valid":                    valid,
		"expired within leeway":    sign(jwt.SigningMethodES256, key, claims(func(c *tokenClaims) { c.ExpiresAt = jwt.NewNumericDate(now.Add(-10 * time.Second)) }), nil),
		"not before within leeway": sign(jwt.SigningMethodES256, key, claims(func(c *tokenClaims) { c.NotBefore = jwt.NewNumericDate(now.Add(10 * time.Second)) }), nil),
	} {
		if w := f.do("GET", "/v2/p2priv/app/tags/list", "Bearer "+tok, nil); w.Code != http.StatusOK {
			t.Errorf("%s: got %d %s, want 200", name, w.Code, w.Body)
		}
	}

	forged := []struct{ name, token string }{
		{"alg none", b64(map[string]any{"alg": "none", "typ": "JWT", "kid": kid}) + "." + vparts[1] + "."},
		{"alg none with signature", b64(map[string]any{"alg": "none", "typ": "JWT", "kid": kid}) + "." + vparts[1] + "." + vparts[2]},
		{"HS256 keyed with the public key (DER)", sign(jwt.SigningMethodHS256, pubDER, claims(nil), nil)},
		{"HS256 keyed with the public key (PEM)", sign(jwt.SigningMethodHS256, pubPEM, claims(nil), nil)},
		{"RS256", sign(jwt.SigningMethodRS256, rsaKey, claims(nil), nil)},
		{"ES384", sign(jwt.SigningMethodES384, p384, claims(nil), nil)},
		{"embedded jwk of another key, our kid", sign(jwt.SigningMethodES256, foreign, claims(nil), map[string]any{"jwk": foreignJWK})},
		{"embedded jwk of another key, no kid", sign(jwt.SigningMethodES256, foreign, claims(nil), map[string]any{"jwk": foreignJWK, "kid": nil})},
		{"x5c and jku of another key", sign(jwt.SigningMethodES256, foreign, claims(nil), map[string]any{"x5c": []string{"MIIB"}, "jku": "http://evil.test/jwks", "kid": "evil"})},
		{"unknown kid", sign(jwt.SigningMethodES256, foreign, claims(nil), map[string]any{"kid": "no-such-key"})},
		{"wrong audience", sign(jwt.SigningMethodES256, key, claims(func(c *tokenClaims) { c.Audience = jwt.ClaimStrings{"other-registry"} }), nil)},
		{"no audience", sign(jwt.SigningMethodES256, key, claims(func(c *tokenClaims) { c.Audience = nil }), nil)},
		{"wrong issuer", sign(jwt.SigningMethodES256, key, claims(func(c *tokenClaims) { c.Issuer = "someone-else" }), nil)},
		{"expired", sign(jwt.SigningMethodES256, key, claims(func(c *tokenClaims) { c.ExpiresAt = jwt.NewNumericDate(now.Add(-time.Minute)) }), nil)},
		{"no expiry", sign(jwt.SigningMethodES256, key, claims(func(c *tokenClaims) { c.ExpiresAt = nil }), nil)},
		{"not yet valid", sign(jwt.SigningMethodES256, key, claims(func(c *tokenClaims) { c.NotBefore = jwt.NewNumericDate(now.Add(2 * time.Minute)) }), nil)},
		{"payload swapped under a valid signature", vparts[0] + "." + b64(claims(func(c *tokenClaims) { c.Subject = "admin" })) + "." + vparts[2]},
		{"signature of zeros", vparts[0] + "." + vparts[1] + "." + base64.RawURLEncoding.EncodeToString(make([]byte, 64))},
		{"signature with r = n", vparts[0] + "." + vparts[1] + "." + base64.RawURLEncoding.EncodeToString(append(elliptic.P256().Params().N.FillBytes(make([]byte, 32)), big.NewInt(1).FillBytes(make([]byte, 32))...))},
		{"garbage", "abc.def.ghi"},
		{"not a jwt", "hello"},
		{"two parts", vparts[0] + "." + vparts[1]},
		{"huge", strings.Repeat("a", maxTokenBytes+1)},
	}
	for _, tc := range forged {
		t.Run(tc.name, func(t *testing.T) {
			w := f.do("GET", "/v2/p2priv/app/tags/list", "Bearer "+tc.token, nil)
			ch := w.Header().Get("WWW-Authenticate")
			if w.Code != http.StatusUnauthorized || errCode(w) != "UNAUTHORIZED" || !strings.Contains(ch, `error="invalid_token"`) {
				t.Errorf("got %d %s %q, want 401 UNAUTHORIZED with error=\"invalid_token\"", w.Code, errCode(w), ch)
			}
		})
	}
	if got := f.counter("berth_auth_failures_total", "reason", "invalid_token"); got != float64(len(forged)) {
		t.Errorf("invalid_token failures: got %v, want %d", got, len(forged))
	}

	// A cached token expires like any other.
	tok := f.token("dev", "dev-pw", "repository:p1priv/app:pull")
	if w := f.do("GET", "/v2/p1priv/app/tags/list", "Bearer "+tok, nil); w.Code != 200 {
		t.Fatalf("fresh token: %d", w.Code)
	}
	f.clock.Add(5*time.Minute + tokenLeeway + time.Second)
	if w := f.do("GET", "/v2/p1priv/app/tags/list", "Bearer "+tok, nil); w.Code != 401 {
		t.Errorf("expired cached token: got %d, want 401", w.Code)
	}
}

func TestParseScopes(t *testing.T) {
	long := "repository:" + strings.Repeat("a", maxScopeLen) + ":pull"
	many := make([]string, maxScopes+5)
	for i := range many {
		many[i] = "repository:ws/r" + string(rune('a'+i%26)) + strings.Repeat("x", i/26) + ":pull"
	}
	for _, tc := range []struct {
		name string
		in   []string
		want []accessEntry
	}{
		{"plain", []string{"repository:ws/app:pull,push"}, []accessEntry{{"repository", "ws/app", []string{"pull", "push"}}}},
		{"order and duplicates", []string{"repository:ws/app:push,pull,push"}, []accessEntry{{"repository", "ws/app", []string{"pull", "push"}}}},
		{"star", []string{"repository:ws/app:*"}, []accessEntry{{"repository", "ws/app", []string{"pull", "push", "delete"}}}},
		{"unknown actions dropped", []string{"repository:ws/app:pull,admin,,PUSH"}, []accessEntry{{"repository", "ws/app", []string{"pull"}}}},
		{"no known action", []string{"repository:ws/app:admin"}, nil},
		{"no actions", []string{"repository:ws/app:"}, nil},
		{"merged", []string{"repository:ws/app:pull", "repository:ws/app:delete"}, []accessEntry{{"repository", "ws/app", []string{"pull", "delete"}}}},
		{"space separated", []string{"repository:ws/a:pull repository:ws/b:push"}, []accessEntry{{"repository", "ws/a", []string{"pull"}}, {"repository", "ws/b", []string{"push"}}}},
		{"catalog", []string{"registry:catalog:*"}, []accessEntry{{"registry", "catalog", []string{"*"}}}},
		{"catalog without star", []string{"registry:catalog:pull"}, nil},
		{"other registry resource", []string{"registry:config:*"}, nil},
		{"resource class", []string{"repository(plugin):ws/app:pull"}, nil},
		{"unknown type", []string{"user:alice:pull"}, nil},
		{"upper case name", []string{"repository:WS/App:pull"}, nil},
		{"host in name", []string{"repository:localhost:5000/ws/app:pull"}, nil},
		{"quote in name", []string{`repository:ws/a"pp:pull`}, nil},
		{"markup in name", []string{"repository:<script>alert(1)</script>:pull"}, nil},
		{"traversal", []string{"repository:ws/../other/app:pull"}, nil},
		{"control characters", []string{"repository:ws/app\r\nX-Evil: 1:pull"}, nil},
		{"no colon", []string{"repository"}, nil},
		{"one colon", []string{"repository:ws/app"}, nil},
		{"empty", []string{""}, nil},
		{"too long", []string{long}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := parseScopes(tc.in); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
	if got := parseScopes(many); len(got) != maxScopes {
		t.Errorf("%d scopes: got %d parsed, want the first %d", len(many), len(got), maxScopes)
	}

	// Odd scopes in a token request are ignored, never echoed.
	f := newAuthFixture(t, nil)
	w := f.do("GET", "/auth/token?scope="+url.QueryEscape(`repository:<script>"x":pull`)+"&scope=%00%ff", basicAuth("dev", "dev-pw"), nil)
	if w.Code != 200 || strings.Contains(w.Body.String(), "script") {
		t.Errorf("odd scope: got %d %s", w.Code, w.Body)
	}
}

// TestGrant: the access claim is what was asked intersected with what is allowed.
func TestGrant(t *testing.T) {
	f := newAuthFixture(t, func(c *Config) { c.AnonymousPull = true })
	all := "pull,push,delete"
	ask := []string{"registry:catalog:*"}
	for _, ws := range append(fixtureWorkspaces, "nows") {
		ask = append(ask, "repository:"+ws+"/app:"+all)
	}
	type g = map[string]string // repo -> granted actions
	for _, tc := range []struct {
		user, pass string
		want       g
	}{
		{"admin", "admin-pw", g{"p1pub/app": all, "p1priv/app": all, "p2pub/app": all, "p2priv/app": all, "nows/app": all, "catalog": "*"}},
		{"alice", "alice-pw", g{"p1pub/app": all, "p1priv/app": all, "p2pub/app": "pull", "catalog": "*"}},
		{"dev", "dev-pw", g{"p1pub/app": all, "p1priv/app": all, "p2pub/app": "pull", "catalog": "*"}},
		{"guest", "guest-pw", g{"p1pub/app": "pull", "p1priv/app": "pull", "p2pub/app": "pull", "catalog": "*"}},
		{"bob", "bob-pw", g{"p1pub/app": "pull", "p2pub/app": all, "p2priv/app": all, "catalog": "*"}},
		{"nobody", "nobody-pw", g{"p1pub/app": "pull", "p2pub/app": "pull", "catalog": "*"}},
		{"robot$p1+ci", "ci-secret", g{"p1priv/app": "pull,push", "catalog": "*"}},
		{"robot$p1+ro", "ro-secret", g{"p1priv/app": "pull", "catalog": "*"}},
		{"", "", g{"p1pub/app": "pull", "p2pub/app": "pull", "catalog": "*"}},
	} {
		t.Run(tc.user, func(t *testing.T) {
			vt, err := f.s.verifyToken(f.token(tc.user, tc.pass, ask...))
			if err != nil {
				t.Fatal(err)
			}
			got := g{}
			for _, a := range vt.access {
				name := a.Name
				if a.Type == "registry" {
					name = "catalog"
				}
				got[name] = strings.Join(a.Actions, ",")
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
	// Anonymous pull off: an anonymous token grants nothing.
	f2 := newAuthFixture(t, nil)
	vt, err := f2.s.verifyToken(f2.token("", "", ask...))
	if err != nil || len(vt.access) != 0 {
		t.Errorf("anonymous token without anonymous pull: %+v %v", vt, err)
	}
}

// TestTokenRefusals: bad, disabled and expired credentials get no token.
func TestTokenRefusals(t *testing.T) {
	f := newAuthFixture(t, nil)
	for _, tc := range []struct{ name, auth string }{
		{"wrong password", basicAuth("alice", "nope")},
		{"unknown user", basicAuth("mallory", "x")},
		{"disabled user", basicAuth("dis", "dis-pw")},
		{"expired robot", basicAuth("robot$p1+old", "old-secret")},
		{"disabled robot", basicAuth("robot$p1+off", "off-secret")},
		{"robot of another project", basicAuth("robot$p2+ci", "ci-secret")},
		{"malformed basic", "Basic !!!"},
		{"bearer", "Bearer abc"},
	} {
		w := f.do("GET", "/auth/token?scope=repository:p1priv/app:pull", tc.auth, nil)
		if w.Code != http.StatusUnauthorized || errCode(w) != "UNAUTHORIZED" || w.Header().Get("WWW-Authenticate") == "" {
			t.Errorf("%s: got %d %s %q, want 401 UNAUTHORIZED with a challenge", tc.name, w.Code, errCode(w), w.Header().Get("WWW-Authenticate"))
		}
	}
	if got := f.counter("berth_auth_failures_total", "reason", "disabled"); got != 3 {
		t.Errorf("disabled failures: got %v, want 3", got)
	}
	if got := f.counter("berth_auth_failures_total", "reason", "bad_credentials"); got != 3 {
		t.Errorf("bad_credentials failures: got %v, want 3", got)
	}
	// A robot's token ends when the robot does.
	f.must(&meta.PutRobot{Project: "p1", Name: "soon", SecretHash: mustHash(t, "soon-secret"), Workspaces: []string{"p1priv"},
		Actions: []string{"pull"}, Expires: f.clock.Now().Add(2 * time.Minute), Create: true, Time: f.clock.Now()})
	w := f.do("GET", "/auth/token", basicAuth("robot$p1+soon", "soon-secret"), nil)
	if tr := tokenResp(t, w.Body.Bytes()); w.Code != 200 || tr.ExpiresIn != 120 {
		t.Errorf("robot expiring in 2m: got %d, expires_in %d, want 120", w.Code, tr.ExpiresIn)
	}
}

func mustHash(t *testing.T, pw string) []byte {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// TestOAuthPasswordGrant: containerd's POST form flow.
func TestOAuthPasswordGrant(t *testing.T) {
	f := newAuthFixture(t, nil)
	post := func(form url.Values, ct string) (int, map[string]any, http.Header) {
		w := f.do("POST", "/auth/token", "", strings.NewReader(form.Encode()), "Content-Type", ct)
		var body map[string]any
		_ = json.Unmarshal(w.Body.Bytes(), &body)
		return w.Code, body, w.Header()
	}
	const form = "application/x-www-form-urlencoded"
	code, body, _ := post(url.Values{"grant_type": {"password"}, "username": {"dev"}, "password": {"dev-pw"},
		"scope": {"repository:p1priv/app:pull,push repository:p2priv/app:pull"}, "service": {"berth"}, "client_id": {"containerd-client"}}, form)
	if code != 200 || body["access_token"] == nil || body["expires_in"] != float64(300) || body["issued_at"] == nil ||
		body["scope"] != "repository:p1priv/app:pull,push" {
		t.Errorf("password grant: got %d %v", code, body)
	}
	if tok, _ := body["access_token"].(string); tok != "" {
		if w := f.do("GET", "/v2/p1priv/app/tags/list", "Bearer "+tok, nil); w.Code != 200 {
			t.Errorf("using the OAuth token: %d", w.Code)
		}
	}
	for _, tc := range []struct {
		name   string
		form   url.Values
		ct     string
		status int
		err    string
	}{
		{"refresh token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"x"}}, form, 400, "unsupported_grant_type"},
		{"client credentials", url.Values{"grant_type": {"client_credentials"}}, form, 400, "unsupported_grant_type"},
		{"no grant type", url.Values{"username": {"dev"}}, form, 400, "invalid_request"},
		{"no user", url.Values{"grant_type": {"password"}}, form, 400, "invalid_request"},
		{"wrong password", url.Values{"grant_type": {"password"}, "username": {"dev"}, "password": {"x"}}, form, 400, "invalid_grant"},
		{"json body", url.Values{"grant_type": {"password"}}, "application/json", 400, "invalid_request"},
	} {
		code, body, _ := post(tc.form, tc.ct)
		if code != tc.status || body["error"] != tc.err {
			t.Errorf("%s: got %d %v, want %d %s", tc.name, code, body, tc.status, tc.err)
		}
	}
}

// TestChallenge: the realm is the address the client used, or the external URL.
func TestChallenge(t *testing.T) {
	f := newAuthFixture(t, nil)
	w := f.do("GET", "/v2/", "", nil)
	if want := `Bearer realm="http://registry.test/auth/token",service="berth"`; w.Code != 401 || w.Header().Get("WWW-Authenticate") != want {
		t.Errorf("/v2/: got %d %q, want 401 %q", w.Code, w.Header().Get("WWW-Authenticate"), want)
	}
	w = f.do("HEAD", "/v2/p1priv/app/manifests/latest", "", nil, "X-Forwarded-Proto", "https")
	if want := `Bearer realm="https://registry.test/auth/token",service="berth",scope="repository:p1priv/app:pull"`; w.Code != 401 || w.Header().Get("WWW-Authenticate") != want {
		t.Errorf("anonymous manifest HEAD: got %d %q, want 401 %q", w.Code, w.Header().Get("WWW-Authenticate"), want)
	}
	w = f.do("PUT", "/v2/p1pub/app/manifests/v1", "", nil)
	if want := `scope="repository:p1pub/app:push"`; w.Code != 401 || !strings.Contains(w.Header().Get("WWW-Authenticate"), want) {
		t.Errorf("anonymous push: got %d %q, want 401 with %s", w.Code, w.Header().Get("WWW-Authenticate"), want)
	}
	w = f.do("GET", "/v2/_catalog", "", nil)
	if want := `scope="registry:catalog:*"`; w.Code != 401 || !strings.Contains(w.Header().Get("WWW-Authenticate"), want) {
		t.Errorf("anonymous catalog: got %d %q, want 401 with %s", w.Code, w.Header().Get("WWW-Authenticate"), want)
	}
	if w = f.do("GET", "/v2/", basicAuth("nobody", "nobody-pw"), nil); w.Code != 200 {
		t.Errorf("/v2/ with Basic: got %d, want 200", w.Code)
	}
	if w = f.do("GET", "/v2/", "Digest username=x", nil); w.Code != 401 {
		t.Errorf("/v2/ with an unknown scheme: got %d, want 401", w.Code)
	}

	ext := newAuthFixture(t, func(c *Config) {
		c.ExternalURL = "https://registry.example.com/"
		c.Service = "registry.example.com"
		c.AnonymousPull = true
	})
	w = ext.do("GET", "/v2/p1priv/app/tags/list", "", nil)
	if want := `Bearer realm="https://registry.example.com/auth/token",service="registry.example.com",scope="repository:p1priv/app:pull"`; w.Code != 401 || w.Header().Get("WWW-Authenticate") != want {
		t.Errorf("external URL: got %d %q, want %q", w.Code, w.Header().Get("WWW-Authenticate"), want)
	}
	// /v2/ challenges even with anonymous pull on (clients decide from it whether
	// to log in); an anonymous token passes.
	if w = ext.do("GET", "/v2/", "", nil); w.Code != 401 {
		t.Errorf("/v2/ with anonymous pull, no token: got %d, want 401", w.Code)
	}
	if w = ext.do("GET", "/v2/", "Bearer "+ext.token("", ""), nil); w.Code != 200 {
		t.Errorf("/v2/ with an anonymous token: got %d, want 200", w.Code)
	}
	if w = ext.do("GET", "/v2/p1pub/app/tags/list", "", nil); w.Code != 200 {
		t.Errorf("anonymous pull of a public workspace: got %d, want 200", w.Code)
	}
	// The audience is the configured service: a token of another service is
	// refused, even when signed with the same keys.
	other, err := New(Config{NodeID: "n2", Clock: f.clock.Now, Service: "other"}, Deps{Meta: f.kv, Proposer: f.kv, Blobs: authBlobs{}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := other.verifyToken(f.token("dev", "dev-pw")); err == nil {
		t.Errorf("a token for another service was accepted")
	}
}

// TestLoginRateLimit: failed logins are limited per address and name; the
// limit answers 429 with Retry-After, even to the right password.
func TestLoginRateLimit(t *testing.T) {
	f := newAuthFixture(t, nil)
	for i := 0; i < loginFailuresPerMinute; i++ {
		path := "/auth/token"
		if i%2 == 1 {
			path = "/v2/" // Basic on /v2/ counts as well
		}
		w := f.do("GET", path, basicAuth("alice", "wrong"), nil)
		if w.Code != 401 {
			t.Fatalf("attempt %d: got %d, want 401", i, w.Code)
		}
	}
	before := f.compares.Load()
	for _, path := range []string{"/auth/token", "/v2/"} {
		w := f.do("GET", path, basicAuth("alice", "alice-pw"), nil)
		if w.Code != http.StatusTooManyRequests || errCode(w) != "TOOMANYREQUESTS" || w.Header().Get("Retry-After") != "6" {
			t.Errorf("%s after %d failures: got %d %s Retry-After %q, want 429 TOOMANYREQUESTS 6",
				path, loginFailuresPerMinute, w.Code, errCode(w), w.Header().Get("Retry-After"))
		}
	}
	w := f.do("POST", "/auth/token", "", strings.NewReader("grant_type=password&username=alice&password=alice-pw"),
		"Content-Type", "application/x-www-form-urlencoded")
	if w.Code != http.StatusTooManyRequests || w.Header().Get("Retry-After") == "" {
		t.Errorf("password grant while locked out: got %d %q", w.Code, w.Header().Get("Retry-After"))
	}
	if f.compares.Load() != before {
		t.Errorf("a locked-out attempt ran the password hash")
	}
	// Another name from the same address is not locked out.
	if w := f.do("GET", "/auth/token", basicAuth("dev", "dev-pw"), nil); w.Code != 200 {
		t.Errorf("another user: got %d, want 200", w.Code)
	}
	if got := f.counter("berth_auth_failures_total", "reason", "rate_limited"); got != 3 {
		t.Errorf("rate_limited failures: got %v, want 3", got)
	}
	f.clock.Add(6 * time.Second)
	if w := f.do("GET", "/auth/token", basicAuth("alice", "alice-pw"), nil); w.Code != 200 {
		t.Errorf("after the wait: got %d, want 200", w.Code)
	}
}

// TestBasicCache: the second request with the same credentials runs no bcrypt;
// the cache expires, never holds failures, and follows password changes.
func TestBasicCache(t *testing.T) {
	f := newAuthFixture(t, nil)
	get := func(user, pass string) int {
		return f.do("GET", "/v2/p1priv/app/tags/list", basicAuth(user, pass), nil).Code
	}
	if c := get("dev", "dev-pw"); c != 200 {
		t.Fatalf("first: %d", c)
	}
	if c := get("dev", "dev-pw"); c != 200 {
		t.Fatalf("second: %d", c)
	}
	if n := f.compares.Load(); n != 1 {
		t.Errorf("bcrypt runs for two requests: got %d, want 1", n)
	}
	if got := f.counter("berth_auth_basic_cache_hits_total"); got != 1 {
		t.Errorf("cache hits: got %v, want 1", got)
	}
	// Robots too.
	get("robot$p1+ci", "ci-secret")
	get("robot$p1+ci", "ci-secret")
	if n := f.compares.Load(); n != 2 {
		t.Errorf("bcrypt runs after a robot's two requests: got %d, want 2", n)
	}
	// Failures are not cached.
	get("dev", "wrong")
	get("dev", "wrong")
	if n := f.compares.Load(); n != 4 {
		t.Errorf("bcrypt runs after two failures: got %d, want 4", n)
	}
	// The entry expires.
	f.clock.Add(basicCacheTTL)
	get("dev", "dev-pw")
	if n := f.compares.Load(); n != 5 {
		t.Errorf("bcrypt runs after the cache TTL: got %d, want 5", n)
	}
	// A password change takes effect at once; a disabled user at once.
	f.must(&meta.PutUser{Name: "dev", PasswordHash: mustHash(t, "new-pw"), Time: f.clock.Now()})
	if c := get("dev", "dev-pw"); c != 401 {
		t.Errorf("old password after a change: got %d, want 401", c)
	}
	if c := get("dev", "new-pw"); c != 200 {
		t.Errorf("new password: got %d, want 200", c)
	}
	f.must(&meta.PutUser{Name: "dev", Disabled: true, Time: f.clock.Now()})
	if c := get("dev", "new-pw"); c != 401 {
		t.Errorf("disabled user from the cache: got %d, want 401", c)
	}
}

// BenchmarkVerifyToken measures the per-request cost of a token: verified once,
// then found in the cache.
func BenchmarkVerifyToken(b *testing.B) {
	f := newAuthFixture(b, nil)
	tok := f.token("dev", "dev-pw", "repository:p1priv/app:pull")
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := f.s.verifyToken(tok); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkVerifyTokenUncached is the cost the cache saves.
func BenchmarkVerifyTokenUncached(b *testing.B) {
	f := newAuthFixture(b, nil)
	tok := f.token("dev", "dev-pw", "repository:p1priv/app:pull")
	for b.Loop() {
		f.s.auth.tokens = &tokenCache{max: tokenCacheMax}
		if _, err := f.s.verifyToken(tok); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkManifestGet compares a manifest GET with a Bearer token to the same
// GET pulled anonymously from a public workspace: checking the token must not
// be what limits throughput.
func BenchmarkManifestGet(b *testing.B) {
	f := newAuthFixture(b, func(c *Config) { c.AnonymousPull = true })
	now := f.clock.Now()
	cfg, layer := []byte(`{"architecture":"amd64"}`), []byte("layer")
	repo := "p1pub/app"
	for _, blob := range [][]byte{cfg, layer} {
		f.must(&meta.PutBlob{Repo: repo, Digest: meta.DigestOf("sha256", blob), Size: int64(len(blob)), Time: now})
	}
	content := []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",` +
		`"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"` + string(meta.DigestOf("sha256", cfg)) + `","size":24},` +
		`"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"` + string(meta.DigestOf("sha256", layer)) + `","size":5}]}`)
	m, err := meta.ParseManifest("application/vnd.oci.image.manifest.v1+json", content)
	if err != nil {
		b.Fatal(err)
	}
	f.must(&meta.PutManifest{Repo: repo, Digest: meta.DigestOf("sha256", content), Content: content, Tags: []string{"v1"},
		Time: now, Info: manifestInfo(m, int64(len(content)))})
	bearer := "Bearer " + f.token("dev", "dev-pw", "repository:"+repo+":pull")
	for _, bc := range []struct{ name, auth string }{{"anonymous", ""}, {"token", bearer}} {
		b.Run(bc.name, func(b *testing.B) {
			if w := f.do("GET", "/v2/"+repo+"/manifests/v1", bc.auth, nil); w.Code != 200 {
				b.Fatalf("%d %s", w.Code, w.Body)
			}
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					r := httptest.NewRequest("GET", "/v2/"+repo+"/manifests/v1", nil)
					if bc.auth != "" {
						r.Header.Set("Authorization", bc.auth)
					}
					w := httptest.NewRecorder()
					f.s.ServeHTTP(w, r)
					if w.Code != 200 {
						b.Fatal(w.Code)
					}
				}
			})
		})
	}
}
