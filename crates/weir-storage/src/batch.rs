//! Kafka v2 RecordBatch: parsing, validation, offset stamping, building and compaction
//! rewrites.
//!
//! The RecordBatch is weir's stored unit: a producer's batch is validated here, stamped
//! with its offsets (and LogAppendTime when the topic asks for it) and then stored and
//! served byte for byte. Everything in this module works on untrusted bytes: every length
//! is checked against the bytes present before anything is allocated for it, and nothing
//! here panics on any input. This module never does I/O and never reads a clock.
//!
//! Layout (all integers big-endian; 61-byte header):
//! ```text
//!  0 baseOffset i64        8 batchLength i32      12 partitionLeaderEpoch i32
//! 16 magic i8             17 crc u32 (CRC-32C of bytes 21..end)
//! 21 attributes i16       23 lastOffsetDelta i32 27 baseTimestamp i64
//! 35 maxTimestamp i64     43 producerId i64      51 producerEpoch i16
//! 53 baseSequence i32     57 recordCount i32     61 records…
//! ```
//! A record: length varint, attributes i8, timestampDelta varlong, offsetDelta varint,
//! key (varint length, negative = null), value (likewise), header count varint, then headers
//! (key: varint length + UTF-8, value: varint length, negative = null). Varints are zigzag.
//!
//! Two levels of validation:
//! - [`validate_batches`]: what every stored batch satisfies, compacted ones included
//!   (offset deltas strictly increasing within `0..=lastOffsetDelta`, gaps allowed).
//! - [`validate_client_batches`]: what Kafka's broker demands of a producer's batch
//!   (`LogValidator`, origin CLIENT): offset deltas exactly `0..n`, lastOffsetDelta `n-1`,
//!   no control batches, a sequence whenever there is a producer id.

use std::ops::Range;

/// Bytes before the records in a v2 batch.
pub const HEADER_LEN: usize = 61;
/// Bytes before the `batchLength` field ends: `batchLength` counts the bytes after them.
pub const LOG_OVERHEAD: usize = 12;
/// The only batch format weir stores.
pub const MAGIC_V2: i8 = 2;

const CRC_START: usize = 21;
const ATTR_COMPRESSION_MASK: i16 = 0x07;
const ATTR_TIMESTAMP_TYPE: i16 = 0x08;
const ATTR_TRANSACTIONAL: i16 = 0x10;
const ATTR_CONTROL: i16 = 0x20;

/// A control record's key: version i16 then type i16 (Kafka's `ControlRecordType`).
const CONTROL_KEY_LEN: usize = 4;
/// An end-transaction marker's value: version i16 then coordinator epoch i32.
const END_TXN_MARKER_VALUE_LEN: usize = 6;

/// Why a batch was refused. Every variant says what was wrong with the values seen.
/// [`BatchError::kind`] sorts them into the classes a protocol front end answers with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    #[error("batch truncated: need {needed} bytes, have {available}")]
    Truncated { needed: usize, available: usize },
    #[error("unsupported magic {magic} (only v2 batches are stored)")]
    UnsupportedMagic { magic: i8 },
    #[error("batch length {length} is invalid")]
    InvalidLength { length: i32 },
    #[error("batch CRC mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    CrcMismatch { stored: u32, computed: u32 },
    #[error("unknown compression codec {codec}")]
    UnknownCompression { codec: i16 },
    #[error("record count {declared} in header, {found} records present")]
    RecordCountMismatch { declared: i32, found: usize },
    #[error("malformed record at index {index}: {reason}")]
    MalformedRecord { index: usize, reason: &'static str },
    #[error("decompression with {codec:?} failed: {reason}")]
    Decompression { codec: Compression, reason: String },
    #[error("decompressed size exceeds the limit of {limit} bytes")]
    DecompressedTooLarge { limit: usize },
    #[error("batch is empty or inconsistent: {reason}")]
    Inconsistent { reason: &'static str },
    #[error("record {index} has offset delta {offset_delta}, expected {low}..={high}")]
    OffsetDeltaOutOfRange {
        index: usize,
        offset_delta: i32,
        low: i32,
        high: i32,
    },
    #[error("lastOffsetDelta {last_offset_delta} does not match {record_count} records")]
    LastOffsetDeltaMismatch {
        last_offset_delta: i32,
        record_count: i32,
    },
    #[error("base offset {base_offset} + lastOffsetDelta {last_offset_delta} overflows")]
    OffsetOverflow {
        base_offset: i64,
        last_offset_delta: i32,
    },
    #[error("invalid control batch: {reason}")]
    InvalidControlBatch { reason: &'static str },
    #[error("clients may not write control batches")]
    ControlBatchFromClient,
    #[error("producer id {producer_id} with invalid base sequence {base_sequence}")]
    InvalidSequence {
        producer_id: i64,
        base_sequence: i32,
    },
}

/// The class of a [`BatchError`], for a protocol front end to pick its error code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchErrorKind {
    /// The bytes are damaged: bad CRC, bad length, truncated, undecodable compressed data.
    /// Kafka: CORRUPT_MESSAGE (2).
    Corrupt,
    /// The bytes are intact but break the format's rules (record count, offset deltas,
    /// record framing, control batch shape, magic). Kafka: INVALID_RECORD (87).
    InvalidRecord,
    /// Compression bits name no codec weir knows. Kafka: UNSUPPORTED_COMPRESSION_TYPE (76)
    /// or CORRUPT_MESSAGE; the front end chooses.
    UnsupportedCompression,
    /// Decompressing would exceed the caller's bound. Kafka: RECORD_LIST_TOO_LARGE (18).
    TooLarge,
}

impl BatchError {
    pub fn kind(&self) -> BatchErrorKind {
        match self {
            Self::Truncated { .. }
            | Self::InvalidLength { .. }
            | Self::CrcMismatch { .. }
            | Self::Decompression { .. } => BatchErrorKind::Corrupt,
            Self::UnknownCompression { .. } => BatchErrorKind::UnsupportedCompression,
            Self::DecompressedTooLarge { .. } => BatchErrorKind::TooLarge,
            // Kafka's ProduceRequest refuses magic != 2 with InvalidRecordException, and
            // record framing errors after a good CRC are InvalidRecordException too.
            Self::UnsupportedMagic { .. }
            | Self::RecordCountMismatch { .. }
            | Self::MalformedRecord { .. }
            | Self::Inconsistent { .. }
            | Self::OffsetDeltaOutOfRange { .. }
            | Self::LastOffsetDeltaMismatch { .. }
            | Self::OffsetOverflow { .. }
            | Self::InvalidControlBatch { .. }
            | Self::ControlBatchFromClient
            | Self::InvalidSequence { .. } => BatchErrorKind::InvalidRecord,
        }
    }
}

/// Compression codec, from attribute bits 0–2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

impl Compression {
    pub fn from_attributes(attributes: i16) -> Result<Self, BatchError> {
        match attributes & ATTR_COMPRESSION_MASK {
            0 => Ok(Self::None),
            1 => Ok(Self::Gzip),
            2 => Ok(Self::Snappy),
            3 => Ok(Self::Lz4),
            4 => Ok(Self::Zstd),
            codec => Err(BatchError::UnknownCompression { codec }),
        }
    }

    pub fn attribute_bits(self) -> i16 {
        match self {
            Self::None => 0,
            Self::Gzip => 1,
            Self::Snappy => 2,
            Self::Lz4 => 3,
            Self::Zstd => 4,
        }
    }

    /// Every codec, for tests and tools that must cover them all.
    pub const ALL: [Compression; 5] = [Self::None, Self::Gzip, Self::Snappy, Self::Lz4, Self::Zstd];
}

/// Whose clock a batch's timestamps are: the producer's or the broker's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimestampType {
    CreateTime,
    LogAppendTime,
}

/// The fixed 61-byte header of a v2 batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    pub base_offset: i64,
    pub batch_length: i32,
    pub partition_leader_epoch: i32,
    pub magic: i8,
    pub crc: u32,
    pub attributes: i16,
    pub last_offset_delta: i32,
    pub base_timestamp: i64,
    pub max_timestamp: i64,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub record_count: i32,
}

impl BatchHeader {
    /// Parses the header at the start of `buf`. Checks the magic and that `batchLength`
    /// covers at least the header; does not check that the whole batch is present nor
    /// its CRC (see [`validate_batches`]).
    pub fn parse(buf: &[u8]) -> Result<Self, BatchError> {
        let Some(buf) = buf.get(..HEADER_LEN) else {
            return Err(BatchError::Truncated {
                needed: HEADER_LEN,
                available: buf.len(),
            });
        };
        let header = Self {
            base_offset: i64_at(buf, 0),
            batch_length: i32_at(buf, 8),
            partition_leader_epoch: i32_at(buf, 12),
            magic: i8::from_be_bytes(array_at(buf, 16)),
            crc: u32::from_be_bytes(array_at(buf, 17)),
            attributes: i16::from_be_bytes(array_at(buf, 21)),
            last_offset_delta: i32_at(buf, 23),
            base_timestamp: i64_at(buf, 27),
            max_timestamp: i64_at(buf, 35),
            producer_id: i64_at(buf, 43),
            producer_epoch: i16::from_be_bytes(array_at(buf, 51)),
            base_sequence: i32_at(buf, 53),
            record_count: i32_at(buf, 57),
        };
        if header.magic != MAGIC_V2 {
            return Err(BatchError::UnsupportedMagic {
                magic: header.magic,
            });
        }
        if i64::from(header.batch_length) < (HEADER_LEN - LOG_OVERHEAD) as i64 {
            return Err(BatchError::InvalidLength {
                length: header.batch_length,
            });
        }
        Ok(header)
    }

    /// Whole size of the batch in bytes, header included.
    pub fn total_len(&self) -> usize {
        LOG_OVERHEAD + usize::try_from(self.batch_length).unwrap_or(0)
    }

    /// The batch's last offset. Saturates rather than wrapping on a header that was never
    /// validated; [`validate_batches`] refuses batches where the sum overflows.
    pub fn last_offset(&self) -> i64 {
        self.base_offset
            .saturating_add(i64::from(self.last_offset_delta))
    }

    pub fn compression(&self) -> Result<Compression, BatchError> {
        Compression::from_attributes(self.attributes)
    }

    pub fn timestamp_type(&self) -> TimestampType {
        if self.attributes & ATTR_TIMESTAMP_TYPE != 0 {
            TimestampType::LogAppendTime
        } else {
            TimestampType::CreateTime
        }
    }

    pub fn is_transactional(&self) -> bool {
        self.attributes & ATTR_TRANSACTIONAL != 0
    }

    pub fn is_control(&self) -> bool {
        self.attributes & ATTR_CONTROL != 0
    }

    /// Kafka's `hasProducerId`: producer id -1 means "not idempotent".
    pub fn has_producer_id(&self) -> bool {
        self.producer_id >= 0
    }
}

/// One record of a batch, decoded and owned.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Record {
    pub attributes: i8,
    pub timestamp_delta: i64,
    pub offset_delta: i32,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    /// Header keys may repeat; order is kept.
    pub headers: Vec<RecordHeader>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RecordHeader {
    pub key: String,
    pub value: Option<Vec<u8>>,
}

/// A batch inside a larger buffer that passed [`validate_batches`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidatedBatch {
    pub header: BatchHeader,
    /// Where the batch sits in the buffer that was validated.
    pub range: Range<usize>,
}

/// Rewrites the base offset of the batch at the start of `batch`. The CRC does not cover
/// the base offset, so it stays valid. With `log_append_time_ms`, also marks the batch as
/// LogAppendTime, sets maxTimestamp to that time and recomputes the CRC, as Kafka does.
pub fn stamp(batch: &mut [u8], base_offset: i64, log_append_time_ms: Option<i64>) {
    assert!(
        batch.len() >= HEADER_LEN,
        "stamp is called on validated batches only"
    );
    batch[0..8].copy_from_slice(&base_offset.to_be_bytes());
    if let Some(now_ms) = log_append_time_ms {
        let attributes = i16::from_be_bytes(array_at(batch, 21)) | ATTR_TIMESTAMP_TYPE;
        batch[21..23].copy_from_slice(&attributes.to_be_bytes());
        batch[35..43].copy_from_slice(&now_ms.to_be_bytes());
        let crc = crc32c::crc32c(&batch[CRC_START..]);
        batch[17..21].copy_from_slice(&crc.to_be_bytes());
    }
}

/// Checks the stored CRC of the batch at the start of `batch` (exactly one batch).
pub fn check_crc(batch: &[u8]) -> Result<(), BatchError> {
    let header = BatchHeader::parse(batch)?;
    let bytes = whole_batch(batch, &header)?;
    let computed = crc32c::crc32c(bytes.get(CRC_START..).unwrap_or_default());
    if computed != header.crc {
        return Err(BatchError::CrcMismatch {
            stored: header.crc,
            computed,
        });
    }
    Ok(())
}

/// The bytes of the batch `header` describes, or `Truncated` if they are not all there.
fn whole_batch<'a>(buf: &'a [u8], header: &BatchHeader) -> Result<&'a [u8], BatchError> {
    let total = header.total_len();
    buf.get(..total).ok_or(BatchError::Truncated {
        needed: total,
        available: buf.len(),
    })
}

/// Who wrote the batches being validated; Kafka holds producers to stricter rules than
/// what a stored (possibly compacted) batch satisfies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// A producer's batch (Kafka's AppendOrigin.CLIENT).
    Client,
    /// A batch already in a log, or written by the broker itself (coordinator markers,
    /// compaction output).
    Log,
}

/// Validates a buffer holding one or more batches back to back: magic 2, lengths, CRC, a
/// known codec, and, after decompression, the record count, every record's framing, offset
/// deltas strictly increasing within `0..=lastOffsetDelta` and the shape of control batches.
/// Accepts compacted batches (offset gaps). Returns each batch's header and place.
///
/// A producer's batches go through [`validate_client_batches`] instead. Note that Kafka's
/// produce request v3+ carries exactly one batch per partition: that rule is the front end's.
///
/// `max_decompressed_bytes` bounds what decompression may allocate (a zip bomb gets
/// [`BatchError::DecompressedTooLarge`]).
pub fn validate_batches(
    buf: &[u8],
    max_decompressed_bytes: usize,
) -> Result<Vec<ValidatedBatch>, BatchError> {
    validate_batches_from(buf, max_decompressed_bytes, Origin::Log)
}

/// [`validate_batches`] plus Kafka's rules for producer batches (`LogValidator.validateBatch`
/// with origin CLIENT): offset deltas exactly `0, 1, …, n-1`, lastOffsetDelta `n-1`, no
/// control batch, and a base sequence ≥ 0 whenever the producer id is set.
pub fn validate_client_batches(
    buf: &[u8],
    max_decompressed_bytes: usize,
) -> Result<Vec<ValidatedBatch>, BatchError> {
    validate_batches_from(buf, max_decompressed_bytes, Origin::Client)
}

/// Validates the batches of `buf` under the rules of `origin`.
pub fn validate_batches_from(
    buf: &[u8],
    max_decompressed_bytes: usize,
    origin: Origin,
) -> Result<Vec<ValidatedBatch>, BatchError> {
    if buf.is_empty() {
        return Err(BatchError::Inconsistent {
            reason: "no batch present",
        });
    }
    let mut batches = Vec::new();
    for walked in headers(buf) {
        let (pos, header) = walked?;
        let range = pos..pos + header.total_len();
        let bytes = buf.get(range.clone()).ok_or(BatchError::Truncated {
            needed: range.end,
            available: buf.len(),
        })?;
        summarize_from(bytes, max_decompressed_bytes, origin)?;
        batches.push(ValidatedBatch { header, range });
    }
    Ok(batches)
}

/// What a full validation of one batch learned beyond its header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchSummary {
    pub header: BatchHeader,
    /// Records present (equal to the header's count once validated).
    pub record_count: usize,
    /// The largest record timestamp (baseTimestamp + timestampDelta). For a LogAppendTime
    /// batch readers use the header's maxTimestamp instead.
    pub max_record_timestamp: i64,
    /// For a control batch, what its single record says.
    pub control: Option<ControlRecord>,
}

/// Validates the single batch at the start of `batch` like [`validate_batches`] (origin
/// [`Origin::Log`]) and returns what it learned on the way, without keeping the records.
pub fn batch_summary(
    batch: &[u8],
    max_decompressed_bytes: usize,
) -> Result<BatchSummary, BatchError> {
    summarize_from(batch, max_decompressed_bytes, Origin::Log)
}

fn summarize_from(
    batch: &[u8],
    max_decompressed_bytes: usize,
    origin: Origin,
) -> Result<BatchSummary, BatchError> {
    let header = BatchHeader::parse(batch)?;
    check_crc(batch)?;
    check_header(&header, origin)?;
    let mut max_record_timestamp = i64::MIN;
    let mut previous_delta: Option<i32> = None;
    let mut control = None;
    let record_count = for_each_record(batch, max_decompressed_bytes, |index, record| {
        let (low, high) = match origin {
            Origin::Client => {
                let expected = i32::try_from(index).unwrap_or(i32::MAX);
                (expected, expected)
            }
            Origin::Log => (
                previous_delta.map_or(0, |d| d.saturating_add(1)),
                header.last_offset_delta,
            ),
        };
        if record.offset_delta < low || record.offset_delta > high {
            return Err(BatchError::OffsetDeltaOutOfRange {
                index,
                offset_delta: record.offset_delta,
                low,
                high,
            });
        }
        previous_delta = Some(record.offset_delta);
        let timestamp = header.base_timestamp.wrapping_add(record.timestamp_delta);
        max_record_timestamp = max_record_timestamp.max(timestamp);
        if header.is_control() {
            control = Some(control_record_of(record.key, record.value)?);
        }
        Ok(())
    })?;
    if header.is_control() && record_count != 1 {
        return Err(BatchError::InvalidControlBatch {
            reason: "a control batch holds exactly one record",
        });
    }
    Ok(BatchSummary {
        header,
        record_count,
        max_record_timestamp,
        control,
    })
}

/// The header rules, before any record is looked at.
fn check_header(header: &BatchHeader, origin: Origin) -> Result<(), BatchError> {
    header.compression()?;
    if header.record_count <= 0 {
        return Err(BatchError::Inconsistent {
            reason: "batch holds no records",
        });
    }
    if header.last_offset_delta < 0 {
        return Err(BatchError::Inconsistent {
            reason: "negative lastOffsetDelta",
        });
    }
    if header
        .base_offset
        .checked_add(i64::from(header.last_offset_delta))
        .is_none()
    {
        return Err(BatchError::OffsetOverflow {
            base_offset: header.base_offset,
            last_offset_delta: header.last_offset_delta,
        });
    }
    if origin == Origin::Client {
        if header.last_offset_delta != header.record_count - 1 {
            return Err(BatchError::LastOffsetDeltaMismatch {
                last_offset_delta: header.last_offset_delta,
                record_count: header.record_count,
            });
        }
        if header.is_control() {
            return Err(BatchError::ControlBatchFromClient);
        }
        if header.has_producer_id() && header.base_sequence < 0 {
            return Err(BatchError::InvalidSequence {
                producer_id: header.producer_id,
                base_sequence: header.base_sequence,
            });
        }
    }
    Ok(())
}

/// The type of a control record, from its key (Kafka's `ControlRecordType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ControlType {
    Abort,
    Commit,
    /// A type weir does not interpret (KRaft's leader change, snapshot markers, …).
    Other(i16),
}

/// What a control batch's single record says. For ABORT and COMMIT markers the value is
/// version i16 + coordinator epoch i32.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ControlRecord {
    pub version: i16,
    pub control_type: ControlType,
    /// Set for ABORT and COMMIT markers.
    pub coordinator_epoch: Option<i32>,
}

/// Decodes a control record as Kafka's `ControlRecordType.parse` and
/// `EndTransactionMarker.deserialize` do: a key of at least 4 bytes with a non-negative
/// version; for ABORT/COMMIT a value of at least 6 bytes.
pub fn control_record(record: &Record) -> Result<ControlRecord, BatchError> {
    control_record_of(record.key.as_deref(), record.value.as_deref())
}

fn control_record_of(
    key: Option<&[u8]>,
    value: Option<&[u8]>,
) -> Result<ControlRecord, BatchError> {
    let invalid = |reason| BatchError::InvalidControlBatch { reason };
    let key = key.ok_or(invalid("control record without a key"))?;
    let key: [u8; CONTROL_KEY_LEN] = key
        .get(..CONTROL_KEY_LEN)
        .and_then(|k| k.try_into().ok())
        .ok_or(invalid("control record key shorter than 4 bytes"))?;
    let version = i16::from_be_bytes([key[0], key[1]]);
    if version < 0 {
        return Err(invalid("negative control record version"));
    }
    let control_type = match i16::from_be_bytes([key[2], key[3]]) {
        0 => ControlType::Abort,
        1 => ControlType::Commit,
        other => ControlType::Other(other),
    };
    let coordinator_epoch = match control_type {
        ControlType::Abort | ControlType::Commit => {
            let value = value
                .and_then(|v| v.get(..END_TXN_MARKER_VALUE_LEN))
                .ok_or(invalid("end transaction marker value shorter than 6 bytes"))?;
            let epoch: [u8; 4] = array_at(value, 2);
            Some(i32::from_be_bytes(epoch))
        }
        ControlType::Other(_) => None,
    };
    Ok(ControlRecord {
        version,
        control_type,
        coordinator_epoch,
    })
}

/// The single record of an end-transaction marker (a control batch with the transactional
/// and control attributes set), version 0 as Kafka writes it.
pub fn end_txn_marker_record(commit: bool, coordinator_epoch: i32) -> Record {
    let control_type: i16 = if commit { 1 } else { 0 };
    let mut key = Vec::with_capacity(CONTROL_KEY_LEN);
    key.extend_from_slice(&0i16.to_be_bytes());
    key.extend_from_slice(&control_type.to_be_bytes());
    let mut value = Vec::with_capacity(END_TXN_MARKER_VALUE_LEN);
    value.extend_from_slice(&0i16.to_be_bytes());
    value.extend_from_slice(&coordinator_epoch.to_be_bytes());
    Record {
        key: Some(key),
        value: Some(value),
        ..Record::default()
    }
}

/// Attribute bits of an end-transaction marker batch: transactional and control.
pub const END_TXN_MARKER_ATTRIBUTES: i16 = ATTR_TRANSACTIONAL | ATTR_CONTROL;

/// Walks the batches of `buf` reading headers only: no CRC check, no decompression. Yields
/// each batch's position and header; stops after the first error, which is a `Truncated`
/// (positions counted from the start of `buf`) when the last batch is incomplete. The
/// partition log uses it for recovery and index rebuilds, checking CRCs where it must.
pub fn headers(buf: &[u8]) -> impl Iterator<Item = Result<(usize, BatchHeader), BatchError>> + '_ {
    HeaderWalk {
        buf,
        pos: 0,
        failed: false,
    }
}

struct HeaderWalk<'a> {
    buf: &'a [u8],
    pos: usize,
    failed: bool,
}

impl Iterator for HeaderWalk<'_> {
    type Item = Result<(usize, BatchHeader), BatchError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.pos >= self.buf.len() {
            return None;
        }
        let rest = self.buf.get(self.pos..).unwrap_or_default();
        let walked = match BatchHeader::parse(rest) {
            Err(BatchError::Truncated { needed, .. }) => Err(BatchError::Truncated {
                needed: self.pos + needed,
                available: self.buf.len(),
            }),
            Err(error) => Err(error),
            Ok(header) if header.total_len() > rest.len() => Err(BatchError::Truncated {
                needed: self.pos + header.total_len(),
                available: self.buf.len(),
            }),
            Ok(header) => {
                let pos = self.pos;
                self.pos += header.total_len();
                Ok((pos, header))
            }
        };
        self.failed = walked.is_err();
        Some(walked)
    }
}

/// Default bound on what one batch may decompress to.
pub const MAX_DECOMPRESSED_BYTES_DEFAULT: usize = 256 * 1024 * 1024;

/// Decodes (decompressing if needed) every record of the single batch at the start of
/// `batch`. The CRC is not checked here.
pub fn decode_records(batch: &[u8]) -> Result<Vec<Record>, BatchError> {
    decode_records_limited(batch, MAX_DECOMPRESSED_BYTES_DEFAULT)
}

/// As [`decode_records`], with an explicit bound on the decompressed size.
pub fn decode_records_limited(
    batch: &[u8],
    max_decompressed_bytes: usize,
) -> Result<Vec<Record>, BatchError> {
    let mut records = Vec::new();
    for_each_record(batch, max_decompressed_bytes, |_, record| {
        records.push(record.to_record());
        Ok(())
    })?;
    Ok(records)
}

/// The offset delta of the first record whose timestamp (by the batch's timestamp type)
/// equals `timestamp_ms`, found by walking the records in place: no record is copied, so
/// the append path can afford it for every batch.
pub fn offset_delta_with_timestamp(
    batch: &[u8],
    timestamp_ms: i64,
) -> Result<Option<i32>, BatchError> {
    let header = BatchHeader::parse(batch)?;
    let log_append_time = header.timestamp_type() == TimestampType::LogAppendTime;
    let mut found = None;
    for_each_record(batch, MAX_DECOMPRESSED_BYTES_DEFAULT, |_, record| {
        let timestamp = if log_append_time {
            header.max_timestamp
        } else {
            header.base_timestamp.saturating_add(record.timestamp_delta)
        };
        if found.is_none() && timestamp == timestamp_ms {
            found = Some(record.offset_delta);
        }
        Ok(())
    })?;
    Ok(found)
}

/// Re-encodes the batch at the start of `batch` keeping only the records `keep` accepts, for
/// compaction. Keeps the base offset, each kept record's offset and timestamp deltas, the
/// original lastOffsetDelta (so the batch still ends where it did), the producer id, epoch
/// and base sequence, the partition leader epoch, the attributes and the codec. A
/// LogAppendTime batch keeps its maxTimestamp; a CreateTime batch gets the largest kept
/// timestamp, as Kafka's cleaner does. Returns `None` when nothing is kept, and the original
/// bytes when everything is. The batch is validated (CRC included) first.
pub fn rebuild(
    batch: &[u8],
    keep: impl Fn(&Record) -> bool,
) -> Result<Option<Vec<u8>>, BatchError> {
    let summary = batch_summary(batch, MAX_DECOMPRESSED_BYTES_DEFAULT)?;
    let header = summary.header;
    let records = decode_records(batch)?;
    let total = records.len();
    let kept: Vec<Record> = records.into_iter().filter(|r| keep(r)).collect();
    if kept.is_empty() {
        return Ok(None);
    }
    if kept.len() == total {
        return Ok(Some(whole_batch(batch, &header)?.to_vec()));
    }
    let mut builder = BatchBuilder::new(header.base_offset, header.base_timestamp);
    builder.partition_leader_epoch = header.partition_leader_epoch;
    builder.attributes = header.attributes;
    builder.producer_id = header.producer_id;
    builder.producer_epoch = header.producer_epoch;
    builder.base_sequence = header.base_sequence;
    builder.last_offset_delta = Some(header.last_offset_delta);
    builder.compression = header.compression()?;
    for record in kept {
        builder.push_record(record);
    }
    if header.timestamp_type() == TimestampType::LogAppendTime {
        builder.max_timestamp = header.max_timestamp;
    }
    Ok(Some(builder.build()))
}

/// A record borrowed from a batch's (decompressed) bytes; its headers were checked when it
/// was parsed and are kept raw until asked for.
struct RecordRef<'a> {
    attributes: i8,
    timestamp_delta: i64,
    offset_delta: i32,
    key: Option<&'a [u8]>,
    value: Option<&'a [u8]>,
    header_count: usize,
    headers: &'a [u8],
}

impl RecordRef<'_> {
    fn to_record(&self) -> Record {
        let mut cursor = Cursor {
            buf: self.headers,
            pos: 0,
        };
        let mut headers = Vec::with_capacity(self.header_count);
        for _ in 0..self.header_count {
            // Every header was parsed once already, so this cannot fail; stop if it did.
            let Ok((key, value)) = parse_header(&mut cursor) else {
                break;
            };
            headers.push(RecordHeader {
                key: key.to_string(),
                value: value.map(<[u8]>::to_vec),
            });
        }
        Record {
            attributes: self.attributes,
            timestamp_delta: self.timestamp_delta,
            offset_delta: self.offset_delta,
            key: self.key.map(<[u8]>::to_vec),
            value: self.value.map(<[u8]>::to_vec),
            headers,
        }
    }
}

/// Decompresses the batch at the start of `batch` and calls `visit` on each record in
/// order. Checks that the records fill the body exactly and match the declared count.
/// Returns the number of records.
fn for_each_record(
    batch: &[u8],
    max_decompressed_bytes: usize,
    mut visit: impl FnMut(usize, RecordRef<'_>) -> Result<(), BatchError>,
) -> Result<usize, BatchError> {
    let header = BatchHeader::parse(batch)?;
    let bytes = whole_batch(batch, &header)?;
    let body = bytes.get(HEADER_LEN..).unwrap_or_default();
    let compression = header.compression()?;
    let decompressed;
    let records_bytes: &[u8] = match compression {
        Compression::None => body,
        codec => {
            decompressed = crate::compression::decompress(codec, body, max_decompressed_bytes)?;
            &decompressed
        }
    };
    let declared = header.record_count;
    let count = usize::try_from(declared)
        .map_err(|_| BatchError::RecordCountMismatch { declared, found: 0 })?;
    let mut cursor = Cursor {
        buf: records_bytes,
        pos: 0,
    };
    let mut found = 0;
    while cursor.remaining() > 0 {
        // Checked before parsing so that a lying count cannot make a caller hold more
        // records than declared (and the declared count is itself bounded by the bytes).
        if found == count {
            return Err(BatchError::RecordCountMismatch {
                declared,
                found: found + 1,
            });
        }
        let record = parse_record(&mut cursor).map_err(|reason| BatchError::MalformedRecord {
            index: found,
            reason,
        })?;
        visit(found, record)?;
        found += 1;
    }
    if found != count {
        return Err(BatchError::RecordCountMismatch { declared, found });
    }
    Ok(found)
}

fn parse_record<'a>(cursor: &mut Cursor<'a>) -> Result<RecordRef<'a>, &'static str> {
    let length = cursor.varint()?;
    let length = usize::try_from(length).map_err(|_| "negative record length")?;
    let end = cursor
        .pos
        .checked_add(length)
        .filter(|end| *end <= cursor.buf.len())
        .ok_or("record length exceeds the batch")?;
    let mut inner = Cursor {
        buf: cursor.buf.get(..end).unwrap_or_default(),
        pos: cursor.pos,
    };
    let attributes = i8::from_be_bytes([inner.u8()?]);
    let timestamp_delta = inner.varlong()?;
    let offset_delta = inner.varint()?;
    let key = inner.nullable_bytes()?;
    let value = inner.nullable_bytes()?;
    let header_count = inner.varint()?;
    let header_count = usize::try_from(header_count).map_err(|_| "negative header count")?;
    let headers_start = inner.pos;
    for _ in 0..header_count {
        // Each header takes at least 2 bytes, so this loop ends within the record's bytes.
        parse_header(&mut inner)?;
    }
    if inner.pos != end {
        return Err("record length does not match its fields");
    }
    let headers = inner.buf.get(headers_start..end).unwrap_or_default();
    cursor.pos = end;
    Ok(RecordRef {
        attributes,
        timestamp_delta,
        offset_delta,
        key,
        value,
        header_count,
        headers,
    })
}

fn parse_header<'a>(cursor: &mut Cursor<'a>) -> Result<(&'a str, Option<&'a [u8]>), &'static str> {
    let key = cursor.nullable_bytes()?.ok_or("null header key")?;
    let key = std::str::from_utf8(key).map_err(|_| "header key is not UTF-8")?;
    let value = cursor.nullable_bytes()?;
    Ok((key, value))
}

/// Builds v2 batches: for tests, internal topics and compaction output.
#[derive(Debug, Clone)]
pub struct BatchBuilder {
    pub base_offset: i64,
    pub base_timestamp: i64,
    /// The base timestamp until the first record is pushed, then the largest record
    /// timestamp (a record may be older than the base). Set it after pushing to override
    /// (a LogAppendTime batch carries the append time here).
    pub max_timestamp: i64,
    pub attributes: i16,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub partition_leader_epoch: i32,
    /// When set, written as lastOffsetDelta instead of the last record's offset delta
    /// (compaction keeps a batch's last offset when it drops its last record).
    pub last_offset_delta: Option<i32>,
    pub compression: Compression,
    records: Vec<Record>,
}

impl BatchBuilder {
    pub fn new(base_offset: i64, base_timestamp: i64) -> Self {
        Self {
            base_offset,
            base_timestamp,
            max_timestamp: base_timestamp,
            attributes: 0,
            producer_id: -1,
            producer_epoch: -1,
            base_sequence: -1,
            partition_leader_epoch: -1,
            last_offset_delta: None,
            compression: Compression::None,
            records: Vec::new(),
        }
    }

    pub fn compression(mut self, compression: Compression) -> Self {
        self.compression = compression;
        self
    }

    /// Appends a record at the next offset delta with the given timestamp.
    pub fn push(
        &mut self,
        timestamp: i64,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: &[(&str, Option<&[u8]>)],
    ) -> &mut Self {
        let offset_delta = self.records.last().map_or(0, |r| r.offset_delta + 1);
        self.push_record(Record {
            attributes: 0,
            timestamp_delta: timestamp.wrapping_sub(self.base_timestamp),
            offset_delta,
            key: key.map(<[u8]>::to_vec),
            value: value.map(<[u8]>::to_vec),
            headers: headers
                .iter()
                .map(|(k, v)| RecordHeader {
                    key: (*k).to_string(),
                    value: v.map(<[u8]>::to_vec),
                })
                .collect(),
        })
    }

    /// Appends a record as given (offset and timestamp deltas included).
    pub fn push_record(&mut self, record: Record) -> &mut Self {
        // Timestamps wrap as Java longs do: deltas come from untrusted batches too.
        let timestamp = self.base_timestamp.wrapping_add(record.timestamp_delta);
        self.max_timestamp = if self.records.is_empty() {
            timestamp
        } else {
            self.max_timestamp.max(timestamp)
        };
        self.records.push(record);
        self
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Encodes the batch with its CRC.
    pub fn build(&self) -> Vec<u8> {
        let mut body = Vec::new();
        for record in &self.records {
            encode_record(&mut body, record);
        }
        let body = match self.compression {
            Compression::None => body,
            codec => crate::compression::compress(codec, &body),
        };
        let last_offset_delta = self
            .last_offset_delta
            .unwrap_or_else(|| self.records.last().map_or(0, |r| r.offset_delta));
        let batch_length = i32::try_from(HEADER_LEN - LOG_OVERHEAD + body.len())
            .expect("a built batch is smaller than 2 GiB");
        let record_count =
            i32::try_from(self.records.len()).expect("a built batch has fewer than 2^31 records");
        let mut out = Vec::with_capacity(HEADER_LEN + body.len());
        out.extend_from_slice(&self.base_offset.to_be_bytes());
        out.extend_from_slice(&batch_length.to_be_bytes());
        out.extend_from_slice(&self.partition_leader_epoch.to_be_bytes());
        out.extend_from_slice(&MAGIC_V2.to_be_bytes());
        out.extend_from_slice(&[0; 4]); // CRC, filled below
        let attributes =
            (self.attributes & !ATTR_COMPRESSION_MASK) | self.compression.attribute_bits();
        out.extend_from_slice(&attributes.to_be_bytes());
        out.extend_from_slice(&last_offset_delta.to_be_bytes());
        out.extend_from_slice(&self.base_timestamp.to_be_bytes());
        out.extend_from_slice(&self.max_timestamp.to_be_bytes());
        out.extend_from_slice(&self.producer_id.to_be_bytes());
        out.extend_from_slice(&self.producer_epoch.to_be_bytes());
        out.extend_from_slice(&self.base_sequence.to_be_bytes());
        out.extend_from_slice(&record_count.to_be_bytes());
        out.extend_from_slice(&body);
        let crc = crc32c::crc32c(&out[CRC_START..]);
        out[17..21].copy_from_slice(&crc.to_be_bytes());
        out
    }
}

fn encode_record(out: &mut Vec<u8>, record: &Record) {
    let mut inner = Vec::new();
    inner.extend_from_slice(&record.attributes.to_be_bytes());
    put_varlong(&mut inner, record.timestamp_delta);
    put_varint(&mut inner, record.offset_delta);
    put_nullable_bytes(&mut inner, record.key.as_deref());
    put_nullable_bytes(&mut inner, record.value.as_deref());
    put_varint(&mut inner, length_i32(record.headers.len()));
    for header in &record.headers {
        put_nullable_bytes(&mut inner, Some(header.key.as_bytes()));
        put_nullable_bytes(&mut inner, header.value.as_deref());
    }
    put_varint(out, length_i32(inner.len()));
    out.extend_from_slice(&inner);
}

fn length_i32(len: usize) -> i32 {
    i32::try_from(len).expect("a record field is smaller than 2 GiB")
}

fn put_nullable_bytes(out: &mut Vec<u8>, bytes: Option<&[u8]>) {
    match bytes {
        None => put_varint(out, -1),
        Some(bytes) => {
            put_varint(out, length_i32(bytes.len()));
            out.extend_from_slice(bytes);
        }
    }
}

pub(crate) fn put_varint(out: &mut Vec<u8>, value: i32) {
    put_unsigned_varint(out, u64::from(((value << 1) ^ (value >> 31)) as u32));
}

pub(crate) fn put_varlong(out: &mut Vec<u8>, value: i64) {
    put_unsigned_varint(out, ((value << 1) ^ (value >> 63)) as u64);
}

fn put_unsigned_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// Longest varint Kafka reads (`ByteUtils.readVarint`): 5 bytes for 32 bits.
const VARINT_MAX_BYTES: u32 = 5;
/// Longest varlong Kafka reads (`ByteUtils.readVarlong`): 10 bytes for 64 bits.
const VARLONG_MAX_BYTES: u32 = 10;

/// A read position over untrusted bytes; every read is bounds-checked.
struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    fn u8(&mut self) -> Result<u8, &'static str> {
        let byte = *self.buf.get(self.pos).ok_or("truncated record")?;
        self.pos += 1;
        Ok(byte)
    }

    /// Reads up to `max_bytes` 7-bit groups. Bits past 64 are dropped, and so are bits past
    /// 32 for a varint (see [`Cursor::varint`]), as Kafka's reader does.
    fn unsigned_varint(&mut self, max_bytes: u32) -> Result<u64, &'static str> {
        let mut value = 0u64;
        for i in 0..max_bytes {
            let byte = self.u8()?;
            value |= u64::from(byte & 0x7f) << (7 * i);
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err("varint too long")
    }

    fn varint(&mut self) -> Result<i32, &'static str> {
        // Kafka shifts the fifth byte into an int, dropping what does not fit: do the same
        // so that every batch Kafka accepts decodes to the same values here.
        let raw = self.unsigned_varint(VARINT_MAX_BYTES)? as u32;
        Ok(((raw >> 1) as i32) ^ -((raw & 1) as i32))
    }

    fn varlong(&mut self) -> Result<i64, &'static str> {
        let raw = self.unsigned_varint(VARLONG_MAX_BYTES)?;
        Ok(((raw >> 1) as i64) ^ -((raw & 1) as i64))
    }

    /// A length-prefixed field; any negative length means null, as in Kafka.
    fn nullable_bytes(&mut self) -> Result<Option<&'a [u8]>, &'static str> {
        let length = self.varint()?;
        let Ok(length) = usize::try_from(length) else {
            return Ok(None);
        };
        let end = self
            .pos
            .checked_add(length)
            .filter(|end| *end <= self.buf.len())
            .ok_or("field length exceeds the record")?;
        let bytes = self.buf.get(self.pos..end).unwrap_or_default();
        self.pos = end;
        Ok(Some(bytes))
    }
}

/// `N` bytes at `at`; callers index within a buffer whose length they checked.
fn array_at<const N: usize>(buf: &[u8], at: usize) -> [u8; N] {
    let mut out = [0; N];
    out.copy_from_slice(&buf[at..at + N]);
    out
}

fn i64_at(buf: &[u8], at: usize) -> i64 {
    i64::from_be_bytes(array_at(buf, at))
}

fn i32_at(buf: &[u8], at: usize) -> i32 {
    i32::from_be_bytes(array_at(buf, at))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn two_record_batch() -> BatchBuilder {
        let mut builder = BatchBuilder::new(0, 1_000);
        builder.push(
            1_000,
            Some(b"k1"),
            Some(b"v1"),
            &[("h", Some(b"x")), ("h", None)],
        );
        builder.push(1_005, None, Some(b"v2"), &[]);
        builder
    }

    #[test]
    fn built_batch_validates_and_decodes() {
        let batch = two_record_batch().build();
        let validated = validate_client_batches(&batch, 1 << 20).expect("valid");
        assert_eq!(validated.len(), 1);
        assert_eq!(validated[0].header.record_count, 2);
        assert_eq!(validated[0].header.max_timestamp, 1_005);
        let records = decode_records(&batch).expect("decodes");
        assert_eq!(records[0].headers.len(), 2);
        assert_eq!(records[1].offset_delta, 1);
        assert_eq!(records[1].key, None);
    }

    #[test]
    fn stamping_keeps_crc_valid() {
        let mut builder = BatchBuilder::new(0, 1_000);
        builder.push(1_000, None, Some(b"v"), &[]);
        let mut batch = builder.build();
        stamp(&mut batch, 42, None);
        check_crc(&batch).expect("base offset is outside the CRC");
        stamp(&mut batch, 43, Some(9_999));
        check_crc(&batch).expect("CRC recomputed");
        let header = BatchHeader::parse(&batch).expect("parses");
        assert_eq!(header.base_offset, 43);
        assert_eq!(header.max_timestamp, 9_999);
        assert_eq!(header.timestamp_type(), TimestampType::LogAppendTime);
    }

    #[test]
    fn flipped_bit_is_a_crc_mismatch() {
        let mut builder = BatchBuilder::new(0, 1_000);
        builder.push(1_000, None, Some(b"value"), &[]);
        let mut batch = builder.build();
        let last = batch.len() - 1;
        batch[last] ^= 0x01;
        let error = validate_batches(&batch, 1 << 20).expect_err("corrupt");
        assert!(matches!(error, BatchError::CrcMismatch { .. }));
        assert_eq!(error.kind(), BatchErrorKind::Corrupt);
    }

    #[test]
    fn max_timestamp_ignores_the_base_when_records_are_older() {
        let mut builder = BatchBuilder::new(0, 1_000);
        builder.push(900, None, Some(b"a"), &[]);
        builder.push(950, None, Some(b"b"), &[]);
        assert_eq!(builder.max_timestamp, 950);
        let summary = batch_summary(&builder.build(), 1 << 20).expect("valid");
        assert_eq!(summary.max_record_timestamp, 950);
        assert_eq!(summary.header.max_timestamp, 950);
    }

    /// A batch whose records have the given offset deltas and header lastOffsetDelta.
    fn batch_with_deltas(deltas: &[i32], last_offset_delta: Option<i32>) -> Vec<u8> {
        let mut builder = BatchBuilder::new(0, 0);
        for delta in deltas {
            builder.push_record(Record {
                offset_delta: *delta,
                value: Some(b"v".to_vec()),
                ..Record::default()
            });
        }
        builder.last_offset_delta = last_offset_delta;
        builder.build()
    }

    #[test]
    fn client_batches_need_dense_offset_deltas() {
        for (deltas, last) in [
            (&[1, 2][..], None),
            (&[0, 2][..], None),
            (&[0, 1][..], Some(2)),
            (&[1, 0][..], None),
        ] {
            let batch = batch_with_deltas(deltas, last);
            let error = validate_client_batches(&batch, 1 << 20).expect_err("not dense");
            assert_eq!(error.kind(), BatchErrorKind::InvalidRecord, "{deltas:?}");
        }
        validate_client_batches(&batch_with_deltas(&[0, 1, 2], None), 1 << 20).expect("dense");
    }

    #[test]
    fn stored_batches_may_have_gaps_but_not_disorder() {
        validate_batches(&batch_with_deltas(&[1, 4], Some(7)), 1 << 20).expect("gaps are fine");
        for (deltas, last) in [
            (&[2, 2][..], None),
            (&[3, 1][..], Some(5)),
            (&[0, 6][..], Some(5)),
            (&[-1, 0][..], None),
        ] {
            let batch = batch_with_deltas(deltas, last);
            assert!(
                matches!(
                    validate_batches(&batch, 1 << 20),
                    Err(BatchError::OffsetDeltaOutOfRange { .. })
                ),
                "{deltas:?} {last:?}"
            );
        }
    }

    #[test]
    fn offset_overflow_is_refused() {
        let mut batch = batch_with_deltas(&[0, 1], None);
        stamp(&mut batch, i64::MAX, None);
        assert!(matches!(
            validate_batches(&batch, 1 << 20),
            Err(BatchError::OffsetOverflow { .. })
        ));
        let header = BatchHeader::parse(&batch).expect("parses");
        assert_eq!(header.last_offset(), i64::MAX);
    }

    fn marker_batch(record: Record, records: usize) -> Vec<u8> {
        let mut builder = BatchBuilder::new(0, 0);
        builder.attributes = END_TXN_MARKER_ATTRIBUTES;
        builder.producer_id = 7;
        builder.producer_epoch = 1;
        for i in 0..records {
            builder.push_record(Record {
                offset_delta: i as i32,
                ..record.clone()
            });
        }
        builder.build()
    }

    #[test]
    fn control_batches_are_checked() {
        let commit = marker_batch(end_txn_marker_record(true, 5), 1);
        let summary = batch_summary(&commit, 1 << 20).expect("valid marker");
        assert_eq!(
            summary.control,
            Some(ControlRecord {
                version: 0,
                control_type: ControlType::Commit,
                coordinator_epoch: Some(5),
            })
        );
        assert_eq!(
            validate_client_batches(&commit, 1 << 20),
            Err(BatchError::ControlBatchFromClient)
        );
        let two = marker_batch(end_txn_marker_record(false, 5), 2);
        assert!(matches!(
            validate_batches(&two, 1 << 20),
            Err(BatchError::InvalidControlBatch { .. })
        ));
        let short_key = Record {
            key: Some(vec![0, 0, 0]),
            ..end_txn_marker_record(false, 5)
        };
        assert!(matches!(
            validate_batches(&marker_batch(short_key, 1), 1 << 20),
            Err(BatchError::InvalidControlBatch { .. })
        ));
        let short_value = Record {
            value: Some(vec![0, 0, 0, 0, 1]),
            ..end_txn_marker_record(false, 5)
        };
        assert!(matches!(
            validate_batches(&marker_batch(short_value, 1), 1 << 20),
            Err(BatchError::InvalidControlBatch { .. })
        ));
    }

    #[test]
    fn idempotent_client_batch_needs_a_sequence() {
        let mut builder = two_record_batch();
        builder.producer_id = 3;
        builder.producer_epoch = 0;
        builder.base_sequence = -1;
        assert_eq!(
            validate_client_batches(&builder.build(), 1 << 20),
            Err(BatchError::InvalidSequence {
                producer_id: 3,
                base_sequence: -1
            })
        );
        builder.base_sequence = 0;
        validate_client_batches(&builder.build(), 1 << 20).expect("sequenced");
    }

    #[test]
    fn header_walk_reports_positions_and_a_torn_tail() {
        let first = two_record_batch().build();
        let second = batch_with_deltas(&[0], None);
        let mut buf = first.clone();
        buf.extend_from_slice(&second);
        let walked: Vec<_> = headers(&buf).map(|w| w.expect("whole").0).collect();
        assert_eq!(walked, vec![0, first.len()]);
        buf.truncate(buf.len() - 1);
        let walked: Vec<_> = headers(&buf).collect();
        assert_eq!(walked.len(), 2);
        assert_eq!(
            walked[1],
            Err(BatchError::Truncated {
                needed: first.len() + second.len(),
                available: buf.len()
            })
        );
        buf.truncate(first.len() + 10);
        assert_eq!(
            headers(&buf).nth(1),
            Some(Err(BatchError::Truncated {
                needed: first.len() + HEADER_LEN,
                available: buf.len()
            }))
        );
    }

    #[test]
    fn varint_edges_decode_as_kafka_does() {
        for value in [0, 1, -1, 63, -64, 64, i32::MIN, i32::MAX] {
            let mut out = Vec::new();
            put_varint(&mut out, value);
            let mut cursor = Cursor { buf: &out, pos: 0 };
            assert_eq!(cursor.varint(), Ok(value));
            assert_eq!(cursor.remaining(), 0);
        }
        for value in [0, -1, i64::MIN, i64::MAX, i64::from(i32::MIN) - 1] {
            let mut out = Vec::new();
            put_varlong(&mut out, value);
            let mut cursor = Cursor { buf: &out, pos: 0 };
            assert_eq!(cursor.varlong(), Ok(value));
        }
        // Overlong but terminated encodings of 0 are read as Kafka reads them.
        let mut cursor = Cursor {
            buf: &[0x80, 0x80, 0x00],
            pos: 0,
        };
        assert_eq!(cursor.varint(), Ok(0));
        // Six bytes for a varint, eleven for a varlong: refused.
        let mut cursor = Cursor {
            buf: &[0x80; 6],
            pos: 0,
        };
        assert_eq!(cursor.varint(), Err("varint too long"));
        let mut cursor = Cursor {
            buf: &[0xff; 11],
            pos: 0,
        };
        assert_eq!(cursor.varlong(), Err("varint too long"));
        // A truncated varint is a truncation, not a panic.
        let mut cursor = Cursor {
            buf: &[0x80],
            pos: 0,
        };
        assert_eq!(cursor.varint(), Err("truncated record"));
    }

    #[test]
    fn rebuild_keeps_offsets_and_producer_state() {
        let mut builder = BatchBuilder::new(100, 5_000).compression(Compression::Lz4);
        builder.producer_id = 9;
        builder.producer_epoch = 2;
        builder.base_sequence = 40;
        builder.partition_leader_epoch = 3;
        builder.attributes = ATTR_TRANSACTIONAL;
        for i in 0..4u8 {
            builder.push(5_000 + i64::from(i) * 10, Some(&[i]), Some(b"v"), &[]);
        }
        let batch = builder.build();
        let odd_only = rebuild(&batch, |r| r.key.as_deref().is_some_and(|k| k[0] % 2 == 1))
            .expect("valid")
            .expect("some kept");
        let header = BatchHeader::parse(&odd_only).expect("parses");
        assert_eq!(header.base_offset, 100);
        assert_eq!(header.last_offset_delta, 3);
        assert_eq!((header.producer_id, header.producer_epoch), (9, 2));
        assert_eq!(header.base_sequence, 40);
        assert_eq!(header.partition_leader_epoch, 3);
        assert!(header.is_transactional());
        assert_eq!(header.compression(), Ok(Compression::Lz4));
        assert_eq!(header.max_timestamp, 5_030);
        let deltas: Vec<i32> = decode_records(&odd_only)
            .expect("decodes")
            .iter()
            .map(|r| r.offset_delta)
            .collect();
        assert_eq!(deltas, vec![1, 3]);
        validate_batches(&odd_only, 1 << 20).expect("compacted batch is valid");
        assert_eq!(rebuild(&batch, |_| true), Ok(Some(batch.clone())));
        assert_eq!(rebuild(&batch, |_| false), Ok(None));
    }
}
