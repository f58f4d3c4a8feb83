//! Real containers under a real berth-shim and berth-runc: logs and exit codes, attach with and
//! without a tty, exec, survival of the engine's death and clean deletion, log rotation.
//! Needs root and `cargo build -p berth-runc` in the same target directory.

mod support;

use std::io::{Read, Write};
use std::net::Shutdown;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use berth_shim::frame::{self, read_frame};
use berth_shim::protocol::{AttachRequest, ExitInfo, LogsRequest, Status};
use berth_shim::Shim;
use serde_json::json;
use support::{root, Fixture};

const TIMEOUT: Duration = Duration::from_secs(30);

fn timed(s: UnixStream) -> UnixStream {
    s.set_read_timeout(Some(TIMEOUT)).expect("set timeout");
    s
}

fn all_logs(shim: &Shim) -> (String, String) {
    let mut s = timed(
        shim.logs(LogsRequest {
            stdout: true,
            stderr: true,
            ..Default::default()
        })
        .expect("logs"),
    );
    let (out, err) = frame::demux_all(&mut s).expect("read logs");
    (
        String::from_utf8_lossy(&out).into_owned(),
        String::from_utf8_lossy(&err).into_owned(),
    )
}

fn exit_json(dir: &Path) -> ExitInfo {
    let text = std::fs::read_to_string(dir.join("exit.json")).expect("read exit.json");
    serde_json::from_str(&text).expect("parse exit.json")
}

fn process(args: &[&str]) -> serde_json::Value {
    json!({
        "args": args,
        "cwd": "/",
        "env": ["PATH=/bin:/usr/bin", "TERM=xterm"],
        "user": {"uid": 0, "gid": 0}
    })
}

/// Reads everything until EOF (or the timeout) as text.
fn read_to_end_lossy(s: &mut UnixStream) -> String {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match s.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    String::from_utf8_lossy(&buf).into_owned()
}

fn alive(pid: i32) -> bool {
    // A zombie (nobody reaped it yet) counts as gone.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => !s
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

fn eventually(what: &str, f: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting: {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn logs_hold_both_streams_and_wait_returns_the_exit_code() {
    if !root() {
        return;
    }
    let fx = Fixture::new("shim-logs", &["sh", "-c", "echo out; echo err >&2; exit 3"]);
    let shim = fx.start(&fx.opts());
    let exit = shim.wait().expect("wait");
    assert_eq!(exit.exit_code, 3);
    assert!(!exit.oom_killed);
    assert_eq!(exit_json(fx.state_dir()), exit);

    let (out, err) = all_logs(&shim);
    assert_eq!(out, "out\n");
    assert_eq!(err, "err\n");

    let text = std::fs::read_to_string(fx.state_dir().join("json.log")).expect("read log");
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    assert_eq!(lines.len(), 2, "{text}");
    for l in &lines {
        let want = if l["log"] == "out\n" {
            "stdout"
        } else {
            "stderr"
        };
        assert_eq!(l["stream"], want, "{text}");
        assert!(
            l["time"].as_str().is_some_and(|t| t.ends_with('Z')),
            "{text}"
        );
    }
    let st = shim.state().expect("state");
    assert_eq!(st.status, Status::Stopped);
    assert_eq!(st.exit.map(|e| e.exit_code), Some(3));
}

#[test]
fn attach_without_tty_passes_stdin_and_its_eof() {
    if !root() {
        return;
    }
    let fx = Fixture::new("shim-attach", &["cat"]);
    let mut opts = fx.opts();
    opts.stdin = true;
    let shim = fx.start(&opts);
    let mut s = timed(
        shim.attach(AttachRequest {
            stdin: true,
            stdout: true,
            stderr: true,
            logs: false,
        })
        .expect("attach"),
    );
    s.write_all(b"hello\n").expect("write stdin");
    s.shutdown(Shutdown::Write).expect("half-close");
    let frame = read_frame(&mut s).expect("read frame");
    assert_eq!(frame, Some((frame::STDOUT, b"hello\n".to_vec())));
    assert_eq!(read_frame(&mut s).expect("read end"), None);
    assert_eq!(shim.wait().expect("wait").exit_code, 0);
}

#[test]
fn tty_attach_resize_and_exit_code() {
    if !root() {
        return;
    }
    let fx = Fixture::new("shim-tty", &["sh"]);
    fx.bundle
        .config_mut(|c| c["process"]["terminal"] = json!(true));
    let mut opts = fx.opts();
    opts.tty = true;
    opts.stdin = true;
    let shim = fx.start(&opts);
    assert!(shim.state().expect("state").tty);
    let mut s = timed(
        shim.attach(AttachRequest {
            stdin: true,
            stdout: true,
            stderr: true,
            logs: false,
        })
        .expect("attach"),
    );
    shim.resize(40, 100).expect("resize");

    // Another process sees the new size on the container's terminal.
    let mut e = timed(
        shim.exec(
            "size",
            process(&["stty", "-F", "/dev/console", "size"]),
            false,
            false,
        )
        .expect("exec stty"),
    );
    let (out, err) = frame::demux_all(&mut e).expect("exec output");
    assert_eq!(
        String::from_utf8_lossy(&out),
        "40 100\n",
        "stderr: {}",
        String::from_utf8_lossy(&err)
    );
    assert_eq!(
        shim.exec_state("size").expect("exec state").exit_code,
        Some(0)
    );

    s.write_all(b"stty size; echo TTY_OK; exit 5\n")
        .expect("write");
    let text = read_to_end_lossy(&mut s);
    // Raw bytes, no frame headers: the output lines end in \r\n.
    assert!(text.contains("\nTTY_OK\r\n"), "{text:?}");
    assert!(text.contains("40 100\r\n"), "{text:?}");
    assert_eq!(shim.wait().expect("wait").exit_code, 5);
}

#[test]
fn exec_streams_its_output_and_reports_its_exit_code() {
    if !root() {
        return;
    }
    let fx = Fixture::new("shim-exec", &["sleep", "1000"]);
    let shim = fx.start(&fx.opts());
    let mut s = timed(
        shim.exec(
            "e1",
            process(&["sh", "-c", "echo exec-out; echo exec-err >&2; exit 7"]),
            false,
            false,
        )
        .expect("exec"),
    );
    let (out, err) = frame::demux_all(&mut s).expect("read exec stream");
    assert_eq!(String::from_utf8_lossy(&out), "exec-out\n");
    assert_eq!(String::from_utf8_lossy(&err), "exec-err\n");
    let st = shim.exec_state("e1").expect("exec-state");
    assert_eq!(st.exit_code, Some(7));
    assert!(!st.running);
    assert!(shim.exec("e1", process(&["true"]), false, false).is_err());
    // The exec's output is not the container's log.
    assert_eq!(shim.state().expect("state").status, Status::Running);
    shim.kill(9, false).expect("kill");
    assert_eq!(shim.wait().expect("wait").exit_code, 137);
    assert_eq!(all_logs(&shim), (String::new(), String::new()));
}

#[test]
fn shim_outlives_its_starter_and_delete_leaves_nothing() {
    if !root() {
        return;
    }
    let fx = Fixture::new("shim-survive", &["sleep", "1000"]);
    let shim_pid = {
        let shim = fx.start(&fx.opts());
        shim.pid().expect("shim pid")
        // The engine's handle is dropped here, as if the engine died.
    };
    let stat = std::fs::read_to_string(format!("/proc/{shim_pid}/stat")).expect("shim stat");
    let ppid: i32 = stat
        .rsplit_once(')')
        .and_then(|(_, r)| r.split_whitespace().nth(1))
        .and_then(|p| p.parse().ok())
        .expect("ppid");
    assert_ne!(
        ppid,
        std::process::id() as i32,
        "the shim must not be our child"
    );
    let sid = nix::unistd::getsid(Some(nix::unistd::Pid::from_raw(shim_pid))).expect("getsid");
    assert_eq!(sid.as_raw(), shim_pid, "the shim leads its own session");

    // A new engine finds it from the state directory alone.
    let shim = Shim::connect(fx.state_dir()).expect("connect");
    let st = shim.state().expect("state");
    assert_eq!(st.status, Status::Running);
    assert_eq!(st.shim_pid, shim_pid);
    let init = st.pid;
    assert!(alive(init), "container init {init} is running");
    let cgroups: Vec<_> = std::fs::read_dir("/sys/fs/cgroup")
        .expect("list cgroup hierarchies")
        .flatten()
        .map(|e| e.path().join("berth").join(&fx.id))
        .collect();
    assert!(
        cgroups.iter().any(|p| p.exists()),
        "no cgroup found for {}",
        fx.id
    );

    shim.kill(9, false).expect("kill");
    assert_eq!(shim.wait().expect("wait").exit_code, 137);
    assert_eq!(exit_json(fx.state_dir()).exit_code, 137);
    assert!(
        fx.runtime_root.path().join(&fx.id).exists(),
        "runtime state kept until delete"
    );

    shim.delete(false).expect("delete");
    assert!(
        !fx.runtime_root.path().join(&fx.id).exists(),
        "runtime state removed"
    );
    for p in &cgroups {
        assert!(!p.exists(), "{} left behind", p.display());
    }
    eventually("shim exits", || !alive(shim_pid));
    assert!(!alive(init));
    assert!(!fx.state_dir().join("shim.sock").exists());
    assert!(Shim::connect(fx.state_dir()).is_err());
    // What the engine needs afterwards stays on disk.
    assert_eq!(exit_json(fx.state_dir()).exit_code, 137);
}

#[test]
fn log_rotation_keeps_max_file_files_and_tail_reads_the_end() {
    if !root() {
        return;
    }
    let fx = Fixture::new(
        "shim-rotate",
        &[
            "sh",
            "-c",
            "i=0; while [ $i -lt 400 ]; do echo \"line $i abcdefghijklmnop\"; i=$((i+1)); done",
        ],
    );
    let mut opts = fx.opts();
    opts.log_max_size = Some(1024);
    opts.log_max_file = 3;
    let shim = fx.start(&opts);
    assert_eq!(shim.wait().expect("wait").exit_code, 0);
    let log = fx.state_dir().join("json.log");
    for n in ["", ".1", ".2"] {
        let p = format!("{}{n}", log.display());
        assert!(Path::new(&p).exists(), "{p} missing");
    }
    assert!(!Path::new(&format!("{}.3", log.display())).exists());
    for n in ["", ".1", ".2"] {
        let len = std::fs::metadata(format!("{}{n}", log.display()))
            .expect("stat log")
            .len();
        assert!(len < 1024 + 200, "json.log{n} is {len} bytes");
    }
    let mut s = timed(
        shim.logs(LogsRequest {
            stdout: true,
            stderr: true,
            tail: Some(3),
            ..Default::default()
        })
        .expect("logs"),
    );
    let (out, _) = frame::demux_all(&mut s).expect("read logs");
    assert_eq!(
        String::from_utf8_lossy(&out),
        "line 397 abcdefghijklmnop\nline 398 abcdefghijklmnop\nline 399 abcdefghijklmnop\n"
    );
}

#[test]
fn logs_follow_streams_until_exit_with_timestamps() {
    if !root() {
        return;
    }
    let fx = Fixture::new("shim-follow", &["sh", "-c", "echo one; sleep 1; echo two"]);
    let shim = fx.start(&fx.opts());
    let mut s = timed(
        shim.logs(LogsRequest {
            follow: true,
            stdout: true,
            timestamps: true,
            ..Default::default()
        })
        .expect("logs"),
    );
    let (out, _) = frame::demux_all(&mut s).expect("follow");
    let out = String::from_utf8_lossy(&out);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    for (l, want) in lines.iter().zip(["one", "two"]) {
        let (time, text) = l.split_once(' ').expect("timestamp prefix");
        assert!(berth_shim::jsonlog::parse_rfc3339(time).is_some(), "{l}");
        assert_eq!(text, want);
    }
    assert_eq!(shim.wait().expect("wait").exit_code, 0);
}

#[test]
fn start_failure_is_reported_and_leaves_nothing() {
    if !root() {
        return;
    }
    let fx = Fixture::new("shim-bad", &["/nonexistent"]);
    let err = Shim::start(&fx.opts()).expect_err("bad executable");
    assert!(err.to_string().contains(&fx.id), "{err}");
    assert!(Shim::connect(fx.state_dir()).is_err());
    let left: Vec<_> = std::fs::read_dir(fx.runtime_root.path())
        .expect("list runtime root")
        .flatten()
        .collect();
    assert!(left.is_empty(), "runtime state left: {left:?}");
}

#[test]
fn oom_kill_is_recorded() {
    if !root() {
        return;
    }
    let fx = Fixture::new(
        "shim-oom",
        &[
            "sh",
            "-c",
            "a=$(head -c 60000000 /dev/zero | tr '\\0' a); echo survived",
        ],
    );
    fx.bundle.config_mut(|c| {
        c["linux"]["resources"]["memory"] = json!({"limit": 8 << 20, "swap": 8 << 20})
    });
    let shim = fx.start(&fx.opts());
    let exit = shim.wait().expect("wait");
    assert!(exit.oom_killed, "{exit:?}");
    assert_eq!(exit.exit_code, 137);
    assert!(exit_json(fx.state_dir()).oom_killed);
}

#[test]
fn an_executed_runtime_works_as_the_built_in_one() {
    if !root() {
        return;
    }
    // The same container through `berth-runc create/start/delete` executed by the shim, as
    // with any runc-compatible runtime.
    let fx = Fixture::new(
        "shim-exec-rt",
        &["sh", "-c", "echo out; echo err >&2; exit 5"],
    );
    let mut opts = fx.opts();
    assert!(
        opts.builtin_runtime,
        "berth-runc is run in the shim by default"
    );
    opts.builtin_runtime = false;
    let shim = fx.start(&opts);
    assert_eq!(shim.wait().expect("wait").exit_code, 5);
    assert_eq!(all_logs(&shim), ("out\n".to_string(), "err\n".to_string()));
    shim.delete(true).expect("delete");
    assert!(
        !fx.runtime_root.path().join(&fx.id).exists(),
        "runtime state removed"
    );
}

#[test]
fn a_shim_running_the_runtime_cannot_have_its_binary_written() {
    if !root() {
        return;
    }
    let fx = Fixture::new("shim-ro-exe", &["sleep", "30"]);
    let shim = fx.start(&fx.opts());
    let pid = shim.state().expect("state").shim_pid;
    // What a container process reaching /proc/PID/exe of its shim would try.
    let exe = format!("/proc/{pid}/exe");
    assert!(
        std::fs::OpenOptions::new().write(true).open(&exe).is_err(),
        "the shim's binary must not be writable through {exe}"
    );
    // And not merely because it is busy: it runs from a read-only mount of its binary.
    let vfs = nix::sys::statvfs::statvfs(exe.as_str()).expect("statvfs");
    assert!(
        vfs.flags().contains(nix::sys::statvfs::FsFlags::ST_RDONLY),
        "{exe} is on a writable mount"
    );
    assert_eq!(
        std::fs::read_to_string(format!("/proc/{pid}/comm"))
            .expect("comm")
            .trim(),
        "berth-shim"
    );
    shim.kill(9, false).expect("kill");
    assert_eq!(shim.wait().expect("wait").exit_code, 137);
}
