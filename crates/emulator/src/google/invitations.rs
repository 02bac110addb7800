//! Calendar's own limit on invitations to external guests ("Calendar usage
//! limits", "Avoid Calendar use limits": to prevent spam, Calendar limits
//! how many external guests a user can invite; past it the API answers
//! `403 quotaExceeded` "Calendar usage limits exceeded." for a while).
//!
//! Google publishes neither the number (its Workspace help names "usually
//! between 100-300 guests") nor the window, so both are set by the test:
//! `per_day` invitations to external guests in any `window` (a day unless
//! told otherwise) per user, on the emulator's clock.
//!
//! What counts: each external guest (a mailbox outside the user's domain
//! and the `internal_domains`, not a room) who receives an invitation from
//! an API write with `sendUpdates=all` or `externalOnly`: every such guest
//! of an insert, the guests a patch or update adds, every such guest of a
//! cancelled event brought back. Writes with `sendUpdates=none` invite
//! nobody and always pass; writes made through the admin UI are not
//! counted.

use std::collections::{BTreeSet, HashMap, VecDeque};

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::error::ApiError;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InvitationLimit {
    /// External invitations a user may send in one window.
    pub per_day: u32,
    /// The window, in seconds (a day by default).
    #[serde(default = "a_day")]
    pub window_secs: u64,
    /// Domains that count as the user's own besides the user's domain.
    #[serde(default)]
    pub internal_domains: BTreeSet<String>,
}

fn a_day() -> u64 {
    86_400
}

#[derive(Debug, Default)]
pub(super) struct InvitationQuota {
    pub(super) limit: Option<InvitationLimit>,
    /// Per user: when each counted invitation was sent.
    sent: HashMap<String, VecDeque<DateTime<Utc>>>,
}

fn domain(email: &str) -> String {
    email
        .rsplit_once('@')
        .map(|(_, d)| d.to_ascii_lowercase())
        .unwrap_or_default()
}

impl InvitationQuota {
    /// The external guests of an event, by address.
    pub(super) fn external_guests(
        &self,
        body: &Map<String, Value>,
        user: &str,
    ) -> BTreeSet<String> {
        let own = domain(user);
        let internal = self
            .limit
            .as_ref()
            .map(|l| l.internal_domains.clone())
            .unwrap_or_default();
        body.get("attendees")
            .and_then(|a| a.as_array())
            .map(|list| {
                list.iter()
                    .filter(|a| !a.get("resource").and_then(|r| r.as_bool()).unwrap_or(false))
                    .filter_map(|a| a.get("email").and_then(|e| e.as_str()))
                    .map(str::to_ascii_lowercase)
                    .filter(|e| {
                        let d = domain(e);
                        d != own && !internal.contains(&d)
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Counts `count` invitations by `user` now, or answers `403
    /// quotaExceeded` (and counts nothing) if they do not fit in the window.
    pub(super) fn charge(
        &mut self,
        user: &str,
        count: usize,
        now: DateTime<Utc>,
    ) -> Result<(), ApiError> {
        let Some(limit) = &self.limit else {
            return Ok(());
        };
        if count == 0 {
            return Ok(());
        }
        let window = Duration::seconds(i64::try_from(limit.window_secs).unwrap_or(i64::MAX));
        let sent = self.sent.entry(user.to_string()).or_default();
        while sent.front().is_some_and(|t| now - *t >= window) {
            sent.pop_front();
        }
        if sent.len() + count > limit.per_day as usize {
            return Err(ApiError::quota_exceeded());
        }
        sent.extend(std::iter::repeat_n(now, count));
        Ok(())
    }

    /// Invitations `user` sent within the window ending `now`.
    pub(super) fn sent(&self, user: &str, now: DateTime<Utc>) -> usize {
        let Some(limit) = &self.limit else {
            return 0;
        };
        let window = Duration::seconds(i64::try_from(limit.window_secs).unwrap_or(i64::MAX));
        self.sent
            .get(user)
            .map(|s| s.iter().filter(|t| now - **t < window).count())
            .unwrap_or(0)
    }

    pub(super) fn set(&mut self, limit: Option<InvitationLimit>) {
        self.limit = limit;
        self.sent.clear();
    }
}

/// Whether a write with this `sendUpdates` sends invitations to external
/// guests.
pub(super) fn invites_externals(send_updates: &str) -> bool {
    matches!(send_updates, "all" | "externalOnly")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_window_slides_on_the_given_clock() {
        let mut q = InvitationQuota::default();
        q.set(Some(InvitationLimit {
            per_day: 2,
            window_secs: 86_400,
            internal_domains: BTreeSet::new(),
        }));
        let t0: DateTime<Utc> = "2026-12-01T00:00:00Z".parse().unwrap();
        q.charge("me@x.jp", 2, t0).unwrap();
        let e = q
            .charge("me@x.jp", 1, t0 + Duration::hours(23))
            .unwrap_err();
        assert_eq!(e.status, 403);
        assert_eq!(
            e.body["error"]["errors"][0]["reason"],
            json!("quotaExceeded")
        );
        assert!(q.charge("other@x.jp", 1, t0).is_ok(), "per user");
        assert!(q.charge("me@x.jp", 1, t0 + Duration::hours(24)).is_ok());
        let ev = json!({"attendees": [
            {"email": "cand@gmail.com"}, {"email": "colleague@x.jp"},
            {"email": "room@resource.calendar.google.com", "resource": true}
        ]});
        let ext = q.external_guests(ev.as_object().unwrap(), "me@x.jp");
        assert_eq!(ext.into_iter().collect::<Vec<_>>(), ["cand@gmail.com"]);
    }
}
