//! Damage on disk: torn tails of the last segment are cut and reported; damage in an
//! earlier segment is an error naming the file and the byte position.

// Test helpers outside #[test] functions may unwrap too.
#![allow(clippy::unwrap_used)]

use std::fs;
use std::path::PathBuf;
use std::time::Instant;

use weir_storage::wal::{Damage, EntryRef, LogId, Wal, WalConfig, WalError};

const PAYLOAD_LEN: usize = 40;
const ENTRY_LEN: u64 = 24 + PAYLOAD_LEN as u64;

fn config() -> WalConfig {
    // Four entries per segment.
    WalConfig {
        segment_bytes: 4 * ENTRY_LEN,
        ..WalConfig::default()
    }
}

fn write_log(dir: &std::path::Path, entries: u64) -> Vec<PathBuf> {
    let (wal, _) = Wal::open(dir, config()).unwrap();
    for index in 1..=entries {
        let payload = vec![index as u8; PAYLOAD_LEN];
        wal.append(&[EntryRef {
            term: 2,
            index,
            payload: &payload,
        }])
        .unwrap();
    }
    let paths: Vec<PathBuf> = wal.synced_lengths().into_iter().map(|(p, _)| p).collect();
    wal.close().unwrap();
    paths
}

#[test]
fn a_flipped_byte_in_an_early_segment_is_reported_with_path_and_position() {
    let dir = tempfile::tempdir().unwrap();
    let paths = write_log(dir.path(), 12);
    assert_eq!(paths.len(), 3);
    let mut bytes = fs::read(&paths[0]).unwrap();
    // A payload byte of the second entry.
    bytes[(ENTRY_LEN + 30) as usize] ^= 0x10;
    fs::write(&paths[0], bytes).unwrap();
    match Wal::open(dir.path(), config()) {
        Err(WalError::Corrupt {
            path,
            position,
            reason: Damage::Checksum { .. },
        }) => {
            assert_eq!(path, paths[0]);
            assert_eq!(position, ENTRY_LEN);
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
}

#[test]
fn a_truncated_early_segment_is_an_error_not_a_silent_loss() {
    let dir = tempfile::tempdir().unwrap();
    let paths = write_log(dir.path(), 12);
    let file = fs::OpenOptions::new().write(true).open(&paths[1]).unwrap();
    file.set_len(3 * ENTRY_LEN - 5).unwrap();
    match Wal::open(dir.path(), config()) {
        Err(WalError::Corrupt {
            path,
            position,
            reason: Damage::Truncated { .. },
        }) => {
            assert_eq!((path, position), (paths[1].clone(), 2 * ENTRY_LEN));
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
}

#[test]
fn a_torn_tail_of_the_last_segment_is_cut_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    let paths = write_log(dir.path(), 11);
    let last = paths.last().unwrap();
    let mut bytes = fs::read(last).unwrap();
    assert_eq!(bytes.len() as u64, 3 * ENTRY_LEN);
    // The third entry (index 11) claims an absurd length: a torn tail, not an allocation.
    let third = (2 * ENTRY_LEN) as usize;
    bytes[third..third + 4].copy_from_slice(&u32::MAX.to_le_bytes());
    fs::write(last, &bytes).unwrap();
    let (wal, recovery) = Wal::open(dir.path(), config()).unwrap();
    let tail = recovery.truncated_tail.expect("the tail is reported");
    assert_eq!(tail.path, *last);
    assert_eq!(tail.position, 2 * ENTRY_LEN);
    assert_eq!(tail.bytes_dropped, ENTRY_LEN);
    assert!(matches!(tail.reason, Damage::TooLong { len: u32::MAX, .. }));
    assert_eq!(recovery.last, Some(LogId { term: 2, index: 10 }));
    assert_eq!(fs::metadata(last).unwrap().len(), 2 * ENTRY_LEN);
    // The log continues where the valid part ends.
    wal.append(&[EntryRef {
        term: 2,
        index: 11,
        payload: b"again",
    }])
    .unwrap();
    wal.close().unwrap();
    let (wal, recovery) = Wal::open(dir.path(), config()).unwrap();
    assert_eq!(recovery.truncated_tail, None);
    assert_eq!(wal.read(11, 12, u64::MAX).unwrap()[0].payload, b"again");
}

#[test]
fn a_gap_between_segments_is_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let paths = write_log(dir.path(), 12);
    fs::remove_file(&paths[1]).unwrap();
    match Wal::open(dir.path(), config()) {
        Err(WalError::Corrupt {
            path,
            reason:
                Damage::IndexGap {
                    expected: 5,
                    got: 9,
                },
            ..
        }) => {
            assert_eq!(path, paths[2]);
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
}

#[test]
fn recovery_reads_in_large_chunks() {
    // 64 MiB in 1 KiB entries; a debug build still recovers it in well under the bound
    // (release: a few hundred MB in well under a second, from page cache).
    let dir = tempfile::tempdir().unwrap();
    let config = || WalConfig {
        segment_bytes: 16 << 20,
        ..WalConfig::default()
    };
    let (wal, _) = Wal::open(dir.path(), config()).unwrap();
    let payload = vec![0xabu8; 1 << 10];
    for index in 0..(64 << 10) {
        wal.append(&[EntryRef {
            term: 1,
            index,
            payload: &payload,
        }])
        .unwrap();
    }
    wal.close().unwrap();
    let started = Instant::now();
    let (_wal, recovery) = Wal::open(dir.path(), config()).unwrap();
    let elapsed = started.elapsed();
    println!("recovered 64 MiB in {elapsed:?}");
    assert_eq!(
        recovery.last,
        Some(LogId {
            term: 1,
            index: (64 << 10) - 1
        })
    );
    assert!(elapsed.as_secs_f64() < 5.0, "recovery took {elapsed:?}");
}

#[test]
fn a_checksummed_entry_out_of_order_in_the_last_segment_is_corrupt_not_torn() {
    let dir = tempfile::tempdir().unwrap();
    let paths = write_log(dir.path(), 10);
    let last = paths.last().unwrap();
    // Entry 9's bytes where entry 10 should be: valid checksum, wrong index.
    let mut bytes = fs::read(last).unwrap();
    let (first, second) = bytes.split_at_mut(ENTRY_LEN as usize);
    second.copy_from_slice(first);
    fs::write(last, &bytes).unwrap();
    match Wal::open(dir.path(), config()) {
        Err(WalError::Corrupt {
            path,
            position,
            reason:
                Damage::IndexGap {
                    expected: 10,
                    got: 9,
                },
        }) => assert_eq!((path, position), (last.clone(), ENTRY_LEN)),
        other => panic!("expected Corrupt, got {other:?}"),
    }
}
