//! Shared setup for the integration tests: the throwaway keys, emulators on
//! loopback, and config files pointing at them.
#![allow(dead_code)]

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
