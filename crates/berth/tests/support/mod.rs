//! Helpers for the `berth` CLI tests: a private berthd driven by `berth -H` that takes down what
//! it leaves behind, a private dockerd (own socket, data root, exec root, pidfile) taken
//! down on drop, bounded command runs, and skip checks for root and tools.
#![allow(dead_code)]

use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::fs;
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant};

use nix::mount::{umount2, MntFlags};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use tempfile::TempDir;

/// Bound on any single command of a test.
pub const CMD_TIMEOUT: Duration = Duration::from_secs(300);

/// A busybox root filesystem tarball made by scripts/busybox-rootfs.sh in `dir`.
pub fn busybox_tar(dir: &Path) -> PathBuf {
    let root = dir.join("rootfs");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/busybox-rootfs.sh");
    sh(&format!("bash {} {}", script.display(), root.display()));
    let tar = dir.join("rootfs.tar");
    sh(&format!(
        "tar -C {} -cf {} .",
        root.display(),
        tar.display()
    ));
    tar
}

/// True when the test can run: root, and every tool on PATH; else says why it skips.
pub fn can_run(test: &str, tools: &[&str]) -> bool {
    if !nix::unistd::Uid::effective().is_root() {
        eprintln!("skipping {test}: needs root");
        return false;
    }
    for tool in tools {
        if !on_path(tool) && !Path::new(tool).exists() {
            eprintln!("skipping {test}: `{tool}` is not installed (scripts/deps.sh)");
            return false;
        }
    }
    true
}

pub fn on_path(tool: &str) -> bool {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|dir| dir.join(tool).is_file()))
        .unwrap_or(false)
}

pub trait OutputExt {
    fn stdout_str(&self) -> String;
    fn stderr_str(&self) -> String;
    fn explain(&self) -> String;
}

impl OutputExt for Output {
    fn stdout_str(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
    fn stderr_str(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }
    fn explain(&self) -> String {
        format!(
            "status: {}\nstdout: {}\nstderr: {}",
            self.status,
            self.stdout_str(),
            self.stderr_str()
        )
    }
}

/// A private berthd (own socket, data root, exec root and pid file under one short temp dir,
/// /tmp/bt-XXXX, so socket paths stay far below 108 bytes) and the `berth` binary under test
/// pointed at it with `-H`. On drop: removes every container, stops the daemon, kills what is
/// left of its shims, unmounts what is left under the dir and removes it. The daemon has no
/// default bridge (`--bridge none`): these tests need no network, and daemons running side by
/// side must not share one bridge device (berthd's own network tests give each its own).
pub struct Berth {
    dir: TempDir,
    child: Child,
    pub host: String,
}

impl Berth {
    /// Starts the daemon; `None` (after saying why) when berthd cannot be found or built.
    pub fn start() -> Option<Berth> {
        let berthd = berthd_binary()?;
        let dir = tempfile::Builder::new()
            .prefix("bt-")
            .tempdir_in("/tmp")
            .expect("create berthd tempdir under /tmp");
        let d = dir.path();
        let log = fs::File::create(d.join("berthd.log")).expect("create berthd.log");
        let log2 = log.try_clone().expect("dup berthd.log");
        let host = format!("unix://{}", d.join("s.sock").display());
        let mut cmd = Command::new(&berthd);
        cmd.arg("-H")
            .arg(&host)
            .arg("--data-root")
            .arg(d.join("data"))
            .arg("--exec-root")
            .arg(d.join("exec"))
            .arg("--pidfile")
            .arg(d.join("berthd.pid"))
            .args(["--log-level", "debug", "--bridge", "none"])
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2)
            .process_group(0);
        let child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
        let mut berth = Berth { dir, child, host };
        berth.wait_ready();
        Some(berth)
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The daemon's data root.
    pub fn root(&self) -> PathBuf {
        self.path().join("data")
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("berthd exited early ({status})\n{}", self.log_tail(40));
            }
            if let Ok(out) = run_bounded(&mut self.cmd(["version"]), Duration::from_secs(5)) {
                if out.status.success() {
                    return;
                }
            }
            if Instant::now() > deadline {
                panic!("berthd did not start\n{}", self.log_tail(40));
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn log_tail(&self, n: usize) -> String {
        let text = fs::read_to_string(self.path().join("berthd.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let tail = lines[lines.len().saturating_sub(n)..].join("\n");
        format!("--- last {n} lines of berthd.log ---\n{tail}")
    }

    /// `berth -H unix://SOCKET ARGS...`, stdin from /dev/null.
    pub fn cmd<I, S>(&self, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_berth"));
        cmd.arg("-H").arg(&self.host).args(args);
        cmd.env_remove("BERTH_HOST").env_remove("DOCKER_HOST");
        cmd.stdin(Stdio::null());
        cmd
    }

    pub fn output(&self, args: &[&str]) -> Output {
        run_bounded(&mut self.cmd(args), CMD_TIMEOUT)
            .unwrap_or_else(|e| panic!("{e}\n{}", self.log_tail(30)))
    }

    /// Runs `berth ARGS...` and asserts it succeeded.
    pub fn ok(&self, args: &[&str]) -> Output {
        let out = self.output(args);
        assert!(
            out.status.success(),
            "berth {}\n{}\n{}",
            args.join(" "),
            out.explain(),
            self.log_tail(30)
        );
        out
    }

    /// Mount points under the daemon's dirs (none should be left after `run --rm`).
    pub fn mounts(&self) -> Vec<PathBuf> {
        mounts_under(self.path())
    }

    /// Takes everything down; never panics.
    fn shutdown(&mut self) {
        let d = self.path().to_path_buf();
        if matches!(self.child.try_wait(), Ok(None)) {
            if let Ok(out) = run_bounded(&mut self.cmd(["ps", "-aq"]), Duration::from_secs(20)) {
                let ids: Vec<String> = out
                    .stdout_str()
                    .split_whitespace()
                    .map(String::from)
                    .collect();
                if !ids.is_empty() {
                    let mut rm = self.cmd(["rm", "-f"]);
                    rm.args(&ids);
                    let _ = run_bounded(&mut rm, Duration::from_secs(30));
                }
            }
            let pid = Pid::from_raw(self.child.id() as i32);
            let _ = kill(pid, Signal::SIGTERM);
            if wait_bounded(&mut self.child, Duration::from_secs(10)).is_none() {
                let _ = kill(pid, Signal::SIGKILL);
                let _ = self.child.wait();
            }
        }
        // Shims and containers outlive the daemon: kill any still holding our paths.
        let needle = format!("{}/", d.display());
        for _ in 0..50 {
            let pids = pids_mentioning(&needle);
            if pids.is_empty() {
                break;
            }
            for p in pids {
                let _ = kill(p, Signal::SIGKILL);
            }
            thread::sleep(Duration::from_millis(100));
        }
        unmount_all_under(&d);
    }
}

impl Drop for Berth {
    fn drop(&mut self) {
        self.shutdown();
        if let Err(e) = fs::remove_dir_all(self.path()) {
            eprintln!("cleanup: remove {}: {e}", self.path().display());
        }
    }
}

/// berthd beside the `berth` under test, built (with berth-shim and berth-runc, which it runs
/// from beside itself) when missing, since `cargo test -p berth` builds only berth's binary.
/// `None` after a message when that fails.
pub fn berthd_binary() -> Option<PathBuf> {
    static BUILT: OnceLock<Option<PathBuf>> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let berth = Path::new(env!("CARGO_BIN_EXE_berth"));
            let dir = berth.parent()?;
            let bins = ["berthd", "berth-shim", "berth-runc"];
            if bins.iter().all(|b| dir.join(b).is_file()) {
                return Some(dir.join("berthd"));
            }
            let target = dir.parent()?;
            let mut cmd = Command::new(env!("CARGO"));
            cmd.args([
                "build",
                "-p",
                "berthd",
                "-p",
                "berth-shim",
                "-p",
                "berth-runc",
            ]);
            if dir.file_name() == Some(OsStr::new("release")) {
                cmd.arg("--release");
            }
            cmd.env("CARGO_TARGET_DIR", target);
            match cmd.status() {
                Ok(s) if s.success() && dir.join("berthd").is_file() => Some(dir.join("berthd")),
                other => {
                    eprintln!(
                        "skipping: berthd is not beside {} and `cargo build -p berthd` failed \
                         ({other:?}); run `cargo build --workspace` first",
                        berth.display()
                    );
                    None
                }
            }
        })
        .clone()
}

/// A private dockerd with everything under one short tempdir; taken down on drop.
pub struct Dockerd {
    dir: TempDir,
    child: Child,
    pub host: String,
    cgroup_parents_before: BTreeSet<PathBuf>,
}

impl Dockerd {
    pub fn start() -> Dockerd {
        // Short: containerd's sockets live under the exec root (108-byte limit).
        let dir = tempfile::Builder::new()
            .prefix("bd")
            .tempdir_in("/tmp")
            .expect("create dockerd tempdir under /tmp");
        let d = dir.path();
        let log = fs::File::create(d.join("dockerd.log")).expect("create dockerd.log");
        let log2 = log.try_clone().expect("dup dockerd.log");
        let cgroup_parents_before = cgroup_parents();
        let mut cmd = Command::new("dockerd");
        cmd.arg("--data-root")
            .arg(d.join("data"))
            .arg("--exec-root")
            .arg(d.join("exec"))
            .arg("--pidfile")
            .arg(d.join("pid"))
            .arg("-H")
            .arg(format!("unix://{}", d.join("docker.sock").display()))
            .args([
                "--bridge",
                "none",
                "--iptables=false",
                "--ip-masq=false",
                "--ip-forward=false",
            ])
            .args(["--storage-driver", "vfs"])
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2)
            .process_group(0);
        let child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
        let mut daemon = Dockerd {
            host: format!("unix://{}", d.join("docker.sock").display()),
            dir,
            child,
            cgroup_parents_before,
        };
        daemon.wait_ready();
        daemon
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("dockerd exited early ({status})\n{}", self.log_tail(40));
            }
            if let Ok(out) = run_bounded(&mut self.cmd(["version"]), Duration::from_secs(5)) {
                if out.status.success() {
                    return;
                }
            }
            if Instant::now() > deadline {
                panic!("dockerd did not start\n{}", self.log_tail(40));
            }
            thread::sleep(Duration::from_millis(200));
        }
    }

    pub fn log_tail(&self, n: usize) -> String {
        let text = fs::read_to_string(self.path().join("dockerd.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let tail = lines[lines.len().saturating_sub(n)..].join("\n");
        format!("--- last {n} lines of dockerd.log ---\n{tail}")
    }

    /// `docker ARGS...` against this daemon, stdin from /dev/null.
    pub fn cmd<I, S>(&self, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut cmd = Command::new("docker");
        cmd.env("DOCKER_HOST", &self.host)
            .args(args)
            .stdin(Stdio::null());
        cmd
    }

    pub fn ok(&self, args: &[&str]) -> Output {
        let out = run_bounded(&mut self.cmd(args), CMD_TIMEOUT)
            .unwrap_or_else(|e| panic!("{e}\n{}", self.log_tail(30)));
        assert!(
            out.status.success(),
            "docker {}\n{}\n{}",
            args.join(" "),
            out.explain(),
            self.log_tail(30)
        );
        out
    }

    /// Takes everything down; never panics.
    fn shutdown(&mut self) {
        let d = self.path().to_path_buf();
        if matches!(self.child.try_wait(), Ok(None)) {
            if let Ok(out) = run_bounded(&mut self.cmd(["ps", "-aq"]), Duration::from_secs(20)) {
                let ids: Vec<String> = out
                    .stdout_str()
                    .split_whitespace()
                    .map(String::from)
                    .collect();
                if !ids.is_empty() {
                    let mut rm = self.cmd(["rm", "-f"]);
                    rm.args(&ids);
                    let _ = run_bounded(&mut rm, Duration::from_secs(30));
                }
            }
        }
        let pid = Pid::from_raw(self.child.id() as i32);
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = kill(pid, Signal::SIGTERM);
            if wait_bounded(&mut self.child, Duration::from_secs(20)).is_none() {
                let _ = kill(pid, Signal::SIGKILL);
                let _ = self.child.wait();
            }
        }
        // containerd, shims and anything else started with our paths.
        let needle = format!("{}/", d.display());
        for _ in 0..50 {
            let pids = pids_mentioning(&needle);
            if pids.is_empty() {
                break;
            }
            for p in pids {
                let _ = kill(p, Signal::SIGKILL);
            }
            thread::sleep(Duration::from_millis(100));
        }
        unmount_all_under(&d);
        for parent in cgroup_parents() {
            if !self.cgroup_parents_before.contains(&parent) {
                // Empty container cgroups first, then the parent.
                for e in fs::read_dir(&parent).into_iter().flatten().flatten() {
                    if e.path().is_dir() {
                        let _ = fs::remove_dir(e.path());
                    }
                }
                let _ = fs::remove_dir(&parent);
            }
        }
    }
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        self.shutdown();
        if let Err(e) = fs::remove_dir_all(self.path()) {
            eprintln!("cleanup: remove {}: {e}", self.path().display());
        }
    }
}

/// Runs `cmd` in its own process group, capturing both streams; kills the group after
/// `timeout`.
pub fn run_bounded(cmd: &mut Command, timeout: Duration) -> Result<Output, String> {
    let what = format!("{cmd:?}");
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .map_err(|e| format!("spawn {what}: {e}"))?;
    let reader = |mut r: Box<dyn Read + Send>| {
        thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = r.read_to_end(&mut buf);
            buf
        })
    };
    let out_t = child.stdout.take().map(|s| reader(Box::new(s)));
    let err_t = child.stderr.take().map(|s| reader(Box::new(s)));
    let status: ExitStatus = match wait_bounded(&mut child, timeout) {
        Some(status) => status,
        None => {
            let _ = kill(Pid::from_raw(-(child.id() as i32)), Signal::SIGKILL);
            let _ = child.wait();
            return Err(format!("timed out after {timeout:?}: {what}"));
        }
    };
    let join =
        |t: Option<thread::JoinHandle<Vec<u8>>>| t.and_then(|t| t.join().ok()).unwrap_or_default();
    Ok(Output {
        status,
        stdout: join(out_t),
        stderr: join(err_t),
    })
}

/// Runs `sh -c SCRIPT` bounded and asserts success.
pub fn sh(script: &str) -> Output {
    let out = run_bounded(Command::new("sh").args(["-c", script]), CMD_TIMEOUT)
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(out.status.success(), "sh -c {script}\n{}", out.explain());
    out
}

fn wait_bounded(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(20)),
            _ => return None,
        }
    }
}

fn cgroup_parents() -> BTreeSet<PathBuf> {
    let mut found = BTreeSet::new();
    let base = Path::new("/sys/fs/cgroup");
    if base.join("docker").is_dir() {
        found.insert(base.join("docker"));
    }
    for e in fs::read_dir(base).into_iter().flatten().flatten() {
        let p = e.path().join("docker");
        if p.is_dir() {
            found.insert(p);
        }
    }
    found
}

fn pids_mentioning(needle: &str) -> Vec<Pid> {
    let me = std::process::id();
    let mut pids = Vec::new();
    for e in fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if pid == me {
            continue;
        }
        let Ok(raw) = fs::read(e.path().join("cmdline")) else {
            continue;
        };
        if String::from_utf8_lossy(&raw)
            .replace('\0', " ")
            .contains(needle)
        {
            pids.push(Pid::from_raw(pid as i32));
        }
    }
    pids
}

/// Unmounts everything at or below `dir`, deepest first.
pub fn unmount_all_under(dir: &Path) {
    for _ in 0..3 {
        let mut mounts = mounts_under(dir);
        if mounts.is_empty() {
            break;
        }
        mounts.sort_by_key(|m| std::cmp::Reverse(m.as_os_str().len()));
        for m in mounts {
            if let Err(e) = umount2(&m, MntFlags::MNT_DETACH) {
                eprintln!("cleanup: umount {}: {e}", m.display());
            }
        }
    }
}

/// Mount points in this mount namespace at or below `dir`.
pub fn mounts_under(dir: &Path) -> Vec<PathBuf> {
    let text = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    text.lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|m| PathBuf::from(m.replace("\\040", " ")))
        .filter(|m| m.starts_with(dir))
        .collect()
}
