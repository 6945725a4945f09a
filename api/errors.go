package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"

	"github.com/berth-registry/berth/blobstore"
	"github.com/berth-registry/berth/meta"
)

// ErrorCode is the code of an OCI error body. Clients act on it; the message is for
// people.
type ErrorCode string

// The codes of the OCI distribution spec's error table (code-1 to code-14), the
// Docker Registry v2 codes that clients still understand (TAG_INVALID,
// MANIFEST_UNVERIFIED, RANGE_INVALID, PAGINATION_NUMBER_INVALID, UNAVAILABLE,
// UNKNOWN), and NOT_FOUND for a path that is no endpoint at all.
const (
	CodeBlobUnknown             ErrorCode = "BLOB_UNKNOWN"
	CodeBlobUploadInvalid       ErrorCode = "BLOB_UPLOAD_INVALID"
	CodeBlobUploadUnknown       ErrorCode = "BLOB_UPLOAD_UNKNOWN"
	CodeDigestInvalid           ErrorCode = "DIGEST_INVALID"
	CodeManifestBlobUnknown     ErrorCode = "MANIFEST_BLOB_UNKNOWN"
	CodeManifestInvalid         ErrorCode = "MANIFEST_INVALID"
	CodeManifestUnknown         ErrorCode = "MANIFEST_UNKNOWN"
	CodeNameInvalid             ErrorCode = "NAME_INVALID"
	CodeNameUnknown             ErrorCode = "NAME_UNKNOWN"
	CodeSizeInvalid             ErrorCode = "SIZE_INVALID"
	CodeUnauthorized            ErrorCode = "UNAUTHORIZED"
	CodeDenied                  ErrorCode = "DENIED"
	CodeUnsupported             ErrorCode = "UNSUPPORTED"
	CodeTooManyRequests         ErrorCode = "TOOMANYREQUESTS"
	CodeTagInvalid              ErrorCode = "TAG_INVALID"
	CodeManifestUnverified      ErrorCode = "MANIFEST_UNVERIFIED"
	CodeRangeInvalid            ErrorCode = "RANGE_INVALID"
	CodePaginationNumberInvalid ErrorCode = "PAGINATION_NUMBER_INVALID"
	CodeUnavailable             ErrorCode = "UNAVAILABLE"
	CodeUnknown                 ErrorCode = "UNKNOWN"
	CodeNotFound                ErrorCode = "NOT_FOUND"
)

// codeInfo is a code's default HTTP status and message. The statuses are
// Distribution's (registry/api/errcode, registry/api/v2/errors.go), which the OCI
// spec's endpoint table and the conformance suite agree with:
//   - UNSUPPORTED is 405: the suite accepts 405 for a registry that refuses
//     deletes (conformance api.go BlobDelete, ManifestDelete);
//   - MANIFEST_BLOB_UNKNOWN is 400, not 404: the manifest is what is wrong;
//   - RANGE_INVALID is 416: an out-of-order chunk must be 416 (api.go
//     BlobPatchChunked, OutOfOrderChunks).
var codeInfo = map[ErrorCode]struct {
	status  int
	message string
}{
	CodeBlobUnknown:             {http.StatusNotFound, "blob unknown to registry"},
	CodeBlobUploadInvalid:       {http.StatusBadRequest, "blob upload invalid"},
	CodeBlobUploadUnknown:       {http.StatusNotFound, "blob upload unknown to registry"},
	CodeDigestInvalid:           {http.StatusBadRequest, "provided digest did not match uploaded content"},
	CodeManifestBlobUnknown:     {http.StatusBadRequest, "manifest references a manifest or blob unknown to registry"},
	CodeManifestInvalid:         {http.StatusBadRequest, "manifest invalid"},
	CodeManifestUnknown:         {http.StatusNotFound, "manifest unknown to registry"},
	CodeNameInvalid:             {http.StatusBadRequest, "invalid repository name"},
	CodeNameUnknown:             {http.StatusNotFound, "repository name not known to registry"},
	CodeSizeInvalid:             {http.StatusBadRequest, "provided length did not match content length"},
	CodeUnauthorized:            {http.StatusUnauthorized, "authentication required"},
	CodeDenied:                  {http.StatusForbidden, "requested access to the resource is denied"},
	CodeUnsupported:             {http.StatusMethodNotAllowed, "the operation is unsupported"},
	CodeTooManyRequests:         {http.StatusTooManyRequests, "too many requests"},
	CodeTagInvalid:              {http.StatusBadRequest, "invalid tag"},
	CodeManifestUnverified:      {http.StatusBadRequest, "manifest failed signature verification"},
	CodeRangeInvalid:            {http.StatusRequestedRangeNotSatisfiable, "invalid content range"},
	CodePaginationNumberInvalid: {http.StatusBadRequest, "invalid number of results requested"},
	CodeUnavailable:             {http.StatusServiceUnavailable, "service unavailable"},
	CodeUnknown:                 {http.StatusInternalServerError, "internal server error"},
	CodeNotFound:                {http.StatusNotFound, "no such endpoint"},
	CodeInvalid:                 {http.StatusBadRequest, "invalid request"},
	CodeConflict:                {http.StatusConflict, "conflict"},
}

// Status returns the code's default HTTP status (500 for a code not in the table).
func (c ErrorCode) Status() int {
	if ci, ok := codeInfo[c]; ok {
		return ci.status
	}
	return http.StatusInternalServerError
}

// Message returns the code's default message.
func (c ErrorCode) Message() string {
	if ci, ok := codeInfo[c]; ok {
		return ci.message
	}
	return strings.ToLower(strings.ReplaceAll(string(c), "_", " "))
}

// apiError is an error that already knows how it is answered: its OCI code, HTTP
// status, message and optional detail (any JSON value). Handlers return it (or
// wrap it) and writeError sends it; it is immutable once built, so the sentinels
// below may be shared between requests.
type apiError struct {
	Code    ErrorCode
	Status  int
	Message string
	Detail  any
	err     error     // wrapped cause, if any (not sent to the client)
	base    *apiError // the sentinel this one was derived from, for errors.Is
}

// newError builds an apiError with a message formatted from format and args. A
// status of 0 means the code's default status.
func newError(code ErrorCode, status int, format string, args ...any) *apiError {
	if status == 0 {
		status = code.Status()
	}
	msg := format
	if len(args) > 0 {
		msg = fmt.Sprintf(format, args...)
	}
	return &apiError{Code: code, Status: status, Message: msg}
}

func (e *apiError) Error() string {
	s := "api: " + string(e.Code) + ": " + e.Message
	if e.err != nil {
		s += ": " + e.err.Error()
	}
	return s
}

// Unwrap returns the wrapped cause.
func (e *apiError) Unwrap() error { return e.err }

// Is reports whether e was derived (withDetail, withCause) from target, so that
// errors.Is(err, errNameInvalid) holds for the copy parseV2Path returns.
func (e *apiError) Is(target error) bool {
	t, ok := target.(*apiError)
	return ok && e.base != nil && (e.base == t || e.base.Is(t))
}

// withDetail returns a copy of e with detail set.
func (e *apiError) withDetail(detail any) *apiError {
	c := *e
	c.Detail = detail
	c.base = e
	return &c
}

// withCause returns a copy of e that wraps cause (for logs and errors.Is; the
// client never sees the cause's text).
func (e *apiError) withCause(cause error) *apiError {
	c := *e
	c.err = cause
	c.base = e
	return &c
}

// Sentinels used by more than one handler. Derive per-request copies with
// withDetail or withCause; never modify them.
var (
	errNameInvalid      = newError(CodeNameInvalid, 0, "invalid repository name: use components of lowercase letters and digits, separated inside by '.', '_', '__' or dashes, joined by '/', at most 255 bytes in all")
	errTagInvalid       = newError(CodeTagInvalid, 0, "invalid tag: use up to 128 letters, digits, '_', '.' and '-', not starting with '.' or '-'")
	errDigestInvalid    = newError(CodeDigestInvalid, 0, "invalid digest")
	errNotFound         = newError(CodeNotFound, 0, "no such endpoint")
	errUploadUnknown    = newError(CodeBlobUploadUnknown, 0, "blob upload unknown to registry")
	errMethodNotAllowed = newError(CodeUnsupported, http.StatusMethodNotAllowed, "method not allowed on this endpoint")
)

// errorMapping maps the sentinel errors of other packages to codes: the first
// entry whose target errors.Is the error wins. With detail, the text that follows
// the sentinel's own text in the error (the "%w: <detail>" convention of meta's
// validation errors) becomes the client's message; it must be meant for clients.
// Without it the code's default message is sent. A status of 0 means the code's
// default status.
var errorMapping = []struct {
	target error
	code   ErrorCode
	status int
	detail bool
}{
	// Schema 1 and unknown media types are refused as MANIFEST_INVALID, as
	// Distribution does, so that docker push prints "manifest invalid: schema 1
	// manifests are not supported; ...".
	{target: meta.ErrManifestInvalid, code: CodeManifestInvalid, detail: true},
	{target: meta.ErrManifestUnsupported, code: CodeManifestInvalid, detail: true},
	{target: meta.ErrDigestInvalid, code: CodeDigestInvalid, detail: true},
	{target: meta.ErrDigestUnsupported, code: CodeDigestInvalid, detail: true},
	// Refusals of meta commands and reads.
	{target: meta.ErrBlobUnknown, code: CodeBlobUnknown},
	{target: meta.ErrManifestUnknown, code: CodeManifestUnknown},
	{target: meta.ErrManifestBlobUnknown, code: CodeManifestBlobUnknown, detail: true},
	{target: meta.ErrNameUnknown, code: CodeNameUnknown},
	// A push whose workspace vanished between authorize's check and the commit.
	{target: meta.ErrWorkspaceUnknown, code: CodeNameUnknown},
	{target: ErrUnavailable, code: CodeUnavailable, status: http.StatusServiceUnavailable},
	// The blob store.
	{target: blobstore.ErrBlobUnknown, code: CodeBlobUnknown},
	{target: blobstore.ErrUploadUnknown, code: CodeBlobUploadUnknown},
	{target: blobstore.ErrUploadInvalid, code: CodeBlobUploadUnknown},
	{target: blobstore.ErrDigestInvalid, code: CodeDigestInvalid},
	{target: blobstore.ErrDigestUnsupported, code: CodeDigestInvalid},
	{target: blobstore.ErrSizeInvalid, code: CodeSizeInvalid},
	{target: blobstore.ErrUploadBusy, code: CodeBlobUploadInvalid, status: http.StatusConflict},
	{target: blobstore.ErrClosed, code: CodeUnavailable, status: http.StatusServiceUnavailable},
}

// toAPIError turns any error into the apiError to send. An *apiError in the chain
// is used as is; else the first errorMapping entry that matches; else a 500 with a
// generic message, reported as internal so that the caller logs it (the error's
// own text is never sent).
func toAPIError(err error) (ae *apiError, internal bool) {
	if errors.As(err, &ae) {
		return ae, false
	}
	for _, m := range errorMapping {
		if !errors.Is(err, m.target) {
			continue
		}
		status := m.status
		if status == 0 {
			status = m.code.Status()
		}
		msg := m.code.Message()
		if m.detail {
			if _, after, ok := strings.Cut(err.Error(), m.target.Error()+": "); ok && after != "" {
				msg = after
			}
		}
		return &apiError{Code: m.code, Status: status, Message: msg, err: err}, false
	}
	return &apiError{Code: CodeUnknown, Status: http.StatusInternalServerError, Message: CodeUnknown.Message(), err: err}, true
}

type errorEntry struct {
	Code    ErrorCode `json:"code"`
	Message string    `json:"message"`
	Detail  any       `json:"detail,omitempty"`
}

type errorBody struct {
	Errors []errorEntry `json:"errors"`
}

// marshalErrorBody encodes the OCI error body of ae. A detail that does not encode
// is dropped rather than losing the error.
func marshalErrorBody(ae *apiError) []byte {
	e := errorEntry{Code: ae.Code, Message: ae.Message, Detail: ae.Detail}
	b, err := json.Marshal(errorBody{Errors: []errorEntry{e}})
	if err != nil {
		e.Detail = nil
		b, _ = json.Marshal(errorBody{Errors: []errorEntry{e}})
	}
	return b
}

// writeError answers the request with err as an OCI error body
// ({"errors":[{"code","message","detail"}]}, Content-Type application/json) and
// the status of its code. Internal errors (nothing in the table knows them) are
// logged here, once, with the request id from X-Request-Id; nothing else logs
// them. A HEAD request gets the status and headers of the GET answer (its
// Content-Length included) without the body. Headers the
// handler set before failing (WWW-Authenticate, Retry-After) are kept; an
// UNAVAILABLE answer without Retry-After gets one of a second. writeError must be
// called before anything was written.
func writeError(w http.ResponseWriter, r *http.Request, err error, log *slog.Logger) {
	ae, internal := toAPIError(err)
	if internal && log != nil {
		log.LogAttrs(r.Context(), slog.LevelError, "internal error",
			slog.String("id", r.Header.Get("X-Request-Id")),
			slog.String("method", r.Method), slog.String("path", r.URL.Path),
			slog.String("error", err.Error()))
	}
	h := w.Header()
	if ae.Code == CodeUnavailable && h.Get("Retry-After") == "" {
		h.Set("Retry-After", "1")
	}
	// Headers of the content the handler meant to send do not describe an error.
	h.Del("Content-Range")
	h.Del("Content-Encoding")
	h.Del("Docker-Content-Digest")
	h.Del("Etag")
	h.Del("Cache-Control")
	h.Del("Last-Modified")
	h.Set("Content-Type", "application/json")
	h.Set("X-Content-Type-Options", "nosniff")
	body := marshalErrorBody(ae)
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(ae.Status)
	if r.Method != http.MethodHead {
		_, _ = w.Write(body)
	}
}
