//! COPY and ADD: finding the sources (wildcards, `.dockerignore`), hashing them for the cache
//! key, and writing them as a tar the engine extracts into the step's container.
//!
//! Sources are walked on the host under a root (the unpacked context, or another stage's
//! mounted root filesystem) without ever following a symlink: a symlink is copied as a
//! symlink, so nothing outside the root is read.

use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};

use crate::ignore::Ignore;

/// One source found for a COPY: where it is on the host and the name it is copied under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    /// Host path (inside the source root).
    pub host: PathBuf,
    /// The path as matched, relative to the source root ('/'-separated).
    pub rel: String,
    pub is_dir: bool,
}

/// Owner and mode overrides of `--chown` and `--chmod`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Attrs {
    /// `None` keeps root (0:0), as Docker does for COPY without `--chown`.
    pub owner: Option<(u32, u32)>,
    pub mode: Option<u32>,
}

/// What went wrong finding or reading sources; the builder adds the line.
#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    #[error("forbidden path outside the build context: {0}")]
    Outside(String),
    #[error("file not found in build context or excluded by .dockerignore: stat {0}: file does not exist")]
    NotFound(String),
    #[error("no source files were specified")]
    NoMatch,
    #[error("bad pattern {pattern:?}: {reason}")]
    BadPattern { pattern: String, reason: String },
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: io::Error,
    },
    #[error("{path}: {what} cannot be copied")]
    Special { path: String, what: &'static str },
}

fn io_at(path: &Path) -> impl FnOnce(io::Error) -> CopyError + '_ {
    move |source| CopyError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Clean a source path like Go's `path.Clean` relative to the root: `./a/../b/` → `b`.
/// `..` above the root is refused.
pub fn clean_rel(path: &str) -> Result<String, CopyError> {
    let mut parts: Vec<&str> = Vec::new();
    for c in path.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                if parts.pop().is_none() {
                    return Err(CopyError::Outside(path.to_string()));
                }
            }
            c => parts.push(c),
        }
    }
    Ok(parts.join("/"))
}

/// Clean an absolute container path: `/a/./b/../c/` → `/a/c`.
pub fn clean_abs(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for c in path.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    format!("/{}", parts.join("/"))
}

/// Whether a path has Go `filepath.Match` metacharacters.
pub fn has_wildcards(path: &str) -> bool {
    path.contains(['*', '?', '['])
}

/// Go's `filepath.Match` on one path component (no `/` in either).
pub fn match_component(pattern: &str, name: &str) -> Result<bool, String> {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    fn class(p: &[char], mut i: usize, c: char) -> Result<(bool, usize), String> {
        // p[i] is just after '['.
        let negate = matches!(p.get(i), Some('^') | Some('!'));
        if negate {
            i += 1;
        }
        let mut matched = false;
        let mut first = true;
        loop {
            let Some(&ch) = p.get(i) else {
                return Err("unterminated character class".into());
            };
            if ch == ']' && !first {
                i += 1;
                break;
            }
            first = false;
            let lo = if ch == '\\' {
                i += 1;
                *p.get(i).ok_or("trailing backslash")?
            } else {
                ch
            };
            i += 1;
            let hi = if p.get(i) == Some(&'-') && p.get(i + 1).is_some_and(|c| *c != ']') {
                i += 1;
                let h = if p[i] == '\\' {
                    i += 1;
                    *p.get(i).ok_or("trailing backslash")?
                } else {
                    p[i]
                };
                i += 1;
                if h < lo {
                    return Err("bad character range".into());
                }
                h
            } else {
                lo
            };
            if lo <= c && c <= hi {
                matched = true;
            }
        }
        Ok((matched != negate, i))
    }
    fn go(p: &[char], pi: usize, n: &[char], ni: usize) -> Result<bool, String> {
        let (mut pi, mut ni) = (pi, ni);
        while pi < p.len() {
            match p[pi] {
                '*' => {
                    while pi < p.len() && p[pi] == '*' {
                        pi += 1;
                    }
                    if pi == p.len() {
                        return Ok(true);
                    }
                    for k in ni..=n.len() {
                        if go(p, pi, n, k)? {
                            return Ok(true);
                        }
                    }
                    return Ok(false);
                }
                '?' => {
                    if ni >= n.len() {
                        return Ok(false);
                    }
                    pi += 1;
                    ni += 1;
                }
                '[' => {
                    let Some(&c) = n.get(ni) else {
                        // Still validate the class.
                        class(p, pi + 1, '\0')?;
                        return Ok(false);
                    };
                    let (ok, next) = class(p, pi + 1, c)?;
                    if !ok {
                        return Ok(false);
                    }
                    pi = next;
                    ni += 1;
                }
                '\\' => {
                    pi += 1;
                    let Some(&c) = p.get(pi) else {
                        return Err("trailing backslash".into());
                    };
                    if n.get(ni) != Some(&c) {
                        return Ok(false);
                    }
                    pi += 1;
                    ni += 1;
                }
                c => {
                    if n.get(ni) != Some(&c) {
                        return Ok(false);
                    }
                    pi += 1;
                    ni += 1;
                }
            }
        }
        Ok(ni == n.len())
    }
    go(&p, 0, &n, 0)
}

/// Finds the sources a COPY names under `root`. `resolve(rel)` gives the host path of a
/// relative path when it exists (for a stage's root filesystem it resolves symlinks inside
/// that root; for the context it is a plain join that must not pass through a symlink).
/// `ignore` hides context paths.
pub fn find_sources(
    root: &Path,
    src: &str,
    ignore: Option<&Ignore>,
) -> Result<Vec<Source>, CopyError> {
    let rel = clean_rel(src)?;
    if !has_wildcards(&rel) {
        if rel.is_empty() {
            return Ok(vec![Source {
                host: root.to_path_buf(),
                rel,
                is_dir: true,
            }]);
        }
        if ignore.is_some_and(|i| i.excluded(&rel)) {
            return Err(CopyError::NotFound(rel));
        }
        let host = beneath(root, &rel).ok_or_else(|| CopyError::NotFound(rel.clone()))?;
        let meta = fs::symlink_metadata(&host).map_err(|_| CopyError::NotFound(rel.clone()))?;
        return Ok(vec![Source {
            host,
            rel,
            is_dir: meta.is_dir(),
        }]);
    }
    // Match component by component from the root.
    let mut found = vec![(root.to_path_buf(), String::new())];
    let comps: Vec<&str> = rel.split('/').collect();
    for (i, comp) in comps.iter().enumerate() {
        let last = i + 1 == comps.len();
        let mut next = Vec::new();
        for (dir, prefix) in &found {
            if !has_wildcards(comp) {
                let host = dir.join(comp);
                let r = join_rel(prefix, comp);
                if let Ok(m) = fs::symlink_metadata(&host) {
                    if last || m.is_dir() {
                        next.push((host, r));
                    }
                }
                continue;
            }
            let Ok(rd) = fs::read_dir(dir) else { continue };
            let mut names: Vec<String> = rd
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect();
            names.sort();
            for name in names {
                let ok = match_component(comp, &name).map_err(|reason| CopyError::BadPattern {
                    pattern: src.to_string(),
                    reason,
                })?;
                if !ok {
                    continue;
                }
                let host = dir.join(&name);
                let Ok(m) = fs::symlink_metadata(&host) else {
                    continue;
                };
                if last || m.is_dir() {
                    next.push((host, join_rel(prefix, &name)));
                }
            }
        }
        found = next;
    }
    let out: Vec<Source> = found
        .into_iter()
        .filter(|(_, r)| !ignore.is_some_and(|i| i.excluded(r)))
        .filter_map(|(host, r)| {
            let m = fs::symlink_metadata(&host).ok()?;
            Some(Source {
                host,
                rel: r,
                is_dir: m.is_dir(),
            })
        })
        .collect();
    if out.is_empty() {
        return Err(CopyError::NoMatch);
    }
    Ok(out)
}

fn join_rel(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_string()
    } else {
        format!("{prefix}/{name}")
    }
}

/// `root/rel` when no component on the way is a symlink (the last one may be).
fn beneath(root: &Path, rel: &str) -> Option<PathBuf> {
    let mut p = root.to_path_buf();
    let comps: Vec<&str> = rel.split('/').collect();
    for (i, c) in comps.iter().enumerate() {
        p.push(c);
        if i + 1 < comps.len() {
            let m = fs::symlink_metadata(&p).ok()?;
            if !m.is_dir() {
                return None;
            }
        }
    }
    Some(p)
}

/// Every path under a source, in a stable order, with its path relative to the source
/// (empty for the source itself). Excluded context paths are left out.
fn walk(src: &Source, ignore: Option<&Ignore>) -> Result<Vec<(PathBuf, String)>, CopyError> {
    let mut out = vec![(src.host.clone(), String::new())];
    if src.is_dir {
        walk_dir(&src.host, &src.rel, "", ignore, &mut out)?;
    }
    Ok(out)
}

fn walk_dir(
    dir: &Path,
    ctx_rel: &str,
    rel: &str,
    ignore: Option<&Ignore>,
    out: &mut Vec<(PathBuf, String)>,
) -> Result<(), CopyError> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .map_err(io_at(dir))?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    for name in names {
        let r = join_rel(rel, &name);
        let cr = join_rel(ctx_rel, &name);
        let host = dir.join(&name);
        let meta = fs::symlink_metadata(&host).map_err(io_at(&host))?;
        if let Some(ig) = ignore {
            if meta.is_dir() && ig.skip_dir(&cr) {
                continue;
            }
            if ig.excluded(&cr) {
                if meta.is_dir() {
                    // An exception may bring back something below.
                    let mut below = Vec::new();
                    walk_dir(&host, &cr, &r, ignore, &mut below)?;
                    if !below.is_empty() {
                        out.push((host, r));
                        out.extend(below);
                    }
                }
                continue;
            }
        }
        out.push((host.clone(), r.clone()));
        if meta.is_dir() {
            walk_dir(&host, &cr, &r, ignore, out)?;
        }
    }
    Ok(())
}

/// A digest of what the sources hold (names, types, modes, contents, link targets), for the
/// cache key of a COPY: the same files give the same key, any change another one.
pub fn hash_sources(sources: &[Source], ignore: Option<&Ignore>) -> Result<String, CopyError> {
    let mut h = Sha256::new();
    for s in sources {
        h.update(s.rel.as_bytes());
        h.update([0]);
        for (host, rel) in walk(s, ignore)? {
            let meta = fs::symlink_metadata(&host).map_err(io_at(&host))?;
            h.update(rel.as_bytes());
            h.update([0]);
            h.update(meta.mode().to_le_bytes());
            let ft = meta.file_type();
            if ft.is_symlink() {
                let t = fs::read_link(&host).map_err(io_at(&host))?;
                h.update(b"l");
                h.update(t.as_os_str().as_encoded_bytes());
            } else if ft.is_file() {
                h.update(b"f");
                h.update(meta.len().to_le_bytes());
                let mut f = fs::File::open(&host).map_err(io_at(&host))?;
                let mut buf = vec![0u8; 64 * 1024];
                loop {
                    let n = f.read(&mut buf).map_err(io_at(&host))?;
                    if n == 0 {
                        break;
                    }
                    h.update(&buf[..n]);
                }
            } else if ft.is_dir() {
                h.update(b"d");
            } else {
                h.update(b"o");
            }
            h.update([0]);
        }
    }
    Ok(hex::encode(h.finalize()))
}

/// Writes tar entries for a set of copies. Paths are relative to the directory the tar is
/// extracted in.
pub struct TarWriter<W: Write> {
    b: tar::Builder<W>,
}

impl<W: Write> TarWriter<W> {
    pub fn new(w: W) -> TarWriter<W> {
        let mut b = tar::Builder::new(w);
        b.follow_symlinks(false);
        TarWriter { b }
    }

    /// A directory entry (for a destination directory that does not exist yet).
    pub fn dir(&mut self, path: &str, attrs: Attrs) -> io::Result<()> {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Directory);
        h.set_size(0);
        h.set_mode(attrs.mode.unwrap_or(0o755));
        let (u, g) = attrs.owner.unwrap_or((0, 0));
        h.set_uid(u as u64);
        h.set_gid(g as u64);
        h.set_mtime(now_secs());
        self.b.append_data(&mut h, format!("{path}/"), io::empty())
    }

    /// A regular file with the given content (a heredoc).
    pub fn file(&mut self, path: &str, data: &[u8], attrs: Attrs) -> io::Result<()> {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_size(data.len() as u64);
        h.set_mode(attrs.mode.unwrap_or(0o644));
        let (u, g) = attrs.owner.unwrap_or((0, 0));
        h.set_uid(u as u64);
        h.set_gid(g as u64);
        h.set_mtime(now_secs());
        self.b.append_data(&mut h, path, data)
    }

    /// A source copied to `dest` (relative): a file under that name, a directory's contents
    /// into that directory (created when `dest` is not empty).
    pub fn source(
        &mut self,
        src: &Source,
        dest: &str,
        attrs: Attrs,
        ignore: Option<&Ignore>,
    ) -> Result<(), CopyError> {
        for (host, rel) in walk(src, ignore)? {
            let name = match (dest.is_empty(), rel.is_empty()) {
                (true, true) => continue,
                (true, false) => rel,
                (false, true) => dest.to_string(),
                (false, false) => format!("{dest}/{rel}"),
            };
            self.entry(&host, &name, attrs)?;
        }
        Ok(())
    }

    fn entry(&mut self, host: &Path, name: &str, attrs: Attrs) -> Result<(), CopyError> {
        let meta = fs::symlink_metadata(host).map_err(io_at(host))?;
        let ft = meta.file_type();
        let mut h = tar::Header::new_gnu();
        h.set_mtime(meta.mtime().max(0) as u64);
        let (u, g) = attrs.owner.unwrap_or((0, 0));
        h.set_uid(u as u64);
        h.set_gid(g as u64);
        let perm = meta.permissions().mode() & 0o7777;
        h.set_mode(attrs.mode.unwrap_or(perm));
        let err = |e: io::Error| CopyError::Io {
            path: host.display().to_string(),
            source: e,
        };
        if ft.is_dir() {
            h.set_entry_type(tar::EntryType::Directory);
            h.set_size(0);
            self.b
                .append_data(&mut h, format!("{name}/"), io::empty())
                .map_err(err)
        } else if ft.is_symlink() {
            let target = fs::read_link(host).map_err(io_at(host))?;
            h.set_entry_type(tar::EntryType::Symlink);
            h.set_size(0);
            h.set_mode(perm);
            self.b.append_link(&mut h, name, &target).map_err(err)
        } else if ft.is_file() {
            h.set_entry_type(tar::EntryType::Regular);
            h.set_size(meta.len());
            let f = fs::File::open(host).map_err(io_at(host))?;
            self.b.append_data(&mut h, name, f).map_err(err)
        } else {
            Err(CopyError::Special {
                path: name.to_string(),
                what: "a device, fifo or socket",
            })
        }
    }

    /// Ends the archive.
    pub fn finish(self) -> io::Result<W> {
        self.b.into_inner()
    }
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Whether a file is a tar archive ADD extracts: plain tar (`ustar` magic), gzip or zstd.
pub fn is_archive(path: &Path) -> bool {
    let Ok(mut f) = fs::File::open(path) else {
        return false;
    };
    let mut buf = [0u8; 512];
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(_) => return false,
        }
    }
    let head = &buf[..n];
    head.starts_with(&[0x1f, 0x8b])
        || head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd])
        || (n >= 262 && &head[257..262] == b"ustar")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn components_match_like_go() {
        let m = |p: &str, n: &str| match_component(p, n).unwrap();
        assert!(m("*.txt", "a.txt"));
        assert!(!m("*.txt", "a.txt.bak"));
        assert!(m("a?c", "abc"));
        assert!(!m("a?c", "ac"));
        assert!(m("[a-c]x", "bx"));
        assert!(!m("[a-c]x", "dx"));
        assert!(m("[^a-c]x", "dx"));
        assert!(m("\\*", "*"));
        assert!(!m("\\*", "a"));
        assert!(m("*", ""));
        assert!(match_component("[a-", "a").is_err());
    }

    #[test]
    fn paths_clean_and_stay_inside() {
        assert_eq!(clean_rel("./a/../b/").unwrap(), "b");
        assert_eq!(clean_rel(".").unwrap(), "");
        assert!(matches!(clean_rel("../x"), Err(CopyError::Outside(_))));
        assert!(matches!(clean_rel("a/../../x"), Err(CopyError::Outside(_))));
        assert_eq!(clean_abs("/a/./b/../c/"), "/a/c");
        assert_eq!(clean_abs("/"), "/");
        assert_eq!(clean_abs("/../x"), "/x");
    }

    #[test]
    fn wildcards_find_sorted_matches_and_honour_ignore() {
        let d = tempfile::tempdir().unwrap();
        for f in ["b.txt", "a.txt", "c.md", "sub/d.txt", "sub/e.md"] {
            let p = d.path().join(f);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(&p, f).unwrap();
        }
        let rels = |v: Vec<Source>| v.into_iter().map(|s| s.rel).collect::<Vec<_>>();
        assert_eq!(
            rels(find_sources(d.path(), "*.txt", None).unwrap()),
            ["a.txt", "b.txt"]
        );
        assert_eq!(
            rels(find_sources(d.path(), "*/*.md", None).unwrap()),
            ["sub/e.md"]
        );
        let ig = Ignore::parse("b.txt\n").unwrap();
        assert_eq!(
            rels(find_sources(d.path(), "*.txt", Some(&ig)).unwrap()),
            ["a.txt"]
        );
        assert!(matches!(
            find_sources(d.path(), "b.txt", Some(&ig)),
            Err(CopyError::NotFound(_))
        ));
        assert!(matches!(
            find_sources(d.path(), "*.rs", None),
            Err(CopyError::NoMatch)
        ));
        assert!(matches!(
            find_sources(d.path(), "nothere", None),
            Err(CopyError::NotFound(_))
        ));
    }

    #[test]
    fn a_symlink_is_never_passed_through() {
        let d = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink("/etc", d.path().join("esc")).unwrap();
        // The link itself can be copied, but not what lies behind it.
        let s = find_sources(d.path(), "esc", None).unwrap();
        assert!(!s[0].is_dir);
        assert!(matches!(
            find_sources(d.path(), "esc/passwd", None),
            Err(CopyError::NotFound(_))
        ));
    }

    #[test]
    fn the_hash_changes_with_content_and_not_otherwise() {
        let d = tempfile::tempdir().unwrap();
        fs::create_dir(d.path().join("dir")).unwrap();
        fs::write(d.path().join("dir/f"), "one").unwrap();
        let h = || {
            let s = find_sources(d.path(), "dir", None).unwrap();
            hash_sources(&s, None).unwrap()
        };
        let a = h();
        assert_eq!(a, h());
        fs::write(d.path().join("dir/f"), "two").unwrap();
        assert_ne!(a, h());
    }

    #[test]
    fn tar_entries_carry_owner_mode_and_dest_names() {
        let d = tempfile::tempdir().unwrap();
        fs::create_dir(d.path().join("dir")).unwrap();
        fs::write(d.path().join("dir/f"), "data").unwrap();
        let src = find_sources(d.path(), "dir", None).unwrap();
        let mut w = TarWriter::new(Vec::new());
        w.dir("app", Attrs::default()).unwrap();
        let attrs = Attrs {
            owner: Some((1000, 1001)),
            mode: None,
        };
        w.source(&src[0], "app/dir", attrs, None).unwrap();
        let bytes = w.finish().unwrap();
        let mut a = tar::Archive::new(&bytes[..]);
        let got: Vec<(String, u64, u64)> = a
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (
                    e.path().unwrap().display().to_string(),
                    e.header().uid().unwrap(),
                    e.header().gid().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("app/".to_string(), 0, 0),
                ("app/dir/".to_string(), 1000, 1001),
                ("app/dir/f".to_string(), 1000, 1001)
            ]
        );
    }
}
