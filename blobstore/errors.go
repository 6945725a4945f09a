package blobstore

import "errors"

// Errors returned by the store, wrapped with the step that failed; test with
// errors.Is. The api package maps each to its OCI error code in one table.
var (
	// ErrBlobUnknown: no blob with that digest is stored on this node.
	ErrBlobUnknown = errors.New("blobstore: blob unknown")
	// ErrUploadUnknown: no such upload session (never created, committed, cancelled,
	// expired, or found damaged after a crash and removed).
	ErrUploadUnknown = errors.New("blobstore: upload unknown")
	// ErrUploadInvalid: the upload id is malformed, or NewUpload's id is taken.
	ErrUploadInvalid = errors.New("blobstore: upload invalid")
	// ErrDigestInvalid: the digest is malformed, or the content does not match it.
	ErrDigestInvalid = errors.New("blobstore: digest invalid")
	// ErrDigestUnsupported: the digest names an algorithm other than sha256 or
	// sha512. It also matches ErrDigestInvalid under errors.Is, because OCI answers
	// both with DIGEST_INVALID; test ErrDigestUnsupported first to tell them apart.
	ErrDigestUnsupported error = &childError{"blobstore: digest algorithm unsupported", ErrDigestInvalid}
	// ErrSizeInvalid: the size given to Commit is not the number of bytes received.
	ErrSizeInvalid = errors.New("blobstore: size invalid")
	// ErrUploadBusy: another Write, Commit or Cancel is running on the session.
	ErrUploadBusy = errors.New("blobstore: upload busy")
	// ErrClosed: the store has been closed.
	ErrClosed = errors.New("blobstore: closed")
)

// childError is a sentinel that is also an instance of a more general one.
type childError struct {
	msg    string
	parent error
}

func (e *childError) Error() string { return e.msg }
func (e *childError) Unwrap() error { return e.parent }
