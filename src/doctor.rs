//! `hitosync doctor`: every step of the setup guide, checked in its order,
//! each failure named by the guide's step with the fix in Japanese and
//! English. Google's own errors (`unauthorized_client`, `invalid_grant`,
//! `accessNotConfigured`) say little to an admin; the step does.

use std::path::Path;

use serde::Serialize;

use hitosync_config::{CALENDAR_SCOPE, Config, ConfigFile, Form};
use hitosync_core::model::EventStatus;
use hitosync_core::reconcile::{EventChange, EventDraft, Notify};
use hitosync_google::{
    AuthError, CalendarClient, ClientOptions, GoogleError, KeyError, ServiceAccount,
};
use hitosync_hitolink::{HitolinkClient, HitolinkError, SetupError as HlSetupError, TokenError};

mod state;
use state::state_check;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Ok,
    Failed,
    /// Not checked: an earlier step it depends on failed, or not asked for.
    Skipped,
}

#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// The link checked, when the file has several.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
    /// The setup guide's step, as the guide names it.
    pub step: &'static str,
    pub what: &'static str,
    pub outcome: Outcome,
    pub detail: String,
    pub fix_ja: Option<String>,
    pub fix_en: Option<String>,
}

impl Check {
    fn ok(step: &'static str, what: &'static str, detail: impl Into<String>) -> Check {
        Check {
            link: None,
            step,
            what,
            outcome: Outcome::Ok,
            detail: detail.into(),
            fix_ja: None,
            fix_en: None,
        }
    }
    fn failed(
        step: &'static str,
        what: &'static str,
        detail: impl Into<String>,
        ja: &str,
        en: &str,
    ) -> Check {
        Check {
            link: None,
            step,
            what,
            outcome: Outcome::Failed,
            detail: detail.into(),
            fix_ja: Some(ja.to_string()),
            fix_en: Some(en.to_string()),
        }
    }
    fn skipped(step: &'static str, what: &'static str, why: &str) -> Check {
        Check {
            link: None,
            step,
            what,
            outcome: Outcome::Skipped,
            detail: why.to_string(),
            fix_ja: None,
            fix_en: None,
        }
    }
}

const STEP_CONFIG: &str = "設定ファイル (config)";
const STEP_API: &str = "1-② API有効化";
const STEP_KEY: &str = "1-③ サービスアカウント作成";
const STEP_SA: &str = "3-② サービスアカウント メールアドレス";
const STEP_ORGANIZER: &str = "1-⑤ 予約元ユーザメールアドレスへの権限設定";
const STEP_DELEGATION: &str = "2. API承認設定";
const STEP_CLOCK: &str = "サーバーの時計 (clock)";
const STEP_HITOLINK: &str = "HITO-Link 接続 (HITO-Link API)";

/// Runs every check it can, for every link of the file. `write_test`
/// also inserts and removes a private probe event (notifying nobody).
pub async fn run(config_path: &Path, write_test: bool) -> Vec<Check> {
    let mut checks = vec![];
    let file = match ConfigFile::load(config_path) {
        Ok(c) => {
            checks.push(Check::ok(
                STEP_CONFIG,
                "config file",
                format!("{} is valid", config_path.display()),
            ));
            c
        }
        Err(e) => {
            checks.push(Check::failed(
                STEP_CONFIG,
                "config file",
                e.to_string(),
                "メッセージが示すファイルとキーを修正してください(config/hitosync.example.toml に全キーの説明があります)。",
                "Fix the file and key the message names (config/hitosync.example.toml explains every key).",
            ));
            return checks;
        }
    };
    checks.push(state_check(&file).await);
    for config in &file.links {
        let mut mine = link_checks(config, write_test).await;
        if file.form == Form::Many {
            for c in &mut mine {
                c.link = Some(config.link.clone());
            }
        }
        checks.extend(mine);
    }
    checks
}

/// The setup guide's steps for one link: its key, its service account,
/// the clock, delegation, its calendar, and its HITO-Link tenant.
async fn link_checks(config: &Config, write_test: bool) -> Vec<Check> {
    let mut checks = vec![];

    // 1-③ the key
    let account = match ServiceAccount::from_config(config) {
        Ok(a) => {
            checks.push(Check::ok(
                STEP_KEY,
                "P12 key",
                "the key file opens and holds an RSA private key",
            ));
            Some(a)
        }
        Err(e) => {
            checks.push(key_failure(&e));
            None
        }
    };
    // 3-② the service account's address
    let sa = &config.google.service_account_email;
    if sa.ends_with(".iam.gserviceaccount.com")
        && sa.split('@').next().is_some_and(|l| !l.is_empty())
    {
        checks.push(Check::ok(STEP_SA, "service account email", sa.clone()));
    } else {
        checks.push(Check::failed(
            STEP_SA,
            "service account email",
            format!("google.service_account_email = {sa:?} is not a service account address"),
            "GCP の「IAMと管理」>「サービスアカウント」に表示されるメールアドレス(<accountId>@<project>.iam.gserviceaccount.com)を google.service_account_email に設定してください。",
            "Set google.service_account_email to the address shown under IAM & Admin > Service Accounts (<accountId>@<project>.iam.gserviceaccount.com).",
        ));
    }
    // 1-⑤ the organizer: its shape was checked with the config; whether it
    // is a real user (not a group) only the token exchange tells.
    checks.push(clock(config).await);

    let Some(account) = account else {
        for (step, what) in [
            (STEP_DELEGATION, "token exchange"),
            (STEP_API, "Calendar API"),
            (STEP_ORGANIZER, "organizer calendar"),
        ] {
            checks.push(Check::skipped(step, what, "needs a usable key (1-③)"));
        }
        checks.push(hitolink(config).await);
        return checks;
    };
    let mut opts = ClientOptions::from_config(config);
    opts.backoff = hitosync_net::retry::Backoff::immediate(2);
    opts.page_size = 1;
    let calendar = match CalendarClient::new(&account, opts).await {
        Ok(c) => c,
        Err(e) => {
            checks.push(Check::failed(
                STEP_KEY,
                "P12 key",
                e.to_string(),
                "新しい P12 鍵を作成し直してください(1-③)。",
                "Create a new P12 key (step 1-③).",
            ));
            checks.push(hitolink(config).await);
            return checks;
        }
    };
    let token_ok = match calendar.tokens().token().await {
        Ok(_) => {
            checks.push(Check::ok(
                STEP_DELEGATION,
                "token exchange",
                format!(
                    "Google issued a token acting as {} with scope {CALENDAR_SCOPE}",
                    config.google.organizer_email
                ),
            ));
            checks.push(Check::ok(
                STEP_ORGANIZER,
                "organizer",
                "Google accepts the organizer address as a user",
            ));
            true
        }
        Err(e) => {
            checks.push(auth_failure(&e, config));
            false
        }
    };
    if token_ok {
        match calendar.list_page(None, None).await {
            Ok(_) => {
                checks.push(Check::ok(
                    STEP_API,
                    "Calendar API",
                    "the Google Calendar API answers",
                ));
                checks.push(Check::ok(
                    STEP_ORGANIZER,
                    "organizer calendar",
                    format!(
                        "calendar {:?} of {} is readable",
                        config.google.calendar_id, config.google.organizer_email
                    ),
                ));
                if write_test {
                    checks.push(write_probe(&calendar).await);
                } else {
                    checks.push(Check::skipped(
                        STEP_ORGANIZER,
                        "organizer calendar writable",
                        "run with --write-test to insert and remove a private probe event",
                    ));
                }
            }
            Err(e) => checks.push(calendar_failure(&e, config)),
        }
    } else {
        checks.push(Check::skipped(
            STEP_API,
            "Calendar API",
            "needs a token (2. API承認設定)",
        ));
    }
    checks.push(hitolink(config).await);
    checks
}

fn key_failure(e: &KeyError) -> Check {
    let (ja, en) = match e {
        KeyError::Missing { .. } | KeyError::Unreadable { .. } => (
            "1-③ でダウンロードした P12 鍵ファイルを置き、google.p12_key_file にそのパスを設定してください。",
            "Put the P12 key downloaded in step 1-③ in place and set google.p12_key_file to its path.",
        ),
        KeyError::InsecurePermissions { .. } => (
            "鍵ファイルの権限を chmod 600 にしてください(所有者だけが読めるように)。",
            "Run chmod 600 on the key file so that only its owner can read it.",
        ),
        KeyError::NotPkcs12 { .. } => (
            "鍵の作成時に形式「P12」を選んでください(1-③ 手順6)。JSON 鍵なら google.json_key_file を使ってください。",
            "Choose the \"P12\" format when creating the key (1-③ step 6), or use google.json_key_file for a JSON key.",
        ),
        KeyError::WrongPassword { .. } => (
            "Google の P12 鍵のパスワードは notasecret です。別のパスワードで書き出した場合は google.p12_password に設定してください。",
            "Google's P12 keys use the password notasecret; if the key was re-exported with another one, set google.p12_password.",
        ),
        KeyError::NoPrivateKey { .. } | KeyError::NotRsa { .. } | KeyError::BadJson { .. } => (
            "サービスアカウントの新しい鍵を作成し直してください(1-③)。",
            "Create a new key for the service account (step 1-③).",
        ),
    };
    Check::failed(STEP_KEY, "P12 key", e.to_string(), ja, en)
}

fn auth_failure(e: &AuthError, config: &Config) -> Check {
    match e {
        AuthError::DelegationNotGranted { .. } => Check::failed(
            STEP_DELEGATION,
            "token exchange",
            "Google refused domain-wide delegation (unauthorized_client)",
            &format!(
                "Google 管理コンソールの「セキュリティ」>「API の制御」>「ドメイン全体の委任を管理」で、サービスアカウントのクライアント ID(数字21桁)にスコープ {CALENDAR_SCOPE} を承認してください。"
            ),
            &format!(
                "In the Google Admin console, Security > API controls > Manage domain-wide delegation, authorize the service account's client ID (21 digits) with the scope {CALENDAR_SCOPE}."
            ),
        ),
        AuthError::KeyRejected { detail } => Check::failed(
            STEP_KEY,
            "token exchange",
            format!("Google rejected the key's signature (invalid_grant: {detail})"),
            "鍵が削除されたか、別のサービスアカウントの鍵です。1-③ で新しい P12 鍵を作成し、google.service_account_email と一致しているか確認してください。",
            "The key was deleted or belongs to another service account: create a new P12 key (1-③) and check google.service_account_email.",
        ),
        AuthError::SubjectRejected { detail } => Check::failed(
            STEP_ORGANIZER,
            "organizer",
            format!(
                "Google does not know {} as a user (invalid_grant: {detail})",
                config.google.organizer_email
            ),
            "google.organizer_email はカレンダーを持つユーザーのアドレスにしてください。Google グループ(配布リスト)は使えません。",
            "google.organizer_email must be a user with a calendar; a Google group (mailing list) cannot be used.",
        ),
        AuthError::ClockSkew { detail } => Check::failed(
            STEP_CLOCK,
            "token exchange",
            format!("Google rejected the token request's time (invalid_grant: {detail})"),
            "サーバーの時計がずれています。NTP を有効にしてください(timedatectl set-ntp true)。",
            "This machine's clock is off: enable NTP (timedatectl set-ntp true).",
        ),
        AuthError::UnknownServiceAccount { detail } => Check::failed(
            STEP_SA,
            "token exchange",
            format!("Google does not know the service account (invalid_grant: {detail})"),
            "google.service_account_email を GCP に表示されるサービスアカウントのアドレスと一致させてください(1-④)。",
            "Make google.service_account_email match the service account's address in the Cloud console (1-④).",
        ),
        AuthError::AudienceMismatch { detail } => Check::failed(
            STEP_CONFIG,
            "token exchange",
            format!("the token endpoint rejected the JWT's audience (invalid_grant: {detail})"),
            "google.token_uri は応答するトークンエンドポイントの URL にしてください(Google なら https://oauth2.googleapis.com/token。キーを省略すると既定値になります)。時計の問題ではありません。",
            "Set google.token_uri to the URL of the endpoint that answers (https://oauth2.googleapis.com/token for Google; leave the key out for the default). This is not a clock problem.",
        ),
        AuthError::Unreachable { uri, detail } => Check::failed(
            STEP_DELEGATION,
            "token exchange",
            format!("cannot reach {uri}: {detail}"),
            "google.token_uri とネットワーク(プロキシ、ファイアウォール)を確認してください。",
            "Check google.token_uri and the network (proxy, firewall).",
        ),
        other => Check::failed(
            STEP_DELEGATION,
            "token exchange",
            other.to_string(),
            "メッセージを確認し、2. API承認設定 を見直してください。",
            "Read the message and review step 2 (API authorization).",
        ),
    }
}

fn calendar_failure(e: &GoogleError, config: &Config) -> Check {
    match e {
        GoogleError::ApiDisabled { .. } => Check::failed(
            STEP_API,
            "Calendar API",
            "the Google Calendar API is not enabled for the project (403 accessNotConfigured)",
            "GCP の「APIとサービス」>「ライブラリ」で Google Calendar API を有効にしてください(1-②)。",
            "Enable the Google Calendar API under APIs & Services > Library in the Cloud console (1-②).",
        ),
        GoogleError::CalendarNotFound { calendar_id } => Check::failed(
            STEP_ORGANIZER,
            "organizer calendar",
            format!(
                "google.calendar_id = {calendar_id:?} is not a calendar {} can use (404)",
                config.google.organizer_email
            ),
            "google.calendar_id を primary(予約元ユーザー自身のカレンダー)にするか、そのカレンダーを予約元ユーザーに「予定の変更」権限で共有してください(1-⑤)。",
            "Set google.calendar_id to primary (the organizer's own calendar), or share that calendar with the organizer with \"Make changes to events\" (step 1-⑤).",
        ),
        GoogleError::NotFound { .. } | GoogleError::Forbidden { .. } => Check::failed(
            STEP_ORGANIZER,
            "organizer calendar",
            format!(
                "calendar {:?} of {} is not accessible: {e}",
                config.google.calendar_id, config.google.organizer_email
            ),
            "google.calendar_id(通常は primary)と google.organizer_email を確認してください。",
            "Check google.calendar_id (usually primary) and google.organizer_email.",
        ),
        other => Check::failed(
            STEP_API,
            "Calendar API",
            other.to_string(),
            "しばらくして再実行してください。続く場合は google.api_base_url を確認してください。",
            "Try again later; if it persists, check google.api_base_url.",
        ),
    }
}

/// A private event, inserted and cancelled again, telling nobody.
async fn write_probe(calendar: &CalendarClient) -> Check {
    let now = chrono::Utc::now();
    // event IDs take base32hex only (a-v, 0-9)
    let id = hitosync_core::reconcile::derived_event_id(&format!(
        "hitosync-doctor-probe-{}",
        now.timestamp()
    ));
    let probe = EventDraft {
        summary: "hitosync doctor probe (removed at once)".into(),
        description: String::new(),
        location: None,
        slot: hitosync_core::model::Slot {
            start: now + chrono::Duration::days(365),
            end: now + chrono::Duration::days(365) + chrono::Duration::minutes(5),
        },
        time_zone: "UTC".into(),
        attendees: vec![],
        private: Default::default(),
    };
    let step = |r: Result<_, GoogleError>| r.map_err(|e| e.to_string());
    let result = async {
        let ev = step(calendar.insert(&id, &probe, Notify::Nobody).await)?;
        step(
            calendar
                .patch(
                    &id,
                    Some(EventStatus::Cancelled),
                    &EventChange::default(),
                    Some(&ev.etag),
                    Notify::Nobody,
                )
                .await,
        )
    }
    .await;
    match result {
        Ok(_) => Check::ok(
            STEP_ORGANIZER,
            "organizer calendar writable",
            "a private probe event was inserted and removed",
        ),
        Err(e) => Check::failed(
            STEP_ORGANIZER,
            "organizer calendar writable",
            e,
            "予約元ユーザーがカレンダーの編集権限を持つか、1-⑤ の権限設定を確認してください。",
            "Check that the organizer can edit the calendar (step 1-⑤).",
        ),
    }
}

/// Compares this machine's clock with the token endpoint's `Date` header.
async fn clock(config: &Config) -> Check {
    let client = hitosync_net::http::client();
    let resp = hitosync_net::http::send(
        &client,
        http::Method::GET,
        &config.google.token_uri,
        &[],
        None,
    )
    .await;
    let date = resp
        .ok()
        .and_then(|r| {
            r.headers
                .get(http::header::DATE)
                .and_then(|d| d.to_str().ok())
                .map(str::to_string)
        })
        .and_then(|d| chrono::DateTime::parse_from_rfc2822(&d).ok());
    match date {
        None => Check::skipped(
            STEP_CLOCK,
            "clock",
            "the token endpoint sent no Date header to compare with",
        ),
        Some(theirs) => {
            let skew = (chrono::Utc::now() - theirs.with_timezone(&chrono::Utc)).num_seconds();
            if skew.abs() <= 60 {
                Check::ok(
                    STEP_CLOCK,
                    "clock",
                    format!("within {}s of Google's clock", skew.abs()),
                )
            } else {
                Check::failed(
                    STEP_CLOCK,
                    "clock",
                    format!("this machine's clock is {skew}s off Google's"),
                    "サーバーの時計がずれています。NTP を有効にしてください(timedatectl set-ntp true)。",
                    "This machine's clock is off: enable NTP (timedatectl set-ntp true).",
                )
            }
        }
    }
}

async fn hitolink(config: &Config) -> Check {
    let client = match HitolinkClient::from_config(config) {
        Ok(c) => c,
        Err(HlSetupError::Token(e)) => {
            let (ja, en) = match e {
                TokenError::InsecurePermissions { .. } => (
                    "トークンファイルを chmod 600 にしてください。",
                    "Run chmod 600 on the token file.",
                ),
                TokenError::ControlCharacter { .. } => (
                    "トークンファイルの1行目に制御文字が含まれています。API トークンだけを1行目に書き直してください。",
                    "The token file's first line holds a control character: write the API token alone on the first line.",
                ),
                _ => (
                    "HITO-Link の API トークンを hitolink.api_token_file のファイルの1行目に置いてください。",
                    "Put the HITO-Link API token on the first line of the file hitolink.api_token_file names.",
                ),
            };
            return Check::failed(STEP_HITOLINK, "HITO-Link token", e.to_string(), ja, en);
        }
        Err(e) => {
            return Check::failed(
                STEP_HITOLINK,
                "HITO-Link base URL",
                e.to_string(),
                "hitolink.base_url を https:// の URL にしてください。",
                "Set hitolink.base_url to an https:// URL.",
            );
        }
    };
    match client.changes(None, 1).await {
        Ok(_) => Check::ok(
            STEP_HITOLINK,
            "HITO-Link API",
            "reachable, token accepted, change feed readable",
        ),
        Err(HitolinkError::Unauthorized) => Check::failed(
            STEP_HITOLINK,
            "HITO-Link API",
            "HITO-Link refused the API token (401)",
            "hitolink.api_token_file のトークンが正しいか HITO-Link の管理者に確認してください。",
            "Check the token in hitolink.api_token_file with the HITO-Link administrator.",
        ),
        Err(e) => Check::failed(
            STEP_HITOLINK,
            "HITO-Link API",
            e.to_string(),
            "hitolink.base_url とネットワークを確認してください。",
            "Check hitolink.base_url and the network.",
        ),
    }
}

/// The text report.
pub fn render(checks: &[Check]) -> String {
    let mut out = String::new();
    for c in checks {
        let mark = match c.outcome {
            Outcome::Ok => "[OK]  ",
            Outcome::Failed => "[NG]  ",
            Outcome::Skipped => "[--]  ",
        };
        let link = c
            .link
            .as_deref()
            .map(|l| format!("link {l}: "))
            .unwrap_or_default();
        out.push_str(&format!(
            "{mark}{link}{} / {}: {}\n",
            c.step, c.what, c.detail
        ));
        if let Some(ja) = &c.fix_ja {
            out.push_str(&format!("      対処: {ja}\n"));
        }
        if let Some(en) = &c.fix_en {
            out.push_str(&format!("      Fix:  {en}\n"));
        }
    }
    let failed = checks
        .iter()
        .filter(|c| c.outcome == Outcome::Failed)
        .count();
    if failed == 0 {
        out.push_str("all checks passed\n");
    } else {
        out.push_str(&format!("{failed} check(s) failed\n"));
    }
    out
}
