//! Decompression bombs: 1 GiB of zeros compressed with each codec, inside batches with a
//! valid CRC, must be refused with `DecompressedTooLarge` quickly and without allocating
//! anything near 1 GiB. One test in this binary, so the peak RSS read from /proc is ours.

use std::io::Write;
use std::time::{Duration, Instant};

use weir_storage::batch::{BatchBuilder, BatchError, Compression, HEADER_LEN, validate_batches};

const GIB: usize = 1 << 30;
const MIB: usize = 1 << 20;
const LIMIT: usize = MIB;

/// A one-record batch header around `body`, with codec bits, length and CRC made to fit.
fn batch_around(codec: Compression, body: &[u8]) -> Vec<u8> {
    let mut builder = BatchBuilder::new(0, 0);
    builder.push(0, None, Some(b"x"), &[]);
    let mut batch = builder.build()[..HEADER_LEN].to_vec();
    batch.extend_from_slice(body);
    let length = (batch.len() - 12) as i32;
    batch[8..12].copy_from_slice(&length.to_be_bytes());
    let attributes = (i16::from_be_bytes([batch[21], batch[22]]) & !7) | codec.attribute_bits();
    batch[21..23].copy_from_slice(&attributes.to_be_bytes());
    let crc = crc32c::crc32c(&batch[21..]);
    batch[17..21].copy_from_slice(&crc.to_be_bytes());
    batch
}

fn zstd_bomb() -> Vec<u8> {
    let mut encoder = zstd::stream::write::Encoder::new(Vec::new(), 1).expect("encoder");
    let zeros = vec![0; MIB];
    for _ in 0..GIB / MIB {
        encoder.write_all(&zeros).expect("in memory");
    }
    encoder.finish().expect("in memory")
}

/// 1024 gzip members of 1 MiB of zeros each (a reader must follow members, as Java's
/// GZIPInputStream does).
fn gzip_bomb() -> Vec<u8> {
    let member = weir_storage::compression::compress(Compression::Gzip, &vec![0; MIB]);
    member.repeat(GIB / MIB)
}

/// One LZ4 frame whose 256 independent blocks each hold 4 MiB of zeros.
fn lz4_bomb() -> Vec<u8> {
    let mut info = lz4_flex::frame::FrameInfo::new();
    info.block_size = lz4_flex::frame::BlockSize::Max4MB;
    info.content_checksum = false;
    let mut encoder = lz4_flex::frame::FrameEncoder::with_frame_info(info, Vec::new());
    encoder.write_all(&vec![0; 4 * MIB]).expect("in memory");
    let frame = encoder.finish().expect("in memory");
    // 7-byte header (magic, FLG, BD, HC), one block, 4-byte end mark.
    let (header, rest) = frame.split_at(7);
    let block = &rest[..rest.len() - 4];
    assert_eq!(
        &rest[rest.len() - 4..],
        &[0; 4],
        "frame ends with its end mark"
    );
    let mut bomb = header.to_vec();
    for _ in 0..GIB / (4 * MIB) {
        bomb.extend_from_slice(block);
    }
    bomb.extend_from_slice(&[0; 4]);
    bomb
}

/// Xerial framing (the Java producer's) with 1024 blocks of 1 MiB of zeros.
fn snappy_xerial_bomb() -> Vec<u8> {
    let block = snap::raw::Encoder::new()
        .compress_vec(&vec![0; MIB])
        .expect("compresses");
    let mut bomb = b"\x82SNAPPY\0".to_vec();
    bomb.extend_from_slice(&1i32.to_be_bytes());
    bomb.extend_from_slice(&1i32.to_be_bytes());
    for _ in 0..GIB / MIB {
        bomb.extend_from_slice(&(block.len() as u32).to_be_bytes());
        bomb.extend_from_slice(&block);
    }
    bomb
}

/// A raw snappy block declaring ~4 GiB of output.
fn snappy_raw_lie() -> Vec<u8> {
    let mut bomb = vec![0xff, 0xff, 0xff, 0xff, 0x0f];
    bomb.extend_from_slice(&[0; 64]);
    bomb
}

fn peak_rss_bytes() -> Option<usize> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: usize = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

#[test]
fn bombs_are_refused_quickly_without_allocating_their_size() {
    let bombs: [(&str, Compression, Vec<u8>); 5] = [
        ("zstd", Compression::Zstd, zstd_bomb()),
        ("gzip", Compression::Gzip, gzip_bomb()),
        ("lz4", Compression::Lz4, lz4_bomb()),
        ("snappy xerial", Compression::Snappy, snappy_xerial_bomb()),
        ("snappy raw", Compression::Snappy, snappy_raw_lie()),
    ];
    for (name, codec, bomb) in bombs {
        // Snappy's best ratio is about 21:1, the others' far better.
        assert!(
            bomb.len() < GIB / 20,
            "{name} bomb is small: {}",
            bomb.len()
        );
        let batch = batch_around(codec, &bomb);
        let started = Instant::now();
        let result = validate_batches(&batch, LIMIT);
        let elapsed = started.elapsed();
        assert_eq!(
            result,
            Err(BatchError::DecompressedTooLarge { limit: LIMIT }),
            "{name}"
        );
        assert!(elapsed < Duration::from_secs(2), "{name} took {elapsed:?}");
    }
    if let Some(peak) = peak_rss_bytes() {
        // Building the bombs takes ~100 MiB (snappy's); decoding 1 GiB would show here.
        eprintln!("peak RSS {} MiB", peak / MIB);
        assert!(peak < 256 * MIB, "peak RSS {} MiB", peak / MIB);
    }
}
