//! The two kinds of record hitosync keeps in step, in their canonical form.
//!
//! HITO-Link records arrive as JSON that is only trusted after validation:
//! [`InterviewRecord`] mirrors the wire format leniently (strings where the
//! API promises a closed vocabulary), and [`Interview::from_record`] turns it
//! into a typed [`Interview`] or an [`Unsyncable`] that says why. One bad
//! record therefore never fails a whole page of the change feed, and never
//! disappears silently: it is parked and shown by `status`.
//!
//! The interview (wire record and validated form) is in `interview`, the
//! calendar event in `event`; what both sides share (an answer, a time
//! slot, the property that links them) is here.

mod event;
mod interview;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

pub use crate::unreadable::UnreadableItem;
pub use event::{Attendee, CalendarEvent, EventShape, EventStatus, Organizer};
pub use interview::{
    Decline, DeclineRecord, DeclinedBy, Format, Interview, InterviewRecord, InterviewStatus,
    Interviewer, InterviewerRecord, Named, Person, Unsyncable,
};

/// The private extended property that marks an event as managed by hitosync
/// and names the interview it mirrors.
pub const INTERVIEW_ID_PROPERTY: &str = "hitolinkInterviewId";

/// An attendee's answer. HITO-Link and Google use the same four words,
/// spelled differently (`needs_action` / `needsAction`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Response {
    NeedsAction,
    Accepted,
    Tentative,
    Declined,
}

impl Response {
    pub fn from_hitolink(s: &str) -> Option<Response> {
        Some(match s {
            "needs_action" => Response::NeedsAction,
            "accepted" => Response::Accepted,
            "tentative" => Response::Tentative,
            "declined" => Response::Declined,
            _ => return None,
        })
    }
    pub fn hitolink(self) -> &'static str {
        match self {
            Response::NeedsAction => "needs_action",
            Response::Accepted => "accepted",
            Response::Tentative => "tentative",
            Response::Declined => "declined",
        }
    }
    pub fn from_google(s: &str) -> Option<Response> {
        Some(match s {
            "needsAction" => Response::NeedsAction,
            "accepted" => Response::Accepted,
            "tentative" => Response::Tentative,
            "declined" => Response::Declined,
            _ => return None,
        })
    }
    pub fn google(self) -> &'static str {
        match self {
            Response::NeedsAction => "needsAction",
            Response::Accepted => "accepted",
            Response::Tentative => "tentative",
            Response::Declined => "declined",
        }
    }
}

/// A time slot as two instants. Offsets are dropped on purpose: HITO-Link
/// may answer in another offset than it was sent, so only instants compare.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Slot {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn response_words_map_both_ways() {
        for r in [
            Response::NeedsAction,
            Response::Accepted,
            Response::Tentative,
            Response::Declined,
        ] {
            assert_eq!(Response::from_hitolink(r.hitolink()), Some(r));
            assert_eq!(Response::from_google(r.google()), Some(r));
        }
    }
}
