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
	"syscall"
	"time"

	"github.com/berth-registry/berth/node"
)

const usage = `usage: berth <command> [flags]

commands:
  serve     run a registry node (berth serve -h for its flags)
  version   print the version
`

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
	case "version":
		fmt.Fprintln(stdout, "berth", version)
		return 0
	case "-h", "--help", "help":
		fmt.Fprint(stdout, usage)
		return 0
	}
	fmt.Fprintf(stderr, "berth: unknown command %q\n%s", args[0], usage)
	return 2
}

// serveConfig parses the serve flags: defaults, then the --config file, then the
// flags given on the command line.
func serveConfig(args []string, stderr io.Writer) (node.Config, error) {
	cfg := node.Defaults()
	fs := flag.NewFlagSet("berth serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configFile := fs.String("config", "", "YAML configuration file (keys: node_id, data_dir, listen, raft_listen, upload_ttl, shutdown_timeout, log_level)")
	var flagCfg node.Config
	fs.StringVar(&flagCfg.DataDir, "data-dir", cfg.DataDir, "directory for metadata and blobs")
	fs.StringVar(&flagCfg.Listen, "listen", cfg.Listen, "HTTP address of the registry API")
	fs.StringVar(&flagCfg.NodeID, "node-id", cfg.NodeID, "this node's id (letters, digits, '-', '_')")
	fs.StringVar(&flagCfg.RaftListen, "raft-listen", cfg.RaftListen, "TCP address for Raft (empty: single node without a Raft port)")
	fs.DurationVar(&flagCfg.UploadTTL, "upload-ttl", cfg.UploadTTL, "idle upload sessions expire after this")
	fs.DurationVar(&flagCfg.ShutdownTimeout, "shutdown-timeout", cfg.ShutdownTimeout, "how long in-flight requests may run on shutdown")
	fs.StringVar(&flagCfg.LogLevel, "log-level", cfg.LogLevel, "debug, info, warn or error")
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	if fs.NArg() > 0 {
		return cfg, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if *configFile != "" {
		if err := node.LoadFile(*configFile, &cfg); err != nil {
			return cfg, err
		}
	}
	fs.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "data-dir":
			cfg.DataDir = flagCfg.DataDir
		case "listen":
			cfg.Listen = flagCfg.Listen
		case "node-id":
			cfg.NodeID = flagCfg.NodeID
		case "raft-listen":
			cfg.RaftListen = flagCfg.RaftListen
		case "upload-ttl":
			cfg.UploadTTL = flagCfg.UploadTTL
		case "shutdown-timeout":
			cfg.ShutdownTimeout = flagCfg.ShutdownTimeout
		case "log-level":
			cfg.LogLevel = flagCfg.LogLevel
		}
	})
	return cfg, cfg.Validate()
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
