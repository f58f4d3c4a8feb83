//! Builds: berth-build's driver over this engine. Each filesystem step runs in a real
//! container created from the step's parent image (the image's env, user and workdir, the
//! build's network); its writable layer becomes the step's layer, and the container is
//! removed whether the step worked or not. The step cache lives in the database.

use std::io::Read;
use std::path::PathBuf;
use std::sync::Arc;

use berth_build::{Backend, Context, RunSpec};
pub use berth_build::{BuildError, BuildOptions, Message};
use berth_image::snapshot::Kind;
use berth_image::{Digest, ImageStore};
use oci_spec::image::{Descriptor, DescriptorBuilder, MediaType};

use crate::engine::Engine;
use crate::error::Error;
use crate::inner::{lock, Inner};
use crate::model::*;

struct EngineBackend<'a> {
    inner: &'a Arc<Inner>,
}

fn backend_err(e: Error) -> BuildError {
    BuildError::Backend(e.to_string())
}

impl Backend for EngineBackend<'_> {
    fn images(&self) -> &ImageStore {
        &self.inner.images
    }

    fn create(&self, image: &Digest, run: &RunSpec) -> Result<String, BuildError> {
        let spec = ContainerSpec {
            image: image.to_string(),
            cmd: Some(run.argv.clone()),
            entrypoint: Some(Vec::new()),
            env: run.env.clone(),
            attach_stdout: true,
            attach_stderr: true,
            network_mode: run.network.clone().unwrap_or_default(),
            labels: [("berth.build".to_string(), "step".to_string())].into(),
            ..ContainerSpec::default()
        };
        let (id, _warnings) = self.inner.create(spec).map_err(backend_err)?;
        Ok(id)
    }

    fn resolve(&self, ctr: &str, path: &str) -> Result<Option<PathBuf>, BuildError> {
        let (_, root) = self.inner.rootfs_of(ctr).map_err(backend_err)?;
        match self.inner.resolve(&root, path) {
            Ok(p) => Ok(Some(p)),
            Err(Error::NoSuchContainerPath(_)) => Ok(None),
            // A path through a file (`/etc/passwd/x`) does not exist either.
            Err(Error::Io { source, .. }) if source.raw_os_error() == Some(libc::ENOTDIR) => {
                Ok(None)
            }
            Err(e) => Err(backend_err(e)),
        }
    }

    fn put(&self, ctr: &str, dir: &str, tar: &mut dyn Read) -> Result<(), BuildError> {
        self.inner
            .archive_put(ctr, dir, tar, false)
            .map_err(backend_err)
    }

    fn run(&self, ctr: &str, out: &mut dyn FnMut(&[u8])) -> Result<i64, BuildError> {
        let stream = self
            .inner
            .attach(
                ctr,
                AttachOptions {
                    stdin: false,
                    stdout: true,
                    stderr: true,
                    logs: false,
                    stream: true,
                },
            )
            .map_err(backend_err)?;
        let waiter = self
            .inner
            .wait(ctr, WaitCondition::NextExit)
            .map_err(backend_err)?;
        self.inner.start(ctr).map_err(backend_err)?;
        let mut conn = stream.conn;
        loop {
            match berth_shim::frame::read_frame(&mut conn) {
                Ok(Some((_, data))) => out(&data),
                Ok(None) => break,
                Err(e) => {
                    return Err(BuildError::Backend(format!(
                        "reading the output of {ctr}: {e}"
                    )))
                }
            }
        }
        let r = waiter.wait();
        if let Some(e) = r.error {
            return Err(BuildError::Backend(format!("container {ctr}: {e}")));
        }
        Ok(r.exit_code.into())
    }

    fn diff(&self, ctr: &str) -> Result<(Descriptor, Digest), BuildError> {
        let c = self.inner.find(ctr).map_err(backend_err)?.get();
        let mounts = self
            .inner
            .snapshots
            .mounts(&c.id)
            .map_err(|e| BuildError::Backend(format!("snapshot of {ctr}: {e}")))?;
        // Over a parent: the overlay upper dir; over nothing (`FROM scratch`): the whole tree.
        let upper = mounts
            .iter()
            .find_map(|m| {
                m.options
                    .iter()
                    .find_map(|o| o.strip_prefix("upperdir=").map(PathBuf::from))
            })
            .or_else(|| {
                mounts
                    .iter()
                    .find(|m| m.typ == "bind")
                    .map(|m| PathBuf::from(&m.source))
            })
            .ok_or_else(|| BuildError::Backend(format!("container {ctr} has no writable layer")))?;
        let (digest, size) = self.inner.write_layer(&upper).map_err(backend_err)?;
        let desc = DescriptorBuilder::default()
            .media_type(MediaType::ImageLayer)
            .digest(digest.to_oci())
            .size(size)
            .build()
            .map_err(|e| BuildError::Backend(format!("layer descriptor: {e}")))?;
        Ok((desc, digest))
    }

    fn remove(&self, ctr: &str) {
        if let Err(e) = self.inner.remove(ctr, true, true) {
            eprintln!("berthd: build: removing container {ctr}: {e}");
        }
    }

    fn cache_get(&self, key: &str) -> Option<Digest> {
        let id = lock(&self.inner.db).build_cache_get(key).ok()??;
        id.parse().ok()
    }

    fn cache_put(&self, key: &str, image: &Digest) {
        let _ = lock(&self.inner.db).build_cache_put(key, image.as_str());
    }

    fn memo_get(&self, key: &str) -> Option<String> {
        lock(&self.inner.db)
            .build_cache_get(&format!("memo:{key}"))
            .ok()?
    }

    fn memo_put(&self, key: &str, value: &str) {
        let _ = lock(&self.inner.db).build_cache_put(&format!("memo:{key}"), value);
    }
}

impl Engine {
    /// Build an image from a context tar (as `POST /build` receives it). Progress goes to
    /// `out` as it happens; the error of a failed build names the Dockerfile line, and no
    /// container of the build is left behind.
    pub fn build(
        &self,
        context: &mut dyn Read,
        opts: &BuildOptions,
        out: &mut dyn FnMut(Message),
    ) -> Result<Digest, BuildError> {
        let inner = &self.inner;
        if inner.snapshots.kind() != Kind::Overlay {
            return Err(BuildError::Backend(
                "builds need the overlay snapshotter (a step's layer is its overlay upper dir)"
                    .into(),
            ));
        }
        let ctx = Context::from_tar(context, &inner.cfg.data_root.join("build"))?;
        // Blobs of the steps stay until their images are recorded: gc waits for the build.
        let _lease = inner
            .images
            .lease()
            .map_err(|e| BuildError::Backend(format!("image store: {e}")))?;
        let backend = EngineBackend { inner };
        let id = berth_build::build(&backend, &ctx, opts, out)?;
        for t in &opts.tags {
            self.inner.events.publish(
                "image",
                "tag",
                id.as_str(),
                [("name".to_string(), t.clone())].into(),
            );
        }
        Ok(id)
    }

    /// Forget the build cache (`docker builder prune`); returns how many steps it held. The
    /// intermediate images stay until the images built on them are removed.
    pub fn build_prune(&self) -> crate::Result<usize> {
        Ok(lock(&self.inner.db).build_cache_clear()?.len())
    }
}
