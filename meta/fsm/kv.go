package fsm

import (
	"errors"

	"github.com/cockroachdb/pebble"

	"github.com/berth-registry/berth/meta"
)

// batchTxn is meta.Txn over an indexed Pebble batch: reads see the batch's writes.
type batchTxn struct{ b *pebble.Batch }

func (t batchTxn) Get(key []byte) ([]byte, error) { return get(t.b, key) }
func (t batchTxn) Set(key, value []byte) error    { return t.b.Set(key, value, nil) }
func (t batchTxn) Delete(key []byte) error        { return t.b.Delete(key, nil) }
func (t batchTxn) Scan(start, end []byte, fn func(k, v []byte) error) error {
	it, err := t.b.NewIter(&pebble.IterOptions{LowerBound: start, UpperBound: end})
	if err != nil {
		return err
	}
	return scan(it, fn)
}

// dbReader is meta.Reader over the database's latest state.
type dbReader struct{ db *pebble.DB }

func (r dbReader) Get(key []byte) ([]byte, error) { return get(r.db, key) }
func (r dbReader) Scan(start, end []byte, fn func(k, v []byte) error) error {
	it, err := r.db.NewIter(&pebble.IterOptions{LowerBound: start, UpperBound: end})
	if err != nil {
		return err
	}
	return scan(it, fn)
}

func get(r pebble.Reader, key []byte) ([]byte, error) {
	v, closer, err := r.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, meta.ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	out := append([]byte(nil), v...)
	closer.Close()
	return out, nil
}

func scan(it *pebble.Iterator, fn func(k, v []byte) error) error {
	for it.First(); it.Valid(); it.Next() {
		if err := fn(it.Key(), it.Value()); err != nil {
			it.Close()
			return err
		}
	}
	err := it.Error()
	if cerr := it.Close(); err == nil {
		err = cerr
	}
	return err
}

// ScanReverse implements meta.ReverseScanner: the newest audit events are read
// first without reading the older ones.
func (r dbReader) ScanReverse(start, end []byte, fn func(k, v []byte) error) error {
	it, err := r.db.NewIter(&pebble.IterOptions{LowerBound: start, UpperBound: end})
	if err != nil {
		return err
	}
	for it.Last(); it.Valid(); it.Prev() {
		if err := fn(it.Key(), it.Value()); err != nil {
			it.Close()
			return err
		}
	}
	err = it.Error()
	if cerr := it.Close(); err == nil {
		err = cerr
	}
	return err
}

var _ meta.ReverseScanner = dbReader{}
