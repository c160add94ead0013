#!/usr/bin/env bash
# A Docker engine for the docker-marked tests (tests/integration/test_docker_launchers.py), as
# ../shared/notes/containers.md found it works on this kind of machine: Debian's docker.io daemon
# with its own data root, no bridge and no iptables rules, and a python:3.11-slim base image made
# locally by debootstrap + docker import (no registry is reachable here, and none is needed).
#
#   .ci/docker_engine.sh install   apt-get install docker.io debootstrap, unless dockerd is there
#   .ci/docker_engine.sh start     start dockerd unless one answers; prints DOCKER_HOST=<socket>, and
#                                  ETL_CI_DOCKERD_STARTED=1 when it started one (to stop it at the end)
#   .ci/docker_engine.sh base      make the base image unless the engine has it (cached, see below)
#   .ci/docker_engine.sh stop      stop the dockerd that "start" started (nothing else)
#
# Everything lives under $ETL_CI_DOCKER_DIR (default /var/tmp/etl-docker), which is kept between
# runs: the daemon's data root holds the base image and the build cache (the pip layer of the
# image), and python311-rootfs.tar.gz lets a wiped data root get the base image back in seconds.
set -euo pipefail

dir="${ETL_CI_DOCKER_DIR:-/var/tmp/etl-docker}"
sock="unix://$dir/run/docker.sock"
pidfile="$dir/run/dockerd.pid"
base_image="python:3.11-slim"
as_root=""
[ "$(id -u)" -eq 0 ] || as_root="sudo"

say() { echo "ci: $*" >&2; }
die() { echo "ci: FATAL: $*" >&2; exit 1; }

install() {
    command -v dockerd >/dev/null 2>&1 && command -v debootstrap >/dev/null 2>&1 && return 0
    say "installing docker.io and debootstrap for the Docker tests"
    $as_root apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $as_root apt-get install -y -qq --no-install-recommends docker.io debootstrap >/dev/null
    command -v dockerd >/dev/null 2>&1 || die "dockerd is missing after apt-get install docker.io"
}

start() {
    if [ -n "${DOCKER_HOST:-}" ] && docker info >/dev/null 2>&1; then
        say "using the Docker engine at $DOCKER_HOST"
        echo "DOCKER_HOST=$DOCKER_HOST"
        return 0
    fi
    local started=0
    if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
        say "dockerd (pid $(cat "$pidfile")) already runs at $sock"
    else
        started=1
        $as_root mkdir -p "$dir/docker" "$dir/run"
        say "starting dockerd at $sock (log: $dir/dockerd.log)"
        # shellcheck disable=SC2024  # the log belongs to the caller
        $as_root dockerd --data-root "$dir/docker" --exec-root "$dir/run/exec" --pidfile "$pidfile" \
            -H "$sock" --storage-driver=overlay2 --iptables=false --ip-masq=false --bridge=none \
            >"$dir/dockerd.log" 2>&1 &
    fi
    for _ in $(seq 1 60); do
        if DOCKER_HOST="$sock" docker info >/dev/null 2>&1; then
            echo "DOCKER_HOST=$sock"
            [ "$started" = 0 ] || echo "ETL_CI_DOCKERD_STARTED=1"
            return 0
        fi
        sleep 1
    done
    tail -5 "$dir/dockerd.log" >&2 || true
    die "dockerd did not answer at $sock within 60 s (see $dir/dockerd.log)"
}

base() {
    export DOCKER_HOST="${DOCKER_HOST:-$sock}"
    if docker image inspect "$base_image" >/dev/null 2>&1; then
        say "base image $base_image is there (cached)"
        return 0
    fi
    local tarball="$dir/python311-rootfs.tar.gz"
    if [ ! -s "$tarball" ]; then
        local rootfs="$dir/rootfs" mirror
        # The mirror apt already uses on this machine (the URIs: line of its sources).
        mirror=$(grep -h -m1 '^URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '{print $2}' | head -1)
        [ -n "$mirror" ] || mirror=$(awk '$1 == "deb" {print $2; exit}' /etc/apt/sources.list 2>/dev/null)
        [ -n "$mirror" ] || die "no apt mirror found in /etc/apt/sources.list.d/*.sources or /etc/apt/sources.list"
        say "building the base image's root file system with debootstrap (about a minute)"
        $as_root rm -rf "$rootfs"
        $as_root debootstrap --variant=minbase --include=python3,python3-pip,python3-venv,ca-certificates \
            bookworm "$rootfs" "$mirror" >"$dir/debootstrap.log" 2>&1 \
            || { tail -5 "$dir/debootstrap.log" >&2; die "debootstrap failed (see $dir/debootstrap.log)"; }
        # The machine's extra CA certificates: HTTPS (pip, apt) inside the image needs them here.
        if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
            $as_root cp /usr/local/share/ca-certificates/*.crt "$rootfs/usr/local/share/ca-certificates/"
            $as_root chroot "$rootfs" update-ca-certificates >/dev/null
        fi
        # As in the official image: pip installs system-wide, and "python" and "pip" exist.
        $as_root rm -f "$rootfs/usr/lib/python3.11/EXTERNALLY-MANAGED"
        $as_root ln -sf python3 "$rootfs/usr/bin/python"
        $as_root ln -sf pip3 "$rootfs/usr/bin/pip"
        $as_root chroot "$rootfs" apt-get clean
        $as_root rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin
        $as_root sh -c ": > '$rootfs/etc/resolv.conf'"
        $as_root tar --numeric-owner -C "$rootfs" -c . | gzip -1 >"$tarball.part"
        mv "$tarball.part" "$tarball"
        $as_root rm -rf "$rootfs"
    fi
    say "importing $tarball as $base_image"
    docker import -c 'ENV LANG=C.UTF-8' -c 'CMD ["python3"]' "$tarball" "$base_image" >/dev/null
}

stop() {
    [ -f "$pidfile" ] || return 0
    local pid
    pid=$(cat "$pidfile")
    if kill -0 "$pid" 2>/dev/null; then
        say "stopping dockerd (pid $pid)"
        $as_root kill -TERM "$pid"
        for _ in $(seq 1 30); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
    fi
    # left mounted, it would make a later "rm -rf" of the folder fail with "busy"
    $as_root umount "$dir/run/exec/netns/default" 2>/dev/null || true
}

case "${1:-}" in
install | start | base | stop) "$1" ;;
*) die "usage: $0 install|start|base|stop" ;;
esac
