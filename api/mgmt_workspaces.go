package api

import (
	"net/http"
	"time"

	"github.com/julienschmidt/httprouter"

	"github.com/berth-registry/berth/meta"
)

// workspaceJSON is a workspace. Own says whether it belongs to one of the
// caller's projects (or, for a robot, is one of its workspaces); a workspace that
// is not own is shared with the caller (another project's public workspace), or
// seen only because the caller is a cloud admin.
type workspaceJSON struct {
	Name         string          `json:"name"`
	Project      string          `json:"project"`
	Visibility   meta.Visibility `json:"visibility"`
	Description  string          `json:"description"`
	Created      time.Time       `json:"created"`
	Repositories int             `json:"repositories"`
	Size         int64           `json:"size"` // distinct bytes of the blobs its repositories hold
	Own          bool            `json:"own"`
}

func (s *Server) workspaceView(p *Principal, ws *meta.Workspace) (workspaceJSON, error) {
	n, err := s.countRepositories(ws.Name)
	if err != nil {
		return workspaceJSON{}, err
	}
	size, err := meta.WorkspaceBytes(s.meta, ws.Name)
	if err != nil {
		return workspaceJSON{}, err
	}
	return workspaceJSON{Name: ws.Name, Project: ws.Project, Visibility: ws.Visibility,
		Description: ws.Description, Created: ws.Created, Repositories: n, Size: size, Own: ownsWorkspace(p, ws)}, nil
}

// Listing scopes: own (the caller's projects' workspaces), shared (other
// projects' public workspaces the caller may pull from), all (both; for a cloud
// admin, every workspace).
const (
	listOwn    = "own"
	listShared = "shared"
	listAll    = "all"
)

func mgmtListScope(r *http.Request, def string) (string, error) {
	sc := r.URL.Query().Get("scope")
	switch sc {
	case "":
		return def, nil
	case listOwn, listShared, listAll:
		return sc, nil
	}
	return "", mgmtInvalid("scope %q: use own, shared or all", sc)
}

// inListScope reports whether ws belongs in a listing of scope for p.
func inListScope(p *Principal, ws *meta.Workspace, scope string) bool {
	own := ownsWorkspace(p, ws)
	shared := !own && ws.Visibility == meta.Public && p.Can(ws, ActionPull)
	switch scope {
	case listOwn:
		return own
	case listShared:
		return shared
	}
	return own || shared || p.CloudAdmin
}

// listWorkspaces: GET /api/v1/workspaces?scope=own|shared|all&project=P.
func (s *Server) listWorkspaces(w http.ResponseWriter, r *http.Request, p *Principal, _ httprouter.Params) error {
	scope, err := mgmtListScope(r, listAll)
	if err != nil {
		return err
	}
	all, err := meta.ListWorkspaces(s.meta, r.URL.Query().Get("project"))
	if err != nil {
		return err
	}
	out := []workspaceJSON{}
	for i := range all {
		if !inListScope(p, &all[i], scope) {
			continue
		}
		v, err := s.workspaceView(p, &all[i])
		if err != nil {
			return err
		}
		out = append(out, v)
	}
	return mgmtReply(w, r, http.StatusOK, mgmtItems(out))
}

type createWorkspaceRequest struct {
	Name        string          `json:"name"`
	Visibility  meta.Visibility `json:"visibility"` // default private
	Description string          `json:"description"`
}

func validVisibility(v meta.Visibility) bool { return v == meta.Private || v == meta.Public }

// createWorkspace: POST /api/v1/projects/:project/workspaces, by the project's
// admins.
func (s *Server) createWorkspace(w http.ResponseWriter, r *http.Request, p *Principal, ps httprouter.Params) error {
	project := ps.ByName("project")
	if _, err := s.visibleProject(p, project); err != nil {
		return err
	}
	if !administersProject(p, project) {
		return mgmtDenied("only the project's admins create workspaces in %s", project)
	}
	var req createWorkspaceRequest
	if err := decodeMgmtBody(w, r, &req); err != nil {
		return err
	}
	if !meta.ValidWorkspaceName(req.Name) {
		return mgmtInvalid("workspace name %q: use lower-case letters and digits, separated inside by one '.', one or two '_', or dashes; at most 64", req.Name)
	}
	if req.Visibility == "" {
		req.Visibility = meta.Private
	}
	if !validVisibility(req.Visibility) {
		return mgmtInvalid("visibility %q: use private or public", req.Visibility)
	}
	if err := s.propose.Propose(r.Context(), &meta.PutWorkspace{
		Name: req.Name, Project: project, Visibility: req.Visibility, Description: req.Description,
		Create: true, Time: s.cfg.Clock().UTC(),
	}); err != nil {
		return err
	}
	return s.replyWorkspace(w, r, p, http.StatusCreated, req.Name)
}

func (s *Server) replyWorkspace(w http.ResponseWriter, r *http.Request, p *Principal, status int, name string) error {
	ws, err := meta.GetWorkspace(s.meta, name)
	if err != nil {
		return err
	}
	v, err := s.workspaceView(p, ws)
	if err != nil {
		return err
	}
	return mgmtReply(w, r, status, v)
}

func (s *Server) getWorkspace(w http.ResponseWriter, r *http.Request, p *Principal, ps httprouter.Params) error {
	name := ps.ByName("workspace")
	if _, err := s.visibleWorkspace(p, name); err != nil {
		return err
	}
	return s.replyWorkspace(w, r, p, http.StatusOK, name)
}

type patchWorkspaceRequest struct {
	Visibility  *meta.Visibility `json:"visibility"`
	Description *string          `json:"description"`
}

// patchWorkspace: the visibility is the project admins' (access settings); the
// description is also the developers'. Members of other projects see a public
// workspace but have no workspace rights (403).
func (s *Server) patchWorkspace(w http.ResponseWriter, r *http.Request, p *Principal, ps httprouter.Params) error {
	name := ps.ByName("workspace")
	ws, err := s.visibleWorkspace(p, name)
	if err != nil {
		return err
	}
	var req patchWorkspaceRequest
	if err := decodeMgmtBody(w, r, &req); err != nil {
		return err
	}
	if req.Visibility != nil && *req.Visibility != ws.Visibility && !administersProject(p, ws.Project) {
		return mgmtDenied("only the admins of project %s change the visibility of %s", ws.Project, name)
	}
	if req.Description != nil && *req.Description != ws.Description && !editsProject(p, ws.Project) {
		return mgmtDenied("only the developers and admins of project %s edit %s", ws.Project, name)
	}
	if req.Visibility == nil && req.Description == nil && !editsProject(p, ws.Project) {
		return mgmtDenied("only the developers and admins of project %s edit %s", ws.Project, name)
	}
	cmd := &meta.PutWorkspace{Name: name, Project: ws.Project, Visibility: ws.Visibility,
		Description: ws.Description, Time: s.cfg.Clock().UTC()}
	if req.Visibility != nil {
		if !validVisibility(*req.Visibility) {
			return mgmtInvalid("visibility %q: use private or public", *req.Visibility)
		}
		cmd.Visibility = *req.Visibility
	}
	if req.Description != nil {
		cmd.Description = *req.Description
	}
	if cmd.Visibility != ws.Visibility || cmd.Description != ws.Description {
		if err := s.propose.Propose(r.Context(), cmd); err != nil {
			return err
		}
	}
	return s.replyWorkspace(w, r, p, http.StatusOK, name)
}
