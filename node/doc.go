// Package node is one running Berth node and the only place that wires the parts
// together: configuration, the Pebble database shared by the Raft log and the
// metadata state machine, the cluster, the blob store, the HTTP API and the
// metrics registry; start, drain and stop.
package node
