package cluster

import (
	"fmt"
	"log/slog"
	"path/filepath"

	"github.com/hashicorp/raft"
)

// SeedSnapshot prepares a new node's data directory to start from an
// existing state (a restored backup): it writes fsm's current state as a raft
// snapshot at index (the FSM's applied index), term 1, whose configuration is
// this node alone, as a voter at addr (the raft address the node will
// advertise: its advertised or listen address, or for a single node without
// a raft port its node id).
//
// Why a snapshot rather than a bootstrap: raft must start after index, or the
// FSM would skip the new entries as replays of entries it already applied.
// With the snapshot, New sees existing state (no bootstrap), raft's log starts
// at index+1, the FSM is not restored again (its applied index is the
// snapshot's, see needsSnapshotRestore), and a node that joins later installs
// this snapshot as its starting state.
//
// It refuses a data directory that already holds raft snapshots. fsm's
// database must not be written to meanwhile.
func SeedSnapshot(dataDir, nodeID, addr string, index uint64, fsm raft.FSM, logger *slog.Logger) error {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if addr == "" {
		addr = nodeID
	}
	if index == 0 {
		return fmt.Errorf("%w: seed snapshot at index 0", ErrInvalidConfig)
	}
	snaps, err := raft.NewFileSnapshotStoreWithLogger(filepath.Join(dataDir, "raft"), snapshotsRetained, newHCLogger(logger, "snapshots"))
	if err != nil {
		return fmt.Errorf("cluster: snapshot store: %w", err)
	}
	if metas, err := snaps.List(); err != nil || len(metas) > 0 {
		return fmt.Errorf("cluster: seed snapshot: %s already holds raft snapshots (%d, %v)", dataDir, len(metas), err)
	}
	conf := raft.Configuration{Servers: []raft.Server{{Suffrage: raft.Voter, ID: raft.ServerID(nodeID), Address: raft.ServerAddress(addr)}}}
	// The transport only encodes the legacy peer list of the snapshot's
	// metadata; every transport encodes an address as its bytes.
	_, trans := raft.NewInmemTransport(raft.ServerAddress(addr))
	defer trans.Close()
	sink, err := snaps.Create(raft.SnapshotVersionMax, index, 1, conf, index, trans)
	if err != nil {
		return fmt.Errorf("cluster: seed snapshot: %w", err)
	}
	snap, err := fsm.Snapshot()
	if err != nil {
		_ = sink.Cancel()
		return fmt.Errorf("cluster: seed snapshot: %w", err)
	}
	defer snap.Release()
	if err := snap.Persist(sink); err != nil {
		return fmt.Errorf("cluster: seed snapshot: %w", err)
	}
	logger.Info("raft snapshot seeded", "index", index, "node", nodeID, "addr", addr, "id", sink.ID())
	return nil
}
