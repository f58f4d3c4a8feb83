//! End-to-end networking with the docker CLI against berthd: the default bridge with a
//! published port reached from the host and from another container, a port published on
//! 127.0.0.1 only, a UDP port, user networks with
//! names and aliases through the embedded DNS, `--ip`, `--internal`, connect and
//! disconnect, `host` and `none`, overlapping subnets refused, addresses and port
//! reservations across a daemon killed with SIGKILL, and a host left as it was: after
//! everything is removed, `ip link`, `ip netns` and the nat table are as before the test.
//!
//! Each test's daemon has its own default bridge (`--bridge`, `--bip`); the tests run one at
//! a time, so that one's host snapshot never sees another's rules.

mod support;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::process::Command;
use std::sync::Mutex;
use std::time::Duration;

use support::{poll, Daemon, Peer};

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

const HTTPD: &str = "mkdir -p /www && hostname > /www/index.html && exec httpd -f -p 80 -h /www";

fn sh(cmd: &str) -> String {
    let out = Command::new("sh")
        .args(["-c", cmd])
        .output()
        .unwrap_or_else(|e| panic!("{cmd}: {e}"));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// What the test must leave as it found: link names, named namespaces, the nat table
/// (without counters) and the CNI rules of the filter table.
#[derive(Debug, PartialEq, Eq)]
struct HostNet {
    links: Vec<String>,
    netns: String,
    nat: Vec<String>,
    filter_cni: Vec<String>,
}

fn rules(table: &str) -> Vec<String> {
    let mut v: Vec<String> = sh(&format!("iptables-save -t {table}"))
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| match l.split_once(" [") {
            Some((head, _)) if l.starts_with(':') => head.to_string(),
            _ => l.to_string(),
        })
        .collect();
    v.sort();
    v
}

fn snapshot() -> HostNet {
    let mut links: Vec<String> = sh("ip -o link show")
        .lines()
        .filter_map(|l| l.split(": ").nth(1))
        .map(|n| n.split('@').next().unwrap_or(n).to_string())
        .collect();
    links.sort();
    HostNet {
        links,
        netns: sh("ip netns list"),
        nat: rules("nat"),
        filter_cni: rules("filter")
            .into_iter()
            .filter(|l| l.contains("CNI"))
            .collect(),
    }
}

/// Once everything is removed (take-downs run on after the CLI returns): the host as
/// `before`, but for the daemon's bridge device, which the guard removes with the daemon.
fn assert_host_as_before(before: &HostNet, d: Daemon, guard: HostGuard) {
    let now = || {
        let mut now = snapshot();
        now.links.retain(|l| *l != guard.bridge);
        now
    };
    if poll(Duration::from_secs(20), || (now() == *before).then_some(())).is_none() {
        assert_eq!(now(), *before, "the host after everything was removed");
    }
    drop(d);
    drop(guard);
}

/// Puts back what a daemon's bridge brings to the host when the test is over, pass or
/// fail: the bridge device (like docker0, it stays while the daemon lives) and
/// `ip_forward`, which the bridge plugin turns on.
struct HostGuard {
    bridge: String,
    ip_forward: String,
}

impl HostGuard {
    /// For the bridge `bn<n><pid>`.
    fn new(n: u8) -> HostGuard {
        HostGuard {
            bridge: format!("bn{n}{}", std::process::id() % 100_000),
            ip_forward: std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward")
                .unwrap_or_default(),
        }
    }
}

impl Drop for HostGuard {
    fn drop(&mut self) {
        sh(&format!("ip link delete {} 2>/dev/null", self.bridge));
        let _ = std::fs::write("/proc/sys/net/ipv4/ip_forward", &self.ip_forward);
    }
}

/// A daemon with its own default bridge `bn<n><pid>` on 10.213.<n>.0/24.
fn daemon(test: &str, n: u8) -> Option<(Daemon, HostGuard, String)> {
    if Peer::from_env() != Peer::Berthd {
        eprintln!("skipping {test}: it drives berthd's own bridge (--bridge, --bip)");
        return None;
    }
    let guard = HostGuard::new(n);
    let gateway = format!("10.213.{n}.1");
    let args = vec![
        "--bridge".to_string(),
        guard.bridge.clone(),
        "--bip".to_string(),
        format!("{gateway}/24"),
    ];
    let d = Daemon::start_with(test, &args)?;
    Some((d, guard, gateway))
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// GET / on `addr`, the body; None until it answers.
fn http_get(addr: SocketAddr) -> Option<String> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(3))).ok()?;
    s.write_all(b"GET / HTTP/1.0\r\n\r\n").ok()?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).ok()?;
    let (head, body) = buf.split_once("\r\n\r\n")?;
    head.starts_with("HTTP/1.").then(|| body.trim().to_string())
}

#[track_caller]
fn wait_http(addr: SocketAddr) -> String {
    poll(Duration::from_secs(20), || http_get(addr))
        .unwrap_or_else(|| panic!("no HTTP answer on {addr}"))
}

/// `wget` from a new container on `network`; the body, or None when it failed. (Debian's
/// busybox 1.35 wget crashes with `-T`, so `timeout` bounds it.)
fn wget_from(d: &Daemon, network: &str, url: &str) -> Option<String> {
    let o = d.docker(&[
        "run",
        "--rm",
        "--network",
        network,
        "busybox",
        "timeout",
        "5",
        "wget",
        "-qO-",
        url,
    ]);
    o.ok().then(|| o.out().to_string())
}

#[test]
fn published_ports_names_internal_networks_and_a_clean_host() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let before = snapshot();
    let Some((d, guard, gateway)) = daemon("network", 1) else {
        return;
    };
    let builtin = d.docker_ok(&["network", "ls", "--format", "{{.Name}} {{.Driver}}"]);
    for want in ["bridge bridge", "host host", "none null"] {
        assert!(builtin.lines().any(|l| l == want), "{want}: {builtin}");
    }
    assert_eq!(
        d.docker_ok(&[
            "network",
            "inspect",
            "-f",
            "{{range .IPAM.Config}}{{.Subnet}} {{.Gateway}}{{end}}",
            "bridge"
        ]),
        format!("10.213.1.0/24 {gateway}")
    );

    // The default bridge: a published port from the host, on 127.0.0.1 and the gateway.
    let port = free_port();
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "web",
        "--hostname",
        "web-host",
        "-p",
        &format!("{port}:80"),
        "busybox",
        "sh",
        "-c",
        HTTPD,
    ]);
    assert_eq!(
        wait_http(SocketAddr::from((Ipv4Addr::LOCALHOST, port))),
        "web-host"
    );
    let gw: Ipv4Addr = gateway.parse().unwrap();
    assert_eq!(wait_http(SocketAddr::from((gw, port))), "web-host");
    assert_eq!(
        d.docker_ok(&["port", "web"]),
        format!("80/tcp -> 0.0.0.0:{port}")
    );
    assert_eq!(
        d.docker_ok(&["port", "web", "80"]),
        format!("0.0.0.0:{port}")
    );
    let ip = d.inspect("web", "{{.NetworkSettings.IPAddress}}");
    assert!(ip.starts_with("10.213.1."), "web's address {ip:?}");
    assert_eq!(
        d.inspect("web", "{{.NetworkSettings.Networks.bridge.Gateway}}"),
        gateway
    );
    let ps = d.docker_ok(&["ps", "--format", "{{.Names}} {{.Ports}}"]);
    assert!(ps.contains(&format!("web 0.0.0.0:{port}->80/tcp")), "{ps}");
    // From another container: the published port on the host, and web's own address.
    let url = format!("http://{gateway}:{port}/");
    assert_eq!(wget_from(&d, "bridge", &url).as_deref(), Some("web-host"));
    assert_eq!(
        wget_from(&d, "bridge", &format!("http://{ip}/")).as_deref(),
        Some("web-host")
    );
    // The port is taken while web runs.
    let o = d.docker_fails(&["run", "-d", "-p", &format!("{port}:80"), "busybox", "true"]);
    assert!(
        o.stderr.contains("already allocated") || o.stderr.contains("in use"),
        "{o}"
    );
    // -P publishes the EXPOSEd ports on ports the daemon picks.
    d.docker_ok(&[
        "run", "-d", "--name", "anyport", "--expose", "80", "-P", "busybox", "sh", "-c", HTTPD,
    ]);
    let picked = d.docker_ok(&["port", "anyport", "80/tcp"]);
    let picked: u16 = picked
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("docker port anyport: {picked:?}"));
    assert_eq!(
        wait_http(SocketAddr::from((Ipv4Addr::LOCALHOST, picked))),
        d.docker_ok(&["inspect", "-f", "{{.Config.Hostname}}", "anyport"])
    );

    // A port bound to one host address answers there only; a UDP port carries datagrams.
    let local_port = free_port();
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "localweb",
        "-p",
        &format!("127.0.0.1:{local_port}:80"),
        "busybox",
        "sh",
        "-c",
        HTTPD,
    ]);
    assert_eq!(
        d.docker_ok(&["port", "localweb"]),
        format!("80/tcp -> 127.0.0.1:{local_port}")
    );
    let local_host = d.inspect("localweb", "{{.Config.Hostname}}");
    assert_eq!(
        wait_http(SocketAddr::from((Ipv4Addr::LOCALHOST, local_port))),
        local_host
    );
    assert_eq!(
        http_get(SocketAddr::from((gw, local_port))),
        None,
        "a port published on 127.0.0.1 is not on the gateway's address"
    );
    // busybox has no UDP server: the host's Python (with /usr and its libraries mounted
    // read-only) echoes datagrams.
    let udp_port = free_port();
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "udpsink",
        "-p",
        &format!("{udp_port}:5353/udp"),
        "-v",
        "/usr:/usr:ro",
        "-v",
        "/usr/lib:/lib:ro",
        "-v",
        "/usr/lib64:/lib64:ro",
        "busybox",
        "/usr/bin/python3",
        "-c",
        "import socket\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\ns.bind(('0.0.0.0', 5353))\nwhile True:\n    d, a = s.recvfrom(2048)\n    s.sendto(d, a)\n",
    ]);
    assert_eq!(
        d.docker_ok(&["port", "udpsink"]),
        format!("5353/udp -> 0.0.0.0:{udp_port}")
    );
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").expect("a UDP socket");
    udp.set_read_timeout(Some(Duration::from_millis(300)))
        .expect("a UDP read timeout");
    let echoed = poll(Duration::from_secs(20), || {
        udp.send_to(b"datagram-through-portmap", ("127.0.0.1", udp_port))
            .ok()?;
        let mut buf = [0u8; 64];
        let (n, _) = udp.recv_from(&mut buf).ok()?;
        Some(buf[..n].to_vec())
    });
    assert_eq!(
        echoed.as_deref(),
        Some(&b"datagram-through-portmap"[..]),
        "no echo from the container's published UDP port"
    );
    d.docker_ok(&["rm", "-f", "localweb", "udpsink"]);

    // host and none.
    let host_links = sh("ip -o link show | wc -l");
    let seen = d.docker_ok(&[
        "run",
        "--rm",
        "--network",
        "host",
        "busybox",
        "sh",
        "-c",
        "ip -o link show | wc -l",
    ]);
    assert_eq!(
        seen.trim(),
        host_links.trim(),
        "host network sees the host's links"
    );
    let lo_only = d.docker_ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        "busybox",
        "ip",
        "-o",
        "link",
        "show",
    ]);
    assert_eq!(lo_only.lines().count(), 1, "{lo_only}");
    assert!(
        lo_only.contains("lo:") && lo_only.contains("UP"),
        "{lo_only}"
    );

    // A user network: names and aliases through the embedded DNS, a fixed address.
    d.docker_ok(&[
        "network",
        "create",
        "--subnet",
        "10.214.1.0/24",
        "--gateway",
        "10.214.1.254",
        "--label",
        "team=a",
        "front",
    ]);
    let o = d.docker_fails(&["network", "create", "--subnet", "10.214.1.128/25", "clash"]);
    assert!(o.stderr.contains("overlap"), "{o}");
    let o = d.docker_fails(&["network", "create", "front"]);
    assert!(o.stderr.contains("already exists"), "{o}");
    assert_eq!(
        d.docker_ok(&[
            "network",
            "ls",
            "--filter",
            "label=team=a",
            "--format",
            "{{.Name}}"
        ]),
        "front"
    );
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "api",
        "--hostname",
        "api-host",
        "--network",
        "front",
        "--network-alias",
        "backend",
        "--ip",
        "10.214.1.50",
        "busybox",
        "sh",
        "-c",
        HTTPD,
    ]);
    d.wait_for("api", "{{.State.Running}}", "true", Duration::from_secs(20));
    assert_eq!(
        d.inspect("api", "{{.NetworkSettings.Networks.front.IPAddress}}"),
        "10.214.1.50"
    );
    for name in ["api", "backend"] {
        let got = poll(Duration::from_secs(20), || {
            wget_from(&d, "front", &format!("http://{name}/"))
        });
        assert_eq!(got.as_deref(), Some("api-host"), "{name} on front");
    }
    let files = d.docker_ok(&[
        "run",
        "--rm",
        "--network",
        "front",
        "--hostname",
        "probe",
        "--add-host",
        "db.local:10.9.9.9",
        "busybox",
        "sh",
        "-c",
        "cat /etc/hostname /etc/resolv.conf /etc/hosts",
    ]);
    assert!(files.lines().next() == Some("probe"), "{files}");
    assert!(files.contains("nameserver 10.214.1.254"), "{files}");
    assert!(
        files.contains("10.9.9.9\tdb.local") || files.contains("10.9.9.9 db.local"),
        "{files}"
    );
    assert!(
        files
            .lines()
            .any(|l| l.starts_with("10.214.1.") && l.contains("probe")),
        "{files}"
    );
    let inspect = d.docker_ok(&[
        "network",
        "inspect",
        "-f",
        "{{range .Containers}}{{.Name}} {{.IPv4Address}}{{end}}",
        "front",
    ]);
    assert_eq!(inspect, "api 10.214.1.50/24");
    // The default bridge has no names; networks are isolated from each other.
    assert_eq!(wget_from(&d, "bridge", "http://api/"), None);
    assert_eq!(wget_from(&d, "bridge", "http://10.214.1.50/"), None);

    // --internal: no way out, but names inside still answer.
    d.docker_ok(&[
        "network",
        "create",
        "--internal",
        "--subnet",
        "10.214.2.0/24",
        "inner",
    ]);
    assert_eq!(
        wget_from(&d, "inner", &url),
        None,
        "an internal network reaches {url}"
    );
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "vault",
        "--hostname",
        "vault-host",
        "--network",
        "inner",
        "busybox",
        "sh",
        "-c",
        HTTPD,
    ]);
    let got = poll(Duration::from_secs(20), || {
        wget_from(&d, "inner", "http://vault/")
    });
    assert_eq!(got.as_deref(), Some("vault-host"));

    // disconnect makes the name unreachable; connect brings it back with a new alias.
    d.docker_ok(&["network", "disconnect", "front", "api"]);
    assert_eq!(wget_from(&d, "front", "http://api/"), None);
    assert_eq!(d.inspect("api", "{{len .NetworkSettings.Networks}}"), "0");
    d.docker_ok(&["network", "connect", "--alias", "again", "front", "api"]);
    let got = poll(Duration::from_secs(20), || {
        wget_from(&d, "front", "http://again/")
    });
    assert_eq!(got.as_deref(), Some("api-host"));
    d.docker_ok(&["network", "connect", "bridge", "api"]);
    assert_eq!(d.inspect("api", "{{len .NetworkSettings.Networks}}"), "2");
    let o = d.docker_fails(&["network", "rm", "front"]);
    assert!(o.stderr.contains("active endpoints"), "{o}");
    let o = d.docker_fails(&["network", "rm", "bridge"]);
    assert!(o.stderr.contains("pre-defined"), "{o}");
    let o = d.docker_fails(&["network", "inspect", "nosuch"]);
    assert!(o.stderr.contains("nosuch"), "{o}");

    // Removing everything leaves the host as it was.
    d.docker_ok(&["rm", "-f", "web", "anyport", "api", "vault"]);
    d.docker_ok(&["network", "create", "spare"]);
    d.docker_ok(&["network", "rm", "inner"]);
    let pruned = d.docker_ok(&["network", "prune", "-f"]);
    assert!(
        pruned.contains("front") && pruned.contains("spare"),
        "{pruned}"
    );
    assert_eq!(
        d.docker_ok(&["network", "ls", "--format", "{{.Name}}"])
            .lines()
            .count(),
        3
    );
    assert_host_as_before(&before, d, guard);
}

#[test]
fn addresses_and_port_reservations_survive_a_daemon_restart() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let before = snapshot();
    let Some((mut d, guard, _gateway)) = daemon("network_restart", 2) else {
        return;
    };
    let port = free_port();
    d.docker_ok(&["network", "create", "--subnet", "10.214.3.0/24", "back"]);
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "keep",
        "--hostname",
        "keep-host",
        "--network",
        "back",
        "-p",
        &format!("{port}:80"),
        "busybox",
        "sh",
        "-c",
        HTTPD,
    ]);
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    assert_eq!(wait_http(addr), "keep-host");
    let ip = d.inspect("keep", "{{.NetworkSettings.Networks.back.IPAddress}}");
    assert!(ip.starts_with("10.214.3."), "{ip}");

    d.kill9();
    assert_eq!(
        http_get(addr).as_deref(),
        Some("keep-host"),
        "the port works without the daemon"
    );
    d.launch();

    assert_eq!(
        d.inspect("keep", "{{.NetworkSettings.Networks.back.IPAddress}}"),
        ip
    );
    assert_eq!(
        d.docker_ok(&["port", "keep"]),
        format!("80/tcp -> 0.0.0.0:{port}")
    );
    let o = d.docker_fails(&["run", "-d", "-p", &format!("{port}:80"), "busybox", "true"]);
    assert!(
        o.stderr.contains("already allocated") || o.stderr.contains("in use"),
        "{o}"
    );
    let got = poll(Duration::from_secs(20), || {
        wget_from(&d, "back", "http://keep/")
    });
    assert_eq!(got.as_deref(), Some("keep-host"), "names after the restart");
    let other = d.docker_ok(&[
        "run",
        "--rm",
        "--network",
        "back",
        "busybox",
        "sh",
        "-c",
        "ip -4 -o addr show eth0",
    ]);
    assert!(
        other.contains("10.214.3.") && !other.contains(&format!("{ip}/")),
        "{other}"
    );

    // Stopping releases the port; the address comes back on start.
    d.docker_ok(&["stop", "-t", "1", "keep"]);
    assert_eq!(
        d.inspect("keep", "{{.NetworkSettings.Networks.back.IPAddress}}"),
        ""
    );
    assert_eq!(d.docker_ok(&["port", "keep"]), "");
    let taker = d.docker_ok(&[
        "run",
        "-d",
        "-p",
        &format!("{port}:80"),
        "busybox",
        "sh",
        "-c",
        HTTPD,
    ]);
    d.docker_ok(&["rm", "-f", &taker]);
    d.docker_ok(&["start", "keep"]);
    assert_eq!(wait_http(addr), "keep-host");

    d.docker_ok(&["rm", "-f", "keep"]);
    d.docker_ok(&["network", "rm", "back"]);
    assert_host_as_before(&before, d, guard);
}

#[test]
fn an_existing_bridge_device_keeps_its_address() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let test = "existing_bridge";
    if Peer::from_env() != Peer::Berthd {
        eprintln!("skipping {test}: it drives berthd's own bridge (--bridge)");
        return;
    }
    let before = snapshot();
    let guard = HostGuard::new(5);
    // Made by hand (or left by an earlier daemon), with an address of its own: berthd
    // without --bip takes that address, as dockerd does with docker0.
    let made = Command::new("sh")
        .args([
            "-c",
            &format!(
                "ip link add {b} type bridge && ip addr add 10.213.5.1/24 dev {b}",
                b = guard.bridge
            ),
        ])
        .status()
        .expect("ip link add");
    assert!(made.success(), "making the bridge {}", guard.bridge);
    let Some(d) = Daemon::start_with(test, &["--bridge".to_string(), guard.bridge.clone()]) else {
        return;
    };
    assert_eq!(
        d.docker_ok(&[
            "network",
            "inspect",
            "-f",
            "{{range .IPAM.Config}}{{.Subnet}} {{.Gateway}}{{end}}",
            "bridge"
        ]),
        "10.213.5.0/24 10.213.5.1"
    );
    let seen = d.docker_ok(&[
        "run",
        "--rm",
        "busybox",
        "sh",
        "-c",
        "ip -o -4 addr show dev eth0; ip route show default",
    ]);
    assert!(seen.contains("inet 10.213.5."), "{seen}");
    assert!(seen.contains("default via 10.213.5.1"), "{seen}");
    assert_host_as_before(&before, d, guard);
}
