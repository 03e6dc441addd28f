//! `weir bench`: storage-engine benchmarks, each printed beside an anchor measured in the
//! same run on the same disk (its buffered sequential write bandwidth, its fdatasync rate),
//! so a figure reads as a ratio that holds on a noisy machine. docs/benchmarks.md records
//! the commands and their output.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use weir_storage::batch::BatchBuilder;
use weir_storage::store::{Store, StoreConfig, TopicPartition};
use weir_storage::topic_config::{FlushPolicy, TopicConfig};

use crate::serve::now_ms;

#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    #[command(subcommand)]
    what: Bench,
    /// Scratch directory on the disk to measure (removed afterwards).
    #[arg(long, global = true, default_value = "./weir-bench")]
    dir: PathBuf,
}

#[derive(Debug, clap::Subcommand)]
enum Bench {
    /// The disk's own figures: buffered sequential write MB/s and fdatasync rate.
    Disk {
        #[arg(long, default_value_t = 2048)]
        mib: u64,
    },
    /// `async` appends of fixed-size batches to one partition, against the disk's bandwidth.
    AppendAsync {
        #[arg(long, default_value_t = 2048)]
        mib: u64,
        #[arg(long, default_value_t = 16 * 1024)]
        batch_bytes: usize,
    },
    /// `sync` appends from many threads over 1 and N partitions: group commit at work.
    AppendSync {
        #[arg(long, default_value_t = 64)]
        appenders: usize,
        #[arg(long, value_delimiter = ',', default_value = "1,1000")]
        partitions: Vec<usize>,
        #[arg(long, default_value_t = 1024)]
        batch_bytes: usize,
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// Runs of each partition count, alternating, on a noisy machine; medians compared.
        #[arg(long, default_value_t = 3)]
        rounds: usize,
    },
    /// Sequential read of one partition from the page cache.
    Read {
        #[arg(long, default_value_t = 1024)]
        mib: u64,
        #[arg(long, default_value_t = 1024 * 1024)]
        fetch_bytes: u32,
    },
    /// Fill a store, SIGKILL its writer, and time reopening it.
    Recovery {
        #[arg(long, default_value_t = 4096)]
        mib: u64,
    },
    /// Open N idle partitions and report resident memory and open descriptors.
    Idle {
        #[arg(long, default_value_t = 10_000)]
        partitions: usize,
    },
    /// (Used by `recovery`.) Fill a store in --dir, print "filled", then wait to be killed.
    #[command(hide = true)]
    FillAndHold {
        #[arg(long)]
        mib: u64,
    },
}

const MIB: u64 = 1024 * 1024;

pub fn run(args: BenchArgs) -> anyhow::Result<()> {
    let keep_dir = matches!(args.what, Bench::FillAndHold { .. });
    if !keep_dir {
        if args.dir.exists() {
            fs::remove_dir_all(&args.dir).context("clearing the scratch directory")?;
        }
        fs::create_dir_all(&args.dir).context("creating the scratch directory")?;
    }
    let result = match args.what {
        Bench::Disk { mib } => disk(&args.dir, mib).map(|_| ()),
        Bench::AppendAsync { mib, batch_bytes } => append_async(&args.dir, mib, batch_bytes),
        Bench::AppendSync {
            appenders,
            partitions,
            batch_bytes,
            seconds,
            rounds,
        } => append_sync(
            &args.dir,
            appenders,
            &partitions,
            batch_bytes,
            seconds,
            rounds,
        ),
        Bench::Read { mib, fetch_bytes } => read(&args.dir, mib, fetch_bytes),
        Bench::Recovery { mib } => recovery(&args.dir, mib),
        Bench::Idle { partitions } => idle(&args.dir, partitions),
        Bench::FillAndHold { mib } => fill_and_hold(&args.dir, mib),
    };
    if !keep_dir {
        let _ = fs::remove_dir_all(&args.dir);
    }
    result
}

struct DiskFigures {
    write_mib_s: f64,
    fdatasync_per_s: f64,
}

/// What `fio --rw=write --bs=1m --end_fsync=1` and a write+fdatasync loop measure.
fn disk(dir: &Path, mib: u64) -> anyhow::Result<DiskFigures> {
    let path = dir.join("disk-anchor");
    let block = vec![0x5au8; MIB as usize];
    let started = Instant::now();
    let mut file = File::create(&path)?;
    for _ in 0..mib {
        file.write_all(&block)?;
    }
    file.sync_all()?;
    let write_mib_s = mib as f64 / started.elapsed().as_secs_f64();
    drop(file);
    fs::remove_file(&path)?;

    let small = vec![0x5au8; 4096];
    let mut file = File::create(&path)?;
    let started = Instant::now();
    let mut syncs = 0u64;
    while started.elapsed() < Duration::from_secs(3) {
        file.write_all(&small)?;
        file.sync_data()?;
        syncs += 1;
    }
    let fdatasync_per_s = syncs as f64 / started.elapsed().as_secs_f64();
    drop(file);
    fs::remove_file(&path)?;
    println!(
        "disk: buffered sequential write {write_mib_s:.0} MiB/s ({mib} MiB, 1 MiB blocks, end fsync); \
         4 KiB write+fdatasync {fdatasync_per_s:.0}/s"
    );
    Ok(DiskFigures {
        write_mib_s,
        fdatasync_per_s,
    })
}

/// A batch of about `bytes` bytes made of 1 KiB records (100 B for small batches).
fn sample_batch(bytes: usize) -> Vec<u8> {
    let record_bytes = if bytes >= 8 * 1024 { 1024 } else { 100 };
    let count = (bytes / (record_bytes + 12)).max(1);
    let now = now_ms();
    let mut builder = BatchBuilder::new(0, now);
    let value = vec![b'x'; record_bytes];
    for i in 0..count {
        let key = format!("key-{i}");
        builder.push(now, Some(key.as_bytes()), Some(&value), &[]);
    }
    builder.build()
}

fn open_store(dir: &Path, config: StoreConfig) -> anyhow::Result<Store> {
    Ok(Store::open(dir, config, now_ms())?.0)
}

fn topic_config(flush: FlushPolicy) -> TopicConfig {
    TopicConfig {
        flush,
        ..TopicConfig::default()
    }
}

fn append_async(dir: &Path, mib: u64, batch_bytes: usize) -> anyhow::Result<()> {
    let anchor = disk(dir, mib)?;
    let store = open_store(&dir.join("store"), StoreConfig::default())?;
    let id = TopicPartition::new("bench", 0);
    store.create_partition(&id, topic_config(FlushPolicy::Async))?;
    let batch = sample_batch(batch_bytes);
    let batches = (mib * MIB) / batch.len() as u64;
    let started = Instant::now();
    for _ in 0..batches {
        store.append(&id, &batch, now_ms())?;
    }
    // As the anchor ends with an fsync, so does this: everything written reaches the disk.
    store.checkpoint(now_ms())?;
    store.wal().sync()?;
    let elapsed = started.elapsed().as_secs_f64();
    let mib_s = (batches * batch.len() as u64) as f64 / MIB as f64 / elapsed;
    println!(
        "append-async: {batches} batches of {} B in {elapsed:.2} s = {mib_s:.0} MiB/s payload; \
         ratio to disk bandwidth {:.2}",
        batch.len(),
        mib_s / anchor.write_mib_s
    );
    store.close(now_ms())?;
    Ok(())
}

fn append_sync(
    dir: &Path,
    appenders: usize,
    partition_counts: &[usize],
    batch_bytes: usize,
    seconds: u64,
    rounds: usize,
) -> anyhow::Result<()> {
    let anchor = disk(dir, 256)?;
    let batch = Arc::new(sample_batch(batch_bytes));
    let mut rates: Vec<Vec<f64>> = vec![Vec::new(); partition_counts.len()];
    for round in 0..rounds {
        for (i, &partitions) in partition_counts.iter().enumerate() {
            let store_dir = dir.join(format!("store-{round}-{partitions}"));
            let rate =
                append_sync_run(&store_dir, appenders, partitions, &batch, seconds, &anchor)?;
            rates[i].push(rate);
            let _ = fs::remove_dir_all(&store_dir);
        }
    }
    let medians: Vec<f64> = rates.iter_mut().map(|r| median(r)).collect();
    for (i, &partitions) in partition_counts.iter().enumerate() {
        println!(
            "append-sync median of {rounds}: {partitions} partitions {:.0} appends/s; \
             ratio to {} partition(s) {:.2}",
            medians[i],
            partition_counts[0],
            medians[i] / medians[0]
        );
    }
    Ok(())
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(0.0)
}

/// One timed run of `appenders` threads doing `sync` appends round-robin over `partitions`.
fn append_sync_run(
    store_dir: &Path,
    appenders: usize,
    partitions: usize,
    batch: &Arc<Vec<u8>>,
    seconds: u64,
    anchor: &DiskFigures,
) -> anyhow::Result<f64> {
    let store = Arc::new(open_store(store_dir, StoreConfig::default())?);
    let ids: Arc<Vec<TopicPartition>> = Arc::new(
        (0..partitions as i32)
            .map(|p| TopicPartition::new("bench", p))
            .collect(),
    );
    for id in ids.iter() {
        store.create_partition(id, topic_config(FlushPolicy::Sync))?;
    }
    let fsyncs_before = store.wal().stats().fsyncs;
    let appended = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let threads: Vec<_> = (0..appenders)
        .map(|t| {
            let (store, ids, batch, appended) =
                (store.clone(), ids.clone(), batch.clone(), appended.clone());
            std::thread::spawn(move || -> anyhow::Result<()> {
                let mut i = t;
                while Instant::now() < deadline {
                    store.append_durable(&ids[i % ids.len()], &batch, now_ms())?;
                    appended.fetch_add(1, Ordering::Relaxed);
                    i += appenders;
                }
                Ok(())
            })
        })
        .collect();
    for thread in threads {
        match thread.join() {
            Ok(result) => result?,
            Err(_) => bail!("an appender panicked"),
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    let count = appended.load(Ordering::Relaxed);
    let fsyncs = store.wal().stats().fsyncs - fsyncs_before;
    let rate = count as f64 / elapsed;
    println!(
        "append-sync: {partitions} partitions, {appenders} appenders, {} B batches: \
         {rate:.0} appends/s ({:.1} MiB/s), {:.0} fsyncs/s ({:.1} appends per fsync; \
         disk alone {:.0} fdatasyncs/s)",
        batch.len(),
        rate * batch.len() as f64 / MIB as f64,
        fsyncs as f64 / elapsed,
        count as f64 / fsyncs.max(1) as f64,
        anchor.fdatasync_per_s,
    );
    let store = Arc::into_inner(store).context("store still shared")?;
    store.close(now_ms())?;
    Ok(rate)
}

fn read(dir: &Path, mib: u64, fetch_bytes: u32) -> anyhow::Result<()> {
    let store = open_store(&dir.join("store"), StoreConfig::default())?;
    let id = TopicPartition::new("bench", 0);
    store.create_partition(&id, topic_config(FlushPolicy::Async))?;
    let batch = sample_batch(64 * 1024);
    for _ in 0..(mib * MIB) / batch.len() as u64 {
        store.append(&id, &batch, now_ms())?;
    }
    let end = store.offsets(&id)?.high_watermark;
    let mut buf = vec![0u8; fetch_bytes as usize + batch.len()];
    for pass in ["warm-up", "measured"] {
        let started = Instant::now();
        let (mut offset, mut bytes) = (0i64, 0u64);
        while offset < end {
            let Some(slice) = store.read(&id, offset, fetch_bytes)? else {
                break;
            };
            let len = slice.len as usize;
            if buf.len() < len {
                buf.resize(len, 0);
            }
            std::os::unix::fs::FileExt::read_exact_at(
                &*slice.file,
                &mut buf[..len],
                slice.position,
            )?;
            bytes += slice.len;
            offset = slice.last_offset + 1;
        }
        let elapsed = started.elapsed().as_secs_f64();
        if pass == "measured" {
            println!(
                "read: {:.0} MiB from one partition in {fetch_bytes} B fetches, page cache: \
                 {:.2} GB/s",
                bytes as f64 / MIB as f64,
                bytes as f64 / 1e9 / elapsed
            );
        }
    }
    store.close(now_ms())?;
    Ok(())
}

fn fill_and_hold(dir: &Path, mib: u64) -> anyhow::Result<()> {
    let store = open_store(dir, StoreConfig::default())?;
    let batch = sample_batch(64 * 1024);
    let ids: Vec<_> = (0..8).map(|p| TopicPartition::new("bench", p)).collect();
    for id in &ids {
        store.create_partition(id, topic_config(FlushPolicy::Async))?;
    }
    let batches = (mib * MIB) / batch.len() as u64;
    for i in 0..batches {
        store.append(&ids[i as usize % ids.len()], &batch, now_ms())?;
        if i % 4096 == 0 {
            store.maintain(now_ms())?;
        }
    }
    println!("filled");
    std::io::stdout().flush()?;
    loop {
        std::thread::sleep(Duration::from_secs(60));
    }
}

fn recovery(dir: &Path, mib: u64) -> anyhow::Result<()> {
    let store_dir = dir.join("store");
    let exe = std::env::current_exe()?;
    let mut child = std::process::Command::new(exe)
        .args(["bench", "--dir"])
        .arg(&store_dir)
        .args(["fill-and-hold", "--mib", &mib.to_string()])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .context("starting the filler")?;
    let stdout = child.stdout.take().context("filler stdout")?;
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line)?;
    if line.trim() != "filled" {
        let _ = child.kill();
        bail!("the filler did not finish: {line:?}");
    }
    child.kill().context("SIGKILL the filler")?;
    child.wait()?;
    let started = Instant::now();
    let (store, report) = Store::open(&store_dir, StoreConfig::default(), now_ms())?;
    let elapsed = started.elapsed();
    // Serving includes writing: time the first append to every partition after reopening.
    let batch = sample_batch(64 * 1024);
    let first_append = Instant::now();
    for id in store.partitions() {
        store.append(&id, &batch, now_ms())?;
    }
    let first_append = first_append.elapsed();
    let total: i64 = store
        .partitions()
        .iter()
        .map(|id| store.offsets(id).map(|o| o.log_end_offset))
        .sum::<Result<i64, _>>()?;
    println!(
        "recovery: {mib} MiB in {} partitions after SIGKILL: serving again in {:.3} s \
         ({} WAL entries replayed, {} skipped, {} indexes rebuilt, {} bytes scanned, {total} records); \
         then one append to each partition took {:.3} s",
        report.partitions,
        elapsed.as_secs_f64(),
        report.wal_entries_replayed,
        report.wal_entries_skipped,
        report.indexes_rebuilt,
        report.partition_bytes_scanned,
        first_append.as_secs_f64(),
    );
    store.close(now_ms())?;
    Ok(())
}

fn idle(dir: &Path, partitions: usize) -> anyhow::Result<()> {
    let store_dir = dir.join("store");
    {
        let store = open_store(&store_dir, StoreConfig::default())?;
        let batch = sample_batch(1024);
        for p in 0..partitions {
            let id = TopicPartition::new("idle", p as i32);
            store.create_partition(&id, TopicConfig::default())?;
            store.append(&id, &batch, now_ms())?;
        }
        store.close(now_ms())?;
    }
    let rss_before = resident_kib()?;
    let started = Instant::now();
    let store = open_store(&store_dir, StoreConfig::default())?;
    let opened = started.elapsed();
    println!(
        "idle: {partitions} partitions reopened in {:.2} s; resident memory {} MiB \
         (process before opening {} MiB); open file descriptors {} (store's cache {})",
        opened.as_secs_f64(),
        resident_kib()? / 1024,
        rss_before / 1024,
        fs::read_dir("/proc/self/fd")?.count(),
        store.open_files()
    );
    store.close(now_ms())?;
    Ok(())
}

fn resident_kib() -> anyhow::Result<u64> {
    let status = fs::read_to_string("/proc/self/status")?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .context("VmRSS not found in /proc/self/status")
}
