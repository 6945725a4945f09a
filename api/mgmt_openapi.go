package api

import (
	_ "embed"
	"net/http"

	"github.com/julienschmidt/httprouter"
)

// openAPI is the OpenAPI 3 document of the management API. Keep it in step with
// mgmtRoutes: TestOpenAPIDescribesEveryRoute checks both directions.
//
//go:embed openapi.json
var openAPI []byte

// getOpenAPI serves the OpenAPI document, without authentication: it describes
// the API, not anyone's data.
func (s *Server) getOpenAPI(w http.ResponseWriter, r *http.Request, _ *Principal, _ httprouter.Params) error {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "public, max-age=300")
	setContentLength(w, int64(len(openAPI)))
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write(openAPI)
	}
	return nil
}
