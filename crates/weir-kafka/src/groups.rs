//! Runs the group coordinator for the Kafka front end: parks JoinGroup and SyncGroup
//! requests on tickets until the coordinator answers them, waits for the coordinator's
//! records to be durable before any answer leaves, and wakes the coordinator when its next
//! timeout is due (sessions, rebalances, the initial delay, offset expiry).
//!
//! The coordinator itself (`weir_core::groups::coordinator`) is a state machine with the
//! time passed in; this is the only place that reads the clock and sleeps for it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::{Notify, oneshot};
use weir_core::Broker;
use weir_core::groups::Ticket;
use weir_core::groups::classic::Reply;
use weir_core::groups::coordinator::{Coordinator, Done};

/// The longest the timer sleeps without looking again (a deadline added by a call that
/// raced the timer's read is picked up by the wake-up, this is only a backstop).
const TIMER_IDLE_MAX: Duration = Duration::from_secs(60);

pub struct Groups {
    coordinator: Coordinator,
    broker: Arc<Broker>,
    waiters: Mutex<Waiters>,
    next_ticket: AtomicU64,
    /// Woken after every call that may have moved a deadline earlier.
    timer: Notify,
}

/// Requests waiting for the coordinator's answer, by ticket.
#[derive(Default)]
struct Waiters {
    parked: HashMap<Ticket, oneshot::Sender<Reply>>,
}

/// The coordinator's records could not be written or made durable.
#[derive(Debug, Clone, Copy)]
pub struct WriteFailed;

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

impl Groups {
    pub fn new(coordinator: Coordinator, broker: Arc<Broker>) -> Arc<Groups> {
        Arc::new(Groups {
            coordinator,
            broker,
            waiters: Mutex::new(Waiters::default()),
            next_ticket: AtomicU64::new(1),
            timer: Notify::new(),
        })
    }

    /// Ticks the coordinator whenever its next deadline is due, until every other holder
    /// of the [`Groups`] is gone (the server stopped).
    pub async fn run_timer(self: Arc<Self>) {
        let weak = Arc::downgrade(&self);
        drop(self);
        loop {
            let Some(groups) = weak.upgrade() else { return };
            let wait = match groups.coordinator.next_deadline() {
                Some(deadline) => {
                    let ms = deadline.saturating_sub(now_ms()).max(0);
                    Duration::from_millis(u64::try_from(ms).unwrap_or(0)).min(TIMER_IDLE_MAX)
                }
                None => TIMER_IDLE_MAX,
            };
            let woken = {
                let notified = groups.timer.notified();
                tokio::pin!(notified);
                tokio::select! {
                    _ = tokio::time::sleep(wait) => false,
                    _ = &mut notified => true,
                }
            };
            if woken {
                // A call moved a deadline: look again before ticking.
                continue;
            }
            let done = groups.coordinator.tick(now_ms());
            let _ = groups.finish(done).await;
        }
    }

    pub fn coordinator(&self) -> &Coordinator {
        &self.coordinator
    }

    /// A fresh ticket with its receiver registered, to hand to a parking call.
    fn park(&self) -> (Ticket, oneshot::Receiver<Reply>) {
        let ticket = self.next_ticket.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.waiters
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .parked
            .insert(ticket, tx);
        (ticket, rx)
    }

    /// Forgets a ticket whose request went away unanswered (the connection closed).
    fn unpark(&self, ticket: Ticket) {
        self.waiters
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .parked
            .remove(&ticket);
    }

    /// Waits for the call's records to be durable, then answers the parked requests it
    /// released and returns the call's own answer.
    pub async fn finish<T>(&self, done: Done<T>) -> Result<T, WriteFailed> {
        let mut failed = done.write_failed;
        if let Some(appended) = &done.durable {
            let (tx, rx) = oneshot::channel();
            self.broker.store().on_durable(
                appended,
                Box::new(move |result| {
                    let _ = tx.send(result.is_ok());
                }),
            );
            if !rx.await.unwrap_or(false) {
                tracing::error!("group records did not become durable");
                failed = true;
            }
        }
        if !done.replies.is_empty() {
            let mut waiters = self.waiters.lock().unwrap_or_else(|e| e.into_inner());
            for reply in done.replies {
                let ticket = match &reply {
                    Reply::Join(ticket, _) | Reply::Sync(ticket, _) => *ticket,
                };
                if let Some(tx) = waiters.parked.remove(&ticket) {
                    // The receiver is gone when its connection closed: nothing to tell.
                    let _ = tx.send(reply);
                }
            }
        }
        if failed {
            Err(WriteFailed)
        } else {
            Ok(done.value)
        }
    }

    /// Tells the timer a call may have set an earlier deadline (a member joined, a
    /// rebalance started): it looks again. Commits and heartbeats only push deadlines
    /// later, so they do not wake it.
    pub fn wake_timer(&self) {
        self.timer.notify_one();
    }
}

/// A request parked on a ticket; forgets the ticket if dropped unanswered.
pub struct Parked<'a> {
    groups: &'a Groups,
    ticket: Ticket,
    reply: Option<oneshot::Receiver<Reply>>,
}

impl<'a> Parked<'a> {
    pub fn new(groups: &'a Groups) -> Self {
        let (ticket, reply) = groups.park();
        Parked {
            groups,
            ticket,
            reply: Some(reply),
        }
    }

    pub fn ticket(&self) -> Ticket {
        self.ticket
    }

    /// The coordinator's answer; `None` if it dropped the ticket.
    pub async fn wait(mut self) -> Option<Reply> {
        let reply = self.reply.take()?;
        reply.await.ok()
    }
}

impl Drop for Parked<'_> {
    fn drop(&mut self) {
        self.groups.unpark(self.ticket);
    }
}
