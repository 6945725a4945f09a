package api

import (
	"net/http"

	"github.com/julienschmidt/httprouter"
)

// serveV2 parses the /v2/ path with our own parser (repository names contain
// slashes, which httprouter's catch-all cannot split) and dispatches on the route
// kind and method.
func (s *Server) serveV2(w http.ResponseWriter, r *http.Request, _ httprouter.Params) {
	rest := r.URL.Path[len("/v2"):]
	if rest == "" {
		rest = "/"
	}
	rt, err := parseV2Path(rest)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	var h func(http.ResponseWriter, *http.Request, v2Route) error
	switch rt.Kind {
	case routeBase:
		h = pick(r.Method, s.getBase, nil, nil, nil, nil)
	case routeCatalog:
		h = pick(r.Method, s.getCatalog, nil, nil, nil, nil)
	case routeTagsList:
		h = pick(r.Method, s.getTags, nil, nil, nil, nil)
	case routeReferrers:
		h = pick(r.Method, s.getReferrers, nil, nil, nil, nil)
	case routeManifest:
		h = pick(r.Method, s.getManifest, nil, s.putManifest, nil, s.deleteManifest)
	case routeBlob:
		h = pick(r.Method, s.getBlob, nil, nil, nil, s.deleteBlob)
	case routeUploadStart:
		h = pick(r.Method, nil, s.startUpload, nil, nil, nil)
	case routeUpload:
		if s.proxyUpload(w, r, rt) {
			return
		}
		h = pick(r.Method, s.uploadStatus, nil, s.finishUpload, s.patchUpload, s.cancelUpload)
	}
	if h == nil {
		s.writeError(w, r, errMethodNotAllowed)
		return
	}
	// Authenticate once; the handlers' authorize and canPull calls read it from
	// the request.
	info, err := s.authn(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	r = withAuth(r, info)
	if err := h(w, r, rt); err != nil {
		s.writeError(w, r, err)
	}
}

// pick returns the handler for method; GET handlers also serve HEAD (they check
// r.Method themselves to leave out the body).
func pick(method string, get, post, put, patch, del func(http.ResponseWriter, *http.Request, v2Route) error) func(http.ResponseWriter, *http.Request, v2Route) error {
	switch method {
	case http.MethodGet, http.MethodHead:
		return get
	case http.MethodPost:
		return post
	case http.MethodPut:
		return put
	case http.MethodPatch:
		return patch
	case http.MethodDelete:
		return del
	}
	return nil
}

func (s *Server) getBase(w http.ResponseWriter, r *http.Request, _ v2Route) error {
	if err := s.authorize(r, "", ActionPull); err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/json")
	setContentLength(w, 2)
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write([]byte("{}"))
	}
	return nil
}
