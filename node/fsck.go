package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/berth-registry/berth/api"
	"github.com/berth-registry/berth/blobstore"
	"github.com/berth-registry/berth/meta"
)

// fsck: every blob the metadata places on a node is there with the right size
// and digest, and no file is orphaned. This is the one place where reading the
// files back is the point (a scrub): each node recomputes the digest of every
// copy it is recorded to hold. With repair, a missing or bad copy is fetched
// again from another holder (verified while it streams, as replication does),
// a copy that cannot be is dropped from the recorded locations, and orphans
// (files no metadata names, older than the grace period and not touched
// lately) are removed.

var _ api.Fscker = (*Node)(nil)

// Fsck runs fsck on every live node, this one included, and gathers their
// reports. A node that does not answer is listed with its error.
func (n *Node) Fsck(ctx context.Context, repair bool) (*api.FsckReport, error) {
	peers := n.livePeers()
	results := make([]api.FsckNode, len(peers)+1)
	var wg sync.WaitGroup
	for i, p := range peers {
		wg.Add(1)
		go func(i int, p peer) {
			defer wg.Done()
			results[i+1] = n.peerFsck(ctx, p, repair)
		}(i, p)
	}
	results[0] = *n.fsckLocal(ctx, repair)
	wg.Wait()
	sort.Slice(results, func(i, j int) bool { return results[i].Node < results[j].Node })
	rep := &api.FsckReport{Repair: repair, Clean: true, Nodes: results}
	for i := range results {
		if !results[i].Clean() {
			rep.Clean = false
		}
	}
	return rep, ctx.Err()
}

func (n *Node) peerFsck(ctx context.Context, p peer, repair bool) api.FsckNode {
	path := "fsck"
	if repair {
		path += "?repair=1"
	}
	out := api.FsckNode{Node: p.ID}
	resp, err := n.peers.do(ctx, http.MethodPost, p.APIAddr, path, nil, 0)
	if err != nil {
		out.Errors = append(out.Errors, err.Error())
		return out
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
		out.Errors = append(out.Errors, fmt.Sprintf("answered %d: %s", resp.StatusCode, msg))
		return out
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		out.Errors = append(out.Errors, fmt.Sprintf("report: %v", err))
	}
	out.Node = p.ID
	return out
}

// serveFsck answers POST /internal/v1/fsck[?repair=1] with this node's report.
// The status goes out first and the report when done, so that a long scrub is
// not cut by the caller's wait for response headers.
func (n *Node) serveFsck(w http.ResponseWriter, r *http.Request) {
	repair := r.URL.Query().Get("repair") == "1"
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	if f, ok := w.(http.Flusher); ok {
		f.Flush()
	}
	_ = json.NewEncoder(w).Encode(n.fsckLocal(r.Context(), repair))
}

// fsckLocal checks (and repairs) this node's files.
func (n *Node) fsckLocal(ctx context.Context, repair bool) *api.FsckNode {
	start := time.Now()
	out := &api.FsckNode{Node: n.cfg.NodeID}
	defer func() { out.Seconds = time.Since(start).Seconds() }()
	r := n.fsm.Reader()
	// The blobs recorded here, read first: no iterator stays open across the
	// long file reads.
	var mine []meta.Blob
	err := meta.ScanBlobs(r, "", func(b *meta.Blob) error {
		locs, err := meta.BlobLocations(r, b.Digest)
		if err != nil {
			return err
		}
		for _, id := range locs {
			if id == n.cfg.NodeID {
				mine = append(mine, *b)
				break
			}
		}
		return nil
	})
	if err != nil {
		out.Errors = append(out.Errors, err.Error())
		return out
	}
	var bad []digest.Digest
	for _, b := range mine {
		if ctx.Err() != nil {
			out.Errors = append(out.Errors, ctx.Err().Error())
			return out
		}
		d := digest.Digest(b.Digest)
		out.Checked++
		read, err := n.verifyCopy(d, b.Size)
		out.Bytes += read
		switch {
		case errors.Is(err, blobstore.ErrBlobUnknown):
			out.Missing = append(out.Missing, string(d))
			bad = append(bad, d)
		case errors.Is(err, errCorrupt):
			out.Corrupt = append(out.Corrupt, string(d))
			bad = append(bad, d)
		case err != nil:
			out.Errors = append(out.Errors, err.Error())
		}
	}
	grace := n.gc.get().grace
	var orphans []digest.Digest
	err = n.blobs.Walk(func(d digest.Digest, _ int64) error {
		if n.isOrphan(d, grace) {
			orphans = append(orphans, d)
			out.Orphans = append(out.Orphans, string(d))
		}
		return ctx.Err()
	})
	if err != nil {
		out.Errors = append(out.Errors, err.Error())
	}
	if !repair {
		return out
	}
	for _, d := range bad {
		if err := n.repairCopy(ctx, d); err != nil {
			out.Errors = append(out.Errors, err.Error())
			continue
		}
		out.Repaired++
	}
	keep := func(at time.Time) bool { return !at.IsZero() && time.Since(at) < n.gc.touchKeep() }
	for _, d := range orphans {
		if _, deleted, _, err := n.deleteIfGarbage(d, keep); err != nil {
			out.Errors = append(out.Errors, err.Error())
		} else if deleted {
			out.OrphansRemoved++
		}
	}
	return out
}

var errCorrupt = errors.New("node: blob copy corrupt")

// verifyCopy reads this node's copy of d back and checks its size and digest.
// It returns the bytes read; blobstore.ErrBlobUnknown when there is no copy,
// errCorrupt when it is wrong.
func (n *Node) verifyCopy(d digest.Digest, size int64) (int64, error) {
	f, err := n.blobs.Open(d)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return 0, err
	}
	if fi.Size() != size {
		return 0, fmt.Errorf("%w: %s has %d bytes, the metadata says %d", errCorrupt, d, fi.Size(), size)
	}
	v := d.Verifier()
	read, err := io.Copy(v, f)
	if err != nil {
		return read, fmt.Errorf("read %s: %w", d, err)
	}
	if !v.Verified() {
		return read, fmt.Errorf("%w: %s does not hash to its digest", errCorrupt, d)
	}
	return read, nil
}

// repairCopy replaces this node's copy of d by one fetched from another
// holder. When none can give one, the location is dropped, so that reads go
// elsewhere and the replicator copies it back when it can.
func (n *Node) repairCopy(ctx context.Context, d digest.Digest) error {
	if err := n.blobs.Delete(d); err != nil {
		return err
	}
	if err := n.fetch(ctx, d); err != nil {
		if perr := n.Propose(ctx, &meta.SetBlobLocation{Digest: meta.Digest(d), Node: n.cfg.NodeID, Remove: true, Time: n.clock()}); perr != nil {
			return fmt.Errorf("repair %s: %v; drop its location: %w", d, err, perr)
		}
		return fmt.Errorf("repair %s: %w (its location here was dropped)", d, err)
	}
	return nil
}
