//! wrenvnet-delayline: the lab's link delay, because this kernel has no netem.
//!
//! It is a wire with a delay between two TAP devices it creates: every frame read from
//! one is held for the configured delay, then written to the other, both ways. Put each
//! TAP in a bridge with one side's link (`ip link set dla master br-a`) and the two
//! sides are one L2 segment whose one-way delay is D (so an RTT of 2D more), for ARP,
//! IP and anything else. The delay is the same for every frame, so the order is kept
//! and each direction's hold queue is a FIFO whose head is always the next frame due.
//! Buffers come from a fixed pool per direction: when it is empty (more than `--limit`
//! frames in flight) a frame is dropped and counted, like a tail-drop queue; nothing
//! else is ever lost silently.
//!
//!   wrenvnet-delayline --tap dla --tap dlb --delay-ms 10
//!
//! The writer sleeps until each packet is due, with a timer slack of 1 µs: the default
//! 50 µs would let a lone frame (a ping) wait up to that much longer than the frames
//! of a busy flow that fall due while the writer is awake, so the lab's truth (ping)
//! and the application would see different links. What remains is the kernel's wake-up
//! latency (~20 µs on the lab's VM), which the lab measures with ping on the same path.
#![forbid(unsafe_code)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Parser;
use crossbeam::channel::{bounded, Receiver, Sender, TryRecvError};

#[derive(Debug, Parser)]
#[command(
    name = "wrenvnet-delayline",
    about = "A wire with a fixed delay between two TAP devices (the lab's netem stand-in)"
)]
struct Args {
    /// The two TAP devices to create (they must not exist): --tap A --tap B.
    #[arg(long = "tap", num_args = 1, required = true)]
    taps: Vec<String>,
    /// One-way delay added to every packet, in milliseconds (fractions allowed).
    #[arg(long)]
    delay_ms: f64,
    /// Frames that may be held at once per direction; beyond this they are dropped and
    /// counted. Each holds a 16 KiB buffer (4096: 64 MiB a direction).
    #[arg(long, default_value_t = 4096)]
    limit: usize,
    /// Print the counters every this many seconds (0: never).
    #[arg(long, default_value_t = 0)]
    stats_s: u64,
}

/// Buffer per frame: a TAP hands over whole frames of its MTU (1500 by default; jumbo
/// up to 9000). A frame that fills the buffer may have been cut, so it is dropped and
/// counted (`oversize`), never passed on truncated.
const MAX_PACKET: usize = 16_384;

struct Held {
    due: Instant,
    len: usize,
    buf: Box<[u8]>,
}

#[derive(Default)]
struct Counters {
    forwarded: AtomicU64,
    dropped_full: AtomicU64,
    oversize: AtomicU64,
    write_errors: AtomicU64,
    /// Worst lateness seen so far, in microseconds (how far past due a packet left).
    worst_late_us: AtomicU64,
}

fn main() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    if let Err(e) = run(Args::parse()) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn run(args: Args) -> Result<()> {
    if !(args.delay_ms.is_finite() && args.delay_ms >= 0.0 && args.delay_ms <= 10_000.0) {
        bail!(
            "--delay-ms must be between 0 and 10000, got {}",
            args.delay_ms
        );
    }
    if args.limit == 0 {
        bail!("--limit must be at least 1");
    }
    if args.taps.len() != 2 || args.taps[0] == args.taps[1] {
        bail!(
            "give exactly two different --tap devices, got {:?}",
            args.taps
        );
    }
    let delay = Duration::from_secs_f64(args.delay_ms / 1e3);
    let devs: Vec<Arc<tun::Device>> = args
        .taps
        .iter()
        .map(|name| {
            let mut cfg = tun::Configuration::default();
            cfg.tun_name(name).layer(tun::Layer::L2).up();
            tun::create(&cfg)
                .map(Arc::new)
                .with_context(|| format!("cannot create TAP device {name}"))
        })
        .collect::<Result<_>>()?;
    log::info!(
        "delay line {} <-> {}: {:.3} ms one way, at most {} frames held per direction",
        args.taps[0],
        args.taps[1],
        args.delay_ms,
        args.limit
    );
    let counters = Arc::new(Counters::default());
    let mut threads = Vec::new();
    for (from, to) in [(0, 1), (1, 0)] {
        let (free_tx, free_rx) = bounded::<Box<[u8]>>(args.limit);
        for _ in 0..args.limit {
            free_tx
                .send(vec![0u8; MAX_PACKET].into_boxed_slice())
                .expect("the pool has room for every buffer");
        }
        let (held_tx, held_rx) = bounded::<Held>(args.limit);
        let (src, dst) = (Arc::clone(&devs[from]), Arc::clone(&devs[to]));
        let (c1, c2) = (Arc::clone(&counters), Arc::clone(&counters));
        threads.push(
            std::thread::Builder::new()
                .name(format!("delay-write-{to}"))
                .spawn(move || write_when_due(&dst, &held_rx, &free_tx, &c1))?,
        );
        threads.push(
            std::thread::Builder::new()
                .name(format!("delay-read-{from}"))
                .spawn(move || {
                    if let Err(e) = read_and_hold(&src, delay, &held_tx, &free_rx, &c2) {
                        log::error!("{e:#}");
                    }
                })?,
        );
    }
    if args.stats_s > 0 {
        let counters = Arc::clone(&counters);
        let every = Duration::from_secs(args.stats_s);
        std::thread::Builder::new()
            .name("delay-stats".into())
            .spawn(move || loop {
                std::thread::sleep(every);
                print_counters(&counters);
            })?;
    }
    for t in threads {
        let _ = t.join();
    }
    print_counters(&counters);
    Ok(())
}

fn read_and_hold(
    dev: &tun::Device,
    delay: Duration,
    held: &Sender<Held>,
    free: &Receiver<Box<[u8]>>,
    counters: &Counters,
) -> Result<()> {
    // A spare buffer to read into when the pool is empty: the frame must still be
    // taken off the device to be dropped.
    let mut spare = vec![0u8; MAX_PACKET].into_boxed_slice();
    // A pool buffer whose frame was dropped, to be used again before taking another.
    let mut unused: Option<Box<[u8]>> = None;
    loop {
        let next = match unused.take() {
            Some(b) => Ok(b),
            None => free.try_recv(),
        };
        match next {
            Ok(mut buf) => {
                let len = dev.recv(&mut buf).context("reading a TAP device")?;
                if len >= MAX_PACKET {
                    counters.oversize.fetch_add(1, Ordering::Relaxed);
                    unused = Some(buf);
                    continue;
                }
                let due = Instant::now() + delay;
                if held.send(Held { due, len, buf }).is_err() {
                    return Ok(()); // the writer is gone
                }
            }
            Err(TryRecvError::Empty) => {
                dev.recv(&mut spare).context("reading a TAP device")?;
                counters.dropped_full.fetch_add(1, Ordering::Relaxed);
            }
            Err(TryRecvError::Disconnected) => return Ok(()),
        }
    }
}

fn write_when_due(
    dev: &tun::Device,
    held: &Receiver<Held>,
    free: &Sender<Box<[u8]>>,
    counters: &Counters,
) {
    dataplane::lcore::shorten_timer_slack("writer", "lone frames may be late");
    for h in held.iter() {
        let now = Instant::now();
        if h.due > now {
            std::thread::sleep(h.due - now);
        }
        let late = Instant::now().saturating_duration_since(h.due).as_micros() as u64;
        counters.worst_late_us.fetch_max(late, Ordering::Relaxed);
        match dev.send(&h.buf[..h.len]) {
            Ok(_) => counters.forwarded.fetch_add(1, Ordering::Relaxed),
            Err(_) => counters.write_errors.fetch_add(1, Ordering::Relaxed),
        };
        if free.send(h.buf).is_err() {
            return;
        }
    }
}

fn print_counters(c: &Counters) {
    println!(
        "delayline: forwarded {} dropped_full {} oversize {} write_errors {} worst_late_us {}",
        c.forwarded.load(Ordering::Relaxed),
        c.dropped_full.load(Ordering::Relaxed),
        c.oversize.load(Ordering::Relaxed),
        c.write_errors.load(Ordering::Relaxed),
        c.worst_late_us.load(Ordering::Relaxed)
    );
}
