//! Window queries, answered from the hourly aggregates (never from raw flows), and counts.

use jiff::Timestamp;
use serde::Serialize;

use super::{DAY_US, HOUR_US, Result, Store, from_micros, micros};
use crate::enrich::{Endpoint, PendingIdentity};
use crate::model::names::excerpt;
use crate::model::{Port, Protocol, WorkloadRef};
use crate::topology::{Catalog, ConnKey, ConnStats, Connections};

/// Which connections a query wants.
#[derive(Debug, Clone)]
pub enum Scope<'a> {
    /// Connections with this workload on either end.
    Workload(&'a WorkloadRef),
    /// Connections with an end in this namespace.
    Namespace(&'a str),
    All,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Stats {
    /// Flows counted in the aggregates.
    pub flows: i64,
    /// Raw rows kept (`--keep-flows`).
    pub raw_flows: i64,
    pub connections: i64,
    pub workloads: i64,
    pub pods: i64,
    pub unresolved_ips: i64,
    pub first_flow: Option<String>,
    pub last_flow: Option<String>,
}

type Row = (String, String, i32, String, i64, i64, i64, i64, Vec<String>, Vec<String>, i64, Vec<i32>);

/// Unbounded ends: 0001-01-01 and 9999-12-31.
const EARLIEST_US: i64 = -62_135_596_800_000_000;
const LATEST_US: i64 = 253_402_300_799_000_000;

/// The buckets a window reads, in microseconds since the epoch: `[a, z]` is the window with its
/// start moved back to the hour (buckets overlapping it count whole); the whole days `[d0, d1)`
/// (UTC) within it come from `conn_daily`, the hours `[a, d0)` and `[d1, z]` from `conn_hourly`.
/// When no whole day fits, `d0 = d1 = z + 1`: no days, and all of `[a, z]` in the first range.
///
/// Hours before `rolled` (where the hourly aggregates were rolled up to, a day's start) are gone:
/// a window edge before it widens to its whole day.
pub fn window_buckets(since: Option<Timestamp>, until: Option<Timestamp>, rolled: Option<Timestamp>) -> [i64; 4] {
    let rolled = rolled.map_or(EARLIEST_US, micros);
    let mut a = since.map_or(EARLIEST_US, micros).div_euclid(HOUR_US) * HOUR_US;
    let mut z = until.map_or(LATEST_US, micros);
    if a < rolled {
        a = a.div_euclid(DAY_US) * DAY_US;
    }
    if z < rolled {
        z = (z.div_euclid(DAY_US) + 1) * DAY_US - HOUR_US;
    }
    // The first day starting at or after `a`; the end of the last day whose hours all start at or
    // before `z` (its last hour starts at end - 1 h).
    let d0 = (a + DAY_US - 1).div_euclid(DAY_US) * DAY_US;
    let d1 = (z + HOUR_US).div_euclid(DAY_US) * DAY_US;
    if d0 < d1 { [a, z, d0, d1] } else { [a, z, z + 1, z + 1] }
}

/// The SQL behind [`Store::connections`] for a scope, and its `$4` argument. Public so that the
/// store benchmark can `explain` exactly the statement the application runs.
/// Binds: `$1` cluster id, `$2`, `$3`, `$5`, `$6` the window's `[a, z, d0, d1]` from
/// [`window_buckets`], `$4` the scope.
pub fn connections_sql(scope: &Scope<'_>) -> (&'static str, String) {
    // One range of one aggregate table: `$lo <= bucket < $hi` (or `<= $hi`, `$op`), also within
    // `[$2, $3]` where the range alone does not say so, and in scope.
    macro_rules! range {
        ($table:literal, $lo:literal, $op:literal, $hi:literal, $filter:literal) => {
            concat!(
                "select src_endpoint, dst_endpoint, port, protocol, flows, dropped, first_seen, last_seen,
                        processes, services, undecided, reply_ports
                 from ",
                $table,
                " where cluster_id = $1
                   and bucket >= timestamptz 'epoch' + ",
                $lo,
                "::bigint * interval '1 microsecond'
                   and bucket >= timestamptz 'epoch' + $2::bigint * interval '1 microsecond'
                   and bucket ",
                $op,
                " timestamptz 'epoch' + ",
                $hi,
                "::bigint * interval '1 microsecond'
                   and bucket <= timestamptz 'epoch' + $3::bigint * interval '1 microsecond' ",
                $filter
            )
        };
    }
    // The whole days from conn_daily, the hours before and after them from conn_hourly: three
    // index ranges (one hourly range with the days filtered out read the whole window's hours).
    macro_rules! window_sql {
        ($filter:literal) => {
            concat!(
                "select src_endpoint, dst_endpoint, port, protocol, sum(flows)::bigint, sum(dropped)::bigint,
                        (extract(epoch from min(first_seen)) * 1000000)::bigint,
                        (extract(epoch from max(last_seen)) * 1000000)::bigint,
                        array_cat_agg(processes), array_cat_agg(services), sum(undecided)::bigint,
                        array_cat_agg(reply_ports)
                 from (",
                range!("conn_daily", "$5", "<", "$6", $filter),
                " union all ",
                range!("conn_hourly", "$2", "<", "$5", $filter),
                " union all ",
                range!("conn_hourly", "$6", "<=", "$3", $filter),
                ") c
                 group by src_endpoint, dst_endpoint, port, protocol"
            )
        };
    }
    match scope {
        Scope::Workload(w) => (window_sql!("and (src_endpoint = $4 or dst_endpoint = $4)"), w.to_string()),
        Scope::Namespace(ns) => (window_sql!("and (src_namespace = $4 or dst_namespace = $4)"), ns.to_string()),
        Scope::All => (window_sql!("and $4 = ''"), String::new()),
    }
}

/// A stored connection's key, and the identities of ends stored by pod identity (each read as
/// its address, the identity pending), if this version can read it.
fn conn_key(src: &str, dst: &str, port: i32, protocol: &str) -> Option<(ConnKey, Vec<PendingIdentity>)> {
    let mut pending = Vec::new();
    let mut end = |key: &str, is_src: bool| {
        Endpoint::from_key(key).or_else(|| {
            let (ep, id) = Endpoint::from_identity_key(key, is_src)?;
            pending.push(id);
            Some(ep)
        })
    };
    let key = ConnKey {
        src: end(src, true)?,
        dst: end(dst, false)?,
        port: u16::try_from(port).ok().and_then(Port::new)?,
        protocol: protocol.parse::<Protocol>().ok()?,
    };
    Some((key, pending))
}

impl Store {
    /// The connections seen in `[since, until]` (hour-aligned: the aggregates' buckets that
    /// overlap the window count whole), folded into `Connections` with the given catalog. Whole
    /// days are read from the daily aggregates, so a week costs about seven rows a connection
    /// plus the partial days at its edges, not 168.
    pub async fn connections(
        &self,
        cluster: i32,
        scope: Scope<'_>,
        since: Option<Timestamp>,
        until: Option<Timestamp>,
        catalog: Catalog,
    ) -> Result<Connections> {
        let (sql, arg) = connections_sql(&scope);
        let rolled = self.hourly_removed_before(cluster).await?;
        let [a, z, d0, d1] = window_buckets(since, until, rolled);
        let rows: Vec<Row> =
            sqlx::query_as(sql).bind(cluster).bind(a).bind(z).bind(arg).bind(d0).bind(d1).fetch_all(&self.pool).await?;
        let mut conns = Connections::new(catalog);
        conns.names = self.names(cluster, until).await?;
        let mut map = crate::topology::ConnMap::with_capacity_and_hasher(rows.len(), Default::default());
        // A key this version cannot read (a name an older version stored unchecked, say) costs
        // its row, not the page: the row is left out and counted, and the first is logged.
        let mut unreadable: (usize, Option<String>) = (0, None);
        for (src, dst, port, proto, flows, dropped, first, last, processes, services_list, undecided, reply_ports) in
            rows
        {
            let Some((key, pending)) = conn_key(&src, &dst, port, &proto) else {
                unreadable.0 += 1;
                unreadable.1.get_or_insert_with(|| {
                    format!("{:?} -> {:?} {port}/{:?}", excerpt(&src), excerpt(&dst), excerpt(&proto))
                });
                continue;
            };
            // Each stored array is capped already; read back through the one rule all the same.
            let stats = ConnStats {
                flows: flows as u64,
                dropped: dropped as u64,
                first_seen: from_micros(first)?,
                last_seen: from_micros(last)?,
                processes: crate::topology::smallest(processes),
                services: crate::topology::smallest(services_list),
                undecided: undecided as u64,
                reply_ports: crate::topology::smallest(reply_ports.into_iter().filter_map(|p| u16::try_from(p).ok())),
            };
            for end in [&key.src, &key.dst] {
                if let Some(w) = end.workload() {
                    conns.catalog.note_workload(w);
                }
            }
            if !pending.is_empty() {
                conns.add_pending(key, pending, stats);
                continue;
            }
            conns.flows += stats.flows;
            conns.newest = Some(conns.newest.map_or(stats.last_seen, |n: Timestamp| n.max(stats.last_seen)));
            map.insert(key, stats);
        }
        if let (n, Some(first)) = unreadable {
            tracing::warn!(
                "cluster {cluster}: {n} stored connections with keys that cannot be read were left out (first: {first})"
            );
        }
        conns.map = map;
        Ok(conns)
    }

    /// Flows per strip bin of each connection of `w` within `bins`, from the hourly aggregates
    /// (hours rolled up into days have no hourly detail and are not drawn). Summed per bin in
    /// SQL, so a week reads at most [`crate::report::MAX_STRIP_BINS`] rows a connection. Keys
    /// stored by pod identity (their workload still pending) are left out: those rows get no
    /// strip rather than a wrong one.
    pub async fn activity(
        &self,
        cluster: i32,
        w: &WorkloadRef,
        bins: &crate::report::StripBins,
    ) -> Result<std::collections::HashMap<ConnKey, crate::report::Strip>> {
        let end = bins.start_us + bins.bins as i64 * bins.bin_hours * HOUR_US;
        let rows: Vec<(String, String, i32, String, i64, i64)> = sqlx::query_as(
            "select src_endpoint, dst_endpoint, port, protocol,
                    ((extract(epoch from bucket) * 1000000)::bigint - $2) / $4 as bin, sum(flows)::bigint
             from conn_hourly
             where cluster_id = $1 and (src_endpoint = $5 or dst_endpoint = $5)
               and bucket >= timestamptz 'epoch' + $2::bigint * interval '1 microsecond'
               and bucket < timestamptz 'epoch' + $3::bigint * interval '1 microsecond'
             group by 1, 2, 3, 4, 5",
        )
        .bind(cluster)
        .bind(bins.start_us)
        .bind(end)
        .bind(bins.bin_hours * HOUR_US)
        .bind(w.to_string())
        .fetch_all(&self.pool)
        .await?;
        let mut out: std::collections::HashMap<ConnKey, crate::report::Strip> = Default::default();
        for (src, dst, port, proto, bin, flows) in rows {
            let Some((key, pending)) = conn_key(&src, &dst, port, &proto) else { continue };
            let Some(i) = usize::try_from(bin).ok().filter(|i| *i < bins.bins) else { continue };
            if !pending.is_empty() {
                continue;
            }
            out.entry(key).or_insert_with(|| crate::report::Strip::new(bins)).counts[i] += flows.max(0) as u64;
        }
        Ok(out)
    }

    /// The flows counted in the cluster's aggregates (the daily ones hold every flow).
    pub async fn flows_counted(&self, cluster: i32) -> Result<i64> {
        let n: Option<i64> = sqlx::query_scalar("select sum(flows)::bigint from conn_daily where cluster_id = $1")
            .bind(cluster)
            .fetch_one(&self.pool)
            .await?;
        Ok(n.unwrap_or(0))
    }

    pub async fn stats(&self, cluster: i32) -> Result<Stats> {
        // From the aggregates (raw rows are kept only when asked): the flows counted, the first
        // one's time in the oldest day; the last one's is the newest flow relative windows count
        // back from (`clusters.newest_flow`), so that the two cannot disagree.
        let (flows, first, last): (Option<i64>, Option<i64>, Option<i64>) = sqlx::query_as(
            "select (select sum(flows)::bigint from conn_daily where cluster_id = $1),
                    (select (extract(epoch from min(first_seen)) * 1000000)::bigint from conn_daily
                     where cluster_id = $1 and bucket = (select min(bucket) from conn_daily where cluster_id = $1)),
                    (select (extract(epoch from newest_flow) * 1000000)::bigint from clusters where id = $1)",
        )
        .bind(cluster)
        .fetch_one(&self.pool)
        .await?;
        let flows = flows.unwrap_or(0);
        let raw_flows: i64 = sqlx::query_scalar("select count(*) from flows where cluster_id = $1")
            .bind(cluster)
            .fetch_one(&self.pool)
            .await?;
        let (connections,): (i64,) = sqlx::query_as(
            "select count(*) from (select distinct src_endpoint, dst_endpoint, port, protocol
                                   from conn_daily where cluster_id = $1) c",
        )
        .bind(cluster)
        .fetch_one(&self.pool)
        .await?;
        let (unresolved,): (i64,) = sqlx::query_as(
            "select count(distinct e) from (
                select src_endpoint as e from conn_daily where cluster_id = $1 and src_endpoint like 'unresolved/%'
                union all
                select dst_endpoint from conn_daily where cluster_id = $1 and dst_endpoint like 'unresolved/%') u",
        )
        .bind(cluster)
        .fetch_one(&self.pool)
        .await?;
        let (pods,): (i64,) = sqlx::query_as(
            "select count(*) from k8s_objects where cluster_id = $1 and kind = 'Pod' and valid_to is null",
        )
        .bind(cluster)
        .fetch_one(&self.pool)
        .await?;
        let (workloads,): (i64,) = sqlx::query_as(
            "select count(*) from (
                select src_endpoint as e from conn_daily
                where cluster_id = $1 and src_namespace <> '' and src_endpoint not like 'identity/%'
                union select dst_endpoint from conn_daily
                where cluster_id = $1 and dst_namespace <> '' and dst_endpoint not like 'identity/%'
                union select lower(kind) || '/' || namespace || '/' || name from k8s_objects
                      where cluster_id = $1 and valid_to is null
                        and kind in ('Deployment', 'StatefulSet', 'DaemonSet', 'CronJob')) w",
        )
        .bind(cluster)
        .fetch_one(&self.pool)
        .await?;
        let fmt =
            |t: Option<i64>| -> Result<Option<String>> { t.map(|t| from_micros(t).map(|t| t.to_string())).transpose() };
        Ok(Stats {
            flows,
            raw_flows,
            connections,
            workloads,
            pods,
            unresolved_ips: unresolved,
            first_flow: fmt(first)?,
            last_flow: fmt(last)?,
        })
    }

    /// The newest flow's time, for relative windows (every page with one asks): one row, which
    /// every batch that writes aggregates raises (migration `0011`).
    pub async fn newest_flow(&self, cluster: i32) -> Result<Option<Timestamp>> {
        let t: Option<Option<i64>> = sqlx::query_scalar(
            "select (extract(epoch from newest_flow) * 1000000)::bigint from clusters where id = $1",
        )
        .bind(cluster)
        .fetch_optional(&self.pool)
        .await?;
        t.flatten().map(from_micros).transpose()
    }
}

/// One table of the store: its size on disk (with indexes and TOAST) and PostgreSQL's estimate of
/// its rows (partitioned tables summed over their partitions).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct TableSize {
    pub table: String,
    pub bytes: i64,
    pub rows: i64,
}

impl Store {
    /// The store's tables by size, whole (every cluster): what `stats` shows of the store.
    pub async fn table_sizes(&self) -> Result<Vec<TableSize>> {
        let rows: Vec<(String, i64, i64)> = sqlx::query_as(
            "select coalesce(parent.relname, c.relname)::text as t,
                    sum(pg_total_relation_size(c.oid))::bigint, sum(greatest(c.reltuples, 0))::bigint
             from pg_class c
             join pg_namespace n on n.oid = c.relnamespace and n.nspname = current_schema()
             left join pg_inherits i on i.inhrelid = c.oid
             left join pg_class parent on parent.oid = i.inhparent
             where c.relkind = 'r' and c.relname not like '\\_sqlx%'
             group by 1 order by 2 desc, 1",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(|(table, bytes, rows)| TableSize { table, bytes, rows }).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn windows_read_whole_days_and_widen_past_the_hourly_horizon() {
        let us = |s: &str| micros(t(s));
        // 2 Nov 10:30 .. 5 Nov 07:00: hours from 10:00 on the 2nd, days 3 and 4, hours of the 5th.
        let w = window_buckets(Some(t("2026-11-02T10:30:00Z")), Some(t("2026-11-05T07:00:00Z")), None);
        assert_eq!(
            w,
            [
                us("2026-11-02T10:00:00Z"),
                us("2026-11-05T07:00:00Z"),
                us("2026-11-03T00:00:00Z"),
                us("2026-11-05T00:00:00Z")
            ]
        );
        // Hourly rows rolled up before 4 Nov: the start widens to its day, the end (after it) stays.
        let w = window_buckets(
            Some(t("2026-11-02T10:30:00Z")),
            Some(t("2026-11-05T07:00:00Z")),
            Some(t("2026-11-04T00:00:00Z")),
        );
        assert_eq!(
            w,
            [
                us("2026-11-02T00:00:00Z"),
                us("2026-11-05T07:00:00Z"),
                us("2026-11-02T00:00:00Z"),
                us("2026-11-05T00:00:00Z")
            ]
        );
        // A window wholly before it: both ends widen, all of it from the days.
        let w = window_buckets(
            Some(t("2026-11-02T10:30:00Z")),
            Some(t("2026-11-02T12:00:00Z")),
            Some(t("2026-11-04T00:00:00Z")),
        );
        assert_eq!(
            w,
            [
                us("2026-11-02T00:00:00Z"),
                us("2026-11-02T23:00:00Z"),
                us("2026-11-02T00:00:00Z"),
                us("2026-11-03T00:00:00Z")
            ]
        );
    }
}
