//! Base images without a registry: `busybox` from the host's busybox-static, `debian` from
//! `debootstrap --variant=minbase`; each rootfs is packed into a tar and imported as a
//! one-layer image.

use std::collections::HashMap;
use std::fs;
use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::archive;
use crate::images::ImageStore;
use crate::reference::Reference;
use crate::{report, ProgressFn};

/// The host's static busybox (Debian package busybox-static).
pub const BUSYBOX: &str = "/usr/bin/busybox";

/// The Debian mirror used when the host's apt sources name none.
pub const DEFAULT_MIRROR: &str = "http://deb.debian.org/debian";

/// The PATH of both base images (Docker's default).
const PATH_ENV: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The mtime of every entry of the busybox tar (2000-01-01T00:00:00Z): same input, same digest.
const FIXED_MTIME: u64 = 946_684_800;

/// How many lines of debootstrap's output an error shows.
const TAIL_LINES: usize = 15;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{BUSYBOX} not found: install the busybox-static package")]
    NoBusybox,
    #[error("{BUSYBOX} is not statically linked: install the busybox-static package")]
    BusyboxNotStatic,
    #[error("debootstrap not found: install the debootstrap package")]
    NoDebootstrap,
    #[error("invalid suite {0:?}")]
    InvalidSuite(String),
    #[error("debootstrap {suite} from {mirror} failed ({status}); its last lines:\n{tail}")]
    Debootstrap {
        suite: String,
        mirror: String,
        status: String,
        tail: String,
    },
    #[error("import {reference}: {source}")]
    Import {
        reference: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

fn io_err(path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> Error {
    let path = path.into();
    move |source| Error::Io { path, source }
}

/// Builds a busybox image from `/usr/bin/busybox` and tags it `reference`; `work` is where the
/// temporary rootfs and tar go. `progress` gets one line per step.
pub fn busybox(
    images: &ImageStore,
    reference: &Reference,
    work: &Path,
    mut progress: ProgressFn<'_>,
) -> Result<archive::LoadedImage> {
    let bin = Path::new(BUSYBOX);
    if !bin.is_file() {
        return Err(Error::NoBusybox);
    }
    if !is_static(bin)? {
        return Err(Error::BusyboxNotStatic);
    }
    let tmp = tempdir_in(work)?;
    let root = tmp.path().join("rootfs");
    report(&mut progress, "building rootfs", BUSYBOX, 0, None);
    busybox_rootfs(bin, &root)?;
    let tar_path = tmp.path().join("rootfs.tar");
    report(
        &mut progress,
        "packing rootfs",
        &reference.familiar(),
        0,
        None,
    );
    pack(&root, &tar_path, true)?;
    report(&mut progress, "importing", &reference.familiar(), 0, None);
    import(images, reference, &tar_path, "sh", progress)
}

/// The busybox rootfs at `root`: /bin/busybox with its applet links, /etc/passwd and
/// /etc/group (root, nobody), /tmp (1777), /root, /home and empty /proc, /sys, /dev.
pub fn busybox_rootfs(bin: &Path, root: &Path) -> Result<()> {
    for (dir, mode) in [
        ("", 0o755),
        ("bin", 0o755),
        ("etc", 0o755),
        ("tmp", 0o1777),
        ("root", 0o700),
        ("home", 0o755),
        ("proc", 0o755),
        ("sys", 0o755),
        ("dev", 0o755),
        ("usr", 0o755),
        ("usr/bin", 0o755),
        ("usr/sbin", 0o755),
        ("sbin", 0o755),
        ("var", 0o755),
    ] {
        let p = root.join(dir);
        fs::create_dir_all(&p).map_err(io_err(&p))?;
        fs::set_permissions(&p, fs::Permissions::from_mode(mode)).map_err(io_err(&p))?;
    }
    let dest = root.join("bin/busybox");
    fs::copy(bin, &dest).map_err(io_err(&dest))?;
    fs::set_permissions(&dest, fs::Permissions::from_mode(0o755)).map_err(io_err(&dest))?;

    let out = Command::new(bin)
        .arg("--list")
        .stderr(Stdio::null())
        .output()
        .map_err(io_err(bin))?;
    for applet in String::from_utf8_lossy(&out.stdout).lines() {
        let applet = applet.trim();
        // `busybox --list` names busybox itself: a link would replace the binary.
        if applet.is_empty() || applet == "busybox" || applet.contains('/') {
            continue;
        }
        let link = root.join("bin").join(applet);
        if !link.exists() {
            symlink("busybox", &link).map_err(io_err(&link))?;
        }
    }
    let files = [
        (
            "etc/passwd",
            "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
        ),
        ("etc/group", "root:x:0:\nnogroup:x:65534:\n"),
    ];
    for (rel, text) in files {
        let p = root.join(rel);
        fs::write(&p, text).map_err(io_err(&p))?;
        fs::set_permissions(&p, fs::Permissions::from_mode(0o644)).map_err(io_err(&p))?;
    }
    Ok(())
}

/// Runs `debootstrap --variant=minbase SUITE` from the host's Debian mirror, imports the result
/// and tags it `reference`. `progress` gets debootstrap's output line by line.
pub fn debian(
    images: &ImageStore,
    reference: &Reference,
    suite: &str,
    work: &Path,
    mut progress: ProgressFn<'_>,
) -> Result<archive::LoadedImage> {
    if suite.is_empty()
        || !suite
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
    {
        return Err(Error::InvalidSuite(suite.to_string()));
    }
    let debootstrap = find_program("debootstrap").ok_or(Error::NoDebootstrap)?;
    let mirror = host_mirror();
    let tmp = tempdir_in(work)?;
    let root = tmp.path().join("rootfs");
    report(
        &mut progress,
        "debootstrap",
        &format!("{suite} from {mirror}"),
        0,
        None,
    );
    let mut child = Command::new(&debootstrap)
        .arg("--variant=minbase")
        .arg(suite)
        .arg(&root)
        .arg(&mirror)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(io_err(&debootstrap))?;
    // debootstrap writes its progress (`I: Retrieving ...`) to stderr; keep both streams for
    // the tail of an error.
    let stdout = child.stdout.take();
    let out_thread = std::thread::spawn(move || {
        let mut lines = Vec::new();
        if let Some(s) = stdout {
            lines.extend(BufReader::new(s).lines().map_while(|l| l.ok()));
        }
        lines
    });
    let mut tail: Vec<String> = Vec::new();
    if let Some(err) = child.stderr.take() {
        for line in BufReader::new(err).lines().map_while(|l| l.ok()) {
            report(&mut progress, "debootstrap", &line, tail.len() as u64, None);
            tail.push(line);
        }
    }
    let status = child.wait().map_err(io_err(&debootstrap))?;
    tail.extend(out_thread.join().unwrap_or_default());
    if !status.success() {
        // debootstrap keeps its own log inside the target.
        if let Ok(log) = fs::read_to_string(root.join("debootstrap/debootstrap.log")) {
            tail.extend(log.lines().map(String::from));
        }
        let start = tail.len().saturating_sub(TAIL_LINES);
        return Err(Error::Debootstrap {
            suite: suite.to_string(),
            mirror,
            status: status.to_string(),
            tail: tail[start..].join("\n"),
        });
    }
    // An image's /dev is a tmpfs at run time: ship it empty, like Docker's debian images.
    let dev = root.join("dev");
    if dev.is_dir() {
        fs::remove_dir_all(&dev).map_err(io_err(&dev))?;
        fs::create_dir(&dev).map_err(io_err(&dev))?;
    }
    for cache in ["var/cache/apt/archives", "var/lib/apt/lists"] {
        clear_dir_files(&root.join(cache))?;
    }
    let tar_path = tmp.path().join("rootfs.tar");
    report(
        &mut progress,
        "packing rootfs",
        &reference.familiar(),
        0,
        None,
    );
    pack(&root, &tar_path, false)?;
    report(&mut progress, "importing", &reference.familiar(), 0, None);
    import(images, reference, &tar_path, "bash", progress)
}

/// Removes the regular files directly inside `dir` (apt's caches); keeps subdirectories.
fn clear_dir_files(dir: &Path) -> Result<()> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Ok(());
    };
    for e in entries.flatten() {
        let p = e.path();
        if e.file_type().map(|t| t.is_file()).unwrap_or(false) {
            fs::remove_file(&p).map_err(io_err(&p))?;
        }
    }
    Ok(())
}

/// The host's Debian mirror: the first `URIs:` (deb822) or `deb` line of the apt sources whose
/// path ends in `/debian`; [`DEFAULT_MIRROR`] when there is none.
pub fn host_mirror() -> String {
    let mut files = vec![PathBuf::from("/etc/apt/sources.list")];
    if let Ok(entries) = fs::read_dir("/etc/apt/sources.list.d") {
        let mut more: Vec<PathBuf> = entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "list" || x == "sources"))
            .collect();
        more.sort();
        files.extend(more);
    }
    for f in files {
        if let Ok(text) = fs::read_to_string(&f) {
            if let Some(m) = mirror_in(&text) {
                return m;
            }
        }
    }
    DEFAULT_MIRROR.to_string()
}

/// The first Debian mirror named in a sources file's text.
fn mirror_in(text: &str) -> Option<String> {
    for line in text.lines() {
        let line = line.trim();
        let uris: Vec<&str> = if let Some(rest) = line.strip_prefix("URIs:") {
            rest.split_whitespace().collect()
        } else if let Some(rest) = line.strip_prefix("deb ") {
            let mut words = rest.split_whitespace().peekable();
            // Skip `[arch=amd64 signed-by=...]` options.
            if words.peek().is_some_and(|w| w.starts_with('[')) {
                for w in words.by_ref() {
                    if w.ends_with(']') {
                        break;
                    }
                }
            }
            words.next().into_iter().collect()
        } else {
            continue;
        };
        for uri in uris {
            let u = uri.trim_end_matches('/');
            if (u.starts_with("http://") || u.starts_with("https://")) && u.ends_with("/debian") {
                return Some(u.to_string());
            }
        }
    }
    None
}

/// Imports the rootfs tar at `tar_path` as a one-layer image with `Cmd [cmd]` and Docker's PATH.
fn import(
    images: &ImageStore,
    reference: &Reference,
    tar_path: &Path,
    cmd: &str,
    progress: ProgressFn<'_>,
) -> Result<archive::LoadedImage> {
    let file = fs::File::open(tar_path).map_err(io_err(tar_path))?;
    let changes = archive::ImportChanges {
        cmd: Some(vec![cmd.to_string()]),
        env: Some(vec![PATH_ENV.to_string()]),
        ..Default::default()
    };
    archive::import_with_progress(file, images, Some(reference), &changes, progress).map_err(|e| {
        Error::Import {
            reference: reference.to_string(),
            source: e.into(),
        }
    })
}

/// Writes a tar of `root` to `dest`: entries sorted by name, hard links kept. With `normalize`,
/// every entry gets uid/gid 0 and a fixed mtime, so the same rootfs gives the same digest.
pub fn pack(root: &Path, dest: &Path, normalize: bool) -> Result<()> {
    let file = fs::File::create(dest).map_err(io_err(dest))?;
    let mut builder = tar::Builder::new(io::BufWriter::new(file));
    builder.follow_symlinks(false);
    let mut links: HashMap<(u64, u64), PathBuf> = HashMap::new();
    append_tree(&mut builder, root, Path::new(""), normalize, &mut links)?;
    let mut w = builder.into_inner().map_err(io_err(dest))?;
    w.flush().map_err(io_err(dest))?;
    Ok(())
}

fn append_tree<W: Write>(
    builder: &mut tar::Builder<W>,
    root: &Path,
    rel: &Path,
    normalize: bool,
    links: &mut HashMap<(u64, u64), PathBuf>,
) -> Result<()> {
    let dir = root.join(rel);
    let mut names: Vec<_> = fs::read_dir(&dir)
        .map_err(io_err(&dir))?
        .map(|e| e.map(|e| e.file_name()))
        .collect::<io::Result<_>>()
        .map_err(io_err(&dir))?;
    names.sort();
    for name in names {
        let rel_path = rel.join(&name);
        let path = root.join(&rel_path);
        let meta = fs::symlink_metadata(&path).map_err(io_err(&path))?;
        let ft = meta.file_type();
        let mut header = tar::Header::new_gnu();
        header.set_mode(meta.mode() & 0o7777);
        if normalize {
            header.set_uid(0);
            header.set_gid(0);
            header.set_mtime(FIXED_MTIME);
        } else {
            header.set_uid(u64::from(meta.uid()));
            header.set_gid(u64::from(meta.gid()));
            header.set_mtime(meta.mtime().max(0) as u64);
        }
        let tar_err = io_err(&path);
        if ft.is_dir() {
            header.set_entry_type(tar::EntryType::Directory);
            header.set_size(0);
            let mut name = rel_path.clone().into_os_string();
            name.push("/");
            builder
                .append_data(&mut header, &name, io::empty())
                .map_err(tar_err)?;
            append_tree(builder, root, &rel_path, normalize, links)?;
        } else if ft.is_symlink() {
            let target = fs::read_link(&path).map_err(io_err(&path))?;
            header.set_entry_type(tar::EntryType::Symlink);
            header.set_size(0);
            builder
                .append_link(&mut header, &rel_path, &target)
                .map_err(tar_err)?;
        } else if ft.is_file() {
            if meta.nlink() > 1 {
                let key = (meta.dev(), meta.ino());
                if let Some(first) = links.get(&key) {
                    header.set_entry_type(tar::EntryType::Link);
                    header.set_size(0);
                    builder
                        .append_link(&mut header, &rel_path, first)
                        .map_err(tar_err)?;
                    continue;
                }
                links.insert(key, rel_path.clone());
            }
            header.set_entry_type(tar::EntryType::Regular);
            header.set_size(meta.len());
            let f = fs::File::open(&path).map_err(io_err(&path))?;
            builder
                .append_data(&mut header, &rel_path, f)
                .map_err(tar_err)?;
        } else {
            use std::os::unix::fs::FileTypeExt;
            let kind = if ft.is_char_device() {
                tar::EntryType::Char
            } else if ft.is_block_device() {
                tar::EntryType::Block
            } else if ft.is_fifo() {
                tar::EntryType::Fifo
            } else {
                continue; // sockets have no tar form
            };
            header.set_entry_type(kind);
            header.set_size(0);
            let rdev = meta.rdev();
            if kind != tar::EntryType::Fifo {
                header
                    .set_device_major(libc::major(rdev))
                    .map_err(io_err(&path))?;
                header
                    .set_device_minor(libc::minor(rdev))
                    .map_err(io_err(&path))?;
            }
            builder
                .append_data(&mut header, &rel_path, io::empty())
                .map_err(tar_err)?;
        }
    }
    Ok(())
}

/// Whether `bin` is a static ELF executable (no PT_INTERP program header).
fn is_static(bin: &Path) -> Result<bool> {
    let data = fs::read(bin).map_err(io_err(bin))?;
    // ELF64 little-endian only (the hosts Berth runs on); anything else: assume dynamic.
    if data.len() < 64 || &data[..4] != b"\x7fELF" || data[4] != 2 {
        return Ok(false);
    }
    let u16_at = |o: usize| u16::from_le_bytes([data[o], data[o + 1]]) as usize;
    let u64_at = |o: usize| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&data[o..o + 8]);
        u64::from_le_bytes(b) as usize
    };
    let phoff = u64_at(32);
    let phentsize = u16_at(54);
    let phnum = u16_at(56);
    for i in 0..phnum {
        let o = phoff + i * phentsize;
        if o + 4 > data.len() {
            return Ok(false);
        }
        let typ = u32::from_le_bytes([data[o], data[o + 1], data[o + 2], data[o + 3]]);
        if typ == 3 {
            return Ok(false); // PT_INTERP
        }
    }
    Ok(true)
}

fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/bin"].map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

fn tempdir_in(work: &Path) -> Result<tempfile::TempDir> {
    fs::create_dir_all(work).map_err(io_err(work))?;
    tempfile::Builder::new()
        .prefix("bootstrap-")
        .tempdir_in(work)
        .map_err(io_err(work))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mirrors_from_sources() {
        let deb822 = "Types: deb\nURIs: http://mirror.example/debian/\nSuites: bookworm\n\n\
            Types: deb\nURIs: http://mirror.example/debian-security\n";
        assert_eq!(
            mirror_in(deb822).as_deref(),
            Some("http://mirror.example/debian")
        );
        let list =
            "# comment\ndeb [arch=amd64 signed-by=/k.gpg] https://m.example/debian bookworm main\n";
        assert_eq!(mirror_in(list).as_deref(), Some("https://m.example/debian"));
        assert_eq!(
            mirror_in("deb https://packages.example/apt cloud main\n"),
            None
        );
    }

    #[test]
    fn busybox_rootfs_and_deterministic_tar() {
        let bin = Path::new(BUSYBOX);
        if !bin.is_file() {
            eprintln!("skipping: {BUSYBOX} missing (busybox-static)");
            return;
        }
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("r");
        busybox_rootfs(bin, &root).unwrap();
        assert!(fs::symlink_metadata(root.join("bin/busybox"))
            .unwrap()
            .is_file());
        assert_eq!(
            fs::read_link(root.join("bin/sh")).unwrap(),
            Path::new("busybox")
        );
        let tmp_mode = fs::metadata(root.join("tmp")).unwrap().permissions().mode();
        assert_eq!(tmp_mode & 0o7777, 0o1777);
        pack(&root, &tmp.path().join("a.tar"), true).unwrap();
        pack(&root, &tmp.path().join("b.tar"), true).unwrap();
        let a = fs::read(tmp.path().join("a.tar")).unwrap();
        assert_eq!(a, fs::read(tmp.path().join("b.tar")).unwrap());
        let mut ar = tar::Archive::new(&a[..]);
        let names: Vec<String> = ar
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
            .collect();
        assert!(names.contains(&"bin/busybox".to_string()));
        assert!(names.contains(&"tmp/".to_string()));
        assert!(is_static(bin).unwrap());
    }
}
