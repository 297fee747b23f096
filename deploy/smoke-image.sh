#!/usr/bin/env bash
# Builds the runtime stage of deploy/Dockerfile around a `floe` binary built on this
# machine, runs the image with a real Docker engine, and checks it as an operator would:
# the HEALTHCHECK turns healthy, kcat produces and consumes, the data dir volume belongs
# to user 10001, `docker stop` is a clean exit, and a new container on the same volume
# still has the records.
#
# Not part of scripts/test.sh: it needs a running Docker engine (`docker info`). Where
# Docker Hub is unreachable, FLOE_SMOKE_DEBOOTSTRAP=1 makes the `debian:bookworm-slim`
# base image locally with debootstrap (minbase variant, from the Debian mirror).
#
# The build stage is replaced by a copy of the binary; the runtime stage is taken from
# deploy/Dockerfile verbatim. The container uses the host network (the default ports
# 9092, 8181 and 50051 must be free), because the engine may run without a bridge.
#
#   FLOE_BIN=target/release/floe bash deploy/smoke-image.sh
set -euo pipefail
cd "$(dirname "$0")/.."

FLOE_BIN=${FLOE_BIN:-${CARGO_TARGET_DIR:-target}/release/floe}
IMAGE=floe:smoke
NAME=floe-smoke-$$
VOLUME=floe-smoke-data-$$
work=$(mktemp -d /tmp/floe-smoke-image.XXXXXX)
cleanup() {
  docker rm -f "$NAME" >/dev/null 2>&1 || true
  docker volume rm -f "$VOLUME" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

docker info >/dev/null 2>&1 || { echo "no Docker engine answers 'docker info'" >&2; exit 1; }
[ -x "$FLOE_BIN" ] || { echo "no floe binary at $FLOE_BIN" >&2; exit 1; }

release=$(sed -n 's/^ARG DEBIAN_RELEASE=//p' deploy/Dockerfile)
if ! docker image inspect "debian:$release-slim" >/dev/null 2>&1; then
  if [ "${FLOE_SMOKE_DEBOOTSTRAP:-0}" = 1 ]; then
    echo "== debian:$release-slim from debootstrap (minbase)"
    debootstrap --variant=minbase "$release" "$work/rootfs" http://deb.debian.org/debian >/dev/null
    rm -rf "$work/rootfs/var/cache/apt/archives/"*.deb
    tar -C "$work/rootfs" -c . | docker import - "debian:$release-slim" >/dev/null
    rm -rf "$work/rootfs"
  else
    docker pull "debian:$release-slim"
  fi
fi

echo "== image: the Dockerfile's runtime stage around $FLOE_BIN"
mkdir "$work/ctx"
# The release profile strips the binary, as the build stage builds it.
cp "$FLOE_BIN" "$work/ctx/floe"
{
  sed -n '/^ARG /p' deploy/Dockerfile
  echo 'FROM debian:${DEBIAN_RELEASE}-slim AS build'
  echo 'COPY floe /usr/local/bin/floe'
  sed -n '/ AS runtime$/,$p' deploy/Dockerfile
} >"$work/Dockerfile"
docker build --network host -q -t "$IMAGE" -f "$work/Dockerfile" "$work/ctx" >/dev/null

echo "== run, wait for the HEALTHCHECK"
start() {
  docker run -d --name "$NAME" --network host -v "$VOLUME:/var/lib/floe" \
    -e FLOE_KAFKA_ADVERTISED_HOST=127.0.0.1 "$IMAGE" >/dev/null
}
healthy() {
  for _ in $(seq 1 90); do
    status=$(docker inspect -f '{{.State.Health.Status}}' "$NAME")
    [ "$status" = healthy ] && return 0
    [ "$(docker inspect -f '{{.State.Running}}' "$NAME")" = true ] || break
    sleep 1
  done
  docker logs "$NAME" 2>&1 | tail -20
  echo "container is not healthy (status: ${status:-?})" >&2
  exit 1
}
start
healthy
echo "healthy"

echo "== kcat produce and consume"
printf 'k1:hello\nk2:world\n' | kcat -P -b 127.0.0.1:9092 -t smoke -K: -X topic.request.required.acks=-1
got=$(kcat -C -b 127.0.0.1:9092 -t smoke -o beginning -c 2 -e -f '%k=%s\n' -m 30)
[ "$got" = $'k1=hello\nk2=world' ] || { echo "consumed: $got" >&2; exit 1; }
echo "consumed both records"

owner=$(docker exec "$NAME" stat -c %u /var/lib/floe)
[ "$owner" = 10001 ] || { echo "data dir owned by $owner, not 10001" >&2; exit 1; }
user=$(docker exec "$NAME" id -u)
[ "$user" = 10001 ] || { echo "runs as $user, not 10001" >&2; exit 1; }
echo "runs as 10001, data dir owned by 10001"

echo "== docker stop: SIGTERM, clean exit"
docker stop -t 45 "$NAME" >/dev/null
code=$(docker inspect -f '{{.State.ExitCode}}' "$NAME")
[ "$code" = 0 ] || { docker logs "$NAME" 2>&1 | tail -20; echo "exit code $code" >&2; exit 1; }
echo "exit code 0"
docker rm "$NAME" >/dev/null

echo "== a new container on the same volume keeps the records"
start
healthy
got=$(kcat -C -b 127.0.0.1:9092 -t smoke -o beginning -c 2 -e -f '%k=%s\n' -m 30)
[ "$got" = $'k1=hello\nk2=world' ] || { echo "after restart: $got" >&2; exit 1; }
echo "both records still there"
echo "image smoke test passed"
