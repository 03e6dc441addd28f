"""One confluent-kafka group member in its own process, so a test can SIGKILL it.

Run as a script, it subscribes to one topic in one group and loops: consume a batch,
"process" it (append one line per record to its output file, flushed), then commit the
next offset of every partition in the batch synchronously. So a commit never covers a
record that was not processed first (at-least-once), and a member that only leaves
cleanly (SIGTERM: it finishes the batch, commits, then close()) processes each record
once. Group events go to stdout as JSON lines (`assign`, `revoke`, `lost`, `error`,
`commit_failed`, `closed`) with a monotonic timestamp.

A commit that fails is retried after the next consume() and, for partitions being
revoked, in on_revoke; `revoke` / `lost` events list what could not be committed.

The output file has two kinds of line, both flushed with their batch:
    R <partition> <offset> <key> <value>    a record processed
    C <partition> <offset>                  a commit the broker acknowledged (next offset)

Imported by the tests, `Worker` starts, watches, stops and kills such a process.
"""

import argparse
import json
import queue
import signal
import subprocess
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path

# How long a worker may take to stop cleanly (finish its batch, commit, LeaveGroup).
STOP_TIMEOUT_S = 30


def _worker_main(argv):
    from confluent_kafka import Consumer, KafkaException, TopicPartition

    ap = argparse.ArgumentParser()
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--topic", required=True)
    ap.add_argument("--group", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--conf", default="{}", help="extra consumer settings, JSON")
    ap.add_argument("--batch", type=int, default=200)
    ap.add_argument("--rate", type=float, default=0.0, help="records/s at most (0: unthrottled)")
    args = ap.parse_args(argv)

    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())

    def emit(event, **fields):
        fields.update(ev=event, t=time.monotonic())
        sys.stdout.write(json.dumps(fields) + "\n")
        sys.stdout.flush()

    def tps(partitions):
        return sorted(p.partition for p in partitions)

    conf = {
        "bootstrap.servers": args.bootstrap,
        "group.id": args.group,
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "error_cb": lambda err: emit("error", code=err.code(), name=err.name(), text=err.str(), fatal=err.fatal()),
    }
    conf.update(json.loads(args.conf))
    c = Consumer(conf)
    out = open(args.out, "a", buffering=1 << 20)
    # Next offsets processed but not yet acknowledged by a commit. A commit can fail
    # legitimately (REBALANCE_IN_PROGRESS while the group completes a rebalance): it is
    # retried after the next consume() and, for partitions being revoked, in on_revoke,
    # which is what a careful at-least-once application does.
    pending = {}

    def commit_pending(partitions=None):
        todo = {p: o for p, o in pending.items() if partitions is None or p in partitions}
        if not todo:
            return
        offsets = [TopicPartition(args.topic, p, o) for p, o in sorted(todo.items())]
        try:
            done = c.commit(offsets=offsets, asynchronous=False)
        except KafkaException as e:
            emit("commit_failed", partitions=sorted(todo), text=str(e.args[0]))
            return
        acked = [tp for tp in done if tp.error is None]
        failed = [(tp.partition, str(tp.error)) for tp in done if tp.error is not None]
        for tp in acked:
            if pending.get(tp.partition) == tp.offset:
                del pending[tp.partition]
        out.write("".join(f"C {tp.partition} {tp.offset}\n" for tp in acked))
        out.flush()
        if failed:
            emit("commit_failed", partitions=failed)

    def on_revoke(_c, ps):
        revoked = set(tps(ps))
        commit_pending(revoked)
        dropped = {p: pending.pop(p) for p in list(pending) if p in revoked}
        emit("revoke", partitions=sorted(revoked), uncommitted=dropped)

    def on_lost(_c, ps):
        lost = set(tps(ps))
        dropped = {p: pending.pop(p) for p in list(pending) if p in lost}
        emit("lost", partitions=sorted(lost), uncommitted=dropped)

    c.subscribe(
        [args.topic],
        on_assign=lambda _c, ps: emit("assign", partitions=tps(ps)),
        on_revoke=on_revoke,
        on_lost=on_lost,
    )
    emit("subscribed")
    started = time.monotonic()
    processed = 0
    while not stopping.is_set():
        msgs = c.consume(args.batch, 0.2)
        commit_pending()  # what an earlier commit left (the partitions are still ours)
        if not msgs:
            continue
        lines = []
        next_offsets = {}
        for m in msgs:
            if m.error():
                emit("error", code=m.error().code(), name=m.error().name(), text=m.error().str(),
                     fatal=m.error().fatal())
                if m.error().fatal():
                    # A fenced or otherwise dead consumer: nothing more will come.
                    stopping.set()
                continue
            key = (m.key() or b"").decode()
            value = (m.value() or b"").decode()
            lines.append(f"R {m.partition()} {m.offset()} {key} {value}\n")
            next_offsets[m.partition()] = m.offset() + 1
        out.write("".join(lines))
        out.flush()
        processed += len(lines)
        pending.update(next_offsets)
        commit_pending()
        if args.rate > 0:
            ahead = processed / args.rate - (time.monotonic() - started)
            if ahead > 0:
                stopping.wait(ahead)
    commit_pending()
    c.close()  # revokes (on_revoke commits what is left) and leaves the group
    out.close()
    emit("closed", uncommitted=pending)


class Worker:
    """A `group_worker.py` process as the test sees it: its events and its output file."""

    def __init__(self, name, bootstrap, topic, group, out_dir, conf=None, batch=200, rate=0.0):
        self.name = name
        self.out = Path(out_dir) / f"{name}.out"
        self.events = []  # every event dict, in order
        self._q = queue.Queue()
        cmd = [
            sys.executable,
            __file__,
            "--bootstrap",
            bootstrap,
            "--topic",
            topic,
            "--group",
            group,
            "--out",
            str(self.out),
            "--conf",
            json.dumps(conf or {}),
            "--batch",
            str(batch),
            "--rate",
            str(rate),
        ]
        self.proc = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        self.stderr = []
        self._terminated = False
        threading.Thread(target=self._pump, daemon=True).start()
        threading.Thread(target=self._pump_err, daemon=True).start()

    def _pump(self):
        for line in self.proc.stdout:
            try:
                ev = json.loads(line)
            except ValueError:
                ev = {"ev": "garbage", "line": line}
            self.events.append(ev)
            self._q.put(ev)

    def _pump_err(self):
        for line in self.proc.stderr:
            self.stderr.append(line.rstrip("\n"))

    def assigned(self):
        """The partitions this member holds now, from its assign/revoke/lost events
        (incremental under cooperative and KIP-848 groups, whole under eager ones; librdkafka
        calls on_assign/on_revoke with the delta in the first case and the whole set in the
        second, so a set difference and union work for both)."""
        held = set()
        for ev in list(self.events):
            if ev["ev"] == "assign":
                held |= set(ev["partitions"])
            elif ev["ev"] in ("revoke", "lost"):
                held -= set(ev["partitions"])
        return held

    def count(self, kind):
        return sum(1 for ev in list(self.events) if ev["ev"] == kind)

    def records(self):
        """[(partition, offset, key, value)] in processing order."""
        return [r for r in self._lines() if r[0] == "R"]

    def commits(self):
        """{partition: highest acknowledged committed offset}."""
        out = {}
        for r in self._lines():
            if r[0] == "C":
                out[r[1]] = max(out.get(r[1], -1), r[2])
        return out

    def processed(self):
        """How many records this member has processed so far (cheap: counts lines)."""
        if not self.out.exists():
            return 0
        with open(self.out, "rb") as f:
            return sum(1 for line in f if line.startswith(b"R "))

    def _lines(self):
        if not self.out.exists():
            return []
        rows = []
        with open(self.out) as f:
            for line in f:
                if not line.endswith("\n"):
                    break  # a torn last line of a killed worker
                parts = line.split()
                if parts[0] == "R":
                    rows.append(("R", int(parts[1]), int(parts[2]), parts[3], parts[4]))
                elif parts[0] == "C":
                    rows.append(("C", int(parts[1]), int(parts[2])))
        return rows

    def alive(self):
        return self.proc.poll() is None

    def terminate(self):
        """Sends SIGTERM once (a second one could land while Python exits, after the
        handler is gone, and kill it)."""
        if not self._terminated and self.alive():
            self._terminated = True
            self.proc.send_signal(signal.SIGTERM)

    def stop(self):
        """SIGTERM: the worker finishes its batch, commits, close()s (LeaveGroup), exits."""
        self.terminate()
        try:
            code = self.proc.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"{self.name} did not stop within {STOP_TIMEOUT_S}s: {self.describe()}")
        assert code == 0, f"{self.name} exited with {code}: {self.describe()}"

    def kill(self):
        """SIGKILL: no close(), no LeaveGroup, no last commit."""
        if self.alive():
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=STOP_TIMEOUT_S)

    def describe(self):
        evs = [e for e in self.events if e["ev"] != "garbage"][-20:]
        return f"events={evs} stderr={self.stderr[-20:]}"


def wait_until(what, cond, timeout_s, poll_s=0.05, detail=lambda: ""):
    """Polls `cond` until it is truthy or the deadline passes (then fails with `what`)."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}. {detail()}")
        time.sleep(poll_s)


def by_partition(records):
    out = defaultdict(list)
    for _, p, o, _k, _v in records:
        out[p].append(o)
    return out


if __name__ == "__main__":
    _worker_main(sys.argv[1:])
