package blobstore

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/opencontainers/go-digest"
)

// Walk calls fn for every stored blob with its size, sha256 blobs first, each
// algorithm in lexical order of hex. It reads one two-character directory at a time
// and holds no lock, so writes go on meanwhile: a blob committed during the walk may
// or may not be reported, and one deleted during it is skipped. Files under blobs/
// whose names are not valid digests for their place are skipped. Walk stops at the
// first error from fn and returns it. fn must not call Close (Close waits for Walk).
func (s *Store) Walk(fn func(d digest.Digest, size int64) error) error {
	if err := s.enter(); err != nil {
		return fmt.Errorf("walk: %w", err)
	}
	defer s.exit()
	for _, alg := range []digest.Algorithm{digest.SHA256, digest.SHA512} {
		algDir := filepath.Join(s.blobsDir, string(alg))
		prefixes, err := os.ReadDir(algDir)
		if err != nil {
			return fmt.Errorf("walk %s: %w", algDir, err)
		}
		for _, p := range prefixes {
			if !p.IsDir() || len(p.Name()) != 2 || !isLowerHex(p.Name()) {
				continue
			}
			if err := s.walkPrefix(alg, filepath.Join(algDir, p.Name()), p.Name(), fn); err != nil {
				return err
			}
		}
	}
	return nil
}

func (s *Store) walkPrefix(alg digest.Algorithm, dir, prefix string, fn func(digest.Digest, int64) error) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("walk %s: %w", dir, err)
	}
	for _, e := range entries {
		name := e.Name()
		if !e.Type().IsRegular() || len(name) != hexLen[alg] || name[:2] != prefix || !isLowerHex(name) {
			continue
		}
		fi, err := e.Info()
		if errors.Is(err, fs.ErrNotExist) {
			continue // deleted since the listing
		}
		if err != nil {
			return fmt.Errorf("walk %s: %w", dir, err)
		}
		if err := fn(digest.NewDigestFromEncoded(alg, name), fi.Size()); err != nil {
			return err
		}
	}
	return nil
}
