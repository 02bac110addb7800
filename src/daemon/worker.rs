//! The worker: runs the cycles of one link, one at a time, each bounded.
//!
//! The supervisor (`daemon::run_until`) owns signals, the control socket
//! and reloads, and stays free while a cycle runs: it answers `status`
//! from the shared store and fires the shutdown token on SIGTERM. The
//! worker owns the link's clients and schedule. One worker per link is the
//! shape a daemon serving several links takes; today there is one.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use crate::retry::CancellationToken;
use chrono::{DateTime, Utc};
use tokio::sync::{mpsc, oneshot};
use tracing::{error, info, warn};

use super::control::Answer;
use super::metrics::LinkMetrics;
use super::systemd::Notifier;
use crate::engine::{CycleOptions, CycleReport, EngineError};
use crate::google::GoogleError;
use crate::hitolink::HitolinkError;
use crate::link::Link;
use crate::state::{StateError, Store};
use crate::status::{self, Health, Live, RunningCycle};

/// The store, shared by the worker (which reopens it after an I/O error)
/// and the supervisor (which reads it for `status`). sled is safe to use
/// from several threads; the lock only guards swapping the handle.
#[derive(Debug)]
pub struct StoreSlot {
    dir: PathBuf,
    current: RwLock<Option<Arc<Store>>>,
}

impl StoreSlot {
    pub fn new(dir: PathBuf, store: Store) -> StoreSlot {
        StoreSlot {
            dir,
            current: RwLock::new(Some(Arc::new(store))),
        }
    }

    pub fn get(&self) -> Option<Arc<Store>> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The open store, or a fresh open of it.
    async fn get_or_open(&self) -> Result<Arc<Store>, StateError> {
        if let Some(s) = self.get() {
            return Ok(s);
        }
        self.open().await
    }

    /// Drops the handle (sled holds its file lock until the last one is
    /// gone) and opens the store again, on a blocking thread: opening
    /// waits for the lock and replays sled's log.
    async fn reopen(&self) -> Result<Arc<Store>, StateError> {
        self.current
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        self.open().await
    }

    async fn open(&self) -> Result<Arc<Store>, StateError> {
        let dir = self.dir.clone();
        let store = tokio::task::spawn_blocking(move || Store::open(&dir))
            .await
            .map_err(|e| StateError::Io(format!("opening the store: {e}")))??;
        let store = Arc::new(store);
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Some(store.clone());
        Ok(store)
    }
}

/// What the worker shares with the supervisor for `status`.
#[derive(Debug, Default)]
pub struct Shared {
    pub health: Mutex<Health>,
    pub live: Mutex<Live>,
}

impl Shared {
    pub fn snapshot(&self) -> (Health, Live) {
        (
            self.health
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
            self.live.lock().unwrap_or_else(|p| p.into_inner()).clone(),
        )
    }

    /// A cycle that has run past its deadline by `grace` and still not
    /// ended: cancelling did not work, something blocks for good.
    pub fn wedged(&self, deadline: Duration, grace: Duration) -> bool {
        let live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        live.cycle_running.as_ref().is_some_and(|c| {
            (Utc::now() - c.since)
                .to_std()
                .is_ok_and(|ran| ran > deadline + grace)
        })
    }
}

/// Asks the worker for a cycle or hands it a reloaded config.
pub enum Command {
    Cycle {
        opts: CycleOptions,
        reply: Option<oneshot::Sender<Answer>>,
        why: &'static str,
        /// A `plan --json` request: answer in JSON.
        json: bool,
    },
    Reload(Box<Settings>),
}

/// What a reload changes for the worker.
pub struct Settings {
    pub link: Link,
    pub schedule: cron::Schedule,
    pub full_schedule: cron::Schedule,
    pub deadline: Duration,
}

pub struct Worker {
    pub settings: Settings,
    pub store: Arc<StoreSlot>,
    pub shared: Arc<Shared>,
    pub metrics: Arc<LinkMetrics>,
    pub notifier: Arc<Notifier>,
    /// Fired by the supervisor on SIGTERM/SIGINT.
    pub shutdown: CancellationToken,
    failures: u32,
    retry_at: Option<DateTime<Utc>>,
    /// The store took no writes after the last failure: open it anew
    /// before the next cycle. Until then it still answers reads, for
    /// `status`.
    store_suspect: bool,
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
/// flight, the clients' token ends every wait at once. Shared by the
/// daemon and the one-shot `hitosync sync`.
pub async fn bounded_cycle(
    link: &mut Link,
    store: &Store,
    opts: &CycleOptions,
    deadline: Duration,
    shutdown: &CancellationToken,
) -> Bounded {
    let token = shutdown.child_token();
    link.calendar.set_cancel(token.clone());
    link.hitolink.set_cancel(token.clone());
    let stop = AtomicBool::new(false);
    let engine = link.engine(store, Some(&stop));
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
                if r.interrupted && self.deadline_hit && (r.applied > 0 || r.links_written > 0) =>
            {
                None
            }
            Ok(r) if r.interrupted && self.deadline_hit => Some(format!(
                "{} before it applied anything; what it read waits in the store",
                past()
            )),
            Ok(_) => None,
            Err(e) if self.deadline_hit => Some(format!("{} ({e})", past())),
            Err(e) if self.shut_down && is_stop(e) => None,
            Err(e) => Some(e.to_string()),
        }
    }
}

/// The error a cancelled call ends with.
fn is_stop(e: &EngineError) -> bool {
    matches!(
        e,
        EngineError::Google(GoogleError::Stopped) | EngineError::Hitolink(HitolinkError::Stopped)
    )
}

impl Worker {
    pub fn new(
        settings: Settings,
        store: Arc<StoreSlot>,
        shared: Arc<Shared>,
        metrics: Arc<LinkMetrics>,
        notifier: Arc<Notifier>,
        shutdown: CancellationToken,
    ) -> Worker {
        Worker {
            settings,
            store,
            shared,
            metrics,
            notifier,
            shutdown,
            failures: 0,
            retry_at: None,
            store_suspect: false,
        }
    }

    /// Runs cycles on the schedules and on request until `shutdown` fires
    /// or the supervisor hangs up; a cycle under way is finished first.
    pub async fn run(mut self, mut commands: mpsc::Receiver<Command>) {
        loop {
            let now = Utc::now();
            let next = self.next_tick(now);
            let next_full = self.settings.full_schedule.after(&now).next();
            let command = tokio::select! {
                biased;
                _ = self.shutdown.cancelled() => break,
                c = commands.recv() => match c {
                    Some(c) => c,
                    None => break,
                },
                _ = sleep_until(next) => scheduled(false),
                _ = sleep_until(next_full) => scheduled(true),
            };
            match command {
                Command::Reload(settings) => self.reload(*settings),
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
    }

    fn reload(&mut self, mut settings: Settings) {
        // keep counting on the same counters: metrics stay monotonic
        settings
            .link
            .calendar
            .share_counters(&self.settings.link.calendar);
        settings.link.hitolink.counters = self.settings.link.hitolink.counters.clone();
        self.settings = settings;
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
        let store = if std::mem::take(&mut self.store_suspect) {
            // sled takes no write after an I/O error until it is opened
            // again, even once space is back
            warn!("the store took no writes after the last failure; opening it again");
            self.store.reopen().await
        } else {
            self.store.get_or_open().await
        };
        let store = match store {
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
                    self.failed(text.clone(), None, false);
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
            &store,
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
        self.metrics.store_changed(&store);
        let answer = match (&outcome.result, &failure) {
            (Ok(report), None) => {
                if !opts.dry_run && !outcome.shut_down {
                    self.succeeded(&store, report);
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
                    self.failed(text.clone(), Some(&store), progressed);
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
        if failure.is_some()
            && !outcome.shut_down
            && let Err(e) = store.check_writable()
        {
            warn!(error = %e, "the store takes no writes; the next cycle opens it again");
            self.store_suspect = true;
        }
        answer
    }

    fn succeeded(&mut self, store: &Store, report: &CycleReport) {
        self.failures = 0;
        self.retry_at = None;
        let now = Utc::now();
        let health = {
            let mut h = self.shared.health.lock().unwrap_or_else(|p| p.into_inner());
            h.succeeded(now);
            h.clone()
        };
        if let Err(e) = health.save(store) {
            warn!(error = %e, "cannot save the cycle's health in the store");
        }
        let mapped = store.record_count();
        self.notifier.status(&format!(
            "last cycle {}: {} applied, {} parked; {} interviews mapped",
            now.format("%H:%M:%S"),
            report.applied,
            report.parked,
            mapped
        ));
    }

    /// A failed cycle: counted, shown, and retried after a pause that grows
    /// with repeated failures. A cycle stopped at its deadline after some
    /// progress (a long import) goes on at the next tick instead.
    fn failed(&mut self, text: String, store: Option<&Store>, progressed: bool) {
        self.failures += 1;
        let wait = if progressed {
            Duration::ZERO
        } else {
            Duration::from_secs((30u64 << self.failures.min(6)).min(1800))
        };
        self.retry_at = (!progressed)
            .then(|| Utc::now() + chrono::Duration::from_std(wait).unwrap_or_default());
        let health = {
            let mut h = self.shared.health.lock().unwrap_or_else(|p| p.into_inner());
            h.failed(text.clone(), Utc::now());
            h.clone()
        };
        if let Some(store) = store
            && let Err(e) = health.save(store)
        {
            warn!(error = %e, "cannot save the cycle's health in the store");
        }
        error!(error = %text, failures = self.failures, retry_in_s = wait.as_secs(), "cycle failed; the cursors did not move, so the next cycle reads the same changes again");
        self.notifier.status(&format!(
            "last cycle failed ({} in a row): {text}",
            self.failures
        ));
    }

    fn set_running(&self, running: Option<RunningCycle>) {
        self.shared
            .live
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .cycle_running = running;
    }

    fn set_store_error(&self, e: Option<String>) {
        self.shared
            .live
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .store_error = e;
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
