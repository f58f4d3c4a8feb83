//! The `filters` parameter applied to engine objects: containers (`docker ps`), images,
//! volumes and events. Values of one key are ORed, keys ANDed, `label` values all must match.

use berth_api::Filters;
use berth_engine::{Container, Event, ImageRecord, Network, Status};

use crate::convert::image::{labels as image_labels, matches_reference, tag_matches};
use crate::error::ApiError;
use crate::route::ListQuery;
use crate::time::{parse_rfc3339_nanos, parse_timestamp};

const CONTAINER_KEYS: &[&str] = &[
    "id", "name", "label", "label!", "status", "exited", "ancestor", "before", "since", "health",
    "volume", "network", "is-task", "publish", "expose",
];
const STATUSES: &[&str] = &[
    "created",
    "restarting",
    "running",
    "removing",
    "paused",
    "exited",
    "dead",
];

/// `busybox`, `docker.io/library/busybox:latest` and `busybox:latest` are one image name.
pub fn normalize_image_name(s: &str) -> String {
    let s = s
        .strip_prefix("docker.io/library/")
        .or_else(|| s.strip_prefix("docker.io/"))
        .or_else(|| s.strip_prefix("index.docker.io/library/"))
        .unwrap_or(s);
    if s.contains('@') {
        return s.to_string();
    }
    let last = s.rsplit('/').next().unwrap_or(s);
    if last.contains(':') {
        s.to_string()
    } else {
        format!("{s}:latest")
    }
}

fn find<'a>(list: &'a [Container], key: &str) -> Option<&'a Container> {
    let key = key.trim_start_matches('/');
    list.iter()
        .find(|c| c.id == key || c.name == key)
        .or_else(|| {
            let mut hits = list.iter().filter(|c| c.id.starts_with(key));
            match (hits.next(), hits.next()) {
                (Some(c), None) => Some(c),
                _ => None,
            }
        })
}

fn created(c: &Container) -> i64 {
    parse_rfc3339_nanos(&c.created).unwrap_or(0)
}

fn ancestor_matches(c: &Container, v: &str) -> bool {
    let id = c.image_id.as_str();
    let bare = id.strip_prefix("sha256:").unwrap_or(id);
    let v_bare = v.strip_prefix("sha256:").unwrap_or(v);
    normalize_image_name(&c.image) == normalize_image_name(v)
        || (!v_bare.is_empty() && bare.starts_with(v_bare))
}

fn port_matches(c: &Container, v: &str, published: bool) -> bool {
    let want = crate::convert::create::normalize_port(v);
    if published {
        c.spec
            .port_bindings
            .iter()
            .chain(c.ports.iter())
            .any(|(p, bs)| !bs.is_empty() && (*p == want || bs.iter().any(|b| b.host_port == v)))
    } else {
        c.config.exposed_ports.contains(&want) || c.spec.exposed_ports.contains(&want)
    }
}

/// `GET /containers/json`: the containers to list, newest first.
pub fn containers(list: Vec<Container>, q: &ListQuery) -> Result<Vec<Container>, ApiError> {
    let f = &q.filters;
    f.validate(CONTAINER_KEYS)?;
    for s in f.get("status") {
        if !STATUSES.contains(&s.as_str()) {
            return Err(ApiError::bad_request(format!(
                "invalid filter 'status={s}'"
            )));
        }
    }
    for s in f.get("health") {
        if !["starting", "healthy", "unhealthy", "none"].contains(&s.as_str()) {
            return Err(ApiError::bad_request(format!(
                "invalid filter 'health={s}': expected one of starting, healthy, unhealthy, none"
            )));
        }
    }
    let mut exited = Vec::new();
    for s in f.get("exited") {
        exited.push(s.parse::<i32>().map_err(|_| {
            ApiError::bad_request(format!("invalid filter 'exited={s}': not an exit code"))
        })?);
    }
    let bound = |key: &str| -> Result<Option<i64>, ApiError> {
        match f.get(key).first() {
            None => Ok(None),
            Some(v) => find(&list, v)
                .map(|c| Some(created(c)))
                .ok_or_else(|| ApiError::not_found(format!("No such container: {v}"))),
        }
    };
    let before = bound("before")?;
    let since = bound("since")?;
    let all = q.all || q.limit.is_some() || f.contains("status") || f.contains("exited");

    let mut out = Vec::new();
    for c in list.iter() {
        let s = &c.state;
        if !all && !s.running() {
            continue;
        }
        let name = c.name.as_str();
        let slash_name = format!("/{name}");
        let keep =
            f.get("id").is_empty() || f.get("id").iter().any(|v| c.id.starts_with(v.as_str()));
        let keep = keep
            && (f.get("name").is_empty()
                || f.get("name")
                    .iter()
                    .any(|v| name_matches(v, name, &slash_name)))
            && f.matches_label(&c.config.labels)
            && f.include("status", s.status.as_str())
            && (exited.is_empty() || (s.status == Status::Exited && exited.contains(&s.exit_code)))
            && (f.get("ancestor").is_empty()
                || f.get("ancestor").iter().any(|v| ancestor_matches(c, v)))
            && before.is_none_or(|b| created(c) < b)
            && since.is_none_or(|b| created(c) > b)
            && f.include(
                "health",
                s.health.as_ref().map_or("none", |h| h.status.as_str()),
            )
            && (f.get("volume").is_empty()
                || f.get("volume").iter().any(|v| {
                    c.mounts
                        .iter()
                        .any(|m| m.name == *v || m.destination == *v || m.source == *v)
                }))
            && (f.get("network").is_empty()
                || f.get("network").iter().any(|v| {
                    c.networks.iter().any(|(name, ep)| {
                        name == v || (!v.is_empty() && ep.network_id.starts_with(v.as_str()))
                    })
                }))
            && (f.get("publish").is_empty()
                || f.get("publish").iter().any(|v| port_matches(c, v, true)))
            && (f.get("expose").is_empty()
                || f.get("expose").iter().any(|v| port_matches(c, v, false)))
            && (f.get("is-task").is_empty() || f.include("is-task", "false"));
        if keep {
            out.push(c.clone());
        }
    }
    if let Some(n) = q.limit {
        out.truncate(n);
    }
    Ok(out)
}

/// Docker's `name` filter: a regular expression searched in `/NAME` (so `^/web$` and `web`
/// both work, and `^web$` too, tried against the bare name); an invalid one matches as text.
fn name_matches(pattern: &str, name: &str, slash_name: &str) -> bool {
    match regex::Regex::new(pattern) {
        Ok(re) => re.is_match(slash_name) || re.is_match(name),
        Err(_) => slash_name.contains(pattern) || name.contains(pattern.trim_start_matches('/')),
    }
}

/// `GET /images/json` filters.
pub fn images(list: Vec<ImageRecord>, f: &Filters) -> Result<Vec<ImageRecord>, ApiError> {
    f.validate(&[
        "dangling",
        "reference",
        "label",
        "label!",
        "before",
        "since",
        "until",
    ])?;
    let dangling = f.get_bool("dangling")?;
    let created = |r: &ImageRecord| parse_rfc3339_nanos(&r.created).unwrap_or(0);
    let bound = |key: &str| -> Result<Option<i64>, ApiError> {
        match f.get(key).first() {
            None => Ok(None),
            Some(v) => list
                .iter()
                .find(|r| {
                    r.id.to_string() == *v
                        || r.id
                            .to_string()
                            .trim_start_matches("sha256:")
                            .starts_with(v.as_str())
                        || matches_reference(r, v)
                })
                .map(|r| Some(created(r)))
                .ok_or_else(|| ApiError::not_found(format!("No such image: {v}"))),
        }
    };
    let before = bound("before")?;
    let since = bound("since")?;
    let mut out = Vec::new();
    for r in list.iter() {
        // Dangling: untagged and no image built on it.
        let keep = dangling.is_none_or(|d| d == (r.repo_tags.is_empty() && !r.has_children))
            && (f.get("reference").is_empty()
                || f.get("reference").iter().any(|p| matches_reference(r, p)))
            && f.matches_label(&image_labels(r))
            && before.is_none_or(|b| created(r) < b)
            && since.is_none_or(|b| created(r) > b);
        if keep {
            let mut r = r.clone();
            // Like dockerd: only the tags the reference filter matched are listed.
            if !f.get("reference").is_empty() {
                r.repo_tags
                    .retain(|t| f.get("reference").iter().any(|p| tag_matches(t, p)));
            }
            out.push(r);
        }
    }
    Ok(out)
}

/// `GET /volumes` filters; `ref_count` tells whether a volume is in use (`dangling`).
pub fn volume_matches(
    f: &Filters,
    v: &berth_engine::Volume,
    ref_count: usize,
) -> Result<bool, ApiError> {
    f.validate(&["dangling", "name", "label", "label!", "driver"])?;
    let dangling = f.get_bool("dangling")?;
    let driver = if v.driver.is_empty() {
        "local"
    } else {
        v.driver.as_str()
    };
    Ok(dangling.is_none_or(|d| d == (ref_count == 0))
        && f.include_substring("name", &v.name)
        && f.matches_label(&v.labels)
        && f.include("driver", driver))
}

/// `GET /networks` filters: `name` (substring), `id` (prefix), `driver`, `type`
/// (`builtin`/`custom`), `scope`, `label`, `dangling` (no container connected).
pub fn network_matches(f: &Filters, n: &Network) -> Result<bool, ApiError> {
    f.validate(&[
        "name", "id", "driver", "type", "scope", "label", "label!", "dangling",
    ])?;
    for t in f.get("type") {
        if t != "builtin" && t != "custom" {
            return Err(ApiError::bad_request(format!(
                "invalid filter 'type={t}': expected builtin or custom"
            )));
        }
    }
    let dangling = f.get_bool("dangling")?;
    Ok(f.include_substring("name", &n.name)
        && (f.get("id").is_empty() || f.get("id").iter().any(|v| n.id.starts_with(v.as_str())))
        && f.include("driver", &n.driver)
        && f.include("type", if n.builtin { "builtin" } else { "custom" })
        && f.include("scope", "local")
        && f.matches_label(&n.labels)
        && dangling.is_none_or(|d| d == n.containers.is_empty()))
}

/// `POST /networks/prune` filters: `until` (created before) and `label`; built-in and
/// connected networks are never candidates.
pub fn network_prunable(f: &Filters, n: &Network) -> Result<bool, ApiError> {
    f.validate(&["until", "label", "label!"])?;
    let until = match f.get("until").first() {
        Some(v) => parse_timestamp("until", v)?,
        None => None,
    };
    let created = parse_rfc3339_nanos(&n.created).unwrap_or(0);
    Ok(!n.builtin
        && n.containers.is_empty()
        && f.matches_label(&n.labels)
        && until.is_none_or(|u| created < u))
}

/// `GET /events` filters.
pub fn event_matches(f: &Filters, e: &Event) -> bool {
    let action_base = e.action.split(':').next().unwrap_or("").trim();
    let attr = |k: &str| e.attributes.get(k).map(String::as_str).unwrap_or("");
    let id_or_name = |key: &str| {
        let vals = f.get(key);
        vals.is_empty()
            || vals.iter().any(|v| {
                v == &e.id || (!v.is_empty() && e.id.starts_with(v.as_str())) || v == attr("name")
            })
    };
    let typed = |key: &str| !f.contains(key) || e.kind == key && id_or_name(key);
    f.include("type", &e.kind)
        && (f.get("event").is_empty()
            || f.get("event")
                .iter()
                .any(|v| *v == e.action || v == action_base))
        && typed("container")
        && (f.get("image").is_empty()
            || f.get("image").iter().any(|v| {
                let img = attr("image");
                (e.kind == "image" && (v == &e.id || *v == attr("name")))
                    || (!img.is_empty() && normalize_image_name(img) == normalize_image_name(v))
            }))
        && typed("volume")
        && typed("network")
        && typed("daemon")
        && typed("service")
        && f.matches_label(&e.attributes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_engine::{Health, HealthStatus, State};
    use std::collections::BTreeMap;

    fn c(name: &str, id: &str, status: Status, created: &str) -> Container {
        Container {
            id: id.repeat(64 / id.len()),
            name: name.into(),
            created: created.into(),
            image: "busybox".into(),
            image_id: format!("sha256:{}", "f".repeat(64)),
            state: State {
                status,
                exit_code: if status == Status::Exited { 1 } else { 0 },
                ..State::default()
            },
            ..Container::default()
        }
    }

    fn list() -> Vec<Container> {
        let mut web = c("web", "a", Status::Running, "2024-05-01T10:00:03Z");
        web.config.labels.insert("tier".into(), "front".into());
        web.state.health = Some(Health {
            status: HealthStatus::Healthy,
            ..Health::default()
        });
        let db = c("db", "b", Status::Exited, "2024-05-01T10:00:02Z");
        let mut cache = c("cache", "c", Status::Paused, "2024-05-01T10:00:01Z");
        cache.image = "docker.io/library/redis:7".into();
        let mut list = vec![web, db, cache];
        for c in &mut list {
            c.networks.insert(
                "bridge".into(),
                berth_engine::Endpoint {
                    network_id: "f00d".repeat(16),
                    ..Default::default()
                },
            );
        }
        list[0].networks.insert(
            "front".into(),
            berth_engine::Endpoint {
                network_id: "beef".repeat(16),
                ..Default::default()
            },
        );
        list
    }

    fn names(q: &str, all: bool) -> Result<Vec<String>, ApiError> {
        let q = ListQuery {
            all,
            limit: None,
            size: false,
            filters: Filters::parse(q).unwrap(),
        };
        containers(list(), &q).map(|v| v.into_iter().map(|c| c.name).collect())
    }

    #[test]
    fn container_filters() {
        assert_eq!(names("", false).unwrap(), ["web", "cache"]);
        assert_eq!(names("", true).unwrap(), ["web", "db", "cache"]);
        assert_eq!(
            names(r#"{"name":{"web":true,"db":true}}"#, true).unwrap(),
            ["web", "db"]
        );
        assert_eq!(names(r#"{"name":{"/we":true}}"#, true).unwrap(), ["web"]);
        assert_eq!(
            names(r#"{"name":{"e":true},"status":{"exited":true}}"#, false).unwrap(),
            Vec::<String>::new()
        );
        assert_eq!(
            names(r#"{"status":{"exited":true}}"#, false).unwrap(),
            ["db"]
        );
        assert_eq!(names(r#"{"exited":{"1":true}}"#, false).unwrap(), ["db"]);
        assert_eq!(names(r#"{"label":{"tier":true}}"#, true).unwrap(), ["web"]);
        assert_eq!(
            names(r#"{"label":{"tier=front":true}}"#, true).unwrap(),
            ["web"]
        );
        assert_eq!(
            names(r#"{"label":{"tier=back":true}}"#, true).unwrap(),
            Vec::<String>::new()
        );
        assert_eq!(
            names(r#"{"ancestor":{"redis:7":true}}"#, true).unwrap(),
            ["cache"]
        );
        assert_eq!(
            names(r#"{"ancestor":{"busybox:latest":true}}"#, true).unwrap(),
            ["web", "db"]
        );
        assert_eq!(
            names(r#"{"before":{"web":true}}"#, true).unwrap(),
            ["db", "cache"]
        );
        assert_eq!(
            names(r#"{"since":{"cache":true}}"#, true).unwrap(),
            ["web", "db"]
        );
        assert_eq!(
            names(r#"{"health":{"healthy":true}}"#, true).unwrap(),
            ["web"]
        );
        assert_eq!(
            names(r#"{"health":{"none":true}}"#, true).unwrap(),
            ["db", "cache"]
        );
        assert_eq!(names(r#"{"id":{"bbbb":true}}"#, true).unwrap(), ["db"]);
        assert_eq!(
            names(r#"{"network":{"bridge":true}}"#, true).unwrap().len(),
            3
        );
        assert_eq!(
            names(r#"{"network":{"front":true}}"#, true).unwrap(),
            ["web"]
        );
        assert_eq!(
            names(r#"{"network":{"beefbeef":true}}"#, true).unwrap(),
            ["web"]
        );
        assert_eq!(
            names(r#"{"bogus":{"x":true}}"#, true)
                .unwrap_err()
                .status
                .as_u16(),
            400
        );
        assert_eq!(
            names(r#"{"status":{"sleeping":true}}"#, true)
                .unwrap_err()
                .status
                .as_u16(),
            400
        );
        assert_eq!(
            names(r#"{"before":{"nope":true}}"#, true)
                .unwrap_err()
                .status
                .as_u16(),
            404
        );
        let q = ListQuery {
            all: false,
            limit: Some(1),
            size: false,
            filters: Filters::default(),
        };
        assert_eq!(containers(list(), &q).unwrap().len(), 1);
    }

    #[test]
    fn event_filters() {
        let mut attributes = BTreeMap::new();
        attributes.insert("name".to_string(), "web".to_string());
        attributes.insert("image".to_string(), "busybox".to_string());
        attributes.insert("tier".to_string(), "front".to_string());
        let e = Event {
            kind: "container".into(),
            action: "health_status: healthy".into(),
            id: "abc123".into(),
            attributes,
            time_nano: 1,
        };
        let m = |q: &str| event_matches(&Filters::parse(q).unwrap(), &e);
        assert!(m(""));
        assert!(m(r#"{"type":{"container":true}}"#));
        assert!(!m(r#"{"type":{"image":true}}"#));
        assert!(m(r#"{"event":{"health_status":true}}"#));
        assert!(m(r#"{"event":{"die":true,"health_status: healthy":true}}"#));
        assert!(!m(r#"{"event":{"die":true}}"#));
        assert!(m(r#"{"container":{"web":true}}"#));
        assert!(m(r#"{"container":{"abc":true}}"#));
        assert!(!m(r#"{"container":{"db":true}}"#));
        assert!(m(r#"{"image":{"busybox:latest":true}}"#));
        assert!(m(r#"{"label":{"tier=front":true}}"#));
        assert!(!m(r#"{"volume":{"data":true}}"#));
        assert!(!m(r#"{"service":{"web":true}}"#));
        let s = Event {
            kind: "service".into(),
            action: "scale".into(),
            ..e
        };
        let m = |q: &str| event_matches(&Filters::parse(q).unwrap(), &s);
        assert!(m(r#"{"type":{"service":true}}"#));
        assert!(m(r#"{"service":{"web":true}}"#));
        assert!(!m(r#"{"service":{"db":true}}"#));
        assert!(m(r#"{"event":{"scale":true}}"#));
    }

    #[test]
    fn volume_filters() {
        let v = berth_engine::Volume {
            name: "data1".into(),
            ..Default::default()
        };
        let m = |q: &str, refs| volume_matches(&Filters::parse(q).unwrap(), &v, refs);
        assert!(m("", 0).unwrap());
        assert!(m(r#"{"dangling":{"true":true}}"#, 0).unwrap());
        assert!(!m(r#"{"dangling":{"true":true}}"#, 1).unwrap());
        assert!(m(r#"{"name":{"data":true}}"#, 0).unwrap());
        assert!(!m(r#"{"name":{"other":true}}"#, 0).unwrap());
        assert!(m(r#"{"driver":{"local":true}}"#, 0).unwrap());
        assert!(m(r#"{"bogus":{"x":true}}"#, 0).is_err());
    }

    #[test]
    fn image_names_normalize() {
        assert_eq!(normalize_image_name("busybox"), "busybox:latest");
        assert_eq!(
            normalize_image_name("docker.io/library/busybox:1"),
            "busybox:1"
        );
        assert_eq!(
            normalize_image_name("localhost:5000/x"),
            "localhost:5000/x:latest"
        );
    }
}
