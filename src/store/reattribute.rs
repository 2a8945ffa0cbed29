//! Late resolution: flows stored while their addresses matched no object (ingested before the
//! inventory, or before a watch saw the pod) are given the objects that held those addresses at
//! their time once an import records them. Without it they stayed unresolved forever, and a
//! re-ingest only counted them as duplicates.
//!
//! Only the addresses of the objects an import added or changed are looked at, and only flows from
//! the earliest of those objects' creation on, so a watch recording a new pod costs a scan of that
//! pod's lifetime, not of the store. It works on the connection-hours (raw flows are optional):
//! an hour moves whole to the workload its address resolves to at its first and its last flow,
//! merged into what that workload's connection-hour holds; the days are recomputed from the
//! hours.

use std::collections::BTreeSet;
use std::net::IpAddr;

use jiff::Timestamp;

use super::{HOUR_US, Result, Store, from_micros, micros};
use crate::enrich::{Endpoint, enrich};
use crate::inventory::KubeObject;
use crate::model::{FlowRecord, Port, Protocol};

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

/// Moves connection-hours to the endpoints their unresolved ends now resolve to: `$2`..`$10`
/// the hours (bucket, old source and destination, port, protocol, new source and destination and
/// their namespaces), `$11` the cap of the lists. The moved hours are deleted and added, summed
/// per new key, to what that key already holds.
const MOVE_HOURS: &str = concat!(
    "with moves as (
        select * from unnest($2::bigint[], $3::text[], $4::text[], $5::int[], $6::text[], $7::text[], $8::text[],
                             $9::text[], $10::text[])
            as m(b, s, d, p, pr, ns, nd, nsns, ndns)
     ),
     moved as (
        delete from conn_hourly c using moves m
        where c.cluster_id = $1 and c.bucket = timestamptz 'epoch' + m.b * interval '1 microsecond'
          and c.src_endpoint = m.s and c.dst_endpoint = m.d and c.port = m.p and c.protocol = m.pr
        returning c.*, m.ns, m.nd, m.nsns, m.ndns
     ),
     hourly as (
        select bucket, ns as src_endpoint, nd as dst_endpoint, nsns as src_namespace, ndns as dst_namespace,
               port as dst_port, protocol, sum(flows)::bigint as flows, sum(dropped)::bigint as dropped,
               min(first_seen) as first_seen, max(last_seen) as last_seen,
               (select coalesce((array_agg(distinct x collate \"C\"))[1:$11::int], '{}') from unnest(array_cat_agg(processes)) x)
                   as processes,
               (select coalesce((array_agg(distinct x collate \"C\"))[1:$11::int], '{}') from unnest(array_cat_agg(services)) x)
                   as services,
               sum(undecided)::bigint as undecided,
               (select coalesce((array_agg(distinct x order by x))[1:$11::int], '{}')
                from unnest(array_cat_agg(reply_ports)) x) as reply_ports
        from moved
        group by bucket, ns, nd, nsns, ndns, port, protocol
     )
     ",
    upsert_into!("conn_hourly", "hourly", "$11")
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
            (select coalesce((array_agg(distinct p collate \"C\"))[1:$7::int], '{}') from unnest(array_cat_agg(h.processes)) p),
            (select coalesce((array_agg(distinct s collate \"C\"))[1:$7::int], '{}') from unnest(array_cat_agg(h.services)) s),
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
    /// Gives the connection-hours of `cluster` whose unresolved ends are among `ips`, from
    /// `since` on, the workloads the stored inventory now says held those addresses: an hour moves
    /// when its end resolves to the same workload at the hour's first and at its last flow (an
    /// address that changed hands within the hour stays unresolved there). Returns how many flows
    /// moved. Flows to a ClusterIP that now fans out to several workloads, or maps to another
    /// port, stay as they are. Raw rows (`--keep-flows`) keep the endpoints they were written
    /// with.
    pub async fn reattribute(&self, cluster: i32, ips: &[IpAddr], since: Timestamp) -> Result<u64> {
        if ips.is_empty() {
            return Ok(0);
        }
        // Hours rolled up into their days are gone: those days stay as they are.
        let since = match self.hourly_removed_before(cluster).await? {
            Some(rolled) if rolled > since => rolled,
            _ => since,
        };
        let keys: Vec<String> = ips.iter().map(|ip| Endpoint::Unresolved { ip: *ip }.key()).collect();
        type Row = (i64, String, String, i32, String, i64, i64, i64);
        let rows: Vec<Row> = sqlx::query_as(
            "select (extract(epoch from bucket) * 1000000)::bigint, src_endpoint, dst_endpoint, port, protocol,
                    (extract(epoch from first_seen) * 1000000)::bigint, (extract(epoch from last_seen) * 1000000)::bigint,
                    flows
             from conn_hourly
             where cluster_id = $1 and bucket >= timestamptz 'epoch' + $2::bigint * interval '1 microsecond'
               and (src_endpoint = any($3::text[]) or dst_endpoint = any($3::text[]))",
        )
        .bind(cluster)
        .bind(micros(since).div_euclid(HOUR_US) * HOUR_US)
        .bind(&keys)
        .fetch_all(&self.pool)
        .await?;
        if rows.is_empty() {
            return Ok(0);
        }
        let inv = self.load_inventory(cluster).await?;
        // (hour, old source, old destination, port, protocol) -> (new source, new destination)
        let mut moves: Vec<((i64, String, String, i32, String), (String, String))> = Vec::new();
        let mut moved_flows = 0u64;
        for (bucket, src, dst, port, protocol, first_us, last_us, flows) in rows {
            let (Some(p), Ok(proto)) = (u16::try_from(port).ok().and_then(Port::new), protocol.parse::<Protocol>())
            else {
                continue;
            };
            let unresolved = |key: &str| match Endpoint::from_key(key) {
                Some(Endpoint::Unresolved { ip }) => Some(ip),
                _ => None,
            };
            let (src_ip, dst_ip) = (unresolved(&src), unresolved(&dst));
            // The end that is not an address to resolve takes a stand-in; its answer is ignored.
            let stand_in = |other: Option<IpAddr>| match other {
                Some(IpAddr::V6(_)) => IpAddr::from([0u16; 8]),
                _ => IpAddr::from([0u8; 4]),
            };
            let resolve_at = |us: i64| -> Option<(Option<Endpoint>, Option<Endpoint>)> {
                let flow = FlowRecord::between(
                    from_micros(us).ok()?,
                    src_ip.unwrap_or_else(|| stand_in(dst_ip)),
                    dst_ip.unwrap_or_else(|| stand_in(src_ip)),
                    p,
                    proto,
                );
                let enriched = enrich(&inv, &flow);
                let [e] = enriched.as_slice() else { return None };
                if e.port != p {
                    return None;
                }
                let pick = |was: Option<IpAddr>, now: &Endpoint| {
                    was.filter(|_| !matches!(now, Endpoint::Unresolved { .. })).map(|_| now.clone())
                };
                Some((pick(src_ip, &e.src), pick(dst_ip, &e.dst)))
            };
            let (Some(first), Some(last)) = (resolve_at(first_us), resolve_at(last_us)) else { continue };
            // Only an end that resolves to the same endpoint across the whole hour moves.
            let settle = |old: &str, a: Option<Endpoint>, b: Option<Endpoint>| match (a, b) {
                (Some(a), Some(b)) if a == b => a.key(),
                _ => old.to_string(),
            };
            let (new_src, new_dst) = (settle(&src, first.0, last.0), settle(&dst, first.1, last.1));
            if new_src == src && new_dst == dst {
                continue;
            }
            moved_flows += flows as u64;
            moves.push(((bucket, src, dst, port, protocol), (new_src, new_dst)));
        }
        if moves.is_empty() {
            return Ok(0);
        }
        let mut tx = self.pool.begin().await?;
        let col = |f: fn(&((i64, String, String, i32, String), (String, String))) -> String| -> Vec<String> {
            moves.iter().map(f).collect()
        };
        sqlx::query(MOVE_HOURS)
            .bind(cluster)
            .bind(moves.iter().map(|m| m.0.0).collect::<Vec<_>>())
            .bind(col(|m| m.0.1.clone()))
            .bind(col(|m| m.0.2.clone()))
            .bind(moves.iter().map(|m| m.0.3).collect::<Vec<_>>())
            .bind(col(|m| m.0.4.clone()))
            .bind(col(|m| m.1.0.clone()))
            .bind(col(|m| m.1.1.clone()))
            .bind(moves.iter().map(|m| namespace_key(&m.1.0)).collect::<Vec<_>>())
            .bind(moves.iter().map(|m| namespace_key(&m.1.1)).collect::<Vec<_>>())
            .bind(crate::topology::MAX_PROCESSES as i32)
            .execute(&mut *tx)
            .await?;
        // The days of the hours that moved, old keys and new, recomputed from their hours.
        let mut hours: BTreeSet<(i64, String, String, i32, String)> = BTreeSet::new();
        for ((b, s, d, p, pr), (ns, nd)) in &moves {
            hours.insert((*b, s.clone(), d.clone(), *p, pr.clone()));
            hours.insert((*b, ns.clone(), nd.clone(), *p, pr.clone()));
        }
        let h_bucket: Vec<i64> = hours.iter().map(|h| h.0).collect();
        let h_src: Vec<&str> = hours.iter().map(|h| h.1.as_str()).collect();
        let h_dst: Vec<&str> = hours.iter().map(|h| h.2.as_str()).collect();
        let h_port: Vec<i32> = hours.iter().map(|h| h.3).collect();
        let h_proto: Vec<&str> = hours.iter().map(|h| h.4.as_str()).collect();
        for (sql, capped) in [(DELETE_DAYS, false), (INSERT_DAYS, true)] {
            let q =
                sqlx::query(sql).bind(cluster).bind(&h_bucket).bind(&h_src).bind(&h_dst).bind(&h_port).bind(&h_proto);
            let q = if capped { q.bind(crate::topology::MAX_PROCESSES as i32) } else { q };
            q.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(moved_flows)
    }
}

/// The namespace the write path stores for an endpoint key: a workload's or an identity's (its
/// second part), '' for addresses.
fn namespace_key(key: &str) -> String {
    match key.split('/').next() {
        Some("node" | "external" | "unresolved") | None => String::new(),
        _ => key.split('/').nth(1).unwrap_or_default().to_string(),
    }
}
