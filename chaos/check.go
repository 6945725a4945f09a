package chaos

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/anishathalye/porcupine"
)

// Verdict is one checker's result.
type Verdict struct {
	Name     string   `json:"name"`
	OK       bool     `json:"ok"`
	Detail   string   `json:"detail"`             // what was checked
	Problems []string `json:"problems,omitempty"` // the first few violations
}

func (v *Verdict) fail(format string, args ...any) {
	v.OK = false
	if len(v.Problems) < 20 {
		v.Problems = append(v.Problems, fmt.Sprintf(format, args...))
	}
}

// leaderSample is one scrape of a node's Raft gauges.
type leaderSample struct {
	At    int64   `json:"at"`
	Node  string  `json:"node"`
	Term  float64 `json:"term"`
	State float64 `json:"state"` // 2 is leader
}

// monitorLeaders scrapes every running node's raft gauges every 200ms until
// ctx ends.
func monitorLeaders(ctx context.Context, c *cluster, h *history) []leaderSample {
	var mu sync.Mutex
	var out []leaderSample
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			mu.Lock()
			defer mu.Unlock()
			return out
		case <-t.C:
		}
		var wg sync.WaitGroup
		for _, n := range c.nodes {
			if !n.running() || n.isPaused() {
				continue
			}
			wg.Go(func() {
				term, state, err := c.raftGauges(ctx, n)
				if err == nil {
					mu.Lock()
					out = append(out, leaderSample{At: h.now(), Node: n.id, Term: term, State: state})
					mu.Unlock()
				}
			})
		}
		wg.Wait()
	}
}

// checkOneLeader: no two nodes are seen leading in the same term.
func checkOneLeader(samples []leaderSample) Verdict {
	v := Verdict{Name: "one-leader", OK: true}
	leaders := map[float64]map[string]bool{}
	for _, s := range samples {
		if s.State != 2 {
			continue
		}
		if leaders[s.Term] == nil {
			leaders[s.Term] = map[string]bool{}
		}
		leaders[s.Term][s.Node] = true
	}
	for term, set := range leaders {
		if len(set) > 1 {
			var ns []string
			for n := range set {
				ns = append(ns, n)
			}
			sort.Strings(ns)
			v.fail("term %v has leaders %s", term, strings.Join(ns, ","))
		}
	}
	v.Detail = fmt.Sprintf("%d samples, %d terms with a leader", len(samples), len(leaders))
	return v
}

// waitConverged waits until every node reports the same applied index, then
// requires equal metadata digests at it.
func waitConverged(ctx context.Context, c *cluster, d time.Duration, nudge func(*node)) Verdict {
	v := Verdict{Name: "state-digest", OK: true}
	deadline := time.Now().Add(d)
	var last []stateDigest
	var lastErr error
	for time.Now().Before(deadline) && ctx.Err() == nil {
		last, lastErr = last[:0], nil
		for _, n := range c.nodes {
			sd, err := c.stateDigest(ctx, n)
			if err != nil {
				lastErr = err
				break
			}
			last = append(last, sd)
		}
		if lastErr == nil {
			same := true
			for _, sd := range last[1:] {
				same = same && sd.Index == last[0].Index
			}
			if !same && nudge != nil {
				// A quiet cluster's followers learn the last entry's commit
				// only with the next entry: a tag read on each (a read index
				// from the leader, which appends a no-op when they lag) moves
				// them on, as any client's would.
				for _, n := range c.nodes {
					nudge(n)
				}
			}
			if same {
				for _, sd := range last[1:] {
					if sd.Digest != last[0].Digest {
						v.fail("metadata diverged at applied index %d: %+v", last[0].Index, last)
						return v
					}
				}
				v.Detail = fmt.Sprintf("%d nodes at applied index %d, digest %.12s", len(last), last[0].Index, last[0].Digest)
				return v
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	v.fail("no common applied index within %s: last %+v (err %v)", d, last, lastErr)
	return v
}

// checkBodies: every 200 by digest hashes to that digest; every manifest read
// by tag is one a client sent to that repository.
func checkBodies(ops []Op, written map[string]*image) Verdict {
	v := Verdict{Name: "body-digest", OK: true}
	n := 0
	for _, op := range ops {
		switch {
		case op.Kind == "pull-blob" && op.Outcome == OK:
			n++
			if op.Got != op.Digest {
				v.fail("op %d: GET %s blob %s on %s: body hashes to %s", op.ID, op.Repo, op.Digest, op.Node, op.Got)
			}
		case (op.Kind == "read" || op.Kind == "final-read") && op.Outcome == OK && op.Got != "":
			n++
			if im := written[op.Got]; im == nil || im.repo != op.Repo {
				v.fail("op %d: GET %s:%s on %s: a manifest (%s) no client wrote there", op.ID, op.Repo, op.Tag, op.Node, op.Got)
			}
		}
	}
	v.Detail = fmt.Sprintf("%d bodies", n)
	return v
}

// checkPullable pulls every acknowledged manifest by digest, and its blobs,
// from every node, byte for byte.
func checkPullable(ctx context.Context, w *workload, ops []Op) Verdict {
	v := Verdict{Name: "acked-pullable", OK: true}
	w.mu.Lock()
	acked := append([]*image(nil), w.acked...)
	w.mu.Unlock()
	seen := map[string]bool{}
	var uniq []*image
	skipped := 0
	for _, im := range acked {
		if !mustBeLive(im, ops) {
			skipped++
			continue
		}
		if k := im.repo + "@" + im.digest; !seen[k] {
			seen[k] = true
			uniq = append(uniq, im)
		}
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	sem := make(chan struct{}, 16)
	for _, n := range w.c.nodes {
		for _, im := range uniq {
			sem <- struct{}{}
			wg.Go(func() {
				defer func() { <-sem }()
				if err := pullImage(ctx, w, n, im); err != nil {
					mu.Lock()
					v.fail("%s: %v", n.id, err)
					mu.Unlock()
				}
			})
		}
	}
	wg.Wait()
	v.Detail = fmt.Sprintf("%d acknowledged manifests x %d nodes (%d deleted by digest not counted)", len(uniq), len(w.c.nodes), skipped)
	return v
}

func pullImage(ctx context.Context, w *workload, n *node, im *image) error {
	st, _, body, err := w.do(ctx, n, http.MethodGet, "/v2/"+im.repo+"/manifests/"+im.digest, nil, "Accept", manifestAccept)
	if err != nil || st != http.StatusOK {
		return fmt.Errorf("GET %s@%s: %d %v %s", im.repo, im.digest, st, err, oneLine(string(body), 200))
	}
	if !bytes.Equal(body, im.manifest) {
		return fmt.Errorf("GET %s@%s: %d bytes hashing to %s", im.repo, im.digest, len(body), sha(body))
	}
	for _, b := range im.blobs {
		st, _, body, err := w.do(ctx, n, http.MethodGet, "/v2/"+im.repo+"/blobs/"+b.digest, nil)
		if err != nil || st != http.StatusOK {
			return fmt.Errorf("GET %s blob %s: %d %v %s", im.repo, b.digest, st, err, oneLine(string(body), 200))
		}
		if !bytes.Equal(body, b.data) {
			return fmt.Errorf("GET %s blob %s: %d bytes hashing to %s", im.repo, b.digest, len(body), sha(body))
		}
	}
	return nil
}

// isWrite tells the operations that set a tag: push, move and restore write
// the op's digest, a delete writes "" (no tag).
func isWrite(op Op) bool {
	switch op.Kind {
	case "push", "move", "restore", "delete-tag", "delete-manifest":
		return true
	}
	return false
}

// written is the value a write op sets its tag to.
func written(op Op) string {
	if strings.HasPrefix(op.Kind, "delete-") {
		return ""
	}
	return op.Digest
}

// regInput is a register operation on one tag.
type regInput struct {
	Key   string // repo:tag
	Write bool
	Value string // written digest
}

// registerModel is a register per tag; the initial value is "" (no tag).
var registerModel = porcupine.Model{
	Partition: func(ops []porcupine.Operation) [][]porcupine.Operation {
		by := map[string][]porcupine.Operation{}
		var keys []string
		for _, op := range ops {
			k := op.Input.(regInput).Key
			if by[k] == nil {
				keys = append(keys, k)
			}
			by[k] = append(by[k], op)
		}
		sort.Strings(keys)
		out := make([][]porcupine.Operation, 0, len(keys))
		for _, k := range keys {
			out = append(out, by[k])
		}
		return out
	},
	Init: func() any { return "" },
	Step: func(state, input, output any) (bool, any) {
		in := input.(regInput)
		if in.Write {
			return true, in.Value
		}
		return output.(string) == state.(string), state
	},
	DescribeOperation: func(input, output any) string {
		in := input.(regInput)
		if in.Write {
			return fmt.Sprintf("put %s=%.19s", in.Key, in.Value)
		}
		return fmt.Sprintf("get %s -> %.19s", in.Key, output.(string))
	},
	DescribeState: func(state any) string { return fmt.Sprintf("%.19s", state.(string)) },
}

// checkLinearizable runs Porcupine on the tag writes and reads: ok writes as
// they were, unknown ones as if they might have taken effect at any time
// after they were sent (their return is infinity), failed ones left out;
// reads that answered 200 or 404. On a violation it writes a visualization
// into dir.
//
// With finalOnly, only the reads made after healing and convergence count
// (linearizable-final): a weaker check that still fails when an acknowledged
// write is lost or a refused one appears.
func checkLinearizable(ops []Op, dir string, timeout time.Duration, finalOnly bool) Verdict {
	v := Verdict{Name: "linearizable", OK: true}
	if finalOnly {
		v.Name = "linearizable-final"
	}
	var hist []porcupine.Operation
	writes, reads, unknown := 0, 0, 0
	for _, op := range ops {
		key := op.Repo + ":" + op.Tag
		switch {
		case isWrite(op) && op.Outcome != Failed:
			end := op.End
			if op.Outcome == Unknown {
				end, unknown = math.MaxInt64, unknown+1
			}
			writes++
			hist = append(hist, porcupine.Operation{ClientId: op.Client, Input: regInput{Key: key, Write: true, Value: written(op)}, Call: op.Start, Output: "", Return: end})
		case (op.Kind == "final-read" || op.Kind == "read" && !finalOnly) && op.Outcome == OK:
			reads++
			hist = append(hist, porcupine.Operation{ClientId: op.Client, Input: regInput{Key: key}, Call: op.Start, Output: op.Got, Return: op.End})
		}
	}
	res, info := porcupine.CheckOperationsVerbose(registerModel, hist, timeout)
	v.Detail = fmt.Sprintf("%d writes (%d unknown), %d reads: %s", writes, unknown, reads, res)
	switch res {
	case porcupine.Illegal:
		p := filepath.Join(dir, v.Name+".html")
		_ = porcupine.VisualizePath(registerModel, info, p)
		v.fail("per-tag history is not linearizable; see %s", p)
		for _, s := range staleReads(ops) {
			v.fail("%s", s)
		}
	case porcupine.Unknown:
		v.Detail += " (checker timed out: not proven either way)"
	}
	return v
}

// fsckReport is the part of POST /api/v1/fsck the checker reads.
type fsckReport struct {
	Clean bool              `json:"clean"`
	Nodes []json.RawMessage `json:"nodes"`
}

// checkFsck runs fsck (no repair) until it is clean, up to 3 times 5s apart
// (copies may still be replicating just after convergence).
func checkFsck(ctx context.Context, w *workload) Verdict {
	v := Verdict{Name: "fsck", OK: true}
	var last string
	for attempt := 1; attempt <= 3; attempt++ {
		st, _, body, err := w.do(ctx, w.c.nodes[0], http.MethodPost, "/api/v1/fsck", []byte(`{"repair":false}`), "Content-Type", "application/json")
		if err == nil && st == http.StatusNotImplemented {
			v.Detail = "not supported by this server"
			return v
		}
		var rep fsckReport
		if err == nil && st == http.StatusOK && json.Unmarshal(body, &rep) == nil {
			if rep.Clean {
				v.Detail = fmt.Sprintf("%d nodes clean (attempt %d)", len(rep.Nodes), attempt)
				return v
			}
			last = oneLine(string(body), 1500)
		} else {
			last = fmt.Sprintf("%d %v %s", st, err, oneLine(string(body), 300))
		}
		time.Sleep(5 * time.Second)
	}
	v.fail("fsck not clean after 3 attempts: %s", last)
	return v
}

// staleReads names reads that returned a value although a write of another
// value was acknowledged after every write of that value had ended and
// before the read was sent: the plainest witnesses of a violation.
func staleReads(ops []Op) []string {
	var out []string
	for _, rd := range ops {
		if rd.Kind != "read" && rd.Kind != "final-read" || rd.Outcome != OK || rd.Got == "" {
			continue
		}
		var lastEnd int64
		for _, w := range ops {
			if isWrite(w) && w.Outcome != Failed && w.Repo == rd.Repo && w.Tag == rd.Tag && written(w) == rd.Got {
				e := w.End
				if w.Outcome == Unknown {
					e = math.MaxInt64
				}
				lastEnd = max(lastEnd, e)
			}
		}
		for _, w := range ops {
			if isWrite(w) && w.Outcome == OK && w.Repo == rd.Repo && w.Tag == rd.Tag &&
				written(w) != rd.Got && w.Start > lastEnd && w.End < rd.Start {
				out = append(out, fmt.Sprintf("stale read: op %d GET %s:%s on %s at %.3fs returned %.19s, but op %d (PUT %.19s through %s) was acknowledged at %.3fs, after every write of that value had ended",
					rd.ID, rd.Repo, rd.Tag, rd.Node, float64(rd.Start)/1e9, rd.Got, w.ID, w.Digest, w.Node, float64(w.End)/1e9))
				break
			}
		}
		if len(out) == 5 {
			break
		}
	}
	return out
}
