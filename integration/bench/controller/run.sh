#!/usr/bin/env bash
# Controller benchmark: `nodemesh controller` on the real harness apiserver
# with 100, 1,000 and 3,000 services (5 ready pods each, a TrafficSplit on
# every tenth), beside Traefik Mesh's figures from shared/notes/anchors.md.
# Writes integration/bench/results/controller-<date>.md.
#
# Environment: BENCH_CONTROLLER_SIZES (100,1000,3000), BENCH_CONTROLLER_EDITS
# (100), BENCH_OUT (integration/bench/results), NODEMESH_BIN (built here if
# unset), NODEMESH_TOOLS_DIR (built here if unset).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../../.." && pwd)
cd "$ROOT"
OUT=${BENCH_OUT:-$ROOT/integration/bench/results}
mkdir -p "$OUT"
if [ -z "${NODEMESH_TOOLS_DIR:-}" ]; then
	NODEMESH_TOOLS_DIR=$(integration/tools/build.sh)
fi
if [ -z "${NODEMESH_BIN:-}" ]; then
	make build >/dev/null
	NODEMESH_BIN=$ROOT/bin/nodemesh
fi
export NODEMESH_TOOLS_DIR NODEMESH_BIN
result="$OUT/controller-$(date -u +%F).md"
go test -count=1 -timeout 60m -run TestControllerBench ./integration/bench/controller/ \
	-args -bench -sizes="${BENCH_CONTROLLER_SIZES:-100,1000,3000}" \
	-edits="${BENCH_CONTROLLER_EDITS:-100}" -out="$result"
echo "controller benchmark: $result" >&2
