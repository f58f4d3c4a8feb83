//! The control socket's protocol: one JSON request per connection, on one line; one JSON reply
//! line `{"ok":true,"result":…}` or `{"ok":false,"error":"…"}`; after the reply of `attach`,
//! `exec` and `logs` the connection carries the raw stream (framed without a tty).

use serde::{Deserialize, Serialize};

/// Names of the files in a shim's state directory.
pub const SOCKET: &str = "shim.sock";
pub const PID_FILE: &str = "shim.pid";
pub const EXIT_FILE: &str = "exit.json";
pub const LOG_FILE: &str = "json.log";
/// The shim's own diagnostics (it has no terminal).
pub const SHIM_LOG: &str = "shim.err";

/// A request, tagged by `op`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "op", rename_all = "kebab-case")]
pub enum Request {
    /// The container's pid, status and exit.
    State,
    /// `berth-runc start`, for a shim started with `start: false`.
    Start,
    /// Blocks until the container has exited; replies with its [`ExitInfo`].
    Wait,
    /// `berth-runc kill [--all] ID SIGNAL`.
    Kill {
        signal: i32,
        #[serde(default)]
        all: bool,
    },
    /// TIOCSWINSZ on the container's pty, or on an exec's with `exec`.
    Resize {
        height: u16,
        width: u16,
        #[serde(default)]
        exec: Option<String>,
    },
    /// The connection becomes the container's stream.
    Attach(AttachRequest),
    /// Runs a process in the container; the connection becomes its stream.
    Exec(ExecRequest),
    /// An exec's pid and, once it has exited, its exit code.
    ExecState { id: String },
    /// The json-file log, framed without a tty.
    Logs(LogsRequest),
    /// `berth-runc delete [--force]`, then the shim removes its socket and exits.
    Delete {
        #[serde(default)]
        force: bool,
    },
    /// The shim exits (refused while the container runs).
    Shutdown,
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq)]
pub struct AttachRequest {
    #[serde(default)]
    pub stdin: bool,
    #[serde(default)]
    pub stdout: bool,
    #[serde(default)]
    pub stderr: bool,
    /// Replay the log before the live stream.
    #[serde(default)]
    pub logs: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ExecRequest {
    /// Letters, digits, `-`, `_` and `.`; unique within the shim.
    pub id: String,
    /// An OCI runtime-spec `process` object; its `terminal` is set from `tty`.
    pub process: serde_json::Value,
    #[serde(default)]
    pub tty: bool,
    #[serde(default)]
    pub stdin: bool,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct LogsRequest {
    /// Keep streaming new entries until the container exits and its output is drained.
    #[serde(default)]
    pub follow: bool,
    /// Only the last N entries already written (all when absent).
    #[serde(default)]
    pub tail: Option<usize>,
    /// Only entries at or after this time (Unix nanoseconds).
    #[serde(default)]
    pub since: Option<i64>,
    /// Only entries before this time (Unix nanoseconds).
    #[serde(default)]
    pub until: Option<i64>,
    /// Prefix each entry with its RFC 3339 time and a space.
    #[serde(default)]
    pub timestamps: bool,
    #[serde(default)]
    pub stdout: bool,
    #[serde(default)]
    pub stderr: bool,
}

/// `exit.json`, and the reply of `wait`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ExitInfo {
    pub exit_code: i32,
    pub exited_at: String,
    pub oom_killed: bool,
}

/// The reply of `state`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ContainerState {
    pub id: String,
    /// Host pid of the container's init (0 before create finished).
    pub pid: i32,
    pub status: Status,
    pub tty: bool,
    pub shim_pid: i32,
    #[serde(default)]
    pub exit: Option<ExitInfo>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Created,
    Running,
    Stopped,
}

/// The reply of `exec-state`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ExecState {
    pub id: String,
    pub pid: i32,
    pub running: bool,
    #[serde(default)]
    pub exit_code: Option<i32>,
}

/// The reply line.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Reply {
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Longest request line accepted.
pub const MAX_REQUEST: usize = 1 << 20;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_tagged_by_op() {
        let r: Request = serde_json::from_str(r#"{"op":"kill","signal":9}"#).unwrap();
        assert_eq!(
            r,
            Request::Kill {
                signal: 9,
                all: false
            }
        );
        let r: Request =
            serde_json::from_str(r#"{"op":"attach","stdin":true,"stdout":true}"#).unwrap();
        assert!(matches!(
            r,
            Request::Attach(AttachRequest {
                stdin: true,
                stdout: true,
                ..
            })
        ));
        let r: Request = serde_json::from_str(r#"{"op":"exec-state","id":"e1"}"#).unwrap();
        assert_eq!(r, Request::ExecState { id: "e1".into() });
        let text = serde_json::to_string(&Request::Logs(LogsRequest {
            tail: Some(3),
            ..Default::default()
        }))
        .unwrap();
        assert!(text.contains(r#""op":"logs""#), "{text}");
        assert!(serde_json::from_str::<Request>(r#"{"op":"fly"}"#).is_err());
    }
}
