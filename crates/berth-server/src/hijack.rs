//! Hijacked streams (attach, exec start): the `101 UPGRADED` answer and the splice of the
//! client's connection with the engine's stream. Client input goes to the container's stdin;
//! when the client half-closes, the engine stream's write side is shut down (closing stdin)
//! and output keeps flowing until the engine stream ends.

use std::io;

use berth_api::stream::{MULTIPLEXED_STREAM, RAW_STREAM};
use berth_api::version::ApiVersion;
use http::{header, HeaderMap, Response, StatusCode};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::body::{self, Body};

/// Whether the request asks to upgrade (`Connection: Upgrade`, `Upgrade: tcp`).
pub fn wants_upgrade(headers: &HeaderMap) -> bool {
    let connection_upgrade = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| {
            v.split(',')
                .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
        });
    connection_upgrade && headers.contains_key(header::UPGRADE)
}

/// The content type of a stream: raw with a TTY (and before API 1.42), multiplexed otherwise.
pub fn content_type(tty: bool, version: ApiVersion) -> &'static str {
    if !tty && version.at_least(ApiVersion::new(1, 42)) {
        MULTIPLEXED_STREAM
    } else {
        RAW_STREAM
    }
}

/// `101 UPGRADED` with Docker's headers.
pub fn upgrade_response(tty: bool, version: ApiVersion) -> Response<Body> {
    let mut resp = Response::new(body::empty());
    *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(content_type(tty, version)),
    );
    h.insert(
        header::CONNECTION,
        header::HeaderValue::from_static("Upgrade"),
    );
    h.insert(header::UPGRADE, header::HeaderValue::from_static("tcp"));
    resp
}

/// Converts the engine's std stream for tokio.
pub fn to_tokio(conn: std::os::unix::net::UnixStream) -> io::Result<tokio::net::UnixStream> {
    conn.set_nonblocking(true)?;
    tokio::net::UnixStream::from_std(conn)
}

/// Splices `client` with the engine stream until the engine's output ends.
///
/// - client → engine: when the client half-closes (read EOF), the engine stream's write
///   side is shut down, which closes the container's stdin; output keeps flowing.
/// - engine → client: when the engine stream ends, the client's write side is shut down and
///   the splice returns, whatever the client still has to send.
pub async fn splice<C>(client: C, engine: tokio::net::UnixStream) -> io::Result<()>
where
    C: AsyncRead + AsyncWrite + Unpin,
{
    let (mut client_r, mut client_w) = tokio::io::split(client);
    let (mut engine_r, mut engine_w) = engine.into_split();
    let result = {
        let stdin = async {
            let r = tokio::io::copy(&mut client_r, &mut engine_w).await;
            // EOF or error from the client: close the container's stdin.
            let _ = engine_w.shutdown().await;
            r
        };
        let output = async {
            let r = tokio::io::copy(&mut engine_r, &mut client_w).await;
            let _ = client_w.flush().await;
            let _ = client_w.shutdown().await;
            r
        };
        tokio::pin!(stdin);
        tokio::pin!(output);
        let mut stdin_done = false;
        loop {
            tokio::select! {
                r = &mut stdin, if !stdin_done => {
                    stdin_done = true;
                    if let Err(e) = r {
                        tracing::debug!("hijacked stream: client input ended with {e}");
                    }
                }
                r = &mut output => break r.map(|_| ()),
            }
        }
    };
    // The output has ended and the client has seen EOF. Closing a socket that still holds
    // unread client input makes the kernel report a reset to the client, which the docker
    // CLI prints as an error after a clean exit: read what the client still sends until it
    // closes its end (it does, once it has read the EOF), for a bounded while.
    let drain = async {
        let mut buf = [0u8; 4096];
        while let Ok(n) = client_r.read(&mut buf).await {
            if n == 0 {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(DRAIN_LIMIT, drain).await;
    result
}

/// How long a finished hijacked stream waits for the client to close its end.
const DRAIN_LIMIT: std::time::Duration = std::time::Duration::from_secs(2);

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use http_body_util::Empty;
    use hyper::service::service_fn;
    use hyper_util::rt::TokioIo;
    use std::io::{Read, Write};
    use tokio::io::AsyncReadExt;

    #[test]
    fn upgrade_headers() {
        let mut h = HeaderMap::new();
        assert!(!wants_upgrade(&h));
        h.insert(header::CONNECTION, "Upgrade".parse().unwrap());
        h.insert(header::UPGRADE, "tcp".parse().unwrap());
        assert!(wants_upgrade(&h));
        assert_eq!(
            content_type(false, ApiVersion::new(1, 43)),
            MULTIPLEXED_STREAM
        );
        assert_eq!(content_type(false, ApiVersion::new(1, 41)), RAW_STREAM);
        assert_eq!(content_type(true, ApiVersion::new(1, 43)), RAW_STREAM);
        let r = upgrade_response(true, ApiVersion::new(1, 43));
        assert_eq!(r.status(), StatusCode::SWITCHING_PROTOCOLS);
        assert_eq!(r.headers()[header::UPGRADE], "tcp");
    }

    /// Serves one hijacked request over a socket pair with a real hyper server connection,
    /// splicing it with `engine_ours`, and returns the client's upgraded connection.
    async fn hijacked_client(
        engine_ours: std::os::unix::net::UnixStream,
    ) -> TokioIo<hyper::upgrade::Upgraded> {
        let (server_io, client_io) = tokio::net::UnixStream::pair().unwrap();
        let engine = std::sync::Mutex::new(Some(engine_ours));
        let svc = service_fn(move |mut req: http::Request<hyper::body::Incoming>| {
            let engine = engine.lock().ok().and_then(|mut g| g.take());
            async move {
                let on_upgrade = hyper::upgrade::on(&mut req);
                let Some(engine) = engine else {
                    return Ok::<_, std::convert::Infallible>(Response::new(body::empty()));
                };
                tokio::spawn(async move {
                    let upgraded = on_upgrade.await.unwrap();
                    splice(TokioIo::new(upgraded), to_tokio(engine).unwrap())
                        .await
                        .unwrap();
                });
                Ok(upgrade_response(true, ApiVersion::new(1, 43)))
            }
        });
        tokio::spawn(async move {
            hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(server_io), svc)
                .with_upgrades()
                .await
                .unwrap();
        });
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake::<_, Empty<Bytes>>(TokioIo::new(client_io))
                .await
                .unwrap();
        tokio::spawn(async move {
            let _ = conn.with_upgrades().await;
        });
        let req = http::Request::post("/containers/x/attach?stream=1&stdin=1&stdout=1")
            .header(header::CONNECTION, "Upgrade")
            .header(header::UPGRADE, "tcp")
            .body(Empty::<Bytes>::new())
            .unwrap();
        let resp = sender.send_request(req).await.unwrap();
        assert_eq!(resp.status(), StatusCode::SWITCHING_PROTOCOLS);
        assert_eq!(resp.headers()[header::CONTENT_TYPE], RAW_STREAM);
        TokioIo::new(hyper::upgrade::on(resp).await.unwrap())
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap()
    }

    /// The engine side is a plain std socket pair driven by a thread, like a shim.
    #[test]
    fn half_close_reaches_the_engine_and_later_output_still_arrives() {
        let (engine_ours, mut engine_theirs) = std::os::unix::net::UnixStream::pair().unwrap();
        // The "container": reads stdin to EOF, then answers with what it got.
        let container = std::thread::spawn(move || {
            let mut stdin = Vec::new();
            engine_theirs.read_to_end(&mut stdin).unwrap();
            engine_theirs.write_all(b"got: ").unwrap();
            engine_theirs.write_all(&stdin).unwrap();
            engine_theirs.write_all(b" (after stdin closed)").unwrap();
            stdin
        });
        runtime().block_on(async move {
            let mut io = hijacked_client(engine_ours).await;
            io.write_all(b"hello").await.unwrap();
            // Half-close: the container must see EOF on stdin...
            io.shutdown().await.unwrap();
            // ...and its output after that must still arrive, then EOF.
            let mut out = Vec::new();
            io.read_to_end(&mut out).await.unwrap();
            assert_eq!(out, b"got: hello (after stdin closed)");
        });
        assert_eq!(container.join().unwrap(), b"hello");
    }

    #[test]
    fn the_end_of_output_ends_the_session_while_the_client_still_holds_stdin_open() {
        let (engine_ours, mut engine_theirs) = std::os::unix::net::UnixStream::pair().unwrap();
        let container = std::thread::spawn(move || {
            engine_theirs.write_all(b"bye").unwrap();
            // The container exits: its stream ends.
        });
        runtime().block_on(async move {
            let mut io = hijacked_client(engine_ours).await;
            let mut out = Vec::new();
            io.read_to_end(&mut out).await.unwrap();
            assert_eq!(out, b"bye");
        });
        container.join().unwrap();
    }
}
