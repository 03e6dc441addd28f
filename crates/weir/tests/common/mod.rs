//! The real `weir serve` as the binary's tests run it: spawned with a fresh Kafka port, its
//! log collected line by line, signalled, waited for, and killed when the test ends (even
//! when it fails).
#![allow(dead_code)] // each test binary uses the part it needs

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

/// Bound on any wait for the broker (a log line, its exit).
pub const WAIT: Duration = Duration::from_secs(30);
const LISTENING: &str = "kafka listening addr=";

pub struct Weir {
    pub child: Child,
    lines: Receiver<String>,
    /// Every log line read so far.
    pub seen: Vec<String>,
}

impl Weir {
    /// `weir serve ARGS` with `--kafka-addr 127.0.0.1:0` unless ARGS set it (a flag beats
    /// the environment), `WEIR_LOG=info`, and `envs`.
    pub fn spawn(args: &[&str], envs: &[(&str, &std::ffi::OsStr)]) -> Weir {
        let mut command = Command::new(env!("CARGO_BIN_EXE_weir"));
        command
            .arg("serve")
            .args(args)
            .env_remove("WEIR_DATA_DIR")
            .env_remove("WEIR_CONFIG")
            .env("WEIR_KAFKA_ADDR", "127.0.0.1:0")
            .env("WEIR_LOG", "info");
        for (key, value) in envs {
            command.env(key, value);
        }
        let mut child = command
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start weir serve");
        let stderr = child.stderr.take().expect("piped stderr");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        Weir {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// `weir serve --data-dir DIR`, waited for until it listens; returns it and its address.
    pub fn serve(data_dir: &std::path::Path) -> (Weir, SocketAddr) {
        let data = data_dir.to_str().expect("utf-8 path");
        let mut weir = Weir::spawn(&["--data-dir", data], &[]);
        let addr = weir.kafka_addr();
        (weir, addr)
    }

    /// Waits for a log line containing `needle` and returns it.
    pub fn wait_for(&mut self, needle: &str) -> String {
        let deadline = Instant::now() + WAIT;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            let Ok(line) = self.lines.recv_timeout(left) else {
                break;
            };
            self.seen.push(line.clone());
            if line.contains(needle) {
                return line;
            }
        }
        let _ = self.child.kill();
        panic!(
            "no log line with {needle:?}; saw:\n{}",
            self.seen.join("\n")
        );
    }

    /// Waits until the Kafka listener is up and returns its address.
    pub fn kafka_addr(&mut self) -> SocketAddr {
        let line = self.wait_for(LISTENING);
        line.split(LISTENING)
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|addr| addr.parse().ok())
            .unwrap_or_else(|| panic!("no address in {line:?}"))
    }

    /// Sends `signal` (as `kill` spells it: `-TERM`, `-KILL`, …).
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill {signal} failed");
    }

    /// Waits for the process to exit, then collects the rest of its log.
    pub fn wait_exit(&mut self) -> ExitStatus {
        let deadline = Instant::now() + WAIT;
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                break status;
            }
            assert!(Instant::now() < deadline, "weir serve did not exit");
            std::thread::sleep(Duration::from_millis(10));
        };
        while let Ok(line) = self.lines.recv_timeout(Duration::from_millis(200)) {
            self.seen.push(line);
        }
        status
    }

    /// The log read so far, and whatever has arrived since, as one text.
    pub fn log_text(&mut self) -> String {
        while let Ok(line) = self.lines.try_recv() {
            self.seen.push(line);
        }
        self.seen.join("\n")
    }

    /// The broker's resident memory, from /proc.
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("broker's /proc status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS")
    }
}

impl Drop for Weir {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
