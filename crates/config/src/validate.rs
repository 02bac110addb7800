//! The values' own rules, checked once the file parsed. Every failure
//! names the key as the file spells it and what was expected.

use std::net::SocketAddr;
use std::str::FromStr;

use crate::{Config, DaemonConfig, MAX_RETRY_AFTER_LIMIT, check_url, is_email, parse_schedule};

/// `(key, expected, found)`: turned into `ConfigError::Invalid` by the caller,
/// who knows the file.
pub(crate) type Bad = (String, String, String);

/// How keys of one link are spelled in messages.
pub(crate) enum KeyPrefix {
    /// The single-link form: `google.p12_key_file`.
    Single,
    /// The N-th `[[link]]` table (from 1), before its name is known to be
    /// good: `link[2].name`.
    Indexed(usize),
    /// A named link: `link "brand-b": google.p12_key_file`.
    Named(String),
}

impl KeyPrefix {
    pub(crate) fn key(&self, key: &str) -> String {
        match self {
            KeyPrefix::Single => key.to_string(),
            KeyPrefix::Indexed(i) => format!("link[{i}].{key}"),
            KeyPrefix::Named(name) => format!("link {name:?}: {key}"),
        }
    }
}

pub(crate) fn validate_daemon(d: &DaemonConfig) -> Result<(), Bad> {
    let bad = |key: &str, expected: &str, found: &str| -> Result<(), Bad> {
        Err((key.to_string(), expected.to_string(), found.to_string()))
    };
    if let Err(e) = parse_schedule(&d.schedule) {
        return bad("daemon.schedule", &e, &d.schedule);
    }
    if let Err(e) = parse_schedule(&d.full_resync_schedule) {
        return bad("daemon.full_resync_schedule", &e, &d.full_resync_schedule);
    }
    if d.cycle_deadline_secs == 0 {
        return bad(
            "daemon.cycle_deadline_secs",
            "seconds above 0 (default 90, under the unit's WatchdogSec)",
            "0",
        );
    }
    if let Some(listen) = d
        .metrics_listen
        .as_ref()
        .filter(|listen| SocketAddr::from_str(listen).is_err())
    {
        return bad(
            "daemon.metrics_listen",
            "an address and port like 127.0.0.1:9464",
            listen,
        );
    }
    Ok(())
}

pub(crate) fn validate_link(c: &Config, prefix: &KeyPrefix) -> Result<(), Bad> {
    let bad = |key: &str, expected: &str, found: &str| -> Result<(), Bad> {
        Err((prefix.key(key), expected.to_string(), found.to_string()))
    };
    let g = &c.google;
    if !is_email(&g.service_account_email) {
        return bad(
            "google.service_account_email",
            "the service account's address, like sync@project.iam.gserviceaccount.com (setup guide 1-④)",
            &g.service_account_email,
        );
    }
    if !is_email(&g.organizer_email) {
        return bad(
            "google.organizer_email",
            "the 予約元 address whose calendar holds the interviews (setup guide 1-⑤)",
            &g.organizer_email,
        );
    }
    match (&g.p12_key_file, &g.json_key_file) {
        (Some(_), Some(_)) => {
            return bad(
                "google.p12_key_file",
                "either p12_key_file or json_key_file, not both",
                "both set",
            );
        }
        (None, None) => {
            return bad(
                "google.p12_key_file",
                "the path of the P12 key downloaded in setup guide 1-③",
                "nothing",
            );
        }
        _ => {}
    }
    if g.calendar_id.trim().is_empty() {
        return bad(
            "google.calendar_id",
            "a calendar ID, usually \"primary\"",
            "",
        );
    }
    if let Err(e) = check_url(&g.api_base_url) {
        return bad("google.api_base_url", &e, &g.api_base_url);
    }
    if let Err(e) = check_url(&g.token_uri) {
        return bad("google.token_uri", &e, &g.token_uri);
    }
    if g.max_requests_per_minute == 0 {
        return bad(
            "google.max_requests_per_minute",
            "a number of requests above 0 (Google allows about 600 a minute per user)",
            "0",
        );
    }
    if g.max_retry_after_secs == 0 || g.max_retry_after_secs > MAX_RETRY_AFTER_LIMIT {
        return bad(
            "google.max_retry_after_secs",
            &format!("seconds from 1 to {MAX_RETRY_AFTER_LIMIT} (default 300)"),
            &g.max_retry_after_secs.to_string(),
        );
    }
    let h = &c.hitolink;
    if let Err(e) = check_url(&h.base_url) {
        return bad("hitolink.base_url", &e, &h.base_url);
    }
    if h.max_requests_per_minute == 0 {
        return bad(
            "hitolink.max_requests_per_minute",
            "a number of requests above 0 (the API allows 100 a minute)",
            "0",
        );
    }
    if h.max_retry_after_secs == 0 || h.max_retry_after_secs > MAX_RETRY_AFTER_LIMIT {
        return bad(
            "hitolink.max_retry_after_secs",
            &format!("seconds from 1 to {MAX_RETRY_AFTER_LIMIT} (default 300)"),
            &h.max_retry_after_secs.to_string(),
        );
    }
    let s = &c.sync;
    if s.booking_marker.trim().is_empty() {
        return bad(
            "sync.booking_marker",
            "a non-empty marker like \"HL:\"",
            &s.booking_marker,
        );
    }
    Ok(())
}
