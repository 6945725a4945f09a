package meta

import (
	"errors"
	"fmt"
	"strings"
)

// Domain errors returned by Apply (as its response value) and by the reads. The api
// package maps each to its OCI error code in one table.
var (
	ErrBlobUnknown         = errors.New("meta: blob unknown to repository")
	ErrManifestUnknown     = errors.New("meta: manifest unknown")
	ErrManifestBlobUnknown = errors.New("meta: manifest references unknown blob")
	ErrNameUnknown         = errors.New("meta: repository unknown")
)

// domainCodes name the domain errors for transport between nodes: a follower
// that forwards a command to the leader gets the refusal back as a code and
// rebuilds the same sentinel, so its client sees the same answer.
var domainCodes = map[string]error{
	"blob_unknown":          ErrBlobUnknown,
	"manifest_unknown":      ErrManifestUnknown,
	"manifest_blob_unknown": ErrManifestBlobUnknown,
	"name_unknown":          ErrNameUnknown,
	"user_unknown":          ErrUserUnknown,
	"project_unknown":       ErrProjectUnknown,
	"workspace_unknown":     ErrWorkspaceUnknown,
	"robot_unknown":         ErrRobotUnknown,
	"member_unknown":        ErrMemberUnknown,
	"exists":                ErrExists,
	"conflict":              ErrConflict,
	"invalid":               ErrInvalid,
	"trash_unknown":         ErrTrashUnknown,
	"gc_run_unknown":        ErrGCRunUnknown,
}

// ErrorCode returns the transport code of a domain error, or "" for any other error.
func ErrorCode(err error) string {
	for code, target := range domainCodes {
		if errors.Is(err, target) {
			return code
		}
	}
	return ""
}

// ErrorFromCode rebuilds a domain error from its code and the full message that
// Error() returned on the other node. An unknown code gives a plain error.
func ErrorFromCode(code, msg string) error {
	target, ok := domainCodes[code]
	if !ok {
		return errors.New(msg)
	}
	detail := strings.TrimPrefix(msg, target.Error())
	detail = strings.TrimPrefix(detail, ": ")
	if detail == "" {
		return target
	}
	return fmt.Errorf("%w: %s", target, detail)
}
