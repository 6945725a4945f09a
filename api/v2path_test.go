package api

import (
	"errors"
	"math/rand/v2"
	"regexp"
	"strings"
	"testing"
)

func TestParseV2Path(t *testing.T) {
	dig := "sha256:" + strings.Repeat("5e", 32)
	dig512 := "sha512:" + strings.Repeat("a1", 64)
	name255 := strings.Repeat("a", 127) + "/" + strings.Repeat("b", 127)
	tests := []struct {
		rest string
		want v2Route
		err  *apiError // the sentinel the error derives from; nil for success
	}{
		// Every endpoint.
		{"/", v2Route{Kind: routeBase}, nil},
		{"/_catalog", v2Route{Kind: routeCatalog}, nil},
		{"/library/app/tags/list", v2Route{Kind: routeTagsList, Repo: "library/app"}, nil},
		{"/library/app/manifests/1.0", v2Route{Kind: routeManifest, Repo: "library/app", Ref: "1.0"}, nil},
		{"/library/app/manifests/" + dig, v2Route{Kind: routeManifest, Repo: "library/app", Ref: dig}, nil},
		{"/library/app/manifests/" + dig512, v2Route{Kind: routeManifest, Repo: "library/app", Ref: dig512}, nil},
		{"/library/app/blobs/" + dig, v2Route{Kind: routeBlob, Repo: "library/app", Ref: dig}, nil},
		{"/library/app/blobs/uploads/", v2Route{Kind: routeUploadStart, Repo: "library/app"}, nil},
		{"/library/app/blobs/uploads", v2Route{Kind: routeUploadStart, Repo: "library/app"}, nil},
		{"/library/app/blobs/uploads/node-1.0f3a_9.deadbeef", v2Route{Kind: routeUpload, Repo: "library/app", Ref: "node-1.0f3a_9.deadbeef"}, nil},
		{"/library/app/referrers/" + dig, v2Route{Kind: routeReferrers, Repo: "library/app", Ref: dig}, nil},

		// Names with endpoint words in them, parsed from the right.
		{"/a/blobs/b/manifests/latest", v2Route{Kind: routeManifest, Repo: "a/blobs/b", Ref: "latest"}, nil},
		{"/a/manifests/manifests/latest", v2Route{Kind: routeManifest, Repo: "a/manifests", Ref: "latest"}, nil},
		{"/tags/tags/list", v2Route{Kind: routeTagsList, Repo: "tags"}, nil},
		{"/blobs/blobs/" + dig, v2Route{Kind: routeBlob, Repo: "blobs", Ref: dig}, nil},
		{"/x/blobs/blobs/uploads/", v2Route{Kind: routeUploadStart, Repo: "x/blobs"}, nil},
		{"/uploads/blobs/uploads/id", v2Route{Kind: routeUpload, Repo: "uploads", Ref: "id"}, nil},
		{"/a/referrers/referrers/" + dig, v2Route{Kind: routeReferrers, Repo: "a/referrers", Ref: dig}, nil},
		{"/a/tags/list/tags/list", v2Route{Kind: routeTagsList, Repo: "a/tags/list"}, nil},
		{"/a/manifests/list", v2Route{Kind: routeManifest, Repo: "a", Ref: "list"}, nil},
		{"/a/manifests/uploads", v2Route{Kind: routeManifest, Repo: "a", Ref: "uploads"}, nil},

		// Valid name and tag shapes.
		{"/a0/b.c/d_e/f__g/h---i/manifests/_x", v2Route{Kind: routeManifest, Repo: "a0/b.c/d_e/f__g/h---i", Ref: "_x"}, nil},
		{"/" + name255 + "/tags/list", v2Route{Kind: routeTagsList, Repo: name255}, nil},
		{"/a/manifests/" + strings.Repeat("T", 128), v2Route{Kind: routeManifest, Repo: "a", Ref: strings.Repeat("T", 128)}, nil},
		{"/a/manifests/V1.2-rc_3", v2Route{Kind: routeManifest, Repo: "a", Ref: "V1.2-rc_3"}, nil},

		// No such endpoint.
		{"", v2Route{}, errNotFound},
		{"_catalog", v2Route{}, errNotFound},
		{"/_catalog/", v2Route{}, errNotFound},
		{"/a", v2Route{}, errNotFound},
		{"/a/", v2Route{}, errNotFound},
		{"/a/b", v2Route{}, errNotFound},
		{"/a/b/c", v2Route{}, errNotFound},
		{"/a/tags", v2Route{}, errNotFound},
		{"/a/tags/", v2Route{}, errNotFound},
		{"/a/tags/list/", v2Route{}, errNotFound},
		{"/a/tags/other", v2Route{}, errNotFound},
		{"/a/manifests/", v2Route{}, errNotFound},
		{"/a/manifests/latest/", v2Route{}, errNotFound},
		{"/a/blobs/", v2Route{}, errNotFound},
		{"/a/referrers/", v2Route{}, errNotFound},
		{"/a/uploads/x", v2Route{}, errNotFound},
		{"/blobs/uploads/x", v2Route{}, errNotFound},
		{"/manifests/latest", v2Route{}, errNotFound},
		{"/tags/list", v2Route{}, errNotFound},
		{"/a/blobs/uploads/x/y", v2Route{}, errNotFound},
		{"/Foo/Bar", v2Route{}, errNotFound}, // no endpoint wins over a bad name

		// Invalid names.
		{"/A/manifests/x", v2Route{}, errNameInvalid},
		{"/library/App/tags/list", v2Route{}, errNameInvalid},
		{"//manifests/x", v2Route{}, errNameInvalid},
		{"/a//b/manifests/x", v2Route{}, errNameInvalid},
		{"/a//manifests/x", v2Route{}, errNameInvalid},
		{"//a/manifests/x", v2Route{}, errNameInvalid},
		{"//blobs/uploads/", v2Route{}, errNameInvalid},
		{"/../manifests/x", v2Route{}, errNameInvalid},
		{"/a/../b/manifests/x", v2Route{}, errNameInvalid},
		{"/a/./b/tags/list", v2Route{}, errNameInvalid},
		{"/_a/manifests/x", v2Route{}, errNameInvalid},
		{"/_catalog/tags/list", v2Route{}, errNameInvalid},
		{"/a_/manifests/x", v2Route{}, errNameInvalid},
		{"/-a/manifests/x", v2Route{}, errNameInvalid},
		{"/a-/manifests/x", v2Route{}, errNameInvalid},
		{"/.a/manifests/x", v2Route{}, errNameInvalid},
		{"/a../b/manifests/x", v2Route{}, errNameInvalid},
		{"/a..b/manifests/x", v2Route{}, errNameInvalid},
		{"/a___b/manifests/x", v2Route{}, errNameInvalid},
		{"/a.-b/manifests/x", v2Route{}, errNameInvalid},
		{"/a-.b/manifests/x", v2Route{}, errNameInvalid},
		{"/a%2fb/manifests/x", v2Route{}, errNameInvalid},
		{"/a%2Fb/manifests/x", v2Route{}, errNameInvalid},
		{"/%2e%2e/manifests/x", v2Route{}, errNameInvalid},
		{"/a b/manifests/x", v2Route{}, errNameInvalid},
		{"/a\x00b/manifests/x", v2Route{}, errNameInvalid},
		{"/café/manifests/x", v2Route{}, errNameInvalid},
		{"/a:b/manifests/x", v2Route{}, errNameInvalid},
		{"/a/" + strings.Repeat("b", 254) + "/tags/list", v2Route{}, errNameInvalid}, // 256 bytes
		{"/A/manifests/-bad", v2Route{}, errNameInvalid},                             // the name is checked first

		// Invalid references.
		{"/a/manifests/-latest", v2Route{}, errTagInvalid},
		{"/a/manifests/.latest", v2Route{}, errTagInvalid},
		{"/a/manifests/" + strings.Repeat("T", 129), v2Route{}, errTagInvalid},
		{"/a/manifests/la test", v2Route{}, errTagInvalid},
		{"/a/manifests/a%2e", v2Route{}, errTagInvalid},
		{"/a/manifests/caf\u00e9", v2Route{}, errTagInvalid},
		{"/a/manifests/sha256:baddigeststring", v2Route{}, errDigestInvalid}, // conformance "invalid-digest-format"
		{"/a/manifests/sha256:" + strings.Repeat("5E", 32), v2Route{}, errDigestInvalid},
		{"/a/manifests/md5:d41d8cd98f00b204e9800998ecf8427e", v2Route{}, errDigestInvalid},
		{"/a/manifests/:", v2Route{}, errDigestInvalid},
		{"/a/blobs/latest", v2Route{}, errDigestInvalid},
		{"/a/blobs/sha256:abc", v2Route{}, errDigestInvalid},
		{"/a/blobs/" + dig + "%00", v2Route{}, errDigestInvalid},
		{"/a/referrers/latest", v2Route{}, errDigestInvalid},
		{"/a/referrers/sha384:" + strings.Repeat("a", 96), v2Route{}, errDigestInvalid},
		{"/a/blobs/uploads/..", v2Route{}, errUploadUnknown},
		{"/a/blobs/uploads/.", v2Route{}, errUploadUnknown},
		{"/a/blobs/uploads/bad id", v2Route{}, errUploadUnknown},
		{"/a/blobs/uploads/bad%2fid", v2Route{}, errUploadUnknown},
		{"/a/blobs/uploads/" + strings.Repeat("u", 257), v2Route{}, errUploadUnknown},
	}
	for _, tt := range tests {
		got, err := parseV2Path(tt.rest)
		if tt.err == nil {
			if err != nil || got != tt.want {
				t.Errorf("parseV2Path(%q) = %+v, %v; want %+v, nil", tt.rest, got, err, tt.want)
			}
			continue
		}
		if !errors.Is(err, tt.err) || got != (v2Route{}) {
			t.Errorf("parseV2Path(%q) = %+v, %v; want zero, %v", tt.rest, got, err, tt.err)
			continue
		}
		ae, internal := toAPIError(err)
		if internal || ae.Code != tt.err.Code || ae.Status != tt.err.Status {
			t.Errorf("parseV2Path(%q): answered %d %s, want %d %s", tt.rest, ae.Status, ae.Code, tt.err.Status, tt.err.Code)
		}
	}
}

func TestParseV2PathErrorDetails(t *testing.T) {
	_, err := parseV2Path("/a/manifests/sha256:baddigeststring")
	ae, _ := toAPIError(err)
	if ae.Status != 400 || ae.Code != CodeDigestInvalid || !strings.Contains(ae.Message, `"sha256:baddigeststring"`) {
		t.Errorf("got %d %s %q, want 400 DIGEST_INVALID naming the digest", ae.Status, ae.Code, ae.Message)
	}
	if errDigestInvalid.Detail != nil || errDigestInvalid.Message != "invalid digest" {
		t.Errorf("the sentinel was modified: %+v", errDigestInvalid)
	}

	_, err = parseV2Path("/" + strings.Repeat("A", 5000) + "/tags/list")
	ae, _ = toAPIError(err)
	if d, ok := ae.Detail.(map[string]string); !ok || len(d["name"]) > 300 {
		t.Errorf("detail %v: want the name, clipped", ae.Detail)
	}
}

func TestRouteKindString(t *testing.T) {
	seen := map[string]bool{}
	for k := routeBase; k <= routeReferrers; k++ {
		s := k.String()
		if s == "unknown" || seen[s] {
			t.Errorf("routeKind(%d).String() = %q: want a distinct name", k, s)
		}
		seen[s] = true
	}
	if routeKind(0).String() != "unknown" {
		t.Errorf("the zero routeKind has a name")
	}
}

// The regular expressions of the OCI distribution spec, anchored.
var (
	v2pathNameRE = regexp.MustCompile(`^[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(\/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*$`)
	v2pathTagRE  = regexp.MustCompile(`^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$`)
)

// v2pathStrings calls fn with every string over alphabet of length 0 to max.
func v2pathStrings(alphabet string, max int, fn func(string)) {
	var rec func(prefix []byte)
	rec = func(prefix []byte) {
		fn(string(prefix))
		if len(prefix) == max {
			return
		}
		for i := 0; i < len(alphabet); i++ {
			rec(append(prefix, alphabet[i]))
		}
	}
	rec(make([]byte, 0, max))
}

func TestValidRepoNameMatchesSpecRegexp(t *testing.T) {
	check := func(s string) {
		want := len(s) <= 255 && v2pathNameRE.MatchString(s)
		if got := validRepoName(s); got != want {
			t.Fatalf("validRepoName(%q) = %v, want %v", s, got, want)
		}
	}
	// Every string up to 6 bytes over an alphabet with every kind of character
	// (letters and digits are alike to the grammar; 'A' stands for the invalid).
	v2pathStrings("a._-/A", 6, check)
	// Random longer strings, biased towards valid names.
	rng := rand.New(rand.NewPCG(1, 2))
	const alphabet = "abz09._-/A%:~ \x00"
	for range 50000 {
		n := rng.IntN(40)
		b := make([]byte, n)
		for i := range b {
			if rng.IntN(3) > 0 {
				b[i] = "abz09"[rng.IntN(5)]
			} else {
				b[i] = alphabet[rng.IntN(len(alphabet))]
			}
		}
		check(string(b))
	}
	// Around the length limit.
	for n := 250; n <= 260; n++ {
		check(strings.Repeat("a", n))
		check(strings.Repeat("a/", n/2) + "a")
	}
}

func TestValidTagMatchesSpecRegexp(t *testing.T) {
	check := func(s string) {
		if got, want := validTag(s), v2pathTagRE.MatchString(s); got != want {
			t.Fatalf("validTag(%q) = %v, want %v", s, got, want)
		}
	}
	v2pathStrings("aZ9_.-:/", 5, check)
	rng := rand.New(rand.NewPCG(3, 4))
	const alphabet = "aZ9_.-:/% \x00\xff"
	for range 30000 {
		b := make([]byte, rng.IntN(20))
		for i := range b {
			b[i] = alphabet[rng.IntN(len(alphabet))]
		}
		check(string(b))
	}
	for n := 126; n <= 130; n++ {
		check(strings.Repeat("t", n))
		check("_" + strings.Repeat(".", n-1))
	}
}

func BenchmarkParseV2Path(b *testing.B) {
	path := "/library/some-project/app.server/manifests/sha256:" + strings.Repeat("5e", 32)
	for b.Loop() {
		if _, err := parseV2Path(path); err != nil {
			b.Fatal(err)
		}
	}
}
