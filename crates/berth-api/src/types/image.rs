//! Image bodies: list, inspect, history, delete, prune, and the JSON progress messages of
//! pull, push, load, import and build.

use serde::{Deserialize, Serialize};

use super::{ContainerConfig, GraphDriver, StringMap};

wire! {
    /// One line of `GET /images/json`.
    #[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(rename_all = "PascalCase", default)]
    pub struct ImageSummary {
        pub id: String,
        pub parent_id: String,
        /// `["busybox:latest"]`; `[]` for a dangling image (`<none>:<none>` in older daemons).
        pub repo_tags: Vec<String>,
        pub repo_digests: Vec<String>,
        /// Unix seconds.
        pub created: i64,
        pub size: i64,
        /// `-1` when not computed.
        pub shared_size: i64,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub virtual_size: Option<i64>,
        pub labels: StringMap,
        /// `-1` when not computed.
        pub containers: i64,
    }
}

wire! {
    /// `RootFS` of image inspect.
    #[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(rename_all = "PascalCase", default)]
    pub struct RootFs {
        pub r#type: String,
        pub layers: Vec<String>,
    }
}

wire! {
    #[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(rename_all = "PascalCase", default)]
    pub struct ImageMetadata {
        pub last_tag_time: String,
    }
}

wire! {
    /// `GET /images/{name}/json`. Keeps `ContainerConfig`: older compose versions read it.
    #[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
    #[serde(rename_all = "PascalCase", default)]
    pub struct ImageInspect {
        pub id: String,
        pub repo_tags: Vec<String>,
        pub repo_digests: Vec<String>,
        pub parent: String,
        pub comment: String,
        /// RFC 3339 with nanoseconds.
        pub created: String,
        pub container: String,
        pub container_config: Option<ContainerConfig>,
        pub docker_version: String,
        pub author: String,
        pub config: Option<ContainerConfig>,
        pub architecture: String,
        #[serde(skip_serializing_if = "String::is_empty")]
        pub variant: String,
        pub os: String,
        #[serde(skip_serializing_if = "String::is_empty")]
        pub os_version: String,
        pub size: i64,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub virtual_size: Option<i64>,
        pub graph_driver: GraphDriver,
        #[serde(rename = "RootFS")]
        pub root_fs: RootFs,
        pub metadata: ImageMetadata,
    }
}

wire! {
    /// One line of `GET /images/{name}/history`; `Id` is `<missing>` for layers of other images.
    #[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(rename_all = "PascalCase", default)]
    pub struct HistoryItem {
        pub id: String,
        /// Unix seconds.
        pub created: i64,
        pub created_by: String,
        pub tags: Vec<String>,
        pub size: i64,
        pub comment: String,
    }
}

wire! {
    /// One line of `DELETE /images/{name}`: either `{"Untagged": "x:1"}` or `{"Deleted": "sha256:..."}`.
    #[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(rename_all = "PascalCase", default)]
    pub struct ImageDeleteResponseItem {
        #[serde(skip_serializing_if = "Option::is_none")]
        pub untagged: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub deleted: Option<String>,
    }
}

wire! {
    /// `POST /images/prune`.
    #[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(rename_all = "PascalCase", default)]
    pub struct ImagesPruneResponse {
        pub images_deleted: Option<Vec<ImageDeleteResponseItem>>,
        pub space_reclaimed: u64,
    }
}

wire! {
    /// `progressDetail` of a progress message.
    #[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(default)]
    pub struct ProgressDetail {
        #[serde(skip_serializing_if = "Option::is_none")]
        pub current: Option<i64>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub total: Option<i64>,
    }
}

wire! {
    /// `errorDetail` of a progress message.
    #[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(default)]
    pub struct ErrorDetail {
        #[serde(skip_serializing_if = "Option::is_none")]
        pub code: Option<i64>,
        pub message: String,
    }
}

wire! {
    /// One JSON line of pull, push, load, import and build output (Docker's `jsonmessage`):
    /// `{"status": "Pulling fs layer", "id": "..."}`, `{"stream": "Loaded image: x\n"}`,
    /// `{"aux": {"ID": "sha256:..."}}`, `{"errorDetail": {...}, "error": "..."}`.
    #[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
    #[serde(default)]
    pub struct JsonMessage {
        #[serde(skip_serializing_if = "Option::is_none")]
        pub stream: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub status: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub id: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub progress: Option<String>,
        #[serde(rename = "progressDetail", skip_serializing_if = "Option::is_none")]
        pub progress_detail: Option<ProgressDetail>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub error: Option<String>,
        #[serde(rename = "errorDetail", skip_serializing_if = "Option::is_none")]
        pub error_detail: Option<ErrorDetail>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub aux: Option<serde_json::Value>,
    }
}

impl JsonMessage {
    /// The error this message carries, if any (`errorDetail.message` first, then `error`).
    pub fn error_message(&self) -> Option<&str> {
        self.error_detail
            .as_ref()
            .map(|d| d.message.as_str())
            .filter(|m| !m.is_empty())
            .or(self.error.as_deref())
    }
}
