#!/usr/bin/env bash
# `make demo`: builds what the demo needs, then runs the mesh on a real
# Kubernetes control plane inside a private network namespace (see
# integration/demo_test.go). Ctrl-C stops everything.
set -euo pipefail
cd "$(dirname "$0")/.."

fail() { echo "make demo: $*" >&2; exit 1; }
[[ "$(uname -s)" == Linux ]] || fail "needs Linux (network namespaces); this is $(uname -s)"
command -v go >/dev/null || fail "needs Go 1.26 on PATH (https://go.dev/dl/)"
command -v ip >/dev/null || fail "needs the ip command: apt-get install iproute2"
command -v nft >/dev/null || fail "needs nftables for kube-proxy: apt-get install nftables"
command -v nsenter >/dev/null || fail "needs nsenter: apt-get install util-linux"
if [[ $(id -u) -ne 0 ]] && ! unshare -rn true 2>/dev/null; then
  fail "needs root or unprivileged user namespaces (sysctl kernel.unprivileged_userns_clone=1)"
fi

echo "Building the control-plane tools (cached in ~/.cache/nodemesh; a cold build takes about 6 minutes on 2 cores)"
tools=$(integration/tools/build.sh)
echo "Building nodemesh and the demo"
make -s build
go test -c -tags demo -o bin/demo.test ./integration
# Tests run in their package folder, as go test runs them.
cd integration
NODEMESH_TOOLS_DIR="$tools" NODEMESH_BIN="$OLDPWD/bin/nodemesh" exec ../bin/demo.test -test.run '^TestDemo$' -test.timeout 0
