// Package faultproxy is a TCP proxy for fault injection on loopback. A Proxy
// listens on one address and forwards every connection it accepts to one
// target; at any time it can be told to pass, drop or blackhole connections,
// either all of them or only those of one source (one link of a network).
//
// The chaos tests put a Proxy in front of every node's Raft and internal API
// address (the nodes advertise the proxy's address, so every peer dials
// through it) and partition a node by dropping or blackholing its links. On
// loopback every process dials from the same IP address, so a link's source is
// told apart by the process that owns the dialing socket: PeerProcess finds it
// (on Linux) from /proc.
//
// A link that passes can also be degraded: SetLatency and SetSourceLatency
// delay its bytes (a one-way delay each way, keeping their order, without
// limiting throughput to a chunk per delay), SetLoss and SetSourceLoss make it
// look lossy to the application as TCP shows loss: stalls of a retransmission
// timeout, and now and then a connection reset. See degrade.go for the model.
// Drop and Blackhole win over both.
//
// What a Proxy cannot cut: UDP (memberlist's gossip probes), and connections
// that do not pass through it.
package faultproxy
