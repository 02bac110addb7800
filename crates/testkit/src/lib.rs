//! Setup the integration tests of every crate share: the throwaway keys,
//! the emulators on loopback, the real clients pointed at them, a database
//! of its own per test (`pg`), and a hostile proxy (`hostile`).
//!
//! A dev-dependency only (never published, never linked by the product).
//! The crates whose tests use it (the connectors, the emulators, the
//! engine, the state backends, the binary) are its own dependencies; cargo
//! allows such a cycle for dev-dependencies, since an integration test
//! links the crate's library as any other crate does. What drives the
//! `hitosync` binary itself (its path is known only to the root package's
//! tests) lives with those tests, in tests/common/.

pub mod hostile;
pub mod pg;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use hitosync_emulator::google::{self as gemu, GoogleEmulator};

pub const SERVICE_ACCOUNT: &str = "hitosync-test@hitosync-test.iam.gserviceaccount.com";
pub const ORGANIZER: &str = "recruit@example.co.jp";

/// The throwaway keys in the repository's tests/fixtures (where `hitosync
/// demo` embeds one from): Google-style legacy P12 files (RC2-40
/// certificate bag, 3DES key bag, SHA-1 MAC, password notasecret), made
/// with `openssl pkcs12 -export -legacy` for these tests only.
pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures")
        .join(name)
}

/// Copies a fixture into `dir` with mode 0600 (git does not keep modes).
pub fn private_copy(dir: &Path, name: &str) -> PathBuf {
    let to = dir.join(name);
    std::fs::copy(fixture(name), &to).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&to, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    to
}

pub struct GoogleEmu {
    pub emu: Arc<GoogleEmulator>,
    pub addr: SocketAddr,
}

impl GoogleEmu {
    pub async fn start() -> GoogleEmu {
        let setup = gemu::setup_from_p12(
            SERVICE_ACCOUNT,
            &[ORGANIZER.to_string()],
            &fixture("google-legacy.p12"),
            "notasecret",
        )
        .unwrap();
        let emu = Arc::new(GoogleEmulator::new(setup));
        let (addr, _task) = gemu::spawn(emu.clone(), "127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        GoogleEmu { emu, addr }
    }
    pub fn token_uri(&self) -> String {
        format!("http://{}/token", self.addr)
    }
    pub fn api_base_url(&self) -> String {
        format!("http://{}/calendar/v3/", self.addr)
    }
}

/// The `[google]` table for a config file.
pub fn google_toml(g: &GoogleEmu, key: &Path, organizer: &str) -> String {
    format!(
        r#"[google]
service_account_email = "{SERVICE_ACCOUNT}"
p12_key_file = "{}"
organizer_email = "{organizer}"
api_base_url = "{}"
token_uri = "{}"
max_requests_per_minute = 6000
"#,
        key.display(),
        g.api_base_url(),
        g.token_uri()
    )
}

use hitosync_emulator::hitolink::{self as hemu, HitolinkEmulator, Seed};

pub const HITOLINK_TOKEN: &str = "hl-test-token-7f3a";

pub struct HitolinkEmu {
    pub emu: Arc<HitolinkEmulator>,
    pub addr: SocketAddr,
}

impl HitolinkEmu {
    /// Started with the rate limit lifted; tests about it set one.
    pub async fn start(seed: Seed) -> HitolinkEmu {
        let emu = Arc::new(HitolinkEmulator::new(HITOLINK_TOKEN, seed));
        emu.set_rate_limit(None);
        let (addr, _task) = hemu::spawn(emu.clone(), "127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        HitolinkEmu { emu, addr }
    }
    pub fn base_url(&self) -> String {
        format!("http://{}/", self.addr)
    }
}

/// A small hiring week: two applications, two interviewers, two steps.
pub fn hiring_seed() -> Seed {
    serde_json::from_value(serde_json::json!({
        "applications": [
            {"id": "ap_1", "candidate": {"id": "cd_1", "display_name": "山田 太郎", "email": "taro@example.com"}, "job": {"id": "jb_1", "name": "カスタマーサクセス"}},
            {"id": "ap_2", "candidate": {"id": "cd_2", "display_name": "佐藤 花子", "email": "hanako@example.com"}, "job": {"id": "jb_2", "name": "エンジニア"}}
        ],
        "users": [
            {"id": "us_1", "name": "鈴木 一郎", "email": "suzuki@example.co.jp"},
            {"id": "us_2", "name": "高橋 次郎", "email": "takahashi@example.co.jp"}
        ],
        "selection_steps": [{"id": "st_1", "name": "一次面接"}, {"id": "st_2", "name": "最終面接"}]
    }))
    .unwrap()
}

/// Both emulators for in-process use (no HTTP, no key: callers take tokens
/// with `issue_token`), HITO-Link seeded with the hiring week, unthrottled.
pub fn in_process_emulators() -> (Arc<GoogleEmulator>, Arc<HitolinkEmulator>) {
    let g = Arc::new(GoogleEmulator::new(hitosync_emulator::google::AuthSetup {
        service_account: "sa@p.iam.gserviceaccount.com".into(),
        public_key: vec![],
        users: [ORGANIZER.to_string()].into(),
        delegated_scopes: None,
        api_enabled: true,
        clock_skew_secs: 0,
    }));
    let h = Arc::new(HitolinkEmulator::new(HITOLINK_TOKEN, hiring_seed()));
    h.set_rate_limit(None);
    (g, h)
}

/// The real clients against both emulators over loopback: retries at
/// once, budgets far above what a test uses.
pub async fn real_clients(
    g: &GoogleEmu,
    h: &HitolinkEmu,
) -> (
    hitosync_google::CalendarClient,
    hitosync_hitolink::HitolinkClient,
) {
    real_clients_paged(g, h, 250).await
}

/// The same, listing the calendar `page_size` events at a time.
pub async fn real_clients_paged(
    g: &GoogleEmu,
    h: &HitolinkEmu,
    page_size: u32,
) -> (
    hitosync_google::CalendarClient,
    hitosync_hitolink::HitolinkClient,
) {
    let key = fixture("google-legacy.p12");
    // Decoded once per test process: the key derivation and 3DES of a P12
    // took a seventh of each property-test history's CPU.
    static DER: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    let der = DER.get_or_init(|| {
        let bytes = std::fs::read(&key).unwrap();
        hitosync_google::auth::p12_private_key(&key, &bytes, "notasecret").unwrap()
    });
    let account = hitosync_google::ServiceAccount::from_pkcs8(&key, der, SERVICE_ACCOUNT).unwrap();
    let calendar = hitosync_google::CalendarClient::new(
        &account,
        hitosync_google::ClientOptions {
            api_base_url: g.api_base_url(),
            token_uri: g.token_uri(),
            organizer: ORGANIZER.into(),
            calendar_id: "primary".into(),
            max_requests_per_minute: 1_000_000,
            backoff: hitosync_net::retry::Backoff::immediate(4),
            page_size,
        },
    )
    .await
    .unwrap();
    let hitolink = hitosync_hitolink::HitolinkClient::new(
        h.base_url().parse().unwrap(),
        secrecy::SecretString::from(HITOLINK_TOKEN.to_string()),
        1_000_000,
        hitosync_net::retry::Backoff::immediate(4),
    );
    (calendar, hitolink)
}

/// One raw HTTP request to an emulator, as a test peer's conformance tests
/// send them: `Ok((status, JSON body or null))`, or `Err` when the
/// connection closed without an answer (what a dropped-connection fault
/// does).
pub async fn http(
    method: http::Method,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<serde_json::Value>,
) -> Result<(u16, serde_json::Value), String> {
    // A client per request: a pooled connection must not outlive the test's
    // runtime, and a dropped connection must not poison the next request.
    let client = hitosync_net::http::client();
    let headers: Vec<(http::HeaderName, String)> = headers
        .iter()
        .map(|(k, v)| {
            (
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.to_string(),
            )
        })
        .collect();
    let resp =
        hitosync_net::http::send(&client, method, url, &headers, body.map(|b| b.to_string()))
            .await
            .map_err(|e| e.to_string())?;
    let json = if resp.body.is_empty() {
        serde_json::Value::Null
    } else {
        serde_json::from_slice(&resp.body).unwrap_or_else(|_| {
            serde_json::Value::String(String::from_utf8_lossy(&resp.body).into_owned())
        })
    };
    Ok((resp.status.as_u16(), json))
}
