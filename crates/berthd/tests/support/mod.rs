//! End-to-end test support: a private daemon (berthd, or dockerd as the peer when
//! `BERTH_E2E_PEER=dockerd`) on its own socket and directories, the real `docker` CLI
//! pointed at it, and a Drop that leaves no containers, processes, mounts or cgroups.
#![allow(dead_code)] // each test binary uses a different part of the helpers

pub mod swarm;

use std::ffi::OsStr;
use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// Which daemon the tests talk to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Peer {
    /// Our own daemon, built by cargo beside this test.
    Berthd,
    /// Debian's dockerd 20.10, the reference the suite is validated against.
    Dockerd,
}

impl Peer {
    pub fn from_env() -> Peer {
        match std::env::var("BERTH_E2E_PEER").as_deref() {
            Ok("dockerd") => Peer::Dockerd,
            Ok("") | Ok("berthd") | Err(_) => Peer::Berthd,
            Ok(other) => panic!("BERTH_E2E_PEER={other}: expected dockerd or berthd"),
        }
    }
}

/// The result of one CLI invocation.
#[derive(Debug)]
pub struct Out {
    pub cmd: String,
    pub stdout: String,
    pub stderr: String,
    /// None when killed by a signal or by the timeout.
    pub code: Option<i32>,
}

impl Out {
    pub fn ok(&self) -> bool {
        self.code == Some(0)
    }
    /// stdout with surrounding whitespace removed.
    pub fn out(&self) -> &str {
        self.stdout.trim()
    }
    pub fn lines(&self) -> Vec<&str> {
        self.stdout
            .lines()
            .filter(|l| !l.trim().is_empty())
            .collect()
    }
}

impl std::fmt::Display for Out {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "$ {}\nexit: {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.cmd, self.code, self.stdout, self.stderr
        )
    }
}

/// Why the suite cannot run here; tests print it and return without failing.
pub fn skip_reason() -> Option<String> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return Some("needs root (containers, mounts, cgroups)".into());
    }
    if which("docker").is_none() {
        return Some("the docker CLI is not on PATH".into());
    }
    if Peer::from_env() == Peer::Dockerd && which("dockerd").is_none() {
        return Some("BERTH_E2E_PEER=dockerd but dockerd is not on PATH".into());
    }
    None
}

pub fn which(tool: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(tool))
        .find(|p| {
            p.metadata()
                .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
                .unwrap_or(false)
        })
}

/// Runs a command with a deadline, collecting its output.
pub fn run_cmd(cmd: &mut Command, timeout: Duration) -> Out {
    run_cmd_input(cmd, None, timeout)
}

/// Runs a command with a deadline, feeding it `input` on stdin (then EOF) if given.
pub fn run_cmd_input(cmd: &mut Command, input: Option<&[u8]>, timeout: Duration) -> Out {
    let desc = describe(cmd);
    cmd.stdin(if input.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    });
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            return Out {
                cmd: desc,
                stdout: String::new(),
                stderr: format!("spawn failed: {e}"),
                code: None,
            }
        }
    };
    if let (Some(mut stdin), Some(data)) = (child.stdin.take(), input) {
        let data = data.to_vec();
        thread::spawn(move || {
            let _ = stdin.write_all(&data);
        });
    }
    let out = child.stdout.take().map(reader_thread);
    let err = child.stderr.take().map(reader_thread);
    let deadline = Instant::now() + timeout;
    let mut timed_out = false;
    let status = loop {
        match child.try_wait() {
            Ok(Some(st)) => break Some(st),
            Ok(None) if Instant::now() >= deadline => {
                timed_out = true;
                let _ = child.kill();
                break child.wait().ok();
            }
            Ok(None) => thread::sleep(Duration::from_millis(10)),
            Err(_) => break None,
        }
    };
    let stdout = out
        .map(|t| t.join().unwrap_or_default())
        .unwrap_or_default();
    let mut stderr = err
        .map(|t| t.join().unwrap_or_default())
        .unwrap_or_default();
    if timed_out {
        stderr.push_str(&format!("\n[killed after {timeout:?} timeout]"));
    }
    Out {
        cmd: desc,
        stdout,
        stderr,
        code: if timed_out {
            None
        } else {
            status.and_then(|s| s.code())
        },
    }
}

fn reader_thread<R: Read + Send + 'static>(mut r: R) -> thread::JoinHandle<String> {
    thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = r.read_to_end(&mut buf);
        String::from_utf8_lossy(&buf).into_owned()
    })
}

fn describe(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        let a = a.to_string_lossy();
        if a.contains(' ') || a.is_empty() {
            s.push_str(&format!(" '{a}'"));
        } else {
            s.push(' ');
            s.push_str(&a);
        }
    }
    s
}

/// Polls `f` every 100 ms until it returns Some or `timeout` passes.
pub fn poll<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        thread::sleep(Duration::from_millis(100));
    }
}

/// Path of the repository root (two levels above this crate).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("repository root")
}

/// A private daemon with its own socket, data root, exec root and pid file
/// under a short temp dir (Unix socket paths must stay under 108 bytes).
pub struct Daemon {
    pub peer: Peer,
    /// The temp dir holding everything of this daemon: /tmp/bd-XXXXXX.
    pub dir: PathBuf,
    pub socket: PathBuf,
    pub data_root: PathBuf,
    pub exec_root: PathBuf,
    pub pidfile: PathBuf,
    pub config_dir: PathBuf,
    /// A scratch dir for the test's own files (tarballs, env files, bind sources).
    pub work: PathBuf,
    /// Namespace / cgroup-parent name unique to this daemon (peer mode).
    pub tag: String,
    /// More daemon flags, kept for every (re)launch.
    pub extra_args: Vec<String>,
    /// A command berthd runs under (e.g. `nsenter --net=...`), kept for every (re)launch.
    pub prefix: Vec<String>,
    child: Option<Child>,
    log: PathBuf,
    starts: u32,
}

impl Daemon {
    /// Starts a daemon with the busybox image imported, or returns None (after
    /// printing why) when the machine cannot run the suite.
    pub fn start(test: &str) -> Option<Daemon> {
        if let Some(why) = skip_reason() {
            eprintln!("skipping {test}: {why}");
            return None;
        }
        let d = Daemon::start_bare(test);
        d.import_busybox();
        Some(d)
    }

    /// Starts a daemon with more flags and the busybox image imported, or returns None
    /// (after printing why) when the machine cannot run the suite.
    pub fn start_with(test: &str, extra_args: &[String]) -> Option<Daemon> {
        if let Some(why) = skip_reason() {
            eprintln!("skipping {test}: {why}");
            return None;
        }
        let d = Daemon::start_bare_with(test, extra_args);
        d.import_busybox();
        Some(d)
    }

    /// Starts a daemon without importing any image. It has no default bridge (`--bridge
    /// none`, as the dockerd peer is started), so containers are on `none` by default.
    pub fn start_bare(test: &str) -> Daemon {
        let none = match Peer::from_env() {
            Peer::Berthd => vec!["--bridge".to_string(), "none".to_string()],
            Peer::Dockerd => vec!["--bridge=none".to_string()],
        };
        Daemon::start_bare_with(test, &none)
    }

    /// Starts a daemon of a given kind (whatever `BERTH_E2E_PEER` says) with no default
    /// bridge and the busybox image imported: for tests that compare berthd with dockerd
    /// in one run. None (after printing why) when that daemon cannot run here.
    pub fn start_peer(test: &str, peer: Peer) -> Option<Daemon> {
        if let Some(why) = skip_reason() {
            eprintln!("skipping {test}: {why}");
            return None;
        }
        if peer == Peer::Dockerd && which("dockerd").is_none() {
            eprintln!("skipping {test}: dockerd is not on PATH (scripts/deps.sh)");
            return None;
        }
        let none = match peer {
            Peer::Berthd => vec!["--bridge".to_string(), "none".to_string()],
            Peer::Dockerd => vec!["--bridge=none".to_string()],
        };
        let d = Daemon::start_bare_peer(test, &none, peer);
        d.import_busybox();
        Some(d)
    }

    /// Starts a daemon with these flags (which choose its bridge) and no image.
    pub fn start_bare_with(test: &str, extra_args: &[String]) -> Daemon {
        Daemon::start_bare_peer(test, extra_args, Peer::from_env())
    }

    /// Starts berthd with `extra_args` under `prefix`, a command that execs its arguments
    /// (to run it in another network namespace); no image is imported.
    pub fn start_wrapped(test: &str, prefix: &[String], extra_args: &[String]) -> Daemon {
        Daemon::start_bare_full(test, extra_args, Peer::Berthd, prefix)
    }

    fn start_bare_peer(test: &str, extra_args: &[String], peer: Peer) -> Daemon {
        Daemon::start_bare_full(test, extra_args, peer, &[])
    }

    fn start_bare_full(test: &str, extra_args: &[String], peer: Peer, prefix: &[String]) -> Daemon {
        let dir = tempfile::Builder::new()
            .prefix("bd-")
            .tempdir_in("/tmp")
            .expect("create temp dir under /tmp")
            .keep();
        let tag = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut d = Daemon {
            peer,
            socket: dir.join("d.sock"),
            data_root: dir.join("data"),
            exec_root: dir.join("exec"),
            pidfile: dir.join("d.pid"),
            config_dir: dir.join("cli"),
            work: dir.join("work"),
            log: dir.join("daemon.log"),
            tag,
            dir,
            extra_args: extra_args.to_vec(),
            prefix: prefix.to_vec(),
            child: None,
            starts: 0,
        };
        for p in [&d.data_root, &d.exec_root, &d.config_dir, &d.work] {
            fs::create_dir_all(p).expect("create daemon dirs");
        }
        fs::write(d.config_dir.join("config.json"), "{}").expect("write CLI config");
        eprintln!("[{test}] {:?} daemon in {}", d.peer, d.dir.display());
        d.launch();
        d
    }

    /// The berthd executable and its siblings (berth-runc, berth-shim).
    pub fn berthd_bin() -> PathBuf {
        PathBuf::from(env!("CARGO_BIN_EXE_berthd"))
    }

    /// (Re)starts the daemon process on the same directories and waits for its socket.
    pub fn launch(&mut self) {
        assert!(self.child.is_none(), "daemon already running");
        let _ = fs::remove_file(&self.socket);
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("daemon log");
        let host = format!("unix://{}", self.socket.display());
        let mut cmd = match self.peer {
            Peer::Berthd => {
                let bin = Daemon::berthd_bin();
                let dir = bin.parent().map(Path::to_path_buf).unwrap_or_default();
                for sib in ["berth-runc", "berth-shim"] {
                    assert!(
                        dir.join(sib).exists(),
                        "{sib} not found beside {}: build the workspace (cargo build --workspace)",
                        bin.display()
                    );
                }
                let mut c = match self.prefix.split_first() {
                    Some((first, rest)) => {
                        let mut c = Command::new(first);
                        c.args(rest).arg(&bin);
                        c
                    }
                    None => Command::new(&bin),
                };
                c.args(["-H", &host]);
                c.arg("--data-root").arg(&self.data_root);
                c.arg("--exec-root").arg(&self.exec_root);
                c.arg("--pidfile").arg(&self.pidfile);
                c.args(["--log-level", "debug"]);
                c.args(&self.extra_args);
                c
            }
            Peer::Dockerd => {
                // dockerd 20.10 starts its own containerd with its config, socket and
                // state under --exec-root and its root under --data-root, so nothing is
                // shared with a system containerd. A per-daemon containerd namespace and
                // cgroup parent keep containers and cgroups apart.
                let mut c = Command::new("dockerd");
                c.args(["-H", &host]);
                c.arg("--data-root").arg(&self.data_root);
                c.arg("--exec-root").arg(&self.exec_root);
                c.arg("--pidfile").arg(&self.pidfile);
                c.args(&self.extra_args);
                c.args([
                    "--iptables=false",
                    "--ip-masq=false",
                    "--ip6tables=false",
                    "--ip-forward=false",
                ]);
                c.arg(format!("--containerd-namespace={}", self.tag));
                c.arg(format!(
                    "--containerd-plugins-namespace={}-plugins",
                    self.tag
                ));
                c.arg(format!("--cgroup-parent=/{}", self.tag));
                c.args(["--log-level", "info"]);
                c
            }
        };
        cmd.stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone log fd"))
            .stderr(log);
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("start {:?}: {e}", self.peer));
        self.child = Some(child);
        self.starts += 1;
        let ready = poll(Duration::from_secs(60), || {
            if let Some(c) = self.child.as_mut() {
                if let Ok(Some(st)) = c.try_wait() {
                    panic!(
                        "{:?} exited ({st}) before its socket was ready; log:\n{}",
                        self.peer,
                        self.log_tail(60)
                    );
                }
            }
            ping(&self.socket).then_some(())
        });
        assert!(
            ready.is_some(),
            "{:?} socket not ready after 60s; log:\n{}",
            self.peer,
            self.log_tail(60)
        );
    }

    /// The daemon's pid (the process we spawned).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// Kills the daemon with SIGKILL and reaps it; containers are left alone.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Kills the daemon, its shims and its containers with SIGKILL (a lost node).
    pub fn kill_all(&mut self) {
        self.kill9();
        kill_matching(&self.dir.to_string_lossy());
        remove_cgroups(&dir_names(&self.data_root.join("containers")), "");
    }

    /// Stops the daemon with SIGTERM (SIGKILL after `grace`).
    pub fn terminate(&mut self, grace: Duration) {
        if let Some(mut c) = self.child.take() {
            signal(c.id() as i32, libc::SIGTERM);
            let done = poll(grace, || c.try_wait().ok().flatten());
            if done.is_none() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }

    pub fn log_tail(&self, n: usize) -> String {
        let text = fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    /// The last `n` lines of the log at info level and above (the daemon logs at debug).
    pub fn log_notable(&self, n: usize) -> String {
        let text = fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text
            .lines()
            .filter(|l| !l.contains("DEBUG") && !l.contains("TRACE"))
            .collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    /// A `docker` command pointed at this daemon, with a private CLI config.
    pub fn docker_cmd<S: AsRef<OsStr>>(&self, args: &[S]) -> Command {
        let mut c = Command::new("docker");
        c.args(args);
        self.docker_env(&mut c);
        c
    }

    /// Points any command (script, sh, python) at this daemon the way the CLI expects.
    pub fn docker_env(&self, c: &mut Command) {
        c.env("DOCKER_HOST", format!("unix://{}", self.socket.display()))
            .env("DOCKER_CONFIG", &self.config_dir)
            .env("DOCKER_CLI_HINTS", "false")
            .env_remove("DOCKER_CONTEXT")
            .env_remove("DOCKER_TLS_VERIFY")
            .env_remove("DOCKER_CERT_PATH")
            .env_remove("DOCKER_API_VERSION");
    }

    /// Runs the docker CLI (120 s deadline).
    pub fn docker<S: AsRef<OsStr>>(&self, args: &[S]) -> Out {
        run_cmd(&mut self.docker_cmd(args), Duration::from_secs(120))
    }

    /// Runs the docker CLI with `input` on stdin (120 s deadline).
    pub fn docker_stdin<S: AsRef<OsStr>>(&self, args: &[S], input: &[u8]) -> Out {
        run_cmd_input(
            &mut self.docker_cmd(args),
            Some(input),
            Duration::from_secs(120),
        )
    }

    /// Runs the docker CLI and asserts it exits 0; returns trimmed stdout.
    #[track_caller]
    pub fn docker_ok<S: AsRef<OsStr>>(&self, args: &[S]) -> String {
        let out = self.docker(args);
        assert!(
            out.ok(),
            "expected success:\n{out}\n--- daemon log ---\n{}",
            self.log_tail(30)
        );
        out.out().to_string()
    }

    /// Runs the docker CLI and asserts it exits non-zero; returns the whole result.
    #[track_caller]
    pub fn docker_fails<S: AsRef<OsStr>>(&self, args: &[S]) -> Out {
        let out = self.docker(args);
        assert!(
            !out.ok() && out.code.is_some(),
            "expected a clean failure:\n{out}"
        );
        out
    }

    /// Runs the docker CLI and asserts its exit code.
    #[track_caller]
    pub fn docker_code<S: AsRef<OsStr>>(&self, args: &[S], code: i32) -> Out {
        let out = self.docker(args);
        assert_eq!(out.code, Some(code), "unexpected exit code:\n{out}");
        out
    }

    /// Starts the docker CLI in the background with piped stdout and stderr.
    pub fn docker_spawn<S: AsRef<OsStr>>(&self, args: &[S]) -> Child {
        let mut c = self.docker_cmd(args);
        c.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        c.spawn().expect("spawn docker")
    }

    /// Like `docker_spawn`, with stdin piped too (the caller writes to it).
    pub fn docker_spawn_stdin<S: AsRef<OsStr>>(&self, args: &[S]) -> Child {
        let mut c = self.docker_cmd(args);
        c.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        c.spawn().expect("spawn docker")
    }

    /// `docker inspect -f FORMAT NAME`, trimmed.
    #[track_caller]
    pub fn inspect(&self, name: &str, format: &str) -> String {
        self.docker_ok(&["inspect", "-f", format, name])
    }

    /// Waits until `docker inspect -f FORMAT NAME` prints `want`.
    #[track_caller]
    pub fn wait_for(&self, name: &str, format: &str, want: &str, timeout: Duration) {
        let mut last = String::new();
        let got = poll(timeout, || {
            let o = self.docker(&["inspect", "-f", format, name]);
            last = format!("{}{}", o.stdout.trim(), o.stderr.trim());
            (o.ok() && o.out() == want).then_some(())
        });
        assert!(
            got.is_some(),
            "{name}: {format} never became {want:?} (last: {last:?})"
        );
    }

    /// Builds a busybox root filesystem tarball (scripts/busybox-rootfs.sh) in the work dir.
    pub fn busybox_tarball(&self) -> PathBuf {
        let tar = self.work.join("busybox-rootfs.tar");
        if tar.exists() {
            return tar;
        }
        let root = self.work.join("busybox-rootfs");
        let script = repo_root().join("scripts/busybox-rootfs.sh");
        let o = run_cmd(
            Command::new("bash").arg(&script).arg(&root),
            Duration::from_secs(60),
        );
        assert!(o.ok(), "build busybox rootfs:\n{o}");
        let o = run_cmd(
            Command::new("tar")
                .arg("-C")
                .arg(&root)
                .args(["--numeric-owner", "-cf"])
                .arg(&tar)
                .arg("."),
            Duration::from_secs(60),
        );
        assert!(o.ok(), "tar busybox rootfs:\n{o}");
        let _ = fs::remove_dir_all(&root);
        tar
    }

    /// `docker import` of the busybox rootfs as busybox:latest.
    pub fn import_busybox(&self) {
        let tar = self.busybox_tarball();
        let tar = tar.to_string_lossy().into_owned();
        let id = self.docker_ok(&["import", &tar, "busybox:latest"]);
        assert!(id.starts_with("sha256:"), "import printed {id:?}");
    }

    /// Writes a file in the scratch dir and returns its path as a string.
    pub fn write_file(&self, name: &str, content: &str) -> String {
        let p = self.work.join(name);
        if let Some(parent) = p.parent() {
            fs::create_dir_all(parent).expect("mkdir");
        }
        fs::write(&p, content).expect("write scratch file");
        p.to_string_lossy().into_owned()
    }

    /// Removes every container of this daemon (while it still answers).
    fn remove_containers(&self) -> Vec<String> {
        let ps = run_cmd(
            &mut self.docker_cmd(&["ps", "-aq", "--no-trunc"]),
            Duration::from_secs(30),
        );
        let ids: Vec<String> = ps.stdout.split_whitespace().map(str::to_string).collect();
        if !ids.is_empty() {
            let mut args = vec!["rm".to_string(), "-f".into(), "-v".into()];
            args.extend(ids.iter().cloned());
            let _ = run_cmd(&mut self.docker_cmd(&args), Duration::from_secs(60));
        }
        // A failed test's networks: their bridges and rules go with them.
        let _ = run_cmd(
            &mut self.docker_cmd(&["network", "prune", "-f"]),
            Duration::from_secs(60),
        );
        ids
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let mut ids = Vec::new();
        if self.child.is_some() && ping(&self.socket) {
            ids = self.remove_containers();
        }
        // Anything the daemon recorded under its data root: ids of containers it
        // could not remove (or that outlived a killed daemon).
        ids.extend(dir_names(&self.data_root.join("containers")));
        self.terminate(Duration::from_secs(20));
        // Daemon helpers (containerd, shims, container processes started by them)
        // carry our temp dir in their command line.
        kill_matching(&self.dir.to_string_lossy());
        remove_cgroups(&ids, &self.tag);
        unmount_under(&self.dir);
        if let Err(e) = fs::remove_dir_all(&self.dir) {
            // Retry once after lazily unmounting again (mounts propagated late).
            thread::sleep(Duration::from_millis(300));
            unmount_under(&self.dir);
            if let Err(e2) = fs::remove_dir_all(&self.dir) {
                eprintln!(
                    "warning: could not remove {}: {e} / {e2}",
                    self.dir.display()
                );
            }
        }
    }
}

/// True when the socket answers `GET /_ping` with 200.
pub fn ping(socket: &Path) -> bool {
    let Ok(mut s) = UnixStream::connect(socket) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    if s.write_all(b"GET /_ping HTTP/1.1\r\nHost: d\r\nConnection: close\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut buf = [0u8; 64];
    let n = s.read(&mut buf).unwrap_or(0);
    let head = String::from_utf8_lossy(&buf[..n]);
    head.starts_with("HTTP/1.1 200") || head.starts_with("HTTP/1.0 200")
}

pub fn signal(pid: i32, sig: i32) {
    // SAFETY: kill(2) with a pid we own; failure (ESRCH) is harmless here.
    unsafe {
        libc::kill(pid, sig);
    }
}

pub fn pid_alive(pid: i32) -> bool {
    // /proc/PID exists and is not a zombie.
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => s
            .rsplit(')')
            .next()
            .map(|r| !r.trim_start().starts_with('Z'))
            .unwrap_or(false),
        Err(_) => false,
    }
}

fn dir_names(p: &Path) -> Vec<String> {
    fs::read_dir(p)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// SIGKILLs every process (other than us) whose command line mentions `needle`.
fn kill_matching(needle: &str) {
    let me = std::process::id().to_string();
    for _ in 0..50 {
        let mut found = false;
        for pid in dir_names(Path::new("/proc")) {
            if pid == me || !pid.bytes().all(|b| b.is_ascii_digit()) {
                continue;
            }
            let Ok(cmdline) = fs::read(format!("/proc/{pid}/cmdline")) else {
                continue;
            };
            if String::from_utf8_lossy(&cmdline).contains(needle) {
                if let Ok(p) = pid.parse::<i32>() {
                    if pid_alive(p) {
                        found = true;
                        signal(p, libc::SIGKILL);
                    }
                }
            }
        }
        if !found {
            return;
        }
        thread::sleep(Duration::from_millis(100));
    }
}

/// Cgroup directories (any v1 hierarchy or the v2 tree, depth up to 5) whose name
/// contains one of `ids` (12 characters or more) or `tag`.
pub fn cgroups_named(ids: &[String], tag: &str) -> Vec<PathBuf> {
    let matches = |name: &str| -> bool {
        (!tag.is_empty() && name.contains(tag))
            || ids
                .iter()
                .any(|id| id.len() >= 12 && name.contains(id.as_str()))
    };
    let mut found = Vec::new();
    fn walk(dir: &Path, depth: usize, matches: &dyn Fn(&str) -> bool, found: &mut Vec<PathBuf>) {
        if depth > 4 {
            return;
        }
        let Ok(rd) = fs::read_dir(dir) else { return };
        for e in rd.flatten() {
            if !e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                continue;
            }
            let p = e.path();
            if matches(&e.file_name().to_string_lossy()) {
                found.push(p);
            } else {
                walk(&p, depth + 1, matches, found);
            }
        }
    }
    walk(Path::new("/sys/fs/cgroup"), 0, &matches, &mut found);
    found
}

/// Kills what is left in, and removes, the cgroups `cgroups_named` finds.
fn remove_cgroups(ids: &[String], tag: &str) {
    let found = cgroups_named(ids, tag);
    for cg in found {
        // Depth first: children before parents.
        let mut all = Vec::new();
        collect_dirs(&cg, &mut all);
        all.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
        for d in &all {
            for _ in 0..20 {
                let procs = fs::read_to_string(d.join("cgroup.procs")).unwrap_or_default();
                let pids: Vec<i32> = procs
                    .split_whitespace()
                    .filter_map(|p| p.parse().ok())
                    .collect();
                if pids.is_empty() {
                    break;
                }
                // A frozen cgroup (paused container) must thaw for SIGKILL to land.
                let _ = fs::write(d.join("freezer.state"), "THAWED");
                let _ = fs::write(d.join("cgroup.freeze"), "0");
                for p in pids {
                    signal(p, libc::SIGKILL);
                }
                thread::sleep(Duration::from_millis(50));
            }
            let _ = fs::remove_dir(d);
        }
    }
}

fn collect_dirs(p: &Path, out: &mut Vec<PathBuf>) {
    out.push(p.to_path_buf());
    if let Ok(rd) = fs::read_dir(p) {
        for e in rd.flatten() {
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                collect_dirs(&e.path(), out);
            }
        }
    }
}

/// Lazily unmounts every mount point under `dir`, deepest first.
pub fn unmount_under(dir: &Path) {
    let prefix = dir.to_string_lossy().into_owned();
    for _ in 0..5 {
        let info = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let mut points: Vec<String> = info
            .lines()
            .filter_map(|l| l.split(' ').nth(4))
            .map(unescape_mount)
            .filter(|m| m == &prefix || m.starts_with(&format!("{prefix}/")))
            .collect();
        if points.is_empty() {
            return;
        }
        points.sort_by_key(|p| std::cmp::Reverse(p.len()));
        points.dedup();
        for m in points {
            let Ok(c) = std::ffi::CString::new(m) else {
                continue;
            };
            // SAFETY: umount2 with a valid NUL-terminated path; failure is retried or ignored.
            unsafe {
                libc::umount2(c.as_ptr(), libc::MNT_DETACH);
            }
        }
    }
}

fn unescape_mount(s: &str) -> String {
    // mountinfo escapes space, tab, newline and backslash as \ooo.
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 4 <= b.len() {
            let digits = std::str::from_utf8(&b[i + 1..i + 4]).unwrap_or("");
            if let Ok(v) = u8::from_str_radix(digits, 8) {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A background child that is killed (and reaped) when dropped.
pub struct Bg(pub Child);

impl Drop for Bg {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
