package main

// End-to-end test of the berth binary against the real registry clients users run:
// the OCI conformance suite, crane, oras, skopeo and regctl, plus a restart test
// (SIGTERM and SIGKILL) for durability.
//
// By default TestE2E builds ./cmd/berth (with -race when the test binary itself is
// built with -race, so the race detector watches the server under real clients;
// BERTH_E2E_RACE=0/1 overrides), starts `berth serve` on a free 127.0.0.1 port with
// its own temporary data directory, and stops it at the end. Its stderr is shown in
// the test log when anything fails.
//
// Environment:
//
//	BERTH_E2E_URL=http://HOST:PORT  test an already running registry instead (for
//	                                example the reference registry started by
//	                                ../shared/tools/start-docker-registry.sh); the
//	                                restart subtest is skipped then.
//	BERTH_E2E_REQUIRE=1             a missing client tool fails the test (make test
//	                                sets it); without it the subtest is skipped with
//	                                the command that installs the tool.
//	BERTH_E2E_RACE=0|1              build the server without/with -race.
//	BERTH_TOOLS_BIN                 where the Go tools are (default
//	                                ${XDG_CACHE_HOME:-$HOME/.cache}/berth-tools/bin,
//	                                the same as ../shared/tools and .ci/install-test-tools.sh);
//	                                PATH is searched next.
//
// The clients run with a temporary HOME, DOCKER_CONFIG, REGCTL_CONFIG and TMPDIR, so
// nothing touches the user's own configuration. `go test -short` skips this test.

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"runtime/debug"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

const (
	envE2EURL     = "BERTH_E2E_URL"
	envE2ERequire = "BERTH_E2E_REQUIRE"
	envE2ERace    = "BERTH_E2E_RACE"

	// Pinned client versions, the same as ../shared/tools/lib.sh and .ci/install-test-tools.sh.
	craneModule  = "github.com/google/go-containerregistry/cmd/crane@v0.22.1"
	orasModule   = "oras.land/oras/cmd/oras@v1.3.6"
	regctlModule = "github.com/regclient/regclient/cmd/regctl@v0.11.7"

	readyTimeout = 60 * time.Second // from process start to /v2/ answering
	stopTimeout  = 40 * time.Second // from SIGTERM to exit (berth drains for up to 30s by default)
)

func TestE2E(t *testing.T) {
	if testing.Short() {
		t.Skip("e2e: skipped in -short mode")
	}
	// Every berth the test starts bootstraps its cloud admin with this password;
	// the clients log in with it (Basic credentials traded for tokens).
	t.Setenv("BERTH_ADMIN_PASSWORD", e2eAdminPassword)
	e := newE2E(t)
	t.Run("conformance", e.testConformance)
	t.Run("crane", e.testCrane)
	t.Run("oras", e.testOras)
	t.Run("skopeo", e.testSkopeo)
	t.Run("regctl", e.testRegctl)
	t.Run("restart", e.testRestart)
}

// e2e holds what every subtest shares: where things are, the registry under test and
// the environment the clients run with.
type e2e struct {
	root      string // repository root (holds go.mod)
	shared    string // ../shared/tools beside the repository; may not exist
	toolsBin  string // the tools cache
	require   bool   // a missing tool is a failure, not a skip
	url, host string // http://HOST:PORT and HOST:PORT of the registry under test
	runID     string // lowercase hex, keeps repository names of one run apart
	clientEnv []string
	bin       string  // the built berth binary ("" in URL mode)
	race      bool    // bin was built with -race
	srv       *server // the registry started by the test (nil in URL mode)
}

// The credentials of the registry under test: the bootstrap cloud admin of a
// berth started by the test, or BERTH_E2E_USER/BERTH_E2E_PASSWORD in URL mode.
const (
	e2eAdminUser     = "admin"
	e2eAdminPassword = "e2e-admin-password"
)

func e2eCredentials() (user, pass string) {
	if u := os.Getenv("BERTH_E2E_USER"); u != "" {
		return u, os.Getenv("BERTH_E2E_PASSWORD")
	}
	return e2eAdminUser, e2eAdminPassword
}

// login stores the registry credentials for host in the clients' Docker config,
// which crane, oras, regctl and skopeo all read.
func (e *e2e) login(t *testing.T, host string) {
	t.Helper()
	var home string
	for _, kv := range e.clientEnv {
		if v, ok := strings.CutPrefix(kv, "DOCKER_CONFIG="); ok {
			home = v
		}
	}
	path := filepath.Join(home, "config.json")
	cfg := map[string]map[string]map[string]string{"auths": {}}
	if b, err := os.ReadFile(path); err == nil {
		if err := json.Unmarshal(b, &cfg); err != nil {
			t.Fatal(err)
		}
	}
	user, pass := e2eCredentials()
	cfg["auths"][host] = map[string]string{"auth": base64.StdEncoding.EncodeToString([]byte(user + ":" + pass))}
	b, _ := json.Marshal(cfg)
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func newE2E(t *testing.T) *e2e {
	root, err := repoRoot()
	if err != nil {
		t.Fatalf("e2e: %v", err)
	}
	e := &e2e{
		root:     root,
		shared:   filepath.Clean(filepath.Join(root, "..", "shared", "tools")),
		toolsBin: toolsBin(),
		require:  os.Getenv(envE2ERequire) == "1",
		runID:    randomHex(t, 4),
	}
	work := t.TempDir()
	e.clientEnv = clientEnv(t, work)

	if u := os.Getenv(envE2EURL); u != "" {
		u = strings.TrimSuffix(u, "/")
		if !strings.HasPrefix(u, "http://") {
			t.Fatalf("e2e: %s=%q: only plain http://HOST:PORT URLs are supported", envE2EURL, u)
		}
		e.url, e.host = u, strings.TrimPrefix(u, "http://")
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		if err := waitReady(ctx, e.url, nil); err != nil {
			t.Fatalf("e2e: registry at %s is not ready: %v", e.url, err)
		}
		t.Logf("e2e: testing the registry at %s (%s)", e.url, envE2EURL)
		e.login(t, e.host)
		return e
	}

	e.race = raceBuild()
	e.bin = buildBerth(t, root, filepath.Join(work, "berth"), e.race)
	e.srv = startNewServer(t, e.bin, "e2e-main", e.race)
	e.url, e.host = "http://"+e.srv.addr, e.srv.addr
	e.login(t, e.host)
	return e
}

// repoRoot walks up from the working directory (cmd/berth under go test) to go.mod.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory")
		}
		dir = parent
	}
}

// toolsBin is the tools cache, resolved exactly as ../shared/tools/lib.sh does.
func toolsBin() string {
	if d := os.Getenv("BERTH_TOOLS_BIN"); d != "" {
		return d
	}
	cache := os.Getenv("XDG_CACHE_HOME")
	if cache == "" {
		home, _ := os.UserHomeDir()
		cache = filepath.Join(home, ".cache")
	}
	return filepath.Join(cache, "berth-tools", "bin")
}

// raceBuild reports whether the server is built with -race: BERTH_E2E_RACE when set,
// else whether this test binary was built with -race.
func raceBuild() bool {
	if v := os.Getenv(envE2ERace); v != "" {
		b, _ := strconv.ParseBool(v)
		return b
	}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return false
	}
	for _, s := range bi.Settings {
		if s.Key == "-race" {
			return s.Value == "true"
		}
	}
	return false
}

// clientEnv is the environment of every client command: the caller's, with HOME,
// DOCKER_CONFIG, REGCTL_CONFIG, XDG_* and TMPDIR pointing into work.
func clientEnv(t *testing.T, work string) []string {
	home := filepath.Join(work, "home")
	for _, d := range []string{home, filepath.Join(home, ".docker"), filepath.Join(work, "tmp")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch {
		case k == "HOME", k == "DOCKER_CONFIG", k == "REGCTL_CONFIG", k == "TMPDIR",
			strings.HasPrefix(k, "XDG_"), strings.HasPrefix(k, "OCI_"):
			continue
		}
		env = append(env, kv)
	}
	return append(env,
		"HOME="+home,
		"DOCKER_CONFIG="+filepath.Join(home, ".docker"),
		"REGCTL_CONFIG="+filepath.Join(home, ".regctl", "config.json"),
		"XDG_CONFIG_HOME="+filepath.Join(home, ".config"),
		"XDG_DATA_HOME="+filepath.Join(home, ".local", "share"),
		"XDG_CACHE_HOME="+filepath.Join(home, ".cache"),
		"XDG_RUNTIME_DIR="+filepath.Join(work, "tmp"),
		"TMPDIR="+filepath.Join(work, "tmp"),
	)
}

// need returns the path of a client tool: the tools cache first, then PATH. A missing
// tool fails the test under BERTH_E2E_REQUIRE=1 and skips it otherwise.
func (e *e2e) need(t *testing.T, name, install string) string {
	t.Helper()
	if p := filepath.Join(e.toolsBin, name); isExecutable(p) {
		return p
	}
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	e.missing(t, fmt.Sprintf("%s not found in %s or PATH; install it with `make tools` or: %s", name, e.toolsBin, install))
	return ""
}

func (e *e2e) missing(t *testing.T, msg string) {
	t.Helper()
	if e.require {
		t.Fatalf("e2e: %s (%s=1: a missing tool is an error)", msg, envE2ERequire)
	}
	t.Skipf("e2e: %s", msg)
}

func (e *e2e) goInstallHint(module string) string {
	return fmt.Sprintf("GOBIN=%s go install %s", e.toolsBin, module)
}

func isExecutable(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0
}

// ---- the registry process ----

// server is one berth serve process and the data dir and address it keeps across
// restarts.
type server struct {
	bin, name, dataDir, addr, logPath string
	race                              bool
	starts                            int

	cmd     *exec.Cmd
	done    chan struct{} // closed when cmd has exited
	waitErr error         // valid after done is closed
}

func buildBerth(t *testing.T, root, out string, race bool) string {
	t.Helper()
	args := []string{"build", "-trimpath"}
	if race {
		args = append(args, "-race")
	}
	args = append(args, "-o", out, "./cmd/berth")
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = root
	start := time.Now()
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("e2e: go %s: %v\n%s", strings.Join(args, " "), err, b)
	}
	t.Logf("e2e: built %s (race=%v) in %s", out, race, time.Since(start).Round(time.Millisecond))
	return out
}

// startNewServer starts berth on a fresh data dir and a free port. A cleanup stops it
// with SIGTERM (and expects exit 0), fails the test if the race detector reported
// anything, and prints the server's log when the test failed.
func startNewServer(t *testing.T, bin, name string, race bool) *server {
	t.Helper()
	dir := t.TempDir()
	s := &server{
		bin: bin, name: name, race: race,
		dataDir: filepath.Join(dir, "data"),
		addr:    freeAddr(t),
		logPath: filepath.Join(dir, "berth.log"),
	}
	t.Cleanup(func() {
		if s.running() {
			if err := s.stop(syscall.SIGTERM); err != nil {
				t.Errorf("e2e: stopping %s: %v", s.name, err)
			}
		}
		if race && s.logContains("WARNING: DATA RACE") {
			t.Errorf("e2e: the race detector reported a data race in %s (see its log below)", s.name)
		}
		if t.Failed() {
			s.dumpLog(t)
		}
	})
	s.start(t)
	return s
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return addr
}

// start runs berth serve on s.dataDir and s.addr and waits until /v2/ answers.
func (s *server) start(t *testing.T) {
	t.Helper()
	s.starts++
	logf, err := os.OpenFile(s.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	args := []string{"serve", "--data-dir", s.dataDir, "--listen", s.addr, "--node-id", "n1"}
	fmt.Fprintf(logf, "==== e2e: start #%d: %s %s\n", s.starts, s.bin, strings.Join(args, " "))
	cmd := exec.Command(s.bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	killWithParent(cmd)
	if err := cmd.Start(); err != nil {
		logf.Close()
		t.Fatalf("e2e: start %s: %v", s.name, err)
	}
	s.cmd, s.done = cmd, make(chan struct{})
	go func(done chan struct{}) {
		s.waitErr = cmd.Wait()
		logf.Close()
		close(done)
	}(s.done)

	ctx, cancel := context.WithTimeout(t.Context(), readyTimeout)
	defer cancel()
	start := time.Now()
	if err := waitReady(ctx, "http://"+s.addr, s.done); err != nil {
		if s.running() {
			_ = s.stop(syscall.SIGKILL)
		}
		t.Fatalf("e2e: %s (start #%d) not ready on %s: %v (exit: %v)", s.name, s.starts, s.addr, err, s.exitErr())
	}
	t.Logf("e2e: %s (start #%d, pid %d) ready on %s in %s", s.name, s.starts, cmd.Process.Pid, s.addr, time.Since(start).Round(time.Millisecond))
}

func (s *server) running() bool {
	if s.done == nil {
		return false
	}
	select {
	case <-s.done:
		return false
	default:
		return true
	}
}

func (s *server) exitErr() error {
	if s.running() {
		return errors.New("still running")
	}
	return s.waitErr
}

// stop sends sig and waits for the exit. For SIGTERM it returns an error unless the
// process exits 0 within stopTimeout (then it is killed); for SIGKILL it only waits.
func (s *server) stop(sig syscall.Signal) error {
	if !s.running() {
		return fmt.Errorf("not running (exit: %v)", s.waitErr)
	}
	if err := s.cmd.Process.Signal(sig); err != nil {
		return err
	}
	select {
	case <-s.done:
	case <-time.After(stopTimeout):
		_ = s.cmd.Process.Kill()
		<-s.done
		return fmt.Errorf("did not exit within %s of %v; killed", stopTimeout, sig)
	}
	if sig == syscall.SIGKILL {
		return nil
	}
	if s.waitErr != nil {
		return fmt.Errorf("exit after %v: %v (want exit status 0)", sig, s.waitErr)
	}
	return nil
}

func (s *server) logContains(needle string) bool {
	b, err := os.ReadFile(s.logPath)
	return err == nil && bytes.Contains(b, []byte(needle))
}

// dumpLog writes the tail of the server log into the test log and keeps a full copy
// under the system temp dir (t.TempDir is removed after the test).
func (s *server) dumpLog(t *testing.T) {
	b, err := os.ReadFile(s.logPath)
	if err != nil {
		t.Logf("e2e: no log of %s: %v", s.name, err)
		return
	}
	const max = 64 << 10
	tail := b
	if len(tail) > max {
		tail = tail[len(tail)-max:]
		if i := bytes.IndexByte(tail, '\n'); i >= 0 {
			tail = tail[i+1:]
		}
	}
	keep := filepath.Join(os.TempDir(), fmt.Sprintf("berth-e2e-%s-%d.log", s.name, time.Now().UnixNano()))
	if err := os.WriteFile(keep, b, 0o644); err != nil {
		keep = "(not kept: " + err.Error() + ")"
	}
	t.Logf("e2e: log of %s (%d bytes, full copy %s), last %d bytes:\n%s", s.name, len(b), keep, len(tail), tail)
}

// killWithParent asks Linux to SIGKILL the child when the test process dies (a test
// timeout panics without running cleanups). Set by reflection because the field
// exists only on Linux and FreeBSD and this file must build everywhere.
func killWithParent(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{}
	f := reflect.ValueOf(cmd.SysProcAttr).Elem().FieldByName("Pdeathsig")
	if f.IsValid() && f.CanSet() && f.Type() == reflect.TypeOf(syscall.SIGKILL) {
		f.Set(reflect.ValueOf(syscall.SIGKILL))
	}
}

// waitReady polls GET url/v2/ until it answers 200 or 401 (401 once auth is on).
// exited, when not nil, is closed when the server process has exited.
func waitReady(ctx context.Context, url string, exited <-chan struct{}) error {
	client := &http.Client{Timeout: 2 * time.Second}
	var last error
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url+"/v2/", nil)
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusUnauthorized {
				return nil
			}
			err = fmt.Errorf("GET /v2/: %s", resp.Status)
		}
		last = err
		select {
		case <-exited:
			return fmt.Errorf("process exited before it was ready (last probe: %v)", last)
		case <-ctx.Done():
			return fmt.Errorf("%w (last probe: %v)", ctx.Err(), last)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// ---- running client commands ----

// runner runs client commands for one subtest, with the client environment and a
// deadline shared by all of its commands.
type runner struct {
	t   *testing.T
	ctx context.Context
	env []string
}

func (e *e2e) runner(t *testing.T, timeout time.Duration) *runner {
	ctx, cancel := context.WithTimeout(t.Context(), timeout)
	t.Cleanup(cancel)
	return &runner{t: t, ctx: ctx, env: e.clientEnv}
}

// run runs tool args in dir ("" for the test's working directory) and returns its
// stdout; it fails the test when the command fails.
func (r *runner) run(dir, tool string, args ...string) []byte {
	r.t.Helper()
	out, err := r.try(dir, tool, args...)
	if err != nil {
		r.t.Fatal(err)
	}
	return out
}

// try is run that returns the error (with the tail of stderr) instead of failing.
func (r *runner) try(dir, tool string, args ...string) ([]byte, error) {
	r.t.Helper()
	line := filepath.Base(tool) + " " + strings.Join(args, " ")
	r.t.Logf("$ %s", line)
	cmd := exec.CommandContext(r.ctx, tool, args...)
	cmd.Dir, cmd.Env, cmd.WaitDelay = dir, r.env, 5*time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		if r.ctx.Err() != nil {
			err = fmt.Errorf("%w (subtest deadline: %v)", err, r.ctx.Err())
		}
		return stdout.Bytes(), fmt.Errorf("%s: %v\nstderr:\n%s", line, err, lastBytes(stderr.Bytes(), 4<<10))
	}
	return stdout.Bytes(), nil
}

func lastBytes(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}

// ---- conformance ----

var conformanceSummary = regexp.MustCompile(`^conformance: (\d+) passed, (\d+) failed, (\d+) skipped$`)

func (e *e2e) testConformance(t *testing.T) {
	script := filepath.Join(e.shared, "conformance.sh")
	if !isExecutable(script) {
		// No ../shared/tools (a user's machine): our copy builds the same pinned suite.
		script = filepath.Join(e.root, ".ci", "conformance.sh")
		if !isExecutable(script) {
			e.missing(t, "no ../shared/tools/conformance.sh and no .ci/conformance.sh")
		}
	}
	results := filepath.Join(t.TempDir(), "results")
	ctx, cancel := context.WithTimeout(t.Context(), 8*time.Minute) // includes a first build of the suite
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", script, e.url)
	// The default environment of the script: every optional area on, OCI_DATA_SPARSE off.
	// HOME is the user's so the Go caches (and a first build of the suite) are shared.
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "OCI_") {
			env = append(env, kv)
		}
	}
	user, pass := e2eCredentials()
	cmd.Env = append(env, "BERTH_TOOLS_BIN="+e.toolsBin, "OCI_RESULTS_DIR="+results,
		"OCI_USERNAME="+user, "OCI_PASSWORD="+pass,
		// Repositories live in workspaces; the bootstrap workspace is "library".
		"OCI_REPO1=library/conformance-"+e.runID+"-1", "OCI_REPO2=library/conformance-"+e.runID+"-2")
	cmd.WaitDelay = 5 * time.Second
	t.Logf("$ %s %s", script, e.url)
	out, err := cmd.CombinedOutput()

	lines := strings.Split(strings.TrimRight(string(out), "\n"), "\n")
	last := lines[len(lines)-1]
	for _, l := range lines {
		if strings.HasPrefix(l, "conformance: ") || strings.HasPrefix(l, "building ") || strings.HasPrefix(l, "results: ") {
			t.Log(l)
		}
	}
	m := conformanceSummary.FindStringSubmatch(last)
	if m == nil {
		t.Fatalf("conformance: no summary line (exit: %v); output ends with:\n%s", err, lastBytes(out, 8<<10))
	}
	passed, _ := strconv.Atoi(m[1])
	failed, _ := strconv.Atoi(m[2])
	if err != nil || failed != 0 || passed == 0 {
		t.Errorf("conformance: %d passed, %d failed (exit: %v); want 0 failed and exit 0", passed, failed, err)
		fails := conformanceFailures(results)
		const show = 60
		for i, f := range fails {
			if i == show {
				t.Logf("  ... and %d more", len(fails)-show)
				break
			}
			t.Log("  FAIL " + f)
		}
		// t.TempDir is removed after the test: keep the results of a failed run.
		keep := filepath.Join(os.TempDir(), fmt.Sprintf("berth-e2e-conformance-%d", time.Now().UnixNano()))
		if err := os.Rename(results, keep); err != nil {
			keep = results + " (removed after the test: " + err.Error() + ")"
		}
		t.Logf("conformance: results (junit.xml, report.html, stderr.txt) kept in %s", keep)
	}
}

// conformanceFailures lists the failing tests of a results dir with their reasons,
// from junit.xml, else from the "failed test" lines of stderr.txt.
func conformanceFailures(dir string) []string {
	type junitCase struct {
		Name    string `xml:"name,attr"`
		Status  string `xml:"status,attr"`
		Out     string `xml:"system-out"`
		Failure *struct {
			Message string `xml:"message,attr"`
		} `xml:"failure"`
		Error *struct {
			Message string `xml:"message,attr"`
		} `xml:"error"`
	}
	var doc struct {
		Suites []struct {
			Cases []junitCase `xml:"testcase"`
		} `xml:"testsuite"`
	}
	var fails []string
	if b, err := os.ReadFile(filepath.Join(dir, "junit.xml")); err == nil && xml.Unmarshal(b, &doc) == nil {
		for _, s := range doc.Suites {
			for _, c := range s.Cases {
				if c.Status != "failure" && c.Status != "error" && c.Failure == nil && c.Error == nil {
					continue
				}
				why := c.Out
				if c.Failure != nil && c.Failure.Message != "" {
					why = c.Failure.Message
				}
				if c.Error != nil && c.Error.Message != "" {
					why = c.Error.Message
				}
				if f := c.Name + ": " + oneLine(why, 300); !slices.Contains(fails, f) {
					fails = append(fails, f)
				}
			}
		}
	}
	if len(fails) == 0 {
		if f, err := os.Open(filepath.Join(dir, "stderr.txt")); err == nil {
			defer f.Close()
			sc := bufio.NewScanner(f)
			sc.Buffer(make([]byte, 1<<20), 1<<20)
			for sc.Scan() {
				if strings.Contains(sc.Text(), `msg="failed test"`) {
					fails = append(fails, oneLine(sc.Text(), 400))
				}
			}
		}
	}
	return fails
}

func oneLine(s string, max int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > max {
		s = s[:max] + "..."
	}
	return s
}

// ---- test images ----

// image is a single-platform OCI image built in memory from random bytes, so every
// byte the registry returns can be compared with what was sent.
type image struct {
	manifest, config     []byte
	manifestDigest       string
	configDigest         string
	layers, uncompressed [][]byte // gzip'd as pushed / the tars inside
	layerDigests         []string
}

// newImage makes an image with one gzip'd tar layer per size, each holding a file of
// that many random bytes and a small text file.
func newImage(t *testing.T, sizes ...int) *image {
	t.Helper()
	im := &image{}
	var diffIDs []string
	var descs []string
	for i, n := range sizes {
		raw := tarOf(t, map[string][]byte{
			"random.bin":                  randomBytes(t, n),
			fmt.Sprintf("layer%d.txt", i): []byte(fmt.Sprintf("berth e2e layer %d\n", i)),
		})
		var gz bytes.Buffer
		zw := gzip.NewWriter(&gz)
		if _, err := zw.Write(raw); err != nil {
			t.Fatal(err)
		}
		if err := zw.Close(); err != nil {
			t.Fatal(err)
		}
		im.uncompressed = append(im.uncompressed, raw)
		im.layers = append(im.layers, gz.Bytes())
		im.layerDigests = append(im.layerDigests, sha256Digest(gz.Bytes()))
		diffIDs = append(diffIDs, fmt.Sprintf("%q", sha256Digest(raw)))
		descs = append(descs, fmt.Sprintf(`{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":%q,"size":%d}`,
			sha256Digest(gz.Bytes()), gz.Len()))
	}
	im.config = fmt.Appendf(nil, `{"architecture":"amd64","os":"linux","config":{"Env":["E2E=%s"]},"rootfs":{"type":"layers","diff_ids":[%s]},"history":[{"created_by":"berth e2e"}]}`,
		randomHex(t, 8), strings.Join(diffIDs, ","))
	im.configDigest = sha256Digest(im.config)
	im.manifest = fmt.Appendf(nil, `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":%q,"size":%d},"layers":[%s]}`,
		im.configDigest, len(im.config), strings.Join(descs, ","))
	im.manifestDigest = sha256Digest(im.manifest)
	return im
}

// writeLayout writes im as an OCI image layout in dir with the reference name tag.
func (im *image) writeLayout(t *testing.T, dir, tag string) {
	t.Helper()
	blobs := filepath.Join(dir, "blobs", "sha256")
	if err := os.MkdirAll(blobs, 0o755); err != nil {
		t.Fatal(err)
	}
	write := func(name string, b []byte) {
		if err := os.WriteFile(name, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(dir, "oci-layout"), []byte(`{"imageLayoutVersion":"1.0.0"}`))
	write(filepath.Join(dir, "index.json"), fmt.Appendf(nil,
		`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":%q,"size":%d,"annotations":{"org.opencontainers.image.ref.name":%q}}]}`,
		im.manifestDigest, len(im.manifest), tag))
	write(filepath.Join(blobs, hexOf(im.manifestDigest)), im.manifest)
	write(filepath.Join(blobs, hexOf(im.configDigest)), im.config)
	for i, l := range im.layers {
		write(filepath.Join(blobs, hexOf(im.layerDigests[i])), l)
	}
}

// checkLayoutBlobs compares the blobs of im with those in an OCI layout dir.
func (im *image) checkLayoutBlobs(t *testing.T, dir string) {
	t.Helper()
	want := map[string][]byte{im.configDigest: im.config}
	for i, d := range im.layerDigests {
		want[d] = im.layers[i]
	}
	for d, b := range want {
		got, err := os.ReadFile(filepath.Join(dir, "blobs", "sha256", hexOf(d)))
		if err != nil {
			t.Errorf("layout %s: blob %s: %v", dir, d, err)
			continue
		}
		sameBytes(t, "layout blob "+d, got, b)
	}
}

func tarOf(t *testing.T, files map[string][]byte) []byte {
	t.Helper()
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, n := range names {
		hdr := &tar.Header{Name: n, Mode: 0o644, Size: int64(len(files[n])), Typeflag: tar.TypeReg, ModTime: time.Unix(0, 0)}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(files[n]); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func randomBytes(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func randomHex(t *testing.T, n int) string { return hex.EncodeToString(randomBytes(t, n)) }

func sha256Digest(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

func hexOf(digest string) string { return strings.TrimPrefix(digest, "sha256:") }

func sameBytes(t *testing.T, what string, got, want []byte) {
	t.Helper()
	if !bytes.Equal(got, want) {
		t.Errorf("%s: got %d bytes (%s), want %d bytes (%s)", what, len(got), sha256Digest(got), len(want), sha256Digest(want))
	}
}

func gunzip(t *testing.T, b []byte) []byte {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("gunzip: %v", err)
	}
	out, err := io.ReadAll(zr)
	if err != nil {
		t.Fatalf("gunzip: %v", err)
	}
	return out
}

func lines(b []byte) []string { return strings.Fields(string(b)) }

func mustContain(t *testing.T, what string, list []string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !slices.Contains(list, w) {
			t.Errorf("%s: %q missing from %q", what, w, list)
		}
	}
}

// ---- crane ----

func (e *e2e) testCrane(t *testing.T) {
	crane := e.need(t, "crane", e.goInstallHint(craneModule))
	r := e.runner(t, 3*time.Minute)
	dir := t.TempDir()
	repo := e.host + "/library/e2e-" + e.runID + "/crane"
	repo2 := e.host + "/library/e2e-" + e.runID + "/crane-copy"

	// push an OCI layout: the registry must keep every byte (manifest digest included)
	im := newImage(t, 3<<20, 16<<10)
	layout := filepath.Join(dir, "layout")
	im.writeLayout(t, layout, "v1")
	r.run("", crane, "push", "--insecure", layout, repo+":v1")
	if got := strings.TrimSpace(string(r.run("", crane, "digest", "--insecure", repo+":v1"))); got != im.manifestDigest {
		t.Errorf("crane digest %s:v1 = %s, want %s", repo, got, im.manifestDigest)
	}
	sameBytes(t, "crane manifest", r.run("", crane, "manifest", "--insecure", repo+":v1"), im.manifest)
	sameBytes(t, "crane config", r.run("", crane, "config", "--insecure", repo+":v1"), im.config)
	for i, d := range im.layerDigests {
		sameBytes(t, "crane blob "+d, r.run("", crane, "blob", "--insecure", repo+"@"+d), im.layers[i])
	}

	// pull it back as an OCI layout, by tag and by digest
	pulled := filepath.Join(dir, "pulled")
	r.run("", crane, "pull", "--insecure", "--format", "oci", repo+":v1", pulled)
	im.checkLayoutBlobs(t, pulled)
	sameBytes(t, "crane pull manifest", mustRead(t, filepath.Join(pulled, "blobs", "sha256", hexOf(im.manifestDigest))), im.manifest)
	byDigest := filepath.Join(dir, "pulled-by-digest")
	r.run("", crane, "pull", "--insecure", "--format", "oci", repo+"@"+im.manifestDigest, byDigest)
	im.checkLayoutBlobs(t, byDigest)

	// crane append (new layer on top, pushed by crane itself) and crane mutate
	extra := tarOf(t, map[string][]byte{"extra.bin": randomBytes(t, 256<<10)})
	extraPath := filepath.Join(dir, "extra.tar")
	if err := os.WriteFile(extraPath, extra, 0o644); err != nil {
		t.Fatal(err)
	}
	r.run("", crane, "append", "--insecure", "-b", repo+":v1", "-f", extraPath, "-t", repo+":v2")
	var m2 struct {
		Layers []struct {
			Digest string `json:"digest"`
		} `json:"layers"`
	}
	mustJSON(t, r.run("", crane, "manifest", "--insecure", repo+":v2"), &m2)
	if len(m2.Layers) != len(im.layers)+1 {
		t.Fatalf("crane append: v2 has %d layers, want %d", len(m2.Layers), len(im.layers)+1)
	}
	top := r.run("", crane, "blob", "--insecure", repo+"@"+m2.Layers[len(m2.Layers)-1].Digest)
	sameBytes(t, "appended layer (uncompressed)", gunzip(t, top), extra)
	r.run("", crane, "mutate", "--insecure", "--label", "org.berth.e2e="+e.runID, "-t", repo+":v3", repo+":v2")
	if cfg := r.run("", crane, "config", "--insecure", repo+":v3"); !bytes.Contains(cfg, []byte(`"org.berth.e2e":"`+e.runID+`"`)) {
		t.Errorf("crane mutate: label missing from the config of v3: %s", cfg)
	}

	// an index over two images
	r.run("", crane, "index", "append", "--insecure", "-m", repo+":v1", "-m", repo+":v3", "-t", repo+":index")
	var idx struct {
		MediaType string `json:"mediaType"`
		Manifests []struct {
			Digest string `json:"digest"`
		} `json:"manifests"`
	}
	mustJSON(t, r.run("", crane, "manifest", "--insecure", repo+":index"), &idx)
	if len(idx.Manifests) != 2 || idx.Manifests[0].Digest != im.manifestDigest {
		t.Errorf("crane index append: got %+v, want 2 manifests, the first %s", idx, im.manifestDigest)
	}

	// copy to another repository (cross-repository mount or re-upload), image and index
	r.run("", crane, "copy", "--insecure", repo+":v1", repo2+":v1")
	r.run("", crane, "copy", "--insecure", repo+":index", repo2+":index")
	if got := strings.TrimSpace(string(r.run("", crane, "digest", "--insecure", repo2+":v1"))); got != im.manifestDigest {
		t.Errorf("crane copy: digest %s, want %s", got, im.manifestDigest)
	}
	for i, d := range im.layerDigests {
		sameBytes(t, "copied blob "+d, r.run("", crane, "blob", "--insecure", repo2+"@"+d), im.layers[i])
	}
	idxDigest := strings.TrimSpace(string(r.run("", crane, "digest", "--insecure", repo+":index")))
	if got := strings.TrimSpace(string(r.run("", crane, "digest", "--insecure", repo2+":index"))); got != idxDigest {
		t.Errorf("crane copy index: digest %s, want %s", got, idxDigest)
	}

	// listings
	mustContain(t, "crane ls "+repo, lines(r.run("", crane, "ls", "--insecure", repo)), "v1", "v2", "v3", "index")
	mustContain(t, "crane ls "+repo2, lines(r.run("", crane, "ls", "--insecure", repo2)), "v1", "index")
	mustContain(t, "crane catalog", lines(r.run("", crane, "catalog", "--insecure", e.host)),
		strings.TrimPrefix(repo, e.host+"/"), strings.TrimPrefix(repo2, e.host+"/"))
}

func mustRead(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func mustJSON(t *testing.T, b []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("decode %T: %v\n%s", v, err, lastBytes(b, 2<<10))
	}
}

// ---- oras ----

func (e *e2e) testOras(t *testing.T) {
	oras := e.need(t, "oras", e.goInstallHint(orasModule))
	r := e.runner(t, 3*time.Minute)
	dir := t.TempDir()
	repo := e.host + "/library/e2e-" + e.runID + "/oras"
	const (
		artifactType = "application/vnd.berth.e2e.bundle.v1"
		sbomType     = "application/spdx+json"
	)

	src := filepath.Join(dir, "src")
	files := map[string][]byte{
		"a.txt":          []byte("hello from the berth e2e test " + e.runID + "\n"),
		"b.bin":          randomBytes(t, 512<<10),
		"docs/one.md":    []byte("# one\n"),
		"docs/two.bin":   randomBytes(t, 4<<10),
		"sbom.spdx.json": fmt.Appendf(nil, `{"spdxVersion":"SPDX-2.3","name":"berth-e2e-%s"}`, e.runID),
	}
	for n, b := range files {
		p := filepath.Join(src, n)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}

	type pushed struct {
		Digest       string `json:"digest"`
		ArtifactType string `json:"artifactType"`
	}
	var art, sbom pushed
	mustJSON(t, r.run(src, oras, "push", "--plain-http", "--no-tty", "--format", "json", "--artifact-type", artifactType,
		repo+":v1", "a.txt:text/plain", "b.bin", "docs"), &art)
	manifest := r.run("", oras, "manifest", "fetch", "--plain-http", repo+":v1")
	if got := sha256Digest(manifest); got != art.Digest {
		t.Errorf("oras manifest fetch: body digest %s, pushed %s", got, art.Digest)
	}

	// attach with the referrers API only (no tag schema), then discover with it
	mustJSON(t, r.run(src, oras, "attach", "--plain-http", "--no-tty", "--format", "json",
		"--distribution-spec", "v1.1-referrers-api", "--artifact-type", sbomType,
		repo+":v1", "sbom.spdx.json:"+sbomType), &sbom)
	var disc struct {
		Digest    string `json:"digest"`
		Referrers []struct {
			Digest       string `json:"digest"`
			ArtifactType string `json:"artifactType"`
		} `json:"referrers"`
	}
	out, err := r.try("", oras, "discover", "--plain-http", "--distribution-spec", "v1.1-referrers-api", "--format", "json", repo+":v1")
	if err != nil {
		t.Errorf("oras discover through the referrers API: %v", err)
	} else {
		mustJSON(t, out, &disc)
		found := false
		for _, ref := range disc.Referrers {
			if ref.Digest == sbom.Digest {
				found = true
				if ref.ArtifactType != sbomType {
					t.Errorf("oras discover: referrer %s has artifactType %q, want %q", ref.Digest, ref.ArtifactType, sbomType)
				}
			}
		}
		if !found || disc.Digest != art.Digest {
			t.Errorf("oras discover %s:v1 = %s, want subject %s with referrer %s (%s)", repo, out, art.Digest, sbom.Digest, sbomType)
		}
		// the artifactType filter of the referrers API
		out, err = r.try("", oras, "discover", "--plain-http", "--distribution-spec", "v1.1-referrers-api", "--format", "json",
			"--artifact-type", "application/vnd.berth.e2e.none", repo+":v1")
		if err != nil {
			t.Errorf("oras discover --artifact-type: %v", err)
		} else {
			disc.Referrers = nil
			mustJSON(t, out, &disc)
			if len(disc.Referrers) != 0 {
				t.Errorf("oras discover --artifact-type application/vnd.berth.e2e.none: got %d referrers, want 0", len(disc.Referrers))
			}
		}
	}
	if tags := lines(r.run("", oras, "repo", "tags", "--plain-http", repo)); !slices.Equal(tags, []string{"v1"}) {
		t.Errorf("oras repo tags: %q, want [v1] (no referrers tag-schema fallback)", tags)
	}

	// pull both and compare the files
	pullDir := filepath.Join(dir, "pull")
	r.run("", oras, "pull", "--plain-http", "--no-tty", "-o", pullDir, repo+":v1")
	for n, b := range files {
		if n == "sbom.spdx.json" {
			continue
		}
		sameBytes(t, "oras pull "+n, mustRead(t, filepath.Join(pullDir, n)), b)
	}
	sbomDir := filepath.Join(dir, "sbom")
	r.run("", oras, "pull", "--plain-http", "--no-tty", "-o", sbomDir, repo+"@"+sbom.Digest)
	sameBytes(t, "oras pull sbom", mustRead(t, filepath.Join(sbomDir, "sbom.spdx.json")), files["sbom.spdx.json"])
}

// ---- skopeo ----

func (e *e2e) testSkopeo(t *testing.T) {
	skopeo := e.need(t, "skopeo", "apt-get install -y skopeo")
	r := e.runner(t, 3*time.Minute)
	dir := t.TempDir()
	repoPath := "library/arch-" + e.runID
	ref := e.host + "/" + repoPath + ":1"

	// a `docker save` style archive with one uncompressed layer
	src := filepath.Join(dir, "src")
	if err := os.MkdirAll(filepath.Join(src, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	for n, b := range map[string][]byte{"random.bin": randomBytes(t, 2<<20), "etc/e2e.conf": []byte("run=" + e.runID + "\n")} {
		if err := os.WriteFile(filepath.Join(src, n), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	archive := filepath.Join(dir, "in.tar")
	if mk := filepath.Join(e.shared, "mk-docker-archive.sh"); isExecutable(mk) {
		r.run("", "bash", mk, archive, "library/arch:1", src)
	} else {
		writeDockerArchive(t, archive, "library/arch:1", tarDir(t, src))
	}
	layer, configDigest := readDockerArchive(t, archive)
	diffID := sha256Digest(layer)

	g := []string{"--insecure-policy"} // no policy.json needed; nothing is signed here
	r.run("", skopeo, append(g, "copy", "-q", "--dest-tls-verify=false", "docker-archive:"+archive, "docker://"+ref)...)

	var info struct {
		Digest string   `json:"Digest"`
		Layers []string `json:"Layers"`
	}
	mustJSON(t, r.run("", skopeo, append(g, "inspect", "--tls-verify=false", "docker://"+ref)...), &info)
	raw := r.run("", skopeo, append(g, "inspect", "--raw", "--tls-verify=false", "docker://"+ref)...)
	if got := sha256Digest(raw); got != info.Digest {
		t.Errorf("skopeo inspect: Digest %s, but the raw manifest hashes to %s", info.Digest, got)
	}
	if len(info.Layers) != 1 {
		t.Fatalf("skopeo inspect: %d layers, want 1", len(info.Layers))
	}
	var cfg struct {
		RootFS struct {
			DiffIDs []string `json:"diff_ids"`
		} `json:"rootfs"`
	}
	cfgBytes := r.run("", skopeo, append(g, "inspect", "--config", "--raw", "--tls-verify=false", "docker://"+ref)...)
	mustJSON(t, cfgBytes, &cfg)
	if !slices.Equal(cfg.RootFS.DiffIDs, []string{diffID}) || sha256Digest(cfgBytes) != configDigest {
		t.Errorf("skopeo inspect --config: diff_ids %q (config %s), want [%s] (config %s)", cfg.RootFS.DiffIDs, sha256Digest(cfgBytes), diffID, configDigest)
	}

	// back to a docker archive: the same uncompressed layer
	out := filepath.Join(dir, "out.tar")
	r.run("", skopeo, append(g, "copy", "-q", "--src-tls-verify=false", "docker://"+ref, "docker-archive:"+out+":library/arch:1")...)
	got, gotConfig := readDockerArchive(t, out)
	sameBytes(t, "skopeo docker-archive layer", got, layer)
	if gotConfig != configDigest {
		t.Errorf("skopeo docker-archive: config %s, want %s", gotConfig, configDigest)
	}

	// to an OCI layout: the blobs as the registry holds them
	oci := filepath.Join(dir, "oci")
	r.run("", skopeo, append(g, "copy", "-q", "--src-tls-verify=false", "docker://"+ref, "oci:"+oci+":1")...)
	var idx struct {
		Manifests []struct {
			Digest string `json:"digest"`
		} `json:"manifests"`
	}
	mustJSON(t, mustRead(t, filepath.Join(oci, "index.json")), &idx)
	if len(idx.Manifests) != 1 {
		t.Fatalf("skopeo oci: index.json has %d manifests, want 1", len(idx.Manifests))
	}
	var man struct {
		Layers []struct {
			MediaType string `json:"mediaType"`
			Digest    string `json:"digest"`
		} `json:"layers"`
	}
	mustJSON(t, mustRead(t, filepath.Join(oci, "blobs", "sha256", hexOf(idx.Manifests[0].Digest))), &man)
	if len(man.Layers) != 1 {
		t.Fatalf("skopeo oci: %d layers, want 1", len(man.Layers))
	}
	blob := mustRead(t, filepath.Join(oci, "blobs", "sha256", hexOf(man.Layers[0].Digest)))
	if sha256Digest(blob) != man.Layers[0].Digest || man.Layers[0].Digest != info.Layers[0] {
		t.Errorf("skopeo oci: layer %s hashes to %s; the registry lists %s", man.Layers[0].Digest, sha256Digest(blob), info.Layers[0])
	}
	if strings.HasSuffix(man.Layers[0].MediaType, "gzip") {
		blob = gunzip(t, blob)
	}
	sameBytes(t, "skopeo oci layer (uncompressed)", blob, layer)

	// registry to registry within the same server keeps the manifest as it is
	ref2 := e.host + "/" + repoPath + "-copy:1"
	r.run("", skopeo, append(g, "copy", "-q", "--src-tls-verify=false", "--dest-tls-verify=false", "docker://"+ref, "docker://"+ref2)...)
	var info2 struct {
		Digest string `json:"Digest"`
	}
	mustJSON(t, r.run("", skopeo, append(g, "inspect", "--tls-verify=false", "docker://"+ref2)...), &info2)
	if info2.Digest != info.Digest {
		t.Errorf("skopeo copy registry to registry: digest %s, want %s", info2.Digest, info.Digest)
	}
	var tags struct {
		Tags []string `json:"Tags"`
	}
	mustJSON(t, r.run("", skopeo, append(g, "list-tags", "--tls-verify=false", "docker://"+e.host+"/"+repoPath)...), &tags)
	mustContain(t, "skopeo list-tags", tags.Tags, "1")
}

// readDockerArchive returns the single layer (uncompressed tar) and the config digest
// of a docker-archive tar.
func readDockerArchive(t *testing.T, path string) (layer []byte, configDigest string) {
	t.Helper()
	files := map[string][]byte{}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("read %s: %v", path, err)
		}
		if h.Typeflag != tar.TypeReg {
			continue
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		files[strings.TrimPrefix(h.Name, "./")] = b
	}
	var m []struct {
		Config string
		Layers []string
	}
	mustJSON(t, files["manifest.json"], &m)
	if len(m) != 1 || len(m[0].Layers) != 1 {
		t.Fatalf("%s: manifest.json %+v, want one image with one layer", path, m)
	}
	layer, ok := files[m[0].Layers[0]]
	cfg, ok2 := files[m[0].Config]
	if !ok || !ok2 {
		t.Fatalf("%s: missing %s or %s", path, m[0].Layers[0], m[0].Config)
	}
	if strings.HasSuffix(m[0].Layers[0], ".gz") || bytes.HasPrefix(layer, []byte{0x1f, 0x8b}) {
		layer = gunzip(t, layer)
	}
	return layer, sha256Digest(cfg)
}

// tarDir is the fallback layer of writeDockerArchive: every regular file under dir.
func tarDir(t *testing.T, dir string) []byte {
	t.Helper()
	files := map[string][]byte{}
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		b, err := os.ReadFile(p)
		files[filepath.ToSlash(rel)] = b
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return tarOf(t, files)
}

// writeDockerArchive does what ../shared/tools/mk-docker-archive.sh does, for machines
// without that folder.
func writeDockerArchive(t *testing.T, path, ref string, layer []byte) {
	t.Helper()
	diff := hexOf(sha256Digest(layer))
	config := fmt.Appendf(nil, `{"architecture":"amd64","os":"linux","config":{},"rootfs":{"type":"layers","diff_ids":["sha256:%s"]},"history":[{"created_by":"berth e2e"}]}`, diff)
	cfg := hexOf(sha256Digest(config))
	name, tag, _ := strings.Cut(ref, ":")
	files := map[string][]byte{
		diff + "/layer.tar": layer,
		cfg + ".json":       config,
		"manifest.json":     fmt.Appendf(nil, `[{"Config":"%s.json","RepoTags":[%q],"Layers":["%s/layer.tar"]}]`, cfg, ref, diff),
		"repositories":      fmt.Appendf(nil, `{%q:{%q:%q}}`, name, tag, diff),
	}
	if err := os.WriteFile(path, tarOf(t, files), 0o644); err != nil {
		t.Fatal(err)
	}
}

// ---- regctl ----

func (e *e2e) testRegctl(t *testing.T) {
	regctl := e.need(t, "regctl", e.goInstallHint(regctlModule))
	r := e.runner(t, 3*time.Minute)
	dir := t.TempDir()
	repo := e.host + "/library/e2e-" + e.runID + "/regctl"

	r.run("", regctl, "registry", "set", "--tls", "disabled", e.host)
	im := newImage(t, 1<<20)
	layout := filepath.Join(dir, "layout")
	im.writeLayout(t, layout, "v1")
	r.run("", regctl, "image", "copy", "ocidir://"+layout+":v1", repo+":v1")
	if got := strings.TrimSpace(string(r.run("", regctl, "image", "digest", repo+":v1"))); got != im.manifestDigest {
		t.Errorf("regctl image digest: %s, want %s", got, im.manifestDigest)
	}
	sameBytes(t, "regctl manifest get", r.run("", regctl, "manifest", "get", "--format", "raw-body", repo+":v1"), im.manifest)
	sameBytes(t, "regctl blob get", r.run("", regctl, "blob", "get", repo, im.layerDigests[0]), im.layers[0])

	r.run("", regctl, "image", "copy", repo+":v1", repo+":v2")
	r.run("", regctl, "image", "copy", repo+":v1", repo+"-copy:v1")
	mustContain(t, "regctl tag ls", lines(r.run("", regctl, "tag", "ls", repo)), "v1", "v2")
	if got := strings.TrimSpace(string(r.run("", regctl, "image", "digest", repo+"-copy:v1"))); got != im.manifestDigest {
		t.Errorf("regctl image copy: digest %s, want %s", got, im.manifestDigest)
	}

	out := filepath.Join(dir, "out")
	r.run("", regctl, "image", "copy", repo+"-copy:v1", "ocidir://"+out+":v1")
	im.checkLayoutBlobs(t, out)
}

// ---- restart ----

func (e *e2e) testRestart(t *testing.T) {
	if e.srv == nil {
		t.Skipf("restart: only when the test starts berth itself (%s is set)", envE2EURL)
	}
	crane := e.need(t, "crane", e.goInstallHint(craneModule))
	r := e.runner(t, 4*time.Minute)
	srv := startNewServer(t, e.bin, "e2e-restart", e.race)
	e.login(t, srv.addr)
	repo := srv.addr + "/library/e2e-restart"
	dir := t.TempDir()

	push := func(tag string) *image {
		im := newImage(t, 2<<20, 1024)
		layout := filepath.Join(dir, tag)
		im.writeLayout(t, layout, tag)
		r.run("", crane, "push", "--insecure", layout, repo+":"+tag)
		return im
	}
	check := func(when, tag string, im *image) {
		t.Helper()
		if got := strings.TrimSpace(string(r.run("", crane, "digest", "--insecure", repo+":"+tag))); got != im.manifestDigest {
			t.Errorf("%s: digest of %s = %s, want %s", when, tag, got, im.manifestDigest)
		}
		sameBytes(t, when+": manifest "+tag, r.run("", crane, "manifest", "--insecure", repo+"@"+im.manifestDigest), im.manifest)
		sameBytes(t, when+": config "+tag, r.run("", crane, "blob", "--insecure", repo+"@"+im.configDigest), im.config)
		for i, d := range im.layerDigests {
			sameBytes(t, when+": layer "+d, r.run("", crane, "blob", "--insecure", repo+"@"+d), im.layers[i])
		}
	}

	a := push("a")
	check("before restart", "a", a)
	if err := srv.stop(syscall.SIGTERM); err != nil {
		t.Fatalf("SIGTERM: %v", err)
	}
	srv.start(t)
	check("after SIGTERM and restart", "a", a)

	b := push("b")
	if err := srv.stop(syscall.SIGKILL); err != nil {
		t.Fatalf("SIGKILL: %v", err)
	}
	srv.start(t)
	check("after SIGKILL and restart", "a", a)
	check("after SIGKILL and restart", "b", b)
	mustContain(t, "crane ls after restarts", lines(r.run("", crane, "ls", "--insecure", repo)), "a", "b")
}
