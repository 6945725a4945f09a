package api

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"

	"github.com/berth-registry/berth/meta"
)

// maxPage bounds one page of tags/list and _catalog: a larger n is clamped, and
// a request without n gets at most this many with a Link to the next page.
const maxPage = 10000

// pageSize reads the n parameter: (n, true) for a page size, an error for a
// malformed one.
func pageSize(q url.Values) (int, error) {
	s := q.Get("n")
	if s == "" {
		return maxPage, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return 0, newError(CodePaginationNumberInvalid, http.StatusBadRequest, "n must be a non-negative integer, got %q", s)
	}
	return min(n, maxPage), nil
}

func writeJSON(w http.ResponseWriter, r *http.Request, contentType string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", contentType)
	setContentLength(w, int64(len(b)))
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write(b)
	}
	return nil
}

func setNextLink(w http.ResponseWriter, path string, n int, last string) {
	q := url.Values{"n": {strconv.Itoa(n)}, "last": {last}}
	w.Header().Set("Link", "<"+path+"?"+q.Encode()+`>; rel="next"`)
}

func (s *Server) getTags(w http.ResponseWriter, r *http.Request, rt v2Route) error {
	if err := s.authorize(r, rt.Repo, ActionPull); err != nil {
		return err
	}
	q := r.URL.Query()
	n, err := pageSize(q)
	if err != nil {
		return err
	}
	tags := []string{}
	more := false
	if n > 0 {
		err = s.linearized(r.Context(), func() (err error) {
			tags, more, err = meta.ListTags(s.meta, rt.Repo, q.Get("last"), n)
			return err
		})
	} else {
		_, err = meta.GetRepository(s.meta, rt.Repo)
	}
	if err != nil {
		return err
	}
	if tags == nil {
		tags = []string{}
	}
	if more {
		setNextLink(w, "/v2/"+rt.Repo+"/tags/list", n, tags[len(tags)-1])
	}
	return writeJSON(w, r, "application/json", struct {
		Name string   `json:"name"`
		Tags []string `json:"tags"`
	}{rt.Repo, tags})
}

func (s *Server) getCatalog(w http.ResponseWriter, r *http.Request, _ v2Route) error {
	if err := s.authorizeCatalog(r); err != nil {
		return err
	}
	q := r.URL.Query()
	n, err := pageSize(q)
	if err != nil {
		return err
	}
	repos := []string{}
	more := false
	if n > 0 {
		// Only what the caller may pull, filtered while paging.
		if repos, more, err = s.listPullable(r, q.Get("last"), n); err != nil {
			return err
		}
	}
	if repos == nil {
		repos = []string{}
	}
	if more {
		setNextLink(w, "/v2/_catalog", n, repos[len(repos)-1])
	}
	return writeJSON(w, r, "application/json", struct {
		Repositories []string `json:"repositories"`
	}{repos})
}

// getReferrers answers the referrers API: an OCI index of the manifests whose
// subject is the digest, filtered by artifactType when asked. An unknown subject
// has an empty list, never a 404.
func (s *Server) getReferrers(w http.ResponseWriter, r *http.Request, rt v2Route) error {
	if err := s.authorize(r, rt.Repo, ActionPull); err != nil {
		return err
	}
	at := r.URL.Query().Get("artifactType")
	refs, err := meta.ListReferrers(s.meta, rt.Repo, meta.Digest(rt.Ref), at)
	if err != nil {
		return err
	}
	if at != "" {
		w.Header().Set("OCI-Filters-Applied", "artifactType")
	}
	const indexType = "application/vnd.oci.image.index.v1+json"
	return writeJSON(w, r, indexType, struct {
		SchemaVersion int             `json:"schemaVersion"`
		MediaType     string          `json:"mediaType"`
		Manifests     []meta.Referrer `json:"manifests"`
	}{2, indexType, refs})
}
