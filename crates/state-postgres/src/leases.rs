//! Leases and replicas in the database. Times are the database's own
//! (`now()`), so replicas whose clocks disagree still agree on who holds
//! what; each replica keeps a local deadline on its monotonic clock too
//! (`hitosync_state::Lease`), for the writes the database cannot fence.

use std::time::Duration;

use chrono::{DateTime, Utc};
use hitosync_state::StateError;

use crate::PgState;

/// A link's lease as the database has it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LeaseRow {
    pub link: String,
    pub owner: String,
    pub token: i64,
    pub expires_at: DateTime<Utc>,
    pub acquired_at: DateTime<Utc>,
    /// Past its expiry: free for any replica to take.
    pub expired: bool,
    /// Milliseconds until it expires, by the database's clock (0 when
    /// expired): when to look again, whatever this machine's clock says.
    pub expires_in_ms: i64,
}

/// A running daemon, as its heartbeat says.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ReplicaRow {
    pub id: String,
    pub host: String,
    pub pid: i32,
    pub started_at: DateTime<Utc>,
    pub heartbeat_at: DateTime<Utc>,
    /// Beat within the lease period.
    pub live: bool,
}

fn ms(d: Duration) -> i64 {
    d.as_millis() as i64
}

impl PgState {
    /// This replica is alive.
    pub async fn heartbeat(&self, id: &str, host: &str, pid: i32) -> Result<(), StateError> {
        let client = self.client().await?;
        client
            .execute(
                "INSERT INTO hitosync_replicas (id, host, pid, started_at, heartbeat_at) VALUES ($1, $2, $3, now(), now())
                 ON CONFLICT (id) DO UPDATE SET heartbeat_at = now()",
                &[&id, &host, &pid],
            )
            .await
            .map_err(|e| self.db_err(e))?;
        Ok(())
    }

    /// A replica that stops cleanly leaves: the others take its share at
    /// once rather than after its heartbeat ages.
    pub async fn leave(&self, id: &str) -> Result<(), StateError> {
        let client = self.client().await?;
        client
            .execute("DELETE FROM hitosync_replicas WHERE id = $1", &[&id])
            .await
            .map_err(|e| self.db_err(e))?;
        Ok(())
    }

    /// Every replica known, with whether it beat within `ttl`; replicas
    /// silent for ten lease periods are forgotten.
    pub async fn replicas(&self, ttl: Duration) -> Result<Vec<ReplicaRow>, StateError> {
        let client = self.client().await?;
        client
            .execute(
                "DELETE FROM hitosync_replicas WHERE heartbeat_at < now() - $1::bigint * interval '1 millisecond'",
                &[&(ms(ttl) * 10)],
            )
            .await
            .map_err(|e| self.db_err(e))?;
        let rows = client
            .query(
                "SELECT id, host, pid, started_at, heartbeat_at,
                        heartbeat_at > now() - $1::bigint * interval '1 millisecond'
                 FROM hitosync_replicas ORDER BY id",
                &[&ms(ttl)],
            )
            .await
            .map_err(|e| self.db_err(e))?;
        Ok(rows
            .iter()
            .map(|r| ReplicaRow {
                id: r.get(0),
                host: r.get(1),
                pid: r.get(2),
                started_at: r.get(3),
                heartbeat_at: r.get(4),
                live: r.get(5),
            })
            .collect())
    }

    /// Takes the link's lease if it is free (never held, released, or
    /// expired); the new fencing token, or `None` when another holds it.
    pub async fn try_acquire(
        &self,
        link: &str,
        owner: &str,
        lease: Duration,
    ) -> Result<Option<i64>, StateError> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                "INSERT INTO hitosync_leases AS l (link, owner, token, expires_at, acquired_at)
                 VALUES ($1, $2, 1, now() + $3::bigint * interval '1 millisecond', now())
                 ON CONFLICT (link) DO UPDATE SET owner = EXCLUDED.owner, token = l.token + 1,
                     expires_at = EXCLUDED.expires_at, acquired_at = EXCLUDED.acquired_at
                 WHERE l.expires_at <= now()
                 RETURNING token",
                &[&link, &owner, &ms(lease)],
            )
            .await
            .map_err(|e| self.db_err(e))?;
        Ok(row.map(|r| r.get(0)))
    }

    /// Extends a lease this replica holds; `false` when it is no longer
    /// its own (expired, or taken over).
    pub async fn renew(
        &self,
        link: &str,
        owner: &str,
        token: i64,
        lease: Duration,
    ) -> Result<bool, StateError> {
        let client = self.client().await?;
        let n = client
            .execute(
                "UPDATE hitosync_leases SET expires_at = now() + $4::bigint * interval '1 millisecond'
                 WHERE link = $1 AND owner = $2 AND token = $3 AND expires_at > now()",
                &[&link, &owner, &token, &ms(lease)],
            )
            .await
            .map_err(|e| self.db_err(e))?;
        Ok(n == 1)
    }

    /// Lets a lease go (its cycle in flight ended): any replica may take
    /// it at once.
    pub async fn release(&self, link: &str, owner: &str, token: i64) -> Result<(), StateError> {
        let client = self.client().await?;
        client
            .execute(
                "UPDATE hitosync_leases SET expires_at = now()
                 WHERE link = $1 AND owner = $2 AND token = $3 AND expires_at > now()",
                &[&link, &owner, &token],
            )
            .await
            .map_err(|e| self.db_err(e))?;
        Ok(())
    }

    /// Every lease row, by link.
    pub async fn leases(&self) -> Result<Vec<LeaseRow>, StateError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT link, owner, token, expires_at, acquired_at, expires_at <= now(),
                        greatest(0, (extract(epoch FROM expires_at - now()) * 1000)::bigint)
                 FROM hitosync_leases ORDER BY link",
                &[],
            )
            .await
            .map_err(|e| self.db_err(e))?;
        Ok(rows
            .iter()
            .map(|r| LeaseRow {
                link: r.get(0),
                owner: r.get(1),
                token: r.get(2),
                expires_at: r.get(3),
                acquired_at: r.get(4),
                expired: r.get(5),
                expires_in_ms: r.get(6),
            })
            .collect())
    }
}
