package deploytest

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

// compose is the part of docker-compose.yml the tests read.
type compose struct {
	Services map[string]composeService
	Secrets  map[string]struct{ File string }
	Volumes  map[string]any
}

type composeService struct {
	Image       string
	Build       struct{ Context, Dockerfile string }
	Hostname    string
	Command     []string
	Environment map[string]string
	Volumes     []string
	Ports       []string
	Expose      []string
	Secrets     []string
	DependsOn   []string `yaml:"depends_on"`
}

func loadCompose(t *testing.T) compose {
	t.Helper()
	b, err := os.ReadFile(deployPath("docker-compose.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var c compose
	if err := yaml.Unmarshal(b, &c); err != nil {
		t.Fatalf("docker-compose.yml: %v", err)
	}
	return c
}

// berthServices are the services built from deploy/Dockerfile, by name.
func (c compose) berthServices() []string {
	var out []string
	for name, s := range c.Services {
		if s.Build.Dockerfile == "deploy/Dockerfile" {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}

// composeNode is what a Berth service's command line says.
type composeNode struct {
	name  string
	flags map[string]string
}

func composeNodes(t *testing.T, c compose) []composeNode {
	t.Helper()
	names := c.berthServices()
	if len(names) != 3 {
		t.Fatalf("docker-compose.yml: %d services build deploy/Dockerfile (%v), want 3", len(names), names)
	}
	var out []composeNode
	for _, name := range names {
		out = append(out, composeNode{name, parseServe(t, "compose "+name, c.Services[name].Command)})
	}
	return out
}

func TestComposeFile(t *testing.T) {
	c := loadCompose(t)
	nodes := composeNodes(t, c)
	var gossipAddrs, apiTargets []string
	ids := map[string]bool{}
	for _, n := range nodes {
		s, f, where := c.Services[n.name], n.flags, "compose "+n.name
		for _, req := range []string{"node-id", "data-dir", "listen", "raft-listen", "gossip-listen",
			"advertise", "raft-advertise", "gossip-advertise", "cluster-key-file", "admin-password-file"} {
			if f[req] == "" {
				t.Errorf("%s: --%s is not set", where, req)
			}
		}
		if f["join"] != "" {
			t.Errorf("%s: --join is set; the entry point adds it from BERTH_PEERS", where)
		}
		ids[f["node-id"]] = true
		// Each advertised address is this service's name and its listen port,
		// and the port is exposed to the other containers.
		for _, pair := range [][2]string{{"listen", "advertise"}, {"raft-listen", "raft-advertise"}, {"gossip-listen", "gossip-advertise"}} {
			lp, ap := port(t, where, f[pair[0]]), port(t, where, f[pair[1]])
			if lp != ap {
				t.Errorf("%s: --%s port %d, --%s port %d", where, pair[0], lp, pair[1], ap)
			}
			if h := host(f[pair[1]]); h != n.name || s.Hostname != n.name {
				t.Errorf("%s: --%s host %q, hostname %q, want the service name", where, pair[1], h, s.Hostname)
			}
			if !slices.Contains(s.Expose, strings.TrimPrefix(f[pair[0]], "0.0.0.0:")) {
				t.Errorf("%s: port of --%s not in expose %v", where, pair[0], s.Expose)
			}
		}
		gossipAddrs = append(gossipAddrs, f["gossip-advertise"])
		apiTargets = append(apiTargets, f["advertise"])
		// Files come from the service's secrets, the data directory from a volume.
		for _, fl := range []string{"cluster-key-file", "admin-password-file"} {
			name, ok := strings.CutPrefix(f[fl], "/run/secrets/")
			if !ok || !slices.Contains(s.Secrets, name) || c.Secrets[name].File == "" {
				t.Errorf("%s: --%s %s is not one of the service's secrets %v", where, fl, f[fl], s.Secrets)
			}
		}
		if !slices.ContainsFunc(s.Volumes, func(v string) bool { return strings.HasSuffix(v, ":"+f["data-dir"]) }) {
			t.Errorf("%s: --data-dir %s is not a volume (%v)", where, f["data-dir"], s.Volumes)
		}
	}
	if len(ids) != 3 {
		t.Errorf("node ids %v are not distinct", ids)
	}
	env := c.Services[nodes[0].name].Environment
	for _, n := range nodes[1:] {
		if e := c.Services[n.name].Environment; e["BERTH_PEERS"] != env["BERTH_PEERS"] || e["BERTH_BOOTSTRAP_NODE"] != env["BERTH_BOOTSTRAP_NODE"] {
			t.Errorf("compose %s: BERTH_PEERS/BERTH_BOOTSTRAP_NODE differ from %s's", n.name, nodes[0].name)
		}
	}
	if got := strings.Split(env["BERTH_PEERS"], ","); !slices.Equal(got, gossipAddrs) {
		t.Errorf("BERTH_PEERS %v, want every node's --gossip-advertise %v", got, gossipAddrs)
	}
	if !ids[env["BERTH_BOOTSTRAP_NODE"]] {
		t.Errorf("BERTH_BOOTSTRAP_NODE %q is not a node id", env["BERTH_BOOTSTRAP_NODE"])
	}

	// Every file the services mount from the repository exists.
	for name, s := range c.Services {
		for _, v := range s.Volumes {
			src, _, _ := strings.Cut(v, ":")
			if strings.HasPrefix(src, ".") {
				if _, err := os.Stat(deployPath(src)); err != nil {
					t.Errorf("compose %s mounts %s: %v", name, src, err)
				}
			}
		}
	}

	t.Run("load balancer", func(t *testing.T) { checkHAProxy(t, c, apiTargets) })
	t.Run("prometheus", func(t *testing.T) { checkPrometheusConfig(t, c, apiTargets) })
	t.Run("grafana", func(t *testing.T) { checkGrafana(t, c) })
}

// checkHAProxy: every node is a server with /readyz health checks, bodies are
// streamed (no request buffering) and the idle timeouts suit long uploads.
func checkHAProxy(t *testing.T, c compose, apiTargets []string) {
	var lb *composeService
	for _, s := range c.Services {
		if strings.HasPrefix(s.Image, "haproxy:") {
			lb = &s
		}
	}
	if lb == nil {
		t.Fatal("no haproxy service")
	}
	cfgPath := ""
	for _, v := range lb.Volumes {
		if strings.Contains(v, "haproxy.cfg") {
			cfgPath, _, _ = strings.Cut(v, ":")
		}
	}
	f, err := os.Open(deployPath(cfgPath))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var servers []string
	timeouts := map[string]time.Duration{}
	var httpchk string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line, _, _ := strings.Cut(sc.Text(), "#")
		fields := strings.Fields(line)
		switch {
		case len(fields) == 0:
		case fields[0] == "server" && len(fields) >= 3:
			servers = append(servers, fields[2])
		case fields[0] == "timeout" && len(fields) >= 3:
			d, err := time.ParseDuration(fields[2])
			if err != nil {
				t.Errorf("haproxy.cfg: %s", line)
			}
			timeouts[fields[1]] = d
		case fields[0] == "option" && len(fields) >= 2 && fields[1] == "httpchk":
			httpchk = strings.Join(fields[2:], " ")
		case fields[0] == "option" && len(fields) >= 2 && fields[1] == "http-buffer-request":
			t.Error("haproxy.cfg buffers request bodies (option http-buffer-request)")
		}
	}
	if !slices.Equal(servers, apiTargets) {
		t.Errorf("haproxy servers %v, want the nodes' API addresses %v", servers, apiTargets)
	}
	if httpchk != "GET /readyz" {
		t.Errorf("haproxy health check %q, want GET /readyz", httpchk)
	}
	for _, k := range []string{"client", "server"} {
		if timeouts[k] < 10*time.Minute {
			t.Errorf("haproxy timeout %s = %v, want at least 10m for long uploads", k, timeouts[k])
		}
	}
	// Where HAProxy is installed (Debian package haproxy), it checks the file
	// too; the servers' names only resolve inside Compose, which it warns about.
	if bin, err := exec.LookPath("haproxy"); err == nil {
		if out, err := exec.Command(bin, "-c", "-f", deployPath(cfgPath)).CombinedOutput(); err != nil {
			t.Errorf("haproxy -c: %v\n%s", err, out)
		}
	}
}

func checkPrometheusConfig(t *testing.T, c compose, apiTargets []string) {
	b, err := os.ReadFile(deployPath("prometheus", "prometheus.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		RuleFiles     []string `yaml:"rule_files"`
		ScrapeConfigs []struct {
			JobName       string                       `yaml:"job_name"`
			MetricsPath   string                       `yaml:"metrics_path"`
			StaticConfigs []struct{ Targets []string } `yaml:"static_configs"`
		} `yaml:"scrape_configs"`
	}
	if err := yaml.Unmarshal(b, &cfg); err != nil {
		t.Fatal(err)
	}
	var targets []string
	for _, sc := range cfg.ScrapeConfigs {
		if sc.JobName != "berth" {
			continue
		}
		if sc.MetricsPath != "" && sc.MetricsPath != "/metrics" {
			t.Errorf("metrics_path %q", sc.MetricsPath)
		}
		for _, s := range sc.StaticConfigs {
			targets = append(targets, s.Targets...)
		}
	}
	if !slices.Equal(targets, apiTargets) {
		t.Errorf("job berth scrapes %v, want every node's API %v (the alert rules expect job=\"berth\")", targets, apiTargets)
	}
	if !slices.Contains(cfg.RuleFiles, "alerts.yml") {
		t.Errorf("rule_files %v do not load alerts.yml", cfg.RuleFiles)
	}
	mounted := strings.Join(c.Services["prometheus"].Volumes, " ")
	for _, f := range []string{"./prometheus/prometheus.yml:/etc/prometheus/prometheus.yml", "./prometheus/alerts.yml:/etc/prometheus/alerts.yml"} {
		if !strings.Contains(mounted, f) {
			t.Errorf("the prometheus service does not mount %s", f)
		}
	}
	if bin, err := exec.LookPath("promtool"); err == nil {
		if out, err := exec.Command(bin, "check", "config", deployPath("prometheus", "prometheus.yml")).CombinedOutput(); err != nil {
			t.Errorf("promtool check config: %v\n%s", err, out)
		}
	} else if os.Getenv("BERTH_E2E_REQUIRE") != "" {
		t.Error("promtool not found: apt-get install prometheus (.ci/install-test-tools.sh does)")
	}
}

func checkGrafana(t *testing.T, c compose) {
	g := c.Services["grafana"]
	var dashDir string
	for _, v := range g.Volumes {
		parts := strings.Split(v, ":")
		if len(parts) >= 2 && strings.HasSuffix(parts[0], "berth-dashboard.json") {
			dashDir = filepath.Dir(parts[1])
		}
	}
	b, err := os.ReadFile(deployPath("grafana", "provisioning", "dashboards", "berth.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var prov struct {
		Providers []struct {
			Options struct{ Path string }
		}
	}
	if err := yaml.Unmarshal(b, &prov); err != nil {
		t.Fatal(err)
	}
	if len(prov.Providers) != 1 || prov.Providers[0].Options.Path != dashDir || dashDir == "" {
		t.Errorf("dashboard provider %+v does not read the mounted dashboard's directory %q", prov.Providers, dashDir)
	}
	b, err = os.ReadFile(deployPath("grafana", "provisioning", "datasources", "prometheus.yml"))
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`url: http://prometheus:9090\b`).Match(b) {
		t.Error("the Grafana data source does not point at the prometheus service")
	}
}
