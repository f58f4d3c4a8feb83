//! The crate's error type, `NetError`: every failure names the network, plugin, port or path.

use std::io;
use std::path::PathBuf;

/// Everything berth-net can fail with. Messages are lowercase, without a trailing period, and
/// name what failed (the one exception is the port conflict, which keeps Docker's exact text
/// because scripts match on it).
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// A network, container or interface name broke a naming rule.
    #[error("invalid {what} {value:?}: {reason}")]
    InvalidName {
        what: &'static str,
        value: String,
        reason: String,
    },
    /// A subnet, gateway or IP address was malformed or out of place.
    #[error("invalid address {value:?}: {reason}")]
    InvalidAddress { value: String, reason: String },
    /// Network configuration that is well formed but not usable.
    #[error("network {network:?}: {reason}")]
    InvalidNetwork { network: String, reason: String },
    /// A new network's subnet overlaps the subnet of an existing one.
    #[error(
        "network {network:?} subnet {subnet} overlaps network {other:?} subnet {other_subnet}"
    )]
    Overlap {
        network: String,
        subnet: String,
        other: String,
        other_subnet: String,
    },
    /// Every subnet of the default pools is taken.
    #[error("no free subnet left in the default address pools for network {network:?}")]
    PoolExhausted { network: String },
    /// A host port (for an IP and protocol) is already published by another container.
    #[error("Bind for {host_ip}:{port} failed: port is already allocated")]
    PortAllocated { host_ip: String, port: u16 },
    /// A host port cannot be bound on the host (something else listens on it).
    #[error("bind for {host_ip}:{port}/{proto} failed: {source}")]
    PortBusy {
        host_ip: String,
        port: u16,
        proto: String,
        #[source]
        source: io::Error,
    },
    /// A port request was malformed, or no ephemeral port was free.
    #[error("port mapping {mapping}: {reason}")]
    InvalidPort { mapping: String, reason: String },
    /// No executable of this CNI plugin in any plugin directory.
    #[error("cni plugin {plugin:?} not found in {}", dirs.join(":"))]
    PluginNotFound { plugin: String, dirs: Vec<String> },
    /// A CNI plugin could not be run (exec, pipe) at all.
    #[error("cni plugin {plugin} ({}): {source}", path.display())]
    PluginExec {
        plugin: String,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// A CNI plugin answered with a CNI error (or failed without one).
    #[error(
        "cni plugin {plugin} {command} on network {network:?} failed: code {code}: {msg}{}",
        details_suffix(details)
    )]
    Plugin {
        plugin: String,
        command: &'static str,
        network: String,
        code: u32,
        msg: String,
        details: String,
    },
    /// A CNI plugin's result was not the JSON we expected.
    #[error("cni plugin {plugin} {command} on network {network:?}: bad result: {reason}")]
    BadResult {
        plugin: String,
        command: &'static str,
        network: String,
        reason: String,
    },
    /// A file or directory operation failed.
    #[error("{op} {}: {source}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// A JSON state file could not be read back.
    #[error("parse {}: {source}", path.display())]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    /// An external command (`ip`) failed.
    #[error("{command} failed: {reason}")]
    Command { command: String, reason: String },
    /// The DNS server could not bind its sockets or start its threads.
    #[error("dns server for network {network:?} on {addr}: {source}")]
    Dns {
        network: String,
        addr: String,
        #[source]
        source: io::Error,
    },
}

fn details_suffix(details: &str) -> String {
    if details.is_empty() {
        String::new()
    } else {
        format!(" ({details})")
    }
}

/// Shorthand for results of this crate.
pub type Result<T, E = NetError> = std::result::Result<T, E>;

pub(crate) fn io_err(
    op: &'static str,
    path: impl Into<PathBuf>,
) -> impl FnOnce(io::Error) -> NetError {
    let path = path.into();
    move |source| NetError::Io { op, path, source }
}
