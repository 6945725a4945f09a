package deploytest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/berth-registry/berth/node"
)

// k8sObject is the part of a manifest the tests read; spec stays generic
// until a kind is decoded into its own type.
type k8sObject struct {
	file       string
	APIVersion string `yaml:"apiVersion"`
	Kind       string
	Metadata   struct {
		Name, Namespace string
		Labels          map[string]string
	}
	Spec       yaml.Node
	Data       map[string]string
	StringData map[string]string `yaml:"stringData"`
}

func loadManifests(t *testing.T) []k8sObject {
	t.Helper()
	files, err := filepath.Glob(deployPath("kubernetes", "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no manifests in deploy/kubernetes: %v", err)
	}
	var out []k8sObject
	for _, f := range files {
		if filepath.Base(f) == "kustomization.yaml" {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		dec := yaml.NewDecoder(bytes.NewReader(b))
		for {
			var o k8sObject
			err := dec.Decode(&o)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			o.file = filepath.Base(f)
			out = append(out, o)
		}
	}
	return out
}

func find(objs []k8sObject, kind, name string) *k8sObject {
	for i := range objs {
		if objs[i].Kind == kind && objs[i].Metadata.Name == name {
			return &objs[i]
		}
	}
	return nil
}

func decodeSpec(t *testing.T, o *k8sObject, v any) {
	t.Helper()
	if err := o.Spec.Decode(v); err != nil {
		t.Fatalf("%s %s: %v", o.Kind, o.Metadata.Name, err)
	}
}

type k8sPort struct {
	Name          string
	ContainerPort int `yaml:"containerPort"`
	Port          int
	TargetPort    string `yaml:"targetPort"`
	Protocol      string
}

type k8sProbe struct {
	HTTPGet *struct {
		Path, Port, Scheme string
	} `yaml:"httpGet"`
}

type statefulSetSpec struct {
	ServiceName         string `yaml:"serviceName"`
	Replicas            int
	PodManagementPolicy string `yaml:"podManagementPolicy"`
	Selector            struct {
		MatchLabels map[string]string `yaml:"matchLabels"`
	}
	Template struct {
		Metadata struct{ Labels map[string]string }
		Spec     struct {
			Containers []struct {
				Name, Image    string
				Command, Args  []string
				Env            []struct{ Name, Value string }
				Ports          []k8sPort
				StartupProbe   *k8sProbe `yaml:"startupProbe"`
				LivenessProbe  *k8sProbe `yaml:"livenessProbe"`
				ReadinessProbe *k8sProbe `yaml:"readinessProbe"`
				VolumeMounts   []struct {
					Name      string
					MountPath string `yaml:"mountPath"`
				} `yaml:"volumeMounts"`
			}
			Volumes []struct {
				Name      string
				ConfigMap *struct{ Name string } `yaml:"configMap"`
				Secret    *struct {
					SecretName string `yaml:"secretName"`
				}
			}
		}
	}
	VolumeClaimTemplates []struct {
		Metadata struct{ Name string }
	} `yaml:"volumeClaimTemplates"`
}

type serviceSpec struct {
	ClusterIP                string `yaml:"clusterIP"`
	PublishNotReadyAddresses bool   `yaml:"publishNotReadyAddresses"`
	Selector                 map[string]string
	Ports                    []k8sPort
}

func subset(sel, labels map[string]string) bool {
	for k, v := range sel {
		if labels[k] != v {
			return false
		}
	}
	return len(sel) > 0
}

func TestKubernetesManifests(t *testing.T) {
	objs := loadManifests(t)

	// kustomization.yaml lists every manifest.
	var kust struct{ Resources []string }
	if b, err := os.ReadFile(deployPath("kubernetes", "kustomization.yaml")); err != nil {
		t.Fatal(err)
	} else if err := yaml.Unmarshal(b, &kust); err != nil {
		t.Fatal(err)
	}
	files := map[string]bool{}
	for _, o := range objs {
		files[o.file] = true
	}
	for f := range files {
		if !slices.Contains(kust.Resources, f) {
			t.Errorf("kustomization.yaml does not list %s", f)
		}
	}

	var sts statefulSetSpec
	stsObj := find(objs, "StatefulSet", "berth")
	if stsObj == nil {
		t.Fatal("no StatefulSet berth")
	}
	decodeSpec(t, stsObj, &sts)
	podLabels := sts.Template.Metadata.Labels
	if !subset(sts.Selector.MatchLabels, podLabels) {
		t.Errorf("StatefulSet selector %v does not match its pods %v", sts.Selector.MatchLabels, podLabels)
	}
	if sts.Replicas < 3 || sts.PodManagementPolicy != "Parallel" {
		t.Errorf("StatefulSet: %d replicas, podManagementPolicy %q; want 3 and Parallel (a restarted pod 0 needs a quorum to be ready)", sts.Replicas, sts.PodManagementPolicy)
	}
	if len(sts.Template.Spec.Containers) != 1 {
		t.Fatalf("want one container, got %d", len(sts.Template.Spec.Containers))
	}
	ctr := sts.Template.Spec.Containers[0]
	if len(ctr.Command) != 0 {
		t.Errorf("the container overrides the image's entry point (%v): it adds --join", ctr.Command)
	}
	env := map[string]string{}
	for _, e := range ctr.Env {
		env[e.Name] = e.Value
	}
	// $(VAR) in args must name an env var of the container.
	args := slices.Clone(ctr.Args)
	for i, a := range args {
		for _, name := range []string{"POD_NAME"} {
			if strings.Contains(a, "$("+name+")") {
				if _, ok := env[name]; !ok {
					t.Errorf("args use $(%s), which is not in env", name)
				}
				args[i] = strings.ReplaceAll(a, "$("+name+")", "berth-1")
			}
		}
		if strings.Contains(args[i], "$(") {
			t.Errorf("arg %q uses an unknown variable", a)
		}
	}
	flags := parseServe(t, "StatefulSet args", args)

	// The configuration file: a mounted ConfigMap key that loads as a node
	// configuration (unknown keys are errors), without join, which the entry
	// point adds.
	mounts := map[string]string{} // mount path -> volume name
	for _, m := range ctr.VolumeMounts {
		mounts[m.MountPath] = m.Name
	}
	volumeOf := func(path string) (vol, key string) {
		dir, key := filepath.Dir(path), filepath.Base(path)
		return mounts[dir], key
	}
	cfg := node.Defaults()
	vol, key := volumeOf(flags["config"])
	var cm *k8sObject
	for _, v := range sts.Template.Spec.Volumes {
		if v.Name == vol && v.ConfigMap != nil {
			cm = find(objs, "ConfigMap", v.ConfigMap.Name)
		}
	}
	if cm == nil || cm.Data[key] == "" {
		t.Fatalf("--config %s is not a key of a mounted ConfigMap", flags["config"])
	}
	tmp := filepath.Join(t.TempDir(), "berth.yaml")
	if err := os.WriteFile(tmp, []byte(cm.Data[key]), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := node.LoadFile(tmp, &cfg); err != nil {
		t.Fatalf("ConfigMap %s: %v", key, err)
	}
	if len(cfg.Join) != 0 {
		t.Errorf("ConfigMap sets join %v; the entry point adds --join from BERTH_PEERS", cfg.Join)
	}
	full := cfg
	full.NodeID, full.DataDir = flags["node-id"], flags["data-dir"]
	full.Advertise, full.RaftAdvertise, full.GossipAdvertise = flags["advertise"], flags["raft-advertise"], flags["gossip-advertise"]
	if err := full.Validate(); err != nil {
		t.Errorf("the ConfigMap with the StatefulSet's flags does not validate: %v", err)
	}
	// The files it names are keys of a mounted Secret.
	secretFiles := []string{cfg.ClusterKeyFile, cfg.AdminPasswordFile}
	for _, f := range []string{cfg.TLSCert, cfg.TLSKey, cfg.ClusterCA, cfg.ClusterCert, cfg.ClusterKey} {
		if f != "" {
			secretFiles = append(secretFiles, f)
		}
	}
	for _, f := range secretFiles {
		vol, key := volumeOf(f)
		ok := false
		for _, v := range sts.Template.Spec.Volumes {
			if v.Name == vol && v.Secret != nil {
				s := find(objs, "Secret", v.Secret.SecretName)
				_, ok = s.StringData[key]
				if !ok {
					_, ok = s.Data[key]
				}
			}
		}
		if f == "" || !ok {
			t.Errorf("%q is not a key of a mounted Secret", f)
		}
	}
	// The data directory is the volume claim.
	if vol, _ := volumeOf(flags["data-dir"] + "/x"); len(sts.VolumeClaimTemplates) != 1 || sts.VolumeClaimTemplates[0].Metadata.Name != vol {
		t.Errorf("--data-dir %s is not the volume claim template's mount", flags["data-dir"])
	}

	// Ports: the named container ports are the configured ones, and each
	// advertised address is the pod's name in the headless Service.
	cports := map[string]k8sPort{}
	for _, p := range ctr.Ports {
		cports[p.Name] = p
	}
	for name, addr := range map[string]string{"http": cfg.Listen, "raft": cfg.RaftListen, "gossip-tcp": cfg.GossipListen, "gossip-udp": cfg.GossipListen} {
		if p := port(t, "ConfigMap", addr); cports[name].ContainerPort != p {
			t.Errorf("container port %s is %d, the configuration listens on %d", name, cports[name].ContainerPort, p)
		}
	}
	if cports["gossip-udp"].Protocol != "UDP" {
		t.Error("gossip needs its UDP port")
	}
	for fl, listen := range map[string]string{"advertise": cfg.Listen, "raft-advertise": cfg.RaftListen, "gossip-advertise": cfg.GossipListen} {
		want := fmt.Sprintf("berth-1.%s:%d", sts.ServiceName, port(t, "ConfigMap", listen))
		if flags[fl] != want {
			t.Errorf("--%s = %q for pod berth-1, want %q", fl, flags[fl], want)
		}
	}
	if flags["node-id"] != "berth-1" {
		t.Errorf("--node-id = %q for pod berth-1, want the pod name", flags["node-id"])
	}
	var peers []string
	for i := range sts.Replicas {
		peers = append(peers, fmt.Sprintf("%s-%d.%s:%d", stsObj.Metadata.Name, i, sts.ServiceName, port(t, "ConfigMap", cfg.GossipListen)))
	}
	if env["BERTH_PEERS"] != strings.Join(peers, ",") {
		t.Errorf("BERTH_PEERS = %q, want %q", env["BERTH_PEERS"], strings.Join(peers, ","))
	}
	if env["BERTH_BOOTSTRAP_NODE"] != stsObj.Metadata.Name+"-0" {
		t.Errorf("BERTH_BOOTSTRAP_NODE = %q, want pod 0", env["BERTH_BOOTSTRAP_NODE"])
	}

	// Probes.
	for name, want := range map[string]struct {
		p    *k8sProbe
		path string
	}{"startup": {ctr.StartupProbe, "/healthz"}, "liveness": {ctr.LivenessProbe, "/healthz"}, "readiness": {ctr.ReadinessProbe, "/readyz"}} {
		if want.p == nil || want.p.HTTPGet == nil {
			t.Errorf("%s probe: none, want GET %s", name, want.path)
			continue
		}
		g := want.p.HTTPGet
		if g.Path != want.path || cports[g.Port].ContainerPort != port(t, "ConfigMap", cfg.Listen) {
			t.Errorf("%s probe GET %s on port %q, want GET %s on the API port", name, g.Path, g.Port, want.path)
		}
		if tls := cfg.TLSCert != ""; tls != (g.Scheme == "HTTPS") {
			t.Errorf("%s probe scheme %q with tls_cert %q", name, g.Scheme, cfg.TLSCert)
		}
	}

	// Services: a headless one for the peers (the StatefulSet's), publishing
	// pods that are not ready; one for clients. Both select the pods and map
	// to named container ports.
	headless := find(objs, "Service", sts.ServiceName)
	if headless == nil {
		t.Fatalf("no Service %s (the StatefulSet's serviceName)", sts.ServiceName)
	}
	nsvc := 0
	for i := range objs {
		o := &objs[i]
		if o.Kind != "Service" {
			continue
		}
		nsvc++
		var s serviceSpec
		decodeSpec(t, o, &s)
		if !subset(s.Selector, podLabels) {
			t.Errorf("Service %s selects %v, not the pods %v", o.Metadata.Name, s.Selector, podLabels)
		}
		for _, p := range s.Ports {
			if cp, ok := cports[p.TargetPort]; !ok || cp.ContainerPort != p.Port || (cp.Protocol != p.Protocol && cp.Protocol+p.Protocol != "TCP") {
				t.Errorf("Service %s port %+v does not match a container port", o.Metadata.Name, p)
			}
		}
		if o == headless && (s.ClusterIP != "None" || !s.PublishNotReadyAddresses || len(s.Ports) != 4) {
			t.Errorf("Service %s: clusterIP %q, publishNotReadyAddresses %v, %d ports; want a headless Service publishing not-ready pods with the API, Raft and gossip ports",
				o.Metadata.Name, s.ClusterIP, s.PublishNotReadyAddresses, len(s.Ports))
		}
	}
	if nsvc < 2 {
		t.Errorf("%d Services, want a headless one and one for clients", nsvc)
	}

	// The PodDisruptionBudget covers the pods and keeps a quorum.
	pdb := find(objs, "PodDisruptionBudget", "berth")
	if pdb == nil {
		t.Fatal("no PodDisruptionBudget")
	}
	var pdbSpec struct {
		MaxUnavailable int `yaml:"maxUnavailable"`
		Selector       struct {
			MatchLabels map[string]string `yaml:"matchLabels"`
		}
	}
	decodeSpec(t, pdb, &pdbSpec)
	if pdbSpec.MaxUnavailable != 1 || !subset(pdbSpec.Selector.MatchLabels, podLabels) {
		t.Errorf("PodDisruptionBudget %+v, want maxUnavailable 1 over the pods", pdbSpec)
	}

	// The ServiceMonitor scrapes /metrics on the headless Service's API port,
	// under job="berth" as the alert rules expect.
	sm := find(objs, "ServiceMonitor", "berth")
	if sm == nil {
		t.Fatal("no ServiceMonitor")
	}
	var smSpec struct {
		JobLabel string `yaml:"jobLabel"`
		Selector struct {
			MatchLabels map[string]string `yaml:"matchLabels"`
		}
		Endpoints []struct{ Port, Path, Scheme string }
	}
	decodeSpec(t, sm, &smSpec)
	var hs serviceSpec
	decodeSpec(t, headless, &hs)
	if !subset(smSpec.Selector.MatchLabels, headless.Metadata.Labels) || headless.Metadata.Labels[smSpec.JobLabel] != "berth" {
		t.Errorf("ServiceMonitor selects %v with jobLabel %q; want the headless Service %v, job berth", smSpec.Selector.MatchLabels, smSpec.JobLabel, headless.Metadata.Labels)
	}
	for _, s := range objs {
		if s.Kind == "Service" && s.Metadata.Name != headless.Metadata.Name && subset(smSpec.Selector.MatchLabels, s.Metadata.Labels) {
			t.Errorf("ServiceMonitor also selects Service %s: every pod would be scraped twice", s.Metadata.Name)
		}
	}
	if len(smSpec.Endpoints) != 1 || smSpec.Endpoints[0].Path != "/metrics" ||
		!slices.ContainsFunc(hs.Ports, func(p k8sPort) bool { return p.Name == smSpec.Endpoints[0].Port && p.Port == port(t, "", cfg.Listen) }) {
		t.Errorf("ServiceMonitor endpoints %+v, want /metrics on the API port", smSpec.Endpoints)
	} else if tls := cfg.TLSCert != ""; tls != (smSpec.Endpoints[0].Scheme == "https") {
		t.Errorf("ServiceMonitor scheme %q with tls_cert %q", smSpec.Endpoints[0].Scheme, cfg.TLSCert)
	}

	// The PrometheusRule holds deploy/prometheus/alerts.yml's groups.
	pr := find(objs, "PrometheusRule", "berth")
	if pr == nil {
		t.Fatal("no PrometheusRule")
	}
	var prSpec, alerts struct{ Groups []map[string]any }
	decodeSpec(t, pr, &prSpec)
	if b, err := os.ReadFile(deployPath("prometheus", "alerts.yml")); err != nil {
		t.Fatal(err)
	} else if err := yaml.Unmarshal(b, &alerts); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(prSpec.Groups, alerts.Groups) || len(alerts.Groups) == 0 {
		t.Error("prometheusrule.yaml's groups differ from deploy/prometheus/alerts.yml's; copy them over")
	}

	// Everything lives in the namespace the manifests create.
	for _, o := range objs {
		if o.Kind != "Namespace" && o.Metadata.Namespace != "berth" {
			t.Errorf("%s %s: namespace %q", o.Kind, o.Metadata.Name, o.Metadata.Namespace)
		}
	}
}
