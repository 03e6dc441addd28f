//! The record-batch compression codecs Kafka clients use: gzip, snappy (raw and the Java
//! client's xerial framing), lz4 (frame format) and zstd. Decompression is bounded: a
//! batch may not expand past the caller's limit.

use std::io::Read;

use crate::batch::{BatchError, Compression};

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
        Compression::Gzip => read_bounded(flate2::read::GzDecoder::new(input), limit, codec),
        Compression::Lz4 => read_bounded(lz4_flex::frame::FrameDecoder::new(input), limit, codec),
        Compression::Zstd => {
            let decoder =
                zstd::stream::read::Decoder::new(input).map_err(|e| fail(e.to_string()))?;
            read_bounded(decoder, limit, codec)
        }
        Compression::Snappy => decompress_snappy(input, limit),
    }
}

/// Compresses `input` with `codec` (snappy as a raw block, lz4 as a frame).
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

fn read_bounded(
    reader: impl Read,
    limit: usize,
    codec: Compression,
) -> Result<Vec<u8>, BatchError> {
    let mut out = Vec::new();
    let read = reader
        .take(limit as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| BatchError::Decompression {
            codec,
            reason: e.to_string(),
        })?;
    if read > limit {
        return Err(BatchError::DecompressedTooLarge { limit });
    }
    Ok(out)
}

/// The Java client frames snappy data the xerial way: a 16-byte header (magic, version,
/// compatible version) then blocks of `[u32 length][raw snappy block]`.
const XERIAL_MAGIC: &[u8] = b"\x82SNAPPY\0";
const XERIAL_HEADER_LEN: usize = 16;

fn decompress_snappy(input: &[u8], limit: usize) -> Result<Vec<u8>, BatchError> {
    let codec = Compression::Snappy;
    let fail = |reason: String| BatchError::Decompression { codec, reason };
    let raw_block = |block: &[u8], out: &mut Vec<u8>| -> Result<(), BatchError> {
        let len = snap::raw::decompress_len(block).map_err(|e| fail(e.to_string()))?;
        if out.len().saturating_add(len) > limit {
            return Err(BatchError::DecompressedTooLarge { limit });
        }
        let start = out.len();
        out.resize(start + len, 0);
        snap::raw::Decoder::new()
            .decompress(block, &mut out[start..])
            .map_err(|e| fail(e.to_string()))?;
        Ok(())
    };
    let mut out = Vec::new();
    if !input.starts_with(XERIAL_MAGIC) {
        raw_block(input, &mut out)?;
        return Ok(out);
    }
    if input.len() < XERIAL_HEADER_LEN {
        return Err(fail("truncated xerial header".to_string()));
    }
    let mut pos = XERIAL_HEADER_LEN;
    while pos < input.len() {
        let len_bytes: [u8; 4] = input
            .get(pos..pos + 4)
            .and_then(|s| s.try_into().ok())
            .ok_or_else(|| fail("truncated xerial block length".to_string()))?;
        let len = u32::from_be_bytes(len_bytes) as usize;
        pos += 4;
        let block = input
            .get(pos..pos.saturating_add(len))
            .ok_or_else(|| fail("xerial block exceeds the input".to_string()))?;
        raw_block(block, &mut out)?;
        pos += len;
    }
    Ok(out)
}
