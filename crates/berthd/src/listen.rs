//! The daemon's files on the host: the pid file (refused when it names a live berthd) and
//! the Unix socket (a stale one replaced, a live one refused, mode 0660 with group `docker`
//! when that group exists, else root only).

use std::io::ErrorKind;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::Path;

use anyhow::{bail, Context, Result};

/// Whether `pid` is a live berthd: it exists, is not a zombie (a daemon just killed with
/// SIGKILL stays one until reaped) and is named `berthd` (a pid file left by a killed daemon
/// may name a pid the kernel has since given to another process).
fn alive(pid: i32) -> bool {
    if pid <= 0 {
        return false;
    }
    // SAFETY: kill with signal 0 sends nothing; it only checks that the pid exists.
    let r = unsafe { libc::kill(pid, 0) };
    if !(r == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)) {
        return false;
    }
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // `pid (comm) state ...`; comm may hold spaces and parentheses.
        Ok(stat) => match stat.rsplit_once(") ") {
            Some((head, tail)) => {
                let comm = head.split_once(" (").map(|(_, c)| c).unwrap_or("");
                !tail.starts_with('Z') && comm == "berthd"
            }
            None => true,
        },
        Err(_) => true,
    }
}

/// Writes our pid to `path`, refusing when it already names another live process.
pub fn write_pidfile(path: &Path) -> Result<()> {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            if let Ok(pid) = text.trim().parse::<i32>() {
                if pid != std::process::id() as i32 && alive(pid) {
                    bail!(
                        "pid file {} names a running process ({pid}): is another berthd running? use --pidfile for a second daemon",
                        path.display()
                    );
                }
            }
        }
        Err(e) if e.kind() == ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("reading pid file {}", path.display())),
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("creating the directory of {}", path.display()))?;
    }
    std::fs::write(path, format!("{}\n", std::process::id()))
        .with_context(|| format!("writing pid file {}", path.display()))
}

/// The gid of group `name` from /etc/group.
pub fn group_id(name: &str) -> Option<u32> {
    let text = std::fs::read_to_string("/etc/group").ok()?;
    text.lines().find_map(|line| {
        let mut parts = line.split(':');
        let n = parts.next()?;
        let _pw = parts.next()?;
        let gid = parts.next()?;
        (n == name).then(|| gid.parse().ok()).flatten()
    })
}

/// Binds the Unix socket at `path` (must run inside the tokio runtime).
pub fn bind_unix(path: &Path) -> Result<tokio::net::UnixListener> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) => {
            if !meta.file_type().is_socket() {
                bail!(
                    "{} exists and is not a socket; refusing to replace it",
                    path.display()
                );
            }
            if std::os::unix::net::UnixStream::connect(path).is_ok() {
                bail!(
                    "{} is in use by a running daemon; give this one another -H unix://PATH",
                    path.display()
                );
            }
            std::fs::remove_file(path)
                .with_context(|| format!("removing stale socket {}", path.display()))?;
        }
        Err(e) if e.kind() == ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("checking {}", path.display())),
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("creating the directory of {}", path.display()))?;
    }
    let listener = tokio::net::UnixListener::bind(path)
        .with_context(|| format!("binding {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))
        .with_context(|| format!("chmod 0660 {}", path.display()))?;
    if let Some(gid) = group_id("docker") {
        if let Err(e) = std::os::unix::fs::chown(path, None, Some(gid)) {
            tracing::warn!("chown {} to group docker: {e}", path.display());
        }
    }
    Ok(listener)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A process spawned by one test holds copies of the other's descriptors between its
    /// fork and exec, which would keep a dropped listening socket answering: the two tests
    /// run one at a time.
    static SPAWNS: std::sync::Mutex<()> = std::sync::Mutex::new(());

    #[test]
    fn pidfile_refuses_a_live_pid_and_replaces_a_dead_one() {
        let _one = SPAWNS.lock().unwrap_or_else(|p| p.into_inner());
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run/berthd.pid");
        write_pidfile(&path).unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap().trim(),
            std::process::id().to_string()
        );
        // Our own pid again is fine (a restart with the same pid).
        write_pidfile(&path).unwrap();
        // A live process named berthd holds it.
        let fake = dir.path().join("berthd");
        std::fs::copy("/bin/sleep", &fake).unwrap();
        let mut other = std::process::Command::new(&fake).arg("60").spawn().unwrap();
        std::fs::write(&path, format!("{}\n", other.id())).unwrap();
        let e = write_pidfile(&path).unwrap_err();
        assert!(e.to_string().contains("running process"), "{e}");
        // Killed but not reaped yet (a zombie): gone as far as the pid file goes.
        other.kill().unwrap();
        let zombie = std::path::PathBuf::from(format!("/proc/{}/stat", other.id()));
        while !std::fs::read_to_string(&zombie)
            .unwrap_or_default()
            .contains(") Z")
        {
            std::thread::yield_now();
        }
        write_pidfile(&path).unwrap();
        other.wait().unwrap();
        // pid 1 is alive but not a berthd: a pid reused since the file was written.
        std::fs::write(&path, "1\n").unwrap();
        write_pidfile(&path).unwrap();
        // A pid that cannot exist.
        std::fs::write(&path, "2147483000\n").unwrap();
        write_pidfile(&path).unwrap();
    }

    #[test]
    fn sockets_stale_live_and_not_sockets() {
        let _one = SPAWNS.lock().unwrap_or_else(|p| p.into_inner());
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("sub/berth.sock");
            let live = bind_unix(&path).unwrap();
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o660);
            let e = bind_unix(&path).unwrap_err();
            assert!(e.to_string().contains("in use"), "{e}");
            drop(live);
            // Stale now: replaced.
            let _again = bind_unix(&path).unwrap();
            let file = dir.path().join("plain");
            std::fs::write(&file, "x").unwrap();
            assert!(bind_unix(&file)
                .unwrap_err()
                .to_string()
                .contains("not a socket"));
        });
    }
}
