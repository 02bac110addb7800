//! `hitosync run`: the long-running daemon.
//!
//! One worker task per link (`worker`) runs that link's cycles, one at a
//! time, each bounded by `daemon.cycle_deadline_secs`, on its schedules and
//! on request: a link's bad key, revoked token or 410 storm never slows
//! another. The supervisor (here) never runs a cycle, so it is always
//! free: it answers `status` and `inspect` at once, reloads the config
//! (SIGHUP or an edited file: links added start, removed ones stop after
//! their cycle in flight, changed ones restart alone), forwards
//! SIGUSR1/SIGUSR2 and `sync`/`plan` requests to the workers, pings the
//! systemd watchdog, and on SIGTERM/SIGINT fires the shutdown token that
//! ends every wait of the cycles under way, lets the records in flight
//! finish, and exits 0.
//!
//! With PostgreSQL (`[state] backend = "postgres"`) a link runs here only
//! while this replica holds its lease (`leases`); the others run elsewhere.

mod answers;
pub mod control;
pub mod fence;
pub mod leases;
mod links;
pub mod metrics;
mod reload;
pub mod state_db;
pub mod systemd;
pub mod worker;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use hitosync_net::retry::CancellationToken;
use sd_notify::NotifyState;
use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::sync::{mpsc, oneshot};
use tracing::{error, info, warn};

use control::{Answer, ControlError};
use hitosync_config::{ConfigError, ConfigFile, Form};
use hitosync_engine::CycleOptions;
use hitosync_engine::link::LinkError;
use hitosync_state::StateError;
use leases::{LeaseCommand, LeaseEvent, LeaseManager};
use links::{Env, LinkSlot};
use metrics::Metrics;
use state_db::{StateDb, StateDbSlot};
use systemd::Notifier;
use worker::Command;

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Link(#[from] LinkError),
    /// Every link of a file of several failed to start.
    #[error("no link could start: {0}")]
    Links(String),
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
                | DaemonError::Links(_)
                | DaemonError::Metrics { .. }
                | DaemonError::Control(ControlError::NotASocket { .. } | ControlError::Bind { .. })
                | DaemonError::State(
                    StateError::Open { .. }
                        | StateError::NotAStore { .. }
                        | StateError::UnfinishedSnapshot { .. }
                        | StateError::Schema { .. }
                        | StateError::Database { .. }
                        | StateError::DatabaseSchema { .. }
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

/// Runs until SIGTERM/SIGINT. Returns after the writes in flight finished
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
    let file = ConfigFile::load(config_path)?;
    for w in file.warnings() {
        warn!("{w}");
    }
    let backend = StateDb::open(&file).await?;
    let pg = backend.postgres().cloned();
    let backend = Arc::new(StateDbSlot::new(&file, backend));
    // Every link's clients are built (keys and tokens read) before
    // anything starts: a link that cannot start is named, and only when
    // none can does the daemon refuse to run.
    let many = file.form == Form::Many;
    let mut table: BTreeMap<String, LinkSlot> = BTreeMap::new();
    let mut failures = vec![];
    for c in &file.links {
        let mut slot = LinkSlot::new(c.clone());
        match hitosync_engine::link::Link::connect(c).await {
            Ok(link) => slot.prepared = Some(link),
            Err(e) if !many => return Err(DaemonError::Link(e)),
            Err(e) => {
                let text = format!("link {:?}: {e}", c.link);
                error!(link = %c.link, error = %e, "the link cannot start; the others run (fix the file and reload)");
                slot.set_setup_error(Some(text.clone()));
                failures.push(text);
            }
        }
        {
            let h = match backend.get() {
                Some((_, b)) => match b.store(&c.link, None) {
                    Ok(store) => crate::status::Health::load(store.as_ref()).await,
                    Err(_) => Default::default(),
                },
                None => Default::default(),
            };
            *slot.shared.health.lock() = h;
        }
        table.insert(c.link.clone(), slot);
    }
    if failures.len() == file.links.len() {
        return Err(DaemonError::Links(failures.join("; ")));
    }

    let metrics = Arc::new(Metrics::new());
    let (ctl_tx, mut ctl_rx) = mpsc::channel::<control::Envelope>(16);
    let control_task = control::serve(&file.daemon.control_socket, ctl_tx).await?;
    if let Some(addr) = &file.daemon.metrics_listen {
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
    let stop = CancellationToken::new();
    let env = Env {
        backend: backend.clone(),
        metrics: metrics.clone(),
        meters: Default::default(),
        notifier: notifier.clone(),
        stop: stop.clone(),
    };
    // Leases: the links start as they are acquired.
    let lease_stop = CancellationToken::new();
    let (lease_tx, mut lease_rx) = mpsc::channel::<LeaseEvent>(64);
    let (lease_cmd, lease_cmd_rx) = mpsc::channel::<LeaseCommand>(64);
    let mut replica = None;
    let lease_task = match pg {
        Some(pg) => {
            let manager = LeaseManager::new(
                pg,
                file.names().iter().map(|s| s.to_string()).collect(),
                file.state.lease(),
                file.state.lease_renew(),
                lease_tx,
            );
            replica = Some(manager.id.clone());
            Some(tokio::spawn(manager.run(lease_cmd_rx, lease_stop.clone())))
        }
        None => {
            drop(lease_tx);
            for slot in table.values_mut() {
                if let Some(link) = slot.prepared.take() {
                    env.start(slot, link, None);
                }
            }
            None
        }
    };
    let (released_tx, mut released_rx) = mpsc::channel::<String>(64);
    let mut supervisor = Supervisor {
        config_path: config_path.to_path_buf(),
        file,
        table,
        env,
        replica,
        lease_cmd: lease_task.as_ref().map(|_| lease_cmd.clone()),
        released: released_tx,
    };
    let mut watchdog = watchdog_interval();
    notifier.notify(&[
        NotifyState::Ready,
        NotifyState::Status("ready; waiting for the first cycle"),
    ]);
    info!(config = %config_path.display(), links = supervisor.table.len(), "hitosync daemon started");

    loop {
        tokio::select! {
            _ = signals.usr1.recv() => supervisor.cycle_all(CycleOptions::default(), "SIGUSR1"),
            _ = signals.usr2.recv() => supervisor.cycle_all(CycleOptions { full: true, ..Default::default() }, "SIGUSR2"),
            _ = signals.hup.recv() => supervisor.reload().await,
            Some(()) = watch_rx.recv() => {
                // editors write in several steps: let them finish
                tokio::time::sleep(Duration::from_millis(300)).await;
                while watch_rx.try_recv().is_ok() {}
                supervisor.reload().await;
            }
            Some((req, reply)) = ctl_rx.recv() => supervisor.control(req, reply),
            Some(ev) = lease_rx.recv() => supervisor.lease_event(ev).await,
            Some(link) = released_rx.recv() => {
                if let Some(tx) = &supervisor.lease_cmd {
                    let _ = tx.send(LeaseCommand::Released { link }).await;
                }
            }
            _ = signals.term.recv() => break,
            _ = signals.int.recv() => break,
            _ = &mut shutdown => break,
            _ = tick(&mut watchdog) => supervisor.watchdog(),
        }
    }
    // Every wait of the cycles under way ends now; the records in flight
    // are finished, nothing else starts, the cursors stay where they were.
    info!("stopping: finishing the records in flight");
    notifier.notify(&[NotifyState::Stopping, NotifyState::Status("stopping")]);
    stop.cancel();
    let tasks: Vec<_> = supervisor
        .table
        .values_mut()
        .filter_map(|s| s.runner.take())
        .map(|r| r.task)
        .collect();
    for t in tasks {
        if let Err(e) = t.await {
            error!(error = %e, "a link worker ended abnormally");
        }
    }
    // only now may others take the links
    lease_stop.cancel();
    if let Some(t) = lease_task {
        let _ = t.await;
    }
    control_task.abort();
    control::remove_socket(&supervisor.file.daemon.control_socket);
    info!("hitosync daemon stopped");
    Ok(())
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
        let ours = res.is_ok_and(|ev| {
            !ev.kind.is_access()
                && ev
                    .paths
                    .iter()
                    .any(|p| p.file_name() == Some(name.as_os_str()))
        });
        if ours {
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
    file: ConfigFile,
    table: BTreeMap<String, LinkSlot>,
    env: Env,
    /// This replica's id (PostgreSQL).
    replica: Option<String>,
    lease_cmd: Option<mpsc::Sender<LeaseCommand>>,
    /// A shed or removed link's worker ended: its lease may go.
    released: mpsc::Sender<String>,
}

impl Supervisor {
    /// Queues a cycle for one link's worker. A full queue answers at once
    /// rather than wait: the supervisor must stay free.
    fn cycle(
        &self,
        name: &str,
        opts: CycleOptions,
        reply: Option<oneshot::Sender<Answer>>,
        why: &'static str,
        json: bool,
    ) {
        let refuse = |reply: Option<oneshot::Sender<Answer>>, reason: String| {
            warn!(link = %name, trigger = why, "cycle request not queued: {reason}");
            if let Some(reply) = reply {
                let _ = reply.send(Answer {
                    exit_code: 1,
                    output: format!("{reason}\n"),
                });
            }
        };
        let Some(runner) = self.table.get(name).and_then(|s| s.runner.as_ref()) else {
            return refuse(reply, self.not_here(name));
        };
        let command = Command::Cycle {
            opts,
            reply,
            why,
            json,
        };
        if let Err(e) = runner.tx.try_send(command) {
            let (c, reason) = match e {
                mpsc::error::TrySendError::Full(c) => {
                    (c, "the daemon has too many cycles queued; try again later")
                }
                mpsc::error::TrySendError::Closed(c) => (c, "the daemon is shutting down"),
            };
            let Command::Cycle { reply, .. } = c;
            refuse(reply, reason.to_string());
        }
    }

    /// Why a link's cycle cannot run here.
    fn not_here(&self, name: &str) -> String {
        match self.table.get(name) {
            None => format!("no link named {name:?} in {}", self.config_path.display()),
            Some(slot) => {
                let live = slot.shared.snapshot().1;
                match (&live.setup_error, &self.replica) {
                    (Some(e), _) => format!("link {name:?} is not running: {e}"),
                    (None, Some(_)) => format!(
                        "link {name:?} is run by another replica now (see `hitosync status`); run the command through that one"
                    ),
                    (None, None) => format!("link {name:?} is not running"),
                }
            }
        }
    }

    fn cycle_all(&self, opts: CycleOptions, why: &'static str) {
        for (name, slot) in &self.table {
            if slot.runner.is_some() {
                self.cycle(name, opts.clone(), None, why, false);
            }
        }
    }

    /// Pings systemd, unless a worker is stuck in a cycle it cannot stop:
    /// then the missing pings make systemd restart the service.
    fn watchdog(&self) {
        for (name, slot) in &self.table {
            if slot
                .shared
                .wedged(slot.config.daemon.cycle_deadline(), WEDGE_GRACE)
            {
                error!(link = %name,
                    "the cycle under way ignores its deadline; no watchdog ping, so that systemd restarts hitosync"
                );
                return;
            }
        }
        self.env.notifier.notify(&[NotifyState::Watchdog]);
    }

    async fn lease_event(&mut self, ev: LeaseEvent) {
        match ev {
            LeaseEvent::Acquired { link, lease } => {
                let many = self.file.form == Form::Many;
                let Some(slot) = self.table.get_mut(&link) else {
                    // not configured any more: let it go
                    let _ = self.released.send(link).await;
                    return;
                };
                slot.lease = Some(lease);
                let prepared = slot.prepared.take();
                let client = match prepared {
                    Some(l) => Ok(l),
                    None => links::connect(&slot.config, many).await,
                };
                match client {
                    Ok(l) => {
                        // a worker of an earlier lease may still be ending
                        let before = links::retire(slot);
                        self.env.start(slot, l, before);
                    }
                    Err(e) => {
                        error!(%link, error = %e, "the link cannot start; it stays held here so that no replica runs it half-configured (fix the file and reload)");
                        slot.set_setup_error(Some(e));
                    }
                }
            }
            LeaseEvent::Lost { link } => {
                let task = self.table.get_mut(&link).and_then(links::cancel);
                self.env.forget_metrics(&link, task);
            }
            LeaseEvent::Shed { link } => {
                let task = self.table.get_mut(&link).and_then(links::retire);
                if let Some(slot) = self.table.get_mut(&link) {
                    slot.lease = None;
                }
                let released = self.released.clone();
                let (ended_tx, ended) = oneshot::channel::<()>();
                self.env.forget_metrics(
                    &link,
                    Some(tokio::spawn(async move {
                        let _ = ended.await;
                    })),
                );
                tokio::spawn(async move {
                    if let Some(t) = task {
                        let _ = t.await;
                    }
                    let _ = ended_tx.send(());
                    let _ = released.send(link).await;
                });
            }
        }
    }
}
