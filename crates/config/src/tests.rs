use super::*;

const MINIMAL: &str = r#"
[google]
service_account_email = "sync@project.iam.gserviceaccount.com"
p12_key_file = "key.p12"
organizer_email = "recruit@example.co.jp"
[hitolink]
base_url = "https://hitolink.example.jp/api/"
api_token_file = "/etc/hitosync/hitolink.token"
"#;

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::parse(text, Path::new("/etc/hitosync/hitosync.toml"))
}

#[test]
fn minimal_file_gets_documented_defaults() {
    let c = parse(MINIMAL).unwrap();
    assert_eq!(c.google.calendar_id, "primary");
    assert_eq!(c.google.token_uri, "https://oauth2.googleapis.com/token");
    assert_eq!(c.google.max_requests_per_minute, 500);
    assert_eq!(c.hitolink.max_requests_per_minute, 90);
    assert_eq!(c.daemon.schedule, "0 */1 * * * *");
    assert_eq!(c.sync.conflict, ConflictPolicy::HitolinkWins);
    assert_eq!(c.sync.on_decline, OnDecline::CancelEvent);
    assert_eq!(c.sync.on_event_deleted, OnEventDeleted::CancelInterview);
    assert_eq!(c.sync.booking_marker, "HL:");
    assert_eq!(c.sync.max_deletions, 20);
    assert_eq!(c.google.max_retry_after_secs, 300);
    assert_eq!(c.hitolink.max_retry_after_secs, 300);
    assert_eq!(c.daemon.cycle_deadline_secs, 90);
    assert!(c.sync.invite_candidate);
    assert_eq!(c.p12_password(), "notasecret");
    // relative to the config file's folder
    assert_eq!(
        c.google.p12_key_file.as_deref(),
        Some(Path::new("/etc/hitosync/key.p12"))
    );
}

#[test]
fn example_config_parses() {
    let text = include_str!("../../../config/hitosync.example.toml");
    let c = parse(text).unwrap();
    assert_eq!(c.google.organizer_email, "recruit@example.co.jp");
}

#[test]
fn unknown_key_is_named() {
    let text = MINIMAL.replace("[hitolink]", "organiser_email = \"x@y.jp\"\n[hitolink]");
    let err = parse(&text).unwrap_err().to_string();
    assert!(err.contains("/etc/hitosync/hitosync.toml"), "{err}");
    assert!(err.contains("organiser_email"), "{err}");
    assert!(err.contains("hitosync.example.toml"), "{err}");
}

#[test]
fn missing_key_is_named() {
    let text = MINIMAL.replace("organizer_email = \"recruit@example.co.jp\"\n", "");
    let err = parse(&text).unwrap_err().to_string();
    assert!(err.contains("organizer_email"), "{err}");
}

#[test]
fn bad_values_name_key_and_expectation() {
    let cases = [
        ("recruit@example.co.jp", "recruit", "google.organizer_email"),
        (
            "https://hitolink.example.jp/api/",
            "http://hitolink.example.jp/api/",
            "hitolink.base_url",
        ),
    ];
    for (from, to, key) in cases {
        let err = parse(&MINIMAL.replace(from, to)).unwrap_err().to_string();
        assert!(err.contains(key), "{err}");
        assert!(err.contains("expected"), "{err}");
    }
    let text = format!("{MINIMAL}[daemon]\nschedule = \"every minute\"\n");
    let err = parse(&text).unwrap_err().to_string();
    assert!(
        err.contains("daemon.schedule") && err.contains("cron"),
        "{err}"
    );
    let text = format!("{MINIMAL}[sync]\nconflict = \"me-wins\"\n");
    let err = parse(&text).unwrap_err().to_string();
    assert!(
        err.contains("conflict") && err.contains("hitolink-wins"),
        "{err}"
    );
}

#[test]
fn bounds_have_keys_and_limits() {
    for (table, key) in [
        ("[google]", "google.max_retry_after_secs"),
        ("[hitolink]", "hitolink.max_retry_after_secs"),
    ] {
        let short = key.rsplit('.').next().unwrap();
        let text = MINIMAL.replace(table, &format!("{table}\n{short} = 0"));
        let err = parse(&text).unwrap_err().to_string();
        assert!(err.contains(key), "{err}");
        let text = MINIMAL.replace(table, &format!("{table}\n{short} = 60"));
        parse(&text).unwrap();
    }
    let text = format!("{MINIMAL}[daemon]\ncycle_deadline_secs = 0\n");
    let err = parse(&text).unwrap_err().to_string();
    assert!(err.contains("daemon.cycle_deadline_secs"), "{err}");
}

#[test]
fn doubtful_settings_are_warned_about() {
    assert!(parse(MINIMAL).unwrap().warnings().is_empty());
    // February 30th never comes
    let text = format!(
        "{MINIMAL}[daemon]\nschedule = \"0 0 0 30 2 *\"\nmetrics_listen = \"0.0.0.0:9464\"\n"
    );
    let w = parse(&text).unwrap().warnings();
    assert_eq!(w.len(), 2, "{w:?}");
    assert!(w[0].contains("daemon.schedule") && w[0].contains("never fires"));
    assert!(w[1].contains("daemon.metrics_listen") && w[1].contains("127.0.0.1:9464"));
}

#[test]
fn plain_http_only_to_loopback() {
    assert!(check_url("http://127.0.0.1:8080/").is_ok());
    assert!(check_url("http://[::1]:8080/").is_ok());
    assert!(check_url("http://localhost:1/").is_ok());
    assert!(check_url("http://10.0.0.1/").is_err());
    assert!(check_url("ftp://127.0.0.1/").is_err());
    assert!(check_url("not a url").is_err());
}

#[test]
fn email_shapes() {
    assert!(is_email("recruit@example.co.jp"));
    assert!(!is_email("recruit"));
    assert!(!is_email("@example.jp"));
    assert!(!is_email("a@b"));
    assert!(!is_email("a b@example.jp"));
    assert!(!is_email("a@b@example.jp"));
}

#[test]
fn key_file_choice() {
    let both = MINIMAL.replace(
        "p12_key_file = \"key.p12\"",
        "p12_key_file = \"key.p12\"\njson_key_file = \"key.json\"",
    );
    assert!(parse(&both).unwrap_err().to_string().contains("not both"));
    let none = MINIMAL.replace("p12_key_file = \"key.p12\"\n", "");
    assert!(parse(&none).unwrap_err().to_string().contains("P12"));
}
