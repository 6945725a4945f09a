// Package chaos is Berth's Jepsen-style fault harness (issue 8). It starts a
// cluster of real `berth serve` processes, built with the `chaos` tag so they
// take storage faults and clock skew on /internal/v1/faults, runs a recorded
// client workload against all of them as a load balancer would, injects
// faults on a schedule drawn from a seed, heals, waits for convergence, and
// then checks only what clients saw.
//
// The network (network.go): as root, each node runs in its own network
// namespace on a bridge (chaos/netns) and the faults are iptables rules and
// tc qdiscs between the namespaces, gossip included; otherwise every Raft and
// internal API link passes a per-link TCP proxy (chaos/faultproxy). Clients
// always reach every node: an isolated leader still gets writes.
//
// The workload (workload.go): pushes of images sharing base layers (cross-
// repository mounts, chunked and monolithic uploads) under a few tags, tag
// moves, tag reads, blob pulls by digest, images pushed under a tag of their
// own that are deleted (by tag or by digest) and restored from the trash,
// uploads abandoned before their manifest, and garbage collection runs. Every
// operation is recorded with its times, node, outcome (ok, failed, or unknown
// for a timeout or a 5xx) and the digest of what came back.
//
// The nemesis (nemesis.go, FaultKinds): kill -9 and restart (leader,
// follower, all), SIGSTOP/SIGCONT, isolation, leader-minority and random
// partitions, one-way cuts, a bridge, packet loss, latency, a full disk (a
// tmpfs data directory as root), EIO on the blob store and on Pebble, a
// follower wiped and rejoined, clock skew. One fault at a time, held 2-6s.
//
// The checkers (check.go, check_gc.go):
//
//	state-digest       all nodes reach the same applied index with equal
//	                   metadata digests
//	refused-absent     a manifest every write of which was refused is on no
//	                   node
//	gc-kept            after one more GC, every manifest still there pulls
//	                   complete and byte-identical from every node (GC never
//	                   removed a reachable blob)
//	gc-reclaimed       and every uploaded blob no remaining manifest needs is
//	                   404 and gone from every node's disk
//	acked-pullable     every manifest acknowledged with 201 (and not deleted
//	                   since) is pullable with its blobs from every node
//	body-digest        every 200 body read by digest hashes to that digest,
//	                   and every manifest read by tag is one a client wrote
//	linearizable       per tag, the writes (push, move, delete, restore) and
//	                   reads form a linearizable register history (Porcupine;
//	                   unknown outcomes may or may not have happened)
//	linearizable-final the same with only the reads made after healing
//	one-leader         at most one node is seen leading in any Raft term
//	fsck               POST /api/v1/fsck reports every node clean
//	no-crash           a node exits only when killed, or failing stop under
//	                   a disk fault
//
// Run is the entry point; chaos/cmd/berth-chaos and `make chaos` drive it.
// The run's directory holds history.json, schedule.json, leaders.json,
// result.json and the node logs; it is kept (and printed) when a checker
// fails, for replay with the seed.
package chaos
