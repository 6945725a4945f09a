package node

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/berth-registry/berth/meta"
)

type auditItem struct {
	ID        string    `json:"id"`
	Time      time.Time `json:"time"`
	Node      string    `json:"node"`
	User      string    `json:"user"`
	ClientIP  string    `json:"clientIp"`
	Action    string    `json:"action"`
	Object    string    `json:"object"`
	Digest    string    `json:"digest"`
	Workspace string    `json:"workspace"`
	Project   string    `json:"project"`
	Outcome   string    `json:"outcome"`
	Status    int       `json:"status"`
	RequestID string    `json:"requestId"`
}

type auditPage struct {
	Items []auditItem `json:"items"`
	Next  string      `json:"next"`
}

func (c *mgmtClient) audit(query string) auditPage {
	c.t.Helper()
	var p auditPage
	c.must(http.StatusOK, "GET", "/api/v1/audit?"+query, nil, &p)
	return p
}

// find returns the first event (newest) of action on object, or nil.
func (p auditPage) find(action, object string) *auditItem {
	for i := range p.Items {
		if p.Items[i].Action == action && (object == "" || p.Items[i].Object == object) {
			return &p.Items[i]
		}
	}
	return nil
}

// TestAuditLog: a push, deletes, a login failure, logins and management
// changes made through different nodes of a cluster are recorded with who,
// what, where and how they ended, and every node answers the same log; the
// filters select; a project admin sees their project's events only.
func TestAuditLog(t *testing.T) {
	if testing.Short() {
		t.Skip("cluster test")
	}
	c := newTestCluster(t, 3)
	follower := (c.leader() + 1) % 3
	admin := login(t, c.urls[0], "admin", testAdminPassword)
	start := time.Now()

	// A push through a follower (Basic credentials, as do sends them).
	im := pushTestImage(t, c.urls[follower], "library/audited", "1.0", nil)
	digest := sha(im.manifest)
	// A tag delete and a manifest delete through another node.
	other := (follower + 1) % 3
	if r := do(t, "DELETE", c.urls[other]+"/v2/library/audited/manifests/1.0", nil); r.status != http.StatusAccepted {
		t.Fatalf("delete tag: %d %s", r.status, r.body)
	}
	if r := do(t, "DELETE", c.urls[other]+"/v2/library/audited/manifests/"+digest, nil); r.status != http.StatusAccepted {
		t.Fatalf("delete manifest: %d %s", r.status, r.body)
	}
	// A login failure (its password must not be recorded) and a delete that fails.
	const wrong = "not-the-password-xyzzy"
	if _, status := tokenFor(t, c.urls[2], "mallory", wrong, ""); status != http.StatusUnauthorized {
		t.Fatalf("bad login: %d", status)
	}
	if r := do(t, "DELETE", c.urls[other]+"/v2/library/audited/manifests/gone", nil); r.status < 400 {
		t.Fatalf("delete of an unknown tag: %d", r.status)
	}
	// Management changes: a project, a user with a password, a membership.
	const bobPassword = "bob-secret-password"
	admin.must(http.StatusCreated, "POST", "/api/v1/projects", map[string]any{"name": "web"}, nil)
	admin.must(http.StatusCreated, "POST", "/api/v1/users", map[string]any{"name": "bob", "password": bobPassword}, nil)
	admin.must(http.StatusOK, "PUT", "/api/v1/projects/web/members/bob", map[string]any{"role": "project-admin"}, nil)
	admin.must(http.StatusCreated, "POST", "/api/v1/users", map[string]any{"name": "dev", "password": "dev-password-123"}, nil)
	admin.must(http.StatusOK, "PUT", "/api/v1/projects/web/members/dev", map[string]any{"role": "developer"}, nil)
	bob := login(t, c.urls[1], "bob", bobPassword)
	bob.must(http.StatusCreated, "POST", "/api/v1/projects/web/workspaces", map[string]any{"name": "webapps"}, nil)

	// Every node answers the same log, once the batches are applied.
	var pages [3]auditPage
	defer func() {
		if t.Failed() {
			for i := range pages {
				b, _ := json.MarshalIndent(pages[i], "", " ")
				t.Logf("node %d: %s", i, b)
			}
		}
	}()
	waitFor(t, 10*time.Second, "the events on every node", func() bool {
		for i, u := range c.urls {
			cl := *admin
			cl.base = u
			pages[i] = cl.audit("n=1000&since=" + url.QueryEscape(start.Add(-time.Second).Format(time.RFC3339Nano)))
			if pages[i].find("projects.workspaces.create", "") == nil || pages[i].find("login", "") == nil {
				return false
			}
		}
		return true
	})
	for i := 1; i < 3; i++ {
		a, _ := json.Marshal(pages[0].Items)
		b, _ := json.Marshal(pages[i].Items)
		if !bytes.Equal(a, b) {
			t.Fatalf("node %d's audit log differs from node 0's:\n%s\n%s", i, b, a)
		}
	}
	all := pages[0]
	raw, _ := json.Marshal(all)
	for _, secret := range []string{wrong, bobPassword, testAdminPassword} {
		if strings.Contains(string(raw), secret) {
			t.Fatalf("a password is in the audit log: %s", raw)
		}
	}

	push := all.find("manifest.push", "library/audited:1.0")
	if push == nil {
		t.Fatalf("no push event in %s", raw)
	}
	if push.User != "admin" || push.Digest != digest || push.Workspace != "library" || push.Project != "default" ||
		push.Outcome != "success" || push.Status != http.StatusCreated || push.ClientIP != "127.0.0.1" ||
		push.Node != c.cfgs[follower].NodeID || push.RequestID == "" || push.Time.Before(start.Add(-time.Second)) {
		t.Errorf("push event: %+v", *push)
	}
	for _, want := range []struct{ action, object, outcome, user string }{
		{"tag.delete", "library/audited:1.0", "success", "admin"},
		{"manifest.delete", "library/audited@" + digest, "success", "admin"},
		{"tag.delete", "library/audited:gone", "failure", "admin"},
		{"projects.create", "projects/web", "success", "admin"},
		{"users.create", "users/bob", "success", "admin"},
		{"projects.members.put", "projects/web/members/bob", "success", "admin"},
		{"projects.workspaces.create", "projects/web/workspaces/webapps", "success", "bob"},
	} {
		ev := all.find(want.action, want.object)
		if ev == nil {
			t.Errorf("no %s event on %q in %s", want.action, want.object, raw)
			continue
		}
		if ev.Outcome != want.outcome || ev.User != want.user {
			t.Errorf("%s %s: outcome %s user %q, want %s %q", want.action, want.object, ev.Outcome, ev.User, want.outcome, want.user)
		}
	}
	if ev := all.find("projects.workspaces.create", ""); ev == nil || ev.Workspace != "webapps" || ev.Project != "web" {
		t.Errorf("workspace creation event: %+v", ev)
	}
	// Logins: tokens issued for credentials, and refusals.
	for _, want := range []struct{ user, outcome string }{{"bob", "success"}, {"admin", "success"}, {"mallory", "failure"}} {
		found := false
		for _, ev := range all.Items {
			found = found || ev.Action == "login" && ev.User == want.user && ev.Outcome == want.outcome
		}
		if !found {
			t.Errorf("no login event of %s with outcome %s", want.user, want.outcome)
		}
	}

	// Filters.
	f := admin.audit("user=mallory")
	if len(f.Items) != 1 || f.Items[0].Action != "login" || f.Items[0].Outcome != "failure" {
		t.Errorf("user=mallory: %+v", f.Items)
	}
	for _, ev := range admin.audit("action=manifest.push&n=1000").Items {
		if ev.Action != "manifest.push" {
			t.Errorf("action filter let %s through", ev.Action)
		}
	}
	for _, ev := range admin.audit("workspace=library&n=1000").Items {
		if ev.Workspace != "library" {
			t.Errorf("workspace filter let %q through", ev.Workspace)
		}
	}
	if got := admin.audit("until=" + url.QueryEscape(start.Add(-time.Hour).Format(time.RFC3339))); len(got.Items) != 0 {
		t.Errorf("until an hour before the test: %d events", len(got.Items))
	}
	page1 := admin.audit("n=2")
	page2 := admin.audit("n=2&last=" + url.QueryEscape(page1.Next))
	if len(page1.Items) != 2 || page1.Next == "" || len(page2.Items) == 0 || !page2.Items[0].Time.Before(page1.Items[1].Time.Add(time.Nanosecond)) ||
		page2.Items[0].ID == page1.Items[1].ID {
		t.Errorf("paging: %+v then %+v", page1, page2)
	}
	admin.expect(http.StatusBadRequest, "INVALID", "GET", "/api/v1/audit?since=yesterday", nil)

	// Scoping: bob administers web and sees its events only; a developer
	// sees nothing.
	mine := bob.audit("n=1000")
	if len(mine.Items) == 0 {
		t.Fatal("bob sees no events of his project")
	}
	for _, ev := range mine.Items {
		if ev.Project != "web" {
			t.Errorf("bob sees an event of project %q: %+v", ev.Project, ev)
		}
	}
	if mine.find("manifest.push", "") != nil {
		t.Errorf("bob sees the push into library")
	}
	dev := login(t, c.urls[2], "dev", "dev-password-123")
	dev.expect(http.StatusForbidden, "DENIED", "GET", "/api/v1/audit", nil)
}

// The buffer proposes batches of at most auditBatch events, retries a failed
// batch with the same ids, and fills in what a careless caller left out.
func TestAuditLogBatches(t *testing.T) {
	var mu sync.Mutex
	var batches [][]meta.AuditEvent
	fail := true
	propose := func(_ context.Context, c meta.Command) error {
		mu.Lock()
		defer mu.Unlock()
		if fail {
			fail = false
			return errors.New("no leader")
		}
		batches = append(batches, c.(*meta.AppendAudit).Events)
		return nil
	}
	cfg := Defaults()
	a, err := newAuditLog(cfg, time.Now, propose, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	for i := range 250 {
		a.Record(meta.AuditEvent{Time: now, Action: "login", Status: 200 + 300*(i%2), User: fmt.Sprint(i)})
	}
	a.Record(meta.AuditEvent{})   // nothing set
	a.flush(context.Background()) // fails: kept
	for a.flush(context.Background()) {
	}
	mu.Lock()
	defer mu.Unlock()
	total, ids := 0, map[string]bool{}
	for _, b := range batches {
		if len(b) > auditBatch {
			t.Errorf("a batch of %d events", len(b))
		}
		for _, ev := range b {
			total++
			ids[ev.ID] = true
			if ev.Node != cfg.NodeID || ev.Action == "" || ev.Time.IsZero() ||
				ev.Outcome != map[bool]string{true: meta.AuditSuccess, false: meta.AuditFailure}[ev.Status < 400] {
				t.Errorf("event %+v", ev)
			}
		}
	}
	if total != 251 || len(ids) != 251 || len(batches) != 3 {
		t.Errorf("%d events in %d batches with %d ids, want 251 in 3", total, len(batches), len(ids))
	}
}
