#!/usr/bin/env sh
# Resumable backfill: backfill.sh PROJECT START END [LOAD_DAYS] [--load-type F] [--redo-failed | --restart] [--env NAME]
# START..END is loaded in windows of LOAD_DAYS days (default 1), one run each, recorded in etl_backfill_chunks;
# the same command again resumes at the first window that did not succeed. The exit code is script_runner.py's.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
if [ $# -lt 3 ]; then
    echo "backfill: usage: backfill.sh PROJECT START END [LOAD_DAYS] [--redo-failed | --restart] (e.g. backfill.sh sales_demo 2024-01-01 2024-12-31 7)" >&2
    exit 2
fi
project=$1 start=$2 end=$3
shift 3
days=1
if [ $# -gt 0 ] && [ "${1#-}" = "$1" ]; then days=$1; shift; fi
exec "$here/_launch.sh" "$project" --backfill --start-date "$start" --end-date "$end" --load-days "$days" "$@"
