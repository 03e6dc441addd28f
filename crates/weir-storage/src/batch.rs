//! Kafka v2 RecordBatch: parsing, validation, offset stamping and building.
//!
//! The RecordBatch is weir's stored unit: a producer's batch is validated here, stamped
//! with its offsets (and LogAppendTime when the topic asks for it) and then stored and
//! served byte for byte. Everything in this module works on untrusted bytes: every length
//! is checked against the bytes present before anything is allocated for it.
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
//! key (varint length, -1 = null), value (likewise), header count varint, then headers
//! (key: varint length + UTF-8, value: varint length, -1 = null). Varints are zigzag.

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

/// Why a batch was refused. Every variant says what was wrong with the values seen.
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
        if buf.len() < HEADER_LEN {
            return Err(BatchError::Truncated {
                needed: HEADER_LEN,
                available: buf.len(),
            });
        }
        let header = Self {
            base_offset: i64_at(buf, 0),
            batch_length: i32_at(buf, 8),
            partition_leader_epoch: i32_at(buf, 12),
            magic: buf[16] as i8,
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
        if (header.batch_length as i64) < (HEADER_LEN - LOG_OVERHEAD) as i64 {
            return Err(BatchError::InvalidLength {
                length: header.batch_length,
            });
        }
        Ok(header)
    }

    /// Whole size of the batch in bytes, header included.
    pub fn total_len(&self) -> usize {
        LOG_OVERHEAD + self.batch_length.max(0) as usize
    }

    pub fn last_offset(&self) -> i64 {
        self.base_offset + self.last_offset_delta as i64
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
    let total = header.total_len();
    if batch.len() < total {
        return Err(BatchError::Truncated {
            needed: total,
            available: batch.len(),
        });
    }
    let computed = crc32c::crc32c(&batch[CRC_START..total]);
    if computed != header.crc {
        return Err(BatchError::CrcMismatch {
            stored: header.crc,
            computed,
        });
    }
    Ok(())
}

/// Validates a buffer holding one or more batches back to back (a produce request's
/// `records`): magic 2, lengths, CRC, and, after decompression, the record count and
/// every record's framing. Returns each batch's header and place.
///
/// `max_decompressed_bytes` bounds what decompression may allocate (a zip bomb gets
/// [`BatchError::DecompressedTooLarge`]).
pub fn validate_batches(
    buf: &[u8],
    max_decompressed_bytes: usize,
) -> Result<Vec<ValidatedBatch>, BatchError> {
    if buf.is_empty() {
        return Err(BatchError::Inconsistent {
            reason: "no batch present",
        });
    }
    let mut batches = Vec::new();
    let mut pos = 0;
    while pos < buf.len() {
        let header = BatchHeader::parse(&buf[pos..])?;
        let total = header.total_len();
        let end = pos.checked_add(total).ok_or(BatchError::InvalidLength {
            length: header.batch_length,
        })?;
        if end > buf.len() {
            return Err(BatchError::Truncated {
                needed: end,
                available: buf.len(),
            });
        }
        let bytes = &buf[pos..end];
        check_crc(bytes)?;
        let records = decode_records_limited(bytes, max_decompressed_bytes)?;
        check_records_consistent(&header, &records)?;
        batches.push(ValidatedBatch {
            header,
            range: pos..end,
        });
        pos = end;
    }
    Ok(batches)
}

fn check_records_consistent(header: &BatchHeader, records: &[Record]) -> Result<(), BatchError> {
    if header.record_count < 0 || header.record_count as usize != records.len() {
        return Err(BatchError::RecordCountMismatch {
            declared: header.record_count,
            found: records.len(),
        });
    }
    if records.is_empty() {
        return Err(BatchError::Inconsistent {
            reason: "batch holds no records",
        });
    }
    if header.last_offset_delta < 0 {
        return Err(BatchError::Inconsistent {
            reason: "negative lastOffsetDelta",
        });
    }
    Ok(())
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
    let header = BatchHeader::parse(batch)?;
    let total = header.total_len();
    if batch.len() < total {
        return Err(BatchError::Truncated {
            needed: total,
            available: batch.len(),
        });
    }
    let body = &batch[HEADER_LEN..total];
    let compression = header.compression()?;
    let decompressed;
    let records_bytes: &[u8] = match compression {
        Compression::None => body,
        codec => {
            decompressed = crate::compression::decompress(codec, body, max_decompressed_bytes)?;
            &decompressed
        }
    };
    parse_records(records_bytes, header.record_count)
}

/// Parses `count` records back to back; every byte must be accounted for.
fn parse_records(buf: &[u8], count: i32) -> Result<Vec<Record>, BatchError> {
    if count < 0 {
        return Err(BatchError::RecordCountMismatch {
            declared: count,
            found: 0,
        });
    }
    // A record takes at least 7 bytes, so the count cannot make us allocate more than the
    // bytes present justify.
    let mut records = Vec::with_capacity((count as usize).min(buf.len() / 7));
    let mut cursor = Cursor { buf, pos: 0 };
    while cursor.pos < buf.len() {
        let index = records.len();
        let record = parse_record(&mut cursor)
            .map_err(|reason| BatchError::MalformedRecord { index, reason })?;
        records.push(record);
    }
    if records.len() != count as usize {
        return Err(BatchError::RecordCountMismatch {
            declared: count,
            found: records.len(),
        });
    }
    Ok(records)
}

fn parse_record(cursor: &mut Cursor<'_>) -> Result<Record, &'static str> {
    let length = cursor.varint()?;
    if length < 0 {
        return Err("negative record length");
    }
    let end = cursor
        .pos
        .checked_add(length as usize)
        .filter(|end| *end <= cursor.buf.len())
        .ok_or("record length exceeds the batch")?;
    let mut inner = Cursor {
        buf: &cursor.buf[..end],
        pos: cursor.pos,
    };
    let attributes = inner.u8()? as i8;
    let timestamp_delta = inner.varlong()?;
    let offset_delta = inner.varint()?;
    let key = inner.nullable_bytes()?;
    let value = inner.nullable_bytes()?;
    let header_count = inner.varint()?;
    if header_count < 0 {
        return Err("negative header count");
    }
    let mut headers = Vec::with_capacity((header_count as usize).min(inner.remaining() / 2));
    for _ in 0..header_count {
        let key_bytes = inner.nullable_bytes()?.ok_or("null header key")?;
        let key = String::from_utf8(key_bytes).map_err(|_| "header key is not UTF-8")?;
        let value = inner.nullable_bytes()?;
        headers.push(RecordHeader { key, value });
    }
    if inner.pos != end {
        return Err("record length does not match its fields");
    }
    cursor.pos = end;
    Ok(Record {
        attributes,
        timestamp_delta,
        offset_delta,
        key,
        value,
        headers,
    })
}

/// Builds v2 batches: for tests, internal topics and compaction output.
#[derive(Debug, Clone)]
pub struct BatchBuilder {
    pub base_offset: i64,
    pub base_timestamp: i64,
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
            timestamp_delta: timestamp - self.base_timestamp,
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
        let timestamp = self.base_timestamp + record.timestamp_delta;
        self.max_timestamp = self.max_timestamp.max(timestamp);
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
        let mut out = Vec::with_capacity(HEADER_LEN + body.len());
        out.extend_from_slice(&self.base_offset.to_be_bytes());
        let batch_length = (HEADER_LEN - LOG_OVERHEAD + body.len()) as i32;
        out.extend_from_slice(&batch_length.to_be_bytes());
        out.extend_from_slice(&self.partition_leader_epoch.to_be_bytes());
        out.push(MAGIC_V2 as u8);
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
        out.extend_from_slice(&(self.records.len() as i32).to_be_bytes());
        out.extend_from_slice(&body);
        let crc = crc32c::crc32c(&out[CRC_START..]);
        out[17..21].copy_from_slice(&crc.to_be_bytes());
        out
    }
}

fn encode_record(out: &mut Vec<u8>, record: &Record) {
    let mut inner = Vec::new();
    inner.push(record.attributes as u8);
    put_varlong(&mut inner, record.timestamp_delta);
    put_varint(&mut inner, record.offset_delta);
    put_nullable_bytes(&mut inner, record.key.as_deref());
    put_nullable_bytes(&mut inner, record.value.as_deref());
    put_varint(&mut inner, record.headers.len() as i32);
    for header in &record.headers {
        put_nullable_bytes(&mut inner, Some(header.key.as_bytes()));
        put_nullable_bytes(&mut inner, header.value.as_deref());
    }
    put_varint(out, inner.len() as i32);
    out.extend_from_slice(&inner);
}

fn put_nullable_bytes(out: &mut Vec<u8>, bytes: Option<&[u8]>) {
    match bytes {
        None => put_varint(out, -1),
        Some(bytes) => {
            put_varint(out, bytes.len() as i32);
            out.extend_from_slice(bytes);
        }
    }
}

pub(crate) fn put_varint(out: &mut Vec<u8>, value: i32) {
    put_unsigned_varint(out, ((value << 1) ^ (value >> 31)) as u32 as u64);
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

/// A read position over untrusted bytes; every read is bounds-checked.
struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl Cursor<'_> {
    fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    fn u8(&mut self) -> Result<u8, &'static str> {
        let byte = *self.buf.get(self.pos).ok_or("truncated record")?;
        self.pos += 1;
        Ok(byte)
    }

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
        let raw = self.unsigned_varint(5)?;
        let raw = u32::try_from(raw).map_err(|_| "varint out of range")?;
        Ok(((raw >> 1) as i32) ^ -((raw & 1) as i32))
    }

    fn varlong(&mut self) -> Result<i64, &'static str> {
        let raw = self.unsigned_varint(10)?;
        Ok(((raw >> 1) as i64) ^ -((raw & 1) as i64))
    }

    fn nullable_bytes(&mut self) -> Result<Option<Vec<u8>>, &'static str> {
        let length = self.varint()?;
        if length < 0 {
            return Ok(None);
        }
        let end = self
            .pos
            .checked_add(length as usize)
            .filter(|end| *end <= self.buf.len())
            .ok_or("field length exceeds the record")?;
        let bytes = self.buf[self.pos..end].to_vec();
        self.pos = end;
        Ok(Some(bytes))
    }
}

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

    #[test]
    fn built_batch_validates_and_decodes() {
        let mut builder = BatchBuilder::new(0, 1_000);
        builder.push(
            1_000,
            Some(b"k1"),
            Some(b"v1"),
            &[("h", Some(b"x")), ("h", None)],
        );
        builder.push(1_005, None, Some(b"v2"), &[]);
        let batch = builder.build();
        let validated = validate_batches(&batch, 1 << 20).expect("valid");
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
        assert!(matches!(
            validate_batches(&batch, 1 << 20),
            Err(BatchError::CrcMismatch { .. })
        ));
    }
}
