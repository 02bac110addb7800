//! sled behind the engine's [`StateStore`]: each call runs the store's own
//! method at once. sled's calls are short and its flushes are what a
//! commit point costs anyway; there is no lease to check on one machine.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::*;

#[async_trait]
impl StateStore for Store {
    fn link(&self) -> &str {
        &self.link
    }

    fn location(&self) -> String {
        self.dir.display().to_string()
    }

    async fn record(&self, interview_id: &InterviewId) -> Result<Option<Record>, StateError> {
        Store::record(self, interview_id)
    }

    async fn interview_for_event(
        &self,
        event_id: &EventId,
    ) -> Result<Option<InterviewId>, StateError> {
        Store::interview_for_event(self, event_id)
    }

    async fn commit(&self, c: Commit<'_>) -> Result<(), StateError> {
        Store::commit(self, c)
    }

    async fn records_after(
        &self,
        after: Option<&InterviewId>,
        limit: usize,
    ) -> Result<Vec<Record>, StateError> {
        Store::records_after(self, after, limit)
    }

    async fn record_count(&self) -> Result<usize, StateError> {
        Ok(Store::record_count(self))
    }

    async fn link_written(
        &self,
        interview_id: &InterviewId,
        event_id: &EventId,
        version: u64,
        at: DateTime<Utc>,
    ) -> Result<bool, StateError> {
        Store::link_written(self, interview_id, event_id, version, at)
    }

    async fn drop_pending_link(&self, interview_id: &InterviewId) -> Result<(), StateError> {
        Store::drop_pending_link(self, interview_id)
    }

    async fn cursor(&self, side: Side) -> Result<Option<Cursor>, StateError> {
        Store::cursor(self, side)
    }

    async fn set_cursors(
        &self,
        google: Option<&str>,
        hitolink: Option<&str>,
        at: DateTime<Utc>,
    ) -> Result<(), StateError> {
        Store::set_cursors(self, google, hitolink, at)
    }

    async fn clear_cursors(&self) -> Result<(), StateError> {
        Store::clear_cursors(self)
    }

    async fn put_intent(&self, intent: &Intent) -> Result<(), StateError> {
        Store::put_intent(self, intent)
    }

    async fn is_pending(&self, key: &WorkKey) -> Result<bool, StateError> {
        Store::is_pending(self, key)
    }

    async fn settle(&self, key: &WorkKey) -> Result<(), StateError> {
        Store::settle(self, key)
    }

    async fn intents(&self) -> Result<Vec<Intent>, StateError> {
        Store::intents(self)
    }

    async fn park_with(
        &self,
        key: &WorkKey,
        reason: &str,
        now: DateTime<Utc>,
        held: bool,
        until: Option<DateTime<Utc>>,
    ) -> Result<Parked, StateError> {
        Store::park_with(self, key, reason, now, held, until)
    }

    async fn parked(&self) -> Result<Vec<Parked>, StateError> {
        Store::parked(self)
    }

    async fn conflicts(&self, limit: usize) -> Result<Vec<ConflictEntry>, StateError> {
        Store::conflicts(self, limit)
    }

    async fn conflict_count(&self) -> Result<usize, StateError> {
        Ok(Store::conflict_count(self))
    }

    async fn put_meta_value(&self, key: &str, value: serde_json::Value) -> Result<(), StateError> {
        Store::put_meta_raw(self, key, &value)
    }

    async fn meta_value(&self, key: &str) -> Result<Option<serde_json::Value>, StateError> {
        Store::meta_raw(self, key)
    }

    async fn report(
        &self,
        event_id: &EventId,
        interview_id: Option<&InterviewId>,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, StateError> {
        Store::report(self, event_id, interview_id, reason, now)
    }

    async fn clear_report(&self, event_id: &EventId) -> Result<(), StateError> {
        Store::clear_report(self, event_id)
    }

    async fn reports(&self) -> Result<Vec<Report>, StateError> {
        Store::reports(self)
    }

    async fn work_value(&self, key: &WorkKey) -> Result<Option<serde_json::Value>, StateError> {
        Store::work(self, key)
    }

    async fn put_work_value(
        &self,
        key: &WorkKey,
        order: &[u8],
        item: serde_json::Value,
    ) -> Result<(), StateError> {
        Store::put_work(self, key, order, &item)
    }

    async fn work_batch(
        &self,
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, WorkKey)>, StateError> {
        Store::work_batch(self, after, limit)
    }

    async fn work_count(&self) -> Result<usize, StateError> {
        Ok(Store::work_count(self))
    }

    async fn drop_work(&self, key: &WorkKey) -> Result<(), StateError> {
        Store::drop_work(self, key)
    }

    async fn flush_work(&self) -> Result<(), StateError> {
        Store::flush_work(self)
    }

    async fn pending_links(
        &self,
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, InterviewId)>, StateError> {
        Store::pending_links(self, after, limit)
    }

    async fn pending_link_count(&self) -> Result<usize, StateError> {
        Ok(Store::pending_link_count(self))
    }

    async fn check_writable(&self) -> Result<(), StateError> {
        Store::check_writable(self)
    }
}
