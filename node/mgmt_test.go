package node

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
)

// The management API (/api/v1/) on a real node: tokens from /auth/token, the
// roles of the product's permission table, ids of other projects, fields nobody
// may set on themselves, robots, own and shared listings.

// mgmtClient calls the management API as one caller: with a Bearer token from
// /auth/token (as the berth CLI and scripts do) or, with basic set, with Basic
// credentials on every request.
type mgmtClient struct {
	t           *testing.T
	base        string
	user, pass  string
	token       string
	basic       bool
	anonymously bool
}

// login trades Basic credentials for a token, as docker login does.
func login(t *testing.T, base, user, pass string) *mgmtClient {
	t.Helper()
	tok, status := tokenFor(t, base, user, pass, "")
	if status != http.StatusOK {
		t.Fatalf("login %s: status %d", user, status)
	}
	return &mgmtClient{t: t, base: base, user: user, pass: pass, token: tok}
}

// tokenFor asks /auth/token for a token with scope ("" for none).
func tokenFor(t *testing.T, base, user, pass, scope string) (string, int) {
	t.Helper()
	q := url.Values{"service": {"berth"}}
	if scope != "" {
		q.Set("scope", scope)
	}
	req, _ := http.NewRequest("GET", base+"/auth/token?"+q.Encode(), nil)
	req.SetBasicAuth(user, pass)
	r, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Body.Close()
	var body struct {
		Token string `json:"token"`
	}
	_ = json.NewDecoder(r.Body).Decode(&body)
	return body.Token, r.StatusCode
}

type mgmtResp struct {
	status int
	header http.Header
	body   []byte
}

func (c *mgmtClient) call(method, path string, body any) mgmtResp {
	c.t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			c.t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, c.base+path, rd)
	if err != nil {
		c.t.Fatal(err)
	}
	switch {
	case c.anonymously:
	case c.basic:
		req.SetBasicAuth(c.user, c.pass)
	default:
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	r, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer r.Body.Close()
	b, _ := io.ReadAll(r.Body)
	return mgmtResp{r.StatusCode, r.Header, b}
}

// must calls and fails the test unless the status is want; it decodes the
// answer into out when out is not nil.
func (c *mgmtClient) must(want int, method, path string, body, out any) {
	c.t.Helper()
	r := c.call(method, path, body)
	if r.status != want {
		c.t.Fatalf("%s %s %s as %s: status %d, want %d: %s", method, path, jsonString(body), c.user, r.status, want, r.body)
	}
	if out != nil {
		if err := json.Unmarshal(r.body, out); err != nil {
			c.t.Fatalf("%s %s: decode %s: %v", method, path, r.body, err)
		}
	}
}

// expect checks the status and error code of a refused call.
func (c *mgmtClient) expect(want int, code, method, path string, body any) {
	c.t.Helper()
	r := c.call(method, path, body)
	var e struct {
		Errors []struct{ Code, Message string }
	}
	_ = json.Unmarshal(r.body, &e)
	got := ""
	if len(e.Errors) > 0 {
		got = e.Errors[0].Code
	}
	if r.status != want || got != code {
		c.t.Errorf("%s %s %s as %s: got %d %s, want %d %s (%s)", method, path, jsonString(body), c.user, r.status, got, want, code, r.body)
	}
}

func jsonString(v any) string {
	if v == nil {
		return ""
	}
	b, _ := json.Marshal(v)
	return string(b)
}

type nameItems struct {
	Items []struct {
		Name string `json:"name"`
		Own  bool   `json:"own"`
	} `json:"items"`
	Next string `json:"next"`
}

func (l nameItems) names() []string {
	var out []string
	for _, it := range l.Items {
		out = append(out, it.Name)
	}
	return out
}

// pushImageAs pushes a one-layer image to repo:tag with a Bearer token.
func pushImageAs(t *testing.T, base, token, repo, tag string) (size int) {
	t.Helper()
	auth := []string{"Authorization", "Bearer " + token}
	cfg, layer := []byte(`{"architecture":"amd64","repo":"`+repo+`"}`), bytes.Repeat([]byte(repo), 300)
	for _, b := range [][]byte{cfg, layer} {
		r := doNoAuth(t, "POST", base+"/v2/"+repo+"/blobs/uploads/?digest="+sha(b), b, auth...)
		if r.status != http.StatusCreated {
			t.Fatalf("push blob to %s: %d %s", repo, r.status, r.body)
		}
	}
	m := imageManifest(sha(cfg), sha(layer), len(cfg), len(layer))
	r := doNoAuth(t, "PUT", base+"/v2/"+repo+"/manifests/"+tag, m, append(auth, "Content-Type", ociManifest)...)
	if r.status != http.StatusCreated {
		t.Fatalf("put manifest %s:%s: %d %s", repo, tag, r.status, r.body)
	}
	return len(m) + len(cfg) + len(layer)
}

// doNoAuth is do without the admin's Basic credentials.
func doNoAuth(t *testing.T, method, url string, body []byte, hdr ...string) resp {
	t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	r, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Body.Close()
	b, _ := io.ReadAll(r.Body)
	return resp{r.StatusCode, r.Header, b}
}

func TestManagementAPI(t *testing.T) {
	_, base := startNode(t, t.TempDir())

	// Anonymous callers get a 401 with the token endpoint's challenge.
	anon := &mgmtClient{t: t, base: base, user: "anonymous", anonymously: true}
	r := anon.call("GET", "/api/v1/me", nil)
	if r.status != http.StatusUnauthorized || !strings.Contains(r.header.Get("WWW-Authenticate"), "/auth/token") {
		t.Fatalf("anonymous /me: %d %v", r.status, r.header)
	}

	admin := login(t, base, "admin", testAdminPassword)
	var me struct {
		Name        string
		Kind        string
		CloudAdmin  bool
		Memberships []struct{ Project, Role string }
	}
	admin.must(200, "GET", "/api/v1/me", nil, &me)
	if me.Name != "admin" || me.Kind != "user" || !me.CloudAdmin {
		t.Fatalf("admin /me: %+v", me)
	}

	// Users, projects and members, created by the cloud admin.
	for _, u := range []string{"alice", "bob", "carol", "dave", "eve"} {
		var got map[string]any
		admin.must(201, "POST", "/api/v1/users", map[string]any{"name": u, "password": u + "-password"}, &got)
		if _, ok := got["passwordHash"]; ok || got["name"] != u {
			t.Fatalf("created user: %v", got)
		}
	}
	admin.expect(409, "CONFLICT", "POST", "/api/v1/users", map[string]any{"name": "alice", "password": "whatever-pw"})
	admin.expect(400, "INVALID", "POST", "/api/v1/users", map[string]any{"name": "Bad Name", "password": "whatever-pw"})
	admin.expect(400, "INVALID", "POST", "/api/v1/users", map[string]any{"name": "frank", "password": "short"})
	admin.must(201, "POST", "/api/v1/projects", map[string]any{"name": "web", "description": "the web team"}, nil)
	admin.must(201, "POST", "/api/v1/projects", map[string]any{"name": "ops"}, nil)
	admin.must(200, "PUT", "/api/v1/projects/web/members/alice", map[string]any{"role": "project-admin"}, nil)
	admin.must(200, "PUT", "/api/v1/projects/ops/members/dave", map[string]any{"role": "project-admin"}, nil)
	admin.expect(400, "INVALID", "PUT", "/api/v1/projects/ops/members/eve", map[string]any{"role": "boss"})
	admin.expect(404, "NOT_FOUND", "PUT", "/api/v1/projects/ops/members/nobody", map[string]any{"role": "guest"})

	alice := login(t, base, "alice", "alice-password")
	bob := login(t, base, "bob", "bob-password")
	dave := login(t, base, "dave", "dave-password")
	eve := login(t, base, "eve", "eve-password")
	eve.basic = true // Basic credentials work on the management API too

	// Only cloud admins create projects and list users.
	alice.expect(403, "DENIED", "POST", "/api/v1/projects", map[string]any{"name": "mine"})
	alice.expect(403, "DENIED", "GET", "/api/v1/users", nil)

	// A project admin manages their project's members, and only theirs.
	alice.must(200, "PUT", "/api/v1/projects/web/members/bob", map[string]any{"role": "developer"}, nil)
	alice.must(200, "PUT", "/api/v1/projects/web/members/carol", map[string]any{"role": "guest"}, nil)
	alice.expect(404, "NOT_FOUND", "PUT", "/api/v1/projects/ops/members/bob", map[string]any{"role": "guest"})
	alice.expect(404, "NOT_FOUND", "GET", "/api/v1/projects/ops", nil)
	alice.expect(404, "NOT_FOUND", "GET", "/api/v1/projects/ops/members", nil)
	alice.expect(403, "DENIED", "PUT", "/api/v1/projects/web/members/alice", map[string]any{"role": "guest"})
	var members nameItems
	alice.must(200, "GET", "/api/v1/projects/web/members", nil, &members)
	if len(members.Items) != 3 {
		t.Errorf("web members: %s", jsonString(members))
	}
	var projects nameItems
	alice.must(200, "GET", "/api/v1/projects", nil, &projects)
	if got := projects.names(); !slices.Equal(got, []string{"web"}) {
		t.Errorf("alice's projects: %v, want [web]", got)
	}
	admin.must(200, "GET", "/api/v1/projects", nil, &projects)
	if got := projects.names(); !slices.Equal(got, []string{"default", "ops", "web"}) {
		t.Errorf("admin's projects: %v, want [default ops web]", got)
	}

	// Workspaces: created by project admins, in their own project only.
	alice.must(201, "POST", "/api/v1/projects/web/workspaces", map[string]any{"name": "web-private"}, nil)
	alice.must(201, "POST", "/api/v1/projects/web/workspaces", map[string]any{"name": "web-public", "visibility": "public", "description": "shared"}, nil)
	dave.must(201, "POST", "/api/v1/projects/ops/workspaces", map[string]any{"name": "ops-private"}, nil)
	dave.must(201, "POST", "/api/v1/projects/ops/workspaces", map[string]any{"name": "ops-public", "visibility": "public"}, nil)
	dave.expect(404, "NOT_FOUND", "POST", "/api/v1/projects/web/workspaces", map[string]any{"name": "intruder"})
	bob.expect(403, "DENIED", "POST", "/api/v1/projects/web/workspaces", map[string]any{"name": "bobs"})
	alice.expect(409, "CONFLICT", "POST", "/api/v1/projects/web/workspaces", map[string]any{"name": "ops-public"})
	alice.expect(400, "INVALID", "POST", "/api/v1/projects/web/workspaces", map[string]any{"name": "Bad_"})

	// A developer edits descriptions, not visibility nor members.
	var ws struct {
		Name, Project, Visibility, Description string
		Repositories                           int
		Own                                    bool
	}
	bob.must(200, "PATCH", "/api/v1/workspaces/web-private", map[string]any{"description": "bob was here"}, &ws)
	if ws.Description != "bob was here" || ws.Visibility != "private" || !ws.Own {
		t.Errorf("after bob's patch: %+v", ws)
	}
	bob.expect(403, "DENIED", "PATCH", "/api/v1/workspaces/web-private", map[string]any{"visibility": "public"})
	bob.expect(403, "DENIED", "PUT", "/api/v1/projects/web/members/eve", map[string]any{"role": "guest"})
	bob.expect(403, "DENIED", "DELETE", "/api/v1/projects/web/members/carol", nil)
	bob.expect(403, "DENIED", "PATCH", "/api/v1/projects/web", map[string]any{"description": "mine now"})
	bob.must(200, "GET", "/api/v1/workspaces/web-private", nil, &ws)
	if ws.Visibility != "private" {
		t.Errorf("visibility changed by a refused patch: %+v", ws)
	}
	alice.must(200, "PATCH", "/api/v1/projects/web", map[string]any{"description": "web team"}, nil)

	// Other projects' ids are unknown to non-members; public workspaces are
	// visible but carry no workspace rights.
	dave.expect(404, "NOT_FOUND", "GET", "/api/v1/workspaces/web-private", nil)
	dave.expect(404, "NOT_FOUND", "PATCH", "/api/v1/workspaces/web-private", map[string]any{"description": "x"})
	dave.expect(404, "NOT_FOUND", "DELETE", "/api/v1/workspaces/web-private", nil)
	dave.expect(404, "NOT_FOUND", "GET", "/api/v1/workspaces/web-private/repositories", nil)
	dave.expect(404, "NOT_FOUND", "GET", "/api/v1/projects/web/robots", nil)
	dave.expect(404, "NOT_FOUND", "DELETE", "/api/v1/projects/web/robots/ci", nil)
	dave.must(200, "GET", "/api/v1/workspaces/web-public", nil, &ws)
	if ws.Own || ws.Project != "web" {
		t.Errorf("dave sees web-public as %+v", ws)
	}
	dave.expect(403, "DENIED", "PATCH", "/api/v1/workspaces/web-public", map[string]any{"description": "x"})
	dave.expect(403, "DENIED", "DELETE", "/api/v1/workspaces/web-public", nil)
	// The answer for a hidden object is the answer for a missing one.
	a, b := dave.call("GET", "/api/v1/workspaces/web-private", nil), dave.call("GET", "/api/v1/workspaces/no-such", nil)
	if a.status != b.status || !bytes.Equal(bytes.ReplaceAll(a.body, []byte("web-private"), []byte("no-such")), b.body) {
		t.Errorf("hidden and missing differ: %d %s vs %d %s", a.status, a.body, b.status, b.body)
	}

	// Nobody makes themselves cloud admin or re-enables themselves.
	bob.expect(403, "DENIED", "PATCH", "/api/v1/users/bob", map[string]any{"cloudAdmin": true})
	bob.expect(403, "DENIED", "PATCH", "/api/v1/users/bob", map[string]any{"disabled": true})
	admin.expect(403, "DENIED", "PATCH", "/api/v1/users/admin", map[string]any{"cloudAdmin": false})
	admin.expect(403, "DENIED", "DELETE", "/api/v1/users/admin", nil)
	bob.expect(400, "INVALID", "PATCH", "/api/v1/users/bob", map[string]any{"role": "cloud-admin"})
	bob.expect(404, "NOT_FOUND", "PATCH", "/api/v1/users/carol", map[string]any{"password": "carols-new-pw"})
	bob.expect(404, "NOT_FOUND", "GET", "/api/v1/users/carol", nil)
	var user struct {
		Name       string
		CloudAdmin bool
	}
	bob.must(200, "GET", "/api/v1/users/bob", nil, &user)
	if user.CloudAdmin {
		t.Fatalf("bob became cloud admin: %+v", user)
	}
	bob.must(200, "GET", "/api/v1/me", nil, &me)
	if me.CloudAdmin || len(me.Memberships) != 1 || me.Memberships[0].Role != "developer" {
		t.Errorf("bob /me: %+v", me)
	}
	// Their own password, with the old one.
	bob.expect(403, "DENIED", "PATCH", "/api/v1/users/bob", map[string]any{"password": "bob-new-password"})
	bob.expect(403, "DENIED", "PATCH", "/api/v1/users/bob", map[string]any{"password": "bob-new-password", "oldPassword": "wrong"})
	bob.must(200, "PATCH", "/api/v1/users/bob", map[string]any{"password": "bob-new-password", "oldPassword": "bob-password"}, nil)
	if _, status := tokenFor(t, base, "bob", "bob-new-password", ""); status != 200 {
		t.Errorf("login with the new password: %d", status)
	}
	// An admin disables a user: their next token is refused.
	admin.must(200, "PATCH", "/api/v1/users/eve", map[string]any{"disabled": true}, nil)
	if _, status := tokenFor(t, base, "eve", "eve-password", ""); status != http.StatusUnauthorized {
		t.Errorf("disabled user's login: %d, want 401", status)
	}
	admin.must(200, "PATCH", "/api/v1/users/eve", map[string]any{"disabled": false}, nil)

	// Robots: created by project admins, secret shown once, works for a
	// docker-style login and push, revocable.
	var robot struct {
		Name, Project, Login, Secret string
		Workspaces, Actions          []string
		Expires                      *string
	}
	bob.expect(403, "DENIED", "POST", "/api/v1/projects/web/robots", map[string]any{"name": "ci", "workspaces": []string{"web-private"}, "actions": []string{"push"}})
	alice.expect(404, "NOT_FOUND", "POST", "/api/v1/projects/web/robots", map[string]any{"name": "ci", "workspaces": []string{"ops-private"}, "actions": []string{"pull"}})
	alice.expect(400, "INVALID", "POST", "/api/v1/projects/web/robots", map[string]any{"name": "ci", "workspaces": []string{"web-private"}, "actions": []string{"admin"}})
	alice.must(201, "POST", "/api/v1/projects/web/robots", map[string]any{
		"name": "ci", "workspaces": []string{"web-private", "web-public"}, "actions": []string{"push", "pull"}, "expiresInDays": 30,
	}, &robot)
	if robot.Login != "robot$web+ci" || len(robot.Secret) < 32 || robot.Expires == nil {
		t.Fatalf("created robot: %+v", robot)
	}
	var robots struct{ Items []map[string]any }
	alice.must(200, "GET", "/api/v1/projects/web/robots", nil, &robots)
	if len(robots.Items) != 1 || robots.Items[0]["login"] != "robot$web+ci" {
		t.Fatalf("robots: %v", robots)
	}
	if _, ok := robots.Items[0]["secret"]; ok {
		t.Errorf("robot list shows a secret: %v", robots.Items[0])
	}
	if _, ok := robots.Items[0]["secretHash"]; ok {
		t.Errorf("robot list shows a hash: %v", robots.Items[0])
	}
	robotToken, status := tokenFor(t, base, robot.Login, robot.Secret, "repository:web-private/app:pull,push")
	if status != 200 {
		t.Fatalf("robot login: %d", status)
	}
	appSize := pushImageAs(t, base, robotToken, "web-private/app", "1.0")
	adminPush, _ := tokenFor(t, base, "admin", testAdminPassword, "repository:web-public/site:pull,push")
	pushImageAs(t, base, adminPush, "web-public/site", "latest")
	davePush, _ := tokenFor(t, base, "dave", "dave-password", "repository:ops-private/tool:pull,push")
	pushImageAs(t, base, davePush, "ops-private/tool", "v1")

	// Own and shared listings.
	var list nameItems
	for _, tc := range []struct {
		c     *mgmtClient
		path  string
		names []string
	}{
		{bob, "/api/v1/workspaces?scope=own", []string{"web-private", "web-public"}},
		{bob, "/api/v1/workspaces?scope=shared", []string{"ops-public"}},
		{dave, "/api/v1/workspaces?scope=own", []string{"ops-private", "ops-public"}},
		{dave, "/api/v1/workspaces?scope=shared", []string{"web-public"}},
		{dave, "/api/v1/workspaces", []string{"ops-private", "ops-public", "web-public"}},
		{eve, "/api/v1/workspaces?scope=own", nil},
		{eve, "/api/v1/workspaces?scope=shared", []string{"ops-public", "web-public"}},
		{bob, "/api/v1/images?scope=own", []string{"web-private/app", "web-public/site"}},
		{bob, "/api/v1/images?scope=shared", nil},
		{dave, "/api/v1/images?scope=own", []string{"ops-private/tool"}},
		{dave, "/api/v1/images?scope=shared", []string{"web-public/site"}},
		{dave, "/api/v1/images", []string{"ops-private/tool"}},
		{bob, "/api/v1/workspaces/web-private/repositories?q=AP", []string{"web-private/app"}},
		{bob, "/api/v1/workspaces/web-private/repositories?q=zzz", nil},
		{dave, "/api/v1/workspaces/web-public/repositories", []string{"web-public/site"}},
	} {
		tc.c.must(200, "GET", tc.path, nil, &list)
		if got := list.names(); !slices.Equal(got, tc.names) {
			t.Errorf("%s as %s: %v, want %v", tc.path, tc.c.user, got, tc.names)
		}
	}
	admin.must(200, "GET", "/api/v1/workspaces?scope=all", nil, &list)
	if got := list.names(); len(got) != 7 { // a, b, library, two of web, two of ops
		t.Errorf("admin sees workspaces %v", got)
	}
	admin.must(200, "GET", "/api/v1/images?scope=all&n=1", nil, &list)
	if len(list.Items) != 1 || list.Next != "ops-private/tool" {
		t.Errorf("paged images: %s", jsonString(list))
	}

	// Repositories and their tags.
	var tags struct {
		Items []struct {
			Name, Digest, MediaType, Pushed string
			Size                            int
		}
	}
	carol := login(t, base, "carol", "carol-password")
	carol.must(200, "GET", "/api/v1/repositories/web-private/app/tags", nil, &tags)
	if len(tags.Items) != 1 || tags.Items[0].Name != "1.0" || tags.Items[0].Size != appSize ||
		tags.Items[0].MediaType != ociManifest || !strings.HasPrefix(tags.Items[0].Digest, "sha256:") || tags.Items[0].Pushed == "" {
		t.Errorf("tags: %s (size want %d)", jsonString(tags), appSize)
	}
	carol.expect(403, "DENIED", "PATCH", "/api/v1/repositories/web-private/app", map[string]any{"description": "guest edit"})
	dave.expect(404, "NAME_UNKNOWN", "GET", "/api/v1/repositories/web-private/app", nil)
	dave.expect(404, "NAME_UNKNOWN", "GET", "/api/v1/repositories/web-private/app/tags", nil)
	dave.expect(404, "NAME_UNKNOWN", "PATCH", "/api/v1/repositories/web-private/app", map[string]any{"description": "x"})
	var repo struct {
		Name, Description string
		Tags              int
	}
	bob.must(200, "PATCH", "/api/v1/repositories/web-private/app", map[string]any{"description": "the app"}, &repo)
	carol.must(200, "GET", "/api/v1/repositories/web-private/app", nil, &repo)
	if repo.Description != "the app" || repo.Tags != 1 {
		t.Errorf("repository: %+v", repo)
	}

	// Deletes: refused while in use; a revoked robot gets no token.
	admin.expect(409, "CONFLICT", "DELETE", "/api/v1/projects/web", nil)
	alice.expect(403, "DENIED", "DELETE", "/api/v1/projects/web", nil)
	// Deleting a workspace that holds repositories is a soft delete (gc_test.go).
	alice.must(204, "DELETE", "/api/v1/workspaces/web-public", nil, nil)
	alice.must(204, "DELETE", "/api/v1/projects/web/robots/ci", nil, nil)
	if _, status := tokenFor(t, base, robot.Login, robot.Secret, ""); status != http.StatusUnauthorized {
		t.Errorf("revoked robot's login: %d, want 401", status)
	}
	alice.must(201, "POST", "/api/v1/projects/web/workspaces", map[string]any{"name": "scratch"}, nil)
	alice.must(204, "DELETE", "/api/v1/workspaces/scratch", nil, nil)
	alice.must(204, "DELETE", "/api/v1/projects/web/members/carol", nil, nil)
	carol.expect(404, "NOT_FOUND", "GET", "/api/v1/projects/web", nil) // a new token sees the change
	admin.must(201, "POST", "/api/v1/projects", map[string]any{"name": "empty"}, nil)
	admin.must(204, "DELETE", "/api/v1/projects/empty", nil, nil)
	admin.must(204, "DELETE", "/api/v1/users/eve", nil, nil)
	admin.expect(404, "NOT_FOUND", "GET", "/api/v1/users/eve", nil)

	// The OpenAPI document is served without credentials and names every route.
	var doc struct {
		OpenAPI string
		Paths   map[string]map[string]any
	}
	anon.must(200, "GET", "/api/v1/openapi.json", nil, &doc)
	for _, p := range []string{"/api/v1/me", "/api/v1/users/{user}", "/api/v1/projects/{project}/members/{user}",
		"/api/v1/workspaces", "/api/v1/repositories/{name}/tags", "/api/v1/images", "/api/v1/projects/{project}/robots/{robot}"} {
		if doc.Paths[p] == nil {
			t.Errorf("openapi.json lacks %s", p)
		}
	}
}
