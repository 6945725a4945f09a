package cluster

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync"

	"github.com/cockroachdb/pebble"
	"github.com/hashicorp/raft"
)

// ErrKeyNotFound is returned by LogStore.Get and LogStore.GetUint64 for a key
// that was never set. Its text breaks the package's "cluster: " prefix rule on
// purpose: hashicorp/raft recognises a missing stable key only by
// err.Error() == "not found" (api.go HasExistingState, NewRaft; raft.go
// election code), so the message must be exactly that and the error must be
// returned unwrapped.
var ErrKeyNotFound = errors.New("not found")

// ErrCorruptLog is wrapped by LogStore.GetLog when a stored entry cannot be
// decoded or does not carry the index of its key.
var ErrCorruptLog = errors.New("cluster: corrupt raft log entry")

// Key layout of the Raft data in the shared Pebble database (see doc.go).
// Every key starts with 0x00; the FSM only uses keys starting with >= 0x01.
const (
	logPrefix      = "\x00rl" // + 8-byte big-endian index
	logPrefixEnd   = "\x00rm" // exclusive upper bound of logPrefix
	stablePrefix   = "\x00rs" // + stable key
	snapshotMarker = "berth: raft snapshot barrier"
)

// LogStore is a raft.LogStore and raft.StableStore kept in a Pebble database
// that it shares with the FSM. Writes are committed with pebble.Sync, reads
// see the latest committed write. It is safe for concurrent use. It does not
// own the database: closing the database is the caller's job, and only after
// Raft has shut down.
type LogStore struct {
	db *pebble.DB

	// writeMu serialises log writes so that the cached bounds below follow
	// the order in which writes were committed. Raft writes from one
	// goroutine; the lock makes that an invariant rather than an assumption.
	writeMu sync.Mutex

	mu    sync.Mutex // guards the fields below
	first uint64     // index of the first stored entry, 0 when empty
	last  uint64     // index of the last stored entry, 0 when empty
}

var (
	_ raft.LogStore    = (*LogStore)(nil)
	_ raft.StableStore = (*LogStore)(nil)
)

// NewLogStore returns a LogStore over db, reading the current bounds of the
// log. db must stay open for as long as the LogStore is used.
func NewLogStore(db *pebble.DB) (*LogStore, error) {
	if db == nil {
		return nil, errors.New("cluster: new log store: nil pebble db")
	}
	s := &LogStore{db: db}
	if err := s.loadBounds(); err != nil {
		return nil, fmt.Errorf("new log store: %w", err)
	}
	return s, nil
}

func logKey(index uint64) []byte {
	k := make([]byte, len(logPrefix)+8)
	copy(k, logPrefix)
	binary.BigEndian.PutUint64(k[len(logPrefix):], index)
	return k
}

// indexOfKey returns the index of a log key.
func indexOfKey(k []byte) (uint64, error) {
	if len(k) != len(logPrefix)+8 {
		return 0, fmt.Errorf("log key %x: %w", k, ErrCorruptLog)
	}
	return binary.BigEndian.Uint64(k[len(logPrefix):]), nil
}

func stableKey(key []byte) []byte {
	k := make([]byte, 0, len(stablePrefix)+len(key))
	return append(append(k, stablePrefix...), key...)
}

// loadBounds reads the first and last log index from Pebble into the cache.
// The caller holds writeMu, or no write can run concurrently.
func (s *LogStore) loadBounds() error {
	it, err := s.db.NewIter(&pebble.IterOptions{
		LowerBound: []byte(logPrefix),
		UpperBound: []byte(logPrefixEnd),
	})
	if err != nil {
		return fmt.Errorf("open log iterator: %w", err)
	}
	var first, last uint64
	var kerr error
	if it.First() {
		first, kerr = indexOfKey(it.Key())
		if kerr == nil && it.Last() {
			last, kerr = indexOfKey(it.Key())
		}
	}
	if kerr != nil {
		_ = it.Close()
		return kerr
	}
	if err := it.Close(); err != nil {
		return fmt.Errorf("read log bounds: %w", err)
	}
	s.mu.Lock()
	s.first, s.last = first, last
	s.mu.Unlock()
	return nil
}

// FirstIndex returns the index of the first stored entry, or 0 for an empty log.
func (s *LogStore) FirstIndex() (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.first, nil
}

// LastIndex returns the index of the last stored entry, or 0 for an empty log.
func (s *LogStore) LastIndex() (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last, nil
}

// GetLog fills out with the entry at index. It returns raft.ErrLogNotFound
// (unwrapped, as raft compares it with ==) if there is no such entry, and an
// error wrapping ErrCorruptLog if the stored bytes do not decode.
func (s *LogStore) GetLog(index uint64, out *raft.Log) error {
	val, closer, err := s.db.Get(logKey(index))
	if errors.Is(err, pebble.ErrNotFound) {
		return raft.ErrLogNotFound
	}
	if err != nil {
		return fmt.Errorf("get log %d: %w", index, err)
	}
	defer closer.Close()
	if err := decodeLog(val, out); err != nil {
		return fmt.Errorf("get log %d: %w", index, err)
	}
	if out.Index != index {
		return fmt.Errorf("get log %d: stored index %d: %w", index, out.Index, ErrCorruptLog)
	}
	return nil
}

// StoreLog stores one entry durably.
func (s *LogStore) StoreLog(l *raft.Log) error {
	return s.StoreLogs([]*raft.Log{l})
}

// StoreLogs stores the entries in one synced batch: all of them or none.
// An entry replaces any stored entry with the same index; stored entries
// above the batch stay, and LastIndex never goes down here (raft removes a
// conflicting tail with DeleteRange before it writes the new one).
func (s *LogStore) StoreLogs(logs []*raft.Log) error {
	if len(logs) == 0 {
		return nil
	}
	s.writeMu.Lock()
	defer s.writeMu.Unlock()

	b := s.db.NewBatch()
	defer b.Close()
	var buf []byte
	lo, hi := logs[0].Index, logs[0].Index
	for _, l := range logs {
		buf = encodeLog(buf[:0], l)
		if err := b.Set(logKey(l.Index), buf, nil); err != nil {
			return fmt.Errorf("store logs: %w", err)
		}
		lo, hi = min(lo, l.Index), max(hi, l.Index)
	}
	if err := b.Commit(pebble.Sync); err != nil {
		return fmt.Errorf("store logs %d-%d: %w", lo, hi, err)
	}

	s.mu.Lock()
	if s.first == 0 || lo < s.first {
		s.first = lo
	}
	s.last = max(s.last, hi)
	s.mu.Unlock()
	return nil
}

// DeleteRange removes the entries with indexes in [lo, hi] (inclusive) with
// one synced Pebble range deletion. Raft uses it to compact the head of the
// log after a snapshot and to drop a conflicting tail.
func (s *LogStore) DeleteRange(lo, hi uint64) error {
	if lo > hi {
		return nil
	}
	s.writeMu.Lock()
	defer s.writeMu.Unlock()

	end := []byte(logPrefixEnd)
	if hi < ^uint64(0) {
		end = logKey(hi + 1)
	}
	if err := s.db.DeleteRange(logKey(lo), end, pebble.Sync); err != nil {
		return fmt.Errorf("delete logs %d-%d: %w", lo, hi, err)
	}
	// Deleting is rare (compaction, conflict); re-reading the bounds keeps the
	// cache right for any range, not just the head or tail raft deletes.
	if err := s.loadBounds(); err != nil {
		return fmt.Errorf("delete logs %d-%d: %w", lo, hi, err)
	}
	return nil
}

// Set stores a stable value durably.
func (s *LogStore) Set(key, val []byte) error {
	if err := s.db.Set(stableKey(key), val, pebble.Sync); err != nil {
		return fmt.Errorf("set stable %q: %w", key, err)
	}
	return nil
}

// Get returns a copy of the stable value of key, or ErrKeyNotFound (text
// "not found", unwrapped) if it was never set.
func (s *LogStore) Get(key []byte) ([]byte, error) {
	val, closer, err := s.db.Get(stableKey(key))
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, ErrKeyNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("get stable %q: %w", key, err)
	}
	defer closer.Close()
	return append([]byte(nil), val...), nil
}

// SetUint64 stores a stable uint64 (8 bytes big-endian) durably.
func (s *LogStore) SetUint64(key []byte, val uint64) error {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], val)
	return s.Set(key, b[:])
}

// GetUint64 returns the stable uint64 of key, or ErrKeyNotFound (text
// "not found", unwrapped) if it was never set.
func (s *LogStore) GetUint64(key []byte) (uint64, error) {
	val, err := s.Get(key)
	if err != nil {
		return 0, err
	}
	if len(val) != 8 {
		return 0, fmt.Errorf("cluster: stable %q: %d bytes, want 8", key, len(val))
	}
	return binary.BigEndian.Uint64(val), nil
}

// syncDB forces a synced write, which makes every earlier write to db durable
// (Pebble's WAL is one ordered stream). The record goes to the WAL only.
func syncDB(db *pebble.DB) error {
	if err := db.LogData([]byte(snapshotMarker), pebble.Sync); err != nil {
		return fmt.Errorf("sync pebble wal: %w", err)
	}
	return nil
}
