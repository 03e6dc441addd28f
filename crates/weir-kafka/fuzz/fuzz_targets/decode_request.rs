//! Arbitrary bytes as a request frame body (what follows the size prefix): the guard walks
//! it, and only what it accepts reaches `kafka-protocol`'s decoder — exactly as the
//! connection does. A crash here is either a guard that let an impossible count through
//! (the decoder's allocation aborts the process) or a panic in either walk. When both
//! accept, they must stop at the same byte.
//!
//! Input: a first byte with its high bit set means "the next byte picks a supported
//! (api key, version); the rest follows that prefix", so most inputs reach a real shape.
//! Otherwise the input is the frame as is.
#![no_main]

use bytes::{Buf, Bytes};
use kafka_protocol::messages::{RequestHeader, RequestKind};
use kafka_protocol::protocol::Decodable;
use libfuzzer_sys::fuzz_target;
use weir_kafka::api::SUPPORTED;

fn frame(data: &[u8]) -> Vec<u8> {
    let (Some(first), Some(pick)) = (data.first(), data.get(1)) else {
        return data.to_vec();
    };
    if first & 0x80 == 0 {
        return data.to_vec();
    }
    let all: Vec<(i16, i16)> = SUPPORTED
        .iter()
        .flat_map(|(key, min, max)| (*min..=*max).map(move |v| (*key as i16, v)))
        .collect();
    let (key, version) = all[usize::from(*pick) % all.len()];
    let mut frame = Vec::with_capacity(data.len() + 2);
    frame.extend_from_slice(&key.to_be_bytes());
    frame.extend_from_slice(&version.to_be_bytes());
    frame.extend_from_slice(&data[2..]);
    frame
}

fuzz_target!(|data: &[u8]| {
    let data = frame(data);
    let Ok(walked) = weir_kafka::guard::check_request(&data) else {
        return;
    };
    assert!(walked.count_max <= data.len() as u64);
    let mut body = Bytes::copy_from_slice(&data);
    let key = walked.api_key;
    let version = walked.version;
    if RequestHeader::decode(&mut body, key.request_header_version(version)).is_err() {
        return;
    }
    if RequestKind::decode(key, &mut body, version).is_ok() {
        assert_eq!(data.len() - body.remaining(), walked.consumed);
    }
});
