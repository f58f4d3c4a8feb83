//! A blocking HTTP/1.1 client for the Docker Engine API over a Unix socket or TCP.
//!
//! Written by hand on `std::os::unix::net::UnixStream` and `std::net::TcpStream` rather than
//! on hyper: the `berth` CLI makes one or a few requests per run, so an async runtime, its
//! threads and its binary size would buy nothing, and starting fast matters (it is measured
//! against the docker CLI). What the Docker API needs from HTTP is small and all here:
//! request bodies with a length or chunked (image load/import and build contexts), response
//! bodies with a length, chunked or until close, `HEAD`, and the hijack of attach and exec
//! (`Connection: Upgrade`, `Upgrade: tcp`, `101 UPGRADED`, then raw bytes both ways, with
//! whatever the server sent right after its headers kept for the caller). One connection per
//! request, no pooling. TLS is not supported yet.
//!
//! ```no_run
//! # fn main() -> Result<(), berth_api::ClientError> {
//! use berth_api::{types::VersionResponse, Client};
//! let mut client = Client::new("unix:///run/berth/berth.sock")?;
//! client.negotiate()?; // ping, then speak min(ours, the server's) version
//! let v: VersionResponse = client.get("/version")?;
//! println!("{} {}", v.version, v.api_version);
//! # Ok(()) }
//! ```

use std::fmt::Write as _;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::marker::PhantomData;
use std::net::{Shutdown, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;
use thiserror::Error;

use crate::stream::FrameReader;
use crate::types::{ErrorResponse, PingInfo};
use crate::version::{self, ApiVersion};

/// Where `berth` looks for the daemon when neither `-H`, `BERTH_HOST` nor `DOCKER_HOST` says.
pub const DEFAULT_HOST: &str = "unix:///run/berth/berth.sock";
/// The port of `tcp://HOST` without one (Docker's unencrypted port).
pub const DEFAULT_TCP_PORT: u16 = 2375;

/// Longest response head (status line and headers) accepted.
const MAX_HEAD: usize = 64 * 1024;
/// Longest error body read for its message.
const MAX_ERROR_BODY: u64 = 1024 * 1024;
/// Longest line of a chunked body's framing.
const MAX_CHUNK_LINE: usize = 4096;

/// An error answer from the daemon: its status and `{"message": ...}`.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
#[error("daemon answered {status}: {message}")]
pub struct ApiError {
    pub status: u16,
    pub message: String,
}

/// Everything that can go wrong talking to the daemon.
#[derive(Debug, Error)]
pub enum ClientError {
    #[error("invalid host {host:?}: {reason}")]
    InvalidHost { host: String, reason: String },
    #[error("cannot connect to the daemon at {host}: {source}")]
    Connect { host: String, source: io::Error },
    #[error("{method} {path}: {source}")]
    Io {
        method: String,
        path: String,
        source: io::Error,
    },
    #[error("{method} {path}: malformed response: {reason}")]
    Protocol {
        method: String,
        path: String,
        reason: String,
    },
    #[error("{method} {path}: cannot encode the request body: {source}")]
    Encode {
        method: String,
        path: String,
        source: serde_json::Error,
    },
    #[error("{method} {path}: cannot decode the response as {what}: {source}")]
    Decode {
        method: String,
        path: String,
        what: &'static str,
        source: serde_json::Error,
    },
    #[error("{method} {path}: the daemon did not upgrade the connection (status {status})")]
    NotUpgraded {
        method: String,
        path: String,
        status: u16,
    },
    #[error("{method} {path}: {source}")]
    Api {
        method: String,
        path: String,
        source: ApiError,
    },
}

impl ClientError {
    /// The daemon's status code when this is an error answer (404 for no such container...).
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Api { source, .. } => Some(source.status),
            _ => None,
        }
    }

    /// The daemon's answer, if this is one.
    pub fn api_error(&self) -> Option<&ApiError> {
        match self {
            ClientError::Api { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// Where the daemon listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Host {
    Unix(PathBuf),
    /// `host:port`.
    Tcp(String),
}

impl Host {
    /// Parses `unix:///path` or `tcp://host[:port]`.
    pub fn parse(host: &str) -> Result<Host, ClientError> {
        let invalid = |reason: &str| ClientError::InvalidHost {
            host: host.to_string(),
            reason: reason.to_string(),
        };
        if let Some(path) = host.strip_prefix("unix://") {
            if path.is_empty() {
                return Err(invalid("no socket path"));
            }
            if !path.starts_with('/') {
                return Err(invalid("the socket path must be absolute"));
            }
            return Ok(Host::Unix(PathBuf::from(path)));
        }
        if let Some(addr) = host.strip_prefix("tcp://") {
            let addr = addr.trim_end_matches('/');
            if addr.contains('/') {
                return Err(invalid("a tcp address takes no path"));
            }
            let (name, port) = match addr.rsplit_once(':') {
                // `[::1]` alone has colons but no port.
                Some((n, p)) if !p.contains(']') => {
                    let port: u16 = p.parse().map_err(|_| invalid("bad port"))?;
                    (n, port)
                }
                _ => (addr, DEFAULT_TCP_PORT),
            };
            let name = if name.is_empty() { "127.0.0.1" } else { name };
            return Ok(Host::Tcp(format!("{name}:{port}")));
        }
        if host.starts_with("https://") || host.starts_with("ssh://") || host.starts_with("fd://") {
            return Err(invalid("not supported yet; use unix:// or tcp://"));
        }
        Err(invalid("expected unix:///path or tcp://host:port"))
    }

    fn connect(&self, timeout: Option<Duration>) -> io::Result<Conn> {
        let conn = match self {
            Host::Unix(path) => Conn::Unix(UnixStream::connect(path)?),
            Host::Tcp(addr) => {
                let s = TcpStream::connect(addr.as_str())?;
                s.set_nodelay(true)?;
                Conn::Tcp(s)
            }
        };
        conn.set_timeout(timeout)?;
        Ok(conn)
    }
}

impl std::fmt::Display for Host {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Host::Unix(p) => write!(f, "unix://{}", p.display()),
            Host::Tcp(a) => write!(f, "tcp://{a}"),
        }
    }
}

/// A connection: a Unix socket or TCP.
#[derive(Debug)]
pub enum Conn {
    Unix(UnixStream),
    Tcp(TcpStream),
}

impl Conn {
    pub fn try_clone(&self) -> io::Result<Conn> {
        Ok(match self {
            Conn::Unix(s) => Conn::Unix(s.try_clone()?),
            Conn::Tcp(s) => Conn::Tcp(s.try_clone()?),
        })
    }

    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        match self {
            Conn::Unix(s) => s.shutdown(how),
            Conn::Tcp(s) => s.shutdown(how),
        }
    }

    fn set_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        match self {
            Conn::Unix(s) => {
                s.set_read_timeout(t)?;
                s.set_write_timeout(t)
            }
            Conn::Tcp(s) => {
                s.set_read_timeout(t)?;
                s.set_write_timeout(t)
            }
        }
    }
}

impl Read for Conn {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Conn::Unix(s) => s.read(buf),
            Conn::Tcp(s) => s.read(buf),
        }
    }
}

impl Write for Conn {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Conn::Unix(s) => s.write(buf),
            Conn::Tcp(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Conn::Unix(s) => s.flush(),
            Conn::Tcp(s) => s.flush(),
        }
    }
}

/// A request body.
pub enum Body {
    Empty,
    /// Sent with `Content-Length`.
    Bytes(Vec<u8>),
    /// Sent chunked, read to its end.
    Reader(Box<dyn Read + Send>),
}

impl std::fmt::Debug for Body {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Body::Empty => f.write_str("Empty"),
            Body::Bytes(b) => write!(f, "Bytes({} bytes)", b.len()),
            Body::Reader(_) => f.write_str("Reader"),
        }
    }
}

/// A request: method, path with its query (without the version prefix), headers and body.
#[derive(Debug)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Body,
}

impl Request {
    pub fn new(method: &str, path: &str) -> Request {
        Request {
            method: method.to_string(),
            path: path.to_string(),
            headers: Vec::new(),
            body: Body::Empty,
        }
    }

    pub fn header(mut self, name: &str, value: &str) -> Request {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    /// A JSON body (`Content-Type: application/json`).
    pub fn json<B: Serialize + ?Sized>(self, body: &B) -> Result<Request, ClientError> {
        let bytes = serde_json::to_vec(body).map_err(|source| ClientError::Encode {
            method: self.method.clone(),
            path: self.path.clone(),
            source,
        })?;
        Ok(self.bytes("application/json", bytes))
    }

    pub fn bytes(mut self, content_type: &str, bytes: Vec<u8>) -> Request {
        self.headers
            .push(("Content-Type".into(), content_type.to_string()));
        self.body = Body::Bytes(bytes);
        self
    }

    /// A streamed body, sent with chunked transfer encoding (a tar for load, import, build).
    pub fn reader(mut self, content_type: &str, reader: impl Read + Send + 'static) -> Request {
        self.headers
            .push(("Content-Type".into(), content_type.to_string()));
        self.body = Body::Reader(Box::new(reader));
        self
    }
}

/// The daemon's client.
#[derive(Debug, Clone)]
pub struct Client {
    host: Host,
    version: Option<ApiVersion>,
    timeout: Option<Duration>,
    user_agent: String,
}

impl Client {
    /// A client for `unix:///path` or `tcp://host:port`. Paths are sent unversioned until
    /// [`Client::negotiate`] or [`Client::with_version`].
    pub fn new(host: &str) -> Result<Client, ClientError> {
        Ok(Client {
            host: Host::parse(host)?,
            version: None,
            timeout: None,
            user_agent: format!("berth/{}", env!("CARGO_PKG_VERSION")),
        })
    }

    /// `BERTH_HOST`, else `DOCKER_HOST`, else [`DEFAULT_HOST`].
    pub fn from_env() -> Result<Client, ClientError> {
        let host = ["BERTH_HOST", "DOCKER_HOST"]
            .iter()
            .filter_map(|k| std::env::var(k).ok())
            .find(|v| !v.is_empty())
            .unwrap_or_else(|| DEFAULT_HOST.to_string());
        Client::new(&host)
    }

    /// Prefixes every path with `/v{version}`.
    pub fn with_version(mut self, version: ApiVersion) -> Client {
        self.version = Some(version);
        self
    }

    /// A bound on connecting, and on each read and write of the typed calls (`get`, `post`,
    /// `delete`...); streams and upgrades are never bounded.
    pub fn with_timeout(mut self, timeout: Duration) -> Client {
        self.timeout = Some(timeout);
        self
    }

    pub fn host(&self) -> &Host {
        &self.host
    }

    pub fn version(&self) -> Option<ApiVersion> {
        self.version
    }

    /// Pings and from then on speaks min([`version::MAX_API`], the server's version).
    pub fn negotiate(&mut self) -> Result<PingInfo, ClientError> {
        let ping = self.ping()?;
        self.version = Some(version::negotiate(
            ApiVersion::max(),
            ping.api_version.as_deref(),
        ));
        Ok(ping)
    }

    /// `HEAD /_ping` (unversioned), falling back to `GET` as the docker CLI does.
    pub fn ping(&self) -> Result<PingInfo, ClientError> {
        let resp = match self.send(Request::new("HEAD", "/_ping"), self.timeout, false) {
            Ok(resp) => resp,
            Err(e) if e.status().is_some() => {
                self.send(Request::new("GET", "/_ping"), self.timeout, false)?
            }
            Err(e) => return Err(e),
        };
        let h = |name: &str| resp.header(name).map(str::to_string);
        Ok(PingInfo {
            api_version: h("Api-Version"),
            os_type: h("Ostype"),
            experimental: resp
                .header("Docker-Experimental")
                .is_some_and(|v| v.eq_ignore_ascii_case("true")),
            builder_version: h("Builder-Version"),
            swarm: h("Swarm"),
        })
    }

    /// `GET path` → JSON.
    pub fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        self.send(Request::new("GET", path), self.timeout, false)?
            .json()
    }

    /// `POST path` with a JSON body → JSON.
    pub fn post<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, ClientError> {
        self.send(Request::new("POST", path).json(body)?, self.timeout, false)?
            .json()
    }

    /// `POST path` without a body, ignoring the answer's body (start, stop, kill: 204, or
    /// 304 when already in that state).
    pub fn post_empty(&self, path: &str) -> Result<u16, ClientError> {
        let mut resp = self.send(Request::new("POST", path), self.timeout, false)?;
        resp.drain()?;
        Ok(resp.status)
    }

    /// `DELETE path`, ignoring the answer's body.
    pub fn delete(&self, path: &str) -> Result<u16, ClientError> {
        let mut resp = self.send(Request::new("DELETE", path), self.timeout, false)?;
        resp.drain()?;
        Ok(resp.status)
    }

    /// `DELETE path` → JSON (image removal).
    pub fn delete_json<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        self.send(Request::new("DELETE", path), self.timeout, false)?
            .json()
    }

    /// Sends `req` and returns once the answer's head is in: the body streams from the
    /// [`Response`] (JSON lines of events, logs, pull progress; frames of logs). Error
    /// answers are read and returned as [`ClientError::Api`].
    pub fn request(&self, req: Request) -> Result<Response, ClientError> {
        self.send(req, None, false)
    }

    /// Hijacks the connection for attach or exec start: sends `Connection: Upgrade` and
    /// `Upgrade: tcp`, expects `101 UPGRADED` (or a `200` from servers that do not upgrade
    /// but still go raw), and hands back the raw duplex stream.
    pub fn upgrade(&self, req: Request) -> Result<Upgraded, ClientError> {
        let req = req.header("Connection", "Upgrade").header("Upgrade", "tcp");
        let resp = self.send(req, None, true)?;
        if resp.status != 101 && resp.status != 200 {
            return Err(ClientError::NotUpgraded {
                method: resp.method,
                path: resp.path,
                status: resp.status,
            });
        }
        let reader = resp.body.into_reader();
        let writer = reader
            .get_ref()
            .try_clone()
            .map_err(|source| ClientError::Io {
                method: resp.method.clone(),
                path: resp.path.clone(),
                source,
            })?;
        Ok(Upgraded {
            status: resp.status,
            headers: resp.headers,
            reader,
            writer,
        })
    }

    fn send(
        &self,
        req: Request,
        timeout: Option<Duration>,
        upgrade: bool,
    ) -> Result<Response, ClientError> {
        let path = match self.version {
            Some(v) => format!("{}{}", v.prefix(), req.path),
            None => req.path.clone(),
        };
        let method = req.method.clone();
        let io_err = |source: io::Error| ClientError::Io {
            method: method.clone(),
            path: path.clone(),
            source,
        };
        let mut conn = self
            .host
            .connect(timeout)
            .map_err(|source| ClientError::Connect {
                host: self.host.to_string(),
                source,
            })?;

        let mut head = format!("{method} {path} HTTP/1.1\r\n");
        let host_header = match &self.host {
            Host::Unix(_) => "localhost",
            Host::Tcp(addr) => addr.as_str(),
        };
        let _ = write!(
            head,
            "Host: {host_header}\r\nUser-Agent: {}\r\n",
            self.user_agent
        );
        for (k, v) in &req.headers {
            let _ = write!(head, "{k}: {v}\r\n");
        }
        match &req.body {
            Body::Empty if matches!(method.as_str(), "POST" | "PUT") => {
                head.push_str("Content-Length: 0\r\n")
            }
            Body::Empty => {}
            Body::Bytes(b) => {
                let _ = write!(head, "Content-Length: {}\r\n", b.len());
            }
            Body::Reader(_) => head.push_str("Transfer-Encoding: chunked\r\n"),
        }
        head.push_str("\r\n");
        conn.write_all(head.as_bytes()).map_err(io_err)?;
        match req.body {
            Body::Empty => {}
            Body::Bytes(b) => conn.write_all(&b).map_err(io_err)?,
            Body::Reader(mut r) => write_chunked(&mut conn, &mut r).map_err(io_err)?,
        }
        conn.flush().map_err(io_err)?;

        let mut reader = BufReader::with_capacity(64 * 1024, conn);
        let (status, reason, headers) = read_head(&mut reader).map_err(|e| match e {
            HeadError::Io(source) => io_err(source),
            HeadError::Bad(reason) => ClientError::Protocol {
                method: method.clone(),
                path: path.clone(),
                reason,
            },
        })?;
        let header = |name: &str| {
            headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str())
        };
        let raw = upgrade && (status == 101 || status == 200);
        let framing = if raw {
            Framing::UntilEof
        } else if method == "HEAD" || status < 200 || status == 204 || status == 304 {
            Framing::Length(0)
        } else if header("Transfer-Encoding")
            .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"))
        {
            Framing::Chunked(ChunkState::Size)
        } else if let Some(len) = header("Content-Length") {
            Framing::Length(len.trim().parse().map_err(|_| ClientError::Protocol {
                method: method.clone(),
                path: path.clone(),
                reason: format!("bad Content-Length {len:?}"),
            })?)
        } else {
            Framing::UntilEof
        };
        let resp = Response {
            status,
            reason,
            headers,
            body: ResponseBody { reader, framing },
            method,
            path,
        };
        if !(200..300).contains(&status) && status != 304 && !raw {
            return Err(resp.into_error());
        }
        Ok(resp)
    }
}

fn write_chunked(conn: &mut Conn, r: &mut dyn Read) -> io::Result<()> {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match r.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        conn.write_all(format!("{n:x}\r\n").as_bytes())?;
        conn.write_all(&buf[..n])?;
        conn.write_all(b"\r\n")?;
    }
    conn.write_all(b"0\r\n\r\n")
}

enum HeadError {
    Io(io::Error),
    Bad(String),
}

type Head = (u16, String, Vec<(String, String)>);

fn read_head(r: &mut BufReader<Conn>) -> Result<Head, HeadError> {
    let mut total = 0usize;
    let mut line = Vec::new();
    let mut next_line = |r: &mut BufReader<Conn>| -> Result<String, HeadError> {
        line.clear();
        let n = r
            .by_ref()
            .take((MAX_HEAD - total) as u64 + 1)
            .read_until(b'\n', &mut line)
            .map_err(HeadError::Io)?;
        total += n;
        if n == 0 {
            return Err(HeadError::Bad(
                "connection closed before the response head".into(),
            ));
        }
        if total > MAX_HEAD || line.last() != Some(&b'\n') {
            return Err(HeadError::Bad("response head too long or cut short".into()));
        }
        Ok(String::from_utf8_lossy(&line)
            .trim_end_matches(['\r', '\n'])
            .to_string())
    };
    let status_line = next_line(r)?;
    let mut parts = status_line.splitn(3, ' ');
    let proto = parts.next().unwrap_or_default();
    if !proto.starts_with("HTTP/1.") {
        return Err(HeadError::Bad(format!("bad status line {status_line:?}")));
    }
    let status: u16 = parts
        .next()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| HeadError::Bad(format!("bad status line {status_line:?}")))?;
    let reason = parts.next().unwrap_or_default().to_string();
    let mut headers = Vec::new();
    loop {
        let l = next_line(r)?;
        if l.is_empty() {
            break;
        }
        let (k, v) = l
            .split_once(':')
            .ok_or_else(|| HeadError::Bad(format!("bad header line {l:?}")))?;
        headers.push((k.trim().to_string(), v.trim().to_string()));
    }
    Ok((status, reason, headers))
}

#[derive(Debug)]
enum ChunkState {
    /// Expecting a chunk-size line.
    Size,
    /// Inside a chunk, this many bytes left.
    Data(u64),
    /// After a chunk's data, its CRLF not read yet (read lazily, so that returning data
    /// never waits for more).
    Crlf,
    Done,
}

#[derive(Debug)]
enum Framing {
    Length(u64),
    Chunked(ChunkState),
    UntilEof,
}

/// A response body; reads stop at its end however it is framed.
#[derive(Debug)]
pub struct ResponseBody {
    reader: BufReader<Conn>,
    framing: Framing,
}

impl ResponseBody {
    fn into_reader(self) -> BufReader<Conn> {
        self.reader
    }

    fn chunk_line(&mut self) -> io::Result<String> {
        let mut line = Vec::new();
        let n = self
            .reader
            .by_ref()
            .take(MAX_CHUNK_LINE as u64)
            .read_until(b'\n', &mut line)?;
        if n == 0 || line.last() != Some(&b'\n') {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "chunked body cut short",
            ));
        }
        Ok(String::from_utf8_lossy(&line)
            .trim_end_matches(['\r', '\n'])
            .to_string())
    }
}

impl Read for ResponseBody {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            match self.framing {
                Framing::Length(0) => return Ok(0),
                Framing::Length(left) => {
                    let want = (buf.len() as u64).min(left) as usize;
                    let n = self.reader.read(&mut buf[..want])?;
                    if n == 0 {
                        return Err(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            format!("body cut short, {left} bytes missing"),
                        ));
                    }
                    self.framing = Framing::Length(left - n as u64);
                    return Ok(n);
                }
                Framing::UntilEof => return self.reader.read(buf),
                Framing::Chunked(ChunkState::Done) => return Ok(0),
                Framing::Chunked(ChunkState::Crlf) => {
                    let l = self.chunk_line()?;
                    if !l.is_empty() {
                        return Err(io::Error::new(
                            io::ErrorKind::InvalidData,
                            format!("expected CRLF after a chunk, got {l:?}"),
                        ));
                    }
                    self.framing = Framing::Chunked(ChunkState::Size);
                }
                Framing::Chunked(ChunkState::Size) => {
                    let l = self.chunk_line()?;
                    let hex = l.split(';').next().unwrap_or_default().trim();
                    let size = u64::from_str_radix(hex, 16).map_err(|_| {
                        io::Error::new(
                            io::ErrorKind::InvalidData,
                            format!("bad chunk size line {l:?}"),
                        )
                    })?;
                    if size == 0 {
                        // Trailers, up to the empty line.
                        while !self.chunk_line()?.is_empty() {}
                        self.framing = Framing::Chunked(ChunkState::Done);
                        return Ok(0);
                    }
                    self.framing = Framing::Chunked(ChunkState::Data(size));
                }
                Framing::Chunked(ChunkState::Data(left)) => {
                    let want = (buf.len() as u64).min(left) as usize;
                    let n = self.reader.read(&mut buf[..want])?;
                    if n == 0 {
                        return Err(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            "chunked body cut short inside a chunk",
                        ));
                    }
                    let left = left - n as u64;
                    self.framing = Framing::Chunked(if left == 0 {
                        ChunkState::Crlf
                    } else {
                        ChunkState::Data(left)
                    });
                    return Ok(n);
                }
            }
        }
    }
}

/// An answer whose body has not been read yet.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub reason: String,
    pub headers: Vec<(String, String)>,
    body: ResponseBody,
    method: String,
    path: String,
}

impl Response {
    /// A header's value (names compare case-insensitively).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn io_err(&self, source: io::Error) -> ClientError {
        ClientError::Io {
            method: self.method.clone(),
            path: self.path.clone(),
            source,
        }
    }

    /// The whole body.
    pub fn bytes(mut self) -> Result<Vec<u8>, ClientError> {
        let mut out = Vec::new();
        match self.body.read_to_end(&mut out) {
            Ok(_) => Ok(out),
            Err(e) => Err(self.io_err(e)),
        }
    }

    /// The body as JSON.
    pub fn json<T: DeserializeOwned>(self) -> Result<T, ClientError> {
        let (method, path) = (self.method.clone(), self.path.clone());
        let bytes = self.bytes()?;
        serde_json::from_slice(&bytes).map_err(|source| ClientError::Decode {
            method,
            path,
            what: std::any::type_name::<T>(),
            source,
        })
    }

    /// Reads and drops the body.
    pub fn drain(&mut self) -> Result<(), ClientError> {
        match io::copy(&mut self.body, &mut io::sink()) {
            Ok(_) => Ok(()),
            Err(e) => Err(self.io_err(e)),
        }
    }

    /// The body as a stream of JSON values, one per line (events, pull progress, build
    /// output); blank lines are skipped.
    pub fn json_lines<T: DeserializeOwned>(self) -> JsonLines<T> {
        JsonLines {
            method: self.method.clone(),
            path: self.path.clone(),
            reader: BufReader::new(self),
            line: Vec::new(),
            _t: PhantomData,
        }
    }

    /// The body as stdout/stderr frames (logs and attach without a TTY).
    pub fn frames(self) -> FrameReader<Response> {
        FrameReader::new(self)
    }

    fn into_error(mut self) -> ClientError {
        let mut bytes = Vec::new();
        let _ = (&mut self.body)
            .take(MAX_ERROR_BODY)
            .read_to_end(&mut bytes);
        let message = serde_json::from_slice::<ErrorResponse>(&bytes)
            .ok()
            .map(|e| e.message)
            .filter(|m| !m.is_empty())
            .unwrap_or_else(|| {
                let text = String::from_utf8_lossy(&bytes).trim().to_string();
                if text.is_empty() {
                    self.reason.clone()
                } else {
                    text
                }
            });
        ClientError::Api {
            method: self.method,
            path: self.path,
            source: ApiError {
                status: self.status,
                message,
            },
        }
    }
}

impl Read for Response {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.body.read(buf)
    }
}

/// JSON values read line by line from a streaming body.
pub struct JsonLines<T> {
    method: String,
    path: String,
    reader: BufReader<Response>,
    line: Vec<u8>,
    _t: PhantomData<T>,
}

impl<T: DeserializeOwned> Iterator for JsonLines<T> {
    type Item = Result<T, ClientError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            self.line.clear();
            match self.reader.read_until(b'\n', &mut self.line) {
                Ok(0) => return None,
                Ok(_) => {}
                Err(source) => {
                    return Some(Err(ClientError::Io {
                        method: self.method.clone(),
                        path: self.path.clone(),
                        source,
                    }))
                }
            }
            if self.line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            return Some(serde_json::from_slice(&self.line).map_err(|source| {
                ClientError::Decode {
                    method: self.method.clone(),
                    path: self.path.clone(),
                    what: std::any::type_name::<T>(),
                    source,
                }
            }));
        }
    }
}

/// A hijacked connection: raw bytes both ways after `101 UPGRADED`. Without a TTY the output
/// is framed ([`crate::stream::FrameReader`]); with one it is raw.
#[derive(Debug)]
pub struct Upgraded {
    /// 101, or 200 from a server that went raw without upgrading.
    pub status: u16,
    pub headers: Vec<(String, String)>,
    /// Keeps what the server sent right after its head.
    reader: BufReader<Conn>,
    writer: Conn,
}

impl Upgraded {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Ends our side (stdin EOF); the server keeps streaming output until the process exits.
    pub fn close_write(&self) -> io::Result<()> {
        self.writer.shutdown(Shutdown::Write)
    }

    /// Separate halves for a reader thread and a writer thread.
    pub fn split(self) -> (UpgradedReader, UpgradedWriter) {
        (UpgradedReader(self.reader), UpgradedWriter(self.writer))
    }
}

impl Read for Upgraded {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.reader.read(buf)
    }
}

impl Write for Upgraded {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.writer.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.writer.flush()
    }
}

/// The output half of an [`Upgraded`] stream.
#[derive(Debug)]
pub struct UpgradedReader(BufReader<Conn>);

impl Read for UpgradedReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf)
    }
}

/// The input half of an [`Upgraded`] stream.
#[derive(Debug)]
pub struct UpgradedWriter(Conn);

impl UpgradedWriter {
    /// Ends our side (stdin EOF).
    pub fn close_write(&self) -> io::Result<()> {
        self.0.shutdown(Shutdown::Write)
    }
}

impl Write for UpgradedWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

/// Percent-encodes a query value or path segment (RFC 3986 unreserved characters pass).
pub fn encode_component(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// `path?k=v&...` with the values encoded; pairs with an empty value are kept (`tag=`).
pub fn with_query(path: &str, pairs: &[(&str, &str)]) -> String {
    let mut out = path.to_string();
    for (i, (k, v)) in pairs.iter().enumerate() {
        out.push(if i == 0 { '?' } else { '&' });
        out.push_str(&encode_component(k));
        out.push('=');
        out.push_str(&encode_component(v));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixListener;
    use std::thread;

    #[test]
    fn host_parsing() {
        assert_eq!(
            Host::parse("unix:///run/berth/berth.sock").unwrap(),
            Host::Unix("/run/berth/berth.sock".into())
        );
        assert_eq!(
            Host::parse("tcp://10.0.0.1:2376").unwrap(),
            Host::Tcp("10.0.0.1:2376".into())
        );
        assert_eq!(
            Host::parse("tcp://example.com").unwrap(),
            Host::Tcp("example.com:2375".into())
        );
        assert_eq!(
            Host::parse("tcp://:4243/").unwrap(),
            Host::Tcp("127.0.0.1:4243".into())
        );
        assert_eq!(
            Host::parse("tcp://[::1]").unwrap(),
            Host::Tcp("[::1]:2375".into())
        );
        for bad in [
            "unix://",
            "unix://rel.sock",
            "tcp://h:x",
            "ssh://h",
            "/run/x.sock",
            "http://x",
        ] {
            let e = Host::parse(bad).unwrap_err();
            assert!(e.to_string().starts_with("invalid host"), "{bad}: {e}");
        }
    }

    #[test]
    fn query_encoding() {
        assert_eq!(
            with_query(
                "/containers/json",
                &[("all", "1"), ("filters", r#"{"name":{"x y":true}}"#)]
            ),
            "/containers/json?all=1&filters=%7B%22name%22%3A%7B%22x%20y%22%3Atrue%7D%7D"
        );
        assert_eq!(with_query("/x", &[]), "/x");
    }

    /// A one-shot server on a socket in a temp dir: reads a request head (and the body
    /// the test says to read), answers with `reply`, and returns what it read.
    fn serve(
        reply: &'static [u8],
        read_body: usize,
    ) -> (tempfile::TempDir, Client, thread::JoinHandle<Vec<u8>>) {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("s.sock");
        let listener = UnixListener::bind(&sock).unwrap();
        let t = thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut got = Vec::new();
            let mut b = [0u8; 1];
            while !got.ends_with(b"\r\n\r\n") {
                s.read_exact(&mut b).unwrap();
                got.push(b[0]);
            }
            let mut body = vec![0u8; read_body];
            s.read_exact(&mut body).unwrap();
            got.extend(body);
            // Dribble the reply to exercise partial reads.
            for piece in reply.chunks(5) {
                s.write_all(piece).unwrap();
                s.flush().unwrap();
            }
            got
        });
        let client = Client::new(&format!("unix://{}", sock.display())).unwrap();
        (dir, client, t)
    }

    #[test]
    fn chunked_json_and_request_head() {
        let (_d, client, t) = serve(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n\
              7\r\n{\"Id\":\r\na;ext=1\r\n\"abc123\"}\n\r\n0\r\nX-Trailer: 1\r\n\r\n",
            0,
        );
        let client = client.with_version(ApiVersion::new(1, 43));
        let r: crate::types::IdResponse = client.get("/exec/abc123/json").unwrap();
        assert_eq!(r.id, "abc123");
        let req = String::from_utf8(t.join().unwrap()).unwrap();
        assert!(
            req.starts_with("GET /v1.43/exec/abc123/json HTTP/1.1\r\n"),
            "{req}"
        );
        assert!(req.contains("\r\nHost: localhost\r\n"), "{req}");
    }

    #[test]
    fn error_bodies_become_api_errors() {
        let (_d, client, _t) = serve(
            b"HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\nContent-Length: 39\r\n\r\n{\"message\":\"No such container: nope\"}\n\n",
            0,
        );
        let e = client
            .get::<serde_json::Value>("/containers/nope/json")
            .unwrap_err();
        assert_eq!(e.status(), Some(404));
        assert_eq!(e.api_error().unwrap().message, "No such container: nope");
        assert_eq!(
            e.to_string(),
            "GET /containers/nope/json: daemon answered 404: No such container: nope"
        );
    }

    #[test]
    fn json_lines_stream() {
        let (_d, client, _t) = serve(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
              11\r\n{\"status\":\"a\"}\n\n\r\n\
              2\r\n\r\n\r\n\
              10\r\n{\"status\":\"b\"}\n\r\n0\r\n\r\n",
            0,
        );
        let resp = client.request(Request::new("GET", "/events")).unwrap();
        let got: Vec<crate::types::JsonMessage> =
            resp.json_lines().collect::<Result<_, _>>().unwrap();
        let statuses: Vec<_> = got.iter().map(|m| m.status.clone().unwrap()).collect();
        assert_eq!(statuses, ["a", "b"]);
    }

    #[test]
    fn chunked_request_body() {
        let body: &'static [u8] = b"hello world";
        // "b\r\nhello world\r\n0\r\n\r\n" is 21 bytes.
        let (_d, client, t) = serve(b"HTTP/1.1 204 No Content\r\n\r\n", 21);
        let resp = client
            .request(Request::new("POST", "/images/load").reader("application/x-tar", body))
            .unwrap();
        assert_eq!(resp.status, 204);
        let req = String::from_utf8(t.join().unwrap()).unwrap();
        assert!(req.contains("Transfer-Encoding: chunked\r\n"), "{req}");
        assert!(
            req.ends_with("\r\n\r\nb\r\nhello world\r\n0\r\n\r\n"),
            "{req:?}"
        );
    }

    #[test]
    fn upgrade_keeps_bytes_sent_with_the_head() {
        let (_d, client, t) = serve(
            b"HTTP/1.1 101 UPGRADED\r\nContent-Type: application/vnd.docker.raw-stream\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n\
              \x01\x00\x00\x00\x00\x00\x00\x03hi\n\x02\x00\x00\x00\x00\x00\x00\x04err\n",
            0,
        );
        let up = client
            .upgrade(Request::new(
                "POST",
                "/containers/x/attach?stream=1&stdout=1",
            ))
            .unwrap();
        assert_eq!(up.status, 101);
        assert_eq!(up.header("content-type"), Some(crate::stream::RAW_STREAM));
        let req = String::from_utf8(t.join().unwrap()).unwrap();
        assert!(
            req.contains("Connection: Upgrade\r\nUpgrade: tcp\r\n"),
            "{req}"
        );
        let (out, err) = FrameReader::new(up).collect().unwrap();
        assert_eq!(
            (out.as_slice(), err.as_slice()),
            (&b"hi\n"[..], &b"err\n"[..])
        );
    }

    #[test]
    fn connect_error_names_the_host() {
        let client = Client::new("unix:///nonexistent/berth.sock").unwrap();
        let e = client.ping().unwrap_err();
        assert!(
            e.to_string()
                .starts_with("cannot connect to the daemon at unix:///nonexistent/berth.sock"),
            "{e}"
        );
    }
}
