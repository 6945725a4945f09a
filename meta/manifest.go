package meta

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"reflect"
	"strings"
	"unicode/utf8"
)

// Manifest media types. Berth stores the four schema 2 / OCI kinds; schema 1 is
// recognised only to be refused with a clear message.
const (
	MediaTypeOCIManifest         = "application/vnd.oci.image.manifest.v1+json"
	MediaTypeOCIIndex            = "application/vnd.oci.image.index.v1+json"
	MediaTypeDockerManifest      = "application/vnd.docker.distribution.manifest.v2+json"
	MediaTypeDockerManifestList  = "application/vnd.docker.distribution.manifest.list.v2+json"
	MediaTypeDockerSchema1       = "application/vnd.docker.distribution.manifest.v1+json"
	MediaTypeDockerSchema1Signed = "application/vnd.docker.distribution.manifest.v1+prettyjws"
)

var (
	// ErrManifestInvalid means the document is not a valid manifest of the kind it
	// claims (or of any kind): malformed JSON, a contradictory type, a bad
	// descriptor. The wrapping text after the sentinel says what and where, and is
	// meant for the client.
	ErrManifestInvalid = errors.New("meta: manifest invalid")
	// ErrManifestUnsupported means a manifest kind Berth does not store: Docker
	// schema 1, or a media type that is not one of the four manifest kinds.
	ErrManifestUnsupported = errors.New("meta: manifest media type unsupported")
)

// Platform is the platform of an index entry.
type Platform struct {
	Architecture string   `json:"architecture"`
	OS           string   `json:"os"`
	OSVersion    string   `json:"os.version,omitempty"`
	OSFeatures   []string `json:"os.features,omitempty"`
	Variant      string   `json:"variant,omitempty"`
	Features     []string `json:"features,omitempty"`
}

// Descriptor points at content by digest. Its JSON form is the OCI descriptor's,
// without the embedded data (which ParseManifest checks and drops).
type Descriptor struct {
	MediaType    string            `json:"mediaType"`
	Digest       Digest            `json:"digest"`
	Size         int64             `json:"size"`
	URLs         []string          `json:"urls,omitempty"`
	ArtifactType string            `json:"artifactType,omitempty"`
	Annotations  map[string]string `json:"annotations,omitempty"`
	Platform     *Platform         `json:"platform,omitempty"`
}

// Foreign reports whether the descriptor is a non-distributable layer (OCI's
// "nondistributable" layer types, Docker's foreign layer): such content is fetched
// from its URLs by clients and need not exist in the registry.
func (d Descriptor) Foreign() bool {
	switch d.MediaType {
	case "application/vnd.oci.image.layer.nondistributable.v1.tar",
		"application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
		"application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
		"application/vnd.docker.image.rootfs.foreign.diff.tar.gzip":
		return true
	}
	return false
}

// Manifest is what Berth needs to know about a pushed manifest: its kind and the
// content it references. The pushed bytes themselves are kept by the caller, as
// they are: the digest is of those bytes, and parsing never re-serializes them.
type Manifest struct {
	// MediaType is the resolved media type: one of the four MediaType* manifest
	// kinds, from the body's mediaType, else the Content-Type, else inferred.
	MediaType string
	// IsIndex is true for an OCI index or a Docker manifest list.
	IsIndex bool
	// Config is set for image manifests, nil for indexes.
	Config *Descriptor
	// Layers are the layers of an image manifest (possibly none).
	Layers []Descriptor
	// Manifests are the entries of an index (possibly none).
	Manifests []Descriptor
	// Subject is the manifest this one refers to (referrers API), or nil.
	Subject *Descriptor
	// ArtifactType is the document's artifactType field, or "".
	ArtifactType string
	// Annotations are the document's annotations, or nil.
	Annotations map[string]string
}

// ReferrerArtifactType is the artifactType the referrers API lists for this
// manifest: its artifactType, else (image manifests) its config's media type.
func (m *Manifest) ReferrerArtifactType() string {
	if m.ArtifactType != "" {
		return m.ArtifactType
	}
	if m.Config != nil {
		return m.Config.MediaType
	}
	return ""
}

// maxJSONDepth bounds the nesting of a manifest document. Real manifests nest four
// levels (document, layers, descriptor, platform features); the bound leaves room
// for extension fields and stops pathological documents before they are decoded.
const maxJSONDepth = 32

// ParseManifest parses and validates a manifest pushed with the given Content-Type
// header value (parameters such as "; charset=utf-8" are ignored). It returns
// ErrManifestUnsupported for Docker schema 1 and for media types that are not
// manifests Berth stores, and ErrManifestInvalid for everything else that is wrong;
// both wrapped with a message for the client that says what and where.
//
// The rules:
//   - the body is one UTF-8 JSON object; no object has a key twice, and the fields
//     Berth reads are spelt exactly ("Layers" is refused rather than read as
//     "layers" the way encoding/json would, so that no other parser can see a
//     different set of references than Berth does);
//   - the media type comes from the body's mediaType; a Content-Type that is set,
//     is not generic (application/json, application/octet-stream) and differs is
//     a contradiction. Without a body mediaType, the Content-Type is used; without
//     either, a document with "manifests" is an OCI index and one with "config" an
//     OCI image manifest. Docker schema 2 documents must carry their mediaType;
//   - schemaVersion is 2; an index has no config or layers and an image manifest
//     no manifests; an image manifest has a config;
//   - every descriptor has a media type (type/subtype), a sha256 or sha512 digest
//     and a size >= 0; embedded data must match them; a platform names its os and
//     architecture.
func ParseManifest(contentType string, body []byte) (*Manifest, error) {
	ct := baseMediaType(contentType)
	if ct == MediaTypeDockerSchema1 || ct == MediaTypeDockerSchema1Signed {
		return nil, errSchema1()
	}
	if len(body) == 0 {
		return nil, manifestInvalidf("empty body")
	}
	if !utf8.Valid(body) {
		return nil, manifestInvalidf("body is not UTF-8")
	}
	if err := checkJSONShape(body); err != nil {
		return nil, err
	}
	var doc wireManifest
	if err := json.Unmarshal(body, &doc); err != nil {
		return nil, manifestInvalidf("%s", jsonProblem(err))
	}
	if doc.MediaType == MediaTypeDockerSchema1 || doc.MediaType == MediaTypeDockerSchema1Signed ||
		doc.SchemaVersion != nil && *doc.SchemaVersion == 1 {
		return nil, errSchema1()
	}
	if doc.SchemaVersion == nil {
		return nil, manifestInvalidf("schemaVersion is missing: want 2")
	}
	if *doc.SchemaVersion != 2 {
		return nil, manifestInvalidf("schemaVersion is %d: want 2", *doc.SchemaVersion)
	}

	hasManifests, hasConfig, hasLayers := jsonPresent(doc.Manifests), jsonPresent(doc.Config), jsonPresent(doc.Layers)
	if hasManifests && (hasConfig || hasLayers) {
		return nil, manifestInvalidf("document has both \"manifests\" and \"config\" or \"layers\": it is neither an index nor an image manifest")
	}

	mt := doc.MediaType
	genericCT := ct == "" || ct == "application/json" || ct == "application/octet-stream"
	switch {
	case mt != "" && !genericCT && mt != ct:
		return nil, manifestInvalidf("mediaType %s differs from Content-Type %s", quoteInput(mt), quoteInput(ct))
	case mt != "":
	case !genericCT:
		mt = ct
		if mt == MediaTypeDockerManifest || mt == MediaTypeDockerManifestList {
			return nil, manifestInvalidf("Docker schema 2 documents must carry their mediaType (%s)", mt)
		}
	case len(doc.Manifests) > 0:
		mt = MediaTypeOCIIndex
	case len(doc.Config) > 0:
		mt = MediaTypeOCIManifest
	default:
		return nil, manifestInvalidf("no mediaType, no specific Content-Type, and neither \"manifests\" nor \"config\": cannot tell what kind of manifest this is")
	}

	m := &Manifest{MediaType: mt, ArtifactType: doc.ArtifactType, Annotations: doc.Annotations}
	switch mt {
	case MediaTypeOCIIndex, MediaTypeDockerManifestList:
		m.IsIndex = true
		if hasConfig || hasLayers {
			return nil, manifestInvalidf("an index (%s) has no \"config\" or \"layers\"", mt)
		}
		if len(doc.Manifests) == 0 {
			return nil, manifestInvalidf("an index (%s) needs a \"manifests\" array", mt)
		}
		ds, err := parseDescriptorList("manifests", doc.Manifests)
		if err != nil {
			return nil, err
		}
		m.Manifests = ds
	case MediaTypeOCIManifest, MediaTypeDockerManifest:
		if hasManifests {
			return nil, manifestInvalidf("an image manifest (%s) has no \"manifests\"", mt)
		}
		if !hasConfig {
			return nil, manifestInvalidf("an image manifest (%s) needs a \"config\" descriptor", mt)
		}
		c, err := parseDescriptor("config", doc.Config)
		if err != nil {
			return nil, err
		}
		m.Config = &c
		if hasLayers {
			ls, err := parseDescriptorList("layers", doc.Layers)
			if err != nil {
				return nil, err
			}
			m.Layers = ls
		}
	default:
		return nil, fmt.Errorf("%w: %s is not a manifest media type this registry stores (want %s, %s, %s or %s)",
			ErrManifestUnsupported, quoteInput(mt), MediaTypeOCIManifest, MediaTypeOCIIndex, MediaTypeDockerManifest, MediaTypeDockerManifestList)
	}
	if doc.ArtifactType != "" && !validMediaType(doc.ArtifactType) {
		return nil, manifestInvalidf("artifactType %s is not a media type", quoteInput(doc.ArtifactType))
	}
	if jsonPresent(doc.Subject) {
		s, err := parseDescriptor("subject", doc.Subject)
		if err != nil {
			return nil, err
		}
		m.Subject = &s
	}
	return m, nil
}

func errSchema1() error {
	return fmt.Errorf("%w: schema 1 manifests are not supported; push with a client that writes schema 2 or OCI", ErrManifestUnsupported)
}

func manifestInvalidf(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrManifestInvalid}, args...)...)
}

// baseMediaType returns the media type of a Content-Type value without its
// parameters, lower-cased; "" for an empty value.
func baseMediaType(v string) string {
	if mt, _, err := mime.ParseMediaType(v); err == nil {
		return mt
	}
	base, _, _ := strings.Cut(v, ";")
	return strings.ToLower(strings.TrimSpace(base))
}

// jsonPresent reports whether a field was in the document with a non-null value.
func jsonPresent(raw json.RawMessage) bool {
	return len(raw) > 0 && string(raw) != "null"
}

// wireManifest is the union of the fields of the four manifest kinds. The fields
// Berth validates piecewise stay raw so that errors can name their place.
type wireManifest struct {
	SchemaVersion *int              `json:"schemaVersion"`
	MediaType     string            `json:"mediaType"`
	ArtifactType  string            `json:"artifactType"`
	Config        json.RawMessage   `json:"config"`
	Layers        json.RawMessage   `json:"layers"`
	Manifests     json.RawMessage   `json:"manifests"`
	Subject       json.RawMessage   `json:"subject"`
	Annotations   map[string]string `json:"annotations"`
}

type wireDescriptor struct {
	MediaType    string            `json:"mediaType"`
	Digest       string            `json:"digest"`
	Size         *int64            `json:"size"`
	URLs         []string          `json:"urls"`
	Annotations  map[string]string `json:"annotations"`
	Data         []byte            `json:"data"`
	Platform     *Platform         `json:"platform"`
	ArtifactType string            `json:"artifactType"`
}

// The fields each kind of object has; checkJSONShape refuses other spellings of
// them.
var (
	manifestFields   = []string{"schemaVersion", "mediaType", "artifactType", "config", "layers", "manifests", "subject", "annotations"}
	descriptorFields = []string{"mediaType", "digest", "size", "urls", "annotations", "data", "platform", "artifactType"}
	platformFields   = []string{"architecture", "os", "os.version", "os.features", "variant", "features"}
)

func parseDescriptorList(field string, raw json.RawMessage) ([]Descriptor, error) {
	if !jsonPresent(raw) {
		return nil, nil
	}
	var items []json.RawMessage
	if err := json.Unmarshal(raw, &items); err != nil {
		return nil, manifestInvalidf("%s: must be an array of descriptors", field)
	}
	out := make([]Descriptor, 0, len(items))
	for i, it := range items {
		d, err := parseDescriptor(fmt.Sprintf("%s[%d]", field, i), it)
		if err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, nil
}

func parseDescriptor(path string, raw json.RawMessage) (Descriptor, error) {
	if !jsonPresent(raw) || raw[0] != '{' {
		return Descriptor{}, manifestInvalidf("%s: must be a descriptor object", path)
	}
	var w wireDescriptor
	if err := json.Unmarshal(raw, &w); err != nil {
		return Descriptor{}, manifestInvalidf("%s: %s", path, jsonProblem(err))
	}
	if w.MediaType == "" {
		return Descriptor{}, manifestInvalidf("%s.mediaType is missing", path)
	}
	if !validMediaType(w.MediaType) {
		return Descriptor{}, manifestInvalidf("%s.mediaType %s is not a media type", path, quoteInput(w.MediaType))
	}
	if w.ArtifactType != "" && !validMediaType(w.ArtifactType) {
		return Descriptor{}, manifestInvalidf("%s.artifactType %s is not a media type", path, quoteInput(w.ArtifactType))
	}
	if w.Digest == "" {
		return Descriptor{}, manifestInvalidf("%s.digest is missing", path)
	}
	if _, why := checkDigest(w.Digest); why != "" {
		return Descriptor{}, manifestInvalidf("%s.digest: %s", path, why)
	}
	if w.Size == nil {
		return Descriptor{}, manifestInvalidf("%s.size is missing", path)
	}
	if *w.Size < 0 {
		return Descriptor{}, manifestInvalidf("%s.size is %d: must not be negative", path, *w.Size)
	}
	d := Digest(w.Digest)
	if w.Data != nil {
		if int64(len(w.Data)) != *w.Size || DigestOf(d.Algorithm(), w.Data) != d {
			return Descriptor{}, manifestInvalidf("%s.data does not match its digest and size", path)
		}
	}
	if p := w.Platform; p != nil && (p.OS == "" || p.Architecture == "") {
		return Descriptor{}, manifestInvalidf("%s.platform needs both os and architecture", path)
	}
	return Descriptor{
		MediaType:    w.MediaType,
		Digest:       d,
		Size:         *w.Size,
		URLs:         w.URLs,
		ArtifactType: w.ArtifactType,
		Annotations:  w.Annotations,
		Platform:     w.Platform,
	}, nil
}

// validMediaType checks the RFC 6838 shape type "/" subtype, each a
// restricted-name: a letter or digit, then up to 126 of letters, digits and
// !#$&-^_.+ . Parameters are not allowed in a descriptor's media type.
func validMediaType(s string) bool {
	typ, sub, ok := strings.Cut(s, "/")
	return ok && restrictedName(typ) && restrictedName(sub)
}

func restrictedName(s string) bool {
	if s == "" || len(s) > 127 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		alnum := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
		if i == 0 && !alnum {
			return false
		}
		if !alnum && strings.IndexByte("!#$&-^_.+", c) < 0 {
			return false
		}
	}
	return true
}

// jsonProblem describes a decoding error for a client without Go type names.
func jsonProblem(err error) string {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return fmt.Sprintf("malformed JSON at byte %d: %s", se.Offset, se.Error())
	case errors.As(err, &te):
		want := "a different type"
		if te.Type != nil {
			switch te.Type.Kind() {
			case reflect.String:
				want = "a string"
			case reflect.Int, reflect.Int64:
				want = "an integer"
			case reflect.Slice:
				want = "an array"
			case reflect.Map, reflect.Struct, reflect.Pointer:
				want = "an object"
			}
		}
		if te.Field != "" {
			return fmt.Sprintf("field %q: got JSON %s, want %s", te.Field, te.Value, want)
		}
		return fmt.Sprintf("got JSON %s, want %s", te.Value, want)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return "malformed JSON: unexpected end of input"
	}
	return "cannot decode: " + err.Error()
}

// object kinds that checkJSONShape tracks, to know which field names to police.
const (
	shapeOther = iota
	shapeManifest
	shapeDescriptor
	shapeDescriptorArray
	shapePlatform
)

type shapeFrame struct {
	kind    int
	object  bool
	wantKey bool   // in an object: the next token is a key (or the end)
	key     string // in an object: the key whose value comes next
	keys    map[string]struct{}
}

// checkJSONShape walks the document's tokens once before it is decoded: it must be
// a single JSON object, nested at most maxJSONDepth levels, with no key twice in
// any object and no other spelling (by the case folding that encoding/json
// accepts) of a field that Berth reads. This keeps Berth's reading of a manifest
// the same as every other parser's.
func checkJSONShape(body []byte) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil {
		return manifestInvalidf("%s", jsonProblem(err))
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return manifestInvalidf("a manifest is a JSON object")
	}
	stack := []shapeFrame{{kind: shapeManifest, object: true, wantKey: true, keys: map[string]struct{}{}}}
	for len(stack) > 0 {
		tok, err := dec.Token()
		if err == io.EOF {
			return manifestInvalidf("malformed JSON: unexpected end of input")
		}
		if err != nil {
			return manifestInvalidf("%s", jsonProblem(err))
		}
		top := &stack[len(stack)-1]
		if top.object && top.wantKey {
			if d, ok := tok.(json.Delim); ok && d == '}' {
				stack = stack[:len(stack)-1]
				shapeValueDone(stack)
				continue
			}
			key, _ := tok.(string)
			if _, dup := top.keys[key]; dup {
				return manifestInvalidf("key %s appears twice in one object", quoteInput(key))
			}
			top.keys[key] = struct{}{}
			if canon, bad := respelt(key, knownFields(top.kind)); bad {
				return manifestInvalidf("field %s must be spelt %q", quoteInput(key), canon)
			}
			top.key = key
			top.wantKey = false
			continue
		}
		switch t := tok.(type) {
		case json.Delim:
			switch t {
			case '{', '[':
				if len(stack) >= maxJSONDepth {
					return manifestInvalidf("JSON nested deeper than %d levels", maxJSONDepth)
				}
				f := shapeFrame{kind: childKind(top, t), object: t == '{'}
				if f.object {
					f.wantKey = true
					f.keys = map[string]struct{}{}
				}
				stack = append(stack, f)
			default: // ']': a '}' is consumed above, where a key could come
				stack = stack[:len(stack)-1]
				shapeValueDone(stack)
			}
		default:
			shapeValueDone(stack)
		}
	}
	if _, err := dec.Token(); err != io.EOF {
		return manifestInvalidf("malformed JSON: data after the document")
	}
	return nil
}

// shapeValueDone records that a value of the innermost object is complete.
func shapeValueDone(stack []shapeFrame) {
	if n := len(stack); n > 0 && stack[n-1].object {
		stack[n-1].wantKey = true
	}
}

func childKind(parent *shapeFrame, d json.Delim) int {
	switch parent.kind {
	case shapeManifest:
		switch parent.key {
		case "config", "subject":
			if d == '{' {
				return shapeDescriptor
			}
		case "layers", "manifests":
			if d == '[' {
				return shapeDescriptorArray
			}
		}
	case shapeDescriptorArray:
		if d == '{' {
			return shapeDescriptor
		}
	case shapeDescriptor:
		if parent.key == "platform" && d == '{' {
			return shapePlatform
		}
	}
	return shapeOther
}

func knownFields(kind int) []string {
	switch kind {
	case shapeManifest:
		return manifestFields
	case shapeDescriptor:
		return descriptorFields
	case shapePlatform:
		return platformFields
	}
	return nil
}

// respelt reports whether key is another spelling of a known field under the case
// folding encoding/json applies, and which.
func respelt(key string, known []string) (string, bool) {
	for _, k := range known {
		if key == k {
			return "", false
		}
	}
	for _, k := range known {
		if strings.EqualFold(key, k) {
			return k, true
		}
	}
	return "", false
}
