package api

// The management API: /api/v1/, JSON in and out, for the console and for the
// berth admin subcommands. Every route is in mgmtRoutes (the OpenAPI document in
// openapi.json describes each one; a test keeps the two in step). Every handler
// gets the authenticated caller and decides what it may see and touch:
//
//   - an object the caller may not see (a private workspace of another project, a
//     project they are not a member of, another user) is answered exactly as if it
//     did not exist (404 with the same message), so ids do not leak existence;
//   - an object the caller sees but may not change is 403, and nothing changes;
//   - writes are meta commands proposed through s.propose, with their times from
//     the server's clock and their secrets hashed here, before proposing.
//
// Decisions use the Principal as authentication built it (roles at token time),
// so a membership change takes effect by the next token, as for /v2/.

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/julienschmidt/httprouter"

	"github.com/berth-registry/berth/meta"
)

// Management error codes besides the OCI ones. Their statuses are always given
// explicitly where they are built.
const (
	CodeInvalid  ErrorCode = "INVALID"  // 400: a body or parameter that cannot be accepted
	CodeConflict ErrorCode = "CONFLICT" // 409: exists already, or still in use
)

// mgmtHandler serves one management route for an authenticated caller (p is nil
// only on public routes).
type mgmtHandler func(s *Server, w http.ResponseWriter, r *http.Request, p *Principal, ps httprouter.Params) error

// mgmtRoute is one route of the management API.
type mgmtRoute struct {
	method, path string
	h            mgmtHandler
	public       bool     // served without authentication
	alsoServes   []string // OpenAPI paths this catch-all route also answers
}

// mgmtRoutes is every route of the management API, in the order of the OpenAPI
// document. It is never modified.
var mgmtRoutes = []mgmtRoute{
	{method: http.MethodGet, path: "/api/v1/openapi.json", h: (*Server).getOpenAPI, public: true},
	{method: http.MethodGet, path: "/api/v1/me", h: (*Server).getMe},

	// The console's session (api/console.go): public routes that read the cookie themselves.
	{method: http.MethodGet, path: "/api/v1/session", h: (*Server).getSession, public: true},
	{method: http.MethodPost, path: "/api/v1/session", h: (*Server).createSession, public: true},
	{method: http.MethodDelete, path: "/api/v1/session", h: (*Server).deleteSession, public: true},

	{method: http.MethodGet, path: "/api/v1/users", h: (*Server).listUsers},
	{method: http.MethodPost, path: "/api/v1/users", h: (*Server).createUser},
	{method: http.MethodGet, path: "/api/v1/users/:user", h: (*Server).getUser},
	{method: http.MethodPatch, path: "/api/v1/users/:user", h: (*Server).patchUser},
	{method: http.MethodDelete, path: "/api/v1/users/:user", h: (*Server).deleteUser},

	{method: http.MethodGet, path: "/api/v1/projects", h: (*Server).listProjects},
	{method: http.MethodPost, path: "/api/v1/projects", h: (*Server).createProject},
	{method: http.MethodGet, path: "/api/v1/projects/:project", h: (*Server).getProject},
	{method: http.MethodPatch, path: "/api/v1/projects/:project", h: (*Server).patchProject},
	{method: http.MethodDelete, path: "/api/v1/projects/:project", h: (*Server).deleteProject},

	{method: http.MethodGet, path: "/api/v1/projects/:project/members", h: (*Server).listMembers},
	{method: http.MethodPut, path: "/api/v1/projects/:project/members/:user", h: (*Server).putMember},
	{method: http.MethodDelete, path: "/api/v1/projects/:project/members/:user", h: (*Server).deleteMember},

	{method: http.MethodPost, path: "/api/v1/projects/:project/workspaces", h: (*Server).createWorkspace},
	{method: http.MethodGet, path: "/api/v1/workspaces", h: (*Server).listWorkspaces},
	{method: http.MethodGet, path: "/api/v1/workspaces/:workspace", h: (*Server).getWorkspace},
	{method: http.MethodPatch, path: "/api/v1/workspaces/:workspace", h: (*Server).patchWorkspace},
	{method: http.MethodDelete, path: "/api/v1/workspaces/:workspace", h: (*Server).softDeleteWorkspace},

	{method: http.MethodGet, path: "/api/v1/workspaces/:workspace/repositories", h: (*Server).listRepositories},
	{method: http.MethodPost, path: "/api/v1/workspaces/:workspace/import", h: (*Server).importArchive},
	{method: http.MethodGet, path: "/api/v1/repositories/*name", h: (*Server).getRepositoryOrTags,
		alsoServes: []string{"/api/v1/repositories/{name}/tags"}},
	{method: http.MethodPatch, path: "/api/v1/repositories/*name", h: (*Server).patchRepository},
	{method: http.MethodDelete, path: "/api/v1/repositories/*name", h: (*Server).deleteRepositoryOrRef,
		alsoServes: []string{"/api/v1/repositories/{name}/tags/{tag}", "/api/v1/repositories/{name}/manifests/{digest}"}},
	{method: http.MethodGet, path: "/api/v1/images", h: (*Server).listImages},

	{method: http.MethodGet, path: "/api/v1/projects/:project/robots", h: (*Server).listRobots},
	{method: http.MethodPost, path: "/api/v1/projects/:project/robots", h: (*Server).createRobot},
	{method: http.MethodDelete, path: "/api/v1/projects/:project/robots/:robot", h: (*Server).deleteRobot},

	{method: http.MethodGet, path: "/api/v1/cluster", h: (*Server).getCluster},
	{method: http.MethodDelete, path: "/api/v1/cluster/nodes/:node", h: (*Server).deleteClusterNode},

	{method: http.MethodGet, path: "/api/v1/audit", h: (*Server).listAudit},
	{method: http.MethodGet, path: "/api/v1/backup/snapshot", h: (*Server).getBackupSnapshot},
	{method: http.MethodGet, path: "/api/v1/backup/blobs/:digest", h: (*Server).getBackupBlob},

	{method: http.MethodGet, path: "/api/v1/workspaces/:workspace/trash", h: (*Server).listTrash},
	{method: http.MethodPost, path: "/api/v1/workspaces/:workspace/trash/restore", h: (*Server).restoreTrash},
	{method: http.MethodPost, path: "/api/v1/gc", h: (*Server).startGC},
	{method: http.MethodGet, path: "/api/v1/gc", h: (*Server).listGC},
	{method: http.MethodGet, path: "/api/v1/gc/:id", h: (*Server).getGC},
	{method: http.MethodPost, path: "/api/v1/fsck", h: (*Server).fsck},
}

// registerManagement adds the /api/v1/ routes to r.
func (s *Server) registerManagement(r *httprouter.Router) {
	for _, rt := range mgmtRoutes {
		r.Handle(rt.method, rt.path, s.mgmt(rt))
	}
}

// mgmt wraps a management handler: it authenticates the caller (anonymous is
// 401 with the Bearer challenge of the token endpoint), runs the handler and
// answers its error through the error table.
func (s *Server) mgmt(rt mgmtRoute) httprouter.Handle {
	return func(w http.ResponseWriter, r *http.Request, ps httprouter.Params) {
		w.Header().Set("Cache-Control", "no-store")
		var p *Principal
		if !rt.public {
			var err error
			p, err = s.authenticate(r)
			if err == nil && (p == nil || p.Kind == Anonymous) {
				err = s.needLogin("")
			}
			if err != nil {
				s.writeError(w, r, err)
				return
			}
		}
		if err := rt.h(s, w, r, p, ps); err != nil {
			s.writeError(w, r, mgmtError(err))
		}
	}
}

// mgmtErrorTable maps the tenancy errors of meta commands and reads to codes.
// The client's message is meta's own text from the sentinel on, without the
// "meta: " prefix ("project unknown: web", "conflict: project web still owns
// workspaces [app]; delete them first"): meta writes those texts for clients.
var mgmtErrorTable = []struct {
	target error
	code   ErrorCode
	status int
}{
	{meta.ErrUserUnknown, CodeNotFound, http.StatusNotFound},
	{meta.ErrProjectUnknown, CodeNotFound, http.StatusNotFound},
	{meta.ErrWorkspaceUnknown, CodeNotFound, http.StatusNotFound},
	{meta.ErrRobotUnknown, CodeNotFound, http.StatusNotFound},
	{meta.ErrMemberUnknown, CodeNotFound, http.StatusNotFound},
	{meta.ErrExists, CodeConflict, http.StatusConflict},
	{meta.ErrConflict, CodeConflict, http.StatusConflict},
	{meta.ErrInvalid, CodeInvalid, http.StatusBadRequest},
}

// mgmtError turns the tenancy sentinels into their answers; every other error
// goes to the server's error table unchanged.
func mgmtError(err error) error {
	var ae *apiError
	if errors.As(err, &ae) {
		return err
	}
	for _, m := range mgmtErrorTable {
		if !errors.Is(err, m.target) {
			continue
		}
		msg := err.Error()
		if i := strings.Index(msg, m.target.Error()); i >= 0 {
			msg = strings.TrimPrefix(msg[i:], "meta: ")
		}
		return newError(m.code, m.status, "%s", msg).withCause(err)
	}
	return err
}

// Helpers that build errors in the shapes of the table above, so that a hidden
// object is answered exactly like an absent one.
func mgmtProjectUnknown(name string) error {
	return fmt.Errorf("%w: %s", meta.ErrProjectUnknown, name)
}

func mgmtWorkspaceUnknown(name string) error {
	return fmt.Errorf("%w: %s", meta.ErrWorkspaceUnknown, name)
}

func mgmtUserUnknown(name string) error { return fmt.Errorf("%w: %s", meta.ErrUserUnknown, name) }

func mgmtDenied(format string, args ...any) error {
	return newError(CodeDenied, http.StatusForbidden, format, args...)
}

func mgmtInvalid(format string, args ...any) error {
	return newError(CodeInvalid, http.StatusBadRequest, format, args...)
}

// Access rules of the management API. Cloud admins may do everything.

// projectRole is p's role in project ("" for none; robots have none).
func projectRole(p *Principal, project string) meta.Role {
	if p == nil || p.Kind != UserPrincipal {
		return ""
	}
	return p.Roles[project]
}

// seesProject: cloud admins and the project's members.
func seesProject(p *Principal, project string) bool {
	return p.CloudAdmin || projectRole(p, project) != ""
}

// administersProject: cloud admins and the project's project-admins.
func administersProject(p *Principal, project string) bool {
	return p.CloudAdmin || projectRole(p, project) == meta.RoleProjectAdmin
}

// editsProject: who may edit descriptions in a project (project-admin, developer).
func editsProject(p *Principal, project string) bool {
	role := projectRole(p, project)
	return p.CloudAdmin || role == meta.RoleProjectAdmin || role == meta.RoleDeveloper
}

// ownsWorkspace reports whether ws is one of p's own: in a project p is a member
// of, or, for a robot, one it was given.
func ownsWorkspace(p *Principal, ws *meta.Workspace) bool {
	if projectRole(p, ws.Project) != "" {
		return true
	}
	return p.Kind == RobotPrincipal && p.Robot != nil && p.Robot.Project == ws.Project &&
		slices.Contains(p.Robot.Workspaces, ws.Name)
}

// seesWorkspace: cloud admins, the owning project's members, and whoever the
// authorization policy lets pull from it (other projects' members for a public
// workspace, a robot for its workspaces).
func seesWorkspace(p *Principal, ws *meta.Workspace) bool {
	return p.CloudAdmin || projectRole(p, ws.Project) != "" || p.Can(ws, ActionPull)
}

// visibleWorkspace returns the workspace if p may see it, else the same error
// as for a workspace that does not exist.
func (s *Server) visibleWorkspace(p *Principal, name string) (*meta.Workspace, error) {
	ws, err := meta.GetWorkspace(s.meta, name)
	if err != nil {
		return nil, err
	}
	if !seesWorkspace(p, ws) {
		return nil, mgmtWorkspaceUnknown(name)
	}
	return ws, nil
}

// visibleProject returns the project if p may see it, else the same error as for
// a project that does not exist.
func (s *Server) visibleProject(p *Principal, name string) (*meta.Project, error) {
	if !seesProject(p, name) {
		return nil, mgmtProjectUnknown(name)
	}
	return meta.GetProject(s.meta, name)
}

// mgmtMaxBodyBytes bounds a management request body.
const mgmtMaxBodyBytes = 64 << 10

// decodeMgmtBody reads a JSON object into v. Unknown fields are refused, so a typo or
// a field the endpoint does not let anyone set is a 400, not silently ignored.
func decodeMgmtBody(w http.ResponseWriter, r *http.Request, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, mgmtMaxBodyBytes))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return newError(CodeInvalid, http.StatusRequestEntityTooLarge, "request body is over %d bytes", mgmtMaxBodyBytes)
		}
		return mgmtInvalid("request body: %v", err)
	}
	if dec.More() {
		return mgmtInvalid("request body: one JSON object expected")
	}
	return nil
}

// mgmtReply sends v as JSON with status.
func mgmtReply(w http.ResponseWriter, r *http.Request, status int, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	b = append(b, '\n')
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("X-Content-Type-Options", "nosniff")
	setContentLength(w, int64(len(b)))
	w.WriteHeader(status)
	if r.Method != http.MethodHead {
		_, _ = w.Write(b)
	}
	return nil
}

// mgmtNoContent answers 204.
func mgmtNoContent(w http.ResponseWriter) error {
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// mgmtList is the shape of every list answer: {"items": [...]} and, for paged lists,
// "next": the value of last for the next page.
type mgmtList[T any] struct {
	Items []T    `json:"items"`
	Next  string `json:"next,omitempty"`
}

func mgmtItems[T any](xs []T) mgmtList[T] {
	if xs == nil {
		xs = []T{}
	}
	return mgmtList[T]{Items: xs}
}

// Paging of the management lists: n defaults to 100 and is clamped to 1000.
const (
	mgmtDefaultPage = 100
	mgmtMaxPage     = 1000
)

func mgmtPageSize(r *http.Request) (int, error) {
	v := r.URL.Query().Get("n")
	if v == "" {
		return mgmtDefaultPage, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		return 0, mgmtInvalid("n must be a positive integer, got %q", v)
	}
	return min(n, mgmtMaxPage), nil
}
