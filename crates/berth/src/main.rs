//! `berth`: Berth's native command line, with docker's verbs, flags and output formats; a
//! client of berthd over HTTP only (berth-api's client and wire types).
//!
//! The daemon is `-H/--host`, else `BERTH_HOST`, else `DOCKER_HOST`, else
//! unix:///run/berth/berth.sock; when the default socket has no daemon, `berth` starts one
//! ([`daemon`]).

/// `println!` that ignores a closed stdout (`berth image inspect x | head`).
macro_rules! outln {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($t)*);
    }};
}

/// `print!` that ignores a closed stdout, and flushes (build output streams).
macro_rules! out {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let mut o = std::io::stdout();
        let _ = write!(o, $($t)*);
        let _ = o.flush();
    }};
}

mod container;
mod daemon;
mod format;
mod image;
mod opts;
mod progress;
mod service;
mod stdio;
mod system;
mod volume;

use std::process::ExitCode;

use berth_api::ClientError;
use clap::{Parser, Subcommand};

/// Exit status of a command that failed.
pub const EXIT_FAILURE: u8 = 1;
/// Docker's status when the daemon could not create or start the container.
pub const EXIT_SETUP: u8 = 125;

#[derive(Parser)]
#[command(
    name = "berth",
    version,
    about = "Berth: build, ship and run containers"
)]
struct Cli {
    /// Daemon socket to connect to (unix:///PATH or tcp://HOST:PORT)
    #[arg(short = 'H', long = "host", value_name = "HOST")]
    host: Option<String>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create and run a new container from an image
    Run(container::RunArgs),
    /// Create a new container
    Create(container::CreateArgs),
    /// Start one or more stopped containers
    Start(container::StartArgs),
    /// Stop one or more running containers
    Stop(container::StopArgs),
    /// Kill one or more running containers
    Kill(container::KillArgs),
    /// Restart one or more containers
    Restart(container::StopArgs),
    /// Remove one or more containers
    Rm(container::RmArgs),
    /// List containers
    Ps(container::PsArgs),
    /// Fetch the logs of a container
    Logs(container::LogsArgs),
    /// Attach local standard input, output, and error streams to a running container
    Attach(container::AttachArgs),
    /// Execute a command in a running container
    Exec(container::ExecArgs),
    /// Return low-level information on Docker objects
    Inspect(container::InspectArgs),
    /// Block until one or more containers stop, then print their exit codes
    Wait(container::NamesArgs),
    /// Pause all processes within one or more containers
    Pause(container::NamesArgs),
    /// Unpause all processes within one or more containers
    Unpause(container::NamesArgs),
    /// Rename a container
    Rename(container::RenameArgs),
    /// Display the running processes of a container
    Top(container::TopArgs),
    /// Display a live stream of container(s) resource usage statistics
    Stats(container::StatsArgs),
    /// Get real time events from the server
    Events(system::EventsArgs),
    /// Copy files/folders between a container and the local filesystem
    Cp(container::CpArgs),
    /// Export a container's filesystem as a tar archive
    Export(container::ExportArgs),
    /// Inspect changes to files or directories on a container's filesystem
    Diff(container::DiffArgs),
    /// Create a new image from a container's changes
    Commit(container::CommitArgs),
    /// Manage containers
    Container {
        #[command(subcommand)]
        command: container::ContainerCommand,
    },
    /// Manage images
    Image {
        #[command(subcommand)]
        command: image::ImageCommand,
    },
    /// List images
    Images(image::LsArgs),
    /// Remove one or more images
    Rmi(image::RmArgs),
    /// Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE
    Tag(image::TagArgs),
    /// Build an image from a Dockerfile
    Build(image::BuildArgs),
    /// Load an image from a tar archive or STDIN
    Load(image::LoadArgs),
    /// Save one or more images to a tar archive (streamed to STDOUT by default)
    Save(image::SaveArgs),
    /// Import the contents from a tarball to create a filesystem image
    Import(image::ImportArgs),
    /// Show the history of an image
    History(image::HistoryArgs),
    /// Manage volumes
    Volume {
        #[command(subcommand)]
        command: volume::VolumeCommand,
    },
    /// Manage swarm services
    Service {
        #[command(subcommand)]
        command: service::ServiceCommand,
    },
    /// Manage Berth
    System {
        #[command(subcommand)]
        command: system::SystemCommand,
    },
    /// Show the Berth version information
    Version(system::VersionArgs),
    /// Display system-wide information
    Info(system::InfoArgs),
}

/// An error for the user: printed as `berth: MESSAGE`, with this exit status.
#[derive(Debug)]
pub struct Failure {
    pub message: String,
    pub code: u8,
}

impl Failure {
    pub fn new(message: impl std::fmt::Display) -> Failure {
        Failure {
            message: message.to_string(),
            code: EXIT_FAILURE,
        }
    }

    /// The same failure with another exit status.
    pub fn code(mut self, code: u8) -> Failure {
        self.code = code;
        self
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl From<ClientError> for Failure {
    fn from(e: ClientError) -> Failure {
        Failure::new(client_message(&e))
    }
}

impl From<std::io::Error> for Failure {
    fn from(e: std::io::Error) -> Failure {
        Failure::new(e)
    }
}

/// What the user reads for a client error: the daemon's own message for its answers (as the
/// docker CLI shows them, first letter lowercased), else what failed talking to it.
pub fn client_message(e: &ClientError) -> String {
    match e {
        ClientError::Api { source, .. } => lower_first(&source.message),
        other => {
            let mut message = other.to_string();
            let mut source = std::error::Error::source(other);
            while let Some(s) = source {
                let text = s.to_string();
                if !message.contains(&text) {
                    message.push_str(": ");
                    message.push_str(&text);
                }
                source = s.source();
            }
            message
        }
    }
}

/// `No such container: x` → `no such container: x`, but `ID abc` stays.
pub fn lower_first(s: &str) -> String {
    let mut chars = s.chars();
    match (chars.next(), chars.next()) {
        (Some(a), Some(b)) if a.is_ascii_uppercase() && !b.is_ascii_uppercase() => {
            let mut out = a.to_ascii_lowercase().to_string();
            out.push_str(&s[1..]);
            out
        }
        _ => s.to_string(),
    }
}

pub type Result<T, E = Failure> = std::result::Result<T, E>;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let host = daemon::select_host(cli.host.as_deref());
    let result = dispatch(&host, cli.command);
    match result {
        Ok(code) => ExitCode::from(code),
        Err(f) => {
            if !f.message.is_empty() {
                eprintln!("berth: {}", f.message);
            }
            ExitCode::from(f.code)
        }
    }
}

fn dispatch(host: &daemon::HostChoice, command: Command) -> Result<u8> {
    let ok = |r: Result<()>| r.map(|()| 0u8);
    if let Command::Version(a) = &command {
        return system::version(host, a);
    }
    let client = daemon::connect(host)?;
    let c = &client;
    match command {
        Command::Run(a) => container::run(c, a),
        Command::Create(a) => ok(container::create_cmd(c, a)),
        Command::Start(a) => container::start(c, &a),
        Command::Stop(a) => ok(container::stop(c, &a, false)),
        Command::Restart(a) => ok(container::stop(c, &a, true)),
        Command::Kill(a) => ok(container::kill(c, &a)),
        Command::Rm(a) => ok(container::rm(c, &a)),
        Command::Ps(a) => ok(container::ps(c, &a)),
        Command::Logs(a) => ok(container::logs(c, &a)),
        Command::Attach(a) => container::attach(c, &a),
        Command::Exec(a) => container::exec(c, a),
        Command::Inspect(a) => ok(container::inspect(c, &a)),
        Command::Wait(a) => ok(container::wait(c, &a)),
        Command::Pause(a) => ok(container::simple(c, &a, "pause")),
        Command::Unpause(a) => ok(container::simple(c, &a, "unpause")),
        Command::Rename(a) => ok(container::rename(c, &a)),
        Command::Top(a) => ok(container::top(c, &a)),
        Command::Stats(a) => ok(container::stats(c, &a)),
        Command::Events(a) => ok(system::events(c, &a)),
        Command::Cp(a) => ok(container::cp(c, &a)),
        Command::Export(a) => ok(container::export(c, &a)),
        Command::Diff(a) => ok(container::diff(c, &a)),
        Command::Commit(a) => ok(container::commit(c, &a)),
        Command::Container { command } => container::container_command(c, command),
        Command::Image { command } => ok(image::run(c, command)),
        Command::Images(a) => ok(image::ls(c, &a)),
        Command::Rmi(a) => ok(image::rm(c, &a)),
        Command::Tag(a) => ok(image::tag(c, &a)),
        Command::Build(a) => image::build(c, &a),
        Command::Load(a) => ok(image::load(c, &a)),
        Command::Save(a) => ok(image::save(c, &a)),
        Command::Import(a) => ok(image::import(c, &a)),
        Command::History(a) => ok(image::history(c, &a)),
        Command::Volume { command } => ok(volume::run(c, command)),
        Command::Service { command } => ok(service::run(c, command)),
        Command::System { command } => ok(system::run(c, command)),
        Command::Info(a) => ok(system::info(c, &a)),
        Command::Version(_) => Ok(0),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn cli_is_well_formed() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }

    #[test]
    fn daemon_messages_lowercased_like_errors() {
        assert_eq!(
            super::lower_first("No such container: nope"),
            "no such container: nope"
        );
        assert_eq!(super::lower_first("ID abc"), "ID abc");
        assert_eq!(super::lower_first(""), "");
    }
}
