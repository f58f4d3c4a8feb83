//! `berth run`: a bundle from the image (berth-engine), then `berth-runc run` in the foreground;
//! its exit status is ours, and the container's rootfs, snapshot and bundle are removed after.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use berth_engine::RunOptions;
use clap::Args;

use crate::image::Stores;
use crate::{Failure, Result};

/// Docker's status when the container could not be set up.
const EXIT_SETUP: u8 = 125;

#[derive(Args)]
#[command(disable_help_flag = true)]
pub struct RunArgs {
    /// Print help
    #[arg(long, action = clap::ArgAction::Help)]
    help: Option<bool>,
    /// Automatically remove the container when it exits (always so until berthd exists)
    #[arg(long)]
    rm: bool,
    /// Keep STDIN open
    #[arg(short = 'i', long)]
    interactive: bool,
    /// Allocate a pseudo-TTY
    #[arg(short = 't', long)]
    tty: bool,
    /// Set environment variables (KEY=VALUE, or KEY to take it from this environment)
    #[arg(short = 'e', long = "env", value_name = "KEY=VALUE")]
    env: Vec<String>,
    /// Working directory inside the container
    #[arg(short = 'w', long = "workdir")]
    workdir: Option<String>,
    /// Username or UID (format: <name|uid>[:<group|gid>])
    #[arg(short = 'u', long)]
    user: Option<String>,
    /// Overwrite the default ENTRYPOINT of the image
    #[arg(long)]
    entrypoint: Option<String>,
    /// Assign a name to the container
    #[arg(long)]
    name: Option<String>,
    /// Container host name
    #[arg(short = 'h', long)]
    hostname: Option<String>,
    /// The image to run
    image: String,
    /// The command and its arguments
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    command: Vec<String>,
}

/// A no-op handler: while berth-runc runs in the foreground, a terminal's SIGINT or a SIGTERM
/// goes to it (it forwards them to the container) and must not end berth before the cleanup.
/// A handler, unlike SIG_IGN, is reset to the default by exec, so berth-runc is not affected.
extern "C" fn on_signal(_: libc::c_int) {}

fn setup(message: impl std::fmt::Display) -> Failure {
    Failure {
        message: message.to_string(),
        code: EXIT_SETUP,
    }
}

pub fn run(root: &Path, a: RunArgs) -> Result<u8> {
    if !a.rm {
        eprintln!(
            "berth: note: containers are not kept after they exit until berthd exists (issue 4); \
             running as with --rm"
        );
    }
    let runc =
        find_runc().ok_or_else(|| setup("berth-runc not found next to berth nor on PATH"))?;
    let env = a
        .env
        .iter()
        .filter_map(|kv| {
            if kv.contains('=') {
                Some(kv.clone())
            } else {
                // `-e KEY`: the value from this environment, or nothing when unset.
                std::env::var(kv).ok().map(|v| format!("{kv}={v}"))
            }
        })
        .collect();
    let opts = RunOptions {
        cmd: a.command.clone(),
        entrypoint: a.entrypoint.clone().map(|e| vec![e]),
        env,
        workdir: a.workdir.clone(),
        user: a.user.clone(),
        hostname: a.hostname.clone(),
        terminal: a.tty,
        name: a.name.clone(),
    };
    if a.tty && !std::io::stdin().is_terminal() {
        return Err(setup("the input device is not a TTY"));
    }

    let stores = Stores::open(root).map_err(setup)?;
    let bundles = root.join("bundles");
    std::fs::create_dir_all(&bundles).map_err(|e| setup(format!("{}: {e}", bundles.display())))?;
    let dir = tempfile::Builder::new()
        .prefix("run-")
        .tempdir_in(&bundles)
        .map_err(|e| setup(format!("{}: {e}", bundles.display())))?;
    let mut bundle = berth_engine::create_bundle(
        &stores.images,
        &stores.snapshots,
        &a.image,
        &opts,
        dir.path(),
    )
    .map_err(|e| setup(Failure::from(e).message))?;

    let state_root = root.join("runc");
    let id = bundle.id().to_string();
    // SAFETY: installs a handler that does nothing (async-signal-safe) for three signals.
    unsafe {
        let mut act: libc::sigaction = std::mem::zeroed();
        act.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
        act.sa_flags = libc::SA_RESTART;
        for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGQUIT] {
            libc::sigaction(sig, &act, std::ptr::null_mut());
        }
    }
    let mut cmd = Command::new(&runc);
    cmd.arg("--root")
        .arg(&state_root)
        .arg("run")
        .arg("--bundle")
        .arg(bundle.dir())
        .arg(&id);
    if !a.interactive {
        cmd.stdin(Stdio::null());
    }
    let status = cmd.status();

    // Whatever happened, take the container down: runtime state, mounts, snapshot, bundle.
    let _ = Command::new(&runc)
        .arg("--root")
        .arg(&state_root)
        .args(["delete", "--force", &id])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    let cleanup = bundle.cleanup();
    drop(bundle);
    // Never remove a bundle whose rootfs may still be mounted: keep it for a manual look.
    let removed = match &cleanup {
        Ok(()) => dir.close(),
        Err(_) => {
            let _ = dir.keep();
            Ok(())
        }
    };

    let status = status.map_err(|e| setup(format!("run {}: {e}", runc.display())))?;
    if let Err(e) = cleanup {
        eprintln!(
            "berth: cleanup of container {id}: {}",
            Failure::from(e).message
        );
    }
    if let Err(e) = removed {
        eprintln!("berth: remove bundle of container {id}: {e}");
    }
    use std::os::unix::process::ExitStatusExt;
    Ok(match (status.code(), status.signal()) {
        (Some(code), _) => code as u8,
        (None, Some(sig)) => (128 + sig) as u8,
        _ => EXIT_SETUP,
    })
}

/// berth-runc next to this executable, else on PATH.
fn find_runc() -> Option<PathBuf> {
    if let Some(dir) = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(Path::to_path_buf))
    {
        let p = dir.join("berth-runc");
        if p.is_file() {
            return Some(p);
        }
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join("berth-runc"))
        .find(|p| p.is_file())
}
