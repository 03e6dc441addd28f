//! `partition.meta`: the few facts of a partition log that its segment files cannot tell —
//! log start offset (DeleteRecords, retention), recovery point (everything below it is
//! fsynced with its indexes) and when the active segment started (for `segment.ms` across
//! restarts). Written atomically: temporary file, fsync, rename, fsync of the directory, so
//! a crash leaves the old or the new file, and a checksum catches anything else.
//!
//! It never decides anything from these values; the partition log does.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use super::PartitionError;

pub const META_FILE: &str = "partition.meta";
const META_TMP: &str = "partition.meta.tmp";
const MAGIC: [u8; 4] = *b"WPM1";
/// magic, log start, recovery point, active base, active roll base, CRC.
const META_LEN: usize = 4 + 8 + 8 + 8 + 8 + 4;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Meta {
    pub log_start_offset: i64,
    pub recovery_point: i64,
    pub active_base_offset: i64,
    pub active_roll_base_ms: i64,
}

/// Why a meta file was not used (the log then recovers as if it had none: full CRC scan).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetaProblem {
    Missing,
    Damaged,
}

impl Meta {
    fn encode(&self) -> [u8; META_LEN] {
        let mut out = [0u8; META_LEN];
        out[0..4].copy_from_slice(&MAGIC);
        out[4..12].copy_from_slice(&self.log_start_offset.to_be_bytes());
        out[12..20].copy_from_slice(&self.recovery_point.to_be_bytes());
        out[20..28].copy_from_slice(&self.active_base_offset.to_be_bytes());
        out[28..36].copy_from_slice(&self.active_roll_base_ms.to_be_bytes());
        let crc = crc32c::crc32c(&out[..36]);
        out[36..40].copy_from_slice(&crc.to_be_bytes());
        out
    }

    fn decode(bytes: &[u8]) -> Option<Self> {
        let bytes: &[u8; META_LEN] = bytes.try_into().ok()?;
        let field = |at: usize| {
            let mut raw = [0u8; 8];
            raw.copy_from_slice(&bytes[at..at + 8]);
            i64::from_be_bytes(raw)
        };
        let mut crc = [0u8; 4];
        crc.copy_from_slice(&bytes[36..40]);
        if bytes[0..4] != MAGIC || crc32c::crc32c(&bytes[..36]) != u32::from_be_bytes(crc) {
            return None;
        }
        let meta = Self {
            log_start_offset: field(4),
            recovery_point: field(12),
            active_base_offset: field(20),
            active_roll_base_ms: field(28),
        };
        (meta.log_start_offset >= 0 && meta.recovery_point >= 0).then_some(meta)
    }

    pub fn read(dir: &Path) -> Result<Result<Self, MetaProblem>, PartitionError> {
        let path = dir.join(META_FILE);
        match std::fs::metadata(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Err(MetaProblem::Missing));
            }
            Err(source) => return Err(io("stat", &path, source)),
            Ok(m) if m.len() != META_LEN as u64 => return Ok(Err(MetaProblem::Damaged)),
            Ok(_) => {}
        }
        let bytes = std::fs::read(&path).map_err(|e| io("read", &path, e))?;
        Ok(Self::decode(&bytes).ok_or(MetaProblem::Damaged))
    }

    pub fn write(&self, dir: &Path) -> Result<(), PartitionError> {
        let tmp = dir.join(META_TMP);
        write_atomically(dir, &tmp, &dir.join(META_FILE), &self.encode())
    }
}

pub fn io(op: &'static str, path: &Path, source: std::io::Error) -> PartitionError {
    PartitionError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// tmp + fsync + rename + directory fsync.
pub fn write_atomically(
    dir: &Path,
    tmp: &Path,
    path: &Path,
    bytes: &[u8],
) -> Result<(), PartitionError> {
    let mut file = File::create(tmp).map_err(|e| io("create", tmp, e))?;
    file.write_all(bytes).map_err(|e| io("write", tmp, e))?;
    file.sync_all().map_err(|e| io("fsync", tmp, e))?;
    drop(file);
    std::fs::rename(tmp, path).map_err(|e| io("rename", tmp, e))?;
    sync_dir(dir)
}

pub fn sync_dir(dir: &Path) -> Result<(), PartitionError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io("fsync directory", dir, e))
}

pub fn tmp_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_os_string();
    name.push(".tmp");
    PathBuf::from(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meta_round_trips_and_rejects_damage() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(Meta::read(dir.path()).unwrap(), Err(MetaProblem::Missing));
        let meta = Meta {
            log_start_offset: 5,
            recovery_point: 17,
            active_base_offset: 10,
            active_roll_base_ms: 1_000,
        };
        meta.write(dir.path()).unwrap();
        assert_eq!(Meta::read(dir.path()).unwrap(), Ok(meta));
        let path = dir.path().join(META_FILE);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[13] ^= 0x40;
        std::fs::write(&path, &bytes).unwrap();
        assert_eq!(Meta::read(dir.path()).unwrap(), Err(MetaProblem::Damaged));
        std::fs::write(&path, &bytes[..10]).unwrap();
        assert_eq!(Meta::read(dir.path()).unwrap(), Err(MetaProblem::Damaged));
    }
}
