package meta

import (
	"errors"
	"fmt"
	"testing"
)

func applyAll(t *testing.T, txn Txn, cmds ...Command) {
	t.Helper()
	for i, c := range cmds {
		if r := mustApply(t, txn, uint64(100+i), c); r != nil {
			t.Fatalf("command %d (%T): %v", i, c, r)
		}
	}
}

func wantErr(t *testing.T, txn Txn, c Command, want error) {
	t.Helper()
	before := txn.(*memTxn).clone()
	r := mustApply(t, txn, 999, c)
	err, _ := r.(error)
	if !errors.Is(err, want) {
		t.Fatalf("%T: got %v, want %v", c, r, want)
	}
	if len(before.m) != len(txn.(*memTxn).m) {
		t.Fatalf("%T: a refused command changed the state", c)
	}
}

func TestTenancyModel(t *testing.T) {
	txn := newMemTxn()
	applyAll(t, txn,
		&PutUser{Name: "alice", PasswordHash: []byte("h1"), Create: true, Time: t0},
		&PutUser{Name: "bob", PasswordHash: []byte("h2"), Create: true, Time: t0},
		&PutProject{Name: "team-a", Description: "A", Create: true, Time: t0},
		&PutProject{Name: "team-b", Create: true, Time: t0},
		&SetMember{Project: "team-a", User: "alice", Role: RoleProjectAdmin, Time: t0},
		&SetMember{Project: "team-b", User: "alice", Role: RoleGuest, Time: t0},
		&SetMember{Project: "team-b", User: "bob", Role: RoleDeveloper, Time: t0},
		&PutWorkspace{Name: "apps", Project: "team-a", Visibility: Private, Create: true, Time: t0},
		&PutWorkspace{Name: "shared", Project: "team-b", Visibility: Public, Create: true, Time: t0},
		&PutRobot{Project: "team-a", Name: "ci", SecretHash: []byte("s"), Workspaces: []string{"apps"}, Actions: []string{"pull", "push"}, Create: true, Time: t0},
	)
	for _, tc := range []struct {
		name string
		cmd  Command
		want error
	}{
		{"user exists", &PutUser{Name: "alice", Create: true}, ErrExists},
		{"update unknown user", &PutUser{Name: "carol"}, ErrUserUnknown},
		{"bad user name", &PutUser{Name: "Alice!", Create: true}, ErrInvalid},
		{"member of unknown project", &SetMember{Project: "nope", User: "alice", Role: RoleGuest}, ErrProjectUnknown},
		{"unknown user as member", &SetMember{Project: "team-a", User: "carol", Role: RoleGuest}, ErrUserUnknown},
		{"bad role", &SetMember{Project: "team-a", User: "bob", Role: "owner"}, ErrInvalid},
		{"workspace name taken", &PutWorkspace{Name: "shared", Project: "team-a", Visibility: Private, Create: true}, ErrExists},
		{"workspace moved to another project", &PutWorkspace{Name: "shared", Project: "team-a", Visibility: Private}, ErrConflict},
		{"bad visibility", &PutWorkspace{Name: "w2", Project: "team-a", Visibility: "internal", Create: true}, ErrInvalid},
		{"bad workspace name", &PutWorkspace{Name: "a..b", Project: "team-a", Visibility: Private, Create: true}, ErrInvalid},
		{"robot on another project's workspace", &PutRobot{Project: "team-a", Name: "x", Workspaces: []string{"shared"}, Create: true}, ErrWorkspaceUnknown},
		{"robot bad action", &PutRobot{Project: "team-a", Name: "x", Actions: []string{"admin"}, Create: true}, ErrInvalid},
		{"delete project with workspaces", &DeleteProject{Name: "team-a"}, ErrConflict},
		{"push into unknown workspace", &PutBlob{Repo: "nows/app", Digest: dg("x"), Size: 1}, ErrWorkspaceUnknown},
	} {
		t.Run(tc.name, func(t *testing.T) { wantErr(t, txn, tc.cmd, tc.want) })
	}

	ms, err := MembershipsOf(txn, "alice")
	if err != nil || len(ms) != 2 || ms[0].Project != "team-a" || ms[0].Role != RoleProjectAdmin || ms[1].Role != RoleGuest {
		t.Fatalf("memberships of alice: got %+v %v", ms, err)
	}
	ws, _ := ListWorkspaces(txn, "team-b")
	if len(ws) != 1 || ws[0].Name != "shared" || ws[0].Visibility != Public {
		t.Fatalf("workspaces of team-b: got %+v", ws)
	}
	// A password update without a hash keeps the old one; Created stays.
	applyAll(t, txn, &PutUser{Name: "alice", CloudAdmin: true, Time: t0.Add(1)})
	if u, _ := GetUser(txn, "alice"); string(u.PasswordHash) != "h1" || !u.CloudAdmin || !u.Created.Equal(t0) {
		t.Fatalf("alice after update: %+v", u)
	}
	// Deleting a user removes their memberships.
	applyAll(t, txn, &DeleteUser{Name: "alice"})
	if _, err := GetMember(txn, "team-b", "alice"); !errors.Is(err, ErrMemberUnknown) {
		t.Fatalf("membership after user delete: %v", err)
	}
	// Deleting a workspace is a soft delete (trash_test.go has the details);
	// its name is not free again while it is in the trash.
	applyAll(t, txn, &PutBlob{Repo: "apps/web", Digest: dg("l"), Size: 1, Time: t0})
	applyAll(t, txn, &PutWorkspace{Name: "empty", Project: "team-a", Visibility: Private, Create: true, Time: t0},
		&DeleteWorkspace{Name: "empty"})
	if _, err := GetWorkspace(txn, "empty"); !errors.Is(err, ErrWorkspaceUnknown) {
		t.Fatalf("deleted workspace: %v", err)
	}
	wantErr(t, txn, &PutWorkspace{Name: "empty", Project: "team-b", Visibility: Private, Create: true, Time: t0}, ErrConflict)
	applyAll(t, txn, &SetRepoDescription{Repo: "apps/web", Description: "the web app"})
	if r, _ := GetRepository(txn, "apps/web"); r.Description != "the web app" {
		t.Fatalf("description: got %q", r.Description)
	}
}

func TestNamesAndRobotLogins(t *testing.T) {
	for _, tc := range []struct {
		name string
		ws   bool
	}{
		{"library", true}, {"a", true}, {"team-1", true}, {"a.b", true}, {"a__b", true},
		{"", false}, {"A", false}, {"-a", false}, {"a-", false}, {"a..b", false}, {"a/b", false}, {"a___b", false},
	} {
		if got := ValidWorkspaceName(tc.name); got != tc.ws {
			t.Errorf("ValidWorkspaceName(%q): got %v, want %v", tc.name, got, tc.ws)
		}
	}
	p, n, ok := ParseRobotLogin(RobotLogin("team-a", "ci"))
	if !ok || p != "team-a" || n != "ci" {
		t.Errorf("robot login round trip: got %q %q %v", p, n, ok)
	}
	for _, bad := range []string{"alice", "robot$", "robot$team", "robot$+ci", "robot$team+"} {
		if _, _, ok := ParseRobotLogin(bad); ok {
			t.Errorf("ParseRobotLogin(%q) accepted", bad)
		}
	}
}

func TestErrorCodesRoundTrip(t *testing.T) {
	for code, target := range domainCodes {
		err := fmt.Errorf("%w: detail for %s", target, code)
		if got := ErrorCode(err); got != code {
			t.Errorf("ErrorCode(%v): got %q, want %q", err, got, code)
		}
		back := ErrorFromCode(code, err.Error())
		if !errors.Is(back, target) || back.Error() != err.Error() {
			t.Errorf("ErrorFromCode(%q): got %v, want %v", code, back, err)
		}
	}
	if ErrorCode(errors.New("disk on fire")) != "" {
		t.Error("a non-domain error got a code")
	}
}
