package api

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/berth-registry/berth/meta"
)

func TestCan(t *testing.T) {
	ws := func(name, project string, vis meta.Visibility) *meta.Workspace {
		return &meta.Workspace{Name: name, Project: project, Visibility: vis}
	}
	own := ws("own", "p1", meta.Private)
	ownPub := ws("ownpub", "p1", meta.Public)
	other := ws("other", "p2", meta.Private)
	otherPub := ws("otherpub", "p2", meta.Public)
	user := func(role meta.Role) *Principal {
		return &Principal{Kind: UserPrincipal, Name: "u", Roles: map[string]meta.Role{"p1": role}}
	}
	robot := func(mod func(*meta.Robot)) *Principal {
		rb := &meta.Robot{Project: "p1", Name: "ci", Workspaces: []string{"own", "ownpub"}, Actions: []string{"pull", "push"}}
		if mod != nil {
			mod(rb)
		}
		return robotPrincipal(rb)
	}
	all := []Action{ActionPull, ActionPush, ActionDelete}
	for _, tc := range []struct {
		name string
		p    *Principal
		ws   *meta.Workspace
		want string // allowed actions
	}{
		{"cloud admin, other private", &Principal{Kind: UserPrincipal, CloudAdmin: true}, other, "pull,push,delete"},
		{"cloud admin, missing workspace", &Principal{Kind: UserPrincipal, CloudAdmin: true}, nil, "pull,push,delete"},
		{"project admin, own", user(meta.RoleProjectAdmin), own, "pull,push,delete"},
		{"developer, own", user(meta.RoleDeveloper), own, "pull,push,delete"},
		{"guest, own", user(meta.RoleGuest), own, "pull"},
		{"guest, own public", user(meta.RoleGuest), ownPub, "pull"},
		{"developer, other private", user(meta.RoleDeveloper), other, ""},
		{"developer, other public", user(meta.RoleDeveloper), otherPub, "pull"},
		{"no project, public", &Principal{Kind: UserPrincipal}, otherPub, "pull"},
		{"no project, private", &Principal{Kind: UserPrincipal}, other, ""},
		{"developer, missing workspace", user(meta.RoleDeveloper), nil, ""},
		{"robot, its workspace", robot(nil), own, "pull,push"},
		{"robot, its public workspace", robot(nil), ownPub, "pull,push"},
		{"robot, workspace not listed", robot(func(r *meta.Robot) { r.Workspaces = []string{"ownpub"} }), own, ""},
		{"robot, other project public", robot(nil), otherPub, ""},
		{"robot, listed name in another project", robot(func(r *meta.Robot) { r.Workspaces = []string{"other"} }), other, ""},
		{"robot, disabled", robot(func(r *meta.Robot) { r.Disabled = true }), own, ""},
		{"robot, missing workspace", robot(nil), nil, ""},
		{"anonymous, public", &Principal{Kind: Anonymous}, otherPub, ""},
		{"nil", nil, otherPub, ""},
	} {
		var got []string
		for _, a := range all {
			if tc.p.Can(tc.ws, a) {
				got = append(got, string(a))
			}
		}
		if g := strings.Join(got, ","); g != tc.want {
			t.Errorf("%s: got %q, want %q", tc.name, g, tc.want)
		}
	}
}

// matrix is the policy of the fixture: principal -> workspace -> allowed actions.
var matrix = map[string]map[string]string{
	"admin":       {"p1pub": "pull,push,delete", "p1priv": "pull,push,delete", "p2pub": "pull,push,delete", "p2priv": "pull,push,delete"},
	"alice":       {"p1pub": "pull,push,delete", "p1priv": "pull,push,delete", "p2pub": "pull"},
	"dev":         {"p1pub": "pull,push,delete", "p1priv": "pull,push,delete", "p2pub": "pull"},
	"guest":       {"p1pub": "pull", "p1priv": "pull", "p2pub": "pull"},
	"bob":         {"p1pub": "pull", "p2pub": "pull,push,delete", "p2priv": "pull,push,delete"},
	"nobody":      {"p1pub": "pull", "p2pub": "pull"},
	"robot$p1+ci": {"p1priv": "pull,push"},
	"robot$p1+ro": {"p1priv": "pull"},
	"":            {},
	"anon-pull":   {"p1pub": "pull", "p2pub": "pull"},
}

func secretOf(name string) string {
	if _, n, ok := meta.ParseRobotLogin(name); ok {
		return n + "-secret"
	}
	return name + "-pw"
}

// actionRequest sends one request that exercises action on repo; an allowed
// request fails later, for a reason of its own (an empty manifest, an unknown
// digest), so that the status tells allowed from refused.
func (f *authFixture) actionRequest(action Action, repo, auth string) *httptest.ResponseRecorder {
	switch action {
	case ActionPush:
		return f.do("PUT", "/v2/"+repo+"/manifests/v1", auth, strings.NewReader("{"), "Content-Type", "application/vnd.oci.image.manifest.v1+json")
	case ActionDelete:
		return f.do("DELETE", "/v2/"+repo+"/manifests/"+string(meta.DigestOf("sha256", []byte("none"))), auth, nil)
	}
	return f.do("GET", "/v2/"+repo+"/tags/list", auth, nil)
}

var allowedStatus = map[Action]int{ActionPull: 200, ActionPush: 400, ActionDelete: 404}

// TestAuthorizeMatrix runs every principal x workspace x action, with Basic
// credentials and with tokens.
func TestAuthorizeMatrix(t *testing.T) {
	for _, mode := range []string{"basic", "token"} {
		for name, want := range matrix {
			f := newAuthFixture(t, func(c *Config) { c.AnonymousPull = name == "anon-pull" })
			user := name
			if name == "anon-pull" {
				user = ""
			}
			for _, ws := range fixtureWorkspaces {
				repo := ws + "/app"
				auth := ""
				if user != "" && mode == "basic" {
					auth = basicAuth(user, secretOf(user))
				}
				if mode == "token" {
					pass := ""
					if user != "" {
						pass = secretOf(user)
					}
					auth = "Bearer " + f.token(user, pass, "repository:"+repo+":pull,push,delete")
				}
				for _, action := range []Action{ActionPull, ActionPush, ActionDelete} {
					w := f.actionRequest(action, repo, auth)
					allowed := strings.Contains(want[ws], string(action))
					wantStatus, wantCode := allowedStatus[action], ""
					switch {
					case allowed:
					case user == "":
						wantStatus, wantCode = 401, "UNAUTHORIZED"
					default:
						wantStatus, wantCode = 403, "DENIED"
					}
					if w.Code != wantStatus || (wantCode != "" && errCode(w) != wantCode) {
						t.Errorf("%s %q %s %s: got %d %s, want %d %s", mode, name, action, repo, w.Code, errCode(w), wantStatus, wantCode)
					}
					if w.Code == 401 && !strings.Contains(w.Header().Get("WWW-Authenticate"), `scope="repository:`+repo+":"+string(action)+`"`) {
						t.Errorf("%s %q %s %s: challenge %q lacks the scope", mode, name, action, repo, w.Header().Get("WWW-Authenticate"))
					}
				}
			}
		}
	}
}

func catalog(t *testing.T, f *authFixture, auth, query string) ([]string, string, int) {
	t.Helper()
	w := f.do("GET", "/v2/_catalog"+query, auth, nil)
	var body struct{ Repositories []string }
	_ = json.Unmarshal(w.Body.Bytes(), &body)
	return body.Repositories, w.Header().Get("Link"), w.Code
}

// TestCatalogFiltered: the catalog lists only what the caller may pull, and pages
// stay full and correct.
func TestCatalogFiltered(t *testing.T) {
	for name, want := range matrix {
		f := newAuthFixture(t, func(c *Config) { c.AnonymousPull = name == "anon-pull" })
		// More repositories, so that paging crosses denied workspaces.
		for _, ws := range fixtureWorkspaces {
			for _, r := range []string{"a", "b/c", "z"} {
				f.must(&meta.PutBlob{Repo: ws + "/" + r, Digest: meta.DigestOf("sha256", []byte(r)), Size: 1, Time: f.clock.Now()})
			}
		}
		var wantRepos []string
		for _, ws := range []string{"p1priv", "p1pub", "p2priv", "p2pub"} { // catalog order
			if strings.Contains(want[ws], "pull") {
				wantRepos = append(wantRepos, ws+"/a", ws+"/app", ws+"/b/c", ws+"/z")
			}
		}
		user := name
		if name == "anon-pull" {
			user = ""
		}
		auths := map[string]string{}
		if user != "" {
			auths["basic"] = basicAuth(user, secretOf(user))
			auths["token"] = "Bearer " + f.token(user, secretOf(user), "registry:catalog:*")
		} else {
			auths["anonymous"] = ""
			auths["token"] = "Bearer " + f.token("", "", "registry:catalog:*")
		}
		for mode, auth := range auths {
			got, _, code := catalog(t, f, auth, "")
			if user == "" && name != "anon-pull" {
				if code != 401 {
					t.Errorf("%s %q: got %d, want 401", mode, name, code)
				}
				continue
			}
			if code != 200 || !reflect.DeepEqual(nonNil(got), nonNil(wantRepos)) {
				t.Errorf("%s %q: got %d %v, want %v", mode, name, code, got, wantRepos)
			}
			// Page by page, one row at a time.
			var paged []string
			query := "?n=1"
			for i := 0; i < 50; i++ {
				rows, link, code := catalog(t, f, auth, query)
				if code != 200 || len(rows) > 1 {
					t.Fatalf("%s %q page %s: %d %v", mode, name, query, code, rows)
				}
				paged = append(paged, rows...)
				if link == "" {
					break
				}
				query = "?" + link[strings.Index(link, "?")+1:strings.Index(link, ">")]
			}
			if !reflect.DeepEqual(nonNil(paged), nonNil(wantRepos)) {
				t.Errorf("%s %q paged: got %v, want %v", mode, name, paged, wantRepos)
			}
		}
	}
	// A token without registry:catalog:* is told to get one.
	f := newAuthFixture(t, nil)
	w := f.do("GET", "/v2/_catalog", "Bearer "+f.token("dev", "dev-pw"), nil)
	if w.Code != 401 || !strings.Contains(w.Header().Get("WWW-Authenticate"), `scope="registry:catalog:*",error="insufficient_scope"`) {
		t.Errorf("catalog without the scope: got %d %q", w.Code, w.Header().Get("WWW-Authenticate"))
	}
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// TestPushToMissingWorkspace: workspaces are created, never implied; only a
// cloud admin learns that the workspace is missing.
func TestPushToMissingWorkspace(t *testing.T) {
	f := newAuthFixture(t, nil)
	for _, tc := range []struct {
		name, auth, repo string
		status           int
		code, msg        string
	}{
		{"admin basic", basicAuth("admin", "admin-pw"), "nows/app", 404, "NAME_UNKNOWN", "workspace nows does not exist; create it first"},
		{"admin token", "Bearer " + f.token("admin", "admin-pw", "repository:nows/app:push"), "nows/app", 404, "NAME_UNKNOWN", "workspace nows does not exist; create it first"},
		{"developer basic", basicAuth("dev", "dev-pw"), "nows/app", 403, "DENIED", ""},
		{"developer token", "Bearer " + f.token("dev", "dev-pw", "repository:nows/app:push"), "nows/app", 403, "DENIED", ""},
		{"anonymous", "", "nows/app", 401, "UNAUTHORIZED", ""},
		{"admin, no workspace part", basicAuth("admin", "admin-pw"), "single", 400, "NAME_INVALID", "repository names are <workspace>/<path>"},
		{"developer, no workspace part", basicAuth("dev", "dev-pw"), "p1priv", 403, "DENIED", ""},
	} {
		w := f.actionRequest(ActionPush, tc.repo, tc.auth)
		var body struct {
			Errors []struct{ Code, Message string }
		}
		_ = json.Unmarshal(w.Body.Bytes(), &body)
		if w.Code != tc.status || errCode(w) != tc.code || (tc.msg != "" && body.Errors[0].Message != tc.msg) {
			t.Errorf("%s: got %d %s, want %d %s %q", tc.name, w.Code, w.Body, tc.status, tc.code, tc.msg)
		}
	}
}

// TestMembershipChange: removing a member takes effect by the next token; a
// token already issued lives out its few minutes.
func TestMembershipChange(t *testing.T) {
	f := newAuthFixture(t, nil)
	old := "Bearer " + f.token("dev", "dev-pw", "repository:p1priv/app:pull")
	f.must(&meta.SetMember{Project: "p1", User: "dev", Time: f.clock.Now()})
	if w := f.do("GET", "/v2/p1priv/app/tags/list", basicAuth("dev", "dev-pw"), nil); w.Code != 403 {
		t.Errorf("Basic after removal: got %d, want 403", w.Code)
	}
	fresh := "Bearer " + f.token("dev", "dev-pw", "repository:p1priv/app:pull")
	if w := f.do("GET", "/v2/p1priv/app/tags/list", fresh, nil); w.Code != 403 {
		t.Errorf("new token after removal: got %d, want 403", w.Code)
	}
	if w := f.do("GET", "/v2/p1priv/app/tags/list", old, nil); w.Code != 200 {
		t.Errorf("old token before its expiry: got %d, want 200", w.Code)
	}
	f.clock.Add(5*time.Minute + tokenLeeway + time.Second)
	if w := f.do("GET", "/v2/p1priv/app/tags/list", old, nil); w.Code != 401 {
		t.Errorf("old token after its expiry: got %d, want 401", w.Code)
	}
	// A token whose user is disabled is refused where the principal is needed.
	tok := "Bearer " + f.token("alice", "alice-pw", "registry:catalog:*")
	f.must(&meta.PutUser{Name: "alice", Disabled: true, Time: f.clock.Now()})
	if w := f.do("GET", "/v2/_catalog", tok, nil); w.Code != 401 {
		t.Errorf("catalog with a disabled user's token: got %d, want 401", w.Code)
	}
}

// TestAuthenticate covers the entry point the management API uses.
func TestAuthenticate(t *testing.T) {
	f := newAuthFixture(t, nil)
	req := func(auth string) *http.Request {
		r := httptest.NewRequest("GET", "/api/v1/projects", nil)
		r.RemoteAddr = "192.0.2.9:1"
		if auth != "" {
			r.Header.Set("Authorization", auth)
		}
		return r
	}
	p, err := f.s.authenticate(req(""))
	if err != nil || p.Kind != Anonymous {
		t.Errorf("no credentials: %+v %v", p, err)
	}
	p, err = f.s.authenticate(req("Bearer " + f.token("alice", "alice-pw")))
	if err != nil || p.Kind != UserPrincipal || p.Name != "alice" || p.Roles["p1"] != meta.RoleProjectAdmin {
		t.Errorf("token: %+v %v", p, err)
	}
	p, err = f.s.authenticate(req(basicAuth("robot$p1+ci", "ci-secret")))
	if err != nil || p.Kind != RobotPrincipal || p.Robot == nil || p.Robot.Project != "p1" {
		t.Errorf("robot: %+v %v", p, err)
	}
	p, err = f.s.authenticate(req(basicAuth("admin", "admin-pw")))
	if err != nil || !p.CloudAdmin {
		t.Errorf("admin: %+v %v", p, err)
	}
	for _, auth := range []string{basicAuth("alice", "x"), "Bearer x.y.z", "Negotiate abc"} {
		if _, err := f.s.authenticate(req(auth)); err == nil {
			t.Errorf("%q: authenticated", auth)
		} else if ae, _ := toAPIError(err); ae.Status != 401 {
			t.Errorf("%q: got %d, want 401", auth, ae.Status)
		}
	}
}
