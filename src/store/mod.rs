//! The PostgreSQL store: the time-aware inventory, enriched flows, hourly connection aggregates,
//! review decisions, policy revisions, browser sessions, and the flows' retention per cluster. An
//! IO shell: it turns rows into the core's values (`Inventory`, `Connections`, `Decisions`) and
//! back, and computes nothing itself.
//!
//! Queries are written out (runtime-checked `sqlx::query`, so builds need no database).

pub mod decisions;
#[macro_use]
pub mod ingest;
pub mod inventory;
pub mod names;
pub mod query;
pub mod reattribute;
pub mod retention;
pub mod sessions;

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, Executor};

pub const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/flowgate";

pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    #[error("migrating the database: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("unknown cluster {0:?}")]
    UnknownCluster(String),
    #[error("stored data is damaged: {0}")]
    Corrupt(String),
    #[error("{0}")]
    Invalid(String),
    #[error(
        "the decisions of {workload} changed since version {expected} (now version {current}, by {author}); reload and apply your change again"
    )]
    Conflict { workload: String, expected: i32, current: i32, author: String },
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

impl StoreError {
    /// Whether PostgreSQL could not be reached (refused, gone, shutting down, out of connections),
    /// as opposed to a query or the data being wrong: the web layer answers 503 for these, and a
    /// background task tries again later.
    pub fn is_unavailable(&self) -> bool {
        let StoreError::Db(e) = self else { return false };
        match e {
            sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed => true,
            // Class 08: connection exceptions; 57P01-57P03: the server is shutting down or
            // starting; 53300: too many connections.
            sqlx::Error::Database(d) => d
                .code()
                .is_some_and(|c| c.starts_with("08") || matches!(c.as_ref(), "57P01" | "57P02" | "57P03" | "53300")),
            _ => false,
        }
    }
}

/// How long a query waits for a connection before it fails. sqlx's default is 30 s, so with
/// PostgreSQL down every request hung for 30 s before its 500; a page that says so in 3 s, and a
/// readiness probe that fails within a probe's usual timeout, are worth more than a longer wait.
/// The price: the pool must never be short of connections on a healthy server, or work that
/// merely waits for one fails. Measured: eight ingests at once (two batch writers each) on a pool
/// of 8 left seven of them waiting past 3 s for a connection, and they failed; so `serve` sizes
/// its pool for its ingest slots ([`Store::connect_sized`]).
pub const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(3);

/// Connections of a store from [`Store::connect`]: a command line's one ingest writes two
/// batches at a time and reads little else.
pub const DEFAULT_CONNECTIONS: u32 = 8;

/// Whether `e` is the server's answer with SQLSTATE `code` (`3D000`: the database does not
/// exist; `42P04`: it does already).
fn has_code(e: &sqlx::Error, code: &str) -> bool {
    e.as_database_error().and_then(|d| d.code()).is_some_and(|c| c == code)
}

/// Creates `db` from the maintenance database `postgres`; another process creating it meanwhile
/// is no error.
async fn create_database(opts: &PgConnectOptions, db: &str) -> Result<()> {
    let mut conn = opts.clone().database("postgres").connect().await?;
    let sql = format!("create database \"{}\"", db.replace('"', "\"\""));
    // The name is quoted as an identifier above; it comes from the operator's URL.
    if let Err(e) = conn.execute(sqlx::AssertSqlSafe(sql)).await
        && !has_code(&e, "42P04")
    {
        return Err(e.into());
    }
    conn.close().await?;
    Ok(())
}

/// The pool every store uses.
pub fn pool_options(max_connections: u32) -> PgPoolOptions {
    PgPoolOptions::new().max_connections(max_connections).acquire_timeout(ACQUIRE_TIMEOUT)
}

fn connect_options(url: &str) -> Result<PgConnectOptions> {
    Ok(PgConnectOptions::from_str(url)?.options([("timezone", "UTC")]))
}

#[derive(Clone)]
pub struct Store {
    pub pool: PgPool,
    /// Reviews done through this store (`review::review`): a page load or a decision should
    /// cost one, and tests count them.
    pub reviews: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl Store {
    /// Connects, creating the database if it does not exist, and applies pending migrations.
    pub async fn connect(url: &str) -> Result<Store> {
        Store::connect_sized(url, DEFAULT_CONNECTIONS).await
    }

    /// [`Store::connect`] with a pool of `max_connections`.
    pub async fn connect_sized(url: &str, max_connections: u32) -> Result<Store> {
        let opts = connect_options(url)?;
        // The database usually exists: the pool's first connection says so, and only when it
        // does not is the maintenance database asked to create it (one server process started
        // per run instead of two).
        let pool = match pool_options(max_connections).connect_with(opts.clone()).await {
            Err(e) if has_code(&e, "3D000") => {
                if let Some(db) = opts.get_database() {
                    create_database(&opts, db).await?;
                }
                pool_options(max_connections).connect_with(opts).await?
            }
            r => r?,
        };
        Store::from_pool(pool).await
    }

    /// A store whose pool connects only when first used: no database is created and no migration
    /// runs. For a store that has to exist before PostgreSQL answers (tests of a database that
    /// went away); [`Store::connect`] is the way to start.
    pub fn connect_lazy(url: &str) -> Result<Store> {
        Ok(Store {
            pool: pool_options(DEFAULT_CONNECTIONS).connect_lazy_with(connect_options(url)?),
            reviews: Default::default(),
        })
    }

    /// One round trip: whether PostgreSQL answers now (`GET /readyz`).
    pub async fn ping(&self) -> Result<()> {
        sqlx::query("select 1").execute(&self.pool).await?;
        Ok(())
    }

    /// Wraps an existing pool (tests get one per database) and applies migrations.
    pub async fn from_pool(pool: PgPool) -> Result<Store> {
        MIGRATOR.run(&pool).await?;
        Ok(Store { pool, reviews: Default::default() })
    }

    /// The cluster's id, creating the cluster when `create` is set.
    pub async fn cluster_id(&self, name: &str, create: bool) -> Result<i32> {
        crate::model::NameRule::Dns1123Subdomain
            .check(name)
            .map_err(|e| StoreError::Invalid(format!("cluster: {e}")))?;
        if create {
            let id: i32 = sqlx::query_scalar(
                "insert into clusters (name) values ($1)
                 on conflict (name) do update set name = excluded.name
                 returning id",
            )
            .bind(name)
            .fetch_one(&self.pool)
            .await?;
            return Ok(id);
        }
        sqlx::query_scalar("select id from clusters where name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| StoreError::UnknownCluster(name.to_string()))
    }

    pub async fn clusters(&self) -> Result<Vec<String>> {
        Ok(sqlx::query_scalar("select name from clusters order by name").fetch_all(&self.pool).await?)
    }
}

/// An hour and a day (UTC) in microseconds: the aggregates' buckets, the flow partitions.
pub const HOUR_US: i64 = 3_600_000_000;
pub const DAY_US: i64 = 24 * HOUR_US;

/// Microseconds since the epoch: how timestamps cross into SQL (`flowgate_ts` in queries), since
/// sqlx has no jiff support and the microsecond is Postgres' resolution anyway.
pub fn micros(t: jiff::Timestamp) -> i64 {
    t.as_microsecond()
}

pub fn from_micros(us: i64) -> Result<jiff::Timestamp> {
    jiff::Timestamp::from_microsecond(us).map_err(|e| StoreError::Corrupt(format!("timestamp {us}: {e}")))
}
