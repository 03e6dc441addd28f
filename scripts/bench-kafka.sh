#!/usr/bin/env bash
# Kafka throughput of a release `weir serve`, driven by kcat on the current librdkafka (the
# one inside the pinned confluent-kafka wheel, as ../shared/reference/performance.md
# describes), beside this machine's loopback bandwidth measured in the same run.
#
#   cargo build --release && ./scripts/test.sh   # once: .venv with confluent-kafka, kcat
#   ./scripts/bench-kafka.sh                      # prints one line per load
#
# Loads: 1 topic × 8 partitions; 1,000,000 records of 100 B and 200,000 of 1 KiB; acks=1
# and acks=all; `async` and `sync` topics; each produced, then consumed from the start.
set -euo pipefail
cd "$(dirname "$0")/.."

port=${WEIR_BENCH_PORT:-19192}
work=$(mktemp -d)
trap 'kill "$weir_pid" 2>/dev/null || true; rm -rf "$work"' EXIT
target_dir=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
weir="$target_dir/release/weir"
[[ -x $weir ]] || { echo "build first: cargo build --release"; exit 1; }
[[ -x .venv/bin/python ]] || { echo "run ./scripts/test.sh once first (it makes .venv)"; exit 1; }

# kcat on the wheel's librdkafka.
lib=$(find .venv -path '*confluent_kafka.libs/librdkafka-*.so.1' | head -n 1)
[[ -n $lib ]] || { echo "no librdkafka in .venv"; exit 1; }
mkdir -p "$work/lib" && cp "$lib" "$work/lib/librdkafka.so.1"
export LD_LIBRARY_PATH="$work/lib"

# Anchor: loopback TCP bandwidth, one stream, 4 GiB.
.venv/bin/python - <<'EOF'
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
EOF

cat >"$work/weir.toml" <<EOF
num_partitions = 8
EOF
"$weir" serve --config "$work/weir.toml" --data-dir "$work/data" --kafka-addr "127.0.0.1:$port" \
    2>"$work/weir.log" &
weir_pid=$!
for _ in $(seq 100); do grep -q "kafka listening" "$work/weir.log" && break; sleep 0.1; done

python3 -c "
import sys
with open('$work/100b', 'w') as f:
    for i in range(1_000_000): f.write('%09d' % i + 'x' * 90 + '\n')
with open('$work/1k', 'w') as f:
    for i in range(200_000): f.write('%09d' % i + 'x' * 1014 + '\n')
"

create_topic() { # name flush
    .venv/bin/python - "$1" "$2" "$port" <<'EOF'
import sys
from confluent_kafka.admin import AdminClient, NewTopic
name, flush, port = sys.argv[1], sys.argv[2], sys.argv[3]
admin = AdminClient({"bootstrap.servers": f"127.0.0.1:{port}"})
admin.create_topics([NewTopic(name, 8, 1, config={"flush.policy": flush})])[name].result(30)
EOF
}

run() { # label file records bytes acks flush
    local topic="t-$RANDOM-$RANDOM"
    create_topic "$topic" "$6"
    local start end
    start=$(date +%s.%N)
    kcat -P -b "127.0.0.1:$port" -t "$topic" -X acks="$5" -X linger.ms=5 \
        -X batch.num.messages=10000 -X queue.buffering.max.messages=1000000 -l "$2"
    end=$(date +%s.%N)
    local produce
    produce=$(python3 -c "d=$end-$start; print(f'{$3/d/1e6:.2f} M msg/s, {$3*$4/d/1e6:.0f} MB/s')")
    start=$(date +%s.%N)
    local n
    n=$(kcat -C -b "127.0.0.1:$port" -t "$topic" -o beginning -e -q -f '%o\n' | wc -l)
    end=$(date +%s.%N)
    local consume
    consume=$(python3 -c "d=$end-$start; print(f'{$n/d/1e6:.2f} M msg/s')")
    echo "$1 acks=$5 $6: produce $produce; consume $n records $consume"
}

run "100 B x 1M" "$work/100b" 1000000 100 1 async
run "100 B x 1M" "$work/100b" 1000000 100 all async
run "100 B x 1M" "$work/100b" 1000000 100 all sync
run "1 KiB x 200k" "$work/1k" 200000 1024 1 async
run "1 KiB x 200k" "$work/1k" 200000 1024 all async
run "1 KiB x 200k" "$work/1k" 200000 1024 all sync
echo "weir RSS at the end: $(ps -o rss= -p "$weir_pid") KiB"
