//! The key/value format of records in `__transaction_state`: Kafka's own, so Kafka's tools
//! could read weir's log.
//!
//! - Key: int16 key version 0, then `TransactionLogKey` (transactional id as an int16-length
//!   string).
//! - Value: int16 value version, then `TransactionLogValue`. weir writes version 0
//!   (non-flexible: producer id int64, producer epoch int16, timeout int32, state int8,
//!   partitions as a nullable int32-count array of (topic string, int32-count array of
//!   int32), last update int64, start int64) and reads 0 and 1. Version 1 is Kafka's
//!   flexible encoding of the same fields (compact strings and arrays, unsigned varint
//!   lengths) plus tagged fields; of those, tag 0 (previous producer id) is kept and the
//!   others (next producer id, client transaction version — transactions v2, which weir
//!   does not offer) are read past.
//! - A null value (tombstone) removes the transactional id (Kafka's expiry).
//!
//! # What it must never do
//! Panic on bytes read back: [`decode`] checks every length against the bytes present
//! before allocating, and a truncation or a trailing byte is an error. It does not judge
//! state transitions; the coordinator's `apply` does.

use std::collections::BTreeSet;

use super::{TopicPartition, TxnState};
use crate::record_bytes::{FieldError, Reader, length_i32, put_i16, put_i32, put_i64, put_string};

/// The only key version of `__transaction_state`.
pub const KEY_VERSION: i16 = 0;
/// The value version weir writes (non-flexible, as the rest of weir's internal records).
pub const VALUE_VERSION: i16 = 0;
/// The flexible value version Kafka 3+ writes; read, never written.
pub const VALUE_VERSION_FLEXIBLE: i16 = 1;
/// Longest string an int16 length can carry.
pub const STRING_MAX_BYTES: usize = i16::MAX as usize;

/// One record of `__transaction_state`. A `None` value is a tombstone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnRecord {
    pub transactional_id: String,
    pub value: Option<TxnLogValue>,
}

/// Kafka's `TransactionLogValue`: the durable part of one transactional id's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnLogValue {
    pub producer_id: i64,
    /// The producer id before the last rotation (-1 if none). Only version 1 carries it;
    /// weir writes version 0, so it is -1 after weir's own restarts (as in Kafka's v0).
    pub previous_producer_id: i64,
    pub producer_epoch: i16,
    pub timeout_ms: i32,
    pub state: TxnState,
    /// Sorted and without duplicates: a set.
    pub partitions: BTreeSet<TopicPartition>,
    pub last_update_ms: i64,
    /// -1 when no transaction is open.
    pub start_ms: i64,
}

/// Why bytes are not a transaction log record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TxnRecordError {
    /// Another record type (Kafka's key versions are per record type); replay skips it.
    #[error("unknown key version {0}")]
    UnknownKeyVersion(i16),
    #[error("unknown value version {0}")]
    UnknownValueVersion(i16),
    #[error("unknown transaction state {0}")]
    UnknownState(i8),
    #[error("{field}: needs {needed} bytes, {available} left")]
    Truncated {
        field: &'static str,
        needed: usize,
        available: usize,
    },
    #[error("{field}: invalid length {length}")]
    InvalidLength { field: &'static str, length: i64 },
    #[error("{field}: null where a value is required")]
    UnexpectedNull { field: &'static str },
    #[error("{field}: not UTF-8")]
    NotUtf8 { field: &'static str },
    #[error("{field}: varint longer than 5 bytes")]
    BadVarint { field: &'static str },
    #[error("{count} bytes after the end of the {what}")]
    TrailingBytes { what: &'static str, count: usize },
    #[error("{field}: {len} bytes, more than the {max} the format can carry")]
    TooLong {
        field: &'static str,
        len: usize,
        max: usize,
    },
}

impl From<FieldError> for TxnRecordError {
    fn from(error: FieldError) -> Self {
        match error {
            FieldError::Truncated {
                field,
                needed,
                available,
            } => Self::Truncated {
                field,
                needed,
                available,
            },
            FieldError::InvalidLength { field, length } => Self::InvalidLength { field, length },
            FieldError::UnexpectedNull { field } => Self::UnexpectedNull { field },
            FieldError::NotUtf8 { field } => Self::NotUtf8 { field },
            FieldError::BadVarint { field } => Self::BadVarint { field },
            FieldError::TrailingBytes { what, count } => Self::TrailingBytes { what, count },
        }
    }
}

/// Checks that `record` can be encoded (every string fits an int16 length). [`encode`]
/// panics on a record that fails this; the coordinator's bounds keep it from happening.
pub fn check(record: &TxnRecord) -> Result<(), TxnRecordError> {
    let string = |field: &'static str, s: &str| {
        if s.len() > STRING_MAX_BYTES {
            return Err(TxnRecordError::TooLong {
                field,
                len: s.len(),
                max: STRING_MAX_BYTES,
            });
        }
        Ok(())
    };
    string("transactional_id", &record.transactional_id)?;
    if let Some(value) = &record.value {
        for tp in &value.partitions {
            string("topic", &tp.topic)?;
        }
    }
    Ok(())
}

/// Encodes `record` as (key, value); a tombstone has no value.
///
/// # Panics
/// When [`check`] fails for `record`: a bug in the caller.
pub fn encode(record: &TxnRecord) -> (Vec<u8>, Option<Vec<u8>>) {
    let mut key = Vec::with_capacity(4 + record.transactional_id.len());
    put_i16(&mut key, KEY_VERSION);
    put_string(&mut key, &record.transactional_id);
    (key, record.value.as_ref().map(encode_value))
}

fn encode_value(value: &TxnLogValue) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    put_i16(&mut out, VALUE_VERSION);
    put_i64(&mut out, value.producer_id);
    put_i16(&mut out, value.producer_epoch);
    put_i32(&mut out, value.timeout_ms);
    out.push(value.state.to_byte() as u8);
    // Topics in order, each with its partitions: the set is sorted by (topic, partition).
    let mut topics: Vec<(&str, Vec<i32>)> = Vec::new();
    for tp in &value.partitions {
        match topics.last_mut() {
            Some((topic, ids)) if *topic == tp.topic => ids.push(tp.partition),
            _ => topics.push((&tp.topic, vec![tp.partition])),
        }
    }
    put_i32(&mut out, length_i32(topics.len()));
    for (topic, ids) in topics {
        put_string(&mut out, topic);
        put_i32(&mut out, length_i32(ids.len()));
        for id in ids {
            put_i32(&mut out, id);
        }
    }
    put_i64(&mut out, value.last_update_ms);
    put_i64(&mut out, value.start_ms);
    out
}

/// Decodes a record read back from the log. Untrusted bytes: any malformation is an
/// error, never a panic.
pub fn decode(key: &[u8], value: Option<&[u8]>) -> Result<TxnRecord, TxnRecordError> {
    let mut k = Reader::new(key);
    let key_version = k.i16("key version")?;
    if key_version != KEY_VERSION {
        return Err(TxnRecordError::UnknownKeyVersion(key_version));
    }
    let transactional_id = k.string("transactional_id")?;
    k.finish("key")?;
    let value = value.map(decode_value).transpose()?;
    Ok(TxnRecord {
        transactional_id,
        value,
    })
}

fn decode_value(bytes: &[u8]) -> Result<TxnLogValue, TxnRecordError> {
    let mut r = Reader::new(bytes);
    let version = r.i16("value version")?;
    let flexible = match version {
        VALUE_VERSION => false,
        VALUE_VERSION_FLEXIBLE => true,
        other => return Err(TxnRecordError::UnknownValueVersion(other)),
    };
    let producer_id = r.i64("producer_id")?;
    let producer_epoch = r.i16("producer_epoch")?;
    let timeout_ms = r.i32("transaction_timeout_ms")?;
    let state_byte = r.i8("transaction_status")?;
    let state = TxnState::from_byte(state_byte).ok_or(TxnRecordError::UnknownState(state_byte))?;
    let mut partitions = BTreeSet::new();
    if let Some(topics) = r.array_len("transaction_partitions", flexible)? {
        for _ in 0..topics {
            let topic = if flexible {
                r.compact_string("topic")?
            } else {
                r.string("topic")?
            };
            let ids =
                r.array_len("partition_ids", flexible)?
                    .ok_or(TxnRecordError::UnexpectedNull {
                        field: "partition_ids",
                    })?;
            for _ in 0..ids {
                let partition = r.i32("partition_id")?;
                partitions.insert(TopicPartition::new(&topic, partition));
            }
            if flexible {
                r.skip_tagged_fields()?;
            }
        }
    }
    let last_update_ms = r.i64("transaction_last_update_timestamp_ms")?;
    let start_ms = r.i64("transaction_start_timestamp_ms")?;
    let mut previous_producer_id = -1;
    if flexible {
        let count = r.uvarint("tagged fields")?;
        for _ in 0..count {
            let tag = r.uvarint("tag")?;
            let size = r.uvarint("tag size")? as usize;
            let field = r.take("tagged field", size)?;
            if tag == 0 {
                let mut f = Reader::new(field);
                previous_producer_id = f.i64("previous_producer_id")?;
                f.finish("previous_producer_id")?;
            }
        }
    }
    r.finish("transaction log value")?;
    Ok(TxnLogValue {
        producer_id,
        previous_producer_id,
        producer_epoch,
        timeout_ms,
        state,
        partitions,
        last_update_ms,
        start_ms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample() -> TxnRecord {
        TxnRecord {
            transactional_id: "tx-1".into(),
            value: Some(TxnLogValue {
                producer_id: 42,
                previous_producer_id: -1,
                producer_epoch: 3,
                timeout_ms: 60_000,
                state: TxnState::Ongoing,
                partitions: [
                    TopicPartition::new("a", 1),
                    TopicPartition::new("a", 0),
                    TopicPartition::new("b", 7),
                ]
                .into_iter()
                .collect(),
                last_update_ms: 1_000,
                start_ms: 900,
            }),
        }
    }

    #[test]
    fn round_trip_and_exact_bytes() {
        let record = sample();
        let (key, value) = encode(&record);
        assert_eq!(key, [0, 0, 0, 4, b't', b'x', b'-', b'1']);
        let value = value.expect("not a tombstone");
        // version, pid, epoch, timeout, state, 2 topics: "a" [0, 1], "b" [7], two timestamps
        let mut expected = vec![0, 0];
        expected.extend_from_slice(&42i64.to_be_bytes());
        expected.extend_from_slice(&3i16.to_be_bytes());
        expected.extend_from_slice(&60_000i32.to_be_bytes());
        expected.push(1);
        expected.extend_from_slice(&2i32.to_be_bytes());
        expected.extend_from_slice(&[0, 1, b'a', 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 1]);
        expected.extend_from_slice(&[0, 1, b'b', 0, 0, 0, 1, 0, 0, 0, 7]);
        expected.extend_from_slice(&1_000i64.to_be_bytes());
        expected.extend_from_slice(&900i64.to_be_bytes());
        assert_eq!(value, expected);
        assert_eq!(decode(&key, Some(&value)), Ok(record));
    }

    #[test]
    fn tombstone_round_trip() {
        let record = TxnRecord {
            transactional_id: "gone".into(),
            value: None,
        };
        let (key, value) = encode(&record);
        assert_eq!(value, None);
        assert_eq!(decode(&key, None), Ok(record));
    }

    #[test]
    fn null_partitions_read_as_empty() {
        let mut v = vec![0, 0];
        v.extend_from_slice(&5i64.to_be_bytes());
        v.extend_from_slice(&0i16.to_be_bytes());
        v.extend_from_slice(&1000i32.to_be_bytes());
        v.push(0);
        v.extend_from_slice(&(-1i32).to_be_bytes());
        v.extend_from_slice(&7i64.to_be_bytes());
        v.extend_from_slice(&(-1i64).to_be_bytes());
        let key = [0, 0, 0, 1, b'x'];
        let record = decode(&key, Some(&v)).expect("valid");
        let value = record.value.expect("value");
        assert!(value.partitions.is_empty());
        assert_eq!(value.state, TxnState::Empty);
    }

    #[test]
    fn flexible_version_one_is_read() {
        let mut v = vec![0, 1];
        v.extend_from_slice(&9i64.to_be_bytes());
        v.extend_from_slice(&2i16.to_be_bytes());
        v.extend_from_slice(&500i32.to_be_bytes());
        v.push(2); // PrepareCommit
        v.push(2); // one topic (compact count + 1)
        v.extend_from_slice(&[4, b'f', b'o', b'o']); // compact string "foo"
        v.push(3); // two partition ids
        v.extend_from_slice(&4i32.to_be_bytes());
        v.extend_from_slice(&5i32.to_be_bytes());
        v.push(0); // the topic entry's tagged fields
        v.extend_from_slice(&11i64.to_be_bytes());
        v.extend_from_slice(&10i64.to_be_bytes());
        v.push(2); // two tagged fields: previous producer id and client transaction version
        v.extend_from_slice(&[0, 8]);
        v.extend_from_slice(&8i64.to_be_bytes());
        v.extend_from_slice(&[2, 2, 0, 1]);
        let record = decode(&[0, 0, 0, 1, b't'], Some(&v)).expect("valid v1");
        let value = record.value.expect("value");
        assert_eq!(value.producer_id, 9);
        assert_eq!(value.previous_producer_id, 8);
        assert_eq!(value.state, TxnState::PrepareCommit);
        assert_eq!(
            value.partitions.into_iter().collect::<Vec<_>>(),
            vec![TopicPartition::new("foo", 4), TopicPartition::new("foo", 5)]
        );
        assert_eq!((value.last_update_ms, value.start_ms), (11, 10));
    }

    #[test]
    fn every_truncation_is_an_error() {
        let (key, value) = encode(&sample());
        let value = value.expect("value");
        for cut in 0..key.len() {
            assert!(
                decode(&key[..cut], Some(&value)).is_err(),
                "key cut at {cut}"
            );
        }
        for cut in 0..value.len() {
            assert!(
                decode(&key, Some(&value[..cut])).is_err(),
                "value cut at {cut}"
            );
        }
        let mut longer = value.clone();
        longer.push(0);
        assert!(matches!(
            decode(&key, Some(&longer)),
            Err(TxnRecordError::TrailingBytes { .. })
        ));
    }

    #[test]
    fn hostile_counts_and_versions() {
        assert_eq!(
            decode(&[0, 1, 0, 0], None),
            Err(TxnRecordError::UnknownKeyVersion(1))
        );
        let key = [0, 0, 0, 1, b'x'];
        let mut v = vec![0, 0];
        v.extend_from_slice(&[0; 8 + 2 + 4]);
        v.push(1);
        v.extend_from_slice(&i32::MAX.to_be_bytes());
        assert!(matches!(
            decode(&key, Some(&v)),
            Err(TxnRecordError::Truncated { .. })
        ));
        let mut v2 = v[..v.len() - 4].to_vec();
        v2.extend_from_slice(&(-2i32).to_be_bytes());
        assert!(matches!(
            decode(&key, Some(&v2)),
            Err(TxnRecordError::InvalidLength { .. })
        ));
        let mut bad_state = v[..v.len() - 5].to_vec();
        bad_state.push(9);
        assert_eq!(
            decode(&key, Some(&bad_state)),
            Err(TxnRecordError::UnknownState(9))
        );
        assert_eq!(
            decode(&key, Some(&[0, 2])),
            Err(TxnRecordError::UnknownValueVersion(2))
        );
        // Flexible varint that never ends.
        let mut v3 = vec![0, 1];
        v3.extend_from_slice(&[0; 8 + 2 + 4]);
        v3.push(1);
        v3.extend_from_slice(&[0xff; 6]);
        assert!(matches!(
            decode(&key, Some(&v3)),
            Err(TxnRecordError::BadVarint { .. })
        ));
    }

    #[test]
    fn check_refuses_long_names() {
        let mut record = sample();
        record.transactional_id = "x".repeat(STRING_MAX_BYTES + 1);
        assert!(matches!(
            check(&record),
            Err(TxnRecordError::TooLong { .. })
        ));
        assert_eq!(check(&sample()), Ok(()));
    }

    fn state() -> impl Strategy<Value = TxnState> {
        (0i8..8).prop_map(|b| TxnState::from_byte(b).expect("0..8 are states"))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn random_records_round_trip(
            id in "[a-z0-9._-]{1,40}",
            producer_id in any::<i64>(),
            producer_epoch in any::<i16>(),
            timeout_ms in any::<i32>(),
            state in state(),
            parts in proptest::collection::btree_set(("[a-z]{1,8}", any::<i32>()), 0..20),
            last_update_ms in any::<i64>(),
            start_ms in any::<i64>(),
        ) {
            let record = TxnRecord {
                transactional_id: id,
                value: Some(TxnLogValue {
                    producer_id,
                    previous_producer_id: -1,
                    producer_epoch,
                    timeout_ms,
                    state,
                    partitions: parts.into_iter().map(|(t, p)| TopicPartition::new(&t, p)).collect(),
                    last_update_ms,
                    start_ms,
                }),
            };
            let (key, value) = encode(&record);
            prop_assert_eq!(decode(&key, value.as_deref()), Ok(record));
        }

        #[test]
        fn random_bytes_never_panic(
            key in proptest::collection::vec(any::<u8>(), 0..64),
            value in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..256)),
        ) {
            let _ = decode(&key, value.as_deref());
            // Also behind a valid key and value version, where the fields are reached.
            let mut v = vec![0, 1];
            v.extend_from_slice(value.as_deref().unwrap_or(&[]));
            let _ = decode(&[0, 0, 0, 1, b'k'], Some(&v));
            v[1] = 0;
            let _ = decode(&[0, 0, 0, 1, b'k'], Some(&v));
        }
    }
}
