//! `GET /metrics`: the switch's counters, Wren's paths, VTTIF's rows and the etcd
//! session (with `[etcd]`) in the Prometheus text format (0.0.4). prometheus-client
//! encodes them (names, types, label escaping); a registry is filled from a snapshot on
//! each scrape, on the main lcore.

use std::borrow::Cow;
use std::sync::atomic::AtomicU64;

use analysis::engine::AnalysisLoop;
use dataplane::switch::counters::SwitchCounters;
use prometheus_client::encoding::prometheus_text;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use serde_json::Value;

use crate::daemon::cluster::EtcdStatus;

/// The `Content-Type` of what `render` writes.
pub const CONTENT_TYPE: &str = prometheus_text::CONTENT_TYPE;

type Labels = Vec<(&'static str, String)>;
type FloatGauge = Gauge<f64, AtomicU64>;

/// Every metric carries `host`; counters are named `wrenvnet_*_total`.
#[cold]
pub fn render(
    host: &str,
    counters: &[SwitchCounters],
    analysis: &AnalysisLoop,
    etcd: Option<&EtcdStatus>,
) -> String {
    let mut reg = Registry::with_prefix_and_labels(
        "wrenvnet",
        [(Cow::Borrowed("host"), Cow::Owned(host.to_string()))].into_iter(),
    );
    switch_metrics(&mut reg, counters);
    if let Some(e) = etcd {
        etcd_metrics(&mut reg, e);
    }
    if let Some(w) = analysis.view("wren") {
        path_metrics(&mut reg, &w);
    }
    if let Some(v) = analysis.view("vttif") {
        traffic_metrics(&mut reg, &v);
    }
    let mut out = String::new();
    prometheus_text::encode(&mut out, &reg).expect("encoding into a String cannot fail");
    out
}

fn counter(reg: &mut Registry, name: &str, help: &str, value: u64) {
    let c: Counter = Counter::default();
    c.inc_by(value);
    reg.register(name, help, c);
}

fn switch_metrics(reg: &mut Registry, counters: &[SwitchCounters]) {
    let s = SwitchCounters::snapshot_all(counters);
    counter(
        reg,
        "vm_rx_packets",
        "Frames received from VM ports",
        s.vm_rx,
    );
    counter(reg, "vm_tx_packets", "Frames sent to VM ports", s.vm_tx);
    counter(
        reg,
        "nic_rx_packets",
        "Frames received from the NIC",
        s.nic_rx,
    );
    counter(reg, "nic_tx_packets", "Frames sent to the NIC", s.nic_tx);
    counter(
        reg,
        "encapsulated",
        "Frames encapsulated in VXLAN",
        s.encapsulated,
    );
    counter(
        reg,
        "decapsulated",
        "VXLAN frames decapsulated",
        s.decapsulated,
    );
    counter(reg, "flooded", "Frames flooded", s.flooded);
    counter(
        reg,
        "transit",
        "Frames forwarded as a transit hop",
        s.transit,
    );
    counter(
        reg,
        "announcements",
        "VM arrivals announced (RARP or gratuitous ARP) and handed to the control path",
        s.announcements,
    );
    counter(
        reg,
        "announcements_lost",
        "VM announcements not handed over (ring full)",
        s.announcements_lost,
    );
    counter(
        reg,
        "pointer_forwarded",
        "Frames for a departed VM sent on to its new host by a forwarding pointer",
        s.pointer_forwarded,
    );
    counter(
        reg,
        "empty_polls",
        "Worker loops that found no packet",
        s.empty_polls,
    );
    let drops = Family::<Labels, Counter>::default();
    for (cause, n) in &s.drops {
        drops
            .get_or_create(&vec![("cause", cause.clone())])
            .inc_by(*n);
    }
    reg.register("drops", "Frames dropped, by cause", drops);
    let (packets, bytes) = (
        Family::<Labels, Counter>::default(),
        Family::<Labels, Counter>::default(),
    );
    for (class, c) in &s.qos {
        for (verdict, p, b) in [
            ("conforming", c.conforming_packets, c.conforming_bytes),
            ("exceeding", c.exceeding_packets, c.exceeding_bytes),
            ("dropped", c.dropped_packets, c.dropped_bytes),
        ] {
            let l = vec![("class", class.clone()), ("verdict", verdict.to_string())];
            packets.get_or_create(&l).inc_by(p);
            bytes.get_or_create(&l).inc_by(b);
        }
    }
    if !s.qos.is_empty() {
        reg.register(
            "qos_packets",
            "Frames from local VMs to the uplink by QoS class (reserved, best_effort) and verdict: conforming (within the class's rate), exceeding (beyond it; a reserved flow's excess goes on as best-effort), dropped",
            packets,
        );
        reg.register(
            "qos_bytes",
            "Bytes on the wire (encapsulated) of frames from local VMs to the uplink, by QoS class and verdict",
            bytes,
        );
    }
    if let Some(c) = s.cycles_per_packet {
        let g = FloatGauge::default();
        g.set(c);
        reg.register("cycles_per_packet", "Busy TSC cycles per packet", g);
    }
}

/// The etcd session (`[etcd]`): connected, the desired revision in force (absent
/// until one is applied), the time since etcd last answered (since the start until it
/// first does).
fn etcd_metrics(reg: &mut Registry, e: &EtcdStatus) {
    let up: Gauge = Gauge::default();
    up.set(i64::from(e.connected()));
    reg.register(
        "etcd_connected",
        "1 while registered in etcd with a live lease",
        up,
    );
    if let Some(r) = e.applied_revision() {
        let g: Gauge = Gauge::default();
        g.set(i64::try_from(r).unwrap_or(i64::MAX));
        reg.register(
            "etcd_applied_revision",
            "Desired-state revision last applied",
            g,
        );
    }
    let since = FloatGauge::default();
    since.set(e.seconds_since_contact());
    reg.register(
        "etcd_seconds_since_contact",
        "Seconds since etcd last answered",
        since,
    );
}

/// `src` and `dst` of a path view or a matrix row.
fn ends(v: &Value) -> Labels {
    let s = |k: &str| v[k].as_str().unwrap_or_default().to_string();
    vec![("src", s("src")), ("dst", s("dst"))]
}

fn path_metrics(reg: &mut Registry, wren: &Value) {
    let rtt = Family::<Labels, FloatGauge>::default();
    let avail = Family::<Labels, FloatGauge>::default();
    for p in wren["paths"].as_array().into_iter().flatten() {
        if let Some(r) = p["rtt_min_us"].as_f64() {
            rtt.get_or_create(&ends(p)).set(r / 1e6);
        }
        if p["avail_bw_kind"] == "estimate" {
            if let Some(a) = p["avail_bw_mbps"].as_f64() {
                avail.get_or_create(&ends(p)).set(a * 1e6);
            }
        }
    }
    reg.register("path_rtt_min_seconds", "Minimum RTT per path", rtt);
    reg.register(
        "path_avail_bw_bps",
        "Available bandwidth estimate per path (kind estimate only)",
        avail,
    );
}

fn traffic_metrics(reg: &mut Registry, vttif: &Value) {
    let rate = Family::<Labels, FloatGauge>::default();
    for r in vttif["rows"].as_array().into_iter().flatten() {
        rate.get_or_create(&ends(r))
            .set(r["smoothed_mbps"].as_f64().unwrap_or(0.0) * 1e6);
    }
    reg.register("vm_traffic_bps", "Smoothed VM-to-VM traffic rate", rate);
}

#[cfg(test)]
mod tests {
    use super::*;
    use dataplane::switch::counters::QosClass;

    fn encode(counters: &[SwitchCounters]) -> String {
        let mut reg = Registry::with_prefix("wrenvnet");
        switch_metrics(&mut reg, counters);
        let mut out = String::new();
        prometheus_text::encode(&mut out, &reg).unwrap();
        out
    }

    #[test]
    fn qos_counters_appear_by_class_and_verdict_once_anything_was_shaped() {
        let c = [SwitchCounters::default(), SwitchCounters::default()];
        assert!(
            !encode(&c).contains("qos"),
            "nothing shaped, no QoS families"
        );
        c[0].qos[QosClass::Reserved as usize]
            .conforming_packets
            .add(7);
        c[1].qos[QosClass::Reserved as usize]
            .conforming_packets
            .add(3);
        c[1].qos[QosClass::BestEffort as usize]
            .dropped_bytes
            .add(1564);
        let text = encode(&c);
        for line in [
            "wrenvnet_qos_packets_total{class=\"reserved\",verdict=\"conforming\"} 10",
            "wrenvnet_qos_bytes_total{class=\"best_effort\",verdict=\"dropped\"} 1564",
            "wrenvnet_drops_total{cause=\"BestEffortUplink\"} 0",
        ] {
            assert!(text.contains(line), "{line} not in\n{text}");
        }
    }
}
