//! Reading: the change feed with its cursors, one record, an application.

use base64::Engine as _;
use serde_json::{Value, json};

use super::state::{Answer, ApiError, HitolinkEmulator, ok, to_json};

impl HitolinkEmulator {
    /// `GET /v1/interviews/changes`.
    pub fn changes(&self, cursor: Option<&str>, limit: Option<&str>) -> Result<Answer, ApiError> {
        let st = self.state.lock();
        let limit = match limit {
            None => 200,
            Some(l) => match l.parse::<usize>() {
                Ok(n) if (1..=500).contains(&n) => n,
                _ => return Err(ApiError::invalid("limit must be between 1 and 500")),
            },
        };
        let after = match cursor {
            None => 0,
            Some(c) => match decode_cursor(c) {
                Some((epoch, seq)) if epoch == st.cursor_epoch && seq <= st.seq => seq,
                _ => {
                    return Err(ApiError::new(
                        410,
                        "cursor_expired",
                        "the cursor is unknown or expired; start again without a cursor",
                    ));
                }
            },
        };
        let mut items = Vec::new();
        let mut last = after;
        let mut rest = st.feed.range(after + 1..);
        for (seq, id) in rest.by_ref().take(limit) {
            if let Some(r) = st.interviews.get(id) {
                items.push(serde_json::to_value(r).unwrap_or(Value::Null));
            }
            last = *seq;
        }
        let has_more = rest.next().is_some();
        Ok(ok(json!({
            "items": items,
            "next_cursor": encode_cursor(st.cursor_epoch, last),
            "has_more": has_more,
        })))
    }

    /// `GET /v1/interviews/{id}`: tombstones too.
    pub fn get(&self, id: &str) -> Result<Answer, ApiError> {
        let st = self.state.lock();
        st.interviews
            .get(id)
            .map(|r| ok(to_json(r)))
            .ok_or_else(|| ApiError::not_found("interview"))
    }

    /// `GET /v1/applications/{id}`.
    pub fn application(&self, id: &str) -> Result<Answer, ApiError> {
        let st = self.state.lock();
        st.applications
            .get(id)
            .map(|a| ok(json!(a)))
            .ok_or_else(|| ApiError::not_found("application"))
    }
}

pub(super) fn encode_cursor(epoch: u64, seq: u64) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("c.{epoch}.{seq}"))
}

pub(super) fn decode_cursor(s: &str) -> Option<(u64, u64)> {
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s)
        .ok()?;
    let raw = String::from_utf8(raw).ok()?;
    let (epoch, seq) = raw.strip_prefix("c.")?.split_once('.')?;
    Some((epoch.parse().ok()?, seq.parse().ok()?))
}
