// Package fsm is the raft.FSM that keeps Berth's metadata in Pebble. Each batch of
// Raft entries is applied into one Pebble batch together with the applied index, so
// a restart that replays the log skips what is already applied.
//
// Key space: the FSM owns the keys that start with a byte >= 0x01. Keys starting
// with 0x00 belong to the Raft log store that shares the same Pebble database
// (package cluster). The applied index lives at appliedKey; meta's keys start with
// a lower-case letter.
package fsm
