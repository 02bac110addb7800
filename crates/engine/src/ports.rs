//! The two sides as the engine sees them. The real clients implement these
//! over HTTP; property tests implement them over the emulators' state
//! machines, which makes thousands of histories (with crashes) affordable.

use async_trait::async_trait;
use serde_json::Value;

use hitosync_core::model::{CalendarEvent, Interview};
use hitosync_google::{CalendarClient, EventPage, GoogleError, NewEvent, SendUpdates};
use hitosync_hitolink::{
    ApplicationInfo, ChangePage, DeclineBy, HitolinkClient, HitolinkError, NewInterview,
};

#[async_trait]
pub trait CalendarApi: Send + Sync {
    async fn list_page(
        &self,
        sync_token: Option<&str>,
        page_token: Option<&str>,
    ) -> Result<EventPage, GoogleError>;
    async fn get(&self, id: &str) -> Result<CalendarEvent, GoogleError>;
    async fn insert(&self, new: &NewEvent, send: SendUpdates)
    -> Result<CalendarEvent, GoogleError>;
    async fn patch(
        &self,
        id: &str,
        body: &Value,
        if_match: Option<&str>,
        send: SendUpdates,
    ) -> Result<CalendarEvent, GoogleError>;
}

#[async_trait]
pub trait HitolinkApi: Send + Sync {
    async fn changes(&self, cursor: Option<&str>, limit: u32) -> Result<ChangePage, HitolinkError>;
    async fn get(&self, id: &str) -> Result<Interview, HitolinkError>;
    async fn create(
        &self,
        new: &NewInterview,
        idempotency_key: &str,
    ) -> Result<Interview, HitolinkError>;
    async fn patch(
        &self,
        id: &str,
        fields: &Value,
        version: u64,
    ) -> Result<Interview, HitolinkError>;
    async fn decline(
        &self,
        id: &str,
        by: &DeclineBy,
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
    async fn get(&self, id: &str) -> Result<CalendarEvent, GoogleError> {
        CalendarClient::get(self, id).await
    }
    async fn insert(
        &self,
        new: &NewEvent,
        send: SendUpdates,
    ) -> Result<CalendarEvent, GoogleError> {
        CalendarClient::insert(self, new, send).await
    }
    async fn patch(
        &self,
        id: &str,
        body: &Value,
        if_match: Option<&str>,
        send: SendUpdates,
    ) -> Result<CalendarEvent, GoogleError> {
        CalendarClient::patch(self, id, body, if_match, send).await
    }
}

#[async_trait]
impl HitolinkApi for HitolinkClient {
    async fn changes(&self, cursor: Option<&str>, limit: u32) -> Result<ChangePage, HitolinkError> {
        HitolinkClient::changes(self, cursor, limit).await
    }
    async fn get(&self, id: &str) -> Result<Interview, HitolinkError> {
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
        id: &str,
        fields: &Value,
        version: u64,
    ) -> Result<Interview, HitolinkError> {
        HitolinkClient::patch(self, id, fields, version).await
    }
    async fn decline(
        &self,
        id: &str,
        by: &DeclineBy,
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
