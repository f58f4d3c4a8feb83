//! The daemon's configuration: dockerd's flags, the JSON config file (`daemon.json` keys),
//! and their merge (flags win), with defaults and validation of hosts and TLS.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::Parser;
use serde::Deserialize;

pub const DEFAULT_SOCKET: &str = "/run/berth/berth.sock";
pub const DEFAULT_DATA_ROOT: &str = "/var/lib/berth";
pub const DEFAULT_EXEC_ROOT: &str = "/run/berth";
pub const DEFAULT_PIDFILE: &str = "/run/berth/berthd.pid";
pub const DEFAULT_CONFIG_FILE: &str = "/etc/berth/daemon.json";

/// `berthd` flags (dockerd's names).
#[derive(Debug, Default, Parser)]
#[command(
    name = "berthd",
    version,
    about = "The Berth engine daemon: the Docker Engine API over a Unix socket (or TCP with TLS)"
)]
pub struct Flags {
    /// Daemon socket(s) to listen on: unix://PATH or tcp://ADDR (tcp needs --tlsverify).
    #[arg(short = 'H', long = "host", value_name = "HOST")]
    pub hosts: Vec<String>,
    /// Root of persistent state (database, images, containers, volumes).
    #[arg(long, value_name = "DIR")]
    pub data_root: Option<PathBuf>,
    /// Root of the runtime's execution state.
    #[arg(long, value_name = "DIR")]
    pub exec_root: Option<PathBuf>,
    /// Path of the pid file.
    #[arg(short = 'p', long, value_name = "FILE")]
    pub pidfile: Option<PathBuf>,
    /// Logging level: debug, info, warn, error or fatal.
    #[arg(short = 'l', long, value_name = "LEVEL")]
    pub log_level: Option<String>,
    /// Daemon configuration file (JSON, daemon.json keys).
    #[arg(long, value_name = "FILE")]
    pub config_file: Option<PathBuf>,
    /// Enable debug logging.
    #[arg(short = 'D', long)]
    pub debug: bool,
    /// Use TLS and verify client certificates against --tlscacert.
    #[arg(long)]
    pub tlsverify: bool,
    /// Use TLS (implied by --tlsverify; Berth always verifies clients).
    #[arg(long)]
    pub tls: bool,
    /// CA certificate that client certificates must be signed by.
    #[arg(long, value_name = "FILE")]
    pub tlscacert: Option<PathBuf>,
    /// Server certificate.
    #[arg(long, value_name = "FILE")]
    pub tlscert: Option<PathBuf>,
    /// Server private key.
    #[arg(long, value_name = "FILE")]
    pub tlskey: Option<PathBuf>,
    /// The runc-compatible runtime (default: berth-runc beside berthd, else on PATH).
    #[arg(long, value_name = "PATH")]
    pub runtime: Option<PathBuf>,
    /// The shim binary (default: berth-shim beside berthd, else on PATH).
    #[arg(long, value_name = "PATH")]
    pub shim: Option<PathBuf>,
    /// The Linux bridge of the default `bridge` network (default berth0); `none`: no default
    /// bridge, containers get only a loopback unless given a network.
    #[arg(short = 'b', long, value_name = "NAME")]
    pub bridge: Option<String>,
    /// The default bridge's address and subnet, e.g. 172.17.0.1/16 (default: the first free
    /// one of Docker's pools).
    #[arg(long, value_name = "CIDR")]
    pub bip: Option<String>,
    /// A directory of CNI plugins (repeatable; default /usr/lib/cni then /opt/cni/bin).
    #[arg(long = "cni-plugin-dir", value_name = "DIR")]
    pub cni_plugin_dirs: Vec<PathBuf>,
    /// Serve Prometheus metrics on http://IP:PORT/metrics (off by default; no TLS, no
    /// authentication: prefer a loopback address).
    #[arg(long = "metrics-addr", value_name = "IP:PORT")]
    pub metrics_addr: Option<String>,
    /// Where a swarm made here keeps its state: `sqlite` (default; one manager) or
    /// `etcd://HOST:PORT[,HOST:PORT...][/PREFIX]` (managers that share it, one leading).
    #[arg(long = "store", value_name = "URL")]
    pub store: Option<String>,
}

/// The config file's keys (as in dockerd's daemon.json).
#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "kebab-case")]
pub struct FileConfig {
    pub hosts: Vec<String>,
    pub data_root: Option<PathBuf>,
    pub exec_root: Option<PathBuf>,
    pub pidfile: Option<PathBuf>,
    pub log_level: Option<String>,
    pub debug: bool,
    pub tls: bool,
    pub tlsverify: bool,
    pub tlscacert: Option<PathBuf>,
    pub tlscert: Option<PathBuf>,
    pub tlskey: Option<PathBuf>,
    pub runtime: Option<PathBuf>,
    pub shim: Option<PathBuf>,
    pub bridge: Option<String>,
    pub bip: Option<String>,
    pub cni_plugin_dirs: Vec<PathBuf>,
    pub metrics_addr: Option<String>,
    pub store: Option<String>,
    /// Keys Berth does not know; warned about.
    #[serde(flatten)]
    pub unknown: std::collections::BTreeMap<String, serde_json::Value>,
}

/// Where to listen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Host {
    Unix(PathBuf),
    Tcp(String),
}

/// The files TLS needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// The merged configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub hosts: Vec<Host>,
    pub data_root: PathBuf,
    pub exec_root: PathBuf,
    pub pidfile: PathBuf,
    /// A tracing filter level: `debug`, `info`, `warn`, `error`.
    pub log_level: String,
    pub tls: Option<TlsFiles>,
    pub runtime: PathBuf,
    pub shim: PathBuf,
    pub network: berth_engine::NetConfig,
    /// Where to serve Prometheus metrics, if anywhere.
    pub metrics_addr: Option<SocketAddr>,
    /// The swarm state's store.
    pub store: berth_cluster::StoreConfig,
    /// Unknown config-file keys, to warn about once logging is up.
    pub unknown_keys: Vec<String>,
}

/// `unix://PATH` (`unix://` alone: the default socket) or `tcp://ADDR`.
pub fn parse_host(s: &str) -> Result<Host> {
    let s = s.trim();
    if let Some(path) = s.strip_prefix("unix://") {
        if path.is_empty() {
            return Ok(Host::Unix(PathBuf::from(DEFAULT_SOCKET)));
        }
        if !path.starts_with('/') {
            bail!("invalid host {s:?}: the socket path must be absolute");
        }
        return Ok(Host::Unix(PathBuf::from(path)));
    }
    if let Some(addr) = s.strip_prefix("tcp://") {
        let addr = addr.trim_end_matches('/');
        if addr.is_empty() {
            bail!("invalid host {s:?}: no address");
        }
        let addr = if addr.starts_with(':') {
            format!("0.0.0.0{addr}")
        } else if !addr.contains(':') {
            format!("{addr}:2376")
        } else {
            addr.to_string()
        };
        return Ok(Host::Tcp(addr));
    }
    if s.starts_with('/') {
        return Ok(Host::Unix(PathBuf::from(s)));
    }
    bail!("invalid host {s:?}: use unix://PATH or tcp://ADDR")
}

/// `--metrics-addr`: an `IP:PORT` (`[IPv6]:PORT`); empty is off, as in dockerd.
pub fn parse_metrics_addr(s: &str) -> Result<Option<SocketAddr>> {
    let s = s.trim();
    if s.is_empty() {
        return Ok(None);
    }
    match s.parse::<SocketAddr>() {
        Ok(a) => Ok(Some(a)),
        Err(_) => bail!(
            "invalid --metrics-addr {s:?}: IP:PORT expected (e.g. 127.0.0.1:9323 or [::1]:9323)"
        ),
    }
}

/// Normalizes a log level (dockerd's `fatal` is tracing's `error`).
pub fn parse_log_level(s: &str) -> Result<String> {
    Ok(match s.trim().to_ascii_lowercase().as_str() {
        "debug" | "trace" => "debug".into(),
        "info" => "info".into(),
        "warn" | "warning" => "warn".into(),
        "error" | "fatal" | "panic" => "error".into(),
        other => bail!("invalid log level {other:?}: use debug, info, warn, error or fatal"),
    })
}

/// Reads the config file; a missing default file is no config.
pub fn read_file(path: &Path, explicit: bool) -> Result<FileConfig> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !explicit => {
            return Ok(FileConfig::default())
        }
        Err(e) => return Err(e).with_context(|| format!("reading config file {}", path.display())),
    };
    serde_json::from_str(&text).with_context(|| format!("parsing config file {}", path.display()))
}

/// `name` beside the running executable, else the first on PATH, else the bare name.
pub fn find_binary(name: &str) -> PathBuf {
    if let Some(dir) = std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(Path::to_path_buf))
    {
        let beside = dir.join(name);
        if beside.is_file() {
            return beside;
        }
    }
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            let candidate = dir.join(name);
            if candidate.is_file() {
                return candidate;
            }
        }
    }
    PathBuf::from(name)
}

/// Merges flags over the config file and checks the result.
pub fn merge(flags: Flags, file: FileConfig) -> Result<Config> {
    let raw_hosts = if flags.hosts.is_empty() {
        file.hosts
    } else {
        flags.hosts
    };
    let mut hosts = raw_hosts
        .iter()
        .map(|h| parse_host(h))
        .collect::<Result<Vec<_>>>()?;
    if hosts.is_empty() {
        hosts.push(Host::Unix(PathBuf::from(DEFAULT_SOCKET)));
    }
    let level = match (flags.log_level, flags.debug || file.debug, file.log_level) {
        (Some(l), _, _) => parse_log_level(&l)?,
        (None, true, _) => "debug".to_string(),
        (None, false, Some(l)) => parse_log_level(&l)?,
        (None, false, None) => "info".to_string(),
    };
    let tlsverify = flags.tlsverify || file.tlsverify;
    let ca = flags.tlscacert.or(file.tlscacert);
    let cert = flags.tlscert.or(file.tlscert);
    let key = flags.tlskey.or(file.tlskey);
    let tls = if tlsverify {
        match (ca, cert, key) {
            (Some(ca), Some(cert), Some(key)) => Some(TlsFiles { ca, cert, key }),
            _ => bail!("--tlsverify needs --tlscacert, --tlscert and --tlskey"),
        }
    } else {
        None
    };
    if let Some(Host::Tcp(addr)) = hosts.iter().find(|h| matches!(h, Host::Tcp(_))) {
        if tls.is_none() {
            bail!(
                "refusing to listen on tcp://{addr} without TLS: anyone who can reach it would be root on this host; add --tlsverify --tlscacert --tlscert --tlskey"
            );
        }
    }
    let bridge = match flags.bridge.or(file.bridge) {
        None => Some(
            berth_engine::NetConfig::default()
                .bridge
                .unwrap_or_default(),
        ),
        Some(b) if b == "none" => None,
        Some(b) => {
            if b.is_empty()
                || b.len() > 15
                || !b
                    .bytes()
                    .all(|c| c.is_ascii_alphanumeric() || b"_.-".contains(&c))
            {
                bail!("invalid --bridge {b:?}: a device name of at most 15 letters, digits, '_', '.' or '-', or none");
            }
            Some(b)
        }
    };
    let bip = flags.bip.or(file.bip);
    if bridge.is_none() && bip.is_some() {
        bail!("--bip and --bridge none cannot be used together");
    }
    let mut cni_plugin_dirs = flags.cni_plugin_dirs;
    if cni_plugin_dirs.is_empty() {
        cni_plugin_dirs = file.cni_plugin_dirs;
    }
    let network = berth_engine::NetConfig {
        bridge,
        bip,
        cni_plugin_dirs,
    };
    let metrics_addr = match flags.metrics_addr.or(file.metrics_addr) {
        Some(a) => parse_metrics_addr(&a)?,
        None => None,
    };
    let store = match flags.store.or(file.store) {
        Some(s) => {
            berth_cluster::StoreConfig::parse(&s).map_err(|e| anyhow::anyhow!("--store: {e}"))?
        }
        None => berth_cluster::StoreConfig::Sqlite,
    };
    let mut unknown_keys: Vec<String> = file.unknown.into_keys().collect();
    unknown_keys.sort();
    Ok(Config {
        hosts,
        data_root: flags
            .data_root
            .or(file.data_root)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_ROOT)),
        exec_root: flags
            .exec_root
            .or(file.exec_root)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_EXEC_ROOT)),
        pidfile: flags
            .pidfile
            .or(file.pidfile)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_PIDFILE)),
        log_level: level,
        tls,
        runtime: flags
            .runtime
            .or(file.runtime)
            .unwrap_or_else(|| find_binary("berth-runc")),
        shim: flags
            .shim
            .or(file.shim)
            .unwrap_or_else(|| find_binary("berth-shim")),
        network,
        metrics_addr,
        store,
        unknown_keys,
    })
}

/// Parses the command line and the config file it names (or the default one).
pub fn load(args: impl IntoIterator<Item = std::ffi::OsString>) -> Result<Config> {
    let flags = Flags::try_parse_from(args).unwrap_or_else(|e| e.exit());
    let (path, explicit) = match &flags.config_file {
        Some(p) => (p.clone(), true),
        None => (PathBuf::from(DEFAULT_CONFIG_FILE), false),
    };
    let file = read_file(&path, explicit)?;
    merge(flags, file)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flags(args: &[&str]) -> Flags {
        Flags::try_parse_from(std::iter::once("berthd").chain(args.iter().copied())).unwrap()
    }

    #[test]
    fn hosts() {
        assert_eq!(
            parse_host("unix:///tmp/b.sock").unwrap(),
            Host::Unix("/tmp/b.sock".into())
        );
        assert_eq!(
            parse_host("unix://").unwrap(),
            Host::Unix(DEFAULT_SOCKET.into())
        );
        assert_eq!(
            parse_host("tcp://0.0.0.0:2376").unwrap(),
            Host::Tcp("0.0.0.0:2376".into())
        );
        assert_eq!(
            parse_host("tcp://:2376").unwrap(),
            Host::Tcp("0.0.0.0:2376".into())
        );
        assert_eq!(
            parse_host("tcp://host").unwrap(),
            Host::Tcp("host:2376".into())
        );
        assert!(parse_host("unix://relative.sock").is_err());
        assert!(parse_host("fd://").is_err());
    }

    #[test]
    fn defaults_and_flags_win_over_file() {
        let c = merge(flags(&[]), FileConfig::default()).unwrap();
        assert_eq!(c.hosts, vec![Host::Unix(DEFAULT_SOCKET.into())]);
        assert_eq!(c.data_root, PathBuf::from(DEFAULT_DATA_ROOT));
        assert_eq!(c.exec_root, PathBuf::from(DEFAULT_EXEC_ROOT));
        assert_eq!(c.pidfile, PathBuf::from(DEFAULT_PIDFILE));
        assert_eq!(c.log_level, "info");
        assert!(c.tls.is_none());

        let file: FileConfig = serde_json::from_str(
            r#"{"hosts":["unix:///tmp/file.sock"],"data-root":"/file/data","exec-root":"/file/exec",
                "pidfile":"/file/pid","log-level":"warn","storage-driver":"overlay2"}"#,
        )
        .unwrap();
        let c = merge(
            flags(&[
                "-H",
                "unix:///tmp/flag.sock",
                "--data-root",
                "/flag/data",
                "--log-level",
                "fatal",
            ]),
            file,
        )
        .unwrap();
        assert_eq!(c.hosts, vec![Host::Unix("/tmp/flag.sock".into())]);
        assert_eq!(c.data_root, PathBuf::from("/flag/data"));
        assert_eq!(c.exec_root, PathBuf::from("/file/exec"));
        assert_eq!(c.pidfile, PathBuf::from("/file/pid"));
        assert_eq!(c.log_level, "error");
        assert_eq!(c.unknown_keys, vec!["storage-driver"]);
    }

    #[test]
    fn tcp_needs_tls() {
        let e = merge(
            flags(&["-H", "tcp://127.0.0.1:2376"]),
            FileConfig::default(),
        )
        .unwrap_err();
        assert!(e.to_string().contains("without TLS"), "{e}");
        let e = merge(
            flags(&["--tlsverify", "--tlscacert", "/ca"]),
            FileConfig::default(),
        )
        .unwrap_err();
        assert!(e.to_string().contains("--tlscert"), "{e}");
        let c = merge(
            flags(&[
                "-H",
                "tcp://127.0.0.1:2376",
                "-H",
                "unix:///tmp/x.sock",
                "--tlsverify",
                "--tlscacert",
                "/ca",
                "--tlscert",
                "/cert",
                "--tlskey",
                "/key",
            ]),
            FileConfig::default(),
        )
        .unwrap();
        assert_eq!(c.hosts.len(), 2);
        assert_eq!(c.tls.unwrap().key, PathBuf::from("/key"));
    }

    #[test]
    fn log_levels_and_config_files() {
        assert!(parse_log_level("loud").is_err());
        assert_eq!(parse_log_level("WARN").unwrap(), "warn");
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("none.json");
        assert!(read_file(&missing, false).is_ok());
        assert!(read_file(&missing, true).is_err());
        let bad = dir.path().join("bad.json");
        std::fs::write(&bad, "{nope").unwrap();
        let e = read_file(&bad, true).unwrap_err();
        assert!(format!("{e:#}").contains("bad.json"));
        let c = merge(flags(&["-D"]), FileConfig::default()).unwrap();
        assert_eq!(c.log_level, "debug");
    }

    #[test]
    fn store_flag_and_key() {
        let c = merge(flags(&[]), FileConfig::default()).unwrap();
        assert_eq!(c.store, berth_cluster::StoreConfig::Sqlite);
        let c = merge(
            flags(&["--store", "etcd://10.0.0.1:2379,10.0.0.2:2379"]),
            FileConfig::default(),
        )
        .unwrap();
        assert!(c.store.is_etcd());
        assert_eq!(
            c.store.to_string(),
            "etcd://10.0.0.1:2379,10.0.0.2:2379/berth"
        );
        let file: FileConfig = serde_json::from_str(r#"{"store":"etcd://e:2379/prod"}"#).unwrap();
        assert!(file.unknown.is_empty());
        let c = merge(flags(&[]), file).unwrap();
        assert_eq!(c.store.to_string(), "etcd://e:2379/prod");
        let e = merge(flags(&["--store", "etcd://nope"]), FileConfig::default()).unwrap_err();
        assert!(
            e.to_string().contains("--store") && e.to_string().contains("etcd://nope"),
            "{e}"
        );
    }

    #[test]
    fn metrics_addr() {
        let c = merge(flags(&[]), FileConfig::default()).unwrap();
        assert_eq!(c.metrics_addr, None);
        let c = merge(
            flags(&["--metrics-addr", "127.0.0.1:9323"]),
            FileConfig::default(),
        )
        .unwrap();
        assert_eq!(c.metrics_addr, Some("127.0.0.1:9323".parse().unwrap()));
        let file: FileConfig = serde_json::from_str(r#"{"metrics-addr":"[::1]:9323"}"#).unwrap();
        assert!(file.unknown.is_empty());
        let c = merge(flags(&[]), file).unwrap();
        assert_eq!(c.metrics_addr, Some("[::1]:9323".parse().unwrap()));
        // The flag wins over the file; an empty address is off.
        let file: FileConfig = serde_json::from_str(r#"{"metrics-addr":"0.0.0.0:1"}"#).unwrap();
        let c = merge(flags(&["--metrics-addr", "127.0.0.1:2"]), file).unwrap();
        assert_eq!(c.metrics_addr, Some("127.0.0.1:2".parse().unwrap()));
        let file: FileConfig = serde_json::from_str(r#"{"metrics-addr":""}"#).unwrap();
        assert_eq!(merge(flags(&[]), file).unwrap().metrics_addr, None);
        for bad in [
            "localhost:9323",
            "127.0.0.1",
            ":9323",
            "127.0.0.1:99999",
            "::1:9323",
        ] {
            let e = merge(flags(&["--metrics-addr", bad]), FileConfig::default()).unwrap_err();
            assert!(e.to_string().contains("--metrics-addr"), "{bad}: {e}");
            assert!(e.to_string().contains(bad), "{bad}: {e}");
        }
    }
}
