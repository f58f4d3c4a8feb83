//! From a [`ContainerSpec`] to what the runtime gets: the options of the bundle's base spec,
//! the effective configuration (spec merged over the image config), and the changes to
//! config.json for mounts, limits, capabilities, seccomp, rlimits and sysctls. Pure functions.

use std::collections::BTreeSet;

use oci_spec::image::ImageConfiguration;
use serde_json::{json, Value};

use crate::bundle::{RunOptions, DEFAULT_CAPS};
use crate::error::{Error, Result};
use crate::model::{ContainerSpec, EffectiveConfig, MountKind, RestartKind};

/// Every capability the kernel knows, for `--privileged` and `--cap-add ALL`.
pub const ALL_CAPS: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// Syscalls the default seccomp profile refuses with EPERM: those Docker's default profile
/// leaves out for a container without extra capabilities (kernel modules, kexec, clock and
/// swap changes, reboot, accounting, keyrings, bpf, perf, userfaultfd, mounts, namespaces).
pub const DEFAULT_SECCOMP_DENY: &[&str] = &[
    "acct",
    "add_key",
    "bpf",
    "clock_adjtime",
    "clock_settime",
    "create_module",
    "delete_module",
    "finit_module",
    "fsconfig",
    "fsmount",
    "fsopen",
    "fspick",
    "get_kernel_syms",
    "get_mempolicy",
    "init_module",
    "ioperm",
    "iopl",
    "kcmp",
    "kexec_file_load",
    "kexec_load",
    "keyctl",
    "lookup_dcookie",
    "mbind",
    "mount",
    "mount_setattr",
    "move_mount",
    "move_pages",
    "name_to_handle_at",
    "nfsservctl",
    "open_by_handle_at",
    "open_tree",
    "perf_event_open",
    "personality",
    "pivot_root",
    "process_vm_readv",
    "process_vm_writev",
    "ptrace",
    "query_module",
    "quotactl",
    "reboot",
    "request_key",
    "set_mempolicy",
    "setns",
    "settimeofday",
    "stime",
    "swapoff",
    "swapon",
    "sysfs",
    "umount",
    "umount2",
    "unshare",
    "uselib",
    "userfaultfd",
    "ustat",
    "vm86",
    "vm86old",
];

/// The options of the bundle's base spec.
pub fn run_options(spec: &ContainerSpec, hostname: &str) -> RunOptions {
    RunOptions {
        cmd: spec.cmd.clone().unwrap_or_default(),
        entrypoint: spec.entrypoint.clone(),
        env: spec.env.clone(),
        workdir: spec.workdir.clone().filter(|w| !w.is_empty()),
        user: spec.user.clone().filter(|u| !u.is_empty()),
        hostname: Some(hostname.to_string()),
        terminal: spec.tty,
        name: spec.name.clone(),
    }
}

/// Checks what the image cannot tell: names, policies, paths, sizes. Errors name the field.
pub fn validate(spec: &ContainerSpec) -> Result<()> {
    if let Some(name) = &spec.name {
        if !valid_name(name) {
            return Err(Error::Invalid(format!(
                "Invalid container name ({name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
            )));
        }
    }
    if spec.image.is_empty() {
        return Err(Error::Invalid("no image given".into()));
    }
    if spec.restart_policy.kind != RestartKind::OnFailure && spec.restart_policy.max_retries > 0 {
        return Err(Error::Invalid(format!(
            "invalid restart policy: maximum retry count cannot be used with restart policy '{}'",
            spec.restart_policy.kind.as_str()
        )));
    }
    if spec.auto_remove && spec.restart_policy.kind != RestartKind::No {
        return Err(Error::Invalid(
            "conflicting options: cannot specify both --restart and --rm".into(),
        ));
    }
    let mut targets = BTreeSet::new();
    for m in &spec.mounts {
        if !m.target.starts_with('/') {
            return Err(Error::Invalid(format!(
                "invalid mount config: mount path must be absolute: {:?}",
                m.target
            )));
        }
        if m.kind == MountKind::Bind && !m.source.starts_with('/') {
            return Err(Error::Invalid(format!(
                "invalid mount config for type \"bind\": invalid mount path: '{}' mount path must be absolute",
                m.source
            )));
        }
        if m.kind == MountKind::Volume && !m.source.is_empty() && !valid_volume_name(&m.source) {
            return Err(Error::Invalid(format!(
                "create {}: \"{}\" includes invalid characters for a local volume name, only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed",
                m.source, m.source
            )));
        }
        if !targets.insert(clean(&m.target)) {
            return Err(Error::Invalid(format!(
                "Duplicate mount point: {}",
                m.target
            )));
        }
    }
    for t in spec.tmpfs.keys() {
        if !t.starts_with('/') {
            return Err(Error::Invalid(format!(
                "invalid tmpfs mount {t:?}: the path must be absolute"
            )));
        }
    }
    if let Some(sig) = &spec.stop_signal {
        parse_signal(sig)?;
    }
    if spec.resources.memory != 0 && spec.resources.memory < 6 * 1024 * 1024 {
        return Err(Error::Invalid(
            "Minimum memory limit allowed is 6MB".to_string(),
        ));
    }
    if spec.resources.nano_cpus != 0
        && (spec.resources.cpu_quota != 0 || spec.resources.cpu_period != 0)
    {
        return Err(Error::Invalid(
            "Conflicting options: Nano CPUs and CPU Period cannot both be set".into(),
        ));
    }
    if let Some(h) = &spec.healthcheck {
        for (what, v) in [
            ("Interval", h.interval),
            ("Timeout", h.timeout),
            ("StartPeriod", h.start_period),
        ] {
            if v != 0 && v < 1_000_000 {
                return Err(Error::Invalid(format!(
                    "{what} in Healthcheck cannot be less than 1ms"
                )));
            }
        }
        if h.retries < 0 {
            return Err(Error::Invalid(
                "Retries in Healthcheck cannot be negative".into(),
            ));
        }
    }
    for cap in spec.cap_add.iter().chain(&spec.cap_drop) {
        if !cap.eq_ignore_ascii_case("ALL") && !ALL_CAPS.contains(&normalize_cap(cap).as_str()) {
            return Err(Error::Invalid(format!("unknown capability: {cap:?}")));
        }
    }
    if let Some(p) = &spec.seccomp_profile {
        if p != "unconfined" {
            serde_json::from_str::<Value>(p)
                .map_err(|e| Error::Invalid(format!("Decoding seccomp profile failed: {e}")))?;
        }
    }
    Ok(())
}

/// Docker's container names: `[a-zA-Z0-9][a-zA-Z0-9_.-]+`.
pub fn valid_name(name: &str) -> bool {
    let b = name.as_bytes();
    b.len() >= 2
        && b[0].is_ascii_alphanumeric()
        && b[1..]
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || b"_.-".contains(c))
}

/// A local volume name: `[a-zA-Z0-9][a-zA-Z0-9_.-]+`.
pub fn valid_volume_name(name: &str) -> bool {
    valid_name(name)
}

fn clean(p: &str) -> String {
    let t = p.trim_end_matches('/');
    if t.is_empty() {
        "/".into()
    } else {
        t.into()
    }
}

/// A signal by name (`KILL`, `SIGKILL`, `sigkill`) or number.
pub fn parse_signal(s: &str) -> Result<i32> {
    let bad = || Error::Invalid(format!("Invalid signal: {s}"));
    if let Ok(n) = s.parse::<i32>() {
        return if (1..=64).contains(&n) {
            Ok(n)
        } else {
            Err(bad())
        };
    }
    let up = s.to_ascii_uppercase();
    let name = up.strip_prefix("SIG").unwrap_or(&up);
    let n = match name {
        "HUP" => libc::SIGHUP,
        "INT" => libc::SIGINT,
        "QUIT" => libc::SIGQUIT,
        "ILL" => libc::SIGILL,
        "TRAP" => libc::SIGTRAP,
        "ABRT" | "IOT" => libc::SIGABRT,
        "BUS" => libc::SIGBUS,
        "FPE" => libc::SIGFPE,
        "KILL" => libc::SIGKILL,
        "USR1" => libc::SIGUSR1,
        "SEGV" => libc::SIGSEGV,
        "USR2" => libc::SIGUSR2,
        "PIPE" => libc::SIGPIPE,
        "ALRM" => libc::SIGALRM,
        "TERM" => libc::SIGTERM,
        "STKFLT" => libc::SIGSTKFLT,
        "CHLD" => libc::SIGCHLD,
        "CONT" => libc::SIGCONT,
        "STOP" => libc::SIGSTOP,
        "TSTP" => libc::SIGTSTP,
        "TTIN" => libc::SIGTTIN,
        "TTOU" => libc::SIGTTOU,
        "URG" => libc::SIGURG,
        "XCPU" => libc::SIGXCPU,
        "XFSZ" => libc::SIGXFSZ,
        "VTALRM" => libc::SIGVTALRM,
        "PROF" => libc::SIGPROF,
        "WINCH" => libc::SIGWINCH,
        "IO" | "POLL" => libc::SIGIO,
        "PWR" => libc::SIGPWR,
        "SYS" => libc::SIGSYS,
        _ => {
            if let Some(rt) = name.strip_prefix("RTMIN+") {
                let k: i32 = rt.parse().map_err(|_| bad())?;
                return Ok(libc::SIGRTMIN() + k);
            }
            return Err(bad());
        }
    };
    Ok(n)
}

/// `chown` → `CAP_CHOWN`.
pub fn normalize_cap(c: &str) -> String {
    let up = c.to_ascii_uppercase();
    if up.starts_with("CAP_") {
        up
    } else {
        format!("CAP_{up}")
    }
}

/// The capability set: Docker's default (or all when privileged), plus adds, minus drops.
pub fn capabilities(spec: &ContainerSpec) -> Vec<String> {
    if spec.privileged {
        return ALL_CAPS.iter().map(|s| s.to_string()).collect();
    }
    let mut set: Vec<String> = DEFAULT_CAPS.iter().map(|s| s.to_string()).collect();
    if spec.cap_drop.iter().any(|c| c.eq_ignore_ascii_case("ALL")) {
        set.clear();
    }
    if spec.cap_add.iter().any(|c| c.eq_ignore_ascii_case("ALL")) {
        set = ALL_CAPS.iter().map(|s| s.to_string()).collect();
    } else {
        for c in &spec.cap_add {
            let c = normalize_cap(c);
            if !set.contains(&c) {
                set.push(c);
            }
        }
    }
    let drops: Vec<String> = spec
        .cap_drop
        .iter()
        .filter(|c| !c.eq_ignore_ascii_case("ALL"))
        .map(|c| normalize_cap(c))
        .collect();
    set.retain(|c| !drops.contains(c));
    set
}

/// The spec merged over the image's config, as inspect shows it.
pub fn effective_config(
    image: &ImageConfiguration,
    spec: &ContainerSpec,
    hostname: &str,
) -> EffectiveConfig {
    let ic = image.config().clone().unwrap_or_default();
    let (entrypoint, cmd) = match &spec.entrypoint {
        Some(e) => {
            let e = if e == &[String::new()] {
                Vec::new()
            } else {
                e.clone()
            };
            (e, spec.cmd.clone().unwrap_or_default())
        }
        None => (
            ic.entrypoint().clone().unwrap_or_default(),
            spec.cmd
                .clone()
                .unwrap_or_else(|| ic.cmd().clone().unwrap_or_default()),
        ),
    };
    let mut env: Vec<String> = Vec::new();
    let mut set = |kv: &str| {
        let k = kv.split_once('=').map(|(k, _)| k).unwrap_or(kv);
        env.retain(|e| e.split_once('=').map(|(ek, _)| ek).unwrap_or(e) != k);
        env.push(kv.to_string());
    };
    for kv in ic.env().iter().flatten() {
        set(kv);
    }
    for kv in &spec.env {
        set(kv);
    }
    if !env.iter().any(|e| e.starts_with("PATH=")) {
        env.insert(0, crate::bundle::DEFAULT_PATH.to_string());
    }
    let mut labels = ic.labels().clone().unwrap_or_default();
    labels.extend(spec.labels.clone());
    let mut exposed: BTreeSet<String> = ic.exposed_ports().iter().flatten().cloned().collect();
    exposed.extend(spec.exposed_ports.iter().cloned());
    exposed.extend(spec.port_bindings.keys().cloned());
    let mut volumes: BTreeSet<String> = ic.volumes().iter().flatten().cloned().collect();
    volumes.extend(spec.volumes.iter().cloned());
    EffectiveConfig {
        hostname: hostname.to_string(),
        domainname: spec.domainname.clone().unwrap_or_default(),
        user: spec
            .user
            .clone()
            .filter(|u| !u.is_empty())
            .or_else(|| ic.user().clone())
            .unwrap_or_default(),
        env,
        cmd,
        entrypoint,
        workdir: spec
            .workdir
            .clone()
            .filter(|w| !w.is_empty())
            .or_else(|| ic.working_dir().clone())
            .unwrap_or_default(),
        labels: labels.into_iter().collect(),
        exposed_ports: exposed.into_iter().collect(),
        volumes: volumes.into_iter().collect(),
        stop_signal: spec
            .stop_signal
            .clone()
            .or_else(|| ic.stop_signal().clone()),
        healthcheck: spec.healthcheck.clone(),
    }
}

/// An image config's `Healthcheck` (Docker's JSON: durations in nanoseconds).
pub fn image_healthcheck(v: &serde_json::Value) -> Option<crate::Healthcheck> {
    let test: Vec<String> = v["Test"]
        .as_array()?
        .iter()
        .filter_map(|s| s.as_str().map(str::to_string))
        .collect();
    let n = |k: &str| v[k].as_i64().unwrap_or(0);
    Some(crate::Healthcheck {
        test,
        interval: n("Interval"),
        timeout: n("Timeout"),
        start_period: n("StartPeriod"),
        retries: n("Retries"),
    })
}

/// Docker's rule: the container's health check options override the image's one by one,
/// and an empty test takes the image's.
pub fn merge_healthcheck(
    ctr: Option<crate::Healthcheck>,
    image: Option<crate::Healthcheck>,
) -> Option<crate::Healthcheck> {
    match (ctr, image) {
        (None, i) => i,
        (Some(c), None) => Some(c),
        (Some(c), Some(i)) => Some(crate::Healthcheck {
            test: if c.test.is_empty() { i.test } else { c.test },
            interval: if c.interval == 0 {
                i.interval
            } else {
                c.interval
            },
            timeout: if c.timeout == 0 { i.timeout } else { c.timeout },
            start_period: if c.start_period == 0 {
                i.start_period
            } else {
                c.start_period
            },
            retries: if c.retries == 0 { i.retries } else { c.retries },
        }),
    }
}

/// A mount ready for config.json: a host path bound at a container path, or a tmpfs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedMount {
    pub kind: MountKind,
    pub source: String,
    pub destination: String,
    pub read_only: bool,
    pub propagation: String,
    /// tmpfs options (`size=…`, `mode=…`, user options).
    pub options: Vec<String>,
}

/// What [`apply`] needs besides the spec.
pub struct ApplyContext<'a> {
    pub cgroups_path: &'a str,
    pub mounts: &'a [ResolvedMount],
    /// `/etc/hostname`, `/etc/hosts`, `/etc/resolv.conf` on the host, bound read-write.
    pub etc_files: &'a [(String, String)],
}

/// Changes the bundle's base config.json for everything the spec asks beyond the image.
pub fn apply(config: &mut Value, spec: &ContainerSpec, ctx: &ApplyContext<'_>) -> Result<()> {
    let caps = capabilities(spec);
    let process = &mut config["process"];
    process["capabilities"] = json!({
        "bounding": caps, "effective": caps, "permitted": caps,
    });
    process["noNewPrivileges"] = json!(spec.no_new_privileges);
    if spec.oom_score_adj != 0 {
        process["oomScoreAdj"] = json!(spec.oom_score_adj);
    }
    if !spec.ulimits.is_empty() {
        let rl: Vec<Value> = spec
            .ulimits
            .iter()
            .map(|u| {
                json!({
                    "type": format!("RLIMIT_{}", u.name.to_ascii_uppercase()),
                    "soft": u.soft, "hard": u.hard,
                })
            })
            .collect();
        process["rlimits"] = json!(rl);
    }
    if !spec.group_add.is_empty() {
        let mut gids: Vec<u32> = process["user"]["additionalGids"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_u64())
                    .map(|v| v as u32)
                    .collect()
            })
            .unwrap_or_default();
        for g in &spec.group_add {
            let gid: u32 = g.parse().map_err(|_| {
                Error::Invalid(format!(
                    "group-add {g:?}: only numeric group ids are supported"
                ))
            })?;
            if !gids.contains(&gid) {
                gids.push(gid);
            }
        }
        process["user"]["additionalGids"] = json!(gids);
    }
    if let Some(d) = spec.domainname.as_ref().filter(|d| !d.is_empty()) {
        config["domainname"] = json!(d);
    }
    config["root"]["readonly"] = json!(spec.read_only);
    if spec.init {
        // berth-runc's built-in init (pid 1 reaps and forwards signals), like tini for dockerd.
        config["annotations"]["berth.init"] = json!("true");
    }

    let mounts = config["mounts"]
        .as_array_mut()
        .ok_or_else(|| Error::Internal("base config has no mounts".into()))?;
    if spec.shm_size > 0 {
        for m in mounts.iter_mut() {
            if m["destination"] == "/dev/shm" {
                m["options"] = json!([
                    "nosuid",
                    "noexec",
                    "nodev",
                    "mode=1777",
                    format!("size={}", spec.shm_size)
                ]);
            }
        }
    }
    let user_targets: BTreeSet<String> = ctx
        .mounts
        .iter()
        .map(|m| clean(&m.destination))
        .chain(spec.tmpfs.keys().map(|t| clean(t)))
        .collect();
    // A user mount over a default one (`--tmpfs /dev/shm`) replaces it.
    mounts.retain(|m| {
        m["destination"]
            .as_str()
            .map(|d| !user_targets.contains(d))
            .unwrap_or(true)
    });
    for (src, dst) in ctx.etc_files {
        if user_targets.contains(dst.as_str()) {
            continue;
        }
        mounts.push(json!({
            "destination": dst, "type": "bind", "source": src,
            "options": ["rbind", "rprivate"],
        }));
    }
    for m in ctx.mounts {
        match m.kind {
            MountKind::Tmpfs => {
                let mut opts = vec!["nosuid".to_string(), "nodev".to_string()];
                opts.extend(m.options.iter().cloned());
                mounts.push(json!({
                    "destination": m.destination, "type": "tmpfs", "source": "tmpfs",
                    "options": opts,
                }));
            }
            MountKind::Bind | MountKind::Volume => {
                let mut opts = vec!["rbind".to_string(), m.propagation.clone()];
                if m.read_only {
                    opts.push("ro".into());
                }
                mounts.push(json!({
                    "destination": m.destination, "type": "bind", "source": m.source,
                    "options": opts,
                }));
            }
        }
    }
    for (dst, options) in &spec.tmpfs {
        let mut opts = vec![
            "nosuid".to_string(),
            "nodev".to_string(),
            "noexec".to_string(),
        ];
        for o in options.split(',').map(str::trim).filter(|o| !o.is_empty()) {
            match o {
                "exec" => opts.retain(|x| x != "noexec"),
                "dev" => opts.retain(|x| x != "nodev"),
                "suid" => opts.retain(|x| x != "nosuid"),
                _ => opts.push(o.to_string()),
            }
        }
        mounts.push(json!({
            "destination": dst, "type": "tmpfs", "source": "tmpfs", "options": opts,
        }));
    }
    if spec.privileged {
        // The cgroup and sysfs mounts become writable, as Docker does.
        for m in mounts.iter_mut() {
            let writable = m["type"] == "sysfs" || m["type"] == "cgroup";
            if let (true, Some(opts)) = (writable, m["options"].as_array_mut()) {
                opts.retain(|o| o != "ro");
            }
        }
    }

    let linux = &mut config["linux"];
    linux["cgroupsPath"] = json!(ctx.cgroups_path);
    let r = &spec.resources;
    let mut res = json!({});
    if spec.privileged {
        res["devices"] = json!([{ "allow": true, "access": "rwm" }]);
        linux["maskedPaths"] = json!([]);
        linux["readonlyPaths"] = json!([]);
    } else {
        res["devices"] = default_device_rules();
    }
    let mut mem = json!({});
    if r.memory > 0 {
        mem["limit"] = json!(r.memory);
        // Docker: without --memory-swap, swap is as large as the memory limit.
        mem["swap"] = json!(match r.memory_swap {
            0 => r.memory * 2,
            s => s,
        });
    } else if r.memory_swap != 0 {
        return Err(Error::Invalid(
            "You should always set the Memory limit when using Memoryswap limit".into(),
        ));
    }
    if r.memory_reservation > 0 {
        mem["reservation"] = json!(r.memory_reservation);
    }
    if mem.as_object().is_some_and(|o| !o.is_empty()) {
        res["memory"] = mem;
    }
    let mut cpu = json!({});
    if r.cpu_shares > 0 {
        cpu["shares"] = json!(r.cpu_shares);
    }
    if r.nano_cpus > 0 {
        let period: i64 = 100_000;
        cpu["period"] = json!(period);
        cpu["quota"] = json!(r.nano_cpus * period / 1_000_000_000);
    } else {
        if r.cpu_quota != 0 {
            cpu["quota"] = json!(r.cpu_quota);
        }
        if r.cpu_period != 0 {
            cpu["period"] = json!(r.cpu_period);
        }
    }
    if !r.cpuset_cpus.is_empty() {
        cpu["cpus"] = json!(r.cpuset_cpus);
    }
    if !r.cpuset_mems.is_empty() {
        cpu["mems"] = json!(r.cpuset_mems);
    }
    if cpu.as_object().is_some_and(|o| !o.is_empty()) {
        res["cpu"] = cpu;
    }
    if let Some(p) = r.pids_limit.filter(|p| *p != 0) {
        res["pids"] = json!({ "limit": p });
    }
    if r.blkio_weight > 0 {
        res["blockIO"] = json!({ "weight": r.blkio_weight });
    }
    linux["resources"] = res;
    if !spec.sysctls.is_empty() {
        linux["sysctl"] = json!(spec.sysctls);
    }
    if spec.network_mode == "host" {
        if let Some(ns) = linux["namespaces"].as_array_mut() {
            ns.retain(|n| n["type"] != "network");
        }
    }
    match spec.seccomp_profile.as_deref() {
        _ if spec.privileged => {}
        Some("unconfined") => {}
        Some(text) => {
            let profile: Value = serde_json::from_str(text)
                .map_err(|e| Error::Invalid(format!("Decoding seccomp profile failed: {e}")))?;
            linux["seccomp"] = seccomp_from_docker(&profile, &caps)?;
        }
        None => linux["seccomp"] = default_seccomp(&caps),
    }
    Ok(())
}

/// Docker's default device rules: deny all, then the usual character devices and ptys.
fn default_device_rules() -> Value {
    let allow = |kind: &str, major: i64, minor: Option<i64>| {
        let mut v = json!({ "allow": true, "type": kind, "major": major, "access": "rwm" });
        if let Some(m) = minor {
            v["minor"] = json!(m);
        }
        v
    };
    json!([
        { "allow": false, "access": "rwm" },
        allow("c", 1, Some(3)),   // null
        allow("c", 1, Some(5)),   // zero
        allow("c", 1, Some(7)),   // full
        allow("c", 1, Some(8)),   // random
        allow("c", 1, Some(9)),   // urandom
        allow("c", 5, Some(0)),   // tty
        allow("c", 5, Some(1)),   // console
        allow("c", 5, Some(2)),   // ptmx
        allow("c", 136, None),    // pts
        allow("c", 10, Some(200)) // tun
    ])
}

/// The default profile: allow everything but [`DEFAULT_SECCOMP_DENY`], minus the syscalls
/// that the capabilities held make legitimate (`CAP_SYS_ADMIN` → mounts and namespaces,
/// `CAP_SYS_PTRACE` → ptrace and process_vm_*, `CAP_SYS_TIME` → clock changes, ...).
pub fn default_seccomp(caps: &[String]) -> Value {
    let has = |c: &str| caps.iter().any(|x| x == c);
    let mut allowed_by_cap: BTreeSet<&str> = BTreeSet::new();
    if has("CAP_SYS_ADMIN") {
        allowed_by_cap.extend([
            "mount",
            "umount",
            "umount2",
            "unshare",
            "setns",
            "pivot_root",
            "fsconfig",
            "fsmount",
            "fsopen",
            "fspick",
            "move_mount",
            "open_tree",
            "mount_setattr",
            "quotactl",
            "name_to_handle_at",
            "lookup_dcookie",
            "perf_event_open",
            "bpf",
        ]);
    }
    if has("CAP_SYS_PTRACE") {
        allowed_by_cap.extend(["ptrace", "process_vm_readv", "process_vm_writev", "kcmp"]);
    }
    if has("CAP_SYS_TIME") {
        allowed_by_cap.extend(["settimeofday", "stime", "clock_settime", "clock_adjtime"]);
    }
    if has("CAP_SYS_MODULE") {
        allowed_by_cap.extend(["init_module", "finit_module", "delete_module"]);
    }
    if has("CAP_SYS_BOOT") {
        allowed_by_cap.extend(["reboot", "kexec_load", "kexec_file_load"]);
    }
    if has("CAP_SYS_PACCT") {
        allowed_by_cap.insert("acct");
    }
    if has("CAP_SYS_RAWIO") {
        allowed_by_cap.extend(["iopl", "ioperm"]);
    }
    if has("CAP_SYS_NICE") {
        allowed_by_cap.extend(["mbind", "set_mempolicy", "get_mempolicy", "move_pages"]);
    }
    let deny: Vec<&str> = DEFAULT_SECCOMP_DENY
        .iter()
        .copied()
        .filter(|s| !allowed_by_cap.contains(s))
        .collect();
    json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": [{ "names": deny, "action": "SCMP_ACT_ERRNO", "errnoRet": libc::EPERM }],
    })
}

/// A Docker seccomp profile (`defaultAction`, `archMap` or `architectures`, `syscalls` with
/// `includes`/`excludes` on capabilities and arches) as the OCI `linux.seccomp` object.
pub fn seccomp_from_docker(profile: &Value, caps: &[String]) -> Result<Value> {
    let bad = |what: &str| Error::Invalid(format!("seccomp profile: {what}"));
    let default = profile["defaultAction"]
        .as_str()
        .ok_or_else(|| bad("defaultAction is missing"))?;
    let mut out = json!({ "defaultAction": default });
    if let Some(e) = profile.get("defaultErrnoRet").filter(|v| !v.is_null()) {
        out["defaultErrnoRet"] = e.clone();
    }
    let host_arch = "SCMP_ARCH_X86_64";
    let mut arches: Vec<Value> = Vec::new();
    if let Some(map) = profile["archMap"].as_array() {
        for a in map {
            if a["architecture"] == host_arch {
                arches.push(json!(host_arch));
                for s in a["subArchitectures"].as_array().into_iter().flatten() {
                    arches.push(s.clone());
                }
            }
        }
    } else if let Some(a) = profile["architectures"].as_array() {
        arches = a.clone();
    }
    if !arches.is_empty() {
        out["architectures"] = json!(arches);
    }
    let has_cap = |c: &Value| c.as_str().is_some_and(|c| caps.iter().any(|x| x == c));
    let mut syscalls = Vec::new();
    for (i, s) in profile["syscalls"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        if let Some(inc) = s.get("includes") {
            if let Some(c) = inc["caps"].as_array() {
                if !c.iter().all(has_cap) {
                    continue;
                }
            }
            if let Some(a) = inc["arches"].as_array() {
                if !a.iter().any(|a| a == "amd64" || a == "x86_64") {
                    continue;
                }
            }
        }
        if let Some(exc) = s.get("excludes") {
            if let Some(c) = exc["caps"].as_array() {
                if c.iter().any(has_cap) {
                    continue;
                }
            }
            if let Some(a) = exc["arches"].as_array() {
                if a.iter().any(|a| a == "amd64" || a == "x86_64") {
                    continue;
                }
            }
        }
        let names: Vec<Value> = match (&s["names"], &s["name"]) {
            (Value::Array(n), _) => n.clone(),
            (_, Value::String(n)) => vec![json!(n)],
            _ => return Err(bad(&format!("syscalls[{i}] has no names"))),
        };
        let action = s["action"]
            .as_str()
            .ok_or_else(|| bad(&format!("syscalls[{i}].action is missing")))?;
        let mut entry = json!({ "names": names, "action": action });
        if let Some(e) = s.get("errnoRet").filter(|v| !v.is_null()) {
            entry["errnoRet"] = e.clone();
        }
        if let Some(a) = s
            .get("args")
            .filter(|v| v.as_array().is_some_and(|a| !a.is_empty()))
        {
            entry["args"] = a.clone();
        }
        syscalls.push(entry);
    }
    out["syscalls"] = json!(syscalls);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{MountSpec, Resources};

    fn base() -> Value {
        json!({
            "process": { "user": { "uid": 0, "gid": 0 } },
            "root": { "path": "rootfs" },
            "mounts": [
                { "destination": "/proc", "type": "proc", "source": "proc" },
                { "destination": "/dev/shm", "type": "tmpfs", "source": "shm" },
                { "destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["ro"] },
            ],
            "linux": { "namespaces": [{ "type": "pid" }, { "type": "network" }] },
        })
    }

    fn ctx<'a>(mounts: &'a [ResolvedMount]) -> ApplyContext<'a> {
        ApplyContext {
            cgroups_path: "/berth/x",
            mounts,
            etc_files: &[],
        }
    }

    #[test]
    fn caps_add_drop_and_all() {
        let mut s = ContainerSpec {
            cap_drop: vec!["chown".into()],
            cap_add: vec!["NET_ADMIN".into()],
            ..Default::default()
        };
        let c = capabilities(&s);
        assert!(!c.contains(&"CAP_CHOWN".to_string()));
        assert!(c.contains(&"CAP_NET_ADMIN".to_string()));
        s.cap_drop = vec!["ALL".into()];
        s.cap_add = vec!["KILL".into()];
        assert_eq!(capabilities(&s), vec!["CAP_KILL".to_string()]);
    }

    #[test]
    fn limits_and_mounts_land_in_config() {
        let s = ContainerSpec {
            resources: Resources {
                memory: 64 << 20,
                nano_cpus: 500_000_000,
                pids_limit: Some(20),
                ..Default::default()
            },
            read_only: true,
            tmpfs: [("/run".to_string(), "rw,size=1m,exec".to_string())].into(),
            no_new_privileges: true,
            ..Default::default()
        };
        let mounts = vec![ResolvedMount {
            kind: MountKind::Bind,
            source: "/srv".into(),
            destination: "/data".into(),
            read_only: true,
            propagation: "rprivate".into(),
            options: vec![],
        }];
        let mut c = base();
        apply(&mut c, &s, &ctx(&mounts)).unwrap();
        assert_eq!(c["linux"]["resources"]["memory"]["limit"], json!(64 << 20));
        assert_eq!(c["linux"]["resources"]["memory"]["swap"], json!(128 << 20));
        assert_eq!(c["linux"]["resources"]["cpu"]["quota"], json!(50_000));
        assert_eq!(c["linux"]["resources"]["pids"]["limit"], json!(20));
        assert_eq!(c["root"]["readonly"], json!(true));
        assert_eq!(c["process"]["noNewPrivileges"], json!(true));
        let ms = c["mounts"].as_array().unwrap();
        let data = ms.iter().find(|m| m["destination"] == "/data").unwrap();
        assert_eq!(data["options"], json!(["rbind", "rprivate", "ro"]));
        let run = ms.iter().find(|m| m["destination"] == "/run").unwrap();
        let opts = run["options"].as_array().unwrap();
        assert!(opts.contains(&json!("size=1m")) && !opts.contains(&json!("noexec")));
        assert!(c["linux"]["seccomp"]["syscalls"][0]["names"]
            .as_array()
            .unwrap()
            .contains(&json!("mount")));
    }

    #[test]
    fn docker_profile_converts_with_includes() {
        let p = json!({
            "defaultAction": "SCMP_ACT_ERRNO",
            "archMap": [{ "architecture": "SCMP_ARCH_X86_64", "subArchitectures": ["SCMP_ARCH_X86"] }],
            "syscalls": [
                { "names": ["read", "write"], "action": "SCMP_ACT_ALLOW" },
                { "names": ["mount"], "action": "SCMP_ACT_ALLOW", "includes": { "caps": ["CAP_SYS_ADMIN"] } },
                { "names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1 },
            ],
        });
        let o = seccomp_from_docker(&p, &["CAP_CHOWN".to_string()]).unwrap();
        assert_eq!(
            o["architectures"],
            json!(["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"])
        );
        let names: Vec<&Value> = o["syscalls"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| &s["names"])
            .collect();
        assert_eq!(names, vec![&json!(["read", "write"]), &json!(["mkdir"])]);
        assert_eq!(o["syscalls"][1]["errnoRet"], json!(1));
        assert!(seccomp_from_docker(&json!({}), &[]).is_err());
    }

    #[test]
    fn validation_names_the_field() {
        let ok = ContainerSpec {
            image: "busybox".into(),
            ..Default::default()
        };
        validate(&ok).unwrap();
        let bad = ContainerSpec {
            name: Some("/x y".into()),
            ..ok.clone()
        };
        assert!(validate(&bad)
            .unwrap_err()
            .to_string()
            .contains("Invalid container name"));
        let bad = ContainerSpec {
            mounts: vec![MountSpec {
                source: "rel".into(),
                target: "/d".into(),
                ..Default::default()
            }],
            ..ok.clone()
        };
        assert!(validate(&bad)
            .unwrap_err()
            .to_string()
            .contains("must be absolute"));
        let bad = ContainerSpec {
            stop_signal: Some("SIGNOPE".into()),
            ..ok.clone()
        };
        assert!(validate(&bad)
            .unwrap_err()
            .to_string()
            .contains("Invalid signal: SIGNOPE"));
        assert_eq!(parse_signal("term").unwrap(), libc::SIGTERM);
        assert_eq!(parse_signal("9").unwrap(), 9);
    }
}
