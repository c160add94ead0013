# Sourced by the launchers: turn "<project> [I|F] [START] [END] [--flags...]" into script_runner.py
# arguments in "$@". Positional values come first; anything starting with "-" passes through as is.
project="$1"
shift
load_type=I
start=""
end=""
if [ $# -gt 0 ] && [ "${1#-}" = "$1" ]; then load_type="$1"; shift; fi
if [ $# -gt 0 ] && [ "${1#-}" = "$1" ]; then start="$1"; shift; fi
if [ $# -gt 0 ] && [ "${1#-}" = "$1" ]; then end="$1"; shift; fi
if [ -n "$end" ]; then set -- --end-date "$end" "$@"; fi
if [ -n "$start" ]; then set -- --start-date "$start" "$@"; fi
set -- --project "$project" --load-type "$load_type" "$@"
