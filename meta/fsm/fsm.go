package fsm

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/cockroachdb/pebble"
	"github.com/hashicorp/raft"

	"github.com/berth-registry/berth/meta"
)

var (
	appliedKey = []byte("\x01applied")
	stateStart = []byte{0x01}
	stateEnd   = []byte{0xff, 0xff, 0xff, 0xff}
)

// ErrClosed is returned by reads after Close.
var ErrClosed = errors.New("fsm: closed")

// FSM applies meta commands into Pebble. It is safe for concurrent use: Raft calls
// Apply/ApplyBatch/Snapshot/Restore from its own goroutine while readers use Reader.
type FSM struct {
	db      *pebble.DB
	log     *slog.Logger
	applied atomic.Uint64

	mu      sync.Mutex // guards waiters
	waiters []waiter
}

type waiter struct {
	index uint64
	ch    chan struct{}
}

var (
	_ raft.FSM         = (*FSM)(nil)
	_ raft.BatchingFSM = (*FSM)(nil)
)

// New returns an FSM over db, which the caller owns and closes after Raft stops.
func New(db *pebble.DB, logger *slog.Logger) (*FSM, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	f := &FSM{db: db, log: logger}
	v, closer, err := db.Get(appliedKey)
	switch {
	case errors.Is(err, pebble.ErrNotFound):
	case err != nil:
		return nil, fmt.Errorf("fsm: read applied index: %w", err)
	default:
		if len(v) == 8 {
			f.applied.Store(binary.BigEndian.Uint64(v))
		}
		closer.Close()
	}
	return f, nil
}

// AppliedIndex is the index of the last entry applied to the state.
func (f *FSM) AppliedIndex() uint64 { return f.applied.Load() }

// Apply applies one entry. See ApplyBatch.
func (f *FSM) Apply(l *raft.Log) any {
	return f.ApplyBatch([]*raft.Log{l})[0]
}

// ApplyBatch applies entries in one Pebble batch with the last index. Entries at or
// below the stored applied index are skipped (a replay after restart). The batch is
// committed without its own fsync: the Raft log store shares the database and
// syncs every append, and that sync makes this batch durable too; anything lost
// in a crash is in the log and is applied again.
func (f *FSM) ApplyBatch(logs []*raft.Log) []any {
	out := make([]any, len(logs))
	b := f.db.NewIndexedBatch()
	defer b.Close()
	txn := batchTxn{b}
	last := f.applied.Load()
	for i, l := range logs {
		if l.Index <= last {
			continue
		}
		last = l.Index
		if l.Type != raft.LogCommand {
			continue
		}
		resp := meta.ApplyAt(txn, l.Index, l.Data, l.AppendedAt)
		if err, ok := resp.(error); ok && !meta.IsDomainError(err) {
			// A corrupt entry or a storage failure: continuing would let this
			// node's state diverge from the others'.
			panic(fmt.Sprintf("fsm: apply entry %d: %v", l.Index, err))
		}
		out[i] = resp
	}
	if last == f.applied.Load() {
		return out
	}
	var idx [8]byte
	binary.BigEndian.PutUint64(idx[:], last)
	if err := b.Set(appliedKey, idx[:], nil); err != nil {
		panic(fmt.Sprintf("fsm: set applied index: %v", err))
	}
	if err := b.Commit(pebble.NoSync); err != nil {
		panic(fmt.Sprintf("fsm: commit entries up to %d: %v", last, err))
	}
	f.applied.Store(last)
	f.notify(last)
	return out
}

// WaitApplied returns a channel closed once the applied index reaches index.
func (f *FSM) WaitApplied(index uint64) <-chan struct{} {
	ch := make(chan struct{})
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.applied.Load() >= index {
		close(ch)
		return ch
	}
	f.waiters = append(f.waiters, waiter{index, ch})
	return ch
}

func (f *FSM) notify(applied uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	keep := f.waiters[:0]
	for _, w := range f.waiters {
		if w.index <= applied {
			close(w.ch)
		} else {
			keep = append(keep, w)
		}
	}
	f.waiters = keep
}

// Reader returns a view of the latest applied state. Each call reads the newest
// state; use Snapshot-consistent reads through Pebble snapshots where a multi-key
// read must be consistent.
func (f *FSM) Reader() meta.Reader { return dbReader{f.db} }

// Snapshot captures the state at the current applied index. Raft persists it in
// its own goroutine; the Pebble snapshot keeps the view stable meanwhile.
func (f *FSM) Snapshot() (raft.FSMSnapshot, error) {
	// Make every applied batch durable before Raft may compact the log behind
	// this snapshot.
	if err := f.db.LogData(nil, pebble.Sync); err != nil {
		return nil, fmt.Errorf("fsm: sync before snapshot: %w", err)
	}
	return &snapshot{snap: f.db.NewSnapshot()}, nil
}

// Restore replaces the whole state with a snapshot's.
func (f *FSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	if err := f.db.DeleteRange(stateStart, stateEnd, pebble.NoSync); err != nil {
		return fmt.Errorf("fsm: restore: clear: %w", err)
	}
	br := bufio.NewReaderSize(rc, 1<<20)
	b := f.db.NewBatch()
	for {
		k, err := readChunk(br)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			b.Close()
			return fmt.Errorf("fsm: restore: %w", err)
		}
		v, err := readChunk(br)
		if err != nil {
			b.Close()
			return fmt.Errorf("fsm: restore: %w", err)
		}
		if err := b.Set(k, v, nil); err != nil {
			b.Close()
			return err
		}
		if b.Len() > 16<<20 {
			if err := b.Commit(pebble.NoSync); err != nil {
				return fmt.Errorf("fsm: restore: %w", err)
			}
			b = f.db.NewBatch()
		}
	}
	if err := b.Commit(pebble.Sync); err != nil {
		return fmt.Errorf("fsm: restore: %w", err)
	}
	n, err := New(f.db, f.log)
	if err != nil {
		return err
	}
	f.applied.Store(n.applied.Load())
	f.notify(f.applied.Load())
	return nil
}

func readChunk(r *bufio.Reader) ([]byte, error) {
	n, err := binary.ReadUvarint(r)
	if err != nil {
		return nil, err
	}
	if n > 64<<20 {
		return nil, fmt.Errorf("chunk of %d bytes is too large", n)
	}
	buf := make([]byte, n)
	if _, err := io.ReadFull(r, buf); err != nil {
		return nil, io.ErrUnexpectedEOF
	}
	return buf, nil
}

type snapshot struct{ snap *pebble.Snapshot }

// Persist writes every state key and value (applied index included) as
// uvarint-length-prefixed pairs.
func (s *snapshot) Persist(sink raft.SnapshotSink) error {
	err := func() error {
		it, err := s.snap.NewIter(&pebble.IterOptions{LowerBound: stateStart, UpperBound: stateEnd})
		if err != nil {
			return err
		}
		defer it.Close()
		w := bufio.NewWriterSize(sink, 1<<20)
		var hdr [binary.MaxVarintLen64]byte
		for it.First(); it.Valid(); it.Next() {
			for _, p := range [][]byte{it.Key(), it.Value()} {
				n := binary.PutUvarint(hdr[:], uint64(len(p)))
				if _, err := w.Write(hdr[:n]); err != nil {
					return err
				}
				if _, err := w.Write(p); err != nil {
					return err
				}
			}
		}
		if err := it.Error(); err != nil {
			return err
		}
		return w.Flush()
	}()
	if err != nil {
		sink.Cancel()
		return fmt.Errorf("fsm: persist snapshot: %w", err)
	}
	return sink.Close()
}

func (s *snapshot) Release() { s.snap.Close() }

// StateDigest returns the applied index and a SHA-256 over every state key and
// value at that index (the applied index key itself excluded), read from one
// consistent Pebble snapshot. Nodes at the same applied index must return the
// same digest; tests compare them to prove replicas hold identical metadata.
func (f *FSM) StateDigest() (uint64, [32]byte, error) {
	var sum [32]byte
	snap := f.db.NewSnapshot()
	defer snap.Close()
	var applied uint64
	if v, closer, err := snap.Get(appliedKey); err == nil {
		if len(v) == 8 {
			applied = binary.BigEndian.Uint64(v)
		}
		closer.Close()
	} else if !errors.Is(err, pebble.ErrNotFound) {
		return 0, sum, err
	}
	it, err := snap.NewIter(&pebble.IterOptions{LowerBound: stateStart, UpperBound: stateEnd})
	if err != nil {
		return 0, sum, err
	}
	defer it.Close()
	h := sha256.New()
	var hdr [binary.MaxVarintLen64]byte
	for it.First(); it.Valid(); it.Next() {
		if bytes.Equal(it.Key(), appliedKey) {
			continue
		}
		for _, p := range [][]byte{it.Key(), it.Value()} {
			h.Write(hdr[:binary.PutUvarint(hdr[:], uint64(len(p)))])
			h.Write(p)
		}
	}
	if err := it.Error(); err != nil {
		return 0, sum, err
	}
	copy(sum[:], h.Sum(nil))
	return applied, sum, nil
}
