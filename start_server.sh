#!/usr/bin/env bash
# Starts the model. Until the HTTP server lands, this runs the engine once on a demo prompt.
#   MODEL_PATH   Hugging Face checkpoint folder (default: the embedded tiny random-weight checkpoint)
#   WEIGHT_FORMAT f32 | int8 | int4 (default f32)
set -euo pipefail
cd "$(dirname "$0")"
bash scripts/install.sh
args=(--prompt "${PROMPT:-Describe the screen.}" --format "${WEIGHT_FORMAT:-f32}" --max-tokens "${MAX_TOKENS:-16}")
[ -n "${MODEL_PATH:-}" ] && args+=(--model "$MODEL_PATH")
exec npx tsx server/cli/run-engine.ts "${args[@]}" "$@"
