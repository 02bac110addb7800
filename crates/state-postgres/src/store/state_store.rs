//! The engine's [`StateStore`] contract, table by table: records, cursors,
//! the intent journal, parking, conflicts and meta, each in its own SQL.
//! Apart from `PgStore` itself so that the handle and its write discipline
//! (every write one transaction, fenced by the lease) read on their own;
//! every write here goes through `writer`, `begin` and `finish`.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use hitosync_state::{
    CONFLICT_LOG_LEN, Commit, ConflictEntry, Cursor, EventId, Intent, InterviewId, Parked, Record,
    Report, Side, StateError, StateStore, WorkKey, decode, encode, order_index_key,
};

use super::{PgStore, text};

#[async_trait]
impl StateStore for PgStore {
    fn link(&self) -> &str {
        &self.link
    }

    fn location(&self) -> String {
        self.db.target().to_string()
    }

    async fn record(&self, interview_id: &InterviewId) -> Result<Option<Record>, StateError> {
        let interview_id: &str = interview_id;
        let body = self
            .one_body(
                "SELECT body FROM hitosync_records WHERE link = $1 AND interview_id = $2",
                interview_id,
            )
            .await?;
        body.map(|b| decode(interview_id.as_bytes(), b.as_bytes()))
            .transpose()
    }

    async fn interview_for_event(
        &self,
        event_id: &EventId,
    ) -> Result<Option<InterviewId>, StateError> {
        let event_id: &str = event_id;
        Ok(self.one_body(
            "SELECT interview_id FROM hitosync_records WHERE link = $1 AND event_id = $2 ORDER BY interview_id LIMIT 1",
            event_id,
        )
        .await?
        .map(InterviewId::new))
    }

    async fn commit(&self, c: Commit<'_>) -> Result<(), StateError> {
        let mut client = self.writer().await?;
        let tx = self.begin(&mut client).await?;
        let db = |e| self.db.db_err(e);
        let iid: &str = c.interview_id;
        let old: Option<Record> = self
            .locked_body(
                &tx,
                "SELECT body FROM hitosync_records WHERE link = $1 AND interview_id = $2 FOR UPDATE",
                iid,
            )
            .await?;
        let exists = match c.new_record(old.as_ref()) {
            Some(rec) => {
                let body = text(&encode(&rec)?);
                tx.execute(
                    "INSERT INTO hitosync_records (link, interview_id, event_id, body) VALUES ($1, $2, $3, $4)
                     ON CONFLICT (link, interview_id) DO UPDATE SET event_id = EXCLUDED.event_id, body = EXCLUDED.body",
                    &[&self.link, &iid, &rec.snapshot.event_id.as_str(), &body],
                )
                .await
                .map_err(db)?;
                true
            }
            None => {
                tx.execute(
                    "DELETE FROM hitosync_records WHERE link = $1 AND interview_id = $2",
                    &[&self.link, &iid],
                )
                .await
                .map_err(db)?;
                false
            }
        };
        for conflict in c.conflicts {
            let body = text(&encode(&ConflictEntry {
                at: c.entry.at,
                interview_id: c.interview_id.clone(),
                conflict: conflict.clone(),
            })?);
            tx.execute(
                "INSERT INTO hitosync_conflicts (link, body) VALUES ($1, $2)",
                &[&self.link, &body],
            )
            .await
            .map_err(db)?;
        }
        if !c.conflicts.is_empty() {
            tx.execute(
                "DELETE FROM hitosync_conflicts WHERE link = $1 AND id <= (
                    SELECT id FROM hitosync_conflicts WHERE link = $1 ORDER BY id DESC OFFSET $2 LIMIT 1)",
                &[&self.link, &(CONFLICT_LOG_LEN as i64)],
            )
            .await
            .map_err(db)?;
        }
        let settled: Vec<String> = c.settled_keys().iter().map(WorkKey::db_key).collect();
        for table in ["hitosync_intents", "hitosync_parked", "hitosync_work"] {
            tx.execute(
                &format!("DELETE FROM {table} WHERE link = $1 AND key = ANY($2)"),
                &[&self.link, &settled],
            )
            .await
            .map_err(db)?;
        }
        match c.queues_link() {
            Some(order) if exists => {
                let idx = order_index_key(order, iid);
                tx.execute(
                    "INSERT INTO hitosync_pending_links (link, interview_id, idx) VALUES ($1, $2, $3)
                     ON CONFLICT (link, interview_id) DO UPDATE SET idx = EXCLUDED.idx",
                    &[&self.link, &iid, &idx],
                )
                .await
                .map_err(db)?;
            }
            _ => {
                tx.execute(
                    "DELETE FROM hitosync_pending_links WHERE link = $1 AND interview_id = $2",
                    &[&self.link, &iid],
                )
                .await
                .map_err(db)?;
            }
        }
        self.finish(tx).await
    }

    async fn records_after(
        &self,
        after: Option<&InterviewId>,
        limit: usize,
    ) -> Result<Vec<Record>, StateError> {
        let after: Option<&str> = after.map(InterviewId::as_str);
        let rows = self
            .query_bodies(
                "SELECT interview_id, body FROM hitosync_records WHERE link = $1 AND ($2::text IS NULL OR interview_id > $2)
                 ORDER BY interview_id LIMIT $3",
                &[&self.link, &after, &(limit as i64)],
            )
            .await?;
        rows.iter()
            .map(|(k, b)| decode(k.as_bytes(), b.as_bytes()))
            .collect()
    }

    async fn record_count(&self) -> Result<usize, StateError> {
        self.count("hitosync_records").await
    }

    async fn link_written(
        &self,
        interview_id: &InterviewId,
        event_id: &EventId,
        version: u64,
        at: DateTime<Utc>,
    ) -> Result<bool, StateError> {
        let (interview_id, event_ref): (&str, &EventId) = (interview_id, event_id);
        let event_id: &str = event_id;
        let mut client = self.writer().await?;
        let tx = self.begin(&mut client).await?;
        let db = |e| self.db.db_err(e);
        let Some(mut rec) = self
            .locked_body::<Record>(
                &tx,
                "SELECT body FROM hitosync_records WHERE link = $1 AND interview_id = $2 FOR UPDATE",
                interview_id,
            )
            .await?
        else {
            return Ok(false);
        };
        if rec.snapshot.event_id != event_id {
            return Ok(false);
        }
        rec.mark_link_written(event_ref, version, at);
        let body = text(&encode(&rec)?);
        tx.execute(
            "UPDATE hitosync_records SET body = $3 WHERE link = $1 AND interview_id = $2",
            &[&self.link, &interview_id, &body],
        )
        .await
        .map_err(db)?;
        tx.execute(
            "DELETE FROM hitosync_pending_links WHERE link = $1 AND interview_id = $2",
            &[&self.link, &interview_id],
        )
        .await
        .map_err(db)?;
        self.finish(tx).await?;
        Ok(true)
    }

    async fn drop_pending_link(&self, interview_id: &InterviewId) -> Result<(), StateError> {
        let interview_id: &str = interview_id;
        let mut client = self.writer().await?;
        let tx = self.begin(&mut client).await?;
        tx.execute(
            "DELETE FROM hitosync_pending_links WHERE link = $1 AND interview_id = $2",
            &[&self.link, &interview_id],
        )
        .await
        .map_err(|e| self.db.db_err(e))?;
        self.finish(tx).await
    }

    async fn cursor(&self, side: Side) -> Result<Option<Cursor>, StateError> {
        let body = self
            .one_body(
                "SELECT body FROM hitosync_cursors WHERE link = $1 AND side = $2",
                side.key(),
            )
            .await?;
        body.map(|b| decode(side.key().as_bytes(), b.as_bytes()))
            .transpose()
    }

    async fn set_cursors(
        &self,
        google: Option<&str>,
        hitolink: Option<&str>,
        at: DateTime<Utc>,
    ) -> Result<(), StateError> {
        let mut client = self.writer().await?;
        let tx = self.begin(&mut client).await?;
        for (side, value) in [(Side::Google, google), (Side::Hitolink, hitolink)] {
            if let Some(v) = value {
                let body = text(&encode(&Cursor {
                    value: v.to_string(),
                    saved_at: at,
                })?);
                tx.execute(
                    "INSERT INTO hitosync_cursors (link, side, body) VALUES ($1, $2, $3)
                     ON CONFLICT (link, side) DO UPDATE SET body = EXCLUDED.body",
                    &[&self.link, &side.key(), &body],
                )
                .await
                .map_err(|e| self.db.db_err(e))?;
            }
        }
        self.finish(tx).await
    }

    async fn clear_cursors(&self) -> Result<(), StateError> {
        let mut client = self.writer().await?;
        let tx = self.begin(&mut client).await?;
        tx.execute(
            "DELETE FROM hitosync_cursors WHERE link = $1",
            &[&self.link],
        )
        .await
        .map_err(|e| self.db.db_err(e))?;
        self.finish(tx).await
    }

    async fn put_intent(&self, intent: &Intent) -> Result<(), StateError> {
        let body = text(&encode(intent)?);
        let mut client = self.writer().await?;
        let tx = self.begin(&mut client).await?;
        tx.execute(
            "INSERT INTO hitosync_intents (link, key, body) VALUES ($1, $2, $3)
             ON CONFLICT (link, key) DO UPDATE SET body = EXCLUDED.body",
            &[&self.link, &intent.key.db_key(), &body],
        )
        .await
        .map_err(|e| self.db.db_err(e))?;
        self.finish(tx).await
    }

    async fn is_pending(&self, key: &WorkKey) -> Result<bool, StateError> {
        let client = self.db.client().await?;
        let row = client
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM hitosync_intents WHERE link = $1 AND key = $2)
                     OR EXISTS (SELECT 1 FROM hitosync_parked WHERE link = $1 AND key = $2)",
                &[&self.link, &key.db_key()],
            )
            .await
            .map_err(|e| self.db.db_err(e))?;
        Ok(row.get(0))
    }

    async fn settle(&self, key: &WorkKey) -> Result<(), StateError> {
        let mut client = self.writer().await?;
        let tx = self.begin(&mut client).await?;
        for table in ["hitosync_intents", "hitosync_parked", "hitosync_work"] {
            tx.execute(
                &format!("DELETE FROM {table} WHERE link = $1 AND key = $2"),
                &[&self.link, &key.db_key()],
            )
            .await
            .map_err(|e| self.db.db_err(e))?;
        }
        self.finish(tx).await
    }

    async fn intents(&self) -> Result<Vec<Intent>, StateError> {
        let rows = self
            .query_bodies(
                "SELECT key, body FROM hitosync_intents WHERE link = $1 ORDER BY key",
                &[&self.link],
            )
            .await?;
        rows.iter()
            .map(|(k, b)| decode(k.as_bytes(), b.as_bytes()))
            .collect()
    }

    async fn park_with(
        &self,
        key: &WorkKey,
        reason: &str,
        now: DateTime<Utc>,
        held: bool,
        until: Option<DateTime<Utc>>,
    ) -> Result<Parked, StateError> {
        let db_key = key.db_key();
        let mut client = self.writer().await?;
        let tx = self.begin(&mut client).await?;
        let db = |e| self.db.db_err(e);
        let old: Option<Parked> = self
            .locked_body(
                &tx,
                "SELECT body FROM hitosync_parked WHERE link = $1 AND key = $2 FOR UPDATE",
                &db_key,
            )
            .await?;
        let p = Parked::after(old, key, reason, now, held, until);
        let body = text(&encode(&p)?);
        tx.execute(
            "INSERT INTO hitosync_parked (link, key, body) VALUES ($1, $2, $3)
             ON CONFLICT (link, key) DO UPDATE SET body = EXCLUDED.body",
            &[&self.link, &db_key, &body],
        )
        .await
        .map_err(db)?;
        // Parked work is read afresh when it comes due.
        for table in ["hitosync_intents", "hitosync_work"] {
            tx.execute(
                &format!("DELETE FROM {table} WHERE link = $1 AND key = $2"),
                &[&self.link, &db_key],
            )
            .await
            .map_err(db)?;
        }
        self.finish(tx).await?;
        Ok(p)
    }

    async fn parked(&self) -> Result<Vec<Parked>, StateError> {
        let rows = self
            .query_bodies(
                "SELECT key, body FROM hitosync_parked WHERE link = $1 ORDER BY key",
                &[&self.link],
            )
            .await?;
        rows.iter()
            .map(|(k, b)| decode(k.as_bytes(), b.as_bytes()))
            .collect()
    }

    async fn conflicts(&self, limit: usize) -> Result<Vec<ConflictEntry>, StateError> {
        let rows = self
            .query_bodies(
                "SELECT id::text, body FROM hitosync_conflicts WHERE link = $1 ORDER BY id DESC LIMIT $2",
                &[&self.link, &(limit as i64)],
            )
            .await?;
        rows.iter()
            .map(|(k, b)| decode(k.as_bytes(), b.as_bytes()))
            .collect()
    }

    async fn conflict_count(&self) -> Result<usize, StateError> {
        self.count("hitosync_conflicts").await
    }

    async fn put_meta_value(&self, key: &str, value: serde_json::Value) -> Result<(), StateError> {
        let body = text(&encode(&value)?);
        let mut client = self.writer().await?;
        let tx = self.begin(&mut client).await?;
        tx.execute(
            "INSERT INTO hitosync_meta (link, key, body) VALUES ($1, $2, $3)
             ON CONFLICT (link, key) DO UPDATE SET body = EXCLUDED.body",
            &[&self.link, &key, &body],
        )
        .await
        .map_err(|e| self.db.db_err(e))?;
        self.finish(tx).await
    }

    async fn meta_value(&self, key: &str) -> Result<Option<serde_json::Value>, StateError> {
        let body = self
            .one_body(
                "SELECT body FROM hitosync_meta WHERE link = $1 AND key = $2",
                key,
            )
            .await?;
        body.map(|b| decode(key.as_bytes(), b.as_bytes()))
            .transpose()
    }

    async fn report(
        &self,
        event_id: &EventId,
        interview_id: Option<&InterviewId>,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, StateError> {
        self.put_report(event_id, interview_id, reason, now).await
    }

    async fn clear_report(&self, event_id: &EventId) -> Result<(), StateError> {
        self.remove_report(event_id).await
    }

    async fn reports(&self) -> Result<Vec<Report>, StateError> {
        self.all_reports().await
    }

    async fn work_value(&self, key: &WorkKey) -> Result<Option<serde_json::Value>, StateError> {
        self.get_work(key).await
    }

    async fn put_work_value(
        &self,
        key: &WorkKey,
        order: &[u8],
        item: serde_json::Value,
    ) -> Result<(), StateError> {
        self.buffer_work(key, order, item).await
    }

    async fn work_batch(
        &self,
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, WorkKey)>, StateError> {
        self.batch_of_work(after, limit).await
    }

    async fn work_count(&self) -> Result<usize, StateError> {
        self.flush_buffer().await?;
        self.count("hitosync_work").await
    }

    async fn drop_work(&self, key: &WorkKey) -> Result<(), StateError> {
        let mut client = self.writer().await?;
        let tx = self.begin(&mut client).await?;
        tx.execute(
            "DELETE FROM hitosync_work WHERE link = $1 AND key = $2",
            &[&self.link, &key.db_key()],
        )
        .await
        .map_err(|e| self.db.db_err(e))?;
        self.finish(tx).await
    }

    async fn flush_work(&self) -> Result<(), StateError> {
        self.flush_buffer().await
    }

    async fn pending_links(
        &self,
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, InterviewId)>, StateError> {
        Ok(self
            .batch_of_links(after, limit)
            .await?
            .into_iter()
            .map(|(k, id)| (k, InterviewId::new(id)))
            .collect())
    }

    async fn pending_link_count(&self) -> Result<usize, StateError> {
        self.count("hitosync_pending_links").await
    }

    async fn check_writable(&self) -> Result<(), StateError> {
        let client = self.db.client().await?;
        client
            .query_one("SELECT 1", &[])
            .await
            .map_err(|e| self.db.db_err(e))?;
        Ok(())
    }
}
