//! The per-field three-way merge of a mapped interview, and the writes that
//! bring each side to the merged target.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use super::Policy;
use super::ops::{
    CalendarOp, Case, Conflict, Decision, Decliner, EventChange, EventDraft, HitolinkOp,
    InterviewChange, Notify, Op,
};
use super::view::{
    AGREED_DIGEST_PROPERTY, Fields, LinkHalf, Presentation, Snapshot, calendar_view, hitolink_view,
    presentation, without_link,
};
use crate::model::{Attendee, CalendarEvent, INTERVIEW_ID_PROPERTY, Interview, Response};
use crate::policy::{ConflictPolicy, OnDecline, OnEventDeleted};

/// How the calendar side stands against the agreement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum GState {
    Same,
    Changed,
    /// The event is not there at all (not even a tombstone).
    Vanished,
}

/// Per-field three-way merge. `h`/`g` are the views, `base` the agreement.
struct Merger<'a> {
    policy: &'a Policy,
    /// No agreed state is known: every difference is a conflict.
    no_base: bool,
    h_time: Option<DateTime<Utc>>,
    g_time: Option<DateTime<Utc>>,
    conflicts: Vec<Conflict>,
}

impl Merger<'_> {
    fn field<T: PartialEq + Clone + std::fmt::Debug>(
        &mut self,
        name: &str,
        base: &T,
        h: &T,
        g: &T,
    ) -> T {
        let (h_changed, g_changed) = if self.no_base {
            (h != g, h != g)
        } else {
            (h != base, g != base)
        };
        match (h_changed, g_changed) {
            (false, false) if self.no_base => h.clone(),
            (false, false) => base.clone(),
            (true, false) => h.clone(),
            (false, true) => g.clone(),
            (true, true) if h == g => h.clone(),
            (true, true) => {
                let google_wins = google_wins(self.policy, self.h_time, self.g_time);
                self.conflicts.push(Conflict {
                    field: name.to_string(),
                    hitolink: format!("{h:?}"),
                    google: format!("{g:?}"),
                    winner: if google_wins { "google" } else { "hitolink" }.into(),
                });
                if google_wins { g.clone() } else { h.clone() }
            }
        }
    }
}

/// Who wins a conflict under `sync.conflict`.
pub(super) fn google_wins(
    policy: &Policy,
    h_time: Option<DateTime<Utc>>,
    g_time: Option<DateTime<Utc>>,
) -> bool {
    match policy.conflict {
        ConflictPolicy::HitolinkWins => false,
        ConflictPolicy::GoogleWins => true,
        ConflictPolicy::LatestWins => match (h_time, g_time) {
            (Some(h), Some(g)) => g > h,
            _ => false,
        },
    }
}

/// What the merge is given besides the two sides.
pub(super) struct MergeInput<'a> {
    pub snap: &'a Snapshot,
    pub iv: Option<&'a Interview>,
    pub ev: Option<&'a CalendarEvent>,
    pub g_state: GState,
    /// No agreement is known (a rebuilt store whose digest matches neither
    /// side): every difference is a conflict.
    pub no_base: bool,
    /// The event's time cannot be held by HITO-Link (made all-day or
    /// recurring) and the policy gave it back: write the time again.
    pub repair_time: bool,
}

pub(super) fn merge(input: MergeInput<'_>, policy: &Policy) -> Decision {
    let MergeInput {
        snap,
        iv,
        ev,
        g_state,
        no_base,
        repair_time,
    } = input;
    let base = &snap.fields;
    // Without news from HITO-Link its view is the agreement itself.
    let h_view = iv
        .map(|iv| hitolink_view(iv, policy))
        .unwrap_or_else(|| base.clone());
    let h_deleted = iv.is_some_and(|i| i.deleted);
    let g_view = match (ev, g_state) {
        (Some(ev), _) => calendar_view(ev, base, snap.candidate_email.as_deref()),
        (None, GState::Vanished) => Fields {
            cancelled: true,
            ..base.clone()
        },
        (None, _) => base.clone(),
    };
    let mut m = Merger {
        policy,
        no_base,
        h_time: iv.map(|i| i.updated_at),
        g_time: ev.and_then(|e| e.updated),
        conflicts: vec![],
    };
    // The key set of answers is HITO-Link's interviewer list.
    let responses = h_view
        .responses
        .iter()
        .map(|(email, h)| {
            let b = base.responses.get(email).unwrap_or(h);
            let g = g_view.responses.get(email).unwrap_or(b);
            (
                email.clone(),
                m.field(&format!("response:{email}"), b, h, g),
            )
        })
        .collect();
    let mut target = Fields {
        cancelled: m.field(
            "cancelled",
            &base.cancelled,
            &h_view.cancelled,
            &g_view.cancelled,
        ),
        slot: if repair_time {
            h_view.slot
        } else {
            m.field("time", &base.slot, &h_view.slot, &g_view.slot)
        },
        location: m.field(
            "location",
            &base.location,
            &h_view.location,
            &g_view.location,
        ),
        link: m.field("link", &base.link, &h_view.link, &g_view.link),
        candidate_declined: m.field(
            "candidate_declined",
            &base.candidate_declined,
            &h_view.candidate_declined,
            &g_view.candidate_declined,
        ),
        responses,
    };
    // Policies and terminal states.
    let event_cancelled_by_google =
        g_view.cancelled && !base.cancelled && h_view.cancelled == base.cancelled;
    if event_cancelled_by_google
        && policy.on_event_deleted == OnEventDeleted::Recreate
        && !h_deleted
    {
        target.cancelled = false;
    }
    if target.candidate_declined && policy.on_decline == OnDecline::CancelEvent {
        target.cancelled = true;
    }
    if target.slot.is_none() || h_deleted {
        target.cancelled = true;
    }
    let conflicts = m.conflicts;
    match iv {
        Some(iv) => plan_writes(
            snap,
            iv,
            Views {
                h: h_view,
                g: g_view,
                target,
            },
            ev,
            g_state,
            conflicts,
            repair_time,
            policy,
        ),
        // No HITO-Link record at hand: only the calendar side changed, and
        // its change goes to HITO-Link from the agreement's knowledge.
        None => merge_without_record(snap, g_view, ev, target, conflicts, repair_time, policy),
    }
}

struct Views {
    h: Fields,
    g: Fields,
    target: Fields,
}

/// The event's ETag for a conditional write: as just seen, else as last
/// written.
fn etag_of(snap: &Snapshot, ev: Option<&CalendarEvent>) -> Option<String> {
    let e = ev
        .map(|e| e.etag.clone())
        .unwrap_or_else(|| snap.event_etag.clone());
    (!e.is_empty()).then_some(e)
}

/// The calendar changed and HITO-Link did not (so no record was fetched):
/// the writes to HITO-Link are planned from the snapshot, against the
/// version the snapshot remembers.
fn merge_without_record(
    snap: &Snapshot,
    g_view: Fields,
    ev: Option<&CalendarEvent>,
    target: Fields,
    conflicts: Vec<Conflict>,
    repair_time: bool,
    policy: &Policy,
) -> Decision {
    let h_view = snap.fields.clone();
    let mut ops: Vec<Op> = vec![];
    // The event must carry the new agreement (its digest), and be put back
    // in line where the policy overrode what the calendar did.
    if let Some(c) = calendar_op_for_known(snap, &g_view, &target, ev, repair_time) {
        ops.push(Op::Calendar(c));
    }
    let key_base = decline_key_base(&snap.event_id, ev);
    ops.extend(
        hitolink_ops(
            &snap.interview_id,
            snap.hl_version,
            snap,
            &h_view,
            &target,
            &key_base,
            policy,
        )
        .into_iter()
        .map(Op::Hitolink),
    );
    let mut s = snap.clone();
    s.fields = target.clone();
    if let Some(e) = ev {
        s.event_etag = e.etag.clone();
        s.event_attendees = e.attendees.clone();
    }
    if s.link == LinkHalf::Pending {
        ops.push(Op::Hitolink(HitolinkOp::WriteBackLink {
            interview_id: snap.interview_id.clone(),
            if_match: snap.hl_version,
            event_id: snap.event_id.clone(),
        }));
        s.link = LinkHalf::Written;
    }
    let summary = describe(&h_view, &g_view, &target, &ops);
    Decision {
        case: if ev.is_none() {
            Case::EventVanished
        } else {
            Case::Merge
        },
        interview_id: Some(snap.interview_id.clone()),
        event_id: Some(snap.event_id.clone()),
        ops,
        conflicts,
        snapshot: Some(s),
        lookalikes: vec![],
        refusal: None,
        summary,
    }
}

fn calendar_op_for_known(
    snap: &Snapshot,
    g_view: &Fields,
    target: &Fields,
    ev: Option<&CalendarEvent>,
    repair_time: bool,
) -> Option<CalendarOp> {
    let private = stamp(&snap.interview_id, target);
    let event_id = snap.event_id.clone();
    let if_match = etag_of(snap, ev);
    match (target.cancelled, g_view.cancelled) {
        // Made all-day or recurring: the agreed time goes back on it.
        (false, false) if repair_time => Some(CalendarOp::Patch {
            event_id,
            if_match,
            change: EventChange {
                time: target
                    .slot
                    .map(|s| (s, snap.presentation.time_zone.clone())),
                single: true,
                private,
                ..Default::default()
            },
            notify: Notify::Attendees,
        }),
        (true, false) => Some(CalendarOp::Cancel {
            event_id,
            if_match,
            change: EventChange {
                private,
                ..Default::default()
            },
        }),
        (false, true) => {
            // Restoring needs the whole event; without the record the
            // snapshot's presentation is what was last written.
            let change = EventChange {
                summary: Some(snap.presentation.title.clone()),
                description: Some(snap.presentation.description.clone()),
                location: Some(target.location.clone()),
                time: target
                    .slot
                    .map(|s| (s, snap.presentation.time_zone.clone())),
                attendees: None,
                private,
                single: false,
            };
            Some(CalendarOp::Restore {
                event_id,
                if_match,
                change,
            })
        }
        // Answers the event shows wrong (Google reset them): set right,
        // telling nobody.
        (false, false) if ev.is_some_and(|e| answers_differ(e, snap, target)) => {
            let attendees = ev
                .map(|e| with_answers(&e.attendees, snap, target))
                .unwrap_or_default();
            Some(CalendarOp::Patch {
                event_id,
                if_match,
                change: EventChange {
                    attendees: Some(attendees),
                    private,
                    ..Default::default()
                },
                notify: Notify::Nobody,
            })
        }
        _ if ev.is_some_and(|e| needs_stamp(e, &snap.interview_id, target)) => {
            Some(CalendarOp::Stamp {
                event_id,
                if_match,
                private,
            })
        }
        _ => None,
    }
}

/// The event shows an answer other than the target's for someone hitosync
/// invited.
fn answers_differ(ev: &CalendarEvent, snap: &Snapshot, target: &Fields) -> bool {
    ev.attendees
        .iter()
        .filter(|a| a.is_guest())
        .any(|a| match target.responses.get(&a.email) {
            Some(want) => a.response != *want,
            None => {
                snap.candidate_email.as_deref() == Some(a.email.as_str())
                    && (a.response == Response::Declined) != target.candidate_declined
            }
        })
}

/// The event's attendees with the target's answers.
fn with_answers(attendees: &[Attendee], snap: &Snapshot, target: &Fields) -> Vec<Attendee> {
    attendees
        .iter()
        .cloned()
        .map(|mut a| {
            if !a.is_guest() {
                return a;
            }
            if let Some(want) = target.responses.get(&a.email) {
                a.response = *want;
            } else if snap.candidate_email.as_deref() == Some(a.email.as_str()) {
                if target.candidate_declined {
                    a.response = Response::Declined;
                } else if a.response == Response::Declined {
                    a.response = Response::NeedsAction;
                }
            }
            a
        })
        .collect()
}

/// The event does not carry the interview's ID or the current agreement.
pub(super) fn needs_stamp(ev: &CalendarEvent, interview_id: &str, target: &Fields) -> bool {
    ev.private_properties
        .get(INTERVIEW_ID_PROPERTY)
        .map(String::as_str)
        != Some(interview_id)
        || ev.private_properties.get(AGREED_DIGEST_PROPERTY) != Some(&target.digest())
}

#[allow(clippy::too_many_arguments)]
fn plan_writes(
    snap: &Snapshot,
    iv: &Interview,
    views: Views,
    ev: Option<&CalendarEvent>,
    g_state: GState,
    conflicts: Vec<Conflict>,
    repair_time: bool,
    policy: &Policy,
) -> Decision {
    let Views {
        h: h_view,
        g: g_view,
        target,
    } = views;
    let pres = presentation(iv, policy);
    let base_attendees = ev
        .map(|e| e.attendees.clone())
        .unwrap_or_else(|| snap.event_attendees.clone());
    let private = stamp(&iv.id, &target);
    let event_id = snap.event_id.clone();
    let if_match = etag_of(snap, ev);
    let calendar = if g_state == GState::Vanished && !target.cancelled {
        // Gone without a trace (not even a tombstone): the derived ID may
        // still be taken, so the engine restores on 409.
        draft(iv, &pres, &target, &[]).map(|draft| CalendarOp::Insert {
            event_id: event_id.clone(),
            draft,
        })
    } else if g_state == GState::Vanished {
        None
    } else {
        match (target.cancelled, g_view.cancelled) {
            (true, false) => {
                let mut change = EventChange {
                    private,
                    ..Default::default()
                };
                if target.candidate_declined && !g_view.candidate_declined {
                    change.attendees = Some(attendees_for(iv, &pres, &base_attendees, &target));
                }
                Some(CalendarOp::Cancel {
                    event_id: event_id.clone(),
                    if_match,
                    change,
                })
            }
            (false, true) => Some(CalendarOp::Restore {
                event_id: event_id.clone(),
                if_match,
                change: full_change(iv, &pres, &target, &base_attendees),
            }),
            (true, true) => ev
                .is_none_or(|e| needs_stamp(e, &iv.id, &target))
                .then(|| CalendarOp::Stamp {
                    event_id: event_id.clone(),
                    if_match,
                    private,
                })
                // Without the event at hand, a cancelled one is stamped only
                // when the agreement changed.
                .filter(|_| ev.is_some() || snap.fields != target),
            (false, false) => live_update(LiveUpdate {
                snap,
                iv,
                pres: &pres,
                g_view: &g_view,
                target: &target,
                base_attendees: &base_attendees,
                ev,
                if_match,
                repair_time,
            }),
        }
    };
    let mut ops: Vec<Op> = calendar.into_iter().map(Op::Calendar).collect();
    if !iv.deleted {
        let key_base = decline_key_base(&snap.event_id, ev);
        ops.extend(
            hitolink_ops(
                &iv.id, iv.version, snap, &h_view, &target, &key_base, policy,
            )
            .into_iter()
            .map(Op::Hitolink),
        );
    }
    let mut s = snapshot_of(iv, &snap.event_id, target.clone(), pres, ev, base_attendees);
    if ev.is_none() {
        s.event_etag = snap.event_etag.clone();
    }
    if let Some(op) = link_write_back(iv, &snap.event_id) {
        ops.push(Op::Hitolink(op));
    }
    let summary = describe(&h_view, &g_view, &target, &ops);
    Decision {
        case: if g_state == GState::Vanished {
            Case::EventVanished
        } else {
            Case::Merge
        },
        interview_id: Some(iv.id.clone()),
        event_id: Some(snap.event_id.clone()),
        ops,
        conflicts,
        snapshot: Some(s),
        lookalikes: vec![],
        refusal: None,
        summary,
    }
}

/// The interview's half of the link, when it does not name the event.
pub(super) fn link_write_back(iv: &Interview, event_id: &str) -> Option<HitolinkOp> {
    (!iv.deleted && iv.external_event_id.as_deref() != Some(event_id)).then(|| {
        HitolinkOp::WriteBackLink {
            interview_id: iv.id.clone(),
            if_match: iv.version,
            event_id: event_id.to_string(),
        }
    })
}

struct LiveUpdate<'a> {
    snap: &'a Snapshot,
    iv: &'a Interview,
    pres: &'a Presentation,
    g_view: &'a Fields,
    target: &'a Fields,
    base_attendees: &'a [Attendee],
    ev: Option<&'a CalendarEvent>,
    if_match: Option<String>,
    repair_time: bool,
}

fn live_update(u: LiveUpdate<'_>) -> Option<CalendarOp> {
    let LiveUpdate {
        snap,
        iv,
        pres,
        g_view,
        target,
        base_attendees,
        ev,
        if_match,
        repair_time,
    } = u;
    let mut change = EventChange::default();
    let mut notify = false;
    if target.slot != g_view.slot || repair_time {
        change.time = target.slot.map(|s| (s, pres.time_zone.clone()));
        change.single = repair_time;
        notify = true;
    }
    if target.location != g_view.location {
        change.location = Some(target.location.clone());
        notify = true;
    }
    let link_changed = target.link != g_view.link;
    if link_changed
        || without_link(&pres.description) != without_link(&snap.presentation.description)
    {
        change.description = Some(pres.description.clone());
        notify |= link_changed;
    }
    if pres.title != snap.presentation.title {
        change.summary = Some(pres.title.clone());
    }
    let wanted = attendees_for(iv, pres, base_attendees, target);
    let invitees_changed = pres.invitees != snap.presentation.invitees
        || !pres
            .invitees
            .iter()
            .all(|e| base_attendees.iter().any(|a| &a.email == e));
    // What the event shows, needsAction included: the view reads a reset
    // to needsAction as no news, but the event must still be set right.
    let shown = |email: &str| {
        base_attendees
            .iter()
            .find(|a| a.is_guest() && a.email.eq_ignore_ascii_case(email))
            .map(|a| a.response)
    };
    let answers_changed = target
        .responses
        .iter()
        .any(|(email, want)| shown(email).is_some_and(|have| have != *want))
        || snap
            .candidate_email
            .as_deref()
            .and_then(shown)
            .is_some_and(|r| (r == Response::Declined) != target.candidate_declined)
        || target.candidate_declined != g_view.candidate_declined;
    if invitees_changed || answers_changed {
        change.attendees = Some(wanted);
        notify |= invitees_changed;
    }
    let changed = !change.is_empty();
    let unstamped = match ev {
        Some(e) => needs_stamp(e, &iv.id, target),
        // Not seen this cycle: it carries what was last agreed.
        None => snap.fields != *target,
    };
    if !changed && !unstamped {
        return None;
    }
    let event_id = snap.event_id.clone();
    change.private = stamp(&iv.id, target);
    Some(if changed {
        CalendarOp::Patch {
            event_id,
            if_match,
            change,
            notify: if notify {
                Notify::Attendees
            } else {
                Notify::Nobody
            },
        }
    } else {
        CalendarOp::Stamp {
            event_id,
            if_match,
            private: change.private,
        }
    })
}

/// An idempotency key for a decline: the event and the ETag of the version
/// whose answer caused it, so a retry after a lost answer declines once.
fn decline_key_base(event_id: &str, ev: Option<&CalendarEvent>) -> String {
    format!(
        "{}:{}",
        event_id,
        ev.map(|e| e.etag.as_str()).unwrap_or("-").trim_matches('"')
    )
}

fn hitolink_ops(
    interview_id: &str,
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
            interview_id: interview_id.to_string(),
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
                interview_id: interview_id.to_string(),
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
    if target.link != h_view.link {
        change.link = Some(target.link.clone());
    }
    let cancel = target.cancelled && !cancelled_after;
    if !target.cancelled && cancelled_after && !target.candidate_declined {
        change.reopen = true;
    }
    if !change.is_empty() {
        ops.push(HitolinkOp::Patch {
            interview_id: interview_id.to_string(),
            if_match: version,
            change,
        });
    }
    if cancel {
        ops.push(HitolinkOp::Cancel {
            interview_id: interview_id.to_string(),
            if_match: version,
        });
    }
    ops
}

/// The attendee list hitosync writes: guests the organizer added by hand,
/// rooms and the organizer's own entry are kept as they are; hitosync owns
/// only its invitees.
pub(super) fn attendees_for(
    iv: &Interview,
    pres: &Presentation,
    base: &[Attendee],
    fields: &Fields,
) -> Vec<Attendee> {
    let mut out: Vec<Attendee> = base
        .iter()
        .filter(|a| !a.is_guest() || !pres.invitees.contains(&a.email))
        .cloned()
        .collect();
    for i in &iv.interviewers {
        let email = i.email.to_ascii_lowercase();
        out.push(Attendee {
            email: email.clone(),
            display_name: Some(i.name.clone()),
            response: fields.responses.get(&email).copied().unwrap_or(i.response),
            organizer: false,
            resource: false,
            is_self: false,
        });
    }
    if let Some(e) = &iv.candidate.email {
        let email = e.to_ascii_lowercase();
        if pres.invitees.contains(&email) {
            let previous = base.iter().find(|a| a.email == email).map(|a| a.response);
            out.push(Attendee {
                email,
                display_name: Some(iv.candidate.display_name.clone()),
                response: if fields.candidate_declined {
                    Response::Declined
                } else {
                    match previous {
                        Some(Response::Declined) | None => Response::NeedsAction,
                        Some(r) => r,
                    }
                },
                organizer: false,
                resource: false,
                is_self: false,
            });
        }
    }
    out
}

/// The whole event for an insert; `None` without a time (a target without
/// one is cancelled, so no insert is ever planned for it).
pub(super) fn draft(
    iv: &Interview,
    pres: &Presentation,
    fields: &Fields,
    base_attendees: &[Attendee],
) -> Option<EventDraft> {
    Some(EventDraft {
        summary: pres.title.clone(),
        description: pres.description.clone(),
        location: fields.location.clone(),
        slot: fields.slot?,
        time_zone: pres.time_zone.clone(),
        attendees: attendees_for(iv, pres, base_attendees, fields),
        private: stamp(&iv.id, fields),
    })
}

fn full_change(
    iv: &Interview,
    pres: &Presentation,
    fields: &Fields,
    base_attendees: &[Attendee],
) -> EventChange {
    EventChange {
        summary: Some(pres.title.clone()),
        description: Some(pres.description.clone()),
        location: Some(fields.location.clone()),
        time: fields.slot.map(|s| (s, pres.time_zone.clone())),
        attendees: Some(attendees_for(iv, pres, base_attendees, fields)),
        private: stamp(&iv.id, fields),
        single: false,
    }
}

/// hitosync's private properties: the interview ID (the event's half of
/// the link) and the digest of the agreement.
pub(super) fn stamp(interview_id: &str, fields: &Fields) -> BTreeMap<String, String> {
    [
        (INTERVIEW_ID_PROPERTY.to_string(), interview_id.to_string()),
        (AGREED_DIGEST_PROPERTY.to_string(), fields.digest()),
    ]
    .into()
}

pub(super) fn snapshot_of(
    iv: &Interview,
    event_id: &str,
    fields: Fields,
    pres: Presentation,
    event: Option<&CalendarEvent>,
    attendees: Vec<Attendee>,
) -> Snapshot {
    Snapshot {
        interview_id: iv.id.clone(),
        event_id: event_id.to_string(),
        fields,
        presentation: pres,
        candidate_email: iv.candidate.email.as_ref().map(|e| e.to_ascii_lowercase()),
        interviewer_ids: iv
            .interviewers
            .iter()
            .map(|i| (i.email.to_ascii_lowercase(), i.id.clone()))
            .collect(),
        hl_version: iv.version,
        event_etag: event.map(|e| e.etag.clone()).unwrap_or_default(),
        event_attendees: attendees,
        retired: iv.deleted,
        // Every plan for a live interview ends with its half written.
        link: LinkHalf::Written,
    }
}

/// What a plan changes, in words, for logs, `plan` and `inspect`.
pub(super) fn describe(h: &Fields, g: &Fields, t: &Fields, ops: &[Op]) -> String {
    let mut parts: Vec<String> = vec![];
    if t.slot != h.slot || t.slot != g.slot {
        parts.push(format!(
            "time from {}",
            if t.slot == h.slot {
                "HITO-Link"
            } else {
                "calendar"
            }
        ));
    }
    if t.location != h.location || t.location != g.location {
        parts.push("place".into());
    }
    if t.link != h.link || t.link != g.link {
        parts.push("link".into());
    }
    if t.candidate_declined != h.candidate_declined || t.candidate_declined != g.candidate_declined
    {
        parts.push("candidate declined".into());
    }
    if t.responses != h.responses || t.responses != g.responses {
        parts.push("answers".into());
    }
    if t.cancelled != h.cancelled || t.cancelled != g.cancelled {
        parts.push(if t.cancelled {
            "cancelled".into()
        } else {
            "back on".into()
        });
    }
    if ops
        .iter()
        .any(|o| matches!(o, Op::Hitolink(HitolinkOp::WriteBackLink { .. })))
    {
        parts.push("link to the event written back".into());
    }
    if parts.is_empty() {
        "bookkeeping".to_string()
    } else {
        parts.join(", ")
    }
}
