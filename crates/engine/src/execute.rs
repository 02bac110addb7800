//! Carries out one decision's operations, in order, through the ports.
//! An exhaustive `match` over the typed operations: there is no write of an
//! unknown form. Cycle-ending failures (auth, a side down) come back as
//! errors; what concerns one record comes back as a [`Step`].

use hitosync_core::model::{CalendarEvent, EventStatus, Interview};
use hitosync_core::reconcile::{
    Booking, CalendarOp, Decision, HitolinkOp, Notify, Op, Snapshot, derived_event_id,
};
use hitosync_google::GoogleError;
use hitosync_hitolink::{HitolinkError, InterviewPatch, NewInterview};

use crate::work::Obs;
use crate::{Engine, EngineError};

/// The result of carrying out one decision.
pub(crate) enum Step {
    Done {
        snapshot: Box<Option<Snapshot>>,
        /// The interview's half of the link was left to the write-back
        /// queue: the snapshot says it is pending.
        link_deferred: bool,
        writes: Writes,
    },
    /// Decide again with these observations (a 412, a 409 to adopt, a
    /// booking that now has its interview).
    Again {
        h: Box<Obs<Interview>>,
        g: Box<Obs<CalendarEvent>>,
        interview_id: Option<String>,
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

impl Engine<'_> {
    pub(crate) async fn execute(
        &self,
        d: &Decision,
        h: &Obs<Interview>,
        g: &Obs<CalendarEvent>,
    ) -> Result<Step, EngineError> {
        let mut writes = Writes::default();
        let interview_id = d.interview_id.clone();
        let mut event_after: Option<CalendarEvent> = None;
        let mut iv_after: Option<Interview> = None;
        let mut link_deferred = false;
        // Each HITO-Link write goes against the version the previous one
        // answered with (see `HitolinkOp`).
        let mut version: Option<u64> = None;
        for op in &d.ops {
            match op {
                Op::Hitolink(HitolinkOp::Book { event_id, booking }) => {
                    let Some(ev) = g.now().filter(|e| &e.id == event_id) else {
                        return Ok(Step::Park("a booking without its event".into()));
                    };
                    return self.book(booking, ev).await;
                }
                Op::Calendar(c) => {
                    let again = |g: Obs<CalendarEvent>, writes| Step::Again {
                        h: Box::new(h.clone()),
                        g: Box::new(g),
                        interview_id: interview_id.clone(),
                        writes,
                    };
                    match self.calendar_write(c).await {
                        Ok(ev) => {
                            writes.calendar += 1;
                            event_after = Some(ev);
                        }
                        // 409: made before a crash or by a store that was
                        // lost: adopt. 412: changed under us. Either way:
                        // read it, decide again.
                        Err(
                            GoogleError::Duplicate { .. } | GoogleError::PreconditionFailed { .. },
                        ) => {
                            let ev = self.get_event(c.event_id()).await?;
                            if let (Obs::Now(e), Some(iid)) = (&ev, &interview_id)
                                && let Some(other) = e.interview_id()
                                && other != iid
                            {
                                // The interview named an event that is
                                // another's (an admin's edit): make its own
                                // under the derived ID, and the write-back
                                // sets the name right.
                                if matches!(c, CalendarOp::Insert { .. })
                                    && c.event_id() != derived_event_id(iid)
                                    && let Obs::Now(iv) = h
                                {
                                    let mut iv = iv.clone();
                                    iv.external_event_id = None;
                                    return Ok(Step::Again {
                                        h: Box::new(Obs::Now(iv)),
                                        g: Box::new(Obs::NoNews),
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
                        Err(GoogleError::NotFound { .. } | GoogleError::Gone { .. }) => {
                            return Ok(again(Obs::Gone, writes));
                        }
                        Err(e) => return self.record_failure_google(e),
                    }
                }
                Op::Hitolink(HitolinkOp::WriteBackLink { .. }) => {
                    // Bookkeeping trails in its own queue, within HITO-Link's
                    // budget, behind every calendar write.
                    link_deferred = true;
                }
                Op::Hitolink(w) => {
                    let result = self.hitolink_write(w, version).await;
                    let again = |h: Obs<Interview>, writes| Step::Again {
                        h: Box::new(h),
                        g: Box::new(
                            event_after
                                .clone()
                                .map(Obs::Now)
                                .unwrap_or_else(|| g.clone()),
                        ),
                        interview_id: interview_id.clone(),
                        writes,
                    };
                    match result {
                        Ok(iv) => {
                            writes.hitolink += 1;
                            version = Some(iv.version);
                            iv_after = Some(iv);
                        }
                        Err(HitolinkError::PreconditionFailed { id, current }) => {
                            let h = match current {
                                Some(cur) => Obs::Now(*cur),
                                None => self.get_interview(&id).await?,
                            };
                            return Ok(again(h, writes));
                        }
                        Err(HitolinkError::NotFound { .. }) => return Ok(again(Obs::Gone, writes)),
                        Err(e) => return self.record_failure_hitolink(e),
                    }
                }
            }
        }
        let snapshot = d.snapshot.clone().map(|mut s| {
            if let Some(ev) = &event_after {
                s.event_etag = ev.etag.clone();
                s.event_attendees = ev.attendees.clone();
            }
            if let Some(iv) = &iv_after {
                s.hl_version = iv.version;
            }
            if link_deferred {
                s.link = hitosync_core::reconcile::LinkHalf::Pending;
            }
            s
        });
        Ok(Step::Done {
            snapshot: Box::new(snapshot),
            link_deferred,
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
            HitolinkOp::Book { event_id, .. } => Err(HitolinkError::Protocol(format!(
                "the booking of {event_id} was not made first in its plan"
            ))),
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
            HitolinkOp::WriteBackLink {
                interview_id,
                if_match,
                event_id,
            } => {
                self.hitolink
                    .patch(
                        interview_id,
                        InterviewPatch::ExternalEventId(event_id),
                        version.unwrap_or(*if_match),
                    )
                    .await
            }
        }
    }

    /// What a failed calendar write means for the record, or for the cycle.
    fn record_failure_google(&self, e: GoogleError) -> Result<Step, EngineError> {
        match e {
            GoogleError::InvitationLimit { .. } => Ok(Step::HoldInvitations(e.to_string())),
            GoogleError::Rejected { .. } | GoogleError::Protocol(_) => {
                Ok(Step::Park(format!("the calendar rejected the write: {e}")))
            }
            GoogleError::Transient(_) | GoogleError::RateLimited { .. } => Ok(Step::Park(format!(
                "calendar write failed, retried later: {e}"
            ))),
            e => Err(EngineError::Google(e)),
        }
    }

    fn record_failure_hitolink(&self, e: HitolinkError) -> Result<Step, EngineError> {
        match e {
            HitolinkError::Invalid { .. }
            | HitolinkError::Unsyncable(_)
            | HitolinkError::Rejected { .. } => {
                Ok(Step::Park(format!("HITO-Link rejected the write: {e}")))
            }
            HitolinkError::Transient(_) | HitolinkError::RateLimited { .. } => Ok(Step::Park(
                format!("HITO-Link write failed, retried later: {e}"),
            )),
            e => Err(EngineError::Hitolink(e)),
        }
    }

    pub(crate) async fn get_interview(&self, id: &str) -> Result<Obs<Interview>, EngineError> {
        match self.hitolink.get(id).await {
            Ok(iv) => Ok(Obs::Now(iv)),
            Err(HitolinkError::NotFound { .. }) => Ok(Obs::Gone),
            Err(e) => Err(EngineError::Hitolink(e)),
        }
    }

    pub(crate) async fn get_event(&self, id: &str) -> Result<Obs<CalendarEvent>, EngineError> {
        match self.calendar.get(id).await {
            Ok(ev) => Ok(Obs::Now(ev)),
            Err(GoogleError::NotFound { .. } | GoogleError::Gone { .. }) => Ok(Obs::Gone),
            Err(e) => Err(EngineError::Google(e)),
        }
    }

    /// A booking: check the application, create the interview (the event
    /// ID is the idempotency key, so a replay returns the same interview),
    /// then decide again with both sides present, which stamps the event.
    async fn book(&self, b: &Booking, ev: &CalendarEvent) -> Result<Step, EngineError> {
        let app = match self.hitolink.application(&b.application_id).await {
            Ok(a) => a,
            Err(HitolinkError::NotFound { .. }) => {
                return Ok(Step::Park(format!(
                    "booking names application {} which HITO-Link does not know; fix the marker in the event",
                    b.application_id
                )));
            }
            Err(e @ (HitolinkError::Transient(_) | HitolinkError::RateLimited { .. })) => {
                return Ok(Step::Park(format!(
                    "HITO-Link lookup failed, retried later: {e}"
                )));
            }
            Err(e) => return Err(EngineError::Hitolink(e)),
        };
        let candidate = app.candidate.email.as_deref().map(str::to_ascii_lowercase);
        let new = NewInterview {
            application_id: b.application_id.clone(),
            selection_step_id: None,
            start: b.slot.start,
            end: b.slot.end,
            time_zone: b.time_zone.clone(),
            interviewers: b
                .guests
                .iter()
                .filter(|g| Some(g.as_str()) != candidate.as_deref())
                .cloned()
                .collect(),
            external_event_id: ev.id.clone(),
            location: b.location.clone(),
            video_conferencing_url: b.link.clone(),
        };
        match self.hitolink.create(&new, &ev.id).await {
            Ok(created) => {
                // A replayed key answers with the record as it was first
                // made; what counts is how it is now.
                let id = created.id.clone();
                let h = match self.get_interview(&id).await {
                    Ok(h) => h,
                    Err(e) => {
                        return Ok(Step::Park(format!(
                            "reading back the booked interview failed: {e}"
                        )));
                    }
                };
                Ok(Step::Again {
                    h: Box::new(h),
                    g: Box::new(Obs::Now(ev.clone())),
                    interview_id: Some(id),
                    writes: Writes {
                        calendar: 0,
                        hitolink: 1,
                    },
                })
            }
            Err(
                e @ (HitolinkError::Invalid { .. }
                | HitolinkError::NotFound { .. }
                | HitolinkError::Rejected { .. }),
            ) => Ok(Step::Park(format!("HITO-Link refused the booking: {e}"))),
            Err(e @ (HitolinkError::Transient(_) | HitolinkError::RateLimited { .. })) => {
                Ok(Step::Park(format!("booking failed, retried later: {e}")))
            }
            Err(e) => Err(EngineError::Hitolink(e)),
        }
    }
}
