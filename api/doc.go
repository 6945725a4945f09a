// Package api is Berth's HTTP edge: the OCI Distribution API v1.1 (and its Docker
// Registry v2 dialect) under /v2/, health endpoints, and the error table that turns
// every error into its OCI code and status. It reads metadata through meta.Reader,
// changes it only by proposing meta commands through the Proposer it is given, and
// stores bytes through the Blobs interface it declares; it never imports the
// cluster, Raft or Pebble. Every handler resolves its request to a repository and
// an action and asks the one Authorizer.
package api
