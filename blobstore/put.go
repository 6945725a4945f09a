package blobstore

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"

	"github.com/opencontainers/go-digest"
)

// putPrefix starts the directory name of a one-shot Put session. "~" is not allowed
// in upload ids, so these never collide with a caller's session, and Open removes
// them after a crash.
const putPrefix = "~put-"

// Put stores all of r as blob expected in one step (a monolithic upload, a blob
// fetched from a peer) and returns its size. It runs a private session (Write then
// Commit) that is never resumable, so it skips the per-Write state file and fsync;
// on any error the session and its bytes are removed: nothing is left behind. The
// expected algorithm is hashed while streaming, so Put never re-reads. Errors are
// those of Write and Commit; a malformed or unsupported digest fails before r is read.
func (s *Store) Put(ctx context.Context, r io.Reader, expected digest.Digest) (int64, error) {
	if err := s.enter(); err != nil {
		return 0, fmt.Errorf("put %s: %w", expected, err)
	}
	defer s.exit()
	alg, _, err := parseDigest(expected)
	if err != nil {
		return 0, fmt.Errorf("put %s: %w", expected, err)
	}
	u, err := s.create(putPrefix+rand.Text(), true, []digest.Algorithm{alg})
	if err != nil {
		return 0, fmt.Errorf("put %s: %w", expected, err)
	}
	if _, err := u.Write(ctx, r); err != nil {
		u.discard()
		return 0, fmt.Errorf("put %s: %w", expected, err)
	}
	size, err := u.Commit(ctx, expected, -1)
	if err != nil {
		u.discard()
		return 0, fmt.Errorf("put %s: %w", expected, err)
	}
	return size, nil
}

// discard removes a Put session after a failure (it may already be gone).
func (u *Upload) discard() {
	u.op.Lock()
	defer u.op.Unlock()
	if u.gone {
		return
	}
	if err := u.remove(); err != nil {
		u.s.log.Error("blobstore: remove failed put", "dir", u.dir, "err", err)
	}
}
