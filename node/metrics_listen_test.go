package node

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestMetricsListenAndWorkspaceUsage checks that --metrics-listen moves /metrics
// to its own address and that per-workspace storage is exported.
func TestMetricsListenAndWorkspaceUsage(t *testing.T) {
	cfg := Defaults()
	cfg.DataDir = t.TempDir()
	cfg.Listen = "127.0.0.1:0"
	cfg.MetricsListen = freePort(t, "tcp")
	cfg.AdminPassword = testAdminPassword
	n, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := n.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer n.Shutdown(context.Background())
	base := "http://" + n.Addr()
	layer := []byte(strings.Repeat("x", 1000))
	pushBlob(t, base, "library/app", layer)
	pushBlob(t, base, "library/other", layer) // the same blob counts once per workspace

	if r := do(t, "GET", base+"/metrics", nil); r.status != http.StatusNotFound {
		t.Errorf("/metrics on the API address: got %d, want 404", r.status)
	}
	resp, err := http.Get("http://" + cfg.MetricsListen + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if want := `berth_workspace_stored_bytes{workspace="library"} 1000`; !strings.Contains(string(body), want) {
		t.Errorf("metrics on %s lack %q", cfg.MetricsListen, want)
	}
	for _, name := range []string{"berth_raft_last_contact_seconds", "berth_replication_lag_seconds", "berth_http_requests_total"} {
		if !strings.Contains(string(body), name) {
			t.Errorf("metrics lack %s", name)
		}
	}
}
