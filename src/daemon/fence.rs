//! The calendar and HITO-Link, as a link's worker sees them while it holds
//! the link's lease: every write first checks that the lease is still
//! valid on this process's monotonic clock. The database fences the state;
//! nothing fences the two APIs, so a process paused past its lease (and
//! taken over meanwhile) that wakes in the middle of a record must not send
//! the write it was about to send. Reads go through untouched.
//!
//! A refused write fails like a cancelled call (`Stopped`), which ends the
//! cycle; the record's intent stays, so whoever holds the link next reads
//! that record again on both sides before deciding.

use async_trait::async_trait;

use hitosync_core::model::{CalendarEvent, EventStatus, Interview};
use hitosync_core::reconcile::{Decliner, EventChange, EventDraft, Notify};
use hitosync_engine::{CalendarApi, HitolinkApi};
use hitosync_google::{EventPage, GoogleError};
use hitosync_hitolink::{ApplicationInfo, ChangePage, HitolinkError, InterviewPatch, NewInterview};
use hitosync_state::Lease;

pub struct FencedCalendar<'a> {
    pub inner: &'a dyn CalendarApi,
    pub lease: &'a Lease,
}

pub struct FencedHitolink<'a> {
    pub inner: &'a dyn HitolinkApi,
    pub lease: &'a Lease,
}

fn lost(lease: &Lease) {
    tracing::warn!(link = %lease.link, "the link's lease ran out before a write: the write is not sent, the cycle stops");
}

#[async_trait]
impl CalendarApi for FencedCalendar<'_> {
    async fn list_page(
        &self,
        sync_token: Option<&str>,
        page_token: Option<&str>,
    ) -> Result<EventPage, GoogleError> {
        self.inner.list_page(sync_token, page_token).await
    }
    async fn get(&self, id: &hitosync_core::ids::EventId) -> Result<CalendarEvent, GoogleError> {
        self.inner.get(id).await
    }
    async fn insert(
        &self,
        event_id: &hitosync_core::ids::EventId,
        draft: &EventDraft,
        notify: Notify,
    ) -> Result<CalendarEvent, GoogleError> {
        if !self.lease.is_valid() {
            lost(self.lease);
            return Err(GoogleError::Stopped);
        }
        self.inner.insert(event_id, draft, notify).await
    }
    async fn patch(
        &self,
        id: &hitosync_core::ids::EventId,
        status: Option<EventStatus>,
        change: &EventChange,
        if_match: Option<&str>,
        notify: Notify,
    ) -> Result<CalendarEvent, GoogleError> {
        if !self.lease.is_valid() {
            lost(self.lease);
            return Err(GoogleError::Stopped);
        }
        self.inner.patch(id, status, change, if_match, notify).await
    }
}

#[async_trait]
impl HitolinkApi for FencedHitolink<'_> {
    async fn changes(&self, cursor: Option<&str>, limit: u32) -> Result<ChangePage, HitolinkError> {
        self.inner.changes(cursor, limit).await
    }
    async fn get(&self, id: &hitosync_core::ids::InterviewId) -> Result<Interview, HitolinkError> {
        self.inner.get(id).await
    }
    async fn create(
        &self,
        new: &NewInterview,
        idempotency_key: &str,
    ) -> Result<Interview, HitolinkError> {
        if !self.lease.is_valid() {
            lost(self.lease);
            return Err(HitolinkError::Stopped);
        }
        self.inner.create(new, idempotency_key).await
    }
    async fn patch(
        &self,
        id: &hitosync_core::ids::InterviewId,
        patch: InterviewPatch<'_>,
        version: u64,
    ) -> Result<Interview, HitolinkError> {
        if !self.lease.is_valid() {
            lost(self.lease);
            return Err(HitolinkError::Stopped);
        }
        self.inner.patch(id, patch, version).await
    }
    async fn decline(
        &self,
        id: &hitosync_core::ids::InterviewId,
        by: &Decliner,
        reason: Option<&str>,
        version: u64,
        idempotency_key: &str,
    ) -> Result<Interview, HitolinkError> {
        if !self.lease.is_valid() {
            lost(self.lease);
            return Err(HitolinkError::Stopped);
        }
        self.inner
            .decline(id, by, reason, version, idempotency_key)
            .await
    }
    async fn application(&self, id: &str) -> Result<ApplicationInfo, HitolinkError> {
        self.inner.application(id).await
    }
}
