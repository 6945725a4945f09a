package node

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/berth-registry/berth/meta"
)

// Access over real HTTP on a real node: every role x action x (own project,
// other project) x (public, private workspace), through the Docker token flow
// (a request without a token gets a 401 challenge; the client fetches a token
// from the challenge's realm with Basic credentials and retries).

// authNode is a node seeded with
//
//	projects   proj1 (workspaces w1pub public, w1priv private), proj2 (w2pub, w2priv)
//	users      admin (bootstrap cloud admin), padmin (project-admin of proj1),
//	           dev (developer of proj1), guest (guest of proj1), other (developer of proj2);
//	           password "<name>-pw" except admin's
//	robots     robot$proj1+puller (w1priv: pull), robot$proj1+pusher (w1pub, w1priv: pull, push)
//	images     <ws>/app:v1 in every workspace, each with its own layer
type authNode struct {
	n      *Node
	base   string
	layers map[string]string // workspace -> digest of its layer
}

var authWorkspaces = []string{"w1pub", "w1priv", "w2pub", "w2priv"}

func startAuthNode(t *testing.T, anonymousPull bool) *authNode {
	t.Helper()
	cfg := Defaults()
	cfg.DataDir = t.TempDir()
	cfg.Listen = "127.0.0.1:0"
	cfg.AdminPassword = testAdminPassword
	cfg.AnonymousPull = anonymousPull
	n, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := n.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := n.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	now := time.Now()
	hash := func(pw string) []byte {
		h, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.MinCost)
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	cmds := []meta.Command{
		&meta.PutProject{Name: "proj1", Create: true, Time: now},
		&meta.PutProject{Name: "proj2", Create: true, Time: now},
	}
	for _, ws := range authWorkspaces {
		vis := meta.Private
		if strings.HasSuffix(ws, "pub") {
			vis = meta.Public
		}
		cmds = append(cmds, &meta.PutWorkspace{Name: ws, Project: "proj" + ws[1:2], Visibility: vis, Create: true, Time: now})
	}
	for _, u := range []struct {
		name, project string
		role          meta.Role
	}{
		{"padmin", "proj1", meta.RoleProjectAdmin},
		{"dev", "proj1", meta.RoleDeveloper},
		{"guest", "proj1", meta.RoleGuest},
		{"other", "proj2", meta.RoleDeveloper},
	} {
		cmds = append(cmds, &meta.PutUser{Name: u.name, PasswordHash: hash(u.name + "-pw"), Create: true, Time: now},
			&meta.SetMember{Project: u.project, User: u.name, Role: u.role, Time: now})
	}
	cmds = append(cmds,
		&meta.PutRobot{Project: "proj1", Name: "puller", SecretHash: hash("puller-pw"), Workspaces: []string{"w1priv"},
			Actions: []string{"pull"}, Create: true, Time: now},
		&meta.PutRobot{Project: "proj1", Name: "pusher", SecretHash: hash("pusher-pw"), Workspaces: []string{"w1pub", "w1priv"},
			Actions: []string{"pull", "push"}, Create: true, Time: now})
	for _, c := range cmds {
		if err := n.Propose(ctx, c); err != nil {
			t.Fatalf("seed %T: %v", c, err)
		}
	}
	an := &authNode{n: n, base: "http://" + n.Addr(), layers: map[string]string{}}
	admin := an.client(t, "admin", testAdminPassword)
	for _, ws := range authWorkspaces {
		an.layers[ws] = admin.pushImage(ws+"/app", "v1", []byte("layer of "+ws))
	}
	return an
}

// authClient is a registry client that follows the token flow as docker and
// containerd do: on a 401 with a Bearer challenge it asks the challenge's realm
// for a token with the challenge's scope (with Basic credentials unless
// anonymous) and retries once.
type authClient struct {
	t          *testing.T
	base       string
	user, pass string // user "": anonymous
	tokens     map[string]string
}

func (an *authNode) client(t *testing.T, user, pass string) *authClient {
	return &authClient{t: t, base: an.base, user: user, pass: pass, tokens: map[string]string{}}
}

type authResp struct {
	status int
	header http.Header
	body   []byte
}

func (r authResp) code() string { return resp{status: r.status, body: r.body}.code() }

func (c *authClient) send(method, path, token string, body []byte, hdr []string) authResp {
	c.t.Helper()
	req, err := http.NewRequest(method, c.base+path, bytes.NewReader(body))
	if err != nil {
		c.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	r, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer r.Body.Close()
	b, _ := io.ReadAll(r.Body)
	return authResp{r.StatusCode, r.Header, b}
}

// do sends a request, fetching a token when challenged.
func (c *authClient) do(method, path string, body []byte, hdr ...string) authResp {
	c.t.Helper()
	r := c.send(method, path, c.tokens[path], body, hdr)
	if r.status != http.StatusUnauthorized {
		return r
	}
	ch := parseChallenge(r.header.Get("WWW-Authenticate"))
	if ch["realm"] != c.base+"/auth/token" || ch["service"] != "berth" {
		c.t.Fatalf("%s %s: challenge %q: want the realm %s/auth/token and service berth", method, path, r.header.Get("WWW-Authenticate"), c.base)
	}
	tok := c.fetchToken(ch["scope"])
	c.tokens[path] = tok
	return c.send(method, path, tok, body, hdr)
}

func (c *authClient) fetchToken(scope string) string {
	c.t.Helper()
	q := url.Values{"service": {"berth"}}
	if scope != "" {
		q["scope"] = strings.Fields(scope)
	}
	req, _ := http.NewRequest("GET", c.base+"/auth/token?"+q.Encode(), nil)
	if c.user != "" {
		req.SetBasicAuth(c.user, c.pass)
	}
	r, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer r.Body.Close()
	var body struct {
		Token string `json:"token"`
	}
	if r.StatusCode != http.StatusOK || json.NewDecoder(r.Body).Decode(&body) != nil || body.Token == "" {
		c.t.Fatalf("token for %q scope %q: status %d", c.user, scope, r.StatusCode)
	}
	return body.Token
}

// parseChallenge reads the parameters of a Bearer challenge.
func parseChallenge(h string) map[string]string {
	out := map[string]string{}
	rest, ok := strings.CutPrefix(h, "Bearer ")
	if !ok {
		return out
	}
	for rest != "" {
		k, v, ok := strings.Cut(rest, `="`)
		if !ok {
			break
		}
		val, after, _ := strings.Cut(v, `"`)
		out[strings.TrimPrefix(k, ",")] = val
		rest = after
	}
	return out
}

// pushImage pushes a one-layer image and returns its layer's digest.
func (c *authClient) pushImage(repo, tag string, layer []byte) string {
	c.t.Helper()
	cfg := []byte(`{"architecture":"amd64"}`)
	for _, b := range [][]byte{cfg, layer} {
		if r := c.do("POST", "/v2/"+repo+"/blobs/uploads/?digest="+sha(b), b); r.status != http.StatusCreated {
			c.t.Fatalf("push blob to %s as %q: %d %s", repo, c.user, r.status, r.body)
		}
	}
	m := imageManifest(sha(cfg), sha(layer), len(cfg), len(layer))
	if r := c.do("PUT", "/v2/"+repo+"/manifests/"+tag, m, "Content-Type", ociManifest); r.status != http.StatusCreated {
		c.t.Fatalf("put manifest %s:%s as %q: %d %s", repo, tag, c.user, r.status, r.body)
	}
	return sha(layer)
}

func (c *authClient) catalog() ([]string, int) {
	c.t.Helper()
	r := c.do("GET", "/v2/_catalog", nil)
	var body struct{ Repositories []string }
	_ = json.Unmarshal(r.body, &body)
	return body.Repositories, r.status
}

// The permission table: role -> workspace -> allowed actions.
var authRoles = []struct {
	role, user, pass string
	anonymousPull    bool
	allowed          map[string]string
}{
	{"cloud-admin", "admin", testAdminPassword, false,
		map[string]string{"w1pub": "pull,push,delete", "w1priv": "pull,push,delete", "w2pub": "pull,push,delete", "w2priv": "pull,push,delete"}},
	{"project-admin", "padmin", "padmin-pw", false,
		map[string]string{"w1pub": "pull,push,delete", "w1priv": "pull,push,delete", "w2pub": "pull"}},
	{"developer", "dev", "dev-pw", false,
		map[string]string{"w1pub": "pull,push,delete", "w1priv": "pull,push,delete", "w2pub": "pull"}},
	{"guest", "guest", "guest-pw", false,
		map[string]string{"w1pub": "pull", "w1priv": "pull", "w2pub": "pull"}},
	{"other-project-member", "other", "other-pw", false,
		map[string]string{"w1pub": "pull", "w2pub": "pull,push,delete", "w2priv": "pull,push,delete"}},
	{"robot-pull", "robot$proj1+puller", "puller-pw", false,
		map[string]string{"w1priv": "pull"}},
	{"robot-push", "robot$proj1+pusher", "pusher-pw", false,
		map[string]string{"w1pub": "pull,push", "w1priv": "pull,push"}},
	{"anonymous", "", "", false, map[string]string{}},
	{"anonymous-pull-on", "", "", true, map[string]string{"w1pub": "pull", "w2pub": "pull"}},
}

func TestAuthRoleMatrix(t *testing.T) {
	nodes := map[bool]*authNode{false: startAuthNode(t, false), true: startAuthNode(t, true)}
	for _, rc := range authRoles {
		t.Run(rc.role, func(t *testing.T) {
			an := nodes[rc.anonymousPull]
			admin := an.client(t, "admin", testAdminPassword)
			c := an.client(t, rc.user, rc.pass)
			for _, ws := range authWorkspaces {
				repo := ws + "/app"
				// A tag for this role to delete, set up by the admin.
				m := admin.do("GET", "/v2/"+repo+"/manifests/v1", nil)
				if r := admin.do("PUT", "/v2/"+repo+"/manifests/del-"+rc.role, m.body, "Content-Type", ociManifest); r.status != 201 {
					t.Fatalf("tag for delete: %d %s", r.status, r.body)
				}
				for _, action := range []string{"pull", "push", "delete"} {
					var r authResp
					want := map[string]int{"pull": 200, "push": 201, "delete": 202}[action]
					switch action {
					case "pull":
						r = c.do("GET", "/v2/"+repo+"/manifests/v1", nil)
					case "push":
						b := []byte("pushed by " + rc.role + " to " + ws)
						r = c.do("POST", "/v2/"+repo+"/blobs/uploads/?digest="+sha(b), b)
					case "delete":
						r = c.do("DELETE", "/v2/"+repo+"/manifests/del-"+rc.role, nil)
					}
					wantCode := ""
					if !strings.Contains(rc.allowed[ws], action) {
						want, wantCode = 403, "DENIED"
						if rc.user == "" {
							want, wantCode = 401, "UNAUTHORIZED"
						}
					}
					if r.status != want || (wantCode != "" && r.code() != wantCode) {
						t.Errorf("%s %s: got %d %s, want %d %s", action, repo, r.status, r.code(), want, wantCode)
					}
				}
			}
			// The catalog lists exactly what the role may pull.
			var want []string
			for _, ws := range authWorkspaces {
				if strings.Contains(rc.allowed[ws], "pull") {
					want = append(want, ws+"/app")
				}
			}
			sort.Strings(want)
			got, status := c.catalog()
			switch {
			case rc.user == "" && !rc.anonymousPull:
				if status != 401 {
					t.Errorf("catalog: got %d, want 401", status)
				}
			case status != 200 || !slices.Equal(got, want):
				t.Errorf("catalog: got %d %v, want %v", status, got, want)
			}
		})
	}
}

// TestAuthDigestGrantsNothing: a blob that exists in another project's private
// workspace cannot be read nor mounted through what the caller can reach.
func TestAuthDigestGrantsNothing(t *testing.T) {
	an := startAuthNode(t, false)
	dev := an.client(t, "dev", "dev-pw")
	secret := an.layers["w2priv"]

	// HEAD through the private workspace itself: denied.
	if r := dev.do("HEAD", "/v2/w2priv/app/blobs/"+secret, nil); r.status != 403 {
		t.Errorf("HEAD through another project's private workspace: got %d, want 403", r.status)
	}
	// HEAD through dev's own repository: the digest exists, but not there.
	if r := dev.do("HEAD", "/v2/w1priv/app/blobs/"+secret, nil); r.status != 404 {
		t.Errorf("HEAD of a foreign digest through an own repository: got %d, want 404", r.status)
	}
	if r := dev.do("GET", "/v2/w1priv/app/blobs/"+secret, nil); r.status != 404 || r.code() != "BLOB_UNKNOWN" {
		t.Errorf("GET of a foreign digest: got %d %s, want 404 BLOB_UNKNOWN", r.status, r.code())
	}

	// A mount from a repository dev may not pull is an ordinary upload.
	for _, q := range []string{"?mount=" + secret + "&from=w2priv/app", "?mount=" + secret} {
		r := dev.do("POST", "/v2/w1priv/app/blobs/uploads/"+q, nil)
		if r.status != http.StatusAccepted || r.header.Get("Location") == "" {
			t.Errorf("mount %s: got %d %s, want 202 with a session", q, r.status, r.body)
		}
	}
	if r := dev.do("HEAD", "/v2/w1priv/app/blobs/"+secret, nil); r.status != 404 {
		t.Errorf("after the refused mounts: got %d, want 404", r.status)
	}
	// A mount from what dev may pull works, with from or without.
	public := an.layers["w2pub"]
	if r := dev.do("POST", "/v2/w1priv/app/blobs/uploads/?mount="+public+"&from=w2pub/app", nil); r.status != http.StatusCreated {
		t.Errorf("mount from a public workspace: got %d %s, want 201", r.status, r.body)
	}
	if r := dev.do("POST", "/v2/w1pub/app/blobs/uploads/?mount="+an.layers["w1priv"], nil); r.status != http.StatusCreated {
		t.Errorf("mount without from of an own blob: got %d %s, want 201", r.status, r.body)
	}
	if r := dev.do("HEAD", "/v2/w1priv/app/blobs/"+public, nil); r.status != 200 {
		t.Errorf("mounted blob: got %d, want 200", r.status)
	}
}

// TestAuthMembershipTakesEffect: removing a member, or disabling a user, takes
// effect by the next token.
func TestAuthMembershipTakesEffect(t *testing.T) {
	an := startAuthNode(t, false)
	ctx := context.Background()
	dev := an.client(t, "dev", "dev-pw")
	if r := dev.do("GET", "/v2/w1priv/app/manifests/v1", nil); r.status != 200 {
		t.Fatalf("before: %d", r.status)
	}
	if err := an.n.Propose(ctx, &meta.SetMember{Project: "proj1", User: "dev", Time: time.Now()}); err != nil {
		t.Fatal(err)
	}
	fresh := an.client(t, "dev", "dev-pw") // no token yet: fetches a new one
	if r := fresh.do("GET", "/v2/w1priv/app/manifests/v1", nil); r.status != 403 {
		t.Errorf("after removal, next token: got %d, want 403", r.status)
	}
	if r := fresh.do("GET", "/v2/w1pub/app/manifests/v1", nil); r.status != 200 {
		t.Errorf("after removal, public workspace: got %d, want 200", r.status)
	}
	req, _ := http.NewRequest("GET", an.base+"/v2/w1priv/app/manifests/v1", nil)
	req.SetBasicAuth("dev", "dev-pw")
	if r, err := http.DefaultClient.Do(req); err != nil || r.StatusCode != 403 {
		t.Errorf("after removal, Basic: got %v %v, want 403", r.StatusCode, err)
	} else {
		r.Body.Close()
	}

	guest := an.client(t, "guest", "guest-pw")
	if r := guest.do("GET", "/v2/w1priv/app/manifests/v1", nil); r.status != 200 {
		t.Fatalf("guest before: %d", r.status)
	}
	if err := an.n.Propose(ctx, &meta.PutUser{Name: "guest", Disabled: true, Time: time.Now()}); err != nil {
		t.Fatal(err)
	}
	q := url.Values{"service": {"berth"}, "scope": {"repository:w1priv/app:pull"}}
	req, _ = http.NewRequest("GET", an.base+"/auth/token?"+q.Encode(), nil)
	req.SetBasicAuth("guest", "guest-pw")
	if r, err := http.DefaultClient.Do(req); err != nil || r.StatusCode != 401 {
		t.Errorf("token for a disabled user: got %v %v, want 401", r.StatusCode, err)
	} else {
		r.Body.Close()
	}
}
