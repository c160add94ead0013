#!/usr/bin/env bash
# The benchmark's one command. Creates bench/.venv from requirements.txt + bench/requirements.txt on
# first use (and again when either file changes), then runs bench/run_bench.py with the arguments.
#   bench/run.sh --sf 1 --runs 5        (bench/run.sh --help for the options)
set -euo pipefail
BENCH="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(dirname "$BENCH")"
VENV="$BENCH/.venv"
PY="${PYTHON:-$(command -v python3.11 || command -v python3)}"
"$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { echo "bench/run.sh: needs Python 3.11+ (set PYTHON=...)" >&2; exit 2; }
WANT="$(cat "$ROOT/requirements.txt" "$BENCH/requirements.txt" | sha256sum | cut -d' ' -f1)"
if [ ! -x "$VENV/bin/python" ] || [ "$(cat "$VENV/.requirements.sha256" 2>/dev/null)" != "$WANT" ]; then
  echo "bench/run.sh: installing the benchmark's own environment in bench/.venv ..." >&2
  "$PY" -m venv "$VENV"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
    -r "$ROOT/requirements.txt" -r "$BENCH/requirements.txt"
  echo "$WANT" > "$VENV/.requirements.sha256"
fi
export BENCH_LAUNCHER="bench/run.sh"
cd "$ROOT"
exec "$VENV/bin/python" "$BENCH/run_bench.py" "$@"
