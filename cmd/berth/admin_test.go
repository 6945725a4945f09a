package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/berth-registry/berth/node"
)

const adminTestPassword = "admin-test-password"

// startAdminTestNode runs a real node in this process, bootstrapped with the
// cloud admin "admin".
func startAdminTestNode(t *testing.T) string {
	t.Helper()
	cfg := node.Defaults()
	cfg.DataDir = t.TempDir()
	cfg.Listen = "127.0.0.1:0"
	cfg.AdminPassword = adminTestPassword
	n, err := node.New(cfg, nil)
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
	return "http://" + n.Addr()
}

// cli runs berth with args and returns its exit code and output.
func cli(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(args, &out, &errb)
	return code, out.String(), errb.String()
}

func mustCLI(t *testing.T, args ...string) string {
	t.Helper()
	code, out, errs := cli(t, args...)
	if code != 0 {
		t.Fatalf("berth %s: exit %d\n%s%s", strings.Join(args, " "), code, out, errs)
	}
	return out
}

func TestAdminCLI(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a node")
	}
	base := startAdminTestNode(t)
	cfgHome := t.TempDir()
	t.Setenv("XDG_CONFIG_HOME", cfgHome)
	t.Setenv("BERTH_USER", "")
	t.Setenv("BERTH_PASSWORD", "")
	t.Setenv("BERTH_SERVER", "")
	srv := "--server=" + base

	// Without credentials: a usage error that says how to give them.
	if code, _, errs := cli(t, "project", "list", srv); code != 2 || !strings.Contains(errs, "berth login") {
		t.Errorf("no credentials: exit %d %q, want 2", code, errs)
	}
	// A wrong password: refused by the server.
	if code, _, errs := cli(t, "login", srv, "--user", "admin", "--password", "wrong-password"); code != 1 || !strings.Contains(errs, "UNAUTHORIZED") {
		t.Errorf("bad login: exit %d %q, want 1", code, errs)
	}

	// berth login saves the credentials, 0600; later commands use them.
	out := mustCLI(t, "login", srv, "--user", "admin", "--password", adminTestPassword)
	if !strings.Contains(out, "Login succeeded: admin") {
		t.Errorf("login: %q", out)
	}
	credPath := filepath.Join(cfgHome, "berth", "credentials.json")
	fi, err := os.Stat(credPath)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("credentials file: %v %v", fi, err)
	}

	mustCLI(t, "project", "create", "web", "--description", "the web team", srv)
	mustCLI(t, "user", "create", "alice", srv, "--new-password", "alice-password")
	out = mustCLI(t, "user", "create", "bob", srv) // a generated password, printed once
	if !strings.Contains(out, "Password (shown only now): ") {
		t.Errorf("user create without a password: %q", out)
	}
	mustCLI(t, "member", "add", "alice", "--project", "web", "--role", "project-admin", srv)
	mustCLI(t, "member", "add", "bob", "--project=web", srv) // developer by default

	// The project admin works with flags instead of the saved login.
	asAlice := []string{srv, "--user", "alice", "--password", "alice-password"}
	mustCLI(t, append([]string{"workspace", "create", "apps", "--project", "web", "--visibility", "public"}, asAlice...)...)
	mustCLI(t, append([]string{"workspace", "create", "internal", "--project", "web"}, asAlice...)...)
	mustCLI(t, append([]string{"workspace", "set", "internal", "--description", "not for others"}, asAlice...)...)

	var wss struct {
		Items []struct {
			Name, Project, Visibility, Description string
			Own                                    bool
		}
	}
	if err := json.Unmarshal([]byte(mustCLI(t, append([]string{"workspace", "list", "--json", "--scope", "own"}, asAlice...)...)), &wss); err != nil {
		t.Fatal(err)
	}
	if len(wss.Items) != 2 || wss.Items[0].Name != "apps" || wss.Items[0].Visibility != "public" ||
		wss.Items[1].Name != "internal" || wss.Items[1].Description != "not for others" || !wss.Items[1].Own {
		t.Errorf("workspace list --json: %+v", wss)
	}
	table := mustCLI(t, "workspace", "list", srv)
	for _, want := range []string{"NAME", "VISIBILITY", "apps", "internal", "library", "public"} {
		if !strings.Contains(table, want) {
			t.Errorf("workspace list table lacks %q:\n%s", want, table)
		}
	}

	// A robot: the secret is printed once and logs in at the token endpoint.
	var rb struct {
		Login, Secret string
		Workspaces    []string
		Actions       []string
	}
	out = mustCLI(t, append([]string{"robot", "create", "ci", "--project", "web", "--workspace", "apps,internal", "--json"}, asAlice...)...)
	if err := json.Unmarshal([]byte(out), &rb); err != nil {
		t.Fatalf("robot create --json: %v: %s", err, out)
	}
	if rb.Login != "robot$web+ci" || rb.Secret == "" || len(rb.Workspaces) != 2 || strings.Join(rb.Actions, ",") != "pull,push" {
		t.Fatalf("robot: %+v", rb)
	}
	q := url.Values{"service": {"berth"}, "scope": {"repository:apps/app:pull,push"}}
	req, _ := http.NewRequest("GET", base+"/auth/token?"+q.Encode(), nil)
	req.SetBasicAuth(rb.Login, rb.Secret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("robot login: %d", resp.StatusCode)
	}
	out = mustCLI(t, append([]string{"robot", "list", "--project", "web", "--json"}, asAlice...)...)
	if strings.Contains(out, rb.Secret) || strings.Contains(out, "secret") || !strings.Contains(out, "robot$web+ci") {
		t.Errorf("robot list: %s", out)
	}
	out = mustCLI(t, append([]string{"robot", "list", "--project", "web"}, asAlice...)...)
	if !strings.Contains(out, "robot$web+ci") || !strings.Contains(out, "never") {
		t.Errorf("robot list table: %s", out)
	}

	// Refusals print the server's message and exit 1.
	if code, _, errs := cli(t, "project", "create", "web", srv); code != 1 || !strings.Contains(errs, "already exists") {
		t.Errorf("duplicate project: exit %d %q", code, errs)
	}
	if code, _, errs := cli(t, append([]string{"project", "create", "mine"}, asAlice...)...); code != 1 || !strings.Contains(errs, "DENIED") {
		t.Errorf("project create by a project admin: exit %d %q", code, errs)
	}
	if code, _, errs := cli(t, append([]string{"user", "set-admin", "alice"}, asAlice...)...); code != 1 || !strings.Contains(errs, "DENIED") {
		t.Errorf("set-admin on oneself: exit %d %q", code, errs)
	}
	// Usage errors exit 2.
	for _, args := range [][]string{
		{"workspace", "create", srv},
		{"member", "add", "bob", srv},
		{"user", "frobnicate", srv},
		{"user"},
		{"robot", "create", "x", "--project", "web", srv},
		{"project", "list", "--no-such-flag", srv},
	} {
		if code, _, _ := cli(t, args...); code != 2 {
			t.Errorf("berth %s: exit %d, want 2", strings.Join(args, " "), code)
		}
	}

	// A user changes their own password; the environment supplies credentials.
	mustCLI(t, append([]string{"user", "passwd", "alice", "--new-password", "alice-password-2"}, asAlice...)...)
	asAlice[len(asAlice)-1] = "alice-password-2"
	t.Setenv("BERTH_USER", "alice")
	t.Setenv("BERTH_PASSWORD", "alice-password-2")
	out = mustCLI(t, "project", "list", srv)
	if !strings.Contains(out, "web") || !strings.Contains(out, "project-admin") {
		t.Errorf("project list as alice: %s", out)
	}
	t.Setenv("BERTH_USER", "")
	t.Setenv("BERTH_PASSWORD", "")

	// Members and deletes.
	out = mustCLI(t, "member", "list", "--project", "web", srv)
	if !strings.Contains(out, "alice") || !strings.Contains(out, "developer") {
		t.Errorf("member list: %s", out)
	}
	mustCLI(t, "member", "remove", "bob", "--project", "web", srv)
	mustCLI(t, append([]string{"robot", "delete", "ci", "--project", "web"}, asAlice...)...)
	mustCLI(t, "workspace", "delete", "apps", srv)
	mustCLI(t, "workspace", "delete", "internal", srv)
	mustCLI(t, "project", "delete", "web", srv)
	mustCLI(t, "user", "delete", "bob", srv)
	out = mustCLI(t, "user", "list", "--json", srv)
	if strings.Contains(out, `"bob"`) || !strings.Contains(out, `"alice"`) || strings.Contains(out, "passwordHash") {
		t.Errorf("user list: %s", out)
	}

	// logout forgets the server.
	mustCLI(t, "logout", srv)
	if code, _, _ := cli(t, "project", "list", srv); code != 2 {
		t.Errorf("after logout: exit %d, want 2", code)
	}
}

func TestNormalizeServer(t *testing.T) {
	for in, want := range map[string]string{
		"http://127.0.0.1:5000/": "http://127.0.0.1:5000",
		"127.0.0.1:5000":         "http://127.0.0.1:5000",
		"localhost:5000":         "http://localhost:5000",
		"[::1]:5000":             "http://[::1]:5000",
		"registry.example.com":   "https://registry.example.com",
		"https://r.example.com":  "https://r.example.com",
	} {
		if got, err := normalizeServer(in); err != nil || got != want {
			t.Errorf("normalizeServer(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "ftp://x", "http://"} {
		if _, err := normalizeServer(bad); err == nil {
			t.Errorf("normalizeServer(%q): no error", bad)
		}
	}
}

func TestParseChallenge(t *testing.T) {
	realm, service, ok := parseChallenge(`Bearer realm="http://h:5000/auth/token",service="berth",scope="repository:a/b:pull",error="invalid_token"`)
	if !ok || realm != "http://h:5000/auth/token" || service != "berth" {
		t.Errorf("got %q %q %v", realm, service, ok)
	}
	if _, _, ok := parseChallenge(`Basic realm="x"`); ok {
		t.Error("Basic challenge accepted")
	}
}
