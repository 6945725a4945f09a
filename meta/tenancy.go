package meta

import (
	"errors"
	"strings"
	"time"
)

// Role is a member's role in a project.
type Role string

const (
	RoleProjectAdmin Role = "project-admin" // members, workspaces and their visibility, delete anything in the project
	RoleDeveloper    Role = "developer"     // view, upload, push, pull, edit descriptions, delete images and tags
	RoleGuest        Role = "guest"         // view and pull
)

// Valid reports whether r is one of the three roles.
func (r Role) Valid() bool {
	return r == RoleProjectAdmin || r == RoleDeveloper || r == RoleGuest
}

// Visibility of a workspace.
type Visibility string

const (
	Private Visibility = "private" // only the owning project's members
	Public  Visibility = "public"  // every other project's members may list and pull
)

// User is a person who logs in. PasswordHash is a bcrypt hash; the password is
// never stored.
type User struct {
	Name         string    `json:"-"`
	PasswordHash []byte    `json:"passwordHash"`
	CloudAdmin   bool      `json:"cloudAdmin,omitempty"`
	Disabled     bool      `json:"disabled,omitempty"`
	Created      time.Time `json:"created"`
	Updated      time.Time `json:"updated"`
}

// Project is a tenant: it owns workspaces and has members.
type Project struct {
	Name        string    `json:"-"`
	Description string    `json:"description,omitempty"`
	Created     time.Time `json:"created"`
}

// Member is a user's role in a project.
type Member struct {
	Project string    `json:"-"`
	User    string    `json:"-"`
	Role    Role      `json:"role"`
	Added   time.Time `json:"added"`
}

// Workspace holds repositories "<workspace>/<path>"; it belongs to exactly one project.
type Workspace struct {
	Name        string     `json:"-"`
	Project     string     `json:"project"`
	Visibility  Visibility `json:"visibility"`
	Description string     `json:"description,omitempty"`
	Created     time.Time  `json:"created"`
}

// Robot is a project's machine account for CI. Its secret is shown once and only
// its bcrypt hash is kept. Workspaces and Actions bound what its tokens may carry.
type Robot struct {
	Project    string    `json:"-"`
	Name       string    `json:"-"`
	SecretHash []byte    `json:"secretHash"`
	Workspaces []string  `json:"workspaces"`
	Actions    []string  `json:"actions"` // "pull", "push", "delete"
	Expires    time.Time `json:"expires"` // zero: never
	Disabled   bool      `json:"disabled,omitempty"`
	Created    time.Time `json:"created"`
}

// RobotPrefix starts every robot's login name: "robot$<project>+<name>".
const RobotPrefix = "robot$"

// RobotLogin is the user name a robot logs in with.
func RobotLogin(project, name string) string { return RobotPrefix + project + "+" + name }

// ParseRobotLogin splits a robot login name; ok is false for any other name.
func ParseRobotLogin(login string) (project, name string, ok bool) {
	rest, ok := strings.CutPrefix(login, RobotPrefix)
	if !ok {
		return "", "", false
	}
	project, name, ok = strings.Cut(rest, "+")
	return project, name, ok && project != "" && name != ""
}

// SigningKey is a key the cluster signs tokens with. It is cluster state so that
// a token issued by one node is accepted by every node.
type SigningKey struct {
	ID        string    `json:"-"`
	Algorithm string    `json:"alg"`     // "ES256"
	Private   []byte    `json:"private"` // PKCS#8 DER
	Created   time.Time `json:"created"`
}

// Tenancy errors, returned by Apply and the reads.
var (
	ErrUserUnknown      = errors.New("meta: user unknown")
	ErrProjectUnknown   = errors.New("meta: project unknown")
	ErrWorkspaceUnknown = errors.New("meta: workspace unknown")
	ErrRobotUnknown     = errors.New("meta: robot unknown")
	ErrMemberUnknown    = errors.New("meta: member unknown")
	ErrExists           = errors.New("meta: already exists")
	ErrConflict         = errors.New("meta: conflict")
	ErrInvalid          = errors.New("meta: invalid")
)

// ValidName reports whether s is a valid user, project, workspace or robot name:
// 1 to 64 of lower-case letters, digits, '-', '_' and '.', starting with a letter
// or digit. Workspace names are also the first component of repository names, so
// they follow the repository component grammar more strictly (see
// ValidWorkspaceName).
func ValidName(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		alnum := c >= 'a' && c <= 'z' || c >= '0' && c <= '9'
		if !alnum && (i == 0 || (c != '-' && c != '_' && c != '.')) {
			return false
		}
	}
	return true
}

// ValidWorkspaceName reports whether s can be a workspace: a valid name that is
// also one repository path component (lower-case alphanumerics separated by one
// '.', one or two '_', or dashes), so "<ws>/<path>" is a valid repository name.
func ValidWorkspaceName(s string) bool {
	if !ValidName(s) {
		return false
	}
	last := s[len(s)-1]
	if !(last >= 'a' && last <= 'z' || last >= '0' && last <= '9') {
		return false
	}
	return !strings.Contains(s, "..") && !strings.Contains(s, "___") &&
		!strings.Contains(s, "._") && !strings.Contains(s, "_.") &&
		!strings.Contains(s, ".-") && !strings.Contains(s, "-.") &&
		!strings.Contains(s, "_-") && !strings.Contains(s, "-_")
}

// WorkspaceOf returns the workspace part of a repository name.
func WorkspaceOf(repo string) string {
	ws, _, _ := strings.Cut(repo, "/")
	return ws
}
