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
    /// How the engine's view of one path (`src` to `dst`, as its view names them)
    /// follows from what it saw, if it explains paths and knows that one. Computed on
    /// request, off the record path (the control interface's `GET /paths/{src}/{dst}`).
    fn explain(&self, _src: &str, _dst: &str) -> Option<serde_json::Value> {
        None
    }
}

/// Drains rings into engines.
pub struct AnalysisLoop {
    rings: Vec<RecordConsumer>,
    engines: Vec<Box<dyn Engine>>,
    timebase: Timebase,
    drained: u64,
    merge: Option<Merge>,
}

/// Several workers' rings merged into one time order. A TCP flow's data and its ACKs
/// can cross different workers (RSS on the NIC, the VM's own queue choice), and Wren
/// matches one against the other: engines must see records in time order, not ring by
/// ring. Records are held until they are `horizon` ticks old (a worker pushes a
/// burst's records microseconds after stamping them), then handed on sorted.
struct Merge {
    held: Vec<Record>,
    horizon: u64,
    clock: fn() -> u64,
    /// Held records beyond this are handed on at once, oldest first (bounded memory).
    max_held: usize,
    /// The newest time handed on so far, and how many records came in older than it.
    released_up_to: u64,
    late: u64,
}

/// At most this many records wait in the merge (64 B each: 16 MiB).
pub const MERGE_MAX_HELD: usize = 1 << 18;

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
            merge: None,
        }
    }

    /// Merges the rings into one time order (see `Merge`), holding records until they
    /// are `horizon` ticks old by `clock` (the records' own time base, e.g. the TSC).
    /// Without it, each poll hands on ring after ring (right for one ring).
    pub fn with_merge(mut self, horizon: u64, clock: fn() -> u64) -> Self {
        self.merge = Some(Merge {
            held: Vec::new(),
            horizon,
            clock,
            max_held: MERGE_MAX_HELD,
            released_up_to: 0,
            late: 0,
        });
        self
    }

    /// Records that reached the merge after newer ones had been handed on (their
    /// worker was held up longer than the horizon); handed on anyway.
    pub fn late_records(&self) -> u64 {
        self.merge.as_ref().map_or(0, |m| m.late)
    }

    /// One pass over every ring; returns how many records it took from them.
    pub fn poll(&mut self) -> usize {
        if self.merge.is_some() {
            return self.poll_merged(false);
        }
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

    /// Hands on everything still held (at shutdown, after the workers stopped).
    pub fn finish(&mut self) -> usize {
        if self.merge.is_some() {
            self.poll_merged(true)
        } else {
            self.poll()
        }
    }

    fn poll_merged(&mut self, everything: bool) -> usize {
        let Some(m) = self.merge.as_mut() else {
            return 0;
        };
        let mut n = 0;
        for ring in &mut self.rings {
            n += ring.drain(|batch| m.held.extend_from_slice(batch));
        }
        self.drained += n as u64;
        if m.held.is_empty() {
            return n;
        }
        // Each ring's records are already in order: a stable sort merges the runs.
        m.held.sort_by_key(|r| r.time);
        let ready = if everything {
            m.held.len()
        } else {
            let watermark = (m.clock)().saturating_sub(m.horizon);
            let by_age = m.held.partition_point(|r| r.time <= watermark);
            by_age.max(m.held.len().saturating_sub(m.max_held))
        };
        if ready == 0 {
            return n;
        }
        let out = &m.held[..ready];
        m.late += out.iter().filter(|r| r.time < m.released_up_to).count() as u64;
        m.released_up_to = m.released_up_to.max(out[ready - 1].time);
        let tb = self.timebase;
        for e in self.engines.iter_mut() {
            e.on_batch(out, tb);
        }
        m.held.drain(..ready);
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

    /// The engine called `name`'s explanation of path `src` to `dst`, if any.
    pub fn explain(&self, name: &str, src: &str, dst: &str) -> Option<serde_json::Value> {
        (self.engines.iter())
            .find(|e| e.name() == name)
            .and_then(|e| e.explain(src, dst))
    }

    /// Every engine's report, one block each.
    pub fn reports(&self) -> Vec<String> {
        self.engines.iter().filter_map(|e| e.report()).collect()
    }
}

/// Per-flow totals: the simplest engine (`wrenvnet analyze --json` lists them as
/// `flows`). A flow is (protocol, src ip:port, dst ip:port), one direction.
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ring::record_ring;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::{Arc, Mutex};

    /// Collects the times it is handed.
    struct Times(Arc<Mutex<Vec<u64>>>);

    impl Engine for Times {
        fn name(&self) -> &'static str {
            "times"
        }
        fn on_batch(&mut self, records: &[Record], _tb: Timebase) {
            self.0
                .lock()
                .unwrap()
                .extend(records.iter().map(|r| r.time));
        }
    }

    static NOW: AtomicU64 = AtomicU64::new(0);
    fn clock() -> u64 {
        NOW.load(Ordering::Relaxed)
    }

    fn rec(time: u64) -> Record {
        Record {
            time,
            ..Default::default()
        }
    }

    #[test]
    fn merged_rings_reach_the_engines_in_time_order_once_old_enough() {
        let (mut p0, c0) = record_ring(64);
        let (mut p1, c1) = record_ring(64);
        let seen = Arc::new(Mutex::new(Vec::new()));
        let mut a = AnalysisLoop::new(
            vec![c0, c1],
            vec![Box::new(Times(Arc::clone(&seen)))],
            Timebase { hz: 1000 },
        )
        .with_merge(10, clock);
        // Worker 0 saw the data segments, worker 1 the ACKs, interleaved in time.
        p0.push_batch(&[rec(100), rec(104), rec(108)]);
        p1.push_batch(&[rec(102), rec(106), rec(120)]);
        NOW.store(112, Ordering::Relaxed);
        assert_eq!(a.poll(), 6);
        assert_eq!(*seen.lock().unwrap(), vec![100, 102]);
        NOW.store(125, Ordering::Relaxed);
        p0.push_batch(&[rec(110)]);
        a.poll();
        assert_eq!(*seen.lock().unwrap(), vec![100, 102, 104, 106, 108, 110]);
        assert_eq!(a.late_records(), 0);
        // A record older than what was handed on still goes through, counted late.
        p1.push_batch(&[rec(101)]);
        a.finish();
        assert_eq!(
            *seen.lock().unwrap(),
            vec![100, 102, 104, 106, 108, 110, 101, 120]
        );
        assert_eq!(a.late_records(), 1);
        assert_eq!(a.drained(), 8);
    }
}
