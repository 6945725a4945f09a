package api

import (
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/berth-registry/berth/api/console"
	"github.com/berth-registry/berth/meta"
)

func TestConsoleFiles(t *testing.T) {
	f := newAuthFixture(t, nil)
	for _, tc := range []struct {
		path, ctype string
		contains    string
	}{
		{"/", "text/html; charset=utf-8", `<script src="/console/app.js"`},
		{"/console/index.html", "text/html; charset=utf-8", "<!doctype html>"},
		{"/console/app.js", "text/javascript; charset=utf-8", "'use strict'"},
		{"/console/app.css", "text/css; charset=utf-8", ":root"},
		{"/console/i18n/en.json", "application/json; charset=utf-8", `"login.title"`},
		{"/console/i18n/zh-CN.json", "application/json; charset=utf-8", "登录"},
		{"/console/favicon.svg", "image/svg+xml", "<svg"},
	} {
		w := f.do("GET", tc.path, "", nil)
		if w.Code != http.StatusOK {
			t.Errorf("GET %s: %d, want 200", tc.path, w.Code)
			continue
		}
		if got := w.Header().Get("Content-Type"); got != tc.ctype {
			t.Errorf("GET %s: Content-Type %q, want %q", tc.path, got, tc.ctype)
		}
		if got := w.Header().Get("X-Content-Type-Options"); got != "nosniff" {
			t.Errorf("GET %s: X-Content-Type-Options %q, want nosniff", tc.path, got)
		}
		if !strings.Contains(w.Body.String(), tc.contains) {
			t.Errorf("GET %s: body does not contain %q", tc.path, tc.contains)
		}
		etag := w.Header().Get("ETag")
		if etag == "" {
			t.Errorf("GET %s: no ETag", tc.path)
			continue
		}
		if w := f.do("GET", tc.path, "", nil, "If-None-Match", etag); w.Code != http.StatusNotModified {
			t.Errorf("GET %s with If-None-Match: %d, want 304", tc.path, w.Code)
		}
		if w := f.do("HEAD", tc.path, "", nil); w.Code != http.StatusOK || w.Body.Len() != 0 {
			t.Errorf("HEAD %s: %d with %d body bytes, want 200 and none", tc.path, w.Code, w.Body.Len())
		}
	}
	w := f.do("GET", "/", "", nil)
	csp := w.Header().Get("Content-Security-Policy")
	for _, want := range []string{"default-src 'none'", "script-src 'self'", "connect-src 'self'", "frame-ancestors 'none'"} {
		if !strings.Contains(csp, want) {
			t.Errorf("Content-Security-Policy %q lacks %q", csp, want)
		}
	}
	for _, p := range []string{"/console/nope.js", "/console/../go.mod", "/console/console.go", "/console/i18n/fr.json"} {
		if w := f.do("GET", p, "", nil); w.Code != http.StatusNotFound {
			t.Errorf("GET %s: %d, want 404", p, w.Code)
		}
	}
}

// TestConsoleNoExternalResources: the page loads nothing from another origin
// (the machines it runs on may have no internet, and the CSP forbids it).
func TestConsoleNoExternalResources(t *testing.T) {
	re := regexp.MustCompile(`(?i)(src|href)\s*=\s*["']?(https?:)?//|@import\s+url\(\s*["']?https?:|url\(\s*["']?https?:`)
	err := fs.WalkDir(console.Files, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || strings.HasSuffix(p, ".go") || strings.HasSuffix(p, ".json") {
			return err
		}
		b, err := fs.ReadFile(console.Files, p)
		if err != nil {
			return err
		}
		if m := re.Find(b); m != nil && !strings.Contains(string(m), "www.w3.org") {
			t.Errorf("%s loads an external resource: %q", p, m)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestConsoleI18nKeys: every language has exactly the keys of en.json with the
// same {placeholders}, and every key the script asks for exists.
func TestConsoleI18nKeys(t *testing.T) {
	load := func(name string) map[string]string {
		b, err := fs.ReadFile(console.Files, "i18n/"+name+".json")
		if err != nil {
			t.Fatal(err)
		}
		m := map[string]string{}
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatalf("%s.json: %v", name, err)
		}
		return m
	}
	en := load("en")
	placeholders := regexp.MustCompile(`\{\w+\}`)
	names, err := fs.Glob(console.Files, "i18n/*.json")
	if err != nil || len(names) < 2 {
		t.Fatalf("i18n files %v (%v), want en and zh-CN at least", names, err)
	}
	for _, n := range names {
		lang := strings.TrimSuffix(strings.TrimPrefix(n, "i18n/"), ".json")
		m := load(lang)
		for k, v := range en {
			other, ok := m[k]
			switch {
			case !ok:
				t.Errorf("%s.json lacks %q", lang, k)
			case strings.TrimSpace(other) == "":
				t.Errorf("%s.json: %q is empty", lang, k)
			default:
				a, b := placeholders.FindAllString(v, -1), placeholders.FindAllString(other, -1)
				slices.Sort(a)
				slices.Sort(b)
				if !slices.Equal(a, b) {
					t.Errorf("%s.json: %q has placeholders %v, en.json %v", lang, k, b, a)
				}
			}
		}
		for k := range m {
			if _, ok := en[k]; !ok {
				t.Errorf("%s.json has %q, which en.json lacks", lang, k)
			}
		}
	}
	js, err := fs.ReadFile(console.Files, "app.js")
	if err != nil {
		t.Fatal(err)
	}
	// t('key') literals, and keys built by appending a known suffix.
	for _, m := range regexp.MustCompile(`\bt\('([A-Za-z0-9_.-]+)'`).FindAllStringSubmatch(string(js), -1) {
		k := m[1]
		if strings.HasSuffix(k, ".") {
			found := false
			for ek := range en {
				found = found || strings.HasPrefix(ek, k)
			}
			if !found {
				t.Errorf("app.js builds keys %q..., none is in en.json", k)
			}
			continue
		}
		if _, ok := en[k]; !ok {
			t.Errorf("app.js uses %q, which en.json lacks", k)
		}
	}
	for _, k := range []string{"role.project-admin", "role.developer", "role.guest", "role.cloud-admin", "vis.public", "vis.private",
		"ws.tab.own", "ws.tab.shared", "ws.tab.all", "ws.none.own", "ws.none.shared", "ws.none.all",
		"ws.visibility.make.public", "ws.visibility.make.private", "ws.visibility.confirm.public", "ws.visibility.confirm.private",
		"tag.delete.confirm", "tag.delete.confirmTrash", "repo.delete.confirm", "repo.delete.confirmTrash"} {
		if _, ok := en[k]; !ok {
			t.Errorf("en.json lacks %q, which app.js builds", k)
		}
	}
}

// login opens a console session and returns its cookie and CSRF token.
func (f *authFixture) login(user, pass string, hdr ...string) (*http.Cookie, string) {
	f.t.Helper()
	body, _ := json.Marshal(map[string]string{"username": user, "password": pass})
	w := f.do("POST", "/api/v1/session", "", strings.NewReader(string(body)), append([]string{"Content-Type", "application/json"}, hdr...)...)
	if w.Code != http.StatusCreated {
		f.t.Fatalf("login %s: %d %s", user, w.Code, w.Body)
	}
	var s sessionJSON
	if err := json.Unmarshal(w.Body.Bytes(), &s); err != nil {
		f.t.Fatal(err)
	}
	c := sessionCookieOf(w)
	if c == nil || c.Value == "" {
		f.t.Fatalf("login %s: no session cookie in %q", user, w.Header().Values("Set-Cookie"))
	}
	if s.User != user || s.CSRFToken == "" {
		f.t.Fatalf("login %s: answer %+v", user, s)
	}
	return c, s.CSRFToken
}

func sessionCookieOf(w *httptest.ResponseRecorder) *http.Cookie {
	for _, c := range w.Result().Cookies() {
		if c.Name == sessionCookie {
			return c
		}
	}
	return nil
}

func TestSessionLogin(t *testing.T) {
	f := newAuthFixture(t, nil)
	body := `{"username":"alice","password":"alice-pw"}`
	w := f.do("POST", "/api/v1/session", "", strings.NewReader(body), "Content-Type", "application/json")
	if w.Code != http.StatusCreated {
		t.Fatalf("login: %d %s", w.Code, w.Body)
	}
	c := sessionCookieOf(w)
	if c == nil {
		t.Fatalf("no %s cookie: %q", sessionCookie, w.Header().Values("Set-Cookie"))
	}
	if !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.Path != "/" || c.Secure {
		t.Errorf("cookie HttpOnly=%v SameSite=%v Path=%q Secure=%v, want true, Strict, /, false over http",
			c.HttpOnly, c.SameSite, c.Path, c.Secure)
	}
	raw := w.Header().Get("Set-Cookie")
	for _, want := range []string{"HttpOnly", "SameSite=Strict", "Path=/"} {
		if !strings.Contains(raw, want) {
			t.Errorf("Set-Cookie %q lacks %s", raw, want)
		}
	}
	if c.MaxAge <= 0 || c.MaxAge > int(sessionTTL/time.Second) {
		t.Errorf("cookie Max-Age %d, want 1..%d", c.MaxAge, int(sessionTTL/time.Second))
	}
	if strings.Contains(w.Body.String(), c.Value) {
		t.Error("the login answer's body holds the session token; only the HttpOnly cookie may")
	}

	// Behind a TLS-terminating load balancer the cookie is Secure.
	w = f.do("POST", "/api/v1/session", "", strings.NewReader(body), "Content-Type", "application/json", "X-Forwarded-Proto", "https")
	if c := sessionCookieOf(w); c == nil || !c.Secure {
		t.Errorf("over https: cookie %+v, want Secure", c)
	}

	for _, tc := range []struct {
		name, body, ctype string
		status            int
	}{
		{"wrong password", `{"username":"alice","password":"nope"}`, "application/json", http.StatusUnauthorized},
		{"unknown user", `{"username":"zed","password":"nope"}`, "application/json", http.StatusUnauthorized},
		{"disabled user", `{"username":"dis","password":"dis-pw"}`, "application/json", http.StatusUnauthorized},
		{"robot", `{"username":"robot$p1+ci","password":"ci-secret"}`, "application/json", http.StatusForbidden},
		{"form post (cross-site forms can send these)", `username=alice&password=alice-pw`, "application/x-www-form-urlencoded", http.StatusUnsupportedMediaType},
		{"text/plain", body, "text/plain", http.StatusUnsupportedMediaType},
		{"empty", `{}`, "application/json", http.StatusBadRequest},
		{"unknown field", `{"username":"alice","password":"alice-pw","admin":true}`, "application/json", http.StatusBadRequest},
	} {
		w := f.do("POST", "/api/v1/session", "", strings.NewReader(tc.body), "Content-Type", tc.ctype, "X-Forwarded-For", tc.name)
		if w.Code != tc.status {
			t.Errorf("%s: %d %s, want %d", tc.name, w.Code, w.Body, tc.status)
		}
		if c := sessionCookieOf(w); c != nil {
			t.Errorf("%s: a cookie was set: %+v", tc.name, c)
		}
	}
}

func TestSessionCSRF(t *testing.T) {
	f := newAuthFixture(t, nil)
	c, csrf := f.login("alice", "alice-pw")
	cookie := sessionCookie + "=" + c.Value

	w := f.do("GET", "/api/v1/me", "", nil, "Cookie", cookie)
	if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), `"name":"alice"`) {
		t.Fatalf("GET /api/v1/me with the cookie: %d %s", w.Code, w.Body)
	}
	description := func() string {
		ws, err := meta.GetWorkspace(f.kv, "p1pub")
		if err != nil {
			t.Fatal(err)
		}
		return ws.Description
	}
	patch := func(hdr ...string) *httptest.ResponseRecorder {
		return f.do("PATCH", "/api/v1/workspaces/p1pub", "", strings.NewReader(`{"description":"changed"}`),
			append([]string{"Cookie", cookie, "Content-Type", "application/json"}, hdr...)...)
	}
	if w := patch(); w.Code != http.StatusForbidden || errCode(w) != string(CodeDenied) {
		t.Errorf("PATCH with the cookie, no CSRF header: %d %s, want 403 DENIED", w.Code, w.Body)
	}
	if w := patch(csrfHeader, "not-the-token"); w.Code != http.StatusForbidden {
		t.Errorf("PATCH with a wrong CSRF header: %d, want 403", w.Code)
	}
	if got := description(); got != "" {
		t.Fatalf("a refused PATCH changed the description to %q", got)
	}
	if w := patch(csrfHeader, csrf); w.Code != http.StatusOK {
		t.Fatalf("PATCH with the CSRF header: %d %s, want 200", w.Code, w.Body)
	}
	if got := description(); got != "changed" {
		t.Errorf("description %q after PATCH, want changed", got)
	}
	// Another session's token does not fit this one.
	_, other := f.login("dev", "dev-pw")
	if w := patch(csrfHeader, other); w.Code != http.StatusForbidden {
		t.Errorf("PATCH with another session's CSRF token: %d, want 403", w.Code)
	}
	// The cookie works on /v2/ too, with the same rule for changes.
	if w := f.do("GET", "/v2/p1priv/app/tags/list", "", nil, "Cookie", cookie); w.Code == http.StatusUnauthorized || w.Code == http.StatusForbidden {
		t.Errorf("GET /v2/ with the cookie: %d %s", w.Code, w.Body)
	}
	if w := f.do("DELETE", "/v2/p1priv/app/manifests/latest", "", nil, "Cookie", cookie); w.Code != http.StatusForbidden {
		t.Errorf("DELETE /v2/ with the cookie, no CSRF header: %d %s, want 403", w.Code, w.Body)
	}
	// Credentials in an Authorization header take precedence over the cookie:
	// no CSRF check (a cross-site request cannot set that header).
	w = f.do("PATCH", "/api/v1/workspaces/p1pub", basicAuth("alice", "alice-pw"), strings.NewReader(`{"description":"basic"}`),
		"Cookie", cookie, "Content-Type", "application/json")
	if w.Code != http.StatusOK {
		t.Errorf("PATCH with Basic credentials and the cookie: %d %s, want 200", w.Code, w.Body)
	}
}

// TestSessionIsNotABearerToken: the session and Bearer tokens have different
// audiences, so neither is accepted in the other's place.
func TestSessionIsNotABearerToken(t *testing.T) {
	f := newAuthFixture(t, nil)
	c, _ := f.login("alice", "alice-pw")
	if w := f.do("GET", "/api/v1/me", "Bearer "+c.Value, nil); w.Code != http.StatusUnauthorized {
		t.Errorf("the session token as a Bearer token: %d, want 401", w.Code)
	}
	tok := f.token("alice", "alice-pw")
	if w := f.do("GET", "/api/v1/me", "", nil, "Cookie", sessionCookie+"="+tok); w.Code != http.StatusUnauthorized {
		t.Errorf("a Bearer token as the session cookie: %d, want 401", w.Code)
	}
	if w := f.do("GET", "/api/v1/me", "", nil, "Cookie", sessionCookie+"=garbage"); w.Code != http.StatusUnauthorized {
		t.Errorf("a garbage session cookie: %d, want 401", w.Code)
	}
	// Tampering with the claims (another user) breaks the signature.
	parts := strings.Split(c.Value, ".")
	if len(parts) != 3 {
		t.Fatalf("session token %q is not a JWT", c.Value)
	}
	forged := parts[0] + "." + strings.Replace(parts[1], parts[1][:8], "eyJzdWIi", 1) + "." + parts[2]
	if w := f.do("GET", "/api/v1/me", "", nil, "Cookie", sessionCookie+"="+forged); w.Code != http.StatusUnauthorized {
		t.Errorf("a tampered session token: %d, want 401", w.Code)
	}
}

func TestSessionRenewAndExpiry(t *testing.T) {
	f := newAuthFixture(t, nil)
	c, csrf := f.login("alice", "alice-pw")
	get := func(value string) *httptest.ResponseRecorder {
		return f.do("GET", "/api/v1/session", "", nil, "Cookie", sessionCookie+"="+value)
	}
	// Young sessions are not renewed.
	w := get(c.Value)
	if w.Code != http.StatusOK || sessionCookieOf(w) != nil {
		t.Fatalf("GET /api/v1/session at once: %d, renewed %v; want 200, not renewed", w.Code, sessionCookieOf(w) != nil)
	}
	var s sessionJSON
	if err := json.Unmarshal(w.Body.Bytes(), &s); err != nil || s.CSRFToken != csrf || s.User != "alice" {
		t.Fatalf("session answer %s (%v), want alice with the login's CSRF token", w.Body, err)
	}
	// An active user's session is renewed with the same CSRF token, for hours.
	value := c.Value
	for i := 0; i < 3; i++ {
		f.clock.Add(sessionRenewAfter + time.Second)
		w := get(value)
		nc := sessionCookieOf(w)
		if w.Code != http.StatusOK || nc == nil || nc.Value == value {
			t.Fatalf("renewal %d: %d, cookie %v", i, w.Code, nc)
		}
		if err := json.Unmarshal(w.Body.Bytes(), &s); err != nil || s.CSRFToken != csrf {
			t.Fatalf("renewal %d: CSRF token %q, want the login's", i, s.CSRFToken)
		}
		value = nc.Value
	}
	// An idle session expires.
	f.clock.Add(sessionTTL + tokenLeeway + time.Second)
	if w := get(value); w.Code != http.StatusUnauthorized {
		t.Errorf("after %s idle: %d, want 401", sessionTTL, w.Code)
	}
	if w := f.do("GET", "/api/v1/me", "", nil, "Cookie", sessionCookie+"="+value); w.Code != http.StatusUnauthorized {
		t.Errorf("GET /api/v1/me after expiry: %d, want 401", w.Code)
	}

	// Renewals end sessionMaxAge after the login.
	c, _ = f.login("dev", "dev-pw")
	value = c.Value
	for elapsed := time.Duration(0); elapsed < sessionMaxAge+time.Hour; elapsed += 10 * time.Minute {
		f.clock.Add(10 * time.Minute)
		w := get(value)
		if w.Code != http.StatusOK {
			if elapsed < sessionMaxAge-sessionTTL {
				t.Fatalf("session ended after %s, want it renewed up to %s", elapsed, sessionMaxAge)
			}
			break
		}
		if nc := sessionCookieOf(w); nc != nil {
			value = nc.Value
		}
		if elapsed > sessionMaxAge+tokenLeeway {
			t.Fatalf("session still valid %s after the login, want at most %s", elapsed, sessionMaxAge)
		}
	}

	// Disabling a user ends their sessions at once.
	c, _ = f.login("guest", "guest-pw")
	if w := get(c.Value); w.Code != http.StatusOK {
		t.Fatalf("guest session: %d", w.Code)
	}
	f.must(&meta.PutUser{Name: "guest", Disabled: true, Time: f.clock.Now()})
	if w := f.do("GET", "/api/v1/me", "", nil, "Cookie", sessionCookie+"="+c.Value); w.Code != http.StatusUnauthorized {
		t.Errorf("a disabled user's session: %d, want 401", w.Code)
	}
}

// TestSessionLogout drives the session as a browser does, with a cookie jar.
func TestSessionLogout(t *testing.T) {
	f := newAuthFixture(t, nil)
	srv := httptest.NewServer(f.s)
	defer srv.Close()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Jar: jar}
	call := func(method, path, body, csrf string) *http.Response {
		t.Helper()
		var rd io.Reader
		if body != "" {
			rd = strings.NewReader(body)
		}
		req, err := http.NewRequest(method, srv.URL+path, rd)
		if err != nil {
			t.Fatal(err)
		}
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		if csrf != "" {
			req.Header.Set(csrfHeader, csrf)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { resp.Body.Close() })
		return resp
	}
	resp := call("POST", "/api/v1/session", `{"username":"alice","password":"alice-pw"}`, "")
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("login: %s", resp.Status)
	}
	var s sessionJSON
	if err := json.NewDecoder(resp.Body).Decode(&s); err != nil {
		t.Fatal(err)
	}
	if resp := call("GET", "/api/v1/me", "", ""); resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /api/v1/me logged in: %s", resp.Status)
	}
	if resp := call("DELETE", "/api/v1/session", "", ""); resp.StatusCode != http.StatusForbidden {
		t.Errorf("logout without the CSRF header: %s, want 403", resp.Status)
	}
	if resp := call("GET", "/api/v1/me", "", ""); resp.StatusCode != http.StatusOK {
		t.Fatalf("a refused logout ended the session: %s", resp.Status)
	}
	resp = call("DELETE", "/api/v1/session", "", s.CSRFToken)
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("logout: %s", resp.Status)
	}
	u, _ := url.Parse(srv.URL)
	for _, c := range jar.Cookies(u) {
		if c.Name == sessionCookie {
			t.Errorf("the session cookie is still in the jar after logout: %v", c)
		}
	}
	if resp := call("GET", "/api/v1/me", "", ""); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("GET /api/v1/me after logout: %s, want 401", resp.Status)
	}
	if resp := call("GET", "/api/v1/session", "", ""); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("GET /api/v1/session after logout: %s, want 401", resp.Status)
	}
	// Logging out without a session (or with an expired one) is harmless.
	if resp := call("DELETE", "/api/v1/session", "", ""); resp.StatusCode != http.StatusNoContent {
		t.Errorf("logout without a session: %s, want 204", resp.Status)
	}
}

// TestConsoleRepositoryPages: the console lists a workspace's repositories one
// page at a time (n, last) and searches them on the server (q); with 10,000
// repositories a page is still one small answer.
func TestConsoleRepositoryPages(t *testing.T) {
	if testing.Short() {
		t.Skip("creates 10,000 repositories")
	}
	f := newAuthFixture(t, nil)
	const total = 10000
	now := f.clock.Now()
	f.kv.mu.Lock()
	for i := 0; i < total; i++ {
		repo := fmt.Sprintf("p1pub/svc-%05d", i)
		data, err := meta.Encode(&meta.PutBlob{Repo: repo, Digest: meta.DigestOf("sha256", []byte(repo)), Size: 1, Time: now})
		if err != nil {
			f.kv.mu.Unlock()
			t.Fatal(err)
		}
		f.kv.index++
		if res := meta.Apply(authTxn{f.kv}, f.kv.index, data); res != nil {
			f.kv.mu.Unlock()
			t.Fatalf("apply: %v", res)
		}
	}
	f.kv.mu.Unlock()
	c, _ := f.login("guest", "guest-pw")
	cookie := sessionCookie + "=" + c.Value
	page := func(query string) (mgmtList[repositoryJSON], time.Duration) {
		t.Helper()
		start := time.Now()
		w := f.do("GET", "/api/v1/workspaces/p1pub/repositories?"+query, "", nil, "Cookie", cookie)
		d := time.Since(start)
		if w.Code != http.StatusOK {
			t.Fatalf("GET ?%s: %d %s", query, w.Code, w.Body)
		}
		var l mgmtList[repositoryJSON]
		if err := json.Unmarshal(w.Body.Bytes(), &l); err != nil {
			t.Fatal(err)
		}
		return l, d
	}
	first, d1 := page("n=50")
	if len(first.Items) != 50 || first.Next != first.Items[49].Name || first.Items[0].Name != "p1pub/app" {
		t.Fatalf("first page: %d items, next %q, first %q", len(first.Items), first.Next, first.Items[0].Name)
	}
	deep, d2 := page("n=50&last=" + url.QueryEscape("p1pub/svc-09900"))
	if len(deep.Items) != 50 || deep.Items[0].Name != "p1pub/svc-09901" {
		t.Fatalf("page after svc-09900: %d items, first %q", len(deep.Items), deep.Items[0].Name)
	}
	found, d3 := page("n=50&q=svc-0424")
	if len(found.Items) != 10 || found.Next != "" {
		t.Fatalf("search svc-0424: %d items, next %q; want 10 and no next page", len(found.Items), found.Next)
	}
	t.Logf("10,000 repositories: first page %s, deep page %s, search %s (in-memory test store)", d1, d2, d3)
}
