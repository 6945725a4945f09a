#!/usr/bin/env bash
# Run the OCI distribution-spec conformance suite against a registry URL.
# Usage: .ci/conformance.sh URL          e.g. .ci/conformance.sh http://127.0.0.1:5000
#
# With ../shared/tools beside the repository this is that folder's conformance.sh. Without it,
# this script does the same: it builds the suite at the same pinned version into the tools cache
# ($BERTH_TOOLS_BIN, else ${XDG_CACHE_HOME:-$HOME/.cache}/berth-tools/bin) and runs it with the
# same environment: every optional area on (upload cancel, tag parameters, digest headers, every
# OCI_DATA_* set) except OCI_DATA_SPARSE; any OCI_* already set wins; OCI_CONFIGURATION (a yaml
# file) leaves the areas to that file. Results go to $OCI_RESULTS_DIR (default
# /tmp/oci-conformance/<host_port>-<time>). The last line is
# "conformance: N passed, M failed, K skipped"; the exit status is 0 only when M is 0.
set -uo pipefail
URL=${1:?usage: conformance.sh URL (e.g. http://127.0.0.1:5000)}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
if [ -f "$ROOT/../shared/tools/conformance.sh" ]; then
  exec bash "$ROOT/../shared/tools/conformance.sh" "$URL"
fi

CONF_VER=${CONF_VER:-v0.0.0-20260831232431-97274622c111}   # as ../shared/tools/lib.sh
MOD=github.com/opencontainers/distribution-spec/conformance
TOOLS_BIN=${BERTH_TOOLS_BIN:-${XDG_CACHE_HOME:-${HOME:?HOME or BERTH_TOOLS_BIN must be set}/.cache}/berth-tools/bin}
BIN="$TOOLS_BIN/conformance"
if ! { [ -x "$BIN" ] && go version -m "$BIN" 2>/dev/null | grep -Eq "^[[:space:]]*mod[[:space:]]+${MOD}[[:space:]]+${CONF_VER}([[:space:]]|\$)"; }; then
  command -v go >/dev/null 2>&1 || { echo "go not found in PATH (needed to build the suite)" >&2; exit 2; }
  mkdir -p "$TOOLS_BIN"
  echo "building $MOD@$CONF_VER -> $BIN" >&2
  (cd /tmp && GOWORK=off GOBIN="$TOOLS_BIN" go install -buildvcs=false "$MOD@$CONF_VER") || exit 2
fi

u=${URL%/}
case "$u" in
  http://*)  export OCI_TLS=${OCI_TLS:-disabled}; reg=${u#http://} ;;
  https://*) export OCI_TLS=${OCI_TLS:-enabled};  reg=${u#https://} ;;
  *)         export OCI_TLS=${OCI_TLS:-disabled}; reg=$u ;;
esac
export OCI_REGISTRY=${OCI_REGISTRY:-$reg}
export OCI_REPO1=${OCI_REPO1:-conformance/repo1}
export OCI_REPO2=${OCI_REPO2:-conformance/repo2}
[ -n "${OCI_USERNAME:-}" ] && export OCI_USERNAME
[ -n "${OCI_PASSWORD:-}" ] && export OCI_PASSWORD
OPTIONAL_ON=(
  OCI_API_BLOBS_UPLOAD_CANCEL OCI_API_MANIFESTS_TAG_PARAM
  OCI_API_BLOBS_DIGEST_HEADER OCI_API_MANIFESTS_DIGEST_HEADER
  OCI_DATA_IMAGE OCI_DATA_INDEX OCI_DATA_INDEX_LIST OCI_DATA_ARTIFACT OCI_DATA_SUBJECT
  OCI_DATA_SUBJECT_MISSING OCI_DATA_ARTIFACT_LIST OCI_DATA_SUBJECT_LIST OCI_DATA_DATA_FIELD
  OCI_DATA_NONDISTRIBUTABLE OCI_DATA_CUSTOM_FIELDS OCI_DATA_NO_LAYERS OCI_DATA_EMPTY_BLOB OCI_DATA_SHA512
)
if [ -n "${OCI_CONFIGURATION:-}" ]; then
  case "$OCI_CONFIGURATION" in /*) ;; *) OCI_CONFIGURATION="$PWD/$OCI_CONFIGURATION" ;; esac
  export OCI_CONFIGURATION
else
  for v in "${OPTIONAL_ON[@]}"; do export "$v=${!v:-true}"; done
  export OCI_DATA_SPARSE=${OCI_DATA_SPARSE:-false}
fi
export OCI_RESULTS_DIR=${OCI_RESULTS_DIR:-/tmp/oci-conformance/${OCI_REGISTRY//[:\/]/_}-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$OCI_RESULTS_DIR" || exit 2
cd "$OCI_RESULTS_DIR" || exit 2   # the suite would read a stray ./oci-conformance.yaml
echo "conformance: registry $OCI_REGISTRY (tls $OCI_TLS), repos $OCI_REPO1 $OCI_REPO2, suite $CONF_VER"

out="$OCI_RESULTS_DIR/stdout.txt"
"$BIN" 2> "$OCI_RESULTS_DIR/stderr.txt" | tee "$out"
rc=${PIPESTATUS[0]}
count() { awk -v k="$1" '$0 ~ "^  "k"\\.+: *[0-9]+$" {gsub(/.*: */,""); print; exit}' "$out"; }
pass=$(count Pass); fail=$(count FAIL); err=$(count Error); skip=$(count Skip); dis=$(count Disabled)
if [ -z "$pass" ]; then
  echo "conformance suite produced no summary (exit $rc); stderr:" >&2
  tail -20 "$OCI_RESULTS_DIR/stderr.txt" >&2
  echo "conformance: 0 passed, 1 failed, 0 skipped"
  exit 1
fi
failed=$((${fail:-0} + ${err:-0})); skipped=$((${skip:-0} + ${dis:-0}))
echo "results: $OCI_RESULTS_DIR (stderr.txt has each failure)"
echo "conformance: $pass passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
