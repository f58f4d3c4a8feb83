//! Protection of the host's runtime binary against the /proc/self/exe attack (CVE-2019-5736).
//!
//! A process that joins a container runs the runtime's binary until it execs; a container
//! process could reach that file through /proc/PID/exe and write to it. Before forking into a
//! container, the runtime makes sure its own executable lives on a read-only mount: when it
//! does not, it clones a detached bind mount of itself (open_tree, never attached anywhere, so
//! nothing is left behind), makes that mount read-only and re-executes through it. A write
//! through /proc/PID/exe then fails with EROFS, whatever privileges the container holds.

use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;

use crate::error::{Result, RuntimeError};

const OPEN_TREE_CLONE: libc::c_uint = 1;
const MOUNT_ATTR_RDONLY: u64 = 0x1;

#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

/// A detached, read-only bind mount of the file at `path` (never attached anywhere, so
/// nothing is left to unmount once the descriptor and whatever runs from it are gone).
/// Executing it (`execveat(fd, "", AT_EMPTY_PATH)` or `/proc/self/fd/N`) gives a process whose
/// `/proc/PID/exe` cannot be written through.
pub fn readonly_clone(path: &std::path::Path) -> Result<OwnedFd> {
    let err = |what: &str| {
        RuntimeError::Sys(
            format!("protect {}: {what}", path.display()),
            nix::Error::last(),
        )
    };
    let c = CString::new(path.as_os_str().as_bytes()).map_err(|_| {
        RuntimeError::Other(format!("protect {}: path holds a NUL byte", path.display()))
    })?;
    // SAFETY: open_tree with a valid path; returns a new fd or -1.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_open_tree,
            libc::AT_FDCWD,
            c.as_ptr(),
            OPEN_TREE_CLONE | libc::O_CLOEXEC as libc::c_uint,
        )
    };
    if fd < 0 {
        return Err(err("open_tree"));
    }
    // SAFETY: fresh fd from the kernel.
    let fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    let attr = MountAttr {
        attr_set: MOUNT_ATTR_RDONLY,
        attr_clr: 0,
        propagation: 0,
        userns_fd: 0,
    };
    let empty = CString::default();
    // SAFETY: mount_setattr on our detached mount fd with a correctly sized struct.
    let r = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            fd.as_raw_fd(),
            empty.as_ptr(),
            libc::AT_EMPTY_PATH,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    if r != 0 {
        return Err(err("mount_setattr"));
    }
    Ok(fd)
}

/// True when the running executable sits on a read-only mount.
pub fn is_protected() -> bool {
    match nix::sys::statvfs::statvfs("/proc/self/exe") {
        Ok(st) => st.flags().contains(nix::sys::statvfs::FsFlags::ST_RDONLY),
        Err(_) => false,
    }
}

/// Re-executes the current process from a read-only detached mount of its own binary unless
/// it already runs from a read-only mount. Returns only when no re-exec is needed.
pub fn ensure() -> Result<()> {
    if is_protected() {
        return Ok(());
    }
    let err = |what: &str| {
        RuntimeError::Sys(
            format!("protect runtime binary: {what}"),
            nix::Error::last(),
        )
    };
    let fd = readonly_clone(std::path::Path::new("/proc/self/exe"))?;
    let empty = CString::default();
    let argv: Vec<CString> = std::env::args_os()
        .map(|a| CString::new(a.as_bytes()).unwrap_or_default())
        .collect();
    let envp: Vec<CString> = std::env::vars_os()
        .map(|(k, v)| {
            let mut b = k.as_bytes().to_vec();
            b.push(b'=');
            b.extend_from_slice(v.as_bytes());
            CString::new(b).unwrap_or_default()
        })
        .collect();
    let mut argv_p: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
    argv_p.push(std::ptr::null());
    let mut envp_p: Vec<*const libc::c_char> = envp.iter().map(|a| a.as_ptr()).collect();
    envp_p.push(std::ptr::null());
    // SAFETY: execveat with NULL-terminated argv/envp arrays whose strings outlive the call.
    unsafe {
        libc::syscall(
            libc::SYS_execveat,
            fd.as_raw_fd(),
            empty.as_ptr(),
            argv_p.as_ptr(),
            envp_p.as_ptr(),
            libc::AT_EMPTY_PATH,
        )
    };
    Err(err("re-exec"))
}
