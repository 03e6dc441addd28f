//! Arbitrary bytes into the batch validator and decoder: they must refuse or accept, never
//! panic, and never allocate past the decompression bound. The first byte picks a codec
//! and whether to wrap the rest in a header with a valid CRC, so the fuzzer also reaches
//! the decompressors and the record parser (random bytes almost never pass a CRC).
#![no_main]

use libfuzzer_sys::fuzz_target;
use weir_storage::batch::{
    BatchBuilder, Compression, HEADER_LEN, decode_records_limited, headers, rebuild,
    validate_batches, validate_client_batches,
};

/// Small enough that a bomb is caught long before memory matters.
const LIMIT: usize = 1 << 20;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let buf = if selector & 0x80 != 0 {
        wrap(selector, rest)
    } else {
        rest.to_vec()
    };
    let strict = validate_client_batches(&buf, LIMIT);
    let lenient = validate_batches(&buf, LIMIT);
    // Whatever a producer may write, a log accepts.
    if strict.is_ok() {
        assert_eq!(strict, lenient);
    }
    let _ = decode_records_limited(&buf, LIMIT);
    for walked in headers(&buf) {
        if walked.is_err() {
            break;
        }
    }
    if lenient.is_ok() {
        let kept = rebuild(&buf, |r| r.offset_delta % 2 == 0);
        if let Ok(Some(kept)) = kept {
            validate_batches(&kept, LIMIT).expect("a rebuilt batch is valid");
        }
    }
});

/// A batch header (record count from the selector) with a valid CRC around `body`.
fn wrap(selector: u8, body: &[u8]) -> Vec<u8> {
    let codec = Compression::ALL[usize::from(selector & 0x07) % Compression::ALL.len()];
    let mut builder = BatchBuilder::new(0, 0);
    builder.push(0, None, None, &[]);
    let mut batch = builder.build()[..HEADER_LEN].to_vec();
    let record_count = i32::from((selector >> 3) & 0x0f);
    batch[57..61].copy_from_slice(&record_count.to_be_bytes());
    batch[23..27].copy_from_slice(&(record_count - 1).max(0).to_be_bytes());
    batch.extend_from_slice(body);
    let length = i32::try_from(batch.len() - 12).unwrap_or(i32::MAX);
    batch[8..12].copy_from_slice(&length.to_be_bytes());
    let attributes = (i16::from_be_bytes([batch[21], batch[22]]) & !7) | codec.attribute_bits();
    batch[21..23].copy_from_slice(&attributes.to_be_bytes());
    let crc = crc32c::crc32c(&batch[21..]);
    batch[17..21].copy_from_slice(&crc.to_be_bytes());
    batch
}
