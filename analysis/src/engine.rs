//! The seam between the measurement path and the engines: one small trait. The
//! analysis loop drains every worker's ring and hands each batch to every engine, so
//! Wren and VTTIF plug in without touching the dataplane; the offline reader feeds the
//! same engines from captures.

use std::collections::HashMap;

use serde::Serialize;

use crate::record::{Record, Timebase};
use crate::ring::RecordConsumer;

/// An analysis engine.
pub trait Engine: Send {
    fn name(&self) -> &'static str;
    /// A batch of records, in arrival order per ring; `tb` converts their times.
    fn on_batch(&mut self, records: &[Record], tb: Timebase);
    /// Called every publishing interval with the current time in ns.
    fn on_tick(&mut self, _now_ns: u64) {}
    /// The engine's current view for people (logs, the stats timer), if any.
    fn report(&self) -> Option<String> {
        None
    }
    /// The engine's current view for programs (the control interface), if any.
    fn view(&self) -> Option<serde_json::Value> {
        None
    }
}

/// Drains rings into engines.
pub struct AnalysisLoop {
    rings: Vec<RecordConsumer>,
    engines: Vec<Box<dyn Engine>>,
    timebase: Timebase,
    drained: u64,
}

impl AnalysisLoop {
    pub fn new(
        rings: Vec<RecordConsumer>,
        engines: Vec<Box<dyn Engine>>,
        timebase: Timebase,
    ) -> Self {
        Self {
            rings,
            engines,
            timebase,
            drained: 0,
        }
    }

    /// One pass over every ring; returns how many records it handed on.
    pub fn poll(&mut self) -> usize {
        let mut n = 0;
        let tb = self.timebase;
        let engines = &mut self.engines;
        for ring in &mut self.rings {
            n += ring.drain(|batch| {
                for e in engines.iter_mut() {
                    e.on_batch(batch, tb);
                }
            });
        }
        self.drained += n as u64;
        n
    }

    pub fn tick(&mut self, now_ns: u64) {
        for e in &mut self.engines {
            e.on_tick(now_ns);
        }
    }

    /// How record times convert to ns (for telling the engines the time now).
    pub fn timebase(&self) -> Timebase {
        self.timebase
    }

    pub fn drained(&self) -> u64 {
        self.drained
    }

    pub fn engines(&self) -> &[Box<dyn Engine>] {
        &self.engines
    }

    pub fn engines_mut(&mut self) -> &mut [Box<dyn Engine>] {
        &mut self.engines
    }

    /// The current view of the engine called `name`, if it publishes one.
    pub fn view(&self, name: &str) -> Option<serde_json::Value> {
        self.engines
            .iter()
            .find(|e| e.name() == name)
            .and_then(|e| e.view())
    }

    /// Every engine's report, one block each.
    pub fn reports(&self) -> Vec<String> {
        self.engines.iter().filter_map(|e| e.report()).collect()
    }
}

/// Per-flow totals: the simplest engine, and the one `wrenvnet analyze` prints until
/// Wren and VTTIF land. A flow is (protocol, src ip:port, dst ip:port), one direction.
#[derive(Debug, Default)]
pub struct FlowTable {
    flows: HashMap<FlowKey, FlowStats>,
    pub records: u64,
    pub broken: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct FlowKey {
    pub protocol: u8,
    pub src_ip: u32,
    pub src_port: u16,
    pub dst_ip: u32,
    pub dst_port: u16,
}

#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct FlowStats {
    pub packets: u64,
    pub frame_bytes: u64,
    pub tcp_payload_bytes: u64,
    pub first_ns: u64,
    pub last_ns: u64,
}

impl FlowTable {
    pub fn flows(&self) -> impl Iterator<Item = (&FlowKey, &FlowStats)> {
        self.flows.iter()
    }

    pub fn len(&self) -> usize {
        self.flows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.flows.is_empty()
    }
}

impl Engine for FlowTable {
    fn name(&self) -> &'static str {
        "flows"
    }

    fn on_batch(&mut self, records: &[Record], tb: Timebase) {
        for r in records {
            self.records += 1;
            if r.flags & crate::record::FLAG_BROKEN != 0 {
                self.broken += 1;
            }
            if r.protocol == 0 {
                continue;
            }
            let key = FlowKey {
                protocol: r.protocol,
                src_ip: r.src_ip,
                src_port: r.src_port,
                dst_ip: r.dst_ip,
                dst_port: r.dst_port,
            };
            let t = tb.to_ns(r.time);
            let s = self.flows.entry(key).or_insert(FlowStats {
                first_ns: t,
                ..Default::default()
            });
            s.packets += 1;
            s.frame_bytes += r.frame_len as u64;
            s.tcp_payload_bytes += r.payload_len as u64;
            s.last_ns = t;
        }
    }
}
