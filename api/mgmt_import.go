package api

// POST /api/v1/workspaces/:workspace/import: an image archive (docker save, or
// an OCI image layout) as the request body becomes images in the workspace.
//
// The body is the archive itself (Content-Type application/x-tar,
// application/gzip or application/octet-stream: the CLI and the API), or a
// multipart/form-data form whose "file" part is the archive (the console; its
// optional "repository" and "tag" fields, sent before the file, work like the
// query parameters). gzip is recognised by its magic bytes, whatever the
// Content-Type says.
//
// Where images go: each name the archive gives an image ("alpine:3.19",
// "registry.example.com/team/app:v1") becomes <workspace>/<path without the
// registry host>:<tag> ("docker.io/library/x" is "x", as docker names it).
// ?repository=PATH puts every image in <workspace>/PATH with its own tags;
// ?tag=TAG gives the one image of the archive that tag. An image with no tag
// gets "latest". A name on this registry's own host must be in the target
// workspace: an import can only create tags in the workspace it was sent to,
// which the caller must be allowed to push to. An existing tag is moved (the
// manifest it pointed at stays pullable by digest until GC).
//
// Progress: with "Accept: application/x-ndjson" the answer is 200 at once and a
// stream of JSON lines: {"phase":"upload","bytes":N,"total":T} while the body is
// read (T, the Content-Length, when known), {"phase":"import","bytes":N,"total":T}
// while blobs are committed and recorded, then one final line,
// {"phase":"done","result":{...}} or {"phase":"error","status":S,"error":{code,
// message}}. Refusals that need no body (authentication, rights, a browser
// upload over the size limit, a bad parameter) keep their own status. Without
// that Accept value the answer is the result with 201, or an error body.
//
// What a failure leaves behind: until the whole archive has been read and
// checked, the blobs sit in upload sessions of this node's blob store and
// nothing is recorded in the metadata; a refused archive, a client that
// disconnects half way, or any failure up to there cancels every session, so
// nothing at all is left. A session that outlives a crash expires with the
// upload TTL. Only after the checks are blobs committed and recorded, then the
// manifests stored; that last phase is run to its end even if the client goes
// away. If it fails (no leader), blobs already recorded have no manifest and
// are collected by GC after its grace period.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"mime"
	"mime/multipart"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/julienschmidt/httprouter"
	"github.com/opencontainers/go-digest"

	"github.com/berth-registry/berth/meta"
)

// importResult is the answer of an import: one item per tag created.
type importResult struct {
	Images []importedImage `json:"images"`
}

type importedImage struct {
	Repository string          `json:"repository"`
	Tag        string          `json:"tag"`
	Digest     meta.Digest     `json:"digest"`
	MediaType  string          `json:"mediaType"`
	Size       int64           `json:"size"` // bytes of the config and layers (of every image of an index)
	Config     meta.Digest     `json:"config,omitempty"`
	Layers     []importedBlob  `json:"layers,omitempty"`
	Manifests  []importedChild `json:"manifests,omitempty"` // an index's images
}

type importedBlob struct {
	Digest    meta.Digest `json:"digest"`
	Size      int64       `json:"size"`
	MediaType string      `json:"mediaType"`
}

type importedChild struct {
	Digest    meta.Digest    `json:"digest"`
	MediaType string         `json:"mediaType"`
	Platform  *meta.Platform `json:"platform,omitempty"`
}

// rawArchiveTypes are the Content-Types of a raw archive body.
var rawArchiveTypes = map[string]bool{
	"": true, "application/x-tar": true, "application/tar": true, "application/gzip": true,
	"application/x-gzip": true, "application/octet-stream": true, "application/x-compressed-tar": true,
}

// importArchive serves POST /api/v1/workspaces/:workspace/import.
func (s *Server) importArchive(w http.ResponseWriter, r *http.Request, p *Principal, ps httprouter.Params) error {
	ws, err := s.visibleWorkspace(p, ps.ByName("workspace"))
	if err != nil {
		return err
	}
	if !p.Can(ws, ActionPush) {
		return mgmtDenied("you may not push images to workspace %s", ws.Name)
	}
	lim := s.cfg.Import.withDefaults()
	mt, params, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil && r.Header.Get("Content-Type") != "" {
		return newError(CodeInvalid, http.StatusUnsupportedMediaType, "Content-Type %q cannot be parsed", r.Header.Get("Content-Type"))
	}
	browser := mt == "multipart/form-data"
	if !browser && !rawArchiveTypes[mt] {
		return newError(CodeInvalid, http.StatusUnsupportedMediaType,
			"Content-Type %s: send the archive as application/x-tar or application/gzip, or as the \"file\" part of multipart/form-data", mt)
	}
	if browser && params["boundary"] == "" {
		return mgmtInvalid("multipart/form-data without a boundary")
	}
	if browser && r.ContentLength > lim.MaxBrowserBytes {
		return browserTooLarge(lim.MaxBrowserBytes)
	}
	q := r.URL.Query()
	opts := importOptions{ws: ws.Name, repo: q.Get("repository"), tag: q.Get("tag"), hosts: s.ownHosts(r)}
	if err := opts.check(); err != nil {
		return err
	}
	prog := newImportProgress(w, r)
	body := &importBody{r: r.Body, progress: prog.upload}
	if browser {
		body.limit = lim.MaxBrowserBytes
	}
	start := time.Now()
	prog.start()
	res, err := s.runImport(r.Context(), body, browser, params["boundary"], opts, lim, prog)
	if err == nil {
		s.log.LogAttrs(r.Context(), slog.LevelInfo, "import",
			slog.String("id", r.Header.Get("X-Request-Id")), slog.String("workspace", ws.Name),
			slog.Int("images", len(res.Images)), slog.Int64("bytes", body.n),
			slog.Duration("duration", time.Since(start)))
	}
	return prog.finish(w, r, res, err, s)
}

// browserTooLarge is the refusal of a console upload over the limit.
func browserTooLarge(limit int64) error {
	return archiveTooLarge("the upload is larger than %s, the limit for uploads from the browser: use `berth import FILE --to WORKSPACE`, which has no such limit", humanBytes(limit))
}

// humanBytes writes n in the largest binary unit that divides it well.
func humanBytes(n int64) string {
	units := []string{"bytes", "KiB", "MiB", "GiB", "TiB"}
	v, i := float64(n), 0
	for v >= 1024 && i < len(units)-1 {
		v /= 1024
		i++
	}
	if i == 0 {
		return jsonNumber(n) + " bytes"
	}
	return strings.TrimSuffix(strings.TrimSuffix(jsonFloat(v), ".0"), ".00") + " " + units[i]
}

func jsonNumber(n int64) string { b, _ := json.Marshal(n); return string(b) }

func jsonFloat(v float64) string {
	b, _ := json.Marshal(float64(int64(v*10+0.5)) / 10)
	return string(b)
}

// ownHosts are the host:port names this registry is reached by: the request's
// Host and the external URL's.
func (s *Server) ownHosts(r *http.Request) []string {
	hosts := []string{r.Host}
	if u, err := url.Parse(s.cfg.ExternalURL); err == nil && u.Host != "" {
		hosts = append(hosts, u.Host)
	}
	return hosts
}

// importOptions are where an import puts its images.
type importOptions struct {
	ws    string
	repo  string   // ?repository=: a path inside ws, or ""
	tag   string   // ?tag=, or ""
	hosts []string // this registry's names
}

func (o *importOptions) check() error {
	if o.repo != "" && !validRepoName(o.ws+"/"+o.repo) {
		return mgmtInvalid("repository %q: %s", o.repo, errNameInvalid.Message)
	}
	if o.tag != "" && !validTag(o.tag) {
		return mgmtInvalid("tag %q: %s", o.tag, errTagInvalid.Message)
	}
	return nil
}

// importBody reads the request body: it counts the bytes for progress, enforces
// the browser limit and remembers how reading failed.
type importBody struct {
	r        io.Reader
	n        int64
	limit    int64 // 0: none
	err      error // first failure: an *apiError for the client
	progress func(n int64)
}

func (b *importBody) Read(p []byte) (int, error) {
	if b.err != nil {
		return 0, b.err
	}
	n, err := b.r.Read(p)
	b.n += int64(n)
	if b.limit > 0 && b.n > b.limit {
		b.err = browserTooLarge(b.limit)
		return 0, b.err
	}
	if err != nil && err != io.EOF {
		b.err = archiveInvalid("reading the upload failed (did the client disconnect?): %v", err)
		return n, b.err
	}
	if b.progress != nil && n > 0 {
		b.progress(b.n)
	}
	return n, err
}

// capReader enforces the decompressed size limit.
type capReader struct {
	r     io.Reader
	n     int64
	limit int64
	err   error
}

func (c *capReader) Read(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	n, err := c.r.Read(p)
	c.n += int64(n)
	if c.n > c.limit {
		c.err = archiveTooLarge("archive: the archive is larger than %s uncompressed, the configured limit", humanBytes(c.limit))
		return 0, c.err
	}
	return n, err
}

// runImport reads, checks and records one archive.
func (s *Server) runImport(ctx context.Context, body *importBody, multipartBody bool, boundary string, opts importOptions, lim ImportLimits, prog *importProgress) (*importResult, error) {
	var src io.Reader = body
	var capped *capReader
	failed := func(err error) error {
		var ae *apiError
		switch {
		case body.err != nil:
			return body.err
		case capped != nil && capped.err != nil:
			return capped.err
		case errors.As(err, &ae):
			return ae
		case ctx.Err() != nil:
			return archiveInvalid("the client went away during the upload")
		}
		return formatProblem(err)
	}
	if multipartBody {
		part, err := formFile(multipart.NewReader(body, boundary), &opts)
		if err != nil {
			if errors.As(err, new(*apiError)) {
				return nil, err
			}
			if body.err != nil {
				return nil, body.err
			}
			return nil, mgmtInvalid("reading the form: %v", err)
		}
		src = part
	}
	tarStream, err := decompress(src)
	if err != nil {
		return nil, failed(err)
	}
	capped = &capReader{r: tarStream, limit: lim.MaxBytes}
	a := newArchive(s.blobs, s.newImportUploadID, lim, failed)
	defer a.discard()
	if err := a.read(ctx, capped); err != nil {
		return nil, err
	}
	prog.uploadDone(body.n)
	images, err := a.images()
	if err != nil {
		return nil, err
	}
	plan, err := planTargets(opts, images)
	if err != nil {
		return nil, err
	}
	// From here on the import runs to its end: the upload is complete and
	// checked, and stopping half way would leave some images without others.
	return s.recordImport(context.WithoutCancel(ctx), a, plan, prog)
}

// formFile returns the "file" part of a console upload, taking the
// "repository" and "tag" fields sent before it.
func formFile(mr *multipart.Reader, opts *importOptions) (io.Reader, error) {
	for {
		part, err := mr.NextPart()
		if err == io.EOF {
			return nil, mgmtInvalid("the form has no \"file\" part")
		}
		if err != nil {
			return nil, err
		}
		switch part.FormName() {
		case "file":
			return part, nil
		case "repository", "tag":
			v, err := io.ReadAll(io.LimitReader(part, 1024))
			if err != nil {
				return nil, err
			}
			if s := strings.TrimSpace(string(v)); s != "" {
				if part.FormName() == "repository" {
					opts.repo = s
				} else {
					opts.tag = s
				}
			}
			if err := opts.check(); err != nil {
				return nil, err
			}
		default:
			if _, err := io.Copy(io.Discard, part); err != nil {
				return nil, err
			}
		}
	}
}

// importTarget is one repository an image is stored in, with its tags there.
type importTarget struct {
	repo string
	tags []string
}

// plannedImage is an image with the places it goes to.
type plannedImage struct {
	img     *importImage
	targets []importTarget
}

// planTargets decides the repositories and tags of every image (see the top of
// this file), refusing names that are invalid, that leave the workspace, or
// that two images would both get.
func planTargets(o importOptions, images []*importImage) ([]plannedImage, error) {
	if o.tag != "" && len(images) != 1 {
		return nil, archiveInvalid("?tag= names one tag, but the archive holds %d images: import it without a tag, or one image at a time", len(images))
	}
	taken := map[string]meta.Digest{} // "repo:tag" -> manifest
	var out []plannedImage
	for _, img := range images {
		pi := plannedImage{img: img}
		add := func(repo, tag string) error {
			if !validRepoName(repo) {
				return archiveInvalid("%s would go to %q, which is not a valid repository name", img.where, repo)
			}
			if !validTag(tag) {
				return archiveInvalid("%s has the tag %q, which is not a valid tag", img.where, tag)
			}
			key := repo + ":" + tag
			if d, ok := taken[key]; ok && d != img.manifest.digest {
				return archiveInvalid("two images of the archive would both be tagged %s", key)
			}
			taken[key] = img.manifest.digest
			for i := range pi.targets {
				if pi.targets[i].repo == repo {
					if !slices.Contains(pi.targets[i].tags, tag) {
						pi.targets[i].tags = append(pi.targets[i].tags, tag)
					}
					return nil
				}
			}
			pi.targets = append(pi.targets, importTarget{repo: repo, tags: []string{tag}})
			return nil
		}
		type ref struct{ repo, tag string }
		var refs []ref
		for _, name := range img.refs {
			host, p, tag, err := splitImageRef(name)
			if err != nil {
				return nil, archiveInvalid("%s is named %q: %v", img.where, name, err)
			}
			repo, err := rerootRef(o, host, p, name)
			if err != nil {
				return nil, err
			}
			refs = append(refs, ref{repo, tag})
		}
		switch {
		case o.repo != "":
			repo := o.ws + "/" + o.repo
			var tags []string
			for _, r := range refs {
				tags = append(tags, r.tag)
			}
			tags = append(tags, img.tagsOnly...)
			if o.tag != "" {
				tags = []string{o.tag}
			}
			if len(tags) == 0 {
				tags = []string{"latest"}
			}
			for _, t := range tags {
				if err := add(repo, t); err != nil {
					return nil, err
				}
			}
		case len(refs) == 0 && len(img.tagsOnly) > 0:
			return nil, archiveInvalid("%s is named only by the tag %q: give the repository to put it in (?repository=)", img.where, img.tagsOnly[0])
		case len(refs) == 0:
			return nil, archiveInvalid("%s has no name in the archive: give the repository to put it in (?repository=)", img.where)
		default:
			for _, r := range refs {
				tag := r.tag
				if o.tag != "" {
					tag = o.tag
				}
				if err := add(r.repo, tag); err != nil {
					return nil, err
				}
				if o.tag == "" {
					for _, t := range img.tagsOnly {
						if err := add(r.repo, t); err != nil {
							return nil, err
						}
					}
				}
			}
		}
		out = append(out, pi)
	}
	return out, nil
}

// splitImageRef splits an image reference into its registry host (if it has
// one, by docker's rule: a first component with a '.' or ':', or "localhost"),
// its path and its tag ("latest" when it has none; a digest is ignored). Docker
// Hub's "docker.io/library/x" is "x", as docker save writes it.
func splitImageRef(ref string) (host, p, tag string, err error) {
	name, _, _ := strings.Cut(ref, "@")
	tag = "latest"
	if i := strings.LastIndexByte(name, ':'); i > strings.LastIndexByte(name, '/') {
		name, tag = name[:i], name[i+1:]
	}
	if first, rest, ok := strings.Cut(name, "/"); ok && (strings.ContainsAny(first, ".:") || first == "localhost") {
		host, name = first, rest
	}
	switch strings.ToLower(host) {
	case "docker.io", "index.docker.io", "registry-1.docker.io":
		if rest, ok := strings.CutPrefix(name, "library/"); ok && !strings.Contains(rest, "/") {
			name = rest
		}
	}
	if name == "" {
		return "", "", "", errors.New("no repository path")
	}
	return host, name, tag, nil
}

// rerootRef puts an archive's repository path into the target workspace. A name
// on this registry's own host already names a workspace: it must be the target.
func rerootRef(o importOptions, host, p, name string) (string, error) {
	if host != "" && slices.ContainsFunc(o.hosts, func(h string) bool { return strings.EqualFold(h, host) }) {
		ws, rest, ok := strings.Cut(p, "/")
		if ws != o.ws {
			return "", archiveInvalid("the archive tags an image %s, in workspace %s of this registry: an import into workspace %s can only create tags in %s", name, ws, o.ws, o.ws)
		}
		if !ok {
			return "", archiveInvalid("the archive tags an image %s, which is not a repository of workspace %s", name, o.ws)
		}
		p = rest
	}
	return o.ws + "/" + p, nil
}

// recordImport commits the blobs the images need, records them in each target
// repository and stores the manifests with their tags.
func (s *Server) recordImport(ctx context.Context, a *archive, plan []plannedImage, prog *importProgress) (*importResult, error) {
	type repoBlobs struct {
		seen  map[meta.Digest]bool
		order []meta.Digest
	}
	sizes := map[meta.Digest]int64{}
	var order []meta.Digest
	perRepo := map[string]*repoBlobs{}
	var repos []string
	var walk func(m *importManifest, rb *repoBlobs)
	walk = func(m *importManifest, rb *repoBlobs) {
		for _, c := range m.children {
			walk(c, rb)
		}
		if m.parsed.Config == nil {
			return
		}
		for _, d := range append([]meta.Descriptor{*m.parsed.Config}, m.parsed.Layers...) {
			if d.Foreign() {
				continue
			}
			if _, ok := sizes[d.Digest]; !ok {
				sizes[d.Digest] = d.Size
				order = append(order, d.Digest)
			}
			if !rb.seen[d.Digest] {
				rb.seen[d.Digest] = true
				rb.order = append(rb.order, d.Digest)
			}
		}
	}
	for _, pi := range plan {
		for _, t := range pi.targets {
			rb := perRepo[t.repo]
			if rb == nil {
				rb = &repoBlobs{seen: map[meta.Digest]bool{}}
				perRepo[t.repo] = rb
				repos = append(repos, t.repo)
			}
			walk(pi.img.manifest, rb)
		}
	}
	// Progress counts each blob's bytes once when committed and once more for
	// each repository it is recorded in.
	var total, done int64
	for _, d := range order {
		total += sizes[d]
	}
	for _, repo := range repos {
		for _, d := range perRepo[repo].order {
			total += sizes[d]
		}
	}
	prog.importing(0, total, true)
	// Blob bytes first: commit the sessions (a rename) and write held blobs.
	for _, d := range order {
		src := a.content[digest.Digest(d)]
		if src == nil {
			return nil, archiveInvalid("blob %s is not in the archive", d) // checked before; a safety net
		}
		switch {
		case src.upload != nil:
			if _, err := src.upload.Commit(ctx, digest.Digest(d), src.entry.size); err != nil {
				return nil, err
			}
			src.upload = nil
		case src.entry.held:
			if _, err := s.blobs.Put(ctx, bytes.NewReader(src.entry.data), digest.Digest(d)); err != nil {
				return nil, err
			}
		}
		done += sizes[d]
		prog.importing(done, total, false)
	}
	a.discard() // sessions of content no image uses
	// Then the metadata: blobs (the node places them on min_replicas nodes),
	// then manifests, children before their index.
	for _, repo := range repos {
		for _, d := range perRepo[repo].order {
			if err := s.propose.Propose(ctx, &meta.PutBlob{Repo: repo, Digest: d, Size: sizes[d], Time: s.cfg.Clock()}); err != nil {
				return nil, err
			}
			done += sizes[d]
			prog.importing(done, total, false)
		}
	}
	res := &importResult{Images: []importedImage{}}
	stored := map[string]bool{} // "repo@digest"
	var store func(repo string, m *importManifest, tags []string) error
	store = func(repo string, m *importManifest, tags []string) error {
		for _, c := range m.children {
			if err := store(repo, c, nil); err != nil {
				return err
			}
		}
		key := repo + "@" + string(m.digest)
		if stored[key] && len(tags) == 0 {
			return nil
		}
		stored[key] = true
		return s.propose.Propose(ctx, &meta.PutManifest{
			Repo: repo, Digest: m.digest, Content: m.content, Tags: tags, Time: s.cfg.Clock(),
			Info: manifestInfo(m.parsed, int64(len(m.content))),
		})
	}
	for _, pi := range plan {
		for _, t := range pi.targets {
			if err := store(t.repo, pi.img.manifest, t.tags); err != nil {
				return nil, err
			}
			for _, tag := range t.tags {
				res.Images = append(res.Images, describeImport(t.repo, tag, pi.img.manifest))
			}
		}
	}
	prog.importing(total, total, true)
	return res, nil
}

// describeImport is the result item of one tag.
func describeImport(repo, tag string, m *importManifest) importedImage {
	out := importedImage{Repository: repo, Tag: tag, Digest: m.digest, MediaType: m.parsed.MediaType}
	var size func(m *importManifest) int64
	size = func(m *importManifest) int64 {
		var n int64
		for _, c := range m.children {
			n += size(c)
		}
		if m.parsed.Config != nil {
			n += m.parsed.Config.Size
		}
		for _, l := range m.parsed.Layers {
			n += l.Size
		}
		return n
	}
	out.Size = size(m)
	if m.parsed.Config != nil {
		out.Config = m.parsed.Config.Digest
		out.Layers = []importedBlob{}
		for _, l := range m.parsed.Layers {
			out.Layers = append(out.Layers, importedBlob{Digest: l.Digest, Size: l.Size, MediaType: l.MediaType})
		}
	}
	for _, c := range m.parsed.Manifests {
		out.Manifests = append(out.Manifests, importedChild{Digest: c.Digest, MediaType: c.MediaType, Platform: c.Platform})
	}
	return out
}

// importProgress answers an import: with progress lines for a client that asked
// for application/x-ndjson, else one JSON document at the end. Its methods are
// safe for concurrent use (the blob store reads the body on its own goroutine).
//
// Reading the body never waits for the client to read the answer: upload
// progress is only recorded there, and a goroutine of its own writes the latest
// figure every progressEvery. A client that reads the answer only after sending
// everything (many HTTP/1.1 stacks do) thus cannot stall its own upload. The
// import phase, when the body has been read, writes directly.
type importProgress struct {
	w      http.ResponseWriter
	rc     *http.ResponseController
	ndjson bool
	sent   atomic.Int64 // body bytes read
	total  int64        // Content-Length, -1 if unknown; set before start
	stop   chan struct{}
	ticker sync.WaitGroup

	mu      sync.Mutex // guards the fields below and writing to w
	started bool
	stopped bool
	last    time.Time
}

// progressEvery is how often a progress line is sent at most.
const progressEvery = 250 * time.Millisecond

func newImportProgress(w http.ResponseWriter, r *http.Request) *importProgress {
	nd := false
	for _, v := range r.Header.Values("Accept") {
		for _, part := range strings.Split(v, ",") {
			mt, _, _ := mime.ParseMediaType(strings.TrimSpace(part))
			if mt == "application/x-ndjson" {
				nd = true
			}
		}
	}
	return &importProgress{w: w, rc: http.NewResponseController(w), ndjson: nd, total: r.ContentLength, stop: make(chan struct{})}
}

type progressLine struct {
	Phase string `json:"phase"`
	Bytes int64  `json:"bytes"`
	Total *int64 `json:"total,omitempty"`
}

type progressDone struct {
	Phase  string        `json:"phase"`
	Result *importResult `json:"result"`
}

type progressError struct {
	Phase  string     `json:"phase"`
	Status int        `json:"status"`
	Error  errorEntry `json:"error"`
}

// start sends the 200 and the first line of a progress stream, and starts the
// upload ticker. The request body is read after the answer began, which
// HTTP/1.1 allows once full duplex is on.
func (p *importProgress) start() {
	if !p.ndjson {
		return
	}
	p.mu.Lock()
	_ = p.rc.EnableFullDuplex() // HTTP/2 is always full duplex
	h := p.w.Header()
	h.Set("Content-Type", "application/x-ndjson")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Accel-Buffering", "no") // nginx: do not buffer the stream
	p.w.WriteHeader(http.StatusOK)
	p.started = true
	p.writeLocked(p.lineLocked("upload", 0, p.total))
	p.mu.Unlock()
	p.ticker.Add(1)
	go func() {
		defer p.ticker.Done()
		t := time.NewTicker(progressEvery)
		defer t.Stop()
		written := int64(0)
		for {
			select {
			case <-p.stop:
				return
			case <-t.C:
			}
			if n := p.sent.Load(); n != written {
				written = n
				p.mu.Lock()
				p.writeLocked(p.lineLocked("upload", n, p.total))
				p.mu.Unlock()
			}
		}
	}()
}

// stopTicker ends the upload ticker (once).
func (p *importProgress) stopTicker() {
	p.mu.Lock()
	if p.stopped || !p.started {
		p.mu.Unlock()
		return
	}
	p.stopped = true
	p.mu.Unlock()
	close(p.stop)
	p.ticker.Wait()
}

func (p *importProgress) lineLocked(phase string, n, total int64) progressLine {
	l := progressLine{Phase: phase, Bytes: n}
	if total >= 0 {
		l.Total = &total
	}
	return l
}

func (p *importProgress) writeLocked(v any) {
	b, err := json.Marshal(v)
	if err != nil {
		return
	}
	_, _ = p.w.Write(append(b, '\n'))
	_ = p.rc.Flush()
	p.last = time.Now() // throttling for display, not a domain time
}

// upload records the body bytes read so far; it never writes.
func (p *importProgress) upload(n int64) { p.sent.Store(n) }

// uploadDone stops the ticker and sends the last upload line.
func (p *importProgress) uploadDone(n int64) {
	if !p.ndjson {
		return
	}
	p.stopTicker()
	p.mu.Lock()
	defer p.mu.Unlock()
	p.writeLocked(p.lineLocked("upload", n, p.total))
}

// importing sends an import line, at most every progressEvery unless forced.
func (p *importProgress) importing(n, total int64, force bool) {
	if !p.ndjson {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.started || (!force && time.Since(p.last) < progressEvery) {
		return
	}
	p.writeLocked(p.lineLocked("import", n, total))
}

// finish sends the outcome. Without a progress stream it returns err for the
// management wrapper to answer, or sends the result with 201.
func (p *importProgress) finish(w http.ResponseWriter, r *http.Request, res *importResult, err error, s *Server) error {
	if !p.ndjson {
		if err != nil {
			return err
		}
		return mgmtReply(w, r, http.StatusCreated, res)
	}
	p.stopTicker()
	p.mu.Lock()
	defer p.mu.Unlock()
	if err == nil {
		p.writeLocked(progressDone{Phase: "done", Result: res})
		return nil
	}
	ae, internal := toAPIError(mgmtError(err))
	if internal {
		s.log.LogAttrs(r.Context(), slog.LevelError, "internal error",
			slog.String("id", r.Header.Get("X-Request-Id")), slog.String("method", r.Method),
			slog.String("path", r.URL.Path), slog.String("error", err.Error()))
	}
	p.writeLocked(progressError{Phase: "error", Status: ae.Status, Error: errorEntry{Code: ae.Code, Message: ae.Message}})
	return nil
}
