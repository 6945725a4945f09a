package blobstore

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	"github.com/prometheus/client_golang/prometheus"
)

// writeChunks writes data to u in chunks of size chunk, one Write per chunk.
func writeChunks(t *testing.T, u *Upload, data []byte, chunk int) {
	t.Helper()
	for off := 0; off < len(data); off += chunk {
		end := min(off+chunk, len(data))
		n, err := u.Write(context.Background(), bytes.NewReader(data[off:end]))
		if err != nil || n != int64(end-off) {
			t.Fatalf("Write at %d: got %d, %v, want %d, nil", off, n, err, end-off)
		}
	}
	if got := u.Size(); got != int64(len(data)) {
		t.Fatalf("Size: got %d, want %d", got, len(data))
	}
}

func TestChunkedWritesMatchPut(t *testing.T) {
	data := randomBytes(3*bufSize+12345, 1)
	d := sha256Of(data)
	for _, tc := range []struct {
		name  string
		chunk int
	}{
		{"7 KiB", 7 * 1024}, // 450 Writes
		{"one byte short of a buffer", bufSize - 1},
		{"one buffer", bufSize},
		{"odd megabytes", bufSize*2 + 3},
		{"whole", len(data)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, root, _ := testStore(t, Options{})
			u, err := s.NewUpload("chunked")
			if err != nil {
				t.Fatal(err)
			}
			writeChunks(t, u, data, tc.chunk)
			n, err := u.Commit(context.Background(), d, int64(len(data)))
			if err != nil || n != int64(len(data)) {
				t.Fatalf("Commit: got %d, %v, want %d, nil", n, err, len(data))
			}
			p, _ := s.Path(d)
			got, err := os.ReadFile(p)
			if err != nil || !bytes.Equal(got, data) {
				t.Fatalf("blob content: got %d bytes (%v), want %d equal", len(got), err, len(data))
			}
			if got := sessionEntries(t, root); len(got) != 0 {
				t.Fatalf("uploads after Commit: got %v, want none", got)
			}
		})
	}
}

func TestSHA512(t *testing.T) {
	for _, tc := range []struct {
		name       string
		size       int
		declare    bool
		chunk      int
		wantRehash float64
	}{
		{"declared small", 1000, true, 100, 0},
		{"undeclared small", 1000, false, 100, 0},
		{"undeclared at the limit", smallLimit, false, bufSize, 0},
		{"declared large", smallLimit + bufSize + 1, true, bufSize, 0},
		{"undeclared large", smallLimit + 1, false, 3 * bufSize, smallLimit + 1},
		{"undeclared large in one write", smallLimit + bufSize + 1, false, smallLimit + bufSize + 1, smallLimit + bufSize + 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, _, reg := testStore(t, Options{})
			data := randomBytes(tc.size, uint64(tc.size))
			var algs []digest.Algorithm
			if tc.declare {
				algs = []digest.Algorithm{digest.SHA512}
			}
			u, err := s.NewUpload("s512", algs...)
			if err != nil {
				t.Fatal(err)
			}
			writeChunks(t, u, data, tc.chunk)
			d := sha512Of(data)
			if n, err := u.Commit(context.Background(), d, -1); err != nil || n != int64(tc.size) {
				t.Fatalf("Commit: got %d, %v, want %d, nil", n, err, tc.size)
			}
			if got := metricValue(t, reg, "berth_blobstore_rehash_bytes_total"); got != tc.wantRehash {
				t.Fatalf("rehash bytes: got %v, want %v", got, tc.wantRehash)
			}
			if size, err := s.Stat(d); err != nil || size != int64(tc.size) {
				t.Fatalf("Stat: got %d, %v, want %d, nil", size, err, tc.size)
			}
		})
	}
}

func TestDigestMismatchLeavesNothing(t *testing.T) {
	ctx := context.Background()
	data := randomBytes(2*bufSize+1, 3)
	other := randomBytes(10, 4)
	for _, tc := range []struct {
		name string
		want digest.Digest
	}{
		{"sha256", sha256Of(other)},
		{"sha512 streamed", sha512Of(other)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, root, reg := testStore(t, Options{})
			u, err := s.NewUpload("bad")
			if err != nil {
				t.Fatal(err)
			}
			writeChunks(t, u, data, bufSize/2)
			if _, err := u.Commit(ctx, tc.want, -1); !errors.Is(err, ErrDigestInvalid) {
				t.Fatalf("Commit: got %v, want %v", err, ErrDigestInvalid)
			}
			if _, err := s.Put(ctx, bytes.NewReader(data), tc.want); !errors.Is(err, ErrDigestInvalid) {
				t.Fatalf("Put: got %v, want %v", err, ErrDigestInvalid)
			}
			if got := sessionEntries(t, root); len(got) != 0 {
				t.Fatalf("uploads: got %v, want none", got)
			}
			for _, d := range []digest.Digest{tc.want, sha256Of(data), sha512Of(data)} {
				if _, err := s.Stat(d); !errors.Is(err, ErrBlobUnknown) {
					t.Fatalf("Stat(%s): got %v, want %v", d, err, ErrBlobUnknown)
				}
			}
			if _, err := s.Upload("bad"); !errors.Is(err, ErrUploadUnknown) {
				t.Fatalf("Upload(bad): got %v, want %v", err, ErrUploadUnknown)
			}
			if got := metricValue(t, reg, "berth_blobstore_uploads_open"); got != 0 {
				t.Fatalf("uploads_open: got %v, want 0", got)
			}
		})
	}
}

func TestSizeMismatch(t *testing.T) {
	s, _, reg := testStore(t, Options{})
	ctx := context.Background()
	data := randomBytes(1234, 5)
	d := sha256Of(data)
	u, err := s.NewUpload("size")
	if err != nil {
		t.Fatal(err)
	}
	writeChunks(t, u, data, 1000)
	for _, size := range []int64{0, 1233, 1235} {
		if _, err := u.Commit(ctx, d, size); !errors.Is(err, ErrSizeInvalid) {
			t.Fatalf("Commit(size %d): got %v, want %v", size, err, ErrSizeInvalid)
		}
	}
	if _, err := s.Stat(d); !errors.Is(err, ErrBlobUnknown) {
		t.Fatalf("Stat after size mismatch: got %v, want %v", err, ErrBlobUnknown)
	}
	if n, err := u.Commit(ctx, d, 1234); err != nil || n != 1234 {
		t.Fatalf("Commit(right size): got %d, %v, want 1234, nil", n, err)
	}
	if got := metricValue(t, reg, "berth_blobstore_blobs_committed_total"); got != 1 {
		t.Fatalf("blobs committed: got %v, want 1", got)
	}
	if got := metricValue(t, reg, "berth_blobstore_commit_duration_seconds"); got != 1 {
		t.Fatalf("commit duration samples: got %v, want 1", got)
	}
	if got := metricValue(t, reg, "berth_blobstore_written_bytes_total"); got != 1234 {
		t.Fatalf("written bytes: got %v, want 1234", got)
	}
}

func TestResumeAfterRestart(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name    string
		size    int
		declare []digest.Algorithm
		alg     digest.Algorithm
	}{
		{"sha256", 3*bufSize + 5, nil, digest.SHA256},
		{"sha512 declared", 3*bufSize + 5, []digest.Algorithm{digest.SHA512}, digest.SHA512},
		{"sha512 undeclared small", 5000, nil, digest.SHA512},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clock := newFakeClock()
			s, root, _ := testStore(t, Options{Clock: clock.Now})
			data := randomBytes(tc.size, 6)
			u, err := s.NewUpload("resume", tc.declare...)
			if err != nil {
				t.Fatal(err)
			}
			started := u.StartedAt()
			half := tc.size / 2
			writeChunks(t, u, data[:half], 1000+half/3)

			clock.Advance(time.Minute)
			reg := prometheus.NewRegistry()
			s2 := reopen(t, root, Options{Clock: clock.Now, Registerer: reg})
			u2, err := s2.Upload("resume")
			if err != nil {
				t.Fatalf("Upload after restart: %v", err)
			}
			if got := u2.Size(); got != int64(half) {
				t.Fatalf("Size after restart: got %d, want %d", got, half)
			}
			if got := u2.StartedAt(); !got.Equal(started) {
				t.Fatalf("StartedAt after restart: got %v, want %v", got, started)
			}
			if again, _ := s2.Upload("resume"); again != u2 {
				t.Fatalf("second Upload: got another handle, want the same")
			}
			if _, err := u2.Write(ctx, bytes.NewReader(data[half:])); err != nil {
				t.Fatal(err)
			}
			d := sha256Of(data)
			if tc.alg == digest.SHA512 {
				d = sha512Of(data)
			}
			if n, err := u2.Commit(ctx, d, int64(tc.size)); err != nil || n != int64(tc.size) {
				t.Fatalf("Commit: got %d, %v, want %d, nil", n, err, tc.size)
			}
			if got := metricValue(t, reg, "berth_blobstore_rehash_bytes_total"); got != 0 {
				t.Fatalf("rehash bytes: got %v, want 0", got)
			}
		})
	}
}

func TestCrashRecovery(t *testing.T) {
	ctx := context.Background()
	data := randomBytes(2*bufSize+99, 8)
	half := len(data) / 2
	for _, tc := range []struct {
		name     string
		damage   func(dataFile string) error
		wantSize int64 // -1: session unknown and removed
	}{
		{"data longer than state", func(p string) error {
			f, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND, 0)
			if err != nil {
				return err
			}
			defer f.Close()
			_, err = f.Write(randomBytes(12345, 9)) // written, never recorded
			return err
		}, int64(half)},
		{"data shorter than state", func(p string) error { return os.Truncate(p, int64(half-1)) }, -1},
		{"data file missing", os.Remove, -1},
		{"state corrupt", func(p string) error {
			return os.WriteFile(filepath.Join(filepath.Dir(p), stateName), []byte("{"), 0o644)
		}, -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, root, _ := testStore(t, Options{})
			u, err := s.NewUpload("crash")
			if err != nil {
				t.Fatal(err)
			}
			writeChunks(t, u, data[:half], bufSize/3)
			dataFile := filepath.Join(root, "uploads", "crash", dataName)
			if err := tc.damage(dataFile); err != nil {
				t.Fatal(err)
			}
			reg := prometheus.NewRegistry()
			s2 := reopen(t, root, Options{Registerer: reg})
			u2, err := s2.Upload("crash")
			if tc.wantSize < 0 {
				if !errors.Is(err, ErrUploadUnknown) {
					t.Fatalf("Upload: got %v, want %v", err, ErrUploadUnknown)
				}
				if got := sessionEntries(t, root); len(got) != 0 {
					t.Fatalf("uploads: got %v, want none", got)
				}
				if got := metricValue(t, reg, "berth_blobstore_uploads_open"); got != 0 {
					t.Fatalf("uploads_open: got %v, want 0", got)
				}
				return
			}
			if err != nil {
				t.Fatalf("Upload: %v", err)
			}
			if got := u2.Size(); got != tc.wantSize {
				t.Fatalf("Size: got %d, want %d", got, tc.wantSize)
			}
			fi, err := os.Stat(dataFile)
			if err != nil || fi.Size() != tc.wantSize {
				t.Fatalf("data file: got %v (%v), want %d bytes", fi.Size(), err, tc.wantSize)
			}
			if _, err := u2.Write(ctx, bytes.NewReader(data[half:])); err != nil {
				t.Fatal(err)
			}
			if _, err := u2.Commit(ctx, sha256Of(data), int64(len(data))); err != nil {
				t.Fatalf("Commit: %v", err)
			}
		})
	}
}

// gateReader blocks its first Read until release is closed, after signalling started.
type gateReader struct {
	started chan struct{}
	release chan struct{}
	r       io.Reader
	once    sync.Once
}

func (g *gateReader) Read(p []byte) (int, error) {
	g.once.Do(func() { close(g.started); <-g.release })
	return g.r.Read(p)
}

func TestConcurrentWriteIsBusy(t *testing.T) {
	s, _, _ := testStore(t, Options{})
	ctx := context.Background()
	u, err := s.NewUpload("busy")
	if err != nil {
		t.Fatal(err)
	}
	data := randomBytes(100, 10)
	g := &gateReader{started: make(chan struct{}), release: make(chan struct{}), r: bytes.NewReader(data)}
	type result struct {
		n   int64
		err error
	}
	done := make(chan result)
	go func() {
		n, err := u.Write(ctx, g)
		done <- result{n, err}
	}()
	<-g.started
	same, err := s.Upload("busy")
	if err != nil || same != u {
		t.Fatalf("Upload during Write: got %p, %v, want %p, nil", same, err, u)
	}
	if _, err := same.Write(ctx, strings.NewReader("x")); !errors.Is(err, ErrUploadBusy) {
		t.Errorf("second Write: got %v, want %v", err, ErrUploadBusy)
	}
	if _, err := u.Commit(ctx, sha256Of(data), -1); !errors.Is(err, ErrUploadBusy) {
		t.Errorf("Commit during Write: got %v, want %v", err, ErrUploadBusy)
	}
	if err := u.Cancel(); !errors.Is(err, ErrUploadBusy) {
		t.Errorf("Cancel during Write: got %v, want %v", err, ErrUploadBusy)
	}
	if n, err := s.ExpireUploads(); err != nil || n != 0 {
		t.Errorf("ExpireUploads during Write: got %d, %v, want 0, nil", n, err)
	}
	close(g.release)
	if r := <-done; r.err != nil || r.n != 100 {
		t.Fatalf("first Write: got %d, %v, want 100, nil", r.n, r.err)
	}
	if _, err := u.Commit(ctx, sha256Of(data), 100); err != nil {
		t.Fatalf("Commit after Write: %v", err)
	}
}

func TestExpireUploads(t *testing.T) {
	clock := newFakeClock()
	s, root, reg := testStore(t, Options{Clock: clock.Now, UploadTTL: time.Hour})
	ctx := context.Background()
	idle, err := s.NewUpload("idle")
	if err != nil {
		t.Fatal(err)
	}
	active, err := s.NewUpload("active")
	if err != nil {
		t.Fatal(err)
	}
	clock.Advance(40 * time.Minute)
	if _, err := active.Write(ctx, strings.NewReader("still here")); err != nil {
		t.Fatal(err)
	}
	for _, step := range []struct {
		advance time.Duration
		want    int
		gone    []string
	}{
		{0, 0, nil},
		{20*time.Minute + time.Second, 1, []string{"idle"}}, // idle: 60m1s, active: 20m1s
		{39 * time.Minute, 0, nil},                          // active: 59m1s
	} {
		clock.Advance(step.advance)
		n, err := s.ExpireUploads()
		if err != nil || n != step.want {
			t.Fatalf("ExpireUploads at +%v: got %d, %v, want %d, nil", step.advance, n, err, step.want)
		}
		for _, id := range step.gone {
			if _, err := s.Upload(id); !errors.Is(err, ErrUploadUnknown) {
				t.Fatalf("Upload(%s): got %v, want %v", id, err, ErrUploadUnknown)
			}
		}
	}
	if _, err := idle.Write(ctx, strings.NewReader("x")); !errors.Is(err, ErrUploadUnknown) {
		t.Fatalf("Write on expired session: got %v, want %v", err, ErrUploadUnknown)
	}
	if got := metricValue(t, reg, "berth_blobstore_uploads_expired_total"); got != 1 {
		t.Fatalf("uploads expired: got %v, want 1", got)
	}
	if got := metricValue(t, reg, "berth_blobstore_uploads_open"); got != 1 {
		t.Fatalf("uploads open: got %v, want 1", got)
	}

	// The last activity survives a restart.
	clock.Advance(2 * time.Minute)
	s2 := reopen(t, root, Options{Clock: clock.Now, UploadTTL: time.Hour})
	if n, err := s2.ExpireUploads(); err != nil || n != 1 {
		t.Fatalf("ExpireUploads after restart: got %d, %v, want 1, nil", n, err)
	}
	if got := sessionEntries(t, root); len(got) != 0 {
		t.Fatalf("uploads: got %v, want none", got)
	}
}

func TestUploadIDs(t *testing.T) {
	s, root, _ := testStore(t, Options{})
	for _, tc := range []struct {
		id    string
		valid bool
	}{
		{"", false},
		{".", false},
		{"..", false},
		{"../x", false},
		{"a/b", false},
		{`a\b`, false},
		{"a b", false},
		{"~put-x", false},
		{"é", false},
		{"x\x00", false},
		{strings.Repeat("a", 129), false},
		{"a", true},
		{"...", true},
		{"node-1.Abc_DEF-09", true},
		{strings.Repeat("a", 128), true},
	} {
		u, err := s.NewUpload(tc.id)
		if tc.valid {
			if err != nil || u.ID() != tc.id {
				t.Errorf("NewUpload(%q): got %v, want a session", tc.id, err)
			}
			if _, err := s.NewUpload(tc.id); !errors.Is(err, ErrUploadInvalid) {
				t.Errorf("NewUpload(%q) twice: got %v, want %v", tc.id, err, ErrUploadInvalid)
			}
			continue
		}
		if !errors.Is(err, ErrUploadInvalid) {
			t.Errorf("NewUpload(%q): got %v, want %v", tc.id, err, ErrUploadInvalid)
		}
		if _, err := s.Upload(tc.id); !errors.Is(err, ErrUploadInvalid) {
			t.Errorf("Upload(%q): got %v, want %v", tc.id, err, ErrUploadInvalid)
		}
	}
	if _, err := s.Upload("never-created"); !errors.Is(err, ErrUploadUnknown) {
		t.Errorf("Upload(never-created): got %v, want %v", err, ErrUploadUnknown)
	}
	// Nothing was created outside uploads/.
	es, _ := os.ReadDir(root)
	if len(es) != 2 {
		t.Errorf("root entries: got %d, want 2 (blobs, uploads)", len(es))
	}
}

// cancelingReader serves data and cancels ctx once it has served after bytes.
type cancelingReader struct {
	r      io.Reader
	served int
	after  int
	cancel context.CancelFunc
	err    error // returned instead of cancelling, when set
}

func (c *cancelingReader) Read(p []byte) (int, error) {
	if c.served >= c.after {
		if c.err != nil {
			return 0, c.err
		}
		c.cancel()
	}
	n, err := c.r.Read(p)
	c.served += n
	return n, err
}

func TestInterruptedWriteKeepsSessionConsistent(t *testing.T) {
	data := randomBytes(6*bufSize+123, 11)
	first := 1000
	errPeer := errors.New("peer reset")
	for _, tc := range []struct {
		name    string
		after   int
		readErr error
		wantErr error
	}{
		{"ctx canceled mid-write", 2*bufSize + 500, nil, context.Canceled},
		{"ctx canceled at start", 0, nil, context.Canceled},
		{"reader error mid-write", 3*bufSize + 7, errPeer, errPeer},
		{"truncated body", 100, io.ErrUnexpectedEOF, io.ErrUnexpectedEOF},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, root, _ := testStore(t, Options{})
			u, err := s.NewUpload("interrupted", digest.SHA512)
			if err != nil {
				t.Fatal(err)
			}
			writeChunks(t, u, data[:first], first)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			r := &cancelingReader{r: bytes.NewReader(data[first:]), after: tc.after, cancel: cancel, err: tc.readErr}
			n, err := u.Write(ctx, r)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("Write: got %v, want %v", err, tc.wantErr)
			}
			// A failed Write is dropped entirely.
			size := u.Size()
			if n != 0 || size != int64(first) {
				t.Fatalf("Write, Size: got %d, %d, want 0, %d", n, size, first)
			}
			fi, err := os.Stat(filepath.Join(root, "uploads", "interrupted", dataName))
			if err != nil || fi.Size() != size {
				t.Fatalf("data file: got %d bytes (%v), want %d", fi.Size(), err, size)
			}
			// Resume from Size, in a restarted store half of the time.
			if tc.after%2 == 1 {
				s = reopen(t, root, Options{})
				if u, err = s.Upload("interrupted"); err != nil {
					t.Fatalf("Upload after restart: %v", err)
				}
				if got := u.Size(); got != size {
					t.Fatalf("Size after restart: got %d, want %d", got, size)
				}
			}
			if _, err := u.Write(context.Background(), bytes.NewReader(data[size:])); err != nil {
				t.Fatalf("resume Write: %v", err)
			}
			for _, d := range []digest.Digest{sha512Of(data), sha256Of(data)} {
				if _, err := u.Commit(context.Background(), d, int64(len(data))); err != nil {
					t.Fatalf("Commit(%s): %v", d.Algorithm(), err)
				}
				if u, err = s.NewUpload("interrupted", digest.SHA512); err != nil {
					t.Fatal(err)
				}
				writeChunks(t, u, data, bufSize)
			}
		})
	}
}

func TestConcurrentSessions(t *testing.T) {
	s, root, _ := testStore(t, Options{})
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			data := randomBytes(bufSize+i*1000, uint64(i%4)) // pairs share content
			id := string(rune('a' + i))
			u, err := s.NewUpload(id)
			if err != nil {
				errs <- err
				return
			}
			for off := 0; off < len(data); off += 100_000 {
				// Look the session up again each time, as a PATCH handler would.
				if u, err = s.Upload(id); err != nil {
					errs <- err
					return
				}
				if _, err := u.Write(ctx, bytes.NewReader(data[off:min(off+100_000, len(data))])); err != nil {
					errs <- err
					return
				}
			}
			if _, err := u.Commit(ctx, sha256Of(data), int64(len(data))); err != nil {
				errs <- err
			}
			if _, err := s.Put(ctx, bytes.NewReader(data), sha256Of(data)); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if got := sessionEntries(t, root); len(got) != 0 {
		t.Fatalf("uploads: got %v, want none", got)
	}
}

// A failed Write that crossed smallLimit must give back the sha512 state it dropped.
func TestFailedWriteRestoresSmallSHA512(t *testing.T) {
	s, _, reg := testStore(t, Options{})
	data := randomBytes(smallLimit, 12)
	u, err := s.NewUpload("small")
	if err != nil {
		t.Fatal(err)
	}
	writeChunks(t, u, data[:3*bufSize], bufSize)
	errPeer := errors.New("peer reset")
	r := &cancelingReader{r: bytes.NewReader(randomBytes(3*bufSize, 13)), after: 2*bufSize + 1, err: errPeer}
	if n, err := u.Write(context.Background(), r); !errors.Is(err, errPeer) || n != 0 {
		t.Fatalf("Write past the limit: got %d, %v, want 0, %v", n, err, errPeer)
	}
	if n, err := u.Write(context.Background(), bytes.NewReader(data[3*bufSize:])); err != nil || n != bufSize {
		t.Fatalf("resume: got %d, %v, want %d, nil", n, err, bufSize)
	}
	if _, err := u.Commit(context.Background(), sha512Of(data), smallLimit); err != nil {
		t.Fatalf("Commit: %v", err)
	}
	if got := metricValue(t, reg, "berth_blobstore_rehash_bytes_total"); got != 0 {
		t.Fatalf("rehash bytes: got %v, want 0", got)
	}
}
