#!/usr/bin/env sh
# Shared body of the per-project launchers: ensure .venv, then run script_runner.py; its exit code
# (0 ok, 1 task failed, 2 bad arguments/config, 3 locked, 4 quality check failed, 5 upstream not ready)
# is passed on.
# Usage: _launch.sh <project> [I|F] [START] [END] [--dry-run | --check | other script_runner.py flags]
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
python=$("$here/_venv.sh" requirements.txt)
. "$here/_args.sh"
exec "$python" "$root/script_runner.py" "$@"
