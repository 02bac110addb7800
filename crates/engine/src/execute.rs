//! Carries out one plan's operations, in order, through the ports, and a
//! booking. An exhaustive `match` over the typed operations: there is no
//! write of an unknown form. What a failure means comes from the error
//! itself (its `Disposition`): cycle-ending failures (auth, a side down)
//! come back as errors; what concerns one record comes back as a [`Step`].

use hitosync_core::ids::{EventId, InterviewId};
use hitosync_core::model::{CalendarEvent, EventStatus, Interview};
use hitosync_core::reconcile::{
    Book, CalendarOp, HitolinkOp, Notify, Op, Plan, Seen, Snapshot, derived_event_id,
};
use hitosync_google::GoogleError;
use hitosync_hitolink::{HitolinkError, InterviewPatch, NewInterview};
use hitosync_net::disposition::{Disposed, Disposition};

use crate::work::WorkItem;
use crate::{Engine, EngineError};

/// The result of carrying out one decision.
pub(crate) enum Step {
    Done {
        /// The agreement to store: the plan's, with what the writes
        /// answered (ETag, version, attendees).
        snapshot: Box<Snapshot>,
        writes: Writes,
    },
    /// Decide again with these observations (a 412, a 409 to adopt, a
    /// booking that now has its interview).
    Again {
        hitolink: Box<Seen<Interview>>,
        calendar: Box<Seen<CalendarEvent>>,
        interview_id: Option<InterviewId>,
        writes: Writes,
    },
    Park(String),
    /// Google's invitation limit: writes that notify attendees wait until
    /// it lifts.
    HoldInvitations(String),
}

/// Remote writes made, per side.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Writes {
    pub calendar: usize,
    pub hitolink: usize,
}

impl Writes {
    pub(crate) fn add(&mut self, w: Writes) {
        self.calendar += w.calendar;
        self.hitolink += w.hitolink;
    }
}

impl Engine<'_> {
    pub(crate) async fn execute(&self, plan: &Plan, item: &WorkItem) -> Result<Step, EngineError> {
        let mut writes = Writes::default();
        let interview_id = Some(plan.interview_id.clone());
        let mut event_after: Option<CalendarEvent> = None;
        let mut iv_after: Option<Interview> = None;
        // Each HITO-Link write goes against the version the previous one
        // answered with (see `HitolinkOp`).
        let mut version: Option<u64> = None;
        for op in &plan.ops {
            match op {
                Op::Calendar(c) => {
                    let again = |calendar: Seen<CalendarEvent>, writes| Step::Again {
                        hitolink: Box::new(item.hitolink.clone()),
                        calendar: Box::new(calendar),
                        interview_id: interview_id.clone(),
                        writes,
                    };
                    let e = match self.calendar_write(c).await {
                        Ok(ev) => {
                            writes.calendar += 1;
                            event_after = Some(ev);
                            continue;
                        }
                        Err(e) => e,
                    };
                    match e.disposition() {
                        // 409: made before a crash or by a store that was
                        // lost: adopt. 412: changed under us. Either way:
                        // read it, decide again.
                        Disposition::ReadAgain => {
                            let ev = self.get_event(c.event_id()).await?;
                            // The event is another interview's.
                            let taken = match (&ev, &interview_id) {
                                (Seen::Now(e), Some(iid)) => e
                                    .interview_id()
                                    .filter(|other| *other != iid)
                                    .map(|other| (e, other)),
                                (Seen::Now(_) | Seen::NoNews | Seen::Gone, _) => None,
                            };
                            if let (Some((e, other)), Some(iid)) = (taken, &interview_id) {
                                // The interview named an event that is
                                // another's (an admin's edit): make its own
                                // under the derived ID, and the write-back
                                // sets the name right.
                                let renamed = matches!(c, CalendarOp::Insert { .. })
                                    && *c.event_id() != derived_event_id(iid);
                                if let Some(iv) = item.hitolink.now().filter(|_| renamed) {
                                    let mut iv = iv.clone();
                                    iv.external_event_id = None;
                                    return Ok(Step::Again {
                                        hitolink: Box::new(Seen::Now(iv)),
                                        calendar: Box::new(Seen::NoNews),
                                        interview_id: interview_id.clone(),
                                        writes,
                                    });
                                }
                                return Ok(Step::Park(format!(
                                    "the event ID {} is taken by interview {other}; hitosync cannot make this interview's event there",
                                    e.id
                                )));
                            }
                            return Ok(again(ev, writes));
                        }
                        Disposition::Gone => return Ok(again(Seen::Gone, writes)),
                        Disposition::RetryLater => {
                            return Ok(Step::Park(format!(
                                "calendar write failed, retried later: {e}"
                            )));
                        }
                        Disposition::Rejected => {
                            return Ok(Step::Park(format!("the calendar rejected the write: {e}")));
                        }
                        Disposition::HoldNotifications => {
                            return Ok(Step::HoldInvitations(e.to_string()));
                        }
                        Disposition::StartOver | Disposition::EndCycle | Disposition::Stopped => {
                            return Err(EngineError::Google(e));
                        }
                    }
                }
                Op::Hitolink(w) => {
                    let again = |hitolink: Seen<Interview>, writes| Step::Again {
                        hitolink: Box::new(hitolink),
                        calendar: Box::new(
                            event_after
                                .clone()
                                .map(Seen::Now)
                                .unwrap_or_else(|| item.calendar.clone()),
                        ),
                        interview_id: interview_id.clone(),
                        writes,
                    };
                    let e = match self.hitolink_write(w, version).await {
                        Ok(iv) => {
                            writes.hitolink += 1;
                            version = Some(iv.version);
                            iv_after = Some(iv);
                            continue;
                        }
                        Err(e) => e,
                    };
                    match e.disposition() {
                        Disposition::ReadAgain => {
                            // A 412 answers with the record as it is now.
                            let current = if let HitolinkError::PreconditionFailed {
                                current: Some(cur),
                                ..
                            } = e
                            {
                                Seen::Now(*cur)
                            } else {
                                self.get_interview(w.interview_id()).await?
                            };
                            return Ok(again(current, writes));
                        }
                        Disposition::Gone => return Ok(again(Seen::Gone, writes)),
                        Disposition::Rejected => {
                            return Ok(Step::Park(format!("HITO-Link rejected the write: {e}")));
                        }
                        // HITO-Link has no invitation limit; a hold would
                        // be the record's alone.
                        Disposition::RetryLater | Disposition::HoldNotifications => {
                            return Ok(Step::Park(format!(
                                "HITO-Link write failed, retried later: {e}"
                            )));
                        }
                        Disposition::StartOver | Disposition::EndCycle | Disposition::Stopped => {
                            return Err(EngineError::Hitolink(e));
                        }
                    }
                }
            }
        }
        let mut snapshot = plan.snapshot.clone();
        if let Some(ev) = &event_after {
            snapshot.event_etag = ev.etag.clone();
            snapshot.event_attendees = ev.attendees.clone();
        }
        if let Some(iv) = &iv_after {
            snapshot.hl_version = iv.version;
        }
        Ok(Step::Done {
            snapshot: Box::new(snapshot),
            writes,
        })
    }

    async fn calendar_write(&self, op: &CalendarOp) -> Result<CalendarEvent, GoogleError> {
        match op {
            CalendarOp::Insert { event_id, draft } => {
                self.calendar
                    .insert(event_id, draft, Notify::Attendees)
                    .await
            }
            CalendarOp::Patch {
                event_id,
                if_match,
                change,
                notify,
            } => {
                self.calendar
                    .patch(event_id, None, change, if_match.as_deref(), *notify)
                    .await
            }
            CalendarOp::Restore {
                event_id,
                if_match,
                change,
            } => {
                self.calendar
                    .patch(
                        event_id,
                        Some(EventStatus::Confirmed),
                        change,
                        if_match.as_deref(),
                        Notify::Attendees,
                    )
                    .await
            }
            CalendarOp::Cancel {
                event_id,
                if_match,
                change,
            } => {
                self.calendar
                    .patch(
                        event_id,
                        Some(EventStatus::Cancelled),
                        change,
                        if_match.as_deref(),
                        Notify::Attendees,
                    )
                    .await
            }
            CalendarOp::Stamp {
                event_id,
                if_match,
                private,
            } => {
                let change = hitosync_core::reconcile::EventChange {
                    private: private.clone(),
                    ..Default::default()
                };
                self.calendar
                    .patch(event_id, None, &change, if_match.as_deref(), Notify::Nobody)
                    .await
            }
        }
    }

    /// One HITO-Link write; `version` is what the previous write of this
    /// plan answered with.
    pub(crate) async fn hitolink_write(
        &self,
        op: &HitolinkOp,
        version: Option<u64>,
    ) -> Result<Interview, HitolinkError> {
        match op {
            HitolinkOp::Patch {
                interview_id,
                if_match,
                change,
            } => {
                self.hitolink
                    .patch(
                        interview_id,
                        InterviewPatch::Change(change),
                        version.unwrap_or(*if_match),
                    )
                    .await
            }
            HitolinkOp::Decline {
                interview_id,
                if_match,
                by,
                idempotency_key,
            } => {
                self.hitolink
                    .decline(
                        interview_id,
                        by,
                        None,
                        version.unwrap_or(*if_match),
                        idempotency_key,
                    )
                    .await
            }
            HitolinkOp::Cancel {
                interview_id,
                if_match,
            } => {
                self.hitolink
                    .patch(
                        interview_id,
                        InterviewPatch::Cancel,
                        version.unwrap_or(*if_match),
                    )
                    .await
            }
        }
    }

    pub(crate) async fn get_interview(
        &self,
        id: &InterviewId,
    ) -> Result<Seen<Interview>, EngineError> {
        match self.hitolink.get(id).await {
            Ok(iv) => Ok(Seen::Now(iv)),
            Err(e) if e.disposition() == Disposition::Gone => Ok(Seen::Gone),
            Err(e) => Err(EngineError::Hitolink(e)),
        }
    }

    pub(crate) async fn get_event(&self, id: &EventId) -> Result<Seen<CalendarEvent>, EngineError> {
        match self.calendar.get(id).await {
            Ok(ev) => Ok(Seen::Now(ev)),
            Err(e) if e.disposition() == Disposition::Gone => Ok(Seen::Gone),
            Err(e) => Err(EngineError::Google(e)),
        }
    }

    /// A booking: check the application, create the interview (the event
    /// ID is the idempotency key, so a replay returns the same interview),
    /// then decide again with both sides present, which stamps the event.
    pub(crate) async fn book(&self, b: &Book, item: &WorkItem) -> Result<Step, EngineError> {
        let Some(ev) = item.calendar.now().filter(|e| e.id == b.event_id) else {
            return Ok(Step::Park("a booking without its event".into()));
        };
        let booking = &b.booking;
        let app = match self.hitolink.application(&booking.application_id).await {
            Ok(a) => a,
            Err(e) => {
                return match e.disposition() {
                    Disposition::Gone => Ok(Step::Park(format!(
                        "booking names application {} which HITO-Link does not know; fix the marker in the event",
                        booking.application_id
                    ))),
                    Disposition::Rejected => Ok(Step::Park(format!(
                        "HITO-Link refused to look up application {}: {e}",
                        booking.application_id
                    ))),
                    Disposition::RetryLater
                    | Disposition::ReadAgain
                    | Disposition::HoldNotifications => Ok(Step::Park(format!(
                        "HITO-Link lookup failed, retried later: {e}"
                    ))),
                    Disposition::StartOver | Disposition::EndCycle | Disposition::Stopped => {
                        Err(EngineError::Hitolink(e))
                    }
                };
            }
        };
        let candidate = app.candidate.email.as_deref().map(str::to_ascii_lowercase);
        let new = NewInterview {
            application_id: booking.application_id.clone(),
            selection_step_id: None,
            start: booking.slot.start,
            end: booking.slot.end,
            time_zone: booking.time_zone.clone(),
            interviewers: booking
                .guests
                .iter()
                .filter(|g| Some(g.as_str()) != candidate.as_deref())
                .cloned()
                .collect(),
            external_event_id: ev.id.to_string(),
            location: booking.location.clone(),
            video_conferencing_url: booking.meeting_url.clone(),
        };
        let created = match self.hitolink.create(&new, &ev.id).await {
            Ok(created) => created,
            Err(e) => {
                return match e.disposition() {
                    Disposition::Rejected | Disposition::Gone => {
                        Ok(Step::Park(format!("HITO-Link refused the booking: {e}")))
                    }
                    Disposition::RetryLater
                    | Disposition::ReadAgain
                    | Disposition::HoldNotifications => {
                        Ok(Step::Park(format!("booking failed, retried later: {e}")))
                    }
                    Disposition::StartOver | Disposition::EndCycle | Disposition::Stopped => {
                        Err(EngineError::Hitolink(e))
                    }
                };
            }
        };
        // A replayed key answers with the record as it was first made; what
        // counts is how it is now.
        let id = created.id.clone();
        let hitolink = match self.get_interview(&id).await {
            Ok(h) => h,
            // Stopped or cut off: the intent stays, the next cycle reads
            // the booking again (the key makes it the same interview).
            Err(e) if e.disposition().ends_cycle() => return Err(e),
            Err(e) => {
                return Ok(Step::Park(format!(
                    "reading back the booked interview failed: {e}"
                )));
            }
        };
        Ok(Step::Again {
            hitolink: Box::new(hitolink),
            calendar: Box::new(Seen::Now(ev.clone())),
            interview_id: Some(id),
            writes: Writes {
                calendar: 0,
                hitolink: 1,
            },
        })
    }
}
