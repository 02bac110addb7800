//! The two sides as the engine sees them: typed operations in, typed
//! records out. The real clients implement these over HTTP; tests may wrap
//! them (to crash between two calls, say) without touching the wire.

use async_trait::async_trait;

use hitosync_core::ids::{EventId, InterviewId};
use hitosync_core::model::{CalendarEvent, EventStatus, Interview};
use hitosync_core::reconcile::{Decliner, EventChange, EventDraft, Notify};
use hitosync_google::{CalendarClient, EventPage, GoogleError};
use hitosync_hitolink::{
    ApplicationInfo, ChangePage, HitolinkClient, HitolinkError, InterviewPatch, NewInterview,
};

#[async_trait]
pub trait CalendarApi: Send + Sync {
    async fn list_page(
        &self,
        sync_token: Option<&str>,
        page_token: Option<&str>,
    ) -> Result<EventPage, GoogleError>;
    async fn get(&self, id: &EventId) -> Result<CalendarEvent, GoogleError>;
    async fn insert(
        &self,
        event_id: &EventId,
        draft: &EventDraft,
        notify: Notify,
    ) -> Result<CalendarEvent, GoogleError>;
    async fn patch(
        &self,
        id: &EventId,
        status: Option<EventStatus>,
        change: &EventChange,
        if_match: Option<&str>,
        notify: Notify,
    ) -> Result<CalendarEvent, GoogleError>;
}

#[async_trait]
pub trait HitolinkApi: Send + Sync {
    async fn changes(&self, cursor: Option<&str>, limit: u32) -> Result<ChangePage, HitolinkError>;
    async fn get(&self, id: &InterviewId) -> Result<Interview, HitolinkError>;
    async fn create(
        &self,
        new: &NewInterview,
        idempotency_key: &str,
    ) -> Result<Interview, HitolinkError>;
    async fn patch(
        &self,
        id: &InterviewId,
        patch: InterviewPatch<'_>,
        version: u64,
    ) -> Result<Interview, HitolinkError>;
    async fn decline(
        &self,
        id: &InterviewId,
        by: &Decliner,
        reason: Option<&str>,
        version: u64,
        idempotency_key: &str,
    ) -> Result<Interview, HitolinkError>;
    async fn application(&self, id: &str) -> Result<ApplicationInfo, HitolinkError>;
}

#[async_trait]
impl CalendarApi for CalendarClient {
    async fn list_page(
        &self,
        sync_token: Option<&str>,
        page_token: Option<&str>,
    ) -> Result<EventPage, GoogleError> {
        CalendarClient::list_page(self, sync_token, page_token).await
    }
    async fn get(&self, id: &EventId) -> Result<CalendarEvent, GoogleError> {
        CalendarClient::get(self, id).await
    }
    async fn insert(
        &self,
        event_id: &EventId,
        draft: &EventDraft,
        notify: Notify,
    ) -> Result<CalendarEvent, GoogleError> {
        CalendarClient::insert(self, event_id, draft, notify).await
    }
    async fn patch(
        &self,
        id: &EventId,
        status: Option<EventStatus>,
        change: &EventChange,
        if_match: Option<&str>,
        notify: Notify,
    ) -> Result<CalendarEvent, GoogleError> {
        CalendarClient::patch(self, id, status, change, if_match, notify).await
    }
}

#[async_trait]
impl HitolinkApi for HitolinkClient {
    async fn changes(&self, cursor: Option<&str>, limit: u32) -> Result<ChangePage, HitolinkError> {
        HitolinkClient::changes(self, cursor, limit).await
    }
    async fn get(&self, id: &InterviewId) -> Result<Interview, HitolinkError> {
        HitolinkClient::get(self, id).await
    }
    async fn create(
        &self,
        new: &NewInterview,
        idempotency_key: &str,
    ) -> Result<Interview, HitolinkError> {
        HitolinkClient::create(self, new, idempotency_key).await
    }
    async fn patch(
        &self,
        id: &InterviewId,
        patch: InterviewPatch<'_>,
        version: u64,
    ) -> Result<Interview, HitolinkError> {
        HitolinkClient::patch(self, id, patch, version).await
    }
    async fn decline(
        &self,
        id: &InterviewId,
        by: &Decliner,
        reason: Option<&str>,
        version: u64,
        idempotency_key: &str,
    ) -> Result<Interview, HitolinkError> {
        HitolinkClient::decline(self, id, by, reason, version, idempotency_key).await
    }
    async fn application(&self, id: &str) -> Result<ApplicationInfo, HitolinkError> {
        HitolinkClient::application(self, id).await
    }
}
