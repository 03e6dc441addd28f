//! `weir serve`: open and recover the store, keep it maintained (retention, compaction,
//! checkpoints), and close it cleanly on SIGINT or SIGTERM. The Kafka and RocketMQ
//! listeners start here once they exist.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use weir_core::Broker;
use weir_core::groups::coordinator::Coordinator;
use weir_kafka::KafkaConfig;
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
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    // Signals are caught from the first moment, so a SIGTERM during recovery still stops
    // the broker cleanly rather than killing it.
    let signals = runtime.block_on(async { ShutdownSignals::new() })?;
    tracing::info!(
        data_dir = %settings.data_dir.display(),
        kafka_addr = %settings.kafka_addr,
        rocketmq_addr = %settings.rocketmq_addr,
        admin_addr = %settings.admin_addr,
        "starting weir"
    );
    let broker = Arc::new(open_broker(&settings)?);
    let cluster_id = cluster_id(&settings.data_dir)?;
    let stop = Arc::new(AtomicBool::new(false));
    let maintenance = {
        let (broker, stop) = (broker.clone(), stop.clone());
        std::thread::Builder::new()
            .name("maintenance".into())
            .spawn(move || maintain(broker.store(), &stop))
            .context("starting the maintenance thread")?
    };
    let served = runtime.block_on(serve_until_signal(
        &settings,
        broker.clone(),
        cluster_id,
        signals,
    ));
    // Connections still open hold the broker; give them a moment, then stop regardless.
    runtime.shutdown_timeout(Duration::from_secs(5));
    tracing::info!("shutting down");
    stop.store(true, Ordering::Release);
    maintenance.thread().unpark();
    if maintenance.join().is_err() {
        anyhow::bail!("the maintenance thread panicked");
    }
    served?;
    let broker = Arc::into_inner(broker).context("the broker is still shared at shutdown")?;
    broker.close(now_ms()).context("closing the store")?;
    tracing::info!("stopped cleanly");
    Ok(())
}

fn open_broker(settings: &Settings) -> anyhow::Result<Broker> {
    let started = Instant::now();
    let (broker, report) = Broker::open(
        &settings.data_dir,
        settings.store.clone(),
        settings.broker.clone(),
        now_ms(),
    )
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
    let store = broker.store();
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
    Ok(broker)
}

/// Runs the listeners until SIGINT or SIGTERM.
async fn serve_until_signal(
    settings: &Settings,
    broker: Arc<Broker>,
    cluster_id: String,
    mut signals: ShutdownSignals,
) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(settings.kafka_addr)
        .await
        .with_context(|| format!("binding the Kafka listener to {}", settings.kafka_addr))?;
    let bound = listener
        .local_addr()
        .context("the Kafka listener's address")?;
    let config = KafkaConfig {
        advertised_host: bound.ip().to_string(),
        advertised_port: i32::from(bound.port()),
        node_id: settings.node_id,
        cluster_id,
    };
    let started = Instant::now();
    let coordinator = Coordinator::open(broker.clone(), settings.groups.clone(), now_ms())
        .context("rebuilding the group coordinator from __consumer_offsets")?;
    tracing::info!(
        elapsed_ms = started.elapsed().as_millis() as u64,
        "group coordinator ready"
    );
    let txn_coordinator = weir_kafka::txns::restore(&broker, weir_core::txn::TxnConfig::default())
        .context("rebuilding the transaction coordinator from __transaction_state")?;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(weir_kafka::serve(
        listener,
        broker,
        coordinator,
        txn_coordinator,
        config,
        async {
            let _ = stop_rx.await;
        },
    ));
    tracing::info!(addr = %bound, "kafka listening");
    signals.recv().await;
    let _ = stop_tx.send(());
    let _ = server.await;
    Ok(())
}

struct ShutdownSignals {
    terminate: tokio::signal::unix::Signal,
    interrupt: tokio::signal::unix::Signal,
}

impl ShutdownSignals {
    fn new() -> anyhow::Result<Self> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Self {
            terminate: signal(SignalKind::terminate()).context("listening for SIGTERM")?,
            interrupt: signal(SignalKind::interrupt()).context("listening for SIGINT")?,
        })
    }

    async fn recv(&mut self) {
        tokio::select! {
            _ = self.terminate.recv() => tracing::info!("SIGTERM received"),
            _ = self.interrupt.recv() => tracing::info!("SIGINT received"),
        }
    }
}

/// The cluster's id, made at the first start and kept in the data directory.
fn cluster_id(data_dir: &std::path::Path) -> anyhow::Result<String> {
    let path = data_dir.join("cluster.id");
    if let Ok(id) = std::fs::read_to_string(&path) {
        let id = id.trim();
        if !id.is_empty() && id.len() <= 64 {
            return Ok(id.to_string());
        }
    }
    let id = uuid::Uuid::new_v4().simple().to_string();
    std::fs::write(&path, &id).with_context(|| format!("writing {}", path.display()))?;
    Ok(id)
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
