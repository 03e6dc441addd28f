//! Crash: a child process (this test binary, re-executed in a writer role) appends and
//! prints every index it saw synced; the parent SIGKILLs it at a random moment, then
//! checks every acknowledged index is in the recovered log with its payload.

// Test helpers outside #[test] functions may unwrap too.
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use weir_storage::wal::{EntryRef, Wal, WalConfig};

const CHILD_DIR_ENV: &str = "WEIR_WAL_CRASH_CHILD_DIR";
const TEST_NAME: &str = "sigkill_loses_no_acknowledged_entry";
const ROUNDS: u32 = 20;
const WRITER_THREADS: usize = 4;
/// The child stops on its own after this many entries, should the parent fail to kill it.
const CHILD_MAX_ENTRIES: u64 = 2_000_000;

fn config() -> WalConfig {
    WalConfig {
        segment_bytes: 64 << 10,
        async_flush_interval_ms: 5,
        ..WalConfig::default()
    }
}

fn payload_for(index: u64) -> Vec<u8> {
    let len = (index % 97) as usize * 5;
    (0..len)
        .map(|i| (index as usize).wrapping_mul(131).wrapping_add(i) as u8)
        .collect()
}

#[path = "common/rng.rs"]
mod rng;
use rng::Rng;

#[test]
fn sigkill_loses_no_acknowledged_entry() {
    if let Ok(dir) = std::env::var(CHILD_DIR_ENV) {
        run_writer(Path::new(&dir));
        return;
    }
    let seed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    println!("seed {seed}");
    let mut rng = Rng(seed);
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut total_acked = 0;
    for round in 0..ROUNDS {
        let mut child = Command::new(&exe)
            .args([TEST_NAME, "--exact", "--nocapture", "--test-threads=1"])
            .env(CHILD_DIR_ENV, dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            let mut acked = Vec::new();
            for line in BufReader::new(stdout).lines() {
                // A line cut by the kill has no newline and fails to parse; lines() yields
                // it anyway, so only well-formed "acked N" lines count.
                let Ok(line) = line else { break };
                if let Some(index) = line
                    .strip_prefix("acked ")
                    .and_then(|n| n.parse::<u64>().ok())
                {
                    acked.push(index);
                }
            }
            acked
        });
        std::thread::sleep(Duration::from_millis(30 + rng.next() % 120));
        child.kill().unwrap();
        child.wait().unwrap();
        let acked = reader.join().unwrap();
        total_acked += acked.len();

        let (wal, recovery) = Wal::open(dir.path(), config()).unwrap();
        let entries = wal.read(0, u64::MAX, u64::MAX).unwrap();
        for pair in entries.windows(2) {
            assert_eq!(
                pair[1].index,
                pair[0].index + 1,
                "seed {seed} round {round}: not contiguous"
            );
        }
        for entry in &entries {
            assert_eq!(
                entry.payload,
                payload_for(entry.index),
                "seed {seed} round {round}: entry {} torn",
                entry.index
            );
        }
        let last = recovery.last.map_or(0, |l| l.index);
        for index in &acked {
            assert!(
                *index <= last,
                "seed {seed} round {round}: acked {index} lost (log ends at {last}, {recovery:?})"
            );
        }
        assert_eq!(entries.first().map(|e| e.index), entries.first().map(|_| 1));
    }
    println!("{total_acked} acknowledged entries over {ROUNDS} kills");
    assert!(
        total_acked > 0,
        "seed {seed}: the writer never acknowledged anything"
    );
}

/// The child: continues the log from where it stands, several threads appending and
/// waiting for durability, printing each index once it is synced.
fn run_writer(dir: &Path) {
    let (wal, recovery) = Wal::open(dir, config()).unwrap();
    let wal = Arc::new(wal);
    let next = Arc::new(Mutex::new(recovery.last.map_or(1, |l| l.index + 1)));
    let threads: Vec<_> = (0..WRITER_THREADS)
        .map(|_| {
            let wal = Arc::clone(&wal);
            let next = Arc::clone(&next);
            std::thread::spawn(move || {
                loop {
                    let index = {
                        let mut next = next.lock().unwrap();
                        let index = *next;
                        if index > CHILD_MAX_ENTRIES {
                            return;
                        }
                        let payload = payload_for(index);
                        wal.append(&[EntryRef {
                            term: 1,
                            index,
                            payload: &payload,
                        }])
                        .unwrap();
                        *next += 1;
                        index
                    };
                    wal.wait_synced(index).unwrap();
                    println!("acked {index}");
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
}
