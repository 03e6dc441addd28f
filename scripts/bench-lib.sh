# Shared by the scripts/bench-*.sh load scripts (source it; it does nothing by itself):
# finds the release `weir`, the test venv and the wheel's librdkafka, and starts and stops
# a broker — weir, or a peer broker already built elsewhere and named by TANSU_BIN (its
# in-memory engine; see ../shared/reference/performance.md). Nothing here builds the peer.

cd "$(dirname "${BASH_SOURCE[0]}")/.."

bench_work=$(mktemp -d)
broker_pid=
trap 'rm -rf "$bench_work"' EXIT

target_dir=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
# WEIR_BIN measures another build (e.g. a copy of the binary before a change).
weir=${WEIR_BIN:-$target_dir/release/weir}
[[ -x $weir ]] || { echo "build first: cargo build --release"; exit 1; }
[[ -x .venv/bin/python ]] || { echo "run ./scripts/test.sh once first (it makes .venv)"; exit 1; }
if [[ -n ${TANSU_BIN:-} && ! -x $TANSU_BIN ]]; then
    echo "TANSU_BIN=$TANSU_BIN is not an executable"
    exit 1
fi

# kcat on the wheel's librdkafka (Debian's kcat links an old one).
lib=$(find .venv -path '*confluent_kafka.libs/librdkafka-*.so.1' | head -n 1)
[[ -n $lib ]] || { echo "no librdkafka in .venv"; exit 1; }
mkdir -p "$bench_work/lib" && cp "$lib" "$bench_work/lib/librdkafka.so.1"
export LD_LIBRARY_PATH="$bench_work/lib"

# The brokers to measure, in order: weir, then the peer when TANSU_BIN names it.
brokers=(weir)
[[ -n ${TANSU_BIN:-} ]] && brokers+=(tansu)

# start_broker NAME PORT [weir.toml lines...]: starts it on 127.0.0.1:PORT with fresh data,
# waits until it accepts connections, sets broker_pid.
start_broker() {
    local name=$1 port=$2
    shift 2
    local dir="$bench_work/$name-$port"
    mkdir -p "$dir"
    case $name in
    weir)
        printf '%s\n' "$@" >"$dir/weir.toml"
        "$weir" serve --config "$dir/weir.toml" --data-dir "$dir/data" \
            --kafka-addr "127.0.0.1:$port" 2>"$dir/log" &
        ;;
    tansu)
        # The memory engine keeps everything in the process; run it from its own folder.
        (cd "$dir" && exec "$TANSU_BIN" broker --listener-url "tcp://127.0.0.1:$port" \
            --advertised-listener-url "tcp://127.0.0.1:$port" \
            --storage-engine memory://tansu/ >"$dir/log" 2>&1) &
        ;;
    *)
        echo "unknown broker $name"
        exit 1
        ;;
    esac
    broker_pid=$!
    for _ in $(seq 200); do
        python3 -c "import socket; socket.create_connection(('127.0.0.1', $port), 0.2)" \
            2>/dev/null && return 0
        sleep 0.1
    done
    echo "$name did not start; its log:"
    cat "$dir/log"
    exit 1
}

stop_broker() {
    if [[ -n $broker_pid ]]; then
        kill "$broker_pid" 2>/dev/null || true
        wait "$broker_pid" 2>/dev/null || true
        broker_pid=
    fi
}
trap 'stop_broker; rm -rf "$bench_work"' EXIT

# create_topic PORT NAME PARTITIONS [key=value...]: through the Kafka API.
create_topic() {
    .venv/bin/python - "$@" <<'EOF'
import sys
from confluent_kafka.admin import AdminClient, NewTopic
port, name, partitions = sys.argv[1], sys.argv[2], int(sys.argv[3])
config = dict(kv.split("=", 1) for kv in sys.argv[4:])
admin = AdminClient({"bootstrap.servers": f"127.0.0.1:{port}"})
admin.create_topics([NewTopic(name, partitions, 1, config=config)])[name].result(30)
EOF
}

# rss_kib PID: resident memory now.
rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }

# cpu_seconds PID: utime + stime of all its threads so far.
cpu_seconds() {
    python3 -c "
import os
fields = open('/proc/$1/stat').read().rsplit(')', 1)[1].split()
print((int(fields[11]) + int(fields[12])) / os.sysconf('SC_CLK_TCK'))"
}
