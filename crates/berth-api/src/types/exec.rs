//! Exec bodies: create, start and inspect.

use serde::{Deserialize, Serialize};

use super::StrSlice;

wire! {
    /// `POST /containers/{id}/exec`.
    #[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(rename_all = "PascalCase", default)]
    pub struct ExecCreateRequest {
        pub attach_stdin: bool,
        pub attach_stdout: bool,
        pub attach_stderr: bool,
        /// `[height, width]`.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub console_size: Option<[u64; 2]>,
        /// The docker CLI sends it for `exec -d`; the start request's `Detach` is what counts.
        pub detach: bool,
        pub detach_keys: String,
        pub tty: bool,
        pub env: Option<Vec<String>>,
        pub cmd: Option<StrSlice>,
        pub privileged: bool,
        pub user: String,
        pub working_dir: String,
    }
}

wire! {
    /// `POST /exec/{id}/start` (hijacked unless `Detach`).
    #[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(rename_all = "PascalCase", default)]
    pub struct ExecStartRequest {
        pub detach: bool,
        pub tty: bool,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub console_size: Option<[u64; 2]>,
    }
}

wire! {
    /// `ProcessConfig` of exec inspect; its keys are lowercase in Docker.
    #[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(default)]
    pub struct ExecProcessConfig {
        pub tty: bool,
        pub entrypoint: String,
        pub arguments: Vec<String>,
        pub privileged: bool,
        pub user: String,
    }
}

wire! {
    /// `GET /exec/{id}/json`. `ExitCode` is `null` until the process has exited.
    #[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(rename_all = "PascalCase", default)]
    pub struct ExecInspect {
        #[serde(rename = "ID")]
        pub id: String,
        pub running: bool,
        pub exit_code: Option<i64>,
        pub process_config: ExecProcessConfig,
        pub open_stdin: bool,
        pub open_stderr: bool,
        pub open_stdout: bool,
        pub can_remove: bool,
        #[serde(rename = "ContainerID")]
        pub container_id: String,
        pub detach_keys: String,
        pub pid: i64,
    }
}
