package api

import "github.com/berth-registry/berth/meta"

// PrincipalKind says who a principal is.
type PrincipalKind int

const (
	Anonymous PrincipalKind = iota // no credentials
	UserPrincipal
	RobotPrincipal
)

// Principal is the caller of a request, as authentication established it. It is
// built fresh from the metadata at authentication time (token issue, or a Basic
// credential check), so membership changes take effect by the next token.
type Principal struct {
	Kind       PrincipalKind
	Name       string               // user name, or robot login "robot$<project>+<name>"; "" when anonymous
	CloudAdmin bool                 // users only
	Roles      map[string]meta.Role // project -> role, users only
	Robot      *meta.Robot          // robots only
}
