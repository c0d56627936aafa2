#!/usr/bin/env bash
# The test command: installs what the tests need, type-checks, then runs every tap test.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh --test
npx tsc -p tsconfig.json
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
npx tap "$@" | tee "$log" || status=$?
# tap's summary "# { total: N, pass: P, fail: F, skip: S }" as the plain closing line CI reads.
summary=$(grep -E '^# \{ total:' "$log" | tail -1 || true)
num() { echo "$summary" | grep -oE "$1: [0-9]+" | grep -oE '[0-9]+' || echo 0; }
[ -n "$summary" ] && echo "$(num pass) passed, $(num fail) failed, $(num skip) skipped"
exit $status
