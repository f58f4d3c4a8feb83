//! The container's root filesystem: mounts from config.json, /dev, pivot_root, masked and
//! read-only paths. Runs inside the container's new mount namespace, before exec.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use oci_spec::runtime::{LinuxDevice, LinuxDeviceType, Mount, Spec};

use crate::error::{sys, Result, RuntimeError};
use crate::sys::{ensure_file_in_root, fd_path, mkdir_all_in_root, open_in_root};

/// Mount flags, propagation flags and leftover data parsed from OCI mount options.
#[derive(Debug, PartialEq)]
pub struct MountOptions {
    pub flags: MsFlags,
    pub clear: MsFlags,
    pub propagation: Vec<MsFlags>,
    pub data: Vec<String>,
    pub bind: bool,
}

/// Parses OCI/fstab-style mount options; unknown words go to the filesystem as data.
pub fn parse_options(opts: &[String]) -> Result<MountOptions> {
    let mut o = MountOptions {
        flags: MsFlags::empty(),
        clear: MsFlags::empty(),
        propagation: vec![],
        data: vec![],
        bind: false,
    };
    for opt in opts {
        let (set, clear): (MsFlags, MsFlags) = match opt.as_str() {
            "defaults" => (MsFlags::empty(), MsFlags::empty()),
            "ro" => (MsFlags::MS_RDONLY, MsFlags::empty()),
            "rw" => (MsFlags::empty(), MsFlags::MS_RDONLY),
            "suid" => (MsFlags::empty(), MsFlags::MS_NOSUID),
            "nosuid" => (MsFlags::MS_NOSUID, MsFlags::empty()),
            "dev" => (MsFlags::empty(), MsFlags::MS_NODEV),
            "nodev" => (MsFlags::MS_NODEV, MsFlags::empty()),
            "exec" => (MsFlags::empty(), MsFlags::MS_NOEXEC),
            "noexec" => (MsFlags::MS_NOEXEC, MsFlags::empty()),
            "sync" => (MsFlags::MS_SYNCHRONOUS, MsFlags::empty()),
            "async" => (MsFlags::empty(), MsFlags::MS_SYNCHRONOUS),
            "dirsync" => (MsFlags::MS_DIRSYNC, MsFlags::empty()),
            "remount" => (MsFlags::MS_REMOUNT, MsFlags::empty()),
            "mand" => (MsFlags::MS_MANDLOCK, MsFlags::empty()),
            "nomand" => (MsFlags::empty(), MsFlags::MS_MANDLOCK),
            "atime" => (MsFlags::empty(), MsFlags::MS_NOATIME),
            "noatime" => (MsFlags::MS_NOATIME, MsFlags::empty()),
            "diratime" => (MsFlags::empty(), MsFlags::MS_NODIRATIME),
            "nodiratime" => (MsFlags::MS_NODIRATIME, MsFlags::empty()),
            "relatime" => (MsFlags::MS_RELATIME, MsFlags::empty()),
            "norelatime" => (MsFlags::empty(), MsFlags::MS_RELATIME),
            "strictatime" => (MsFlags::MS_STRICTATIME, MsFlags::empty()),
            "nostrictatime" => (MsFlags::empty(), MsFlags::MS_STRICTATIME),
            "bind" => {
                o.bind = true;
                (MsFlags::MS_BIND, MsFlags::empty())
            }
            "rbind" => {
                o.bind = true;
                (MsFlags::MS_BIND | MsFlags::MS_REC, MsFlags::empty())
            }
            "private" | "rprivate" | "shared" | "rshared" | "slave" | "rslave" | "unbindable"
            | "runbindable" => {
                let rec = opt.starts_with('r') && opt != "rw";
                let base = match opt.trim_start_matches('r') {
                    "private" => MsFlags::MS_PRIVATE,
                    "shared" => MsFlags::MS_SHARED,
                    "slave" => MsFlags::MS_SLAVE,
                    _ => MsFlags::MS_UNBINDABLE,
                };
                let f = if rec && opt != "unbindable" {
                    base | MsFlags::MS_REC
                } else {
                    base
                };
                o.propagation.push(f);
                continue;
            }
            "idmap" | "ridmap" => {
                return Err(RuntimeError::Field {
                    field: "mounts.options".into(),
                    msg: format!("{opt} mounts are not supported"),
                })
            }
            _ => {
                o.data.push(opt.clone());
                continue;
            }
        };
        o.flags |= set;
        o.flags &= !clear;
        o.clear |= clear;
    }
    Ok(o)
}

/// Everything the rootfs setup needs besides the spec.
pub struct RootfsContext<'a> {
    pub spec: &'a Spec,
    pub bundle: &'a Path,
    pub rootfs: &'a Path,
    pub in_userns: bool,
    pub cgroupns: bool,
    pub cgroup_paths: &'a std::collections::BTreeMap<String, PathBuf>,
    pub cgroup_mode: berth_cgroups::CgroupMode,
}

/// Step one, before hooks: propagation, the rootfs bind, every configured mount and /dev.
/// Returns an fd of the new root.
pub fn prepare(ctx: &RootfsContext<'_>) -> Result<OwnedFd> {
    let linux = ctx.spec.linux().as_ref();
    let prop = match linux.and_then(|l| l.rootfs_propagation().as_deref()) {
        None | Some("") => MsFlags::MS_SLAVE | MsFlags::MS_REC,
        Some(p) => {
            let o = parse_options(&[p.to_string()])?;
            o.propagation
                .first()
                .copied()
                .ok_or_else(|| RuntimeError::Field {
                    field: "linux.rootfsPropagation".into(),
                    msg: format!("unknown propagation {p:?}"),
                })?
        }
    };
    // Keep our mounts from leaking to the host (and vice versa unless shared was asked for).
    let first = if prop.contains(MsFlags::MS_SHARED) {
        MsFlags::MS_SLAVE | MsFlags::MS_REC
    } else {
        prop
    };
    mount(None::<&str>, "/", None::<&str>, first, None::<&str>).map_err(sys("make / private"))?;
    mount(
        Some(ctx.rootfs),
        ctx.rootfs,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    )
    .map_err(sys(format!("bind rootfs {}", ctx.rootfs.display())))?;
    let root = nix::fcntl::open(
        ctx.rootfs,
        nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_DIRECTORY | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(sys(format!("open rootfs {}", ctx.rootfs.display())))?;
    // SAFETY: fresh fd from open().
    let root = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(root) };

    let mut dev_is_tmpfs = false;
    let mut dev_bound = false;
    for (i, m) in ctx.spec.mounts().iter().flatten().enumerate() {
        if m.destination() == Path::new("/dev") {
            if m.typ().as_deref() == Some("bind")
                || m.options()
                    .iter()
                    .flatten()
                    .any(|o| o == "bind" || o == "rbind")
            {
                dev_bound = true;
            } else {
                dev_is_tmpfs = true;
            }
        }
        mount_one(ctx, &root, m).map_err(|e| match e {
            RuntimeError::Sys(msg, err) => RuntimeError::Sys(
                format!("mounts[{i}] ({}): {msg}", m.destination().display()),
                err,
            ),
            other => other,
        })?;
    }
    if !dev_bound {
        create_devices(ctx, &root, dev_is_tmpfs)?;
    }
    // The working directory must exist inside the root.
    if let Some(p) = ctx.spec.process() {
        mkdir_all_in_root(root.as_fd(), p.cwd(), 0o755)
            .map_err(|e| RuntimeError::Init(format!("create cwd {}: {e}", p.cwd().display())))?;
    }
    Ok(root)
}

fn mount_one(ctx: &RootfsContext<'_>, root: &OwnedFd, m: &Mount) -> Result<()> {
    let opts = parse_options(m.options().as_deref().unwrap_or_default())?;
    let typ = m.typ().clone().unwrap_or_default();
    let dest = m.destination();
    let is_bind = opts.bind || typ == "bind";
    if typ == "cgroup" || typ == "cgroup2" {
        return mount_cgroup(ctx, root, m, &opts);
    }
    let data = opts.data.join(",");
    if is_bind {
        let mut src = m.source().clone().unwrap_or_default();
        if !src.is_absolute() {
            src = ctx.bundle.join(src);
        }
        let meta = std::fs::metadata(&src)
            .map_err(|e| RuntimeError::Init(format!("bind source {}: {e}", src.display())))?;
        let target = if meta.is_dir() {
            mkdir_all_in_root(root.as_fd(), dest, 0o755)
        } else {
            ensure_file_in_root(root.as_fd(), dest)
        }
        .map_err(|e| RuntimeError::Init(format!("mount destination {}: {e}", dest.display())))?;
        let tp = fd_path(&target);
        let bflags = MsFlags::MS_BIND | (opts.flags & MsFlags::MS_REC);
        mount(Some(&src), tp.as_str(), None::<&str>, bflags, None::<&str>)
            .map_err(sys(format!("bind {} on {}", src.display(), dest.display())))?;
        let extra = opts.flags & !(MsFlags::MS_BIND | MsFlags::MS_REC | MsFlags::MS_REMOUNT);
        if !extra.is_empty() {
            // Reopen the mount we just made and remount it with the flags, keeping locked ones.
            let target = open_in_root(root.as_fd(), dest, libc::O_PATH, 0)
                .map_err(|e| RuntimeError::Init(format!("reopen {}: {e}", dest.display())))?;
            let tp = fd_path(&target);
            let locked = locked_flags(&tp);
            mount(
                None::<&str>,
                tp.as_str(),
                None::<&str>,
                extra
                    | locked
                    | MsFlags::MS_BIND
                    | MsFlags::MS_REMOUNT
                    | (opts.flags & MsFlags::MS_REC),
                None::<&str>,
            )
            .map_err(sys(format!("remount {} with options", dest.display())))?;
        }
        return apply_propagation(root, dest, &opts);
    }
    let target = mkdir_all_in_root(root.as_fd(), dest, 0o755)
        .map_err(|e| RuntimeError::Init(format!("mount destination {}: {e}", dest.display())))?;
    let tp = fd_path(&target);
    let src = m.source().clone().unwrap_or_else(|| PathBuf::from(&typ));
    let flags = opts.flags & !MsFlags::MS_REMOUNT;
    let res = mount(
        Some(&src),
        tp.as_str(),
        Some(typ.as_str()),
        flags,
        if data.is_empty() {
            None
        } else {
            Some(data.as_str())
        },
    );
    match res {
        Ok(()) => {}
        // In a user namespace devpts can only use mapped gids; sysfs needs a netns we own.
        Err(nix::Error::EINVAL) if typ == "devpts" && data.contains("gid=") => {
            let d: Vec<&str> = opts
                .data
                .iter()
                .map(|s| s.as_str())
                .filter(|s| !s.starts_with("gid="))
                .collect();
            let d = d.join(",");
            mount(
                Some(&src),
                tp.as_str(),
                Some("devpts"),
                flags,
                Some(d.as_str()),
            )
            .map_err(sys(format!("mount devpts on {}", dest.display())))?;
        }
        Err(nix::Error::EPERM) if ctx.in_userns && (typ == "sysfs" || typ == "mqueue") => {
            let host = if typ == "sysfs" {
                "/sys"
            } else {
                "/dev/mqueue"
            };
            mount(
                Some(host),
                tp.as_str(),
                None::<&str>,
                MsFlags::MS_BIND | MsFlags::MS_REC,
                None::<&str>,
            )
            .map_err(sys(format!("bind {host} on {}", dest.display())))?;
        }
        Err(e) => {
            return Err(RuntimeError::Sys(
                format!("mount {typ} on {}", dest.display()),
                e,
            ))
        }
    }
    apply_propagation(root, dest, &opts)
}

fn apply_propagation(root: &OwnedFd, dest: &Path, opts: &MountOptions) -> Result<()> {
    for p in &opts.propagation {
        let target = open_in_root(root.as_fd(), dest, libc::O_PATH, 0)
            .map_err(|e| RuntimeError::Init(format!("reopen {}: {e}", dest.display())))?;
        mount(
            None::<&str>,
            fd_path(&target).as_str(),
            None::<&str>,
            *p,
            None::<&str>,
        )
        .map_err(sys(format!("set propagation on {}", dest.display())))?;
    }
    Ok(())
}

/// Flags of an existing mount that a user namespace may not clear (they are "locked").
fn locked_flags(path: &str) -> MsFlags {
    let mut out = MsFlags::empty();
    if let Ok(st) = nix::sys::statvfs::statvfs(path) {
        use nix::sys::statvfs::FsFlags;
        let f = st.flags();
        for (a, b) in [
            (FsFlags::ST_NOSUID, MsFlags::MS_NOSUID),
            (FsFlags::ST_NODEV, MsFlags::MS_NODEV),
            (FsFlags::ST_NOEXEC, MsFlags::MS_NOEXEC),
            (FsFlags::ST_NOATIME, MsFlags::MS_NOATIME),
            (FsFlags::ST_NODIRATIME, MsFlags::MS_NODIRATIME),
            (FsFlags::ST_RELATIME, MsFlags::MS_RELATIME),
        ] {
            if f.contains(a) {
                out |= b;
            }
        }
    }
    out
}

/// A "cgroup" mount: the container's own cgroups, read-only by default.
fn mount_cgroup(
    ctx: &RootfsContext<'_>,
    root: &OwnedFd,
    m: &Mount,
    opts: &MountOptions,
) -> Result<()> {
    let dest = m.destination();
    let base = opts.flags
        & (MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC | MsFlags::MS_RELATIME);
    let ro = opts.flags & MsFlags::MS_RDONLY;
    let target = mkdir_all_in_root(root.as_fd(), dest, 0o755)
        .map_err(|e| RuntimeError::Init(format!("mount destination {}: {e}", dest.display())))?;
    if ctx.cgroup_mode == berth_cgroups::CgroupMode::V2 {
        let tp = fd_path(&target);
        if ctx.cgroupns {
            mount(
                Some("cgroup2"),
                tp.as_str(),
                Some("cgroup2"),
                base | ro,
                None::<&str>,
            )
            .map_err(sys(format!("mount cgroup2 on {}", dest.display())))?;
        } else if let Some(p) = ctx.cgroup_paths.values().next() {
            mount(
                Some(p),
                tp.as_str(),
                None::<&str>,
                MsFlags::MS_BIND | MsFlags::MS_REC,
                None::<&str>,
            )
            .map_err(sys(format!("bind cgroup on {}", dest.display())))?;
            if !ro.is_empty() {
                let t = open_in_root(root.as_fd(), dest, libc::O_PATH, 0)
                    .map_err(|e| RuntimeError::Init(format!("reopen {}: {e}", dest.display())))?;
                let tp = fd_path(&t);
                mount(
                    None::<&str>,
                    tp.as_str(),
                    None::<&str>,
                    MsFlags::MS_BIND | MsFlags::MS_REMOUNT | base | ro | locked_flags(&tp),
                    None::<&str>,
                )
                .map_err(sys(format!("remount cgroup {} ro", dest.display())))?;
            }
        }
        return Ok(());
    }
    // v1 and hybrid: a tmpfs with one directory per hierarchy.
    mount(
        Some("tmpfs"),
        fd_path(&target).as_str(),
        Some("tmpfs"),
        base,
        Some("mode=755"),
    )
    .map_err(sys(format!("mount tmpfs on {}", dest.display())))?;
    for (name, hostdir) in ctx.cgroup_paths {
        let sub = if name == "unified" || name.is_empty() {
            "unified".to_string()
        } else {
            name.trim_start_matches("name=").to_string()
        };
        let d = dest.join(&sub);
        let t = mkdir_all_in_root(root.as_fd(), &d, 0o755)
            .map_err(|e| RuntimeError::Init(format!("mount destination {}: {e}", d.display())))?;
        let tp = fd_path(&t);
        let r = if ctx.cgroupns {
            if sub == "unified" {
                mount(
                    Some("cgroup2"),
                    tp.as_str(),
                    Some("cgroup2"),
                    base | ro,
                    None::<&str>,
                )
            } else {
                let o = if name.starts_with("name=") {
                    format!("none,{name}")
                } else {
                    name.clone()
                };
                mount(
                    Some("cgroup"),
                    tp.as_str(),
                    Some("cgroup"),
                    base | ro,
                    Some(o.as_str()),
                )
            }
        } else {
            mount(
                Some(hostdir),
                tp.as_str(),
                None::<&str>,
                MsFlags::MS_BIND | MsFlags::MS_REC,
                None::<&str>,
            )
            .and_then(|_| {
                // Reopen: the old fd points under the new mount, not at it.
                let t = open_in_root(root.as_fd(), &d, libc::O_PATH, 0)
                    .map_err(|_| nix::Error::ENOENT)?;
                let tp = fd_path(&t);
                mount(
                    None::<&str>,
                    tp.as_str(),
                    None::<&str>,
                    MsFlags::MS_BIND | MsFlags::MS_REMOUNT | base | ro | locked_flags(&tp),
                    None::<&str>,
                )
            })
        };
        r.map_err(sys(format!("mount cgroup {name} on {}", d.display())))?;
    }
    if !ro.is_empty() {
        let target = open_in_root(root.as_fd(), dest, libc::O_PATH, 0)
            .map_err(|e| RuntimeError::Init(format!("reopen {}: {e}", dest.display())))?;
        mount(
            None::<&str>,
            fd_path(&target).as_str(),
            None::<&str>,
            MsFlags::MS_REMOUNT | base | ro,
            Some("mode=755"),
        )
        .map_err(sys(format!("remount {} ro", dest.display())))?;
    }
    Ok(())
}

struct Dev {
    path: PathBuf,
    kind: libc::mode_t,
    major: u64,
    minor: u64,
    mode: u32,
    uid: u32,
    gid: u32,
}

fn default_devices() -> Vec<Dev> {
    [
        ("null", 1, 3),
        ("zero", 1, 5),
        ("full", 1, 7),
        ("random", 1, 8),
        ("urandom", 1, 9),
        ("tty", 5, 0),
    ]
    .iter()
    .map(|(n, ma, mi)| Dev {
        path: PathBuf::from("/dev").join(n),
        kind: libc::S_IFCHR,
        major: *ma,
        minor: *mi,
        mode: 0o666,
        uid: 0,
        gid: 0,
    })
    .collect()
}

fn spec_device(d: &LinuxDevice) -> Result<Dev> {
    let kind = match d.typ() {
        LinuxDeviceType::C | LinuxDeviceType::U => libc::S_IFCHR,
        LinuxDeviceType::B => libc::S_IFBLK,
        LinuxDeviceType::P => libc::S_IFIFO,
        LinuxDeviceType::A => {
            return Err(RuntimeError::Field {
                field: "linux.devices".into(),
                msg: format!("{}: type a is not a device node", d.path().display()),
            })
        }
    };
    if !d.path().starts_with("/dev") {
        return Err(RuntimeError::Field {
            field: "linux.devices".into(),
            msg: format!("{} is not under /dev", d.path().display()),
        });
    }
    Ok(Dev {
        path: d.path().clone(),
        kind,
        major: d.major() as u64,
        minor: d.minor() as u64,
        mode: d.file_mode().unwrap_or(0o666),
        uid: d.uid().unwrap_or(0),
        gid: d.gid().unwrap_or(0),
    })
}

fn create_devices(ctx: &RootfsContext<'_>, root: &OwnedFd, dev_is_tmpfs: bool) -> Result<()> {
    let mut devs = if dev_is_tmpfs {
        default_devices()
    } else {
        vec![]
    };
    if let Some(l) = ctx.spec.linux() {
        for d in l.devices().iter().flatten() {
            let d = spec_device(d)?;
            devs.retain(|x| x.path != d.path);
            devs.push(d);
        }
    }
    for d in &devs {
        let parent = d.path.parent().unwrap_or(Path::new("/dev"));
        let name = d
            .path
            .file_name()
            .ok_or_else(|| RuntimeError::Init(format!("bad device path {}", d.path.display())))?;
        let dir = mkdir_all_in_root(root.as_fd(), parent, 0o755)
            .map_err(|e| RuntimeError::Init(format!("create {}: {e}", parent.display())))?;
        let cname = std::ffi::CString::new(std::os::unix::ffi::OsStrExt::as_bytes(name))
            .map_err(|_| RuntimeError::Init("device name with NUL".into()))?;
        if ctx.in_userns {
            // mknod is not allowed in a user namespace: bind the host's node instead.
            let f = ensure_file_in_root(root.as_fd(), &d.path)
                .map_err(|e| RuntimeError::Init(format!("create {}: {e}", d.path.display())))?;
            mount(
                Some(&d.path),
                fd_path(&f).as_str(),
                None::<&str>,
                MsFlags::MS_BIND,
                None::<&str>,
            )
            .map_err(sys(format!("bind device {}", d.path.display())))?;
            continue;
        }
        // SAFETY: unlinkat/mknodat/fchownat on a directory fd we own, with a NUL-terminated name.
        unsafe {
            libc::unlinkat(dir.as_raw_fd(), cname.as_ptr(), 0);
        }
        let dirfd = open_in_root(root.as_fd(), parent, libc::O_DIRECTORY | libc::O_RDONLY, 0)
            .map_err(|e| RuntimeError::Init(format!("open {}: {e}", parent.display())))?;
        // SAFETY: as above; the old umask is restored right after.
        let r = unsafe {
            let old = libc::umask(0);
            let r = libc::mknodat(
                dirfd.as_raw_fd(),
                cname.as_ptr(),
                d.kind | d.mode,
                libc::makedev(d.major as u32, d.minor as u32),
            );
            libc::umask(old);
            r
        };
        if r != 0 {
            return Err(RuntimeError::Sys(
                format!("mknod {}", d.path.display()),
                nix::Error::last(),
            ));
        }
        // SAFETY: as above.
        if unsafe {
            libc::fchownat(
                dirfd.as_raw_fd(),
                cname.as_ptr(),
                d.uid,
                d.gid,
                libc::AT_SYMLINK_NOFOLLOW,
            )
        } != 0
        {
            return Err(RuntimeError::Sys(
                format!("chown {}", d.path.display()),
                nix::Error::last(),
            ));
        }
    }
    if dev_is_tmpfs {
        let dev = open_in_root(
            root.as_fd(),
            Path::new("/dev"),
            libc::O_DIRECTORY | libc::O_RDONLY,
            0,
        )
        .map_err(|e| RuntimeError::Init(format!("open /dev: {e}")))?;
        let mut links = vec![
            ("/proc/self/fd", "fd"),
            ("/proc/self/fd/0", "stdin"),
            ("/proc/self/fd/1", "stdout"),
            ("/proc/self/fd/2", "stderr"),
            ("pts/ptmx", "ptmx"),
        ];
        if Path::new("/proc/kcore").exists() {
            links.push(("/proc/kcore", "core"));
        }
        for (target, name) in links {
            let t = std::ffi::CString::new(target).unwrap_or_default();
            let n = std::ffi::CString::new(name).unwrap_or_default();
            // SAFETY: symlinkat relative to a directory fd we own.
            unsafe {
                libc::unlinkat(dev.as_raw_fd(), n.as_ptr(), 0);
                if libc::symlinkat(t.as_ptr(), dev.as_raw_fd(), n.as_ptr()) != 0 {
                    return Err(RuntimeError::Sys(
                        format!("symlink /dev/{name}"),
                        nix::Error::last(),
                    ));
                }
            }
        }
    }
    Ok(())
}

/// Binds a pty slave onto /dev/console inside the root.
pub fn bind_console(root: &OwnedFd, slave_path: &str) -> Result<()> {
    let f = ensure_file_in_root(root.as_fd(), Path::new("/dev/console"))
        .map_err(|e| RuntimeError::Init(format!("create /dev/console: {e}")))?;
    mount(
        Some(slave_path),
        fd_path(&f).as_str(),
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .map_err(sys("bind /dev/console"))
}

/// Step two: switch to the new root with pivot_root (or MS_MOVE + chroot with `no_pivot`).
pub fn enter(root: &OwnedFd, rootfs: &Path, no_pivot: bool) -> Result<()> {
    nix::unistd::fchdir(root.as_raw_fd()).map_err(sys("chdir to rootfs"))?;
    if no_pivot {
        mount(
            Some(rootfs),
            "/",
            None::<&str>,
            MsFlags::MS_MOVE,
            None::<&str>,
        )
        .map_err(sys("move rootfs to /"))?;
        nix::unistd::chroot(".").map_err(sys("chroot"))?;
    } else {
        nix::unistd::pivot_root(".", ".").map_err(sys("pivot_root"))?;
        // The old root is now stacked under "."; detach it without telling the host.
        mount(
            None::<&str>,
            ".",
            None::<&str>,
            MsFlags::MS_SLAVE | MsFlags::MS_REC,
            None::<&str>,
        )
        .map_err(sys("make old root slave"))?;
        umount2(".", MntFlags::MNT_DETACH).map_err(sys("unmount old root"))?;
    }
    nix::unistd::chdir("/").map_err(sys("chdir /"))?;
    Ok(())
}

/// Step three, inside the new root: sysctls, read-only and masked paths, read-only root,
/// rootfs propagation.
pub fn finish(spec: &Spec) -> Result<()> {
    let linux = spec.linux().as_ref();
    if let Some(sysctl) = linux.and_then(|l| l.sysctl().as_ref()) {
        for (k, v) in sysctl {
            let path = PathBuf::from("/proc/sys").join(k.replace('.', "/"));
            std::fs::write(&path, v.as_bytes()).map_err(|e| RuntimeError::Field {
                field: format!("linux.sysctl.{k}"),
                msg: format!("write {}: {e}", path.display()),
            })?;
        }
    }
    for p in linux
        .and_then(|l| l.readonly_paths().as_ref())
        .into_iter()
        .flatten()
    {
        match mount(
            Some(p.as_str()),
            p.as_str(),
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None::<&str>,
        ) {
            Ok(()) => {}
            Err(nix::Error::ENOENT) => continue,
            Err(e) => return Err(RuntimeError::Sys(format!("bind readonly path {p}"), e)),
        }
        let locked = locked_flags(p);
        mount(
            None::<&str>,
            p.as_str(),
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | MsFlags::MS_REC | locked,
            None::<&str>,
        )
        .map_err(sys(format!("remount readonly path {p}")))?;
    }
    for p in linux
        .and_then(|l| l.masked_paths().as_ref())
        .into_iter()
        .flatten()
    {
        let meta = match std::fs::metadata(p) {
            Ok(m) => m,
            Err(_) => continue,
        };
        let r = if meta.is_dir() {
            mount(
                Some("tmpfs"),
                p.as_str(),
                Some("tmpfs"),
                MsFlags::MS_RDONLY,
                None::<&str>,
            )
        } else {
            mount(
                Some("/dev/null"),
                p.as_str(),
                None::<&str>,
                MsFlags::MS_BIND,
                None::<&str>,
            )
        };
        r.map_err(sys(format!("mask {p}")))?;
    }
    if spec
        .root()
        .as_ref()
        .and_then(|r| r.readonly())
        .unwrap_or(false)
    {
        let locked = locked_flags("/");
        mount(
            None::<&str>,
            "/",
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | locked,
            None::<&str>,
        )
        .map_err(sys("remount / readonly"))?;
    }
    if let Some(p) = linux
        .and_then(|l| l.rootfs_propagation().as_deref())
        .filter(|p| !p.is_empty())
    {
        let o = parse_options(&[p.to_string()])?;
        for f in o.propagation {
            mount(None::<&str>, "/", None::<&str>, f, None::<&str>)
                .map_err(sys("set rootfs propagation"))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn options() {
        let o = parse_options(&s(&[
            "nosuid",
            "noexec",
            "nodev",
            "ro",
            "mode=755",
            "size=65536k",
        ]))
        .unwrap();
        assert_eq!(
            o.flags,
            MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC | MsFlags::MS_NODEV | MsFlags::MS_RDONLY
        );
        assert_eq!(o.data, s(&["mode=755", "size=65536k"]));
        let o = parse_options(&s(&["rbind", "rprivate", "ro", "rw"])).unwrap();
        assert!(o.bind);
        assert_eq!(o.flags, MsFlags::MS_BIND | MsFlags::MS_REC);
        assert_eq!(o.propagation, vec![MsFlags::MS_PRIVATE | MsFlags::MS_REC]);
        let o = parse_options(&s(&["shared", "rslave", "unbindable"])).unwrap();
        assert_eq!(
            o.propagation,
            vec![
                MsFlags::MS_SHARED,
                MsFlags::MS_SLAVE | MsFlags::MS_REC,
                MsFlags::MS_UNBINDABLE
            ]
        );
        assert!(parse_options(&s(&["idmap"])).is_err());
    }

    #[test]
    fn resolution_stays_in_root() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::os::unix::fs::symlink("/", root.join("escape")).unwrap();
        std::os::unix::fs::symlink("../../../../etc", root.join("up")).unwrap();
        let rfd: OwnedFd = std::fs::File::open(root).unwrap().into();
        let d =
            mkdir_all_in_root(rfd.as_fd(), Path::new("/escape/berth-made-this"), 0o755).unwrap();
        drop(d);
        assert!(root.join("berth-made-this").is_dir());
        assert!(!Path::new("/berth-made-this").exists());
        ensure_file_in_root(rfd.as_fd(), Path::new("/up/passwd")).unwrap();
        assert!(root.join("etc/passwd").is_file());
    }
}
