//! Which daemon `berth` talks to, the version it speaks, and starting berthd on the default
//! socket when nothing answers there.

use std::fs;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use berth_api::client::DEFAULT_HOST;
use berth_api::{Client, ClientError};

use crate::{client_message, Failure, Result};

/// Where the auto-started daemon writes its log.
const AUTOSTART_LOG: &str = "/run/berth/berthd.log";
/// How long to wait for an auto-started daemon to answer `/_ping`.
const AUTOSTART_WAIT: Duration = Duration::from_secs(10);

/// The daemon's address and whether it is the default one (the only one berth may start).
#[derive(Debug, Clone)]
pub struct HostChoice {
    pub host: String,
    pub is_default: bool,
}

/// `-H`, else `BERTH_HOST`, else `DOCKER_HOST`, else the default socket.
pub fn select_host(flag: Option<&str>) -> HostChoice {
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let host = flag
        .map(str::to_string)
        .or_else(|| env("BERTH_HOST"))
        .or_else(|| env("DOCKER_HOST"))
        .unwrap_or_else(|| DEFAULT_HOST.to_string());
    let is_default = host == DEFAULT_HOST || host == "unix://";
    let host = if host == "unix://" {
        DEFAULT_HOST.to_string()
    } else {
        host
    };
    HostChoice { host, is_default }
}

/// A client that has negotiated its API version with the daemon, starting berthd first when
/// the host is the default socket and nothing answers there.
pub fn connect(choice: &HostChoice) -> Result<Client> {
    let mut client = Client::new(&choice.host).map_err(|e| Failure::new(client_message(&e)))?;
    match client.negotiate() {
        Ok(_) => return Ok(client),
        Err(ClientError::Connect { source, .. }) if choice.is_default && absent(&source) => {}
        Err(ClientError::Connect { source, .. }) => {
            return Err(Failure::new(format!(
                "nothing answers on {} ({source}); is berthd running there?",
                choice.host
            )))
        }
        Err(e) => return Err(e.into()),
    }
    autostart(&choice.host)?;
    client.negotiate()?;
    Ok(client)
}

/// True when the error means no daemon listens (no socket, or a stale one).
fn absent(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused
    )
}

/// berthd beside this executable, else on PATH.
fn find_berthd() -> Option<PathBuf> {
    if let Some(dir) = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(Path::to_path_buf))
    {
        let p = dir.join("berthd");
        if p.is_file() {
            return Some(p);
        }
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join("berthd"))
        .find(|p| p.is_file())
}

/// Starts berthd detached (own session, stdio to its log) with its default data root and
/// exec root, and waits until it answers.
fn autostart(host: &str) -> Result<()> {
    let berthd = find_berthd().ok_or_else(|| {
        Failure::new(format!(
            "nothing answers on {host} and berthd is neither beside berth nor on PATH; \
             start the daemon or pass -H"
        ))
    })?;
    let log_path = Path::new(AUTOSTART_LOG);
    if let Some(dir) = log_path.parent() {
        fs::create_dir_all(dir)
            .map_err(|e| Failure::new(format!("create {}: {e}", dir.display())))?;
    }
    let mut log = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log_path)
        .map_err(|e| Failure::new(format!("open {}: {e}", log_path.display())))?;
    let start = log.seek(SeekFrom::End(0)).unwrap_or(0);
    let log2 = log
        .try_clone()
        .map_err(|e| Failure::new(format!("{}: {e}", log_path.display())))?;
    let mut cmd = Command::new(&berthd);
    cmd.arg("-H").arg(host);
    // The state root the daemonless berth used; the daemon's default otherwise.
    if let Some(root) = std::env::var_os("BERTH_ROOT").filter(|r| !r.is_empty()) {
        cmd.arg("--data-root").arg(root);
    }
    cmd.stdin(Stdio::null()).stdout(log).stderr(log2);
    // SAFETY: setsid is async-signal-safe and touches no memory of the parent; between fork
    // and exec it only makes the child the leader of a new session, detached from our terminal.
    unsafe {
        cmd.pre_exec(|| {
            if libc::setsid() < 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| Failure::new(format!("start {}: {e}", berthd.display())))?;
    let pid = child.id();
    let client = Client::new(host)
        .map_err(|e| Failure::new(client_message(&e)))?
        .with_timeout(Duration::from_secs(2));
    let deadline = Instant::now() + AUTOSTART_WAIT;
    loop {
        if client.ping().is_ok() {
            break;
        }
        if let Ok(Some(status)) = child.try_wait() {
            return Err(Failure::new(format!(
                "berthd exited at start ({status}); its log {}:\n{}",
                log_path.display(),
                log_since(log_path, start)
            )));
        }
        if Instant::now() > deadline {
            return Err(Failure::new(format!(
                "started berthd (pid {pid}) but it does not answer on {host} after {}s; \
                 see {}",
                AUTOSTART_WAIT.as_secs(),
                log_path.display()
            )));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    eprintln!(
        "berth: started berthd (pid {pid}), log in {}",
        log_path.display()
    );
    Ok(())
}

/// The log's text written since `start` (its last 4 KiB).
fn log_since(path: &Path, start: u64) -> String {
    let mut text = String::new();
    if let Ok(mut f) = fs::File::open(path) {
        let len = f.metadata().map(|m| m.len()).unwrap_or(0);
        let from = start.max(len.saturating_sub(4096));
        if f.seek(SeekFrom::Start(from)).is_ok() {
            let _ = f.read_to_string(&mut text);
        }
    }
    text.trim_end().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flag_wins_and_default_is_detected() {
        let c = select_host(Some("unix:///tmp/x.sock"));
        assert_eq!(c.host, "unix:///tmp/x.sock");
        assert!(!c.is_default);
        let c = select_host(Some(DEFAULT_HOST));
        assert!(c.is_default);
        let c = select_host(Some("unix://"));
        assert!(c.is_default);
        assert_eq!(c.host, DEFAULT_HOST);
    }
}
