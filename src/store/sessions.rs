//! Browser sessions by the SHA-256 of their id (the id itself is never stored). The web layer
//! decides what is expired (`web::session`); this only reads and writes rows, at the times given.

use jiff::Timestamp;

use super::{Result, Store, from_micros, micros};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRow {
    pub author: String,
    pub created_at: Timestamp,
    pub last_seen: Timestamp,
}

impl Store {
    pub async fn create_session(&self, id_hash: &[u8], author: &str, now: Timestamp) -> Result<()> {
        sqlx::query(
            "insert into sessions (id_hash, author, created_at, last_seen)
             values ($1, $2, timestamptz 'epoch' + $3 * interval '1 microsecond',
                     timestamptz 'epoch' + $3 * interval '1 microsecond')",
        )
        .bind(id_hash)
        .bind(author)
        .bind(micros(now))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn session(&self, id_hash: &[u8]) -> Result<Option<SessionRow>> {
        let row: Option<(String, i64, i64)> = sqlx::query_as(
            "select author, (extract(epoch from created_at) * 1000000)::bigint,
                    (extract(epoch from last_seen) * 1000000)::bigint
             from sessions where id_hash = $1",
        )
        .bind(id_hash)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|(author, created, seen)| {
            Ok(SessionRow { author, created_at: from_micros(created)?, last_seen: from_micros(seen)? })
        })
        .transpose()
    }

    pub async fn touch_session(&self, id_hash: &[u8], now: Timestamp) -> Result<()> {
        sqlx::query(
            "update sessions set last_seen = timestamptz 'epoch' + $2 * interval '1 microsecond'
             where id_hash = $1",
        )
        .bind(id_hash)
        .bind(micros(now))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Whether there was such a session.
    pub async fn delete_session(&self, id_hash: &[u8]) -> Result<bool> {
        let done = sqlx::query("delete from sessions where id_hash = $1").bind(id_hash).execute(&self.pool).await?;
        Ok(done.rows_affected() > 0)
    }

    /// Deletes the sessions last used at or before `idle_before` or created at or before
    /// `created_before`; returns how many.
    pub async fn delete_sessions_before(&self, idle_before: Timestamp, created_before: Timestamp) -> Result<u64> {
        let done = sqlx::query(
            "delete from sessions
             where last_seen <= timestamptz 'epoch' + $1 * interval '1 microsecond'
                or created_at <= timestamptz 'epoch' + $2 * interval '1 microsecond'",
        )
        .bind(micros(idle_before))
        .bind(micros(created_before))
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }
}
