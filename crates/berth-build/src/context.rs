//! The build context: the tar a client sends (`POST /build`), unpacked into a private
//! directory with the same checks as an image layer (no path leaves it, no device nodes),
//! and its `.dockerignore`.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use berth_image::layer::{self, UnpackOptions, WhiteoutMode};

use crate::ignore::Ignore;
use crate::BuildError;

/// Most a context may hold, uncompressed.
pub const MAX_CONTEXT_BYTES: u64 = 64 << 30;

/// An unpacked build context; removed when dropped.
#[derive(Debug)]
pub struct Context {
    dir: tempfile::TempDir,
    ignore: Option<Ignore>,
}

impl Context {
    /// Unpack a context tar (plain, gzip or zstd) into a new directory under `parent`.
    pub fn from_tar(reader: impl Read, parent: &Path) -> Result<Context, BuildError> {
        fs::create_dir_all(parent)
            .map_err(|e| BuildError::Context(format!("{}: {e}", parent.display())))?;
        let dir = tempfile::Builder::new()
            .prefix("context-")
            .tempdir_in(parent)
            .map_err(|e| BuildError::Context(format!("{}: {e}", parent.display())))?;
        let root = dir.path().join("root");
        fs::create_dir(&root).map_err(|e| BuildError::Context(format!("{e}")))?;
        layer::unpack(
            reader,
            &root,
            &UnpackOptions {
                whiteouts: WhiteoutMode::Apply,
                allow_devices: false,
                max_bytes: MAX_CONTEXT_BYTES,
                same_owner: false,
            },
        )
        .map_err(|e| BuildError::Context(format!("reading the build context: {e}")))?;
        Self::finish(dir)
    }

    /// A context from a directory on this host (copied, so the build sees a snapshot).
    pub fn from_dir(src: &Path, parent: &Path) -> Result<Context, BuildError> {
        fs::create_dir_all(parent)
            .map_err(|e| BuildError::Context(format!("{}: {e}", parent.display())))?;
        let dir = tempfile::Builder::new()
            .prefix("context-")
            .tempdir_in(parent)
            .map_err(|e| BuildError::Context(format!("{}: {e}", parent.display())))?;
        let st = std::process::Command::new("cp")
            .arg("-a")
            .arg(src)
            .arg(dir.path().join("root"))
            .status()
            .map_err(|e| BuildError::Context(format!("cp: {e}")))?;
        if !st.success() {
            return Err(BuildError::Context(format!(
                "copying {} failed",
                src.display()
            )));
        }
        Self::finish(dir)
    }

    fn finish(dir: tempfile::TempDir) -> Result<Context, BuildError> {
        let ig = dir.path().join("root/.dockerignore");
        let ignore = match fs::read_to_string(&ig) {
            Ok(text) => Some(
                Ignore::parse(&text)
                    .map_err(|e| BuildError::Context(format!(".dockerignore: {e}")))?,
            ),
            Err(_) => None,
        };
        Ok(Context { dir, ignore })
    }

    /// The context's files.
    pub fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    /// A directory for the build's scratch files (the tars it sends to containers).
    pub fn scratch(&self) -> &Path {
        self.dir.path()
    }

    /// The `.dockerignore` patterns, if the context has that file.
    pub fn ignore(&self) -> Option<&Ignore> {
        self.ignore.as_ref()
    }

    /// The Dockerfile's text (`name` relative to the context, `Dockerfile` by default).
    pub fn dockerfile(&self, name: &str) -> Result<String, BuildError> {
        let missing = || BuildError::Context(format!("Cannot locate specified Dockerfile: {name}"));
        let rel = crate::copy::clean_rel(name).map_err(|_| missing())?;
        let mut p = self.root();
        for c in rel.split('/') {
            p.push(c);
            let m = fs::symlink_metadata(&p).map_err(|_| missing())?;
            if m.file_type().is_symlink() {
                return Err(missing());
            }
        }
        let bytes = fs::read(&p).map_err(|_| missing())?;
        String::from_utf8(bytes)
            .map_err(|_| BuildError::Context(format!("{name}: the Dockerfile is not UTF-8 text")))
    }
}
