package meta

import (
	"bytes"
	"errors"
	"fmt"
	"sort"
	"testing"
	"time"
)

// reverseTxn is memTxn with ScanReverse, as the Pebble reader has it.
type reverseTxn struct{ *memTxn }

func (t reverseTxn) ScanReverse(start, end []byte, fn func(k, v []byte) error) error {
	var keys []string
	for k := range t.m {
		if bytes.Compare([]byte(k), start) >= 0 && (end == nil || bytes.Compare([]byte(k), end) < 0) {
			keys = append(keys, k)
		}
	}
	sort.Sort(sort.Reverse(sort.StringSlice(keys)))
	for _, k := range keys {
		if err := fn([]byte(k), t.m[k]); err != nil {
			return err
		}
	}
	return nil
}

var auditT0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

func auditEv(i int, user, action, ws, project string) AuditEvent {
	at := auditT0.Add(time.Duration(i) * time.Minute)
	return AuditEvent{ID: AuditID(at, "n1", uint64(i)), Time: at, Node: "n1", User: user, Action: action,
		Workspace: ws, Project: project, Outcome: AuditSuccess, Status: 201}
}

func applyAudit(t *testing.T, txn Txn, c *AppendAudit) any {
	t.Helper()
	data, err := Encode(c)
	if err != nil {
		t.Fatal(err)
	}
	if data[2]&flagIgnorable == 0 {
		t.Fatalf("AppendAudit is not encoded as ignorable")
	}
	return Apply(txn, 1, data)
}

func auditIDs(evs []AuditEvent) []string {
	out := []string{}
	for _, e := range evs {
		out = append(out, e.ID)
	}
	return out
}

func TestAppendAuditAndList(t *testing.T) {
	txn := newMemTxn()
	var evs []AuditEvent
	for i := range 10 {
		user, ws, project := "alice", "a", "p"
		if i%2 == 1 {
			user, ws, project = "bob", "b", "q"
		}
		action := "manifest.push"
		if i%3 == 0 {
			action = "login"
		}
		evs = append(evs, auditEv(i, user, action, ws, project))
	}
	if r := applyAudit(t, txn, &AppendAudit{Events: evs[:6]}); r != nil {
		t.Fatal(r)
	}
	// A batch proposed twice (a retry) stores each event once.
	if r := applyAudit(t, txn, &AppendAudit{Events: evs[4:]}); r != nil {
		t.Fatal(r)
	}
	if n, _ := AuditCount(txn); n != 10 {
		t.Fatalf("count %d, want 10", n)
	}
	id := func(is ...int) []string {
		out := []string{}
		for _, i := range is {
			out = append(out, evs[i].ID)
		}
		return out
	}
	for _, rd := range []Reader{txn, reverseTxn{txn}} {
		for _, tc := range []struct {
			name string
			f    AuditFilter
			want []string
			next string
		}{
			{"all newest first", AuditFilter{}, id(9, 8, 7, 6, 5, 4, 3, 2, 1, 0), ""},
			{"user", AuditFilter{User: "bob"}, id(9, 7, 5, 3, 1), ""},
			{"action", AuditFilter{Action: "login"}, id(9, 6, 3, 0), ""},
			{"workspace", AuditFilter{Workspace: "a"}, id(8, 6, 4, 2, 0), ""},
			{"projects scope", AuditFilter{Projects: map[string]bool{"q": true}}, id(9, 7, 5, 3, 1), ""},
			{"no projects", AuditFilter{Projects: map[string]bool{}}, id(), ""},
			{"since until", AuditFilter{Since: evs[2].Time, Until: evs[5].Time}, id(4, 3, 2), ""},
			{"page", AuditFilter{Limit: 3}, id(9, 8, 7), evs[7].ID},
			{"next page", AuditFilter{Limit: 3, Before: evs[7].ID}, id(6, 5, 4), evs[4].ID},
			{"combined", AuditFilter{User: "alice", Action: "manifest.push"}, id(8, 4, 2), ""},
		} {
			got, next, err := ListAudit(rd, tc.f)
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(auditIDs(got)) != fmt.Sprint(tc.want) || next != tc.next {
				t.Errorf("%T %s: got %v next %q, want %v next %q", rd, tc.name, auditIDs(got), next, tc.want, tc.next)
			}
		}
	}
	// A bounded scan continues where it stopped.
	got, next, _ := ListAudit(reverseTxn{txn}, AuditFilter{User: "alice", MaxScan: 3})
	if fmt.Sprint(auditIDs(got)) != fmt.Sprint(id(8)) || next != evs[7].ID {
		t.Errorf("bounded scan: got %v next %q", auditIDs(got), next)
	}
}

func TestAppendAuditRetention(t *testing.T) {
	txn := newMemTxn()
	var evs []AuditEvent
	for i := range 10 {
		evs = append(evs, auditEv(i, "u", "login", "", ""))
	}
	// Keep caps the count: the oldest go first.
	if r := applyAudit(t, txn, &AppendAudit{Events: evs[:6], Keep: 4}); r != nil {
		t.Fatal(r)
	}
	got, _, _ := ListAudit(txn, AuditFilter{})
	if want := []string{evs[5].ID, evs[4].ID, evs[3].ID, evs[2].ID}; fmt.Sprint(auditIDs(got)) != fmt.Sprint(want) {
		t.Fatalf("after cap: %v, want %v", auditIDs(got), want)
	}
	// MaxAge drops what is older than the newest event of the command minus
	// MaxAge (event 9 at +9m, 5 minutes: events before +4m go).
	if r := applyAudit(t, txn, &AppendAudit{Events: evs[9:], Keep: 100, MaxAge: 5 * time.Minute}); r != nil {
		t.Fatal(r)
	}
	got, _, _ = ListAudit(txn, AuditFilter{})
	if want := []string{evs[9].ID, evs[5].ID, evs[4].ID}; fmt.Sprint(auditIDs(got)) != fmt.Sprint(want) {
		t.Fatalf("after max age: %v, want %v", auditIDs(got), want)
	}
	if n, _ := AuditCount(txn); n != 3 {
		t.Fatalf("count %d, want 3", n)
	}
}

func TestAppendAuditRefusesBadEvents(t *testing.T) {
	good := auditEv(1, "u", "login", "", "")
	for name, mut := range map[string]func(e *AuditEvent){
		"id not of its time": func(e *AuditEvent) { e.ID = AuditID(e.Time.Add(time.Second), "n1", 1) },
		"short id":           func(e *AuditEvent) { e.ID = "x" },
		"no action":          func(e *AuditEvent) { e.Action = "" },
		"bad outcome":        func(e *AuditEvent) { e.Outcome = "maybe" },
		"zero time":          func(e *AuditEvent) { e.Time = time.Time{}; e.ID = AuditID(e.Time, "n1", 1) },
	} {
		txn := newMemTxn()
		bad := good
		mut(&bad)
		r := applyAudit(t, txn, &AppendAudit{Events: []AuditEvent{good, bad}})
		if err, _ := r.(error); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: got %v, want ErrInvalid", name, r)
		}
		if len(txn.m) != 0 {
			t.Errorf("%s: a refused command wrote %d keys", name, len(txn.m))
		}
	}
}

func TestRelocateBlobsAndCount(t *testing.T) {
	txn := seededTxn(t)
	d1, d2 := DigestOf("sha256", []byte("one")), DigestOf("sha256", []byte("two"))
	for _, c := range []Command{
		&PutBlob{Repo: "a/x", Digest: d1, Size: 3, Nodes: []string{"old1", "old2"}, Time: auditT0},
		&PutBlob{Repo: "a/x", Digest: d2, Size: 3, Nodes: []string{"old3"}, Time: auditT0},
	} {
		data, _ := Encode(c)
		if r := Apply(txn, 1, data); r != nil {
			t.Fatal(r)
		}
	}
	n, err := RelocateBlobs(txn, "new", func(d Digest) bool { return d == d1 })
	if err != nil || n != 1 {
		t.Fatalf("relocate: %d %v", n, err)
	}
	if locs, _ := BlobLocations(txn, d1); fmt.Sprint(locs) != "[new]" {
		t.Errorf("d1 locations %v, want [new]", locs)
	}
	if locs, _ := BlobLocations(txn, d2); len(locs) != 0 {
		t.Errorf("d2 locations %v, want none", locs)
	}
	c, err := Count(txn)
	if err != nil {
		t.Fatal(err)
	}
	if c.Blobs != 2 || c.BlobBytes != 6 || c.Repositories != 1 || c.Workspaces != 5 || c.Projects != 1 {
		t.Errorf("counts %+v", c)
	}
}
