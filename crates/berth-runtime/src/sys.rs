//! Low-level helpers over system calls: path resolution inside a root, sync messages, fd passing.

use std::ffi::{CString, OsStr};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path};

use nix::sys::socket::{self, ControlMessage, ControlMessageOwned, MsgFlags};

fn cstr(p: &OsStr) -> io::Result<CString> {
    CString::new(p.as_bytes()).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))
}

/// The kernel's `struct open_how` for openat2(2).
#[repr(C)]
struct OpenHow {
    flags: u64,
    mode: u64,
    resolve: u64,
}

/// openat2(dirfd, path, flags, RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS): every symlink and `..`
/// is resolved as if `dirfd` were `/`, so the result can never be outside it.
pub fn open_in_root(
    root: BorrowedFd<'_>,
    path: &Path,
    flags: i32,
    mode: u32,
) -> io::Result<OwnedFd> {
    let rel = path.strip_prefix("/").unwrap_or(path);
    let rel = if rel.as_os_str().is_empty() {
        Path::new(".")
    } else {
        rel
    };
    let c = cstr(rel.as_os_str())?;
    let how = OpenHow {
        flags: (flags | libc::O_CLOEXEC) as u64,
        mode: if flags & (libc::O_CREAT | libc::O_TMPFILE) != 0 {
            mode as u64
        } else {
            0
        },
        resolve: libc::RESOLVE_IN_ROOT | libc::RESOLVE_NO_MAGICLINKS,
    };
    loop {
        // SAFETY: `how` and `c` are valid for the duration of the call; the kernel returns a new fd or -1.
        let r = unsafe {
            libc::syscall(
                libc::SYS_openat2,
                root.as_raw_fd(),
                c.as_ptr(),
                &how as *const OpenHow,
                std::mem::size_of::<OpenHow>(),
            )
        };
        if r >= 0 {
            // SAFETY: the kernel just returned this fd to us; nobody else owns it.
            return Ok(unsafe { OwnedFd::from_raw_fd(r as RawFd) });
        }
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EAGAIN) && e.raw_os_error() != Some(libc::EINTR) {
            return Err(e);
        }
    }
}

/// Creates every missing directory of `path` inside `root` (never leaving it) and returns an
/// O_PATH fd of the last one. A dangling symlink on the way is followed inside the root and
/// its target created, as a kernel lookup confined to the root would resolve it.
pub fn mkdir_all_in_root(root: BorrowedFd<'_>, path: &Path, mode: u32) -> io::Result<OwnedFd> {
    use std::collections::VecDeque;
    use std::ffi::OsString;
    let comps = |p: &Path| -> VecDeque<OsString> {
        p.components()
            .filter_map(|c| match c {
                Component::Normal(n) => Some(n.to_os_string()),
                Component::ParentDir => Some(OsString::from("..")),
                _ => None,
            })
            .collect()
    };
    let mut todo = comps(path);
    let mut cur = open_in_root(root, Path::new("/"), libc::O_PATH | libc::O_DIRECTORY, 0)?;
    let mut sofar = std::path::PathBuf::from("/");
    let mut links = 0;
    while let Some(name) = todo.pop_front() {
        sofar.push(&name);
        if name == ".." {
            cur = open_in_root(root, &sofar, libc::O_PATH | libc::O_DIRECTORY, 0)?;
            continue;
        }
        match open_in_root(root, &sofar, libc::O_PATH | libc::O_DIRECTORY, 0) {
            Ok(fd) => cur = fd,
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                let c = cstr(&name)?;
                let mut buf = vec![0u8; libc::PATH_MAX as usize];
                // SAFETY: readlinkat into a buffer of the given size on a directory fd we own.
                let n = unsafe {
                    libc::readlinkat(
                        cur.as_raw_fd(),
                        c.as_ptr(),
                        buf.as_mut_ptr() as *mut libc::c_char,
                        buf.len(),
                    )
                };
                if n > 0 {
                    // A dangling symlink: continue the walk at its target, inside the root.
                    links += 1;
                    if links > 40 {
                        return Err(io::Error::from_raw_os_error(libc::ELOOP));
                    }
                    buf.truncate(n as usize);
                    let target = std::path::PathBuf::from(OsStr::from_bytes(&buf));
                    sofar.pop();
                    if target.is_absolute() {
                        sofar = std::path::PathBuf::from("/");
                        cur = open_in_root(root, &sofar, libc::O_PATH | libc::O_DIRECTORY, 0)?;
                    }
                    let mut next = comps(&target);
                    next.extend(todo);
                    todo = next;
                    continue;
                }
                // SAFETY: mkdirat on a directory fd we own with a NUL-terminated name.
                let r = unsafe { libc::mkdirat(cur.as_raw_fd(), c.as_ptr(), mode) };
                if r != 0 {
                    let e = io::Error::last_os_error();
                    if e.raw_os_error() != Some(libc::EEXIST) {
                        return Err(e);
                    }
                }
                cur = open_in_root(root, &sofar, libc::O_PATH | libc::O_DIRECTORY, 0)?;
            }
            Err(e) => return Err(e),
        }
    }
    Ok(cur)
}

/// Makes sure a regular file exists at `path` inside `root` (creating parents) and returns an
/// O_PATH fd of it; an existing non-directory of any kind is accepted.
pub fn ensure_file_in_root(root: BorrowedFd<'_>, path: &Path) -> io::Result<OwnedFd> {
    if let Ok(fd) = open_in_root(root, path, libc::O_PATH, 0) {
        return Ok(fd);
    }
    let parent = path.parent().unwrap_or(Path::new("/"));
    let name = path.file_name().ok_or(io::ErrorKind::InvalidInput)?;
    let dir = mkdir_all_in_root(root, parent, 0o755)?;
    let c = cstr(name)?;
    // SAFETY: openat on a directory fd we own; O_NOFOLLOW so a planted symlink is not followed.
    let r = unsafe {
        libc::openat(
            dir.as_raw_fd(),
            c.as_ptr(),
            libc::O_CREAT | libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_RDONLY,
            0o644,
        )
    };
    if r >= 0 {
        // SAFETY: fresh fd from the kernel.
        drop(unsafe { OwnedFd::from_raw_fd(r) });
    }
    open_in_root(root, path, libc::O_PATH, 0)
}

/// The magic-link path through which a mount can target an fd's file.
pub fn fd_path(fd: &impl AsRawFd) -> String {
    format!("/proc/self/fd/{}", fd.as_raw_fd())
}

/// A connected SOCK_SEQPACKET pair for parent/child synchronisation.
pub fn seqpacket_pair() -> nix::Result<(OwnedFd, OwnedFd)> {
    socket::socketpair(
        socket::AddressFamily::Unix,
        socket::SockType::SeqPacket,
        None,
        socket::SockFlag::SOCK_CLOEXEC,
    )
}

/// Message tags exchanged between the runtime and the processes it forks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Tag {
    Go = 1,
    NeedMaps = 2,
    MapsDone = 3,
    Pid = 4,
    Hooks = 5,
    HooksDone = 6,
    Ready = 7,
    Error = 8,
    Pty = 9,
}

impl Tag {
    fn from_u8(b: u8) -> Option<Tag> {
        Some(match b {
            1 => Tag::Go,
            2 => Tag::NeedMaps,
            3 => Tag::MapsDone,
            4 => Tag::Pid,
            5 => Tag::Hooks,
            6 => Tag::HooksDone,
            7 => Tag::Ready,
            8 => Tag::Error,
            9 => Tag::Pty,
            _ => return None,
        })
    }
}

/// Sends one message, optionally carrying a file descriptor.
pub fn send(sock: BorrowedFd<'_>, tag: Tag, payload: &[u8], fd: Option<RawFd>) -> io::Result<()> {
    let mut buf = Vec::with_capacity(payload.len() + 1);
    buf.push(tag as u8);
    buf.extend_from_slice(payload);
    let iov = [io::IoSlice::new(&buf)];
    let fds;
    let cmsgs: &[ControlMessage<'_>] = match fd {
        Some(f) => {
            fds = [f];
            &[ControlMessage::ScmRights(&fds)]
        }
        None => &[],
    };
    socket::sendmsg::<()>(sock.as_raw_fd(), &iov, cmsgs, MsgFlags::MSG_NOSIGNAL, None)?;
    Ok(())
}

/// One received message: its tag, payload and the fd it carried, if any.
pub type Message = (Tag, Vec<u8>, Option<OwnedFd>);

/// Receives one message; `None` at end of stream (the peer exited or exec'd).
pub fn recv(sock: BorrowedFd<'_>) -> io::Result<Option<Message>> {
    let mut buf = vec![0u8; 64 * 1024];
    let mut cbuf = nix::cmsg_space!([RawFd; 1]);
    loop {
        let mut iov = [io::IoSliceMut::new(&mut buf)];
        let msg = match socket::recvmsg::<()>(
            sock.as_raw_fd(),
            &mut iov,
            Some(&mut cbuf),
            MsgFlags::MSG_CMSG_CLOEXEC,
        ) {
            Ok(m) => m,
            Err(nix::Error::EINTR) => continue,
            Err(e) => return Err(e.into()),
        };
        let mut fd = None;
        if let Ok(cmsgs) = msg.cmsgs() {
            for c in cmsgs {
                if let ControlMessageOwned::ScmRights(fds) = c {
                    for f in fds {
                        // SAFETY: the kernel installed this fd for us with SCM_RIGHTS.
                        let owned = unsafe { OwnedFd::from_raw_fd(f) };
                        if fd.is_none() {
                            fd = Some(owned);
                        }
                    }
                }
            }
        }
        let n = msg.bytes;
        if n == 0 {
            return Ok(None);
        }
        let tag = Tag::from_u8(buf[0]).ok_or_else(|| io::Error::other("bad sync message"))?;
        return Ok(Some((tag, buf[1..n].to_vec(), fd)));
    }
}

/// Sends an fd on a (console) socket the way runc does: the payload is a name.
pub fn send_fd_named(sock: RawFd, name: &str, fd: RawFd) -> io::Result<()> {
    let iov = [io::IoSlice::new(name.as_bytes())];
    let fds = [fd];
    socket::sendmsg::<()>(
        sock,
        &iov,
        &[ControlMessage::ScmRights(&fds)],
        MsgFlags::empty(),
        None,
    )?;
    Ok(())
}

/// Marks every fd from `from` upward close-on-exec.
pub fn cloexec_from(from: u32) {
    // SAFETY: close_range with CLOSE_RANGE_CLOEXEC only sets flags on our own fd table.
    let r = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            from,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    };
    if r != 0 {
        // Older kernels: walk /proc/self/fd.
        if let Ok(rd) = std::fs::read_dir("/proc/self/fd") {
            let fds: Vec<i32> = rd
                .flatten()
                .filter_map(|e| e.file_name().to_str().and_then(|s| s.parse().ok()))
                .collect();
            for fd in fds {
                if fd >= from as i32 {
                    // SAFETY: fcntl on an fd number; failure (already closed) is harmless.
                    unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
                }
            }
        }
    }
}

/// Reads the current process's real uid and gid.
pub fn ids() -> (u32, u32) {
    (
        nix::unistd::getuid().as_raw(),
        nix::unistd::getgid().as_raw(),
    )
}
