//! What every Calendar call passes first (counters, the bearer token, the
//! API switch, the request quota, injected faults), and the faults that
//! fire after a write was applied.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::error::ApiError;
use super::state::{GoogleEmulator, Principal, State};
use crate::faults::{ANY, BadFault, Phase};

/// The calls, by the names the counters and fault targets use, and whether
/// each is a write.
pub const CALLS: &[(&str, bool)] = &[
    ("token", false),
    ("events.list", false),
    ("events.get", false),
    ("events.instances", false),
    ("events.insert", true),
    ("events.patch", true),
    ("events.update", true),
    ("events.delete", true),
    ("events.move", true),
];

/// A fault to inject into calendar API calls. Before a call is applied any
/// of them may fire; after a write is applied, all but `latency`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Fault {
    /// `500 backendError`.
    ServerError,
    /// `503 backendError`.
    Unavailable,
    /// `429 rateLimitExceeded` with `Retry-After`.
    TooManyRequests { retry_after_secs: u64 },
    /// `403 userRateLimitExceeded` (Google's older rate-limit answer).
    RateLimit403,
    /// The call succeeds after this delay (before the call only).
    Latency { millis: u64 },
    /// The connection closes without an answer.
    Disconnect,
}

impl Fault {
    fn error(self) -> ApiError {
        match self {
            Fault::ServerError | Fault::Latency { .. } => {
                ApiError::google(500, "global", "backendError", "Backend Error")
            }
            Fault::Unavailable => {
                ApiError::google(503, "global", "backendError", "Service Unavailable")
            }
            Fault::TooManyRequests { retry_after_secs } => {
                let mut e = ApiError::google(
                    429,
                    "usageLimits",
                    "rateLimitExceeded",
                    "Rate Limit Exceeded",
                );
                e.retry_after = Some(retry_after_secs);
                e
            }
            Fault::RateLimit403 => ApiError::google(
                403,
                "usageLimits",
                "userRateLimitExceeded",
                "Rate Limit Exceeded",
            ),
            Fault::Disconnect => ApiError::dropped(),
        }
    }
}

/// A per-minute request quota over all calendar calls, with a time scale so
/// a benchmark can act out a minute in less than one.
#[derive(Debug)]
pub(super) struct Quota {
    per_window: u32,
    window: Duration,
    recent: VecDeque<Instant>,
}

impl GoogleEmulator {
    /// Checks the caller and applies what the admin injected. Returns a
    /// latency to wait before answering, if one was injected.
    pub fn begin(
        &self,
        call: &str,
        bearer: Option<&str>,
    ) -> Result<(Principal, Option<Duration>), ApiError> {
        let mut st = self.state.lock();
        st.count(call);
        let principal = st.authenticate(bearer)?;
        if !st.auth.api_enabled {
            let message = "Google Calendar API has not been used in project 123456789012 before or it is disabled. Enable it by visiting https://console.developers.google.com/apis/api/calendar-json.googleapis.com/overview?project=123456789012 then retry.";
            let mut e = ApiError::google(403, "usageLimits", "accessNotConfigured", message);
            e.body["error"]["status"] = json!("PERMISSION_DENIED");
            return Err(e);
        }
        if let Some(q) = st.quota.as_mut() {
            let now = Instant::now();
            while q
                .recent
                .front()
                .is_some_and(|t| now.duration_since(*t) >= q.window)
            {
                q.recent.pop_front();
            }
            if q.recent.len() as u32 >= q.per_window {
                st.count("rate_limited");
                return Err(ApiError::google(
                    403,
                    "usageLimits",
                    "userRateLimitExceeded",
                    "Rate Limit Exceeded",
                ));
            }
            q.recent.push_back(now);
        }
        match st.faults.take(call, Phase::Before) {
            None => Ok((principal, None)),
            Some(Fault::Latency { millis }) => Ok((principal, Some(Duration::from_millis(millis)))),
            Some(fault) => {
                st.count("faults");
                Err(fault.error())
            }
        }
    }

    /// `count` faults for whatever calls come next, before they are applied.
    pub fn inject(&self, fault: Fault, count: usize) {
        // "any"/before is always a valid aim.
        let _ = self
            .state
            .lock()
            .faults
            .push(ANY, Phase::Before, fault, count);
    }

    /// `count` faults for the calls named by `on` (`"any"`, `"writes"`, or a
    /// call: `events.insert`, `events.patch`, `events.update`,
    /// `events.delete`, `events.move`, `events.list`, ...), fired before the
    /// call is applied or after it (writes only: the event changes, the
    /// client gets the fault instead of the answer).
    pub fn inject_on(
        &self,
        on: &str,
        phase: Phase,
        fault: Fault,
        count: usize,
    ) -> Result<(), BadFault> {
        if phase == Phase::After && matches!(fault, Fault::Latency { .. }) {
            return Err(BadFault(
                "a latency fault delays a call before it is applied; aim it with phase \"before\""
                    .into(),
            ));
        }
        self.state.lock().faults.push(on, phase, fault, count)
    }

    pub fn clear_faults(&self) {
        self.state.lock().faults.clear();
    }

    /// Faults injected and not yet fired.
    pub fn pending_faults(&self) -> usize {
        self.state.lock().faults.pending()
    }

    /// A quota over calendar calls: `per_minute` requests in every window
    /// of `60s / time_scale`. `None` lifts it.
    pub fn set_quota(&self, per_minute: Option<u32>, time_scale: f64) {
        let mut st = self.state.lock();
        st.quota = per_minute.map(|n| Quota {
            per_window: n,
            window: Duration::from_secs_f64(60.0 / time_scale.max(0.001)),
            recent: VecDeque::new(),
        });
    }
}

impl State {
    /// After `call` was applied: the fault aimed at it, as the answer the
    /// client gets instead of `ok`.
    pub(super) fn after_apply<T>(&mut self, call: &str, ok: T) -> Result<T, ApiError> {
        match self.faults.take(call, Phase::After) {
            None => Ok(ok),
            Some(f) => {
                self.count("faults_after_apply");
                Err(f.error())
            }
        }
    }
}
