//! Layer unpacking against hostile and tricky tars: escapes refused with nothing left behind, and everything a real layer holds kept (needs root).

use std::error::Error;
use std::ffi::CString;
use std::fs;
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use berth_image::layer::{self, Compression, LayerError, UnpackOptions, WhiteoutMode};
use tar::{EntryType, Header};

type Res = Result<(), Box<dyn Error>>;

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    if !root {
        eprintln!("skipped: layer unpacking tests need root (ownership, devices, trusted xattrs)");
    }
    root
}

/// A tar written header by header, with raw names the `tar` builder would refuse.
struct Tar(tar::Builder<Vec<u8>>);

impl Tar {
    fn new() -> Self {
        Tar(tar::Builder::new(Vec::new()))
    }

    fn raw(
        &mut self,
        name: &[u8],
        kind: EntryType,
        link: &[u8],
        data: &[u8],
        edit: impl FnOnce(&mut Header),
    ) -> io::Result<&mut Self> {
        let mut h = Header::new_gnu();
        h.set_entry_type(kind);
        h.set_size(data.len() as u64);
        h.set_mode(if kind == EntryType::Directory {
            0o755
        } else {
            0o644
        });
        h.set_mtime(1_600_000_000);
        h.set_uid(0);
        h.set_gid(0);
        {
            let old = h.as_old_mut();
            old.name = [0; 100];
            old.name[..name.len()].copy_from_slice(name);
            old.linkname = [0; 100];
            old.linkname[..link.len()].copy_from_slice(link);
        }
        edit(&mut h);
        h.set_cksum();
        self.0.append(&h, data)?;
        Ok(self)
    }

    fn dir(&mut self, name: &str) -> io::Result<&mut Self> {
        self.raw(name.as_bytes(), EntryType::Directory, b"", b"", |_| {})
    }

    fn file(&mut self, name: &str, data: &[u8]) -> io::Result<&mut Self> {
        self.raw(name.as_bytes(), EntryType::Regular, b"", data, |_| {})
    }

    fn symlink(&mut self, name: &str, target: &str) -> io::Result<&mut Self> {
        self.raw(
            name.as_bytes(),
            EntryType::Symlink,
            target.as_bytes(),
            b"",
            |_| {},
        )
    }

    fn hardlink(&mut self, name: &str, target: &str) -> io::Result<&mut Self> {
        self.raw(
            name.as_bytes(),
            EntryType::Link,
            target.as_bytes(),
            b"",
            |_| {},
        )
    }

    fn device(
        &mut self,
        name: &str,
        kind: EntryType,
        major: u32,
        minor: u32,
    ) -> io::Result<&mut Self> {
        let mut res = Ok(());
        self.raw(name.as_bytes(), kind, b"", b"", |h| {
            res = h
                .set_device_major(major)
                .and_then(|()| h.set_device_minor(minor));
        })?;
        res.map(|()| self)
    }

    /// A PAX extended header applying to the next entry.
    fn pax(&mut self, records: &[(&str, &[u8])]) -> io::Result<&mut Self> {
        let mut data = Vec::new();
        for (key, value) in records {
            let body = key.len() + value.len() + 3; // ' ', '=', '\n'
            let mut len = body + 1;
            while len != body + len.to_string().len() {
                len = body + len.to_string().len();
            }
            data.extend_from_slice(format!("{len} {key}=").as_bytes());
            data.extend_from_slice(value);
            data.push(b'\n');
        }
        self.raw(b"././@PaxHeader", EntryType::XHeader, b"", &data, |_| {})
    }

    fn finish(self) -> io::Result<Vec<u8>> {
        self.0.into_inner()
    }
}

/// A scratch dir; `dest()` is a path inside it that does not exist yet.
struct Scratch {
    dir: tempfile::TempDir,
}

impl Scratch {
    fn new() -> io::Result<Self> {
        Ok(Scratch {
            dir: tempfile::tempdir()?,
        })
    }

    fn dest(&self) -> PathBuf {
        self.dir.path().join("layer")
    }

    fn is_empty(&self) -> io::Result<bool> {
        Ok(fs::read_dir(self.dir.path())?.next().is_none())
    }
}

fn opts(mode: WhiteoutMode) -> UnpackOptions {
    UnpackOptions {
        whiteouts: mode,
        allow_devices: false,
        max_bytes: 64 << 20,
        same_owner: true,
    }
}

fn marker() -> PathBuf {
    PathBuf::from(format!("/tmp/berth-pwned-{}", std::process::id()))
}

/// Unpack a hostile tar in overlay mode and check it is refused naming `entry`, leaving
/// nothing behind: no dest, no temp dir, no marker, /etc/passwd unchanged.
fn refused(tar: &[u8], entry: &str, check: impl Fn(&LayerError) -> bool) -> Res {
    let passwd = fs::read("/etc/passwd")?;
    let scratch = Scratch::new()?;
    let result = layer::unpack(tar, &scratch.dest(), &opts(WhiteoutMode::Overlay));
    let err = match result {
        Ok(stats) => {
            return Err(format!("hostile layer with {entry} was accepted: {stats:?}").into())
        }
        Err(e) => e,
    };
    assert!(check(&err), "unexpected error for {entry}: {err:?}");
    assert!(
        err.to_string().contains(entry),
        "error {err} does not name {entry}"
    );
    assert!(!scratch.dest().exists(), "dest created for {entry}");
    assert!(scratch.is_empty()?, "something left behind for {entry}");
    assert!(!marker().exists(), "{} was created", marker().display());
    assert_eq!(fs::read("/etc/passwd")?, passwd, "/etc/passwd changed");
    Ok(())
}

#[test]
fn dotdot_entry_is_refused() -> Res {
    if !is_root() {
        return Ok(());
    }
    let mut t = Tar::new();
    t.file("ok", b"fine")?.file("../etc/passwd", b"pwned\n")?;
    refused(&t.finish()?, "../etc/passwd", |e| {
        matches!(e, LayerError::ParentComponent { .. })
    })?;
    let mut t = Tar::new();
    t.dir("a")?
        .file("a/../../../../../../../../etc/passwd", b"pwned\n")?;
    refused(&t.finish()?, "a/../../", |e| {
        matches!(e, LayerError::ParentComponent { .. })
    })
}

#[test]
fn absolute_entry_is_refused() -> Res {
    if !is_root() {
        return Ok(());
    }
    let mut t = Tar::new();
    t.file("/etc/passwd", b"pwned\n")?;
    refused(&t.finish()?, "/etc/passwd", |e| {
        matches!(e, LayerError::AbsolutePath { .. })
    })
}

#[test]
fn file_through_symlink_to_root_is_refused() -> Res {
    if !is_root() {
        return Ok(());
    }
    let name = format!("evil/tmp/berth-pwned-{}", std::process::id());
    for target in ["/", "../../..", "/tmp", "x/../../../.."] {
        let mut t = Tar::new();
        t.dir("x")?
            .symlink("evil", target)?
            .file(&name, b"pwned\n")?;
        refused(&t.finish()?, &name, |e| {
            matches!(e, LayerError::Escapes { .. })
        })?;
    }
    // Through a symlinked directory deeper down, and a directory entry rather than a file.
    let mut t = Tar::new();
    t.dir("a")?
        .symlink("a/up", "../..")?
        .dir("a/up/tmp/berth-pwned-dir")?;
    refused(&t.finish()?, "a/up/tmp/berth-pwned-dir", |e| {
        matches!(e, LayerError::Escapes { .. })
    })?;
    Ok(())
}

#[test]
fn file_through_symlink_is_refused_in_apply_mode() -> Res {
    if !is_root() {
        return Ok(());
    }
    let scratch = Scratch::new()?;
    let dest = scratch.dest();
    fs::create_dir(&dest)?;
    std::os::unix::fs::symlink("/", dest.join("evil"))?;
    let name = format!("evil/tmp/berth-pwned-{}", std::process::id());
    let mut t = Tar::new();
    t.file(&name, b"pwned\n")?;
    let err = layer::unpack(&t.finish()?[..], &dest, &opts(WhiteoutMode::Apply));
    assert!(
        matches!(err, Err(LayerError::Escapes { ref entry }) if *entry == name),
        "{err:?}"
    );
    assert!(!marker().exists());
    Ok(())
}

#[test]
fn hard_links_out_of_the_layer_are_refused() -> Res {
    if !is_root() {
        return Ok(());
    }
    let shadow = fs::read("/etc/shadow")?;
    let mut t = Tar::new();
    t.hardlink("shadow", "/etc/shadow")?;
    refused(&t.finish()?, "shadow", |e| {
        matches!(e, LayerError::HardLink { .. })
    })?;
    let mut t = Tar::new();
    t.hardlink("x", "../x")?;
    refused(&t.finish()?, "../x", |e| {
        matches!(e, LayerError::HardLink { .. })
    })?;
    let mut t = Tar::new();
    t.symlink("evil", "/")?
        .hardlink("shadow", "evil/etc/shadow")?;
    refused(&t.finish()?, "evil/etc/shadow", |e| {
        matches!(e, LayerError::HardLink { .. })
    })?;
    let mut t = Tar::new();
    t.hardlink("missing", "nothere")?;
    refused(&t.finish()?, "missing", |e| {
        matches!(e, LayerError::HardLink { .. })
    })?;
    assert_eq!(fs::read("/etc/shadow")?, shadow);
    Ok(())
}

#[test]
fn devices_need_allow_devices() -> Res {
    if !is_root() {
        return Ok(());
    }
    let mut t = Tar::new();
    t.file("ok", b"x")?
        .device("dev/sda", EntryType::Block, 8, 0)?;
    refused(&t.finish()?, "dev/sda", |e| {
        matches!(e, LayerError::DeviceNotAllowed { .. })
    })?;
    let mut t = Tar::new();
    t.device("null", EntryType::Char, 1, 3)?;
    refused(&t.finish()?, "null", |e| {
        matches!(e, LayerError::DeviceNotAllowed { .. })
    })?;
    let mut t = Tar::new();
    t.device("pipe", EntryType::Fifo, 0, 0)?;
    refused(&t.finish()?, "pipe", |e| {
        matches!(e, LayerError::DeviceNotAllowed { .. })
    })
}

/// A tar stream of one entry `bomb` holding 2 GiB of zeros, produced lazily.
struct Bomb {
    header: [u8; 512],
    pos: u64,
    total: u64,
}

impl Bomb {
    fn new() -> io::Result<Self> {
        let mut h = Header::new_gnu();
        h.set_path("bomb")?;
        h.set_size(2 << 30);
        h.set_mode(0o644);
        h.set_entry_type(EntryType::Regular);
        h.set_cksum();
        let mut header = [0u8; 512];
        header.copy_from_slice(h.as_bytes());
        Ok(Bomb {
            header,
            pos: 0,
            total: 512 + (2 << 30) + 1024,
        })
    }
}

impl Read for Bomb {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.total - self.pos;
        let n = (buf.len() as u64).min(left) as usize;
        for (i, b) in buf[..n].iter_mut().enumerate() {
            let at = self.pos + i as u64;
            *b = if at < 512 {
                self.header[at as usize]
            } else {
                0
            };
        }
        self.pos += n as u64;
        Ok(n)
    }
}

#[test]
fn gzip_bomb_is_capped() -> Res {
    if !is_root() {
        return Ok(());
    }
    // Compressed on the fly: only what the unpacker reads is ever produced.
    let gz = flate2::read::GzEncoder::new(Bomb::new()?, flate2::Compression::fast());
    let scratch = Scratch::new()?;
    let err = layer::unpack(gz, &scratch.dest(), &opts(WhiteoutMode::Overlay));
    assert!(
        matches!(err, Err(LayerError::TooLarge { limit, ref entry }) if limit == 64 << 20 && entry == "bomb"),
        "{err:?}"
    );
    assert!(!scratch.dest().exists());
    assert!(scratch.is_empty()?);
    let gz = flate2::read::GzEncoder::new(Bomb::new()?, flate2::Compression::fast());
    assert!(matches!(
        layer::diff_id(gz, 8 << 20),
        Err(LayerError::StreamTooLarge { .. })
    ));
    Ok(())
}

#[test]
fn refused_apply_layer_names_entry_and_dest_must_be_free() -> Res {
    if !is_root() {
        return Ok(());
    }
    // Overlay mode refuses a non-empty dest but accepts an empty one.
    let scratch = Scratch::new()?;
    let dest = scratch.dest();
    fs::create_dir(&dest)?;
    fs::write(dest.join("keep"), b"x")?;
    let mut t = Tar::new();
    t.file("a", b"a")?;
    let tar = t.finish()?;
    assert!(matches!(
        layer::unpack(&tar[..], &dest, &opts(WhiteoutMode::Overlay)),
        Err(LayerError::DestExists { .. })
    ));
    assert_eq!(fs::read(dest.join("keep"))?, b"x");
    fs::remove_file(dest.join("keep"))?;
    layer::unpack(&tar[..], &dest, &opts(WhiteoutMode::Overlay))?;
    assert_eq!(fs::read(dest.join("a"))?, b"a");
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// What a real layer holds is kept.

fn xattr(path: &Path, name: &str) -> Option<Vec<u8>> {
    let p = CString::new(path.as_os_str().as_bytes()).ok()?;
    let n = CString::new(name).ok()?;
    let mut buf = vec![0u8; 256];
    // SAFETY: lgetxattr writes at most buf.len() bytes into buf.
    let got =
        unsafe { libc::lgetxattr(p.as_ptr(), n.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    if got < 0 {
        return None;
    }
    buf.truncate(got as usize);
    Some(buf)
}

fn rich_layer() -> io::Result<Vec<u8>> {
    let mut t = Tar::new();
    t.raw(b"./", EntryType::Directory, b"", b"", |h| h.set_mode(0o755))?
        .dir("bin")?
        .raw(b"bin/su", EntryType::Regular, b"", b"#!/bin/true\n", |h| {
            h.set_mode(0o4755)
        })?
        .raw(b"home/user/owned", EntryType::Regular, b"", b"mine", |h| {
            h.set_uid(1234);
            h.set_gid(5678);
            h.set_mode(0o600);
            h.set_mtime(1_234_567_890);
        })?
        .pax(&[
            ("SCHILY.xattr.user.test", b"x"),
            ("SCHILY.xattr.trusted.overlay.opaque", b"y"),
        ])?
        .file("tagged", b"with xattr")?
        .file("a", b"shared")?
        .hardlink("b", "a")?
        .hardlink("bin/c", "./a")?
        .symlink("abs", "/etc/passwd")?
        .symlink("rel", "../../../etc")?
        .symlink("usrbin", "bin")?
        .file("usrbin/through-inner-link", b"ok")?
        .raw(b"ro", EntryType::Directory, b"", b"", |h| h.set_mode(0o555))?
        .file("ro/inside", b"written before the dir turned read-only")?
        .device("dev/null", EntryType::Char, 1, 3)?
        .device("dev/fifo", EntryType::Fifo, 0, 0)?;
    t.finish()
}

#[test]
fn attributes_links_and_devices_are_kept() -> Res {
    if !is_root() {
        return Ok(());
    }
    let scratch = Scratch::new()?;
    let dest = scratch.dest();
    let mut o = opts(WhiteoutMode::Overlay);
    o.allow_devices = true;
    let tar = rich_layer()?;
    let stats = layer::unpack(&tar[..], &dest, &o)?;
    assert_eq!(stats.uncompressed_size, tar.len() as u64);
    assert_eq!(stats.compressed_size, tar.len() as u64);
    assert_eq!(stats.entries, 16);

    let su = fs::metadata(dest.join("bin/su"))?;
    assert_eq!(su.mode() & 0o7777, 0o4755, "setuid bit lost");
    let owned = fs::metadata(dest.join("home/user/owned"))?;
    assert_eq!(
        (owned.uid(), owned.gid(), owned.mode() & 0o7777),
        (1234, 5678, 0o600)
    );
    assert_eq!(owned.mtime(), 1_234_567_890);
    assert_eq!(
        xattr(&dest.join("tagged"), "user.test").as_deref(),
        Some(&b"x"[..])
    );
    assert_eq!(
        xattr(&dest.join("tagged"), "trusted.overlay.opaque"),
        None,
        "overlay xattr from the layer kept"
    );

    let a = fs::metadata(dest.join("a"))?;
    for other in ["b", "bin/c"] {
        let m = fs::metadata(dest.join(other))?;
        assert_eq!(
            (m.dev(), m.ino()),
            (a.dev(), a.ino()),
            "{other} is not a hard link of a"
        );
    }
    assert_eq!(a.nlink(), 3);

    assert!(fs::symlink_metadata(dest.join("abs"))?
        .file_type()
        .is_symlink());
    assert_eq!(fs::read_link(dest.join("abs"))?, Path::new("/etc/passwd"));
    assert_eq!(fs::read_link(dest.join("rel"))?, Path::new("../../../etc"));
    assert_eq!(fs::read(dest.join("bin/through-inner-link"))?, b"ok");

    let ro = fs::metadata(dest.join("ro"))?;
    assert_eq!(ro.mode() & 0o7777, 0o555);
    assert_eq!(ro.mtime(), 1_600_000_000);
    assert!(dest.join("ro/inside").exists());
    assert_eq!(fs::metadata(&dest)?.mode() & 0o7777, 0o755);

    let null = fs::symlink_metadata(dest.join("dev/null"))?;
    assert!(null.file_type().is_char_device());
    assert_eq!(null.rdev(), libc::makedev(1, 3));
    assert!(fs::symlink_metadata(dest.join("dev/fifo"))?
        .file_type()
        .is_fifo());
    Ok(())
}

#[test]
fn ownership_is_ours_without_same_owner() -> Res {
    if !is_root() {
        return Ok(());
    }
    let scratch = Scratch::new()?;
    let mut o = opts(WhiteoutMode::Overlay);
    o.allow_devices = true;
    o.same_owner = false;
    layer::unpack(&rich_layer()?[..], &scratch.dest(), &o)?;
    let owned = fs::metadata(scratch.dest().join("home/user/owned"))?;
    assert_eq!((owned.uid(), owned.gid()), (0, 0));
    Ok(())
}

fn whiteout_layer() -> io::Result<Vec<u8>> {
    let mut t = Tar::new();
    t.file(".wh.gone", b"")?
        .dir("opaque")?
        .file("opaque/.wh..wh..opq", b"")?
        .file("opaque/new", b"new")?
        .dir("late")?
        .file("late/kept", b"from this layer")?
        .file("late/.wh..wh..opq", b"")?
        .file("sub/.wh.gonedir", b"")?;
    t.finish()
}

#[test]
fn whiteouts_in_overlay_mode() -> Res {
    if !is_root() {
        return Ok(());
    }
    let scratch = Scratch::new()?;
    let dest = scratch.dest();
    layer::unpack(&whiteout_layer()?[..], &dest, &opts(WhiteoutMode::Overlay))?;
    for w in ["gone", "sub/gonedir"] {
        let m = fs::symlink_metadata(dest.join(w))?;
        assert!(
            m.file_type().is_char_device() && m.rdev() == 0,
            "{w} is not an overlay whiteout"
        );
    }
    assert!(!dest.join(".wh.gone").exists());
    assert_eq!(
        xattr(&dest.join("opaque"), "trusted.overlay.opaque").as_deref(),
        Some(&b"y"[..])
    );
    assert_eq!(
        xattr(&dest.join("late"), "trusted.overlay.opaque").as_deref(),
        Some(&b"y"[..])
    );
    assert!(!dest.join("opaque/.wh..wh..opq").exists());
    assert_eq!(fs::read(dest.join("opaque/new"))?, b"new");
    assert_eq!(fs::read(dest.join("late/kept"))?, b"from this layer");
    Ok(())
}

#[test]
fn whiteouts_in_apply_mode() -> Res {
    if !is_root() {
        return Ok(());
    }
    let scratch = Scratch::new()?;
    let dest = scratch.dest();
    // The parent's tree.
    for d in ["opaque/deep", "late", "sub/gonedir/x"] {
        fs::create_dir_all(dest.join(d))?;
    }
    for f in [
        "gone",
        "opaque/old",
        "opaque/deep/older",
        "late/old",
        "sub/stays",
    ] {
        fs::write(dest.join(f), b"parent")?;
    }
    layer::unpack(&whiteout_layer()?[..], &dest, &opts(WhiteoutMode::Apply))?;
    for absent in [
        "gone",
        "opaque/old",
        "opaque/deep",
        "late/old",
        "sub/gonedir",
        ".wh.gone",
        "opaque/.wh..wh..opq",
    ] {
        assert!(
            fs::symlink_metadata(dest.join(absent)).is_err(),
            "{absent} still there"
        );
    }
    assert_eq!(fs::read(dest.join("opaque/new"))?, b"new");
    assert_eq!(fs::read(dest.join("late/kept"))?, b"from this layer");
    assert_eq!(fs::read(dest.join("sub/stays"))?, b"parent");
    Ok(())
}

#[test]
fn apply_mode_replaces_entries_of_the_parent() -> Res {
    if !is_root() {
        return Ok(());
    }
    let scratch = Scratch::new()?;
    let dest = scratch.dest();
    fs::create_dir_all(dest.join("was-dir/child"))?;
    fs::write(dest.join("file"), b"old")?;
    fs::hard_link(dest.join("file"), dest.join("other-link"))?;
    std::os::unix::fs::symlink("/etc", dest.join("link"))?;
    let mut t = Tar::new();
    t.file("was-dir", b"now a file")?
        .file("file", b"new")?
        .dir("link")?
        .file("link/inside", b"in the new dir, not in /etc")?;
    layer::unpack(&t.finish()?[..], &dest, &opts(WhiteoutMode::Apply))?;
    assert_eq!(fs::read(dest.join("was-dir"))?, b"now a file");
    assert_eq!(fs::read(dest.join("file"))?, b"new");
    assert_eq!(
        fs::read(dest.join("other-link"))?,
        b"old",
        "a hard link of the parent changed"
    );
    assert!(fs::symlink_metadata(dest.join("link"))?.is_dir());
    assert!(!Path::new("/etc/inside").exists());
    Ok(())
}

#[test]
fn compressions_give_the_same_diff_id() -> Res {
    if !is_root() {
        return Ok(());
    }
    let plain = rich_layer()?;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    io::Write::write_all(&mut gz, &plain)?;
    let gz = gz.finish()?;
    let zst = zstd::encode_all(&plain[..], 3)?;
    assert_eq!(Compression::detect(&gz), Compression::Gzip);
    assert_eq!(Compression::detect(&zst), Compression::Zstd);
    assert_eq!(Compression::detect(&plain), Compression::None);

    let (want, size) = layer::diff_id(&plain[..], u64::MAX)?;
    assert_eq!(size, plain.len() as u64);
    let mut o = opts(WhiteoutMode::Overlay);
    o.allow_devices = true;
    for (name, blob) in [("plain", &plain), ("gzip", &gz), ("zstd", &zst)] {
        assert_eq!(
            layer::diff_id(&blob[..], u64::MAX)?,
            (want.clone(), size),
            "{name}"
        );
        let scratch = Scratch::new()?;
        let stats = layer::unpack(&blob[..], &scratch.dest(), &o)?;
        assert_eq!(stats.diff_id, want, "{name}");
        assert_eq!(stats.uncompressed_size, size, "{name}");
        assert_eq!(stats.compressed_size, blob.len() as u64, "{name}");
        assert_eq!(fs::read(scratch.dest().join("a"))?, b"shared", "{name}");
    }
    Ok(())
}
