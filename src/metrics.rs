//! What `serve` counts, and the Prometheus text exposition of it (`GET /metrics`).
//!
//! Counters, gauges and histograms are atomics that the ingest, the watchers and the web layer
//! update as they go; [`Metrics::render`] writes them out in the text format Prometheus scrapes
//! (version 0.0.4: `# HELP`, `# TYPE`, one sample a line). No clock, no IO: the pool's numbers
//! are handed in by the caller, so tests render exactly what they set.
//!
//! Written here rather than taken from a crate: the format is a page of rules, the set of metrics
//! is fixed, and `prometheus-client` would add a registry, a derive macro and OpenMetrics
//! features (exemplars, info metrics) that nothing here uses.
//!
//! Label values are bounded by construction: a flow source ([`FlowSource`]), a Kubernetes kind
//! from `watch`'s fixed list, or a route *template* (`/api/v1/clusters/{cluster}/flows`, from
//! axum's `MatchedPath`, never the path itself), and a [`Family`] takes at most [`Family::CAP`]
//! values. No label ever carries a cluster, namespace, workload or address: `/metrics` is served
//! without the token.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

/// A count that only goes up.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    pub fn inc(&self) {
        self.add(1);
    }
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Relaxed);
    }
    pub fn get(&self) -> u64 {
        self.0.load(Relaxed)
    }
}

/// A value that is set (an `f64`, kept as its bits). NaN until first set: such a gauge is not
/// rendered, since 0 would claim a value nobody measured.
#[derive(Debug)]
pub struct Gauge(AtomicU64);

impl Default for Gauge {
    fn default() -> Self {
        Gauge(AtomicU64::new(f64::NAN.to_bits()))
    }
}

impl Gauge {
    pub fn set(&self, v: f64) {
        self.0.store(v.to_bits(), Relaxed);
    }
    pub fn get(&self) -> f64 {
        f64::from_bits(self.0.load(Relaxed))
    }
}

/// Durations counted into fixed buckets (upper bounds in seconds, ascending), with their sum.
#[derive(Debug)]
pub struct Histogram {
    bounds: &'static [f64],
    /// One count per bound and one for "above the last"; not cumulative (rendering sums them).
    buckets: Box<[AtomicU64]>,
    sum_nanos: AtomicU64,
}

/// Requests: from a few milliseconds (a probe) to minutes (a 64 MiB ingest on a busy server).
pub const HTTP_BOUNDS: &[f64] = &[0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0];
/// Batch writes: 25,000 rows took 0.2-2 s on the loaded development VM; a stalled PostgreSQL
/// shows in the top buckets (the pool waits 3 s for a connection, a retry doubles it).
pub const BATCH_BOUNDS: &[f64] = &[0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0];

impl Histogram {
    pub fn new(bounds: &'static [f64]) -> Histogram {
        debug_assert!(bounds.windows(2).all(|w| w[0] < w[1]), "bounds ascend");
        Histogram {
            bounds,
            buckets: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum_nanos: AtomicU64::new(0),
        }
    }

    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        let i = self.bounds.iter().position(|&b| secs <= b).unwrap_or(self.bounds.len());
        self.buckets[i].fetch_add(1, Relaxed);
        self.sum_nanos.fetch_add(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX), Relaxed);
    }

    /// Observations so far.
    pub fn count(&self) -> u64 {
        self.buckets.iter().map(|b| b.load(Relaxed)).sum()
    }

    /// Cumulative counts per bound (`le`), the last for `+Inf`, and the sum in seconds. The
    /// count is the `+Inf` bucket itself, so the two always agree even while others write.
    fn snapshot(&self) -> (Vec<u64>, f64) {
        let mut total = 0;
        let cumulative = self
            .buckets
            .iter()
            .map(|b| {
                total += b.load(Relaxed);
                total
            })
            .collect();
        (cumulative, self.sum_nanos.load(Relaxed) as f64 / 1e9)
    }
}

/// One metric per value of a label, made on first use. At most [`Family::CAP`] values: any further
/// one is counted under `other`, so no input can grow the exposition without bound.
pub struct Family<M> {
    make: fn() -> M,
    members: RwLock<BTreeMap<String, Arc<M>>>,
}

impl<M> Family<M> {
    pub const CAP: usize = 64;
    pub const OTHER: &'static str = "other";

    pub fn new(make: fn() -> M) -> Family<M> {
        Family { make, members: RwLock::default() }
    }

    /// The metric for `value`.
    pub fn get(&self, value: &str) -> Arc<M> {
        if let Some(m) = self.members.read().unwrap_or_else(PoisonError::into_inner).get(value) {
            return m.clone();
        }
        let mut members = self.members.write().unwrap_or_else(PoisonError::into_inner);
        let key = if members.len() < Self::CAP || members.contains_key(value) { value } else { Self::OTHER };
        members.entry(key.to_string()).or_insert_with(|| Arc::new((self.make)())).clone()
    }

    /// Every value and its metric, in the order of the values.
    pub fn values(&self) -> Vec<(String, Arc<M>)> {
        let members = self.members.read().unwrap_or_else(PoisonError::into_inner);
        members.iter().map(|(k, m)| (k.clone(), m.clone())).collect()
    }
}

impl<M> std::fmt::Debug for Family<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let members = self.members.read().unwrap_or_else(PoisonError::into_inner);
        f.debug_list().entries(members.keys()).finish()
    }
}

/// Where flows come into a server. (`flowgate ingest` reads files in a process of its own,
/// which reports on stderr and serves no metrics, so files are no source here.)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlowSource {
    /// `POST /api/v1/clusters/{cluster}/flows`.
    Http,
    /// A Hubble Relay stream.
    Relay,
    /// `serve --demo`'s feed.
    Demo,
}

impl FlowSource {
    pub const ALL: [FlowSource; 3] = [FlowSource::Http, FlowSource::Relay, FlowSource::Demo];

    pub fn name(self) -> &'static str {
        match self {
            FlowSource::Http => "http",
            FlowSource::Relay => "relay",
            FlowSource::Demo => "demo",
        }
    }
}

/// What became of one source's flow records.
#[derive(Debug, Default)]
pub struct FlowCounters {
    /// Records read (lines, or elements of a JSON array), whatever became of them.
    pub received: Counter,
    /// Rows stored (a flow to a Service backed by several workloads is a row each).
    pub accepted: Counter,
    /// Rows already stored (a re-sent flow).
    pub duplicate: Counter,
    /// Flows older than the retention: counted, never stored.
    pub expired: Counter,
    /// Records refused: malformed, or dated in the future.
    pub rejected: Counter,
    /// Records that are not flows (replies, L7 responses, blank lines).
    pub skipped: Counter,
    /// Seconds from the newest flow of the last batch written to the moment it was written.
    pub lag_seconds: Gauge,
}

/// The numbers of the connection pool, read at scrape time.
#[derive(Debug, Clone, Copy)]
pub struct Pool {
    /// Connections open, in use or idle.
    pub open: u32,
    pub idle: u32,
    pub max: u32,
}

/// Everything `/metrics` shows but the pool, shared by the server's tasks (`AppState::metrics`).
#[derive(Debug)]
pub struct Metrics {
    flows: [FlowCounters; FlowSource::ALL.len()],
    /// One batch's transaction (with its one retry, if it needed it).
    pub batch_write: Histogram,
    /// Reconnections to Hubble Relay after a stream ended or failed.
    pub relay_reconnects: Counter,
    /// Per Kubernetes kind: watch errors, after each of which the watcher starts again (backoff).
    pub watch_restarts: Family<Counter>,
    /// Per route template: time to the response's headers.
    pub http_requests: Family<Histogram>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            flows: Default::default(),
            batch_write: Histogram::new(BATCH_BOUNDS),
            relay_reconnects: Counter::default(),
            watch_restarts: Family::new(Counter::default),
            http_requests: Family::new(|| Histogram::new(HTTP_BOUNDS)),
        }
    }
}

/// The route label of a request no route matched (a 404): one series for all of them.
pub const UNMATCHED: &str = "unmatched";

impl Metrics {
    pub fn flows(&self, source: FlowSource) -> &FlowCounters {
        &self.flows[FlowSource::ALL.iter().position(|&s| s == source).expect("every source is in ALL")]
    }

    /// The text exposition of every metric, and of the pool as given.
    pub fn render(&self, pool: Pool) -> String {
        let mut out = Exposition::default();
        type Pick = fn(&FlowCounters) -> &Counter;
        let flow_counters: [(&str, &str, Pick); 6] = [
            ("received", "Flow records read, whatever became of them", |c| &c.received),
            ("accepted", "Flow rows stored", |c| &c.accepted),
            ("duplicate", "Flow rows already stored (sent again)", |c| &c.duplicate),
            ("expired", "Flows older than the retention, not stored", |c| &c.expired),
            ("rejected", "Flow records refused (malformed, or dated in the future)", |c| &c.rejected),
            ("skipped", "Records that are not flows (replies, blank lines)", |c| &c.skipped),
        ];
        for (what, help, pick) in flow_counters {
            let name = format!("flowgate_flows_{what}_total");
            out.head(&name, help, "counter");
            for s in FlowSource::ALL {
                out.sample(&name, &[("source", s.name())], pick(self.flows(s)).get() as f64);
            }
        }
        let name = "flowgate_ingest_lag_seconds";
        out.head(name, "Seconds from the newest flow of the last batch written to its writing", "gauge");
        for s in FlowSource::ALL {
            let lag = self.flows(s).lag_seconds.get();
            if !lag.is_nan() {
                out.sample(name, &[("source", s.name())], lag);
            }
        }
        out.histogram(
            "flowgate_batch_write_duration_seconds",
            "Time to write one batch of flows in its transaction",
            "",
            &[("", &self.batch_write)],
        );
        out.head("flowgate_relay_reconnects_total", "Reconnections to Hubble Relay", "counter");
        out.sample("flowgate_relay_reconnects_total", &[], self.relay_reconnects.get() as f64);
        let name = "flowgate_watch_restarts_total";
        out.head(name, "Kubernetes watch errors, each followed by a restart of that kind's watcher", "counter");
        for (kind, c) in self.watch_restarts.values() {
            out.sample(name, &[("kind", &kind)], c.get() as f64);
        }
        let routes = self.http_requests.values();
        let routes: Vec<(&str, &Histogram)> = routes.iter().map(|(r, h)| (r.as_str(), &**h)).collect();
        out.histogram(
            "flowgate_http_request_duration_seconds",
            "Time from a request to its response's headers, per route template",
            "route",
            &routes,
        );
        let name = "flowgate_db_pool_connections";
        out.head(name, "PostgreSQL connections of the pool, in use or idle", "gauge");
        out.sample(name, &[("state", "in_use")], pool.open.saturating_sub(pool.idle) as f64);
        out.sample(name, &[("state", "idle")], pool.idle as f64);
        out.head("flowgate_db_pool_max_connections", "The pool's size", "gauge");
        out.sample("flowgate_db_pool_max_connections", &[], pool.max as f64);
        out.0
    }
}

/// The text format, a line at a time.
#[derive(Default)]
struct Exposition(String);

impl Exposition {
    fn head(&mut self, name: &str, help: &str, kind: &str) {
        let help = help.replace('\\', r"\\").replace('\n', r"\n");
        let _ = writeln!(self.0, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.0.push_str(name);
        if !labels.is_empty() {
            self.0.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.0.push(',');
                }
                let v = v.replace('\\', r"\\").replace('"', "\\\"").replace('\n', r"\n");
                let _ = write!(self.0, "{k}=\"{v}\"");
            }
            self.0.push('}');
        }
        let _ = writeln!(self.0, " {}", number(value));
    }

    /// A histogram per value of `label` (no label when it is empty).
    fn histogram(&mut self, name: &str, help: &str, label: &str, each: &[(&str, &Histogram)]) {
        self.head(name, help, "histogram");
        for (value, h) in each {
            let (cumulative, sum) = h.snapshot();
            let mut labels: Vec<(&str, &str)> = if label.is_empty() { vec![] } else { vec![(label, value)] };
            let bucket = format!("{name}_bucket");
            let les: Vec<String> = h.bounds.iter().map(|b| number(*b)).chain(["+Inf".to_string()]).collect();
            for (le, n) in les.iter().zip(&cumulative) {
                labels.push(("le", le));
                self.sample(&bucket, &labels, *n as f64);
                labels.pop();
            }
            self.sample(&format!("{name}_sum"), &labels, sum);
            self.sample(&format!("{name}_count"), &labels, *cumulative.last().unwrap_or(&0) as f64);
        }
    }
}

/// A sample value as Prometheus reads it: integers without a fraction, `+Inf`, `-Inf`, `NaN`.
fn number(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf".into() } else { "-Inf".into() }
    } else {
        format!("{v}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool() -> Pool {
        Pool { open: 5, idle: 3, max: 16 }
    }

    /// The lines of `text` that start with `prefix`.
    fn lines<'a>(text: &'a str, prefix: &str) -> Vec<&'a str> {
        text.lines().filter(|l| l.starts_with(prefix)).collect()
    }

    #[test]
    fn histograms_are_cumulative_with_count_and_sum() {
        let h = Histogram::new(&[0.1, 1.0]);
        for ms in [50, 100, 500, 2000] {
            h.observe(Duration::from_millis(ms));
        }
        let (cumulative, sum) = h.snapshot();
        // 0.1 s is in the bucket whose bound it equals (`le`: less than or equal).
        assert_eq!(cumulative, vec![2, 3, 4]);
        assert!((sum - 2.65).abs() < 1e-9, "{sum}");
        assert_eq!(h.count(), 4);
    }

    #[test]
    fn renders_every_family_with_help_type_and_samples() {
        let m = Metrics::default();
        m.flows(FlowSource::Http).accepted.add(3);
        m.flows(FlowSource::Relay).lag_seconds.set(1.5);
        m.batch_write.observe(Duration::from_millis(30));
        m.watch_restarts.get("Pod").inc();
        m.http_requests.get("/api/v1/clusters/{cluster}/flows").observe(Duration::from_millis(7));
        let text = m.render(pool());
        assert!(text.contains("# TYPE flowgate_flows_accepted_total counter\n"), "{text}");
        assert!(text.contains("\nflowgate_flows_accepted_total{source=\"http\"} 3\n"), "{text}");
        assert!(text.contains("\nflowgate_flows_accepted_total{source=\"relay\"} 0\n"), "{text}");
        // A lag nobody measured is not shown as 0.
        assert_eq!(lines(&text, "flowgate_ingest_lag_seconds{"), ["flowgate_ingest_lag_seconds{source=\"relay\"} 1.5"]);
        assert_eq!(
            lines(&text, "flowgate_batch_write_duration_seconds_bucket{le=\"0.05\"}"),
            ["flowgate_batch_write_duration_seconds_bucket{le=\"0.05\"} 1"]
        );
        assert!(text.contains("flowgate_batch_write_duration_seconds_bucket{le=\"0.025\"} 0\n"), "{text}");
        assert!(text.contains("flowgate_batch_write_duration_seconds_bucket{le=\"+Inf\"} 1\n"), "{text}");
        assert!(text.contains("flowgate_batch_write_duration_seconds_count 1\n"), "{text}");
        assert!(text.contains("flowgate_watch_restarts_total{kind=\"Pod\"} 1\n"), "{text}");
        assert!(
            text.contains(
                "flowgate_http_request_duration_seconds_bucket{route=\"/api/v1/clusters/{cluster}/flows\",le=\"0.01\"} 1\n"
            ),
            "{text}"
        );
        assert!(text.contains("flowgate_relay_reconnects_total 0\n"), "{text}");
        assert!(text.contains("flowgate_db_pool_connections{state=\"in_use\"} 2\n"), "{text}");
        assert!(text.contains("flowgate_db_pool_connections{state=\"idle\"} 3\n"), "{text}");
        assert!(text.contains("flowgate_db_pool_max_connections 16\n"), "{text}");
        // Every sample follows its family's TYPE line.
        let mut typed = std::collections::HashSet::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                typed.insert(rest.split(' ').next().unwrap().to_string());
            } else if !line.starts_with('#') {
                let name = line.split(['{', ' ']).next().unwrap();
                let family = ["_bucket", "_sum", "_count"].iter().fold(name, |n, s| n.strip_suffix(s).unwrap_or(n));
                assert!(typed.contains(name) || typed.contains(family), "{line} has no TYPE before it");
            }
        }
    }

    #[test]
    fn a_family_holds_at_most_its_cap_of_values() {
        let f: Family<Counter> = Family::new(Counter::default);
        for i in 0..Family::<Counter>::CAP + 10 {
            f.get(&format!("v{i}")).inc();
        }
        let each = f.values();
        assert_eq!(each.len(), Family::<Counter>::CAP + 1);
        let other = each.iter().find(|(k, _)| k == "other").expect("an other member");
        assert_eq!(other.1.get(), 10);
        // A value already held keeps its own member.
        f.get("v0").inc();
        assert_eq!(f.get("v0").get(), 2);
    }

    #[test]
    fn label_values_and_numbers_are_escaped() {
        let mut out = Exposition::default();
        out.sample("m", &[("route", "a\"b\\c\nd")], f64::INFINITY);
        out.sample("m", &[], 0.25);
        assert_eq!(out.0, "m{route=\"a\\\"b\\\\c\\nd\"} +Inf\nm 0.25\n");
    }
}
