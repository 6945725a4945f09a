package api

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/berth-registry/berth/meta"
)

type fakeAuditor struct {
	mu  sync.Mutex // guards evs
	evs []meta.AuditEvent
}

func (f *fakeAuditor) Record(ev meta.AuditEvent) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.evs = append(f.evs, ev)
}

func TestMatchMgmtRoute(t *testing.T) {
	for _, tc := range []struct {
		method, path, action, params string
	}{
		{"POST", "/api/v1/users", "users.create", "map[]"},
		{"DELETE", "/api/v1/projects/web/members/bob", "projects.members.delete", "map[project:web user:bob]"},
		{"PUT", "/api/v1/projects/web/members/bob", "projects.members.put", "map[project:web user:bob]"},
		{"PATCH", "/api/v1/repositories/lib/a/b", "repositories.update", "map[name:/lib/a/b]"},
		{"POST", "/api/v1/projects/web/workspaces", "projects.workspaces.create", "map[project:web]"},
		{"POST", "/api/v1/session", "login", "map[]"},
		{"DELETE", "/api/v1/session", "logout", "map[]"},
		{"POST", "/api/v1/gc", "gc.start", "map[]"},
		{"POST", "/api/v1/workspaces/lib/trash/restore", "restore", "map[workspace:lib]"},
		{"DELETE", "/api/v1/repositories/lib/app/tags/1", "repositories.delete", "map[name:/lib/app/tags/1]"},
		{"DELETE", "/api/v1/users", "", ""},
		{"DELETE", "/api/v1/users/a/b", "", ""},
		{"PATCH", "/api/v1/users/", "", ""},
	} {
		rt, params := matchMgmtRoute(tc.method, tc.path)
		if rt == nil {
			if tc.action != "" {
				t.Errorf("%s %s: no route", tc.method, tc.path)
			}
			continue
		}
		if got := mgmtAuditAction(rt); got != tc.action || fmt.Sprint(params) != tc.params {
			t.Errorf("%s %s: got %s %v, want %s %s", tc.method, tc.path, got, params, tc.action, tc.params)
		}
	}
}

// Reads, uploads and anonymous challenges are not audited; the events of the
// others carry no secret.
func TestAuditDecisions(t *testing.T) {
	s, kv := newMgmtTestServer(t)
	kv.must(t, &meta.PutProject{Name: "p", Create: true, Time: testTime},
		&meta.PutWorkspace{Name: "lib", Project: "p", Visibility: meta.Private, Create: true, Time: testTime})
	fa := &fakeAuditor{}
	s.audit = fa
	for _, tc := range []struct {
		method, path, body string
		audited            bool
	}{
		{"GET", "/v2/lib/app/manifests/1", "", false},
		{"HEAD", "/v2/lib/app/blobs/sha256:" + strings.Repeat("a", 64), "", false},
		{"PATCH", "/v2/lib/app/blobs/uploads/n1.abc", "", false},
		{"POST", "/v2/lib/app/blobs/uploads/", "", false},
		{"GET", "/api/v1/users", "", false},
		{"GET", "/auth/token", "", false}, // anonymous token: no login
		{"PUT", "/v2/lib/app/manifests/1", "{}", true},
		{"DELETE", "/v2/lib/app/manifests/1", "", true},
		{"POST", "/api/v1/users", `{"name":"bob","password":"bob-password-1"}`, true},
		{"POST", "/api/v1/session", `{"username":"eve","password":"eve-password-1"}`, true},
	} {
		r := httptest.NewRequest(tc.method, tc.path, strings.NewReader(tc.body))
		r.Header.Set("Content-Type", "application/json")
		if n := s.auditBegin(r); (n != nil) != tc.audited {
			t.Errorf("%s %s: audited %v, want %v", tc.method, tc.path, n != nil, tc.audited)
		}
	}
	// Through the whole server: an anonymous write is a challenge, not an
	// event; a console login that fails is, with the name tried and not the
	// password.
	fa.evs = nil
	for _, req := range []*http.Request{
		httptest.NewRequest("DELETE", "/v2/lib/app/manifests/1", nil),
		httptest.NewRequest("POST", "/api/v1/session", strings.NewReader(`{"username":"eve","password":"eve-password-1"}`)),
	} {
		req.Header.Set("Content-Type", "application/json")
		s.ServeHTTP(httptest.NewRecorder(), req)
	}
	if len(fa.evs) != 1 {
		t.Fatalf("events %+v, want one", fa.evs)
	}
	ev := fa.evs[0]
	if ev.Action != "login" || ev.User != "eve" || ev.Outcome != meta.AuditFailure || ev.Node != "n1" || ev.ClientIP == "" ||
		strings.Contains(fmt.Sprintf("%+v", ev), "eve-password-1") {
		t.Errorf("console login failure event: %+v", ev)
	}
}
