//! Interop with the real tools, through a private berthd: images saved by dockerd load and run
//! in Berth, images saved by Berth load and run in dockerd, skopeo copies Berth's OCI layout to
//! docker-archive and back, umoci unpacks Berth's OCI layout.
//!
//! Needs root, dockerd and the docker CLI (docker.io), skopeo and umoci; skips with a message
//! when one is missing. The dockerd is private (see `support::Dockerd`).

mod support;

use support::{busybox_tar, can_run, Berth, Dockerd, OutputExt};

/// The image reference `berth image load` reported (`Loaded image: X` or `Loaded image ID: X`).
fn loaded_name(stdout: &str) -> String {
    stdout
        .lines()
        .find_map(|l| {
            l.strip_prefix("Loaded image: ")
                .or_else(|| l.strip_prefix("Loaded image ID: "))
        })
        .unwrap_or_else(|| panic!("no `Loaded image` line in {stdout:?}"))
        .to_string()
}

#[test]
fn docker_save_loads_in_berth_and_berth_save_loads_in_docker() {
    if !can_run(
        "docker interop test",
        &["dockerd", "docker", "tar", "/usr/bin/busybox"],
    ) {
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let Some(berth) = Berth::start() else { return };
    let d = Dockerd::start();

    // docker import + docker save → berth load → berth run.
    let tar = busybox_tar(tmp.path());
    let tar_s = tar.to_str().expect("utf-8 path");
    d.ok(&["import", "-c", "CMD [\"sh\"]", tar_s, "frombox:test"]);
    let saved = tmp.path().join("docker-save.tar");
    d.ok(&["save", "-o", saved.to_str().expect("utf-8"), "frombox:test"]);
    let out = berth.ok(&["image", "load", "-i", saved.to_str().expect("utf-8")]);
    assert_eq!(out.stdout_str(), "Loaded image: frombox:test\n");
    let out = berth.ok(&["run", "--rm", "frombox:test", "echo", "hi"]);
    assert_eq!(out.stdout_str(), "hi\n");

    // berth bootstrap + berth save → docker load → docker run (runc).
    berth.ok(&["image", "bootstrap", "busybox", "-t", "berthbox:test"]);
    let saved = tmp.path().join("berth-save.tar");
    berth.ok(&[
        "image",
        "save",
        "-o",
        saved.to_str().expect("utf-8"),
        "berthbox:test",
    ]);
    let out = d.ok(&["load", "-i", saved.to_str().expect("utf-8")]);
    assert!(
        out.stdout_str().contains("Loaded image: berthbox:test"),
        "{}",
        out.explain()
    );
    let out = d.ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        "berthbox:test",
        "echo",
        "hi",
    ]);
    assert_eq!(out.stdout_str(), "hi\n");
    // Its Cmd came along.
    let out = d.ok(&[
        "image",
        "inspect",
        "-f",
        "{{json .Config.Cmd}}",
        "berthbox:test",
    ]);
    assert_eq!(out.stdout_str().trim(), "[\"sh\"]");

    // `berth image save` to stdout when it is not a terminal.
    let out = berth.ok(&["image", "save", "berthbox:test"]);
    assert!(
        out.stdout.len() > 1_000_000,
        "tar on stdout: {} bytes",
        out.stdout.len()
    );
}

#[test]
fn skopeo_and_umoci_read_berth_oci_layout() {
    if !can_run(
        "skopeo/umoci interop test",
        &["skopeo", "umoci", "/usr/bin/busybox"],
    ) {
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let t = tmp.path();
    let Some(berth) = Berth::start() else { return };
    berth.ok(&["image", "bootstrap", "busybox", "-t", "ocibox:v1"]);
    let layout = t.join("layout");
    let layout_s = layout.to_str().expect("utf-8");
    berth.ok(&[
        "image",
        "save",
        "--format",
        "oci",
        "-o",
        layout_s,
        "ocibox:v1",
    ]);
    assert!(layout.join("index.json").is_file() && layout.join("oci-layout").is_file());

    // skopeo: OCI layout → docker-archive → loads and runs in Berth.
    let archive = t.join("skopeo.tar");
    support::sh(&format!(
        "skopeo copy oci:{layout_s}:v1 docker-archive:{}:skopeo/box:v2",
        archive.display()
    ));
    let out = berth.ok(&["image", "load", "-i", archive.to_str().expect("utf-8")]);
    assert_eq!(out.stdout_str(), "Loaded image: skopeo/box:v2\n");
    let out = berth.ok(&["run", "--rm", "skopeo/box:v2", "echo", "hi"]);
    assert_eq!(out.stdout_str(), "hi\n");

    // And back: docker-archive → OCI layout (a dir, and as a tar) → Berth.
    let back = t.join("back");
    support::sh(&format!(
        "skopeo copy docker-archive:{} oci:{}:v3",
        archive.display(),
        back.display()
    ));
    let out = berth.ok(&["image", "load", "-i", back.to_str().expect("utf-8")]);
    let name = loaded_name(&out.stdout_str());
    let out = berth.ok(&["run", "--rm", &name, "echo", "back"]);
    assert_eq!(out.stdout_str(), "back\n");
    let back_tar = t.join("back.tar");
    support::sh(&format!(
        "tar -C {} -cf {} .",
        back.display(),
        back_tar.display()
    ));
    let out = berth.ok(&["image", "load", "-i", back_tar.to_str().expect("utf-8")]);
    let name = loaded_name(&out.stdout_str());
    let out = berth.ok(&["run", "--rm", &name, "echo", "tar"]);
    assert_eq!(out.stdout_str(), "tar\n");

    // umoci unpacks Berth's layout into a bundle with the busybox rootfs.
    let bundle = t.join("bundle");
    support::sh(&format!(
        "umoci unpack --image {layout_s}:v1 {}",
        bundle.display()
    ));
    let bb = bundle.join("rootfs/bin/busybox");
    assert!(bb.is_file(), "{} after umoci unpack", bb.display());
    assert!(bundle.join("config.json").is_file());
}

/// The `berth` CLI speaks the Docker Engine API as the docker CLI does: its verbs work against
/// a real dockerd, with the same output.
#[test]
fn berth_cli_drives_a_real_dockerd() {
    if !can_run(
        "berth against dockerd test",
        &["dockerd", "docker", "tar", "/usr/bin/busybox"],
    ) {
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let d = Dockerd::start();
    let tar = busybox_tar(tmp.path());
    d.ok(&[
        "import",
        "-c",
        "CMD [\"sh\"]",
        tar.to_str().expect("utf-8"),
        "busybox",
    ]);
    let berth = |args: &[&str]| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_berth"));
        cmd.arg("-H").arg(&d.host).args(args);
        cmd.stdin(std::process::Stdio::null());
        let out = support::run_bounded(&mut cmd, support::CMD_TIMEOUT).expect("berth");
        (out.status.code(), out.stdout_str(), out.stderr_str())
    };
    let (code, out, err) = berth(&[
        "run",
        "--rm",
        "busybox",
        "sh",
        "-c",
        "echo hi; echo e >&2; exit 3",
    ]);
    // The daemon's warnings come first (this dockerd runs with --ip-forward=false, so that
    // the test leaves the host's ip_forward alone, and warns that networking will not work).
    let err: String = err
        .lines()
        .filter(|l| !l.starts_with("WARNING: "))
        .map(|l| format!("{l}\n"))
        .collect();
    assert_eq!((code, out.as_str(), err.as_str()), (Some(3), "hi\n", "e\n"));
    let (code, out, _) = berth(&["run", "-d", "--name", "bg", "busybox", "sleep", "60"]);
    assert_eq!(code, Some(0));
    let id = out.trim().to_string();
    let (_, out, _) = berth(&["ps", "--no-trunc", "--format", "{{.ID}} {{.Names}}"]);
    assert_eq!(out, format!("{id} bg\n"));
    // The same table as the docker CLI's.
    let theirs = d.ok(&["ps", "--format", "table {{.ID}}\t{{.Image}}\t{{.Names}}"]);
    let (_, ours, _) = berth(&["ps", "--format", "table {{.ID}}\t{{.Image}}\t{{.Names}}"]);
    assert_eq!(ours, theirs.stdout_str());
    let theirs = d.ok(&[
        "images",
        "--format",
        "table {{.Repository}}\t{{.Tag}}\t{{.ID}}",
    ]);
    let (_, ours, _) = berth(&[
        "images",
        "--format",
        "table {{.Repository}}\t{{.Tag}}\t{{.ID}}",
    ]);
    assert_eq!(ours, theirs.stdout_str());
    let (code, out, _) = berth(&["exec", "bg", "sh", "-c", "echo in exec; exit 4"]);
    assert_eq!((code, out.as_str()), (Some(4), "in exec\n"));
    let (_, out, _) = berth(&["inspect", "-f", "{{.State.Status}} {{.Name}}", "bg"]);
    assert_eq!(out, "running /bg\n");
    let (code, _, _) = berth(&["rm", "-f", "bg"]);
    assert_eq!(code, Some(0));
    let (code, _, err) = berth(&["inspect", "bg"]);
    assert_eq!(code, Some(1));
    assert!(err.starts_with("berth: "), "{err}");
}
