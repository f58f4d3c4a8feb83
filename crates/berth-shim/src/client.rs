//! The client the engine uses: start a shim (daemonised, so it outlives the caller), find it
//! again from its state directory, and one method per request. Stream requests return the
//! connection as a `UnixStream` once the shim has accepted them.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, OnceLock};

use serde::de::DeserializeOwned;

use crate::error::{io, Result, ShimError};
use crate::protocol::{
    AttachRequest, ContainerState, ExecRequest, ExecState, ExitInfo, LogsRequest, Reply, Request,
    MAX_REQUEST, PID_FILE, SOCKET,
};

/// How to start a shim.
#[derive(Debug, Clone)]
pub struct ShimOpts {
    pub id: String,
    pub bundle: PathBuf,
    /// The runc-compatible runtime binary.
    pub runtime: PathBuf,
    /// The runtime's `--root`.
    pub runtime_root: PathBuf,
    /// The shim's directory: socket, pid file, log, exit.json.
    pub state_dir: PathBuf,
    pub tty: bool,
    /// Keep stdin open (`-i`).
    pub stdin: bool,
    /// Rotate the log past this many bytes.
    pub log_max_size: Option<u64>,
    /// Log files kept, the current one included (at least 1).
    pub log_max_file: u32,
    /// Start the container at once (otherwise [`Shim::start_container`]).
    pub start: bool,
    /// The `berth-shim` binary; default: beside the current executable, else `$PATH`.
    pub shim_binary: Option<PathBuf>,
    /// Run the runtime's create, start and delete inside the shim (the runtime is Berth's
    /// own; default: when `runtime` is named `berth-runc`) instead of executing it.
    pub builtin_runtime: bool,
}

impl ShimOpts {
    pub fn new(
        id: impl Into<String>,
        bundle: impl Into<PathBuf>,
        runtime: impl Into<PathBuf>,
        runtime_root: impl Into<PathBuf>,
        state_dir: impl Into<PathBuf>,
    ) -> ShimOpts {
        let runtime: PathBuf = runtime.into();
        let builtin_runtime = runtime.file_name().is_some_and(|n| n == "berth-runc");
        ShimOpts {
            id: id.into(),
            bundle: bundle.into(),
            runtime,
            runtime_root: runtime_root.into(),
            state_dir: state_dir.into(),
            tty: false,
            stdin: false,
            log_max_size: None,
            log_max_file: 1,
            start: true,
            shim_binary: None,
            builtin_runtime,
        }
    }

    fn binary(&self) -> PathBuf {
        if let Some(b) = &self.shim_binary {
            return b.clone();
        }
        if let Ok(exe) = std::env::current_exe() {
            if let Some(dir) = exe.parent() {
                let beside = dir.join("berth-shim");
                if beside.is_file() {
                    return beside;
                }
            }
        }
        PathBuf::from("berth-shim")
    }
}

/// A read-only detached mount of the shim binary at `bin`, made once per path and kept for the
/// life of the process; `None` when it cannot be made (the shim then protects itself).
fn protected(bin: &Path) -> Option<RawFd> {
    static CLONES: OnceLock<Mutex<HashMap<PathBuf, Option<OwnedFd>>>> = OnceLock::new();
    let mut map = CLONES
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    map.entry(bin.to_path_buf())
        .or_insert_with(|| {
            bin.is_absolute()
                .then(|| berth_runtime::safe_exe::readonly_clone(bin).ok())
                .flatten()
        })
        .as_ref()
        .map(|fd| fd.as_raw_fd())
}

/// A running shim, known by its state directory.
#[derive(Debug, Clone)]
pub struct Shim {
    state_dir: PathBuf,
    socket: PathBuf,
}

impl Shim {
    /// Starts a daemonised shim and returns once it answers on its socket with the container
    /// created (and started, if asked).
    pub fn start(opts: &ShimOpts) -> Result<Shim> {
        std::fs::create_dir_all(&opts.state_dir).map_err(io("create", &opts.state_dir))?;
        let bin = opts.binary();
        let mut cmd = match opts.builtin_runtime.then(|| protected(&bin)).flatten() {
            // A shim that forks into containers runs from a read-only mount of its binary
            // (so a container cannot write it through /proc/PID/exe): started from one made
            // once here, it need not re-execute itself at each start.
            Some(fd) => {
                let mut c = Command::new(format!("/proc/self/fd/{fd}"));
                c.arg0(&bin);
                c
            }
            None => Command::new(&bin),
        };
        cmd.arg("--id")
            .arg(&opts.id)
            .arg("--bundle")
            .arg(&opts.bundle)
            .arg("--runtime")
            .arg(&opts.runtime)
            .arg("--runtime-root")
            .arg(&opts.runtime_root)
            .arg("--state-dir")
            .arg(&opts.state_dir)
            .arg("--log-max-file")
            .arg(opts.log_max_file.max(1).to_string());
        if let Some(m) = opts.log_max_size {
            cmd.arg("--log-max-size").arg(m.to_string());
        }
        if opts.tty {
            cmd.arg("--tty");
        }
        if opts.stdin {
            cmd.arg("--stdin");
        }
        if !opts.start {
            cmd.arg("--no-start");
        }
        if opts.builtin_runtime {
            cmd.arg("--builtin-runtime");
        }
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        // The first process returns once the daemonised one is ready (or failed).
        let out = cmd.output().map_err(io("run", &bin))?;
        if !out.status.success() {
            let msg = String::from_utf8_lossy(&out.stderr).trim().to_string();
            let msg = msg
                .strip_prefix("berth-shim: ")
                .map(String::from)
                .unwrap_or(msg);
            return Err(ShimError::Start {
                id: opts.id.clone(),
                msg: if msg.is_empty() {
                    format!("{} exited with {}", bin.display(), out.status)
                } else {
                    msg
                },
            });
        }
        let shim = Shim::connect(&opts.state_dir)?;
        shim.state()?;
        Ok(shim)
    }

    /// The shim of `state_dir`, as left by a previous engine (nothing is started).
    pub fn connect(state_dir: impl AsRef<Path>) -> Result<Shim> {
        let state_dir = state_dir.as_ref().to_path_buf();
        let socket = state_dir.join(SOCKET);
        // Fail now, not at the first request, when there is no shim there.
        UnixStream::connect(&socket).map_err(io("connect", &socket))?;
        Ok(Shim { state_dir, socket })
    }

    pub fn state_dir(&self) -> &Path {
        &self.state_dir
    }

    /// The shim's pid, from its pid file.
    pub fn pid(&self) -> Result<i32> {
        let p = self.state_dir.join(PID_FILE);
        let text = std::fs::read_to_string(&p).map_err(io("read", &p))?;
        text.trim().parse().map_err(|_| ShimError::Protocol {
            path: p.clone(),
            msg: format!("not a pid: {text:?}"),
        })
    }

    /// Sends `req`, reads the reply line; returns the connection and the result.
    fn request(&self, req: &Request) -> Result<(UnixStream, serde_json::Value)> {
        let mut conn = UnixStream::connect(&self.socket).map_err(io("connect", &self.socket))?;
        let mut line = serde_json::to_vec(req).map_err(|e| self.protocol(e.to_string()))?;
        line.push(b'\n');
        conn.write_all(&line)
            .map_err(io("write to", &self.socket))?;
        // Byte by byte: what follows the reply line belongs to the caller's stream.
        let mut reply = Vec::new();
        let mut b = [0u8; 1];
        loop {
            let n = conn.read(&mut b).map_err(io("read from", &self.socket))?;
            if n == 0 {
                return Err(self.protocol("connection closed before the reply".into()));
            }
            if b[0] == b'\n' {
                break;
            }
            reply.push(b[0]);
            if reply.len() > MAX_REQUEST {
                return Err(self.protocol("reply too long".into()));
            }
        }
        let r: Reply = serde_json::from_slice(&reply).map_err(|e| self.protocol(e.to_string()))?;
        if !r.ok {
            return Err(ShimError::Remote {
                path: self.socket.clone(),
                msg: r.error.unwrap_or_else(|| "request failed".into()),
            });
        }
        Ok((conn, r.result.unwrap_or(serde_json::Value::Null)))
    }

    fn call<T: DeserializeOwned>(&self, req: &Request) -> Result<T> {
        let (_, v) = self.request(req)?;
        serde_json::from_value(v).map_err(|e| self.protocol(e.to_string()))
    }

    fn call_unit(&self, req: &Request) -> Result<()> {
        self.request(req).map(|_| ())
    }

    fn protocol(&self, msg: String) -> ShimError {
        ShimError::Protocol {
            path: self.socket.clone(),
            msg,
        }
    }

    pub fn state(&self) -> Result<ContainerState> {
        self.call(&Request::State)
    }

    /// Starts a container whose shim was started with `start: false`.
    pub fn start_container(&self) -> Result<()> {
        self.call_unit(&Request::Start)
    }

    /// Blocks until the container has exited.
    pub fn wait(&self) -> Result<ExitInfo> {
        self.call(&Request::Wait)
    }

    pub fn kill(&self, signal: i32, all: bool) -> Result<()> {
        self.call_unit(&Request::Kill { signal, all })
    }

    pub fn resize(&self, height: u16, width: u16) -> Result<()> {
        self.call_unit(&Request::Resize {
            height,
            width,
            exec: None,
        })
    }

    pub fn resize_exec(&self, exec_id: &str, height: u16, width: u16) -> Result<()> {
        self.call_unit(&Request::Resize {
            height,
            width,
            exec: Some(exec_id.into()),
        })
    }

    /// The container's stream: output (raw with a tty, framed without) and, with `stdin`, input
    /// (half-close the stream's write side to close the container's stdin).
    pub fn attach(&self, opts: AttachRequest) -> Result<UnixStream> {
        self.request(&Request::Attach(opts)).map(|(c, _)| c)
    }

    /// Runs `process` (an OCI process object) in the container; returns its stream, which ends
    /// once the process has exited. Then [`Shim::exec_state`] has its exit code.
    pub fn exec(
        &self,
        id: &str,
        process: serde_json::Value,
        tty: bool,
        stdin: bool,
    ) -> Result<UnixStream> {
        self.request(&Request::Exec(ExecRequest {
            id: id.into(),
            process,
            tty,
            stdin,
        }))
        .map(|(c, _)| c)
    }

    pub fn exec_state(&self, id: &str) -> Result<ExecState> {
        self.call(&Request::ExecState { id: id.into() })
    }

    /// The log as a stream (framed without a tty).
    pub fn logs(&self, opts: LogsRequest) -> Result<UnixStream> {
        self.request(&Request::Logs(opts)).map(|(c, _)| c)
    }

    /// Deletes the container through the runtime; the shim then exits.
    pub fn delete(&self, force: bool) -> Result<()> {
        self.call_unit(&Request::Delete { force })
    }

    /// Ends a shim whose container has exited, without deleting the container.
    pub fn shutdown(&self) -> Result<()> {
        self.call_unit(&Request::Shutdown)
    }
}
