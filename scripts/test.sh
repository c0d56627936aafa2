#!/usr/bin/env bash
# The test command: installs what the tests need, type-checks, then runs every tap test.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh --test
npx tsc -p tsconfig.json
npx tap "$@"
