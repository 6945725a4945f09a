package api

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strings"

	"github.com/berth-registry/berth/meta"
)

// resolve turns a tag or digest reference into a manifest of repo.
func (s *Server) resolve(ctx context.Context, repo, ref string) (info *meta.ManifestInfo, content []byte, err error) {
	read := func() error {
		d := meta.Digest(ref)
		if !isDigestRef(ref) {
			t, err := meta.GetTag(s.meta, repo, ref)
			if err != nil {
				return err
			}
			d = t.Digest
		}
		info, content, err = meta.GetManifest(s.meta, repo, d)
		return err
	}
	if isDigestRef(ref) {
		// Content by digest never changes: a local hit needs no round trip.
		err = s.fresh(ctx, read)
	} else {
		err = s.linearized(ctx, read)
	}
	return info, content, err
}

func isDigestRef(ref string) bool { return strings.IndexByte(ref, ':') >= 0 }

// getManifest serves GET and HEAD of a manifest by tag or digest: the exact bytes
// that were pushed, with their media type and digest.
func (s *Server) getManifest(w http.ResponseWriter, r *http.Request, rt v2Route) error {
	if err := s.authorize(r, rt.Repo, ActionPull); err != nil {
		return err
	}
	info, content, err := s.resolve(r.Context(), rt.Repo, rt.Ref)
	if err != nil {
		return err
	}
	h := w.Header()
	h.Set("Content-Type", info.MediaType)
	h.Set("Docker-Content-Digest", string(info.Digest))
	h.Set("Etag", `"`+string(info.Digest)+`"`)
	setContentLength(w, int64(len(content)))
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write(content)
	}
	return nil
}

// putManifest validates and stores a manifest. Its 201 is sent only after the
// command is committed and applied; the command itself refuses a manifest whose
// blobs or child manifests the repository does not have, atomically with storing
// it.
func (s *Server) putManifest(w http.ResponseWriter, r *http.Request, rt v2Route) error {
	if err := s.authorize(r, rt.Repo, ActionPush); err != nil {
		return err
	}
	max := s.cfg.MaxManifestBytes
	if r.ContentLength > max {
		return newError(CodeSizeInvalid, http.StatusRequestEntityTooLarge, "manifest of %d bytes is over the limit of %d bytes", r.ContentLength, max)
	}
	var buf bytes.Buffer
	if r.ContentLength > 0 {
		buf.Grow(int(r.ContentLength))
	}
	body := &bodyReader{r: io.LimitReader(r.Body, max+1)}
	if _, err := buf.ReadFrom(body); err != nil {
		return body.classify(err)
	}
	content := buf.Bytes()
	if int64(len(content)) > max {
		return newError(CodeSizeInvalid, http.StatusRequestEntityTooLarge, "manifest is over the limit of %d bytes", max)
	}
	var d meta.Digest
	if isDigestRef(rt.Ref) {
		want := meta.Digest(rt.Ref)
		d = meta.DigestOf(want.Algorithm(), content)
		if d != want {
			return newError(CodeDigestInvalid, http.StatusBadRequest, "manifest digest is %s, not %s as the reference says", d, want)
		}
	} else {
		d = meta.DigestOf("sha256", content)
	}
	m, err := meta.ParseManifest(r.Header.Get("Content-Type"), content)
	if err != nil {
		return err
	}
	var tags []string
	if !isDigestRef(rt.Ref) {
		tags = append(tags, rt.Ref)
	}
	paramTags := r.URL.Query()["tag"]
	for _, t := range paramTags {
		if !validTag(t) {
			return newError(CodeTagInvalid, http.StatusBadRequest, "invalid tag %q", t)
		}
		tags = append(tags, t)
	}
	cmd := &meta.PutManifest{
		By:      s.callerName(r),
		Repo:    rt.Repo,
		Digest:  d,
		Content: content,
		Tags:    tags,
		Time:    s.cfg.Clock(),
		Info:    manifestInfo(m, int64(len(content))),
	}
	if err := s.propose.Propose(r.Context(), cmd); err != nil {
		return err
	}
	h := w.Header()
	h.Set("Location", "/v2/"+rt.Repo+"/manifests/"+string(d))
	h.Set("Docker-Content-Digest", string(d))
	if cmd.Info.Subject != "" {
		h.Set("OCI-Subject", string(cmd.Info.Subject))
	}
	for _, t := range paramTags {
		h.Add("OCI-Tag", t)
	}
	setContentLength(w, 0)
	w.WriteHeader(http.StatusCreated)
	return nil
}

// manifestInfo derives what is recorded about a parsed manifest: the blobs and
// child manifests that must exist (non-distributable layers are exempt), its
// subject and its artifact type for the referrers API.
func manifestInfo(m *meta.Manifest, size int64) meta.ManifestInfo {
	info := meta.ManifestInfo{
		MediaType:    m.MediaType,
		Size:         size,
		ArtifactType: m.ReferrerArtifactType(),
		Annotations:  m.Annotations,
	}
	if m.Subject != nil {
		info.Subject = m.Subject.Digest
	}
	seen := map[meta.Digest]bool{}
	add := func(d meta.Descriptor) {
		if d.Foreign() || seen[d.Digest] {
			return
		}
		seen[d.Digest] = true
		info.Blobs = append(info.Blobs, d.Digest)
	}
	if m.Config != nil {
		add(*m.Config)
	}
	for _, l := range m.Layers {
		add(l)
	}
	for _, c := range m.Manifests {
		if !seen[c.Digest] {
			seen[c.Digest] = true
			info.Manifests = append(info.Manifests, c.Digest)
		}
	}
	return info
}

// deleteManifest deletes a manifest by digest (with its tags) or one tag. It
// is a soft delete: what is deleted moves to the workspace's trash, is 404 at
// once on every node, and can be restored until garbage collection reclaims
// it (meta/trash.go).
func (s *Server) deleteManifest(w http.ResponseWriter, r *http.Request, rt v2Route) error {
	if err := s.authorize(r, rt.Repo, ActionDelete); err != nil {
		return err
	}
	var cmd meta.Command
	if isDigestRef(rt.Ref) {
		cmd = &meta.DeleteManifest{Repo: rt.Repo, Digest: meta.Digest(rt.Ref), By: s.callerName(r), Time: s.cfg.Clock()}
	} else {
		cmd = &meta.DeleteTag{Repo: rt.Repo, Tag: rt.Ref, By: s.callerName(r), Time: s.cfg.Clock()}
	}
	if err := s.propose.Propose(r.Context(), cmd); err != nil {
		return err
	}
	setContentLength(w, 0)
	w.WriteHeader(http.StatusAccepted)
	return nil
}
