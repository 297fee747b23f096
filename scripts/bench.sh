#!/usr/bin/env bash
# Floe benchmark suite: builds release binaries, starts `floe serve` on a free
# 127.0.0.1 port in a temporary data dir (fsync every 50 ms), runs floe-loadgen and
# prints a markdown table. Takes about 3 minutes plus the build.
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
CLK_TCK=$(getconf CLK_TCK)

log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

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
free_port() {
    if command -v python3 >/dev/null 2>&1; then
        python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
        return
    fi
    local p
    for _ in $(seq 1 100); do
        p=$((20000 + RANDOM % 40000))
        if ! ss -Htln "sport = :$p" 2>/dev/null | grep -q .; then
            echo "$p"
            return
        fi
    done
    die "no free port found"
}

BROKER_PIDS=()
# start_broker NAME DATA_DIR PORT: starts floe serve in the background; sets BROKER_PID.
start_broker() {
    local name=$1 dir=$2 port=$3
    mkdir -p "$dir"
    FLOE_LOG=warn "$BIN/floe" serve --data-dir "$dir" --kafka-listen "127.0.0.1:$port" \
        --fsync 50ms >"$WORK/$name.log" 2>&1 &
    BROKER_PID=$!
    BROKER_PIDS+=("$BROKER_PID")
    local deadline=$((SECONDS + 20))
    until (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do
        kill -0 "$BROKER_PID" 2>/dev/null || die "broker $name exited: $(tail -5 "$WORK/$name.log")"
        ((SECONDS < deadline)) || die "broker $name not listening on $port after 20s"
        sleep 0.1
    done
    log "broker $name pid $BROKER_PID listening on 127.0.0.1:$port (data $dir)"
}

# stop_broker PID: SIGTERM, wait up to 20 s, then SIGKILL. Only PIDs this script started
# and has not stopped yet are signalled.
stop_broker() {
    local pid=$1 p keep=()
    for p in "${BROKER_PIDS[@]}"; do [[ $p == "$pid" ]] || keep+=("$p"); done
    ((${#keep[@]} < ${#BROKER_PIDS[@]})) || return 0
    BROKER_PIDS=("${keep[@]}")
    kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM "$pid"
    local deadline=$((SECONDS + 20))
    while kill -0 "$pid" 2>/dev/null; do
        if ((SECONDS >= deadline)); then
            log "broker $pid did not stop within 20s of SIGTERM; sending SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
            break
        fi
        sleep 0.1
    done
    wait "$pid" 2>/dev/null || true
}

cleanup() {
    local pid
    for pid in "${BROKER_PIDS[@]}"; do stop_broker "$pid"; done
    BROKER_PIDS=()
    rm -rf "$WORK/data" "$WORK/data-p1" "$WORK/data-rss" "$WORK/ddtest"
}
trap cleanup EXIT

# CPU ticks (user + system) used so far by a process.
cpu_ticks() { awk '{ sub(/.*\) /, ""); print $12 + $13 }' "/proc/$1/stat"; }
# Busy and total jiffies of the whole machine (all cores), from /proc/stat.
machine_ticks() { awk '/^cpu / { t = 0; for (i = 2; i <= NF; i++) t += $i; print t - $5 - $6, t; exit }' /proc/stat; }
# machine_busy_pct B0 T0 B1 T1: busy time of all cores as percent of one core.
machine_busy_pct() { awk -v b0="$1" -v t0="$2" -v b1="$3" -v t1="$4" -v n="$(nproc)" \
    'BEGIN { if (t1 > t0) printf "%.0f", (b1 - b0) / (t1 - t0) * n * 100; else print 0 }'; }
rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }
# json_get FILE_OR_LINE KEY: a scalar field of a flat JSON line.
json_get() { jq -r ".$2 // empty" <<<"$1" 2>/dev/null || echo "?"; }

# loadgen NAME ARGS...: runs floe-loadgen with --json, records its line and the broker's
# and the whole machine's CPU use during the run; prints the JSON line with broker_cpu_pct,
# machine_cpu_pct and other_cpu_pct (machine - broker - client) added.
loadgen() {
    local name=$1
    shift
    local t0 c0 out c1 t1 cpu m0 m1 busy
    t0=$(date +%s.%N)
    m0=$(machine_ticks)
    c0=$(cpu_ticks "$BROKER_PID")
    out=$(timeout 300 "$BIN/floe-loadgen" "$@" --json 2>>"$WORK/loadgen.log") ||
        die "floe-loadgen $name failed; see $WORK/loadgen.log"
    c1=$(cpu_ticks "$BROKER_PID")
    m1=$(machine_ticks)
    t1=$(date +%s.%N)
    # shellcheck disable=SC2086 # two numbers each
    busy=$(machine_busy_pct $m0 $m1)
    cpu=$(awk -v a="$c0" -v b="$c1" -v s="$t0" -v e="$t1" -v hz="$CLK_TCK" \
        'BEGIN { printf "%.0f", (b - a) / hz / (e - s) * 100 }')
    out=$(jq -c --arg n "$name" --argjson c "$cpu" --argjson m "$busy" \
        '. + {run: $n, broker_cpu_pct: $c, machine_cpu_pct: $m,
              other_cpu_pct: ([$m - $c - (.client_cpu_pct // 0), 0] | max | round)}' <<<"$out")
    echo "$out" >>"$RESULTS"
    echo "$out"
}

# ---------------------------------------------------------------- machine
log "machine: $(nproc) CPUs, $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo), \
$(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo), fs $(df -T "$WORK" | awk 'NR==2 {print $2" on "$1}')"

command -v jq >/dev/null || die "jq is required"
# Other work on the machine skews every figure (client and broker share its cores).
# With BENCH_WAIT_IDLE=SECONDS, wait (at most that long) for the machine to go quiet.
idle_sample() {
    local b0 t0 b1 t1
    read -r b0 t0 < <(machine_ticks)
    sleep 2
    read -r b1 t1 < <(machine_ticks)
    machine_busy_pct "$b0" "$t0" "$b1" "$t1"
}
IDLE_LOAD=$(idle_sample)
IDLE_DEADLINE=$((SECONDS + ${BENCH_WAIT_IDLE:-0}))
while ((IDLE_LOAD > 15 && SECONDS < IDLE_DEADLINE)); do
    log "waiting for the machine to go idle (other processes use ${IDLE_LOAD}% of one core)"
    sleep 3
    IDLE_LOAD=$(idle_sample)
done
log "CPU used by other processes before the run: ${IDLE_LOAD}% of one core (load average $(cut -d' ' -f1-3 /proc/loadavg))"
if ((IDLE_LOAD > 15)); then
    log "WARNING: the machine is not idle; results will be lower and noisier than on a quiet machine"
fi

# ---------------------------------------------------------------- brokers
# Each max-rate produce run gets a fresh broker and data dir, and the previous run's data
# is deleted first, so that both start from the same page-cache state (on a VM, how fast
# the kernel can find memory for new page-cache pages dominates sustained write speed).
COMMON=(--message-size 1024 --acks all --duration "$DURATION" --warmup "$WARMUP" --progress 5s)

PORT=$(free_port)
start_broker p1 "$WORK/data-p1" "$PORT"
log "(1) produce 1 KiB, acks=all, max rate, 1 partition"
R1=$(loadgen produce-1p produce --brokers "127.0.0.1:$PORT" "${COMMON[@]}" --topic bench-p1 \
    --partitions 1 --rate max)
stop_broker "$BROKER_PID"
rm -rf "$WORK/data-p1"

PORT=$(free_port)
BROKERS=127.0.0.1:$PORT
start_broker main "$WORK/data" "$PORT"
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
start_broker rss "$WORK/data-rss" "$PORT2"
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
