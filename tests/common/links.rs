//! Many links on one machine for the binary: one Calendar emulator with an
//! organizer per link, one HITO-Link emulator (tenant) per link, and a
//! config of `[[link]]` tables pointing at them.

use std::path::{Path, PathBuf};

use serde_json::json;

use super::{GoogleEmu, HITOLINK_TOKEN, HitolinkEmu, SERVICE_ACCOUNT, fixture, hiring_seed};
use hitosync_emulator::google::{self as gemu, GoogleEmulator};

pub struct Links {
    pub google: GoogleEmu,
    pub tenants: Vec<HitolinkEmu>,
    pub names: Vec<String>,
    pub dir: tempfile::TempDir,
    pub key: PathBuf,
    /// One token file per link (a test may spoil one).
    pub tokens: Vec<PathBuf>,
}

pub fn organizer(i: usize) -> String {
    format!("recruit{i}@example.co.jp")
}

impl Links {
    /// `n` links named `link-0` ... on fresh emulators.
    pub async fn start(n: usize) -> Links {
        let organizers: Vec<String> = (0..n).map(organizer).collect();
        let setup = gemu::setup_from_p12(
            SERVICE_ACCOUNT,
            &organizers,
            &fixture("google-legacy.p12"),
            "notasecret",
        )
        .unwrap();
        let emu = std::sync::Arc::new(GoogleEmulator::new(setup));
        let (addr, _task) = gemu::spawn(emu.clone(), "127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        let google = GoogleEmu { emu, addr };
        let mut tenants = vec![];
        for _ in 0..n {
            tenants.push(HitolinkEmu::start(hiring_seed()).await);
        }
        let dir = tempfile::tempdir().unwrap();
        let key = super::private_copy(dir.path(), "google-legacy.p12");
        let tokens: Vec<PathBuf> = (0..n)
            .map(|i| {
                let token = dir.path().join(format!("hitolink-{i}.token"));
                write_private(&token, &format!("{HITOLINK_TOKEN}\n"));
                token
            })
            .collect();
        Links {
            google,
            tenants,
            names: (0..n).map(|i| format!("link-{i}")).collect(),
            dir,
            key,
            tokens,
        }
    }

    /// Link `i`'s token file now holds `token`.
    pub fn set_token(&self, i: usize, token: &str) {
        write_private(&self.tokens[i], &format!("{token}\n"));
    }

    /// One `[[link]]` table.
    pub fn link_toml(&self, i: usize, extra_sync: &str) -> String {
        format!(
            r#"
[[link]]
name = "{name}"
[link.google]
service_account_email = "{SERVICE_ACCOUNT}"
p12_key_file = "{key}"
organizer_email = "{org}"
api_base_url = "{api}"
token_uri = "{token_uri}"
max_requests_per_minute = 6000
[link.hitolink]
base_url = "{hl}"
api_token_file = "{tok}"
max_requests_per_minute = 60000
[link.sync]
{extra_sync}
"#,
            name = self.names[i],
            key = self.key.display(),
            org = organizer(i),
            api = self.google.api_base_url(),
            token_uri = self.google.token_uri(),
            hl = self.tenants[i].base_url(),
            tok = self.tokens[i].display(),
        )
    }

    /// Writes a config named `file` with `[daemon]` settings, the links
    /// `which`, and `extra` (a `[state]` table, say).
    pub fn write_config(&self, file: &str, daemon: &str, which: &[usize], extra: &str) -> PathBuf {
        let mut text = format!(
            "[daemon]\nstate_dir = \"state\"\ncontrol_socket = \"{file}.sock\"\n{daemon}\n{extra}\n"
        );
        for &i in which {
            text.push_str(&self.link_toml(i, ""));
        }
        let path = self.dir.path().join(file);
        std::fs::write(&path, text).unwrap();
        path
    }

    /// An interview on link `i`, on `day` of December 2099 at `hour`.
    pub fn schedule(&self, i: usize, day: u32, hour: u32) -> String {
        self.tenants[i]
            .emu
            .admin_create(&json!({
                "application_id": "ap_1",
                "start": format!("2099-12-{day:02}T{hour:02}:00:00+09:00"),
                "end": format!("2099-12-{day:02}T{hour:02}:45:00+09:00"),
                "interviewers": ["suzuki@example.co.jp"],
            }))
            .unwrap()
            .body["id"]
            .as_str()
            .unwrap()
            .to_string()
    }

    /// The managed events of link `i`'s calendar (cancelled ones too).
    pub fn events(&self, i: usize) -> Vec<serde_json::Value> {
        self.google.emu.events(&organizer(i))
    }

    /// The event of interview `id` on link `i`, when there is one.
    pub fn event_of(&self, i: usize, id: &str) -> Vec<serde_json::Value> {
        self.events(i)
            .into_iter()
            .filter(|e| {
                e["extendedProperties"]["private"]["hitolinkInterviewId"].as_str() == Some(id)
            })
            .collect()
    }
}

fn write_private(path: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

/// Runs `hitosync <args> --config <config>`.
pub async fn run(config: &Path, args: &[&str]) -> (i32, String, String) {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_hitosync"))
        .args(args)
        .arg("--config")
        .arg(config)
        .output()
        .await
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
