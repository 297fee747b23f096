#!/usr/bin/env bash
# What a topic's compression.type costs the broker: the same lz4 producer (1 KiB JSON-like
# events, 20,000 msg/s, acks=all, 22 s with the warm-up) against a topic with
# compression.type=producer (stored as sent) and one with zstd (every batch recompressed),
# alternating, twice each, same release binary, lake off (so only the produce path runs).
# Prints one JSON line per run: the broker's CPU seconds (utime+stime from /proc) and the
# size of the log stored. Build first: cargo build --release -p floe-cli -p floe-bench.
#
#   bash scripts/bench-recompress.sh
set -euo pipefail
BIN=${BIN:-${CARGO_TARGET_DIR:-$HOME/.cache/floe-target}/release}
TCK=$(getconf CLK_TCK)
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
cpu() { awk '{print $14+$15}' /proc/$1/stat; }
for round in 1 2; do
for mode in producer zstd; do
  d=$(mktemp -d); k=$(port)
  FLOE_LOG=warn $BIN/floe serve --data-dir $d --kafka-listen 127.0.0.1:$k --http-listen 127.0.0.1:$(port) \
     --flight-listen 127.0.0.1:$(port) --registry-listen 127.0.0.1:$(port) --fsync 50ms --lake-enabled false > $d/floe.out 2>&1 &
  pid=$!
  for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$k) 2>/dev/null && break; sleep 0.1; done
  # warm-up inside loadgen; CPU counted over the whole loadgen run, MB from its report
  c0=$(cpu $pid)
  out=$($BIN/floe-loadgen produce --brokers 127.0.0.1:$k --topic t --partitions 1 --topic-config compression.type=$mode \
        --payload json --message-size 1024 --compression lz4 --rate 20000 --duration 20s --warmup 2s --acks all --json 2>/dev/null | tail -1)
  c1=$(cpu $pid)
  kill -TERM $pid; wait $pid 2>/dev/null || true
  
  python3 - "$mode" "$round" "$c0" "$c1" "$TCK" "$out" "$d" <<'PY'
import json, sys, os
mode, rnd, c0, c1, tck, out, d = sys.argv[1:]
r = json.loads(out)
cpu = (int(c1) - int(c0)) / int(tck)
mb = r.get("mb_per_s", 0) * r.get("duration_s", 20)
size = 0
for root, _, files in os.walk(os.path.join(d, "log")):
    for f in files:
        if f.endswith(".log"): size += os.path.getsize(os.path.join(root, f))
print(json.dumps({"mode": mode, "round": int(rnd), "broker_cpu_s": round(cpu, 2), "acked": r.get("acked"), "errors": r.get("errors"), "mb_per_sec": r.get("mb_per_sec"), "duration_s": r.get("duration_s"), "stored_log_mb": round(size/1e6, 1)}))
PY
  rm -rf $d
done
done
