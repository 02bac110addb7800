//! The systemd unit: hardened (exposure at most 2.0 by
//! `systemd-analyze security`) and valid (`systemd-analyze verify`).

use std::process::Command;

const UNIT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/systemd/hitosync.service");

/// CI installs systemd-analyze and must run these; elsewhere they are
/// skipped with a note when it is missing.
fn analyze_available() -> bool {
    let ok = Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        ok || std::env::var_os("CI").is_none(),
        "CI must have systemd-analyze"
    );
    ok
}

#[test]
fn unit_exposure_is_at_most_2() {
    if !analyze_available() {
        eprintln!("systemd-analyze is not installed; .ci/run installs it");
        return;
    }
    let out = Command::new("systemd-analyze")
        .args(["security", "--offline=yes", UNIT])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let level: f64 = text
        .lines()
        .find_map(|l| {
            l.split("Overall exposure level for hitosync.service: ")
                .nth(1)
        })
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no exposure level in:\n{text}"));
    assert!(level <= 2.0, "exposure {level}:\n{text}");
}

#[test]
fn unit_verifies_clean() {
    if !analyze_available() {
        eprintln!("systemd-analyze is not installed; .ci/run installs it");
        return;
    }
    // verify wants ExecStart to exist: point it at the binary under test
    let dir = tempfile::tempdir().unwrap();
    let unit = std::fs::read_to_string(UNIT)
        .unwrap()
        .replace("/usr/bin/hitosync", env!("CARGO_BIN_EXE_hitosync"));
    let path = dir.path().join("hitosync.service");
    std::fs::write(&path, unit).unwrap();
    // the man page of Documentation= exists only once the package is
    // installed; .ci/run verifies the installed unit with it
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&path)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success() && text.trim().is_empty(), "{text}");
}
