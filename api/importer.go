package api

// Image archive import: reading an archive.
//
// An archive is a tar stream, plain or gzip-compressed, in one of two layouts:
//
//   - the legacy `docker save` layout: manifest.json lists each image's config
//     ("<hex>.json") and layer tars ("<id>/layer.tar", or "blobs/sha256/<hex>"
//     since Docker 25), with its RepoTags; a layer is an uncompressed tar whose
//     sha256 is both its blob digest and its diff_id;
//   - the OCI image layout that newer Docker, skopeo and podman write: oci-layout,
//     index.json, and content-addressed blobs/<alg>/<hex> (manifests, configs,
//     layers as they were pulled).
//
// Entries arrive in any order, and manifest.json or index.json may come last, so
// a single pass cannot know which entry is a layer when it reads it. The archive
// is therefore read once, front to back, and every entry is put where it can
// stay:
//
//   - the metadata files at the root (manifest.json, index.json, repositories,
//     oci-layout) and every other small JSON document (a config, a manifest, at
//     most importHeldMax bytes each and importHeldBudget in all) are held in
//     memory, hashed as they are read;
//   - everything else (layers, whatever else the archive holds) is streamed, as
//     it is read from the upload, into an upload session of the blob store,
//     which hashes it on the way (blobstore.Upload.Digest). A blob's bytes go to
//     disk once and are never read back; a second entry with the same content is
//     dropped at once.
//
// Only when the whole archive has been read and checked (see plan) are the
// sessions that hold referenced blobs committed and the metadata recorded
// (recordImport); a refused archive cancels every session, so it leaves nothing
// behind, neither metadata nor blob files. See mgmt_import.go for the endpoint.

import (
	"archive/tar"
	"bytes"
	"compress/flate"
	"compress/gzip"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"path"
	"regexp"
	"slices"
	"strings"

	"github.com/opencontainers/go-digest"

	"github.com/berth-registry/berth/meta"
)

// ImportLimits bound one archive import. Zero fields take the defaults.
type ImportLimits struct {
	// MaxBytes caps the decompressed size of the tar stream (default 64 GiB).
	MaxBytes int64
	// MaxEntries caps the number of tar entries (default 100,000).
	MaxEntries int
	// MaxBrowserBytes caps a multipart/form-data upload, the console's
	// (default 2 GiB): larger ones are refused with 413 before anything is
	// stored. Raw bodies (the CLI, the API) have no limit but MaxBytes and
	// the disk.
	MaxBrowserBytes int64
}

const (
	defaultImportMaxBytes        = 64 << 30
	defaultImportMaxEntries      = 100_000
	defaultImportMaxBrowserBytes = 2 << 30

	// importMetaMax bounds each of the root metadata files held in memory.
	importMetaMax = 16 << 20
	// importHeldMax is the size up to which a JSON entry (a config, a
	// manifest) is held in memory; larger entries are streamed to the blob
	// store. It is the default manifest size limit.
	importHeldMax = 4 << 20
	// importSmallMax is the size up to which any entry is held in memory while
	// the budget lasts (a layer's VERSION file, a tiny layer): cheaper than an
	// upload session of its own.
	importSmallMax = 64 << 10
	// importHeldBudget bounds all the entries held for one archive.
	importHeldBudget = 64 << 20
	// importMaxLinkHops bounds the symbolic and hard links followed to
	// resolve one name.
	importMaxLinkHops = 16
	// importMaxIndexDepth bounds the nesting of indexes in an OCI layout.
	importMaxIndexDepth = 4
)

func (l ImportLimits) withDefaults() ImportLimits {
	if l.MaxBytes <= 0 {
		l.MaxBytes = defaultImportMaxBytes
	}
	if l.MaxEntries <= 0 {
		l.MaxEntries = defaultImportMaxEntries
	}
	if l.MaxBrowserBytes <= 0 {
		l.MaxBrowserBytes = defaultImportMaxBrowserBytes
	}
	return l
}

// archiveInvalid is the refusal of an archive: 400 with a message that says why.
func archiveInvalid(format string, args ...any) *apiError {
	return newError(CodeInvalid, http.StatusBadRequest, "%s", "archive: "+fmt.Sprintf(format, args...))
}

// archiveTooLarge is the refusal of an archive over a size limit: 413.
func archiveTooLarge(format string, args ...any) *apiError {
	return newError(CodeSizeInvalid, http.StatusRequestEntityTooLarge, "%s", fmt.Sprintf(format, args...))
}

// uploadDigester is an Upload that tells the sha256 digest of what it received,
// from the hash it kept while streaming (blobstore.Upload does). Uploads that do
// not are hashed by the importer as they stream.
type uploadDigester interface {
	Digest() (digest.Digest, error)
}

type entryKind uint8

const (
	kindFile entryKind = iota
	kindDir
	kindSymlink
	kindHardlink
)

// archiveEntry is one tar entry.
type archiveEntry struct {
	name   string // the cleaned path inside the archive
	kind   entryKind
	target string // links: the cleaned archive path the link names
	size   int64
	// digest is a file's content digest: the verified digest of its path for
	// blobs/<alg>/<hex>, else its sha256.
	digest digest.Digest
	held   bool   // content kept in data
	data   []byte // held content
}

// blobSource is where one distinct content of the archive is: held in memory or
// in an upload session not committed yet.
type blobSource struct {
	entry  *archiveEntry // the first entry with this content
	upload Upload        // streamed content; nil for held content or once committed
}

// archive is what reading an archive learned. It is used by one request's
// goroutine (the blob store reads entries on its own goroutines, one at a time).
type archive struct {
	blobs   Blobs
	newID   func() string
	lim     ImportLimits
	entries map[string]*archiveEntry
	content map[digest.Digest]*blobSource
	held    int64 // bytes of JSON entries held (not counting root metadata)
	count   int   // tar entries read
	// failed turns an error met while reading the stream into the answer: the
	// caller knows whether the body, a limit or the archive's format failed.
	failed func(error) error
}

func newArchive(blobs Blobs, newID func() string, lim ImportLimits, failed func(error) error) *archive {
	return &archive{
		blobs:   blobs,
		newID:   newID,
		lim:     lim.withDefaults(),
		entries: map[string]*archiveEntry{},
		content: map[digest.Digest]*blobSource{},
		failed:  failed,
	}
}

// newImportUploadID names an import's upload session: "<node>.<random>.import".
// The last part is never the 8-hex-digit repository tag of a /v2/ session id, so
// an import's sessions are not reachable through the OCI upload endpoints.
func (s *Server) newImportUploadID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return s.cfg.NodeID + "." + hex.EncodeToString(b[:]) + ".import"
}

// discard cancels the upload sessions that were not committed. It is safe to call
// more than once.
func (a *archive) discard() {
	for _, src := range a.content {
		if src.upload != nil {
			_ = src.upload.Cancel()
			src.upload = nil
		}
	}
}

// decompress returns the tar stream of r: r itself, or its gzip decompression
// when it starts with gzip's magic bytes. Other compressions are refused by name.
func decompress(r io.Reader) (io.Reader, error) {
	br := newPeekReader(r)
	head, err := br.peek(6)
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
		return nil, err
	}
	switch {
	case len(head) == 0:
		return nil, archiveInvalid("the upload is empty")
	case bytes.HasPrefix(head, []byte{0x1f, 0x8b}):
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, err
		}
		return zr, nil
	case bytes.HasPrefix(head, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		return nil, archiveInvalid("zstd-compressed archives are not supported: upload the tar, or compress it with gzip")
	case bytes.HasPrefix(head, []byte{0xfd, '7', 'z', 'X', 'Z', 0}):
		return nil, archiveInvalid("xz-compressed archives are not supported: upload the tar, or compress it with gzip")
	case bytes.HasPrefix(head, []byte("BZh")):
		return nil, archiveInvalid("bzip2-compressed archives are not supported: upload the tar, or compress it with gzip")
	}
	return br, nil
}

// peekReader is a reader whose first bytes can be looked at without a bufio
// buffer staying in the data path afterwards.
type peekReader struct {
	r    io.Reader
	head []byte
}

func newPeekReader(r io.Reader) *peekReader { return &peekReader{r: r} }

func (p *peekReader) peek(n int) ([]byte, error) {
	for len(p.head) < n {
		buf := make([]byte, n-len(p.head))
		k, err := p.r.Read(buf)
		p.head = append(p.head, buf[:k]...)
		if err != nil {
			return p.head, err
		}
	}
	return p.head, nil
}

func (p *peekReader) Read(b []byte) (int, error) {
	if len(p.head) > 0 {
		n := copy(b, p.head)
		p.head = p.head[n:]
		return n, nil
	}
	return p.r.Read(b)
}

// formatProblem describes a failure of the tar or gzip decoder for the client.
func formatProblem(err error) *apiError {
	var ce flate.CorruptInputError
	switch {
	case errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF):
		return archiveInvalid("the archive ends in the middle of an entry (was the upload cut short?)")
	case errors.Is(err, gzip.ErrChecksum), errors.Is(err, gzip.ErrHeader), errors.As(err, &ce):
		return archiveInvalid("not a valid gzip stream: %v", err)
	case errors.Is(err, tar.ErrHeader), errors.Is(err, tar.ErrFieldTooLong), errors.Is(err, tar.ErrInsecurePath):
		return archiveInvalid("not a valid tar archive: %v", err)
	}
	return archiveInvalid("cannot read the archive: %v", err)
}

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// errRecorder remembers the first error reading its reader returned, so that a
// failed blob store Write can be told apart: the stream failed, or the store.
type errRecorder struct {
	r   io.Reader
	err error
}

func (e *errRecorder) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err != nil && err != io.EOF && e.err == nil {
		e.err = err
	}
	return n, err
}

// read reads the whole tar stream r.
func (a *archive) read(ctx context.Context, r io.Reader) error {
	pos := &countingReader{r: r}
	tr := tar.NewReader(pos)
	var dataEnd int64 // where the last entry's padded data ends
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			// archive/tar takes a stream that stops between two entries for
			// the end; an archive ends with a zero block.
			if pos.n < dataEnd+512 {
				return archiveInvalid("the archive ends without its end-of-archive blocks (was the upload cut short?)")
			}
			break
		}
		if err != nil {
			return a.failed(err)
		}
		dataEnd = pos.n
		if hdr.Typeflag == tar.TypeReg || hdr.Typeflag == '\x00' {
			dataEnd += (hdr.Size + 511) &^ 511
		}
		a.count++
		if a.count > a.lim.MaxEntries {
			return archiveInvalid("more than %d entries", a.lim.MaxEntries)
		}
		if err := a.add(ctx, tr, hdr); err != nil {
			return err
		}
	}
	// The padding after the end-of-archive blocks, and gzip's checksum.
	if _, err := io.Copy(io.Discard, r); err != nil {
		return a.failed(err)
	}
	return a.check()
}

// metadataNames are the files at the root that are read in memory whatever
// their content, each up to importMetaMax bytes.
var metadataNames = map[string]bool{"manifest.json": true, "index.json": true, "repositories": true, "oci-layout": true}

// add records one entry, reading its content.
func (a *archive) add(ctx context.Context, tr *tar.Reader, hdr *tar.Header) error {
	if hdr.Typeflag == tar.TypeXGlobalHeader {
		return nil // PAX defaults for the entries that follow; archive/tar applies them
	}
	name, err := cleanEntryPath(hdr.Name)
	if err != nil {
		return err
	}
	e := &archiveEntry{name: name, size: hdr.Size}
	switch hdr.Typeflag {
	case tar.TypeDir:
		if name == "" {
			return nil // "./"
		}
		e.kind = kindDir
	case tar.TypeReg, '\x00':
		e.kind = kindFile
	case tar.TypeSymlink:
		e.kind = kindSymlink
		if hdr.Linkname == "" || path.IsAbs(hdr.Linkname) {
			return archiveInvalid("symbolic link %s points outside the archive (%q)", name, hdr.Linkname)
		}
		t := path.Join(path.Dir(name), hdr.Linkname)
		if t == ".." || strings.HasPrefix(t, "../") {
			return archiveInvalid("symbolic link %s points outside the archive (%q)", name, hdr.Linkname)
		}
		e.target = t
	case tar.TypeLink:
		e.kind = kindHardlink
		t, err := cleanEntryPath(hdr.Linkname)
		if err != nil || t == "" {
			return archiveInvalid("hard link %s points outside the archive (%q)", name, hdr.Linkname)
		}
		e.target = t
	case tar.TypeChar, tar.TypeBlock:
		return archiveInvalid("%s is a device file; an image archive holds none", name)
	case tar.TypeFifo:
		return archiveInvalid("%s is a named pipe; an image archive holds none", name)
	default:
		return archiveInvalid("%s has tar entry type %q, which an image archive does not use", name, hdr.Typeflag)
	}
	if name == "" {
		return archiveInvalid("an entry has an empty name")
	}
	if _, dup := a.entries[name]; dup {
		return archiveInvalid("%s appears twice", name)
	}
	a.entries[name] = e
	if e.kind != kindFile {
		return nil
	}
	return a.readFile(ctx, e, tr)
}

// cleanEntryPath returns the archive path of a tar entry name without "./" and
// trailing slashes, refusing names that could leave the archive.
func cleanEntryPath(name string) (string, error) {
	if strings.HasPrefix(name, "/") {
		return "", archiveInvalid("entry %q has an absolute path", name)
	}
	if strings.ContainsRune(name, '\\') || strings.ContainsRune(name, 0) {
		return "", archiveInvalid("entry %q has a backslash or NUL in its path", name)
	}
	var parts []string
	for _, p := range strings.Split(name, "/") {
		switch p {
		case "", ".":
			continue
		case "..":
			return "", archiveInvalid("entry %q leaves the archive (\"..\" in its path)", name)
		}
		parts = append(parts, p)
	}
	return strings.Join(parts, "/"), nil
}

var blobPathRE = regexp.MustCompile(`^blobs/(sha256|sha512)/([0-9a-f]+)$`)

// blobPathDigest returns the digest that an OCI layout path blobs/<alg>/<hex>
// names, if it is one.
func blobPathDigest(name string) (digest.Digest, bool) {
	m := blobPathRE.FindStringSubmatch(name)
	if m == nil {
		return "", false
	}
	d := digest.NewDigestFromEncoded(digest.Algorithm(m[1]), m[2])
	if d.Validate() != nil {
		return "", false
	}
	return d, true
}

// readFile reads a regular file's content: held in memory (metadata, small JSON)
// or streamed into an upload session.
func (a *archive) readFile(ctx context.Context, e *archiveEntry, tr *tar.Reader) error {
	er := &errRecorder{r: tr}
	readHeld := func(first []byte) error {
		e.held = true
		e.data = make([]byte, e.size)
		n := copy(e.data, first)
		if _, err := io.ReadFull(er, e.data[n:]); err != nil {
			return a.failed(err)
		}
		return a.hashed(e, "", nil)
	}
	if !strings.Contains(e.name, "/") && metadataNames[e.name] {
		if e.size > importMetaMax {
			return archiveInvalid("%s is %d bytes, over the limit of %d bytes", e.name, e.size, importMetaMax)
		}
		return readHeld(nil)
	}
	if e.size <= importHeldMax {
		// A small entry that looks like JSON is held: it may be a config or a
		// manifest, which are read later. So is any tiny entry, while the
		// budget lasts.
		var first [1]byte
		if e.size > 0 {
			if _, err := io.ReadFull(er, first[:]); err != nil {
				return a.failed(err)
			}
		}
		isJSON := e.size == 0 || strings.HasSuffix(e.name, ".json") || bytes.IndexByte([]byte("{ \t\r\n"), first[0]) >= 0
		fits := a.held+e.size <= importHeldBudget
		if isJSON && !fits {
			return archiveInvalid("more than %d bytes of small JSON documents", importHeldBudget)
		}
		if isJSON || (fits && e.size <= importSmallMax) {
			a.held += e.size
			return readHeld(first[:min(e.size, 1)])
		}
		return a.stream(ctx, e, io.MultiReader(bytes.NewReader(first[:]), er), er)
	}
	return a.stream(ctx, e, er, er)
}

// stream writes an entry's content into a new upload session.
func (a *archive) stream(ctx context.Context, e *archiveEntry, r io.Reader, er *errRecorder) error {
	pathDigest, isBlob := blobPathDigest(e.name)
	var algs []digest.Algorithm
	if isBlob && pathDigest.Algorithm() != digest.SHA256 {
		algs = append(algs, pathDigest.Algorithm())
	}
	u, err := a.blobs.NewUpload(a.newID(), algs...)
	if err != nil {
		return fmt.Errorf("import: open an upload session for %s: %w", e.name, err)
	}
	var h hash.Hash
	dg, canDigest := u.(uploadDigester)
	if !canDigest || len(algs) > 0 {
		alg := digest.SHA256
		if len(algs) > 0 {
			alg = algs[0]
		}
		h = alg.Hash()
		r = io.TeeReader(r, h)
	}
	n, err := u.Write(ctx, r)
	if err == nil && n != e.size {
		err = fmt.Errorf("wrote %d bytes, want %d", n, e.size)
	}
	if err != nil {
		_ = u.Cancel()
		if er.err != nil {
			return a.failed(er.err)
		}
		if ctxErr := ctx.Err(); ctxErr != nil {
			return a.failed(ctxErr)
		}
		return fmt.Errorf("import: store %s: %w", e.name, err)
	}
	var d digest.Digest
	if h != nil {
		d = digest.NewDigest(pathAlg(pathDigest, isBlob), h)
	} else if d, err = dg.Digest(); err != nil {
		_ = u.Cancel()
		return fmt.Errorf("import: digest of %s: %w", e.name, err)
	}
	return a.hashed(e, d, u)
}

func pathAlg(d digest.Digest, isBlob bool) digest.Algorithm {
	if isBlob {
		return d.Algorithm()
	}
	return digest.SHA256
}

// hashed records an entry's digest, checking it against the path of an OCI
// blob: computed here for held content (d ""), d for content streamed into the
// upload u. The first entry with a content owns it; a later copy's upload is
// cancelled at once.
func (a *archive) hashed(e *archiveEntry, d digest.Digest, u Upload) error {
	pathDigest, isBlob := blobPathDigest(e.name)
	if d == "" {
		d = digest.Digest(meta.DigestOf(string(pathAlg(pathDigest, isBlob)), e.data))
	}
	e.digest = d
	if isBlob && d != pathDigest {
		if u != nil {
			_ = u.Cancel()
		}
		return archiveInvalid("%s holds content whose digest is %s: it does not match its name", e.name, d)
	}
	if a.content[d] != nil {
		if u != nil {
			_ = u.Cancel()
		}
		return nil
	}
	a.content[d] = &blobSource{entry: e, upload: u}
	return nil
}

// check runs the checks that need every entry: no entry lies under a link or a
// file, and every link resolves to a file of the archive.
func (a *archive) check() error {
	for name := range a.entries {
		for dir := path.Dir(name); dir != "."; dir = path.Dir(dir) {
			if p, ok := a.entries[dir]; ok && p.kind != kindDir {
				what := "a file"
				if p.kind == kindSymlink || p.kind == kindHardlink {
					what = "a link"
				}
				return archiveInvalid("%s lies under %s, which is %s: paths through links are not allowed", name, dir, what)
			}
		}
	}
	for name, e := range a.entries {
		if e.kind == kindSymlink || e.kind == kindHardlink {
			if _, err := a.resolve(name); err != nil {
				return err
			}
		}
	}
	return nil
}

// resolve follows links from name to a regular file.
func (a *archive) resolve(name string) (*archiveEntry, error) {
	cur := name
	for range importMaxLinkHops {
		e, ok := a.entries[cur]
		if !ok {
			if cur == name {
				return nil, errEntryMissing
			}
			return nil, archiveInvalid("link %s points at %s, which is not in the archive", name, cur)
		}
		switch e.kind {
		case kindFile:
			return e, nil
		case kindDir:
			if cur == name {
				return nil, archiveInvalid("%s is a directory, not a file", name)
			}
			return nil, archiveInvalid("link %s points at the directory %s; links may only name files", name, cur)
		}
		cur = e.target
	}
	return nil, archiveInvalid("link %s: more than %d links in a row (a loop?)", name, importMaxLinkHops)
}

var errEntryMissing = errors.New("api: archive entry missing")

// file returns the entry a metadata file names, following links; what says who
// names it, for the message.
func (a *archive) file(name, what string) (*archiveEntry, error) {
	clean, err := cleanEntryPath(name)
	if err != nil || clean == "" {
		return nil, archiveInvalid("%s names %q, which is not a path inside the archive", what, name)
	}
	e, err := a.resolve(clean)
	if errors.Is(err, errEntryMissing) {
		return nil, archiveInvalid("%s names %s, which is not in the archive", what, clean)
	}
	return e, err
}

// jsonFile returns the content of a JSON document the archive names.
func (a *archive) jsonFile(name, what string) (*archiveEntry, error) {
	e, err := a.file(name, what)
	if err != nil {
		return nil, err
	}
	if !e.held {
		return nil, archiveInvalid("%s names %s, which is not a JSON document of at most %d bytes", what, e.name, importHeldMax)
	}
	return e, nil
}

// blob returns the entry of an OCI layout blob, checking its size.
func (a *archive) blob(d meta.Descriptor, what string) (*archiveEntry, error) {
	dg := digest.Digest(d.Digest)
	name := "blobs/" + string(dg.Algorithm()) + "/" + dg.Encoded()
	e, err := a.file(name, what)
	if err != nil {
		return nil, err
	}
	if e.size != d.Size {
		return nil, archiveInvalid("%s gives %s a size of %d bytes, but %s has %d", what, d.Digest, d.Size, e.name, e.size)
	}
	if e.digest != dg {
		// A link named blobs/<alg>/<hex> that points at other content.
		return nil, archiveInvalid("%s resolves to content with digest %s, not %s", name, e.digest, dg)
	}
	return e, nil
}

// importManifest is a manifest to store: one the archive holds (OCI layout) or
// one built from manifest.json (legacy layout).
type importManifest struct {
	content  []byte
	digest   meta.Digest
	parsed   *meta.Manifest
	children []*importManifest // an index's manifests, stored before it
}

// importImage is one image of the archive (an entry of manifest.json or of
// index.json) and the names the archive gives it.
type importImage struct {
	where    string // "manifest.json[0]", "index.json manifests[1]"
	manifest *importManifest
	refs     []string // full references: "alpine:3.19", "docker.io/library/alpine:latest"
	tagsOnly []string // OCI ref names that are bare tags
}

// images returns the archive's images: from index.json (an OCI layout) when it
// has one that resolves, else from manifest.json (docker save's legacy layout).
// Docker 25 writes both; the OCI one keeps the manifests' digests.
func (a *archive) images() ([]*importImage, error) {
	_, hasIndex := a.entries["index.json"]
	_, hasManifest := a.entries["manifest.json"]
	switch {
	case hasIndex:
		imgs, err := a.ociImages()
		if err == nil || !hasManifest {
			return imgs, err
		}
		if legacy, lerr := a.legacyImages(); lerr == nil {
			return legacy, nil
		}
		return nil, err
	case hasManifest:
		return a.legacyImages()
	}
	return nil, archiveInvalid("neither manifest.json (docker save) nor index.json (OCI image layout) is at the root of the archive")
}

// legacyManifestEntry is one entry of docker save's manifest.json.
type legacyManifestEntry struct {
	Config   string   `json:"Config"`
	RepoTags []string `json:"RepoTags"`
	Layers   []string `json:"Layers"`
}

// Media types of the manifests built for legacy archives: Docker schema 2, with
// the layers stored as the uncompressed tars they are.
const (
	mediaTypeDockerConfig       = "application/vnd.docker.container.image.v1+json"
	mediaTypeDockerLayerTar     = "application/vnd.docker.image.rootfs.diff.tar"
	mediaTypeDockerForeignLayer = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
)

type builtDescriptor struct {
	MediaType string      `json:"mediaType"`
	Size      int64       `json:"size"`
	Digest    meta.Digest `json:"digest"`
}

type builtManifest struct {
	SchemaVersion int               `json:"schemaVersion"`
	MediaType     string            `json:"mediaType"`
	Config        builtDescriptor   `json:"config"`
	Layers        []builtDescriptor `json:"layers"`
}

var configNameRE = regexp.MustCompile(`(^|/)([0-9a-f]{64})\.json$`)

func (a *archive) legacyImages() ([]*importImage, error) {
	me := a.entries["manifest.json"]
	if me.kind != kindFile {
		return nil, archiveInvalid("manifest.json is not a regular file")
	}
	var list []legacyManifestEntry
	if err := json.Unmarshal(me.data, &list); err != nil {
		return nil, archiveInvalid("manifest.json: %s", jsonProblemText(err))
	}
	if len(list) == 0 {
		return nil, archiveInvalid("manifest.json lists no images")
	}
	var out []*importImage
	for i, im := range list {
		where := fmt.Sprintf("manifest.json[%d]", i)
		if im.Config == "" {
			return nil, archiveInvalid("%s has no Config", where)
		}
		ce, err := a.jsonFile(im.Config, where+".Config")
		if err != nil {
			return nil, err
		}
		if m := configNameRE.FindStringSubmatch(ce.name); m != nil && "sha256:"+m[2] != string(ce.digest) {
			return nil, archiveInvalid("config %s is named for sha256:%s but its content's digest is %s", ce.name, m[2], ce.digest)
		}
		var cfg struct {
			RootFS *struct {
				Type    string   `json:"type"`
				DiffIDs []string `json:"diff_ids"`
			} `json:"rootfs"`
		}
		if err := json.Unmarshal(ce.data, &cfg); err != nil {
			return nil, archiveInvalid("config %s: %s", ce.name, jsonProblemText(err))
		}
		if cfg.RootFS == nil || cfg.RootFS.Type != "layers" {
			return nil, archiveInvalid("config %s has no rootfs of type \"layers\"", ce.name)
		}
		if len(cfg.RootFS.DiffIDs) != len(im.Layers) {
			return nil, archiveInvalid("%s lists %d layers but its config's rootfs.diff_ids has %d", where, len(im.Layers), len(cfg.RootFS.DiffIDs))
		}
		m := builtManifest{
			SchemaVersion: 2,
			MediaType:     meta.MediaTypeDockerManifest,
			Config:        builtDescriptor{MediaType: mediaTypeDockerConfig, Size: ce.size, Digest: meta.Digest(ce.digest)},
			Layers:        []builtDescriptor{},
		}
		for j, l := range im.Layers {
			le, err := a.file(l, fmt.Sprintf("%s.Layers[%d]", where, j))
			if err != nil {
				return nil, err
			}
			d := le.digest
			if d.Algorithm() != digest.SHA256 {
				return nil, archiveInvalid("layer %s: the layers of manifest.json are identified by sha256", le.name)
			}
			if string(d) != cfg.RootFS.DiffIDs[j] {
				return nil, archiveInvalid("layer %s (%s.Layers[%d]) has digest %s, but its config's rootfs.diff_ids[%d] is %s", le.name, where, j, d, j, cfg.RootFS.DiffIDs[j])
			}
			m.Layers = append(m.Layers, builtDescriptor{MediaType: mediaTypeDockerLayerTar, Size: le.size, Digest: meta.Digest(d)})
		}
		content, err := json.Marshal(m)
		if err != nil {
			return nil, err
		}
		parsed, err := meta.ParseManifest(meta.MediaTypeDockerManifest, content)
		if err != nil {
			return nil, fmt.Errorf("import: built manifest for %s: %w", where, err)
		}
		out = append(out, &importImage{
			where:    where,
			manifest: &importManifest{content: content, digest: meta.DigestOf("sha256", content), parsed: parsed},
			refs:     slices.Clone(im.RepoTags),
		})
	}
	return out, nil
}

// OCI annotations that name an image in an index.json.
const (
	annotationRefName       = "org.opencontainers.image.ref.name"
	annotationContainerName = "io.containerd.image.name"
)

func (a *archive) ociImages() ([]*importImage, error) {
	ie := a.entries["index.json"]
	if ie.kind != kindFile {
		return nil, archiveInvalid("index.json is not a regular file")
	}
	if le, ok := a.entries["oci-layout"]; ok && le.kind == kindFile {
		var layout struct {
			Version string `json:"imageLayoutVersion"`
		}
		if err := json.Unmarshal(le.data, &layout); err != nil {
			return nil, archiveInvalid("oci-layout: %s", jsonProblemText(err))
		}
		if layout.Version != "1.0.0" {
			return nil, archiveInvalid("oci-layout: imageLayoutVersion %q is not supported (want 1.0.0)", layout.Version)
		}
	}
	idx, err := meta.ParseManifest(meta.MediaTypeOCIIndex, ie.data)
	if err != nil {
		if errors.Is(err, meta.ErrManifestInvalid) && strings.Contains(err.Error(), "needs a \"manifests\" array") {
			return nil, archiveInvalid("index.json lists no images")
		}
		return nil, archiveInvalid("index.json: %s", clientText(err))
	}
	if !idx.IsIndex {
		return nil, archiveInvalid("index.json is not an image index")
	}
	if len(idx.Manifests) == 0 {
		return nil, archiveInvalid("index.json lists no images")
	}
	var out []*importImage
	byDigest := map[meta.Digest]*importImage{}
	for i, d := range idx.Manifests {
		where := fmt.Sprintf("index.json manifests[%d]", i)
		img := byDigest[d.Digest]
		if img == nil {
			m, err := a.loadManifest(d, where, 0)
			if err != nil {
				return nil, err
			}
			img = &importImage{where: where, manifest: m}
			byDigest[d.Digest] = img
			out = append(out, img)
		}
		if n := d.Annotations[annotationContainerName]; n != "" {
			img.refs = append(img.refs, n)
		} else if n := d.Annotations[annotationRefName]; n != "" {
			if strings.ContainsAny(n, "/:@") {
				img.refs = append(img.refs, n)
			} else {
				img.tagsOnly = append(img.tagsOnly, n)
			}
		}
	}
	return out, nil
}

// loadManifest reads the manifest d of an OCI layout and, for an index, its
// children, checking that every blob they name is in the archive.
func (a *archive) loadManifest(d meta.Descriptor, where string, depth int) (*importManifest, error) {
	e, err := a.blob(d, where)
	if err != nil {
		return nil, err
	}
	if !e.held {
		return nil, archiveInvalid("%s: manifest %s is not a JSON document of at most %d bytes", where, d.Digest, importHeldMax)
	}
	parsed, err := meta.ParseManifest(d.MediaType, e.data)
	if err != nil {
		return nil, archiveInvalid("%s: manifest %s: %s", where, d.Digest, clientText(err))
	}
	m := &importManifest{content: e.data, digest: d.Digest, parsed: parsed}
	if parsed.IsIndex {
		if depth >= importMaxIndexDepth {
			return nil, archiveInvalid("%s: indexes nested deeper than %d levels", where, importMaxIndexDepth)
		}
		for i, c := range parsed.Manifests {
			child, err := a.loadManifest(c, fmt.Sprintf("%s > %s manifests[%d]", where, d.Digest, i), depth+1)
			if err != nil {
				return nil, err
			}
			m.children = append(m.children, child)
		}
		return m, nil
	}
	descs := append([]meta.Descriptor{*parsed.Config}, parsed.Layers...)
	for i, bd := range descs {
		if bd.Foreign() {
			continue
		}
		what := fmt.Sprintf("%s: manifest %s config", where, d.Digest)
		if i > 0 {
			what = fmt.Sprintf("%s: manifest %s layers[%d]", where, d.Digest, i-1)
		}
		if _, err := a.blob(bd, what); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// clientText is the part of a meta validation error meant for the client.
func clientText(err error) string {
	ae, _ := toAPIError(err)
	return ae.Message
}

// jsonProblemText describes a JSON decoding error without Go type names.
func jsonProblemText(err error) string {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return fmt.Sprintf("malformed JSON at byte %d", se.Offset)
	case errors.As(err, &te):
		if te.Field != "" {
			return fmt.Sprintf("field %q has the wrong JSON type (%s)", te.Field, te.Value)
		}
		return fmt.Sprintf("unexpected JSON %s", te.Value)
	}
	return "malformed JSON"
}
