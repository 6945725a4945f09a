package node

import (
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestReadiness: /readyz answers 200 on a healthy node and 503 with the
// reason when the data disk is short of space or the node drains; /healthz
// answers 200 throughout.
func TestReadiness(t *testing.T) {
	n, base := startNode(t, t.TempDir())
	ready := func() (int, string) {
		r := getAs(t, base+"/readyz", "", "")
		return r.status, string(r.body)
	}
	if code, body := ready(); code != http.StatusOK {
		t.Fatalf("healthy node: /readyz %d %q", code, body)
	}

	// Less free space than required: not ready, once the cached probe expires.
	n.readyz.mu.Lock()
	n.readyz.minFree = 1 << 62
	n.readyz.checked = time.Time{}
	n.readyz.mu.Unlock()
	if code, body := ready(); code != http.StatusServiceUnavailable || !strings.Contains(body, "almost full") {
		t.Errorf("disk short of space: /readyz %d %q, want 503 almost full", code, body)
	}
	// The probe's result is kept for readyDiskCheckEvery.
	n.readyz.mu.Lock()
	n.readyz.minFree = 0
	n.readyz.mu.Unlock()
	if code, _ := ready(); code != http.StatusServiceUnavailable {
		t.Errorf("within %s of the last probe: /readyz %d, want the cached 503", readyDiskCheckEvery, code)
	}
	n.readyz.mu.Lock()
	n.readyz.checked = time.Time{}
	n.readyz.mu.Unlock()
	if code, body := ready(); code != http.StatusOK {
		t.Errorf("space again: /readyz %d %q", code, body)
	}

	n.draining.Store(true)
	if code, body := ready(); code != http.StatusServiceUnavailable || !strings.Contains(body, "draining") {
		t.Errorf("draining: /readyz %d %q, want 503 draining", code, body)
	}
	if r := getAs(t, base+"/healthz", "", ""); r.status != http.StatusOK {
		t.Errorf("draining: /healthz %d, want 200", r.status)
	}
	n.draining.Store(false)
}

func TestProbeDisk(t *testing.T) {
	dir := t.TempDir()
	if err := probeDisk(dir, 1); err != nil {
		t.Errorf("writable dir: %v", err)
	}
	if err := probeDisk(filepath.Join(dir, "missing"), 1); err == nil || !strings.Contains(err.Error(), "not writable") {
		t.Errorf("missing dir: got %v, want not writable", err)
	}
	if m, _ := filepath.Glob(filepath.Join(dir, ".readyz-*")); len(m) != 0 {
		t.Errorf("probe files left behind: %v", m)
	}
}
