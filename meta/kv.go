package meta

import "errors"

// ErrNotFound is returned by Reader.Get when a key is absent.
var ErrNotFound = errors.New("meta: not found")

// ErrStopScan may be returned by a Scan callback to end the scan early; Scan then
// returns nil.
var ErrStopScan = errors.New("meta: stop scan")

// Reader is a consistent read view of the state.
type Reader interface {
	// Get returns a copy of the value of key, or ErrNotFound.
	Get(key []byte) ([]byte, error)
	// Scan calls fn for every key in [start, end) in ascending order. The slices
	// passed to fn are valid only during the call. fn may return ErrStopScan.
	Scan(start, end []byte, fn func(key, value []byte) error) error
}

// Txn is a read-write transaction. Reads see the transaction's own writes.
type Txn interface {
	Reader
	Set(key, value []byte) error
	Delete(key []byte) error
}

// prefixEnd returns the smallest key greater than every key with the given prefix.
func prefixEnd(prefix []byte) []byte {
	end := append([]byte(nil), prefix...)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] < 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	return nil
}

// scanPrefix scans every key that starts with prefix, beginning at start (which must
// itself carry the prefix) or at the prefix when start is nil.
func scanPrefix(r Reader, prefix, start []byte, fn func(key, value []byte) error) error {
	if start == nil {
		start = prefix
	}
	err := r.Scan(start, prefixEnd(prefix), fn)
	if errors.Is(err, ErrStopScan) {
		return nil
	}
	return err
}
