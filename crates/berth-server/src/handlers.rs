//! Running a routed [`Action`] against the engine: each engine call on a blocking thread,
//! bodies read and written through channels, hijacked streams spliced, and the result mapped
//! to Docker's JSON.

use std::collections::BTreeMap;
use std::io::{self, Read};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use berth_api::types::{
    ContainerChange, ContainerCreateResponse, ContainerTopResponse, ContainerWaitResponse,
    ContainersPruneResponse, ExecCreateRequest, ExecStartRequest, IdResponse,
    ImageDeleteResponseItem, ImagesPruneResponse, JsonMessage, NetworkConnectRequest,
    NetworkCreateRequest, NetworkCreateResponse, NetworkDisconnectRequest, NetworksPruneResponse,
    SystemDfResponse, VolumeCreateRequest, VolumeListResponse, VolumeUsageData,
    VolumesPruneResponse, WaitExitError,
};
use berth_api::version::{ApiVersion, MAX_API};
use berth_engine::{ChangeKind, Engine, PathStat};
use bytes::Bytes;
use http::{header, HeaderValue, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use serde::Serialize;
use tokio::io::AsyncReadExt;
use tokio::sync::mpsc;

use crate::body::{self, Body, ChannelBody, ChannelWriter};
use crate::convert::{container, create, image, network, system};
use crate::error::ApiError;
use crate::filter;
use crate::hijack;
use crate::route::{self, Action, EventsQuery};
use crate::time::now_nanos;

/// The largest JSON body accepted (a create body can inline a seccomp profile).
const JSON_LIMIT: usize = 16 << 20;

type Result<T, E = ApiError> = std::result::Result<T, E>;

/// Runs `f` on a blocking thread with the engine.
async fn blocking<T, F>(engine: &Arc<Engine>, f: F) -> Result<T>
where
    T: Send + 'static,
    F: FnOnce(&Engine) -> berth_engine::Result<T> + Send + 'static,
{
    let engine = Arc::clone(engine);
    match tokio::task::spawn_blocking(move || f(&engine)).await {
        Ok(r) => r.map_err(ApiError::from),
        Err(e) => Err(ApiError::internal(format!("engine call failed: {e}"))),
    }
}

/// A JSON response.
pub fn json<T: Serialize>(status: StatusCode, value: &T) -> Response<Body> {
    match serde_json::to_vec(value) {
        Ok(mut bytes) => {
            bytes.push(b'\n');
            with_type(status, "application/json", body::full(bytes))
        }
        Err(e) => error_response(&ApiError::internal(format!("encoding the response: {e}"))),
    }
}

fn with_type(status: StatusCode, content_type: &'static str, body: Body) -> Response<Body> {
    let mut resp = Response::new(body);
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}

fn no_content() -> Response<Body> {
    let mut resp = Response::new(body::empty());
    *resp.status_mut() = StatusCode::NO_CONTENT;
    resp
}

fn status_only(status: StatusCode) -> Response<Body> {
    let mut resp = Response::new(body::empty());
    *resp.status_mut() = status;
    resp
}

/// `{"message": ...}` with the error's status (304 has no body).
pub fn error_response(e: &ApiError) -> Response<Body> {
    if e.status == StatusCode::NOT_MODIFIED {
        return status_only(StatusCode::NOT_MODIFIED);
    }
    with_type(e.status, "application/json", body::full(e.body() + "\n"))
}

fn json_line<T: Serialize>(value: &T) -> Bytes {
    let mut v = serde_json::to_vec(value).unwrap_or_default();
    v.push(b'\n');
    Bytes::from(v)
}

fn message_stream(text: String) -> JsonMessage {
    JsonMessage {
        stream: Some(text),
        ..JsonMessage::default()
    }
}

fn message_error(text: String) -> JsonMessage {
    JsonMessage {
        error: Some(text.clone()),
        error_detail: Some(berth_api::types::ErrorDetail {
            code: None,
            message: text,
        }),
        ..JsonMessage::default()
    }
}

/// Streams what a blocking producer writes as the body. An error before anything was
/// written becomes an error response; after, it aborts the body.
async fn stream_writer<F>(
    content_type: &'static str,
    engine: &Arc<Engine>,
    f: F,
) -> Result<Response<Body>>
where
    F: FnOnce(&Engine, &mut ChannelWriter) -> berth_engine::Result<()> + Send + 'static,
{
    let (tx, mut rx) = mpsc::channel::<io::Result<Bytes>>(16);
    let engine = Arc::clone(engine);
    let handle = tokio::task::spawn_blocking(move || {
        let mut w = ChannelWriter::new(tx);
        let r = f(&engine, &mut w);
        if let Err(e) = &r {
            if w.written() {
                w.fail(e.to_string());
            }
        }
        r
    });
    match rx.recv().await {
        Some(Ok(first)) => Ok(with_type(
            StatusCode::OK,
            content_type,
            ChannelBody::boxed(Some(first), rx),
        )),
        Some(Err(e)) => Err(ApiError::internal(e.to_string())),
        None => match handle.await {
            Ok(Ok(())) => Ok(with_type(StatusCode::OK, content_type, body::empty())),
            Ok(Err(e)) => Err(e.into()),
            Err(e) => Err(ApiError::internal(format!("engine call failed: {e}"))),
        },
    }
}

/// Copies a blocking reader into `w`.
fn copy_to(r: &mut dyn Read, w: &mut ChannelWriter, what: &str) -> berth_engine::Result<()> {
    io::copy(r, w)
        .map(|_| ())
        .map_err(|e| berth_engine::Error::Internal(format!("streaming {what}: {e}")))
}

/// The engine's stream as a response body.
fn pump_stream(conn: std::os::unix::net::UnixStream) -> Result<Body> {
    let mut conn =
        hijack::to_tokio(conn).map_err(|e| ApiError::internal(format!("engine stream: {e}")))?;
    let (tx, body) = body::channel(16);
    tokio::spawn(async move {
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            let read = tokio::select! {
                r = conn.read(&mut buf) => r,
                // The client went away while the container was quiet (`logs -f`).
                _ = tx.closed() => break,
            };
            match read {
                Ok(0) => break,
                Ok(n) => {
                    if tx
                        .send(Ok(Bytes::copy_from_slice(&buf[..n])))
                        .await
                        .is_err()
                    {
                        break;
                    }
                }
                Err(e) => {
                    let _ = tx.send(Err(e)).await;
                    break;
                }
            }
        }
    });
    Ok(body)
}

/// Attach and exec start: hijack when asked, else stream the output as the body.
fn hijacked(
    stream: berth_engine::Stream,
    on_upgrade: Option<hyper::upgrade::OnUpgrade>,
    version: ApiVersion,
) -> Result<Response<Body>> {
    let tty = stream.tty;
    match on_upgrade {
        Some(on_upgrade) => {
            let engine = hijack::to_tokio(stream.conn)
                .map_err(|e| ApiError::internal(format!("engine stream: {e}")))?;
            tokio::spawn(async move {
                match on_upgrade.await {
                    Ok(upgraded) => {
                        if let Err(e) = hijack::splice(TokioIo::new(upgraded), engine).await {
                            tracing::debug!("hijacked stream ended: {e}");
                        }
                    }
                    Err(e) => tracing::warn!("upgrading the connection: {e}"),
                }
            });
            Ok(hijack::upgrade_response(tty, version))
        }
        None => Ok(with_type(
            StatusCode::OK,
            hijack::content_type(tty, version),
            pump_stream(stream.conn)?,
        )),
    }
}

fn path_stat_header(stat: &PathStat) -> Result<HeaderValue> {
    let json = serde_json::json!({
        "name": stat.name,
        "size": stat.size,
        "mode": stat.mode,
        "mtime": stat.mtime,
        "linkTarget": stat.link_target,
    });
    let b64 = base64::engine::general_purpose::STANDARD.encode(json.to_string());
    HeaderValue::from_str(&b64).map_err(|e| ApiError::internal(format!("path stat header: {e}")))
}

const STAT_HEADER: &str = "X-Docker-Container-Path-Stat";

fn kernel_version() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// The `Swarm` header of `/_ping`: `inactive`, `active/manager` or `active/worker`.
fn swarm_header(cluster: Option<&Arc<berth_cluster::Cluster>>) -> &'static str {
    match cluster.map(|c| c.status()) {
        Some(s) if s.state == berth_cluster::LocalState::Active && s.manager => "active/manager",
        Some(s) if s.state == berth_cluster::LocalState::Active => "active/worker",
        _ => "inactive",
    }
}

fn ping(head: bool, swarm: &'static str) -> Response<Body> {
    let mut resp = if head {
        let mut r = Response::new(body::empty());
        r.headers_mut()
            .insert(header::CONTENT_LENGTH, HeaderValue::from_static("0"));
        r
    } else {
        with_type(
            StatusCode::OK,
            "text/plain; charset=utf-8",
            body::full("OK"),
        )
    };
    let h = resp.headers_mut();
    h.insert("Builder-Version", HeaderValue::from_static("1"));
    h.insert("Swarm", HeaderValue::from_static(swarm));
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache, no-store, must-revalidate"),
    );
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    resp
}

/// Adds the headers dockerd sends on every response.
pub fn common_headers(resp: &mut Response<Body>) {
    let h = resp.headers_mut();
    h.insert("Api-Version", HeaderValue::from_static(MAX_API));
    h.insert("Docker-Experimental", HeaderValue::from_static("false"));
    h.insert("Ostype", HeaderValue::from_static("linux"));
    if let Ok(v) = HeaderValue::from_str(&format!("Berth/{} (linux)", env!("CARGO_PKG_VERSION"))) {
        h.insert(header::SERVER, v);
    }
}

/// Handles one request.
pub async fn handle(
    engine: Arc<Engine>,
    cluster: Option<Arc<berth_cluster::Cluster>>,
    req: Request<Incoming>,
) -> Response<Body> {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let routed = route::route(&method, &path, req.uri().query());
    let mut resp = match routed {
        Err(e) => error_response(&e),
        Ok(r) => match dispatch(&engine, cluster.as_ref(), r.version, r.action, req).await {
            Ok(resp) => resp,
            Err(e) => {
                if e.status.is_server_error() && e.status != StatusCode::SERVICE_UNAVAILABLE {
                    tracing::warn!("{method} {path}: {}", e.message);
                } else {
                    tracing::debug!("{method} {path}: {} {}", e.status, e.message);
                }
                error_response(&e)
            }
        },
    };
    common_headers(&mut resp);
    resp
}

async fn dispatch(
    engine: &Arc<Engine>,
    cluster: Option<&Arc<berth_cluster::Cluster>>,
    version: ApiVersion,
    action: Action,
    mut req: Request<Incoming>,
) -> Result<Response<Body>> {
    Ok(match action {
        // ---- system ----------------------------------------------------------------------
        Action::Ping { head } => ping(head, swarm_header(cluster)),
        Action::Swarm(a) => {
            let method = req.method().clone();
            let uri = req.uri().to_string();
            let bytes = body::collect(req.into_body(), JSON_LIMIT).await?;
            crate::swarm::handle(cluster, a, &method, &uri, bytes).await?
        }
        Action::Version => json(StatusCode::OK, &system::version(&kernel_version())),
        Action::Info => {
            let info = blocking(engine, |e| e.info()).await?;
            let mut out = system::info(&info, now_nanos());
            if let Some(c) = cluster {
                out.swarm = crate::convert::swarm::swarm_info(&c.status());
            }
            json(StatusCode::OK, &out)
        }
        Action::Events(q) => events(engine, q).await?,
        Action::SystemDf => system_df(engine).await?,
        Action::ContainersPrune { .. } => {
            let p = blocking(engine, |e| e.prune_containers()).await?;
            json(
                StatusCode::OK,
                &ContainersPruneResponse {
                    containers_deleted: Some(p.deleted),
                    space_reclaimed: p.space_reclaimed,
                },
            )
        }
        Action::ImagesPrune { filters } => {
            let all = filters.get_bool("dangling")? == Some(false);
            let p = blocking(engine, move |e| e.image_prune(all)).await?;
            let items = p
                .deleted
                .into_iter()
                .map(|d| {
                    if d.starts_with("sha256:") {
                        ImageDeleteResponseItem {
                            untagged: None,
                            deleted: Some(d),
                        }
                    } else {
                        ImageDeleteResponseItem {
                            untagged: Some(d),
                            deleted: None,
                        }
                    }
                })
                .collect();
            json(
                StatusCode::OK,
                &ImagesPruneResponse {
                    images_deleted: Some(items),
                    space_reclaimed: p.space_reclaimed,
                },
            )
        }
        Action::VolumesPrune { filters } => {
            let all = filters.get_bool("all")? == Some(true);
            let p = blocking(engine, move |e| e.volume_prune(all)).await?;
            json(
                StatusCode::OK,
                &VolumesPruneResponse {
                    volumes_deleted: Some(p.deleted),
                    space_reclaimed: p.space_reclaimed,
                },
            )
        }
        Action::NetworksPrune { filters } => {
            let list = blocking(engine, |e| e.networks()).await?;
            let mut doomed = Vec::new();
            for n in &list {
                if filter::network_prunable(&filters, n)? {
                    doomed.push(n.name.clone());
                }
            }
            let deleted = blocking(engine, move |e| {
                // A network a container joined since the listing stays.
                Ok(doomed
                    .into_iter()
                    .filter(|n| e.network_remove(n).is_ok())
                    .collect::<Vec<_>>())
            })
            .await?;
            json(
                StatusCode::OK,
                &NetworksPruneResponse {
                    networks_deleted: Some(deleted),
                },
            )
        }
        Action::BuildPrune => {
            let n = blocking(engine, |e| e.build_prune()).await?;
            let deleted: Vec<String> = (0..n).map(|i| format!("step-{i}")).collect();
            json(
                StatusCode::OK,
                &serde_json::json!({ "CachesDeleted": deleted, "SpaceReclaimed": 0 }),
            )
        }
        Action::Build { opts, quiet } => {
            let mut reader = body::reader(req.into_body());
            let (tx, body) = body::channel(64);
            let engine = Arc::clone(engine);
            tokio::task::spawn_blocking(move || {
                let mut w = ChannelWriter::new(tx);
                let mut send = |m: &JsonMessage| {
                    use std::io::Write as _;
                    let _ = w.write_all(&json_line(m));
                };
                let r = engine.build(&mut reader, &opts, &mut |m| match m {
                    berth_engine::build::Message::Stream(text) => {
                        if !quiet {
                            send(&message_stream(text));
                        }
                    }
                    berth_engine::build::Message::Built(id) => {
                        send(&JsonMessage {
                            aux: Some(serde_json::json!({ "ID": id.to_string() })),
                            ..JsonMessage::default()
                        });
                        // Quiet: the id is all the classic builder prints (the CLI shows it).
                        if quiet {
                            send(&message_stream(format!("{id}\n")));
                        }
                    }
                });
                if let Err(e) = r {
                    // Drain what the client still sends, so it reads the error.
                    let _ = std::io::copy(&mut reader, &mut std::io::sink());
                    let text = e.to_string();
                    send(&JsonMessage {
                        error: Some(text.clone()),
                        error_detail: Some(berth_api::types::ErrorDetail {
                            code: Some(e.code()),
                            message: text,
                        }),
                        ..JsonMessage::default()
                    });
                }
            });
            with_type(StatusCode::OK, "application/json", body)
        }

        // ---- containers --------------------------------------------------------------------
        Action::ContainerCreate { name } => {
            let bytes = body::collect(req.into_body(), JSON_LIMIT).await?;
            let body = create::create_body(&bytes)?;
            let spec = create::container_spec(name, &body)?;
            let (id, warnings) = blocking(engine, move |e| e.create(spec)).await?;
            json(
                StatusCode::CREATED,
                &ContainerCreateResponse { id, warnings },
            )
        }
        Action::ContainerList(q) => {
            let size = q.size;
            let list = blocking(engine, |e| e.list()).await?;
            let list = filter::containers(list, &q)?;
            let usage: BTreeMap<String, u64> = if size {
                blocking(engine, |e| e.container_usage())
                    .await?
                    .into_iter()
                    .map(|u| (u.id, u.size_rw))
                    .collect()
            } else {
                BTreeMap::new()
            };
            let out: Vec<_> = list
                .iter()
                .map(|c| {
                    container::summary(c, size.then(|| usage.get(&c.id).copied().unwrap_or(0)))
                })
                .collect();
            json(StatusCode::OK, &out)
        }
        Action::ContainerInspect { id, size } => {
            let c = blocking(engine, move |e| e.inspect(&id)).await?;
            let size_rw = if size {
                let cid = c.id.clone();
                blocking(engine, |e| e.container_usage())
                    .await?
                    .into_iter()
                    .find(|u| u.id == cid)
                    .map(|u| u.size_rw)
            } else {
                None
            };
            json(StatusCode::OK, &container::inspect(&c, size_rw))
        }
        Action::ContainerStart { id } => {
            blocking(engine, move |e| e.start(&id)).await?;
            no_content()
        }
        Action::ContainerStop {
            id,
            timeout,
            signal,
        } => {
            blocking(engine, move |e| e.stop(&id, timeout, signal.as_deref())).await?;
            no_content()
        }
        Action::ContainerKill { id, signal } => {
            blocking(engine, move |e| e.kill(&id, signal.as_deref())).await?;
            no_content()
        }
        Action::ContainerRestart { id, timeout } => {
            blocking(engine, move |e| e.restart(&id, timeout)).await?;
            no_content()
        }
        Action::ContainerPause { id } => {
            blocking(engine, move |e| e.pause(&id)).await?;
            no_content()
        }
        Action::ContainerUnpause { id } => {
            blocking(engine, move |e| e.unpause(&id)).await?;
            no_content()
        }
        Action::ContainerRename { id, name } => {
            blocking(engine, move |e| e.rename(&id, &name)).await?;
            no_content()
        }
        Action::ContainerRemove { id, force, volumes } => {
            blocking(engine, move |e| e.remove(&id, force, volumes)).await?;
            no_content()
        }
        Action::ContainerWait { id, condition } => {
            // Registered before answering, so that a start sent right after is seen.
            let waiter = blocking(engine, move |e| e.wait(&id, condition)).await?;
            let (tx, body) = body::channel(1);
            tokio::task::spawn_blocking(move || {
                let r = waiter.wait();
                let resp = ContainerWaitResponse {
                    status_code: r.exit_code.into(),
                    error: r.error.map(|message| WaitExitError { message }),
                };
                let _ = tx.blocking_send(Ok(json_line(&resp)));
            });
            with_type(StatusCode::OK, "application/json", body)
        }
        Action::ContainerAttach { id, opts } => {
            let on_upgrade =
                hijack::wants_upgrade(req.headers()).then(|| hyper::upgrade::on(&mut req));
            let stream = blocking(engine, move |e| e.attach(&id, opts)).await?;
            hijacked(stream, on_upgrade, version)?
        }
        Action::ContainerResize { id, height, width } => {
            blocking(engine, move |e| e.resize(&id, height, width)).await?;
            status_only(StatusCode::OK)
        }
        Action::ContainerLogs { id, opts } => {
            if !opts.stdout && !opts.stderr {
                return Err(ApiError::bad_request(
                    "you must choose at least one stream: stdout or stderr",
                ));
            }
            let stream = blocking(engine, move |e| e.logs(&id, opts)).await?;
            let tty = stream.tty;
            with_type(
                StatusCode::OK,
                hijack::content_type(tty, version),
                pump_stream(stream.conn)?,
            )
        }
        Action::ContainerTop { id, ps_args } => {
            let top = blocking(engine, move |e| e.top(&id, ps_args.as_deref())).await?;
            json(
                StatusCode::OK,
                &ContainerTopResponse {
                    titles: top.titles,
                    processes: top.processes,
                },
            )
        }
        Action::ContainerStats {
            id,
            stream,
            one_shot,
        } => stats(engine, id, stream, one_shot).await?,
        Action::ContainerChanges { id } => {
            let changes = blocking(engine, move |e| e.changes(&id)).await?;
            let out: Vec<ContainerChange> = changes
                .into_iter()
                .map(|c| ContainerChange {
                    path: c.path,
                    kind: match c.kind {
                        ChangeKind::Modified => ContainerChange::MODIFIED,
                        ChangeKind::Added => ContainerChange::ADDED,
                        ChangeKind::Deleted => ContainerChange::DELETED,
                    },
                })
                .collect();
            json(StatusCode::OK, &out)
        }
        Action::ContainerExport { id } => {
            stream_writer("application/x-tar", engine, move |e, w| {
                let mut r = e.export(&id)?;
                copy_to(&mut r, w, "the export")
            })
            .await?
        }
        Action::ArchiveStat { id, path } => {
            let stat = blocking(engine, move |e| e.archive_stat(&id, &path)).await?;
            let mut resp = status_only(StatusCode::OK);
            resp.headers_mut()
                .insert(STAT_HEADER, path_stat_header(&stat)?);
            resp
        }
        Action::ArchiveGet { id, path } => {
            let (stat, mut reader) = blocking(engine, move |e| e.archive_get(&id, &path)).await?;
            let value = path_stat_header(&stat)?;
            let mut resp = stream_writer("application/x-tar", engine, move |_, w| {
                copy_to(&mut reader, w, "the archive")
            })
            .await?;
            resp.headers_mut().insert(STAT_HEADER, value);
            resp
        }
        Action::ArchivePut {
            id,
            path,
            no_overwrite_dir_non_dir,
        } => {
            let mut reader = body::reader(req.into_body());
            blocking(engine, move |e| {
                e.archive_put(&id, &path, &mut reader, no_overwrite_dir_non_dir)
            })
            .await?;
            status_only(StatusCode::OK)
        }
        Action::Commit { container, opts } => {
            let id = blocking(engine, move |e| e.commit(&container, opts.into())).await?;
            json(StatusCode::CREATED, &IdResponse { id })
        }

        // ---- exec --------------------------------------------------------------------------
        Action::ExecCreate { id } => {
            let bytes = body::collect(req.into_body(), JSON_LIMIT).await?;
            let body: ExecCreateRequest = create::parse_body("exec", &bytes)?;
            let spec = create::exec_spec(&body)?;
            let exec_id = blocking(engine, move |e| e.exec_create(&id, spec)).await?;
            json(StatusCode::CREATED, &IdResponse { id: exec_id })
        }
        Action::ExecStart { id } => {
            let on_upgrade =
                hijack::wants_upgrade(req.headers()).then(|| hyper::upgrade::on(&mut req));
            let bytes = body::collect(req.into_body(), JSON_LIMIT).await?;
            let start: ExecStartRequest = create::parse_body("exec start", &bytes)?;
            let detach = start.detach;
            let on_upgrade = match on_upgrade {
                Some(u) if !detach => Ok(u),
                other => Err(other),
            };
            let on_upgrade = match on_upgrade {
                Err(other) => other,
                Ok(on_upgrade) => {
                    // As dockerd does: the 101 goes out before the process starts, so a client
                    // that reads the raw socket after parsing the headers (the Python SDK) never
                    // has output swallowed by its header buffer. A failure to start is written
                    // into the stream.
                    let i = id.clone();
                    let exec = blocking(engine, move |e| e.exec_inspect(&i)).await?;
                    let engine = Arc::clone(engine);
                    tokio::spawn(async move {
                        let upgraded = match on_upgrade.await {
                            Ok(u) => u,
                            Err(e) => {
                                tracing::warn!("upgrading the connection: {e}");
                                return;
                            }
                        };
                        let mut io = TokioIo::new(upgraded);
                        match blocking(&engine, move |e| e.exec_start(&id, false)).await {
                            Ok(Some(stream)) => match hijack::to_tokio(stream.conn) {
                                Ok(s) => {
                                    if let Err(e) = hijack::splice(io, s).await {
                                        tracing::debug!("hijacked stream ended: {e}");
                                    }
                                }
                                Err(e) => tracing::warn!("exec stream: {e}"),
                            },
                            Ok(None) => {}
                            Err(e) => {
                                use tokio::io::AsyncWriteExt;
                                let _ = io.write_all(format!("{}\n", e.message).as_bytes()).await;
                            }
                        }
                    });
                    return Ok(hijack::upgrade_response(exec.spec.tty, version));
                }
            };
            let stream = blocking(engine, move |e| e.exec_start(&id, detach)).await?;
            match stream {
                None => with_type(StatusCode::OK, "application/json", body::empty()),
                Some(stream) => hijacked(stream, on_upgrade, version)?,
            }
        }
        Action::ExecResize { id, height, width } => {
            blocking(engine, move |e| e.exec_resize(&id, height, width)).await?;
            status_only(StatusCode::OK)
        }
        Action::ExecInspect { id } => {
            let exec = blocking(engine, move |e| e.exec_inspect(&id)).await?;
            json(StatusCode::OK, &container::exec_inspect(&exec))
        }

        // ---- images ------------------------------------------------------------------------
        Action::ImageList { filters, all } => {
            let mut list = blocking(engine, |e| e.images()).await?;
            // A build's intermediate images show with `-a` only, as with dockerd.
            if !all {
                list.retain(|r| !r.has_children || !r.repo_tags.is_empty());
            }
            let list = filter::images(list, &filters)?;
            let out: Vec<_> = list.iter().map(|r| image::summary(r, -1)).collect();
            json(StatusCode::OK, &out)
        }
        Action::ImageInspect { name } => {
            let r = blocking(engine, move |e| e.image_inspect(&name)).await?;
            json(StatusCode::OK, &image::inspect(&r))
        }
        Action::ImageHistory { name } => {
            let n = name.clone();
            let entries = blocking(engine, move |e| e.image_history(&n)).await?;
            let tags = blocking(engine, move |e| e.image_inspect(&name))
                .await
                .map(|r| image::repo_tags(&r))
                .unwrap_or_default();
            json(StatusCode::OK, &image::history(&entries, &tags))
        }
        Action::ImageTag { name, repo, tag } => {
            blocking(engine, move |e| e.image_tag(&name, &repo, &tag)).await?;
            status_only(StatusCode::CREATED)
        }
        Action::ImageRemove { name, force } => {
            let removed = blocking(engine, move |e| e.image_remove(&name, force)).await?;
            let mut out: Vec<ImageDeleteResponseItem> = removed
                .untagged
                .into_iter()
                .map(|u| ImageDeleteResponseItem {
                    untagged: Some(u),
                    deleted: None,
                })
                .collect();
            out.extend(
                removed
                    .deleted
                    .into_iter()
                    .map(|d| ImageDeleteResponseItem {
                        untagged: None,
                        deleted: Some(d),
                    }),
            );
            json(StatusCode::OK, &out)
        }
        Action::ImageSave { names } => {
            stream_writer("application/x-tar", engine, move |e, w| {
                e.image_save(&names, w)
            })
            .await?
        }
        Action::ImageLoad { .. } => {
            let mut reader = body::reader(req.into_body());
            let lines = blocking(engine, move |e| e.image_load(&mut reader)).await?;
            let mut out = Vec::new();
            for l in lines {
                let text = if l.ends_with('\n') {
                    l
                } else {
                    format!("{l}\n")
                };
                out.extend_from_slice(&json_line(&message_stream(text)));
            }
            with_type(StatusCode::OK, "application/json", body::full(out))
        }
        Action::ImageImport { reference, changes } => {
            let mut reader = body::reader(req.into_body());
            let id = blocking(engine, move |e| {
                e.image_import(&mut reader, reference.as_deref(), &changes)
            })
            .await?;
            let msg = JsonMessage {
                status: Some(id),
                ..JsonMessage::default()
            };
            with_type(
                StatusCode::OK,
                "application/json",
                body::full(json_line(&msg)),
            )
        }
        Action::ImagePull { image, tag } => {
            let name = if tag.is_empty() || image.contains('@') {
                image
            } else {
                format!("{image}:{tag}")
            };
            return Err(ApiError::not_found(format!(
                "pull access denied for {name}, repository does not exist or may require 'docker login': berthd cannot pull from registries yet; use 'docker load' or 'berth image bootstrap'"
            )));
        }
        Action::ImageBootstrap { what } => {
            let (tx, body) = body::channel(4);
            let engine = Arc::clone(engine);
            tokio::task::spawn_blocking(move || {
                let _ = tx.blocking_send(Ok(json_line(&message_stream(format!(
                    "Bootstrapping {what}\n"
                )))));
                let line = match engine.image_bootstrap(&what) {
                    Ok(id) => json_line(&JsonMessage {
                        aux: Some(serde_json::json!({ "ID": id })),
                        ..JsonMessage::default()
                    }),
                    Err(e) => json_line(&message_error(format!("bootstrap {what}: {e}"))),
                };
                let _ = tx.blocking_send(Ok(line));
            });
            with_type(StatusCode::OK, "application/json", body)
        }

        // ---- volumes -----------------------------------------------------------------------
        Action::VolumeCreate => {
            let bytes = body::collect(req.into_body(), JSON_LIMIT).await?;
            let body: VolumeCreateRequest = create::parse_body("volume create", &bytes)?;
            if !matches!(body.driver.as_str(), "" | "local") {
                return Err(ApiError::bad_request(format!(
                    "volume driver {:?} is not supported; use local",
                    body.driver
                )));
            }
            let name = (!body.name.is_empty()).then_some(body.name);
            let labels = body.labels.unwrap_or_default();
            let opts = body.driver_opts.unwrap_or_default();
            let v = blocking(engine, move |e| {
                e.volume_create(name.as_deref(), labels, opts)
            })
            .await?;
            json(StatusCode::CREATED, &system::volume(&v))
        }
        Action::VolumeList { filters } => {
            let list = blocking(engine, |e| e.volumes()).await?;
            let refs: BTreeMap<String, usize> = if filters.contains("dangling") {
                blocking(engine, |e| e.volume_usage())
                    .await?
                    .into_iter()
                    .map(|u| (u.name, u.ref_count))
                    .collect()
            } else {
                BTreeMap::new()
            };
            let mut volumes = Vec::new();
            for v in &list {
                if filter::volume_matches(&filters, v, refs.get(&v.name).copied().unwrap_or(0))? {
                    volumes.push(system::volume(v));
                }
            }
            json(
                StatusCode::OK,
                &VolumeListResponse {
                    volumes,
                    warnings: Vec::new(),
                },
            )
        }
        Action::VolumeInspect { name } => {
            let v = blocking(engine, move |e| e.volume_inspect(&name)).await?;
            json(StatusCode::OK, &system::volume(&v))
        }
        Action::VolumeRemove { name, force } => {
            blocking(engine, move |e| e.volume_remove(&name, force)).await?;
            no_content()
        }

        // ---- networks ----------------------------------------------------------------------
        Action::NetworkList { filters } => {
            let list = blocking(engine, |e| e.networks()).await?;
            let master = cluster.and_then(|c| c.master().ok());
            let mut out = Vec::new();
            for n in &list {
                // On a manager the swarm's overlays are listed whole, not this node's pieces.
                if master.is_some() && n.driver == "overlay" {
                    continue;
                }
                if filter::network_matches(&filters, n)? {
                    out.push(network::resource(n));
                }
            }
            if let Some(m) = master {
                // On a blocking thread: a commit to etcd may hold the master's lock.
                let nets = tokio::task::spawn_blocking(move || m.networks())
                    .await
                    .map_err(|e| ApiError::internal(e.to_string()))?;
                for n in nets {
                    let as_local = berth_engine::Network {
                        id: n.id.clone(),
                        name: n.name.clone(),
                        driver: "overlay".into(),
                        labels: n.labels.clone(),
                        internal: n.internal,
                        ..Default::default()
                    };
                    if filter::network_matches(&filters, &as_local)? {
                        out.push(network::cluster_resource(&n));
                    }
                }
            }
            json(StatusCode::OK, &out)
        }
        Action::NetworkInspect { id, scope } => {
            if let Some(c) = cluster {
                if scope != "local" && c.is_follower() && overlay_here(engine, &id).await {
                    let uri = req.uri().to_string();
                    return crate::swarm::forward(c, req.method(), &uri, Bytes::new()).await;
                }
            }
            let master = cluster.and_then(|c| c.master().ok());
            if scope != "local" {
                if let Some(m) = master.clone() {
                    let i = id.clone();
                    let found = tokio::task::spawn_blocking(move || m.network(&i).ok())
                        .await
                        .map_err(|e| ApiError::internal(e.to_string()))?;
                    if let Some(n) = found {
                        return Ok(json(StatusCode::OK, &network::cluster_resource(&n)));
                    }
                }
            }
            let wanted = id.clone();
            let n = blocking(engine, move |e| e.network_inspect(&wanted)).await;
            match n {
                // A manager answers for the swarm's networks itself (above); a worker's piece
                // of one is a swarm network too.
                Ok(n) if scope == "swarm" && (master.is_some() || n.driver != "overlay") => {
                    Err(ApiError::not_found(format!(
                        "network {id} not found among the swarm's networks"
                    )))
                }
                Ok(n) if scope == "local" && n.driver == "overlay" => Err(ApiError::not_found(
                    format!("network {id} not found among this node's local networks"),
                )),
                Ok(n) => Ok(json(StatusCode::OK, &network::resource(&n))),
                Err(e) => Err(e),
            }?
        }
        Action::NetworkCreate => {
            let method = req.method().clone();
            let uri = req.uri().to_string();
            let bytes = body::collect(req.into_body(), JSON_LIMIT).await?;
            let body: NetworkCreateRequest = create::parse_body("network create", &bytes)?;
            if body.driver == "overlay" {
                let c = cluster.ok_or_else(|| {
                    ApiError::new(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "overlay networks need swarm mode, which this daemon runs without",
                    )
                })?;
                if c.is_follower() {
                    return crate::swarm::forward(c, &method, &uri, bytes).await;
                }
                return overlay_create(c, &bytes).await;
            }
            let spec = network::create_spec(&body)?;
            let id = blocking(engine, move |e| e.network_create(spec)).await?;
            json(
                StatusCode::CREATED,
                &NetworkCreateResponse {
                    id,
                    warning: String::new(),
                },
            )
        }
        Action::NetworkRemove { id } => {
            if let Some(c) = cluster {
                if c.is_follower() && overlay_here(engine, &id).await {
                    let uri = req.uri().to_string();
                    return crate::swarm::forward(c, req.method(), &uri, Bytes::new()).await;
                }
                // A local network named exactly so is the one meant, not a swarm network
                // whose id merely starts with it.
                let (e, i) = (Arc::clone(engine), id.clone());
                let local_exact = tokio::task::spawn_blocking(move || {
                    e.networks()
                        .unwrap_or_default()
                        .into_iter()
                        .any(|n| n.driver != "overlay" && (n.name == i || n.id == i))
                })
                .await
                .unwrap_or(false);
                if !local_exact && c.master().is_ok_and(|m| m.network(&id).is_ok()) {
                    return overlay_remove(c, &id).await;
                }
            }
            let wanted = id.clone();
            if let Ok(n) = blocking(engine, move |e| e.network_inspect(&wanted)).await {
                if n.driver == "overlay" {
                    return Err(ApiError::new(
                        StatusCode::CONFLICT,
                        format!(
                            "network {} is this node's piece of a swarm network: remove the network on a swarm manager",
                            n.name
                        ),
                    ));
                }
            }
            blocking(engine, move |e| e.network_remove(&id)).await?;
            no_content()
        }
        Action::NetworkConnect { id } => {
            let bytes = body::collect(req.into_body(), JSON_LIMIT).await?;
            let body: NetworkConnectRequest = create::parse_body("network connect", &bytes)?;
            if body.container.is_empty() {
                return Err(ApiError::bad_request(
                    "invalid network connect body: Container: a container is needed",
                ));
            }
            let ep = body
                .endpoint_config
                .as_ref()
                .map(network::endpoint_spec)
                .unwrap_or_default();
            blocking(engine, move |e| e.network_connect(&id, &body.container, ep)).await?;
            status_only(StatusCode::OK)
        }
        Action::NetworkDisconnect { id } => {
            let bytes = body::collect(req.into_body(), JSON_LIMIT).await?;
            let body: NetworkDisconnectRequest = create::parse_body("network disconnect", &bytes)?;
            if body.container.is_empty() {
                return Err(ApiError::bad_request(
                    "invalid network disconnect body: Container: a container is needed",
                ));
            }
            blocking(engine, move |e| {
                e.network_disconnect(&id, &body.container, body.force)
            })
            .await?;
            status_only(StatusCode::OK)
        }
    })
}

async fn events(engine: &Arc<Engine>, q: EventsQuery) -> Result<Response<Body>> {
    let since = q.since.unwrap_or(0);
    let subscription = blocking(engine, move |e| Ok(e.events(since))).await?;
    let (tx, body) = body::channel(64);
    let EventsQuery { until, filters, .. } = q;
    tokio::task::spawn_blocking(move || {
        let send = |e: &berth_engine::Event| -> bool {
            if !filter::event_matches(&filters, e) {
                return true;
            }
            tx.blocking_send(Ok(json_line(&system::event(e)))).is_ok()
        };
        for e in &subscription.past {
            if until.is_some_and(|u| e.time_nano > u) {
                return;
            }
            if !send(e) {
                return;
            }
        }
        loop {
            if until.is_some_and(|u| now_nanos() > u) || tx.is_closed() {
                return;
            }
            match subscription.live.recv_timeout(Duration::from_millis(250)) {
                Ok(e) => {
                    if until.is_some_and(|u| e.time_nano > u) {
                        return;
                    }
                    if !send(&e) {
                        return;
                    }
                }
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => return,
            }
        }
    });
    Ok(with_type(StatusCode::OK, "application/json", body))
}

async fn stats(
    engine: &Arc<Engine>,
    id: String,
    stream: bool,
    one_shot: bool,
) -> Result<Response<Body>> {
    let c = blocking(engine, move |e| e.inspect(&id)).await?;
    let (cid, name) = (c.id.clone(), c.name.clone());
    if !c.state.running() {
        return Ok(json(StatusCode::OK, &system::empty_stats(&cid, &name)));
    }
    if !stream {
        let n = cid.clone();
        let first = blocking(engine, move |e| e.stats(&n)).await?;
        if one_shot {
            return Ok(json(
                StatusCode::OK,
                &system::stats(&cid, &name, &first, None),
            ));
        }
        // Two samples a second apart, so that the CLI can compute CPU %.
        tokio::time::sleep(Duration::from_secs(1)).await;
        let n = cid.clone();
        let second = blocking(engine, move |e| e.stats(&n)).await?;
        return Ok(json(
            StatusCode::OK,
            &system::stats(&cid, &name, &second, Some(&first)),
        ));
    }
    let (tx, body) = body::channel(4);
    let engine = Arc::clone(engine);
    tokio::spawn(async move {
        let mut prev: Option<berth_engine::Stats> = None;
        loop {
            let n = cid.clone();
            let sample = match blocking(&engine, move |e| e.stats(&n)).await {
                Ok(s) => s,
                Err(_) => break,
            };
            let line = json_line(&system::stats(&cid, &name, &sample, prev.as_ref()));
            if tx.send(Ok(line)).await.is_err() {
                break;
            }
            prev = Some(sample);
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    });
    Ok(with_type(StatusCode::OK, "application/json", body))
}

async fn system_df(engine: &Arc<Engine>) -> Result<Response<Body>> {
    let images = blocking(engine, |e| e.images()).await?;
    let containers = blocking(engine, |e| e.list()).await?;
    let usage: BTreeMap<String, u64> = blocking(engine, |e| e.container_usage())
        .await?
        .into_iter()
        .map(|u| (u.id, u.size_rw))
        .collect();
    let volumes = blocking(engine, |e| e.volumes()).await?;
    let vol_usage: BTreeMap<String, (u64, usize)> = blocking(engine, |e| e.volume_usage())
        .await?
        .into_iter()
        .map(|u| (u.name, (u.size, u.ref_count)))
        .collect();
    let layers_size = images.iter().map(|i| i.size as i64).sum();
    let image_summaries = images
        .iter()
        .map(|r| {
            let id = r.id.to_string();
            let used = containers.iter().filter(|c| c.image_id == id).count() as i64;
            image::summary(r, used)
        })
        .collect();
    let container_summaries = containers
        .iter()
        .map(|c| container::summary(c, Some(usage.get(&c.id).copied().unwrap_or(0))))
        .collect();
    let volume_summaries = volumes
        .iter()
        .map(|v| {
            let mut w = system::volume(v);
            let (size, refs) = vol_usage.get(&v.name).copied().unwrap_or((0, 0));
            w.usage_data = Some(VolumeUsageData {
                ref_count: refs as i64,
                size: size as i64,
            });
            w
        })
        .collect();
    Ok(json(
        StatusCode::OK,
        &SystemDfResponse {
            layers_size,
            images: image_summaries,
            containers: container_summaries,
            volumes: volume_summaries,
            build_cache: Vec::new(),
        },
    ))
}

/// Whether `id` names this node's piece of a swarm overlay (or no network here at all): a
/// manager that does not lead asks the leader about it.
async fn overlay_here(engine: &Arc<Engine>, id: &str) -> bool {
    let id = id.to_string();
    let e = Arc::clone(engine);
    match tokio::task::spawn_blocking(move || e.network_inspect(&id)).await {
        Ok(Ok(n)) => n.driver == "overlay",
        Ok(Err(e)) => e.kind() == berth_engine::ErrorKind::NotFound,
        Err(_) => false,
    }
}

/// `docker network create -d overlay` on the leading manager.
pub(crate) async fn overlay_create(
    c: &Arc<berth_cluster::Cluster>,
    bytes: &Bytes,
) -> Result<Response<Body>> {
    let body: NetworkCreateRequest = create::parse_body("network create", bytes)?;
    if body.driver != "overlay" {
        return Err(ApiError::bad_request(format!(
            "only overlay networks are made on the leader, not {:?}",
            body.driver
        )));
    }
    let m = c.master().map_err(crate::swarm::err)?;
    // A name this node already uses for a network of its own would have tasks join that one.
    let (e, name) = (Arc::clone(c.engine()), body.name.clone());
    let local = tokio::task::spawn_blocking(move || e.networks())
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?
        .map_err(ApiError::from)?;
    if local
        .iter()
        .any(|n| n.name == name && n.driver != "overlay")
    {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!("network with name {name} already exists on this manager as a local network"),
        ));
    }
    let subnet = body
        .ipam
        .as_ref()
        .and_then(|i| i.config.first())
        .map(|c| c.subnet.clone())
        .filter(|s| !s.is_empty());
    if let Some(sn) = subnet.clone() {
        // A subnet the leader's own networks or routes use is refused here, not on every
        // node that would then fail to make its piece.
        let (e, mm) = (Arc::clone(c.engine()), m.clone());
        tokio::task::spawn_blocking(move || {
            berth_cluster::dataplane::check_local_subnet(&e, &mm.networks(), &sn)
        })
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?
        .map_err(crate::swarm::err)?;
    }
    let labels = body.labels.clone().unwrap_or_default();
    let n = tokio::task::spawn_blocking(move || {
        m.create_network(
            &body.name,
            subnet.as_deref(),
            labels,
            body.attachable,
            body.internal,
        )
    })
    .await
    .map_err(|e| ApiError::internal(e.to_string()))?
    .map_err(crate::swarm::err)?;
    Ok(json(
        StatusCode::CREATED,
        &NetworkCreateResponse {
            id: n.id,
            warning: String::new(),
        },
    ))
}

/// `docker network rm` of a swarm overlay, on the leading manager.
pub(crate) async fn overlay_remove(
    c: &Arc<berth_cluster::Cluster>,
    id: &str,
) -> Result<Response<Body>> {
    let m = c.master().map_err(crate::swarm::err)?;
    let id = id.to_string();
    tokio::task::spawn_blocking(move || m.remove_network(&id))
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?
        .map_err(crate::swarm::err)?;
    Ok(no_content())
}

/// `docker network inspect` of a swarm overlay, on the leading manager.
pub(crate) fn overlay_inspect(c: &Arc<berth_cluster::Cluster>, id: &str) -> Result<Response<Body>> {
    let m = c.master().map_err(crate::swarm::err)?;
    let n = m.network(id).map_err(crate::swarm::err)?;
    Ok(json(StatusCode::OK, &network::cluster_resource(&n)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    fn body_text(resp: Response<Body>) -> String {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let bytes = rt.block_on(resp.into_body().collect()).unwrap().to_bytes();
        String::from_utf8_lossy(&bytes).into_owned()
    }

    #[test]
    fn error_bodies_are_docker_shaped() {
        let resp = error_response(&ApiError::from(berth_engine::Error::NoSuchContainer(
            "nope".into(),
        )));
        assert_eq!(resp.status(), StatusCode::NOT_FOUND);
        assert_eq!(resp.headers()[header::CONTENT_TYPE], "application/json");
        assert_eq!(
            body_text(resp).trim(),
            r#"{"message":"No such container: nope"}"#
        );
        let resp = error_response(&ApiError::from(berth_engine::Error::NotModified(
            "already started".into(),
        )));
        assert_eq!(resp.status(), StatusCode::NOT_MODIFIED);
        assert_eq!(body_text(resp), "");
    }

    #[test]
    fn ping_headers() {
        let mut resp = ping(true, "inactive");
        common_headers(&mut resp);
        let h = resp.headers();
        assert_eq!(h["Api-Version"], MAX_API);
        assert_eq!(h["Ostype"], "linux");
        assert_eq!(h["Swarm"], "inactive");
        assert_eq!(h["Docker-Experimental"], "false");
        assert_eq!(h["Pragma"], "no-cache");
        assert_eq!(h[header::CONTENT_LENGTH], "0");
        assert_eq!(body_text(ping(false, "inactive")), "OK");
    }

    #[test]
    fn path_stat_is_base64_json() {
        let v = path_stat_header(&PathStat {
            name: "hosts".into(),
            size: 10,
            mode: 0o644,
            mtime: "2024-05-01T10:00:00Z".into(),
            link_target: String::new(),
        })
        .unwrap();
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(v.as_bytes())
            .unwrap();
        let json: serde_json::Value = serde_json::from_slice(&decoded).unwrap();
        assert_eq!(json["name"], "hosts");
        assert_eq!(json["mode"], 0o644);
        assert_eq!(json["linkTarget"], "");
    }

    #[test]
    fn json_messages() {
        let line = json_line(&message_stream("Loaded image: x\n".into()));
        assert_eq!(&line[..], b"{\"stream\":\"Loaded image: x\\n\"}\n");
        let err = json_line(&message_error("boom".into()));
        let v: serde_json::Value = serde_json::from_slice(&err).unwrap();
        assert_eq!(v["error"], "boom");
        assert_eq!(v["errorDetail"]["message"], "boom");
    }
}
