//! DNS names seen for addresses (`dns_names`, migration 0006): written with each batch, read
//! back as [`Names`] for a window's review, removed by retention when not seen within it.
//!
//! The cap of names per address follows the fold's rule ([`Names`]: the
//! [`MAX_NAMES_PER_ADDRESS`] smallest), so the store keeps what the offline pipeline keeps: each
//! write deletes, for the addresses it touched, the names beyond the smallest ones, with the cap
//! bound as a parameter.

use std::net::IpAddr;

use jiff::Timestamp;

use super::{Result, Store, from_micros, micros};
use crate::dns::{MAX_NAMES_PER_ADDRESS, Names, Seen};
use crate::model::DnsName;

/// Upserts a batch's names (first seen the earliest, last seen the latest) and applies the cap.
pub(super) async fn write_names(tx: &mut sqlx::PgConnection, cluster: i32, names: &Names) -> Result<()> {
    if names.is_empty() {
        return Ok(());
    }
    let (mut ips, mut ns, mut firsts, mut lasts) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (ip, name, seen) in names.iter() {
        ips.push(ip);
        ns.push(name.to_string());
        firsts.push(micros(seen.first));
        lasts.push(micros(seen.last));
    }
    sqlx::query(
        "insert into dns_names as d (cluster_id, ip, name, first_seen, last_seen)
         select $1, ip, name, timestamptz 'epoch' + f * interval '1 microsecond',
                timestamptz 'epoch' + l * interval '1 microsecond'
         from unnest($2::inet[], $3::text[], $4::bigint[], $5::bigint[]) as t(ip, name, f, l)
         on conflict (cluster_id, ip, name) do update set
            first_seen = least(d.first_seen, excluded.first_seen),
            last_seen = greatest(d.last_seen, excluded.last_seen)",
    )
    .bind(cluster)
    .bind(&ips)
    .bind(&ns)
    .bind(&firsts)
    .bind(&lasts)
    .execute(&mut *tx)
    .await?;
    let mut touched = ips;
    touched.dedup();
    sqlx::query(
        "delete from dns_names d using (
            select ip, name, row_number() over (partition by ip order by name) as n
            from dns_names where cluster_id = $1 and ip = any($2::inet[])
         ) r
         where d.cluster_id = $1 and d.ip = r.ip and d.name = r.name and r.n > $3",
    )
    .bind(cluster)
    .bind(&touched)
    .bind(MAX_NAMES_PER_ADDRESS as i64)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

impl Store {
    /// The names known by `until` (every one with `None`): a lookup precedes the connections that
    /// use its addresses by up to its TTL, so a window counts the answers before it too
    /// (`topology::Connections::add_answer`). A stored name this version cannot read is left out
    /// with a warning.
    pub async fn names(&self, cluster: i32, until: Option<Timestamp>) -> Result<Names> {
        let rows: Vec<(IpAddr, String, i64, i64)> = sqlx::query_as(
            "select ip, name, (extract(epoch from first_seen) * 1000000)::bigint,
                    (extract(epoch from last_seen) * 1000000)::bigint
             from dns_names
             where cluster_id = $1 and ($2::bigint is null or first_seen <= timestamptz 'epoch' + $2 * interval '1 microsecond')
             order by ip, name",
        )
        .bind(cluster)
        .bind(until.map(micros))
        .fetch_all(&self.pool)
        .await?;
        let mut names = Names::new();
        for (ip, name, first, last) in rows {
            match DnsName::parse(&name) {
                Ok(n) => names.add_seen(ip, &n, Seen { first: from_micros(first)?, last: from_micros(last)? }),
                Err(e) => tracing::warn!("stored DNS name left out: {e}"),
            }
        }
        Ok(names)
    }

    /// Removes the names of `cluster` (every cluster with `None`) not seen since `cutoff`.
    pub async fn expire_names(&self, cluster: Option<i32>, cutoff: Timestamp) -> Result<u64> {
        Ok(sqlx::query(
            "delete from dns_names
             where ($1::integer is null or cluster_id = $1) and last_seen < timestamptz 'epoch' + $2 * interval '1 microsecond'",
        )
        .bind(cluster)
        .bind(micros(cutoff))
        .execute(&self.pool)
        .await?
        .rows_affected())
    }
}
