//! Keeping the resident set of Berth's binaries small: their own text dropped once run, and
//! for long-lived processes no fault-around on it.

extern "C" {
    static __executable_start: u8;
    static etext: u8;
}

/// Drops the page table entries of our own text and rodata so far and advises random access
/// on them (which stops read-ahead): the pages that are run again fault back in from the
/// page cache. The kernel still maps up to 64 KiB of cached pages around each such fault
/// ("fault-around"); [`lean_text_for_life`] stops that too, for long-lived processes.
pub fn lean_text() {
    if let Some((start, len)) = text_range() {
        // SAFETY: madvise on our own read-only, file-backed text and rodata mappings;
        // dropping their page table entries only makes the pages fault in again from the
        // page cache.
        unsafe {
            libc::madvise(start as *mut libc::c_void, len, libc::MADV_RANDOM);
            libc::madvise(start as *mut libc::c_void, len, libc::MADV_DONTNEED);
        }
    }
}

/// For a process that lives as long as its container (the shim, once its set-up is done):
/// [`lean_text`], with fault-around turned off first, so that only the pages really run come
/// back. Fault-around is skipped for ranges registered with userfaultfd in write-protect
/// mode, which Linux 6.7+ allows on any memory with `UFFD_FEATURE_WP_ASYNC` (the kernel
/// resolves write faults itself; text is never written, so nothing ever waits). The text is
/// registered once per process; a forked child inherits no registration (its code, the
/// runtime's in the shim's children, keeps fault-around and its speed). Where userfaultfd is
/// missing or refused, this is [`lean_text`] alone.
pub fn lean_text_for_life() {
    if let Some((start, len)) = text_range() {
        no_fault_around(start, len);
    }
    lean_text();
}

/// Our text and rodata (from the ELF start to the end of the text), page-aligned.
fn text_range() -> Option<(usize, usize)> {
    // Both symbols are provided by the linker; only their addresses are taken.
    let (start, end) = (
        std::ptr::addr_of!(__executable_start) as usize,
        std::ptr::addr_of!(etext) as usize,
    );
    let start = start & !4095;
    let end = (end + 4095) & !4095;
    (end > start).then(|| (start, end - start))
}

// From <linux/userfaultfd.h>.
const UFFD_API: u64 = 0xAA;
const UFFD_USER_MODE_ONLY: libc::c_int = 1;
const UFFD_FEATURE_WP_ASYNC: u64 = 1 << 15;
const UFFDIO_REGISTER_MODE_WP: u64 = 1 << 1;
/// `_IOWR(0xAA, 0x3F, struct uffdio_api)` (24 bytes).
const UFFDIO_API: libc::c_ulong = 0xC018_AA3F;
/// `_IOWR(0xAA, 0x00, struct uffdio_register)` (32 bytes).
const UFFDIO_REGISTER: libc::c_ulong = 0xC020_AA00;

#[repr(C)]
struct UffdioApi {
    api: u64,
    features: u64,
    ioctls: u64,
}

#[repr(C)]
struct UffdioRegister {
    start: u64,
    len: u64,
    mode: u64,
    ioctls: u64,
}

/// The process whose text is registered, and its userfaultfd (which must stay open: closing
/// it drops the registration). A forked child inherits neither the registration nor a use
/// for the descriptor, so it registers again.
static REGISTERED: std::sync::Mutex<Option<(libc::pid_t, libc::c_int)>> =
    std::sync::Mutex::new(None);

fn no_fault_around(start: usize, len: usize) {
    let mut reg = REGISTERED.lock().unwrap_or_else(|p| p.into_inner());
    // SAFETY: getpid has no preconditions.
    let pid = unsafe { libc::getpid() };
    match *reg {
        Some((p, _)) if p == pid => return,
        Some((_, inherited)) => {
            // SAFETY: the descriptor is ours (inherited across fork) and used nowhere else.
            unsafe { libc::close(inherited) };
            *reg = None;
        }
        None => {}
    }
    // SAFETY: userfaultfd takes flags only; the result is a new descriptor or -1.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_userfaultfd,
            libc::O_CLOEXEC | libc::O_NONBLOCK | UFFD_USER_MODE_ONLY,
        )
    };
    if fd < 0 {
        return;
    }
    let fd = fd as libc::c_int;
    let mut api = UffdioApi {
        api: UFFD_API,
        features: UFFD_FEATURE_WP_ASYNC,
        ioctls: 0,
    };
    let mut range = UffdioRegister {
        start: start as u64,
        len: len as u64,
        mode: UFFDIO_REGISTER_MODE_WP,
        ioctls: 0,
    };
    // SAFETY: both ioctls read and write the structs passed, which match the kernel's
    // layouts; the range is our own mapped text and rodata.
    let ok = unsafe {
        libc::ioctl(fd, UFFDIO_API, &mut api as *mut UffdioApi) == 0
            && libc::ioctl(fd, UFFDIO_REGISTER, &mut range as *mut UffdioRegister) == 0
    };
    if ok {
        *reg = Some((pid, fd));
    } else {
        // SAFETY: fd is the descriptor made above.
        unsafe { libc::close(fd) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The kernel's release as (major, minor).
    fn kernel() -> (u32, u32) {
        let r = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
        let mut n = r
            .split(|c: char| !c.is_ascii_digit())
            .filter_map(|x| x.parse().ok());
        (n.next().unwrap_or(0), n.next().unwrap_or(0))
    }

    /// Whether the mapping holding `addr` is registered for write-protect faults (`uw`).
    fn uffd_wp_at(smaps: &str, addr: usize) -> bool {
        let mut inside = false;
        for line in smaps.lines() {
            if let Some((range, _)) = line.split_once(' ') {
                if let Some((a, b)) = range.split_once('-') {
                    if let (Ok(a), Ok(b)) =
                        (usize::from_str_radix(a, 16), usize::from_str_radix(b, 16))
                    {
                        inside = (a..b).contains(&addr);
                        continue;
                    }
                }
            }
            if inside && line.starts_with("VmFlags:") {
                return line.split_whitespace().any(|f| f == "uw");
            }
        }
        false
    }

    #[test]
    fn own_text_is_registered_once_per_process_and_again_after_fork() {
        // SAFETY: geteuid has no preconditions.
        let root = unsafe { libc::geteuid() } == 0;
        if kernel() < (6, 7) || !root {
            eprintln!("skipping: needs Linux 6.7+ (UFFD_FEATURE_WP_ASYNC) and root");
            return;
        }
        let text = lean_text as fn() as usize;
        lean_text_for_life();
        let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
        assert!(uffd_wp_at(&smaps, text), "text not registered:\n{smaps}");
        let first = REGISTERED.lock().unwrap().expect("a registration");
        lean_text_for_life();
        assert_eq!(*REGISTERED.lock().unwrap(), Some(first), "registered twice");
        // A forked child has no registration until it calls lean_text itself.
        // SAFETY: the child only reads files, calls lean_text and exits.
        match unsafe { libc::fork() } {
            0 => {
                let before = std::fs::read_to_string("/proc/self/smaps").unwrap_or_default();
                lean_text_for_life();
                let after = std::fs::read_to_string("/proc/self/smaps").unwrap_or_default();
                let code = match (uffd_wp_at(&before, text), uffd_wp_at(&after, text)) {
                    (false, true) => 0,
                    (true, _) => 2,
                    (false, false) => 3,
                };
                // SAFETY: _exit ends the forked child without running the parent's atexit work.
                unsafe { libc::_exit(code) };
            }
            child => {
                assert!(child > 0, "fork");
                let mut status = 0;
                // SAFETY: waits for our own child into a local.
                unsafe { libc::waitpid(child, &mut status, 0) };
                assert!(libc::WIFEXITED(status), "child status {status}");
                assert_eq!(
                    libc::WEXITSTATUS(status),
                    0,
                    "2: the child inherited the registration, 3: it did not register"
                );
            }
        }
    }
}
