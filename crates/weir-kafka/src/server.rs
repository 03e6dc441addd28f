//! The Kafka listener: accepts connections up to [`CONNECTIONS_MAX`], one task each.

use std::future::Future;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use weir_core::Broker;
use weir_core::groups::coordinator::Coordinator;

use crate::api::Context;
use crate::connection;
use crate::groups::Groups;
use crate::limits::{ACCEPT_ERROR_BACKOFF, CONNECTIONS_MAX, FRAME_BYTES_IN_FLIGHT_MAX};
use crate::txns::Txns;
use weir_core::txn::TxnCoordinator;

/// What the Kafka front end tells clients about this broker.
#[derive(Debug, Clone)]
pub struct KafkaConfig {
    /// Host and port clients are told to connect to (Metadata's broker list).
    pub advertised_host: String,
    pub advertised_port: i32,
    pub node_id: i32,
    pub cluster_id: String,
}

/// Serves Kafka clients on `listener` until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    broker: Arc<Broker>,
    coordinator: Coordinator,
    txn_coordinator: TxnCoordinator,
    config: KafkaConfig,
    shutdown: impl Future<Output = ()>,
) {
    let groups = Groups::new(coordinator, broker.clone());
    tokio::spawn(groups.clone().run_timer());
    let txns = Txns::new(txn_coordinator, broker.clone(), groups.clone());
    txns.start();
    let context = Arc::new(Context {
        broker,
        config,
        groups,
        txns,
        session: crate::acls::Session::default(),
    });
    let permits = Arc::new(Semaphore::new(CONNECTIONS_MAX));
    let frame_budget = Arc::new(Semaphore::new(FRAME_BYTES_IN_FLIGHT_MAX));
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            _ = &mut shutdown => return,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                tracing::warn!(%error, "accept failed");
                tokio::time::sleep(ACCEPT_ERROR_BACKOFF).await;
                continue;
            }
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            tracing::warn!(%peer, "connection limit reached; closing the new connection");
            continue;
        };
        let context = context.clone();
        let frame_budget = frame_budget.clone();
        tokio::spawn(async move {
            if let Err(error) = connection::run(stream, &context, &frame_budget).await {
                tracing::debug!(%peer, %error, "connection closed");
            }
            drop(permit);
        });
    }
}
