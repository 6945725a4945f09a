package node

import (
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"gopkg.in/yaml.v3"
)

// Config is a node's configuration. The YAML keys are the flag names with
// underscores (data_dir for --data-dir).
type Config struct {
	NodeID     string        `yaml:"node_id"`
	DataDir    string        `yaml:"data_dir"`
	Listen     string        `yaml:"listen"`      // HTTP address of the registry API
	RaftListen string        `yaml:"raft_listen"` // "" for a single node (no Raft port)
	UploadTTL  time.Duration `yaml:"upload_ttl"`  // idle upload sessions expire after this
	// ShutdownTimeout bounds how long in-flight requests may take to finish on
	// SIGTERM before their connections are closed.
	ShutdownTimeout time.Duration `yaml:"shutdown_timeout"`
	LogLevel        string        `yaml:"log_level"`
}

// Defaults returns the configuration that `make run` uses.
func Defaults() Config {
	return Config{
		NodeID:          "node1",
		DataDir:         "./berth-data",
		Listen:          "127.0.0.1:5000",
		UploadTTL:       24 * time.Hour,
		ShutdownTimeout: 30 * time.Second,
		LogLevel:        "info",
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
	return nil
}
