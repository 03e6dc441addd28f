//! `weir serve`: open and recover the store, keep it maintained (retention, compaction,
//! checkpoints), and close it cleanly on SIGINT or SIGTERM. The Kafka and RocketMQ
//! listeners start here once they exist.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use weir_storage::store::Store;

use crate::settings::Settings;

/// How often retention, compaction and checkpoints are considered.
const MAINTENANCE_PERIOD: Duration = Duration::from_secs(1);

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

pub fn run(settings: Settings) -> anyhow::Result<()> {
    tracing::info!(
        data_dir = %settings.data_dir.display(),
        kafka_addr = %settings.kafka_addr,
        rocketmq_addr = %settings.rocketmq_addr,
        admin_addr = %settings.admin_addr,
        "starting weir"
    );
    let started = Instant::now();
    let (store, report) = Store::open(&settings.data_dir, settings.store.clone(), now_ms())
        .with_context(|| format!("opening the store in {}", settings.data_dir.display()))?;
    tracing::info!(
        partitions = report.partitions,
        wal_last_index = ?report.wal_last_index,
        wal_entries_replayed = report.wal_entries_replayed,
        wal_entries_skipped = report.wal_entries_skipped,
        indexes_rebuilt = report.indexes_rebuilt,
        bytes_scanned = report.partition_bytes_scanned,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "storage recovered"
    );
    for truncated in &report.truncated {
        tracing::warn!(%truncated, "cut a torn or corrupt tail during recovery");
    }
    for id in store.partitions() {
        if let Ok(offsets) = store.offsets(&id) {
            tracing::info!(
                partition = %id,
                log_start = offsets.log_start_offset,
                log_end = offsets.log_end_offset,
                "partition"
            );
        }
    }
    let store = Arc::new(store);
    let stop = Arc::new(AtomicBool::new(false));
    let maintenance = {
        let (store, stop) = (store.clone(), stop.clone());
        std::thread::Builder::new()
            .name("maintenance".into())
            .spawn(move || maintain(&store, &stop))
            .context("starting the maintenance thread")?
    };

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(wait_for_shutdown_signal())?;
    tracing::info!("shutting down");

    stop.store(true, Ordering::Release);
    maintenance.thread().unpark();
    if maintenance.join().is_err() {
        anyhow::bail!("the maintenance thread panicked");
    }
    let store = Arc::into_inner(store).context("the store is still shared at shutdown")?;
    store.close(now_ms()).context("closing the store")?;
    tracing::info!("stopped cleanly");
    Ok(())
}

fn maintain(store: &Store, stop: &AtomicBool) {
    while !stop.load(Ordering::Acquire) {
        match store.maintain(now_ms()) {
            Ok(report) if report.segments_deleted > 0 || report.partitions_compacted > 0 => {
                tracing::info!(?report, "maintenance");
            }
            Ok(_) => {}
            Err(error) => tracing::error!(%error, "maintenance failed"),
        }
        std::thread::park_timeout(MAINTENANCE_PERIOD);
    }
}

async fn wait_for_shutdown_signal() -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = signal(SignalKind::terminate()).context("listening for SIGTERM")?;
    let mut interrupt = signal(SignalKind::interrupt()).context("listening for SIGINT")?;
    tokio::select! {
        _ = terminate.recv() => tracing::info!("SIGTERM received"),
        _ = interrupt.recv() => tracing::info!("SIGINT received"),
    }
    Ok(())
}
