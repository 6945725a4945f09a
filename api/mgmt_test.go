package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/berth-registry/berth/meta"
)

// The management API end to end (authentication, roles, a real node) is tested in
// node/mgmt_test.go; these tests cover what needs no credentials: the OpenAPI
// document against the routes, paging across workspaces, tag sizes, the error
// table.

// openAPIPath turns an httprouter path into its OpenAPI form (":x" and "*x"
// become "{x}").
func openAPIPath(p string) string {
	parts := strings.Split(p, "/")
	for i, s := range parts {
		if strings.HasPrefix(s, ":") || strings.HasPrefix(s, "*") {
			parts[i] = "{" + s[1:] + "}"
		}
	}
	return strings.Join(parts, "/")
}

func TestOpenAPIDescribesEveryRoute(t *testing.T) {
	var doc struct {
		OpenAPI string                                `json:"openapi"`
		Paths   map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(openAPI, &doc); err != nil {
		t.Fatalf("openapi.json: %v", err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.") {
		t.Errorf("openapi version %q, want 3.x", doc.OpenAPI)
	}
	served := map[string]bool{} // "METHOD path"
	for _, rt := range mgmtRoutes {
		paths := append([]string{openAPIPath(rt.path)}, rt.alsoServes...)
		for _, p := range paths {
			served[rt.method+" "+p] = true
			if _, ok := doc.Paths[p][strings.ToLower(rt.method)]; !ok {
				t.Errorf("route %s %s is not in openapi.json (as %s)", rt.method, rt.path, p)
			}
		}
	}
	for p, ops := range doc.Paths {
		for m := range ops {
			if m == "parameters" {
				continue
			}
			if !served[strings.ToUpper(m)+" "+p] {
				t.Errorf("openapi.json describes %s %s, which no route serves", strings.ToUpper(m), p)
			}
		}
	}
}

// TestOpenAPIRefsResolve checks that every $ref points at a component that exists.
func TestOpenAPIRefsResolve(t *testing.T) {
	var doc map[string]any
	if err := json.Unmarshal(openAPI, &doc); err != nil {
		t.Fatal(err)
	}
	components := doc["components"].(map[string]any)
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			if ref, ok := v["$ref"].(string); ok {
				parts := strings.Split(strings.TrimPrefix(ref, "#/components/"), "/")
				group, _ := components[parts[0]].(map[string]any)
				if len(parts) != 2 || group == nil || group[parts[1]] == nil {
					t.Errorf("unresolved $ref %q", ref)
				}
			}
			for _, x := range v {
				walk(x)
			}
		case []any:
			for _, x := range v {
				walk(x)
			}
		}
	}
	walk(doc)
}

func TestMgmtError(t *testing.T) {
	for _, tc := range []struct {
		err    error
		status int
		code   ErrorCode
		msg    string
	}{
		{fmt.Errorf("%w: web", meta.ErrProjectUnknown), 404, CodeNotFound, "project unknown: web"},
		{mgmtProjectUnknown("web"), 404, CodeNotFound, "project unknown: web"},
		{fmt.Errorf("propose: %w", fmt.Errorf("%w: user alice", meta.ErrExists)), 409, CodeConflict, "already exists: user alice"},
		{fmt.Errorf("%w: project p still owns workspaces [a]; delete them first", meta.ErrConflict), 409, CodeConflict, "conflict: project p still owns workspaces [a]; delete them first"},
		{fmt.Errorf("%w: role %q", meta.ErrInvalid, "boss"), 400, CodeInvalid, `invalid: role "boss"`},
		{mgmtDenied("no"), 403, CodeDenied, "no"},
		{fmt.Errorf("%w: a/b", meta.ErrNameUnknown), 404, CodeNameUnknown, CodeNameUnknown.Message()},
	} {
		ae, _ := toAPIError(mgmtError(tc.err))
		if ae.Status != tc.status || ae.Code != tc.code || ae.Message != tc.msg {
			t.Errorf("%v: got %d %s %q, want %d %s %q", tc.err, ae.Status, ae.Code, ae.Message, tc.status, tc.code, tc.msg)
		}
	}
}

// memKV is a meta.Txn in memory, and a Proposer that applies commands to it as
// the FSM would.
type memKV struct {
	mu    sync.Mutex // guards the fields below
	m     map[string][]byte
	index uint64
}

func newMemKV() *memKV { return &memKV{m: map[string][]byte{}} }

func (kv *memKV) Get(k []byte) ([]byte, error) {
	kv.mu.Lock()
	defer kv.mu.Unlock()
	return kv.get(k)
}

func (kv *memKV) get(k []byte) ([]byte, error) {
	v, ok := kv.m[string(k)]
	if !ok {
		return nil, meta.ErrNotFound
	}
	return bytes.Clone(v), nil
}

func (kv *memKV) Scan(start, end []byte, fn func(k, v []byte) error) error {
	kv.mu.Lock()
	var keys []string
	for k := range kv.m {
		if k >= string(start) && (end == nil || k < string(end)) {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	vals := make([][]byte, len(keys))
	for i, k := range keys {
		vals[i] = kv.m[k]
	}
	kv.mu.Unlock()
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

// memTxn writes through to the map; a domain error leaves the state unchanged
// because every apply checks before it writes.
type memTxn struct{ kv *memKV }

func (t memTxn) Get(k []byte) ([]byte, error) { return t.kv.get(k) }
func (t memTxn) Set(k, v []byte) error        { t.kv.m[string(k)] = bytes.Clone(v); return nil }
func (t memTxn) Delete(k []byte) error        { delete(t.kv.m, string(k)); return nil }
func (t memTxn) Scan(start, end []byte, fn func(k, v []byte) error) error {
	var keys []string
	for k := range t.kv.m {
		if k >= string(start) && (end == nil || k < string(end)) {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		if err := fn([]byte(k), t.kv.m[k]); err != nil {
			if errors.Is(err, meta.ErrStopScan) {
				return nil
			}
			return err
		}
	}
	return nil
}

func (kv *memKV) Propose(_ context.Context, c meta.Command) error {
	data, err := meta.Encode(c)
	if err != nil {
		return err
	}
	kv.mu.Lock()
	defer kv.mu.Unlock()
	kv.index++
	if res := meta.Apply(memTxn{kv}, kv.index, data); res != nil {
		return res.(error)
	}
	return nil
}

func (kv *memKV) must(t *testing.T, cs ...meta.Command) {
	t.Helper()
	for _, c := range cs {
		if err := kv.Propose(context.Background(), c); err != nil {
			t.Fatalf("%T: %v", c, err)
		}
	}
}

// noBlobs is a Blobs that holds nothing; the management API never reads bytes.
type noBlobs struct{}

func (noBlobs) Stat(digest.Digest) (int64, error)    { return 0, os.ErrNotExist }
func (noBlobs) Open(digest.Digest) (*os.File, error) { return nil, os.ErrNotExist }
func (noBlobs) Put(context.Context, io.Reader, digest.Digest) (int64, error) {
	return 0, errors.New("no blobs")
}
func (noBlobs) NewUpload(string, ...digest.Algorithm) (Upload, error) {
	return nil, errors.New("no blobs")
}
func (noBlobs) Upload(string) (Upload, error) { return nil, errors.New("no blobs") }

func newMgmtTestServer(t *testing.T) (*Server, *memKV) {
	t.Helper()
	kv := newMemKV()
	s, err := New(Config{NodeID: "n1"}, Deps{Meta: kv, Proposer: kv, Blobs: noBlobs{}})
	if err != nil {
		t.Fatal(err)
	}
	return s, kv
}

var testTime = time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)

// pushImage records blobs of the given sizes in repo and a manifest naming them,
// tagged tag; it returns the manifest's info.
func pushImage(t *testing.T, kv *memKV, repo, tag string, sizes ...int64) meta.ManifestInfo {
	t.Helper()
	info := meta.ManifestInfo{MediaType: meta.MediaTypeOCIManifest, Created: testTime}
	for _, sz := range sizes {
		d := meta.DigestOf("sha256", []byte(fmt.Sprintf("blob-%d", sz)))
		kv.must(t, &meta.PutBlob{Repo: repo, Digest: d, Size: sz, Time: testTime})
		info.Blobs = append(info.Blobs, d)
	}
	content := []byte(fmt.Sprintf(`{"repo":%q,"tag":%q,"sizes":%v}`, repo, tag, sizes))
	info.Size = int64(len(content))
	d := meta.DigestOf("sha256", content)
	kv.must(t, &meta.PutManifest{Repo: repo, Info: info, Digest: d, Content: content, Tags: []string{tag}, Time: testTime})
	info.Digest = d
	return info
}

func TestPageRepositoriesAcrossWorkspaces(t *testing.T) {
	s, kv := newMgmtTestServer(t)
	kv.must(t, &meta.PutProject{Name: "p", Create: true, Time: testTime})
	// "a-b/..." sorts before "a/...": the pages must follow the names' order, not
	// the workspaces'.
	for _, ws := range []string{"a", "a-b", "b"} {
		kv.must(t, &meta.PutWorkspace{Name: ws, Project: "p", Visibility: meta.Private, Create: true, Time: testTime})
	}
	var want []string
	for _, r := range []string{"a/x", "a/y/z", "a-b/x", "b/app", "b/web"} {
		pushImage(t, kv, r, "1", 10)
		want = append(want, r)
	}
	// A repository in a workspace that is not listed must not appear.
	kv.must(t, &meta.PutWorkspace{Name: "c", Project: "p", Visibility: meta.Private, Create: true, Time: testTime})
	pushImage(t, kv, "c/hidden", "1", 10)
	sort.Strings(want)

	wss, err := meta.ListWorkspaces(kv, "p")
	if err != nil {
		t.Fatal(err)
	}
	wss = slices.DeleteFunc(wss, func(w meta.Workspace) bool { return w.Name == "c" })
	p := &Principal{Kind: UserPrincipal, Name: "u", Roles: map[string]meta.Role{"p": meta.RoleGuest}}
	for n := 1; n <= 6; n++ {
		var got []string
		last := ""
		for range 10 {
			page, next, err := s.pageRepositories(p, slices.Clone(wss), "", last, n)
			if err != nil {
				t.Fatal(err)
			}
			if len(page) > n {
				t.Fatalf("n=%d: page of %d", n, len(page))
			}
			for _, r := range page {
				got = append(got, r.Name)
				if !r.Own || r.Tags != 1 || r.Project != "p" {
					t.Errorf("n=%d: %+v", n, r)
				}
			}
			if next == "" {
				break
			}
			last = next
		}
		if !slices.Equal(got, want) {
			t.Errorf("n=%d: got %v, want %v", n, got, want)
		}
	}
	page, _, err := s.pageRepositories(p, slices.Clone(wss), "X", "", 10)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, r := range page {
		names = append(names, r.Name)
	}
	if !slices.Equal(names, []string{"a-b/x", "a/x"}) {
		t.Errorf("q=X: got %v, want [a-b/x a/x]", names)
	}
	if n, err := s.countRepositories("a"); err != nil || n != 2 {
		t.Errorf("countRepositories(a) = %d, %v; want 2", n, err)
	}
}

func TestImageSize(t *testing.T) {
	s, kv := newMgmtTestServer(t)
	kv.must(t, &meta.PutProject{Name: "p", Create: true, Time: testTime},
		&meta.PutWorkspace{Name: "w", Project: "p", Visibility: meta.Private, Create: true, Time: testTime})
	amd := pushImage(t, kv, "w/app", "amd64", 100, 1000) // config 100, layer 1000
	arm := pushImage(t, kv, "w/app", "arm64", 200, 1000) // shares the 1000-byte layer
	if got, err := s.imageSize("w/app", &amd); err != nil || got != amd.Size+1100 {
		t.Errorf("image size = %d, %v; want %d", got, err, amd.Size+1100)
	}
	content := []byte(`{"index":true}`)
	idx := meta.ManifestInfo{MediaType: meta.MediaTypeOCIIndex, Size: int64(len(content)),
		Manifests: []meta.Digest{amd.Digest, arm.Digest}, Created: testTime}
	d := meta.DigestOf("sha256", content)
	kv.must(t, &meta.PutManifest{Repo: "w/app", Info: idx, Digest: d, Content: content, Tags: []string{"multi"}, Time: testTime})
	idx.Digest = d
	want := idx.Size + amd.Size + arm.Size + 100 + 200 + 1000
	if got, err := s.imageSize("w/app", &idx); err != nil || got != want {
		t.Errorf("index size = %d, %v; want %d", got, err, want)
	}
}

func TestSplitTagsPath(t *testing.T) {
	s, kv := newMgmtTestServer(t)
	kv.must(t, &meta.PutProject{Name: "p", Create: true, Time: testTime},
		&meta.PutWorkspace{Name: "w", Project: "p", Visibility: meta.Private, Create: true, Time: testTime})
	pushImage(t, kv, "w/app", "1", 1)
	pushImage(t, kv, "w/tags", "1", 1)
	pushImage(t, kv, "w/only/tags", "1", 1)
	for _, tc := range []struct {
		in   string
		repo string
		tags bool
	}{
		{"/w/app", "w/app", false},
		{"/w/app/tags", "w/app", true},
		{"/w/tags", "w/tags", false},           // one component before /tags: a repository
		{"/w/only/tags", "w/only/tags", false}, // w/only is no repository, w/only/tags is
		{"/w/none/tags", "w/none", true},       // neither: the tag list of an unknown repository
		{"/w/app/tags/x", "w/app/tags/x", false},
	} {
		repo, tags := s.splitTagsPath(tc.in)
		if repo != tc.repo || tags != tc.tags {
			t.Errorf("%s: got %s %v, want %s %v", tc.in, repo, tags, tc.repo, tc.tags)
		}
	}
}

// TestMgmtUnauthenticated: every route but the OpenAPI document answers 401 with
// a challenge to a request without credentials, and changes nothing.
func TestMgmtUnauthenticated(t *testing.T) {
	s, kv := newMgmtTestServer(t)
	kv.must(t, &meta.PutProject{Name: "p", Create: true, Time: testTime})
	before := kv.index
	for _, rt := range mgmtRoutes {
		path := strings.NewReplacer(":user", "u", ":project", "p", ":workspace", "w", ":robot", "r", "*name", "w/app").Replace(rt.path)
		req, _ := http.NewRequest(rt.method, "http://registry.test"+path, strings.NewReader(`{}`))
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, req)
		if rt.public {
			if rt.path == "/api/v1/session" {
				continue // the console's login and logout: console_test.go
			}
			if rec.Code != http.StatusOK {
				t.Errorf("%s %s: status %d, want 200", rt.method, path, rec.Code)
			}
			continue
		}
		if rec.Code != http.StatusUnauthorized || !strings.HasPrefix(rec.Header().Get("WWW-Authenticate"), `Bearer realm="http://registry.test/auth/token"`) {
			t.Errorf("%s %s: status %d, challenge %q; want 401 with a Bearer challenge", rt.method, path, rec.Code, rec.Header().Get("WWW-Authenticate"))
		}
	}
	if kv.index != before {
		t.Errorf("unauthenticated requests changed the state")
	}
}
