//! Docker's json-file log: one `{"log":…,"stream":…,"time":…}` object per line, lines split at
//! newlines (a partial line is written when it reaches 16 KiB or when its stream ends), and
//! rotation like dockerd's driver: past `max-size` the file is renamed `json.log.1` (older
//! ones shift up to `json.log.<max-file - 1>`) and a new one begun.

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// A partial line is flushed as its own entry once it reaches this size (dockerd's buffer).
pub const MAX_LINE: usize = 16 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    /// The type byte of a multiplexed frame.
    pub fn frame_type(self) -> u8 {
        match self {
            Stream::Stdout => crate::frame::STDOUT,
            Stream::Stderr => crate::frame::STDERR,
        }
    }

    fn index(self) -> usize {
        match self {
            Stream::Stdout => 0,
            Stream::Stderr => 1,
        }
    }
}

/// One log entry.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub stream: Stream,
    pub log: Vec<u8>,
    /// RFC 3339 UTC with nanoseconds.
    pub time: String,
}

#[derive(Serialize, Deserialize)]
struct Line<'a> {
    #[serde(borrow)]
    log: std::borrow::Cow<'a, str>,
    stream: Stream,
    time: std::borrow::Cow<'a, str>,
}

impl Entry {
    /// The JSON line, newline included. Invalid UTF-8 becomes U+FFFD, as with dockerd.
    pub fn to_line(&self) -> Vec<u8> {
        let line = Line {
            log: String::from_utf8_lossy(&self.log),
            stream: self.stream,
            time: self.time.as_str().into(),
        };
        let mut v = serde_json::to_vec(&line).unwrap_or_default();
        v.push(b'\n');
        v
    }

    /// Parses one line of the file; `None` for anything that is not an entry.
    pub fn parse(line: &[u8]) -> Option<Entry> {
        let l: Line = serde_json::from_slice(line).ok()?;
        Some(Entry {
            stream: l.stream,
            log: l.log.into_owned().into_bytes(),
            time: l.time.into_owned(),
        })
    }

    /// Time in Unix nanoseconds, when it parses.
    pub fn unix_nanos(&self) -> Option<i64> {
        parse_rfc3339(&self.time)
    }
}

/// Writes entries to the log file of one container, rotating it.
pub struct LogWriter {
    path: PathBuf,
    file: File,
    size: u64,
    max_size: Option<u64>,
    max_file: u32,
    partial: [Vec<u8>; 2],
}

impl LogWriter {
    /// Opens (appends to) `path`. `max_size` None: never rotate; `max_file` is at least 1.
    pub fn open(path: &Path, max_size: Option<u64>, max_file: u32) -> io::Result<LogWriter> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        let size = file.metadata()?.len();
        Ok(LogWriter {
            path: path.to_path_buf(),
            file,
            size,
            max_size: max_size.filter(|&m| m > 0),
            max_file: max_file.max(1),
            partial: [Vec::new(), Vec::new()],
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Size of the current file.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Adds output of `stream`; returns the entries written (complete lines, long partials).
    pub fn write(&mut self, stream: Stream, data: &[u8]) -> Vec<Entry> {
        let mut out = Vec::new();
        let buf = &mut self.partial[stream.index()];
        buf.extend_from_slice(data);
        let mut lines = Vec::new();
        loop {
            let cut = match buf.iter().position(|&b| b == b'\n') {
                Some(i) if i < MAX_LINE => i + 1,
                _ if buf.len() >= MAX_LINE => MAX_LINE,
                _ => break,
            };
            lines.push(buf.drain(..cut).collect::<Vec<u8>>());
        }
        for log in lines {
            out.push(self.emit(stream, log));
        }
        out
    }

    /// Writes what is left of `stream`'s partial line, if anything.
    pub fn flush(&mut self, stream: Stream) -> Option<Entry> {
        let buf = std::mem::take(&mut self.partial[stream.index()]);
        if buf.is_empty() {
            return None;
        }
        Some(self.emit(stream, buf))
    }

    fn emit(&mut self, stream: Stream, log: Vec<u8>) -> Entry {
        let entry = Entry {
            stream,
            log,
            time: now_rfc3339(),
        };
        let line = entry.to_line();
        match self.file.write_all(&line) {
            Ok(()) => self.size += line.len() as u64,
            Err(e) => eprintln!("berth-shim: write {}: {e}", self.path.display()),
        }
        if let Some(max) = self.max_size {
            if self.size >= max {
                if let Err(e) = self.rotate() {
                    eprintln!("berth-shim: rotate {}: {e}", self.path.display());
                }
            }
        }
        entry
    }

    /// Shifts `log.N` up, renames the log to `log.1` and starts a new one. With one file, a
    /// fresh file replaces it (by rename, so readers holding the old one keep their view).
    fn rotate(&mut self) -> io::Result<()> {
        if self.max_file > 1 {
            for i in (1..self.max_file - 1).rev() {
                match fs::rename(rotated(&self.path, i), rotated(&self.path, i + 1)) {
                    Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                    _ => {}
                }
            }
            fs::rename(&self.path, rotated(&self.path, 1))?;
            self.file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.path)?;
        } else {
            let tmp = self.path.with_extension("log.new");
            let f = OpenOptions::new()
                .create(true)
                .write(true)
                .truncate(true)
                .open(&tmp)?;
            fs::rename(&tmp, &self.path)?;
            self.file = OpenOptions::new().append(true).open(&self.path)?;
            drop(f);
        }
        self.size = 0;
        Ok(())
    }

    /// Opens every file of the log, oldest first, the current one limited to what has been
    /// written so far: a consistent snapshot that later writes and rotations do not change.
    pub fn snapshot(&self) -> Vec<Box<dyn Read + Send>> {
        let mut files: Vec<Box<dyn Read + Send>> = Vec::new();
        for p in rotated_files(&self.path) {
            if let Ok(f) = File::open(&p) {
                files.push(Box::new(f));
            }
        }
        if let Ok(f) = File::open(&self.path) {
            files.push(Box::new(f.take(self.size)));
        }
        files
    }
}

/// `log.N`.
pub fn rotated(path: &Path, n: u32) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(format!(".{n}"));
    PathBuf::from(s)
}

/// The rotated files of the log at `path` that exist, oldest (highest number) first.
pub fn rotated_files(path: &Path) -> Vec<PathBuf> {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return Vec::new();
    };
    let prefix = format!("{}.", name.to_string_lossy());
    let mut found: Vec<(u32, PathBuf)> = fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| {
                    let n = e.file_name().to_string_lossy().into_owned();
                    let num = n.strip_prefix(&prefix)?.parse::<u32>().ok()?;
                    Some((num, e.path()))
                })
                .collect()
        })
        .unwrap_or_default();
    found.sort_by_key(|f| std::cmp::Reverse(f.0));
    found.into_iter().map(|(_, p)| p).collect()
}

/// Which entries a reader wants.
#[derive(Debug, Clone, Copy, Default)]
pub struct Filter {
    pub stdout: bool,
    pub stderr: bool,
    pub since: Option<i64>,
    pub until: Option<i64>,
}

impl Filter {
    pub fn accepts(&self, e: &Entry) -> bool {
        let stream_ok = match e.stream {
            Stream::Stdout => self.stdout,
            Stream::Stderr => self.stderr,
        };
        if !stream_ok {
            return false;
        }
        if self.since.is_none() && self.until.is_none() {
            return true;
        }
        let Some(t) = e.unix_nanos() else {
            return false;
        };
        !matches!(self.since, Some(s) if t < s) && !matches!(self.until, Some(u) if t >= u)
    }
}

/// Reads the entries of `files` (oldest first) that pass `filter`, keeping the last `tail`.
pub fn read_entries(
    files: Vec<Box<dyn Read + Send>>,
    filter: &Filter,
    tail: Option<usize>,
) -> Vec<Entry> {
    let mut out = VecDeque::new();
    if tail == Some(0) {
        return Vec::new();
    }
    for f in files {
        let mut r = BufReader::new(f);
        let mut line = Vec::new();
        loop {
            line.clear();
            match r.read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
            let Some(e) = Entry::parse(&line) else {
                continue;
            };
            if !filter.accepts(&e) {
                continue;
            }
            out.push_back(e);
            if let Some(t) = tail {
                if out.len() > t {
                    out.pop_front();
                }
            }
        }
    }
    out.into()
}

/// Reads a log (all its files) from disk, as the engine does once the shim is gone.
pub fn read_log(path: &Path, filter: &Filter, tail: Option<usize>) -> Vec<Entry> {
    let mut files: Vec<Box<dyn Read + Send>> = Vec::new();
    for p in rotated_files(path).into_iter().chain([path.to_path_buf()]) {
        if let Ok(f) = File::open(&p) {
            files.push(Box::new(f));
        }
    }
    read_entries(files, filter, tail)
}

/// Now as RFC 3339 UTC with nanoseconds.
pub fn now_rfc3339() -> String {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    format_rfc3339(d.as_secs() as i64, d.subsec_nanos())
}

fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
}

/// `YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ`.
pub fn format_rfc3339(secs: i64, nanos: u32) -> String {
    let days = secs.div_euclid(86400);
    let sod = secs.rem_euclid(86400);
    let z = days + 719468;
    let era = z.div_euclid(146097);
    let doe = z.rem_euclid(146097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + if m <= 2 { 1 } else { 0 };
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{nanos:09}Z",
        sod / 3600,
        (sod % 3600) / 60,
        sod % 60
    )
}

/// Parses RFC 3339 (`Z` or `±HH:MM`, any number of fraction digits) to Unix nanoseconds.
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> { s.get(r)?.parse().ok() };
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, se) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if b[13] != b':' || b[16] != b':' || !(1..=12).contains(&mo) || !(1..=31).contains(&d) {
        return None;
    }
    let mut i = 19;
    let mut nanos: i64 = 0;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            if i - start < 9 {
                nanos = nanos * 10 + i64::from(b[i] - b'0');
            }
            i += 1;
        }
        let digits = (i - start).min(9);
        if digits == 0 {
            return None;
        }
        nanos *= 10i64.pow(9 - digits as u32);
    }
    let offset = match b.get(i)? {
        b'Z' | b'z' if i + 1 == b.len() => 0,
        c @ (b'+' | b'-') if i + 6 == b.len() && b[i + 3] == b':' => {
            let oh: i64 = s.get(i + 1..i + 3)?.parse().ok()?;
            let om: i64 = s.get(i + 4..i + 6)?.parse().ok()?;
            let o = oh * 3600 + om * 60;
            if *c == b'+' {
                o
            } else {
                -o
            }
        }
        _ => return None,
    };
    let secs = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + se - offset;
    secs.checked_mul(1_000_000_000)?.checked_add(nanos)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_round_trip() {
        assert_eq!(format_rfc3339(0, 0), "1970-01-01T00:00:00.000000000Z");
        let s = format_rfc3339(1_780_000_000, 123_456_789);
        assert_eq!(parse_rfc3339(&s), Some(1_780_000_000_123_456_789));
        assert_eq!(
            parse_rfc3339("2024-02-29T12:00:00.5+01:00"),
            parse_rfc3339("2024-02-29T11:00:00.500Z")
        );
        assert_eq!(
            parse_rfc3339("2024-02-29T11:00:00Z"),
            Some(1_709_204_400_000_000_000)
        );
        assert_eq!(parse_rfc3339("yesterday"), None);
    }

    #[test]
    fn lines_partials_and_entries() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("json.log");
        let mut w = LogWriter::open(&path, None, 1).unwrap();
        assert!(w.write(Stream::Stdout, b"hel").is_empty());
        let e = w.write(Stream::Stdout, b"lo\nwor");
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].log, b"hello\n");
        w.write(Stream::Stderr, b"err\n");
        let long = vec![b'x'; MAX_LINE + 10];
        let e = w.write(Stream::Stderr, &long);
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].log.len(), MAX_LINE);
        assert_eq!(w.flush(Stream::Stdout).unwrap().log, b"wor");
        assert_eq!(w.flush(Stream::Stderr).unwrap().log.len(), 10);
        assert!(w.flush(Stream::Stderr).is_none());
        let text = fs::read_to_string(&path).unwrap();
        let first = text.lines().next().unwrap();
        assert!(
            first.starts_with(r#"{"log":"hello\n","stream":"stdout","time":""#),
            "{first}"
        );
        let all = read_log(
            &path,
            &Filter {
                stdout: true,
                stderr: true,
                ..Default::default()
            },
            None,
        );
        assert_eq!(all.len(), 5);
        let errs = read_log(
            &path,
            &Filter {
                stderr: true,
                ..Default::default()
            },
            Some(1),
        );
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].log.len(), 10);
    }

    #[test]
    fn rotation_keeps_max_file_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("json.log");
        let mut w = LogWriter::open(&path, Some(1000), 3).unwrap();
        for i in 0..200 {
            w.write(Stream::Stdout, format!("line {i}\n").as_bytes());
        }
        assert!(path.exists());
        assert!(rotated(&path, 1).exists());
        assert!(rotated(&path, 2).exists());
        assert!(!rotated(&path, 3).exists());
        assert!(fs::metadata(&path).unwrap().len() < 1000);
        let f = Filter {
            stdout: true,
            ..Default::default()
        };
        let last = read_log(&path, &f, Some(2));
        assert_eq!(last[0].log, b"line 198\n");
        assert_eq!(last[1].log, b"line 199\n");
        let snap = read_entries(w.snapshot(), &f, None);
        assert_eq!(snap.last().unwrap().log, b"line 199\n");
    }

    #[test]
    fn one_file_is_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("json.log");
        let mut w = LogWriter::open(&path, Some(100), 1).unwrap();
        for i in 0..20 {
            w.write(Stream::Stdout, format!("line {i}\n").as_bytes());
        }
        assert!(!rotated(&path, 1).exists());
        assert!(fs::metadata(&path).unwrap().len() < 100);
    }
}
