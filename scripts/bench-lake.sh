#!/usr/bin/env bash
# Floe lake benchmarks (docs/benchmarks.md, "Lake"): builds release binaries, then
#
#   (1) landing cost, in-process (floe-lakebench landing): MiB per CPU-second of the
#       Kafka -> Arrow decode, of LakeTable::land and of plain arrow-rs Parquet encoding
#       of the same batches, for full-speed rounds (64 MiB) and 10 MB/s rounds (20 MiB);
#   (2) freshness at 10 MB/s with the default commit interval (floe-lakebench freshness
#       against a fresh broker): ack -> snapshot, p50/p99; once with the default
#       housekeeping interval, once with housekeeping out of the way;
#   (3) produce throughput, max rate, landing on vs off (floe-loadgen produce, each run
#       on its own fresh broker), 1 and 8 partitions;
#   (4) consume throughput from the lake tier vs the hot log: the same data produced to a
#       topic with local.retention.ms=0 (its segments are deleted once landed) and to a
#       normal topic, each read from offset 0 three times (alternating) with floe-loadgen
#       consume; the medians are compared;
#   (5) typed topics: freshness as (2) of ~1 KiB Avro events to a topic bound to their
#       schema (lake.value.schema=wire), 60 s, and produce throughput, max rate, of the
#       same events to a raw topic, to a typed one, and to a typed one that validates
#       each record at produce (confluent.value.schema.validation=true; lake on in all),
#       and the typed topic's ack latency at 5,000 msg/s, linger 0, with and without
#       validation; (5d) consume from the lake tier of a typed topic against a raw one,
#       the same Avro events in both.
#
# Takes about 12 minutes plus the build.
#
# Environment:
#   CARGO_TARGET_DIR    build directory [default: $HOME/.cache/floe-target]
#   BENCH_SKIP_BUILD=1  use the binaries already in $CARGO_TARGET_DIR/release
#   BENCH_DIR           parent of the work dir [default: ${TMPDIR:-/tmp}]
#   BENCH_WAIT_IDLE=N   first wait up to N seconds for other processes to stop using CPU
#   BENCH_ONLY          comma-separated subset of: landing,freshness,produce,consume,typed
#                       (typed-produce: only (5)'s produce runs; typed-consume: only
#                       (5d), a typed topic's lake tier read against a raw topic's)
#   BENCH_LANDING_MIB   MiB landed per landing run [default: 1024]
#   BENCH_FRESH_DURATION  measured time of the first freshness run [default: 120s]
#   BENCH_DURATION      measured time of each produce run [default: 20s]
#   BENCH_REPEAT        produce on/off pairs per partition count [default: 1]
#   BENCH_PRODUCER_COMPRESSION  space-separated producer codecs (librdkafka compression.type)
#                       for (3), each run on/off [default: none]
#   BENCH_CONSUME_MIB   MiB produced for each consume test [default: 512]
#
# Results: the work dir keeps results.jsonl, table.md and the logs; data dirs are deleted.

set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/floe-target}
BIN=$CARGO_TARGET_DIR/release
PARENT=${BENCH_DIR:-${TMPDIR:-/tmp}}
ONLY=${BENCH_ONLY:-landing,freshness,produce,consume,typed}
LANDING_MIB=${BENCH_LANDING_MIB:-1024}
FRESH_DURATION=${BENCH_FRESH_DURATION:-120s}
DURATION=${BENCH_DURATION:-20s}
REPEAT=${BENCH_REPEAT:-1}
read -r -a PRODUCER_CODECS <<<"${BENCH_PRODUCER_COMPRESSION:-none}"
CONSUME_MIB=${BENCH_CONSUME_MIB:-512}
# A broker with the lake on lands what its tails hold when it stops.
STOP_TIMEOUT=${STOP_TIMEOUT:-90}
BENCH_NAME=bench-lake

# shellcheck source=scripts/bench-lib.sh
source "$ROOT/scripts/bench-lib.sh"

want() { [[ ",$ONLY," == *",$1,"* ]]; }

# ---------------------------------------------------------------- build
if [[ ${BENCH_SKIP_BUILD:-0} != 1 ]]; then
    log "building release binaries (floe-cli, floe-bench) in $CARGO_TARGET_DIR"
    (cd "$ROOT" && cargo build --release -p floe-bench -p floe-cli)
fi
[[ -x $BIN/floe && -x $BIN/floe-loadgen && -x $BIN/floe-lakebench ]] || die "binaries missing in $BIN"
command -v jq >/dev/null || die "jq is required"

WORK=$(mktemp -d "$PARENT/floe-bench-lake.XXXXXX")
RESULTS=$WORK/results.jsonl
: >"$RESULTS"
log "work dir: $WORK"

cleanup() {
    stop_all_brokers
    rm -rf "$WORK"/data-* "$WORK/landing"
}
trap cleanup EXIT

log "machine: $(machine_summary)"
wait_idle "${BENCH_WAIT_IDLE:-0}"

loadgen() {
    local name=$1
    shift
    run_json "$name" "$WORK/loadgen.log" "$BIN/floe-loadgen" "$@"
}
lakebench() {
    local name=$1
    shift
    run_json "$name" "$WORK/lakebench.log" "$BIN/floe-lakebench" "$@"
}

# ---------------------------------------------------------------- (1) landing
if want landing; then
    log "(1) landing in-process: ${LANDING_MIB} MiB in 64 MiB rounds, then 256 MiB in 20 MiB rounds"
    BROKER_PID=
    L1=$(lakebench landing-64 landing --mib "$LANDING_MIB" --round-mib 64 --dir "$WORK/landing")
    rm -rf "$WORK/landing"
    L2=$(lakebench landing-20 landing --mib 260 --round-mib 20 --dir "$WORK/landing")
    rm -rf "$WORK/landing"
fi

# ---------------------------------------------------------------- (2) freshness
if want freshness; then
    # Housekeeping (retention, compaction, snapshot expiry) runs every 60 s between two
    # rounds of the same committer, so a window of two minutes contains two passes. The
    # second run turns it off to show landing alone.
    log "(2) freshness: 10 MB/s of 1 KiB JSON records, acks=all, default settings, $FRESH_DURATION"
    fresh_broker fresh
    F1=$(lakebench freshness freshness --brokers "$BROKERS" --http "$BROKER_HTTP" --topic fresh \
        --partitions 1 --mb-per-sec 10 --duration "$FRESH_DURATION" --warmup 5s --poll 100ms)
    done_broker
    log "(2b) freshness as (2), housekeeping interval 1 h (no pass during the run), 60s"
    fresh_broker fresh-nohk --lake-housekeeping-interval 1h
    F2=$(lakebench freshness-no-housekeeping freshness --brokers "$BROKERS" --http "$BROKER_HTTP" \
        --topic fresh --partitions 1 --mb-per-sec 10 --duration 60s --warmup 5s --poll 100ms)
    done_broker
fi

# ---------------------------------------------------------------- (3) produce on/off
if want produce; then
    COMMON=(--message-size 1024 --acks all --duration "$DURATION" --warmup 3s --progress 5s
        --payload json --rate max)
    for codec in "${PRODUCER_CODECS[@]}"; do
        for parts in 1 8; do
            for rep in $(seq 1 "$REPEAT"); do
                for lake in false true; do
                    log "(3) produce max rate, $parts partition(s), producer compression $codec, lake $lake (run $rep)"
                    fresh_broker "p$parts-$codec-$lake" --lake-enabled "$lake"
                    loadgen "produce-${parts}p-$codec-lake-$lake" produce --brokers "$BROKERS" \
                        "${COMMON[@]}" --compression "$codec" --topic "bench-p$parts" \
                        --partitions "$parts" >/dev/null
                    done_broker
                done
            done
        done
    done
fi

# ---------------------------------------------------------------- (4) consume lake vs hot
# oldest_base DIR: the base offset of the oldest segment in a partition directory.
oldest_base() {
    find "$1" -maxdepth 1 -name '*.log' -printf '%f\n' 2>/dev/null | sort | head -1 |
        sed -e 's/\.log$//' -e 's/^0*//' -e 's/^$/0/'
}
if want consume; then
    MSGS=$((CONSUME_MIB * 1024))
    # The retention task runs every second, so segments go soon after they are landed.
    CONF=$WORK/floe-tiered.toml
    printf '[log]\nretention_check_interval = "1s"\n' >"$CONF"
    fresh_broker tiered --config "$CONF"
    log "(4) produce ${CONSUME_MIB} MiB to a topic with local.retention.ms=0, segment.bytes=16 MiB, and to a normal topic"
    for t in tiered hot; do
        cfgs=()
        [[ $t == tiered ]] && cfgs=(--topic-config local.retention.ms=0 --topic-config segment.bytes=16777216)
        loadgen "fill-$t" produce --brokers "$BROKERS" --topic "$t" --partitions 1 "${cfgs[@]}" \
            --message-size 1024 --acks all --payload json --rate max --messages "$MSGS" \
            --warmup 0s --duration 120s >/dev/null
    done
    # Wait (bounded) until the tiered topic's local log has let go of every landed segment.
    deadline=$((SECONDS + 180))
    while :; do
        base=$(oldest_base "$DATA/log/tiered/0")
        [[ -n $base && $base -ge $MSGS ]] && break
        if ((SECONDS >= deadline)); then
            log "WARNING: after 180 s the tiered topic still has local segments from offset ${base:-?}"
            break
        fi
        sleep 1
    done
    log "tiered topic: oldest local offset ${base:-?} of $MSGS; hot topic: $(oldest_base "$DATA/log/hot/0")"
    echo "{\"run\":\"tiered-local-start\",\"oldest_local_offset\":${base:-0},\"messages\":$MSGS}" >>"$RESULTS"
    # Each tier is read three times, alternating, and the medians are compared: the
    # first read after start is often the slowest for either (fresh memory on this VM,
    # cold caches), and single reads of 512 MiB take about a second.
    HOT_READS=() LAKE_READS=()
    for i in 1 2 3; do
        HOT_READS+=("$(loadgen "consume-hot-$i" consume --brokers "$BROKERS" --topic hot --to-end --duration 300s)")
        LAKE_READS+=("$(loadgen "consume-lake-$i" consume --brokers "$BROKERS" --topic tiered --to-end --duration 300s)")
    done
    # Diagnostic: a lake-tier Fetch decodes a window of rows and returns what fits in the
    # partition's fetch size, so a larger max.partition.fetch.bytes (librdkafka: 1 MiB)
    # shows how much of the lake tier's cost is per request.
    C_LAKE16=$(loadgen consume-lake-fetch16m consume --brokers "$BROKERS" --topic tiered --to-end \
        --duration 300s -X max.partition.fetch.bytes=16777216)
    # Diagnostic: two consumers replaying the partition at once, one from offset 0 and one
    # from the middle, each reading half. Each keeps its own read-ahead windows; the
    # scan count (floe_lake_tier_scans_total) shows whether they evict each other's.
    scans() { curl -fsS "http://$BROKER_HTTP/metrics" | awk '$1 == "floe_lake_tier_scans_total" { print $2 }'; }
    half=$((MSGS / 2))
    s0=$(scans)
    loadgen consume-lake-two-a consume --brokers "$BROKERS" --topic tiered \
        --messages "$half" --duration 300s >"$WORK/two-a.json" &
    two_a=$!
    loadgen consume-lake-two-b consume --brokers "$BROKERS" --topic tiered \
        --from-offset "$half" --messages "$half" --duration 300s >"$WORK/two-b.json"
    wait "$two_a"
    TWO_SCANS=$(($(scans) - s0))
    TWO_A=$(cat "$WORK/two-a.json") TWO_B=$(cat "$WORK/two-b.json")
    done_broker
fi

# ---------------------------------------------------------------- (5) typed topics
if want typed || want typed-produce || want typed-consume; then
    # register_avro TOPIC: the avro payloads' schema as TOPIC-value's first version, which
    # on a fresh broker is schema id 1, the id the payloads carry.
    register_avro() {
        local id
        id=$("$BIN/floe-lakebench" avro-schema | curl -sf -X POST \
            -H 'content-type: application/vnd.schemaregistry.v1+json' --data-binary @- \
            "http://$BROKER_REGISTRY/subjects/$1-value/versions" | jq -r .id)
        [[ $id == 1 ]] || die "registering the Avro payloads' schema gave id '$id', not 1"
    }
    if want typed; then
        log "(5a) freshness of a typed topic: 10 MB/s of ~1 KiB Avro events, lake.value.schema=wire, default settings, 60s"
        fresh_broker fresh-typed
        register_avro fresh
        T1=$(lakebench freshness-typed freshness --brokers "$BROKERS" --http "$BROKER_HTTP" \
            --topic fresh --partitions 1 --mb-per-sec 10 --duration 60s --warmup 5s --poll 100ms \
            --payload avro --topic-config lake.value.schema=wire)
        done_broker
    fi
    # typed_configs SCHEMA: the topic configs of a raw, wire (typed) or validated topic
    # (typed, every record decoded at produce before it is appended).
    typed_configs() {
        configs=(--topic-config "lake.value.schema=${1/validated/wire}")
        if [[ $1 == validated ]]; then
            configs+=(--topic-config confluent.value.schema.validation=true)
        fi
    }
    # typed_produce RUN SCHEMA ARGS...: on a broker of its own with the payloads' schema
    # registered, floe-loadgen produces ~1 KiB Avro events to one partition of a topic
    # with SCHEMA's configs, with ARGS (the rate).
    typed_produce() {
        local run=$1
        typed_configs "$2"
        shift 2
        fresh_broker "$run"
        register_avro bench-typed
        loadgen "$run" produce --brokers "$BROKERS" --message-size 1024 \
            --acks all --duration "$DURATION" --warmup 3s --progress 5s --payload avro \
            --topic bench-typed --partitions 1 "${configs[@]}" "$@" >/dev/null
        done_broker
    }
    for rep in $(seq 1 "$REPEAT"); do
        want typed || want typed-produce || break
        for schema in raw wire validated; do
            log "(5b) produce max rate of ~1 KiB Avro events, 1 partition, $schema topic (run $rep)"
            typed_produce "produce-avro-$schema" "$schema" --rate max
        done
        # One Produce request per record (linger 0) at a rate both keep up with: what
        # validating each request costs its acknowledgement.
        for schema in wire validated; do
            log "(5c) ack latency at 5,000 msg/s of ~1 KiB Avro events, linger 0, $schema topic (run $rep)"
            typed_produce "latency-avro-$schema" "$schema" --rate 5000 --linger-ms 0
        done
    done
    if want typed || want typed-consume; then
        # (5d) The same Avro events to a typed topic and to a raw one, each letting its
        # segments go once landed, then each read from offset 0 three times, alternating:
        # a typed topic's lake tier reads the typed columns and rebuilds the Avro values
        # that landed without their bytes.
        MSGS=$((CONSUME_MIB * 1024))
        CONF=$WORK/floe-typed-tiered.toml
        printf '[log]\nretention_check_interval = "1s"\n' >"$CONF"
        fresh_broker typed-tiered --config "$CONF"
        register_avro typed
        log "(5d) produce ${CONSUME_MIB} MiB of ~1 KiB Avro events to a typed and a raw topic, local.retention.ms=0"
        for t in typed raw; do
            schema=raw
            [[ $t == typed ]] && schema=wire
            loadgen "fill-avro-$t" produce --brokers "$BROKERS" --topic "$t" --partitions 1 \
                --topic-config local.retention.ms=0 --topic-config segment.bytes=16777216 \
                --topic-config "lake.value.schema=$schema" --message-size 1024 --acks all \
                --payload avro --rate max --messages "$MSGS" --warmup 0s --duration 300s >/dev/null
        done
        for t in typed raw; do
            deadline=$((SECONDS + 180))
            until base=$(oldest_base "$DATA/log/$t/0"); [[ -n $base && $base -ge $MSGS ]]; do
                if ((SECONDS >= deadline)); then
                    log "WARNING: after 180 s topic $t still has local segments from offset ${base:-?}"
                    break
                fi
                sleep 1
            done
        done
        TYPED_READS=() RAW_READS=()
        for i in 1 2 3; do
            TYPED_READS+=("$(loadgen "consume-lake-typed-$i" consume --brokers "$BROKERS" --topic typed --to-end --duration 300s)")
            RAW_READS+=("$(loadgen "consume-lake-raw-$i" consume --brokers "$BROKERS" --topic raw --to-end --duration 300s)")
        done
        done_broker
    fi
fi

# ---------------------------------------------------------------- table
g() { json_get "$1" "$2"; }
r0() { awk -v x="$1" 'BEGIN { if (x == "" || x == "?" || x == "null") print "?"; else printf "%.0f", x }'; }
r1() { awk -v x="$1" 'BEGIN { if (x == "" || x == "?") print "?"; else printf "%.1f", x }'; }
r2() { awk -v x="$1" 'BEGIN { if (x == "" || x == "?") print "?"; else printf "%.2f", x }'; }
ok() { if awk "BEGIN { exit !($1) }"; then echo "met"; else echo "**not met**"; fi; }
avg_of() { # avg_of RUN FIELD: mean of FIELD over the results lines of RUN
    jq -s --arg r "$1" --arg f "$2" '[.[] | select(.run == $r) | .[$f]] | if length > 0 then add / length else null end' "$RESULTS"
}
{
    echo "| Test | Result | Target | Status |"
    echo "|------|--------|--------|--------|"
    if want landing; then
        for L in "$L1" "$L2"; do
            echo "| landing, $(g "$L" round_mib) MiB rounds, $(r1 "$(g "$L" mib)") MiB | **$(r1 "$(g "$L" land_mib_per_cpu_s)") MiB per CPU-s** (decode $(r1 "$(g "$L" decode_mib_per_cpu_s)"), decode + landing $(r1 "$(g "$L" decode_plus_land_mib_per_cpu_s)"); wall $(r1 "$(g "$L" land_mib_per_wall_s)") MiB/s; zstd ratio $(r2 "$(g "$L" compression_ratio)")) | ≥ 50 MiB/s per core | $(ok "$(g "$L" land_mib_per_cpu_s) >= 50") |"
            echo "| landing CPU ÷ plain ArrowWriter CPU, $(g "$L" round_mib) MiB rounds | **$(r2 "$(g "$L" land_over_plain_cpu)")** (plain $(r1 "$(g "$L" plain_mib_per_cpu_s)") MiB per CPU-s) | ≤ 1.5 | $(ok "$(g "$L" land_over_plain_cpu) <= 1.5") |"
        done
    fi
    if want freshness; then
        for F in "$F1" "$F2"; do
            echo "| freshness at 10 MB/s ($(g "$F" run)), ack → snapshot timestamp | **p50 $(r0 "$(g "$F" commit_p50_ms)") ms, p99 $(r0 "$(g "$F" commit_p99_ms)") ms** (max $(r0 "$(g "$F" commit_max_ms)") ms; $(g "$F" snapshots) snapshots, $(g "$F" housekeeping_snapshots) by housekeeping, $(g "$F" median_snapshot_interval_ms) ms apart, at most $(g "$F" max_snapshot_interval_ms) ms; broker CPU $(g "$F" broker_cpu_pct)%) | p99 < 3000 ms | $(ok "$(g "$F" commit_p99_ms) < 3000") |"
            echo "| same, ack → seen by a REST poll every $(g "$F" poll_ms) ms | p50 $(r0 "$(g "$F" visible_p50_ms)") ms, p99 $(r0 "$(g "$F" visible_p99_ms)") ms | p99 < 3000 ms | $(ok "$(g "$F" visible_p99_ms) < 3000") |"
        done
    fi
    if want produce; then
        for codec in "${PRODUCER_CODECS[@]}"; do
            for parts in 1 8; do
                run="produce-${parts}p-$codec-lake"
                off=$(avg_of "$run-false" mb_per_sec)
                on=$(avg_of "$run-true" mb_per_sec)
                ratio=$(awk -v a="$on" -v b="$off" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print 0 }')
                echo "| produce max rate, $parts partition(s), producer compression $codec, landing on ÷ off | **$ratio** ($(r1 "$on") / $(r1 "$off") MB/s; broker CPU $(r0 "$(avg_of "$run-true" broker_cpu_pct)")% / $(r0 "$(avg_of "$run-false" broker_cpu_pct)")%) | ≥ 0.8 | $(ok "$ratio >= 0.8") |"
            done
        done
    fi
    if want typed; then
        T=$T1
        echo "| freshness of a typed topic (Avro, lake.value.schema=wire) at 10 MB/s, ack → snapshot timestamp | **p50 $(r0 "$(g "$T" commit_p50_ms)") ms, p99 $(r0 "$(g "$T" commit_p99_ms)") ms** (max $(r0 "$(g "$T" commit_max_ms)") ms; $(g "$T" snapshots) snapshots; broker CPU $(g "$T" broker_cpu_pct)%) | p99 < 3000 ms | $(ok "$(g "$T" commit_p99_ms) < 3000") |"
    fi
    if want typed || want typed-produce; then
        raw=$(avg_of produce-avro-raw mb_per_sec)
        typed=$(avg_of produce-avro-wire mb_per_sec)
        ratio=$(awk -v a="$typed" -v b="$raw" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print 0 }')
        echo "| produce max rate of Avro events, 1 partition, typed topic ÷ raw topic (lake on in both) | **$ratio** ($(r1 "$typed") / $(r1 "$raw") MB/s; broker CPU $(r0 "$(avg_of produce-avro-wire broker_cpu_pct)")% / $(r0 "$(avg_of produce-avro-raw broker_cpu_pct)")%) | (none given) | measured |"
        validated=$(avg_of produce-avro-validated mb_per_sec)
        vratio=$(awk -v a="$validated" -v b="$typed" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print 0 }')
        echo "| produce max rate of Avro events, 1 partition, typed topic with confluent.value.schema.validation=true ÷ without | **$vratio** ($(r1 "$validated") / $(r1 "$typed") MB/s; broker CPU $(r0 "$(avg_of produce-avro-validated broker_cpu_pct)")% / $(r0 "$(avg_of produce-avro-wire broker_cpu_pct)")%) | (none given) | measured |"
        for schema in wire validated; do
            what="typed topic"
            [[ $schema == validated ]] && what="typed topic with validation"
            echo "| ack latency at 5,000 msg/s, linger 0, $what, p50 / p99 | **$(r0 "$(avg_of "latency-avro-$schema" p50_us)") / $(r0 "$(avg_of "latency-avro-$schema" p99_us)") µs** ($(r1 "$(avg_of "latency-avro-$schema" mb_per_sec)") MB/s; broker CPU $(r0 "$(avg_of "latency-avro-$schema" broker_cpu_pct)")%) | (none given) | measured |"
        done
    fi
    rates() { for r in "$@"; do g "$r" mb_per_sec; done; }
    median3() { sort -g | sed -n 2p; }
    list() { rates "$@" | while read -r x; do r1 "$x"; echo; done | paste -sd, - | sed "s/,/, /g"; }
    if want typed || want typed-consume; then
        typed=$(rates "${TYPED_READS[@]}" | median3)
        raw=$(rates "${RAW_READS[@]}" | median3)
        ratio=$(awk -v a="$typed" -v b="$raw" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print 0 }')
        echo "| consume from offset 0 of Avro events from the lake tier, typed topic ÷ raw topic (${CONSUME_MIB} MiB, 1 partition; medians of three reads each) | **$ratio** ($(r1 "$typed") / $(r1 "$raw") MB/s; typed reads $(list "${TYPED_READS[@]}"), raw reads $(list "${RAW_READS[@]}"); broker CPU $(g "${TYPED_READS[1]}" broker_cpu_pct)% / $(g "${RAW_READS[1]}" broker_cpu_pct)% in the second reads) | (none given) | measured |"
    fi
    if want consume; then
        hot=$(rates "${HOT_READS[@]}" | median3)
        lake=$(rates "${LAKE_READS[@]}" | median3)
        ratio=$(awk -v a="$lake" -v b="$hot" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print 0 }')
        echo "| consume from offset 0, lake tier ÷ hot log (${CONSUME_MIB} MiB, 1 partition; medians of three reads each) | **$ratio** ($(r1 "$lake") / $(r1 "$hot") MB/s; lake reads $(list "${LAKE_READS[@]}"), hot reads $(list "${HOT_READS[@]}"); broker CPU $(g "${LAKE_READS[1]}" broker_cpu_pct)% / $(g "${HOT_READS[1]}" broker_cpu_pct)% in the second reads) | ≥ 0.5 | $(ok "$ratio >= 0.5") |"
        echo "| (diagnostic) same, consumer with max.partition.fetch.bytes = 16 MiB | $(awk -v a="$(g "$C_LAKE16" mb_per_sec)" -v b="$hot" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print 0 }') ($(r1 "$(g "$C_LAKE16" mb_per_sec)") MB/s) | | |"
        echo "| (diagnostic) two consumers at once, from offset 0 and from the middle, half each | $(r1 "$(awk -v a="$(g "$TWO_A" mb_per_sec)" -v b="$(g "$TWO_B" mb_per_sec)" 'BEGIN { print a + b }')") MB/s together ($(r1 "$(g "$TWO_A" mb_per_sec)") + $(r1 "$(g "$TWO_B" mb_per_sec)")); $TWO_SCANS lake-tier scans | | |"
    fi
} | tee "$WORK/table.md"
echo
echo "MB = 10^6 bytes, MiB = 2^20. CPU = percent of one core (machine has $(nproc) cores);"
echo "other processes used ${IDLE_LOAD}% of one core before the run."
echo "Results: $RESULTS; logs: $WORK"
