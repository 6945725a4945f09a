package blobstore

import (
	"context"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/opencontainers/go-digest"
)

// Commit turns the session into blob expected and returns its size. The digest is
// checked against the hash computed while the bytes streamed in; expectedSize, when
// not negative (-1 = unknown), against the bytes received. Then the data file is
// fsynced, renamed to its blob path and the directory fsynced, and the session is
// removed. If the blob is already stored, the upload is verified and discarded.
//
// A malformed or unsupported expected digest (ErrDigestInvalid, ErrDigestUnsupported)
// or a size mismatch (ErrSizeInvalid) leaves the session as it was. Content that does
// not match expected is ErrDigestInvalid and removes the session: nothing is left
// behind. Any other failure before the rename leaves the session intact for a retry.
// ErrUploadBusy if another operation runs on the session.
func (u *Upload) Commit(ctx context.Context, expected digest.Digest, expectedSize int64) (int64, error) {
	if err := u.begin(); err != nil {
		return 0, fmt.Errorf("commit upload %s: %w", u.id, err)
	}
	defer u.end()
	start := time.Now()
	alg, want, err := parseDigest(expected)
	if err != nil {
		return 0, fmt.Errorf("commit upload %s: %w", u.id, err)
	}
	size := u.size.Load()
	if expectedSize >= 0 && expectedSize != size {
		return 0, fmt.Errorf("commit upload %s: %w: received %d bytes, want %d", u.id, ErrSizeInvalid, size, expectedSize)
	}
	got, err := u.sum(ctx, alg, size)
	if err != nil {
		return 0, fmt.Errorf("commit upload %s: %w", u.id, err)
	}
	if got != want {
		if err := u.remove(); err != nil {
			u.s.log.Error("blobstore: remove mismatched upload", "id", u.id, "err", err)
		}
		return 0, fmt.Errorf("commit upload %s: %w: content is %s:%s, want %s", u.id, ErrDigestInvalid, alg, got, expected)
	}
	if err := u.install(alg, want, size); err != nil {
		return 0, fmt.Errorf("commit upload %s: %w", u.id, err)
	}
	u.s.m.committed.Inc()
	u.s.m.commitDuration.Observe(time.Since(start).Seconds())
	return size, nil
}

// sum returns the hex digest of the session's content for alg; op must be held.
//
// sha256, and sha512 for a session that declared it or is at most smallLimit bytes,
// come from the state hashed while streaming. A session that did not declare sha512
// and grew past smallLimit stopped hashing sha512 (see smallLimit: doing it for every
// upload would halve large-push throughput, and a client naming sha512 only at the
// final PUT is rare). That case alone reads the file back once; the bytes are counted
// in berth_blobstore_rehash_bytes_total.
func (u *Upload) sum(ctx context.Context, alg digest.Algorithm, size int64) (string, error) {
	switch {
	case alg == digest.SHA256:
		return hex.EncodeToString(u.h256.Sum(nil)), nil
	case alg == digest.SHA512 && u.h512 != nil:
		return hex.EncodeToString(u.h512.Sum(nil)), nil
	}
	u.s.log.Info("blobstore: re-reading upload to verify an undeclared sha512 digest", "id", u.id, "bytes", size)
	f, err := os.Open(filepath.Join(u.dir, dataName))
	if err != nil {
		return "", fmt.Errorf("rehash: %w", err)
	}
	defer f.Close()
	buf := u.s.bufs.Get().(*[]byte)
	defer u.s.bufs.Put(buf)
	h := sha512.New()
	n, err := io.CopyBuffer(h, &ctxReader{ctx: ctx, r: io.LimitReader(f, size)}, *buf)
	u.s.m.rehashBytes.Add(float64(n))
	if err == nil && n != size {
		err = fmt.Errorf("data file has %d bytes, want %d", n, size)
	}
	if err != nil {
		return "", fmt.Errorf("rehash: %w", err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// ctxReader stops reading once ctx is done.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c *ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// install moves the verified data file to its blob path and removes the session; op
// must be held. The file is fsynced before the rename and the directory after it, so
// the blob is durable when install returns, and a reader never sees it incomplete. A
// blob already stored with the same size is kept and the upload discarded (same digest,
// same bytes; written once). One with another size is a damaged file and is replaced:
// rename(2) swaps it atomically and open readers keep the old one.
func (u *Upload) install(alg digest.Algorithm, hex string, size int64) error {
	dst := u.s.blobPath(alg, hex)
	data := filepath.Join(u.dir, dataName)
	if fi, err := os.Stat(dst); err == nil && fi.Mode().IsRegular() {
		if fi.Size() == size {
			if err := u.remove(); err != nil {
				u.s.log.Error("blobstore: remove upload of a stored blob", "id", u.id, "err", err)
			}
			return nil
		}
		u.s.log.Warn("blobstore: replacing stored blob of wrong size", "blob", dst, "size", fi.Size(), "want", size)
	}
	if err := u.s.syncFile(data); err != nil {
		return fmt.Errorf("sync data: %w", err)
	}
	err := u.s.rename(data, dst)
	if errors.Is(err, fs.ErrNotExist) {
		// The prefix directory was removed since Open created it.
		if err = u.s.mkdirSynced(filepath.Dir(dst)); err == nil {
			err = u.s.rename(data, dst)
		}
	}
	if err != nil {
		return fmt.Errorf("rename into place: %w", err)
	}
	// From here the session has no data file: whatever happens, it is gone.
	err = u.s.syncDir(filepath.Dir(dst))
	if rerr := u.remove(); rerr != nil {
		u.s.log.Error("blobstore: remove committed upload", "id", u.id, "err", rerr)
	}
	if err != nil {
		return fmt.Errorf("sync blob directory: %w", err)
	}
	return nil
}
