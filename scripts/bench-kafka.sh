#!/usr/bin/env bash
# Kafka throughput of a release `weir serve`, driven by kcat on the current librdkafka (the
# one inside the pinned confluent-kafka wheel, as ../shared/reference/performance.md
# describes), beside this machine's loopback bandwidth measured in the same run — and, when
# TANSU_BIN names an already-built peer broker, the same loads against it in the same run.
#
#   cargo build --release && ./scripts/test.sh   # once: .venv with confluent-kafka, kcat
#   ./scripts/bench-kafka.sh                      # prints one line per load
#   TANSU_BIN=/path/to/nisshi ./scripts/bench-kafka.sh   # weir, then the peer (memory engine)
#
# Loads: 1 topic × 8 partitions; 1,000,000 records of 100 B and 200,000 of 1 KiB; acks=1
# and acks=all; `async` and `sync` topics; each produced, then consumed from the start.
# Each line also gives the broker's CPU seconds (utime + stime) for each phase. The peer's
# memory engine has no flush policy, so it runs the async loads only.
set -euo pipefail
source "$(dirname "$0")/bench-lib.sh"
port=${WEIR_BENCH_PORT:-19192}

# Anchor: loopback TCP bandwidth, one stream, 4 GiB.
.venv/bin/python - <<'PY'
import socket, threading, time
N, CHUNK = 4 << 30, 1 << 20
srv = socket.socket(); srv.bind(("127.0.0.1", 0)); srv.listen(1)
def sink():
    conn, _ = srv.accept(); got = 0
    while got < N:
        b = conn.recv(CHUNK)
        if not b: break
        got += len(b)
t = threading.Thread(target=sink); t.start()
c = socket.create_connection(srv.getsockname()); buf = b"x" * CHUNK
start = time.time()
for _ in range(N // CHUNK): c.sendall(buf)
c.close(); t.join()
print(f"anchor: loopback TCP (python, 1 stream) {N / (time.time() - start) / 1e9:.2f} GB/s")
PY

python3 -c "
with open('$bench_work/100b', 'w') as f:
    for i in range(1_000_000): f.write('%09d' % i + 'x' * 90 + '\n')
with open('$bench_work/1k', 'w') as f:
    for i in range(200_000): f.write('%09d' % i + 'x' * 1014 + '\n')
"

run() { # broker label file records bytes acks flush
    local topic="t-$RANDOM-$RANDOM"
    if [[ $1 == weir ]]; then
        create_topic "$port" "$topic" 8 "flush.policy=$7"
    else
        create_topic "$port" "$topic" 8
    fi
    local start end cpu0 cpu1 cpu2
    cpu0=$(cpu_seconds "$broker_pid")
    start=$(date +%s.%N)
    kcat -P -b "127.0.0.1:$port" -t "$topic" -X acks="$6" -X linger.ms=5 \
        -X batch.num.messages=10000 -X queue.buffering.max.messages=1000000 -l "$3"
    end=$(date +%s.%N)
    cpu1=$(cpu_seconds "$broker_pid")
    local produce
    produce=$(python3 -c "d=$end-$start; print(f'{$4/d/1e6:.2f} M msg/s, {$4*$5/d/1e6:.0f} MB/s')")
    start=$(date +%s.%N)
    local n
    n=$(kcat -C -b "127.0.0.1:$port" -t "$topic" -o beginning -e -q -f '%o\n' | wc -l)
    end=$(date +%s.%N)
    cpu2=$(cpu_seconds "$broker_pid")
    local consume
    consume=$(python3 -c "d=$end-$start; print(f'{$n/d/1e6:.2f} M msg/s')")
    echo "$1: $2 acks=$6 $7: produce $produce; consume $n records $consume;" \
        "broker CPU $(python3 -c "print(f'{$cpu1-$cpu0:.2f} s + {$cpu2-$cpu1:.2f} s')")"
}

for broker in "${brokers[@]}"; do
    start_broker "$broker" "$port" "num_partitions = 8"
    run "$broker" "100 B x 1M" "$bench_work/100b" 1000000 100 1 async
    run "$broker" "100 B x 1M" "$bench_work/100b" 1000000 100 all async
    [[ $broker == weir ]] && run "$broker" "100 B x 1M" "$bench_work/100b" 1000000 100 all sync
    run "$broker" "1 KiB x 200k" "$bench_work/1k" 200000 1024 1 async
    run "$broker" "1 KiB x 200k" "$bench_work/1k" 200000 1024 all async
    [[ $broker == weir ]] && run "$broker" "1 KiB x 200k" "$bench_work/1k" 200000 1024 all sync
    echo "$broker RSS at the end: $(rss_kib "$broker_pid") KiB"
    stop_broker
done
