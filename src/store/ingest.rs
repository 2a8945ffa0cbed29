//! Writing enriched flows: one transaction per batch inserts the flows (a flow already stored is
//! skipped by its key), and adds exactly the newly inserted ones to the hourly aggregates, so
//! re-ingesting a file changes no count and a killed ingest leaves nothing half applied. New
//! batches, the usual case, take a cheaper path: a plain insert, with aggregates folded here.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;

use jiff::Timestamp;

use super::{DAY_US, HOUR_US, Result, Store, micros};
use crate::dns::Names;
use crate::enrich::{Endpoint, Enriched};
use crate::model::{FlowRecord, FlowRole, Labels, Verdict, WorkloadRef};
use crate::topology::{ConnStats, MAX_PROCESSES};

/// One flow row, ready for the database.
#[derive(Debug, Clone)]
pub struct FlowRow {
    pub time_us: i64,
    pub key: String,
    pub src_ip: IpAddr,
    pub src_port: Option<i32>,
    pub dst_ip: IpAddr,
    pub dst_port: i32,
    pub protocol: &'static str,
    pub verdict: &'static str,
    pub src_endpoint: String,
    pub dst_endpoint: String,
    pub src_namespace: String,
    pub dst_namespace: String,
    pub service: Option<String>,
    pub process: Option<String>,
    pub node: Option<String>,
    pub bytes: Option<i64>,
    pub packets: Option<i64>,
    /// The source did not say which way the flow goes (`FlowRole::Undecided`).
    pub undecided: bool,
}

/// A batch: rows plus workload labels learned from flow metadata.
#[derive(Debug, Default, Clone)]
pub struct Batch {
    pub rows: Vec<FlowRow>,
    pub learned: BTreeMap<(WorkloadRef, Labels), Timestamp>,
    /// DNS names seen for addresses: the flows' own and the DNS answers read with them.
    pub names: Names,
}

impl Batch {
    pub fn len(&self) -> usize {
        self.rows.len()
    }
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Adds a flow and its enrichment. A flow that fans out to several workloads (a Service
    /// backed by more than one) becomes one row each, keyed apart.
    pub fn push(&mut self, flow: &FlowRecord, enriched: &[Enriched]) {
        for (ip, names) in [(flow.dst_ip, &flow.dst_names), (flow.src_ip, &flow.src_names)] {
            for n in names {
                self.names.add(ip, n, flow.time);
            }
        }
        let base = flow_key(flow);
        for (i, e) in enriched.iter().enumerate() {
            let key = if i == 0 { base } else { mix(base, i as u64) };
            for (w, labels) in &e.learned {
                let seen = self.learned.entry((w.clone(), labels.clone())).or_insert(flow.time);
                *seen = (*seen).max(flow.time);
            }
            // An end known only by its pod identity keeps it in its key, for the review to settle.
            let end = |ep: &Endpoint, src: bool| match e.identities.iter().find(|i| i.src == src) {
                Some(id) => (
                    Endpoint::identity_key(ep.ip().unwrap_or(if src { flow.src_ip } else { flow.dst_ip }), id),
                    id.namespace.clone(),
                ),
                None => (ep.key(), namespace_of(ep)),
            };
            let ((src_endpoint, src_namespace), (dst_endpoint, dst_namespace)) =
                (end(&e.src, true), end(&e.dst, false));
            self.rows.push(FlowRow {
                time_us: micros(flow.time),
                key: uuid_text(key),
                src_ip: flow.src_ip,
                src_port: flow.src_port.map(i32::from),
                dst_ip: flow.dst_ip,
                dst_port: i32::from(e.port.get()),
                protocol: e.protocol.as_str(),
                verdict: flow.verdict.as_str(),
                src_endpoint,
                dst_endpoint,
                src_namespace,
                dst_namespace,
                service: e.service.as_ref().map(|(ns, name, port)| format!("{ns}/{name}:{port}")),
                process: flow.process.clone(),
                node: flow.node.clone(),
                bytes: flow.bytes.and_then(|b| i64::try_from(b).ok()),
                packets: flow.packets.and_then(|b| i64::try_from(b).ok()),
                undecided: flow.role == FlowRole::Undecided,
            });
        }
    }
}

fn namespace_of(e: &Endpoint) -> String {
    e.workload().map(|w| w.namespace.clone()).unwrap_or_default()
}

/// A flow's identity: Hubble's uuid when it has one, else a hash of everything the record says,
/// so the same line ingested twice is recognised.
pub fn flow_key(flow: &FlowRecord) -> u128 {
    if let Some(u) = flow.uuid.as_deref().and_then(parse_uuid) {
        return u;
    }
    let mut h = Fnv128::default();
    h.write(&flow.time.as_nanosecond().to_le_bytes());
    h.write(flow.src_ip.to_string().as_bytes());
    h.write(&flow.src_port.unwrap_or(0).to_le_bytes());
    h.write(flow.dst_ip.to_string().as_bytes());
    h.write(&flow.dst_port.get().to_le_bytes());
    h.write(flow.protocol.as_str().as_bytes());
    h.write(flow.verdict.as_str().as_bytes());
    for s in [&flow.process, &flow.node, &flow.cluster, &flow.uuid] {
        h.write(s.as_deref().unwrap_or("\u{0}").as_bytes());
    }
    h.write(&flow.bytes.unwrap_or(0).to_le_bytes());
    h.write(&flow.packets.unwrap_or(0).to_le_bytes());
    h.finish()
}

fn mix(k: u128, i: u64) -> u128 {
    let mut h = Fnv128::default();
    h.write(&k.to_le_bytes());
    h.write(&i.to_le_bytes());
    h.finish()
}

/// FNV-1a over 128 bits: stable across Rust releases and platforms, unlike std's hasher, which
/// matters because keys are stored.
struct Fnv128(u128);

impl Default for Fnv128 {
    fn default() -> Self {
        Fnv128(0x6c62272e07bb014262b821756295c58d)
    }
}

impl Fnv128 {
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u128::from(*b);
            self.0 = self.0.wrapping_mul(0x0000000001000000000000000000013B);
        }
        // A separator, so that ("ab","c") and ("a","bc") differ.
        self.0 ^= 0xff;
        self.0 = self.0.wrapping_mul(0x0000000001000000000000000000013B);
    }
    fn finish(&self) -> u128 {
        self.0
    }
}

fn parse_uuid(s: &str) -> Option<u128> {
    let hex: String = s.chars().filter(|c| *c != '-').collect();
    if hex.len() != 32 || s.len() != 36 {
        return None;
    }
    u128::from_str_radix(&hex, 16).ok()
}

fn uuid_text(k: u128) -> String {
    let h = format!("{k:032x}");
    format!("{}-{}-{}-{}-{}", &h[0..8], &h[8..12], &h[12..16], &h[16..20], &h[20..32])
}

/// What a writer expects of a batch: new flows (the usual case, and the cheap write), or some
/// already stored (the batch before had some), which are skipped without a failed first try.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    New,
    Duplicates,
}

/// What one batch did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Written {
    pub inserted: u64,
    pub duplicates: u64,
}

fn is_unique_violation(e: &sqlx::Error) -> bool {
    e.as_database_error().and_then(|d| d.code()).is_some_and(|c| c == "23505")
}

/// One connection-hour of a batch: what its rows add to `conn_hourly`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hourly<'a> {
    pub bucket_us: i64,
    pub src_endpoint: &'a str,
    pub dst_endpoint: &'a str,
    pub src_namespace: &'a str,
    pub dst_namespace: &'a str,
    pub port: i32,
    pub protocol: &'static str,
    /// The one statistics type, its lists borrowed from the batch's rows: sorted, distinct, at
    /// most [`MAX_PROCESSES`], as the stored arrays are.
    pub stats: ConnStats<&'a str>,
}

/// Folds rows into their connection-hours (hours in UTC), sorted by `conn_hourly`'s key (source,
/// hour, destination, port, protocol).
pub fn fold_hourly(rows: &[FlowRow]) -> Vec<Hourly<'_>> {
    type Key<'a> = (&'a str, i64, &'a str, i32, &'static str);
    let mut map: HashMap<Key<'_>, Hourly<'_>> = HashMap::new();
    for r in rows {
        let bucket_us = r.time_us.div_euclid(HOUR_US) * HOUR_US;
        // The row's time came from a timestamp, to the microsecond: always in range.
        let time = jiff::Timestamp::from_microsecond(r.time_us).unwrap_or_default();
        let h = map
            .entry((r.src_endpoint.as_str(), bucket_us, r.dst_endpoint.as_str(), r.dst_port, r.protocol))
            .or_insert_with(|| Hourly {
                bucket_us,
                src_endpoint: &r.src_endpoint,
                dst_endpoint: &r.dst_endpoint,
                src_namespace: &r.src_namespace,
                dst_namespace: &r.dst_namespace,
                port: r.dst_port,
                protocol: r.protocol,
                stats: ConnStats::new(time),
            });
        let src_port = r.src_port.and_then(|p| u16::try_from(p).ok());
        h.stats.count(time, r.verdict == Verdict::Dropped.as_str(), r.undecided, src_port);
        for (set, value) in [(&mut h.stats.processes, &r.process), (&mut h.stats.services, &r.service)] {
            if let Some(v) = value.as_deref() {
                ConnStats::note(set, v, |v| v);
            }
        }
    }
    let mut out: Vec<(Key<'_>, Hourly<'_>)> = map.into_iter().collect();
    out.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    out.into_iter().map(|(_, h)| h).collect()
}

/// The batch's rows as the columns that `unnest` turns back into rows (and the rows themselves).
struct FlowColumns<'a> {
    rows: &'a [FlowRow],
    time: Vec<i64>,
    key: Vec<&'a str>,
    src_ip: Vec<IpAddr>,
    src_port: Vec<Option<i32>>,
    dst_ip: Vec<IpAddr>,
    dst_port: Vec<i32>,
    protocol: Vec<&'static str>,
    verdict: Vec<&'static str>,
    src_ep: Vec<&'a str>,
    dst_ep: Vec<&'a str>,
    service: Vec<Option<&'a str>>,
    process: Vec<Option<&'a str>>,
    node: Vec<Option<&'a str>>,
    bytes: Vec<Option<i64>>,
    packets: Vec<Option<i64>>,
    undecided: Vec<bool>,
}

impl<'a> FlowColumns<'a> {
    fn new(rows: &'a [FlowRow]) -> Self {
        FlowColumns {
            rows,
            time: rows.iter().map(|r| r.time_us).collect(),
            key: rows.iter().map(|r| r.key.as_str()).collect(),
            src_ip: rows.iter().map(|r| r.src_ip).collect(),
            src_port: rows.iter().map(|r| r.src_port).collect(),
            dst_ip: rows.iter().map(|r| r.dst_ip).collect(),
            dst_port: rows.iter().map(|r| r.dst_port).collect(),
            protocol: rows.iter().map(|r| r.protocol).collect(),
            verdict: rows.iter().map(|r| r.verdict).collect(),
            src_ep: rows.iter().map(|r| r.src_endpoint.as_str()).collect(),
            dst_ep: rows.iter().map(|r| r.dst_endpoint.as_str()).collect(),
            service: rows.iter().map(|r| r.service.as_deref()).collect(),
            process: rows.iter().map(|r| r.process.as_deref()).collect(),
            node: rows.iter().map(|r| r.node.as_deref()).collect(),
            bytes: rows.iter().map(|r| r.bytes).collect(),
            packets: rows.iter().map(|r| r.packets).collect(),
            undecided: rows.iter().map(|r| r.undecided).collect(),
        }
    }

    /// Binds `$2`..`$17` of `insert_flows!`.
    fn bind<'q, O>(
        &'q self,
        q: sqlx::query::QueryScalar<'q, sqlx::Postgres, O, sqlx::postgres::PgArguments>,
    ) -> sqlx::query::QueryScalar<'q, sqlx::Postgres, O, sqlx::postgres::PgArguments> {
        q.bind(&self.time)
            .bind(&self.key)
            .bind(&self.src_ip)
            .bind(&self.src_port)
            .bind(&self.dst_ip)
            .bind(&self.dst_port)
            .bind(&self.protocol)
            .bind(&self.verdict)
            .bind(&self.src_ep)
            .bind(&self.dst_ep)
            .bind(&self.service)
            .bind(&self.process)
            .bind(&self.node)
            .bind(&self.bytes)
            .bind(&self.packets)
            .bind(&self.undecided)
    }
}

/// The insert into `flows` (`$1` cluster, `$2`..`$17` the columns), as the first CTE `ins` of
/// both write statements, with their conflict clause and `RETURNING`.
macro_rules! insert_flows {
    ($tail:literal) => {
        concat!(
            "with ins as (
                insert into flows as f (cluster_id, time, flow_key, src_ip, src_port, dst_ip, dst_port, protocol, verdict,
                                        src_endpoint, dst_endpoint, service, process, node, bytes, packets, undecided)
                select $1, timestamptz 'epoch' + us * interval '1 microsecond', k::uuid, sip, sport, dip, dport, proto,
                       verdict, sep, dep, svc, proc, node, bytes, packets, und
                from unnest($2::bigint[], $3::text[], $4::inet[], $5::int[], $6::inet[], $7::int[], $8::text[], $9::text[],
                            $10::text[], $11::text[], $12::text[], $13::text[], $14::text[], $15::bigint[], $16::bigint[],
                            $17::boolean[])
                    as t(us, k, sip, sport, dip, dport, proto, verdict, sep, dep, svc, proc, node, bytes, packets, und)
                ",
            $tail,
            "
             )"
        )
    };
}

/// Adds the rows of a CTE (`$from`: bucket, src_endpoint, dst_endpoint, src_namespace,
/// dst_namespace, dst_port, protocol, flows, dropped, first_seen, last_seen, processes, services,
/// undecided, reply_ports) to
/// an aggregate table (`$table`: conn_hourly or conn_daily).
macro_rules! upsert_into {
    ($table:literal, $from:literal, $cap:literal) => {
        concat!(
            "insert into ",
            $table,
            " as c (cluster_id, bucket, src_endpoint, dst_endpoint, src_namespace, dst_namespace,
                    port, protocol, flows, dropped, first_seen, last_seen, processes, services, undecided, reply_ports)
         select $1, h.bucket, h.src_endpoint, h.dst_endpoint, h.src_namespace, h.dst_namespace, h.dst_port, h.protocol,
                h.flows, h.dropped, h.first_seen, h.last_seen, h.processes, h.services, h.undecided, h.reply_ports
         from ",
            $from,
            " h
         -- Rows are locked in key order, so concurrent batches cannot deadlock on them.
         order by h.src_endpoint, h.bucket, h.dst_endpoint, h.dst_port, h.protocol
         on conflict (cluster_id, src_endpoint, bucket, dst_endpoint, port, protocol) do update set
            flows = c.flows + excluded.flows,
            dropped = c.dropped + excluded.dropped,
            first_seen = least(c.first_seen, excluded.first_seen),
            last_seen = greatest(c.last_seen, excluded.last_seen),
            -- Stored arrays are sorted, distinct and at most the cap long, so when the new values
            -- are among them the merge below would return them unchanged: skip it.
            processes = case when excluded.processes <@ c.processes then c.processes
                             else (select coalesce((array_agg(distinct p))[1:", $cap, "::int], '{}')
                                   from unnest(c.processes || excluded.processes) p) end,
            services = case when excluded.services <@ c.services then c.services
                            else (select coalesce((array_agg(distinct s))[1:", $cap, "::int], '{}')
                                  from unnest(c.services || excluded.services) s) end,
            undecided = c.undecided + excluded.undecided,
            reply_ports = case when excluded.reply_ports <@ c.reply_ports then c.reply_ports
                               else (select coalesce((array_agg(distinct p order by p))[1:", $cap, "::int], '{}')
                                     from unnest(c.reply_ports || excluded.reply_ports) p) end"
        )
    };
}

/// The CTEs, after a `hourly` CTE holding the batch's new connection-hours, that add them to
/// `conn_hourly` and, summed per day (UTC), to `conn_daily`.
macro_rules! upsert_aggregates {
    ($cap:literal) => {
        concat!(
            ",
     add_hourly as (",
            upsert_into!("conn_hourly", "hourly", $cap),
            "),
     daily as (
        select date_trunc('day', bucket, 'UTC') as bucket, src_endpoint, dst_endpoint, src_namespace, dst_namespace,
               dst_port, protocol, sum(flows)::bigint as flows, sum(dropped)::bigint as dropped,
               min(first_seen) as first_seen, max(last_seen) as last_seen,
               (select coalesce((array_agg(distinct p))[1:",
            $cap,
            "::int], '{}') from unnest(array_cat_agg(processes)) p) as processes,
               (select coalesce((array_agg(distinct s))[1:",
            $cap,
            "::int], '{}') from unnest(array_cat_agg(services)) s) as services,
               sum(undecided)::bigint as undecided,
               (select coalesce((array_agg(distinct p order by p))[1:",
            $cap,
            "::int], '{}') from unnest(array_cat_agg(reply_ports)) p)
                   as reply_ports
        from hourly
        group by date_trunc('day', bucket, 'UTC'), src_endpoint, dst_endpoint, src_namespace, dst_namespace,
                 dst_port, protocol
     ),
     add_daily as (",
            upsert_into!("conn_daily", "daily", $cap),
            ")"
        )
    };
}

/// The usual write: the flows, and the batch's connection-hours as folded in Rust
/// ([`fold_hourly`], `$18`..`$32`). A plain insert, which costs the server much less than one
/// that checks for conflicts first: a flow already stored fails the statement with a unique
/// violation, and the batch is written again by [`WRITE_FOLDING_RETURNED`]. `$33`: the cap of the
/// lists ([`MAX_PROCESSES`]).
const WRITE_ALL_NEW: &str = concat!(
    insert_flows!("returning 1"),
    ",
     hourly as (
        select timestamptz 'epoch' + b * interval '1 microsecond' as bucket, src_endpoint, dst_endpoint,
               src_namespace, dst_namespace, dst_port, protocol, flows, dropped,
               timestamptz 'epoch' + fu * interval '1 microsecond' as first_seen,
               timestamptz 'epoch' + lu * interval '1 microsecond' as last_seen,
               array(select jsonb_array_elements_text(pj)) as processes,
               array(select jsonb_array_elements_text(sj)) as services,
               und as undecided,
               array(select jsonb_array_elements_text(rj)::int) as reply_ports
        from unnest($18::bigint[], $19::text[], $20::text[], $21::text[], $22::text[], $23::int[], $24::text[],
                    $25::bigint[], $26::bigint[], $27::bigint[], $28::bigint[], $29::jsonb[], $30::jsonb[],
                    $31::bigint[], $32::jsonb[])
            as a(b, src_endpoint, dst_endpoint, src_namespace, dst_namespace, dst_port, protocol, flows, dropped,
                 fu, lu, pj, sj, und, rj)
     )",
    upsert_aggregates!("$33"),
    "
     select count(*) from ins"
);

/// The write for a batch holding flows already stored: the aggregates are folded from what the
/// insert returns, i.e. exactly the rows it stored (a flow already in the table, or twice in the
/// batch, is skipped by `on conflict do nothing` and counted nowhere). `$18`, `$19`: each
/// endpoint's namespace, sent once per endpoint; `$20`: the cap of the lists ([`MAX_PROCESSES`]).
const WRITE_FOLDING_RETURNED: &str = concat!(
    insert_flows!(
        "on conflict do nothing
         returning f.time, f.src_endpoint, f.dst_endpoint, f.dst_port, f.protocol, f.verdict, f.service, f.process,
                   f.src_port, f.undecided"
    ),
    ",
     ns as (
        select * from unnest($18::text[], $19::text[]) as n(endpoint, namespace)
     ),
     hourly as (
        select date_trunc('hour', i.time, 'UTC') as bucket, i.src_endpoint, i.dst_endpoint, s.namespace as src_namespace,
               d.namespace as dst_namespace, i.dst_port, i.protocol,
               count(*) as flows, count(*) filter (where verdict = 'DROPPED') as dropped,
               min(time) as first_seen, max(time) as last_seen,
               coalesce((array_agg(distinct process) filter (where process is not null))[1:$20::int], '{}') as processes,
               coalesce((array_agg(distinct service) filter (where service is not null))[1:$20::int], '{}') as services,
               count(*) filter (where undecided) as undecided,
               coalesce((array_agg(distinct src_port order by src_port)
                         filter (where undecided and src_port is not null))[1:$20::int], '{}') as reply_ports
        from ins i
        join ns s on s.endpoint = i.src_endpoint
        join ns d on d.endpoint = i.dst_endpoint
        group by date_trunc('hour', i.time, 'UTC'), i.src_endpoint, i.dst_endpoint, s.namespace, d.namespace, i.dst_port, i.protocol
     )",
    upsert_aggregates!("$20"),
    "
     select count(*) from ins"
);

/// [`WRITE_ALL_NEW`]: the rows and their connection-hours, or a unique violation.
async fn write_all_new(tx: &mut sqlx::PgConnection, cluster: i32, cols: &FlowColumns<'_>) -> sqlx::Result<i64> {
    let hourly = fold_hourly(cols.rows);
    cols.bind(sqlx::query_scalar(WRITE_ALL_NEW).bind(cluster))
        .bind(hourly.iter().map(|h| h.bucket_us).collect::<Vec<_>>())
        .bind(hourly.iter().map(|h| h.src_endpoint).collect::<Vec<_>>())
        .bind(hourly.iter().map(|h| h.dst_endpoint).collect::<Vec<_>>())
        .bind(hourly.iter().map(|h| h.src_namespace).collect::<Vec<_>>())
        .bind(hourly.iter().map(|h| h.dst_namespace).collect::<Vec<_>>())
        .bind(hourly.iter().map(|h| h.port).collect::<Vec<_>>())
        .bind(hourly.iter().map(|h| h.protocol).collect::<Vec<_>>())
        .bind(hourly.iter().map(|h| h.stats.flows as i64).collect::<Vec<_>>())
        .bind(hourly.iter().map(|h| h.stats.dropped as i64).collect::<Vec<_>>())
        .bind(hourly.iter().map(|h| h.stats.first_seen.as_microsecond()).collect::<Vec<_>>())
        .bind(hourly.iter().map(|h| h.stats.last_seen.as_microsecond()).collect::<Vec<_>>())
        .bind(hourly.iter().map(|h| serde_json::json!(h.stats.processes)).collect::<Vec<_>>())
        .bind(hourly.iter().map(|h| serde_json::json!(h.stats.services)).collect::<Vec<_>>())
        .bind(hourly.iter().map(|h| h.stats.undecided as i64).collect::<Vec<_>>())
        .bind(hourly.iter().map(|h| serde_json::json!(h.stats.reply_ports)).collect::<Vec<_>>())
        .bind(MAX_PROCESSES as i32)
        .fetch_one(tx)
        .await
}

/// [`WRITE_FOLDING_RETURNED`]: the rows not yet stored, and their connection-hours.
async fn write_skipping_stored(tx: &mut sqlx::PgConnection, cluster: i32, cols: &FlowColumns<'_>) -> sqlx::Result<i64> {
    let mut namespaces: HashMap<&str, &str> = HashMap::new();
    for r in cols.rows {
        namespaces.entry(&r.src_endpoint).or_insert(&r.src_namespace);
        namespaces.entry(&r.dst_endpoint).or_insert(&r.dst_namespace);
    }
    let (ns_ep, ns_name): (Vec<&str>, Vec<&str>) = namespaces.into_iter().unzip();
    cols.bind(sqlx::query_scalar(WRITE_FOLDING_RETURNED).bind(cluster))
        .bind(&ns_ep)
        .bind(&ns_name)
        .bind(MAX_PROCESSES as i32)
        .fetch_one(tx)
        .await
}

impl Store {
    /// Writes one batch in one transaction. Usually every flow is new, and the batch's aggregates,
    /// folded here, go with the flows in one statement; when a flow is already stored (or
    /// `expect` says some may be), the batch is written skipping stored flows, and the aggregates
    /// are folded from the rows the database actually inserted.
    pub async fn write_batch(&self, cluster: i32, batch: &Batch, expect: Expect) -> Result<Written> {
        if batch.is_empty() && batch.learned.is_empty() && batch.names.is_empty() {
            return Ok(Written::default());
        }
        let n = batch.rows.len() as i64;
        let cols = FlowColumns::new(&batch.rows);
        let mut tx = self.begin_batch(batch).await?;
        let all_new = match expect {
            Expect::New => Some(write_all_new(&mut tx, cluster, &cols).await),
            Expect::Duplicates => None,
        };
        let inserted = match all_new {
            Some(Ok(inserted)) => inserted,
            Some(Err(e)) if !is_unique_violation(&e) => return Err(e.into()),
            // The plain insert met a stored flow; nothing of it stays.
            Some(Err(_)) => {
                tx.rollback().await?;
                tx = self.begin_batch(batch).await?;
                write_skipping_stored(&mut tx, cluster, &cols).await?
            }
            None => write_skipping_stored(&mut tx, cluster, &cols).await?,
        };
        self.write_learned(&mut tx, cluster, batch).await?;
        super::names::write_names(&mut tx, cluster, &batch.names).await?;
        tx.commit().await?;
        let inserted = inserted as u64;
        Ok(Written { inserted, duplicates: n as u64 - inserted })
    }

    /// Opens a batch's transaction, with the day partitions its rows need.
    async fn begin_batch(&self, batch: &Batch) -> Result<sqlx::Transaction<'static, sqlx::Postgres>> {
        let mut tx = self.pool.begin().await?;
        let mut days: Vec<i64> = batch.rows.iter().map(|r| r.time_us.div_euclid(DAY_US)).collect();
        days.sort_unstable();
        days.dedup();
        for day in days {
            sqlx::query("select flowgate_ensure_partition((date '1970-01-01' + $1::integer))")
                .bind(day as i32)
                .execute(&mut *tx)
                .await?;
        }
        Ok(tx)
    }

    /// Records the workload labels a batch learned from flow metadata.
    async fn write_learned(&self, tx: &mut sqlx::PgConnection, cluster: i32, batch: &Batch) -> Result<()> {
        if batch.learned.is_empty() {
            return Ok(());
        }
        let mut ws = Vec::new();
        let mut ls = Vec::new();
        let mut seen = Vec::new();
        for ((w, l), t) in &batch.learned {
            ws.push(w.to_string());
            ls.push(serde_json::to_value(l).map_err(|e| super::StoreError::Invalid(e.to_string()))?);
            seen.push(micros(*t));
        }
        sqlx::query(
            "insert into observed_workloads as o (cluster_id, workload, labels, last_seen)
             select $1, w, l, timestamptz 'epoch' + s * interval '1 microsecond'
             from unnest($2::text[], $3::jsonb[], $4::bigint[]) as t(w, l, s)
             on conflict (cluster_id, workload, labels) do update set last_seen = greatest(o.last_seen, excluded.last_seen)",
        )
        .bind(cluster)
        .bind(&ws)
        .bind(&ls)
        .bind(&seen)
        .execute(&mut *tx)
        .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_uuid_or_stable_hash() {
        assert_eq!(parse_uuid("2d2c6f3e-8f0e-4a55-a7b3-4a0c5d6b7e8f"), Some(0x2d2c6f3e8f0e4a55a7b34a0c5d6b7e8f));
        assert_eq!(parse_uuid("not-a-uuid"), None);
        assert_eq!(uuid_text(0x2d2c6f3e8f0e4a55a7b34a0c5d6b7e8f), "2d2c6f3e-8f0e-4a55-a7b3-4a0c5d6b7e8f");
        let mut a = Fnv128::default();
        a.write(b"ab");
        a.write(b"c");
        let mut b = Fnv128::default();
        b.write(b"a");
        b.write(b"bc");
        assert_ne!(a.finish(), b.finish());
        // A pinned value: stored keys must not change between releases.
        let mut c = Fnv128::default();
        c.write(b"flowgate");
        assert_eq!(uuid_text(c.finish()), "7f857d88-1f06-1471-61a0-32d79725bd7f");
    }

    fn row(time_us: i64, dst: &str, process: &str, verdict: Verdict) -> FlowRow {
        FlowRow {
            time_us,
            key: String::new(),
            src_ip: "10.0.0.1".parse().unwrap(),
            src_port: None,
            dst_ip: "10.0.0.2".parse().unwrap(),
            dst_port: 80,
            protocol: "TCP",
            verdict: verdict.as_str(),
            src_endpoint: "deployment/shop/web".into(),
            dst_endpoint: dst.into(),
            src_namespace: "shop".into(),
            dst_namespace: String::new(),
            service: None,
            process: Some(process.into()),
            node: None,
            bytes: None,
            packets: None,
            undecided: false,
        }
    }

    /// Every capped list the SQL keeps is capped by a parameter (bound from [`MAX_PROCESSES`], the
    /// one constant the Rust folds use), never by a number written into the SQL.
    #[test]
    fn the_sql_caps_are_the_rust_cap() {
        for (sql, param) in [(WRITE_ALL_NEW, "$33"), (WRITE_FOLDING_RETURNED, "$20")] {
            let caps = sql.matches("[1:").count();
            assert!(caps >= 4, "{sql}");
            assert_eq!(sql.matches(format!("[1:{param}::int]").as_str()).count(), caps, "{sql}");
            // The cap is the statement's last parameter.
            let next = format!("${}", param[1..].parse::<u32>().unwrap() + 1);
            assert!(!sql.contains(next.as_str()), "{sql}");
        }
    }

    #[test]
    fn undecided_flows_are_counted_with_their_smallest_source_ports() {
        let mut rows: Vec<FlowRow> = (0..12)
            .map(|i| FlowRow {
                src_port: Some(9000 - i),
                undecided: i % 4 != 0,
                ..row(i64::from(i), "x", "p", Verdict::Forwarded)
            })
            .collect();
        rows.push(FlowRow { src_port: None, undecided: true, ..row(13, "x", "p", Verdict::Forwarded) });
        let hourly = fold_hourly(&rows);
        assert_eq!(hourly.len(), 1);
        assert_eq!((hourly[0].stats.flows, hourly[0].stats.undecided), (13, 9 + 1));
        // Undecided ports 8999, 8998, 8997, 8995, ... 8989: the eight smallest, as SQL keeps them.
        assert_eq!(
            hourly[0].stats.reply_ports.iter().copied().collect::<Vec<_>>(),
            [8989, 8990, 8991, 8993, 8994, 8995, 8997, 8998]
        );
    }

    #[test]
    fn batches_fold_into_connection_hours_in_key_order() {
        let h = HOUR_US;
        let mut rows = vec![
            row(5 * h + 10, "unresolved/10.0.0.9", "b", Verdict::Forwarded),
            row(4 * h + 20, "external/1.2.3.4", "z", Verdict::Dropped),
            row(4 * h + 5, "external/1.2.3.4", "a", Verdict::Forwarded),
            row(5 * h - 1, "external/1.2.3.4", "a", Verdict::Forwarded),
        ];
        // Ten processes on one connection-hour: the eight smallest are kept, as SQL's
        // `(array_agg(distinct p))[1:$cap]` keeps them.
        for p in ["q", "c", "d", "e", "f", "g", "h", "i"] {
            rows.push(row(4 * h, "external/1.2.3.4", p, Verdict::Forwarded));
        }
        let hourly = fold_hourly(&rows);
        let got: Vec<(i64, &str, u64, u64, i64, i64)> = hourly
            .iter()
            .map(|x| {
                let s = &x.stats;
                (
                    x.bucket_us,
                    x.dst_endpoint,
                    s.flows,
                    s.dropped,
                    s.first_seen.as_microsecond(),
                    s.last_seen.as_microsecond(),
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                (4 * h, "external/1.2.3.4", 11, 1, 4 * h, 5 * h - 1),
                (5 * h, "unresolved/10.0.0.9", 1, 0, 5 * h + 10, 5 * h + 10),
            ]
        );
        assert_eq!(
            hourly[0].stats.processes.iter().copied().collect::<Vec<_>>(),
            ["a", "c", "d", "e", "f", "g", "h", "i"]
        );
        assert_eq!((hourly[0].src_namespace, hourly[0].dst_namespace), ("shop", ""));
        // Before the epoch, hours still start on the hour.
        assert_eq!(fold_hourly(&[row(-1, "external/1.2.3.4", "a", Verdict::Forwarded)])[0].bucket_us, -h);
    }
}
