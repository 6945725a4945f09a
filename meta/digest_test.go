package meta

import (
	"errors"
	"strings"
	"testing"
)

func TestParseDigest(t *testing.T) {
	hex64 := strings.Repeat("ab", 32)
	hex128 := strings.Repeat("0f", 64)
	tests := []struct {
		in   string
		want error // nil, ErrDigestInvalid or ErrDigestUnsupported
	}{
		{"sha256:" + hex64, nil},
		{"sha512:" + hex128, nil},
		{"sha256:" + strings.Repeat("0", 64), nil},

		{"", ErrDigestInvalid},
		{"sha256", ErrDigestInvalid},
		{"sha256:", ErrDigestInvalid},
		{":" + hex64, ErrDigestInvalid},
		{"sha256:baddigeststring", ErrDigestInvalid}, // what the conformance suite sends
		{"sha256:" + strings.ToUpper(hex64), ErrDigestInvalid},
		{"sha256:" + hex64[:63], ErrDigestInvalid},
		{"sha256:" + hex64 + "0", ErrDigestInvalid},
		{"sha256:" + hex128, ErrDigestInvalid}, // sha512 length under sha256
		{"sha512:" + hex64, ErrDigestInvalid},
		{"SHA256:" + hex64, ErrDigestInvalid}, // algorithms are lower case
		{"sha256:" + hex64[:62] + "g0", ErrDigestInvalid},
		{"sha256:" + hex64 + "\n", ErrDigestInvalid},
		{" sha256:" + hex64, ErrDigestInvalid},
		{"sha256::" + hex64, ErrDigestInvalid},
		{"md5:", ErrDigestInvalid},
		{"-md5:abc", ErrDigestInvalid},
		{"md5+:abc", ErrDigestInvalid},
		{"md5:a/b", ErrDigestInvalid},
		{"md5:a%2Fb", ErrDigestInvalid},

		{"md5:d41d8cd98f00b204e9800998ecf8427e", ErrDigestUnsupported},
		{"sha384:" + strings.Repeat("a", 96), ErrDigestUnsupported},
		{"blake3:" + hex64, ErrDigestUnsupported},
		{"multihash+base58:QmRZxt2b1FVZPNqd8hsiykDL3TdBDeTSPX9Kv46HmX4Gx8", ErrDigestUnsupported},
		{"sha256+b64u:LCa0a2j_xo_5m0U8HTBBNBNCLXBkg7-g-YpeiGJm564", ErrDigestUnsupported},
	}
	for _, tt := range tests {
		d, err := ParseDigest(tt.in)
		if tt.want == nil {
			if err != nil || string(d) != tt.in {
				t.Errorf("ParseDigest(%q) = %q, %v; want it back, nil", tt.in, d, err)
			}
			continue
		}
		if !errors.Is(err, tt.want) || d != "" {
			t.Errorf("ParseDigest(%q) = %q, %v; want \"\", %v", tt.in, d, err, tt.want)
		}
		if errors.Is(err, ErrDigestInvalid) && errors.Is(err, ErrDigestUnsupported) {
			t.Errorf("ParseDigest(%q): error %v is both invalid and unsupported", tt.in, err)
		}
	}
}

func TestParseDigestMessageIsBounded(t *testing.T) {
	_, err := ParseDigest("sha256:" + strings.Repeat("x", 1<<20))
	if err == nil || len(err.Error()) > 400 {
		t.Fatalf("got an error of %d bytes, want a short one", len(err.Error()))
	}
}

func TestDigestOf(t *testing.T) {
	tests := []struct {
		alg  string
		in   string
		want Digest
	}{
		{SHA256, "", "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
		{SHA256, "abc", "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
		{SHA512, "abc", "sha512:ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f"},
	}
	for _, tt := range tests {
		got := DigestOf(tt.alg, []byte(tt.in))
		if got != tt.want {
			t.Errorf("DigestOf(%s, %q) = %s, want %s", tt.alg, tt.in, got, tt.want)
		}
		if _, err := ParseDigest(string(got)); err != nil {
			t.Errorf("ParseDigest(DigestOf(...)) = %v, want nil", err)
		}
		if got.Algorithm() != tt.alg || len(got.Hex()) != len(string(got))-len(tt.alg)-1 {
			t.Errorf("%s: Algorithm() = %q, Hex() = %q", got, got.Algorithm(), got.Hex())
		}
	}
}

func TestDigestOfUnsupportedPanics(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("DigestOf(\"md5\", ...) did not panic")
		}
	}()
	DigestOf("md5", nil)
}

func TestDigestParts(t *testing.T) {
	tests := []struct {
		d        Digest
		alg, hex string
	}{
		{"sha256:abc", "sha256", "abc"},
		{"nocolon", "", ""},
		{"", "", ""},
		{"a:b:c", "a", "b:c"},
	}
	for _, tt := range tests {
		if got := tt.d.Algorithm(); got != tt.alg {
			t.Errorf("Digest(%q).Algorithm() = %q, want %q", tt.d, got, tt.alg)
		}
		if got := tt.d.Hex(); got != tt.hex {
			t.Errorf("Digest(%q).Hex() = %q, want %q", tt.d, got, tt.hex)
		}
	}
}
