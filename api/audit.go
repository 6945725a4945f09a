package api

import (
	"bytes"
	"encoding/json"
	"io"
	"mime"
	"net/http"
	"strings"

	"github.com/berth-registry/berth/meta"
)

// The audit log records every change a request makes or tries to make: pushes
// (manifest PUT), deletes of manifests, tags and blobs on /v2/, every
// management call that is not a read (POST, PUT, PATCH, DELETE on /api/v1/),
// logins at /auth/token (a token issued for credentials, or refused), and
// backups taken. Each event says who (the caller's name), what (action and
// object), when, from where (the client's address) and how it ended (the
// status answered).
//
// ServeHTTP decides per request, before routing, whether the request is
// audited (auditBegin: reads cost nothing more), and builds the event after the
// handler answered (auditEnd). Handlers do not take part, except those that
// record an event of their own (recordAudit). Events go to the Auditor, which
// must not block: the node batches them into Raft commands.
//
// Login events carry the name that was tried, never the password; a
// management body is looked at only for its "name" field (the object a POST
// created).

// Auditor receives audit events. Record is called on the request's goroutine
// and must not block. The event's ID is assigned by the Auditor.
type Auditor interface {
	Record(ev meta.AuditEvent)
}

// auditNote is what auditBegin found out about a request that is audited.
type auditNote struct {
	action, object, workspace, project string
	digest                             meta.Digest
	login                              bool
	v2Push                             bool          // a manifest PUT: the digest comes from the answer
	collection                         string        // POST to a collection: the created name is appended
	body                               *bytes.Buffer // the start of a management request body
}

// auditMaxFieldBytes bounds the client-supplied strings kept in an event.
const auditMaxFieldBytes = 256

func clip(s string) string {
	if len(s) > auditMaxFieldBytes {
		return s[:auditMaxFieldBytes]
	}
	return s
}

// auditBegin returns the note of an audited request, nil for any other.
func (s *Server) auditBegin(r *http.Request) *auditNote {
	if s.audit == nil {
		return nil
	}
	p := r.URL.Path
	switch {
	case p == "/auth/token":
		// A token asked without credentials is no login.
		if r.Method == http.MethodGet && r.Header.Get("Authorization") == "" || r.Method != http.MethodGet && r.Method != http.MethodPost {
			return nil
		}
		return &auditNote{action: "login", login: true}
	case strings.HasPrefix(p, "/v2/"):
		if r.Method != http.MethodPut && r.Method != http.MethodDelete || r.Header.Get(forwardedHeader) != "" {
			return nil
		}
		rt, err := parseV2Path(p[3:])
		if err != nil {
			return nil
		}
		n := &auditNote{workspace: meta.WorkspaceOf(rt.Repo)}
		isDigest := strings.Contains(rt.Ref, ":")
		switch {
		case rt.Kind == routeManifest && r.Method == http.MethodPut:
			n.action, n.v2Push = "manifest.push", true
		case rt.Kind == routeManifest && isDigest:
			n.action = "manifest.delete"
		case rt.Kind == routeManifest:
			n.action = "tag.delete"
		case rt.Kind == routeBlob:
			n.action = "blob.delete"
		default:
			return nil // uploads: the push is recorded by its manifest
		}
		if isDigest {
			n.object, n.digest = rt.Repo+"@"+rt.Ref, meta.Digest(rt.Ref)
		} else {
			n.object = rt.Repo + ":" + rt.Ref
		}
		n.project = s.projectOf(n.workspace)
		return n
	case strings.HasPrefix(p, "/api/v1/"):
		switch r.Method {
		case http.MethodGet, http.MethodHead, http.MethodOptions:
			return nil
		}
		rt, params := matchMgmtRoute(r.Method, p)
		if rt == nil {
			return nil
		}
		n := &auditNote{action: mgmtAuditAction(rt), object: strings.TrimPrefix(p, "/api/v1/")}
		if n.action == "login" {
			n.login, n.object = true, ""
		}
		n.project, n.workspace = params["project"], params["workspace"]
		if name := strings.TrimPrefix(params["name"], "/"); name != "" {
			n.workspace = meta.WorkspaceOf(name)
			// Deletes of a tag or an image through the management API are
			// named as on /v2/.
			if repo, tag, ok := strings.Cut(name, "/tags/"); ok && r.Method == http.MethodDelete {
				n.action, n.object = "tag.delete", repo+":"+tag
			} else if repo, d, ok := strings.Cut(name, "/manifests/"); ok && r.Method == http.MethodDelete {
				n.action, n.object, n.digest = "manifest.delete", repo+"@"+d, meta.Digest(d)
			}
		}
		segs := strings.Split(rt.path, "/")
		if last := segs[len(segs)-1]; strings.HasSuffix(n.action, ".create") && last != "" && last[0] != ':' && last[0] != '*' {
			n.collection = last
		}
		// The body of a creation (for the created name) or a console login
		// (for the user name) is kept as it is read, up to the body limit.
		mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
		if (n.collection != "" || n.login) && mt == "application/json" && r.Body != nil {
			n.body = &bytes.Buffer{}
			r.Body = teeBody{Reader: io.TeeReader(r.Body, &capped{b: n.body, max: mgmtMaxBodyBytes}), Closer: r.Body}
		}
		if n.workspace != "" && n.project == "" {
			n.project = s.projectOf(n.workspace)
		}
		return n
	}
	return nil
}

// auditEnd builds and records the event of an audited request once its
// handler has answered status with the headers h.
func (s *Server) auditEnd(r *http.Request, n *auditNote, status int, h http.Header, requestID string) {
	if n == nil {
		return
	}
	var body struct {
		Name     string `json:"name"`
		Username string `json:"username"` // a console login's; its password is never read
	}
	if n.body != nil {
		_ = json.Unmarshal(n.body.Bytes(), &body)
	}
	user := s.auditCaller(r)
	switch {
	case n.login && n.body != nil:
		user = clip(body.Username)
	case n.login && r.Method == http.MethodPost:
		user = clip(r.PostForm.Get("username"))
	}
	if status == http.StatusUnauthorized && user == "" && !n.login || n.login && user == "" {
		return // an anonymous attempt answered with a challenge, or a login without a name
	}
	if n.v2Push && status < 400 {
		n.digest = meta.Digest(h.Get("Docker-Content-Digest"))
	}
	if name := clip(body.Name); name != "" && !n.login && status < 400 {
		n.object += "/" + name
		switch n.collection {
		case "projects":
			n.project = name
		case "workspaces":
			n.workspace = name
		}
	}
	ev := meta.AuditEvent{
		User: user, Action: n.action, Object: clip(n.object), Digest: n.digest,
		Workspace: n.workspace, Project: n.project, Status: status, RequestID: requestID,
	}
	if status >= 400 {
		ev.Detail = http.StatusText(status)
		if n.login && status == http.StatusTooManyRequests {
			ev.Detail = "too many failed logins"
		}
	}
	s.recordAudit(r, ev)
}

// recordAudit fills in the request's side of ev (time, node, client address,
// outcome from the status when not set) and hands it to the Auditor.
func (s *Server) recordAudit(r *http.Request, ev meta.AuditEvent) {
	if s.audit == nil {
		return
	}
	ev.Time = s.cfg.Clock().UTC()
	ev.Node = s.cfg.NodeID
	ev.ClientIP = clientIP(r)
	ev.ForwardedFor = clip(r.Header.Get("X-Forwarded-For"))
	if ev.RequestID == "" {
		ev.RequestID = r.Header.Get("X-Request-Id")
	}
	if ev.Outcome == "" {
		ev.Outcome = meta.AuditSuccess
		if ev.Status >= 400 {
			ev.Outcome = meta.AuditFailure
		}
	}
	s.audit.Record(ev)
}

// auditCaller names the caller of r from its credentials without checking a
// password again: a Bearer token's subject (verified, through the token
// cache), the name of Basic credentials, or the subject of a console session.
// "" when none is known.
func (s *Server) auditCaller(r *http.Request) string {
	h := r.Header.Get("Authorization")
	scheme, cred, _ := strings.Cut(h, " ")
	switch {
	case h == "":
		if c, err := r.Cookie(sessionCookie); err == nil && c.Value != "" {
			if claims, err := s.verifySession(c.Value); err == nil {
				return claims.Subject
			}
		}
	case strings.EqualFold(scheme, "Bearer"):
		if vt, err := s.verifyToken(strings.TrimSpace(cred)); err == nil {
			return vt.subject
		}
	case strings.EqualFold(scheme, "Basic"):
		if user, _, ok := r.BasicAuth(); ok {
			return clip(user)
		}
	}
	return ""
}

// projectOf returns the project that owns a workspace, "" if there is none.
func (s *Server) projectOf(ws string) string {
	if ws == "" {
		return ""
	}
	w, err := meta.GetWorkspace(s.meta, ws)
	if err != nil {
		return ""
	}
	return w.Project
}

// matchMgmtRoute finds the management route of method and path and its
// parameters, the way the router does (":x" one segment, "*x" the rest).
func matchMgmtRoute(method, path string) (*mgmtRoute, map[string]string) {
	segs := strings.Split(path, "/")
	for i := range mgmtRoutes {
		rt := &mgmtRoutes[i]
		if rt.method != method {
			continue
		}
		pat := strings.Split(rt.path, "/")
		params := map[string]string{}
		ok := true
		for j, p := range pat {
			if strings.HasPrefix(p, "*") {
				params[p[1:]] = "/" + strings.Join(segs[min(j, len(segs)):], "/")
				break
			}
			if j >= len(segs) {
				ok = false
				break
			}
			if strings.HasPrefix(p, ":") {
				if segs[j] == "" {
					ok = false
					break
				}
				params[p[1:]] = segs[j]
			} else if p != segs[j] {
				ok = false
				break
			}
			if j == len(pat)-1 && len(segs) != len(pat) {
				ok = false
			}
		}
		if ok {
			return rt, params
		}
	}
	return nil, nil
}

// mgmtAuditActions names the management routes whose action is not the
// generic one.
var mgmtAuditActions = map[string]string{
	"POST /api/v1/session":                             "login", // the console's
	"DELETE /api/v1/session":                           "logout",
	"POST /api/v1/gc":                                  "gc.start",
	"POST /api/v1/fsck":                                "fsck.start",
	"POST /api/v1/workspaces/:workspace/trash/restore": "restore",
	"POST /api/v1/workspaces/:workspace/import":        "import",
}

// mgmtAuditAction names the action of a management route: its literal path
// segments after /api/v1 joined by dots, then the verb of the method (POST
// create, PUT put, PATCH update, DELETE delete): projects.members.put.
func mgmtAuditAction(rt *mgmtRoute) string {
	if a, ok := mgmtAuditActions[rt.method+" "+rt.path]; ok {
		return a
	}
	var parts []string
	for _, seg := range strings.Split(strings.TrimPrefix(rt.path, "/api/v1/"), "/") {
		if seg != "" && seg[0] != ':' && seg[0] != '*' {
			parts = append(parts, seg)
		}
	}
	verb := map[string]string{
		http.MethodPost: "create", http.MethodPut: "put", http.MethodPatch: "update", http.MethodDelete: "delete",
	}[rt.method]
	if verb == "" {
		verb = strings.ToLower(rt.method)
	}
	return strings.Join(append(parts, verb), ".")
}

// capped is an io.Writer that keeps the first max bytes and drops the rest.
type capped struct {
	b   *bytes.Buffer
	max int
}

func (c *capped) Write(p []byte) (int, error) {
	if room := c.max - c.b.Len(); room > 0 {
		c.b.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

// teeBody is a request body read through a tee.
type teeBody struct {
	io.Reader
	io.Closer
}
