#!/usr/bin/env bash
# STAND-IN base images, for machines WITHOUT access to a container registry (this
# project's CI machines): no image can be pulled there, so the official python, caddy,
# postgres and redis images are replaced by images built from Debian bookworm's own
# packages (debootstrap, then `podman import`). Anywhere a registry is reachable, use
# the official images: the Dockerfile and docker-compose.yml default to them.
#
# Each stand-in keeps only the parts of the official image's interface that the
# Dockerfile and docker-compose.yml use:
#   python    Python 3.11 (`python`, `python -m venv`), groupadd/useradd
#   caddy     Caddy 2.6.2 (Debian's; compose names 2.11), `caddy run` on
#             /etc/caddy/Caddyfile, XDG_DATA_HOME=/data, XDG_CONFIG_HOME=/config, wget
#   postgres  PostgreSQL 15 (compose names 16), POSTGRES_USER/POSTGRES_PASSWORD/
#             POSTGRES_DB on first start, data in /var/lib/postgresql/data, pg_isready
#   redis     Redis 7.0, `redis-server ARGS` as the redis user in /data (the AOF),
#             protected mode off as in the official image, redis-cli
#
# Prints the variables that select them, for the Dockerfile's build argument and
# compose's image variables:
#   PYTHON_IMAGE=localhost/standin-python:3.11-<key>
#   CADDY_IMAGE=...  POSTGRES_IMAGE=...  REDIS_IMAGE=...
# (everything else goes to stderr): `eval "$(docker/local-images.sh)"`.
#
# <key> is a hash of this script (the package lists and the entry scripts are in it)
# and the architecture: an image whose tag carries the current key is reused from
# podman's storage, else loaded from the archive `podman save` left in the cache
# directory (outside the clone, so that every clone on the machine shares it), else
# built and saved there. Images and archives of other keys are removed.
# A Debian package update does not change the key: delete the cache to rebuild.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
# Where crun or podman's default ulimits fail (see the file); an explicit setting wins.
export CONTAINERS_CONF="${CONTAINERS_CONF:-$here/podman/containers.conf}"

suite=bookworm
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
cache=${LOCAL_IMAGES_CACHE:-${XDG_CACHE_HOME:-/var/cache}/cookie-session-backend-images}
key=$({ cat "$0"; uname -m; } | sha256sum | cut -c1-12)

log() { printf 'local-images: %s\n' "$*" >&2; }

rootfs=""
cleanup() {
  if [ -n "$rootfs" ] && [ -d "$rootfs" ]; then
    rm -rf --one-file-system "$rootfs"
  fi
}
trap cleanup EXIT

# ---------------------------------------------------------------- per-image parts

setup_python() {
  :
}

setup_caddy() {
  mkdir -p "$1/config" "$1/data" "$1/srv"
}

setup_postgres() {
  # The cluster Debian's postinst made is not the image's: the entry script makes one
  # in PGDATA on first start, as the official image does.
  rm -rf "$1/var/lib/postgresql/15" "$1/etc/postgresql/15"
  cat >"$1/usr/local/bin/docker-entrypoint.sh" <<'SH'
#!/bin/sh
# Stand-in for the official postgres image's entry point (docker/local-images.sh):
# on first start, a cluster in $PGDATA owned by POSTGRES_USER (password
# POSTGRES_PASSWORD, scram-sha-256 over the network) with the database POSTGRES_DB;
# then the server, as the postgres user, listening on every interface.
set -eu
if [ "$(id -u)" = 0 ]; then
  mkdir -p "$PGDATA" /var/run/postgresql
  chown postgres:postgres "$PGDATA" /var/run/postgresql
  chmod 700 "$PGDATA"
  exec setpriv --reuid=postgres --regid=postgres --init-groups "$0" "$@"
fi
if [ "${1:-}" = postgres ] && [ ! -s "$PGDATA/PG_VERSION" ]; then
  : "${POSTGRES_PASSWORD:?POSTGRES_PASSWORD must be set}"
  user=${POSTGRES_USER:-postgres}
  db=${POSTGRES_DB:-$user}
  pwfile=$(mktemp)
  printf '%s\n' "$POSTGRES_PASSWORD" >"$pwfile"
  initdb -D "$PGDATA" -U "$user" --pwfile="$pwfile" --auth-local=trust \
    --auth-host=scram-sha-256 --encoding=UTF8 --locale=C.UTF-8 >/dev/null
  rm -f "$pwfile"
  printf 'host all all all scram-sha-256\n' >>"$PGDATA/pg_hba.conf"
  printf "listen_addresses = '*'\n" >>"$PGDATA/postgresql.conf"
  if [ "$db" != postgres ]; then
    pg_ctl -D "$PGDATA" -o "-c listen_addresses=''" -w start >/dev/null
    createdb -U "$user" "$db"
    pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null
  fi
  echo "docker-entrypoint.sh: created the cluster in $PGDATA" >&2
fi
exec "$@"
SH
  chmod 755 "$1/usr/local/bin/docker-entrypoint.sh"
}

setup_redis() {
  mkdir -p "$1/data"
  cat >"$1/usr/local/bin/docker-entrypoint.sh" <<'SH'
#!/bin/sh
# Stand-in for the official redis image's entry point (docker/local-images.sh):
# `redis-server ARGS` runs as the redis user in /data (where the AOF goes), with
# protected mode off as the official image builds it (arguments after it may turn it on).
set -eu
if [ "${1:-}" = redis-server ] && [ "$(id -u)" = 0 ]; then
  chown redis:redis .
  shift
  exec setpriv --reuid=redis --regid=redis --init-groups redis-server --protected-mode no "$@"
fi
exec "$@"
SH
  chmod 755 "$1/usr/local/bin/docker-entrypoint.sh"
}

# ---------------------------------------------------------------- build, cache, load

build() {
  local name=$1 ref=$2 packages=$3
  shift 3
  rootfs=$(mktemp -d /var/tmp/standin-rootfs.XXXXXX)
  mkdir -p "$cache/debs"
  log "$ref: debootstrap $suite with $packages"
  debootstrap --variant=minbase --include="$packages" --cache-dir="$cache/debs" \
    "$suite" "$rootfs" "$mirror" >"$rootfs.log" 2>&1 || {
    tail -n 30 "$rootfs.log" >&2
    rm -f "$rootfs.log"
    return 1
  }
  rm -f "$rootfs.log"
  "setup_$name" "$rootfs"
  rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/* "$rootfs"/var/log/* \
    "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/* \
    "$rootfs"/etc/resolv.conf "$rootfs"/etc/hostname
  local changes=()
  for change in "$@"; do changes+=(--change "$change"); done
  tar --numeric-owner -C "$rootfs" -c . |
    podman import --quiet "${changes[@]}" \
      --change 'LABEL org.opencontainers.image.description="STAND-IN built by docker/local-images.sh from Debian packages, for machines without registry access"' \
      - "$ref" >/dev/null
  rm -rf --one-file-system "$rootfs"
  rootfs=""
}

ensure() {
  local var=$1 name=$2 version=$3 packages=$4
  shift 4
  local ref="localhost/standin-$name:$version-$key"
  local archive="$cache/standin-$name-$version-$key.tar"
  local started=$SECONDS
  if podman image exists "$ref"; then
    log "$ref: in podman's storage"
  elif [ -f "$archive" ]; then
    podman load --quiet --input "$archive" >/dev/null
    log "$ref: loaded from $archive ($((SECONDS - started)) s)"
  else
    build "$name" "$ref" "$packages" "$@"
    podman save --quiet --output "$archive.part" "$ref"
    mv "$archive.part" "$archive"
    log "$ref: built and saved to $archive ($((SECONDS - started)) s)"
  fi
  # Earlier keys' images and archives: this script made them, nothing else uses them.
  local old
  for old in $(podman images --format '{{.Repository}}:{{.Tag}}' "localhost/standin-$name"); do
    if [ "$old" != "$ref" ]; then podman rmi --force "$old" >/dev/null; fi
  done
  find "$cache" -maxdepth 1 -name "standin-$name-*.tar" ! -name "${archive##*/}" -delete
  printf '%s=%s\n' "$var" "$ref"
}

mkdir -p "$cache"
ensure PYTHON_IMAGE python 3.11 python3,python3-venv,python-is-python3,passwd,ca-certificates \
  'ENV LANG=C.UTF-8' 'CMD ["python3"]'
ensure CADDY_IMAGE caddy 2.6 caddy,wget,ca-certificates \
  'ENV XDG_CONFIG_HOME=/config' 'ENV XDG_DATA_HOME=/data' 'WORKDIR /srv' 'EXPOSE 80' 'EXPOSE 443' 'EXPOSE 2019' \
  'CMD ["caddy", "run", "--config", "/etc/caddy/Caddyfile", "--adapter", "caddyfile"]'
ensure POSTGRES_IMAGE postgres 15 postgresql-15 \
  'ENV PATH=/usr/lib/postgresql/15/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  'ENV PGDATA=/var/lib/postgresql/data' 'ENV LANG=C.UTF-8' \
  'ENTRYPOINT ["/usr/local/bin/docker-entrypoint.sh"]' 'STOPSIGNAL SIGINT' 'EXPOSE 5432' 'CMD ["postgres"]'
ensure REDIS_IMAGE redis 7 redis-server \
  'WORKDIR /data' 'ENTRYPOINT ["/usr/local/bin/docker-entrypoint.sh"]' 'EXPOSE 6379' 'CMD ["redis-server"]'
