package api

import (
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/julienschmidt/httprouter"

	"github.com/berth-registry/berth/meta"
)

// Soft delete and the trash in the management API. Deleting a repository, a
// manifest, a tag (DELETE /api/v1/repositories/...) or a workspace moves it to
// its workspace's trash (meta/trash.go): it is hidden at once from every API
// on every node, and whoever may delete in the workspace lists the trash and
// restores from it until garbage collection reclaims the item (after the
// deleted-item retention). Workspace items are the project admins', as
// deleting a workspace is.

// callerName names the caller of an authorized /v2/ request for the trash
// ("" for an anonymous one, which cannot delete anyway).
func (s *Server) callerName(r *http.Request) string {
	info, err := s.requestAuth(r)
	if err != nil {
		return ""
	}
	if info.token != nil {
		return info.token.subject
	}
	if info.principal != nil {
		return info.principal.Name
	}
	return ""
}

// mayDelete reports whether p may delete (and restore) in ws.
func mayDelete(p *Principal, ws *meta.Workspace) bool {
	return p.CloudAdmin || p.Can(ws, ActionDelete)
}

// trashWorkspace returns the workspace whose trash p asks for: a live one, or
// one that is itself in the trash. A workspace p may not see is answered as
// unknown; one p sees without delete rights is 403.
func (s *Server) trashWorkspace(p *Principal, name string) (*meta.Workspace, error) {
	ws, err := meta.GetWorkspace(s.meta, name)
	if errors.Is(err, meta.ErrWorkspaceUnknown) {
		ws, err = meta.DeletedWorkspace(s.meta, name)
	}
	if err != nil {
		return nil, err
	}
	if !seesWorkspace(p, ws) {
		return nil, mgmtWorkspaceUnknown(name)
	}
	if !mayDelete(p, ws) {
		return nil, mgmtDenied("only those who may delete in workspace %s see and restore its trash", name)
	}
	return ws, nil
}

// listTrash: GET /api/v1/workspaces/:workspace/trash, newest delete first.
func (s *Server) listTrash(w http.ResponseWriter, r *http.Request, p *Principal, ps httprouter.Params) error {
	ws, err := s.trashWorkspace(p, ps.ByName("workspace"))
	if err != nil {
		return err
	}
	items, err := meta.ListTrash(s.meta, ws.Name)
	if err != nil {
		return err
	}
	return mgmtReply(w, r, http.StatusOK, mgmtItems(items))
}

type restoreRequest struct {
	ID string `json:"id"`
}

// restoreTrash: POST /api/v1/workspaces/:workspace/trash/restore {"id": ...}.
func (s *Server) restoreTrash(w http.ResponseWriter, r *http.Request, p *Principal, ps httprouter.Params) error {
	ws, err := s.trashWorkspace(p, ps.ByName("workspace"))
	if err != nil {
		return err
	}
	var req restoreRequest
	if err := decodeMgmtBody(w, r, &req); err != nil {
		return err
	}
	it, err := meta.GetTrashItem(s.meta, ws.Name, req.ID)
	if err != nil {
		return trashError(err)
	}
	if it.Kind == meta.TrashWorkspace && !administersProject(p, ws.Project) {
		return mgmtDenied("only the admins of project %s restore its workspaces", ws.Project)
	}
	err = s.propose.Propose(r.Context(), &meta.Restore{Workspace: ws.Name, ID: req.ID, By: p.Name, Time: s.cfg.Clock().UTC()})
	if err != nil {
		return trashError(err)
	}
	return mgmtReply(w, r, http.StatusOK, it)
}

// trashError answers an item that is not (or no longer) in the trash as 404.
func trashError(err error) error {
	if errors.Is(err, meta.ErrTrashUnknown) {
		msg := err.Error()
		if i := strings.Index(msg, meta.ErrTrashUnknown.Error()); i >= 0 {
			msg = strings.TrimPrefix(msg[i:], "meta: ")
		}
		return newError(CodeNotFound, http.StatusNotFound, "%s", msg).withCause(err)
	}
	return err
}

// splitDeletePath reads the catch-all of DELETE /api/v1/repositories/*name:
// "<repo>", "<repo>/tags/<tag>" or "<repo>/manifests/<digest>". A suffix form
// wins when its repository exists (as for the tags list).
func (s *Server) splitDeletePath(raw string) (repo, tag string, d meta.Digest) {
	name := strings.TrimPrefix(raw, "/")
	for _, sfx := range []string{"/tags/", "/manifests/"} {
		i := strings.LastIndex(name, sfx)
		if i <= 0 {
			continue
		}
		prefix, ref := name[:i], name[i+len(sfx):]
		if ref == "" || strings.Contains(ref, "/") || !strings.Contains(prefix, "/") {
			continue
		}
		if _, err := meta.GetRepository(s.meta, prefix); err != nil {
			continue
		}
		if sfx == "/tags/" {
			return prefix, ref, ""
		}
		return prefix, "", meta.Digest(ref)
	}
	return name, "", ""
}

// deleteRepositoryOrRef: DELETE /api/v1/repositories/{name} (the repository),
// .../{name}/tags/{tag} or .../{name}/manifests/{digest}, by whoever may delete
// in its workspace. It answers the trash item.
func (s *Server) deleteRepositoryOrRef(w http.ResponseWriter, r *http.Request, p *Principal, ps httprouter.Params) error {
	repo, tag, d := s.splitDeletePath(ps.ByName("name"))
	ws, err := s.visibleRepository(p, repo)
	if err != nil {
		return err
	}
	if !mayDelete(p, ws) {
		return mgmtDenied("you may not delete in workspace %s", ws.Name)
	}
	now := s.cfg.Clock().UTC()
	var cmd meta.Command
	var id string
	switch {
	case tag != "":
		if !validTag(tag) {
			return mgmtInvalid("invalid tag %q", tag)
		}
		cmd, id = &meta.DeleteTag{Repo: repo, Tag: tag, By: p.Name, Time: now}, meta.TagItemID(repo, tag)
	case d != "":
		pd, err := meta.ParseDigest(string(d))
		if err != nil {
			return mgmtInvalid("invalid digest %q", d)
		}
		cmd, id = &meta.DeleteManifest{Repo: repo, Digest: pd, By: p.Name, Time: now}, meta.ManifestItemID(repo, pd)
	default:
		cmd, id = &meta.DeleteRepository{Repo: repo, By: p.Name, Time: now}, meta.RepositoryItemID(repo)
	}
	if err := s.propose.Propose(r.Context(), cmd); err != nil {
		if errors.Is(err, meta.ErrManifestUnknown) {
			return newError(CodeNotFound, http.StatusNotFound, "%s", strings.TrimPrefix(err.Error(), "meta: ")).withCause(err)
		}
		return err
	}
	it, err := meta.GetTrashItem(s.meta, ws.Name, id)
	if err != nil {
		return fmt.Errorf("read the trash item %s: %w", id, err)
	}
	return mgmtReply(w, r, http.StatusOK, it)
}

// softDeleteWorkspace: DELETE /api/v1/workspaces/:workspace, by the project's
// admins. The workspace moves to the trash with every repository in it; its
// name stays taken until it is restored or reclaimed.
func (s *Server) softDeleteWorkspace(w http.ResponseWriter, r *http.Request, p *Principal, ps httprouter.Params) error {
	name := ps.ByName("workspace")
	ws, err := s.visibleWorkspace(p, name)
	if err != nil {
		return err
	}
	if !administersProject(p, ws.Project) {
		return mgmtDenied("only the admins of project %s delete its workspaces", ws.Project)
	}
	if err := s.propose.Propose(r.Context(), &meta.DeleteWorkspace{Name: name, By: p.Name, Time: s.cfg.Clock().UTC()}); err != nil {
		return err
	}
	return mgmtNoContent(w)
}
