#!/usr/bin/env sh
# Shared body of the <project>_docker.sh launchers: the same run inside the runner's Docker image.
# Build the image once (README, "Docker"):
#   docker build -f docker/Dockerfile --build-arg GIT_COMMIT="$(git rev-parse HEAD)" -t etl-runner .
# Usage: _docker.sh <project> [I|F] [START] [END] [--flags]; ETL_DOCKER_IMAGE overrides the image.
# The container runs as the caller's uid:gid on the host's network (a database on 127.0.0.1 answers),
# with metadata/ mounted read-write and customer_code/, warehouse/, aggregations/ and the .env files
# read-only, so the runner reads them as it does natively (--env NAME works, a SQL change needs no
# rebuild). Every ETL_* variable of the caller goes in too, except ETL_HOME (the image's is /app).
# Exit codes are the runner's; 2 also when Docker or the image is missing or metadata/ is not writable.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
. "$here/_args.sh"
image="${ETL_DOCKER_IMAGE:-etl-runner:latest}"

fail() {
    echo "script_runner: $*" >&2
    exit 2
}

command -v docker >/dev/null 2>&1 \
    || fail "docker was not found on PATH; install Docker Engine or Docker Desktop, or run script_runner/$project.sh"
# "image inspect" first: "docker run" would try to pull a missing image from a registry.
if ! docker image inspect "$image" >/dev/null 2>&1; then
    docker version --format '{{.Server.Version}}' >/dev/null 2>&1 \
        || fail "the Docker engine does not answer (is the Docker daemon or Docker Desktop running? see: docker info)"
    fail "Docker image $image not found; build it in $root: docker build -f docker/Dockerfile -t $image ."
fi

# The runner writes logs, outputs, locks and the SQLite warehouse under metadata/ as the caller.
uid=$(id -u)
gid=$(id -g)
mkdir -p "$root/metadata" 2>/dev/null || true
for path in "$root/metadata" "$root/metadata/logs" "$root/metadata/logs/$project" "$root/metadata/output" \
    "$root/metadata/output/$project" "$root/metadata/locks" "$root/metadata/locks/$project.lock" \
    "$root/metadata/warehouse.db"; do
    if [ -e "$path" ] && [ ! -w "$path" ]; then
        fail "$path is not writable by uid $uid, who runs the container; fix it with: sudo chown -R $uid:$gid $root/metadata"
    fi
done

# docker run's options go in front of the runner's arguments, which are in "$@" already.
set -- "$image" "$@"
for name in $(env | sed -n 's/^\(ETL_[A-Za-z0-9_]*\)=.*/\1/p'); do
    case "$name" in
    ETL_HOME | ETL_DOCKER_IMAGE) ;;
    *) set -- --env "$name" "$@" ;; # the name only: docker reads the value, so ps does not show it
    esac
done
if [ -n "${TZ:-}" ]; then
    set -- --env TZ "$@"
elif [ -f /etc/localtime ]; then
    set -- -v /etc/localtime:/etc/localtime:ro "$@"
fi
for file in "$root"/.env "$root"/.env.*; do
    if [ -f "$file" ]; then set -- -v "$file:/app/${file##*/}:ro" "$@"; fi
done
for folder in customer_code warehouse aggregations; do
    set -- -v "$root/$folder:/app/$folder:ro" "$@"
done
exec docker run --rm --network host --user "$uid:$gid" --env HOME=/tmp -v "$root/metadata:/app/metadata" "$@"
