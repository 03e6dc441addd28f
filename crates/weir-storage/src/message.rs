//! Conventions that let one record model serve both Kafka and RocketMQ: RocketMQ's tag and
//! keys travel as record headers named like RocketMQ's own message properties, so a Kafka
//! client can set them and a RocketMQ consumer sees them.

use crate::batch::Record;

/// Header holding a record's tag (one per record), as RocketMQ's `TAGS` property.
pub const TAG_HEADER: &str = "TAGS";
/// Header holding a record's lookup keys, space-separated, as RocketMQ's `KEYS` property.
pub const KEYS_HEADER: &str = "KEYS";

/// The tag hash RocketMQ stores in its consume queue: Java's `String.hashCode()` of the
/// tag (over UTF-16 code units), so filters computed by RocketMQ tooling agree.
pub fn tag_hash(tag: &str) -> i32 {
    tag.encode_utf16().fold(0i32, |hash, unit| {
        hash.wrapping_mul(31).wrapping_add(i32::from(unit))
    })
}

/// The record's tag: the last `TAGS` header that holds valid UTF-8.
pub fn tag_of(record: &Record) -> Option<&str> {
    record
        .headers
        .iter()
        .rev()
        .filter(|h| h.key == TAG_HEADER)
        .find_map(|h| h.value.as_deref().and_then(|v| std::str::from_utf8(v).ok()))
}

/// Every lookup key of a record: its Kafka key, then each space-separated word of each
/// `KEYS` header.
pub fn lookup_keys(record: &Record) -> impl Iterator<Item = &[u8]> {
    let header_keys = record
        .headers
        .iter()
        .filter(|h| h.key == KEYS_HEADER)
        .filter_map(|h| h.value.as_deref())
        .flat_map(|v| v.split(|b| *b == b' ').filter(|word| !word.is_empty()));
    record.key.as_deref().into_iter().chain(header_keys)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::RecordHeader;

    #[test]
    fn tag_hash_matches_java_string_hash_code() {
        // "TagA".hashCode() in Java.
        assert_eq!(tag_hash("TagA"), 2_598_919);
        assert_eq!(tag_hash(""), 0);
    }

    #[test]
    fn lookup_keys_include_record_key_and_keys_header_words() {
        let record = Record {
            key: Some(b"k0".to_vec()),
            headers: vec![RecordHeader {
                key: KEYS_HEADER.into(),
                value: Some(b"a  b".to_vec()),
            }],
            ..Record::default()
        };
        let keys: Vec<&[u8]> = lookup_keys(&record).collect();
        assert_eq!(keys, vec![b"k0".as_slice(), b"a", b"b"]);
    }
}
