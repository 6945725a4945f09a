package meta

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Garbage collection runs. A run is cluster state, changed only by commands, so
// that there is one run at a time in the whole cluster and every node knows
// where it is:
//
//	requested --GCBegin--> marking --GCPause--> paused --GCSweep--> done
//	    |                     |                    |
//	    +-------- GCAbort ----+------- GCAbort ----+--> aborted
//	marking --GCFinish--> done (dry run, nothing to reclaim) | failed
//
// GCStart (any node, from the management API or the schedule) records a
// requested run; the leader's coordinator claims it (GCBegin, naming itself),
// marks on a snapshot of the state and stages what it found (GCPlan: every key
// the sweep will delete, found on the snapshot), all while writes go on. Then
// it pauses writes (GCPause: every node's write path waits while a run is
// paused), re-marks what changed since the snapshot and commits one GCSweep
// that names only what the re-mark took back from the plan; its apply drops
// the metadata of everything else in the plan without reading it again, and
// ends the pause. A new leader aborts a run another leader claimed: marking has
// no effect on the state, and a sweep is one command, so a run is never half
// swept. After the sweep every node deletes its files for the swept digests and
// reports with GCNodeDone.
//
// While a run is active (requested, marking or paused) every command that can
// make something reachable again (PutBlob, PutManifest, Restore) also writes a
// dirty entry (gc/dirty/<index>). The leader re-marks from the entries after
// its snapshot; GCSweep names the last entry it saw and is refused if a later
// one exists, so nothing committed after the re-mark can be swept.

// GC run states.
const (
	GCRequested = "requested"
	GCMarking   = "marking"
	GCPaused    = "paused"
	GCDone      = "done"
	GCAborted   = "aborted"
	GCFailed    = "failed"
)

// GC limits: history kept, swept lists kept for nodes that catch up, and the
// most one sweep reclaims (the rest goes at the next run), which bounds the
// size of the sweep command.
const (
	GCHistory        = 50
	GCSweptListsKept = 5
	GCMaxSweepBlobs  = 50000
	GCMaxSweepOthers = 20000 // manifests and trash items
	gcMaxIDLen       = 64
)

var (
	gcActiveKey   = []byte("gc/active")
	gcRunPrefix   = []byte("gc/run/")
	gcDirtyPrefix = []byte("gc/dirty/")
)

func gcRunKey(id string) []byte   { return []byte("gc/run/" + id) }
func gcSweptKey(id string) []byte { return []byte("gc/swept/" + id) }
func gcPlanKey(id string) []byte  { return []byte("gc/plan/" + id) }
func gcPlanBlobsKey(id string) []byte {
	return []byte("gc/plan/" + id + "/blobs")
}
func gcDirtyKey(index uint64) []byte {
	return binary.BigEndian.AppendUint64(append([]byte(nil), gcDirtyPrefix...), index)
}

// GCCounts are what a run reclaimed (or, dry, would reclaim).
type GCCounts struct {
	Blobs        int   `json:"blobs"`
	Bytes        int64 `json:"bytes"`
	Manifests    int   `json:"manifests"`
	Tags         int   `json:"tags"`
	Repositories int   `json:"repositories"`
	Workspaces   int   `json:"workspaces"`
	TrashItems   int   `json:"trashItems"`
}

// GCNodeReport is what one node did with its files after a sweep.
type GCNodeReport struct {
	Files          int       `json:"files"`          // swept blobs whose file this node deleted
	Bytes          int64     `json:"bytes"`          // their size on this node's disk
	Kept           int       `json:"kept"`           // swept digests pushed again meanwhile: file kept
	Orphans        int       `json:"orphans"`        // files no metadata names, older than the grace period
	OrphanBytes    int64     `json:"orphanBytes"`    //
	UploadsExpired int       `json:"uploadsExpired"` // stale upload sessions purged
	Errors         []string  `json:"errors,omitempty"`
	Finished       time.Time `json:"finished"`
}

// GCRun is one garbage collection run and its report.
type GCRun struct {
	ID             string                   `json:"id"`
	State          string                   `json:"state"`
	DryRun         bool                     `json:"dryRun"`
	Workspace      string                   `json:"workspace,omitempty"`
	DeleteUntagged *bool                    `json:"deleteUntagged,omitempty"` // asked for; nil: the nodes' configuration
	StartedBy      string                   `json:"startedBy"`
	Requested      time.Time                `json:"requested"`
	Started        time.Time                `json:"started,omitzero"` // claimed by the leader
	Ended          time.Time                `json:"ended,omitzero"`
	Leader         string                   `json:"leader,omitempty"`
	Options        GCOptions                `json:"options"`
	MarkIndex      uint64                   `json:"markIndex,omitempty"`
	Mark           time.Duration            `json:"mark"`     // marking on the snapshot
	Pause          time.Duration            `json:"pause"`    // writes paused
	Duration       time.Duration            `json:"duration"` // claim to sweep committed
	Candidates     GCCounts                 `json:"candidates"`
	Reclaimed      GCCounts                 `json:"reclaimed"`
	Nodes          map[string]*GCNodeReport `json:"nodes,omitempty"`
	ExpectedNodes  []string                 `json:"expectedNodes,omitempty"` // nodes that delete files after the sweep
	Errors         []string                 `json:"errors,omitempty"`
}

// Active reports whether the run still holds the cluster's GC slot.
func (r *GCRun) Active() bool {
	return r.State == GCRequested || r.State == GCMarking || r.State == GCPaused
}

// GCOptions are the effective settings of a run.
type GCOptions struct {
	Now            time.Time     `json:"now"`
	GracePeriod    time.Duration `json:"gracePeriod"`
	Retention      time.Duration `json:"retention"`
	DeleteUntagged bool          `json:"deleteUntagged"`
	Workspace      string        `json:"workspace,omitempty"`
}

// ManifestRef names a manifest of a repository.
type ManifestRef struct {
	Repo   string `json:"r"`
	Digest Digest `json:"d"`
}

// SweptManifest is an untagged manifest a sweep removes, with its subject (its
// referrer entry goes with it).
type SweptManifest struct {
	Repo    string `json:"r"`
	Digest  Digest `json:"d"`
	Subject Digest `json:"s,omitempty"`
}

// SweptBlob is a blob a sweep removes: its size and the repositories it is
// linked into, as the mark found them.
type SweptBlob struct {
	Digest Digest
	Size   int64
	Repos  []string
}

// SweptBlobs encodes as one JSON string of lines "<digest> <size>[ <repo>...]":
// a sweep names tens of thousands of blobs, and decoding them as JSON objects
// would cost a good part of the write pause.
type SweptBlobs []SweptBlob

// text lays the blobs out as lines.
func (bs SweptBlobs) text() []byte {
	var b []byte
	for _, x := range bs {
		b = append(b, x.Digest...)
		b = append(b, ' ')
		b = strconv.AppendInt(b, x.Size, 10)
		for _, r := range x.Repos {
			b = append(b, ' ')
			b = append(b, r...)
		}
		b = append(b, '\n')
	}
	return b
}

// MarshalJSON implements json.Marshaler.
func (bs SweptBlobs) MarshalJSON() ([]byte, error) { return json.Marshal(string(bs.text())) }

// UnmarshalJSON implements json.Unmarshaler.
func (bs *SweptBlobs) UnmarshalJSON(data []byte) error {
	var s string
	if err := json.Unmarshal(data, &s); err != nil {
		return err
	}
	out, err := parseSweptBlobs(s)
	*bs = out
	return err
}

// parseSweptBlobs is the inverse of text.
func parseSweptBlobs(s string) (SweptBlobs, error) {
	out := make(SweptBlobs, 0, strings.Count(s, "\n"))
	for line := range strings.SplitSeq(s, "\n") {
		if line == "" {
			continue
		}
		f := strings.Fields(line)
		if len(f) < 2 {
			return nil, fmt.Errorf("swept blob line %q", line)
		}
		size, err := strconv.ParseInt(f[1], 10, 64)
		if err != nil {
			return nil, fmt.Errorf("swept blob line %q: %w", line, err)
		}
		x := SweptBlob{Digest: Digest(f[0]), Size: size}
		if len(f) > 2 {
			x.Repos = f[2:]
		}
		out = append(out, x)
	}
	return out, nil
}

// TrashRef names a trash item as the mark saw it: a later delete of the same
// name (which merges into the item and renews Deleted) keeps it from the sweep.
type TrashRef struct {
	Workspace string    `json:"w"`
	ID        string    `json:"i"`
	Kind      string    `json:"k"`
	Deleted   time.Time `json:"t"`
}

// DirtyEntry is what one command changed during a run that the run's sweep
// must not take: blobs pushed, linked or restored; manifests pushed, tagged,
// restored or moved to the trash (what they reach stays); trash items made,
// merged into or restored.
type DirtyEntry struct {
	Blobs     []Digest      `json:"b,omitempty"`
	Manifests []ManifestRef `json:"m,omitempty"`
	Items     []TrashRef    `json:"i,omitempty"`
}

// GC commands.

// GCStart asks for a run. Refused (ErrConflict) while another run is active.
type GCStart struct {
	ID             string    `json:"id"`
	By             string    `json:"by"`
	DryRun         bool      `json:"dryRun,omitempty"`
	Workspace      string    `json:"workspace,omitempty"`
	DeleteUntagged *bool     `json:"deleteUntagged,omitempty"`
	Time           time.Time `json:"time"`
}

// GCBegin is the leader claiming a requested run, with its effective options.
type GCBegin struct {
	ID      string    `json:"id"`
	Leader  string    `json:"leader"`
	Options GCOptions `json:"options"`
	Time    time.Time `json:"time"`
}

// GCPause pauses writes cluster-wide for the sweep.
type GCPause struct {
	ID     string    `json:"id"`
	Leader string    `json:"leader"`
	Time   time.Time `json:"time"`
}

// GCSweep removes what the staged plan (GCPlan) names but Exclude, and ends
// the pause. It is refused (ErrConflict) if a dirty entry after DirtyThrough
// exists. It is small: the plan went through Raft before the pause.
type GCSweep struct {
	ID            string        `json:"id"`
	Leader        string        `json:"leader"`
	DirtyThrough  uint64        `json:"dirtyThrough"`
	Exclude       GCExclusions  `json:"exclude"`
	Candidates    GCCounts      `json:"candidates"`
	Pause         time.Duration `json:"pause"` // up to the proposal; GCStats corrects it
	ExpectedNodes []string      `json:"expectedNodes,omitempty"`
	Time          time.Time     `json:"time"`
}

// GCExclusions are what a re-mark took back from a plan.
type GCExclusions struct {
	Blobs     []Digest      `json:"blobs,omitempty"`
	Manifests []ManifestRef `json:"manifests,omitempty"`
	Items     []TrashRef    `json:"items,omitempty"`
}

// GCFinish ends a run without a sweep: a dry run, nothing to reclaim, or a
// failure (State GCFailed, Error set).
type GCFinish struct {
	ID         string        `json:"id"`
	Leader     string        `json:"leader"`
	State      string        `json:"state"`
	MarkIndex  uint64        `json:"markIndex,omitempty"`
	Candidates GCCounts      `json:"candidates"`
	Mark       time.Duration `json:"mark"`
	Error      string        `json:"error,omitempty"`
	Time       time.Time     `json:"time"`
}

// GCAbort ends an active run without sweeping (its leader went away).
type GCAbort struct {
	ID     string    `json:"id"`
	Reason string    `json:"reason"`
	Time   time.Time `json:"time"`
}

// GCStats records the final pause and duration of a swept run, measured once
// writes resumed.
type GCStats struct {
	ID       string        `json:"id"`
	Pause    time.Duration `json:"pause"`
	Duration time.Duration `json:"duration"`
	Time     time.Time     `json:"time"`
}

// GCNodeDone is one node's report of its file deletions after a sweep.
type GCNodeDone struct {
	ID     string       `json:"id"`
	Node   string       `json:"node"`
	Report GCNodeReport `json:"report"`
	Time   time.Time    `json:"time"`
}

func (*GCStart) Type() CommandType    { return CmdGCStart }
func (*GCBegin) Type() CommandType    { return CmdGCBegin }
func (*GCPause) Type() CommandType    { return CmdGCPause }
func (*GCSweep) Type() CommandType    { return CmdGCSweep }
func (*GCFinish) Type() CommandType   { return CmdGCFinish }
func (*GCAbort) Type() CommandType    { return CmdGCAbort }
func (*GCStats) Type() CommandType    { return CmdGCStats }
func (*GCNodeDone) Type() CommandType { return CmdGCNodeDone }
func (*GCPlan) Type() CommandType     { return CmdGCPlan }

// NewGCRunID returns a run id for a run asked for at now: the time, so that
// ids sort by it, and 24 random bits. (Not used by Apply, which takes the id
// from the command.)
func NewGCRunID(now time.Time) string {
	var b [3]byte
	_, _ = rand.Read(b[:])
	return "gc-" + now.UTC().Format("20060102-150405") + "-" + hex.EncodeToString(b[:])
}

// ValidGCID reports whether id can name a run: 1 to 64 of [a-z0-9-].
func ValidGCID(id string) bool {
	if id == "" || len(id) > gcMaxIDLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// Reads.

// GetGCRun returns a run, or ErrGCRunUnknown.
func GetGCRun(r Reader, id string) (*GCRun, error) {
	run := &GCRun{}
	if err := getJSON(r, gcRunKey(id), run, ErrGCRunUnknown, id); err != nil {
		return nil, err
	}
	return run, nil
}

// ErrGCRunUnknown is the error for a run id that is not in the history.
var ErrGCRunUnknown = errors.New("meta: gc run unknown")

// ActiveGCRun returns the active run, or nil when there is none.
func ActiveGCRun(r Reader) (*GCRun, error) {
	id, err := r.Get(gcActiveKey)
	if errors.Is(err, ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return GetGCRun(r, string(id))
}

// WritesPaused reports whether a GC run has paused writes. The write path of
// every node asks before proposing; it is one point read when no run is active.
func WritesPaused(r Reader) (bool, error) {
	run, err := ActiveGCRun(r)
	if err != nil || run == nil {
		return false, err
	}
	return run.State == GCPaused, nil
}

// ListGCRuns returns the runs in the history, newest first.
func ListGCRuns(r Reader) ([]GCRun, error) {
	out := []GCRun{}
	err := scanPrefix(r, gcRunPrefix, nil, func(k, v []byte) error {
		var run GCRun
		if err := json.Unmarshal(v, &run); err != nil {
			return fmt.Errorf("meta: corrupt gc run %q: %w", k, err)
		}
		out = append(out, run)
		return nil
	})
	sort.SliceStable(out, func(i, j int) bool { return out[i].Requested.After(out[j].Requested) })
	return out, err
}

// GetSweptBlobs returns the blobs a run's sweep removed, for the nodes to delete
// their files; nil when the run swept nothing or its list was pruned.
func GetSweptBlobs(r Reader, id string) (SweptBlobs, error) {
	v, err := r.Get(gcSweptKey(id))
	if errors.Is(err, ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	out, err := parseSweptBlobs(string(v))
	if err != nil {
		return nil, fmt.Errorf("meta: corrupt swept list of %s: %w", id, err)
	}
	return out, nil
}

// ReadDirty returns the dirty entries after index after, and the index of the
// last one (after when there is none).
func ReadDirty(r Reader, after uint64) ([]DirtyEntry, uint64, error) {
	var out []DirtyEntry
	last := after
	err := scanPrefix(r, gcDirtyPrefix, gcDirtyKey(after+1), func(k, v []byte) error {
		var e DirtyEntry
		if err := json.Unmarshal(v, &e); err != nil {
			return fmt.Errorf("meta: corrupt dirty entry: %w", err)
		}
		out = append(out, e)
		last = binary.BigEndian.Uint64(k[len(gcDirtyPrefix):])
		return nil
	})
	return out, last, err
}

// Applies.

// noteDirty writes a dirty entry while a run is active.
func noteDirty(txn Txn, index uint64, e *DirtyEntry) error {
	if len(e.Blobs) == 0 && len(e.Manifests) == 0 && len(e.Items) == 0 {
		return nil
	}
	ok, err := has(txn, gcActiveKey)
	if err != nil || !ok {
		return err
	}
	return txn.Set(gcDirtyKey(index), encodeJSON(e))
}

func clearDirty(txn Txn) error {
	recs, err := collect(txn, gcDirtyPrefix)
	if err != nil {
		return err
	}
	for _, r := range recs {
		if err := txn.Delete(r.k); err != nil {
			return err
		}
	}
	return nil
}

func putRun(txn Txn, run *GCRun) error { return txn.Set(gcRunKey(run.ID), encodeJSON(run)) }

// activeRun returns the active run if it is id, else ErrConflict.
func activeRun(txn Txn, id string, states ...string) (*GCRun, error) {
	run, err := ActiveGCRun(txn)
	if err != nil {
		return nil, err
	}
	if run == nil || run.ID != id {
		return nil, fmt.Errorf("%w: gc run %s is not the active run", ErrConflict, id)
	}
	for _, s := range states {
		if run.State == s {
			return run, nil
		}
	}
	return nil, fmt.Errorf("%w: gc run %s is %s", ErrConflict, id, run.State)
}

// endRun gives the run its final state and frees the slot.
func endRun(txn Txn, run *GCRun, state string, at time.Time) error {
	run.State, run.Ended = state, at
	if err := putRun(txn, run); err != nil {
		return err
	}
	if err := txn.Delete(gcPlanKey(run.ID)); err != nil {
		return err
	}
	if err := txn.Delete(gcPlanBlobsKey(run.ID)); err != nil {
		return err
	}
	if err := clearDirty(txn); err != nil {
		return err
	}
	return txn.Delete(gcActiveKey)
}

func applyGCStart(txn Txn, c *GCStart) error {
	if !ValidGCID(c.ID) {
		return fmt.Errorf("%w: gc run id %q", ErrInvalid, c.ID)
	}
	if run, err := ActiveGCRun(txn); err != nil {
		return err
	} else if run != nil {
		return fmt.Errorf("%w: gc run %s is %s; one run at a time", ErrConflict, run.ID, run.State)
	}
	if ok, err := has(txn, gcRunKey(c.ID)); err != nil || ok {
		if err == nil {
			err = fmt.Errorf("%w: gc run %s", ErrExists, c.ID)
		}
		return err
	}
	if c.Workspace != "" {
		if _, err := GetWorkspace(txn, c.Workspace); err != nil {
			return err
		}
	}
	run := &GCRun{ID: c.ID, State: GCRequested, DryRun: c.DryRun, Workspace: c.Workspace,
		DeleteUntagged: c.DeleteUntagged, StartedBy: c.By, Requested: c.Time}
	if err := pruneGCHistory(txn); err != nil {
		return err
	}
	if err := putRun(txn, run); err != nil {
		return err
	}
	return txn.Set(gcActiveKey, []byte(c.ID))
}

// pruneGCHistory keeps the newest GCHistory-1 runs (room for the new one) and
// the swept lists of the newest GCSweptListsKept swept runs.
func pruneGCHistory(txn Txn) error {
	runs, err := ListGCRuns(txn)
	if err != nil {
		return err
	}
	swept := 0
	for i, run := range runs {
		if i >= GCHistory-1 {
			if err := txn.Delete(gcRunKey(run.ID)); err != nil {
				return err
			}
		}
		if ok, err := has(txn, gcSweptKey(run.ID)); err != nil {
			return err
		} else if ok {
			swept++
			if swept > GCSweptListsKept || i >= GCHistory-1 {
				if err := txn.Delete(gcSweptKey(run.ID)); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

func applyGCBegin(txn Txn, c *GCBegin) error {
	run, err := activeRun(txn, c.ID, GCRequested)
	if err != nil {
		return err
	}
	run.State, run.Leader, run.Started, run.Options = GCMarking, c.Leader, c.Time, c.Options
	return putRun(txn, run)
}

func applyGCPause(txn Txn, c *GCPause) error {
	run, err := activeRun(txn, c.ID, GCMarking)
	if err != nil {
		return err
	}
	if run.Leader != c.Leader {
		return fmt.Errorf("%w: gc run %s belongs to %s", ErrConflict, c.ID, run.Leader)
	}
	run.State = GCPaused
	return putRun(txn, run)
}

// stagedPlan is the part of a plan GCPlan stores besides its blobs (those are
// stored as lines under their own key: no JSON to decode in the pause).
type stagedPlan struct {
	MarkIndex uint64          `json:"markIndex"`
	Manifests []SweptManifest `json:"manifests,omitempty"`
	Items     []TrashRef      `json:"items,omitempty"`
	Mark      time.Duration   `json:"mark"`
}

func applyGCPlan(txn Txn, c *GCPlan) error {
	run, err := activeRun(txn, c.ID, GCMarking)
	if err != nil {
		return err
	}
	if run.Leader != c.Leader {
		return fmt.Errorf("%w: gc run %s belongs to %s", ErrConflict, c.ID, run.Leader)
	}
	if err := txn.Set(gcPlanKey(c.ID), encodeJSON(stagedPlan{MarkIndex: c.MarkIndex, Manifests: c.Manifests,
		Items: c.Items, Mark: c.Mark})); err != nil {
		return err
	}
	return txn.Set(gcPlanBlobsKey(c.ID), c.Blobs.text())
}

func applyGCSweep(txn Txn, c *GCSweep) error {
	run, err := activeRun(txn, c.ID, GCPaused)
	if err != nil {
		return err
	}
	if run.Leader != c.Leader {
		return fmt.Errorf("%w: gc run %s belongs to %s", ErrConflict, c.ID, run.Leader)
	}
	if _, last, err := ReadDirty(txn, c.DirtyThrough); err != nil {
		return err
	} else if last > c.DirtyThrough {
		return fmt.Errorf("%w: gc run %s: state changed after the re-mark (entry %d)", ErrConflict, c.ID, last)
	}
	var plan stagedPlan
	if err := getJSON(txn, gcPlanKey(c.ID), &plan, ErrConflict, "gc run "+c.ID+" has no staged plan"); err != nil {
		return err
	}
	var blobs SweptBlobs
	if v, err := txn.Get(gcPlanBlobsKey(c.ID)); err == nil {
		if blobs, err = parseSweptBlobs(string(v)); err != nil {
			return fmt.Errorf("meta: corrupt staged plan of %s: %w", c.ID, err)
		}
	} else if !errors.Is(err, ErrNotFound) {
		return err
	}
	exBlobs := make(map[Digest]bool, len(c.Exclude.Blobs))
	for _, d := range c.Exclude.Blobs {
		exBlobs[d] = true
	}
	exManifests := make(map[ManifestRef]bool, len(c.Exclude.Manifests))
	for _, m := range c.Exclude.Manifests {
		exManifests[m] = true
	}
	exItems := make(map[TrashRef]bool, len(c.Exclude.Items))
	for _, it := range c.Exclude.Items {
		exItems[TrashRef{Workspace: it.Workspace, ID: it.ID}] = true
	}
	// From here on only writes: the mark found every key on its snapshot,
	// and nothing that changed those keys since is in the sweep (the dirty
	// entries and the re-mark kept it out), so the sweep reads nothing more.
	// That keeps its apply, and with it the write pause, in milliseconds for
	// tens of thousands of records.
	var got GCCounts
	for _, it := range plan.Items {
		if exItems[TrashRef{Workspace: it.Workspace, ID: it.ID}] {
			continue
		}
		if err := deleteRange(txn, payloadPrefix(it.Workspace, it.ID), prefixEnd(payloadPrefix(it.Workspace, it.ID))); err != nil {
			return err
		}
		if err := txn.Delete(trashKey(it.Workspace, it.ID)); err != nil {
			return err
		}
		got.TrashItems++
		switch it.Kind {
		case TrashTag:
			got.Tags++
		case TrashManifest:
			got.Manifests++
		case TrashRepository:
			got.Repositories++
		case TrashWorkspace:
			got.Workspaces++
		}
	}
	for _, m := range plan.Manifests {
		if exManifests[ManifestRef{Repo: m.Repo, Digest: m.Digest}] {
			continue
		}
		if m.Subject != "" {
			if err := txn.Delete(referrerKey(m.Repo, m.Subject, m.Digest)); err != nil {
				return err
			}
		}
		if err := txn.Delete(manifestKey(m.Repo, m.Digest)); err != nil {
			return err
		}
		got.Manifests++
	}
	swept := make(SweptBlobs, 0, len(blobs))
	for _, b := range blobs {
		if exBlobs[b.Digest] {
			continue
		}
		for _, repo := range b.Repos {
			if err := txn.Delete(linkKey(repo, b.Digest)); err != nil {
				return err
			}
			if err := txn.Delete(blobRepoKey(b.Digest, repo)); err != nil {
				return err
			}
		}
		// Locations change without a dirty entry (replication): all of them go.
		if err := deleteRange(txn, blobNodePrefix(b.Digest), prefixEnd(blobNodePrefix(b.Digest))); err != nil {
			return err
		}
		if err := txn.Delete(blobKey(b.Digest)); err != nil {
			return err
		}
		swept = append(swept, SweptBlob{Digest: b.Digest, Size: b.Size})
		got.Blobs++
		got.Bytes += b.Size
	}
	if len(swept) > 0 {
		if err := txn.Set(gcSweptKey(c.ID), swept.text()); err != nil {
			return err
		}
	}
	run.MarkIndex, run.Candidates, run.Reclaimed = plan.MarkIndex, c.Candidates, got
	run.Mark, run.Pause, run.ExpectedNodes = plan.Mark, c.Pause, c.ExpectedNodes
	run.Duration = c.Time.Sub(run.Started)
	return endRun(txn, run, GCDone, c.Time)
}

// RangeDeleter is a Txn that deletes a key range in one step (a Pebble range
// tombstone) instead of key by key.
type RangeDeleter interface {
	DeleteRange(start, end []byte) error
}

// deleteRange deletes every key in [start, end).
func deleteRange(txn Txn, start, end []byte) error {
	if rd, ok := txn.(RangeDeleter); ok {
		return rd.DeleteRange(start, end)
	}
	var keys [][]byte
	err := txn.Scan(start, end, func(k, _ []byte) error {
		keys = append(keys, bytes.Clone(k))
		return nil
	})
	if err != nil {
		return err
	}
	for _, k := range keys {
		if err := txn.Delete(k); err != nil {
			return err
		}
	}
	return nil
}

func applyGCFinish(txn Txn, c *GCFinish) error {
	run, err := activeRun(txn, c.ID, GCMarking, GCPaused)
	if err != nil {
		return err
	}
	if run.Leader != c.Leader {
		return fmt.Errorf("%w: gc run %s belongs to %s", ErrConflict, c.ID, run.Leader)
	}
	state := c.State
	if state != GCFailed {
		state = GCDone
	}
	run.MarkIndex, run.Candidates, run.Mark = c.MarkIndex, c.Candidates, c.Mark
	run.Duration = c.Time.Sub(run.Started)
	if c.Error != "" {
		run.Errors = append(run.Errors, c.Error)
	}
	return endRun(txn, run, state, c.Time)
}

func applyGCAbort(txn Txn, c *GCAbort) error {
	run, err := activeRun(txn, c.ID, GCRequested, GCMarking, GCPaused)
	if err != nil {
		return err
	}
	run.Errors = append(run.Errors, "aborted: "+c.Reason)
	if !run.Started.IsZero() {
		run.Duration = c.Time.Sub(run.Started)
	}
	return endRun(txn, run, GCAborted, c.Time)
}

func applyGCStats(txn Txn, c *GCStats) error {
	run, err := GetGCRun(txn, c.ID)
	if errors.Is(err, ErrGCRunUnknown) {
		return nil // pruned meanwhile
	}
	if err != nil {
		return err
	}
	run.Pause, run.Duration = c.Pause, c.Duration
	return putRun(txn, run)
}

func applyGCNodeDone(txn Txn, c *GCNodeDone) error {
	if c.Node == "" {
		return fmt.Errorf("%w: gc node report without a node", ErrInvalid)
	}
	run, err := GetGCRun(txn, c.ID)
	if errors.Is(err, ErrGCRunUnknown) {
		return nil // pruned meanwhile
	}
	if err != nil {
		return err
	}
	if run.Nodes == nil {
		run.Nodes = map[string]*GCNodeReport{}
	}
	rep := c.Report
	run.Nodes[c.Node] = &rep
	return putRun(txn, run)
}

// Reachability.

// GCPlan is what a mark found: what the sweep would remove, and the mark's
// figures. As a command, the leader stages it (ID, Leader, MarkIndex, Mark,
// Time set) before it pauses writes: the sweep then only names what the
// re-mark took back from it.
type GCPlan struct {
	ID        string          `json:"id"`
	Leader    string          `json:"leader"`
	MarkIndex uint64          `json:"markIndex"`
	Mark      time.Duration   `json:"mark"`
	Blobs     SweptBlobs      `json:"blobs,omitempty"`     // unreachable blobs past the grace period
	Manifests []SweptManifest `json:"manifests,omitempty"` // untagged manifests nothing reaches (DeleteUntagged)
	Items     []TrashRef      `json:"items,omitempty"`     // trash items past the retention
	Time      time.Time       `json:"time"`

	Options GCOptions `json:"-"`
	Counts  GCCounts  `json:"-"` // what the plan removes, by kind (trash items by their kind too)
	// Figures of the mark.
	ScannedManifests int  `json:"-"`
	ScannedBlobs     int  `json:"-"`
	Reachable        int  `json:"-"`
	Truncated        bool `json:"-"` // more than one sweep may take: the rest waits for the next run
}

// manifestNode is a manifest in the mark graph.
type manifestNode struct {
	blobs    []Digest
	children []Digest
	subject  Digest
	pushed   time.Time
	tagged   bool
}

func nodeOf(info *ManifestInfo) *manifestNode {
	pushed := info.Pushed
	if pushed.IsZero() {
		pushed = info.Created
	}
	return &manifestNode{blobs: info.Blobs, children: info.Manifests, subject: info.Subject, pushed: pushed}
}

// Mark finds what a sweep may remove from the state r holds: everything that
// no live tag, live manifest (unless DeleteUntagged), kept trash item or young
// enough record reaches. Reachability follows configs and layers, index
// children, subjects (a referrer keeps its subject) and referrers (a subject
// keeps its referrers). r must be a consistent view (a snapshot). With a
// Workspace, only that workspace's manifests, trash items and blobs linked only
// there are candidates; the mark itself is global.
func Mark(r Reader, opts GCOptions) (*GCPlan, error) {
	plan := &GCPlan{Options: opts}
	w := &walker{
		live:      map[ManifestRef]*manifestNode{},
		referrers: map[ManifestRef][]Digest{},
		trashed:   map[string]map[ManifestRef]*manifestNode{},
		seen:      map[spaceRef]bool{},
		blobs:     map[Digest]bool{},
	}
	inScope := func(ws string) bool { return opts.Workspace == "" || ws == opts.Workspace }
	graceCut := opts.Now.Add(-opts.GracePeriod)

	// Live manifests.
	err := scanPrefix(r, []byte("m/"), nil, func(k, v []byte) error {
		repo, d, _ := splitRepoKey(k, "m/")
		info, err := decodeManifestHeader(v)
		if err != nil {
			return fmt.Errorf("meta: manifest %s@%s: %w", repo, d, err)
		}
		ref := ManifestRef{Repo: repo, Digest: Digest(d)}
		n := nodeOf(info)
		w.live[ref] = n
		if n.subject != "" {
			s := ManifestRef{Repo: repo, Digest: n.subject}
			w.referrers[s] = append(w.referrers[s], Digest(d))
		}
		plan.ScannedManifests++
		return nil
	})
	if err != nil {
		return nil, err
	}
	// Live tags.
	err = scanPrefix(r, []byte("t/"), nil, func(k, v []byte) error {
		repo, tag, _ := splitRepoKey(k, "t/")
		t, err := decodeTag(tag, v)
		if err != nil {
			return err
		}
		if n := w.live[ManifestRef{Repo: repo, Digest: t.Digest}]; n != nil {
			n.tagged = true
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	// Trash items: old ones are reclaimed, the others are roots.
	keep := map[string]bool{} // payload prefixes of kept items
	var keptTags []ManifestRef
	retentionCut := opts.Now.Add(-opts.Retention)
	err = scanPrefix(r, []byte("x/"), nil, func(k, v []byte) error {
		var it TrashItem
		if err := json.Unmarshal(v, &it); err != nil {
			return fmt.Errorf("meta: corrupt trash item %q: %w", k, err)
		}
		if !it.Deleted.After(retentionCut) && inScope(it.Workspace) {
			plan.Items = append(plan.Items, TrashRef{Workspace: it.Workspace, ID: it.ID, Kind: it.Kind, Deleted: it.Deleted})
			return nil
		}
		keep[string(payloadPrefix(it.Workspace, it.ID))] = true
		switch it.Kind {
		case TrashBlob:
			w.blobs[it.Digest] = true
		case TrashTag:
			keptTags = append(keptTags, ManifestRef{Repo: it.Repository, Digest: it.Digest})
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	err = scanPrefix(r, []byte("xp/"), nil, func(k, v []byte) error {
		// xp/<ws>\x00<id>\x00<original key>
		ws, rest, _ := strings.Cut(string(k[len("xp/"):]), sep)
		id, orig, _ := strings.Cut(rest, sep)
		pp := string(payloadPrefix(ws, id))
		if !keep[pp] || !strings.HasPrefix(orig, "m/") {
			return nil
		}
		repo, d, _ := splitRepoKey([]byte(orig), "m/")
		info, err := decodeManifestHeader(v)
		if err != nil {
			return fmt.Errorf("meta: trashed manifest %s@%s: %w", repo, d, err)
		}
		if w.trashed[pp] == nil {
			w.trashed[pp] = map[ManifestRef]*manifestNode{}
		}
		w.trashed[pp][ManifestRef{Repo: repo, Digest: Digest(d)}] = nodeOf(info)
		return nil
	})
	if err != nil {
		return nil, err
	}

	// The walk from the roots.
	for ref, n := range w.live {
		if n.tagged || !opts.DeleteUntagged || n.pushed.After(graceCut) || !inScope(WorkspaceOf(ref.Repo)) {
			w.walk(spaceRef{ref: ref})
		}
	}
	for pp, ms := range w.trashed {
		for ref := range ms {
			w.walk(spaceRef{ref: ref, space: pp})
		}
	}
	for _, ref := range keptTags {
		w.walk(spaceRef{ref: ref}) // restoring the tag needs its manifest
	}
	if opts.DeleteUntagged {
		for ref, n := range w.live {
			if !w.seen[spaceRef{ref: ref}] && inScope(WorkspaceOf(ref.Repo)) {
				plan.Manifests = append(plan.Manifests, SweptManifest{Repo: ref.Repo, Digest: ref.Digest, Subject: n.subject})
			}
		}
		sort.Slice(plan.Manifests, func(i, j int) bool {
			a, b := plan.Manifests[i], plan.Manifests[j]
			return a.Repo < b.Repo || a.Repo == b.Repo && a.Digest < b.Digest
		})
	}
	plan.Reachable = len(w.seen)

	// Blobs.
	err = ScanBlobs(r, "", func(b *Blob) error {
		plan.ScannedBlobs++
		if w.blobs[b.Digest] || b.Created.After(graceCut) || b.Pushed.After(graceCut) {
			return nil
		}
		plan.Blobs = append(plan.Blobs, SweptBlob{Digest: b.Digest, Size: b.Size})
		return nil
	})
	if err != nil {
		return nil, err
	}
	// The repositories each candidate is linked into: the sweep deletes
	// those links without reading them.
	if err := blobRepos(r, plan.Blobs); err != nil {
		return nil, err
	}
	if opts.Workspace != "" {
		kept := plan.Blobs[:0]
	blobs:
		for _, b := range plan.Blobs {
			if len(b.Repos) == 0 {
				continue // nobody's: only an unscoped run takes it
			}
			for _, repo := range b.Repos {
				if !inScope(WorkspaceOf(repo)) {
					continue blobs
				}
			}
			kept = append(kept, b)
		}
		plan.Blobs = kept
	}
	if len(plan.Blobs) > GCMaxSweepBlobs {
		plan.Blobs, plan.Truncated = plan.Blobs[:GCMaxSweepBlobs], true
	}
	if len(plan.Manifests) > GCMaxSweepOthers {
		plan.Manifests, plan.Truncated = plan.Manifests[:GCMaxSweepOthers], true
	}
	if len(plan.Items) > GCMaxSweepOthers {
		plan.Items, plan.Truncated = plan.Items[:GCMaxSweepOthers], true
	}
	plan.count()
	return plan, nil
}

// blobRepos fills in the repositories each blob is linked into: one scan of
// the blob-to-repository index per blob for a few, one scan of the whole index
// for many (an iterator per blob costs more than a pass over the table).
func blobRepos(r Reader, blobs SweptBlobs) error {
	if len(blobs) <= 256 {
		for i := range blobs {
			repos, err := ReposWithBlob(r, blobs[i].Digest)
			if err != nil {
				return err
			}
			blobs[i].Repos = repos
		}
		return nil
	}
	at := make(map[Digest]int, len(blobs))
	for i, b := range blobs {
		at[b.Digest] = i
	}
	return scanPrefix(r, []byte("bl/"), nil, func(k, _ []byte) error {
		d, repo, _ := splitRepoKey(k, "bl/")
		if i, ok := at[Digest(d)]; ok {
			blobs[i].Repos = append(blobs[i].Repos, repo)
		}
		return nil
	})
}

// count sets Counts from the plan's lists.
func (p *GCPlan) count() {
	c := GCCounts{Blobs: len(p.Blobs), Manifests: len(p.Manifests), TrashItems: len(p.Items)}
	for _, b := range p.Blobs {
		c.Bytes += b.Size
	}
	for _, it := range p.Items {
		switch it.Kind {
		case TrashTag:
			c.Tags++
		case TrashManifest:
			c.Manifests++
		case TrashRepository:
			c.Repositories++
		case TrashWorkspace:
			c.Workspaces++
		}
	}
	p.Counts = c
}

// Empty reports whether the plan reclaims nothing.
func (p *GCPlan) Empty() bool {
	return len(p.Blobs) == 0 && len(p.Manifests) == 0 && len(p.Items) == 0
}

// spaceRef is a manifest in a space: the live key space ("") or the payload
// of a trash item (its payload prefix).
type spaceRef struct {
	ref   ManifestRef
	space string
}

// walker marks manifests and blobs reachable from roots. Mark gives it the
// whole graph in maps; Remark gives it a Reader (r) to look things up in the
// current state.
type walker struct {
	live      map[ManifestRef]*manifestNode
	referrers map[ManifestRef][]Digest
	trashed   map[string]map[ManifestRef]*manifestNode // payload prefix -> manifests
	r         Reader

	seen  map[spaceRef]bool
	blobs map[Digest]bool
}

// lookup finds a manifest in its space; a manifest of a trash item's payload
// may name children that are live (a deleted index of live images), so a miss
// in a payload falls back to the live space.
func (w *walker) lookup(s spaceRef) (*manifestNode, string) {
	if s.space != "" {
		if n := w.trashedNode(s); n != nil {
			return n, s.space
		}
	}
	if w.r == nil {
		return w.live[s.ref], ""
	}
	info, _, err := getManifest(w.r, s.ref.Repo, s.ref.Digest)
	if err == nil {
		return nodeOf(info), ""
	}
	// Deleted since it was pushed: its item keeps what it needs.
	ws := WorkspaceOf(s.ref.Repo)
	for _, id := range []string{ManifestItemID(s.ref.Repo, s.ref.Digest), RepositoryItemID(s.ref.Repo), WorkspaceItemID(ws)} {
		pp := string(payloadPrefix(ws, id))
		if n := w.trashedNode(spaceRef{ref: s.ref, space: pp}); n != nil {
			return n, pp
		}
	}
	return nil, ""
}

func (w *walker) trashedNode(s spaceRef) *manifestNode {
	if w.r == nil {
		return w.trashed[s.space][s.ref]
	}
	v, err := w.r.Get(append([]byte(s.space), manifestKey(s.ref.Repo, s.ref.Digest)...))
	if err != nil {
		return nil
	}
	info, err := decodeManifestHeader(v)
	if err != nil {
		return nil
	}
	return nodeOf(info)
}

func (w *walker) referrersOf(ref ManifestRef) []Digest {
	if w.r == nil {
		return w.referrers[ref]
	}
	refs, err := ListReferrers(w.r, ref.Repo, ref.Digest, "")
	if err != nil {
		return nil
	}
	out := make([]Digest, len(refs))
	for i, x := range refs {
		out[i] = x.Digest
	}
	return out
}

// walk marks root and everything it reaches, iteratively (indexes of indexes
// and chains of referrers can be deep; content addressing rules out cycles,
// seen makes each manifest count once anyway).
func (w *walker) walk(root spaceRef) {
	stack := []spaceRef{root}
	for len(stack) > 0 {
		s := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		n, space := w.lookup(s)
		if n == nil {
			continue
		}
		s.space = space
		if w.seen[s] {
			continue
		}
		w.seen[s] = true
		repo := s.ref.Repo
		for _, d := range n.blobs {
			w.blobs[d] = true
			// An artifact may name another manifest of the repository as a blob.
			if w.r != nil || w.live[ManifestRef{Repo: repo, Digest: d}] != nil || space != "" {
				stack = append(stack, spaceRef{ref: ManifestRef{Repo: repo, Digest: d}, space: space})
			}
		}
		w.blobs[s.ref.Digest] = true
		for _, c := range n.children {
			stack = append(stack, spaceRef{ref: ManifestRef{Repo: repo, Digest: c}, space: space})
		}
		if n.subject != "" {
			stack = append(stack, spaceRef{ref: ManifestRef{Repo: repo, Digest: n.subject}, space: space})
		}
		if space == "" {
			for _, d := range w.referrersOf(s.ref) {
				stack = append(stack, spaceRef{ref: ManifestRef{Repo: repo, Digest: d}})
			}
		}
	}
}

// Remark takes back from plan what the dirty entries and the touched digests
// made reachable since the mark: touched and dirty blobs, dirty trash items,
// and everything a dirty manifest reaches in the current state r; it returns
// what it took back. Writes are paused while it runs, so r does not change
// under it. It may run again with more entries: what it took stays taken.
func Remark(r Reader, plan *GCPlan, dirty []DirtyEntry, touched []Digest) GCExclusions {
	var ex GCExclusions
	w := &walker{r: r, seen: map[spaceRef]bool{}, blobs: map[Digest]bool{}}
	for _, d := range touched {
		w.blobs[d] = true
	}
	items := map[TrashRef]bool{}
	for _, e := range dirty {
		for _, d := range e.Blobs {
			w.blobs[d] = true
		}
		for _, m := range e.Manifests {
			w.walk(spaceRef{ref: m})
		}
		for _, it := range e.Items {
			items[TrashRef{Workspace: it.Workspace, ID: it.ID}] = true
		}
	}
	if len(w.blobs) == 0 && len(w.seen) == 0 && len(items) == 0 {
		return ex
	}
	its := plan.Items[:0]
	for _, it := range plan.Items {
		if items[TrashRef{Workspace: it.Workspace, ID: it.ID}] {
			ex.Items = append(ex.Items, TrashRef{Workspace: it.Workspace, ID: it.ID})
		} else {
			its = append(its, it)
		}
	}
	plan.Items = its
	blobs := plan.Blobs[:0]
	for _, b := range plan.Blobs {
		if w.blobs[b.Digest] {
			ex.Blobs = append(ex.Blobs, b.Digest)
		} else {
			blobs = append(blobs, b)
		}
	}
	plan.Blobs = blobs
	ms := plan.Manifests[:0]
	for _, m := range plan.Manifests {
		ref := ManifestRef{Repo: m.Repo, Digest: m.Digest}
		if w.seen[spaceRef{ref: ref}] {
			ex.Manifests = append(ex.Manifests, ref)
		} else {
			ms = append(ms, m)
		}
	}
	plan.Manifests = ms
	plan.count()
	return ex
}

// Add appends more exclusions (a second re-mark's).
func (e *GCExclusions) Add(more GCExclusions) {
	e.Blobs = append(e.Blobs, more.Blobs...)
	e.Manifests = append(e.Manifests, more.Manifests...)
	e.Items = append(e.Items, more.Items...)
}

// decodeManifestHeader decodes a manifest record's header without copying its
// content.
func decodeManifestHeader(v []byte) (*ManifestInfo, error) {
	n, w := binary.Uvarint(v)
	if w <= 0 || uint64(len(v)-w) < n {
		return nil, errors.New("corrupt manifest record")
	}
	var info ManifestInfo
	if err := json.Unmarshal(v[w:w+int(n)], &info); err != nil {
		return nil, err
	}
	return &info, nil
}

// GCStats and GCNodeDone only add information: a node that does not know them
// may skip them.
func (*GCStats) Ignorable() bool    { return true }
func (*GCNodeDone) Ignorable() bool { return true }
