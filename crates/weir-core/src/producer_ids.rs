//! Producer ids for idempotent producers (Kafka's InitProducerId without a transactional
//! id): fresh ids that are never handed out twice, even across restarts, and epoch bumps
//! for a producer that asks to keep its id after an error.
//!
//! Ids are reserved a block at a time in `producer_ids` under the data directory (the
//! first id of the next block, fsynced before any id of the block is returned), as
//! Kafka's `ProducerIdManager` does; a restart skips the rest of the current block.

use std::collections::{HashMap, VecDeque};
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::Broker;

/// Ids reserved per write of the file: Kafka's block size; a restart wastes at most this
/// many of 2^63.
pub const PRODUCER_ID_BLOCK: i64 = 1_000;
/// Producers whose current epoch is remembered for epoch bumps; past this the oldest is
/// forgotten (its next bump gets a fresh id instead, which clients accept).
pub const PRODUCER_EPOCHS_MAX: usize = 100_000;
/// The file's name under the data directory.
const FILE: &str = "producer_ids";
/// Largest file read back: one decimal i64 and a newline.
const FILE_MAX_BYTES: u64 = 64;

#[derive(Debug, thiserror::Error)]
pub enum ProducerIdError {
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{path}: not a producer id reservation")]
    Corrupt { path: PathBuf },
    #[error("producer ids are exhausted")]
    Exhausted,
    /// The epoch given is not the producer's current one: another instance took over.
    #[error("producer {producer_id}: epoch {epoch} is not the current {current}")]
    Fenced {
        producer_id: i64,
        epoch: i16,
        current: i16,
    },
}

/// A producer id and epoch handed to a client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProducerIdAndEpoch {
    pub producer_id: i64,
    pub epoch: i16,
}

pub struct ProducerIds {
    path: PathBuf,
    state: Mutex<State>,
}

struct State {
    next: i64,
    /// First id not yet reserved on disk.
    reserved_until: i64,
    epochs: HashMap<i64, i16>,
    /// Insertion order of `epochs`, for forgetting the oldest.
    order: VecDeque<i64>,
}

impl ProducerIds {
    /// Reads the reservation in `dir`; nothing is reserved until the first id is asked for.
    pub fn open(dir: &Path) -> Result<Self, ProducerIdError> {
        let path = dir.join(FILE);
        let reserved_until = match fs::metadata(&path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => 0,
            Err(source) => {
                return Err(ProducerIdError::Io {
                    op: "stat",
                    path,
                    source,
                });
            }
            Ok(meta) if meta.len() > FILE_MAX_BYTES => {
                return Err(ProducerIdError::Corrupt { path });
            }
            Ok(_) => {
                let text = fs::read_to_string(&path).map_err(|source| ProducerIdError::Io {
                    op: "read",
                    path: path.clone(),
                    source,
                })?;
                match text.trim().parse::<i64>() {
                    Ok(n) if n >= 0 => n,
                    _ => return Err(ProducerIdError::Corrupt { path }),
                }
            }
        };
        Ok(Self {
            path,
            state: Mutex::new(State {
                next: reserved_until,
                reserved_until,
                epochs: HashMap::new(),
                order: VecDeque::new(),
            }),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A producer id never handed out before, at epoch 0.
    pub fn fresh(&self) -> Result<ProducerIdAndEpoch, ProducerIdError> {
        let mut state = self.lock();
        self.fresh_locked(&mut state)
    }

    fn fresh_locked(&self, state: &mut State) -> Result<ProducerIdAndEpoch, ProducerIdError> {
        if state.next >= state.reserved_until {
            let until = state
                .next
                .checked_add(PRODUCER_ID_BLOCK)
                .ok_or(ProducerIdError::Exhausted)?;
            self.persist(until)?;
            state.reserved_until = until;
        }
        let producer_id = state.next;
        state.next += 1;
        remember(state, producer_id, 0);
        Ok(ProducerIdAndEpoch {
            producer_id,
            epoch: 0,
        })
    }

    /// InitProducerId v3+ from a producer that keeps its id: the next epoch when `epoch`
    /// is the current one, [`ProducerIdError::Fenced`] when it is not. An id this broker
    /// does not remember (forgotten, or from before a restart) or an exhausted epoch gets
    /// a fresh id, as Kafka answers every non-transactional InitProducerId.
    pub fn bump(
        &self,
        producer_id: i64,
        epoch: i16,
    ) -> Result<ProducerIdAndEpoch, ProducerIdError> {
        let mut state = self.lock();
        match state.epochs.get(&producer_id).copied() {
            Some(current) if current != epoch => Err(ProducerIdError::Fenced {
                producer_id,
                epoch,
                current,
            }),
            // i16::MAX is never used as an epoch (Kafka's rule): roll over to a new id.
            Some(current) if current < i16::MAX - 1 => {
                let epoch = current + 1;
                state.epochs.insert(producer_id, epoch);
                Ok(ProducerIdAndEpoch { producer_id, epoch })
            }
            _ => self.fresh_locked(&mut state),
        }
    }

    fn persist(&self, until: i64) -> Result<(), ProducerIdError> {
        let tmp = self.path.with_extension("tmp");
        let io_err = |op| {
            let path = self.path.clone();
            move |source| ProducerIdError::Io { op, path, source }
        };
        let mut file = fs::File::create(&tmp).map_err(io_err("create"))?;
        file.write_all(format!("{until}\n").as_bytes())
            .map_err(io_err("write"))?;
        file.sync_all().map_err(io_err("fsync"))?;
        fs::rename(&tmp, &self.path).map_err(io_err("rename"))?;
        if let Some(dir) = self.path.parent() {
            fs::File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(io_err("fsync directory"))?;
        }
        Ok(())
    }
}

fn remember(state: &mut State, producer_id: i64, epoch: i16) {
    if state.epochs.insert(producer_id, epoch).is_none() {
        state.order.push_back(producer_id);
        while state.order.len() > PRODUCER_EPOCHS_MAX {
            if let Some(old) = state.order.pop_front() {
                state.epochs.remove(&old);
            }
        }
    }
}

impl Broker {
    /// The producer id allocator of this broker's data directory.
    pub fn producer_ids(&self) -> &ProducerIds {
        &self.producer_ids
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_never_reused_across_reopens() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ids = ProducerIds::open(dir.path()).expect("open");
        let a = ids.fresh().expect("id");
        let b = ids.fresh().expect("id");
        assert_eq!((a.producer_id, a.epoch), (0, 0));
        assert_eq!(b.producer_id, 1);
        drop(ids);
        let ids = ProducerIds::open(dir.path()).expect("reopen");
        let c = ids.fresh().expect("id");
        assert_eq!(
            c.producer_id, PRODUCER_ID_BLOCK,
            "the rest of the block is skipped"
        );
        for _ in 0..PRODUCER_ID_BLOCK {
            ids.fresh().expect("id");
        }
        drop(ids);
        let ids = ProducerIds::open(dir.path()).expect("reopen");
        assert_eq!(ids.fresh().expect("id").producer_id, 3 * PRODUCER_ID_BLOCK);
    }

    #[test]
    fn bumps_need_the_current_epoch() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ids = ProducerIds::open(dir.path()).expect("open");
        let a = ids.fresh().expect("id");
        let bumped = ids.bump(a.producer_id, 0).expect("bump");
        assert_eq!((bumped.producer_id, bumped.epoch), (a.producer_id, 1));
        assert!(matches!(
            ids.bump(a.producer_id, 0),
            Err(ProducerIdError::Fenced { current: 1, .. })
        ));
        let unknown = ids.bump(12_345, 3).expect("unknown id");
        assert_ne!(unknown.producer_id, 12_345);
        assert_eq!(unknown.epoch, 0);
    }

    #[test]
    fn exhausted_epochs_roll_over_to_a_new_id() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ids = ProducerIds::open(dir.path()).expect("open");
        let a = ids.fresh().expect("id");
        ids.lock().epochs.insert(a.producer_id, i16::MAX - 1);
        let next = ids.bump(a.producer_id, i16::MAX - 1).expect("bump");
        assert_ne!(next.producer_id, a.producer_id);
        assert_eq!(next.epoch, 0);
    }

    #[test]
    fn a_damaged_reservation_is_an_error_not_a_reset() {
        let dir = tempfile::tempdir().expect("tempdir");
        fs::write(dir.path().join(FILE), "garbage").expect("write");
        assert!(matches!(
            ProducerIds::open(dir.path()),
            Err(ProducerIdError::Corrupt { .. })
        ));
    }
}
