//! Routing: a request's method, path and query become one typed [`Action`]. Paths are matched
//! by hand because image names contain slashes (`/images/docker.io/library/busybox:latest/json`);
//! the optional `/v1.NN` prefix is stripped and checked first.

use berth_api::version::{self, ApiVersion};
use berth_api::Filters;
use berth_engine::{AttachOptions, LogsOptions, WaitCondition};
use http::Method;

use crate::error::ApiError;
use crate::query::{percent_decode, Query};
use crate::time::parse_timestamp;

/// `GET /events` parameters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventsQuery {
    /// Unix nanoseconds.
    pub since: Option<i64>,
    pub until: Option<i64>,
    pub filters: Filters,
}

/// `GET /containers/json` parameters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListQuery {
    pub all: bool,
    pub limit: Option<usize>,
    pub size: bool,
    pub filters: Filters,
}

/// `POST /commit` parameters (the engine's `CommitOptions`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CommitQuery {
    pub reference: Option<String>,
    pub comment: String,
    pub author: String,
    pub changes: Vec<String>,
    pub pause: bool,
}

impl From<CommitQuery> for berth_engine::CommitOptions {
    fn from(q: CommitQuery) -> berth_engine::CommitOptions {
        berth_engine::CommitOptions {
            reference: q.reference,
            comment: q.comment,
            author: q.author,
            changes: q.changes,
            pause: q.pause,
        }
    }
}

/// What a request asks for. Bodies (create, exec, volume create, uploads) are read by the
/// handler of the action.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    Ping {
        head: bool,
    },
    Version,
    Info,
    Events(EventsQuery),
    SystemDf,
    ContainersPrune {
        filters: Filters,
    },
    ImagesPrune {
        filters: Filters,
    },
    VolumesPrune {
        filters: Filters,
    },
    /// Removes the user networks no container is connected to.
    NetworksPrune {
        filters: Filters,
    },
    /// `system prune` also prunes the build cache; Berth has none yet, so nothing is deleted.
    BuildPrune,
    /// `POST /build`: the context tar is the body.
    Build {
        opts: berth_engine::build::BuildOptions,
        /// `-q`: only the image id is shown, so no step output is sent.
        quiet: bool,
    },

    ContainerCreate {
        name: Option<String>,
    },
    ContainerList(ListQuery),
    ContainerInspect {
        id: String,
        size: bool,
    },
    ContainerStart {
        id: String,
    },
    ContainerStop {
        id: String,
        timeout: Option<i64>,
        signal: Option<String>,
    },
    ContainerKill {
        id: String,
        signal: Option<String>,
    },
    ContainerRestart {
        id: String,
        timeout: Option<i64>,
    },
    ContainerPause {
        id: String,
    },
    ContainerUnpause {
        id: String,
    },
    ContainerRename {
        id: String,
        name: String,
    },
    ContainerRemove {
        id: String,
        force: bool,
        volumes: bool,
    },
    ContainerWait {
        id: String,
        condition: WaitCondition,
    },
    ContainerAttach {
        id: String,
        opts: AttachOptions,
    },
    ContainerResize {
        id: String,
        height: u16,
        width: u16,
    },
    ContainerLogs {
        id: String,
        opts: LogsOptions,
    },
    ContainerTop {
        id: String,
        ps_args: Option<String>,
    },
    ContainerStats {
        id: String,
        stream: bool,
        one_shot: bool,
    },
    ContainerChanges {
        id: String,
    },
    ContainerExport {
        id: String,
    },
    ArchiveStat {
        id: String,
        path: String,
    },
    ArchiveGet {
        id: String,
        path: String,
    },
    ArchivePut {
        id: String,
        path: String,
        no_overwrite_dir_non_dir: bool,
    },
    Commit {
        container: String,
        opts: CommitQuery,
    },

    ExecCreate {
        id: String,
    },
    ExecStart {
        id: String,
    },
    ExecResize {
        id: String,
        height: u16,
        width: u16,
    },
    ExecInspect {
        id: String,
    },

    ImageList {
        filters: Filters,
        /// `-a`: intermediate images too.
        all: bool,
    },
    ImageInspect {
        name: String,
    },
    ImageHistory {
        name: String,
    },
    ImageTag {
        name: String,
        repo: String,
        tag: String,
    },
    ImageRemove {
        name: String,
        force: bool,
    },
    ImageSave {
        names: Vec<String>,
    },
    ImageLoad {
        quiet: bool,
    },
    ImageImport {
        reference: Option<String>,
        changes: Vec<String>,
    },
    ImagePull {
        image: String,
        tag: String,
    },
    ImageBootstrap {
        what: String,
    },

    VolumeCreate,
    /// `/swarm`, `/nodes`, `/services`, `/tasks`.
    Swarm(crate::swarm::SwarmAction),
    VolumeList {
        filters: Filters,
    },
    VolumeInspect {
        name: String,
    },
    VolumeRemove {
        name: String,
        force: bool,
    },

    NetworkList {
        filters: Filters,
    },
    NetworkInspect {
        id: String,
        /// `scope`: `swarm` or `local` limits the search (the docker CLI asks `swarm` for a
        /// service's `--network`); empty: any.
        scope: String,
    },
    NetworkCreate,
    NetworkRemove {
        id: String,
    },
    NetworkConnect {
        id: String,
    },
    NetworkDisconnect {
        id: String,
    },
}

impl Action {
    /// Whether the client may ask to hijack the connection for this action.
    pub fn hijacks(&self) -> bool {
        matches!(
            self,
            Action::ContainerAttach { .. } | Action::ExecStart { .. }
        )
    }
}

/// A routed request: the API version to answer at and the action.
#[derive(Debug, Clone, PartialEq)]
pub struct Routed {
    pub version: ApiVersion,
    pub action: Action,
}

fn page_not_found() -> ApiError {
    ApiError::not_found("page not found")
}

/// Strips and checks the version prefix, then routes.
pub fn route(method: &Method, raw_path: &str, raw_query: Option<&str>) -> Result<Routed, ApiError> {
    let (requested, path) = version::split_version_path(raw_path)?;
    let version = version::check(requested)?;
    let path = percent_decode(path, false);
    let query = Query::parse(raw_query);
    let action = route_action(method, &path, &query)?;
    Ok(Routed { version, action })
}

fn wait_condition(q: &Query) -> Result<WaitCondition, ApiError> {
    match q.get("condition").unwrap_or("") {
        "" | "not-running" => Ok(WaitCondition::NotRunning),
        "next-exit" => Ok(WaitCondition::NextExit),
        "removed" => Ok(WaitCondition::Removed),
        other => Err(ApiError::bad_request(format!(
            "invalid condition: {other:?}; use not-running, next-exit or removed"
        ))),
    }
}

fn logs_options(q: &Query) -> Result<LogsOptions, ApiError> {
    let tail = match q.get("tail").map(str::trim) {
        None | Some("") | Some("all") => None,
        Some(n) => match n.parse::<i64>() {
            Ok(n) if n < 0 => None,
            Ok(n) => Some(n as usize),
            Err(_) => {
                return Err(ApiError::bad_request(format!(
                    "invalid value for tail: {n:?} is not a number or \"all\""
                )))
            }
        },
    };
    Ok(LogsOptions {
        follow: q.bool("follow"),
        stdout: q.bool("stdout"),
        stderr: q.bool("stderr"),
        since: parse_timestamp("since", q.get("since").unwrap_or(""))?.unwrap_or(0),
        until: parse_timestamp("until", q.get("until").unwrap_or(""))?.unwrap_or(0),
        timestamps: q.bool("timestamps"),
        tail,
    })
}

fn required(q: &Query, key: &str) -> Result<String, ApiError> {
    q.non_empty(key)
        .map(str::to_string)
        .ok_or_else(|| ApiError::bad_request(format!("missing query parameter {key}")))
}

fn route_action(method: &Method, path: &str, q: &Query) -> Result<Action, ApiError> {
    let path = if path.len() > 1 {
        path.trim_end_matches('/')
    } else {
        path
    };
    let m = method.clone();
    let get = m == Method::GET;
    let post = m == Method::POST;
    let head = m == Method::HEAD;
    let put = m == Method::PUT;
    let delete = m == Method::DELETE;

    if let Some(a) = crate::swarm::route(method, path, q) {
        return a.map(Action::Swarm);
    }

    // Fixed paths first.
    match path {
        "/_ping" if get || head => return Ok(Action::Ping { head }),
        "/version" if get => return Ok(Action::Version),
        "/info" if get => return Ok(Action::Info),
        "/events" if get => {
            return Ok(Action::Events(EventsQuery {
                since: parse_timestamp("since", q.get("since").unwrap_or(""))?,
                until: parse_timestamp("until", q.get("until").unwrap_or(""))?,
                filters: q.filters()?,
            }))
        }
        "/system/df" if get => return Ok(Action::SystemDf),
        "/containers/prune" if post => {
            return Ok(Action::ContainersPrune {
                filters: q.filters()?,
            })
        }
        "/images/prune" if post => {
            return Ok(Action::ImagesPrune {
                filters: q.filters()?,
            })
        }
        "/volumes/prune" if post => {
            return Ok(Action::VolumesPrune {
                filters: q.filters()?,
            })
        }
        "/networks/prune" if post => {
            return Ok(Action::NetworksPrune {
                filters: q.filters()?,
            })
        }
        "/networks/create" if post => return Ok(Action::NetworkCreate),
        "/build/prune" if post => return Ok(Action::BuildPrune),
        "/build" if post => return build_query(q),
        "/containers/create" if post => {
            return Ok(Action::ContainerCreate {
                name: q.non_empty("name").map(str::to_string),
            })
        }
        "/containers/json" if get => {
            let limit = q.int("limit")?.filter(|n| *n > 0).map(|n| n as usize);
            return Ok(Action::ContainerList(ListQuery {
                all: q.bool("all"),
                limit,
                size: q.bool("size"),
                filters: q.filters()?,
            }));
        }
        "/commit" if post => {
            let container = required(q, "container")?;
            let repo = q.get("repo").unwrap_or("");
            let tag = q.get("tag").unwrap_or("");
            let reference = match (repo, tag) {
                ("", _) => None,
                (r, "") => Some(r.to_string()),
                (r, t) => Some(format!("{r}:{t}")),
            };
            return Ok(Action::Commit {
                container,
                opts: CommitQuery {
                    reference,
                    comment: q.get("comment").unwrap_or("").to_string(),
                    author: q.get("author").unwrap_or("").to_string(),
                    changes: split_changes(q),
                    pause: q.bool_or("pause", true),
                },
            });
        }
        "/images/json" if get => {
            let mut filters = q.filters()?;
            // `docker images NAME` on old APIs sends `filter=NAME`.
            if let Some(name) = q.non_empty("filter") {
                filters.add("reference", name);
            }
            let all = q.bool_or("all", false);
            return Ok(Action::ImageList { filters, all });
        }
        "/images/get" if get => {
            let names = q.get_all("names");
            if names.is_empty() {
                return Err(ApiError::bad_request("missing query parameter names"));
            }
            return Ok(Action::ImageSave { names });
        }
        "/images/load" if post => {
            return Ok(Action::ImageLoad {
                quiet: q.bool("quiet"),
            })
        }
        "/images/create" if post => {
            if let Some(src) = q.non_empty("fromSrc") {
                if src != "-" {
                    return Err(ApiError::bad_request(format!(
                        "import from {src:?}: only a tar in the request body (fromSrc=-) is supported"
                    )));
                }
                let repo = q.get("repo").unwrap_or("");
                let tag = q.get("tag").unwrap_or("");
                let reference = match (repo, tag) {
                    ("", _) => None,
                    (r, "") => Some(r.to_string()),
                    (r, t) => Some(format!("{r}:{t}")),
                };
                return Ok(Action::ImageImport {
                    reference,
                    changes: split_changes(q),
                });
            }
            let image = required(q, "fromImage")?;
            return Ok(Action::ImagePull {
                image,
                tag: q.get("tag").unwrap_or("").to_string(),
            });
        }
        "/berth/images/bootstrap" if post => {
            return Ok(Action::ImageBootstrap {
                what: required(q, "name")?,
            })
        }
        "/volumes/create" if post => return Ok(Action::VolumeCreate),
        "/volumes" if get => {
            return Ok(Action::VolumeList {
                filters: q.filters()?,
            })
        }
        "/networks" if get => {
            return Ok(Action::NetworkList {
                filters: q.filters()?,
            })
        }
        _ => {}
    }

    if let Some(rest) = path.strip_prefix("/containers/") {
        let (id, op) = match rest.split_once('/') {
            Some((id, op)) => (id.to_string(), op),
            None => (rest.to_string(), ""),
        };
        if id.is_empty() {
            return Err(page_not_found());
        }
        return Ok(match (op, &m) {
            ("", &Method::DELETE) => Action::ContainerRemove {
                id,
                force: q.bool("force"),
                volumes: q.bool("v"),
            },
            ("json", &Method::GET) => Action::ContainerInspect {
                id,
                size: q.bool("size"),
            },
            ("start", &Method::POST) => Action::ContainerStart { id },
            ("stop", &Method::POST) => Action::ContainerStop {
                id,
                timeout: q.int("t")?,
                signal: q.non_empty("signal").map(str::to_string),
            },
            ("kill", &Method::POST) => Action::ContainerKill {
                id,
                signal: q.non_empty("signal").map(str::to_string),
            },
            ("restart", &Method::POST) => Action::ContainerRestart {
                id,
                timeout: q.int("t")?,
            },
            ("pause", &Method::POST) => Action::ContainerPause { id },
            ("unpause", &Method::POST) => Action::ContainerUnpause { id },
            ("rename", &Method::POST) => Action::ContainerRename {
                id,
                name: required(q, "name")?,
            },
            ("wait", &Method::POST) => Action::ContainerWait {
                id,
                condition: wait_condition(q)?,
            },
            ("attach", &Method::POST) => Action::ContainerAttach {
                id,
                opts: AttachOptions {
                    stdin: q.bool("stdin"),
                    stdout: q.bool("stdout"),
                    stderr: q.bool("stderr"),
                    logs: q.bool("logs"),
                    stream: q.bool("stream"),
                },
            },
            ("resize", &Method::POST) => Action::ContainerResize {
                id,
                height: q.u16_required("h")?,
                width: q.u16_required("w")?,
            },
            ("logs", &Method::GET) => Action::ContainerLogs {
                id,
                opts: logs_options(q)?,
            },
            ("top", &Method::GET) => Action::ContainerTop {
                id,
                ps_args: q.non_empty("ps_args").map(str::to_string),
            },
            ("stats", &Method::GET) => Action::ContainerStats {
                id,
                stream: q.bool_or("stream", true),
                one_shot: q.bool("one-shot"),
            },
            ("changes", &Method::GET) => Action::ContainerChanges { id },
            ("export", &Method::GET) => Action::ContainerExport { id },
            ("exec", &Method::POST) => Action::ExecCreate { id },
            ("archive", &Method::HEAD) => Action::ArchiveStat {
                id,
                path: required(q, "path")?,
            },
            ("archive", &Method::GET) => Action::ArchiveGet {
                id,
                path: required(q, "path")?,
            },
            ("archive", &Method::PUT) => Action::ArchivePut {
                id,
                path: required(q, "path")?,
                no_overwrite_dir_non_dir: q.bool("noOverwriteDirNonDir"),
            },
            _ => return Err(page_not_found()),
        });
    }

    if let Some(rest) = path.strip_prefix("/exec/") {
        let (id, op) = rest.split_once('/').unwrap_or((rest, ""));
        if id.is_empty() {
            return Err(page_not_found());
        }
        let id = id.to_string();
        return Ok(match (op, &m) {
            ("start", &Method::POST) => Action::ExecStart { id },
            ("resize", &Method::POST) => Action::ExecResize {
                id,
                height: q.u16_required("h")?,
                width: q.u16_required("w")?,
            },
            ("json", &Method::GET) => Action::ExecInspect { id },
            _ => return Err(page_not_found()),
        });
    }

    if let Some(rest) = path.strip_prefix("/images/") {
        // The name may contain slashes: match the operation at the end.
        let with_op = |op: &str| {
            rest.strip_suffix(op)
                .and_then(|n| n.strip_suffix('/'))
                .filter(|n| !n.is_empty())
                .map(str::to_string)
        };
        if get {
            if let Some(name) = with_op("json") {
                return Ok(Action::ImageInspect { name });
            }
            if let Some(name) = with_op("history") {
                return Ok(Action::ImageHistory { name });
            }
            if let Some(name) = with_op("get") {
                return Ok(Action::ImageSave { names: vec![name] });
            }
        }
        if post {
            if let Some(name) = with_op("tag") {
                return Ok(Action::ImageTag {
                    name,
                    repo: required(q, "repo")?,
                    tag: q.get("tag").unwrap_or("").to_string(),
                });
            }
        }
        if delete && !rest.is_empty() {
            return Ok(Action::ImageRemove {
                name: rest.to_string(),
                force: q.bool("force"),
            });
        }
        return Err(page_not_found());
    }

    if let Some(name) = path.strip_prefix("/volumes/") {
        if name.is_empty() || name.contains('/') {
            return Err(page_not_found());
        }
        let name = name.to_string();
        if get {
            return Ok(Action::VolumeInspect { name });
        }
        if delete {
            return Ok(Action::VolumeRemove {
                name,
                force: q.bool("force"),
            });
        }
        return Err(page_not_found());
    }

    if let Some(rest) = path.strip_prefix("/networks/") {
        let (id, op) = rest.split_once('/').unwrap_or((rest, ""));
        if id.is_empty() {
            return Err(page_not_found());
        }
        let id = id.to_string();
        return match op {
            "" if get => Ok(Action::NetworkInspect {
                id,
                scope: q.get("scope").unwrap_or("").to_string(),
            }),
            "" if delete => Ok(Action::NetworkRemove { id }),
            "connect" if post => Ok(Action::NetworkConnect { id }),
            "disconnect" if post => Ok(Action::NetworkDisconnect { id }),
            _ => Err(page_not_found()),
        };
    }

    let _ = (put, head);
    Err(page_not_found())
}

/// `changes` of commit and import: the CLI sends one parameter per `--change`; a value may
/// also hold several lines.
fn split_changes(q: &Query) -> Vec<String> {
    q.get_all("changes")
        .iter()
        .flat_map(|c| c.lines().map(str::to_string).collect::<Vec<_>>())
        .map(|c| c.trim().to_string())
        .filter(|c| !c.is_empty())
        .collect()
}

/// The query of `POST /build` (the classic builder's parameters).
fn build_query(q: &Query) -> Result<Action, ApiError> {
    if let Some(v) = q.non_empty("version") {
        if v != "1" {
            return Err(ApiError::bad_request(format!(
                "builder version {v} (BuildKit) is not supported: berthd runs the classic builder; set DOCKER_BUILDKIT=0"
            )));
        }
    }
    if let Some(r) = q.non_empty("remote") {
        return Err(ApiError::bad_request(format!(
            "remote build contexts ({r}) are not supported: there is no network; send the context as a tar"
        )));
    }
    let json_map =
        |key: &str| -> Result<std::collections::BTreeMap<String, Option<String>>, ApiError> {
            match q.non_empty(key) {
                None => Ok(Default::default()),
                Some(text) => serde_json::from_str(text)
                    .map_err(|e| ApiError::bad_request(format!("invalid {key} parameter: {e}"))),
            }
        };
    let build_args = json_map("buildargs")?;
    let labels = json_map("labels")?
        .into_iter()
        .map(|(k, v)| (k, v.unwrap_or_default()))
        .collect();
    let network = q
        .non_empty("networkmode")
        .filter(|n| *n != "default")
        .map(str::to_string);
    Ok(Action::Build {
        opts: berth_engine::build::BuildOptions {
            dockerfile: q.non_empty("dockerfile").unwrap_or("").to_string(),
            tags: q
                .get_all("t")
                .into_iter()
                .filter(|t| !t.is_empty())
                .collect(),
            build_args,
            labels,
            target: q.non_empty("target").map(str::to_string),
            no_cache: q.bool("nocache"),
            network,
        },
        quiet: q.bool("q"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn act(method: Method, target: &str) -> Result<Action, ApiError> {
        let (path, query) = match target.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (target, None),
        };
        route(&method, path, query).map(|r| r.action)
    }

    #[test]
    fn build_parameters() {
        let a = act(
            Method::POST,
            "/v1.41/build?t=a%3A1&t=b&dockerfile=sub%2FDf&buildargs=%7B%22V%22%3A%222%22%2C%22U%22%3Anull%7D&labels=%7B%22l%22%3A%22x%22%7D&target=st&nocache=1&q=1&networkmode=none&version=1",
        )
        .unwrap();
        let Action::Build { opts, quiet } = a else {
            panic!("not a build: {a:?}")
        };
        assert!(quiet);
        assert_eq!(opts.tags, ["a:1", "b"]);
        assert_eq!(opts.dockerfile, "sub/Df");
        assert_eq!(opts.build_args["V"].as_deref(), Some("2"));
        assert_eq!(opts.build_args["U"], None);
        assert_eq!(opts.labels["l"], "x");
        assert_eq!(opts.target.as_deref(), Some("st"));
        assert!(opts.no_cache);
        assert_eq!(opts.network.as_deref(), Some("none"));
        let e = act(Method::POST, "/build?version=2").unwrap_err();
        assert!(e.body().contains("DOCKER_BUILDKIT=0"), "{}", e.body());
        let e = act(Method::POST, "/build?buildargs=%7Bbad").unwrap_err();
        assert!(e.body().contains("invalid buildargs"), "{}", e.body());
    }

    #[test]
    fn version_prefix_is_stripped_and_checked() {
        let r = route(&Method::GET, "/v1.41/containers/json", Some("all=1")).unwrap();
        assert_eq!(r.version, ApiVersion::new(1, 41));
        assert!(matches!(
            r.action,
            Action::ContainerList(ListQuery { all: true, .. })
        ));
        let r = route(&Method::HEAD, "/_ping", None).unwrap();
        assert_eq!(r.version, ApiVersion::max());
        assert_eq!(r.action, Action::Ping { head: true });
        let e = route(&Method::GET, "/v1.99/version", None).unwrap_err();
        assert_eq!(e.status.as_u16(), 400);
        assert_eq!(
            e.message,
            "client version 1.99 is too new. Maximum supported API version is 1.43"
        );
        assert_eq!(
            route(&Method::GET, "/v1.12/version", None)
                .unwrap_err()
                .status
                .as_u16(),
            400
        );
    }

    #[test]
    fn unknown_paths_are_404() {
        for (m, p) in [
            (Method::GET, "/nope"),
            (Method::GET, "/containers/x/nope"),
            (Method::PUT, "/containers/json"),
            (Method::DELETE, "/containers"),
            (Method::POST, "/images/x/json"),
            (Method::GET, "/exec/x/start"),
        ] {
            let e = act(m, p).unwrap_err();
            assert_eq!(e.status.as_u16(), 404, "{p}");
            assert_eq!(e.message, "page not found");
        }
    }

    #[test]
    fn image_names_with_slashes_and_tags() {
        assert_eq!(
            act(
                Method::GET,
                "/v1.43/images/docker.io/library/busybox:latest/json"
            )
            .unwrap(),
            Action::ImageInspect {
                name: "docker.io/library/busybox:latest".into()
            }
        );
        assert_eq!(
            act(Method::GET, "/images/localhost:5000/a/b:1/history").unwrap(),
            Action::ImageHistory {
                name: "localhost:5000/a/b:1".into()
            }
        );
        assert_eq!(
            act(
                Method::POST,
                "/images/busybox/tag?repo=docker.io%2Flibrary%2Fx&tag=1"
            )
            .unwrap(),
            Action::ImageTag {
                name: "busybox".into(),
                repo: "docker.io/library/x".into(),
                tag: "1".into()
            }
        );
        assert_eq!(
            act(
                Method::DELETE,
                "/images/docker.io/library/busybox:latest?force=1"
            )
            .unwrap(),
            Action::ImageRemove {
                name: "docker.io/library/busybox:latest".into(),
                force: true
            }
        );
        assert_eq!(
            act(Method::DELETE, "/images/sha256:abcd").unwrap(),
            Action::ImageRemove {
                name: "sha256:abcd".into(),
                force: false
            }
        );
        assert_eq!(
            act(Method::GET, "/images/get?names=a&names=b%3A1").unwrap(),
            Action::ImageSave {
                names: vec!["a".into(), "b:1".into()]
            }
        );
        assert_eq!(
            act(Method::GET, "/images/a/b/get").unwrap(),
            Action::ImageSave {
                names: vec!["a/b".into()]
            }
        );
        // An image named like an operation still works.
        assert_eq!(
            act(Method::GET, "/images/json/json").unwrap(),
            Action::ImageInspect {
                name: "json".into()
            }
        );
        assert!(matches!(
            act(Method::GET, "/images/json").unwrap(),
            Action::ImageList { .. }
        ));
        assert_eq!(
            act(Method::GET, "/images/a%2Fb%3A1/json").unwrap(),
            Action::ImageInspect {
                name: "a/b:1".into()
            }
        );
    }

    #[test]
    fn container_actions_and_their_queries() {
        assert_eq!(
            act(Method::POST, "/containers/create?name=web").unwrap(),
            Action::ContainerCreate {
                name: Some("web".into())
            }
        );
        assert_eq!(
            act(Method::POST, "/containers/web/stop?t=3&signal=SIGINT").unwrap(),
            Action::ContainerStop {
                id: "web".into(),
                timeout: Some(3),
                signal: Some("SIGINT".into())
            }
        );
        assert_eq!(
            act(Method::DELETE, "/containers/web?force=1&v=True").unwrap(),
            Action::ContainerRemove {
                id: "web".into(),
                force: true,
                volumes: true
            }
        );
        assert_eq!(
            act(Method::POST, "/containers/web/wait?condition=next-exit").unwrap(),
            Action::ContainerWait {
                id: "web".into(),
                condition: WaitCondition::NextExit
            }
        );
        assert_eq!(
            act(Method::POST, "/containers/web/wait?condition=soon")
                .unwrap_err()
                .status
                .as_u16(),
            400
        );
        assert_eq!(
            act(
                Method::POST,
                "/containers/web/attach?stream=1&stdin=1&stdout=1&stderr=1"
            )
            .unwrap(),
            Action::ContainerAttach {
                id: "web".into(),
                opts: AttachOptions {
                    stdin: true,
                    stdout: true,
                    stderr: true,
                    logs: false,
                    stream: true
                }
            }
        );
        assert_eq!(
            act(
                Method::GET,
                "/containers/web/logs?follow=1&stdout=1&stderr=0&since=1700000000.5&tail=10&timestamps=true"
            )
            .unwrap(),
            Action::ContainerLogs {
                id: "web".into(),
                opts: LogsOptions {
                    follow: true,
                    stdout: true,
                    stderr: false,
                    since: 1_700_000_000_500_000_000,
                    until: 0,
                    timestamps: true,
                    tail: Some(10)
                }
            }
        );
        assert!(matches!(
            act(Method::GET, "/containers/web/logs?tail=all").unwrap(),
            Action::ContainerLogs {
                opts: LogsOptions { tail: None, .. },
                ..
            }
        ));
        assert_eq!(
            act(Method::POST, "/containers/web/resize?h=24&w=80").unwrap(),
            Action::ContainerResize {
                id: "web".into(),
                height: 24,
                width: 80
            }
        );
        assert_eq!(
            act(Method::GET, "/containers/web/stats?stream=0").unwrap(),
            Action::ContainerStats {
                id: "web".into(),
                stream: false,
                one_shot: false
            }
        );
        assert_eq!(
            act(Method::HEAD, "/containers/web/archive?path=%2Fetc%2Fhosts").unwrap(),
            Action::ArchiveStat {
                id: "web".into(),
                path: "/etc/hosts".into()
            }
        );
        assert_eq!(
            act(
                Method::PUT,
                "/containers/web/archive?path=/tmp&noOverwriteDirNonDir=true"
            )
            .unwrap(),
            Action::ArchivePut {
                id: "web".into(),
                path: "/tmp".into(),
                no_overwrite_dir_non_dir: true
            }
        );
        assert_eq!(
            act(Method::POST, "/containers/web/rename")
                .unwrap_err()
                .status
                .as_u16(),
            400
        );
        let Action::Commit { container, opts } = act(
            Method::POST,
            "/commit?container=web&repo=img&tag=2&changes=CMD+%5B%22sh%22%5D&changes=ENV+A%3D1&pause=0",
        )
        .unwrap() else {
            panic!("not a commit")
        };
        assert_eq!(container, "web");
        assert_eq!(opts.reference.as_deref(), Some("img:2"));
        assert_eq!(opts.changes, vec![r#"CMD ["sh"]"#, "ENV A=1"]);
        assert!(!opts.pause);
    }

    #[test]
    fn exec_images_volumes_networks() {
        assert_eq!(
            act(Method::POST, "/v1.43/containers/web/exec").unwrap(),
            Action::ExecCreate { id: "web".into() }
        );
        assert_eq!(
            act(Method::POST, "/exec/abc/start").unwrap(),
            Action::ExecStart { id: "abc".into() }
        );
        assert_eq!(
            act(Method::GET, "/exec/abc/json").unwrap(),
            Action::ExecInspect { id: "abc".into() }
        );
        assert_eq!(
            act(Method::POST, "/images/create?fromSrc=-&repo=x%3A1").unwrap(),
            Action::ImageImport {
                reference: Some("x:1".into()),
                changes: vec![]
            }
        );
        assert_eq!(
            act(Method::POST, "/images/create?fromImage=busybox&tag=latest").unwrap(),
            Action::ImagePull {
                image: "busybox".into(),
                tag: "latest".into()
            }
        );
        assert_eq!(
            act(
                Method::POST,
                "/berth/images/bootstrap?name=debian%3Abookworm"
            )
            .unwrap(),
            Action::ImageBootstrap {
                what: "debian:bookworm".into()
            }
        );
        assert_eq!(
            act(Method::GET, "/volumes/data").unwrap(),
            Action::VolumeInspect {
                name: "data".into()
            }
        );
        assert_eq!(
            act(Method::DELETE, "/volumes/data?force=1").unwrap(),
            Action::VolumeRemove {
                name: "data".into(),
                force: true
            }
        );
        assert!(matches!(
            act(Method::GET, "/networks").unwrap(),
            Action::NetworkList { .. }
        ));
        assert_eq!(
            act(Method::GET, "/networks/bridge").unwrap(),
            Action::NetworkInspect {
                id: "bridge".into(),
                scope: String::new(),
            }
        );
        assert_eq!(
            act(Method::GET, "/networks/app?scope=swarm").unwrap(),
            Action::NetworkInspect {
                id: "app".into(),
                scope: "swarm".into(),
            }
        );
        assert_eq!(
            act(Method::DELETE, "/v1.43/networks/front").unwrap(),
            Action::NetworkRemove { id: "front".into() }
        );
        assert_eq!(
            act(Method::POST, "/networks/front/connect").unwrap(),
            Action::NetworkConnect { id: "front".into() }
        );
        assert_eq!(
            act(Method::POST, "/networks/front/disconnect").unwrap(),
            Action::NetworkDisconnect { id: "front".into() }
        );
        assert_eq!(
            act(Method::POST, "/networks/create").unwrap(),
            Action::NetworkCreate
        );
        assert!(matches!(
            act(
                Method::POST,
                "/networks/prune?filters=%7B%22label%22%3A%7B%22a%22%3Atrue%7D%7D"
            )
            .unwrap(),
            Action::NetworksPrune { .. }
        ));
        assert_eq!(
            act(Method::POST, "/networks/front/nope")
                .unwrap_err()
                .status
                .as_u16(),
            404
        );
        assert!(matches!(
            act(Method::GET, "/events?since=1700000000&until=1700000001&filters=%7B%22type%22%3A%7B%22container%22%3Atrue%7D%7D")
                .unwrap(),
            Action::Events(EventsQuery { since: Some(_), until: Some(_), .. })
        ));
        assert_eq!(
            act(Method::GET, "/containers/json?filters=%7Bbad")
                .unwrap_err()
                .status
                .as_u16(),
            400
        );
    }
}
