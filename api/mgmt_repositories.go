package api

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/julienschmidt/httprouter"

	"github.com/berth-registry/berth/meta"
)

// repositoryJSON is a repository (an image, in the console's words). Own is its
// workspace's Own (see workspaceJSON).
type repositoryJSON struct {
	Name        string          `json:"name"`
	Workspace   string          `json:"workspace"`
	Project     string          `json:"project"`
	Visibility  meta.Visibility `json:"visibility"`
	Description string          `json:"description"`
	Created     time.Time       `json:"created"`
	Tags        int             `json:"tags"`
	Size        int64           `json:"size"`   // distinct bytes of its tagged images
	Pushed      time.Time       `json:"pushed"` // the latest tag push
	Own         bool            `json:"own"`
}

func (s *Server) repositoryView(p *Principal, ws *meta.Workspace, name string) (repositoryJSON, error) {
	repo, err := meta.GetRepository(s.meta, name)
	if err != nil {
		return repositoryJSON{}, err
	}
	tags, _, err := meta.ListTags(s.meta, name, "", 0)
	if err != nil {
		return repositoryJSON{}, err
	}
	out := repositoryJSON{Name: name, Workspace: ws.Name, Project: ws.Project, Visibility: ws.Visibility,
		Description: repo.Description, Created: repo.Created, Tags: len(tags), Own: ownsWorkspace(p, ws)}
	seen := map[meta.Digest]bool{}
	for _, tag := range tags {
		t, err := meta.GetTag(s.meta, name, tag)
		if err != nil {
			continue // deleted since it was listed
		}
		if t.Updated.After(out.Pushed) {
			out.Pushed = t.Updated
		}
		info, _, err := meta.GetManifest(s.meta, name, t.Digest)
		if err != nil {
			continue
		}
		size, err := s.imageSizeSeen(name, info, seen)
		if err != nil {
			return repositoryJSON{}, err
		}
		out.Size += size
	}
	return out, nil
}

// mgmtMayPull is the repository-level policy's answer for pulling from ws.
func mgmtMayPull(p *Principal, ws *meta.Workspace) bool {
	return p.CloudAdmin || p.Can(ws, ActionPull)
}

// scanRepositories calls fn with the names of the repositories in workspace ws
// that sort after after, in name order, until fn returns false or an error.
// Names are read a batch at a time; no lock is held across the walk.
func (s *Server) scanRepositories(ws, after string, fn func(name string) (bool, error)) error {
	prefix := ws + "/"
	last := prefix // repository names never end with '/': every name of ws sorts after it
	if strings.HasPrefix(after, prefix) {
		last = after
	}
	for {
		names, more, err := meta.ListRepositories(s.meta, last, 256)
		if err != nil {
			return err
		}
		for _, n := range names {
			if !strings.HasPrefix(n, prefix) {
				return nil
			}
			if ok, err := fn(n); err != nil || !ok {
				return err
			}
		}
		if !more || len(names) == 0 {
			return nil
		}
		last = names[len(names)-1]
	}
}

// countRepositories returns how many repositories workspace ws holds.
func (s *Server) countRepositories(ws string) (int, error) {
	n := 0
	err := s.scanRepositories(ws, "", func(string) (bool, error) { n++; return true, nil })
	return n, err
}

// pageRepositories returns up to n repositories of the workspaces wss whose name
// contains q, after last, in name order, and the last name returned when more
// follow. The workspaces' repositories are read workspace by workspace in the
// order of "<ws>/", which is the order of the names they hold, so a page may
// span workspaces and last stays a plain repository name.
func (s *Server) pageRepositories(p *Principal, wss []meta.Workspace, q, last string, n int) ([]repositoryJSON, string, error) {
	slices.SortFunc(wss, func(a, b meta.Workspace) int { return strings.Compare(a.Name+"/", b.Name+"/") })
	q = strings.ToLower(q)
	out := []repositoryJSON{}
	more := false
	for i := range wss {
		ws := &wss[i]
		prefix := ws.Name + "/"
		if last != "" && last >= prefix && !strings.HasPrefix(last, prefix) {
			continue // every name of ws sorts before last
		}
		err := s.scanRepositories(ws.Name, last, func(name string) (bool, error) {
			if q != "" && !strings.Contains(name, q) {
				return true, nil
			}
			if len(out) == n {
				more = true
				return false, nil
			}
			v, err := s.repositoryView(p, ws, name)
			if errors.Is(err, meta.ErrNameUnknown) {
				return true, nil // deleted since it was listed
			}
			if err != nil {
				return false, err
			}
			out = append(out, v)
			return true, nil
		})
		if err != nil {
			return nil, "", err
		}
		if more {
			return out, out[len(out)-1].Name, nil
		}
	}
	return out, "", nil
}

// listRepositories: GET /api/v1/workspaces/:workspace/repositories?q=&n=&last=,
// for callers who may pull from the workspace.
func (s *Server) listRepositories(w http.ResponseWriter, r *http.Request, p *Principal, ps httprouter.Params) error {
	ws, err := s.visibleWorkspace(p, ps.ByName("workspace"))
	if err != nil {
		return err
	}
	if !mgmtMayPull(p, ws) {
		return mgmtWorkspaceUnknown(ws.Name)
	}
	n, err := mgmtPageSize(r)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	repos, next, err := s.pageRepositories(p, []meta.Workspace{*ws}, q.Get("q"), q.Get("last"), n)
	if err != nil {
		return err
	}
	return mgmtReply(w, r, http.StatusOK, mgmtList[repositoryJSON]{Items: repos, Next: next})
}

// listImages: GET /api/v1/images?scope=own|shared|all&q=&n=&last=. Own images
// are in the caller's projects' workspaces (public or private); shared images in
// other projects' public workspaces; all is both (every image for a cloud admin).
func (s *Server) listImages(w http.ResponseWriter, r *http.Request, p *Principal, _ httprouter.Params) error {
	scope, err := mgmtListScope(r, listOwn)
	if err != nil {
		return err
	}
	n, err := mgmtPageSize(r)
	if err != nil {
		return err
	}
	all, err := meta.ListWorkspaces(s.meta, "")
	if err != nil {
		return err
	}
	wss := all[:0]
	for i := range all {
		if inListScope(p, &all[i], scope) && mgmtMayPull(p, &all[i]) {
			wss = append(wss, all[i])
		}
	}
	q := r.URL.Query()
	repos, next, err := s.pageRepositories(p, wss, q.Get("q"), q.Get("last"), n)
	if err != nil {
		return err
	}
	return mgmtReply(w, r, http.StatusOK, mgmtList[repositoryJSON]{Items: repos, Next: next})
}

// visibleRepository checks that name is a repository p may pull from and returns
// its workspace; a repository p may not pull from is answered as unknown.
func (s *Server) visibleRepository(p *Principal, name string) (*meta.Workspace, error) {
	if !validRepoName(name) {
		return nil, errNameInvalid
	}
	unknown := fmt.Errorf("%w: %s", meta.ErrNameUnknown, name)
	ws, err := meta.GetWorkspace(s.meta, meta.WorkspaceOf(name))
	if errors.Is(err, meta.ErrWorkspaceUnknown) {
		return nil, unknown
	}
	if err != nil {
		return nil, err
	}
	if !mgmtMayPull(p, ws) {
		return nil, unknown
	}
	if _, err := meta.GetRepository(s.meta, name); err != nil {
		return nil, err
	}
	return ws, nil
}

// splitTagsPath reads the catch-all of /api/v1/repositories/*name: "<repo>" or
// "<repo>/tags". A repository has at least two components, so "<ws>/tags" is
// always a repository; "<a>/<b>/tags" is the tag list of <a>/<b> unless only the
// repository "<a>/<b>/tags" exists (the ambiguity /v2/'s "<name>/tags/list" has
// too, resolved the same way: the suffix wins when its repository exists).
func (s *Server) splitTagsPath(raw string) (repo string, tags bool) {
	name := strings.TrimPrefix(raw, "/")
	prefix, ok := strings.CutSuffix(name, "/tags")
	if !ok || !strings.Contains(prefix, "/") {
		return name, false
	}
	if _, err := meta.GetRepository(s.meta, prefix); err != nil {
		if _, err := meta.GetRepository(s.meta, name); err == nil {
			return name, false
		}
	}
	return prefix, true
}

// getRepositoryOrTags serves GET /api/v1/repositories/{name} and
// GET /api/v1/repositories/{name}/tags.
func (s *Server) getRepositoryOrTags(w http.ResponseWriter, r *http.Request, p *Principal, ps httprouter.Params) error {
	name, tags := s.splitTagsPath(ps.ByName("name"))
	ws, err := s.visibleRepository(p, name)
	if err != nil {
		return err
	}
	if tags {
		return s.listTagDetails(w, r, name)
	}
	v, err := s.repositoryView(p, ws, name)
	if err != nil {
		return err
	}
	return mgmtReply(w, r, http.StatusOK, v)
}

type patchRepositoryRequest struct {
	Description *string `json:"description"`
}

// patchRepository sets a repository's description: developers and admins of its
// project.
func (s *Server) patchRepository(w http.ResponseWriter, r *http.Request, p *Principal, ps httprouter.Params) error {
	name := strings.TrimPrefix(ps.ByName("name"), "/")
	ws, err := s.visibleRepository(p, name)
	if err != nil {
		return err
	}
	if !editsProject(p, ws.Project) {
		return mgmtDenied("only the developers and admins of project %s edit %s", ws.Project, name)
	}
	var req patchRepositoryRequest
	if err := decodeMgmtBody(w, r, &req); err != nil {
		return err
	}
	if req.Description != nil {
		if err := s.propose.Propose(r.Context(), &meta.SetRepoDescription{
			Repo: name, Description: *req.Description, Time: s.cfg.Clock().UTC(),
		}); err != nil {
			return err
		}
	}
	v, err := s.repositoryView(p, ws, name)
	if err != nil {
		return err
	}
	return mgmtReply(w, r, http.StatusOK, v)
}

// tagJSON is one tag with what it points at. Size is the bytes a pull of it
// transfers at most: the manifest, its config and layers (for an index, its
// child manifests and theirs), each distinct blob counted once.
type tagJSON struct {
	Name         string      `json:"name"`
	Digest       meta.Digest `json:"digest"`
	MediaType    string      `json:"mediaType"`
	ArtifactType string      `json:"artifactType,omitempty"`
	Size         int64       `json:"size"`
	Pushed       time.Time   `json:"pushed"`
	PushedBy     string      `json:"pushedBy,omitempty"`
}

// listTagDetails answers the tags of repo, paged by n and last.
func (s *Server) listTagDetails(w http.ResponseWriter, r *http.Request, repo string) error {
	n, err := mgmtPageSize(r)
	if err != nil {
		return err
	}
	names, more, err := meta.ListTags(s.meta, repo, r.URL.Query().Get("last"), n)
	if err != nil {
		return err
	}
	out := make([]tagJSON, 0, len(names))
	for _, name := range names {
		t, err := meta.GetTag(s.meta, repo, name)
		if errors.Is(err, meta.ErrManifestUnknown) {
			continue // deleted since it was listed
		}
		if err != nil {
			return err
		}
		info, _, err := meta.GetManifest(s.meta, repo, t.Digest)
		if errors.Is(err, meta.ErrManifestUnknown) {
			continue
		}
		if err != nil {
			return err
		}
		size, err := s.imageSize(repo, info)
		if err != nil {
			return err
		}
		out = append(out, tagJSON{Name: name, Digest: t.Digest, MediaType: info.MediaType,
			ArtifactType: info.ArtifactType, Size: size, Pushed: t.Updated, PushedBy: t.PushedBy})
	}
	res := mgmtList[tagJSON]{Items: out}
	if more && len(names) > 0 {
		res.Next = names[len(names)-1]
	}
	return mgmtReply(w, r, http.StatusOK, res)
}

// imageSize sums the manifest's size, its blobs' and, for an index, its child
// manifests' and their blobs', each distinct digest once. A blob or child that
// is not recorded (being collected) counts nothing.
func (s *Server) imageSize(repo string, info *meta.ManifestInfo) (int64, error) {
	return s.imageSizeSeen(repo, info, map[meta.Digest]bool{})
}

// imageSizeSeen is imageSize counting nothing already in seen, which it
// extends: the distinct bytes of several images of one repository.
func (s *Server) imageSizeSeen(repo string, info *meta.ManifestInfo, seen map[meta.Digest]bool) (int64, error) {
	var total int64
	var add func(m *meta.ManifestInfo, depth int) error
	add = func(m *meta.ManifestInfo, depth int) error {
		if seen[m.Digest] {
			return nil
		}
		seen[m.Digest] = true
		total += m.Size
		for _, d := range m.Blobs {
			if seen[d] {
				continue
			}
			seen[d] = true
			b, err := meta.GetBlob(s.meta, d)
			if errors.Is(err, meta.ErrBlobUnknown) {
				continue
			}
			if err != nil {
				return err
			}
			total += b.Size
		}
		if depth > 0 {
			return nil // an index of indexes is followed one level deep
		}
		for _, d := range m.Manifests {
			child, _, err := meta.GetManifest(s.meta, repo, d)
			if errors.Is(err, meta.ErrManifestUnknown) {
				continue
			}
			if err != nil {
				return err
			}
			if err := add(child, depth+1); err != nil {
				return err
			}
		}
		return nil
	}
	return total, add(info, 0)
}
