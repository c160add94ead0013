#!/usr/bin/env sh
# sales_demo inside Docker: sales_demo_docker.sh [I|F] [START] [END] [--dry-run|--check]
exec "$(dirname "$0")/_docker.sh" sales_demo "$@"
