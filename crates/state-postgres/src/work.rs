//! The work set, the write-back queue and reports of one link.
//!
//! Work put while a feed is read waits in memory, one page at most, and
//! `flush_work` writes it in one transaction before the cursors move. Reads
//! see it meanwhile; every other write flushes it first, so that a commit
//! that settles a record is never undone by a later flush of its old work.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use hitosync_state::{
    EventId, InterviewId, Report, StateError, WorkKey, decode, encode, order_index_key,
};

use crate::PgStore;

/// Past this many entries the buffer is written at once: memory holds a
/// page, whatever a caller does.
const MAX_BUFFERED: usize = 1_000;

#[derive(Debug, Default)]
pub(crate) struct WorkBuffer {
    /// By work key: the index key and the JSON body.
    items: BTreeMap<String, (Vec<u8>, String)>,
}

impl PgStore {
    pub(crate) async fn get_work(
        &self,
        key: &WorkKey,
    ) -> Result<Option<serde_json::Value>, StateError> {
        let db_key = key.db_key();
        let buffered = {
            let b = self.buffer.lock().await;
            b.items.get(&db_key).map(|(_, body)| body.clone())
        };
        let body = match buffered {
            Some(b) => Some(b),
            None => {
                let client = self.db.client().await?;
                client
                    .query_opt(
                        "SELECT body FROM hitosync_work WHERE link = $1 AND key = $2",
                        &[&self.link, &db_key],
                    )
                    .await
                    .map_err(|e| self.db.db_err(e))?
                    .map(|r| r.get::<_, String>(0))
            }
        };
        body.map(|b| decode(db_key.as_bytes(), b.as_bytes()))
            .transpose()
    }

    pub(crate) async fn buffer_work(
        &self,
        key: &WorkKey,
        order: &[u8],
        item: serde_json::Value,
    ) -> Result<(), StateError> {
        let db_key = key.db_key();
        let body = String::from_utf8_lossy(&encode(&item)?).into_owned();
        let full = {
            let mut b = self.buffer.lock().await;
            b.items
                .insert(db_key.clone(), (order_index_key(order, &db_key), body));
            b.items.len() >= MAX_BUFFERED
        };
        if full {
            self.flush_buffer().await?;
        }
        Ok(())
    }

    /// Writes the buffered work in one transaction. The buffer stays
    /// locked meanwhile, so that no read falls between the two.
    pub(crate) async fn flush_buffer(&self) -> Result<(), StateError> {
        let mut b = self.buffer.lock().await;
        if b.items.is_empty() {
            return Ok(());
        }
        let items = std::mem::take(&mut b.items);
        let mut keys = Vec::with_capacity(items.len());
        let mut idxs = Vec::with_capacity(items.len());
        let mut bodies = Vec::with_capacity(items.len());
        for (k, (idx, body)) in items {
            keys.push(k);
            idxs.push(idx);
            bodies.push(body);
        }
        let mut client = self.db.client().await?;
        let tx = self.begin(&mut client).await?;
        tx.execute(
            "INSERT INTO hitosync_work (link, key, idx, body)
             SELECT $1, k, i, b FROM unnest($2::text[], $3::bytea[], $4::text[]) AS t(k, i, b)
             ON CONFLICT (link, key) DO UPDATE SET idx = EXCLUDED.idx, body = EXCLUDED.body",
            &[&self.link, &keys, &idxs, &bodies],
        )
        .await
        .map_err(|e| self.db.db_err(e))?;
        self.finish(tx).await
    }

    pub(crate) async fn batch_of_work(
        &self,
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, WorkKey)>, StateError> {
        self.flush_buffer().await?;
        let client = self.db.client().await?;
        let rows = client
            .query(
                "SELECT idx, key FROM hitosync_work WHERE link = $1 AND ($2::bytea IS NULL OR idx > $2)
                 ORDER BY idx LIMIT $3",
                &[&self.link, &after, &(limit as i64)],
            )
            .await
            .map_err(|e| self.db.db_err(e))?;
        rows.iter()
            .map(|r| {
                let idx: Vec<u8> = r.get(0);
                let key: String = r.get(1);
                let wk = WorkKey::from_db_key(&key).ok_or_else(|| StateError::Corrupt {
                    key: key.clone(),
                    detail: "not a work key".into(),
                })?;
                Ok((idx, wk))
            })
            .collect()
    }

    pub(crate) async fn batch_of_links(
        &self,
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, String)>, StateError> {
        let client = self.db.client().await?;
        let rows = client
            .query(
                "SELECT idx, interview_id FROM hitosync_pending_links WHERE link = $1 AND ($2::bytea IS NULL OR idx > $2)
                 ORDER BY idx LIMIT $3",
                &[&self.link, &after, &(limit as i64)],
            )
            .await
            .map_err(|e| self.db.db_err(e))?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    pub(crate) async fn put_report(
        &self,
        event_id: &EventId,
        interview_id: Option<&InterviewId>,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, StateError> {
        let mut client = self.writer().await?;
        let tx = self.begin(&mut client).await?;
        let db = |e| self.db.db_err(e);
        let old: Option<Report> = self
            .locked_body(
                &tx,
                "SELECT body FROM hitosync_reports WHERE link = $1 AND event_id = $2 FOR UPDATE",
                event_id,
            )
            .await?;
        let new = old.as_ref().is_none_or(|o| o.reason != reason);
        let r = Report {
            event_id: event_id.clone(),
            interview_id: interview_id.cloned(),
            reason: reason.to_string(),
            first_seen: old.map(|o| o.first_seen).unwrap_or(now),
            last_seen: now,
        };
        let body = String::from_utf8_lossy(&encode(&r)?).into_owned();
        tx.execute(
            "INSERT INTO hitosync_reports (link, event_id, body) VALUES ($1, $2, $3)
             ON CONFLICT (link, event_id) DO UPDATE SET body = EXCLUDED.body",
            &[&self.link, &event_id.as_str(), &body],
        )
        .await
        .map_err(db)?;
        self.finish(tx).await?;
        Ok(new)
    }

    pub(crate) async fn remove_report(&self, event_id: &str) -> Result<(), StateError> {
        let mut client = self.writer().await?;
        let tx = self.begin(&mut client).await?;
        tx.execute(
            "DELETE FROM hitosync_reports WHERE link = $1 AND event_id = $2",
            &[&self.link, &event_id],
        )
        .await
        .map_err(|e| self.db.db_err(e))?;
        self.finish(tx).await
    }

    pub(crate) async fn all_reports(&self) -> Result<Vec<Report>, StateError> {
        let rows = self
            .query_bodies(
                "SELECT event_id, body FROM hitosync_reports WHERE link = $1 ORDER BY event_id",
                &[&self.link],
            )
            .await?;
        rows.iter()
            .map(|(k, b)| decode(k.as_bytes(), b.as_bytes()))
            .collect()
    }
}
