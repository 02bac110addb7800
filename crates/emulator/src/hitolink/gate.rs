//! What every call passes first (bearer token, the documented 100 requests
//! a minute, injected faults), and the faults that fire after a write was
//! applied.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::state::{ApiError, HitolinkEmulator};
use crate::faults::{BadFault, Phase};

/// The calls, by the names the counters and fault targets use, and whether
/// each is a write.
pub const CALLS: &[(&str, bool)] = &[
    ("changes", false),
    ("get", false),
    ("application", false),
    ("create", true),
    ("patch", true),
    ("decline", true),
];

/// A fault to inject. Before a call is applied any of them may fire; after
/// a write is applied, all but `latency`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Fault {
    /// `500 internal`.
    ServerError,
    /// `503 unavailable`.
    Unavailable,
    /// `429 rate_limited` with `Retry-After`.
    TooManyRequests { retry_after_secs: u64 },
    /// The call succeeds after this delay (before the call only).
    Latency { millis: u64 },
    /// The connection closes without an answer.
    Disconnect,
}

impl Fault {
    fn error(self) -> ApiError {
        match self {
            Fault::ServerError | Fault::Latency { .. } => {
                ApiError::new(500, "internal", "internal server error")
            }
            Fault::Unavailable => ApiError::new(503, "unavailable", "service unavailable"),
            Fault::TooManyRequests { retry_after_secs } => {
                let mut e = ApiError::new(429, "rate_limited", "too many requests");
                e.retry_after = Some(retry_after_secs);
                e
            }
            Fault::Disconnect => ApiError::dropped(),
        }
    }
}

impl HitolinkEmulator {
    /// Checks the bearer token, the rate limit and injected faults, and
    /// counts the call. Returns an injected latency, if any.
    pub fn begin(&self, call: &str, bearer: Option<&str>) -> Result<Option<Duration>, ApiError> {
        let mut st = self.state.lock();
        *st.counters.entry(call.to_string()).or_default() += 1;
        if bearer != Some(st.token.as_str()) {
            return Err(ApiError::new(
                401,
                "unauthorized",
                "missing or invalid bearer token",
            ));
        }
        if let Some(rate) = st.rate.as_mut() {
            let now = Instant::now();
            let minute = Duration::from_secs(60);
            while rate
                .recent
                .front()
                .is_some_and(|t| now.duration_since(*t) >= minute)
            {
                rate.recent.pop_front();
            }
            if rate.recent.len() as u32 >= rate.per_minute {
                let oldest = rate.recent.front().copied().unwrap_or(now);
                let wait = minute
                    .saturating_sub(now.duration_since(oldest))
                    .as_secs()
                    .max(1);
                *st.counters.entry("rate_limited".into()).or_default() += 1;
                let mut e = ApiError::new(429, "rate_limited", "too many requests");
                e.retry_after = Some(wait);
                return Err(e);
            }
            rate.recent.push_back(now);
        }
        match st.faults.take(call, Phase::Before) {
            None => Ok(None),
            Some(Fault::Latency { millis }) => Ok(Some(Duration::from_millis(millis))),
            Some(f) => {
                *st.counters.entry("faults".into()).or_default() += 1;
                Err(f.error())
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
            .push(crate::faults::ANY, Phase::Before, fault, count);
    }

    /// `count` faults for the calls named by `on` (`"any"`, `"writes"`, or a
    /// call: `create`, `patch`, `decline`, `changes`, `get`, `application`),
    /// fired before the call is applied or after (writes only: the record
    /// changes, the client gets the fault instead of the answer).
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
}

impl super::state::State {
    /// After `call` was applied: the fault aimed at it, as the answer the
    /// client gets instead of `ok`.
    pub(super) fn after_apply<T>(&mut self, call: &str, ok: T) -> Result<T, ApiError> {
        match self.faults.take(call, Phase::After) {
            None => Ok(ok),
            Some(f) => {
                *self
                    .counters
                    .entry("faults_after_apply".into())
                    .or_default() += 1;
                Err(f.error())
            }
        }
    }
}
