#!/usr/bin/env sh
# The test command (README and .ci/run): make sure .venv holds requirements-dev.txt, then run pytest
# against the real PostgreSQL and MariaDB on 127.0.0.1. Extra arguments go to pytest.
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
python=$("$root/script_runner/_venv.sh" requirements-dev.txt)
cd "$root"
exec "$python" -m pytest "$@"
