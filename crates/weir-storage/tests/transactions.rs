//! Transactions through the store: transactional appends open a producer's transaction,
//! markers written by `append_control` close it, the last stable offset and the aborted
//! transactions follow, reads stop where asked, and all of it is rebuilt on reopen — from
//! the snapshot, from the log alone, from the WAL, and after files are cut at a random
//! point past their last fsync (seeds printed; `WEIR_TXN_SEED=N` replays one).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use weir_storage::batch::{self, BatchBuilder, BatchHeader, ControlType};
use weir_storage::producer_state::ProducerError;
use weir_storage::store::{Store, StoreConfig, StoreError, TopicPartition};
use weir_storage::topic_config::{FlushPolicy, TopicConfig};

#[path = "common/rng.rs"]
mod rng;
use rng::Rng;

const NOW: i64 = 1_700_000_000_000;
const TRANSACTIONAL: i16 = 0x10;

fn open(dir: &Path) -> Store {
    Store::open(dir, StoreConfig::default(), NOW)
        .expect("store opens")
        .0
}

fn setup(dir: &Path, flush: FlushPolicy) -> (Store, TopicPartition) {
    let store = open(dir);
    let id = TopicPartition::new("txn", 0);
    let mut config = TopicConfig {
        flush,
        ..TopicConfig::default()
    };
    config.partition.segment_bytes = 4096;
    store.create_partition(&id, config).expect("create");
    (store, id)
}

/// A transactional batch of `records` records from `pid` at `epoch`, sequence `seq`.
fn txn_batch(pid: i64, epoch: i16, seq: i32, records: usize) -> Vec<u8> {
    let mut builder = BatchBuilder::new(0, NOW);
    builder.producer_id = pid;
    builder.producer_epoch = epoch;
    builder.base_sequence = seq;
    builder.attributes = TRANSACTIONAL;
    for i in 0..records {
        builder.push(NOW, None, Some(format!("{pid}-{seq}-{i}").as_bytes()), &[]);
    }
    builder.build()
}

fn plain_batch() -> Vec<u8> {
    let mut builder = BatchBuilder::new(0, NOW);
    builder.push(NOW, None, Some(b"plain"), &[]);
    builder.build()
}

/// Appends transactional data for producers, tracking their next sequences.
struct Producers {
    next_seq: HashMap<i64, i32>,
}

impl Producers {
    fn new() -> Self {
        Self {
            next_seq: HashMap::new(),
        }
    }

    fn send(&mut self, store: &Store, id: &TopicPartition, pid: i64, records: usize) -> (i64, i64) {
        let seq = self.next_seq.entry(pid).or_insert(0);
        let appended = store
            .append_durable(id, &txn_batch(pid, 0, *seq, records), NOW)
            .expect("transactional append");
        *seq += records as i32;
        (appended.base_offset, appended.last_offset)
    }
}

fn marker(store: &Store, id: &TopicPartition, pid: i64, commit: bool) -> i64 {
    let appended = store
        .append_control(id, pid, 0, commit, 5, NOW)
        .expect("marker");
    store.wait_durable(&appended).expect("durable");
    assert_eq!(appended.base_offset, appended.last_offset);
    appended.base_offset
}

#[test]
fn markers_move_the_lso_and_record_aborts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, id) = setup(dir.path(), FlushPolicy::Async);
    let mut producers = Producers::new();
    store.append(&id, &plain_batch(), NOW).expect("plain"); // 0
    assert_eq!(store.last_stable_offset(&id).expect("lso"), 1);
    assert_eq!(producers.send(&store, &id, 7, 2), (1, 2));
    assert_eq!(producers.send(&store, &id, 8, 1), (3, 3));
    store.append(&id, &plain_batch(), NOW).expect("plain"); // 4
    let offsets = store.offsets(&id).expect("offsets");
    assert_eq!((offsets.high_watermark, offsets.last_stable_offset), (5, 1));
    assert_eq!(store.last_stable_offset(&id).expect("lso"), 1);

    // read_committed reads stop before the open transaction; uncommitted ones do not.
    let slice = store
        .read_bounded(&id, 0, 1, 1 << 20)
        .expect("read")
        .expect("data below the LSO");
    assert_eq!((slice.first_offset, slice.last_offset), (0, 0));
    assert!(
        store
            .read_bounded(&id, 1, 1, 1 << 20)
            .expect("read")
            .is_none()
    );
    let all = store.read(&id, 0, 1 << 20).expect("read").expect("data");
    assert_eq!(all.last_offset, 4);

    assert_eq!(marker(&store, &id, 8, true), 5);
    assert_eq!(
        store.last_stable_offset(&id).expect("lso"),
        1,
        "7 is still open"
    );
    assert_eq!(marker(&store, &id, 7, false), 6);
    assert_eq!(store.last_stable_offset(&id).expect("lso"), 7);
    assert_eq!(
        store.aborted_transactions(&id, 0, 7).expect("aborted"),
        vec![(7, 1)]
    );
    assert_eq!(
        store.aborted_transactions(&id, 7, 100).expect("aborted"),
        vec![]
    );
    assert_eq!(
        store.aborted_transactions(&id, 6, 100).expect("aborted"),
        vec![(7, 1)]
    );
    assert_eq!(
        store.aborted_transactions(&id, 0, 1).expect("aborted"),
        vec![]
    );

    // The marker batch is stored as Kafka's: control + transactional, one record, ABORT.
    let slice = store
        .read_bounded(&id, 6, 7, 1 << 20)
        .expect("read")
        .expect("marker");
    let bytes = slice.read_to_vec().expect("bytes");
    let header = BatchHeader::parse(&bytes).expect("header");
    assert!(header.is_control() && header.is_transactional());
    assert_eq!((header.producer_id, header.producer_epoch), (7, 0));
    let records = batch::decode_records(&bytes).expect("records");
    let control = batch::control_record(&records[0]).expect("control record");
    assert_eq!(control.control_type, ControlType::Abort);
    assert_eq!(control.coordinator_epoch, Some(5));

    // A producer's next transaction after its marker opens anew.
    assert_eq!(producers.send(&store, &id, 7, 1), (7, 7));
    assert_eq!(store.last_stable_offset(&id).expect("lso"), 7);
}

#[test]
fn markers_are_fenced_by_epoch() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, id) = setup(dir.path(), FlushPolicy::Async);
    store
        .append(&id, &txn_batch(3, 2, 0, 1), NOW)
        .expect("epoch 2");
    match store.append_control(&id, 3, 1, true, 0, NOW) {
        Err(StoreError::Producer(ProducerError::InvalidEpoch { current: 2, .. })) => {}
        other => panic!("expected a fenced marker, got {other:?}"),
    }
    assert_eq!(
        store.offsets(&id).expect("offsets").log_end_offset,
        1,
        "nothing written"
    );
    // The coordinator aborts with a bumped epoch (a fenced producer's transaction).
    store
        .append_control(&id, 3, 3, false, 0, NOW)
        .expect("epoch 3");
    assert_eq!(store.producer_epoch(&id, 3).expect("epoch"), Some(3));
    assert_eq!(store.last_stable_offset(&id).expect("lso"), 2);
    match store.append(&id, &txn_batch(3, 2, 1, 1), NOW) {
        Err(StoreError::Producer(ProducerError::InvalidEpoch { .. })) => {}
        other => panic!("the old epoch's data must be fenced, got {other:?}"),
    }
    // Markers for a producer the partition never saw are accepted (Kafka does too).
    store
        .append_control(&id, 44, 0, true, 0, NOW)
        .expect("unknown producer");
}

/// What the store says about transactions, for comparing before and after a reopen.
fn txn_view(store: &Store, id: &TopicPartition) -> (i64, Vec<(i64, i64)>) {
    (
        store.last_stable_offset(id).expect("lso"),
        store
            .aborted_transactions(id, 0, i64::MAX)
            .expect("aborted"),
    )
}

/// Two producers interleaving, one open at the end: LSO held back, one abort recorded.
fn interleave(store: &Store, id: &TopicPartition) -> (i64, Vec<(i64, i64)>) {
    let mut producers = Producers::new();
    for round in 0..20 {
        producers.send(store, id, 1, 3);
        producers.send(store, id, 2, 1);
        store.append(id, &plain_batch(), NOW).expect("plain");
        marker(store, id, 1, round % 3 != 0);
        marker(store, id, 2, round % 2 == 0);
    }
    producers.send(store, id, 2, 2);
    let view = txn_view(store, id);
    assert!(view.0 < store.offsets(id).expect("offsets").high_watermark);
    assert_eq!(view.1.len(), 7 + 10);
    view
}

#[test]
fn transactions_survive_a_clean_reopen_and_a_lost_snapshot() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, id) = setup(dir.path(), FlushPolicy::Async);
    let expected = interleave(&store, &id);
    store.close(NOW).expect("close");

    let store = open(dir.path());
    assert_eq!(txn_view(&store, &id), expected, "from the snapshot");
    drop(store);

    let snapshot = dir.path().join("partitions/txn-0/producers.snapshot");
    std::fs::remove_file(&snapshot).expect("remove snapshot");
    let store = open(dir.path());
    assert_eq!(txn_view(&store, &id), expected, "rebuilt from the log");
    store.close(NOW).expect("close");

    // A damaged snapshot is rebuilt too.
    let mut bytes = std::fs::read(&snapshot).expect("snapshot written again");
    let last = bytes.len() - 10;
    bytes[last] ^= 0xff;
    std::fs::write(&snapshot, &bytes).expect("damage");
    let store = open(dir.path());
    assert_eq!(
        txn_view(&store, &id),
        expected,
        "rebuilt past a damaged snapshot"
    );
}

#[test]
fn transactions_are_replayed_from_the_wal_and_trimmed_by_delete_records() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, id) = setup(dir.path(), FlushPolicy::Sync);
    let expected = interleave(&store, &id);
    // No checkpoint: the partition log may hold it all, the WAL surely does.
    drop(store);
    let store = open(dir.path());
    assert_eq!(txn_view(&store, &id), expected, "after a crash");

    // DeleteRecords past the first aborted marker forgets it, but not the open one.
    let (lso, aborted) = expected;
    let cut = aborted[1].1; // the second aborted transaction's first offset
    store.delete_records(&id, cut).expect("delete records");
    let (lso_after, aborted_after) = txn_view(&store, &id);
    assert_eq!(lso_after, lso);
    assert_eq!(aborted_after, aborted[1..].to_vec());
    store.close(NOW).expect("close");
    let store = open(dir.path());
    assert_eq!(txn_view(&store, &id), (lso, aborted[1..].to_vec()));
}

/// The model over what the log holds: read every batch back and apply the rules directly.
fn model_from_log(store: &Store, id: &TopicPartition) -> (i64, Vec<(i64, i64)>) {
    let offsets = store.offsets(id).expect("offsets");
    let mut open: BTreeMap<i64, i64> = BTreeMap::new();
    let mut aborted = Vec::new();
    let mut at = offsets.log_start_offset;
    while let Some(slice) = store.read(id, at, 1 << 20).expect("read") {
        let bytes = slice.read_to_vec().expect("bytes");
        for walked in batch::headers(&bytes) {
            let (position, header) = walked.expect("stored batches parse");
            if header.is_transactional() && !header.is_control() {
                open.entry(header.producer_id).or_insert(header.base_offset);
            } else if header.is_control() {
                let one = &bytes[position..position + header.total_len()];
                let records = batch::decode_records(one).expect("records");
                let kind = batch::control_record(&records[0])
                    .expect("control")
                    .control_type;
                let first = open.remove(&header.producer_id);
                if kind == ControlType::Abort {
                    aborted.push((header.producer_id, first.unwrap_or(header.base_offset)));
                }
            }
        }
        at = slice.last_offset + 1;
    }
    let lso = open
        .values()
        .min()
        .map_or(offsets.high_watermark, |&f| f.min(offsets.high_watermark));
    (lso, aborted)
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).expect("list") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                stack.push(path)
            } else {
                out.push(path)
            }
        }
    }
    out.sort();
    out
}

fn seed() -> u64 {
    std::env::var("WEIR_TXN_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
        })
}

#[test]
fn transactions_are_rebuilt_after_files_are_cut_at_a_random_point() {
    let seed = seed();
    println!("seed {seed}");
    let mut rng = Rng(seed | 1);
    for round in 0..6 {
        let dir = tempfile::tempdir().expect("tempdir");
        let (store, id) = setup(dir.path(), FlushPolicy::Sync);
        let mut producers = Producers::new();
        let steps = 50 + rng.below(150);
        let checkpoint_at = rng.below(steps);
        let mut synced = BTreeMap::new();
        let mut acked_end = 0;
        for step in 0..steps {
            let pid = rng.below(3) as i64;
            match rng.below(5) {
                0 => acked_end = marker(&store, &id, pid, rng.one_in(2)) + 1,
                1 => {
                    acked_end = store
                        .append_durable(&id, &plain_batch(), NOW)
                        .expect("plain")
                        .last_offset
                        + 1
                }
                _ => {
                    acked_end = producers
                        .send(&store, &id, pid, 1 + rng.below(3) as usize)
                        .1
                        + 1
                }
            }
            if step == checkpoint_at {
                store.checkpoint(NOW).expect("checkpoint");
                synced = files_under(dir.path())
                    .into_iter()
                    .map(|p| {
                        let len = std::fs::metadata(&p).expect("stat").len();
                        (p, len)
                    })
                    .collect();
            }
        }
        for (path, len) in store.wal().synced_lengths() {
            synced.insert(path, len);
        }
        drop(store);
        for path in files_under(dir.path()) {
            let len = std::fs::metadata(&path).expect("stat").len();
            let floor = synced.get(&path).copied().unwrap_or(0).min(len);
            let cut = floor + rng.below(len - floor + 1);
            let file = std::fs::OpenOptions::new()
                .write(true)
                .open(&path)
                .expect("open");
            file.set_len(cut).expect("cut");
        }
        let store = open(dir.path());
        let end = store.offsets(&id).expect("offsets").log_end_offset;
        assert!(
            end >= acked_end,
            "seed {seed} round {round}: acknowledged data lost"
        );
        assert_eq!(
            txn_view(&store, &id),
            model_from_log(&store, &id),
            "seed {seed} round {round}"
        );
    }
}

/// Compaction does not know which transactions committed: a transactional record (here an
/// aborted one) must not supersede an earlier committed value of its key, and the
/// transaction's batches and marker stay.
#[test]
fn compaction_never_lets_a_transactional_record_supersede() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path());
    let id = TopicPartition::new("compacted", 0);
    let mut config = TopicConfig::default();
    config.partition.segment_bytes = 1024;
    config.partition.cleanup_policy = weir_storage::partition::CleanupPolicy {
        delete: false,
        compact: true,
    };
    store.create_partition(&id, config).expect("create");
    let keyed = |key: &[u8], value: &[u8], pid: i64| {
        let mut builder = BatchBuilder::new(0, NOW);
        if pid >= 0 {
            builder.producer_id = pid;
            builder.producer_epoch = 0;
            builder.base_sequence = 0;
            builder.attributes = TRANSACTIONAL;
        }
        builder.push(NOW, Some(key), Some(value), &[]);
        builder.build()
    };
    store
        .append(&id, &keyed(b"k", b"committed", -1), NOW)
        .expect("plain");
    store
        .append(&id, &keyed(b"k", b"aborted", 5), NOW)
        .expect("txn");
    store
        .append_control(&id, 5, 0, false, 0, NOW)
        .expect("abort");
    // Superseded plain values, to show compaction did run; then enough to seal segments.
    store
        .append(&id, &keyed(b"p", b"old", -1), NOW)
        .expect("plain");
    for i in 0..40 {
        let value = vec![b'x'; 100];
        let key = if i < 39 {
            format!("pad{i}")
        } else {
            "p".to_string()
        };
        store
            .append(&id, &keyed(key.as_bytes(), &value, -1), NOW)
            .expect("pad");
    }
    let report = store.maintain(NOW).expect("maintain");
    assert_eq!(report.partitions_compacted, 1, "compaction ran");
    let mut values = Vec::new();
    let mut at = store.offsets(&id).expect("offsets").log_start_offset;
    while let Some(slice) = store.read(&id, at, 1 << 20).expect("read") {
        let bytes = slice.read_to_vec().expect("bytes");
        for walked in batch::headers(&bytes) {
            let (position, header) = walked.expect("batch");
            let one = &bytes[position..position + header.total_len()];
            if !header.is_control() {
                for record in batch::decode_records(one).expect("records") {
                    values.push((record.key.unwrap_or_default(), record.value));
                }
            }
        }
        at = slice.last_offset + 1;
    }
    let has = |key: &[u8], value: &[u8]| values.contains(&(key.to_vec(), Some(value.to_vec())));
    assert!(has(b"k", b"committed"), "{values:?}");
    assert!(has(b"k", b"aborted"));
    assert!(!has(b"p", b"old"), "p's old value was compacted away");
    assert_eq!(
        store
            .aborted_transactions(&id, 0, i64::MAX)
            .expect("aborted"),
        vec![(5, 1)]
    );
}
