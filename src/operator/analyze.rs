//! `wrenvnet analyze`: read a capture (pcap or pcapng; underlay VXLAN or plain) into
//! packet records and run the analysis engines over them, as the daemon does online.

use std::net::Ipv4Addr;
use std::path::PathBuf;

use analysis::engine::{Engine, FlowTable};
use analysis::pcap::read_capture;
use analysis::record::{Timebase, FLAG_IPV6};
use analysis::vttif::{MatrixEntry, Topology, TopologyChange, Vttif};
use analysis::wren::{PathView, Wren};
use anyhow::{Context, Result};
use serde::Serialize;

#[derive(Debug, clap::Args)]
pub struct AnalyzeArgs {
    /// Capture file (pcap or pcapng, Ethernet link type).
    #[arg(long)]
    pcap: PathBuf,
    /// Print one JSON document.
    #[arg(long)]
    json: bool,
    /// Print every packet record as a JSON line instead (for checking against tshark).
    #[arg(long, conflicts_with = "json")]
    records: bool,
    /// Also draw available bandwidth and RTT over time (SVG) of the path carrying the
    /// most bytes (or --plot-path), from Wren's view every second of capture (about 50
    /// times across a capture shorter than 50 s).
    #[arg(long, value_name = "FILE.svg", conflicts_with = "records")]
    plot: Option<PathBuf>,
    /// The path to plot, as SRC_IP>DST_IP (the data sender first).
    #[arg(long, value_name = "SRC>DST", requires = "plot")]
    plot_path: Option<String>,
    /// The truth to draw beside it: the path's available bandwidth, Mbit/s.
    #[arg(long, value_name = "MBIT", requires = "plot")]
    truth_mbps: Option<f64>,
    /// The truth to draw beside it: the path's base RTT, ms (e.g. from ping).
    #[arg(long, value_name = "MS", requires = "plot")]
    truth_rtt_ms: Option<f64>,
    #[command(flatten)]
    vttif: crate::daemon::config::VttifSettings,
}

/// Wren's view of one path after each second of capture: (seconds, view).
type Timeline = Vec<(f64, Vec<PathView>)>;

/// Draws the path's available bandwidth (estimate and range) and RTT (min, smoothed)
/// over capture time, with the truth when given.
#[cold]
fn plot(
    args: &AnalyzeArgs,
    file: &std::path::Path,
    timeline: &Timeline,
    last: &[PathView],
) -> Result<()> {
    use crate::operator::plot::{render, Panel, Series};
    let (src, dst) = match &args.plot_path {
        Some(p) => {
            let (s, d) = p
                .split_once('>')
                .context("--plot-path wants SRC_IP>DST_IP")?;
            (s.to_string(), d.to_string())
        }
        None => {
            let p = last
                .iter()
                .max_by_key(|p| p.bytes)
                .context("no TCP path in the capture to plot")?;
            (p.src.clone(), p.dst.clone())
        }
    };
    let series = |f: &dyn Fn(&PathView) -> Option<f64>| -> Vec<(f64, Option<f64>)> {
        timeline
            .iter()
            .map(|(t, views)| {
                (
                    *t,
                    views
                        .iter()
                        .find(|v| v.src == src && v.dst == dst)
                        .and_then(f),
                )
            })
            .collect()
    };
    if series(&|v| Some(v.bytes as f64))
        .iter()
        .all(|p| p.1.is_none())
    {
        anyhow::bail!("no path {src} -> {dst} in the capture");
    }
    let flat = |v: Option<f64>| timeline.iter().map(|(t, _)| (*t, v)).collect::<Vec<_>>();
    let mut bw = vec![
        Series {
            label: "estimate".into(),
            color: "#1f77b4",
            dashed: false,
            points: series(&|v| v.avail_bw_mbps),
        },
        Series {
            label: "low".into(),
            color: "#9ecae1",
            dashed: true,
            points: series(&|v| v.avail_bw_low_mbps),
        },
        Series {
            label: "high".into(),
            color: "#fd8d3c",
            dashed: true,
            points: series(&|v| v.avail_bw_high_mbps),
        },
    ];
    if let Some(t) = args.truth_mbps {
        bw.push(Series {
            label: "truth".into(),
            color: "#000",
            dashed: true,
            points: flat(Some(t)),
        });
    }
    let ms = |x: Option<f64>| x.map(|u| u / 1e3);
    let mut rtt = vec![
        Series {
            label: "min RTT".into(),
            color: "#1f77b4",
            dashed: false,
            points: series(&|v| ms(v.rtt_min_us)),
        },
        Series {
            label: "smoothed RTT".into(),
            color: "#ff7f0e",
            dashed: false,
            points: series(&|v| ms(v.rtt_srtt_us)),
        },
    ];
    if let Some(t) = args.truth_rtt_ms {
        rtt.push(Series {
            label: "truth".into(),
            color: "#000",
            dashed: true,
            points: flat(Some(t)),
        });
    }
    let svg = render(&[
        Panel {
            title: format!("available bandwidth {src} -> {dst} (Wren, last 10 s of trains)"),
            unit: "Mbit/s".into(),
            series: bw,
        },
        Panel {
            title: format!("RTT {src} -> {dst}"),
            unit: "ms".into(),
            series: rtt,
        },
    ]);
    std::fs::write(file, svg).with_context(|| format!("cannot write {}", file.display()))?;
    eprintln!("plot: {}", file.display());
    Ok(())
}

#[derive(Serialize)]
struct RecordLine {
    time_ns: u64,
    src_ip: String,
    dst_ip: String,
    src_port: u16,
    dst_port: u16,
    protocol: u8,
    seq: u32,
    ack: u32,
    tcp_flags: u8,
    window: u16,
    payload_len: u16,
    frame_len: u32,
    tsval: Option<u32>,
    tsecr: Option<u32>,
    vxlan: bool,
    outer_src: Option<String>,
    outer_dst: Option<String>,
    broken: bool,
}

#[derive(Serialize)]
struct FlowLine {
    protocol: u8,
    src: String,
    dst: String,
    packets: u64,
    frame_bytes: u64,
    tcp_payload_bytes: u64,
    duration_s: f64,
}

#[derive(Serialize)]
struct Report {
    paths: Vec<PathView>,
    /// VM-to-VM traffic; VMs by MAC in underlay captures, by IP in plain ones.
    matrix: Vec<MatrixEntry>,
    topology: Topology,
    topology_changes: Vec<TopologyChange>,
    records: u64,
    broken: u64,
    underlay_hosts: Vec<String>,
    flows: Vec<FlowLine>,
}

fn ip(v: u32, flags: u8) -> String {
    if flags & FLAG_IPV6 != 0 {
        format!("v6#{v:08x}")
    } else {
        Ipv4Addr::from(v).to_string()
    }
}

pub fn run(args: AnalyzeArgs) -> Result<()> {
    let cap = read_capture(&args.pcap).context("cannot read the capture")?;
    let host = |i: u8| {
        cap.hosts
            .addrs
            .get(i as usize)
            .map(|a| Ipv4Addr::from(*a).to_string())
    };
    if args.records {
        use std::io::Write;
        let mut out = std::io::BufWriter::new(std::io::stdout().lock());
        for r in &cap.records {
            let line = RecordLine {
                time_ns: r.time,
                src_ip: ip(r.src_ip, r.flags),
                dst_ip: ip(r.dst_ip, r.flags),
                src_port: r.src_port,
                dst_port: r.dst_port,
                protocol: r.protocol,
                seq: r.seq,
                ack: r.ack,
                tcp_flags: r.tcp_flags,
                window: r.window,
                payload_len: r.payload_len,
                frame_len: r.frame_len,
                tsval: r.has_timestamps().then_some(r.tsval),
                tsecr: r.has_timestamps().then_some(r.tsecr),
                vxlan: r.flags & analysis::record::FLAG_VXLAN != 0,
                outer_src: host(r.outer_src),
                outer_dst: host(r.outer_dst),
                broken: r.flags & analysis::record::FLAG_BROKEN != 0,
            };
            writeln!(out, "{}", serde_json::to_string(&line)?)?;
        }
        return Ok(());
    }
    let mut flows = FlowTable::default();
    let mut wren = Wren::new(Default::default());
    wren.set_hosts(
        cap.hosts
            .addrs
            .iter()
            .map(|a| u32::from_be_bytes(*a))
            .collect(),
    );
    let mut timeline: Timeline = Vec::new();
    let start = cap.records.first().map_or(0, |r| r.time);
    let end = cap.records.last().map_or(start, |r| r.time);
    // Wren's view every second, or for a capture shorter than 50 s about 50 times
    // across it (not finer than 10 ms): a 2-s capture still draws lines.
    let step = (end.saturating_sub(start) / 50).clamp(10_000_000, 1_000_000_000);
    let mut next_snapshot = start + step;
    for chunk in cap.records.chunks(1024) {
        flows.on_batch(chunk, Timebase::NANOS);
        if args.plot.is_none() {
            wren.on_batch(chunk, Timebase::NANOS);
            continue;
        }
        // For the plot: Wren's view after every step of capture time.
        let mut rest = chunk;
        while let Some(i) = rest.iter().position(|r| r.time >= next_snapshot) {
            wren.on_batch(&rest[..i], Timebase::NANOS);
            let t = (next_snapshot - start) as f64 / 1e9;
            timeline.push((t, wren.views(|ip| Ipv4Addr::from(ip).to_string())));
            next_snapshot += step;
            rest = &rest[i..];
        }
        wren.on_batch(rest, Timebase::NANOS);
    }
    let paths = wren.views(|ip| Ipv4Addr::from(ip).to_string());
    if let Some(file) = &args.plot {
        timeline.push(((end - start) as f64 / 1e9, paths.clone()));
        plot(&args, file, &timeline, &paths)?;
    }
    let mut vttif = Vttif::new(args.vttif.to_config(cap.hosts.addrs.is_empty())?);
    vttif.on_batch(&cap.records, Timebase::NANOS);
    vttif.finish();
    let mut lines: Vec<FlowLine> = flows
        .flows()
        .map(|(k, s)| FlowLine {
            protocol: k.protocol,
            src: format!("{}:{}", Ipv4Addr::from(k.src_ip), k.src_port),
            dst: format!("{}:{}", Ipv4Addr::from(k.dst_ip), k.dst_port),
            packets: s.packets,
            frame_bytes: s.frame_bytes,
            tcp_payload_bytes: s.tcp_payload_bytes,
            duration_s: (s.last_ns - s.first_ns) as f64 / 1e9,
        })
        .collect();
    lines.sort_by_key(|f| std::cmp::Reverse(f.frame_bytes));
    let report = Report {
        paths,
        matrix: vttif.matrix(),
        topology: vttif.topology(),
        topology_changes: vttif.changes().to_vec(),
        records: flows.records,
        broken: flows.broken,
        underlay_hosts: cap
            .hosts
            .addrs
            .iter()
            .map(|a| Ipv4Addr::from(*a).to_string())
            .collect(),
        flows: lines,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!(
            "{} records ({} with broken headers); underlay hosts: {}",
            report.records,
            report.broken,
            if report.underlay_hosts.is_empty() {
                "none (plain capture)".to_string()
            } else {
                report.underlay_hosts.join(", ")
            }
        );
        println!(
            "\npaths (Wren; RTT in microseconds, rates in Mbit/s; avail = available bandwidth)"
        );
        println!(
            "{:<16} {:<16} {:>5} {:>8} {:>9} {:>9} {:>9} {:>9} {:>8} {:>8} {:>17} {:>11} {:>6}",
            "src",
            "dst",
            "flows",
            "samples",
            "rtt_min",
            "srtt",
            "p50",
            "p99",
            "tput",
            "avail",
            "range",
            "kind",
            "trains"
        );
        let f = |x: Option<f64>| x.map(|v| format!("{v:.1}")).unwrap_or_else(|| "-".into());
        for p in &report.paths {
            println!(
                "{:<16} {:<16} {:>5} {:>8} {:>9} {:>9} {:>9} {:>9} {:>8.1} {:>8} {:>17} {:>11} {:>6}",
                p.src,
                p.dst,
                p.flows,
                p.rtt_samples,
                f(p.rtt_min_us),
                f(p.rtt_srtt_us),
                f(p.rtt_p50_us),
                f(p.rtt_p99_us),
                p.throughput_mbps,
                f(p.avail_bw_mbps),
                format!("{}..{}", f(p.avail_bw_low_mbps), f(p.avail_bw_high_mbps)),
                serde_json::to_value(p.avail_bw_kind)?.as_str().unwrap_or("?").to_string(),
                p.trains
            );
        }
        println!(
            "\ntopology (VTTIF): {} with {} edges (entries >= {:.0}% of the largest)",
            report.topology.shape,
            report.topology.edges.len(),
            report.topology.threshold * 100.0
        );
        for c in &report.topology_changes {
            println!("  at {:>7.1} s: {} ({} edges)", c.time_s, c.shape, c.edges);
        }
        println!(
            "{:<20} {:<20} {:>14} {:>10}",
            "matrix src", "dst", "bytes", "Mbit/s"
        );
        for m in report.matrix.iter().take(20) {
            println!(
                "{:<20} {:<20} {:>14} {:>10.2}",
                m.src, m.dst, m.bytes, m.rate_mbps
            );
        }
        println!("\nflows");
        println!(
            "{:>5} {:<22} {:<22} {:>10} {:>14} {:>10}",
            "proto", "src", "dst", "packets", "bytes", "seconds"
        );
        for f in &report.flows {
            println!(
                "{:>5} {:<22} {:<22} {:>10} {:>14} {:>10.3}",
                f.protocol, f.src, f.dst, f.packets, f.frame_bytes, f.duration_s
            );
        }
    }
    Ok(())
}
