//! The configuration file (`hitosync.toml`).
//!
//! Every key that `../shared/SPEC.md` names lives here, with the default a site
//! gets when it leaves the key out. Loading is strict: an unknown key is an
//! error (a typo must not silently fall back to a default), and every error
//! names the file, the key and what was expected, because the person reading
//! it is an admin editing that file, not a developer reading a backtrace.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::Deserialize;
use url::Url;

mod file;
mod state;
mod validate;

pub use file::{ConfigFile, DEFAULT_LINK, Form, valid_link_name};
pub use state::{Backend, StateConfig, check_postgres_url, redact_url};

pub use hitosync_core::policy::{ConflictPolicy, OnDecline, OnEventDeleted, is_email};
use hitosync_core::reconcile::Policy;

/// Where `--config` points when it is not given.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/hitosync/hitosync.toml";

/// The only scope hitosync asks for; it is the one step 2 of the setup guide
/// (API承認設定) grants to the service account's client ID.
pub const CALENDAR_SCOPE: &str = "https://www.googleapis.com/auth/calendar";

/// What one link runs on: its organizer calendar (`google`), its HITO-Link
/// tenant (`hitolink`), its policy (`sync`), and the daemon's settings with
/// the link's own schedules in force. The clients and the engine take this
/// view, so they never need to know whether the file had one link or many.
/// Two views compare equal when nothing the link runs on changed: a
/// reload restarts only the links whose view differs.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// The link's name: `default` for a file of the single-link form.
    pub link: String,
    pub google: GoogleConfig,
    pub hitolink: HitolinkConfig,
    pub daemon: DaemonConfig,
    pub sync: SyncConfig,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GoogleConfig {
    /// The service account's address (setup guide 1-④, handed over in 3-②).
    pub service_account_email: String,
    /// The P12 key downloaded in setup guide 1-③.
    pub p12_key_file: Option<PathBuf>,
    /// Google's JSON key file, for sites that downloaded JSON instead of P12.
    pub json_key_file: Option<PathBuf>,
    /// Google writes every P12 with this password; a site that re-exported the
    /// key with its own password sets it here.
    #[serde(default)]
    pub p12_password: Option<String>,
    /// The 予約元 address (setup guide 1-⑤) whose calendar holds the events.
    pub organizer_email: String,
    #[serde(default = "default_calendar_id")]
    pub calendar_id: String,
    #[serde(default = "default_google_api_base_url")]
    pub api_base_url: String,
    #[serde(default = "default_token_uri")]
    pub token_uri: String,
    /// Google allows one user about 600 requests a minute; staying under it
    /// keeps an import free of rate-limit errors.
    #[serde(default = "default_google_rpm")]
    pub max_requests_per_minute: u32,
    /// A key file readable by group or others is refused unless this is set.
    #[serde(default)]
    pub allow_insecure_key_permissions: bool,
    /// The longest `Retry-After` waited for; a longer one fails the call
    /// (and so the cycle) with an error that says what Google asked.
    #[serde(default = "default_max_retry_after_secs")]
    pub max_retry_after_secs: u64,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HitolinkConfig {
    pub base_url: String,
    pub api_token_file: PathBuf,
    /// The API allows 100 requests a minute per token; 90 leaves room for a
    /// recruiter's own tools sharing the token.
    #[serde(default = "default_hitolink_rpm")]
    pub max_requests_per_minute: u32,
    #[serde(default)]
    pub allow_insecure_token_permissions: bool,
    /// The longest `Retry-After` waited for; a longer one fails the call
    /// (and so the cycle) with an error that says what HITO-Link asked.
    #[serde(default = "default_max_retry_after_secs")]
    pub max_retry_after_secs: u64,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DaemonConfig {
    #[serde(default = "default_state_dir")]
    pub state_dir: PathBuf,
    #[serde(default = "default_schedule")]
    pub schedule: String,
    #[serde(default = "default_full_resync_schedule")]
    pub full_resync_schedule: String,
    #[serde(default = "default_control_socket")]
    pub control_socket: PathBuf,
    #[serde(default)]
    pub metrics_listen: Option<String>,
    /// The longest one cycle may run. Past it the cycle is stopped as on
    /// SIGTERM (the record in flight is finished, the cursors stay) and
    /// counts as failed. Well under the unit's `WatchdogSec` (120 s).
    #[serde(default = "default_cycle_deadline_secs")]
    pub cycle_deadline_secs: u64,
}

impl Default for DaemonConfig {
    fn default() -> Self {
        DaemonConfig {
            state_dir: default_state_dir(),
            schedule: default_schedule(),
            full_resync_schedule: default_full_resync_schedule(),
            control_socket: default_control_socket(),
            metrics_listen: None,
            cycle_deadline_secs: default_cycle_deadline_secs(),
        }
    }
}

impl DaemonConfig {
    pub fn cycle_deadline(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.cycle_deadline_secs)
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyncConfig {
    #[serde(default)]
    pub conflict: ConflictPolicy,
    #[serde(default)]
    pub on_decline: OnDecline,
    #[serde(default)]
    pub on_event_deleted: OnEventDeleted,
    #[serde(default = "default_booking_marker")]
    pub booking_marker: String,
    #[serde(default = "default_true")]
    pub invite_candidate: bool,
    #[serde(default = "default_title_template")]
    pub title_template: String,
    #[serde(default = "default_max_deletions")]
    pub max_deletions: u32,
}

impl SyncConfig {
    /// What the decision core needs of this section, for one organizer.
    pub fn policy(&self, organizer: &str) -> Policy {
        Policy {
            conflict: self.conflict,
            on_decline: self.on_decline,
            on_event_deleted: self.on_event_deleted,
            invite_candidate: self.invite_candidate,
            booking_marker: self.booking_marker.clone(),
            title_template: self.title_template.clone(),
            organizer: organizer.to_ascii_lowercase(),
        }
    }
}

impl Default for SyncConfig {
    fn default() -> Self {
        SyncConfig {
            conflict: ConflictPolicy::default(),
            on_decline: OnDecline::default(),
            on_event_deleted: OnEventDeleted::default(),
            booking_marker: default_booking_marker(),
            invite_candidate: true,
            title_template: default_title_template(),
            max_deletions: default_max_deletions(),
        }
    }
}

fn default_calendar_id() -> String {
    "primary".into()
}
fn default_google_api_base_url() -> String {
    "https://www.googleapis.com/calendar/v3/".into()
}
fn default_token_uri() -> String {
    "https://oauth2.googleapis.com/token".into()
}
fn default_google_rpm() -> u32 {
    500
}
fn default_hitolink_rpm() -> u32 {
    90
}
fn default_max_retry_after_secs() -> u64 {
    300
}
fn default_cycle_deadline_secs() -> u64 {
    90
}
fn default_state_dir() -> PathBuf {
    "/var/lib/hitosync".into()
}
fn default_schedule() -> String {
    "0 */1 * * * *".into()
}
fn default_full_resync_schedule() -> String {
    "0 30 3 * * *".into()
}
fn default_control_socket() -> PathBuf {
    "/run/hitosync/control.sock".into()
}
fn default_booking_marker() -> String {
    hitosync_core::policy::DEFAULT_BOOKING_MARKER.into()
}
fn default_true() -> bool {
    true
}
fn default_title_template() -> String {
    hitosync_core::policy::DEFAULT_TITLE_TEMPLATE.into()
}
fn default_max_deletions() -> u32 {
    20
}

/// `max_retry_after_secs` above this is a typo, not a wish: a day.
pub const MAX_RETRY_AFTER_LIMIT: u64 = 86_400;

/// What went wrong with the configuration, always with the file it came from.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(
        "cannot read the config file {path}: {source} (pass another file with --config, or create it from config/hitosync.example.toml)"
    )]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Syntax { path: PathBuf, message: String },
    /// `key` is the whole path of the key: `google.p12_key_file` in a
    /// single-link file, `link "brand-b": google.p12_key_file` or
    /// `link[2].name` in a file of `[[link]]` tables.
    #[error("{path}: key `{key}`: expected {expected}, found {found:?}")]
    Invalid {
        path: PathBuf,
        key: String,
        expected: String,
        found: String,
    },
    /// The file uses both forms: top-level `[google]`/`[hitolink]`/`[sync]`
    /// and `[[link]]` tables.
    #[error(
        "{path}: {keys} at the top level and [[link]] tables in one file: use one form or the other (move {keys} into each [[link]] table as [link.google], [link.hitolink], [link.sync], or drop the [[link]] tables)"
    )]
    MixedForms { path: PathBuf, keys: String },
    /// A command that serves one link was given a file of several.
    #[error("{path} configures {count} links ({names}); name one with --link NAME")]
    ManyLinks {
        path: PathBuf,
        count: usize,
        names: String,
    },
    #[error("{path}: no link named {name:?} (the file configures {names})")]
    NoSuchLink {
        path: PathBuf,
        name: String,
        names: String,
    },
}

impl Config {
    /// Reads a file of one link (either form) and returns that link.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        ConfigFile::load(path)?.single()
    }

    /// Parses the text of a file of one link; `path` only names the file
    /// in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        ConfigFile::parse(text, path)?.single()
    }

    /// Settings that load but are probably not what the admin meant; the
    /// daemon logs each at start and at every reload.
    pub fn warnings(&self) -> Vec<String> {
        let mut out = vec![];
        let d = &self.daemon;
        for (key, expr) in [
            ("daemon.schedule", &d.schedule),
            ("daemon.full_resync_schedule", &d.full_resync_schedule),
        ] {
            if parse_schedule(expr).is_ok_and(|s| s.upcoming(chrono::Utc).next().is_none()) {
                out.push(format!(
                    "{key} = {expr:?} never fires (no such date is ahead); no cycle will run on it"
                ));
            }
        }
        let unspecified = d.metrics_listen.as_ref().and_then(|listen| {
            let addr = SocketAddr::from_str(listen).ok()?;
            addr.ip().is_unspecified().then_some((listen, addr))
        });
        if let Some((listen, addr)) = unspecified {
            out.push(format!(
                "daemon.metrics_listen = {listen:?} serves metrics on every network interface, unauthenticated; use 127.0.0.1:{} unless a firewall keeps others out",
                addr.port()
            ));
        }
        out
    }

    /// The P12 password; Google's own default when the site set none.
    pub fn p12_password(&self) -> &str {
        self.google.p12_password.as_deref().unwrap_or("notasecret")
    }
}

/// Turns toml's error (which already points at the line and the key) into one
/// message that also says where to look for the valid keys.
fn syntax_message(e: &toml::de::Error) -> String {
    let msg = e.to_string();
    let msg = msg.trim_end();
    if msg.contains("unknown field") {
        format!("{msg}\n(the valid keys are listed in config/hitosync.example.toml)")
    } else {
        msg.to_string()
    }
}

/// Parses a cron expression with seconds (`sec min hour dom mon dow`).
pub fn parse_schedule(expr: &str) -> Result<cron::Schedule, String> {
    cron::Schedule::from_str(expr).map_err(|e| {
        format!(
            "a cron expression with seconds, like \"0 */1 * * * *\" (sec min hour day month weekday): {e}"
        )
    })
}

/// HTTPS everywhere, plain HTTP only to this machine: the token and the
/// interview data must never cross a network in clear text.
pub fn check_url(raw: &str) -> Result<Url, String> {
    let url = Url::parse(raw).map_err(|e| format!("an absolute http(s) URL ({e})"))?;
    match url.scheme() {
        "https" => Ok(url),
        "http" if is_loopback_host(&url) => Ok(url),
        "http" => Err("an https:// URL (plain http is allowed only for loopback addresses)".into()),
        _ => Err("an https:// URL".into()),
    }
}

fn is_loopback_host(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

#[cfg(test)]
mod tests;
