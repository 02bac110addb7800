//! What `status` and `inspect` show, built from the store, as text or JSON.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use hitosync_engine::{CycleReport, PlanItem};

mod inspect;
use hitosync_core::reconcile::Case;
use hitosync_state::{
    ConflictEntry, Intent, Parked, Report, Side, StateError, StateStore, StateStoreExt,
};
pub use inspect::{InspectView, inspect_output};

/// How the cycles have been going: kept in the store's meta (so `status`
/// shows it without a daemon) and, in the daemon, in memory too (so it
/// shows even while the store cannot be written).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Health {
    /// The last failed cycle's error, kept after later successes.
    pub last_error: Option<String>,
    pub last_error_at: Option<DateTime<Utc>>,
    /// Failed cycles since the last good one.
    pub consecutive_failures: u32,
    /// When the last cycle that went through ended.
    pub last_success_at: Option<DateTime<Utc>>,
}

const HEALTH_KEY: hitosync_state::MetaKey<Health> = hitosync_state::MetaKey::new("health");

impl Health {
    pub async fn load(store: &dyn StateStore) -> Health {
        store
            .meta(HEALTH_KEY)
            .await
            .ok()
            .flatten()
            .unwrap_or_default()
    }

    pub async fn save(&self, store: &dyn StateStore) -> Result<(), StateError> {
        store.put_meta(HEALTH_KEY, self).await
    }

    pub fn failed(&mut self, error: String, at: DateTime<Utc>) {
        self.last_error = Some(error);
        self.last_error_at = Some(at);
        self.consecutive_failures += 1;
    }

    pub fn succeeded(&mut self, at: DateTime<Utc>) {
        self.consecutive_failures = 0;
        self.last_success_at = Some(at);
    }
}

/// What only a running daemon knows.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Live {
    /// The cycle under way, if any: what started it and when.
    pub cycle_running: Option<RunningCycle>,
    /// Why the store is not open, when it is not.
    pub store_error: Option<String>,
    /// Why the link's worker could not start (its key, its token), when
    /// it could not; fixed by editing the file and reloading.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub setup_error: Option<String>,
    /// Whether this daemon runs the link now (with PostgreSQL, another
    /// replica may).
    pub running_here: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct RunningCycle {
    pub trigger: String,
    pub since: DateTime<Utc>,
}

#[derive(Debug, Serialize)]
pub struct CursorView {
    pub saved_at: DateTime<Utc>,
    pub age_seconds: i64,
}

/// Who runs a link, when replicas share a database (PostgreSQL).
#[derive(Debug, Clone, Serialize)]
pub struct LeaseView {
    /// The replica holding it, or the last one that did.
    pub owner: String,
    pub expires_at: DateTime<Utc>,
    /// Incremented by every takeover.
    pub token: i64,
    /// Past its expiry: any replica takes it at its next look.
    pub expired: bool,
    /// The replica answering holds it.
    pub this_replica: bool,
}

#[derive(Debug, Serialize)]
pub struct StatusView {
    /// The link this is the state of.
    pub link: String,
    /// The store: a folder (sled) or a database (without its password).
    pub state_dir: String,
    /// Who holds the link (PostgreSQL only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lease: Option<LeaseView>,
    pub mapped_interviews: usize,
    pub last_cycle: Option<CycleReport>,
    pub google_sync_token: Option<CursorView>,
    pub hitolink_cursor: Option<CursorView>,
    pub pending_operations: Vec<Intent>,
    pub conflicts_total: usize,
    pub recent_conflicts: Vec<ConflictEntry>,
    pub parked: Vec<Parked>,
    /// Records read from the feeds and not yet applied (a stopped or
    /// interrupted cycle leaves them; the next one goes on in order).
    pub work_waiting: usize,
    /// Interviews whose `external_event_id` waits to be written back.
    pub links_waiting: usize,
    /// Events left alone on purpose: look-alikes of managed events, and
    /// bookings on shapes that cannot book.
    pub reported_events: Vec<Report>,
    /// Google's invitation limit is holding back writes that notify.
    pub invitation_hold: Option<hitosync_engine::InvitationHold>,
    pub breaker: Option<String>,
    pub health: Health,
    /// Only when a running daemon answered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub daemon: Option<Live>,
}

impl StatusView {
    pub async fn read(
        store: &dyn StateStore,
        now: DateTime<Utc>,
    ) -> Result<StatusView, StateError> {
        let cursor = |c: Option<hitosync_state::Cursor>| {
            c.map(|c| CursorView {
                saved_at: c.saved_at,
                age_seconds: (now - c.saved_at).num_seconds(),
            })
        };
        Ok(StatusView {
            link: store.link().to_string(),
            state_dir: store.location(),
            lease: None,
            mapped_interviews: store.record_count().await?,
            last_cycle: store.meta(hitosync_engine::LAST_CYCLE).await?,
            google_sync_token: cursor(store.cursor(Side::Google).await?),
            hitolink_cursor: cursor(store.cursor(Side::Hitolink).await?),
            pending_operations: store.intents().await?,
            conflicts_total: store.conflict_count().await?,
            recent_conflicts: store.conflicts(10).await?,
            parked: store.parked().await?,
            work_waiting: store.work_count().await?,
            links_waiting: store.pending_link_count().await?,
            reported_events: store.reports().await?,
            invitation_hold: store
                .meta(hitosync_engine::INVITATION_HOLD)
                .await?
                .flatten()
                .filter(|h| h.until > now),
            breaker: store.meta(hitosync_state::BREAKER).await?.flatten(),
            health: Health::load(store).await,
            daemon: None,
        })
    }

    /// With what the running daemon knows better than its store: its
    /// health in memory is current even when the store takes no writes.
    pub fn with_live(mut self, health: Health, live: Live) -> StatusView {
        self.health = health;
        self.daemon = Some(live);
        self
    }

    fn render_health(&self, line: &mut impl FnMut(String)) {
        let h = &self.health;
        if let Some(live) = &self.daemon {
            match &live.cycle_running {
                Some(c) => line(format!(
                    "cycle running: since {} ({})",
                    c.since.to_rfc3339(),
                    c.trigger
                )),
                None => line("cycle running: no".into()),
            }
            if let Some(e) = &live.store_error {
                line(format!("store: NOT OPEN: {e}"));
            }
            if let Some(e) = &live.setup_error {
                line(format!("link: NOT RUNNING: {e}"));
            }
        }
        line(format!(
            "last good cycle ended: {}",
            h.last_success_at
                .map(|t| t.to_rfc3339())
                .unwrap_or_else(|| "never".into())
        ));
        line(format!(
            "failed cycles in a row: {}",
            h.consecutive_failures
        ));
        match (&h.last_error, h.last_error_at) {
            (Some(e), Some(at)) => line(format!("last error ({}): {e}", at.to_rfc3339())),
            (Some(e), None) => line(format!("last error: {e}")),
            _ => line("last error: none".into()),
        }
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        let mut line = |s: String| {
            out.push_str(&s);
            out.push('\n');
        };
        line(format!("state dir: {}", self.state_dir));
        if let Some(l) = &self.lease {
            line(format!(
                "lease: {} {}{} until {} (token {})",
                if l.expired {
                    "free, last held by"
                } else {
                    "held by"
                },
                l.owner,
                if l.this_replica { " (this daemon)" } else { "" },
                l.expires_at.to_rfc3339(),
                l.token
            ));
        }
        self.render_health(&mut line);
        line(format!("mapped interviews: {}", self.mapped_interviews));
        match &self.last_cycle {
            Some(c) => line(format!(
                "last completed cycle: {} ({} ms): {} applied, {} parked, {} calendar writes, {} HITO-Link writes, {} conflicts, {} unreadable items{}",
                c.started_at.map(|t| t.to_rfc3339()).unwrap_or_default(),
                c.duration_ms,
                c.applied,
                c.parked,
                c.calendar_writes,
                c.hitolink_writes,
                c.conflicts,
                c.unreadable,
                if c.interrupted {
                    " (stopped early)"
                } else {
                    ""
                }
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
        line(format!(
            "records read and waiting to be applied: {}",
            self.work_waiting
        ));
        line(format!(
            "interviews waiting for their external_event_id: {}",
            self.links_waiting
        ));
        line(format!(
            "events left alone (reported): {}",
            self.reported_events.len()
        ));
        for r in &self.reported_events {
            line(format!(
                "  event {}{}: {} (since {})",
                r.event_id,
                r.interview_id
                    .as_deref()
                    .map(|i| format!(" claims interview {i}"))
                    .unwrap_or_default(),
                r.reason,
                r.first_seen.to_rfc3339()
            ));
        }
        match &self.invitation_hold {
            Some(h) => line(format!(
                "invitations: HELD until {} ({}); writes that notify attendees wait, the rest goes on",
                h.until.to_rfc3339(),
                h.reason
            )),
            None => line("invitations: not held".into()),
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

/// What `sync` prints, and its exit code (0: all applied, 1: parked or held).
pub fn render_cycle(report: &CycleReport) -> (String, u8) {
    let mut out = format!(
        "cycle: {} applied, {} parked, {} calendar writes, {} HITO-Link writes, {} conflicts ({} calendar changes, {} HITO-Link changes{}) in {} ms\n",
        report.applied,
        report.parked,
        report.calendar_writes,
        report.hitolink_writes,
        report.conflicts,
        report.google_changes,
        report.hitolink_changes,
        match (report.full_google, report.full_hitolink) {
            (true, true) => "; full listing of both sides",
            (true, false) => "; full listing of the calendar",
            (false, true) => "; full listing of HITO-Link",
            (false, false) => "",
        },
        report.duration_ms
    );
    out.push_str(&render_items(&changed_items(report)));
    if let Some(why) = &report.breaker {
        out.push_str(&format!(
            "mass-deletion breaker tripped: {why}\ncheck both sides, then run `hitosync sync --allow-mass-delete` to apply the cancellations\n"
        ));
    }
    if report.unreadable > 0 {
        out.push_str(&format!(
            "{} item(s) in the servers' pages could not be read and have no usable id; the log names each by position and hash\n",
            report.unreadable
        ));
    }
    if report.interrupted {
        out.push_str(
            "stopped early (a deadline or a shutdown); the rest waits in the store, in order, for the next cycle\n",
        );
    }
    if report.work_left > 0 || report.event_refs_pending > 0 {
        out.push_str(&format!(
            "waiting for the next cycle: {} records to apply, {} interviews' external_event_id to write back\n",
            report.work_left, report.event_refs_pending
        ));
    }
    (out, if report.clean() { 0 } else { 1 })
}

/// What `plan` prints.
pub fn render_plan(report: &CycleReport, json: bool) -> String {
    let items = changed_items(report);
    if json {
        return serde_json::to_string_pretty(&items)
            .unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
            + "\n";
    }
    let mut out = format!(
        "plan: {} record(s) would change; nothing was written\n",
        items.len()
    );
    out.push_str(&render_items(&items));
    if let Some(why) = &report.breaker {
        out.push_str(&format!("the mass-deletion breaker would trip: {why}\n"));
    }
    out
}

fn changed_items(report: &CycleReport) -> Vec<PlanItem> {
    report
        .plan
        .iter()
        .filter(|p| p.case != Case::NothingToDo || p.summary.starts_with("parked"))
        .cloned()
        .collect()
}

fn render_items(items: &[PlanItem]) -> String {
    items
        .iter()
        .map(|item| {
            let mark = if item.held {
                " [held by the mass-deletion breaker]"
            } else if item.destructive {
                " [cancels]"
            } else {
                ""
            };
            let mut line = format!(
                "  {}  {:?}  {}{}\n",
                item.key, item.case, item.summary, mark
            );
            for write in &item.writes {
                line.push_str(&format!("      {write}\n"));
            }
            line
        })
        .collect()
}

pub fn render_status(view: &StatusView, json: bool) -> Result<String, StateError> {
    Ok(if json {
        serde_json::to_string_pretty(view).map_err(|e| StateError::Io(e.to_string()))? + "\n"
    } else {
        view.render()
    })
}

/// What a daemon whose store is not open can still say: its health and why.
pub fn status_without_store(health: &Health, live: &Live, json: bool) -> String {
    if json {
        let v = serde_json::json!({"health": health, "daemon": live});
        return serde_json::to_string_pretty(&v).unwrap_or_default() + "\n";
    }
    let view = StatusView {
        link: String::new(),
        state_dir: String::new(),
        lease: None,
        mapped_interviews: 0,
        last_cycle: None,
        google_sync_token: None,
        hitolink_cursor: None,
        pending_operations: vec![],
        conflicts_total: 0,
        recent_conflicts: vec![],
        parked: vec![],
        work_waiting: 0,
        links_waiting: 0,
        reported_events: vec![],
        invitation_hold: None,
        breaker: None,
        health: health.clone(),
        daemon: Some(live.clone()),
    };
    let mut out = String::new();
    view.render_health(&mut |l: String| {
        out.push_str(&l);
        out.push('\n');
    });
    out
}

/// Several links' views as one answer: a lone link as it always was (its
/// fields at the top of the JSON), several as `{"links": [...]}` with a
/// header line per link in text, and the replicas when they share a
/// database.
pub fn render_many(
    views: &[StatusView],
    replicas: Option<&[hitosync_state_postgres::ReplicaRow]>,
    json: bool,
) -> Result<String, StateError> {
    if json {
        let mut v = if let [one] = views {
            serde_json::to_value(one)
        } else {
            serde_json::to_value(serde_json::json!({ "links": views }))
        }
        .map_err(|e| StateError::Io(e.to_string()))?;
        if let (Some(r), Some(obj)) = (replicas, v.as_object_mut()) {
            obj.insert(
                "replicas".into(),
                serde_json::to_value(r).map_err(|e| StateError::Io(e.to_string()))?,
            );
        }
        return Ok(
            serde_json::to_string_pretty(&v).map_err(|e| StateError::Io(e.to_string()))? + "\n",
        );
    }
    let mut out = String::new();
    if let Some(r) = replicas {
        let live: Vec<String> = r
            .iter()
            .filter(|r| r.live)
            .map(|r| format!("{} (beat {})", r.id, r.heartbeat_at.to_rfc3339()))
            .collect();
        out.push_str(&format!(
            "replicas alive: {}: {}\n",
            live.len(),
            if live.is_empty() {
                "none".to_string()
            } else {
                live.join(", ")
            }
        ));
    }
    let many = views.len() > 1;
    for v in views {
        if many {
            out.push_str(&format!("== link {} ==\n", v.link));
        }
        out.push_str(&v.render());
    }
    Ok(out)
}
