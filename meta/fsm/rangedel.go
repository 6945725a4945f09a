package fsm

import "github.com/berth-registry/berth/meta"

var _ meta.RangeDeleter = batchTxn{}

// DeleteRange implements meta.RangeDeleter with one range tombstone; reads
// through the same indexed batch see it.
func (t batchTxn) DeleteRange(start, end []byte) error { return t.b.DeleteRange(start, end, nil) }
