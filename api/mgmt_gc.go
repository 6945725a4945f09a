package api

import (
	"context"
	"errors"
	"net/http"
	"sort"
	"time"

	"github.com/julienschmidt/httprouter"

	"github.com/berth-registry/berth/meta"
)

// Garbage collection and fsck in the management API, for cloud admins only.
//
//	POST /api/v1/gc      {"dryRun", "workspace", "deleteUntagged"} -> 202, the requested run
//	GET  /api/v1/gc      the history, newest first
//	GET  /api/v1/gc/:id  one run's report
//	POST /api/v1/fsck    {"repair"} -> every live node's check
//
// Starting a run records it in the metadata (meta.GCStart); the leader's
// coordinator runs it (node/gc.go). One run at a time: another request while
// one is active is 409.

// FsckNode is one node's fsck report.
type FsckNode struct {
	Node           string   `json:"node"`
	Checked        int      `json:"checked"` // blobs the metadata places on this node, checked
	Bytes          int64    `json:"bytes"`   // bytes read back to verify their digests
	Missing        []string `json:"missing,omitempty"`
	Corrupt        []string `json:"corrupt,omitempty"` // wrong size or digest
	Orphans        []string `json:"orphans,omitempty"` // files no metadata names, older than the grace period
	Repaired       int      `json:"repaired,omitempty"`
	OrphansRemoved int      `json:"orphansRemoved,omitempty"`
	Errors         []string `json:"errors,omitempty"`
	Seconds        float64  `json:"seconds"`
}

// Clean reports whether the node has nothing left to repair.
func (f *FsckNode) Clean() bool {
	return len(f.Errors) == 0 && len(f.Missing)+len(f.Corrupt) == f.Repaired && len(f.Orphans) == f.OrphansRemoved
}

// FsckReport is a cluster-wide fsck: one report per live node.
type FsckReport struct {
	Repair bool       `json:"repair"`
	Clean  bool       `json:"clean"`
	Nodes  []FsckNode `json:"nodes"`
}

// Fscker runs fsck on every live node: each checks that every blob the
// metadata places on it is there with the right size and digest (read back:
// a scrub), and that no file is orphaned; with repair, bad or missing copies
// are fetched again from other holders and orphans removed.
type Fscker interface {
	Fsck(ctx context.Context, repair bool) (*FsckReport, error)
}

// gcRunJSON is a run as the API shows it: durations in seconds.
type gcRunJSON struct {
	ID                 string                        `json:"id"`
	State              string                        `json:"state"`
	DryRun             bool                          `json:"dryRun"`
	Workspace          string                        `json:"workspace,omitempty"`
	DeleteUntagged     bool                          `json:"deleteUntagged"`
	StartedBy          string                        `json:"startedBy"`
	Requested          time.Time                     `json:"requested"`
	Started            *time.Time                    `json:"started,omitempty"`
	Ended              *time.Time                    `json:"ended,omitempty"`
	GracePeriodSeconds float64                       `json:"gracePeriodSeconds"`
	RetentionSeconds   float64                       `json:"retentionSeconds"`
	MarkSeconds        float64                       `json:"markSeconds"`
	PauseSeconds       float64                       `json:"pauseSeconds"`
	DurationSeconds    float64                       `json:"durationSeconds"`
	Candidates         meta.GCCounts                 `json:"candidates"`
	Reclaimed          meta.GCCounts                 `json:"reclaimed"`
	Nodes              map[string]*meta.GCNodeReport `json:"nodes"`
	PendingNodes       []string                      `json:"pendingNodes,omitempty"` // nodes still deleting their files
	Errors             []string                      `json:"errors,omitempty"`
}

func gcRunView(run *meta.GCRun) gcRunJSON {
	v := gcRunJSON{
		ID: run.ID, State: run.State, DryRun: run.DryRun, Workspace: run.Workspace,
		DeleteUntagged: run.Options.DeleteUntagged, StartedBy: run.StartedBy, Requested: run.Requested,
		GracePeriodSeconds: run.Options.GracePeriod.Seconds(), RetentionSeconds: run.Options.Retention.Seconds(),
		MarkSeconds: run.Mark.Seconds(), PauseSeconds: run.Pause.Seconds(), DurationSeconds: run.Duration.Seconds(),
		Candidates: run.Candidates, Reclaimed: run.Reclaimed, Nodes: run.Nodes, Errors: run.Errors,
	}
	if run.Started.IsZero() && run.DeleteUntagged != nil {
		v.DeleteUntagged = *run.DeleteUntagged
	}
	if !run.Started.IsZero() {
		v.Started = &run.Started
	}
	if !run.Ended.IsZero() {
		v.Ended = &run.Ended
	}
	if v.Nodes == nil {
		v.Nodes = map[string]*meta.GCNodeReport{}
	}
	if run.State == meta.GCDone && !run.DryRun {
		for _, id := range run.ExpectedNodes {
			if run.Nodes[id] == nil {
				v.PendingNodes = append(v.PendingNodes, id)
			}
		}
		sort.Strings(v.PendingNodes)
	}
	return v
}

func needCloudAdmin(p *Principal, what string) error {
	if !p.CloudAdmin {
		return mgmtDenied("only cloud admins %s", what)
	}
	return nil
}

type startGCRequest struct {
	DryRun         bool   `json:"dryRun"`
	Workspace      string `json:"workspace"`
	DeleteUntagged *bool  `json:"deleteUntagged"` // absent: the servers' --gc-delete-untagged
}

// startGC: POST /api/v1/gc.
func (s *Server) startGC(w http.ResponseWriter, r *http.Request, p *Principal, _ httprouter.Params) error {
	if err := needCloudAdmin(p, "start garbage collection"); err != nil {
		return err
	}
	var req startGCRequest
	if r.ContentLength != 0 {
		if err := decodeMgmtBody(w, r, &req); err != nil {
			return err
		}
	}
	if req.Workspace != "" {
		if _, err := meta.GetWorkspace(s.meta, req.Workspace); err != nil {
			return err
		}
	}
	now := s.cfg.Clock().UTC()
	id := meta.NewGCRunID(now)
	err := s.propose.Propose(r.Context(), &meta.GCStart{ID: id, By: p.Name, DryRun: req.DryRun,
		Workspace: req.Workspace, DeleteUntagged: req.DeleteUntagged, Time: now})
	if err != nil {
		return err
	}
	run, err := meta.GetGCRun(s.meta, id)
	if err != nil {
		return err
	}
	w.Header().Set("Location", "/api/v1/gc/"+id)
	return mgmtReply(w, r, http.StatusAccepted, gcRunView(run))
}

// listGC: GET /api/v1/gc.
func (s *Server) listGC(w http.ResponseWriter, r *http.Request, p *Principal, _ httprouter.Params) error {
	if err := needCloudAdmin(p, "see garbage collection runs"); err != nil {
		return err
	}
	runs, err := meta.ListGCRuns(s.meta)
	if err != nil {
		return err
	}
	out := make([]gcRunJSON, len(runs))
	for i := range runs {
		out[i] = gcRunView(&runs[i])
	}
	return mgmtReply(w, r, http.StatusOK, mgmtItems(out))
}

// getGC: GET /api/v1/gc/:id.
func (s *Server) getGC(w http.ResponseWriter, r *http.Request, p *Principal, ps httprouter.Params) error {
	if err := needCloudAdmin(p, "see garbage collection runs"); err != nil {
		return err
	}
	run, err := meta.GetGCRun(s.meta, ps.ByName("id"))
	if errors.Is(err, meta.ErrGCRunUnknown) {
		return newError(CodeNotFound, http.StatusNotFound, "gc run %s unknown", ps.ByName("id")).withCause(err)
	}
	if err != nil {
		return err
	}
	return mgmtReply(w, r, http.StatusOK, gcRunView(run))
}

type fsckRequest struct {
	Repair bool `json:"repair"`
}

// fsck: POST /api/v1/fsck. It answers once every live node checked its files,
// which reads every blob back: it takes as long as reading the stores.
func (s *Server) fsck(w http.ResponseWriter, r *http.Request, p *Principal, _ httprouter.Params) error {
	if err := needCloudAdmin(p, "run fsck"); err != nil {
		return err
	}
	if s.fsckRunner == nil {
		return newError(CodeUnsupported, http.StatusNotImplemented, "this server cannot run fsck")
	}
	var req fsckRequest
	if r.ContentLength != 0 {
		if err := decodeMgmtBody(w, r, &req); err != nil {
			return err
		}
	}
	rep, err := s.fsckRunner.Fsck(r.Context(), req.Repair)
	if err != nil {
		return err
	}
	return mgmtReply(w, r, http.StatusOK, rep)
}
