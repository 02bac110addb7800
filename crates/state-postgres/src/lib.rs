//! hitosync's state in PostgreSQL: every link's records, cursors, journal,
//! work set and queues in shared tables keyed by the link's name, and the
//! leases that let replicas share the links without ever running one
//! twice.
//!
//! Each commit point of the engine is one transaction, and each
//! transaction that writes first checks the link's lease row for this
//! process's fencing token (`SELECT ... FOR SHARE`): a takeover, which
//! increments the token, waits for a write in flight to commit and makes
//! every later one fail. The schema is versioned; migrations run at start,
//! under an advisory lock, so replicas starting together migrate once.

mod connect;
mod leases;
mod migrate;
mod store;
mod work;

use std::sync::Arc;

use deadpool_postgres::Pool;
use hitosync_state::{Lease, StateError};

pub use connect::read_password;
pub use leases::{LeaseRow, ReplicaRow};
pub use migrate::{LATEST, migrate_to};
pub use store::PgStore;

/// The database, open: a pool shared by every link of this process.
#[derive(Clone)]
pub struct PgState {
    pool: Pool,
    /// The URL without a password, for messages.
    target: Arc<str>,
}

impl std::fmt::Debug for PgState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgState")
            .field("target", &self.target)
            .finish_non_exhaustive()
    }
}

impl PgState {
    /// Connects (TLS when the URL says `sslmode=require`) and brings the
    /// schema up to date.
    pub async fn open(cfg: &hitosync_config::StateConfig) -> Result<PgState, StateError> {
        let state = connect::pool(cfg)?;
        migrate::run(&state, LATEST).await?;
        Ok(state)
    }

    /// Connects without migrating (for a test that builds an older schema).
    pub fn connect_only(cfg: &hitosync_config::StateConfig) -> Result<PgState, StateError> {
        connect::pool(cfg)
    }

    pub fn target(&self) -> &str {
        &self.target
    }

    /// One link's state. With a lease, writes are fenced by it; without,
    /// the store only reads (`status`, `inspect`, `plan`).
    pub fn store(&self, link: &str, lease: Option<Arc<Lease>>) -> PgStore {
        PgStore::new(self.clone(), link, lease)
    }

    pub(crate) async fn client(&self) -> Result<deadpool_postgres::Object, StateError> {
        self.pool.get().await.map_err(|e| StateError::Database {
            target: self.target.to_string(),
            detail: pool_error_text(&e),
        })
    }

    pub(crate) fn db_err(&self, e: tokio_postgres::Error) -> StateError {
        StateError::Database {
            target: self.target.to_string(),
            detail: pg_error_text(&e),
        }
    }
}

/// The server's own words when it said something (a missing role, a bad
/// password, a lock timeout); else the client's.
fn pg_error_text(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} ({})", db.message(), db.code().code()),
        None => {
            let mut text = e.to_string();
            let mut src = std::error::Error::source(e);
            while let Some(s) = src {
                let more = s.to_string();
                if !text.contains(&more) {
                    text.push_str(": ");
                    text.push_str(&more);
                }
                src = s.source();
            }
            text
        }
    }
}

fn pool_error_text(e: &deadpool_postgres::PoolError) -> String {
    match e {
        deadpool_postgres::PoolError::Backend(pg) => pg_error_text(pg),
        deadpool_postgres::PoolError::Timeout(_) => {
            "no connection came free in time (the database is slow or unreachable)".into()
        }
        other => other.to_string(),
    }
}
