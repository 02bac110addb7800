//! What the HITO-Link API can answer besides success, sorted by what the
//! caller must do about it; server text scrubbed of the token.

use std::time::Duration;

use serde_json::Value;

use hitosync_core::model::{Interview, Unsyncable};
use hitosync_net::disposition::{Disposed, Disposition};
use hitosync_net::http as nethttp;
use hitosync_net::redact;
use hitosync_net::retry::Interrupted;

use crate::token::TokenError;

/// Why a client could not be built from the config.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error(transparent)]
    Token(#[from] TokenError),
    #[error("hitolink.base_url {url:?}: expected {expected}")]
    BaseUrl { url: String, expected: String },
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum HitolinkError {
    /// `410`: the cursor is unknown or expired; read the feed from the start.
    #[error("the HITO-Link change cursor expired (410); a full resync is needed")]
    CursorExpired,
    /// `412`: the record changed since the version the write was based on.
    #[error(
        "interview {id} changed since version it was read at (412); read it again and decide again"
    )]
    PreconditionFailed {
        id: String,
        current: Option<Box<Interview>>,
    },
    #[error("HITO-Link asked for If-Match on {id} (428)")]
    PreconditionRequired { id: String },
    /// `422`: the server does not accept the write; nothing changed.
    #[error("HITO-Link rejected the write to {what} (422): {message}")]
    Invalid { what: String, message: String },
    #[error("{what} not found in HITO-Link (404)")]
    NotFound { what: String },
    #[error(
        "HITO-Link refused the API token (401): check the token in hitolink.api_token_file with the HITO-Link administrator"
    )]
    Unauthorized,
    #[error("HITO-Link's rate limit was hit and retries ran out; the next cycle goes on")]
    RateLimited { retry_after: Option<Duration> },
    /// `Retry-After` longer than `hitolink.max_retry_after_secs`: not waited for.
    #[error(
        "HITO-Link asked to wait {asked_secs} s before the next request (Retry-After), more than hitolink.max_retry_after_secs = {cap_secs} s; not waiting: the cycle fails and is tried again later"
    )]
    RetryAfterTooLong { asked_secs: u64, cap_secs: u64 },
    /// The cancellation token fired (shutdown or the cycle's deadline).
    #[error("stopped while waiting for HITO-Link")]
    Stopped,
    /// One call ran out of its time, retries included.
    #[error(
        "HITO-Link did not answer usefully within {spent_secs} s ({attempts} attempts); last: {last}"
    )]
    OutOfTime {
        spent_secs: u64,
        attempts: u32,
        last: String,
    },
    /// An answer over the body cap; reading stopped there.
    #[error("HITO-Link's answer to {what} is too big: {detail}")]
    TooLarge { what: String, detail: String },
    #[error("HITO-Link API failed: {0}")]
    Transient(String),
    #[error("HITO-Link rejected the request ({status}): {message}")]
    Rejected { status: u16, message: String },
    #[error(transparent)]
    Unsyncable(#[from] Unsyncable),
    #[error("unexpected answer from HITO-Link: {0}")]
    Protocol(String),
}

impl hitosync_net::retry::Retryable for HitolinkError {
    fn is_retryable(&self) -> bool {
        HitolinkError::is_retryable(self)
    }
    fn is_rate_limit(&self) -> bool {
        matches!(self, HitolinkError::RateLimited { .. })
    }
    fn retry_after(&self) -> Option<Duration> {
        match self {
            HitolinkError::RateLimited { retry_after } => *retry_after,
            _ => None,
        }
    }
    fn interrupted(why: Interrupted) -> Self {
        match why {
            Interrupted::Stopped => HitolinkError::Stopped,
            Interrupted::RetryAfterTooLong { asked, cap } => HitolinkError::RetryAfterTooLong {
                asked_secs: asked.as_secs(),
                cap_secs: cap.as_secs(),
            },
            Interrupted::OutOfTime {
                spent,
                attempts,
                last,
            } => HitolinkError::OutOfTime {
                spent_secs: spent.as_secs(),
                attempts,
                last,
            },
        }
    }
}

impl Disposed for HitolinkError {
    fn disposition(&self) -> Disposition {
        match self {
            HitolinkError::PreconditionFailed { .. } => Disposition::ReadAgain,
            HitolinkError::NotFound { .. } => Disposition::Gone,
            HitolinkError::RateLimited { .. } | HitolinkError::Transient(_) => {
                Disposition::RetryLater
            }
            HitolinkError::Invalid { .. }
            | HitolinkError::Rejected { .. }
            | HitolinkError::Unsyncable(_)
            | HitolinkError::Protocol(_) => Disposition::Rejected,
            HitolinkError::CursorExpired => Disposition::StartOver,
            // A server that asks for the If-Match hitosync sends speaks
            // another contract: nothing will work until that is mended.
            HitolinkError::PreconditionRequired { .. }
            | HitolinkError::Unauthorized
            | HitolinkError::RetryAfterTooLong { .. }
            | HitolinkError::OutOfTime { .. }
            | HitolinkError::TooLarge { .. } => Disposition::EndCycle,
            HitolinkError::Stopped => Disposition::Stopped,
        }
    }
}

impl HitolinkError {
    /// Worth another try after a pause.
    pub fn is_retryable(&self) -> bool {
        self.disposition() == Disposition::RetryLater
    }

    /// The same error with `secrets` (and anything shaped like a
    /// credential) removed from the server's words it carries.
    pub fn scrubbed(self, secrets: &[&str]) -> HitolinkError {
        let s = |m: String| redact::scrub(&m, secrets);
        match self {
            HitolinkError::Invalid { what, message } => HitolinkError::Invalid {
                what,
                message: s(message),
            },
            HitolinkError::Transient(m) => HitolinkError::Transient(s(m)),
            HitolinkError::Rejected { status, message } => HitolinkError::Rejected {
                status,
                message: s(message),
            },
            HitolinkError::Protocol(m) => HitolinkError::Protocol(s(m)),
            HitolinkError::OutOfTime {
                spent_secs,
                attempts,
                last,
            } => HitolinkError::OutOfTime {
                spent_secs,
                attempts,
                last: s(last),
            },
            HitolinkError::Unsyncable(u) => HitolinkError::Unsyncable(Unsyncable {
                id: u.id,
                reason: s(u.reason),
            }),
            other => other,
        }
    }

    pub(crate) fn from_send(e: nethttp::SendError, what: &str) -> HitolinkError {
        if e.is_transient() {
            HitolinkError::Transient(e.to_string())
        } else {
            HitolinkError::TooLarge {
                what: what.to_string(),
                detail: e.to_string(),
            }
        }
    }

    pub(crate) fn from_response(resp: &nethttp::Response, what: &str) -> HitolinkError {
        let body: Value = serde_json::from_slice(&resp.body).unwrap_or(Value::Null);
        HitolinkError::from_parts(
            resp.status,
            &body,
            what,
            nethttp::retry_after(&resp.headers),
        )
    }

    /// Sorts an error answer by status; `body` is the `{"error", "message"}` JSON.
    pub fn from_parts(
        status: http::StatusCode,
        body: &Value,
        what: &str,
        retry_after: Option<Duration>,
    ) -> HitolinkError {
        let message = body
            .get("message")
            .and_then(|m| m.as_str())
            .unwrap_or_else(|| status.canonical_reason().unwrap_or(""))
            .to_string();
        match status.as_u16() {
            410 => HitolinkError::CursorExpired,
            412 => HitolinkError::PreconditionFailed {
                id: what.to_string(),
                current: body
                    .get("current")
                    .and_then(|c| Interview::from_json(c).ok())
                    .map(Box::new),
            },
            428 => HitolinkError::PreconditionRequired {
                id: what.to_string(),
            },
            422 => HitolinkError::Invalid {
                what: what.to_string(),
                message,
            },
            404 => HitolinkError::NotFound {
                what: what.to_string(),
            },
            401 => HitolinkError::Unauthorized,
            429 => HitolinkError::RateLimited { retry_after },
            s if s >= 500 => HitolinkError::Transient(format!("{status}: {message}")),
            s => HitolinkError::Rejected { status: s, message },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_words_lose_the_token() {
        let e = HitolinkError::Rejected {
            status: 400,
            message: "bad header Authorization: Bearer tok-123456789".into(),
        }
        .scrubbed(&["tok-123456789"]);
        assert!(!e.to_string().contains("tok-123456789"), "{e}");
    }
}
