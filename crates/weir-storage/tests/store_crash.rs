//! Crash and power-loss tests of the whole store.
//!
//! A writer runs as a child process (this test binary re-executed with `WEIR_CRASH_ROLE`
//! set, filtered to one test) appending to `sync` and `async` partitions and printing
//! each acknowledged append. The parent kills it with SIGKILL at a random moment, or, for
//! power loss, cuts every file back to a random length past what the last fsync covered,
//! and checks on reopen: every append acknowledged under `sync` is there with its values,
//! offsets are contiguous from the log start, and every batch served passes its CRC.
//! Seeds are printed; `WEIR_CRASH_SEED=N` replays one.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use weir_storage::batch::{self, BatchBuilder, BatchHeader};
use weir_storage::store::{Store, StoreConfig, TopicPartition};
use weir_storage::topic_config::{FlushPolicy, TopicConfig};

const ROLE_ENV: &str = "WEIR_CRASH_ROLE";
const DIR_ENV: &str = "WEIR_CRASH_DIR";
const NOW: i64 = 1_700_000_000_000;
/// Partitions 0..SYNC_PARTITIONS are `sync`; the rest `async`.
const SYNC_PARTITIONS: i32 = 3;
const PARTITIONS: i32 = 4;

fn partition(p: i32) -> TopicPartition {
    TopicPartition::new("crash", p)
}

/// Small segments and WAL files, frequent checkpoints: every boundary gets crossed.
fn config() -> StoreConfig {
    let mut config = StoreConfig::default();
    config.wal.segment_bytes = 256 * 1024;
    config.checkpoint_wal_bytes = 512 * 1024;
    config
}

fn topic(p: i32) -> TopicConfig {
    let mut config = TopicConfig::default();
    config.partition.segment_bytes = 128 * 1024;
    config.flush = if p < SYNC_PARTITIONS {
        FlushPolicy::Sync
    } else {
        FlushPolicy::Async
    };
    config
}

/// The value written at `offset` of partition `p`: a reader can tell any record's
/// rightful content from its position alone.
fn value(p: i32, offset: i64) -> Vec<u8> {
    let mut v = format!("p{p}-o{offset}-").into_bytes();
    v.resize(40 + (offset % 200) as usize, b'.');
    v
}

/// The child: append forever (until killed), one thread per partition, printing
/// `acked P FIRST LAST` for every acknowledged append.
fn writer(dir: &Path, with_checkpoints: bool) {
    let (store, _) = Store::open(dir, config(), NOW).expect("child opens the store");
    for p in 0..PARTITIONS {
        if !store.partitions().contains(&partition(p)) {
            store
                .create_partition(&partition(p), topic(p))
                .expect("create");
        }
    }
    let store = std::sync::Arc::new(store);
    let threads: Vec<_> = (0..PARTITIONS)
        .map(|p| {
            let store = store.clone();
            std::thread::spawn(move || {
                let id = partition(p);
                let mut round = 0u64;
                loop {
                    let next = store.offsets(&id).expect("offsets").log_end_offset;
                    let count = 1 + (round % 7) as i64;
                    let mut builder = BatchBuilder::new(0, NOW);
                    for i in 0..count {
                        builder.push(NOW, Some(b"k"), Some(&value(p, next + i)), &[]);
                    }
                    let appended = store
                        .append_durable(&id, &builder.build(), NOW)
                        .expect("append");
                    assert_eq!(appended.base_offset, next, "one writer per partition");
                    println!(
                        "acked {p} {} {}",
                        appended.base_offset, appended.last_offset
                    );
                    if with_checkpoints && round.is_multiple_of(50) {
                        store
                            .maintain(NOW + round as i64 * 1_000)
                            .expect("maintain");
                    }
                    round += 1;
                }
            })
        })
        .collect();
    for thread in threads {
        let _ = thread.join();
    }
}

/// Runs the child writer in `dir`, kills it after `run_for`, returns every acked range.
fn run_writer(dir: &Path, test_name: &str, run_for: Duration) -> Vec<(i32, i64, i64)> {
    let mut child = spawn_child(dir, test_name);
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    std::thread::sleep(run_for);
    child.kill().expect("SIGKILL the writer");
    child.wait().expect("reap the writer");
    reader.join().expect("reader thread");
    let mut acked = Vec::new();
    for line in rx.try_iter() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if let ["acked", p, first, last] = fields.as_slice() {
            acked.push((
                p.parse().expect("p"),
                first.parse().expect("first"),
                last.parse().expect("last"),
            ));
        }
    }
    acked
}

fn spawn_child(dir: &Path, test_name: &str) -> Child {
    Command::new(std::env::current_exe().expect("test binary"))
        .args([test_name, "--exact", "--nocapture", "--test-threads", "1"])
        .env(ROLE_ENV, "writer")
        .env(DIR_ENV, dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn the writer")
}

/// Reopens the store and checks every partition: contiguous offsets from the log start,
/// every batch's CRC, values as written, and every acked range present.
fn check(dir: &Path, acked: &[(i32, i64, i64)], must_hold: impl Fn(i32) -> bool, seed: u64) {
    let (store, report) = Store::open(dir, config(), NOW)
        .unwrap_or_else(|e| panic!("seed {seed}: reopen failed: {e}"));
    let mut ends = BTreeMap::new();
    for p in 0..PARTITIONS {
        let id = partition(p);
        let Ok(offsets) = store.offsets(&id) else {
            continue;
        };
        let mut expected = offsets.log_start_offset;
        let mut offset = offsets.log_start_offset;
        while let Some(slice) = store.read(&id, offset, 1 << 20).expect("read") {
            let bytes = slice.read_to_vec().expect("read slice");
            let mut pos = 0;
            while pos < bytes.len() {
                let header = BatchHeader::parse(&bytes[pos..]).expect("served header parses");
                let one = &bytes[pos..pos + header.total_len()];
                batch::check_crc(one)
                    .unwrap_or_else(|e| panic!("seed {seed}: torn batch served in {id}: {e}"));
                for record in batch::decode_records(one).expect("served records decode") {
                    let at = header.base_offset + i64::from(record.offset_delta);
                    assert_eq!(at, expected, "seed {seed}: {id} offsets are contiguous");
                    assert_eq!(record.value, Some(value(p, at)), "seed {seed}: {id}@{at}");
                    expected += 1;
                }
                pos += header.total_len();
            }
            offset = slice.last_offset + 1;
        }
        assert_eq!(
            expected, offsets.high_watermark,
            "seed {seed}: {id} read up to the HW"
        );
        ends.insert(p, expected);
    }
    for &(p, _, last) in acked.iter().filter(|(p, _, _)| must_hold(*p)) {
        let end = ends.get(&p).copied().unwrap_or(0);
        assert!(
            last < end,
            "seed {seed}: acknowledged {}@{last} lost (log end {end}); recovery: {report:?}",
            partition(p)
        );
    }
    store.close(NOW).expect("close");
}

fn seed() -> u64 {
    std::env::var("WEIR_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
        })
}

#[path = "common/rng.rs"]
mod rng;
use rng::Rng;

#[test]
fn sigkill_mid_stream_loses_nothing_acknowledged() {
    const NAME: &str = "sigkill_mid_stream_loses_nothing_acknowledged";
    if std::env::var(ROLE_ENV).is_ok() {
        let dir = PathBuf::from(std::env::var(DIR_ENV).expect("dir"));
        writer(&dir, true);
        return;
    }
    let seed = seed();
    println!("seed {seed}");
    let mut rng = Rng(seed | 1);
    let dir = tempfile::tempdir().expect("tempdir");
    let mut all_acked = Vec::new();
    let started = Instant::now();
    let mut rounds = 0;
    while rounds < 25 && started.elapsed() < Duration::from_secs(20) {
        let run_for = Duration::from_millis(30 + rng.below(250));
        let acked = run_writer(dir.path(), NAME, run_for);
        all_acked.extend(acked);
        // A process crash loses nothing written: async appends must survive too.
        check(dir.path(), &all_acked, |_| true, seed);
        rounds += 1;
    }
    assert!(rounds >= 5, "only {rounds} rounds ran");
    assert!(
        all_acked.len() > 100,
        "the writer acknowledged only {} appends",
        all_acked.len()
    );
}

/// Cuts every file of the store to a random length no shorter than what it held at the
/// last fsync, sometimes overwriting the cut-off region's start with garbage: what a power
/// cut may leave of unsynced writes.
fn cut_unsynced(dir: &Path, synced: &BTreeMap<PathBuf, u64>, rng: &mut Rng) {
    for path in files_under(dir) {
        let len = std::fs::metadata(&path).expect("stat").len();
        let floor = synced.get(&path).copied().unwrap_or(0).min(len);
        let cut = floor + rng.below(len - floor + 1);
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .expect("open");
        file.set_len(cut).expect("truncate");
        if cut > floor && rng.below(3) == 0 {
            let garbage: Vec<u8> = (0..(cut - floor).min(64))
                .map(|_| rng.next() as u8)
                .collect();
            std::os::unix::fs::FileExt::write_all_at(&file, &garbage, cut - garbage.len() as u64)
                .expect("garble");
        }
    }
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

#[test]
fn power_loss_keeps_every_synced_append() {
    let seed = seed();
    println!("seed {seed}");
    let mut rng = Rng(seed | 1);
    for round in 0..8 {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path(), config(), NOW).expect("open").0;
        for p in 0..PARTITIONS {
            store
                .create_partition(&partition(p), topic(p))
                .expect("create");
        }
        let mut acked = Vec::new();
        let appends = 200 + rng.below(400);
        let checkpoint_at = rng.below(appends);
        // What an fsync covered: after a checkpoint every file as it stood; after that, the
        // WAL's own account of its synced lengths.
        let mut synced = BTreeMap::new();
        for i in 0..appends {
            let p = (i % PARTITIONS as u64) as i32;
            let id = partition(p);
            let next = store.offsets(&id).expect("offsets").log_end_offset;
            let mut builder = BatchBuilder::new(0, NOW);
            for k in 0..1 + rng.below(5) as i64 {
                builder.push(NOW, None, Some(&value(p, next + k)), &[]);
            }
            let appended = store
                .append_durable(&id, &builder.build(), NOW)
                .expect("append");
            acked.push((p, appended.base_offset, appended.last_offset));
            if i == checkpoint_at {
                store.checkpoint(NOW).expect("checkpoint");
                synced = files_under(dir.path())
                    .into_iter()
                    .map(|path| {
                        let len = std::fs::metadata(&path).expect("stat").len();
                        (path, len)
                    })
                    .collect();
            }
        }
        for (path, len) in store.wal().synced_lengths() {
            synced.insert(path, len);
        }
        // The power goes. Dropping the store releases its files and lock; whatever it
        // might still write is undone by the cut below, which models what the disk held.
        drop(store);
        cut_unsynced(dir.path(), &synced, &mut rng);
        check(dir.path(), &acked, |p| p < SYNC_PARTITIONS, seed ^ round);
    }
}
