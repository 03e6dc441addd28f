//! Per-topic settings under their Kafka names (`retention.ms`, `cleanup.policy`, …), plus
//! weir's `flush.policy`. Front ends hand the storage engine these pairs as given by a
//! client (CreateTopics, AlterConfigs); this module is the one place they are parsed and
//! checked, and the form they are persisted in beside each partition.

use crate::batch::TimestampType;
use crate::partition::{CleanupPolicy, PartitionConfig};

/// When an append is acknowledged: after the WAL's fsync (`sync`), or once written to the
/// page cache with the WAL fsyncing in the background (`async`, the default of both Kafka
/// and RocketMQ).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FlushPolicy {
    Sync,
    #[default]
    Async,
}

/// Kafka's default `max.message.bytes` (1 MiB plus record-batch overhead).
pub const MAX_MESSAGE_BYTES_DEFAULT: u32 = 1_048_588;

/// Everything the storage engine needs to know about a partition's topic.
#[derive(Debug, Clone, PartialEq)]
pub struct TopicConfig {
    pub partition: PartitionConfig,
    pub flush: FlushPolicy,
    pub timestamp_type: TimestampType,
    /// Largest batch accepted, in bytes (Kafka's `max.message.bytes`).
    pub max_message_bytes: u32,
}

impl Default for TopicConfig {
    fn default() -> Self {
        Self {
            partition: PartitionConfig::default(),
            flush: FlushPolicy::Async,
            timestamp_type: TimestampType::CreateTime,
            max_message_bytes: MAX_MESSAGE_BYTES_DEFAULT,
        }
    }
}

/// A setting that could not be taken, with the key and value as given.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid config {key}={value}: {reason}")]
pub struct ConfigError {
    pub key: String,
    pub value: String,
    pub reason: &'static str,
}

/// The names [`TopicConfig::set`] understands, for listing and describing.
pub const KEYS: &[&str] = &[
    "cleanup.policy",
    "delete.retention.ms",
    "flush.policy",
    "index.interval.bytes",
    "max.message.bytes",
    "message.timestamp.type",
    "retention.bytes",
    "retention.ms",
    "segment.bytes",
    "segment.ms",
];

impl TopicConfig {
    /// Applies `pairs` over the defaults; the first bad pair fails the whole set, so a
    /// CreateTopics with an invalid config creates nothing.
    pub fn from_pairs<'a>(
        pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Self, ConfigError> {
        let mut config = Self::default();
        for (key, value) in pairs {
            config.set(key, value)?;
        }
        Ok(config)
    }

    /// Sets one setting by its Kafka name.
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), ConfigError> {
        let err = |reason| ConfigError {
            key: key.to_string(),
            value: value.to_string(),
            reason,
        };
        let int = |min: i64| -> Result<i64, ConfigError> {
            let parsed: i64 = value.trim().parse().map_err(|_| err("not an integer"))?;
            if parsed < min {
                return Err(err("below the minimum"));
            }
            Ok(parsed)
        };
        let p = &mut self.partition;
        match key {
            "segment.bytes" => p.segment_bytes = int(SEGMENT_BYTES_MIN)? as u64,
            "segment.ms" => p.segment_ms = int(1)?,
            "index.interval.bytes" => {
                p.index_interval_bytes = u32::try_from(int(0)?).map_err(|_| err("too large"))?
            }
            "retention.ms" => p.retention_ms = int(-1)?,
            "retention.bytes" => p.retention_bytes = int(-1)?,
            "delete.retention.ms" => p.delete_retention_ms = int(0)?,
            "cleanup.policy" => {
                p.cleanup_policy = parse_cleanup_policy(value)
                    .ok_or(err("expected delete, compact or compact,delete"))?
            }
            "max.message.bytes" => {
                self.max_message_bytes = u32::try_from(int(0)?).map_err(|_| err("too large"))?
            }
            "message.timestamp.type" => {
                self.timestamp_type = match value {
                    "CreateTime" => TimestampType::CreateTime,
                    "LogAppendTime" => TimestampType::LogAppendTime,
                    _ => return Err(err("expected CreateTime or LogAppendTime")),
                }
            }
            "flush.policy" => {
                self.flush = match value {
                    "sync" => FlushPolicy::Sync,
                    "async" => FlushPolicy::Async,
                    _ => return Err(err("expected sync or async")),
                }
            }
            _ => return Err(err("unknown config")),
        }
        Ok(())
    }

    /// Every setting as (name, value), in [`KEYS`] order.
    pub fn to_pairs(&self) -> Vec<(&'static str, String)> {
        let p = &self.partition;
        let cleanup = match (p.cleanup_policy.delete, p.cleanup_policy.compact) {
            (true, true) => "compact,delete",
            (false, true) => "compact",
            _ => "delete",
        };
        let timestamp_type = match self.timestamp_type {
            TimestampType::CreateTime => "CreateTime",
            TimestampType::LogAppendTime => "LogAppendTime",
        };
        let flush = match self.flush {
            FlushPolicy::Sync => "sync",
            FlushPolicy::Async => "async",
        };
        vec![
            ("cleanup.policy", cleanup.to_string()),
            ("delete.retention.ms", p.delete_retention_ms.to_string()),
            ("flush.policy", flush.to_string()),
            ("index.interval.bytes", p.index_interval_bytes.to_string()),
            ("max.message.bytes", self.max_message_bytes.to_string()),
            ("message.timestamp.type", timestamp_type.to_string()),
            ("retention.bytes", p.retention_bytes.to_string()),
            ("retention.ms", p.retention_ms.to_string()),
            ("segment.bytes", p.segment_bytes.to_string()),
            ("segment.ms", p.segment_ms.to_string()),
        ]
    }
}

/// Kafka's floor for `segment.bytes` is 14 bytes of overhead; weir wants room for at least
/// one batch header so a segment always holds something.
const SEGMENT_BYTES_MIN: i64 = 1024;

fn parse_cleanup_policy(value: &str) -> Option<CleanupPolicy> {
    let mut policy = CleanupPolicy {
        delete: false,
        compact: false,
    };
    for word in value.split(',').map(str::trim) {
        match word {
            "delete" => policy.delete = true,
            "compact" => policy.compact = true,
            _ => return None,
        }
    }
    (policy.delete || policy.compact).then_some(policy)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_round_trip() {
        let config = TopicConfig::from_pairs([
            ("cleanup.policy", "compact,delete"),
            ("retention.ms", "-1"),
            ("flush.policy", "sync"),
            ("message.timestamp.type", "LogAppendTime"),
        ])
        .expect("valid");
        let pairs = config.to_pairs();
        let again =
            TopicConfig::from_pairs(pairs.iter().map(|(k, v)| (*k, v.as_str()))).expect("valid");
        assert_eq!(config, again);
        assert_eq!(config.flush, FlushPolicy::Sync);
        assert!(config.partition.cleanup_policy.compact && config.partition.cleanup_policy.delete);
    }

    #[test]
    fn bad_values_name_the_key() {
        let err = TopicConfig::from_pairs([("retention.ms", "soon")]).expect_err("invalid");
        assert_eq!(err.key, "retention.ms");
        assert!(TopicConfig::from_pairs([("no.such.key", "1")]).is_err());
        assert!(TopicConfig::from_pairs([("cleanup.policy", "shred")]).is_err());
        assert!(TopicConfig::from_pairs([("segment.bytes", "10")]).is_err());
    }
}
