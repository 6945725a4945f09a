package chaos

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"
)

// The checkers that look at what is left after the run: what garbage
// collection kept and reclaimed, and what was refused.

// gcRun is the part of a GC run (GET /api/v1/gc/:id) the checkers read.
type gcRun struct {
	ID           string   `json:"id"`
	State        string   `json:"state"`
	PendingNodes []string `json:"pendingNodes"`
	Errors       []string `json:"errors"`
	Reclaimed    struct {
		Blobs     int `json:"blobs"`
		Manifests int `json:"manifests"`
	} `json:"reclaimed"`
}

// finalGC runs one garbage collection to its end, every node's files
// deleted, trying each node in turn (a run already going answers 409).
func finalGC(ctx context.Context, w *workload, d time.Duration) (*gcRun, error) {
	deadline := time.Now().Add(d)
	var last error
	for i := 0; time.Now().Before(deadline) && ctx.Err() == nil; i++ {
		n := w.c.nodes[i%len(w.c.nodes)]
		st, _, body, err := w.do(ctx, n, http.MethodPost, "/api/v1/gc", []byte(`{"deleteUntagged":false}`), "Content-Type", "application/json")
		if err != nil || st != http.StatusAccepted {
			last = fmt.Errorf("%s: POST /api/v1/gc: %d %v %s", n.id, st, err, oneLine(string(body), 200))
			time.Sleep(500 * time.Millisecond)
			continue
		}
		var run gcRun
		if err := json.Unmarshal(body, &run); err != nil {
			return nil, err
		}
		for time.Now().Before(deadline) && ctx.Err() == nil {
			time.Sleep(250 * time.Millisecond)
			st, _, body, err := w.do(ctx, n, http.MethodGet, "/api/v1/gc/"+run.ID, nil)
			if err != nil || st != http.StatusOK {
				last = fmt.Errorf("%s: GET /api/v1/gc/%s: %d %v", n.id, run.ID, st, err)
				continue
			}
			run = gcRun{}
			if err := json.Unmarshal(body, &run); err != nil {
				return nil, err
			}
			switch {
			case run.State == "done" && len(run.PendingNodes) == 0:
				return &run, nil
			case run.State == "failed" || run.State == "aborted":
				return &run, fmt.Errorf("gc run %s %s: %s", run.ID, run.State, strings.Join(run.Errors, "; "))
			}
		}
		last = fmt.Errorf("gc run %s not finished: state %s, pending %v", run.ID, run.State, run.PendingNodes)
	}
	return nil, fmt.Errorf("no garbage collection finished within %s: %v", d, last)
}

// liveManifests asks a node which of the manifests clients sent (acknowledged
// or not) are there at the end, by digest.
func liveManifests(ctx context.Context, w *workload, n *node) ([]*image, error) {
	w.mu.Lock()
	all := make([]*image, 0, len(w.written))
	for _, im := range w.written {
		all = append(all, im)
	}
	w.mu.Unlock()
	var mu sync.Mutex
	var live []*image
	var firstErr error
	var wg sync.WaitGroup
	sem := make(chan struct{}, 16)
	for _, im := range all {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			st, _, _, err := w.do(ctx, n, http.MethodHead, "/v2/"+im.repo+"/manifests/"+im.digest, nil, "Accept", manifestAccept)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil && st == http.StatusOK:
				live = append(live, im)
			case err == nil && st == http.StatusNotFound:
			case firstErr == nil:
				firstErr = fmt.Errorf("HEAD %s@%s on %s: %d %v", im.repo, im.digest, n.id, st, err)
			}
		})
	}
	wg.Wait()
	return live, firstErr
}

// trashedManifests lists the images of trashRepo's trash items.
func trashedManifests(ctx context.Context, w *workload) ([]*image, error) {
	st, _, body, err := w.do(ctx, w.c.nodes[0], http.MethodGet, "/api/v1/workspaces/"+trashWS+"/trash", nil)
	if err != nil || st != http.StatusOK {
		return nil, fmt.Errorf("GET the trash: %d %v %s", st, err, oneLine(string(body), 200))
	}
	var list struct {
		Items []struct {
			Digest string `json:"digest"`
		} `json:"items"`
	}
	if err := json.Unmarshal(body, &list); err != nil {
		return nil, fmt.Errorf("GET the trash: %w", err)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []*image
	for _, it := range list.Items {
		if im := w.written[it.Digest]; im != nil {
			out = append(out, im)
		}
	}
	return out, nil
}

// blobFile is where a node keeps a sha256 blob (blobstore's layout).
func blobFile(n *node, digest string) string {
	hex := strings.TrimPrefix(digest, "sha256:")
	return filepath.Join(n.dataDir, "blobs", "sha256", hex[:2], hex)
}

// checkGC runs one garbage collection after the run and then requires:
//
//	gc-kept      every manifest still there (acknowledged or not) is
//	             complete on every node: it and each of its blobs pull
//	             byte-identical (GC never removed a reachable blob)
//	gc-reclaimed every blob a client uploaded that no remaining manifest
//	             references is gone: 404 in its repository and no file on
//	             any node's disk
//
// The nodes run with a zero grace period, a short deleted-item retention and
// the shortest orphan age, and the run starts once that age has passed
// since the last client operation, so the blobs of abandoned uploads, failed pushes and images
// deleted by digest (once their trash item expires) are all unreachable.
func checkGC(ctx context.Context, w *workload, notBefore time.Time) []Verdict {
	kept := Verdict{Name: "gc-kept", OK: true}
	reclaimed := Verdict{Name: "gc-reclaimed", OK: true}
	select {
	case <-ctx.Done():
	case <-time.After(time.Until(notBefore)):
	}
	run, err := finalGC(ctx, w, 2*time.Minute)
	if err != nil {
		kept.fail("final garbage collection: %v", err)
		reclaimed.fail("final garbage collection: %v", err)
		return []Verdict{kept, reclaimed}
	}
	live, err := liveManifests(ctx, w, w.c.nodes[0])
	if err != nil {
		kept.fail("%v", err)
		reclaimed.fail("%v", err)
		return []Verdict{kept, reclaimed}
	}
	reachable := map[string]bool{}
	for _, im := range live {
		for _, b := range im.blobs {
			reachable[b.digest] = true
		}
	}
	// A trash item still within its retention (by the clock of the node
	// that deleted it, which may have run ahead) keeps what it needs.
	inTrash, err := trashedManifests(ctx, w)
	if err != nil {
		reclaimed.fail("%v", err)
	}
	for _, im := range inTrash {
		for _, b := range im.blobs {
			reachable[b.digest] = true
		}
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	sem := make(chan struct{}, 16)
	for _, n := range w.c.nodes {
		for _, im := range live {
			sem <- struct{}{}
			wg.Go(func() {
				defer func() { <-sem }()
				if err := pullImage(ctx, w, n, im); err != nil {
					mu.Lock()
					kept.fail("%s: %v", n.id, err)
					mu.Unlock()
				}
			})
		}
	}
	wg.Wait()
	kept.Detail = fmt.Sprintf("gc run %s reclaimed %d blobs, %d manifests; %d manifests left, complete on %d nodes; %d kept in the trash",
		run.ID, run.Reclaimed.Blobs, run.Reclaimed.Manifests, len(live), len(w.c.nodes), len(inTrash))

	w.mu.Lock()
	var gone []string
	repoOf := map[string]string{}
	for d, repo := range w.uploaded {
		if !reachable[d] {
			gone = append(gone, d)
			repoOf[d] = repo
		}
	}
	w.mu.Unlock()
	sort.Strings(gone)
	for _, d := range gone {
		for _, n := range w.c.nodes {
			if _, err := os.Stat(blobFile(n, d)); err == nil {
				reclaimed.fail("%s: unreachable blob %s (uploaded to %s) still on disk", n.id, d, repoOf[d])
			} else if !errors.Is(err, os.ErrNotExist) {
				reclaimed.fail("%s: %v", n.id, err)
			}
		}
		st, _, _, err := w.do(ctx, w.c.nodes[0], http.MethodHead, "/v2/"+repoOf[d]+"/blobs/"+d, nil)
		if err != nil || st != http.StatusNotFound {
			reclaimed.fail("HEAD %s blob %s: %d %v, want 404 after GC", repoOf[d], d, st, err)
		}
	}
	reclaimed.Detail = fmt.Sprintf("%d uploaded blobs unreachable at the end, none left on %d nodes' disks", len(gone), len(w.c.nodes))
	return []Verdict{kept, reclaimed}
}

// checkRefused: a manifest every write of which was refused (4xx or a
// refused connection: definitely not done) is on no node.
func checkRefused(ctx context.Context, w *workload, ops []Op) Verdict {
	v := Verdict{Name: "refused-absent", OK: true}
	maybe := map[string]bool{}
	refused := map[string]string{} // digest -> repo
	for _, op := range ops {
		if op.Kind != "push" && op.Kind != "move" && !strings.HasPrefix(op.Kind, "restore") {
			continue
		}
		if op.Outcome == Failed {
			if op.Kind == "push" {
				refused[op.Digest] = op.Repo
			}
			continue
		}
		maybe[op.Digest] = true
	}
	n := 0
	for d, repo := range refused {
		if maybe[d] {
			continue
		}
		n++
		for _, nd := range w.c.nodes {
			st, _, _, err := w.do(ctx, nd, http.MethodGet, "/v2/"+repo+"/manifests/"+d, nil, "Accept", manifestAccept)
			if err != nil || st != http.StatusNotFound {
				v.fail("%s: GET %s@%s (every write refused): %d %v, want 404", nd.id, repo, d, st, err)
			}
		}
	}
	v.Detail = fmt.Sprintf("%d refused manifests absent from %d nodes", n, len(w.c.nodes))
	return v
}

// mustBeLive reports whether an acknowledged image must still be pullable by
// digest: always outside trashRepo; in it, when it was never deleted by
// digest (a deleted tag leaves the manifest), or when the last operation on
// it is an acknowledged restore that no delete overlapped.
func mustBeLive(im *image, ops []Op) bool {
	if im.repo != trashRepo {
		return true
	}
	var last *Op
	deleted := false
	for i := range ops {
		op := &ops[i]
		if op.Repo != trashRepo || op.Digest != im.digest || op.Outcome == Failed || (op.Kind != "delete-manifest" && !strings.HasPrefix(op.Kind, "restore")) {
			continue
		}
		deleted = deleted || op.Kind == "delete-manifest"
		if last == nil || op.Start > last.Start {
			last = op
		}
	}
	if !deleted {
		return true
	}
	if !strings.HasPrefix(last.Kind, "restore") || last.Outcome != OK {
		return false
	}
	for _, op := range ops {
		if op.Repo == trashRepo && op.Digest == im.digest && op.Kind == "delete-manifest" && op.Outcome != Failed {
			end := op.End
			if op.Outcome == Unknown {
				end = math.MaxInt64
			}
			if end >= last.Start {
				return false
			}
		}
	}
	return true
}

// checkCrashes: a node exits only when the nemesis kills it, or fails stop
// while a disk fault is on it (a failed fsync must not be retried).
func checkCrashes(cs []crash) Verdict {
	v := Verdict{Name: "no-crash", OK: true}
	expected := 0
	for _, c := range cs {
		if c.DiskFault {
			expected++
			continue
		}
		v.fail("%s exited by itself at %s: %s (see its log)", c.Node, c.At, c.Exit)
	}
	v.Detail = fmt.Sprintf("%d exits under disk faults (fail-stop), %d others", expected, len(cs)-expected)
	return v
}
