//! The `berth-shim` binary: flags in, then `berth_shim::server::run`.

use std::path::PathBuf;

use clap::Parser;

/// One berth-shim per container: holds its stdio, writes its log, reaps it and answers a
/// control socket in the state directory. Daemonises unless --foreground.
#[derive(Parser, Debug)]
#[command(name = "berth-shim", version)]
struct Cli {
    /// Container id
    #[arg(long)]
    id: String,
    /// OCI bundle directory
    #[arg(long)]
    bundle: PathBuf,
    /// runc-compatible runtime binary
    #[arg(long)]
    runtime: PathBuf,
    /// The runtime's --root
    #[arg(long = "runtime-root")]
    runtime_root: PathBuf,
    /// Directory for shim.sock, shim.pid, json.log and exit.json
    #[arg(long = "state-dir")]
    state_dir: PathBuf,
    /// The container has a terminal
    #[arg(long)]
    tty: bool,
    /// Keep the container's stdin open for attach
    #[arg(long)]
    stdin: bool,
    /// Rotate the log past this many bytes (suffixes k, m, g)
    #[arg(long = "log-max-size", value_parser = parse_size)]
    log_max_size: Option<u64>,
    /// Number of log files kept, the current one included
    #[arg(long = "log-max-file", default_value_t = 1)]
    log_max_file: u32,
    /// Create only; start on a `start` request
    #[arg(long = "no-start")]
    no_start: bool,
    /// Do not daemonise
    #[arg(long)]
    foreground: bool,
    /// The runtime is Berth's own: run its create, start and delete without executing it
    #[arg(long = "builtin-runtime")]
    builtin_runtime: bool,
}

fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim().to_ascii_lowercase();
    let t = t.strip_suffix('b').unwrap_or(&t);
    let (num, mult) = match t.char_indices().last() {
        Some((i, 'k')) => (&t[..i], 1u64 << 10),
        Some((i, 'm')) => (&t[..i], 1 << 20),
        Some((i, 'g')) => (&t[..i], 1 << 30),
        _ => (t, 1),
    };
    num.parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(mult))
        .ok_or_else(|| format!("invalid size {s:?}"))
}

fn main() {
    berth_runtime::lean::lean_text();
    let cli = Cli::parse();
    if cli.builtin_runtime {
        // Started through a descriptor (/proc/self/fd/N), the process is named after its
        // number: keep the name ps and pgrep know.
        // SAFETY: PR_SET_NAME reads a NUL-terminated string that outlives the call.
        unsafe { libc::prctl(libc::PR_SET_NAME, c"berth-shim".as_ptr(), 0, 0, 0) };
        // This process forks into containers: it must not run from a writable binary.
        if let Err(e) = berth_runtime::safe_exe::ensure() {
            eprintln!("berth-shim: {e}");
            std::process::exit(1);
        }
    }
    let cfg = berth_shim::server::Config {
        id: cli.id,
        bundle: cli.bundle,
        runtime: cli.runtime,
        runtime_root: cli.runtime_root,
        state_dir: cli.state_dir,
        tty: cli.tty,
        stdin: cli.stdin,
        log_max_size: cli.log_max_size,
        log_max_file: cli.log_max_file.max(1),
        start: !cli.no_start,
        builtin: cli.builtin_runtime,
    };
    std::process::exit(berth_shim::server::run(cfg, cli.foreground));
}

#[cfg(test)]
mod tests {
    use super::parse_size;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1k"), Ok(1024));
        assert_eq!(parse_size("10m"), Ok(10 << 20));
        assert_eq!(parse_size("512"), Ok(512));
        assert!(parse_size("lots").is_err());
    }
}
