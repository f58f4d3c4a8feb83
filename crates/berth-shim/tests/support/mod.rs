//! Helpers for berth-shim's real-container tests: busybox bundles (the same as berth-runc's
//! test support, which cannot be included as is: it names berth-runc's own binary), the
//! berth-runc binary, and a fixture that cleans up shims and containers even when a test fails.
#![allow(dead_code)]

use std::fs;
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

use berth_shim::{Shim, ShimOpts};
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

/// `PREFIX-PID-N`: unique across tests and across concurrent test processes.
pub fn unique_id(prefix: &str) -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("{prefix}-{}-{n}", std::process::id())
}

/// `<target>/debug/berth-runc`, beside this test's `deps/` directory.
pub fn runc_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("test binary under target/debug/deps");
    let runc = dir.join("berth-runc");
    assert!(
        runc.is_file(),
        "{}: missing; build it first with `cargo build -p berth-runc` (same target dir)",
        runc.display()
    );
    runc
}

/// Skips (returns false) unless root.
pub fn root() -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    eprintln!("skipped: needs root");
    false
}

/// A container's bundle, runtime root and shim state dir. On drop: delete through the shim,
/// kill the shim, force-delete whatever is left under the runtime root, remove the dirs.
pub struct Fixture {
    pub id: String,
    pub bundle: Bundle,
    pub runtime_root: TempDir,
    pub state: TempDir,
}

impl Fixture {
    pub fn new(prefix: &str, args: &[&str]) -> Fixture {
        let mk = |p: &str| {
            tempfile::Builder::new()
                .prefix(p)
                .tempdir()
                .expect("create temp dir")
        };
        Fixture {
            id: unique_id(prefix),
            bundle: Bundle::busybox(args),
            runtime_root: mk("berth-shim-root-"),
            state: mk("berth-shim-state-"),
        }
    }

    pub fn state_dir(&self) -> &Path {
        self.state.path()
    }

    pub fn opts(&self) -> ShimOpts {
        let mut o = ShimOpts::new(
            self.id.clone(),
            self.bundle.path(),
            runc_binary(),
            self.runtime_root.path(),
            self.state.path(),
        );
        o.shim_binary = Some(PathBuf::from(env!("CARGO_BIN_EXE_berth-shim")));
        o
    }

    pub fn start(&self, opts: &ShimOpts) -> Shim {
        Shim::start(opts).unwrap_or_else(|e| panic!("start shim: {e}"))
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        if let Ok(shim) = Shim::connect(self.state.path()) {
            if let Err(e) = shim.delete(true) {
                eprintln!("cleanup: delete {}: {e}", self.id);
            }
        }
        if let Ok(text) = fs::read_to_string(self.state.path().join("shim.pid")) {
            if let Ok(pid) = text.trim().parse::<i32>() {
                if pid > 1 {
                    let _ = nix::sys::signal::kill(
                        nix::unistd::Pid::from_raw(pid),
                        nix::sys::signal::Signal::SIGKILL,
                    );
                }
            }
        }
        if let Ok(rd) = fs::read_dir(self.runtime_root.path()) {
            for e in rd.flatten() {
                let _ = Command::new(runc_binary())
                    .arg("--root")
                    .arg(self.runtime_root.path())
                    .args(["delete", "--force"])
                    .arg(e.file_name())
                    .output();
            }
        }
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
