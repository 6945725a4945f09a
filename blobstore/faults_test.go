package blobstore

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"sync"
	"syscall"
	"testing"
)

// faultHook is an Options.Faults that fails one operation while it is armed
// and records every operation it is asked about.
type faultHook struct {
	mu   sync.Mutex
	fail FaultOp // 0: nothing fails
	err  error
	seen map[FaultOp]int
}

func (h *faultHook) arm(op FaultOp, err error) {
	h.mu.Lock()
	h.fail, h.err = op, err
	h.mu.Unlock()
}

func (h *faultHook) check(op FaultOp, path string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.seen == nil {
		h.seen = map[FaultOp]int{}
	}
	h.seen[op]++
	if op == h.fail {
		return &fs.PathError{Op: op.String(), Path: path, Err: h.err}
	}
	return nil
}

func (h *faultHook) count(op FaultOp) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.seen[op]
}

// An injected fsync error fails a one-shot Put exactly as an EIO from the disk
// would: no blob, no session left behind, and the next Put succeeds.
func TestFaultSyncFailsPut(t *testing.T) {
	h := &faultHook{}
	s, root, _ := testStore(t, Options{Faults: h.check})
	data := randomBytes(2*bufSize+17, 7)
	d := sha256Of(data)

	h.arm(FaultSync, syscall.EIO)
	if _, err := s.Put(context.Background(), bytes.NewReader(data), d); !errors.Is(err, syscall.EIO) {
		t.Fatalf("Put with a failing fsync: got %v, want EIO", err)
	}
	if _, err := s.Stat(d); !errors.Is(err, ErrBlobUnknown) {
		t.Fatalf("Stat after the failed Put: got %v, want ErrBlobUnknown", err)
	}
	if left := sessionEntries(t, root); len(left) != 0 {
		t.Fatalf("sessions left behind: %v", left)
	}

	h.arm(0, nil)
	if n, err := s.Put(context.Background(), bytes.NewReader(data), d); err != nil || n != int64(len(data)) {
		t.Fatalf("Put after the fault cleared: %d, %v", n, err)
	}
	p, _ := s.Path(d)
	if got, err := os.ReadFile(p); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("stored blob: %d bytes, %v", len(got), err)
	}
	for _, op := range []FaultOp{FaultCreate, FaultWrite, FaultSync, FaultRename} {
		if h.count(op) == 0 {
			t.Errorf("the hook never saw %s", op)
		}
	}
}

// Each kind of fault fails a resumable session's Write or Commit and leaves
// the session where it was, so the client can retry once the fault is gone.
func TestFaultsLeaveSessionResumable(t *testing.T) {
	for _, op := range []FaultOp{FaultWrite, FaultSync, FaultCreate, FaultRename} {
		t.Run(op.String(), func(t *testing.T) {
			h := &faultHook{}
			s, _, _ := testStore(t, Options{Faults: h.check})
			first, second := randomBytes(bufSize+5, 1), randomBytes(300, 2)
			u, err := s.NewUpload("session")
			if err != nil {
				t.Fatal(err)
			}
			writeChunks(t, u, first, len(first))

			h.arm(op, syscall.ENOSPC)
			if _, err := u.Write(context.Background(), bytes.NewReader(second)); !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("Write: got %v, want ENOSPC", err)
			}
			if u.Size() != int64(len(first)) {
				t.Fatalf("Size after the failed Write: %d, want %d", u.Size(), len(first))
			}
			h.arm(0, nil)
			if _, err := u.Write(context.Background(), bytes.NewReader(second)); err != nil {
				t.Fatalf("Write after the fault cleared: %v", err)
			}
			all := append(append([]byte{}, first...), second...)
			d := sha256Of(all)

			h.arm(op, syscall.EIO)
			_, err = u.Commit(context.Background(), d, int64(len(all)))
			if op == FaultSync || op == FaultRename {
				if !errors.Is(err, syscall.EIO) {
					t.Fatalf("Commit: got %v, want EIO", err)
				}
				if _, err := s.Stat(d); !errors.Is(err, ErrBlobUnknown) {
					t.Fatalf("Stat after the failed Commit: %v", err)
				}
			} else if err != nil { // Commit neither creates nor writes
				t.Fatalf("Commit: %v", err)
			}
			h.arm(0, nil)
			if err != nil {
				if _, err := u.Commit(context.Background(), d, int64(len(all))); err != nil {
					t.Fatalf("Commit after the fault cleared: %v", err)
				}
			}
			f, err := s.Open(d)
			if err != nil {
				t.Fatal(err)
			}
			f.Close()
		})
	}
}
