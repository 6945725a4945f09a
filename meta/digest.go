package meta

import (
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// Digest algorithms Berth stores content under. The OCI image spec registers these
// two; anything else is refused with ErrDigestUnsupported.
const (
	SHA256 = "sha256"
	SHA512 = "sha512"
)

var (
	// ErrDigestInvalid means a string is not a well-formed digest, or is a digest of a
	// supported algorithm with an encoded part of the wrong length or alphabet.
	ErrDigestInvalid = errors.New("meta: digest invalid")
	// ErrDigestUnsupported means a well-formed digest of an algorithm Berth does not
	// store ("md5:...", "sha384:...").
	ErrDigestUnsupported = errors.New("meta: digest algorithm unsupported")
)

// Digest is a content digest in its canonical string form, "<algorithm>:<hex>".
// A Digest obtained from ParseDigest or DigestOf is valid; a conversion from an
// unchecked string is not, and its methods then answer for that string as is.
type Digest string

// ParseDigest validates s as "sha256:<64 lowercase hex>" or "sha512:<128 lowercase
// hex>". It returns ErrDigestInvalid (wrapped, with the reason) for anything
// malformed, and ErrDigestUnsupported for a digest that is well-formed by the OCI
// grammar but of another algorithm.
func ParseDigest(s string) (Digest, error) {
	unsupported, why := checkDigest(s)
	switch {
	case why == "":
		return Digest(s), nil
	case unsupported:
		return "", fmt.Errorf("%w: %s", ErrDigestUnsupported, why)
	default:
		return "", fmt.Errorf("%w: %s", ErrDigestInvalid, why)
	}
}

// checkDigest says why s is not a digest Berth accepts ("" when it is) and whether
// that is because of an unsupported algorithm rather than a malformed string. The
// reason quotes (a prefix of) s and is meant for clients.
func checkDigest(s string) (unsupported bool, why string) {
	alg, enc, ok := strings.Cut(s, ":")
	if !ok {
		return false, fmt.Sprintf("%s has no \"<algorithm>:\" prefix", quoteInput(s))
	}
	var want int
	switch alg {
	case SHA256:
		want = sha256.Size * 2
	case SHA512:
		want = sha512.Size * 2
	default:
		// The OCI image spec's grammar: algorithm-component ([+._-] component)*,
		// then ":" and an encoded part of [a-zA-Z0-9=_-]+.
		if !validAlgorithm(alg) || !validEncoded(enc) {
			return false, fmt.Sprintf("%s is not a digest", quoteInput(s))
		}
		return true, fmt.Sprintf("algorithm %s of %s is not supported: use sha256 or sha512", quoteInput(alg), quoteInput(s))
	}
	if len(enc) != want || !isLowerHex(enc) {
		return false, fmt.Sprintf("%s is not a %s digest: want %d lowercase hex characters after \"%s:\"", quoteInput(s), alg, want, alg)
	}
	return false, ""
}

// Algorithm returns the part before the colon ("sha256"), or "" if there is none.
func (d Digest) Algorithm() string {
	alg, _, ok := strings.Cut(string(d), ":")
	if !ok {
		return ""
	}
	return alg
}

// Hex returns the encoded part after the colon, or "" if there is none.
func (d Digest) Hex() string {
	_, enc, _ := strings.Cut(string(d), ":")
	return enc
}

// String returns the digest as is.
func (d Digest) String() string { return string(d) }

// DigestOf returns the digest of b under alg, which must be SHA256 or SHA512; any
// other value is a programming error (algorithms come from parsed digests) and
// panics. It hashes in memory: it is meant for manifests and small documents, not
// for blobs.
func DigestOf(alg string, b []byte) Digest {
	switch alg {
	case SHA256:
		sum := sha256.Sum256(b)
		return Digest(SHA256 + ":" + hex.EncodeToString(sum[:]))
	case SHA512:
		sum := sha512.Sum512(b)
		return Digest(SHA512 + ":" + hex.EncodeToString(sum[:]))
	}
	panic(fmt.Sprintf("meta: DigestOf: unsupported algorithm %q", alg))
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

// validAlgorithm matches [a-z0-9]+([+._-][a-z0-9]+)*.
func validAlgorithm(s string) bool {
	if s == "" {
		return false
	}
	prevSep := true // the first character must not be a separator
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

// validEncoded matches [a-zA-Z0-9=_-]+.
func validEncoded(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '=' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// quoteInput quotes client input for an error message, cut to a length that keeps
// messages readable whatever a client sends.
func quoteInput(s string) string {
	const max = 160
	if len(s) > max {
		return fmt.Sprintf("%q...", s[:max])
	}
	return fmt.Sprintf("%q", s)
}
