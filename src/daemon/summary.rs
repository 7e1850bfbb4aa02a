//! The daemon's exit: the summary written by `--summary-json`, one schema for both
//! modes, and the leak check (every mbuf back in the pool) that fails the run.
//!
//! The schema: `ports` (name, DPDK port id, DPDK's counters), the mode's own counters
//! under the mode's name (`xconnect` or `switch`), `monitor` (null with monitoring
//! off), `tsc_hz`, `mbufs_total`, `mbufs_in_use_at_exit`, `elapsed_s` and
//! `main_loop_longest_pass_ms`.

use std::path::Path;

use anyhow::{bail, Context, Result};
use dataplane::switch::counters::SwitchSnapshot;
use dataplane::xconnect::WorkerSnapshot;
use dataplane::{Mempool, PortId, PortStats};
use serde::Serialize;

use super::main_loop::Monitoring;

/// What a mode hands to the exit, its ports closed and its workers stopped.
pub struct Outcome {
    pub ports: Vec<PortSummary>,
    pub mode: ModeSummary,
    pub elapsed_s: f64,
}

/// The exit summary (see the module doc).
#[derive(Debug, Serialize)]
struct Summary {
    ports: Vec<PortSummary>,
    #[serde(flatten)]
    mode: ModeSummary,
    monitor: Option<MonitorSummary>,
    tsc_hz: u64,
    mbufs_total: u32,
    mbufs_in_use_at_exit: u32,
    elapsed_s: f64,
    /// The main loop's longest pass (ms): the longest time the rings went undrained
    /// and the API unanswered.
    main_loop_longest_pass_ms: f64,
}

#[derive(Debug, Serialize)]
pub struct PortSummary {
    pub name: String,
    pub port_id: PortId,
    pub stats: PortStats,
}

impl PortSummary {
    /// The port's counters now (zeros when DPDK cannot read them).
    pub fn read(name: &str, port_id: PortId) -> Self {
        Self {
            name: name.to_string(),
            port_id,
            stats: port_id.stats().unwrap_or_default(),
        }
    }
}

/// The mode's own counters, under the mode's name.
#[derive(Debug, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ModeSummary {
    Xconnect(XconnectSummary),
    /// Boxed: the snapshot is many times the cross-connect's summary.
    Switch(Box<SwitchSnapshot>),
}

#[derive(Debug, Serialize)]
pub struct XconnectSummary {
    pub workers: Vec<WorkerSnapshot>,
    /// Busy cycles per packet over all workers; null before any packet.
    pub cycles_per_packet: Option<f64>,
    /// Packets a full TX queue refused (freed and counted).
    pub tx_full_drops: u64,
}

#[derive(Debug, Serialize, Default, Clone, Copy)]
pub struct MonitorSummary {
    pub records_pushed: u64,
    pub records_dropped_ring_full: u64,
    pub records_analysed: u64,
    /// Several workers: records that reached the time-order merge after newer ones had
    /// been handed to the engines (see `AnalysisLoop::with_merge`).
    pub records_late: u64,
}

/// Writes the summary (when asked for) and fails when an mbuf is missing from the pool.
#[cold]
pub fn finish(
    outcome: Outcome,
    monitoring: &Monitoring,
    pool: Mempool<'_>,
    summary_json: Option<&Path>,
) -> Result<()> {
    let in_use = pool.in_use();
    let summary = Summary {
        ports: outcome.ports,
        mode: outcome.mode,
        monitor: monitoring.enabled.then(|| monitoring.summary()),
        tsc_hz: dataplane::tsc::hz(),
        mbufs_total: pool.size(),
        mbufs_in_use_at_exit: in_use,
        elapsed_s: outcome.elapsed_s,
        main_loop_longest_pass_ms: monitoring.longest_pass_ms,
    };
    if let Some(path) = summary_json {
        let json = serde_json::to_string_pretty(&summary)?;
        std::fs::write(path, json).with_context(|| format!("cannot write {}", path.display()))?;
    }
    if in_use != 0 {
        bail!(
            "{in_use} of {} mbufs were not returned to the pool (leak)",
            pool.size()
        );
    }
    println!("mbufs: all {} back in the pool", pool.size());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mode_counters_sit_under_the_mode_name() {
        let summary = Summary {
            ports: Vec::new(),
            mode: ModeSummary::Xconnect(XconnectSummary {
                workers: vec![WorkerSnapshot::default()],
                cycles_per_packet: None,
                tx_full_drops: 3,
            }),
            monitor: None,
            tsc_hz: 1,
            mbufs_total: 2,
            mbufs_in_use_at_exit: 0,
            elapsed_s: 0.5,
            main_loop_longest_pass_ms: 1.5,
        };
        let v = serde_json::to_value(&summary).unwrap();
        assert_eq!(v["xconnect"]["tx_full_drops"], 3, "{v}");
        assert_eq!(v["xconnect"]["workers"][0]["packets"], 0, "{v}");
        assert!(v["monitor"].is_null() && v["ports"].is_array(), "{v}");
        assert!(v.get("switch").is_none(), "{v}");
    }
}
