//! Late resolution: flows stored while their addresses matched no object (ingested before the
//! inventory, or before a watch saw the pod) are given the objects that held those addresses at
//! their time once an import records them. Without it they stayed unresolved forever, and a
//! re-ingest only counted them as duplicates.
//!
//! Only the addresses of the objects an import added or changed are looked at, and only flows from
//! the earliest of those objects' creation on, so a watch recording a new pod costs a scan of that
//! pod's lifetime, not of the store. The connection-hours the moved flows left and joined are
//! recomputed from the raw flows (retention removes whole days, so an hour that still has one raw
//! flow has all of them), and their days from the hours.

use std::collections::BTreeSet;
use std::net::IpAddr;

use jiff::Timestamp;

use super::{HOUR_US, Result, Store, from_micros, micros};
use crate::enrich::{Endpoint, enrich};
use crate::inventory::KubeObject;
use crate::model::{FlowRecord, Port, Protocol, Verdict};

/// The addresses an object holds: a pod's, a node's, a Service's cluster IPs.
pub fn addresses(obj: &KubeObject) -> Vec<IpAddr> {
    let texts: Vec<String> = match obj {
        KubeObject::Pod(p) => p
            .status
            .iter()
            .flat_map(|s| s.pod_ips.iter().flatten().map(|i| i.ip.clone()).chain(s.pod_ip.clone()))
            .collect(),
        KubeObject::Node(n) => {
            n.status.iter().flat_map(|s| s.addresses.iter().flatten().map(|a| a.address.clone())).collect()
        }
        KubeObject::Service(s) => {
            s.spec.iter().flat_map(|sp| sp.cluster_ips.iter().flatten().cloned().chain(sp.cluster_ip.clone())).collect()
        }
        _ => Vec::new(),
    };
    let mut ips: Vec<IpAddr> = texts.iter().filter_map(|t| t.parse().ok()).collect();
    ips.sort();
    ips.dedup();
    ips
}

/// The connection-hours a re-attribution changes: `$2`..`$6`.
macro_rules! affected {
    () => {
        "unnest($2::bigint[], $3::text[], $4::text[], $5::int[], $6::text[]) as a(b, s, d, p, pr)"
    };
}

/// An endpoint key's namespace in SQL, as the write path stores it: a workload's (or an
/// identity's) namespace, '' for addresses.
macro_rules! namespace_of {
    ($col:literal) => {
        concat!(
            "case when split_part(",
            $col,
            ", '/', 1) in ('node', 'external', 'unresolved') then '' else split_part(",
            $col,
            ", '/', 2) end"
        )
    };
}

const DELETE_HOURS: &str = concat!(
    "delete from conn_hourly c using ",
    affected!(),
    " where c.cluster_id = $1 and c.src_endpoint = a.s and c.dst_endpoint = a.d and c.port = a.p
        and c.protocol = a.pr and c.bucket = timestamptz 'epoch' + a.b * interval '1 microsecond'"
);

const INSERT_HOURS: &str = concat!(
    "insert into conn_hourly (cluster_id, bucket, src_endpoint, dst_endpoint, src_namespace, dst_namespace, port,
                              protocol, flows, dropped, first_seen, last_seen, processes, services, undecided,
                              reply_ports)
     select $1, date_trunc('hour', f.time, 'UTC'), f.src_endpoint, f.dst_endpoint, ",
    namespace_of!("f.src_endpoint"),
    ", ",
    namespace_of!("f.dst_endpoint"),
    ",
            f.dst_port, f.protocol, count(*), count(*) filter (where f.verdict = 'DROPPED'),
            min(f.time), max(f.time),
            coalesce((array_agg(distinct f.process) filter (where f.process is not null))[1:$7::int], '{}'),
            coalesce((array_agg(distinct f.service) filter (where f.service is not null))[1:$7::int], '{}'),
            count(*) filter (where f.undecided),
            coalesce((array_agg(distinct f.src_port order by f.src_port)
                      filter (where f.undecided and f.src_port is not null))[1:$7::int], '{}')
     from flows f join ",
    affected!(),
    " on f.src_endpoint = a.s and f.dst_endpoint = a.d and f.dst_port = a.p and f.protocol = a.pr
      and f.time >= timestamptz 'epoch' + a.b * interval '1 microsecond'
      and f.time < timestamptz 'epoch' + a.b * interval '1 microsecond' + interval '1 hour'
     where f.cluster_id = $1
     group by 2, 3, 4, 5, 6, 7, 8"
);

/// The day (UTC) of an affected connection-hour.
macro_rules! day {
    () => {
        "date_trunc('day', timestamptz 'epoch' + a.b * interval '1 microsecond', 'UTC')"
    };
}

const DELETE_DAYS: &str = concat!(
    "delete from conn_daily c using ",
    affected!(),
    " where c.cluster_id = $1 and c.src_endpoint = a.s and c.dst_endpoint = a.d and c.port = a.p
        and c.protocol = a.pr and c.bucket = ",
    day!()
);

const INSERT_DAYS: &str = concat!(
    "insert into conn_daily (cluster_id, bucket, src_endpoint, dst_endpoint, src_namespace, dst_namespace, port,
                             protocol, flows, dropped, first_seen, last_seen, processes, services, undecided,
                             reply_ports)
     select $1, date_trunc('day', h.bucket, 'UTC'), h.src_endpoint, h.dst_endpoint, h.src_namespace,
            h.dst_namespace, h.port, h.protocol, sum(h.flows)::bigint, sum(h.dropped)::bigint,
            min(h.first_seen), max(h.last_seen),
            (select coalesce((array_agg(distinct p))[1:$7::int], '{}') from unnest(array_cat_agg(h.processes)) p),
            (select coalesce((array_agg(distinct s))[1:$7::int], '{}') from unnest(array_cat_agg(h.services)) s),
            sum(h.undecided)::bigint,
            (select coalesce((array_agg(distinct p order by p))[1:$7::int], '{}') from unnest(array_cat_agg(h.reply_ports)) p)
     from conn_hourly h
     where h.cluster_id = $1
       and (h.src_endpoint, h.dst_endpoint, h.port, h.protocol, date_trunc('day', h.bucket, 'UTC')) in
           (select distinct a.s, a.d, a.p, a.pr, ",
    day!(),
    " from ",
    affected!(),
    ")
     group by 2, 3, 4, 5, 6, 7, 8"
);

impl Store {
    /// Gives the flows of `cluster` whose unresolved ends are among `ips`, from `since` on, the
    /// workloads the stored inventory now says held them at their time. Returns how many flows
    /// moved. Flows to a ClusterIP that now fans out to several workloads stay as they are (they
    /// would need rows of their own).
    pub async fn reattribute(&self, cluster: i32, ips: &[IpAddr], since: Timestamp) -> Result<u64> {
        if ips.is_empty() {
            return Ok(0);
        }
        type Row = (i64, String, IpAddr, Option<i32>, IpAddr, i32, String, String, String, String, Option<String>);
        let rows: Vec<Row> = sqlx::query_as(
            "select (extract(epoch from time) * 1000000)::bigint, flow_key::text, src_ip, src_port, dst_ip, dst_port,
                    protocol, verdict, src_endpoint, dst_endpoint, process
             from flows
             where cluster_id = $1 and time >= timestamptz 'epoch' + $2::bigint * interval '1 microsecond'
               and ((src_ip = any($3::inet[]) and src_endpoint like 'unresolved/%')
                 or (dst_ip = any($3::inet[]) and dst_endpoint like 'unresolved/%'))",
        )
        .bind(cluster)
        .bind(micros(since))
        .bind(ips)
        .fetch_all(&self.pool)
        .await?;
        if rows.is_empty() {
            return Ok(0);
        }
        let inv = self.load_inventory(cluster).await?;
        let (mut times, mut keys, mut srcs, mut dsts) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        // (hour, source, destination, port, protocol) of every connection-hour that changes.
        let mut hours: BTreeSet<(i64, String, String, i32, String)> = BTreeSet::new();
        for (time_us, key, src_ip, src_port, dst_ip, dst_port, protocol, verdict, src_ep, dst_ep, process) in rows {
            let (Some(port), Ok(proto)) =
                (u16::try_from(dst_port).ok().and_then(Port::new), protocol.parse::<Protocol>())
            else {
                continue;
            };
            let flow = FlowRecord {
                time: from_micros(time_us)?,
                uuid: None,
                src_ip,
                src_port: src_port.and_then(|p| u16::try_from(p).ok()),
                dst_ip,
                dst_port: port,
                protocol: proto,
                verdict: Verdict::parse_lenient(&verdict),
                process,
                node: None,
                cluster: None,
                bytes: None,
                packets: None,
                src_meta: None,
                dst_meta: None,
                dst_service: None,
                role: Default::default(),
                dst_names: Vec::new(),
                src_names: Vec::new(),
            };
            let enriched = enrich(&inv, &flow);
            let [e] = enriched.as_slice() else { continue };
            if e.port != port {
                continue;
            }
            // Only an end that was unresolved changes; one the write path resolved stays.
            let pick = |old: &str, new: &Endpoint| {
                if old.starts_with("unresolved/") && !matches!(new, Endpoint::Unresolved { .. }) {
                    new.key()
                } else {
                    old.to_string()
                }
            };
            let (new_src, new_dst) = (pick(&src_ep, &e.src), pick(&dst_ep, &e.dst));
            if new_src == src_ep && new_dst == dst_ep {
                continue;
            }
            let hour = time_us.div_euclid(HOUR_US) * HOUR_US;
            hours.insert((hour, src_ep, dst_ep, dst_port, protocol.clone()));
            hours.insert((hour, new_src.clone(), new_dst.clone(), dst_port, protocol));
            times.push(time_us);
            keys.push(key);
            srcs.push(new_src);
            dsts.push(new_dst);
        }
        if times.is_empty() {
            return Ok(0);
        }
        let h_bucket: Vec<i64> = hours.iter().map(|h| h.0).collect();
        let h_src: Vec<&str> = hours.iter().map(|h| h.1.as_str()).collect();
        let h_dst: Vec<&str> = hours.iter().map(|h| h.2.as_str()).collect();
        let h_port: Vec<i32> = hours.iter().map(|h| h.3).collect();
        let h_proto: Vec<&str> = hours.iter().map(|h| h.4.as_str()).collect();
        let mut tx = self.pool.begin().await?;
        let moved = sqlx::query(
            "update flows f set src_endpoint = u.s, dst_endpoint = u.d
             from unnest($2::bigint[], $3::text[], $4::text[], $5::text[]) as u(t, k, s, d)
             where f.cluster_id = $1 and f.time = timestamptz 'epoch' + u.t * interval '1 microsecond'
               and f.flow_key = u.k::uuid",
        )
        .bind(cluster)
        .bind(&times)
        .bind(&keys)
        .bind(&srcs)
        .bind(&dsts)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        // The changed connection-hours, recomputed from the flows they now hold, then their days.
        // The inserts take the cap of the lists as `$7`.
        for (sql, capped) in [(DELETE_HOURS, false), (INSERT_HOURS, true), (DELETE_DAYS, false), (INSERT_DAYS, true)] {
            let q =
                sqlx::query(sql).bind(cluster).bind(&h_bucket).bind(&h_src).bind(&h_dst).bind(&h_port).bind(&h_proto);
            let q = if capped { q.bind(crate::topology::MAX_PROCESSES as i32) } else { q };
            q.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(moved)
    }
}
