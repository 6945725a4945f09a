package cluster

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"time"

	"github.com/cockroachdb/pebble"
	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

const (
	snapshotsRetained = 2
	tcpMaxPool        = 3
	tcpTimeout        = 10 * time.Second
	maxAppendEntries  = 256
)

// raftConfig builds raft's configuration from cfg and checks it with
// raft.ValidateConfig. NoSnapshotRestoreOnStart is set by New.
func raftConfig(cfg Config, logger hclog.Logger) (*raft.Config, error) {
	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(cfg.NodeID)
	rc.Logger = logger
	rc.HeartbeatTimeout = cfg.HeartbeatTimeout
	rc.ElectionTimeout = cfg.ElectionTimeout
	rc.LeaderLeaseTimeout = cfg.LeaderLeaseTimeout
	rc.SnapshotThreshold = cfg.SnapshotThreshold
	rc.SnapshotInterval = cfg.SnapshotInterval
	rc.TrailingLogs = cfg.TrailingLogs
	// Commands queue in applyCh and are appended and committed in batches
	// of up to MaxAppendEntries: one synced Pebble write per batch.
	rc.BatchApplyCh = true
	rc.MaxAppendEntries = maxAppendEntries
	// Our metrics come from the raft API (metrics.go); skip raft's per-peer
	// legacy go-metrics names.
	rc.NoLegacyTelemetry = true
	// The FSM is persistent in Pebble and keeps its own applied index, so it
	// is not restored from the snapshot at every start (that would rewrite
	// the whole state). What raft does then (api.go restoreSnapshot and
	// tryRestoreSingleSnapshot, v1.8.0): it does not open the snapshot or
	// call FSM.Restore, but still sets lastApplied to the newest snapshot's
	// index and takes its configuration. So raft replays only the entries
	// after the snapshot, through FSM.Apply, and the FSM skips those at or
	// below its own applied index. An FSM that is behind the snapshot would
	// never be brought up to date; needsSnapshotRestore turns the option off
	// for that start.
	rc.NoSnapshotRestoreOnStart = true
	if err := raft.ValidateConfig(rc); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	return rc, nil
}

// snapshotStore is raft's file snapshot store with one addition: Create
// first forces a synced Pebble write. Raft creates a snapshot only after
// FSM.Snapshot has run, which is after every entry the snapshot covers was
// applied; the FSM commits those with pebble.NoSync. Syncing the WAL here
// makes them durable before the snapshot exists, because raft will never
// replay an entry at or below the newest snapshot (see raftConfig).
type snapshotStore struct {
	*raft.FileSnapshotStore
	db *pebble.DB
}

func newSnapshotStore(dataDir string, db *pebble.DB, logger hclog.Logger) (*snapshotStore, error) {
	// The file store adds "snapshots" to the directory it is given.
	fs, err := raft.NewFileSnapshotStoreWithLogger(filepath.Join(dataDir, "raft"), snapshotsRetained, logger.Named("snapshots"))
	if err != nil {
		return nil, fmt.Errorf("cluster: snapshot store: %w", err)
	}
	return &snapshotStore{FileSnapshotStore: fs, db: db}, nil
}

// Create implements raft.SnapshotStore.
func (s *snapshotStore) Create(version raft.SnapshotVersion, index, term uint64,
	configuration raft.Configuration, configurationIndex uint64, trans raft.Transport,
) (raft.SnapshotSink, error) {
	if err := syncDB(s.db); err != nil {
		return nil, fmt.Errorf("cluster: create snapshot at %d: %w", index, err)
	}
	return s.FileSnapshotStore.Create(version, index, term, configuration, configurationIndex, trans)
}

// needsSnapshotRestore reports whether raft must restore the newest snapshot
// into the FSM at this start: only when the FSM is provably or possibly
// behind it. That happens if the node crashed while installing a snapshot
// sent by the leader: raft writes the snapshot file before FSM.Restore runs,
// so after a crash the file can be ahead of the FSM.
//
// The FSM's applied index counts only the entries it is handed (commands),
// while a snapshot's index may be a no-op, barrier or configuration entry
// after the last command. So an FSM is behind only if one of the entries
// after its applied index, up to the snapshot's, is a command, or is no
// longer in the log to tell.
func needsSnapshotRestore(fsm raft.FSM, snaps raft.SnapshotStore, logs raft.LogStore, logger *slog.Logger) (bool, error) {
	metas, err := snaps.List()
	if err != nil {
		return false, fmt.Errorf("cluster: list snapshots: %w", err)
	}
	ai, ok := fsm.(AppliedIndexer)
	if !ok {
		logger.Warn("raft FSM does not report its applied index; an interrupted snapshot install would go unnoticed")
		return false, nil
	}
	if len(metas) == 0 {
		return false, nil
	}
	applied, newest := ai.AppliedIndex(), metas[0].Index
	for i := applied + 1; i <= newest; i++ {
		var l raft.Log
		err := logs.GetLog(i, &l)
		if err == nil && l.Type != raft.LogCommand {
			continue
		}
		if err != nil && !errors.Is(err, raft.ErrLogNotFound) {
			return false, fmt.Errorf("cluster: check fsm against snapshot: %w", err)
		}
		logger.Warn("FSM is behind the newest raft snapshot; restoring the snapshot",
			"fsm_applied_index", applied, "snapshot_index", newest, "snapshot_id", metas[0].ID, "first_missing", i)
		return true, nil
	}
	return false, nil
}

// newTransport returns the raft transport and this node's advertised raft
// address: TCP when cfg.RaftListen is set, else in-memory.
func newTransport(cfg Config, logger hclog.Logger) (raft.Transport, string, error) {
	if cfg.RaftListen == "" {
		addr := cfg.Advertise
		if addr == "" {
			addr = cfg.NodeID
		}
		// The address is stable across restarts (it is stored in the
		// configuration), unlike the random one NewInmemTransport("") picks.
		a, t := raft.NewInmemTransport(raft.ServerAddress(addr))
		return t, string(a), nil
	}
	var adv net.Addr
	if cfg.Advertise != "" {
		a, err := net.ResolveTCPAddr("tcp", cfg.Advertise)
		if err != nil {
			return nil, "", fmt.Errorf("%w: advertise %q: %w", ErrInvalidConfig, cfg.Advertise, err)
		}
		adv = a
	}
	t, err := raft.NewTCPTransportWithLogger(cfg.RaftListen, adv, tcpMaxPool, tcpTimeout, logger.Named("transport"))
	if err != nil {
		return nil, "", fmt.Errorf("cluster: raft transport on %s: %w", cfg.RaftListen, err)
	}
	return t, string(t.LocalAddr()), nil
}

// bootstrap writes the initial configuration if there is no raft state yet.
func bootstrap(cfg Config, rc *raft.Config, logs *LogStore, snaps raft.SnapshotStore,
	trans raft.Transport, addr string, logger *slog.Logger,
) error {
	existing, err := raft.HasExistingState(logs, logs, snaps)
	if err != nil {
		return fmt.Errorf("cluster: check raft state: %w", err)
	}
	if existing {
		logger.Debug("raft state exists; not bootstrapping")
		return nil
	}
	var conf raft.Configuration
	if len(cfg.Peers) == 0 {
		conf.Servers = []raft.Server{{Suffrage: raft.Voter, ID: raft.ServerID(cfg.NodeID), Address: raft.ServerAddress(addr)}}
	}
	for _, p := range cfg.Peers {
		conf.Servers = append(conf.Servers, raft.Server{Suffrage: raft.Voter, ID: raft.ServerID(p.ID), Address: raft.ServerAddress(p.Addr)})
	}
	if err := raft.BootstrapCluster(rc, logs, logs, snaps, trans, conf); err != nil {
		return fmt.Errorf("cluster: bootstrap: %w", err)
	}
	logger.Info("raft bootstrapped", "voters", len(conf.Servers))
	return nil
}
