#!/usr/bin/env bash
# Starts a three-node Berth cluster on this machine (what `make cluster` runs):
# APIs on 127.0.0.1:5001-5003, Raft on 7001-7003, gossip on 7101-7103, data and
# logs under ./berth-cluster. Ctrl-C stops all three (each drains cleanly).
set -euo pipefail
BIN=${BIN:-bin/berth}
DIR=${CLUSTER_DIR:-./berth-cluster}
mkdir -p "$DIR"
[ -f "$DIR/cluster.key" ] || "$BIN" cluster keygen "$DIR/cluster.key" >/dev/null
export BERTH_ADMIN_PASSWORD=${BERTH_ADMIN_PASSWORD:-$(cat "$DIR/admin-password" 2>/dev/null || head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')}
echo "$BERTH_ADMIN_PASSWORD" > "$DIR/admin-password"; chmod 600 "$DIR/admin-password"

pids=()
stop() { kill -TERM "${pids[@]}" 2>/dev/null || true; wait "${pids[@]}" 2>/dev/null || true; }
trap stop EXIT INT TERM

for i in 1 2 3; do
  join=(); [ "$i" -gt 1 ] && join=(--join 127.0.0.1:7101)
  "$BIN" serve --node-id "node$i" --data-dir "$DIR/node$i" --listen "127.0.0.1:500$i" \
    --raft-listen "127.0.0.1:700$i" --gossip-listen "127.0.0.1:710$i" \
    --cluster-key-file "$DIR/cluster.key" --zone "zone-$(( (i+1) / 2 ))" "${join[@]}" \
    >>"$DIR/node$i.log" 2>&1 &
  pids+=($!)
  sleep 1
done
for i in 1 2 3; do
  for _ in $(seq 60); do curl -fs "http://127.0.0.1:500$i/readyz" >/dev/null && break; sleep 0.5; done
done
cat <<MSG
Berth cluster of 3 nodes is up (logs and data in $DIR):
  node1 http://127.0.0.1:5001   node2 http://127.0.0.1:5002   node3 http://127.0.0.1:5003
  cloud admin: admin / $BERTH_ADMIN_PASSWORD   (also in $DIR/admin-password)
Push through any node and pull from any other:
  docker login 127.0.0.1:5001 -u admin
  docker tag alpine 127.0.0.1:5001/library/alpine:1 && docker push 127.0.0.1:5001/library/alpine:1
  crane pull --insecure 127.0.0.1:5003/library/alpine:1 alpine.tar
Ctrl-C stops the cluster.
MSG
wait
