//! Both sides reduced to the same terms: the synced [`Fields`], what
//! HITO-Link alone owns ([`Presentation`]), and the agreement both last
//! reached ([`Snapshot`]).

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::Policy;
use crate::ids::{EventId, InterviewId};
use crate::model::{
    Attendee, CalendarEvent, EventStatus, Interview, InterviewStatus, Response, Slot,
};
use crate::policy::OnDecline;

/// The private property holding a digest of the agreed fields. After the
/// store is lost it tells which side, if any, changed since the last
/// agreement, so rebuilding the mapping loses no change.
pub const AGREED_DIGEST_PROPERTY: &str = "hitolinkAgreed";

/// The line of an event's description that carries the meeting link.
pub const MEETING_URL_LABEL: &str = "Web会議: ";

/// The synced state of one interview, as either side shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fields {
    /// Off the calendar: cancelled, deleted, declined (with `cancel-event`),
    /// or back to needs-scheduling.
    pub cancelled: bool,
    pub slot: Option<Slot>,
    pub location: Option<String>,
    /// The meeting URL (`video_conferencing_url`; the event description's
    /// [`MEETING_URL_LABEL`] line). Named `link` in the stored JSON, which the
    /// agreed digest is computed from.
    #[serde(rename = "link")]
    pub meeting_url: Option<String>,
    pub candidate_declined: bool,
    /// Each interviewer's answer, by lowercase email.
    pub responses: BTreeMap<String, Response>,
}

impl Fields {
    /// A short digest, stored on the event as [`AGREED_DIGEST_PROPERTY`].
    /// Its input is the JSON of `Fields` in declaration order; a change to
    /// that (a field added, renamed or reordered) changes every digest and
    /// turns every lost-store rebuild into "both sides changed", which is
    /// why a unit test pins it.
    pub fn digest(&self) -> String {
        let json = serde_json::to_vec(self).unwrap_or_default();
        let hash = Sha256::digest(&json);
        hash.iter().take(8).map(|b| format!("{b:02x}")).collect()
    }
}

/// What HITO-Link owns alone: the event's title, its description and who is
/// invited. Calendar-side edits to these are not synced back (HITO-Link's
/// API cannot take them), so they are compared with what was last written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Presentation {
    pub title: String,
    pub description: String,
    /// Lowercase emails: the interviewers, and the candidate when invited.
    pub invitees: BTreeSet<String>,
    pub time_zone: String,
}

/// Whether the interview's half of the link (`external_event_id`) is known
/// to name the mapped event. The event's half (`hitolinkInterviewId`) is
/// written with every calendar write and checked whenever the event is
/// seen, so only this half needs remembering.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventRef {
    /// Seen or written: `external_event_id` names the event.
    Written,
    /// Not written yet (a write-back waits in its queue, or was lost to a
    /// crash): written the next time the record is decided.
    Pending,
    /// A store from before hitosync remembered this: checked the next time
    /// the interview is seen (the nightly full resync sees them all).
    #[default]
    Unknown,
}

/// What both sides last agreed on, per mapped interview.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    pub interview_id: InterviewId,
    pub event_id: EventId,
    pub fields: Fields,
    pub presentation: Presentation,
    pub candidate_email: Option<String>,
    /// Interviewer id by email, for `decline {by: interviewer}`.
    pub interviewer_ids: BTreeMap<String, String>,
    pub hl_version: u64,
    pub event_etag: String,
    /// The attendees as last seen on the event, so that guests the
    /// organizer added by hand survive hitosync's attendee writes.
    pub event_attendees: Vec<Attendee>,
    /// HITO-Link deleted the interview: the mapping is kept only so that
    /// the event is never brought back.
    pub retired: bool,
    /// The interview's half of the link (`external_event_id`).
    #[serde(default, rename = "link")]
    pub event_ref: EventRef,
}

/// The event ID of an interview: base32hex of its ID, so that a create
/// retried after a crash or a lost store meets `409` instead of making a
/// second event.
pub fn derived_event_id(interview_id: &str) -> EventId {
    let mut id = data_encoding::BASE32HEX_NOPAD
        .encode(interview_id.as_bytes())
        .to_ascii_lowercase();
    while id.len() < 5 {
        id.push('0');
    }
    id.truncate(1024);
    EventId::new(id)
}

/// HITO-Link's view of the synced fields.
pub fn hitolink_view(iv: &Interview, policy: &Policy) -> Fields {
    let declined = iv.status == InterviewStatus::CandidateDeclined;
    Fields {
        cancelled: iv.deleted
            || iv.status == InterviewStatus::Canceled
            || iv.status == InterviewStatus::NeedsScheduling
            || iv.slot.is_none()
            || (declined && policy.on_decline == OnDecline::CancelEvent),
        slot: iv.slot,
        location: iv.location.clone(),
        meeting_url: iv.meeting_url.clone(),
        candidate_declined: declined,
        responses: iv
            .interviewers
            .iter()
            .map(|i| (i.email.to_ascii_lowercase(), i.response))
            .collect(),
    }
}

/// The calendar's view, read against `base` (the agreed fields, or the
/// HITO-Link view when there is no agreement yet): what the event does not
/// show is taken as unchanged, and a cancelled event shows only that.
///
/// `needsAction` is never news from the calendar: nobody chooses it, and
/// Google may reset answers to it when an event's time changes. Reading it
/// as "unchanged" keeps such a reset from travelling to HITO-Link and from
/// starting a write loop.
pub fn calendar_view(ev: &CalendarEvent, base: &Fields, candidate_email: Option<&str>) -> Fields {
    if ev.status == EventStatus::Cancelled {
        return Fields {
            cancelled: true,
            ..base.clone()
        };
    }
    let response_of = |email: &str| {
        ev.attendees
            .iter()
            .filter(|a| a.is_guest())
            .find(|a| a.email.eq_ignore_ascii_case(email))
            .map(|a| a.response)
            .filter(|r| *r != Response::NeedsAction)
    };
    Fields {
        cancelled: false,
        slot: ev.slot.or(base.slot),
        location: ev.location.clone().filter(|l| !l.trim().is_empty()),
        meeting_url: ev.description.as_deref().and_then(parse_meeting_url),
        candidate_declined: match candidate_email.and_then(response_of) {
            Some(r) => r == Response::Declined,
            None => base.candidate_declined,
        },
        responses: base
            .responses
            .iter()
            .map(|(email, r)| (email.clone(), response_of(email).unwrap_or(*r)))
            .collect(),
    }
}

/// The meeting link in a description: the line starting with
/// [`MEETING_URL_LABEL`], in plain text or in the HTML the web editor saves.
pub fn parse_meeting_url(description: &str) -> Option<String> {
    let text = description_text(description);
    text.lines()
        .find_map(|l| l.trim().strip_prefix(MEETING_URL_LABEL.trim_end()))
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

/// A description as text. Google's web editor stores what a person edits
/// as HTML (`<br>` between lines, links as `<a href>`), while the API keeps
/// what was written; both must read the same. Plain text is left as it is:
/// read as HTML, its line breaks would collapse into spaces.
pub fn description_text(description: &str) -> std::borrow::Cow<'_, str> {
    if !looks_like_html(description) {
        return std::borrow::Cow::Borrowed(description);
    }
    // The trivial decorator writes a link's text and nothing else (no
    // brackets, no footnotes); the editor makes a URL its own link text.
    match html2text::config::with_decorator(html2text::render::TrivialDecorator::new())
        .no_link_wrapping()
        .allow_width_overflow()
        .string_from_read(description.as_bytes(), 4096)
    {
        Ok(text) => std::borrow::Cow::Owned(text),
        // Not HTML after all (html2text only fails on width limits, which
        // allow_width_overflow lifts): read it as written.
        Err(_) => std::borrow::Cow::Borrowed(description),
    }
}

/// The markup the web editor writes; a plain description that happens to
/// hold a `<` (“<3”) does not count.
fn looks_like_html(s: &str) -> bool {
    let lower = s.to_ascii_lowercase();
    [
        "<br", "</", "<a ", "<p>", "<div", "<span", "<b>", "<i>", "<u>", "<ul", "<ol", "&nbsp;",
        "&amp;",
    ]
    .iter()
    .any(|tag| lower.contains(tag))
}

/// A description less its link line: what HITO-Link owns in it.
pub(super) fn without_meeting_url(description: &str) -> String {
    description
        .lines()
        .filter(|l| !l.trim().starts_with(MEETING_URL_LABEL.trim_end()))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Title, description and invitees as HITO-Link says they should be. The
/// description puts every item on its own line, so that the web editor's
/// HTML (a `<br>` per line) reads back line for line.
pub fn presentation(iv: &Interview, policy: &Policy) -> Presentation {
    let step = iv
        .selection_step
        .as_ref()
        .map(|s| s.name.as_str())
        .unwrap_or("");
    let title = policy
        .title_template
        .replace("{candidate}", &iv.candidate.display_name)
        .replace("{step}", step)
        .replace("{job}", &iv.job.name)
        .trim()
        .to_string();
    let mut description = format!(
        "HITO-Link 面接 {}\n応募者: {}\n求人: {}\n",
        iv.id, iv.candidate.display_name, iv.job.name
    );
    if !step.is_empty() {
        description.push_str(&format!("選考ステップ: {step}\n"));
    }
    if let Some(link) = &iv.meeting_url {
        description.push_str(&format!("{MEETING_URL_LABEL}{link}\n"));
    }
    let mut invitees: BTreeSet<String> = iv
        .interviewers
        .iter()
        .map(|i| i.email.to_ascii_lowercase())
        .collect();
    if let Some(e) = iv
        .candidate
        .email
        .as_ref()
        .filter(|_| policy.invite_candidate)
    {
        invitees.insert(e.to_ascii_lowercase());
    }
    Presentation {
        title,
        description,
        invitees,
        time_zone: iv.time_zone.name().to_string(),
    }
}
