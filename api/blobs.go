package api

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/berth-registry/berth/meta"
)

// getBlob serves GET and HEAD of a blob. The blob must be linked to the
// repository: knowing a digest grants nothing. Range requests (206, 416) and
// sendfile come from http.ServeContent over the blob file.
func (s *Server) getBlob(w http.ResponseWriter, r *http.Request, rt v2Route) error {
	if err := s.authorize(r, rt.Repo, ActionPull); err != nil {
		return err
	}
	d := meta.Digest(rt.Ref)
	// Garbage collection learns of the check before the metadata is read: a
	// blob checked while a run is sweeping is answered from the state after
	// the sweep, so a client never builds on a blob that is going away.
	if t, ok := s.blobs.(BlobToucher); ok {
		t.Touch(r.Context(), digest.Digest(d))
	}
	err := s.fresh(r.Context(), func() error {
		_, err := meta.GetLinkedBlob(s.meta, rt.Repo, d)
		return err
	})
	if err != nil {
		if !errors.Is(err, meta.ErrBlobUnknown) {
			return err
		}
		// A manifest of the repository can be read as a blob, as in Distribution.
		info, content, merr := meta.GetManifest(s.meta, rt.Repo, d)
		if merr != nil {
			return err
		}
		w.Header().Set("Docker-Content-Digest", rt.Ref)
		w.Header().Set("Content-Type", info.MediaType)
		w.Header().Set("Etag", `"`+rt.Ref+`"`)
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(content))
		return nil
	}
	f, err := s.blobs.Open(digest.Digest(d))
	if err != nil {
		return fmt.Errorf("open blob %s: %w", d, err)
	}
	defer f.Close()
	h := w.Header()
	h.Set("Docker-Content-Digest", rt.Ref)
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Etag", `"`+rt.Ref+`"`)
	h.Set("Cache-Control", "max-age=31536000")
	http.ServeContent(w, r, "", time.Time{}, f)
	return nil
}

// BlobToucher is implemented by Blobs that garbage collection must hear from
// when a client checks or reads a blob (HEAD, GET): a run in progress keeps a
// touched blob, and Touch waits while a run's sweep is committing.
type BlobToucher interface {
	Touch(ctx context.Context, d digest.Digest)
}

// deleteBlob moves the blob's link to the workspace's trash (a soft delete:
// the blob is 404 in the repository, restorable until garbage collection
// reclaims it); the bytes stay until garbage collection finds nothing else
// uses them.
func (s *Server) deleteBlob(w http.ResponseWriter, r *http.Request, rt v2Route) error {
	if err := s.authorize(r, rt.Repo, ActionDelete); err != nil {
		return err
	}
	err := s.propose.Propose(r.Context(), &meta.UnlinkBlob{Repo: rt.Repo, Digest: meta.Digest(rt.Ref), By: s.callerName(r), Time: s.cfg.Clock()})
	if err != nil {
		return err
	}
	setContentLength(w, 0)
	w.WriteHeader(http.StatusAccepted)
	return nil
}
