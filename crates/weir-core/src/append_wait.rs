//! Waiting for the next append to any of several partitions: what a consumer's long poll
//! over many partitions needs (Kafka's Fetch with `min_bytes` not yet reached). The wait is
//! a plain [`Future`] over [`event_listener`] listeners, so any executor can drive it and
//! the core stays free of a runtime.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use event_listener::EventListener;
use weir_storage::store::TopicPartition;

use crate::Broker;

/// Completes on the first append to (or deletion of) any partition it was taken for.
/// Take it *before* reading the partitions, so that no append slips in between the read
/// and the wait. With no partitions it never completes: bound the wait with a timeout.
pub struct AppendWait {
    listeners: Vec<EventListener>,
}

impl Broker {
    /// Listens for appends to every partition of `ids` at once.
    pub fn listen_appends_any<'a>(
        &self,
        ids: impl IntoIterator<Item = &'a TopicPartition>,
    ) -> AppendWait {
        AppendWait {
            listeners: ids.into_iter().map(|id| self.listen_appends(id)).collect(),
        }
    }
}

impl Future for AppendWait {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        // Every listener is polled so that each registers the waker; one firing is enough.
        let mut fired = false;
        for listener in &mut self.listeners {
            if Pin::new(listener).poll(cx).is_ready() {
                fired = true;
            }
        }
        if fired {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::task::Wake;

    use weir_storage::batch::BatchBuilder;
    use weir_storage::store::StoreConfig;

    use super::*;
    use crate::{BrokerConfig, TopicId};

    struct Flag(std::sync::atomic::AtomicBool);

    impl Wake for Flag {
        fn wake(self: Arc<Self>) {
            self.0.store(true, std::sync::atomic::Ordering::SeqCst);
        }
    }

    #[test]
    fn an_append_to_any_partition_completes_the_wait() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (broker, _) = Broker::open(
            dir.path(),
            StoreConfig::default(),
            BrokerConfig::default(),
            0,
        )
        .expect("open");
        broker
            .create_topic("t", TopicId([9; 16]), 3, &[], false)
            .expect("create");
        let ids: Vec<TopicPartition> = (0..3).map(|p| TopicPartition::new("t", p)).collect();
        let mut wait = broker.listen_appends_any(&ids);
        let flag = Arc::new(Flag(false.into()));
        let waker = std::task::Waker::from(flag.clone());
        let mut cx = Context::from_waker(&waker);
        assert!(Pin::new(&mut wait).poll(&mut cx).is_pending());

        let mut batch = BatchBuilder::new(0, 1);
        batch.push(1, None, Some(b"v"), &[]);
        broker.append(&ids[2], &batch.build(), 0).expect("append");

        assert!(flag.0.load(std::sync::atomic::Ordering::SeqCst), "woken");
        assert!(Pin::new(&mut wait).poll(&mut cx).is_ready());
    }

    #[test]
    fn no_partitions_never_completes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (broker, _) = Broker::open(
            dir.path(),
            StoreConfig::default(),
            BrokerConfig::default(),
            0,
        )
        .expect("open");
        let mut wait = broker.listen_appends_any(&[]);
        let waker = std::task::Waker::noop();
        let mut cx = Context::from_waker(waker);
        assert!(Pin::new(&mut wait).poll(&mut cx).is_pending());
    }
}
