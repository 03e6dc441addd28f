#!/usr/bin/env bash
# kafka-python's own integration tests (test/integration of its 3.0.12 source
# distribution) against one `weir serve`, the way kafka-python runs them against an external
# broker: KAFKA_URI set, so the fixtures only connect and never spawn Kafka.
#
#   run.sh          run the tests in allowlist.txt; exit non-zero unless every one passed
#   run.sh --all    run every test and print PASS/FAIL/SKIP per test (to grow the list)
#
# Extra arguments after the mode go to pytest (e.g. `run.sh --all -k admin`).
# Needs WEIR_BIN (the weir binary, as tests/clients does) and the repository's .venv
# (scripts/test.sh creates it from tests/clients/requirements.txt); PYTHON overrides it.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../../.." && pwd)

# The pinned suite: the version of kafka-python the clients tests also pin.
KAFKA_PYTHON_VERSION=3.0.12
# The broker version the suite gates its tests and request versions on. 4.0, not the
# 3.9 of the shared reference: weir advertises ListOffsets v10 (issue 3), a Kafka 4.0
# version, so kafka-python itself infers 4.0 from weir (README.md, "Why 4.0.0").
SUITE_KAFKA_VERSION=${KAFKA_VERSION:-4.0.0}
# One test may take this long before pytest-timeout fails it: the slowest allow-listed
# test takes a few seconds; a test that waits for something weir lacks (a consumer group)
# would otherwise hang until the suite's own 300 s default.
PER_TEST_TIMEOUT_S=${PER_TEST_TIMEOUT_S:-15}
# How long weir may take to bind its listener on a fresh data directory (milliseconds
# normally; generous for a loaded 2-core CI machine).
START_TIMEOUT_S=30
# The log line weir prints once the Kafka listener is bound (crates/weir/src/serve.rs).
LISTENING='kafka listening addr='

mode=allowlist
if [[ ${1:-} == --all ]]; then
    mode=all
    shift
fi

python=${PYTHON:-$repo/.venv/bin/python}
[[ -x $python ]] || { echo "no python at $python: run scripts/test.sh once, or set PYTHON"; exit 2; }
weir_bin=${WEIR_BIN:-}
[[ -n $weir_bin && -x $weir_bin ]] || {
    echo "WEIR_BIN must name the weir binary: cargo build && export WEIR_BIN=\${CARGO_TARGET_DIR:-target}/debug/weir"
    exit 2
}

# Codec libraries for the lz4/snappy/zstd tests, installed once per change of the list
# (a stamp beside the venv remembers it, as scripts/test.sh does for its own list).
codecs_stamp=$(dirname "$python")/../.kafka-python-compat.sha256
if ! (cd "$here" && sha256sum --status -c "$codecs_stamp" 2>/dev/null); then
    "$python" -m pip install --quiet --disable-pip-version-check --no-input -r "$here/requirements.txt"
    (cd "$here" && sha256sum requirements.txt >"$codecs_stamp")
fi

# ---- the suite: downloaded once into a cache dir the repository ignores (/target) ------
cache=${KPSUITE_CACHE:-$repo/target/compat/kafka-python}
src=$cache/kafka_python-$KAFKA_PYTHON_VERSION
if [[ ! -d $src/test/integration ]]; then
    mkdir -p "$cache"
    "$python" -m pip download --quiet --disable-pip-version-check --no-input \
        --no-deps --no-binary :all: "kafka-python==$KAFKA_PYTHON_VERSION" -d "$cache"
    tar -xzf "$cache/kafka_python-$KAFKA_PYTHON_VERSION.tar.gz" -C "$cache"
fi
# The sdist ships neither test/__init__.py nor test/service.py. This shim is weir's, not
# kafka-python's: with KAFKA_URI set the fixtures only build ExternalService(host, port)
# and call its no-op open/close; SpawnedService (which starts a real Kafka) must never be
# reached, so it fails loudly if it is.
touch "$src/test/__init__.py"
cat >"$src/test/service.py" <<'EOF'
"""weir's shim for kafka-python's missing test/service.py (see tests/compat/kafka-python)."""


class ExternalService:
    """A broker someone else runs: nothing to start or stop."""

    def __init__(self, host, port):
        self.host = host
        self.port = port

    def open(self):
        pass

    def close(self):
        pass

    def start(self):
        pass

    def stop(self):
        pass


class SpawnedService:
    """Starting a real Kafka is not what this run does: KAFKA_URI must be set."""

    def __init__(self, *args, **kwargs):
        raise RuntimeError("SpawnedService used: KAFKA_URI is not set (weir shim)")
EOF

# ---- weir: one process, fresh data dir, killed on every exit path ----------------------
work=$(mktemp -d)
weir_pid=
cleanup() {
    if [[ -n $weir_pid ]]; then
        kill "$weir_pid" 2>/dev/null || true
        wait "$weir_pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT
# The suite's fixture models its broker as node 0 (KafkaFixture.instance(0, ...)) and
# test_create_partitions places new partitions on broker 0 by number: weir is told to be
# that node (its own default is 1).
# Its group tests use 3 s sessions (test_group), below Kafka's default
# group.min.session.timeout.ms of 6 s, and expect the quick first rebalance of a test
# broker: both lowered here, as a test broker's properties would.
printf 'node_id = 0\n[groups]\nmin_session_timeout_ms = 1000\ninitial_rebalance_delay_ms = 0\n' >"$work/weir.toml"
# Every listener on a port the OS picks, so runs (and other tests) never collide.
WEIR_LOG=info "$weir_bin" serve --config "$work/weir.toml" --data-dir "$work/data" \
    --kafka-addr 127.0.0.1:0 --rocketmq-addr 127.0.0.1:0 --admin-addr 127.0.0.1:0 \
    </dev/null >"$work/weir.log" 2>&1 &
weir_pid=$!
addr=
for ((i = 0; i < START_TIMEOUT_S * 10; i++)); do
    addr=$(grep -m1 -o "${LISTENING}[0-9.]*:[0-9]*" "$work/weir.log" | sed "s/^${LISTENING}//" || true)
    [[ -n $addr ]] && break
    kill -0 "$weir_pid" 2>/dev/null || break
    sleep 0.1
done
if [[ -z $addr ]]; then
    echo "weir did not start listening within ${START_TIMEOUT_S}s:"
    cat "$work/weir.log"
    exit 1
fi
echo "weir listening on $addr (pid $weir_pid)"

# ---- pytest ------------------------------------------------------------------------------
if [[ $mode == allowlist ]]; then
    mapfile -t tests < <(grep -vE '^[[:space:]]*(#|$)' "$here/allowlist.txt" | sed 's/[[:space:]]*$//')
    ((${#tests[@]})) || { echo "allowlist.txt lists no tests"; exit 1; }
else
    tests=(test/integration)
fi
status=0
# signal: a timed-out test fails alone (the suite's default, thread, ends the whole run).
# log_level: the suite captures DEBUG logs of every client; WARNING keeps a failure readable.
(cd "$src" && env KAFKA_VERSION="$SUITE_KAFKA_VERSION" KAFKA_URI="tcp://$addr" \
    KAFKA_ROOT="$src" PYTHONPATH=. \
    "$python" -m pytest -p no:cacheprovider -o log_level=WARNING -o addopts= \
    --timeout="$PER_TEST_TIMEOUT_S" --timeout-method=signal \
    -W ignore::DeprecationWarning -q -rfE --junitxml="$work/junit.xml" \
    "${tests[@]}" "$@") || status=$?

if [[ ! -s $work/junit.xml ]]; then
    echo "pytest wrote no report (exit $status): see its output above"
    exit 1
fi
# Every test's outcome, from the JUnit report: pytest's own summary hides passes and
# counts a skipped allow-listed test as fine, but an allow-listed test must pass.
"$python" - "$work/junit.xml" "$mode" "$src" <<'EOF' || status=1
import os
import sys
import xml.etree.ElementTree as ET

report, mode, src = sys.argv[1], sys.argv[2], sys.argv[3]


def node_id(classname, name):
    """test.integration.test_x.TestY + test_z -> test/integration/test_x.py::TestY::test_z"""
    parts = classname.split(".")
    for i in range(len(parts), 0, -1):
        path = "/".join(parts[:i]) + ".py"
        if os.path.isfile(os.path.join(src, path)):
            return "::".join([path, *parts[i:], name])
    return f"{classname}::{name}"


outcomes = {}
for case in ET.parse(report).iter("testcase"):
    name = node_id(case.get("classname", ""), case.get("name", ""))
    if case.find("failure") is not None or case.find("error") is not None:
        outcome = "FAIL"
    elif case.find("skipped") is not None:
        outcome = "SKIP"
    else:
        outcome = "PASS"
    # A test that passed but whose teardown errored is reported twice: the worst wins.
    if outcomes.get(name) != "FAIL":
        outcomes[name] = outcome
counts = {}
for name, outcome in sorted(outcomes.items()):
    counts[outcome] = counts.get(outcome, 0) + 1
    if mode == "all" or outcome != "PASS":
        print(f"{outcome} {name}")
print(" ".join(f"{k.lower()}={v}" for k, v in sorted(counts.items())))
sys.exit(0 if mode == "all" or set(outcomes.values()) == {"PASS"} else 1)
EOF

if ! kill -0 "$weir_pid" 2>/dev/null; then
    echo "weir exited during the run:"
    tail -n 40 "$work/weir.log"
    status=1
elif grep -q 'panicked at' "$work/weir.log"; then
    echo "weir logged a panic:"
    grep -A5 'panicked at' "$work/weir.log" | head -n 40
    status=1
fi
if [[ $mode == all ]]; then
    exit 0
fi
if ((status != 0)); then
    echo "the last lines weir logged:"
    tail -n 40 "$work/weir.log"
fi
exit "$status"
