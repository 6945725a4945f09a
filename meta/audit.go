package meta

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"
)

// The audit log: who did what, when, from where, and how it ended. Events are
// built by the API at the edge (with the proposing node's clock), batched by the
// node and appended through Raft with AppendAudit, so every node holds the same
// log. Keys are time-ordered:
//
//	a/<id>   -> AuditEvent   id = 16 hex digits of the event's Unix nanoseconds, '-', node, '-', sequence
//	ac/count -> uint64       number of a/ keys (big-endian), kept by AppendAudit for the count cap
//
// Retention is applied inside AppendAudit, deterministically from the command:
// events older than the newest event time it carries minus MaxAge are dropped,
// then the oldest ones beyond Keep.

// Audit outcomes.
const (
	AuditSuccess = "success"
	AuditFailure = "failure"
)

// Retention defaults of AppendAudit.
const (
	DefaultAuditKeep   = 1_000_000
	DefaultAuditMaxAge = 90 * 24 * time.Hour
)

// AuditEvent is one entry of the audit log. It never holds a secret: login
// events carry the name that was tried, not the password.
type AuditEvent struct {
	ID   string    `json:"id"`
	Time time.Time `json:"time"`
	Node string    `json:"node"` // the node that served the request
	// User is the caller (user name or robot login); "" when unknown, such as
	// a request whose token did not verify.
	User         string `json:"user,omitempty"`
	ClientIP     string `json:"client_ip,omitempty"`
	ForwardedFor string `json:"forwarded_for,omitempty"` // X-Forwarded-For as sent, not trusted
	// Action names what was attempted: manifest.push, manifest.delete,
	// tag.delete, blob.delete, login, users.create, projects.members.put, ...
	Action    string `json:"action"`
	Object    string `json:"object,omitempty"` // what it was done to: repo:tag, repo@digest, users/alice, ...
	Digest    Digest `json:"digest,omitempty"`
	Workspace string `json:"workspace,omitempty"`
	Project   string `json:"project,omitempty"` // the project that owned Workspace (or was acted on)
	Outcome   string `json:"outcome"`           // AuditSuccess or AuditFailure
	Status    int    `json:"status,omitempty"`  // the HTTP status answered
	RequestID string `json:"request_id,omitempty"`
	Detail    string `json:"detail,omitempty"`
}

// AppendAudit appends audit events (ids already assigned by the proposer; an id
// already stored is skipped, so a batch proposed twice is stored once) and
// trims the log.
type AppendAudit struct {
	Events []AuditEvent  `json:"events"`
	Keep   int           `json:"keep,omitempty"`    // most events kept; 0: DefaultAuditKeep
	MaxAge time.Duration `json:"max_age,omitempty"` // oldest kept, before the newest event of the command; 0: DefaultAuditMaxAge
}

func (*AppendAudit) Type() CommandType { return CmdAppendAudit }

// Ignorable implements the optional flag of Encode: the audit log only adds
// information, so a node of an older version that does not know the command
// skips it instead of stopping (its copy of the log then lacks these events).
func (*AppendAudit) Ignorable() bool { return true }

var (
	auditPrefix   = []byte("a/")
	auditCountKey = []byte("ac/count")
)

func auditKey(id string) []byte { return append(append([]byte(nil), auditPrefix...), id...) }

// auditTimeKey is the smallest key of events at or after t.
func auditTimeKey(t time.Time) []byte {
	return append(append([]byte(nil), auditPrefix...), auditTimeHex(t)...)
}

func auditTimeHex(t time.Time) string {
	ns := t.UnixNano()
	if ns < 0 {
		ns = 0
	}
	return fmt.Sprintf("%016x", uint64(ns))
}

// AuditID returns the id of an event recorded at t by node with a per-node
// sequence number: ids sort by time, and are unique per node and sequence.
func AuditID(t time.Time, node string, seq uint64) string {
	return auditTimeHex(t) + "-" + node + "-" + strconv.FormatUint(seq, 16)
}

// check refuses an event whose id does not start with its own time (the key
// order would not be the time order) or that lacks the required fields.
func (e *AuditEvent) check() error {
	if e.Time.UnixNano() <= 0 || len(e.ID) < 18 || e.ID[:16] != auditTimeHex(e.Time) || e.ID[16] != '-' {
		return fmt.Errorf("%w: audit event id %q does not carry its time", ErrInvalid, e.ID)
	}
	for _, c := range []byte(e.ID) {
		if c < 0x21 || c > 0x7e {
			return fmt.Errorf("%w: audit event id %q", ErrInvalid, e.ID)
		}
	}
	if e.Action == "" || (e.Outcome != AuditSuccess && e.Outcome != AuditFailure) {
		return fmt.Errorf("%w: audit event %s without action or outcome", ErrInvalid, e.ID)
	}
	return nil
}

func applyAppendAudit(txn Txn, c *AppendAudit) error {
	for i := range c.Events {
		if err := c.Events[i].check(); err != nil {
			return err
		}
	}
	count, err := auditCount(txn)
	if err != nil {
		return err
	}
	var newest time.Time
	for i := range c.Events {
		ev := &c.Events[i]
		if ev.Time.After(newest) {
			newest = ev.Time
		}
		k := auditKey(ev.ID)
		ok, err := has(txn, k)
		if err != nil {
			return err
		}
		if ok {
			continue
		}
		if err := txn.Set(k, encodeJSON(ev)); err != nil {
			return err
		}
		count++
	}
	keep, maxAge := c.Keep, c.MaxAge
	if keep <= 0 {
		keep = DefaultAuditKeep
	}
	if maxAge <= 0 {
		maxAge = DefaultAuditMaxAge
	}
	var cutoff []byte // events with keys below it are too old
	if !newest.IsZero() {
		cutoff = auditTimeKey(newest.Add(-maxAge))
	}
	var drop [][]byte
	err = scanPrefix(txn, auditPrefix, nil, func(k, _ []byte) error {
		tooOld := cutoff != nil && bytes.Compare(k, cutoff) < 0
		if !tooOld && count-uint64(len(drop)) <= uint64(keep) {
			return ErrStopScan
		}
		drop = append(drop, append([]byte(nil), k...))
		return nil
	})
	if err != nil {
		return err
	}
	for _, k := range drop {
		if err := txn.Delete(k); err != nil {
			return err
		}
	}
	count -= uint64(len(drop))
	var v [8]byte
	binary.BigEndian.PutUint64(v[:], count)
	return txn.Set(auditCountKey, v[:])
}

func auditCount(r Reader) (uint64, error) {
	v, err := r.Get(auditCountKey)
	if errors.Is(err, ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	if len(v) != 8 {
		return 0, fmt.Errorf("meta: corrupt audit count (%d bytes)", len(v))
	}
	return binary.BigEndian.Uint64(v), nil
}

// AuditCount returns how many events the audit log holds.
func AuditCount(r Reader) (uint64, error) { return auditCount(r) }

// ReverseScanner is implemented by a Reader that can also scan in descending
// key order. ListAudit uses it to read the newest events first without reading
// the older ones; without it, it reads the whole time range forwards.
type ReverseScanner interface {
	// ScanReverse calls fn for every key in [start, end) in descending order,
	// with the contract of Reader.Scan.
	ScanReverse(start, end []byte, fn func(key, value []byte) error) error
}

// AuditFilter selects audit events. Zero fields select everything.
type AuditFilter struct {
	User, Action, Workspace, Project, Outcome string
	// Projects, when not nil, keeps only events whose Project is in it (the
	// projects a project admin administers).
	Projects map[string]bool
	// Since and Until bound the event time: Since <= time < Until.
	Since, Until time.Time
	// Before continues a listing: only events with ids below it (older).
	Before string
	// Limit is the most events returned (<= 0: 100).
	Limit int
	// MaxScan bounds the events looked at by one call (<= 0: 100,000), so a
	// selective filter over a long log answers in bounded time; the listing then
	// continues from the next value returned.
	MaxScan int
}

func (f *AuditFilter) match(e *AuditEvent) bool {
	return (f.User == "" || e.User == f.User) && (f.Action == "" || e.Action == f.Action) &&
		(f.Workspace == "" || e.Workspace == f.Workspace) && (f.Project == "" || e.Project == f.Project) &&
		(f.Outcome == "" || e.Outcome == f.Outcome) && (f.Projects == nil || f.Projects[e.Project])
}

// ListAudit returns the events that match f, newest first, and the value of
// Before for the next page ("" when there is none).
func ListAudit(r Reader, f AuditFilter) ([]AuditEvent, string, error) {
	if f.Limit <= 0 {
		f.Limit = 100
	}
	if f.MaxScan <= 0 {
		f.MaxScan = 100_000
	}
	start, end := auditPrefix, prefixEnd(auditPrefix)
	if !f.Since.IsZero() {
		start = auditTimeKey(f.Since)
	}
	if !f.Until.IsZero() {
		if k := auditTimeKey(f.Until); bytes.Compare(k, end) < 0 {
			end = k
		}
	}
	if f.Before != "" {
		if k := auditKey(f.Before); bytes.Compare(k, end) < 0 {
			end = k
		}
	}
	if bytes.Compare(start, end) >= 0 {
		return nil, "", nil
	}
	rs, ok := r.(ReverseScanner)
	if !ok {
		return listAuditForward(r, f, start, end)
	}
	var out []AuditEvent
	next, looked, scanned := "", "", 0
	err := rs.ScanReverse(start, end, func(k, v []byte) error {
		if len(out) == f.Limit {
			next = out[len(out)-1].ID
			return ErrStopScan
		}
		if scanned++; scanned > f.MaxScan {
			next = looked // continue below the last event looked at
			return ErrStopScan
		}
		looked = string(k[len(auditPrefix):])
		var e AuditEvent
		if err := json.Unmarshal(v, &e); err != nil {
			return fmt.Errorf("meta: corrupt audit event %q: %w", k, err)
		}
		if f.match(&e) {
			out = append(out, e)
		}
		return nil
	})
	if errors.Is(err, ErrStopScan) {
		err = nil
	}
	return out, next, err
}

// listAuditForward is ListAudit for a Reader without ScanReverse: it reads the
// whole range and keeps the newest matches.
func listAuditForward(r Reader, f AuditFilter, start, end []byte) ([]AuditEvent, string, error) {
	var all []AuditEvent
	err := r.Scan(start, end, func(k, v []byte) error {
		var e AuditEvent
		if err := json.Unmarshal(v, &e); err != nil {
			return fmt.Errorf("meta: corrupt audit event %q: %w", k, err)
		}
		if f.match(&e) {
			all = append(all, e)
		}
		return nil
	})
	if errors.Is(err, ErrStopScan) {
		err = nil
	}
	if err != nil {
		return nil, "", err
	}
	out := make([]AuditEvent, 0, min(len(all), f.Limit))
	for i := len(all) - 1; i >= 0 && len(out) < f.Limit; i-- {
		out = append(out, all[i])
	}
	next := ""
	if len(all) > f.Limit {
		next = out[len(out)-1].ID
	}
	return out, next, nil
}
