package api

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/crypto/bcrypt"

	"github.com/berth-registry/berth/meta"
)

// authKV is an in-memory metadata store for the auth tests: a meta.Reader, and a
// Proposer that runs meta.Apply on it. It is safe for concurrent use.
type authKV struct {
	mu    sync.RWMutex // guards the fields below
	m     map[string][]byte
	index uint64
}

func newAuthKV() *authKV { return &authKV{m: map[string][]byte{}} }

func (kv *authKV) Get(k []byte) ([]byte, error) {
	kv.mu.RLock()
	defer kv.mu.RUnlock()
	return kv.getLocked(k)
}

func (kv *authKV) getLocked(k []byte) ([]byte, error) {
	v, ok := kv.m[string(k)]
	if !ok {
		return nil, meta.ErrNotFound
	}
	return bytes.Clone(v), nil
}

func (kv *authKV) Scan(start, end []byte, fn func(k, v []byte) error) error {
	kv.mu.RLock()
	keys, vals := kv.rangeLocked(start, end)
	kv.mu.RUnlock()
	return scanEach(keys, vals, fn)
}

func (kv *authKV) rangeLocked(start, end []byte) ([]string, [][]byte) {
	var keys []string
	for k := range kv.m {
		if k >= string(start) && (end == nil || k < string(end)) {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	vals := make([][]byte, len(keys))
	for i, k := range keys {
		vals[i] = bytes.Clone(kv.m[k])
	}
	return keys, vals
}

func scanEach(keys []string, vals [][]byte, fn func(k, v []byte) error) error {
	for i, k := range keys {
		if err := fn([]byte(k), vals[i]); err != nil {
			if errors.Is(err, meta.ErrStopScan) {
				return nil
			}
			return err
		}
	}
	return nil
}

// authTxn is the transaction Propose applies in; kv.mu is held.
type authTxn struct{ kv *authKV }

func (t authTxn) Get(k []byte) ([]byte, error) { return t.kv.getLocked(k) }
func (t authTxn) Set(k, v []byte) error        { t.kv.m[string(k)] = bytes.Clone(v); return nil }
func (t authTxn) Delete(k []byte) error        { delete(t.kv.m, string(k)); return nil }
func (t authTxn) Scan(start, end []byte, fn func(k, v []byte) error) error {
	keys, vals := t.kv.rangeLocked(start, end)
	return scanEach(keys, vals, fn)
}

func (kv *authKV) Propose(_ context.Context, c meta.Command) error {
	data, err := meta.Encode(c)
	if err != nil {
		return err
	}
	kv.mu.Lock()
	defer kv.mu.Unlock()
	kv.index++
	if res := meta.Apply(authTxn{kv}, kv.index, data); res != nil {
		if err, ok := res.(error); ok {
			return err
		}
		return errors.New("unexpected apply result")
	}
	return nil
}

// authBlobs has no blobs.
type authBlobs struct{}

func (authBlobs) Stat(digest.Digest) (int64, error)    { return 0, os.ErrNotExist }
func (authBlobs) Open(digest.Digest) (*os.File, error) { return nil, os.ErrNotExist }
func (authBlobs) Put(context.Context, io.Reader, digest.Digest) (int64, error) {
	return 0, errors.New("no blobs in auth tests")
}
func (authBlobs) NewUpload(string, ...digest.Algorithm) (Upload, error) {
	return nil, errors.New("no blobs in auth tests")
}
func (authBlobs) Upload(string) (Upload, error) { return nil, errors.New("no blobs in auth tests") }

// fakeClock is a clock tests move by hand.
type fakeClock struct {
	mu sync.Mutex // guards t
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// authFixture is a Server over seeded tenancy metadata:
//
//	users    admin (cloud admin), alice (project-admin of p1), dev (developer of p1),
//	         guest (guest of p1), bob (developer of p2), nobody (no project),
//	         dis (developer of p1, disabled); password "<name>-pw"
//	robots   robot$p1+ci (p1priv: pull, push), robot$p1+ro (p1priv: pull),
//	         robot$p1+old (expired), robot$p1+off (disabled); secret "<name>-secret"
//	spaces   p1pub (public), p1priv (private) of p1; p2pub, p2priv of p2
//	repos    <ws>/app in each workspace, with one blob
type authFixture struct {
	t        testing.TB
	s        *Server
	kv       *authKV
	clock    *fakeClock
	reg      *prometheus.Registry
	compares atomic.Int64 // bcrypt comparisons run
}

var fixtureWorkspaces = []string{"p1pub", "p1priv", "p2pub", "p2priv"}

func newAuthFixture(t testing.TB, mod func(*Config)) *authFixture {
	t.Helper()
	f := &authFixture{t: t, kv: newAuthKV(), reg: prometheus.NewRegistry(),
		clock: &fakeClock{t: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)}}
	cfg := Config{NodeID: "n1", Clock: f.clock.Now, Registerer: f.reg}
	if mod != nil {
		mod(&cfg)
	}
	s, err := New(cfg, Deps{Meta: f.kv, Proposer: f.kv, Blobs: authBlobs{}})
	if err != nil {
		t.Fatal(err)
	}
	compare := s.auth.compare
	s.auth.compare = func(h, p []byte) error { f.compares.Add(1); return compare(h, p) }
	f.s = s

	now := f.clock.Now()
	hash := func(pw string) []byte {
		h, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.MinCost)
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	cmds := []meta.Command{
		&meta.PutProject{Name: "p1", Create: true, Time: now},
		&meta.PutProject{Name: "p2", Create: true, Time: now},
	}
	for _, u := range []struct {
		name        string
		admin, dis  bool
		project     string
		role        meta.Role
		withProject bool
	}{
		{name: "admin", admin: true},
		{name: "alice", project: "p1", role: meta.RoleProjectAdmin},
		{name: "dev", project: "p1", role: meta.RoleDeveloper},
		{name: "guest", project: "p1", role: meta.RoleGuest},
		{name: "bob", project: "p2", role: meta.RoleDeveloper},
		{name: "nobody"},
		{name: "dis", dis: true, project: "p1", role: meta.RoleDeveloper},
	} {
		cmds = append(cmds, &meta.PutUser{Name: u.name, PasswordHash: hash(u.name + "-pw"), CloudAdmin: u.admin, Disabled: u.dis, Create: true, Time: now})
		if u.project != "" {
			cmds = append(cmds, &meta.SetMember{Project: u.project, User: u.name, Role: u.role, Time: now})
		}
	}
	for _, ws := range fixtureWorkspaces {
		vis := meta.Private
		if strings.HasSuffix(ws, "pub") {
			vis = meta.Public
		}
		cmds = append(cmds, &meta.PutWorkspace{Name: ws, Project: ws[:2], Visibility: vis, Create: true, Time: now},
			&meta.PutBlob{Repo: ws + "/app", Digest: meta.DigestOf("sha256", []byte(ws)), Size: int64(len(ws)), Time: now})
	}
	for _, rb := range []struct {
		name    string
		actions []string
		expires time.Time
		dis     bool
	}{
		{name: "ci", actions: []string{"pull", "push"}},
		{name: "ro", actions: []string{"pull"}},
		{name: "old", actions: []string{"pull"}, expires: now.Add(-time.Hour)},
		{name: "off", actions: []string{"pull"}, dis: true},
	} {
		cmds = append(cmds, &meta.PutRobot{Project: "p1", Name: rb.name, SecretHash: hash(rb.name + "-secret"),
			Workspaces: []string{"p1priv"}, Actions: rb.actions, Expires: rb.expires, Disabled: rb.dis, Create: true, Time: now})
	}
	f.must(cmds...)
	return f
}

func (f *authFixture) must(cmds ...meta.Command) {
	f.t.Helper()
	for _, c := range cmds {
		if err := f.kv.Propose(context.Background(), c); err != nil {
			f.t.Fatalf("propose %T: %v", c, err)
		}
	}
}

func basicAuth(user, pass string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))
}

// do serves one request; auth is the Authorization header ("" for none), and
// hdr more header pairs.
func (f *authFixture) do(method, target, auth string, body io.Reader, hdr ...string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(method, target, body)
	r.Host = "registry.test"
	r.RemoteAddr = "192.0.2.1:1234"
	if auth != "" {
		r.Header.Set("Authorization", auth)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		r.Header.Set(hdr[i], hdr[i+1])
	}
	w := httptest.NewRecorder()
	f.s.ServeHTTP(w, r)
	return w
}

// token fetches a token with Basic credentials (user "" for none) for scopes.
func (f *authFixture) token(user, pass string, scopes ...string) string {
	f.t.Helper()
	q := "/auth/token?service=berth"
	for _, sc := range scopes {
		q += "&scope=" + url.QueryEscape(sc)
	}
	auth := ""
	if user != "" {
		auth = basicAuth(user, pass)
	}
	w := f.do("GET", q, auth, nil)
	if w.Code != http.StatusOK {
		f.t.Fatalf("token for %q: %d %s", user, w.Code, w.Body)
	}
	var tr tokenResponse
	if err := json.Unmarshal(w.Body.Bytes(), &tr); err != nil {
		f.t.Fatal(err)
	}
	return tr.Token
}

// errCode returns the OCI error code of a response body.
func errCode(w *httptest.ResponseRecorder) string {
	var e struct{ Errors []struct{ Code string } }
	if json.Unmarshal(w.Body.Bytes(), &e) != nil || len(e.Errors) == 0 {
		return ""
	}
	return e.Errors[0].Code
}

// counter reads a counter of the fixture's registry (labels as name=value pairs).
func (f *authFixture) counter(name string, labels ...string) float64 {
	f.t.Helper()
	mfs, err := f.reg.Gather()
	if err != nil {
		f.t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			for i := 0; i+1 < len(labels); i += 2 {
				found := false
				for _, lp := range m.GetLabel() {
					if lp.GetName() == labels[i] && lp.GetValue() == labels[i+1] {
						found = true
					}
				}
				if !found {
					continue next
				}
			}
			return m.GetCounter().GetValue()
		}
	}
	return 0
}
