package api

import (
	"crypto/rand"
	"encoding/base64"
	"net/http"
	"slices"
	"time"

	"github.com/julienschmidt/httprouter"
	"golang.org/x/crypto/bcrypt"

	"github.com/berth-registry/berth/meta"
)

// robotJSON is a robot account. Secret is set only in the answer that created
// it: only its hash is stored, so it can never be shown again.
type robotJSON struct {
	Name       string     `json:"name"`
	Project    string     `json:"project"`
	Login      string     `json:"login"` // the user name to log in with: robot$<project>+<name>
	Workspaces []string   `json:"workspaces"`
	Actions    []string   `json:"actions"`
	Expires    *time.Time `json:"expires"` // null: never
	Disabled   bool       `json:"disabled"`
	Created    time.Time  `json:"created"`
	Secret     string     `json:"secret,omitempty"`
}

func robotView(rb *meta.Robot) robotJSON {
	v := robotJSON{Name: rb.Name, Project: rb.Project, Login: meta.RobotLogin(rb.Project, rb.Name),
		Workspaces: rb.Workspaces, Actions: rb.Actions, Disabled: rb.Disabled, Created: rb.Created}
	if v.Workspaces == nil {
		v.Workspaces = []string{}
	}
	if v.Actions == nil {
		v.Actions = []string{}
	}
	if !rb.Expires.IsZero() {
		e := rb.Expires
		v.Expires = &e
	}
	return v
}

// robotAdmin checks that p administers project (robots are the project admins').
func (s *Server) robotAdmin(p *Principal, project string) error {
	if _, err := s.visibleProject(p, project); err != nil {
		return err
	}
	if !administersProject(p, project) {
		return mgmtDenied("only the project's admins manage the robot accounts of %s", project)
	}
	return nil
}

func (s *Server) listRobots(w http.ResponseWriter, r *http.Request, p *Principal, ps httprouter.Params) error {
	project := ps.ByName("project")
	if err := s.robotAdmin(p, project); err != nil {
		return err
	}
	robots, err := meta.ListRobots(s.meta, project)
	if err != nil {
		return err
	}
	out := make([]robotJSON, 0, len(robots))
	for i := range robots {
		out = append(out, robotView(&robots[i]))
	}
	return mgmtReply(w, r, http.StatusOK, mgmtItems(out))
}

// createRobotRequest creates a robot. The expiry is expiresInDays from now or
// the time expires; with neither (or expiresInDays 0) the robot never expires.
type createRobotRequest struct {
	Name          string     `json:"name"`
	Workspaces    []string   `json:"workspaces"`
	Actions       []string   `json:"actions"`
	ExpiresInDays *int       `json:"expiresInDays"`
	Expires       *time.Time `json:"expires"`
}

// maxRobotDays bounds expiresInDays (about 100 years) so the time cannot overflow.
const maxRobotDays = 36500

// createRobot makes a robot account with a random secret, which the answer shows
// once (201). Its workspaces must be the project's; its actions pull, push or
// delete.
func (s *Server) createRobot(w http.ResponseWriter, r *http.Request, p *Principal, ps httprouter.Params) error {
	project := ps.ByName("project")
	if err := s.robotAdmin(p, project); err != nil {
		return err
	}
	var req createRobotRequest
	if err := decodeMgmtBody(w, r, &req); err != nil {
		return err
	}
	if !meta.ValidName(req.Name) {
		return mgmtInvalid("robot name %q: use 1 to 64 lower-case letters, digits, '-', '_' and '.', starting with a letter or digit", req.Name)
	}
	if len(req.Workspaces) == 0 {
		return mgmtInvalid("a robot needs at least one workspace")
	}
	if len(req.Actions) == 0 {
		return mgmtInvalid("a robot needs at least one action: pull, push or delete")
	}
	for _, name := range req.Workspaces {
		// Checked here as well as by the command, so that another project's
		// workspace is answered exactly like one that does not exist.
		ws, err := meta.GetWorkspace(s.meta, name)
		if err != nil {
			return err
		}
		if ws.Project != project {
			return mgmtWorkspaceUnknown(name)
		}
	}
	for _, a := range req.Actions {
		if !slices.Contains(meta.ValidActions, a) {
			return mgmtInvalid("action %q: use pull, push or delete", a)
		}
	}
	now := s.cfg.Clock().UTC()
	var expires time.Time
	switch {
	case req.ExpiresInDays != nil && req.Expires != nil:
		return mgmtInvalid("give expiresInDays or expires, not both")
	case req.ExpiresInDays != nil:
		d := *req.ExpiresInDays
		if d < 0 || d > maxRobotDays {
			return mgmtInvalid("expiresInDays must be 0 (never) to %d", maxRobotDays)
		}
		if d > 0 {
			expires = now.AddDate(0, 0, d)
		}
	case req.Expires != nil:
		if !req.Expires.After(now) {
			return mgmtInvalid("expires is in the past")
		}
		expires = req.Expires.UTC()
	}
	secret, hash, err := newRobotSecret()
	if err != nil {
		return err
	}
	wss := slices.Clone(req.Workspaces)
	slices.Sort(wss)
	acts := slices.Clone(req.Actions)
	slices.Sort(acts)
	if err := s.propose.Propose(r.Context(), &meta.PutRobot{
		Project: project, Name: req.Name, SecretHash: hash,
		Workspaces: slices.Compact(wss), Actions: slices.Compact(acts),
		Expires: expires, Create: true, Time: now,
	}); err != nil {
		return err
	}
	rb, err := meta.GetRobot(s.meta, project, req.Name)
	if err != nil {
		return err
	}
	v := robotView(rb)
	v.Secret = secret
	return mgmtReply(w, r, http.StatusCreated, v)
}

// newRobotSecret returns a random secret (256 bits, URL-safe base64) and its
// bcrypt hash.
func newRobotSecret() (string, []byte, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", nil, err
	}
	secret := base64.RawURLEncoding.EncodeToString(b[:])
	hash, err := bcrypt.GenerateFromPassword([]byte(secret), mgmtBcryptCost)
	return secret, hash, err
}

// deleteRobot revokes a robot: its tokens stop being issued at once, and those
// already issued expire within the token lifetime.
func (s *Server) deleteRobot(w http.ResponseWriter, r *http.Request, p *Principal, ps httprouter.Params) error {
	project := ps.ByName("project")
	if err := s.robotAdmin(p, project); err != nil {
		return err
	}
	if err := s.propose.Propose(r.Context(), &meta.DeleteRobot{
		Project: project, Name: ps.ByName("robot"), Time: s.cfg.Clock().UTC(),
	}); err != nil {
		return err
	}
	return mgmtNoContent(w)
}
