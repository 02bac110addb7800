//! The engine's ports served straight from the emulators' state machines,
//! without HTTP: property tests run thousands of histories through the real
//! engine this way. Answers go through the same conversions and error
//! sorting as the HTTP clients, and every call passes the emulators' gates
//! (counters, faults).

use std::sync::Arc;

use async_trait::async_trait;
use http::StatusCode;
use serde_json::{Value, json};

use hitosync_core::model::{CalendarEvent, Interview};
use hitosync_engine::{CalendarApi, HitolinkApi};
use hitosync_google::client::{api_attendees, api_time, event_from_api};
use hitosync_google::{EventPage, GoogleError, NewEvent, SendUpdates};
use hitosync_hitolink::{ApplicationInfo, ChangePage, DeclineBy, HitolinkError, NewInterview};

use super::google::{ApiError as GApiError, GoogleEmulator, ListQuery, Principal};
use super::hitolink::{ApiError as HApiError, HitolinkEmulator};

pub struct InProcessGoogle {
    pub emu: Arc<GoogleEmulator>,
    token: String,
    calendar_id: String,
    page_size: i64,
}

impl InProcessGoogle {
    pub fn new(emu: Arc<GoogleEmulator>, organizer: &str) -> InProcessGoogle {
        let token = emu.issue_token(organizer);
        InProcessGoogle {
            emu,
            token,
            calendar_id: "primary".into(),
            page_size: 250,
        }
    }

    /// Smaller pages make short tests page too.
    pub fn with_page_size(mut self, n: i64) -> InProcessGoogle {
        self.page_size = n;
        self
    }

    fn begin(&self, call: &str) -> Result<Principal, GoogleError> {
        self.emu
            .begin(call, Some(&self.token))
            .map(|(p, _latency)| p)
            .map_err(|e| g_err(e, ""))
    }
}

fn g_err(e: GApiError, id: &str) -> GoogleError {
    let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    GoogleError::from_response(
        status,
        e.body.to_string().as_bytes(),
        id,
        e.retry_after.map(std::time::Duration::from_secs),
    )
}

fn to_event(v: Value) -> Result<CalendarEvent, GoogleError> {
    let ev = serde_json::from_value(v).map_err(|e| GoogleError::Protocol(e.to_string()))?;
    event_from_api(ev)
}

#[async_trait]
impl CalendarApi for InProcessGoogle {
    async fn list_page(
        &self,
        sync_token: Option<&str>,
        page_token: Option<&str>,
    ) -> Result<EventPage, GoogleError> {
        let who = self.begin("events.list")?;
        let q = ListQuery {
            sync_token: sync_token.map(str::to_string),
            page_token: page_token.map(str::to_string),
            show_deleted: Some(true),
            max_results: Some(self.page_size),
            ..Default::default()
        };
        let v = self
            .emu
            .list(&who, &self.calendar_id, &q)
            .map_err(|e| g_err(e, ""))?;
        let events = v["items"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .map(to_event)
            .collect::<Result<_, _>>()?;
        Ok(EventPage {
            unreadable: vec![],
            events,
            next_page_token: v["nextPageToken"].as_str().map(str::to_string),
            next_sync_token: v["nextSyncToken"].as_str().map(str::to_string),
        })
    }

    async fn get(&self, id: &str) -> Result<CalendarEvent, GoogleError> {
        let who = self.begin("events.get")?;
        to_event(
            self.emu
                .get(&who, &self.calendar_id, id)
                .map_err(|e| g_err(e, id))?,
        )
    }

    async fn insert(
        &self,
        new: &NewEvent,
        send: SendUpdates,
    ) -> Result<CalendarEvent, GoogleError> {
        let who = self.begin("events.insert")?;
        let body = json!({
            "id": new.id,
            "summary": new.summary,
            "description": new.description,
            "location": new.location,
            "start": api_time(new.slot.start, &new.time_zone),
            "end": api_time(new.slot.end, &new.time_zone),
            "attendees": api_attendees(&new.attendees),
            "extendedProperties": {"private": new.private_properties},
        });
        let mut body = body;
        if let Some(o) = body.as_object_mut() {
            o.retain(|_, v| !v.is_null());
        }
        let send = if send == SendUpdates::All {
            "all"
        } else {
            "none"
        };
        to_event(
            self.emu
                .insert(&who, &self.calendar_id, body, Some(send))
                .map_err(|e| g_err(e, &new.id))?,
        )
    }

    async fn patch(
        &self,
        id: &str,
        body: &Value,
        if_match: Option<&str>,
        send: SendUpdates,
    ) -> Result<CalendarEvent, GoogleError> {
        let who = self.begin("events.patch")?;
        let send = if send == SendUpdates::All {
            "all"
        } else {
            "none"
        };
        to_event(
            self.emu
                .patch(
                    &who,
                    &self.calendar_id,
                    id,
                    body.clone(),
                    if_match,
                    Some(send),
                )
                .map_err(|e| g_err(e, id))?,
        )
    }
}

pub struct InProcessHitolink {
    pub emu: Arc<HitolinkEmulator>,
    token: String,
}

impl InProcessHitolink {
    pub fn new(emu: Arc<HitolinkEmulator>, token: &str) -> InProcessHitolink {
        InProcessHitolink {
            emu,
            token: token.to_string(),
        }
    }

    fn begin(&self, call: &str) -> Result<(), HitolinkError> {
        self.emu
            .begin(call, Some(&self.token))
            .map(|_| ())
            .map_err(|e| h_err(e, call))
    }
}

fn h_err(e: HApiError, what: &str) -> HitolinkError {
    let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    HitolinkError::from_parts(
        status,
        &e.body,
        what,
        e.retry_after.map(std::time::Duration::from_secs),
    )
}

fn to_interview(v: &Value) -> Result<Interview, HitolinkError> {
    Ok(Interview::from_json(v)?)
}

#[async_trait]
impl HitolinkApi for InProcessHitolink {
    async fn changes(&self, cursor: Option<&str>, limit: u32) -> Result<ChangePage, HitolinkError> {
        self.begin("changes")?;
        let a = self
            .emu
            .changes(cursor, Some(&limit.to_string()))
            .map_err(|e| h_err(e, "the change feed"))?;
        Ok(ChangePage {
            unreadable: vec![],
            items: a.body["items"]
                .as_array()
                .map(|items| items.iter().map(Interview::from_json).collect())
                .unwrap_or_default(),
            next_cursor: a.body["next_cursor"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            has_more: a.body["has_more"].as_bool().unwrap_or(false),
        })
    }

    async fn get(&self, id: &str) -> Result<Interview, HitolinkError> {
        self.begin("get")?;
        to_interview(&self.emu.get(id).map_err(|e| h_err(e, id))?.body)
    }

    async fn create(
        &self,
        new: &NewInterview,
        idempotency_key: &str,
    ) -> Result<Interview, HitolinkError> {
        self.begin("create")?;
        let body = new.to_json();
        let what = format!("booking {idempotency_key}");
        to_interview(
            &self
                .emu
                .create(Some(idempotency_key), &body)
                .map_err(|e| h_err(e, &what))?
                .body,
        )
    }

    async fn patch(
        &self,
        id: &str,
        fields: &Value,
        version: u64,
    ) -> Result<Interview, HitolinkError> {
        self.begin("patch")?;
        to_interview(
            &self
                .emu
                .patch(id, Some(&version.to_string()), fields)
                .map_err(|e| h_err(e, id))?
                .body,
        )
    }

    async fn decline(
        &self,
        id: &str,
        by: &DeclineBy,
        reason: Option<&str>,
        version: u64,
        idempotency_key: &str,
    ) -> Result<Interview, HitolinkError> {
        self.begin("decline")?;
        let mut body = match by {
            DeclineBy::Candidate => json!({"by": "candidate"}),
            DeclineBy::Interviewer { interviewer_id } => {
                json!({"by": "interviewer", "interviewer_id": interviewer_id})
            }
        };
        if let Some(r) = reason {
            body["reason"] = json!(r);
        }
        to_interview(
            &self
                .emu
                .decline(id, Some(&version.to_string()), Some(idempotency_key), &body)
                .map_err(|e| h_err(e, id))?
                .body,
        )
    }

    async fn application(&self, id: &str) -> Result<ApplicationInfo, HitolinkError> {
        self.begin("application")?;
        let a = self
            .emu
            .application(id)
            .map_err(|e| h_err(e, &format!("application {id}")))?;
        serde_json::from_value(a.body).map_err(|e| HitolinkError::Protocol(e.to_string()))
    }
}
