#!/usr/bin/env bash
# Runs librdkafka's own integration tests against a Floe broker.
#
#   scripts/librdkafka-tests.sh [TESTS...]        # e.g. 0081 0102 0113 (default: those
#                                                 # this project checks by hand)
#   GROUP_PROTOCOL=consumer scripts/librdkafka-tests.sh 0102 0113
#   LIBRDKAFKA_LOGS=/tmp/rdk-logs scripts/librdkafka-tests.sh ...   # keep each test's log
#
# The sources are the ones the rdkafka-sys crate vendors (the librdkafka the Rust tests
# link), so nothing is downloaded beyond crates.io. They are built once under
# $LIBRDKAFKA_BUILD (default ~/.cache/floe-librdkafka). The broker is a debug `floe serve`
# with --default-partitions 4, as librdkafka's test cluster auto-creates topics with four
# partitions, on ports chosen free at run time, stopped at exit. Not part of
# scripts/test.sh: the whole core tier takes about an hour. KAFKA_PATH points at
# scripts/kafka-cli, a stand-in for Kafka's kafka-topics.sh (Kafka's distribution cannot
# be downloaded here); it needs confluent-kafka, which scripts/test.sh installs.
set -euo pipefail
cd "$(dirname "$0")/.."
log() { echo "librdkafka-tests.sh: $*" >&2; }

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/floe-target}"
build="${LIBRDKAFKA_BUILD:-$HOME/.cache/floe-librdkafka}"
tests=("$@")
[[ ${#tests[@]} -gt 0 ]] || tests=(0081 0089 0102 0113)

cargo fetch --quiet
src=$(ls -d "$HOME"/.cargo/registry/src/*/rdkafka-sys-*/librdkafka 2>/dev/null | sort -V | tail -1)
[[ -n "$src" ]] || { log "rdkafka-sys sources not found after cargo fetch"; exit 1; }
if [[ ! -x "$build/tests/test-runner" ]]; then
    log "building librdkafka and its tests from $src into $build"
    if ! command -v g++ >/dev/null; then
        as_root() { if [[ $(id -u) == 0 ]]; then "$@"; else sudo "$@"; fi; }
        as_root apt-get update -q && as_root apt-get install -y -q build-essential
    fi
    rm -rf "$build" && mkdir -p "$(dirname "$build")" && cp -r "$src" "$build"
    (cd "$build" && ./configure --disable-sasl --disable-ssl --disable-gssapi --disable-curl \
        --disable-zstd --disable-lz4-ext >/dev/null &&
        make -j2 -C src >/dev/null && make -j2 -C src-cpp >/dev/null && make -j2 -C tests build >/dev/null)
fi

cargo build --quiet -p floe-cli
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
data=$(mktemp -d)
kafka=$(free_port)
"$CARGO_TARGET_DIR/debug/floe" serve --data-dir "$data/data" \
    --kafka-listen "127.0.0.1:$kafka" --http-listen "127.0.0.1:$(free_port)" \
    --flight-listen "127.0.0.1:$(free_port)" --registry-listen "127.0.0.1:$(free_port)" \
    --default-partitions 4 >"$data/floe.log" 2>&1 &
floe=$!
logs="${LIBRDKAFKA_LOGS:-$data}"
mkdir -p "$logs"
trap 'kill $floe 2>/dev/null; wait $floe 2>/dev/null; [[ $logs == "$data" ]] || cp "$data/floe.log" "$logs/"; rm -rf "$data"' EXIT
for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$kafka") 2>/dev/null && break
    sleep 0.1
done

# Tests that call Kafka's bin/kafka-topics.sh (0052, 0077) get the stand-in in
# scripts/kafka-cli, which sends the same admin requests through confluent-kafka.
export KAFKA_PATH="$PWD/scripts/kafka-cli" BROKERS="127.0.0.1:$kafka"
cd "$build/tests"
# Each run's own config file, so that two runs at once each talk to their own broker.
echo "bootstrap.servers=127.0.0.1:$kafka" >"$data/test.conf"
export RDKAFKA_TEST_CONF="$data/test.conf"
export LD_LIBRARY_PATH="$build/src:$build/src-cpp" TEST_KAFKA_VERSION=4.0.0
[[ -z "${GROUP_PROTOCOL:-}" ]] || export TEST_CONSUMER_GROUP_PROTOCOL="$GROUP_PROTOCOL"
failed=0
for t in "${tests[@]}"; do
    if TESTS="$t" ./test-runner -L >"$logs/$t.log" 2>&1; then
        log "$t passed"
    else
        failed=1
        log "$t FAILED:"
        grep -aE "failed at|Test assertion|Expect" "$logs/$t.log" | head -5 >&2 || true
    fi
done
exit $failed
