package meta

import (
	"bytes"
	"sort"
)

// memTxn is an in-memory Txn for the model's unit tests. The same apply code runs
// on Pebble in meta/fsm's tests.
type memTxn struct{ m map[string][]byte }

func newMemTxn() *memTxn { return &memTxn{m: map[string][]byte{}} }

func (t *memTxn) Get(k []byte) ([]byte, error) {
	v, ok := t.m[string(k)]
	if !ok {
		return nil, ErrNotFound
	}
	return append([]byte(nil), v...), nil
}

func (t *memTxn) Set(k, v []byte) error { t.m[string(k)] = append([]byte(nil), v...); return nil }
func (t *memTxn) Delete(k []byte) error { delete(t.m, string(k)); return nil }

func (t *memTxn) Scan(start, end []byte, fn func(k, v []byte) error) error {
	var keys []string
	for k := range t.m {
		if bytes.Compare([]byte(k), start) >= 0 && (end == nil || bytes.Compare([]byte(k), end) < 0) {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		if err := fn([]byte(k), t.m[k]); err != nil {
			return err
		}
	}
	return nil
}

func (t *memTxn) clone() *memTxn {
	c := newMemTxn()
	for k, v := range t.m {
		c.m[k] = v
	}
	return c
}

// seededTxn holds a project "p" owning the workspaces the tests push into.
func seededTxn(t interface {
	Helper()
	Fatalf(string, ...any)
}) *memTxn {
	t.Helper()
	txn := newMemTxn()
	cmds := []Command{&PutProject{Name: "p", Create: true}}
	for _, ws := range []string{"lib", "a", "b", "other", "no"} {
		cmds = append(cmds, &PutWorkspace{Name: ws, Project: "p", Visibility: Private, Create: true})
	}
	for i, c := range cmds {
		data, _ := Encode(c)
		if r := Apply(txn, uint64(i+1), data); r != nil {
			t.Fatalf("seed: %v", r)
		}
	}
	return txn
}
