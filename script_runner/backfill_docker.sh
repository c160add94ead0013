#!/usr/bin/env sh
# Resumable backfill inside Docker: backfill_docker.sh PROJECT START END [LOAD_DAYS] [--redo-failed | --restart]
set -eu
here=$(cd "$(dirname "$0")" && pwd)
if [ $# -lt 3 ]; then
    echo "backfill: usage: backfill_docker.sh PROJECT START END [LOAD_DAYS] [--redo-failed | --restart]" >&2
    exit 2
fi
project=$1 start=$2 end=$3
shift 3
days=1
if [ $# -gt 0 ] && [ "${1#-}" = "$1" ]; then days=$1; shift; fi
exec "$here/_docker.sh" "$project" --backfill --start-date "$start" --end-date "$end" --load-days "$days" "$@"
