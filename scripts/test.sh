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

step "format"
cargo fmt --all --check

step "lints"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "architecture: weir-storage has no async runtime and no sockets"
if cargo tree -p weir-storage -e normal --prefix none | grep -Eq '^(tokio|mio|socket2|hyper|tonic) '; then
    echo "weir-storage must not depend on an async runtime or network crate:"
    cargo tree -p weir-storage -e normal --prefix none | grep -E '^(tokio|mio|socket2|hyper|tonic) '
    exit 1
fi
if grep -rnE 'std::net|tokio' crates/weir-storage/src; then
    echo "weir-storage must not use sockets or tokio"
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
(cd crates/weir-kafka && cargo fuzz run -s none decode_request -- \
    -max_total_time=30 -rss_limit_mb=1024 -print_final_stats=1)
