"""Writes RecordBatch fixtures with kafka-python's own encoder (an independent implementation
of the Kafka v2 format), one file per codec variant. See README.md beside this file.

    python3 -m venv /tmp/kp && /tmp/kp/bin/pip install kafka-python==3.0.12 \
        python-snappy==0.7.3 lz4==4.4.5 zstandard==0.25.0 crc32c==2.9.post0
    /tmp/kp/bin/python make_fixtures.py

The expected records follow the formula in `expected()`, mirrored by
tests/batch_fixtures.rs.
"""
import functools
import os

import zstandard
import kafka.codec
import kafka.record.default_records as dr

HERE = os.path.dirname(os.path.abspath(__file__))
RECORDS = 25
BASE_TS = 1_700_000_000_000


def expected(i):
    ts = BASE_TS + 13 * i - (300 if i % 4 == 1 else 0)  # some deltas are negative
    key = None if i % 3 == 2 else b"key-%d" % i
    value = None if i % 5 == 4 else (b"value-%d;" % i) * (i + 1)
    if i % 2 == 0:
        headers = []
    else:
        # repeated key, null value, a RocketMQ tag, a non-ASCII key, an empty value
        headers = [("h", b"x%d" % i), ("h", None), ("TAGS", b"TagA"), ("\u00e9", b"")]
    return ts, key, value, headers


def build(codec, transactional=False, producer=(-1, -1, -1)):
    builder = dr.DefaultRecordBatchBuilder(
        magic=2, compression_type=codec, is_transactional=transactional,
        producer_id=producer[0], producer_epoch=producer[1], base_sequence=producer[2],
        batch_size=1 << 20)
    for i in range(RECORDS):
        ts, key, value, headers = expected(i)
        assert builder.append(i, timestamp=ts, key=key, value=value, headers=headers) is not None
    out = bytes(builder.build())
    attributes = int.from_bytes(out[21:23], "big")
    assert attributes & 7 == codec, (codec, attributes)
    return out


def write(name, data):
    with open(os.path.join(HERE, name), "wb") as f:
        f.write(data)


NONE, GZIP, SNAPPY, LZ4, ZSTD = 0, 1, 2, 3, 4

write("kafka_python_none.bin", build(NONE))
write("kafka_python_gzip.bin", build(GZIP))
write("kafka_python_snappy_xerial.bin", build(SNAPPY))  # the Java producer's framing
write("kafka_python_lz4.bin", build(LZ4))
write("kafka_python_zstd.bin", build(ZSTD))  # one-shot: frame declares its content size
write("kafka_python_idempotent_txn.bin",
      build(GZIP, transactional=True, producer=(1234, 5, 17)))

# librdkafka's snappy: one raw block, no xerial framing.
dr.snappy_encode = functools.partial(kafka.codec.snappy_encode, xerial_compatible=False)
write("kafka_python_snappy_raw.bin", build(SNAPPY))
# A streaming zstd producer (the Java client's ZstdOutputStream): no content size, and
# xerial snappy with small blocks so the payload spans several blocks.
dr.zstd_encode = lambda data: zstandard.ZstdCompressor(write_content_size=False).compress(data)
write("kafka_python_zstd_no_content_size.bin", build(ZSTD))
dr.snappy_encode = functools.partial(kafka.codec.snappy_encode, xerial_blocksize=1024)
write("kafka_python_snappy_xerial_blocks.bin", build(SNAPPY))
