#!/bin/sh
# Entry point of the Berth image (deploy/Dockerfile): runs berth with the arguments given.
#
# For `serve` with BERTH_PEERS set (the gossip addresses of every node, this one included,
# comma-separated), it decides on every start whether the node bootstraps or joins:
#   - the node whose --node-id is BERTH_BOOTSTRAP_NODE, started on a data directory without
#     Raft state, bootstraps a new cluster (no --join);
#   - every other start gets --join with the other nodes' addresses.
# A node must join on every start but the cluster's very first: a node that stopped cleanly
# left the cluster, and one started without --join has nobody to gossip with. If the
# bootstrap node ever loses its data while the others run, start it once with
# BERTH_BOOTSTRAP_NODE unset so that it joins them instead of founding a second cluster.
#
# Only shell built-ins are used (the image has /bin/sh and nothing else). The test in
# deploy/deploytest runs this script with BERTH_BIN pointing at a freshly built binary.
set -eu
bin=${BERTH_BIN:-/usr/local/bin/berth}
if [ "${1:-}" != serve ] || [ -z "${BERTH_PEERS:-}" ]; then
	exec "$bin" "$@"
fi

node='' data=${BERTH_DATA_DIR:-/var/lib/berth} self='' prev=''
for a in "$@"; do
	case "$prev" in
	--node-id | -node-id) node=$a ;;
	--data-dir | -data-dir) data=$a ;;
	--gossip-advertise | -gossip-advertise) self=$a ;;
	esac
	case "$a" in
	--node-id=* | -node-id=*) node=${a#*=} ;;
	--data-dir=* | -data-dir=*) data=${a#*=} ;;
	--gossip-advertise=* | -gossip-advertise=*) self=${a#*=} ;;
	esac
	prev=$a
done

if [ "$node" = "${BERTH_BOOTSTRAP_NODE:-}" ] && [ ! -e "$data/raft" ]; then
	echo "berth-entrypoint: $node has no Raft state in $data: it bootstraps a new cluster" >&2
	exec "$bin" "$@"
fi

seeds=''
IFS=,
for p in $BERTH_PEERS; do
	if [ -n "$p" ] && [ "$p" != "$self" ]; then
		seeds=${seeds:+$seeds,}$p
	fi
done
unset IFS
if [ -z "$seeds" ]; then
	exec "$bin" "$@"
fi
echo "berth-entrypoint: $node joins $seeds" >&2
exec "$bin" "$@" --join="$seeds"
