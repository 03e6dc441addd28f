"""Fixtures shared by the real-client tests: a real `weir serve` per test.

The binary is never built here: scripts/test.sh runs `cargo build` and exports its path as
WEIR_BIN, so a test run measures the clients, not the compiler. Each test gets its own
process on a free 127.0.0.1 port (the OS picks it: `--kafka-addr 127.0.0.1:0`) and a fresh
data directory, so tests neither share topics nor depend on order.
"""

import os
import queue
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

# How long weir may take to recover its data directory and bind its listener. A fresh or
# small directory takes milliseconds; this is generous for a loaded 2-core CI machine.
START_TIMEOUT_S = 30
# How long a process asked to stop (SIGKILL) may take to be reaped.
STOP_TIMEOUT_S = 10
# The log line weir prints once the Kafka listener is bound (crates/weir/src/serve.rs).
LISTENING = "kafka listening addr="
# Lines that mean a bug even if the process survived: a panicking connection task is
# caught by tokio and would otherwise pass unnoticed.
BUG_MARKERS = ("panicked at",)


def weir_bin() -> str:
    path = os.environ.get("WEIR_BIN")
    if not path:
        pytest.exit(
            "WEIR_BIN is not set: run scripts/test.sh, or `cargo build` and "
            "export WEIR_BIN=$CARGO_TARGET_DIR/debug/weir (or target/debug/weir)",
            returncode=2,
        )
    if not os.access(path, os.X_OK):
        pytest.exit(f"WEIR_BIN={path} is not an executable file", returncode=2)
    return path


class Weir:
    """One `weir serve` process on a data directory that outlives restarts."""

    def __init__(self, data_dir: Path, extra_args=()):
        self.data_dir = data_dir
        # Further `weir serve` flags (e.g. `--group-initial-rebalance-delay-ms 0`), kept
        # for every restart.
        self.extra_args = list(extra_args)
        self.proc = None
        self.bootstrap = None
        self.log = []  # every stderr line of every run, for failure reports
        self._lines = None
        # Set when the test killed the process on purpose: it is not a crash.
        self._killed_on_purpose = False

    def start(self, kafka_addr="127.0.0.1:0"):
        assert self.proc is None or self.proc.poll() is not None, "already running"
        env = dict(os.environ, WEIR_LOG="info")
        env.pop("WEIR_DATA_DIR", None)
        env.pop("WEIR_CONFIG", None)
        self.proc = subprocess.Popen(
            [
                weir_bin(),
                "serve",
                "--data-dir",
                str(self.data_dir),
                "--kafka-addr",
                kafka_addr,
                *self.extra_args,
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        self._killed_on_purpose = False
        self._lines = queue.Queue()
        threading.Thread(
            target=_pump, args=(self.proc.stderr, self._lines, self.log), daemon=True
        ).start()
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("weir did not log %r in time:\n%s" % (LISTENING, self.log_text()))
            try:
                line = self._lines.get(timeout=left)
            except queue.Empty:
                continue
            if line is None:
                raise AssertionError("weir exited before listening:\n" + self.log_text())
            at = line.find(LISTENING)
            if at >= 0:
                self.bootstrap = line[at + len(LISTENING) :].split()[0]
                return self.bootstrap

    def kill(self):
        """SIGKILL: no shutdown path runs, as in a power cut of the process."""
        self._killed_on_purpose = True
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=STOP_TIMEOUT_S)

    def restart(self, same_port=False):
        """SIGKILL, then start on the same data directory; with `same_port` on the same
        address, so running clients (which know only their bootstrap address) reconnect."""
        addr = self.bootstrap
        self.kill()
        if same_port:
            return self.start(addr)
        return self.start()

    def crashed(self):
        """Why the current run counts as a crash, or None."""
        bugs = [line for line in self.log if any(m in line for m in BUG_MARKERS)]
        if bugs:
            return "weir logged a bug: " + bugs[0]
        if self.proc is not None and not self._killed_on_purpose:
            code = self.proc.poll()
            if code is not None:
                return f"weir exited on its own with status {code}"
        return None

    def log_text(self):
        return "\n".join(self.log[-200:])


def _pump(stream, lines, log):
    for line in stream:
        line = line.rstrip("\n")
        log.append(line)
        lines.put(line)
    lines.put(None)


@pytest.fixture
def weir(tmp_path):
    """A running weir; `weir.bootstrap` is its host:port."""
    server = Weir(tmp_path / "data")
    server.start()
    try:
        yield server
    finally:
        crash = server.crashed()
        if server.proc.poll() is None:
            server.kill()
        # Shown by pytest with the test's captured output when anything failed.
        print("---- weir log ----\n" + server.log_text())
        if crash:
            pytest.fail(crash, pytrace=False)


@pytest.fixture
def make_weir(tmp_path):
    """A factory for a weir with extra `serve` flags: `make_weir("--flag", "value")`.
    Each one is started, and killed and checked for crashes at the end like `weir`."""
    servers = []

    def make(*extra_args):
        server = Weir(tmp_path / f"data{len(servers)}", extra_args)
        servers.append(server)
        server.start()
        return server

    yield make
    crashes = []
    for server in servers:
        crash = server.crashed()
        if server.proc is not None and server.proc.poll() is None:
            server.kill()
        print("---- weir log ----\n" + server.log_text())
        if crash:
            crashes.append(crash)
    if crashes:
        pytest.fail("; ".join(crashes), pytrace=False)


@pytest.fixture
def bootstrap(weir):
    return weir.bootstrap


_topic_counter = iter(range(1_000_000))


@pytest.fixture
def topic_name(request):
    """A topic name unique to the test (readable in weir's log)."""

    def make(suffix=""):
        base = request.node.name.replace("[", "-").replace("]", "").replace("_", "-")
        return f"{base}{suffix}-{next(_topic_counter)}"[:200]

    return make
