//! The worker: runs the cycles of one link, one at a time, each bounded.
//!
//! The supervisor (`daemon::run_until`) owns signals, the control socket,
//! reloads and (with PostgreSQL) the leases, and stays free while cycles
//! run: it answers `status` from the store and fires the shutdown token on
//! SIGTERM. Each link has its own worker task, with its own clients (so its
//! own request budgets), schedules, failures and backoff: one link's bad
//! key or dead server never slows another.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use parking_lot::Mutex;
use std::time::Duration;

use chrono::{DateTime, Utc};
use hitosync_net::retry::CancellationToken;
use tokio::sync::{mpsc, oneshot};
use tracing::{Instrument, error, info, info_span, warn};

use super::control::Answer;
use super::fence::{FencedCalendar, FencedHitolink};
use super::metrics::LinkMetrics;
use super::state_db::StateDbSlot;
use super::systemd::Notifier;
use crate::status::{self, Health, Live, RunningCycle};
use hitosync_engine::link::Link;
use hitosync_engine::{CycleOptions, CycleReport, Engine, EngineError};
use hitosync_state::{Lease, StateError, StateStore};

/// What the worker shares with the supervisor for `status`.
#[derive(Debug, Default)]
pub struct Shared {
    pub health: Mutex<Health>,
    pub live: Mutex<Live>,
}

impl Shared {
    pub fn snapshot(&self) -> (Health, Live) {
        (self.health.lock().clone(), self.live.lock().clone())
    }

    /// A cycle that has run past its deadline by `grace` and still not
    /// ended: cancelling did not work, something blocks for good.
    pub fn wedged(&self, deadline: Duration, grace: Duration) -> bool {
        let live = self.live.lock();
        live.cycle_running.as_ref().is_some_and(|c| {
            (Utc::now() - c.since)
                .to_std()
                .is_ok_and(|ran| ran > deadline + grace)
        })
    }
}

/// Asks the worker for a cycle.
pub enum Command {
    Cycle {
        opts: CycleOptions,
        reply: Option<oneshot::Sender<Answer>>,
        why: &'static str,
        /// A `plan --json` request: answer in JSON.
        json: bool,
    },
}

/// What the worker runs on.
pub struct Settings {
    pub link: Link,
    pub schedule: cron::Schedule,
    pub full_schedule: cron::Schedule,
    pub deadline: Duration,
}

pub struct Worker {
    /// The link's name (store trees, lease rows, logs).
    pub name: String,
    pub settings: Settings,
    pub backend: Arc<StateDbSlot>,
    /// With PostgreSQL: the lease under which this worker runs; every state
    /// write presents its token and every remote write checks its clock.
    pub lease: Option<Arc<Lease>>,
    pub shared: Arc<Shared>,
    pub metrics: Arc<LinkMetrics>,
    pub notifier: Arc<Notifier>,
    /// Fired on SIGTERM/SIGINT, or when the link's lease is lost: ends the
    /// cycle under way (the record in flight is finished).
    pub shutdown: CancellationToken,
    /// Fired when the link is removed, changed or handed to another
    /// replica: the worker stops after its cycle in flight.
    pub retire: CancellationToken,
    failures: u32,
    retry_at: Option<DateTime<Utc>>,
    /// The store took no writes after the last failure: open it anew
    /// before the next cycle. Until then it still answers reads, for
    /// `status`.
    store_suspect: bool,
    /// The link's store, with the backend generation it came from.
    store: Option<(u64, Arc<dyn StateStore>)>,
}

/// How one bounded cycle ended.
pub struct Bounded {
    pub result: Result<CycleReport, EngineError>,
    /// Stopped at the deadline.
    pub deadline_hit: bool,
    /// Stopped by `shutdown`.
    pub shut_down: bool,
}

/// Runs one cycle of `link` on `store`, stopped at `deadline` or when
/// `shutdown` fires: the engine's stop flag lets it finish the record in
/// flight, the clients' token ends every wait at once. Under a lease,
/// every remote write first checks it. Shared by the daemon and the
/// one-shot `hitosync sync`.
pub async fn bounded_cycle(
    link: &mut Link,
    store: &dyn StateStore,
    lease: Option<&Lease>,
    opts: &CycleOptions,
    deadline: Duration,
    shutdown: &CancellationToken,
) -> Bounded {
    let token = shutdown.child_token();
    link.calendar.set_cancel(token.clone());
    link.hitolink.set_cancel(token.clone());
    let stop = AtomicBool::new(false);
    let link: &Link = link;
    let fenced = lease.map(|lease| {
        (
            FencedCalendar {
                inner: &link.calendar,
                lease,
            },
            FencedHitolink {
                inner: &link.hitolink,
                lease,
            },
        )
    });
    let engine = match &fenced {
        Some((calendar, hitolink)) => Engine {
            calendar,
            hitolink,
            ..link.engine(store, Some(&stop))
        },
        None => link.engine(store, Some(&stop)),
    };
    let cycle = engine.cycle(opts);
    tokio::pin!(cycle);
    let timer = tokio::time::sleep(deadline);
    tokio::pin!(timer);
    let (mut deadline_hit, mut shut_down) = (false, false);
    let result = loop {
        tokio::select! {
            r = &mut cycle => break r,
            _ = &mut timer, if !deadline_hit && !shut_down => {
                deadline_hit = true;
                warn!(deadline_s = deadline.as_secs(), "the cycle ran past its deadline (daemon.cycle_deadline_secs): stopping it");
                stop.store(true, Ordering::SeqCst);
                token.cancel();
            }
            _ = shutdown.cancelled(), if !shut_down && !deadline_hit => {
                shut_down = true;
                stop.store(true, Ordering::SeqCst);
            }
        }
    };
    Bounded {
        result,
        deadline_hit,
        shut_down,
    }
}

impl Bounded {
    /// The cycle's failure as one line for logs and `status`, or `None`
    /// when it went through (or was only stopped for a shutdown).
    pub fn failure(&self, deadline: Duration) -> Option<String> {
        let past = || {
            format!(
                "the cycle ran past daemon.cycle_deadline_secs = {} s and was stopped",
                deadline.as_secs()
            )
        };
        match &self.result {
            // A long import yields at the deadline: what it read waits in
            // the store, in order, and the next cycle goes on with it.
            Ok(r)
                if r.interrupted
                    && self.deadline_hit
                    && (r.applied > 0 || r.event_refs_written > 0) =>
            {
                None
            }
            Ok(r) if r.interrupted && self.deadline_hit => Some(format!(
                "{} before it applied anything; what it read waits in the store",
                past()
            )),
            Ok(_) => None,
            Err(e) if self.deadline_hit => Some(format!("{} ({e})", past())),
            Err(e) if self.shut_down && e.is_stop() => None,
            Err(e) => Some(e.to_string()),
        }
    }
}

impl Worker {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        name: String,
        settings: Settings,
        backend: Arc<StateDbSlot>,
        lease: Option<Arc<Lease>>,
        shared: Arc<Shared>,
        metrics: Arc<LinkMetrics>,
        notifier: Arc<Notifier>,
        shutdown: CancellationToken,
        retire: CancellationToken,
    ) -> Worker {
        Worker {
            name,
            settings,
            backend,
            lease,
            shared,
            metrics,
            notifier,
            shutdown,
            retire,
            failures: 0,
            retry_at: None,
            store_suspect: false,
            store: None,
        }
    }

    /// Runs cycles on the schedules and on request until `shutdown` or
    /// `retire` fires or the supervisor hangs up; a cycle under way is
    /// finished first.
    pub async fn run(self, commands: mpsc::Receiver<Command>) {
        let span = info_span!("link", link = %self.name);
        self.run_inner(commands).instrument(span).await
    }

    async fn run_inner(mut self, mut commands: mpsc::Receiver<Command>) {
        // the gauges read the store before the first cycle
        if let Ok(store) = self.open_store().await {
            self.metrics.store_changed(store.as_ref()).await;
        }
        loop {
            let now = Utc::now();
            let next = self.next_tick(now);
            let next_full = self.settings.full_schedule.after(&now).next();
            let command = tokio::select! {
                biased;
                _ = self.shutdown.cancelled() => break,
                _ = self.retire.cancelled() => break,
                c = commands.recv() => match c {
                    Some(c) => c,
                    None => break,
                },
                _ = sleep_until(next) => scheduled(false),
                _ = sleep_until(next_full) => scheduled(true),
            };
            match command {
                Command::Cycle {
                    opts,
                    reply,
                    why,
                    json,
                } => {
                    let answer = self.cycle(opts, why, json).await;
                    if let Some(reply) = reply {
                        let _ = reply.send(answer);
                    }
                }
            }
        }
        // answer whatever was queued, rather than leave it hanging
        commands.close();
        while let Ok(c) = commands.try_recv() {
            let Command::Cycle { reply, .. } = c;
            if let Some(reply) = reply {
                let _ = reply.send(Answer {
                    exit_code: 1,
                    output: format!(
                        "link {}: not run here any more (stopping, reloaded, or handed to another replica); try again\n",
                        self.name
                    ),
                });
            }
        }
        info!("link worker stopped");
    }

    /// The next scheduled cycle, pushed back while failures back off.
    fn next_tick(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let next = self.settings.schedule.after(&now).next()?;
        match self.retry_at {
            Some(r) if r > next => self.settings.schedule.after(&r).next().or(Some(r)),
            _ => Some(next),
        }
    }

    async fn cycle(&mut self, opts: CycleOptions, why: &'static str, json: bool) -> Answer {
        info!(
            trigger = why,
            full = opts.full,
            dry_run = opts.dry_run,
            "cycle starting"
        );
        let store = match self.open_store().await {
            Ok(s) => {
                self.set_store_error(None);
                s
            }
            Err(e) => {
                let text = format!("the store cannot be opened: {e}");
                self.set_store_error(Some(text.clone()));
                if !opts.dry_run {
                    self.metrics
                        .cycle_finished(Err(None), Duration::ZERO, false);
                    self.failed(text.clone(), None, false).await;
                }
                return Answer {
                    exit_code: 1,
                    output: format!("error: {text}\n"),
                };
            }
        };
        let started = Utc::now();
        self.set_running(Some(RunningCycle {
            trigger: why.to_string(),
            since: started,
        }));
        self.notifier.status(&format!("cycle running ({why})"));
        let deadline = self.settings.deadline;
        let outcome = bounded_cycle(
            &mut self.settings.link,
            store.as_ref(),
            self.lease.as_deref(),
            &opts,
            deadline,
            &self.shutdown,
        )
        .await;
        self.set_running(None);
        let failure = outcome.failure(deadline);
        let elapsed = (Utc::now() - started).to_std().unwrap_or_default();
        match (&outcome.result, &failure) {
            // a shutdown cut it short: neither a success nor a failure
            (Err(_), None) => {}
            (Ok(report), None) => {
                self.metrics
                    .cycle_finished(Ok(report), elapsed, opts.dry_run || outcome.shut_down)
            }
            (result, Some(_)) => self.metrics.cycle_finished(
                Err(result.as_ref().err()),
                elapsed,
                opts.dry_run || outcome.shut_down,
            ),
        }
        self.metrics.store_changed(store.as_ref()).await;
        let answer = match (&outcome.result, &failure) {
            (Ok(report), None) => {
                if !opts.dry_run && !outcome.shut_down {
                    self.succeeded(store.as_ref(), report).await;
                }
                if opts.dry_run {
                    Answer {
                        exit_code: 0,
                        output: status::render_plan(report, json),
                    }
                } else {
                    let (output, exit_code) = status::render_cycle(report);
                    Answer { exit_code, output }
                }
            }
            (Err(_), None) => Answer {
                exit_code: 1,
                output: "stopped (shutdown); the cycle is read again at the next start\n".into(),
            },
            (result, Some(text)) => {
                let progressed = matches!(result, Ok(r) if r.applied > 0);
                if !opts.dry_run {
                    self.failed(text.clone(), Some(store.as_ref()), progressed)
                        .await;
                }
                let mut output = String::new();
                if let Ok(report) = result {
                    output.push_str(&status::render_cycle(report).0);
                }
                output.push_str(&format!("error: {text}\n"));
                Answer {
                    exit_code: 1,
                    output,
                }
            }
        };
        // An I/O error (a full disk, EIO) leaves sled refusing writes for
        // good; the next cycle opens it anew so that, once the cause is
        // gone, it goes on without a restart.
        if failure.is_some() && !outcome.shut_down {
            if let Err(e) = store.check_writable().await {
                warn!(error = %e, "the store takes no writes; the next cycle opens it again");
                self.store_suspect = true;
            }
        }
        answer
    }

    /// The link's store, opened anew when the last cycle left it suspect.
    async fn open_store(&mut self) -> Result<Arc<dyn StateStore>, StateError> {
        let (generation, backend) = if std::mem::take(&mut self.store_suspect) {
            // sled takes no write after an I/O error until it is opened
            // again, even once space is back
            warn!("the store took no writes after the last failure; opening it again");
            self.store = None;
            self.backend.reopen().await?
        } else {
            self.backend.get_or_open().await?
        };
        if let Some((_, s)) = self.store.as_ref().filter(|(g, _)| *g == generation) {
            return Ok(s.clone());
        }
        let s = backend.store(&self.name, self.lease.clone())?;
        self.store = Some((generation, s.clone()));
        Ok(s)
    }

    async fn succeeded(&mut self, store: &dyn StateStore, report: &CycleReport) {
        self.failures = 0;
        self.retry_at = None;
        let now = Utc::now();
        let health = {
            let mut h = self.shared.health.lock();
            h.succeeded(now);
            h.clone()
        };
        if let Err(e) = health.save(store).await {
            warn!(error = %e, "cannot save the cycle's health in the store");
        }
        let mapped = store.record_count().await.unwrap_or(0);
        self.notifier.status(&format!(
            "link {}: last cycle {}: {} applied, {} parked; {} interviews mapped",
            self.name,
            now.format("%H:%M:%S"),
            report.applied,
            report.parked,
            mapped
        ));
    }

    /// A failed cycle: counted, shown, and retried after a pause that grows
    /// with repeated failures. A cycle stopped at its deadline after some
    /// progress (a long import) goes on at the next tick instead.
    async fn failed(&mut self, text: String, store: Option<&dyn StateStore>, progressed: bool) {
        self.failures += 1;
        let wait = if progressed {
            Duration::ZERO
        } else {
            Duration::from_secs((30u64 << self.failures.min(6)).min(1800))
        };
        self.retry_at = (!progressed)
            .then(|| Utc::now() + chrono::Duration::from_std(wait).unwrap_or_default());
        let health = {
            let mut h = self.shared.health.lock();
            h.failed(text.clone(), Utc::now());
            h.clone()
        };
        if let Some(store) = store {
            if let Err(e) = health.save(store).await {
                warn!(error = %e, "cannot save the cycle's health in the store");
            }
        }
        error!(error = %text, failures = self.failures, retry_in_s = wait.as_secs(), "cycle failed; the cursors did not move, so the next cycle reads the same changes again");
        self.notifier.status(&format!(
            "link {}: last cycle failed ({} in a row): {text}",
            self.name, self.failures
        ));
    }

    fn set_running(&self, running: Option<RunningCycle>) {
        self.shared.live.lock().cycle_running = running;
    }

    fn set_store_error(&self, e: Option<String>) {
        self.shared.live.lock().store_error = e;
    }
}

fn scheduled(full: bool) -> Command {
    Command::Cycle {
        opts: CycleOptions {
            full,
            ..Default::default()
        },
        reply: None,
        why: if full {
            "full resync schedule"
        } else {
            "schedule"
        },
        json: false,
    }
}

async fn sleep_until(t: Option<DateTime<Utc>>) {
    match t {
        Some(t) => tokio::time::sleep((t - Utc::now()).to_std().unwrap_or(Duration::ZERO)).await,
        None => std::future::pending().await,
    }
}
