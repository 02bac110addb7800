//! The `hitosync` command line.

#[cfg(feature = "emulators")]
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
#[cfg(feature = "emulators")]
use std::sync::Arc;

use clap::{Parser, Subcommand};

use crate::daemon::state_db::StateDb;
use crate::daemon::{self, control::Request};
use crate::logging::{self, LogFormat};
use crate::status;
use hitosync_config::{Config, ConfigFile, DEFAULT_CONFIG_PATH};
#[cfg(feature = "emulators")]
use hitosync_emulator as emulator;
use hitosync_engine::CycleOptions;
use hitosync_state::StateError;

mod cycles;
use cycles::{cycle_command, through_daemon};

#[derive(Debug, Parser)]
#[command(
    name = "hitosync",
    version,
    about = "Keeps HITO-Link interviews and the organizer's Google Calendar in step"
)]
pub struct Cli {
    /// The configuration file.
    #[arg(long, global = true, default_value = DEFAULT_CONFIG_PATH, env = "HITOSYNC_CONFIG")]
    pub config: PathBuf,
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    #[cfg(feature = "emulators")]
    /// Both emulators and the daemon in one process: a hiring week synced live, no credentials needed.
    Demo {
        /// Stay up after the scenario (Ctrl-C stops).
        #[arg(long)]
        keep_running: bool,
    },
    /// The daemon, in the foreground (systemd Type=notify): cycles on the schedule, signals, control socket.
    Run,
    /// One reconcile cycle, then exit (0: all applied, 1: something parked or failed, 2: configuration error).
    Sync {
        /// Forget both cursors first and compare everything.
        #[arg(long)]
        full: bool,
        /// Apply cancellations even when the mass-deletion breaker would hold them.
        #[arg(long)]
        allow_mass_delete: bool,
        /// Only this link (default: every link).
        #[arg(long, value_name = "NAME")]
        link: Option<String>,
    },
    /// What one cycle would do, per record; changes nothing anywhere.
    Plan {
        #[arg(long)]
        full: bool,
        #[arg(long)]
        json: bool,
        /// Only this link (default: every link).
        #[arg(long, value_name = "NAME")]
        link: Option<String>,
    },
    /// Counts, last cycle, cursors' age, pending operations, conflicts, failing records, leases.
    Status {
        #[arg(long)]
        json: bool,
        /// Only this link (default: every link).
        #[arg(long, value_name = "NAME")]
        link: Option<String>,
    },
    /// One interview's mapping, last agreed state and history of decisions.
    Inspect {
        /// The HITO-Link interview ID (like iv_000123).
        id: String,
        #[arg(long)]
        json: bool,
        /// The link the interview belongs to (needed when the file has several).
        #[arg(long, value_name = "NAME")]
        link: Option<String>,
    },
    #[cfg(feature = "emulators")]
    /// Measures cycles against the emulators over loopback and prints the figures (docs/performance.md).
    Bench {
        /// Mapped interviews for the idle-cycle table.
        #[arg(long, value_delimiter = ',', default_values_t = [100usize, 1_000, 10_000, 100_000])]
        sizes: Vec<usize>,
        /// Changes per cycle for the second table.
        #[arg(long, value_delimiter = ',', default_values_t = [1usize, 10, 100, 1_000])]
        changes: Vec<usize>,
        /// Mapped interviews while measuring changes.
        #[arg(long, default_value_t = 10_000)]
        changes_at: usize,
        /// New interviews for the import held to production rates.
        #[arg(long, default_value_t = 10_000)]
        import: usize,
        /// New interviews for the import measured for memory only.
        #[arg(long, default_value_t = 100_000)]
        memory_import: usize,
        /// Google's per-user quota (requests a minute).
        #[arg(long, default_value_t = 600)]
        quota_per_minute: u32,
        /// How much faster than real time the quota's minute runs.
        #[arg(long, default_value_t = 20.0)]
        time_scale: f64,
        /// Instead of the tables above: this many links on one daemon.
        #[arg(long, default_value_t = 0)]
        links: usize,
        /// Interviews per link with --links.
        #[arg(long, default_value_t = 1_000)]
        per_link: usize,
        /// With --links: the same on this PostgreSQL database, then a takeover.
        #[arg(long, value_name = "URL")]
        postgres_url: Option<String>,
    },
    /// Checks every step of the setup guide and says which one is wrong and how to mend it.
    Doctor {
        #[arg(long)]
        json: bool,
        /// Also insert and remove a private probe event (notifying nobody).
        #[arg(long)]
        write_test: bool,
    },
    #[cfg(feature = "emulators")]
    /// Run a test peer (an emulator of Google Calendar or HITO-Link) in the foreground.
    #[command(subcommand)]
    Emulate(Emulate),
    /// Writes the man pages or the shell completions of this binary (for packaging).
    #[command(subcommand, hide = true)]
    Generate(Generate),
}

#[derive(Debug, Subcommand)]
pub enum Generate {
    /// hitosync.1 and a page per subcommand.
    Man { out_dir: PathBuf },
    /// bash, zsh and fish completions.
    Completions { out_dir: PathBuf },
}

#[cfg(feature = "emulators")]
#[derive(Debug, Subcommand)]
pub enum Emulate {
    /// Calendar API v3 and Google's OAuth token endpoint.
    Google {
        #[arg(long, default_value = "127.0.0.1:8085")]
        listen: SocketAddr,
        /// The service account whose key signs the token requests.
        #[arg(long)]
        service_account: String,
        /// A Workspace user with a calendar (the 予約元); repeat for more.
        #[arg(long, required = true)]
        organizer: Vec<String>,
        /// The service account's P12 key; its certificate verifies the JWTs.
        #[arg(long)]
        p12: PathBuf,
        #[arg(long, default_value = "notasecret")]
        p12_password: String,
    },
    /// The HITO-Link interview API of HITOLINK-API.md.
    Hitolink {
        #[arg(long, default_value = "127.0.0.1:8086")]
        listen: SocketAddr,
        /// A file holding the bearer token clients must send.
        #[arg(long)]
        token_file: PathBuf,
        /// JSON with `applications`, `interviews` (and optionally `users`, `selection_steps`).
        #[arg(long)]
        seed: Option<PathBuf>,
        /// Requests a minute per token before 429 (the API's documented 100); 0 lifts the limit.
        #[arg(long, default_value_t = 100)]
        rate_limit: u32,
    },
}

/// Runs the command line and returns the process exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    // Everything hitosync creates (the store, the control socket, its
    // temporary files) is for its own user only, whatever umask it was
    // started with.
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
    // The demo prints its own timeline; the daemon's info lines would bury it.
    #[cfg(feature = "emulators")]
    let quiet = matches!(cli.command, Command::Demo { .. } | Command::Bench { .. });
    #[cfg(not(feature = "emulators"))]
    let quiet = false;
    let default_level = if quiet { "warn" } else { "info" };
    logging::init(cli.log_format, default_level);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(dispatch(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", error_text(&e));
            ExitCode::from(1)
        }
    }
}

/// The error and its causes on one line, each said once: many errors
/// already quote their source in their own message, and anyhow's `{:#}`
/// would print it again after it.
fn error_text(e: &anyhow::Error) -> String {
    hitosync_net::http::error_chain(e.as_ref())
}

/// An error with the exit code it deserves: 2 for configuration and
/// setup (the admin must edit something), 1 for everything else.
#[derive(Debug)]
struct Failure {
    code: u8,
    error: anyhow::Error,
}

fn setup_error(e: impl Into<anyhow::Error>) -> Failure {
    Failure {
        code: 2,
        error: e.into(),
    }
}

fn run_error(e: impl Into<anyhow::Error>) -> Failure {
    Failure {
        code: 1,
        error: e.into(),
    }
}

fn load_config(path: &std::path::Path) -> Result<ConfigFile, Failure> {
    ConfigFile::load(path).map_err(setup_error)
}

fn state_failure(e: StateError) -> Failure {
    match e {
        StateError::Open { .. }
        | StateError::NotAStore { .. }
        | StateError::UnfinishedSnapshot { .. }
        | StateError::Schema { .. }
        | StateError::Database { .. }
        | StateError::DatabaseSchema { .. } => setup_error(e),
        other => run_error(other),
    }
}

async fn open_state(file: &ConfigFile) -> Result<StateDb, Failure> {
    StateDb::open(file).await.map_err(state_failure)
}

/// The links a command serves: `--link NAME`, or all of them.
fn selected<'a>(file: &'a ConfigFile, link: Option<&str>) -> Result<Vec<&'a Config>, Failure> {
    file.select(link).map_err(setup_error)
}

async fn status_command(
    config_path: &std::path::Path,
    json: bool,
    link: Option<String>,
) -> Result<ExitCode, Failure> {
    let file = load_config(config_path)?;
    let links = selected(&file, link.as_deref())?;
    if let Some(code) = through_daemon(
        &file,
        Request::Status {
            json,
            link: link.clone(),
        },
    )
    .await?
    {
        return Ok(code);
    }
    let backend = open_state(&file).await?;
    let leases = backend
        .leases(file.state.lease())
        .await
        .map_err(run_error)?;
    let now = chrono::Utc::now();
    let mut views = vec![];
    for c in links {
        let store = backend.store(&c.link, None).map_err(state_failure)?;
        let mut view = status::StatusView::read(store.as_ref(), now)
            .await
            .map_err(run_error)?;
        if let Some(l) = &leases {
            view.lease = l
                .leases
                .iter()
                .find(|r| r.link == c.link)
                .map(|r| status::LeaseView {
                    owner: r.owner.clone(),
                    expires_at: r.expires_at,
                    token: r.token,
                    expired: r.expired,
                    this_replica: false,
                });
        }
        views.push(view);
    }
    print!(
        "{}",
        status::render_many(&views, leases.as_ref().map(|l| l.replicas.as_slice()), json)
            .map_err(run_error)?
    );
    Ok(ExitCode::SUCCESS)
}

async fn inspect_command(
    config_path: &std::path::Path,
    id: &str,
    json: bool,
    link: Option<String>,
) -> Result<ExitCode, Failure> {
    let file = load_config(config_path)?;
    let links = selected(&file, link.as_deref())?;
    if links.len() > 1 {
        return Err(setup_error(anyhow::anyhow!(
            "{} configures {} links ({}): name the interview's link with --link NAME",
            config_path.display(),
            links.len(),
            file.names().join(", ")
        )));
    }
    if let Some(code) = through_daemon(
        &file,
        Request::Inspect {
            id: id.to_string(),
            json,
            link: link.clone(),
        },
    )
    .await?
    {
        return Ok(code);
    }
    let backend = open_state(&file).await?;
    let store = backend.store(&links[0].link, None).map_err(state_failure)?;
    let (output, code) = status::inspect_output(store.as_ref(), id, json)
        .await
        .map_err(run_error)?;
    print!("{output}");
    Ok(ExitCode::from(code))
}

async fn doctor_command(
    config_path: &std::path::Path,
    json: bool,
    write_test: bool,
) -> Result<ExitCode, Failure> {
    let checks = crate::doctor::run(config_path, write_test).await;
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&checks).map_err(run_error)?
        );
    } else {
        print!("{}", crate::doctor::render(&checks));
    }
    let failed = checks
        .iter()
        .any(|c| c.outcome == crate::doctor::Outcome::Failed);
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

async fn run_command(config_path: &std::path::Path) -> Result<ExitCode, Failure> {
    match daemon::run(config_path).await {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(e) if e.is_setup() => Err(setup_error(e)),
        Err(e) => Err(run_error(e)),
    }
}

async fn dispatch(cli: Cli) -> anyhow::Result<ExitCode> {
    let result = match cli.command {
        Command::Sync {
            full,
            allow_mass_delete,
            link,
        } => {
            let opts = CycleOptions {
                full,
                allow_mass_delete,
                ..Default::default()
            };
            let through = Request::Sync {
                full,
                allow_mass_delete,
                link: link.clone(),
            };
            cycle_command(&cli.config, link.as_deref(), through, opts, false).await
        }
        Command::Plan { full, json, link } => {
            let opts = CycleOptions {
                full,
                dry_run: true,
                ..Default::default()
            };
            let through = Request::Plan {
                full,
                json,
                link: link.clone(),
            };
            cycle_command(&cli.config, link.as_deref(), through, opts, json).await
        }
        Command::Run => run_command(&cli.config).await,
        #[cfg(feature = "emulators")]
        Command::Bench {
            sizes,
            changes,
            changes_at,
            import,
            memory_import,
            quota_per_minute,
            time_scale,
            links,
            per_link,
            postgres_url,
        } => {
            let opts = crate::bench::BenchOptions {
                sizes,
                changes,
                changes_at,
                import,
                memory_import,
                quota_per_minute,
                time_scale,
            };
            let ran = if links > 0 {
                crate::bench::run_links(links, per_link, postgres_url.as_deref()).await
            } else {
                crate::bench::run(&opts).await
            };
            ran.map(|()| ExitCode::SUCCESS).map_err(run_error)
        }
        Command::Doctor { json, write_test } => doctor_command(&cli.config, json, write_test).await,
        #[cfg(feature = "emulators")]
        Command::Demo { keep_running } => match crate::demo::run(keep_running).await {
            Ok(()) => Ok(ExitCode::SUCCESS),
            Err(e) => Err(run_error(e)),
        },
        Command::Status { json, link } => status_command(&cli.config, json, link).await,
        Command::Inspect { id, json, link } => inspect_command(&cli.config, &id, json, link).await,
        #[cfg(feature = "emulators")]
        Command::Emulate(e) => emulate(e).await,
        Command::Generate(what) => generate(what),
    };
    Ok(match result {
        Ok(code) => code,
        Err(f) => {
            eprintln!("error: {}", error_text(&f.error));
            ExitCode::from(f.code)
        }
    })
}

fn generate(what: Generate) -> Result<ExitCode, Failure> {
    let files = match what {
        Generate::Man { out_dir } => crate::generate::man_pages(&out_dir),
        Generate::Completions { out_dir } => crate::generate::completions(&out_dir),
    }
    .map_err(run_error)?;
    for f in files {
        println!("{}", f.display());
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(feature = "emulators")]
async fn emulate(e: Emulate) -> Result<ExitCode, Failure> {
    match e {
        Emulate::Google {
            listen,
            service_account,
            organizer,
            p12,
            p12_password,
        } => {
            let setup =
                emulator::google::setup_from_p12(&service_account, &organizer, &p12, &p12_password)
                    .map_err(setup_error)?;
            let emu = Arc::new(emulator::google::GoogleEmulator::new(setup));
            let (addr, task) = emulator::google::spawn(emu, listen)
                .await
                .map_err(run_error)?;
            println!("listening on http://{addr}");
            println!("token_uri = \"http://{addr}/token\"");
            println!("api_base_url = \"http://{addr}/calendar/v3/\"");
            wait_for_shutdown(task).await;
            Ok(ExitCode::SUCCESS)
        }
        Emulate::Hitolink {
            listen,
            token_file,
            seed,
            rate_limit,
        } => {
            // The emulator's own token file is test material; any mode will do.
            let token = hitosync_hitolink::read_token(&token_file, true).map_err(setup_error)?;
            let seed = match seed {
                Some(path) => emulator::hitolink::read_seed(&path).map_err(setup_error)?,
                None => emulator::hitolink::Seed::default(),
            };
            let emu = Arc::new(emulator::hitolink::HitolinkEmulator::new(
                secrecy::ExposeSecret::expose_secret(&token),
                seed,
            ));
            emu.set_rate_limit((rate_limit > 0).then_some(rate_limit));
            let (addr, task) = emulator::hitolink::spawn(emu, listen)
                .await
                .map_err(run_error)?;
            println!("listening on http://{addr}");
            println!("base_url = \"http://{addr}/\"");
            wait_for_shutdown(task).await;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Serves until SIGINT/SIGTERM.
#[cfg(feature = "emulators")]
async fn wait_for_shutdown(task: tokio::task::JoinHandle<()>) {
    let term = async {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            match signal(SignalKind::terminate()) {
                Ok(mut s) => {
                    s.recv().await;
                }
                Err(_) => std::future::pending::<()>().await,
            }
        }
        #[cfg(not(unix))]
        std::future::pending::<()>().await
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
        _ = task => {}
    }
}
