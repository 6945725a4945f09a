// Package chaos is Berth's Jepsen-style fault harness (issue 8): it starts a
// cluster of real `berth serve` processes on 127.0.0.1 with every Raft and
// inter-node API link behind a chaos/faultproxy, runs a recorded client
// workload against all nodes, injects faults on a schedule drawn from a seed
// (kill -9 and restart, SIGSTOP/SIGCONT, partitions that drop or blackhole a
// node's links), heals, waits for convergence, and then checks only what
// clients saw:
//
//	acked-pullable   every manifest acknowledged with 201 is pullable by
//	                 digest, byte-identical with its blobs, from every node
//	body-digest      every 200 body read by digest hashes to that digest, and
//	                 every manifest read by tag is one some client wrote
//	linearizable     per tag, the writes and reads form a linearizable
//	                 register history (Porcupine; unknown outcomes may or may
//	                 not have happened, as in Jepsen)
//	state-digest     all nodes reach the same applied index with equal
//	                 metadata digests
//	one-leader       at most one node is seen leading in any Raft term
//	fsck             POST /api/v1/fsck reports every node clean
//
// Run is the entry point; chaos/cmd/berth-chaos and `make chaos` drive it.
// The run's directory holds history.json, schedule.json and the node logs;
// it is kept (and printed) when a checker fails, for replay with the seed.
package chaos
