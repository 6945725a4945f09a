package blobstore

import (
	"fmt"
	"path/filepath"
	"strings"

	"github.com/opencontainers/go-digest"
)

// hexLen is the length of the hex part of a digest for each supported algorithm.
var hexLen = map[digest.Algorithm]int{
	digest.SHA256: 64,
	digest.SHA512: 128,
}

// parseDigest splits d and checks it strictly before any path is built from it: the
// algorithm must be sha256 or sha512 and the hex part exactly its length in
// lowercase hex. A well-formed name of another algorithm (per the OCI grammar) is
// ErrDigestUnsupported; anything else is ErrDigestInvalid.
func parseDigest(d digest.Digest) (digest.Algorithm, string, error) {
	alg, hex, ok := strings.Cut(string(d), ":")
	if !ok {
		return "", "", fmt.Errorf("%w: %q", ErrDigestInvalid, d)
	}
	n, supported := hexLen[digest.Algorithm(alg)]
	if !supported {
		if validAlgorithmName(alg) {
			return "", "", fmt.Errorf("%w: %q", ErrDigestUnsupported, alg)
		}
		return "", "", fmt.Errorf("%w: %q", ErrDigestInvalid, d)
	}
	if len(hex) != n || !isLowerHex(hex) {
		return "", "", fmt.Errorf("%w: %q", ErrDigestInvalid, d)
	}
	return digest.Algorithm(alg), hex, nil
}

// checkAlgorithm accepts the algorithms a session can be declared with.
func checkAlgorithm(alg digest.Algorithm) error {
	if _, ok := hexLen[alg]; ok {
		return nil
	}
	if validAlgorithmName(string(alg)) {
		return fmt.Errorf("%w: %q", ErrDigestUnsupported, alg)
	}
	return fmt.Errorf("%w: algorithm %q", ErrDigestInvalid, alg)
}

// validAlgorithmName reports whether s matches the OCI image-spec grammar
// algorithm-component ([a-z0-9]+) joined by algorithm-separator ([+._-]).
func validAlgorithmName(s string) bool {
	if s == "" {
		return false
	}
	prevSep := true // no separator at the start
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z' || c >= '0' && c <= '9':
			prevSep = false
		case c == '+' || c == '.' || c == '_' || c == '-':
			if prevSep {
				return false
			}
			prevSep = true
		default:
			return false
		}
	}
	return !prevSep
}

func isLowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// blobPath is where a digest that passed parseDigest lives.
func (s *Store) blobPath(alg digest.Algorithm, hex string) string {
	return filepath.Join(s.blobsDir, string(alg), hex[:2], hex)
}

// maxIDLen bounds an upload id (a directory name; well below NAME_MAX).
const maxIDLen = 128

// checkID accepts upload ids of 1 to maxIDLen characters from [A-Za-z0-9._-], other
// than "." and "..". Such an id is a single path element, so a session directory
// never escapes <root>/uploads.
func checkID(id string) error {
	if id == "" || len(id) > maxIDLen || id == "." || id == ".." {
		return fmt.Errorf("%w: id %.140q", ErrUploadInvalid, id)
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return fmt.Errorf("%w: id %.140q", ErrUploadInvalid, id)
		}
	}
	return nil
}
