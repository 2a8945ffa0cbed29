//! Inventory history: imports of cluster snapshots, and the time-aware inventory read back.
//!
//! An import upserts every object it holds and closes (sets `valid_to` on) the open objects of the
//! same kinds that it no longer holds. Nothing is deleted, so a flow from last week still resolves
//! to the pod that held the address last week.

use std::collections::HashSet;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use serde_json::Value;

use super::{Result, Store, StoreError, micros};
use crate::inventory::{Inventory, KubeObject, load::object_from_value};
use crate::model::names::{check_labels, labels_valid};
use crate::model::{Labels, WorkloadRef};
use crate::topology::Catalog;

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ImportReport {
    pub added: u64,
    pub updated: u64,
    pub unchanged: u64,
    pub closed: u64,
    /// Stored flows whose unresolved addresses the added or changed objects now resolve.
    pub reattributed: u64,
    /// Objects not recorded: their name or namespace breaks Kubernetes' rules.
    pub skipped: u64,
    /// One per skipped object and per thing dropped from a recorded one (a label, ...).
    pub warnings: Vec<String>,
}

/// Each object once, as listed last: one insert cannot upsert the same row twice, and a file may
/// list an object twice (two `kubectl get` outputs concatenated, say), where the later listing is
/// the newer. Keyed like `k8s_objects` (kind, namespace, name, uid); the input order is kept
/// otherwise.
fn last_listing_of_each(objects: &[KubeObject]) -> Vec<&KubeObject> {
    let mut seen = HashSet::new();
    let mut out: Vec<&KubeObject> = objects
        .iter()
        .rev()
        .filter(|o| {
            let m = o.metadata();
            // As stored: a missing namespace or uid is the empty one.
            let (ns, uid) = (m.namespace.as_deref().unwrap_or_default(), m.uid.as_deref().unwrap_or_default());
            seen.insert((o.kind(), ns, m.name.as_deref(), uid))
        })
        .collect();
    out.reverse();
    out
}

impl Store {
    /// Records a snapshot of objects taken at `at`. An object listed more than once is recorded
    /// as listed last. Names and labels are checked first ([`crate::inventory::check`]), whoever
    /// the caller (files were checked as they were read, `watch`'s snapshots were not): an object
    /// with a bad name is not recorded, a bad label is dropped, each with a warning.
    pub async fn import(&self, cluster: i32, objects: &[KubeObject], at: Timestamp) -> Result<ImportReport> {
        let (objects, checked) = crate::inventory::check::clean_all(objects);
        let mut kinds = Vec::new();
        let mut namespaces = Vec::new();
        let mut names = Vec::new();
        let mut uids = Vec::new();
        let mut bodies = Vec::new();
        let mut from = Vec::new();
        let mut to: Vec<Option<i64>> = Vec::new();
        for obj in last_listing_of_each(&objects) {
            let meta = obj.metadata();
            let Some(name) = meta.name.clone() else { continue };
            let body = obj.to_json().map_err(|e| StoreError::Invalid(format!("{} {name}: {e}", obj.kind())))?;
            kinds.push(obj.kind().to_string());
            namespaces.push(meta.namespace.clone().unwrap_or_default());
            names.push(name);
            uids.push(meta.uid.clone().unwrap_or_default());
            bodies.push(body);
            let created = meta.creation_timestamp.as_ref().map(|t| t.0).filter(|c| *c <= at).unwrap_or(at);
            from.push(micros(created));
            to.push(meta.deletion_timestamp.as_ref().map(|t| micros(t.0)));
        }
        let mut tx = self.pool.begin().await?;
        let sql = "insert into k8s_objects as o (cluster_id, kind, namespace, name, uid, body, valid_from, valid_to)
             select $1, k, ns, n, u, b, timestamptz 'epoch' + f * interval '1 microsecond',
                    timestamptz 'epoch' + t * interval '1 microsecond'
             from unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::jsonb[], $7::bigint[], $8::bigint[])
                  as x(k, ns, n, u, b, f, t)
             on conflict (cluster_id, kind, namespace, name, uid) do update
                set body = excluded.body, valid_to = excluded.valid_to, updated_at = now()
                where o.body is distinct from excluded.body or o.valid_to is distinct from excluded.valid_to
             returning kind, namespace, name, uid, (xmax = 0) as inserted";
        let rows: Vec<(String, String, String, String, bool)> = sqlx::query_as(sql)
            .bind(cluster)
            .bind(&kinds)
            .bind(&namespaces)
            .bind(&names)
            .bind(&uids)
            .bind(&bodies)
            .bind(&from)
            .bind(&to)
            .fetch_all(&mut *tx)
            .await?;
        let added = rows.iter().filter(|r| r.4).count() as u64;
        let updated = rows.len() as u64 - added;
        // The objects this import added or changed: their addresses may resolve stored flows.
        let changed: std::collections::HashSet<(&str, &str, &str, &str)> =
            rows.iter().map(|(k, ns, n, u, _)| (k.as_str(), ns.as_str(), n.as_str(), u.as_str())).collect();
        let mut late_ips = Vec::new();
        let mut late_since: Option<i64> = None;
        for (i, obj) in last_listing_of_each(&objects).into_iter().enumerate() {
            let Some(&created) = from.get(i) else { break };
            let id = (kinds[i].as_str(), namespaces[i].as_str(), names[i].as_str(), uids[i].as_str());
            let ips = super::reattribute::addresses(obj);
            if changed.contains(&id) && !ips.is_empty() {
                late_ips.extend(ips);
                late_since = Some(late_since.map_or(created, |s| s.min(created)));
            }
        }
        let mut present: Vec<String> = kinds.clone();
        present.sort();
        present.dedup();
        let sql = "update k8s_objects o
             set valid_to = timestamptz 'epoch' + $7::bigint * interval '1 microsecond', updated_at = now()
             where o.cluster_id = $1 and o.valid_to is null and o.kind = any($2::text[])
               and not exists (
                 select 1 from unnest($3::text[], $4::text[], $5::text[], $6::text[]) as x(k, ns, n, u)
                 where x.k = o.kind and x.ns = o.namespace and x.n = o.name and x.u = o.uid)";
        let closed = sqlx::query(sql)
            .bind(cluster)
            .bind(&present)
            .bind(&kinds)
            .bind(&namespaces)
            .bind(&names)
            .bind(&uids)
            .bind(micros(at))
            .execute(&mut *tx)
            .await?
            .rows_affected();
        // The IP history is derived from the pods, so it is rebuilt rather than patched.
        sqlx::query("delete from pod_ips where cluster_id = $1").bind(cluster).execute(&mut *tx).await?;
        sqlx::query(
            "insert into pod_ips (cluster_id, ip, namespace, pod, uid, valid_from, valid_to)
             select distinct o.cluster_id, ip::inet, o.namespace, o.name, o.uid, o.valid_from, o.valid_to
             from k8s_objects o,
                  lateral (select jsonb_array_elements(coalesce(o.body->'status'->'podIPs', '[]'))->>'ip' as ip
                           union select o.body->'status'->>'podIP') ips
             where o.cluster_id = $1 and o.kind = 'Pod' and ip is not null and ip <> ''
             on conflict do nothing",
        )
        .bind(cluster)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        late_ips.sort();
        late_ips.dedup();
        let reattributed = match late_since {
            Some(since) => self.reattribute(cluster, &late_ips, super::from_micros(since)?).await?,
            None => 0,
        };
        Ok(ImportReport {
            added,
            updated,
            unchanged: kinds.len() as u64 - added - updated,
            closed,
            reattributed,
            skipped: checked.skipped as u64,
            warnings: checked.warnings,
        })
    }

    /// Every object the cluster ever had, each carrying its validity interval as its creation
    /// and deletion timestamps, indexed as an `Inventory`. Objects that fail to parse (written by
    /// an older version, say) are skipped and reported in the inventory's notes.
    pub async fn load_inventory(&self, cluster: i32) -> Result<Inventory> {
        let rows: Vec<(String, Value, i64, Option<i64>)> = sqlx::query_as(
            "select kind, body,
                    (extract(epoch from valid_from) * 1000000)::bigint,
                    (extract(epoch from valid_to) * 1000000)::bigint
             from k8s_objects where cluster_id = $1
             order by kind, namespace, name, valid_from",
        )
        .bind(cluster)
        .fetch_all(&self.pool)
        .await?;
        let mut objects = Vec::with_capacity(rows.len());
        let mut notes = Vec::new();
        for (kind, body, from, to) in rows {
            match object_from_value(&kind, body) {
                Some(Ok(mut obj)) => {
                    let meta = obj.metadata_mut();
                    let from = super::from_micros(from)?;
                    if meta.creation_timestamp.as_ref().is_none_or(|c| c.0 > from) {
                        meta.creation_timestamp = Some(Time(from));
                    }
                    if let Some(to) = to {
                        let to = super::from_micros(to)?;
                        if meta.deletion_timestamp.as_ref().is_none_or(|d| d.0 > to) {
                            meta.deletion_timestamp = Some(Time(to));
                        }
                    }
                    objects.push(obj);
                }
                Some(Err(e)) => notes.push(format!("stored {kind} could not be read: {e}")),
                None => notes.push(format!("stored object of unknown kind {kind} skipped")),
            }
        }
        let mut inv = Inventory::build(&objects);
        inv.notes.extend(notes.into_iter().map(crate::inventory::Note));
        Ok(inv)
    }

    /// Changes whenever an import changes the stored objects: (count, newest update in µs).
    pub async fn inventory_stamp(&self, cluster: i32) -> Result<(i64, Option<i64>)> {
        Ok(sqlx::query_as(
            "select count(*), (extract(epoch from max(updated_at)) * 1000000)::bigint
             from k8s_objects where cluster_id = $1",
        )
        .bind(cluster)
        .fetch_one(&self.pool)
        .await?)
    }

    /// The catalog: the inventory's workloads plus those learned from flow metadata.
    pub async fn load_catalog(&self, cluster: i32, inv: &Inventory) -> Result<Catalog> {
        let mut catalog = Catalog::from_inventory(inv);
        let rows: Vec<(String, Value)> =
            sqlx::query_as("select workload, labels from observed_workloads where cluster_id = $1 order by 1")
                .bind(cluster)
                .fetch_all(&self.pool)
                .await?;
        // What an older version learned unchecked: a workload name this version cannot read is
        // left out, and so is a label Kubernetes would refuse (it would reach a selector).
        let mut unreadable = 0usize;
        for (w, labels) in rows {
            let (Ok(w), Ok(labels)) = (w.parse::<WorkloadRef>(), serde_json::from_value::<Labels>(labels)) else {
                unreadable += 1;
                continue;
            };
            let labels = if labels_valid(&labels) {
                labels
            } else {
                unreadable += 1;
                check_labels(labels.iter().map(|(k, v)| (k.as_str(), v.as_str()))).labels
            };
            if labels.is_empty() {
                catalog.note_workload(&w);
            } else {
                catalog.learn(&w, &labels);
            }
        }
        if unreadable > 0 {
            tracing::warn!(
                "cluster {cluster}: {unreadable} stored label sets with invalid workload names or labels left out or cleaned"
            );
        }
        Ok(catalog)
    }
}
