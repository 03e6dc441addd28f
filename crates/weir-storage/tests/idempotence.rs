//! Idempotent appends through the store: duplicates answer their original offsets and
//! append nothing, gaps and stale epochs are refused, and the state survives reopening
//! (from the snapshot, from the log's batch headers, after a crash).

use weir_storage::batch::BatchBuilder;
use weir_storage::producer_state::ProducerError;
use weir_storage::store::{Store, StoreConfig, StoreError, TopicPartition};
use weir_storage::topic_config::TopicConfig;

const NOW: i64 = 1_700_000_000_000;

fn open(dir: &std::path::Path) -> Store {
    Store::open(dir, StoreConfig::default(), NOW)
        .expect("store opens")
        .0
}

/// A batch of `records` records from producer `pid` at `epoch`, first sequence `seq`.
fn batch(pid: i64, epoch: i16, seq: i32, records: usize) -> Vec<u8> {
    let mut builder = BatchBuilder::new(0, NOW);
    builder.producer_id = pid;
    builder.producer_epoch = epoch;
    builder.base_sequence = seq;
    for i in 0..records {
        builder.push(NOW, None, Some(format!("v{seq}-{i}").as_bytes()), &[]);
    }
    builder.build()
}

fn log_end(store: &Store, id: &TopicPartition) -> i64 {
    store.offsets(id).expect("offsets").log_end_offset
}

fn setup(dir: &std::path::Path) -> (Store, TopicPartition) {
    let store = open(dir);
    let id = TopicPartition::new("idem", 0);
    store
        .create_partition(&id, TopicConfig::default())
        .expect("create");
    (store, id)
}

#[test]
fn duplicates_return_original_offsets_and_append_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, id) = setup(dir.path());
    let first = store.append(&id, &batch(5, 0, 0, 3), NOW).expect("first");
    assert_eq!((first.base_offset, first.last_offset), (0, 2));
    let second = store.append(&id, &batch(5, 0, 3, 2), NOW).expect("second");
    assert_eq!((second.base_offset, second.last_offset), (3, 4));
    let wal_before = store.wal().last_log_id();

    let retry = store.append(&id, &batch(5, 0, 0, 3), NOW).expect("retry");
    assert_eq!((retry.base_offset, retry.last_offset), (0, 2));
    assert_eq!(log_end(&store, &id), 5, "the retry appended nothing");
    assert_eq!(
        store.wal().last_log_id(),
        wal_before,
        "nor wrote to the WAL"
    );
    store
        .wait_durable(&retry)
        .expect("a duplicate's wait returns");

    // A plain batch (no producer id) is never checked.
    store
        .append(&id, &batch(-1, -1, -1, 1), NOW)
        .expect("plain");
    assert_eq!(log_end(&store, &id), 6);
}

#[test]
fn gaps_stale_epochs_and_unknown_producers_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, id) = setup(dir.path());
    store.append(&id, &batch(8, 2, 0, 1), NOW).expect("first");
    let refused = |records: Vec<u8>| match store.append(&id, &records, NOW) {
        Err(StoreError::Producer(e)) => e,
        other => panic!("expected a producer error, got {other:?}"),
    };
    assert!(matches!(
        refused(batch(8, 2, 5, 1)),
        ProducerError::OutOfOrder { .. }
    ));
    assert!(matches!(
        refused(batch(8, 1, 1, 1)),
        ProducerError::InvalidEpoch { .. }
    ));
    assert!(matches!(
        refused(batch(8, 3, 1, 1)),
        ProducerError::OutOfOrder { .. }
    ));
    assert!(matches!(
        refused(batch(9, 0, 4, 1)),
        ProducerError::UnknownProducer { .. }
    ));
    let mut two = batch(8, 2, 1, 1);
    two.extend(batch(8, 2, 2, 1));
    assert_eq!(refused(two), ProducerError::MultipleBatches);
    assert_eq!(log_end(&store, &id), 1, "nothing refused was appended");
    store
        .append(&id, &batch(8, 3, 0, 1), NOW)
        .expect("a bumped epoch restarts at 0");
    assert_eq!(store.producer_epoch(&id, 8).expect("epoch"), Some(3));
}

#[test]
fn producer_state_survives_a_clean_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, id) = setup(dir.path());
    store.append(&id, &batch(5, 1, 0, 3), NOW).expect("first");
    store.append(&id, &batch(5, 1, 3, 3), NOW).expect("second");
    store.close(NOW).expect("close");
    assert!(
        dir.path()
            .join("partitions/idem-0/producers.snapshot")
            .is_file()
    );

    let store = open(dir.path());
    let retry = store.append(&id, &batch(5, 1, 3, 3), NOW).expect("retry");
    assert_eq!((retry.base_offset, retry.last_offset), (3, 5));
    assert_eq!(log_end(&store, &id), 6);
    assert!(matches!(
        store.append(&id, &batch(5, 0, 6, 1), NOW),
        Err(StoreError::Producer(ProducerError::InvalidEpoch { .. }))
    ));
    let next = store.append(&id, &batch(5, 1, 6, 1), NOW).expect("next");
    assert_eq!(next.base_offset, 6);
}

#[test]
fn producer_state_is_rebuilt_from_the_log_and_the_wal() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, id) = setup(dir.path());
    store.append(&id, &batch(5, 0, 0, 2), NOW).expect("first");
    store.checkpoint(NOW).expect("checkpoint");
    // After the checkpoint: only in the WAL and the log's page cache.
    store.append(&id, &batch(5, 0, 2, 2), NOW).expect("second");
    store
        .append(&id, &batch(6, 0, 0, 1), NOW)
        .expect("other producer");
    // A crash: no close, so no snapshot past the checkpoint.
    drop(store);
    {
        let store = open(dir.path());
        let retry = store.append(&id, &batch(5, 0, 2, 2), NOW).expect("retry");
        assert_eq!((retry.base_offset, retry.last_offset), (2, 3));
        let retry = store.append(&id, &batch(6, 0, 0, 1), NOW).expect("retry");
        assert_eq!(retry.base_offset, 4);
        assert_eq!(log_end(&store, &id), 5);
        store.close(NOW).expect("close");
    }
    // Without any snapshot, the whole log's headers are the truth.
    std::fs::remove_file(dir.path().join("partitions/idem-0/producers.snapshot"))
        .expect("remove snapshot");
    let store = open(dir.path());
    let retry = store.append(&id, &batch(5, 0, 0, 2), NOW).expect("retry");
    assert_eq!((retry.base_offset, retry.last_offset), (0, 1));
    assert!(matches!(
        store.append(&id, &batch(5, 0, 7, 1), NOW),
        Err(StoreError::Producer(ProducerError::OutOfOrder { .. }))
    ));
    assert_eq!(
        store
            .append(&id, &batch(5, 0, 4, 1), NOW)
            .expect("in order")
            .base_offset,
        5
    );
}

#[test]
fn a_damaged_snapshot_falls_back_to_the_log() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, id) = setup(dir.path());
    store.append(&id, &batch(5, 0, 0, 2), NOW).expect("first");
    store.close(NOW).expect("close");
    let path = dir.path().join("partitions/idem-0/producers.snapshot");
    let mut bytes = std::fs::read(&path).expect("snapshot");
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&path, bytes).expect("damage");
    let store = open(dir.path());
    let retry = store.append(&id, &batch(5, 0, 0, 2), NOW).expect("retry");
    assert_eq!(retry.base_offset, 0);
    assert_eq!(log_end(&store, &id), 2);
}

#[test]
fn delete_records_forgets_producers_whose_batches_are_gone() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, id) = setup(dir.path());
    store.append(&id, &batch(5, 0, 0, 2), NOW).expect("first");
    store.append(&id, &batch(6, 0, 0, 1), NOW).expect("other");
    assert_eq!(store.delete_records(&id, 2).expect("delete"), 2);
    assert_eq!(store.producer_epoch(&id, 5).expect("epoch"), None);
    assert_eq!(store.producer_epoch(&id, 6).expect("epoch"), Some(0));
    assert!(matches!(
        store.append(&id, &batch(5, 0, 2, 1), NOW),
        Err(StoreError::Producer(ProducerError::UnknownProducer { .. }))
    ));
    // The client restarts the partition's sequence at 0 and goes on.
    store.append(&id, &batch(5, 0, 0, 1), NOW).expect("restart");
}

#[test]
fn batches_replayed_from_the_wal_rebuild_producer_state() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, id) = setup(dir.path());
    store.append(&id, &batch(5, 0, 0, 2), NOW).expect("first");
    store.append(&id, &batch(5, 0, 2, 1), NOW).expect("second");
    drop(store);
    // A crash that lost the partition log's unflushed tail: only the WAL has the batches.
    let partition_dir = dir.path().join("partitions/idem-0");
    for entry in std::fs::read_dir(&partition_dir).expect("list") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "log") {
            std::fs::OpenOptions::new()
                .write(true)
                .open(&path)
                .and_then(|f| f.set_len(0))
                .expect("truncate segment");
        }
    }
    let (store, report) = Store::open(dir.path(), StoreConfig::default(), NOW).expect("reopen");
    assert_eq!(report.wal_entries_replayed, 2);
    let retry = store.append(&id, &batch(5, 0, 2, 1), NOW).expect("retry");
    assert_eq!((retry.base_offset, retry.last_offset), (2, 2));
    assert_eq!(log_end(&store, &id), 3);
}
