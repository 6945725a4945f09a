// Package deploytest holds the tests of the deployment files in deploy/: the
// Compose file, the Kubernetes manifests, the systemd unit and its example
// configuration, and the image's entry point are checked against the flags of
// the berth binary built from this tree, and three nodes are started with
// exactly the Compose file's command lines. It has no code of its own.
package deploytest
