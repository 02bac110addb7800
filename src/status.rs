//! What `status` and `inspect` show, built from the store, as text or JSON.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::engine::CycleReport;
use crate::state::{ConflictEntry, Intent, Parked, Record, Side, StateError, Store};

#[derive(Debug, Serialize)]
pub struct CursorView {
    pub saved_at: DateTime<Utc>,
    pub age_seconds: i64,
}

#[derive(Debug, Serialize)]
pub struct StatusView {
    pub state_dir: String,
    pub mapped_interviews: usize,
    pub last_cycle: Option<CycleReport>,
    pub google_sync_token: Option<CursorView>,
    pub hitolink_cursor: Option<CursorView>,
    pub pending_operations: Vec<Intent>,
    pub conflicts_total: usize,
    pub recent_conflicts: Vec<ConflictEntry>,
    pub parked: Vec<Parked>,
    pub breaker: Option<String>,
}

impl StatusView {
    pub fn read(store: &Store, now: DateTime<Utc>) -> Result<StatusView, StateError> {
        let cursor = |side| -> Result<Option<CursorView>, StateError> {
            Ok(store.cursor(side)?.map(|c| CursorView {
                saved_at: c.saved_at,
                age_seconds: (now - c.saved_at).num_seconds(),
            }))
        };
        Ok(StatusView {
            state_dir: store.dir().display().to_string(),
            mapped_interviews: store.record_count(),
            last_cycle: store.meta("last_cycle")?,
            google_sync_token: cursor(Side::Google)?,
            hitolink_cursor: cursor(Side::Hitolink)?,
            pending_operations: store.intents()?,
            conflicts_total: store.conflict_count(),
            recent_conflicts: store.conflicts(10)?,
            parked: store.parked()?,
            breaker: store.meta::<Option<String>>("breaker")?.flatten(),
        })
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        let mut line = |s: String| {
            out.push_str(&s);
            out.push('\n');
        };
        line(format!("state dir: {}", self.state_dir));
        line(format!("mapped interviews: {}", self.mapped_interviews));
        match &self.last_cycle {
            Some(c) => line(format!(
                "last cycle: {} ({} ms): {} applied, {} parked, {} calendar writes, {} HITO-Link writes, {} conflicts",
                c.started_at.map(|t| t.to_rfc3339()).unwrap_or_default(),
                c.duration_ms,
                c.applied,
                c.parked,
                c.calendar_writes,
                c.hitolink_writes,
                c.conflicts
            )),
            None => line("last cycle: none yet".into()),
        }
        for (name, c) in [
            ("calendar sync token", &self.google_sync_token),
            ("HITO-Link cursor", &self.hitolink_cursor),
        ] {
            match c {
                Some(c) => line(format!(
                    "{name}: saved {} ({}s ago)",
                    c.saved_at.to_rfc3339(),
                    c.age_seconds
                )),
                None => line(format!("{name}: none (the next cycle lists everything)")),
            }
        }
        line(format!(
            "pending operations: {}",
            self.pending_operations.len()
        ));
        for i in &self.pending_operations {
            line(format!(
                "  {}: {} (since {})",
                i.key,
                i.summary,
                i.at.to_rfc3339()
            ));
        }
        line(format!("conflicts: {}", self.conflicts_total));
        for c in &self.recent_conflicts {
            line(format!(
                "  {} interview {} {}: HITO-Link {} / calendar {} -> {} kept",
                c.at.to_rfc3339(),
                c.interview_id,
                c.conflict.field,
                c.conflict.hitolink,
                c.conflict.google,
                c.conflict.winner
            ));
        }
        line(format!("parked (failing) records: {}", self.parked.len()));
        for p in &self.parked {
            line(format!(
                "  {}: {} (attempt {}, next retry {})",
                p.key,
                p.reason,
                p.attempts,
                if p.held {
                    "with --allow-mass-delete".to_string()
                } else {
                    p.next_retry.to_rfc3339()
                }
            ));
        }
        match &self.breaker {
            Some(why) => line(format!(
                "mass-deletion breaker: TRIPPED: {why}; check both sides, then run `hitosync sync --allow-mass-delete`"
            )),
            None => line("mass-deletion breaker: not tripped".into()),
        }
        out
    }
}

/// `inspect ID`: one interview's mapping, agreement and history.
#[derive(Debug, Serialize)]
pub struct InspectView {
    pub record: Option<Record>,
    pub parked: Option<Parked>,
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
        out.push_str(&format!("    link: {}\n", f.link.as_deref().unwrap_or("-")));
        out.push_str(&format!(
            "    candidate declined: {}\n",
            f.candidate_declined
        ));
        for (email, r) in &f.responses {
            out.push_str(&format!("    {email}: {}\n", r.hitolink()));
        }
        out.push_str(&format!("  title: {}\n", s.presentation.title));
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
