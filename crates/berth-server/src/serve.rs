//! Accepting connections: one HTTP/1.1 connection per client (with upgrades, for attach and
//! exec), on a Unix socket or on TCP with TLS, until the shutdown signal.

use std::convert::Infallible;
use std::sync::Arc;

use berth_engine::Engine;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

use crate::handlers;

/// The HTTP front of one engine; cheap to clone.
#[derive(Clone)]
pub struct Server {
    engine: Arc<Engine>,
    cluster: Option<Arc<berth_cluster::Cluster>>,
}

impl Server {
    pub fn new(engine: Arc<Engine>) -> Server {
        Server {
            engine,
            cluster: None,
        }
    }

    /// A server that also answers the Swarm-mode API through `cluster`, and runs the calls
    /// other managers forward to this one when it leads.
    pub fn with_cluster(engine: Arc<Engine>, cluster: Arc<berth_cluster::Cluster>) -> Server {
        let weak = Arc::downgrade(&cluster);
        cluster.set_forward_handler(Arc::new(move |req, caller| {
            let weak = weak.clone();
            Box::pin(async move {
                match weak.upgrade() {
                    Some(c) => crate::swarm::run_forwarded(c, req, caller).await,
                    None => berth_cluster::proto::ForwardResponse {
                        status: 503,
                        content_type: "application/json".into(),
                        body: br#"{"message":"shutting down"}"#.to_vec(),
                    },
                }
            })
        }));
        Server {
            engine,
            cluster: Some(cluster),
        }
    }

    /// Serves one connection until the client closes it (or it is upgraded and spliced).
    pub async fn serve_connection<IO>(&self, io: IO)
    where
        IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let engine = Arc::clone(&self.engine);
        let cluster = self.cluster.clone();
        let svc = service_fn(move |req| {
            let engine = Arc::clone(&engine);
            let cluster = cluster.clone();
            async move { Ok::<_, Infallible>(handlers::handle(engine, cluster, req).await) }
        });
        if let Err(e) = hyper::server::conn::http1::Builder::new()
            .serve_connection(TokioIo::new(io), svc)
            .with_upgrades()
            .await
        {
            tracing::debug!("connection ended: {e}");
        }
    }
}

/// Whether the shutdown signal has been given.
async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    while !*shutdown.borrow() {
        if shutdown.changed().await.is_err() {
            // The sender is gone: nobody can stop us any more; run on.
            std::future::pending::<()>().await;
        }
    }
}

/// Accepts on a Unix socket until `shutdown` turns true.
pub async fn serve_unix(
    server: Server,
    listener: UnixListener,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = stopped(&mut shutdown) => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let server = server.clone();
                    tokio::spawn(async move { server.serve_connection(stream).await });
                }
                Err(e) => {
                    tracing::warn!("accepting on the unix socket: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
            }
        }
    }
}

/// Accepts TLS connections (client certificates verified by `acceptor`'s config) until
/// `shutdown` turns true.
pub async fn serve_tls(
    server: Server,
    listener: TcpListener,
    acceptor: TlsAcceptor,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = stopped(&mut shutdown) => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let server = server.clone();
                    let acceptor = acceptor.clone();
                    tokio::spawn(async move {
                        match acceptor.accept(stream).await {
                            Ok(tls) => server.serve_connection(tls).await,
                            Err(e) => tracing::info!("tls handshake with {peer} failed: {e}"),
                        }
                    });
                }
                Err(e) => {
                    tracing::warn!("accepting on tcp: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use http_body_util::{BodyExt, Empty};
    use hyper_util::rt::TokioIo;

    async fn call(
        sender: &mut hyper::client::conn::http1::SendRequest<Empty<Bytes>>,
        method: &str,
        uri: &str,
    ) -> (u16, http::HeaderMap, String) {
        sender.ready().await.unwrap();
        let req = http::Request::builder()
            .method(method)
            .uri(uri)
            .header("Host", "berth")
            .body(Empty::<Bytes>::new())
            .unwrap();
        let resp = sender.send_request(req).await.unwrap();
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        (status, headers, String::from_utf8_lossy(&body).into_owned())
    }

    /// Requests through the whole stack (router, handlers, a real engine on an empty data
    /// root) over a real HTTP/1.1 connection on a socket pair.
    #[test]
    fn requests_through_the_whole_stack() {
        let dir = tempfile::tempdir().unwrap();
        let engine = match Engine::open(berth_engine::EngineConfig {
            data_root: dir.path().join("data"),
            exec_root: dir.path().join("exec"),
            runtime: "berth-runc".into(),
            shim: "berth-shim".into(),
            network: berth_engine::NetConfig::no_bridge(),
        }) {
            Ok(e) => e,
            Err(e) => {
                eprintln!("skipped: the engine cannot open here: {e}");
                return;
            }
        };
        let server = Server::new(Arc::new(engine));
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let (server_io, client_io) = tokio::net::UnixStream::pair().unwrap();
            tokio::spawn(async move { server.serve_connection(server_io).await });
            let (mut sender, conn) =
                hyper::client::conn::http1::handshake::<_, Empty<Bytes>>(TokioIo::new(client_io))
                    .await
                    .unwrap();
            tokio::spawn(conn);
            let (status, headers, body) = call(&mut sender, "GET", "/_ping").await;
            assert_eq!((status, body.as_str()), (200, "OK"));
            assert_eq!(headers["Api-Version"], "1.43");
            let (status, _, body) = call(&mut sender, "GET", "/v1.43/containers/json?all=1").await;
            assert_eq!((status, body.trim()), (200, "[]"));
            let (status, _, body) = call(&mut sender, "GET", "/v1.99/containers/json").await;
            assert_eq!(status, 400);
            assert!(body.contains("is too new"), "{body}");
            let (status, _, body) = call(&mut sender, "GET", "/nope").await;
            assert_eq!(
                (status, body.trim()),
                (404, r#"{"message":"page not found"}"#)
            );
            let (status, _, body) = call(&mut sender, "GET", "/containers/nope/json").await;
            assert_eq!(status, 404);
            assert!(body.contains("No such container: nope"), "{body}");
            let (status, _, body) = call(&mut sender, "GET", "/volumes").await;
            assert_eq!(status, 200);
            let v: serde_json::Value = serde_json::from_str(&body).unwrap();
            assert!(v["Volumes"].is_array());
            let (status, _, body) = call(&mut sender, "GET", "/networks").await;
            assert_eq!(status, 200);
            assert!(body.contains(r#""Name":"none""#), "{body}");
            let (status, _, body) = call(&mut sender, "GET", "/version").await;
            assert_eq!(status, 200);
            assert!(body.contains(r#""ApiVersion":"1.43""#));
            let (status, _, _) = call(&mut sender, "POST", "/containers/nope/start").await;
            assert_eq!(status, 404);
        });
    }
}
