//! Batches written by an independent encoder (kafka-python's DefaultRecordBatchBuilder; see
//! tests/data/README.md) validate as producer batches and decode to the records put in.

use weir_storage::batch::{
    BatchHeader, Compression, Record, RecordHeader, TimestampType, decode_records,
    validate_batches, validate_client_batches,
};

const RECORDS: usize = 25;
const BASE_TS: i64 = 1_700_000_000_000;

/// Mirrors `expected()` in tests/data/make_fixtures.py: (timestamp, record).
fn expected(i: usize) -> (i64, Record) {
    let timestamp = BASE_TS + 13 * i as i64 - if i % 4 == 1 { 300 } else { 0 };
    let key = (i % 3 != 2).then(|| format!("key-{i}").into_bytes());
    let value = (i % 5 != 4).then(|| format!("value-{i};").repeat(i + 1).into_bytes());
    let header = |key: &str, value: Option<&[u8]>| RecordHeader {
        key: key.to_string(),
        value: value.map(<[u8]>::to_vec),
    };
    let headers = if i.is_multiple_of(2) {
        Vec::new()
    } else {
        let x = format!("x{i}");
        vec![
            header("h", Some(x.as_bytes())),
            header("h", None),
            header("TAGS", Some(b"TagA")),
            header("\u{e9}", Some(b"")),
        ]
    };
    let record = Record {
        attributes: 0,
        timestamp_delta: timestamp - BASE_TS,
        offset_delta: i as i32,
        key,
        value,
        headers,
    };
    (timestamp, record)
}

fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/data/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("reading {path}: {e}"))
}

fn check(name: &str, codec: Compression) -> BatchHeader {
    let bytes = fixture(name);
    let validated = validate_client_batches(&bytes, 1 << 20).expect(name);
    assert_eq!(validated.len(), 1, "{name}");
    assert_eq!(validated[0].range, 0..bytes.len(), "{name}");
    let header = validated[0].header;
    assert_eq!(header.compression(), Ok(codec), "{name}");
    assert_eq!(header.record_count, RECORDS as i32, "{name}");
    assert_eq!(header.last_offset_delta, RECORDS as i32 - 1, "{name}");
    assert_eq!(header.base_timestamp, BASE_TS, "{name}");
    let max = (0..RECORDS).map(|i| expected(i).0).max().expect("records");
    assert_eq!(header.max_timestamp, max, "{name}");
    assert_eq!(header.timestamp_type(), TimestampType::CreateTime, "{name}");
    let records = decode_records(&bytes).expect(name);
    let want: Vec<Record> = (0..RECORDS).map(|i| expected(i).1).collect();
    assert_eq!(records, want, "{name}");
    header
}

#[test]
fn uncompressed() {
    let header = check("kafka_python_none.bin", Compression::None);
    assert_eq!(header.producer_id, -1);
    assert!(!header.is_transactional());
}

#[test]
fn gzip() {
    check("kafka_python_gzip.bin", Compression::Gzip);
}

#[test]
fn snappy_xerial_as_the_java_producer_frames_it() {
    check("kafka_python_snappy_xerial.bin", Compression::Snappy);
    check("kafka_python_snappy_xerial_blocks.bin", Compression::Snappy);
}

#[test]
fn snappy_raw_as_librdkafka_writes_it() {
    check("kafka_python_snappy_raw.bin", Compression::Snappy);
}

#[test]
fn lz4_frame() {
    check("kafka_python_lz4.bin", Compression::Lz4);
}

#[test]
fn zstd_with_and_without_content_size() {
    check("kafka_python_zstd.bin", Compression::Zstd);
    check("kafka_python_zstd_no_content_size.bin", Compression::Zstd);
}

#[test]
fn idempotent_transactional_batch_keeps_producer_state() {
    let header = check("kafka_python_idempotent_txn.bin", Compression::Gzip);
    assert!(header.is_transactional());
    assert!(!header.is_control());
    assert_eq!(
        (
            header.producer_id,
            header.producer_epoch,
            header.base_sequence
        ),
        (1234, 5, 17)
    );
}

#[test]
fn fixtures_back_to_back_validate_with_their_positions() {
    let names = [
        "kafka_python_none.bin",
        "kafka_python_gzip.bin",
        "kafka_python_snappy_raw.bin",
        "kafka_python_lz4.bin",
        "kafka_python_zstd.bin",
    ];
    let mut buf = Vec::new();
    let mut starts = Vec::new();
    for name in names {
        starts.push(buf.len());
        buf.extend_from_slice(&fixture(name));
    }
    let validated = validate_batches(&buf, 1 << 20).expect("all valid");
    let found: Vec<usize> = validated.iter().map(|b| b.range.start).collect();
    assert_eq!(found, starts);
}

#[test]
fn our_encoder_matches_kafka_python_byte_for_byte_uncompressed() {
    let mut builder = weir_storage::batch::BatchBuilder::new(0, BASE_TS);
    builder.partition_leader_epoch = 0;
    for i in 0..RECORDS {
        builder.push_record(expected(i).1);
    }
    assert_eq!(builder.build(), fixture("kafka_python_none.bin"));
}
