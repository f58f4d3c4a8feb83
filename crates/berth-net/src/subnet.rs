//! IPv4 subnets (CIDR): parsing, containment, overlap, and the default address pools.

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{NetError, Result};

/// An IPv4 subnet in CIDR form, always stored with its host bits cleared
/// (`10.1.2.3/24` parses to `10.1.2.0/24`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Subnet {
    addr: Ipv4Addr,
    prefix: u8,
}

impl Subnet {
    /// The subnet of `addr` with `prefix` bits; host bits of `addr` are cleared.
    pub fn new(addr: Ipv4Addr, prefix: u8) -> Result<Self> {
        if prefix > 32 {
            return Err(NetError::InvalidAddress {
                value: format!("{addr}/{prefix}"),
                reason: "prefix length is more than 32".into(),
            });
        }
        let bits = u32::from(addr) & mask(prefix);
        Ok(Subnet {
            addr: Ipv4Addr::from(bits),
            prefix,
        })
    }

    /// The network address (host bits zero).
    pub fn network(&self) -> Ipv4Addr {
        self.addr
    }

    /// The prefix length.
    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// The broadcast address (host bits one).
    pub fn broadcast(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.addr) | !mask(self.prefix))
    }

    /// Whether `ip` lies inside this subnet.
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & mask(self.prefix) == u32::from(self.addr)
    }

    /// Whether the two subnets share at least one address.
    pub fn overlaps(&self, other: &Subnet) -> bool {
        let p = self.prefix.min(other.prefix);
        u32::from(self.addr) & mask(p) == u32::from(other.addr) & mask(p)
    }

    /// The first usable host address (`.1` of a /24), Docker's default gateway.
    pub fn first_host(&self) -> Ipv4Addr {
        if self.prefix >= 31 {
            self.addr
        } else {
            Ipv4Addr::from(u32::from(self.addr) + 1)
        }
    }

    /// Whether `ip` is a usable host address of this subnet: inside it, and neither its
    /// network nor its broadcast address (for prefixes shorter than /31).
    pub fn is_host(&self, ip: Ipv4Addr) -> bool {
        self.contains(ip) && (self.prefix >= 31 || (ip != self.network() && ip != self.broadcast()))
    }
}

fn mask(prefix: u8) -> u32 {
    if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(prefix.min(32)))
    }
}

impl fmt::Display for Subnet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl FromStr for Subnet {
    type Err = NetError;

    fn from_str(s: &str) -> Result<Self> {
        let bad = |reason: &str| NetError::InvalidAddress {
            value: s.to_string(),
            reason: reason.to_string(),
        };
        let (ip, prefix) = s
            .split_once('/')
            .ok_or_else(|| bad("a subnet needs a prefix length, as in 10.1.0.0/24"))?;
        let ip: Ipv4Addr = ip
            .parse()
            .map_err(|_| bad("not an IPv4 address (IPv6 networks are not supported)"))?;
        let prefix: u8 = prefix
            .parse()
            .map_err(|_| bad("prefix length is not a number from 0 to 32"))?;
        Subnet::new(ip, prefix).map_err(|_| bad("prefix length is more than 32"))
    }
}

impl TryFrom<String> for Subnet {
    type Error = NetError;
    fn try_from(s: String) -> Result<Self> {
        s.parse()
    }
}

impl From<Subnet> for String {
    fn from(s: Subnet) -> String {
        s.to_string()
    }
}

/// The subnet of Docker's default `bridge` network.
pub const DEFAULT_BRIDGE_SUBNET: Subnet = Subnet {
    addr: Ipv4Addr::new(172, 17, 0, 0),
    prefix: 16,
};

/// Docker's default address pools, in the order they are handed out: 172.17.0.0/16 to
/// 172.31.0.0/16, then 192.168.0.0/16 cut into /20s.
pub fn default_pools() -> impl Iterator<Item = Subnet> {
    let wide = (17u8..=31).map(|b| Subnet {
        addr: Ipv4Addr::new(172, b, 0, 0),
        prefix: 16,
    });
    let narrow = (0u8..16).map(|i| Subnet {
        addr: Ipv4Addr::new(192, 168, i * 16, 0),
        prefix: 20,
    });
    wide.chain(narrow)
}

/// The first subnet of the default pools that overlaps none of `taken` (the subnets of the
/// existing networks, and whatever else the caller wants kept free, such as the host's routes
/// from [`host_routes`]). The default bridge takes 172.17.0.0/16 first, so user networks then
/// get 172.18.0.0/16, 172.19.0.0/16 and so on, as with Docker.
pub fn allocate_subnet(network: &str, taken: &[Subnet]) -> Result<Subnet> {
    default_pools()
        .find(|c| !taken.iter().any(|t| t.overlaps(c)))
        .ok_or_else(|| NetError::PoolExhausted {
            network: network.to_string(),
        })
}

/// Parse the text of `/proc/net/route` into the destinations of the host's non-default IPv4
/// routes (Docker also skips pool subnets that a host route already covers).
pub fn parse_proc_net_route(text: &str) -> Vec<Subnet> {
    let mut out = Vec::new();
    for line in text.lines().skip(1) {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 8 {
            continue;
        }
        let (Ok(dst), Ok(msk)) = (u32::from_str_radix(f[1], 16), u32::from_str_radix(f[7], 16))
        else {
            continue;
        };
        // The kernel prints the network-order word as a native integer, so its native bytes
        // are the address bytes.
        let dst = Ipv4Addr::from(dst.to_ne_bytes());
        let msk = u32::from_be_bytes(msk.to_ne_bytes());
        let prefix = msk.count_ones() as u8;
        if prefix == 0 {
            continue;
        }
        if let Ok(s) = Subnet::new(dst, prefix) {
            out.push(s);
        }
    }
    out
}

/// The host's IPv4 routes (see [`parse_proc_net_route`]); empty if the file cannot be read.
pub fn host_routes() -> Vec<Subnet> {
    std::fs::read_to_string("/proc/net/route")
        .map(|t| parse_proc_net_route(&t))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(x: &str) -> Subnet {
        x.parse().unwrap()
    }

    #[test]
    fn parse_and_display() {
        assert_eq!(s("10.1.2.3/24").to_string(), "10.1.2.0/24");
        assert_eq!(s("0.0.0.0/0").to_string(), "0.0.0.0/0");
        assert!("10.1.2.0".parse::<Subnet>().is_err());
        assert!("10.1.2.0/33".parse::<Subnet>().is_err());
        assert!("10.1.2/24".parse::<Subnet>().is_err());
        assert!("fd00::/64".parse::<Subnet>().is_err());
        let e = "10.0.0.0/x".parse::<Subnet>().unwrap_err().to_string();
        assert_eq!(
            e,
            "invalid address \"10.0.0.0/x\": prefix length is not a number from 0 to 32"
        );
    }

    #[test]
    fn contains_hosts_overlap() {
        let n = s("10.1.2.0/24");
        assert!(n.contains("10.1.2.255".parse().unwrap()));
        assert!(!n.contains("10.1.3.0".parse().unwrap()));
        assert!(n.is_host("10.1.2.1".parse().unwrap()));
        assert!(!n.is_host("10.1.2.0".parse().unwrap()));
        assert!(!n.is_host("10.1.2.255".parse().unwrap()));
        assert_eq!(n.broadcast(), Ipv4Addr::new(10, 1, 2, 255));
        assert_eq!(n.first_host(), Ipv4Addr::new(10, 1, 2, 1));
        assert!(n.overlaps(&s("10.1.0.0/16")));
        assert!(s("10.1.0.0/16").overlaps(&n));
        assert!(!n.overlaps(&s("10.1.3.0/24")));
        assert!(s("0.0.0.0/0").overlaps(&n));
    }

    #[test]
    fn pools_like_docker() {
        assert_eq!(
            allocate_subnet("bridge", &[]).unwrap(),
            DEFAULT_BRIDGE_SUBNET
        );
        let a = allocate_subnet("a", &[DEFAULT_BRIDGE_SUBNET]).unwrap();
        assert_eq!(a, s("172.18.0.0/16"));
        let b = allocate_subnet("b", &[DEFAULT_BRIDGE_SUBNET, a, s("172.19.5.0/24")]).unwrap();
        assert_eq!(b, s("172.20.0.0/16"));
        let all: Vec<Subnet> = (17..=31).map(|i| s(&format!("172.{i}.0.0/16"))).collect();
        assert_eq!(allocate_subnet("c", &all).unwrap(), s("192.168.0.0/20"));
        let mut all2 = all.clone();
        all2.push(s("192.168.0.0/16"));
        let e = allocate_subnet("c", &all2).unwrap_err().to_string();
        assert_eq!(
            e,
            "no free subnet left in the default address pools for network \"c\""
        );
    }

    #[test]
    fn proc_net_route() {
        let text =
            "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
eth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n\
eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n";
        let r = parse_proc_net_route(text);
        if cfg!(target_endian = "little") {
            assert_eq!(r, vec![s("192.0.2.0/24")]);
        }
    }

    #[test]
    fn serde_as_string() {
        let j = serde_json::to_string(&s("10.9.0.0/16")).unwrap();
        assert_eq!(j, "\"10.9.0.0/16\"");
        let back: Subnet = serde_json::from_str(&j).unwrap();
        assert_eq!(back, s("10.9.0.0/16"));
        assert!(serde_json::from_str::<Subnet>("\"nope\"").is_err());
    }
}
