#!/usr/bin/env bash
# Resident memory of an idle broker holding many partitions, all created through the Kafka
# API (confluent-kafka AdminClient): TOPICS topics × PARTITIONS partitions (default
# 100 × 100 = 10,000), then SETTLE seconds with no traffic, then VmRSS and open descriptors.
# With TANSU_BIN, the peer broker (memory engine) is measured the same way in the same run.
#
#   cargo build --release && ./scripts/bench-partitions.sh
#   TOPICS=100 PARTITIONS=100 SETTLE=10 TANSU_BIN=/path/to/nisshi ./scripts/bench-partitions.sh
set -euo pipefail
source "$(dirname "$0")/bench-lib.sh"
port=${WEIR_BENCH_PORT:-19193}
topics=${TOPICS:-100}
partitions=${PARTITIONS:-100}
settle=${SETTLE:-10}

for broker in "${brokers[@]}"; do
    start_broker "$broker" "$port"
    sleep 1
    idle=$(rss_kib "$broker_pid")
    start=$(date +%s.%N)
    .venv/bin/python - "$port" "$topics" "$partitions" <<'PY'
import sys
from confluent_kafka.admin import AdminClient, NewTopic
port, topics, partitions = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
admin = AdminClient({"bootstrap.servers": f"127.0.0.1:{port}"})
# Ten topics per request, so no single request runs into the client's timeout.
names = [f"idle-{i:04d}" for i in range(topics)]
for i in range(0, topics, 10):
    futures = admin.create_topics(
        [NewTopic(n, partitions, 1) for n in names[i : i + 10]], request_timeout=120
    )
    for future in futures.values():
        future.result(180)
metadata = admin.list_topics(timeout=60)
count = sum(len(t.partitions) for name, t in metadata.topics.items() if name.startswith("idle-"))
print(f"created {count} partitions in {topics} topics (metadata agrees)")
PY
    created=$(date +%s.%N)
    sleep "$settle"
    fds=$(ls "/proc/$broker_pid/fd" | wc -l)
    peak=$(awk '/^VmHWM/ {print $2}' "/proc/$broker_pid/status")
    echo "$broker: $topics x $partitions partitions created in" \
        "$(python3 -c "print(f'{$created-$start:.1f}')") s; after ${settle} s idle:" \
        "VmRSS $(( $(rss_kib "$broker_pid") / 1024 )) MiB (idle before creating: $((idle / 1024)) MiB," \
        "peak $((peak / 1024)) MiB); $fds open descriptors"
    stop_broker
done
