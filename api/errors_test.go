package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/berth-registry/berth/meta"
)

// The status of every code: the OCI spec's endpoint table and the conformance
// suite where they say, Distribution's errcode table where they do not.
func TestErrorCodeStatus(t *testing.T) {
	want := map[ErrorCode]int{
		CodeBlobUnknown:             404,
		CodeBlobUploadInvalid:       400,
		CodeBlobUploadUnknown:       404,
		CodeDigestInvalid:           400,
		CodeManifestBlobUnknown:     400,
		CodeManifestInvalid:         400,
		CodeManifestUnknown:         404,
		CodeNameInvalid:             400,
		CodeNameUnknown:             404,
		CodeSizeInvalid:             400,
		CodeUnauthorized:            401,
		CodeDenied:                  403,
		CodeUnsupported:             405,
		CodeTooManyRequests:         429,
		CodeTagInvalid:              400,
		CodeManifestUnverified:      400,
		CodeRangeInvalid:            416,
		CodePaginationNumberInvalid: 400,
		CodeUnavailable:             503,
		CodeUnknown:                 500,
		CodeNotFound:                404,
		CodeInvalid:                 400,
		CodeConflict:                409,
	}
	if len(codeInfo) != len(want) {
		t.Errorf("codeInfo has %d codes, the test knows %d", len(codeInfo), len(want))
	}
	for code, status := range want {
		if got := code.Status(); got != status {
			t.Errorf("%s.Status() = %d, want %d", code, got, status)
		}
		if code.Message() == "" {
			t.Errorf("%s has no message", code)
		}
		// Every code goes out as the OCI body with its status.
		rec := httptest.NewRecorder()
		writeError(rec, httptest.NewRequest(http.MethodGet, "/v2/", nil), newError(code, 0, "m %d", 1), nil)
		if rec.Code != status {
			t.Errorf("%s: wrote status %d, want %d", code, rec.Code, status)
		}
		body := errorsTestDecode(t, rec)
		if len(body.Errors) != 1 || body.Errors[0].Code != code || body.Errors[0].Message != "m 1" {
			t.Errorf("%s: body %+v", code, body)
		}
	}
	if got := ErrorCode("SOMETHING_NEW").Status(); got != 500 {
		t.Errorf("an unknown code has status %d, want 500", got)
	}
}

type errorsTestBody struct {
	Errors []struct {
		Code    ErrorCode       `json:"code"`
		Message string          `json:"message"`
		Detail  json.RawMessage `json:"detail"`
	} `json:"errors"`
}

func errorsTestDecode(t *testing.T, rec *httptest.ResponseRecorder) errorsTestBody {
	t.Helper()
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q, want application/json", ct)
	}
	if cl := rec.Header().Get("Content-Length"); cl != strconv.Itoa(rec.Body.Len()) {
		t.Errorf("Content-Length %q for a body of %d bytes", cl, rec.Body.Len())
	}
	var b errorsTestBody
	dec := json.NewDecoder(bytes.NewReader(rec.Body.Bytes()))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&b); err != nil {
		t.Fatalf("body %q: %v", rec.Body.String(), err)
	}
	return b
}

func TestNewError(t *testing.T) {
	e := newError(CodeSizeInvalid, http.StatusRequestEntityTooLarge, "over %d bytes", 10)
	if e.Code != CodeSizeInvalid || e.Status != 413 || e.Message != "over 10 bytes" {
		t.Errorf("got %+v", e)
	}
	if e := newError(CodeDenied, 0, "plain"); e.Status != 403 || e.Message != "plain" {
		t.Errorf("status 0 is the code's status: got %+v", e)
	}
	if errMethodNotAllowed.Status != 405 || errUploadUnknown.Status != 404 || errNotFound.Status != 404 {
		t.Errorf("sentinel statuses: %d %d %d", errMethodNotAllowed.Status, errUploadUnknown.Status, errNotFound.Status)
	}
}

func TestAPIErrorDerivation(t *testing.T) {
	cause := errors.New("disk on fire")
	d := errNameInvalid.withDetail(map[string]string{"name": "X"})
	c := errNameInvalid.withCause(cause)
	dd := d.withDetail("again")
	tests := []struct {
		err    error
		target error
		want   bool
	}{
		{d, errNameInvalid, true},
		{c, errNameInvalid, true},
		{dd, errNameInvalid, true},
		{dd, d, true},
		{c, cause, true},
		{fmt.Errorf("wrapped: %w", d), errNameInvalid, true},
		{d, errTagInvalid, false},
		{errNameInvalid, d, false},
		{newError(CodeNameInvalid, 0, "invalid repository name"), errNameInvalid, false},
	}
	for i, tt := range tests {
		if got := errors.Is(tt.err, tt.target); got != tt.want {
			t.Errorf("%d: errors.Is(%v, %v) = %v, want %v", i, tt.err, tt.target, got, tt.want)
		}
	}
	if errNameInvalid.Detail != nil || errNameInvalid.err != nil {
		t.Errorf("deriving modified the sentinel: %+v", errNameInvalid)
	}
	if !strings.Contains(c.Error(), "disk on fire") {
		t.Errorf("Error() = %q: want the cause in logs", c.Error())
	}
}

func TestToAPIError(t *testing.T) {
	_, digErr := meta.ParseDigest("sha256:nope")
	_, unsupErr := meta.ParseDigest("md5:d41d8cd98f00b204e9800998ecf8427e")
	_, manErr := meta.ParseManifest(meta.MediaTypeOCIManifest, []byte(`{"schemaVersion":2,"config":{"mediaType":"a/b","digest":"sha256:x","size":1}}`))
	_, s1Err := meta.ParseManifest(meta.MediaTypeDockerSchema1Signed, []byte(`{}`))
	own := newError(CodeDenied, 0, "no")
	tests := []struct {
		name     string
		err      error
		code     ErrorCode
		status   int
		message  string // a part of the message
		internal bool
	}{
		{"own error", own, CodeDenied, 403, "no", false},
		{"own error, wrapped", fmt.Errorf("authorize: %w", own), CodeDenied, 403, "no", false},
		{"bad digest", digErr, CodeDigestInvalid, 400, `"sha256:nope" is not a sha256 digest`, false},
		{"unsupported digest", fmt.Errorf("mount: %w", unsupErr), CodeDigestInvalid, 400, "not supported", false},
		{"invalid manifest", manErr, CodeManifestInvalid, 400, "config.digest", false},
		{"schema 1", s1Err, CodeManifestInvalid, 400, "schema 1 manifests are not supported", false},
		{"bare sentinel", meta.ErrManifestInvalid, CodeManifestInvalid, 400, "manifest invalid", false},
		{"unknown", errors.New("open /var/lib/berth/secret: permission denied"), CodeUnknown, 500, "internal server error", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ae, internal := toAPIError(tt.err)
			if ae.Code != tt.code || ae.Status != tt.status || internal != tt.internal {
				t.Errorf("got %s %d internal=%v, want %s %d internal=%v", ae.Code, ae.Status, internal, tt.code, tt.status, tt.internal)
			}
			if !strings.Contains(ae.Message, tt.message) {
				t.Errorf("message %q does not contain %q", ae.Message, tt.message)
			}
			if strings.Contains(ae.Message, "meta:") || strings.Contains(ae.Message, "/var/lib") {
				t.Errorf("message %q leaks internal text", ae.Message)
			}
			if !errors.Is(ae, tt.err) && ae != tt.err && !errors.As(tt.err, new(*apiError)) {
				t.Errorf("the apiError does not keep its cause %v", tt.err)
			}
		})
	}
}

func TestErrorMappingEntriesAreComplete(t *testing.T) {
	for i, m := range errorMapping {
		if m.target == nil {
			t.Errorf("errorMapping[%d] has no target", i)
		}
		if _, ok := codeInfo[m.code]; !ok {
			t.Errorf("errorMapping[%d] maps %v to unknown code %q", i, m.target, m.code)
		}
	}
}

func TestWriteError(t *testing.T) {
	var logs bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&logs, nil))

	t.Run("body shape and detail", func(t *testing.T) {
		rec := httptest.NewRecorder()
		r := httptest.NewRequest(http.MethodGet, "/v2/A/tags/list", nil)
		_, err := parseV2Path("/A/tags/list")
		writeError(rec, r, err, log)
		if rec.Code != 400 {
			t.Fatalf("status %d, want 400", rec.Code)
		}
		b := errorsTestDecode(t, rec)
		if len(b.Errors) != 1 || b.Errors[0].Code != CodeNameInvalid || string(b.Errors[0].Detail) != `{"name":"A"}` {
			t.Errorf("body %s", rec.Body)
		}
		if rec.Header().Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("no nosniff header")
		}
	})

	t.Run("no detail key without detail", func(t *testing.T) {
		rec := httptest.NewRecorder()
		writeError(rec, httptest.NewRequest(http.MethodGet, "/v2/a/manifests/x", nil), newError(CodeManifestUnknown, 0, "manifest unknown"), log)
		want := `{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}`
		if rec.Code != 404 || rec.Body.String() != want {
			t.Errorf("got %d %s, want 404 %s", rec.Code, rec.Body, want)
		}
	})

	t.Run("a detail that cannot be encoded is dropped", func(t *testing.T) {
		rec := httptest.NewRecorder()
		writeError(rec, httptest.NewRequest(http.MethodGet, "/", nil), newError(CodeDenied, 0, "no").withDetail(func() {}), log)
		b := errorsTestDecode(t, rec)
		if rec.Code != 403 || len(b.Errors) != 1 || b.Errors[0].Detail != nil {
			t.Errorf("got %d %s", rec.Code, rec.Body)
		}
	})

	t.Run("HEAD has no body", func(t *testing.T) {
		rec := httptest.NewRecorder()
		rec.Header().Set("Content-Length", "1234") // left by a handler
		writeError(rec, httptest.NewRequest(http.MethodHead, "/v2/a/blobs/x", nil), newError(CodeBlobUnknown, 0, "blob unknown"), log)
		want := strconv.Itoa(len(`{"errors":[{"code":"BLOB_UNKNOWN","message":"blob unknown"}]}`))
		if rec.Code != 404 || rec.Body.Len() != 0 || rec.Header().Get("Content-Length") != want {
			t.Errorf("got %d, %d body bytes, Content-Length %q", rec.Code, rec.Body.Len(), rec.Header().Get("Content-Length"))
		}
	})

	t.Run("content headers of the failed answer are dropped", func(t *testing.T) {
		rec := httptest.NewRecorder()
		h := rec.Header()
		h.Set("Docker-Content-Digest", "sha256:x")
		h.Set("Etag", `"x"`)
		h.Set("Cache-Control", "max-age=31536000")
		h.Set("Content-Type", "application/octet-stream")
		h.Set("WWW-Authenticate", `Bearer realm="x"`)
		writeError(rec, httptest.NewRequest(http.MethodGet, "/", nil), newError(CodeUnauthorized, 0, "authentication required"), log)
		for _, k := range []string{"Docker-Content-Digest", "Etag", "Cache-Control"} {
			if v := rec.Header().Get(k); v != "" {
				t.Errorf("%s: %q left on an error", k, v)
			}
		}
		if rec.Header().Get("WWW-Authenticate") == "" || rec.Header().Get("Content-Type") != "application/json" {
			t.Errorf("headers %v", rec.Header())
		}
	})

	t.Run("UNAVAILABLE has Retry-After", func(t *testing.T) {
		rec := httptest.NewRecorder()
		writeError(rec, httptest.NewRequest(http.MethodPut, "/", nil), newError(CodeUnavailable, 0, "no leader"), log)
		if rec.Code != 503 || rec.Header().Get("Retry-After") != "1" {
			t.Errorf("got %d Retry-After %q", rec.Code, rec.Header().Get("Retry-After"))
		}
		rec = httptest.NewRecorder()
		rec.Header().Set("Retry-After", "7")
		writeError(rec, httptest.NewRequest(http.MethodPut, "/", nil), newError(CodeUnavailable, 0, "no leader"), log)
		if rec.Header().Get("Retry-After") != "7" {
			t.Errorf("Retry-After %q, want the handler's 7", rec.Header().Get("Retry-After"))
		}
	})

	t.Run("internal errors are logged once with the request id, never sent", func(t *testing.T) {
		logs.Reset()
		rec := httptest.NewRecorder()
		r := httptest.NewRequest(http.MethodGet, "/v2/a/blobs/x", nil)
		r.Header.Set("X-Request-Id", "req-42")
		writeError(rec, r, fmt.Errorf("open blob: %w", errors.New("/data/blobs/sha256/ab: input/output error")), log)
		if rec.Code != 500 || strings.Contains(rec.Body.String(), "/data") || strings.Contains(rec.Body.String(), "input/output") {
			t.Errorf("got %d %s", rec.Code, rec.Body)
		}
		b := errorsTestDecode(t, rec)
		if b.Errors[0].Code != CodeUnknown || b.Errors[0].Message != "internal server error" {
			t.Errorf("body %s", rec.Body)
		}
		lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
		if len(lines) != 1 || !strings.Contains(lines[0], `"id":"req-42"`) || !strings.Contains(lines[0], "input/output error") || !strings.Contains(lines[0], `"level":"ERROR"`) {
			t.Errorf("logs %q: want one error line with the id and the cause", logs.String())
		}
	})

	t.Run("errors with a code are not logged", func(t *testing.T) {
		logs.Reset()
		for _, err := range []error{errNotFound, meta.ErrManifestInvalid, newError(CodeDenied, 0, "no")} {
			writeError(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/", nil), err, log)
		}
		if logs.Len() != 0 {
			t.Errorf("logged %q", logs.String())
		}
	})

	t.Run("a nil logger is allowed", func(t *testing.T) {
		rec := httptest.NewRecorder()
		writeError(rec, httptest.NewRequest(http.MethodGet, "/", nil), errors.New("boom"), nil)
		if rec.Code != 500 {
			t.Errorf("status %d", rec.Code)
		}
	})
}
