//! The state of one link as the engine sees it, whatever holds it.
//!
//! Every method that writes is one commit point: durable when it returns
//! (sled flushes; PostgreSQL commits one transaction, which also checks
//! the link's lease). Queues are read in batches after a key, so memory
//! holds a batch, never the whole set.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use hitosync_core::ids::{EventId, InterviewId};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::{
    Commit, ConflictEntry, Cursor, Intent, MetaKey, Parked, Record, Report, Side, StateError,
    WorkKey, decode_value, encode_value,
};

#[async_trait]
pub trait StateStore: Send + Sync + std::fmt::Debug {
    /// The link this state belongs to.
    fn link(&self) -> &str;
    /// Where it lives, for `status` (a folder, or a database without its
    /// password).
    fn location(&self) -> String;

    // --- records -----------------------------------------------------------
    async fn record(&self, interview_id: &InterviewId) -> Result<Option<Record>, StateError>;
    async fn interview_for_event(
        &self,
        event_id: &EventId,
    ) -> Result<Option<InterviewId>, StateError>;
    /// Stores a decision's outcome in one transaction: the new snapshot (or
    /// its removal), one history line, the conflicts, the pending-link
    /// index; and settles the record's intent, parking and work.
    async fn commit(&self, c: Commit<'_>) -> Result<(), StateError>;
    /// Up to `limit` mapped interviews in ID order after `after`.
    async fn records_after(
        &self,
        after: Option<&InterviewId>,
        limit: usize,
    ) -> Result<Vec<Record>, StateError>;
    async fn record_count(&self) -> Result<usize, StateError>;
    /// The interview's half of the link was written back (at `version`).
    async fn link_written(
        &self,
        interview_id: &InterviewId,
        event_id: &EventId,
        version: u64,
        at: DateTime<Utc>,
    ) -> Result<bool, StateError>;
    /// The interview left the write-back queue without a write.
    async fn drop_pending_link(&self, interview_id: &InterviewId) -> Result<(), StateError>;

    // --- cursors, intents, parking -----------------------------------------
    async fn cursor(&self, side: Side) -> Result<Option<Cursor>, StateError>;
    /// Saves both positions at once, after what they cover is durable.
    async fn set_cursors(
        &self,
        google: Option<&str>,
        hitolink: Option<&str>,
        at: DateTime<Utc>,
    ) -> Result<(), StateError>;
    async fn clear_cursors(&self) -> Result<(), StateError>;
    /// Durable before a remote write.
    async fn put_intent(&self, intent: &Intent) -> Result<(), StateError>;
    async fn is_pending(&self, key: &WorkKey) -> Result<bool, StateError>;
    /// Closes any intent, parking and pending work for `key`.
    async fn settle(&self, key: &WorkKey) -> Result<(), StateError>;
    async fn intents(&self) -> Result<Vec<Intent>, StateError>;
    /// Parks (or parks again) a record: attempts grow, and so does the wait
    /// ([`park_wait`]) unless `until` names when the limit lifts; `held`
    /// for the mass-deletion breaker.
    async fn park_with(
        &self,
        key: &WorkKey,
        reason: &str,
        now: DateTime<Utc>,
        held: bool,
        until: Option<DateTime<Utc>>,
    ) -> Result<Parked, StateError>;
    async fn parked(&self) -> Result<Vec<Parked>, StateError>;

    // --- conflicts, meta, reports ------------------------------------------
    /// The newest first.
    async fn conflicts(&self, limit: usize) -> Result<Vec<ConflictEntry>, StateError>;
    async fn conflict_count(&self) -> Result<usize, StateError>;
    async fn put_meta_value(&self, key: &str, value: serde_json::Value) -> Result<(), StateError>;
    async fn meta_value(&self, key: &str) -> Result<Option<serde_json::Value>, StateError>;
    /// Records a report; returns whether it is new (logged once).
    async fn report(
        &self,
        event_id: &EventId,
        interview_id: Option<&InterviewId>,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, StateError>;
    async fn clear_report(&self, event_id: &EventId) -> Result<(), StateError>;
    async fn reports(&self) -> Result<Vec<Report>, StateError>;

    // --- the work set and the write-back queue ---------------------------
    async fn work_value(&self, key: &WorkKey) -> Result<Option<serde_json::Value>, StateError>;
    /// Stores a record's pending work at `order`. Durable only with the
    /// next [`StateStore::flush_work`]: the feed reader flushes once per
    /// page, before the cursors move; until then reads see it.
    async fn put_work_value(
        &self,
        key: &WorkKey,
        order: &[u8],
        item: serde_json::Value,
    ) -> Result<(), StateError>;
    /// Up to `limit` keys of pending work in order, after `after` (the
    /// index key the previous batch ended with).
    async fn work_batch(
        &self,
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, WorkKey)>, StateError>;
    async fn work_count(&self) -> Result<usize, StateError>;
    async fn drop_work(&self, key: &WorkKey) -> Result<(), StateError>;
    /// Makes what was put durable, in one transaction.
    async fn flush_work(&self) -> Result<(), StateError>;
    /// Interviews whose `external_event_id` waits to be written, in order.
    async fn pending_links(
        &self,
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, InterviewId)>, StateError>;
    async fn pending_link_count(&self) -> Result<usize, StateError>;

    /// Whether the store still takes writes (after an I/O error).
    async fn check_writable(&self) -> Result<(), StateError>;
}

/// Typed access on top of the trait's JSON values.
#[async_trait]
pub trait StateStoreExt: StateStore {
    async fn park(
        &self,
        key: &WorkKey,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<Parked, StateError> {
        self.park_with(key, reason, now, false, None).await
    }

    /// Parks a record until a known time (a limit that lifts then).
    async fn park_until(
        &self,
        key: &WorkKey,
        reason: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Parked, StateError> {
        self.park_with(key, reason, now, false, Some(until)).await
    }

    /// Parks a cancellation the mass-deletion breaker held back: retried
    /// only with `--allow-mass-delete`.
    async fn park_held(
        &self,
        key: &WorkKey,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<Parked, StateError> {
        self.park_with(
            key,
            &format!("held by the mass-deletion breaker: {reason}"),
            now,
            true,
            None,
        )
        .await
    }

    async fn put_meta<T: Serialize + Sync>(
        &self,
        key: MetaKey<T>,
        value: &T,
    ) -> Result<(), StateError> {
        let v = encode_value(value)?;
        self.put_meta_value(key.name(), v).await
    }

    async fn meta<T: DeserializeOwned>(&self, key: MetaKey<T>) -> Result<Option<T>, StateError> {
        match self.meta_value(key.name()).await? {
            Some(v) => Ok(Some(decode_value(key.name(), v)?)),
            None => Ok(None),
        }
    }

    async fn work<T: DeserializeOwned>(&self, key: &WorkKey) -> Result<Option<T>, StateError> {
        match self.work_value(key).await? {
            Some(v) => Ok(Some(decode_value(&key.db_key(), v)?)),
            None => Ok(None),
        }
    }

    async fn put_work<T: Serialize + Sync>(
        &self,
        key: &WorkKey,
        order: &[u8],
        item: &T,
    ) -> Result<(), StateError> {
        let v = encode_value(item)?;
        self.put_work_value(key, order, v).await
    }
}

impl<S: StateStore + ?Sized> StateStoreExt for S {}

/// How long a record parked for the `attempts`-th time waits: 1 minute,
/// doubling, at most 6 hours.
pub fn park_wait(attempts: u32) -> chrono::Duration {
    let wait_min = (1i64 << (attempts.saturating_sub(1)).min(9)).min(360);
    chrono::Duration::minutes(wait_min)
}

impl crate::Parked {
    /// The parking that follows `old` (the record's parking so far, if
    /// any): one attempt more, the first time kept, the next retry after
    /// [`park_wait`] unless `until` names when a limit lifts. Both backends
    /// park through this, so they cannot drift apart on the schedule.
    pub fn after(
        old: Option<crate::Parked>,
        key: &crate::WorkKey,
        reason: &str,
        now: chrono::DateTime<chrono::Utc>,
        held: bool,
        until: Option<chrono::DateTime<chrono::Utc>>,
    ) -> crate::Parked {
        let attempts = old.as_ref().map(|p| p.attempts + 1).unwrap_or(1);
        crate::Parked {
            key: key.clone(),
            reason: reason.to_string(),
            attempts,
            first_at: old.map(|p| p.first_at).unwrap_or(now),
            next_retry: until.unwrap_or(now + park_wait(attempts)),
            held,
            waits_for_limit: until.is_some(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Parked, WorkKey};
    use chrono::{Duration, TimeZone, Utc};

    #[test]
    fn a_parking_counts_attempts_keeps_the_first_time_and_backs_off() {
        let key = WorkKey::Interview("iv_1".into());
        let t0 = Utc.with_ymd_and_hms(2026, 11, 29, 9, 0, 0).unwrap();
        let first = Parked::after(None, &key, "500", t0, false, None);
        assert_eq!((first.attempts, first.first_at), (1, t0));
        assert_eq!(first.next_retry, t0 + Duration::minutes(1));
        assert!(!first.waits_for_limit);
        let t1 = t0 + Duration::minutes(5);
        let second = Parked::after(Some(first), &key, "500 again", t1, true, None);
        assert_eq!((second.attempts, second.first_at), (2, t0));
        assert_eq!(second.next_retry, t1 + Duration::minutes(2));
        assert_eq!((second.reason.as_str(), second.held), ("500 again", true));
        // a limit that lifts at a known time: retried then, not on backoff
        let lifts = t1 + Duration::hours(3);
        let third = Parked::after(Some(second), &key, "limit", t1, false, Some(lifts));
        assert_eq!((third.attempts, third.next_retry), (3, lifts));
        assert!(third.waits_for_limit);
        // the backoff stops growing at six hours
        assert_eq!(park_wait(30), Duration::hours(6));
    }
}
