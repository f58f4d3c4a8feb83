//! Images and volumes as the engine serves them: berth-image's store with the engine's rules
//! on top (an image a container uses is not deleted, snapshots no image needs are dropped),
//! local volumes under the data root, and the counts of `info` and `system df`.

use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::io::{Read, Write};
use std::path::Path;

use berth_image::images::{HistoryEntry, ImageRecord};
use berth_image::{archive, bootstrap, Digest, ImportChanges, Reference};

use crate::engine::{ImageRemoved, Info};
use crate::error::{io_err, Error, Result};
use crate::inner::{lock, Inner};
use crate::model::*;
use crate::{bundle, now_rfc3339, spec};

fn image_err(what: impl Into<String>) -> impl FnOnce(berth_image::ImageError) -> Error {
    let what = what.into();
    move |e| match e {
        berth_image::ImageError::NotFound(n) => Error::NoSuchImage(n),
        berth_image::ImageError::InUse { .. }
        | berth_image::ImageError::MultipleTags { .. }
        | berth_image::ImageError::HasChildren { .. } => {
            Error::Conflict(format!("conflict: unable to remove {what}: {e}"))
        }
        other => Error::Image {
            what,
            source: other.into(),
        },
    }
}

fn archive_err(what: impl Into<String>) -> impl FnOnce(berth_image::ArchiveError) -> Error {
    let what = what.into();
    move |e| Error::Image {
        what,
        source: e.into(),
    }
}

impl Inner {
    fn images_in_use(&self) -> HashSet<String> {
        lock(&self.ctrs)
            .values()
            .map(|c| lock(&c.rec).image_id.clone())
            .collect()
    }

    pub fn images(&self) -> Result<Vec<ImageRecord>> {
        self.images.list().map_err(image_err("list images"))
    }

    pub fn image_inspect(&self, name: &str) -> Result<ImageRecord> {
        self.images
            .resolve(name)
            .map_err(|_| Error::NoSuchImage(name.to_string()))
    }

    pub fn image_history(&self, name: &str) -> Result<Vec<HistoryEntry>> {
        self.image_inspect(name)?;
        self.images
            .history(name)
            .map_err(image_err(format!("history of {name}")))
    }

    pub fn image_tag(&self, name: &str, repo: &str, tag: &str) -> Result<()> {
        let record = self.image_inspect(name)?;
        let text = if tag.is_empty() {
            repo.to_string()
        } else {
            format!("{repo}:{tag}")
        };
        let r = Reference::parse(&text).map_err(|e| Error::Invalid(e.to_string()))?;
        if r.digest.is_some() {
            return Err(Error::Invalid(format!(
                "refusing to create a tag with a digest reference: {text}"
            )));
        }
        self.images
            .tag(&r, &record.manifest_digest)
            .map_err(image_err(format!("tag {text}")))?;
        self.events.publish(
            "image",
            "tag",
            &record.id.to_string(),
            [("name".to_string(), r.familiar())].into(),
        );
        Ok(())
    }

    pub fn image_remove(&self, name: &str, force: bool) -> Result<ImageRemoved> {
        let record = self.image_inspect(name)?;
        let used = self.images_in_use();
        let removed = self
            .images
            .remove(name, force, &|d: &Digest| used.contains(&d.to_string()))
            .map_err(|e| match e {
                berth_image::ImageError::InUse { .. } => Error::Conflict(format!(
                    "conflict: unable to remove repository reference \"{name}\" (must force) - container is using its referenced image {}",
                    &record.id.hex()[..12]
                )),
                berth_image::ImageError::MultipleTags { .. } => Error::Conflict(format!(
                    "conflict: unable to delete {} (must be forced) - image is referenced in multiple repositories",
                    &record.id.hex()[..12]
                )),
                other => image_err(format!("remove {name}"))(other),
            })?;
        let out = ImageRemoved {
            untagged: removed.untagged.iter().map(|r| r.familiar()).collect(),
            deleted: removed.deleted.iter().map(|d| d.to_string()).collect(),
        };
        for t in &out.untagged {
            self.events.publish(
                "image",
                "untag",
                &record.id.to_string(),
                [("name".to_string(), t.clone())].into(),
            );
        }
        if !out.deleted.is_empty() {
            let _ = self.images.gc(&|_: &Digest| false);
            self.remove_unused_snapshots();
            self.events.publish(
                "image",
                "delete",
                &record.id.to_string(),
                [("name".to_string(), record.id.to_string())].into(),
            );
        }
        Ok(out)
    }

    /// Drops committed layer snapshots no image needs (one a container still uses stays).
    fn remove_unused_snapshots(&self) {
        let Ok(records) = self.images.list() else {
            return;
        };
        let keep: HashSet<String> = records
            .iter()
            .flat_map(|r| r.chain_ids())
            .map(|c| c.to_string())
            .collect();
        if let Ok(snaps) = self.snapshots.list() {
            for s in snaps {
                let key = s.key.to_string();
                if key.starts_with("sha256:") && !keep.contains(&key) {
                    let _ = self.snapshots.remove(&key);
                }
            }
        }
    }

    pub fn image_prune(&self, all: bool) -> Result<Pruned> {
        let used = self.images_in_use();
        let mut out = Pruned::default();
        for r in self.images()? {
            // An intermediate image goes with the last image built on it.
            if used.contains(&r.id.to_string())
                || (!all && !r.repo_tags.is_empty())
                || r.has_children
            {
                continue;
            }
            let removed = match self.images.remove(&r.id.to_string(), true, &|d: &Digest| {
                used.contains(&d.to_string())
            }) {
                Ok(removed) => removed,
                Err(berth_image::ImageError::NotFound(_)) => continue,
                Err(e) => return Err(image_err("prune images")(e)),
            };
            for t in removed.untagged {
                out.deleted.push(format!("untagged: {}", t.familiar()));
            }
            for d in removed.deleted {
                out.deleted.push(format!("deleted: {d}"));
                out.space_reclaimed += r.size;
            }
        }
        let _ = self.images.gc(&|_: &Digest| false);
        self.remove_unused_snapshots();
        Ok(out)
    }

    pub fn image_load(&self, tar: &mut dyn Read) -> Result<Vec<String>> {
        let loaded = archive::load(tar, &self.images, None).map_err(archive_err("load"))?;
        let mut lines = Vec::new();
        for l in loaded {
            if l.tags.is_empty() {
                lines.push(format!("Loaded image ID: {}", l.id));
            }
            for t in &l.tags {
                lines.push(format!("Loaded image: {}", t.familiar()));
            }
            self.events.publish(
                "image",
                "load",
                &l.id.to_string(),
                [("name".to_string(), l.id.to_string())].into(),
            );
        }
        Ok(lines)
    }

    pub fn image_save(&self, names: &[String], out: &mut dyn Write) -> Result<()> {
        for n in names {
            self.image_inspect(n)?;
        }
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        archive::save(&refs, &self.images, out, None).map_err(archive_err("save"))
    }

    pub fn image_import(
        &self,
        tar: &mut dyn Read,
        reference: Option<&str>,
        changes: &[String],
    ) -> Result<String> {
        let r = reference
            .filter(|r| !r.is_empty())
            .map(Reference::parse)
            .transpose()
            .map_err(|e| Error::Invalid(e.to_string()))?;
        let mut ch = ImportChanges::parse(changes).map_err(|e| Error::Invalid(e.to_string()))?;
        // dockerd's history comment for an import from the request body.
        ch.message
            .get_or_insert_with(|| "Imported from -".to_string());
        let imported =
            archive::import(tar, &self.images, r.as_ref(), &ch).map_err(archive_err("import"))?;
        let id = imported.id.to_string();
        self.events.publish(
            "image",
            "import",
            &id,
            [("name".to_string(), id.clone())].into(),
        );
        Ok(id)
    }

    pub fn image_bootstrap(&self, what: &str) -> Result<String> {
        let (kind, suite) = match what.split_once(':') {
            Some((k, s)) => (k, Some(s)),
            None => (what, None),
        };
        let work = self.cfg.data_root.join("tmp");
        let err = |e: bootstrap::Error| Error::Image {
            what: format!("bootstrap {what}"),
            source: e.into(),
        };
        let loaded = match kind {
            "busybox" => {
                if suite.is_some_and(|s| s != "latest") {
                    return Err(Error::Invalid(format!(
                        "busybox comes from the host's busybox-static: no version {:?}",
                        suite.unwrap_or_default()
                    )));
                }
                let r = Reference::parse("busybox:latest")
                    .map_err(|e| Error::Invalid(e.to_string()))?;
                bootstrap::busybox(&self.images, &r, &work, None).map_err(err)?
            }
            "debian" => {
                let suite = suite.unwrap_or("bookworm");
                let r = Reference::parse(&format!("debian:{suite}"))
                    .map_err(|e| Error::Invalid(e.to_string()))?;
                bootstrap::debian(&self.images, &r, suite, &work, None).map_err(err)?
            }
            other => {
                return Err(Error::Invalid(format!(
                    "cannot bootstrap {other:?}: busybox or debian[:SUITE]"
                )))
            }
        };
        Ok(loaded.id.to_string())
    }

    // ---- volumes -----------------------------------------------------------------------

    /// The volume `name` (made if missing) or a new anonymous one; true when made now.
    pub fn ensure_volume(&self, name: Option<&str>, anonymous: bool) -> Result<(Volume, bool)> {
        if let Some(n) = name {
            if let Some(v) = lock(&self.db).get_volume::<Volume>(n)? {
                return Ok((v, false));
            }
        }
        let v = self.volume_create_inner(name, BTreeMap::new(), BTreeMap::new(), anonymous)?;
        Ok((v, true))
    }

    pub fn volume_create_inner(
        &self,
        name: Option<&str>,
        labels: BTreeMap<String, String>,
        options: BTreeMap<String, String>,
        anonymous: bool,
    ) -> Result<Volume> {
        let name = match name.filter(|n| !n.is_empty()) {
            Some(n) => {
                if !spec::valid_volume_name(n) {
                    return Err(Error::Invalid(format!(
                        "create {n}: \"{n}\" includes invalid characters for a local volume name, only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed. If you intended to pass a host directory, use absolute path"
                    )));
                }
                n.to_string()
            }
            None => bundle::random_id().map_err(io_err("/dev/urandom"))?,
        };
        if let Some(v) = lock(&self.db).get_volume::<Volume>(&name)? {
            return Ok(v);
        }
        if let Some(k) = options
            .keys()
            .find(|k| !matches!(k.as_str(), "type" | "device" | "o"))
        {
            return Err(Error::Invalid(format!(
                "create {name}: invalid option key: {k:?}"
            )));
        }
        let dir = self.cfg.data_root.join("volumes").join(&name);
        let data = dir.join("_data");
        fs::create_dir_all(&data).map_err(io_err(&data))?;
        let v = Volume {
            name: name.clone(),
            driver: "local".into(),
            mountpoint: data.display().to_string(),
            created_at: now_rfc3339(),
            labels,
            options,
            anonymous,
        };
        if let Err(e) = lock(&self.db).put_volume(&name, &v) {
            let _ = fs::remove_dir_all(&dir);
            return Err(e);
        }
        self.events.publish(
            "volume",
            "create",
            &name,
            [("driver".to_string(), "local".to_string())].into(),
        );
        Ok(v)
    }

    pub fn volumes(&self) -> Result<Vec<Volume>> {
        let mut v: Vec<Volume> = lock(&self.db)
            .volumes::<Volume>()?
            .into_iter()
            .map(|(_, v)| v)
            .collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(v)
    }

    pub fn volume_inspect(&self, name: &str) -> Result<Volume> {
        lock(&self.db)
            .get_volume(name)?
            .ok_or_else(|| Error::NoSuchVolume(name.to_string()))
    }

    /// Containers (ids) that mount the volume.
    pub fn volume_users(&self, name: &str) -> Vec<(String, bool)> {
        lock(&self.ctrs)
            .values()
            .filter_map(|c| {
                let r = lock(&c.rec);
                r.mounts
                    .iter()
                    .any(|m| m.kind == MountKind::Volume && m.name == name)
                    .then(|| (r.id.clone(), r.state.running()))
            })
            .collect()
    }

    pub fn volume_remove(&self, name: &str, force: bool) -> Result<()> {
        self.volume_inspect(name)?;
        let users = self.volume_users(name);
        if let Some((id, _)) = users.iter().find(|(_, running)| *running || !force) {
            return Err(Error::Conflict(format!(
                "remove {name}: volume is in use - [{id}]"
            )));
        }
        self.volume_remove_unlocked(name)
    }

    pub(crate) fn volume_remove_unlocked(&self, name: &str) -> Result<()> {
        let dir = self.cfg.data_root.join("volumes").join(name);
        lock(&self.db).delete_volume(name)?;
        match fs::remove_dir_all(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(Error::Io {
                    path: dir,
                    source: e,
                })
            }
        }
        self.events.publish(
            "volume",
            "destroy",
            name,
            [("driver".to_string(), "local".to_string())].into(),
        );
        Ok(())
    }

    pub fn volume_prune(&self, all: bool) -> Result<Pruned> {
        let mut out = Pruned::default();
        for v in self.volumes()? {
            if (!all && !v.anonymous) || !self.volume_users(&v.name).is_empty() {
                continue;
            }
            let size = du(Path::new(&v.mountpoint));
            self.volume_remove_unlocked(&v.name)?;
            out.deleted.push(v.name);
            out.space_reclaimed += size;
        }
        Ok(out)
    }

    pub fn volume_usage(&self) -> Result<Vec<VolumeUsage>> {
        Ok(self
            .volumes()?
            .into_iter()
            .map(|v| VolumeUsage {
                size: du(Path::new(&v.mountpoint)),
                ref_count: self.volume_users(&v.name).len(),
                name: v.name,
            })
            .collect())
    }

    // ---- system ------------------------------------------------------------------------

    pub fn info(&self) -> Result<Info> {
        let mut counts = Counts::default();
        for c in lock(&self.ctrs).values() {
            let s = lock(&c.rec).state.status;
            counts.containers += 1;
            match s {
                Status::Running | Status::Restarting => counts.running += 1,
                Status::Paused => counts.paused += 1,
                _ => counts.stopped += 1,
            }
        }
        counts.images = self.images()?.len();
        let uname = nix::sys::utsname::uname().ok();
        let os = fs::read_to_string("/etc/os-release")
            .ok()
            .and_then(|t| {
                t.lines().find_map(|l| {
                    l.strip_prefix("PRETTY_NAME=")
                        .map(|v| v.trim_matches('"').to_string())
                })
            })
            .unwrap_or_else(|| "Linux".into());
        let cgroup_version = match berth_cgroups::detect_mode() {
            Ok(berth_cgroups::CgroupMode::V2) => "2",
            _ => "1",
        };
        Ok(Info {
            counts,
            data_root: self.cfg.data_root.clone(),
            storage_driver: self.snapshots.kind().as_str().to_string(),
            kernel_version: uname
                .as_ref()
                .map(|u| u.release().to_string_lossy().into_owned())
                .unwrap_or_default(),
            operating_system: os,
            os_type: "linux".into(),
            architecture: uname
                .as_ref()
                .map(|u| u.machine().to_string_lossy().into_owned())
                .unwrap_or_default(),
            ncpu: crate::streams::online_cpus() as usize,
            mem_total: crate::streams::host_mem_total(),
            hostname: uname
                .as_ref()
                .map(|u| u.nodename().to_string_lossy().into_owned())
                .unwrap_or_default(),
            cgroup_version: cgroup_version.into(),
            runtime: self.cfg.runtime.clone(),
            id: self.daemon_id(),
        })
    }

    /// A stable id for this data root.
    fn daemon_id(&self) -> String {
        let p = self.cfg.data_root.join("engine-id");
        if let Ok(id) = fs::read_to_string(&p) {
            return id.trim().to_string();
        }
        let id = bundle::random_id().unwrap_or_default();
        let _ = fs::write(&p, &id);
        id
    }

    pub fn container_usage(&self) -> Result<Vec<ContainerUsage>> {
        let ids: Vec<String> = lock(&self.ctrs).keys().cloned().collect();
        Ok(ids
            .into_iter()
            .map(|id| ContainerUsage {
                size_rw: self.snapshots.usage(&id).unwrap_or(0),
                id,
            })
            .collect())
    }
}

/// Bytes under `path` (not following symlinks).
pub(crate) fn du(path: &Path) -> u64 {
    let Ok(meta) = fs::symlink_metadata(path) else {
        return 0;
    };
    if !meta.is_dir() {
        return meta.len();
    }
    fs::read_dir(path)
        .map(|d| d.flatten().map(|e| du(&e.path())).sum())
        .unwrap_or(0)
}
