//! The last steps of a container process before execve: rlimits, no_new_privs, seccomp,
//! capabilities, user and groups, working directory, and the exec itself.

use std::ffi::CString;
use std::path::{Path, PathBuf};

use nix::unistd::{Gid, Uid};
use oci_spec::runtime::Process;

use crate::capabilities::CapSets;
use crate::error::{sys, Result, RuntimeError};

/// A process ready to be started: everything that can fail on bad input was checked in the
/// runtime before forking.
pub struct Prepared {
    pub argv: Vec<CString>,
    pub envp: Vec<CString>,
    pub caps: Option<CapSets>,
    pub seccomp: Option<libseccomp::ScmpFilterContext>,
    pub seccomp_listener: Option<(PathBuf, String)>,
    pub nnp: bool,
    pub uid: u32,
    pub gid: u32,
    pub additional_gids: Vec<u32>,
    pub umask: Option<u32>,
    pub cwd: PathBuf,
    pub rlimits: Vec<(libc::__rlimit_resource_t, u64, u64)>,
    pub preserve_fds: u32,
    pub path_env: String,
    /// Stay as a minimal init (pid 1: reap every child, forward signals, exit with the
    /// process's status) and run the process as its child; the config's `berth.init`
    /// annotation asks for it (`docker run --init`).
    pub init: bool,
}

/// The annotation that asks for the runtime's built-in init.
pub const INIT_ANNOTATION: &str = "berth.init";

fn cs(s: &str, what: &str) -> Result<CString> {
    CString::new(s).map_err(|_| RuntimeError::Field {
        field: what.to_string(),
        msg: "contains a NUL byte".into(),
    })
}

/// Builds the prepared process from an OCI process and the container's seccomp config.
pub fn prepare(
    p: &Process,
    seccomp: Option<&oci_spec::runtime::LinuxSeccomp>,
    preserve_fds: u32,
    init: bool,
) -> Result<Prepared> {
    crate::config::validate_process(p)?;
    let argv = p
        .args()
        .iter()
        .flatten()
        .map(|a| cs(a, "process.args"))
        .collect::<Result<Vec<_>>>()?;
    let env: Vec<String> = p.env().clone().unwrap_or_default();
    let path_env = env
        .iter()
        .rev()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
        .to_string();
    let envp = env
        .iter()
        .map(|e| cs(e, "process.env"))
        .collect::<Result<Vec<_>>>()?;
    let caps = match p.capabilities() {
        Some(c) => Some(crate::capabilities::from_spec(c)?),
        None => None,
    };
    let (ctx, listener) = match seccomp {
        Some(s) => {
            let listener = s.listener_path().as_ref().map(|lp| {
                (
                    lp.clone(),
                    s.listener_metadata().clone().unwrap_or_default(),
                )
            });
            (Some(crate::seccomp::build(s)?), listener)
        }
        None => (None, None),
    };
    let mut rlimits = vec![];
    for r in p.rlimits().iter().flatten() {
        let res = crate::config::rlimit_resource(r.typ()).ok_or_else(|| RuntimeError::Field {
            field: "process.rlimits".into(),
            msg: "unknown rlimit type".into(),
        })?;
        rlimits.push((res, r.soft(), r.hard()));
    }
    let user = p.user();
    Ok(Prepared {
        argv,
        envp,
        caps,
        seccomp: ctx,
        seccomp_listener: listener,
        nnp: p.no_new_privileges().unwrap_or(false),
        uid: user.uid(),
        gid: user.gid(),
        additional_gids: user.additional_gids().clone().unwrap_or_default(),
        umask: user.umask(),
        cwd: p.cwd().clone(),
        rlimits,
        preserve_fds,
        path_env,
        init,
    })
}

impl Prepared {
    /// Finds the executable as execvp would, inside the current root; the error is the one
    /// users know from runc and docker.
    pub fn resolve_exe(&self) -> Result<CString> {
        let arg0 = self.argv[0].to_string_lossy().into_owned();
        let check = |p: &Path| -> std::result::Result<(), String> {
            let meta = std::fs::metadata(p)
                .map_err(|e| format!("stat {}: {}", p.display(), strip_os(&e)))?;
            if meta.is_dir() {
                return Err(format!("{} is a directory", p.display()));
            }
            nix::unistd::access(p, nix::unistd::AccessFlags::X_OK)
                .map_err(|e| format!("{}: {}", p.display(), e.desc().to_lowercase()))
        };
        if arg0.contains('/') {
            let p = if Path::new(&arg0).is_absolute() {
                PathBuf::from(&arg0)
            } else {
                self.cwd.join(&arg0)
            };
            check(&p).map_err(|m| RuntimeError::Init(format!("exec: {arg0:?}: {m}")))?;
            return cs(&p.to_string_lossy(), "process.args");
        }
        for dir in self.path_env.split(':') {
            let dir = if dir.is_empty() { "." } else { dir };
            let p = Path::new(dir).join(&arg0);
            if check(&p).is_ok() {
                return cs(&p.to_string_lossy(), "process.args");
            }
        }
        Err(RuntimeError::Init(format!(
            "exec: {arg0:?}: executable file not found in $PATH"
        )))
    }

    /// rlimits, no_new_privs, early seccomp, capabilities, user and groups, cwd, umask.
    /// Returns the seccomp notify fd when the filter was loaded here and asked for one.
    pub fn setup(&self) -> Result<Option<std::os::fd::OwnedFd>> {
        for (res, soft, hard) in &self.rlimits {
            let lim = libc::rlimit {
                rlim_cur: *soft,
                rlim_max: *hard,
            };
            // SAFETY: setrlimit with a valid struct.
            if unsafe { libc::setrlimit(*res, &lim) } != 0 {
                return Err(RuntimeError::Sys(
                    format!("setrlimit {res}"),
                    nix::Error::last(),
                ));
            }
        }
        if self.nnp {
            // SAFETY: prctl with constant arguments.
            if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
                return Err(RuntimeError::Sys(
                    "set no_new_privs".into(),
                    nix::Error::last(),
                ));
            }
        }
        let mut notify = None;
        if !self.nnp {
            if let Some(ctx) = &self.seccomp {
                notify = crate::seccomp::load(ctx)?;
            }
        }
        if let Some(c) = &self.caps {
            crate::capabilities::apply_bounding(c)?;
        }
        // SAFETY: prctl with constant arguments.
        unsafe { libc::prctl(libc::PR_SET_KEEPCAPS, 1, 0, 0, 0) };
        let groups: Vec<Gid> = self
            .additional_gids
            .iter()
            .map(|g| Gid::from_raw(*g))
            .collect();
        match nix::unistd::setgroups(&groups) {
            Ok(()) => {}
            // setgroups is denied in a user namespace with setgroups=deny.
            Err(nix::Error::EPERM) if groups.is_empty() => {}
            Err(e) => return Err(RuntimeError::Sys("setgroups".into(), e)),
        }
        let g = Gid::from_raw(self.gid);
        nix::unistd::setresgid(g, g, g).map_err(sys(format!("setgid {}", self.gid)))?;
        let u = Uid::from_raw(self.uid);
        nix::unistd::setresuid(u, u, u).map_err(sys(format!("setuid {}", self.uid)))?;
        // SAFETY: prctl with constant arguments.
        unsafe { libc::prctl(libc::PR_SET_KEEPCAPS, 0, 0, 0, 0) };
        if let Some(c) = &self.caps {
            crate::capabilities::apply_process_sets(c)?;
        }
        nix::unistd::chdir(&self.cwd)
            .map_err(sys(format!("chdir to cwd {}", self.cwd.display())))?;
        // SAFETY: umask cannot fail.
        unsafe { libc::umask(self.umask.unwrap_or(0o022) as libc::mode_t) };
        Ok(notify)
    }

    /// Late seccomp (with no_new_privs), fd hygiene and execve. Only returns on failure.
    pub fn exec(&self, exe: &CString) -> Result<std::convert::Infallible> {
        reset_signals();
        if self.nnp {
            if let Some(ctx) = &self.seccomp {
                crate::seccomp::load(ctx)?;
            }
        }
        crate::sys::cloexec_from(3 + self.preserve_fds);
        if self.init {
            init_fork(3 + self.preserve_fds);
        }
        let e = nix::unistd::execve(exe, &self.argv, &self.envp).unwrap_err();
        Err(RuntimeError::Init(format!(
            "exec {}: {}",
            exe.to_string_lossy(),
            e.desc().to_lowercase()
        )))
    }
}

fn strip_os(e: &std::io::Error) -> String {
    let s = e.to_string();
    match s.find(" (os error") {
        Some(i) => s[..i].to_lowercase(),
        None => s,
    }
}

/// The built-in init: forks; the child returns to exec the process, the parent stays as
/// pid 1, reaping every child and forwarding every signal to the process until it exits,
/// then exits with its status (128 + signal when killed). Returns only in the child.
fn init_fork(first_fd: u32) {
    use nix::sys::signal::{sigprocmask, SigSet, SigmaskHow};
    use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
    let all = SigSet::all();
    let _ = sigprocmask(SigmaskHow::SIG_SETMASK, Some(&all), None);
    // SAFETY: fork in a single-threaded process (the container's init before exec).
    let child = match unsafe { nix::unistd::fork() } {
        Ok(nix::unistd::ForkResult::Child) => {
            let _ = sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None);
            return;
        }
        Ok(nix::unistd::ForkResult::Parent { child }) => child,
        // Without a child there is nothing to supervise: exec the process ourselves.
        Err(_) => {
            let _ = sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None);
            return;
        }
    };
    // The init holds no fd of the runtime's (exec.fifo above all: `start` waits for it).
    // SAFETY: close_range on fds this process owns; nothing uses them after this point.
    unsafe { libc::syscall(libc::SYS_close_range, first_fd, u32::MAX, 0) };
    loop {
        let sig = match all.wait() {
            Ok(s) => s,
            Err(_) => continue,
        };
        if sig != nix::sys::signal::Signal::SIGCHLD {
            let _ = nix::sys::signal::kill(child, sig);
            continue;
        }
        loop {
            match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(pid, code)) if pid == child => {
                    // SAFETY: _exit ends this process at once.
                    unsafe { libc::_exit(code) }
                }
                Ok(WaitStatus::Signaled(pid, s, _)) if pid == child => {
                    // SAFETY: _exit ends this process at once.
                    unsafe { libc::_exit(128 + s as i32) }
                }
                Ok(WaitStatus::StillAlive) | Err(_) => break,
                Ok(_) => continue,
            }
        }
    }
}

/// Restores default signal dispositions and an empty mask (Rust ignores SIGPIPE at start).
pub fn reset_signals() {
    use nix::sys::signal::{signal, sigprocmask, SigHandler, SigSet, SigmaskHow, Signal};
    for s in Signal::iterator() {
        if s == Signal::SIGKILL || s == Signal::SIGSTOP {
            continue;
        }
        // SAFETY: installing SIG_DFL is always sound.
        let _ = unsafe { signal(s, SigHandler::SigDfl) };
    }
    let _ = sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None);
}
