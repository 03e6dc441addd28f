//! The record-batch compression codecs Kafka clients use: gzip, snappy (raw, as librdkafka
//! writes it, and the Java client's xerial framing), lz4 (the LZ4 frame format) and zstd.
//!
//! Decompression is bounded: a batch may not expand past the caller's limit, and a small
//! input cannot make us allocate much more than that limit (declared sizes are checked
//! before allocating, buffers grow only as output actually arrives). This module never
//! does I/O beyond reading from and writing to memory.
//!
//! Format notes, checked against Kafka's sources:
//! - LZ4: since magic 1 (KIP-57) Kafka writes a standard LZ4 frame header checksum; the
//!   old "KafkaLZ4" checksum quirk only concerns magic 0 batches, which weir never stores.
//!   Kafka's Java reader cannot follow linked blocks, so we write independent blocks.
//! - Snappy: the Java producer writes xerial framing; librdkafka writes one raw block.
//!   We decode both and write raw blocks (xerial's reader falls back to raw input).
//! - Gzip may hold several members back to back; zstd several frames, with or without a
//!   declared content size.

use std::io::Read;

use crate::batch::{BatchError, Compression};

/// Output is read in pieces of this size, so the buffer grows with actual output and the
/// limit is checked at least this often.
const READ_CHUNK: usize = 64 * 1024;

/// The largest zstd window we accept (2^27 = 128 MiB): zstd's own default decoding limit.
/// Producers at level ≤ 19 use far smaller windows; the window is allocated from the frame
/// header, so this bounds what a tiny hostile frame can make us reserve.
const ZSTD_WINDOW_LOG_MAX: u32 = 27;

/// Decompresses `input` with `codec`, refusing to produce more than `limit` bytes.
pub fn decompress(codec: Compression, input: &[u8], limit: usize) -> Result<Vec<u8>, BatchError> {
    let fail = |reason: String| BatchError::Decompression { codec, reason };
    match codec {
        Compression::None => {
            if input.len() > limit {
                return Err(BatchError::DecompressedTooLarge { limit });
            }
            Ok(input.to_vec())
        }
        Compression::Gzip => read_bounded(flate2::read::MultiGzDecoder::new(input), limit, codec),
        Compression::Lz4 => decompress_lz4(input, limit),
        Compression::Zstd => {
            let mut decoder =
                zstd::stream::read::Decoder::with_buffer(input).map_err(|e| fail(e.to_string()))?;
            decoder
                .window_log_max(ZSTD_WINDOW_LOG_MAX)
                .map_err(|e| fail(e.to_string()))?;
            read_bounded(decoder, limit, codec)
        }
        Compression::Snappy => decompress_snappy(input, limit),
    }
}

/// Compresses `input` with `codec` (snappy as a raw block, lz4 as a frame of independent
/// blocks, zstd as a frame at level 3, Kafka's default).
pub fn compress(codec: Compression, input: &[u8]) -> Vec<u8> {
    match codec {
        Compression::None => input.to_vec(),
        Compression::Gzip => {
            let mut encoder =
                flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            std::io::Write::write_all(&mut encoder, input).expect("writing to a Vec cannot fail");
            encoder.finish().expect("writing to a Vec cannot fail")
        }
        Compression::Snappy => snap::raw::Encoder::new()
            .compress_vec(input)
            .expect("snappy compresses any input that fits in memory"),
        Compression::Lz4 => {
            let mut encoder = lz4_flex::frame::FrameEncoder::new(Vec::new());
            std::io::Write::write_all(&mut encoder, input).expect("writing to a Vec cannot fail");
            encoder.finish().expect("writing to a Vec cannot fail")
        }
        Compression::Zstd => {
            zstd::stream::encode_all(input, 3).expect("zstd compresses into a Vec without error")
        }
    }
}

/// Reads `reader` to its end into a buffer that never holds more than `limit` bytes plus
/// one chunk, and whose capacity grows no faster than the output.
fn read_bounded(
    reader: impl Read,
    limit: usize,
    codec: Compression,
) -> Result<Vec<u8>, BatchError> {
    let mut out = Vec::new();
    read_bounded_into(reader, &mut out, limit, codec)?;
    Ok(out)
}

fn read_bounded_into(
    mut reader: impl Read,
    out: &mut Vec<u8>,
    limit: usize,
    codec: Compression,
) -> Result<(), BatchError> {
    let mut chunk = vec![0; READ_CHUNK];
    loop {
        let read = match reader.read(&mut chunk) {
            Ok(0) => return Ok(()),
            Ok(read) => read,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                return Err(BatchError::Decompression {
                    codec,
                    reason: e.to_string(),
                });
            }
        };
        if out.len().saturating_add(read) > limit {
            return Err(BatchError::DecompressedTooLarge { limit });
        }
        out.extend_from_slice(chunk.get(..read).unwrap_or_default());
    }
}

/// LZ4 frames back to back (the frame format allows concatenation). The decoder stops at
/// each frame's end mark and reads its input exactly, so the slice tells where the next
/// frame starts. Its buffers are bounded by the frame's declared block size (≤ 4 MiB).
fn decompress_lz4(input: &[u8], limit: usize) -> Result<Vec<u8>, BatchError> {
    let mut rest = input;
    let mut out = Vec::new();
    while !rest.is_empty() {
        let before = rest.len();
        read_bounded_into(
            lz4_flex::frame::FrameDecoder::new(&mut rest),
            &mut out,
            limit,
            Compression::Lz4,
        )?;
        if rest.len() == before {
            return Err(BatchError::Decompression {
                codec: Compression::Lz4,
                reason: "lz4 frame decoder made no progress".to_string(),
            });
        }
    }
    Ok(out)
}

/// The Java client frames snappy data the xerial way: a 16-byte header (magic, version,
/// compatible version) then blocks of `[u32 length][raw snappy block]`.
const XERIAL_MAGIC: &[u8] = b"\x82SNAPPY\0";
const XERIAL_HEADER_LEN: usize = 16;
const XERIAL_BLOCK_LEN_BYTES: usize = 4;

fn decompress_snappy(input: &[u8], limit: usize) -> Result<Vec<u8>, BatchError> {
    let mut out = Vec::new();
    if !input.starts_with(XERIAL_MAGIC) {
        snappy_block(input, &mut out, limit)?;
        return Ok(out);
    }
    let fail = |reason: &str| BatchError::Decompression {
        codec: Compression::Snappy,
        reason: reason.to_string(),
    };
    let mut rest = input
        .get(XERIAL_HEADER_LEN..)
        .ok_or_else(|| fail("truncated xerial header"))?;
    while !rest.is_empty() {
        let (len_bytes, after) = rest
            .split_first_chunk::<XERIAL_BLOCK_LEN_BYTES>()
            .ok_or_else(|| fail("truncated xerial block length"))?;
        let len = usize::try_from(u32::from_be_bytes(*len_bytes))
            .map_err(|_| fail("xerial block length exceeds the address space"))?;
        let block = after
            .get(..len)
            .ok_or_else(|| fail("xerial block exceeds the input"))?;
        snappy_block(block, &mut out, limit)?;
        rest = after.get(len..).unwrap_or_default();
    }
    Ok(out)
}

/// Appends one raw snappy block to `out`. The block declares its decompressed length up
/// front: it is checked against the limit before anything is allocated for it.
fn snappy_block(block: &[u8], out: &mut Vec<u8>, limit: usize) -> Result<(), BatchError> {
    let fail = |e: snap::Error| BatchError::Decompression {
        codec: Compression::Snappy,
        reason: e.to_string(),
    };
    let len = snap::raw::decompress_len(block).map_err(fail)?;
    if out.len().saturating_add(len) > limit {
        return Err(BatchError::DecompressedTooLarge { limit });
    }
    let start = out.len();
    out.resize(start + len, 0);
    let written = snap::raw::Decoder::new()
        .decompress(block, out.get_mut(start..).unwrap_or_default())
        .map_err(fail)?;
    out.truncate(start + written);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_codec_round_trips() {
        let input: Vec<u8> = (0..100_000u32)
            .flat_map(|i| (i % 251).to_be_bytes())
            .collect();
        for codec in Compression::ALL {
            let compressed = compress(codec, &input);
            assert_eq!(
                decompress(codec, &compressed, input.len()),
                Ok(input.clone())
            );
            assert_eq!(
                decompress(codec, &compressed, input.len() - 1),
                Err(BatchError::DecompressedTooLarge {
                    limit: input.len() - 1
                }),
                "{codec:?}"
            );
        }
    }

    fn xerial(blocks: &[&[u8]]) -> Vec<u8> {
        let mut out = XERIAL_MAGIC.to_vec();
        out.extend_from_slice(&1i32.to_be_bytes());
        out.extend_from_slice(&1i32.to_be_bytes());
        for block in blocks {
            let raw = snap::raw::Encoder::new()
                .compress_vec(block)
                .expect("compresses");
            out.extend_from_slice(&(raw.len() as u32).to_be_bytes());
            out.extend_from_slice(&raw);
        }
        out
    }

    #[test]
    fn xerial_snappy_decodes_block_by_block() {
        let framed = xerial(&[b"hello ", b"world"]);
        assert_eq!(
            decompress(Compression::Snappy, &framed, 1 << 10),
            Ok(b"hello world".to_vec())
        );
        assert_eq!(
            decompress(Compression::Snappy, &framed, 10),
            Err(BatchError::DecompressedTooLarge { limit: 10 })
        );
        for cut in 1..framed.len() {
            // Cuts at block boundaries are valid shorter streams; others must be refused.
            let _ = decompress(Compression::Snappy, &framed[..cut], 1 << 10);
        }
        assert!(decompress(Compression::Snappy, &framed[..12], 1 << 10).is_err());
        assert!(decompress(Compression::Snappy, &framed[..framed.len() - 1], 1 << 10).is_err());
    }

    #[test]
    fn snappy_declared_length_is_checked_before_allocating() {
        // A 5-byte varint declaring ~4 GiB of output, then nothing.
        let lying = [0xff, 0xff, 0xff, 0xff, 0x0f];
        assert_eq!(
            decompress(Compression::Snappy, &lying, 1 << 20),
            Err(BatchError::DecompressedTooLarge { limit: 1 << 20 })
        );
    }

    #[test]
    fn concatenated_gzip_members_and_zstd_frames_decode() {
        for codec in [Compression::Gzip, Compression::Zstd, Compression::Lz4] {
            let mut two = compress(codec, b"abc");
            two.extend_from_slice(&compress(codec, b"def"));
            assert_eq!(
                decompress(codec, &two, 100),
                Ok(b"abcdef".to_vec()),
                "{codec:?}"
            );
        }
    }
}
