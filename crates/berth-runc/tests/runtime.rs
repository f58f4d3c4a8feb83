//! Real-container tests of berth-runc: each runs busybox containers and checks what they saw or did (needs root; skipped otherwise).

mod support;

use std::collections::BTreeSet;
use std::fs;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::{unique_id, Bundle, OutputExt, Runc};

/// Skips the test (with a message) unless we are root: containers need it.
macro_rules! require_root {
    () => {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipped: real-container tests need root");
            return;
        }
    };
}

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/// Runs a berth-runc command that leaves a container behind (`create`, `run -d`,
/// `exec -d`) with its output in files rather than pipes: the container inherits
/// the command's stdout and stderr, so a pipe would never reach EOF.
fn output_to_files(mut cmd: Command) -> Output {
    let dir = tempfile::tempdir().expect("create output dir");
    let out_path = dir.path().join("stdout");
    let err_path = dir.path().join("stderr");
    let out = fs::File::create(&out_path).expect("create stdout file");
    let err = fs::File::create(&err_path).expect("create stderr file");
    cmd.stdout(out).stderr(err);
    let status = cmd
        .status()
        .unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
    Output {
        status,
        stdout: fs::read(&out_path).unwrap_or_default(),
        stderr: fs::read(&err_path).unwrap_or_default(),
    }
}

/// `berth-runc ARGS` for commands that leave a container running.
fn detached<I, S>(runc: &Runc, args: I) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    output_to_files(runc.cmd(args))
}

/// `create --bundle BUNDLE ID`.
fn create(runc: &Runc, bundle: &Bundle, id: &str) -> Output {
    detached(
        runc,
        [s("create"), s("--bundle"), bundle.path().as_os_str(), s(id)],
    )
}

/// `run -d --bundle BUNDLE ID`, which must succeed.
fn run_detached(runc: &Runc, bundle: &Bundle, id: &str) {
    detached(
        runc,
        [
            s("run"),
            s("-d"),
            s("--bundle"),
            bundle.path().as_os_str(),
            s(id),
        ],
    )
    .assert_success();
}

fn s(x: &str) -> &std::ffi::OsStr {
    std::ffi::OsStr::new(x)
}

/// The parsed output of `berth-runc state ID`.
fn state(runc: &Runc, id: &str) -> Value {
    let out = runc.output(["state", id]);
    out.assert_success();
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("state {id}: {e}: {}", out.stdout_str()))
}

fn status(runc: &Runc, id: &str) -> String {
    state(runc, id)["status"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

fn init_pid(runc: &Runc, id: &str) -> i32 {
    state(runc, id)["pid"].as_i64().expect("state has a pid") as i32
}

/// Polls `cond` until it holds; panics naming `what` after 20 seconds.
fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !cond() {
        assert!(Instant::now() < deadline, "gave up waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// True while `pid` is a live process (not gone, not a zombie).
fn alive(pid: i32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            let st = stat.rfind(')').and_then(|i| stat[i + 2..].chars().next());
            !matches!(st, Some('Z') | Some('X') | None)
        }
        Err(_) => false,
    }
}

/// The cgroup directories of container `id` that exist, in any hierarchy.
fn cgroup_dirs(id: &str) -> Vec<PathBuf> {
    let mut found = vec![];
    let base = Path::new("/sys/fs/cgroup");
    let candidate = base.join("berth").join(id);
    if candidate.exists() {
        found.push(candidate);
    }
    for entry in fs::read_dir(base).into_iter().flatten().flatten() {
        let candidate = entry.path().join("berth").join(id);
        if candidate.exists() {
            found.push(candidate);
        }
    }
    found
}

/// Asserts that container `id` left no state directory and no cgroup.
fn assert_no_trace(runc: &Runc, id: &str) {
    let dir = runc.root().join(id);
    assert!(!dir.exists(), "state dir {} is left behind", dir.display());
    let cgroups = cgroup_dirs(id);
    assert!(cgroups.is_empty(), "cgroups left behind: {cgroups:?}");
}

fn writable_root(bundle: &Bundle) {
    bundle.config_mut(|c| c["root"]["readonly"] = json!(false));
}

fn push(c: &mut Value, pointer: &str, item: Value) {
    c.pointer_mut(pointer)
        .and_then(Value::as_array_mut)
        .unwrap_or_else(|| panic!("config has no array at {pointer}"))
        .push(item);
}

fn mount_lines() -> Vec<String> {
    fs::read_to_string("/proc/self/mountinfo")
        .expect("read mountinfo")
        .lines()
        .map(String::from)
        .collect()
}

fn code(status: ExitStatus) -> Option<i32> {
    status.code()
}

// ---------------------------------------------------------------------------
// 1. Isolation
// ---------------------------------------------------------------------------

#[test]
fn container_process_is_pid_1_and_sees_only_its_own_processes() {
    require_root!();
    let runc = Runc::new();
    let bundle = Bundle::busybox(&["sh", "-c", "echo $$; echo /proc/[0-9]*"]);

    let out = runc.run(&bundle, &unique_id("pid1"));

    let stdout = out.assert_success().stdout_str();
    let mut lines = stdout.lines();
    assert_eq!(
        lines.next(),
        Some("1"),
        "the container's process is pid 1: {stdout}"
    );
    let inside = lines.next().unwrap_or_default().split_whitespace().count();
    let host = fs::read_dir("/proc")
        .expect("read /proc")
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().parse::<u32>().is_ok())
        .count();
    assert_eq!(
        inside, 1,
        "only the shell itself is visible inside: {stdout}"
    );
    assert!(
        host > inside,
        "the host has {host} processes, the container saw {inside}"
    );
}

#[test]
fn hostname_and_domainname_come_from_the_config() {
    require_root!();
    let runc = Runc::new();
    let bundle = Bundle::busybox(&["sh", "-c", "hostname; cat /proc/sys/kernel/domainname"]);
    bundle.config_mut(|c| {
        c["hostname"] = json!("berth-test");
        c["domainname"] = json!("berth.example");
    });

    let out = runc.run(&bundle, &unique_id("hostname"));

    assert_eq!(
        out.assert_success().stdout_str(),
        "berth-test\nberth.example\n"
    );
    let host = nix::unistd::gethostname().expect("gethostname");
    assert_ne!(
        host.to_string_lossy(),
        "berth-test",
        "the host's hostname is untouched"
    );
}

// ---------------------------------------------------------------------------
// 3-4. Resource limits
// ---------------------------------------------------------------------------

#[test]
fn memory_limit_kills_a_process_that_allocates_past_it() {
    require_root!();
    let runc = Runc::new();
    // The shell itself holds 64 MiB of command substitution output.
    let bundle = Bundle::busybox(&[
        "sh",
        "-c",
        r#"x=$(head -c 67108864 /dev/zero | tr '\0' a); echo survived ${#x}"#,
    ]);
    let limit = 32 * 1024 * 1024;
    bundle.config_mut(|c| {
        c["linux"]["resources"]["memory"] = json!({ "limit": limit, "swap": limit });
    });
    let id = unique_id("oom");

    let out = runc.run(&bundle, &id);

    assert_eq!(code(out.status), Some(137), "killed by SIGKILL: {out:?}");
    assert!(
        !out.stdout_str().contains("survived"),
        "{}",
        out.stdout_str()
    );
    assert_no_trace(&runc, &id);
}

#[test]
fn pids_limit_stops_a_fork_bomb() {
    require_root!();
    let runc = Runc::new();
    // The subshell forks until it cannot (a failed fork ends it); then the outer shell
    // lists what is left with a builtin, which needs no fork.
    let bundle = Bundle::busybox(&[
        "sh",
        "-c",
        "(for i in $(seq 1 30); do sleep 1000 & done); echo /proc/[0-9]*",
    ]);
    bundle.config_mut(|c| c["linux"]["resources"]["pids"] = json!({ "limit": 10 }));
    let id = unique_id("pids");

    let out = runc.run(&bundle, &id);

    let stderr = out.stderr_str();
    assert!(
        stderr.contains("Resource temporarily unavailable") || stderr.contains("can't fork"),
        "fork fails at the limit: {stderr}"
    );
    let procs = out.stdout_str().split_whitespace().count();
    assert!(
        (2..=10).contains(&procs),
        "at most 10 processes, saw {procs}: {}",
        out.stdout_str()
    );
    assert_no_trace(&runc, &id);
}

// ---------------------------------------------------------------------------
// 5-7. Privileges
// ---------------------------------------------------------------------------

#[test]
fn chown_needs_cap_chown() {
    require_root!();
    let script = "touch /tmp/f && chown 1 /tmp/f && stat -c %u /tmp/f";

    // The default capabilities lack CAP_CHOWN.
    let runc = Runc::new();
    let without = Bundle::busybox(&["sh", "-c", script]);
    writable_root(&without);
    let out = runc.run(&without, &unique_id("nochown"));
    out.assert_failure();
    assert!(
        out.stderr_str().contains("Operation not permitted"),
        "{}",
        out.stderr_str()
    );

    let with = Bundle::busybox(&["sh", "-c", script]);
    writable_root(&with);
    with.config_mut(|c| {
        for set in ["bounding", "effective", "permitted"] {
            push(
                c,
                &format!("/process/capabilities/{set}"),
                json!("CAP_CHOWN"),
            );
        }
    });
    let out = runc.run(&with, &unique_id("chown"));
    assert_eq!(out.assert_success().stdout_str(), "1\n");
}

fn mkdir_denied_with(errno: u32) -> Output {
    let runc = Runc::new();
    let bundle = Bundle::busybox(&["sh", "-c", "mkdir /tmp/x; touch /tmp/y && echo TOUCH_OK"]);
    writable_root(&bundle);
    bundle.config_mut(|c| {
        c["linux"]["seccomp"] = json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{
                "names": ["mkdir", "mkdirat"],
                "action": "SCMP_ACT_ERRNO",
                "errnoRet": errno
            }]
        });
    });
    let out = runc.run(&bundle, &unique_id("seccomp"));
    assert!(
        !bundle.rootfs().join("tmp/x").exists(),
        "mkdir must not have happened"
    );
    assert!(
        bundle.rootfs().join("tmp/y").exists(),
        "other syscalls are allowed"
    );
    out
}

#[test]
fn seccomp_rule_makes_mkdir_fail_with_the_configured_errno() {
    require_root!();
    let eperm = mkdir_denied_with(1);
    assert!(
        eperm.stderr_str().contains("Operation not permitted"),
        "{}",
        eperm.stderr_str()
    );
    assert_eq!(eperm.stdout_str(), "TOUCH_OK\n");

    let eacces = mkdir_denied_with(13);
    assert!(
        eacces.stderr_str().contains("Permission denied"),
        "{}",
        eacces.stderr_str()
    );
    assert_eq!(eacces.stdout_str(), "TOUCH_OK\n");
}

#[test]
fn readonly_root_refuses_writes_but_a_tmpfs_on_tmp_works() {
    require_root!();
    let runc = Runc::new();
    let bundle = Bundle::busybox(&["sh", "-c", "touch /newfile; touch /tmp/ok && echo TMP_OK"]);
    bundle.config_mut(|c| {
        c["root"]["readonly"] = json!(true);
        push(
            c,
            "/mounts",
            json!({ "destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "nodev"] }),
        );
    });

    let out = runc.run(&bundle, &unique_id("rofs"));

    assert!(
        out.stderr_str().contains("Read-only file system"),
        "{}",
        out.stderr_str()
    );
    assert_eq!(out.stdout_str(), "TMP_OK\n");
    assert!(!bundle.rootfs().join("newfile").exists());
    assert!(
        !bundle.rootfs().join("tmp/ok").exists(),
        "/tmp/ok went to the tmpfs, not the rootfs"
    );
}

#[test]
fn user_namespace_maps_container_root_to_an_unprivileged_host_uid() {
    require_root!();
    let runc = Runc::new();
    let bundle = Bundle::busybox(&["sleep", "1000"]);
    bundle.config_mut(|c| {
        push(c, "/linux/namespaces", json!({ "type": "user" }));
        let map = json!([{ "containerID": 0, "hostID": 100000, "size": 65536 }]);
        c["linux"]["uidMappings"] = map.clone();
        c["linux"]["gidMappings"] = map;
    });
    let id = unique_id("userns");
    run_detached(&runc, &bundle, &id);

    let pid = init_pid(&runc, &id);
    let status = fs::read_to_string(format!("/proc/{pid}/status")).expect("read status");
    let uids = status
        .lines()
        .find(|l| l.starts_with("Uid:"))
        .unwrap_or_default();
    assert_eq!(
        uids.split_whitespace().collect::<Vec<_>>(),
        ["Uid:", "100000", "100000", "100000", "100000"],
        "host view of the container's uid"
    );
    let inside = runc.output(["exec", id.as_str(), "id", "-u"]);
    assert_eq!(
        inside.assert_success().stdout_str(),
        "0\n",
        "root inside the container"
    );

    runc.output(["delete", "-f", id.as_str()]).assert_success();
    assert_no_trace(&runc, &id);
}

// ---------------------------------------------------------------------------
// 9-10. exec, pause
// ---------------------------------------------------------------------------

#[test]
fn exec_joins_a_running_container() {
    require_root!();
    let runc = Runc::new();
    let bundle = Bundle::busybox(&["sleep", "1000"]);
    bundle.config_mut(|c| c["hostname"] = json!("exec-box"));
    let id = unique_id("exec");
    run_detached(&runc, &bundle, &id);
    let exec = |args: &[&str]| {
        let mut all = vec!["exec"];
        all.extend_from_slice(args);
        runc.output(all)
    };

    let out = exec(&[
        &id,
        "sh",
        "-c",
        r#"tr '\0' ' ' </proc/1/cmdline; echo; hostname"#,
    ]);
    assert_eq!(
        out.assert_success().stdout_str(),
        "sleep 1000 \nexec-box\n",
        "pid 1 is the init"
    );

    let out = exec(&["--env", "FOO=bar", &id, "sh", "-c", "echo $FOO"]);
    assert_eq!(out.assert_success().stdout_str(), "bar\n");

    let out = exec(&["--cwd", "/tmp", &id, "pwd"]);
    assert_eq!(out.assert_success().stdout_str(), "/tmp\n");

    let out = exec(&["--user", "1000:1000", &id, "sh", "-c", "id -u; id -g"]);
    assert_eq!(out.assert_success().stdout_str(), "1000\n1000\n");

    let out = exec(&[&id, "sh", "-c", "exit 3"]);
    assert_eq!(
        code(out.status),
        Some(3),
        "exec reports the process's exit code"
    );

    let process = bundle.path().join("process.json");
    let spec = json!({
        "terminal": false,
        "user": { "uid": 0, "gid": 0 },
        "args": ["sh", "-c", "echo $X; pwd"],
        "env": ["PATH=/bin", "X=from-process-json"],
        "cwd": "/etc"
    });
    fs::write(&process, spec.to_string()).expect("write process.json");
    let out = exec(&["--process", process.to_str().expect("utf-8 path"), &id]);
    assert_eq!(
        out.assert_success().stdout_str(),
        "from-process-json\n/etc\n"
    );

    runc.output(["delete", "-f", id.as_str()]).assert_success();
    assert_no_trace(&runc, &id);
}

#[test]
fn pause_freezes_the_container_and_resume_thaws_it() {
    require_root!();
    let runc = Runc::new();
    let bundle = Bundle::busybox(&[
        "sh",
        "-c",
        "i=0; while true; do i=$((i+1)); echo $i > /tmp/c; done",
    ]);
    writable_root(&bundle);
    let id = unique_id("pause");
    run_detached(&runc, &bundle, &id);
    let freezer = PathBuf::from(format!("/sys/fs/cgroup/freezer/berth/{id}/freezer.state"));
    let counter = bundle.rootfs().join("tmp/c");
    wait_for("the loop to write its counter", || counter.exists());

    runc.output(["pause", id.as_str()]).assert_success();
    assert_eq!(status(&runc, &id), "paused");
    assert_eq!(
        fs::read_to_string(&freezer)
            .expect("read freezer.state")
            .trim(),
        "FROZEN"
    );

    runc.output(["resume", id.as_str()]).assert_success();
    assert_eq!(status(&runc, &id), "running");
    assert_eq!(
        fs::read_to_string(&freezer)
            .expect("read freezer.state")
            .trim(),
        "THAWED"
    );

    runc.output(["delete", "-f", id.as_str()]).assert_success();
    assert_no_trace(&runc, &id);
}

// ---------------------------------------------------------------------------
// 11. Hooks
// ---------------------------------------------------------------------------

fn host_hook(script: String) -> Value {
    json!({
        "path": "/bin/sh",
        "args": ["sh", "-c", script],
        "env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"]
    })
}

/// Runs `true` in a container with one hook of every kind, each appending its name to a
/// log; returns the log's lines and the directory holding the hooks' copies of their stdin.
fn run_with_every_hook(runc: &Runc, id: &str) -> (Vec<String>, tempfile::TempDir) {
    let logdir = tempfile::tempdir().expect("create log dir");
    let log = logdir.path().display().to_string();
    let bundle = Bundle::busybox(&["true"]);
    fs::create_dir(bundle.rootfs().join("hooklog")).expect("mkdir hooklog");
    bundle.config_mut(|c| {
        push(
            c,
            "/mounts",
            json!({ "destination": "/hooklog", "type": "bind", "source": log, "options": ["rbind", "rw"] }),
        );
        let host = |name: &str| host_hook(format!("echo {name} >> {log}/log"));
        c["hooks"] = json!({
            "prestart": [host_hook(format!("echo prestart >> {log}/log; cat > {log}/prestart.json"))],
            "createRuntime": [host("createRuntime")],
            // Runs in the container's mount namespace before pivot_root: host paths.
            "createContainer": [host("createContainer")],
            // Runs inside the container's root: busybox's sh and the bind mount. It takes a
            // moment, so a runtime that does not wait for it before poststart is caught.
            "startContainer": [{
                "path": "/bin/sh",
                "args": ["sh", "-c", "usleep 100000; echo startContainer >> /hooklog/log; cat > /hooklog/start.json"]
            }],
            "poststart": [host("poststart")],
            "poststop": [host("poststop")]
        });
    });

    runc.run(&bundle, id).assert_success();
    assert_no_trace(runc, id);
    let order = fs::read_to_string(logdir.path().join("log")).expect("read hook log");
    (order.lines().map(String::from).collect(), logdir)
}

#[test]
fn hooks_run_in_order_with_the_state_on_stdin() {
    require_root!();
    let runc = Runc::new();
    let id = unique_id("hooks");

    let (order, logdir) = run_with_every_hook(&runc, &id);

    let at = |name: &str| {
        assert_eq!(
            order.iter().filter(|h| *h == name).count(),
            1,
            "{name} ran once: {order:?}"
        );
        order.iter().position(|h| h == name).unwrap_or_default()
    };
    // startContainer against poststart is checked by hooks_start_container_runs_before_poststart.
    for (first, then) in [
        ("prestart", "createRuntime"),
        ("createRuntime", "createContainer"),
        ("createContainer", "startContainer"),
        ("createContainer", "poststart"),
        ("startContainer", "poststop"),
        ("poststart", "poststop"),
    ] {
        assert!(at(first) < at(then), "{first} before {then}: {order:?}");
    }
    for file in ["prestart.json", "start.json"] {
        let text = fs::read_to_string(logdir.path().join(file)).expect("read hook stdin copy");
        let st: Value =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{file}: {e}: {text}"));
        assert_eq!(st["id"], json!(id), "{file}: {text}");
        assert!(st["pid"].as_i64().unwrap_or(0) > 0, "{file}: {text}");
    }
}

#[test]
fn hooks_start_container_runs_before_poststart() {
    require_root!();
    let runc = Runc::new();
    let (order, _logdir) = run_with_every_hook(&runc, &unique_id("hookorder"));
    assert_eq!(
        order,
        [
            "prestart",
            "createRuntime",
            "createContainer",
            "startContainer",
            "poststart",
            "poststop"
        ]
    );
}

#[test]
fn failing_or_hanging_prestart_hook_fails_create_and_leaves_nothing() {
    require_root!();
    let runc = Runc::new();

    let bundle = Bundle::busybox(&["true"]);
    bundle.config_mut(|c| c["hooks"] = json!({ "prestart": [host_hook("exit 1".into())] }));
    let id = unique_id("hookfail");
    let stderr = create(&runc, &bundle, &id).assert_failure();
    assert!(
        stderr.contains("hook /bin/sh") && stderr.contains("exit status: 1"),
        "{stderr}"
    );
    assert_no_trace(&runc, &id);

    let bundle = Bundle::busybox(&["true"]);
    bundle.config_mut(|c| {
        c["hooks"] = json!({ "prestart": [{ "path": "/bin/sleep", "args": ["sleep", "10"], "timeout": 1 }] });
    });
    let id = unique_id("hooktimeout");
    let stderr = create(&runc, &bundle, &id).assert_failure();
    assert!(stderr.contains("timed out"), "{stderr}");
    assert_no_trace(&runc, &id);
}

// ---------------------------------------------------------------------------
// 12. Terminal
// ---------------------------------------------------------------------------

/// Accepts one connection on `listener` and receives the fd it carries.
fn receive_pty_master(listener: &UnixListener) -> OwnedFd {
    use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
    use std::os::fd::FromRawFd;
    let (conn, _) = listener.accept().expect("accept console socket");
    let mut name = [0u8; 4096];
    let mut iov = [std::io::IoSliceMut::new(&mut name)];
    let mut space = nix::cmsg_space!([std::os::fd::RawFd; 1]);
    let msg = recvmsg::<()>(
        conn.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::empty(),
    )
    .expect("recvmsg on console socket");
    for cmsg in msg.cmsgs().expect("control messages") {
        if let ControlMessageOwned::ScmRights(fds) = cmsg {
            if let Some(fd) = fds.first() {
                // SAFETY: SCM_RIGHTS installed this fd in our table; we take sole ownership.
                return unsafe { OwnedFd::from_raw_fd(*fd) };
            }
        }
    }
    panic!("no fd received on the console socket");
}

#[test]
fn terminal_container_hands_its_pty_to_the_console_socket() {
    require_root!();
    let runc = Runc::new();
    let bundle = Bundle::busybox(&["sh"]);
    bundle.config_mut(|c| c["process"]["terminal"] = json!(true));
    let sockdir = tempfile::tempdir().expect("create socket dir");
    let sock = sockdir.path().join("console.sock");
    let listener = UnixListener::bind(&sock).expect("bind console socket");
    let id = unique_id("tty");

    let mut create = runc.cmd([
        s("create"),
        s("--console-socket"),
        sock.as_os_str(),
        s("--bundle"),
        bundle.path().as_os_str(),
        s(&id),
    ]);
    let mut child = create
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn create");
    let master = receive_pty_master(&listener);
    assert!(
        child.wait().expect("wait create").success(),
        "create failed"
    );
    runc.output(["start", id.as_str()]).assert_success();

    let mut pty = fs::File::from(master);
    pty.write_all(b"tty; echo TTY_OK; exit 0\n")
        .expect("write to pty");
    let mut seen = String::new();
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + Duration::from_secs(20);
    while !seen.lines().any(|l| l.trim_end() == "TTY_OK") {
        assert!(
            Instant::now() < deadline,
            "no TTY_OK from the terminal: {seen:?}"
        );
        let mut fds = [nix::poll::PollFd::new(
            std::os::fd::AsFd::as_fd(&pty),
            nix::poll::PollFlags::POLLIN,
        )];
        if nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(100u16)).unwrap_or(0) == 0 {
            continue;
        }
        match pty.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => seen.push_str(&String::from_utf8_lossy(&buf[..n])),
        }
    }
    let lines: Vec<&str> = seen.lines().map(str::trim_end).collect();
    let tty = lines.iter().position(|l| l.starts_with("/dev/pts/"));
    let ok = lines.iter().position(|l| *l == "TTY_OK");
    assert!(
        matches!((tty, ok), (Some(t), Some(o)) if t < o),
        "expected a /dev/pts/N line then TTY_OK: {seen:?}"
    );

    runc.output(["delete", "-f", id.as_str()]).assert_success();
    assert_no_trace(&runc, &id);
}

// ---------------------------------------------------------------------------
// 13. Bad input
// ---------------------------------------------------------------------------

#[test]
fn bad_input_fails_clearly_and_leaves_nothing() {
    require_root!();
    let runc = Runc::new();
    let fails_naming = |bundle: &Bundle, id: &str, needle: &str| {
        let stderr = create(&runc, bundle, id).assert_failure();
        assert!(
            stderr.contains(needle),
            "create {id}: expected {needle:?} in: {stderr}"
        );
        assert_no_trace(&runc, id);
    };

    let bundle = Bundle::busybox(&["true"]);
    fs::write(bundle.config_path(), "{ not json").expect("write config");
    fails_naming(&bundle, &unique_id("badjson"), "config.json");

    let bundle = Bundle::busybox(&["true"]);
    bundle.config_mut(|c| c["root"]["path"] = json!("no-such-rootfs"));
    fails_naming(&bundle, &unique_id("norootfs"), "root.path");

    let bundle = Bundle::busybox(&["true"]);
    bundle.config_mut(|c| push(c, "/linux/namespaces", json!({ "type": "bogus" })));
    fails_naming(&bundle, &unique_id("badns"), "linux.namespaces[5].type");

    let bundle = Bundle::busybox(&[]);
    fails_naming(&bundle, &unique_id("noargs"), "process.args");

    let bundle = Bundle::busybox(&["true"]);
    let stderr = create(&runc, &bundle, "a/b").assert_failure();
    assert!(stderr.contains("slash"), "{stderr}");
    assert!(!runc.root().join("a").exists(), "no state for a slashed id");
    assert!(cgroup_dirs("a").is_empty());

    // A second create with the same id fails and leaves the first alone.
    let bundle = Bundle::busybox(&["sleep", "1000"]);
    let id = unique_id("dup");
    create(&runc, &bundle, &id).assert_success();
    let pid = init_pid(&runc, &id);
    let stderr = create(&runc, &bundle, &id).assert_failure();
    assert!(stderr.contains("already exists"), "{stderr}");
    assert_eq!(status(&runc, &id), "created");
    assert_eq!(init_pid(&runc, &id), pid);
    assert!(alive(pid), "the first container's init survives");
    runc.output(["delete", id.as_str()]).assert_success();
    assert_no_trace(&runc, &id);
}

// ---------------------------------------------------------------------------
// 14-15. Paths stay inside the root
// ---------------------------------------------------------------------------

#[test]
fn mount_destination_through_a_symlink_stays_in_the_rootfs() {
    require_root!();
    let runc = Runc::new();
    // Two host directories the symlinks point at: absolutely and via "..".
    let abs = tempfile::Builder::new()
        .prefix("berth-escape-abs-")
        .tempdir()
        .expect("tempdir");
    let rel = tempfile::Builder::new()
        .prefix("berth-escape-rel-")
        .tempdir()
        .expect("tempdir");
    let bundle = Bundle::busybox(&[
        "sh",
        "-c",
        "stat -f -c %T /abs/sub; stat -f -c %T /rel/sub; cat /proc/self/mountinfo",
    ]);
    writable_root(&bundle);
    let rootfs = bundle.rootfs();
    std::os::unix::fs::symlink(abs.path(), rootfs.join("abs")).expect("symlink abs");
    let up = "../".repeat(rootfs.components().count() + 2);
    let rel_target = format!(
        "{up}{}",
        rel.path().display().to_string().trim_start_matches('/')
    );
    std::os::unix::fs::symlink(&rel_target, rootfs.join("rel")).expect("symlink rel");
    assert!(
        rootfs.join("rel").is_dir(),
        "on the host, rel leads out of the rootfs"
    );
    bundle.config_mut(|c| {
        for dest in ["/abs/sub", "/rel/sub"] {
            push(
                c,
                "/mounts",
                json!({ "destination": dest, "type": "tmpfs", "source": "tmpfs" }),
            );
        }
    });
    let before = mount_lines();

    let out = runc.run(&bundle, &unique_id("symlink"));

    let stdout = out.assert_success().stdout_str();
    let mut lines = stdout.lines();
    assert_eq!(
        lines.next(),
        Some("tmpfs"),
        "/abs/sub is a tmpfs inside: {stdout}"
    );
    assert_eq!(
        lines.next(),
        Some("tmpfs"),
        "/rel/sub is a tmpfs inside: {stdout}"
    );
    let abs_inside = format!(" {}/sub ", abs.path().display());
    assert!(
        stdout.contains(&abs_inside),
        "mounted at {abs_inside} inside the root: {stdout}"
    );
    assert!(
        !abs.path().join("sub").exists(),
        "host {} was touched",
        abs.path().display()
    );
    assert!(
        !rel.path().join("sub").exists(),
        "host {} was touched",
        rel.path().display()
    );
    let abs_in_rootfs = rootfs
        .join(abs.path().strip_prefix("/").expect("absolute"))
        .join("sub");
    assert!(
        abs_in_rootfs.is_dir(),
        "the mount point was made inside the rootfs"
    );
    let after = mount_lines();
    let new: Vec<_> = after.iter().filter(|l| !before.contains(l)).collect();
    assert!(
        !new.iter().any(|l| l.contains("berth-escape-")),
        "nothing mounted on the host: {new:?}"
    );
}

#[test]
fn working_directory_resolves_inside_the_root() {
    require_root!();
    let runc = Runc::new();
    let bundle = Bundle::busybox(&["pwd"]);
    bundle.config_mut(|c| c["process"]["cwd"] = json!("/../../.."));
    let out = runc.run(&bundle, &unique_id("cwd-dots"));
    assert_eq!(out.assert_success().stdout_str(), "/\n");

    // /link points at an absolute host directory; the container gets its own.
    let host = tempfile::Builder::new()
        .prefix("berth-cwd-")
        .tempdir()
        .expect("tempdir");
    fs::write(host.path().join("outside"), "").expect("write marker");
    let bundle = Bundle::busybox(&["ls"]);
    let inside = bundle
        .rootfs()
        .join(host.path().strip_prefix("/").expect("absolute"));
    fs::create_dir_all(&inside).expect("mkdir inside rootfs");
    fs::write(inside.join("inside"), "").expect("write marker");
    std::os::unix::fs::symlink(host.path(), bundle.rootfs().join("link")).expect("symlink");
    bundle.config_mut(|c| c["process"]["cwd"] = json!("/link"));
    let out = runc.run(&bundle, &unique_id("cwd-link"));
    assert_eq!(out.assert_success().stdout_str(), "inside\n");
}

// ---------------------------------------------------------------------------
// 16. File descriptors
// ---------------------------------------------------------------------------

/// `berth-runc ARGS` started with `file` open (without close-on-exec) at `fd`.
fn with_fd_at(mut cmd: Command, file: &fs::File, fd: i32) -> Output {
    let src = file.as_raw_fd();
    // SAFETY: dup2 and fcntl are async-signal-safe; the child only touches a descriptor it inherited.
    unsafe {
        cmd.pre_exec(move || {
            // dup2 onto itself would keep close-on-exec: clear the flag instead.
            let r = if src == fd {
                libc::fcntl(fd, libc::F_SETFD, 0)
            } else {
                libc::dup2(src, fd)
            };
            if r < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd.output()
        .unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"))
}

#[test]
fn no_descriptor_leaks_into_the_container_but_preserved_ones_do() {
    require_root!();
    let runc = Runc::new();
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("preserved");
    fs::write(&path, "preserved-content\n").expect("write file");
    let file = fs::File::open(&path).expect("open file");

    // fd 7 is open in berth-runc, not marked close-on-exec.
    let bundle = Bundle::busybox(&["ls", "/proc/self/fd"]);
    let id = unique_id("fds");
    let out = with_fd_at(
        runc.cmd([s("run"), s("--bundle"), bundle.path().as_os_str(), s(&id)]),
        &file,
        7,
    );
    let fds: BTreeSet<String> = out
        .assert_success()
        .stdout_str()
        .split_whitespace()
        .map(String::from)
        .collect();
    let expected: BTreeSet<String> = ["0", "1", "2", "3"].into_iter().map(String::from).collect();
    assert_eq!(fds, expected, "only stdio and ls's own directory fd");

    let bundle = Bundle::busybox(&["sh", "-c", "cat <&3"]);
    let id = unique_id("preserve");
    let out = with_fd_at(
        runc.cmd([
            s("run"),
            s("--preserve-fds"),
            s("1"),
            s("--bundle"),
            bundle.path().as_os_str(),
            s(&id),
        ]),
        &file,
        3,
    );
    assert_eq!(out.assert_success().stdout_str(), "preserved-content\n");
}

// ---------------------------------------------------------------------------
// 17. kill, delete
// ---------------------------------------------------------------------------

fn container_pids(runc: &Runc, id: &str) -> Vec<i32> {
    let out = runc.output(["ps", "--format", "json", id]);
    serde_json::from_slice(&out.assert_success().stdout).expect("ps json")
}

#[test]
fn kill_stops_the_container_and_delete_removes_it() {
    require_root!();
    let runc = Runc::new();
    let bundle = Bundle::busybox(&["sleep", "1000"]);
    let id = unique_id("kill");
    create(&runc, &bundle, &id).assert_success();
    runc.output(["start", id.as_str()]).assert_success();
    assert_eq!(status(&runc, &id), "running");
    assert!(!cgroup_dirs(&id).is_empty(), "the container has cgroups");

    runc.output(["kill", id.as_str(), "KILL"]).assert_success();
    wait_for("the container to stop", || status(&runc, &id) == "stopped");
    runc.output(["delete", id.as_str()]).assert_success();
    assert_no_trace(&runc, &id);
}

#[test]
fn kill_all_reaches_every_process() {
    require_root!();
    let runc = Runc::new();
    let bundle = Bundle::busybox(&["sh", "-c", "sleep 1000 & sleep 1000 & wait"]);
    let id = unique_id("killall");
    run_detached(&runc, &bundle, &id);
    wait_for("the shell and its two sleeps", || {
        container_pids(&runc, &id).len() == 3
    });
    let pids = container_pids(&runc, &id);

    runc.output(["kill", "--all", id.as_str(), "KILL"])
        .assert_success();

    wait_for("every process to die", || pids.iter().all(|p| !alive(*p)));
    assert_eq!(status(&runc, &id), "stopped");
    runc.output(["delete", id.as_str()]).assert_success();
    assert_no_trace(&runc, &id);
}

#[test]
fn delete_refuses_a_running_container_unless_forced() {
    require_root!();
    let runc = Runc::new();
    let bundle = Bundle::busybox(&["sleep", "1000"]);
    let id = unique_id("delrun");
    run_detached(&runc, &bundle, &id);
    let pid = init_pid(&runc, &id);

    let stderr = runc.output(["delete", id.as_str()]).assert_failure();
    assert!(stderr.contains("running"), "{stderr}");
    assert!(alive(pid), "a refused delete leaves the container running");
    assert_eq!(status(&runc, &id), "running");

    runc.output(["delete", "--force", id.as_str()])
        .assert_success();
    assert!(!alive(pid), "forced delete kills the init");
    assert_no_trace(&runc, &id);
}

// ---------------------------------------------------------------------------
// 18. state, list, spec, features
// ---------------------------------------------------------------------------

#[test]
fn state_and_list_print_runc_shaped_json() {
    require_root!();
    let runc = Runc::new();
    let bundle = Bundle::busybox(&["sleep", "1000"]);
    let id = unique_id("state");
    create(&runc, &bundle, &id).assert_success();

    let raw = runc
        .output(["state", id.as_str()])
        .assert_success()
        .stdout_str();
    let keys = [
        "ociVersion",
        "id",
        "pid",
        "status",
        "bundle",
        "rootfs",
        "created",
        "owner",
    ];
    let positions: Vec<usize> = keys
        .iter()
        .map(|k| {
            raw.find(&format!("\"{k}\":"))
                .unwrap_or_else(|| panic!("no {k} in {raw}"))
        })
        .collect();
    assert!(
        positions.windows(2).all(|w| w[0] < w[1]),
        "field order {keys:?}: {raw}"
    );
    let st: Value = serde_json::from_str(&raw).expect("state json");
    assert_eq!(st["id"], json!(id));
    assert_eq!(st["status"], json!("created"));
    let canonical = fs::canonicalize(bundle.path()).expect("canonicalize bundle");
    assert_eq!(st["bundle"], json!(canonical));

    let list: Value =
        serde_json::from_slice(&runc.output(["list", "-f", "json"]).assert_success().stdout)
            .expect("list json");
    let ids: Vec<&str> = list
        .as_array()
        .expect("an array")
        .iter()
        .filter_map(|c| c["id"].as_str())
        .collect();
    assert_eq!(ids, [id.as_str()]);
    assert_eq!(
        runc.output(["list", "-q"]).assert_success().stdout_str(),
        format!("{id}\n")
    );

    runc.output(["delete", id.as_str()]).assert_success();
    assert_no_trace(&runc, &id);
}

#[test]
fn spec_writes_a_config_once() {
    let runc = Runc::new();
    let dir = tempfile::tempdir().expect("tempdir");
    let bundle = dir.path().as_os_str();

    runc.output([s("spec"), s("--bundle"), bundle])
        .assert_success();
    let config: Value = serde_json::from_str(
        &fs::read_to_string(dir.path().join("config.json")).expect("read config"),
    )
    .expect("config json");
    assert_eq!(config["root"]["path"], json!("rootfs"));
    let stderr = runc
        .output([s("spec"), s("--bundle"), bundle])
        .assert_failure();
    assert!(stderr.contains("File config.json exists"), "{stderr}");
}

#[test]
fn features_lists_the_time_namespace() {
    let runc = Runc::new();
    let features: Value =
        serde_json::from_slice(&runc.output(["features"]).assert_success().stdout)
            .expect("features json");
    let namespaces = features["linux"]["namespaces"]
        .as_array()
        .expect("linux.namespaces");
    assert!(namespaces.contains(&json!("time")), "{namespaces:?}");
}

// ---------------------------------------------------------------------------
// 19. /proc/self/exe (CVE-2019-5736)
// ---------------------------------------------------------------------------

#[test]
fn runtime_binary_cannot_be_rewritten_from_inside_a_container() {
    require_root!();
    // A private copy of berth-runc creates the container: no other process runs this inode,
    // so once the container's init has exec'd, a write open of it fails with the mount's
    // EROFS rather than ETXTBSY, and succeeds if the copy is not protected.
    let copies = tempfile::tempdir().expect("tempdir");
    let exe = copies.path().join("berth-runc");
    fs::copy(env!("CARGO_BIN_EXE_berth-runc"), &exe).expect("copy berth-runc");
    let before = fs::read(&exe).expect("read copy");
    let runc = Runc::new();
    let logdir = tempfile::tempdir().expect("tempdir");
    let bundle = Bundle::busybox(&["sleep", "1000"]);
    fs::create_dir(bundle.rootfs().join("out")).expect("mkdir out");
    // startContainer runs in the container while its init (pid 1) is still the runtime,
    // with the container's uid and capabilities: the attacker's moment. It leaves a process
    // that holds /proc/1/exe open, waits for the init to exec, then reopens it for writing
    // (append, writing nothing, so an unprotected binary stays intact).
    let attacker = "exec 5</proc/1/exe || exit 9; echo HELD; \
        while [ \"$(readlink /proc/1/exe)\" != /bin/busybox ]; do usleep 10000; done; \
        (: >>/proc/self/fd/5) && echo WRITABLE; echo DONE";
    let hook = format!(
        "sh -c '{attacker}' >/out/out 2>/out/err </dev/null & \
         while ! grep -q HELD /out/out 2>/dev/null; do usleep 10000; done"
    );
    bundle.config_mut(|c| {
        push(
            c,
            "/mounts",
            json!({ "destination": "/out", "type": "bind", "source": logdir.path(), "options": ["rbind", "rw"] }),
        );
        c["hooks"] = json!({
            "startContainer": [{ "path": "/bin/sh", "args": ["sh", "-c", hook], "env": ["PATH=/bin"] }]
        });
    });
    let id = unique_id("exe");
    let mut create = Command::new(&exe);
    create
        .arg("--root")
        .arg(runc.root())
        .args([
            s("create"),
            s("--bundle"),
            bundle.path().as_os_str(),
            s(&id),
        ])
        .stdin(Stdio::null());
    output_to_files(create).assert_success();

    runc.output(["start", id.as_str()]).assert_success();

    let out_path = logdir.path().join("out");
    let err_path = logdir.path().join("err");
    let read = |p: &Path| fs::read_to_string(p).unwrap_or_default();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !read(&out_path).contains("DONE") {
        let (out, err) = (read(&out_path), read(&err_path));
        assert!(
            Instant::now() < deadline,
            "the attacker did not finish: {out:?} {err:?}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let (out, err) = (read(&out_path), read(&err_path));
    assert!(
        out.contains("HELD"),
        "the attacker opened the runtime's exe: {out} {err}"
    );
    assert!(
        !out.contains("WRITABLE"),
        "the runtime binary was opened for writing: {out}"
    );
    assert!(
        err.contains("Read-only file system"),
        "expected EROFS: {err}"
    );
    assert_eq!(
        fs::read(&exe).expect("read copy"),
        before,
        "binary unchanged"
    );

    runc.output(["delete", "-f", id.as_str()]).assert_success();
    assert_no_trace(&runc, &id);
}
