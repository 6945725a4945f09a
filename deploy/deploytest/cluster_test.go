package deploytest

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestComposeClusterStarts starts the Compose file's three Berth services as
// local processes, through the image's entry point, with exactly their
// command lines and environment; only the host names and ports become free
// loopback ports, and the volume and secret paths become temporary files.
// The nodes must form one cluster; then the bootstrap node is stopped
// (SIGTERM: it drains and leaves) and started again with the same command
// line, and must rejoin.
func TestComposeClusterStarts(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three berth processes")
	}
	bin := berthBinary(t)
	c := loadCompose(t)
	nodes := composeNodes(t, c)
	if t.Failed() {
		t.FailNow()
	}
	dir := t.TempDir()

	// Secrets: a real cluster key and a password, at the paths the services
	// read them from.
	secretFiles := map[string]string{}
	for name := range c.Secrets {
		secretFiles["/run/secrets/"+name] = filepath.Join(dir, "secret-"+name)
	}
	password := "deploytest-password-123"
	for path, file := range secretFiles {
		if strings.Contains(path, "key") {
			if out, err := exec.Command(bin, "cluster", "keygen", file).CombinedOutput(); err != nil {
				t.Fatalf("keygen: %v %s", err, out)
			}
		} else if err := os.WriteFile(file, []byte(password+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}

	// A free loopback port for each (service, container port).
	ports := map[string]string{}
	addr := func(service, p string) string {
		k := service + ":" + p
		if ports[k] == "" {
			ports[k] = freeLoopback(t)
		}
		return ports[k]
	}
	hostPort := regexp.MustCompile(`^([a-z0-9.-]+):([0-9]+)$`)
	rewrite := func(service, v string) string {
		if m := hostPort.FindStringSubmatch(v); m != nil {
			h := m[1]
			if h == "0.0.0.0" || h == "" {
				h = service
			}
			return addr(h, m[2])
		}
		if f, ok := secretFiles[v]; ok {
			return f
		}
		return v
	}
	type proc struct {
		name string
		args []string
		env  []string
		api  string
		log  string
		cmd  *exec.Cmd
	}
	procs := make([]*proc, len(nodes))
	for i, n := range nodes {
		s := c.Services[n.name]
		p := &proc{name: n.name, log: filepath.Join(dir, n.name+".log")}
		for _, a := range s.Command {
			name, v, ok := strings.Cut(a, "=")
			switch {
			case !ok:
				p.args = append(p.args, a)
			case name == "--data-dir":
				p.args = append(p.args, name+"="+filepath.Join(dir, n.name))
			default:
				p.args = append(p.args, name+"="+rewrite(n.name, v))
			}
		}
		p.env = append(os.Environ(), "BERTH_BIN="+bin, "BERTH_DATA_DIR="+filepath.Join(dir, n.name))
		for k, v := range s.Environment {
			if k == "BERTH_PEERS" {
				var peers []string
				for _, x := range strings.Split(v, ",") {
					peers = append(peers, rewrite(n.name, x))
				}
				v = strings.Join(peers, ",")
			}
			p.env = append(p.env, k+"="+v)
		}
		p.api = "http://" + addr(n.name, fmt.Sprint(port(t, n.name, n.flags["listen"])))
		procs[i] = p
	}

	start := func(p *proc) {
		t.Helper()
		logf, err := os.OpenFile(p.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
		if err != nil {
			t.Fatal(err)
		}
		p.cmd = exec.Command("/bin/sh", append([]string{deployPath("berth-entrypoint.sh")}, p.args...)...)
		p.cmd.Env, p.cmd.Stdout, p.cmd.Stderr = p.env, logf, logf
		if err := p.cmd.Start(); err != nil {
			t.Fatal(err)
		}
		logf.Close()
	}
	stop := func(p *proc) {
		if p.cmd == nil || p.cmd.Process == nil {
			return
		}
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = p.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(40 * time.Second):
			_ = p.cmd.Process.Kill()
			<-done
		}
		p.cmd = nil
	}
	t.Cleanup(func() {
		for _, p := range procs {
			stop(p)
		}
		if t.Failed() {
			for _, p := range procs {
				b, _ := os.ReadFile(p.log)
				lines := strings.Split(strings.TrimSpace(string(b)), "\n")
				t.Logf("%s log (last lines):\n%s", p.name, strings.Join(lines[max(0, len(lines)-25):], "\n"))
			}
		}
	})
	// Compose starts the services together.
	for _, p := range procs {
		start(p)
	}
	for _, p := range procs {
		p := p
		waitUntil(t, 120*time.Second, p.name+" ready", func() bool { return status(p.api+"/readyz", "", "") == 200 })
	}

	// One cluster: every node sees three live members and one leader, and a
	// blob pushed through one node is served by the others.
	checkCluster := func(what string) {
		t.Helper()
		waitUntil(t, 60*time.Second, what+": 3 live gossip members on every node", func() bool {
			for _, p := range procs {
				if metric(p.api, `berth_gossip_members{state="alive"}`) != "3" {
					return false
				}
			}
			return true
		})
		leaders := 0
		for _, p := range procs {
			if metric(p.api, "berth_raft_state") == "2" {
				leaders++
			}
		}
		if leaders != 1 {
			t.Errorf("%s: %d nodes are leader", what, leaders)
		}
		blob := []byte(what + " " + time.Now().String())
		h := sha256.Sum256(blob)
		d := "sha256:" + hex.EncodeToString(h[:])
		var code int
		waitUntil(t, 30*time.Second, what+": push through "+procs[2].name, func() bool {
			code = post(procs[2].api+"/v2/library/deploytest/blobs/uploads/?digest="+d, blob, "admin", password)
			return code == 201
		})
		for _, p := range procs[:2] {
			if got := status(p.api+"/v2/library/deploytest/blobs/"+d, "admin", password); got != 200 {
				t.Errorf("%s: blob pushed through %s: %d", p.name, procs[2].name, got)
			}
		}
	}
	checkCluster("first start")

	// The bootstrap node stops cleanly (it leaves the cluster) and comes back
	// with the same command line: the entry point makes it join this time.
	var boot *proc
	for i, n := range nodes {
		if n.flags["node-id"] == c.Services[n.name].Environment["BERTH_BOOTSTRAP_NODE"] {
			boot = procs[i]
		}
	}
	if boot == nil {
		t.Fatal("no service is BERTH_BOOTSTRAP_NODE")
	}
	stop(boot)
	start(boot)
	waitUntil(t, 120*time.Second, boot.name+" ready after a restart", func() bool { return status(boot.api+"/readyz", "", "") == 200 })
	checkCluster("after restarting " + boot.name)
}

func freeLoopback(t *testing.T) string {
	t.Helper()
	// The processes bind these ports a while after this check, so the ports
	// come from below Linux's ephemeral range (32768-60999 by default): the
	// kernel never hands those to other tests' outgoing connections or to
	// their listeners on port 0, which is how a port checked free here was
	// once taken before a node bound it.
	for range 1000 {
		a := fmt.Sprintf("127.0.0.1:%d", 20000+rand.IntN(12000))
		l, err := net.Listen("tcp", a)
		if err != nil {
			continue
		}
		l.Close()
		// Gossip binds the same port for UDP.
		if u, err := net.ListenPacket("udp", a); err == nil {
			u.Close()
			return a
		}
	}
	t.Fatal("no free loopback port below the ephemeral range")
	return ""
}

func waitUntil(t *testing.T, d time.Duration, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

var client = &http.Client{Timeout: 10 * time.Second}

func status(url, user, pass string) int {
	req, _ := http.NewRequest("GET", url, nil)
	if user != "" {
		req.SetBasicAuth(user, pass)
	}
	r, err := client.Do(req)
	if err != nil {
		return 0
	}
	_, _ = io.Copy(io.Discard, r.Body)
	r.Body.Close()
	return r.StatusCode
}

func post(url string, body []byte, user, pass string) int {
	req, _ := http.NewRequest("POST", url, bytes.NewReader(body))
	req.SetBasicAuth(user, pass)
	r, err := client.Do(req)
	if err != nil {
		return 0
	}
	_, _ = io.Copy(io.Discard, r.Body)
	r.Body.Close()
	return r.StatusCode
}

// metric returns the value of one sample of base's /metrics, "" if absent.
func metric(base, series string) string {
	r, err := client.Get(base + "/metrics")
	if err != nil {
		return ""
	}
	defer r.Body.Close()
	b, _ := io.ReadAll(r.Body)
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			return strings.TrimSpace(v)
		}
	}
	return ""
}
