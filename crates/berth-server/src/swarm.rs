//! The Swarm-mode API (`/swarm`, `/nodes`, `/services`, `/tasks`): routes and handlers over
//! [`berth_cluster::Cluster`]. Conversions live in [`crate::convert::swarm`].

use std::sync::Arc;

use berth_api::types::swarm as w;
use berth_api::Filters;
use berth_cluster::model::{Role, TaskState};
use berth_cluster::proto::{ForwardRequest, ForwardResponse};
use berth_cluster::{Cluster, Error as ClusterError};
use bytes::Bytes;
use http::{Method, Response, StatusCode};
use http_body_util::BodyExt;

use crate::body::{self, Body};
use crate::convert::create::parse_body;
use crate::convert::swarm as conv;
use crate::error::ApiError;
use crate::handlers::json;
use crate::query::Query;

/// `GET /services/{id}/logs`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogsQuery {
    pub follow: bool,
    pub stdout: bool,
    pub stderr: bool,
    pub timestamps: bool,
    pub details: bool,
    pub tail: Option<usize>,
    /// Unix nanoseconds; 0: from the start.
    pub since: i64,
}

/// A Swarm-mode request.
#[derive(Debug, Clone, PartialEq)]
pub enum SwarmAction {
    Inspect,
    Init,
    Join,
    Leave {
        force: bool,
    },
    Update {
        rotate_worker: bool,
        rotate_manager: bool,
    },
    UnlockKey,
    NodeList {
        filters: Filters,
    },
    NodeInspect {
        id: String,
    },
    NodeUpdate {
        id: String,
        version: u64,
    },
    NodeRemove {
        id: String,
        force: bool,
    },
    ServiceList {
        filters: Filters,
        status: bool,
    },
    ServiceCreate,
    ServiceInspect {
        id: String,
    },
    ServiceUpdate {
        id: String,
        version: u64,
        rollback: bool,
    },
    ServiceRemove {
        id: String,
    },
    ServiceLogs {
        id: String,
        opts: LogsQuery,
    },
    TaskList {
        filters: Filters,
    },
    TaskInspect {
        id: String,
    },
}

fn version_param(q: &Query) -> Result<u64, ApiError> {
    let v = q.get("version").unwrap_or("");
    v.parse().map_err(|_| {
        ApiError::bad_request(format!(
            "invalid or missing version parameter {v:?}: the object's Version.Index is required"
        ))
    })
}

/// Routes `/swarm...`, `/nodes...`, `/services...`, `/tasks...`; `None` for other paths.
pub fn route(method: &Method, path: &str, q: &Query) -> Option<Result<SwarmAction, ApiError>> {
    let get = method == Method::GET;
    let post = method == Method::POST;
    let delete = method == Method::DELETE;
    let seg: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let r = (|| -> Result<Option<SwarmAction>, ApiError> {
        Ok(Some(match seg.as_slice() {
            ["swarm"] if get => SwarmAction::Inspect,
            ["swarm", "init"] if post => SwarmAction::Init,
            ["swarm", "join"] if post => SwarmAction::Join,
            ["swarm", "leave"] if post => SwarmAction::Leave {
                force: q.bool("force"),
            },
            ["swarm", "update"] if post => SwarmAction::Update {
                rotate_worker: q.bool("rotateWorkerToken"),
                rotate_manager: q.bool("rotateManagerToken"),
            },
            ["swarm", "unlockkey"] if get => SwarmAction::UnlockKey,
            ["nodes"] if get => SwarmAction::NodeList {
                filters: q.filters()?,
            },
            ["nodes", id] if get => SwarmAction::NodeInspect { id: id.to_string() },
            ["nodes", id, "update"] if post => SwarmAction::NodeUpdate {
                id: id.to_string(),
                version: version_param(q)?,
            },
            ["nodes", id] if delete => SwarmAction::NodeRemove {
                id: id.to_string(),
                force: q.bool("force"),
            },
            ["services"] if get => SwarmAction::ServiceList {
                filters: q.filters()?,
                status: q.bool("status"),
            },
            ["services", "create"] if post => SwarmAction::ServiceCreate,
            ["services", id] if get => SwarmAction::ServiceInspect { id: id.to_string() },
            ["services", id, "update"] if post => SwarmAction::ServiceUpdate {
                id: id.to_string(),
                version: version_param(q)?,
                rollback: q.get("rollback") == Some("previous"),
            },
            ["services", id] if delete => SwarmAction::ServiceRemove { id: id.to_string() },
            ["services", id, "logs"] if get => SwarmAction::ServiceLogs {
                id: id.to_string(),
                opts: LogsQuery {
                    follow: q.bool("follow"),
                    stdout: q.bool("stdout"),
                    stderr: q.bool("stderr"),
                    timestamps: q.bool("timestamps"),
                    details: q.bool("details"),
                    tail: match q.get("tail").unwrap_or("all") {
                        "all" | "" => None,
                        n => Some(n.parse().map_err(|_| {
                            ApiError::bad_request(format!("invalid tail {n:?}: a number or all"))
                        })?),
                    },
                    since: crate::time::parse_timestamp("since", q.get("since").unwrap_or(""))?
                        .unwrap_or(0),
                },
            },
            ["tasks"] if get => SwarmAction::TaskList {
                filters: q.filters()?,
            },
            ["tasks", id] if get => SwarmAction::TaskInspect { id: id.to_string() },
            _ => return Ok(None),
        }))
    })();
    match r {
        Ok(Some(a)) => Some(Ok(a)),
        Ok(None) => None,
        Err(e) => Some(Err(e)),
    }
}

pub(crate) fn err(e: ClusterError) -> ApiError {
    let status = match &e {
        ClusterError::Unavailable(_)
        | ClusterError::NotLeader(_)
        | ClusterError::Unreachable(_) => StatusCode::SERVICE_UNAVAILABLE,
        ClusterError::NotFound(_) => StatusCode::NOT_FOUND,
        ClusterError::Conflict(_) => StatusCode::CONFLICT,
        ClusterError::InvalidArgument(_) | ClusterError::Refused(_) => StatusCode::BAD_REQUEST,
        ClusterError::Engine(e) => ApiError::status_of(e.kind()),
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    ApiError::new(status, e.to_string())
}

/// Reads of the master's state, on a blocking thread (a commit to etcd may hold its lock).
async fn snapshot<T: Send + 'static>(
    m: Arc<berth_cluster::Master>,
    f: impl FnOnce(&berth_cluster::Master) -> T + Send + 'static,
) -> Result<T, ApiError> {
    blocking(move || Ok(f(&m))).await
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> berth_cluster::Result<T> + Send + 'static,
) -> Result<T, ApiError> {
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r.map_err(err),
        Err(e) => Err(ApiError::internal(format!("cluster call failed: {e}"))),
    }
}

fn read<T: serde::de::DeserializeOwned + Default>(
    bytes: &Bytes,
    what: &str,
) -> Result<T, ApiError> {
    parse_body(what, bytes)
}

/// Whether a manager that does not lead hands `a` to the leader: everything but this node's
/// own membership (init, join, leave).
fn leader_only(a: &SwarmAction) -> bool {
    !matches!(
        a,
        SwarmAction::Init | SwarmAction::Join | SwarmAction::Leave { .. }
    )
}

/// Hands a request to the leader (this manager does not lead) and answers with its answer.
pub(crate) async fn forward(
    cluster: &Cluster,
    method: &Method,
    uri: &str,
    body: Bytes,
) -> Result<Response<Body>, ApiError> {
    let r = cluster
        .forward(ForwardRequest {
            method: method.to_string(),
            uri: uri.to_string(),
            body: body.to_vec(),
        })
        .await
        .map_err(err)?;
    let mut resp = Response::new(body::full(r.body));
    *resp.status_mut() =
        StatusCode::from_u16(r.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if let Ok(v) = http::HeaderValue::from_str(&r.content_type) {
        if !r.content_type.is_empty() {
            resp.headers_mut().insert(http::header::CONTENT_TYPE, v);
        }
    }
    Ok(resp)
}

/// How long the leader waits for a forwarded answer's body.
const FORWARD_BODY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// Runs a request another manager forwarded (this node leads): the Swarm API, and the
/// swarm's overlay networks.
pub async fn run_forwarded(
    cluster: Arc<Cluster>,
    req: ForwardRequest,
    caller: String,
) -> ForwardResponse {
    let answer = |r: Result<Response<Body>, ApiError>| async move {
        let resp = match r {
            Ok(r) => r,
            Err(e) => crate::handlers::error_response(&e),
        };
        let status = resp.status().as_u16();
        let content_type = resp
            .headers()
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let collected =
            tokio::time::timeout(FORWARD_BODY_TIMEOUT, resp.into_body().collect()).await;
        match collected {
            Ok(Ok(b)) => ForwardResponse {
                status,
                content_type,
                body: b.to_bytes().to_vec(),
            },
            _ => ForwardResponse {
                status: 500,
                content_type: "application/json".into(),
                body: br#"{"message":"the leader's answer did not complete"}"#.to_vec(),
            },
        }
    };
    let method = match Method::from_bytes(req.method.as_bytes()) {
        Ok(m) => m,
        Err(_) => {
            return answer(Err(ApiError::bad_request(format!(
                "forwarded request: bad method {:?}",
                req.method
            ))))
            .await
        }
    };
    let (path, query) = match req.uri.split_once('?') {
        Some((p, q)) => (p.to_string(), Some(q.to_string())),
        None => (req.uri.clone(), None),
    };
    let routed = match crate::route::route(&method, &path, query.as_deref()) {
        Ok(r) => r,
        Err(e) => return answer(Err(e)).await,
    };
    let body = Bytes::from(req.body);
    let r = match routed.action {
        crate::route::Action::Swarm(SwarmAction::ServiceLogs { opts, .. }) if opts.follow => {
            Err(ApiError::bad_request(
                "following a service's logs works on the leading manager only: run it there, or without -f",
            ))
        }
        crate::route::Action::Swarm(a) if leader_only(&a) => {
            handle_local(&cluster, a, body, &caller).await
        }
        crate::route::Action::NetworkCreate => {
            crate::handlers::overlay_create(&cluster, &body).await
        }
        crate::route::Action::NetworkRemove { id } => {
            crate::handlers::overlay_remove(&cluster, &id).await
        }
        crate::route::Action::NetworkInspect { id, .. } => {
            crate::handlers::overlay_inspect(&cluster, &id)
        }
        _ => Err(ApiError::bad_request(format!(
            "forwarded request: {method} {path} is not a call managers forward"
        ))),
    };
    answer(r).await
}

fn no_cluster() -> ApiError {
    ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "This node is not a swarm manager. Use \"docker swarm init\" or \"docker swarm join\" to connect this node to swarm and try again.")
}

pub async fn handle(
    cluster: Option<&Arc<Cluster>>,
    action: SwarmAction,
    method: &Method,
    uri: &str,
    body: Bytes,
) -> Result<Response<Body>, ApiError> {
    let cluster = cluster.ok_or_else(no_cluster)?;
    if leader_only(&action) && cluster.is_follower() {
        if let SwarmAction::ServiceLogs { opts, .. } = &action {
            if opts.follow {
                return Err(ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "following a service's logs works on the leading manager only: run it there, or without -f",
                ));
            }
        }
        return forward(cluster, method, uri, body).await;
    }
    let me = cluster.status().node_id;
    handle_local(cluster, action, body, &me).await
}

/// Runs a Swarm API call on this node; `me` is the node `self` names (the node that was
/// asked: this one, or a manager that forwarded the call).
async fn handle_local(
    cluster: &Arc<Cluster>,
    action: SwarmAction,
    req: Bytes,
    me: &str,
) -> Result<Response<Body>, ApiError> {
    Ok(match action {
        SwarmAction::Init => {
            let b: w::InitRequest = read(&req, "swarm init")?;
            let id = cluster
                .init(berth_cluster::InitRequest {
                    listen_addr: b.listen_addr,
                    advertise_addr: b.advertise_addr,
                })
                .await
                .map_err(err)?;
            json(StatusCode::OK, &id)
        }
        SwarmAction::Join => {
            let b: w::JoinRequest = read(&req, "swarm join")?;
            cluster
                .join(berth_cluster::JoinRequest {
                    remote_addrs: b.remote_addrs,
                    token: b.join_token,
                    listen_addr: b.listen_addr,
                    advertise_addr: b.advertise_addr,
                })
                .await
                .map_err(err)?;
            empty(StatusCode::OK)
        }
        SwarmAction::Leave { force } => {
            cluster.leave(force).await.map_err(err)?;
            empty(StatusCode::OK)
        }
        SwarmAction::Inspect => {
            let m = cluster.master().map_err(err)?;
            json(StatusCode::OK, &conv::swarm(&m.swarm()))
        }
        SwarmAction::Update {
            rotate_worker,
            rotate_manager,
        } => {
            let m = cluster.master().map_err(err)?;
            if rotate_worker {
                let m = m.clone();
                blocking(move || m.rotate_token(Role::Worker)).await?;
            }
            if rotate_manager {
                blocking(move || m.rotate_token(Role::Manager)).await?;
            }
            empty(StatusCode::OK)
        }
        SwarmAction::UnlockKey => {
            cluster.master().map_err(err)?;
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "no unlock key is set: this swarm does not lock its managers",
            ));
        }
        SwarmAction::NodeList { filters } => {
            let m = cluster.master().map_err(err)?;
            filters
                .validate(&["id", "label", "name", "node.label", "membership", "role"])
                .map_err(|e| ApiError::bad_request(e.to_string()))?;
            let all = snapshot(m, |m| m.nodes()).await?;
            let nodes: Vec<w::Node> = all
                .iter()
                .filter(|n| {
                    filters.include_any("id", [n.id.as_str()])
                        && (filters.get("name").is_empty()
                            || filters
                                .get("name")
                                .iter()
                                .any(|x| n.description.hostname.contains(x.as_str())))
                        && filters.include(
                            "role",
                            if n.spec.role == Role::Manager {
                                "manager"
                            } else {
                                "worker"
                            },
                        )
                        && filters.include("membership", "accepted")
                        && node_labels_match(&filters, &n.spec.labels)
                })
                .map(conv::node)
                .collect();
            json(StatusCode::OK, &nodes)
        }
        SwarmAction::NodeInspect { id } => {
            let m = cluster.master().map_err(err)?;
            let id = if id == "self" { me.to_string() } else { id };
            json(
                StatusCode::OK,
                &conv::node(&blocking(move || m.node(&id)).await?),
            )
        }
        SwarmAction::NodeUpdate { id, version } => {
            let m = cluster.master().map_err(err)?;
            let b: w::NodeSpec = read(&req, "node update")?;
            let spec = conv::node_spec(&b)?;
            blocking(move || m.update_node(&id, version, spec)).await?;
            empty(StatusCode::OK)
        }
        SwarmAction::NodeRemove { id, force } => {
            let m = cluster.master().map_err(err)?;
            blocking(move || m.remove_node(&id, force)).await?;
            empty(StatusCode::OK)
        }
        SwarmAction::ServiceList { filters, status } => {
            let m = cluster.master().map_err(err)?;
            filters
                .validate(&["id", "label", "mode", "name"])
                .map_err(|e| ApiError::bad_request(e.to_string()))?;
            let (tasks, services) = snapshot(m, |m| (m.tasks(), m.services())).await?;
            let list: Vec<w::Service> = services
                .iter()
                .filter(|s| {
                    filters.include_any("id", [s.id.as_str()])
                        && (filters.get("name").is_empty()
                            || filters
                                .get("name")
                                .iter()
                                .any(|x| s.spec.name.starts_with(x.as_str())))
                        && filters.include(
                            "mode",
                            if s.spec.replicas().is_some() {
                                "replicated"
                            } else {
                                "global"
                            },
                        )
                        && filters.matches_label(&s.spec.labels)
                })
                .map(|s| {
                    let mine: Vec<&berth_cluster::model::Task> =
                        tasks.iter().filter(|t| t.service_id == s.id).collect();
                    conv::service(s, status.then_some(mine.as_slice()))
                })
                .collect();
            json(StatusCode::OK, &list)
        }
        SwarmAction::ServiceCreate => {
            let m = cluster.master().map_err(err)?;
            let b: w::ServiceSpec = read(&req, "service create")?;
            let spec = conv::service_spec(&b)?;
            image_known(cluster, &spec.task.image).await?;
            let id = blocking(move || m.create_service(spec)).await?;
            json(
                StatusCode::CREATED,
                &w::ServiceCreateResponse { id, warnings: None },
            )
        }
        SwarmAction::ServiceInspect { id } => {
            let m = cluster.master().map_err(err)?;
            json(
                StatusCode::OK,
                &conv::service(&blocking(move || m.service(&id)).await?, None),
            )
        }
        SwarmAction::ServiceUpdate {
            id,
            version,
            rollback,
        } => {
            let m = cluster.master().map_err(err)?;
            let b: w::ServiceSpec = read(&req, "service update")?;
            let spec = if rollback {
                None
            } else {
                Some(conv::service_spec(&b)?)
            };
            if let Some(s) = &spec {
                image_known(cluster, &s.task.image).await?;
            }
            blocking(move || m.update_service(&id, version, spec, rollback)).await?;
            json(
                StatusCode::OK,
                &w::ServiceCreateResponse {
                    id: String::new(),
                    warnings: None,
                },
            )
        }
        SwarmAction::ServiceRemove { id } => {
            let m = cluster.master().map_err(err)?;
            blocking(move || m.remove_service(&id)).await?;
            empty(StatusCode::OK)
        }
        SwarmAction::ServiceLogs { id, opts } => {
            if !opts.stdout && !opts.stderr {
                return Err(ApiError::bad_request(
                    "you must choose at least one stream: stdout or stderr",
                ));
            }
            let (m, i) = (cluster.master().map_err(err)?, id.clone());
            blocking(move || m.service(&i)).await?;
            let first = cluster
                .service_logs(&id, opts.since, opts.tail, opts.stdout, opts.stderr)
                .await
                .map_err(err)?;
            let (tx, body) = body::channel(16);
            let cluster = Arc::clone(cluster);
            tokio::spawn(async move {
                let mut last = first.last().map(|(_, l)| l.ts).unwrap_or(0);
                if tx.send(Ok(frames(&first, &opts))).await.is_err() || !opts.follow {
                    return;
                }
                loop {
                    tokio::select! {
                        _ = tokio::time::sleep(std::time::Duration::from_millis(500)) => {}
                        _ = tx.closed() => return,
                    }
                    let since = if last > 0 { last + 1 } else { opts.since };
                    let Ok(more) = cluster
                        .service_logs(&id, since, None, opts.stdout, opts.stderr)
                        .await
                    else {
                        return;
                    };
                    let more: Vec<_> = more.into_iter().filter(|(_, l)| l.ts > last).collect();
                    if let Some((_, l)) = more.last() {
                        last = l.ts;
                        if tx.send(Ok(frames(&more, &opts))).await.is_err() {
                            return;
                        }
                    }
                }
            });
            let mut r = Response::new(body);
            *r.status_mut() = StatusCode::OK;
            r
        }
        SwarmAction::TaskList { filters } => {
            let m = cluster.master().map_err(err)?;
            filters
                .validate(&[
                    "id",
                    "name",
                    "service",
                    "node",
                    "label",
                    "desired-state",
                    "_up-to-date",
                ])
                .map_err(|e| ApiError::bad_request(e.to_string()))?;
            let (services, nodes, tasks) =
                snapshot(m, |m| (m.services(), m.nodes(), m.tasks())).await?;
            let up_to_date = filters.contains("_up-to-date");
            let list: Vec<w::Task> = tasks
                .iter()
                .filter(|t| {
                    let svc = services.iter().find(|s| s.id == t.service_id);
                    let node_ok = filters.get("node").is_empty()
                        || filters.get("node").iter().any(|f| {
                            let f = if f == "self" { me } else { f.as_str() };
                            t.node_id == f
                                || nodes.iter().any(|n| {
                                    n.id == t.node_id
                                        && (n.description.hostname == f || n.id.starts_with(f))
                                })
                        });
                    let service_ok = filters.get("service").is_empty()
                        || filters.get("service").iter().any(|f| {
                            t.service_id == *f
                                || t.service_name == *f
                                || t.service_id.starts_with(f.as_str())
                        });
                    let desired_ok = filters.get("desired-state").is_empty()
                        || filters
                            .get("desired-state")
                            .iter()
                            .any(|d| match d.as_str() {
                                "running" => t.desired_state == TaskState::Running,
                                "shutdown" => t.desired_state == TaskState::Shutdown,
                                "accepted" => t.desired_state == TaskState::Accepted,
                                _ => false,
                            });
                    let name_ok = filters.get("name").is_empty()
                        || filters.get("name").iter().any(|f| {
                            t.container_name().starts_with(f.as_str())
                                || format!("{}.{}", t.service_name, t.slot).starts_with(f.as_str())
                        });
                    let current_ok =
                        !up_to_date || svc.is_some_and(|s| s.task_version == t.task_version);
                    filters.include_any("id", [t.id.as_str()])
                        && node_ok
                        && service_ok
                        && desired_ok
                        && name_ok
                        && current_ok
                })
                .map(conv::task)
                .collect();
            json(StatusCode::OK, &list)
        }
        SwarmAction::TaskInspect { id } => {
            let m = cluster.master().map_err(err)?;
            json(
                StatusCode::OK,
                &conv::task(&blocking(move || m.task(&id)).await?),
            )
        }
    })
}

/// A service's image must be in the manager's store: Berth has no registry to pull from.
async fn image_known(cluster: &Cluster, image: &str) -> Result<(), ApiError> {
    let engine = cluster.engine().clone();
    let name = image.to_string();
    let found = tokio::task::spawn_blocking(move || engine.image_inspect(&name)).await;
    if matches!(found, Ok(Ok(_))) {
        return Ok(());
    }
    Err(ApiError::bad_request(format!(
        "No such image: {image} (Berth has no registry: load or import it on the nodes, the manager included)"
    )))
}

fn node_labels_match(f: &Filters, labels: &std::collections::BTreeMap<String, String>) -> bool {
    f.get("node.label")
        .iter()
        .all(|want| match want.split_once('=') {
            Some((k, v)) => labels.get(k).is_some_and(|x| x == v),
            None => labels.contains_key(want.as_str()),
        })
}

fn empty(status: StatusCode) -> Response<Body> {
    let mut r = Response::new(body::empty());
    *r.status_mut() = status;
    r
}

/// Docker's multiplexed frames, one per line: `[TIMESTAMP ]DETAILS MESSAGE`.
fn frames(
    lines: &[(berth_cluster::model::Task, berth_cluster::agent::LogLine)],
    o: &LogsQuery,
) -> bytes::Bytes {
    let mut out = Vec::new();
    for (t, l) in lines {
        let mut payload = String::new();
        if o.timestamps {
            payload.push_str(&crate::time::format_rfc3339_nanos(l.ts));
            payload.push(' ');
        }
        if o.details {
            payload.push_str(&format!(
                "com.docker.swarm.node.id={},com.docker.swarm.service.id={},com.docker.swarm.task.id={} ",
                t.node_id, t.service_id, t.id
            ));
        }
        payload.push_str(&l.text);
        out.push(l.stream);
        out.extend([0, 0, 0]);
        out.extend((payload.len() as u32).to_be_bytes());
        out.extend(payload.as_bytes());
    }
    bytes::Bytes::from(out)
}
