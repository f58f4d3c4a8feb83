//! The master-agent protocol, which belongs to this crate alone: JSON over HTTP/1.1 over
//! mutual TLS (TLS 1.3) on the master's port (2377 by default).
//!
//! - `POST /join` (no client certificate yet): a [`JoinRequest`] with the token; the answer
//!   carries the node's id and its certificate and key, issued by the swarm's CA.
//! - `POST /session` (client certificate): the agent's heartbeat, with what its tasks are
//!   doing (and, when it sampled them, its running tasks' CPU usage for autoscaling), and a
//!   long poll for its assignments: the master answers as soon as the node's assignments
//!   change past `since`, or after a heartbeat period.
//! - `POST /report`: task state changes, sent the moment the agent sees them.
//! - `POST /logs` (any node): a task container's log lines, for `docker service logs`.
//! - `POST /forward` (the leader, from another manager): a Swarm API request that manager
//!   was given, as opaque bytes ([`ForwardRequest`]), run by the leader's API server.
//!
//! Every node serves these on its listen address; a manager that does not lead answers the
//! master's calls with 421 and the leader's address, so agents find the leader themselves.
//! Agents pull: a master that restarts, a new leader, or a node cut off for a while needs no
//! replay; the next session call carries the whole truth both ways.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde::{de::DeserializeOwned, Deserialize, Serialize};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Mutex;

use crate::ca::{self, Issued, MANAGER_NAME};
use crate::error::{Error, Result};
use crate::model::{NodeDescription, Role, Task, TaskState};
use crate::store::StoreConfig;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JoinRequest {
    pub token: String,
    pub description: NodeDescription,
    /// The address other nodes reach this one at (`--advertise-addr`).
    pub advertise_addr: String,
    /// The port this node serves its task logs on (its `--listen-addr` port).
    #[serde(default = "default_port")]
    pub port: u16,
}

fn default_port() -> u16 {
    crate::cluster::DEFAULT_PORT
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JoinResponse {
    pub node_id: String,
    pub role: Role,
    pub cert: Issued,
    pub ca_pem: String,
    pub swarm_id: String,
    pub heartbeat_period: i64,
    /// The managers' addresses (`HOST:PORT`), the leader first.
    #[serde(default)]
    pub managers: Vec<String>,
    /// Where the masters keep the state (a joining manager campaigns there).
    #[serde(default)]
    pub store: StoreConfig,
}

/// What a promoted node needs to become a manager: a certificate that names it one, and the
/// store the masters share.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Promotion {
    pub cert: Issued,
    pub store: StoreConfig,
}

/// What a task is doing on its node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskReport {
    pub id: String,
    pub state: TaskState,
    pub message: String,
    pub err: String,
    pub container_id: String,
    pub pid: i64,
    pub exit_code: i64,
    pub healthy: Option<bool>,
    /// The container's addresses: network name → IPv4.
    #[serde(default)]
    pub addrs: std::collections::BTreeMap<String, String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SessionRequest {
    pub description: NodeDescription,
    pub reports: Vec<TaskReport>,
    /// The assignment version the agent has; 0 at first.
    pub since: u64,
    /// The networking version the agent has; 0 at first.
    #[serde(default)]
    pub net_since: u64,
    /// The role the node runs as now (a promotion or demotion is done when this changes).
    #[serde(default)]
    pub role: Option<Role>,
    /// CPU usage of the running tasks, only when the agent sampled it ([`crate::autoscale`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub usage: Vec<TaskUsage>,
}

/// A running task's CPU usage over the agent's last sample period.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskUsage {
    pub id: String,
    /// CPU seconds per second: 1.0 is one whole CPU.
    pub cpu: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SessionResponse {
    pub version: u64,
    /// Every task assigned to this node that it must run or stop; `None`: unchanged since
    /// the version the agent sent.
    pub tasks: Option<Vec<Task>>,
    pub heartbeat_period: i64,
    #[serde(default)]
    pub net_version: u64,
    /// The cluster's networking; `None`: unchanged since `net_since`.
    #[serde(default)]
    pub net: Option<std::sync::Arc<crate::netstate::NetState>>,
    /// The managers' addresses, the leader (this master) first: where to go if it is lost.
    #[serde(default)]
    pub managers: Vec<String>,
    /// The role the node should run as.
    #[serde(default)]
    pub role: Option<Role>,
    /// For a node promoted since it last said its role: its manager certificate.
    #[serde(default)]
    pub promotion: Option<Promotion>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReportRequest {
    pub reports: Vec<TaskReport>,
}

/// A Swarm API request a follower manager hands to the leader: what berth-server was
/// given, uninterpreted here.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ForwardRequest {
    pub method: String,
    /// Path and query, as the client sent them.
    pub uri: String,
    #[serde(with = "b64")]
    pub body: Vec<u8>,
}

/// The leader's answer to a [`ForwardRequest`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ForwardResponse {
    pub status: u16,
    pub content_type: String,
    #[serde(with = "b64")]
    pub body: Vec<u8>,
}

/// Bytes as base64 in JSON (log frames are binary).
mod b64 {
    use base64::Engine as _;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(b: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(b))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let t = String::deserialize(d)?;
        base64::engine::general_purpose::STANDARD
            .decode(t)
            .map_err(serde::de::Error::custom)
    }
}

/// An error answer: status and message.
#[derive(Debug)]
pub struct RpcError(pub u16, pub String);

type BoxFut<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// What the master does with one call: `(client certificate fingerprint, path, body)`.
pub type Handler = Arc<
    dyn Fn(Option<String>, String, Bytes) -> BoxFut<std::result::Result<Vec<u8>, RpcError>>
        + Send
        + Sync,
>;

/// The listener's TLS configuration, replaceable while it serves (a promoted node's new
/// certificate applies to the next connection).
pub type TlsSource = Arc<std::sync::RwLock<Arc<rustls::ServerConfig>>>;

/// Serves the protocol on `listener` until the returned task is aborted.
pub fn serve(
    listener: TcpListener,
    tls: TlsSource,
    handler: Handler,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let (sock, _) = match listener.accept().await {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!("cluster listener: accept: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let _ = sock.set_nodelay(true);
            let acceptor = tokio_rustls::TlsAcceptor::from(
                tls.read().unwrap_or_else(|p| p.into_inner()).clone(),
            );
            let handler = handler.clone();
            tokio::spawn(async move {
                let peer = sock.peer_addr().ok();
                let tls = match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(sock))
                    .await
                {
                    Ok(Ok(t)) => t,
                    Ok(Err(e)) => {
                        tracing::warn!("cluster: TLS handshake from {peer:?} refused: {e}");
                        return;
                    }
                    Err(_) => return,
                };
                let fp = tls
                    .get_ref()
                    .1
                    .peer_certificates()
                    .and_then(|c| c.first())
                    .map(ca::fingerprint);
                let svc = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                    let handler = handler.clone();
                    let fp = fp.clone();
                    async move {
                        let path = req.uri().path().to_string();
                        let body = match req.into_body().collect().await {
                            Ok(b) => b.to_bytes(),
                            Err(e) => {
                                return Ok::<_, hyper::Error>(reply(
                                    400,
                                    e.to_string().into_bytes(),
                                ))
                            }
                        };
                        Ok(match handler(fp, path, body).await {
                            Ok(out) => reply(200, out),
                            Err(RpcError(code, msg)) => reply(code, msg.into_bytes()),
                        })
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tls), svc)
                    .await;
            });
        }
    })
}

fn reply(code: u16, body: Vec<u8>) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    r
}

/// One kept-alive connection to the master; reconnects after an error.
pub struct Client {
    addr: String,
    /// The name the server's certificate must carry.
    name: String,
    tls: Arc<rustls::ClientConfig>,
    conn: Mutex<Option<hyper::client::conn::http1::SendRequest<Full<Bytes>>>>,
}

impl Client {
    pub fn new(addr: &str, tls: rustls::ClientConfig) -> Client {
        Client::with_name(addr, tls, MANAGER_NAME)
    }

    /// A client of a node other than the manager: its certificate names its node id.
    pub fn with_name(addr: &str, tls: rustls::ClientConfig, name: &str) -> Client {
        Client {
            name: name.to_string(),
            addr: addr.to_string(),
            tls: Arc::new(tls),
            conn: Mutex::new(None),
        }
    }

    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Forgets the connection (the next call dials again).
    pub async fn reset(&self) {
        *self.conn.lock().await = None;
    }

    async fn dial(&self) -> Result<hyper::client::conn::http1::SendRequest<Full<Bytes>>> {
        let addr: SocketAddr = tokio::net::lookup_host(&self.addr)
            .await
            .map_err(|e| Error::Unreachable(format!("{}: {e}", self.addr)))?
            .next()
            .ok_or_else(|| Error::Unreachable(format!("{}: no address", self.addr)))?;
        let tcp = tokio::time::timeout(Duration::from_secs(3), TcpStream::connect(addr))
            .await
            .map_err(|_| Error::Unreachable(format!("{}: connection timed out", self.addr)))?
            .map_err(|e| Error::Unreachable(format!("{}: {e}", self.addr)))?;
        let _ = tcp.set_nodelay(true);
        let name = rustls::pki_types::ServerName::try_from(self.name.clone())
            .map_err(|e| Error::Tls(e.to_string()))?;
        let tls = tokio_rustls::TlsConnector::from(self.tls.clone())
            .connect(name, tcp)
            .await
            .map_err(|e| Error::Tls(format!("{}: {e}", self.addr)))?;
        let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(|e| Error::Unreachable(format!("{}: {e}", self.addr)))?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(send)
    }

    /// Sends `req` to `path` and reads the JSON answer, within `timeout`.
    pub async fn call<Q: Serialize, A: DeserializeOwned>(
        &self,
        path: &str,
        req: &Q,
        timeout: Duration,
    ) -> Result<A> {
        let r = tokio::time::timeout(timeout, self.call_inner(path, req)).await;
        match r {
            Ok(Ok(a)) => Ok(a),
            Ok(Err(e)) => {
                self.reset().await;
                Err(e)
            }
            Err(_) => {
                self.reset().await;
                Err(Error::Io(format!(
                    "{}: no answer in {timeout:?}",
                    self.addr
                )))
            }
        }
    }

    async fn call_inner<Q: Serialize, A: DeserializeOwned>(
        &self,
        path: &str,
        req: &Q,
    ) -> Result<A> {
        let body = serde_json::to_vec(req).map_err(|e| Error::Internal(e.to_string()))?;
        let mut guard = self.conn.lock().await;
        if guard.as_ref().is_none_or(|s| s.is_closed()) {
            *guard = Some(self.dial().await?);
        }
        let send = guard
            .as_mut()
            .ok_or_else(|| Error::Internal("no connection".into()))?;
        send.ready()
            .await
            .map_err(|e| Error::Io(format!("{}: {e}", self.addr)))?;
        let request = Request::post(path)
            .header("host", self.name.as_str())
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| Error::Internal(e.to_string()))?;
        let resp = send
            .send_request(request)
            .await
            .map_err(|e| Error::Io(format!("{}: {e}", self.addr)))?;
        drop(guard);
        let status = resp.status();
        let bytes = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| Error::Io(format!("{}: {e}", self.addr)))?
            .to_bytes();
        if !status.is_success() {
            let msg = String::from_utf8_lossy(&bytes).into_owned();
            return Err(match status.as_u16() {
                401 | 403 => Error::Refused(msg),
                // A manager that does not lead: the body is the leader's address, if known.
                421 => Error::NotLeader(msg),
                404 => Error::NotFound(msg),
                409 => Error::Conflict(msg),
                400 => Error::InvalidArgument(msg),
                _ => Error::Io(msg),
            });
        }
        serde_json::from_slice(&bytes)
            .map_err(|e| Error::Internal(format!("bad answer from the master: {e}")))
    }
}
