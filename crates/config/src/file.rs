//! The file as a whole: one link in the form of today (`[google]`,
//! `[hitolink]`, `[sync]` at the top level: the link `default`), or many
//! `[[link]]` tables, each with its `name`, `[link.google]`,
//! `[link.hitolink]`, optional `[link.sync]` and optional schedules. Both
//! forms share `[daemon]` and `[state]`.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::validate::{KeyPrefix, validate_daemon, validate_link};
use crate::{
    Config, ConfigError, DaemonConfig, GoogleConfig, HitolinkConfig, StateConfig, SyncConfig,
    parse_schedule, syntax_message,
};

/// The link of a file in the single-link form.
pub const DEFAULT_LINK: &str = "default";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    google: Option<GoogleConfig>,
    hitolink: Option<HitolinkConfig>,
    sync: Option<SyncConfig>,
    #[serde(default)]
    daemon: DaemonConfig,
    #[serde(default)]
    state: StateConfig,
    #[serde(default)]
    link: Vec<RawLink>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLink {
    name: String,
    /// This link's own `daemon.schedule`.
    schedule: Option<String>,
    /// This link's own `daemon.full_resync_schedule`.
    full_resync_schedule: Option<String>,
    google: GoogleConfig,
    hitolink: HitolinkConfig,
    #[serde(default)]
    sync: SyncConfig,
}

/// Which form the file has; error messages name keys the way it spells them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    /// `[google]`, `[hitolink]` at the top level: the link `default`.
    Single,
    /// `[[link]]` tables.
    Many,
}

/// The whole file: the daemon's settings, the state backend and every link.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigFile {
    pub path: PathBuf,
    pub form: Form,
    pub daemon: DaemonConfig,
    pub state: StateConfig,
    /// Each link's view, in the file's order.
    pub links: Vec<Config>,
    /// Per link (same order): whether it set its own schedules.
    own_schedules: Vec<(bool, bool)>,
}

/// A link's name goes into store tree names, lease rows, metrics labels
/// and log fields: short, lowercase, no spaces or slashes.
pub fn valid_link_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase() || c.is_ascii_digit())
        && name.len() <= 63
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}

impl ConfigFile {
    /// Reads, parses and validates the file; nothing is half-loaded.
    pub fn load(path: &Path) -> Result<ConfigFile, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        ConfigFile::parse(&text, path)
    }

    /// Parses TOML text; `path` names the file in errors and anchors its
    /// relative paths.
    pub fn parse(text: &str, path: &Path) -> Result<ConfigFile, ConfigError> {
        let raw: RawFile = toml::from_str(text).map_err(|e| ConfigError::Syntax {
            path: path.to_path_buf(),
            message: syntax_message(&e),
        })?;
        let base = path.parent().unwrap_or(Path::new(".")).to_path_buf();
        let invalid = |key: String, expected: &str, found: &str| ConfigError::Invalid {
            path: path.to_path_buf(),
            key,
            expected: expected.to_string(),
            found: found.to_string(),
        };
        let RawFile {
            google,
            hitolink,
            sync,
            mut daemon,
            mut state,
            link,
        } = raw;
        fix(&base, &mut daemon.state_dir);
        fix(&base, &mut daemon.control_socket);
        state.resolve_relative_paths(&base);
        validate_daemon(&daemon).map_err(|(k, e, f)| invalid(k, &e, &f))?;
        state.validate().map_err(|(k, e, f)| invalid(k, &e, &f))?;

        let (form, raw_links) = if link.is_empty() {
            let (Some(google), Some(hitolink)) = (google, hitolink) else {
                return Err(ConfigError::Syntax {
                    path: path.to_path_buf(),
                    message: "the file needs a [google] and a [hitolink] table (one link), or [[link]] tables each with [link.google] and [link.hitolink] (several)\n(see config/hitosync.example.toml)".into(),
                });
            };
            let one = RawLink {
                name: DEFAULT_LINK.into(),
                schedule: None,
                full_resync_schedule: None,
                google,
                hitolink,
                sync: sync.unwrap_or_default(),
            };
            (Form::Single, vec![one])
        } else {
            let mixed: Vec<&str> = [
                ("[google]", google.is_some()),
                ("[hitolink]", hitolink.is_some()),
                ("[sync]", sync.is_some()),
            ]
            .into_iter()
            .filter_map(|(k, set)| set.then_some(k))
            .collect();
            if !mixed.is_empty() {
                return Err(ConfigError::MixedForms {
                    path: path.to_path_buf(),
                    keys: mixed.join(", "),
                });
            }
            (Form::Many, link)
        };

        let mut links: Vec<Config> = Vec::with_capacity(raw_links.len());
        let mut own_schedules = Vec::with_capacity(raw_links.len());
        for (i, raw) in raw_links.into_iter().enumerate() {
            let prefix = match form {
                Form::Single => KeyPrefix::Single,
                Form::Many => KeyPrefix::Indexed(i + 1),
            };
            if !valid_link_name(&raw.name) {
                return Err(invalid(
                    prefix.key("name"),
                    "a name of lowercase letters, digits, '-' and '_', starting with a letter or digit, at most 63 characters (like \"brand-b\")",
                    &raw.name,
                ));
            }
            if links.iter().any(|l| l.link == raw.name) {
                return Err(invalid(
                    prefix.key("name"),
                    "a name no other [[link]] table uses",
                    &raw.name,
                ));
            }
            let prefix = match form {
                Form::Single => KeyPrefix::Single,
                Form::Many => KeyPrefix::Named(raw.name.clone()),
            };
            let mut view = Config {
                link: raw.name,
                google: raw.google,
                hitolink: raw.hitolink,
                daemon: daemon.clone(),
                sync: raw.sync,
            };
            own_schedules.push((raw.schedule.is_some(), raw.full_resync_schedule.is_some()));
            for (key, own, slot) in [
                ("schedule", raw.schedule, &mut view.daemon.schedule),
                (
                    "full_resync_schedule",
                    raw.full_resync_schedule,
                    &mut view.daemon.full_resync_schedule,
                ),
            ] {
                if let Some(expr) = own {
                    parse_schedule(&expr).map_err(|e| invalid(prefix.key(key), &e, &expr))?;
                    *slot = expr;
                }
            }
            if let Some(p) = view.google.p12_key_file.as_mut() {
                fix(&base, p);
            }
            if let Some(p) = view.google.json_key_file.as_mut() {
                fix(&base, p);
            }
            fix(&base, &mut view.hitolink.api_token_file);
            validate_link(&view, &prefix).map_err(|(k, e, f)| invalid(k, &e, &f))?;
            if let Some(other) = links.iter().find(|l| {
                l.google
                    .organizer_email
                    .eq_ignore_ascii_case(&view.google.organizer_email)
                    && l.google.calendar_id == view.google.calendar_id
            }) {
                return Err(invalid(
                    prefix.key("google.organizer_email"),
                    &format!(
                        "a calendar no other link syncs (link {:?} already syncs calendar {:?} of this organizer; two links on one calendar would fight over its events)",
                        other.link, view.google.calendar_id
                    ),
                    &view.google.organizer_email,
                ));
            }
            links.push(view);
        }
        Ok(ConfigFile {
            path: path.to_path_buf(),
            form,
            daemon,
            state,
            links,
            own_schedules,
        })
    }

    /// The only link, for what serves one (tests, a one-link file).
    pub fn single(mut self) -> Result<Config, ConfigError> {
        if self.links.len() == 1 {
            return Ok(self.links.remove(0));
        }
        Err(ConfigError::ManyLinks {
            path: self.path.clone(),
            count: self.links.len(),
            names: self.names().join(", "),
        })
    }

    pub fn names(&self) -> Vec<&str> {
        self.links.iter().map(|l| l.link.as_str()).collect()
    }

    pub fn link(&self, name: &str) -> Result<&Config, ConfigError> {
        self.links
            .iter()
            .find(|l| l.link == name)
            .ok_or_else(|| ConfigError::NoSuchLink {
                path: self.path.clone(),
                name: name.to_string(),
                names: self.names().join(", "),
            })
    }

    /// The links a command serves: the one named, or all of them.
    pub fn select(&self, name: Option<&str>) -> Result<Vec<&Config>, ConfigError> {
        match name {
            Some(n) => Ok(vec![self.link(n)?]),
            None => Ok(self.links.iter().collect()),
        }
    }

    /// How an error or warning names `key` of the link `name`: as the file
    /// spells it.
    pub fn key_of(&self, name: &str, key: &str) -> String {
        match self.form {
            Form::Single => key.to_string(),
            Form::Many => KeyPrefix::Named(name.to_string()).key(key),
        }
    }

    /// Settings that load but are probably not what the admin meant; the
    /// daemon logs each at start and at every reload.
    pub fn warnings(&self) -> Vec<String> {
        let mut out: Vec<String> = vec![];
        for (link, (own, own_full)) in self.links.iter().zip(&self.own_schedules) {
            for w in link.warnings() {
                let w = match self.form {
                    Form::Many if *own && w.starts_with("daemon.schedule =") => {
                        w.replacen("daemon.schedule", &self.key_of(&link.link, "schedule"), 1)
                    }
                    Form::Many if *own_full && w.starts_with("daemon.full_resync_schedule =") => w
                        .replacen(
                            "daemon.full_resync_schedule",
                            &self.key_of(&link.link, "full_resync_schedule"),
                            1,
                        ),
                    _ => w,
                };
                if !out.contains(&w) {
                    out.push(w);
                }
            }
        }
        for (i, a) in self.links.iter().enumerate() {
            for b in &self.links[i + 1..] {
                if a.hitolink.base_url == b.hitolink.base_url
                    && a.hitolink.api_token_file == b.hitolink.api_token_file
                {
                    out.push(format!(
                        "links {:?} and {:?} use the same HITO-Link tenant and token: both sync every interview of it, each to its own calendar, and share the token's 100 requests a minute",
                        a.link, b.link
                    ));
                }
            }
        }
        out
    }
}

/// Relative paths in the file are taken relative to the file itself, so a
/// config directory can be moved as a whole (and the demo can use one in a
/// temporary directory).
fn fix(base: &Path, p: &mut PathBuf) {
    if p.is_relative() {
        *p = base.join(&*p);
    }
}
