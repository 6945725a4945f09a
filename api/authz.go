package api

import (
	"errors"
	"net/http"
	"slices"
	"strings"

	"github.com/berth-registry/berth/meta"
)

// Authorization: one point decides every request from (principal, repository,
// action), and every resource a request touches goes through it: the path's
// repository (authorize), a mount's from, catalog rows and blob owners (canPull).
//
// The policy (Principal.Can):
//
//	cloud admin                        everything, everywhere
//	member: project-admin, developer   pull, push, delete in the project's workspaces
//	member: guest                      pull in the project's workspaces
//	any other user                     pull in public workspaces
//	robot                              its Actions in its Workspaces (its own project's),
//	                                   while not disabled nor expired
//	anonymous                          pull in public workspaces, when AnonymousPull is on
//
// A repository is "<workspace>/<path>"; a name without a workspace part, or in a
// workspace that does not exist, is treated like a private workspace of another
// project (nothing but the cloud admin may touch it), so its existence is not
// revealed. A cloud admin pushing there is told that the workspace must be
// created first.
//
// How a refusal is answered (Distribution's token-auth behaviour):
//
//	anonymous, no token                     401 UNAUTHORIZED, challenge with scope
//	token lacking a scope the caller has    401, challenge error="insufficient_scope" with the
//	                                        scope: docker, containerd and crane fetch a new token
//	anonymous token lacking the scope       the same (the client may then log in)
//	authenticated, not allowed              403 DENIED, whatever the action: the same answer for
//	                                        a private workspace of another project, a missing
//	                                        workspace and a repository the caller may not push to
var errDenied = newError(CodeDenied, http.StatusForbidden, "requested access to the resource is denied")

// Can is the policy: may p do action on repositories of workspace ws? ws is nil
// for a workspace that does not exist (only a cloud admin may act there). An
// anonymous principal can do nothing here: whether anonymous callers may pull
// public workspaces is the server's configuration (see Server.can). Robots are
// checked for Disabled; their expiry was checked when they authenticated.
func (p *Principal) Can(ws *meta.Workspace, action Action) bool {
	if p == nil {
		return false
	}
	switch p.Kind {
	case UserPrincipal:
		if p.CloudAdmin {
			return true
		}
		if ws == nil {
			return false
		}
		switch p.Roles[ws.Project] {
		case meta.RoleProjectAdmin, meta.RoleDeveloper:
			return action == ActionPull || action == ActionPush || action == ActionDelete
		case meta.RoleGuest:
			return action == ActionPull
		}
		return action == ActionPull && ws.Visibility == meta.Public
	case RobotPrincipal:
		rb := p.Robot
		return rb != nil && ws != nil && !rb.Disabled && rb.Project == ws.Project &&
			slices.Contains(rb.Workspaces, ws.Name) && slices.Contains(rb.Actions, string(action))
	}
	return false
}

// can is Can with the server's anonymous rule.
func (s *Server) can(p *Principal, ws *meta.Workspace, action Action) bool {
	if p.Kind == Anonymous {
		return s.cfg.AnonymousPull && ws != nil && ws.Visibility == meta.Public && action == ActionPull
	}
	return p.Can(ws, action)
}

// repoWorkspace returns the workspace of repo, or nil if the name has no
// workspace part or the workspace does not exist.
func (s *Server) repoWorkspace(repo string) (*meta.Workspace, error) {
	name, _, ok := strings.Cut(repo, "/")
	if !ok {
		return nil, nil
	}
	ws, err := meta.GetWorkspace(s.meta, name)
	if errors.Is(err, meta.ErrWorkspaceUnknown) {
		return nil, nil
	}
	return ws, err
}

// workspaceCache looks each workspace up once during one request.
type workspaceCache struct {
	s *Server
	m map[string]*meta.Workspace
}

func newWorkspaceCache(s *Server) *workspaceCache {
	return &workspaceCache{s: s, m: map[string]*meta.Workspace{}}
}

func (c *workspaceCache) forRepo(repo string) (*meta.Workspace, error) {
	name, _, ok := strings.Cut(repo, "/")
	if !ok {
		return nil, nil
	}
	if ws, ok := c.m[name]; ok {
		return ws, nil
	}
	ws, err := c.s.repoWorkspace(repo)
	if err != nil {
		return nil, err
	}
	c.m[name] = ws
	return ws, nil
}

// authorize is the one authorization point for repositories: it returns nil if
// the caller of r may do action on repo, else the refusal to answer (see the
// table above). repo "" asks for the registry itself (GET /v2/): any valid
// identity, a token (an anonymous one too), never a request without
// credentials. With a token, what is granted
// is the token's access claim, checked without reading the metadata.
func (s *Server) authorize(r *http.Request, repo string, action Action) error {
	info, err := s.requestAuth(r)
	if err != nil {
		return err
	}
	if repo == "" {
		// Always a challenge without credentials, even with AnonymousPull on:
		// skopeo, podman and docker decide from this answer whether to log in
		// at all (a 200 makes "login" succeed with any password and pushes fail
		// unauthenticated), as Distribution, Harbor and Docker Hub answer 401.
		// Anonymous clients get an anonymous token, which carries public pulls.
		if info.token != nil || info.principal.Kind != Anonymous {
			return nil
		}
		return s.needLogin("")
	}
	scope := "repository:" + repo + ":" + string(action)
	if info.token != nil {
		if info.token.allows("repository", repo, string(action)) {
			if action == ActionPush {
				return s.checkPushTarget(repo)
			}
			return nil
		}
		p, err := s.principalOf(info)
		if err != nil {
			return err
		}
		ws, err := s.repoWorkspace(repo)
		if err != nil {
			return err
		}
		if p.Kind == Anonymous || s.can(p, ws, action) {
			return s.insufficientScope(scope)
		}
		return errDenied
	}
	p := info.principal
	ws, err := s.repoWorkspace(repo)
	if err != nil {
		return err
	}
	if s.can(p, ws, action) {
		if action == ActionPush && ws == nil {
			return s.checkPushTarget(repo)
		}
		return nil
	}
	if p.Kind == Anonymous {
		return s.needLogin(scope)
	}
	return errDenied
}

// checkPushTarget refuses a push into a workspace that does not exist (they are
// created, never implied) with a message saying so. Only callers allowed to push
// there, that is cloud admins, get this far for a missing workspace.
func (s *Server) checkPushTarget(repo string) error {
	name, _, ok := strings.Cut(repo, "/")
	if !ok {
		return newError(CodeNameInvalid, http.StatusBadRequest, "repository names are <workspace>/<path>")
	}
	_, err := meta.GetWorkspace(s.meta, name)
	if errors.Is(err, meta.ErrWorkspaceUnknown) {
		return newError(CodeNameUnknown, http.StatusNotFound, "workspace %s does not exist; create it first", name)
	}
	return err
}

// authorizeCatalog lets the caller list the catalog (rows are filtered by
// canPull): any user or robot, anonymous callers when AnonymousPull is on; with
// a token, it must carry registry:catalog:*.
func (s *Server) authorizeCatalog(r *http.Request) error {
	const scope = "registry:catalog:*"
	info, err := s.requestAuth(r)
	if err != nil {
		return err
	}
	if info.token != nil {
		if !info.token.allows("registry", "catalog", "*") {
			return s.insufficientScope(scope)
		}
		_, err := s.principalOf(info)
		return err
	}
	if info.principal.Kind == Anonymous && !s.cfg.AnonymousPull {
		return s.needLogin(scope)
	}
	return nil
}

// canPull reports whether the caller of r may pull repo: the token grants it, or
// the caller's current rights do. It answers listings and secondary resources
// (catalog rows, a mount's from, the repositories holding a blob); a false is
// never an error to the client, the row or the mount is just left out.
func (s *Server) canPull(r *http.Request, repo string) bool {
	return s.pullFilter(r)(repo)
}

// pullFilter returns canPull for many repositories of one request, deciding each
// workspace once.
func (s *Server) pullFilter(r *http.Request) func(repo string) bool {
	info, err := s.requestAuth(r)
	if err != nil {
		return func(string) bool { return false }
	}
	var p *Principal
	decided := map[string]bool{}
	return func(repo string) bool {
		if info.token != nil && info.token.allows("repository", repo, string(ActionPull)) {
			return true
		}
		if p == nil {
			var err error
			if p, err = s.principalOf(info); err != nil || p == nil {
				p = &Principal{Kind: Anonymous}
			}
		}
		name, _, ok := strings.Cut(repo, "/")
		if !ok {
			return p.Kind == UserPrincipal && p.CloudAdmin
		}
		if v, ok := decided[name]; ok {
			return v
		}
		ws, err := s.repoWorkspace(repo)
		if err != nil {
			return false // not cached: a storage error must not stick
		}
		v := s.can(p, ws, ActionPull)
		decided[name] = v
		return v
	}
}

// listPullable returns up to n repositories after last that the caller may pull,
// and whether more follow. It filters while paging, so a page is full whenever
// enough rows exist, and skips the rest of a workspace it found denied.
func (s *Server) listPullable(r *http.Request, last string, n int) ([]string, bool, error) {
	allow := s.pullFilter(r)
	out := make([]string, 0, min(n, 1000))
	cursor := last
	batch := min(max(n+1, 100), 1000)
	for {
		names, more, err := meta.ListRepositories(s.meta, cursor, batch)
		if err != nil {
			return nil, false, err
		}
		for _, name := range names {
			if !allow(name) {
				continue
			}
			if len(out) == n {
				return out, true, nil
			}
			out = append(out, name)
		}
		if !more || len(names) == 0 {
			return out, false, nil
		}
		cursor = names[len(names)-1]
		if ws, _, ok := strings.Cut(cursor, "/"); ok && !allow(cursor) {
			// Every "<ws>/..." name sorts before "<ws>/\x7f": skip the rest of
			// the denied workspace in one seek.
			cursor = ws + "/\x7f"
		}
	}
}

// canPullBlobOwner reports whether the caller may pull some repository the blob
// is linked into: a mount without from may only link a blob the caller could
// read anyway.
func (s *Server) canPullBlobOwner(r *http.Request, d meta.Digest) (bool, error) {
	repos, err := meta.ReposWithBlob(s.meta, d)
	if err != nil {
		return false, err
	}
	allow := s.pullFilter(r)
	for _, repo := range repos {
		if allow(repo) {
			return true, nil
		}
	}
	return false, nil
}
