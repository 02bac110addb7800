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

const TWO_LINKS: &str = r#"
[daemon]
schedule = "0 */2 * * * *"

[[link]]
name = "brand-a"
[link.google]
service_account_email = "sync@project.iam.gserviceaccount.com"
p12_key_file = "a.p12"
organizer_email = "recruit-a@example.co.jp"
[link.hitolink]
base_url = "https://hitolink.example.jp/api/"
api_token_file = "a.token"

[[link]]
name = "brand-b"
schedule = "30 */1 * * * *"
[link.google]
service_account_email = "sync@project.iam.gserviceaccount.com"
p12_key_file = "b.p12"
organizer_email = "recruit-b@example.co.jp"
[link.hitolink]
base_url = "https://hitolink-b.example.jp/api/"
api_token_file = "b.token"
max_requests_per_minute = 50
[link.sync]
conflict = "google-wins"
"#;

fn parse_file(text: &str) -> Result<ConfigFile, ConfigError> {
    ConfigFile::parse(text, Path::new("/etc/hitosync/hitosync.toml"))
}

#[test]
fn the_single_link_form_is_the_link_default() {
    let f = parse_file(MINIMAL).unwrap();
    assert_eq!(f.form, Form::Single);
    assert_eq!(f.names(), ["default"]);
    assert_eq!(f.state.backend, Backend::Sled);
    assert_eq!(f.links[0], parse(MINIMAL).unwrap());
}

#[test]
fn many_links_each_with_its_own_settings() {
    let f = parse_file(TWO_LINKS).unwrap();
    assert_eq!(f.form, Form::Many);
    assert_eq!(f.names(), ["brand-a", "brand-b"]);
    let (a, b) = (&f.links[0], &f.links[1]);
    // the daemon's schedule unless the link has its own
    assert_eq!(a.daemon.schedule, "0 */2 * * * *");
    assert_eq!(b.daemon.schedule, "30 */1 * * * *");
    assert_eq!(a.daemon.full_resync_schedule, b.daemon.full_resync_schedule);
    assert_eq!(a.hitolink.max_requests_per_minute, 90);
    assert_eq!(b.hitolink.max_requests_per_minute, 50);
    assert_eq!(a.sync.conflict, ConflictPolicy::HitolinkWins);
    assert_eq!(b.sync.conflict, ConflictPolicy::GoogleWins);
    assert_eq!(
        b.google.p12_key_file.as_deref(),
        Some(Path::new("/etc/hitosync/b.p12"))
    );
    assert_eq!(f.link("brand-b").unwrap().link, "brand-b");
    let err = f.link("brand-c").unwrap_err().to_string();
    assert!(
        err.contains("brand-c") && err.contains("brand-a, brand-b"),
        "{err}"
    );
    let err = f.clone().single().unwrap_err().to_string();
    assert!(err.contains("--link"), "{err}");
    assert_eq!(f.select(None).unwrap().len(), 2);
    assert_eq!(f.select(Some("brand-a")).unwrap().len(), 1);
}

#[test]
fn mixing_the_forms_names_the_keys() {
    // [daemon] goes first, so that its key does not land in [hitolink].
    let text = format!(
        "[daemon]\nschedule = \"0 */2 * * * *\"\n{MINIMAL}\n{}",
        TWO_LINKS.replace("[daemon]\nschedule = \"0 */2 * * * *\"\n", "")
    );
    let err = parse_file(&text).unwrap_err().to_string();
    assert!(err.contains("[google], [hitolink]"), "{err}");
    assert!(err.contains("[[link]]"), "{err}");
    let text = format!("[sync]\nconflict = \"google-wins\"\n{TWO_LINKS}");
    let err = parse_file(&text).unwrap_err().to_string();
    assert!(err.contains("[sync]") && !err.contains("[google]"), "{err}");
}

#[test]
fn link_errors_name_the_link_and_the_key() {
    // a bad value in a named link
    let text = TWO_LINKS.replace("recruit-b@example.co.jp", "recruit-b");
    let err = parse_file(&text).unwrap_err().to_string();
    assert!(
        err.contains("link \"brand-b\": google.organizer_email"),
        "{err}"
    );
    let text = TWO_LINKS.replace("p12_key_file = \"b.p12\"\n", "");
    let err = parse_file(&text).unwrap_err().to_string();
    assert!(
        err.contains("link \"brand-b\": google.p12_key_file"),
        "{err}"
    );
    let text = TWO_LINKS.replace("schedule = \"30 */1 * * * *\"", "schedule = \"soon\"");
    let err = parse_file(&text).unwrap_err().to_string();
    assert!(err.contains("link \"brand-b\": schedule"), "{err}");
    // names: shape and uniqueness, by position
    let text = TWO_LINKS.replace("name = \"brand-b\"", "name = \"Brand B\"");
    let err = parse_file(&text).unwrap_err().to_string();
    assert!(err.contains("link[2].name"), "{err}");
    let text = TWO_LINKS.replace("name = \"brand-b\"", "name = \"brand-a\"");
    let err = parse_file(&text).unwrap_err().to_string();
    assert!(
        err.contains("link[2].name") && err.contains("no other"),
        "{err}"
    );
    // two links on one calendar
    let text = TWO_LINKS.replace("recruit-b@example.co.jp", "recruit-a@example.co.jp");
    let err = parse_file(&text).unwrap_err().to_string();
    assert!(
        err.contains("link \"brand-b\": google.organizer_email") && err.contains("brand-a"),
        "{err}"
    );
    // an unknown key inside a link table
    let text = TWO_LINKS.replace("[link.sync]\n", "[link.sync]\nconflikt = 1\n");
    let err = parse_file(&text).unwrap_err().to_string();
    assert!(err.contains("conflikt"), "{err}");
}

#[test]
fn link_names_are_short_and_plain() {
    for good in ["default", "brand-b", "a", "office_1", "9x"] {
        assert!(valid_link_name(good), "{good}");
    }
    for bad in ["", "Brand", "a b", "a/b", "-a", &"x".repeat(64)] {
        assert!(!valid_link_name(bad), "{bad}");
    }
}

#[test]
fn warnings_name_the_links_own_keys() {
    let text = TWO_LINKS.replace("30 */1 * * * *", "0 0 0 30 2 *");
    let w = parse_file(&text).unwrap().warnings();
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(w[0].starts_with("link \"brand-b\": schedule"), "{w:?}");
    let text = TWO_LINKS.replace(
        "base_url = \"https://hitolink-b.example.jp/api/\"\napi_token_file = \"b.token\"",
        "base_url = \"https://hitolink.example.jp/api/\"\napi_token_file = \"a.token\"",
    );
    let w = parse_file(&text).unwrap().warnings();
    assert!(
        w.iter().any(|w| w.contains("same HITO-Link tenant")),
        "{w:?}"
    );
}

#[test]
fn postgres_state_settings() {
    let pg = |extra: &str| {
        parse_file(&format!(
            "{MINIMAL}[state]\nbackend = \"postgres\"\n{extra}"
        ))
    };
    let f = pg("url = \"postgresql://hitosync@db.example.jp/hitosync?sslmode=require\"\npassword_file = \"pg.password\"\n").unwrap();
    assert_eq!(f.state.backend, Backend::Postgres);
    assert_eq!(f.state.lease_secs, 30);
    assert_eq!(f.state.lease_renew_secs, 10);
    assert_eq!(
        f.state.password_file.as_deref(),
        Some(Path::new("/etc/hitosync/pg.password"))
    );
    // loopback may go without TLS
    pg("url = \"postgresql://hitosync@127.0.0.1:5433/hitosync\"\n").unwrap();
    let cases = [
        ("", "state.url"),
        (
            "url = \"postgresql://hitosync@db.example.jp/hitosync\"\n",
            "sslmode=require",
        ),
        (
            "url = \"postgresql://hitosync:hunter2@127.0.0.1/hitosync\"\n",
            "without a password",
        ),
        ("url = \"mysql://127.0.0.1/x\"\n", "postgresql://"),
        (
            "url = \"postgresql://h@127.0.0.1/x\"\nlease_renew_secs = 20\n",
            "state.lease_renew_secs",
        ),
        (
            "url = \"postgresql://h@127.0.0.1/x\"\npassword_file = \"a\"\npassword_credential = \"b\"\n",
            "not both",
        ),
    ];
    for (extra, want) in cases {
        let err = pg(extra).unwrap_err().to_string();
        assert!(err.contains(want), "{extra}: {err}");
        assert!(!err.contains("hunter2"), "{err}");
    }
    let err = parse_file(&format!(
        "{MINIMAL}[state]\nurl = \"postgresql://h@127.0.0.1/x\"\n"
    ))
    .unwrap_err()
    .to_string();
    assert!(err.contains("state.url") && err.contains("sled"), "{err}");
}
