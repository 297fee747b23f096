# shellcheck shell=bash
# Helpers shared by scripts/bench.sh, scripts/bench-lake.sh and scripts/bench-sql.sh. Source it after setting
# BIN (directory of the release binaries), WORK (the run's work dir) and RESULTS (a
# JSON-lines file). It installs no trap: the caller's EXIT trap should call
# stop_all_brokers.

CLK_TCK=$(getconf CLK_TCK)

log() { printf '[%s %s] %s\n' "${BENCH_NAME:-bench}" "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

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

# Seconds a broker gets between SIGTERM and SIGKILL. With the lake on, shutdown lands
# what the tails hold, which can take a while after a max-rate run.
STOP_TIMEOUT=${STOP_TIMEOUT:-20}
BROKER_PIDS=()
# start_broker NAME DATA_DIR PORT [FLOE SERVE ARGS...]: starts `floe serve` in the
# background with its Kafka listener on 127.0.0.1:PORT and its HTTP listener (Iceberg
# REST catalog) on another free port, so that brokers never fight over the default 8181,
# and its schema registry on a third. Sets BROKER_PID, BROKER_HTTP and BROKER_REGISTRY
# (host:port).
start_broker() {
    local name=$1 dir=$2 port=$3
    shift 3
    local hport rport
    hport=$(free_port)
    rport=$(free_port)
    mkdir -p "$dir"
    FLOE_LOG=${FLOE_LOG:-warn} "$BIN/floe" serve --data-dir "$dir" --kafka-listen "127.0.0.1:$port" \
        --http-listen "127.0.0.1:$hport" --registry-listen "127.0.0.1:$rport" --fsync 50ms "$@" >"$WORK/$name.log" 2>&1 &
    BROKER_PID=$!
    BROKER_HTTP=127.0.0.1:$hport
    BROKER_REGISTRY=127.0.0.1:$rport
    BROKER_PIDS+=("$BROKER_PID")
    local deadline=$((SECONDS + 20))
    until (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do
        kill -0 "$BROKER_PID" 2>/dev/null || die "broker $name exited: $(tail -5 "$WORK/$name.log")"
        ((SECONDS < deadline)) || die "broker $name not listening on $port after 20s"
        sleep 0.1
    done
    log "broker $name pid $BROKER_PID on 127.0.0.1:$port, http $BROKER_HTTP (data $dir${*:+; $*})"
}

# stop_broker PID: SIGTERM, wait up to STOP_TIMEOUT seconds, then SIGKILL. Only PIDs this
# script started and has not stopped yet are signalled.
stop_broker() {
    local pid=$1 p keep=()
    for p in "${BROKER_PIDS[@]}"; do [[ $p == "$pid" ]] || keep+=("$p"); done
    ((${#keep[@]} < ${#BROKER_PIDS[@]})) || return 0
    BROKER_PIDS=("${keep[@]}")
    kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM "$pid"
    local deadline=$((SECONDS + STOP_TIMEOUT))
    while kill -0 "$pid" 2>/dev/null; do
        if ((SECONDS >= deadline)); then
            log "broker $pid did not stop within ${STOP_TIMEOUT}s of SIGTERM; sending SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
            break
        fi
        sleep 0.1
    done
    wait "$pid" 2>/dev/null || true
}

# fresh_broker NAME [FLOE SERVE ARGS...]: a broker on new ports in a new data dir; sets
# BROKERS, BROKER_PID, BROKER_HTTP, DATA.
fresh_broker() {
    local name=$1
    shift
    DATA=$WORK/data-$name
    rm -rf "$DATA"
    local port
    port=$(free_port)
    BROKERS=127.0.0.1:$port
    start_broker "$name" "$DATA" "$port" "$@"
}

# done_broker: stops the current broker and deletes its data.
done_broker() {
    stop_broker "$BROKER_PID"
    BROKER_PID=
    rm -rf "$DATA"
}

stop_all_brokers() {
    local pid
    for pid in "${BROKER_PIDS[@]}"; do stop_broker "$pid"; done
    BROKER_PIDS=()
}

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

# run_json NAME LOGFILE CMD ARGS...: runs a bench tool that prints one JSON line with
# --json (appended here), records the broker's ($BROKER_PID, if set) and the whole
# machine's CPU use during the run; prints the JSON line with run, broker_cpu_pct,
# machine_cpu_pct and other_cpu_pct (machine - broker - client) added, and appends it
# to $RESULTS. The tool's stderr goes to LOGFILE.
run_json() {
    local name=$1 logfile=$2
    shift 2
    local t0 c0=0 out c1=0 t1 cpu=0 m0 m1 busy
    t0=$(date +%s.%N)
    m0=$(machine_ticks)
    [[ -n ${BROKER_PID:-} ]] && c0=$(cpu_ticks "$BROKER_PID")
    out=$(timeout "${RUN_TIMEOUT:-300}" "$@" --json 2>>"$logfile") ||
        die "$name failed; see $logfile"
    [[ -n ${BROKER_PID:-} ]] && c1=$(cpu_ticks "$BROKER_PID")
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

# Percent of one core that every process together used over 2 s.
idle_sample() {
    local b0 t0 b1 t1
    read -r b0 t0 < <(machine_ticks)
    sleep 2
    read -r b1 t1 < <(machine_ticks)
    machine_busy_pct "$b0" "$t0" "$b1" "$t1"
}

# wait_idle SECONDS: waits at most that long for the machine to go quiet (other work
# skews every figure: client and broker share its cores). Sets IDLE_LOAD.
wait_idle() {
    IDLE_LOAD=$(idle_sample)
    local deadline=$((SECONDS + ${1:-0}))
    while ((IDLE_LOAD > 15 && SECONDS < deadline)); do
        log "waiting for the machine to go idle (other processes use ${IDLE_LOAD}% of one core)"
        sleep 3
        IDLE_LOAD=$(idle_sample)
    done
    log "CPU used by other processes: ${IDLE_LOAD}% of one core (load average $(cut -d' ' -f1-3 /proc/loadavg))"
    if ((IDLE_LOAD > 15)); then
        log "WARNING: the machine is not idle; results will be lower and noisier than on a quiet machine"
    fi
}

machine_summary() {
    echo "$(nproc) CPUs, $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo), \
$(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo), fs $(df -T "$WORK" | awk 'NR==2 {print $2" on "$1}')"
}
