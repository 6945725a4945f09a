package cluster

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/cockroachdb/pebble"
	"github.com/hashicorp/raft"
)

func openDB(t *testing.T, dir string) *pebble.DB {
	t.Helper()
	db, err := pebble.Open(dir, &pebble.Options{})
	if err != nil {
		t.Fatalf("pebble.Open: %v", err)
	}
	return db
}

func newTestLogStore(t *testing.T) (*LogStore, *pebble.DB) {
	t.Helper()
	db := openDB(t, t.TempDir())
	t.Cleanup(func() { db.Close() })
	s, err := NewLogStore(db)
	if err != nil {
		t.Fatalf("NewLogStore: %v", err)
	}
	return s, db
}

func testLog(i uint64) *raft.Log {
	return &raft.Log{
		Index:      i,
		Term:       i/10 + 1,
		Type:       raft.LogCommand,
		Data:       []byte{byte(i), byte(i >> 8), 'x'},
		AppendedAt: time.Unix(1700000000, int64(i)),
	}
}

func logs(lo, hi uint64) []*raft.Log {
	var out []*raft.Log
	for i := lo; i <= hi; i++ {
		out = append(out, testLog(i))
	}
	return out
}

func assertBounds(t *testing.T, s *LogStore, first, last uint64) {
	t.Helper()
	f, err := s.FirstIndex()
	if err != nil {
		t.Fatalf("FirstIndex: %v", err)
	}
	l, err := s.LastIndex()
	if err != nil {
		t.Fatalf("LastIndex: %v", err)
	}
	if f != first || l != last {
		t.Fatalf("bounds: got [%d, %d], want [%d, %d]", f, l, first, last)
	}
}

func equalLog(a, b *raft.Log) bool {
	return a.Index == b.Index && a.Term == b.Term && a.Type == b.Type &&
		bytes.Equal(a.Data, b.Data) && bytes.Equal(a.Extensions, b.Extensions) &&
		a.AppendedAt.Equal(b.AppendedAt)
}

func TestLogStore(t *testing.T) {
	type deleteOp struct{ lo, hi uint64 }
	tests := []struct {
		name        string
		store       []*raft.Log          // stored with StoreLogs, one batch
		deletes     []deleteOp           // then deleted
		single      []*raft.Log          // then stored one by one with StoreLog
		first, last uint64               // bounds afterwards
		present     []uint64             // GetLog succeeds
		absent      []uint64             // GetLog returns raft.ErrLogNotFound
		want        map[uint64]*raft.Log // GetLog returns this exact entry
	}{
		{name: "empty", first: 0, last: 0, absent: []uint64{0, 1, 2}},
		{name: "one", single: logs(1, 1), first: 1, last: 1, present: []uint64{1}, absent: []uint64{0, 2}},
		{name: "batch", store: logs(1, 10), first: 1, last: 10, present: []uint64{1, 5, 10}, absent: []uint64{11}},
		{name: "batch then single", store: logs(1, 3), single: logs(4, 5), first: 1, last: 5, present: []uint64{1, 4, 5}},
		{name: "starts above one", store: logs(100, 105), first: 100, last: 105, absent: []uint64{99, 106}},
		{name: "big indexes", store: []*raft.Log{testLog(1 << 40), testLog(1<<40 + 1)}, first: 1 << 40, last: 1<<40 + 1},
		{name: "max index", store: []*raft.Log{testLog(^uint64(0) - 1), testLog(^uint64(0))}, first: ^uint64(0) - 1, last: ^uint64(0)},
		{
			name: "compact head", store: logs(1, 10), deletes: []deleteOp{{1, 4}},
			first: 5, last: 10, present: []uint64{5, 10}, absent: []uint64{1, 4},
		},
		{
			name: "truncate tail", store: logs(1, 10), deletes: []deleteOp{{7, 10}},
			first: 1, last: 6, present: []uint64{1, 6}, absent: []uint64{7, 10},
		},
		{
			name: "truncate tail then rewrite", store: logs(1, 10), deletes: []deleteOp{{7, 10}},
			single: []*raft.Log{{Index: 7, Term: 9, Type: raft.LogNoop}},
			first:  1, last: 7, absent: []uint64{8},
			want: map[uint64]*raft.Log{7: {Index: 7, Term: 9, Type: raft.LogNoop}},
		},
		{
			name: "overwrite in place", store: logs(1, 3), single: []*raft.Log{{Index: 2, Term: 7, Data: []byte("new")}},
			first: 1, last: 3, want: map[uint64]*raft.Log{2: {Index: 2, Term: 7, Data: []byte("new")}},
		},
		{name: "delete all", store: logs(1, 10), deletes: []deleteOp{{1, 10}}, first: 0, last: 0, absent: []uint64{1, 10}},
		{name: "delete beyond both ends", store: logs(5, 10), deletes: []deleteOp{{0, 100}}, first: 0, last: 0},
		{name: "delete to max uint64", store: logs(5, 10), deletes: []deleteOp{{8, ^uint64(0)}}, first: 5, last: 7},
		{name: "delete empty range", store: logs(1, 3), deletes: []deleteOp{{3, 2}}, first: 1, last: 3},
		{name: "delete on empty store", deletes: []deleteOp{{1, 5}}, first: 0, last: 0},
		{
			name: "delete middle", store: logs(1, 10), deletes: []deleteOp{{4, 6}},
			first: 1, last: 10, present: []uint64{3, 7}, absent: []uint64{4, 5, 6},
		},
		{
			name: "compact then append", store: logs(1, 10), deletes: []deleteOp{{1, 10}}, single: logs(11, 12),
			first: 11, last: 12, present: []uint64{11, 12}, absent: []uint64{10},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, db := newTestLogStore(t)
			if err := s.StoreLogs(tc.store); err != nil {
				t.Fatalf("StoreLogs: %v", err)
			}
			for _, d := range tc.deletes {
				if err := s.DeleteRange(d.lo, d.hi); err != nil {
					t.Fatalf("DeleteRange(%d, %d): %v", d.lo, d.hi, err)
				}
			}
			for _, l := range tc.single {
				if err := s.StoreLog(l); err != nil {
					t.Fatalf("StoreLog(%d): %v", l.Index, err)
				}
			}
			assertBounds(t, s, tc.first, tc.last)

			for _, i := range tc.present {
				var got raft.Log
				if err := s.GetLog(i, &got); err != nil {
					t.Fatalf("GetLog(%d): %v", i, err)
				}
				if want := testLog(i); !equalLog(&got, want) {
					t.Fatalf("GetLog(%d): got %+v, want %+v", i, got, *want)
				}
			}
			for i, want := range tc.want {
				var got raft.Log
				if err := s.GetLog(i, &got); err != nil {
					t.Fatalf("GetLog(%d): %v", i, err)
				}
				if !equalLog(&got, want) {
					t.Fatalf("GetLog(%d): got %+v, want %+v", i, got, *want)
				}
			}
			for _, i := range tc.absent {
				var got raft.Log
				if err := s.GetLog(i, &got); err != raft.ErrLogNotFound {
					t.Fatalf("GetLog(%d): got %v, want raft.ErrLogNotFound", i, err)
				}
			}

			// A new LogStore on the same database reads the same bounds.
			s2, err := NewLogStore(db)
			if err != nil {
				t.Fatalf("NewLogStore again: %v", err)
			}
			assertBounds(t, s2, tc.first, tc.last)
		})
	}
}

func TestLogStoreSurvivesReopen(t *testing.T) {
	dir := t.TempDir()
	db := openDB(t, dir)
	s, err := NewLogStore(db)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.StoreLogs(logs(3, 9)); err != nil {
		t.Fatal(err)
	}
	if err := s.SetUint64([]byte("CurrentTerm"), 4); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	db = openDB(t, dir)
	defer db.Close()
	s, err = NewLogStore(db)
	if err != nil {
		t.Fatal(err)
	}
	assertBounds(t, s, 3, 9)
	var got raft.Log
	if err := s.GetLog(9, &got); err != nil || !equalLog(&got, testLog(9)) {
		t.Fatalf("GetLog(9) after reopen: got %+v, %v", got, err)
	}
	if v, err := s.GetUint64([]byte("CurrentTerm")); err != nil || v != 4 {
		t.Fatalf("GetUint64 after reopen: got %d, %v, want 4", v, err)
	}
}

func TestStableStore(t *testing.T) {
	s, _ := newTestLogStore(t)

	// hashicorp/raft recognises a missing key only by this exact text
	// (api.go HasExistingState and NewRaft, raft.go: err.Error() != "not found").
	if _, err := s.Get([]byte("missing")); err == nil || err.Error() != "not found" {
		t.Fatalf("Get(missing): got %v, want exactly \"not found\"", err)
	}
	if _, err := s.GetUint64([]byte("missing")); err == nil || err.Error() != "not found" {
		t.Fatalf("GetUint64(missing): got %v, want exactly \"not found\"", err)
	}
	if _, err := s.Get([]byte("missing")); !errors.Is(err, ErrKeyNotFound) {
		t.Fatalf("Get(missing): got %v, want ErrKeyNotFound", err)
	}

	tests := []struct {
		key, val []byte
	}{
		{[]byte("LastVoteCand"), []byte("node-1")},
		{[]byte("empty"), []byte{}},
		{[]byte{0, 1, 2}, []byte{0xff}},
		{[]byte("LastVoteCand"), []byte("node-2")}, // overwrite
	}
	for _, tc := range tests {
		if err := s.Set(tc.key, tc.val); err != nil {
			t.Fatalf("Set(%q): %v", tc.key, err)
		}
		got, err := s.Get(tc.key)
		if err != nil {
			t.Fatalf("Get(%q): %v", tc.key, err)
		}
		if !bytes.Equal(got, tc.val) {
			t.Fatalf("Get(%q): got %q, want %q", tc.key, got, tc.val)
		}
	}

	for _, v := range []uint64{0, 1, 1 << 33, ^uint64(0)} {
		if err := s.SetUint64([]byte("CurrentTerm"), v); err != nil {
			t.Fatalf("SetUint64(%d): %v", v, err)
		}
		got, err := s.GetUint64([]byte("CurrentTerm"))
		if err != nil || got != v {
			t.Fatalf("GetUint64: got %d, %v, want %d", got, err, v)
		}
	}
	if _, err := s.GetUint64([]byte("LastVoteCand")); err == nil {
		t.Fatalf("GetUint64 of a 6-byte value: got nil error, want one")
	}
}

// TestLogStoreKeySpace checks the contract with the FSM in doc.go: every key
// the log store writes starts with 0x00, and the FSM's keys (>= 0x01) are
// neither seen nor touched by it.
func TestLogStoreKeySpace(t *testing.T) {
	s, db := newTestLogStore(t)
	fsmKeys := [][]byte{{0x01}, {0x01, 0x00}, []byte("meta/x"), {0xff, 0xff}}
	for _, k := range fsmKeys {
		if err := db.Set(k, []byte("fsm"), pebble.NoSync); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.StoreLogs(logs(1, 5)); err != nil {
		t.Fatal(err)
	}
	if err := s.Set([]byte("CurrentTerm"), []byte{1}); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteRange(0, ^uint64(0)); err != nil {
		t.Fatal(err)
	}
	assertBounds(t, s, 0, 0)

	it, err := db.NewIter(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	var others int
	for it.First(); it.Valid(); it.Next() {
		if it.Key()[0] == 0x00 {
			if !bytes.HasPrefix(it.Key(), []byte(stablePrefix)) {
				t.Fatalf("unexpected raft key %q left", it.Key())
			}
			continue
		}
		others++
	}
	if others != len(fsmKeys) {
		t.Fatalf("FSM keys after log deletes: got %d, want %d", others, len(fsmKeys))
	}
}

func TestLogStoreCorruptEntry(t *testing.T) {
	s, db := newTestLogStore(t)
	if err := s.StoreLogs(logs(1, 2)); err != nil {
		t.Fatal(err)
	}
	// An entry stored under the wrong key, and garbage.
	if err := db.Set(logKey(3), encodeLog(nil, testLog(4)), pebble.Sync); err != nil {
		t.Fatal(err)
	}
	if err := db.Set(logKey(5), []byte{1, 0xff}, pebble.Sync); err != nil {
		t.Fatal(err)
	}
	for _, i := range []uint64{3, 5} {
		var l raft.Log
		if err := s.GetLog(i, &l); !errors.Is(err, ErrCorruptLog) {
			t.Fatalf("GetLog(%d): got %v, want ErrCorruptLog", i, err)
		}
	}
}

func TestNewLogStoreNilDB(t *testing.T) {
	if _, err := NewLogStore(nil); err == nil {
		t.Fatal("NewLogStore(nil): got nil error")
	}
}
