//! Engine image records to Docker's JSON: `images` lines, image inspect (with
//! `ContainerConfig`, which older compose versions read) and history.

use std::collections::BTreeMap;

use berth_api::types::{
    ContainerConfig, Empty, GraphDriver, HistoryItem, ImageInspect, ImageMetadata, ImageSummary,
    RootFs, StrSlice,
};
use berth_engine::{HistoryEntry, ImageRecord};

use crate::time::rfc3339_to_unix;

/// Tags as `docker images` shows them: `busybox:latest`, `localhost:5000/x:1`.
pub fn repo_tags(r: &ImageRecord) -> Vec<String> {
    r.repo_tags.iter().map(|t| t.familiar()).collect()
}

/// The image's labels.
pub fn labels(r: &ImageRecord) -> BTreeMap<String, String> {
    r.config
        .config()
        .as_ref()
        .and_then(|c| c.labels().clone())
        .map(|m| m.into_iter().collect())
        .unwrap_or_default()
}

/// One line of `GET /images/json`; `containers` is how many containers use it (`-1` unknown).
pub fn summary(r: &ImageRecord, containers: i64) -> ImageSummary {
    ImageSummary {
        id: r.id.to_string(),
        parent_id: r.parent.as_ref().map(|p| p.to_string()).unwrap_or_default(),
        repo_tags: repo_tags(r),
        repo_digests: Vec::new(),
        created: rfc3339_to_unix(&r.created),
        size: r.size as i64,
        shared_size: -1,
        virtual_size: Some(r.size as i64),
        labels: labels(r),
        containers,
    }
}

fn set_of(v: &Option<Vec<String>>) -> Option<BTreeMap<String, Empty>> {
    v.as_ref()
        .filter(|v| !v.is_empty())
        .map(|v| v.iter().map(|k| (k.clone(), Empty {})).collect())
}

/// The image config as a container config (`Config` and `ContainerConfig` of inspect).
pub fn container_config(r: &ImageRecord) -> ContainerConfig {
    let Some(c) = r.config.config() else {
        return ContainerConfig::default();
    };
    ContainerConfig {
        user: c.user().clone().unwrap_or_default(),
        exposed_ports: set_of(c.exposed_ports()),
        env: c.env().clone(),
        cmd: c.cmd().clone().map(StrSlice),
        volumes: set_of(c.volumes()),
        working_dir: c.working_dir().clone().unwrap_or_default(),
        entrypoint: c.entrypoint().clone().map(StrSlice),
        labels: Some(labels(r)),
        stop_signal: c.stop_signal().clone(),
        // Docker's own keys, which OCI's config type does not carry.
        healthcheck: serde_json::from_value(r.docker_config["Healthcheck"].clone()).ok(),
        on_build: serde_json::from_value(r.docker_config["OnBuild"].clone()).ok(),
        shell: serde_json::from_value::<Vec<String>>(r.docker_config["Shell"].clone())
            .ok()
            .map(StrSlice),
        ..ContainerConfig::default()
    }
}

/// `GET /images/{name}/json`.
pub fn inspect(r: &ImageRecord) -> ImageInspect {
    let cfg = container_config(r);
    ImageInspect {
        id: r.id.to_string(),
        repo_tags: repo_tags(r),
        repo_digests: Vec::new(),
        parent: r.parent.as_ref().map(|p| p.to_string()).unwrap_or_default(),
        comment: String::new(),
        created: r.created.clone(),
        container: String::new(),
        container_config: Some(cfg.clone()),
        docker_version: String::new(),
        author: r.config.author().clone().unwrap_or_default(),
        config: Some(cfg),
        architecture: r.config.architecture().to_string(),
        variant: r.config.variant().clone().unwrap_or_default(),
        os: r.config.os().to_string(),
        os_version: r.config.os_version().clone().unwrap_or_default(),
        size: r.size as i64,
        virtual_size: Some(r.size as i64),
        graph_driver: GraphDriver {
            data: None,
            name: "overlay2".into(),
        },
        root_fs: RootFs {
            r#type: "layers".into(),
            layers: r.diff_ids.iter().map(|d| d.to_string()).collect(),
        },
        metadata: ImageMetadata {
            last_tag_time: "0001-01-01T00:00:00Z".into(),
        },
    }
}

/// `GET /images/{name}/history`; the top entry carries the image's tags.
pub fn history(entries: &[HistoryEntry], tags: &[String]) -> Vec<HistoryItem> {
    entries
        .iter()
        .enumerate()
        .map(|(i, h)| HistoryItem {
            id: h
                .id
                .as_ref()
                .map(|d| d.to_string())
                .unwrap_or_else(|| "<missing>".into()),
            created: h.created.as_deref().map(rfc3339_to_unix).unwrap_or(0),
            created_by: h.created_by.clone(),
            tags: if i == 0 { tags.to_vec() } else { Vec::new() },
            size: h.size as i64,
            comment: h.comment.clone(),
        })
        .collect()
}

/// Whether an image matches a `reference` filter value: `busybox`, `busybox:latest`,
/// `docker.io/library/busybox`, or a pattern with `*`.
pub fn matches_reference(r: &ImageRecord, pattern: &str) -> bool {
    r.repo_tags.iter().any(|t| tag_matches(t, pattern))
}

/// Whether one tag matches a `reference` filter pattern (familiar, repository or full).
pub fn tag_matches(t: &berth_engine::Reference, pattern: &str) -> bool {
    let familiar = t.familiar();
    let repo = t.familiar_repository();
    let full = t.to_string();
    [familiar.as_str(), repo.as_str(), full.as_str()]
        .iter()
        .any(|cand| glob(pattern, cand))
}

/// `*` matches any run of characters but `/`; everything else literally (Go's `path.Match`
/// without classes).
pub fn glob(pattern: &str, s: &str) -> bool {
    fn go(p: &[u8], s: &[u8]) -> bool {
        match p.split_first() {
            None => s.is_empty(),
            Some((b'*', rest)) => (0..=s.len())
                .take_while(|&i| i == 0 || s[i - 1] != b'/')
                .any(|i| go(rest, &s[i..])),
            Some((c, rest)) => s.first() == Some(c) && go(rest, &s[1..]),
        }
    }
    go(pattern.as_bytes(), s.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globbing() {
        assert!(glob("busybox", "busybox"));
        assert!(glob("busy*", "busybox"));
        assert!(glob("*:latest", "busybox:latest"));
        assert!(!glob("busy*", "library/busybox"));
        assert!(!glob("busybox", "busybox:latest"));
    }
}
