//! Review decisions per workload, versioned: a change names the version it was based on and is
//! refused when someone else changed the decisions since, so no edit is lost silently.

use std::net::IpAddr;

use serde::Serialize;

use super::{Result, Store, StoreError};
use crate::model::{Cidr, DnsName, PeerSpec, WorkloadRef};
use crate::policy::generate::Decisions;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Versioned {
    pub decisions: Decisions,
    /// 0 when nothing was decided yet.
    pub version: i32,
    pub author: Option<String>,
    pub updated_at: Option<String>,
}

type DecisionRow = (i32, Vec<String>, Vec<String>, Vec<String>, Vec<String>, Vec<String>, String, String);
/// A [`DecisionRow`] with its workload first.
type NamedDecisionRow = (String, i32, Vec<String>, Vec<String>, Vec<String>, Vec<String>, Vec<String>, String, String);

/// The values of a stored list that this version can read. One it cannot (a peer whose name an
/// older version accepted, say) is left out with a warning rather than failing every page that
/// reads these decisions; the next change stores the list without it.
fn readable<T: std::str::FromStr + Ord>(w: &WorkloadRef, what: &str, raw: &[String]) -> std::collections::BTreeSet<T>
where
    T::Err: std::fmt::Display,
{
    raw.iter()
        .filter_map(|s| match s.parse::<T>() {
            Ok(v) => Some(v),
            Err(e) => {
                tracing::warn!("decisions of {w}: stored {what} left out: {e}");
                None
            }
        })
        .collect()
}

fn parse_row(w: &WorkloadRef, row: DecisionRow) -> Versioned {
    let (version, exclude, trust, unresolved, trust_names, leave_out, author, updated_at) = row;
    let decisions = Decisions {
        exclude: readable::<PeerSpec>(w, "exclusion", &exclude),
        trust: readable::<Cidr>(w, "trusted range", &trust),
        include_unresolved: readable::<IpAddr>(w, "unresolved address", &unresolved),
        include_all_unresolved: false,
        trust_names: readable::<DnsName>(w, "trusted name", &trust_names),
        leave_out: readable::<crate::policy::generate::Direction>(w, "direction left out", &leave_out),
    };
    Versioned { decisions, version, author: Some(author), updated_at: Some(updated_at) }
}

impl Store {
    pub async fn decisions(&self, cluster: i32, w: &WorkloadRef) -> Result<Versioned> {
        let mut one = self.decisions_of(cluster, std::slice::from_ref(w)).await?;
        Ok(one.remove(0))
    }

    /// The decisions of many workloads in one query (a namespace's review), in their order;
    /// workloads without any get version 0, as in [`Store::decisions`].
    pub async fn decisions_of(&self, cluster: i32, workloads: &[WorkloadRef]) -> Result<Vec<Versioned>> {
        let names: Vec<String> = workloads.iter().map(|w| w.to_string()).collect();
        let rows: Vec<NamedDecisionRow> = sqlx::query_as(
            "select workload, version, exclude, trust, include_unresolved, trust_names, leave_out, author,
                    to_char(updated_at, 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')
             from decisions where cluster_id = $1 and workload = any($2)",
        )
        .bind(cluster)
        .bind(&names)
        .fetch_all(&self.pool)
        .await?;
        let mut stored: std::collections::HashMap<String, DecisionRow> =
            rows.into_iter().map(|(w, v, e, t, u, n, l, a, at)| (w, (v, e, t, u, n, l, a, at))).collect();
        Ok(workloads
            .iter()
            .zip(&names)
            .map(|(w, name)| match stored.remove(name) {
                Some(row) => parse_row(w, row),
                None => Versioned { decisions: Decisions::default(), version: 0, author: None, updated_at: None },
            })
            .collect())
    }

    /// The decisions `w` had at `version`, from the history (`None` when that version was never
    /// stored); version 0 is the defaults.
    pub async fn decisions_at(&self, cluster: i32, w: &WorkloadRef, version: i32) -> Result<Option<Decisions>> {
        if version == 0 {
            return Ok(Some(Decisions::default()));
        }
        let row: Option<DecisionRow> = sqlx::query_as(
            "select version, exclude, trust, include_unresolved, trust_names, leave_out, author,
                    to_char(updated_at, 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')
             from decision_history where cluster_id = $1 and workload = $2 and version = $3",
        )
        .bind(cluster)
        .bind(w.to_string())
        .bind(version)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|r| parse_row(w, r).decisions))
    }

    /// Stores new decisions if the stored version is still `expected`; returns the new version.
    pub async fn put_decisions(
        &self,
        cluster: i32,
        w: &WorkloadRef,
        d: &Decisions,
        expected: i32,
        author: &str,
    ) -> Result<i32> {
        let exclude: Vec<String> = d.exclude.iter().map(|p| p.to_string()).collect();
        let trust: Vec<String> = d.trust.iter().map(|c| c.to_string()).collect();
        let unresolved: Vec<String> = d.include_unresolved.iter().map(|ip| ip.to_string()).collect();
        let trust_names: Vec<String> = d.trust_names.iter().map(|n| n.to_string()).collect();
        let leave_out: Vec<String> = d.leave_out.iter().map(|d| d.as_str().to_string()).collect();
        let mut tx = self.pool.begin().await?;
        // Lock the row (or the gap) so two writers with the same expected version cannot both win.
        let current: Option<(i32, String)> =
            sqlx::query_as("select version, author from decisions where cluster_id = $1 and workload = $2 for update")
                .bind(cluster)
                .bind(w.to_string())
                .fetch_optional(&mut *tx)
                .await?;
        let (current_version, current_author) = current.unwrap_or((0, String::new()));
        if current_version != expected {
            return Err(StoreError::Conflict {
                workload: w.to_string(),
                expected,
                current: current_version,
                author: current_author,
            });
        }
        let next = current_version + 1;
        let inserted = sqlx::query(
            "insert into decisions (cluster_id, workload, version, exclude, trust, include_unresolved, trust_names, author, leave_out)
             values ($1, $2, $3, $4, $5, $6, $7, $8, $9)
             on conflict (cluster_id, workload) do update set
                version = excluded.version, exclude = excluded.exclude, trust = excluded.trust,
                include_unresolved = excluded.include_unresolved, trust_names = excluded.trust_names,
                leave_out = excluded.leave_out, author = excluded.author, updated_at = now()
             where decisions.version = $3 - 1",
        )
        .bind(cluster)
        .bind(w.to_string())
        .bind(next)
        .bind(&exclude)
        .bind(&trust)
        .bind(&unresolved)
        .bind(&trust_names)
        .bind(author)
        .bind(&leave_out)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if inserted != 1 {
            // A first insert raced with another first insert.
            return Err(StoreError::Conflict {
                workload: w.to_string(),
                expected,
                current: next,
                author: String::new(),
            });
        }
        sqlx::query(
            "insert into decision_history (cluster_id, workload, version, exclude, trust, include_unresolved, trust_names, leave_out, author, updated_at)
             select cluster_id, workload, version, exclude, trust, include_unresolved, trust_names, leave_out, author, updated_at
             from decisions where cluster_id = $1 and workload = $2",
        )
        .bind(cluster)
        .bind(w.to_string())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(next)
    }

    /// Records a generated policy if it differs from the latest revision of its dialect (a
    /// `Dialect::as_str`); returns the revision. Revision numbers count across dialects.
    pub async fn record_policy(
        &self,
        cluster: i32,
        w: &WorkloadRef,
        yaml: &str,
        decisions_version: i32,
        dialect: &str,
    ) -> Result<i32> {
        let latest: Option<(i32, String)> = sqlx::query_as(
            "select revision, yaml from policy_revisions where cluster_id = $1 and workload = $2 and dialect = $3
             order by revision desc limit 1",
        )
        .bind(cluster)
        .bind(w.to_string())
        .bind(dialect)
        .fetch_optional(&self.pool)
        .await?;
        if let Some((rev, old)) = &latest
            && old == yaml
        {
            return Ok(*rev);
        }
        let last: Option<i32> =
            sqlx::query_scalar("select max(revision) from policy_revisions where cluster_id = $1 and workload = $2")
                .bind(cluster)
                .bind(w.to_string())
                .fetch_one(&self.pool)
                .await?;
        let rev = last.map_or(1, |r| r + 1);
        sqlx::query(
            "insert into policy_revisions (cluster_id, workload, revision, yaml, decisions_version, dialect)
             values ($1, $2, $3, $4, $5, $6) on conflict do nothing",
        )
        .bind(cluster)
        .bind(w.to_string())
        .bind(rev)
        .bind(yaml)
        .bind(decisions_version)
        .bind(dialect)
        .execute(&self.pool)
        .await?;
        Ok(rev)
    }

    /// The latest recorded revision of a workload's policy (what was last downloaded): its number,
    /// its YAML and when it was first recorded.
    /// The workloads with a downloaded revision (of `namespace`, or of the cluster), the most
    /// recently downloaded first, at most `limit`; stored names this version cannot read are left
    /// out with a warning.
    pub async fn revised_workloads(
        &self,
        cluster: i32,
        namespace: Option<&str>,
        limit: i64,
    ) -> Result<Vec<WorkloadRef>> {
        let raw: Vec<String> = sqlx::query_scalar(
            "select workload from policy_revisions
             where cluster_id = $1 and ($2::text is null or split_part(workload, '/', 2) = $2)
             group by workload order by max(created_at) desc, workload limit $3",
        )
        .bind(cluster)
        .bind(namespace)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        Ok(raw
            .into_iter()
            .filter_map(|w| match w.parse::<WorkloadRef>() {
                Ok(w) => Some(w),
                Err(e) => {
                    tracing::warn!("policy revisions of cluster {cluster}: stored workload {w:?} left out: {e}");
                    None
                }
            })
            .collect())
    }

    /// The workloads someone decided about (a stored version), the most recently changed first;
    /// names this version cannot read are left out.
    pub async fn decided_workloads(&self, cluster: i32) -> Result<Vec<WorkloadRef>> {
        let raw: Vec<String> = sqlx::query_scalar(
            "select workload from decisions where cluster_id = $1 order by updated_at desc, workload",
        )
        .bind(cluster)
        .fetch_all(&self.pool)
        .await?;
        Ok(raw.into_iter().filter_map(|w| w.parse::<WorkloadRef>().ok()).collect())
    }

    pub async fn latest_policy(&self, cluster: i32, w: &WorkloadRef) -> Result<Option<(i32, String, jiff::Timestamp)>> {
        let row: Option<(i32, String, i64)> = sqlx::query_as(
            "select revision, yaml, (extract(epoch from created_at) * 1000000)::bigint from policy_revisions
             where cluster_id = $1 and workload = $2 order by revision desc limit 1",
        )
        .bind(cluster)
        .bind(w.to_string())
        .fetch_optional(&self.pool)
        .await?;
        match row {
            Some((rev, yaml, at)) => Ok(Some((rev, yaml, super::from_micros(at)?))),
            None => Ok(None),
        }
    }
}

/// A stored pair `FROM/TO`; one this version cannot read is left out with a warning.
fn pairs(cluster: i32, what: &str, raw: &[String]) -> std::collections::BTreeSet<(String, String)> {
    raw.iter()
        .filter_map(|s| match s.split_once('/') {
            Some((a, b)) if crate::model::Name::namespace(a).is_ok() && crate::model::Name::namespace(b).is_ok() => {
                Some((a.to_string(), b.to_string()))
            }
            _ => {
                tracing::warn!("guardrail decisions of cluster {cluster}: stored {what} {s:?} left out");
                None
            }
        })
        .collect()
}

impl Store {
    /// The cluster's guardrail decisions and their version (0 when none were stored).
    pub async fn guardrail_decisions(&self, cluster: i32) -> Result<(crate::policy::guardrails::PairDecisions, i32)> {
        let row: Option<(i32, Vec<String>, Vec<String>)> =
            sqlx::query_as("select version, exclude, include from guardrail_decisions where cluster_id = $1")
                .bind(cluster)
                .fetch_optional(&self.pool)
                .await?;
        Ok(match row {
            None => (Default::default(), 0),
            Some((version, exclude, include)) => (
                crate::policy::guardrails::PairDecisions {
                    exclude: pairs(cluster, "exclusion", &exclude),
                    include: pairs(cluster, "inclusion", &include),
                },
                version,
            ),
        })
    }

    /// Stores the cluster's guardrail decisions if the stored version is still `expected`;
    /// returns the new version.
    pub async fn put_guardrail_decisions(
        &self,
        cluster: i32,
        d: &crate::policy::guardrails::PairDecisions,
        expected: i32,
        author: &str,
    ) -> Result<i32> {
        let text = |set: &std::collections::BTreeSet<(String, String)>| -> Vec<String> {
            set.iter().map(|(a, b)| format!("{a}/{b}")).collect()
        };
        let mut tx = self.pool.begin().await?;
        let current: Option<(i32, String)> =
            sqlx::query_as("select version, author from guardrail_decisions where cluster_id = $1 for update")
                .bind(cluster)
                .fetch_optional(&mut *tx)
                .await?;
        let (current_version, current_author) = current.unwrap_or((0, String::new()));
        let conflict = |current| StoreError::Conflict {
            workload: "the cluster's guardrails".into(),
            expected,
            current,
            author: current_author.clone(),
        };
        if current_version != expected {
            return Err(conflict(current_version));
        }
        let next = current_version + 1;
        let written = sqlx::query(
            "insert into guardrail_decisions (cluster_id, version, exclude, include, author)
             values ($1, $2, $3, $4, $5)
             on conflict (cluster_id) do update set
                version = excluded.version, exclude = excluded.exclude, include = excluded.include,
                author = excluded.author, updated_at = now()
             where guardrail_decisions.version = $2 - 1",
        )
        .bind(cluster)
        .bind(next)
        .bind(text(&d.exclude))
        .bind(text(&d.include))
        .bind(author)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if written != 1 {
            return Err(conflict(next));
        }
        tx.commit().await?;
        Ok(next)
    }
}
