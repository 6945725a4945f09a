package meta

import "errors"

// Domain errors returned by Apply (as its response value) and by the reads. The api
// package maps each to its OCI error code in one table.
var (
	ErrBlobUnknown         = errors.New("meta: blob unknown to repository")
	ErrManifestUnknown     = errors.New("meta: manifest unknown")
	ErrManifestBlobUnknown = errors.New("meta: manifest references unknown blob")
	ErrNameUnknown         = errors.New("meta: repository unknown")
)
