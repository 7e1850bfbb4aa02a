//! `wrenvnet controller --metrics-listen ADDR`: the replica's own figures for
//! Prometheus (text format 0.0.4), on `GET /metrics` over TCP. Every replica serves
//! its own: whether it leads, its rounds, its decisions by kind, and the VM arrivals
//! it saw the daemons converge on by themselves (`arrivals`), with the time from the
//! destination learning an arrival to the last other host's rule following it (the
//! live-migration network convergence an operator alerts on). A fleet's worst is
//! `max` over the replicas' series; they all watch the same views.
//!
//! The metrics are atomics registered once; the round updates them, a thread of its
//! own serves them: a scrape never waits for a round, and a round never for a scrape.

use std::borrow::Cow;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use anyhow::{Context, Result};
use prometheus_client::encoding::prometheus_text;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use serde_json::Value;

type FloatGauge = Gauge<f64, AtomicU64>;
type EventLabels = Vec<(&'static str, String)>;

/// Upper bounds (s) of the convergence histogram: a rule moved by the daemons' own
/// announcements takes milliseconds, one the controller moved a round or more, and
/// an arrival is reported as it stands after 30 s.
const CONVERGENCE_BUCKETS: [f64; 13] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0, 30.0,
];

/// The replica's metrics; clones share them (the server holds the registry).
#[derive(Clone)]
pub struct Metrics {
    registry: Arc<Registry>,
    leading: Gauge,
    rounds: Counter,
    round_seconds: FloatGauge,
    events: Family<EventLabels, Counter>,
    arrivals: Counter,
    arrivals_not_converged: Counter,
    convergence: Histogram,
}

impl Metrics {
    /// Every series carries `replica`.
    #[cold]
    pub fn new(replica: &str) -> Self {
        let mut reg = Registry::with_prefix_and_labels(
            "wrenvnet_controller",
            [(Cow::Borrowed("replica"), Cow::Owned(replica.to_string()))].into_iter(),
        );
        let (leading, rounds, round_seconds) =
            (Gauge::default(), Counter::default(), FloatGauge::default());
        let events = Family::<EventLabels, Counter>::default();
        let (arrivals, arrivals_not_converged) = (Counter::default(), Counter::default());
        let convergence = Histogram::new(CONVERGENCE_BUCKETS);
        reg.register(
            "leading",
            "1 while this replica holds the election and plans",
            leading.clone(),
        );
        reg.register("rounds", "Planning rounds run", rounds.clone());
        reg.register(
            "round_seconds",
            "The last round's duration",
            round_seconds.clone(),
        );
        reg.register(
            "events",
            "Decisions and events reported, by kind (applied, kept, write_failed, ...)",
            events.clone(),
        );
        reg.register(
            "vm_arrivals",
            "VM arrivals (live migrations) the daemons converged on, reported",
            arrivals.clone(),
        );
        reg.register(
            "vm_arrivals_not_converged",
            "VM arrivals some host had not followed 30 s after the destination learnt them",
            arrivals_not_converged.clone(),
        );
        reg.register(
            "vm_arrival_convergence_seconds",
            "From the destination daemon learning a VM's arrival to the last other host's \
             rule pointing at it",
            convergence.clone(),
        );
        Metrics {
            registry: Arc::new(reg),
            leading,
            rounds,
            round_seconds,
            events,
            arrivals,
            arrivals_not_converged,
            convergence,
        }
    }

    /// One round: its duration and whether this replica led.
    pub fn round(&self, seconds: f64, leading: bool) {
        self.rounds.inc();
        self.round_seconds.set(seconds);
        self.leading.set(i64::from(leading));
    }

    /// An event the controller reported (`Controller::report`).
    #[cold]
    pub fn observe(&self, e: &Value) {
        let kind = e["event"].as_str().unwrap_or("unknown").to_string();
        self.events.get_or_create(&vec![("event", kind)]).inc();
        if e["event"] != "vm_arrived" {
            return;
        }
        self.arrivals.inc();
        if e.get("not_converged").is_some() {
            self.arrivals_not_converged.inc();
        } else if let Some(ms) = e["last_host_ms"].as_f64() {
            self.convergence.observe(ms / 1e3);
        }
    }

    /// The text a scrape gets.
    pub fn render(&self) -> String {
        let mut out = String::new();
        prometheus_text::encode(&mut out, &self.registry)
            .expect("encoding into a String cannot fail");
        out
    }

    /// Serves `GET /metrics` on `addr` from a thread of its own, for the process's
    /// life; the address bound (port 0: one the system chose), or why not.
    #[cold]
    pub fn serve(&self, addr: &str) -> Result<String> {
        let server = tiny_http::Server::http(addr)
            .map_err(|e| anyhow::anyhow!("{e}"))
            .with_context(|| format!("controller: cannot listen on {addr} for metrics"))?;
        let bound = server.server_addr().to_string();
        log::info!("controller: metrics on http://{bound}/metrics");
        let me = self.clone();
        std::thread::Builder::new()
            .name("metrics".into())
            .spawn(move || {
                for req in server.incoming_requests() {
                    let response = me.response(req.method(), req.url());
                    // A scraper that went away: nothing to answer.
                    let _ = req.respond(response);
                }
            })
            .context("controller: cannot start the metrics thread")?;
        Ok(bound)
    }

    fn response(&self, method: &tiny_http::Method, url: &str) -> tiny_http::ResponseBox {
        let path = url.split('?').next().unwrap_or("");
        if *method != tiny_http::Method::Get || path != "/metrics" {
            return tiny_http::Response::from_string("only GET /metrics here\n")
                .with_status_code(404)
                .boxed();
        }
        let ct = tiny_http::Header::from_bytes("Content-Type", prometheus_text::CONTENT_TYPE)
            .expect("a valid header");
        tiny_http::Response::from_string(self.render())
            .with_header(ct)
            .boxed()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn sample(text: &str, name: &str) -> Option<f64> {
        text.lines()
            .find(|l| l.starts_with(name) && l[name.len()..].starts_with([' ', '{']))
            .and_then(|l| l.rsplit(' ').next()?.parse().ok())
    }

    #[test]
    fn arrivals_land_in_the_histogram_and_the_rest_is_counted_by_kind() {
        let m = Metrics::new("c1");
        m.round(0.012, true);
        m.observe(&json!({"event": "vm_arrived", "last_host_ms": 3.1}));
        m.observe(&json!({"event": "vm_arrived", "last_host_ms": 1500.0}));
        m.observe(&json!({"event": "vm_arrived", "last_host_ms": 30000.0,
            "not_converged": ["A"]}));
        m.observe(&json!({"event": "applied"}));
        let text = m.render();
        let h = "wrenvnet_controller_vm_arrival_convergence_seconds";
        assert_eq!(sample(&text, &format!("{h}_count")), Some(2.0), "{text}");
        assert_eq!(sample(&text, &format!("{h}_sum")), Some(1.5031), "{text}");
        // 3.1 ms is within the 5-ms bucket, 1.5 s only from 2.5 s on.
        let bucket = |le: &str| {
            text.lines()
                .find(|l| {
                    l.starts_with(&format!("{h}_bucket")) && l.contains(&format!("le=\"{le}\""))
                })
                .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        };
        assert_eq!(bucket("0.005"), Some(1.0), "{text}");
        assert_eq!(bucket("1"), Some(1.0), "{text}");
        assert_eq!(bucket("2.5"), Some(2.0), "{text}");
        assert_eq!(
            sample(&text, "wrenvnet_controller_vm_arrivals_total"),
            Some(3.0)
        );
        assert_eq!(
            sample(&text, "wrenvnet_controller_vm_arrivals_not_converged_total"),
            Some(1.0)
        );
        assert!(
            text.contains("wrenvnet_controller_events_total{replica=\"c1\",event=\"applied\"} 1"),
            "{text}"
        );
        assert_eq!(sample(&text, "wrenvnet_controller_leading"), Some(1.0));
    }

    #[test]
    fn a_scrape_over_tcp_gets_the_text_and_anything_else_a_404() {
        let m = Metrics::new("c2");
        let addr = m.serve("127.0.0.1:0").unwrap();
        let url = format!("http://{addr}/metrics");
        let body = ureq::get(&url)
            .call()
            .unwrap()
            .into_body()
            .read_to_string()
            .unwrap();
        assert!(
            body.contains("wrenvnet_controller_rounds_total{replica=\"c2\"} 0"),
            "{body}"
        );
        let other = ureq::get(&format!("http://{addr}/status")).call();
        assert!(
            matches!(other, Err(ureq::Error::StatusCode(404))),
            "{other:?}"
        );
    }
}
