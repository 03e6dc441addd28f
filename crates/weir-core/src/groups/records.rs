//! The key/value format of records in `__consumer_offsets`: what makes the coordinator's
//! state durable. Keys identify what compaction keeps the last of (one offset, one group);
//! a null value (tombstone) removes the key.
//!
//! Offset commits and classic groups use Kafka's own schemas, so Kafka's tools could read
//! weir's log:
//! - key version 0 or 1: `OffsetCommitKey` (group, topic, partition); weir writes 1, as
//!   Kafka does. Value `OffsetCommitValue`: weir writes version 3 (offset, leader epoch,
//!   metadata, commit timestamp) and reads 0 to 3.
//! - key version 2: `GroupMetadataKey` (group). Value `GroupMetadataValue`: weir writes
//!   version 3 (with group instance ids) and reads 0 to 3.
//! - key version [`CONSUMER_GROUP_KEY_VERSION`] (0x5752, "WR"): weir's own record of a
//!   KIP-848 group's whole state, value opaque. Kafka spreads such a group over several
//!   record types (key versions 3 to 8 and up); weir keeps one, so its version is chosen far
//!   from any Kafka uses.
//! - key version [`TXN_OFFSET_KEY_VERSION`] (0x5754, "WT"): weir's own record of an offset
//!   committed inside an open transaction (TxnOffsetCommit): key (group, producer id, topic,
//!   partition), value an `OffsetCommitValue` v3. Written when committed, tombstoned when
//!   the transaction's marker resolves it. (Kafka logs these as transactional batches of
//!   ordinary offset records instead.)
//!
//! Non-flexible encodings throughout (Kafka's value versions 4+ are flexible: weir neither
//! writes nor reads them): big-endian integers, strings as int16 length + UTF-8 (-1 = null),
//! bytes as int32 length (-1 = null), arrays as int32 count.
//!
//! # What it must never do
//! Panic on bytes read back: [`decode`] checks every length against the bytes present and
//! allocates only for bytes that are there. It does not judge values (bounds on members or
//! names are the coordinator's); it only reads and writes them.

use bytes::Bytes;

use super::{ClassicGroupSnapshot, ClassicMemberSnapshot, OffsetValue};
use crate::record_bytes::{
    FieldError, Reader, length_i32, put_bytes, put_i16, put_i32, put_i64, put_nullable_string,
    put_string,
};

/// Key version of Kafka's legacy offset commit key (same layout as version 1).
pub const OFFSET_COMMIT_KEY_VERSION_V0: i16 = 0;
/// Key version of an offset commit, as Kafka writes it.
pub const OFFSET_COMMIT_KEY_VERSION: i16 = 1;
/// Key version of a classic group's metadata.
pub const GROUP_METADATA_KEY_VERSION: i16 = 2;
/// Key version of weir's KIP-848 group record: 0x5752 ("WR"), far above the record types
/// Kafka assigns (all below 100), so neither reads the other's records as its own.
pub const CONSUMER_GROUP_KEY_VERSION: i16 = 0x5752;
/// Key version of weir's pending transactional offset record: 0x5754 ("WT").
pub const TXN_OFFSET_KEY_VERSION: i16 = 0x5754;
/// Value version weir writes for offset commits.
pub const OFFSET_COMMIT_VALUE_VERSION: i16 = 3;
/// Value version weir writes for classic groups.
pub const GROUP_METADATA_VALUE_VERSION: i16 = 3;
/// Longest string the non-flexible encoding can carry (int16 length).
pub const STRING_MAX_BYTES: usize = i16::MAX as usize;

/// One record of `__consumer_offsets`, decoded. A `None` value is a tombstone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupRecord {
    /// Kafka's OffsetCommitKey v1 and OffsetCommitValue v3.
    Offset {
        group: String,
        topic: String,
        partition: i32,
        value: Option<OffsetValue>,
    },
    /// Kafka's GroupMetadataKey v2 and GroupMetadataValue v3.
    Classic {
        group: String,
        value: Option<ClassicGroupSnapshot>,
    },
    /// A KIP-848 group's whole state as one record; the value is the coordinator's
    /// (serde_json of its snapshot), opaque here.
    Consumer {
        group: String,
        value: Option<Vec<u8>>,
    },
    /// An offset held pending in `producer_id`'s open transaction (weir's own record).
    TxnOffset {
        group: String,
        producer_id: i64,
        topic: String,
        partition: i32,
        value: Option<OffsetValue>,
    },
}

impl GroupRecord {
    /// The group the record belongs to (which also picks its partition).
    pub fn group(&self) -> &str {
        match self {
            GroupRecord::Offset { group, .. }
            | GroupRecord::Classic { group, .. }
            | GroupRecord::Consumer { group, .. }
            | GroupRecord::TxnOffset { group, .. } => group,
        }
    }

    pub fn is_tombstone(&self) -> bool {
        match self {
            GroupRecord::Offset { value, .. } => value.is_none(),
            GroupRecord::Classic { value, .. } => value.is_none(),
            GroupRecord::Consumer { value, .. } => value.is_none(),
            GroupRecord::TxnOffset { value, .. } => value.is_none(),
        }
    }
}

/// Why bytes are not a group record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    /// A record type weir does not know (a newer Kafka's, say); replay skips it.
    #[error("unknown key version {0}")]
    UnknownKeyVersion(i16),
    #[error("unknown value version {version} for key version {key_version}")]
    UnknownValueVersion { key_version: i16, version: i16 },
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
    /// A field too long for its encoding (found by [`check`] before encoding).
    #[error("{field}: {len} bytes, more than the {max} the format can carry")]
    TooLong {
        field: &'static str,
        len: usize,
        max: usize,
    },
}

impl From<FieldError> for RecordError {
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

/// Checks that `record` can be encoded: every string fits an int16 length, every byte
/// field and array an int32 one. [`encode`] panics on a record that fails this; the
/// coordinator's bounds (`NAME_MAX_BYTES`, `offset.metadata.max.bytes`) keep it from
/// happening, and `Broker::append_group_records` checks before encoding.
pub fn check(record: &GroupRecord) -> Result<(), RecordError> {
    let string = |field: &'static str, s: &str| {
        if s.len() > STRING_MAX_BYTES {
            return Err(RecordError::TooLong {
                field,
                len: s.len(),
                max: STRING_MAX_BYTES,
            });
        }
        Ok(())
    };
    let bytes = |field: &'static str, len: usize| {
        if len > i32::MAX as usize {
            return Err(RecordError::TooLong {
                field,
                len,
                max: i32::MAX as usize,
            });
        }
        Ok(())
    };
    string("group", record.group())?;
    match record {
        GroupRecord::Offset { topic, value, .. } | GroupRecord::TxnOffset { topic, value, .. } => {
            string("topic", topic)?;
            if let Some(value) = value {
                string("metadata", &value.metadata)?;
            }
        }
        GroupRecord::Classic { value, .. } => {
            let Some(snapshot) = value else {
                return Ok(());
            };
            string("protocol_type", &snapshot.protocol_type)?;
            string("protocol", snapshot.protocol_name.as_deref().unwrap_or(""))?;
            string("leader", snapshot.leader.as_deref().unwrap_or(""))?;
            bytes("members", snapshot.members.len())?;
            for member in &snapshot.members {
                string("member_id", &member.member_id)?;
                string(
                    "group_instance_id",
                    member.group_instance_id.as_deref().unwrap_or(""),
                )?;
                string("client_id", &member.client_id)?;
                string("client_host", &member.client_host)?;
                bytes("subscription", member.subscription.len())?;
                bytes("assignment", member.assignment.len())?;
            }
        }
        GroupRecord::Consumer { .. } => {}
    }
    Ok(())
}

/// Encodes `record` as (key, value); a tombstone has no value.
///
/// # Panics
/// When [`check`] fails for `record` (a string over 32,767 bytes): a bug in the caller.
pub fn encode(record: &GroupRecord) -> (Vec<u8>, Option<Vec<u8>>) {
    let mut key = Vec::new();
    match record {
        GroupRecord::Offset {
            group,
            topic,
            partition,
            value,
        } => {
            put_i16(&mut key, OFFSET_COMMIT_KEY_VERSION);
            put_string(&mut key, group);
            put_string(&mut key, topic);
            put_i32(&mut key, *partition);
            (key, value.as_ref().map(encode_offset_value))
        }
        GroupRecord::Classic { group, value } => {
            put_i16(&mut key, GROUP_METADATA_KEY_VERSION);
            put_string(&mut key, group);
            (key, value.as_ref().map(encode_group_value))
        }
        GroupRecord::Consumer { group, value } => {
            put_i16(&mut key, CONSUMER_GROUP_KEY_VERSION);
            put_string(&mut key, group);
            (key, value.clone())
        }
        GroupRecord::TxnOffset {
            group,
            producer_id,
            topic,
            partition,
            value,
        } => {
            put_i16(&mut key, TXN_OFFSET_KEY_VERSION);
            put_string(&mut key, group);
            put_i64(&mut key, *producer_id);
            put_string(&mut key, topic);
            put_i32(&mut key, *partition);
            (key, value.as_ref().map(encode_offset_value))
        }
    }
}

fn encode_offset_value(value: &OffsetValue) -> Vec<u8> {
    let mut out = Vec::with_capacity(2 + 8 + 4 + 2 + value.metadata.len() + 8);
    put_i16(&mut out, OFFSET_COMMIT_VALUE_VERSION);
    put_i64(&mut out, value.offset);
    put_i32(&mut out, value.leader_epoch);
    put_string(&mut out, &value.metadata);
    put_i64(&mut out, value.commit_timestamp_ms);
    out
}

fn encode_group_value(snapshot: &ClassicGroupSnapshot) -> Vec<u8> {
    let mut out = Vec::new();
    put_i16(&mut out, GROUP_METADATA_VALUE_VERSION);
    put_string(&mut out, &snapshot.protocol_type);
    put_i32(&mut out, snapshot.generation_id);
    put_nullable_string(&mut out, snapshot.protocol_name.as_deref());
    put_nullable_string(&mut out, snapshot.leader.as_deref());
    put_i64(&mut out, snapshot.state_timestamp_ms);
    put_i32(&mut out, length_i32(snapshot.members.len()));
    for member in &snapshot.members {
        put_string(&mut out, &member.member_id);
        put_nullable_string(&mut out, member.group_instance_id.as_deref());
        put_string(&mut out, &member.client_id);
        put_string(&mut out, &member.client_host);
        put_i32(&mut out, member.rebalance_timeout_ms);
        put_i32(&mut out, member.session_timeout_ms);
        put_bytes(&mut out, &member.subscription);
        put_bytes(&mut out, &member.assignment);
    }
    out
}

/// Decodes a record read back from the log. Untrusted bytes: any malformation is an
/// error, never a panic; unknown key versions are [`RecordError::UnknownKeyVersion`].
pub fn decode(key: &[u8], value: Option<&[u8]>) -> Result<GroupRecord, RecordError> {
    let mut k = Reader::new(key);
    let key_version = k.i16("key version")?;
    let record = match key_version {
        OFFSET_COMMIT_KEY_VERSION_V0 | OFFSET_COMMIT_KEY_VERSION => {
            let group = k.string("group")?;
            let topic = k.string("topic")?;
            let partition = k.i32("partition")?;
            k.finish("key")?;
            let value = value.map(decode_offset_value).transpose()?;
            GroupRecord::Offset {
                group,
                topic,
                partition,
                value,
            }
        }
        GROUP_METADATA_KEY_VERSION => {
            let group = k.string("group")?;
            k.finish("key")?;
            let value = value.map(decode_group_value).transpose()?;
            GroupRecord::Classic { group, value }
        }
        CONSUMER_GROUP_KEY_VERSION => {
            let group = k.string("group")?;
            k.finish("key")?;
            GroupRecord::Consumer {
                group,
                value: value.map(<[u8]>::to_vec),
            }
        }
        TXN_OFFSET_KEY_VERSION => {
            let group = k.string("group")?;
            let producer_id = k.i64("producer id")?;
            let topic = k.string("topic")?;
            let partition = k.i32("partition")?;
            k.finish("key")?;
            let value = value.map(decode_offset_value).transpose()?;
            GroupRecord::TxnOffset {
                group,
                producer_id,
                topic,
                partition,
                value,
            }
        }
        other => return Err(RecordError::UnknownKeyVersion(other)),
    };
    Ok(record)
}

fn decode_offset_value(bytes: &[u8]) -> Result<OffsetValue, RecordError> {
    let mut r = Reader::new(bytes);
    let version = r.i16("value version")?;
    if !(0..=3).contains(&version) {
        return Err(RecordError::UnknownValueVersion {
            key_version: OFFSET_COMMIT_KEY_VERSION,
            version,
        });
    }
    let offset = r.i64("offset")?;
    let leader_epoch = if version >= 3 {
        r.i32("leader_epoch")?
    } else {
        -1
    };
    let metadata = r.string("metadata")?;
    let commit_timestamp_ms = r.i64("commit_timestamp")?;
    if version == 1 {
        // Version 1's explicit expire timestamp: retention is the broker's since KIP-211.
        r.i64("expire_timestamp")?;
    }
    r.finish("offset commit value")?;
    Ok(OffsetValue {
        offset,
        leader_epoch,
        metadata,
        commit_timestamp_ms,
    })
}

fn decode_group_value(bytes: &[u8]) -> Result<ClassicGroupSnapshot, RecordError> {
    let mut r = Reader::new(bytes);
    let version = r.i16("value version")?;
    if !(0..=3).contains(&version) {
        return Err(RecordError::UnknownValueVersion {
            key_version: GROUP_METADATA_KEY_VERSION,
            version,
        });
    }
    let protocol_type = r.string("protocol_type")?;
    let generation_id = r.i32("generation")?;
    let protocol_name = r.nullable_string("protocol")?;
    let leader = r.nullable_string("leader")?;
    let state_timestamp_ms = if version >= 2 {
        r.i64("current_state_timestamp")?
    } else {
        -1
    };
    let count = r.i32("members")?;
    let count = usize::try_from(count).map_err(|_| RecordError::InvalidLength {
        field: "members",
        length: i64::from(count),
    })?;
    // No capacity from the count: each member takes bytes that must be present, so a
    // lying count ends in Truncated after allocating only for what was there.
    let mut members = Vec::new();
    for _ in 0..count {
        let member_id = r.string("member_id")?;
        let group_instance_id = if version >= 3 {
            r.nullable_string("group_instance_id")?
        } else {
            None
        };
        let client_id = r.string("client_id")?;
        let client_host = r.string("client_host")?;
        let rebalance_timeout_ms = if version >= 1 {
            Some(r.i32("rebalance_timeout")?)
        } else {
            None
        };
        let session_timeout_ms = r.i32("session_timeout")?;
        let subscription = Bytes::from(r.bytes("subscription")?);
        let assignment = Bytes::from(r.bytes("assignment")?);
        members.push(ClassicMemberSnapshot {
            member_id,
            group_instance_id,
            client_id,
            client_host,
            // Version 0 had one timeout for both.
            rebalance_timeout_ms: rebalance_timeout_ms.unwrap_or(session_timeout_ms),
            session_timeout_ms,
            subscription,
            assignment,
        });
    }
    r.finish("group metadata value")?;
    Ok(ClassicGroupSnapshot {
        protocol_type,
        generation_id,
        protocol_name,
        leader,
        state_timestamp_ms,
        members,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn offset_record() -> GroupRecord {
        GroupRecord::Offset {
            group: "g".into(),
            topic: "t".into(),
            partition: 2,
            value: Some(OffsetValue {
                offset: 5,
                leader_epoch: 7,
                metadata: "m".into(),
                commit_timestamp_ms: 9,
            }),
        }
    }

    fn classic_record() -> GroupRecord {
        GroupRecord::Classic {
            group: "g".into(),
            value: Some(ClassicGroupSnapshot {
                protocol_type: "consumer".into(),
                generation_id: 3,
                protocol_name: Some("range".into()),
                leader: Some("m1".into()),
                state_timestamp_ms: 100,
                members: vec![ClassicMemberSnapshot {
                    member_id: "m1".into(),
                    group_instance_id: Some("i".into()),
                    client_id: "c".into(),
                    client_host: "/h".into(),
                    rebalance_timeout_ms: 300,
                    session_timeout_ms: 45,
                    subscription: Bytes::from_static(b"\x01"),
                    assignment: Bytes::from_static(b""),
                }],
            }),
        }
    }

    #[test]
    fn a_pending_transactional_offset_round_trips_and_truncations_fail() {
        let record = GroupRecord::TxnOffset {
            group: "g".to_string(),
            producer_id: 77,
            topic: "orders".to_string(),
            partition: 3,
            value: Some(OffsetValue {
                offset: 42,
                leader_epoch: 5,
                metadata: "m".to_string(),
                commit_timestamp_ms: 9,
            }),
        };
        check(&record).expect("fits");
        let (key, value) = encode(&record);
        assert_eq!(&key[..2], &TXN_OFFSET_KEY_VERSION.to_be_bytes());
        assert_eq!(decode(&key, value.as_deref()), Ok(record));
        for cut in 2..key.len() {
            assert!(
                decode(&key[..cut], value.as_deref()).is_err(),
                "key cut at {cut}"
            );
        }
        let tombstone = GroupRecord::TxnOffset {
            group: "g".to_string(),
            producer_id: 77,
            topic: "orders".to_string(),
            partition: 3,
            value: None,
        };
        let (key, value) = encode(&tombstone);
        assert_eq!(value, None);
        assert_eq!(decode(&key, None), Ok(tombstone));
    }

    #[test]
    fn offset_commit_bytes_match_kafkas_schemas() {
        let (key, value) = encode(&offset_record());
        let expected_key = [
            0, 1, // key version 1
            0, 1, b'g', // group
            0, 1, b't', // topic
            0, 0, 0, 2, // partition
        ];
        assert_eq!(key, expected_key);
        let expected_value = [
            0, 3, // value version 3
            0, 0, 0, 0, 0, 0, 0, 5, // offset
            0, 0, 0, 7, // leader epoch
            0, 1, b'm', // metadata
            0, 0, 0, 0, 0, 0, 0, 9, // commit timestamp
        ];
        assert_eq!(value.as_deref(), Some(expected_value.as_slice()));
        assert_eq!(
            decode(&key, value.as_deref()).expect("decodes"),
            offset_record()
        );
    }

    #[test]
    fn group_metadata_bytes_match_kafkas_schemas() {
        let (key, value) = encode(&classic_record());
        assert_eq!(key, [0, 2, 0, 1, b'g']);
        let mut expected = vec![0, 3]; // value version 3
        expected.extend_from_slice(&[0, 8]);
        expected.extend_from_slice(b"consumer");
        expected.extend_from_slice(&[0, 0, 0, 3]); // generation
        expected.extend_from_slice(&[0, 5]);
        expected.extend_from_slice(b"range");
        expected.extend_from_slice(&[0, 2]);
        expected.extend_from_slice(b"m1"); // leader
        expected.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 100]); // current state timestamp
        expected.extend_from_slice(&[0, 0, 0, 1]); // one member
        expected.extend_from_slice(&[0, 2]);
        expected.extend_from_slice(b"m1");
        expected.extend_from_slice(&[0, 1, b'i']); // group instance id
        expected.extend_from_slice(&[0, 1, b'c']); // client id
        expected.extend_from_slice(&[0, 2, b'/', b'h']); // client host
        expected.extend_from_slice(&[0, 0, 1, 44]); // rebalance timeout 300
        expected.extend_from_slice(&[0, 0, 0, 45]); // session timeout
        expected.extend_from_slice(&[0, 0, 0, 1, 1]); // subscription
        expected.extend_from_slice(&[0, 0, 0, 0]); // assignment
        assert_eq!(value.as_deref(), Some(expected.as_slice()));
        assert_eq!(
            decode(&key, value.as_deref()).expect("decodes"),
            classic_record()
        );
    }

    #[test]
    fn consumer_group_record_uses_weirs_key_version() {
        let record = GroupRecord::Consumer {
            group: "g".into(),
            value: Some(b"{}".to_vec()),
        };
        let (key, value) = encode(&record);
        assert_eq!(key, [0x57, 0x52, 0, 1, b'g']);
        assert_eq!(value.as_deref(), Some(b"{}".as_slice()));
        assert_eq!(decode(&key, value.as_deref()).expect("decodes"), record);
    }

    #[test]
    fn older_value_versions_decode() {
        // OffsetCommitValue v1: offset, metadata, commit timestamp, expire timestamp.
        let mut v1 = vec![0, 1, 0, 0, 0, 0, 0, 0, 0, 42, 0, 0];
        v1.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 8]);
        v1.extend_from_slice(&[0xff; 8]);
        let key = [0, 0, 0, 1, b'g', 0, 1, b't', 0, 0, 0, 0]; // key version 0
        let record = decode(&key, Some(&v1)).expect("decodes");
        let GroupRecord::Offset {
            value: Some(value), ..
        } = record
        else {
            panic!("an offset commit");
        };
        assert_eq!(
            (value.offset, value.leader_epoch, value.commit_timestamp_ms),
            (42, -1, 8)
        );
        // GroupMetadataValue v0: no rebalance timeout, state timestamp or instance id.
        let mut g0 = vec![0, 0, 0, 0, 0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff];
        g0.extend_from_slice(&[0, 0, 0, 1]); // one member
        g0.extend_from_slice(&[0, 1, b'm', 0, 0, 0, 0]); // member, client id, client host
        g0.extend_from_slice(&[0, 0, 0, 10]); // session timeout
        g0.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0]); // subscription, assignment
        let record = decode(&[0, 2, 0, 1, b'g'], Some(&g0)).expect("decodes");
        let GroupRecord::Classic {
            value: Some(snapshot),
            ..
        } = record
        else {
            panic!("a classic group");
        };
        assert_eq!(snapshot.state_timestamp_ms, -1);
        assert_eq!(snapshot.protocol_name, None);
        assert_eq!(snapshot.members[0].session_timeout_ms, 10);
        assert_eq!(snapshot.members[0].rebalance_timeout_ms, 10);
        assert_eq!(snapshot.members[0].group_instance_id, None);
    }

    #[test]
    fn tombstones_round_trip_and_unknown_versions_are_named() {
        for record in [
            GroupRecord::Offset {
                group: "g".into(),
                topic: "t".into(),
                partition: 0,
                value: None,
            },
            GroupRecord::Classic {
                group: "g".into(),
                value: None,
            },
            GroupRecord::Consumer {
                group: "g".into(),
                value: None,
            },
        ] {
            let (key, value) = encode(&record);
            assert!(value.is_none());
            assert!(record.is_tombstone());
            assert_eq!(decode(&key, None).expect("decodes"), record);
        }
        assert_eq!(
            decode(&[0, 3, 0, 1, b'g'], None),
            Err(RecordError::UnknownKeyVersion(3))
        );
        let (key, _) = encode(&offset_record());
        assert!(matches!(
            decode(&key, Some(&[0, 4, 0, 0])),
            Err(RecordError::UnknownValueVersion { version: 4, .. })
        ));
        let (key, mut value) = encode(&offset_record());
        if let Some(v) = value.as_mut() {
            v.push(0);
        }
        assert!(matches!(
            decode(&key, value.as_deref()),
            Err(RecordError::TrailingBytes { .. })
        ));
    }

    #[test]
    fn hostile_lengths_are_errors() {
        // A member count of 2^31-1 with no member bytes behind it.
        let mut g = vec![0, 3, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff];
        g.extend_from_slice(&[0; 8]);
        g.extend_from_slice(&[0x7f, 0xff, 0xff, 0xff]);
        assert!(matches!(
            decode(&[0, 2, 0, 1, b'g'], Some(&g)),
            Err(RecordError::Truncated { .. })
        ));
        // A negative member count and a negative string length.
        let mut negative = g.clone();
        let at = negative.len() - 4;
        negative[at..].copy_from_slice(&[0xff, 0xff, 0xff, 0xfe]);
        assert!(matches!(
            decode(&[0, 2, 0, 1, b'g'], Some(&negative)),
            Err(RecordError::InvalidLength { .. })
        ));
        assert!(matches!(
            decode(&[0, 2, 0xff, 0xfe], None),
            Err(RecordError::InvalidLength { .. })
        ));
        assert!(matches!(
            decode(&[0, 2, 0xff, 0xff], None),
            Err(RecordError::UnexpectedNull { field: "group" })
        ));
        assert!(matches!(
            decode(&[0, 2, 0, 1, 0xff], None),
            Err(RecordError::NotUtf8 { .. })
        ));
    }

    #[test]
    fn check_refuses_strings_the_format_cannot_carry() {
        let long = "x".repeat(STRING_MAX_BYTES + 1);
        let record = GroupRecord::Offset {
            group: "g".into(),
            topic: "t".into(),
            partition: 0,
            value: Some(OffsetValue {
                offset: 0,
                leader_epoch: -1,
                metadata: long,
                commit_timestamp_ms: 0,
            }),
        };
        assert!(matches!(
            check(&record),
            Err(RecordError::TooLong {
                field: "metadata",
                ..
            })
        ));
        assert_eq!(check(&classic_record()), Ok(()));
    }

    fn name() -> impl Strategy<Value = String> {
        "[a-zA-Z0-9._\\-é]{0,12}"
    }

    fn bytes() -> impl Strategy<Value = Bytes> {
        proptest::collection::vec(any::<u8>(), 0..16).prop_map(Bytes::from)
    }

    fn member() -> impl Strategy<Value = ClassicMemberSnapshot> {
        (
            name(),
            proptest::option::of(name()),
            name(),
            name(),
            any::<i32>(),
            any::<i32>(),
            bytes(),
            bytes(),
        )
            .prop_map(
                |(member_id, group_instance_id, client_id, client_host, r, s, sub, asg)| {
                    ClassicMemberSnapshot {
                        member_id,
                        group_instance_id,
                        client_id,
                        client_host,
                        rebalance_timeout_ms: r,
                        session_timeout_ms: s,
                        subscription: sub,
                        assignment: asg,
                    }
                },
            )
    }

    fn record() -> impl Strategy<Value = GroupRecord> {
        let offset_value = (any::<i64>(), any::<i32>(), name(), any::<i64>()).prop_map(
            |(offset, leader_epoch, metadata, commit_timestamp_ms)| OffsetValue {
                offset,
                leader_epoch,
                metadata,
                commit_timestamp_ms,
            },
        );
        let snapshot = (
            name(),
            any::<i32>(),
            proptest::option::of(name()),
            proptest::option::of(name()),
            any::<i64>(),
            proptest::collection::vec(member(), 0..4),
        )
            .prop_map(
                |(protocol_type, generation_id, protocol_name, leader, ts, members)| {
                    ClassicGroupSnapshot {
                        protocol_type,
                        generation_id,
                        protocol_name,
                        leader,
                        state_timestamp_ms: ts,
                        members,
                    }
                },
            );
        prop_oneof![
            (
                name(),
                name(),
                any::<i32>(),
                proptest::option::of(offset_value)
            )
                .prop_map(|(group, topic, partition, value)| GroupRecord::Offset {
                    group,
                    topic,
                    partition,
                    value
                }),
            (name(), proptest::option::of(snapshot))
                .prop_map(|(group, value)| GroupRecord::Classic { group, value }),
            (
                name(),
                proptest::option::of(proptest::collection::vec(any::<u8>(), 0..32))
            )
                .prop_map(|(group, value)| GroupRecord::Consumer { group, value }),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn records_round_trip(record in record()) {
            prop_assert_eq!(check(&record), Ok(()));
            let (key, value) = encode(&record);
            prop_assert_eq!(decode(&key, value.as_deref()), Ok(record));
        }

        #[test]
        fn every_truncation_is_an_error(record in record()) {
            let (key, value) = encode(&record);
            for cut in 0..key.len() {
                prop_assert!(decode(&key[..cut], value.as_deref()).is_err());
            }
            // A KIP-848 value is opaque: any prefix of it is a value.
            if let (Some(value), false) = (&value, matches!(record, GroupRecord::Consumer { .. })) {
                for cut in 0..value.len() {
                    prop_assert!(decode(&key, Some(&value[..cut])).is_err());
                }
            }
        }

        #[test]
        fn random_bytes_never_panic(
            key in proptest::collection::vec(any::<u8>(), 0..40),
            value in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..80)),
        ) {
            let decoded = decode(&key, value.as_deref());
            if key.len() < 4 {
                // A version and the shortest group string take four bytes.
                prop_assert!(decoded.is_err());
            }
        }
    }
}
