package fsm

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble"

	"github.com/berth-registry/berth/meta"
)

// SnapshotReader returns a consistent read view of the state at one applied
// index (a Pebble snapshot), and that index. Applies go on meanwhile without
// changing what the view reads. The caller must call release, once, when done;
// the view must not be used after. Garbage collection marks on it.
func (f *FSM) SnapshotReader() (r meta.Reader, index uint64, release func(), err error) {
	snap := f.db.NewSnapshot()
	v, closer, err := snap.Get(appliedKey)
	switch {
	case errors.Is(err, pebble.ErrNotFound):
	case err != nil:
		snap.Close()
		return nil, 0, nil, fmt.Errorf("fsm: snapshot: read applied index: %w", err)
	default:
		if len(v) == 8 {
			index = binary.BigEndian.Uint64(v)
		}
		closer.Close()
	}
	return snapReader{snap}, index, func() { snap.Close() }, nil
}

// snapReader is meta.Reader over a Pebble snapshot.
type snapReader struct{ s *pebble.Snapshot }

func (r snapReader) Get(key []byte) ([]byte, error) { return get(r.s, key) }
func (r snapReader) Scan(start, end []byte, fn func(k, v []byte) error) error {
	it, err := r.s.NewIter(&pebble.IterOptions{LowerBound: start, UpperBound: end})
	if err != nil {
		return err
	}
	return scan(it, fn)
}
