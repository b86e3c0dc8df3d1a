#!/usr/bin/env bash
# Entry point of `make bench`: runs the run.sh of every benchmark under
# integration/bench/ (proxy/, and controller/ once it exists), in name
# order, and fails if any fails. Each writes its results to
# integration/bench/results/. See docs/benchmarks.md.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
status=0
for script in "$here"/*/run.sh; do
	[ -x "$script" ] || [ -f "$script" ] || continue
	echo "== $(basename "$(dirname "$script")") benchmark" >&2
	bash "$script" || status=1
done
exit $status
