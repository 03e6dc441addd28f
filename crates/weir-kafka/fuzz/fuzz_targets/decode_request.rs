//! Arbitrary bytes as a request frame body (what follows the size prefix): the guard walks
//! it, and only what it accepts reaches `kafka-protocol`'s decoder — exactly as the
//! connection does. A crash here is either a guard that let an impossible count through
//! (the decoder's allocation aborts the process) or a panic in either walk. When both
//! accept, they must stop at the same byte.
#![no_main]

use bytes::{Buf, Bytes};
use kafka_protocol::messages::{RequestHeader, RequestKind};
use kafka_protocol::protocol::Decodable;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(walked) = weir_kafka::guard::check_request(data) else {
        return;
    };
    assert!(walked.count_max <= data.len() as u64);
    let mut frame = Bytes::copy_from_slice(data);
    let key = walked.api_key;
    let version = walked.version;
    if RequestHeader::decode(&mut frame, key.request_header_version(version)).is_err() {
        return;
    }
    if RequestKind::decode(key, &mut frame, version).is_ok() {
        assert_eq!(data.len() - frame.remaining(), walked.consumed);
    }
});
