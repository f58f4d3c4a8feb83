//! End to end with the real thing: a private dockerd (its own socket, data root and exec root) runs containers with berth-runc as its `berth` runtime, driven by the real docker CLI.
//!
//! Needs root, `dockerd` (Debian docker.io), the `docker` CLI and util-linux
//! `script` (for the pty cases); skips with a message when root or dockerd
//! is missing. Everything the daemon creates lives in a short tempdir under
//! /tmp and is taken down by [`Dockerd`]'s `Drop`, even when a check fails:
//! containers, the daemon, its containerd and shims, mounts, the cgroups of
//! the test's containers and the parent `docker` cgroups it created.

mod support;

use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::fs;
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use nix::mount::{umount2, MntFlags};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use support::OutputExt;
use tempfile::TempDir;

/// The runtime name dockerd knows berth-runc by.
const RUNTIME: &str = "berth";
/// The image the test imports from the busybox rootfs.
const IMAGE: &str = "bb:test";
/// Bound on any single CLI command.
const CMD_TIMEOUT: Duration = Duration::from_secs(60);
/// Bound on dockerd answering `docker version` after it is started.
const START_TIMEOUT: Duration = Duration::from_secs(30);

#[test]
fn dockerd_runs_containers_with_berth_runc() {
    if !nix::unistd::Uid::effective().is_root() {
        eprintln!("skipping dockerd end-to-end test: needs root");
        return;
    }
    for tool in ["dockerd", "docker"] {
        if !on_path(tool) {
            eprintln!(
                "skipping dockerd end-to-end test: `{tool}` is not installed (scripts/deps.sh)"
            );
            return;
        }
    }
    let started = Instant::now();
    let d = Dockerd::start();
    d.import_busybox();

    // 1. Output and exit codes of a foreground run; the command is pid 1.
    let out = d.run_rm(&[], &["sh", "-c", "echo hello; cat /proc/1/cmdline"]);
    d.assert_ok(&out);
    let stdout = out.stdout_str();
    assert!(stdout.starts_with("hello\n"), "stdout: {stdout:?}");
    // busybox sh execs its last command in place, so pid 1 is `cat` by then.
    let pid1 = &stdout["hello\n".len()..];
    assert!(
        pid1 == "cat\0/proc/1/cmdline\0" || pid1.starts_with("sh\0-c\0echo hello"),
        "the command is the container's pid 1: {stdout:?}"
    );
    let out = d.run_rm(&[], &["sh", "-c", "exit 7"]);
    assert_eq!(out.status.code(), Some(7), "{}", d.explain(&out));

    // 2. `run -it` under a pty.
    let out = d.under_pty(&format!(
        "docker run -it {} --rm --runtime {RUNTIME} {IMAGE} sh -c 'tty; echo TTY_OK'",
        d.cidfile()
    ));
    d.assert_ok(&out);
    let stdout = out.stdout_str();
    assert!(
        stdout.contains("/dev/pts/") && stdout.contains("TTY_OK"),
        "stdout: {stdout:?}"
    );

    // 3. A detached container: exec, exec with env, exec -it, inspect, top.
    let id = d.run_detached("bx");
    let out = d
        .docker_ok(&["exec", "bx", "sh", "-c", "echo $$; hostname"])
        .stdout_str();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "exec output: {out:?}");
    let pid: u32 = lines[0]
        .parse()
        .unwrap_or_else(|e| panic!("exec pid {:?}: {e}", lines[0]));
    assert_ne!(pid, 1, "exec'd shell is not the container's pid 1");
    assert_eq!(lines[1], &id[..12], "hostname is the short container id");
    let out = d.docker_ok(&["exec", "-e", "FOO=bar", "bx", "sh", "-c", "echo $FOO"]);
    assert_eq!(out.stdout_str(), "bar\n");
    let out = d.under_pty("docker exec -it bx tty");
    d.assert_ok(&out);
    assert!(
        out.stdout_str().contains("/dev/pts/"),
        "stdout: {:?}",
        out.stdout_str()
    );
    assert_eq!(d.inspect("bx", "{{.HostConfig.Runtime}}"), RUNTIME);
    let top = d.docker_ok(&["top", "bx"]).stdout_str();
    assert!(top.contains("sleep 1000"), "docker top: {top}");

    // dockerd's shim must drive our binary; its state root is where
    // berth-runc keeps the container (checked empty at the end).
    let state_root = d.state_root(&id);
    assert!(
        state_root.join(&id).is_dir(),
        "berth-runc state dir {} for the running container",
        state_root.join(&id).display()
    );

    // 4. Pause and unpause.
    d.docker_ok(&["pause", "bx"]);
    assert_eq!(d.inspect("bx", "{{.State.Status}}"), "paused");
    d.docker_ok(&["unpause", "bx"]);
    assert_eq!(d.inspect("bx", "{{.State.Status}}"), "running");

    // 5. Stop (sleep as pid 1 ignores TERM: 137; 143 if it did not), start
    // again, kill, rm.
    d.docker_ok(&["stop", "-t", "1", "bx"]);
    assert_eq!(d.inspect("bx", "{{.State.Status}}"), "exited");
    let code = d.inspect("bx", "{{.State.ExitCode}}");
    assert!(
        code == "137" || code == "143",
        "exit code after stop: {code}"
    );
    d.docker_ok(&["start", "bx"]);
    assert_eq!(d.inspect("bx", "{{.State.Status}}"), "running");
    assert_eq!(
        d.docker_ok(&["exec", "bx", "echo", "again"]).stdout_str(),
        "again\n"
    );
    d.docker_ok(&["kill", "bx"]);
    assert_eq!(d.docker_ok(&["wait", "bx"]).stdout_str().trim(), "137");
    assert_eq!(d.inspect("bx", "{{.State.Status}}"), "exited");
    assert_eq!(d.inspect("bx", "{{.State.ExitCode}}"), "137");
    d.docker_ok(&["rm", "bx"]);

    // 6. rm -f of a running container.
    let y = d.run_detached("by");
    d.docker_ok(&["rm", "-f", "by"]);
    let names = d
        .docker_ok(&["ps", "-a", "--format", "{{.Names}}"])
        .stdout_str();
    assert!(
        !names.lines().any(|n| n == "by"),
        "docker ps -a after rm -f: {names}"
    );
    assert!(
        !state_root.join(&y).exists(),
        "berth-runc state of {y} after rm -f"
    );

    // 7. Resource limits reach the container's cgroups.
    let (mem, pids) = if Path::new("/sys/fs/cgroup/memory").is_dir() {
        (
            "/sys/fs/cgroup/memory/memory.limit_in_bytes",
            "/sys/fs/cgroup/pids/pids.max",
        )
    } else {
        ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/pids.max")
    };
    let out = d.run_rm(
        &["--memory", "64m", "--pids-limit", "20"],
        &["cat", mem, pids],
    );
    d.assert_ok(&out);
    assert_eq!(out.stdout_str(), "67108864\n20\n");

    // 8. Nothing is left once every container is gone: no container, no
    // berth-runc state, no container cgroup.
    let left = d.docker_ok(&["ps", "-aq"]).stdout_str();
    assert_eq!(left.trim(), "", "containers left");
    d.assert_eventually_empty(&state_root);
    for id in d.container_ids() {
        let dirs = container_cgroups(&id);
        assert!(
            dirs.is_empty(),
            "cgroups of removed container {id} remain: {dirs:?}"
        );
    }

    eprintln!("dockerd end-to-end test took {:.1?}", started.elapsed());
}

/// A private dockerd with everything under one short tempdir; taken down on drop.
struct Dockerd {
    dir: TempDir,
    child: Child,
    host: String,
    /// Parent `docker` cgroup dirs that existed before the daemon started.
    cgroup_parents_before: BTreeSet<PathBuf>,
    next_cid: AtomicUsize,
}

impl Dockerd {
    fn start() -> Dockerd {
        // Short: containerd's sockets live under the exec root (108-byte limit).
        let dir = tempfile::Builder::new()
            .prefix("bd")
            .tempdir_in("/tmp")
            .expect("create dockerd tempdir under /tmp");
        let d = dir.path();
        fs::create_dir(d.join("cids")).expect("create cidfile dir");
        let config = serde_json::json!({
            "runtimes": { RUNTIME: { "path": env!("CARGO_BIN_EXE_berth-runc") } }
        });
        fs::write(d.join("daemon.json"), config.to_string()).expect("write daemon.json");
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
            .arg("--config-file")
            .arg(d.join("daemon.json"))
            .args([
                "--bridge",
                "none",
                "--iptables=false",
                "--ip-masq=false",
                "--ip-forward=false",
            ])
            .args(["--storage-driver", "vfs", "--log-level", "debug"])
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
            next_cid: AtomicUsize::new(0),
        };
        daemon.wait_ready();
        daemon
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("dockerd exited early ({status})\n{}", self.log_tail(40));
            }
            let mut cmd = self.cmd(["version"]);
            if let Ok(out) = run_bounded(&mut cmd, Duration::from_secs(5)) {
                if out.status.success() {
                    return;
                }
            }
            if Instant::now() > deadline {
                panic!(
                    "dockerd did not answer `docker version` on {} within {START_TIMEOUT:?}\n{}",
                    self.host,
                    self.log_tail(40)
                );
            }
            thread::sleep(Duration::from_millis(200));
        }
    }

    /// The last `n` lines of dockerd's log (containerd's is in it too).
    fn log_tail(&self, n: usize) -> String {
        let text = fs::read_to_string(self.path().join("dockerd.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let tail = lines[lines.len().saturating_sub(n)..].join("\n");
        format!("--- last {n} lines of dockerd.log ---\n{tail}")
    }

    /// `docker ARGS...` against this daemon, stdin from /dev/null.
    fn cmd<I, S>(&self, args: I) -> Command
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

    fn docker(&self, args: &[&str]) -> Output {
        let mut cmd = self.cmd(args);
        run_bounded(&mut cmd, CMD_TIMEOUT).unwrap_or_else(|e| panic!("{e}\n{}", self.log_tail(30)))
    }

    fn docker_ok(&self, args: &[&str]) -> Output {
        let out = self.docker(args);
        assert!(
            out.status.success(),
            "docker {}\n{}",
            args.join(" "),
            self.explain(&out)
        );
        out
    }

    fn assert_ok(&self, out: &Output) {
        assert!(out.status.success(), "{}", self.explain(out));
    }

    /// Exit status, both streams and the daemon's log tail, for failure messages.
    fn explain(&self, out: &Output) -> String {
        format!(
            "status: {}\nstdout: {}\nstderr: {}\n{}",
            out.status,
            out.stdout_str(),
            out.stderr_str(),
            self.log_tail(30)
        )
    }

    /// `script -qec SHELL_CMD /dev/null`: runs it under a fresh pty.
    fn under_pty(&self, shell_cmd: &str) -> Output {
        let mut cmd = Command::new("script");
        cmd.env("DOCKER_HOST", &self.host)
            .env("SHELL", "/bin/sh")
            .args(["-qec", shell_cmd, "/dev/null"])
            .stdin(Stdio::null());
        run_bounded(&mut cmd, CMD_TIMEOUT).unwrap_or_else(|e| panic!("{e}\n{}", self.log_tail(30)))
    }

    /// `--cidfile=PATH`: every container the test creates records its id,
    /// so the guard can find its cgroups even after a failed removal.
    fn cidfile(&self) -> String {
        let n = self.next_cid.fetch_add(1, Ordering::Relaxed);
        format!(
            "--cidfile={}",
            self.path().join("cids").join(n.to_string()).display()
        )
    }

    /// Ids of every container the test created.
    fn container_ids(&self) -> BTreeSet<String> {
        let mut ids = BTreeSet::new();
        if let Ok(entries) = fs::read_dir(self.path().join("cids")) {
            for e in entries.flatten() {
                if let Ok(id) = fs::read_to_string(e.path()) {
                    if is_container_id(id.trim()) {
                        ids.insert(id.trim().to_string());
                    }
                }
            }
        }
        if let Ok(entries) = fs::read_dir(self.path().join("data/containers")) {
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if is_container_id(&name) {
                    ids.insert(name);
                }
            }
        }
        ids
    }

    /// `docker run --rm --runtime berth OPTS... bb:test CMD...`.
    fn run_rm(&self, opts: &[&str], cmd: &[&str]) -> Output {
        let cid = self.cidfile();
        let mut args = vec!["run", cid.as_str(), "--rm", "--runtime", RUNTIME];
        args.extend_from_slice(opts);
        args.push(IMAGE);
        args.extend_from_slice(cmd);
        self.docker(&args)
    }

    /// `docker run -d --name NAME --runtime berth bb:test sleep 1000`; returns the id.
    fn run_detached(&self, name: &str) -> String {
        let out = self.docker_ok(&[
            "run",
            "-d",
            &self.cidfile(),
            "--name",
            name,
            "--runtime",
            RUNTIME,
            IMAGE,
            "sleep",
            "1000",
        ]);
        let id = out.stdout_str().trim().to_string();
        assert!(
            is_container_id(&id),
            "container id from docker run -d: {id:?}"
        );
        assert_eq!(self.inspect(name, "{{.State.Status}}"), "running");
        id
    }

    fn inspect(&self, name: &str, format: &str) -> String {
        self.docker_ok(&["inspect", "-f", format, name])
            .stdout_str()
            .trim()
            .to_string()
    }

    /// `tar -C ROOTFS -c . | docker import - bb:test`.
    fn import_busybox(&self) {
        let rootfs = support::busybox_rootfs();
        let mut tar = Command::new("tar")
            .arg("-C")
            .arg(rootfs)
            .args(["-c", "."])
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn tar");
        let tar_out = tar.stdout.take().expect("tar stdout");
        let mut import = self.cmd(["import", "-", IMAGE]);
        import.stdin(Stdio::from(tar_out));
        let out = run_bounded(&mut import, CMD_TIMEOUT).unwrap_or_else(|e| panic!("{e}"));
        let status = tar.wait().expect("wait for tar");
        assert!(
            status.success(),
            "tar -C {} -c .: {status}",
            rootfs.display()
        );
        assert!(
            out.status.success(),
            "docker import - {IMAGE}\n{}",
            self.explain(&out)
        );
    }

    /// The berth-runc `--root` the shim uses for container `id`, read from
    /// the options containerd gave the shim (dockerd 20.10 names it
    /// `EXEC_ROOT/runtime-runc/moby` whatever the runtime); also checks the
    /// shim runs our binary.
    fn state_root(&self, id: &str) -> PathBuf {
        let exec = self.path().join("exec");
        let options = exec
            .join("containerd/daemon/io.containerd.runtime.v2.task/moby")
            .join(id)
            .join("options.json");
        if let Ok(text) = fs::read_to_string(&options) {
            let v: serde_json::Value = serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("parse {}: {e}", options.display()));
            assert_eq!(
                v["binary_name"].as_str(),
                Some(env!("CARGO_BIN_EXE_berth-runc")),
                "shim runtime binary in {}",
                options.display()
            );
            if let Some(root) = v["root"].as_str() {
                return Path::new(root).join("moby");
            }
        }
        // Fallback: the EXEC_ROOT/runtime-*/moby that holds the container.
        for e in fs::read_dir(&exec).into_iter().flatten().flatten() {
            let candidate = e.path().join("moby");
            if candidate.join(id).is_dir() {
                return candidate;
            }
        }
        panic!(
            "no berth-runc state root under {} holds {id}",
            exec.display()
        );
    }

    fn assert_eventually_empty(&self, dir: &Path) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let entries: Vec<String> = fs::read_dir(dir)
                .map(|r| {
                    r.flatten()
                        .map(|e| e.file_name().to_string_lossy().into_owned())
                        .collect()
                })
                .unwrap_or_default();
            if entries.is_empty() {
                return;
            }
            if Instant::now() > deadline {
                panic!(
                    "berth-runc state root {} not empty: {entries:?}",
                    dir.display()
                );
            }
            thread::sleep(Duration::from_millis(100));
        }
    }

    /// Takes everything down; never panics.
    fn shutdown(&mut self) {
        let d = self.path().to_path_buf();
        let ids = self.container_ids();

        // Containers first, while the daemon is up.
        if matches!(self.child.try_wait(), Ok(None)) {
            if let Ok(out) = run_bounded(&mut self.cmd(["ps", "-aq"]), Duration::from_secs(20)) {
                let running: Vec<String> = out
                    .stdout_str()
                    .split_whitespace()
                    .map(String::from)
                    .collect();
                if !running.is_empty() {
                    let mut rm = self.cmd(["rm", "-f"]);
                    rm.args(&running);
                    match run_bounded(&mut rm, Duration::from_secs(30)) {
                        Ok(out) if !out.status.success() => {
                            eprintln!("cleanup: docker rm -f: {}", out.stderr_str().trim())
                        }
                        Err(e) => eprintln!("cleanup: {e}"),
                        Ok(_) => {}
                    }
                }
            }
        }

        // The daemon: TERM, bounded wait, then KILL.
        let pid = Pid::from_raw(self.child.id() as i32);
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = kill(pid, Signal::SIGTERM);
            if wait_bounded(&mut self.child, Duration::from_secs(20)).is_none() {
                eprintln!("cleanup: dockerd did not exit on SIGTERM; killing it");
                let _ = kill(pid, Signal::SIGKILL);
                let _ = self.child.wait();
            }
        }

        // Containers the daemon failed to remove: force-delete through the
        // runtime, then kill whatever is left in their cgroups.
        for root in fs::read_dir(d.join("exec")).into_iter().flatten().flatten() {
            let root = root.path().join("moby");
            for e in fs::read_dir(&root).into_iter().flatten().flatten() {
                let id = e.file_name();
                let mut del = Command::new(env!("CARGO_BIN_EXE_berth-runc"));
                del.arg("--root").arg(&root).args([
                    OsStr::new("delete"),
                    OsStr::new("--force"),
                    &id,
                ]);
                if let Err(e) = run_bounded(&mut del, Duration::from_secs(20)) {
                    eprintln!("cleanup: {e}");
                }
            }
        }
        for id in &ids {
            kill_cgroups(id);
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

        // Mounts under the tempdir, deepest first.
        for _ in 0..3 {
            let mut mounts = mounts_under(&d);
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

        // Cgroups: the containers' own, then parents the daemon created.
        for id in &ids {
            for dir in container_cgroups(id) {
                let _ = fs::remove_dir(dir);
            }
        }
        for parent in cgroup_parents() {
            if !self.cgroup_parents_before.contains(&parent) {
                let _ = fs::remove_dir(&parent);
            }
        }
    }
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        self.shutdown();
        // TempDir's own drop removes the tree; say so if it cannot.
        if let Err(e) = fs::remove_dir_all(self.path()) {
            eprintln!("cleanup: remove {}: {e}", self.path().display());
        }
    }
}

/// Runs `cmd` (stdin as the caller set it) in its own process
/// group, capturing both streams; kills the group after `timeout`.
fn run_bounded(cmd: &mut Command, timeout: Duration) -> Result<Output, String> {
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

fn on_path(tool: &str) -> bool {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|dir| dir.join(tool).is_file()))
        .unwrap_or(false)
}

fn is_container_id(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The `docker` parent cgroups that exist now: `/sys/fs/cgroup/*/docker` on
/// v1 and hybrid hosts, `/sys/fs/cgroup/docker` on v2.
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

/// The cgroup dirs of container `id` that exist now.
fn container_cgroups(id: &str) -> Vec<PathBuf> {
    cgroup_parents()
        .into_iter()
        .map(|p| p.join(id))
        .filter(|p| p.is_dir())
        .collect()
}

/// Thaws container `id`'s cgroups and SIGKILLs every process in them.
fn kill_cgroups(id: &str) {
    for dir in container_cgroups(id) {
        let _ = fs::write(dir.join("freezer.state"), "THAWED");
        let _ = fs::write(dir.join("cgroup.freeze"), "0");
        let procs = fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
        for p in procs
            .split_whitespace()
            .filter_map(|p| p.parse::<i32>().ok())
        {
            let _ = kill(Pid::from_raw(p), Signal::SIGKILL);
        }
    }
}

/// Processes (other than this one) whose command line mentions `needle`.
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

/// Mount points in this mount namespace at or below `dir`.
fn mounts_under(dir: &Path) -> Vec<PathBuf> {
    let text = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    text.lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|m| PathBuf::from(unescape_mountinfo(m)))
        .filter(|m| m.starts_with(dir))
        .collect()
}

/// Undoes mountinfo's octal escapes (`\040` for a space and so on).
fn unescape_mountinfo(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}
