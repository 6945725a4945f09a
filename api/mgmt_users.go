package api

import (
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/julienschmidt/httprouter"
	"golang.org/x/crypto/bcrypt"

	"github.com/berth-registry/berth/meta"
)

// mgmtBcryptCost is the cost of password and robot secret hashes: bcrypt's default,
// about 50 ms on a current core, paid once per login (tokens are verified, not
// passwords).
const mgmtBcryptCost = 10

// Password length bounds: bcrypt uses only the first 72 bytes, so a longer
// password is refused rather than silently truncated.
const (
	mgmtMinPasswordLen = 8
	mgmtMaxPasswordLen = 72
)

func mgmtHashPassword(pw string) ([]byte, error) {
	if len(pw) < mgmtMinPasswordLen || len(pw) > mgmtMaxPasswordLen {
		return nil, mgmtInvalid("a password must be %d to %d bytes long", mgmtMinPasswordLen, mgmtMaxPasswordLen)
	}
	return bcrypt.GenerateFromPassword([]byte(pw), mgmtBcryptCost)
}

// membershipJSON is one project a user belongs to.
type membershipJSON struct {
	Project string    `json:"project"`
	Role    meta.Role `json:"role"`
}

// userJSON is a user as the API shows it: never its password hash.
type userJSON struct {
	Name        string           `json:"name"`
	CloudAdmin  bool             `json:"cloudAdmin"`
	Disabled    bool             `json:"disabled"`
	Created     time.Time        `json:"created"`
	Updated     time.Time        `json:"updated"`
	Memberships []membershipJSON `json:"memberships"`
}

func (s *Server) userView(u *meta.User) (userJSON, error) {
	ms, err := meta.MembershipsOf(s.meta, u.Name)
	if err != nil {
		return userJSON{}, err
	}
	out := userJSON{Name: u.Name, CloudAdmin: u.CloudAdmin, Disabled: u.Disabled,
		Created: u.Created, Updated: u.Updated, Memberships: []membershipJSON{}}
	for _, m := range ms {
		out.Memberships = append(out.Memberships, membershipJSON{Project: m.Project, Role: m.Role})
	}
	return out, nil
}

// meJSON is the caller.
type meJSON struct {
	Name        string           `json:"name"`
	Kind        string           `json:"kind"` // "user" or "robot"
	CloudAdmin  bool             `json:"cloudAdmin"`
	Memberships []membershipJSON `json:"memberships"`
	Robot       *robotJSON       `json:"robot,omitempty"`
}

// getMe answers who the caller is, as authentication saw them.
func (s *Server) getMe(w http.ResponseWriter, r *http.Request, p *Principal, _ httprouter.Params) error {
	out := meJSON{Name: p.Name, Kind: "user", CloudAdmin: p.CloudAdmin, Memberships: []membershipJSON{}}
	for project, role := range p.Roles {
		out.Memberships = append(out.Memberships, membershipJSON{Project: project, Role: role})
	}
	slices.SortFunc(out.Memberships, func(a, b membershipJSON) int { return strings.Compare(a.Project, b.Project) })
	if p.Kind == RobotPrincipal {
		out.Kind = "robot"
		if p.Robot != nil {
			v := robotView(p.Robot)
			out.Robot = &v
		}
	}
	return mgmtReply(w, r, http.StatusOK, out)
}

// isSelfUser reports whether p is the user name.
func isSelfUser(p *Principal, name string) bool {
	return p.Kind == UserPrincipal && p.Name == name
}

func (s *Server) listUsers(w http.ResponseWriter, r *http.Request, p *Principal, _ httprouter.Params) error {
	if !p.CloudAdmin {
		return mgmtDenied("only cloud admins mgmtList users")
	}
	users, err := meta.ListUsers(s.meta)
	if err != nil {
		return err
	}
	out := make([]userJSON, 0, len(users))
	for i := range users {
		v, err := s.userView(&users[i])
		if err != nil {
			return err
		}
		out = append(out, v)
	}
	return mgmtReply(w, r, http.StatusOK, mgmtItems(out))
}

type createUserRequest struct {
	Name       string `json:"name"`
	Password   string `json:"password"`
	CloudAdmin bool   `json:"cloudAdmin"`
	Disabled   bool   `json:"disabled"`
}

func (s *Server) createUser(w http.ResponseWriter, r *http.Request, p *Principal, _ httprouter.Params) error {
	if !p.CloudAdmin {
		return mgmtDenied("only cloud admins create users")
	}
	var req createUserRequest
	if err := decodeMgmtBody(w, r, &req); err != nil {
		return err
	}
	if !meta.ValidName(req.Name) {
		return mgmtInvalid("user name %q: use 1 to 64 lower-case letters, digits, '-', '_' and '.', starting with a letter or digit", req.Name)
	}
	hash, err := mgmtHashPassword(req.Password)
	if err != nil {
		return err
	}
	if err := s.propose.Propose(r.Context(), &meta.PutUser{
		Name: req.Name, PasswordHash: hash, CloudAdmin: req.CloudAdmin, Disabled: req.Disabled,
		Create: true, Time: s.cfg.Clock().UTC(),
	}); err != nil {
		return err
	}
	return s.replyUser(w, r, http.StatusCreated, req.Name)
}

func (s *Server) replyUser(w http.ResponseWriter, r *http.Request, status int, name string) error {
	u, err := meta.GetUser(s.meta, name)
	if err != nil {
		return err
	}
	v, err := s.userView(u)
	if err != nil {
		return err
	}
	return mgmtReply(w, r, status, v)
}

// getUser: cloud admins see every user, users see themselves; any other name is
// answered as unknown.
func (s *Server) getUser(w http.ResponseWriter, r *http.Request, p *Principal, ps httprouter.Params) error {
	name := ps.ByName("user")
	if !p.CloudAdmin && !isSelfUser(p, name) {
		return mgmtUserUnknown(name)
	}
	return s.replyUser(w, r, http.StatusOK, name)
}

// patchUserRequest changes a user. Absent fields stay as they are.
type patchUserRequest struct {
	Password    *string `json:"password"`
	OldPassword *string `json:"oldPassword"`
	CloudAdmin  *bool   `json:"cloudAdmin"`
	Disabled    *bool   `json:"disabled"`
}

// patchUser: a cloud admin changes any user; a user changes their own password,
// giving the old one. Nobody changes their own cloudAdmin or disabled flag (a
// user cannot promote themselves; an admin cannot lock themselves out): 403, and
// nothing changes. Setting a flag to the value it has is not a change.
func (s *Server) patchUser(w http.ResponseWriter, r *http.Request, p *Principal, ps httprouter.Params) error {
	name := ps.ByName("user")
	self := isSelfUser(p, name)
	if !p.CloudAdmin && !self {
		return mgmtUserUnknown(name)
	}
	var req patchUserRequest
	if err := decodeMgmtBody(w, r, &req); err != nil {
		return err
	}
	u, err := meta.GetUser(s.meta, name)
	if err != nil {
		return err
	}
	if req.CloudAdmin != nil && *req.CloudAdmin != u.CloudAdmin && (self || !p.CloudAdmin) {
		return mgmtDenied("you cannot change your own cloudAdmin flag")
	}
	if req.Disabled != nil && *req.Disabled != u.Disabled && (self || !p.CloudAdmin) {
		return mgmtDenied("you cannot change your own disabled flag")
	}
	cmd := &meta.PutUser{Name: name, CloudAdmin: u.CloudAdmin, Disabled: u.Disabled, Time: s.cfg.Clock().UTC()}
	if req.CloudAdmin != nil {
		cmd.CloudAdmin = *req.CloudAdmin
	}
	if req.Disabled != nil {
		cmd.Disabled = *req.Disabled
	}
	if req.OldPassword != nil && req.Password == nil {
		return mgmtInvalid("oldPassword is given without password")
	}
	if req.Password != nil {
		// Your own password needs the old one, admin or not: a stolen token alone
		// must not take the account over.
		if self {
			if req.OldPassword == nil {
				return mgmtDenied("changing your own password needs oldPassword")
			}
			// Guesses of the old password count as failed logins.
			ip, now := clientIP(r), s.cfg.Clock()
			if wait := s.auth.limiter.blocked(ip, name, now); wait > 0 {
				return tooManyAttempts(wait)
			}
			if bcrypt.CompareHashAndPassword(u.PasswordHash, []byte(*req.OldPassword)) != nil {
				s.auth.limiter.fail(ip, name, now)
				return mgmtDenied("oldPassword is not your current password")
			}
		}
		if cmd.PasswordHash, err = mgmtHashPassword(*req.Password); err != nil {
			return err
		}
	}
	if cmd.PasswordHash != nil || cmd.CloudAdmin != u.CloudAdmin || cmd.Disabled != u.Disabled {
		if err := s.propose.Propose(r.Context(), cmd); err != nil {
			return err
		}
	}
	return s.replyUser(w, r, http.StatusOK, name)
}

func (s *Server) deleteUser(w http.ResponseWriter, r *http.Request, p *Principal, ps httprouter.Params) error {
	name := ps.ByName("user")
	switch {
	case isSelfUser(p, name):
		return mgmtDenied("you cannot delete your own account")
	case !p.CloudAdmin:
		return mgmtUserUnknown(name)
	}
	if err := s.propose.Propose(r.Context(), &meta.DeleteUser{Name: name, Time: s.cfg.Clock().UTC()}); err != nil {
		return err
	}
	return mgmtNoContent(w)
}
