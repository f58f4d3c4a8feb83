//! `Cni`: attach and detach containers to bridge networks through the CNI plugins, with a
//! per-attachment cache of the ADD result under the state dir (as libcni keeps), loopback
//! setup, bridge removal, and the host's IPv4 forwarding switch.

use std::fs::{self, File};
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::cni::{CniCommand, Plugins, RuntimeArgs};
use crate::config::{validate_container_id, validate_ifname, validate_static_ip, NetworkConfig};
use crate::error::{io_err, NetError, Result};
use crate::ports::{write_atomic, PortMapping};

/// A container's place on a network, as CNI's ADD result tells it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attachment {
    pub network: String,
    pub container_id: String,
    /// The interface inside the container (`eth0`).
    pub ifname: String,
    pub ip: Ipv4Addr,
    pub prefix: u8,
    pub gateway: Option<Ipv4Addr>,
    /// The container interface's MAC address (`aa:bb:...`).
    pub mac: String,
    /// The host end of the veth pair, when the plugin reported it.
    pub host_veth: Option<String>,
    /// The ports published through this attachment.
    pub ports: Vec<PortMapping>,
}

/// What is kept per attachment so DEL and CHECK get what ADD had (the exact conflist, the
/// runtimeConfig and the result as prevResult), even if the network config changed since.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct CacheEntry {
    conflist: Value,
    runtime_config: Map<String, Value>,
    result: Value,
    netns: String,
    attachment: Attachment,
}

/// An open network namespace. Holding it keeps the namespace alive after the container's last
/// process is gone, so a later DEL still finds the interface and the plugins undo everything
/// (bridge 1.1.1 removes its masquerade rules only when it can enter the namespace). Its
/// [`NetnsHandle::path`] (`/proc/<our pid>/fd/<fd>`) is what the plugins open; only
/// [`Cni::loopback_up`]'s short-lived thread ever enters the namespace.
#[derive(Debug)]
pub struct NetnsHandle {
    file: File,
    source: PathBuf,
}

impl NetnsHandle {
    /// Open `path` (`/proc/<pid>/ns/net`, `/run/netns/NAME`).
    pub fn open(path: &Path) -> Result<Self> {
        let file = File::open(path).map_err(io_err("open netns", path))?;
        Ok(NetnsHandle {
            file,
            source: path.to_path_buf(),
        })
    }

    /// A path to this namespace that stays valid as long as the handle lives.
    pub fn path(&self) -> PathBuf {
        PathBuf::from(format!(
            "/proc/{}/fd/{}",
            std::process::id(),
            self.file.as_raw_fd()
        ))
    }

    /// The path it was opened from.
    pub fn source(&self) -> &Path {
        &self.source
    }
}

/// The CNI front end: plugin search path plus the state dir, which holds
/// `ipam/<network>/` (host-local's leases) and `cache/<network>/<container>-<ifname>.json`
/// (one per attachment). Every method is a blocking call; it may be shared between threads.
#[derive(Debug, Clone)]
pub struct Cni {
    plugins: Plugins,
    state_dir: PathBuf,
}

impl Cni {
    /// Plugins from `/usr/lib/cni` then `/opt/cni/bin`; state under `state_dir`.
    pub fn new(state_dir: impl Into<PathBuf>) -> Self {
        Cni {
            plugins: Plugins::default(),
            state_dir: state_dir.into(),
        }
    }

    /// Plugins from `plugin_dirs` instead.
    pub fn with_plugin_dirs(state_dir: impl Into<PathBuf>, plugin_dirs: Vec<PathBuf>) -> Self {
        Cni {
            plugins: Plugins::new(plugin_dirs),
            state_dir: state_dir.into(),
        }
    }

    /// The plugin search path.
    pub fn plugins(&self) -> &Plugins {
        &self.plugins
    }

    /// The state dir.
    pub fn state_dir(&self) -> &Path {
        &self.state_dir
    }

    /// host-local's lease directory of `network` (one file per leased IP).
    pub fn ipam_dir(&self, network: &str) -> PathBuf {
        self.state_dir.join("ipam").join(network)
    }

    /// The conflist JSON this front end runs for `network`.
    pub fn conflist(&self, network: &NetworkConfig) -> Value {
        network.conflist(&self.state_dir)
    }

    fn cache_path(&self, network: &str, container_id: &str, ifname: &str) -> PathBuf {
        self.state_dir
            .join("cache")
            .join(network)
            .join(format!("{container_id}-{ifname}.json"))
    }

    fn read_cache(&self, path: &Path) -> Result<Option<CacheEntry>> {
        match fs::read(path) {
            Ok(b) => serde_json::from_slice(&b)
                .map(Some)
                .map_err(|source| NetError::Json {
                    path: path.to_path_buf(),
                    source,
                }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_err("read", path)(e)),
        }
    }

    /// Attach a container's network namespace to `network` as `ifname` (CNI ADD of the whole
    /// conflist). `netns` is `/proc/<init pid>/ns/net` of a created container (or a
    /// [`NetnsHandle::path`]); the plugins enter it, this process never does. `static_ip` is
    /// `--ip` (through host-local's `ips` capability); `ports` are mappings already reserved
    /// with [`crate::PortAllocator`] (through portmap's `portMappings` capability).
    ///
    /// On failure the partial ADD is undone with a DEL, so no lease or rule is left.
    pub fn attach(
        &self,
        netns: &Path,
        container_id: &str,
        ifname: &str,
        network: &NetworkConfig,
        static_ip: Option<Ipv4Addr>,
        ports: &[PortMapping],
    ) -> Result<Attachment> {
        network.validate()?;
        validate_container_id(container_id)?;
        validate_ifname("interface name", ifname)?;
        if let Some(ip) = static_ip {
            validate_static_ip(network, ip)?;
        }
        if network.internal && !ports.is_empty() {
            return Err(NetError::InvalidNetwork {
                network: network.name.clone(),
                reason: "ports cannot be published on an internal network".into(),
            });
        }
        let cache = self.cache_path(&network.name, container_id, ifname);
        if cache.exists() {
            return Err(NetError::InvalidNetwork {
                network: network.name.clone(),
                reason: format!("container {container_id} is already attached as {ifname}"),
            });
        }
        let conflist = self.conflist(network);
        let mut rc = Map::new();
        if let Some(ip) = static_ip {
            rc.insert(
                "ips".into(),
                json!([format!("{ip}/{}", network.subnet.prefix())]),
            );
        }
        if !ports.is_empty() {
            rc.insert(
                "portMappings".into(),
                Value::Array(ports.iter().map(PortMapping::to_cni).collect()),
            );
        }
        let args = RuntimeArgs {
            container_id: container_id.to_string(),
            netns: netns.to_string_lossy().into_owned(),
            ifname: ifname.to_string(),
        };
        let undo = |err: NetError| {
            // Best effort: the ADD error is the one worth reporting.
            let _ = self
                .plugins
                .run_conflist(CniCommand::Del, &conflist, &rc, &args, None);
            err
        };
        // Two first ADDs on a host (or namespace) at once race in the plugins' iptables
        // chain creation (`CHAIN_USER_ADD failed (File exists)`): the loser is undone and
        // tried again, by then the chain exists.
        let mut attempt = 0;
        let added = loop {
            let r = self
                .plugins
                .run_conflist(CniCommand::Add, &conflist, &rc, &args, None);
            match &r {
                Err(e) if attempt < 3 && chain_race(e) => {
                    attempt += 1;
                    let _ = undo(NetError::Command {
                        command: "cni ADD".into(),
                        reason: e.to_string(),
                    });
                    std::thread::sleep(std::time::Duration::from_millis(50 * attempt));
                }
                _ => break r,
            }
        };
        let result = match added {
            Ok(Some(r)) => r,
            Ok(None) => {
                return Err(undo(NetError::BadResult {
                    plugin: "firewall".into(),
                    command: "ADD",
                    network: network.name.clone(),
                    reason: "no result".into(),
                }))
            }
            Err(e) => return Err(undo(e)),
        };
        let attachment = match parse_attachment(&result, network, container_id, ifname, ports) {
            Ok(a) => a,
            Err(e) => return Err(undo(e)),
        };
        let entry = CacheEntry {
            conflist: conflist.clone(),
            runtime_config: rc.clone(),
            result,
            netns: args.netns.clone(),
            attachment: attachment.clone(),
        };
        let bytes = serde_json::to_vec_pretty(&entry).map_err(|source| NetError::Json {
            path: cache.clone(),
            source,
        });
        if let Err(e) = bytes.and_then(|b| write_atomic(&cache, &b)) {
            return Err(undo(e));
        }
        Ok(attachment)
    }

    /// Undo [`Cni::attach`] (CNI DEL, plugins in reverse order, with the cached ADD result as
    /// prevResult and the cached runtimeConfig, so portmap and the masquerade rules find
    /// theirs). `netns` may be `None`, or a path that no longer exists: the plugins are then
    /// run without a namespace, which frees the lease and the port and firewall rules; with
    /// plugins 1.1.1 the bridge's masquerade chain is only removed when the namespace still
    /// exists, which is why the engine should hold a [`NetnsHandle`] until detach.
    /// Detaching what is not attached succeeds. The cache entry goes only when DEL succeeded,
    /// so a failed detach can be retried.
    ///
    /// Never pass `/proc/<pid>/ns/net` of a container that may have exited: the pid may be
    /// another process's by now, and the plugins would delete `ifname` in its namespace. Pass
    /// the [`NetnsHandle::path`] held since attach, or `None`.
    pub fn detach(
        &self,
        netns: Option<&Path>,
        container_id: &str,
        ifname: &str,
        network: &NetworkConfig,
    ) -> Result<()> {
        validate_container_id(container_id)?;
        validate_ifname("interface name", ifname)?;
        let cache = self.cache_path(&network.name, container_id, ifname);
        let entry = self.read_cache(&cache)?;
        let (conflist, rc, result) = match &entry {
            Some(e) => (
                e.conflist.clone(),
                e.runtime_config.clone(),
                Some(e.result.clone()),
            ),
            None => (self.conflist(network), Map::new(), None),
        };
        let netns = match netns {
            Some(p) if p.exists() => p.to_string_lossy().into_owned(),
            _ => String::new(),
        };
        let blind = netns.is_empty();
        let args = RuntimeArgs {
            container_id: container_id.to_string(),
            netns,
            ifname: ifname.to_string(),
        };
        self.plugins
            .run_conflist(CniCommand::Del, &conflist, &rc, &args, result.as_ref())?;
        if blind && !network.internal {
            crate::rules::remove_masquerade_rules(&network.name, container_id)?;
        }
        match fs::remove_file(&cache) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_err("remove", &cache)(e)),
        }
    }

    /// CNI CHECK of an attachment: each plugin verifies that what it set up is still there.
    pub fn check(
        &self,
        netns: &Path,
        container_id: &str,
        ifname: &str,
        network: &NetworkConfig,
    ) -> Result<()> {
        validate_container_id(container_id)?;
        validate_ifname("interface name", ifname)?;
        let cache = self.cache_path(&network.name, container_id, ifname);
        let entry = self
            .read_cache(&cache)?
            .ok_or_else(|| NetError::InvalidNetwork {
                network: network.name.clone(),
                reason: format!("container {container_id} is not attached as {ifname}"),
            })?;
        let args = RuntimeArgs {
            container_id: container_id.to_string(),
            netns: netns.to_string_lossy().into_owned(),
            ifname: ifname.to_string(),
        };
        self.plugins
            .run_conflist(
                CniCommand::Check,
                &entry.conflist,
                &entry.runtime_config,
                &args,
                Some(&entry.result),
            )
            .map(drop)
    }

    /// The attachment of a container to a network, from the cache.
    pub fn attachment(
        &self,
        network: &str,
        container_id: &str,
        ifname: &str,
    ) -> Result<Option<Attachment>> {
        validate_container_id(container_id)?;
        validate_ifname("interface name", ifname)?;
        Ok(self
            .read_cache(&self.cache_path(network, container_id, ifname))?
            .map(|e| e.attachment))
    }

    /// Whether any container is attached to any network (an entry in the cache), so that the
    /// plugins' shared chains are still needed.
    pub fn any_attachment(&self) -> Result<bool> {
        let dir = self.state_dir.join("cache");
        let rd = match fs::read_dir(&dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(io_err("read dir", &dir)(e)),
        };
        for net in rd {
            let net = net.map_err(io_err("read dir", &dir))?.path();
            let Ok(entries) = fs::read_dir(&net) else {
                continue;
            };
            for ent in entries.flatten() {
                if ent.path().extension().is_some_and(|x| x == "json") {
                    return Ok(true);
                }
            }
        }
        Ok(false)
    }

    /// Every attachment to `network` in the cache (what survives a restart of the engine).
    pub fn attachments(&self, network: &str) -> Result<Vec<Attachment>> {
        let dir = self.state_dir.join("cache").join(network);
        let rd = match fs::read_dir(&dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_err("read dir", &dir)(e)),
        };
        let mut out = Vec::new();
        for ent in rd {
            let ent = ent.map_err(io_err("read dir", &dir))?;
            let p = ent.path();
            if p.extension().is_some_and(|x| x == "json") {
                if let Some(e) = self.read_cache(&p)? {
                    out.push(e.attachment);
                }
            }
        }
        out.sort_by(|a, b| (&a.container_id, &a.ifname).cmp(&(&b.container_id, &b.ifname)));
        Ok(out)
    }

    /// Bring `lo` up inside a namespace, as the `loopback` plugin's ADD does, without
    /// its fork and exec (about 3 ms of every container start): a short-lived thread
    /// enters the namespace, sets `IFF_UP` on `lo` and exits, so no thread of this
    /// process stays in it. The kernel gives `lo` 127.0.0.1/8 and ::1 as it comes up.
    pub fn loopback_up(&self, netns: &Path, container_id: &str) -> Result<()> {
        validate_container_id(container_id)?;
        let ns = File::open(netns).map_err(io_err("open netns", netns))?;
        let path = netns.to_path_buf();
        std::thread::scope(|s| {
            s.spawn(move || -> Result<()> {
                nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNET)
                    .map_err(|e| io_err("enter netns", &path)(e.into()))?;
                set_up("lo").map_err(io_err("bring up lo in", &path))
            })
            .join()
            .unwrap_or_else(|_| {
                Err(NetError::Command {
                    command: "bring up lo".into(),
                    reason: "its thread panicked".into(),
                })
            })
        })
    }

    /// Take a network down once nothing is attached: delete its bridge device
    /// (`ip link delete`; the bridge plugin creates bridges but never removes them), the
    /// firewall plugin's isolation rules naming it, its lease directory and its cache
    /// directory. Refused while attachments remain. A bridge
    /// that is already gone is fine.
    pub fn remove_network(&self, network: &NetworkConfig) -> Result<()> {
        let left = self.attachments(&network.name)?;
        if let Some(a) = left.first() {
            return Err(NetError::InvalidNetwork {
                network: network.name.clone(),
                reason: format!(
                    "{} container(s) still attached (first {})",
                    left.len(),
                    a.container_id
                ),
            });
        }
        delete_link(&network.bridge)?;
        crate::rules::remove_bridge_rules(&[network.bridge.as_str()])?;
        for dir in [
            self.ipam_dir(&network.name),
            self.state_dir.join("cache").join(&network.name),
        ] {
            match fs::remove_dir_all(&dir) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_err("remove", &dir)(e)),
            }
        }
        Ok(())
    }
}

/// The network devices of the calling thread's network namespace, from
/// `/proc/thread-self/net/dev`. Not `/sys/class/net`: sysfs shows the devices of the namespace
/// it was mounted in, which is not ours when berthd runs in another network namespace than
/// its mount namespace's (`nsenter --net`, as the cluster tests run their nodes).
pub fn links() -> Vec<String> {
    let text = fs::read_to_string("/proc/thread-self/net/dev")
        .or_else(|_| fs::read_to_string("/proc/self/net/dev"))
        .unwrap_or_default();
    parse_proc_net_dev(&text)
}

fn parse_proc_net_dev(text: &str) -> Vec<String> {
    text.lines()
        .skip(2)
        .filter_map(|l| l.split_once(':'))
        .map(|(name, _)| name.trim().to_string())
        .filter(|n| !n.is_empty())
        .collect()
}

/// Whether device `dev` exists in the calling thread's network namespace ([`links`]).
pub fn link_exists(dev: &str) -> bool {
    links().iter().any(|l| l == dev)
}

/// Delete a network device with `ip link delete DEV`; a device that does not exist is fine.
pub fn delete_link(dev: &str) -> Result<()> {
    validate_ifname("device name", dev)?;
    if !link_exists(dev) {
        return Ok(());
    }
    let command = format!("ip link delete {dev}");
    let out = Command::new("ip")
        .args(["link", "delete", dev])
        .output()
        .map_err(|e| NetError::Command {
            command: command.clone(),
            reason: e.to_string(),
        })?;
    if out.status.success() || !link_exists(dev) {
        Ok(())
    } else {
        Err(NetError::Command {
            command,
            reason: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        })
    }
}

/// The first IPv4 address and prefix length on device `dev` (`ip -4 -o addr show dev DEV`);
/// `None` when the device does not exist or has no IPv4 address.
pub fn device_ipv4(dev: &str) -> Result<Option<(Ipv4Addr, u8)>> {
    validate_ifname("device name", dev)?;
    if !link_exists(dev) {
        return Ok(None);
    }
    let command = format!("ip -4 -o addr show dev {dev}");
    let out = Command::new("ip")
        .args(["-4", "-o", "addr", "show", "dev", dev])
        .output()
        .map_err(|e| NetError::Command {
            command: command.clone(),
            reason: e.to_string(),
        })?;
    if !out.status.success() {
        if !link_exists(dev) {
            return Ok(None);
        }
        return Err(NetError::Command {
            command,
            reason: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(parse_ip_addr_inet(&String::from_utf8_lossy(&out.stdout)))
}

/// The first `inet ADDR/PREFIX` of `ip -o addr` output.
fn parse_ip_addr_inet(text: &str) -> Option<(Ipv4Addr, u8)> {
    let mut words = text.split_whitespace();
    while let Some(w) = words.next() {
        if w != "inet" {
            continue;
        }
        let (ip, prefix) = words.next()?.split_once('/')?;
        return Some((ip.parse().ok()?, prefix.parse().ok().filter(|p| *p <= 32)?));
    }
    None
}

/// Turn on IPv4 forwarding (`/proc/sys/net/ipv4/ip_forward`), which containers need to reach
/// beyond the host. The bridge plugin turns it on itself for gateway bridges; the engine may
/// call this at start to be sure. Does nothing when it is already on.
pub fn enable_ip_forward() -> Result<()> {
    let p = Path::new("/proc/sys/net/ipv4/ip_forward");
    let cur = fs::read_to_string(p).map_err(io_err("read", p))?;
    if cur.trim() == "1" {
        return Ok(());
    }
    fs::write(p, b"1\n").map_err(io_err("write", p))
}

/// Read an [`Attachment`] out of a CNI 1.0 ADD result: the interface with a `sandbox`, the
/// IPv4 address on it, the gateway, the MAC.
fn parse_attachment(
    result: &Value,
    network: &NetworkConfig,
    container_id: &str,
    ifname: &str,
    ports: &[PortMapping],
) -> Result<Attachment> {
    let bad = |reason: String| NetError::BadResult {
        plugin: "bridge".into(),
        command: "ADD",
        network: network.name.clone(),
        reason,
    };
    let ifaces = result
        .get("interfaces")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let sandbox_idx = ifaces.iter().position(|i| {
        i.get("sandbox")
            .and_then(Value::as_str)
            .is_some_and(|s| !s.is_empty())
            && i.get("name").and_then(Value::as_str) == Some(ifname)
    });
    let ips = result
        .get("ips")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let ip_entry = ips
        .iter()
        .filter(|e| {
            sandbox_idx.is_none()
                || e.get("interface").and_then(Value::as_u64) == sandbox_idx.map(|i| i as u64)
        })
        .find_map(|e| {
            let addr = e.get("address")?.as_str()?;
            let (ip, prefix) = addr.split_once('/')?;
            let ip: Ipv4Addr = ip.parse().ok()?;
            let prefix: u8 = prefix.parse().ok()?;
            let gw = e
                .get("gateway")
                .and_then(Value::as_str)
                .and_then(|g| g.parse::<Ipv4Addr>().ok());
            Some((ip, prefix, gw))
        })
        .ok_or_else(|| bad(format!("no IPv4 address in {result}")))?;
    let mac = sandbox_idx
        .and_then(|i| ifaces[i].get("mac"))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let host_veth = ifaces
        .iter()
        .find(|i| {
            i.get("sandbox").is_none_or(|s| s.as_str() == Some(""))
                && i.get("name").and_then(Value::as_str) != Some(network.bridge.as_str())
        })
        .and_then(|i| i.get("name"))
        .and_then(Value::as_str)
        .map(str::to_string);
    Ok(Attachment {
        network: network.name.clone(),
        container_id: container_id.to_string(),
        ifname: ifname.to_string(),
        ip: ip_entry.0,
        prefix: ip_entry.1,
        gateway: ip_entry.2,
        mac,
        host_veth,
        ports: ports.to_vec(),
    })
}

/// An ADD that lost the race to create a plugin's iptables chain.
fn chain_race(e: &NetError) -> bool {
    let m = e.to_string();
    m.contains("File exists") && (m.contains("CHAIN_USER_ADD") || m.contains("-N "))
        || m.contains("Chain already exists")
}

/// Set `IFF_UP` on the interface `name` of the calling thread's network namespace.
fn set_up(name: &str) -> std::io::Result<()> {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    let bytes = name.as_bytes();
    if bytes.len() >= libc::IFNAMSIZ {
        return Err(std::io::Error::from_raw_os_error(libc::ENAMETOOLONG));
    }
    // SAFETY: socket(2) with constant arguments; the fd is owned at once.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: fd is a fresh descriptor nothing else owns.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: ifreq is plain old data; all-zero is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (d, s) in req.ifr_name.iter_mut().zip(bytes) {
        *d = *s as libc::c_char;
    }
    // SAFETY: SIOCGIFFLAGS reads the NUL-terminated name and writes ifru_flags of `req`,
    // which lives across the call.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: SIOCGIFFLAGS filled the flags member of the union.
    let flags = unsafe { req.ifr_ifru.ifru_flags };
    if flags & libc::IFF_UP as libc::c_short != 0 {
        return Ok(());
    }
    req.ifr_ifru.ifru_flags = flags | libc::IFF_UP as libc::c_short;
    // SAFETY: as above; SIOCSIFFLAGS only reads `req`.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &req) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_attachment_is_a_cache_entry() {
        let dir = tempfile::tempdir().unwrap();
        let cni = Cni::new(dir.path());
        assert!(!cni.any_attachment().unwrap());
        let net = dir.path().join("cache/app");
        fs::create_dir_all(&net).unwrap();
        fs::write(net.join("x.json.tmp"), "{}").unwrap();
        assert!(
            !cni.any_attachment().unwrap(),
            "a temp file is no attachment"
        );
        fs::write(net.join("0123-eth0.json"), "{}").unwrap();
        assert!(cni.any_attachment().unwrap());
    }

    #[test]
    fn chain_creation_races_are_recognised() {
        let e = |msg: &str| NetError::Plugin {
            plugin: "firewall".into(),
            command: "ADD",
            network: "bridge".into(),
            code: 999,
            msg: msg.into(),
            details: String::new(),
        };
        assert!(chain_race(&e("running [/usr/sbin/iptables -t filter -N CNI-ISOLATION-STAGE-1 --wait]: exit status 4: iptables v1.8.9 (nf_tables):  CHAIN_USER_ADD failed (File exists): chain CNI-ISOLATION-STAGE-1")));
        assert!(chain_race(&e("iptables: Chain already exists.")));
        assert!(!chain_race(&e(
            "failed to allocate for range 0: no IP addresses available"
        )));
    }

    #[test]
    fn devices_of_proc_net_dev() {
        let t = "Inter-|   Receive |  Transmit\n face |bytes    packets\n    lo: 1 2 3\nbvx4096:    0 0\n  eth0: 5 6\n";
        assert_eq!(parse_proc_net_dev(t), ["lo", "bvx4096", "eth0"]);
        assert!(link_exists("lo"));
        assert!(!link_exists("nosuchdev0"));
    }

    #[test]
    fn inet_of_ip_addr_output() {
        let out = "5: berth0    inet 172.17.0.1/16 brd 172.17.255.255 scope global berth0\\       valid_lft forever preferred_lft forever\n";
        assert_eq!(
            parse_ip_addr_inet(out),
            Some((Ipv4Addr::new(172, 17, 0, 1), 16))
        );
        assert_eq!(parse_ip_addr_inet(""), None);
        assert_eq!(
            parse_ip_addr_inet("5: x    inet 10.0.0.1/40 scope global"),
            None
        );
        assert_eq!(parse_ip_addr_inet("5: x    inet"), None);
    }

    #[test]
    fn attachment_from_bridge_result() {
        let id = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
        let net =
            NetworkConfig::new("web", id, "10.1.2.0/24".parse().unwrap(), None, false).unwrap();
        let r = json!({
            "cniVersion": "1.0.0",
            "interfaces": [
                {"name": "br-0123456789ab", "mac": "aa:aa:aa:aa:aa:aa"},
                {"name": "veth1234", "mac": "bb:bb:bb:bb:bb:bb"},
                {"name": "eth0", "mac": "cc:cc:cc:cc:cc:cc", "sandbox": "/run/netns/x"}
            ],
            "ips": [{"interface": 2, "address": "10.1.2.5/24", "gateway": "10.1.2.1"}],
            "routes": [{"dst": "0.0.0.0/0"}],
            "dns": {}
        });
        let a = parse_attachment(&r, &net, "c1", "eth0", &[]).unwrap();
        assert_eq!(a.ip, Ipv4Addr::new(10, 1, 2, 5));
        assert_eq!(a.prefix, 24);
        assert_eq!(a.gateway, Some(Ipv4Addr::new(10, 1, 2, 1)));
        assert_eq!(a.mac, "cc:cc:cc:cc:cc:cc");
        assert_eq!(a.host_veth.as_deref(), Some("veth1234"));
        let e = parse_attachment(&json!({"ips": []}), &net, "c1", "eth0", &[])
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("cni plugin bridge ADD on network \"web\": bad result"),
            "{e}"
        );
    }

    #[test]
    fn netns_handle_path_is_ours() {
        let h = NetnsHandle::open(Path::new("/proc/self/ns/net")).unwrap();
        let p = h.path();
        assert!(p.starts_with(format!("/proc/{}/fd", std::process::id())));
        assert_eq!(
            fs::read_link(&p).unwrap(),
            fs::read_link("/proc/self/ns/net").unwrap()
        );
    }
}
