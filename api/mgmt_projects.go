package api

import (
	"net/http"
	"time"

	"github.com/julienschmidt/httprouter"

	"github.com/berth-registry/berth/meta"
)

// projectJSON is a project; Role is the caller's role in it ("" for a cloud admin
// who is no member).
type projectJSON struct {
	Name        string    `json:"name"`
	Description string    `json:"description"`
	Created     time.Time `json:"created"`
	Role        meta.Role `json:"role,omitempty"`
	Workspaces  int       `json:"workspaces"`
}

func (s *Server) projectView(p *Principal, pr *meta.Project) (projectJSON, error) {
	ws, err := meta.ListWorkspaces(s.meta, pr.Name)
	if err != nil {
		return projectJSON{}, err
	}
	return projectJSON{Name: pr.Name, Description: pr.Description, Created: pr.Created,
		Role: projectRole(p, pr.Name), Workspaces: len(ws)}, nil
}

// listProjects: every project for a cloud admin, the caller's projects otherwise.
func (s *Server) listProjects(w http.ResponseWriter, r *http.Request, p *Principal, _ httprouter.Params) error {
	all, err := meta.ListProjects(s.meta)
	if err != nil {
		return err
	}
	out := []projectJSON{}
	for i := range all {
		if !seesProject(p, all[i].Name) {
			continue
		}
		v, err := s.projectView(p, &all[i])
		if err != nil {
			return err
		}
		out = append(out, v)
	}
	return mgmtReply(w, r, http.StatusOK, mgmtItems(out))
}

type createProjectRequest struct {
	Name        string `json:"name"`
	Description string `json:"description"`
}

func (s *Server) createProject(w http.ResponseWriter, r *http.Request, p *Principal, _ httprouter.Params) error {
	if !p.CloudAdmin {
		return mgmtDenied("only cloud admins create projects")
	}
	var req createProjectRequest
	if err := decodeMgmtBody(w, r, &req); err != nil {
		return err
	}
	if !meta.ValidName(req.Name) {
		return mgmtInvalid("project name %q: use 1 to 64 lower-case letters, digits, '-', '_' and '.', starting with a letter or digit", req.Name)
	}
	if err := s.propose.Propose(r.Context(), &meta.PutProject{
		Name: req.Name, Description: req.Description, Create: true, Time: s.cfg.Clock().UTC(),
	}); err != nil {
		return err
	}
	return s.replyProject(w, r, p, http.StatusCreated, req.Name)
}

func (s *Server) replyProject(w http.ResponseWriter, r *http.Request, p *Principal, status int, name string) error {
	pr, err := meta.GetProject(s.meta, name)
	if err != nil {
		return err
	}
	v, err := s.projectView(p, pr)
	if err != nil {
		return err
	}
	return mgmtReply(w, r, status, v)
}

func (s *Server) getProject(w http.ResponseWriter, r *http.Request, p *Principal, ps httprouter.Params) error {
	name := ps.ByName("project")
	if _, err := s.visibleProject(p, name); err != nil {
		return err
	}
	return s.replyProject(w, r, p, http.StatusOK, name)
}

type patchProjectRequest struct {
	Description *string `json:"description"`
}

func (s *Server) patchProject(w http.ResponseWriter, r *http.Request, p *Principal, ps httprouter.Params) error {
	name := ps.ByName("project")
	if _, err := s.visibleProject(p, name); err != nil {
		return err
	}
	if !administersProject(p, name) {
		return mgmtDenied("only the project's admins change project %s", name)
	}
	var req patchProjectRequest
	if err := decodeMgmtBody(w, r, &req); err != nil {
		return err
	}
	if req.Description != nil {
		if err := s.propose.Propose(r.Context(), &meta.PutProject{
			Name: name, Description: *req.Description, Time: s.cfg.Clock().UTC(),
		}); err != nil {
			return err
		}
	}
	return s.replyProject(w, r, p, http.StatusOK, name)
}

// deleteProject: cloud admins only; meta refuses (409) while the project owns
// workspaces.
func (s *Server) deleteProject(w http.ResponseWriter, r *http.Request, p *Principal, ps httprouter.Params) error {
	name := ps.ByName("project")
	if _, err := s.visibleProject(p, name); err != nil {
		return err
	}
	if !p.CloudAdmin {
		return mgmtDenied("only cloud admins delete projects")
	}
	if err := s.propose.Propose(r.Context(), &meta.DeleteProject{Name: name, Time: s.cfg.Clock().UTC()}); err != nil {
		return err
	}
	return mgmtNoContent(w)
}

// memberJSON is one member of a project.
type memberJSON struct {
	User  string    `json:"user"`
	Role  meta.Role `json:"role"`
	Added time.Time `json:"added"`
}

func (s *Server) listMembers(w http.ResponseWriter, r *http.Request, p *Principal, ps httprouter.Params) error {
	name := ps.ByName("project")
	if _, err := s.visibleProject(p, name); err != nil {
		return err
	}
	ms, err := meta.ListMembers(s.meta, name)
	if err != nil {
		return err
	}
	out := make([]memberJSON, 0, len(ms))
	for _, m := range ms {
		out = append(out, memberJSON{User: m.User, Role: m.Role, Added: m.Added})
	}
	return mgmtReply(w, r, http.StatusOK, mgmtItems(out))
}

type putMemberRequest struct {
	Role meta.Role `json:"role"`
}

// memberChange checks that p may change the membership of user in project: a
// project-admin or cloud admin, and, for a project-admin, not their own
// membership (which could leave the project without an admin; Harbor refuses it
// too).
func (s *Server) memberChange(p *Principal, project, user string) error {
	if _, err := s.visibleProject(p, project); err != nil {
		return err
	}
	if !administersProject(p, project) {
		return mgmtDenied("only the project's admins manage the members of %s", project)
	}
	if !p.CloudAdmin && isSelfUser(p, user) {
		return mgmtDenied("you cannot change your own membership; ask another project admin")
	}
	return nil
}

// putMember adds a member or changes their role.
func (s *Server) putMember(w http.ResponseWriter, r *http.Request, p *Principal, ps httprouter.Params) error {
	project, user := ps.ByName("project"), ps.ByName("user")
	if err := s.memberChange(p, project, user); err != nil {
		return err
	}
	var req putMemberRequest
	if err := decodeMgmtBody(w, r, &req); err != nil {
		return err
	}
	if !req.Role.Valid() {
		return mgmtInvalid("role %q: use project-admin, developer or guest", req.Role)
	}
	if err := s.propose.Propose(r.Context(), &meta.SetMember{
		Project: project, User: user, Role: req.Role, Time: s.cfg.Clock().UTC(),
	}); err != nil {
		return err
	}
	m, err := meta.GetMember(s.meta, project, user)
	if err != nil {
		return err
	}
	return mgmtReply(w, r, http.StatusOK, memberJSON{User: m.User, Role: m.Role, Added: m.Added})
}

func (s *Server) deleteMember(w http.ResponseWriter, r *http.Request, p *Principal, ps httprouter.Params) error {
	project, user := ps.ByName("project"), ps.ByName("user")
	if err := s.memberChange(p, project, user); err != nil {
		return err
	}
	if err := s.propose.Propose(r.Context(), &meta.SetMember{
		Project: project, User: user, Time: s.cfg.Clock().UTC(),
	}); err != nil {
		return err
	}
	return mgmtNoContent(w)
}
