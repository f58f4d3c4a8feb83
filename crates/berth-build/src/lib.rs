//! berth-build: Dockerfile builds.
//!
//! - [`dockerfile`]: the Dockerfile language (directives, continuations, heredocs, JSON and
//!   shell forms) parsed into typed instructions with their line numbers.
//! - [`shell`]: the word processing Docker applies to instruction arguments (quotes, escapes,
//!   `$VAR`, `${VAR:-default}` and friends).
//! - [`ignore`]: `.dockerignore` patterns with Go's matching rules and `!` exceptions.

pub mod builder;
pub mod context;
pub mod copy;
pub mod dockerfile;
pub mod ignore;
pub mod shell;

pub use builder::{build, Backend, BuildOptions, Message, RunSpec};
pub use context::Context;

/// Why a build failed. Each names what is wrong; step errors name the Dockerfile line.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(transparent)]
    Parse(#[from] dockerfile::ParseError),
    #[error("Dockerfile:{line}: {instruction}: {message}")]
    Step {
        line: usize,
        instruction: String,
        message: String,
    },
    #[error("Dockerfile:{line}: The command '{command}' returned a non-zero code: {code}")]
    RunFailed {
        line: usize,
        command: String,
        code: i64,
    },
    /// The context: unreadable tar, no Dockerfile, bad .dockerignore.
    #[error("{0}")]
    Context(String),
    /// Bad options (a tag, a target).
    #[error("{0}")]
    Invalid(String),
    /// The engine failed (a container could not be made, the store failed).
    #[error("{0}")]
    Backend(String),
}

impl BuildError {
    /// The exit code `docker build` ends with: a failed RUN's own, else 1.
    pub fn code(&self) -> i64 {
        match self {
            BuildError::RunFailed { code, .. } if *code > 0 => *code,
            _ => 1,
        }
    }
}
