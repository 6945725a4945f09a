package chaos

import (
	"sync"
	"time"
)

// Outcomes of an operation, as a client saw it.
const (
	OK      = "ok"      // the request succeeded
	Failed  = "failed"  // it definitely did not happen (4xx, connection refused)
	Unknown = "unknown" // it may or may not have happened (timeout, 5xx, cut connection)
)

// Op is one recorded client operation. Times are nanoseconds since the run's
// start (monotonic).
type Op struct {
	ID     int `json:"id"`
	Client int `json:"client"`
	// push, move, read, pull-blob, gc, final-read, abandon, delete-tag,
	// delete-manifest, restore, restore-untagged (a manifest restored
	// without the op's tag)
	Kind    string `json:"kind"`
	Node    string `json:"node"`
	Repo    string `json:"repo,omitempty"`
	Tag     string `json:"tag,omitempty"`
	Digest  string `json:"digest,omitempty"` // written or asked for
	Got     string `json:"got,omitempty"`    // digest of what came back ("" for 404 on a read)
	Item    string `json:"item,omitempty"`   // a restore's trash item
	Start   int64  `json:"start"`
	End     int64  `json:"end"`
	Outcome string `json:"outcome"`
	Status  int    `json:"status,omitempty"`
	Error   string `json:"error,omitempty"`
}

// history is the run's operations. Safe for concurrent use.
type history struct {
	t0 time.Time
	mu sync.Mutex // guards ops
	// ops in completion order.
	ops []Op
}

func (h *history) now() int64 { return time.Since(h.t0).Nanoseconds() }

func (h *history) add(op Op) {
	h.mu.Lock()
	op.ID = len(h.ops)
	h.ops = append(h.ops, op)
	h.mu.Unlock()
}

func (h *history) all() []Op {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]Op(nil), h.ops...)
}
