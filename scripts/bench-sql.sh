#!/usr/bin/env bash
# Floe SQL and replay benchmarks (docs/benchmarks.md, "SQL and replay"): builds release
# binaries, then
#
#   (1) scan: SCAN_MIB of 1 KiB JSON records in 2 partitions, landed (housekeeping off, so
#       every Parquet file under the table's data/ is in the current snapshot); full scans
#       with aggregation through Floe's Flight SQL port against plain DataFusion over the
#       same files (floe-sqlbench scan);
#   (2) point: a broker that lands once an hour, so 40,000 records stay in the tail
#       buffers; 1,000 point queries (partition, offset) through Flight SQL, p50/p99
#       (floe-sqlbench point);
#   (3) replay: REPLAY_MIB of 1 KiB records in 2 partitions to a topic whose segments are
#       deleted once landed (the lake tier), then `floe replay --from <before the first
#       record> --into` a new topic, timed; and the same from a topic in the hot log.
#
# Environment:
#   CARGO_TARGET_DIR    build directory [default: $HOME/.cache/floe-target]
#   BENCH_SKIP_BUILD=1  use the binaries already in $CARGO_TARGET_DIR/release
#   BENCH_DIR           parent of the work dir [default: ${TMPDIR:-/tmp}]
#   BENCH_WAIT_IDLE=N   first wait up to N seconds for other processes to stop using CPU
#   BENCH_ONLY          comma-separated subset of: scan,point,replay
#   SCAN_MIB            MiB for the scans [default: 1024]
#   REPLAY_MIB          MiB replayed [default: 1024]
#
# Results: the work dir keeps results.jsonl and the logs; data dirs are deleted.

set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/floe-target}
BIN=$CARGO_TARGET_DIR/release
PARENT=${BENCH_DIR:-${TMPDIR:-/tmp}}
ONLY=${BENCH_ONLY:-scan,point,replay}
SCAN_MIB=${SCAN_MIB:-1024}
REPLAY_MIB=${REPLAY_MIB:-1024}
STOP_TIMEOUT=${STOP_TIMEOUT:-90}
BENCH_NAME=bench-sql

# shellcheck source=scripts/bench-lib.sh
source "$ROOT/scripts/bench-lib.sh"

want() { [[ ",$ONLY," == *",$1,"* ]]; }

if [[ ${BENCH_SKIP_BUILD:-0} != 1 ]]; then
    log "building release binaries (floe-cli, floe-bench) in $CARGO_TARGET_DIR"
    (cd "$ROOT" && cargo build --release -p floe-bench -p floe-cli)
fi
[[ -x $BIN/floe && -x $BIN/floe-loadgen && -x $BIN/floe-sqlbench ]] || die "binaries missing in $BIN"
command -v jq >/dev/null || die "jq is required"

WORK=$(mktemp -d "$PARENT/floe-bench-sql.XXXXXX")
RESULTS=$WORK/results.jsonl
: >"$RESULTS"
log "work dir: $WORK"
cleanup() {
    stop_all_brokers
    rm -rf "$WORK"/data-*
}
trap cleanup EXIT
log "machine: $(machine_summary)"
wait_idle "${BENCH_WAIT_IDLE:-0}"

# sql_broker NAME [ARGS...]: a fresh broker with its Flight SQL port on a free port; sets FLIGHT.
sql_broker() {
    local name=$1 fport
    shift
    fport=$(free_port)
    FLIGHT=grpc://127.0.0.1:$fport
    fresh_broker "$name" --flight-listen "127.0.0.1:$fport" "$@"
}
sql() { "$BIN/floe" sql --url "$FLIGHT" --format json -e "$1"; }
fill() { # fill NAME TOPIC MIB [TOPIC CONFIGS...]
    local name=$1 topic=$2 mib=$3
    shift 3
    run_json "$name" "$WORK/loadgen.log" "$BIN/floe-loadgen" produce --brokers "$BROKERS" \
        --topic "$topic" --partitions 2 "$@" --message-size 1024 --acks all --payload json \
        --rate max --messages $((mib * 1024)) --warmup 0s --duration 600s >/dev/null
}
# wait_landed TOPIC: until every acknowledged offset of TOPIC is in its table (bounded).
wait_landed() {
    local deadline=$((SECONDS + 300)) behind
    while :; do
        behind=$(sql "SELECT CAST(sum(high_watermark - coalesce(landed_offset, 0)) AS BIGINT) AS b FROM system.partitions WHERE topic = '$1'" |
            jq -r '.rows[0].b // empty' 2>/dev/null || true)
        [[ $behind == 0 ]] && return 0
        ((SECONDS < deadline)) || die "$1 not landed after 300 s ($behind offsets behind)"
        sleep 1
    done
}

# ---------------------------------------------------------------- (1) scan
if want scan; then
    log "(1) scan: ${SCAN_MIB} MiB landed, housekeeping off; Floe vs DataFusion over the same Parquet"
    sql_broker scan --lake-housekeeping-interval 24h
    fill fill-scan scan "$SCAN_MIB"
    wait_landed scan
    log "files: $(find "$DATA/warehouse" -name '*.parquet' | wc -l) Parquet files, $(du -sh "$DATA/warehouse" | cut -f1)"
    DIR=$(dirname "$(find "$DATA/warehouse" -path '*scan*' -name '*.parquet' | head -1)")
    DIR=${DIR%%/data/*}/data
    RUN_TIMEOUT=900 run_json scan "$WORK/sqlbench.log" "$BIN/floe-sqlbench" scan --flight "$FLIGHT" \
        --topic scan --parquet-dir "$DIR" --runs 9
    done_broker
fi

# ---------------------------------------------------------------- (2) point
if want point; then
    # 40,000 records: a topic's tails land early once 64 MiB of Arrow wait (commit_bytes).
    log "(2) point queries on the tail: 40,000 records unlanded (landing every hour)"
    sql_broker point --lake-commit-interval 1h
    run_json fill-point "$WORK/loadgen.log" "$BIN/floe-loadgen" produce --brokers "$BROKERS" \
        --topic point --partitions 1 --message-size 1024 --acks all --payload json --rate max \
        --messages 40000 --warmup 0s --duration 300s >/dev/null
    landed=$(sql "SELECT coalesce(landed_offset, 0) AS l FROM system.partitions WHERE topic = 'point'" | jq -r '.rows[0].l')
    [[ $landed == 0 ]] || log "WARNING: $landed offsets already landed"
    run_json point "$WORK/sqlbench.log" "$BIN/floe-sqlbench" point --flight "$FLIGHT" --topic point \
        --partition 0 --from-offset 0 --to-offset 40000 --queries 1000
    done_broker
fi

# ---------------------------------------------------------------- (3) replay
if want replay; then
    log "(3) replay ${REPLAY_MIB} MiB by timestamp into another topic: from the lake tier, then from the hot log"
    CONF=$WORK/floe-tiered.toml
    printf '[log]\nretention_check_interval = "1s"\n' >"$CONF"
    sql_broker replay --config "$CONF"
    FROM=$(($(date +%s%3N) - 1000))
    fill fill-lake lake "$REPLAY_MIB" --topic-config local.retention.ms=0 --topic-config segment.bytes=16777216
    fill fill-hot hot "$REPLAY_MIB"
    wait_landed lake
    wait_landed hot
    # Bounded wait until the lake topic's local segments are gone (all but the active one).
    deadline=$((SECONDS + 180))
    until [[ $(find "$DATA/log/lake" -name '*.log' | wc -l) -le 2 ]]; do
        ((SECONDS < deadline)) || { log "WARNING: local segments of 'lake' still there after 180 s"; break; }
        sleep 1
    done
    log "lake topic local segments left: $(find "$DATA/log/lake" -name '*.log' | wc -l)"
    for src in lake hot; do
        # The target topic, with the same partition count: floe-loadgen creates its topic
        # before sending (none here).
        "$BIN/floe-loadgen" produce --brokers "$BROKERS" --topic "copy-$src" --partitions 2 \
            --messages 0 --warmup 0s --duration 1s >/dev/null 2>>"$WORK/loadgen.log" || true
        t0=$(date +%s.%N)
        c0=$(cpu_ticks "$BROKER_PID")
        "$BIN/floe" replay --bootstrap "$BROKERS" --topic "$src" --from "$FROM" --into "copy-$src" \
            >"$WORK/replay-$src.txt" 2>>"$WORK/replay.log" || die "replay from $src failed; see $WORK/replay.log"
        t1=$(date +%s.%N)
        c1=$(cpu_ticks "$BROKER_PID")
        records=$(sed -n 's/^replayed \([0-9]*\) records.*/\1/p' "$WORK/replay-$src.txt")
        secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')
        cpu=$(awk -v a="$c0" -v b="$c1" -v s="$secs" -v hz="$CLK_TCK" 'BEGIN { printf "%.0f", (b - a) / hz / s * 100 }')
        line=$(jq -nc --arg run "replay-$src" --argjson r "${records:-0}" --argjson s "$secs" --argjson c "$cpu" \
            --argjson mib "$REPLAY_MIB" '{run: $run, records: $r, seconds: $s, mib_per_s: ($mib / $s), broker_cpu_pct: $c}')
        echo "$line" >>"$RESULTS"
        echo "$line"
        cat "$WORK/replay-$src.txt" >&2
    done
    done_broker
fi

log "results: $RESULTS"
cat "$RESULTS"
