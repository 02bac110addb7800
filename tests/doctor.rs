//! `hitosync doctor` names the setup guide's step for each mistake the
//! emulators can act out, and passes a correct setup.

use crate::common::*;

async fn doctor(env: &Env, extra: &[&str]) -> (i32, String) {
    let mut args = vec!["doctor"];
    args.extend_from_slice(extra);
    let (code, out, err) = env.run(&args).await;
    assert!(
        !out.contains(HITOLINK_TOKEN) && !out.contains("ya29.") && !err.contains("ya29."),
        "a secret was printed"
    );
    (code, out)
}

/// The `[NG]` lines of the report.
fn failures(out: &str) -> Vec<&str> {
    out.lines().filter(|l| l.starts_with("[NG]")).collect()
}

#[tokio::test]
async fn a_correct_setup_passes() {
    let env = Env::start().await;
    let (code, out) = doctor(&env, &["--write-test"]).await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("all checks passed"), "{out}");
    assert!(out.contains("[OK]  2. API承認設定"), "{out}");
    assert!(
        out.contains("probe event was inserted and removed"),
        "{out}"
    );
    // the probe told nobody and is gone
    let writes = env.google.emu.writes();
    assert!(
        writes.iter().all(|w| w.send_updates == "none"),
        "{writes:?}"
    );
    assert!(env.events().iter().all(|e| e["status"] == "cancelled"));
}

#[tokio::test]
async fn delegation_off_names_step_2() {
    let env = Env::start().await;
    env.google.emu.with_auth(|a| a.delegated_scopes = None);
    let (code, out) = doctor(&env, &[]).await;
    assert_eq!(code, 1);
    let f = failures(&out);
    assert_eq!(f.len(), 1, "{out}");
    assert!(f[0].contains("2. API承認設定"), "{out}");
    assert!(
        out.contains("ドメイン全体の委任") && out.contains("domain-wide delegation"),
        "{out}"
    );
}

#[tokio::test]
async fn missing_scope_names_step_2() {
    let env = Env::start().await;
    env.google.emu.with_auth(|a| {
        a.delegated_scopes =
            Some(["https://www.googleapis.com/auth/calendar.readonly".to_string()].into())
    });
    let (_, out) = doctor(&env, &[]).await;
    assert!(failures(&out)[0].contains("2. API承認設定"), "{out}");
    assert!(
        out.contains("https://www.googleapis.com/auth/calendar"),
        "{out}"
    );
}

#[tokio::test]
async fn api_disabled_names_step_1_2() {
    let env = Env::start().await;
    env.google.emu.with_auth(|a| a.api_enabled = false);
    let (code, out) = doctor(&env, &[]).await;
    assert_eq!(code, 1);
    let f = failures(&out);
    assert_eq!(f.len(), 1, "{out}");
    assert!(f[0].contains("1-② API有効化"), "{out}");
}

#[tokio::test]
async fn wrong_key_names_step_1_3() {
    let env = Env::start().await;
    private_copy(env.dir.path(), "other-legacy.p12");
    let text = std::fs::read_to_string(&env.config).unwrap();
    let key_line = text
        .lines()
        .find(|l| l.starts_with("p12_key_file"))
        .unwrap()
        .to_string();
    std::fs::write(
        &env.config,
        text.replace(&key_line, "p12_key_file = \"other-legacy.p12\""),
    )
    .unwrap();
    let (_, out) = doctor(&env, &[]).await;
    let f = failures(&out);
    assert_eq!(f.len(), 1, "{out}");
    assert!(
        f[0].contains("1-③ サービスアカウント作成") && f[0].contains("signature"),
        "{out}"
    );
}

#[tokio::test]
async fn wrong_password_names_step_1_3() {
    let env = Env::start().await;
    let text = std::fs::read_to_string(&env.config).unwrap();
    std::fs::write(
        &env.config,
        text.replacen(
            "organizer_email",
            "p12_password = \"nope\"\norganizer_email",
            1,
        ),
    )
    .unwrap();
    let (_, out) = doctor(&env, &[]).await;
    let f = failures(&out);
    assert!(f[0].contains("1-③") && out.contains("notasecret"), "{out}");
    assert!(
        out.contains("[--]  2. API承認設定"),
        "later Google steps are skipped: {out}"
    );
    assert!(
        out.contains("[OK]  HITO-Link"),
        "HITO-Link is still checked: {out}"
    );
}

#[tokio::test]
async fn wrong_subject_names_step_1_5() {
    let env = Env::start().await;
    let text = std::fs::read_to_string(&env.config).unwrap();
    std::fs::write(
        &env.config,
        text.replace(
            "organizer_email = \"recruit@example.co.jp\"",
            "organizer_email = \"recruit-team@example.co.jp\"",
        ),
    )
    .unwrap();
    let (_, out) = doctor(&env, &[]).await;
    let f = failures(&out);
    assert_eq!(f.len(), 1, "{out}");
    assert!(
        f[0].contains("1-⑤") && out.contains("Google グループ"),
        "{out}"
    );
}

#[tokio::test]
async fn clock_skew_names_the_clock() {
    let env = Env::start().await;
    env.google.emu.with_auth(|a| a.clock_skew_secs = 7200);
    let (_, out) = doctor(&env, &[]).await;
    let f = failures(&out);
    assert_eq!(f.len(), 1, "{out}");
    assert!(
        f[0].contains("サーバーの時計") && out.contains("timedatectl set-ntp true"),
        "{out}"
    );
}

#[tokio::test]
async fn wrong_hitolink_token_names_hitolink() {
    let env = Env::start().await;
    std::fs::write(env.dir.path().join("hitolink.token"), "not-the-token\n").unwrap();
    let (code, out) = doctor(&env, &[]).await;
    assert_eq!(code, 1);
    let f = failures(&out);
    assert_eq!(f.len(), 1, "{out}");
    assert!(f[0].contains("HITO-Link") && f[0].contains("401"), "{out}");
    assert!(!out.contains("not-the-token"));
}

#[tokio::test]
async fn json_output_lists_every_check() {
    let env = Env::start().await;
    let (code, out) = doctor(&env, &["--json"]).await;
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let steps: Vec<_> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["step"].as_str().unwrap().to_string())
        .collect();
    for step in [
        "設定ファイル (config)",
        "1-③ サービスアカウント作成",
        "2. API承認設定",
        "1-② API有効化",
        "HITO-Link 接続 (HITO-Link API)",
    ] {
        assert!(steps.iter().any(|s| s == step), "{step} missing: {steps:?}");
    }
}
