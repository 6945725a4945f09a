// Command berth is the Berth registry: `berth serve` runs a node.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/berth-registry/berth/node"
)

const usage = `usage: berth <command> [flags]

commands:
  serve     run a registry node (berth serve -h for its flags)
  cluster   cluster key generation and node removal (berth cluster keygen FILE | remove NODE_ID)
  status    the cluster's nodes, leader, indexes, disk use and backlog (berth status [--server URL] [--json])
  backup    write a backup of a running cluster into a directory (berth backup DIR [--server URL])
  restore   seed a new node's data dir from a backup (berth restore DIR --data-dir D --node-id ID)
  import    upload a docker save / OCI archive into a workspace (berth import FILE --to WS[/REPO[:TAG]])
  version   print the version

` + adminUsage + "\n" + gcUsage

var version = "dev"

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "serve":
		return serve(args[1:], stderr)
	case "cluster":
		return clusterCmd(args[1:], stdout, stderr)
	case "status":
		env := &adminEnv{stdin: os.Stdin, stdout: stdout, stderr: stderr}
		return runCommand("status", env, func() error { return cmdStatus(args[1:], env) })
	case "backup":
		return runBackup(args[1:], &adminEnv{stdin: os.Stdin, stdout: stdout, stderr: stderr})
	case "restore":
		return runRestore(args[1:], &adminEnv{stdin: os.Stdin, stdout: stdout, stderr: stderr})
	case "import":
		return runImport(args[1:], &adminEnv{stdin: os.Stdin, stdout: stdout, stderr: stderr})
	case "gc", "fsck", "trash", "delete":
		return runGCAdmin(args[0], args[1:], &adminEnv{stdin: os.Stdin, stdout: stdout, stderr: stderr})
	case "version":
		fmt.Fprintln(stdout, "berth", version)
		return 0
	case "login", "logout", "user", "project", "member", "workspace", "robot":
		return runAdmin(args[0], args[1:], &adminEnv{stdin: os.Stdin, stdout: stdout, stderr: stderr})
	case "-h", "--help", "help":
		fmt.Fprint(stdout, usage)
		return 0
	}
	fmt.Fprintf(stderr, "berth: unknown command %q\n%s", args[0], usage)
	return 2
}

// serveConfig parses the serve flags: defaults, then the --config file, then the
// flags given on the command line. The file is read before the flags are
// defined, so each flag's default is the file's value and a flag given on the
// command line wins.
func serveConfig(args []string, stderr io.Writer) (node.Config, error) {
	cfg := node.Defaults()
	if path := configArg(args); path != "" {
		if err := node.LoadFile(path, &cfg); err != nil {
			return cfg, err
		}
	}
	fs := flag.NewFlagSet("berth serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.String("config", "", "YAML configuration file; its keys are the flag names with underscores (data_dir for --data-dir)")
	fs.StringVar(&cfg.DataDir, "data-dir", cfg.DataDir, "directory for metadata and blobs")
	fs.StringVar(&cfg.Listen, "listen", cfg.Listen, "HTTP address of the registry API")
	fs.StringVar(&cfg.MetricsListen, "metrics-listen", cfg.MetricsListen, "serve /metrics on this address only (default: on --listen)")
	fs.StringVar(&cfg.NodeID, "node-id", cfg.NodeID, "this node's id (letters, digits, '-', '_'); never change it for a data directory")
	fs.DurationVar(&cfg.UploadTTL, "upload-ttl", cfg.UploadTTL, "idle upload sessions expire after this")
	fs.DurationVar(&cfg.ShutdownTimeout, "shutdown-timeout", cfg.ShutdownTimeout, "how long in-flight requests may run on shutdown")
	fs.StringVar(&cfg.LogLevel, "log-level", cfg.LogLevel, "debug, info, warn or error")
	fs.StringVar(&cfg.AdminPasswordFile, "admin-password-file", cfg.AdminPasswordFile, "file holding the first start's cloud admin password (else $BERTH_ADMIN_PASSWORD, else generated)")
	fs.BoolVar(&cfg.AnonymousPull, "anonymous-pull", cfg.AnonymousPull, "let clients without credentials pull from public workspaces")
	fs.DurationVar(&cfg.TokenTTL, "token-ttl", cfg.TokenTTL, "lifetime of registry and API tokens")
	fs.StringVar(&cfg.ExternalURL, "external-url", cfg.ExternalURL, "the registry's URL as clients see it (token realm base); empty: the address each client used")
	// Cluster.
	fs.StringVar(&cfg.RaftListen, "raft-listen", cfg.RaftListen, "TCP address for Raft (empty: single node without a Raft port)")
	fs.StringVar(&cfg.GossipListen, "gossip-listen", cfg.GossipListen, "address for gossip (TCP and UDP); set it to make this node a cluster member")
	fs.Func("join", "comma-separated gossip addresses of cluster members to join (none: this node bootstraps the cluster)", func(v string) error {
		cfg.Join = nil
		for _, s := range strings.Split(v, ",") {
			if s = strings.TrimSpace(s); s != "" {
				cfg.Join = append(cfg.Join, s)
			}
		}
		return nil
	})
	fs.StringVar(&cfg.Advertise, "advertise", cfg.Advertise, "API host:port that other nodes use (default: the bound --listen address)")
	fs.StringVar(&cfg.RaftAdvertise, "raft-advertise", cfg.RaftAdvertise, "Raft host:port that other nodes use")
	fs.StringVar(&cfg.GossipAdvertise, "gossip-advertise", cfg.GossipAdvertise, "gossip host:port that other nodes use")
	fs.StringVar(&cfg.Zone, "zone", cfg.Zone, "zone label: copies spread across zones, pulls prefer the same zone")
	fs.StringVar(&cfg.ClusterKeyFile, "cluster-key-file", cfg.ClusterKeyFile, "file with the 32-byte cluster key (berth cluster keygen FILE writes one)")
	fs.IntVar(&cfg.MaxVoters, "max-voters", cfg.MaxVoters, "Raft voters; further nodes join as non-voters")
	fs.DurationVar(&cfg.DeadNodeTimeout, "dead-node-timeout", cfg.DeadNodeTimeout, "a node dead this long is removed from Raft and its copies are recreated")
	fs.IntVar(&cfg.MinReplicas, "min-replicas", cfg.MinReplicas, "nodes that must hold a blob before its push is acknowledged")
	fs.Func("replicas", "copies of each blob: \"all\" (default) or a number", func(v string) error {
		if v == "all" {
			cfg.Replicas = 0
			return nil
		}
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return fmt.Errorf("want \"all\" or a positive number, got %q", v)
		}
		cfg.Replicas = n
		return nil
	})
	fs.Uint64Var(&cfg.RaftSnapshotThreshold, "raft-snapshot-threshold", cfg.RaftSnapshotThreshold, "log entries between Raft snapshots (0: 8192)")
	fs.DurationVar(&cfg.RaftSnapshotInterval, "raft-snapshot-interval", cfg.RaftSnapshotInterval, "how often Raft checks the snapshot threshold (0: 2m)")
	fs.Uint64Var(&cfg.RaftTrailingLogs, "raft-trailing-logs", cfg.RaftTrailingLogs, "log entries kept behind a snapshot (0: 10240)")
	fs.DurationVar(&cfg.ReplicateInterval, "replicate-interval", cfg.ReplicateInterval, "how often the replicator looks for missing copies")
	// Garbage collection.
	fs.DurationVar(&cfg.GCGracePeriod, "gc-grace-period", cfg.GCGracePeriod, "blobs pushed or mounted more recently are never collected (must outlast any upload)")
	fs.DurationVar(&cfg.GCDeletedRetention, "gc-deleted-retention", cfg.GCDeletedRetention, "deleted items stay restorable this long (0: reclaimed at the next GC)")
	fs.DurationVar(&cfg.GCSchedule, "gc-schedule", cfg.GCSchedule, "start a garbage collection run this often (0: only when asked for)")
	fs.DurationVar(&cfg.GCOrphanMinAge, "gc-orphan-min-age", cfg.GCOrphanMinAge, "a blob file no metadata names is deleted by garbage collection once no client touched it this long (at least 10s)")
	fs.BoolVar(&cfg.GCDeleteUntagged, "gc-delete-untagged", cfg.GCDeleteUntagged, "garbage collection reclaims untagged manifests nothing reaches (a run may ask otherwise)")
	// Archive imports.
	fs.Int64Var(&cfg.ImportMaxBytes, "import-max-bytes", cfg.ImportMaxBytes, "cap on an imported archive's decompressed size in bytes (0: 64 GiB)")
	fs.IntVar(&cfg.ImportMaxEntries, "import-max-entries", cfg.ImportMaxEntries, "cap on an imported archive's number of tar entries (0: 100000)")
	// TLS.
	fs.StringVar(&cfg.TLSCert, "tls-cert", cfg.TLSCert, "PEM certificate (chain) for HTTPS on --listen; reloaded when the file changes")
	fs.StringVar(&cfg.TLSKey, "tls-key", cfg.TLSKey, "PEM private key of --tls-cert")
	fs.StringVar(&cfg.ListenPlain, "listen-plain", cfg.ListenPlain, "also serve plain HTTP on this address (with --tls-cert; empty: none)")
	fs.DurationVar(&cfg.TLSReloadInterval, "tls-reload-interval", cfg.TLSReloadInterval, "how often certificate files are checked for changes (0: 5s)")
	fs.StringVar(&cfg.ClusterCA, "cluster-ca", cfg.ClusterCA, "PEM CA certificate of the cluster: mutual TLS for Raft, replication and internal calls")
	fs.StringVar(&cfg.ClusterCert, "cluster-cert", cfg.ClusterCert, "this node's PEM certificate from the cluster CA (server and client auth)")
	fs.StringVar(&cfg.ClusterKey, "cluster-key", cfg.ClusterKey, "PEM private key of --cluster-cert")
	// Audit log.
	fs.IntVar(&cfg.AuditKeep, "audit-keep", cfg.AuditKeep, "audit events kept (the oldest beyond are dropped)")
	fs.DurationVar(&cfg.AuditMaxAge, "audit-max-age", cfg.AuditMaxAge, "audit events older than this are dropped")
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	if fs.NArg() > 0 {
		return cfg, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	cfg.AdminPassword = os.Getenv("BERTH_ADMIN_PASSWORD")
	return cfg, cfg.Validate()
}

// configArg finds the value of --config (or -config) in args.
func configArg(args []string) string {
	for i, a := range args {
		if a == "--" {
			break
		}
		for _, name := range []string{"-config", "--config"} {
			if v, ok := strings.CutPrefix(a, name+"="); ok {
				return v
			}
			if a == name && i+1 < len(args) {
				return args[i+1]
			}
		}
	}
	return ""
}

func serve(args []string, stderr io.Writer) int {
	cfg, err := serveConfig(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "berth serve:", err)
		return 2
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(cfg.LogLevel)); err != nil {
		fmt.Fprintln(stderr, "berth serve: log level:", err)
		return 2
	}
	logger := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: level}))

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	n, err := node.New(cfg, logger)
	if err != nil {
		logger.Error("start", "err", err)
		return 1
	}
	if err := n.Start(ctx); err != nil {
		logger.Error("start", "err", err)
		_ = n.Shutdown(context.Background())
		return 1
	}
	code := 0
	select {
	case <-ctx.Done():
		logger.Info("shutting down", "timeout", cfg.ShutdownTimeout.String())
	case err := <-n.Done():
		logger.Error("http server stopped", "err", err)
		code = 1
	}
	sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	start := time.Now()
	if err := n.Shutdown(sctx); err != nil {
		logger.Error("shutdown", "err", err)
		return 1
	}
	logger.Info("stopped", "took", time.Since(start).String())
	return code
}
