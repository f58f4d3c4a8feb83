//! The shim daemon: creates and starts the container through the runtime (Berth's own, linked
//! in, or a runc-compatible binary), holds its stdio (pipes) or pty master, copies its output to the json-file log and to attached clients,
//! reaps it (child subreaper), records `exit.json`, and serves the control socket.
//!
//! Synchronous: one thread per output stream, one per connection, one reaper. The shim stays
//! until it is told `delete` (which also deletes the container) or `shutdown` (refused while
//! the container has not exited), so a restarted engine always finds it, its exit code and its
//! log.

use std::collections::HashMap;
use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use nix::fcntl::OFlag;
use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};

use crate::frame;
use crate::jsonlog::{self, Entry, Filter, LogWriter, Stream};
use crate::protocol::{
    AttachRequest, ContainerState, ExecRequest, ExecState, ExitInfo, LogsRequest, Reply, Request,
    Status, EXIT_FILE, LOG_FILE, MAX_REQUEST, PID_FILE, SHIM_LOG, SOCKET,
};
use crate::reaper::Reaper;

/// What the shim is started with (the flags of the binary).
#[derive(Debug, Clone)]
pub struct Config {
    pub id: String,
    pub bundle: PathBuf,
    /// The runc-compatible runtime binary.
    pub runtime: PathBuf,
    /// Its `--root`.
    pub runtime_root: PathBuf,
    /// Socket, pid file, log and exit.json go here.
    pub state_dir: PathBuf,
    pub tty: bool,
    /// Keep the container's stdin open for attach (`-i`).
    pub stdin: bool,
    pub log_max_size: Option<u64>,
    pub log_max_file: u32,
    /// Run `start` right after `create` (otherwise wait for a `start` request).
    pub start: bool,
    /// The runtime is Berth's own (`berth-runc`): create and start run its code in forked
    /// children of the shim and delete in the shim, instead of executing the binary (exec and
    /// kill still execute it). The shim must run from a read-only mount of its binary
    /// (`berth_runtime::safe_exe`), as the runtime does before it forks into a container.
    pub builtin: bool,
}

const THREAD_STACK: usize = 256 * 1024;
const PUMP_STACK: usize = 64 * 1024;
/// Messages queued for one slow client before it is dropped (the container never waits on it).
const CLIENT_QUEUE: usize = 1024;

/// Runs the shim. Unless `foreground`, forks: the parent returns (exit code 0) once the socket
/// answers and the container is created (and started), or prints why not (exit code 1); the
/// child detaches into its own session. Call it before any thread is started.
pub fn run(cfg: Config, foreground: bool) -> i32 {
    // Descriptors the starter leaked to us would be held for the container's whole life.
    // SAFETY: close_range on our own descriptor table, before anything of ours is open.
    unsafe { libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32) };
    if let Err(e) = fs::create_dir_all(&cfg.state_dir) {
        eprintln!("berth-shim: create {}: {e}", cfg.state_dir.display());
        return 1;
    }
    let (ready_r, ready_w) = match nix::unistd::pipe2(OFlag::O_CLOEXEC) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("berth-shim: pipe: {e}");
            return 1;
        }
    };
    if !foreground {
        // SAFETY: called from main before any other thread exists; both sides go on with
        // ordinary Rust code.
        match unsafe { nix::unistd::fork() } {
            Ok(nix::unistd::ForkResult::Parent { child }) => {
                drop(ready_w);
                let mut msg = read_ready(File::from(ready_r), child);
                if msg == "ok" {
                    return 0;
                }
                if msg.is_empty() {
                    msg = "shim exited during setup".into();
                }
                eprintln!("berth-shim: {msg}");
                return 1;
            }
            Ok(nix::unistd::ForkResult::Child) => {
                drop(ready_r);
                let _ = nix::unistd::setsid();
            }
            Err(e) => {
                eprintln!("berth-shim: fork: {e}");
                return 1;
            }
        }
    } else {
        drop(ready_r);
    }
    detach_stdio(&cfg.state_dir, foreground);
    let mut ready = File::from(ready_w);
    let dir = cfg.state_dir.clone();
    match setup(cfg) {
        Ok((shim, listener)) => {
            let _ = ready.write_all(b"ok\n");
            drop(ready);
            // What the set-up ran (the runtime's create, above all) need not stay resident
            // for the container's whole life.
            shed();
            serve(shim, listener);
            0
        }
        Err(msg) => {
            eprintln!("berth-shim: {msg}");
            let _ = fs::remove_file(dir.join(SOCKET));
            let _ = fs::remove_file(dir.join(PID_FILE));
            let _ = ready.write_all(format!("{}\n", msg.replace('\n', " ")).as_bytes());
            1
        }
    }
}

/// The daemonised shim's report: one line, "ok" or what failed. A container's init forked by
/// the built-in runtime holds the pipe until it executes, so the line, not the end of the
/// pipe, ends the report; the shim exiting without one is noticed too.
fn read_ready(pipe: File, shim: nix::unistd::Pid) -> String {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
    let mut reader = BufReader::new(pipe);
    loop {
        let ready = {
            let mut fds = [PollFd::new(reader.get_ref().as_fd(), PollFlags::POLLIN)];
            poll(&mut fds, PollTimeout::from(50u16)).unwrap_or(0) > 0
        };
        if ready {
            let mut line = String::new();
            let _ = reader.read_line(&mut line);
            return line.trim_end_matches('\n').to_string();
        }
        if !matches!(
            waitpid(shim, Some(WaitPidFlag::WNOHANG)),
            Ok(WaitStatus::StillAlive)
        ) {
            return String::new();
        }
    }
}

/// stdin and stdout to /dev/null, stderr to the shim's own log (unless in the foreground).
fn detach_stdio(state_dir: &Path, foreground: bool) {
    let null = OpenOptions::new().read(true).write(true).open("/dev/null");
    let err = OpenOptions::new()
        .create(true)
        .append(true)
        .open(state_dir.join(SHIM_LOG));
    if let Ok(null) = &null {
        for fd in [0, 1] {
            // SAFETY: dup2 onto our own stdio descriptors.
            unsafe { libc::dup2(null.as_raw_fd(), fd) };
        }
        if !foreground {
            let src = err
                .as_ref()
                .map(|f| f.as_raw_fd())
                .unwrap_or(null.as_raw_fd());
            // SAFETY: as above.
            unsafe { libc::dup2(src, 2) };
        }
    }
}

/// The container's state as the shim sees it.
struct St {
    pid: i32,
    status: Status,
    exit: Option<ExitInfo>,
}

struct ExecProc {
    pid: i32,
    exit: Option<i32>,
    master: Option<File>,
}

type Stdin = Arc<Mutex<Option<File>>>;

struct Shim {
    cfg: Config,
    reaper: Reaper,
    seq: AtomicU64,
    hub: Arc<Hub>,
    stdin: Stdin,
    master: Option<File>,
    st: Mutex<St>,
    st_cv: Condvar,
    execs: Mutex<HashMap<String, ExecProc>>,
    exec_cv: Condvar,
    /// The container's cgroup directories (from the runtime's state.json), for OOM events.
    cgroups: Vec<PathBuf>,
    /// The config has poststop hooks: the built-in runtime's delete would run them in this
    /// process, where the reaper thread could take their exit status, so delete executes the
    /// binary.
    late_hooks: bool,
}

/// Drops the pages of code run so far and returns free heap memory: a shim lives as long as
/// its container, and what it runs afterwards faults back in from the page cache.
fn shed() {
    berth_runtime::lean::lean_text_for_life();
    // SAFETY: malloc_trim only returns free heap memory to the kernel.
    unsafe { libc::malloc_trim(0) };
}

/// What the built-in runtime's create hands over.
struct Made {
    pid: i32,
    pumps: Vec<(Stream, File)>,
    stdin: Option<File>,
    master: Option<File>,
}

/// Runs `f` in a forked child of the shim and returns what it reported: a number and maybe a
/// descriptor. The built-in runtime's code then runs, and is paged in, in the child's address
/// space rather than the long-lived shim's, and its hooks' exit statuses are the child's to
/// wait for. Without `reaper` (during set-up, single-threaded) the child is waited for here;
/// with it, through it.
fn in_child(
    reaper: Option<&Reaper>,
    f: impl FnOnce() -> Result<(i32, Option<OwnedFd>), String>,
) -> Result<(i32, Option<OwnedFd>), String> {
    use berth_runtime::sys::{recv, send, seqpacket_pair, Tag};
    use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
    let (ours, theirs) = seqpacket_pair().map_err(|e| format!("socketpair: {e}"))?;
    // SAFETY: the child only runs the runtime's own code (fork-safe allocation, no lock another
    // thread of the shim could hold) and leaves with _exit.
    let child = match unsafe { nix::unistd::fork() }.map_err(|e| format!("fork: {e}"))? {
        nix::unistd::ForkResult::Child => {
            drop(ours);
            // A panic must not unwind out of here into the shim's own code.
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f))
                .unwrap_or_else(|_| Err("runtime child panicked".into()));
            let sent = match r {
                Ok((n, fd)) => send(
                    theirs.as_fd(),
                    Tag::Ready,
                    n.to_string().as_bytes(),
                    fd.as_ref().map(|f| f.as_raw_fd()),
                ),
                Err(m) => send(theirs.as_fd(), Tag::Error, m.as_bytes(), None),
            };
            // SAFETY: leaves the forked child without running the shim's exit handlers.
            unsafe { libc::_exit(i32::from(sent.is_err())) }
        }
        nix::unistd::ForkResult::Parent { child } => child,
    };
    drop(theirs);
    if let Some(r) = reaper {
        r.adopted();
    }
    // A container init forked by the child holds the other end until it executes: the
    // report, not the end of the socket, ends the wait (or the child's death, when waited
    // for here).
    let msg = loop {
        if reaper.is_none() {
            let mut fds = [nix::poll::PollFd::new(
                ours.as_fd(),
                nix::poll::PollFlags::POLLIN,
            )];
            let ready =
                nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(50u16)).unwrap_or(0) > 0;
            if !ready {
                if !matches!(
                    waitpid(child, Some(WaitPidFlag::WNOHANG)),
                    Ok(WaitStatus::StillAlive)
                ) {
                    break None;
                }
                continue;
            }
        }
        match recv(ours.as_fd()) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            r => break r.ok().flatten(),
        }
    };
    match reaper {
        Some(r) => {
            r.wait(child.as_raw());
        }
        None => {
            let _ = waitpid(child, None);
        }
    }
    match msg {
        Some((Tag::Ready, payload, fd)) => String::from_utf8_lossy(&payload)
            .parse()
            .map(|n| (n, fd))
            .map_err(|_| "runtime child: bad report".to_string()),
        Some((_, payload, _)) => Err(String::from_utf8_lossy(&payload).into_owned()),
        None => Err("runtime child exited without a report".into()),
    }
}

fn dev_null() -> Result<OwnedFd, String> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
        .map(OwnedFd::from)
        .map_err(|e| format!("open /dev/null: {e}"))
}

/// The runtime's `create`, in a child of the shim: the init's pid and the streams to pump.
fn create_builtin(cfg: &Config) -> Result<Made, String> {
    let opts = berth_runtime::container::CreateOptions {
        root: cfg.runtime_root.clone(),
        id: cfg.id.clone(),
        bundle: cfg.bundle.clone(),
        pid_file: None,
        console_socket: None,
        no_pivot: false,
        no_new_keyring: false,
        preserve_fds: 0,
        want_pty_master: cfg.tty,
    };
    // The init inherits the child's stdin, stdout and stderr (with a terminal, the runtime
    // gives it the pty instead).
    let (child_stdio, pumps, stdin) = if cfg.tty {
        ([dev_null()?, dev_null()?, dev_null()?], Vec::new(), None)
    } else {
        let (out_r, out_w) = pipe()?;
        let (err_r, err_w) = pipe()?;
        let (in_r, stdin) = if cfg.stdin {
            let (r, w) = pipe()?;
            (r, Some(File::from(w)))
        } else {
            (dev_null()?, None)
        };
        (
            [in_r, out_w, err_w],
            vec![
                (Stream::Stdout, File::from(out_r)),
                (Stream::Stderr, File::from(err_r)),
            ],
            stdin,
        )
    };
    let res = in_child(None, || {
        for (n, fd) in child_stdio.iter().enumerate() {
            // SAFETY: dup2 onto the child's own stdio descriptors 0-2.
            if unsafe { libc::dup2(fd.as_raw_fd(), n as i32) } < 0 {
                return Err(format!("set stdio: {}", io::Error::last_os_error()));
            }
        }
        let created =
            berth_runtime::container::create(&opts).map_err(|e| format!("runtime create: {e}"))?;
        Ok((created.state.pid, created.pty_master))
    });
    drop(child_stdio);
    let (pid, fd) = res?;
    if !cfg.tty {
        return Ok(Made {
            pid,
            pumps,
            stdin,
            master: None,
        });
    }
    let Some(master) = fd.map(File::from) else {
        let _ = berth_runtime::container::delete(&cfg.runtime_root, &cfg.id, true);
        return Err("runtime create: no pty master for a terminal container".into());
    };
    let dup = |m: &File| m.try_clone().map_err(|e| format!("dup pty master: {e}"));
    let stdin = if cfg.stdin { Some(dup(&master)?) } else { None };
    let out = dup(&master)?;
    Ok(Made {
        pid,
        pumps: vec![(Stream::Stdout, out)],
        stdin,
        master: Some(master),
    })
}

/// Whether the bundle's config has poststop hooks.
fn has_late_hooks(bundle: &Path) -> bool {
    let Ok(data) = fs::read(bundle.join("config.json")) else {
        return false;
    };
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(&data) else {
        return false;
    };
    v.get("hooks")
        .and_then(|h| h.get("poststop"))
        .and_then(|a| a.as_array())
        .is_some_and(|a| !a.is_empty())
}

fn setup(cfg: Config) -> Result<(Arc<Shim>, UnixListener), String> {
    let dir = cfg.state_dir.clone();
    // Checked first: std's spawn of a missing binary would race the reaper for its status.
    let executable = fs::metadata(&cfg.runtime)
        .map(|m| {
            m.is_file() && std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o111 != 0
        })
        .unwrap_or(false);
    if !executable {
        return Err(format!(
            "runtime {}: not an executable file",
            cfg.runtime.display()
        ));
    }
    // SAFETY: prctl with integer arguments only.
    if unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) } != 0 {
        return Err(format!(
            "set child subreaper: {}",
            io::Error::last_os_error()
        ));
    }
    // The built-in runtime forks into the container: that happens while this process has a
    // single thread, before the reaper could take the first child's exit from it, and before
    // the socket and the log are open (the init holds what is open until it executes).
    let made = if cfg.builtin {
        Some(create_builtin(&cfg)?)
    } else {
        None
    };
    let undo = |made: &Option<Made>| {
        if made.is_some() {
            let _ = berth_runtime::container::delete(&cfg.runtime_root, &cfg.id, true);
        }
    };
    if let Err(e) = write_atomic(
        &dir.join(PID_FILE),
        std::process::id().to_string().as_bytes(),
    ) {
        undo(&made);
        return Err(e);
    }
    let _ = fs::remove_file(dir.join(EXIT_FILE));
    let sock = dir.join(SOCKET);
    let _ = fs::remove_file(&sock);
    let listener = match UnixListener::bind(&sock) {
        Ok(l) => l,
        Err(e) => {
            undo(&made);
            return Err(format!("bind {}: {e}", sock.display()));
        }
    };
    let late_hooks = cfg.builtin && has_late_hooks(&cfg.bundle);
    let reaper = match Reaper::start() {
        Ok(r) => r,
        Err(e) => {
            undo(&made);
            return Err(format!("start reaper thread: {e}"));
        }
    };
    let log_path = dir.join(LOG_FILE);
    let log = match LogWriter::open(&log_path, cfg.log_max_size, cfg.log_max_file) {
        Ok(l) => l,
        Err(e) => {
            undo(&made);
            return Err(format!("open {}: {e}", log_path.display()));
        }
    };

    let mut shim = Shim {
        cfg,
        reaper,
        seq: AtomicU64::new(0),
        hub: Hub::new(Some(log), 0),
        stdin: Arc::new(Mutex::new(None)),
        master: None,
        st: Mutex::new(St {
            pid: 0,
            status: Status::Created,
            exit: None,
        }),
        st_cv: Condvar::new(),
        execs: Mutex::new(HashMap::new()),
        exec_cv: Condvar::new(),
        cgroups: Vec::new(),
        late_hooks,
    };
    let (pid, pumps) = match made {
        Some(m) => {
            *lock(&shim.stdin) = m.stdin;
            shim.master = m.master;
            shim.reaper.adopted();
            (m.pid, m.pumps)
        }
        None => shim.create()?,
    };
    shim.cgroups = runtime_cgroups(&shim.cfg.runtime_root, &shim.cfg.id);
    if let Ok(mut st) = shim.st.lock() {
        st.pid = pid;
    }
    let shim = Arc::new(shim);
    shim.hub.start_pumps(pumps);
    let me = shim.clone();
    std::thread::Builder::new()
        .name("monitor".into())
        .stack_size(THREAD_STACK)
        .spawn(move || me.monitor(pid))
        .map_err(|e| format!("start monitor thread: {e}"))?;
    if shim.cfg.start {
        if let Err(e) = shim.start() {
            let _ = shim.runtime_delete(true);
            return Err(e);
        }
    }
    Ok((shim, listener))
}

fn null3() -> [Stdio; 3] {
    [Stdio::null(), Stdio::null(), Stdio::null()]
}

fn pipe() -> Result<(OwnedFd, OwnedFd), String> {
    nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(|e| format!("pipe: {e}"))
}

fn write_atomic(path: &Path, data: &[u8]) -> Result<(), String> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    fs::write(&tmp, data).map_err(|e| format!("write {}: {e}", tmp.display()))?;
    fs::rename(&tmp, path).map_err(|e| format!("rename {}: {e}", tmp.display()))
}

fn read_pid(path: &Path) -> Result<i32, String> {
    let text = fs::read_to_string(path).map_err(|e| format!("read {}: {e}", path.display()))?;
    text.trim()
        .parse()
        .map_err(|_| format!("{}: not a pid: {text:?}", path.display()))
}

/// Accepts the runtime's connection on a console socket and receives the pty master.
fn recv_master(listener: &UnixListener, path: &Path) -> Result<File, String> {
    listener
        .set_nonblocking(true)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let (conn, _) = listener
        .accept()
        .map_err(|e| format!("{}: the runtime sent no pty master: {e}", path.display()))?;
    conn.set_nonblocking(false)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    conn.set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let mut name = [0u8; 4096];
    let mut iov = [io::IoSliceMut::new(&mut name)];
    let mut space = nix::cmsg_space!([RawFd; 1]);
    let msg = recvmsg::<()>(
        conn.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )
    .map_err(|e| format!("receive pty master on {}: {e}", path.display()))?;
    for c in msg
        .cmsgs()
        .map_err(|e| format!("receive pty master on {}: {e}", path.display()))?
    {
        if let ControlMessageOwned::ScmRights(fds) = c {
            if let Some(&fd) = fds.first() {
                for &extra in &fds[1..] {
                    // SAFETY: extra descriptors we were just given and own.
                    drop(unsafe { OwnedFd::from_raw_fd(extra) });
                }
                // SAFETY: the descriptor was just received and nobody else owns it.
                return Ok(unsafe { File::from_raw_fd(fd) });
            }
        }
    }
    Err(format!("no pty master received on {}", path.display()))
}

/// Cgroup directories recorded in `<root>/<id>/state.json`.
fn runtime_cgroups(root: &Path, id: &str) -> Vec<PathBuf> {
    let path = root.join(id).join("state.json");
    let Ok(data) = fs::read(&path) else {
        return Vec::new();
    };
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(&data) else {
        return Vec::new();
    };
    let mut dirs: Vec<PathBuf> = v
        .get("cgroup_paths")
        .and_then(|m| m.as_object())
        .map(|m| {
            m.values()
                .filter_map(|p| p.as_str().map(PathBuf::from))
                .collect()
        })
        .unwrap_or_default();
    dirs.sort();
    dirs.dedup();
    dirs
}

/// Whether the memory cgroup recorded an OOM kill (v1 `memory.oom_control`, v2
/// `memory.events`).
fn oom_killed(dirs: &[PathBuf]) -> bool {
    for d in dirs {
        for f in ["memory.events", "memory.oom_control"] {
            if let Ok(text) = fs::read_to_string(d.join(f)) {
                for line in text.lines() {
                    if let Some(n) = line.strip_prefix("oom_kill ") {
                        if n.trim().parse::<u64>().unwrap_or(0) > 0 {
                            return true;
                        }
                    }
                }
            }
        }
    }
    false
}

/// The last error message in a runtime `--log-format json` file.
fn runtime_error(log: &Path) -> Option<String> {
    let text = fs::read_to_string(log).ok()?;
    text.lines().rev().find_map(|l| {
        let v: serde_json::Value = serde_json::from_str(l).ok()?;
        (v.get("level")?.as_str()? == "error").then(|| v.get("msg")?.as_str().map(String::from))?
    })
}

fn valid_exec_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        && id != "."
        && id != ".."
}

impl Shim {
    /// Runs the runtime with `args` and the given stdio; Err carries its error message.
    fn runtime(&self, args: &[&str], stdio: [Stdio; 3]) -> Result<(), String> {
        self.runtime_os(&args.iter().map(OsString::from).collect::<Vec<_>>(), stdio)
    }

    fn runtime_os(&self, args: &[OsString], stdio: [Stdio; 3]) -> Result<(), String> {
        let n = self.seq.fetch_add(1, Ordering::Relaxed);
        let log = self.cfg.state_dir.join(format!("runtime-{n}.log"));
        let [i, o, e] = stdio;
        let child = {
            let mut cmd = Command::new(&self.cfg.runtime);
            cmd.arg("--root")
                .arg(&self.cfg.runtime_root)
                .arg("--log")
                .arg(&log)
                .arg("--log-format")
                .arg("json")
                .args(args)
                .stdin(i)
                .stdout(o)
                .stderr(e);
            // The command (and the pipe ends it holds) is dropped at the end of this block.
            self.reaper
                .spawn(&mut cmd)
                .map_err(|e| format!("run {}: {e}", self.cfg.runtime.display()))?
        };
        let code = self.reaper.wait(child.id() as i32);
        let what = args
            .first()
            .map(|a| a.to_string_lossy().into_owned())
            .unwrap_or_default();
        let res = if code == 0 {
            Ok(())
        } else {
            Err(match runtime_error(&log) {
                Some(m) => format!("runtime {what}: {m}"),
                None => format!("runtime {what}: exit code {code}"),
            })
        };
        let _ = fs::remove_file(&log);
        res
    }

    /// `runtime create`; returns the init pid and the output streams to pump.
    fn create(&mut self) -> Result<(i32, Vec<(Stream, File)>), String> {
        let dir = self.cfg.state_dir.clone();
        let pid_file = dir.join("init.pid");
        let _ = fs::remove_file(&pid_file);
        let mut args: Vec<OsString> = vec![
            "create".into(),
            "--bundle".into(),
            self.cfg.bundle.clone().into(),
            "--pid-file".into(),
            pid_file.clone().into(),
        ];
        let pumps = if self.cfg.tty {
            let sock = dir.join("console.sock");
            let _ = fs::remove_file(&sock);
            let listener =
                UnixListener::bind(&sock).map_err(|e| format!("bind {}: {e}", sock.display()))?;
            args.extend(["--console-socket".into(), sock.clone().into()]);
            args.push(self.cfg.id.clone().into());
            let res = self
                .runtime_os(&args, null3())
                .and_then(|_| recv_master(&listener, &sock));
            let _ = fs::remove_file(&sock);
            let master = res?;
            let dup = |m: &File| m.try_clone().map_err(|e| format!("dup pty master: {e}"));
            if self.cfg.stdin {
                *lock(&self.stdin) = Some(dup(&master)?);
            }
            let out = dup(&master)?;
            self.master = Some(master);
            vec![(Stream::Stdout, out)]
        } else {
            let (out_r, out_w) = pipe()?;
            let (err_r, err_w) = pipe()?;
            let stdin = if self.cfg.stdin {
                let (in_r, in_w) = pipe()?;
                *lock(&self.stdin) = Some(File::from(in_w));
                Stdio::from(in_r)
            } else {
                Stdio::null()
            };
            args.push(self.cfg.id.clone().into());
            let res = self.runtime_os(&args, [stdin, Stdio::from(out_w), Stdio::from(err_w)]);
            if let Err(e) = res {
                *lock(&self.stdin) = None;
                return Err(e);
            }
            vec![
                (Stream::Stdout, File::from(out_r)),
                (Stream::Stderr, File::from(err_r)),
            ]
        };
        self.reaper.adopted();
        let pid = read_pid(&pid_file)?;
        Ok((pid, pumps))
    }

    fn start(&self) -> Result<(), String> {
        {
            let st = lock(&self.st);
            if st.status != Status::Created {
                return Err(format!("container {} is not in created state", self.cfg.id));
            }
        }
        if self.cfg.builtin {
            let (root, id) = (&self.cfg.runtime_root, &self.cfg.id);
            in_child(Some(&self.reaper), || {
                berth_runtime::container::start(root, id)
                    .map(|_| (0, None))
                    .map_err(|e| format!("runtime start: {e}"))
            })?;
        } else {
            self.runtime(&["start", &self.cfg.id], null3())?;
        }
        let mut st = lock(&self.st);
        if st.status == Status::Created {
            st.status = Status::Running;
        }
        Ok(())
    }

    /// Waits for the init, its output to drain, and records the exit.
    fn monitor(&self, pid: i32) {
        let code = self.reaper.wait(pid);
        // Everything the container wrote is in the log before anyone hears it exited.
        self.hub.wait_closed(Duration::from_secs(5));
        let info = ExitInfo {
            exit_code: code,
            exited_at: jsonlog::now_rfc3339(),
            oom_killed: oom_killed(&self.cgroups),
        };
        if let Ok(data) = serde_json::to_vec(&info) {
            if let Err(e) = write_atomic(&self.cfg.state_dir.join(EXIT_FILE), &data) {
                eprintln!("berth-shim: {e}");
            }
        }
        let mut st = lock(&self.st);
        st.status = Status::Stopped;
        st.exit = Some(info);
        self.st_cv.notify_all();
    }

    fn state(&self) -> ContainerState {
        let st = lock(&self.st);
        ContainerState {
            id: self.cfg.id.clone(),
            pid: st.pid,
            status: st.status,
            tty: self.cfg.tty,
            shim_pid: std::process::id() as i32,
            exit: st.exit.clone(),
        }
    }

    fn wait_exit(&self, timeout: Option<Duration>) -> Option<ExitInfo> {
        let mut st = lock(&self.st);
        let deadline = timeout.map(|t| std::time::Instant::now() + t);
        loop {
            if let Some(e) = &st.exit {
                return Some(e.clone());
            }
            let step = match deadline {
                Some(d) => {
                    let now = std::time::Instant::now();
                    if now >= d {
                        return None;
                    }
                    d - now
                }
                None => Duration::from_secs(60),
            };
            st = match self.st_cv.wait_timeout(st, step) {
                Ok((g, _)) => g,
                Err(_) => return None,
            };
        }
    }

    fn resize(&self, height: u16, width: u16, exec: Option<&str>) -> Result<(), String> {
        let ws = libc::winsize {
            ws_row: height,
            ws_col: width,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        let apply = |m: &File| -> Result<(), String> {
            // SAFETY: TIOCSWINSZ reads a winsize struct that lives across the call.
            let r = unsafe { libc::ioctl(m.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
            if r != 0 {
                return Err(format!("resize: {}", io::Error::last_os_error()));
            }
            Ok(())
        };
        match exec {
            None => match &self.master {
                Some(m) => apply(m),
                None => Err(format!("container {} has no tty", self.cfg.id)),
            },
            Some(id) => {
                let execs = lock(&self.execs);
                match execs.get(id) {
                    Some(ExecProc {
                        master: Some(m), ..
                    }) => apply(m),
                    Some(_) => Err(format!("exec {id} has no tty")),
                    None => Err(format!("no such exec: {id}")),
                }
            }
        }
    }

    /// The runtime's `delete` (with `force`, a container that still runs is killed).
    fn runtime_delete(&self, force: bool) -> Result<(), String> {
        if self.cfg.builtin && !self.late_hooks {
            return berth_runtime::container::delete(&self.cfg.runtime_root, &self.cfg.id, force)
                .map_err(|e| format!("runtime delete: {e}"));
        }
        let mut args = vec!["delete"];
        if force {
            args.push("--force");
        }
        args.push(&self.cfg.id);
        self.runtime(&args, null3())
    }

    fn kill(&self, signal: i32, all: bool) -> Result<(), String> {
        let sig = signal.to_string();
        let mut args = vec!["kill"];
        if all {
            args.push("--all");
        }
        args.extend([self.cfg.id.as_str(), sig.as_str()]);
        self.runtime(&args, null3())
    }

    fn delete(&self, force: bool) -> Result<(), String> {
        self.runtime_delete(force)?;
        // The init is gone now: record its exit before going away.
        if self.wait_exit(Some(Duration::from_secs(10))).is_none() {
            eprintln!(
                "berth-shim: container {} deleted but its exit was not seen",
                self.cfg.id
            );
        }
        Ok(())
    }

    /// Removes the socket and pid file: the shim is about to exit.
    fn cleanup(&self) {
        let _ = fs::remove_file(self.cfg.state_dir.join(SOCKET));
        let _ = fs::remove_file(self.cfg.state_dir.join(PID_FILE));
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

// ---------------------------------------------------------------------------------------
// Output fan-out.

enum Msg {
    Raw(Stream, Arc<[u8]>),
    Entry(Arc<Entry>),
}

struct Sub {
    entries: bool,
    stdout: bool,
    stderr: bool,
    tx: SyncSender<Msg>,
}

impl Sub {
    fn wants(&self, s: Stream) -> bool {
        match s {
            Stream::Stdout => self.stdout,
            Stream::Stderr => self.stderr,
        }
    }

    /// False when the subscriber is gone or too slow (then it is dropped).
    fn send(&self, msg: Msg) -> bool {
        !matches!(
            self.tx.try_send(msg),
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_))
        )
    }
}

struct HubInner {
    subs: Vec<Sub>,
    log: Option<LogWriter>,
    open: usize,
    closed: bool,
}

/// Copies output streams to the log and to subscribers.
struct Hub {
    inner: Mutex<HubInner>,
    cv: Condvar,
}

impl Hub {
    fn new(log: Option<LogWriter>, open: usize) -> Arc<Hub> {
        Arc::new(Hub {
            inner: Mutex::new(HubInner {
                subs: Vec::new(),
                log,
                open,
                closed: false,
            }),
            cv: Condvar::new(),
        })
    }

    fn start_pumps(self: &Arc<Self>, pumps: Vec<(Stream, File)>) {
        lock(&self.inner).open = pumps.len();
        if pumps.is_empty() {
            self.close_one();
        }
        for (stream, src) in pumps {
            let hub = self.clone();
            let started = std::thread::Builder::new()
                .name("pump".into())
                .stack_size(PUMP_STACK)
                .spawn(move || hub.pump(stream, src));
            if let Err(e) = started {
                eprintln!("berth-shim: start output thread: {e}");
                self.close_one();
            }
        }
    }

    fn pump(&self, stream: Stream, mut src: File) {
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            match src.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    let mut g = lock(&self.inner);
                    let entries = match g.log.as_mut() {
                        Some(l) => l.write(stream, &buf[..n]),
                        None => Vec::new(),
                    };
                    let raw: Arc<[u8]> = buf[..n].into();
                    let entries: Vec<Arc<Entry>> = entries.into_iter().map(Arc::new).collect();
                    g.subs.retain(|s| {
                        if !s.wants(stream) {
                            return true;
                        }
                        if s.entries {
                            entries.iter().all(|e| s.send(Msg::Entry(e.clone())))
                        } else {
                            s.send(Msg::Raw(stream, raw.clone()))
                        }
                    });
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                // EIO on a pty master once every slave is closed: the end.
                Err(_) => break,
            }
        }
        let mut g = lock(&self.inner);
        if let Some(e) = g.log.as_mut().and_then(|l| l.flush(stream)) {
            let e = Arc::new(e);
            g.subs
                .retain(|s| !s.entries || !s.wants(stream) || s.send(Msg::Entry(e.clone())));
        }
        drop(g);
        self.close_one();
    }

    fn close_one(&self) {
        let mut g = lock(&self.inner);
        g.open = g.open.saturating_sub(1);
        if g.open == 0 {
            g.closed = true;
            g.subs.clear();
            self.cv.notify_all();
        }
    }

    fn wait_closed(&self, timeout: Duration) -> bool {
        let g = lock(&self.inner);
        match self.cv.wait_timeout_while(g, timeout, |g| !g.closed) {
            Ok((g, _)) => g.closed,
            Err(_) => false,
        }
    }

    /// A consistent start: the log as written so far (if `snapshot`) and, unless the output
    /// has ended, a receiver of what comes after.
    fn subscribe(
        &self,
        entries: bool,
        stdout: bool,
        stderr: bool,
        snapshot: bool,
        live: bool,
    ) -> (Vec<Box<dyn Read + Send>>, Option<Receiver<Msg>>) {
        let mut g = lock(&self.inner);
        let files = match (&g.log, snapshot) {
            (Some(l), true) => l.snapshot(),
            _ => Vec::new(),
        };
        let rx = if live && !g.closed {
            let (tx, rx) = sync_channel(CLIENT_QUEUE);
            g.subs.push(Sub {
                entries,
                stdout,
                stderr,
                tx,
            });
            Some(rx)
        } else {
            None
        };
        (files, rx)
    }
}

// ---------------------------------------------------------------------------------------
// The control socket.

fn serve(shim: Arc<Shim>, listener: UnixListener) {
    for conn in listener.incoming() {
        let conn = match conn {
            Ok(c) => c,
            Err(e) => {
                eprintln!("berth-shim: accept: {e}");
                std::thread::sleep(Duration::from_millis(100));
                continue;
            }
        };
        let me = shim.clone();
        let spawned = std::thread::Builder::new()
            .name("conn".into())
            .stack_size(THREAD_STACK)
            .spawn(move || handle(&me, conn));
        if let Err(e) = spawned {
            eprintln!("berth-shim: start connection thread: {e}");
        }
    }
}

fn reply(conn: &mut UnixStream, r: Result<serde_json::Value, String>) -> bool {
    let r = match r {
        Ok(v) => Reply {
            ok: true,
            result: Some(v),
            error: None,
        },
        Err(e) => Reply {
            ok: false,
            result: None,
            error: Some(e),
        },
    };
    let mut line = serde_json::to_vec(&r).unwrap_or_else(|_| b"{\"ok\":false}".to_vec());
    line.push(b'\n');
    conn.write_all(&line).is_ok()
}

fn to_value<T: serde::Serialize>(v: &T) -> Result<serde_json::Value, String> {
    serde_json::to_value(v).map_err(|e| e.to_string())
}

fn handle(shim: &Arc<Shim>, mut conn: UnixStream) {
    let Ok(read_half) = conn.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(read_half);
    let mut line = Vec::new();
    if (&mut reader)
        .take(MAX_REQUEST as u64)
        .read_until(b'\n', &mut line)
        .is_err()
    {
        return;
    }
    let req: Request = match serde_json::from_slice(&line) {
        Ok(r) => r,
        Err(e) => {
            reply(&mut conn, Err(format!("bad request: {e}")));
            return;
        }
    };
    match req {
        Request::State => {
            reply(&mut conn, to_value(&shim.state()));
        }
        Request::Start => {
            reply(&mut conn, shim.start().map(|_| serde_json::Value::Null));
        }
        Request::Wait => {
            let r = shim
                .wait_exit(None)
                .ok_or_else(|| "wait interrupted".to_string())
                .and_then(|e| to_value(&e));
            reply(&mut conn, r);
        }
        Request::Kill { signal, all } => {
            let r = shim.kill(signal, all).map(|_| serde_json::Value::Null);
            reply(&mut conn, r);
        }
        Request::Resize {
            height,
            width,
            exec,
        } => {
            let r = shim
                .resize(height, width, exec.as_deref())
                .map(|_| serde_json::Value::Null);
            reply(&mut conn, r);
        }
        Request::Attach(a) => attach(shim, a, conn, reader),
        Request::Exec(e) => exec(shim, e, conn, reader),
        Request::ExecState { id } => {
            let execs = lock(&shim.execs);
            let r = match execs.get(&id) {
                Some(p) => to_value(&ExecState {
                    id: id.clone(),
                    pid: p.pid,
                    running: p.exit.is_none(),
                    exit_code: p.exit,
                }),
                None => Err(format!("no such exec: {id}")),
            };
            drop(execs);
            reply(&mut conn, r);
        }
        Request::Logs(l) => logs(shim, l, conn),
        Request::Delete { force } => match shim.delete(force) {
            Ok(()) => {
                shim.cleanup();
                reply(&mut conn, Ok(serde_json::Value::Null));
                let _ = conn.shutdown(std::net::Shutdown::Both);
                std::process::exit(0);
            }
            Err(e) => {
                reply(&mut conn, Err(e));
            }
        },
        Request::Shutdown => {
            if shim.state().status != Status::Stopped {
                reply(
                    &mut conn,
                    Err(format!(
                        "container {} has not exited: kill it first",
                        shim.cfg.id
                    )),
                );
                return;
            }
            shim.cleanup();
            reply(&mut conn, Ok(serde_json::Value::Null));
            let _ = conn.shutdown(std::net::Shutdown::Both);
            std::process::exit(0);
        }
    }
}

/// Writes one chunk to a client: raw with a tty, framed without.
fn send(conn: &mut UnixStream, tty: bool, stream: Stream, data: &[u8]) -> io::Result<()> {
    if tty {
        conn.write_all(data)
    } else {
        frame::write_frame(conn, stream.frame_type(), data)
    }
}

fn send_entry(conn: &mut UnixStream, tty: bool, e: &Entry, timestamps: bool) -> io::Result<()> {
    if timestamps {
        let mut data = Vec::with_capacity(e.time.len() + 1 + e.log.len());
        data.extend_from_slice(e.time.as_bytes());
        data.push(b' ');
        data.extend_from_slice(&e.log);
        send(conn, tty, e.stream, &data)
    } else {
        send(conn, tty, e.stream, &e.log)
    }
}

/// Copies the client's bytes to `stdin`; at the client's EOF closes it when `close_on_eof`
/// (unless the stream already ended from our side).
fn spawn_stdin_copy(
    mut reader: BufReader<UnixStream>,
    stdin: Stdin,
    close_on_eof: bool,
    ended: Arc<AtomicBool>,
) {
    let spawned = std::thread::Builder::new()
        .name("stdin".into())
        .stack_size(PUMP_STACK)
        .spawn(move || {
            let mut buf = vec![0u8; 32 * 1024];
            loop {
                match reader.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => {
                        if let Some(f) = lock(&stdin).as_mut() {
                            // A container that closed its stdin is not an error of the client.
                            let _ = f.write_all(&buf[..n]);
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(_) => break,
                }
            }
            if close_on_eof && !ended.load(Ordering::SeqCst) {
                lock(&stdin).take();
            }
        });
    if let Err(e) = spawned {
        eprintln!("berth-shim: start stdin thread: {e}");
    }
}

fn finish(conn: &UnixStream, ended: &AtomicBool) {
    ended.store(true, Ordering::SeqCst);
    let _ = conn.shutdown(std::net::Shutdown::Both);
}

fn attach(shim: &Arc<Shim>, a: AttachRequest, mut conn: UnixStream, reader: BufReader<UnixStream>) {
    let tty = shim.cfg.tty;
    let (files, rx) = shim.hub.subscribe(false, a.stdout, a.stderr, a.logs, true);
    if !reply(&mut conn, Ok(serde_json::Value::Null)) {
        return;
    }
    let ended = Arc::new(AtomicBool::new(false));
    if a.stdin && shim.cfg.stdin {
        spawn_stdin_copy(reader, shim.stdin.clone(), !tty, ended.clone());
    }
    let filter = Filter {
        stdout: a.stdout,
        stderr: a.stderr,
        ..Default::default()
    };
    for e in jsonlog::read_entries(files, &filter, None) {
        if send_entry(&mut conn, tty, &e, false).is_err() {
            return finish(&conn, &ended);
        }
    }
    if let Some(rx) = rx {
        for msg in rx {
            let r = match msg {
                Msg::Raw(s, d) => send(&mut conn, tty, s, &d),
                Msg::Entry(e) => send_entry(&mut conn, tty, &e, false),
            };
            if r.is_err() {
                break;
            }
        }
    }
    finish(&conn, &ended);
}

fn logs(shim: &Arc<Shim>, l: LogsRequest, mut conn: UnixStream) {
    if !l.stdout && !l.stderr {
        reply(
            &mut conn,
            Err("choose at least one of stdout and stderr".into()),
        );
        return;
    }
    let tty = shim.cfg.tty;
    let (files, rx) = shim.hub.subscribe(true, l.stdout, l.stderr, true, l.follow);
    if !reply(&mut conn, Ok(serde_json::Value::Null)) {
        return;
    }
    let filter = Filter {
        stdout: l.stdout,
        stderr: l.stderr,
        since: l.since,
        until: l.until,
    };
    let ended = AtomicBool::new(false);
    for e in jsonlog::read_entries(files, &filter, l.tail) {
        if send_entry(&mut conn, tty, &e, l.timestamps).is_err() {
            return finish(&conn, &ended);
        }
    }
    if let Some(rx) = rx {
        for msg in rx {
            if let Msg::Entry(e) = msg {
                if filter.accepts(&e) && send_entry(&mut conn, tty, &e, l.timestamps).is_err() {
                    break;
                }
            }
        }
    }
    finish(&conn, &ended);
}

fn exec(shim: &Arc<Shim>, req: ExecRequest, mut conn: UnixStream, reader: BufReader<UnixStream>) {
    match start_exec(shim, &req) {
        Ok((pid, pumps, stdin)) => {
            let hub = Hub::new(None, 0);
            let (_, rx) = hub.subscribe(false, true, true, false, true);
            hub.start_pumps(pumps);
            if !reply(&mut conn, Ok(serde_json::json!({ "pid": pid }))) {
                return;
            }
            let ended = Arc::new(AtomicBool::new(false));
            if req.stdin {
                spawn_stdin_copy(reader, stdin, !req.tty, ended.clone());
            }
            if let Some(rx) = rx {
                for msg in rx {
                    if let Msg::Raw(s, d) = msg {
                        if send(&mut conn, req.tty, s, &d).is_err() {
                            break;
                        }
                    }
                }
            }
            // The stream ends once the process has exited, so exec-state has its code.
            let mut execs = lock(&shim.execs);
            while execs.get(&req.id).is_some_and(|p| p.exit.is_none()) {
                execs = shim
                    .exec_cv
                    .wait_timeout(execs, Duration::from_secs(1))
                    .unwrap_or_else(|p| p.into_inner())
                    .0;
            }
            drop(execs);
            finish(&conn, &ended);
        }
        Err(e) => {
            reply(&mut conn, Err(e));
        }
    }
}

type ExecStart = (i32, Vec<(Stream, File)>, Stdin);

/// `runtime exec --detach`; registers the process and a thread that records its exit.
fn start_exec(shim: &Arc<Shim>, req: &ExecRequest) -> Result<ExecStart, String> {
    let id = &req.id;
    if !valid_exec_id(id) {
        return Err(format!(
            "invalid exec id {id:?}: use letters, digits, '-', '_' and '.'"
        ));
    }
    if shim.state().status != Status::Running {
        return Err(format!("container {} is not running", shim.cfg.id));
    }
    {
        let mut execs = lock(&shim.execs);
        if execs.contains_key(id) {
            return Err(format!("exec {id} already exists"));
        }
        // Reserve the id while the process is being made.
        execs.insert(
            id.clone(),
            ExecProc {
                pid: 0,
                exit: None,
                master: None,
            },
        );
    }
    let res = spawn_exec(shim, req);
    if res.is_err() {
        lock(&shim.execs).remove(id);
    }
    res
}

fn spawn_exec(shim: &Arc<Shim>, req: &ExecRequest) -> Result<ExecStart, String> {
    let id = &req.id;
    let dir = &shim.cfg.state_dir;
    let mut process = req.process.clone();
    let Some(obj) = process.as_object_mut() else {
        return Err(format!("exec {id}: process must be a JSON object"));
    };
    obj.insert("terminal".into(), serde_json::Value::Bool(req.tty));
    let proc_file = dir.join(format!("exec-{id}.json"));
    let pid_file = dir.join(format!("exec-{id}.pid"));
    let data = serde_json::to_vec(&process).map_err(|e| format!("exec {id}: {e}"))?;
    fs::write(&proc_file, data).map_err(|e| format!("write {}: {e}", proc_file.display()))?;
    let _ = fs::remove_file(&pid_file);
    let mut args: Vec<OsString> = vec![
        "exec".into(),
        "--detach".into(),
        "--process".into(),
        proc_file.clone().into(),
        "--pid-file".into(),
        pid_file.clone().into(),
    ];
    let stdin: Stdin = Arc::new(Mutex::new(None));
    let (pumps, master) = if req.tty {
        // Short, whatever the exec id: a socket path must fit in sun_path (108 bytes).
        static CONSOLES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = CONSOLES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let sock = dir.join(format!("c{n}.sock"));
        let _ = fs::remove_file(&sock);
        let listener =
            UnixListener::bind(&sock).map_err(|e| format!("bind {}: {e}", sock.display()))?;
        args.extend(["--console-socket".into(), sock.clone().into()]);
        args.push(shim.cfg.id.clone().into());
        let res = shim
            .runtime_os(&args, null3())
            .and_then(|_| recv_master(&listener, &sock));
        let _ = fs::remove_file(&sock);
        let master = res?;
        let dup = |m: &File| m.try_clone().map_err(|e| format!("dup pty master: {e}"));
        if req.stdin {
            *lock(&stdin) = Some(dup(&master)?);
        }
        (vec![(Stream::Stdout, dup(&master)?)], Some(master))
    } else {
        let (out_r, out_w) = pipe()?;
        let (err_r, err_w) = pipe()?;
        let in_stdio = if req.stdin {
            let (in_r, in_w) = pipe()?;
            *lock(&stdin) = Some(File::from(in_w));
            Stdio::from(in_r)
        } else {
            Stdio::null()
        };
        args.push(shim.cfg.id.clone().into());
        shim.runtime_os(&args, [in_stdio, Stdio::from(out_w), Stdio::from(err_w)])?;
        (
            vec![
                (Stream::Stdout, File::from(out_r)),
                (Stream::Stderr, File::from(err_r)),
            ],
            None,
        )
    };
    shim.reaper.adopted();
    let pid = read_pid(&pid_file)?;
    let _ = fs::remove_file(&proc_file);
    let _ = fs::remove_file(&pid_file);
    if let Some(p) = lock(&shim.execs).get_mut(id) {
        p.pid = pid;
        p.master = master;
    }
    let me = shim.clone();
    let exec_id = id.clone();
    std::thread::Builder::new()
        .name("exec-wait".into())
        .stack_size(PUMP_STACK)
        .spawn(move || {
            let code = me.reaper.wait(pid);
            if let Some(p) = lock(&me.execs).get_mut(&exec_id) {
                p.exit = Some(code);
                p.master = None;
            }
            me.exec_cv.notify_all();
        })
        .map_err(|e| format!("exec {id}: start wait thread: {e}"))?;
    Ok((pid, pumps, stdin))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exec_ids() {
        assert!(valid_exec_id("e1-a_b.c"));
        for bad in ["", ".", "..", "a/b", "a b", &"x".repeat(65)] {
            assert!(!valid_exec_id(bad), "{bad:?}");
        }
    }

    #[test]
    fn runtime_errors_are_read_from_json_logs() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("l");
        fs::write(
            &p,
            "{\"level\":\"debug\",\"msg\":\"x\"}\n{\"level\":\"error\",\"msg\":\"container not found\"}\n",
        )
        .unwrap();
        assert_eq!(runtime_error(&p).as_deref(), Some("container not found"));
    }

    #[test]
    fn oom_counts() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(
            dir.path().join("memory.oom_control"),
            "oom_kill_disable 0\nunder_oom 0\noom_kill 0\n",
        )
        .unwrap();
        assert!(!oom_killed(&[dir.path().to_path_buf()]));
        fs::write(
            dir.path().join("memory.events"),
            "low 0\noom 1\noom_kill 1\n",
        )
        .unwrap();
        assert!(oom_killed(&[dir.path().to_path_buf()]));
    }
}
