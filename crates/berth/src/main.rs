//! `berth`: Berth's native command line, with docker's verbs (`berth image ls|inspect|history|
//! tag|rm|prune|import|load|save|bootstrap`, `berth images`, `berth run`).
//!
//! The architecture has `berth` talk to berthd over HTTP only. Until berthd exists (issue 4)
//! it is daemonless: it links berth-image and berth-engine directly and keeps its state under
//! `--root` (default /var/lib/berth, or `BERTH_ROOT`); `run` hands the bundle to berth-runc.

/// `println!` that ignores a closed stdout (`berth image inspect x | head`).
macro_rules! outln {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($t)*);
    }};
}

mod image;
mod progress;
mod run;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Exit status of a command that failed.
const EXIT_FAILURE: u8 = 1;

#[derive(Parser)]
#[command(
    name = "berth",
    version,
    about = "Berth: build, ship and run containers"
)]
struct Cli {
    /// Root of Berth's state (images, content, snapshots, containers)
    #[arg(
        long,
        global = true,
        env = "BERTH_ROOT",
        default_value = "/var/lib/berth"
    )]
    root: PathBuf,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Manage images
    Image {
        #[command(subcommand)]
        command: image::ImageCommand,
    },
    /// List images (alias of `image ls`)
    Images(image::LsArgs),
    /// Run a command in a new container
    Run(run::RunArgs),
    /// Load an image from a tar archive or STDIN (alias of `image load`)
    Load(image::LoadArgs),
    /// Save images to a tar archive (alias of `image save`)
    Save(image::SaveArgs),
    /// Import a root filesystem tarball as an image (alias of `image import`)
    Import(image::ImportArgs),
    /// Create a tag TARGET that refers to SOURCE (alias of `image tag`)
    Tag(image::TagArgs),
    /// Remove images (alias of `image rm`)
    Rmi(image::RmArgs),
    /// Show the history of an image (alias of `image history`)
    History(image::HistoryArgs),
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
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl<E: std::error::Error> From<E> for Failure {
    fn from(e: E) -> Failure {
        // The error's sources say what failed underneath: show them unless already in it.
        let mut message = e.to_string();
        let mut source = e.source();
        while let Some(s) = source {
            let text = s.to_string();
            if !message.contains(&text) {
                message.push_str(": ");
                message.push_str(&text);
            }
            source = s.source();
        }
        Failure::new(message)
    }
}

pub type Result<T, E = Failure> = std::result::Result<T, E>;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Image { command } => image::run(&cli.root, command).map(|()| 0),
        Command::Images(a) => image::run(&cli.root, image::ImageCommand::Ls(a)).map(|()| 0),
        Command::Load(a) => image::run(&cli.root, image::ImageCommand::Load(a)).map(|()| 0),
        Command::Save(a) => image::run(&cli.root, image::ImageCommand::Save(a)).map(|()| 0),
        Command::Import(a) => image::run(&cli.root, image::ImageCommand::Import(a)).map(|()| 0),
        Command::Tag(a) => image::run(&cli.root, image::ImageCommand::Tag(a)).map(|()| 0),
        Command::Rmi(a) => image::run(&cli.root, image::ImageCommand::Rm(a)).map(|()| 0),
        Command::History(a) => image::run(&cli.root, image::ImageCommand::History(a)).map(|()| 0),
        Command::Run(a) => run::run(&cli.root, a),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(f) => {
            eprintln!("berth: {}", f.message);
            ExitCode::from(f.code)
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn cli_is_well_formed() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }
}
