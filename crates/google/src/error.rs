//! What the Calendar API can answer besides success, sorted by what the
//! caller must do about it.

use std::time::Duration;

use http::StatusCode;

use hitosync_net::disposition::{Disposed, Disposition};
use hitosync_net::redact;
use hitosync_net::retry::Interrupted;

use super::auth::AuthError;

#[derive(Debug, Clone, thiserror::Error)]
pub enum GoogleError {
    /// `410` on a list with a sync token: the token is no longer valid and
    /// the caller must list everything again (and diff against its store).
    #[error("the calendar's sync token expired (410 fullSyncRequired); a full resync is needed")]
    FullSyncRequired,
    /// `410` on a write: the event was deleted for good.
    #[error("event {id} has been deleted (410)")]
    Gone { id: String },
    /// `409` on an insert: an event with this ID exists (maybe cancelled).
    #[error("event {id} already exists (409)")]
    Duplicate { id: String },
    /// `412`: the event changed since the ETag the write was based on.
    #[error("event {id} changed since it was read (412); read it again and decide again")]
    PreconditionFailed { id: String },
    #[error("event {id} not found (404)")]
    NotFound { id: String },
    /// Still rate limited after every retry.
    #[error("Google's rate limit was hit ({reason}) and retries ran out; the next cycle goes on")]
    RateLimited {
        reason: String,
        retry_after: Option<Duration>,
    },
    /// `Retry-After` longer than `google.max_retry_after_secs`: not waited for.
    #[error(
        "the Google Calendar API asked to wait {asked_secs} s before the next request (Retry-After), more than google.max_retry_after_secs = {cap_secs} s; not waiting: the cycle fails and is tried again later"
    )]
    RetryAfterTooLong { asked_secs: u64, cap_secs: u64 },
    /// The cancellation token fired (shutdown or the cycle's deadline).
    #[error("stopped while waiting for the Google Calendar API")]
    Stopped,
    /// One call ran out of its time, retries included.
    #[error(
        "the Google Calendar API did not answer usefully within {spent_secs} s ({attempts} attempts); last: {last}"
    )]
    OutOfTime {
        spent_secs: u64,
        attempts: u32,
        last: String,
    },
    /// An answer over the body cap; reading stopped there.
    #[error("the Google Calendar API's answer is too big: {detail}")]
    TooLarge { detail: String },
    /// `404` for the calendar itself.
    #[error(
        "google.calendar_id = {calendar_id:?} is not a calendar the organizer can use (404 notFound): set it to \"primary\" (google.organizer_email's own calendar, setup guide 1-⑤ 予約元ユーザメールアドレスへの権限設定), or share that calendar with the organizer with \"Make changes to events\""
    )]
    CalendarNotFound { calendar_id: String },
    /// 5xx, timeouts, broken connections, after every retry.
    #[error("Google Calendar API failed: {0}")]
    Transient(String),
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error(
        "the Google Calendar API is not enabled for the service account's project (403 accessNotConfigured): enable \"Google Calendar API\" in the Cloud console (setup guide 1-② API有効化). Google said: {message}"
    )]
    ApiDisabled { message: String },
    #[error(
        "Google refused access to the calendar ({status} {reason}): {message} (check google.calendar_id: it must be a calendar google.organizer_email can write, \"primary\" or one shared with \"Make changes to events\"; setup guide 1-⑤ 予約元ユーザメールアドレスへの権限設定)"
    )]
    Forbidden {
        status: u16,
        reason: String,
        message: String,
    },
    #[error("Google rejected the request ({status} {reason}): {message}")]
    Rejected {
        status: u16,
        reason: String,
        message: String,
    },
    #[error("unexpected answer from the Calendar API: {0}")]
    Protocol(String),
    /// `403 quotaExceeded` in the `usageLimits` domain: the organizer sent
    /// more invitations than Google allows in a day. Writes that mail
    /// attendees wait; the rest goes on.
    #[error(
        "Google's calendar usage limits were hit (403 quotaExceeded): {message}; writes that notify attendees wait, the rest goes on"
    )]
    InvitationLimit { message: String },
}

impl hitosync_net::retry::Retryable for GoogleError {
    fn is_retryable(&self) -> bool {
        GoogleError::is_retryable(self)
    }
    fn is_rate_limit(&self) -> bool {
        matches!(self, GoogleError::RateLimited { .. })
    }
    fn retry_after(&self) -> Option<Duration> {
        match self {
            GoogleError::RateLimited { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
    fn interrupted(why: Interrupted) -> Self {
        match why {
            Interrupted::Stopped => GoogleError::Stopped,
            Interrupted::RetryAfterTooLong { asked, cap } => GoogleError::RetryAfterTooLong {
                asked_secs: asked.as_secs(),
                cap_secs: cap.as_secs(),
            },
            Interrupted::OutOfTime {
                spent,
                attempts,
                last,
            } => GoogleError::OutOfTime {
                spent_secs: spent.as_secs(),
                attempts,
                last,
            },
        }
    }
}

impl Disposed for GoogleError {
    fn disposition(&self) -> Disposition {
        match self {
            GoogleError::Duplicate { .. } | GoogleError::PreconditionFailed { .. } => {
                Disposition::ReadAgain
            }
            GoogleError::Gone { .. } | GoogleError::NotFound { .. } => Disposition::Gone,
            GoogleError::RateLimited { .. } | GoogleError::Transient(_) => Disposition::RetryLater,
            // What Google will not take as sent, and an answer that does
            // not parse, concern the one event: it waits for a change.
            GoogleError::Rejected { .. } | GoogleError::Protocol(_) => Disposition::Rejected,
            GoogleError::InvitationLimit { .. } => Disposition::HoldNotifications,
            GoogleError::FullSyncRequired => Disposition::StartOver,
            GoogleError::RetryAfterTooLong { .. }
            | GoogleError::OutOfTime { .. }
            | GoogleError::TooLarge { .. }
            | GoogleError::CalendarNotFound { .. }
            | GoogleError::Auth(_)
            | GoogleError::ApiDisabled { .. }
            | GoogleError::Forbidden { .. } => Disposition::EndCycle,
            GoogleError::Stopped => Disposition::Stopped,
        }
    }
}

impl GoogleError {
    /// Worth another try after a pause.
    pub fn is_retryable(&self) -> bool {
        self.disposition() == Disposition::RetryLater
    }

    /// Sorts an error answer by status and Google's `reason` word.
    pub fn from_response(
        status: StatusCode,
        body: &[u8],
        id: &str,
        retry_after: Option<Duration>,
    ) -> GoogleError {
        let json: Option<serde_json::Value> = serde_json::from_slice(body).ok();
        let err = json.as_ref().and_then(|v| v.get("error"));
        let message = err
            .and_then(|e| e.get("message"))
            .and_then(|m| m.as_str())
            .unwrap_or_else(|| status.canonical_reason().unwrap_or(""))
            .to_string();
        let reason = err
            .and_then(|e| e.get("errors"))
            .and_then(|e| e.get(0))
            .and_then(|e| e.get("reason"))
            .and_then(|r| r.as_str())
            .unwrap_or("")
            .to_string();
        let id = id.to_string();
        match status.as_u16() {
            410 if reason == "fullSyncRequired" || id.is_empty() => GoogleError::FullSyncRequired,
            410 => GoogleError::Gone { id },
            409 => GoogleError::Duplicate { id },
            412 => GoogleError::PreconditionFailed { id },
            404 => GoogleError::NotFound { id },
            429 => GoogleError::RateLimited {
                reason: if reason.is_empty() {
                    "rateLimitExceeded".into()
                } else {
                    reason
                },
                retry_after,
            },
            // Calendar usage limits (Google's "Calendar usage limits"
            // page): a cap on what one user may do in a day, invitations to
            // external guests above all. It lasts hours; retrying in a
            // loop only prolongs it.
            403 if reason == "quotaExceeded"
                && (err
                    .and_then(|e| e.get("errors"))
                    .and_then(|e| e.get(0))
                    .and_then(|e| e.get("domain"))
                    .and_then(|d| d.as_str())
                    == Some("usageLimits")
                    || message.contains("usage limits")) =>
            {
                GoogleError::InvitationLimit { message }
            }
            403 if matches!(
                reason.as_str(),
                "rateLimitExceeded" | "userRateLimitExceeded" | "quotaExceeded"
            ) =>
            {
                GoogleError::RateLimited {
                    reason,
                    retry_after,
                }
            }
            403 if reason == "accessNotConfigured" || message.contains("has not been used") => {
                GoogleError::ApiDisabled { message }
            }
            401 | 403 => GoogleError::Forbidden {
                status: status.as_u16(),
                reason,
                message,
            },
            s if s >= 500 => GoogleError::Transient(format!("{status}: {message}")),
            s => GoogleError::Rejected {
                status: s,
                reason,
                message,
            },
        }
    }

    /// The same error with `secrets` (and anything shaped like a
    /// credential) removed from the server's words it carries.
    pub fn scrubbed(self, secrets: &[&str]) -> GoogleError {
        let s = |m: String| redact::scrub(&m, secrets);
        match self {
            GoogleError::Transient(m) => GoogleError::Transient(s(m)),
            GoogleError::ApiDisabled { message } => GoogleError::ApiDisabled {
                message: s(message),
            },
            GoogleError::Forbidden {
                status,
                reason,
                message,
            } => GoogleError::Forbidden {
                status,
                reason: s(reason),
                message: s(message),
            },
            GoogleError::Rejected {
                status,
                reason,
                message,
            } => GoogleError::Rejected {
                status,
                reason: s(reason),
                message: s(message),
            },
            GoogleError::RateLimited {
                reason,
                retry_after,
            } => GoogleError::RateLimited {
                reason: s(reason),
                retry_after,
            },
            GoogleError::Protocol(m) => GoogleError::Protocol(s(m)),
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn google_body(code: u16, reason: &str, message: &str) -> Vec<u8> {
        serde_json::json!({"error": {"code": code, "message": message,
            "errors": [{"domain": "global", "reason": reason, "message": message}]}})
        .to_string()
        .into_bytes()
    }

    #[test]
    fn sorts_by_status_and_reason() {
        let s = |c| StatusCode::from_u16(c).unwrap();
        assert!(matches!(
            GoogleError::from_response(
                s(410),
                &google_body(410, "fullSyncRequired", "x"),
                "",
                None
            ),
            GoogleError::FullSyncRequired
        ));
        assert!(matches!(
            GoogleError::from_response(s(410), &google_body(410, "deleted", "x"), "ev1", None),
            GoogleError::Gone { .. }
        ));
        assert!(matches!(
            GoogleError::from_response(
                s(403),
                &google_body(403, "rateLimitExceeded", "x"),
                "",
                None
            ),
            GoogleError::RateLimited { .. }
        ));
        assert!(matches!(
            GoogleError::from_response(
                s(403),
                &google_body(403, "accessNotConfigured", "x"),
                "",
                None
            ),
            GoogleError::ApiDisabled { .. }
        ));
        assert!(matches!(
            GoogleError::from_response(s(403), &google_body(403, "forbidden", "x"), "", None),
            GoogleError::Forbidden { .. }
        ));
        assert!(GoogleError::from_response(s(503), b"", "", None).is_retryable());
        let usage = serde_json::to_vec(&serde_json::json!({"error": {
            "errors": [{"domain": "usageLimits", "reason": "quotaExceeded", "message": "Calendar usage limits exceeded."}],
            "code": 403, "message": "Calendar usage limits exceeded."}}))
        .unwrap();
        let e = GoogleError::from_response(s(403), &usage, "x", None);
        assert!(matches!(e, GoogleError::InvitationLimit { .. }), "{e:?}");
        assert!(!e.is_retryable(), "a day's limit is not retried in a loop");
        assert!(GoogleError::from_response(s(429), b"", "", None).is_retryable());
        assert!(!GoogleError::from_response(s(412), b"", "e", None).is_retryable());
    }

    #[test]
    fn an_echoed_header_is_not_repeated() {
        let body = google_body(
            400,
            "badRequest",
            "Invalid header: Authorization: Bearer ya29.secret-access-token",
        );
        let e = GoogleError::from_response(StatusCode::BAD_REQUEST, &body, "", None)
            .scrubbed(&["ya29.secret-access-token"]);
        let text = e.to_string();
        assert!(!text.contains("secret-access-token"), "{text}");
        assert!(text.contains("Invalid header"), "{text}");
    }
}
