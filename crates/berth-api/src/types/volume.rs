//! Volume bodies: create, inspect, list, prune.

use serde::{Deserialize, Serialize};

use super::StringMap;

wire! {
    /// `UsageData` of a volume (system df); `-1` when not computed.
    #[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(rename_all = "PascalCase", default)]
    pub struct VolumeUsageData {
        pub ref_count: i64,
        pub size: i64,
    }
}

wire! {
    /// `GET /volumes/{name}`.
    #[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
    #[serde(rename_all = "PascalCase", default)]
    pub struct Volume {
        pub name: String,
        pub driver: String,
        pub mountpoint: String,
        /// RFC 3339.
        #[serde(skip_serializing_if = "String::is_empty")]
        pub created_at: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub status: Option<serde_json::Map<String, serde_json::Value>>,
        pub labels: StringMap,
        /// `local` or `global`.
        pub scope: String,
        pub options: StringMap,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub usage_data: Option<VolumeUsageData>,
    }
}

wire! {
    /// `POST /volumes/create`.
    #[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(rename_all = "PascalCase", default)]
    pub struct VolumeCreateRequest {
        pub name: String,
        pub driver: String,
        pub driver_opts: Option<StringMap>,
        pub labels: Option<StringMap>,
    }
}

wire! {
    /// `GET /volumes`.
    #[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
    #[serde(rename_all = "PascalCase", default)]
    pub struct VolumeListResponse {
        pub volumes: Vec<Volume>,
        pub warnings: Vec<String>,
    }
}

wire! {
    /// `POST /volumes/prune`.
    #[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(rename_all = "PascalCase", default)]
    pub struct VolumesPruneResponse {
        pub volumes_deleted: Option<Vec<String>>,
        pub space_reclaimed: u64,
    }
}
