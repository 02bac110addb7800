//! `hitosync run`: the long-running daemon.
//!
//! One loop owns the engine, so two cycles never overlap. It wakes for the
//! schedules, for signals (SIGHUP reload, SIGUSR1 sync, SIGUSR2 full resync,
//! SIGTERM/SIGINT stop), for control-socket requests and for edits of the
//! config file, and tells systemd how it is doing (`Type=notify`).

pub mod control;
pub mod metrics;

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use sd_notify::NotifyState;
use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::sync::{mpsc, oneshot};
use tracing::{error, info, warn};

use crate::config::{Config, ConfigError};
use crate::engine::{CycleOptions, CycleReport};
use crate::link::{Link, LinkError};
use crate::state::{StateError, Store};
use crate::status;
use control::{Answer, ControlError, Request};
use metrics::{LinkMetrics, Metrics};

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Link(#[from] LinkError),
    #[error(transparent)]
    State(#[from] StateError),
    #[error(transparent)]
    Control(#[from] ControlError),
    #[error("cannot serve metrics on {addr}: {source} (check daemon.metrics_listen)")]
    Metrics {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot install signal handlers: {0}")]
    Signals(#[source] std::io::Error),
}

impl DaemonError {
    /// Configuration problems exit 2, like the one-shot commands.
    pub fn is_setup(&self) -> bool {
        matches!(
            self,
            DaemonError::Config(_) | DaemonError::Link(_) | DaemonError::Metrics { .. }
        )
    }
}

struct Signals {
    hup: Signal,
    usr1: Signal,
    usr2: Signal,
    term: Signal,
    int: Signal,
}

impl Signals {
    fn install() -> Result<Signals, DaemonError> {
        let s = |k| signal(k).map_err(DaemonError::Signals);
        Ok(Signals {
            hup: s(SignalKind::hangup())?,
            usr1: s(SignalKind::user_defined1())?,
            usr2: s(SignalKind::user_defined2())?,
            term: s(SignalKind::terminate())?,
            int: s(SignalKind::interrupt())?,
        })
    }
}

/// What the loop is asked to do next.
enum Job {
    Cycle {
        opts: CycleOptions,
        reply: Option<oneshot::Sender<Answer>>,
        why: &'static str,
        /// A `plan --json` request: answer in JSON.
        json: bool,
    },
    Reload,
    Stop,
    Nothing,
}

struct Daemon {
    config_path: PathBuf,
    config: Config,
    link: Link,
    store: Arc<Store>,
    metrics: Arc<LinkMetrics>,
    schedule: cron::Schedule,
    full_schedule: cron::Schedule,
    failures: u32,
    retry_at: Option<DateTime<Utc>>,
    stop: AtomicBool,
}

/// Runs until SIGTERM/SIGINT. Returns after the write in flight finished
/// and everything was flushed.
pub async fn run(config_path: &Path) -> Result<(), DaemonError> {
    run_until(config_path, std::future::pending()).await
}

/// The same, also stopping when `shutdown` completes (the demo runs the
/// daemon inside its own process).
pub async fn run_until(
    config_path: &Path,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), DaemonError> {
    tokio::pin!(shutdown);
    let config = Config::load(config_path)?;
    let store = Arc::new(Store::open(&config.daemon.state_dir)?);
    let link = Link::connect(&config).await?;
    let metrics = Arc::new(Metrics::new());
    let link_metrics = metrics.link(crate::state::DEFAULT_LINK);
    link_metrics.watch(&link);
    link_metrics.store_changed(&store);
    let (ctl_tx, mut ctl_rx) = mpsc::channel::<control::Envelope>(16);
    let control_task = control::serve(&config.daemon.control_socket, ctl_tx).await?;
    if let Some(addr) = &config.daemon.metrics_listen {
        let parsed = std::net::SocketAddr::from_str(addr).map_err(|e| DaemonError::Metrics {
            addr: addr.clone(),
            source: std::io::Error::new(std::io::ErrorKind::InvalidInput, e),
        })?;
        metrics::serve(parsed, metrics.clone())
            .await
            .map_err(|source| DaemonError::Metrics {
                addr: addr.clone(),
                source,
            })?;
    }
    let mut signals = Signals::install()?;
    let (watch_tx, mut watch_rx) = mpsc::channel::<()>(1);
    let _watcher = watch_config(config_path, watch_tx);
    let mut daemon = Daemon {
        config_path: config_path.to_path_buf(),
        schedule: crate::config::parse_schedule(&config.daemon.schedule)
            .map_err(|_| invalid_schedule(config_path))?,
        full_schedule: crate::config::parse_schedule(&config.daemon.full_resync_schedule)
            .map_err(|_| invalid_schedule(config_path))?,
        config,
        link,
        store,
        metrics: link_metrics,
        failures: 0,
        retry_at: None,
        stop: AtomicBool::new(false),
    };
    let mut watchdog = watchdog_interval();
    let _ = sd_notify::notify(
        false,
        &[
            NotifyState::Ready,
            NotifyState::Status("ready; waiting for the first cycle"),
        ],
    );
    info!(config = %config_path.display(), "hitosync daemon started");

    loop {
        let now = Utc::now();
        let next = daemon.next_tick(now);
        let next_full = daemon.full_schedule.after(&now).next();
        let job = tokio::select! {
            _ = sleep_until(next) => daemon.scheduled_cycle(false),
            _ = sleep_until(next_full) => daemon.scheduled_cycle(true),
            _ = signals.usr1.recv() => Job::Cycle { opts: CycleOptions::default(), reply: None, why: "SIGUSR1", json: false },
            _ = signals.usr2.recv() => Job::Cycle { opts: CycleOptions { full: true, ..Default::default() }, reply: None, why: "SIGUSR2", json: false },
            _ = signals.hup.recv() => Job::Reload,
            Some(()) = watch_rx.recv() => {
                // editors write in several steps: let them finish
                tokio::time::sleep(Duration::from_millis(300)).await;
                while watch_rx.try_recv().is_ok() {}
                Job::Reload
            }
            Some((req, reply)) = ctl_rx.recv() => daemon.control(req, reply),
            _ = signals.term.recv() => Job::Stop,
            _ = signals.int.recv() => Job::Stop,
            _ = &mut shutdown => Job::Stop,
            _ = tick(&mut watchdog) => {
                let _ = sd_notify::notify(false, &[NotifyState::Watchdog]);
                Job::Nothing
            }
        };
        match job {
            Job::Nothing => {}
            Job::Reload => daemon.reload().await,
            Job::Stop => break,
            Job::Cycle {
                opts,
                reply,
                why,
                json,
            } => {
                let stopping = daemon
                    .cycle(opts, reply, why, json, &mut signals, &mut watchdog)
                    .await;
                if stopping {
                    break;
                }
            }
        }
    }
    let _ = sd_notify::notify(
        false,
        &[NotifyState::Stopping, NotifyState::Status("stopping")],
    );
    control_task.abort();
    let _ = std::fs::remove_file(&daemon.config.daemon.control_socket);
    info!("hitosync daemon stopped");
    Ok(())
}

fn invalid_schedule(path: &Path) -> DaemonError {
    DaemonError::Config(ConfigError::Invalid {
        path: path.to_path_buf(),
        key: "daemon.schedule",
        expected: "a cron expression with seconds".into(),
        found: String::new(),
    })
}

async fn sleep_until(t: Option<DateTime<Utc>>) {
    match t {
        Some(t) => tokio::time::sleep((t - Utc::now()).to_std().unwrap_or(Duration::ZERO)).await,
        None => std::future::pending().await,
    }
}

fn watchdog_interval() -> Option<tokio::time::Interval> {
    let mut usec = 0;
    if sd_notify::watchdog_enabled(false, &mut usec) && usec > 0 {
        // ping at twice the rate systemd expects
        Some(tokio::time::interval(Duration::from_micros(usec / 2)))
    } else {
        None
    }
}

async fn tick(i: &mut Option<tokio::time::Interval>) {
    match i {
        Some(i) => {
            i.tick().await;
        }
        None => std::future::pending().await,
    }
}

/// Watches the config file's folder (editors replace files rather than
/// write them in place) and signals the loop when the file changes.
fn watch_config(path: &Path, tx: mpsc::Sender<()>) -> Option<notify::RecommendedWatcher> {
    use notify::Watcher;
    let name = path.file_name()?.to_os_string();
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
        if let Ok(ev) = res
            && !ev.kind.is_access()
            && ev
                .paths
                .iter()
                .any(|p| p.file_name() == Some(name.as_os_str()))
        {
            let _ = tx.try_send(());
        }
    })
    .map_err(|e| warn!(error = %e, "cannot watch the config file; reload with SIGHUP"))
    .ok()?;
    watcher
        .watch(dir, notify::RecursiveMode::NonRecursive)
        .map_err(|e| warn!(error = %e, "cannot watch the config file; reload with SIGHUP"))
        .ok()?;
    Some(watcher)
}

impl Daemon {
    /// The next scheduled cycle, pushed back while failures back off.
    fn next_tick(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let next = self.schedule.after(&now).next()?;
        match self.retry_at {
            Some(r) if r > next => self.schedule.after(&r).next().or(Some(r)),
            _ => Some(next),
        }
    }

    fn scheduled_cycle(&self, full: bool) -> Job {
        Job::Cycle {
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

    /// Read-only requests are answered at once; cycles go through the loop.
    fn control(&self, req: Request, reply: oneshot::Sender<Answer>) -> Job {
        let answer = |r: Result<(String, u8), StateError>| match r {
            Ok((output, exit_code)) => Answer { exit_code, output },
            Err(e) => Answer {
                exit_code: 1,
                output: format!("error: {e}\n"),
            },
        };
        match req {
            Request::Status { json } => {
                let _ = reply.send(answer(
                    status::status_output(&self.store, json).map(|s| (s, 0)),
                ));
                Job::Nothing
            }
            Request::Inspect { id, json } => {
                let _ = reply.send(answer(status::inspect_output(&self.store, &id, json)));
                Job::Nothing
            }
            Request::Sync {
                full,
                allow_mass_delete,
            } => Job::Cycle {
                opts: CycleOptions {
                    full,
                    allow_mass_delete,
                    ..Default::default()
                },
                reply: Some(reply),
                why: "hitosync sync",
                json: false,
            },
            Request::Plan { full, json } => Job::Cycle {
                opts: CycleOptions {
                    full,
                    dry_run: true,
                    ..Default::default()
                },
                reply: Some(reply),
                why: "hitosync plan",
                json,
            },
        }
    }

    /// Runs one cycle; SIGTERM meanwhile lets the record in flight finish.
    /// Returns whether the daemon must stop.
    async fn cycle(
        &mut self,
        opts: CycleOptions,
        reply: Option<oneshot::Sender<Answer>>,
        why: &'static str,
        plan_json: bool,
        signals: &mut Signals,
        watchdog: &mut Option<tokio::time::Interval>,
    ) -> bool {
        info!(
            trigger = why,
            full = opts.full,
            dry_run = opts.dry_run,
            "cycle starting"
        );
        let mut stopping = false;
        let started = std::time::Instant::now();
        let result = {
            let engine = self.link.engine(&self.store, Some(&self.stop));
            let fut = engine.cycle(&opts);
            tokio::pin!(fut);
            loop {
                tokio::select! {
                    r = &mut fut => break r,
                    _ = signals.term.recv() => { stopping = true; self.stop.store(true, Ordering::SeqCst); }
                    _ = signals.int.recv() => { stopping = true; self.stop.store(true, Ordering::SeqCst); }
                    _ = tick(watchdog) => { let _ = sd_notify::notify(false, &[NotifyState::Watchdog]); }
                }
            }
        };
        self.metrics
            .cycle_finished(result.as_ref(), started.elapsed(), opts.dry_run);
        self.metrics.store_changed(&self.store);
        let answer = match result {
            Ok(report) => {
                if !opts.dry_run {
                    self.after_success(&report);
                }
                if opts.dry_run {
                    Answer {
                        exit_code: 0,
                        output: status::render_plan(&report, plan_json),
                    }
                } else {
                    let (output, exit_code) = status::render_cycle(&report);
                    Answer { exit_code, output }
                }
            }
            Err(e) => {
                self.failures += 1;
                let wait = Duration::from_secs((30u64 << self.failures.min(6)).min(1800));
                self.retry_at =
                    Some(Utc::now() + chrono::Duration::from_std(wait).unwrap_or_default());
                error!(error = %e, failures = self.failures, retry_in_s = wait.as_secs(), "cycle failed; nothing is lost, it is retried");
                let _ = sd_notify::notify(
                    false,
                    &[NotifyState::Status(&format!("last cycle failed: {e}"))],
                );
                Answer {
                    exit_code: 1,
                    output: format!("error: {e}\n"),
                }
            }
        };
        if let Some(reply) = reply {
            let _ = reply.send(answer);
        }
        stopping
    }

    fn after_success(&mut self, report: &CycleReport) {
        self.failures = 0;
        self.retry_at = None;
        let mapped = self.store.record_count();
        let status = format!(
            "last cycle {}: {} applied, {} parked; {} interviews mapped",
            Utc::now().format("%H:%M:%S"),
            report.applied,
            report.parked,
            mapped
        );
        let _ = sd_notify::notify(false, &[NotifyState::Status(&status)]);
    }

    /// SIGHUP or an edited file: a bad config is refused and the old one
    /// stays in force.
    async fn reload(&mut self) {
        let new = match Config::load(&self.config_path) {
            Ok(c) => c,
            Err(e) => {
                error!(error = %e, "config reload refused; the running config stays in force");
                return;
            }
        };
        let link = match Link::connect(&new).await {
            Ok(l) => l,
            Err(e) => {
                error!(error = %e, "config reload refused; the running config stays in force");
                return;
            }
        };
        let (Ok(schedule), Ok(full)) = (
            crate::config::parse_schedule(&new.daemon.schedule),
            crate::config::parse_schedule(&new.daemon.full_resync_schedule),
        ) else {
            error!("config reload refused: bad schedule; the running config stays in force");
            return;
        };
        if new.daemon.state_dir != self.config.daemon.state_dir
            || new.daemon.control_socket != self.config.daemon.control_socket
            || new.daemon.metrics_listen != self.config.daemon.metrics_listen
        {
            warn!(
                "daemon.state_dir, control_socket and metrics_listen take effect at the next restart"
            );
        }
        // keep counting on the same counters: metrics stay monotonic
        let mut link = link;
        link.calendar.share_counters(&self.link.calendar);
        link.hitolink.counters = self.link.hitolink.counters.clone();
        self.link = link;
        self.schedule = schedule;
        self.full_schedule = full;
        self.config = new;
        self.metrics.reloaded();
        info!(config = %self.config_path.display(), "config reloaded");
    }
}
