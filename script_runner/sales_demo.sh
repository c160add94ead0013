#!/usr/bin/env sh
# sales_demo launcher: sales_demo.sh [I|F] [START] [END] [--dry-run|--check]
exec "$(dirname "$0")/_launch.sh" sales_demo "$@"
