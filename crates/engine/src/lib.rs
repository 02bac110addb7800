//! One reconcile cycle: read both change feeds into the work set, decide
//! per record, apply, persist.
//!
//! Data flows one way: `ingest` reads the feeds page by page into the work
//! set (the store), the decision core decides per record, `execute` runs a
//! decision's typed operations through the ports, and `apply` orders the
//! work so that what attendees see goes first, the soonest interviews
//! first, while the interviews' half of the link trails in its own queue.
//!
//! Crash safety comes from three rules. Every remote write is idempotent
//! (derived event IDs, `Idempotency-Key`, `If-Match`). An intent is flushed
//! before a record's writes and cleared with its new snapshot, so a crash
//! in between makes the next cycle read that record again on both sides.
//! The sync token and cursor are saved only once what they cover is
//! durably in the work set, which is applied in order and shrinks only as
//! records are committed or parked; so a crash anywhere loses nothing, and
//! the next cycle picks up where this one stopped.

// Every arm on an error, a decision or an operation is spelled out: a new
// variant must be decided where it is met, never fall into a wildcard.
#![deny(clippy::wildcard_enum_match_arm)]

mod apply;
mod breaker;
mod execute;
mod gate;
mod ingest;
pub mod link;
pub mod ports;
mod work;

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tracing::{Instrument, info, info_span, warn};

pub use ports::{CalendarApi, HitolinkApi};

use hitosync_core::reconcile::{Case, Decision, Policy};
use hitosync_google::GoogleError;
use hitosync_hitolink::HitolinkError;
pub use hitosync_net::disposition::{Disposed, Disposition};
use hitosync_state::{BREAKER, MetaKey, StateError, StateStore, StateStoreExt, WorkKey};

use apply::{Ctx, InvitationState};
pub use apply::{INVITATION_HOLD, InvitationHold};
use breaker::MassDeletion;
use gate::Pass;
use work::WorkSet;

/// The last cycle's report, for `status` and the metrics (its plan lines
/// left out).
pub const LAST_CYCLE: MetaKey<CycleReport> = MetaKey::new("last_cycle");

/// Why a cycle stopped early. Nothing it had not committed is lost: what
/// was read is in the work set, and the cursors were saved only after it.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("reading the calendar failed: {0}")]
    Google(#[source] GoogleError),
    #[error("reading HITO-Link failed: {0}")]
    Hitolink(#[source] HitolinkError),
    #[error(transparent)]
    State(#[from] StateError),
    /// A feed that does not end: the same page token or cursor again, or
    /// more pages than the store's size allows.
    #[error(
        "{side} does not stop paging: {detail}; nothing was applied past the last saved position (check the API server or gateway)"
    )]
    Paging { side: &'static str, detail: String },
}

#[derive(Debug, Clone)]
pub struct CycleOptions {
    /// Drop both cursors first and list everything.
    pub full: bool,
    /// Apply cancellations even past `sync.max_deletions`.
    pub allow_mass_delete: bool,
    /// Decide only: no remote write, nothing stored (`hitosync plan`).
    pub dry_run: bool,
    /// The cycle's clock, for tests that let parked records come due.
    pub now: Option<DateTime<Utc>>,
    /// How long write-backs of the link may go on once every other write
    /// of the cycle is done (`None`: until the queue is empty). What is
    /// left waits in the store for the next cycle, so a large import does
    /// not keep new changes waiting for hours.
    pub write_back_budget: Option<Duration>,
    /// Write the links back while the other writes go on (the default, so
    /// neither side's budget waits for the other). Off, they follow the
    /// other writes: one order of calls, which property tests replay.
    pub concurrent_write_backs: bool,
    /// While Google's invitation limit holds, let one notifying write try
    /// now rather than at the next probe (`hitosync sync`, SIGUSR1).
    pub probe_invitations: bool,
}

impl Default for CycleOptions {
    fn default() -> Self {
        CycleOptions {
            full: false,
            allow_mass_delete: false,
            dry_run: false,
            now: None,
            write_back_budget: Some(Duration::from_secs(45)),
            concurrent_write_backs: true,
            probe_invitations: false,
        }
    }
}

/// One record's line in a plan or report.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PlanItem {
    pub key: WorkKey,
    pub case: Case,
    pub summary: String,
    pub destructive: bool,
    pub held: bool,
    /// The remote writes, as `hitosync plan` prints them: the plan's
    /// operations, the write-back it queues, the booking it makes.
    #[serde(default)]
    pub writes: Vec<String>,
}

impl PlanItem {
    fn of(key: &WorkKey, d: &Decision, held: bool) -> PlanItem {
        PlanItem {
            key: key.clone(),
            case: d.case(),
            summary: d.summary(),
            destructive: d.is_destructive(),
            held,
            writes: d.writes(),
        }
    }

    fn parked(key: &WorkKey, reason: &str) -> PlanItem {
        PlanItem {
            key: key.clone(),
            case: Case::NothingToDo,
            summary: format!("parked: {reason}"),
            destructive: false,
            held: false,
            writes: vec![],
        }
    }
}

/// What a cycle did, for logs, `status` and the benchmarks.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct CycleReport {
    pub started_at: Option<DateTime<Utc>>,
    pub duration_ms: u64,
    pub full_google: bool,
    pub full_hitolink: bool,
    pub google_changes: usize,
    pub hitolink_changes: usize,
    pub decisions: usize,
    pub applied: usize,
    pub calendar_writes: usize,
    pub hitolink_writes: usize,
    pub parked: usize,
    pub conflicts: usize,
    /// Set when the mass-deletion breaker held cancellations back.
    pub breaker: Option<String>,
    /// Stopped early (shutdown); the rest of the work waits in the store.
    pub interrupted: bool,
    /// Records the calendar holds in a shape HITO-Link cannot (parked or
    /// reported).
    #[serde(default)]
    pub refused: usize,
    /// Events claiming an interview they are not the event of.
    #[serde(default)]
    pub lookalikes: usize,
    /// Records whose writes would notify attendees while Google's
    /// invitation limit holds: parked until it lifts.
    #[serde(default)]
    pub invitations_held: usize,
    /// Items of a page that did not decode (a managed one is parked by
    /// its record; the rest is left alone and counted).
    #[serde(default)]
    pub unreadable: usize,
    /// Interviews whose `external_event_id` was written back this cycle.
    #[serde(default, alias = "event_refs_written")]
    pub event_refs_written: usize,
    /// Interviews still waiting for it, and records still waiting to be
    /// applied, when the cycle ended.
    #[serde(default, alias = "event_refs_pending")]
    pub event_refs_pending: usize,
    #[serde(default)]
    pub work_left: usize,
    /// Plan lines beyond what a real cycle's report keeps.
    #[serde(default)]
    pub lines_not_kept: usize,
    pub plan: Vec<PlanItem>,
}

impl CycleReport {
    /// Everything was applied: nothing parked, nothing held.
    pub fn clean(&self) -> bool {
        self.parked == 0 && self.breaker.is_none()
    }
}

pub struct Engine<'a> {
    pub calendar: &'a dyn CalendarApi,
    pub hitolink: &'a dyn HitolinkApi,
    pub store: &'a dyn StateStore,
    pub policy: Policy,
    pub max_deletions: u32,
    pub hitolink_page_size: u32,
    /// Set by SIGTERM: finish the record in flight, then stop; the rest of
    /// the work waits in the store, in order.
    pub stop: Option<&'a AtomicBool>,
}

impl Engine<'_> {
    /// Runs one cycle.
    pub async fn cycle(&self, opts: &CycleOptions) -> Result<CycleReport, EngineError> {
        let span = info_span!("cycle", full = opts.full, dry_run = opts.dry_run);
        self.cycle_inner(opts).instrument(span).await
    }

    async fn cycle_inner(&self, opts: &CycleOptions) -> Result<CycleReport, EngineError> {
        let started = Instant::now();
        let now = opts.now.unwrap_or_else(Utc::now);
        let mut report = CycleReport {
            started_at: Some(now),
            ..Default::default()
        };
        let work = if opts.dry_run {
            WorkSet::memory_from(self.store).await?
        } else {
            WorkSet::Store(self.store)
        };
        let ingested = self.ingest(&work, opts, now).await?;
        report.full_google = ingested.full_google;
        report.full_hitolink = ingested.full_hitolink;
        report.google_changes = ingested.google_changes;
        report.hitolink_changes = ingested.hitolink_changes;
        report.unreadable = ingested.unreadable;
        // What the cursors cover is in the work set, durably: they move.
        if !opts.dry_run {
            self.store
                .set_cursors(
                    ingested.google_token.as_deref(),
                    ingested.hitolink_cursor.as_deref(),
                    Utc::now(),
                )
                .await?;
        }
        let hold = self.store.meta(INVITATION_HOLD).await?.flatten();
        let ctx = Ctx {
            work: &work,
            opts,
            now,
            breaker: parking_lot::Mutex::new(MassDeletion::new(
                self.max_deletions,
                opts.allow_mass_delete,
                ingested.empty_side.clone(),
            )),
            passes_done: AtomicBool::new(false),
            queued: tokio::sync::Notify::new(),
            invitations: parking_lot::Mutex::new(InvitationState {
                hold,
                probe_now: opts.probe_invitations,
                probing: false,
            }),
        };
        self.refetch_all(&ctx, &ingested.refetch).await?;
        // Every record the first pass takes up may still cancel something.
        let undecided = work.len().await?;
        ctx.breaker.lock().set_undecided(undecided);

        let passes = async {
            let r = async {
                for pass in [Pass::Visible, Pass::Rest, Pass::Last] {
                    if report.interrupted {
                        break;
                    }
                    self.pass(&ctx, pass, &mut report).await?;
                }
                Ok::<(), EngineError>(())
            }
            .await;
            ctx.passes_done.store(true, Ordering::SeqCst);
            ctx.queued.notify_one();
            r
        };
        let lane = async {
            if opts.dry_run {
                Ok(Default::default())
            } else {
                self.write_back_lane(&ctx).await
            }
        };
        let (passes, lane) = if opts.concurrent_write_backs {
            tokio::join!(passes, lane)
        } else {
            let p = passes.await;
            (p, lane.await)
        };
        passes?;
        let lane = lane?;
        report.event_refs_written = lane.written;
        report.hitolink_writes += lane.written;
        {
            let breaker = ctx.breaker.lock();
            match breaker.tripped() {
                Some(why) if breaker.holds() => {
                    warn!(reason = %why, "mass-deletion breaker tripped: cancellations held until `hitosync sync --allow-mass-delete`");
                    report.breaker = Some(why.to_string());
                }
                Some(why) => info!(reason = %why, "mass deletion allowed by --allow-mass-delete"),
                None => {}
            }
        }
        if !opts.dry_run {
            report.event_refs_pending = self.store.pending_link_count().await?;
            report.work_left = work.len().await?;
            let held_earlier = if opts.allow_mass_delete {
                0
            } else {
                ingested.held
            };
            self.remember_breaker(&mut report, held_earlier).await?;
        }
        report.duration_ms = started.elapsed().as_millis() as u64;
        if !opts.dry_run {
            self.store
                .put_meta(
                    LAST_CYCLE,
                    &CycleReport {
                        plan: vec![],
                        ..report.clone()
                    },
                )
                .await?;
        }
        info!(
            google_changes = report.google_changes,
            hitolink_changes = report.hitolink_changes,
            applied = report.applied,
            parked = report.parked,
            calendar_writes = report.calendar_writes,
            hitolink_writes = report.hitolink_writes,
            event_refs_written = report.event_refs_written,
            event_refs_pending = report.event_refs_pending,
            ms = report.duration_ms,
            "cycle done"
        );
        Ok(report)
    }
}

impl Engine<'_> {
    /// The breaker holds while the cancellations it held wait: tripped this
    /// cycle, or parked by an earlier one and not yet let through with
    /// `--allow-mass-delete`. What it says is kept for `status` and the
    /// metrics, and the report says it too, so that `sync` fails.
    async fn remember_breaker(
        &self,
        report: &mut CycleReport,
        held_earlier: usize,
    ) -> Result<(), StateError> {
        let why = match (&report.breaker, held_earlier) {
            (Some(why), _) => Some(why.clone()),
            (None, 0) => None,
            (None, n) => Some(
                self.store
                    .meta(BREAKER)
                    .await?
                    .flatten()
                    .unwrap_or_else(|| {
                        format!("{n} cancellations held by the mass-deletion breaker")
                    }),
            ),
        };
        report.breaker = why.clone();
        self.store.put_meta(BREAKER, &why).await
    }
}
