//! `hitosync run`: the long-running daemon.
//!
//! Two tasks. The worker (`worker`) runs the cycles of the link, one at a
//! time, each bounded by `daemon.cycle_deadline_secs`, on its schedules and
//! on request. The supervisor (here) never runs a cycle, so it is always
//! free: it answers `status` and `inspect` from the shared store at once,
//! reloads the config (SIGHUP or an edited file), forwards SIGUSR1/SIGUSR2
//! and `sync`/`plan` requests to the worker, pings the systemd watchdog,
//! and on SIGTERM/SIGINT fires the shutdown token that ends every wait of
//! the cycle under way, lets the record in flight finish, and exits 0.

pub mod control;
pub mod metrics;
pub mod systemd;
pub mod worker;

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use crate::retry::CancellationToken;
use sd_notify::NotifyState;
use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::sync::{mpsc, oneshot};
use tracing::{error, info, warn};

use crate::config::{Config, ConfigError};
use crate::engine::CycleOptions;
use crate::link::{Link, LinkError};
use crate::state::{StateError, Store};
use crate::status::{self, Health};
use control::{Answer, ControlError, Request};
use metrics::{LinkMetrics, Metrics};
use systemd::Notifier;
use worker::{Command, Settings, Shared, StoreSlot, Worker};

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
            DaemonError::Config(_)
                | DaemonError::Link(_)
                | DaemonError::Metrics { .. }
                | DaemonError::Control(ControlError::NotASocket { .. } | ControlError::Bind { .. })
                | DaemonError::State(
                    StateError::Open { .. }
                        | StateError::NotAStore { .. }
                        | StateError::UnfinishedSnapshot { .. }
                        | StateError::Schema { .. }
                )
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
    for w in config.warnings() {
        warn!("{w}");
    }
    let schedules = schedules(&config, config_path)?;
    let store = Store::open(&config.daemon.state_dir)?;
    let health = Health::load(&store);
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

    let notifier = Arc::new(Notifier::from_env());
    let store = Arc::new(StoreSlot::new(config.daemon.state_dir.clone(), store));
    let shared = Arc::new(Shared::default());
    *shared.health.lock().unwrap_or_else(|p| p.into_inner()) = health;
    let stop = CancellationToken::new();
    let (work_tx, work_rx) = mpsc::channel::<Command>(16);
    let worker = Worker::new(
        Settings {
            link,
            schedule: schedules.0,
            full_schedule: schedules.1,
            deadline: config.daemon.cycle_deadline(),
        },
        store.clone(),
        shared.clone(),
        link_metrics.clone(),
        notifier.clone(),
        stop.clone(),
    );
    let worker_task = tokio::spawn(worker.run(work_rx));
    let mut supervisor = Supervisor {
        config_path: config_path.to_path_buf(),
        config,
        store,
        shared,
        metrics: link_metrics,
        notifier: notifier.clone(),
        work: work_tx,
    };
    let mut watchdog = watchdog_interval();
    notifier.notify(&[
        NotifyState::Ready,
        NotifyState::Status("ready; waiting for the first cycle"),
    ]);
    info!(config = %config_path.display(), "hitosync daemon started");

    loop {
        tokio::select! {
            _ = signals.usr1.recv() => supervisor.cycle(CycleOptions::default(), None, "SIGUSR1", false),
            _ = signals.usr2.recv() => supervisor.cycle(CycleOptions { full: true, ..Default::default() }, None, "SIGUSR2", false),
            _ = signals.hup.recv() => supervisor.reload().await,
            Some(()) = watch_rx.recv() => {
                // editors write in several steps: let them finish
                tokio::time::sleep(Duration::from_millis(300)).await;
                while watch_rx.try_recv().is_ok() {}
                supervisor.reload().await;
            }
            Some((req, reply)) = ctl_rx.recv() => supervisor.control(req, reply),
            _ = signals.term.recv() => break,
            _ = signals.int.recv() => break,
            _ = &mut shutdown => break,
            _ = tick(&mut watchdog) => supervisor.watchdog(),
        }
    }
    // Every wait of the cycle under way ends now; the record in flight is
    // finished, nothing else starts, the cursors stay where they were.
    info!("stopping: finishing the record in flight");
    notifier.notify(&[NotifyState::Stopping, NotifyState::Status("stopping")]);
    stop.cancel();
    drop(supervisor.work);
    if let Err(e) = worker_task.await {
        error!(error = %e, "the worker ended abnormally");
    }
    control_task.abort();
    control::remove_socket(&supervisor.config.daemon.control_socket);
    info!("hitosync daemon stopped");
    Ok(())
}

fn schedules(
    config: &Config,
    path: &Path,
) -> Result<(cron::Schedule, cron::Schedule), DaemonError> {
    Ok((
        crate::config::parse_schedule(&config.daemon.schedule)
            .map_err(|_| invalid_schedule(path))?,
        crate::config::parse_schedule(&config.daemon.full_resync_schedule)
            .map_err(|_| invalid_schedule(path))?,
    ))
}

fn invalid_schedule(path: &Path) -> DaemonError {
    DaemonError::Config(ConfigError::Invalid {
        path: path.to_path_buf(),
        key: "daemon.schedule",
        expected: "a cron expression with seconds".into(),
        found: String::new(),
    })
}

fn watchdog_interval() -> Option<tokio::time::Interval> {
    let mut usec = 0;
    if sd_notify::watchdog_enabled(false, &mut usec) && usec > 0 {
        // ping at twice the rate systemd expects
        let mut i = tokio::time::interval(Duration::from_micros(usec / 2));
        i.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        Some(i)
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

/// How long past its deadline a cycle may take to stop (the write in
/// flight runs into its own timeout) before the worker counts as wedged
/// and the watchdog pings stop, so that systemd restarts the service.
const WEDGE_GRACE: Duration = Duration::from_secs(180);

struct Supervisor {
    config_path: PathBuf,
    config: Config,
    store: Arc<StoreSlot>,
    shared: Arc<Shared>,
    metrics: Arc<LinkMetrics>,
    notifier: Arc<Notifier>,
    work: mpsc::Sender<Command>,
}

impl Supervisor {
    /// Queues a cycle for the worker. A full queue answers at once rather
    /// than wait: the supervisor must stay free.
    fn cycle(
        &self,
        opts: CycleOptions,
        reply: Option<oneshot::Sender<Answer>>,
        why: &'static str,
        json: bool,
    ) {
        let command = Command::Cycle {
            opts,
            reply,
            why,
            json,
        };
        if let Err(e) = self.work.try_send(command) {
            let (c, reason) = match e {
                mpsc::error::TrySendError::Full(c) => {
                    (c, "the daemon has too many cycles queued; try again later")
                }
                mpsc::error::TrySendError::Closed(c) => (c, "the daemon is shutting down"),
            };
            warn!(trigger = why, "cycle request not queued: {reason}");
            if let Command::Cycle {
                reply: Some(reply), ..
            } = c
            {
                let _ = reply.send(Answer {
                    exit_code: 1,
                    output: format!("{reason}\n"),
                });
            }
        }
    }

    /// Read-only requests are answered here at once, also while a cycle
    /// runs; cycles go to the worker.
    fn control(&self, req: Request, reply: oneshot::Sender<Answer>) {
        match req {
            Request::Status { json } => {
                let _ = reply.send(self.status(json));
            }
            Request::Inspect { id, json } => {
                let answer = match self.store.get() {
                    Some(store) => match status::inspect_output(&store, &id, json) {
                        Ok((output, exit_code)) => Answer { exit_code, output },
                        Err(e) => Answer {
                            exit_code: 1,
                            output: format!("error: {e}\n"),
                        },
                    },
                    None => Answer {
                        exit_code: 1,
                        output: "error: the store is not open (see `hitosync status`)\n".into(),
                    },
                };
                let _ = reply.send(answer);
            }
            Request::Sync {
                full,
                allow_mass_delete,
            } => self.cycle(
                CycleOptions {
                    full,
                    allow_mass_delete,
                    ..Default::default()
                },
                Some(reply),
                "hitosync sync",
                false,
            ),
            Request::Plan { full, json } => self.cycle(
                CycleOptions {
                    full,
                    dry_run: true,
                    ..Default::default()
                },
                Some(reply),
                "hitosync plan",
                json,
            ),
        }
    }

    fn status(&self, json: bool) -> Answer {
        let (health, live) = self.shared.snapshot();
        let Some(store) = self.store.get() else {
            return Answer {
                exit_code: 1,
                output: status::status_without_store(&health, &live, json),
            };
        };
        let view =
            status::StatusView::read(&store, chrono::Utc::now()).map(|v| v.with_live(health, live));
        match view.and_then(|v| status::render_status(&v, json)) {
            Ok(output) => Answer {
                exit_code: 0,
                output,
            },
            Err(e) => Answer {
                exit_code: 1,
                output: format!("error: {e}\n"),
            },
        }
    }

    /// Pings systemd, unless the worker is stuck in a cycle it cannot stop:
    /// then the missing pings make systemd restart the service.
    fn watchdog(&self) {
        if self
            .shared
            .wedged(self.config.daemon.cycle_deadline(), WEDGE_GRACE)
        {
            error!(
                "the cycle under way ignores its deadline; no watchdog ping, so that systemd restarts hitosync"
            );
            return;
        }
        self.notifier.notify(&[NotifyState::Watchdog]);
    }

    /// SIGHUP or an edited file: a bad config is refused and the old one
    /// stays in force. The worker takes the new one between cycles.
    async fn reload(&mut self) {
        let new = match Config::load(&self.config_path) {
            Ok(c) => c,
            Err(e) => {
                error!(error = %e, "config reload refused; the running config stays in force");
                return;
            }
        };
        let (schedule, full_schedule) = match schedules(&new, &self.config_path) {
            Ok(s) => s,
            Err(_) => {
                error!("config reload refused: bad schedule; the running config stays in force");
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
        for w in new.warnings() {
            warn!("{w}");
        }
        if new.daemon.state_dir != self.config.daemon.state_dir
            || new.daemon.control_socket != self.config.daemon.control_socket
            || new.daemon.metrics_listen != self.config.daemon.metrics_listen
        {
            warn!(
                "daemon.state_dir, control_socket and metrics_listen take effect at the next restart"
            );
        }
        let settings = Settings {
            link,
            schedule,
            full_schedule,
            deadline: new.daemon.cycle_deadline(),
        };
        if self
            .work
            .try_send(Command::Reload(Box::new(settings)))
            .is_err()
        {
            error!("config reload refused: the worker's queue is full; try again");
            return;
        }
        // the state dir, socket and metrics address stay as they were
        let (state_dir, socket, metrics) = (
            self.config.daemon.state_dir.clone(),
            self.config.daemon.control_socket.clone(),
            self.config.daemon.metrics_listen.clone(),
        );
        self.config = new;
        self.config.daemon.state_dir = state_dir;
        self.config.daemon.control_socket = socket;
        self.config.daemon.metrics_listen = metrics;
        self.metrics.reloaded();
        info!(config = %self.config_path.display(), "config reloaded");
    }
}
