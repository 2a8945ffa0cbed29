//! The store against the machine's PostgreSQL: each test gets a fresh database (`#[sqlx::test]`).

#[path = "support/proxy.rs"]
mod proxy;

use flowgate::flows::FlowFormat;
use flowgate::ingest::{Clock, Options, Source, ingest_sources};
use flowgate::inventory::parse_text;
use flowgate::model::{Cidr, PeerSpec, WorkloadRef};
use flowgate::policy::generate::Decisions;
use flowgate::retention::{DEFAULT_SKEW, Retention};
use flowgate::store::query::Scope;
use flowgate::store::retention::{Clusters, Removed};
use flowgate::store::{Store, StoreError};
use flowgate::topology::Catalog;
use jiff::{SignedDuration, Timestamp};
use sqlx::PgPool;

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}

fn pod(name: &str, owner_kind: &str, owner: &str, ip: &str, created: &str) -> String {
    format!(
        r#"{{"apiVersion":"v1","kind":"Pod","metadata":{{"name":"{name}","namespace":"shop","uid":"uid-{name}","labels":{{"app":"{owner}"}},"creationTimestamp":"{created}","ownerReferences":[{{"apiVersion":"apps/v1","kind":"{owner_kind}","name":"{owner}","uid":"u","controller":true}}]}},"spec":{{"containers":[{{"name":"c","ports":[{{"containerPort":8080}}]}}]}},"status":{{"podIP":"{ip}"}}}}"#
    )
}

fn list(items: &[String]) -> String {
    format!(
        r#"{{"apiVersion":"v1","kind":"List","items":[{{"apiVersion":"v1","kind":"Node","metadata":{{"name":"n1"}},"spec":{{"podCIDR":"10.244.0.0/16"}},"status":{{"addresses":[{{"type":"InternalIP","address":"172.18.0.2"}}]}}}},{}]}}"#,
        items.join(",")
    )
}

fn ndjson(lines: &[(&str, &str, &str, u16)]) -> Vec<u8> {
    lines
        .iter()
        .map(|(t, s, d, p)| {
            format!(
                r#"{{"time":"{t}","src_ip":"{s}","src_port":40000,"dst_ip":"{d}","dst_port":{p},"protocol":"TCP","process":"curl"}}"#
            ) + "\n"
        })
        .collect::<String>()
        .into_bytes()
}

/// What time it is for the tests that do not care: after all their flows, which a year's
/// retention keeps.
const NOW: &str = "2026-11-14T00:00:00Z";

fn days(n: i64) -> Retention {
    Retention::new(SignedDuration::from_hours(24 * n), DEFAULT_SKEW).unwrap()
}

async fn ingest(store: &Store, cluster: i32, name: &str, bytes: Vec<u8>) -> flowgate::ingest::IngestReport {
    ingest_at(store, cluster, name, bytes, ts(NOW), days(365)).await
}

/// An ingest at `now`, keeping flows for `retention`. These tests keep the raw rows too
/// (`--keep-flows`), so that what retention does to them can be seen; the aggregates are written
/// the same way either way.
async fn ingest_at(
    store: &Store,
    cluster: i32,
    name: &str,
    bytes: Vec<u8>,
    now: Timestamp,
    retention: Retention,
) -> flowgate::ingest::IngestReport {
    let inv = store.load_inventory(cluster).await.unwrap();
    let write = flowgate::store::ingest::WriteOptions { keep_flows: true };
    let options = Options { format: FlowFormat::Auto, threads: 2, retention, now, write };
    ingest_sources(store, cluster, std::sync::Arc::new(inv), vec![Source::Bytes { name: name.into(), bytes }], &options)
        .await
        .unwrap()
}

/// The cluster's aggregates: the sum of flows per table, hourly and daily.
async fn aggregate_sums(store: &Store, cluster: i32) -> (i64, i64) {
    sqlx::query_as(
        "select (select coalesce(sum(flows), 0)::bigint from conn_hourly where cluster_id = $1),
                (select coalesce(sum(flows), 0)::bigint from conn_daily where cluster_id = $1)",
    )
    .bind(cluster)
    .fetch_one(&store.pool)
    .await
    .unwrap()
}

fn dropped(days: &[&str]) -> Removed {
    Removed { dropped: days.iter().map(|d| format!("flows_{d}")).collect(), deleted: 0, hourly: 0 }
}

async fn endpoints(
    store: &Store,
    cluster: i32,
    since: Option<&str>,
    until: Option<&str>,
) -> Vec<(String, String, u64)> {
    let conns = store.connections(cluster, Scope::All, since.map(ts), until.map(ts), Catalog::default()).await.unwrap();
    let mut v: Vec<_> = conns.map.iter().map(|(k, s)| (k.src.key(), k.dst.key(), s.flows)).collect();
    v.sort();
    v
}

#[sqlx::test(migrations = false)]
async fn recycled_ip_resolves_to_the_pod_that_held_it(pool: PgPool) {
    let store = Store::from_pool(pool).await.unwrap();
    let c = store.cluster_id("prod", true).await.unwrap();
    let client = pod("client-0", "StatefulSet", "client", "10.244.0.5", "2026-11-01T00:00:00Z");
    // First snapshot: `old` holds 10.244.0.7.
    let first = list(&[client.clone(), pod("old-0", "StatefulSet", "old", "10.244.0.7", "2026-11-01T00:00:00Z")]);
    let report = store.import(c, &parse_text(&first, "a.json").objects, ts("2026-11-10T00:00:00Z")).await.unwrap();
    assert_eq!((report.added, report.closed), (3, 0));
    // Second snapshot: `old` is gone and `new` got the same address.
    let second = list(&[client, pod("new-0", "StatefulSet", "new", "10.244.0.7", "2026-11-12T00:00:00Z")]);
    let report = store.import(c, &parse_text(&second, "b.json").objects, ts("2026-11-12T06:00:00Z")).await.unwrap();
    assert_eq!((report.added, report.unchanged, report.closed), (1, 2, 1));

    let flows = ndjson(&[
        ("2026-11-11T00:00:00Z", "10.244.0.5", "10.244.0.7", 8080), // old held it
        ("2026-11-13T00:00:00Z", "10.244.0.5", "10.244.0.7", 8080), // new holds it
        // The second snapshot saw `old` gone only at 06:00, but `new` existed from 00:00 and two
        // pods never share an address: the newer pod wins.
        ("2026-11-12T03:00:00Z", "10.244.0.5", "10.244.0.7", 8080),
    ]);
    let r = ingest(&store, c, "f.ndjson", flows).await;
    assert_eq!((r.accepted, r.rejected), (3, 0));
    assert_eq!(
        endpoints(&store, c, None, None).await,
        vec![
            ("statefulset/shop/client".into(), "statefulset/shop/new".into(), 2),
            ("statefulset/shop/client".into(), "statefulset/shop/old".into(), 1),
        ]
    );
    // The IP history is queryable on its own.
    let holders: Vec<(String,)> =
        sqlx::query_as("select pod from pod_ips where cluster_id = $1 and ip = '10.244.0.7' order by valid_from")
            .bind(c)
            .fetch_all(&store.pool)
            .await
            .unwrap();
    assert_eq!(holders, vec![("old-0".to_string(),), ("new-0".to_string(),)]);
}

#[sqlx::test(migrations = false)]
async fn reingest_changes_no_count_and_bad_lines_cost_only_themselves(pool: PgPool) {
    let store = Store::from_pool(pool).await.unwrap();
    let c = store.cluster_id("prod", true).await.unwrap();
    let mut bytes = ndjson(&[
        ("2026-11-11T00:00:00Z", "10.244.0.5", "10.244.0.7", 8080),
        ("2026-11-11T00:00:01Z", "10.244.0.5", "10.244.0.7", 8080),
    ]);
    bytes.extend_from_slice(b"{\"time\":\"2026-11-11T00:00:02Z\",\"src_ip\":\"10.244.0.999\"}\n");
    bytes.extend_from_slice(b"not json at all\n");
    bytes.extend(ndjson(&[("2026-11-12T00:00:00Z", "10.244.0.5", "192.229.173.207", 443)]));

    let first = ingest(&store, c, "flows.ndjson", bytes.clone()).await;
    assert_eq!((first.lines, first.accepted, first.duplicate, first.rejected), (5, 3, 0, 2));
    let lines: Vec<u64> = first.errors.iter().map(|e| e.line).collect();
    assert_eq!(lines, vec![3, 4]);
    assert!(first.errors.iter().all(|e| e.source == "flows.ndjson"));

    let stats = store.stats(c).await.unwrap();
    let again = ingest(&store, c, "flows.ndjson", bytes).await;
    assert_eq!((again.accepted, again.duplicate, again.rejected), (0, 3, 2));
    assert_eq!(store.stats(c).await.unwrap(), stats);
    assert_eq!(stats.flows, 3);
    assert_eq!(stats.connections, 2);
    let sum: i64 = sqlx::query_scalar("select sum(flows)::bigint from conn_hourly where cluster_id = $1")
        .bind(c)
        .fetch_one(&store.pool)
        .await
        .unwrap();
    assert_eq!(sum, 3);
}

#[sqlx::test(migrations = false)]
async fn hubble_uuids_identify_flows(pool: PgPool) {
    let store = Store::from_pool(pool).await.unwrap();
    let c = store.cluster_id("prod", true).await.unwrap();
    let line = |uuid: &str, port: u16| {
        format!(
            r#"{{"flow":{{"time":"2026-11-11T00:00:00Z","uuid":"{uuid}","verdict":"FORWARDED","IP":{{"source":"10.244.0.5","destination":"10.244.0.7","ipVersion":"IPv4"}},"l4":{{"TCP":{{"source_port":40000,"destination_port":{port}}}}},"source":{{"namespace":"shop","pod_name":"client-0","labels":["k8s:app=client"]}},"destination":{{"namespace":"shop","pod_name":"db-0","labels":["k8s:app=db"]}},"Type":"L3_L4","is_reply":false}}}}"#
        ) + "\n"
    };
    // Same content, two uuids: two flows. The same uuid twice: one.
    let body = [
        line("11111111-1111-4111-8111-111111111111", 5432),
        line("22222222-2222-4222-8222-222222222222", 5432),
        line("11111111-1111-4111-8111-111111111111", 5432),
    ]
    .concat();
    let r = ingest(&store, c, "hubble.json", body.into_bytes()).await;
    assert_eq!((r.accepted, r.duplicate), (2, 1));
    // Hubble's metadata made the workloads and taught the store their labels.
    assert_eq!(
        endpoints(&store, c, None, None).await,
        vec![("statefulset/shop/client".into(), "statefulset/shop/db".into(), 2)]
    );
    let inv = store.load_inventory(c).await.unwrap();
    let catalog = store.load_catalog(c, &inv).await.unwrap();
    let db = WorkloadRef::new(flowgate::model::WorkloadKind::StatefulSet, "shop", "db");
    assert_eq!(catalog.workloads[&db].iter().next().unwrap().get("app").map(String::as_str), Some("db"));
}

#[sqlx::test(migrations = false)]
async fn windows_are_answered_from_the_aggregates(pool: PgPool) {
    let store = Store::from_pool(pool).await.unwrap();
    let c = store.cluster_id("prod", true).await.unwrap();
    let flows = ndjson(&[
        ("2026-11-01T10:15:00Z", "10.244.0.5", "10.244.0.7", 80),
        ("2026-11-07T10:15:00Z", "10.244.0.5", "10.244.0.7", 80),
        ("2026-11-08T09:30:00Z", "10.244.0.5", "10.244.0.8", 443),
        ("2026-11-08T09:45:00Z", "10.244.0.5", "10.244.0.8", 443),
    ]);
    ingest(&store, c, "f", flows).await;
    let u7 = ("unresolved/10.244.0.5".to_string(), "unresolved/10.244.0.7".to_string());
    let u8 = ("unresolved/10.244.0.5".to_string(), "unresolved/10.244.0.8".to_string());
    type Case<'a> = (Option<&'a str>, Option<&'a str>, Vec<(String, String, u64)>);
    let cases: [Case; 4] = [
        (None, None, vec![(u7.0.clone(), u7.1.clone(), 2), (u8.0.clone(), u8.1.clone(), 2)]),
        (Some("2026-11-07T10:00:00Z"), None, vec![(u7.0.clone(), u7.1.clone(), 1), (u8.0.clone(), u8.1.clone(), 2)]),
        (Some("2026-11-08T00:00:00Z"), None, vec![(u8.0.clone(), u8.1.clone(), 2)]),
        (None, Some("2026-11-02T00:00:00Z"), vec![(u7.0.clone(), u7.1.clone(), 1)]),
    ];
    for (since, until, want) in cases {
        assert_eq!(endpoints(&store, c, since, until).await, want, "since {since:?} until {until:?}");
    }
    let newest = store.newest_flow(c).await.unwrap();
    assert_eq!(newest, Some(ts("2026-11-08T09:45:00Z")));
    // Retention drops whole days older than now minus the retention: at 09:45 on 8 November, with
    // 7 days the 1 November flow (10:15, newer than 1 November 09:45) stays; with 6 days its day goes.
    let now = ts("2026-11-08T09:45:00Z");
    assert!(store.apply_retention(Clusters::All, now, &days(7)).await.unwrap().is_empty());
    assert_eq!(store.apply_retention(Clusters::All, now, &days(6)).await.unwrap(), dropped(&["20261101"]));
    // The raw rows of that day are gone; the aggregates every window reads stay.
    assert_eq!(store.stats(c).await.unwrap().raw_flows, 3);
    assert_eq!(store.stats(c).await.unwrap().flows, 4);
}

#[sqlx::test(migrations = false)]
async fn decisions_are_versioned_and_conflicts_are_refused(pool: PgPool) {
    let store = Store::from_pool(pool).await.unwrap();
    let c = store.cluster_id("prod", true).await.unwrap();
    let w: WorkloadRef = "deployment/shop/web".parse().unwrap();
    let none = store.decisions(c, &w).await.unwrap();
    assert_eq!((none.version, none.decisions.clone()), (0, Decisions::default()));

    let mut d = Decisions::default();
    d.exclude.insert("deployment/shop/cassandra".parse::<PeerSpec>().unwrap());
    d.trust.insert("192.229.173.0/24".parse::<Cidr>().unwrap());
    d.include_unresolved.insert("10.244.9.9".parse().unwrap());
    assert_eq!(store.put_decisions(c, &w, &d, 0, "alice").await.unwrap(), 1);
    let got = store.decisions(c, &w).await.unwrap();
    assert_eq!((got.version, got.decisions.clone(), got.author.as_deref()), (1, d.clone(), Some("alice")));

    // Bob edited version 0 too: refused, and told who changed it.
    let err = store.put_decisions(c, &w, &Decisions::default(), 0, "bob").await.unwrap_err();
    match err {
        StoreError::Conflict { current, author, .. } => assert_eq!((current, author.as_str()), (1, "alice")),
        other => panic!("expected a conflict, got {other}"),
    }
    assert_eq!(store.put_decisions(c, &w, &Decisions::default(), 1, "bob").await.unwrap(), 2);
    let history: i64 = sqlx::query_scalar("select count(*) from decision_history where cluster_id = $1")
        .bind(c)
        .fetch_one(&store.pool)
        .await
        .unwrap();
    assert_eq!(history, 2);

    // Policy revisions are recorded only when the YAML of their dialect changes: switching
    // dialects back and forth makes no new revision of either.
    assert_eq!(store.record_policy(c, &w, "a: 1\n", 1, "kubernetes").await.unwrap(), 1);
    assert_eq!(store.record_policy(c, &w, "a: 1\n", 2, "kubernetes").await.unwrap(), 1);
    assert_eq!(store.record_policy(c, &w, "a: 2\n", 2, "kubernetes").await.unwrap(), 2);
    assert_eq!(store.record_policy(c, &w, "c: 1\n", 2, "cilium").await.unwrap(), 3);
    assert_eq!(store.record_policy(c, &w, "a: 2\n", 2, "kubernetes").await.unwrap(), 2);
    assert_eq!(store.record_policy(c, &w, "c: 1\n", 2, "cilium").await.unwrap(), 3);

    // Trusted names are kept with the rest, and go back as they came.
    let mut named = Decisions::default();
    named.trust_names.insert("api.example.com".parse().unwrap());
    assert_eq!(store.put_decisions(c, &w, &named, 2, "alice").await.unwrap(), 3);
    assert_eq!(store.decisions(c, &w).await.unwrap().decisions, named);
}

/// DNS answers and names ingested into the store give the review the same names, and the Cilium
/// dialect the same bytes, as the offline pipeline on the same files; names not seen within the
/// retention are removed with the flows.
#[sqlx::test(migrations = false)]
async fn dns_names_are_stored_and_give_the_offline_policies(pool: PgPool) {
    let store = Store::from_pool(pool).await.unwrap();
    let c = store.cluster_id("java", true).await.unwrap();
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/java-app");
    let inv_text = std::fs::read_to_string(format!("{dir}/inventory.json")).unwrap();
    store.import(c, &parse_text(&inv_text, "inventory.json").objects, ts("2026-11-01T00:00:00Z")).await.unwrap();
    let now = ts("2026-11-26T00:00:00Z");
    let flows = std::fs::read(format!("{dir}/flows.ndjson")).unwrap();
    let dns = std::fs::read(format!("{dir}/dns.json")).unwrap();
    ingest_at(&store, c, "flows.ndjson", flows, now, days(30)).await;
    let r = ingest_at(&store, c, "dns.json", dns.clone(), now, days(30)).await;
    assert_eq!((r.dns_answers, r.accepted, r.skipped), (2, 0, 1), "{r}");
    // Again: nothing new.
    ingest_at(&store, c, "dns.json", dns, now, days(30)).await;
    let names = store.names(c, None).await.unwrap();
    let api: flowgate::model::DnsName = "api.example.com".parse().unwrap();
    assert_eq!(names.addresses_of(&api).len(), 2);
    // Known by the window's end only.
    assert!(store.names(c, Some(ts("2026-11-25T10:00:00Z"))).await.unwrap().is_empty());

    let inv = store.load_inventory(c).await.unwrap();
    let mut extra = Decisions::default();
    extra.trust_names.insert(api.clone());
    let target = flowgate::review::Target::Namespace { namespace: "example-java-app", only: None };
    let stored = flowgate::review::review(&store, c, &inv, target, None, None, &extra, true).await.unwrap();
    let obs = flowgate::offline::observe(&flowgate::offline::Inputs {
        inventory: vec![format!("{dir}/inventory.json").into()],
        flows: vec![format!("{dir}/flows.ndjson"), format!("{dir}/dns.json")],
        ..Default::default()
    })
    .unwrap();
    assert_eq!(stored.connections.names, obs.connections.names);
    let opts = flowgate::policy::generate::Options {
        namespaces: Some(["example-java-app".to_string()].into()),
        decisions: extra,
        ..Default::default()
    };
    let (generation, verification) = flowgate::offline::generate_and_verify(&obs, &opts);
    let offline =
        flowgate::review::Reviewed { connections: obs.connections, generation, verification, decisions: vec![] };
    let spell = |r: &flowgate::review::Reviewed, inv: &flowgate::inventory::Inventory| {
        flowgate::report::Spelled::new(r, inv, flowgate::policy::Dialect::Cilium).unwrap()
    };
    let (a, b) = (spell(&stored, &inv), spell(&offline, &obs.inventory));
    assert_eq!(a.yaml, b.yaml);
    assert!(a.yaml.contains("matchName: api.example.com") && a.verification.ok(), "{}", a.yaml);

    // Retention: a week later with a 3-day retention, the names go (they were last seen before).
    store.apply_retention(Clusters::One(c), ts("2026-12-03T00:00:00Z"), &days(3)).await.unwrap();
    assert!(store.names(c, None).await.unwrap().is_empty());
}

/// The usual write folds each batch's aggregates in Rust; a batch holding stored flows is written
/// again, folding them in SQL from the rows actually inserted. Both must store the same thing.
#[sqlx::test(migrations = false)]
async fn both_write_paths_store_the_same_aggregates(pool: PgPool) {
    let store = Store::from_pool(pool).await.unwrap();
    let lines: Vec<String> = (0..40)
        .map(|i| {
            // Two hours, two destinations, eleven processes (the aggregates keep eight), some drops.
            let minute = i * 3;
            let (h, m) = (10 + minute / 60, minute % 60);
            let dst = if i % 3 == 0 { "10.244.0.8" } else { "10.244.0.7" };
            let verdict = if i % 7 == 0 { "DROPPED" } else { "FORWARDED" };
            // Three flows in four say nothing of their direction (source ports 9001-9039).
            let flags = if i % 4 != 0 { "ACK" } else { "SYN" };
            format!(
                r#"{{"time":"2026-11-11T{h:02}:{m:02}:00Z","src_ip":"10.244.0.5","src_port":{},"dst_ip":"{dst}","dst_port":80,"protocol":"TCP","process":"p{}","verdict":"{verdict}","tcp_flags":"{flags}"}}"#,
                if i % 4 != 0 { 9000 + i } else { 40000 + i },
                i % 11
            ) + "\n"
        })
        .collect();
    let all = lines.concat().into_bytes();
    let first_half = lines[..20].concat().into_bytes();

    let fresh = store.cluster_id("fresh", true).await.unwrap();
    let r = ingest(&store, fresh, "all", all.clone()).await;
    assert_eq!((r.accepted, r.duplicate), (40, 0));

    let mixed = store.cluster_id("mixed", true).await.unwrap();
    ingest(&store, mixed, "half", first_half).await;
    let r = ingest(&store, mixed, "all", all.clone()).await;
    assert_eq!((r.accepted, r.duplicate), (20, 20));
    let r = ingest(&store, mixed, "all", all).await;
    assert_eq!((r.accepted, r.duplicate), (0, 40));

    let rows = |c: i32| {
        let pool = store.pool.clone();
        async move {
            type Row = (String, String, String, i64, i64, String, String, Vec<String>, i64, Vec<i32>);
            sqlx::query_as::<_, Row>(
                "select bucket::text, src_endpoint, dst_endpoint, flows, dropped, first_seen::text, last_seen::text, processes,
                        undecided, reply_ports
                 from conn_hourly where cluster_id = $1 order by 1, 2, 3",
            )
            .bind(c)
            .fetch_all(&pool)
            .await
            .unwrap()
        }
    };
    let want = rows(fresh).await;
    assert_eq!(rows(mixed).await, want);
    // Two hours x two destinations; 40 flows, 6 dropped; at most eight processes, the first in order.
    assert_eq!(want.len(), 4);
    assert_eq!(want.iter().map(|r| r.3).sum::<i64>(), 40);
    assert_eq!(want.iter().map(|r| r.4).sum::<i64>(), 6);
    // 11:00 to 10.244.0.7 saw ten processes.
    assert_eq!(want[2].7, ["p0", "p1", "p10", "p2", "p3", "p4", "p5", "p6"]);
    // 30 flows were undecided; each row keeps the smallest eight of their source ports.
    assert_eq!(want.iter().map(|r| r.8).sum::<i64>(), 30);
    assert!(want.iter().all(|r| r.9.len() <= 8 && r.9.windows(2).all(|w| w[0] < w[1])), "{want:?}");
    assert!(want.iter().any(|r| r.9.len() == 8), "{want:?}");
    // The daily rows hold the same undecided counts.
    let daily: i64 = sqlx::query_scalar("select sum(undecided)::bigint from conn_daily where cluster_id = $1")
        .bind(mixed)
        .fetch_one(&store.pool)
        .await
        .unwrap();
    assert_eq!(daily, 30);
}

/// The proxy fixture (replies without `is_reply`, an unsettled ephemeral connection) through the
/// store: the namespace's review settles directions as the offline pipeline does.
#[sqlx::test(migrations = false)]
async fn stored_flows_keep_their_direction_and_the_review_settles_it(pool: PgPool) {
    let store = Store::from_pool(pool).await.unwrap();
    let cluster = store.cluster_id("kind", true).await.unwrap();
    let bytes =
        std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/bookinfo-proxy/flows.json")).unwrap();
    let r = ingest_at(&store, cluster, "proxy", bytes, ts(NOW), days(3650)).await;
    assert_eq!((r.accepted, r.rejected), (11, 0));
    let inv = store.load_inventory(cluster).await.unwrap();
    let target = flowgate::review::Target::Namespace { namespace: "bookinfo", only: None };
    let reviewed =
        flowgate::review::review(&store, cluster, &inv, target, None, None, &Decisions::default(), true).await.unwrap();
    assert!(reviewed.verification.ok(), "{:?}", reviewed.verification.mismatches);
    // ratings' answers to the remote node are gone; the one unsettled connection is excluded.
    assert!(!reviewed.generation.review.iter().any(|r| r.key.dst.key().contains("10.244.1.29")));
    let undecided: Vec<_> = reviewed.generation.review.iter().filter(|r| r.undecided).collect();
    assert_eq!(undecided.len(), 2, "{undecided:?}");
    assert!(undecided.iter().all(|r| r.key.port.get() == 45001 && r.status.reason() == Some("undecided_direction")));
    let yaml = flowgate::policy::generate::to_yaml(&reviewed.generation.policies).unwrap();
    for port in ["58634", "58950", "45001", "51514"] {
        assert!(!yaml.contains(&format!("port: {port}")), "{yaml}");
    }
    // The same bytes as the offline pipeline on the same file, identities included.
    let fixture = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/bookinfo-proxy/flows.json");
    let obs =
        flowgate::offline::observe(&flowgate::offline::Inputs { flows: vec![fixture.into()], ..Default::default() })
            .unwrap();
    let opts =
        flowgate::policy::generate::Options { namespaces: Some(["bookinfo".to_string()].into()), ..Default::default() };
    let (offline, _) = flowgate::offline::generate_and_verify(&obs, &opts);
    assert_eq!(yaml, flowgate::policy::generate::to_yaml(&offline.policies).unwrap());
    assert!(!format!("{:?}", reviewed.generation.review).contains("10.244.0.148"));
    // Identities seen before any flow of their pod are stored as identities and settled by the
    // review: the same answer.
    let late = store.cluster_id("kind-late", true).await.unwrap();
    let text = std::fs::read_to_string(fixture).unwrap();
    let (proxy, rest): (Vec<&str>, Vec<&str>) = text
        .lines()
        .partition(|l| l.contains(r#""source":"10.244.0.148""#) || l.contains(r#""IP":{"source":"10.244.0.148""#));
    assert_eq!(proxy.len(), 2, "the fixture's two proxy flows");
    let reordered = proxy.iter().chain(rest.iter()).map(|l| format!("{l}\n")).collect::<String>();
    ingest_at(&store, late, "proxy-first", reordered.into_bytes(), ts(NOW), days(3650)).await;
    let stored: i64 =
        sqlx::query_scalar("select count(*) from conn_hourly where cluster_id = $1 and src_endpoint like 'identity/%'")
            .bind(late)
            .fetch_one(&store.pool)
            .await
            .unwrap();
    assert_eq!(stored, 1, "stored by identity");
    let target = flowgate::review::Target::Namespace { namespace: "bookinfo", only: None };
    let again =
        flowgate::review::review(&store, late, &inv, target, None, None, &Decisions::default(), true).await.unwrap();
    assert_eq!(flowgate::policy::generate::to_yaml(&again.generation.policies).unwrap(), yaml);
    // One workload's page settles its own replies too.
    let ratings: WorkloadRef = "deployment/bookinfo/ratings-v1".parse().unwrap();
    let one = flowgate::review::review(
        &store,
        cluster,
        &inv,
        flowgate::review::Target::Workload(&ratings),
        None,
        None,
        &Decisions::default(),
        true,
    )
    .await
    .unwrap();
    assert!(
        !one.connections.map.keys().any(|k| k.dst.key().contains("10.244.1.29")),
        "{:?}",
        one.connections.map.keys()
    );
}

/// Windows read whole days from the daily aggregates and the hours at their edges from the hourly
/// ones. Whatever the window, the answer must be what the raw flows say for the same hour-aligned
/// window: counts, first and last seen, and processes (the smallest eight).
#[sqlx::test(migrations = false)]
async fn windows_over_days_agree_with_the_raw_flows(pool: PgPool) {
    let store = Store::from_pool(pool).await.unwrap();
    let c = store.cluster_id("prod", true).await.unwrap();
    let start = ts("2026-11-06T00:00:00Z");
    let lines: String = (0..150)
        .map(|i: i64| {
            // Spread over three days, at hours and minutes all over the clock.
            let t = start + jiff::SignedDuration::from_mins((i * 467) % (72 * 60));
            let dst = ["10.244.0.7", "10.244.0.8", "10.244.0.9"][(i % 3) as usize];
            format!(
                r#"{{"time":"{t}","src_ip":"10.244.0.5","src_port":{},"dst_ip":"{dst}","dst_port":80,"protocol":"TCP","process":"p{:02}"}}"#,
                30000 + i,
                i % 11
            ) + "\n"
        })
        .collect();
    let r = ingest(&store, c, "f", lines.into_bytes()).await;
    assert_eq!(r.accepted, 150);

    let sinces = [
        None,
        Some("2026-11-06T05:30:00Z"),
        Some("2026-11-06T23:59:00Z"),
        Some("2026-11-07T00:00:00Z"),
        Some("2026-11-07T13:10:00Z"),
    ];
    let untils = [
        None,
        Some("2026-11-07T00:00:00Z"),
        Some("2026-11-07T22:59:59Z"),
        Some("2026-11-08T05:00:00Z"),
        Some("2026-11-08T23:00:00Z"),
    ];
    let mut checked = 0;
    for since in sinces {
        for until in untils {
            let got = store.connections(c, Scope::All, since.map(ts), until.map(ts), Catalog::default()).await.unwrap();
            let mut got: Vec<(String, i64, String, String, Vec<String>)> = got
                .map
                .iter()
                .map(|(k, s)| {
                    (
                        k.dst.key(),
                        s.flows as i64,
                        s.first_seen.to_string(),
                        s.last_seen.to_string(),
                        s.processes.iter().cloned().collect(),
                    )
                })
                .collect();
            got.sort();
            // The same window over the raw flows: from the start of `since`'s hour to the end of `until`'s.
            let want: Vec<(String, i64, String, String, Vec<String>)> = sqlx::query_as::<_, (String, i64, i64, i64, Vec<String>)>(
                "select dst_endpoint, count(*), (extract(epoch from min(time)) * 1000000)::bigint,
                        (extract(epoch from max(time)) * 1000000)::bigint, (array_agg(distinct process order by process))[1:8]
                 from flows
                 where cluster_id = $1
                   and ($2::timestamptz is null or time >= date_trunc('hour', $2::timestamptz, 'UTC'))
                   and ($3::timestamptz is null or date_trunc('hour', time, 'UTC') <= $3::timestamptz)
                 group by dst_endpoint order by dst_endpoint",
            )
            .bind(c)
            .bind(since)
            .bind(until)
            .fetch_all(&store.pool)
            .await
            .unwrap()
            .into_iter()
            .map(|(d, n, first, last, p)| {
                let t = |us: i64| Timestamp::from_microsecond(us).unwrap().to_string();
                (d, n, t(first), t(last), p)
            })
            .collect();
            assert_eq!(got, want, "since {since:?} until {until:?}");
            checked += want.len();
        }
    }
    // Most windows hold all three connections.
    assert!(checked > 60, "{checked}");
}

/// A server applies the retention by itself, at start and then periodically.
#[sqlx::test(migrations = false)]
async fn the_server_drops_old_days_by_itself(pool: PgPool) {
    let store = Store::from_pool(pool).await.unwrap();
    let c = store.cluster_id("prod", true).await.unwrap();
    let flows = ndjson(&[
        ("2026-11-01T10:15:00Z", "10.244.0.5", "10.244.0.7", 80),
        ("2026-11-08T09:45:00Z", "10.244.0.5", "10.244.0.8", 443),
    ]);
    ingest(&store, c, "f", flows).await;
    let task = tokio::spawn(flowgate::web::run_retention(
        store.clone(),
        days(6),
        Clock::fixed(ts("2026-11-08T09:45:00Z")),
        std::time::Duration::from_millis(50),
        std::future::pending(),
    ));
    let mut flows = 0;
    for _ in 0..100 {
        flows = store.stats(c).await.unwrap().raw_flows;
        if flows == 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    task.abort();
    assert_eq!(flows, 1, "the 1 November partition should be gone");
}

/// A file may list an object twice (two `kubectl get` outputs concatenated, say): the import
/// stores it once, as its last listing says.
#[sqlx::test(migrations = false)]
async fn an_object_listed_twice_is_imported_once_as_last_listed(pool: PgPool) {
    let store = Store::from_pool(pool).await.unwrap();
    let c = store.cluster_id("prod", true).await.unwrap();
    let first = pod("db-0", "StatefulSet", "db", "10.244.0.7", "2026-11-01T00:00:00Z");
    let last = pod("db-0", "StatefulSet", "db", "10.244.0.8", "2026-11-01T00:00:00Z");
    let text = list(&[first, pod("web-0", "StatefulSet", "web", "10.244.0.5", "2026-11-01T00:00:00Z"), last]);
    let objects = parse_text(&text, "twice.json").objects;
    assert_eq!(objects.len(), 4, "the node, db-0 twice and web-0");
    let report = store.import(c, &objects, ts("2026-11-10T00:00:00Z")).await.unwrap();
    assert_eq!((report.added, report.updated, report.unchanged, report.closed), (3, 0, 0, 0));
    let ips: Vec<(String, String)> =
        sqlx::query_as("select pod, host(ip) from pod_ips where cluster_id = $1 order by pod")
            .bind(c)
            .fetch_all(&store.pool)
            .await
            .unwrap();
    assert_eq!(ips, vec![("db-0".into(), "10.244.0.8".into()), ("web-0".into(), "10.244.0.5".into())]);
    // The same file again changes nothing.
    let report = store.import(c, &objects, ts("2026-11-11T00:00:00Z")).await.unwrap();
    assert_eq!((report.added, report.updated, report.unchanged, report.closed), (0, 0, 3, 0));
}

/// Retention is per cluster and counted back from now: another cluster's flows, newer or dated in
/// the future, remove none of this one's; a day both clusters have flows in loses only the rows of
/// the cluster whose retention passed it, and is dropped once no cluster keeps anything in it.
#[sqlx::test(migrations = false)]
async fn retention_is_per_cluster_and_counted_back_from_now(pool: PgPool) {
    let store = Store::from_pool(pool).await.unwrap();
    let (a, b) = (store.cluster_id("a", true).await.unwrap(), store.cluster_id("b", true).await.unwrap());
    let now = ts("2026-11-14T00:00:00Z");
    let a_file = ndjson(&[
        ("2026-11-05T10:00:00Z", "10.244.0.5", "10.244.0.7", 80),
        ("2026-11-12T10:00:00Z", "10.244.0.5", "10.244.0.7", 80),
    ]);
    let r = ingest_at(&store, a, "a", a_file.clone(), now, days(30)).await;
    assert_eq!((r.accepted, r.rejected), (2, 0));
    // Cluster b: the same day as a, a newer flow, and one dated next year.
    let b_file = ndjson(&[
        ("2026-11-05T11:00:00Z", "10.244.0.5", "10.244.0.8", 80),
        ("2026-11-13T23:00:00Z", "10.244.0.5", "10.244.0.8", 80),
        ("2027-06-01T00:00:00Z", "10.244.0.5", "10.244.0.8", 80),
    ]);
    let r = ingest_at(&store, b, "b", b_file, now, days(30)).await;
    assert_eq!((r.accepted, r.rejected), (2, 1));

    // b's week passes 5 November: b's row goes, a's stays, and so does the day they share.
    let removed = store.apply_retention(Clusters::One(b), now, &days(7)).await.unwrap();
    assert_eq!(removed, Removed { dropped: vec![], deleted: 1, hourly: 0 });
    // A run over every cluster with a month's retention removes nothing.
    assert!(store.apply_retention(Clusters::All, now, &days(30)).await.unwrap().is_empty());
    assert_eq!((store.stats(a).await.unwrap().raw_flows, store.stats(b).await.unwrap().raw_flows), (2, 1));
    assert_eq!(store.newest_flow(b).await.unwrap(), Some(ts("2026-11-13T23:00:00Z")));

    // a's week passes it too: now nobody keeps anything in 5 November, and its partition goes.
    assert_eq!(store.apply_retention(Clusters::One(a), now, &days(7)).await.unwrap(), dropped(&["20261105"]));
    assert_eq!((store.stats(a).await.unwrap().raw_flows, store.stats(b).await.unwrap().raw_flows), (1, 1));
    // a's file again: its old flow is expired, the other a duplicate; no aggregate moves.
    let before = aggregate_sums(&store, a).await;
    assert_eq!(before, (2, 2));
    let r = ingest_at(&store, a, "a", a_file, now, days(7)).await;
    assert_eq!((r.accepted, r.duplicate, r.expired), (0, 1, 1));
    assert_eq!(aggregate_sums(&store, a).await, before);
}

/// A flow dated beyond now plus the clock skew allowance is a rejected line, reported with its
/// line number and why; the good lines land, and the newest flow stays a real one.
#[sqlx::test(migrations = false)]
async fn a_flow_from_the_future_is_rejected_with_its_line_and_the_rest_lands(pool: PgPool) {
    let store = Store::from_pool(pool).await.unwrap();
    let now = ts("2026-11-14T00:00:00Z");
    let bytes = ndjson(&[
        ("2026-11-13T12:00:00Z", "10.244.0.5", "10.244.0.7", 80),
        ("2999-01-01T00:00:00Z", "10.244.0.5", "10.244.0.7", 80),
        ("2026-11-13T23:59:00Z", "10.244.0.5", "10.244.0.7", 80),
        ("2026-11-14T00:05:00Z", "10.244.0.5", "10.244.0.7", 80), // within the 10 minutes
        ("2026-11-14T00:11:00Z", "10.244.0.5", "10.244.0.7", 80),
    ]);
    let c = store.cluster_id("prod", true).await.unwrap();
    let r = ingest_at(&store, c, "f.ndjson", bytes.clone(), now, days(7)).await;
    assert_eq!((r.lines, r.accepted, r.rejected, r.expired), (5, 3, 2, 0));
    let errors: Vec<(u64, &str)> = r.errors.iter().map(|e| (e.line, e.source.as_str())).collect();
    assert_eq!(errors, vec![(2, "f.ndjson"), (5, "f.ndjson")]);
    assert!(r.errors[0].reason.contains("2999-01-01T00:00:00Z is in the future"), "{}", r.errors[0].reason);
    assert_eq!(store.stats(c).await.unwrap().flows, 3);
    assert_eq!(store.newest_flow(c).await.unwrap(), Some(ts("2026-11-14T00:05:00Z")));

    // Without a skew allowance, five minutes ahead is the future too.
    let strict = store.cluster_id("strict", true).await.unwrap();
    let no_skew = Retention::new(SignedDuration::from_hours(24 * 7), SignedDuration::ZERO).unwrap();
    let r = ingest_at(&store, strict, "f.ndjson", bytes, now, no_skew).await;
    assert_eq!((r.accepted, r.rejected), (2, 3));
    assert_eq!(r.errors.iter().map(|e| e.line).collect::<Vec<_>>(), vec![2, 4, 5]);
}

/// `--keep-flows=1d`: raw rows go after a day, while the aggregates, the ledger and what an ingest
/// takes follow the week's retention.
#[sqlx::test(migrations = false)]
async fn raw_flows_kept_shorter_than_the_retention_go_first(pool: PgPool) {
    let store = Store::from_pool(pool).await.unwrap();
    let c = store.cluster_id("prod", true).await.unwrap();
    let file = ndjson(&[
        ("2026-11-01T10:00:00Z", "10.244.0.5", "10.244.0.7", 80),
        ("2026-11-02T10:00:00Z", "10.244.0.5", "10.244.0.7", 80),
        ("2026-11-03T10:00:00Z", "10.244.0.5", "10.244.0.8", 443),
    ]);
    let now = ts("2026-11-03T12:00:00Z");
    let week = days(7);
    let one_day = week.with_raw_flows(SignedDuration::from_hours(24)).unwrap();
    let r = ingest_at(&store, c, "f", file.clone(), now, one_day).await;
    assert_eq!((r.accepted, r.expired), (3, 0));
    assert_eq!(store.stats(c).await.unwrap().raw_flows, 3);
    // A day back from 3 November 12:00 is 2 November 12:00: the 1 November partition is wholly
    // older; 2 November's is not, and stays until all of it is past.
    let removed = store.apply_retention(Clusters::One(c), now, &one_day).await.unwrap();
    assert_eq!(removed, dropped(&["20261101"]));
    assert_eq!(store.stats(c).await.unwrap().raw_flows, 2);
    assert_eq!(aggregate_sums(&store, c).await, (3, 3));
    assert_eq!(endpoints(&store, c, None, None).await.iter().map(|e| e.2).sum::<u64>(), 3);
    // The week still decides what is taken and what was taken before: the same file again is
    // all duplicates, none expired, and the aggregates do not change.
    let r = ingest_at(&store, c, "f", file, now, one_day).await;
    assert_eq!((r.accepted, r.duplicate, r.expired), (0, 3, 0));
    assert_eq!(aggregate_sums(&store, c).await, (3, 3));
    // With the retention's own time for raw rows, the same run removes nothing more.
    assert!(store.apply_retention(Clusters::One(c), now, &week).await.unwrap().is_empty());
}

/// Flows older than the retention cutoff are counted as expired and never stored: a file ingested
/// again after retention removed its days changes no aggregate, even under a longer retention
/// than the one that removed them.
#[sqlx::test(migrations = false)]
async fn reingesting_flows_older_than_the_cutoff_changes_no_aggregate(pool: PgPool) {
    let store = Store::from_pool(pool).await.unwrap();
    let c = store.cluster_id("prod", true).await.unwrap();
    let file = ndjson(&[
        ("2026-11-01T10:00:00Z", "10.244.0.5", "10.244.0.7", 80),
        ("2026-11-01T11:00:00Z", "10.244.0.5", "10.244.0.7", 80),
        ("2026-11-02T10:00:00Z", "10.244.0.5", "10.244.0.8", 443),
    ]);
    let r = ingest_at(&store, c, "f", file.clone(), ts("2026-11-03T00:00:00Z"), days(7)).await;
    assert_eq!((r.accepted, r.expired), (3, 0));
    assert_eq!(aggregate_sums(&store, c).await, (3, 3));

    // Ten days later the week has passed both days: their raw flows go, the aggregates stay.
    let now = ts("2026-11-12T00:00:00Z");
    let removed = store.apply_retention(Clusters::One(c), now, &days(7)).await.unwrap();
    assert_eq!(removed, dropped(&["20261101", "20261102"]));
    assert_eq!(store.stats(c).await.unwrap().raw_flows, 0);
    assert_eq!(store.stats(c).await.unwrap().flows, 3);
    assert_eq!(endpoints(&store, c, None, None).await.iter().map(|e| e.2).sum::<u64>(), 3);

    let r = ingest_at(&store, c, "f", file.clone(), now, days(7)).await;
    assert_eq!((r.lines, r.accepted, r.duplicate, r.expired, r.rejected), (3, 0, 0, 3, 0));
    assert_eq!(aggregate_sums(&store, c).await, (3, 3));
    // A month's retention would keep them, but their raw flows are gone: still expired.
    let r = ingest_at(&store, c, "f", file, now, days(30)).await;
    assert_eq!((r.accepted, r.expired), (0, 3));
    assert_eq!(aggregate_sums(&store, c).await, (3, 3));
    assert_eq!(store.stats(c).await.unwrap().raw_flows, 0);
}

/// Flows ingested before the inventory that explains them: the import that records the pods
/// gives those flows their workloads, and the aggregates end up exactly as if the inventory had
/// come first.
#[sqlx::test(migrations = false)]
async fn flows_ingested_before_their_pods_are_resolved_by_the_import(pool: PgPool) {
    let store = Store::from_pool(pool).await.unwrap();
    let inv = list(&[
        pod("web-0", "StatefulSet", "web", "10.244.0.5", "2026-11-10T00:00:00Z"),
        pod("db-0", "StatefulSet", "db", "10.244.0.7", "2026-11-10T00:00:00Z"),
    ]);
    let objects = parse_text(&inv, "inv.json").objects;
    let flows = ndjson(&[
        ("2026-11-11T10:00:00Z", "10.244.0.5", "10.244.0.7", 5432),
        ("2026-11-11T10:20:00Z", "10.244.0.5", "10.244.0.7", 5432),
        ("2026-11-11T11:05:00Z", "10.244.0.5", "10.244.0.7", 5432),
        ("2026-11-12T09:00:00Z", "10.244.0.5", "10.244.0.9", 80),
    ]);
    let first = store.cluster_id("inventory-first", true).await.unwrap();
    store.import(first, &objects, ts("2026-11-10T00:00:00Z")).await.unwrap();
    ingest(&store, first, "flows", flows.clone()).await;

    let late = store.cluster_id("inventory-late", true).await.unwrap();
    ingest(&store, late, "flows", flows.clone()).await;
    assert_eq!(
        endpoints(&store, late, None, None).await,
        [
            ("unresolved/10.244.0.5".into(), "unresolved/10.244.0.7".into(), 3),
            ("unresolved/10.244.0.5".into(), "unresolved/10.244.0.9".into(), 1)
        ]
    );
    let report = store.import(late, &objects, ts("2026-11-13T00:00:00Z")).await.unwrap();
    assert_eq!(report.reattributed, 4);
    let want = endpoints(&store, first, None, None).await;
    assert_eq!(want[0], ("statefulset/shop/web".into(), "statefulset/shop/db".into(), 3));
    assert_eq!(endpoints(&store, late, None, None).await, want);
    // Row for row, hours and days: what the inventory-first cluster holds.
    let rows = |c: i32, table: &'static str| {
        let pool = store.pool.clone();
        async move {
            type Row = (String, String, String, String, String, i64, String, String, Vec<String>);
            let sql = format!(
                "select bucket::text, src_endpoint, dst_endpoint, src_namespace, dst_namespace, flows, first_seen::text,
                        last_seen::text, processes
                 from {table} where cluster_id = $1 order by 1, 2, 3"
            );
            sqlx::query_as::<_, Row>(sqlx::AssertSqlSafe(sql)).bind(c).fetch_all(&pool).await.unwrap()
        }
    };
    for table in ["conn_hourly", "conn_daily"] {
        assert_eq!(rows(late, table).await, rows(first, table).await, "{table}");
    }
    // Importing the same objects again moves nothing more.
    assert_eq!(store.import(late, &objects, ts("2026-11-13T01:00:00Z")).await.unwrap().reattributed, 0);
    // A re-ingest still recognises every flow.
    let r = ingest(&store, late, "flows", flows).await;
    assert_eq!((r.accepted, r.duplicate), (0, 4));
}

/// The demo feed and the retention loop outlive PostgreSQL going away: started while it cannot be
/// reached (a proxy in front of it turning every connection away), each keeps trying at every
/// tick; once it is back, the demo is seeded and fed and the old day is removed. Told to stop,
/// both end.
#[sqlx::test(migrations = false)]
async fn background_loops_resume_after_postgresql_comes_back(pool: PgPool) {
    use std::time::Duration;
    let (upstream, user, db) = proxy::upstream(&pool);
    let proxy = proxy::Proxy::start(upstream).await;
    let store = Store::connect(&proxy.url(&user, &db)).await.unwrap();
    let c = store.cluster_id("prod", true).await.unwrap();
    let old = ndjson(&[("2026-11-01T10:15:00Z", "10.244.0.5", "10.244.0.7", 80)]);
    ingest(&store, c, "f", old).await;
    proxy.cut();

    let (stop, stopped) = tokio::sync::watch::channel(false);
    let until_stopped = || {
        let mut rx = stopped.clone();
        async move {
            let _ = rx.wait_for(|s| *s).await;
        }
    };
    let tick = Duration::from_millis(20);
    // The demo on the real clock (each tick new flows), the retention at 8 November.
    let state = flowgate::web::AppState::new(store.clone(), "loop-test-token-0123456789");
    let demo = tokio::spawn(flowgate::web::run_demo(state, tick, until_stopped()));
    let retention = tokio::spawn(flowgate::web::run_retention(
        store.clone(),
        days(6),
        Clock::fixed(ts("2026-11-08T09:45:00Z")),
        tick,
        until_stopped(),
    ));
    proxy.turned_away(10, Duration::from_secs(10)).await;
    assert!(!demo.is_finished() && !retention.is_finished(), "a loop gave up");

    proxy.restore();
    let demo_flows = || async {
        let Ok(id) = store.cluster_id(flowgate::web::demo::CLUSTER, false).await else { return 0 };
        store.stats(id).await.unwrap().flows
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let mut seeded = 0;
    while seeded == 0 || demo_flows().await <= seeded || store.stats(c).await.unwrap().raw_flows > 0 {
        assert!(std::time::Instant::now() < deadline, "the loops did not resume: demo {seeded} flows");
        if seeded == 0 {
            seeded = demo_flows().await;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(10), async {
        demo.await.unwrap();
        retention.await.unwrap();
    })
    .await
    .expect("both loops stop when told");
    store.pool.close().await;
}

/// Label sets learned from flows by an older version that did not check them: a workload name
/// this version cannot read is left out, and so is a label Kubernetes would refuse, since the
/// catalog's labels become selectors.
#[sqlx::test(migrations = false)]
async fn learned_labels_stored_unchecked_are_cleaned_on_the_way_out(pool: PgPool) {
    let store = Store::from_pool(pool).await.unwrap();
    let cluster = store.cluster_id("prod", true).await.unwrap();
    sqlx::query(
        "insert into observed_workloads (cluster_id, workload, labels, last_seen) values
            ($1, 'deployment/shop/ghost', '{\"app\": \"ghost\", \"a:b\": \"c\", \"tier\": \"<img src=x onerror=alert(1)>\"}', now()),
            ($1, 'deployment/shop/UPPER_case', '{\"app\": \"upper\"}', now())",
    )
    .bind(cluster)
    .execute(&store.pool)
    .await
    .unwrap();
    let inv = store.load_inventory(cluster).await.unwrap();
    let catalog = store.load_catalog(cluster, &inv).await.unwrap();
    let ghost: WorkloadRef = "deployment/shop/ghost".parse().unwrap();
    let sets: Vec<_> = catalog.workloads[&ghost].iter().cloned().collect();
    assert_eq!(sets, [flowgate::model::Labels::from([("app".to_string(), "ghost".to_string())])]);
    assert_eq!(catalog.workloads.len(), 1, "{:?}", catalog.workloads.keys().collect::<Vec<_>>());
}

/// A bounded store: hourly aggregates older than the hourly horizon are dropped, their days kept
/// in the daily ones. Windows of whole days answer the same after the roll-up; a window that starts
/// inside a rolled-up day is read from that day's start (and the page says so).
#[sqlx::test(migrations = false)]
async fn the_hourly_roll_up_keeps_whole_day_answers(pool: PgPool) {
    let store = Store::from_pool(pool).await.unwrap();
    let c = store.cluster_id("prod", true).await.unwrap();
    // Forty days, a flow at 03:00 and at 15:00 each, to two destinations in turn.
    let start = ts("2026-10-01T00:00:00Z");
    let times: Vec<String> = (0..80).map(|i| (start + SignedDuration::from_hours(3 + 12 * i)).to_string()).collect();
    let rows: Vec<(&str, &str, &str, u16)> = times
        .iter()
        .enumerate()
        .map(|(i, t)| (t.as_str(), "10.244.0.5", if i % 3 == 0 { "10.244.0.7" } else { "10.244.0.8" }, 80))
        .collect();
    let now = ts("2026-11-10T00:00:00Z");
    ingest_at(&store, c, "f", ndjson(&rows), now, days(365)).await;
    let windows = [
        (Some("2026-10-02T00:00:00Z"), Some("2026-10-05T23:59:59Z")),
        (Some("2026-10-08T00:00:00Z"), None),
        (None, Some("2026-11-01T00:00:00Z")),
        (None, None),
    ];
    let mut before = Vec::new();
    for (s, u) in windows {
        before.push(endpoints(&store, c, s, u).await);
    }
    let whole_day = endpoints(&store, c, Some("2026-10-03T00:00:00Z"), Some("2026-10-03T23:59:59Z")).await;
    assert_eq!(whole_day.iter().map(|e| e.2).sum::<u64>(), 2);
    let hourly_rows = |store: &Store| {
        let pool = store.pool.clone();
        async move {
            sqlx::query_scalar::<_, i64>("select count(*) from conn_hourly where cluster_id = $1")
                .bind(c)
                .fetch_one(&pool)
                .await
                .unwrap()
        }
    };
    assert_eq!(hourly_rows(&store).await, 80);

    // Hourly detail kept 30 days back from 10 November: from 11 October on.
    let retention = days(365).with_hourly(SignedDuration::from_hours(24 * 30)).unwrap();
    let removed = store.apply_retention(Clusters::One(c), now, &retention).await.unwrap();
    assert_eq!(removed.hourly, 20, "ten days of two flows: {removed}");
    assert_eq!(hourly_rows(&store).await, 60);
    assert_eq!(store.hourly_removed_before(c).await.unwrap(), Some(ts("2026-10-11T00:00:00Z")));
    for ((s, u), want) in windows.into_iter().zip(before) {
        assert_eq!(endpoints(&store, c, s, u).await, want, "{s:?} .. {u:?}");
    }
    // 3 October from 12:00: before the roll-up, only the 15:00 flow; after it, the whole day.
    let afternoon = endpoints(&store, c, Some("2026-10-03T12:00:00Z"), Some("2026-10-03T23:59:59Z")).await;
    assert_eq!(afternoon, whole_day);
    // A second run removes nothing more.
    assert_eq!(store.apply_retention(Clusters::One(c), now, &retention).await.unwrap().hourly, 0);
    assert!(
        flowgate::web::pages::window_note(Some(ts("2026-10-03T12:00:00Z")), Some(ts("2026-10-11T00:00:00Z")))
            .is_some_and(|n| n.contains("from 2026-10-03 00:00 UTC"))
    );
}

/// A row's activity strip: each connection of a workload counted per bin of the window from the
/// hourly aggregates, the window's start moved back to its hour, whole hours a bin (two a bin past
/// 48 hours), flows outside the window left out.
#[sqlx::test(migrations = false)]
async fn activity_strips_count_each_connection_per_bin(pool: PgPool) {
    use flowgate::report::{Strip, StripBins};
    let store = Store::from_pool(pool).await.unwrap();
    let c = store.cluster_id("prod", true).await.unwrap();
    let inv = list(&[
        pod("client-0", "StatefulSet", "client", "10.244.0.5", "2026-11-01T00:00:00Z"),
        pod("db-0", "StatefulSet", "db", "10.244.0.7", "2026-11-01T00:00:00Z"),
    ]);
    store.import(c, &parse_text(&inv, "a.json").objects, ts("2026-11-01T00:00:00Z")).await.unwrap();
    let flows = ndjson(&[
        ("2026-11-10T09:59:00Z", "10.244.0.5", "10.244.0.7", 8080), // before the window
        ("2026-11-10T10:20:00Z", "10.244.0.5", "10.244.0.7", 8080), // hour 0 (the start's hour)
        ("2026-11-10T10:50:00Z", "10.244.0.5", "10.244.0.7", 8080),
        ("2026-11-10T13:05:00Z", "10.244.0.5", "10.244.0.7", 8080), // hour 3
        ("2026-11-10T13:06:00Z", "10.244.0.5", "10.244.0.9", 443),  // another peer, hour 3
        ("2026-11-11T10:10:00Z", "10.244.0.5", "10.244.0.7", 8080), // hour 24, the window's end
        ("2026-11-11T11:00:00Z", "10.244.0.5", "10.244.0.7", 8080), // after it
    ]);
    ingest(&store, c, "f.ndjson", flows).await;
    let w: WorkloadRef = "statefulset/shop/client".parse().unwrap();
    let us = |s: &str| ts(s).as_microsecond();
    let bins = StripBins::new(us("2026-11-10T10:30:00Z"), us("2026-11-11T10:30:00Z")).unwrap();
    assert_eq!((bins.bin_hours, bins.bins), (1, 25));
    let got = store.activity(c, &w, &bins).await.unwrap();
    let mut by_peer: Vec<(String, Vec<u64>)> = got.iter().map(|(k, s)| (k.dst.key(), s.counts.clone())).collect();
    by_peer.sort();
    let mut db = vec![0; 25];
    (db[0], db[3], db[24]) = (2, 1, 1);
    let mut other = vec![0; 25];
    other[3] = 1;
    assert_eq!(by_peer, vec![("statefulset/shop/db".to_string(), db), ("unresolved/10.244.0.9".to_string(), other)]);
    // Three days: two hours a bin; the whole store's four flows of that connection in two bins.
    let wide = StripBins::new(us("2026-11-09T12:00:00Z"), us("2026-11-12T12:00:00Z")).unwrap();
    assert_eq!((wide.bin_hours, wide.bins), (2, 37));
    let got = store.activity(c, &w, &wide).await.unwrap();
    let db: &Strip = got.iter().find(|(k, _)| k.dst.key() == "statefulset/shop/db").unwrap().1;
    assert_eq!(db.counts.iter().sum::<u64>(), 6);
    // Bins of two hours from 12:00 on the 9th: 09:59 in 08:00-10:00 (index 10); 10:20 and 10:50 in
    // 10:00-12:00 (11); 13:05 in 12:00-14:00 (12); the next day's 10:10 and 11:00 in its 10:00-12:00 (23).
    let nonzero: Vec<(usize, u64)> = db.counts.iter().copied().enumerate().filter(|(_, n)| *n > 0).collect();
    assert_eq!(nonzero, vec![(10, 1), (11, 2), (12, 1), (23, 2)]);
}

/// Each stored row's processes in `table` (`conn_hourly` or `conn_daily`) for the cluster.
async fn processes(pool: &PgPool, cluster: i32, table: &str) -> Vec<Vec<String>> {
    let sql = match table {
        "conn_hourly" => "select processes from conn_hourly where cluster_id = $1 order by bucket",
        "conn_daily" => "select processes from conn_daily where cluster_id = $1 order by bucket",
        other => panic!("no aggregate table {other}"),
    };
    sqlx::query_scalar(sql).bind(cluster).fetch_all(pool).await.unwrap()
}

/// The capped lists keep the smallest values by bytes, as the Rust folds do, whatever the
/// database's collation: here an ICU `en-US` database, where `b` sorts before `C`.
#[sqlx::test(migrations = false)]
async fn capped_lists_keep_the_bytewise_smallest_under_any_collation(pool: PgPool) {
    let name = format!("flowgate_collation_{}", std::process::id());
    sqlx::query(sqlx::AssertSqlSafe(format!("drop database if exists {name}"))).execute(&pool).await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "create database {name} locale_provider icu icu_locale 'en-US' template template0"
    )))
    .execute(&pool)
    .await
    .unwrap();
    let opts = pool.connect_options();
    let url = format!("postgres://{}@{}:{}/{name}", opts.get_username(), opts.get_host(), opts.get_port());
    let own = PgPool::connect(&url).await.unwrap();
    let store = Store::from_pool(own.clone()).await.unwrap();
    let c = store.cluster_id("c", true).await.unwrap();
    let body = |procs: &[&str]| {
        procs
            .iter()
            .map(|p| {
                format!(
                    r#"{{"time":"2026-11-13T10:00:00Z","src_ip":"10.244.0.1","src_port":40000,"dst_ip":"10.244.0.2","dst_port":80,"protocol":"TCP","process":"{p}"}}"#
                ) + "\n"
            })
            .collect::<String>()
            .into_bytes()
    };
    // Two ingests: the second's list is merged into the first's by the upsert, in SQL.
    ingest(&store, c, "one", body(&["b", "d", "f", "h", "j"])).await;
    ingest(&store, c, "two", body(&["A", "C", "E", "G", "I"])).await;
    for table in ["conn_hourly", "conn_daily"] {
        assert_eq!(processes(&own, c, table).await, vec![vec!["A", "C", "E", "G", "I", "b", "d", "f"]], "{table}");
    }
    drop(store);
    own.close().await;
    sqlx::query(sqlx::AssertSqlSafe(format!("drop database {name}"))).execute(&pool).await.unwrap();
}

/// Process names reach PostgreSQL as array literals: quotes, backslashes, commas, braces, spaces
/// and the word NULL come back as they were sent.
#[sqlx::test(migrations = false)]
async fn process_names_are_stored_as_they_were_read(pool: PgPool) {
    let store = Store::from_pool(pool.clone()).await.unwrap();
    let c = store.cluster_id("c", true).await.unwrap();
    let names = [r#"a"b"#, r"c\d", "e,f", "{g}", " h ", "NULL", "ü ✓"];
    let body: String = names
        .iter()
        .map(|p| {
            let p = serde_json::to_string(p).unwrap();
            format!(
                r#"{{"time":"2026-11-13T10:00:00Z","src_ip":"10.244.0.1","src_port":40000,"dst_ip":"10.244.0.2","dst_port":80,"protocol":"TCP","process":{p}}}"#
            ) + "\n"
        })
        .collect();
    let report = ingest(&store, c, "names", body.into_bytes()).await;
    assert_eq!((report.accepted, report.rejected), (names.len() as u64, 0), "{report}");
    let mut want: Vec<String> = names.iter().map(|s| s.to_string()).collect();
    want.sort();
    for table in ["conn_hourly", "conn_daily"] {
        assert_eq!(processes(&pool, c, table).await, vec![want.clone()], "{table}");
    }
}

/// `Store::connect` creates the database of its URL when it does not exist, migrated, and uses
/// the one there when it does: a second connect finds the first one's cluster. A server that
/// refuses for another reason (a role it does not know) answers with its own error.
#[sqlx::test(migrations = false)]
async fn connect_creates_a_missing_database_and_uses_an_existing_one(pool: PgPool) {
    let name = format!("flowgate_connect_{}", std::process::id());
    sqlx::query(sqlx::AssertSqlSafe(format!("drop database if exists {name}"))).execute(&pool).await.unwrap();
    let opts = pool.connect_options();
    let server = format!("postgres://{}@{}:{}", opts.get_username(), opts.get_host(), opts.get_port());
    let store = Store::connect(&format!("{server}/{name}")).await.unwrap();
    let c = store.cluster_id("made", true).await.unwrap();
    store.pool.close().await;
    let again = Store::connect(&format!("{server}/{name}")).await.unwrap();
    assert_eq!(again.cluster_id("made", false).await.unwrap(), c);
    again.pool.close().await;

    let stranger =
        format!("postgres://no_such_role_{}@{}:{}/{name}_x", std::process::id(), opts.get_host(), opts.get_port());
    let e = Store::connect(&stranger).await.err().expect("an unknown role cannot connect");
    assert!(e.to_string().contains("no_such_role"), "{e}");
    sqlx::query(sqlx::AssertSqlSafe(format!("drop database {name}"))).execute(&pool).await.unwrap();
}

/// The newest flow is the newest of every cluster's own aggregates, whatever order files come
/// in: an older file after a newer one, a duplicate and another cluster's newer flows leave it
/// where it is. It is what the aggregates themselves say (`max(last_seen)` of `conn_daily`), and
/// the last flow `stats` shows.
#[sqlx::test(migrations = false)]
async fn the_newest_flow_is_the_newest_of_the_clusters_aggregates(pool: PgPool) {
    let store = Store::from_pool(pool.clone()).await.unwrap();
    let a = store.cluster_id("a", true).await.unwrap();
    let b = store.cluster_id("b", true).await.unwrap();
    assert_eq!(store.newest_flow(a).await.unwrap(), None, "nothing ingested");
    assert_eq!(store.newest_flow(a + b + 1).await.unwrap(), None, "no such cluster");
    let newer = ndjson(&[
        ("2026-11-10T08:00:00Z", "10.244.0.5", "10.244.0.7", 80),
        ("2026-11-12T17:30:00Z", "10.244.0.5", "10.244.0.8", 80),
    ]);
    let older = ndjson(&[("2026-11-03T11:00:00Z", "10.244.0.5", "10.244.0.9", 80)]);
    ingest(&store, a, "newer", newer.clone()).await;
    assert_eq!(store.newest_flow(a).await.unwrap(), Some(ts("2026-11-12T17:30:00Z")));
    ingest(&store, a, "older", older).await;
    let r = ingest(&store, a, "newer again", newer).await;
    assert_eq!((r.accepted, r.duplicate), (0, 2));
    ingest(&store, b, "b", ndjson(&[("2026-11-13T01:00:00Z", "10.244.0.5", "10.244.0.7", 80)])).await;
    assert_eq!(store.newest_flow(a).await.unwrap(), Some(ts("2026-11-12T17:30:00Z")));
    assert_eq!(store.newest_flow(b).await.unwrap(), Some(ts("2026-11-13T01:00:00Z")));
    for c in [a, b] {
        let from_aggregates: Option<i64> = sqlx::query_scalar(
            "select (extract(epoch from max(last_seen)) * 1000000)::bigint from conn_daily where cluster_id = $1",
        )
        .bind(c)
        .fetch_one(&pool)
        .await
        .unwrap();
        assert_eq!(store.newest_flow(c).await.unwrap().map(|t| t.as_microsecond()), from_aggregates, "cluster {c}");
    }
    // `stats` shows the same last flow, and the first from the oldest day.
    let stats = store.stats(a).await.unwrap();
    assert_eq!(
        (stats.first_flow.as_deref(), stats.last_flow.as_deref()),
        (Some("2026-11-03T11:00:00Z"), Some("2026-11-12T17:30:00Z"))
    );
}
