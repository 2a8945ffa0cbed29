//! `GET /metrics` in process against a fresh database: every line parses as the Prometheus text
//! format (HELP and TYPE before each family's samples, histogram buckets cumulative up to
//! `+Inf` = `_count`), the counts move with ingests, and nothing names what was ingested.

use std::collections::{BTreeMap, HashMap};

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use flowgate::ingest::Clock;
use flowgate::store::Store;
use flowgate::web::{AppState, router};
use sqlx::PgPool;
use tower::ServiceExt;

const TOKEN: &str = "metrics-test-token-0123456789";

/// A sample: its name and its labels in order.
type Series = (String, Vec<(String, String)>);

/// What a scrape said: each sample's value, and each family's TYPE.
#[derive(Debug, Default)]
struct Scrape {
    samples: BTreeMap<Series, f64>,
    types: HashMap<String, String>,
}

impl Scrape {
    fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let labels = labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        self.samples.get(&(name.to_string(), labels)).copied()
    }

    fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.get(name, labels).unwrap_or_else(|| panic!("no sample {name}{labels:?}"))
    }
}

/// Parses `text` strictly, panicking at the first line that breaks the format.
fn parse(text: &str) -> Scrape {
    let mut scrape = Scrape::default();
    let mut helped = HashMap::new();
    for (i, line) in text.lines().enumerate() {
        let at = || format!("line {}: {line:?}", i + 1);
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').unwrap_or_else(|| panic!("{}", at()));
            assert!(is_name(name) && !help.is_empty(), "{}", at());
            assert!(helped.insert(name.to_string(), ()).is_none(), "HELP twice: {}", at());
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap_or_else(|| panic!("{}", at()));
            assert!(helped.contains_key(name), "TYPE before HELP: {}", at());
            assert!(["counter", "gauge", "histogram"].contains(&kind), "{}", at());
            assert!(scrape.types.insert(name.into(), kind.into()).is_none(), "TYPE twice: {}", at());
        } else {
            assert!(!line.starts_with('#') && !line.is_empty(), "{}", at());
            let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("{}", at()));
            let value: f64 = match value {
                "+Inf" => f64::INFINITY,
                "-Inf" => f64::NEG_INFINITY,
                v => v.parse().unwrap_or_else(|_| panic!("value: {}", at())),
            };
            let (name, labels) = match series.split_once('{') {
                None => (series, Vec::new()),
                Some((name, rest)) => {
                    let rest = rest.strip_suffix('}').unwrap_or_else(|| panic!("{}", at()));
                    (name, parse_labels(rest).unwrap_or_else(|| panic!("labels: {}", at())))
                }
            };
            assert!(is_name(name), "{}", at());
            let family = family_of(name, &scrape.types).unwrap_or_else(|| panic!("no TYPE before {}", at()));
            if scrape.types[family] == "counter" {
                assert!(name.ends_with("_total") && value >= 0.0, "{}", at());
            }
            let series = (name.to_string(), labels);
            assert!(scrape.samples.insert(series, value).is_none(), "sample twice: {}", at());
        }
    }
    check_histograms(&scrape);
    scrape
}

fn is_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// `k="v",k2="v2"`, with `\\`, `\"` and `\n` escapes.
fn parse_labels(s: &str) -> Option<Vec<(String, String)>> {
    let mut labels = Vec::new();
    let mut rest = s;
    while !rest.is_empty() {
        let (key, after) = rest.split_once("=\"")?;
        if !is_name(key) {
            return None;
        }
        let mut value = String::new();
        let mut chars = after.char_indices();
        let end = loop {
            match chars.next()? {
                (_, '\\') => match chars.next()?.1 {
                    'n' => value.push('\n'),
                    c @ ('\\' | '"') => value.push(c),
                    _ => return None,
                },
                (j, '"') => break j,
                (_, c) => value.push(c),
            }
        };
        labels.push((key.to_string(), value));
        rest = &after[end + 1..];
        rest = match rest.strip_prefix(',') {
            Some(r) => r,
            None if rest.is_empty() => rest,
            None => return None,
        };
    }
    Some(labels)
}

/// The family a sample belongs to: its own name, or a histogram's name for `_bucket`, `_sum` and
/// `_count` samples.
fn family_of<'a>(name: &'a str, types: &HashMap<String, String>) -> Option<&'a str> {
    if types.contains_key(name) {
        return Some(name);
    }
    ["_bucket", "_sum", "_count"]
        .iter()
        .filter_map(|s| name.strip_suffix(s))
        .find(|f| types.get(*f).is_some_and(|t| t == "histogram"))
}

/// Every histogram series: `le` ascending, counts never falling, `+Inf` last and equal to
/// `_count`, a `_sum`.
fn check_histograms(scrape: &Scrape) {
    let mut buckets: BTreeMap<Series, Vec<(f64, f64)>> = BTreeMap::new();
    for ((name, labels), value) in &scrape.samples {
        let Some(family) = name.strip_suffix("_bucket") else { continue };
        let le = labels.iter().find(|(k, _)| k == "le").expect("a bucket has le");
        let le = if le.1 == "+Inf" { f64::INFINITY } else { le.1.parse().expect("le is a number") };
        let rest = labels.iter().filter(|(k, _)| k != "le").cloned().collect();
        buckets.entry((family.to_string(), rest)).or_default().push((le, *value));
    }
    assert!(!buckets.is_empty(), "no histogram at all");
    for ((family, labels), mut series) in buckets {
        // The sample map sorts `le` as text; the order that matters is the numeric one.
        series.sort_by(|a, b| a.0.total_cmp(&b.0));
        assert!(series.windows(2).all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1), "{family}{labels:?}: {series:?}");
        let (last_le, last) = *series.last().unwrap();
        assert_eq!(last_le, f64::INFINITY, "{family}{labels:?} has no +Inf bucket");
        let count = scrape.samples.get(&(format!("{family}_count"), labels.clone()));
        assert_eq!(count, Some(&last), "{family}{labels:?}: _count is the +Inf bucket");
        assert!(scrape.samples.contains_key(&(format!("{family}_sum"), labels.clone())), "{family}{labels:?} _sum");
    }
}

async fn send(app: &axum::Router, req: Request<Body>) -> (StatusCode, axum::http::HeaderMap, String) {
    let resp = app.clone().oneshot(req).await.unwrap();
    let (parts, body) = resp.into_parts();
    let bytes = axum::body::to_bytes(body, 4 << 20).await.unwrap();
    (parts.status, parts.headers, String::from_utf8_lossy(&bytes).into_owned())
}

async fn scrape(app: &axum::Router) -> (String, Scrape) {
    // No token: Prometheus scrapes without one.
    let (status, headers, text) = send(app, Request::get("/metrics").body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    assert_eq!(headers[header::CONTENT_TYPE], "text/plain; version=0.0.4; charset=utf-8");
    let parsed = parse(&text);
    (text, parsed)
}

async fn post_flows(app: &axum::Router, body: &str) -> String {
    let req = Request::post("/api/v1/clusters/shop-prod/flows")
        .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
        .body(Body::from(body.to_string()))
        .unwrap();
    let (status, _, answer) = send(app, req).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    answer
}

const FLOWS: &str = r#"{"time":"2026-11-11T00:00:01Z","src_ip":"10.244.7.15","src_port":40001,"dst_ip":"192.229.173.207","dst_port":443,"protocol":"TCP","process":"secret-process"}
{"time":"2026-11-11T00:00:02Z","src_ip":"10.244.7.15","src_port":40002,"dst_ip":"192.229.173.207","dst_port":443,"protocol":"TCP"}
{"time":"2026-11-11T00:00:03Z","src_ip":"10.244.7.15","src_port":40003,"dst_ip":"192.229.173.207","dst_port":443,"protocol":"TCP"}
not a flow
"#;

const INGEST_ROUTE: &str = "/api/v1/clusters/{cluster}/flows";

#[sqlx::test(migrations = false)]
async fn metrics_parse_and_move_with_ingests_without_naming_what_was_ingested(pool: PgPool) {
    let mut state = AppState::new(Store::from_pool(pool).await.unwrap(), TOKEN);
    // An hour after the flows.
    state.clock = Clock::fixed("2026-11-11T01:00:00Z".parse().unwrap());
    let app = router(state);

    let (_, before) = scrape(&app).await;
    for kind in ["counter", "gauge", "histogram"] {
        assert!(before.types.values().any(|t| t == kind), "no {kind} in {:?}", before.types);
    }
    let http = [("source", "http")];
    for what in ["received", "accepted", "duplicate", "rejected", "expired", "skipped"] {
        assert_eq!(before.value(&format!("flowgate_flows_{what}_total"), &http), 0.0, "{what}");
    }
    assert_eq!(before.value("flowgate_relay_reconnects_total", &[]), 0.0);
    assert_eq!(before.get("flowgate_ingest_lag_seconds", &http), None, "no lag before any batch");

    let first = post_flows(&app, FLOWS).await;
    assert!(first.contains(r#""accepted":3"#), "{first}");
    // The same flows again and one more: duplicates, nothing stored twice.
    let again = format!(
        "{FLOWS}{}\n",
        r#"{"time":"2026-11-11T00:00:04Z","src_ip":"10.244.7.15","src_port":40004,"dst_ip":"192.229.173.207","dst_port":443,"protocol":"TCP"}"#
    );
    let second = post_flows(&app, &again).await;
    assert!(second.contains(r#""accepted":1,"duplicate":3"#), "{second}");
    let (not_found, _, _) = send(&app, Request::get("/no/such/secret-workload").body(Body::empty()).unwrap()).await;
    assert_eq!(not_found, StatusCode::NOT_FOUND);

    let (text, after) = scrape(&app).await;
    let moved =
        |name: &str, labels: &[(&str, &str)]| after.value(name, labels) - before.get(name, labels).unwrap_or(0.0);
    assert_eq!(moved("flowgate_flows_received_total", &http), 9.0);
    assert_eq!(moved("flowgate_flows_accepted_total", &http), 4.0);
    assert_eq!(moved("flowgate_flows_duplicate_total", &http), 3.0);
    assert_eq!(moved("flowgate_flows_rejected_total", &http), 2.0);
    assert_eq!(moved("flowgate_flows_accepted_total", &[("source", "demo")]), 0.0);
    assert_eq!(moved("flowgate_batch_write_duration_seconds_count", &[]), 2.0);
    let route = [("route", INGEST_ROUTE)];
    assert_eq!(moved("flowgate_http_request_duration_seconds_count", &route), 2.0);
    assert!(after.value("flowgate_http_request_duration_seconds_sum", &route) > 0.0);
    assert_eq!(after.value("flowgate_http_request_duration_seconds_count", &[("route", "unmatched")]), 1.0);
    // The scrape before this one was timed under its own route.
    assert!(after.value("flowgate_http_request_duration_seconds_count", &[("route", "/metrics")]) >= 1.0);
    // The newest flow was written about an hour after its time (the server's clock says so).
    let lag = after.value("flowgate_ingest_lag_seconds", &http);
    assert!((3596.0..3700.0).contains(&lag), "{lag}");
    let in_use = after.value("flowgate_db_pool_connections", &[("state", "in_use")]);
    let idle = after.value("flowgate_db_pool_connections", &[("state", "idle")]);
    assert!(in_use + idle <= after.value("flowgate_db_pool_max_connections", &[]) && idle >= 1.0, "{text}");

    // Counts only: not the cluster, an address, a process or a path that was asked for.
    for secret in ["shop-prod", "10.244.7.15", "192.229.173.207", "secret-process", "secret-workload"] {
        assert!(!text.contains(secret), "/metrics shows {secret:?}:\n{text}");
    }
}

/// The parser itself refuses what breaks the format: a test of the metrics is only as strict as it.
#[test]
fn the_parser_refuses_broken_expositions() {
    let good = "# HELP a_total A.\n# TYPE a_total counter\na_total{x=\"1\"} 2\n\
                # HELP h H.\n# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_sum 3\nh_count 2\n";
    parse(good);
    let broken = [
        good.replace("# TYPE a_total counter\n", ""),
        good.replace("h_bucket{le=\"+Inf\"} 2", "h_bucket{le=\"+Inf\"} 0"),
        good.replace("h_count 2", "h_count 3"),
        good.replace("h_bucket{le=\"+Inf\"} 2\n", ""),
        good.replace("x=\"1\"", "x=1"),
        good.replace("} 2\n# HELP h", "} two\n# HELP h"),
        good.replace("a_total{", "a{").replace("a_total counter", "a counter").replace("HELP a_total", "HELP a"),
    ];
    for text in broken {
        let caught = std::panic::catch_unwind(|| parse(&text));
        assert!(caught.is_err(), "accepted:\n{text}");
    }
}
