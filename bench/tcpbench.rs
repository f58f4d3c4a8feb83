//! A TCP echo and sink server and its client, for bench/network.sh: std only, so that
//! `rustc -O -C target-feature=+crt-static bench/tcpbench.rs` makes one static binary that
//! runs on the host and, bind-mounted, inside a busybox container.
//!
//!   tcpbench serve PORT                 one thread per connection; the first byte picks
//!                                       `e` (echo every byte back) or `s` (read to EOF,
//!                                       then answer the byte count as 8 bytes)
//!   tcpbench rtt ADDR COUNT SIZE        one connection, COUNT round trips of SIZE bytes
//!   tcpbench connect ADDR COUNT         COUNT new connections, each with one round trip
//!   tcpbench stream ADDR MIB            MIB MiB to the sink, timed until its count is back
//!
//! The client prints one line of JSON: rtt and connect the median and 99th percentile in
//! microseconds, stream MiB/s.

use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::exit;
use std::time::{Duration, Instant};

fn serve(port: u16) -> io::Result<()> {
    let listener = TcpListener::bind(("0.0.0.0", port))?;
    for conn in listener.incoming() {
        let Ok(conn) = conn else { continue };
        std::thread::spawn(move || {
            let _ = handle(conn);
        });
    }
    Ok(())
}

fn handle(mut conn: TcpStream) -> io::Result<()> {
    conn.set_nodelay(true)?;
    let mut mode = [0u8; 1];
    conn.read_exact(&mut mode)?;
    let mut buf = vec![0u8; 256 * 1024];
    match mode[0] {
        b'e' => loop {
            let n = conn.read(&mut buf)?;
            if n == 0 {
                return Ok(());
            }
            conn.write_all(&buf[..n])?;
        },
        b's' => {
            let mut total: u64 = 0;
            loop {
                let n = conn.read(&mut buf)?;
                if n == 0 {
                    break;
                }
                total += n as u64;
            }
            conn.write_all(&total.to_be_bytes())
        }
        other => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("unknown mode byte {other:#x}"),
        )),
    }
}

fn connect(addr: &str) -> io::Result<TcpStream> {
    let s = TcpStream::connect(addr)?;
    s.set_nodelay(true)?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    Ok(s)
}

/// (median, p99) in microseconds.
fn percentiles(mut v: Vec<Duration>) -> (f64, f64) {
    v.sort();
    let at = |q: f64| {
        let i = ((v.len() as f64 - 1.0) * q).round() as usize;
        v[i].as_secs_f64() * 1e6
    };
    (at(0.5), at(0.99))
}

fn round_trip(s: &mut TcpStream, msg: &[u8], back: &mut [u8]) -> io::Result<()> {
    s.write_all(msg)?;
    s.read_exact(back)?;
    if back != msg {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "the echo differs from what was sent",
        ));
    }
    Ok(())
}

fn rtt(addr: &str, count: usize, size: usize) -> io::Result<()> {
    let mut s = connect(addr)?;
    s.write_all(b"e")?;
    let msg: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
    let mut back = vec![0u8; size];
    // Warm the path (ARP, conntrack, the proxy's buffers) before timing.
    for _ in 0..count.min(100) {
        round_trip(&mut s, &msg, &mut back)?;
    }
    let mut times = Vec::with_capacity(count);
    for _ in 0..count {
        let t = Instant::now();
        round_trip(&mut s, &msg, &mut back)?;
        times.push(t.elapsed());
    }
    let (p50, p99) = percentiles(times);
    println!("{{\"median_us\": {p50:.2}, \"p99_us\": {p99:.2}}}");
    Ok(())
}

fn connects(addr: &str, count: usize) -> io::Result<()> {
    let mut times = Vec::with_capacity(count);
    let mut back = [0u8; 1];
    for _ in 0..count {
        let t = Instant::now();
        let mut s = connect(addr)?;
        s.write_all(b"e")?;
        round_trip(&mut s, b"x", &mut back)?;
        times.push(t.elapsed());
    }
    let (p50, p99) = percentiles(times);
    println!("{{\"median_us\": {p50:.2}, \"p99_us\": {p99:.2}}}");
    Ok(())
}

fn stream(addr: &str, mib: u64) -> io::Result<()> {
    let mut s = connect(addr)?;
    let chunk = vec![0x5au8; 256 * 1024];
    let total = mib * 1024 * 1024;
    let t = Instant::now();
    s.write_all(b"s")?;
    let mut sent = 0u64;
    while sent < total {
        let n = chunk.len().min((total - sent) as usize);
        s.write_all(&chunk[..n])?;
        sent += n as u64;
    }
    s.shutdown(std::net::Shutdown::Write)?;
    let mut count = [0u8; 8];
    s.read_exact(&mut count)?;
    let secs = t.elapsed().as_secs_f64();
    let got = u64::from_be_bytes(count);
    if got != total {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("the sink counted {got} bytes of {total}"),
        ));
    }
    println!("{{\"mib_s\": {:.1}}}", mib as f64 / secs);
    Ok(())
}

fn usage() -> ! {
    eprintln!(
        "usage: tcpbench serve PORT | rtt ADDR COUNT SIZE | connect ADDR COUNT | stream ADDR MIB"
    );
    exit(2)
}

fn num<T: std::str::FromStr>(s: Option<&String>) -> T {
    s.and_then(|s| s.parse().ok()).unwrap_or_else(|| usage())
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let addr = || args.get(1).cloned().unwrap_or_else(|| usage());
    let r = match args.first().map(String::as_str) {
        Some("serve") => serve(num(args.get(1))),
        Some("rtt") => rtt(&addr(), num(args.get(2)), num(args.get(3))),
        Some("connect") => connects(&addr(), num(args.get(2))),
        Some("stream") => stream(&addr(), num(args.get(2))),
        _ => usage(),
    };
    if let Err(e) = r {
        eprintln!("tcpbench: {e}");
        exit(1);
    }
}
