//! The topic catalog: every topic's name, id, partition count and settings, one small file
//! per topic under `<data>/topics/`, written atomically. The store holds the partitions;
//! this holds what makes them a topic.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use weir_storage::topic_config::TopicConfig;

/// A topic's stable id (Kafka's topic UUID), fixed at creation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct TopicId(pub [u8; 16]);

impl TopicId {
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    pub fn from_hex(hex: &str) -> Option<Self> {
        if hex.len() != 32 {
            return None;
        }
        let mut out = [0u8; 16];
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
        }
        Some(Self(out))
    }

    pub fn is_zero(&self) -> bool {
        self.0 == [0; 16]
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct TopicInfo {
    pub name: String,
    pub id: TopicId,
    pub partitions: i32,
    pub config: TopicConfig,
    /// The settings given explicitly at creation or by an alter (the rest are defaults).
    pub overrides: BTreeMap<String, String>,
}

/// Largest topic file read back: a few hundred bytes in practice.
const TOPIC_FILE_MAX_BYTES: u64 = 64 * 1024;
const TOPIC_FILE_SUFFIX: &str = ".topic";

#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{path}: {reason}")]
    Bad { path: PathBuf, reason: String },
}

pub(crate) struct Catalog {
    dir: PathBuf,
    topics: BTreeMap<String, TopicInfo>,
}

impl Catalog {
    pub(crate) fn open(dir: &Path) -> Result<Self, CatalogError> {
        let io_err = |op, source| CatalogError::Io {
            op,
            path: dir.to_path_buf(),
            source,
        };
        fs::create_dir_all(dir).map_err(|e| io_err("create directory", e))?;
        let mut topics = BTreeMap::new();
        for entry in fs::read_dir(dir).map_err(|e| io_err("list", e))? {
            let path = entry.map_err(|e| io_err("list", e))?.path();
            let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
                continue;
            };
            if !name.ends_with(TOPIC_FILE_SUFFIX) {
                // Leftover temporary files of an interrupted write.
                let _ = fs::remove_file(&path);
                continue;
            }
            let topic = read_topic(&path)?;
            topics.insert(topic.name.clone(), topic);
        }
        Ok(Self {
            dir: dir.to_path_buf(),
            topics,
        })
    }

    pub(crate) fn get(&self, name: &str) -> Option<&TopicInfo> {
        self.topics.get(name)
    }

    pub(crate) fn all(&self) -> impl Iterator<Item = &TopicInfo> {
        self.topics.values()
    }

    pub(crate) fn put(&mut self, topic: TopicInfo) -> Result<(), CatalogError> {
        write_topic(&self.dir, &topic)?;
        self.topics.insert(topic.name.clone(), topic);
        Ok(())
    }

    pub(crate) fn remove(&mut self, name: &str) -> Result<Option<TopicInfo>, CatalogError> {
        let path = self.dir.join(format!("{name}{TOPIC_FILE_SUFFIX}"));
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(CatalogError::Io {
                    op: "remove",
                    path,
                    source,
                });
            }
        }
        sync_dir(&self.dir)?;
        Ok(self.topics.remove(name))
    }
}

fn sync_dir(dir: &Path) -> Result<(), CatalogError> {
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|source| CatalogError::Io {
            op: "fsync directory",
            path: dir.to_path_buf(),
            source,
        })
}

/// `name=`, `id=`, `partitions=`, then one `config.<key>=<value>` line per override.
fn write_topic(dir: &Path, topic: &TopicInfo) -> Result<(), CatalogError> {
    let mut text = format!(
        "name={}\nid={}\npartitions={}\n",
        topic.name,
        topic.id.to_hex(),
        topic.partitions
    );
    for (key, value) in &topic.overrides {
        text.push_str(&format!("config.{key}={value}\n"));
    }
    let path = dir.join(format!("{}{TOPIC_FILE_SUFFIX}", topic.name));
    let tmp = dir.join(format!("{}{TOPIC_FILE_SUFFIX}.tmp", topic.name));
    let write = || -> io::Result<()> {
        let mut file = fs::File::create(&tmp)?;
        file.write_all(text.as_bytes())?;
        file.sync_all()?;
        fs::rename(&tmp, &path)
    };
    write().map_err(|source| CatalogError::Io {
        op: "write",
        path: path.clone(),
        source,
    })?;
    sync_dir(dir)
}

fn read_topic(path: &Path) -> Result<TopicInfo, CatalogError> {
    let bad = |reason: String| CatalogError::Bad {
        path: path.to_path_buf(),
        reason,
    };
    let io_err = |source| CatalogError::Io {
        op: "read",
        path: path.to_path_buf(),
        source,
    };
    let len = fs::metadata(path).map_err(io_err)?.len();
    if len > TOPIC_FILE_MAX_BYTES {
        return Err(bad(format!("{len} bytes is larger than any topic file")));
    }
    let text = fs::read_to_string(path).map_err(io_err)?;
    let (mut name, mut id, mut partitions) = (None, None, None);
    let mut overrides = BTreeMap::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let (key, value) = line
            .split_once('=')
            .ok_or_else(|| bad(format!("line {line:?}")))?;
        match key {
            "name" => name = Some(value.to_string()),
            "id" => {
                id = Some(TopicId::from_hex(value).ok_or_else(|| bad(format!("id {value:?}")))?)
            }
            "partitions" => {
                partitions = Some(value.parse::<i32>().map_err(|_| bad(format!("{line:?}")))?)
            }
            _ => {
                let key = key
                    .strip_prefix("config.")
                    .ok_or_else(|| bad(format!("key {key:?}")))?;
                overrides.insert(key.to_string(), value.to_string());
            }
        }
    }
    let (Some(name), Some(id), Some(partitions)) = (name, id, partitions) else {
        return Err(bad("name, id or partitions missing".to_string()));
    };
    let config = TopicConfig::from_pairs(overrides.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .map_err(|e| bad(e.to_string()))?;
    Ok(TopicInfo {
        name,
        id,
        partitions,
        config,
        overrides,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_persist_across_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut overrides = BTreeMap::new();
        overrides.insert("retention.ms".to_string(), "1000".to_string());
        let topic = TopicInfo {
            name: "orders".into(),
            id: TopicId([7; 16]),
            partitions: 3,
            config: TopicConfig::from_pairs([("retention.ms", "1000")]).expect("config"),
            overrides,
        };
        {
            let mut catalog = Catalog::open(dir.path()).expect("open");
            catalog.put(topic.clone()).expect("put");
        }
        let mut catalog = Catalog::open(dir.path()).expect("reopen");
        assert_eq!(catalog.get("orders"), Some(&topic));
        catalog.remove("orders").expect("remove");
        assert!(
            Catalog::open(dir.path())
                .expect("reopen")
                .get("orders")
                .is_none()
        );
    }

    #[test]
    fn topic_ids_round_trip_as_hex() {
        let id = TopicId([0xab; 16]);
        assert_eq!(TopicId::from_hex(&id.to_hex()), Some(id));
        assert_eq!(TopicId::from_hex("zz"), None);
    }
}
