use super::*;
use proptest::prelude::*;
use std::sync::mpsc;

fn small_config() -> WalConfig {
    WalConfig {
        segment_bytes: 256,
        async_flush_interval_ms: 10,
        ..WalConfig::default()
    }
}

fn payload_for(index: u64, len: usize) -> Vec<u8> {
    (0..len).map(|i| (index as usize * 31 + i) as u8).collect()
}

fn append_range(wal: &Wal, term: u64, from: u64, count: u64, len: usize) {
    let payloads: Vec<Vec<u8>> = (from..from + count).map(|i| payload_for(i, len)).collect();
    let refs: Vec<EntryRef<'_>> = payloads
        .iter()
        .zip(from..)
        .map(|(p, index)| EntryRef {
            term,
            index,
            payload: p,
        })
        .collect();
    assert_eq!(wal.append(&refs).unwrap(), from + count - 1);
}

#[test]
fn segment_names_round_trip() {
    let path = segment_path(Path::new("/d"), 5);
    assert_eq!(path, PathBuf::from("/d/00000000000000000005.wal"));
    assert_eq!(parse_segment_name("00000000000000000005.wal"), Some(5));
    assert_eq!(parse_segment_name("5.wal"), None);
    assert_eq!(parse_segment_name("0000000000000000000x.wal"), None);
    assert_eq!(
        parse_segment_name(&format!("{}.wal", u64::MAX)),
        Some(u64::MAX)
    );
}

#[test]
fn appends_read_back_across_segments_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, recovery) = Wal::open(dir.path(), small_config()).unwrap();
    assert_eq!(
        recovery,
        WalRecovery {
            segments: 0,
            first_index: None,
            last: None,
            truncated_tail: None
        }
    );
    append_range(&wal, 1, 1, 40, 20);
    wal.sync().unwrap();
    let stats = wal.stats();
    assert_eq!(
        (stats.written_index, stats.synced_index),
        (Some(40), Some(40))
    );
    assert!(wal.synced_lengths().len() > 3, "tiny segments roll");
    let all = wal.read(0, u64::MAX, u64::MAX).unwrap();
    assert_eq!(all.len(), 40);
    assert!(
        all.iter()
            .all(|e| e.payload == payload_for(e.index, 20) && e.term == 1)
    );
    // max_bytes bounds a read, but at least one entry comes back.
    assert_eq!(wal.read(5, 30, 1).unwrap().len(), 1);
    assert_eq!(wal.read(5, 30, 45).unwrap().len(), 2);
    assert_eq!(wal.read(38, 100, u64::MAX).unwrap().len(), 3);
    wal.close().unwrap();
    let (wal, recovery) = Wal::open(dir.path(), small_config()).unwrap();
    assert_eq!(recovery.first_index, Some(1));
    assert_eq!(recovery.last, Some(LogId { term: 1, index: 40 }));
    assert_eq!(recovery.truncated_tail, None);
    assert_eq!(wal.read(0, u64::MAX, u64::MAX).unwrap(), all);
}

#[test]
fn refuses_gaps_oversized_and_empty_appends_without_writing() {
    let dir = tempfile::tempdir().unwrap();
    let config = WalConfig {
        max_entry_bytes: 8,
        ..small_config()
    };
    let (wal, _) = Wal::open(dir.path(), config).unwrap();
    assert_eq!(
        wal.append(&[EntryRef {
            term: 1,
            index: 10,
            payload: b"a"
        }])
        .unwrap(),
        10
    );
    assert!(matches!(
        wal.append(&[EntryRef {
            term: 1,
            index: 12,
            payload: b"a"
        }]),
        Err(WalError::NotContiguous {
            expected: 11,
            got: 12
        })
    ));
    let refused = [
        EntryRef {
            term: 1,
            index: 11,
            payload: b"ok",
        },
        EntryRef {
            term: 1,
            index: 12,
            payload: b"way too long",
        },
    ];
    assert!(matches!(
        wal.append(&refused),
        Err(WalError::EntryTooLarge {
            index: 12,
            len: 12,
            max: 8
        })
    ));
    assert!(matches!(wal.append(&[]), Err(WalError::EmptyAppend)));
    assert_eq!(wal.last_log_id(), Some(LogId { term: 1, index: 10 }));
    assert_eq!(wal.read(0, 100, 100).unwrap().len(), 1);
}

#[test]
fn vote_and_committed_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, _) = Wal::open(dir.path(), small_config()).unwrap();
    assert_eq!((wal.read_vote(), wal.read_committed()), (None, None));
    wal.save_vote(b"term=3 node=2").unwrap();
    wal.save_committed(Some(LogId { term: 3, index: 17 }))
        .unwrap();
    assert!(matches!(
        wal.save_vote(&vec![0; MAX_META_PAYLOAD_BYTES + 1]),
        Err(WalError::VoteTooLarge { .. })
    ));
    wal.close().unwrap();
    let (wal, _) = Wal::open(dir.path(), small_config()).unwrap();
    assert_eq!(wal.read_vote().as_deref(), Some(&b"term=3 node=2"[..]));
    assert_eq!(wal.read_committed(), Some(LogId { term: 3, index: 17 }));
    wal.save_committed(None).unwrap();
    drop(wal);
    let (wal, _) = Wal::open(dir.path(), small_config()).unwrap();
    assert_eq!(wal.read_committed(), None);
}

#[test]
fn a_damaged_vote_file_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, _) = Wal::open(dir.path(), small_config()).unwrap();
    wal.save_vote(b"vote").unwrap();
    wal.close().unwrap();
    let path = dir.path().join(meta::VOTE_FILE);
    let mut bytes = fs::read(&path).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    fs::write(&path, bytes).unwrap();
    match Wal::open(dir.path(), small_config()) {
        Err(WalError::Corrupt {
            path: p,
            reason: Damage::Checksum { .. },
            ..
        }) => assert_eq!(p, path),
        other => panic!("expected Corrupt, got {other:?}"),
    }
}

#[test]
fn a_second_open_of_the_same_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, _) = Wal::open(dir.path(), small_config()).unwrap();
    assert!(matches!(
        Wal::open(dir.path(), small_config()),
        Err(WalError::Locked { .. })
    ));
    drop(wal);
    assert!(Wal::open(dir.path(), small_config()).is_ok());
}

#[test]
fn a_failed_fsync_poisons_everything_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, _) = Wal::open(dir.path(), WalConfig::default()).unwrap();
    append_range(&wal, 1, 1, 3, 10);
    wal.sync().unwrap();
    append_range(&wal, 1, 4, 1, 10);
    wal.fail_next_fsync();
    let (tx, rx) = mpsc::channel();
    wal.on_synced(4, Box::new(move |r| tx.send(r).unwrap()));
    let callback = rx.recv_timeout(Duration::from_secs(5)).unwrap();
    match callback {
        Err(WalError::Poisoned { reason }) => {
            assert!(reason.contains("injected fsync failure"), "{reason}")
        }
        other => panic!("expected Poisoned, got {other:?}"),
    }
    assert!(matches!(wal.wait_synced(4), Err(WalError::Poisoned { .. })));
    assert!(matches!(wal.wait_synced(1), Err(WalError::Poisoned { .. })));
    assert!(matches!(wal.sync(), Err(WalError::Poisoned { .. })));
    let next = [EntryRef {
        term: 1,
        index: 5,
        payload: b"x",
    }];
    match wal.append(&next) {
        Err(WalError::Poisoned { reason }) => assert!(reason.contains("injected fsync failure")),
        other => panic!("expected Poisoned, got {other:?}"),
    }
    assert!(matches!(
        wal.truncate_after(2),
        Err(WalError::Poisoned { .. })
    ));
    assert!(matches!(
        wal.save_vote(b"v"),
        Err(WalError::Poisoned { .. })
    ));
    let (tx, rx) = mpsc::channel();
    wal.on_synced(1, Box::new(move |r| tx.send(r).unwrap()));
    assert!(matches!(rx.recv().unwrap(), Err(WalError::Poisoned { .. })));
    assert_eq!(
        wal.stats().synced_index,
        Some(3),
        "the failed fsync never counts as synced"
    );
    assert!(wal.close().is_err());
}

#[test]
fn a_failed_roll_fsync_poisons_the_append() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, _) = Wal::open(dir.path(), small_config()).unwrap();
    append_range(&wal, 1, 1, 1, 300);
    wal.fail_next_fsync();
    let next = payload_for(2, 10);
    let result = wal.append(&[EntryRef {
        term: 1,
        index: 2,
        payload: &next,
    }]);
    assert!(
        matches!(result, Err(WalError::Poisoned { .. })),
        "{result:?}"
    );
}

#[test]
fn on_synced_fires_once_covered() {
    let dir = tempfile::tempdir().unwrap();
    let config = WalConfig {
        async_flush_interval_ms: 60_000,
        ..WalConfig::default()
    };
    let (wal, _) = Wal::open(dir.path(), config).unwrap();
    let (tx, rx) = mpsc::channel();
    append_range(&wal, 1, 1, 2, 10);
    let tx2 = tx.clone();
    wal.on_synced(2, Box::new(move |r| tx2.send((2, r.is_ok())).unwrap()));
    assert_eq!(rx.recv_timeout(Duration::from_secs(5)).unwrap(), (2, true));
    assert_eq!(wal.stats().synced_index, Some(2));
    // Already covered: called at once, on this thread.
    wal.on_synced(1, Box::new(move |r| tx.send((1, r.is_ok())).unwrap()));
    assert_eq!(rx.try_recv().unwrap(), (1, true));
}

#[test]
fn async_data_is_flushed_by_interval_and_by_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let config = WalConfig {
        async_flush_interval_ms: 20,
        ..WalConfig::default()
    };
    let (wal, _) = Wal::open(dir.path(), config).unwrap();
    append_range(&wal, 1, 1, 5, 10);
    let deadline = Instant::now() + Duration::from_secs(5);
    while wal.stats().synced_index != Some(5) {
        assert!(Instant::now() < deadline, "interval flush never happened");
        std::thread::sleep(Duration::from_millis(5));
    }
    drop(wal);

    let dir = tempfile::tempdir().unwrap();
    let config = WalConfig {
        async_flush_interval_ms: 600_000,
        async_flush_bytes: 1000,
        ..WalConfig::default()
    };
    let (wal, _) = Wal::open(dir.path(), config).unwrap();
    append_range(&wal, 1, 1, 1, 10);
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(
        wal.stats().synced_index,
        None,
        "below the byte bound and before the interval"
    );
    append_range(&wal, 1, 2, 1, 2000);
    let deadline = Instant::now() + Duration::from_secs(5);
    while wal.stats().synced_index != Some(2) {
        assert!(Instant::now() < deadline, "byte-bound flush never happened");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn truncate_and_purge_edges() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, _) = Wal::open(dir.path(), small_config()).unwrap();
    append_range(&wal, 1, 1, 30, 20);
    wal.purge_up_to(LogId { term: 1, index: 10 }).unwrap();
    assert_eq!(wal.first_index(), Some(11));
    assert!(matches!(
        wal.truncate_after(5),
        Err(WalError::TruncateBeforePurged {
            index: 5,
            last_purged: 10
        })
    ));
    wal.truncate_after(20).unwrap();
    assert_eq!(wal.last_log_id(), Some(LogId { term: 1, index: 20 }));
    assert!(matches!(
        wal.append(&[EntryRef {
            term: 2,
            index: 22,
            payload: b"x"
        }]),
        Err(WalError::NotContiguous {
            expected: 21,
            got: 22
        })
    ));
    // Purge beyond the last entry (a snapshot was installed): the log continues after it.
    wal.purge_up_to(LogId { term: 3, index: 50 }).unwrap();
    assert_eq!(wal.first_index(), None);
    assert_eq!(wal.last_log_id(), Some(LogId { term: 3, index: 50 }));
    assert!(wal.synced_lengths().is_empty());
    wal.wait_synced(50).unwrap();
    append_range(&wal, 3, 51, 3, 20);
    wal.close().unwrap();
    let (wal, recovery) = Wal::open(dir.path(), small_config()).unwrap();
    assert_eq!(recovery.first_index, Some(51));
    assert_eq!(recovery.last, Some(LogId { term: 3, index: 53 }));
    assert_eq!(wal.last_purged(), Some(LogId { term: 3, index: 50 }));
    let indexes: Vec<u64> = wal
        .read(0, 100, u64::MAX)
        .unwrap()
        .iter()
        .map(|e| e.index)
        .collect();
    assert_eq!(indexes, vec![51, 52, 53]);
}

#[derive(Debug, Clone)]
enum Op {
    Append { count: u8, len: u16, new_term: bool },
    Truncate { back: u8 },
    Purge { back: u8, beyond: bool },
    Reopen,
    Sync,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (1u8..6, 0u16..120, proptest::bool::weighted(0.2))
            .prop_map(|(count, len, new_term)| Op::Append { count, len, new_term }),
        1 => (0u8..10).prop_map(|back| Op::Truncate { back }),
        1 => (0u8..12, proptest::bool::weighted(0.15)).prop_map(|(back, beyond)| Op::Purge { back, beyond }),
        1 => Just(Op::Reopen),
        1 => Just(Op::Sync),
    ]
}

/// The model: readable entries, last purged id, and the term new appends use.
#[derive(Debug, Default)]
struct Model {
    entries: Vec<Entry>,
    purged: Option<LogId>,
    term: u64,
}

impl Model {
    fn last(&self) -> Option<LogId> {
        self.entries
            .last()
            .map(|e| LogId {
                term: e.term,
                index: e.index,
            })
            .or(self.purged)
    }
    fn next_index(&self) -> u64 {
        self.last().map_or(1, |l| l.index + 1)
    }
}

fn check(wal: &Wal, model: &Model) -> Result<(), TestCaseError> {
    prop_assert_eq!(wal.last_log_id(), model.last());
    prop_assert_eq!(wal.last_purged(), model.purged);
    prop_assert_eq!(wal.first_index(), model.entries.first().map(|e| e.index));
    let read = wal
        .read(0, u64::MAX, u64::MAX)
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert_eq!(&read, &model.entries);
    if let Some(mid) = model.entries.get(model.entries.len() / 2) {
        let tail = wal
            .read(mid.index, u64::MAX, u64::MAX)
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(tail.first().map(|e| e.index), Some(mid.index));
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]
    #[test]
    fn matches_an_in_memory_model(ops in proptest::collection::vec(op(), 1..40)) {
        let dir = tempfile::tempdir().unwrap();
        let config = || WalConfig { segment_bytes: 300, ..WalConfig::default() };
        let (mut wal, _) = Wal::open(dir.path(), config()).unwrap();
        let mut model = Model { term: 1, ..Model::default() };
        for op in ops {
            match op {
                Op::Append { count, len, new_term } => {
                    if new_term {
                        model.term += 1;
                    }
                    let from = model.next_index();
                    let new: Vec<Entry> = (from..from + u64::from(count))
                        .map(|index| Entry { term: model.term, index, payload: payload_for(index, usize::from(len)) })
                        .collect();
                    let refs: Vec<EntryRef<'_>> =
                        new.iter().map(|e| EntryRef { term: e.term, index: e.index, payload: &e.payload }).collect();
                    prop_assert_eq!(wal.append(&refs).unwrap(), from + u64::from(count) - 1);
                    model.entries.extend(new);
                }
                Op::Truncate { back } => {
                    let floor = model.purged.map_or(0, |p| p.index);
                    let index = model.next_index().saturating_sub(1 + u64::from(back)).max(floor);
                    wal.truncate_after(index).unwrap();
                    model.entries.retain(|e| e.index <= index);
                }
                Op::Purge { back, beyond } => {
                    let upto = if beyond {
                        let last = model.last();
                        Some(LogId { term: model.term, index: last.map_or(0, |l| l.index) + 3 })
                    } else {
                        let keep = (usize::from(back)).min(model.entries.len());
                        model.entries.len().checked_sub(keep + 1)
                            .and_then(|k| model.entries.get(k))
                            .map(|e| LogId { term: e.term, index: e.index })
                    };
                    if let Some(upto) = upto {
                        wal.purge_up_to(upto).unwrap();
                        if model.purged.is_none_or(|p| p.index < upto.index) {
                            model.purged = Some(upto);
                            model.entries.retain(|e| e.index > upto.index);
                        }
                    }
                }
                Op::Reopen => {
                    drop(wal);
                    let (reopened, recovery) = Wal::open(dir.path(), config()).unwrap();
                    prop_assert_eq!(recovery.truncated_tail, None);
                    prop_assert_eq!(recovery.last, model.last());
                    wal = reopened;
                }
                Op::Sync => {
                    wal.sync().unwrap();
                    let stats = wal.stats();
                    prop_assert_eq!(stats.synced_index, stats.written_index);
                }
            }
            check(&wal, &model)?;
        }
    }
}

#[test]
fn reads_racing_appends_and_truncations_never_mix_terms_or_tear() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, _) = Wal::open(dir.path(), small_config()).unwrap();
    let wal = std::sync::Arc::new(wal);
    let tagged = |term: u64, index: u64| payload_for(index * 1000 + term, 30);
    let stop = std::sync::Arc::new(AtomicBool::new(false));
    let reader = {
        let (wal, stop) = (std::sync::Arc::clone(&wal), std::sync::Arc::clone(&stop));
        std::thread::spawn(move || {
            let mut reads = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let entries = wal.read(0, u64::MAX, u64::MAX).unwrap();
                for pair in entries.windows(2) {
                    assert_eq!(pair[1].index, pair[0].index + 1);
                    assert!(
                        pair[1].term >= pair[0].term,
                        "a read mixed a truncated tail in"
                    );
                }
                for e in &entries {
                    assert_eq!(e.payload, tagged(e.term, e.index));
                }
                reads += 1;
            }
            reads
        })
    };
    let mut next = 1u64;
    for term in 1..=60u64 {
        for _ in 0..15 {
            let payload = tagged(term, next);
            wal.append(&[EntryRef {
                term,
                index: next,
                payload: &payload,
            }])
            .unwrap();
            next += 1;
        }
        // Raft truncates a conflicting tail, then the new leader's term continues.
        let keep = next - 1 - (term % 9);
        wal.truncate_after(keep).unwrap();
        next = keep + 1;
    }
    stop.store(true, Ordering::Relaxed);
    let reads = reader.join().unwrap();
    assert!(reads > 0);
}

#[test]
fn the_wal_is_shareable_and_survives_a_panicking_callback() {
    fn shareable<T: Send + Sync>() {}
    shareable::<Wal>();
    let dir = tempfile::tempdir().unwrap();
    // No timer flush: index 1 is certainly unsynced when the callback registers.
    let config = WalConfig {
        async_flush_interval_ms: 600_000,
        ..WalConfig::default()
    };
    let (wal, _) = Wal::open(dir.path(), config).unwrap();
    append_range(&wal, 1, 1, 1, 10);
    wal.on_synced(1, Box::new(|_| panic!("a callback that panics")));
    append_range(&wal, 1, 2, 1, 10);
    // The flusher is still alive to sync index 2.
    wal.wait_synced(2).unwrap();
    wal.close().unwrap();
}

#[test]
fn a_purge_past_pending_callbacks_releases_them() {
    // The callback is released either by the flusher's fsync or by the purge covering
    // index 3; either way it must fire with Ok and nothing may stay pending.
    let dir = tempfile::tempdir().unwrap();
    let config = WalConfig {
        async_flush_interval_ms: 600_000,
        ..WalConfig::default()
    };
    let (wal, _) = Wal::open(dir.path(), config).unwrap();
    append_range(&wal, 1, 1, 3, 10);
    let (tx, rx) = mpsc::channel();
    wal.on_synced(3, Box::new(move |r| tx.send(r.is_ok()).unwrap()));
    wal.purge_up_to(LogId { term: 1, index: 3 }).unwrap();
    assert!(rx.recv_timeout(Duration::from_secs(5)).unwrap());
    assert_eq!(wal.stats().synced_index, Some(3));
    assert!(lock(&wal.inner.sync).callbacks.is_empty());
}

#[test]
fn open_creates_a_missing_directory() {
    let dir = tempfile::tempdir().unwrap();
    let nested = dir.path().join("shard-0").join("wal");
    let (wal, _) = Wal::open(&nested, small_config()).unwrap();
    append_range(&wal, 1, 1, 2, 5);
    wal.close().unwrap();
    assert!(nested.join("00000000000000000001.wal").is_file());
}
