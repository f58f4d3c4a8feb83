//! `berth image bootstrap busybox`, then `berth run --rm` end to end with berth-runc: output,
//! user and working directory, exit codes, setup errors, and nothing left mounted after.

mod support;

use support::{can_run, Berth, OutputExt};

#[test]
fn bootstrap_busybox_and_run() {
    if !can_run("busybox run test", &["/usr/bin/busybox"]) {
        return;
    }
    let berth = Berth::new();
    let out = berth.ok(&["image", "bootstrap", "busybox"]);
    assert!(out.stdout_str().starts_with("sha256:"), "{}", out.explain());
    let ls = berth.ok(&["images"]).stdout_str();
    assert!(
        ls.lines()
            .any(|l| l.starts_with("busybox ") && l.contains("latest")),
        "{ls}"
    );

    // The image runs at once.
    let out = berth.ok(&["run", "--rm", "busybox", "echo", "hi"]);
    assert_eq!(out.stdout_str(), "hi\n");

    // User and working directory resolved through the image's /etc/passwd.
    let out = berth.ok(&[
        "run",
        "--rm",
        "-u",
        "nobody",
        "-w",
        "/tmp",
        "busybox",
        "sh",
        "-c",
        "id -un; pwd; echo $PATH",
    ]);
    assert_eq!(
        out.stdout_str(),
        "nobody\n/tmp\n/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n"
    );

    // Env, hostname, the image's Cmd (sh) with the user's args.
    let out = berth.ok(&[
        "run",
        "--rm",
        "-e",
        "FOO=bar",
        "--hostname",
        "box",
        "busybox",
        "sh",
        "-c",
        "echo $FOO $(hostname)",
    ]);
    assert_eq!(out.stdout_str(), "bar box\n");

    // The container's exit status is berth's.
    let out = berth.output(&["run", "--rm", "busybox", "sh", "-c", "exit 7"]);
    assert_eq!(out.status.code(), Some(7), "{}", out.explain());

    // Setup errors: 125 and a message naming what is wrong.
    let out = berth.output(&["run", "--rm", "-u", "ghost", "busybox", "true"]);
    assert_eq!(out.status.code(), Some(125), "{}", out.explain());
    assert!(
        out.stderr_str()
            .contains("berth: unable to find user ghost"),
        "{}",
        out.explain()
    );
    let out = berth.output(&["run", "--rm", "nosuchimage", "true"]);
    assert_eq!(out.status.code(), Some(125), "{}", out.explain());
    assert!(out.stderr_str().starts_with("berth: "), "{}", out.explain());

    // A write in one container is not seen by the next one from the same image.
    berth.ok(&["run", "--rm", "busybox", "sh", "-c", "echo x > /etc/marker"]);
    let out = berth.output(&["run", "--rm", "busybox", "cat", "/etc/marker"]);
    assert_eq!(out.status.code(), Some(1), "{}", out.explain());

    // Nothing is left: no mount, no bundle, no runtime state, only committed layers.
    assert!(
        berth.mounts().is_empty(),
        "mounts left: {:?}",
        berth.mounts()
    );
    for dir in ["bundles", "runc"] {
        let left: Vec<_> = std::fs::read_dir(berth.root().join(dir))
            .map(|r| r.flatten().map(|e| e.file_name()).collect())
            .unwrap_or_default();
        assert!(left.is_empty(), "{dir} left: {left:?}");
    }

    // inspect, tag, rm.
    let doc: serde_json::Value =
        serde_json::from_str(&berth.ok(&["image", "inspect", "busybox"]).stdout_str())
            .expect("inspect json");
    assert_eq!(doc[0]["RepoTags"], serde_json::json!(["busybox:latest"]));
    assert_eq!(doc[0]["Config"]["Cmd"], serde_json::json!(["sh"]));
    assert_eq!(doc[0]["RootFS"]["Type"], "layers");
    assert_eq!(doc[0]["Os"], "linux");
    berth.ok(&["image", "tag", "busybox", "bb:two"]);
    let out = berth.ok(&["run", "--rm", "bb:two", "echo", "two"]);
    assert_eq!(out.stdout_str(), "two\n");
    let out = berth.ok(&["image", "rm", "bb:two"]);
    assert_eq!(out.stdout_str(), "Untagged: bb:two\n");
    let out = berth.ok(&["image", "ls", "--format", "{{.Repository}}:{{.Tag}}"]);
    assert_eq!(out.stdout_str(), "busybox:latest\n");
}
