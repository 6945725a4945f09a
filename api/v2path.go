package api

import (
	"errors"
	"strings"

	"github.com/berth-registry/berth/meta"
)

// routeKind is the endpoint of the OCI distribution API a /v2/ path names.
type routeKind int

const (
	routeBase        routeKind = iota + 1 // /v2/
	routeCatalog                          // /v2/_catalog
	routeTagsList                         // /v2/<name>/tags/list
	routeManifest                         // /v2/<name>/manifests/<reference>
	routeBlob                             // /v2/<name>/blobs/<digest>
	routeUploadStart                      // /v2/<name>/blobs/uploads/
	routeUpload                           // /v2/<name>/blobs/uploads/<id>
	routeReferrers                        // /v2/<name>/referrers/<digest>
)

// String returns a short name of the kind, fit for a metrics label.
func (k routeKind) String() string {
	switch k {
	case routeBase:
		return "base"
	case routeCatalog:
		return "catalog"
	case routeTagsList:
		return "tags_list"
	case routeManifest:
		return "manifest"
	case routeBlob:
		return "blob"
	case routeUploadStart:
		return "upload_start"
	case routeUpload:
		return "upload"
	case routeReferrers:
		return "referrers"
	}
	return "unknown"
}

// v2Route is a parsed /v2/ path. Repo is a valid repository name (empty for the
// base and catalog). Ref is a valid tag or digest for manifests, a valid digest
// for blobs and referrers (meta.ParseDigest accepts it), and the upload id for
// routeUpload (its characters checked, not its meaning); empty otherwise.
type v2Route struct {
	Kind routeKind
	Repo string
	Ref  string
}

// Limits of the OCI distribution spec.
const (
	maxRepoNameLen = 255 // bytes of a repository name, slashes included
	maxTagLen      = 128
	maxUploadIDLen = 256
)

// parseV2Path parses the part of a request path after "/v2" (it begins with "/"),
// as net/url decoded it into URL.Path: "/", "/_catalog", or
// "/<name>/{tags/list, manifests/<ref>, blobs/<digest>, blobs/uploads/[<id>],
// referrers/<digest>}". Repository names may themselves contain "blobs",
// "manifests" or "tags" components, so the endpoint is found from the right end:
// "/a/blobs/b/manifests/latest" is the manifest "latest" of "a/blobs/b".
//
// Errors, all *apiError: errNotFound (404 NOT_FOUND) for a path that is no
// endpoint, whatever its name; errNameInvalid (400 NAME_INVALID) for an endpoint
// path with an invalid name; errDigestInvalid (400 DIGEST_INVALID) for a reference
// with a ':' that is not a digest Berth accepts (the conformance suite PUTs
// "sha256:baddigeststring" and expects 400, run.go "invalid-digest-format"); and
// errTagInvalid (400 TAG_INVALID) for any other invalid reference;
// errUploadUnknown (404 BLOB_UPLOAD_UNKNOWN) for an upload id that cannot be one
// of ours. The name is checked before the reference.
func parseV2Path(rest string) (v2Route, error) {
	switch rest {
	case "/":
		return v2Route{Kind: routeBase}, nil
	case "/_catalog":
		return v2Route{Kind: routeCatalog}, nil
	}
	p, ok := strings.CutPrefix(rest, "/")
	if !ok {
		return v2Route{}, errNotFound
	}
	// p = <name>/<kind>/<last>; an upload adds a "blobs" before "uploads".
	i := strings.LastIndexByte(p, '/')
	if i < 0 {
		return v2Route{}, errNotFound
	}
	head, last := p[:i], p[i+1:]
	j := strings.LastIndexByte(head, '/')
	if j < 0 {
		return v2Route{}, errNotFound
	}
	name, kind := head[:j], head[j+1:]

	var rt v2Route
	switch kind {
	case "tags":
		if last != "list" {
			return v2Route{}, errNotFound
		}
		rt = v2Route{Kind: routeTagsList}
	case "manifests":
		rt = v2Route{Kind: routeManifest, Ref: last}
	case "blobs":
		if last == "uploads" {
			rt = v2Route{Kind: routeUploadStart}
		} else {
			rt = v2Route{Kind: routeBlob, Ref: last}
		}
	case "referrers":
		rt = v2Route{Kind: routeReferrers, Ref: last}
	case "uploads":
		n, ok := strings.CutSuffix(name, "/blobs")
		if !ok {
			return v2Route{}, errNotFound
		}
		name = n
		if last == "" {
			rt = v2Route{Kind: routeUploadStart}
		} else {
			rt = v2Route{Kind: routeUpload, Ref: last}
		}
	default:
		return v2Route{}, errNotFound
	}
	if rt.Kind != routeTagsList && rt.Kind != routeUploadStart && last == "" {
		// "/<name>/manifests/" and the like: no reference, no endpoint.
		return v2Route{}, errNotFound
	}
	if !validRepoName(name) {
		return v2Route{}, errNameInvalid.withDetail(map[string]string{"name": clipInput(name)})
	}
	rt.Repo = name

	switch rt.Kind {
	case routeManifest:
		if strings.IndexByte(rt.Ref, ':') >= 0 {
			if _, err := meta.ParseDigest(rt.Ref); err != nil {
				return v2Route{}, digestRefError(rt.Ref, err)
			}
		} else if !validTag(rt.Ref) {
			return v2Route{}, errTagInvalid.withDetail(map[string]string{"tag": clipInput(rt.Ref)})
		}
	case routeBlob, routeReferrers:
		if _, err := meta.ParseDigest(rt.Ref); err != nil {
			return v2Route{}, digestRefError(rt.Ref, err)
		}
	case routeUpload:
		if !validUploadID(rt.Ref) {
			return v2Route{}, errUploadUnknown
		}
	}
	return rt, nil
}

// digestRefError is errDigestInvalid with meta's reason as its message.
func digestRefError(ref string, err error) *apiError {
	e := errDigestInvalid.withCause(err)
	for _, s := range []error{meta.ErrDigestInvalid, meta.ErrDigestUnsupported} {
		if errors.Is(err, s) {
			if _, why, ok := strings.Cut(err.Error(), s.Error()+": "); ok {
				e.Message = why
			}
		}
	}
	e.Detail = map[string]string{"digest": clipInput(ref)}
	return e
}

// clipInput bounds client input echoed in an error detail.
func clipInput(s string) string {
	const max = 256
	if len(s) > max {
		return s[:max] + "..."
	}
	return s
}

// validRepoName reports whether s is a repository name of the OCI distribution
// spec: at most 255 bytes matching
//
//	[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(\/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*
//
// It is hand-written because it runs on every request; a test checks it against
// that regular expression.
func validRepoName(s string) bool {
	n := len(s)
	if n == 0 || n > maxRepoNameLen {
		return false
	}
	i := 0
	for {
		// A component: a run of [a-z0-9], then (separator, run)*.
		if !lowerAlnum(s[i]) {
			return false
		}
		for i < n && lowerAlnum(s[i]) {
			i++
		}
		for i < n && s[i] != '/' {
			switch s[i] {
			case '.':
				i++
			case '_':
				i++
				if i < n && s[i] == '_' {
					i++
				}
			case '-':
				for i < n && s[i] == '-' {
					i++
				}
			default:
				return false
			}
			if i == n || !lowerAlnum(s[i]) {
				return false
			}
			for i < n && lowerAlnum(s[i]) {
				i++
			}
		}
		if i == n {
			return true
		}
		i++ // the '/'
		if i == n {
			return false
		}
	}
}

// validTag reports whether s is a tag: [a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}.
func validTag(s string) bool {
	if s == "" || len(s) > maxTagLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_'
		if i > 0 {
			ok = ok || c == '.' || c == '-'
		}
		if !ok {
			return false
		}
	}
	return true
}

// validUploadID checks only the characters of an upload id ([A-Za-z0-9._-], at
// most 256 bytes), so that it can be put into a Location header and a file name
// safely; what the id means is the upload handlers' business.
func validUploadID(s string) bool {
	if s == "" || len(s) > maxUploadIDLen || s == "." || s == ".." {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

func lowerAlnum(c byte) bool { return c >= 'a' && c <= 'z' || c >= '0' && c <= '9' }
