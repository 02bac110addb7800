//! The HITO-Link writes that bring the interview to the merged target:
//! declines (each with an idempotency key, since HITO-Link cannot undo
//! one), a patch of what changed, a cancel. Kept apart from the merge because HITO-Link's operations are
//! not field writes: a decline or a cancel is its own call with its own
//! order.

use super::super::Policy;
use super::super::ops::{Decliner, HitolinkOp, InterviewChange};
use super::super::view::{Fields, Snapshot};
use crate::ids::InterviewId;
use crate::model::{CalendarEvent, Response};
use crate::policy::OnDecline;

/// An idempotency key for a decline: the event and the ETag of the version
/// whose answer caused it, so a retry after a lost answer declines once.
pub(super) fn decline_key_base(event_id: &str, ev: Option<&CalendarEvent>) -> String {
    format!(
        "{}:{}",
        event_id,
        ev.map(|e| e.etag.as_str()).unwrap_or("-").trim_matches('"')
    )
}

/// The HITO-Link writes that bring `h_view` to `target`: the declines,
/// then one patch of what else changed, then a cancel.
pub(super) fn hitolink_ops(
    interview_id: &InterviewId,
    version: u64,
    snap: &Snapshot,
    h_view: &Fields,
    target: &Fields,
    key_base: &str,
    policy: &Policy,
) -> Vec<HitolinkOp> {
    let mut ops = vec![];
    let mut cancelled_after = h_view.cancelled;
    if target.candidate_declined && !h_view.candidate_declined {
        ops.push(HitolinkOp::Decline {
            interview_id: interview_id.clone(),
            if_match: version,
            by: Decliner::Candidate,
            idempotency_key: format!("{key_base}:candidate"),
        });
        if policy.on_decline == OnDecline::CancelEvent {
            cancelled_after = true;
        }
    }
    let mut change = InterviewChange::default();
    for (email, want) in &target.responses {
        let have = h_view.responses.get(email);
        if have == Some(want) {
            continue;
        }
        let Some(id) = snap.interviewer_ids.get(email) else {
            continue;
        };
        if *want == Response::Declined {
            ops.push(HitolinkOp::Decline {
                interview_id: interview_id.clone(),
                if_match: version,
                by: Decliner::Interviewer {
                    interviewer_id: id.clone(),
                },
                idempotency_key: format!("{key_base}:interviewer:{id}"),
            });
        } else {
            change.responses.push((id.clone(), *want));
        }
    }
    if target.slot != h_view.slot && target.slot.is_some() {
        change.slot = target.slot;
    }
    if target.location != h_view.location {
        change.location = Some(target.location.clone());
    }
    if target.meeting_url != h_view.meeting_url {
        change.meeting_url = Some(target.meeting_url.clone());
    }
    let cancel = target.cancelled && !cancelled_after;
    if !target.cancelled && cancelled_after && !target.candidate_declined {
        change.reopen = true;
    }
    if !change.is_empty() {
        ops.push(HitolinkOp::Patch {
            interview_id: interview_id.clone(),
            if_match: version,
            change,
        });
    }
    if cancel {
        ops.push(HitolinkOp::Cancel {
            interview_id: interview_id.clone(),
            if_match: version,
        });
    }
    ops
}
