//! Running an extra process in a live container (`exec`), and waiting in the foreground for a
//! container process with signal forwarding and an optional pty proxy (`run`, `exec`).

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::PathBuf;

use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{ForkResult, Pid};
use oci_spec::runtime::{LinuxNamespaceType, Process};

use crate::container::{hand_over_pty, open_pty, take_tty, write_pid_file};
use crate::error::{io, sys, Result, RuntimeError};
use crate::namespaces::Plan;
use crate::state::{State, Status};
use crate::sys::{recv, send, Tag};

/// Options of `exec`, named like runc's flags.
#[derive(Debug, Clone)]
pub struct ExecOptions {
    pub root: PathBuf,
    pub id: String,
    pub process: Process,
    pub detach: bool,
    pub pid_file: Option<PathBuf>,
    pub console_socket: Option<PathBuf>,
    pub preserve_fds: u32,
}

/// Signals the foreground runtime forwards to the container process.
fn forwarded() -> SigSet {
    let mut s = SigSet::empty();
    for sig in [
        Signal::SIGINT,
        Signal::SIGTERM,
        Signal::SIGHUP,
        Signal::SIGQUIT,
        Signal::SIGUSR1,
        Signal::SIGUSR2,
        Signal::SIGWINCH,
        Signal::SIGCHLD,
        Signal::SIGCONT,
        Signal::SIGTSTP,
    ] {
        s.add(sig);
    }
    s
}

/// Prepares the calling process to wait for a container process it does not fork directly:
/// become a child subreaper and block the signals we forward (children reset their mask).
pub fn prepare_foreground() -> Result<()> {
    // SAFETY: prctl with constant arguments.
    if unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) } != 0 {
        return Err(RuntimeError::Sys(
            "set child subreaper".into(),
            nix::Error::last(),
        ));
    }
    nix::sys::signal::sigprocmask(SigmaskHow::SIG_BLOCK, Some(&forwarded()), None)
        .map_err(sys("block signals"))
}

/// Runs a process in a running container.
pub fn exec(opts: &ExecOptions) -> Result<i32> {
    let st = State::load(&opts.root, &opts.id)?;
    let status = st.status(&opts.root);
    if status != Status::Running && status != Status::Created {
        return Err(RuntimeError::State {
            id: opts.id.clone(),
            status: status.to_string(),
            msg: format!("cannot exec in a {status} container"),
        });
    }
    let terminal = opts.process.terminal().unwrap_or(false);
    if terminal && opts.detach && opts.console_socket.is_none() {
        return Err(RuntimeError::Other(
            "cannot allocate tty if berth-runc will detach without setting console socket".into(),
        ));
    }
    let linux = st.config.linux().clone().unwrap_or_default();
    let prepared = crate::process::prepare(
        &opts.process,
        linux.seccomp().as_ref(),
        opts.preserve_fds,
        false,
    )?;
    let types: Vec<LinuxNamespaceType> = linux
        .namespaces()
        .iter()
        .flatten()
        .map(|n| n.typ())
        .collect();
    let plan = Plan::of_pid(st.pid, &types)?;
    let rootdir = format!("/proc/{}/root", st.pid);
    let rootfd: OwnedFd = std::fs::File::open(&rootdir)
        .map_err(io("open", &rootdir))?
        .into();
    let console = match &opts.console_socket {
        Some(p) => Some(
            std::os::unix::net::UnixStream::connect(p).map_err(io("connect console socket", p))?,
        ),
        None => None,
    };
    let cg = st.cgroup()?;
    if !opts.detach {
        prepare_foreground()?;
    }
    let (parent_sock, child_sock) = crate::sys::seqpacket_pair().map_err(sys("socketpair"))?;
    let console_fd = console.as_ref().map(|c| c.as_raw_fd());
    // SAFETY: single-threaded; the child runs our code and exits.
    let x = match unsafe { nix::unistd::fork() }.map_err(sys("fork"))? {
        ForkResult::Child => {
            drop(parent_sock);
            let sock = child_sock.as_fd();
            let r = (|| -> Result<()> {
                crate::container::expect_go(sock)?;
                if let Some(adj) = opts.process.oom_score_adj() {
                    std::fs::write("/proc/self/oom_score_adj", adj.to_string())
                        .map_err(io("write", "/proc/self/oom_score_adj"))?;
                }
                plan.join_all()?;
                // SAFETY: single-threaded; the grandchild never returns.
                match unsafe { nix::unistd::fork() }.map_err(sys("fork"))? {
                    ForkResult::Child => {
                        let r = exec_child(
                            sock,
                            &rootfd,
                            terminal,
                            console_fd,
                            &opts.process,
                            &prepared,
                        );
                        crate::container::exit_child(sock, r.map(|_| ()))
                    }
                    ForkResult::Parent { child } => {
                        send(sock, Tag::Pid, &child.as_raw().to_le_bytes(), None)
                            .map_err(|e| RuntimeError::Init(format!("sync: {e}")))?;
                        Ok(())
                    }
                }
            })();
            crate::container::exit_child(sock, r)
        }
        ForkResult::Parent { child } => child,
    };
    drop(child_sock);
    let sock = parent_sock.as_fd();
    let mut pid = 0;
    let mut reaped = false;
    let result = (|| -> Result<Option<OwnedFd>> {
        cg.add_task(x.as_raw())?;
        send(sock, Tag::Go, &[], None).map_err(|e| RuntimeError::Init(format!("sync: {e}")))?;
        let mut pty = None;
        let mut ready = false;
        loop {
            match recv(sock).map_err(|e| RuntimeError::Init(format!("sync: {e}")))? {
                Some((Tag::Pid, p, _)) => {
                    pid = i32::from_le_bytes(
                        p.get(..4)
                            .and_then(|b| b.try_into().ok())
                            .unwrap_or_default(),
                    );
                    let _ = waitpid(x, None);
                    reaped = true;
                }
                Some((Tag::Pty, _, fd)) => pty = fd,
                Some((Tag::Ready, _, _)) => ready = true,
                Some((Tag::Error, p, _)) => {
                    return Err(RuntimeError::Init(String::from_utf8_lossy(&p).into_owned()))
                }
                Some((t, _, _)) => {
                    return Err(RuntimeError::Init(format!("sync: unexpected {t:?}")))
                }
                // The process exec'd (its end of the socket closed on exec).
                None if ready => return Ok(pty),
                None => {
                    return Err(RuntimeError::Init(
                        "exec process exited before it was ready".into(),
                    ))
                }
            }
        }
    })();
    if !reaped {
        if result.is_err() {
            let _ = nix::sys::signal::kill(x, Signal::SIGKILL);
        }
        let _ = waitpid(x, None);
    }
    let pty = match result {
        Ok(p) => p,
        Err(e) => {
            if pid > 0 {
                let _ = nix::sys::signal::kill(Pid::from_raw(pid), Signal::SIGKILL);
                let _ = waitpid(Pid::from_raw(pid), None);
            }
            return Err(e);
        }
    };
    if let Some(pf) = &opts.pid_file {
        write_pid_file(pf, pid)?;
    }
    if opts.detach {
        return Ok(0);
    }
    wait_foreground(pid, pty)
}

fn exec_child(
    sock: BorrowedFd<'_>,
    rootfd: &OwnedFd,
    terminal: bool,
    console: Option<i32>,
    process: &Process,
    prepared: &crate::process::Prepared,
) -> Result<std::convert::Infallible> {
    nix::unistd::fchdir(rootfd.as_raw_fd()).map_err(sys("chdir to container root"))?;
    nix::unistd::chroot(".").map_err(sys("chroot to container root"))?;
    nix::unistd::chdir("/").map_err(sys("chdir /"))?;
    let _ = nix::unistd::setsid();
    if terminal {
        let (master, slave, name) = open_pty(process.console_size())?;
        hand_over_pty(sock, console, &master, &name)?;
        drop(master);
        take_tty(&slave)?;
    }
    let exe = prepared.resolve_exe()?;
    let _notify = prepared.setup()?;
    send(sock, Tag::Ready, &[], None).map_err(|e| RuntimeError::Init(format!("sync: {e}")))?;
    prepared.exec(&exe)
}

/// Waits for `pid` (a child or an orphan reparented to us), forwarding signals and proxying a
/// pty if one is given. Returns the exit code the way a shell reports it.
pub fn wait_foreground(pid: i32, pty: Option<OwnedFd>) -> Result<i32> {
    let mask = forwarded();
    let sfd =
        nix::sys::signalfd::SignalFd::with_flags(&mask, nix::sys::signalfd::SfdFlags::SFD_CLOEXEC)
            .map_err(sys("signalfd"))?;
    let stdin = std::io::stdin();
    let raw = match &pty {
        Some(m) => {
            copy_winsize(m);
            RawTerm::enable(stdin.as_fd())
        }
        None => None,
    };
    let mut stdin_open = pty.is_some();
    let mut buf = vec![0u8; 32 * 1024];
    let code = loop {
        // Reap first: the exit may already have happened.
        if let Some(code) = reap(pid)? {
            break code;
        }
        let mut fds = vec![nix::poll::PollFd::new(
            sfd.as_fd(),
            nix::poll::PollFlags::POLLIN,
        )];
        if let Some(m) = &pty {
            fds.push(nix::poll::PollFd::new(
                m.as_fd(),
                nix::poll::PollFlags::POLLIN,
            ));
            if stdin_open {
                fds.push(nix::poll::PollFd::new(
                    stdin.as_fd(),
                    nix::poll::PollFlags::POLLIN,
                ));
            }
        }
        match nix::poll::poll(&mut fds, nix::poll::PollTimeout::NONE) {
            Ok(_) | Err(nix::Error::EINTR) => {}
            Err(e) => return Err(RuntimeError::Sys("poll".into(), e)),
        }
        let rev: Vec<_> = fds
            .iter()
            .map(|f| f.revents().unwrap_or(nix::poll::PollFlags::empty()))
            .collect();
        if !rev[0].is_empty() {
            if let Ok(Some(si)) = sfd.read_signal() {
                let sig = Signal::try_from(si.ssi_signo as i32).ok();
                match sig {
                    Some(Signal::SIGCHLD) | None => {}
                    Some(Signal::SIGWINCH) => {
                        if let Some(m) = &pty {
                            copy_winsize(m);
                        }
                    }
                    Some(s) => {
                        let _ = nix::sys::signal::kill(Pid::from_raw(pid), s);
                    }
                }
            }
        }
        if let Some(m) = &pty {
            if rev.len() > 1 && !rev[1].is_empty() {
                match nix::unistd::read(m.as_raw_fd(), &mut buf) {
                    Ok(n) if n > 0 => write_all(1, &buf[..n]),
                    _ => {}
                }
            }
            if rev.len() > 2 && !rev[2].is_empty() {
                match nix::unistd::read(0, &mut buf) {
                    Ok(n) if n > 0 => write_all(m.as_raw_fd(), &buf[..n]),
                    _ => {
                        stdin_open = false;
                        // Tell the terminal's reader that input ended.
                        write_all(m.as_raw_fd(), &[4]);
                    }
                }
            }
        }
    };
    if let Some(m) = &pty {
        // Drain what the process wrote before it exited.
        let _ = nix::fcntl::fcntl(
            m.as_raw_fd(),
            nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
        );
        while let Ok(n) = nix::unistd::read(m.as_raw_fd(), &mut buf) {
            if n == 0 {
                break;
            }
            write_all(1, &buf[..n]);
        }
    }
    drop(raw);
    Ok(code)
}

fn reap(pid: i32) -> Result<Option<i32>> {
    loop {
        match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(p, c)) if p.as_raw() == pid => return Ok(Some(c)),
            Ok(WaitStatus::Signaled(p, s, _)) if p.as_raw() == pid => {
                return Ok(Some(128 + s as i32))
            }
            Ok(WaitStatus::StillAlive) => return Ok(None),
            Ok(_) => continue,
            Err(nix::Error::ECHILD) => {
                // Not our child (should not happen with the subreaper set): poll /proc.
                return Ok(if std::path::Path::new(&format!("/proc/{pid}")).exists() {
                    None
                } else {
                    Some(0)
                });
            }
            Err(nix::Error::EINTR) => continue,
            Err(e) => return Err(RuntimeError::Sys("waitpid".into(), e)),
        }
    }
}

fn write_all(fd: i32, mut data: &[u8]) {
    while !data.is_empty() {
        // SAFETY: fd is a live descriptor owned by the caller for the duration of the call.
        match nix::unistd::write(unsafe { BorrowedFd::borrow_raw(fd) }, data) {
            Ok(n) if n > 0 => data = &data[n..],
            Err(nix::Error::EINTR) => {}
            Err(nix::Error::EAGAIN) => std::thread::sleep(std::time::Duration::from_millis(1)),
            _ => return,
        }
    }
}

fn copy_winsize(master: &OwnedFd) {
    let mut ws: libc::winsize = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ/TIOCSWINSZ with a valid winsize struct.
    unsafe {
        if libc::ioctl(0, libc::TIOCGWINSZ, &mut ws) == 0 {
            libc::ioctl(master.as_raw_fd(), libc::TIOCSWINSZ, &ws);
        }
    }
}

/// Puts a terminal in raw mode for the life of the value.
struct RawTerm {
    fd: i32,
    saved: nix::sys::termios::Termios,
}

impl RawTerm {
    fn enable(fd: BorrowedFd<'_>) -> Option<RawTerm> {
        let saved = nix::sys::termios::tcgetattr(fd).ok()?;
        let mut raw = saved.clone();
        nix::sys::termios::cfmakeraw(&mut raw);
        nix::sys::termios::tcsetattr(fd, nix::sys::termios::SetArg::TCSANOW, &raw).ok()?;
        Some(RawTerm {
            fd: fd.as_raw_fd(),
            saved,
        })
    }
}

impl Drop for RawTerm {
    fn drop(&mut self) {
        // SAFETY: the fd is stdin, open for the whole process.
        let fd = unsafe { BorrowedFd::borrow_raw(self.fd) };
        let _ = nix::sys::termios::tcsetattr(fd, nix::sys::termios::SetArg::TCSANOW, &self.saved);
    }
}

/// `run`: create, start and, unless detached, wait for the container and delete it.
pub fn run(opts: &crate::container::CreateOptions, detach: bool) -> Result<i32> {
    if !detach {
        prepare_foreground()?;
    }
    let mut o = opts.clone();
    o.want_pty_master = !detach && opts.console_socket.is_none();
    let created = crate::container::create(&o)?;
    if let Err(e) = crate::container::start(&opts.root, &opts.id) {
        let _ = crate::container::delete(&opts.root, &opts.id, true);
        return Err(e);
    }
    if detach {
        return Ok(0);
    }
    let code = wait_foreground(created.state.pid, created.pty_master);
    let del = crate::container::delete(&opts.root, &opts.id, true);
    let code = code?;
    del?;
    Ok(code)
}
