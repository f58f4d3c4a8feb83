//! Linux capabilities: parsing names and applying the five OCI capability sets.
//!
//! Order in the container init (like runc): [`from_spec`] early, [`apply_bounding`] while still
//! privileged, then `PR_SET_KEEPCAPS`, the uid/gid change, and [`apply_process_sets`].

use caps::errors::CapsError;
use caps::{CapSet, Capability, CapsHashSet};

/// What went wrong while parsing or applying capabilities.
#[derive(Debug, thiserror::Error)]
pub enum CapabilityError {
    /// A capability name no one knows.
    #[error("unknown capability {name:?}")]
    Unknown { name: String },
    /// A capability set of `process.capabilities` names an unknown capability.
    #[error("process.capabilities.{set}: unknown capability {name:?}")]
    UnknownInSet { set: &'static str, name: String },
    /// Reading or dropping a capability of the bounding set failed.
    #[error("drop {cap} from the bounding set: {source}")]
    Bounding { cap: String, source: std::io::Error },
    /// Setting the effective, permitted or inheritable set failed.
    #[error("set {set} capabilities: {source}")]
    Set {
        set: &'static str,
        source: CapsError,
    },
    /// The kernel has no ambient set but the config asks for ambient capabilities.
    #[error("ambient capabilities requested but not supported by the kernel: {source}")]
    AmbientUnsupported { source: CapsError },
    /// Clearing the ambient set failed.
    #[error("clear ambient capabilities: {source}")]
    AmbientClear { source: CapsError },
    /// Raising one ambient capability failed (it must be permitted and inheritable).
    #[error("raise ambient capability {cap}: {source}")]
    AmbientRaise {
        cap: &'static str,
        source: CapsError,
    },
}

/// Every capability the `caps` crate knows, in kernel index order, with its name.
const CAPS: &[(Capability, &str)] = &[
    (Capability::CAP_CHOWN, "CAP_CHOWN"),
    (Capability::CAP_DAC_OVERRIDE, "CAP_DAC_OVERRIDE"),
    (Capability::CAP_DAC_READ_SEARCH, "CAP_DAC_READ_SEARCH"),
    (Capability::CAP_FOWNER, "CAP_FOWNER"),
    (Capability::CAP_FSETID, "CAP_FSETID"),
    (Capability::CAP_KILL, "CAP_KILL"),
    (Capability::CAP_SETGID, "CAP_SETGID"),
    (Capability::CAP_SETUID, "CAP_SETUID"),
    (Capability::CAP_SETPCAP, "CAP_SETPCAP"),
    (Capability::CAP_LINUX_IMMUTABLE, "CAP_LINUX_IMMUTABLE"),
    (Capability::CAP_NET_BIND_SERVICE, "CAP_NET_BIND_SERVICE"),
    (Capability::CAP_NET_BROADCAST, "CAP_NET_BROADCAST"),
    (Capability::CAP_NET_ADMIN, "CAP_NET_ADMIN"),
    (Capability::CAP_NET_RAW, "CAP_NET_RAW"),
    (Capability::CAP_IPC_LOCK, "CAP_IPC_LOCK"),
    (Capability::CAP_IPC_OWNER, "CAP_IPC_OWNER"),
    (Capability::CAP_SYS_MODULE, "CAP_SYS_MODULE"),
    (Capability::CAP_SYS_RAWIO, "CAP_SYS_RAWIO"),
    (Capability::CAP_SYS_CHROOT, "CAP_SYS_CHROOT"),
    (Capability::CAP_SYS_PTRACE, "CAP_SYS_PTRACE"),
    (Capability::CAP_SYS_PACCT, "CAP_SYS_PACCT"),
    (Capability::CAP_SYS_ADMIN, "CAP_SYS_ADMIN"),
    (Capability::CAP_SYS_BOOT, "CAP_SYS_BOOT"),
    (Capability::CAP_SYS_NICE, "CAP_SYS_NICE"),
    (Capability::CAP_SYS_RESOURCE, "CAP_SYS_RESOURCE"),
    (Capability::CAP_SYS_TIME, "CAP_SYS_TIME"),
    (Capability::CAP_SYS_TTY_CONFIG, "CAP_SYS_TTY_CONFIG"),
    (Capability::CAP_MKNOD, "CAP_MKNOD"),
    (Capability::CAP_LEASE, "CAP_LEASE"),
    (Capability::CAP_AUDIT_WRITE, "CAP_AUDIT_WRITE"),
    (Capability::CAP_AUDIT_CONTROL, "CAP_AUDIT_CONTROL"),
    (Capability::CAP_SETFCAP, "CAP_SETFCAP"),
    (Capability::CAP_MAC_OVERRIDE, "CAP_MAC_OVERRIDE"),
    (Capability::CAP_MAC_ADMIN, "CAP_MAC_ADMIN"),
    (Capability::CAP_SYSLOG, "CAP_SYSLOG"),
    (Capability::CAP_WAKE_ALARM, "CAP_WAKE_ALARM"),
    (Capability::CAP_BLOCK_SUSPEND, "CAP_BLOCK_SUSPEND"),
    (Capability::CAP_AUDIT_READ, "CAP_AUDIT_READ"),
    (Capability::CAP_PERFMON, "CAP_PERFMON"),
    (Capability::CAP_BPF, "CAP_BPF"),
    (Capability::CAP_CHECKPOINT_RESTORE, "CAP_CHECKPOINT_RESTORE"),
];

/// The `CAP_...` name of a capability.
pub fn name(cap: Capability) -> &'static str {
    CAPS.iter()
        .find(|(c, _)| *c == cap)
        .map_or("CAP_UNKNOWN", |(_, n)| n)
}

/// Parses a capability name: `CAP_CHOWN`, `cap_chown`, `CHOWN` and `chown` are all accepted
/// (like docker). Unknown names are an error naming the capability.
pub fn parse(name: &str) -> Result<Capability, CapabilityError> {
    let bare = match name.as_bytes().get(..4) {
        // The first four bytes are ASCII here, so slicing at 4 is on a char boundary.
        Some(p) if p.eq_ignore_ascii_case(b"CAP_") => name.get(4..).unwrap_or(""),
        _ => name,
    };
    CAPS.iter()
        .find(|(_, n)| n.get(4..).is_some_and(|n| n.eq_ignore_ascii_case(bare)))
        .map(|(c, _)| *c)
        .ok_or_else(|| CapabilityError::Unknown {
            name: name.to_owned(),
        })
}

/// The highest capability index the running kernel knows (`/proc/sys/kernel/cap_last_cap`;
/// probed with `PR_CAPBSET_READ` when /proc is not available).
pub fn last_cap() -> u8 {
    if let Ok(s) = std::fs::read_to_string("/proc/sys/kernel/cap_last_cap") {
        if let Ok(n) = s.trim().parse::<u8>() {
            return n;
        }
    }
    // PR_CAPBSET_READ fails with EINVAL for capabilities the kernel does not know.
    let mut last = 0;
    for idx in 0..64u8 {
        if capbset_read(idx).is_err() {
            break;
        }
        last = idx;
    }
    last
}

fn capbset_read(idx: u8) -> std::io::Result<bool> {
    // SAFETY: PR_CAPBSET_READ takes a capability number and reads the calling thread's
    // bounding set; no memory is passed to the kernel.
    let ret = unsafe { libc::prctl(libc::PR_CAPBSET_READ, libc::c_ulong::from(idx), 0, 0, 0) };
    if ret < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(ret == 1)
    }
}

fn capbset_drop(idx: u8) -> std::io::Result<()> {
    // SAFETY: PR_CAPBSET_DROP takes a capability number and changes only the calling thread's
    // bounding set; no memory is passed to the kernel.
    let ret = unsafe { libc::prctl(libc::PR_CAPBSET_DROP, libc::c_ulong::from(idx), 0, 0, 0) };
    if ret < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// The five capability sets of `process.capabilities`, restricted to what the kernel knows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CapSets {
    pub bounding: CapsHashSet,
    pub effective: CapsHashSet,
    pub inheritable: CapsHashSet,
    pub permitted: CapsHashSet,
    pub ambient: CapsHashSet,
    /// Requested capabilities the running kernel does not know (above `cap_last_cap`), left
    /// out of the sets like runc does; for the caller to log. Sorted, no duplicates.
    pub unsupported: Vec<Capability>,
}

impl CapSets {
    /// Names of [`CapSets::unsupported`], for logging.
    pub fn unsupported_names(&self) -> Vec<&'static str> {
        self.unsupported.iter().map(|&c| name(c)).collect()
    }
}

/// Converts `process.capabilities` to capability sets. An absent set is empty.
///
/// A capability this crate does not know is an error naming the set and the capability;
/// capabilities the running kernel does not know are left out and listed in
/// [`CapSets::unsupported`].
pub fn from_spec(c: &oci_spec::runtime::LinuxCapabilities) -> Result<CapSets, CapabilityError> {
    let last = last_cap();
    let mut sets = CapSets::default();
    let requested = [
        ("bounding", c.bounding()),
        ("effective", c.effective()),
        ("inheritable", c.inheritable()),
        ("permitted", c.permitted()),
        ("ambient", c.ambient()),
    ];
    for (set, caps) in requested {
        let target = match set {
            "bounding" => &mut sets.bounding,
            "effective" => &mut sets.effective,
            "inheritable" => &mut sets.inheritable,
            "permitted" => &mut sets.permitted,
            _ => &mut sets.ambient,
        };
        for cap in caps.iter().flatten() {
            // oci-spec displays capabilities without the CAP_ prefix ("SYS_ADMIN").
            let spelled = cap.to_string();
            let parsed = parse(&spelled)
                .map_err(|_| CapabilityError::UnknownInSet { set, name: spelled })?;
            if parsed.index() > last {
                if !sets.unsupported.contains(&parsed) {
                    sets.unsupported.push(parsed);
                }
            } else {
                target.insert(parsed);
            }
        }
    }
    sets.unsupported.sort_by_key(|c| c.index());
    Ok(sets)
}

/// Drops every capability not in `sets.bounding` from the bounding set (`PR_CAPBSET_DROP`),
/// including kernel capabilities newer than this crate. Needs CAP_SETPCAP, so call it while
/// still privileged. Capabilities already out of the bounding set are left alone.
pub fn apply_bounding(sets: &CapSets) -> Result<(), CapabilityError> {
    let last = last_cap();
    for idx in 0..=last {
        let known = CAPS.get(usize::from(idx));
        if let Some((cap, _)) = known {
            if sets.bounding.contains(cap) {
                continue;
            }
        }
        let fail = |source| CapabilityError::Bounding {
            cap: known.map_or_else(|| format!("capability {idx}"), |(_, n)| (*n).to_owned()),
            source,
        };
        match capbset_read(idx) {
            Ok(false) => continue,
            Ok(true) => capbset_drop(idx).map_err(fail)?,
            // A capability the kernel does not know cannot be in the bounding set.
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => continue,
            Err(e) => return Err(fail(e)),
        }
    }
    Ok(())
}

/// Sets the inheritable, effective and permitted sets, then the ambient set.
///
/// Called after the uid change (with `PR_SET_KEEPCAPS` set before it, so the permitted set
/// survives). Inheritable and effective are set while the old permitted set still allows
/// them, permitted last; `effective` must be a subset of `permitted`. Ambient capabilities
/// must be both permitted and inheritable.
pub fn apply_process_sets(sets: &CapSets) -> Result<(), CapabilityError> {
    for (set, cset, value) in [
        ("inheritable", CapSet::Inheritable, &sets.inheritable),
        ("effective", CapSet::Effective, &sets.effective),
        ("permitted", CapSet::Permitted, &sets.permitted),
    ] {
        caps::set(None, cset, value).map_err(|source| CapabilityError::Set { set, source })?;
    }

    if let Err(source) = caps::runtime::ambient_set_supported() {
        if sets.ambient.is_empty() {
            return Ok(());
        }
        return Err(CapabilityError::AmbientUnsupported { source });
    }
    caps::clear(None, CapSet::Ambient)
        .map_err(|source| CapabilityError::AmbientClear { source })?;
    for &(cap, cap_name) in CAPS {
        // The kernel only lets a capability into the ambient set when it is both permitted
        // and inheritable; like runc, skip the others (runc's own default spec asks for
        // ambient capabilities that are not inheritable).
        if sets.ambient.contains(&cap)
            && sets.inheritable.contains(&cap)
            && sets.permitted.contains(&cap)
        {
            caps::raise(None, CapSet::Ambient, cap).map_err(|source| {
                CapabilityError::AmbientRaise {
                    cap: cap_name,
                    source,
                }
            })?;
        }
    }
    Ok(())
}

/// All capability names both the running kernel and this crate know, in index order.
pub fn known_names() -> Vec<String> {
    let last = last_cap();
    CAPS.iter()
        .filter(|(c, _)| c.index() <= last)
        .map(|(_, n)| (*n).to_owned())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_matches_the_caps_crate() {
        assert_eq!(CAPS.len(), caps::all().len());
        for (i, (cap, n)) in CAPS.iter().enumerate() {
            assert_eq!(usize::from(cap.index()), i);
            assert_eq!(cap.to_string(), *n);
        }
    }

    #[test]
    fn parse_with_and_without_prefix() {
        for s in ["CAP_CHOWN", "cap_chown", "CHOWN", "chown", "Cap_ChOwN"] {
            assert!(matches!(parse(s), Ok(Capability::CAP_CHOWN)), "{s}");
        }
        assert!(matches!(
            parse("CAP_SYS_ADMIN"),
            Ok(Capability::CAP_SYS_ADMIN)
        ));
        assert!(matches!(
            parse("checkpoint_restore"),
            Ok(Capability::CAP_CHECKPOINT_RESTORE)
        ));
    }

    #[test]
    fn parse_unknown_names_the_capability() {
        for s in ["CAP_FLY", "", "CAP_", "cap", "CAP_CHOWN_", "é"] {
            match parse(s) {
                Ok(c) => panic!("{s:?} parsed as {c}"),
                Err(e) => assert_eq!(e.to_string(), format!("unknown capability {s:?}")),
            }
        }
    }

    #[test]
    fn from_spec_converts_all_sets() {
        let spec: oci_spec::runtime::LinuxCapabilities = match serde_json::from_str(
            r#"{"bounding": ["CAP_CHOWN", "CAP_KILL"], "effective": ["kill"],
                "permitted": ["CAP_KILL", "CAP_CHOWN"], "ambient": []}"#,
        ) {
            Ok(s) => s,
            Err(e) => panic!("{e}"),
        };
        let sets = match from_spec(&spec) {
            Ok(s) => s,
            Err(e) => panic!("{e}"),
        };
        assert_eq!(
            sets.bounding,
            CapsHashSet::from([Capability::CAP_CHOWN, Capability::CAP_KILL])
        );
        assert_eq!(sets.effective, CapsHashSet::from([Capability::CAP_KILL]));
        assert!(sets.inheritable.is_empty());
        assert!(sets.ambient.is_empty());
        assert!(sets.unsupported.is_empty());
    }

    #[test]
    fn every_spec_capability_converts() {
        for (cap, n) in CAPS {
            let spec_cap: oci_spec::runtime::Capability =
                match serde_json::from_value(serde_json::Value::from(*n)) {
                    Ok(c) => c,
                    Err(e) => panic!("{n}: {e}"),
                };
            assert!(
                matches!(parse(&spec_cap.to_string()), Ok(c) if c == *cap),
                "{n}"
            );
        }
    }

    /// oci-spec's capability type rejects unknown names while the config is parsed, naming them.
    #[test]
    fn from_spec_unknown_capability() {
        match serde_json::from_str::<oci_spec::runtime::LinuxCapabilities>(
            r#"{"bounding": ["CAP_CHOWN", "CAP_FLY"]}"#,
        ) {
            Ok(_) => panic!("CAP_FLY accepted"),
            Err(e) => assert!(e.to_string().contains("CAP_FLY"), "{e}"),
        }
        let e = CapabilityError::UnknownInSet {
            set: "bounding",
            name: "FLY".to_owned(),
        };
        assert_eq!(
            e.to_string(),
            "process.capabilities.bounding: unknown capability \"FLY\""
        );
    }

    #[test]
    fn known_names_follow_the_kernel() {
        let names = known_names();
        assert!(names.iter().any(|n| n == "CAP_CHOWN"));
        assert!(names.len() <= CAPS.len());
        assert_eq!(names.len(), CAPS.len().min(usize::from(last_cap()) + 1));
    }
}
