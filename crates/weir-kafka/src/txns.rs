//! Runs the transaction coordinator (`weir_core::txn::TxnCoordinator`, a pure state
//! machine) for the Kafka front end, keeping its contract: the records a call produced are
//! appended to `__transaction_state` under the coordinator's lock (so they reach the log in
//! the order the state changed) and are durable before any reply leaves; then the replies
//! are sent; then each transaction's markers are written (data partitions through
//! [`Broker::write_txn_marker`], which wakes long-polling fetchers; the `__consumer_offsets`
//! partition by resolving the producer's pending offsets in the group coordinator), each
//! made durable, and only then is `markers_written` called. A timer drives `tick`.
//!
//! The work after a call runs on its own task, so a client that goes away mid-request
//! never leaves a transaction half-completed. A failed write fail-stops the coordinator:
//! it is rebuilt from the log (as Kafka reloads the partition) and the waiting requests are
//! answered NOT_COORDINATOR, after which clients retry.
//!
//! This is the only place that reads the clock for transactions and sleeps for it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::{Notify, oneshot};
use weir_core::groups::Ticket;
use weir_core::txn::{
    Answer, CONSUMER_OFFSETS_TOPIC, Effects, MarkerWrite, TopicPartition as TxnTp, TxnConfig,
    TxnCoordinator, TxnError, TxnResult, TxnState,
};
use weir_core::{Broker, CoreError};
use weir_storage::store::{Appended, TopicPartition};

use crate::groups::{Groups, now_ms};

/// The longest the timer sleeps without looking again (a backstop: calls that may move a
/// deadline earlier wake it).
const TIMER_IDLE_MAX: Duration = Duration::from_secs(60);

type Waiter = oneshot::Sender<Result<Answer, TxnError>>;

pub struct Txns {
    coordinator: Mutex<TxnCoordinator>,
    broker: Arc<Broker>,
    groups: Arc<Groups>,
    waiters: Mutex<HashMap<Ticket, Waiter>>,
    next_ticket: AtomicU64,
    timer: Notify,
    /// Which transactional id a producer id last belonged to, for Produce's check (the
    /// coordinator is keyed by transactional id). A hint only: every hit is checked
    /// against the coordinator, a miss falls back to a scan.
    by_producer: Mutex<HashMap<i64, String>>,
}

/// Rebuilds the coordinator from `__transaction_state` (empty when the topic does not
/// exist yet: it is created on first use). Call [`Txns::start`] afterwards to finish the
/// transactions that were completing.
pub fn restore(broker: &Broker, config: TxnConfig) -> Result<TxnCoordinator, CoreError> {
    let (records, replay) = broker.replay_txn_records()?;
    let mut coordinator = TxnCoordinator::new(config);
    for record in &records {
        coordinator.apply(record);
    }
    tracing::info!(
        records = replay.records,
        invalid = replay.invalid,
        ids = coordinator.iter().count(),
        "transaction coordinator rebuilt from __transaction_state"
    );
    Ok(coordinator)
}

impl Txns {
    pub fn new(coordinator: TxnCoordinator, broker: Arc<Broker>, groups: Arc<Groups>) -> Arc<Txns> {
        Arc::new(Txns {
            coordinator: Mutex::new(coordinator),
            broker,
            groups,
            waiters: Mutex::new(HashMap::new()),
            next_ticket: AtomicU64::new(1),
            timer: Notify::new(),
            by_producer: Mutex::new(HashMap::new()),
        })
    }

    /// Spawns the timer and the completion of transactions restored mid-completion (their
    /// markers are written again: a marker written twice is harmless to readers).
    pub fn start(self: &Arc<Self>) {
        let restored = self.lock().restored();
        tokio::spawn(self.clone().drive(restored, None));
        tokio::spawn(self.clone().run_timer());
    }

    fn lock(&self) -> MutexGuard<'_, TxnCoordinator> {
        self.coordinator.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Reads the coordinator's state (Produce's check, tests).
    pub fn with<T>(&self, f: impl FnOnce(&TxnCoordinator) -> T) -> T {
        f(&self.lock())
    }

    /// A call that writes nothing and answers at once (TxnOffsetCommit's check).
    pub fn with_mut<T>(&self, f: impl FnOnce(&mut TxnCoordinator) -> T) -> T {
        f(&mut self.lock())
    }

    /// Runs `call` on the coordinator with a fresh ticket and waits for that ticket's
    /// answer: after the call's records are durable, or later (a parked InitProducerId).
    pub async fn call(
        self: &Arc<Self>,
        call: impl FnOnce(&mut TxnCoordinator, Ticket, &mut dyn FnMut() -> Option<i64>, i64) -> Effects,
    ) -> Result<Answer, TxnError> {
        let ticket = self.next_ticket.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.waiters_lock().insert(ticket, tx);
        let (effects, appended) = {
            let mut coordinator = self.lock();
            let mut allocate = self.allocator();
            let effects = call(&mut coordinator, ticket, &mut allocate, now_ms());
            let appended = self.append(&effects);
            (effects, appended)
        };
        self.timer.notify_one();
        tokio::spawn(self.clone().drive(effects, Some(appended)));
        match rx.await {
            Ok(result) => result,
            Err(_) => Err(TxnError::NotCoordinator),
        }
    }

    fn waiters_lock(&self) -> MutexGuard<'_, HashMap<Ticket, Waiter>> {
        self.waiters.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn allocator(&self) -> impl FnMut() -> Option<i64> + '_ {
        move || match self.broker.producer_ids().fresh() {
            Ok(ids) => Some(ids.producer_id),
            Err(error) => {
                tracing::warn!(%error, "allocating a producer id for a transactional id failed");
                None
            }
        }
    }

    /// Appends `effects.records` (under the caller's coordinator lock).
    fn append(&self, effects: &Effects) -> Result<Option<Appended>, CoreError> {
        self.broker.append_txn_records(&effects.records, now_ms())
    }

    /// Makes `appended` durable, answers, writes markers, and follows on with the effects
    /// of `markers_written`, until nothing is left. `appended` is None for effects whose
    /// records are yet to be appended (restored ones have none).
    async fn drive(
        self: Arc<Self>,
        effects: Effects,
        appended: Option<Result<Option<Appended>, CoreError>>,
    ) {
        let mut work = vec![(effects, appended.unwrap_or(Ok(None)))];
        while let Some((effects, appended)) = work.pop() {
            let durable = match appended {
                Ok(Some(appended)) => self.durable(&appended).await,
                Ok(None) => true,
                Err(error) => {
                    tracing::error!(%error, "writing transaction records failed");
                    false
                }
            };
            if !durable {
                // The rebuilt coordinator's completing transactions are finished again.
                let restored = self.fail_stop(effects);
                work.push((restored, Ok(None)));
                continue;
            }
            {
                let mut waiters = self.waiters_lock();
                for reply in effects.replies {
                    if let Some(tx) = waiters.remove(&reply.ticket) {
                        // The receiver is gone when its connection closed: nothing to tell.
                        let _ = tx.send(reply.result);
                    }
                }
            }
            for marker in effects.markers {
                self.write_markers(&marker).await;
                let next = {
                    let mut coordinator = self.lock();
                    let mut allocate = self.allocator();
                    let next = coordinator.markers_written(
                        &marker.transactional_id,
                        marker.producer_id,
                        marker.producer_epoch,
                        &mut allocate,
                        now_ms(),
                    );
                    let appended = self.append(&next);
                    (next, appended)
                };
                self.timer.notify_one();
                work.push(next);
            }
        }
    }

    async fn durable(&self, appended: &Appended) -> bool {
        let (tx, rx) = oneshot::channel();
        self.broker.store().on_durable(
            appended,
            Box::new(move |result| {
                let _ = tx.send(result.is_ok());
            }),
        );
        rx.await.unwrap_or(false)
    }

    /// A write failed: memory ran ahead of the log. Rebuild from the log and answer the
    /// call's requests NOT_COORDINATOR (clients look the coordinator up again and retry).
    fn fail_stop(&self, effects: Effects) -> Effects {
        {
            let mut waiters = self.waiters_lock();
            for reply in effects.replies {
                if let Some(tx) = waiters.remove(&reply.ticket) {
                    let _ = tx.send(Err(TxnError::NotCoordinator));
                }
            }
        }
        let mut coordinator = self.lock();
        let parked = coordinator.shutdown();
        let config = coordinator.config().clone();
        match restore(&self.broker, config) {
            Ok(rebuilt) => *coordinator = rebuilt,
            Err(error) => tracing::error!(%error, "reloading the transaction coordinator failed"),
        }
        let restored = coordinator.restored();
        drop(coordinator);
        let mut waiters = self.waiters_lock();
        for reply in parked.replies {
            if let Some(tx) = waiters.remove(&reply.ticket) {
                let _ = tx.send(Err(TxnError::NotCoordinator));
            }
        }
        restored
    }

    /// Writes `marker` to each of its partitions and waits until each is durable. A
    /// partition that no longer exists is skipped (its transaction went with it).
    async fn write_markers(&self, marker: &MarkerWrite) {
        let commit = marker.result == TxnResult::Commit;
        let mut offsets_done = false;
        for TxnTp { topic, partition } in &marker.partitions {
            if topic == CONSUMER_OFFSETS_TOPIC {
                // Kafka's rule: pending offsets are resolved when the marker reaches the
                // group's offsets partition. The group coordinator keeps them per producer
                // id, so one resolution covers every group of the transaction.
                if !offsets_done {
                    offsets_done = true;
                    let done = self.groups.coordinator().complete_txn(
                        marker.producer_id,
                        commit,
                        now_ms(),
                    );
                    if self.groups.finish(done).await.is_err() {
                        tracing::error!(
                            transactional_id = %marker.transactional_id,
                            "transactional offsets were not made durable"
                        );
                    }
                }
                continue;
            }
            let id = TopicPartition::new(topic, *partition);
            match self.broker.write_txn_marker(
                &id,
                marker.producer_id,
                marker.producer_epoch,
                commit,
                now_ms(),
            ) {
                Ok(appended) => {
                    if !self.durable(&appended).await {
                        tracing::error!(%id, "a transaction marker did not become durable");
                    }
                }
                Err(CoreError::UnknownPartition(_)) => {}
                Err(error) => {
                    tracing::warn!(%id, %error, "writing a transaction marker failed");
                }
            }
        }
    }

    /// Ticks the coordinator when its next deadline is due, until the server stops.
    async fn run_timer(self: Arc<Self>) {
        let weak = Arc::downgrade(&self);
        drop(self);
        loop {
            let Some(txns) = weak.upgrade() else { return };
            let wait = match txns.lock().next_deadline() {
                Some(deadline) => {
                    let ms = deadline.saturating_sub(now_ms()).max(0);
                    Duration::from_millis(u64::try_from(ms).unwrap_or(0)).min(TIMER_IDLE_MAX)
                }
                None => TIMER_IDLE_MAX,
            };
            let woken = {
                let notified = txns.timer.notified();
                tokio::pin!(notified);
                tokio::select! {
                    _ = tokio::time::sleep(wait) => false,
                    _ = &mut notified => true,
                }
            };
            if woken {
                continue;
            }
            let (effects, appended) = {
                let mut coordinator = txns.lock();
                let effects = coordinator.tick(now_ms());
                let appended = txns.append(&effects);
                (effects, appended)
            };
            // Drive inline: the timer waits for the aborts it started.
            let this = txns.clone();
            drop(txns);
            this.drive(effects, Some(appended)).await;
        }
    }

    /// Produce's check of a transactional batch: the producer's transaction is Ongoing
    /// and includes the partition. Errors are Kafka codes. The check and the append are
    /// not atomic: a batch racing its own producer's EndTxn could land after the marker
    /// (as in Kafka before KIP-890); clients await their produces before EndTxn.
    pub fn check_produce(
        &self,
        producer_id: i64,
        epoch: i16,
        topic: &str,
        partition: i32,
    ) -> Result<(), i16> {
        use kafka_protocol::ResponseError as E;
        let coordinator = self.lock();
        let mut by_producer = self.by_producer.lock().unwrap_or_else(|e| e.into_inner());
        let hinted = by_producer
            .get(&producer_id)
            .and_then(|id| coordinator.get(id))
            .filter(|meta| meta.producer_id == producer_id);
        let meta = match hinted {
            Some(meta) => meta,
            None => {
                let Some((id, meta)) = coordinator
                    .iter()
                    .find(|(_, meta)| meta.producer_id == producer_id)
                else {
                    return Err(E::InvalidProducerIdMapping.code());
                };
                // Stale hints of expired ids are dropped wholesale rather than tracked.
                if by_producer.len() >= weir_core::txn::TRANSACTIONAL_IDS_MAX {
                    by_producer.clear();
                }
                by_producer.insert(producer_id, id.to_string());
                meta
            }
        };
        if epoch < meta.producer_epoch {
            return Err(E::InvalidProducerEpoch.code());
        }
        let tp = TxnTp::new(topic, partition);
        if meta.state != TxnState::Ongoing
            || epoch != meta.producer_epoch
            || !meta.partitions.contains(&tp)
        {
            return Err(E::InvalidTxnState.code());
        }
        Ok(())
    }
}
