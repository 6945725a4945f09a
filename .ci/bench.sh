#!/usr/bin/env bash
# make bench: Berth side by side with the reference registry (CNCF Distribution 2.8), measured by
# ../shared/tools/bench/all.sh, then one table of the figures and their ratios.
# Usage: .ci/bench.sh                 (make bench)
# Env (passed through to all.sh): SIZE_MIB (default 1024) N (200) SIZE (1024) DUR (10s) CONNS (4)
#   SKIP_LIMITS=1 (skip the machine limits), OUT (raw output, default /tmp/regbench/berth-bench-<time>.txt)
#   A quick run: SIZE_MIB=64 N=20 DUR=3s SKIP_LIMITS=1 make bench
# BENCH_BERTH_URL=http://127.0.0.1:PORT: measure that running registry as "Berth" instead of
#   building and starting bin/berth (e.g. a cluster node, or a second Distribution to check this
#   script). Its server figures need it to listen on this machine.
# Both registries listen on free 127.0.0.1 ports, with fresh data dirs under /tmp, and are
# stopped at the end. While each runs its large-blob phase, its peak RSS is sampled (VmHWM of
# /proc/PID/status, reset at the start of the phase through /proc/PID/clear_refs).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
SHARED="$ROOT/../shared/tools"
[ -x "$SHARED/bench/all.sh" ] || { echo "bench: needs ../shared/tools/bench (the team's registry test tools) beside the repository" >&2; exit 1; }
for t in curl ss; do command -v "$t" >/dev/null || { echo "bench: missing $t" >&2; exit 1; }; done
[ -x /usr/bin/docker-registry ] || bash "$SHARED/install.sh"

mkdir -p /tmp/regbench
STAMP=$(date +%Y%m%d-%H%M%S)
export OUT=${OUT:-/tmp/regbench/berth-bench-$STAMP.txt}
W=$(mktemp -d /tmp/berth-bench.XXXXXX)
BPID="" DPID="" SPID="" DIST_ROOT=""

cleanup() {
  local rc=$?
  [ -n "$SPID" ] && kill "$SPID" 2>/dev/null || true
  if [ -n "$BPID" ] && kill -0 "$BPID" 2>/dev/null; then
    kill -TERM "$BPID" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$BPID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$BPID" 2>/dev/null || true
  fi
  [ -n "$DPID" ] && kill "$DPID" 2>/dev/null || true
  [ -n "$DIST_ROOT" ] && rm -rf "$DIST_ROOT" "$DIST_ROOT.log"
  if [ "$rc" -ne 0 ] && [ -f "$W/berth.log" ]; then
    cp "$W/berth.log" "/tmp/regbench/berth-bench-$STAMP.berth.log"
    echo "bench: berth log kept in /tmp/regbench/berth-bench-$STAMP.berth.log" >&2
  fi
  rm -rf "$W"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
  local p
  for _ in $(seq 1 200); do
    p=$((20000 + RANDOM % 20000))
    [ -z "$(ss -ltnH "sport = :$p" 2>/dev/null)" ] && { echo "$p"; return 0; }
  done
  echo "bench: no free port found" >&2; return 1
}
pid_on_port() { ss -ltnpH "sport = :$1" 2>/dev/null | sed -n 's/.*pid=\([0-9]*\).*/\1/p' | head -1; }
wait_ready() { # URL PID
  for _ in $(seq 1 600); do
    case "$(curl -s -o /dev/null -w '%{http_code}' "$1/v2/" 2>/dev/null)" in 200|401) return 0 ;; esac
    [ -z "${2:-}" ] || kill -0 "$2" 2>/dev/null || { echo "bench: the server at $1 exited" >&2; return 1; }
    sleep 0.1
  done
  echo "bench: $1 did not answer /v2/ within 60s" >&2; return 1
}

# Distribution 2.8
DPORT=$(free_port)
DIST_ROOT=/tmp/berth-bench-dist-$DPORT
DPID=$(WIPE=1 "$SHARED/start-docker-registry.sh" "$DPORT" "$DIST_ROOT")
DIST_URL=http://127.0.0.1:$DPORT

# Berth: every request is authenticated (the bootstrap cloud admin), and repositories
# live in the bootstrap workspace "library". The credentials are only used where a
# registry asks for them, so Distribution runs open as before.
export BENCH_USER=${BENCH_USER:-admin}
export BENCH_PASS=${BENCH_PASS:-bench-$(head -c 8 /dev/urandom | od -An -tx1 | tr -d ' \n')}
export REPO_PREFIX=${REPO_PREFIX:-library}
if [ -n "${BENCH_BERTH_URL:-}" ]; then
  BERTH_URL=${BENCH_BERTH_URL%/}
  wait_ready "$BERTH_URL"
  BERTH_PID=$(pid_on_port "${BERTH_URL##*:}")
  echo "bench: Berth side = $BERTH_URL (BENCH_BERTH_URL, pid ${BERTH_PID:-unknown})"
else
  make --no-print-directory build
  BPORT=$(free_port)
  BERTH_URL=http://127.0.0.1:$BPORT
  BERTH_ADMIN_PASSWORD=$BENCH_PASS bin/berth serve --data-dir "$W/berth-data" --listen "127.0.0.1:$BPORT" \
    --node-id bench1 2> "$W/berth.log" &
  BPID=$!
  wait_ready "$BERTH_URL" "$BPID"
  BERTH_PID=$BPID
  echo "bench: Berth $(bin/berth version 2>/dev/null || true) pid $BPID on $BERTH_URL, data $W/berth-data"
fi
echo "bench: Distribution pid $DPID on $DIST_URL, data $DIST_ROOT"

# Peak RSS of each server during its own large-blob phase. The phase is read from all.sh's
# output ("## large-blob: URL ..." up to the next "## " header). Writes "URL peak_kib max_kib reset".
sample_rss() {
  local cur="" url pid hwm rss reset=0 maxrss=0 phase
  : > "$W/rss"
  while sleep 0.2; do
    phase=$(grep '^## ' "$OUT" 2>/dev/null | tail -1 || true)
    url="" pid=""
    case "$phase" in
      "## large-blob: $DIST_URL "*)  url=$DIST_URL;  pid=$DPID ;;
      "## large-blob: $BERTH_URL "*) url=$BERTH_URL; pid=${BERTH_PID:-} ;;
    esac
    if [ "$url" != "$cur" ]; then
      cur=$url maxrss=0 reset=0
      if [ -n "$pid" ] && echo 5 > "/proc/$pid/clear_refs" 2>/dev/null; then reset=1; fi
    fi
    [ -n "$pid" ] && [ -r "/proc/$pid/status" ] || continue
    hwm=$(awk '/^VmHWM:/{print $2}' "/proc/$pid/status")
    rss=$(awk '/^VmRSS:/{print $2}' "/proc/$pid/status")
    [ "${rss:-0}" -gt "$maxrss" ] && maxrss=$rss
    grep -v "^$url " "$W/rss" > "$W/rss.tmp" || true
    echo "$url ${hwm:-0} $maxrss $reset" >> "$W/rss.tmp"
    mv "$W/rss.tmp" "$W/rss"
  done
}
: > "$OUT"
sample_rss & SPID=$!

"$SHARED/bench/all.sh" "$DIST_URL" "$BERTH_URL"

kill "$SPID" 2>/dev/null || true; wait "$SPID" 2>/dev/null || true; SPID=""
awk '{printf "bench: large-blob phase of %s: VmHWM %d KiB, max sampled VmRSS %d KiB (HWM reset at phase start: %s)\n", $1, $2, $3, ($4 == 1 ? "yes" : "no")}' "$W/rss"
echo
echo "== Berth vs Distribution 2.8 — $(nproc) cores — SIZE_MIB=${SIZE_MIB:-1024} N=${N:-200} DUR=${DUR:-10s} CONNS=${CONNS:-4} =="
go run .ci/benchtable/main.go "$OUT" "$DIST_URL" "$BERTH_URL" "$W/rss" | tee "${OUT%.txt}.table.txt"
echo "raw output: $OUT   table: ${OUT%.txt}.table.txt"
