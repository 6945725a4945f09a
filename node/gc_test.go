package node

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/berth-registry/berth/meta"
)

// Garbage collection end to end: real nodes, real Raft, real HTTP. The
// mark/sweep model itself is tested in meta/gc_test.go.

// newGCCluster starts an in-process cluster as newTestCluster does, with
// mutate applied to each node's configuration, and the workspaces a and b.
func newGCCluster(t *testing.T, size int, mutate func(cfg *Config)) *testCluster {
	t.Helper()
	c := newTestClusterWith(t, size, mutate)
	waitFor(t, 30*time.Second, "every node sees every other", func() bool {
		for _, n := range c.nodes {
			if len(n.livePeers()) != size-1 {
				return false
			}
		}
		return true
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, ws := range []string{"a", "b"} {
		err := c.nodes[0].Propose(ctx, &meta.PutWorkspace{Name: ws, Project: "default", Visibility: meta.Private, Create: true, Time: time.Now()})
		if err != nil && !errors.Is(err, meta.ErrExists) {
			t.Fatal(err)
		}
	}
	return c
}

// gcSettingsAll sets the GC settings of every node of c.
func (c *testCluster) gcSettingsAll(s gcSettings) {
	for _, n := range c.nodes {
		if n != nil {
			n.gc.setSettings(s)
		}
	}
}

// httpClient has a timeout: a test never hangs on a node.
var httpClient = &http.Client{Timeout: 60 * time.Second}

// call is do without *testing.T, for goroutines: it returns its error.
func call(method, url string, body []byte, hdr ...string) (resp, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		return resp{}, err
	}
	req.SetBasicAuth("admin", testAdminPassword)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	r, err := httpClient.Do(req)
	if err != nil {
		return resp{}, err
	}
	defer r.Body.Close()
	b, err := io.ReadAll(r.Body)
	return resp{r.StatusCode, r.Header, b}, err
}

// gcImage is an image a test pushed, to pull back and compare.
type gcImage struct {
	repo, tag string
	manifest  []byte
	blobs     [][]byte // config first, then the layers
}

func (im *gcImage) digests() []string {
	out := make([]string, len(im.blobs))
	for i, b := range im.blobs {
		out[i] = sha(b)
	}
	return out
}

func newGCImage(repo, tag string, cfg []byte, layers ...[]byte) *gcImage {
	im := &gcImage{repo: repo, tag: tag, blobs: append([][]byte{cfg}, layers...)}
	var ls []string
	for _, l := range layers {
		ls = append(ls, fmt.Sprintf(`{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":%q,"size":%d}`, sha(l), len(l)))
	}
	im.manifest = []byte(fmt.Sprintf(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",`+
		`"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":%q,"size":%d},"layers":[%s]}`,
		sha(cfg), len(cfg), strings.Join(ls, ",")))
	return im
}

// pushBlobs uploads the image's blobs through base (monolithic uploads).
func (im *gcImage) pushBlobs(base string) error {
	for _, b := range im.blobs {
		r, err := call("POST", base+"/v2/"+im.repo+"/blobs/uploads/?digest="+sha(b), b)
		if err != nil {
			return err
		}
		if r.status != http.StatusCreated {
			return fmt.Errorf("push blob %s to %s: %d %s", sha(b), im.repo, r.status, r.body)
		}
	}
	return nil
}

// pushManifest puts the image's manifest through base.
func (im *gcImage) pushManifest(base string) error {
	r, err := call("PUT", base+"/v2/"+im.repo+"/manifests/"+im.tag, im.manifest, "Content-Type", ociManifest)
	if err != nil {
		return err
	}
	if r.status != http.StatusCreated {
		return fmt.Errorf("push manifest %s:%s: %d %s", im.repo, im.tag, r.status, r.body)
	}
	return nil
}

func (im *gcImage) push(base string) error {
	if err := im.pushBlobs(base); err != nil {
		return err
	}
	return im.pushManifest(base)
}

// pull checks that the image pulls byte-identical through base.
func (im *gcImage) pull(base string) error {
	r, err := call("GET", base+"/v2/"+im.repo+"/manifests/"+im.tag, nil, "Accept", ociManifest)
	if err != nil {
		return err
	}
	if r.status != 200 || !bytes.Equal(r.body, im.manifest) {
		return fmt.Errorf("pull %s:%s manifest: %d", im.repo, im.tag, r.status)
	}
	for _, b := range im.blobs {
		r, err := call("GET", base+"/v2/"+im.repo+"/blobs/"+sha(b), nil)
		if err != nil {
			return err
		}
		if r.status != 200 || !bytes.Equal(r.body, b) {
			return fmt.Errorf("pull %s blob %s: %d (%d bytes, want %d)", im.repo, sha(b), r.status, len(r.body), len(b))
		}
	}
	return nil
}

// gcRunReport is a run as GET /api/v1/gc/{id} answers it.
type gcRunReport struct {
	ID              string   `json:"id"`
	State           string   `json:"state"`
	DryRun          bool     `json:"dryRun"`
	MarkSeconds     float64  `json:"markSeconds"`
	PauseSeconds    float64  `json:"pauseSeconds"`
	DurationSeconds float64  `json:"durationSeconds"`
	PendingNodes    []string `json:"pendingNodes"`
	Errors          []string `json:"errors"`
	Candidates      struct {
		Blobs     int   `json:"blobs"`
		Bytes     int64 `json:"bytes"`
		Manifests int   `json:"manifests"`
	} `json:"candidates"`
	Reclaimed struct {
		Blobs      int   `json:"blobs"`
		Bytes      int64 `json:"bytes"`
		Manifests  int   `json:"manifests"`
		TrashItems int   `json:"trashItems"`
	} `json:"reclaimed"`
	Nodes map[string]struct {
		Files       int   `json:"files"`
		Bytes       int64 `json:"bytes"`
		Kept        int   `json:"kept"`
		Orphans     int   `json:"orphans"`
		OrphanBytes int64 `json:"orphanBytes"`
	} `json:"nodes"`
}

// startGC asks base for a run and returns its id.
func startGC(t *testing.T, base string, body map[string]any) string {
	t.Helper()
	b, _ := json.Marshal(body)
	r := do(t, "POST", base+"/api/v1/gc", b, "Content-Type", "application/json")
	if r.status != http.StatusAccepted {
		t.Fatalf("start gc: %d %s", r.status, r.body)
	}
	var run gcRunReport
	if err := json.Unmarshal(r.body, &run); err != nil || run.ID == "" {
		t.Fatalf("start gc: %s %v", r.body, err)
	}
	return run.ID
}

// waitGC waits until run id ended (and, with files, until every node deleted
// its files) as base reports it.
func waitGC(t *testing.T, base, id string, files bool) *gcRunReport {
	t.Helper()
	var run gcRunReport
	waitFor(t, 60*time.Second, "gc run "+id+" to end", func() bool {
		r, err := call("GET", base+"/api/v1/gc/"+id, nil)
		if err != nil || r.status != 200 {
			return false
		}
		run = gcRunReport{}
		if err := json.Unmarshal(r.body, &run); err != nil {
			t.Fatal(err)
		}
		ended := run.State == meta.GCDone || run.State == meta.GCAborted || run.State == meta.GCFailed
		return ended && (!files || len(run.PendingNodes) == 0)
	})
	return &run
}

// onDisk reports which nodes of c hold a file of d.
func (c *testCluster) onDisk(d string) []string {
	var out []string
	for _, n := range c.nodes {
		if n == nil {
			continue
		}
		if _, err := n.blobs.Stat(digest.Digest(d)); err == nil {
			out = append(out, n.cfg.NodeID)
		}
	}
	return out
}

// fsckClean runs fsck through base and fails the test unless every node is clean.
func fsckClean(t *testing.T, base string) {
	t.Helper()
	r := do(t, "POST", base+"/api/v1/fsck", []byte(`{}`), "Content-Type", "application/json")
	var rep struct {
		Clean bool
		Nodes []struct {
			Node                              string
			Checked                           int
			Missing, Corrupt, Orphans, Errors []string
		}
	}
	if r.status != 200 || json.Unmarshal(r.body, &rep) != nil {
		t.Fatalf("fsck: %d %s", r.status, r.body)
	}
	if !rep.Clean {
		t.Errorf("fsck is not clean: %s", r.body)
	}
}

func TestGCDeleteRestorePull(t *testing.T) {
	n, base := startNode(t, t.TempDir())
	n.gc.setSettings(gcSettings{}) // grace and retention 0
	im := newGCImage("a/app", "1.0", []byte(`{"os":"linux"}`), bytes.Repeat([]byte("restore me"), 3000))
	if err := im.push(base); err != nil {
		t.Fatal(err)
	}
	// The tag: deleted (404 everywhere, in the trash with who and when), restored.
	if r := do(t, "DELETE", base+"/v2/a/app/manifests/1.0", nil); r.status != http.StatusAccepted {
		t.Fatalf("delete tag: %d %s", r.status, r.body)
	}
	if r := do(t, "GET", base+"/v2/a/app/manifests/1.0", nil); r.status != 404 {
		t.Errorf("deleted tag: got %d, want 404", r.status)
	}
	if r := do(t, "GET", base+"/v2/a/app/tags/list", nil); !strings.Contains(string(r.body), `"tags":[]`) {
		t.Errorf("tags/list after delete: %s", r.body)
	}
	var trash struct {
		Items []meta.TrashItem `json:"items"`
	}
	r := do(t, "GET", base+"/api/v1/workspaces/a/trash", nil)
	if err := json.Unmarshal(r.body, &trash); err != nil || len(trash.Items) != 1 || trash.Items[0].DeletedBy != "admin" {
		t.Fatalf("trash: %d %s", r.status, r.body)
	}
	restore := func(id string) {
		t.Helper()
		body, _ := json.Marshal(map[string]string{"id": id})
		if r := do(t, "POST", base+"/api/v1/workspaces/a/trash/restore", body, "Content-Type", "application/json"); r.status != 200 {
			t.Fatalf("restore %s: %d %s", id, r.status, r.body)
		}
	}
	restore(trash.Items[0].ID)
	if err := im.pull(base); err != nil {
		t.Fatalf("after restoring the tag: %v", err)
	}

	// The manifest by digest, then the whole repository (management API).
	if r := do(t, "DELETE", base+"/v2/a/app/manifests/"+sha(im.manifest), nil); r.status != http.StatusAccepted {
		t.Fatalf("delete manifest: %d %s", r.status, r.body)
	}
	if r := do(t, "GET", base+"/v2/a/app/manifests/"+sha(im.manifest), nil); r.status != 404 {
		t.Errorf("deleted manifest by digest: got %d, want 404", r.status)
	}
	restore(meta.ManifestItemID("a/app", meta.Digest(sha(im.manifest))))
	if r := do(t, "DELETE", base+"/api/v1/repositories/a/app", nil); r.status != 200 {
		t.Fatalf("delete repository: %d %s", r.status, r.body)
	}
	if r := do(t, "GET", base+"/v2/_catalog", nil); strings.Contains(string(r.body), "a/app") {
		t.Errorf("catalog lists a deleted repository: %s", r.body)
	}
	if r := do(t, "GET", base+"/v2/a/app/blobs/"+sha(im.blobs[1]), nil); r.status != 404 {
		t.Errorf("blob of a deleted repository: got %d, want 404", r.status)
	}
	// A run within the retention keeps the trash and the bytes.
	n.gc.setSettings(gcSettings{retention: time.Hour})
	id := startGC(t, base, nil)
	if run := waitGC(t, base, id, true); run.State != meta.GCDone || run.Reclaimed.Blobs != 0 {
		t.Fatalf("run within retention: %+v", run)
	}
	restore(meta.RepositoryItemID("a/app"))
	if err := im.pull(base); err != nil {
		t.Fatalf("after restoring the repository: %v", err)
	}
}

func TestGCDryRunChangesNothing(t *testing.T) {
	n, base := startNode(t, t.TempDir())
	n.gc.setSettings(gcSettings{})
	im := newGCImage("a/app", "1.0", []byte(`{"dry":1}`), bytes.Repeat([]byte("dry"), 5000))
	if err := im.push(base); err != nil {
		t.Fatal(err)
	}
	if r := do(t, "DELETE", base+"/api/v1/repositories/a/app", nil); r.status != 200 {
		t.Fatalf("delete: %d", r.status)
	}
	before := metadataWithoutGC(t, n)
	id := startGC(t, base, map[string]any{"dryRun": true})
	run := waitGC(t, base, id, false)
	if run.State != meta.GCDone || !run.DryRun || run.Candidates.Blobs != 2 || run.Reclaimed.Blobs != 0 {
		t.Fatalf("dry run: %+v", run)
	}
	if after := metadataWithoutGC(t, n); !equalMaps(before, after) {
		t.Errorf("a dry run changed the metadata")
	}
	for _, d := range im.digests() {
		if _, err := n.blobs.Stat(digest.Digest(d)); err != nil {
			t.Errorf("a dry run deleted %s: %v", d, err)
		}
	}
}

// metadataWithoutGC is every metadata key and value but the GC runs' own.
func metadataWithoutGC(t *testing.T, n *Node) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := n.fsm.Reader().Scan([]byte("a"), []byte{0xff}, func(k, v []byte) error {
		if !bytes.HasPrefix(k, []byte("gc/")) && !bytes.HasPrefix(k, []byte("a/")) && !bytes.HasPrefix(k, []byte("ac/")) {
			out[string(k)] = string(v)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func equalMaps(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func TestGCReclaimsOnEveryNode(t *testing.T) {
	if testing.Short() {
		t.Skip("cluster test")
	}
	c := newGCCluster(t, 3, nil)
	c.gcSettingsAll(gcSettings{})
	base := bytes.Repeat([]byte("shared base layer "), 4000)
	keep := newGCImage("a/keep", "1", []byte(`{"img":"keep"}`), base, bytes.Repeat([]byte("keep"), 3000))
	gone := newGCImage("a/gone", "1", []byte(`{"img":"gone"}`), base, bytes.Repeat([]byte("gone"), 7000))
	for i, im := range []*gcImage{keep, gone} {
		if err := im.push(c.urls[i]); err != nil {
			t.Fatal(err)
		}
	}
	all := append(keep.digests(), gone.digests()...)
	waitFor(t, 30*time.Second, "every blob on every node", func() bool {
		for _, d := range all {
			if len(c.onDisk(d)) != 3 {
				return false
			}
		}
		return true
	})
	if r := do(t, "DELETE", c.urls[2]+"/v2/a/gone/manifests/"+sha(gone.manifest), nil); r.status != http.StatusAccepted {
		t.Fatalf("delete: %d %s", r.status, r.body)
	}
	id := startGC(t, c.urls[1], nil)
	run := waitGC(t, c.urls[0], id, true)
	if run.State != meta.GCDone {
		t.Fatalf("run: %+v", run)
	}
	uniq := [][]byte{gone.blobs[0], gone.blobs[2]} // config and its own layer; the base stays
	var want int64
	for _, b := range uniq {
		want += int64(len(b))
		if on := c.onDisk(sha(b)); len(on) != 0 {
			t.Errorf("swept blob %s still on %v", sha(b), on)
		}
	}
	if run.Reclaimed.Blobs != 2 || run.Reclaimed.Bytes != want || run.Reclaimed.Manifests != 1 {
		t.Errorf("reclaimed: %+v, want 2 blobs, %d bytes, 1 manifest", run.Reclaimed, want)
	}
	if len(run.Nodes) != 3 {
		t.Fatalf("node reports: %+v", run.Nodes)
	}
	for id, rep := range run.Nodes {
		if rep.Files != 2 || rep.Bytes != want {
			t.Errorf("node %s: deleted %d files, %d bytes; want 2, %d", id, rep.Files, rep.Bytes, want)
		}
	}
	for _, d := range keep.digests() {
		if on := c.onDisk(d); len(on) != 3 {
			t.Errorf("kept blob %s only on %v", d, on)
		}
	}
	for _, u := range c.urls {
		if err := keep.pull(u); err != nil {
			t.Error(err)
		}
	}
	fsckClean(t, c.urls[0])
	// The run is in the metrics of the node that coordinated it.
	leader := c.leader()
	r := do(t, "GET", c.urls[leader]+"/metrics", nil)
	for _, m := range []string{`berth_gc_runs_total{outcome="done"} 1`, "berth_gc_pause_seconds_count 1", "berth_gc_duration_seconds_count 1"} {
		if !strings.Contains(string(r.body), m) {
			t.Errorf("metrics of the leader lack %q", m)
		}
	}
	if !strings.Contains(string(r.body), fmt.Sprintf("berth_gc_reclaimed_bytes_total %d", want)) {
		t.Errorf("reclaimed bytes metric: want %d", want)
	}

	// fsck finds a damaged copy and an orphan file; --repair fixes both.
	victim := c.nodes[2]
	bad := sha(keep.blobs[2])
	p, err := victim.blobs.Path(digest.Digest(bad))
	if err != nil {
		t.Fatal(err)
	}
	_ = os.Chmod(p, 0o644)
	if err := os.WriteFile(p, bytes.Repeat([]byte("X"), len(keep.blobs[2])), 0o644); err != nil {
		t.Fatal(err)
	}
	orphan := []byte("a file no metadata names")
	if _, err := victim.blobs.Put(context.Background(), bytes.NewReader(orphan), digest.Digest(sha(orphan))); err != nil {
		t.Fatal(err)
	}
	rep := fsck(t, c.urls[0], false)
	n3 := rep.node(victim.cfg.NodeID)
	if rep.Clean || len(n3.Corrupt) != 1 || n3.Corrupt[0] != bad || len(n3.Orphans) != 1 || n3.Orphans[0] != sha(orphan) {
		t.Fatalf("fsck of a damaged node: %+v", n3)
	}
	rep = fsck(t, c.urls[1], true)
	if n3 := rep.node(victim.cfg.NodeID); !rep.Clean || n3.Repaired != 1 || n3.OrphansRemoved != 1 {
		t.Fatalf("fsck --repair: %+v", rep)
	}
	fsckClean(t, c.urls[2])
	if err := keep.pull(c.urls[2]); err != nil {
		t.Errorf("after the repair: %v", err)
	}
}

type fsckNodeReport struct {
	Node                              string
	Checked, Repaired, OrphansRemoved int
	Missing, Corrupt, Orphans, Errors []string
}

type fsckReport struct {
	Clean bool
	Nodes []fsckNodeReport
}

func (r *fsckReport) node(id string) fsckNodeReport {
	for _, n := range r.Nodes {
		if n.Node == id {
			return n
		}
	}
	return fsckNodeReport{}
}

// fsck runs fsck through base.
func fsck(t *testing.T, base string, repair bool) *fsckReport {
	t.Helper()
	body, _ := json.Marshal(map[string]bool{"repair": repair})
	r := do(t, "POST", base+"/api/v1/fsck", body, "Content-Type", "application/json")
	var rep fsckReport
	if r.status != 200 || json.Unmarshal(r.body, &rep) != nil {
		t.Fatalf("fsck: %d %s", r.status, r.body)
	}
	return &rep
}

func TestGCSchedule(t *testing.T) {
	n, base := startNode(t, t.TempDir())
	n.gc.setSettings(gcSettings{schedule: 500 * time.Millisecond})
	var runs struct {
		Items []gcRunReport `json:"items"`
	}
	list := func() int {
		runs.Items = nil
		r := do(t, "GET", base+"/api/v1/gc", nil)
		if err := json.Unmarshal(r.body, &runs); err != nil {
			t.Fatal(err)
		}
		return len(runs.Items)
	}
	waitFor(t, 20*time.Second, "two scheduled runs", func() bool { return list() >= 2 })
	for _, run := range runs.Items {
		if run.State != meta.GCDone && run.State != meta.GCMarking && run.State != meta.GCRequested {
			t.Errorf("scheduled run %s: %s %v", run.ID, run.State, run.Errors)
		}
	}
	r := do(t, "GET", base+"/api/v1/gc/"+runs.Items[0].ID, nil)
	if !strings.Contains(string(r.body), `"startedBy":"schedule"`) {
		t.Errorf("scheduled run: %s", r.body)
	}
	// Only cloud admins start runs.
	if r := doNoAuth(t, "POST", base+"/api/v1/gc", nil); r.status != http.StatusUnauthorized {
		t.Errorf("anonymous gc: %d, want 401", r.status)
	}
}

// TestGCWhilePushing runs a GC while clients push images that share base
// layers through every node, with the sweep's pause held long enough for
// pushes to arrive during it, and one client that uploads its blobs before
// the run and its manifest after the sweep. Every push succeeds, every image
// pulls byte-identical from every node afterwards, the garbage is gone, fsck
// is clean.
func TestGCWhilePushing(t *testing.T) {
	if testing.Short() {
		t.Skip("cluster test")
	}
	// Stamps come from the leader's clock as it appends (meta.ApplyAt), so
	// "old" is made by waiting out a short grace period, not by a fake clock.
	const grace = 4 * time.Second
	c := newGCCluster(t, 3, nil)
	c.gcSettingsAll(gcSettings{grace: grace})
	baseA := bytes.Repeat([]byte("base layer A "), 20000)
	baseB := bytes.Repeat([]byte("base layer B "), 15000)

	// Garbage older than the grace period: images on the same bases, deleted.
	var garbage []*gcImage
	for i := range 3 {
		im := newGCImage(fmt.Sprintf("a/old%d", i), "1", []byte(fmt.Sprintf(`{"old":%d}`, i)), baseA,
			bytes.Repeat([]byte(fmt.Sprintf("old unique %d ", i)), 5000))
		if err := im.push(c.urls[i%3]); err != nil {
			t.Fatal(err)
		}
		if r := do(t, "DELETE", c.urls[0]+"/api/v1/repositories/"+im.repo, nil); r.status != 200 {
			t.Fatalf("delete %s: %d", im.repo, r.status)
		}
		garbage = append(garbage, im)
	}
	time.Sleep(grace + 500*time.Millisecond)

	// The late client uploads its blobs now, before the run, and its
	// manifest after the sweep: the grace period protects them.
	late := newGCImage("b/late", "1", []byte(`{"late":true}`), baseA, bytes.Repeat([]byte("late layer "), 6000))
	if err := late.pushBlobs(c.urls[1]); err != nil {
		t.Fatal(err)
	}

	// Hold the pause for a while, so that pushes land in it.
	var pauseHeld atomic.Bool
	for _, n := range c.nodes {
		n.gc.setHooks(&gcHooks{paused: func(ctx context.Context, _ string) {
			pauseHeld.Store(true)
			select {
			case <-time.After(300 * time.Millisecond):
			case <-ctx.Done():
			}
		}})
	}

	type pushed struct {
		im       *gcImage
		took     time.Duration
		duringGC bool
	}
	var (
		mu     sync.Mutex
		images []pushed
		errs   []error
		stop   = make(chan struct{})
		gcOn   atomic.Bool
		wg     sync.WaitGroup
	)
	for w := range 4 {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 7))
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				base := baseA
				if rng.IntN(2) == 1 {
					base = baseB
				}
				im := newGCImage(fmt.Sprintf("a/w%d", w), fmt.Sprintf("v%d", i), []byte(fmt.Sprintf(`{"w":%d,"i":%d}`, w, i)),
					base, bytes.Repeat([]byte(fmt.Sprintf("w%d i%d ", w, i)), 2000+rng.IntN(2000)))
				during := gcOn.Load()
				start := time.Now()
				err := im.push(c.urls[rng.IntN(3)])
				took := time.Since(start)
				mu.Lock()
				if err != nil {
					errs = append(errs, err)
				} else {
					images = append(images, pushed{im: im, took: took, duringGC: during || gcOn.Load()})
				}
				mu.Unlock()
				time.Sleep(time.Duration(rng.IntN(20)) * time.Millisecond)
			}
		}(w)
	}
	time.Sleep(500 * time.Millisecond) // pushes without a GC
	gcOn.Store(true)
	id := startGC(t, c.urls[2], nil)
	run := waitGC(t, c.urls[0], id, false)
	gcOn.Store(false)
	if err := late.pushManifest(c.urls[2]); err != nil {
		t.Errorf("the late client's manifest after the sweep: %v", err)
	}
	time.Sleep(300 * time.Millisecond)
	close(stop)
	wg.Wait()
	run = waitGC(t, c.urls[0], id, true)
	if run.State != meta.GCDone {
		t.Fatalf("run: %+v", run)
	}
	if !pauseHeld.Load() {
		t.Fatal("the run never paused")
	}
	for _, err := range errs {
		t.Errorf("a push failed: %v", err)
	}

	// Latency of pushes made during the GC against pushes made without one.
	var with, without []time.Duration
	for _, p := range images {
		if p.duringGC {
			with = append(with, p.took)
		} else {
			without = append(without, p.took)
		}
	}
	t.Logf("gc run: mark %.1fms, pause %.1fms (held 300ms by the test), total %.1fms; reclaimed %d blobs, %d bytes",
		run.MarkSeconds*1000, run.PauseSeconds*1000, run.DurationSeconds*1000, run.Reclaimed.Blobs, run.Reclaimed.Bytes)
	t.Logf("pushes: %d without a GC (p50 %s, max %s), %d during the GC (p50 %s, max %s)",
		len(without), pct(without, 50), pct(without, 100), len(with), pct(with, 50), pct(with, 100))
	if len(with) == 0 {
		t.Error("no push happened during the GC")
	}

	// The garbage is gone from every node; everything acknowledged pulls.
	for _, im := range garbage {
		if on := c.onDisk(sha(im.blobs[2])); len(on) != 0 {
			t.Errorf("garbage layer of %s still on %v", im.repo, on)
		}
	}
	if run.Reclaimed.Blobs != 2*len(garbage) {
		t.Errorf("reclaimed %d blobs, want %d (config and unique layer of each old image)", run.Reclaimed.Blobs, 2*len(garbage))
	}
	all := append([]*gcImage{late}, nil...)
	for _, p := range images {
		all = append(all, p.im)
	}
	for _, im := range all {
		for _, u := range c.urls {
			if err := im.pull(u); err != nil {
				t.Errorf("after the GC: %v", err)
			}
		}
	}
	fsckClean(t, c.urls[1])
}

// pct is the p-th percentile of ds ("-" for none).
func pct(ds []time.Duration, p int) string {
	if len(ds) == 0 {
		return "-"
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	i := (len(s) - 1) * p / 100
	return s[i].Round(100 * time.Microsecond).String()
}

// TestGCKeepsBlobsCheckedDuringTheRun: with no grace period, a blob uploaded
// before the run but checked (HEAD) while it marks is kept, so the manifest
// pushed after the sweep succeeds; an unchecked one is collected.
func TestGCKeepsBlobsCheckedDuringTheRun(t *testing.T) {
	if testing.Short() {
		t.Skip("cluster test")
	}
	c := newGCCluster(t, 3, nil)
	c.gcSettingsAll(gcSettings{})
	im := newGCImage("a/checked", "1", []byte(`{"checked":1}`), bytes.Repeat([]byte("checked layer"), 4000))
	unchecked := []byte("nobody checks this one")
	if err := im.pushBlobs(c.urls[0]); err != nil {
		t.Fatal(err)
	}
	pushBlob(t, c.urls[0], "a/checked", unchecked)
	follower := (c.leader() + 1) % 3
	var checked atomic.Bool
	for _, n := range c.nodes {
		n.gc.setHooks(&gcHooks{marked: func(context.Context, string) {
			// A client checks its blobs on a follower, as docker push does.
			for _, d := range im.digests() {
				if r, err := call("HEAD", c.urls[follower]+"/v2/a/checked/blobs/"+d, nil); err != nil || r.status != 200 {
					t.Errorf("HEAD %s: %v %d", d, err, r.status)
				}
			}
			checked.Store(true)
		}})
	}
	id := startGC(t, c.urls[0], nil)
	run := waitGC(t, c.urls[0], id, true)
	if run.State != meta.GCDone || !checked.Load() {
		t.Fatalf("run: %+v", run)
	}
	if err := im.pushManifest(c.urls[2]); err != nil {
		t.Fatalf("manifest after the sweep: %v", err)
	}
	if err := im.pull(c.urls[1]); err != nil {
		t.Fatal(err)
	}
	if r := do(t, "HEAD", c.urls[0]+"/v2/a/checked/blobs/"+sha(unchecked), nil); r.status != 404 {
		t.Errorf("unchecked blob: got %d, want 404", r.status)
	}
	if on := c.onDisk(sha(unchecked)); len(on) != 0 {
		t.Errorf("unchecked blob still on %v", on)
	}
}

// TestGCLeaderLost shuts the leader down while it marks, and while writes are
// paused for the sweep: the run ends aborted, nothing was swept, writes go on,
// and the next run works.
func TestGCLeaderLost(t *testing.T) {
	if testing.Short() {
		t.Skip("cluster test")
	}
	for _, stage := range []string{"marked", "paused"} {
		t.Run(stage, func(t *testing.T) {
			c := newGCCluster(t, 3, nil)
			c.gcSettingsAll(gcSettings{})
			keep := newGCImage("a/keep", "1", []byte(`{"keep":1}`), bytes.Repeat([]byte("keep"), 3000))
			gone := newGCImage("a/gone", "1", []byte(`{"gone":1}`), bytes.Repeat([]byte("gone"), 3000))
			for _, im := range []*gcImage{keep, gone} {
				if err := im.push(c.urls[0]); err != nil {
					t.Fatal(err)
				}
			}
			if r := do(t, "DELETE", c.urls[0]+"/api/v1/repositories/a/gone", nil); r.status != 200 {
				t.Fatal(r.status)
			}
			reached := make(chan string, 1)
			var once sync.Once
			block := func(ctx context.Context, runID string) {
				first := false
				once.Do(func() { first = true })
				if !first {
					return
				}
				reached <- runID
				<-ctx.Done() // until the node shuts down
			}
			for _, n := range c.nodes {
				h := &gcHooks{}
				if stage == "marked" {
					h.marked = block
				} else {
					h.paused = block
				}
				n.gc.setHooks(h)
			}
			old := c.leader()
			id := startGC(t, c.urls[old], nil)
			select {
			case <-reached:
			case <-time.After(30 * time.Second):
				t.Fatal("the run did not reach the stage")
			}
			if stage == "paused" {
				if p, _ := meta.WritesPaused(c.nodes[(old+1)%3].fsm.Reader()); !p {
					t.Error("writes are not paused on a follower")
				}
			}
			t0 := time.Now()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			if err := c.nodes[old].Shutdown(ctx); err != nil {
				t.Logf("shutdown: %v", err)
			}
			cancel()
			t.Logf("leader shut down in %s", time.Since(t0).Round(time.Millisecond))
			c.nodes[old] = nil
			survivor := c.urls[(old+1)%3]
			run := waitGC(t, survivor, id, false)
			if run.State != meta.GCAborted {
				t.Fatalf("run after the leader left: %s, want aborted (%v)", run.State, run.Errors)
			}
			t.Logf("run aborted %s after the shutdown began", time.Since(t0).Round(time.Millisecond))
			for i, n := range c.nodes {
				if n == nil {
					continue
				}
				if _, err := meta.GetBlob(n.fsm.Reader(), meta.Digest(sha(gone.blobs[1]))); err != nil {
					t.Errorf("node %d: an aborted run swept: %v", i, err)
				}
			}
			// Writes go on, and the next run works.
			after := newGCImage("b/after", "1", []byte(`{"after":1}`), []byte("after the abort"))
			if err := after.push(survivor); err != nil {
				t.Fatalf("push after the abort: %v", err)
			}
			t.Logf("pushed %s after the shutdown began", time.Since(t0).Round(time.Millisecond))
			id = startGC(t, survivor, nil)
			run = waitGC(t, survivor, id, true)
			if run.State != meta.GCDone || run.Reclaimed.Blobs != 2 {
				t.Fatalf("next run: %+v", run)
			}
			if on := c.onDisk(sha(gone.blobs[1])); len(on) != 0 {
				t.Errorf("swept blob still on %v", on)
			}
			for _, im := range []*gcImage{keep, after} {
				if err := im.pull(survivor); err != nil {
					t.Error(err)
				}
			}
		})
	}
}

// TestGCScale loads 100,000 blobs and 10,000 manifests into one node's
// metadata (through commands, as pushes would), deletes a tenth of the
// images, and measures a run: mark and sweep duration, the write pause, and
// the latency of pushes during the run against pushes without one. Then a
// second run after a hundred more deletes.
func TestGCScale(t *testing.T) {
	if testing.Short() {
		t.Skip("loads 110,000 commands")
	}
	n, base := startNode(t, t.TempDir())
	n.gc.setSettings(gcSettings{})
	// A tenth of that under -race (gcScaleDivisor): the figures to report
	// come from a run without it.
	const manifests, blobsPer, deleted = 10000 / gcScaleDivisor, 10, 1000 / gcScaleDivisor
	loadStart := time.Now()
	ctx := context.Background()
	propose := func(c meta.Command) error { return n.Propose(ctx, c) }
	work := make(chan int)
	var wg sync.WaitGroup
	var failed atomic.Value
	now := time.Now()
	for range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				repo := fmt.Sprintf("a/img%03d", i%500)
				var blobs []meta.Digest
				for j := range blobsPer {
					d := meta.DigestOf("sha256", []byte(fmt.Sprintf("blob %d %d", i, j)))
					if err := propose(&meta.PutBlob{Repo: repo, Digest: d, Size: 1 << 20, Nodes: []string{n.cfg.NodeID}, Time: now}); err != nil {
						failed.Store(err)
						return
					}
					blobs = append(blobs, d)
				}
				content := []byte(fmt.Sprintf(`{"image":%d}`, i))
				err := propose(&meta.PutManifest{Repo: repo, Digest: meta.DigestOf("sha256", content), Content: content,
					Tags: []string{fmt.Sprintf("t%d", i)}, Time: now,
					Info: meta.ManifestInfo{MediaType: meta.MediaTypeOCIManifest, Size: int64(len(content)), Blobs: blobs}})
				if err != nil {
					failed.Store(err)
					return
				}
			}
		}()
	}
	for i := range manifests {
		work <- i
	}
	close(work)
	wg.Wait()
	if err, _ := failed.Load().(error); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < deleted; i++ {
		content := []byte(fmt.Sprintf(`{"image":%d}`, i*(manifests/deleted)))
		repo := fmt.Sprintf("a/img%03d", (i*(manifests/deleted))%500)
		if err := propose(&meta.DeleteManifest{Repo: repo, Digest: meta.DigestOf("sha256", content), By: "test", Time: now}); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("loaded %d manifests and %d blobs in %s", manifests, manifests*blobsPer, time.Since(loadStart).Round(time.Millisecond))

	pushes := func(stop <-chan struct{}, max int, out *[]time.Duration) {
		for i := 0; i < max; i++ {
			select {
			case <-stop:
				return
			default:
			}
			im := newGCImage("b/live", fmt.Sprintf("p%d-%d", len(*out), i), []byte(fmt.Sprintf(`{"p":%d,"t":%d}`, i, time.Now().UnixNano())),
				[]byte(fmt.Sprintf("layer %d %d", i, time.Now().UnixNano())))
			start := time.Now()
			if err := im.push(base); err != nil {
				t.Error(err)
				return
			}
			*out = append(*out, time.Since(start))
		}
	}
	var without, with []time.Duration
	pushes(nil, 30, &without)

	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		pushes(stop, 1<<30, &with)
	}()
	start := time.Now()
	id := startGC(t, base, nil)
	run := waitGC(t, base, id, false)
	wall := time.Since(start)
	// The node's report comes after the final figures of the run (GCStats).
	run = waitGC(t, base, id, true)
	close(stop)
	<-done
	if run.State != meta.GCDone {
		t.Fatalf("run: %+v", run)
	}
	if run.Reclaimed.Blobs != deleted*blobsPer || run.Reclaimed.Manifests != deleted {
		t.Errorf("reclaimed %d blobs and %d manifests, want %d and %d", run.Reclaimed.Blobs, run.Reclaimed.Manifests, deleted*blobsPer, deleted)
	}
	t.Logf("GC of %d blobs / %d manifests: mark %.1fms, pause %.2fms, mark+sweep %.1fms (request to done %s); reclaimed %d blobs, %d manifests",
		manifests*blobsPer, manifests, run.MarkSeconds*1000, run.PauseSeconds*1000, run.DurationSeconds*1000,
		wall.Round(time.Millisecond), run.Reclaimed.Blobs, run.Reclaimed.Manifests)
	t.Logf("push latency: without a GC p50 %s p99 %s max %s (%d); during the GC p50 %s max %s (%d)",
		pct(without, 50), pct(without, 99), pct(without, 100), len(without), pct(with, 50), pct(with, 100), len(with))
	if run.DurationSeconds > 30 {
		t.Errorf("mark and sweep took %.1fs, target 30s", run.DurationSeconds)
	}
	if run.PauseSeconds > 0.1 {
		t.Logf("the write pause %.1fms is over the 100ms target (race detector or a loaded machine?)", run.PauseSeconds*1000)
	}

	// A more usual run: a hundred images deleted since the last one.
	for i := 0; i < deleted/10; i++ {
		j := i*(manifests/deleted) + 1
		content := []byte(fmt.Sprintf(`{"image":%d}`, j))
		if err := propose(&meta.DeleteManifest{Repo: fmt.Sprintf("a/img%03d", j%500), Digest: meta.DigestOf("sha256", content), Time: now}); err != nil {
			t.Fatal(err)
		}
	}
	run = waitGC(t, base, startGC(t, base, nil), true)
	t.Logf("second run, %d images deleted: mark %.1fms, pause %.2fms, mark+sweep %.1fms; reclaimed %d blobs",
		deleted/10, run.MarkSeconds*1000, run.PauseSeconds*1000, run.DurationSeconds*1000, run.Reclaimed.Blobs)
}
