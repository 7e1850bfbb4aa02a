//! `wrenvnet analyze`: read a capture (pcap or pcapng; underlay VXLAN or plain) into
//! packet records and run the analysis engines over them, as the daemon does online.

use std::net::Ipv4Addr;
use std::path::PathBuf;

use analysis::engine::{Engine, FlowTable};
use analysis::pcap::read_capture;
use analysis::record::{Timebase, FLAG_IPV6};
use analysis::vttif::{MatrixEntry, Topology, TopologyChange, Vttif};
use analysis::wren::{Explanation, PathView, Wren};
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
    /// Explain one path's answer: the trains and bursts behind it, their rates in and
    /// out, their verdicts, and how the answer follows from them (with --json, as the
    /// report's `explain`). The path as the paths table names it, the data sender first.
    #[arg(long, num_args = 2, value_names = ["SRC", "DST"], conflicts_with = "records")]
    explain: Option<Vec<String>>,
    #[command(flatten)]
    vttif: crate::daemon::config::VttifSettings,
}

/// A path's endpoints as `Wren` keys them, from their dotted names.
fn path_key(src: &str, dst: &str) -> Result<(u32, u32)> {
    let parse = |s: &str| -> Result<u32> {
        Ok(u32::from(s.parse::<Ipv4Addr>().with_context(|| {
            format!("{s} is no IPv4 address (paths are named by their endpoints)")
        })?))
    };
    Ok((parse(src)?, parse(dst)?))
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
    wren: &Wren,
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
    let scatter = path_key(&src, &dst)
        .ok()
        .and_then(|(s, d)| wren.explain(s, d, |ip| Ipv4Addr::from(ip).to_string()))
        .map(|(_, ex)| bursts_scatter(&ex));
    let svg = render(
        &[
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
        ],
        scatter.as_ref(),
    );
    std::fs::write(file, svg).with_context(|| format!("cannot write {}", file.display()))?;
    eprintln!("plot: {}", file.display());
    Ok(())
}

/// The trains and bursts behind the path's last answer, r_out against r_in, with
/// the answer marked: what `--explain` lists, drawn.
fn bursts_scatter(ex: &Explanation) -> crate::operator::plot::Scatter {
    use analysis::wren::TrainVerdict;
    let used = ex.trains.iter().filter(|t| t.excluded.is_none());
    let pick = |rose: bool| -> Vec<(f64, f64)> {
        used.clone()
            .filter(|t| (t.verdict != TrainVerdict::DidNotRise) == rose)
            .filter_map(|t| Some((t.rate_in_mbps, t.rate_out_mbps?)))
            .collect()
    };
    crate::operator::plot::Scatter {
        title: format!(
            "trains and bursts {} -> {} behind the last answer: rate out vs rate in",
            ex.src, ex.dst
        ),
        unit: "Mbit/s".into(),
        groups: vec![
            ("did not rise".into(), "#2ca02c", pick(false)),
            ("rose or lost".into(), "#d62728", pick(true)),
        ],
        answer: ex.answer.mbps,
        range: (ex.answer.low_mbps, ex.answer.high_mbps),
        answer_label: format!(
            "{} {}",
            kind_name(ex.answer.kind),
            ex.answer
                .mbps
                .map_or("-".into(), |v| format!("{v:.1} Mbit/s"))
        ),
    }
}

fn kind_name(k: analysis::wren::AvailKind) -> &'static str {
    use analysis::wren::AvailKind;
    match k {
        AvailKind::Estimate => "estimate",
        AvailKind::LowerBound => "lower bound",
        AvailKind::UpperBound => "upper bound",
        AvailKind::None => "no answer",
    }
}

/// `--explain`'s text: the path's trains, the split, and the answer step by step;
/// times in seconds from `start` (ns, the capture's first record).
pub(crate) fn explanation_text(ex: &Explanation, start: u64) -> String {
    use std::fmt::Write;
    let f = |x: Option<f64>| x.map_or("-".into(), |v| format!("{v:.1}"));
    let ans = |a: &analysis::wren::AnswerMbps| {
        format!(
            "{} {} (range {}..{})",
            kind_name(a.kind),
            f(a.mbps),
            f(a.low_mbps),
            f(a.high_mbps)
        )
    };
    let secs = |t: u64| t.saturating_sub(start) as f64 / 1e9;
    let used = ex.trains.iter().filter(|t| t.excluded.is_none()).count();
    let mut o = String::new();
    let _ = writeln!(
        o,
        "path {} -> {}: {} trains held, {} weighed (the {:.0} s before {:.3} s)",
        ex.src,
        ex.dst,
        ex.trains.len(),
        used,
        ex.window_s,
        secs(ex.last_ns)
    );
    let _ = writeln!(
        o,
        "rates in Mbit/s; r_in: the path's sending rate over the train, r_out: what its ACKs say the bottleneck let through; bound: what the train proves of A"
    );
    let _ = writeln!(
        o,
        "{:>4} {:>9} {:>9} {:>5} {:>4} {:>8} {:>6} {:>8} {:>6} {:>12} {:>10} {:>5}  use",
        "#",
        "from_s",
        "to_s",
        "kind",
        "segs",
        "r_in",
        "±%",
        "r_out",
        "±%",
        "verdict",
        "bound",
        "side"
    );
    for (i, t) in ex.trains.iter().enumerate() {
        let verdict = serde_json::to_value(t.verdict)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        let bound = t.bound_mbps.map_or("-".into(), |b| {
            let rel = if t.verdict == analysis::wren::TrainVerdict::DidNotRise {
                ">="
            } else {
                "<="
            };
            format!("{rel}{b:.1}")
        });
        let side = match t.below_split {
            Some(true) => "below",
            Some(false) => "above",
            None => "-",
        };
        let mut uses: Vec<String> = Vec::new();
        match t.excluded {
            Some(analysis::wren::Excluded::Grey) => {
                uses.push("excluded: grey verdict (PCT/PDT undecided)".into())
            }
            Some(analysis::wren::Excluded::OutsideWindow) => {
                uses.push("excluded: older than the window".into())
            }
            Some(analysis::wren::Excluded::BeforeChange) => {
                uses.push("excluded: sent before newer trains proved A changed".into())
            }
            Some(analysis::wren::Excluded::GreyRegion) => {
                uses.push("excluded: trains at its rate disagree (A's grey region)".into())
            }
            None => {}
        }
        if t.misjudged {
            uses.push("misjudged (verdict disagrees with its side)".into());
        }
        uses.extend(t.roles.iter().filter_map(|r| {
            serde_json::to_value(r)
                .ok()
                .and_then(|v| v.as_str().map(|s| s.replace('_', " ")))
        }));
        if t.in_topp_fit {
            uses.push("TOPP point".into());
        }
        let _ = writeln!(
            o,
            "{:>4} {:>9.3} {:>9.3} {:>5} {:>4} {:>8.1} {:>6.1} {:>8} {:>6} {:>12} {:>10} {:>5}  {}",
            i + 1,
            secs(t.t0_ns),
            secs(t.t_ns),
            if t.burst { "burst" } else { "train" },
            t.segments,
            t.rate_in_mbps,
            t.rate_err * 100.0,
            f(t.rate_out_mbps),
            t.rate_out_err
                .map_or("-".into(), |e| format!("{:.1}", e * 100.0)),
            verdict.replace('_', " "),
            bound,
            side,
            uses.join("; ")
        );
    }
    if let Some(c) = ex.change_ns {
        let _ = writeln!(
            o,
            "\nchange: trains from {:.3} s on proved A changed; older trains and what was delivered before are not used",
            secs(c)
        );
    }
    if let Some(s) = &ex.split {
        let _ = writeln!(
            o,
            "\nsplit: {} decisive trains below, {} above, between {} and {} Mbit/s; misjudged weight {} of {} segments; splits {}..{} as plausible; a side needs {} trains",
            s.below,
            s.above,
            f(s.between_mbps.0),
            f(s.between_mbps.1),
            s.misjudged_weight,
            s.total_weight,
            s.plausible.0,
            s.plausible.1,
            s.min_side
        );
    } else {
        o.push('\n');
    }
    let _ = writeln!(
        o,
        "verdicts: {}\n  -> {}",
        ex.rule.describe(),
        ans(&ex.from_verdicts)
    );
    let _ = writeln!(
        o,
        "TOPP: {} points, crossing {} ± {} Mbit/s: {}\n  -> {}",
        ex.topp.points,
        f(ex.topp.a_mbps),
        f(ex.topp.sd_mbps),
        ex.topp.outcome.describe(),
        ans(&ex.after_topp)
    );
    let _ = writeln!(
        o,
        "delivered floor: {} Mbit/s: {}\n  -> {}",
        f(ex.floor_mbps),
        ex.floor_rule.describe(),
        ans(&ex.answer)
    );
    let _ = write!(o, "answer: {}", ans(&ex.answer));
    o
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
    /// Why the capture was read only up to a point (cut short in a record, damaged).
    cut_short: Option<String>,
    underlay_hosts: Vec<String>,
    flows: Vec<FlowLine>,
    /// `--explain`: how the path's answer (as `paths` reports it) follows from its trains.
    #[serde(skip_serializing_if = "Option::is_none")]
    explain: Option<Explanation>,
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
    if let Some(why) = &cap.cut_short {
        log::warn!(
            "{}: read up to record {} only: {why}",
            args.pcap.display(),
            cap.records.len()
        );
    }
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
        plot(&args, file, &timeline, &paths, &wren)?;
    }
    let explain = match &args.explain {
        Some(p) => {
            let (s, d) = path_key(&p[0], &p[1])?;
            let (_, ex) = wren
                .explain(s, d, |ip| Ipv4Addr::from(ip).to_string())
                .with_context(|| format!("no path {} -> {} in the capture", p[0], p[1]))?;
            Some(ex)
        }
        None => None,
    };
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
        cut_short: cap.cut_short.clone(),
        underlay_hosts: cap
            .hosts
            .addrs
            .iter()
            .map(|a| Ipv4Addr::from(*a).to_string())
            .collect(),
        flows: lines,
        explain,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else if let Some(ex) = &report.explain {
        println!("{}", explanation_text(ex, start));
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
