//! Docker's stdio stream framing and the json-file log line.
//!
//! Without a TTY, attach, exec and logs multiplex stdout and stderr on one connection as
//! frames: an 8-byte header `[type, 0, 0, 0, size as big-endian u32]` followed by `size`
//! bytes, type 0 stdin, 1 stdout, 2 stderr (and 3, "systemerr", an error from the daemon
//! in the middle of a stream). With a TTY the bytes are raw and unframed.

use std::io::{self, Read};

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// The size of a frame header.
pub const HEADER_LEN: usize = 8;

/// Content type of a hijacked stream up to API 1.41 (and of TTY streams).
pub const RAW_STREAM: &str = "application/vnd.docker.raw-stream";
/// Content type of framed stdout/stderr since API 1.42.
pub const MULTIPLEXED_STREAM: &str = "application/vnd.docker.multiplexed-stream";

/// Which stream a frame belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum StreamType {
    Stdin = 0,
    Stdout = 1,
    Stderr = 2,
    /// An error the daemon reports inside the stream.
    SystemErr = 3,
}

impl StreamType {
    pub fn from_byte(b: u8) -> Option<StreamType> {
        match b {
            0 => Some(StreamType::Stdin),
            1 => Some(StreamType::Stdout),
            2 => Some(StreamType::Stderr),
            3 => Some(StreamType::SystemErr),
            _ => None,
        }
    }

    /// The name the json-file log uses: `stdout` or `stderr`.
    pub fn name(self) -> &'static str {
        match self {
            StreamType::Stdin => "stdin",
            StreamType::Stdout => "stdout",
            StreamType::Stderr => "stderr",
            StreamType::SystemErr => "systemerr",
        }
    }
}

/// A bad frame header.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum StreamError {
    #[error("bad stream frame header {header:02x?}: unknown stream type {kind}")]
    UnknownStream { kind: u8, header: [u8; HEADER_LEN] },
    #[error("stream ended inside a frame ({have} of {want} bytes)")]
    Truncated { have: usize, want: usize },
}

impl From<StreamError> for io::Error {
    fn from(e: StreamError) -> io::Error {
        io::Error::new(io::ErrorKind::InvalidData, e)
    }
}

/// The header of a frame of `len` bytes on stream `kind`.
pub fn frame_header(kind: StreamType, len: u32) -> [u8; HEADER_LEN] {
    let n = len.to_be_bytes();
    [kind as u8, 0, 0, 0, n[0], n[1], n[2], n[3]]
}

/// `data` as frames of stream `kind`: one frame, or several if it exceeds `u32::MAX`
/// bytes. Empty data gives no frame (a zero-length frame means nothing to a reader).
pub fn mux_frame(kind: StreamType, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + HEADER_LEN);
    for chunk in data.chunks(u32::MAX as usize) {
        out.extend_from_slice(&frame_header(kind, chunk.len() as u32));
        out.extend_from_slice(chunk);
    }
    out
}

/// Turns a byte stream, fed in pieces of any size, back into frames.
#[derive(Debug, Default)]
pub struct Demuxer {
    buf: Vec<u8>,
    /// Start of unconsumed data in `buf` (compacted lazily).
    pos: usize,
}

impl Demuxer {
    pub fn new() -> Demuxer {
        Demuxer::default()
    }

    /// Appends bytes read from the stream.
    pub fn push(&mut self, bytes: &[u8]) {
        if self.pos > 0 && self.pos == self.buf.len() {
            self.buf.clear();
            self.pos = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// The next complete frame, or `None` until more bytes arrive.
    pub fn next_frame(&mut self) -> Result<Option<(StreamType, Vec<u8>)>, StreamError> {
        let avail = &self.buf[self.pos..];
        if avail.len() < HEADER_LEN {
            return Ok(None);
        }
        let mut header = [0u8; HEADER_LEN];
        header.copy_from_slice(&avail[..HEADER_LEN]);
        let kind = StreamType::from_byte(header[0]).ok_or(StreamError::UnknownStream {
            kind: header[0],
            header,
        })?;
        let len = u32::from_be_bytes([header[4], header[5], header[6], header[7]]) as usize;
        if avail.len() < HEADER_LEN + len {
            return Ok(None);
        }
        let data = avail[HEADER_LEN..HEADER_LEN + len].to_vec();
        self.pos += HEADER_LEN + len;
        if self.pos > 64 * 1024 && self.pos * 2 > self.buf.len() {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        Ok(Some((kind, data)))
    }

    /// Bytes received but not yet part of a complete frame.
    pub fn pending(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// Call at end of stream: an error if a frame was cut short.
    pub fn finish(&self) -> Result<(), StreamError> {
        match self.pending() {
            0 => Ok(()),
            have => {
                let avail = &self.buf[self.pos..];
                let want = if have >= HEADER_LEN {
                    HEADER_LEN
                        + u32::from_be_bytes([avail[4], avail[5], avail[6], avail[7]]) as usize
                } else {
                    HEADER_LEN
                };
                Err(StreamError::Truncated { have, want })
            }
        }
    }
}

/// Reads frames from a reader: `while let Some((kind, data)) = r.next_frame()? {...}`.
pub struct FrameReader<R> {
    inner: R,
    demux: Demuxer,
    eof: bool,
}

impl<R: Read> FrameReader<R> {
    pub fn new(inner: R) -> FrameReader<R> {
        FrameReader {
            inner,
            demux: Demuxer::new(),
            eof: false,
        }
    }

    /// The next frame; `None` at a clean end of stream, an error if it ends mid-frame.
    pub fn next_frame(&mut self) -> io::Result<Option<(StreamType, Vec<u8>)>> {
        let mut buf = [0u8; 32 * 1024];
        loop {
            if let Some(frame) = self.demux.next_frame()? {
                return Ok(Some(frame));
            }
            if self.eof {
                self.demux.finish()?;
                return Ok(None);
            }
            match self.inner.read(&mut buf) {
                Ok(0) => self.eof = true,
                Ok(n) => self.demux.push(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Reads to the end, returning (stdout, stderr); stdin frames are dropped and a
    /// systemerr frame becomes an error.
    pub fn collect(mut self) -> io::Result<(Vec<u8>, Vec<u8>)> {
        let (mut out, mut err) = (Vec::new(), Vec::new());
        while let Some((kind, data)) = self.next_frame()? {
            match kind {
                StreamType::Stdout => out.extend_from_slice(&data),
                StreamType::Stderr => err.extend_from_slice(&data),
                StreamType::Stdin => {}
                StreamType::SystemErr => {
                    return Err(io::Error::other(
                        String::from_utf8_lossy(&data).into_owned(),
                    ))
                }
            }
        }
        Ok((out, err))
    }

    pub fn into_inner(self) -> R {
        self.inner
    }
}

/// One line of a json-file log: `{"log":"hello\n","stream":"stdout","time":"2024-...Z"}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct LogLine {
    /// The bytes written, including the newline (partial lines are split at 16 KiB).
    pub log: String,
    /// `stdout` or `stderr`.
    pub stream: String,
    /// RFC 3339 with nanoseconds, UTC.
    pub time: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attrs: Option<std::collections::BTreeMap<String, String>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames_of(bytes: &[u8], piece: usize) -> Vec<(StreamType, Vec<u8>)> {
        let mut d = Demuxer::new();
        let mut got = Vec::new();
        for chunk in bytes.chunks(piece) {
            d.push(chunk);
            while let Some(f) = d.next_frame().unwrap() {
                got.push(f);
            }
        }
        d.finish().unwrap();
        got
    }

    #[test]
    fn header_layout() {
        assert_eq!(
            mux_frame(StreamType::Stderr, b"err\n"),
            [2, 0, 0, 0, 0, 0, 0, 4, b'e', b'r', b'r', b'\n']
        );
        assert_eq!(
            frame_header(StreamType::Stdout, 0x0102_0304),
            [1, 0, 0, 0, 1, 2, 3, 4]
        );
        assert!(mux_frame(StreamType::Stdout, b"").is_empty());
    }

    #[test]
    fn round_trip_across_every_split() {
        let mut wire = mux_frame(StreamType::Stdout, b"hello\n");
        wire.extend(mux_frame(StreamType::Stderr, b"oops\n"));
        wire.extend(mux_frame(StreamType::Stdout, &vec![b'x'; 70_000]));
        wire.extend(mux_frame(StreamType::Stdin, b"in"));
        for piece in [1, 2, 3, 7, 8, 9, 13, 4096, wire.len()] {
            let got = frames_of(&wire, piece);
            assert_eq!(got.len(), 4, "piece size {piece}");
            assert_eq!(got[0], (StreamType::Stdout, b"hello\n".to_vec()));
            assert_eq!(got[1], (StreamType::Stderr, b"oops\n".to_vec()));
            assert_eq!(got[2].1.len(), 70_000);
            assert_eq!(got[3], (StreamType::Stdin, b"in".to_vec()));
        }
    }

    #[test]
    fn truncated_and_unknown() {
        let wire = mux_frame(StreamType::Stdout, b"hello");
        let mut d = Demuxer::new();
        d.push(&wire[..10]);
        assert_eq!(d.next_frame().unwrap(), None);
        assert_eq!(
            d.finish(),
            Err(StreamError::Truncated { have: 10, want: 13 })
        );

        let mut d = Demuxer::new();
        d.push(&[9, 0, 0, 0, 0, 0, 0, 1, b'x']);
        let err = d.next_frame().unwrap_err();
        assert!(err.to_string().contains("unknown stream type 9"), "{err}");
    }

    #[test]
    fn frame_reader_over_a_trickling_reader() {
        struct Trickle(Vec<u8>, usize);
        impl Read for Trickle {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                let n = (self.0.len() - self.1).min(3).min(buf.len());
                buf[..n].copy_from_slice(&self.0[self.1..self.1 + n]);
                self.1 += n;
                Ok(n)
            }
        }
        let mut wire = mux_frame(StreamType::Stdout, b"out\n");
        wire.extend(mux_frame(StreamType::Stderr, b"err\n"));
        let (out, err) = FrameReader::new(Trickle(wire.clone(), 0))
            .collect()
            .unwrap();
        assert_eq!(
            (out.as_slice(), err.as_slice()),
            (&b"out\n"[..], &b"err\n"[..])
        );

        wire.truncate(wire.len() - 1);
        assert!(FrameReader::new(Trickle(wire, 0)).collect().is_err());
        let mut sys = mux_frame(StreamType::SystemErr, b"boom");
        sys.splice(0..0, mux_frame(StreamType::Stdout, b"a"));
        let e = FrameReader::new(Trickle(sys, 0)).collect().unwrap_err();
        assert_eq!(e.to_string(), "boom");
    }

    #[test]
    fn json_file_log_line() {
        let line: LogLine = serde_json::from_str(
            r#"{"log":"hello\n","stream":"stdout","time":"2024-05-01T10:00:00.123456789Z"}"#,
        )
        .unwrap();
        assert_eq!(line.log, "hello\n");
        assert_eq!(line.stream, "stdout");
        assert_eq!(
            serde_json::to_string(&line).unwrap(),
            r#"{"log":"hello\n","stream":"stdout","time":"2024-05-01T10:00:00.123456789Z"}"#
        );
    }
}
