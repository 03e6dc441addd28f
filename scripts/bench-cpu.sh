#!/usr/bin/env bash
# Broker CPU and end-to-end latency at RATE (default 5,000) single-record Produce requests/s
# (confluent-kafka, linger.ms=0, batch.num.messages=1: one record per request, checked from
# the client's own statistics) with one consumer reading them as they come, on a fresh broker
# per round; CPU is utime + stime from /proc/PID/stat over the producing window only.
# ROUNDS rounds (default 3) alternate between the brokers: weir, then the peer when TANSU_BIN
# names it. Extra arguments go to bench-latency.py (e.g. --acks all).
#
#   cargo build --release && ./scripts/bench-cpu.sh
#   ROUNDS=3 SECONDS_EACH=10 TANSU_BIN=/path/to/nisshi ./scripts/bench-cpu.sh
set -euo pipefail
source "$(dirname "$0")/bench-lib.sh"
port=${WEIR_BENCH_PORT:-19195}
rate=${RATE:-5000}
rounds=${ROUNDS:-3}
seconds=${SECONDS_EACH:-10}

for round in $(seq "$rounds"); do
    for broker in "${brokers[@]}"; do
        start_broker "$broker" "$port"
        echo "round $round, $broker:"
        .venv/bin/python scripts/bench-latency.py --bootstrap "127.0.0.1:$port" --rate "$rate" \
            --seconds "$seconds" --broker-pid "$broker_pid" --batch-num-messages 1 "$@" |
            sed 's/^/  /'
        stop_broker
    done
done
