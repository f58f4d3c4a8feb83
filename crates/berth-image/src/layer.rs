//! Secure layer unpacking: tar layers (plain, gzip, zstd) written into a directory without ever leaving it.
//!
//! Every path of a layer is resolved with `openat2(RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS)`
//! relative to a descriptor of the destination, so neither `..`, an absolute path, nor a
//! symlink planted by the layer (`evil -> /`, `evil -> ../..`) can make us create, write,
//! link, chmod or chown anything outside it: such entries are refused with an error naming
//! them. Symlinks that stay inside the layer root (`bin -> usr/bin`) are followed as parent
//! directories, like Docker does; the last component of a path is never followed.
//!
//! Whiteouts (`.wh.NAME`, `.wh..wh..opq`) are either turned into overlayfs whiteouts
//! ([`WhiteoutMode::Overlay`], for an overlay lower dir) or applied to the tree
//! ([`WhiteoutMode::Apply`], for the copying snapshotter).

use std::collections::HashSet;
use std::ffi::{CStr, CString};
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};

/// Default cap on the uncompressed size of one layer (64 GiB).
pub const DEFAULT_MAX_BYTES: u64 = 64 << 30;

const WHITEOUT_PREFIX: &[u8] = b".wh.";
const WHITEOUT_META_PREFIX: &[u8] = b".wh..wh.";
const WHITEOUT_OPAQUE: &[u8] = b".wh..wh..opq";
const OVERLAY_OPAQUE_XATTR: &CStr = c"trusted.overlay.opaque";
const COPY_BUFFER: usize = 256 * 1024;

/// Errors of layer unpacking; each names the entry, path or limit that failed.
#[derive(Debug, thiserror::Error)]
pub enum LayerError {
    #[error("entry {entry}: absolute paths are refused")]
    AbsolutePath { entry: String },
    #[error("entry {entry}: paths with a '..' component are refused")]
    ParentComponent { entry: String },
    #[error("entry {entry}: its path resolves outside the layer root through a symlink")]
    Escapes { entry: String },
    #[error("entry {entry}: hard link to {target} is refused: {reason}")]
    HardLink {
        entry: String,
        target: String,
        reason: String,
    },
    #[error("entry {entry}: device nodes and fifos are not allowed in this layer")]
    DeviceNotAllowed { entry: String },
    #[error("entry {entry}: unsupported entry type {kind}")]
    UnsupportedType { entry: String, kind: String },
    #[error("entry {entry}: {reason}")]
    Invalid { entry: String, reason: String },
    #[error("layer exceeds the limit of {limit} uncompressed bytes (at entry {entry})")]
    TooLarge { limit: u64, entry: String },
    #[error("layer stream exceeds the limit of {limit} uncompressed bytes")]
    StreamTooLarge { limit: u64 },
    #[error("entry {entry}: {op}: {source}")]
    Entry {
        entry: String,
        op: &'static str,
        source: io::Error,
    },
    #[error("reading the layer stream: {source}")]
    Read { source: io::Error },
    #[error("reading the layer stream at entry {entry}: {source}")]
    Stream { entry: String, source: io::Error },
    #[error("destination {path} already exists and is not an empty directory")]
    DestExists { path: PathBuf },
    #[error("{op} {path}: {source}")]
    Dest {
        op: &'static str,
        path: PathBuf,
        source: io::Error,
    },
}

/// Compression of a layer stream, detected from its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

impl Compression {
    /// Detect the compression from the magic bytes at the start of a stream.
    pub fn detect(magic: &[u8]) -> Compression {
        if magic.starts_with(&[0x1f, 0x8b]) {
            Compression::Gzip
        } else if magic.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Compression::Zstd
        } else {
            Compression::None
        }
    }
}

/// What to do with whiteout entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WhiteoutMode {
    /// Write `.wh.NAME` as an overlay whiteout (char device 0:0 named NAME) and
    /// `.wh..wh..opq` as `trusted.overlay.opaque=y` on its directory: for an overlay lower dir.
    Overlay,
    /// Delete the named files and clear opaque directories of what the layer does not
    /// itself contain: for applying a layer onto a copy of its parent.
    Apply,
}

/// How to unpack a layer.
#[derive(Debug, Clone)]
pub struct UnpackOptions {
    pub whiteouts: WhiteoutMode,
    /// Create device nodes and fifos; when false such entries are refused.
    pub allow_devices: bool,
    /// Cap on the uncompressed bytes of the stream, enforced while streaming.
    pub max_bytes: u64,
    /// Give files the uid/gid of their tar header.
    pub same_owner: bool,
}

impl Default for UnpackOptions {
    fn default() -> Self {
        UnpackOptions {
            whiteouts: WhiteoutMode::Overlay,
            allow_devices: false,
            max_bytes: DEFAULT_MAX_BYTES,
            same_owner: true,
        }
    }
}

/// What an unpack read and wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnpackStats {
    /// `sha256:<hex>` of the uncompressed tar stream.
    pub diff_id: String,
    pub compressed_size: u64,
    pub uncompressed_size: u64,
    /// Tar entries processed (files, dirs, links, whiteouts...).
    pub entries: u64,
}

/// Unpack a layer (plain, gzip or zstd, auto-detected) into `dest`.
///
/// [`WhiteoutMode::Overlay`]: `dest` must not exist (or be an empty directory); the layer is
/// unpacked into a sibling temp dir renamed into place only on success, so a refused layer
/// leaves nothing. [`WhiteoutMode::Apply`]: `dest` is an existing tree (a copy of the parent
/// layers) changed in place; the caller works on a temp copy it throws away on error.
pub fn unpack(
    reader: impl Read,
    dest: &Path,
    opts: &UnpackOptions,
) -> Result<UnpackStats, LayerError> {
    match opts.whiteouts {
        WhiteoutMode::Apply => {
            let root = open_dest(dest)?;
            unpack_into(reader, root, opts)
        }
        WhiteoutMode::Overlay => {
            if !dest_is_free(dest)? {
                return Err(LayerError::DestExists {
                    path: dest.to_path_buf(),
                });
            }
            let parent = match dest.parent() {
                Some(p) if !p.as_os_str().is_empty() => p,
                _ => Path::new("."),
            };
            let name = dest
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let tmp = tempfile::Builder::new()
                .prefix(&format!(".{name}.unpack-"))
                .tempdir_in(parent)
                .map_err(|source| LayerError::Dest {
                    op: "creating a temp dir beside",
                    path: dest.to_path_buf(),
                    source,
                })?;
            std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).map_err(
                |source| LayerError::Dest {
                    op: "setting the mode of",
                    path: tmp.path().to_path_buf(),
                    source,
                },
            )?;
            let root = open_dest(tmp.path())?;
            let stats = unpack_into(reader, root, opts)?;
            // rename(2) replaces an empty directory and fails on a non-empty one.
            match std::fs::rename(tmp.path(), dest) {
                Ok(()) => {
                    let _ = tmp.keep();
                    Ok(stats)
                }
                Err(e)
                    if matches!(
                        e.raw_os_error(),
                        Some(libc::ENOTEMPTY) | Some(libc::EEXIST) | Some(libc::ENOTDIR)
                    ) =>
                {
                    Err(LayerError::DestExists {
                        path: dest.to_path_buf(),
                    })
                }
                Err(source) => Err(LayerError::Dest {
                    op: "renaming the unpacked layer to",
                    path: dest.to_path_buf(),
                    source,
                }),
            }
        }
    }
}

/// sha256 (`sha256:<hex>`) and size of the uncompressed stream of a layer, without unpacking.
pub fn diff_id(reader: impl Read, max_bytes: u64) -> Result<(String, u64), LayerError> {
    let (decoder, _) = decompress(reader).map_err(|source| LayerError::Read { source })?;
    let mut capped = Capped::new(decoder, max_bytes);
    let mut buf = vec![0u8; COPY_BUFFER];
    loop {
        match capped.read(&mut buf) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) if capped.exceeded => {
                return Err(LayerError::StreamTooLarge { limit: max_bytes })
            }
            Err(source) => return Err(LayerError::Read { source }),
        }
    }
    Ok((capped.digest(), capped.total))
}

fn dest_is_free(dest: &Path) -> Result<bool, LayerError> {
    match std::fs::symlink_metadata(dest) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(true),
        Err(source) => Err(LayerError::Dest {
            op: "inspecting",
            path: dest.to_path_buf(),
            source,
        }),
        Ok(m) if m.is_dir() => {
            let mut it = std::fs::read_dir(dest).map_err(|source| LayerError::Dest {
                op: "reading",
                path: dest.to_path_buf(),
                source,
            })?;
            Ok(it.next().is_none())
        }
        Ok(_) => Ok(false),
    }
}

fn open_dest(dest: &Path) -> Result<OwnedFd, LayerError> {
    let c = CString::new(dest.as_os_str().as_bytes()).map_err(|e| LayerError::Dest {
        op: "opening",
        path: dest.to_path_buf(),
        source: io::Error::new(io::ErrorKind::InvalidInput, e),
    })?;
    // SAFETY: `c` is a valid NUL-terminated string; the returned fd is checked and owned below.
    let fd = unsafe {
        libc::open(
            c.as_ptr(),
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(LayerError::Dest {
            op: "opening",
            path: dest.to_path_buf(),
            source: io::Error::last_os_error(),
        });
    }
    // SAFETY: `fd` is a fresh descriptor we own exclusively.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

// ---------------------------------------------------------------------------------------------
// Streams: compression detection, size cap and digest.

struct Counted<R> {
    inner: R,
    count: u64,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count += n as u64;
        Ok(n)
    }
}

struct Capped<R> {
    inner: R,
    hasher: Sha256,
    total: u64,
    max: u64,
    exceeded: bool,
}

impl<R: Read> Capped<R> {
    fn new(inner: R, max: u64) -> Self {
        Capped {
            inner,
            hasher: Sha256::new(),
            total: 0,
            max,
            exceeded: false,
        }
    }

    fn digest(&self) -> String {
        format!("sha256:{}", hex::encode(self.hasher.clone().finalize()))
    }
}

impl<R: Read> Read for Capped<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.exceeded {
            return Err(io::Error::other("uncompressed size limit exceeded"));
        }
        let n = self.inner.read(buf)?;
        self.total += n as u64;
        if self.total > self.max {
            self.exceeded = true;
            return Err(io::Error::other("uncompressed size limit exceeded"));
        }
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

fn decompress<'a, R: Read + 'a>(mut reader: R) -> io::Result<(Box<dyn Read + 'a>, Compression)> {
    let mut magic = [0u8; 4];
    let mut got = 0;
    while got < magic.len() {
        match reader.read(&mut magic[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    let compression = Compression::detect(&magic[..got]);
    let whole = io::Cursor::new(magic[..got].to_vec()).chain(reader);
    let decoder: Box<dyn Read + 'a> = match compression {
        Compression::None => Box::new(whole),
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(whole)),
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::new(whole)?),
    };
    Ok((decoder, compression))
}

fn unpack_into(
    reader: impl Read,
    root: OwnedFd,
    opts: &UnpackOptions,
) -> Result<UnpackStats, LayerError> {
    let mut counted = Counted {
        inner: reader,
        count: 0,
    };
    let (decoder, _) = decompress(&mut counted).map_err(|source| LayerError::Read { source })?;
    let mut capped = Capped::new(decoder, opts.max_bytes);
    let mut unpacker = Unpacker {
        root,
        opts,
        dirs: Vec::new(),
        unpacked: HashSet::new(),
        buf: vec![0u8; COPY_BUFFER],
        entries: 0,
        current: String::new(),
    };
    let result = unpacker.run(&mut capped);
    if capped.exceeded {
        return Err(LayerError::TooLarge {
            limit: opts.max_bytes,
            entry: unpacker.current,
        });
    }
    result?;
    // Hash what follows the end-of-archive marker too: the diff_id covers the whole stream.
    if let Err(source) = io::copy(&mut capped, &mut io::sink()) {
        if capped.exceeded {
            return Err(LayerError::TooLarge {
                limit: opts.max_bytes,
                entry: unpacker.current,
            });
        }
        return Err(stream_err(&unpacker.current, source));
    }
    let uncompressed_size = capped.total;
    let diff_id = capped.digest();
    drop(capped);
    // Count what the decompressor left unread (trailing bytes of the blob).
    io::copy(&mut counted, &mut io::sink())
        .map_err(|source| stream_err(&unpacker.current, source))?;
    unpacker.finish_dirs()?;
    Ok(UnpackStats {
        diff_id,
        compressed_size: counted.count,
        uncompressed_size,
        entries: unpacker.entries,
    })
}

// ---------------------------------------------------------------------------------------------
// Entries.

#[derive(Debug, Clone)]
struct Meta {
    mode: u32,
    uid: u32,
    gid: u32,
    mtime: (i64, i64),
    xattrs: Vec<(CString, Vec<u8>)>,
}

struct Unpacker<'o> {
    root: OwnedFd,
    opts: &'o UnpackOptions,
    /// Directories whose metadata is applied at the end, in entry order.
    dirs: Vec<(Vec<u8>, Meta)>,
    /// Paths (and their ancestors) this layer wrote; Apply mode only, for opaque dirs.
    unpacked: HashSet<Vec<u8>>,
    buf: Vec<u8>,
    entries: u64,
    current: String,
}

/// A read error of the stream, naming the entry being read (or after which it failed).
fn stream_err(entry: &str, source: io::Error) -> LayerError {
    if entry.is_empty() {
        return LayerError::Read { source };
    }
    LayerError::Stream {
        entry: entry.to_string(),
        source,
    }
}

fn entry_err<'e>(entry: &'e str, op: &'static str) -> impl FnOnce(io::Error) -> LayerError + 'e {
    move |source| LayerError::Entry {
        entry: entry.to_string(),
        op,
        source,
    }
}

/// Split a raw tar path into its components, refusing absolute paths and `..`.
fn split_path<'p>(raw: &'p [u8], entry: &str) -> Result<Vec<&'p [u8]>, LayerError> {
    if raw.first() == Some(&b'/') {
        return Err(LayerError::AbsolutePath {
            entry: entry.to_string(),
        });
    }
    if raw.contains(&0) {
        return Err(LayerError::Invalid {
            entry: entry.to_string(),
            reason: "path contains a NUL byte".into(),
        });
    }
    let mut comps = Vec::new();
    for c in raw.split(|b| *b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => {
                return Err(LayerError::ParentComponent {
                    entry: entry.to_string(),
                })
            }
            c => comps.push(c),
        }
    }
    Ok(comps)
}

fn join(comps: &[&[u8]]) -> Vec<u8> {
    comps.join(&b'/')
}

fn cstring(bytes: &[u8]) -> io::Result<CString> {
    CString::new(bytes).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))
}

fn keep_xattr(name: &[u8]) -> bool {
    (name.starts_with(b"user.") || name.starts_with(b"trusted.") || name == b"security.capability")
        && !name.starts_with(b"trusted.overlay.")
}

impl Meta {
    fn from_entry<R: Read>(entry: &mut tar::Entry<'_, R>, name: &str) -> Result<Meta, LayerError> {
        let header = entry.header();
        let invalid = |what: &str, e: io::Error| LayerError::Invalid {
            entry: name.to_string(),
            reason: format!("bad {what} in the header: {e}"),
        };
        // Empty numeric fields read as 0, like Go's archive/tar (which wrote most layers).
        let old = header.as_old();
        let mode = numeric(header.mode().map(u64::from), &old.mode)
            .map_err(|e| invalid("mode", e))? as u32
            & 0o7777;
        let uid = numeric(header.uid(), &old.uid).map_err(|e| invalid("uid", e))?;
        let gid = numeric(header.gid(), &old.gid).map_err(|e| invalid("gid", e))?;
        let mtime = numeric(header.mtime(), &old.mtime).map_err(|e| invalid("mtime", e))?;
        let mut mtime = (i64::try_from(mtime).unwrap_or(i64::MAX), 0);
        let uid = u32::try_from(uid).map_err(|_| LayerError::Invalid {
            entry: name.to_string(),
            reason: format!("uid {uid} is out of range"),
        })?;
        let gid = u32::try_from(gid).map_err(|_| LayerError::Invalid {
            entry: name.to_string(),
            reason: format!("gid {gid} is out of range"),
        })?;
        let mut xattrs = Vec::new();
        if let Some(pax) = entry
            .pax_extensions()
            .map_err(entry_err(name, "reading pax records"))?
        {
            for ext in pax {
                let ext = ext.map_err(entry_err(name, "reading pax records"))?;
                let key = ext.key_bytes();
                if let Some(xname) = key.strip_prefix(b"SCHILY.xattr.") {
                    if keep_xattr(xname) {
                        let xname =
                            cstring(xname).map_err(entry_err(name, "reading xattr name"))?;
                        xattrs.push((xname, ext.value_bytes().to_vec()));
                    }
                } else if key == b"mtime" {
                    if let Some(t) = parse_pax_time(ext.value_bytes()) {
                        mtime = t;
                    }
                }
            }
        }
        Ok(Meta {
            mode,
            uid,
            gid,
            mtime,
            xattrs,
        })
    }

    fn times(&self) -> [libc::timespec; 2] {
        let ts = libc::timespec {
            tv_sec: self.mtime.0 as libc::time_t,
            tv_nsec: self.mtime.1 as libc::c_long,
        };
        [ts, ts]
    }
}

fn numeric(parsed: io::Result<u64>, raw: &[u8]) -> io::Result<u64> {
    match parsed {
        Err(_) if raw.iter().all(|b| *b == 0 || *b == b' ') => Ok(0),
        other => other,
    }
}

fn parse_pax_time(v: &[u8]) -> Option<(i64, i64)> {
    let s = std::str::from_utf8(v).ok()?;
    let (secs, frac) = match s.split_once('.') {
        Some((a, b)) => (a, b),
        None => (s, ""),
    };
    let secs: i64 = secs.parse().ok()?;
    let mut nanos = 0i64;
    for (i, ch) in frac.chars().take(9).enumerate() {
        let d = ch.to_digit(10)? as i64;
        nanos += d * 10i64.pow(8 - i as u32);
    }
    if secs < 0 && nanos > 0 {
        // -1.5 means 1.5 s before the epoch.
        return Some((secs - 1, 1_000_000_000 - nanos));
    }
    Some((secs, nanos))
}

impl Unpacker<'_> {
    fn run<R: Read>(&mut self, stream: &mut R) -> Result<(), LayerError> {
        let mut archive = tar::Archive::new(stream);
        let entries = archive
            .entries()
            .map_err(|source| LayerError::Read { source })?;
        for entry in entries {
            let mut entry = entry.map_err(|source| stream_err(&self.current, source))?;
            self.entries += 1;
            self.entry(&mut entry)?;
        }
        Ok(())
    }

    fn entry<R: Read>(&mut self, entry: &mut tar::Entry<'_, R>) -> Result<(), LayerError> {
        let raw = entry.path_bytes().into_owned();
        let name = String::from_utf8_lossy(&raw).into_owned();
        self.current.clone_from(&name);
        let etype = entry.header().entry_type();
        if etype.is_pax_global_extensions() {
            return Ok(());
        }
        let comps = split_path(&raw, &name)?;
        let meta = Meta::from_entry(entry, &name)?;

        let Some((base, parent_comps)) = comps.split_last() else {
            // The layer root itself ("./").
            if etype.is_dir() {
                self.dirs.push((Vec::new(), meta));
                return Ok(());
            }
            return Err(LayerError::Invalid {
                entry: name,
                reason: "the layer root must be a directory".into(),
            });
        };
        if base.starts_with(WHITEOUT_PREFIX) {
            return self.whiteout(parent_comps, base, &name);
        }
        let parent = self.resolve_dir(parent_comps, true, &name)?;
        let pfd = parent_fd(&parent);
        let cbase = cstring(base).map_err(entry_err(&name, "creating"))?;

        use tar::EntryType as T;
        match etype {
            T::Regular | T::Continuous | T::GNUSparse => {
                self.replace(pfd, &cbase, false, &name)?;
                self.write_file(entry, pfd, &cbase, &meta, &name)?;
            }
            T::Directory => {
                if !self.replace(pfd, &cbase, true, &name)? {
                    // SAFETY: mkdirat on a valid dirfd with a NUL-terminated single component.
                    let rc = unsafe { libc::mkdirat(pfd.as_raw_fd(), cbase.as_ptr(), 0o755) };
                    if rc != 0 {
                        return Err(entry_err(&name, "creating directory")(
                            io::Error::last_os_error(),
                        ));
                    }
                }
                self.dirs.push((join(&comps), meta));
            }
            T::Symlink => {
                let target = entry.link_name_bytes().ok_or_else(|| LayerError::Invalid {
                    entry: name.clone(),
                    reason: "symlink without a target".into(),
                })?;
                if target.is_empty() {
                    return Err(LayerError::Invalid {
                        entry: name,
                        reason: "symlink with an empty target".into(),
                    });
                }
                let ctarget = cstring(&target).map_err(entry_err(&name, "creating symlink"))?;
                self.replace(pfd, &cbase, false, &name)?;
                // SAFETY: symlinkat with valid C strings and dirfd; the target is stored, not followed.
                let rc =
                    unsafe { libc::symlinkat(ctarget.as_ptr(), pfd.as_raw_fd(), cbase.as_ptr()) };
                if rc != 0 {
                    return Err(entry_err(&name, "creating symlink")(
                        io::Error::last_os_error(),
                    ));
                }
                self.apply_meta_at(pfd, &cbase, &meta, true, &name)?;
            }
            T::Link => {
                let target = entry
                    .link_name_bytes()
                    .map(|t| t.into_owned())
                    .ok_or_else(|| LayerError::Invalid {
                        entry: name.clone(),
                        reason: "hard link without a target".into(),
                    })?;
                self.hard_link(pfd, &cbase, &comps, &target, &name)?;
            }
            T::Char | T::Block | T::Fifo => {
                if !self.opts.allow_devices {
                    return Err(LayerError::DeviceNotAllowed { entry: name });
                }
                let kind = match etype {
                    T::Char => libc::S_IFCHR,
                    T::Block => libc::S_IFBLK,
                    _ => libc::S_IFIFO,
                };
                let header = entry.header();
                let major = header
                    .device_major()
                    .map_err(entry_err(&name, "reading device major"))?
                    .unwrap_or(0);
                let minor = header
                    .device_minor()
                    .map_err(entry_err(&name, "reading device minor"))?
                    .unwrap_or(0);
                self.replace(pfd, &cbase, false, &name)?;
                let dev = libc::makedev(major, minor);
                // SAFETY: mknodat on a valid dirfd with a NUL-terminated single component.
                let rc = unsafe {
                    libc::mknodat(
                        pfd.as_raw_fd(),
                        cbase.as_ptr(),
                        kind | (meta.mode & 0o7777),
                        dev,
                    )
                };
                if rc != 0 {
                    return Err(entry_err(&name, "creating device node")(
                        io::Error::last_os_error(),
                    ));
                }
                self.apply_meta_at(pfd, &cbase, &meta, false, &name)?;
            }
            other => {
                return Err(LayerError::UnsupportedType {
                    entry: name,
                    kind: format!("{other:?}"),
                })
            }
        }
        if self.opts.whiteouts == WhiteoutMode::Apply {
            self.record(&comps);
        }
        Ok(())
    }

    fn record(&mut self, comps: &[&[u8]]) {
        for i in 1..=comps.len() {
            self.unpacked.insert(join(&comps[..i]));
        }
    }

    /// Open (and with `create`, make) the directory `comps` inside the root, never leaving it.
    fn resolve_dir(
        &self,
        comps: &[&[u8]],
        create: bool,
        entry: &str,
    ) -> Result<OwnedFd, LayerError> {
        let flags = libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC;
        let full = if comps.is_empty() {
            b".".to_vec()
        } else {
            join(comps)
        };
        match openat_beneath(self.root_fd(), &full, flags) {
            Ok(fd) => return Ok(fd),
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) && create => {}
            Err(e) => return Err(resolve_err(entry, e)),
        }
        // Create the missing directories one by one, each inside the one before.
        let mut cur =
            openat_beneath(self.root_fd(), b".", flags).map_err(|e| resolve_err(entry, e))?;
        for i in 0..comps.len() {
            let prefix = join(&comps[..=i]);
            match openat_beneath(self.root_fd(), &prefix, flags) {
                Ok(fd) => cur = fd,
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                    let c =
                        cstring(comps[i]).map_err(entry_err(entry, "creating parent directory"))?;
                    // SAFETY: mkdirat on a valid dirfd with a NUL-terminated single component.
                    let rc = unsafe { libc::mkdirat(cur.as_raw_fd(), c.as_ptr(), 0o755) };
                    if rc != 0 {
                        return Err(entry_err(entry, "creating parent directory")(
                            io::Error::last_os_error(),
                        ));
                    }
                    cur = openat_beneath(self.root_fd(), &prefix, flags)
                        .map_err(|e| resolve_err(entry, e))?;
                }
                Err(e) => return Err(resolve_err(entry, e)),
            }
        }
        Ok(cur)
    }

    fn root_fd(&self) -> BorrowedFd<'_> {
        use std::os::fd::AsFd;
        self.root.as_fd()
    }

    /// Make room for a new entry `name` in `dir`. Returns true when an existing directory is
    /// kept (a directory entry over a directory merges); anything else there is removed.
    fn replace(
        &self,
        dir: BorrowedFd<'_>,
        name: &CStr,
        is_dir: bool,
        entry: &str,
    ) -> Result<bool, LayerError> {
        match lstat_at(dir, name) {
            Ok(None) => Ok(false),
            Ok(Some(st)) if is_dir && st.st_mode & libc::S_IFMT == libc::S_IFDIR => Ok(true),
            Ok(Some(_)) => {
                remove_all_at(dir, name)
                    .map_err(entry_err(entry, "replacing the existing path"))?;
                Ok(false)
            }
            Err(e) => Err(entry_err(entry, "inspecting the existing path")(e)),
        }
    }

    fn write_file<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
        dir: BorrowedFd<'_>,
        name: &CStr,
        meta: &Meta,
        ename: &str,
    ) -> Result<(), LayerError> {
        // SAFETY: openat on a valid dirfd with a single NUL-terminated component;
        // O_EXCL|O_NOFOLLOW never follows a symlink. The fd is checked and owned below.
        let fd = unsafe {
            libc::openat(
                dir.as_raw_fd(),
                name.as_ptr(),
                libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW | libc::O_CLOEXEC,
                0o600 as libc::c_uint,
            )
        };
        if fd < 0 {
            return Err(entry_err(ename, "creating file")(io::Error::last_os_error()));
        }
        // SAFETY: `fd` is a fresh descriptor we own exclusively.
        let mut file = File::from(unsafe { OwnedFd::from_raw_fd(fd) });
        loop {
            let n = match entry.read(&mut self.buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(source) => {
                    return Err(LayerError::Stream {
                        entry: ename.to_string(),
                        source,
                    })
                }
            };
            file.write_all(&self.buf[..n])
                .map_err(entry_err(ename, "writing file"))?;
        }
        apply_meta_fd(&file, meta, self.opts.same_owner, ename)
    }

    fn hard_link(
        &mut self,
        dir: BorrowedFd<'_>,
        name: &CStr,
        comps: &[&[u8]],
        target: &[u8],
        entry: &str,
    ) -> Result<(), LayerError> {
        let tname = String::from_utf8_lossy(target).into_owned();
        let refuse = |reason: &str| LayerError::HardLink {
            entry: entry.to_string(),
            target: tname.clone(),
            reason: reason.to_string(),
        };
        if target.first() == Some(&b'/') {
            return Err(refuse("the target is an absolute path"));
        }
        let tcomps = match split_path(target, entry) {
            Ok(c) => c,
            Err(LayerError::ParentComponent { .. }) => {
                return Err(refuse("the target has a '..' component"))
            }
            Err(_) => return Err(refuse("the target path is invalid")),
        };
        let Some((tbase, tparent)) = tcomps.split_last() else {
            return Err(refuse("the target is the layer root"));
        };
        if tcomps == comps {
            return Ok(());
        }
        let tdir = match openat_beneath(
            self.root_fd(),
            &if tparent.is_empty() {
                b".".to_vec()
            } else {
                join(tparent)
            },
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
        ) {
            Ok(fd) => fd,
            Err(e) if e.raw_os_error() == Some(libc::EXDEV) => {
                return Err(refuse("the target resolves outside the layer root"))
            }
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                return Err(refuse("the target does not exist in the layer"))
            }
            Err(e) => return Err(refuse(&format!("resolving the target: {e}"))),
        };
        let ctbase = cstring(tbase).map_err(entry_err(entry, "linking"))?;
        match lstat_at(parent_fd(&tdir), &ctbase) {
            Ok(Some(st)) if st.st_mode & libc::S_IFMT == libc::S_IFDIR => {
                return Err(refuse("the target is a directory"))
            }
            Ok(Some(_)) => {}
            Ok(None) => return Err(refuse("the target does not exist in the layer")),
            Err(e) => return Err(refuse(&format!("inspecting the target: {e}"))),
        }
        self.replace(dir, name, false, entry)?;
        // SAFETY: linkat on two valid dirfds with single NUL-terminated components; flags 0
        // links a symlink itself rather than following it.
        let rc = unsafe {
            libc::linkat(
                tdir.as_raw_fd(),
                ctbase.as_ptr(),
                dir.as_raw_fd(),
                name.as_ptr(),
                0,
            )
        };
        if rc != 0 {
            return Err(entry_err(entry, "creating hard link")(
                io::Error::last_os_error(),
            ));
        }
        Ok(())
    }

    fn whiteout(
        &mut self,
        parent_comps: &[&[u8]],
        base: &[u8],
        entry: &str,
    ) -> Result<(), LayerError> {
        if base == WHITEOUT_OPAQUE {
            let dir = self.resolve_dir(parent_comps, true, entry)?;
            match self.opts.whiteouts {
                WhiteoutMode::Overlay => {
                    // SAFETY: fsetxattr on a valid fd with a NUL-terminated name and a 1-byte value.
                    let rc = unsafe {
                        libc::fsetxattr(
                            dir.as_raw_fd(),
                            OVERLAY_OPAQUE_XATTR.as_ptr(),
                            b"y".as_ptr().cast(),
                            1,
                            0,
                        )
                    };
                    if rc != 0 {
                        return Err(entry_err(entry, "marking the directory opaque")(
                            io::Error::last_os_error(),
                        ));
                    }
                }
                WhiteoutMode::Apply => {
                    let path = join(parent_comps);
                    self.clear_opaque(parent_fd(&dir), &path)
                        .map_err(entry_err(entry, "clearing the opaque directory"))?;
                    self.record(parent_comps);
                }
            }
            return Ok(());
        }
        if base.starts_with(WHITEOUT_META_PREFIX) {
            // Other aufs metadata (.wh..wh.plnk, .wh..wh.aufs): nothing to unpack.
            return Ok(());
        }
        let victim = &base[WHITEOUT_PREFIX.len()..];
        if victim.is_empty() || victim == b"." || victim == b".." {
            return Err(LayerError::Invalid {
                entry: entry.to_string(),
                reason: "whiteout without a valid name".into(),
            });
        }
        let cvictim = cstring(victim).map_err(entry_err(entry, "whiting out"))?;
        match self.opts.whiteouts {
            WhiteoutMode::Overlay => {
                let dir = self.resolve_dir(parent_comps, true, entry)?;
                self.replace(parent_fd(&dir), &cvictim, false, entry)?;
                // SAFETY: mknodat on a valid dirfd with a single NUL-terminated component.
                let rc = unsafe {
                    libc::mknodat(
                        dir.as_raw_fd(),
                        cvictim.as_ptr(),
                        libc::S_IFCHR,
                        libc::makedev(0, 0),
                    )
                };
                if rc != 0 {
                    return Err(entry_err(entry, "creating the overlay whiteout")(
                        io::Error::last_os_error(),
                    ));
                }
            }
            WhiteoutMode::Apply => {
                let dir = match self.resolve_dir(parent_comps, false, entry) {
                    Ok(d) => d,
                    // Nothing to delete under a directory that does not exist.
                    Err(LayerError::Entry { source, .. })
                        if source.raw_os_error() == Some(libc::ENOENT) =>
                    {
                        return Ok(())
                    }
                    Err(e) => return Err(e),
                };
                remove_all_at(parent_fd(&dir), &cvictim)
                    .map_err(entry_err(entry, "applying the whiteout"))?;
            }
        }
        Ok(())
    }

    /// Apply mode: remove from `dir` (at `path`) everything this layer did not write, recursively.
    fn clear_opaque(&self, dir: BorrowedFd<'_>, path: &[u8]) -> io::Result<()> {
        for child in list_dir(dir)? {
            let mut cpath = path.to_vec();
            if !cpath.is_empty() {
                cpath.push(b'/');
            }
            cpath.extend_from_slice(child.as_bytes());
            if !self.unpacked.contains(&cpath) {
                remove_all_at(dir, &child)?;
                continue;
            }
            if let Some(st) = lstat_at(dir, &child)? {
                if st.st_mode & libc::S_IFMT == libc::S_IFDIR {
                    let sub = openat_nofollow_dir(dir, &child)?;
                    self.clear_opaque(parent_fd(&sub), &cpath)?;
                }
            }
        }
        Ok(())
    }

    fn apply_meta_at(
        &self,
        dir: BorrowedFd<'_>,
        name: &CStr,
        meta: &Meta,
        symlink: bool,
        entry: &str,
    ) -> Result<(), LayerError> {
        if self.opts.same_owner {
            // SAFETY: fchownat on a valid dirfd and NUL-terminated name, not following symlinks.
            let rc = unsafe {
                libc::fchownat(
                    dir.as_raw_fd(),
                    name.as_ptr(),
                    meta.uid,
                    meta.gid,
                    libc::AT_SYMLINK_NOFOLLOW,
                )
            };
            if rc != 0 {
                return Err(entry_err(entry, "setting ownership")(
                    io::Error::last_os_error(),
                ));
            }
        }
        if !meta.xattrs.is_empty() {
            // The kernel refuses user.* xattrs on anything but files and directories.
            let mut proc_path = format!("/proc/self/fd/{}/", dir.as_raw_fd()).into_bytes();
            proc_path.extend_from_slice(name.to_bytes());
            let cpath = cstring(&proc_path).map_err(entry_err(entry, "setting xattrs"))?;
            for (xname, value) in meta
                .xattrs
                .iter()
                .filter(|(n, _)| !n.to_bytes().starts_with(b"user."))
            {
                // SAFETY: lsetxattr with valid C strings and a value slice of the given length; the
                // magic link names our own directory fd and the last component is not followed.
                let rc = unsafe {
                    libc::lsetxattr(
                        cpath.as_ptr(),
                        xname.as_ptr(),
                        value.as_ptr().cast(),
                        value.len(),
                        0,
                    )
                };
                if rc != 0 {
                    return Err(xattr_err(entry, xname, io::Error::last_os_error()));
                }
            }
        }
        if !symlink {
            // SAFETY: fchmodat on a valid dirfd and a name we just created as a non-symlink.
            let rc = unsafe { libc::fchmodat(dir.as_raw_fd(), name.as_ptr(), meta.mode, 0) };
            if rc != 0 {
                return Err(entry_err(entry, "setting the mode")(
                    io::Error::last_os_error(),
                ));
            }
        }
        let times = meta.times();
        // SAFETY: utimensat on a valid dirfd, NUL-terminated name and a 2-element timespec array.
        let rc = unsafe {
            libc::utimensat(
                dir.as_raw_fd(),
                name.as_ptr(),
                times.as_ptr(),
                libc::AT_SYMLINK_NOFOLLOW,
            )
        };
        if rc != 0 {
            return Err(entry_err(entry, "setting the mtime")(
                io::Error::last_os_error(),
            ));
        }
        Ok(())
    }

    /// Apply directory ownership, xattrs, modes and mtimes once all children are written.
    fn finish_dirs(&mut self) -> Result<(), LayerError> {
        let mut done: HashSet<&[u8]> = HashSet::new();
        for (path, meta) in self.dirs.iter().rev() {
            if !done.insert(path.as_slice()) {
                continue;
            }
            let name = String::from_utf8_lossy(path).into_owned();
            let p = if path.is_empty() {
                b".".as_slice()
            } else {
                path.as_slice()
            };
            let fd = match openat_beneath(
                self.root_fd(),
                p,
                libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
            ) {
                Ok(fd) => fd,
                // Replaced or removed by a later entry of the layer.
                Err(e)
                    if matches!(
                        e.raw_os_error(),
                        Some(libc::ENOENT) | Some(libc::ENOTDIR) | Some(libc::ELOOP)
                    ) =>
                {
                    continue
                }
                Err(e) => return Err(resolve_err(&name, e)),
            };
            let file = File::from(fd);
            apply_meta_fd(&file, meta, self.opts.same_owner, &name)?;
        }
        Ok(())
    }
}

fn parent_fd(fd: &OwnedFd) -> BorrowedFd<'_> {
    use std::os::fd::AsFd;
    fd.as_fd()
}

fn resolve_err(entry: &str, e: io::Error) -> LayerError {
    if e.raw_os_error() == Some(libc::EXDEV) {
        return LayerError::Escapes {
            entry: entry.to_string(),
        };
    }
    LayerError::Entry {
        entry: entry.to_string(),
        op: "resolving the parent directory",
        source: e,
    }
}

fn xattr_err(entry: &str, xname: &CStr, e: io::Error) -> LayerError {
    LayerError::Entry {
        entry: entry.to_string(),
        op: "setting an xattr",
        source: io::Error::new(e.kind(), format!("{}: {e}", xname.to_string_lossy())),
    }
}

fn apply_meta_fd(
    file: &File,
    meta: &Meta,
    same_owner: bool,
    entry: &str,
) -> Result<(), LayerError> {
    let fd = file.as_raw_fd();
    if same_owner {
        // SAFETY: fchown on a valid fd we own.
        if unsafe { libc::fchown(fd, meta.uid, meta.gid) } != 0 {
            return Err(entry_err(entry, "setting ownership")(
                io::Error::last_os_error(),
            ));
        }
    }
    for (xname, value) in &meta.xattrs {
        // SAFETY: fsetxattr on a valid fd, NUL-terminated name, value slice of the given length.
        let rc =
            unsafe { libc::fsetxattr(fd, xname.as_ptr(), value.as_ptr().cast(), value.len(), 0) };
        if rc != 0 {
            return Err(xattr_err(entry, xname, io::Error::last_os_error()));
        }
    }
    // SAFETY: fchmod on a valid fd we own (after fchown, which clears setuid bits).
    if unsafe { libc::fchmod(fd, meta.mode) } != 0 {
        return Err(entry_err(entry, "setting the mode")(
            io::Error::last_os_error(),
        ));
    }
    let times = meta.times();
    // SAFETY: futimens on a valid fd with a 2-element timespec array.
    if unsafe { libc::futimens(fd, times.as_ptr()) } != 0 {
        return Err(entry_err(entry, "setting the mtime")(
            io::Error::last_os_error(),
        ));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Syscall helpers.

#[repr(C)]
struct OpenHow {
    flags: u64,
    mode: u64,
    resolve: u64,
}

/// `openat2(dir, path, flags, RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS)`: EXDEV when the path
/// (through `..` or a symlink, absolute or relative) would leave `dir`.
fn openat_beneath(dir: BorrowedFd<'_>, path: &[u8], flags: i32) -> io::Result<OwnedFd> {
    let c = cstring(path)?;
    let how = OpenHow {
        flags: flags as u64,
        mode: 0,
        resolve: libc::RESOLVE_BENEATH | libc::RESOLVE_NO_MAGICLINKS,
    };
    loop {
        // SAFETY: openat2 with a valid dirfd, a NUL-terminated path and a correctly sized open_how.
        let fd = unsafe {
            libc::syscall(
                libc::SYS_openat2,
                dir.as_raw_fd(),
                c.as_ptr(),
                &how as *const OpenHow,
                std::mem::size_of::<OpenHow>(),
            )
        };
        if fd >= 0 {
            // SAFETY: a fresh descriptor returned by the kernel, owned by us alone.
            return Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) });
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EINTR) | Some(libc::EAGAIN) => continue,
            _ => return Err(e),
        }
    }
}

fn openat_nofollow_dir(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<OwnedFd> {
    // SAFETY: openat on a valid dirfd with a single NUL-terminated component, not following it.
    let fd = unsafe {
        libc::openat(
            dir.as_raw_fd(),
            name.as_ptr(),
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a fresh descriptor owned by us alone.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn lstat_at(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<Option<libc::stat>> {
    let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: fstatat on a valid dirfd and name, writing into a properly sized buffer.
    let rc = unsafe {
        libc::fstatat(
            dir.as_raw_fd(),
            name.as_ptr(),
            st.as_mut_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    if rc != 0 {
        let e = io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::ENOENT) {
            return Ok(None);
        }
        return Err(e);
    }
    // SAFETY: fstatat succeeded, so the buffer is initialised.
    Ok(Some(unsafe { st.assume_init() }))
}

/// Names in a directory (without `.` and `..`).
fn list_dir(dir: BorrowedFd<'_>) -> io::Result<Vec<CString>> {
    // SAFETY: F_DUPFD_CLOEXEC on a valid fd; the duplicate is handed to fdopendir below.
    let dup = unsafe { libc::fcntl(dir.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 0) };
    if dup < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `dup` is a valid directory fd; on success the DIR stream owns it.
    let stream = unsafe { libc::fdopendir(dup) };
    if stream.is_null() {
        let e = io::Error::last_os_error();
        // SAFETY: fdopendir failed, so we still own `dup`.
        unsafe { libc::close(dup) };
        return Err(e);
    }
    // fdopendir shares the file offset with `dir`: start from the beginning.
    // SAFETY: `stream` is a valid DIR*.
    unsafe { libc::rewinddir(stream) };
    let mut names = Vec::new();
    let result = loop {
        // SAFETY: resetting errno of this thread before readdir, as readdir requires.
        unsafe { *libc::__errno_location() = 0 };
        // SAFETY: `stream` is a valid DIR*; the entry is read before the next readdir call.
        let ent = unsafe { libc::readdir64(stream) };
        if ent.is_null() {
            let e = io::Error::last_os_error();
            break if e.raw_os_error().unwrap_or(0) != 0 {
                Err(e)
            } else {
                Ok(())
            };
        }
        // SAFETY: d_name of a valid dirent64 is NUL-terminated.
        let name = unsafe { CStr::from_ptr((*ent).d_name.as_ptr()) };
        let b = name.to_bytes();
        if b != b"." && b != b".." {
            names.push(name.to_owned());
        }
    };
    // SAFETY: `stream` is a valid DIR* closed exactly once (this also closes `dup`).
    unsafe { libc::closedir(stream) };
    result.map(|()| names)
}

/// Remove `name` in `dir`, recursively when it is a directory, never following symlinks.
fn remove_all_at(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<()> {
    let Some(st) = lstat_at(dir, name)? else {
        return Ok(());
    };
    if st.st_mode & libc::S_IFMT == libc::S_IFDIR {
        let sub = openat_nofollow_dir(dir, name)?;
        for child in list_dir(parent_fd(&sub))? {
            remove_all_at(parent_fd(&sub), &child)?;
        }
        // SAFETY: unlinkat on a valid dirfd and NUL-terminated name.
        if unsafe { libc::unlinkat(dir.as_raw_fd(), name.as_ptr(), libc::AT_REMOVEDIR) } != 0 {
            return Err(io::Error::last_os_error());
        }
    } else {
        // SAFETY: unlinkat on a valid dirfd and NUL-terminated name.
        if unsafe { libc::unlinkat(dir.as_raw_fd(), name.as_ptr(), 0) } != 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::ENOENT) {
                return Err(e);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_compression() {
        assert_eq!(Compression::detect(&[0x1f, 0x8b, 8, 0]), Compression::Gzip);
        assert_eq!(
            Compression::detect(&[0x28, 0xb5, 0x2f, 0xfd]),
            Compression::Zstd
        );
        assert_eq!(Compression::detect(b"usta"), Compression::None);
        assert_eq!(Compression::detect(&[]), Compression::None);
    }

    #[test]
    fn splits_and_refuses_paths() {
        assert_eq!(
            split_path(b"./a//b/./c/", "x").ok(),
            Some(vec![&b"a"[..], b"b", b"c"])
        );
        assert_eq!(split_path(b"./", "x").ok(), Some(vec![]));
        assert!(matches!(
            split_path(b"/etc/passwd", "x"),
            Err(LayerError::AbsolutePath { .. })
        ));
        assert!(matches!(
            split_path(b"a/../../etc", "x"),
            Err(LayerError::ParentComponent { .. })
        ));
        assert!(matches!(
            split_path(b"..", "x"),
            Err(LayerError::ParentComponent { .. })
        ));
    }

    #[test]
    fn parses_pax_times() {
        assert_eq!(parse_pax_time(b"1700000000"), Some((1_700_000_000, 0)));
        assert_eq!(
            parse_pax_time(b"1700000000.5"),
            Some((1_700_000_000, 500_000_000))
        );
        assert_eq!(parse_pax_time(b"-1.5"), Some((-2, 500_000_000)));
        assert_eq!(parse_pax_time(b"x"), None);
    }

    #[test]
    fn keeps_only_safe_xattrs() {
        assert!(keep_xattr(b"user.test"));
        assert!(keep_xattr(b"trusted.foo"));
        assert!(keep_xattr(b"security.capability"));
        assert!(!keep_xattr(b"trusted.overlay.opaque"));
        assert!(!keep_xattr(b"security.selinux"));
        assert!(!keep_xattr(b"system.posix_acl_access"));
    }

    #[test]
    fn diff_id_is_the_same_for_every_compression() {
        let plain = b"hello layer".repeat(1000);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(&plain).ok();
        let gz = gz.finish().unwrap_or_default();
        let zst = zstd::encode_all(&plain[..], 3).unwrap_or_default();
        let a = diff_id(&plain[..], u64::MAX).ok();
        assert_eq!(a.as_ref().map(|x| x.1), Some(plain.len() as u64));
        assert_eq!(diff_id(&gz[..], u64::MAX).ok(), a);
        assert_eq!(diff_id(&zst[..], u64::MAX).ok(), a);
        assert!(matches!(
            diff_id(&plain[..], 100),
            Err(LayerError::StreamTooLarge { limit: 100 })
        ));
    }
}
