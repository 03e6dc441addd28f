// kafkajs 2.2.4 against weir. kafkajs speaks no flexible versions and uses min(its max,
// broker max) for each API without checking the broker's minimum, so these tests catch a
// broker range that does not reach kafkajs's maxima (Produce v7, Fetch v11, Metadata v6,
// ListOffsets v3, CreateTopics v3).
//
// This file checks produce, admin createTopics and fetchTopicOffsets (ListOffsets).
// kafkajs consumes only through a consumer group (consumer.run joins one): consumption,
// commits and group admin are in groups.test.js.
'use strict';

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { Kafka, logLevel } = require('kafkajs');
const { startWeir } = require('./weir.js');

// A hung request fails its test instead of stalling CI (a healthy run takes ~100 ms per
// test). Set per test: `node --test-timeout` is missing from older node releases.
const TEST_TIMEOUT_MS = 60000;

let weir;
let kafka;

before(async () => {
  weir = await startWeir();
  kafka = new Kafka({
    clientId: 'weir-client-tests',
    brokers: [weir.bootstrap],
    logLevel: logLevel.NOTHING,
    // A healthy local broker answers in milliseconds; fail fast instead of retrying for minutes.
    retry: { retries: 3, initialRetryTime: 100 },
    requestTimeout: 10000,
  });
});

after(async () => {
  if (weir) await weir.stop();
});

test('admin createTopics, then metadata shows its partitions', { timeout: TEST_TIMEOUT_MS }, async () => {
  const admin = kafka.admin();
  await admin.connect();
  try {
    const created = await admin.createTopics({
      topics: [{ topic: 'kafkajs-admin', numPartitions: 3, configEntries: [{ name: 'retention.ms', value: '60000' }] }],
      waitForLeaders: true,
    });
    assert.equal(created, true);
    // Creating it again answers TOPIC_ALREADY_EXISTS, which kafkajs reports as `false`.
    const again = await admin.createTopics({ topics: [{ topic: 'kafkajs-admin', numPartitions: 3 }] });
    assert.equal(again, false);
    const { topics } = await admin.fetchTopicMetadata({ topics: ['kafkajs-admin'] });
    assert.deepEqual(topics[0].partitions.map((p) => p.partitionId).sort(), [0, 1, 2]);
    assert.ok((await admin.listTopics()).includes('kafkajs-admin'));
  } finally {
    await admin.disconnect();
  }
});

test('produce with acks=all, then fetchTopicOffsets and offsets by timestamp', { timeout: TEST_TIMEOUT_MS }, async () => {
  const admin = kafka.admin();
  const producer = kafka.producer({ allowAutoTopicCreation: false });
  await admin.connect();
  await producer.connect();
  try {
    await admin.createTopics({ topics: [{ topic: 'kafkajs-produce', numPartitions: 2 }], waitForLeaders: true });
    const base = 1_700_000_000_000;
    const messages = Array.from({ length: 30 }, (_, i) => ({
      key: `k${i}`,
      value: `v${i}`,
      partition: i % 2,
      timestamp: String(base + i * 10),
      headers: { source: 'kafkajs' },
    }));
    const result = await producer.send({ topic: 'kafkajs-produce', acks: -1, messages });
    // One entry per partition, each with the base offset of its batch and no error.
    assert.deepEqual(
      result.map((r) => [r.partition, r.errorCode, r.baseOffset]).sort(),
      [[0, 0, '0'], [1, 0, '0']],
    );
    const second = await producer.send({ topic: 'kafkajs-produce', messages: [{ value: 'more', partition: 0 }] });
    assert.equal(second[0].baseOffset, '15');

    const offsets = await admin.fetchTopicOffsets('kafkajs-produce');
    const byPartition = Object.fromEntries(offsets.map((o) => [o.partition, [o.low, o.high]]));
    assert.deepEqual(byPartition, { 0: ['0', '16'], 1: ['0', '15'] });

    // Partition 1 holds timestamps base+10, base+30, ...: the first at or after base+35 is
    // base+50, the third record (offset 2).
    const byTime = await admin.fetchTopicOffsetsByTimestamp('kafkajs-produce', base + 35);
    const p1 = byTime.find((o) => o.partition === 1);
    assert.equal(p1.offset, '2');
  } finally {
    await producer.disconnect();
    await admin.disconnect();
  }
});

test('producer auto-creates a topic with the default partition count', { timeout: TEST_TIMEOUT_MS }, async () => {
  const producer = kafka.producer({ allowAutoTopicCreation: true });
  const admin = kafka.admin();
  await producer.connect();
  await admin.connect();
  try {
    const result = await producer.send({ topic: 'kafkajs-auto', messages: [{ key: 'a', value: 'b' }] });
    assert.equal(result[0].errorCode, 0);
    const { topics } = await admin.fetchTopicMetadata({ topics: ['kafkajs-auto'] });
    assert.equal(topics[0].partitions.length, 4);
  } finally {
    await producer.disconnect();
    await admin.disconnect();
  }
});
