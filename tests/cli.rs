//! The real binary: the emulators start, announce their address first, and
//! answer; bad arguments fail with a message.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use common::*;

const BIN: &str = env!("CARGO_BIN_EXE_hitosync");

struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `hitosync args...` and returns the address from its first line.
fn start(args: &[&str]) -> (Child, String) {
    let mut child = Command::new(BIN)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut first = String::new();
    BufReader::new(stdout).read_line(&mut first).unwrap();
    let addr = first
        .trim()
        .strip_prefix("listening on http://")
        .unwrap_or_else(|| panic!("first line was {first:?}"))
        .to_string();
    (Child(child), addr)
}

#[tokio::test]
async fn emulate_google_serves_the_token_endpoint() {
    let p12 = fixture("google-legacy.p12");
    let (_child, addr) = start(&[
        "emulate",
        "google",
        "--listen",
        "127.0.0.1:0",
        "--service-account",
        SERVICE_ACCOUNT,
        "--organizer",
        ORGANIZER,
        "--p12",
        p12.to_str().unwrap(),
    ]);
    // a client built from a config pointing at the process gets a token
    let dir = tempfile::tempdir().unwrap();
    let key = private_copy(dir.path(), "google-legacy.p12");
    let text = format!(
        "[google]\nservice_account_email = \"{SERVICE_ACCOUNT}\"\np12_key_file = \"{}\"\norganizer_email = \"{ORGANIZER}\"\napi_base_url = \"http://{addr}/calendar/v3/\"\ntoken_uri = \"http://{addr}/token\"\n[hitolink]\nbase_url = \"http://127.0.0.1:1/\"\napi_token_file = \"/x\"\n",
        key.display()
    );
    let cfg = hitosync::config::Config::parse(&text, std::path::Path::new("t.toml")).unwrap();
    let c = hitosync::google::CalendarClient::connect(&cfg)
        .await
        .unwrap();
    assert!(c.list_page(None, None).await.unwrap().events.is_empty());
}

#[tokio::test]
async fn emulate_hitolink_serves_the_seed() {
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("t.token");
    std::fs::write(&token, format!("{HITOLINK_TOKEN}\n")).unwrap();
    let seed = dir.path().join("seed.json");
    std::fs::write(&seed, serde_json::to_string(&hiring_seed()).unwrap()).unwrap();
    let (_child, addr) = start(&[
        "emulate",
        "hitolink",
        "--listen",
        "127.0.0.1:0",
        "--token-file",
        token.to_str().unwrap(),
        "--seed",
        seed.to_str().unwrap(),
    ]);
    let c = hitosync::hitolink::HitolinkClient::new(
        format!("http://{addr}/").parse().unwrap(),
        secrecy::SecretString::from(HITOLINK_TOKEN.to_string()),
        600,
        hitosync::retry::Backoff::immediate(2),
    );
    assert_eq!(
        c.application("ap_2").await.unwrap().candidate.display_name,
        "佐藤 花子"
    );
}

#[test]
fn bad_seed_file_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("t.token");
    std::fs::write(&token, "x\n").unwrap();
    let seed = dir.path().join("seed.json");
    std::fs::write(&seed, "{\"interviews\": 3}").unwrap();
    let out = Command::new(BIN)
        .args([
            "emulate",
            "hitolink",
            "--listen",
            "127.0.0.1:0",
            "--token-file",
        ])
        .arg(&token)
        .arg("--seed")
        .arg(&seed)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("seed.json"), "{err}");
}

/// The README's first command: the whole loop on an embedded default.
#[test]
fn demo_runs_the_scenario_and_exits_0() {
    let out = Command::new(BIN).arg("demo").output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    for line in [
        "import: 3 interviews from HITO-Link are on the calendar",
        "-> event on the calendar",
        "-> the event moved; attendees were notified",
        "-> HITO-Link records 辞退 (candidate_declined); the event is cancelled",
        "-> HITO-Link shows the new time",
        "-> HITO-Link has a new interview for 渡辺 翔",
        "demo finished: 5 interviews and their events in step",
    ] {
        assert!(stdout.contains(line), "missing {line:?} in:\n{stdout}");
    }
}

/// `hitosync bench` at toy sizes, so that it keeps working; the figures
/// themselves live in docs/performance.md, never in assertions.
#[test]
fn bench_runs_at_toy_sizes() {
    let out = Command::new(BIN)
        .args([
            "bench",
            "--sizes",
            "20",
            "--changes",
            "1,5",
            "--changes-at",
            "20",
            "--import",
            "30",
            "--memory-import",
            "300",
            "--time-scale",
            "600",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("idle cycle at N mapped interviews"),
        "{stdout}"
    );
    assert!(stdout.contains("all 30 events exist"), "{stdout}");
    assert!(stdout.contains("(5 applied)"), "{stdout}");
    assert!(
        stdout.contains("rate-limit errors answered: Google 0, HITO-Link 0"),
        "{stdout}"
    );
}
