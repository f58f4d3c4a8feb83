//! Helpers for berth-runc's real-container tests: busybox bundles, a berth-runc with its own state root that force-deletes what it leaves behind, unique container ids.
//!
//! A test reads like a story:
//!
//! ```ignore
//! let runc = Runc::new();
//! let bundle = Bundle::busybox(&["echo", "hello"]);
//! let out = runc.run(&bundle, &unique_id("echo"));
//! assert_eq!(out.assert_success().stdout_str(), "hello\n");
//! ```
//!
//! Nothing here depends on berth-runc's code: the default config.json is
//! written inline (the same document `runc spec` writes) and the root
//! filesystem is built from the host's static busybox.
#![allow(dead_code)]

use std::ffi::OsStr;
use std::fs;
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

use serde_json::{json, Value};
use tempfile::TempDir;

/// The host's static busybox (Debian package busybox-static).
pub const BUSYBOX: &str = "/usr/bin/busybox";

/// Bump when the rootfs layout below changes, so cached copies are rebuilt.
const ROOTFS_LAYOUT: u32 = 1;

/// An OCI bundle in a temporary directory, removed on drop.
pub struct Bundle {
    pub dir: TempDir,
}

impl Bundle {
    /// A bundle whose rootfs is busybox and whose config.json is the default
    /// `runc spec` with `process.args = args` and no terminal.
    pub fn busybox(args: &[&str]) -> Bundle {
        let dir = tempfile::Builder::new()
            .prefix("berth-bundle-")
            .tempdir()
            .expect("create bundle dir");
        let rootfs = dir.path().join("rootfs");
        let status = Command::new("cp")
            .arg("-a")
            .arg(busybox_rootfs())
            .arg(&rootfs)
            .status()
            .expect("run cp");
        assert!(status.success(), "cp -a rootfs to {}", rootfs.display());

        let mut spec = default_spec();
        spec["process"]["args"] = json!(args);
        spec["process"]["terminal"] = json!(false);
        let bundle = Bundle { dir };
        bundle.write_config(&spec);
        bundle
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn rootfs(&self) -> PathBuf {
        self.path().join("rootfs")
    }

    pub fn config_path(&self) -> PathBuf {
        self.path().join("config.json")
    }

    pub fn config(&self) -> Value {
        let path = self.config_path();
        let text =
            fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("parse {}: {e}", path.display()))
    }

    /// Edits config.json in place: `bundle.config_mut(|c| c["hostname"] = "box".into())`.
    pub fn config_mut(&self, f: impl FnOnce(&mut Value)) {
        let mut spec = self.config();
        f(&mut spec);
        self.write_config(&spec);
    }

    fn write_config(&self, spec: &Value) {
        let path = self.config_path();
        let text = serde_json::to_string_pretty(spec).expect("serialize config");
        fs::write(&path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    }
}

impl AsRef<Path> for Bundle {
    fn as_ref(&self) -> &Path {
        self.path()
    }
}

/// The berth-runc binary under test with its own `--root` state directory.
///
/// On drop it force-deletes every container still under that root, so a
/// failing test leaves no processes, cgroups or mounts behind.
pub struct Runc {
    root: TempDir,
}

impl Runc {
    pub fn new() -> Runc {
        let root = tempfile::Builder::new()
            .prefix("berth-runc-root-")
            .tempdir()
            .expect("create state root");
        Runc { root }
    }

    pub fn root(&self) -> &Path {
        self.root.path()
    }

    /// `berth-runc --root ROOT ARGS...`, stdin from /dev/null.
    pub fn cmd<I, S>(&self, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_berth-runc"));
        cmd.arg("--root").arg(self.root()).args(args);
        cmd.stdin(Stdio::null());
        cmd
    }

    /// Runs `ARGS` to completion and captures stdout and stderr through
    /// pipes. Only for commands whose container ends with them (`run`,
    /// `state`, `exec`): a container left running holds the pipes open and
    /// this would wait for it; use [`Runc::output_detached`] for those.
    pub fn output<I, S>(&self, args: I) -> Output
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut cmd = self.cmd(args);
        cmd.output()
            .unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"))
    }

    /// Runs `ARGS` with stdout and stderr sent to files, returns once
    /// berth-runc exits (not the container it leaves running) and reads
    /// back what was written so far (the container's output included).
    pub fn output_detached<I, S>(&self, args: I) -> Output
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let dir = tempfile::tempdir().expect("create output dir");
        let (out_path, err_path) = (dir.path().join("stdout"), dir.path().join("stderr"));
        let file = |p: &Path| {
            fs::File::create(p).unwrap_or_else(|e| panic!("create {}: {e}", p.display()))
        };
        let mut cmd = self.cmd(args);
        cmd.stdout(file(&out_path)).stderr(file(&err_path));
        let status = cmd
            .status()
            .unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
        Output {
            status,
            stdout: fs::read(&out_path).unwrap_or_default(),
            stderr: fs::read(&err_path).unwrap_or_default(),
        }
    }

    /// `berth-runc create --bundle BUNDLE ID`, returning once it is created.
    pub fn create(&self, bundle: impl AsRef<Path>, id: &str) -> Output {
        let bundle = bundle.as_ref();
        self.output_detached([
            OsStr::new("create"),
            OsStr::new("--bundle"),
            bundle.as_os_str(),
            OsStr::new(id),
        ])
    }

    /// `berth-runc run --bundle BUNDLE ID`: create, start, wait and delete.
    pub fn run(&self, bundle: impl AsRef<Path>, id: &str) -> Output {
        let bundle = bundle.as_ref();
        self.output([
            OsStr::new("run"),
            OsStr::new("--bundle"),
            bundle.as_os_str(),
            OsStr::new(id),
        ])
    }

    /// Ids of the containers under this root: what `list -q` reports plus
    /// every state directory, so a half-created container is found too.
    pub fn containers(&self) -> Vec<String> {
        let mut ids = Vec::new();
        if let Ok(out) = self.cmd(["list", "-q"]).output() {
            if out.status.success() {
                ids.extend(
                    String::from_utf8_lossy(&out.stdout)
                        .lines()
                        .map(str::trim)
                        .filter(|l| !l.is_empty())
                        .map(String::from),
                );
            }
        }
        if let Ok(entries) = fs::read_dir(self.root()) {
            for entry in entries.flatten() {
                if entry.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                    ids.push(entry.file_name().to_string_lossy().into_owned());
                }
            }
        }
        ids.sort();
        ids.dedup();
        ids
    }
}

impl Default for Runc {
    fn default() -> Self {
        Runc::new()
    }
}

impl Drop for Runc {
    fn drop(&mut self) {
        for id in self.containers() {
            let out = self.cmd(["delete", "--force", id.as_str()]).output();
            if let Ok(out) = out {
                if !out.status.success() {
                    eprintln!(
                        "cleanup: berth-runc delete --force {id}: {}",
                        String::from_utf8_lossy(&out.stderr).trim()
                    );
                }
            }
        }
    }
}

/// `PREFIX-PID-N`: unique across tests and across concurrent test processes.
pub fn unique_id(prefix: &str) -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("{prefix}-{}-{n}", std::process::id())
}

/// Readable assertions on a finished command.
pub trait OutputExt {
    fn stdout_str(&self) -> String;
    fn stderr_str(&self) -> String;
    /// Panics with the exit status and both streams unless it succeeded.
    fn assert_success(&self) -> &Self;
    /// Panics unless it failed; returns stderr.
    fn assert_failure(&self) -> String;
}

impl OutputExt for Output {
    fn stdout_str(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    fn stderr_str(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }

    fn assert_success(&self) -> &Self {
        assert!(
            self.status.success(),
            "expected success, got {}\nstdout: {}\nstderr: {}",
            self.status,
            self.stdout_str(),
            self.stderr_str()
        );
        self
    }

    fn assert_failure(&self) -> String {
        assert!(
            !self.status.success(),
            "expected failure, got success\nstdout: {}",
            self.stdout_str()
        );
        self.stderr_str()
    }
}

/// The config.json `runc spec` (1.1.5) writes.
pub fn default_spec() -> Value {
    let caps = json!(["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]);
    json!({
        "ociVersion": "1.0.2-dev",
        "process": {
            "terminal": true,
            "user": { "uid": 0, "gid": 0 },
            "args": ["sh"],
            "env": [
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "TERM=xterm"
            ],
            "cwd": "/",
            "capabilities": {
                "bounding": caps,
                "effective": caps,
                "permitted": caps,
                "ambient": caps
            },
            "rlimits": [{ "type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024 }],
            "noNewPrivileges": true
        },
        "root": { "path": "rootfs", "readonly": true },
        "hostname": "runc",
        "mounts": [
            { "destination": "/proc", "type": "proc", "source": "proc" },
            {
                "destination": "/dev", "type": "tmpfs", "source": "tmpfs",
                "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]
            },
            {
                "destination": "/dev/pts", "type": "devpts", "source": "devpts",
                "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]
            },
            {
                "destination": "/dev/shm", "type": "tmpfs", "source": "shm",
                "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]
            },
            {
                "destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
                "options": ["nosuid", "noexec", "nodev"]
            },
            {
                "destination": "/sys", "type": "sysfs", "source": "sysfs",
                "options": ["nosuid", "noexec", "nodev", "ro"]
            },
            {
                "destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
                "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]
            }
        ],
        "linux": {
            "resources": { "devices": [{ "allow": false, "access": "rwm" }] },
            "namespaces": [
                { "type": "pid" },
                { "type": "network" },
                { "type": "ipc" },
                { "type": "uts" },
                { "type": "mount" }
            ],
            "maskedPaths": [
                "/proc/acpi",
                "/proc/asound",
                "/proc/kcore",
                "/proc/keys",
                "/proc/latency_stats",
                "/proc/timer_list",
                "/proc/timer_stats",
                "/proc/sched_debug",
                "/sys/firmware",
                "/proc/scsi"
            ],
            "readonlyPaths": [
                "/proc/bus",
                "/proc/fs",
                "/proc/irq",
                "/proc/sys",
                "/proc/sysrq-trigger"
            ]
        }
    })
}

/// A pristine busybox rootfs, built once and shared (read-only by
/// convention: bundles get `cp -a` copies).
///
/// It lives in cargo's per-target test scratch dir, keyed by the host
/// binary's size and mtime, so it survives across test runs and processes;
/// it is built beside its final name and renamed in, so concurrent test
/// processes never see half of one.
pub fn busybox_rootfs() -> &'static Path {
    static ROOTFS: OnceLock<PathBuf> = OnceLock::new();
    ROOTFS.get_or_init(|| {
        let meta = fs::metadata(BUSYBOX)
            .unwrap_or_else(|e| panic!("{BUSYBOX}: {e}; install busybox-static (scripts/deps.sh)"));
        let cache = Path::new(env!("CARGO_TARGET_TMPDIR"));
        let name = format!(
            "busybox-rootfs-v{ROOTFS_LAYOUT}-{}-{}",
            meta.size(),
            meta.mtime()
        );
        let done = cache.join(&name);
        if done.is_dir() {
            return done;
        }
        fs::create_dir_all(cache).unwrap_or_else(|e| panic!("create {}: {e}", cache.display()));
        let staging = tempfile::Builder::new()
            .prefix(&format!("{name}.tmp-"))
            .tempdir_in(cache)
            .expect("create rootfs staging dir");
        let rootfs = staging.path().join("rootfs");
        build_busybox_rootfs(&rootfs);
        // Losing a race to another process is fine: its copy is identical.
        if fs::rename(&rootfs, &done).is_err() && !done.is_dir() {
            panic!("rename {} to {}", rootfs.display(), done.display());
        }
        done
    })
}

/// Builds a busybox root filesystem at `rootfs` (which must not exist): the
/// same layout as scripts/busybox-rootfs.sh.
pub fn build_busybox_rootfs(rootfs: &Path) {
    let mode = |path: &Path, mode: u32| {
        fs::set_permissions(path, fs::Permissions::from_mode(mode))
            .unwrap_or_else(|e| panic!("chmod {}: {e}", path.display()));
    };
    let mkdir = |rel: &str, m: u32| {
        let path = rootfs.join(rel);
        fs::create_dir_all(&path).unwrap_or_else(|e| panic!("mkdir {}: {e}", path.display()));
        mode(&path, m);
    };
    fs::create_dir(rootfs).unwrap_or_else(|e| panic!("mkdir {}: {e}", rootfs.display()));
    mode(rootfs, 0o755);
    for dir in ["bin", "dev", "etc", "proc", "sys", "run", "home", "var"] {
        mkdir(dir, 0o755);
    }
    mkdir("tmp", 0o1777);
    mkdir("var/tmp", 0o1777);
    mkdir("root", 0o700);

    let busybox = rootfs.join("bin/busybox");
    fs::copy(BUSYBOX, &busybox).unwrap_or_else(|e| panic!("copy {BUSYBOX}: {e}"));
    mode(&busybox, 0o755);

    let list = Command::new(BUSYBOX)
        .arg("--list")
        .output()
        .unwrap_or_else(|e| panic!("{BUSYBOX} --list: {e}"));
    assert!(list.status.success(), "{BUSYBOX} --list: {}", list.status);
    for applet in String::from_utf8_lossy(&list.stdout).lines() {
        // `busybox` is in the list: linking it would replace the binary.
        if applet.is_empty() || applet == "busybox" || applet.contains('/') {
            continue;
        }
        let link = rootfs.join("bin").join(applet);
        symlink("busybox", &link).unwrap_or_else(|e| panic!("symlink {}: {e}", link.display()));
    }

    let files = [
        (
            "etc/passwd",
            "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
        ),
        ("etc/group", "root:x:0:\nnobody:x:65534:\n"),
        ("etc/hostname", "berth\n"),
        (
            "etc/hosts",
            "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n",
        ),
        ("etc/resolv.conf", ""),
    ];
    for (rel, text) in files {
        let path = rootfs.join(rel);
        fs::write(&path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        mode(&path, 0o644);
    }
}
