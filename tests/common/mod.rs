//! Shared setup for the integration tests: the throwaway keys, emulators on
//! loopback, and config files pointing at them.
#![allow(dead_code)]

pub mod daemon;
pub mod hostile;
pub mod links;
pub mod pg;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use hitosync::emulator::google::{self as gemu, GoogleEmulator};

pub const SERVICE_ACCOUNT: &str = "hitosync-test@hitosync-test.iam.gserviceaccount.com";
pub const ORGANIZER: &str = "recruit@example.co.jp";

/// The throwaway keys in tests/fixtures: Google-style legacy P12 files
/// (RC2-40 certificate bag, 3DES key bag, SHA-1 MAC, password notasecret),
/// made with `openssl pkcs12 -export -legacy` for these tests only.
pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
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

use hitosync::emulator::hitolink::{self as hemu, HitolinkEmulator, Seed};

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

/// Both emulators on loopback plus a config dir pointing at them, for
/// tests that run the real `hitosync` binary.
pub struct Env {
    pub google: GoogleEmu,
    pub hitolink: HitolinkEmu,
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
}

impl Env {
    pub async fn start() -> Env {
        Env::start_with("").await
    }

    /// `extra` is appended to the config (a `[sync]` table, say).
    pub async fn start_with(extra: &str) -> Env {
        Env::start_full("", extra).await
    }

    /// `daemon` goes into the `[daemon]` table, `extra` after it.
    pub async fn start_full(daemon: &str, extra: &str) -> Env {
        let google = GoogleEmu::start().await;
        let hitolink = HitolinkEmu::start(hiring_seed()).await;
        let dir = tempfile::tempdir().unwrap();
        let key = private_copy(dir.path(), "google-legacy.p12");
        let token = dir.path().join("hitolink.token");
        std::fs::write(&token, format!("{HITOLINK_TOKEN}\n")).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        let config = dir.path().join("hitosync.toml");
        std::fs::write(
            &config,
            format!(
                "{}\n[hitolink]\nbase_url = \"{}\"\napi_token_file = \"hitolink.token\"\nmax_requests_per_minute = 60000\n[daemon]\nstate_dir = \"state\"\ncontrol_socket = \"control.sock\"\n{daemon}\n{extra}\n",
                google_toml(&google, &key, ORGANIZER),
                hitolink.base_url()
            ),
        )
        .unwrap();
        Env {
            google,
            hitolink,
            dir,
            config,
        }
    }

    /// Runs `hitosync <args> --config <this config>`.
    pub async fn run(&self, args: &[&str]) -> (i32, String, String) {
        self.run_env(args, &[]).await
    }

    /// The same, with extra environment variables.
    pub async fn run_env(&self, args: &[&str], envs: &[(&str, &str)]) -> (i32, String, String) {
        let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_hitosync"))
            .args(args)
            .envs(envs.iter().copied())
            .arg("--config")
            .arg(&self.config)
            .output()
            .await
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// `hitosync sync`, which must exit 0.
    pub async fn sync(&self) -> String {
        let (code, out, err) = self.run(&["sync"]).await;
        assert_eq!(code, 0, "sync failed\nstdout:\n{out}\nstderr:\n{err}");
        out
    }

    /// A recruiter schedules an interview in HITO-Link.
    pub fn schedule(&self, app: &str, day: u32, hour: u32) -> String {
        self.hitolink
            .emu
            .admin_create(&serde_json::json!({
                "application_id": app,
                "start": format!("2026-12-{day:02}T{hour:02}:00:00+09:00"),
                "end": format!("2026-12-{day:02}T{hour:02}:45:00+09:00"),
                "interviewers": ["suzuki@example.co.jp"],
                "video_conferencing_url": "https://meet.example/abc",
                "format": "online",
            }))
            .unwrap()
            .body["id"]
            .as_str()
            .unwrap()
            .to_string()
    }

    pub fn interview(&self, id: &str) -> serde_json::Value {
        self.hitolink.emu.get(id).unwrap().body
    }

    /// Every event on the organizer's calendar (tombstones too).
    pub fn events(&self) -> Vec<serde_json::Value> {
        self.google.emu.events(ORGANIZER)
    }

    pub fn event_of(&self, interview_id: &str) -> serde_json::Value {
        let mut found: Vec<_> = self
            .events()
            .into_iter()
            .filter(|e| e["extendedProperties"]["private"]["hitolinkInterviewId"] == interview_id)
            // a colleague's invitation may carry the ID; it is not the event
            .filter(|e| {
                e["organizer"]["email"]
                    .as_str()
                    .is_none_or(|o| o == ORGANIZER)
            })
            .collect();
        assert_eq!(found.len(), 1, "events for {interview_id}: {found:?}");
        found.remove(0)
    }

    /// Write requests either emulator has counted since the last reset.
    pub fn writes(&self) -> u64 {
        let g = self.google.emu.counters();
        let h = self.hitolink.emu.counters();
        [
            "events.insert",
            "events.patch",
            "events.update",
            "events.delete",
        ]
        .iter()
        .map(|k| g.get(*k).copied().unwrap_or(0))
        .sum::<u64>()
            + ["create", "patch", "decline"]
                .iter()
                .map(|k| h.get(*k).copied().unwrap_or(0))
                .sum::<u64>()
    }

    pub fn reset_counters(&self) {
        self.google.emu.reset_counters();
        self.hitolink.emu.reset_counters();
    }

    /// Puts a hostile proxy in front of each emulator and points the config
    /// at them: (Google's, HITO-Link's). Both forward everything until told
    /// otherwise.
    pub async fn through_proxies(&self) -> (hostile::Hostile, hostile::Hostile) {
        let g = hostile::Hostile::start(self.google.addr).await;
        let h = hostile::Hostile::start(self.hitolink.addr).await;
        let text = std::fs::read_to_string(&self.config)
            .unwrap()
            .replace(&self.google.addr.to_string(), &g.addr.to_string())
            .replace(&self.hitolink.addr.to_string(), &h.addr.to_string());
        std::fs::write(&self.config, text).unwrap();
        (g, h)
    }

    /// `status --json`, parsed.
    pub async fn status_json(&self) -> serde_json::Value {
        let (code, out, err) = self.run(&["status", "--json"]).await;
        serde_json::from_str(&out)
            .unwrap_or_else(|e| panic!("status --json ({code}): {e}\n{out}\n{err}"))
    }
}

/// Both emulators for in-process use (no HTTP, no key: callers take tokens
/// with `issue_token`), HITO-Link seeded with the hiring week, unthrottled.
pub fn in_process_emulators() -> (Arc<GoogleEmulator>, Arc<HitolinkEmulator>) {
    let g = Arc::new(GoogleEmulator::new(hitosync::emulator::google::AuthSetup {
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
    hitosync::google::CalendarClient,
    hitosync::hitolink::HitolinkClient,
) {
    real_clients_paged(g, h, 250).await
}

/// The same, listing the calendar `page_size` events at a time.
pub async fn real_clients_paged(
    g: &GoogleEmu,
    h: &HitolinkEmu,
    page_size: u32,
) -> (
    hitosync::google::CalendarClient,
    hitosync::hitolink::HitolinkClient,
) {
    let key = fixture("google-legacy.p12");
    // Decoded once per test process: the key derivation and 3DES of a P12
    // took a seventh of each property-test history's CPU.
    static DER: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    let der = DER.get_or_init(|| {
        let bytes = std::fs::read(&key).unwrap();
        hitosync::google::auth::p12_private_key(&key, &bytes, "notasecret").unwrap()
    });
    let account = hitosync::google::ServiceAccount::from_pkcs8(&key, der, SERVICE_ACCOUNT).unwrap();
    let calendar = hitosync::google::CalendarClient::new(
        &account,
        hitosync::google::ClientOptions {
            api_base_url: g.api_base_url(),
            token_uri: g.token_uri(),
            organizer: ORGANIZER.into(),
            calendar_id: "primary".into(),
            max_requests_per_minute: 1_000_000,
            backoff: hitosync::retry::Backoff::immediate(4),
            page_size,
        },
    )
    .await
    .unwrap();
    let hitolink = hitosync::hitolink::HitolinkClient::new(
        h.base_url().parse().unwrap(),
        secrecy::SecretString::from(HITOLINK_TOKEN.to_string()),
        1_000_000,
        hitosync::retry::Backoff::immediate(4),
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
