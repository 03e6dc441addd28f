//! Group commit: many concurrent appenders waiting for durability share fsyncs.

// Test helpers outside #[test] functions may unwrap too.
#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex};
use std::time::Instant;

use weir_storage::wal::{EntryRef, Wal, WalConfig};

const THREADS: u64 = 64;
const APPENDS_PER_THREAD: u64 = 40;

fn payload_for(index: u64) -> Vec<u8> {
    format!("entry-{index}-").repeat(8).into_bytes()
}

#[test]
fn sixty_four_appenders_share_fsyncs() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, _) = Wal::open(dir.path(), WalConfig::default()).unwrap();
    let wal = Arc::new(wal);
    // The engine's order: assign the index and append under one lock, wait outside it.
    let next_index = Arc::new(Mutex::new(1u64));
    let started = Instant::now();
    let handles: Vec<_> = (0..THREADS)
        .map(|_| {
            let wal = Arc::clone(&wal);
            let next_index = Arc::clone(&next_index);
            std::thread::spawn(move || {
                for _ in 0..APPENDS_PER_THREAD {
                    let index = {
                        let mut next = next_index.lock().unwrap();
                        let index = *next;
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
                    assert!(wal.stats().synced_index >= Some(index));
                }
            })
        })
        .collect();
    for handle in handles {
        handle.join().unwrap();
    }
    let appends = THREADS * APPENDS_PER_THREAD;
    let stats = wal.stats();
    println!(
        "{appends} appends, {} fsyncs, {:?}",
        stats.fsyncs,
        started.elapsed()
    );
    assert_eq!(stats.synced_index, Some(appends));
    assert!(
        stats.fsyncs * 4 < appends,
        "{} fsyncs for {appends} appends: appenders are not sharing fsyncs",
        stats.fsyncs
    );
    let entries = wal.read(1, appends + 1, u64::MAX).unwrap();
    assert_eq!(entries.len() as u64, appends);
    assert!(entries.iter().all(|e| e.payload == payload_for(e.index)));
}
