//! `weir serve` as a user runs it: the real binary, its flags and environment variables,
//! recovery of what an earlier run left, and a clean stop on SIGTERM and SIGINT.

use std::process::Command;

use weir_core::{Broker, BrokerConfig, TopicId};
use weir_storage::batch::BatchBuilder;
use weir_storage::store::{StoreConfig, TopicPartition};

mod common;
use common::Weir;

#[test]
fn serve_recovers_existing_data_and_stops_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    {
        let (broker, _) =
            Broker::open(&data, StoreConfig::default(), BrokerConfig::default(), 0).expect("open");
        broker
            .create_topic("orders", TopicId([9; 16]), 3, &[], false)
            .expect("create");
        let id = TopicPartition::new("orders", 2);
        let mut builder = BatchBuilder::new(0, 1_700_000_000_000);
        for _ in 0..3 {
            builder.push(1_700_000_000_000, None, Some(b"v"), &[]);
        }
        broker.append(&id, &builder.build(), 0).expect("append");
        // No close: serve must recover from the WAL.
    }
    let data_arg = data.to_str().expect("utf-8 path");
    let mut server = Weir::spawn(&["--data-dir", data_arg], &[]);
    let recovered = server.wait_for("storage recovered");
    assert!(recovered.contains("partitions=3"), "{recovered}");
    let partition = server.wait_for("partition=orders-2");
    assert!(partition.contains("log_end=3"), "{partition}");
    server.wait_for("kafka listening");
    server.signal("-TERM");
    let status = server.wait_exit();
    assert!(
        status.success(),
        "exit status {status}; log:\n{}",
        server.seen.join("\n")
    );
    assert!(server.seen.iter().any(|l| l.contains("SIGTERM received")));
    assert!(server.seen.iter().any(|l| l.contains("stopped cleanly")));
}

#[test]
fn environment_sets_the_data_dir_and_sigint_stops() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("from-env");
    let mut server = Weir::spawn(&[], &[("WEIR_DATA_DIR", data.as_os_str())]);
    server.wait_for("kafka listening");
    assert!(
        data.join("wal").is_dir(),
        "the store lives where WEIR_DATA_DIR says"
    );
    server.signal("-INT");
    assert!(server.wait_exit().success());
    assert!(server.seen.iter().any(|l| l.contains("SIGINT received")));
}

#[test]
fn restart_after_sigkill_serves_again() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let data_arg = data.to_str().expect("utf-8 path");
    let mut first = Weir::spawn(&["--data-dir", data_arg], &[]);
    first.wait_for("kafka listening");
    first.signal("-KILL");
    assert!(!first.wait_exit().success());
    let mut second = Weir::spawn(&["--data-dir", data_arg], &[]);
    second.wait_for("kafka listening");
    second.signal("-TERM");
    assert!(second.wait_exit().success());
}

#[test]
fn config_file_is_read_and_flags_override_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("weir.toml");
    let from_file = dir.path().join("from-file");
    std::fs::write(
        &config,
        format!(
            "data_dir = {:?}\nkafka_addr = \"127.0.0.1:19092\"\n[storage]\nwal_flush_interval_ms = 50\n",
            from_file.to_str().expect("utf-8")
        ),
    )
    .expect("write config");
    let config_arg = config.to_str().expect("utf-8");
    let mut server = Weir::spawn(
        &["--config", config_arg, "--kafka-addr", "127.0.0.1:0"],
        &[],
    );
    let starting = server.wait_for("starting weir");
    assert!(
        starting.contains("kafka_addr=127.0.0.1:0"),
        "the flag wins: {starting}"
    );
    server.wait_for("kafka listening");
    assert!(
        from_file.join("wal").is_dir(),
        "data_dir came from the file"
    );
    server.signal("-TERM");
    assert!(server.wait_exit().success());
}

#[test]
fn a_bad_config_file_is_refused_with_a_clear_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("weir.toml");
    std::fs::write(&config, "data_dri = \"typo\"\n").expect("write config");
    let output = Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(["serve", "--config", config.to_str().expect("utf-8")])
        .output()
        .expect("run weir");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("data_dri"),
        "the error names the bad key: {stderr}"
    );
}
