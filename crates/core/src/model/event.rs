//! The calendar side: one event of the organizer calendar as hitosync
//! needs to see it, whatever client read it, and which shapes of event
//! hitosync may manage. Kept apart from the interview because nothing here
//! is validated: Google's answers are taken as they come.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{INTERVIEW_ID_PROPERTY, Response, Slot};
use crate::ids::EventId;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventStatus {
    #[default]
    Confirmed,
    Tentative,
    Cancelled,
}

impl EventStatus {
    pub fn parse(s: &str) -> EventStatus {
        match s {
            "cancelled" => EventStatus::Cancelled,
            "tentative" => EventStatus::Tentative,
            _ => EventStatus::Confirmed,
        }
    }
    pub fn google(self) -> &'static str {
        match self {
            EventStatus::Confirmed => "confirmed",
            EventStatus::Tentative => "tentative",
            EventStatus::Cancelled => "cancelled",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attendee {
    pub email: String,
    pub display_name: Option<String>,
    pub response: Response,
    /// The event's organizer, as Google lists it among the attendees of
    /// events made in the web UI.
    pub organizer: bool,
    /// A room or other resource: never an interviewer or a candidate.
    #[serde(default)]
    pub resource: bool,
    /// The calendar's own user (the 予約元 address).
    #[serde(default, rename = "self")]
    pub is_self: bool,
}

impl Attendee {
    /// A person invited by hitosync or by hand, as opposed to the organizer's
    /// own entry or a room.
    pub fn is_guest(&self) -> bool {
        !self.organizer && !self.resource && !self.is_self
    }
}

/// Who organizes an event. Google's `organizer.self` says whether it is the
/// calendar's own user; an invitation from a colleague has someone else.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Organizer {
    pub email: Option<String>,
    #[serde(rename = "self")]
    pub is_self: bool,
}

/// One event of the organizer calendar, as hitosync needs to see it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CalendarEvent {
    pub id: EventId,
    pub etag: String,
    pub status: EventStatus,
    pub summary: Option<String>,
    pub description: Option<String>,
    pub location: Option<String>,
    /// None for all-day events and for tombstones, which carry no times.
    pub slot: Option<Slot>,
    pub time_zone: Option<String>,
    pub attendees: Vec<Attendee>,
    pub private_properties: BTreeMap<String, String>,
    pub sequence: i64,
    pub updated: Option<DateTime<Utc>>,
    /// When the event was made: among events claiming one interview with
    /// nothing else to tell them apart, the first made is the original.
    #[serde(default)]
    pub created: Option<DateTime<Utc>>,
    /// None where Google did not say (tombstones carry only an id).
    #[serde(default)]
    pub organizer: Option<Organizer>,
    /// The event starts and ends on dates, not at times.
    #[serde(default)]
    pub all_day: bool,
    /// The master of a recurring series (it has `recurrence` rules).
    #[serde(default)]
    pub recurring: bool,
    /// An instance of a recurring series: the series' id.
    #[serde(default)]
    pub recurring_event_id: Option<String>,
}

/// What kind of event this is, as far as hitosync may manage it. Only a
/// single timed event the organizer organizes is ever written; the rest is
/// left alone even when it carries the interview property (a copy, an
/// invitation, an instance whose series carries it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventShape {
    /// A single timed event of the organizer's.
    Single,
    /// The organizer's, but all-day: HITO-Link cannot hold its time.
    AllDay,
    /// The organizer's recurring series: HITO-Link cannot hold it.
    Recurring,
    /// One instance of a recurring series.
    Instance,
    /// Organized by someone else: an invitation on the organizer calendar.
    Foreign,
}

impl EventShape {
    pub fn describe(self) -> &'static str {
        match self {
            EventShape::Single => "a single timed event",
            EventShape::AllDay => "an all-day event",
            EventShape::Recurring => "a recurring series",
            EventShape::Instance => "an instance of a recurring series",
            EventShape::Foreign => "an event organized by someone else",
        }
    }
}

impl CalendarEvent {
    /// The interview this event mirrors, when hitosync manages it.
    pub fn interview_id(&self) -> Option<&str> {
        self.private_properties
            .get(INTERVIEW_ID_PROPERTY)
            .map(String::as_str)
    }

    /// `organizer` is the address hitosync acts as (lowercase). An event
    /// that does not say who organizes it (a tombstone) counts as the
    /// calendar's own.
    pub fn shape(&self, organizer: &str) -> EventShape {
        let foreign = self.organizer.as_ref().is_some_and(|o| {
            !o.is_self
                && o.email
                    .as_deref()
                    .is_some_and(|e| !e.eq_ignore_ascii_case(organizer))
        });
        if foreign {
            EventShape::Foreign
        } else if self.recurring_event_id.is_some() {
            EventShape::Instance
        } else if self.recurring {
            EventShape::Recurring
        } else if self.all_day {
            EventShape::AllDay
        } else {
            EventShape::Single
        }
    }
}
