package meta

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"testing"
)

// Digests of made-up content for the documents below.
var (
	tDigA = DigestOf(SHA256, []byte("a"))
	tDigB = DigestOf(SHA256, []byte("b"))
	tDigC = DigestOf(SHA256, []byte("c"))
	tDigD = DigestOf(SHA512, []byte("d"))
	tDig0 = DigestOf(SHA256, []byte("{}"))
)

// tDesc is a descriptor as JSON, with extra fields appended verbatim.
func tDesc(mediaType string, d Digest, size int64, extra ...string) string {
	s := fmt.Sprintf(`{"mediaType":%q,"digest":%q,"size":%d`, mediaType, d, size)
	for _, e := range extra {
		s += "," + e
	}
	return s + "}"
}

const (
	tOCIConfig = "application/vnd.oci.image.config.v1+json"
	tOCILayer  = "application/vnd.oci.image.layer.v1.tar+gzip"
	tDkConfig  = "application/vnd.docker.container.image.v1+json"
	tDkLayer   = "application/vnd.docker.image.rootfs.diff.tar.gzip"
	tEmpty     = "application/vnd.oci.empty.v1+json"
	tArtifact  = "application/vnd.example.sbom.v1+json"
)

var (
	tOCIImage = `{
  "schemaVersion": 2,
  "mediaType": "application/vnd.oci.image.manifest.v1+json",
  "config": ` + tDesc(tOCIConfig, tDigA, 1234) + `,
  "layers": [
    ` + tDesc(tOCILayer, tDigB, 5678) + `,
    ` + tDesc(tOCILayer, tDigC, 9, `"annotations":{"org.opencontainers.image.title":"c.tgz"}`) + `
  ],
  "annotations": {"org.opencontainers.image.created": "2024-01-02T03:04:05Z"}
}`
	tOCIImageNoMediaType = `{"schemaVersion":2,"config":` + tDesc(tOCIConfig, tDigA, 1) + `,"layers":[` + tDesc(tOCILayer, tDigB, 2) + `]}`
	tOCIIndex            = `{
  "schemaVersion": 2,
  "mediaType": "application/vnd.oci.image.index.v1+json",
  "manifests": [
    ` + tDesc(MediaTypeOCIManifest, tDigA, 500, `"platform":{"architecture":"amd64","os":"linux"}`) + `,
    ` + tDesc(MediaTypeOCIManifest, tDigD, 501, `"platform":{"architecture":"arm64","os":"linux","variant":"v8"}`) + `,
    ` + tDesc(MediaTypeOCIManifest, tDigC, 502, `"platform":{"architecture":"amd64","os":"windows","os.version":"10.0.17763.1","os.features":["win32k"]}`) + `
  ]
}`
	tDockerManifest = `{
   "schemaVersion": 2,
   "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
   "config": ` + tDesc(tDkConfig, tDigA, 7023) + `,
   "layers": [
      ` + tDesc(tDkLayer, tDigB, 32654) + `,
      ` + tDesc("application/vnd.docker.image.rootfs.foreign.diff.tar.gzip", tDigC, 16724, `"urls":["https://mcr.microsoft.com/v2/windows/blobs/`+string(tDigC)+`"]`) + `
   ]
}`
	tDockerList = `{
  "schemaVersion": 2,
  "mediaType": "application/vnd.docker.distribution.manifest.list.v2+json",
  "manifests": [
    ` + tDesc(MediaTypeDockerManifest, tDigA, 7143, `"platform":{"architecture":"ppc64le","os":"linux"}`) + `,
    ` + tDesc(MediaTypeDockerManifest, tDigB, 7682, `"platform":{"architecture":"arm","os":"linux","variant":"v7","features":["sse4"]}`) + `
  ]
}`
	tArtifactWithSubject = `{
  "schemaVersion": 2,
  "mediaType": "application/vnd.oci.image.manifest.v1+json",
  "artifactType": "` + tArtifact + `",
  "config": ` + tDesc(tEmpty, tDig0, 2, `"data":"e30="`) + `,
  "layers": [` + tDesc("application/spdx+json", tDigB, 3) + `],
  "subject": ` + tDesc(MediaTypeOCIManifest, tDigC, 1234) + `,
  "annotations": {"org.opencontainers.image.created": "2024-01-02T03:04:05Z"}
}`
	tSchema1 = `{
   "name": "hello-world", "tag": "latest", "architecture": "amd64",
   "fsLayers": [{"blobSum": "` + string(tDigA) + `"}],
   "history": [{"v1Compatibility": "{}"}],
   "schemaVersion": 1,
   "signatures": [{"header": {"alg": "ES256"}, "signature": "xx", "protected": "yy"}]
}`
)

func TestParseManifestKinds(t *testing.T) {
	tests := []struct {
		name, ct, body string
		mediaType      string
		index          bool
		layers, mans   int
		artifactType   string // ReferrerArtifactType
		subject        Digest
	}{
		{"oci image", MediaTypeOCIManifest, tOCIImage, MediaTypeOCIManifest, false, 2, 0, tOCIConfig, ""},
		{"oci image, content type with parameters", "Application/VND.oci.image.manifest.v1+json; charset=utf-8", tOCIImage, MediaTypeOCIManifest, false, 2, 0, tOCIConfig, ""},
		{"oci image, generic content type", "application/json", tOCIImage, MediaTypeOCIManifest, false, 2, 0, tOCIConfig, ""},
		{"oci image, no content type", "", tOCIImage, MediaTypeOCIManifest, false, 2, 0, tOCIConfig, ""},
		{"oci image without mediaType, from content type", MediaTypeOCIManifest, tOCIImageNoMediaType, MediaTypeOCIManifest, false, 1, 0, tOCIConfig, ""},
		{"oci image without mediaType, inferred", "application/octet-stream", tOCIImageNoMediaType, MediaTypeOCIManifest, false, 1, 0, tOCIConfig, ""},
		{"oci image, no layers", MediaTypeOCIManifest, `{"schemaVersion":2,"mediaType":"` + MediaTypeOCIManifest + `","config":` + tDesc(tOCIConfig, tDigA, 1) + `,"layers":[]}`, MediaTypeOCIManifest, false, 0, 0, tOCIConfig, ""},
		{"oci image, null layers", MediaTypeOCIManifest, `{"schemaVersion":2,"mediaType":"` + MediaTypeOCIManifest + `","config":` + tDesc(tOCIConfig, tDigA, 1) + `,"layers":null}`, MediaTypeOCIManifest, false, 0, 0, tOCIConfig, ""},
		{"oci image, layers absent", MediaTypeOCIManifest, `{"schemaVersion":2,"config":` + tDesc(tOCIConfig, tDigA, 1) + `}`, MediaTypeOCIManifest, false, 0, 0, tOCIConfig, ""},
		{"oci index", MediaTypeOCIIndex, tOCIIndex, MediaTypeOCIIndex, true, 0, 3, "", ""},
		{"oci index without mediaType, inferred", "", `{"schemaVersion":2,"manifests":[` + tDesc(MediaTypeOCIManifest, tDigA, 1) + `]}`, MediaTypeOCIIndex, true, 0, 1, "", ""},
		{"empty oci index", MediaTypeOCIIndex, `{"schemaVersion":2,"mediaType":"` + MediaTypeOCIIndex + `","manifests":[]}`, MediaTypeOCIIndex, true, 0, 0, "", ""},
		{"oci index, null manifests", MediaTypeOCIIndex, `{"schemaVersion":2,"mediaType":"` + MediaTypeOCIIndex + `","manifests":null}`, MediaTypeOCIIndex, true, 0, 0, "", ""},
		{"docker manifest", MediaTypeDockerManifest, tDockerManifest, MediaTypeDockerManifest, false, 2, 0, tDkConfig, ""},
		{"docker manifest list", MediaTypeDockerManifestList, tDockerList, MediaTypeDockerManifestList, true, 0, 2, "", ""},
		{"artifact with subject", MediaTypeOCIManifest, tArtifactWithSubject, MediaTypeOCIManifest, false, 1, 0, tArtifact, tDigC},
		{"artifact index with subject", MediaTypeOCIIndex, `{"schemaVersion":2,"mediaType":"` + MediaTypeOCIIndex + `","artifactType":"` + tArtifact + `","manifests":[` + tDesc(MediaTypeOCIManifest, tDigA, 1) + `],"subject":` + tDesc(MediaTypeOCIIndex, tDigB, 2) + `}`, MediaTypeOCIIndex, true, 0, 1, tArtifact, tDigB},
		{"extension fields are ignored", MediaTypeOCIIndex, `{"schemaVersion":2,"mediaType":"` + MediaTypeOCIIndex + `","org.example.X7":"v","org.example.nested":{"a":[1,{"b":null}],"A":true},"manifests":[` + tDesc(MediaTypeOCIManifest, tDigA, 1, `"org.example.y":{"z":1}`) + `]}`, MediaTypeOCIIndex, true, 0, 1, "", ""},
		{"trailing whitespace", MediaTypeOCIManifest, tOCIImage + " \n\t ", MediaTypeOCIManifest, false, 2, 0, tOCIConfig, ""},
		{"descriptor data matches", MediaTypeOCIManifest, `{"schemaVersion":2,"config":` + tDesc(tOCIConfig, DigestOf(SHA512, []byte("cfg")), 3, `"data":"`+base64.StdEncoding.EncodeToString([]byte("cfg"))+`"`) + `}`, MediaTypeOCIManifest, false, 0, 0, tOCIConfig, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := []byte(tt.body)
			orig := bytes.Clone(body)
			m, err := ParseManifest(tt.ct, body)
			if err != nil {
				t.Fatalf("ParseManifest: %v", err)
			}
			if !bytes.Equal(body, orig) {
				t.Errorf("ParseManifest changed the body")
			}
			if m.MediaType != tt.mediaType || m.IsIndex != tt.index {
				t.Errorf("got %s (index %v), want %s (index %v)", m.MediaType, m.IsIndex, tt.mediaType, tt.index)
			}
			if len(m.Layers) != tt.layers || len(m.Manifests) != tt.mans {
				t.Errorf("got %d layers, %d manifests, want %d, %d", len(m.Layers), len(m.Manifests), tt.layers, tt.mans)
			}
			if (m.Config == nil) != tt.index {
				t.Errorf("got config %v for index %v", m.Config, tt.index)
			}
			if got := m.ReferrerArtifactType(); got != tt.artifactType {
				t.Errorf("ReferrerArtifactType() = %q, want %q", got, tt.artifactType)
			}
			var subj Digest
			if m.Subject != nil {
				subj = m.Subject.Digest
			}
			if subj != tt.subject {
				t.Errorf("subject %q, want %q", subj, tt.subject)
			}
		})
	}
}

func TestParseManifestFields(t *testing.T) {
	m, err := ParseManifest(MediaTypeOCIManifest, []byte(tOCIImage))
	if err != nil {
		t.Fatal(err)
	}
	if m.Config.Digest != tDigA || m.Config.Size != 1234 || m.Config.MediaType != tOCIConfig {
		t.Errorf("config = %+v", m.Config)
	}
	if l := m.Layers[1]; l.Digest != tDigC || l.Size != 9 || l.Annotations["org.opencontainers.image.title"] != "c.tgz" {
		t.Errorf("layers[1] = %+v", l)
	}
	if m.Annotations["org.opencontainers.image.created"] != "2024-01-02T03:04:05Z" {
		t.Errorf("annotations = %v", m.Annotations)
	}

	m, err = ParseManifest(MediaTypeOCIIndex, []byte(tOCIIndex))
	if err != nil {
		t.Fatal(err)
	}
	want := []Platform{
		{Architecture: "amd64", OS: "linux"},
		{Architecture: "arm64", OS: "linux", Variant: "v8"},
		{Architecture: "amd64", OS: "windows", OSVersion: "10.0.17763.1", OSFeatures: []string{"win32k"}},
	}
	for i, w := range want {
		p := m.Manifests[i].Platform
		if p == nil || p.Architecture != w.Architecture || p.OS != w.OS || p.Variant != w.Variant || p.OSVersion != w.OSVersion || len(p.OSFeatures) != len(w.OSFeatures) {
			t.Errorf("manifests[%d].platform = %+v, want %+v", i, p, w)
		}
	}
	if m.Manifests[1].Digest != tDigD {
		t.Errorf("manifests[1].digest = %s, want the sha512 %s", m.Manifests[1].Digest, tDigD)
	}

	m, err = ParseManifest(MediaTypeDockerManifest, []byte(tDockerManifest))
	if err != nil {
		t.Fatal(err)
	}
	if m.Layers[0].Foreign() || !m.Layers[1].Foreign() || len(m.Layers[1].URLs) != 1 {
		t.Errorf("layers = %+v: want the second one foreign with its URL", m.Layers)
	}
}

func TestParseManifestErrors(t *testing.T) {
	img := func(config, layers string) string {
		return `{"schemaVersion":2,"mediaType":"` + MediaTypeOCIManifest + `","config":` + config + `,"layers":[` + layers + `]}`
	}
	goodCfg := tDesc(tOCIConfig, tDigA, 1)
	goodLayer := tDesc(tOCILayer, tDigB, 2)
	deep := strings.Repeat(`{"a":`, 100000) + "1" + strings.Repeat("}", 100000)
	deepArr := strings.Repeat(`[`, 100000) + strings.Repeat("]", 100000)
	tests := []struct {
		name, ct, body string
		want           error
		msg            string // a part of the error text
	}{
		{"schema 1 by content type", MediaTypeDockerSchema1Signed, tSchema1, ErrManifestUnsupported, "schema 1 manifests are not supported"},
		{"schema 1 by content type, garbage body", MediaTypeDockerSchema1, "not json", ErrManifestUnsupported, "schema 1"},
		{"schema 1 by body", "application/json", tSchema1, ErrManifestUnsupported, "schema 1"},
		{"schema 1 by body mediaType", "", `{"schemaVersion":1,"mediaType":"` + MediaTypeDockerSchema1 + `"}`, ErrManifestUnsupported, "schema 1"},
		{"unknown media type in body", "", `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.config.v1+json","config":` + goodCfg + `}`, ErrManifestUnsupported, "not a manifest media type"},
		{"unknown content type", "text/plain", tOCIImageNoMediaType, ErrManifestUnsupported, "not a manifest media type"},
		{"media type case differs in body", "", strings.Replace(tOCIImage, "vnd.oci.image", "vnd.OCI.image", 1), ErrManifestUnsupported, ""},

		{"contradictory content type", MediaTypeOCIIndex, tOCIImage, ErrManifestInvalid, "differs from Content-Type"},
		{"contradictory docker content type", MediaTypeDockerManifest, tOCIImage, ErrManifestInvalid, "differs"},
		{"both kinds", "", `{"schemaVersion":2,"mediaType":"` + MediaTypeOCIIndex + `","manifests":[],"layers":[` + goodLayer + `]}`, ErrManifestInvalid, "both"},
		{"both kinds, config", "", `{"schemaVersion":2,"config":` + goodCfg + `,"manifests":[]}`, ErrManifestInvalid, "both"},
		{"index by content type, image by shape", MediaTypeOCIIndex, `{"schemaVersion":2,"layers":[` + goodLayer + `]}`, ErrManifestInvalid, "has no \"config\" or \"layers\""},
		{"index without manifests", MediaTypeOCIIndex, `{"schemaVersion":2}`, ErrManifestInvalid, "needs a \"manifests\""},
		{"image without config", "", `{"schemaVersion":2,"mediaType":"` + MediaTypeOCIManifest + `","layers":[]}`, ErrManifestInvalid, "needs a \"config\""},
		{"image with null config", "", `{"schemaVersion":2,"mediaType":"` + MediaTypeOCIManifest + `","config":null}`, ErrManifestInvalid, "needs a \"config\""},
		{"cannot tell the kind", "", `{"schemaVersion":2}`, ErrManifestInvalid, "cannot tell"},
		{"docker without mediaType", MediaTypeDockerManifest, tOCIImageNoMediaType, ErrManifestInvalid, "must carry their mediaType"},

		{"malformed json", MediaTypeOCIManifest, `{"schemaVersion":2,`, ErrManifestInvalid, "malformed JSON"},
		{"not json", MediaTypeOCIManifest, `hello`, ErrManifestInvalid, "malformed JSON"},
		{"empty body", MediaTypeOCIManifest, ``, ErrManifestInvalid, "empty"},
		{"json array", MediaTypeOCIManifest, `[]`, ErrManifestInvalid, "JSON object"},
		{"json null", MediaTypeOCIManifest, `null`, ErrManifestInvalid, "JSON object"},
		{"json string", MediaTypeOCIManifest, `"x"`, ErrManifestInvalid, "JSON object"},
		{"trailing document", MediaTypeOCIManifest, tOCIImage + `{}`, ErrManifestInvalid, "after the document"},
		{"trailing garbage", MediaTypeOCIManifest, tOCIImage + `x`, ErrManifestInvalid, "after the document"},
		{"invalid utf-8", MediaTypeOCIManifest, strings.Replace(tOCIImage, "c.tgz", "c\xff.tgz", 1), ErrManifestInvalid, "UTF-8"},
		{"huge nesting of objects", MediaTypeOCIManifest, `{"schemaVersion":2,"x":` + deep + `}`, ErrManifestInvalid, "nested deeper"},
		{"huge nesting of arrays", MediaTypeOCIManifest, `{"schemaVersion":2,"x":` + deepArr + `}`, ErrManifestInvalid, "nested deeper"},
		{"huge nesting, unterminated", MediaTypeOCIManifest, `{"x":` + strings.Repeat("[", 100000), ErrManifestInvalid, ""},

		{"schemaVersion missing", MediaTypeOCIManifest, `{"config":` + goodCfg + `}`, ErrManifestInvalid, "schemaVersion is missing"},
		{"schemaVersion 3", MediaTypeOCIManifest, `{"schemaVersion":3,"config":` + goodCfg + `}`, ErrManifestInvalid, "schemaVersion is 3"},
		{"schemaVersion string", MediaTypeOCIManifest, `{"schemaVersion":"2","config":` + goodCfg + `}`, ErrManifestInvalid, "schemaVersion"},
		{"schemaVersion float", MediaTypeOCIManifest, `{"schemaVersion":2.0,"config":` + goodCfg + `}`, ErrManifestInvalid, "schemaVersion"},

		{"duplicate key", MediaTypeOCIManifest, `{"schemaVersion":2,"config":` + goodCfg + `,"layers":[],"layers":[` + goodLayer + `]}`, ErrManifestInvalid, "appears twice"},
		{"field in another case", MediaTypeOCIManifest, `{"schemaVersion":2,"config":` + goodCfg + `,"Layers":[` + goodLayer + `]}`, ErrManifestInvalid, `must be spelt "layers"`},
		{"field in another case beside it", MediaTypeOCIManifest, `{"schemaVersion":2,"config":` + goodCfg + `,"layers":[],"LAYERS":[` + goodLayer + `]}`, ErrManifestInvalid, "spelt"},
		{"descriptor field by unicode folding", MediaTypeOCIManifest, `{"schemaVersion":2,"config":{"mediaType":"a/b","digest":"` + string(tDigA) + `","size":1,"ſize":2}}`, ErrManifestInvalid, `must be spelt "size"`},
		{"platform field in another case", MediaTypeOCIIndex, `{"schemaVersion":2,"manifests":[` + tDesc(MediaTypeOCIManifest, tDigA, 1, `"platform":{"os":"linux","architecture":"amd64","OS":"windows"}`) + `]}`, ErrManifestInvalid, `spelt "os"`},
		{"duplicate annotation", MediaTypeOCIManifest, `{"schemaVersion":2,"config":` + goodCfg + `,"annotations":{"a":"1","a":"2"}}`, ErrManifestInvalid, "twice"},

		{"bad layer digest", "", img(goodCfg, goodLayer+","+goodLayer+","+tDesc(tOCILayer, "sha256:abc", 1)), ErrManifestInvalid, "layers[2].digest"},
		{"upper-case digest", "", img(goodCfg, tDesc(tOCILayer, Digest(strings.ToUpper(string(tDigB))), 1)), ErrManifestInvalid, "layers[0].digest"},
		{"unsupported layer digest", "", img(goodCfg, tDesc(tOCILayer, Digest("sha384:"+strings.Repeat("a", 96)), 1)), ErrManifestInvalid, "not supported"},
		{"missing digest", "", img(`{"mediaType":"a/b","size":1}`, ""), ErrManifestInvalid, "config.digest is missing"},
		{"bad config digest", "", img(tDesc(tOCIConfig, "sha256:baddigeststring", 1), ""), ErrManifestInvalid, "config.digest"},
		{"bad subject digest", "", strings.Replace(tArtifactWithSubject, string(tDigC), "sha256:nope", 1), ErrManifestInvalid, "subject.digest"},
		{"bad index entry digest", "", `{"schemaVersion":2,"manifests":[` + tDesc(MediaTypeOCIManifest, "md5", 1) + `]}`, ErrManifestInvalid, "manifests[0].digest"},
		{"negative size", "", img(goodCfg, tDesc(tOCILayer, tDigB, -1)), ErrManifestInvalid, "layers[0].size is -1"},
		{"missing size", "", img(`{"mediaType":"a/b","digest":"`+string(tDigA)+`"}`, ""), ErrManifestInvalid, "config.size is missing"},
		{"fractional size", "", img(`{"mediaType":"a/b","digest":"`+string(tDigA)+`","size":1.5}`, ""), ErrManifestInvalid, "integer"},
		{"string size", "", img(`{"mediaType":"a/b","digest":"`+string(tDigA)+`","size":"1"}`, ""), ErrManifestInvalid, "integer"},
		{"overflowing size", "", img(`{"mediaType":"a/b","digest":"`+string(tDigA)+`","size":99999999999999999999}`, ""), ErrManifestInvalid, "config"},
		{"missing media type", "", img(goodCfg, `{"digest":"`+string(tDigB)+`","size":1}`), ErrManifestInvalid, "layers[0].mediaType is missing"},
		{"bad media type", "", img(goodCfg, tDesc("tar", tDigB, 1)), ErrManifestInvalid, "not a media type"},
		{"media type with space", "", img(goodCfg, tDesc("application/x tar", tDigB, 1)), ErrManifestInvalid, "not a media type"},
		{"media type with parameters", "", img(goodCfg, tDesc("application/x;v=1", tDigB, 1)), ErrManifestInvalid, "not a media type"},
		{"bad artifactType", "", strings.Replace(tArtifactWithSubject, tArtifact, "sbom", 1), ErrManifestInvalid, "artifactType"},
		{"descriptor not an object", "", img(`"sha256:abc"`, ""), ErrManifestInvalid, "config: must be a descriptor"},
		{"layers not an array", "", `{"schemaVersion":2,"config":` + goodCfg + `,"layers":{}}`, ErrManifestInvalid, "layers: must be an array"},
		{"layer null", "", img(goodCfg, "null"), ErrManifestInvalid, "layers[0]: must be a descriptor"},
		{"annotation not a string", "", `{"schemaVersion":2,"config":` + goodCfg + `,"annotations":{"a":1}}`, ErrManifestInvalid, "want a string"},
		{"data does not match", "", img(tDesc(tOCIConfig, tDigA, 1, `"data":"Yg=="`), ""), ErrManifestInvalid, "config.data"},
		{"data not base64", "", img(tDesc(tOCIConfig, tDigA, 1, `"data":"!!"`), ""), ErrManifestInvalid, "config"},
		{"platform without os", "", `{"schemaVersion":2,"manifests":[` + tDesc(MediaTypeOCIManifest, tDigA, 1, `"platform":{"architecture":"amd64"}`) + `]}`, ErrManifestInvalid, "manifests[0].platform"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := ParseManifest(tt.ct, []byte(tt.body))
			if m != nil || !errors.Is(err, tt.want) {
				t.Fatalf("got %v, %v; want nil, %v", m, err, tt.want)
			}
			if errors.Is(err, ErrManifestInvalid) && errors.Is(err, ErrManifestUnsupported) {
				t.Errorf("error %v is both invalid and unsupported", err)
			}
			if !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("error %q does not contain %q", err, tt.msg)
			}
			if len(err.Error()) > 1000 {
				t.Errorf("error of %d bytes: messages must stay short", len(err.Error()))
			}
		})
	}
}

func TestDescriptorForeign(t *testing.T) {
	tests := []struct {
		mediaType string
		want      bool
	}{
		{"application/vnd.oci.image.layer.nondistributable.v1.tar", true},
		{"application/vnd.oci.image.layer.nondistributable.v1.tar+gzip", true},
		{"application/vnd.oci.image.layer.nondistributable.v1.tar+zstd", true},
		{"application/vnd.docker.image.rootfs.foreign.diff.tar.gzip", true},
		{"application/vnd.oci.image.layer.v1.tar+gzip", false},
		{"application/vnd.docker.image.rootfs.diff.tar.gzip", false},
		{"", false},
	}
	for _, tt := range tests {
		if got := (Descriptor{MediaType: tt.mediaType}).Foreign(); got != tt.want {
			t.Errorf("Foreign() of %q = %v, want %v", tt.mediaType, got, tt.want)
		}
	}
}

// FuzzParseManifest checks that no input panics and that whatever is accepted
// satisfies the contract. `go test` runs the seeds; run it for longer with
// go test -run '^$' -fuzz FuzzParseManifest ./meta/
func FuzzParseManifest(f *testing.F) {
	for _, ct := range []string{"", MediaTypeOCIManifest, MediaTypeOCIIndex, MediaTypeDockerManifest, MediaTypeDockerManifestList, "application/json"} {
		for _, b := range []string{tOCIImage, tOCIImageNoMediaType, tOCIIndex, tDockerManifest, tDockerList, tArtifactWithSubject, tSchema1, `{}`, `{"schemaVersion":2}`, `[`} {
			f.Add(ct, []byte(b))
		}
	}
	f.Fuzz(func(t *testing.T, ct string, body []byte) {
		m, err := ParseManifest(ct, body)
		if err != nil {
			if m != nil {
				t.Fatalf("got a manifest and an error %v", err)
			}
			if !errors.Is(err, ErrManifestInvalid) && !errors.Is(err, ErrManifestUnsupported) {
				t.Fatalf("error %v is neither invalid nor unsupported", err)
			}
			return
		}
		switch m.MediaType {
		case MediaTypeOCIManifest, MediaTypeDockerManifest:
			if m.IsIndex || m.Config == nil || len(m.Manifests) != 0 {
				t.Fatalf("image manifest %+v", m)
			}
		case MediaTypeOCIIndex, MediaTypeDockerManifestList:
			if !m.IsIndex || m.Config != nil || len(m.Layers) != 0 {
				t.Fatalf("index %+v", m)
			}
		default:
			t.Fatalf("accepted media type %q", m.MediaType)
		}
		check := func(d Descriptor) {
			if _, err := ParseDigest(string(d.Digest)); err != nil || d.Size < 0 || !validMediaType(d.MediaType) {
				t.Fatalf("accepted descriptor %+v", d)
			}
		}
		if m.Config != nil {
			check(*m.Config)
		}
		if m.Subject != nil {
			check(*m.Subject)
		}
		for _, d := range m.Layers {
			check(d)
		}
		for _, d := range m.Manifests {
			check(d)
		}
	})
}
