package chaos

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"
)

const (
	ociManifest    = "application/vnd.oci.image.manifest.v1+json"
	manifestAccept = ociManifest + ", application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.v2+json"
	requestTimeout = 10 * time.Second
)

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(s[:])
}

// blob is content with its digest.
type blob struct {
	digest string
	data   []byte
}

func newBlob(b []byte) blob { return blob{digest: sha(b), data: b} }

// image is a manifest and its blobs.
type image struct {
	repo     string
	manifest []byte
	digest   string
	blobs    []blob
}

// workload drives the clients and knows every image a client tried to write.
type workload struct {
	c     *cluster
	h     *history
	repos []string
	tags  []string
	base  []blob // shared base layers, pushed to baseRepo before the run
	seed  uint64

	mu       sync.Mutex        // guards the fields below
	written  map[string]*image // every manifest a client sent, by digest
	acked    []*image          // manifests acknowledged with 201
	ackedIn  map[string][]*image
	uploaded map[string]string // every blob a client sent: digest -> repository
	trashed  []trashTag        // acknowledged pushes to trashRepo, each under its own tag
	seq      map[int]int       // per client: trashRepo tags used
}

const (
	baseRepo = "library/chaos/base"
	// trashRepo holds images pushed once each under a unique tag, which the
	// clients delete (tag or manifest) and restore from the trash.
	trashRepo = "library/chaos/trash"
	trashWS   = "library"
)

// trashTag is one image of trashRepo.
type trashTag struct {
	tag string
	im  *image
}

func newWorkload(c *cluster, h *history, seed uint64) *workload {
	w := &workload{c: c, h: h, seed: seed,
		repos:   []string{"library/chaos/app-a", "library/chaos/app-b"},
		tags:    []string{"t0", "t1", "t2"},
		written: map[string]*image{}, ackedIn: map[string][]*image{}, uploaded: map[string]string{}, seq: map[int]int{},
	}
	r := rand.New(rand.NewPCG(seed, 1))
	for i := range 3 {
		b := make([]byte, 2048+i*512)
		for j := range b {
			b[j] = byte(r.UintN(256))
		}
		w.base = append(w.base, newBlob(b))
	}
	return w
}

// setup pushes the base layers to baseRepo (retrying), so pushes can mount them.
func (w *workload) setup(ctx context.Context) error {
	for _, b := range w.base {
		w.uploaded[b.digest] = baseRepo
		var last error
		for range 50 {
			n := w.c.nodes[0]
			st, _, _, err := w.do(ctx, n, http.MethodPost, "/v2/"+baseRepo+"/blobs/uploads/?digest="+b.digest, b.data)
			if err == nil && st == http.StatusCreated {
				last = nil
				break
			}
			last = fmt.Errorf("push base layer: %d %v", st, err)
			time.Sleep(200 * time.Millisecond)
		}
		if last != nil {
			return last
		}
	}
	return nil
}

// do sends one request with the admin's credentials and reads the body.
func (w *workload) do(ctx context.Context, n *node, method, path string, body []byte, hdr ...string) (int, http.Header, []byte, error) {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	u := path
	if !strings.HasPrefix(u, "http") {
		u = n.url() + path
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return 0, nil, nil, err
	}
	req.SetBasicAuth(AdminUser, AdminPassword)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := w.c.http.Do(req)
	if err != nil {
		return 0, nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	return resp.StatusCode, resp.Header, b, err
}

// outcome classifies an answer: 2xx ok, 5xx and errors unknown except a
// refused connection (nothing was sent), other statuses failed.
func outcome(st int, err error, okStatus ...int) string {
	if err != nil {
		if errors.Is(err, syscall.ECONNREFUSED) {
			return Failed
		}
		return Unknown
	}
	for _, s := range okStatus {
		if st == s {
			return OK
		}
	}
	if st >= 500 {
		return Unknown
	}
	return Failed
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// client runs one client's loop until ctx ends.
func (w *workload) client(ctx context.Context, id int) {
	r := rand.New(rand.NewPCG(w.seed, uint64(100+id)))
	for ctx.Err() == nil {
		time.Sleep(10 * time.Millisecond) // no busy loop against a dead node
		n := w.c.nodes[r.IntN(len(w.c.nodes))]
		repo := w.repos[r.IntN(len(w.repos))]
		tag := w.tags[r.IntN(len(w.tags))]
		switch p := r.IntN(200); {
		case p < 60:
			w.push(ctx, r, id, n, repo, tag)
		case p < 85:
			w.move(ctx, r, id, n, repo, tag)
		case p < 135:
			w.read(ctx, id, n, repo, tag, "read")
		case p < 155:
			w.pullBlob(ctx, r, id, n)
		case p < 165:
			w.mu.Lock()
			w.seq[id]++
			t := fmt.Sprintf("d%d-%d", id, w.seq[id])
			w.mu.Unlock()
			w.push(ctx, r, id, n, trashRepo, t)
		case p < 175:
			w.remove(ctx, r, id, n)
		case p < 185:
			w.restore(ctx, r, id, n)
		case p < 192:
			w.readTrashTag(ctx, r, id, n)
		case p < 197:
			w.abandon(ctx, r, id, n, repo)
		default:
			w.gc(ctx, id, n)
		}
	}
}

// push uploads a new image (a shared base layer by mount or upload, a unique
// layer chunked or monolithic, a config) through n and puts its manifest by
// tag through a random node. Only the manifest PUT is a write in the history.
func (w *workload) push(ctx context.Context, r *rand.Rand, client int, n *node, repo, tag string) {
	layer := make([]byte, 1024+r.IntN(8192))
	for i := range layer {
		layer[i] = byte(r.UintN(256))
	}
	lb := newBlob(layer)
	base := w.base[r.IntN(len(w.base))]
	cfg := newBlob(fmt.Appendf(nil, `{"architecture":"amd64","os":"linux","config":{"Env":["C=%d"]},"rootfs":{"type":"layers","diff_ids":[%q,%q]}}`, client, base.digest, lb.digest))
	m := fmt.Appendf(nil, `{"schemaVersion":2,"mediaType":%q,"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":%q,"size":%d},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":%q,"size":%d},{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":%q,"size":%d}]}`,
		ociManifest, cfg.digest, len(cfg.data), base.digest, len(base.data), lb.digest, len(lb.data))
	im := &image{repo: repo, manifest: m, digest: sha(m), blobs: []blob{cfg, base, lb}}

	w.mu.Lock()
	w.uploaded[lb.digest], w.uploaded[cfg.digest] = repo, repo
	w.mu.Unlock()
	op := Op{Client: client, Kind: "push", Node: n.id, Repo: repo, Tag: tag, Digest: im.digest, Start: w.h.now()}
	fail := func(step string, st int, err error) {
		op.End, op.Outcome, op.Status = w.h.now(), Failed, st
		op.Error = fmt.Sprintf("%s: %d %v (manifest not sent)", step, st, err)
		w.h.add(op)
	}
	// The base layer: a cross-repository mount (201), or an upload when the
	// registry started a session instead (202).
	st, _, _, err := w.do(ctx, n, http.MethodPost, "/v2/"+repo+"/blobs/uploads/?mount="+base.digest+"&from="+url.QueryEscape(baseRepo), nil)
	if err != nil || (st != http.StatusCreated && st != http.StatusAccepted) {
		fail("mount base", st, err)
		return
	}
	if st == http.StatusAccepted {
		if st, err := w.monolithic(ctx, n, repo, base); err != nil || st != http.StatusCreated {
			fail("upload base", st, err)
			return
		}
	}
	if r.IntN(2) == 0 {
		st, err = w.chunked(ctx, n, repo, lb)
	} else {
		st, err = w.monolithic(ctx, n, repo, lb)
	}
	if err != nil || st != http.StatusCreated {
		fail("upload layer", st, err)
		return
	}
	if st, err := w.monolithic(ctx, n, repo, cfg); err != nil || st != http.StatusCreated {
		fail("upload config", st, err)
		return
	}
	w.putManifest(ctx, r, op, im, tag)
}

// putManifest writes im's manifest to repo:tag through a random node and
// records the write.
func (w *workload) putManifest(ctx context.Context, r *rand.Rand, op Op, im *image, tag string) {
	n := w.c.nodes[r.IntN(len(w.c.nodes))]
	op.Node = n.id
	w.mu.Lock()
	w.written[im.digest] = im
	w.mu.Unlock()
	st, _, body, err := w.do(ctx, n, http.MethodPut, "/v2/"+im.repo+"/manifests/"+tag, im.manifest, "Content-Type", ociManifest)
	op.End, op.Status, op.Outcome = w.h.now(), st, outcome(st, err, http.StatusCreated)
	if op.Outcome != OK {
		op.Error = oneLine(fmt.Sprintf("%v %s", errString(err), body), 200)
	} else {
		w.mu.Lock()
		w.acked = append(w.acked, im)
		if im.repo == trashRepo {
			w.trashed = append(w.trashed, trashTag{tag: tag, im: im})
		} else {
			w.ackedIn[im.repo] = append(w.ackedIn[im.repo], im)
		}
		w.mu.Unlock()
	}
	w.h.add(op)
}

func (w *workload) monolithic(ctx context.Context, n *node, repo string, b blob) (int, error) {
	st, _, _, err := w.do(ctx, n, http.MethodPost, "/v2/"+repo+"/blobs/uploads/?digest="+b.digest, b.data, "Content-Type", "application/octet-stream")
	return st, err
}

// chunked uploads b in two PATCHes and a closing PUT.
func (w *workload) chunked(ctx context.Context, n *node, repo string, b blob) (int, error) {
	st, hdr, _, err := w.do(ctx, n, http.MethodPost, "/v2/"+repo+"/blobs/uploads/", nil)
	if err != nil || st != http.StatusAccepted {
		return st, err
	}
	loc := hdr.Get("Location")
	half := len(b.data) / 2
	for _, part := range [][2]int{{0, half}, {half, len(b.data)}} {
		st, hdr, _, err = w.do(ctx, n, http.MethodPatch, n.abs(loc), b.data[part[0]:part[1]],
			"Content-Type", "application/octet-stream", "Content-Range", fmt.Sprintf("%d-%d", part[0], part[1]-1))
		if err != nil || st != http.StatusAccepted {
			return st, err
		}
		loc = hdr.Get("Location")
	}
	sep := "?"
	if strings.Contains(loc, "?") {
		sep = "&"
	}
	st, _, _, err = w.do(ctx, n, http.MethodPut, n.abs(loc)+sep+"digest="+b.digest, nil)
	return st, err
}

// abs resolves a Location against the node's URL.
func (n *node) abs(loc string) string {
	if strings.HasPrefix(loc, "http://") || strings.HasPrefix(loc, "https://") {
		return loc
	}
	return n.url() + loc
}

// move puts an acknowledged manifest of repo under another tag.
func (w *workload) move(ctx context.Context, r *rand.Rand, client int, n *node, repo, tag string) {
	w.mu.Lock()
	list := w.ackedIn[repo]
	var im *image
	if len(list) > 0 {
		im = list[r.IntN(len(list))]
	}
	w.mu.Unlock()
	if im == nil {
		return
	}
	w.putManifest(ctx, r, Op{Client: client, Kind: "move", Repo: repo, Tag: tag, Digest: im.digest, Start: w.h.now()}, im, tag)
}

// read gets repo:tag; Got is the digest of the body (200) or "" (404).
func (w *workload) read(ctx context.Context, client int, n *node, repo, tag, kind string) Op {
	op := Op{Client: client, Kind: kind, Node: n.id, Repo: repo, Tag: tag, Start: w.h.now()}
	st, _, body, err := w.do(ctx, n, http.MethodGet, "/v2/"+repo+"/manifests/"+tag, nil, "Accept", manifestAccept)
	op.End, op.Status = w.h.now(), st
	switch {
	case err == nil && st == http.StatusOK:
		op.Outcome, op.Got = OK, sha(body)
	case err == nil && st == http.StatusNotFound:
		op.Outcome = OK
	default:
		op.Outcome = Failed // a read that did not answer constrains nothing
		op.Error = oneLine(fmt.Sprintf("%v %s", errString(err), body), 200)
	}
	w.h.add(op)
	return op
}

// pullBlob gets one blob of an acknowledged image by digest.
func (w *workload) pullBlob(ctx context.Context, r *rand.Rand, client int, n *node) {
	w.mu.Lock()
	var im *image
	if len(w.acked) > 0 {
		im = w.acked[r.IntN(len(w.acked))]
	}
	w.mu.Unlock()
	if im == nil {
		return
	}
	b := im.blobs[r.IntN(len(im.blobs))]
	op := Op{Client: client, Kind: "pull-blob", Node: n.id, Repo: im.repo, Digest: b.digest, Start: w.h.now()}
	st, _, body, err := w.do(ctx, n, http.MethodGet, "/v2/"+im.repo+"/blobs/"+b.digest, nil)
	op.End, op.Status, op.Outcome = w.h.now(), st, outcome(st, err, http.StatusOK)
	if op.Outcome == OK {
		op.Got = sha(body)
	} else {
		op.Error = oneLine(fmt.Sprintf("%v %s", errString(err), body), 200)
	}
	w.h.add(op)
}

// gc starts a garbage collection (untagged manifests are kept, so every
// acknowledged push stays reachable).
func (w *workload) gc(ctx context.Context, client int, n *node) {
	op := Op{Client: client, Kind: "gc", Node: n.id, Start: w.h.now()}
	st, _, body, err := w.do(ctx, n, http.MethodPost, "/api/v1/gc", []byte(`{"deleteUntagged":false}`), "Content-Type", "application/json")
	op.End, op.Status, op.Outcome = w.h.now(), st, outcome(st, err, http.StatusAccepted)
	if op.Outcome != OK {
		op.Error = oneLine(fmt.Sprintf("%v %s", errString(err), body), 200)
	}
	w.h.add(op)
}

func oneLine(s string, max int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > max {
		s = s[:max] + "..."
	}
	return s
}

// pickTrashed returns a random acknowledged image of trashRepo.
func (w *workload) pickTrashed(r *rand.Rand) (trashTag, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.trashed) == 0 {
		return trashTag{}, false
	}
	return w.trashed[r.IntN(len(w.trashed))], true
}

// remove deletes a trashRepo image by tag, or by digest (the manifest and its
// one tag); either is a write of "no tag" to the tag's register.
func (w *workload) remove(ctx context.Context, r *rand.Rand, client int, n *node) {
	tt, ok := w.pickTrashed(r)
	if !ok {
		return
	}
	ref, kind := tt.tag, "delete-tag"
	if r.IntN(2) == 0 {
		ref, kind = tt.im.digest, "delete-manifest"
	}
	op := Op{Client: client, Kind: kind, Node: n.id, Repo: trashRepo, Tag: tt.tag, Digest: tt.im.digest, Start: w.h.now()}
	st, _, body, err := w.do(ctx, n, http.MethodDelete, "/v2/"+trashRepo+"/manifests/"+ref, nil)
	op.End, op.Status, op.Outcome = w.h.now(), st, outcome(st, err, http.StatusAccepted)
	if op.Outcome != OK {
		op.Error = oneLine(fmt.Sprintf("%v %s", errString(err), body), 200)
	}
	w.h.add(op)
}

// restore asks for a trashRepo image back from the trash, by its tag item or
// its manifest item (whichever was deleted; the other answers 404 and changes
// nothing). Acknowledged, it is a write of the image's digest to the tag.
func (w *workload) restore(ctx context.Context, r *rand.Rand, client int, n *node) {
	tt, ok := w.pickTrashed(r)
	if !ok {
		return
	}
	id := "tag:" + trashRepo + ":" + tt.tag
	if r.IntN(2) == 0 {
		id = "manifest:" + trashRepo + "@" + tt.im.digest
	}
	op := Op{Client: client, Kind: "restore", Node: n.id, Repo: trashRepo, Tag: tt.tag, Digest: tt.im.digest, Start: w.h.now(), Item: id}
	st, _, body, err := w.do(ctx, n, http.MethodPost, "/api/v1/workspaces/"+trashWS+"/trash/restore",
		fmt.Appendf(nil, `{"id":%q}`, id), "Content-Type", "application/json")
	op.End, op.Status, op.Outcome = w.h.now(), st, outcome(st, err, http.StatusOK)
	if op.Outcome != OK {
		op.Error = oneLine(fmt.Sprintf("%s: %v %s", id, errString(err), body), 200)
	} else {
		// A manifest item brings back the tags that pointed at the manifest
		// when it was deleted: without this one (deleted before), the tag
		// stays as it is and the restore is no write to it.
		var it struct {
			Kind string   `json:"kind"`
			Tags []string `json:"tags"`
		}
		if json.Unmarshal(body, &it) == nil && it.Kind == "manifest" && !slices.Contains(it.Tags, tt.tag) {
			op.Kind = "restore-untagged"
		}
	}
	w.h.add(op)
}

// readTrashTag reads a trashRepo tag.
func (w *workload) readTrashTag(ctx context.Context, r *rand.Rand, client int, n *node) {
	if tt, ok := w.pickTrashed(r); ok {
		w.read(ctx, client, n, trashRepo, tt.tag, "read")
	}
}

// trashTags is every tag a client pushed to trashRepo (acknowledged or not).
func (w *workload) trashTags() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []string
	for c, k := range w.seq {
		for i := 1; i <= k; i++ {
			out = append(out, fmt.Sprintf("d%d-%d", c, i))
		}
	}
	return out
}

// abandon uploads a layer and a config, as a push would, and never puts a
// manifest: blobs that garbage collection must reclaim.
func (w *workload) abandon(ctx context.Context, r *rand.Rand, client int, n *node, repo string) {
	b := make([]byte, 512+r.IntN(4096))
	for i := range b {
		b[i] = byte(r.UintN(256))
	}
	lb := newBlob(b)
	w.mu.Lock()
	w.uploaded[lb.digest] = repo
	w.mu.Unlock()
	op := Op{Client: client, Kind: "abandon", Node: n.id, Repo: repo, Digest: lb.digest, Start: w.h.now()}
	var st int
	var err error
	if r.IntN(2) == 0 {
		st, err = w.chunked(ctx, n, repo, lb)
	} else {
		st, err = w.monolithic(ctx, n, repo, lb)
	}
	op.End, op.Status, op.Outcome = w.h.now(), st, outcome(st, err, http.StatusCreated)
	if op.Outcome != OK {
		op.Error = errString(err)
	}
	w.h.add(op)
}
