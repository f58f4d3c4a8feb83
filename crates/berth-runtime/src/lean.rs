//! Keeping the resident set of Berth's binaries small: no fault-around on their own text.

extern "C" {
    static __executable_start: u8;
    static etext: u8;
}

/// Keeps the resident set small: the kernel maps 64 KiB of file pages around every page
/// fault ("fault-around"), which for a process touching scattered code means most of the
/// binary ends up mapped. Advising random access on our own text turns that off, and dropping
/// what is mapped so far lets only the pages we really run come back. A long-lived process
/// (the shim) calls it again once its set-up is done, so the code of the set-up does not stay
/// counted against it.
pub fn lean_text() {
    // Both symbols are provided by the linker; only their addresses are taken.
    let (start, end) = (
        std::ptr::addr_of!(__executable_start) as usize,
        std::ptr::addr_of!(etext) as usize,
    );
    let start = start & !4095;
    if end <= start {
        return;
    }
    // SAFETY: madvise on our own read-only, file-backed text and rodata mappings; dropping
    // their page table entries only makes the pages fault in again from the page cache.
    unsafe {
        libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_RANDOM);
        libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_DONTNEED);
    }
}
