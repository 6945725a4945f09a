package blobstore

import (
	"context"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"fmt"
	"io"
	"testing"

	"github.com/opencontainers/go-digest"
)

// repeatReader yields n bytes by cycling over src, like a client streaming a layer.
type repeatReader struct {
	src []byte
	off int
	n   int64
}

func (r *repeatReader) Read(p []byte) (int, error) {
	if r.n <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > r.n {
		p = p[:r.n]
	}
	m := copy(p, r.src[r.off:])
	r.off = (r.off + m) % len(r.src)
	r.n -= int64(m)
	return m, nil
}

const benchSize = 256 << 20

// benchDigest hashes what repeatReader yields.
func benchDigest(b *testing.B, src []byte, alg digest.Algorithm) digest.Digest {
	b.Helper()
	h := sha256.New()
	if alg == digest.SHA512 {
		h = sha512.New()
	}
	if _, err := io.Copy(h, &repeatReader{src: src, n: benchSize}); err != nil {
		b.Fatal(err)
	}
	return digest.NewDigestFromEncoded(alg, hex.EncodeToString(h.Sum(nil)))
}

// BenchmarkUpload256MiB is a monolithic push (Put) and a streamed one (NewUpload, one
// Write, Commit with its fsyncs) of 256 MiB of incompressible data.
func BenchmarkUpload256MiB(b *testing.B) {
	src := randomBytes(7<<20+13, 42) // not a multiple of the buffer size
	for _, alg := range []digest.Algorithm{digest.SHA256, digest.SHA512} {
		d := benchDigest(b, src, alg)
		b.Run("put-"+string(alg), func(b *testing.B) {
			s, _, _ := testStore(b, Options{})
			b.SetBytes(benchSize)
			for b.Loop() {
				if _, err := s.Put(context.Background(), &repeatReader{src: src, n: benchSize}, d); err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				s.Delete(d)
				b.StartTimer()
			}
		})
		b.Run("session-"+string(alg), func(b *testing.B) {
			s, _, _ := testStore(b, Options{})
			b.SetBytes(benchSize)
			i := 0
			for b.Loop() {
				i++
				u, err := s.NewUpload(fmt.Sprint("bench-", i), alg)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := u.Write(context.Background(), &repeatReader{src: src, n: benchSize}); err != nil {
					b.Fatal(err)
				}
				if _, err := u.Commit(context.Background(), d, benchSize); err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				s.Delete(d)
				b.StartTimer()
			}
		})
	}
}

// BenchmarkSHA256 is the ceiling for BenchmarkUpload256MiB/*-sha256: one core hashing.
func BenchmarkSHA256(b *testing.B) {
	buf := randomBytes(bufSize, 1)
	h := sha256.New()
	b.SetBytes(bufSize)
	for b.Loop() {
		h.Write(buf)
	}
}

// BenchmarkSHA512 is the ceiling for the sha512 variants.
func BenchmarkSHA512(b *testing.B) {
	buf := randomBytes(bufSize, 1)
	h := sha512.New()
	b.SetBytes(bufSize)
	for b.Loop() {
		h.Write(buf)
	}
}
