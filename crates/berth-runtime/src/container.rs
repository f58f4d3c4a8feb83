//! The container lifecycle: create (fork, namespaces, rootfs, wait for start), start, kill,
//! delete, pause, resume, update.
//!
//! `create` forks twice: the first child joins and creates namespaces (a new pid namespace
//! only applies to children), the second is the container's init. Both report to the runtime
//! over a SOCK_SEQPACKET pair; the init then blocks on `exec.fifo` until `start` opens it.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use berth_cgroups::CgroupManager;
use nix::sys::signal::Signal;
use nix::sys::wait::waitpid;
use nix::unistd::{ForkResult, Pid};
use oci_spec::runtime::{LinuxNamespaceType, Spec};

use crate::error::{io, sys, Result, RuntimeError};
use crate::namespaces::Plan;
use crate::state::{self, State, Status, EXEC_FIFO};
use crate::sys::{recv, send, Tag};

/// Options of `create` (and `run`), named like runc's flags.
#[derive(Debug, Clone, Default)]
pub struct CreateOptions {
    pub root: PathBuf,
    pub id: String,
    pub bundle: PathBuf,
    pub pid_file: Option<PathBuf>,
    pub console_socket: Option<PathBuf>,
    pub no_pivot: bool,
    pub no_new_keyring: bool,
    pub preserve_fds: u32,
    /// Hand a pty the config asks for back to the caller instead of a console socket.
    pub want_pty_master: bool,
}

/// A created container.
pub struct Created {
    pub state: State,
    pub pty_master: Option<OwnedFd>,
}

/// Default device rules every container gets on top of its config, as runc allows them.
fn default_device_rules() -> Vec<berth_cgroups::DeviceRule> {
    use berth_cgroups::{DeviceKind, DeviceRule};
    let r = |kind, major, minor: Option<i64>, access: &str| DeviceRule {
        allow: true,
        kind,
        major,
        minor,
        access: access.to_string(),
    };
    vec![
        r(DeviceKind::Char, None, None, "m"),
        r(DeviceKind::Block, None, None, "m"),
        r(DeviceKind::Char, Some(1), Some(3), "rwm"),
        r(DeviceKind::Char, Some(1), Some(5), "rwm"),
        r(DeviceKind::Char, Some(1), Some(7), "rwm"),
        r(DeviceKind::Char, Some(1), Some(8), "rwm"),
        r(DeviceKind::Char, Some(1), Some(9), "rwm"),
        r(DeviceKind::Char, Some(5), Some(0), "rwm"),
        r(DeviceKind::Char, Some(5), Some(1), "rwm"),
        r(DeviceKind::Char, Some(5), Some(2), "rwm"),
        r(DeviceKind::Char, Some(136), None, "rwm"),
        r(DeviceKind::Char, Some(10), Some(200), "rwm"),
    ]
}

/// The cgroup settings of a spec, with the default device rules added.
pub fn cgroup_resources(spec: &Spec) -> Result<berth_cgroups::Resources> {
    let mut res = match spec.linux().as_ref().and_then(|l| l.resources().as_ref()) {
        Some(r) => crate::config::resources(r)?,
        None => berth_cgroups::Resources::default(),
    };
    if res.devices.is_empty() {
        // No device policy given: leave the devices cgroup alone.
        return Ok(res);
    }
    res.devices.extend(default_device_rules());
    for d in spec
        .linux()
        .as_ref()
        .and_then(|l| l.devices().as_ref())
        .into_iter()
        .flatten()
    {
        let kind = match d.typ() {
            oci_spec::runtime::LinuxDeviceType::B => berth_cgroups::DeviceKind::Block,
            _ => berth_cgroups::DeviceKind::Char,
        };
        res.devices.push(berth_cgroups::DeviceRule {
            allow: true,
            kind,
            major: Some(d.major()),
            minor: Some(d.minor()),
            access: "rwm".into(),
        });
    }
    Ok(res)
}

/// Undoes a half-made container when create fails.
struct Cleanup {
    dir: PathBuf,
    cgroup: Option<Box<dyn CgroupManager>>,
    pids: Vec<i32>,
    armed: bool,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        for p in &self.pids {
            let _ = nix::sys::signal::kill(Pid::from_raw(*p), Signal::SIGKILL);
        }
        if let Some(cg) = &self.cgroup {
            let _ = cg.freeze(berth_cgroups::FreezerState::Thawed);
            kill_all_and_wait(cg.as_ref(), Duration::from_secs(5));
            let _ = cg.destroy();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn kill_all_and_wait(cg: &dyn CgroupManager, limit: Duration) {
    let deadline = Instant::now() + limit;
    let mut sleep = Duration::from_micros(100);
    loop {
        let pids = cg.pids().unwrap_or_default();
        if pids.is_empty() || Instant::now() > deadline {
            return;
        }
        for p in pids {
            let _ = nix::sys::signal::kill(Pid::from_raw(p), Signal::SIGKILL);
        }
        std::thread::sleep(sleep);
        sleep = (sleep * 2).min(Duration::from_millis(10));
    }
}

pub(crate) fn exit_child(sock: BorrowedFd<'_>, r: Result<()>) -> ! {
    let code = match r {
        Ok(()) => 0,
        Err(e) => {
            let _ = send(sock, Tag::Error, e.to_string().as_bytes(), None);
            1
        }
    };
    // SAFETY: _exit skips atexit handlers and destructors, which belong to the parent's copy.
    unsafe { libc::_exit(code) }
}

pub(crate) fn expect_go(sock: BorrowedFd<'_>) -> Result<Vec<u8>> {
    expect(sock, Tag::Go)
}

fn expect(sock: BorrowedFd<'_>, want: Tag) -> Result<Vec<u8>> {
    match recv(sock).map_err(|e| RuntimeError::Init(format!("sync: {e}")))? {
        Some((t, p, _)) if t == want => Ok(p),
        Some((Tag::Error, p, _)) => {
            Err(RuntimeError::Init(String::from_utf8_lossy(&p).into_owned()))
        }
        Some((t, _, _)) => Err(RuntimeError::Init(format!(
            "sync: expected {want:?}, got {t:?}"
        ))),
        None => Err(RuntimeError::Init("sync: runtime went away".into())),
    }
}

fn write_id_map(pid: i32, file: &str, maps: &[oci_spec::runtime::LinuxIdMapping]) -> Result<()> {
    let mut s = String::new();
    for m in maps {
        s.push_str(&format!(
            "{} {} {}\n",
            m.container_id(),
            m.host_id(),
            m.size()
        ));
    }
    let path = format!("/proc/{pid}/{file}");
    std::fs::write(&path, s).map_err(io("write", path))
}

/// Creates a container: everything up to, but not including, the exec of its process.
pub fn create(opts: &CreateOptions) -> Result<Created> {
    state::validate_id(&opts.id)?;
    let bundle = std::fs::canonicalize(&opts.bundle).map_err(io("bundle", &opts.bundle))?;
    let spec = crate::config::load(&bundle)?;
    crate::config::validate(&spec, &bundle)?;
    let rootfs = crate::config::rootfs(&spec, &bundle)?;
    let rootfs = std::fs::canonicalize(&rootfs).map_err(io("rootfs", &rootfs))?;
    let process = spec.process().clone().ok_or_else(|| RuntimeError::Field {
        field: "process".into(),
        msg: "must be set".into(),
    })?;
    let terminal = process.terminal().unwrap_or(false);
    if terminal && opts.console_socket.is_none() && !opts.want_pty_master {
        return Err(RuntimeError::Other(
            "cannot allocate tty if berth-runc will detach without setting console socket".into(),
        ));
    }
    if !terminal && opts.console_socket.is_some() {
        return Err(RuntimeError::Other(
            "cannot use console socket if berth-runc will not detach or allocate tty".into(),
        ));
    }
    let linux = spec.linux().clone().unwrap_or_default();
    let init = spec
        .annotations()
        .as_ref()
        .and_then(|a| a.get(crate::process::INIT_ANNOTATION))
        .is_some_and(|v| v == "true");
    let prepared =
        crate::process::prepare(&process, linux.seccomp().as_ref(), opts.preserve_fds, init)?;
    let plan = Plan::from_spec(&spec)?;
    let resources = cgroup_resources(&spec)?;
    let console = match &opts.console_socket {
        Some(p) => Some(
            std::os::unix::net::UnixStream::connect(p).map_err(io("connect console socket", p))?,
        ),
        None => None,
    };

    // From here on, a failure must leave nothing behind.
    std::fs::create_dir_all(&opts.root).map_err(io("create state root", &opts.root))?;
    let dir = State::dir(&opts.root, &opts.id);
    match std::fs::create_dir(&dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            return Err(RuntimeError::Exists(opts.id.clone()))
        }
        Err(e) => return Err(io("create state dir", &dir)(e)),
    }
    let mut cleanup = Cleanup {
        dir: dir.clone(),
        cgroup: None,
        pids: vec![],
        armed: true,
    };
    let cg_path = linux
        .cgroups_path()
        .as_ref()
        .map(|p| p.to_string_lossy().into_owned())
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| format!("/berth/{}", opts.id));
    let cg = berth_cgroups::manager(&cg_path)?;
    let mode = cg.mode();
    let cgroup_paths = cg.paths();
    // Registered before create(): a half-made cgroup tree is removed too.
    cleanup.cgroup = Some(berth_cgroups::manager_from_paths(mode, &cgroup_paths));
    cg.create()?;
    cg.set(&resources)?;
    let fifo = dir.join(EXEC_FIFO);
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o622))
        .map_err(sys(format!("mkfifo {}", fifo.display())))?;
    // mkfifo honours the umask; make sure anyone (a container's non-root user) can write it.
    let _ = std::fs::set_permissions(&fifo, std::os::unix::fs::PermissionsExt::from_mode(0o622));

    let mut st = State {
        id: opts.id.clone(),
        pid: 0,
        pid_start: 0,
        bundle: bundle.clone(),
        rootfs: rootfs.clone(),
        created: state::now_rfc3339(),
        owner: String::new(),
        cgroup_mode: state::mode_name(mode).to_string(),
        cgroup_paths: cgroup_paths.clone(),
        config: spec.clone(),
    };
    let hooks = spec.hooks().clone().unwrap_or_default();
    let need_hooks = hooks.prestart().as_ref().is_some_and(|h| !h.is_empty())
        || hooks
            .create_runtime()
            .as_ref()
            .is_some_and(|h| !h.is_empty())
        || hooks
            .create_container()
            .as_ref()
            .is_some_and(|h| !h.is_empty())
        || hooks
            .start_container()
            .as_ref()
            .is_some_and(|h| !h.is_empty())
        || prepared.seccomp_listener.is_some();

    let (parent_sock, child_sock) = crate::sys::seqpacket_pair().map_err(sys("socketpair"))?;
    let init = InitArgs {
        spec: &spec,
        bundle: &bundle,
        rootfs: &rootfs,
        plan: &plan,
        prepared: &prepared,
        fifo: &fifo,
        terminal,
        console: console.as_ref().map(|c| c.as_raw_fd()),
        no_pivot: opts.no_pivot,
        no_new_keyring: opts.no_new_keyring,
        need_hooks,
        cgroup_paths: &cgroup_paths,
        cgroup_mode: mode,
    };
    // SAFETY: the runtime is single-threaded; the child only runs our own code and exits.
    let c1 = match unsafe { nix::unistd::fork() }.map_err(sys("fork"))? {
        ForkResult::Child => {
            drop(parent_sock);
            let r = stage1(child_sock.as_fd(), &init);
            exit_child(child_sock.as_fd(), r)
        }
        ForkResult::Parent { child } => child,
    };
    drop(child_sock);
    cleanup.pids.push(c1.as_raw());
    let sock = parent_sock.as_fd();
    let mut c1_reaped = false;
    // Placing a task in a v1 hierarchy waits for an RCU grace period (the first
    // `cgroup.procs` write of a burst takes several milliseconds). Without a cgroup
    // namespace, nothing before `execve` depends on the init's cgroup, so the init is placed
    // while it builds its rootfs: `create` returns (and `start` may run) only after that.
    // A cgroup namespace is rooted at the cgroup of the process that unshares it, so then the
    // first child is placed before it goes on.
    let place_early = plan.has(LinuxNamespaceType::Cgroup);
    let result = (|| -> Result<Option<OwnedFd>> {
        if place_early {
            cg.add_task(c1.as_raw())?;
        }
        send(sock, Tag::Go, &[], None).map_err(|e| RuntimeError::Init(format!("sync: {e}")))?;
        let mut pty = None;
        let mut ready = false;
        let mut hooks_wanted = false;
        let run_create_hooks = |st: &State| -> Result<()> {
            let s = st.oci_json(Status::Creating);
            crate::hooks::run_all(hooks.prestart().as_deref().unwrap_or_default(), &s)?;
            crate::hooks::run_all(hooks.create_runtime().as_deref().unwrap_or_default(), &s)?;
            let body = serde_json::to_vec(&st.oci_json(Status::Created)).unwrap_or_default();
            send(sock, Tag::HooksDone, &body, None)
                .map_err(|e| RuntimeError::Init(format!("sync: {e}")))
        };
        loop {
            let msg = recv(sock).map_err(|e| RuntimeError::Init(format!("sync: {e}")))?;
            match msg {
                Some((Tag::NeedMaps, _, _)) => {
                    // Root in the parent namespace may write any mapping; setgroups stays allowed.
                    write_id_map(
                        c1.as_raw(),
                        "uid_map",
                        linux.uid_mappings().as_deref().unwrap_or_default(),
                    )?;
                    write_id_map(
                        c1.as_raw(),
                        "gid_map",
                        linux.gid_mappings().as_deref().unwrap_or_default(),
                    )?;
                    send(sock, Tag::MapsDone, &[], None)
                        .map_err(|e| RuntimeError::Init(format!("sync: {e}")))?;
                }
                Some((Tag::Pid, p, _)) => {
                    let pid = i32::from_le_bytes(
                        p.get(..4)
                            .and_then(|b| b.try_into().ok())
                            .unwrap_or_default(),
                    );
                    cleanup.pids.push(pid);
                    if !place_early {
                        cg.add_task(pid)?;
                    }
                    st.pid = pid;
                    st.pid_start = state::proc_stat(pid).map(|s| s.0).unwrap_or(0);
                    let _ = waitpid(c1, None);
                    c1_reaped = true;
                    if hooks_wanted {
                        run_create_hooks(&st)?;
                    }
                    if ready {
                        return Ok(pty);
                    }
                }
                // The init asks for the hooks, the first child reports the init's pid: the two
                // come from different processes, so either may arrive first. The hooks see the
                // pid, so they wait for it.
                Some((Tag::Hooks, _, _)) if st.pid != 0 => run_create_hooks(&st)?,
                Some((Tag::Hooks, _, _)) => hooks_wanted = true,
                Some((Tag::Pty, _, fd)) => pty = fd,
                // The init's pid comes from the first child, the readiness from the init:
                // both are needed (the init is placed in its cgroups on the pid).
                Some((Tag::Ready, _, _)) if st.pid != 0 => return Ok(pty),
                Some((Tag::Ready, _, _)) => ready = true,
                Some((Tag::Error, p, _)) => {
                    return Err(RuntimeError::Init(String::from_utf8_lossy(&p).into_owned()))
                }
                Some((t, _, _)) => {
                    return Err(RuntimeError::Init(format!("sync: unexpected {t:?}")))
                }
                None => {
                    return Err(RuntimeError::Init(
                        "container init exited before it was ready".into(),
                    ))
                }
            }
        }
    })();
    if !c1_reaped {
        if result.is_err() {
            let _ = nix::sys::signal::kill(c1, Signal::SIGKILL);
        }
        let _ = waitpid(c1, None);
    }
    let pty_master = result?;
    st.save(&opts.root)?;
    if let Some(pf) = &opts.pid_file {
        write_pid_file(pf, st.pid)?;
    }
    cleanup.armed = false;
    Ok(Created {
        state: st,
        pty_master,
    })
}

/// Writes a pid file atomically, as runc does.
pub fn write_pid_file(path: &Path, pid: i32) -> Result<()> {
    let tmp = path.with_file_name(format!(
        ".{}.tmp",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("pid")
    ));
    std::fs::write(&tmp, pid.to_string()).map_err(io("write pid file", &tmp))?;
    std::fs::rename(&tmp, path).map_err(io("write pid file", path))
}

struct InitArgs<'a> {
    spec: &'a Spec,
    bundle: &'a Path,
    rootfs: &'a Path,
    plan: &'a Plan,
    prepared: &'a crate::process::Prepared,
    fifo: &'a Path,
    terminal: bool,
    console: Option<i32>,
    no_pivot: bool,
    no_new_keyring: bool,
    need_hooks: bool,
    cgroup_paths: &'a std::collections::BTreeMap<String, PathBuf>,
    cgroup_mode: berth_cgroups::CgroupMode,
}

/// The first child: namespaces, then fork the init.
fn stage1(sock: BorrowedFd<'_>, a: &InitArgs<'_>) -> Result<()> {
    expect(sock, Tag::Go)?;
    if let Some(adj) = a.spec.process().as_ref().and_then(|p| p.oom_score_adj()) {
        std::fs::write("/proc/self/oom_score_adj", adj.to_string())
            .map_err(io("write", "/proc/self/oom_score_adj"))?;
    }
    a.plan.join_all()?;
    if !a.plan.new.is_empty() {
        nix::sched::unshare(a.plan.new).map_err(sys(format!("unshare {:?}", a.plan.new)))?;
    }
    // Offsets are written before uid changes: /proc/self stays ours while we are still host root.
    if a.plan.is_new(LinuxNamespaceType::Time) {
        if let Some(offs) = a
            .spec
            .linux()
            .as_ref()
            .and_then(|l| l.time_offsets().as_ref())
        {
            let mut s = String::new();
            for (clock, o) in offs {
                s.push_str(&format!(
                    "{clock} {} {}\n",
                    o.secs().unwrap_or(0),
                    o.nanosecs().unwrap_or(0)
                ));
            }
            std::fs::write("/proc/self/timens_offsets", s)
                .map_err(io("write", "/proc/self/timens_offsets"))?;
        }
    }
    if a.plan.is_new(LinuxNamespaceType::User) {
        send(sock, Tag::NeedMaps, &[], None)
            .map_err(|e| RuntimeError::Init(format!("sync: {e}")))?;
        expect(sock, Tag::MapsDone)?;
        let root_g = nix::unistd::Gid::from_raw(0);
        let root_u = nix::unistd::Uid::from_raw(0);
        nix::unistd::setresgid(root_g, root_g, root_g)
            .map_err(sys("become root in the user namespace (gid 0 unmapped?)"))?;
        nix::unistd::setresuid(root_u, root_u, root_u)
            .map_err(sys("become root in the user namespace (uid 0 unmapped?)"))?;
    }
    // SAFETY: single-threaded; the child runs our init code and never returns.
    match unsafe { nix::unistd::fork() }.map_err(sys("fork init"))? {
        ForkResult::Child => {
            let r = stage2(sock, a);
            exit_child(sock, r.map(|_| ()))
        }
        ForkResult::Parent { child } => {
            send(sock, Tag::Pid, &child.as_raw().to_le_bytes(), None)
                .map_err(|e| RuntimeError::Init(format!("sync: {e}")))?;
            Ok(())
        }
    }
}

/// Opens a new pty pair inside the current root; returns (master, slave, slave path).
pub(crate) fn open_pty(size: Option<oci_spec::runtime::Box>) -> Result<(OwnedFd, OwnedFd, String)> {
    use nix::fcntl::OFlag;
    let master = nix::pty::posix_openpt(OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC)
        .map_err(sys("open /dev/ptmx"))?;
    nix::pty::grantpt(&master).map_err(sys("grantpt"))?;
    nix::pty::unlockpt(&master).map_err(sys("unlockpt"))?;
    // SAFETY: ptsname is not thread-safe; we are single-threaded here.
    let name = unsafe { nix::pty::ptsname(&master) }.map_err(sys("ptsname"))?;
    let slave = nix::fcntl::open(
        name.as_str(),
        OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(sys(format!("open {name}")))?;
    // SAFETY: fresh fd from open().
    let slave = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(slave) };
    // SAFETY: we take over the descriptor owned by PtyMaster, which forgets it.
    let master = unsafe {
        <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(std::os::fd::IntoRawFd::into_raw_fd(
            master,
        ))
    };
    if let Some(sz) = size {
        let ws = libc::winsize {
            ws_row: sz.height() as u16,
            ws_col: sz.width() as u16,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: TIOCSWINSZ with a valid winsize struct on our pty.
        unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
    }
    Ok((master, slave, name))
}

/// Makes `slave` the controlling terminal and stdio of the calling process.
pub(crate) fn take_tty(slave: &OwnedFd) -> Result<()> {
    for fd in 0..3 {
        nix::unistd::dup2(slave.as_raw_fd(), fd).map_err(sys("dup2 pty"))?;
    }
    // SAFETY: TIOCSCTTY on our own pty slave, after setsid.
    if unsafe { libc::ioctl(0, libc::TIOCSCTTY, 0) } != 0 {
        return Err(RuntimeError::Sys(
            "set controlling tty".into(),
            nix::Error::last(),
        ));
    }
    Ok(())
}

/// Hands a pty master to whoever waits for it: the console socket, or the runtime.
pub(crate) fn hand_over_pty(
    sock: BorrowedFd<'_>,
    console: Option<i32>,
    master: &OwnedFd,
    name: &str,
) -> Result<()> {
    match console {
        Some(c) => crate::sys::send_fd_named(c, name, master.as_raw_fd())
            .map_err(|e| RuntimeError::Init(format!("send pty to console socket: {e}"))),
        None => send(sock, Tag::Pty, &[], Some(master.as_raw_fd()))
            .map_err(|e| RuntimeError::Init(format!("sync: {e}"))),
    }
}

/// The init: rootfs, hooks, pty, process setup, then wait for `start` and exec.
fn stage2(sock: BorrowedFd<'_>, a: &InitArgs<'_>) -> Result<std::convert::Infallible> {
    nix::unistd::setsid().map_err(sys("setsid"))?;
    if !a.no_new_keyring {
        // A fresh session keyring so containers do not share the host's keys.
        // SAFETY: keyctl(KEYCTL_JOIN_SESSION_KEYRING, NULL) creates an anonymous keyring.
        let r = unsafe { libc::syscall(libc::SYS_keyctl, 1, std::ptr::null::<libc::c_char>()) };
        if r < 0 && nix::Error::last() != nix::Error::ENOSYS {
            return Err(RuntimeError::Sys(
                "join session keyring".into(),
                nix::Error::last(),
            ));
        }
    }
    let has_mnt = a.plan.has(LinuxNamespaceType::Mount);
    let root = if has_mnt {
        Some(crate::rootfs::prepare(&crate::rootfs::RootfsContext {
            spec: a.spec,
            bundle: a.bundle,
            rootfs: a.rootfs,
            in_userns: a.plan.has(LinuxNamespaceType::User),
            cgroupns: a.plan.has(LinuxNamespaceType::Cgroup),
            cgroup_paths: a.cgroup_paths,
            cgroup_mode: a.cgroup_mode,
        })?)
    } else {
        None
    };
    if a.plan.has(LinuxNamespaceType::Uts) {
        if let Some(h) = a.spec.hostname().as_deref().filter(|h| !h.is_empty()) {
            nix::unistd::sethostname(h).map_err(sys(format!("sethostname {h}")))?;
        }
        if let Some(d) = a.spec.domainname().as_deref().filter(|d| !d.is_empty()) {
            // SAFETY: setdomainname with a valid pointer and length.
            if unsafe { libc::setdomainname(d.as_ptr() as *const libc::c_char, d.len()) } != 0 {
                return Err(RuntimeError::Sys(
                    format!("setdomainname {d}"),
                    nix::Error::last(),
                ));
            }
        }
    }
    let mut state_json = serde_json::Value::Null;
    if a.need_hooks {
        send(sock, Tag::Hooks, &[], None).map_err(|e| RuntimeError::Init(format!("sync: {e}")))?;
        let body = expect(sock, Tag::HooksDone)?;
        state_json = serde_json::from_slice(&body).unwrap_or_default();
        let hooks = a.spec.hooks().clone().unwrap_or_default();
        crate::hooks::run_all(
            hooks.create_container().as_deref().unwrap_or_default(),
            &state_json,
        )?;
    }
    // Keep a way to the fifo that survives pivot_root.
    let fifo = nix::fcntl::open(
        a.fifo,
        nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(sys(format!("open {}", a.fifo.display())))?;
    let procfd = nix::fcntl::open(
        "/proc/self/fd",
        nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_DIRECTORY | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(sys("open /proc/self/fd"))?;
    match &root {
        Some(r) => crate::rootfs::enter(r, a.rootfs, a.no_pivot)?,
        None => {
            nix::unistd::chroot(a.rootfs).map_err(sys("chroot"))?;
            nix::unistd::chdir("/").map_err(sys("chdir /"))?;
        }
    }
    if a.terminal {
        let size = a.spec.process().as_ref().and_then(|p| p.console_size());
        let (master, slave, name) = open_pty(size)?;
        if has_mnt {
            let newroot: OwnedFd = std::fs::File::open("/").map_err(io("open", "/"))?.into();
            crate::rootfs::bind_console(&newroot, &name)?;
        }
        hand_over_pty(sock, a.console, &master, &name)?;
        drop(master);
        take_tty(&slave)?;
    }
    if has_mnt {
        crate::rootfs::finish(a.spec)?;
    }
    let exe = a.prepared.resolve_exe()?;
    let notify = a.prepared.setup()?;
    if let (Some(fd), Some((path, meta))) = (&notify, &a.prepared.seccomp_listener) {
        crate::seccomp::send_notify_fd(path, fd, a.spec_pid(&state_json), meta, &state_json)?;
    }
    drop(notify);
    send(sock, Tag::Ready, &[], None).map_err(|e| RuntimeError::Init(format!("sync: {e}")))?;
    // Block until `start` opens the other end.
    let w = nix::fcntl::openat(
        Some(procfd),
        fifo.to_string().as_str(),
        nix::fcntl::OFlag::O_WRONLY | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    );
    let w = match w {
        Ok(w) => w,
        Err(e) => {
            eprintln!("berth-runc init: open exec fifo: {e}");
            // SAFETY: leaving the child without running the parent's destructors.
            unsafe { libc::_exit(1) }
        }
    };
    let _ = nix::unistd::write(
        // SAFETY: w is a valid fd we just opened.
        unsafe { BorrowedFd::borrow_raw(w) },
        b"0",
    );
    // The write end stays open (close-on-exec) until execve, so `start` can wait for the
    // startContainer hooks and the exec before it runs poststart.
    let _ = nix::unistd::close(fifo);
    let _ = nix::unistd::close(procfd);
    if let Some(h) = a
        .spec
        .hooks()
        .as_ref()
        .and_then(|h| h.start_container().clone())
    {
        if let Err(e) = crate::hooks::run_all(&h, &state_json) {
            eprintln!("berth-runc init: startContainer hook: {e}");
            // SAFETY: as above.
            unsafe { libc::_exit(1) }
        }
    }
    let _ = nix::unistd::write(
        // SAFETY: w is still open; it closes on exec.
        unsafe { BorrowedFd::borrow_raw(w) },
        b"1",
    );
    let Err(e) = a.prepared.exec(&exe);
    eprintln!("berth-runc init: {e}");
    // SAFETY: as above.
    unsafe { libc::_exit(127) }
}

impl InitArgs<'_> {
    fn spec_pid(&self, state: &serde_json::Value) -> i32 {
        state.get("pid").and_then(|p| p.as_i64()).unwrap_or(0) as i32
    }
}

/// Starts a created container: opens its exec fifo so the init goes on to exec.
pub fn start(root: &Path, id: &str) -> Result<State> {
    let st = State::load(root, id)?;
    let status = st.status(root);
    if status != Status::Created {
        return Err(RuntimeError::State {
            id: id.into(),
            status: status.to_string(),
            msg: match status {
                Status::Stopped => "cannot start a container that has stopped".into(),
                _ => "cannot start an already running container".into(),
            },
        });
    }
    let fifo = State::dir(root, id).join(EXEC_FIFO);
    let f = nix::fcntl::open(
        &fifo,
        nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_NONBLOCK | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(sys(format!("open {}", fifo.display())))?;
    // SAFETY: fresh fd from open().
    let f = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(f) };
    let mut buf = [0u8; 1];
    loop {
        let mut fds = [nix::poll::PollFd::new(
            f.as_fd(),
            nix::poll::PollFlags::POLLIN,
        )];
        let _ = nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(100u16));
        match nix::unistd::read(f.as_raw_fd(), &mut buf) {
            Ok(1) => break,
            Ok(_) | Err(nix::Error::EAGAIN) => {
                if !state::pid_alive(st.pid, st.pid_start) {
                    return Err(RuntimeError::State {
                        id: id.into(),
                        status: "stopped".into(),
                        msg: "container init exited before start".into(),
                    });
                }
            }
            Err(nix::Error::EINTR) => {}
            Err(e) => return Err(RuntimeError::Sys(format!("read {}", fifo.display()), e)),
        }
    }
    // Wait for the init to exec: it writes "1" just before execve and the fifo closes with
    // it; without the "1" it died first (a startContainer hook failed).
    let mut execed = false;
    loop {
        let mut fds = [nix::poll::PollFd::new(
            f.as_fd(),
            nix::poll::PollFlags::POLLIN,
        )];
        let _ = nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(100u16));
        match nix::unistd::read(f.as_raw_fd(), &mut buf) {
            Ok(0) => break,
            Ok(_) => execed |= buf[0] == b'1',
            Err(nix::Error::EAGAIN) => {
                if !state::pid_alive(st.pid, st.pid_start) {
                    break;
                }
            }
            Err(nix::Error::EINTR) => {}
            Err(e) => return Err(RuntimeError::Sys(format!("read {}", fifo.display()), e)),
        }
    }
    let _ = std::fs::remove_file(&fifo);
    if !execed {
        return Err(RuntimeError::State {
            id: id.into(),
            status: "stopped".into(),
            msg: "container init exited before exec (a startContainer hook failed)".into(),
        });
    }
    if let Some(h) = st
        .config
        .hooks()
        .as_ref()
        .and_then(|h| h.poststart().clone())
    {
        crate::hooks::run_all_warn(&h, &st.oci_json(Status::Running), |e| {
            eprintln!("warning: poststart hook: {e}")
        });
    }
    Ok(st)
}

fn not_running(id: &str, status: Status, what: &str) -> RuntimeError {
    RuntimeError::State {
        id: id.into(),
        status: status.to_string(),
        msg: what.into(),
    }
}

/// Sends a signal to the init, or with `all` to every process of the container.
pub fn kill(root: &Path, id: &str, sig: Signal, all: bool) -> Result<()> {
    let st = State::load(root, id)?;
    let status = st.status(root);
    if status == Status::Stopped && !all {
        return Err(not_running(id, status, "container not running"));
    }
    if all {
        let cg = st.cgroup()?;
        let paused = status == Status::Paused;
        if !paused {
            let _ = cg.freeze(berth_cgroups::FreezerState::Frozen);
        }
        for p in cg.pids()? {
            let _ = nix::sys::signal::kill(Pid::from_raw(p), sig);
        }
        if !paused || sig == Signal::SIGKILL {
            cg.freeze(berth_cgroups::FreezerState::Thawed)?;
        }
        return Ok(());
    }
    nix::sys::signal::kill(Pid::from_raw(st.pid), sig).map_err(sys(format!("kill {}", st.pid)))
}

/// Deletes a container: stopped ones always, created ones by killing them, running and
/// paused ones only with `force`.
pub fn delete(root: &Path, id: &str, force: bool) -> Result<()> {
    let st = match State::load(root, id) {
        Ok(s) => s,
        Err(RuntimeError::NotFound(_)) if force => {
            // Nothing recorded: make sure no state dir lingers.
            let _ = std::fs::remove_dir_all(State::dir(root, id));
            return Ok(());
        }
        Err(e) => return Err(e),
    };
    let status = st.status(root);
    match status {
        Status::Running | Status::Paused if !force => {
            return Err(not_running(
                id,
                status,
                &format!("cannot delete container {id} that is not stopped"),
            ))
        }
        _ => {}
    }
    let cg = st.cgroup()?;
    if status != Status::Stopped && state::pid_alive(st.pid, st.pid_start) {
        let _ = nix::sys::signal::kill(Pid::from_raw(st.pid), Signal::SIGKILL);
    }
    let _ = cg.freeze(berth_cgroups::FreezerState::Thawed);
    kill_all_and_wait(cg.as_ref(), Duration::from_secs(10));
    wait_gone(st.pid, st.pid_start, Duration::from_secs(10));
    cg.destroy()?;
    std::fs::remove_dir_all(State::dir(root, id)).map_err(io("remove", State::dir(root, id)))?;
    if let Some(h) = st
        .config
        .hooks()
        .as_ref()
        .and_then(|h| h.poststop().clone())
    {
        crate::hooks::run_all_warn(&h, &st.oci_json(Status::Stopped), |e| {
            eprintln!("warning: poststop hook: {e}")
        });
    }
    Ok(())
}

fn wait_gone(pid: i32, start: u64, limit: Duration) {
    let deadline = Instant::now() + limit;
    let mut sleep = Duration::from_micros(50);
    while state::pid_alive(pid, start) && Instant::now() < deadline {
        std::thread::sleep(sleep);
        sleep = (sleep * 2).min(Duration::from_millis(10));
    }
}

/// Freezes every process of a running container.
pub fn pause(root: &Path, id: &str) -> Result<()> {
    let st = State::load(root, id)?;
    let status = st.status(root);
    if status != Status::Running && status != Status::Created {
        return Err(not_running(id, status, "container not running"));
    }
    st.cgroup()?.freeze(berth_cgroups::FreezerState::Frozen)?;
    Ok(())
}

/// Thaws a paused container.
pub fn resume(root: &Path, id: &str) -> Result<()> {
    let st = State::load(root, id)?;
    let status = st.status(root);
    if status != Status::Paused {
        return Err(not_running(id, status, "container not paused"));
    }
    st.cgroup()?.freeze(berth_cgroups::FreezerState::Thawed)?;
    Ok(())
}

/// Changes the resources of a live container and records them.
pub fn update(root: &Path, id: &str, new: &oci_spec::runtime::LinuxResources) -> Result<()> {
    let mut st = State::load(root, id)?;
    let status = st.status(root);
    if status == Status::Stopped {
        return Err(not_running(id, status, "cannot update a stopped container"));
    }
    let res = crate::config::resources(new)?;
    st.cgroup()?.set(&res)?;
    let mut linux = st.config.linux().clone().unwrap_or_default();
    let mut merged = linux.resources().clone().unwrap_or_default();
    if new.memory().is_some() {
        merged.set_memory(*new.memory());
    }
    if new.cpu().is_some() {
        merged.set_cpu(new.cpu().clone());
    }
    if new.pids().is_some() {
        merged.set_pids(*new.pids());
    }
    if new.block_io().is_some() {
        merged.set_block_io(new.block_io().clone());
    }
    linux.set_resources(Some(merged));
    st.config.set_linux(Some(linux));
    st.save(root)
}

/// Every pid of the container's cgroup.
pub fn pids(root: &Path, id: &str) -> Result<Vec<i32>> {
    let st = State::load(root, id)?;
    Ok(st.cgroup()?.pids()?)
}
