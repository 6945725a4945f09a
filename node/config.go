package node

import (
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Config is a node's configuration. The YAML keys are the flag names with
// underscores (data_dir for --data-dir).
type Config struct {
	NodeID  string `yaml:"node_id"`
	DataDir string `yaml:"data_dir"`
	Listen  string `yaml:"listen"` // HTTP address of the registry API
	// MetricsListen, when set, serves /metrics on its own address (and no
	// longer on Listen), for a scrape network apart from clients.
	MetricsListen string        `yaml:"metrics_listen"`
	RaftListen    string        `yaml:"raft_listen"` // "" for a single node (no Raft port)
	UploadTTL     time.Duration `yaml:"upload_ttl"`  // idle upload sessions expire after this
	// ShutdownTimeout bounds how long in-flight requests may take to finish on
	// SIGTERM before their connections are closed.
	ShutdownTimeout time.Duration `yaml:"shutdown_timeout"`
	LogLevel        string        `yaml:"log_level"`

	// AdminPassword is the bootstrap cloud admin's password on a cluster's first
	// start (from BERTH_ADMIN_PASSWORD or --admin-password-file). Empty: one is
	// generated, logged once and written 0600 to <data dir>/admin-password.
	AdminPassword string `yaml:"-"`
	// AdminPasswordFile names a file whose first line is AdminPassword.
	AdminPasswordFile string `yaml:"admin_password_file"`
	// AnonymousPull lets clients without credentials pull from public workspaces.
	AnonymousPull bool `yaml:"anonymous_pull"`
	// TokenTTL is the lifetime of registry and API tokens.
	TokenTTL time.Duration `yaml:"token_ttl"`
	// ExternalURL is the registry's address as clients see it behind a load
	// balancer (the token realm's base); empty: the address each client used.
	ExternalURL string `yaml:"external_url"`

	// Cluster. A node with GossipListen set is a cluster member: the first node
	// (no Join seeds) bootstraps, the others join through gossip and the leader
	// adds them to Raft.
	GossipListen    string        `yaml:"gossip_listen"`    // host:port for memberlist (TCP and UDP)
	Join            []string      `yaml:"join"`             // gossip addresses of nodes to join
	Advertise       string        `yaml:"advertise"`        // API host:port other nodes use (default: the bound --listen address)
	RaftAdvertise   string        `yaml:"raft_advertise"`   // Raft host:port other nodes use
	GossipAdvertise string        `yaml:"gossip_advertise"` // gossip host:port other nodes use
	Zone            string        `yaml:"zone"`             // zone label: copies spread across zones, reads prefer the same zone
	ClusterKeyFile  string        `yaml:"cluster_key_file"` // 32-byte key (hex or raw): gossip encryption and node-to-node credentials
	MaxVoters       int           `yaml:"max_voters"`       // default 5; further nodes are non-voters
	DeadNodeTimeout time.Duration `yaml:"dead_node_timeout"`
	// MinReplicas is how many nodes must hold a blob before its push is
	// acknowledged (default 2; all live nodes when fewer are alive).
	MinReplicas int `yaml:"min_replicas"`
	// Replicas is how many nodes keep each blob; 0 means every node.
	Replicas          int           `yaml:"replicas"`
	ReplicateInterval time.Duration `yaml:"replicate_interval"` // how often the replicator looks for missing copies

	// Raft log compaction (0: the cluster package's defaults). A node that is
	// further behind than TrailingLogs catches up through a snapshot.
	RaftSnapshotThreshold uint64        `yaml:"raft_snapshot_threshold"`
	RaftSnapshotInterval  time.Duration `yaml:"raft_snapshot_interval"`
	RaftTrailingLogs      uint64        `yaml:"raft_trailing_logs"`

	// Garbage collection (gc.go). GCGracePeriod protects blobs pushed or
	// mounted more recently (it must outlast any upload: a blob uploaded but
	// not yet named by a manifest is garbage to the mark); GCDeletedRetention
	// keeps deleted items restorable (0: reclaimed at the next run);
	// GCSchedule starts a run that often (0: only on request);
	// GCDeleteUntagged makes runs reclaim untagged manifests nothing reaches.
	GCGracePeriod      time.Duration `yaml:"gc_grace_period"`
	GCDeletedRetention time.Duration `yaml:"gc_deleted_retention"`
	GCSchedule         time.Duration `yaml:"gc_schedule"`
	GCDeleteUntagged   bool          `yaml:"gc_delete_untagged"`
	// GCOrphanMinAge is how long a blob file no metadata names is left alone
	// after a client last touched it (wrote, read, mounted, replicated): the
	// window between a file landing and its record committing. Runs delete
	// older orphans. At least 10s.
	GCOrphanMinAge time.Duration `yaml:"gc_orphan_min_age"`

	// Clock, when set, replaces time.Now for the times the node stamps into
	// metadata (pushes, deletes, GC's now): tests skew it to age records.
	Clock func() time.Time `yaml:"-"`

	// TLS (tls.go). TLSCert and TLSKey make Listen HTTPS, reloaded when the
	// files change; ListenPlain adds a plain-HTTP listener where the operator
	// wants one. ClusterCA, ClusterCert and ClusterKey (PEM files) turn on
	// mutual TLS between nodes: Raft, replication and the internal API.
	TLSCert           string        `yaml:"tls_cert"`
	TLSKey            string        `yaml:"tls_key"`
	ListenPlain       string        `yaml:"listen_plain"`
	TLSReloadInterval time.Duration `yaml:"tls_reload_interval"` // how often certificate files are checked (default 5s)
	ClusterCA         string        `yaml:"cluster_ca"`
	ClusterCert       string        `yaml:"cluster_cert"`
	ClusterKey        string        `yaml:"cluster_key"`

	// Audit log retention (audit.go): the newest AuditKeep events younger
	// than AuditMaxAge are kept.
	AuditKeep   int           `yaml:"audit_keep"`
	AuditMaxAge time.Duration `yaml:"audit_max_age"`

	// Archive imports (POST /api/v1/workspaces/:workspace/import): caps on an
	// archive's decompressed size and number of entries (0: 64 GiB, 100,000).
	ImportMaxBytes   int64 `yaml:"import_max_bytes"`
	ImportMaxEntries int   `yaml:"import_max_entries"`
}

// clustered reports whether the node gossips with others.
func (c *Config) clustered() bool { return c.GossipListen != "" }

// Defaults returns the configuration that `make run` uses.
func Defaults() Config {
	return Config{
		NodeID:            "node1",
		DataDir:           "./berth-data",
		Listen:            "127.0.0.1:5000",
		UploadTTL:         24 * time.Hour,
		ShutdownTimeout:   30 * time.Second,
		LogLevel:          "info",
		TokenTTL:          5 * time.Minute,
		MaxVoters:         5,
		DeadNodeTimeout:   30 * time.Minute,
		MinReplicas:       2,
		ReplicateInterval: 10 * time.Second,
		AuditKeep:         1_000_000,
		AuditMaxAge:       90 * 24 * time.Hour,

		// Garbage collection.
		GCGracePeriod:      time.Hour,
		GCDeletedRetention: 24 * time.Hour,
		GCOrphanMinAge:     5 * time.Minute,
	}
}

// LoadFile overlays the keys present in a YAML file on cfg. Unknown keys are an
// error, so a typo does not silently fall back to a default.
func LoadFile(path string, cfg *Config) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("node: config: %w", err)
	}
	defer f.Close()
	dec := yaml.NewDecoder(f)
	dec.KnownFields(true)
	if err := dec.Decode(cfg); err != nil && !errors.Is(err, io.EOF) { // io.EOF: an empty file
		return fmt.Errorf("node: config %s: %w", path, err)
	}
	return nil
}

// Validate checks a configuration before anything is opened.
func (c *Config) Validate() error {
	if c.NodeID == "" {
		return errors.New("node: node id is required")
	}
	for _, r := range c.NodeID {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			return fmt.Errorf("node: node id %q may only hold letters, digits, '-' and '_'", c.NodeID)
		}
	}
	if c.DataDir == "" {
		return errors.New("node: data dir is required")
	}
	if c.Listen == "" {
		return errors.New("node: listen address is required")
	}
	if c.UploadTTL <= 0 {
		return errors.New("node: upload ttl must be positive")
	}
	if c.TokenTTL <= 0 || c.TokenTTL > 24*time.Hour {
		return errors.New("node: token ttl must be between 0 and 24h")
	}
	if c.clustered() {
		if c.RaftListen == "" {
			return errors.New("node: a cluster member (--gossip-listen) needs --raft-listen")
		}
		if c.ClusterKeyFile == "" {
			return errors.New("node: a cluster member needs --cluster-key-file (32 random bytes; `berth cluster keygen` writes one)")
		}
	} else if len(c.Join) > 0 {
		return errors.New("node: --join needs --gossip-listen")
	}
	if err := c.validateTLS(); err != nil {
		return err
	}
	if c.AuditKeep < 0 || c.AuditMaxAge < 0 {
		return errors.New("node: audit_keep and audit_max_age must not be negative")
	}
	if c.GCGracePeriod < 0 || c.GCDeletedRetention < 0 || c.GCSchedule < 0 {
		return errors.New("node: gc grace period, deleted retention and schedule must not be negative")
	}
	if c.GCOrphanMinAge < minOrphanAge {
		return fmt.Errorf("node: gc orphan min age %s is under %s: a file must outlive the commit of its record", c.GCOrphanMinAge, minOrphanAge)
	}
	if c.RaftTrailingLogs != 0 {
		threshold := c.RaftSnapshotThreshold
		if threshold == 0 {
			threshold = 8192 // the cluster package's default
		}
		if c.RaftTrailingLogs < 2*threshold {
			// A node whose own log starts after the snapshot the leader sends
			// it trips hashicorp/raft's installSnapshot (hashicorp/raft#697);
			// trailing logs well above the snapshot threshold rule that out.
			return fmt.Errorf("node: raft trailing logs (%d) must be at least twice the snapshot threshold (%d)", c.RaftTrailingLogs, threshold)
		}
	}
	if c.MinReplicas < 1 || c.Replicas < 0 || c.MaxVoters < 1 || c.ReplicateInterval <= 0 || c.DeadNodeTimeout <= 0 {
		return errors.New("node: min_replicas and max_voters must be at least 1, replicas at least 0, intervals positive")
	}
	return nil
}

// loadClusterKey reads the cluster key: 32 bytes, raw or as 64 hex digits.
func (c *Config) loadClusterKey() ([]byte, error) {
	b, err := os.ReadFile(c.ClusterKeyFile)
	if err != nil {
		return nil, fmt.Errorf("node: cluster key: %w", err)
	}
	if t := strings.TrimSpace(string(b)); len(t) == 64 {
		if k, err := hex.DecodeString(t); err == nil {
			return k, nil
		}
	}
	if len(b) != 32 {
		return nil, fmt.Errorf("node: cluster key %s must hold 32 bytes or 64 hex digits", c.ClusterKeyFile)
	}
	return b, nil
}
