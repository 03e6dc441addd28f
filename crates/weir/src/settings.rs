//! Settings of `weir serve`. Each comes from, in order of precedence: its command-line
//! flag, its environment variable (`WEIR_…`), the TOML file named by `--config`, the
//! default. Unknown keys in the file are an error, so a typo does not silently fall back.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::Deserialize;
use weir_core::BrokerConfig;
use weir_core::groups::GroupConfig;
use weir_storage::store::StoreConfig;

pub const DATA_DIR_DEFAULT: &str = "./weir-data";
pub const KAFKA_ADDR_DEFAULT: &str = "127.0.0.1:9092";
pub const ROCKETMQ_ADDR_DEFAULT: &str = "127.0.0.1:8081";
pub const ADMIN_ADDR_DEFAULT: &str = "127.0.0.1:9644";

#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// TOML file with settings (flags and environment variables override it).
    #[arg(long, env = "WEIR_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Where weir keeps its data [default: ./weir-data].
    #[arg(long, env = "WEIR_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Kafka protocol listener [default: 127.0.0.1:9092].
    #[arg(long, env = "WEIR_KAFKA_ADDR", value_name = "HOST:PORT")]
    pub kafka_addr: Option<SocketAddr>,
    /// RocketMQ 5 gRPC listener [default: 127.0.0.1:8081].
    #[arg(long, env = "WEIR_ROCKETMQ_ADDR", value_name = "HOST:PORT")]
    pub rocketmq_addr: Option<SocketAddr>,
    /// Admin HTTP listener (metrics, API) [default: 127.0.0.1:9644].
    #[arg(long, env = "WEIR_ADMIN_ADDR", value_name = "HOST:PORT")]
    pub admin_addr: Option<SocketAddr>,
    /// Kafka's group.initial.rebalance.delay.ms: how long a new group's first rebalance
    /// waits for more members [default: 3000].
    #[arg(long, env = "WEIR_GROUP_INITIAL_REBALANCE_DELAY_MS", value_name = "MS")]
    pub group_initial_rebalance_delay_ms: Option<i64>,
    /// Kafka's group.min.session.timeout.ms [default: 6000].
    #[arg(long, env = "WEIR_GROUP_MIN_SESSION_TIMEOUT_MS", value_name = "MS")]
    pub group_min_session_timeout_ms: Option<i32>,
    /// Kafka's group.consumer.session.timeout.ms, for KIP-848 groups [default: 45000].
    #[arg(
        long,
        env = "WEIR_GROUP_CONSUMER_SESSION_TIMEOUT_MS",
        value_name = "MS"
    )]
    pub group_consumer_session_timeout_ms: Option<i32>,
    /// Kafka's offsets.retention.minutes: offsets of an empty group live this long
    /// [default: 10080, 7 days].
    #[arg(long, env = "WEIR_OFFSETS_RETENTION_MINUTES", value_name = "MIN")]
    pub offsets_retention_minutes: Option<i64>,
}

/// The `--config` file's shape.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSettings {
    data_dir: Option<PathBuf>,
    kafka_addr: Option<SocketAddr>,
    rocketmq_addr: Option<SocketAddr>,
    admin_addr: Option<SocketAddr>,
    /// Kafka's `auto.create.topics.enable`.
    auto_create_topics: Option<bool>,
    /// Kafka's `num.partitions`: partitions of an auto-created topic.
    num_partitions: Option<i32>,
    node_id: Option<i32>,
    #[serde(default)]
    storage: StorageFileSettings,
    #[serde(default)]
    groups: GroupFileSettings,
}

/// The `[groups]` table: the group coordinator's settings under Kafka's names.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct GroupFileSettings {
    initial_rebalance_delay_ms: Option<i64>,
    min_session_timeout_ms: Option<i32>,
    max_session_timeout_ms: Option<i32>,
    max_size: Option<usize>,
    consumer_session_timeout_ms: Option<i32>,
    consumer_heartbeat_interval_ms: Option<i32>,
    offsets_retention_minutes: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct StorageFileSettings {
    wal_segment_bytes: Option<u64>,
    wal_flush_interval_ms: Option<u64>,
    wal_flush_bytes: Option<u64>,
    checkpoint_interval_ms: Option<i64>,
    checkpoint_wal_bytes: Option<u64>,
    max_open_files: Option<usize>,
}

/// Resolved settings.
#[derive(Debug, Clone)]
pub struct Settings {
    pub data_dir: PathBuf,
    pub kafka_addr: SocketAddr,
    pub rocketmq_addr: SocketAddr,
    pub admin_addr: SocketAddr,
    pub node_id: i32,
    pub store: StoreConfig,
    pub broker: BrokerConfig,
    pub groups: GroupConfig,
}

impl Settings {
    pub fn resolve(args: ServeArgs) -> anyhow::Result<Self> {
        let file = match &args.config {
            Some(path) => read_file(path)?,
            None => FileSettings::default(),
        };
        let addr = |flag: Option<SocketAddr>, file: Option<SocketAddr>, default: &str| {
            flag.or(file).map_or_else(|| default.parse(), Ok)
        };
        let mut store = StoreConfig::default();
        let s = &file.storage;
        if let Some(v) = s.wal_segment_bytes {
            store.wal.segment_bytes = v;
        }
        if let Some(v) = s.wal_flush_interval_ms {
            store.wal.async_flush_interval_ms = v;
        }
        if let Some(v) = s.wal_flush_bytes {
            store.wal.async_flush_bytes = v;
        }
        if let Some(v) = s.checkpoint_interval_ms {
            store.checkpoint_interval_ms = v;
        }
        if let Some(v) = s.checkpoint_wal_bytes {
            store.checkpoint_wal_bytes = v;
        }
        if let Some(v) = s.max_open_files {
            store.max_open_files = v;
        }
        let mut broker = BrokerConfig::default();
        if let Some(v) = file.auto_create_topics {
            broker.auto_create_topics = v;
        }
        if let Some(v) = file.num_partitions {
            anyhow::ensure!(v >= 1, "num_partitions must be at least 1, not {v}");
            broker.num_partitions = v;
        }
        let groups = resolve_groups(&args, &file.groups)?;
        Ok(Self {
            node_id: file.node_id.unwrap_or(1),
            broker,
            groups,
            data_dir: args
                .data_dir
                .or(file.data_dir)
                .unwrap_or_else(|| DATA_DIR_DEFAULT.into()),
            kafka_addr: addr(args.kafka_addr, file.kafka_addr, KAFKA_ADDR_DEFAULT)?,
            rocketmq_addr: addr(
                args.rocketmq_addr,
                file.rocketmq_addr,
                ROCKETMQ_ADDR_DEFAULT,
            )?,
            admin_addr: addr(args.admin_addr, file.admin_addr, ADMIN_ADDR_DEFAULT)?,
            store,
        })
    }
}

fn resolve_groups(args: &ServeArgs, file: &GroupFileSettings) -> anyhow::Result<GroupConfig> {
    let mut groups = GroupConfig::default();
    if let Some(v) = args
        .group_initial_rebalance_delay_ms
        .or(file.initial_rebalance_delay_ms)
    {
        anyhow::ensure!(v >= 0, "group initial rebalance delay must not be negative");
        groups.initial_rebalance_delay_ms = v;
    }
    if let Some(v) = args
        .group_min_session_timeout_ms
        .or(file.min_session_timeout_ms)
    {
        groups.min_session_timeout_ms = v;
    }
    if let Some(v) = file.max_session_timeout_ms {
        groups.max_session_timeout_ms = v;
    }
    anyhow::ensure!(
        0 < groups.min_session_timeout_ms
            && groups.min_session_timeout_ms <= groups.max_session_timeout_ms,
        "group session timeouts must satisfy 0 < min <= max"
    );
    if let Some(v) = file.max_size {
        anyhow::ensure!(v >= 1, "groups.max_size must be at least 1");
        groups.max_size = v;
    }
    if let Some(v) = args
        .group_consumer_session_timeout_ms
        .or(file.consumer_session_timeout_ms)
    {
        anyhow::ensure!(v > 0, "group consumer session timeout must be positive");
        groups.consumer_session_timeout_ms = v;
    }
    if let Some(v) = file.consumer_heartbeat_interval_ms {
        anyhow::ensure!(v > 0, "group consumer heartbeat interval must be positive");
        groups.consumer_heartbeat_interval_ms = v;
    }
    if let Some(v) = args
        .offsets_retention_minutes
        .or(file.offsets_retention_minutes)
    {
        anyhow::ensure!(v >= 1, "offsets retention must be at least one minute");
        groups.offsets_retention_ms = v.saturating_mul(60_000);
    }
    Ok(groups)
}

fn read_file(path: &Path) -> anyhow::Result<FileSettings> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading config file {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("parsing config file {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args() -> ServeArgs {
        ServeArgs {
            config: None,
            data_dir: None,
            kafka_addr: None,
            rocketmq_addr: None,
            admin_addr: None,
            group_initial_rebalance_delay_ms: None,
            group_min_session_timeout_ms: None,
            group_consumer_session_timeout_ms: None,
            offsets_retention_minutes: None,
        }
    }

    #[test]
    fn group_settings_come_from_flags_then_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("weir.toml");
        std::fs::write(
            &path,
            "[groups]\ninitial_rebalance_delay_ms = 100\nmin_session_timeout_ms = 1000\n",
        )
        .expect("write config");
        let mut with_file = args();
        with_file.config = Some(path);
        with_file.group_initial_rebalance_delay_ms = Some(0);
        let settings = Settings::resolve(with_file).expect("resolves");
        assert_eq!(settings.groups.initial_rebalance_delay_ms, 0, "flag wins");
        assert_eq!(settings.groups.min_session_timeout_ms, 1000, "file applies");
        let mut negative = args();
        negative.group_initial_rebalance_delay_ms = Some(-1);
        assert!(Settings::resolve(negative).is_err());
    }

    #[test]
    fn defaults_apply_without_flags_or_file() {
        let settings = Settings::resolve(args()).expect("defaults resolve");
        assert_eq!(settings.data_dir, PathBuf::from(DATA_DIR_DEFAULT));
        assert_eq!(settings.kafka_addr.to_string(), KAFKA_ADDR_DEFAULT);
        assert_eq!(settings.admin_addr.to_string(), ADMIN_ADDR_DEFAULT);
    }

    #[test]
    fn flags_override_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("weir.toml");
        std::fs::write(
            &path,
            "data_dir = \"/from/file\"\nkafka_addr = \"127.0.0.1:1111\"\n[storage]\nwal_flush_interval_ms = 7\n",
        )
        .expect("write");
        let mut a = args();
        a.config = Some(path);
        a.kafka_addr = Some("127.0.0.1:2222".parse().expect("addr"));
        let settings = Settings::resolve(a).expect("resolves");
        assert_eq!(settings.data_dir, PathBuf::from("/from/file"));
        assert_eq!(settings.kafka_addr.port(), 2222);
        assert_eq!(settings.store.wal.async_flush_interval_ms, 7);
    }

    #[test]
    fn unknown_keys_are_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("weir.toml");
        std::fs::write(&path, "data_dri = \"typo\"\n").expect("write");
        let mut a = args();
        a.config = Some(path);
        assert!(Settings::resolve(a).is_err());
    }
}
