//! `inspect ID`: one interview's mapping, the last agreed state, its
//! history of decisions, why it is parked, and the look-alike events.

use serde::Serialize;

use hitosync_core::reconcile::EventRef;

use hitosync_state::{InterviewId, Parked, Record, Report, StateError, StateStore};

/// `inspect ID`: one interview's mapping, agreement and history.
#[derive(Debug, Serialize)]
pub struct InspectView {
    pub record: Option<Record>,
    pub parked: Option<Parked>,
    /// Events that claim this interview but are not its event.
    pub lookalikes: Vec<Report>,
}

impl InspectView {
    pub fn render(&self, id: &str) -> String {
        let Some(r) = &self.record else {
            return match &self.parked {
                Some(p) => format!(
                    "interview {id}: not mapped; parked: {} (attempt {})\n",
                    p.reason, p.attempts
                ),
                None => format!("interview {id}: not known to hitosync (no mapping, not parked)\n"),
            };
        };
        let s = &r.snapshot;
        let f = &s.fields;
        let mut out = format!(
            "interview {}\n  event: {}\n  last synced: {}\n  HITO-Link version: {}\n  event ETag: {}\n  retired (deleted in HITO-Link): {}\n",
            s.interview_id,
            s.event_id,
            r.synced_at.to_rfc3339(),
            s.hl_version,
            s.event_etag,
            s.retired
        );
        out.push_str("  agreed state:\n");
        out.push_str(&format!("    cancelled: {}\n", f.cancelled));
        if let Some(slot) = f.slot {
            out.push_str(&format!(
                "    time: {} - {}\n",
                slot.start.to_rfc3339(),
                slot.end.to_rfc3339()
            ));
        }
        out.push_str(&format!(
            "    place: {}\n",
            f.location.as_deref().unwrap_or("-")
        ));
        out.push_str(&format!(
            "    meeting URL: {}\n",
            f.meeting_url.as_deref().unwrap_or("-")
        ));
        out.push_str(&format!(
            "    candidate declined: {}\n",
            f.candidate_declined
        ));
        for (email, r) in &f.responses {
            out.push_str(&format!("    {email}: {}\n", r.hitolink()));
        }
        out.push_str(&format!("  title: {}\n", s.presentation.title));
        out.push_str(&format!(
            "  external_event_id written back: {}\n",
            match s.event_ref {
                EventRef::Written => "yes",
                EventRef::Pending => "waiting in the write-back queue",
                EventRef::Unknown => "not checked yet (store from an older version)",
            }
        ));
        for l in &self.lookalikes {
            out.push_str(&format!(
                "  look-alike event {}: {} (left alone)\n",
                l.event_id, l.reason
            ));
        }
        if let Some(p) = &self.parked {
            out.push_str(&format!(
                "  parked: {} (attempt {})\n",
                p.reason, p.attempts
            ));
        }
        out.push_str("  history:\n");
        for h in &r.history {
            out.push_str(&format!(
                "    {} {:?}: {}\n",
                h.at.to_rfc3339(),
                h.case,
                h.summary
            ));
        }
        out
    }
}

/// What `inspect ID` prints, and its exit code (1: not known).
pub async fn inspect_output(
    store: &dyn StateStore,
    id: &str,
    json: bool,
) -> Result<(String, u8), StateError> {
    let iid = InterviewId::from(id);
    let view = InspectView {
        record: store.record(&iid).await?,
        parked: store
            .parked()
            .await?
            .into_iter()
            .find(|p| p.key == hitosync_state::WorkKey::Interview(iid.clone())),
        lookalikes: store
            .reports()
            .await?
            .into_iter()
            .filter(|r| r.interview_id.as_deref() == Some(id))
            .collect(),
    };
    let code = if view.record.is_some() || view.parked.is_some() {
        0
    } else {
        1
    };
    let text = if json {
        serde_json::to_string_pretty(&view).map_err(|e| StateError::Io(e.to_string()))? + "\n"
    } else {
        view.render(id)
    };
    Ok((text, code))
}
