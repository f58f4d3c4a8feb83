//! Seccomp filters built from the OCI config with libseccomp.
//!
//! The flow in the container init is [`validate`] (at create time), then [`build`] and [`load`]
//! just before `execve`, then [`send_notify_fd`] when the config has a `listenerPath` and a rule
//! uses `SCMP_ACT_NOTIFY`.
//!
//! Unknown action, architecture, operator and flag names cannot reach this module: the typed
//! `oci_spec` structures reject them while the config is deserialized (with the JSON path of the
//! field). What is checked here is everything the types cannot express.

use std::io::{IoSlice, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use libseccomp::error::SeccompError as ScmpError;
use libseccomp::{
    ScmpAction, ScmpArch, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext, ScmpSyscall,
};
use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags, UnixAddr};
use oci_spec::runtime::{
    Arch, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArg, LinuxSeccompFilterFlag,
    LinuxSeccompOperator,
};

/// The highest syscall argument index seccomp can compare (syscalls have six arguments).
const MAX_ARG_INDEX: usize = 5;

/// The `ociVersion` sent to a seccomp agent when the state object carries none.
const OCI_VERSION: &str = "1.2.0";

/// What went wrong while checking, building, loading or handing over a seccomp filter.
#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    /// A field of `linux.seccomp` has a value we cannot use; `field` is its JSON path.
    #[error("{field}: {msg}")]
    Invalid { field: String, msg: String },
    /// libseccomp could not create the filter context.
    #[error("create filter with default action {action}: {source}")]
    Init {
        action: &'static str,
        source: ScmpError,
    },
    /// libseccomp refused a filter attribute (no_new_privs bit, flags).
    #[error("set filter attribute {attr}: {source}")]
    Attr {
        attr: &'static str,
        source: ScmpError,
    },
    /// libseccomp refused an architecture.
    #[error("add architecture {arch}: {source}")]
    Arch {
        arch: &'static str,
        source: ScmpError,
    },
    /// libseccomp refused a rule.
    #[error("add rule {action} for syscall {syscall}: {source}")]
    Rule {
        syscall: String,
        action: &'static str,
        source: ScmpError,
    },
    /// The kernel refused the filter.
    #[error("load filter: {source}")]
    Load { source: ScmpError },
    /// The container process state could not be encoded.
    #[error("encode container process state for {path}: {source}")]
    Encode {
        path: PathBuf,
        source: serde_json::Error,
    },
    /// The seccomp agent's socket could not be reached.
    #[error("connect to seccomp listener {path}: {source}")]
    Connect {
        path: PathBuf,
        source: std::io::Error,
    },
    /// Sending the notify fd or the state to the seccomp agent failed.
    #[error("send seccomp notify fd to {path}: {source}")]
    Send {
        path: PathBuf,
        source: std::io::Error,
    },
}

const ACTIONS: &[&str] = &[
    "SCMP_ACT_KILL",
    "SCMP_ACT_KILL_PROCESS",
    "SCMP_ACT_KILL_THREAD",
    "SCMP_ACT_TRAP",
    "SCMP_ACT_ERRNO",
    "SCMP_ACT_TRACE",
    "SCMP_ACT_ALLOW",
    "SCMP_ACT_LOG",
    "SCMP_ACT_NOTIFY",
];

const OPERATORS: &[&str] = &[
    "SCMP_CMP_NE",
    "SCMP_CMP_LT",
    "SCMP_CMP_LE",
    "SCMP_CMP_EQ",
    "SCMP_CMP_GE",
    "SCMP_CMP_GT",
    "SCMP_CMP_MASKED_EQ",
];

const ARCHS: &[&str] = &[
    "SCMP_ARCH_NATIVE",
    "SCMP_ARCH_X86",
    "SCMP_ARCH_X86_64",
    "SCMP_ARCH_X32",
    "SCMP_ARCH_ARM",
    "SCMP_ARCH_AARCH64",
    "SCMP_ARCH_MIPS",
    "SCMP_ARCH_MIPS64",
    "SCMP_ARCH_MIPS64N32",
    "SCMP_ARCH_MIPSEL",
    "SCMP_ARCH_MIPSEL64",
    "SCMP_ARCH_MIPSEL64N32",
    "SCMP_ARCH_PPC",
    "SCMP_ARCH_PPC64",
    "SCMP_ARCH_PPC64LE",
    "SCMP_ARCH_S390",
    "SCMP_ARCH_S390X",
    "SCMP_ARCH_RISCV64",
];

const FLAGS: &[&str] = &[
    "SECCOMP_FILTER_FLAG_TSYNC",
    "SECCOMP_FILTER_FLAG_LOG",
    "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
];

/// Names of the actions `linux.seccomp` may use.
pub fn supported_actions() -> &'static [&'static str] {
    ACTIONS
}

/// Names of the argument comparison operators `linux.seccomp` may use.
pub fn supported_operators() -> &'static [&'static str] {
    OPERATORS
}

/// Names of the architectures `linux.seccomp.architectures` may list.
pub fn supported_archs() -> &'static [&'static str] {
    ARCHS
}

/// Names of the filter flags `linux.seccomp.flags` may list.
///
/// `SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV` is absent: the config types cannot express it and the
/// libseccomp we link (2.5) cannot set it.
pub fn supported_flags() -> &'static [&'static str] {
    FLAGS
}

/// The spec name of an action.
pub fn action_name(action: LinuxSeccompAction) -> &'static str {
    match action {
        LinuxSeccompAction::ScmpActKill => "SCMP_ACT_KILL",
        LinuxSeccompAction::ScmpActKillProcess => "SCMP_ACT_KILL_PROCESS",
        LinuxSeccompAction::ScmpActKillThread => "SCMP_ACT_KILL_THREAD",
        LinuxSeccompAction::ScmpActTrap => "SCMP_ACT_TRAP",
        LinuxSeccompAction::ScmpActErrno => "SCMP_ACT_ERRNO",
        LinuxSeccompAction::ScmpActTrace => "SCMP_ACT_TRACE",
        LinuxSeccompAction::ScmpActAllow => "SCMP_ACT_ALLOW",
        LinuxSeccompAction::ScmpActLog => "SCMP_ACT_LOG",
        LinuxSeccompAction::ScmpActNotify => "SCMP_ACT_NOTIFY",
    }
}

/// The spec name of an argument comparison operator.
pub fn operator_name(op: LinuxSeccompOperator) -> &'static str {
    match op {
        LinuxSeccompOperator::ScmpCmpNe => "SCMP_CMP_NE",
        LinuxSeccompOperator::ScmpCmpLt => "SCMP_CMP_LT",
        LinuxSeccompOperator::ScmpCmpLe => "SCMP_CMP_LE",
        LinuxSeccompOperator::ScmpCmpEq => "SCMP_CMP_EQ",
        LinuxSeccompOperator::ScmpCmpGe => "SCMP_CMP_GE",
        LinuxSeccompOperator::ScmpCmpGt => "SCMP_CMP_GT",
        LinuxSeccompOperator::ScmpCmpMaskedEq => "SCMP_CMP_MASKED_EQ",
    }
}

/// The spec name of an architecture.
pub fn arch_name(arch: Arch) -> &'static str {
    match arch {
        Arch::ScmpArchNative => "SCMP_ARCH_NATIVE",
        Arch::ScmpArchX86 => "SCMP_ARCH_X86",
        Arch::ScmpArchX86_64 => "SCMP_ARCH_X86_64",
        Arch::ScmpArchX32 => "SCMP_ARCH_X32",
        Arch::ScmpArchArm => "SCMP_ARCH_ARM",
        Arch::ScmpArchAarch64 => "SCMP_ARCH_AARCH64",
        Arch::ScmpArchMips => "SCMP_ARCH_MIPS",
        Arch::ScmpArchMips64 => "SCMP_ARCH_MIPS64",
        Arch::ScmpArchMips64n32 => "SCMP_ARCH_MIPS64N32",
        Arch::ScmpArchMipsel => "SCMP_ARCH_MIPSEL",
        Arch::ScmpArchMipsel64 => "SCMP_ARCH_MIPSEL64",
        Arch::ScmpArchMipsel64n32 => "SCMP_ARCH_MIPSEL64N32",
        Arch::ScmpArchPpc => "SCMP_ARCH_PPC",
        Arch::ScmpArchPpc64 => "SCMP_ARCH_PPC64",
        Arch::ScmpArchPpc64le => "SCMP_ARCH_PPC64LE",
        Arch::ScmpArchS390 => "SCMP_ARCH_S390",
        Arch::ScmpArchS390x => "SCMP_ARCH_S390X",
        Arch::ScmpArchRiscv64 => "SCMP_ARCH_RISCV64",
    }
}

/// The spec name of a filter flag.
pub fn flag_name(flag: LinuxSeccompFilterFlag) -> &'static str {
    match flag {
        LinuxSeccompFilterFlag::SeccompFilterFlagTsync => "SECCOMP_FILTER_FLAG_TSYNC",
        LinuxSeccompFilterFlag::SeccompFilterFlagLog => "SECCOMP_FILTER_FLAG_LOG",
        LinuxSeccompFilterFlag::SeccompFilterFlagSpecAllow => "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
    }
}

fn scmp_arch(arch: Arch) -> ScmpArch {
    match arch {
        Arch::ScmpArchNative => ScmpArch::Native,
        Arch::ScmpArchX86 => ScmpArch::X86,
        Arch::ScmpArchX86_64 => ScmpArch::X8664,
        Arch::ScmpArchX32 => ScmpArch::X32,
        Arch::ScmpArchArm => ScmpArch::Arm,
        Arch::ScmpArchAarch64 => ScmpArch::Aarch64,
        Arch::ScmpArchMips => ScmpArch::Mips,
        Arch::ScmpArchMips64 => ScmpArch::Mips64,
        Arch::ScmpArchMips64n32 => ScmpArch::Mips64N32,
        Arch::ScmpArchMipsel => ScmpArch::Mipsel,
        Arch::ScmpArchMipsel64 => ScmpArch::Mipsel64,
        Arch::ScmpArchMipsel64n32 => ScmpArch::Mipsel64N32,
        Arch::ScmpArchPpc => ScmpArch::Ppc,
        Arch::ScmpArchPpc64 => ScmpArch::Ppc64,
        Arch::ScmpArchPpc64le => ScmpArch::Ppc64Le,
        Arch::ScmpArchS390 => ScmpArch::S390,
        Arch::ScmpArchS390x => ScmpArch::S390X,
        Arch::ScmpArchRiscv64 => ScmpArch::Riscv64,
    }
}

/// The libseccomp action for a spec action; `errno_ret` defaults to EPERM for ERRNO and TRACE.
/// Callers validate `errno_ret` first; an out-of-range value is clamped rather than wrapped.
fn scmp_action(action: LinuxSeccompAction, errno_ret: Option<u32>) -> ScmpAction {
    let ret = errno_ret.map_or(libc::EPERM as u16, |v| u16::try_from(v).unwrap_or(u16::MAX));
    match action {
        LinuxSeccompAction::ScmpActKill | LinuxSeccompAction::ScmpActKillThread => {
            ScmpAction::KillThread
        }
        LinuxSeccompAction::ScmpActKillProcess => ScmpAction::KillProcess,
        LinuxSeccompAction::ScmpActTrap => ScmpAction::Trap,
        LinuxSeccompAction::ScmpActErrno => ScmpAction::Errno(i32::from(ret)),
        LinuxSeccompAction::ScmpActTrace => ScmpAction::Trace(ret),
        LinuxSeccompAction::ScmpActAllow => ScmpAction::Allow,
        LinuxSeccompAction::ScmpActLog => ScmpAction::Log,
        LinuxSeccompAction::ScmpActNotify => ScmpAction::Notify,
    }
}

fn scmp_compare(arg: &LinuxSeccompArg) -> ScmpArgCompare {
    let value = arg.value();
    let op = match arg.op() {
        LinuxSeccompOperator::ScmpCmpNe => ScmpCompareOp::NotEqual,
        LinuxSeccompOperator::ScmpCmpLt => ScmpCompareOp::Less,
        LinuxSeccompOperator::ScmpCmpLe => ScmpCompareOp::LessOrEqual,
        LinuxSeccompOperator::ScmpCmpEq => ScmpCompareOp::Equal,
        LinuxSeccompOperator::ScmpCmpGe => ScmpCompareOp::GreaterEqual,
        LinuxSeccompOperator::ScmpCmpGt => ScmpCompareOp::Greater,
        // `value` is the mask, `valueTwo` the datum compared with `arg & mask`.
        LinuxSeccompOperator::ScmpCmpMaskedEq => {
            return ScmpArgCompare::new(
                arg.index() as u32,
                ScmpCompareOp::MaskedEqual(value),
                arg.value_two().unwrap_or(0),
            );
        }
    };
    ScmpArgCompare::new(arg.index() as u32, op, value)
}

fn invalid(field: String, msg: impl Into<String>) -> SeccompError {
    SeccompError::Invalid {
        field,
        msg: msg.into(),
    }
}

fn check_errno_ret(
    field: impl FnOnce() -> String,
    errno_ret: Option<u32>,
) -> Result<(), SeccompError> {
    match errno_ret {
        Some(v) if v > u32::from(u16::MAX) => Err(invalid(field(), format!("{v} out of range"))),
        _ => Ok(()),
    }
}

/// Checks a config's seccomp section without loading it.
///
/// Errors name the JSON path of the field, e.g.
/// `linux.seccomp.syscalls[3].args[0].index: 7 out of range`. Syscall names unknown to
/// libseccomp are not errors (they are skipped by [`build`], like runc does); list them with
/// [`unknown_syscalls`] to log them.
pub fn validate(seccomp: &LinuxSeccomp) -> Result<(), SeccompError> {
    if seccomp.default_action() == LinuxSeccompAction::ScmpActNotify {
        return Err(invalid(
            "linux.seccomp.defaultAction".to_owned(),
            "SCMP_ACT_NOTIFY cannot be the default action",
        ));
    }
    check_errno_ret(
        || "linux.seccomp.defaultErrnoRet".to_owned(),
        seccomp.default_errno_ret(),
    )?;
    let Some(syscalls) = seccomp.syscalls() else {
        return Ok(());
    };
    for (i, call) in syscalls.iter().enumerate() {
        if call.names().is_empty() {
            return Err(invalid(
                format!("linux.seccomp.syscalls[{i}].names"),
                "must name at least one syscall",
            ));
        }
        for (j, name) in call.names().iter().enumerate() {
            if name.is_empty() {
                return Err(invalid(
                    format!("linux.seccomp.syscalls[{i}].names[{j}]"),
                    "empty syscall name",
                ));
            }
            if call.action() == LinuxSeccompAction::ScmpActNotify && name == "write" {
                // The runtime itself writes to the agent and its sync pipes: it would deadlock.
                return Err(invalid(
                    format!("linux.seccomp.syscalls[{i}].names[{j}]"),
                    "SCMP_ACT_NOTIFY cannot be used for the write syscall",
                ));
            }
        }
        if call.action() == LinuxSeccompAction::ScmpActNotify && seccomp.listener_path().is_none() {
            return Err(invalid(
                "linux.seccomp.listenerPath".to_owned(),
                format!("required by SCMP_ACT_NOTIFY in linux.seccomp.syscalls[{i}]"),
            ));
        }
        check_errno_ret(
            || format!("linux.seccomp.syscalls[{i}].errnoRet"),
            call.errno_ret(),
        )?;
        for (k, arg) in call.args().iter().flatten().enumerate() {
            if arg.index() > MAX_ARG_INDEX {
                return Err(invalid(
                    format!("linux.seccomp.syscalls[{i}].args[{k}].index"),
                    format!("{} out of range", arg.index()),
                ));
            }
        }
    }
    Ok(())
}

/// Syscall names in the config that libseccomp does not know; [`build`] skips them.
pub fn unknown_syscalls(seccomp: &LinuxSeccomp) -> Vec<String> {
    let mut unknown = Vec::new();
    for call in seccomp.syscalls().iter().flatten() {
        for name in call.names() {
            if ScmpSyscall::from_name(name).is_err() && !unknown.contains(name) {
                unknown.push(name.clone());
            }
        }
    }
    unknown
}

/// Builds the filter (not yet loaded).
///
/// Validates first. Like runc: the native architecture is always included, the
/// no_new_privs bit is left to the caller, rules whose action equals the default action are
/// skipped, syscall names unknown to libseccomp are skipped, and a syscall with several
/// argument conditions gets one rule with all of them unless an argument index repeats, in
/// which case it gets one rule per condition.
pub fn build(seccomp: &LinuxSeccomp) -> Result<ScmpFilterContext, SeccompError> {
    validate(seccomp)?;
    let default_action = scmp_action(seccomp.default_action(), seccomp.default_errno_ret());
    let mut ctx = ScmpFilterContext::new(default_action).map_err(|source| SeccompError::Init {
        action: action_name(seccomp.default_action()),
        source,
    })?;
    ctx.set_ctl_nnp(false)
        .map_err(|source| SeccompError::Attr {
            attr: "no_new_privs",
            source,
        })?;

    ctx.add_arch(ScmpArch::native())
        .map_err(|source| SeccompError::Arch {
            arch: "SCMP_ARCH_NATIVE",
            source,
        })?;
    for &arch in seccomp.architectures().iter().flatten() {
        ctx.add_arch(scmp_arch(arch))
            .map_err(|source| SeccompError::Arch {
                arch: arch_name(arch),
                source,
            })?;
    }

    for &flag in seccomp.flags().iter().flatten() {
        let set = match flag {
            LinuxSeccompFilterFlag::SeccompFilterFlagTsync => ctx.set_ctl_tsync(true),
            LinuxSeccompFilterFlag::SeccompFilterFlagLog => ctx.set_ctl_log(true),
            LinuxSeccompFilterFlag::SeccompFilterFlagSpecAllow => ctx.set_ctl_ssb(true),
        };
        set.map_err(|source| SeccompError::Attr {
            attr: flag_name(flag),
            source,
        })?;
    }

    let mut conditions: Vec<ScmpArgCompare> = Vec::new();
    for call in seccomp.syscalls().iter().flatten() {
        let action = scmp_action(call.action(), call.errno_ret());
        if action == default_action {
            continue;
        }
        conditions.clear();
        let mut per_index = [0u8; MAX_ARG_INDEX + 1];
        let mut repeated = false;
        for arg in call.args().iter().flatten() {
            // validate() bounded the index.
            if let Some(count) = per_index.get_mut(arg.index()) {
                *count = count.saturating_add(1);
                repeated |= *count > 1;
            }
            conditions.push(scmp_compare(arg));
        }
        for name in call.names() {
            let Ok(syscall) = ScmpSyscall::from_name(name) else {
                continue;
            };
            let rule_err = |source| SeccompError::Rule {
                syscall: name.clone(),
                action: action_name(call.action()),
                source,
            };
            if repeated {
                for cond in &conditions {
                    ctx.add_rule_conditional(action, syscall, std::slice::from_ref(cond))
                        .map_err(rule_err)?;
                }
            } else {
                ctx.add_rule_conditional(action, syscall, &conditions)
                    .map_err(rule_err)?;
            }
        }
    }
    Ok(ctx)
}

/// Loads the filter into the calling process (all threads with `SECCOMP_FILTER_FLAG_TSYNC`).
///
/// When a rule uses `SCMP_ACT_NOTIFY` the kernel hands back a notify fd, returned here. It is
/// close-on-exec; pass it on with [`send_notify_fd`] before `execve`.
pub fn load(ctx: &ScmpFilterContext) -> Result<Option<OwnedFd>, SeccompError> {
    ctx.load().map_err(|source| SeccompError::Load { source })?;
    // libseccomp only asks the kernel for a listener when a rule uses SCMP_ACT_NOTIFY, and
    // reports "no fd" as an error otherwise.
    match ctx.get_notify_fd() {
        Ok(fd) if fd >= 0 => {
            // SAFETY: libseccomp returns the listener fd that seccomp(2) created for the load
            // above; nothing else owns it, so taking ownership here closes it exactly once.
            Ok(Some(unsafe { OwnedFd::from_raw_fd(fd) }))
        }
        _ => Ok(None),
    }
}

/// Sends the notify fd to the seccomp agent listening on `listener_path`.
///
/// One message carries the fd (`SCM_RIGHTS`) and the container process state of the OCI
/// runtime-spec: `{"ociVersion", "fds": ["seccompFd"], "pid", "metadata", "state"}`, where
/// `metadata` is `listenerMetadata` (left out when empty) and `state` is the container state.
pub fn send_notify_fd(
    listener_path: &Path,
    fd: &OwnedFd,
    pid: i32,
    metadata: &str,
    state: &serde_json::Value,
) -> Result<(), SeccompError> {
    let oci_version = state
        .get("ociVersion")
        .and_then(serde_json::Value::as_str)
        .unwrap_or(OCI_VERSION);
    let mut msg = serde_json::json!({
        "ociVersion": oci_version,
        "fds": ["seccompFd"],
        "pid": pid,
        "state": state,
    });
    if !metadata.is_empty() {
        if let Some(obj) = msg.as_object_mut() {
            obj.insert("metadata".to_owned(), serde_json::Value::from(metadata));
        }
    }
    let payload = serde_json::to_vec(&msg).map_err(|source| SeccompError::Encode {
        path: listener_path.to_owned(),
        source,
    })?;

    let mut stream =
        UnixStream::connect(listener_path).map_err(|source| SeccompError::Connect {
            path: listener_path.to_owned(),
            source,
        })?;
    let send_err = |source: std::io::Error| SeccompError::Send {
        path: listener_path.to_owned(),
        source,
    };
    let fds = [fd.as_raw_fd()];
    let sent = loop {
        let iov = [IoSlice::new(&payload)];
        let cmsg = [ControlMessage::ScmRights(&fds)];
        match sendmsg::<UnixAddr>(
            stream.as_raw_fd(),
            &iov,
            &cmsg,
            MsgFlags::MSG_NOSIGNAL,
            None,
        ) {
            Ok(n) => break n,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(send_err(e.into())),
        }
    };
    // A stream socket may take the payload in pieces; the fd went with the first one.
    if let Some(rest) = payload.get(sent..) {
        stream.write_all(rest).map_err(send_err)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile(json: &str) -> LinuxSeccomp {
        match serde_json::from_str(json) {
            Ok(s) => s,
            Err(e) => panic!("bad test profile: {e}"),
        }
    }

    fn err_of(json: &str) -> String {
        match validate(&profile(json)) {
            Ok(()) => panic!("expected an error for {json}"),
            Err(e) => e.to_string(),
        }
    }

    const DOCKERISH: &str = r#"{
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": 1,
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": [
            {"names": ["accept", "accept4", "access", "brk", "close", "dup", "dup2", "dup3",
                       "epoll_wait", "execve", "exit", "exit_group", "fstat", "futex", "getpid",
                       "mmap", "munmap", "openat", "read", "write", "rt_sigreturn",
                       "no_such_syscall_berth"],
             "action": "SCMP_ACT_ALLOW"},
            {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
             "args": [{"index": 0, "value": 0, "op": "SCMP_CMP_EQ"}]},
            {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
             "args": [{"index": 0, "value": 4294967295, "op": "SCMP_CMP_EQ"}]},
            {"names": ["clone"], "action": "SCMP_ACT_ALLOW",
             "args": [{"index": 0, "value": 2114060288, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}]},
            {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38},
            {"names": ["socket"], "action": "SCMP_ACT_ALLOW",
             "args": [{"index": 0, "value": 40, "op": "SCMP_CMP_NE"},
                      {"index": 0, "value": 16, "op": "SCMP_CMP_NE"}]},
            {"names": ["reboot"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1},
            {"names": ["ptrace"], "action": "SCMP_ACT_KILL_PROCESS"}
        ]
    }"#;

    #[test]
    fn build_accepts_docker_like_profile_and_skips_unknown_names() {
        let p = profile(DOCKERISH);
        assert!(validate(&p).is_ok());
        assert_eq!(
            unknown_syscalls(&p),
            vec!["no_such_syscall_berth".to_owned()]
        );
        if let Err(e) = build(&p) {
            panic!("build failed: {e}");
        }
    }

    #[test]
    fn arg_index_out_of_range_names_the_field() {
        let e = err_of(
            r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
                {"names": ["a"], "action": "SCMP_ACT_ERRNO"},
                {"names": ["b"], "action": "SCMP_ACT_ERRNO"},
                {"names": ["c"], "action": "SCMP_ACT_ERRNO"},
                {"names": ["kill"], "action": "SCMP_ACT_ERRNO",
                 "args": [{"index": 7, "value": 0, "op": "SCMP_CMP_EQ"}]}]}"#,
        );
        assert_eq!(e, "linux.seccomp.syscalls[3].args[0].index: 7 out of range");
        // build() validates too.
        let p = profile(
            r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["kill"],
               "action": "SCMP_ACT_ERRNO", "args": [{"index": 6, "value": 0, "op": "SCMP_CMP_EQ"}]}]}"#,
        );
        assert!(build(&p).is_err());
    }

    #[test]
    fn errno_ret_and_notify_checks_name_the_field() {
        let e = err_of(r#"{"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 70000}"#);
        assert_eq!(e, "linux.seccomp.defaultErrnoRet: 70000 out of range");
        let e = err_of(
            r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
                {"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 65536}]}"#,
        );
        assert_eq!(e, "linux.seccomp.syscalls[0].errnoRet: 65536 out of range");
        let e = err_of(r#"{"defaultAction": "SCMP_ACT_NOTIFY"}"#);
        assert!(e.starts_with("linux.seccomp.defaultAction: "), "{e}");
        let e = err_of(
            r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
                {"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]}"#,
        );
        assert!(e.starts_with("linux.seccomp.listenerPath: "), "{e}");
        let e = err_of(
            r#"{"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/run/agent.sock", "syscalls": [
                {"names": ["mkdir", "write"], "action": "SCMP_ACT_NOTIFY"}]}"#,
        );
        assert!(e.starts_with("linux.seccomp.syscalls[0].names[1]: "), "{e}");
        let e = err_of(
            r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": [], "action": "SCMP_ACT_LOG"}]}"#,
        );
        assert!(e.starts_with("linux.seccomp.syscalls[0].names: "), "{e}");
    }

    /// Unknown actions, architectures and operators are rejected while the config is parsed,
    /// and serde names the offending value.
    #[test]
    fn unknown_enum_values_are_rejected_by_the_config_types() {
        for (json, bad) in [
            (r#"{"defaultAction": "SCMP_ACT_BOGUS"}"#, "SCMP_ACT_BOGUS"),
            (
                r#"{"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_VAX"]}"#,
                "SCMP_ARCH_VAX",
            ),
            (
                r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["kill"],
                   "action": "SCMP_ACT_ERRNO", "args": [{"index": 0, "value": 0, "op": "SCMP_CMP_XX"}]}]}"#,
                "SCMP_CMP_XX",
            ),
        ] {
            match serde_json::from_str::<LinuxSeccomp>(json) {
                Ok(_) => panic!("accepted {json}"),
                Err(e) => assert!(e.to_string().contains(bad), "{e}"),
            }
        }
    }

    #[test]
    fn names_match_the_spec_spelling() {
        fn spelled<T: serde::Serialize>(v: T) -> String {
            serde_json::to_string(&v)
                .unwrap_or_default()
                .trim_matches('"')
                .to_owned()
        }
        for name in supported_actions() {
            let a: LinuxSeccompAction = profile_value(name);
            assert_eq!(action_name(a), *name);
            assert_eq!(spelled(a), *name);
        }
        for name in supported_operators() {
            let o: LinuxSeccompOperator = profile_value(name);
            assert_eq!(operator_name(o), *name);
            assert_eq!(spelled(o), *name);
        }
        for name in supported_archs() {
            let a: Arch = profile_value(name);
            assert_eq!(arch_name(a), *name);
            assert_eq!(spelled(a), *name);
        }
        for name in supported_flags() {
            let f: LinuxSeccompFilterFlag = profile_value(name);
            assert_eq!(flag_name(f), *name);
            assert_eq!(spelled(f), *name);
        }
    }

    fn profile_value<T: serde::de::DeserializeOwned>(name: &str) -> T {
        match serde_json::from_value(serde_json::Value::from(name)) {
            Ok(v) => v,
            Err(e) => panic!("{name}: {e}"),
        }
    }

    #[test]
    fn errno_defaults_to_eperm() {
        assert_eq!(
            scmp_action(LinuxSeccompAction::ScmpActErrno, None),
            ScmpAction::Errno(libc::EPERM)
        );
        assert_eq!(
            scmp_action(LinuxSeccompAction::ScmpActTrace, None),
            ScmpAction::Trace(libc::EPERM as u16)
        );
        assert_eq!(
            scmp_action(LinuxSeccompAction::ScmpActErrno, Some(38)),
            ScmpAction::Errno(38)
        );
    }
}
