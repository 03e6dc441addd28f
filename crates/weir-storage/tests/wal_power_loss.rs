//! Power loss: bytes past what the last fsync covered may be lost or torn. Simulated by
//! cutting each segment file at a random point at or past its `synced_lengths()` value and
//! appending garbage there; every synced index must survive with its payload.

// Test helpers outside #[test] functions may unwrap too.
#![allow(clippy::unwrap_used)]

use std::fs::OpenOptions;
use std::io::Write;

use proptest::prelude::*;
use weir_storage::wal::{Entry, EntryRef, Wal, WalConfig};

fn config() -> WalConfig {
    // Small segments so rolls happen; no timer flushes, so unsynced tails stay unsynced.
    WalConfig {
        segment_bytes: 1024,
        async_flush_interval_ms: 600_000,
        ..WalConfig::default()
    }
}

fn payload_for(index: u64, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (index as usize * 7 + i * 13) as u8)
        .collect()
}

#[derive(Debug, Clone)]
struct Batch {
    count: u8,
    len: u16,
    sync: bool,
}

fn batch() -> impl Strategy<Value = Batch> {
    (1u8..6, 0u16..300, proptest::bool::weighted(0.3)).prop_map(|(count, len, sync)| Batch {
        count,
        len,
        sync,
    })
}

#[derive(Debug, Clone)]
struct Cut {
    /// Where, as a fraction (of u16::MAX) of the unsynced part of the file.
    at: u16,
    garbage: Vec<u8>,
}

fn cut() -> impl Strategy<Value = Cut> {
    (any::<u16>(), proptest::collection::vec(any::<u8>(), 0..64))
        .prop_map(|(at, garbage)| Cut { at, garbage })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]
    #[test]
    fn every_synced_entry_survives_a_torn_unsynced_tail(
        batches in proptest::collection::vec(batch(), 1..25),
        cuts in proptest::collection::vec(cut(), 1..40),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let (wal, _) = Wal::open(dir.path(), config()).unwrap();
        let mut written: Vec<Entry> = Vec::new();
        for batch in &batches {
            let from = written.len() as u64 + 1;
            let new: Vec<Entry> = (from..from + u64::from(batch.count))
                .map(|index| Entry { term: 1, index, payload: payload_for(index, usize::from(batch.len)) })
                .collect();
            let refs: Vec<EntryRef<'_>> =
                new.iter().map(|e| EntryRef { term: e.term, index: e.index, payload: &e.payload }).collect();
            wal.append(&refs).unwrap();
            written.extend(new);
            if batch.sync {
                wal.sync().unwrap();
            }
        }
        // Synced index first, lengths second: the lengths cover at least that index.
        let acked = wal.stats().synced_index.unwrap_or(0);
        let lengths = wal.synced_lengths();
        drop(wal);

        for (k, (path, synced_len)) in lengths.iter().enumerate() {
            let cut = &cuts[k % cuts.len()];
            let len = std::fs::metadata(path).unwrap().len();
            prop_assert!(*synced_len <= len);
            let at = synced_len + (len - synced_len) * u64::from(cut.at) / u64::from(u16::MAX);
            let file = OpenOptions::new().write(true).open(path).unwrap();
            file.set_len(at).unwrap();
            file.sync_all().unwrap();
            drop(file);
            // Garbage only where unsynced bytes were: a power cut never grows a file past
            // what was written, nor touches what an fsync covered.
            let room = usize::try_from(len - at).unwrap().min(cut.garbage.len());
            let mut file = OpenOptions::new().append(true).open(path).unwrap();
            file.write_all(&cut.garbage[..room]).unwrap();
        }

        let (wal, _recovery) = Wal::open(dir.path(), config()).unwrap();
        let read = wal.read(0, u64::MAX, u64::MAX).unwrap();
        prop_assert!(read.len() as u64 >= acked, "{} entries back, {} were synced", read.len(), acked);
        for (position, entry) in read.iter().enumerate() {
            // Contiguous from 1, and each one exactly what was written: nothing torn.
            prop_assert_eq!(entry, &written[position]);
        }
        // The log accepts the next index after what survived.
        let next = read.len() as u64 + 1;
        wal.append(&[EntryRef { term: 1, index: next, payload: b"after" }]).unwrap();
    }
}
