//! One link's state in PostgreSQL, behind the engine's [`StateStore`]:
//! the handle, and the transaction and fence every write goes through.
//! The contract's records, cursors, the intent journal, parking, conflicts
//! and meta are in `state_store`; the work set, the write-back queue and
//! reports are in `work.rs`.
//!
//! [`StateStore`]: hitosync_state::StateStore

mod state_store;

use std::sync::Arc;

use deadpool_postgres::Transaction;
use hitosync_state::{Lease, StateError};

use crate::PgState;
use crate::work::WorkBuffer;

pub struct PgStore {
    pub(crate) db: PgState,
    pub(crate) link: String,
    pub(crate) lease: Option<Arc<Lease>>,
    /// Work put since the last flush: one page of a feed, written in one
    /// transaction by `flush_work`.
    pub(crate) buffer: tokio::sync::Mutex<WorkBuffer>,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore")
            .field("target", &self.db.target())
            .field("link", &self.link)
            .finish_non_exhaustive()
    }
}

fn text(body: &[u8]) -> String {
    String::from_utf8_lossy(body).into_owned()
}

impl PgStore {
    pub(crate) fn new(db: PgState, link: &str, lease: Option<Arc<Lease>>) -> PgStore {
        PgStore {
            db,
            link: link.to_string(),
            lease,
            buffer: tokio::sync::Mutex::new(WorkBuffer::default()),
        }
    }

    pub fn lease(&self) -> Option<&Arc<Lease>> {
        self.lease.as_ref()
    }

    /// Checks, inside `tx`, that this process still holds the link's lease
    /// with its token, and keeps the lease row share-locked until `tx`
    /// ends: a takeover (which updates the row) waits for this write and
    /// every later one fails.
    pub(crate) async fn fence(&self, tx: &Transaction<'_>) -> Result<(), StateError> {
        let Some(lease) = &self.lease else {
            return Err(StateError::Io(format!(
                "link {:?}: this command opened the state to read only; nothing was written",
                self.link
            )));
        };
        let held = tx
            .query_opt(
                "SELECT 1 FROM hitosync_leases WHERE link = $1 AND owner = $2 AND token = $3 AND expires_at > now() FOR SHARE",
                &[&self.link, &lease.owner, &lease.token],
            )
            .await
            .map_err(|e| self.db.db_err(e))?;
        if held.is_none() {
            lease.revoke();
            return Err(StateError::Fenced {
                link: self.link.clone(),
            });
        }
        Ok(())
    }

    /// A connection for a write: buffered work is flushed first, so that
    /// what the write settles is not brought back by a later flush.
    pub(crate) async fn writer(&self) -> Result<deadpool_postgres::Object, StateError> {
        self.flush_buffer().await?;
        self.db.client().await
    }

    /// Begins a write transaction on `client` and checks the fence in it.
    pub(crate) async fn begin<'c>(
        &self,
        client: &'c mut deadpool_postgres::Object,
    ) -> Result<Transaction<'c>, StateError> {
        let tx = client.transaction().await.map_err(|e| self.db.db_err(e))?;
        self.fence(&tx).await?;
        Ok(tx)
    }

    /// The JSON body of the row `sql` selects by link (`$1`) and `key`
    /// (`$2`), locked until `tx` ends: a read-modify-write of one row.
    pub(crate) async fn locked_body<T: serde::de::DeserializeOwned>(
        &self,
        tx: &Transaction<'_>,
        sql: &str,
        key: &str,
    ) -> Result<Option<T>, StateError> {
        let row = tx
            .query_opt(sql, &[&self.link, &key])
            .await
            .map_err(|e| self.db.db_err(e))?;
        match row {
            Some(row) => Ok(Some(hitosync_state::decode(
                key.as_bytes(),
                row.get::<_, &str>(0).as_bytes(),
            )?)),
            None => Ok(None),
        }
    }

    pub(crate) async fn finish(&self, tx: Transaction<'_>) -> Result<(), StateError> {
        tx.commit().await.map_err(|e| self.db.db_err(e))
    }

    pub(crate) async fn query_bodies(
        &self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<Vec<(String, String)>, StateError> {
        let client = self.db.client().await?;
        let rows = client
            .query(sql, params)
            .await
            .map_err(|e| self.db.db_err(e))?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    pub(crate) async fn count(&self, table: &str) -> Result<usize, StateError> {
        let client = self.db.client().await?;
        let row = client
            .query_one(
                &format!("SELECT count(*) FROM {table} WHERE link = $1"),
                &[&self.link],
            )
            .await
            .map_err(|e| self.db.db_err(e))?;
        Ok(row.get::<_, i64>(0) as usize)
    }

    async fn one_body(&self, sql: &str, key: &str) -> Result<Option<String>, StateError> {
        let client = self.db.client().await?;
        let row = client
            .query_opt(sql, &[&self.link, &key])
            .await
            .map_err(|e| self.db.db_err(e))?;
        Ok(row.map(|r| r.get(0)))
    }
}
