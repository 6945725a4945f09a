package main

// berth backup and berth restore.
//
// berth backup DIR talks to a running node's management API as a cloud admin
// (the common flags of the admin commands): it downloads a consistent metadata
// snapshot, then every blob it records that DIR does not hold yet, each
// verified against its digest. berth restore DIR seeds the data directory of a
// new node from a backup, offline, before that node's first start. See
// node/backup.go for the directory layout and what restore does.

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"os/user"
	"sync"
	"syscall"
	"time"

	"github.com/berth-registry/berth/node"
)

const backupUsage = `backup DIR [--server URL] [--user NAME --password PASS | --password-stdin] [--prune] [--parallel N] [--json]

Writes a backup of the cluster behind --server into DIR while it keeps serving
(cloud admins only): DIR/meta.snapshot (the metadata at one Raft index),
DIR/blobs/ (every blob it records, each verified against its digest) and
DIR/backup.json (index, time, counts). Run it again on the same DIR to refresh
the backup: blobs already in DIR are not downloaded again. meta.snapshot and
backup.json are replaced only when every blob is present, so DIR always holds a
complete backup. With --prune, blobs of DIR the new snapshot does not record
are removed.`

const restoreUsage = `restore DIR --data-dir DIR --node-id ID [--raft-advertise HOST:PORT | --raft-listen HOST:PORT] [--config FILE]

Seeds the data directory of a new node from the backup in DIR, before the node's
first start (offline; the data directory must hold no metadata yet). Every blob
is copied in and verified, blob locations are rewritten to the new node, a
"restore" event is added to the audit log, and the state becomes the node's
first Raft snapshot, with a configuration of this node alone. Then start it with
berth serve on that data directory (same node id, and the same Raft address if
it will be a cluster member); other nodes join it as usual. --config reads
data_dir, node_id, raft_advertise and raft_listen from a serve configuration
file.`

// exitCode turns a command's error into its exit code, printing it.
func exitCode(name string, env *adminEnv, err error) int {
	var ue *usageError
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errFlagParse):
		return 2 // the flag package printed the error and the usage
	case errors.As(err, &ue):
		fmt.Fprintf(env.stderr, "berth %s: %v\n", name, err)
		return 2
	}
	fmt.Fprintf(env.stderr, "berth %s: %v\n", name, err)
	return 1
}

func runBackup(args []string, env *adminEnv) int {
	if env.getenv == nil {
		env.getenv = os.Getenv
	}
	return exitCode("backup", env, cmdBackup(args, env))
}

func runRestore(args []string, env *adminEnv) int {
	if env.getenv == nil {
		env.getenv = os.Getenv
	}
	return exitCode("restore", env, cmdRestore(args, env))
}

func cmdBackup(args []string, env *adminEnv) error {
	var c commonFlags
	fs := newFlagSet("backup", backupUsage, env, &c)
	prune := fs.Bool("prune", false, "remove blobs of DIR that the new snapshot does not record")
	parallel := fs.Int("parallel", 4, "blobs downloaded at a time")
	pos, err := parseCommand(fs, args, 1, 1)
	if err != nil {
		return err
	}
	cl, err := connect(&c, env)
	if err != nil {
		return err
	}
	var mu sync.Mutex // guards cl.token: downloads run in parallel, a refresh replaces it
	src := &node.HTTPBackupSource{
		Server: cl.server,
		// No overall timeout: a blob can take long; a stalled server is
		// caught by the header timeout.
		Client: &http.Client{Transport: &http.Transport{
			Proxy: http.ProxyFromEnvironment, ResponseHeaderTimeout: 5 * time.Minute,
			MaxIdleConnsPerHost: *parallel, IdleConnTimeout: time.Minute,
		}},
		Authorize: func(r *http.Request) {
			mu.Lock()
			defer mu.Unlock()
			r.Header.Set("Authorization", "Bearer "+cl.token)
		},
		Refresh: func() error {
			mu.Lock()
			defer mu.Unlock()
			return cl.login()
		},
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	m, err := node.WriteBackup(ctx, pos[0], src, node.BackupOptions{Prune: *prune, Parallel: *parallel})
	if err != nil {
		return err
	}
	if c.json {
		b, _ := json.Marshal(m)
		return printJSON(env.stdout, b)
	}
	fmt.Fprintf(env.stdout, "Backup of %s at index %d written to %s in %s\n", m.Source, m.AppliedIndex, pos[0], m.Duration)
	fmt.Fprintf(env.stdout, "  %d repositories, %d manifests, %d tags, %d users, %d projects, %d workspaces, %d audit events\n",
		m.Counts.Repositories, m.Counts.Manifests, m.Counts.Tags, m.Counts.Users, m.Counts.Projects, m.Counts.Workspaces, m.Counts.AuditEvents)
	fmt.Fprintf(env.stdout, "  %d blobs (%s): %d downloaded (%s), %d already in the backup\n",
		m.Counts.Blobs, humanBytes(m.Counts.BlobBytes), m.BlobsCopied, humanBytes(m.BytesCopied), m.BlobsSkipped)
	return nil
}

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for v := n / unit; v >= unit; v /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

func cmdRestore(args []string, env *adminEnv) error {
	fs := flag.NewFlagSet("berth restore", flag.ContinueOnError)
	fs.SetOutput(env.stderr)
	fs.Usage = func() {
		fmt.Fprintf(env.stderr, "usage: berth %s\n\nflags:\n", restoreUsage)
		fs.PrintDefaults()
	}
	var cfg node.Config
	config := fs.String("config", "", "serve configuration file to read data_dir, node_id, raft_advertise and raft_listen from")
	dataDir := fs.String("data-dir", "", "the new node's data directory")
	nodeID := fs.String("node-id", "", "the new node's id")
	raftAdvertise := fs.String("raft-advertise", "", "the Raft address the node will advertise")
	raftListen := fs.String("raft-listen", "", "the Raft address the node will listen on (when it advertises no other)")
	pos, err := parseCommand(fs, args, 1, 1)
	if err != nil {
		return err
	}
	if *config != "" {
		if err := node.LoadFile(*config, &cfg); err != nil {
			return err
		}
	}
	for _, f := range []struct {
		dst *string
		v   string
	}{{&cfg.DataDir, *dataDir}, {&cfg.NodeID, *nodeID}, {&cfg.RaftAdvertise, *raftAdvertise}, {&cfg.RaftListen, *raftListen}} {
		if f.v != "" {
			*f.dst = f.v
		}
	}
	if cfg.DataDir == "" || cfg.NodeID == "" {
		return usagef("--data-dir and --node-id are required (or data_dir and node_id in --config)")
	}
	raftAddr := cfg.RaftAdvertise
	if raftAddr == "" && cfg.RaftListen != "" {
		host, _, err := net.SplitHostPort(cfg.RaftListen)
		if ip := net.ParseIP(host); err != nil || host == "" || (ip != nil && ip.IsUnspecified()) {
			return usagef("--raft-listen %q names no address other nodes can dial; give --raft-advertise", cfg.RaftListen)
		}
		raftAddr = cfg.RaftListen
	}
	actor := "berth restore"
	if u, err := user.Current(); err == nil {
		actor = "berth restore (" + u.Username + ")"
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	m, err := node.RestoreBackup(ctx, pos[0], node.RestoreOptions{
		DataDir: cfg.DataDir, NodeID: cfg.NodeID, RaftAddr: raftAddr, Actor: actor,
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(env.stdout, "Restored the backup of %s (%s, index %d) into %s as node %s: %d repositories, %d manifests, %d blobs.\n",
		m.Source, m.Created.Format(time.RFC3339), m.AppliedIndex, cfg.DataDir, cfg.NodeID,
		m.Counts.Repositories, m.Counts.Manifests, m.Counts.Blobs)
	fmt.Fprintf(env.stdout, "Start it with: berth serve --data-dir %s --node-id %s ...\n", cfg.DataDir, cfg.NodeID)
	return nil
}
