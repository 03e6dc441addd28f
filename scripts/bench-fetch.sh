#!/usr/bin/env bash
# Fetch throughput: write MIB MiB (default 1024) of RECORD_BYTES-byte records (default 1024)
# to one topic of PARTITIONS partitions (default 1), then time one kcat consumer reading it
# all from the start with large fetches (fetch.max.bytes and max.partition.fetch.bytes
# 50 MiB), on the wheel's current librdkafka, until it has the last record. Prints MB/s (10^6 bytes of record values),
# the broker's CPU seconds over the read, and the loopback anchor measured in the same run.
# With TANSU_BIN, the peer broker (memory engine) is measured the same way in the same run.
#
#   cargo build --release && ./scripts/bench-fetch.sh
#   RECORD_BYTES=65536 TANSU_BIN=/path/to/nisshi ./scripts/bench-fetch.sh
set -euo pipefail
source "$(dirname "$0")/bench-lib.sh"
port=${WEIR_BENCH_PORT:-19194}
mib=${MIB:-1024}
record=${RECORD_BYTES:-1024}
partitions=${PARTITIONS:-1}
count=$((mib * 1024 * 1024 / record))

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

# RECORD_BYTES per record including kcat's line delimiter, which it strips.
python3 -c "
import sys
line = 'x' * ($record - 10) + '\n'
with open('$bench_work/data', 'w') as f:
    for i in range($count): f.write('%09d' % i + line)
"

for broker in "${brokers[@]}"; do
    start_broker "$broker" "$port"
    topic="fetch-$RANDOM"
    create_topic "$port" "$topic" "$partitions"
    pstart=$(date +%s.%N)
    kcat -P -b "127.0.0.1:$port" -t "$topic" -X acks=1 -X linger.ms=5 \
        -X batch.num.messages=10000 -X queue.buffering.max.messages=1000000 -l "$bench_work/data"
    written=$(date +%s.%N)
    sleep 2
    cpu0=$(cpu_seconds "$broker_pid")
    start=$(date +%s.%N)
    # -c: stop at the last record, not after the empty long poll that shows the end (-e,
    # kept as a backstop, would add up to fetch.wait.max.ms, 500 ms, to every run).
    n=$(kcat -C -b "127.0.0.1:$port" -t "$topic" -o beginning -c "$count" -e -q -f '%o\n' \
        -X fetch.max.bytes=52428800 -X max.partition.fetch.bytes=52428800 \
        -X receive.message.max.bytes=104858112 | wc -l)
    end=$(date +%s.%N)
    cpu1=$(cpu_seconds "$broker_pid")
    python3 -c "
d, value = $end - $start, $record - 1
print(f'$broker: wrote $count x $record B in {$written - $pstart:.1f} s; read {$n} records '
      f'in {d:.2f} s: {$n * value / d / 1e9:.2f} GB/s of values, {$n / d / 1e6:.2f} M msg/s; '
      f'broker CPU {$cpu1 - $cpu0:.2f} s ({($cpu1 - $cpu0) / d:.2f} core)')
"
    stop_broker
done
