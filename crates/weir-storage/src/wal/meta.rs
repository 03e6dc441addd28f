//! Small WAL metadata files (vote, committed, last purged), each replaced atomically.
//!
//! Owns: the record format and reading it back from untrusted bytes. Writing goes through
//! `Inner::write_meta` (tmp file, fsync, rename, fsync of the directory) so that every fsync
//! passes the log's poison check. Must never: overwrite a metadata file in place (a torn
//! write would lose the vote), or read more than `MAX_META_FILE_BYTES`.
//!
//! Record layout (little-endian):
//! ```text
//! 0 magic u32 = META_MAGIC   4 len u32   8 crc32c u32 (over len and payload)   12 payload…
//! ```

use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use super::entry::{Damage, le_u32, le_u64};
use super::{LogId, WalError};

/// "WMET": tells a metadata file from anything else that landed in the directory.
const META_MAGIC: u32 = 0x5445_4d57;
const META_HEADER_LEN: usize = 12;
/// Largest metadata payload: an openraft vote is tens of bytes; this leaves room for a
/// richer vote while keeping every metadata read small and bounded.
pub const MAX_META_PAYLOAD_BYTES: usize = 4096;
const MAX_META_FILE_BYTES: usize = META_HEADER_LEN + MAX_META_PAYLOAD_BYTES;

pub(super) const VOTE_FILE: &str = "vote.meta";
pub(super) const COMMITTED_FILE: &str = "committed.meta";
pub(super) const PURGED_FILE: &str = "purged.meta";

pub(super) fn encode(payload: &[u8]) -> Vec<u8> {
    assert!(
        payload.len() <= MAX_META_PAYLOAD_BYTES,
        "metadata payload checked by caller"
    );
    let len = payload.len() as u32;
    let crc = crc32c::crc32c_append(crc32c::crc32c(&len.to_le_bytes()), payload);
    let mut out = Vec::with_capacity(META_HEADER_LEN + payload.len());
    out.extend_from_slice(&META_MAGIC.to_le_bytes());
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&crc.to_le_bytes());
    out.extend_from_slice(payload);
    out
}

/// Reads a metadata file: `None` if it does not exist.
pub(super) fn read(dir: &Path, name: &str) -> Result<Option<Vec<u8>>, WalError> {
    let path = dir.join(name);
    let io_err = |op, source| WalError::Io {
        op,
        path: path.clone(),
        source,
    };
    let file = match File::open(&path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_err("open metadata", e)),
    };
    let mut bytes = Vec::new();
    file.take(MAX_META_FILE_BYTES as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| io_err("read metadata", e))?;
    decode(&bytes)
        .map(Some)
        .map_err(|damage| corrupt(&path, damage))
}

fn corrupt(path: &Path, damage: Damage) -> WalError {
    WalError::Corrupt {
        path: PathBuf::from(path),
        position: 0,
        reason: damage,
    }
}

fn decode(bytes: &[u8]) -> Result<Vec<u8>, Damage> {
    let available = bytes.len() as u64;
    if bytes.len() < META_HEADER_LEN {
        return Err(Damage::Truncated {
            needed: META_HEADER_LEN as u64,
            available,
        });
    }
    let magic = le_u32(bytes, 0);
    if magic != META_MAGIC {
        return Err(Damage::MetaMagic { found: magic });
    }
    let len = le_u32(bytes, 4);
    let stored = le_u32(bytes, 8);
    let payload = &bytes[META_HEADER_LEN..];
    if payload.len() as u64 != u64::from(len) {
        return Err(Damage::MetaPayload {
            len: payload.len() as u64,
            expected: u64::from(len),
        });
    }
    let computed = crc32c::crc32c_append(crc32c::crc32c(&len.to_le_bytes()), payload);
    if computed != stored {
        return Err(Damage::Checksum { stored, computed });
    }
    Ok(payload.to_vec())
}

pub(super) fn encode_log_id(id: Option<LogId>) -> Vec<u8> {
    match id {
        None => Vec::new(),
        Some(id) => [id.term.to_le_bytes(), id.index.to_le_bytes()].concat(),
    }
}

pub(super) fn decode_log_id(
    dir: &Path,
    name: &str,
    payload: &[u8],
) -> Result<Option<LogId>, WalError> {
    match payload.len() {
        0 => Ok(None),
        16 => Ok(Some(LogId {
            term: le_u64(payload, 0),
            index: le_u64(payload, 8),
        })),
        len => Err(corrupt(
            &dir.join(name),
            Damage::MetaPayload {
                len: len as u64,
                expected: 16,
            },
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_detects_damage() {
        let bytes = encode(b"vote-bytes");
        assert_eq!(decode(&bytes).unwrap(), b"vote-bytes");
        let mut flipped = bytes.clone();
        flipped[13] ^= 0x40;
        assert!(matches!(decode(&flipped), Err(Damage::Checksum { .. })));
        assert!(matches!(decode(&bytes[..5]), Err(Damage::Truncated { .. })));
        assert!(matches!(
            decode(&bytes[..bytes.len() - 1]),
            Err(Damage::MetaPayload { .. })
        ));
    }
}
