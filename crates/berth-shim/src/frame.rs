//! Docker's multiplexed stream framing: an 8-byte header `[type, 0, 0, 0, size (u32 BE)]`
//! before each chunk, type 1 for stdout and 2 for stderr (0 for stdin).

use std::io::{self, Read, Write};

pub const STDIN: u8 = 0;
pub const STDOUT: u8 = 1;
pub const STDERR: u8 = 2;

/// The header of a frame of `len` bytes on stream `kind`.
pub fn header(kind: u8, len: usize) -> [u8; 8] {
    let n = u32::try_from(len).unwrap_or(u32::MAX).to_be_bytes();
    [kind, 0, 0, 0, n[0], n[1], n[2], n[3]]
}

/// Writes `data` as frames (split so that no frame exceeds u32::MAX bytes) in one write each.
pub fn write_frame<W: Write>(w: &mut W, kind: u8, data: &[u8]) -> io::Result<()> {
    for chunk in data.chunks(u32::MAX as usize) {
        let mut buf = Vec::with_capacity(8 + chunk.len());
        buf.extend_from_slice(&header(kind, chunk.len()));
        buf.extend_from_slice(chunk);
        w.write_all(&buf)?;
    }
    Ok(())
}

/// Reads one frame; `None` at a clean end of stream (EOF before a header).
pub fn read_frame<R: Read>(r: &mut R) -> io::Result<Option<(u8, Vec<u8>)>> {
    let mut hdr = [0u8; 8];
    let mut got = 0;
    while got < 8 {
        match r.read(&mut hdr[got..]) {
            Ok(0) if got == 0 => return Ok(None),
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "stream ended inside a frame header",
                ))
            }
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    let len = u32::from_be_bytes([hdr[4], hdr[5], hdr[6], hdr[7]]) as usize;
    let mut data = vec![0u8; len];
    r.read_exact(&mut data)?;
    Ok(Some((hdr[0], data)))
}

/// Reads frames to the end of the stream, returning (stdout, stderr).
pub fn demux_all<R: Read>(r: &mut R) -> io::Result<(Vec<u8>, Vec<u8>)> {
    let (mut out, mut err) = (Vec::new(), Vec::new());
    while let Some((kind, data)) = read_frame(r)? {
        match kind {
            STDERR => err.extend_from_slice(&data),
            _ => out.extend_from_slice(&data),
        }
    }
    Ok((out, err))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let mut buf = Vec::new();
        write_frame(&mut buf, STDOUT, b"hello\n").unwrap();
        write_frame(&mut buf, STDERR, b"oops").unwrap();
        assert_eq!(&buf[..8], &[1, 0, 0, 0, 0, 0, 0, 6]);
        let mut r = &buf[..];
        assert_eq!(read_frame(&mut r).unwrap(), Some((1, b"hello\n".to_vec())));
        assert_eq!(read_frame(&mut r).unwrap(), Some((2, b"oops".to_vec())));
        assert_eq!(read_frame(&mut r).unwrap(), None);
    }

    #[test]
    fn truncated_header_is_an_error() {
        let mut r = &[1u8, 0, 0][..];
        assert!(read_frame(&mut r).is_err());
    }
}
