#!/usr/bin/env bash
# Starts the OpenAI-compatible UI-TARS server, e.g.  nohup bash start_server.sh &
#   MODEL_PATH=/models/UI-TARS-2B-SFT PORT=9000-9007 nohup bash start_server.sh &
# Installs what is missing first. Every setting is an environment variable or a flag
# (bash start_server.sh --help lists them); without MODEL_PATH it serves the embedded tiny
# checkpoint, whose weights are random. The log goes to LOG_FILE (default logs/server.log).
set -euo pipefail
cd "$(dirname "$0")"
bash scripts/install.sh
export LOG_FILE="${LOG_FILE:-logs/server.log}"
mkdir -p "$(dirname "$LOG_FILE")"
echo "start_server: logging to $LOG_FILE" >&2
# exec: the server gets SIGTERM directly and drains before exiting.
exec node --import tsx server/main.ts "$@"
