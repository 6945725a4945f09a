package meta

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"time"
)

// Repository is a repository as the catalog lists it.
type Repository struct {
	Name        string    `json:"-"`
	Description string    `json:"description,omitempty"`
	Created     time.Time `json:"created"`
}

// Blob is a blob the cluster has recorded: its bytes are durable on at least the
// configured number of nodes.
type Blob struct {
	Digest  Digest    `json:"-"`
	Size    int64     `json:"size"`
	Created time.Time `json:"created"`
	// Pushed is the last time a push or a mount recorded the blob (into any
	// repository); garbage collection's grace period counts from it.
	Pushed time.Time `json:"pushed,omitzero"`
}

type linkRecord struct {
	Created time.Time `json:"created"`
}

// ManifestInfo is what is recorded about a manifest besides its bytes.
type ManifestInfo struct {
	Digest       Digest            `json:"-"`
	MediaType    string            `json:"mediaType"`
	Size         int64             `json:"size"`
	ArtifactType string            `json:"artifactType,omitempty"`
	Subject      Digest            `json:"subject,omitempty"`
	Annotations  map[string]string `json:"annotations,omitempty"`
	Blobs        []Digest          `json:"blobs,omitempty"`     // config and layers that must be linked
	Manifests    []Digest          `json:"manifests,omitempty"` // children of an index
	Created      time.Time         `json:"created"`
	Pushed       time.Time         `json:"pushed,omitzero"` // the last push (Created is the first)
}

// Tag points a name at a manifest digest.
type Tag struct {
	Name     string    `json:"-"`
	Digest   Digest    `json:"digest"`
	Updated  time.Time `json:"updated"`
	PushedBy string    `json:"pushedBy,omitempty"`
}

func encodeJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		// Only our own record types are encoded; they always marshal.
		panic(fmt.Sprintf("meta: encode %T: %v", v, err))
	}
	return b
}

// encodeManifest lays a manifest value out as: uvarint header length, header JSON,
// then the manifest bytes exactly as pushed.
func encodeManifest(info *ManifestInfo, content []byte) []byte {
	h := encodeJSON(info)
	out := make([]byte, 0, binary.MaxVarintLen64+len(h)+len(content))
	out = binary.AppendUvarint(out, uint64(len(h)))
	out = append(out, h...)
	return append(out, content...)
}

func decodeManifest(v []byte) (*ManifestInfo, []byte, error) {
	n, w := binary.Uvarint(v)
	if w <= 0 || uint64(len(v)-w) < n {
		return nil, nil, fmt.Errorf("meta: corrupt manifest record")
	}
	var info ManifestInfo
	if err := json.Unmarshal(v[w:w+int(n)], &info); err != nil {
		return nil, nil, fmt.Errorf("meta: corrupt manifest record: %w", err)
	}
	return &info, v[w+int(n):], nil
}

// Referrer is one entry of a subject's referrers list, in the OCI descriptor shape
// that the referrers API returns.
type Referrer struct {
	MediaType    string            `json:"mediaType"`
	Digest       Digest            `json:"digest"`
	Size         int64             `json:"size"`
	ArtifactType string            `json:"artifactType,omitempty"`
	Annotations  map[string]string `json:"annotations,omitempty"`
}
