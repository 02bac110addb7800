//! Messages that used to mislead (issue 11): each names the real cause and
//! the config key or setup step that mends it, and is printed once.

use crate::common::daemon::{Daemon, HANG, NEVER};
use crate::common::*;

async fn run_bounded(env: &Env, args: &[&str]) -> (i32, String, String) {
    tokio::time::timeout(HANG, env.run(args))
        .await
        .unwrap_or_else(|_| panic!("`hitosync {}` did not end", args.join(" ")))
}

fn error_lines(stderr: &str) -> Vec<&str> {
    stderr
        .lines()
        .filter(|l| l.starts_with("error: "))
        .collect()
}

/// Sets `key = value` in the config's `table` (the key must not be there).
fn set(env: &Env, table: &str, line: &str) {
    let text = std::fs::read_to_string(&env.config).unwrap();
    let header = format!("[{table}]\n");
    assert!(text.contains(&header), "no [{table}] in the config");
    std::fs::write(
        &env.config,
        text.replace(&header, &format!("{header}{line}\n")),
    )
    .unwrap();
}

#[tokio::test]
async fn an_audience_mismatch_is_not_a_clock_problem() {
    let env = Env::start().await;
    let (g, _) = env.through_proxies().await;
    // a reverse proxy that rewrites Host: the token endpoint sees its own
    // address, the JWT names the configured token_uri
    g.rewrite_host();
    let (code, _, err) = run_bounded(&env, &["sync"]).await;
    assert_eq!(code, 2, "{err}");
    let errors = error_lines(&err);
    assert_eq!(errors.len(), 1, "{err}");
    assert!(errors[0].contains("google.token_uri"), "{}", errors[0]);
    assert!(errors[0].contains("audience"), "{}", errors[0]);
    assert!(
        !errors[0].contains("clock") && !errors[0].contains("NTP"),
        "{}",
        errors[0]
    );
}

#[tokio::test]
async fn a_calendar_the_organizer_cannot_use_names_the_key_and_the_step() {
    let env = Env::start().await;
    env.schedule("ap_1", 1, 10);
    set(
        &env,
        "google",
        "calendar_id = \"somebody-else@example.co.jp\"",
    );
    let (code, _, err) = run_bounded(&env, &["sync"]).await;
    assert_eq!(code, 2, "{err}");
    let errors = error_lines(&err);
    assert_eq!(errors.len(), 1, "{err}");
    for part in ["google.calendar_id", "somebody-else@example.co.jp", "1-⑤"] {
        assert!(errors[0].contains(part), "{part:?}: {}", errors[0]);
    }
    assert!(!errors[0].contains("event  not found"), "{}", errors[0]);
}

#[tokio::test]
async fn a_token_file_with_a_control_character_is_a_config_error() {
    let env = Env::start().await;
    let token = env.dir.path().join("hitolink.token");
    std::fs::write(&token, format!("{HITOLINK_TOKEN}\u{1b}[0m\n")).unwrap();
    let (code, out, err) = run_bounded(&env, &["sync"]).await;
    assert_eq!(code, 2, "{err}");
    let errors = error_lines(&err);
    assert_eq!(errors.len(), 1, "{err}");
    assert!(
        errors[0].contains("control character") && errors[0].contains("hitolink.token"),
        "{}",
        errors[0]
    );
    assert!(!format!("{out}{err}").contains(HITOLINK_TOKEN));
}

#[tokio::test]
async fn doubtful_settings_are_warned_about_at_start_and_reload() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    // February 30th never comes; 0.0.0.0 is every interface
    let env = Env::start_full(
        &format!(
            "schedule = \"0 0 0 30 2 *\"\nfull_resync_schedule = \"0 0 0 1 1 *\"\nmetrics_listen = \"0.0.0.0:{port}\""
        ),
        "",
    )
    .await;
    let mut d = Daemon::start(&env, &[]).await;
    let count = |d: &mut Daemon| {
        (
            d.count("daemon.schedule = \"0 0 0 30 2 *\" never fires"),
            d.count("serves metrics on every network interface"),
        )
    };
    assert_eq!(count(&mut d), (1, 1), "{}", d.log());
    d.signal(1);
    d.wait_log("config reloaded").await;
    assert_eq!(count(&mut d), (2, 2), "{}", d.log());
    assert_eq!(d.stop().await, 0);
    // and a sound config warns of nothing
    let env = Env::start_full(NEVER, "").await;
    let mut d = Daemon::start(&env, &[]).await;
    assert_eq!(count(&mut d), (0, 0));
    assert_eq!(d.stop().await, 0);
}

#[tokio::test]
async fn an_error_with_causes_is_printed_once() {
    let env = Env::start().await;
    // nothing listens on the HITO-Link port any more
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let text = std::fs::read_to_string(&env.config)
        .unwrap()
        .replace(&env.hitolink.addr.to_string(), &dead.to_string());
    std::fs::write(&env.config, text).unwrap();
    set(&env, "daemon", "cycle_deadline_secs = 2");
    let (code, _, err) = run_bounded(&env, &["sync"]).await;
    assert_eq!(code, 1, "{err}");
    let errors = error_lines(&err);
    assert_eq!(errors.len(), 1, "{err}");
    let e = errors[0];
    // no clause of it comes twice
    for clause in e.split(": ").filter(|c| c.len() > 12) {
        assert_eq!(e.matches(clause).count(), 1, "{clause:?} repeats in {e}");
    }
}
