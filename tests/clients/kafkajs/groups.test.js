// kafkajs 2.2.4 consumer groups against weir (classic protocol: JoinGroup v5, SyncGroup v3,
// Heartbeat v3, OffsetCommit v5, OffsetFetch v4, non-flexible): subscribe + run, commit,
// a second run of the group resumes from the commit; two members split the partitions;
// admin listGroups / describeGroups / fetchOffsets / setOffsets / deleteGroups.
//
// Sizes: a 3-partition topic, 300 records then 99 more; one or two members. The broker
// runs with an initial rebalance delay of 0 (WEIR_GROUP_INITIAL_REBALANCE_DELAY_MS) so a
// join takes milliseconds; a few seconds per test.
'use strict';

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { Kafka, logLevel } = require('kafkajs');
const { startWeir } = require('./weir.js');

const TEST_TIMEOUT_MS = 90000;
// How long a group may take to join and deliver what was asked for.
const WAIT_MS = 30000;
const PARTITIONS = 3;

let weir;
let kafka;

before(async () => {
  // startWeir passes the environment on to `weir serve`.
  process.env.WEIR_GROUP_INITIAL_REBALANCE_DELAY_MS = '0';
  weir = await startWeir();
  kafka = new Kafka({
    clientId: 'weir-kafkajs-groups',
    brokers: [weir.bootstrap],
    // KJS_LOG=1 shows kafkajs's own log when a test needs looking into.
    logLevel: process.env.KJS_LOG ? logLevel.INFO : logLevel.NOTHING,
    retry: { retries: 5, initialRetryTime: 100 },
    requestTimeout: 10000,
  });
});

after(async () => {
  if (weir) await weir.stop();
});

async function createTopic(topic) {
  const admin = kafka.admin();
  await admin.connect();
  try {
    assert.equal(await admin.createTopics({ topics: [{ topic, numPartitions: PARTITIONS }], waitForLeaders: true }), true);
  } finally {
    await admin.disconnect();
  }
}

async function produce(topic, values) {
  const producer = kafka.producer();
  await producer.connect();
  try {
    await producer.send({
      topic,
      acks: -1,
      messages: values.map((v, i) => ({ key: v, value: v, partition: i % PARTITIONS })),
    });
  } finally {
    await producer.disconnect();
  }
}

// Resolves when `cond()` holds, polling every 20 ms; rejects after `ms` with `what`.
async function waitFor(what, cond, ms = WAIT_MS) {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function waitForAsync(what, cond, ms = WAIT_MS) {
  const deadline = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

// A group member that records every message and commits, on demand, the next offset of
// each partition it consumed.
async function member(topic, groupId) {
  // A short fetch wait: disconnect() waits for the fetch in flight.
  const consumer = kafka.consumer({
    groupId,
    sessionTimeout: 10000,
    heartbeatInterval: 500,
    rebalanceTimeout: 10000,
    maxWaitTimeInMs: 200,
  });
  const got = [];
  const next = new Map();
  let assigned = [];
  consumer.on(consumer.events.GROUP_JOIN, (e) => {
    assigned = (e.payload.memberAssignment[topic] || []).slice().sort();
  });
  await consumer.connect();
  await consumer.subscribe({ topics: [topic], fromBeginning: true });
  await consumer.run({
    autoCommit: false,
    eachMessage: async ({ partition, message }) => {
      got.push({ partition, offset: Number(message.offset), value: message.value.toString() });
      next.set(partition, Number(message.offset) + 1);
    },
  });
  return {
    consumer,
    got,
    assigned: () => assigned,
    // Only the partitions it holds now: another member may have taken one over and moved on.
    async commit() {
      const offsets = [...next]
        .filter(([partition]) => assigned.includes(partition))
        .map(([partition, offset]) => ({ topic, partition, offset: String(offset) }));
      await consumer.commitOffsets(offsets);
      return offsets;
    },
  };
}

test('a group consumes, commits, and a second run resumes from the commit', { timeout: TEST_TIMEOUT_MS }, async () => {
  const topic = 'kafkajs-group-resume';
  const groupId = 'kafkajs-resume';
  await createTopic(topic);
  const first = Array.from({ length: 300 }, (_, i) => `a${i}`);
  await produce(topic, first);

  const one = await member(topic, groupId);
  try {
    await waitFor('300 records', () => one.got.length >= 300);
    assert.deepEqual(one.assigned(), [0, 1, 2]);
    assert.deepEqual(one.got.map((m) => m.value).sort(), first.slice().sort());
    await one.commit();
  } finally {
    await one.consumer.disconnect();
  }

  const admin = kafka.admin();
  await admin.connect();
  try {
    const [offsets] = await admin.fetchOffsets({ groupId, topics: [topic] });
    assert.deepEqual(
      offsets.partitions.map((p) => [p.partition, p.offset]).sort(),
      [[0, '100'], [1, '100'], [2, '100']],
    );
  } finally {
    await admin.disconnect();
  }

  const second = Array.from({ length: 99 }, (_, i) => `b${i}`);
  await produce(topic, second);
  const two = await member(topic, groupId);
  try {
    await waitFor('99 new records', () => two.got.length >= 99);
    // Nothing from before the commit comes again.
    assert.deepEqual(two.got.map((m) => m.value).sort(), second.slice().sort());
    assert.ok(two.got.every((m) => m.offset >= 100), JSON.stringify(two.got.filter((m) => m.offset < 100)));
    await two.commit();
  } finally {
    await two.consumer.disconnect();
  }
});

test('two members split the partitions; admin lists, describes, sets offsets and deletes the group', { timeout: TEST_TIMEOUT_MS }, async () => {
  const topic = 'kafkajs-group-admin';
  const groupId = 'kafkajs-admin';
  await createTopic(topic);
  // Records are produced once the two members hold their partitions, so that each record
  // is consumed (and committed) by the member that keeps its partition.
  const a = await member(topic, groupId);
  const b = await member(topic, groupId);
  const admin = kafka.admin();
  await admin.connect();
  try {
    const split = () => {
      const x = a.assigned();
      const y = b.assigned();
      return x.length > 0 && y.length > 0 && [...x, ...y].sort().join() === '0,1,2';
    };
    await waitFor('both members to hold partitions, each partition once', split);
    await produce(topic, Array.from({ length: 60 }, (_, i) => `v${i}`));
    await waitFor('all 60 records', () => new Set([...a.got, ...b.got].map((m) => `${m.partition}:${m.offset}`)).size >= 60);
    await a.commit();
    await b.commit();

    const { groups } = await admin.listGroups();
    assert.ok(groups.some((g) => g.groupId === groupId && g.protocolType === 'consumer'), JSON.stringify(groups));
    const described = await admin.describeGroups([groupId]);
    const [group] = described.groups;
    assert.equal(group.state, 'Stable');
    assert.equal(group.protocolType, 'consumer');
    assert.equal(group.members.length, 2);
    const [offsets] = await admin.fetchOffsets({ groupId, topics: [topic] });
    assert.deepEqual(offsets.partitions.map((p) => [p.partition, p.offset]).sort(), [[0, '20'], [1, '20'], [2, '20']]);
    // A group with members cannot be deleted.
    await assert.rejects(admin.deleteGroups([groupId]));
  } finally {
    await a.consumer.disconnect();
    await b.consumer.disconnect();
  }
  try {
    // Once empty, an admin may set its offsets (kafkajs joins the group with a consumer
    // of its own, pauses it and commits).
    // Both members left (LeaveGroup on disconnect): the group empties without waiting
    // for their sessions to expire.
    let state;
    await waitForAsync('the group to be empty', async () => {
      state = (await admin.describeGroups([groupId])).groups[0].state;
      return state === 'Empty';
    }, 5000);
    await admin.setOffsets({ groupId, topic, partitions: [{ partition: 1, offset: '5' }] });
    const [offsets] = await admin.fetchOffsets({ groupId, topics: [topic] });
    assert.equal(offsets.partitions.find((p) => p.partition === 1).offset, '5');
    const deleted = await admin.deleteGroups([groupId]);
    assert.equal(deleted[0].errorCode, 0);
    const { groups } = await admin.listGroups();
    assert.ok(!groups.some((g) => g.groupId === groupId), JSON.stringify(groups));
  } finally {
    await admin.disconnect();
  }
});
