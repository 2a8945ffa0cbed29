//! The query benchmark of the PostgreSQL store (see BENCHMARKS.md, "Store"):
//!
//! ```sh
//! cargo run --release --example store_query_bench -- \
//!     --database-url postgres://postgres@127.0.0.1:5432/flowgate_querybench --flows 10000000
//! ```
//!
//! 1. Drops and creates the database, then fills it with `--flows` synthetic flows over `--days`
//!    days through the real write path: `FlowRecord`s as the Hubble reader makes them (namespace,
//!    pod name, labels and owning workload on both ends), `enrich` against an empty inventory (the
//!    no-inventory case, where Hubble's metadata names the workloads), `Batch::push`, and
//!    `Store::write_batch` in batches of `ingest::BATCH_ROWS`, generated on a blocking thread while
//!    the async side writes, as `flowgate ingest` does. So `flows`, `conn_hourly` and
//!    `observed_workloads` hold exactly what an ingest of such traffic would leave.
//! 2. `vacuum analyze` (what autovacuum would have done after the load; see BENCHMARKS.md).
//! 3. Times `Store::connections` for `--samples` workloads and for 10 namespaces, over the last
//!    24 hours and the last 7 days counted back from the newest flow (itself timed first, as
//!    `Store::newest_flow`: every page with a relative window asks it), each query run once untimed
//!    first (warm cache), and prints p50/p95/max in milliseconds; then the busiest workload
//!    (the DNS server, peer of every workload) on its own, and the plan of one 7-day query.
//!
//! The synthetic cluster: `--workloads` workloads (2,000) in `--namespaces` namespaces (50), three
//! pods each; every workload calls 6 workloads of its namespace and 2 of others, the DNS server
//! (UDP 53), and one in three an external API (TCP 443); Prometheus scrapes every workload. That
//! gives about 20k distinct connections, whose rates spread over three orders of magnitude
//! (log-uniform), with traffic following the time of day (busiest at 14:00 UTC, a third of it at
//! 02:00). 1% of flows are dropped. Deterministic: the same arguments give the same rows.
//!
//! A program, not a timed test: the numbers depend on the machine and belong in BENCHMARKS.md.

use std::time::{Duration, Instant};

use clap::Parser;
use flowgate::enrich::enrich;
use flowgate::ingest::BATCH_ROWS;
use flowgate::inventory::Inventory;
use flowgate::model::{FlowRecord, Labels, ObservedEndpoint, Port, Protocol, Verdict, WorkloadKind, WorkloadRef};
use flowgate::store::Store;
use flowgate::store::ingest::{Batch, WriteOptions, Written, flow_key};
use flowgate::store::query::{Scope, connections_sql, window_buckets};
use flowgate::topology::Catalog;
use jiff::{SignedDuration, Timestamp};
use sqlx::{Connection, Executor};

#[derive(Parser)]
struct Args {
    /// The benchmark's database: dropped and created again unless --reuse
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/flowgate_querybench")]
    database_url: String,
    #[arg(long, default_value_t = 10_000_000)]
    flows: u64,
    #[arg(long, default_value_t = 8)]
    days: u64,
    #[arg(long, default_value_t = 2_000)]
    workloads: usize,
    #[arg(long, default_value_t = 50)]
    namespaces: usize,
    /// Workloads whose connections are timed
    #[arg(long, default_value_t = 50)]
    samples: usize,
    /// Keep the database as a previous run filled it (only the queries run)
    #[arg(long)]
    reuse: bool,
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

#[path = "support/rng.rs"]
mod rng;
use rng::Rng;

const NAMESPACE_WORDS: [&str; 10] =
    ["payments", "identity", "search", "catalog", "orders", "data", "media", "ml", "platform", "edge"];
const NAME_WORDS: [&str; 20] = [
    "api",
    "worker",
    "gateway",
    "cache",
    "db",
    "indexer",
    "sync",
    "auth",
    "billing",
    "ledger",
    "quota",
    "session",
    "render",
    "feed",
    "notify",
    "export",
    "import",
    "router",
    "scheduler",
    "store",
];
const PORTS: [u16; 8] = [8080, 8080, 8080, 9000, 5432, 6379, 50051, 3000];

struct Pod {
    ip: std::net::IpAddr,
    meta: ObservedEndpoint,
    node: String,
}

struct Workload {
    pods: Vec<Pod>,
    port: u16,
}

/// One edge of the synthetic cluster's traffic.
struct Conn {
    src: usize,
    /// A workload index, or `None` for the external API `ext`.
    dst: Option<usize>,
    ext: std::net::IpAddr,
    port: u16,
    protocol: Protocol,
}

struct World {
    workloads: Vec<Workload>,
    conns: Vec<Conn>,
    /// Cumulative weights of `conns`, for sampling a flow's connection.
    cumulative: Vec<f64>,
}

fn pod_name_hash(rng: &mut Rng, len: usize) -> String {
    const CHARS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    (0..len).map(|_| CHARS[rng.below(CHARS.len())] as char).collect()
}

fn world(args: &Args, rng: &mut Rng) -> World {
    let namespaces: Vec<String> = (0..args.namespaces)
        .map(|i| match i {
            0 => "kube-system".to_string(),
            1 => "monitoring".to_string(),
            i => format!("{}-{}", NAMESPACE_WORDS[i % NAMESPACE_WORDS.len()], i / NAMESPACE_WORDS.len()),
        })
        .collect();
    let mut workloads = Vec::with_capacity(args.workloads);
    let mut next_ip: u32 = u32::from(std::net::Ipv4Addr::new(10, 244, 0, 10));
    for i in 0..args.workloads {
        let ns = &namespaces[i % namespaces.len()];
        let (kind, name) = match i {
            0 => (WorkloadKind::Deployment, "coredns".to_string()),
            1 => (WorkloadKind::StatefulSet, "prometheus".to_string()),
            i if i % 10 == 7 => (WorkloadKind::StatefulSet, format!("{}-{i}", NAME_WORDS[i % NAME_WORDS.len()])),
            i => (WorkloadKind::Deployment, format!("{}-{i}", NAME_WORDS[i % NAME_WORDS.len()])),
        };
        let template = pod_name_hash(rng, 10);
        let pods = (0..3)
            .map(|p| {
                let pod = match kind {
                    WorkloadKind::StatefulSet => format!("{name}-{p}"),
                    _ => format!("{name}-{template}-{}", pod_name_hash(rng, 5)),
                };
                next_ip += 1;
                let mut labels = Labels::new();
                labels.insert("app".into(), name.clone());
                Pod {
                    ip: std::net::Ipv4Addr::from(next_ip).into(),
                    meta: ObservedEndpoint {
                        namespace: Some(ns.clone()),
                        pod_name: Some(pod),
                        labels,
                        reserved: None,
                        workload: Some((kind, name.clone())),
                        owner: Default::default(),
                    },
                    node: format!("gke-prod-pool-{}-node-{}", rng.below(3), rng.below(40)),
                }
            })
            .collect();
        let port = if i == 0 { 53 } else { PORTS[rng.below(PORTS.len())] };
        workloads.push(Workload { pods, port });
    }
    let n = workloads.len();
    let nns = namespaces.len();
    let mut conns = Vec::new();
    let mut weights = Vec::new();
    let none: std::net::IpAddr = std::net::Ipv4Addr::UNSPECIFIED.into();
    for src in 2..n {
        let mut peers = Vec::new();
        // Six in its own namespace (workloads src % nns + k * nns), two anywhere.
        let in_ns = (n - 1 - src % nns) / nns + 1;
        while peers.len() < 6.min(in_ns.saturating_sub(1)) {
            let d = src % nns + rng.below(in_ns) * nns;
            if d != src && d >= 2 && d < n && !peers.contains(&d) {
                peers.push(d);
            }
        }
        while peers.len() < 8 {
            let d = 2 + rng.below(n - 2);
            if d != src && !peers.contains(&d) {
                peers.push(d);
            }
        }
        for d in peers {
            conns.push(Conn { src, dst: Some(d), ext: none, port: workloads[d].port, protocol: Protocol::Tcp });
        }
        conns.push(Conn { src, dst: Some(0), ext: none, port: 53, protocol: Protocol::Udp });
        conns.push(Conn { src: 1, dst: Some(src), ext: none, port: 9090, protocol: Protocol::Tcp });
        if src % 3 == 0 {
            let ext =
                std::net::Ipv4Addr::new(34, 120 + rng.below(8) as u8, rng.below(256) as u8, 1 + rng.below(250) as u8);
            conns.push(Conn { src, dst: None, ext: ext.into(), port: 443, protocol: Protocol::Tcp });
        }
    }
    for c in &conns {
        // Log-uniform over three orders of magnitude; scrapes are steady and light.
        let w = if c.src == 1 { 0.5 } else { 10f64.powf(rng.unit() * 3.0 - 1.0) };
        weights.push(w);
    }
    let mut acc = 0.0;
    let cumulative = weights
        .iter()
        .map(|w| {
            acc += w;
            acc
        })
        .collect();
    World { workloads, conns, cumulative }
}

impl World {
    fn pick(&self, rng: &mut Rng) -> &Conn {
        let total = *self.cumulative.last().unwrap();
        let x = rng.unit() * total;
        let i = self.cumulative.partition_point(|c| *c <= x).min(self.conns.len() - 1);
        &self.conns[i]
    }
}

/// Share of a day's traffic in hour `h` (UTC): busiest at 14:00, a third of that at 02:00.
fn diurnal(h: u64) -> f64 {
    let phase = (h % 24) as f64 - 14.0;
    2.0 + (phase * std::f64::consts::PI / 12.0).cos()
}

fn uuid(rng: &mut Rng) -> String {
    let (a, b) = (rng.next(), rng.next());
    let h = format!("{a:016x}{b:016x}");
    format!("{}-{}-4{}-a{}-{}", &h[0..8], &h[8..12], &h[13..16], &h[17..20], &h[20..32])
}

/// The first hour of the data: fixed, so that runs are comparable.
fn start() -> Timestamp {
    "2026-11-17T00:00:00Z".parse().unwrap()
}

/// Generates the flows hour by hour, in time order, as batches of enriched rows.
fn generate(args: &Args, tx: tokio::sync::mpsc::Sender<Batch>) {
    let mut rng = Rng::new(args.seed);
    let world = world(args, &mut rng);
    eprintln!(
        "{} workloads in {} namespaces, {} pods, {} distinct connections",
        world.workloads.len(),
        args.namespaces,
        world.workloads.len() * 3,
        world.conns.len()
    );
    let inventory = Inventory::default();
    let hours = args.days * 24;
    let total_weight: f64 = (0..hours).map(diurnal).sum();
    let mut made = 0u64;
    let mut batch = Batch::default();
    let mut times = Vec::new();
    for h in 0..hours {
        // Flows of this hour, the last hour taking the rounding remainder.
        let n = if h + 1 == hours {
            args.flows - made
        } else {
            ((args.flows as f64 * diurnal(h) / total_weight) as u64).min(args.flows - made)
        };
        made += n;
        times.clear();
        times.extend((0..n).map(|_| rng.next() % 3_600_000_000));
        times.sort_unstable();
        let hour = start() + SignedDuration::from_hours(h as i64);
        for &us in &times {
            let c = world.pick(&mut rng);
            let src = &world.workloads[c.src].pods[rng.below(3)];
            let (dst_ip, dst_meta, service) = match c.dst {
                Some(d) => {
                    let pod = &world.workloads[d].pods[rng.below(3)];
                    let svc = pod
                        .meta
                        .workload
                        .as_ref()
                        .map(|(_, name)| (pod.meta.namespace.clone().unwrap_or_default(), name.clone()));
                    (pod.ip, Some(pod.meta.clone()), if c.src == 1 { None } else { svc })
                }
                None => (c.ext, None, None),
            };
            let flow = FlowRecord {
                time: hour
                    + SignedDuration::from_micros(us as i64)
                    + SignedDuration::from_nanos(rng.below(1000) as i64),
                uuid: Some(uuid(&mut rng)),
                src_ip: src.ip,
                src_port: Some(32768 + rng.below(28000) as u16),
                dst_ip,
                dst_port: Port::new(c.port).unwrap(),
                protocol: c.protocol,
                verdict: if rng.below(100) == 0 { Verdict::Dropped } else { Verdict::Forwarded },
                process: None,
                node: Some(src.node.clone()),
                cluster: Some("bench".into()),
                bytes: None,
                packets: None,
                src_meta: Some(src.meta.clone().into()),
                dst_meta: dst_meta.map(Into::into),
                dst_service: service,
                role: Default::default(),
                dst_names: Vec::new(),
                src_names: Vec::new(),
            };
            let enriched = enrich(&inventory, &flow);
            batch.push(flow_key(&flow), &flow, &enriched);
            if batch.len() >= BATCH_ROWS && batch.at_boundary() && tx.blocking_send(std::mem::take(&mut batch)).is_err()
            {
                return;
            }
        }
    }
    batch.end_source();
    if !batch.is_empty() {
        let _ = tx.blocking_send(batch);
    }
}

async fn fill(args: Args, store: &Store, cluster: i32) -> anyhow::Result<()> {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Batch>(4);
    let flows = args.flows;
    let gen_thread = tokio::task::spawn_blocking(move || generate(&args, tx));
    let t0 = Instant::now();
    let mut written = Written::default();
    let mut last_report = Instant::now();
    while let Some(batch) = rx.recv().await {
        let w = store.write_batch(cluster, &batch, WriteOptions::default()).await?;
        written.inserted += w.inserted;
        written.duplicates += w.duplicates;
        if last_report.elapsed() > Duration::from_secs(30) {
            last_report = Instant::now();
            let s = t0.elapsed().as_secs_f64();
            eprintln!(
                "  {:>10} rows in {s:>6.0} s ({:.0} rows/s), {:.0}%",
                written.inserted,
                written.inserted as f64 / s,
                100.0 * written.inserted as f64 / flows as f64
            );
        }
    }
    gen_thread.await?;
    let s = t0.elapsed().as_secs_f64();
    println!(
        "filled: {} flows written ({} duplicates) in {s:.0} s: {:.0} flows/s through Store::write_batch",
        written.inserted,
        written.duplicates,
        written.inserted as f64 / s
    );
    Ok(())
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

/// Runs every query once untimed, then once timed; prints p50/p95/max and the mean size.
async fn time_queries(
    store: &Store,
    cluster: i32,
    label: &str,
    scopes: &[Scope<'_>],
    since: Timestamp,
) -> anyhow::Result<()> {
    for s in scopes {
        store.connections(cluster, s.clone(), Some(since), None, Catalog::default()).await?;
    }
    let mut ms = Vec::new();
    let mut conns = 0usize;
    for s in scopes {
        let t = Instant::now();
        let c = store.connections(cluster, s.clone(), Some(since), None, Catalog::default()).await?;
        ms.push(t.elapsed().as_secs_f64() * 1000.0);
        conns += c.map.len();
    }
    ms.sort_by(f64::total_cmp);
    println!(
        "| {label} | {} | {:.0} | {:.1} | {:.1} | {:.1} |",
        scopes.len(),
        conns as f64 / scopes.len() as f64,
        percentile(&ms, 0.5),
        percentile(&ms, 0.95),
        ms.last().unwrap()
    );
    Ok(())
}

/// `Store::newest_flow`, which every page with a relative window ("the last 3 hours") asks first.
async fn time_newest(store: &Store, cluster: i32, runs: usize) -> anyhow::Result<()> {
    store.newest_flow(cluster).await?;
    let mut ms = Vec::new();
    for _ in 0..runs {
        let t = Instant::now();
        store.newest_flow(cluster).await?;
        ms.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    ms.sort_by(f64::total_cmp);
    println!(
        "| newest flow (before every relative window) | {runs} | - | {:.1} | {:.1} | {:.1} |",
        percentile(&ms, 0.5),
        percentile(&ms, 0.95),
        ms.last().unwrap()
    );
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let opts: sqlx::postgres::PgConnectOptions = args.database_url.parse()?;
    let db = opts.get_database().unwrap_or("flowgate_querybench").to_string();
    if !args.reuse {
        let mut admin = sqlx::PgConnection::connect_with(&opts.clone().database("postgres")).await?;
        admin.execute(sqlx::AssertSqlSafe(format!("drop database if exists \"{db}\" with (force)"))).await?;
        admin.close().await?;
    }
    let store = Store::connect(&args.database_url).await?;
    let cluster = store.cluster_id("bench", true).await?;
    let mut rng = Rng::new(args.seed);
    let world = world(&args, &mut rng);
    let names: Vec<WorkloadRef> = world
        .workloads
        .iter()
        .map(|w| {
            let m = &w.pods[0].meta;
            let (kind, name) = m.workload.clone().unwrap();
            WorkloadRef::new(kind, m.namespace.clone().unwrap(), name)
        })
        .collect();
    let samples = args.samples;
    if !args.reuse {
        fill(args, &store, cluster).await?;
        let t = Instant::now();
        sqlx::query("vacuum analyze").execute(&store.pool).await?;
        println!("vacuum analyze: {:.1} s", t.elapsed().as_secs_f64());
    }
    let sizes: (i64, i64, String, String) = sqlx::query_as(
        "select (select count(*) from flows), (select count(*) from conn_hourly),
                pg_size_pretty(pg_total_relation_size('conn_hourly')),
                pg_size_pretty(pg_database_size(current_database()))",
    )
    .fetch_one(&store.pool)
    .await?;
    println!("store: {} flows, {} conn_hourly rows ({}), database {}", sizes.0, sizes.1, sizes.2, sizes.3);
    let newest = store.newest_flow(cluster).await?.ok_or_else(|| anyhow::anyhow!("the store is empty"))?;
    println!("newest flow: {newest}");

    // Sample workloads spread over the whole set (never the two hubs, timed apart below).
    let mut pick = Rng::new(7);
    let mut chosen: Vec<usize> = Vec::new();
    while chosen.len() < samples.min(names.len() - 2) {
        let i = 2 + pick.below(names.len() - 2);
        if !chosen.contains(&i) {
            chosen.push(i);
        }
    }
    let workloads: Vec<Scope> = chosen.iter().map(|&i| Scope::Workload(&names[i])).collect();
    let mut ns: Vec<&str> = chosen.iter().map(|&i| names[i].namespace.as_str()).collect();
    ns.dedup();
    ns.truncate(10);
    let namespaces: Vec<Scope> = ns.iter().map(|n| Scope::Namespace(n)).collect();
    let hub = [Scope::Workload(&names[0])];
    let day = newest - SignedDuration::from_hours(24);
    let week = newest - SignedDuration::from_hours(24 * 7);
    println!();
    println!("| query | queries | connections (mean) | p50 ms | p95 ms | max ms |");
    println!("|---|---:|---:|---:|---:|---:|");
    time_newest(&store, cluster, 50).await?;
    time_queries(&store, cluster, "workload, 24 h", &workloads, day).await?;
    time_queries(&store, cluster, "workload, 7 days", &workloads, week).await?;
    time_queries(&store, cluster, "namespace, 24 h", &namespaces, day).await?;
    time_queries(&store, cluster, "namespace, 7 days", &namespaces, week).await?;
    time_queries(&store, cluster, &format!("{} (DNS hub), 24 h", names[0]), &hub, day).await?;
    time_queries(&store, cluster, &format!("{} (DNS hub), 7 days", names[0]), &hub, week).await?;

    let (sql, arg) = connections_sql(&workloads[0]);
    let [a, z, d0, d1] = window_buckets(Some(week), None, None);
    let plan: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!("explain (analyze, buffers) {sql}")))
        .bind(cluster)
        .bind(a)
        .bind(z)
        .bind(&arg)
        .bind(d0)
        .bind(d1)
        .fetch_all(&store.pool)
        .await?;
    println!();
    println!("plan of the 7-day query for {arg}:");
    for l in plan {
        println!("    {l}");
    }
    Ok(())
}
