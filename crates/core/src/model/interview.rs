//! HITO-Link's interview, twice: [`InterviewRecord`] mirrors the wire
//! format leniently, and [`Interview`] is the typed form that only
//! validation makes. The two live together because each check in
//! `Interview::validate` answers for one field of the record.

use chrono::{DateTime, FixedOffset, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use std::fmt;

use super::{Response, Slot};
use crate::ids::{EventId, InterviewId};
use crate::policy::is_email;

// ---------------------------------------------------------------------------
// HITO-Link wire format (HITOLINK-API.md, "The interview record")
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Person {
    pub id: String,
    pub display_name: String,
    #[serde(default)]
    pub email: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Named {
    pub id: String,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InterviewerRecord {
    pub id: String,
    pub name: String,
    pub email: String,
    pub response_status: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeclineRecord {
    pub by: String,
    #[serde(default)]
    pub interviewer_id: Option<String>,
    #[serde(default)]
    pub reason: Option<String>,
    pub declined_at: String,
}

/// One interview exactly as the API sends it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InterviewRecord {
    pub id: String,
    pub version: u64,
    pub application_id: String,
    pub candidate: Person,
    pub job: Named,
    #[serde(default)]
    pub selection_step: Option<Named>,
    pub status: String,
    pub start: Option<String>,
    pub end: Option<String>,
    pub time_zone: String,
    pub format: String,
    pub location: Option<String>,
    pub video_conferencing_url: Option<String>,
    pub interviewers: Vec<InterviewerRecord>,
    pub candidate_response: String,
    pub decline: Option<DeclineRecord>,
    pub external_event_id: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    pub deleted_at: Option<String>,
}

// ---------------------------------------------------------------------------
// Canonical, validated form
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InterviewStatus {
    NeedsScheduling,
    Scheduled,
    CandidateDeclined,
    Canceled,
    Complete,
}

impl InterviewStatus {
    pub fn parse(s: &str) -> Option<InterviewStatus> {
        Some(match s {
            "needs_scheduling" => InterviewStatus::NeedsScheduling,
            "scheduled" => InterviewStatus::Scheduled,
            "candidate_declined" => InterviewStatus::CandidateDeclined,
            "canceled" => InterviewStatus::Canceled,
            "complete" => InterviewStatus::Complete,
            _ => return None,
        })
    }
    pub fn as_str(self) -> &'static str {
        match self {
            InterviewStatus::NeedsScheduling => "needs_scheduling",
            InterviewStatus::Scheduled => "scheduled",
            InterviewStatus::CandidateDeclined => "candidate_declined",
            InterviewStatus::Canceled => "canceled",
            InterviewStatus::Complete => "complete",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    Online,
    InPerson,
    Phone,
}

impl Format {
    pub fn parse(s: &str) -> Option<Format> {
        Some(match s {
            "online" => Format::Online,
            "in_person" => Format::InPerson,
            "phone" => Format::Phone,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Interviewer {
    pub id: String,
    pub name: String,
    pub email: String,
    pub response: Response,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeclinedBy {
    Candidate,
    Interviewer,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decline {
    pub by: DeclinedBy,
    pub interviewer_id: Option<String>,
    pub reason: Option<String>,
    pub declined_at: DateTime<Utc>,
}

/// A validated interview.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Interview {
    pub id: InterviewId,
    pub version: u64,
    pub application_id: String,
    pub candidate: Person,
    pub job: Named,
    pub selection_step: Option<Named>,
    pub status: InterviewStatus,
    pub slot: Option<Slot>,
    pub time_zone: Tz,
    pub format: Format,
    pub location: Option<String>,
    pub meeting_url: Option<String>,
    pub interviewers: Vec<Interviewer>,
    pub candidate_response: Response,
    pub decline: Option<Decline>,
    pub external_event_id: Option<EventId>,
    pub updated_at: DateTime<Utc>,
    pub deleted: bool,
}

/// A record hitosync cannot sync, and why. It is parked, not dropped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("interview {id}: cannot sync: {reason}")]
pub struct Unsyncable {
    /// The record's id (a placeholder when even that could not be read).
    pub id: InterviewId,
    pub reason: String,
}

fn parse_time(field: &str, value: &str) -> Result<DateTime<Utc>, String> {
    DateTime::<FixedOffset>::parse_from_rfc3339(value)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| format!("`{field}` is not an RFC 3339 time with an offset ({value:?}: {e})"))
}

impl Interview {
    /// Validates one wire record.
    pub fn from_record(r: &InterviewRecord) -> Result<Interview, Unsyncable> {
        Interview::validate(r).map_err(|reason| Unsyncable {
            id: InterviewId::new(r.id.clone()),
            reason,
        })
    }

    /// Validates a raw JSON item of the change feed, so that a record with a
    /// missing or mistyped field is reported on its own.
    pub fn from_json(value: &serde_json::Value) -> Result<Interview, Unsyncable> {
        let record: InterviewRecord =
            serde_json::from_value(value.clone()).map_err(|e| Unsyncable {
                id: value
                    .get("id")
                    .and_then(|v| v.as_str())
                    .unwrap_or("<no id>")
                    .into(),
                reason: format!("malformed record: {e}"),
            })?;
        Interview::from_record(&record)
    }

    fn validate(r: &InterviewRecord) -> Result<Interview, String> {
        if r.id.trim().is_empty() {
            return Err("empty `id`".into());
        }
        let status = InterviewStatus::parse(&r.status)
            .ok_or_else(|| format!("unknown `status` {:?}", r.status))?;
        let format =
            Format::parse(&r.format).ok_or_else(|| format!("unknown `format` {:?}", r.format))?;
        let time_zone: Tz = r.time_zone.parse().map_err(|_| {
            format!(
                "unknown `time_zone` {:?} (expected an IANA zone like Asia/Tokyo)",
                r.time_zone
            )
        })?;
        let slot = match (&r.start, &r.end) {
            (Some(s), Some(e)) => {
                let start = parse_time("start", s)?;
                let end = parse_time("end", e)?;
                if end <= start {
                    return Err(format!("`end` {e} is not after `start` {s}"));
                }
                Some(Slot { start, end })
            }
            (None, None) => None,
            _ => return Err("only one of `start` and `end` is set".into()),
        };
        // The API says only needs_scheduling lacks a time, but a record that
        // is off the calendar anyway (declined or canceled before it was
        // scheduled, or deleted) loses nothing by having none.
        let timeless_ok = matches!(
            status,
            InterviewStatus::NeedsScheduling
                | InterviewStatus::CandidateDeclined
                | InterviewStatus::Canceled
        ) || r.deleted_at.is_some();
        if slot.is_none() && !timeless_ok {
            return Err(format!(
                "`start`/`end` are null but `status` is {:?}, which needs a time",
                r.status
            ));
        }
        if let Some(email) = r.candidate.email.as_ref().filter(|e| !is_email(e)) {
            return Err(format!("candidate email {email:?} is not an address"));
        }
        let mut interviewers = Vec::with_capacity(r.interviewers.len());
        for i in &r.interviewers {
            if !is_email(&i.email) {
                return Err(format!(
                    "interviewer {} has no valid email ({:?})",
                    i.id, i.email
                ));
            }
            let response = Response::from_hitolink(&i.response_status).ok_or_else(|| {
                format!(
                    "interviewer {} has unknown `response_status` {:?}",
                    i.id, i.response_status
                )
            })?;
            interviewers.push(Interviewer {
                id: i.id.clone(),
                name: i.name.clone(),
                email: i.email.to_ascii_lowercase(),
                response,
            });
        }
        let candidate_response = Response::from_hitolink(&r.candidate_response)
            .ok_or_else(|| format!("unknown `candidate_response` {:?}", r.candidate_response))?;
        let decline = match &r.decline {
            None => None,
            Some(d) => Some(Decline {
                by: match d.by.as_str() {
                    "candidate" => DeclinedBy::Candidate,
                    "interviewer" => DeclinedBy::Interviewer,
                    other => return Err(format!("unknown `decline.by` {other:?}")),
                },
                interviewer_id: d.interviewer_id.clone(),
                reason: d.reason.clone(),
                declined_at: parse_time("decline.declined_at", &d.declined_at)?,
            }),
        };
        let updated_at = parse_time("updated_at", &r.updated_at)?;
        if let Some(d) = &r.deleted_at {
            parse_time("deleted_at", d)?;
        }
        Ok(Interview {
            id: InterviewId::new(r.id.clone()),
            version: r.version,
            application_id: r.application_id.clone(),
            candidate: r.candidate.clone(),
            job: r.job.clone(),
            selection_step: r.selection_step.clone(),
            status,
            slot,
            time_zone,
            format,
            location: r.location.clone().filter(|s| !s.trim().is_empty()),
            meeting_url: r
                .video_conferencing_url
                .clone()
                .filter(|s| !s.trim().is_empty()),
            interviewers,
            candidate_response,
            decline,
            external_event_id: r.external_event_id.clone().map(EventId::new),
            updated_at,
            deleted: r.deleted_at.is_some(),
        })
    }
}

impl fmt::Display for InterviewStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The example record of HITOLINK-API.md, verbatim.
    pub(crate) fn doc_example() -> serde_json::Value {
        json!({
          "id": "iv_000123",
          "version": 7,
          "application_id": "ap_456",
          "candidate": {"id": "cd_789", "display_name": "山田 太郎", "email": "taro@example.com"},
          "job": {"id": "jb_12", "name": "カスタマーサクセス"},
          "selection_step": {"id": "st_2", "name": "一次面接"},
          "status": "scheduled",
          "start": "2026-12-01T10:00:00+09:00",
          "end": "2026-12-01T11:00:00+09:00",
          "time_zone": "Asia/Tokyo",
          "format": "online",
          "location": null,
          "video_conferencing_url": "https://meet.example/abc",
          "interviewers": [
            {"id": "us_2", "name": "鈴木 一郎", "email": "suzuki@example.co.jp", "response_status": "needs_action"}
          ],
          "candidate_response": "needs_action",
          "decline": null,
          "external_event_id": null,
          "created_at": "2026-11-19T10:00:00+09:00",
          "updated_at": "2026-11-20T09:00:00+09:00",
          "deleted_at": null
        })
    }

    #[test]
    fn doc_example_round_trips_and_validates() {
        let v = doc_example();
        let record: InterviewRecord = serde_json::from_value(v.clone()).unwrap();
        assert_eq!(serde_json::to_value(&record).unwrap(), v);
        let iv = Interview::from_record(&record).unwrap();
        assert_eq!(iv.status, InterviewStatus::Scheduled);
        assert_eq!(iv.time_zone, chrono_tz::Asia::Tokyo);
        let slot = iv.slot.unwrap();
        assert_eq!(slot.start.to_rfc3339(), "2026-12-01T01:00:00+00:00");
        assert_eq!(iv.interviewers[0].response, Response::NeedsAction);
        assert_eq!(iv.meeting_url.as_deref(), Some("https://meet.example/abc"));
    }

    #[test]
    fn offsets_compare_as_instants() {
        let mut a = doc_example();
        a["start"] = json!("2026-12-01T01:00:00Z");
        a["end"] = json!("2026-12-01T11:00:00+09:00");
        let a = Interview::from_json(&a).unwrap();
        let b = Interview::from_json(&doc_example()).unwrap();
        assert_eq!(a.slot, b.slot);
    }

    fn reason(edit: impl FnOnce(&mut serde_json::Value)) -> String {
        let mut v = doc_example();
        edit(&mut v);
        let err = Interview::from_json(&v).unwrap_err();
        assert_eq!(err.id, "iv_000123");
        err.reason
    }

    #[test]
    fn every_kind_of_bad_record_is_named() {
        assert!(reason(|v| v["end"] = json!("2026-12-01T09:00:00+09:00")).contains("not after"));
        assert!(reason(|v| v["end"] = json!("2026-12-01T10:00:00+09:00")).contains("not after"));
        assert!(reason(|v| v["start"] = json!("tomorrow at ten")).contains("RFC 3339"));
        assert!(reason(|v| v["start"] = json!("2026-12-01T10:00:00")).contains("RFC 3339"));
        assert!(reason(|v| v["time_zone"] = json!("Tokyo/Japan")).contains("time_zone"));
        assert!(reason(|v| v["interviewers"][0]["email"] = json!("suzuki")).contains("email"));
        assert!(reason(|v| v["candidate"]["email"] = json!("taro at example")).contains("email"));
        assert!(reason(|v| v["status"] = json!("postponed")).contains("status"));
        assert!(reason(|v| v["format"] = json!("video")).contains("format"));
        assert!(
            reason(|v| v["interviewers"][0]["response_status"] = json!("maybe"))
                .contains("response_status")
        );
        assert!(reason(|v| v["candidate_response"] = json!("yes")).contains("candidate_response"));
        assert!(reason(|v| v["end"] = json!(null)).contains("only one"));
        assert!(
            reason(|v| {
                v["start"] = json!(null);
                v["end"] = json!(null);
            })
            .contains("needs a time")
        );
        assert!(reason(|v| v["version"] = json!("seven")).contains("malformed"));
        assert!(
            reason(|v| v["decline"] =
                json!({"by": "recruiter", "declined_at": "2026-11-20T09:00:00+09:00"}))
            .contains("decline.by")
        );
    }

    #[test]
    fn record_without_id_still_reports() {
        let err = Interview::from_json(&json!({"version": 1})).unwrap_err();
        assert_eq!(err.id, "<no id>");
        assert!(err.to_string().contains("cannot sync"));
    }

    #[test]
    fn needs_scheduling_may_have_no_time() {
        let mut v = doc_example();
        v["status"] = json!("needs_scheduling");
        v["start"] = json!(null);
        v["end"] = json!(null);
        let iv = Interview::from_json(&v).unwrap();
        assert!(iv.slot.is_none());
    }
}
