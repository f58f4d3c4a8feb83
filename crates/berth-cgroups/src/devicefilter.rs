//! cgroup v2 device control: generating the BPF_PROG_TYPE_CGROUP_DEVICE program from the
//! rule list (like runc's devicefilter) and loading + attaching it with bpf(2).
//!
//! Only the generator is unit-tested: this development host runs cgroup v1/hybrid, where the
//! device controller is the v1 `devices` hierarchy, so [`attach`] is never exercised here.

use crate::error::{CgroupError, Result};
use crate::resources::{DeviceKind, DeviceRule};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;

/// One eBPF instruction, laid out as the kernel's `struct bpf_insn` (little-endian register nibbles).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(C)]
pub struct BpfInsn {
    pub code: u8,
    /// dst register in the low nibble, src register in the high one.
    pub regs: u8,
    pub off: i16,
    pub imm: i32,
}

// Opcodes (class | op | source).
const LDX_MEM_W: u8 = 0x61; // BPF_LDX | BPF_MEM | BPF_W
const ALU_AND_K: u8 = 0x54; // BPF_ALU | BPF_AND | BPF_K
const ALU_RSH_K: u8 = 0x74; // BPF_ALU | BPF_RSH | BPF_K
const ALU_MOV_K: u8 = 0xb4; // BPF_ALU | BPF_MOV | BPF_K
const ALU_MOV_X: u8 = 0xbc; // BPF_ALU | BPF_MOV | BPF_X
const JMP_JNE_K: u8 = 0x55; // BPF_JMP | BPF_JNE | BPF_K
const JMP_JNE_X: u8 = 0x5d; // BPF_JMP | BPF_JNE | BPF_X
const JMP_EXIT: u8 = 0x95; // BPF_JMP | BPF_EXIT

// include/uapi/linux/bpf.h
const BPF_DEVCG_ACC_MKNOD: i32 = 1;
const BPF_DEVCG_ACC_READ: i32 = 2;
const BPF_DEVCG_ACC_WRITE: i32 = 4;
const BPF_DEVCG_DEV_BLOCK: i32 = 1;
const BPF_DEVCG_DEV_CHAR: i32 = 2;

const fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> BpfInsn {
    BpfInsn {
        code,
        regs: (src << 4) | (dst & 0x0f),
        off,
        imm,
    }
}

/// Builds the device filter program for `rules`. Later rules override earlier ones (as writes to
/// v1 devices.allow/deny would), so rules are emitted last-first and the first match decides;
/// anything unmatched is denied. Context (`struct bpf_cgroup_dev_ctx`) is loaded into
/// R2 = device type, R3 = access bits, R4 = major, R5 = minor.
///
/// Limitation shared with a plain first-match filter: a request for several access bits at once
/// is matched as a whole against each rule (it is not split per bit).
pub fn device_filter_program(rules: &[DeviceRule]) -> Result<Vec<BpfInsn>> {
    let mut p = vec![
        insn(LDX_MEM_W, 2, 1, 0, 0),
        insn(ALU_AND_K, 2, 0, 0, 0xffff),
        insn(LDX_MEM_W, 3, 1, 0, 0),
        insn(ALU_RSH_K, 3, 0, 0, 16),
        insn(LDX_MEM_W, 4, 1, 4, 0),
        insn(LDX_MEM_W, 5, 1, 8, 0),
    ];
    for (index, rule) in rules.iter().enumerate().rev() {
        let bad = |reason: String| CgroupError::DeviceRule { index, reason };
        let mut access = 0;
        for c in rule.access_or_all().chars() {
            access |= match c {
                'r' => BPF_DEVCG_ACC_READ,
                'w' => BPF_DEVCG_ACC_WRITE,
                'm' => BPF_DEVCG_ACC_MKNOD,
                other => return Err(bad(format!("access {other:?} is not one of r, w, m"))),
            };
        }
        let num = |n: Option<i64>, what: &str| -> Result<Option<i32>> {
            match n {
                None => Ok(None),
                Some(n) if n < 0 => Ok(None),
                Some(n) => i32::try_from(n)
                    .map(Some)
                    .map_err(|_| bad(format!("{what} {n} out of range"))),
            }
        };
        let major = num(rule.major, "major")?;
        let minor = num(rule.minor, "minor")?;
        let kind = match rule.kind {
            DeviceKind::All => None,
            DeviceKind::Char => Some(BPF_DEVCG_DEV_CHAR),
            DeviceKind::Block => Some(BPF_DEVCG_DEV_BLOCK),
        };
        let all_access = BPF_DEVCG_ACC_READ | BPF_DEVCG_ACC_WRITE | BPF_DEVCG_ACC_MKNOD;
        // Conditions, each "jump to the next block if it does not hold" (offset patched below).
        let mut conds: Vec<BpfInsn> = Vec::new();
        if let Some(t) = kind {
            conds.push(insn(JMP_JNE_K, 2, 0, 0, t));
        }
        if access != all_access {
            conds.push(insn(ALU_MOV_X, 1, 3, 0, 0));
            conds.push(insn(ALU_AND_K, 1, 0, 0, access));
            conds.push(insn(JMP_JNE_X, 1, 3, 0, 0));
        }
        if let Some(m) = major {
            conds.push(insn(JMP_JNE_K, 4, 0, 0, m));
        }
        if let Some(m) = minor {
            conds.push(insn(JMP_JNE_K, 5, 0, 0, m));
        }
        let unconditional = conds.is_empty();
        let len = conds.len() + 2;
        for (i, c) in conds.iter_mut().enumerate() {
            if c.code == JMP_JNE_K || c.code == JMP_JNE_X {
                // Jump past the rest of this block: from i + 1 to len.
                c.off = (len - (i + 1)) as i16;
            }
        }
        p.extend(conds);
        p.push(insn(ALU_MOV_K, 0, 0, 0, i32::from(rule.allow)));
        p.push(insn(JMP_EXIT, 0, 0, 0, 0));
        if unconditional {
            // Everything after would be unreachable, which the verifier rejects.
            return Ok(p);
        }
    }
    p.push(insn(ALU_MOV_K, 0, 0, 0, 0));
    p.push(insn(JMP_EXIT, 0, 0, 0, 0));
    Ok(p)
}

// bpf(2) commands and constants.
const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_PROG_ATTACH: libc::c_long = 8;
const BPF_PROG_DETACH: libc::c_long = 9;
const BPF_PROG_GET_FD_BY_ID: libc::c_long = 13;
const BPF_PROG_QUERY: libc::c_long = 16;
const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
const BPF_CGROUP_DEVICE: u32 = 6;
const BPF_F_ALLOW_MULTI: u32 = 2;

#[repr(C)]
#[derive(Default)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
}

#[repr(C)]
#[derive(Default)]
struct AttachAttr {
    target_fd: u32,
    attach_bpf_fd: u32,
    attach_type: u32,
    attach_flags: u32,
    replace_bpf_fd: u32,
}

#[repr(C)]
#[derive(Default)]
struct QueryAttr {
    target_fd: u32,
    attach_type: u32,
    query_flags: u32,
    attach_flags: u32,
    prog_ids: u64,
    prog_cnt: u32,
}

#[repr(C)]
#[derive(Default)]
struct GetFdAttr {
    prog_id: u32,
    next_id: u32,
    open_flags: u32,
}

fn bpf<T>(cmd: libc::c_long, attr: &mut T) -> io::Result<libc::c_long> {
    // SAFETY: attr is a live, properly sized #[repr(C)] prefix of union bpf_attr; the kernel
    // reads/writes at most size_of::<T>() bytes, and any pointers inside point to live buffers.
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr as *mut T as *mut libc::c_void,
            std::mem::size_of::<T>() as libc::c_uint,
        )
    };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

fn owned(fd: libc::c_long) -> OwnedFd {
    // SAFETY: fd was just returned by bpf(2) as a new descriptor that nothing else owns.
    unsafe { OwnedFd::from_raw_fd(fd as RawFd) }
}

/// Loads the program for `rules` and attaches it to the cgroup `dir` (BPF_CGROUP_DEVICE with
/// BPF_F_ALLOW_MULTI), then detaches the device programs that were attached before, so the
/// new rules replace the old ones. Needs CAP_SYS_ADMIN and a cgroup v2 directory.
/// Not exercised by tests on this (v1/hybrid) host; see the module docs.
pub fn attach(dir: &Path, rules: &[DeviceRule]) -> Result<()> {
    let insns = device_filter_program(rules)?;
    let bpf_err = |op: &'static str| {
        let path = dir.to_path_buf();
        move |source| CgroupError::Bpf { op, path, source }
    };
    let cg = std::fs::File::open(dir).map_err(crate::error::io_err("open", dir))?;
    let cg_fd = cg.as_raw_fd() as u32;

    // Programs attached before us.
    let mut ids = [0u32; 64];
    let mut q = QueryAttr {
        target_fd: cg_fd,
        attach_type: BPF_CGROUP_DEVICE,
        prog_ids: ids.as_mut_ptr() as u64,
        prog_cnt: ids.len() as u32,
        ..Default::default()
    };
    let old_count = match bpf(BPF_PROG_QUERY, &mut q) {
        Ok(_) => (q.prog_cnt as usize).min(ids.len()),
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => 0,
        Err(e) => return Err(bpf_err("prog query")(e)),
    };
    let mut old = Vec::new();
    for id in &ids[..old_count] {
        let mut g = GetFdAttr {
            prog_id: *id,
            ..Default::default()
        };
        // A program detached meanwhile is simply gone.
        if let Ok(fd) = bpf(BPF_PROG_GET_FD_BY_ID, &mut g) {
            old.push(owned(fd));
        }
    }

    let license = b"Apache\0";
    let mut load = ProgLoadAttr {
        prog_type: BPF_PROG_TYPE_CGROUP_DEVICE,
        insn_cnt: insns.len() as u32,
        insns: insns.as_ptr() as u64,
        license: license.as_ptr() as u64,
        ..Default::default()
    };
    let prog = owned(bpf(BPF_PROG_LOAD, &mut load).map_err(bpf_err("prog load"))?);
    let mut at = AttachAttr {
        target_fd: cg_fd,
        attach_bpf_fd: prog.as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        attach_flags: BPF_F_ALLOW_MULTI,
        ..Default::default()
    };
    bpf(BPF_PROG_ATTACH, &mut at).map_err(bpf_err("prog attach"))?;
    for fd in old {
        let mut d = AttachAttr {
            target_fd: cg_fd,
            attach_bpf_fd: fd.as_raw_fd() as u32,
            attach_type: BPF_CGROUP_DEVICE,
            ..Default::default()
        };
        bpf(BPF_PROG_DETACH, &mut d).map_err(bpf_err("prog detach"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(
        allow: bool,
        kind: DeviceKind,
        major: Option<i64>,
        minor: Option<i64>,
        access: &str,
    ) -> DeviceRule {
        DeviceRule {
            allow,
            kind,
            major,
            minor,
            access: access.into(),
        }
    }

    fn prologue() -> Vec<BpfInsn> {
        vec![
            insn(LDX_MEM_W, 2, 1, 0, 0),
            insn(ALU_AND_K, 2, 0, 0, 0xffff),
            insn(LDX_MEM_W, 3, 1, 0, 0),
            insn(ALU_RSH_K, 3, 0, 0, 16),
            insn(LDX_MEM_W, 4, 1, 4, 0),
            insn(LDX_MEM_W, 5, 1, 8, 0),
        ]
    }

    #[test]
    fn encoding_matches_kernel_layout() {
        assert_eq!(std::mem::size_of::<BpfInsn>(), 8);
        // r2 = *(u32 *)(r1 + 0): dst r2, src r1.
        assert_eq!(insn(LDX_MEM_W, 2, 1, 0, 0).regs, 0x12);
        assert_eq!(std::mem::size_of::<ProgLoadAttr>(), 72);
        assert_eq!(std::mem::size_of::<AttachAttr>(), 20);
    }

    #[test]
    fn empty_rules_deny_everything() {
        let mut want = prologue();
        want.push(insn(ALU_MOV_K, 0, 0, 0, 0));
        want.push(insn(JMP_EXIT, 0, 0, 0, 0));
        assert_eq!(device_filter_program(&[]).unwrap(), want);
    }

    #[test]
    fn rules_are_emitted_last_first_with_default_deny() {
        let rules = [
            rule(false, DeviceKind::All, None, None, "rwm"),
            rule(true, DeviceKind::Char, Some(1), Some(3), "rwm"),
            rule(true, DeviceKind::Char, Some(136), None, "rw"),
            rule(true, DeviceKind::Block, None, None, "m"),
        ];
        let got = device_filter_program(&rules).unwrap();
        let mut want = prologue();
        // block *:* m: type, access (3 insns) -> 4 conds + 2
        want.extend([
            insn(JMP_JNE_K, 2, 0, 5, BPF_DEVCG_DEV_BLOCK),
            insn(ALU_MOV_X, 1, 3, 0, 0),
            insn(ALU_AND_K, 1, 0, 0, BPF_DEVCG_ACC_MKNOD),
            insn(JMP_JNE_X, 1, 3, 2, 0),
            insn(ALU_MOV_K, 0, 0, 0, 1),
            insn(JMP_EXIT, 0, 0, 0, 0),
        ]);
        // c 136:* rw
        want.extend([
            insn(JMP_JNE_K, 2, 0, 6, BPF_DEVCG_DEV_CHAR),
            insn(ALU_MOV_X, 1, 3, 0, 0),
            insn(ALU_AND_K, 1, 0, 0, BPF_DEVCG_ACC_READ | BPF_DEVCG_ACC_WRITE),
            insn(JMP_JNE_X, 1, 3, 3, 0),
            insn(JMP_JNE_K, 4, 0, 2, 136),
            insn(ALU_MOV_K, 0, 0, 0, 1),
            insn(JMP_EXIT, 0, 0, 0, 0),
        ]);
        // c 1:3 rwm
        want.extend([
            insn(JMP_JNE_K, 2, 0, 4, BPF_DEVCG_DEV_CHAR),
            insn(JMP_JNE_K, 4, 0, 3, 1),
            insn(JMP_JNE_K, 5, 0, 2, 3),
            insn(ALU_MOV_K, 0, 0, 0, 1),
            insn(JMP_EXIT, 0, 0, 0, 0),
        ]);
        // a *:* rwm deny: unconditional, ends the program (no unreachable default block)
        want.extend([insn(ALU_MOV_K, 0, 0, 0, 0), insn(JMP_EXIT, 0, 0, 0, 0)]);
        assert_eq!(got, want);
    }

    #[test]
    fn rules_before_an_unconditional_one_are_dropped() {
        let rules = [
            rule(true, DeviceKind::Char, Some(1), Some(3), ""),
            rule(true, DeviceKind::All, None, None, ""),
        ];
        let mut want = prologue();
        want.extend([insn(ALU_MOV_K, 0, 0, 0, 1), insn(JMP_EXIT, 0, 0, 0, 0)]);
        assert_eq!(device_filter_program(&rules).unwrap(), want);
    }

    #[test]
    fn bad_rules_are_refused() {
        let e = device_filter_program(&[rule(true, DeviceKind::Char, None, None, "rx")]);
        assert!(e.unwrap_err().to_string().contains("device rule 0"));
        let e = device_filter_program(&[rule(true, DeviceKind::Char, Some(1 << 40), None, "r")]);
        assert!(e.is_err());
    }
}
