package api

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/julienschmidt/httprouter"
	"github.com/opencontainers/go-digest"

	"github.com/berth-registry/berth/meta"
)

// Backup routes: `berth backup` downloads a consistent metadata snapshot, then
// every blob it references, through these two cloud-admin routes. The cluster
// keeps serving meanwhile: the snapshot is a Pebble snapshot at one applied
// index, and blobs are immutable.
//
//	GET /api/v1/backup/snapshot        the metadata, in the FSM's snapshot format (as Raft snapshots);
//	                                   chunked, with the trailer X-Berth-Snapshot-Sha256 over the body
//	GET /api/v1/backup/blobs/{digest}  one recorded blob's bytes (fetched from a peer when not local)

// Backup is what the backup routes need of the node.
type Backup interface {
	// WriteSnapshot writes a consistent copy of the whole metadata state,
	// applied index included, to w.
	WriteSnapshot(ctx context.Context, w io.Writer) error
}

// SnapshotDigestTrailer is the trailer of GET /api/v1/backup/snapshot: the
// hex SHA-256 of the body, sent after it, so a client can tell a complete
// snapshot from a cut one.
const SnapshotDigestTrailer = "X-Berth-Snapshot-Sha256"

func backupAdminOnly(p *Principal) error {
	if !p.CloudAdmin {
		return mgmtDenied("backups are for cloud admins")
	}
	return nil
}

// getBackupSnapshot streams the metadata snapshot. An error after the first
// byte aborts the response, so the client sees a cut stream (and no trailer),
// never a short snapshot that looks complete.
func (s *Server) getBackupSnapshot(w http.ResponseWriter, r *http.Request, p *Principal, _ httprouter.Params) error {
	if err := backupAdminOnly(p); err != nil {
		return err
	}
	if s.backup == nil {
		return newError(CodeUnsupported, http.StatusNotImplemented, "this node does not serve backups")
	}
	h := w.Header()
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Trailer", SnapshotDigestTrailer)
	sum := sha256.New()
	cw := &countingWriter{w: io.MultiWriter(w, sum)}
	start := time.Now()
	err := s.backup.WriteSnapshot(r.Context(), cw)
	ev := meta.AuditEvent{User: p.Name, Action: "backup.snapshot", Status: http.StatusOK,
		Detail: fmt.Sprintf("%d bytes in %s", cw.n, time.Since(start).Round(time.Millisecond))}
	if err != nil {
		ev.Outcome, ev.Detail = meta.AuditFailure, err.Error()
		s.recordAudit(r, ev)
		if cw.n == 0 {
			return err
		}
		s.log.Error("backup snapshot", "id", r.Header.Get("X-Request-Id"), "err", err)
		panic(http.ErrAbortHandler)
	}
	h.Set(SnapshotDigestTrailer, hex.EncodeToString(sum.Sum(nil)))
	s.recordAudit(r, ev)
	return nil
}

// getBackupBlob serves one recorded blob to a cloud admin.
func (s *Server) getBackupBlob(w http.ResponseWriter, r *http.Request, p *Principal, ps httprouter.Params) error {
	if err := backupAdminOnly(p); err != nil {
		return err
	}
	d, err := meta.ParseDigest(ps.ByName("digest"))
	if err != nil {
		return mgmtInvalid("invalid digest")
	}
	if _, err := meta.GetBlob(s.meta, d); err != nil {
		if errors.Is(err, meta.ErrBlobUnknown) {
			return newError(CodeBlobUnknown, http.StatusNotFound, "blob unknown to the cluster: %s", d)
		}
		return err
	}
	f, err := s.blobs.Open(digest.Digest(d))
	if err != nil {
		return newError(CodeBlobUnknown, http.StatusNotFound, "no live node holds blob %s", d)
	}
	defer f.Close()
	h := w.Header()
	h.Set("Docker-Content-Digest", string(d))
	h.Set("Content-Type", "application/octet-stream")
	http.ServeContent(w, r, "", time.Time{}, f)
	return nil
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
