//! A tiny HTTP server and a userspace TCP proxy for bench/mesh.sh: std only, so that
//! `rustc -O -C target-feature=+crt-static bench/meshbench.rs` makes one static binary that
//! runs on a node and, bind-mounted, inside a busybox task container.
//!
//!   meshbench serve PORT                  HTTP/1.1, one thread per connection, keep-alive
//!                                         (or `Connection: close`); every request gets
//!                                         the same 200 with a short body, so the server
//!                                         costs little next to the path measured
//!   meshbench proxy LISTEN BACKEND...     a plain userspace TCP proxy: each connection to
//!                                         LISTEN (ADDR:PORT) goes to the next BACKEND in
//!                                         turn, two threads copying the two directions

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::process::exit;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

const BODY: &str = "meshbench says hello\n";

fn serve(port: u16) -> io::Result<()> {
    let listener = TcpListener::bind(("0.0.0.0", port))?;
    for conn in listener.incoming() {
        let Ok(conn) = conn else { continue };
        std::thread::spawn(move || {
            let _ = http(conn);
        });
    }
    Ok(())
}

/// Answers requests on one connection until the client closes it or asks to.
fn http(mut conn: TcpStream) -> io::Result<()> {
    conn.set_nodelay(true)?;
    let keep = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{BODY}",
        BODY.len()
    );
    let close = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{BODY}",
        BODY.len()
    );
    let mut buf = vec![0u8; 16 * 1024];
    let mut have = 0;
    loop {
        // Every complete request head in the buffer gets its answer (wrk pipelines none,
        // but a client may).
        while let Some(end) = find(&buf[..have], b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let closing = head.contains("\r\nconnection: close");
            conn.write_all(if closing { close.as_bytes() } else { keep.as_bytes() })?;
            if closing {
                return conn.shutdown(Shutdown::Write);
            }
            buf.copy_within(end + 4..have, 0);
            have -= end + 4;
        }
        if have == buf.len() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "request head too long",
            ));
        }
        let n = conn.read(&mut buf[have..])?;
        if n == 0 {
            return Ok(());
        }
        have += n;
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn proxy(listen: &str, backends: Vec<String>) -> io::Result<()> {
    let listener = TcpListener::bind(listen)?;
    let next = Arc::new(AtomicUsize::new(0));
    for conn in listener.incoming() {
        let Ok(client) = conn else { continue };
        let backend = backends[next.fetch_add(1, Ordering::Relaxed) % backends.len()].clone();
        std::thread::spawn(move || {
            let _ = splice(client, &backend);
        });
    }
    Ok(())
}

/// Copies both directions between `client` and a new connection to `backend`.
fn splice(client: TcpStream, backend: &str) -> io::Result<()> {
    let server = TcpStream::connect(backend)?;
    client.set_nodelay(true)?;
    server.set_nodelay(true)?;
    let (mut c2, mut s2) = (client.try_clone()?, server.try_clone()?);
    let up = std::thread::spawn(move || {
        let _ = io::copy(&mut c2, &mut s2);
        let _ = s2.shutdown(Shutdown::Write);
    });
    let (mut c, mut s) = (client, server);
    let _ = io::copy(&mut s, &mut c);
    let _ = c.shutdown(Shutdown::Write);
    let _ = up.join();
    Ok(())
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let r = match args.first().map(String::as_str) {
        Some("serve") if args.len() == 2 => match args[1].parse() {
            Ok(port) => serve(port),
            Err(_) => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("invalid port {:?}", args[1]),
            )),
        },
        Some("proxy") if args.len() >= 3 => proxy(&args[1], args[2..].to_vec()),
        _ => {
            eprintln!("usage: meshbench serve PORT | meshbench proxy LISTEN BACKEND...");
            exit(2);
        }
    };
    if let Err(e) = r {
        eprintln!("meshbench: {e}");
        exit(1);
    }
}
