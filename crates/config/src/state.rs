//! `[state]`: where the mappings live. sled in `daemon.state_dir` by
//! default (one machine, no database); PostgreSQL for replicas that share
//! the links, with per-link leases.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use url::Url;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// The embedded store in `daemon.state_dir`: one process at a time.
    #[default]
    Sled,
    /// A PostgreSQL database shared by replicas, each link leased to one.
    Postgres,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StateConfig {
    #[serde(default)]
    pub backend: Backend,
    /// `postgresql://user@host:port/db?sslmode=require`; no password in it
    /// (the config file is not a secret store): see `password_file`.
    #[serde(default)]
    pub url: Option<String>,
    /// A file holding the database password on one line (chmod 600).
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// The name of a systemd credential (`LoadCredential=NAME:...` in the
    /// unit) holding the password; read from `$CREDENTIALS_DIRECTORY/NAME`.
    #[serde(default)]
    pub password_credential: Option<String>,
    /// The CA certificate (PEM) that signed the server's certificate, for
    /// a database whose certificate no public CA signed.
    #[serde(default)]
    pub tls_ca_file: Option<PathBuf>,
    /// How long a link's lease lasts without renewal: a replica that dies
    /// gives its links up to others after at most this long.
    #[serde(default = "default_lease_secs")]
    pub lease_secs: u64,
    /// How often leases are renewed; at most half the lease, so that one
    /// missed renewal does not lose it.
    #[serde(default = "default_lease_renew_secs")]
    pub lease_renew_secs: u64,
    /// Connections to the database (shared by all links of this daemon).
    #[serde(default = "default_pool_size")]
    pub pool_size: usize,
}

impl Default for StateConfig {
    fn default() -> Self {
        StateConfig {
            backend: Backend::Sled,
            url: None,
            password_file: None,
            password_credential: None,
            tls_ca_file: None,
            lease_secs: default_lease_secs(),
            lease_renew_secs: default_lease_renew_secs(),
            pool_size: default_pool_size(),
        }
    }
}

fn default_lease_secs() -> u64 {
    30
}
fn default_lease_renew_secs() -> u64 {
    10
}
fn default_pool_size() -> usize {
    8
}

impl StateConfig {
    pub fn lease(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.lease_secs)
    }

    pub fn lease_renew(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.lease_renew_secs)
    }

    pub(crate) fn resolve_relative_paths(&mut self, base: &Path) {
        for p in [self.password_file.as_mut(), self.tls_ca_file.as_mut()]
            .into_iter()
            .flatten()
        {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        }
    }

    /// Checks the keys; `Err((key, expected, found))`.
    pub(crate) fn validate(&self) -> Result<(), (String, String, String)> {
        let bad = |key: &str, expected: &str, found: &str| {
            Err((
                format!("state.{key}"),
                expected.to_string(),
                found.to_string(),
            ))
        };
        if self.lease_secs < 2 || self.lease_secs > 3600 {
            return bad(
                "lease_secs",
                "seconds from 2 to 3600 (default 30)",
                &self.lease_secs.to_string(),
            );
        }
        if self.lease_renew_secs == 0 || self.lease_renew_secs * 2 > self.lease_secs {
            return bad(
                "lease_renew_secs",
                &format!(
                    "seconds from 1 to half of state.lease_secs ({}), so that one missed renewal does not lose a lease (default 10)",
                    self.lease_secs / 2
                ),
                &self.lease_renew_secs.to_string(),
            );
        }
        if self.pool_size == 0 || self.pool_size > 256 {
            return bad(
                "pool_size",
                "connections from 1 to 256 (default 8)",
                &self.pool_size.to_string(),
            );
        }
        match self.backend {
            Backend::Sled => {
                for (key, set) in [
                    ("url", self.url.is_some()),
                    ("password_file", self.password_file.is_some()),
                    ("password_credential", self.password_credential.is_some()),
                    ("tls_ca_file", self.tls_ca_file.is_some()),
                ] {
                    if set {
                        return bad(
                            key,
                            "no value while state.backend is \"sled\" (set backend = \"postgres\" to use a database)",
                            "a value",
                        );
                    }
                }
                Ok(())
            }
            Backend::Postgres => {
                let Some(raw) = &self.url else {
                    return bad(
                        "url",
                        "the database's URL, like \"postgresql://hitosync@db.example.co.jp/hitosync?sslmode=require\"",
                        "nothing",
                    );
                };
                if let Err(e) = check_postgres_url(raw) {
                    return bad("url", &e, &redact_url(raw));
                }
                if self.password_file.is_some() && self.password_credential.is_some() {
                    return bad(
                        "password_file",
                        "either password_file or password_credential, not both",
                        "both set",
                    );
                }
                if let Some(name) = self
                    .password_credential
                    .as_ref()
                    .filter(|name| name.is_empty() || name.contains('/'))
                {
                    return bad(
                        "password_credential",
                        "the name of a credential in the unit's LoadCredential= (no slash)",
                        name,
                    );
                }
                Ok(())
            }
        }
    }
}

/// A PostgreSQL URL as hitosync accepts it: no password in it, and a
/// plain connection only to this machine (a unix socket or loopback);
/// anything else says `sslmode=require`.
pub fn check_postgres_url(raw: &str) -> Result<Url, String> {
    let url = Url::parse(raw)
        .map_err(|e| format!("a URL like postgresql://user@host:5432/db?sslmode=require ({e})"))?;
    if !matches!(url.scheme(), "postgres" | "postgresql") {
        return Err("a postgresql:// URL".into());
    }
    if url.password().is_some() {
        return Err(
            "a URL without a password (put it in state.password_file or a systemd credential, state.password_credential)"
                .into(),
        );
    }
    let mut sslmode = None;
    let mut socket_host = false;
    for (k, v) in url.query_pairs() {
        match k.as_ref() {
            "sslmode" => sslmode = Some(v.into_owned()),
            "host" if v.starts_with('/') => socket_host = true,
            _ => {}
        }
    }
    match sslmode.as_deref() {
        None | Some("disable" | "prefer" | "require") => {}
        Some(other) => {
            return Err(format!(
                "sslmode=disable, prefer or require (found sslmode={other}; with require the server's certificate is always verified)"
            ));
        }
    }
    let loopback = match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        // A postgresql:// URL is not a "special" scheme to the URL
        // standard, so its IPv4 host comes back as a name: parse it here.
        Some(url::Host::Domain(d)) => {
            d.eq_ignore_ascii_case("localhost")
                || d.parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback())
        }
        None => true,
    };
    if sslmode.as_deref() != Some("require") && !loopback && !socket_host {
        return Err(
            "sslmode=require for a database on another machine (interview data must not cross a network in clear text)"
                .into(),
        );
    }
    Ok(url)
}

/// The URL as it may be shown: without whatever password it carries.
pub fn redact_url(raw: &str) -> String {
    match Url::parse(raw) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("REDACTED"));
            u.to_string()
        }
        Ok(u) => u.to_string(),
        Err(_) => "(not a URL)".into(),
    }
}
