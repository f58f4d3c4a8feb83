//! `berth image bootstrap busybox`, then `berth run --rm` end to end through a private berthd:
//! output, user and working directory, exit codes, setup errors, nothing left mounted after;
//! then the lifecycle of a detached container (ps, logs, exec, stop, start -a, rm) and volumes.

mod support;

use support::{can_run, Berth, OutputExt};

#[test]
fn bootstrap_busybox_and_run() {
    if !can_run("busybox run test", &["/usr/bin/busybox"]) {
        return;
    }
    let Some(berth) = Berth::start() else { return };
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

    // Nothing is left: no mount, no container.
    assert!(
        berth.mounts().is_empty(),
        "mounts left: {:?}",
        berth.mounts()
    );
    let left = berth.ok(&["ps", "-aq"]).stdout_str();
    assert!(left.is_empty(), "containers left: {left}");

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

    // `berth build`: a context directory, a Dockerfile from outside it, -q, a failing step.
    let tmp = tempfile::tempdir().expect("tempdir");
    let ctx = tmp.path().join("ctx");
    std::fs::create_dir(&ctx).unwrap();
    std::fs::write(ctx.join("msg.txt"), "built by berth\n").unwrap();
    let df = tmp.path().join("Dockerfile.berth");
    std::fs::write(
        &df,
        "FROM busybox\nCOPY msg.txt /msg.txt\nRUN echo in-run\nCMD [\"cat\", \"/msg.txt\"]\n",
    )
    .unwrap();
    let (ctx_s, df_s) = (ctx.to_str().unwrap(), df.to_str().unwrap());
    let out = berth.ok(&["build", "-t", "made:1", "-f", df_s, ctx_s]);
    let text = out.stdout_str();
    assert!(
        text.contains("Step 3/4 : RUN echo in-run") && text.contains("\nin-run\n"),
        "{text}"
    );
    assert!(text.contains("Successfully tagged made:1"), "{text}");
    assert_eq!(
        berth.ok(&["run", "--rm", "made:1"]).stdout_str(),
        "built by berth\n"
    );
    let out = berth.ok(&["build", "-q", "-f", df_s, ctx_s]);
    let id = out.stdout_str();
    assert!(id.starts_with("sha256:") && id.lines().count() == 1, "{id}");
    std::fs::write(&df, "FROM busybox\nRUN exit 5\n").unwrap();
    let out = berth.output(&["build", "-f", df_s, ctx_s]);
    assert_eq!(out.status.code(), Some(5), "{}", out.explain());
    assert!(
        out.stderr_str().contains("Dockerfile:2") && out.stderr_str().contains("non-zero code: 5"),
        "{}",
        out.explain()
    );
    let left = berth.ok(&["ps", "-aq"]).stdout_str();
    assert!(left.is_empty(), "containers left: {left}");
}

#[test]
fn detached_container_lifecycle() {
    if !can_run("busybox lifecycle test", &["/usr/bin/busybox"]) {
        return;
    }
    let Some(berth) = Berth::start() else { return };
    berth.ok(&["image", "bootstrap", "busybox"]);

    // stdin reaches the container with -i, and its end closes the container's stdin.
    let mut cmd = berth.cmd(["run", "--rm", "-i", "busybox", "sh", "-c", "cat; echo done"]);
    cmd.stdin(std::process::Stdio::piped());
    let mut child = cmd
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawn berth run -i");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().expect("stdin");
        stdin.write_all(b"piped in\n").expect("write stdin");
    }
    let out = child.wait_with_output().expect("berth run -i");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "piped in\ndone\n");

    // Signals to berth reach the container (docker's --sig-proxy).
    let mut child = berth
        .cmd([
            "run",
            "--rm",
            "--name",
            "trapper",
            "busybox",
            "sh",
            "-c",
            "trap 'echo got INT; exit 9' INT; echo ready; while true; do sleep 0.1; done",
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawn berth run");
    let mut stdout = child.stdout.take().expect("stdout");
    let mut first = [0u8; 6];
    std::io::Read::read_exact(&mut stdout, &mut first).expect("ready line");
    assert_eq!(&first, b"ready\n");
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT).expect("kill -INT berth");
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut rest).expect("read the rest");
    let status = child.wait().expect("wait berth");
    assert_eq!(status.code(), Some(9), "{rest}");
    assert_eq!(rest, "got INT\n");

    // Detached: the id on stdout, then ps, logs, exec, stop, start -a, rm.
    let out = berth.ok(&[
        "run",
        "-d",
        "--name",
        "web",
        "-l",
        "role=test",
        "busybox",
        "sh",
        "-c",
        "echo started; echo oops >&2; exec sleep 300",
    ]);
    let id = out.stdout_str().trim().to_string();
    assert_eq!(id.len(), 64, "{}", out.explain());
    let ps = berth.ok(&["ps", "--format", "{{.Names}} {{.State}} {{.Labels}}"]);
    assert_eq!(ps.stdout_str(), "web running role=test\n");
    let ps = berth.ok(&["ps", "-q", "--no-trunc"]);
    assert_eq!(ps.stdout_str().trim(), id);
    let table = berth.ok(&["ps"]).stdout_str();
    assert!(
        table.starts_with("CONTAINER ID   IMAGE     COMMAND"),
        "{table}"
    );
    let mut logs = String::new();
    for _ in 0..50 {
        let out = berth.ok(&["logs", "web"]);
        logs = out.stdout_str() + &out.stderr_str();
        if logs.contains("oops") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(logs.contains("started") && logs.contains("oops"), "{logs}");
    let out = berth.output(&["exec", "web", "sh", "-c", "echo in $(hostname); exit 3"]);
    assert_eq!(out.status.code(), Some(3), "{}", out.explain());
    assert_eq!(out.stdout_str(), format!("in {}\n", &id[..12]));
    let out = berth.ok(&["inspect", "-f", "{{.State.Status}} {{.Name}}", "web"]);
    assert_eq!(out.stdout_str(), "running /web\n");
    berth.ok(&["stop", "-t", "1", "web"]);
    let out = berth.ok(&["inspect", "-f", "{{.State.Running}}", "web"]);
    assert_eq!(out.stdout_str(), "false\n");
    assert_eq!(berth.ok(&["ps", "-q"]).stdout_str(), "");

    // create + start -a: the output and the exit code of the container.
    let out = berth.ok(&[
        "create",
        "--name",
        "once",
        "busybox",
        "sh",
        "-c",
        "echo once; exit 4",
    ]);
    assert_eq!(out.stdout_str().trim().len(), 64);
    let out = berth.output(&["start", "-a", "once"]);
    assert_eq!(out.status.code(), Some(4), "{}", out.explain());
    assert_eq!(out.stdout_str(), "once\n");
    berth.ok(&["rm", "web", "once"]);
    let out = berth.output(&["rm", "nope"]);
    assert_eq!(out.status.code(), Some(1), "{}", out.explain());
    assert!(out.stderr_str().starts_with("berth: "), "{}", out.explain());

    // A named volume keeps its data between containers.
    berth.ok(&["volume", "create", "keep"]);
    berth.ok(&[
        "run",
        "--rm",
        "-v",
        "keep:/data",
        "busybox",
        "sh",
        "-c",
        "echo kept > /data/f",
    ]);
    let out = berth.ok(&[
        "run",
        "--rm",
        "-v",
        "keep:/data",
        "busybox",
        "cat",
        "/data/f",
    ]);
    assert_eq!(out.stdout_str(), "kept\n");
    let out = berth.ok(&["volume", "ls", "-q"]);
    assert_eq!(out.stdout_str(), "keep\n");
    berth.ok(&["volume", "rm", "keep"]);
}

/// `run -it` and `exec -it` under a pseudo-terminal (util-linux `script`): the container gets
/// a TTY of our terminal's size, and its exit code comes back.
#[test]
fn tty_run_and_exec() {
    if !can_run("busybox tty test", &["/usr/bin/busybox", "script"]) {
        return;
    }
    let Some(berth) = Berth::start() else { return };
    berth.ok(&["image", "bootstrap", "busybox"]);
    let bin = env!("CARGO_BIN_EXE_berth");
    let run = format!(
        "stty rows 33 cols 101; {bin} -H {h} run --rm -it busybox sh -c 'tty; sleep 0.3; stty size; exit 5'",
        h = berth.host
    );
    let out = support::run_bounded(
        std::process::Command::new("script")
            .args(["-qec", &run, "/dev/null"])
            .stdin(std::process::Stdio::null()),
        support::CMD_TIMEOUT,
    )
    .expect("script");
    assert_eq!(out.status.code(), Some(5), "{}", out.explain());
    let text = out.stdout_str().replace('\r', "");
    assert!(text.contains("/dev/pts/"), "{text:?}");
    assert!(text.contains("33 101"), "{text:?}");

    berth.ok(&["run", "-d", "-it", "--name", "tt", "busybox", "sh"]);
    let exec = format!(
        "stty rows 20 cols 70; {bin} -H {h} exec -it tt sh -c 'tty; sleep 0.3; stty size; exit 2'",
        h = berth.host
    );
    let out = support::run_bounded(
        std::process::Command::new("script")
            .args(["-qec", &exec, "/dev/null"])
            .stdin(std::process::Stdio::null()),
        support::CMD_TIMEOUT,
    )
    .expect("script");
    assert_eq!(out.status.code(), Some(2), "{}", out.explain());
    let text = out.stdout_str().replace('\r', "");
    assert!(text.contains("20 70"), "{text:?}");
    berth.ok(&["rm", "-f", "tt"]);
}
