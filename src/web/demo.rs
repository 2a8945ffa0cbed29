//! The built-in demo cluster (`flowgate serve --demo`): the article's Java app in
//! `example-java-app`, an ingress controller and a monitoring stack in two more namespaces, and
//! synthetic traffic in Flowgate's NDJSON, backfilled for a day and then fed live.
//!
//! The traffic is a pure function of time, so the same instant always gives the same lines.

use jiff::{SignedDuration, Timestamp};

pub const CLUSTER: &str = "demo";
pub const INVENTORY: &str = include_str!("demo/inventory.json");

/// (source IP, destination IP, port, protocol, process, active only before this many hours ago)
/// Client-side view: Services appear as ClusterIP:port.
type DemoConnection = (&'static str, &'static str, u16, &'static str, &'static str, Option<i64>);
const CONNECTIONS: &[DemoConnection] = &[
    ("10.244.0.12", "10.96.10.10", 80, "TCP", "java", None), // jclient -> javaapp Service
    ("10.244.0.11", "10.96.10.15", 27017, "TCP", "java", None), // javaapp -> mongo
    ("10.244.0.11", "10.96.10.13", 6379, "TCP", "java", None), // javaapp -> redis
    // javaapp -> cassandra: a stale dependency, last used 20 hours ago.
    ("10.244.0.11", "10.96.10.14", 9042, "TCP", "java", Some(20)),
    ("10.244.0.11", "192.229.173.207", 443, "TCP", "java", None), // an external API
    ("10.244.0.11", "10.96.0.10", 53, "UDP", "java", None),       // DNS
    ("10.244.0.11", "10.96.0.10", 53, "TCP", "java", None),
    ("10.244.0.12", "10.96.0.10", 53, "UDP", "curl", None),
    ("10.244.0.11", "10.244.200.9", 8125, "UDP", "java", None), // statsd at an address nobody owns
    ("172.18.0.2", "10.244.0.11", 8080, "TCP", "kubelet", None), // readiness probe
    ("10.244.1.10", "10.96.10.10", 80, "TCP", "nginx", None),   // ingress controller -> javaapp
    ("10.244.2.10", "10.244.0.11", 8080, "TCP", "prometheus", None), // scrape
    ("10.244.2.10", "10.244.0.13", 6379, "TCP", "prometheus", None),
    ("10.244.2.11", "10.96.20.10", 9090, "TCP", "grafana", None), // grafana -> prometheus Service
    ("10.244.1.10", "10.96.0.10", 53, "UDP", "nginx", None),
    ("10.244.2.11", "10.96.0.10", 53, "UDP", "grafana", None),
    ("10.244.2.11", "140.82.112.3", 443, "TCP", "grafana", None), // plugin updates
];

/// How often the live feed adds flows, and the spacing of the backfilled day.
pub const TICK: SignedDuration = SignedDuration::from_secs(5);
pub const BACKFILL: SignedDuration = SignedDuration::from_hours(24);
const BACKFILL_STEP: SignedDuration = SignedDuration::from_mins(10);

/// The flows of one tick at `now`, as NDJSON lines; `now_of_run` decides which connections are
/// still active (the stale one stops 20 hours before it).
pub fn tick(now: Timestamp, now_of_run: Timestamp) -> String {
    let mut out = String::new();
    let secs = now.as_second();
    for (i, (src, dst, port, proto, process, stop)) in CONNECTIONS.iter().enumerate() {
        if let Some(h) = stop
            && now > now_of_run - SignedDuration::from_hours(*h)
        {
            continue;
        }
        // Deterministic spread of source ports and sub-second offsets.
        let n = (secs as u64).wrapping_mul(2654435761).wrapping_add(i as u64 * 40503);
        let t = now + SignedDuration::from_millis((n % 1000) as i64);
        let sport = 32768 + (n % 28000);
        // The external services' names, as a collector that sees the pods' lookups reports them.
        let names = match *dst {
            "192.229.173.207" => r#","dst_names":["api.example.com"]"#,
            "140.82.112.3" => r#","dst_names":["github.com"]"#,
            _ => "",
        };
        out.push_str(&format!(
            "{{\"time\":\"{t}\",\"src_ip\":\"{src}\",\"src_port\":{sport},\"dst_ip\":\"{dst}\",\"dst_port\":{port},\"protocol\":\"{proto}\",\"process\":\"{process}\",\"node\":\"node-1\",\"bytes\":{},\"packets\":{}{names}}}\n",
            600 + n % 4000,
            2 + n % 12
        ));
    }
    out
}

/// A day of history up to `now`, one tick every ten minutes.
pub fn backfill(now: Timestamp) -> String {
    let mut out = String::new();
    let mut t = now - BACKFILL;
    while t < now {
        out.push_str(&tick(t, now));
        t += BACKFILL_STEP;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stale_dependency_stops_and_a_day_is_backfilled() {
        let now: Timestamp = "2026-11-26T12:00:00Z".parse().unwrap();
        assert!(!tick(now, now).contains("10.96.10.14"), "cassandra is stale now");
        let day_ago = now - SignedDuration::from_hours(23);
        assert!(tick(day_ago, now).contains("10.96.10.14"), "cassandra was used a day ago");
        let lines = backfill(now).lines().count();
        assert!(lines > 2000, "{lines}");
        let parsed = crate::inventory::parse_text(INVENTORY, "demo");
        assert!(parsed.errors.is_empty(), "{:?}", parsed.errors);
    }
}
