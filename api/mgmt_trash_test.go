package api

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/berth-registry/berth/meta"
)

// TestTrashAndGCAccess: who may delete, list the trash, restore, and run
// garbage collection; hidden objects answer as absent ones.
func TestTrashAndGCAccess(t *testing.T) {
	f := newAuthFixture(t, nil)
	as := func(user string) string { return basicAuth(user, user+"-pw") }
	call := func(user, method, path, body string) (int, string, []byte) {
		t.Helper()
		var hdr []string
		var rd *strings.Reader
		if body != "" {
			rd = strings.NewReader(body)
			hdr = []string{"Content-Type", "application/json"}
		} else {
			rd = strings.NewReader("")
		}
		w := f.do(method, path, as(user), rd, hdr...)
		return w.Code, errCode(w), w.Body.Bytes()
	}
	for _, tc := range []struct {
		user, method, path, body string
		status                   int
		code                     ErrorCode
	}{
		{"guest", "DELETE", "/api/v1/repositories/p1priv/app", "", 403, CodeDenied},
		{"bob", "DELETE", "/api/v1/repositories/p1priv/app", "", 404, CodeNameUnknown},
		{"guest", "GET", "/api/v1/workspaces/p1priv/trash", "", 403, CodeDenied},
		{"bob", "GET", "/api/v1/workspaces/p1priv/trash", "", 404, CodeNotFound},
		{"alice", "POST", "/api/v1/gc", "{}", 403, CodeDenied},
		{"dev", "GET", "/api/v1/gc", "", 403, CodeDenied},
		{"admin", "GET", "/api/v1/gc/gc-nope", "", 404, CodeNotFound},
		{"admin", "POST", "/api/v1/fsck", "", 501, CodeUnsupported},
		{"admin", "POST", "/api/v1/gc", `{"workspace":"nope"}`, 404, CodeNotFound},
		{"admin", "POST", "/api/v1/gc", `{"bogus":1}`, 400, CodeInvalid},
	} {
		if status, code, body := call(tc.user, tc.method, tc.path, tc.body); status != tc.status || code != string(tc.code) {
			t.Errorf("%s %s as %s: got %d %s, want %d %s (%s)", tc.method, tc.path, tc.user, status, code, tc.status, tc.code, body)
		}
	}

	// A developer deletes the repository and restores it from the trash.
	status, _, body := call("dev", "DELETE", "/api/v1/repositories/p1priv/app", "")
	var it meta.TrashItem
	if status != 200 || json.Unmarshal(body, &it) != nil || it.ID != "repository:p1priv/app" || it.DeletedBy != "dev" {
		t.Fatalf("delete repository: %d %s", status, body)
	}
	if status, _, _ := call("dev", "GET", "/api/v1/repositories/p1priv/app", ""); status != 404 {
		t.Errorf("deleted repository: %d, want 404", status)
	}
	var list struct{ Items []meta.TrashItem }
	if status, _, body := call("dev", "GET", "/api/v1/workspaces/p1priv/trash", ""); status != 200 || json.Unmarshal(body, &list) != nil || len(list.Items) != 1 {
		t.Fatalf("trash: %d %s", status, body)
	}
	if status, _, body := call("dev", "POST", "/api/v1/workspaces/p1priv/trash/restore", `{"id":"repository:p1priv/app"}`); status != 200 {
		t.Fatalf("restore: %d %s", status, body)
	}
	if status, _, _ := call("guest", "GET", "/api/v1/repositories/p1priv/app", ""); status != 200 {
		t.Errorf("restored repository: %d, want 200", status)
	}
	if status, code, _ := call("dev", "POST", "/api/v1/workspaces/p1priv/trash/restore", `{"id":"repository:p1priv/app"}`); status != 404 || code != string(CodeNotFound) {
		t.Errorf("restore twice: %d %s, want 404", status, code)
	}

	// A workspace: its project's admins delete and restore it; its trash is
	// still theirs to see while it is deleted.
	if status, _, _ := call("dev", "DELETE", "/api/v1/workspaces/p1priv", ""); status != 403 {
		t.Errorf("developer deletes a workspace: %d, want 403", status)
	}
	if status, _, body := call("alice", "DELETE", "/api/v1/workspaces/p1priv", ""); status != 204 {
		t.Fatalf("delete workspace: %d %s", status, body)
	}
	if status, _, _ := call("dev", "GET", "/api/v1/workspaces/p1priv", ""); status != 404 {
		t.Errorf("deleted workspace: %d, want 404", status)
	}
	if status, _, body := call("dev", "POST", "/api/v1/workspaces/p1priv/trash/restore", `{"id":"workspace:p1priv"}`); status != 403 {
		t.Errorf("developer restores a workspace: %d %s, want 403", status, body)
	}
	if status, _, body := call("alice", "POST", "/api/v1/workspaces/p1priv/trash/restore", `{"id":"workspace:p1priv"}`); status != 200 {
		t.Fatalf("restore workspace: %d %s", status, body)
	}
	if status, _, _ := call("guest", "GET", "/api/v1/repositories/p1priv/app", ""); status != 200 {
		t.Errorf("repository of the restored workspace: %d, want 200", status)
	}

	// One run at a time.
	var run gcRunJSON
	status, _, body = call("admin", "POST", "/api/v1/gc", `{"dryRun":true}`)
	if status != http.StatusAccepted || json.Unmarshal(body, &run) != nil || run.State != meta.GCRequested || !run.DryRun || run.StartedBy != "admin" {
		t.Fatalf("start gc: %d %s", status, body)
	}
	if status, code, _ := call("admin", "POST", "/api/v1/gc", ""); status != 409 || code != string(CodeConflict) {
		t.Errorf("second run: %d %s, want 409", status, code)
	}
	if status, _, body := call("admin", "GET", "/api/v1/gc/"+run.ID, ""); status != 200 || !strings.Contains(string(body), run.ID) {
		t.Errorf("get run: %d %s", status, body)
	}
	var runs struct{ Items []gcRunJSON }
	if status, _, body := call("admin", "GET", "/api/v1/gc", ""); status != 200 || json.Unmarshal(body, &runs) != nil || len(runs.Items) != 1 {
		t.Errorf("list runs: %d %s", status, body)
	}
}
