#!/usr/bin/env bash
# Install the client tools `make test` needs (the e2e test in cmd/berth): crane, oras, regctl,
# the OCI conformance suite (Go tools, into the tools cache) and skopeo (Debian package); and
# chromium (Debian package) for the console's browser test; and promtool (Debian package
# prometheus) for the metrics and alert rule tests.
# Usage: .ci/install-test-tools.sh        (run from anywhere; `make tools` runs it)
#
# With ../shared/tools beside the repository (CI, the team's machines) this is that folder's
#   install.sh, which also installs docker-registry, wrk, hyperfine and regload for `make bench`.
# Without it (a user's clone) it does the same for the test tools itself:
#   skopeo with apt-get when root (else it prints the command and fails at the end), and
#   `go install` of the pinned versions below into the tools cache.
# Tools cache: $BERTH_TOOLS_BIN, else ${XDG_CACHE_HOME:-$HOME/.cache}/berth-tools/bin (the same
#   place ../shared/tools/lib.sh uses). Safe to run again: what is there is not rebuilt.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SHARED="$ROOT/../shared/tools"

# The console's browser test (node/console_e2e_test.go) drives Debian's headless chromium;
# a CJK font makes its Chinese screenshots legible. Both come from Debian, whichever branch runs.
if ! command -v chromium >/dev/null 2>&1 || ! fc-list 2>/dev/null | grep -qi 'wenquanyi\|noto sans cjk'; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "apt-get install chromium fonts-wqy-microhei" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-wqy-microhei >/dev/null
  else
    echo "install-test-tools: chromium or a CJK font is missing (the console test skips without chromium); install them with: sudo apt-get install -y chromium fonts-wqy-microhei" >&2
  fi
fi

# promtool (Debian package prometheus): node/metrics_test.go checks the scraped metrics and the
# alert rules with it, deploy/deploytest the Prometheus configuration. ../shared/tools does not
# install it, so it is installed here whichever branch runs.
promtool_missing=0
if ! command -v promtool >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "apt-get install prometheus (for promtool)" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null
  else
    echo "install-test-tools: promtool is missing; install it with: sudo apt-get install -y prometheus" >&2
    promtool_missing=1
  fi
fi

if [ -f "$SHARED/install.sh" ]; then
  bash "$SHARED/install.sh" "$@"
  exit "$promtool_missing"
fi

TOOLS_BIN=${BERTH_TOOLS_BIN:-${XDG_CACHE_HOME:-${HOME:?HOME or BERTH_TOOLS_BIN must be set}/.cache}/berth-tools/bin}
# name | module | package | version. Keep in step with ../shared/tools/lib.sh (and the
# constants at the top of cmd/berth/e2e_test.go and .ci/conformance.sh).
CONF_VER=${CONF_VER:-v0.0.0-20260831232431-97274622c111}
GO_TOOLS=(
  "crane|github.com/google/go-containerregistry|github.com/google/go-containerregistry/cmd/crane|v0.22.1"
  "oras|oras.land/oras|oras.land/oras/cmd/oras|v1.3.6"
  "regctl|github.com/regclient/regclient|github.com/regclient/regclient/cmd/regctl|v0.11.7"
  "conformance|github.com/opencontainers/distribution-spec/conformance|github.com/opencontainers/distribution-spec/conformance|$CONF_VER"
)

fail=0
if ! command -v skopeo >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "apt-get install skopeo" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq skopeo >/dev/null
  else
    echo "install-test-tools: skopeo is missing; install it with: sudo apt-get install -y skopeo" >&2
    echo "  (other systems: https://github.com/containers/skopeo/blob/main/install.md)" >&2
    fail=1
  fi
fi

command -v go >/dev/null 2>&1 || { echo "install-test-tools: go not found in PATH" >&2; exit 1; }
mkdir -p "$TOOLS_BIN"
for entry in "${GO_TOOLS[@]}"; do
  IFS='|' read -r name mod pkg ver <<< "$entry"
  if [ -x "$TOOLS_BIN/$name" ] \
     && go version -m "$TOOLS_BIN/$name" 2>/dev/null | grep -Eq "^[[:space:]]*mod[[:space:]]+${mod}[[:space:]]+${ver}([[:space:]]|\$)"; then
    continue
  fi
  echo "building $pkg@$ver -> $TOOLS_BIN/$name" >&2
  # from /tmp, so that no go.mod / go.work of this repository is involved
  (cd /tmp && GOWORK=off GOBIN="$TOOLS_BIN" go install -buildvcs=false "$pkg@$ver") \
    || { echo "install-test-tools: go install $pkg@$ver failed" >&2; exit 1; }
done
[ "$promtool_missing" = 0 ] || fail=1
exit "$fail"
