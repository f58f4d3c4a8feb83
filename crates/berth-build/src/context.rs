//! The build context: the tar a client sends (`POST /build`), kept as a file with its
//! digest, and unpacked only when a step needs its files (with the same checks as an image
//! layer: no path leaves it, no device nodes). The Dockerfile and `.dockerignore` are read
//! from the tar itself, so a build whose steps all come from the cache never unpacks it.

use std::cell::OnceCell;
use std::fs;
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use berth_image::layer::{self, UnpackOptions, WhiteoutMode};
use sha2::{Digest as _, Sha256};

use crate::ignore::Ignore;
use crate::BuildError;

/// Most a context may hold, uncompressed.
pub const MAX_CONTEXT_BYTES: u64 = 64 << 30;

/// A build context; its files are removed when dropped.
#[derive(Debug)]
pub struct Context {
    dir: tempfile::TempDir,
    tar: PathBuf,
    digest: String,
    ignore: Option<Ignore>,
    root: OnceCell<Result<PathBuf, String>>,
}

fn ctx_err(what: impl std::fmt::Display) -> BuildError {
    BuildError::Context(format!("reading the build context: {what}"))
}

/// Hashes what passes through to the file.
struct Tee<W: Write> {
    out: W,
    hash: Sha256,
    bytes: u64,
}

impl<W: Write> Write for Tee<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.out.write(buf)?;
        self.hash.update(&buf[..n]);
        self.bytes += n as u64;
        if self.bytes > MAX_CONTEXT_BYTES {
            return Err(io::Error::other(format!(
                "the context is larger than {MAX_CONTEXT_BYTES} bytes"
            )));
        }
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// A tar entry name as a clean relative path (`./a//b` → `a/b`).
fn entry_name(raw: &Path) -> String {
    raw.to_string_lossy()
        .split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .collect::<Vec<_>>()
        .join("/")
}

impl Context {
    /// Take a context tar (plain or gzip) into a new directory under `parent`.
    pub fn from_tar(reader: impl Read, parent: &Path) -> Result<Context, BuildError> {
        fs::create_dir_all(parent)
            .map_err(|e| BuildError::Context(format!("{}: {e}", parent.display())))?;
        let dir = tempfile::Builder::new()
            .prefix("context-")
            .tempdir_in(parent)
            .map_err(|e| BuildError::Context(format!("{}: {e}", parent.display())))?;
        let tar = dir.path().join("context.tar");
        let file = fs::File::create(&tar).map_err(ctx_err)?;
        let mut tee = Tee {
            out: BufWriter::new(file),
            hash: Sha256::new(),
            bytes: 0,
        };
        let mut reader = io::BufReader::new(reader);
        let gzip = {
            use io::BufRead;
            reader
                .fill_buf()
                .map_err(ctx_err)?
                .starts_with(&[0x1f, 0x8b])
        };
        if gzip {
            io::copy(&mut flate2::read::GzDecoder::new(reader), &mut tee).map_err(ctx_err)?;
        } else {
            io::copy(&mut reader, &mut tee).map_err(ctx_err)?;
        }
        tee.flush().map_err(ctx_err)?;
        let digest = hex::encode(tee.hash.finalize());
        let mut ctx = Context {
            dir,
            tar,
            digest,
            ignore: None,
            root: OnceCell::new(),
        };
        if let Some(text) = ctx.read_entry(".dockerignore")? {
            let text = String::from_utf8_lossy(&text);
            ctx.ignore = Some(
                Ignore::parse(&text)
                    .map_err(|e| BuildError::Context(format!(".dockerignore: {e}")))?,
            );
        }
        Ok(ctx)
    }

    /// The content of regular file `name` in the tar, if it has one (the last entry of that
    /// name wins, as unpacking would leave it). A symlink or directory there is `None`.
    fn read_entry(&self, name: &str) -> Result<Option<Vec<u8>>, BuildError> {
        let f = fs::File::open(&self.tar).map_err(ctx_err)?;
        let mut a = tar::Archive::new(io::BufReader::new(f));
        let mut found = None;
        for e in a.entries().map_err(ctx_err)? {
            let mut e = e.map_err(ctx_err)?;
            let path = e.path().map_err(ctx_err)?;
            if entry_name(&path) != name {
                continue;
            }
            if e.header().entry_type().is_file() {
                let mut buf = Vec::new();
                e.read_to_end(&mut buf).map_err(ctx_err)?;
                found = Some(buf);
            } else {
                found = None;
            }
        }
        Ok(found)
    }

    /// sha256 of the context tar: the same tree sent again has the same digest.
    pub fn digest(&self) -> &str {
        &self.digest
    }

    /// The context's files, unpacked on first use.
    pub fn root(&self) -> Result<PathBuf, BuildError> {
        self.root
            .get_or_init(|| {
                let root = self.dir.path().join("root");
                let f = fs::File::open(&self.tar).map_err(|e| e.to_string())?;
                fs::create_dir(&root).map_err(|e| e.to_string())?;
                layer::unpack(
                    io::BufReader::new(f),
                    &root,
                    &UnpackOptions {
                        whiteouts: WhiteoutMode::Apply,
                        allow_devices: false,
                        max_bytes: MAX_CONTEXT_BYTES,
                        same_owner: false,
                    },
                )
                .map_err(|e| e.to_string())?;
                Ok(root)
            })
            .clone()
            .map_err(ctx_err)
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
        let bytes = self.read_entry(&rel)?.ok_or_else(missing)?;
        String::from_utf8(bytes)
            .map_err(|_| BuildError::Context(format!("{name}: the Dockerfile is not UTF-8 text")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tar_of(files: &[(&str, &[u8])]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (name, data) in files {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_entry_type(tar::EntryType::Regular);
            b.append_data(&mut h, name, *data).unwrap();
        }
        b.into_inner().unwrap()
    }

    #[test]
    fn the_dockerfile_comes_from_the_tar_and_files_only_when_asked() {
        let parent = tempfile::tempdir().unwrap();
        let t = tar_of(&[
            ("./Dockerfile", b"FROM scratch\n"),
            ("sub/Df", b"FROM busybox\n"),
            (".dockerignore", b"*.log\n"),
            ("a.log", b"x"),
        ]);
        let ctx = Context::from_tar(&t[..], parent.path()).unwrap();
        assert_eq!(ctx.dockerfile("Dockerfile").unwrap(), "FROM scratch\n");
        assert_eq!(ctx.dockerfile("./sub/Df").unwrap(), "FROM busybox\n");
        assert!(ctx.dockerfile("nope").is_err());
        assert!(ctx.dockerfile("../Dockerfile").is_err());
        assert!(ctx.ignore().unwrap().excluded("a.log"));
        assert!(
            !ctx.scratch().join("root").exists(),
            "unpacked before it was needed"
        );
        let root = ctx.root().unwrap();
        assert_eq!(fs::read(root.join("a.log")).unwrap(), b"x");
        // Same bytes, same digest; gzip of them too.
        let again = Context::from_tar(&t[..], parent.path()).unwrap();
        assert_eq!(ctx.digest(), again.digest());
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&t).unwrap();
        let z = Context::from_tar(&gz.finish().unwrap()[..], parent.path()).unwrap();
        assert_eq!(z.digest(), ctx.digest());
    }

    #[test]
    fn a_hostile_context_is_refused_when_unpacked() {
        let parent = tempfile::tempdir().unwrap();
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_size(0);
        b.append_link(&mut h, "esc", "/").unwrap();
        let mut h = tar::Header::new_gnu();
        h.set_size(1);
        h.set_mode(0o644);
        b.append_data(&mut h, "esc/evil", &b"x"[..]).unwrap();
        let t = b.into_inner().unwrap();
        let ctx = Context::from_tar(&t[..], parent.path()).unwrap();
        assert!(ctx.root().is_err());
        assert!(!Path::new("/evil").exists());
    }
}
