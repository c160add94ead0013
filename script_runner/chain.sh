#!/usr/bin/env sh
# Run projects one after the other: chain.sh PROJECT [PROJECT...], each an incremental run (as PROJECT.sh
# with no argument). Stops at the first run that does not exit 0 and exits with its code (see the README's
# exit codes; 5: an upstream project is not ready).
set -u
here=$(cd "$(dirname "$0")" && pwd)
if [ $# -eq 0 ]; then
    echo "chain: usage: chain.sh PROJECT [PROJECT...] (runs them in order, stops at the first failure)" >&2
    exit 2
fi
for project in "$@"; do
    "$here/_launch.sh" "$project"
    code=$?
    if [ "$code" -ne 0 ]; then
        echo "chain: $project ended with exit code $code; the projects after it did not run" >&2
        exit "$code"
    fi
done
