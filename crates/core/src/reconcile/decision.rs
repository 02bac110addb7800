//! A record's decision as a type whose shape says what may happen: writing
//! nothing, refusing, booking, or a plan of writes. What cannot be (a plan
//! without an agreement to store, a booking mixed with other writes, a
//! refusal that writes) cannot be built.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::ids::{EventId, InterviewId};

use super::ops::{Booking, CalendarOp, Case, Conflict, HitolinkOp, LookAlike, Op};
use super::view::{EventRef, Snapshot};

/// What one record needs this cycle.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "decision", rename_all = "snake_case")]
pub enum Decision {
    /// Nothing to write on either side.
    Quiet(Quiet),
    /// The calendar holds a shape HITO-Link cannot (an all-day or recurring
    /// managed event, a booking marker on a series or a colleague's event):
    /// nothing is written until someone changes the calendar.
    Refused(Refusal),
    /// A booking marker on an unmanaged event: create the interview in
    /// HITO-Link, then decide again with it (which adopts and stamps the
    /// event).
    Book(Book),
    /// Writes, in order, then the agreement to store.
    Write(Box<Plan>),
}

/// A decision that writes nothing remotely.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Quiet {
    pub case: Case,
    pub interview_id: Option<InterviewId>,
    pub event_id: Option<EventId>,
    pub mapping: Mapping,
    pub summary: String,
}

/// What a quiet decision does to the stored agreement.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "mapping", content = "snapshot", rename_all = "snake_case")]
pub enum Mapping {
    /// Nothing hitosync keeps is concerned (an unmanaged event, an
    /// interview still without a time, an orphan).
    Untouched,
    /// The agreement as it stands (echoes of hitosync's own writes refresh
    /// the ETag and version here).
    Agreed(Box<Snapshot>),
    /// Gone on both sides: the mapping is dropped.
    Forget,
}

/// Why nothing can be written for a record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refusal {
    /// `None` for a booking that cannot book.
    pub interview_id: Option<InterviewId>,
    pub event_id: EventId,
    pub reason: String,
}

/// A booking to make in HITO-Link.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Book {
    pub event_id: EventId,
    pub booking: Booking,
}

/// The writes that bring both sides of a mapped interview to the merged
/// target.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    pub case: Case,
    pub interview_id: InterviewId,
    pub event_id: EventId,
    /// Run now, in order, by the executor.
    pub ops: Vec<Op>,
    pub conflicts: Vec<Conflict>,
    /// The agreement once the ops are done. Its `event_ref` is
    /// [`EventRef::Pending`] when the interview's half of the link still
    /// has to be written: that write is the write-back queue's
    /// ([`Snapshot::event_ref_write`]), never one of `ops`.
    pub snapshot: Snapshot,
    pub summary: String,
}

/// A decision with the events that claim its interview without being its
/// event (reported, never written).
#[derive(Debug, Clone, PartialEq)]
pub struct Decided {
    pub decision: Decision,
    pub lookalikes: Vec<LookAlike>,
}

impl Decision {
    pub(super) fn quiet(
        case: Case,
        interview_id: Option<InterviewId>,
        event_id: Option<EventId>,
        mapping: Mapping,
        summary: impl Into<String>,
    ) -> Decision {
        Decision::Quiet(Quiet {
            case,
            interview_id,
            event_id,
            mapping,
            summary: summary.into(),
        })
    }

    pub fn case(&self) -> Case {
        match self {
            Decision::Quiet(q) => q.case,
            Decision::Refused(_) => Case::Refused,
            Decision::Book(_) => Case::Booking,
            Decision::Write(p) => p.case,
        }
    }

    pub fn interview_id(&self) -> Option<&InterviewId> {
        match self {
            Decision::Quiet(q) => q.interview_id.as_ref(),
            Decision::Refused(r) => r.interview_id.as_ref(),
            Decision::Book(_) => None,
            Decision::Write(p) => Some(&p.interview_id),
        }
    }

    pub fn event_id(&self) -> Option<&EventId> {
        match self {
            Decision::Quiet(q) => q.event_id.as_ref(),
            Decision::Refused(r) => Some(&r.event_id),
            Decision::Book(b) => Some(&b.event_id),
            Decision::Write(p) => Some(&p.event_id),
        }
    }

    /// The operations a plan runs now (none for the other decisions).
    pub fn ops(&self) -> &[Op] {
        match self {
            Decision::Write(p) => &p.ops,
            Decision::Quiet(_) | Decision::Refused(_) | Decision::Book(_) => &[],
        }
    }

    pub fn conflicts(&self) -> &[Conflict] {
        match self {
            Decision::Write(p) => &p.conflicts,
            Decision::Quiet(_) | Decision::Refused(_) | Decision::Book(_) => &[],
        }
    }

    /// The agreement this decision leaves, if it keeps one.
    pub fn snapshot(&self) -> Option<&Snapshot> {
        match self {
            Decision::Write(p) => Some(&p.snapshot),
            Decision::Quiet(Quiet {
                mapping: Mapping::Agreed(s),
                ..
            }) => Some(s),
            Decision::Quiet(_) | Decision::Refused(_) | Decision::Book(_) => None,
        }
    }

    pub fn refusal(&self) -> Option<&str> {
        match self {
            Decision::Refused(r) => Some(&r.reason),
            Decision::Quiet(_) | Decision::Book(_) | Decision::Write(_) => None,
        }
    }

    /// What changed, in words, for logs, `plan` and `inspect`.
    pub fn summary(&self) -> String {
        match self {
            Decision::Quiet(q) => q.summary.clone(),
            Decision::Refused(r) => format!("refused: {}", r.reason),
            Decision::Book(b) => format!(
                "booking {} in the calendar: create the interview for application {}, then stamp the event",
                b.event_id, b.booking.application_id
            ),
            Decision::Write(p) => p.summary.clone(),
        }
    }

    /// Writes nothing anywhere.
    pub fn is_quiet(&self) -> bool {
        match self {
            Decision::Quiet(_) | Decision::Refused(_) => true,
            Decision::Book(_) | Decision::Write(_) => false,
        }
    }

    /// Cancels an event or an interview: counted by the mass-deletion breaker.
    pub fn is_destructive(&self) -> bool {
        self.ops().iter().any(Op::is_destructive)
    }

    /// Writes only what nobody sees (a stamp, the queued write-back): it may
    /// wait behind every visible write.
    pub fn is_bookkeeping(&self) -> bool {
        match self {
            Decision::Write(p) => p.ops.iter().all(Op::is_bookkeeping),
            Decision::Quiet(_) | Decision::Refused(_) | Decision::Book(_) => false,
        }
    }

    /// Its calendar write mails attendees.
    pub fn notifies(&self) -> bool {
        self.calendar_op().is_some_and(CalendarOp::notifies)
    }

    pub fn calendar_op(&self) -> Option<&CalendarOp> {
        self.ops().iter().find_map(|o| match o {
            Op::Calendar(c) => Some(c),
            Op::Hitolink(_) => None,
        })
    }

    pub fn hitolink_ops(&self) -> impl Iterator<Item = &HitolinkOp> {
        self.ops().iter().filter_map(|o| match o {
            Op::Hitolink(h) => Some(h),
            Op::Calendar(_) => None,
        })
    }

    /// Every remote write the decision leads to, in words: the plan's
    /// operations, the write-back it queues, the booking it makes.
    pub fn writes(&self) -> Vec<String> {
        match self {
            Decision::Quiet(_) | Decision::Refused(_) => vec![],
            Decision::Book(b) => vec![format!(
                "HITO-Link: book application {} from event {} (Idempotency-Key {})",
                b.booking.application_id, b.event_id, b.event_id
            )],
            Decision::Write(p) => {
                let mut w: Vec<String> = p.ops.iter().map(ToString::to_string).collect();
                if let Some(q) = p.snapshot.event_ref_write() {
                    w.push(format!("HITO-Link: {q} (queued)"));
                }
                w
            }
        }
    }

    /// The summary and the writes, in one line, for the log, the intent
    /// journal and a record's history.
    pub fn log_line(&self) -> String {
        let writes = self.writes();
        if writes.is_empty() {
            return format!("{}; no write", self.summary());
        }
        format!("{}; {}", self.summary(), writes.join("; "))
    }
}

impl Plan {
    /// A plan with nothing left to do is a quiet decision that keeps the
    /// new agreement.
    pub(super) fn into_decision(self) -> Decision {
        if self.ops.is_empty()
            && self.conflicts.is_empty()
            && self.snapshot.event_ref_write().is_none()
        {
            return Decision::Quiet(Quiet {
                case: self.case,
                interview_id: Some(self.interview_id),
                event_id: Some(self.event_id),
                mapping: Mapping::Agreed(Box::new(self.snapshot)),
                summary: self.summary,
            });
        }
        Decision::Write(Box::new(self))
    }
}

/// The interview's half of the link, as the write-back queue writes it:
/// `PATCH external_event_id`, against the version the agreement remembers.
/// Pure bookkeeping, so it may trail behind every calendar write.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventRefWrite {
    pub interview_id: InterviewId,
    pub if_match: u64,
    pub event_id: EventId,
}

impl fmt::Display for EventRefWrite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "write back external_event_id = {} on {} (If-Match {})",
            self.event_id, self.interview_id, self.if_match
        )
    }
}

impl Snapshot {
    /// The write that finishes the interview's half of the link, while it
    /// is pending and the interview lives.
    pub fn event_ref_write(&self) -> Option<EventRefWrite> {
        (self.event_ref == EventRef::Pending && !self.retired).then(|| EventRefWrite {
            interview_id: self.interview_id.clone(),
            if_match: self.hl_version,
            event_id: self.event_id.clone(),
        })
    }
}
