// Package cluster runs Berth's Raft node: it replicates the metadata log with
// hashicorp/raft and hands committed entries to a raft.FSM it is given. It
// never imports another Berth package; the node package wires it to the
// metadata FSM.
//
// # One Pebble database, two key spaces
//
// The node opens one *pebble.DB and hands it both to the FSM and to this
// package. The Raft log and Raft's stable values (current term, last vote) are
// kept in that database by [LogStore], under keys whose first byte is 0x00:
//
//	\x00rl <index: 8 bytes big-endian>  one raft.Log (see encodeLog)
//	\x00rs <key>                        one stable value (raft.StableStore)
//
// The contract with the FSM: every key the FSM writes, deletes or
// range-deletes — in Apply, Restore and anything else — starts with a byte
// >= 0x01, and its snapshots never include keys starting with 0x00. An FSM
// that clears "everything" before a restore must clear from 0x01 upwards.
//
// # Durability
//
// Log and stable writes are committed with pebble.Sync; the FSM commits its
// per-entry batches with pebble.NoSync. Pebble's write-ahead log is a single
// ordered stream, so every synced write also makes every earlier write
// durable, including the FSM's. An FSM write lost in a crash therefore belongs
// to an entry that is still in the Raft log (it was synced before it was
// applied) and is re-applied on restart; the FSM must store its applied index
// in the same batch as the state change and skip entries at or below it.
// Before Raft records a snapshot, this package forces one synced write, so an
// entry a snapshot covers is durable in the FSM's state too (Raft will not
// replay it). The database must be opened with its WAL enabled; a synced
// write on a database without a WAL fails.
//
// Raft is configured with NoSnapshotRestoreOnStart: the FSM is persistent and
// is not rebuilt from the snapshot at every start. An FSM that implements
// [AppliedIndexer] is checked at start: if a command entry the newest
// snapshot covers is above its applied index (a crash while a snapshot sent
// by the leader was being installed), the snapshot is restored into it.
//
// # Cluster shape
//
// A Raft node runs with either an in-memory transport (a single node, no
// port opened) or a TCP transport, and can bootstrap a configuration of one
// or more voters ([Config.Peers]). [ErrNotLeader] is what a follower answers
// to Propose.
//
// # Gossip and membership
//
// [Gossip] runs hashicorp/memberlist: every node gossips its zone, API and
// raft addresses and its draining flag (JSON node metadata), and measures
// probe round trips to the others. Raft says who votes; gossip says who is
// alive. The leader's reconciler ([Cluster.RunReconciler], one step is
// [Cluster.Reconcile]) brings the raft configuration in line, one change at
// a time: it adds alive members (voters up to MaxVoters, then non-voters),
// promotes a non-voter into a free voter seat, follows a changed raft
// address, and removes members that left, or that have been dead for longer
// than DeadNodeTimeout. Only the first node of a cluster bootstraps; every
// other node starts with Bootstrap false, joins gossip, and waits to be added.
// Gossip and raft use the same node id.
//
// Draining, in order: [Gossip.SetDraining] (others stop choosing this
// node), [Cluster.TransferLeadership], [Gossip.Leave] (the leader removes
// the node from raft at once), then [Cluster.Shutdown] and
// [Gossip.Shutdown]. A node stopped without Leave is Dead to the others and
// is removed after DeadNodeTimeout; restarted before that with its data, it
// just rejoins (a new raft address is followed).
//
// # Shutdown order
//
// [Cluster.Shutdown] must return before the Pebble database is closed: Pebble
// panics on writes to a closed database.
package cluster
