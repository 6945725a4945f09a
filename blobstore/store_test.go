package blobstore

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	"github.com/prometheus/client_golang/prometheus"
)

func TestPutStatOpenDelete(t *testing.T) {
	s, root, _ := testStore(t, Options{})
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		size int
		alg  digest.Algorithm
	}{
		{"empty", 0, digest.SHA256},
		{"one byte", 1, digest.SHA256},
		{"buffer plus three", bufSize + 3, digest.SHA256},
		{"several buffers", 3*bufSize + 17, digest.SHA256},
		{"sha512", 2*bufSize + 5, digest.SHA512},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data := randomBytes(tc.size, uint64(tc.size))
			d := sha256Of(data)
			if tc.alg == digest.SHA512 {
				d = sha512Of(data)
			}
			if _, err := s.Stat(d); !errors.Is(err, ErrBlobUnknown) {
				t.Fatalf("Stat before Put: got %v, want %v", err, ErrBlobUnknown)
			}
			n, err := s.Put(ctx, bytes.NewReader(data), d)
			if err != nil || n != int64(tc.size) {
				t.Fatalf("Put: got %d, %v, want %d, nil", n, err, tc.size)
			}
			size, err := s.Stat(d)
			if err != nil || size != int64(tc.size) {
				t.Fatalf("Stat: got %d, %v, want %d, nil", size, err, tc.size)
			}
			p, err := s.Path(d)
			want := filepath.Join(root, "blobs", string(tc.alg), d.Encoded()[:2], d.Encoded())
			if err != nil || p != want {
				t.Fatalf("Path: got %q, %v, want %q", p, err, want)
			}
			f, err := s.Open(d)
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			got, err := io.ReadAll(f)
			f.Close()
			if err != nil || !bytes.Equal(got, data) {
				t.Fatalf("Open content: got %d bytes (%v), want %d bytes equal", len(got), err, len(data))
			}
			if err := s.Delete(d); err != nil {
				t.Fatalf("Delete: got %v, want nil", err)
			}
			if err := s.Delete(d); err != nil {
				t.Fatalf("Delete again: got %v, want nil", err)
			}
			if _, err := s.Stat(d); !errors.Is(err, ErrBlobUnknown) {
				t.Fatalf("Stat after Delete: got %v, want %v", err, ErrBlobUnknown)
			}
			if _, err := s.Open(d); !errors.Is(err, ErrBlobUnknown) {
				t.Fatalf("Open after Delete: got %v, want %v", err, ErrBlobUnknown)
			}
		})
	}
	if got := sessionEntries(t, root); len(got) != 0 {
		t.Fatalf("uploads after puts: got %v, want none", got)
	}
}

func TestInvalidDigests(t *testing.T) {
	s, root, _ := testStore(t, Options{})
	ctx := context.Background()
	hex64 := strings.Repeat("ab", 32)
	for _, tc := range []struct {
		name        string
		d           digest.Digest
		unsupported bool
	}{
		{"empty", "", false},
		{"no colon", "sha256", false},
		{"no hex", "sha256:", false},
		{"short", digest.Digest("sha256:" + hex64[:63]), false},
		{"long", digest.Digest("sha256:" + hex64 + "a"), false},
		{"uppercase hex", digest.Digest("sha256:" + strings.ToUpper(hex64)), false},
		{"path in hex", "sha256:../../../../etc/passwd", false},
		{"slash padded", digest.Digest("sha256:" + hex64[:62] + "/a"), false},
		{"sha512 with 64 hex", digest.Digest("sha512:" + hex64), false},
		{"uppercase algorithm", digest.Digest("SHA256:" + hex64), false},
		{"md5", "md5:d41d8cd98f00b204e9800998ecf8427e", true},
		{"blake3", digest.Digest("blake3:" + hex64), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			check := func(op string, err error) {
				t.Helper()
				if !errors.Is(err, ErrDigestInvalid) {
					t.Errorf("%s: got %v, want %v", op, err, ErrDigestInvalid)
				}
				if got := errors.Is(err, ErrDigestUnsupported); got != tc.unsupported {
					t.Errorf("%s: errors.Is(err, ErrDigestUnsupported) got %v, want %v", op, got, tc.unsupported)
				}
			}
			_, err := s.Stat(tc.d)
			check("Stat", err)
			_, err = s.Path(tc.d)
			check("Path", err)
			_, err = s.Open(tc.d)
			check("Open", err)
			check("Delete", s.Delete(tc.d))
			_, err = s.Put(ctx, strings.NewReader("x"), tc.d)
			check("Put", err)
			u, err := s.NewUpload("invalid-digest")
			if err != nil {
				t.Fatalf("NewUpload: %v", err)
			}
			if _, err := u.Write(ctx, strings.NewReader("x")); err != nil {
				t.Fatalf("Write: %v", err)
			}
			_, err = u.Commit(ctx, tc.d, -1)
			check("Commit", err)
			if got := u.Size(); got != 1 {
				t.Fatalf("Size after rejected Commit: got %d, want 1 (session kept)", got)
			}
			if err := u.Cancel(); err != nil {
				t.Fatalf("Cancel: %v", err)
			}
		})
	}
	if got := sessionEntries(t, root); len(got) != 0 {
		t.Fatalf("uploads: got %v, want none", got)
	}
	for _, alg := range []digest.Algorithm{"md5", "sha384"} {
		if _, err := s.NewUpload("x", alg); !errors.Is(err, ErrDigestUnsupported) {
			t.Errorf("NewUpload(%s): got %v, want %v", alg, err, ErrDigestUnsupported)
		}
	}
	if _, err := s.NewUpload("x", "Bad/Alg"); !errors.Is(err, ErrDigestInvalid) || errors.Is(err, ErrDigestUnsupported) {
		t.Errorf("NewUpload(Bad/Alg): got %v, want %v only", err, ErrDigestInvalid)
	}
}

func TestWalk(t *testing.T) {
	s, root, _ := testStore(t, Options{})
	ctx := context.Background()
	want := map[digest.Digest]int64{}
	for i := range 20 {
		data := randomBytes(100+i, uint64(i))
		d := sha256Of(data)
		if i%4 == 0 {
			d = sha512Of(data)
		}
		if _, err := s.Put(ctx, bytes.NewReader(data), d); err != nil {
			t.Fatalf("Put: %v", err)
		}
		want[d] = int64(len(data))
	}
	// Files that are not blobs are skipped.
	junk := []string{
		filepath.Join(root, "blobs", "sha256", "ab", "junk"),
		filepath.Join(root, "blobs", "sha256", "ab", strings.Repeat("cd", 32)), // wrong prefix dir
		filepath.Join(root, "blobs", "sha256", "zz"),
	}
	for _, j := range junk {
		if err := os.WriteFile(j, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got := map[digest.Digest]int64{}
	err := s.Walk(func(d digest.Digest, size int64) error {
		got[d] = size
		return nil
	})
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("Walk: got %v (%v), want %v", got, err, want)
	}
	stop := errors.New("stop")
	calls := 0
	err = s.Walk(func(digest.Digest, int64) error { calls++; return stop })
	if !errors.Is(err, stop) || calls != 1 {
		t.Fatalf("Walk with failing fn: got %v after %d calls, want %v after 1", err, calls, stop)
	}
}

func TestCommitExistingBlob(t *testing.T) {
	ctx := context.Background()
	data := randomBytes(5000, 7)
	d := sha256Of(data)
	for _, tc := range []struct {
		name     string
		existing []byte // what is at the blob path before the commit
	}{
		{"same content", data},
		{"damaged, wrong size", data[:10]},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, root, _ := testStore(t, Options{})
			p, _ := s.Path(d)
			if err := os.WriteFile(p, tc.existing, 0o644); err != nil {
				t.Fatal(err)
			}
			u, err := s.NewUpload("again")
			if err != nil {
				t.Fatal(err)
			}
			if _, err := u.Write(ctx, bytes.NewReader(data)); err != nil {
				t.Fatal(err)
			}
			n, err := u.Commit(ctx, d, int64(len(data)))
			if err != nil || n != int64(len(data)) {
				t.Fatalf("Commit: got %d, %v, want %d, nil", n, err, len(data))
			}
			got, err := os.ReadFile(p)
			if err != nil || !bytes.Equal(got, data) {
				t.Fatalf("blob content: got %d bytes (%v), want %d", len(got), err, len(data))
			}
			var blobs []digest.Digest
			s.Walk(func(d digest.Digest, _ int64) error { blobs = append(blobs, d); return nil })
			if !reflect.DeepEqual(blobs, []digest.Digest{d}) {
				t.Fatalf("blobs: got %v, want [%v]", blobs, d)
			}
			if got := sessionEntries(t, root); len(got) != 0 {
				t.Fatalf("uploads: got %v, want none", got)
			}
			if _, err := u.Write(ctx, strings.NewReader("x")); !errors.Is(err, ErrUploadUnknown) {
				t.Fatalf("Write after Commit: got %v, want %v", err, ErrUploadUnknown)
			}
		})
	}
}

func TestOpenCleansCrashLeftovers(t *testing.T) {
	s, root, reg := testStore(t, Options{})
	if _, err := s.NewUpload("kept"); err != nil {
		t.Fatal(err)
	}
	uploads := filepath.Join(root, "uploads")
	stray := []string{
		filepath.Join(uploads, "kept", "state.tmp-123"),
		filepath.Join(uploads, putPrefix+"ABC", dataName),
	}
	os.MkdirAll(filepath.Join(uploads, putPrefix+"ABC"), 0o755)
	for _, p := range stray {
		if err := os.WriteFile(p, []byte("junk"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if got := metricValue(t, reg, "berth_blobstore_uploads_open"); got != 1 {
		t.Fatalf("uploads_open: got %v, want 1", got)
	}
	reg2 := prometheus.NewRegistry()
	s2 := reopen(t, root, Options{Registerer: reg2})
	for _, p := range stray {
		if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s after Open: got %v, want not exist", p, err)
		}
	}
	if got, want := sessionEntries(t, root), []string{"kept"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("uploads: got %v, want %v", got, want)
	}
	if got := metricValue(t, reg2, "berth_blobstore_uploads_open"); got != 1 {
		t.Fatalf("uploads_open after reopen: got %v, want 1", got)
	}
	if _, err := s2.Upload("kept"); err != nil {
		t.Fatalf("Upload(kept): %v", err)
	}
}

func TestClose(t *testing.T) {
	s, _, _ := testStore(t, Options{})
	u, err := s.NewUpload("u")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	d := sha256Of(nil)
	_, statErr := s.Stat(d)
	_, writeErr := u.Write(context.Background(), strings.NewReader("x"))
	_, upErr := s.Upload("u")
	_, putErr := s.Put(context.Background(), strings.NewReader(""), d)
	for name, err := range map[string]error{"Stat": statErr, "Write": writeErr, "Upload": upErr, "Put": putErr} {
		if !errors.Is(err, ErrClosed) {
			t.Errorf("%s after Close: got %v, want %v", name, err, ErrClosed)
		}
	}
}

func TestMetricsRegistration(t *testing.T) {
	reg := prometheus.NewRegistry()
	if _, err := Open(t.TempDir(), Options{Registerer: reg}); err != nil {
		t.Fatalf("first store: %v", err)
	}
	if _, err := Open(t.TempDir(), Options{Registerer: reg}); err == nil {
		t.Fatalf("second store on the same registry: got nil error, want a registration error")
	}
	if _, err := Open(t.TempDir(), Options{Registerer: prometheus.NewRegistry()}); err != nil {
		t.Fatalf("store on its own registry: %v", err)
	}
	if _, err := Open(t.TempDir(), Options{}); err != nil {
		t.Fatalf("store without metrics: %v", err)
	}
}
