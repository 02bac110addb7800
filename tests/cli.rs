//! The real binary: the emulators start, announce their address first, and
//! answer; bad arguments fail with a message.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use crate::common::*;

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
    let cfg = hitosync_config::Config::parse(&text, std::path::Path::new("t.toml")).unwrap();
    let c = hitosync_google::CalendarClient::connect(&cfg)
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
    let c = hitosync_hitolink::HitolinkClient::new(
        format!("http://{addr}/").parse().unwrap(),
        secrecy::SecretString::from(HITOLINK_TOKEN.to_string()),
        600,
        hitosync_net::retry::Backoff::immediate(2),
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

// --- the standalone binary --------------------------------------------------

/// `hitosync emulate google` in its own process: the admin API drives the
/// same shapes and faults, and the real Calendar client sees them. (Moved
/// here from the emulator's conformance tests, which run no binary.)
#[tokio::test]
async fn the_standalone_emulator_is_driven_through_its_admin_api() {
    use http::Method;
    use serde_json::json;

    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let p12 = crate::common::fixture("google-legacy.p12");
    let mut child = Command::new(env!("CARGO_BIN_EXE_hitosync"))
        .args(["emulate", "google", "--listen", "127.0.0.1:0"])
        .args(["--service-account", crate::common::SERVICE_ACCOUNT])
        .args(["--organizer", ORGANIZER, "--p12"])
        .arg(&p12)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    let _child = Kill(child);
    let addr = first
        .trim()
        .strip_prefix("listening on http://")
        .unwrap_or_else(|| panic!("first line was {first:?}"))
        .to_string();
    let admin = |path: &str| format!("http://{addr}/_admin{path}");

    let (code, inv) = http(
        Method::POST,
        &admin(&format!("/ui/{ORGANIZER}/invitations")),
        &[],
        Some(json!({
            "organizer": "boss@example.co.jp",
            "summary": "部長面談",
            "start": {"dateTime": "2026-12-01T10:00:00+09:00"},
            "end": {"dateTime": "2026-12-01T11:00:00+09:00"},
        })),
    )
    .await
    .unwrap();
    assert_eq!(code, 200, "{inv}");
    let (code, _) = http(
        Method::POST,
        &admin("/faults"),
        &[],
        Some(json!({"fault": {"kind": "disconnect"}, "on": "events.list", "phase": "before"})),
    )
    .await
    .unwrap();
    assert_eq!(code, 204);

    // the real client, through OAuth and its retry loop
    let dir = tempfile::tempdir().unwrap();
    let key = crate::common::private_copy(dir.path(), "google-legacy.p12");
    let text = format!(
        "[google]\nservice_account_email = \"{}\"\np12_key_file = \"{}\"\norganizer_email = \"{ORGANIZER}\"\napi_base_url = \"http://{addr}/calendar/v3/\"\ntoken_uri = \"http://{addr}/token\"\n[hitolink]\nbase_url = \"http://127.0.0.1:1/\"\napi_token_file = \"/x\"\n",
        crate::common::SERVICE_ACCOUNT,
        key.display()
    );
    let cfg = hitosync_config::Config::parse(&text, std::path::Path::new("t.toml")).unwrap();
    let client = hitosync_google::CalendarClient::connect(&cfg)
        .await
        .unwrap();
    let page = client.list_page(None, None).await.unwrap();
    assert_eq!(page.events.len(), 1, "the invitation is on the calendar");
    let (_, counters) = http(Method::GET, &admin("/counters"), &[], None)
        .await
        .unwrap();
    assert_eq!(counters["faults"], 1, "{counters}");
    assert_eq!(counters["events.list"], 2, "the dropped list was retried");
}
