//! The documented writes: a booking (`POST /v1/interviews`), a PATCH with
//! `If-Match`, a decline; and the field rules a recruiter's edits share.
//!
//! Each write is applied whole or not at all, then passes the after-apply
//! fault hook (`State::after_apply`): the record may have changed although
//! the client gets an error or a closed connection.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use hitosync_core::model::{DeclineRecord, InterviewRecord, InterviewerRecord};

use super::state::{
    Answer, ApiError, HitolinkEmulator, RESPONSES, User, instant, now_jst, ok, to_json, to_jst,
};

impl HitolinkEmulator {
    /// `POST /v1/interviews`: a booking made in the calendar.
    pub fn create(&self, idempotency_key: Option<&str>, body: &Value) -> Result<Answer, ApiError> {
        let mut st = self.state.lock();
        let key = required_key(idempotency_key)?;
        if let Some(first) = st.idempotency.get(&("create".into(), key.to_string())) {
            let replay = Answer {
                status: 200,
                body: first.body.clone(),
            };
            return st.after_apply("create", replay);
        }
        let obj = body
            .as_object()
            .ok_or_else(|| ApiError::invalid("the body must be a JSON object"))?;
        const FIELDS: &[&str] = &[
            "application_id",
            "selection_step_id",
            "start",
            "end",
            "time_zone",
            "interviewers",
            "external_event_id",
            "location",
            "video_conferencing_url",
        ];
        if let Some(k) = obj.keys().find(|k| !FIELDS.contains(&k.as_str())) {
            return Err(ApiError::invalid(format!("unknown field {k}")));
        }
        let text = |k: &str| obj.get(k).and_then(|v| v.as_str()).map(str::to_string);
        let app_id = text("application_id")
            .ok_or_else(|| ApiError::invalid("application_id is required"))?;
        let app = st
            .applications
            .get(&app_id)
            .cloned()
            .ok_or_else(|| ApiError::not_found("application"))?;
        let step = match obj.get("selection_step_id") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(
                st.steps
                    .get(s)
                    .cloned()
                    .ok_or_else(|| ApiError::invalid(format!("unknown selection_step_id {s}")))?,
            ),
            Some(_) => return Err(ApiError::invalid("selection_step_id must be a string")),
        };
        let start = to_jst(
            "start",
            &text("start").ok_or_else(|| ApiError::invalid("start is required"))?,
        )?;
        let end = to_jst(
            "end",
            &text("end").ok_or_else(|| ApiError::invalid("end is required"))?,
        )?;
        if instant(&end) <= instant(&start) {
            return Err(ApiError::invalid("end must be after start"));
        }
        let time_zone = text("time_zone").unwrap_or_else(|| "Asia/Tokyo".into());
        if time_zone.parse::<chrono_tz::Tz>().is_err() {
            return Err(ApiError::invalid(format!("unknown time_zone {time_zone}")));
        }
        let mut interviewers = vec![];
        for e in obj
            .get("interviewers")
            .and_then(|v| v.as_array())
            .cloned()
            .unwrap_or_default()
        {
            let email = e
                .as_str()
                .ok_or_else(|| ApiError::invalid("interviewers must be emails"))?;
            let u = st
                .users
                .get(&email.to_ascii_lowercase())
                .ok_or_else(|| ApiError::invalid(format!("unknown interviewer {email}")))?;
            interviewers.push(InterviewerRecord {
                id: u.id.clone(),
                name: u.name.clone(),
                email: u.email.clone(),
                response_status: "needs_action".into(),
            });
        }
        let url = text("video_conferencing_url");
        let now = now_jst();
        let id = format!("iv_{:06}", st.next_id);
        st.next_id += 1;
        let record = InterviewRecord {
            id,
            version: 1,
            application_id: app.id.clone(),
            candidate: app.candidate.clone(),
            job: app.job.clone(),
            selection_step: step,
            status: "scheduled".into(),
            start: Some(start),
            end: Some(end),
            time_zone,
            format: if url.is_some() {
                "online".into()
            } else {
                "in_person".into()
            },
            location: text("location"),
            video_conferencing_url: url,
            interviewers,
            candidate_response: "needs_action".into(),
            decline: None,
            external_event_id: text("external_event_id"),
            created_at: now.clone(),
            updated_at: now,
            deleted_at: None,
        };
        let body = to_json(&record);
        st.store(record);
        st.idempotency.insert(
            ("create".into(), key.to_string()),
            Answer {
                status: 201,
                body: body.clone(),
            },
        );
        st.after_apply("create", Answer { status: 201, body })
    }

    /// `PATCH /v1/interviews/{id}` with `If-Match: <version>`.
    pub fn patch(
        &self,
        id: &str,
        if_match: Option<&str>,
        body: &Value,
    ) -> Result<Answer, ApiError> {
        let mut st = self.state.lock();
        let current = st.live(id)?.clone();
        check_version(&current, if_match)?;
        let next = apply_patch(&current, body, &st.users, false)?;
        let answer = ok(st.commit(current, next));
        st.after_apply("patch", answer)
    }

    /// `POST /v1/interviews/{id}/decline`.
    pub fn decline(
        &self,
        id: &str,
        if_match: Option<&str>,
        idempotency_key: Option<&str>,
        body: &Value,
    ) -> Result<Answer, ApiError> {
        let mut st = self.state.lock();
        let key = required_key(idempotency_key)?;
        let scope = (format!("decline:{id}"), key.to_string());
        if let Some(first) = st.idempotency.get(&scope) {
            let replay = first.clone();
            return st.after_apply("decline", replay);
        }
        let current = st.live(id)?.clone();
        check_version(&current, if_match)?;
        let next = apply_decline(&current, body)?;
        let answer = ok(st.commit(current, next));
        st.idempotency.insert(scope, answer.clone());
        st.after_apply("decline", answer)
    }
}

/// Writes that must not happen twice carry an `Idempotency-Key`.
pub(super) fn required_key(key: Option<&str>) -> Result<&str, ApiError> {
    key.filter(|k| !k.trim().is_empty()).ok_or_else(|| {
        ApiError::new(
            400,
            "idempotency_key_required",
            "Idempotency-Key header is required",
        )
    })
}

pub(super) fn check_version(
    current: &InterviewRecord,
    if_match: Option<&str>,
) -> Result<(), ApiError> {
    let Some(tag) = if_match else {
        return Err(ApiError::new(
            428,
            "precondition_required",
            "If-Match with the record's version is required",
        ));
    };
    let tag = tag.trim().trim_matches('"');
    if tag.parse::<u64>().ok() != Some(current.version) {
        let mut e = ApiError::new(
            412,
            "precondition_failed",
            "the record changed since that version",
        );
        e.body["current"] = to_json(current);
        return Err(e);
    }
    Ok(())
}

/// Applies the writable fields of a PATCH. `admin` lifts the API's limits
/// (a recruiter in the UI may set any status, the interviewers, the format).
pub(super) fn apply_patch(
    current: &InterviewRecord,
    body: &Value,
    users: &BTreeMap<String, User>,
    admin: bool,
) -> Result<InterviewRecord, ApiError> {
    let obj: &Map<String, Value> = body
        .as_object()
        .ok_or_else(|| ApiError::invalid("the body must be a JSON object"))?;
    const API_FIELDS: &[&str] = &[
        "start",
        "end",
        "location",
        "video_conferencing_url",
        "external_event_id",
        "status",
        "interviewers",
    ];
    const ADMIN_FIELDS: &[&str] = &[
        "format",
        "candidate_response",
        "selection_step",
        "time_zone",
    ];
    let mut r = current.clone();
    for (k, v) in obj {
        let opt_text = || -> Result<Option<String>, ApiError> {
            match v {
                Value::Null => Ok(None),
                Value::String(s) => Ok(Some(s.clone())),
                _ => Err(ApiError::invalid(format!("{k} must be a string or null"))),
            }
        };
        match k.as_str() {
            "start" => r.start = opt_text()?.map(|t| to_jst("start", &t)).transpose()?,
            "end" => r.end = opt_text()?.map(|t| to_jst("end", &t)).transpose()?,
            "location" => r.location = opt_text()?,
            "video_conferencing_url" => r.video_conferencing_url = opt_text()?,
            "external_event_id" => r.external_event_id = opt_text()?,
            "status" => {
                let s = opt_text()?.ok_or_else(|| ApiError::invalid("status cannot be null"))?;
                let allowed: &[&str] = if admin {
                    &[
                        "needs_scheduling",
                        "scheduled",
                        "candidate_declined",
                        "canceled",
                        "complete",
                    ]
                } else {
                    &["scheduled", "canceled"]
                };
                if !allowed.contains(&s.as_str()) {
                    return Err(ApiError::invalid(format!(
                        "unknown or read-only status {s}"
                    )));
                }
                r.status = s;
            }
            "interviewers" => {
                let list = v
                    .as_array()
                    .ok_or_else(|| ApiError::invalid("interviewers must be a list"))?;
                r.interviewers = patch_interviewers(&r.interviewers, list, users, admin)?;
            }
            "format" if admin => {
                let s = opt_text()?.unwrap_or_default();
                if !["online", "in_person", "phone"].contains(&s.as_str()) {
                    return Err(ApiError::invalid(format!("unknown format {s}")));
                }
                r.format = s;
            }
            "candidate_response" if admin => {
                let s = opt_text()?.unwrap_or_default();
                if !RESPONSES.contains(&s.as_str()) {
                    return Err(ApiError::invalid(format!("unknown candidate_response {s}")));
                }
                r.candidate_response = s;
            }
            "time_zone" if admin => {
                let s = opt_text()?.unwrap_or_default();
                if s.parse::<chrono_tz::Tz>().is_err() {
                    return Err(ApiError::invalid(format!("unknown time_zone {s}")));
                }
                r.time_zone = s;
            }
            "selection_step" if admin => {
                r.selection_step = serde_json::from_value(v.clone())
                    .map_err(|_| ApiError::invalid("selection_step must be {id, name}"))?;
            }
            other if API_FIELDS.contains(&other) || ADMIN_FIELDS.contains(&other) => {
                return Err(ApiError::invalid(format!("{other} is read-only")));
            }
            other => return Err(ApiError::invalid(format!("unknown field {other}"))),
        }
    }
    match (&r.start, &r.end) {
        (Some(s), Some(e)) => {
            if instant(e) <= instant(s) {
                return Err(ApiError::invalid("end must be after start"));
            }
            if r.status == "needs_scheduling" {
                r.status = "scheduled".into();
            }
        }
        (None, None) => {
            if r.status != "needs_scheduling"
                && (obj.contains_key("start") || obj.contains_key("end"))
            {
                return Err(ApiError::invalid(
                    "start and end may be cleared only with status needs_scheduling",
                ));
            }
            if r.status == "scheduled" {
                return Err(ApiError::invalid(
                    "a scheduled interview needs start and end",
                ));
            }
        }
        _ => return Err(ApiError::invalid("start and end are set together")),
    }
    Ok(r)
}

/// `interviewers[]` in a PATCH: the API changes the answers of the listed
/// interviewers (by `id` or `email`); a recruiter may also replace the list.
pub(super) fn patch_interviewers(
    current: &[InterviewerRecord],
    list: &[Value],
    users: &BTreeMap<String, User>,
    admin: bool,
) -> Result<Vec<InterviewerRecord>, ApiError> {
    let replace = admin && list.iter().all(|v| v.is_string());
    if replace {
        let mut out = vec![];
        for v in list {
            let email = v.as_str().unwrap_or_default();
            let u = users
                .get(&email.to_ascii_lowercase())
                .ok_or_else(|| ApiError::invalid(format!("unknown interviewer {email}")))?;
            let response = current
                .iter()
                .find(|i| i.id == u.id)
                .map(|i| i.response_status.clone())
                .unwrap_or_else(|| "needs_action".into());
            out.push(InterviewerRecord {
                id: u.id.clone(),
                name: u.name.clone(),
                email: u.email.clone(),
                response_status: response,
            });
        }
        return Ok(out);
    }
    let mut out = current.to_vec();
    for v in list {
        let id = v.get("id").and_then(|x| x.as_str());
        let email = v.get("email").and_then(|x| x.as_str());
        let status = v
            .get("response_status")
            .and_then(|x| x.as_str())
            .ok_or_else(|| ApiError::invalid("interviewers[].response_status is required"))?;
        if !RESPONSES.contains(&status) {
            return Err(ApiError::invalid(format!(
                "unknown response_status {status}"
            )));
        }
        let target = out
            .iter_mut()
            .find(|i| {
                Some(i.id.as_str()) == id || email.is_some_and(|e| e.eq_ignore_ascii_case(&i.email))
            })
            .ok_or_else(|| ApiError::invalid("unknown interviewer"))?;
        target.response_status = status.to_string();
    }
    Ok(out)
}

pub(super) fn apply_decline(
    current: &InterviewRecord,
    body: &Value,
) -> Result<InterviewRecord, ApiError> {
    let by = body
        .get("by")
        .and_then(|v| v.as_str())
        .ok_or_else(|| ApiError::invalid("by is required"))?;
    let reason = body
        .get("reason")
        .and_then(|v| v.as_str())
        .map(str::to_string);
    let mut r = current.clone();
    match by {
        "candidate" => {
            r.status = "candidate_declined".into();
            r.candidate_response = "declined".into();
            r.decline = Some(DeclineRecord {
                by: "candidate".into(),
                interviewer_id: None,
                reason,
                declined_at: now_jst(),
            });
        }
        "interviewer" => {
            let iid = body
                .get("interviewer_id")
                .and_then(|v| v.as_str())
                .ok_or_else(|| {
                    ApiError::invalid("interviewer_id is required when by is interviewer")
                })?;
            let i = r
                .interviewers
                .iter_mut()
                .find(|i| i.id == iid)
                .ok_or_else(|| ApiError::invalid(format!("unknown interviewer {iid}")))?;
            if i.response_status == "declined" {
                return Ok(r);
            }
            i.response_status = "declined".into();
            r.decline = Some(DeclineRecord {
                by: "interviewer".into(),
                interviewer_id: Some(iid.to_string()),
                reason,
                declined_at: now_jst(),
            });
        }
        other => return Err(ApiError::invalid(format!("unknown by {other}"))),
    }
    Ok(r)
}
