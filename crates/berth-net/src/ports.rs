//! Published-port state: which container holds which host (IP, port, protocol), ephemeral
//! port picking for `-P`/hostPort 0, and the JSON file that keeps it across restarts.

use std::fmt;
use std::fs;
use std::io::Write;
use std::net::{Ipv4Addr, TcpListener, UdpSocket};
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::error::{io_err, NetError, Result};

/// A transport protocol of a published port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Tcp,
    Udp,
    Sctp,
}

impl Protocol {
    /// `tcp`, `udp` or `sctp`, as CNI's portmap and Docker spell them.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
            Protocol::Sctp => "sctp",
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Protocol {
    type Err = NetError;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "tcp" => Ok(Protocol::Tcp),
            "udp" => Ok(Protocol::Udp),
            "sctp" => Ok(Protocol::Sctp),
            _ => Err(NetError::InvalidPort {
                mapping: s.to_string(),
                reason: "protocol is not tcp, udp or sctp".into(),
            }),
        }
    }
}

/// What `-p` asks for: `[host_ip:][host_port]:container_port[/proto]`. `host_port` 0 means
/// "any free ephemeral port" (`-P`, or `-p 80`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortRequest {
    pub host_ip: Ipv4Addr,
    pub host_port: u16,
    pub container_port: u16,
    pub protocol: Protocol,
}

impl PortRequest {
    /// `host_port` on all host addresses (0.0.0.0) to `container_port`.
    pub fn new(host_port: u16, container_port: u16, protocol: Protocol) -> Self {
        PortRequest {
            host_ip: Ipv4Addr::UNSPECIFIED,
            host_port,
            container_port,
            protocol,
        }
    }
}

/// A reserved, concrete mapping (the host port is never 0), as handed to CNI's portmap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PortMapping {
    pub host_ip: Ipv4Addr,
    pub host_port: u16,
    pub container_port: u16,
    pub protocol: Protocol,
}

impl PortMapping {
    /// The portmap runtimeConfig entry: `{hostPort, containerPort, protocol, hostIP}`
    /// (hostIP left out for 0.0.0.0, which portmap takes as "every address").
    pub fn to_cni(&self) -> Value {
        let mut v = json!({
            "hostPort": self.host_port,
            "containerPort": self.container_port,
            "protocol": self.protocol.as_str(),
        });
        if !self.host_ip.is_unspecified() {
            v["hostIP"] = json!(self.host_ip.to_string());
        }
        v
    }

    fn clashes(&self, host_ip: Ipv4Addr, port: u16, proto: Protocol) -> bool {
        self.host_port == port
            && self.protocol == proto
            && (self.host_ip == host_ip
                || self.host_ip.is_unspecified()
                || host_ip.is_unspecified())
    }
}

impl fmt::Display for PortMapping {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}->{}/{}",
            self.host_ip, self.host_port, self.container_port, self.protocol
        )
    }
}

/// One container's hold on a host port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reservation {
    /// The container id (or any owner key the engine chooses).
    pub owner: String,
    pub mapping: PortMapping,
}

/// Published host ports. Two holders never share a (host IP, port, protocol), and 0.0.0.0
/// clashes with every address, as with Docker. It is plain data (serde), so the engine can
/// persist it with its own records, or with [`PortAllocator::save`] / [`PortAllocator::load`]
/// (a JSON file written by rename). It is not thread-safe on its own: keep it under the
/// engine's lock.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortAllocator {
    reservations: Vec<Reservation>,
    /// Where the search for the next ephemeral port starts (Docker hands them out in turn).
    #[serde(default)]
    next_ephemeral: u16,
    /// Skip the bind check on the host (unit tests only).
    #[serde(skip)]
    no_host_check: bool,
}

/// The ephemeral range the kernel uses (`/proc/sys/net/ipv4/ip_local_port_range`), which
/// Docker also takes for `-P`; 32768-60999 when unreadable.
pub fn ephemeral_range() -> (u16, u16) {
    fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|t| {
            let mut it = t.split_whitespace().map(|x| x.parse::<u16>());
            match (it.next(), it.next()) {
                (Some(Ok(a)), Some(Ok(b))) if a > 0 && a <= b => Some((a, b)),
                _ => None,
            }
        })
        .unwrap_or((32768, 60999))
}

/// Whether `host_ip:port` can be bound on the host for `proto` right now (the socket is
/// closed again at once). SCTP is not checked.
pub fn host_port_free(host_ip: Ipv4Addr, port: u16, proto: Protocol) -> std::io::Result<()> {
    match proto {
        Protocol::Tcp => TcpListener::bind((host_ip, port)).map(drop),
        Protocol::Udp => UdpSocket::bind((host_ip, port)).map(drop),
        Protocol::Sctp => Ok(()),
    }
}

impl PortAllocator {
    /// An empty allocator.
    pub fn new() -> Self {
        Self::default()
    }

    #[cfg(test)]
    pub(crate) fn without_host_check() -> Self {
        PortAllocator {
            no_host_check: true,
            ..Self::default()
        }
    }

    /// Reserve every request for `owner`, all or nothing. A fixed host port already held
    /// fails with Docker's `Bind for 0.0.0.0:8080 failed: port is already allocated`; one that
    /// something else on the host listens on fails with the bind error. Host port 0 takes the
    /// next free ephemeral port (free in this state and bindable on the host).
    pub fn reserve(&mut self, owner: &str, requests: &[PortRequest]) -> Result<Vec<PortMapping>> {
        let mut taken: Vec<PortMapping> = self.reservations.iter().map(|r| r.mapping).collect();
        let mut out = Vec::with_capacity(requests.len());
        for req in requests {
            if req.container_port == 0 {
                return Err(NetError::InvalidPort {
                    mapping: format!("{}:{}/{}", req.host_ip, req.host_port, req.protocol),
                    reason: "container port 0".into(),
                });
            }
            let port = if req.host_port == 0 {
                self.pick_ephemeral(&taken, req)?
            } else {
                if taken
                    .iter()
                    .any(|m| m.clashes(req.host_ip, req.host_port, req.protocol))
                {
                    return Err(NetError::PortAllocated {
                        host_ip: req.host_ip.to_string(),
                        port: req.host_port,
                    });
                }
                if !self.no_host_check {
                    host_port_free(req.host_ip, req.host_port, req.protocol).map_err(|source| {
                        NetError::PortBusy {
                            host_ip: req.host_ip.to_string(),
                            port: req.host_port,
                            proto: req.protocol.to_string(),
                            source,
                        }
                    })?;
                }
                req.host_port
            };
            let m = PortMapping {
                host_ip: req.host_ip,
                host_port: port,
                container_port: req.container_port,
                protocol: req.protocol,
            };
            taken.push(m);
            out.push(m);
        }
        for m in &out {
            self.reservations.push(Reservation {
                owner: owner.to_string(),
                mapping: *m,
            });
        }
        Ok(out)
    }

    fn pick_ephemeral(&mut self, taken: &[PortMapping], req: &PortRequest) -> Result<u16> {
        let (lo, hi) = ephemeral_range();
        let span = u32::from(hi - lo) + 1;
        let start = if (lo..=hi).contains(&self.next_ephemeral) {
            self.next_ephemeral
        } else {
            lo
        };
        for i in 0..span {
            let port = (u32::from(start - lo) + i) % span + u32::from(lo);
            let port = port as u16;
            if taken
                .iter()
                .any(|m| m.clashes(req.host_ip, port, req.protocol))
            {
                continue;
            }
            if !self.no_host_check && host_port_free(req.host_ip, port, req.protocol).is_err() {
                continue;
            }
            self.next_ephemeral = if port == hi { lo } else { port + 1 };
            return Ok(port);
        }
        Err(NetError::InvalidPort {
            mapping: format!("{}::{}/{}", req.host_ip, req.container_port, req.protocol),
            reason: format!("no free host port in {lo}-{hi}"),
        })
    }

    /// Give back every port `owner` holds; returns them.
    pub fn release(&mut self, owner: &str) -> Vec<PortMapping> {
        let (gone, keep) = std::mem::take(&mut self.reservations)
            .into_iter()
            .partition(|r| r.owner == owner);
        self.reservations = keep;
        gone.into_iter().map(|r: Reservation| r.mapping).collect()
    }

    /// The ports `owner` holds.
    pub fn owned_by(&self, owner: &str) -> Vec<PortMapping> {
        self.reservations
            .iter()
            .filter(|r| r.owner == owner)
            .map(|r| r.mapping)
            .collect()
    }

    /// Every reservation.
    pub fn reservations(&self) -> &[Reservation] {
        &self.reservations
    }

    /// Read the state from a JSON file; a missing file is an empty state.
    pub fn load(path: &Path) -> Result<Self> {
        match fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|source| NetError::Json {
                path: path.to_path_buf(),
                source,
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(e) => Err(io_err("read", path)(e)),
        }
    }

    /// Write the state to a JSON file: a temp file beside it, fsynced, then renamed, so a
    /// crash leaves the old state or the new one.
    pub fn save(&self, path: &Path) -> Result<()> {
        let bytes = serde_json::to_vec_pretty(self).map_err(|source| NetError::Json {
            path: path.to_path_buf(),
            source,
        })?;
        write_atomic(path, &bytes)
    }
}

/// Write `bytes` to `path` through `<path>.tmp` and a rename; creates the parent directory.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).map_err(io_err("mkdir", dir))?;
    }
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = std::path::PathBuf::from(tmp);
    let mut f = fs::File::create(&tmp).map_err(io_err("create", &tmp))?;
    f.write_all(bytes).map_err(io_err("write", &tmp))?;
    f.sync_all().map_err(io_err("fsync", &tmp))?;
    fs::rename(&tmp, path).map_err(io_err("rename", path))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tcp(h: u16, c: u16) -> PortRequest {
        PortRequest::new(h, c, Protocol::Tcp)
    }

    #[test]
    fn conflict_like_docker() {
        let mut a = PortAllocator::without_host_check();
        let got = a.reserve("c1", &[tcp(8080, 80)]).unwrap();
        assert_eq!(got[0].host_port, 8080);
        let e = a.reserve("c2", &[tcp(8080, 81)]).unwrap_err().to_string();
        assert_eq!(e, "Bind for 0.0.0.0:8080 failed: port is already allocated");
        // Another protocol, fine.
        a.reserve("c2", &[PortRequest::new(8080, 80, Protocol::Udp)])
            .unwrap();
        // A specific address clashes with 0.0.0.0 and the other way round.
        let mut r = tcp(8080, 80);
        r.host_ip = Ipv4Addr::LOCALHOST;
        let e = a.reserve("c3", &[r]).unwrap_err().to_string();
        assert_eq!(
            e,
            "Bind for 127.0.0.1:8080 failed: port is already allocated"
        );
        r.host_port = 9090;
        a.reserve("c3", &[r]).unwrap();
        let mut r2 = tcp(9090, 80);
        r2.host_ip = Ipv4Addr::new(127, 0, 0, 2);
        a.reserve("c4", &[r2]).unwrap();
        assert!(a.reserve("c5", &[tcp(9090, 80)]).is_err());
    }

    #[test]
    fn all_or_nothing_and_release() {
        let mut a = PortAllocator::without_host_check();
        a.reserve("c1", &[tcp(8080, 80)]).unwrap();
        assert!(a.reserve("c2", &[tcp(7000, 80), tcp(8080, 80)]).is_err());
        assert!(a.owned_by("c2").is_empty());
        // Two requests of one container for one port clash too.
        assert!(a.reserve("c2", &[tcp(7000, 80), tcp(7000, 81)]).is_err());
        assert_eq!(a.release("c1").len(), 1);
        a.reserve("c2", &[tcp(8080, 80)]).unwrap();
    }

    #[test]
    fn ephemeral_ports_are_distinct() {
        let mut a = PortAllocator::without_host_check();
        let got = a.reserve("c1", &[tcp(0, 80), tcp(0, 81)]).unwrap();
        let (lo, hi) = ephemeral_range();
        assert!(got.iter().all(|m| (lo..=hi).contains(&m.host_port)));
        assert_ne!(got[0].host_port, got[1].host_port);
        let more = a.reserve("c2", &[tcp(0, 80)]).unwrap();
        assert!(!got.iter().any(|m| m.host_port == more[0].host_port));
    }

    #[test]
    fn ephemeral_skips_ports_bound_on_host() {
        let (lo, _) = ephemeral_range();
        let mut a = PortAllocator::new();
        // Occupy the port the allocator would hand out first.
        a.next_ephemeral = lo;
        let held = TcpListener::bind((Ipv4Addr::UNSPECIFIED, lo));
        let got = a.reserve("c1", &[tcp(0, 80)]).unwrap();
        if held.is_ok() {
            assert_ne!(got[0].host_port, lo);
        }
        // A fixed port that a host process listens on is refused with the bind error.
        let l = TcpListener::bind((Ipv4Addr::UNSPECIFIED, 0)).unwrap();
        let port = l.local_addr().unwrap().port();
        let e = a.reserve("c2", &[tcp(port, 80)]).unwrap_err().to_string();
        assert!(
            e.starts_with(&format!("bind for 0.0.0.0:{port}/tcp failed")),
            "{e}"
        );
    }

    #[test]
    fn save_load_roundtrip() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("sub/ports.json");
        assert_eq!(PortAllocator::load(&p).unwrap(), PortAllocator::default());
        let mut a = PortAllocator::without_host_check();
        a.reserve("c1", &[tcp(8080, 80)]).unwrap();
        a.save(&p).unwrap();
        let mut b = PortAllocator::load(&p).unwrap();
        assert_eq!(b.reservations(), a.reservations());
        b.no_host_check = true;
        assert!(b.reserve("c2", &[tcp(8080, 80)]).is_err());
        fs::write(&p, b"{").unwrap();
        assert!(PortAllocator::load(&p)
            .unwrap_err()
            .to_string()
            .starts_with("parse "));
    }

    #[test]
    fn cni_form() {
        let m = PortMapping {
            host_ip: Ipv4Addr::UNSPECIFIED,
            host_port: 8080,
            container_port: 80,
            protocol: Protocol::Tcp,
        };
        assert_eq!(
            m.to_cni(),
            json!({"hostPort": 8080, "containerPort": 80, "protocol": "tcp"})
        );
        let m2 = PortMapping {
            host_ip: Ipv4Addr::LOCALHOST,
            ..m
        };
        assert_eq!(m2.to_cni()["hostIP"], "127.0.0.1");
    }
}
