//! Response and request bodies: a boxed body type, a channel-fed streaming body (for logs,
//! events, stats, wait, save), and bridges between async bodies and the engine's blocking
//! `Read`/`Write` ends.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::{combinators::BoxBody, BodyExt, Empty, Full};
use hyper::body::{Body as HttpBody, Frame, Incoming};
use tokio::sync::mpsc;

/// Every response body.
pub type Body = BoxBody<Bytes, io::Error>;

pub fn empty() -> Body {
    Empty::<Bytes>::new()
        .map_err(|never| match never {})
        .boxed()
}

pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed()
}

/// A body fed through a channel; an `Err` item aborts the response (the client sees a
/// truncated stream rather than a silently short one).
pub struct ChannelBody {
    first: Option<Bytes>,
    rx: mpsc::Receiver<io::Result<Bytes>>,
}

impl ChannelBody {
    /// A body that sends `first`, then what arrives on `rx`.
    pub fn boxed(first: Option<Bytes>, rx: mpsc::Receiver<io::Result<Bytes>>) -> Body {
        ChannelBody { first, rx }.boxed()
    }
}

impl HttpBody for ChannelBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        if let Some(first) = self.first.take() {
            return Poll::Ready(Some(Ok(Frame::data(first))));
        }
        match self.rx.poll_recv(cx) {
            Poll::Ready(Some(Ok(b))) => Poll::Ready(Some(Ok(Frame::data(b)))),
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }
}

/// A streaming body and the sender that feeds it.
pub fn channel(capacity: usize) -> (mpsc::Sender<io::Result<Bytes>>, Body) {
    let (tx, rx) = mpsc::channel(capacity);
    (tx, ChannelBody::boxed(None, rx))
}

/// A blocking `Write` that feeds a channel (run on a blocking thread): the engine writes
/// `image save` or a tar into it. Fails with `BrokenPipe` once the client is gone.
pub struct ChannelWriter {
    tx: mpsc::Sender<io::Result<Bytes>>,
    written: bool,
}

impl ChannelWriter {
    pub fn new(tx: mpsc::Sender<io::Result<Bytes>>) -> ChannelWriter {
        ChannelWriter { tx, written: false }
    }

    /// Whether anything was written (after which an error can only abort the body).
    pub fn written(&self) -> bool {
        self.written
    }

    /// Aborts the body with an error.
    pub fn fail(&self, message: String) {
        let _ = self.tx.blocking_send(Err(io::Error::other(message)));
    }
}

impl io::Write for ChannelWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        self.tx
            .blocking_send(Ok(Bytes::copy_from_slice(buf)))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the client went away"))?;
        self.written = true;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A blocking `Read` over a request body that an async task pumps into a channel: the engine
/// reads `image load`, import and archive uploads from it.
pub struct ChannelReader {
    rx: mpsc::Receiver<io::Result<Bytes>>,
    current: Bytes,
}

impl io::Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.current.is_empty() {
            match self.rx.blocking_recv() {
                Some(Ok(b)) => self.current = b,
                Some(Err(e)) => return Err(e),
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current[..n]);
        let _ = self.current.split_to(n);
        Ok(n)
    }
}

/// Starts pumping `body` into a [`ChannelReader`] for a blocking consumer.
pub fn reader(mut body: Incoming) -> ChannelReader {
    let (tx, rx) = mpsc::channel::<io::Result<Bytes>>(16);
    tokio::spawn(async move {
        loop {
            match body.frame().await {
                None => break,
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        if tx.send(Ok(data)).await.is_err() {
                            break;
                        }
                    }
                }
                Some(Err(e)) => {
                    let _ = tx
                        .send(Err(io::Error::other(format!(
                            "reading the request body: {e}"
                        ))))
                        .await;
                    break;
                }
            }
        }
    });
    ChannelReader {
        rx,
        current: Bytes::new(),
    }
}

/// Reads a whole (small, JSON) request body, refusing more than `limit` bytes.
pub async fn collect(body: Incoming, limit: usize) -> Result<Bytes, crate::ApiError> {
    let limited = http_body_util::Limited::new(body, limit);
    match limited.collect().await {
        Ok(c) => Ok(c.to_bytes()),
        Err(e) => Err(crate::ApiError::bad_request(format!(
            "reading the request body: {e}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    #[test]
    fn writer_and_reader_bridge_threads() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let (tx, rx) = mpsc::channel(4);
        let t = std::thread::spawn(move || {
            let mut w = ChannelWriter::new(tx);
            w.write_all(b"hello ").unwrap();
            w.write_all(b"world").unwrap();
        });
        let mut r = ChannelReader {
            rx,
            current: Bytes::new(),
        };
        let mut s = String::new();
        r.read_to_string(&mut s).unwrap();
        t.join().unwrap();
        assert_eq!(s, "hello world");
        drop(rt);

        let (tx, rx) = mpsc::channel::<io::Result<Bytes>>(1);
        drop(rx);
        let mut w = ChannelWriter::new(tx);
        assert_eq!(w.write(b"x").unwrap_err().kind(), io::ErrorKind::BrokenPipe);
    }
}
