//! The on-disk entry format of WAL segments and a bounded, chunked scanner over it.
//!
//! Owns: encoding one entry, and reading entries back from an untrusted file range with
//! every length checked against the bytes present and `max_entry_bytes` before a buffer
//! grows for it. Must never: trust a length field, allocate per entry, or issue a read
//! syscall per entry (recovery scans hundreds of MB; it reads in `SCAN_CHUNK_BYTES` chunks).
//!
//! Entry layout (little-endian):
//! ```text
//! 0 len u32 (payload bytes)   4 crc32c u32   8 term u64   16 index u64   24 payload…
//! ```
//! The CRC-32C covers `len`, `term`, `index` and the payload, so a damaged length field is
//! caught by the checksum as well as by the bounds checks.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

/// Bytes before an entry's payload.
pub(super) const ENTRY_HEADER_LEN: usize = 24;
/// Read granularity while scanning: large enough that recovery is one syscall per MiB,
/// small enough to keep a scanner's memory flat (it grows only for a larger entry).
pub(super) const SCAN_CHUNK_BYTES: usize = 1 << 20;
/// Smallest read chunk: a small read still fetches a few pages at once.
pub(super) const MIN_CHUNK_BYTES: usize = 16 << 10;

/// Why bytes on disk are not a valid entry or metadata record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Damage {
    #[error("record needs {needed} bytes, only {available} remain")]
    Truncated { needed: u64, available: u64 },
    #[error("entry length {len} exceeds the limit of {max} bytes")]
    TooLong { len: u32, max: u32 },
    #[error("checksum mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    Checksum { stored: u32, computed: u32 },
    #[error("entry index {got} where index {expected} was expected")]
    IndexGap { expected: u64, got: u64 },
    #[error("segment before the last holds no entries")]
    EmptySegment,
    #[error("metadata magic {found:#010x} is not weir's")]
    MetaMagic { found: u32 },
    #[error("metadata payload of {len} bytes where {expected} were expected")]
    MetaPayload { len: u64, expected: u64 },
}

/// One entry as read, borrowing the scanner's buffer.
#[derive(Debug, Clone, Copy)]
pub(super) struct Scanned<'a> {
    pub term: u64,
    pub index: u64,
    pub payload: &'a [u8],
}

#[derive(Debug)]
pub(super) enum ScanError {
    Io(io::Error),
    Damaged { position: u64, damage: Damage },
}

pub(super) fn entry_crc(len: u32, term: u64, index: u64, payload: &[u8]) -> u32 {
    let crc = crc32c::crc32c(&len.to_le_bytes());
    let crc = crc32c::crc32c_append(crc, &term.to_le_bytes());
    let crc = crc32c::crc32c_append(crc, &index.to_le_bytes());
    crc32c::crc32c_append(crc, payload)
}

/// Appends one encoded entry to `out`. The caller has checked the payload against
/// `max_entry_bytes`, which is a `u32`.
pub(super) fn encode_entry(out: &mut Vec<u8>, term: u64, index: u64, payload: &[u8]) {
    let len = u32::try_from(payload.len())
        .expect("payload length was checked against max_entry_bytes, a u32");
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&entry_crc(len, term, index, payload).to_le_bytes());
    out.extend_from_slice(&term.to_le_bytes());
    out.extend_from_slice(&index.to_le_bytes());
    out.extend_from_slice(payload);
}

pub(super) fn encoded_len(payload_len: usize) -> u64 {
    (ENTRY_HEADER_LEN + payload_len) as u64
}

pub(super) fn le_u32(bytes: &[u8], at: usize) -> u32 {
    let field: [u8; 4] = bytes
        .get(at..at + 4)
        .and_then(|b| b.try_into().ok())
        .expect("caller checked the slice holds the whole header");
    u32::from_le_bytes(field)
}

pub(super) fn le_u64(bytes: &[u8], at: usize) -> u64 {
    let field: [u8; 8] = bytes
        .get(at..at + 8)
        .and_then(|b| b.try_into().ok())
        .expect("caller checked the slice holds the whole header");
    u64::from_le_bytes(field)
}

/// Reads entries from `[start, end)` of a file, in large chunks.
pub(super) struct Scanner<'f> {
    file: &'f File,
    position: u64,
    end: u64,
    max_entry_bytes: u32,
    /// Capacity reused across refills; only `buf[..buf_len]` holds file bytes.
    buf: Vec<u8>,
    buf_len: usize,
    buf_start: u64,
    chunk_bytes: usize,
}

impl<'f> Scanner<'f> {
    pub(super) fn new(file: &'f File, start: u64, end: u64, max_entry_bytes: u32) -> Self {
        Scanner {
            file,
            position: start,
            end,
            max_entry_bytes,
            buf: Vec::new(),
            buf_len: 0,
            buf_start: start,
            chunk_bytes: SCAN_CHUNK_BYTES,
        }
    }

    /// Reads in chunks of `chunk_bytes` (clamped to `[MIN_CHUNK_BYTES, SCAN_CHUNK_BYTES]`):
    /// a read of a few small entries need not fetch a whole MiB.
    pub(super) fn with_chunk_bytes(mut self, chunk_bytes: usize) -> Self {
        self.chunk_bytes = chunk_bytes.clamp(MIN_CHUNK_BYTES, SCAN_CHUNK_BYTES);
        self
    }

    /// Where the next entry starts (after an error: where the damaged entry starts).
    pub(super) fn position(&self) -> u64 {
        self.position
    }

    /// The next entry, `None` at `end`, or why the bytes at `position()` are not an entry.
    pub(super) fn next_entry(&mut self) -> Result<Option<Scanned<'_>>, ScanError> {
        let position = self.position;
        if position >= self.end {
            return Ok(None);
        }
        let available = self.end - position;
        let damaged = |damage| ScanError::Damaged { position, damage };
        if available < ENTRY_HEADER_LEN as u64 {
            return Err(damaged(Damage::Truncated {
                needed: ENTRY_HEADER_LEN as u64,
                available,
            }));
        }
        let header = self
            .fill(position, ENTRY_HEADER_LEN)
            .map_err(ScanError::Io)?;
        let len = le_u32(header, 0);
        let stored = le_u32(header, 4);
        let term = le_u64(header, 8);
        let index = le_u64(header, 16);
        if len > self.max_entry_bytes {
            return Err(damaged(Damage::TooLong {
                len,
                max: self.max_entry_bytes,
            }));
        }
        let total = encoded_len(len as usize);
        if available < total {
            return Err(damaged(Damage::Truncated {
                needed: total,
                available,
            }));
        }
        // `total` <= ENTRY_HEADER_LEN + max_entry_bytes and <= the bytes in the file.
        let entry = self.fill(position, total as usize).map_err(ScanError::Io)?;
        let payload = entry
            .get(ENTRY_HEADER_LEN..)
            .expect("fill returned `total` bytes");
        let computed = entry_crc(len, term, index, payload);
        if computed != stored {
            return Err(damaged(Damage::Checksum { stored, computed }));
        }
        self.position = position + total;
        let offset = (position - self.buf_start) as usize + ENTRY_HEADER_LEN;
        let payload = self
            .buf
            .get(offset..offset + len as usize)
            .expect("entry is in the buffer");
        Ok(Some(Scanned {
            term,
            index,
            payload,
        }))
    }

    /// Makes the buffer hold `[position, position + n)`; `n` is within `end`.
    fn fill(&mut self, position: u64, n: usize) -> io::Result<&[u8]> {
        let buf_end = self.buf_start + self.buf_len as u64;
        if position < self.buf_start || position + n as u64 > buf_end {
            let remaining = usize::try_from(self.end - position).unwrap_or(usize::MAX);
            let want = n.max(self.chunk_bytes).min(remaining);
            if self.buf.len() < want {
                // Grows only to max(chunk, one entry), both bounded; zeroed once, not per refill.
                self.buf.resize(want, 0);
            }
            self.buf_len = 0;
            let target = self
                .buf
                .get_mut(..want)
                .expect("buffer was grown to `want`");
            self.file.read_exact_at(target, position)?;
            self.buf_len = want;
            self.buf_start = position;
        }
        let offset = (position - self.buf_start) as usize;
        let filled = self
            .buf
            .get(..self.buf_len)
            .expect("buf_len is within the buffer");
        Ok(filled
            .get(offset..offset + n)
            .expect("buffer covers the requested range"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn file_with(bytes: &[u8]) -> File {
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(bytes).unwrap();
        file
    }

    #[test]
    fn scans_entries_back_and_stops_at_a_torn_tail() {
        let mut bytes = Vec::new();
        encode_entry(&mut bytes, 1, 7, b"hello");
        encode_entry(&mut bytes, 2, 8, &[9u8; 3000]);
        let whole = bytes.len() as u64;
        bytes.extend_from_slice(&[0xff; 10]);
        let file = file_with(&bytes);
        let mut scanner = Scanner::new(&file, 0, bytes.len() as u64, 1 << 20);
        let first = scanner.next_entry().unwrap().unwrap();
        assert_eq!(
            (first.term, first.index, first.payload),
            (1, 7, &b"hello"[..])
        );
        let second = scanner.next_entry().unwrap().unwrap();
        assert_eq!((second.index, second.payload.len()), (8, 3000));
        match scanner.next_entry() {
            Err(ScanError::Damaged {
                position,
                damage: Damage::Truncated { .. },
            }) => {
                assert_eq!(position, whole)
            }
            other => panic!("expected a torn tail, got {other:?}"),
        }
    }

    #[test]
    fn a_huge_length_is_refused_before_allocating() {
        let mut bytes = Vec::new();
        encode_entry(&mut bytes, 1, 1, b"x");
        bytes[0..4].copy_from_slice(&u32::MAX.to_le_bytes());
        let file = file_with(&bytes);
        let mut scanner = Scanner::new(&file, 0, bytes.len() as u64, 1024);
        assert!(matches!(
            scanner.next_entry(),
            Err(ScanError::Damaged {
                position: 0,
                damage: Damage::TooLong {
                    len: u32::MAX,
                    max: 1024
                }
            })
        ));
    }

    #[test]
    fn a_flipped_payload_byte_fails_the_checksum() {
        let mut bytes = Vec::new();
        encode_entry(&mut bytes, 3, 4, b"payload");
        let last = bytes.len() - 1;
        bytes[last] ^= 0x01;
        let file = file_with(&bytes);
        let mut scanner = Scanner::new(&file, 0, bytes.len() as u64, 1024);
        assert!(matches!(
            scanner.next_entry(),
            Err(ScanError::Damaged {
                damage: Damage::Checksum { .. },
                ..
            })
        ));
    }
}
