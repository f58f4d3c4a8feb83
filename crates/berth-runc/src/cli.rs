//! Command-line parsing and the runc commands, each a thin call into berth-runtime.

use std::io::Read;
use std::path::{Path, PathBuf};

use berth_runtime::container::{self, CreateOptions};
use berth_runtime::state::{State, Status};
use clap::{Args, Parser, Subcommand};
use nix::sys::signal::Signal;

use crate::log::Logger;

#[derive(Parser, Debug)]
#[command(
    name = "berth-runc",
    version,
    about = "An OCI runtime with runc's command line"
)]
struct Cli {
    /// Root directory for container state
    #[arg(long, global = true, default_value = "/run/berth-runc")]
    root: PathBuf,
    /// Log file (default: stderr)
    #[arg(long, global = true)]
    log: Option<String>,
    /// Log format: text or json
    #[arg(long = "log-format", global = true, default_value = "text")]
    log_format: String,
    /// Enable debug logging
    #[arg(long, global = true)]
    debug: bool,
    /// Use systemd to manage cgroups (not supported)
    #[arg(long = "systemd-cgroup", global = true)]
    systemd_cgroup: bool,
    /// Path to criu (accepted for compatibility)
    #[arg(long, hide = true)]
    criu: Option<String>,
    /// Rootless mode: true, false or auto (accepted for compatibility; before the command)
    #[arg(long = "rootless", id = "global_rootless", hide = true)]
    rootless: Option<String>,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Args, Debug, Clone)]
struct CreateArgs {
    /// Path to the bundle directory
    #[arg(short = 'b', long, default_value = ".")]
    bundle: PathBuf,
    /// Unix socket that receives the pty master of a terminal container
    #[arg(long = "console-socket")]
    console_socket: Option<PathBuf>,
    /// File to write the container's pid to
    #[arg(long = "pid-file")]
    pid_file: Option<PathBuf>,
    /// Do not use pivot_root to jail the process inside rootfs
    #[arg(long = "no-pivot")]
    no_pivot: bool,
    /// Do not create a new session keyring
    #[arg(long = "no-new-keyring")]
    no_new_keyring: bool,
    /// Pass N more file descriptors (from 3 on) to the container
    #[arg(long = "preserve-fds", default_value_t = 0)]
    preserve_fds: u32,
    container_id: String,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Create a container
    Create(CreateArgs),
    /// Execute the user process of a created container
    Start { container_id: String },
    /// Create and run a container
    Run {
        #[command(flatten)]
        create: CreateArgs,
        /// Detach from the container's process
        #[arg(short = 'd', long)]
        detach: bool,
        /// Keep the container's state after it exits (accepted)
        #[arg(long)]
        keep: bool,
    },
    /// Output the state of a container
    State { container_id: String },
    /// List containers
    List {
        #[arg(short = 'f', long, default_value = "table")]
        format: String,
        #[arg(short = 'q', long)]
        quiet: bool,
    },
    /// Send a signal to the container's init process
    Kill {
        /// Send the signal to all processes in the container
        #[arg(short = 'a', long)]
        all: bool,
        container_id: String,
        #[arg(default_value = "SIGTERM")]
        signal: String,
    },
    /// Delete a container and its resources
    Delete {
        #[arg(short = 'f', long)]
        force: bool,
        #[arg(required = true)]
        container_ids: Vec<String>,
    },
    /// Execute a new process inside a container
    Exec(Box<ExecArgs>),
    /// List the processes of a container
    Ps {
        #[arg(short = 'f', long, default_value = "table")]
        format: String,
        container_id: String,
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        ps_args: Vec<String>,
    },
    /// Suspend all processes of a container
    Pause { container_id: String },
    /// Resume all processes of a paused container
    Resume { container_id: String },
    /// Update a container's resource limits
    Update(Box<UpdateArgs>),
    /// Display container events and resource statistics
    Events {
        /// Display statistics once and exit
        #[arg(long)]
        stats: bool,
        /// Interval between statistics
        #[arg(long, default_value = "5s")]
        interval: String,
        container_id: String,
    },
    /// Create a new specification file
    Spec {
        #[arg(short = 'b', long, default_value = ".")]
        bundle: PathBuf,
        #[arg(long)]
        rootless: bool,
    },
    /// Show the enabled features
    Features,
}

#[derive(Args, Debug)]
struct ExecArgs {
    /// JSON file with the process to run
    #[arg(short = 'p', long)]
    process: Option<PathBuf>,
    /// Allocate a pseudo-TTY
    #[arg(short = 't', long)]
    tty: bool,
    /// Detach from the process
    #[arg(short = 'd', long)]
    detach: bool,
    #[arg(long = "pid-file")]
    pid_file: Option<PathBuf>,
    #[arg(long = "console-socket")]
    console_socket: Option<PathBuf>,
    /// Current working directory in the container
    #[arg(long)]
    cwd: Option<PathBuf>,
    /// Environment variables to set
    #[arg(short = 'e', long = "env")]
    env: Vec<String>,
    /// UID[:GID]
    #[arg(short = 'u', long)]
    user: Option<String>,
    /// Additional gids
    #[arg(short = 'g', long = "additional-gids")]
    additional_gids: Vec<u32>,
    /// Add a capability to the bounding, permitted, effective (and inheritable) sets
    #[arg(short = 'c', long = "cap")]
    cap: Vec<String>,
    #[arg(long = "no-new-privs")]
    no_new_privs: bool,
    #[arg(long = "preserve-fds", default_value_t = 0)]
    preserve_fds: u32,
    #[arg(long)]
    apparmor: Option<String>,
    #[arg(long = "process-label")]
    process_label: Option<String>,
    #[arg(long = "ignore-paused")]
    ignore_paused: bool,
    #[arg(long)]
    cgroup: Option<String>,
    container_id: String,
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    command: Vec<String>,
}

#[derive(Args, Debug)]
struct UpdateArgs {
    /// JSON file with resources ("-" for stdin)
    #[arg(short = 'r', long)]
    resources: Option<String>,
    #[arg(long)]
    memory: Option<String>,
    #[arg(long = "memory-reservation")]
    memory_reservation: Option<String>,
    #[arg(long = "memory-swap")]
    memory_swap: Option<String>,
    #[arg(long = "kernel-memory", hide = true)]
    kernel_memory: Option<String>,
    #[arg(long = "kernel-memory-tcp", hide = true)]
    kernel_memory_tcp: Option<String>,
    #[arg(long = "cpu-shares")]
    cpu_shares: Option<u64>,
    #[arg(long = "cpu-quota")]
    cpu_quota: Option<i64>,
    #[arg(long = "cpu-period")]
    cpu_period: Option<u64>,
    #[arg(long = "cpu-rt-period")]
    cpu_rt_period: Option<u64>,
    #[arg(long = "cpu-rt-runtime")]
    cpu_rt_runtime: Option<i64>,
    #[arg(long = "cpuset-cpus")]
    cpuset_cpus: Option<String>,
    #[arg(long = "cpuset-mems")]
    cpuset_mems: Option<String>,
    #[arg(long = "pids-limit")]
    pids_limit: Option<i64>,
    #[arg(long = "blkio-weight")]
    blkio_weight: Option<u16>,
    container_id: String,
}

/// Parses and runs; returns the process exit code.
pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { 1 } else { 0 };
            let _ = e.print();
            return code;
        }
    };
    let mut log = match Logger::new(cli.log.as_deref(), &cli.log_format, cli.debug) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("berth-runc: {e}");
            return 1;
        }
    };
    if cli.systemd_cgroup {
        log.log("error", "systemd cgroup driver is not supported by berth-runc: use cgroupfs (drop --systemd-cgroup)");
        return 1;
    }
    log.log("debug", &format!("command: {:?}", cli.cmd));
    let code = match run(&cli) {
        Ok(code) => code,
        Err(e) => {
            log.log("error", &e);
            1
        }
    };
    if log.debug {
        log.log(
            "debug",
            &format!(
                "peak rss KiB: self {}, children {}",
                maxrss(libc::RUSAGE_SELF),
                maxrss(libc::RUSAGE_CHILDREN)
            ),
        );
    }
    code
}

type R = Result<i32, String>;

fn maxrss(who: libc::c_int) -> i64 {
    // SAFETY: getrusage fills the struct we pass.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    unsafe { libc::getrusage(who, &mut ru) };
    ru.ru_maxrss
}

/// Prints a line to stdout; false when stdout is gone (a closed pipe is not an error).
fn out(line: &str) -> bool {
    use std::io::Write;
    let mut o = std::io::stdout().lock();
    writeln!(o, "{line}").and_then(|_| o.flush()).is_ok()
}

fn e<E: std::fmt::Display>(err: E) -> String {
    err.to_string()
}

fn create_options(root: &Path, a: &CreateArgs) -> CreateOptions {
    CreateOptions {
        root: root.to_path_buf(),
        id: a.container_id.clone(),
        bundle: a.bundle.clone(),
        pid_file: a.pid_file.as_ref().map(|p| absolute(p)),
        console_socket: a.console_socket.clone(),
        no_pivot: a.no_pivot,
        no_new_keyring: a.no_new_keyring,
        preserve_fds: a.preserve_fds,
        want_pty_master: false,
    }
}

fn absolute(p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::env::current_dir()
            .map(|d| d.join(p))
            .unwrap_or_else(|_| p.to_path_buf())
    }
}

fn run(cli: &Cli) -> R {
    let root = cli.root.as_path();
    match &cli.cmd {
        Cmd::Create(a) => {
            berth_runtime::safe_exe::ensure().map_err(e)?;
            container::create(&create_options(root, a)).map_err(e)?;
            Ok(0)
        }
        Cmd::Run { create, detach, .. } => {
            berth_runtime::safe_exe::ensure().map_err(e)?;
            berth_runtime::exec::run(&create_options(root, create), *detach).map_err(e)
        }
        Cmd::Start { container_id } => {
            container::start(root, container_id).map_err(e)?;
            Ok(0)
        }
        Cmd::State { container_id } => {
            let st = State::load(root, container_id).map_err(e)?;
            let status = st.status(root);
            out(&serde_json::to_string_pretty(&st.oci_state(status)).map_err(e)?);
            Ok(0)
        }
        Cmd::List { format, quiet } => list(root, format, *quiet),
        Cmd::Kill {
            all,
            container_id,
            signal,
        } => {
            let sig = parse_signal(signal)?;
            container::kill(root, container_id, sig, *all).map_err(e)?;
            Ok(0)
        }
        Cmd::Delete {
            force,
            container_ids,
        } => {
            let mut failed = None;
            for id in container_ids {
                if let Err(err) = container::delete(root, id, *force) {
                    failed = Some(err.to_string());
                }
            }
            match failed {
                Some(m) => Err(m),
                None => Ok(0),
            }
        }
        Cmd::Exec(a) => {
            berth_runtime::safe_exe::ensure().map_err(e)?;
            exec(root, a)
        }
        Cmd::Ps {
            format,
            container_id,
            ps_args,
        } => ps(root, format, container_id, ps_args),
        Cmd::Pause { container_id } => {
            container::pause(root, container_id).map_err(e)?;
            Ok(0)
        }
        Cmd::Resume { container_id } => {
            container::resume(root, container_id).map_err(e)?;
            Ok(0)
        }
        Cmd::Update(a) => update(root, a),
        Cmd::Events {
            stats,
            interval,
            container_id,
        } => events(root, *stats, interval, container_id),
        Cmd::Spec { bundle, rootless } => {
            crate::spec::write_spec(bundle, *rootless)?;
            Ok(0)
        }
        Cmd::Features => {
            out(&serde_json::to_string_pretty(&crate::features::features()).map_err(e)?);
            Ok(0)
        }
    }
}

/// Signal by name (KILL, SIGKILL, kill) or number.
pub fn parse_signal(s: &str) -> Result<Signal, String> {
    if let Ok(n) = s.parse::<i32>() {
        return Signal::try_from(n).map_err(|_| format!("unknown signal {s:?}"));
    }
    let up = s.to_ascii_uppercase();
    let name = if up.starts_with("SIG") {
        up
    } else {
        format!("SIG{up}")
    };
    name.parse::<Signal>()
        .map_err(|_| format!("unknown signal {s:?}"))
}

fn list(root: &Path, format: &str, quiet: bool) -> R {
    let ids = berth_runtime::state::list_ids(root).map_err(e)?;
    let mut rows = vec![];
    for id in ids {
        if let Ok(st) = State::load(root, &id) {
            let status = st.status(root);
            rows.push(st.oci_state(status));
        }
    }
    if quiet {
        for r in &rows {
            out(&r.id);
        }
        return Ok(0);
    }
    match format {
        "json" => {
            out(&serde_json::to_string(&rows).map_err(e)?);
        }
        "table" => {
            let mut table = vec![vec![
                "ID".to_string(),
                "PID".into(),
                "STATUS".into(),
                "BUNDLE".into(),
                "CREATED".into(),
                "OWNER".into(),
            ]];
            for r in &rows {
                table.push(vec![
                    r.id.clone(),
                    r.pid.to_string(),
                    r.status.clone(),
                    r.bundle.display().to_string(),
                    r.created.clone(),
                    r.owner.clone(),
                ]);
            }
            print_table(&table);
        }
        other => return Err(format!("invalid format option {other:?}")),
    }
    Ok(0)
}

/// Columns padded like Go's tabwriter with minwidth 12 and padding 3.
fn print_table(rows: &[Vec<String>]) {
    let cols = rows.first().map(|r| r.len()).unwrap_or(0);
    let widths: Vec<usize> = (0..cols)
        .map(|c| rows.iter().map(|r| r[c].len()).max().unwrap_or(0).max(9) + 3)
        .collect();
    for r in rows {
        let mut line = String::new();
        for (c, cell) in r.iter().enumerate() {
            if c + 1 == cols {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<w$}", w = widths[c]));
            }
        }
        out(&line);
    }
}

fn exec(root: &Path, a: &ExecArgs) -> R {
    let st = State::load(root, &a.container_id).map_err(e)?;
    let mut process = match &a.process {
        Some(p) => {
            let data = std::fs::read(p).map_err(|err| format!("read {}: {err}", p.display()))?;
            let de = &mut serde_json::Deserializer::from_slice(&data);
            serde_path_to_error_free(de)
                .map_err(|m| format!("invalid process {}: {m}", p.display()))?
        }
        None => {
            if a.command.is_empty() {
                return Err(
                    "exec: process args must not be empty: give a command or --process".into(),
                );
            }
            let mut p = st.config.process().clone().unwrap_or_default();
            p.set_args(Some(a.command.clone()));
            p.set_terminal(Some(a.tty));
            p
        }
    };
    if a.tty {
        process.set_terminal(Some(true));
    }
    if let Some(cwd) = &a.cwd {
        process.set_cwd(cwd.clone());
    }
    if !a.env.is_empty() {
        let mut env = process.env().clone().unwrap_or_default();
        for kv in &a.env {
            let key = kv.split('=').next().unwrap_or_default();
            env.retain(|x| x.split('=').next() != Some(key));
            env.push(kv.clone());
        }
        process.set_env(Some(env));
    }
    if let Some(u) = &a.user {
        let (uid, gid) = match u.split_once(':') {
            Some((u, g)) => (u, Some(g)),
            None => (u.as_str(), None),
        };
        let mut user = process.user().clone();
        user.set_uid(
            uid.parse()
                .map_err(|_| format!("invalid --user {u:?}: uid must be a number"))?,
        );
        if let Some(g) = gid {
            user.set_gid(
                g.parse()
                    .map_err(|_| format!("invalid --user {u:?}: gid must be a number"))?,
            );
        }
        process.set_user(user);
    }
    if !a.additional_gids.is_empty() {
        let mut user = process.user().clone();
        user.set_additional_gids(Some(a.additional_gids.clone()));
        process.set_user(user);
    }
    if !a.cap.is_empty() {
        let mut caps = process.capabilities().clone().unwrap_or_default();
        for c in &a.cap {
            let cap = berth_runtime::capabilities::parse(c).map_err(e)?;
            let add = |s: &Option<oci_spec::runtime::Capabilities>| {
                let mut s = s.clone().unwrap_or_default();
                if let Ok(oc) = serde_json::from_value::<oci_spec::runtime::Capability>(
                    serde_json::Value::String(cap.to_string()),
                ) {
                    s.insert(oc);
                }
                Some(s)
            };
            caps.set_bounding(add(caps.bounding()));
            caps.set_effective(add(caps.effective()));
            caps.set_permitted(add(caps.permitted()));
            caps.set_inheritable(add(caps.inheritable()));
        }
        process.set_capabilities(Some(caps));
    }
    if a.no_new_privs {
        process.set_no_new_privileges(Some(true));
    }
    let opts = berth_runtime::exec::ExecOptions {
        root: root.to_path_buf(),
        id: a.container_id.clone(),
        process,
        detach: a.detach,
        pid_file: a.pid_file.as_ref().map(|p| absolute(p)),
        console_socket: a.console_socket.clone(),
        preserve_fds: a.preserve_fds,
    };
    berth_runtime::exec::exec(&opts).map_err(e)
}

fn serde_path_to_error_free(
    de: &mut serde_json::Deserializer<serde_json::de::SliceRead<'_>>,
) -> Result<oci_spec::runtime::Process, String> {
    serde::Deserialize::deserialize(de).map_err(e)
}

fn ps(root: &Path, format: &str, id: &str, ps_args: &[String]) -> R {
    let st = State::load(root, id).map_err(e)?;
    if st.status(root) == Status::Stopped {
        return Err(format!("container {id} is not running"));
    }
    let pids = container::pids(root, id).map_err(e)?;
    match format {
        "json" => {
            out(&serde_json::to_string(&pids).map_err(e)?);
            Ok(0)
        }
        "table" => {
            let args: Vec<String> = if ps_args.is_empty() {
                vec!["-ef".into()]
            } else {
                ps_args.to_vec()
            };
            let output = std::process::Command::new("ps")
                .args(&args)
                .output()
                .map_err(|err| format!("run ps: {err}"))?;
            if !output.status.success() {
                return Err(format!(
                    "ps {}: {}",
                    args.join(" "),
                    String::from_utf8_lossy(&output.stderr).trim()
                ));
            }
            let text = String::from_utf8_lossy(&output.stdout);
            let mut lines = text.lines();
            let header = lines.next().unwrap_or_default();
            let col = header
                .split_whitespace()
                .position(|h| h == "PID")
                .ok_or_else(|| "couldn't find PID field in ps output".to_string())?;
            out(header);
            for l in lines {
                if let Some(p) = l
                    .split_whitespace()
                    .nth(col)
                    .and_then(|p| p.parse::<i32>().ok())
                {
                    if pids.contains(&p) {
                        out(l);
                    }
                }
            }
            Ok(0)
        }
        other => Err(format!("invalid format option {other:?}")),
    }
}

/// Parses docker/runc-style sizes: 512, 512k, 64m, 1g (binary units), -1.
pub fn parse_size(s: &str) -> Result<i64, String> {
    let t = s.trim().to_ascii_lowercase();
    if t == "-1" {
        return Ok(-1);
    }
    let t = t.trim_end_matches('b');
    let (num, mult) = match t.chars().last() {
        Some('k') => (&t[..t.len() - 1], 1i64 << 10),
        Some('m') => (&t[..t.len() - 1], 1 << 20),
        Some('g') => (&t[..t.len() - 1], 1 << 30),
        Some('t') => (&t[..t.len() - 1], 1 << 40),
        _ => (t, 1),
    };
    let n: f64 = num.parse().map_err(|_| format!("invalid size {s:?}"))?;
    if n < 0.0 {
        return Err(format!("invalid size {s:?}"));
    }
    Ok((n * mult as f64) as i64)
}

fn update(root: &Path, a: &UpdateArgs) -> R {
    let mut res: oci_spec::runtime::LinuxResources = match &a.resources {
        Some(src) => {
            let mut data = vec![];
            if src == "-" {
                std::io::stdin().read_to_end(&mut data).map_err(e)?;
            } else {
                data = std::fs::read(src).map_err(|err| format!("read {src}: {err}"))?;
            }
            serde_json::from_slice(&data)
                .map_err(|err| format!("invalid resources {src}: {err}"))?
        }
        None => Default::default(),
    };
    let mut mem = res.memory().unwrap_or_default();
    let mut mem_set = res.memory().is_some();
    if let Some(m) = &a.memory {
        mem.set_limit(Some(parse_size(m)?));
        mem_set = true;
    }
    if let Some(m) = &a.memory_reservation {
        mem.set_reservation(Some(parse_size(m)?));
        mem_set = true;
    }
    if let Some(m) = &a.memory_swap {
        mem.set_swap(Some(parse_size(m)?));
        mem_set = true;
    }
    if mem_set {
        res.set_memory(Some(mem));
    }
    let mut cpu = res.cpu().clone().unwrap_or_default();
    let mut cpu_set = res.cpu().is_some();
    if let Some(v) = a.cpu_shares {
        cpu.set_shares(Some(v));
        cpu_set = true;
    }
    if let Some(v) = a.cpu_quota {
        cpu.set_quota(Some(v));
        cpu_set = true;
    }
    if let Some(v) = a.cpu_period {
        cpu.set_period(Some(v));
        cpu_set = true;
    }
    if let Some(v) = a.cpu_rt_period {
        cpu.set_realtime_period(Some(v));
        cpu_set = true;
    }
    if let Some(v) = a.cpu_rt_runtime {
        cpu.set_realtime_runtime(Some(v));
        cpu_set = true;
    }
    if let Some(v) = &a.cpuset_cpus {
        cpu.set_cpus(Some(v.clone()));
        cpu_set = true;
    }
    if let Some(v) = &a.cpuset_mems {
        cpu.set_mems(Some(v.clone()));
        cpu_set = true;
    }
    if cpu_set {
        res.set_cpu(Some(cpu));
    }
    if let Some(p) = a.pids_limit {
        let mut pids = oci_spec::runtime::LinuxPids::default();
        pids.set_limit(p);
        res.set_pids(Some(pids));
    }
    if let Some(w) = a.blkio_weight {
        let mut b = res.block_io().clone().unwrap_or_default();
        b.set_weight(Some(w));
        res.set_block_io(Some(b));
    }
    container::update(root, &a.container_id, &res).map_err(e)?;
    Ok(0)
}

fn parse_interval(s: &str) -> Result<std::time::Duration, String> {
    let t = s.trim();
    let (num, mult) = if let Some(n) = t.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = t.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = t.strip_suffix('m') {
        (n, 60.0)
    } else {
        (t, 1.0)
    };
    let v: f64 = num.parse().map_err(|_| format!("invalid interval {s:?}"))?;
    if v <= 0.0 {
        return Err(format!("invalid interval {s:?}: must be positive"));
    }
    Ok(std::time::Duration::from_secs_f64(v * mult))
}

fn events(root: &Path, once: bool, interval: &str, id: &str) -> R {
    let iv = parse_interval(interval)?;
    let st = State::load(root, id).map_err(e)?;
    if st.status(root) == Status::Stopped {
        return Err(format!("container {id} is not running"));
    }
    let cg = st.cgroup().map_err(e)?;
    loop {
        let stats = cg.stats().map_err(e)?;
        let ev = serde_json::json!({"type": "stats", "id": id, "data": stats});
        if !out(&ev.to_string()) {
            return Ok(0);
        }
        if once {
            return Ok(0);
        }
        std::thread::sleep(iv);
        if st.status(root) == Status::Stopped {
            return Ok(0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals() {
        assert_eq!(parse_signal("KILL").unwrap(), Signal::SIGKILL);
        assert_eq!(parse_signal("sigterm").unwrap(), Signal::SIGTERM);
        assert_eq!(parse_signal("9").unwrap(), Signal::SIGKILL);
        assert!(parse_signal("NOPE").is_err());
        assert!(parse_signal("99").is_err());
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("512").unwrap(), 512);
        assert_eq!(parse_size("64m").unwrap(), 64 << 20);
        assert_eq!(parse_size("1G").unwrap(), 1 << 30);
        assert_eq!(parse_size("-1").unwrap(), -1);
        assert!(parse_size("lots").is_err());
    }

    #[test]
    fn intervals() {
        assert_eq!(
            parse_interval("5s").unwrap(),
            std::time::Duration::from_secs(5)
        );
        assert_eq!(
            parse_interval("100ms").unwrap(),
            std::time::Duration::from_millis(100)
        );
        assert!(parse_interval("0s").is_err());
    }
}
