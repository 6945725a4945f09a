package api

import (
	"net/http"
	"strings"
	"time"

	"github.com/julienschmidt/httprouter"

	"github.com/berth-registry/berth/meta"
)

// auditEventJSON is an audit event as the API shows it.
type auditEventJSON struct {
	ID           string      `json:"id"`
	Time         time.Time   `json:"time"`
	Node         string      `json:"node"`
	User         string      `json:"user"`
	ClientIP     string      `json:"clientIp,omitempty"`
	ForwardedFor string      `json:"forwardedFor,omitempty"`
	Action       string      `json:"action"`
	Object       string      `json:"object,omitempty"`
	Digest       meta.Digest `json:"digest,omitempty"`
	Workspace    string      `json:"workspace,omitempty"`
	Project      string      `json:"project,omitempty"`
	Outcome      string      `json:"outcome"`
	Status       int         `json:"status,omitempty"`
	RequestID    string      `json:"requestId,omitempty"`
	Detail       string      `json:"detail,omitempty"`
}

func auditView(e *meta.AuditEvent) auditEventJSON {
	return auditEventJSON{
		ID: e.ID, Time: e.Time, Node: e.Node, User: e.User, ClientIP: e.ClientIP, ForwardedFor: e.ForwardedFor,
		Action: e.Action, Object: e.Object, Digest: e.Digest, Workspace: e.Workspace, Project: e.Project,
		Outcome: e.Outcome, Status: e.Status, RequestID: e.RequestID, Detail: e.Detail,
	}
}

// listAudit answers GET /api/v1/audit: the audit log, newest first, filtered
// by user, action, workspace, project, outcome and a time range (since, until:
// RFC 3339 times, or durations before now such as 24h), paged with n and last
// (the "next" of the previous page). Cloud admins see every event; a project
// admin sees the events of the projects they administer (their workspaces and
// the project itself); anyone else is refused.
func (s *Server) listAudit(w http.ResponseWriter, r *http.Request, p *Principal, _ httprouter.Params) error {
	q := r.URL.Query()
	f := meta.AuditFilter{
		User: q.Get("user"), Action: q.Get("action"), Workspace: q.Get("workspace"),
		Project: q.Get("project"), Outcome: q.Get("outcome"), Before: q.Get("last"),
	}
	if !p.CloudAdmin {
		if p.Kind == UserPrincipal {
			for project, role := range p.Roles {
				if role == meta.RoleProjectAdmin {
					if f.Projects == nil {
						f.Projects = map[string]bool{}
					}
					f.Projects[project] = true
				}
			}
		}
		if f.Projects == nil {
			return mgmtDenied("the audit log is for cloud admins and project admins")
		}
	}
	var err error
	if f.Limit, err = mgmtPageSize(r); err != nil {
		return err
	}
	now := s.cfg.Clock()
	if f.Since, err = auditTime(q.Get("since"), now); err != nil {
		return err
	}
	if f.Until, err = auditTime(q.Get("until"), now); err != nil {
		return err
	}
	events, next, err := meta.ListAudit(s.meta, f)
	if err != nil {
		return err
	}
	out := mgmtList[auditEventJSON]{Items: make([]auditEventJSON, 0, len(events)), Next: next}
	for i := range events {
		out.Items = append(out.Items, auditView(&events[i]))
	}
	return mgmtReply(w, r, http.StatusOK, out)
}

// auditTime reads a since or until parameter: an RFC 3339 time, or a duration
// before now ("24h", "30m").
func auditTime(v string, now time.Time) (time.Time, error) {
	v = strings.TrimSpace(v)
	if v == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
		return t, nil
	}
	if d, err := time.ParseDuration(v); err == nil && d >= 0 {
		return now.Add(-d), nil
	}
	return time.Time{}, mgmtInvalid("since and until take an RFC 3339 time or a duration such as 24h")
}
