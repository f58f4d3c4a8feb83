//! A container's filesystem from outside: its changes against the image (`diff`), the whole
//! tree as a tar (`export`), copying in and out (`cp`, resolved inside the rootfs so a
//! symlink never reaches a host path), and `commit` of its writable layer as a new image.

use std::collections::BTreeSet;
use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use berth_image::layer::{self, UnpackOptions, WhiteoutMode};
use berth_image::Reference;
use oci_spec::image::{
    DescriptorBuilder, HistoryBuilder, ImageConfiguration, MediaType, RootFsBuilder,
};

use crate::engine::{CommitOptions, PathStat};
use crate::error::{io_err, Error, Result};
use crate::inner::Inner;
use crate::model::*;
use crate::{bundle, now_rfc3339};

/// A pipe: what a thread writes to the [`PipeWriter`] is read from the returned reader.
pub(crate) fn pipe() -> Result<(fs::File, fs::File)> {
    let mut fds = [0; 2];
    // SAFETY: pipe2 writes two fds into the array it is given.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io_err("pipe")(io::Error::last_os_error()));
    }
    use std::os::unix::io::FromRawFd;
    // SAFETY: both fds were just created by pipe2 and are owned here.
    Ok(unsafe { (fs::File::from_raw_fd(fds[0]), fs::File::from_raw_fd(fds[1])) })
}

/// Go's `os.FileMode` bits for a stat: permissions plus the type bits Docker sends.
fn go_mode(meta: &fs::Metadata) -> u32 {
    let mut m = meta.mode() & 0o777;
    let ft = meta.file_type();
    if ft.is_dir() {
        m |= 1 << 31;
    }
    if ft.is_symlink() {
        m |= 1 << 27;
    }
    if ft.is_block_device() {
        m |= 1 << 26;
    }
    if ft.is_char_device() {
        m |= (1 << 26) | (1 << 21);
    }
    if ft.is_fifo() {
        m |= 1 << 25;
    }
    if ft.is_socket() {
        m |= 1 << 24;
    }
    let mode = meta.mode();
    if mode & 0o4000 != 0 {
        m |= 1 << 23;
    }
    if mode & 0o2000 != 0 {
        m |= 1 << 22;
    }
    if mode & 0o1000 != 0 {
        m |= 1 << 20;
    }
    m
}

impl Inner {
    pub(crate) fn rootfs_of(&self, name: &str) -> Result<(Container, PathBuf)> {
        let c = self.find(name)?.get();
        let root = PathBuf::from(&c.rootfs);
        if !bundle::is_mountpoint(&root) {
            return Err(Error::Conflict(format!(
                "container {}: its root filesystem is not mounted",
                c.id
            )));
        }
        Ok((c, root))
    }

    /// The host path of `path` inside the container, resolved in its root.
    pub(crate) fn resolve(&self, root: &Path, path: &str) -> Result<PathBuf> {
        let f = bundle::open_in_root(root, path, libc::O_PATH).map_err(|e| {
            if e.kind() == io::ErrorKind::NotFound {
                Error::NoSuchContainerPath(path.to_string())
            } else {
                Error::Io {
                    path: root.join(path.trim_start_matches('/')),
                    source: e,
                }
            }
        })?;
        use std::os::unix::io::AsRawFd;
        let p = fs::read_link(format!("/proc/self/fd/{}", f.as_raw_fd()))
            .map_err(io_err(root.join(path.trim_start_matches('/'))))?;
        if !p.starts_with(root) {
            return Err(Error::Invalid(format!(
                "path {path:?} leaves the container's root"
            )));
        }
        Ok(p)
    }

    /// The host path of `path` when it lies on one of the container's bind mounts or volumes
    /// (or is one of its `/etc/hostname`, `hosts`, `resolv.conf`): what the container sees
    /// there is not in its rootfs. Resolved inside the mount's source.
    fn on_mount(&self, c: &Container, path: &str) -> Result<Option<PathBuf>> {
        let p = format!("/{}", path.trim_matches('/'));
        for (dst, src) in [
            ("/etc/hostname", &c.hostname_path),
            ("/etc/hosts", &c.hosts_path),
            ("/etc/resolv.conf", &c.resolv_conf_path),
        ] {
            if p == dst && !src.is_empty() {
                return Ok(Some(PathBuf::from(src)));
            }
        }
        let best = c
            .mounts
            .iter()
            .filter(|m| m.kind != MountKind::Tmpfs && !m.source.is_empty())
            .filter(|m| {
                let d = m.destination.trim_end_matches('/');
                p == d || p.starts_with(&format!("{d}/"))
            })
            .max_by_key(|m| m.destination.len());
        let Some(m) = best else { return Ok(None) };
        let src = PathBuf::from(&m.source);
        if src.is_file() {
            return Ok(Some(src));
        }
        let rest = &p[m.destination.trim_end_matches('/').len()..];
        self.resolve(&src, rest).map(Some)
    }

    pub fn archive_stat(&self, name: &str, path: &str) -> Result<PathStat> {
        let (c, root) = self.rootfs_of(name)?;
        // Stat the last component itself (a symlink stays a symlink), its parent resolved.
        let (parent, base) = split(path);
        let host = match self.on_mount(&c, path)? {
            Some(h) => h,
            None => {
                let dir = self.resolve(&root, parent)?;
                if base.is_empty() {
                    dir
                } else {
                    dir.join(base)
                }
            }
        };
        let meta = fs::symlink_metadata(&host)
            .map_err(|_| Error::NoSuchContainerPath(path.to_string()))?;
        let link_target = if meta.file_type().is_symlink() {
            fs::read_link(&host)
                .map(|p| p.display().to_string())
                .unwrap_or_default()
        } else {
            String::new()
        };
        Ok(PathStat {
            name: if base.is_empty() {
                "/".into()
            } else {
                base.to_string()
            },
            size: meta.len() as i64,
            mode: go_mode(&meta),
            mtime: berth_shim::jsonlog::format_rfc3339(meta.mtime(), meta.mtime_nsec() as u32),
            link_target,
        })
    }

    pub fn archive_get(&self, name: &str, path: &str) -> Result<(PathStat, Box<dyn Read + Send>)> {
        let stat = self.archive_stat(name, path)?;
        let (c, root) = self.rootfs_of(name)?;
        let host = match self.on_mount(&c, path)? {
            Some(h) => h,
            None => self.resolve(&root, path)?,
        };
        let base = if stat.name == "/" {
            ".".to_string()
        } else {
            stat.name.clone()
        };
        let (r, w) = pipe()?;
        std::thread::spawn(move || {
            let mut b = tar::Builder::new(w);
            b.follow_symlinks(false);
            let res = if host.is_dir() {
                b.append_dir_all(&base, &host)
            } else {
                b.append_path_with_name(&host, &base)
            };
            if res.is_ok() {
                let _ = b.finish();
            }
        });
        Ok((stat, Box::new(r)))
    }

    pub fn archive_put(
        &self,
        name: &str,
        path: &str,
        tar: &mut dyn Read,
        no_overwrite_dir_non_dir: bool,
    ) -> Result<()> {
        let (c, root) = self.rootfs_of(name)?;
        if c.spec.read_only && c.state.running() {
            return Err(Error::Conflict(
                "container rootfs is marked read-only".into(),
            ));
        }
        let dir = self.resolve(&root, path)?;
        if !dir.is_dir() {
            return Err(Error::Invalid(format!(
                "extraction point is not a directory: {path}"
            )));
        }
        let _ = no_overwrite_dir_non_dir;
        layer::unpack(
            tar,
            &dir,
            &UnpackOptions {
                whiteouts: WhiteoutMode::Apply,
                allow_devices: false,
                max_bytes: layer::DEFAULT_MAX_BYTES,
                same_owner: true,
            },
        )
        .map_err(|e| Error::Invalid(format!("copy to {path} in {}: {e}", c.id)))?;
        Ok(())
    }

    pub fn export(&self, name: &str) -> Result<Box<dyn Read + Send>> {
        let (c, root) = self.rootfs_of(name)?;
        let (r, w) = pipe()?;
        let skip: BTreeSet<PathBuf> = c
            .mounts
            .iter()
            .map(|m| root.join(m.destination.trim_start_matches('/')))
            .collect();
        std::thread::spawn(move || {
            let mut b = tar::Builder::new(w);
            b.follow_symlinks(false);
            if append_tree(&mut b, &root, &root, &skip).is_ok() {
                let _ = b.finish();
            }
        });
        self.event("container", "export", &c, &[]);
        Ok(Box::new(r))
    }

    /// The overlay upper dir of a container's active snapshot.
    pub(crate) fn upper_dir(&self, id: &str) -> Option<PathBuf> {
        let mounts = self.snapshots.mounts(id).ok()?;
        mounts.iter().find_map(|m| {
            m.options
                .iter()
                .find_map(|o| o.strip_prefix("upperdir=").map(PathBuf::from))
        })
    }

    pub fn changes(&self, name: &str) -> Result<Vec<Change>> {
        let c = self.find(name)?.get();
        let upper = self.upper_dir(&c.id).ok_or_else(|| {
            Error::Conflict(format!(
                "container {}: changes need an overlay snapshot",
                c.id
            ))
        })?;
        let lowers = self.snapshots.lower_dirs(&c.id).unwrap_or_default();
        let mut out = Vec::new();
        walk_changes(&upper, &upper, &lowers, &mut out)?;
        out.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(out)
    }

    pub fn commit(&self, name: &str, opts: CommitOptions) -> Result<String> {
        let ctr = self.find(name)?;
        let c = ctr.get();
        let upper = self.upper_dir(&c.id).ok_or_else(|| {
            Error::Conflict(format!(
                "container {}: commit needs an overlay snapshot",
                c.id
            ))
        })?;
        let paused = opts.pause && c.state.status == Status::Running;
        if paused {
            self.runtime(&["pause", &c.id])?;
        }
        let result = self.commit_layer(&c, &upper, &opts);
        if paused {
            let _ = self.runtime(&["resume", &c.id]);
        }
        result
    }

    /// A container's writable layer as an uncompressed layer blob in the content store
    /// (overlay whiteouts as `.wh.` entries): its digest (also its diff id) and size. The
    /// caller holds an image-store lease until an image references it.
    pub(crate) fn write_layer(&self, upper: &Path) -> Result<(berth_image::Digest, u64)> {
        let content = self.images.content();
        let tmp = content.temp_file().map_err(|e| Error::Image {
            what: "commit".into(),
            source: e.into(),
        })?;
        {
            let f = tmp.reopen().map_err(io_err(tmp.path()))?;
            let mut b = tar::Builder::new(io::BufWriter::new(f));
            b.follow_symlinks(false);
            append_layer(&mut b, upper, upper).map_err(io_err(upper))?;
            b.into_inner()
                .and_then(|mut w| w.flush())
                .map_err(io_err(tmp.path()))?;
        }
        content
            .move_file_in(tmp.path(), None)
            .map_err(|e| Error::Image {
                what: "commit layer".into(),
                source: e.into(),
            })
    }

    fn commit_layer(&self, c: &Container, upper: &Path, opts: &CommitOptions) -> Result<String> {
        let reference = opts
            .reference
            .as_deref()
            .filter(|r| !r.is_empty())
            .map(Reference::parse)
            .transpose()
            .map_err(|e| Error::Invalid(e.to_string()))?;
        let image = self.image_inspect(&c.image_id)?;
        let _lease = self.images.lease().map_err(|e| Error::Image {
            what: "commit".into(),
            source: e.into(),
        })?;
        let (layer_digest, layer_size) = self.write_layer(upper)?;
        let mut config: ImageConfiguration = image.config.clone();
        let mut ic = config.config().clone().unwrap_or_default();
        ic.set_env(Some(c.config.env.clone()));
        ic.set_cmd(Some(c.config.cmd.clone()).filter(|v| !v.is_empty()));
        ic.set_entrypoint(Some(c.config.entrypoint.clone()).filter(|v| !v.is_empty()));
        ic.set_working_dir(Some(c.config.workdir.clone()).filter(|v| !v.is_empty()));
        ic.set_user(Some(c.config.user.clone()).filter(|v| !v.is_empty()));
        ic.set_labels(Some(c.config.labels.clone().into_iter().collect()));
        let ch = berth_image::ImportChanges::parse(&opts.changes)
            .map_err(|e| Error::Invalid(e.to_string()))?;
        if let Some(v) = ch.cmd {
            ic.set_cmd(Some(v));
        }
        if let Some(v) = ch.entrypoint {
            ic.set_entrypoint(Some(v));
        }
        if let Some(v) = ch.env {
            let mut env = ic.env().clone().unwrap_or_default();
            for kv in v {
                let k = kv
                    .split_once('=')
                    .map(|(k, _)| k.to_string())
                    .unwrap_or(kv.clone());
                env.retain(|e| e.split_once('=').map(|(ek, _)| ek) != Some(k.as_str()));
                env.push(kv);
            }
            ic.set_env(Some(env));
        }
        if let Some(v) = ch.working_dir {
            ic.set_working_dir(Some(v));
        }
        if let Some(v) = ch.user {
            ic.set_user(Some(v));
        }
        if let Some(v) = ch.exposed_ports {
            ic.set_exposed_ports(Some(v));
        }
        if let Some(v) = ch.volumes {
            ic.set_volumes(Some(v));
        }
        if let Some(v) = ch.labels {
            let mut l = ic.labels().clone().unwrap_or_default();
            l.extend(v);
            ic.set_labels(Some(l));
        }
        if let Some(v) = ch.stop_signal {
            ic.set_stop_signal(Some(v));
        }
        config.set_config(Some(ic));
        let mut diff_ids = config.rootfs().diff_ids().clone();
        diff_ids.push(layer_digest.to_string());
        config.set_rootfs(
            RootFsBuilder::default()
                .typ("layers")
                .diff_ids(diff_ids)
                .build()
                .map_err(|e| Error::Internal(format!("commit config: {e}")))?,
        );
        let created = now_rfc3339();
        config.set_created(Some(created.clone()));
        if !opts.author.is_empty() {
            config.set_author(Some(opts.author.clone()));
        }
        let mut history = config.history().clone().unwrap_or_default();
        history.push(
            HistoryBuilder::default()
                .created(created)
                .created_by(format!("{} {}", c.path, c.args.join(" ")))
                .comment(opts.comment.clone())
                .build()
                .map_err(|e| Error::Internal(format!("commit history: {e}")))?,
        );
        config.set_history(Some(history));
        let mut layers = image.layers.clone();
        layers.push(
            DescriptorBuilder::default()
                .media_type(MediaType::ImageLayer)
                .digest(layer_digest.to_oci())
                .size(layer_size)
                .build()
                .map_err(|e| Error::Internal(format!("commit manifest: {e}")))?,
        );
        let img_err = |e: berth_image::ImageError| Error::Image {
            what: "commit".into(),
            source: e.into(),
        };
        let config = serde_json::to_value(&config)
            .map_err(|e| Error::Internal(format!("commit config: {e}")))?;
        let (manifest_digest, config_digest) = self
            .images
            .write_image(&config, layers, None)
            .map_err(img_err)?;
        if let Some(r) = &reference {
            self.images.tag(r, &manifest_digest).map_err(img_err)?;
        }
        let id = config_digest.to_string();
        self.event(
            "container",
            "commit",
            c,
            &[("comment", opts.comment.clone())],
        );
        Ok(id)
    }
}

/// `/a/b/c` → (`/a/b`, `c`); `/` → (`/`, ``).
fn split(path: &str) -> (&str, &str) {
    let t = path.trim_end_matches('/');
    match t.rfind('/') {
        Some(0) => ("/", &t[1..]),
        Some(i) => (&t[..i], &t[i + 1..]),
        None if t.is_empty() => ("/", ""),
        None => (".", t),
    }
}

fn append_tree<W: Write>(
    b: &mut tar::Builder<W>,
    root: &Path,
    dir: &Path,
    skip: &BTreeSet<PathBuf>,
) -> io::Result<()> {
    let mut entries: Vec<_> = fs::read_dir(dir)?.flatten().collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let p = e.path();
        let rel = p.strip_prefix(root).unwrap_or(&p);
        let meta = fs::symlink_metadata(&p)?;
        if meta.is_dir() {
            b.append_dir(rel, &p)?;
            // Mounts (proc, volumes) are not the container's filesystem.
            if !skip.contains(&p) && meta.dev() == fs::symlink_metadata(root)?.dev() {
                append_tree(b, root, &p, skip)?;
            }
        } else {
            b.append_path_with_name(&p, rel)?;
        }
    }
    Ok(())
}

/// The upper dir as a layer: a char device 0:0 is a `.wh.NAME` whiteout, an opaque dir gets
/// `.wh..wh..opq`.
fn append_layer<W: Write>(b: &mut tar::Builder<W>, root: &Path, dir: &Path) -> io::Result<()> {
    let mut entries: Vec<_> = fs::read_dir(dir)?.flatten().collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let p = e.path();
        let rel = p.strip_prefix(root).unwrap_or(&p).to_path_buf();
        let meta = fs::symlink_metadata(&p)?;
        if meta.file_type().is_char_device() && meta.rdev() == 0 {
            let name = format!(".wh.{}", e.file_name().to_string_lossy());
            let wh = rel.with_file_name(name);
            let mut h = tar::Header::new_gnu();
            h.set_size(0);
            h.set_mode(0o644);
            h.set_entry_type(tar::EntryType::Regular);
            h.set_mtime(meta.mtime().max(0) as u64);
            b.append_data(&mut h, wh, io::empty())?;
            continue;
        }
        if meta.is_dir() {
            b.append_dir(&rel, &p)?;
            if is_opaque(&p) {
                let mut h = tar::Header::new_gnu();
                h.set_size(0);
                h.set_mode(0o644);
                h.set_entry_type(tar::EntryType::Regular);
                b.append_data(&mut h, rel.join(".wh..wh..opq"), io::empty())?;
            }
            append_layer(b, root, &p)?;
        } else {
            b.append_path_with_name(&p, &rel)?;
        }
    }
    Ok(())
}

fn is_opaque(dir: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let Ok(c) = std::ffi::CString::new(dir.as_os_str().as_bytes()) else {
        return false;
    };
    let mut buf = [0u8; 4];
    for name in [
        &b"trusted.overlay.opaque\0"[..],
        &b"user.overlay.opaque\0"[..],
    ] {
        // SAFETY: c and name are NUL-terminated; buf is a valid buffer of its length.
        let n = unsafe {
            libc::lgetxattr(
                c.as_ptr(),
                name.as_ptr() as *const libc::c_char,
                buf.as_mut_ptr() as *mut libc::c_void,
                buf.len(),
            )
        };
        if n == 1 && buf[0] == b'y' {
            return true;
        }
    }
    false
}

fn walk_changes(root: &Path, dir: &Path, lowers: &[PathBuf], out: &mut Vec<Change>) -> Result<()> {
    let entries = fs::read_dir(dir).map_err(io_err(dir))?;
    for e in entries.flatten() {
        let p = e.path();
        let rel = p.strip_prefix(root).unwrap_or(&p);
        let path = format!("/{}", rel.display());
        let Ok(meta) = fs::symlink_metadata(&p) else {
            continue;
        };
        let in_lower = lowers
            .iter()
            .any(|l| fs::symlink_metadata(l.join(rel)).is_ok());
        let kind = if meta.file_type().is_char_device() && meta.rdev() == 0 {
            ChangeKind::Deleted
        } else if in_lower {
            ChangeKind::Modified
        } else {
            ChangeKind::Added
        };
        out.push(Change { path, kind });
        if meta.is_dir() && kind != ChangeKind::Deleted {
            walk_changes(root, &p, lowers, out)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_paths() {
        assert_eq!(split("/etc/passwd"), ("/etc", "passwd"));
        assert_eq!(split("/etc/"), ("/", "etc"));
        assert_eq!(split("/"), ("/", ""));
        assert_eq!(split("a"), (".", "a"));
    }
}
