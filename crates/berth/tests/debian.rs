//! `berth image bootstrap debian:bookworm` (debootstrap from the Debian mirror, ~40 MB) through a
//! private berthd, then a container of it. Skipped unless `BERTH_TEST_DEBIAN=1`, because it downloads; that runs it
//! (scripts/test.sh sets it, so CI does).

mod support;

use support::{can_run, Berth, OutputExt};

fn debian_bootstrap_and_run() {
    if !can_run("debian bootstrap test", &["debootstrap"]) {
        return;
    }
    let Some(berth) = Berth::start() else { return };
    berth.ok(&["image", "bootstrap", "debian:bookworm"]);
    let out = berth.ok(&[
        "run",
        "--rm",
        "debian:bookworm",
        "cat",
        "/etc/debian_version",
    ]);
    let version = out.stdout_str();
    assert!(version.starts_with("12."), "debian_version: {version:?}");
    // The image's Cmd is bash, and apt's users resolve through its /etc/passwd.
    let out = berth.ok(&[
        "run",
        "--rm",
        "-u",
        "_apt",
        "debian:bookworm",
        "bash",
        "-c",
        "id -un; echo $0",
    ]);
    assert_eq!(out.stdout_str(), "_apt\nbash\n");
}

#[test]
fn debian_bookworm_when_asked() {
    if std::env::var_os("BERTH_TEST_DEBIAN").is_some_and(|v| v == "1") {
        debian_bootstrap_and_run();
    } else {
        eprintln!("skipping debian bootstrap: set BERTH_TEST_DEBIAN=1 (scripts/test.sh does)");
    }
}
