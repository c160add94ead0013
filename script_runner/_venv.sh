#!/usr/bin/env sh
# Make sure .venv exists and holds the packages of a requirements file; print its python's path.
# Usage: _venv.sh <requirements file, relative to the repository root>
# The venv is (re)built when the requirements file changes (a sha256 stamp per file).
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
requirements="$root/$1"
venv="$root/.venv"
stamp="$venv/.$(basename "$1").sha256"

find_python() {
    for candidate in python3.11 python3.12 python3.13 python3 python; do
        if command -v "$candidate" >/dev/null 2>&1 &&
            "$candidate" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' 2>/dev/null; then
            echo "$candidate"
            return 0
        fi
    done
    echo "script_runner: Python 3.11 or newer was not found on PATH; install it (python.org or your package manager)" >&2
    return 1
}

# The stamp covers the file and the requirements files it includes with "-r".
digest() {
    "$1" -c '
import hashlib, pathlib, sys
def lines(path):
    text = path.read_bytes()
    yield text
    for line in text.decode().splitlines():
        if line.strip().startswith("-r "):
            yield from lines(path.parent / line.split(None, 1)[1].strip())
print(hashlib.sha256(b"".join(lines(pathlib.Path(sys.argv[1])))).hexdigest())' "$2"
}

lock="$root/.venv.lock"
if [ ! -x "$venv/bin/python" ] || [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$(digest "$venv/bin/python" "$requirements")" ]; then
    # One installer at a time: a second launcher started meanwhile waits here.
    while ! mkdir "$lock" 2>/dev/null; do sleep 1; done
    trap 'rmdir "$lock" 2>/dev/null || true' EXIT INT TERM
    if [ ! -x "$venv/bin/python" ]; then
        python=$(find_python)
        echo "script_runner: first use: creating .venv with $python (this takes a minute)" >&2
        "$python" -m venv "$venv"
    fi
    if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$(digest "$venv/bin/python" "$requirements")" ]; then
        echo "script_runner: installing $1 into .venv" >&2
        if ! "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$requirements" >&2; then
            echo "script_runner: pip could not install $1 (see above); fix the network or the file and run again" >&2
            exit 2
        fi
        digest "$venv/bin/python" "$requirements" > "$stamp"
    fi
    rmdir "$lock" 2>/dev/null || true
    trap - EXIT INT TERM
fi
echo "$venv/bin/python"
