//! The plan as typed operations: one enum per side, each operation carrying
//! its target and its precondition, so that a write cannot exist without
//! knowing what it writes to and what it expects to find there. The engine
//! runs them with an exhaustive `match`; `hitosync plan` prints them.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::ids::{EventId, InterviewId};
use crate::model::{Attendee, EventShape, InterviewStatus, Response, Slot};

/// Whom a calendar write tells. Attendees are mailed only about what they
/// see (time, place, link, who is invited, a cancellation); bookkeeping
/// notifies nobody.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Notify {
    Attendees,
    Nobody,
}

/// A whole event, for an insert.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventDraft {
    pub summary: String,
    pub description: String,
    pub location: Option<String>,
    pub slot: Slot,
    pub time_zone: String,
    pub attendees: Vec<Attendee>,
    pub private: BTreeMap<String, String>,
}

/// The fields of an event PATCH; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EventChange {
    pub summary: Option<String>,
    pub description: Option<String>,
    /// `Some(None)` clears the place.
    pub location: Option<Option<String>>,
    /// The time, with the zone it is shown in.
    pub time: Option<(Slot, String)>,
    pub attendees: Option<Vec<Attendee>>,
    /// hitosync's own private properties (the interview ID and the agreed
    /// digest); the event's other properties are left as they are.
    pub private: BTreeMap<String, String>,
    /// Drop recurrence rules someone added: a managed event is single.
    pub single: bool,
}

impl EventChange {
    pub fn is_empty(&self) -> bool {
        *self == EventChange::default()
    }
}

/// A write to the organizer calendar.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum CalendarOp {
    /// Insert under a client-chosen ID; `409` means it exists (adopt it).
    Insert {
        event_id: EventId,
        draft: EventDraft,
    },
    /// Change a live event.
    Patch {
        event_id: EventId,
        if_match: Option<String>,
        change: EventChange,
        notify: Notify,
    },
    /// Bring a cancelled event back (`status: confirmed`); an ID cannot be
    /// inserted twice. Attendees are told.
    Restore {
        event_id: EventId,
        if_match: Option<String>,
        change: EventChange,
    },
    /// Cancel the event (`status: cancelled`); attendees are told.
    Cancel {
        event_id: EventId,
        if_match: Option<String>,
        change: EventChange,
    },
    /// Write hitosync's private properties only; nobody is told.
    Stamp {
        event_id: EventId,
        if_match: Option<String>,
        private: BTreeMap<String, String>,
    },
}

impl CalendarOp {
    pub fn event_id(&self) -> &EventId {
        match self {
            CalendarOp::Insert { event_id, .. }
            | CalendarOp::Patch { event_id, .. }
            | CalendarOp::Restore { event_id, .. }
            | CalendarOp::Cancel { event_id, .. }
            | CalendarOp::Stamp { event_id, .. } => event_id,
        }
    }

    /// Attendees see it (and are mailed).
    pub fn notifies(&self) -> bool {
        match self {
            CalendarOp::Insert { .. } | CalendarOp::Restore { .. } | CalendarOp::Cancel { .. } => {
                true
            }
            CalendarOp::Patch { notify, .. } => *notify == Notify::Attendees,
            CalendarOp::Stamp { .. } => false,
        }
    }
}

/// Who declined, for `POST decline`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "by", rename_all = "snake_case")]
pub enum Decliner {
    Candidate,
    Interviewer { interviewer_id: String },
}

/// The writable fields of a HITO-Link PATCH; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct InterviewChange {
    pub slot: Option<Slot>,
    pub location: Option<Option<String>>,
    pub meeting_url: Option<Option<String>>,
    /// Back to `scheduled` (the calendar restored a cancelled event).
    pub reopen: bool,
    /// (interviewer id, answer) for answers other than declines.
    pub responses: Vec<(String, Response)>,
}

impl InterviewChange {
    pub fn is_empty(&self) -> bool {
        *self == InterviewChange::default()
    }
}

/// A booking made in the calendar, as HITO-Link's `POST /v1/interviews`
/// takes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Booking {
    pub application_id: String,
    pub slot: Slot,
    pub time_zone: String,
    /// The event's guests (rooms and the organizer left out); the candidate
    /// among them is dropped once the application says who the candidate is.
    pub guests: Vec<String>,
    pub location: Option<String>,
    pub meeting_url: Option<String>,
}

/// A write to HITO-Link. `if_match` is the version the plan was made
/// against; when one plan writes an interview more than once, each write
/// goes against the version the previous one answered with (the executor
/// carries it), so a plan never races itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum HitolinkOp {
    /// `PATCH` of the synced fields.
    Patch {
        interview_id: InterviewId,
        if_match: u64,
        change: InterviewChange,
    },
    /// `POST decline`.
    Decline {
        interview_id: InterviewId,
        if_match: u64,
        by: Decliner,
        idempotency_key: String,
    },
    /// `PATCH status: canceled`.
    Cancel {
        interview_id: InterviewId,
        if_match: u64,
    },
}

impl HitolinkOp {
    /// The interview it writes.
    pub fn interview_id(&self) -> &InterviewId {
        match self {
            HitolinkOp::Patch { interview_id, .. }
            | HitolinkOp::Decline { interview_id, .. }
            | HitolinkOp::Cancel { interview_id, .. } => interview_id,
        }
    }

    /// Cancels an interview: counted by the mass-deletion breaker. A
    /// candidate's decline takes the interview off the schedule too.
    pub fn is_destructive(&self) -> bool {
        matches!(
            self,
            HitolinkOp::Cancel { .. }
                | HitolinkOp::Decline {
                    by: Decliner::Candidate,
                    ..
                }
        )
    }
}

/// One operation of a plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "side", rename_all = "snake_case")]
pub enum Op {
    Calendar(CalendarOp),
    Hitolink(HitolinkOp),
}

impl Op {
    pub fn is_destructive(&self) -> bool {
        match self {
            Op::Calendar(c) => matches!(c, CalendarOp::Cancel { .. }),
            Op::Hitolink(h) => h.is_destructive(),
        }
    }

    /// Bookkeeping: nobody sees it happen (a stamp).
    pub fn is_bookkeeping(&self) -> bool {
        match self {
            Op::Calendar(CalendarOp::Stamp { .. }) => true,
            Op::Calendar(
                CalendarOp::Insert { .. }
                | CalendarOp::Patch { .. }
                | CalendarOp::Restore { .. }
                | CalendarOp::Cancel { .. },
            )
            | Op::Hitolink(_) => false,
        }
    }
}

/// Which side won a field both changed, and what the loser said.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Conflict {
    pub field: String,
    pub hitolink: String,
    pub google: String,
    pub winner: String,
}

/// The row of the SPEC table a decision came from; printed by `plan`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Case {
    NothingToDo,
    WaitingForTime,
    CreateEvent,
    Booking,
    Adopt,
    Merge,
    EventVanished,
    InterviewVanished,
    Forget,
    Unmanaged,
    OrphanEvent,
    Retired,
    /// The calendar holds a shape HITO-Link cannot (an all-day or recurring
    /// managed event, a booking on a recurring or foreign event): nothing is
    /// written, and the record is parked or reported with the reason.
    Refused,
}

/// An event that carries an interview's property but is not its managed
/// event: never written, never adopted, reported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LookAlike {
    pub event_id: EventId,
    pub interview_id: InterviewId,
    pub why: String,
}

impl LookAlike {
    pub fn new(event_id: &EventId, interview_id: &InterviewId, shape: EventShape) -> LookAlike {
        LookAlike {
            event_id: event_id.clone(),
            interview_id: interview_id.clone(),
            why: match shape {
                EventShape::Single => {
                    "carries the interview's ID but is not its event (a copy)".to_string()
                }
                other @ (EventShape::AllDay
                | EventShape::Recurring
                | EventShape::Instance
                | EventShape::Foreign) => {
                    format!("carries the interview's ID but is {}", other.describe())
                }
            },
        }
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Op::Calendar(c) => write!(f, "calendar: {c}"),
            Op::Hitolink(h) => write!(f, "HITO-Link: {h}"),
        }
    }
}

impl fmt::Display for CalendarOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let etag = |m: &Option<String>| match m {
            Some(e) => format!(" (If-Match {e})"),
            None => String::new(),
        };
        match self {
            CalendarOp::Insert { event_id, draft } => write!(
                f,
                "insert {event_id} at {} with {} attendees (attendees notified)",
                draft.slot.start.to_rfc3339(),
                draft.attendees.len()
            ),
            CalendarOp::Patch {
                event_id,
                if_match,
                change,
                notify,
            } => write!(
                f,
                "patch {event_id}{}: {} ({})",
                etag(if_match),
                change_words(change),
                match notify {
                    Notify::Attendees => "attendees notified",
                    Notify::Nobody => "nobody notified",
                }
            ),
            CalendarOp::Restore {
                event_id, if_match, ..
            } => write!(
                f,
                "restore {event_id}{} (attendees notified)",
                etag(if_match)
            ),
            CalendarOp::Cancel {
                event_id, if_match, ..
            } => write!(
                f,
                "cancel {event_id}{} (attendees notified)",
                etag(if_match)
            ),
            CalendarOp::Stamp {
                event_id, if_match, ..
            } => write!(
                f,
                "stamp {event_id}{} with the interview ID and agreed digest (nobody notified)",
                etag(if_match)
            ),
        }
    }
}

fn change_words(c: &EventChange) -> String {
    let mut w = vec![];
    if c.time.is_some() {
        w.push("time");
    }
    if c.location.is_some() {
        w.push("place");
    }
    if c.description.is_some() {
        w.push("description");
    }
    if c.summary.is_some() {
        w.push("title");
    }
    if c.attendees.is_some() {
        w.push("attendees");
    }
    if c.single {
        w.push("recurrence removed");
    }
    if !c.private.is_empty() {
        w.push("properties");
    }
    w.join(", ")
}

impl fmt::Display for HitolinkOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HitolinkOp::Patch {
                interview_id,
                if_match,
                change,
            } => {
                let mut w = vec![];
                if change.slot.is_some() {
                    w.push("time");
                }
                if change.location.is_some() {
                    w.push("place");
                }
                if change.meeting_url.is_some() {
                    w.push("meeting URL");
                }
                if change.reopen {
                    w.push(InterviewStatus::Scheduled.as_str());
                }
                if !change.responses.is_empty() {
                    w.push("answers");
                }
                write!(
                    f,
                    "patch {interview_id} (If-Match {if_match}): {}",
                    w.join(", ")
                )
            }
            HitolinkOp::Decline {
                interview_id,
                if_match,
                by,
                ..
            } => match by {
                Decliner::Candidate => {
                    write!(
                        f,
                        "decline {interview_id} by the candidate (If-Match {if_match})"
                    )
                }
                Decliner::Interviewer { interviewer_id } => write!(
                    f,
                    "decline {interview_id} by interviewer {interviewer_id} (If-Match {if_match})"
                ),
            },
            HitolinkOp::Cancel {
                interview_id,
                if_match,
            } => write!(f, "cancel {interview_id} (If-Match {if_match})"),
        }
    }
}
