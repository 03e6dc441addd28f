#!/usr/bin/env bash
# The whole test suite, as CI runs it (.ci/run calls exactly this). It first installs
# what the tests need, then checks formatting, lints and the architecture invariants,
# then runs every test with nextest and the doc tests.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n== %s\n' "$*"; }

step "install: Rust components and cargo-nextest"
command -v cargo >/dev/null || { echo "cargo is required (https://rustup.rs)"; exit 1; }
if ! cargo fmt --version >/dev/null 2>&1 || ! cargo clippy --version >/dev/null 2>&1; then
    rustup component add rustfmt clippy
fi
if ! cargo nextest --version >/dev/null 2>&1; then
    cargo install --locked cargo-nextest
fi

step "install: real Kafka clients (kcat, Python venv, node modules)"
# CI runs as root on a fresh Debian machine with no stdin: apt-get only when something is
# missing, and every installer quiet and non-interactive. Client versions are pinned in
# tests/clients/requirements.txt and tests/clients/package-lock.json.
apt_packages=()
command -v kcat >/dev/null || apt_packages+=(kcat)
command -v python3 >/dev/null || apt_packages+=(python3)
python3 -c 'import venv, ensurepip' 2>/dev/null || apt_packages+=(python3-venv)
command -v node >/dev/null || apt_packages+=(nodejs)
command -v npm >/dev/null || apt_packages+=(npm)
if ((${#apt_packages[@]})); then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${apt_packages[@]}" >/dev/null
fi
# Reinstall only when the pinned list changed (a stamp beside the venv remembers it).
requirements=tests/clients/requirements.txt
stamp=.venv/.requirements.sha256
if [[ ! -x .venv/bin/python ]] || ! sha256sum --status -c "$stamp" 2>/dev/null; then
    [[ -x .venv/bin/python ]] || python3 -m venv .venv
    .venv/bin/pip install --quiet --disable-pip-version-check --no-input -r "$requirements"
    sha256sum "$requirements" >"$stamp"
fi
stamp=tests/clients/node_modules/.package-lock.sha256
if ! sha256sum --status -c "$stamp" 2>/dev/null; then
    (cd tests/clients && npm ci --silent --no-audit --no-fund)
    sha256sum tests/clients/package-lock.json >"$stamp"
fi

step "format"
cargo fmt --all --check

step "lints"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "architecture: storage and core have no async runtime and no sockets"
for crate in weir-storage weir-core; do
    if cargo tree -p "$crate" -e normal --prefix none | grep -Eq '^(tokio|mio|socket2|hyper|tonic) '; then
        echo "$crate must not depend on an async runtime or network crate:"
        cargo tree -p "$crate" -e normal --prefix none | grep -E '^(tokio|mio|socket2|hyper|tonic) '
        exit 1
    fi
done
if grep -rnE 'std::net|tokio' crates/weir-storage/src crates/weir-core/src; then
    echo "weir-storage and weir-core must not use sockets or tokio"
    exit 1
fi

step "tests"
cargo nextest run --workspace --locked --no-fail-fast
cargo test --workspace --locked --doc

# ---- fuzz (weir-kafka): a short cargo-fuzz run of request decoding -------------------
# The guard in front of kafka-protocol's decoder, fed arbitrary frames for ~30 s on the
# stable toolchain (no sanitizer: `-s none`). crates/weir-kafka/fuzz/README.md has the
# longer run to do by hand.
step "fuzz: decode_request (30 s)"
if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install --locked cargo-fuzz
fi
fuzz_log=$(mktemp)
if (cd crates/weir-kafka && cargo fuzz run -s none decode_request -- \
    -max_total_time=30 -rss_limit_mb=1024 -print_final_stats=1) >"$fuzz_log" 2>&1; then
    grep -E '^(stat::number_of_executed_units|stat::peak_rss_mb|Done )' "$fuzz_log" || tail -n 3 "$fuzz_log"
    rm -f "$fuzz_log"
else
    tail -n 60 "$fuzz_log"
    echo "the fuzz run failed (full log: $fuzz_log)"
    exit 1
fi

step "real clients against weir serve (tests/clients)"
cargo build --locked --bin weir
target_dir=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
export WEIR_BIN="$target_dir/debug/weir"
# Both runners run even if the first fails, so one report shows every client's failures.
clients_status=0
.venv/bin/python -m pytest -c tests/clients/pytest.ini tests/clients -q || clients_status=$?
(cd tests/clients && node --test kafkajs/kafkajs.test.js kafkajs/groups.test.js) || clients_status=$?

step "kafka-python's own integration tests, allow-listed (tests/compat/kafka-python)"
# The same weir binary; the suite's sdist is cached under target/. Its failures join the
# clients' status so one report shows every client's failures.
tests/compat/kafka-python/run.sh || clients_status=$?
exit "$clients_status"
