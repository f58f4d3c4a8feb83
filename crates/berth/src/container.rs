//! Container verbs: run, create, start, stop, kill, restart, rm, ps, logs, attach, exec,
//! inspect, wait, pause, unpause, rename, top, stats, cp, export, diff, commit, prune; each
//! the calls the docker CLI makes, with its output.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use berth_api::client::{encode_component, with_query, Request};
use berth_api::types::{
    ContainerChange, ContainerCreateRequest, ContainerCreateResponse, ContainerInspect,
    ContainerSummary, ContainerTopResponse, ContainerWaitResponse, ContainersPruneResponse,
    ExecCreateRequest, ExecInspect, ExecStartRequest, IdResponse, JsonMessage, StatsResponse,
    StrSlice,
};
use berth_api::{Client, ClientError, Filters};
use clap::{Args, Subcommand};
use serde_json::{json, Value};

use crate::format::{self, ellipsis, human_since, human_size, short_id, Format, Template};
use crate::opts::{create_body, CreateOpts};
use crate::stdio::{self, RawTerminal, SignalAction};
use crate::{client_message, Failure, Result, EXIT_FAILURE, EXIT_SETUP};

#[derive(Args)]
#[command(disable_help_flag = true)]
pub struct RunArgs {
    /// Run container in background and print container ID
    #[arg(short = 'd', long)]
    pub detach: bool,
    /// Proxy received signals to the process (without a TTY)
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub sig_proxy: bool,
    #[command(flatten)]
    pub opts: CreateOpts,
    /// The image to run
    pub image: String,
    /// The command and its arguments
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

#[derive(Args)]
#[command(disable_help_flag = true)]
pub struct CreateArgs {
    #[command(flatten)]
    pub opts: CreateOpts,
    /// The image of the container
    pub image: String,
    /// The command and its arguments
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

#[derive(Args)]
pub struct StartArgs {
    /// Attach STDOUT/STDERR and forward signals
    #[arg(short, long)]
    attach: bool,
    /// Attach container's STDIN
    #[arg(short, long)]
    interactive: bool,
    #[arg(required = true)]
    names: Vec<String>,
}

#[derive(Args)]
pub struct StopArgs {
    /// Seconds to wait before killing the container
    #[arg(
        short = 't',
        long = "time",
        alias = "timeout",
        allow_hyphen_values = true
    )]
    time: Option<i64>,
    /// Signal to send to the container
    #[arg(short = 's', long)]
    signal: Option<String>,
    #[arg(required = true)]
    names: Vec<String>,
}

#[derive(Args)]
pub struct KillArgs {
    /// Signal to send to the container
    #[arg(short = 's', long, default_value = "KILL")]
    signal: String,
    #[arg(required = true)]
    names: Vec<String>,
}

#[derive(Args)]
pub struct RmArgs {
    /// Force the removal of a running container (uses SIGKILL)
    #[arg(short, long)]
    force: bool,
    /// Remove anonymous volumes associated with the container
    #[arg(short, long)]
    volumes: bool,
    #[arg(required = true)]
    names: Vec<String>,
}

#[derive(Args)]
pub struct PsArgs {
    /// Show all containers (default shows just running)
    #[arg(short, long)]
    all: bool,
    /// Only display container IDs
    #[arg(short, long)]
    quiet: bool,
    /// Filter output based on conditions provided
    #[arg(short, long = "filter")]
    filter: Vec<String>,
    /// Format output using a custom template
    #[arg(long)]
    format: Option<String>,
    /// Don't truncate output
    #[arg(long)]
    no_trunc: bool,
    /// Show n last created containers (includes all states)
    #[arg(short = 'n', long = "last")]
    last: Option<i64>,
    /// Show the latest created container (includes all states)
    #[arg(short = 'l', long)]
    latest: bool,
    /// Display total file sizes
    #[arg(short, long)]
    size: bool,
}

#[derive(Args)]
pub struct LogsArgs {
    /// Follow log output
    #[arg(short, long)]
    follow: bool,
    /// Number of lines to show from the end of the logs
    #[arg(short = 'n', long, default_value = "all")]
    tail: String,
    /// Show logs since timestamp or relative (e.g. 42m for 42 minutes)
    #[arg(long)]
    since: Option<String>,
    /// Show logs before a timestamp or relative
    #[arg(long)]
    until: Option<String>,
    /// Show timestamps
    #[arg(short, long)]
    timestamps: bool,
    name: String,
}

#[derive(Args)]
pub struct AttachArgs {
    /// Do not attach STDIN
    #[arg(long)]
    no_stdin: bool,
    /// Proxy all received signals to the process
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    sig_proxy: bool,
    name: String,
}

#[derive(Args)]
pub struct ExecArgs {
    /// Detached mode: run command in the background
    #[arg(short, long)]
    detach: bool,
    /// Keep STDIN open even if not attached
    #[arg(short, long)]
    interactive: bool,
    /// Allocate a pseudo-TTY
    #[arg(short, long)]
    tty: bool,
    /// Set environment variables
    #[arg(short, long = "env")]
    env: Vec<String>,
    /// Username or UID (format: "<name|uid>[:<group|gid>]")
    #[arg(short, long)]
    user: Option<String>,
    /// Working directory inside the container
    #[arg(short, long)]
    workdir: Option<String>,
    /// Give extended privileges to the command
    #[arg(long)]
    privileged: bool,
    name: String,
    #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
    command: Vec<String>,
}

#[derive(Args)]
pub struct InspectArgs {
    /// Format output using a custom template
    #[arg(short, long)]
    format: Option<String>,
    /// Return JSON for specified type (container, image, volume)
    #[arg(long = "type")]
    kind: Option<String>,
    /// Display total file sizes if the type is container
    #[arg(short, long)]
    size: bool,
    #[arg(required = true)]
    names: Vec<String>,
}

#[derive(Args)]
pub struct NamesArgs {
    #[arg(required = true)]
    names: Vec<String>,
}

#[derive(Args)]
pub struct RenameArgs {
    old: String,
    new: String,
}

#[derive(Args)]
pub struct TopArgs {
    name: String,
    /// ps options
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    ps_args: Vec<String>,
}

#[derive(Args)]
pub struct StatsArgs {
    /// Show all containers (default shows just running)
    #[arg(short, long)]
    all: bool,
    /// Disable streaming stats and only pull the first result
    #[arg(long)]
    no_stream: bool,
    /// Do not truncate output
    #[arg(long)]
    no_trunc: bool,
    /// Format output using a custom template
    #[arg(long)]
    format: Option<String>,
    names: Vec<String>,
}

#[derive(Args)]
pub struct CpArgs {
    /// Archive mode (copy all uid/gid information)
    #[arg(short, long)]
    archive: bool,
    /// Always follow symbol link in SRC_PATH
    #[arg(short = 'L', long)]
    follow_link: bool,
    /// Suppress progress output during copy
    #[arg(short, long)]
    quiet: bool,
    src: String,
    dest: String,
}

#[derive(Args)]
pub struct ExportArgs {
    /// Write to a file, instead of STDOUT
    #[arg(short, long)]
    output: Option<PathBuf>,
    name: String,
}

#[derive(Args)]
pub struct DiffArgs {
    name: String,
}

#[derive(Args)]
pub struct CommitArgs {
    /// Author (e.g., "John Hannibal Smith <hannibal@a-team.com>")
    #[arg(short, long)]
    author: Option<String>,
    /// Apply Dockerfile instruction to the created image
    #[arg(short, long = "change")]
    change: Vec<String>,
    /// Commit message
    #[arg(short, long)]
    message: Option<String>,
    /// Pause container during commit
    #[arg(short, long, default_value_t = true, action = clap::ArgAction::Set)]
    pause: bool,
    name: String,
    reference: Option<String>,
}

#[derive(Args)]
pub struct PruneArgs {
    /// Do not prompt for confirmation
    #[arg(short, long)]
    force: bool,
    /// Provide filter values (e.g. "until=<timestamp>")
    #[arg(long = "filter")]
    filter: Vec<String>,
}

#[derive(Subcommand)]
pub enum ContainerCommand {
    /// List containers
    #[command(alias = "ps", alias = "list")]
    Ls(PsArgs),
    /// Create and run a new container from an image
    Run(RunArgs),
    /// Create a new container
    Create(CreateArgs),
    /// Start one or more stopped containers
    Start(StartArgs),
    /// Stop one or more running containers
    Stop(StopArgs),
    /// Restart one or more containers
    Restart(StopArgs),
    /// Kill one or more running containers
    Kill(KillArgs),
    /// Remove one or more containers
    #[command(alias = "remove")]
    Rm(RmArgs),
    /// Fetch the logs of a container
    Logs(LogsArgs),
    /// Attach to a running container
    Attach(AttachArgs),
    /// Execute a command in a running container
    Exec(ExecArgs),
    /// Display detailed information on one or more containers
    Inspect(InspectArgs),
    /// Block until one or more containers stop, then print their exit codes
    Wait(NamesArgs),
    /// Pause all processes within one or more containers
    Pause(NamesArgs),
    /// Unpause all processes within one or more containers
    Unpause(NamesArgs),
    /// Rename a container
    Rename(RenameArgs),
    /// Display the running processes of a container
    Top(TopArgs),
    /// Display a live stream of container(s) resource usage statistics
    Stats(StatsArgs),
    /// Copy files/folders between a container and the local filesystem
    Cp(CpArgs),
    /// Export a container's filesystem as a tar archive
    Export(ExportArgs),
    /// Inspect changes to files or directories on a container's filesystem
    Diff(DiffArgs),
    /// Create a new image from a container's changes
    Commit(CommitArgs),
    /// Remove all stopped containers
    Prune(PruneArgs),
}

pub fn container_command(c: &Client, cmd: ContainerCommand) -> Result<u8> {
    let ok = |r: Result<()>| r.map(|()| 0u8);
    match cmd {
        ContainerCommand::Ls(a) => ok(ps(c, &a)),
        ContainerCommand::Run(a) => run(c, a),
        ContainerCommand::Create(a) => ok(create_cmd(c, a)),
        ContainerCommand::Start(a) => start(c, &a),
        ContainerCommand::Stop(a) => ok(stop(c, &a, false)),
        ContainerCommand::Restart(a) => ok(stop(c, &a, true)),
        ContainerCommand::Kill(a) => ok(kill(c, &a)),
        ContainerCommand::Rm(a) => ok(rm(c, &a)),
        ContainerCommand::Logs(a) => ok(logs(c, &a)),
        ContainerCommand::Attach(a) => attach(c, &a),
        ContainerCommand::Exec(a) => exec(c, a),
        ContainerCommand::Inspect(mut a) => {
            a.kind.get_or_insert_with(|| "container".into());
            ok(inspect(c, &a))
        }
        ContainerCommand::Wait(a) => ok(wait(c, &a)),
        ContainerCommand::Pause(a) => ok(simple(c, &a, "pause")),
        ContainerCommand::Unpause(a) => ok(simple(c, &a, "unpause")),
        ContainerCommand::Rename(a) => ok(rename(c, &a)),
        ContainerCommand::Top(a) => ok(top(c, &a)),
        ContainerCommand::Stats(a) => ok(stats(c, &a)),
        ContainerCommand::Cp(a) => ok(cp(c, &a)),
        ContainerCommand::Export(a) => ok(export(c, &a)),
        ContainerCommand::Diff(a) => ok(diff(c, &a)),
        ContainerCommand::Commit(a) => ok(commit(c, &a)),
        ContainerCommand::Prune(a) => ok(prune(c, &a)),
    }
}

fn cpath(name: &str, what: &str) -> String {
    format!("/containers/{}/{what}", encode_component(name))
}

/// Runs `f` on every name, printing each failure; an error at the end if any failed
/// (docker's behaviour for `stop a b c`).
fn each(names: &[String], mut f: impl FnMut(&str) -> Result<()>) -> Result<()> {
    let mut failed = false;
    for n in names {
        if let Err(e) = f(n) {
            eprintln!("berth: {}", e.message);
            failed = true;
        }
    }
    if failed {
        Err(Failure::new("").code(EXIT_FAILURE))
    } else {
        Ok(())
    }
}

// ---- create and run ---------------------------------------------------------------------

/// `name:tag` split for a pull (`busybox` → `busybox`, `latest`).
fn split_tag(image: &str) -> (String, String) {
    if let Some((name, digest)) = image.split_once('@') {
        return (name.to_string(), digest.to_string());
    }
    match image.rsplit_once(':') {
        Some((name, tag)) if !tag.contains('/') => (name.to_string(), tag.to_string()),
        _ => (image.to_string(), "latest".to_string()),
    }
}

/// `POST /containers/create`; when the image is missing, says so, pulls it and tries again,
/// as the docker CLI does.
fn create_container(
    c: &Client,
    body: &ContainerCreateRequest,
    name: Option<&str>,
    image: &str,
) -> Result<String> {
    let path = match name {
        Some(n) => with_query("/containers/create", &[("name", n)]),
        None => "/containers/create".to_string(),
    };
    let r: Result<ContainerCreateResponse, ClientError> = c.post(&path, body);
    let resp = match r {
        Ok(r) => r,
        Err(e)
            if e.status() == Some(404)
                && !image.is_empty()
                && e.api_error()
                    .is_some_and(|a| a.message.to_ascii_lowercase().contains("image")) =>
        {
            let (repo, tag) = split_tag(image);
            eprintln!("berth: unable to find image '{repo}:{tag}' locally");
            pull(c, &repo, &tag)?;
            c.post(&path, body)?
        }
        Err(e) => return Err(e.into()),
    };
    for w in &resp.warnings {
        eprintln!("WARNING: {w}");
    }
    Ok(resp.id)
}

/// `POST /images/create?fromImage=`: a pull; its errors come inside the stream.
fn pull(c: &Client, repo: &str, tag: &str) -> Result<()> {
    let resp = c.request(Request::new(
        "POST",
        &with_query("/images/create", &[("fromImage", repo), ("tag", tag)]),
    ))?;
    for m in resp.json_lines::<JsonMessage>() {
        let m = m?;
        if let Some(e) = m.error_message() {
            return Err(Failure::new(e));
        }
    }
    Ok(())
}

pub fn create_cmd(c: &Client, a: CreateArgs) -> Result<()> {
    let body = create_body(&a.opts, &a.image, &a.command).map_err(|f| f.code(EXIT_SETUP))?;
    let id = create_container(c, &body, a.opts.name.as_deref(), &a.image)
        .map_err(|f| f.code(EXIT_SETUP))?;
    outln!("{id}");
    Ok(())
}

/// `POST /containers/{id}/resize` to our terminal's size; errors are not fatal.
fn resize(c: &Client, path: &str) {
    if let Some((h, w)) = stdio::terminal_size() {
        let (h, w) = (h.to_string(), w.to_string());
        let _ = c.post_empty(&with_query(path, &[("h", &h), ("w", &w)]));
    }
}

/// Forwards SIGWINCH as resizes of `resize_path` and, without a TTY, proxies signals to
/// the container.
fn forward_signals(c: &Client, id: &str, resize_path: Option<String>, proxy: bool) {
    let client = c.clone();
    let kill_path = cpath(id, "kill");
    stdio::handle_signals(proxy, move |action| match action {
        SignalAction::Resize => {
            if let Some(p) = &resize_path {
                resize(&client, p);
            }
        }
        SignalAction::Forward(sig) => {
            let _ = client.post_empty(&with_query(&kill_path, &[("signal", sig)]));
        }
    });
}

pub fn run(c: &Client, a: RunArgs) -> Result<u8> {
    let o = &a.opts;
    if !a.detach && o.tty && o.interactive && !io::stdin().is_terminal() {
        return Err(Failure::new("the input device is not a TTY"));
    }
    let body = create_body(o, &a.image, &a.command).map_err(|f| f.code(EXIT_SETUP))?;
    let id =
        create_container(c, &body, o.name.as_deref(), &a.image).map_err(|f| f.code(EXIT_SETUP))?;
    let setup = |e: ClientError| Failure::new(client_message(&e)).code(EXIT_SETUP);
    if a.detach {
        c.post_empty(&cpath(&id, "start")).map_err(setup)?;
        outln!("{id}");
        return Ok(0);
    }

    // `-a stdout` attaches only the streams named; all of them by default.
    let wants = |s: &str| o.attach.is_empty() || o.attach.iter().any(|a| a.eq_ignore_ascii_case(s));
    let attach_stdin = o.interactive && wants("stdin");
    let mut q = vec![("stream", "1")];
    if wants("stdout") {
        q.push(("stdout", "1"));
    }
    if wants("stderr") {
        q.push(("stderr", "1"));
    }
    if attach_stdin {
        q.push(("stdin", "1"));
    }
    let up = c
        .upgrade(Request::new("POST", &with_query(&cpath(&id, "attach"), &q)))
        .map_err(setup)?;
    let condition = if o.rm { "removed" } else { "next-exit" };
    let waiter = c
        .request(Request::new(
            "POST",
            &with_query(&cpath(&id, "wait"), &[("condition", condition)]),
        ))
        .map_err(setup)?;

    let raw = if o.tty && attach_stdin {
        RawTerminal::enter()
    } else {
        None
    };
    forward_signals(
        c,
        &id,
        o.tty.then(|| cpath(&id, "resize")),
        !o.tty && a.sig_proxy,
    );
    if let Err(e) = c.post_empty(&cpath(&id, "start")) {
        drop(raw);
        return Err(setup(e));
    }
    if o.tty {
        resize(c, &cpath(&id, "resize"));
    }
    let pumped = stdio::pump(up, o.tty, attach_stdin);
    let waited: Result<ContainerWaitResponse, ClientError> = waiter.json();
    drop(raw);
    if let Err(e) = pumped {
        eprintln!("berth: reading the output of {}: {e}", short_id(&id));
    }
    let w = waited.map_err(setup)?;
    if let Some(err) = w.error.filter(|e| !e.message.is_empty()) {
        return Err(Failure::new(err.message).code(EXIT_SETUP));
    }
    Ok(exit_byte(w.status_code))
}

fn exit_byte(code: i64) -> u8 {
    u8::try_from(code).unwrap_or(if code < 0 { EXIT_SETUP } else { 255 })
}

fn inspect_container(c: &Client, name: &str) -> Result<ContainerInspect> {
    Ok(c.get(&cpath(name, "json"))?)
}

pub fn start(c: &Client, a: &StartArgs) -> Result<u8> {
    if !(a.attach || a.interactive) {
        each(&a.names, |n| {
            c.post_empty(&cpath(n, "start"))?;
            outln!("{n}");
            Ok(())
        })?;
        return Ok(0);
    }
    if a.names.len() > 1 {
        return Err(Failure::new(
            "you cannot start and attach multiple containers at once",
        ));
    }
    let name = &a.names[0];
    let info = inspect_container(c, name)?;
    let id = info.id.clone();
    let tty = info.config.tty;
    let stdin = a.interactive && info.config.open_stdin;
    let mut q = vec![("stream", "1"), ("stdout", "1"), ("stderr", "1")];
    if stdin {
        q.push(("stdin", "1"));
    }
    let up = c.upgrade(Request::new("POST", &with_query(&cpath(&id, "attach"), &q)))?;
    let waiter = c.request(Request::new(
        "POST",
        &with_query(&cpath(&id, "wait"), &[("condition", "next-exit")]),
    ))?;
    let raw = if tty && stdin {
        RawTerminal::enter()
    } else {
        None
    };
    forward_signals(c, &id, tty.then(|| cpath(&id, "resize")), !tty);
    if let Err(e) = c.post_empty(&cpath(&id, "start")) {
        drop(raw);
        return Err(e.into());
    }
    if tty {
        resize(c, &cpath(&id, "resize"));
    }
    let pumped = stdio::pump(up, tty, stdin);
    let waited: Result<ContainerWaitResponse, ClientError> = waiter.json();
    drop(raw);
    pumped?;
    Ok(exit_byte(waited?.status_code))
}

pub fn stop(c: &Client, a: &StopArgs, restart: bool) -> Result<()> {
    let verb = if restart { "restart" } else { "stop" };
    let t = a.time.map(|t| t.to_string());
    each(&a.names, |n| {
        let mut q = Vec::new();
        if let Some(t) = &t {
            q.push(("t", t.as_str()));
        }
        if let Some(s) = &a.signal {
            q.push(("signal", s.as_str()));
        }
        c.post_empty(&with_query(&cpath(n, verb), &q))?;
        outln!("{n}");
        Ok(())
    })
}

pub fn kill(c: &Client, a: &KillArgs) -> Result<()> {
    each(&a.names, |n| {
        c.post_empty(&with_query(&cpath(n, "kill"), &[("signal", &a.signal)]))?;
        outln!("{n}");
        Ok(())
    })
}

pub fn rm(c: &Client, a: &RmArgs) -> Result<()> {
    each(&a.names, |n| {
        let mut q = Vec::new();
        if a.force {
            q.push(("force", "1"));
        }
        if a.volumes {
            q.push(("v", "1"));
        }
        c.delete(&with_query(
            &format!("/containers/{}", encode_component(n)),
            &q,
        ))?;
        outln!("{n}");
        Ok(())
    })
}

/// `pause`, `unpause`.
pub fn simple(c: &Client, a: &NamesArgs, verb: &str) -> Result<()> {
    each(&a.names, |n| {
        c.post_empty(&cpath(n, verb))?;
        outln!("{n}");
        Ok(())
    })
}

pub fn wait(c: &Client, a: &NamesArgs) -> Result<()> {
    each(&a.names, |n| {
        let w: ContainerWaitResponse = c.post(&cpath(n, "wait"), &json!({}))?;
        outln!("{}", w.status_code);
        Ok(())
    })
}

pub fn rename(c: &Client, a: &RenameArgs) -> Result<()> {
    c.post_empty(&with_query(&cpath(&a.old, "rename"), &[("name", &a.new)]))?;
    Ok(())
}

// ---- ps ----------------------------------------------------------------------------------

fn parse_filters(flags: &[String]) -> Result<Filters> {
    let mut f = Filters::new();
    for flag in flags {
        let (k, v) = flag.split_once('=').ok_or_else(|| {
            Failure::new(format!(
                "bad format of filter (expected name=value): {flag}"
            ))
        })?;
        f.add(k.trim(), v);
    }
    Ok(f)
}

fn ps_title(field: &str) -> String {
    match field {
        "ID" => "CONTAINER ID",
        "Image" => "IMAGE",
        "Command" => "COMMAND",
        "CreatedAt" => "CREATED AT",
        "RunningFor" => "CREATED",
        "Ports" => "PORTS",
        "Status" => "STATUS",
        "Size" => "SIZE",
        "Names" => "NAMES",
        "Labels" => "LABELS",
        "Mounts" => "MOUNTS",
        "Networks" => "NETWORKS",
        "State" => "STATE",
        "LocalVolumes" => "LOCAL VOLUMES",
        other => return other.to_uppercase(),
    }
    .to_string()
}

/// `0.0.0.0:8080->80/tcp, 53/udp`.
fn ports_text(s: &ContainerSummary) -> String {
    let mut out: Vec<String> = s
        .ports
        .iter()
        .map(|p| match (p.public_port, &p.ip) {
            (Some(public), ip) => format!(
                "{}:{public}->{}/{}",
                ip.as_deref().unwrap_or("0.0.0.0"),
                p.private_port,
                p.r#type
            ),
            (None, _) => format!("{}/{}", p.private_port, p.r#type),
        })
        .collect();
    out.dedup();
    out.join(", ")
}

/// The fields `docker ps --format` knows, for one container.
fn ps_fields(s: &ContainerSummary, no_trunc: bool) -> Value {
    let names: Vec<&str> = s
        .names
        .iter()
        .map(|n| n.strip_prefix('/').unwrap_or(n))
        .filter(|n| !n.contains('/'))
        .collect();
    let mut command = s.command.clone();
    if !no_trunc {
        command = ellipsis(&command, 20);
    }
    let image = if !no_trunc && s.image.starts_with("sha256:") {
        short_id(&s.image)
    } else {
        s.image.clone()
    };
    let size = match (s.size_rw, s.size_root_fs) {
        (Some(rw), Some(root)) => format!(
            "{} (virtual {})",
            human_size(rw as f64),
            human_size(root as f64)
        ),
        (Some(rw), None) => human_size(rw as f64),
        _ => "0B".to_string(),
    };
    let labels = s
        .labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",");
    let mounts = s
        .mounts
        .iter()
        .map(|m| {
            if m.name.is_empty() {
                m.source.clone()
            } else {
                m.name.clone()
            }
        })
        .collect::<Vec<_>>()
        .join(",");
    json!({
        "Command": format!("\"{command}\""),
        "CreatedAt": format::go_time(s.created),
        "ID": if no_trunc { s.id.clone() } else { short_id(&s.id) },
        "Image": image,
        "Labels": labels,
        "LocalVolumes": s.mounts.iter().filter(|m| m.r#type == "volume").count().to_string(),
        "Mounts": mounts,
        "Names": names.join(","),
        "Networks": s.network_settings.networks.keys().cloned().collect::<Vec<_>>().join(","),
        "Ports": ports_text(s),
        "RunningFor": human_since(s.created),
        "Size": size,
        "State": s.state,
        "Status": s.status,
    })
}

pub fn ps(c: &Client, a: &PsArgs) -> Result<()> {
    let filters = parse_filters(&a.filter)?;
    let mut q: Vec<(&str, String)> = Vec::new();
    if a.all || a.last.is_some() || a.latest {
        q.push(("all", "1".into()));
    }
    if let Some(n) = a.last {
        q.push(("limit", n.to_string()));
    } else if a.latest {
        q.push(("limit", "1".into()));
    }
    let size = a.size || a.format.as_deref().is_some_and(|f| f.contains(".Size"));
    if size {
        q.push(("size", "1".into()));
    }
    if !filters.is_empty() {
        q.push(("filters", filters.to_json()));
    }
    let pairs: Vec<(&str, &str)> = q.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let list: Vec<ContainerSummary> = c.get(&with_query("/containers/json", &pairs))?;
    if a.quiet {
        let mut out = String::new();
        for s in &list {
            out.push_str(&if a.no_trunc {
                s.id.clone()
            } else {
                short_id(&s.id)
            });
            out.push('\n');
        }
        format::print(&out);
        return Ok(());
    }
    let items: Vec<Value> = list.iter().map(|s| ps_fields(s, a.no_trunc)).collect();
    let mut default =
        "{{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}"
            .to_string();
    if size {
        default.push_str("\t{{.Size}}");
    }
    let text = format::render(
        &items,
        &Format::parse(a.format.as_deref()),
        &default,
        &ps_title,
    )?;
    format::print(&text);
    Ok(())
}

// ---- logs, attach, exec --------------------------------------------------------------------

pub fn logs(c: &Client, a: &LogsArgs) -> Result<()> {
    let info = inspect_container(c, &a.name)?;
    let mut q: Vec<(&str, String)> = vec![
        ("stdout", "1".into()),
        ("stderr", "1".into()),
        ("tail", a.tail.clone()),
    ];
    if a.follow {
        q.push(("follow", "1".into()));
    }
    if a.timestamps {
        q.push(("timestamps", "1".into()));
    }
    if let Some(s) = &a.since {
        q.push(("since", format::api_time(s)?));
    }
    if let Some(s) = &a.until {
        q.push(("until", format::api_time(s)?));
    }
    let pairs: Vec<(&str, &str)> = q.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let resp = c.request(Request::new(
        "GET",
        &with_query(&cpath(&info.id, "logs"), &pairs),
    ))?;
    stdio::copy_output(resp, info.config.tty)?;
    Ok(())
}

pub fn attach(c: &Client, a: &AttachArgs) -> Result<u8> {
    let info = inspect_container(c, &a.name)?;
    if !info.state.running {
        return Err(Failure::new(
            "you cannot attach to a stopped container, start it first",
        ));
    }
    if info.state.paused {
        return Err(Failure::new(
            "you cannot attach to a paused container, unpause it first",
        ));
    }
    let id = info.id.clone();
    let tty = info.config.tty;
    let stdin = !a.no_stdin && info.config.open_stdin;
    if tty && stdin && !io::stdin().is_terminal() {
        return Err(Failure::new("the input device is not a TTY"));
    }
    let mut q = vec![("stream", "1"), ("stdout", "1"), ("stderr", "1")];
    if stdin {
        q.push(("stdin", "1"));
    }
    let up = c.upgrade(Request::new("POST", &with_query(&cpath(&id, "attach"), &q)))?;
    let raw = if tty && stdin {
        RawTerminal::enter()
    } else {
        None
    };
    forward_signals(
        c,
        &id,
        tty.then(|| cpath(&id, "resize")),
        !tty && a.sig_proxy,
    );
    if tty {
        resize(c, &cpath(&id, "resize"));
    }
    let pumped = stdio::pump(up, tty, stdin);
    drop(raw);
    pumped?;
    // The stream ends when the container does: its exit code is ours (the state may trail
    // the end of the stream by a moment).
    for _ in 0..100 {
        let after = inspect_container(c, &id)?;
        if !after.state.running {
            return Ok(exit_byte(after.state.exit_code));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(0)
}

pub fn exec(c: &Client, a: ExecArgs) -> Result<u8> {
    if !a.detach && a.tty && a.interactive && !io::stdin().is_terminal() {
        return Err(Failure::new("the input device is not a TTY"));
    }
    let info = inspect_container(c, &a.name)?;
    let body = ExecCreateRequest {
        attach_stdin: a.interactive && !a.detach,
        attach_stdout: !a.detach,
        attach_stderr: !a.detach,
        detach: a.detach,
        tty: a.tty,
        env: (!a.env.is_empty()).then(|| a.env.clone()),
        cmd: Some(StrSlice(a.command.clone())),
        privileged: a.privileged,
        user: a.user.clone().unwrap_or_default(),
        working_dir: a.workdir.clone().unwrap_or_default(),
        console_size: if a.tty {
            stdio::terminal_size().map(|(h, w)| [h as u64, w as u64])
        } else {
            None
        },
        ..Default::default()
    };
    let created: IdResponse = c.post(&cpath(&info.id, "exec"), &body)?;
    let exec_id = created.id;
    let start_path = format!("/exec/{}/start", encode_component(&exec_id));
    let start = ExecStartRequest {
        detach: a.detach,
        tty: a.tty,
        console_size: body.console_size,
    };
    if a.detach {
        let resp = c.request(Request::new("POST", &start_path).json(&start)?)?;
        resp.bytes()?;
        return Ok(0);
    }
    let up = c.upgrade(Request::new("POST", &start_path).json(&start)?)?;
    let resize_path = format!("/exec/{}/resize", encode_component(&exec_id));
    let raw = if a.tty && a.interactive {
        RawTerminal::enter()
    } else {
        None
    };
    forward_signals(c, &info.id, a.tty.then(|| resize_path.clone()), false);
    if a.tty {
        resize(c, &resize_path);
    }
    let pumped = stdio::pump(up, a.tty, a.interactive);
    drop(raw);
    pumped?;
    let inspect_path = format!("/exec/{}/json", encode_component(&exec_id));
    for _ in 0..100 {
        let e: ExecInspect = c.get(&inspect_path)?;
        if !e.running {
            return Ok(exit_byte(e.exit_code.unwrap_or(0)));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(0)
}

// ---- inspect, top, diff, commit, export, cp ------------------------------------------------

/// Docker's `json.MarshalIndent(v, "", "    ")`.
pub fn pretty(v: &Value) -> String {
    let mut out = Vec::new();
    let fmt = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut ser = serde_json::Serializer::with_formatter(&mut out, fmt);
    if serde::Serialize::serialize(v, &mut ser).is_err() {
        return v.to_string();
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Prints inspect documents as a JSON array, or each through `--format`.
pub fn print_inspect(docs: &[Value], format: Option<&str>) -> Result<()> {
    match format {
        None | Some("") => outln!("{}", pretty(&Value::Array(docs.to_vec()))),
        Some(f) => {
            let tpl = Template::parse(f)?;
            let mut out = String::new();
            for d in docs {
                out.push_str(&tpl.render(d)?);
                out.push('\n');
            }
            format::print(&out);
        }
    }
    Ok(())
}

pub fn inspect(c: &Client, a: &InspectArgs) -> Result<()> {
    let mut docs = Vec::new();
    let mut failed = false;
    for n in &a.names {
        let e = encode_component(n);
        let mut paths = Vec::new();
        let kind = a.kind.as_deref().unwrap_or("");
        if matches!(kind, "" | "container") {
            paths.push(if a.size {
                format!("/containers/{e}/json?size=1")
            } else {
                format!("/containers/{e}/json")
            });
        }
        if matches!(kind, "" | "image") {
            paths.push(format!("/images/{e}/json"));
        }
        if matches!(kind, "" | "volume") {
            paths.push(format!("/volumes/{e}"));
        }
        if paths.is_empty() {
            return Err(Failure::new(format!("unsupported --type {kind:?}")));
        }
        let mut found = None;
        let mut last_err = None;
        for p in &paths {
            match c.get::<Value>(p) {
                Ok(v) => {
                    found = Some(v);
                    break;
                }
                Err(e) if e.status() == Some(404) => last_err = Some(e),
                Err(e) => return Err(e.into()),
            }
        }
        match found {
            Some(v) => docs.push(v),
            None => {
                failed = true;
                match (kind, last_err) {
                    ("", _) | (_, None) => eprintln!("berth: no such object: {n}"),
                    (_, Some(e)) => eprintln!("berth: {}", client_message(&e)),
                }
            }
        }
    }
    if !(failed && docs.is_empty() && a.format.is_some()) {
        print_inspect(&docs, a.format.as_deref())?;
    }
    if failed {
        return Err(Failure::new(""));
    }
    Ok(())
}

pub fn top(c: &Client, a: &TopArgs) -> Result<()> {
    let path = if a.ps_args.is_empty() {
        cpath(&a.name, "top")
    } else {
        with_query(&cpath(&a.name, "top"), &[("ps_args", &a.ps_args.join(" "))])
    };
    let t: ContainerTopResponse = c.get(&path)?;
    let mut rows = vec![t.titles.clone()];
    rows.extend(t.processes.iter().cloned());
    format::print(&format::table(&rows));
    Ok(())
}

pub fn diff(c: &Client, a: &DiffArgs) -> Result<()> {
    let changes: Option<Vec<ContainerChange>> = c.get(&cpath(&a.name, "changes"))?;
    let mut out = String::new();
    for ch in changes.unwrap_or_default() {
        let k = match ch.kind {
            ContainerChange::ADDED => 'A',
            ContainerChange::DELETED => 'D',
            _ => 'C',
        };
        out.push_str(&format!("{k} {}\n", ch.path));
    }
    format::print(&out);
    Ok(())
}

pub fn commit(c: &Client, a: &CommitArgs) -> Result<()> {
    let mut q: Vec<(&str, String)> = vec![("container", a.name.clone())];
    if let Some(r) = &a.reference {
        let (repo, tag) = split_tag(r);
        q.push(("repo", repo));
        q.push(("tag", tag));
    }
    if let Some(m) = &a.message {
        q.push(("comment", m.clone()));
    }
    if let Some(au) = &a.author {
        q.push(("author", au.clone()));
    }
    for ch in &a.change {
        q.push(("changes", ch.clone()));
    }
    q.push(("pause", if a.pause { "1" } else { "0" }.into()));
    let pairs: Vec<(&str, &str)> = q.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let r: IdResponse = c.post(&with_query("/commit", &pairs), &json!({}))?;
    outln!("{}", r.id);
    Ok(())
}

/// Writes a streamed body to `-o FILE` (atomically) or to stdout when it is not a terminal.
pub fn body_to_output(mut body: impl Read, output: Option<&Path>, what: &str) -> Result<()> {
    match output {
        Some(path) => {
            let tmp = path.with_extension("berth-partial");
            let file = fs::File::create(&tmp)
                .map_err(|e| Failure::new(format!("create {}: {e}", tmp.display())))?;
            let mut w = io::BufWriter::with_capacity(1 << 20, file);
            let copied = io::copy(&mut body, &mut w).and_then(|_| w.flush());
            drop(w);
            if let Err(e) = copied {
                let _ = fs::remove_file(&tmp);
                return Err(Failure::new(format!("write {}: {e}", path.display())));
            }
            fs::rename(&tmp, path)
                .map_err(|e| Failure::new(format!("rename to {}: {e}", path.display())))
        }
        None => {
            let stdout = io::stdout();
            if stdout.is_terminal() {
                return Err(Failure::new(format!(
                    "cowardly refusing to {what} to a terminal. Use the -o flag or redirect"
                )));
            }
            let mut w = io::BufWriter::with_capacity(1 << 20, stdout.lock());
            match io::copy(&mut body, &mut w).and_then(|_| w.flush()) {
                Err(e) if e.kind() != io::ErrorKind::BrokenPipe => {
                    Err(Failure::new(format!("write stdout: {e}")))
                }
                _ => Ok(()),
            }
        }
    }
}

pub fn export(c: &Client, a: &ExportArgs) -> Result<()> {
    let resp = c.request(Request::new("GET", &cpath(&a.name, "export")))?;
    body_to_output(resp, a.output.as_deref(), "write the export")
}

/// `CONTAINER:PATH` → (container, path); a local path otherwise.
fn split_container_path(s: &str) -> Option<(&str, &str)> {
    if s.starts_with('/') || s.starts_with('.') {
        return None;
    }
    let (c, p) = s.split_once(':')?;
    (!c.is_empty() && !c.contains('/')).then_some((c, p))
}

pub fn cp(c: &Client, a: &CpArgs) -> Result<()> {
    match (split_container_path(&a.src), split_container_path(&a.dest)) {
        (Some((name, path)), None) => cp_from(c, name, path, &a.dest),
        (None, Some((name, path))) => cp_to(c, &a.src, name, path),
        (Some(_), Some(_)) => Err(Failure::new("copying between containers is not supported")),
        (None, None) => Err(Failure::new("must specify at least one container source")),
    }
}

fn cp_from(c: &Client, name: &str, path: &str, dest: &str) -> Result<()> {
    let resp = c.request(Request::new(
        "GET",
        &with_query(&cpath(name, "archive"), &[("path", path)]),
    ))?;
    if dest == "-" {
        return body_to_output(resp, None, "write a tar");
    }
    let dest = Path::new(dest);
    let mut archive = tar::Archive::new(resp);
    archive.set_preserve_permissions(true);
    archive.set_overwrite(true);
    if dest.is_dir() {
        archive
            .unpack(dest)
            .map_err(|e| Failure::new(format!("extract into {}: {e}", dest.display())))?;
        return Ok(());
    }
    // The archive's top entry is the source's base name: unpack beside DEST, then rename.
    let parent = match dest.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if !parent.is_dir() {
        return Err(Failure::new(format!(
            "destination directory {} does not exist",
            parent.display()
        )));
    }
    let staging = parent.join(format!(".berth-cp-{}", std::process::id()));
    fs::create_dir(&staging)
        .map_err(|e| Failure::new(format!("create {}: {e}", staging.display())))?;
    let result = (|| -> Result<()> {
        archive
            .unpack(&staging)
            .map_err(|e| Failure::new(format!("extract into {}: {e}", staging.display())))?;
        let base = Path::new(path.trim_end_matches('/'))
            .file_name()
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("."));
        let mut from = staging.join(&base);
        if !from.exists() {
            // `path` was `/` or `.`: the entries themselves.
            from = staging.clone();
        }
        fs::rename(&from, dest)
            .map_err(|e| Failure::new(format!("move to {}: {e}", dest.display())))
    })();
    let _ = fs::remove_dir_all(&staging);
    result
}

fn cp_to(c: &Client, src: &str, name: &str, path: &str) -> Result<()> {
    let put = |dir: &str, body: Box<dyn Read + Send>| -> Result<()> {
        let req = Request::new(
            "PUT",
            &with_query(
                &cpath(name, "archive"),
                &[("path", dir), ("noOverwriteDirNonDir", "true")],
            ),
        )
        .reader("application/x-tar", body);
        let mut resp = c.request(req)?;
        resp.drain()?;
        Ok(())
    };
    if src == "-" {
        return put(path, Box::new(io::stdin()));
    }
    let src_path = Path::new(src);
    let meta =
        fs::symlink_metadata(src_path).map_err(|e| Failure::new(format!("stat {src}: {e}")))?;
    // Is the destination an existing directory in the container?
    let head = c.request(Request::new(
        "HEAD",
        &with_query(&cpath(name, "archive"), &[("path", path)]),
    ));
    let dest_is_dir = match &head {
        Ok(r) => r
            .header("X-Docker-Container-Path-Stat")
            .and_then(decode_path_stat)
            .is_some_and(|s| s["mode"].as_u64().is_some_and(|m| m & (1 << 31) != 0)),
        Err(_) => false,
    };
    let (dir, entry) = if dest_is_dir || path.ends_with('/') {
        let base = src_path
            .file_name()
            .map(|b| b.to_string_lossy().into_owned())
            .unwrap_or_else(|| ".".into());
        (path.to_string(), base)
    } else {
        let p = Path::new(path);
        let parent = p
            .parent()
            .map(|d| d.to_string_lossy().into_owned())
            .filter(|d| !d.is_empty())
            .unwrap_or_else(|| "/".into());
        let base = p
            .file_name()
            .map(|b| b.to_string_lossy().into_owned())
            .unwrap_or_else(|| ".".into());
        (parent, base)
    };
    let mut builder = tar::Builder::new(Vec::new());
    builder.follow_symlinks(false);
    let built = if meta.is_dir() {
        builder.append_dir_all(&entry, src_path)
    } else {
        builder.append_path_with_name(src_path, &entry)
    };
    built
        .and_then(|_| builder.finish())
        .map_err(|e| Failure::new(format!("archive {src}: {e}")))?;
    let bytes = builder
        .into_inner()
        .map_err(|e| Failure::new(format!("archive {src}: {e}")))?;
    put(&dir, Box::new(io::Cursor::new(bytes)))
}

/// The base64 JSON of `X-Docker-Container-Path-Stat`.
fn decode_path_stat(b64: &str) -> Option<Value> {
    let table = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut bits = 0u32;
    let mut n = 0;
    let mut out = Vec::new();
    for ch in b64.bytes() {
        if ch == b'=' {
            break;
        }
        let v = table.iter().position(|&t| t == ch)? as u32;
        bits = (bits << 6) | v;
        n += 6;
        if n >= 8 {
            n -= 8;
            out.push((bits >> n) as u8);
            bits &= (1 << n) - 1;
        }
    }
    serde_json::from_slice(&out).ok()
}

pub fn prune(c: &Client, a: &PruneArgs) -> Result<()> {
    if !a.force && !confirm("This will remove all stopped containers.") {
        return Ok(());
    }
    let filters = parse_filters(&a.filter)?;
    let r: ContainersPruneResponse = c.post(
        &crate::format::prune_path("/containers/prune", &filters),
        &json!({}),
    )?;
    crate::format::print_pruned(
        "Deleted Containers:",
        &r.containers_deleted.unwrap_or_default(),
        r.space_reclaimed as u64,
    );
    Ok(())
}

/// Docker's `WARNING! ... Are you sure you want to continue? [y/N]`.
pub fn confirm(what: &str) -> bool {
    eprint!("WARNING! {what}\nAre you sure you want to continue? [y/N] ");
    let mut answer = String::new();
    let _ = io::stdin().read_line(&mut answer);
    matches!(answer.trim(), "y" | "Y" | "yes")
}

// ---- stats -------------------------------------------------------------------------------

/// The columns of `docker stats` for one sample.
fn stats_fields(s: &StatsResponse, id: &str, name: &str, no_trunc: bool) -> Value {
    let cpu_delta =
        s.cpu_stats.cpu_usage.total_usage as f64 - s.precpu_stats.cpu_usage.total_usage as f64;
    let sys_delta = s.cpu_stats.system_cpu_usage as f64 - s.precpu_stats.system_cpu_usage as f64;
    let cpus = if s.cpu_stats.online_cpus > 0 {
        s.cpu_stats.online_cpus as f64
    } else {
        s.cpu_stats
            .cpu_usage
            .percpu_usage
            .as_ref()
            .map(|v| v.len() as f64)
            .unwrap_or(1.0)
    };
    let cpu = if cpu_delta > 0.0 && sys_delta > 0.0 {
        cpu_delta / sys_delta * cpus * 100.0
    } else {
        0.0
    };
    let m = &s.memory_stats;
    let cache = ["inactive_file", "total_inactive_file", "cache"]
        .iter()
        .find_map(|k| m.stats.get(*k))
        .copied()
        .unwrap_or(0);
    let used = m.usage.saturating_sub(cache) as f64;
    let mem_pct = if m.limit > 0 {
        used / m.limit as f64 * 100.0
    } else {
        0.0
    };
    let (mut rx, mut tx) = (0u64, 0u64);
    for n in s.networks.iter().flat_map(|n| n.values()) {
        rx += n.rx_bytes;
        tx += n.tx_bytes;
    }
    let (mut read, mut write) = (0u64, 0u64);
    for e in s.blkio_stats.io_service_bytes_recursive.iter().flatten() {
        match e.op.to_ascii_lowercase().as_str() {
            "read" => read += e.value,
            "write" => write += e.value,
            _ => {}
        }
    }
    json!({
        "Container": if no_trunc { id.to_string() } else { short_id(id) },
        "ID": if no_trunc { id.to_string() } else { short_id(id) },
        "Name": name,
        "CPUPerc": format!("{cpu:.2}%"),
        "MemUsage": format!("{} / {}", format::bytes_size(used), format::bytes_size(m.limit as f64)),
        "MemPerc": format!("{mem_pct:.2}%"),
        "NetIO": format!("{} / {}", human_size(rx as f64), human_size(tx as f64)),
        "BlockIO": format!("{} / {}", human_size(read as f64), human_size(write as f64)),
        "PIDs": s.pids_stats.current.to_string(),
    })
}

fn stats_title(f: &str) -> String {
    match f {
        "Container" => "CONTAINER",
        "ID" => "CONTAINER ID",
        "Name" => "NAME",
        "CPUPerc" => "CPU %",
        "MemUsage" => "MEM USAGE / LIMIT",
        "MemPerc" => "MEM %",
        "NetIO" => "NET I/O",
        "BlockIO" => "BLOCK I/O",
        "PIDs" => "PIDS",
        other => return other.to_uppercase(),
    }
    .to_string()
}

const STATS_TABLE: &str =
    "{{.ID}}\t{{.Name}}\t{{.CPUPerc}}\t{{.MemUsage}}\t{{.MemPerc}}\t{{.NetIO}}\t{{.BlockIO}}\t{{.PIDs}}";

pub fn stats(c: &Client, a: &StatsArgs) -> Result<()> {
    let targets: Vec<(String, String)> = if a.names.is_empty() {
        let path = if a.all {
            "/containers/json?all=1"
        } else {
            "/containers/json"
        };
        let list: Vec<ContainerSummary> = c.get(path)?;
        list.iter()
            .map(|s| {
                let name = s
                    .names
                    .first()
                    .map(|n| n.trim_start_matches('/').to_string())
                    .unwrap_or_default();
                (s.id.clone(), name)
            })
            .collect()
    } else {
        let mut t = Vec::new();
        for n in &a.names {
            let info = inspect_container(c, n)?;
            t.push((info.id.clone(), n.clone()));
        }
        t
    };
    let format = Format::parse(a.format.as_deref());
    if a.no_stream {
        let mut items = Vec::new();
        for (id, name) in &targets {
            let s: StatsResponse = c.get(&with_query(&cpath(id, "stats"), &[("stream", "0")]))?;
            items.push(stats_fields(&s, id, name, a.no_trunc));
        }
        format::print(&format::render(&items, &format, STATS_TABLE, &stats_title)?);
        return Ok(());
    }
    // One stream per container; the table is redrawn every second.
    let latest: Arc<Mutex<BTreeMap<usize, Value>>> = Arc::default();
    for (i, (id, name)) in targets.iter().enumerate() {
        let (client, id, name, latest) = (c.clone(), id.clone(), name.clone(), latest.clone());
        let no_trunc = a.no_trunc;
        std::thread::spawn(move || {
            let path = with_query(&cpath(&id, "stats"), &[("stream", "1")]);
            let Ok(resp) = client.request(Request::new("GET", &path)) else {
                return;
            };
            for s in resp.json_lines::<StatsResponse>() {
                let Ok(s) = s else { return };
                if let Ok(mut m) = latest.lock() {
                    m.insert(i, stats_fields(&s, &id, &name, no_trunc));
                }
            }
        });
    }
    let terminal = io::stdout().is_terminal();
    loop {
        std::thread::sleep(Duration::from_secs(1));
        let items: Vec<Value> = match latest.lock() {
            Ok(m) => m.values().cloned().collect(),
            Err(_) => return Ok(()),
        };
        let mut text = format::render(&items, &format, STATS_TABLE, &stats_title)?;
        if terminal {
            text = format!("\x1b[2J\x1b[H{text}");
        }
        let mut out = io::stdout().lock();
        if out
            .write_all(text.as_bytes())
            .and_then(|_| out.flush())
            .is_err()
        {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_and_container_paths() {
        assert_eq!(split_tag("busybox"), ("busybox".into(), "latest".into()));
        assert_eq!(split_tag("a/b:1"), ("a/b".into(), "1".into()));
        assert_eq!(
            split_tag("localhost:5000/b"),
            ("localhost:5000/b".into(), "latest".into())
        );
        assert_eq!(split_container_path("web:/etc"), Some(("web", "/etc")));
        assert_eq!(split_container_path("/tmp/x"), None);
        assert_eq!(split_container_path("./a:b"), None);
    }

    #[test]
    fn path_stat_header() {
        // {"name":"tmp","mode":2147484159}
        let v = decode_path_stat("eyJuYW1lIjoidG1wIiwibW9kZSI6MjE0NzQ4NDE1OX0=").unwrap();
        assert_eq!(v["name"], "tmp");
    }
}
