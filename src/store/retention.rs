//! Flow retention, per cluster and counted back from now: the raw flows of a cluster older than
//! its cutoff are removed a day at a time; the aggregates stay.
//!
//! The day partitions of `flows` are shared by every cluster. A partition entirely older than the
//! cutoff is dropped when every cluster with rows in it is being expired with that cutoff: always
//! in a run over all clusters (`serve`), and in a run for one cluster (`ingest`) when no other
//! cluster has rows in it. Otherwise the run deletes that cluster's rows from it, since another
//! cluster may keep its days longer. Dropping costs the same whatever the size (80 ms for a day of
//! 1M rows, measured on the 2-core development VM); deleting costs by the row (500,000 rows of one
//! cluster out of a 1M-row day: 0.34-0.44 s, then 0.3 s of vacuum to reclaim them, against about
//! 2.4 s to insert them), so it is the exception: a day that several clusters share and that a
//! per-cluster run expires first. A later run over all clusters, or of the last cluster in it,
//! drops the day.
//!
//! Each run records, per cluster, the day up to which raw flows were removed
//! (`clusters.flows_removed_before`), so that an ingest never takes a flow older than that:
//! without its raw row, a flow stored again would be counted twice in the aggregates.

use jiff::Timestamp;

use super::{DAY_US, Result, Store, from_micros};
use crate::retention::{Retention, first_kept_day};

/// The clusters a retention run covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Clusters {
    All,
    One(i32),
}

/// What a retention run removed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Removed {
    /// Day partitions dropped whole.
    pub dropped: Vec<String>,
    /// Rows deleted from partitions that other clusters still have rows in.
    pub deleted: u64,
    /// Hourly aggregate rows past the hourly horizon, whose days the daily rows keep.
    pub hourly: u64,
}

impl Removed {
    pub fn is_empty(&self) -> bool {
        self.dropped.is_empty() && self.deleted == 0 && self.hourly == 0
    }
}

impl std::fmt::Display for Removed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.dropped.is_empty(), self.deleted) {
            (true, 0) if self.hourly == 0 => write!(f, "nothing removed"),
            (true, 0) => Ok(()),
            (false, 0) => write!(f, "dropped {}", self.dropped.join(", ")),
            (true, n) => write!(f, "deleted {n} flows from shared days"),
            (false, n) => write!(f, "dropped {}; deleted {n} flows from shared days", self.dropped.join(", ")),
        }?;
        if self.hourly > 0 {
            let sep = if self.dropped.is_empty() && self.deleted == 0 { "" } else { "; " };
            write!(f, "{sep}rolled {} hourly aggregate rows into their days", self.hourly)?;
        }
        Ok(())
    }
}

impl Store {
    /// Removes the raw flows of `clusters` from the days that end before `now` minus their
    /// retention ([`Retention::raw_flows`]), rolls up the hourly aggregates past their horizon and
    /// forgets names and ledger entries older than the retention.
    pub async fn apply_retention(&self, clusters: Clusters, now: Timestamp, retention: &Retention) -> Result<Removed> {
        let cutoff_day = first_kept_day(retention.window(now).oldest);
        // Raw rows may go sooner than the rest (`--keep-flows=1d`); never later.
        let raw_cutoff_day =
            first_kept_day(now.checked_sub(retention.raw_flows()).unwrap_or(Timestamp::MIN)).max(cutoff_day);
        let one = match clusters {
            Clusters::All => None,
            Clusters::One(id) => Some(id),
        };
        // Recorded first: should the run stop half way, ingests already refuse what it was about
        // to remove (the safe side: at worst a flow is counted as expired a little early).
        sqlx::query(
            "update clusters
             set flows_removed_before = greatest(flows_removed_before, timestamptz 'epoch' + $2::bigint * interval '1 microsecond')
             where $1::integer is null or id = $1",
        )
        .bind(one)
        .bind(cutoff_day * DAY_US)
        .execute(&self.pool)
        .await?;
        let parts: Vec<String> = sqlx::query_scalar(
            "select c.relname::text from pg_inherits i
             join pg_class c on c.oid = i.inhrelid join pg_class p on p.oid = i.inhparent
             where p.relname = 'flows' and c.relname ~ '^flows_[0-9]{8}$'
             order by 1",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut removed = Removed { hourly: self.roll_up(one, now, retention).await?, ..Removed::default() };
        // A name not seen within the retention goes with the flows it came with; so does a
        // ledger entry whose flows an ingest would now count as expired anyway.
        self.expire_names(one, retention.window(now).oldest).await?;
        sqlx::query(
            "delete from ingest_ledger
             where ($1::integer is null or cluster_id = $1)
               and newest < timestamptz 'epoch' + $2::bigint * interval '1 microsecond'",
        )
        .bind(one)
        .bind(cutoff_day * DAY_US)
        .execute(&self.pool)
        .await?;
        for p in parts {
            let Ok(date) = jiff::civil::Date::strptime("%Y%m%d", &p[6..]) else { continue };
            let Ok(start) = date.to_zoned(jiff::tz::TimeZone::UTC) else { continue };
            let day = start.timestamp().as_second().div_euclid(86_400);
            // The partition holds [day, day + 1): only when all of it is older than the cutoff.
            if day >= raw_cutoff_day {
                continue;
            }
            match self.expire_partition(&p, one).await? {
                Some(0) => {}
                Some(n) => removed.deleted += n,
                None => removed.dropped.push(p),
            }
        }
        Ok(removed)
    }

    /// Drops partition `p`, or, when `one` names a cluster and others have rows in `p`, deletes
    /// that cluster's rows: `None` when dropped, else the rows deleted. A partition gone meanwhile
    /// (a concurrent run) counts as nothing deleted.
    async fn expire_partition(&self, p: &str, one: Option<i32>) -> Result<Option<u64>> {
        // `p` matched ^flows_[0-9]{8}$: nothing in it needs quoting.
        let mut tx = self.pool.begin().await?;
        // Taken before looking, so that no ingest adds another cluster's rows between the look
        // and the drop; it still lets queries read the day while its rows are deleted (the drop
        // then takes the exclusive lock it needs).
        let lock = format!("lock table {p} in share row exclusive mode");
        if let Err(e) = sqlx::query(sqlx::AssertSqlSafe(lock)).execute(&mut *tx).await {
            if e.as_database_error().and_then(|d| d.code()).is_some_and(|c| c == "42P01") {
                return Ok(Some(0));
            }
            return Err(e.into());
        }
        if let Some(id) = one {
            // The smallest and largest cluster in it: one step down each end of the identity
            // index, which leads with cluster_id. (`exists (... where cluster_id <> $1)` read the
            // whole day: without statistics on a new partition the planner picks a scan.)
            let others = format!("select coalesce(min(cluster_id) <> $1 or max(cluster_id) <> $1, false) from {p}");
            let shared: bool = sqlx::query_scalar(sqlx::AssertSqlSafe(others)).bind(id).fetch_one(&mut *tx).await?;
            if shared {
                let delete = format!("delete from {p} where cluster_id = $1");
                let n = sqlx::query(sqlx::AssertSqlSafe(delete)).bind(id).execute(&mut *tx).await?.rows_affected();
                tx.commit().await?;
                return Ok(Some(n));
            }
        }
        sqlx::query(sqlx::AssertSqlSafe(format!("drop table {p}"))).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(None)
    }

    /// Drops the hourly aggregates of the days that end before `now` minus the hourly horizon:
    /// `conn_daily` holds those days already (every batch writes both). Recorded first, like the
    /// raw flows' cutoff, so that windows widen before the rows go.
    async fn roll_up(&self, one: Option<i32>, now: Timestamp, retention: &Retention) -> Result<u64> {
        let cut = first_kept_day(now.checked_sub(retention.hourly()).unwrap_or(Timestamp::MIN)) * DAY_US;
        sqlx::query(
            "update clusters
             set hourly_removed_before = greatest(hourly_removed_before, timestamptz 'epoch' + $2::bigint * interval '1 microsecond')
             where $1::integer is null or id = $1",
        )
        .bind(one)
        .bind(cut)
        .execute(&self.pool)
        .await?;
        let n = sqlx::query(
            "delete from conn_hourly h using clusters c
             where c.id = h.cluster_id and ($1::integer is null or c.id = $1)
               and h.bucket < c.hourly_removed_before",
        )
        .bind(one)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(n)
    }

    /// Where the cluster's hourly aggregates were rolled up to (`None`: never): windows reaching
    /// before it are read in whole days.
    pub async fn hourly_removed_before(&self, cluster: i32) -> Result<Option<Timestamp>> {
        self.cluster_cutoff(
            cluster,
            "select (extract(epoch from hourly_removed_before) * 1000000)::bigint from clusters where id = $1",
        )
        .await
    }

    /// Where retention last removed the cluster's raw flows up to (`None`: never). An ingest
    /// takes no older flow.
    pub async fn flows_removed_before(&self, cluster: i32) -> Result<Option<Timestamp>> {
        self.cluster_cutoff(
            cluster,
            "select (extract(epoch from flows_removed_before) * 1000000)::bigint from clusters where id = $1",
        )
        .await
    }

    /// One of a cluster's cutoffs, read by `sql` (`$1` the cluster) in microseconds.
    async fn cluster_cutoff(&self, cluster: i32, sql: &'static str) -> Result<Option<Timestamp>> {
        let us: Option<i64> = sqlx::query_scalar(sql).bind(cluster).fetch_optional(&self.pool).await?.flatten();
        us.map(from_micros).transpose()
    }
}
