//! Content store: sha256 digests and blobs stored by digest, written through a temp file and
//! renamed into place, verified on write and on read.
//!
//! Layout under the root: `blobs/sha256/<hex>` for content, `ingest/` for temp files of writes
//! in progress (same filesystem, so the final rename is atomic). Concurrent writers of the same
//! blob are safe: each writes its own temp file and the rename over an identical file is a no-op.

use std::fmt;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::{Duration, SystemTime};

use sha2::{Digest as _, Sha256};

/// Size of the buffer used when streaming content through the hasher.
const COPY_BUF: usize = 256 * 1024;

/// Errors of the content store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("invalid digest {value:?}: {reason}")]
    InvalidDigest { value: String, reason: &'static str },
    #[error("blob {0} not found")]
    NotFound(Digest),
    #[error("content does not match its digest: expected {expected}, got {actual}")]
    Mismatch { expected: Digest, actual: Digest },
    #[error("blob {digest} is corrupt: its content hashes to {actual}")]
    Corrupt { digest: Digest, actual: Digest },
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> StoreError + 'a {
    move |source| StoreError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// A validated sha256 content digest, `sha256:<64 lowercase hex>`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest(String);

impl Digest {
    const PREFIX: &'static str = "sha256:";

    /// Digest of a byte slice.
    pub fn of_bytes(data: &[u8]) -> Digest {
        Digest::from_hasher(Sha256::new_with_prefix(data))
    }

    /// Digest from a finished hasher.
    pub(crate) fn from_hasher(hasher: Sha256) -> Digest {
        Digest(format!(
            "{}{}",
            Self::PREFIX,
            hex::encode(hasher.finalize())
        ))
    }

    /// Digest from its 64 hex characters (no algorithm prefix).
    pub fn from_hex(hex: &str) -> Result<Digest> {
        Digest::from_str(&format!("{}{hex}", Self::PREFIX))
    }

    /// The 64 lowercase hex characters.
    pub fn hex(&self) -> &str {
        &self.0[Self::PREFIX.len()..]
    }

    /// The full form, `sha256:<hex>`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The short image id docker prints: the first 12 hex characters.
    pub fn short(&self) -> &str {
        &self.hex()[..12]
    }

    /// The same digest as an `oci_spec` digest, for descriptors.
    pub fn to_oci(&self) -> oci_spec::image::Digest {
        // Invariant, not input: every validated `sha256:<64 hex>` is a valid OCI digest.
        oci_spec::image::Digest::from_str(&self.0)
            .expect("a validated sha256 digest is a valid oci digest")
    }

    /// Convert an `oci_spec` digest; only sha256 is supported.
    pub fn from_oci(d: &oci_spec::image::Digest) -> Result<Digest> {
        Digest::from_str(d.as_ref())
    }
}

impl FromStr for Digest {
    type Err = StoreError;

    fn from_str(s: &str) -> Result<Digest> {
        let bad = |reason| StoreError::InvalidDigest {
            value: s.to_string(),
            reason,
        };
        let hex = match s.split_once(':') {
            Some(("sha256", hex)) => hex,
            Some((_, _)) => return Err(bad("only sha256 digests are supported")),
            None => return Err(bad("expected sha256:<hex>")),
        };
        if hex.len() != 64 {
            return Err(bad("expected 64 hex characters"));
        }
        if !hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(bad("expected lowercase hex characters"));
        }
        Ok(Digest(s.to_string()))
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({})", self.0)
    }
}

impl serde::Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for Digest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Digest::from_str(&s).map_err(serde::de::Error::custom)
    }
}

/// A writer that hashes everything written through it.
pub(crate) struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
    written: u64,
}

impl<W: Write> HashingWriter<W> {
    pub(crate) fn new(inner: W) -> Self {
        HashingWriter {
            inner,
            hasher: Sha256::new(),
            written: 0,
        }
    }

    pub(crate) fn finish(self) -> (W, Digest, u64) {
        (self.inner, Digest::from_hasher(self.hasher), self.written)
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Hash a stream to its end: the digest and the number of bytes.
pub fn digest_reader(mut r: impl Read) -> io::Result<(Digest, u64)> {
    let mut w = HashingWriter::new(io::sink());
    io::copy(&mut r, &mut w)?;
    let (_, d, n) = w.finish();
    Ok((d, n))
}

/// A reader over a stored blob that verifies the content against the blob's digest.
///
/// The check happens when the end of the blob is reached: the read that hits EOF returns an
/// error if the content does not hash to its name. A caller that stops early must call
/// [`BlobReader::finish`] to drain and verify the rest.
pub struct BlobReader {
    file: File,
    digest: Digest,
    hasher: Option<Sha256>,
    failed: Option<Digest>,
    size: u64,
}

impl BlobReader {
    /// The digest this blob is expected to have.
    pub fn digest(&self) -> &Digest {
        &self.digest
    }

    /// The size of the blob on disk.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Read the rest of the blob and verify it.
    pub fn finish(mut self) -> Result<()> {
        let digest = self.digest.clone();
        match io::copy(&mut self, &mut io::sink()) {
            Ok(_) => Ok(()),
            Err(e) => match self.failed.take() {
                Some(actual) => Err(StoreError::Corrupt { digest, actual }),
                None => Err(StoreError::Io {
                    op: "read blob",
                    path: PathBuf::from(digest.as_str()),
                    source: e,
                }),
            },
        }
    }

    fn corrupt_error(&self, actual: &Digest) -> io::Error {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "blob {} is corrupt: its content hashes to {actual}",
                self.digest
            ),
        )
    }
}

impl Read for BlobReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if let Some(actual) = &self.failed {
            return Err(self.corrupt_error(actual));
        }
        let n = self.file.read(buf)?;
        if let Some(h) = self.hasher.as_mut() {
            if n > 0 {
                h.update(&buf[..n]);
            } else if !buf.is_empty() {
                if let Some(h) = self.hasher.take() {
                    let actual = Digest::from_hasher(h);
                    if actual != self.digest {
                        let err = self.corrupt_error(&actual);
                        self.failed = Some(actual);
                        return Err(err);
                    }
                }
            }
        }
        Ok(n)
    }
}

/// Blobs by digest under a root directory.
#[derive(Debug, Clone)]
pub struct ContentStore {
    root: PathBuf,
    blobs: PathBuf,
    ingest: PathBuf,
}

impl ContentStore {
    /// Open (creating if needed) a content store rooted at `root`.
    pub fn open(root: impl AsRef<Path>) -> Result<ContentStore> {
        let root = root.as_ref().to_path_buf();
        let blobs = root.join("blobs").join("sha256");
        let ingest = root.join("ingest");
        for dir in [&blobs, &ingest] {
            fs::create_dir_all(dir).map_err(io_err("create directory", dir))?;
        }
        Ok(ContentStore {
            root,
            blobs,
            ingest,
        })
    }

    /// The store's root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The directory for temp files, on the same filesystem as the blobs.
    pub fn ingest_dir(&self) -> &Path {
        &self.ingest
    }

    /// Where a blob lives (whether or not it exists).
    pub fn path(&self, digest: &Digest) -> PathBuf {
        self.blobs.join(digest.hex())
    }

    /// Whether a blob is present.
    pub fn exists(&self, digest: &Digest) -> bool {
        self.path(digest).is_file()
    }

    /// Size of a stored blob.
    pub fn size(&self, digest: &Digest) -> Result<u64> {
        let path = self.path(digest);
        match fs::metadata(&path) {
            Ok(m) => Ok(m.len()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                Err(StoreError::NotFound(digest.clone()))
            }
            Err(e) => Err(io_err("stat blob", &path)(e)),
        }
    }

    /// Store a byte slice; returns its digest.
    pub fn put_bytes(&self, data: &[u8]) -> Result<Digest> {
        let digest = Digest::of_bytes(data);
        if self.exists(&digest) {
            return Ok(digest);
        }
        self.put_reader(data, Some(&digest)).map(|(d, _)| d)
    }

    /// Stream content into the store through sha256 and a temp file, verify it against
    /// `expected` if given, then rename it into place. Returns the digest and the size.
    ///
    /// On a mismatch the temp file is removed and nothing is stored.
    pub fn put_reader(&self, mut r: impl Read, expected: Option<&Digest>) -> Result<(Digest, u64)> {
        if let Some(expected) = expected.filter(|d| self.exists(d)) {
            // Already stored: verify the input without writing it again.
            let (digest, size) = digest_reader(&mut r).map_err(|e| StoreError::Io {
                op: "read content for",
                path: PathBuf::from(expected.as_str()),
                source: e,
            })?;
            if digest != *expected {
                return Err(StoreError::Mismatch {
                    expected: expected.clone(),
                    actual: digest,
                });
            }
            return Ok((digest, size));
        }
        let tmp = self.temp_file()?;
        let tmp_path = tmp.path().to_path_buf();
        let mut w = HashingWriter::new(tmp);
        let mut buf = vec![0u8; COPY_BUF];
        loop {
            let n = match r.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    return Err(StoreError::Io {
                        op: "read content for",
                        path: expected
                            .map(|d| PathBuf::from(d.as_str()))
                            .unwrap_or_else(|| tmp_path.clone()),
                        source: e,
                    })
                }
            };
            w.write_all(&buf[..n])
                .map_err(io_err("write temp file", &tmp_path))?;
        }
        let (tmp, digest, size) = w.finish();
        if let Some(expected) = expected {
            if *expected != digest {
                // Dropping `tmp` removes the temp file.
                drop(tmp);
                return Err(StoreError::Mismatch {
                    expected: expected.clone(),
                    actual: digest,
                });
            }
        }
        self.commit(tmp, &digest)?;
        Ok((digest, size))
    }

    /// A new uniquely named temp file in the ingest directory, removed when dropped.
    pub fn temp_file(&self) -> Result<tempfile::NamedTempFile> {
        tempfile::Builder::new()
            .prefix("ingest-")
            .tempfile_in(&self.ingest)
            .map_err(io_err("create temp file in", &self.ingest))
    }

    /// Move a temp file whose content the caller has hashed to `digest` into place: fsync,
    /// make it read-only, rename, fsync the directory.
    pub(crate) fn commit(&self, tmp: tempfile::NamedTempFile, digest: &Digest) -> Result<()> {
        let tmp_path = tmp.path().to_path_buf();
        tmp.as_file()
            .sync_all()
            .map_err(io_err("sync temp file", &tmp_path))?;
        tmp.as_file()
            .set_permissions(fs::Permissions::from_mode(0o444))
            .map_err(io_err("chmod temp file", &tmp_path))?;
        let dest = self.path(digest);
        tmp.persist(&dest).map_err(|e| StoreError::Io {
            op: "rename blob into place",
            path: dest.clone(),
            source: e.error,
        })?;
        sync_dir(&self.blobs)
    }

    /// Move a file (it is gone afterwards) on the store's filesystem into place as a blob, after
    /// hashing and verifying it against `expected`.
    /// Falls back to copying when the file is elsewhere.
    pub fn move_file_in(&self, path: &Path, expected: Option<&Digest>) -> Result<(Digest, u64)> {
        let file = File::open(path).map_err(io_err("open", path))?;
        let (digest, size) = digest_reader(&file).map_err(io_err("read", path))?;
        if let Some(expected) = expected {
            if *expected != digest {
                return Err(StoreError::Mismatch {
                    expected: expected.clone(),
                    actual: digest,
                });
            }
        }
        drop(file);
        self.adopt_file(path, &digest)?;
        Ok((digest, size))
    }

    /// Move a file the caller has already hashed to `digest` into place. The file is renamed
    /// when it is on the same filesystem, copied (and verified) otherwise.
    pub(crate) fn adopt_file(&self, path: &Path, digest: &Digest) -> Result<()> {
        if self.exists(digest) {
            return Ok(());
        }
        let file = File::open(path).map_err(io_err("open", path))?;
        file.sync_all().map_err(io_err("sync", path))?;
        file.set_permissions(fs::Permissions::from_mode(0o444))
            .map_err(io_err("chmod", path))?;
        let dest = self.path(digest);
        match fs::rename(path, &dest) {
            Ok(()) => sync_dir(&self.blobs),
            Err(e) if e.raw_os_error() == Some(libc::EXDEV) => {
                self.put_reader(file, Some(digest)).map(|_| ())
            }
            Err(e) => Err(io_err("rename blob into place", &dest)(e)),
        }
    }

    /// Open a blob for reading; the content is verified when the end is reached.
    pub fn open_blob(&self, digest: &Digest) -> Result<BlobReader> {
        let path = self.path(digest);
        let file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(StoreError::NotFound(digest.clone()))
            }
            Err(e) => return Err(io_err("open blob", &path)(e)),
        };
        let size = file.metadata().map_err(io_err("stat blob", &path))?.len();
        Ok(BlobReader {
            file,
            digest: digest.clone(),
            hasher: Some(Sha256::new()),
            failed: None,
            size,
        })
    }

    /// Read a whole blob, verified.
    pub fn read_blob(&self, digest: &Digest) -> Result<Vec<u8>> {
        let mut r = self.open_blob(digest)?;
        let mut data = Vec::with_capacity(usize::try_from(r.size()).unwrap_or(0));
        if let Err(e) = r.read_to_end(&mut data) {
            return Err(match r.failed.take() {
                Some(actual) => StoreError::Corrupt {
                    digest: digest.clone(),
                    actual,
                },
                None => io_err("read blob", &self.path(digest))(e),
            });
        }
        Ok(data)
    }

    /// Remove a blob; returns whether it existed.
    pub fn delete(&self, digest: &Digest) -> Result<bool> {
        let path = self.path(digest);
        match fs::remove_file(&path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(io_err("remove blob", &path)(e)),
        }
    }

    /// All blobs present, sorted. Files whose names are not digests are ignored.
    pub fn list(&self) -> Result<Vec<Digest>> {
        let rd = fs::read_dir(&self.blobs).map_err(io_err("read directory", &self.blobs))?;
        let mut out = Vec::new();
        for entry in rd {
            let entry = entry.map_err(io_err("read directory", &self.blobs))?;
            if let Some(name) = entry.file_name().to_str() {
                if let Ok(d) = Digest::from_hex(name) {
                    out.push(d);
                }
            }
        }
        out.sort();
        Ok(out)
    }

    /// Remove temp files in `ingest/` older than `age` (left behind by crashed writers).
    /// Returns how many were removed.
    pub fn clean_ingest(&self, age: Duration) -> Result<usize> {
        let rd = fs::read_dir(&self.ingest).map_err(io_err("read directory", &self.ingest))?;
        let now = SystemTime::now();
        let mut removed = 0;
        for entry in rd {
            let entry = entry.map_err(io_err("read directory", &self.ingest))?;
            let Ok(meta) = entry.metadata() else { continue };
            let old = meta
                .modified()
                .ok()
                .and_then(|m| now.duration_since(m).ok())
                .is_some_and(|d| d >= age);
            if !old {
                continue;
            }
            let path = entry.path();
            let res = if meta.is_dir() {
                fs::remove_dir_all(&path)
            } else {
                fs::remove_file(&path)
            };
            match res {
                Ok(()) => removed += 1,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_err("remove", &path)(e)),
            }
        }
        Ok(removed)
    }
}

/// fsync a directory so a rename in it is durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err("sync directory", dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    const EMPTY: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn digest_parse_and_display() {
        let d: Digest = EMPTY.parse().unwrap();
        assert_eq!(d.to_string(), EMPTY);
        assert_eq!(d.hex(), &EMPTY[7..]);
        assert_eq!(d.short(), "e3b0c44298fc");
        assert_eq!(Digest::of_bytes(b""), d);
        assert_eq!(Digest::from_hex(d.hex()).unwrap(), d);
        assert_eq!(d.to_oci().to_string(), EMPTY);
        assert_eq!(Digest::from_oci(&d.to_oci()).unwrap(), d);
        let json = serde_json::to_string(&d).unwrap();
        assert_eq!(json, format!("\"{EMPTY}\""));
        assert_eq!(serde_json::from_str::<Digest>(&json).unwrap(), d);
    }

    #[test]
    fn digest_rejects_bad_forms() {
        for bad in [
            "",
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            "sha512:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            "sha256:E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855",
            "sha256:e3b0",
            "sha256:../../../../etc/passwd/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        ] {
            let err = bad.parse::<Digest>().unwrap_err();
            assert!(err.to_string().starts_with("invalid digest"), "{err}");
        }
        assert!(serde_json::from_str::<Digest>("\"sha256:zz\"").is_err());
    }

    #[test]
    fn put_read_list_delete() {
        let dir = tempfile::tempdir().unwrap();
        let store = ContentStore::open(dir.path()).unwrap();
        let d = store.put_bytes(b"hello").unwrap();
        assert_eq!(d, Digest::of_bytes(b"hello"));
        assert!(store.exists(&d));
        assert_eq!(store.size(&d).unwrap(), 5);
        assert_eq!(store.read_blob(&d).unwrap(), b"hello");
        assert_eq!(store.list().unwrap(), vec![d.clone()]);
        // Writing again is fine.
        assert_eq!(store.put_bytes(b"hello").unwrap(), d);
        let (d2, n) = store.put_reader(&b"hello"[..], Some(&d)).unwrap();
        assert_eq!((d2, n), (d.clone(), 5));
        assert!(store.delete(&d).unwrap());
        assert!(!store.delete(&d).unwrap());
        assert!(matches!(store.read_blob(&d), Err(StoreError::NotFound(_))));
        assert!(matches!(store.size(&d), Err(StoreError::NotFound(_))));
        // Nothing left behind in ingest.
        assert_eq!(fs::read_dir(store.ingest_dir()).unwrap().count(), 0);
    }

    #[test]
    fn mismatch_is_refused_and_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = ContentStore::open(dir.path()).unwrap();
        let expected = Digest::of_bytes(b"good");
        let err = store.put_reader(&b"evil"[..], Some(&expected)).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains(expected.as_str()), "{msg}");
        assert!(msg.contains(Digest::of_bytes(b"evil").as_str()), "{msg}");
        assert!(store.list().unwrap().is_empty());
        assert_eq!(fs::read_dir(store.ingest_dir()).unwrap().count(), 0);
    }

    #[test]
    fn corrupted_blob_detected_on_read() {
        let dir = tempfile::tempdir().unwrap();
        let store = ContentStore::open(dir.path()).unwrap();
        let d = store.put_bytes(b"original content").unwrap();
        let path = store.path(&d);
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        fs::write(&path, b"tampered content").unwrap();
        let err = store.read_blob(&d).unwrap_err();
        assert!(matches!(err, StoreError::Corrupt { .. }), "{err}");
        assert!(err.to_string().contains(d.as_str()));
        // Streaming reader fails at EOF too.
        let mut r = store.open_blob(&d).unwrap();
        let mut buf = Vec::new();
        let e = r.read_to_end(&mut buf).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        assert!(e.to_string().contains(d.as_str()));
        // finish() after a partial read reports it as well.
        let mut r = store.open_blob(&d).unwrap();
        let mut first = [0u8; 3];
        r.read_exact(&mut first).unwrap();
        assert!(matches!(r.finish(), Err(StoreError::Corrupt { .. })));
        // A good blob finishes fine.
        let good = store.put_bytes(b"fine").unwrap();
        store.open_blob(&good).unwrap().finish().unwrap();
    }

    #[test]
    fn move_file_in_renames_into_place() {
        let dir = tempfile::tempdir().unwrap();
        let store = ContentStore::open(dir.path()).unwrap();
        let src = store.ingest_dir().join("x");
        fs::write(&src, b"moved").unwrap();
        let (d, n) = store.move_file_in(&src, None).unwrap();
        assert_eq!(n, 5);
        assert!(!src.exists());
        assert_eq!(store.read_blob(&d).unwrap(), b"moved");
        fs::write(&src, b"other").unwrap();
        assert!(matches!(
            store.move_file_in(&src, Some(&d)),
            Err(StoreError::Mismatch { .. })
        ));
        assert!(src.exists());
    }

    #[test]
    fn concurrent_writers_of_same_blob() {
        let dir = tempfile::tempdir().unwrap();
        let store = ContentStore::open(dir.path()).unwrap();
        let data: Vec<u8> = (0..4 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
        let expected = Digest::of_bytes(&data);
        std::thread::scope(|s| {
            let handles: Vec<_> = (0..4)
                .map(|_| {
                    let store = store.clone();
                    let data = &data;
                    let expected = &expected;
                    s.spawn(move || {
                        for _ in 0..5 {
                            let (d, n) = store
                                .put_reader(io::Cursor::new(data), Some(expected))
                                .unwrap();
                            assert_eq!(&d, expected);
                            assert_eq!(n, data.len() as u64);
                            // A reader at any point sees the complete blob.
                            assert_eq!(store.read_blob(&d).unwrap().len(), data.len());
                        }
                    })
                })
                .collect();
            for h in handles {
                h.join().unwrap();
            }
        });
        assert_eq!(store.read_blob(&expected).unwrap(), data);
        assert_eq!(store.list().unwrap(), vec![expected]);
        assert_eq!(fs::read_dir(store.ingest_dir()).unwrap().count(), 0);
    }

    #[test]
    fn clean_ingest_removes_old_temp_files() {
        let dir = tempfile::tempdir().unwrap();
        let store = ContentStore::open(dir.path()).unwrap();
        fs::write(store.ingest_dir().join("ingest-stale"), b"x").unwrap();
        assert_eq!(store.clean_ingest(Duration::from_secs(3600)).unwrap(), 0);
        assert_eq!(store.clean_ingest(Duration::ZERO).unwrap(), 1);
    }
}
