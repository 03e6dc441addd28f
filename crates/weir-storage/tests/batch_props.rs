//! Property tests of the RecordBatch codec through the public API: round trips with every
//! codec, compaction rewrites, and refusal (never a panic) of damaged or hostile bytes.

use proptest::prelude::*;
use weir_storage::batch::{
    BatchBuilder, BatchError, BatchErrorKind, BatchHeader, Compression, HEADER_LEN, Record,
    RecordHeader, decode_records, rebuild, validate_batches, validate_client_batches,
};

const LIMIT: usize = 1 << 20;

fn codec() -> impl Strategy<Value = Compression> {
    prop::sample::select(Compression::ALL.to_vec())
}

fn timestamp_delta() -> impl Strategy<Value = i64> {
    prop_oneof![
        -1_000i64..1_000,
        any::<i64>(),
        Just(i64::MIN),
        Just(i64::MAX),
        Just(i64::from(i32::MIN)),
        Just(i64::from(i32::MAX) + 1),
    ]
}

fn bytes(max: usize) -> impl Strategy<Value = Option<Vec<u8>>> {
    prop::option::weighted(0.8, prop::collection::vec(any::<u8>(), 0..max))
}

fn header() -> impl Strategy<Value = RecordHeader> {
    // A few keys only, so that repeated keys are common.
    let key = prop::sample::select(vec!["h", "TAGS", "KEYS", "", "\u{e9}t\u{e9}", "k"]);
    (key, bytes(16)).prop_map(|(key, value)| RecordHeader {
        key: key.to_string(),
        value,
    })
}

/// Records with dense offset deltas, as a producer writes them.
fn records() -> impl Strategy<Value = Vec<Record>> {
    let record = (
        any::<i8>(),
        timestamp_delta(),
        bytes(40),
        bytes(200),
        prop::collection::vec(header(), 0..5),
    );
    prop::collection::vec(record, 1..20).prop_map(|records| {
        records
            .into_iter()
            .enumerate()
            .map(
                |(i, (attributes, timestamp_delta, key, value, headers))| Record {
                    attributes,
                    timestamp_delta,
                    offset_delta: i as i32,
                    key,
                    value,
                    headers,
                },
            )
            .collect()
    })
}

#[derive(Debug, Clone)]
struct BatchSpec {
    codec: Compression,
    base_offset: i64,
    base_timestamp: i64,
    producer: (i64, i16, i32),
    transactional: bool,
    records: Vec<Record>,
}

fn batch_spec() -> impl Strategy<Value = BatchSpec> {
    (
        codec(),
        0i64..1 << 40,
        prop_oneof![any::<i64>(), 1_600_000_000_000i64..1_800_000_000_000],
        prop_oneof![Just((-1i64, -1i16, -1i32)), (0i64.., 0i16.., 0i32..)],
        any::<bool>(),
        records(),
    )
        .prop_map(
            |(codec, base_offset, base_timestamp, producer, transactional, records)| BatchSpec {
                codec,
                base_offset,
                base_timestamp,
                producer,
                transactional: transactional && producer.0 >= 0,
                records,
            },
        )
}

fn build(spec: &BatchSpec) -> Vec<u8> {
    let mut builder = BatchBuilder::new(spec.base_offset, spec.base_timestamp);
    builder.compression = spec.codec;
    (
        builder.producer_id,
        builder.producer_epoch,
        builder.base_sequence,
    ) = spec.producer;
    if spec.transactional {
        builder.attributes = 0x10;
    }
    for record in &spec.records {
        builder.push_record(record.clone());
    }
    builder.build()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn build_validate_decode_round_trips(spec in batch_spec()) {
        let batch = build(&spec);
        let validated = validate_client_batches(&batch, LIMIT).expect("a built batch is valid");
        prop_assert_eq!(validated.len(), 1);
        let header = validated[0].header;
        prop_assert_eq!(header.compression(), Ok(spec.codec));
        prop_assert_eq!(header.base_offset, spec.base_offset);
        prop_assert_eq!(header.record_count as usize, spec.records.len());
        prop_assert_eq!(header.last_offset_delta as usize, spec.records.len() - 1);
        prop_assert_eq!(header.is_transactional(), spec.transactional);
        prop_assert_eq!(
            (header.producer_id, header.producer_epoch, header.base_sequence),
            spec.producer
        );
        let max = spec
            .records
            .iter()
            .map(|r| spec.base_timestamp.wrapping_add(r.timestamp_delta))
            .max()
            .expect("at least one record");
        prop_assert_eq!(header.max_timestamp, max);
        prop_assert_eq!(decode_records(&batch).expect("decodes"), spec.records);
    }

    #[test]
    fn rebuild_keeps_exactly_the_chosen_records(
        spec in batch_spec(),
        mask in prop::collection::vec(any::<bool>(), 20),
    ) {
        let batch = build(&spec);
        let keep = |r: &Record| mask[r.offset_delta as usize];
        let want: Vec<Record> = spec.records.iter().filter(|r| keep(r)).cloned().collect();
        let rebuilt = rebuild(&batch, keep).expect("valid input");
        let Some(rebuilt) = rebuilt else {
            prop_assert!(want.is_empty());
            return Ok(());
        };
        let validated = validate_batches(&rebuilt, LIMIT).expect("rebuilt batch is valid");
        let (before, after) = (
            BatchHeader::parse(&batch).expect("parses"),
            validated[0].header,
        );
        prop_assert_eq!(after.base_offset, before.base_offset);
        prop_assert_eq!(after.last_offset(), before.last_offset());
        prop_assert_eq!(after.attributes, before.attributes);
        prop_assert_eq!(
            (after.producer_id, after.producer_epoch, after.base_sequence),
            (before.producer_id, before.producer_epoch, before.base_sequence)
        );
        prop_assert_eq!(decode_records(&rebuilt).expect("decodes"), want);
    }

    #[test]
    fn garbage_never_panics(garbage in prop::collection::vec(any::<u8>(), 0..400)) {
        let _ = validate_batches(&garbage, LIMIT);
        let _ = decode_records(&garbage);
    }

    /// Damaged record bytes behind a valid header and CRC: reaches the decompressors and
    /// the record parser, which must refuse or accept without panicking.
    #[test]
    fn damaged_records_with_a_valid_crc_never_panic(
        spec in batch_spec(),
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
        cut in any::<prop::sample::Index>(),
        compress_after in any::<bool>(),
    ) {
        let plain = build(&BatchSpec { codec: Compression::None, ..spec.clone() });
        let mut body = plain[HEADER_LEN..].to_vec();
        for (at, byte) in edits {
            let at = at.index(body.len());
            body[at] = byte;
        }
        body.truncate(cut.index(body.len() + 1));
        let codec = if compress_after { spec.codec } else { Compression::None };
        let body = weir_storage::compression::compress(codec, &body);
        let batch = with_body(&plain, codec, &body);
        if let Err(error) = validate_batches(&batch, LIMIT) {
            prop_assert_ne!(error.kind(), BatchErrorKind::TooLarge);
        }
        let _ = decode_records(&batch);
    }
}

/// `template`'s header around `body`, with the codec bits, length and CRC made to fit.
fn with_body(template: &[u8], codec: Compression, body: &[u8]) -> Vec<u8> {
    let mut batch = template[..HEADER_LEN].to_vec();
    batch.extend_from_slice(body);
    let length = (batch.len() - 12) as i32;
    batch[8..12].copy_from_slice(&length.to_be_bytes());
    let attributes = (i16::from_be_bytes([batch[21], batch[22]]) & !7) | codec.attribute_bits();
    batch[21..23].copy_from_slice(&attributes.to_be_bytes());
    let crc = crc32c::crc32c(&batch[21..]);
    batch[17..21].copy_from_slice(&crc.to_be_bytes());
    batch
}

fn sample_batch(codec: Compression) -> Vec<u8> {
    let mut builder = BatchBuilder::new(0, 1_700_000_000_000).compression(codec);
    builder.push(
        1_700_000_000_000,
        Some(b"k"),
        Some(b"value one"),
        &[("h", Some(b"x"))],
    );
    builder.push(
        1_699_999_999_000,
        None,
        None,
        &[("h", None), ("h", Some(b""))],
    );
    builder.push(1_700_000_000_500, Some(b""), Some(&[7; 40]), &[]);
    builder.build()
}

#[test]
fn every_truncation_is_refused() {
    for codec in Compression::ALL {
        let batch = sample_batch(codec);
        for len in 0..batch.len() {
            let error = validate_batches(&batch[..len], LIMIT).expect_err("truncated");
            let expected = if len == 0 {
                BatchErrorKind::InvalidRecord // nothing at all
            } else {
                BatchErrorKind::Corrupt
            };
            assert_eq!(error.kind(), expected, "{codec:?} cut at {len}: {error}");
            let _ = decode_records(&batch[..len]);
        }
    }
}

#[test]
fn every_bit_flip_covered_by_the_crc_is_refused() {
    // Not covered by the CRC: baseOffset (0..8) and partitionLeaderEpoch (12..16), which
    // the broker rewrites.
    let uncovered = |byte: usize| byte < 8 || (12..16).contains(&byte);
    for codec in Compression::ALL {
        let batch = sample_batch(codec);
        for byte in 0..batch.len() {
            for bit in 0..8 {
                let mut flipped = batch.clone();
                flipped[byte] ^= 1 << bit;
                let result = validate_batches(&flipped, LIMIT);
                let _ = decode_records(&flipped);
                if !uncovered(byte) {
                    assert!(
                        result.is_err(),
                        "{codec:?}: flip of bit {bit} in byte {byte}"
                    );
                }
            }
        }
    }
}

#[test]
fn trailing_bytes_after_a_batch_are_refused() {
    let mut buf = sample_batch(Compression::None);
    buf.push(0);
    assert!(matches!(
        validate_batches(&buf, LIMIT),
        Err(BatchError::Truncated { .. })
    ));
}

#[test]
fn record_count_lies_are_refused() {
    for codec in Compression::ALL {
        let batch = sample_batch(codec);
        for count in [-1i32, 0, 2, 4, i32::MAX, i32::MIN] {
            let mut lying = batch.clone();
            lying[57..61].copy_from_slice(&count.to_be_bytes());
            let lying = with_body(&lying, codec, &batch[HEADER_LEN..]);
            let error = validate_batches(&lying, LIMIT).expect_err("count lies");
            assert_eq!(
                error.kind(),
                BatchErrorKind::InvalidRecord,
                "{codec:?} {count}"
            );
            if count > 0 {
                assert!(decode_records(&lying).is_err(), "{codec:?} {count}");
            }
        }
    }
}

#[test]
fn unknown_codecs_are_their_own_kind() {
    let batch = sample_batch(Compression::None);
    for bits in 5..8i16 {
        let mut odd = batch.clone();
        odd[22] = (odd[22] & !7) | bits as u8;
        let crc = crc32c::crc32c(&odd[21..]);
        odd[17..21].copy_from_slice(&crc.to_be_bytes());
        let error = validate_batches(&odd, LIMIT).expect_err("unknown codec");
        assert_eq!(error, BatchError::UnknownCompression { codec: bits });
        assert_eq!(error.kind(), BatchErrorKind::UnsupportedCompression);
    }
}

#[test]
fn old_magic_is_an_invalid_record() {
    let mut batch = sample_batch(Compression::None);
    batch[16] = 1;
    let error = validate_batches(&batch, LIMIT).expect_err("magic 1");
    assert_eq!(error, BatchError::UnsupportedMagic { magic: 1 });
    assert_eq!(error.kind(), BatchErrorKind::InvalidRecord);
}

#[test]
fn decompressors_survive_garbage_and_damaged_streams() {
    let payload: Vec<u8> = (0..5_000u32).map(|i| (i % 7) as u8).collect();
    for codec in Compression::ALL {
        let stream = weir_storage::compression::compress(codec, &payload);
        for cut in 0..stream.len() {
            let _ = weir_storage::compression::decompress(codec, &stream[..cut], LIMIT);
        }
        for byte in 0..stream.len() {
            let mut damaged = stream.clone();
            damaged[byte] ^= 0x5a;
            if let Ok(out) = weir_storage::compression::decompress(codec, &damaged, LIMIT) {
                assert!(out.len() <= LIMIT);
            }
        }
    }
}
