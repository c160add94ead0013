#!/usr/bin/env sh
# Shared body of the <project>_docker.sh launchers: the same run inside the runner's Docker image.
# Build the image once: docker build -f docker/Dockerfile -t etl-runner .
# Usage: _docker.sh <project> [I|F] [START] [END] [--flags]; ETL_DOCKER_IMAGE overrides the image.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
. "$here/_args.sh"
image="${ETL_DOCKER_IMAGE:-etl-runner:latest}"
if [ -f "$root/.env" ]; then
    exec docker run --rm --network host --env-file "$root/.env" -v "$root/metadata:/app/metadata" "$image" "$@"
fi
exec docker run --rm --network host -v "$root/metadata:/app/metadata" "$image" "$@"
