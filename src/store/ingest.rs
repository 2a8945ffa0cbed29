//! Writing enriched flows: one transaction per batch inserts the flows (a flow already stored is
//! skipped by its key), and folds exactly the newly inserted ones into the hourly aggregates, so
//! re-ingesting a file changes no count and a killed ingest leaves nothing half applied.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;

use jiff::Timestamp;

use super::{Result, Store, micros};
use crate::enrich::{Endpoint, Enriched};
use crate::model::{FlowRecord, Labels, WorkloadRef};

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
}

/// A batch: rows plus workload labels learned from flow metadata.
#[derive(Debug, Default, Clone)]
pub struct Batch {
    pub rows: Vec<FlowRow>,
    pub learned: BTreeMap<(WorkloadRef, Labels), Timestamp>,
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
        let base = flow_key(flow);
        for (i, e) in enriched.iter().enumerate() {
            let key = if i == 0 { base } else { mix(base, i as u64) };
            for (w, labels) in &e.learned {
                let seen = self.learned.entry((w.clone(), labels.clone())).or_insert(flow.time);
                *seen = (*seen).max(flow.time);
            }
            self.rows.push(FlowRow {
                time_us: micros(flow.time),
                key: uuid_text(key),
                src_ip: flow.src_ip,
                src_port: flow.src_port.map(i32::from),
                dst_ip: flow.dst_ip,
                dst_port: i32::from(e.port.get()),
                protocol: e.protocol.as_str(),
                verdict: flow.verdict.as_str(),
                src_endpoint: e.src.key(),
                dst_endpoint: e.dst.key(),
                src_namespace: namespace_of(&e.src),
                dst_namespace: namespace_of(&e.dst),
                service: e.service.as_ref().map(|(ns, name, port)| format!("{ns}/{name}:{port}")),
                process: flow.process.clone(),
                node: flow.node.clone(),
                bytes: flow.bytes.and_then(|b| i64::try_from(b).ok()),
                packets: flow.packets.and_then(|b| i64::try_from(b).ok()),
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

/// What one batch did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Written {
    pub inserted: u64,
    pub duplicates: u64,
}

const DAY_US: i64 = 86_400_000_000;

impl Store {
    /// Writes one batch in one transaction.
    pub async fn write_batch(&self, cluster: i32, batch: &Batch) -> Result<Written> {
        if batch.is_empty() && batch.learned.is_empty() {
            return Ok(Written::default());
        }
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
        let n = batch.rows.len();
        let mut time = Vec::with_capacity(n);
        let mut key = Vec::with_capacity(n);
        let mut src_ip = Vec::with_capacity(n);
        let mut src_port = Vec::with_capacity(n);
        let mut dst_ip = Vec::with_capacity(n);
        let mut dst_port = Vec::with_capacity(n);
        let mut protocol = Vec::with_capacity(n);
        let mut verdict = Vec::with_capacity(n);
        let mut src_ep = Vec::with_capacity(n);
        let mut dst_ep = Vec::with_capacity(n);
        let mut service = Vec::with_capacity(n);
        let mut process = Vec::with_capacity(n);
        let mut node = Vec::with_capacity(n);
        let mut bytes = Vec::with_capacity(n);
        let mut packets = Vec::with_capacity(n);
        // Each endpoint's namespace, sent once per endpoint rather than once per row.
        let mut namespaces: HashMap<&str, &str> = HashMap::new();
        for r in &batch.rows {
            time.push(r.time_us);
            key.push(r.key.as_str());
            src_ip.push(r.src_ip);
            src_port.push(r.src_port);
            dst_ip.push(r.dst_ip);
            dst_port.push(r.dst_port);
            protocol.push(r.protocol);
            verdict.push(r.verdict);
            src_ep.push(r.src_endpoint.as_str());
            dst_ep.push(r.dst_endpoint.as_str());
            service.push(r.service.as_deref());
            process.push(r.process.as_deref());
            node.push(r.node.as_deref());
            bytes.push(r.bytes);
            packets.push(r.packets);
            namespaces.entry(&r.src_endpoint).or_insert(&r.src_namespace);
            namespaces.entry(&r.dst_endpoint).or_insert(&r.dst_namespace);
        }
        let (ns_ep, ns_name): (Vec<&str>, Vec<&str>) = namespaces.into_iter().unzip();
        // The aggregates are folded from what the insert returns, i.e. exactly the rows it stored:
        // a flow already in the table, or twice in this batch, is skipped by `on conflict do
        // nothing` and counted nowhere. (Joining the returned keys back to the input costs more
        // than the insert returning the few columns the aggregates need.)
        let inserted: i64 = sqlx::query_scalar(
            "with ins as (
                insert into flows as f (cluster_id, time, flow_key, src_ip, src_port, dst_ip, dst_port, protocol, verdict,
                                        src_endpoint, dst_endpoint, service, process, node, bytes, packets)
                select $1, timestamptz 'epoch' + us * interval '1 microsecond', k::uuid, sip, sport, dip, dport, proto,
                       verdict, sep, dep, svc, proc, node, bytes, packets
                from unnest($2::bigint[], $3::text[], $4::inet[], $5::int[], $6::inet[], $7::int[], $8::text[], $9::text[],
                            $10::text[], $11::text[], $12::text[], $13::text[], $14::text[], $15::bigint[], $16::bigint[])
                    as t(us, k, sip, sport, dip, dport, proto, verdict, sep, dep, svc, proc, node, bytes, packets)
                on conflict do nothing
                returning f.time, f.src_endpoint, f.dst_endpoint, f.dst_port, f.protocol, f.verdict, f.service, f.process
             ),
             ns as (
                select * from unnest($17::text[], $18::text[]) as n(endpoint, namespace)
             ),
             hourly as (
                select date_trunc('hour', time) as bucket, src_endpoint, dst_endpoint, dst_port, protocol,
                       count(*) as flows, count(*) filter (where verdict = 'DROPPED') as dropped,
                       min(time) as first_seen, max(time) as last_seen,
                       coalesce((array_agg(distinct process) filter (where process is not null))[1:8], '{}') as processes,
                       coalesce((array_agg(distinct service) filter (where service is not null))[1:8], '{}') as services
                from ins
                group by date_trunc('hour', time), src_endpoint, dst_endpoint, dst_port, protocol
             ),
             agg as (
                insert into conn_hourly as c (cluster_id, bucket, src_endpoint, dst_endpoint, src_namespace, dst_namespace,
                                              port, protocol, flows, dropped, first_seen, last_seen, processes, services)
                select $1, h.bucket, h.src_endpoint, h.dst_endpoint, s.namespace, d.namespace, h.dst_port, h.protocol,
                       h.flows, h.dropped, h.first_seen, h.last_seen, h.processes, h.services
                from hourly h
                join ns s on s.endpoint = h.src_endpoint
                join ns d on d.endpoint = h.dst_endpoint
                -- Rows are locked in key order, so concurrent batches cannot deadlock on them.
                order by h.src_endpoint, h.bucket, h.dst_endpoint, h.dst_port, h.protocol
                on conflict (cluster_id, src_endpoint, bucket, dst_endpoint, port, protocol) do update set
                   flows = c.flows + excluded.flows,
                   dropped = c.dropped + excluded.dropped,
                   first_seen = least(c.first_seen, excluded.first_seen),
                   last_seen = greatest(c.last_seen, excluded.last_seen),
                   -- Stored arrays are sorted, distinct and at most 8 long, so when the new values
                   -- are among them the merge below would return them unchanged: skip it.
                   processes = case when excluded.processes <@ c.processes then c.processes
                                    else (select coalesce((array_agg(distinct p))[1:8], '{}')
                                          from unnest(c.processes || excluded.processes) p) end,
                   services = case when excluded.services <@ c.services then c.services
                                   else (select coalesce((array_agg(distinct s))[1:8], '{}')
                                         from unnest(c.services || excluded.services) s) end
             )
             select count(*) from ins",
        )
        .bind(cluster)
        .bind(&time)
        .bind(&key)
        .bind(&src_ip)
        .bind(&src_port)
        .bind(&dst_ip)
        .bind(&dst_port)
        .bind(&protocol)
        .bind(&verdict)
        .bind(&src_ep)
        .bind(&dst_ep)
        .bind(&service)
        .bind(&process)
        .bind(&node)
        .bind(&bytes)
        .bind(&packets)
        .bind(&ns_ep)
        .bind(&ns_name)
        .fetch_one(&mut *tx)
        .await?;
        if !batch.learned.is_empty() {
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
        }
        tx.commit().await?;
        let inserted = inserted as u64;
        Ok(Written { inserted, duplicates: n as u64 - inserted })
    }

    /// Drops the day partitions that end before `newest flow - retention`. Partitions hold all
    /// clusters, so retention is one setting for the store; it counts back from the newest flow
    /// rather than from now, so replaying an old capture does not drop what it just wrote.
    pub async fn apply_retention(&self, retention: jiff::SignedDuration) -> Result<Vec<String>> {
        let newest: Option<i64> =
            sqlx::query_scalar("select (extract(epoch from max(time)) * 1000000)::bigint from flows")
                .fetch_one(&self.pool)
                .await?;
        let Some(newest) = newest else { return Ok(Vec::new()) };
        let cutoff_day = (newest - retention.as_micros() as i64).div_euclid(DAY_US);
        let parts: Vec<String> = sqlx::query_scalar(
            "select c.relname::text from pg_inherits i
             join pg_class c on c.oid = i.inhrelid join pg_class p on p.oid = i.inhparent
             where p.relname = 'flows' and c.relname ~ '^flows_[0-9]{8}$'
             order by 1",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut dropped = Vec::new();
        for p in parts {
            let Ok(date) = jiff::civil::Date::strptime("%Y%m%d", &p[6..]) else { continue };
            let Ok(start) = date.to_zoned(jiff::tz::TimeZone::UTC) else { continue };
            let day = start.timestamp().as_microsecond().div_euclid(DAY_US);
            // The partition holds [day, day + 1); drop it when all of it is older than the cutoff.
            if day < cutoff_day {
                // `p` matched ^flows_[0-9]{8}$ above: nothing in it needs quoting.
                let sql = format!("drop table if exists {p}");
                sqlx::query(sqlx::AssertSqlSafe(sql)).execute(&self.pool).await?;
                dropped.push(p);
            }
        }
        Ok(dropped)
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
}
