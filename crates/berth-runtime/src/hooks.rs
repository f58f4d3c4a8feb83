//! OCI hooks: run each with the container state on stdin, its own env and args, and a timeout.

use std::io::Write;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use oci_spec::runtime::Hook;

use crate::error::{Result, RuntimeError};

/// Runs hooks in order; the first failure stops the rest and is returned.
pub fn run_all(hooks: &[Hook], state: &serde_json::Value) -> Result<()> {
    let input = serde_json::to_vec(state).map_err(|e| RuntimeError::Other(e.to_string()))?;
    for h in hooks {
        run(h, &input)?;
    }
    Ok(())
}

/// Runs hooks in order, reporting failures to `warn` and carrying on (poststart, poststop).
pub fn run_all_warn(
    hooks: &[Hook],
    state: &serde_json::Value,
    mut warn: impl FnMut(&RuntimeError),
) {
    let input = serde_json::to_vec(state).unwrap_or_default();
    for h in hooks {
        if let Err(e) = run(h, &input) {
            warn(&e);
        }
    }
}

fn run(h: &Hook, input: &[u8]) -> Result<()> {
    let err = |msg: String| RuntimeError::Hook {
        path: h.path().clone(),
        msg,
    };
    let mut cmd = Command::new(h.path());
    let args = h.args().clone().unwrap_or_default();
    if let Some((first, rest)) = args.split_first() {
        cmd.arg0(first);
        cmd.args(rest);
    }
    cmd.env_clear();
    for kv in h.env().iter().flatten() {
        if let Some((k, v)) = kv.split_once('=') {
            cmd.env(k, v);
        }
    }
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::inherit())
        .stderr(Stdio::inherit());
    let mut child = cmd.spawn().map_err(|e| err(format!("start: {e}")))?;
    if let Some(mut stdin) = child.stdin.take() {
        // A hook that does not read its stdin is fine: ignore EPIPE.
        let _ = stdin.write_all(input);
    }
    let deadline = h
        .timeout()
        .map(|t| Instant::now() + Duration::from_secs(t.max(1) as u64));
    let mut sleep = Duration::from_micros(200);
    loop {
        match child.try_wait() {
            Ok(Some(st)) => {
                return if st.success() {
                    Ok(())
                } else {
                    Err(err(format!("exited with {st}")))
                };
            }
            Ok(None) => {}
            Err(e) => return Err(err(format!("wait: {e}"))),
        }
        if let Some(d) = deadline {
            if Instant::now() >= d {
                let _ = child.kill();
                let _ = child.wait();
                return Err(err(format!(
                    "timed out after {}s",
                    h.timeout().unwrap_or_default()
                )));
            }
        }
        std::thread::sleep(sleep);
        sleep = (sleep * 2).min(Duration::from_millis(20));
    }
}
