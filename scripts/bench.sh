#!/usr/bin/env bash
# Floe benchmark suite: builds release binaries, starts `floe serve` on a free
# 127.0.0.1 port in a temporary data dir (fsync every 50 ms), runs floe-loadgen and
# prints a markdown table. Takes about 3 minutes plus the build. The brokers run with
# their defaults otherwise, so the lake (landing into Iceberg) is on.
#
#   scripts/bench.sh                 # full run
#   BENCH_DURATION=10s scripts/bench.sh
#
# Environment:
#   CARGO_TARGET_DIR   build directory [default: $HOME/.cache/floe-target]
#   BENCH_SKIP_BUILD=1 use the binaries already in $CARGO_TARGET_DIR/release
#   BENCH_DIR          parent of the work dir; the data dir and the disk test live on
#                      this filesystem [default: ${TMPDIR:-/tmp}]
#   BENCH_DURATION     measured time of each produce run [default: 20s]
#   BENCH_WARMUP       warm-up before each produce run [default: 3s]
#   BENCH_DD_MB        size of the disk write test in MiB [default: 2048]
#   BENCH_WAIT_IDLE=N  first wait up to N seconds for other processes to stop using CPU
#   BENCH_SERVE_ARGS   extra flags for every `floe serve` (the lake is on by default;
#                      "--lake-enabled false" measures the plain Kafka broker)
#
# Results: the work dir keeps results.jsonl (one JSON line per run), table.md and the
# broker/client logs; broker data dirs are deleted.

set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/floe-target}
BIN=$CARGO_TARGET_DIR/release
DURATION=${BENCH_DURATION:-20s}
WARMUP=${BENCH_WARMUP:-3s}
DD_MB=${BENCH_DD_MB:-2048}
PARENT=${BENCH_DIR:-${TMPDIR:-/tmp}}
# Extra `floe serve` flags for every broker, e.g. BENCH_SERVE_ARGS="--lake-enabled false".
read -r -a SERVE_ARGS <<<"${BENCH_SERVE_ARGS:-}"
# A broker with the lake on lands what its tails hold when it stops.
STOP_TIMEOUT=${STOP_TIMEOUT:-60}

# free_port, start_broker, stop_broker, run_json, wait_idle, CPU counters, log, die.
# shellcheck source=scripts/bench-lib.sh
source "$ROOT/scripts/bench-lib.sh"

# ---------------------------------------------------------------- build
if [[ ${BENCH_SKIP_BUILD:-0} != 1 ]]; then
    log "building release binaries (floe-cli, floe-bench) in $CARGO_TARGET_DIR"
    (cd "$ROOT" && cargo build --release -p floe-bench -p floe-cli)
fi
[[ -x $BIN/floe && -x $BIN/floe-loadgen ]] || die "binaries missing in $BIN"

WORK=$(mktemp -d "$PARENT/floe-bench.XXXXXX")
RESULTS=$WORK/results.jsonl
: >"$RESULTS"
log "work dir: $WORK"

# ---------------------------------------------------------------- helpers
cleanup() {
    stop_all_brokers
    rm -rf "$WORK/data" "$WORK/data-p1" "$WORK/data-rss" "$WORK/ddtest"
}
trap cleanup EXIT

# loadgen NAME ARGS...: floe-loadgen through run_json (JSON line with CPU figures).
loadgen() {
    local name=$1
    shift
    run_json "$name" "$WORK/loadgen.log" "$BIN/floe-loadgen" "$@"
}

# ---------------------------------------------------------------- machine
log "machine: $(machine_summary)"

command -v jq >/dev/null || die "jq is required"
# With BENCH_WAIT_IDLE=SECONDS, wait (at most that long) for the machine to go quiet.
wait_idle "${BENCH_WAIT_IDLE:-0}"

# ---------------------------------------------------------------- brokers
# Each max-rate produce run gets a fresh broker and data dir, and the previous run's data
# is deleted first, so that both start from the same page-cache state (on a VM, how fast
# the kernel can find memory for new page-cache pages dominates sustained write speed).
COMMON=(--message-size 1024 --acks all --duration "$DURATION" --warmup "$WARMUP" --progress 5s)

PORT=$(free_port)
start_broker p1 "$WORK/data-p1" "$PORT" "${SERVE_ARGS[@]}"
log "(1) produce 1 KiB, acks=all, max rate, 1 partition"
R1=$(loadgen produce-1p produce --brokers "127.0.0.1:$PORT" "${COMMON[@]}" --topic bench-p1 \
    --partitions 1 --rate max)
stop_broker "$BROKER_PID"
rm -rf "$WORK/data-p1"

PORT=$(free_port)
BROKERS=127.0.0.1:$PORT
start_broker main "$WORK/data" "$PORT" "${SERVE_ARGS[@]}"
MAIN_PID=$BROKER_PID
log "(2) produce 1 KiB, acks=all, max rate, 8 partitions"
R2=$(loadgen produce-8p produce --brokers "$BROKERS" "${COMMON[@]}" --topic bench-p8 \
    --partitions 8 --rate max)
log "(3) consume bench-p8 from offset 0 to its end"
R3=$(loadgen consume-8p consume --brokers "$BROKERS" --topic bench-p8 --to-end --duration 120s)
log "(4) produce at a fixed 5000 msg/s (linger.ms=0), 1 partition: ack latency"
R4=$(loadgen produce-5k produce --brokers "$BROKERS" "${COMMON[@]}" --topic bench-lat \
    --partitions 1 --rate 5000 --linger-ms 0)
RSS_MAIN_KB=$(rss_kb "$MAIN_PID")
stop_broker "$MAIN_PID"
rm -rf "$WORK/data"

log "(5) idle RSS of a fresh broker with a 100-partition topic"
PORT2=$(free_port)
start_broker rss "$WORK/data-rss" "$PORT2" "${SERVE_ARGS[@]}"
RSS_PID=$BROKER_PID
RSS_START_KB=$(rss_kb "$RSS_PID")
R5=$(loadgen produce-100p produce --brokers "127.0.0.1:$PORT2" --topic bench-p100 --partitions 100 \
    --message-size 1024 --acks all --rate 1000 --duration 2s --warmup 0s --linger-ms 5)
sleep 10
RSS_IDLE_KB=$(rss_kb "$RSS_PID")
stop_broker "$RSS_PID"
echo "{\"run\":\"rss\",\"rss_fresh_kb\":$RSS_START_KB,\"rss_idle_100p_kb\":$RSS_IDLE_KB,\"rss_main_after_runs_kb\":$RSS_MAIN_KB}" >>"$RESULTS"

log "(6) sequential disk write speed on the data dir's filesystem (${DD_MB} MiB)"
dd_rate() { # prints MB/s (10^6) from dd's summary line, 0 when dd fails
    local out
    if ! out=$(LC_ALL=C dd if=/dev/zero of="$WORK/ddtest" bs=1M count="$DD_MB" "$@" 2>&1); then
        log "dd $* failed: $(tail -1 <<<"$out")"
        out=""
    fi
    rm -f "$WORK/ddtest"
    awk '/copied/ { for (i = 1; i <= NF; i++) if ($i == "s,") secs = $(i - 1) }
         END { if (secs > 0) printf "%.0f", bytes / secs / 1e6; else print 0 }
         /copied/ { bytes = $1 }' <<<"$out"
}
DD_DIRECT=$(dd_rate oflag=direct)
DD_SYNC=$(dd_rate conv=fdatasync)
echo "{\"run\":\"disk\",\"dd_direct_mb_per_sec\":$DD_DIRECT,\"dd_fdatasync_mb_per_sec\":$DD_SYNC}" >>"$RESULTS"

# ---------------------------------------------------------------- table
g() { json_get "$1" "$2"; }
r0() { awk -v x="$1" 'BEGIN { if (x == "" || x == "?") print "?"; else printf "%.0f", x }'; }
r1() { awk -v x="$1" 'BEGIN { if (x == "" || x == "?") print "?"; else printf "%.1f", x }'; }
ms() { awk -v x="$1" 'BEGIN { if (x == "" || x == "?") print "?"; else printf "%.2f ms", x / 1000 }'; }
pct() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.0f%%", a / b * 100; else print "?" }'; }
ok() { if awk "BEGIN { exit !($1) }"; then echo "met"; else echo "**not met**"; fi; }
P1=$(g "$R1" mb_per_sec) P2=$(g "$R2" mb_per_sec) C3=$(g "$R3" mb_per_sec)
L4=$(g "$R4" p99_us)
RSS_MB=$(awk -v k="$RSS_IDLE_KB" 'BEGIN { printf "%.1f", k / 1024 }')
cpus() { echo "$(g "$1" broker_cpu_pct)% / $(r0 "$(g "$1" client_cpu_pct)")% / $(g "$1" other_cpu_pct)%"; }
produce_row() { # N LABEL JSON MB
    echo "| $1 | $2 | **$(r1 "$4") MB/s** ($(r0 "$(g "$3" msgs_per_sec)") msg/s; 2nd half $(r1 "$(g "$3" second_half_mb_per_sec)") MB/s; p99 ack $(ms "$(g "$3" p99_us)")) | ≥ 200 MB/s | $(ok "$4 >= 200") | $(cpus "$3") |"
}
{
    echo "| # | Test | Result | Target | Status | CPU broker / client / other |"
    echo "|---|------|--------|--------|--------|-----------------------------|"
    produce_row 1 "produce 1 KiB, acks=all, max rate, 1 partition" "$R1" "$P1"
    produce_row 2 "produce 1 KiB, acks=all, max rate, 8 partitions" "$R2" "$P2"
    echo "| 3 | consume 8 partitions from offset 0 ($(g "$R3" messages) msgs) | **$(r1 "$C3") MB/s** ($(r0 "$(g "$R3" msgs_per_sec)") msg/s) | ≥ 400 MB/s | $(ok "$C3 >= 400") | $(cpus "$R3") |"
    echo "| 4 | produce 1 KiB at 5,000 msg/s, linger.ms=0, 1 partition | **p99 $(ms "$L4")** (p50 $(ms "$(g "$R4" p50_us)"), p99.9 $(ms "$(g "$R4" p999_us)"), max $(ms "$(g "$R4" max_us)"); rate achieved: $(g "$R4" rate_achieved)) | p99 ≤ 5 ms | $(ok "$L4 <= 5000 && \"$(g "$R4" rate_achieved)\" == \"true\"") | $(cpus "$R4") |"
    echo "| 5 | broker RSS, idle, 100-partition topic (fresh broker) | **$RSS_MB MiB** (fresh broker $(r1 "$(awk -v k="$RSS_START_KB" 'BEGIN{print k/1024}')") MiB; main broker after runs 2-4: $(r1 "$(awk -v k="$RSS_MAIN_KB" 'BEGIN{print k/1024}')") MiB) | < 150 MB | $(ok "$RSS_IDLE_KB < 150 * 1024") | |"
    echo "| 6 | disk sequential write, dd bs=1M ${DD_MB} MiB | O_DIRECT **$DD_DIRECT MB/s**; buffered + fdatasync **$DD_SYNC MB/s** | — | — | |"
    echo "| | produce ÷ disk write (1 p / 8 p) | vs O_DIRECT $(pct "$P1" "$DD_DIRECT") / $(pct "$P2" "$DD_DIRECT"); vs buffered+fdatasync $(pct "$P1" "$DD_SYNC") / $(pct "$P2" "$DD_SYNC") | | | |"
} | tee "$WORK/table.md"
echo
echo "MB = 10^6 bytes. CPU = percent of one core over the run (machine has $(nproc) cores);"
echo "other = everything else on the machine (kernel writeback, other users); before the run: ${IDLE_LOAD}%."
echo "Per-5s produce throughput is in $WORK/loadgen.log."
echo "Results: $RESULTS; logs: $WORK"
