//! The local end of attach and exec: the hijacked stream pumped to and from our stdio (frames
//! demultiplexed without a TTY), the terminal in raw mode while a TTY is attached, SIGWINCH
//! forwarded as resizes and the other signals as kills.

use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd};
use std::thread::{self, JoinHandle};

use berth_api::client::Upgraded;
use berth_api::stream::{FrameReader, StreamType};
use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use nix::sys::termios::{self, SetArg, Termios};

/// The local terminal in raw mode; restored when dropped.
pub struct RawTerminal {
    saved: Termios,
}

impl RawTerminal {
    /// Puts stdin's terminal in raw mode, if stdin is one.
    pub fn enter() -> Option<RawTerminal> {
        let stdin = io::stdin();
        let saved = termios::tcgetattr(stdin.as_fd()).ok()?;
        let mut raw = saved.clone();
        // moby/term's MakeRaw, which the docker CLI uses: no echo, no line editing, no
        // signals from keys, no output processing (the container's tty does its own).
        termios::cfmakeraw(&mut raw);
        termios::tcsetattr(stdin.as_fd(), SetArg::TCSANOW, &raw).ok()?;
        Some(RawTerminal { saved })
    }
}

impl Drop for RawTerminal {
    fn drop(&mut self) {
        let _ = termios::tcsetattr(io::stdin().as_fd(), SetArg::TCSANOW, &self.saved);
    }
}

/// Rows and columns of the terminal on stdout (else stdin), if any.
pub fn terminal_size() -> Option<(u16, u16)> {
    for fd in [io::stdout().as_raw_fd(), io::stdin().as_raw_fd()] {
        let mut ws = libc::winsize {
            ws_row: 0,
            ws_col: 0,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: TIOCGWINSZ writes one winsize into the struct we own; fd is a valid
        // descriptor of this process (it fails harmlessly when it is not a terminal).
        let r = unsafe { libc::ioctl(fd, libc::TIOCGWINSZ, &mut ws) };
        if r == 0 && ws.ws_row > 0 && ws.ws_col > 0 {
            return Some((ws.ws_row, ws.ws_col));
        }
    }
    None
}

/// What a signal thread does with what it receives.
pub enum SignalAction {
    /// The terminal was resized.
    Resize,
    /// A signal to forward to the container (by name, `SIGINT`).
    Forward(&'static str),
}

/// Signals forwarded to the container when no TTY is attached (docker's `--sig-proxy`).
const PROXIED: [Signal; 6] = [
    Signal::SIGINT,
    Signal::SIGTERM,
    Signal::SIGQUIT,
    Signal::SIGHUP,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
];

/// Blocks SIGWINCH (and, when `proxy`, the proxied signals) in this thread, and so in the
/// threads it starts later, and handles them on a thread of their own with `f`.
pub fn handle_signals(proxy: bool, f: impl Fn(SignalAction) + Send + 'static) {
    let mut set = SigSet::empty();
    set.add(Signal::SIGWINCH);
    if proxy {
        for s in PROXIED {
            set.add(s);
        }
    }
    if nix::sys::signal::pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&set), None).is_err() {
        return;
    }
    thread::spawn(move || loop {
        match set.wait() {
            Ok(Signal::SIGWINCH) => f(SignalAction::Resize),
            Ok(s) => f(SignalAction::Forward(s.as_str())),
            Err(_) => return,
        }
    });
}

/// Copies the output of a hijacked stream to stdout and stderr (frames when `tty` is false,
/// raw bytes otherwise) and, when `stdin` is true, our stdin to it on another thread, half-
/// closing it at EOF. Returns when the output ends.
pub fn pump(up: Upgraded, tty: bool, stdin: bool) -> io::Result<()> {
    let (reader, mut writer) = up.split();
    if stdin {
        // Never joined: it may sit in a read of the terminal when the container is gone.
        let _: JoinHandle<()> = thread::spawn(move || {
            let mut input = io::stdin().lock();
            let mut buf = [0u8; 32 * 1024];
            loop {
                match input.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => {
                        if writer.write_all(&buf[..n]).is_err() || writer.flush().is_err() {
                            return;
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(_) => break,
                }
            }
            let _ = writer.close_write();
        });
    } else {
        // Only our duplicate of the socket closes: the stream stays open both ways.
        drop(writer);
    }
    copy_output(reader, tty)
}

/// The output half: raw to stdout, or demultiplexed frames.
pub fn copy_output(mut reader: impl Read, tty: bool) -> io::Result<()> {
    let stdout = io::stdout();
    let stderr = io::stderr();
    if tty {
        let mut buf = [0u8; 32 * 1024];
        loop {
            let n = match reader.read(&mut buf) {
                Ok(0) => return Ok(()),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::ConnectionReset => return Ok(()),
                Err(e) => return Err(e),
            };
            let mut out = stdout.lock();
            out.write_all(&buf[..n])?;
            out.flush()?;
        }
    }
    let mut frames = FrameReader::new(reader);
    loop {
        let frame = match frames.next_frame() {
            Ok(Some(f)) => f,
            Ok(None) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => return Ok(()),
            Err(e) => return Err(e),
        };
        match frame {
            (StreamType::Stderr, data) => {
                let mut err = stderr.lock();
                err.write_all(&data)?;
                err.flush()?;
            }
            (StreamType::SystemErr, data) => {
                let text = String::from_utf8_lossy(&data);
                eprintln!("berth: {}", text.trim_end());
            }
            (_, data) => {
                let mut out = stdout.lock();
                out.write_all(&data)?;
                out.flush()?;
            }
        }
    }
}
