//go:build chaos

package node

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/berth-registry/berth/blobstore"
	"github.com/berth-registry/berth/meta"
)

// startFaultNode starts a single node on dir like startNode, logging to
// logger (nil: discarded).
func startFaultNode(t *testing.T, dir string, logger *slog.Logger) (*Node, string) {
	t.Helper()
	n, url := startNodeLogged(t, dir, logger)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := n.Propose(ctx, &meta.PutWorkspace{Name: "a", Project: "default", Visibility: meta.Private, Create: true, Time: time.Now()})
	if err != nil && !errors.Is(err, meta.ErrExists) {
		t.Fatal(err)
	}
	return n, url
}

// faults calls /internal/v1/faults with the cluster credential (token "":
// none).
func faults(t *testing.T, base, token, method, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, base+"/internal/v1/faults", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Berth-Cluster "+token)
	}
	r, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Body.Close()
	b, _ := io.ReadAll(r.Body)
	return r.StatusCode, string(b)
}

func faultStatus(t *testing.T, base, token string) FaultStatus {
	t.Helper()
	code, body := faults(t, base, token, "GET", "")
	var st FaultStatus
	if code != http.StatusOK || json.Unmarshal([]byte(body), &st) != nil {
		t.Fatalf("GET faults: %d %s", code, body)
	}
	return st
}

func TestFaultEndpointRefusesBadInput(t *testing.T) {
	n, base := startFaultNode(t, t.TempDir(), nil)
	if code, _ := faults(t, base, "", "GET", ""); code != http.StatusUnauthorized {
		t.Errorf("without the cluster credential: got %d, want 401", code)
	}
	if code, _ := faults(t, base, "wrong", "PUT", `{}`); code != http.StatusUnauthorized {
		t.Errorf("with a wrong credential: got %d, want 401", code)
	}
	for _, body := range []string{
		``,
		`[]`,
		`{"disk":[{"store":"blob","op":"sync","error":"EIO","probability":1}]}`,
		`{"disk":[{"store":"blobs","op":"fsync","error":"EIO","probability":1}]}`,
		`{"disk":[{"store":"blobs","op":"sync","error":"EPERM","probability":1}]}`,
		`{"disk":[{"store":"blobs","op":"sync","error":"EIO","probability":1.5}]}`,
		`{"disk":[{"store":"blobs","op":"sync","error":"EIO","probability":-0.1}]}`,
		`{"disk":[{"store":"blobs","op":"sync","error":"EIO"}],"extra":1}`,
		`{"disk":[],"clockOffset":"90"}`,
		`{"disk":[],"clockOffset":"100000h"}`,
		`{"disk":[]} {}`,
	} {
		code, msg := faults(t, base, n.internalToken, "PUT", body)
		if code != http.StatusBadRequest || !strings.Contains(msg, "bad fault set") {
			t.Errorf("PUT %s: got %d %q, want 400", body, code, msg)
		}
	}
	if code, _ := faults(t, base, n.internalToken, "POST", `{}`); code != http.StatusMethodNotAllowed {
		t.Errorf("POST: got %d, want 405", code)
	}
	if st := faultStatus(t, base, n.internalToken); len(st.Disk) != 0 || st.ClockOffset != "" {
		t.Errorf("refused sets changed the faults: %+v", st)
	}
}

// A blob store fsync fault fails a push with a 5xx and stores nothing;
// clearing it lets the same push through.
func TestFaultBlobSyncFailsPush(t *testing.T) {
	dir := t.TempDir()
	n, base := startFaultNode(t, dir, nil)
	content := []byte("a layer that cannot be synced")
	d := sha(content)

	code, body := faults(t, base, n.internalToken, "PUT",
		`{"disk":[{"store":"blobs","op":"sync","error":"EIO","probability":1}]}`)
	if code != http.StatusOK {
		t.Fatalf("PUT faults: %d %s", code, body)
	}
	r := do(t, "POST", base+"/v2/a/app/blobs/uploads/?digest="+d, content)
	if r.status < 500 {
		t.Fatalf("push under an fsync fault: got %d %s, want 5xx", r.status, r.body)
	}
	if r := do(t, "HEAD", base+"/v2/a/app/blobs/"+d, nil); r.status != http.StatusNotFound {
		t.Errorf("HEAD after the failed push: got %d, want 404", r.status)
	}
	if _, err := n.blobs.Stat(digest.Digest(d)); !errors.Is(err, blobstore.ErrBlobUnknown) {
		t.Errorf("blob file after the failed push: %v", err)
	}
	if left, _ := os.ReadDir(dir + "/uploads"); len(left) != 0 {
		t.Errorf("upload files left behind: %d", len(left))
	}
	st := faultStatus(t, base, n.internalToken)
	if len(st.Disk) != 1 || st.Disk[0] != (DiskFault{Store: "blobs", Op: "sync", Error: "EIO", Probability: 1}) {
		t.Errorf("GET faults: %+v", st.Disk)
	}
	if st.Injected["blobs"]["sync"] == 0 || st.Injected["blobs"]["write"] != 0 || st.Injected["meta"]["sync"] != 0 {
		t.Errorf("injected counts: %v", st.Injected)
	}

	if code, body := faults(t, base, n.internalToken, "DELETE", ""); code != http.StatusOK {
		t.Fatalf("DELETE faults: %d %s", code, body)
	}
	pushBlob(t, base, "a/app", content)
	if r := do(t, "GET", base+"/v2/a/app/blobs/"+d, nil); r.status != http.StatusOK || !bytes.Equal(r.body, content) {
		t.Fatalf("pull after clearing: %d", r.status)
	}
	if st := faultStatus(t, base, n.internalToken); len(st.Disk) != 0 || st.Injected["blobs"]["sync"] == 0 {
		t.Errorf("after DELETE: %+v", st)
	}
}

// The clock offset moves the node's clock: a token's issue time, and an
// upload session's start. (Metadata stamps are not checked: the FSM stamps
// commands with the Raft leader's append time, from hashicorp/raft's own
// time.Now.)
func TestFaultClockOffset(t *testing.T) {
	dir := t.TempDir()
	n, base := startFaultNode(t, dir, nil)
	issued := func() time.Time {
		t.Helper()
		req, _ := http.NewRequest("GET", base+"/auth/token?service=berth", nil)
		req.SetBasicAuth("admin", testAdminPassword)
		r, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Body.Close()
		var body struct {
			Token    string `json:"token"`
			IssuedAt string `json:"issued_at"`
		}
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil || r.StatusCode != 200 {
			t.Fatalf("token: %d %v", r.StatusCode, err)
		}
		at, err := time.Parse(time.RFC3339, body.IssuedAt)
		if err != nil {
			t.Fatal(err)
		}
		// The skewed node accepts its own token.
		req, _ = http.NewRequest("GET", base+"/v2/", nil)
		req.Header.Set("Authorization", "Bearer "+body.Token)
		if r, err := http.DefaultClient.Do(req); err != nil || r.StatusCode != 200 {
			t.Fatalf("GET /v2/ with the token: %v %v", r, err)
		} else {
			r.Body.Close()
		}
		return at
	}
	near := func(what string, got, want time.Time) {
		t.Helper()
		if d := got.Sub(want); d < -3*time.Second || d > 3*time.Second {
			t.Errorf("%s: %s, want about %s", what, got.UTC(), want.UTC())
		}
	}
	near("issued_at without an offset", issued(), time.Now())

	if code, body := faults(t, base, n.internalToken, "PUT", `{"disk":[],"clockOffset":"-2h30m"}`); code != http.StatusOK {
		t.Fatalf("PUT faults: %d %s", code, body)
	}
	if st := faultStatus(t, base, n.internalToken); st.ClockOffset != "-2h30m0s" {
		t.Errorf("GET clockOffset: %q", st.ClockOffset)
	}
	skewed := time.Now().Add(-150 * time.Minute)
	near("issued_at with -2h30m", issued(), skewed)
	// The blob store has the node's clock: an upload session's start time.
	if r := do(t, "POST", base+"/v2/a/app/blobs/uploads/", nil); r.status != http.StatusAccepted {
		t.Fatalf("start an upload: %d %s", r.status, r.body)
	}
	sessions, err := os.ReadDir(filepath.Join(dir, "uploads"))
	if err != nil || len(sessions) != 1 {
		t.Fatalf("upload sessions: %v %v", sessions, err)
	}
	b, err := os.ReadFile(filepath.Join(dir, "uploads", sessions[0].Name(), "state"))
	var state struct{ Started time.Time }
	if err != nil || json.Unmarshal(b, &state) != nil {
		t.Fatalf("session state: %s %v", b, err)
	}
	near("the upload session's start", state.Started, skewed)

	faults(t, base, n.internalToken, "DELETE", "")
	near("issued_at after DELETE", issued(), time.Now())
}

// metaFaultHelperEnv makes the test binary run metaFaultHelper instead of the
// test (in a subprocess: the node under a Pebble fault ends its process).
const metaFaultHelperEnv = "BERTH_META_FAULT_HELPER"

var (
	blobBeforeFault = []byte("recorded before the metadata fault")
	blobAfterFault  = []byte("pushed under the metadata fault")
)

// A failed write or sync of Pebble's WAL ends the process with status 1
// (pebbleLogger.Fatalf; see New): the node fails stop. On restart it has
// what was committed before the fault, and serves and takes pushes again.
func TestFaultMetaWriteKillsNode(t *testing.T) {
	if spec := os.Getenv(metaFaultHelperEnv); spec != "" {
		metaFaultHelper(t, spec)
		return
	}
	for _, op := range []string{"write", "sync"} {
		t.Run(op, func(t *testing.T) {
			dir := t.TempDir()
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestFaultMetaWriteKillsNode$", "-test.count=1")
			cmd.Env = append(os.Environ(), metaFaultHelperEnv+"="+op+":"+dir)
			var stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stderr, &stderr
			err := cmd.Run()
			var exit *exec.ExitError
			if !errors.As(err, &exit) || exit.ExitCode() != 1 || !strings.Contains(stderr.String(), "pebble: fatal commit error") {
				t.Fatalf("node under a meta %s fault: %v, want exit status 1 after a fatal commit error; output:\n%s", op, err, stderr.String())
			}
			t.Logf("the node died: %s", lastLine(stderr.String(), "fatal commit error"))

			_, base := startFaultNode(t, dir, nil)
			if r := do(t, "GET", base+"/v2/a/app/blobs/"+sha(blobBeforeFault), nil); r.status != 200 || !bytes.Equal(r.body, blobBeforeFault) {
				t.Errorf("blob recorded before the fault, after restart: %d", r.status)
			}
			// A write that failed never reached the WAL. A sync that failed
			// did not make the write durable, but the bytes may still be in
			// the page cache, and the restarted node replays them (its Raft
			// log has the entry): the push, never acknowledged, may take
			// effect, whole, or not at all.
			r := do(t, "GET", base+"/v2/a/app/blobs/"+sha(blobAfterFault), nil)
			switch {
			case r.status == http.StatusNotFound:
			case op == "sync" && r.status == http.StatusOK && bytes.Equal(r.body, blobAfterFault):
				t.Logf("the push whose WAL sync failed was replayed at restart")
			default:
				t.Errorf("blob pushed under the fault, after restart: got %d (%d bytes)", r.status, len(r.body))
			}
			pushBlob(t, base, "a/app", []byte("after the restart"))
		})
	}
}

// metaFaultHelper runs in the subprocess: push a blob, fail every Pebble op
// of one kind, push another. Pebble should end the process before it returns.
func metaFaultHelper(t *testing.T, spec string) {
	op, dir, _ := strings.Cut(spec, ":")
	n, base := startFaultNode(t, dir, slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	pushBlob(t, base, "a/app", blobBeforeFault)
	code, body := faults(t, base, n.internalToken, "PUT",
		`{"disk":[{"store":"meta","op":"`+op+`","error":"EIO","probability":1}]}`)
	if code != http.StatusOK {
		t.Fatalf("PUT faults: %d %s", code, body)
	}
	d := sha(blobAfterFault)
	req, _ := http.NewRequest("POST", base+"/v2/a/app/blobs/uploads/?digest="+d, bytes.NewReader(blobAfterFault))
	req.SetBasicAuth("admin", testAdminPassword)
	if r, err := http.DefaultClient.Do(req); err == nil {
		r.Body.Close()
		t.Logf("push under the fault answered %d", r.StatusCode)
	}
	time.Sleep(5 * time.Second) // background writes (the audit flush) would hit it too
	t.Logf("still alive after a meta %s fault; injected %v", op, faultStatus(t, base, n.internalToken).Injected)
	os.Exit(3)
}

func lastLine(s, sub string) string {
	lines := strings.Split(s, "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if strings.Contains(lines[i], sub) {
			return lines[i]
		}
	}
	return ""
}
