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
}

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
