//! What drives the real `hitosync` binary: a config dir pointing at both
//! emulators (`Env`), the daemon as a child process (`daemon`), and many
//! links on one machine (`links`). The rest of the shared setup is the
//! `hitosync-testkit` crate, re-exported here so a test names one module.
//!
//! These stay in the binary's own tests because only they know where the
//! binary is: cargo sets `CARGO_BIN_EXE_hitosync` for the root package's
//! integration tests alone.

pub mod daemon;
pub mod links;

pub use hitosync_testkit::*;

use std::path::PathBuf;

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
