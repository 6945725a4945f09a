package api

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/opencontainers/go-digest"

	"github.com/berth-registry/berth/meta"
)

// Upload ids are "<node>.<random>.<repo tag>": the node that owns the session
// (a later issue streams other nodes' requests through to it), 128 random bits,
// and 32 bits of the repository name's hash so that a session is only usable
// through the repository it was opened in, even after a restart (the session
// state lives in the blob store, which knows nothing of repositories).
func (s *Server) newUploadID(repo string) string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return s.cfg.NodeID + "." + hex.EncodeToString(b[:]) + "." + repoTag(repo)
}

func repoTag(repo string) string {
	h := sha256.Sum256([]byte(repo))
	return hex.EncodeToString(h[:4])
}

func validUploadIDPart(p string) bool {
	for i := 0; i < len(p); i++ {
		c := p[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return p != ""
}

// session returns the upload named by the route, or BLOB_UPLOAD_UNKNOWN.
func (s *Server) session(rt v2Route) (Upload, error) {
	parts := strings.Split(rt.Ref, ".")
	// Another node's session reaches this point only when it was forwarded
	// here by mistake (one hop at most): unknown.
	if len(parts) != 3 || parts[0] != s.cfg.NodeID || parts[2] != repoTag(rt.Repo) ||
		!validUploadIDPart(parts[1]) {
		return nil, errUploadUnknown
	}
	u, err := s.blobs.Upload(rt.Ref)
	if err != nil {
		return nil, err
	}
	return u, nil
}

func uploadLocation(repo, id string) string { return "/v2/" + repo + "/blobs/uploads/" + id }

// uploadRange is the Docker-style Range header of a session: "0-<last byte>",
// "0-0" for an empty session as Distribution answers.
func uploadRange(size int64) string {
	if size <= 0 {
		return "0-0"
	}
	return "0-" + strconv.FormatInt(size-1, 10)
}

func writeUploadState(w http.ResponseWriter, repo string, u Upload, status int) {
	h := w.Header()
	h.Set("Location", uploadLocation(repo, u.ID()))
	h.Set("Range", uploadRange(u.Size()))
	h.Set("Docker-Upload-UUID", u.ID())
	setContentLength(w, 0)
	w.WriteHeader(status)
}

func blobCreated(w http.ResponseWriter, repo string, d meta.Digest) {
	h := w.Header()
	h.Set("Location", "/v2/"+repo+"/blobs/"+string(d))
	h.Set("Docker-Content-Digest", string(d))
	setContentLength(w, 0)
	w.WriteHeader(http.StatusCreated)
}

// startUpload serves POST .../blobs/uploads/: a cross-repository mount, a
// monolithic upload (?digest=), or a new session.
func (s *Server) startUpload(w http.ResponseWriter, r *http.Request, rt v2Route) error {
	if err := s.authorize(r, rt.Repo, ActionPush); err != nil {
		return err
	}
	q := r.URL.Query()
	if mount := q.Get("mount"); mount != "" {
		done, err := s.mount(w, r, rt.Repo, mount, q.Get("from"))
		if done || err != nil {
			return err
		}
		// Not mountable: the spec asks for an upload session instead.
	}
	if dg := q.Get("digest"); dg != "" {
		d, err := meta.ParseDigest(dg)
		if err != nil {
			return err
		}
		body := &bodyReader{r: r.Body}
		n, err := s.blobs.Put(r.Context(), body, digest.Digest(d))
		if err != nil {
			return body.classify(err)
		}
		if err := s.propose.Propose(r.Context(), &meta.PutBlob{Repo: rt.Repo, Digest: d, Size: n, Time: s.cfg.Clock()}); err != nil {
			return err
		}
		blobCreated(w, rt.Repo, d)
		return nil
	}
	var algs []digest.Algorithm
	if a := q.Get("digest-algorithm"); a != "" {
		switch digest.Algorithm(a) {
		case digest.SHA256, digest.SHA512:
			algs = append(algs, digest.Algorithm(a))
		default:
			return newError(CodeDigestInvalid, http.StatusBadRequest, "unsupported digest-algorithm %q: use sha256 or sha512", a)
		}
	}
	u, err := s.blobs.NewUpload(s.newUploadID(rt.Repo), algs...)
	if err != nil {
		return err
	}
	writeUploadState(w, rt.Repo, u, http.StatusAccepted)
	return nil
}

// mount links an existing blob into repo. With from, the blob must be linked to
// from and the caller must be allowed to pull from it; without from, the blob
// must be linked to some repository the caller may pull. It reports whether it
// answered; a mount that is not allowed is not an error, the client gets an
// upload session instead.
func (s *Server) mount(w http.ResponseWriter, r *http.Request, repo, mount, from string) (bool, error) {
	d, err := meta.ParseDigest(mount)
	if err != nil {
		return false, err
	}
	var b *meta.Blob
	if from != "" {
		if _, err := parseV2Path("/" + from + "/tags/list"); err != nil {
			return false, nil // not a repository name: no mount, open a session
		}
		if !s.canPull(r, from) {
			return false, nil // not the caller's to read: an ordinary upload
		}
		b, err = meta.GetLinkedBlob(s.meta, from, d)
	} else {
		b, err = meta.GetBlob(s.meta, d)
		if err == nil {
			// Knowing a digest grants nothing: the caller must be able to
			// pull some repository that holds the blob.
			ok, cerr := s.canPullBlobOwner(r, d)
			if cerr != nil {
				return false, cerr
			}
			if !ok {
				return false, nil
			}
		}
	}
	if errors.Is(err, meta.ErrBlobUnknown) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if _, err := s.blobs.Stat(digest.Digest(d)); err != nil {
		return false, nil // recorded but not on this node's disk: upload instead
	}
	if err := s.propose.Propose(r.Context(), &meta.PutBlob{Repo: repo, Digest: d, Size: b.Size, Time: s.cfg.Clock()}); err != nil {
		return false, err
	}
	blobCreated(w, repo, d)
	return true, nil
}

// checkContentRange enforces that a chunk starts where the session ends (416
// otherwise, with the session's state so the client can resume) and that its
// length matches Content-Length.
func checkContentRange(w http.ResponseWriter, r *http.Request, rt v2Route, u Upload) error {
	cr := r.Header.Get("Content-Range")
	if cr == "" {
		return nil
	}
	cr = strings.TrimPrefix(cr, "bytes ")
	if i := strings.IndexByte(cr, '/'); i >= 0 {
		cr = cr[:i]
	}
	a, b, ok := strings.Cut(cr, "-")
	start, err1 := strconv.ParseInt(a, 10, 64)
	end, err2 := strconv.ParseInt(b, 10, 64)
	if !ok || err1 != nil || err2 != nil || start < 0 || end < start {
		return newError(CodeBlobUploadInvalid, http.StatusRequestedRangeNotSatisfiable, "malformed Content-Range %q", r.Header.Get("Content-Range"))
	}
	if start != u.Size() {
		w.Header().Set("Location", uploadLocation(rt.Repo, u.ID()))
		w.Header().Set("Range", uploadRange(u.Size()))
		return newError(CodeBlobUploadInvalid, http.StatusRequestedRangeNotSatisfiable,
			"chunk starts at %d but the upload has %d bytes", start, u.Size())
	}
	if r.ContentLength >= 0 && r.ContentLength != end-start+1 {
		return newError(CodeBlobUploadInvalid, http.StatusBadRequest,
			"Content-Length %d does not match Content-Range %s", r.ContentLength, cr)
	}
	return nil
}

// patchUpload appends a chunk (with Content-Range) or a stream (without) to a session.
func (s *Server) patchUpload(w http.ResponseWriter, r *http.Request, rt v2Route) error {
	if err := s.authorize(r, rt.Repo, ActionPush); err != nil {
		return err
	}
	u, err := s.session(rt)
	if err != nil {
		return err
	}
	if err := checkContentRange(w, r, rt, u); err != nil {
		return err
	}
	body := &bodyReader{r: r.Body}
	if _, err := u.Write(r.Context(), body); err != nil {
		return body.classify(err)
	}
	writeUploadState(w, rt.Repo, u, http.StatusAccepted)
	return nil
}

// finishUpload serves PUT ...?digest=: an optional last chunk, then the digest is
// verified and the blob recorded.
func (s *Server) finishUpload(w http.ResponseWriter, r *http.Request, rt v2Route) error {
	if err := s.authorize(r, rt.Repo, ActionPush); err != nil {
		return err
	}
	u, err := s.session(rt)
	if err != nil {
		return err
	}
	dg := r.URL.Query().Get("digest")
	if dg == "" {
		return newError(CodeDigestInvalid, http.StatusBadRequest, "the digest query parameter is required to finish an upload")
	}
	d, err := meta.ParseDigest(dg)
	if err != nil {
		return err
	}
	if r.ContentLength != 0 {
		if err := checkContentRange(w, r, rt, u); err != nil {
			return err
		}
		body := &bodyReader{r: r.Body}
		if _, err := u.Write(r.Context(), body); err != nil {
			return body.classify(err)
		}
	}
	size, err := u.Commit(r.Context(), digest.Digest(d), -1)
	if err != nil {
		return err
	}
	if err := s.propose.Propose(r.Context(), &meta.PutBlob{Repo: rt.Repo, Digest: d, Size: size, Time: s.cfg.Clock()}); err != nil {
		return err
	}
	blobCreated(w, rt.Repo, d)
	return nil
}

func (s *Server) uploadStatus(w http.ResponseWriter, r *http.Request, rt v2Route) error {
	if err := s.authorize(r, rt.Repo, ActionPush); err != nil {
		return err
	}
	u, err := s.session(rt)
	if err != nil {
		return err
	}
	writeUploadState(w, rt.Repo, u, http.StatusNoContent)
	return nil
}

func (s *Server) cancelUpload(w http.ResponseWriter, r *http.Request, rt v2Route) error {
	if err := s.authorize(r, rt.Repo, ActionPush); err != nil {
		return err
	}
	u, err := s.session(rt)
	if err != nil {
		return err
	}
	if err := u.Cancel(); err != nil {
		return err
	}
	setContentLength(w, 0)
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// bodyReader remembers a failure to read the request body, so that an upload
// cut short by the client is told apart from a failure of our own disk.
type bodyReader struct {
	r   io.Reader
	err error
}

func (b *bodyReader) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if err != nil && err != io.EOF {
		b.err = err
	}
	return n, err
}

func (b *bodyReader) classify(err error) error {
	if b.err != nil {
		return newError(CodeBlobUploadInvalid, http.StatusBadRequest, "reading the request body failed: %v", b.err)
	}
	return err
}
