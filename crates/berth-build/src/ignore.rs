//! `.dockerignore` files.
//!
//! Reading follows `moby/patternmatcher/ignorefile.ReadAll` and matching follows
//! `moby/patternmatcher` (`MatchesOrParentMatches`), as BuildKit and the docker CLI use
//! them:
//!
//! - a UTF-8 BOM is stripped; a line is a comment only when `#` is its very first character
//!   (`  # x` is the pattern `# x`, as in Docker); lines are trimmed, blank ones skipped;
//! - a leading `!` makes an exception (re-inclusion); patterns are cleaned like Go's
//!   `filepath.Clean` and one leading `/` is dropped, so `/abs` is `abs` and `build/` is
//!   `build`;
//! - `*` matches any run of characters but `/`, `?` one character but `/`, `[...]` a class
//!   (ranges, `^` negation; a class may match `/`, as in Docker), `\` escapes the next
//!   character, and `**` matches any number of directories (`**/x`, `a/**/b`, `a/**`);
//! - patterns are anchored at the context root, and a pattern matching a parent directory
//!   matches everything below it (`foo` excludes `foo/bar` but not `a/foo`);
//! - the last matching line wins: an exclusion applies only while the path is included, an
//!   exception only while it is excluded.
//!
//! The syntax check is Go's `filepath.Match`: an unclosed or empty `[` class, a range with a
//! missing end, or a trailing `\` is an error.
//!
//! Not implemented here: Docker always sends the Dockerfile and `.dockerignore` to the
//! builder even when they are excluded (BuildKit reads them through a separate source);
//! callers that need that must special-case those two paths.

/// An error in a `.dockerignore` file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(".dockerignore:{line}: {message}")]
pub struct IgnoreError {
    /// The 1-based line of the faulty pattern.
    pub line: usize,
    /// What is wrong, e.g. `syntax error in pattern`.
    pub message: String,
}

/// Parsed `.dockerignore` patterns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ignore {
    patterns: Vec<Pattern>,
}

impl Ignore {
    /// Parse a .dockerignore file: one pattern per line, `#` comment lines, blank lines
    /// skipped, whitespace trimmed, `!` exception prefix, patterns cleaned like Go's
    /// filepath.Clean and a leading `/` stripped (docker's ReadAll). An invalid pattern
    /// (e.g. bad `[` class) → error naming the line.
    pub fn parse(text: &str) -> Result<Ignore, IgnoreError> {
        let mut patterns = Vec::new();
        for (i, raw) in text.split('\n').enumerate() {
            let number = i + 1;
            let mut line = raw.strip_suffix('\r').unwrap_or(raw);
            if i == 0 {
                line = line.strip_prefix('\u{feff}').unwrap_or(line);
            }
            if line.starts_with('#') {
                continue;
            }
            let line = line.trim();
            if line.is_empty() {
                continue;
            }
            // ignorefile.ReadAll
            let (invert, rest) = match line.strip_prefix('!') {
                Some(rest) => (true, rest.trim()),
                None => (false, line),
            };
            let mut pattern = String::new();
            if !rest.is_empty() {
                let cleaned = clean(rest);
                pattern = match cleaned.strip_prefix('/') {
                    Some(stripped) if !stripped.is_empty() => stripped.to_string(),
                    _ => cleaned,
                };
            }
            if invert {
                pattern.insert(0, '!');
            }
            // patternmatcher.New
            let pattern = clean(pattern.trim());
            let err = |message: &str| IgnoreError {
                line: number,
                message: message.to_string(),
            };
            let (exclusion, body) = match pattern.strip_prefix('!') {
                Some("") => return Err(err("illegal exclusion pattern: \"!\"")),
                Some(body) => (true, body.to_string()),
                None => (false, pattern),
            };
            validate(&body).map_err(|()| err("syntax error in pattern"))?;
            patterns.push(Pattern::compile(body, exclusion));
        }
        Ok(Ignore { patterns })
    }

    /// Whether a context path (relative, '/'-separated, no leading "./") is excluded: the
    /// last matching pattern wins; a pattern matching a parent directory excludes its
    /// contents too (moby patternmatcher MatchesOrParentMatches semantics). The context
    /// root itself (`""` or `.`) is never excluded.
    pub fn excluded(&self, path: &str) -> bool {
        let path = clean(path);
        let path = path.trim_start_matches('/');
        if path.is_empty() || path == "." {
            return false;
        }
        let parents: Vec<&str> = match path.rfind('/') {
            Some(i) => path[..i].split('/').collect(),
            None => Vec::new(),
        };
        let mut matched = false;
        for pattern in &self.patterns {
            if pattern.exclusion != matched {
                continue;
            }
            let mut hit = pattern.matches(path);
            if !hit {
                let mut prefix = String::new();
                for dir in &parents {
                    if !prefix.is_empty() {
                        prefix.push('/');
                    }
                    prefix.push_str(dir);
                    if pattern.matches(&prefix) {
                        hit = true;
                        break;
                    }
                }
            }
            if hit {
                matched = !pattern.exclusion;
            }
        }
        matched
    }

    /// Whether a directory may be skipped whole during a walk: excluded and no exception
    /// pattern could re-include something under it.
    ///
    /// This is BuildKit's (fsutil's) rule: it may skip only when every exception is a plain
    /// path (no wildcard except a trailing `/*` or `/**`) and none of them lies below
    /// `dir`. An exception with wildcards anywhere keeps every excluded directory walked.
    pub fn skip_dir(&self, dir: &str) -> bool {
        if !self.excluded(dir) {
            return false;
        }
        let exceptions: Vec<&Pattern> = self.patterns.iter().filter(|p| p.exclusion).collect();
        if exceptions.is_empty() {
            return true;
        }
        let dir = clean(dir);
        let dir_slash = format!("{}/", dir.trim_start_matches('/'));
        for p in exceptions {
            let plain = without_trailing_glob(&p.cleaned);
            if plain.contains(['*', '[', ']', '?', '^', '\\']) {
                return false;
            }
            if format!("{plain}/").starts_with(&dir_slash) {
                return false;
            }
        }
        true
    }
}

fn without_trailing_glob(p: &str) -> &str {
    let p = p.strip_suffix("/**").unwrap_or(p);
    p.strip_suffix("/*").unwrap_or(p)
}

/// Go's `filepath.Clean` for `/`-separated paths.
fn clean(path: &str) -> String {
    if path.is_empty() {
        return ".".to_string();
    }
    let rooted = path.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => match parts.last() {
                Some(&last) if last != ".." => {
                    parts.pop();
                }
                _ if rooted => {}
                _ => parts.push(".."),
            },
            other => parts.push(other),
        }
    }
    let joined = parts.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".to_string(),
        (false, false) => joined,
    }
}

/// Go's `filepath.Match` syntax check.
fn validate(pattern: &str) -> Result<(), ()> {
    let chars: Vec<char> = pattern.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '[' => {
                i += 1;
                if chars.get(i) == Some(&'^') {
                    i += 1;
                }
                let mut ranges = 0;
                loop {
                    if chars.get(i) == Some(&']') && ranges > 0 {
                        i += 1;
                        break;
                    }
                    class_char(&chars, &mut i)?;
                    if chars.get(i) == Some(&'-') {
                        i += 1;
                        class_char(&chars, &mut i)?;
                    }
                    ranges += 1;
                }
            }
            '\\' => {
                if i + 1 >= chars.len() {
                    return Err(());
                }
                i += 2;
            }
            _ => i += 1,
        }
    }
    Ok(())
}

/// One (possibly escaped) character of a class; something must follow it.
fn class_char(chars: &[char], i: &mut usize) -> Result<char, ()> {
    let mut c = *chars.get(*i).ok_or(())?;
    if c == '-' || c == ']' {
        return Err(());
    }
    if c == '\\' {
        *i += 1;
        c = *chars.get(*i).ok_or(())?;
    }
    *i += 1;
    if *i >= chars.len() {
        return Err(());
    }
    Ok(c)
}

/// How patternmatcher decided to match a pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    /// No special characters: string equality.
    Exact,
    /// `prefix**`: the path starts with `prefix`.
    Prefix,
    /// `**suffix` without other special characters: the path ends with `suffix`.
    Suffix,
    /// Anything else, matched by tokens.
    Tokens,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Lit(char),
    /// `?`: `[^/]`.
    AnyNotSlash,
    /// `*`: `[^/]*`.
    StarNotSlash,
    /// `**` followed by more: `(.*/)?`.
    AnyDirs,
    /// Trailing `**` after other special characters: `.*`.
    AnyRest,
    /// `[...]`.
    Class {
        negated: bool,
        ranges: Vec<(char, char)>,
    },
    /// `^` outside a class: a start-of-path anchor (it is a regexp anchor in Docker).
    Start,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Pattern {
    cleaned: String,
    exclusion: bool,
    kind: Kind,
    tokens: Vec<Tok>,
}

impl Pattern {
    /// patternmatcher's `compile`, producing tokens instead of a regexp. Classes are parsed
    /// as classes (patternmatcher copies them into the regexp character by character).
    fn compile(cleaned: String, exclusion: bool) -> Pattern {
        let chars: Vec<char> = cleaned.chars().collect();
        let mut kind = Kind::Exact;
        let mut tokens = Vec::new();
        let mut i = 0;
        let mut first = true;
        while i < chars.len() {
            let ch = chars[i];
            i += 1;
            match ch {
                '*' if chars.get(i) == Some(&'*') => {
                    i += 1;
                    if chars.get(i) == Some(&'/') {
                        i += 1;
                    }
                    if i >= chars.len() {
                        if kind == Kind::Exact {
                            kind = Kind::Prefix;
                        } else {
                            tokens.push(Tok::AnyRest);
                            kind = Kind::Tokens;
                        }
                    } else {
                        tokens.push(Tok::AnyDirs);
                        kind = Kind::Tokens;
                    }
                    if first {
                        kind = Kind::Suffix;
                    }
                }
                '*' => {
                    tokens.push(Tok::StarNotSlash);
                    kind = Kind::Tokens;
                }
                '?' => {
                    tokens.push(Tok::AnyNotSlash);
                    kind = Kind::Tokens;
                }
                '\\' => {
                    if let Some(&next) = chars.get(i) {
                        i += 1;
                        tokens.push(Tok::Lit(next));
                        kind = Kind::Tokens;
                    } else {
                        tokens.push(Tok::Lit('\\'));
                    }
                }
                '[' => {
                    let mut negated = false;
                    if chars.get(i) == Some(&'^') {
                        negated = true;
                        i += 1;
                    }
                    let mut ranges = Vec::new();
                    while i < chars.len() {
                        if chars[i] == ']' && !ranges.is_empty() {
                            i += 1;
                            break;
                        }
                        let lo = class_member(&chars, &mut i);
                        let mut hi = lo;
                        if chars.get(i) == Some(&'-') {
                            i += 1;
                            hi = class_member(&chars, &mut i);
                        }
                        ranges.push((lo, hi));
                    }
                    tokens.push(Tok::Class { negated, ranges });
                    kind = Kind::Tokens;
                }
                '^' => tokens.push(Tok::Start),
                c => tokens.push(Tok::Lit(c)),
            }
            first = false;
        }
        Pattern {
            cleaned,
            exclusion,
            kind,
            tokens,
        }
    }

    fn matches(&self, path: &str) -> bool {
        match self.kind {
            Kind::Exact => path == self.cleaned,
            Kind::Prefix => {
                let prefix = &self.cleaned[..self.cleaned.len().saturating_sub(2)];
                path.starts_with(prefix)
            }
            Kind::Suffix => {
                let suffix = self.cleaned.get(2..).unwrap_or_default();
                path.ends_with(suffix) || suffix.strip_prefix('/').is_some_and(|rest| path == rest)
            }
            Kind::Tokens => {
                let chars: Vec<char> = path.chars().collect();
                let mut memo = vec![None; (self.tokens.len() + 1) * (chars.len() + 1)];
                match_tokens(&self.tokens, &chars, 0, 0, &mut memo)
            }
        }
    }
}

/// A class member, already validated (an escape takes the next character).
fn class_member(chars: &[char], i: &mut usize) -> char {
    let mut c = chars.get(*i).copied().unwrap_or_default();
    if c == '\\' {
        *i += 1;
        c = chars.get(*i).copied().unwrap_or_default();
    }
    *i += 1;
    c
}

/// Anchored match of `tokens[ti..]` against `s[si..]`, memoised.
fn match_tokens(
    tokens: &[Tok],
    s: &[char],
    ti: usize,
    si: usize,
    memo: &mut [Option<bool>],
) -> bool {
    let key = ti * (s.len() + 1) + si;
    if let Some(known) = memo.get(key).copied().flatten() {
        return known;
    }
    let result = match tokens.get(ti) {
        None => si == s.len(),
        Some(tok) => match tok {
            Tok::Lit(c) => s.get(si) == Some(c) && match_tokens(tokens, s, ti + 1, si + 1, memo),
            Tok::AnyNotSlash => {
                s.get(si).is_some_and(|c| *c != '/')
                    && match_tokens(tokens, s, ti + 1, si + 1, memo)
            }
            Tok::Class { negated, ranges } => {
                s.get(si)
                    .is_some_and(|c| ranges.iter().any(|(lo, hi)| lo <= c && c <= hi) != *negated)
                    && match_tokens(tokens, s, ti + 1, si + 1, memo)
            }
            Tok::Start => si == 0 && match_tokens(tokens, s, ti + 1, si, memo),
            Tok::StarNotSlash => {
                let mut end = si;
                loop {
                    if match_tokens(tokens, s, ti + 1, end, memo) {
                        break true;
                    }
                    match s.get(end) {
                        Some(c) if *c != '/' => end += 1,
                        _ => break false,
                    }
                }
            }
            Tok::AnyRest => {
                let mut end = si;
                loop {
                    if match_tokens(tokens, s, ti + 1, end, memo) {
                        break true;
                    }
                    match s.get(end) {
                        Some(c) if *c != '\n' => end += 1,
                        _ => break false,
                    }
                }
            }
            Tok::AnyDirs => {
                // Either nothing, or any text (no newline) ending in '/'.
                if match_tokens(tokens, s, ti + 1, si, memo) {
                    true
                } else {
                    let mut end = si;
                    loop {
                        match s.get(end) {
                            Some('/') => {
                                end += 1;
                                if match_tokens(tokens, s, ti + 1, end, memo) {
                                    break true;
                                }
                            }
                            Some(c) if *c != '\n' => end += 1,
                            _ => break false,
                        }
                    }
                }
            }
        },
    };
    if let Some(slot) = memo.get_mut(key) {
        *slot = Some(result);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ig(text: &str) -> Ignore {
        Ignore::parse(text).unwrap_or_else(|e| panic!("{e}"))
    }

    fn pats(i: &Ignore) -> Vec<String> {
        i.patterns
            .iter()
            .map(|p| format!("{}{}", if p.exclusion { "!" } else { "" }, p.cleaned))
            .collect()
    }

    #[test]
    fn reading_like_read_all() {
        let i = ig("test1\n/test2\n/a/file/here\n\nlastfile\n# this is a comment\n! /inverted/abs/path\n  spaced  \r\n ./x/../y/ \n  # not a comment\n");
        assert_eq!(
            pats(&i),
            vec![
                "test1",
                "test2",
                "a/file/here",
                "lastfile",
                "!inverted/abs/path",
                "spaced",
                "y",
                "# not a comment"
            ]
        );
        assert_eq!(ig("\u{feff}a\n").patterns[0].cleaned, "a");
        assert_eq!(ig("").patterns.len(), 0);
    }

    #[test]
    fn errors_name_the_line() {
        let e = Ignore::parse("ok\n\n[a-\n").unwrap_err();
        assert_eq!(
            e,
            IgnoreError {
                line: 3,
                message: "syntax error in pattern".into()
            }
        );
        assert_eq!(e.to_string(), ".dockerignore:3: syntax error in pattern");
        assert_eq!(Ignore::parse("a\n!\n").unwrap_err().line, 2);
        assert_eq!(
            Ignore::parse("! \n").unwrap_err().message,
            "illegal exclusion pattern: \"!\""
        );
        for bad in ["[", "[]", "[^]", "[a", "a\\", "[-a]", "[a-]", "x[]]"] {
            assert!(Ignore::parse(bad).is_err(), "{bad:?} should be invalid");
        }
        for good in ["[a]", "[^a]", "[a-c]x", "[\\]]", "]", "a\\*", "[!a]"] {
            assert!(Ignore::parse(good).is_ok(), "{good:?} should be valid");
        }
    }

    #[test]
    fn simple_globs() {
        let i = ig("*.md\n");
        assert!(i.excluded("README.md"));
        assert!(!i.excluded("docs/README.md"));
        assert!(!i.excluded("README.mdx"));
        let i = ig("a?c\n");
        assert!(i.excluded("abc"));
        assert!(!i.excluded("a/c"));
        assert!(!i.excluded("abbc"));
    }

    #[test]
    fn exceptions() {
        let i = ig("*.md\n!README.md\n");
        assert!(i.excluded("CHANGES.md"));
        assert!(!i.excluded("README.md"));
        // Last match wins: a later exclusion re-excludes.
        let i = ig("*.md\n!README.md\nREADME*\n");
        assert!(i.excluded("README.md"));
        let i = ig("!a\na\n");
        assert!(i.excluded("a"));
        let i = ig("a\n!a\n");
        assert!(!i.excluded("a"));
    }

    #[test]
    fn double_star() {
        let i = ig("**/*.o\n");
        assert!(i.excluded("main.o"));
        assert!(i.excluded("src/main.o"));
        assert!(i.excluded("a/b/c/x.o"));
        assert!(!i.excluded("x.oo"));
        let i = ig("**/node_modules\n");
        assert!(i.excluded("node_modules"));
        assert!(i.excluded("web/node_modules"));
        assert!(i.excluded("web/node_modules/left-pad/index.js"));
        assert!(!i.excluded("my_node_modules"));
        let i = ig("a/**/b\n");
        assert!(i.excluded("a/b"));
        assert!(i.excluded("a/x/b"));
        assert!(i.excluded("a/x/y/b"));
        assert!(!i.excluded("a/xb"));
        let i = ig("dist/**\n");
        assert!(i.excluded("dist/x"));
        assert!(i.excluded("dist/x/y"));
        assert!(!i.excluded("dist"));
        assert!(!i.excluded("distx"));
        let i = ig("**\n!keep\n");
        assert!(i.excluded("anything/at/all"));
        assert!(!i.excluded("keep"));
        let i = ig("*/tmp/**\n");
        assert!(i.excluded("a/tmp/x"));
        assert!(!i.excluded("a/b/tmp/x"));
    }

    #[test]
    fn directories_and_parents() {
        let i = ig("build/\n");
        assert!(i.excluded("build"));
        assert!(i.excluded("build/out/app"));
        assert!(!i.excluded("src/build"));
        assert!(!i.excluded("builder"));
        let i = ig("/abs\n");
        assert!(i.excluded("abs"));
        assert!(i.excluded("abs/x"));
        assert!(!i.excluded("x/abs"));
        let i = ig("*/secret\n");
        assert!(i.excluded("a/secret"));
        assert!(i.excluded("a/secret/key"));
        assert!(!i.excluded("a/b/secret"));
        // Path normalisation.
        assert!(ig("a\n").excluded("./a/b/"));
        assert!(!ig("*\n").excluded("."));
        assert!(!ig("*\n").excluded(""));
    }

    #[test]
    fn classes() {
        let i = ig("[a-c]x\n");
        assert!(i.excluded("ax"));
        assert!(i.excluded("cx"));
        assert!(!i.excluded("dx"));
        assert!(!i.excluded("abx"));
        let i = ig("[^a-c]x\n");
        assert!(i.excluded("dx"));
        assert!(!i.excluded("ax"));
        let i = ig("file[0-9].txt\n");
        assert!(i.excluded("file7.txt"));
        assert!(!i.excluded("fileA.txt"));
        let i = ig("[!a]\n");
        assert!(i.excluded("!"));
        assert!(i.excluded("a"));
        assert!(!i.excluded("b"));
        let i = ig("a\\*b\n");
        assert!(i.excluded("a*b"));
        assert!(!i.excluded("axb"));
        let i = ig("[*]\n");
        assert!(i.excluded("*"));
        assert!(!i.excluded("x"));
    }

    #[test]
    fn re_include_inside_excluded_dir() {
        let i = ig("build\n!build/keep.txt\n");
        assert!(i.excluded("build"));
        assert!(i.excluded("build/other.txt"));
        assert!(!i.excluded("build/keep.txt"));
        assert!(!i.skip_dir("build"));
        let i = ig("vendor\n!vendor/pkg/**\n");
        assert!(i.excluded("vendor/other/x"));
        assert!(!i.excluded("vendor/pkg/x/y"));
        assert!(!i.skip_dir("vendor"));
        assert!(i.skip_dir("vendor/other"));
        // A wildcard exception may match anywhere: never skip.
        let i = ig("node_modules\n!**/*.md\n");
        assert!(!i.excluded("node_modules/a/README.md"));
        assert!(!i.skip_dir("node_modules"));
    }

    #[test]
    fn skip_dir_rules() {
        let i = ig("build\ncache/\n");
        assert!(i.skip_dir("build"));
        assert!(i.skip_dir("cache"));
        assert!(!i.skip_dir("src"));
        let i = ig("build\n!other\n");
        assert!(i.skip_dir("build"));
        let i = ig("*\n!src\n");
        assert!(!i.skip_dir("src"));
        assert!(i.skip_dir("docs"));
        assert!(!Ignore::default().skip_dir("x"));
        assert!(!Ignore::default().excluded("x"));
    }

    #[test]
    fn clean_like_go() {
        assert_eq!(clean(""), ".");
        assert_eq!(clean("a/b/"), "a/b");
        assert_eq!(clean("./a//b/./c"), "a/b/c");
        assert_eq!(clean("a/../.."), "..");
        assert_eq!(clean("/../a"), "/a");
        assert_eq!(clean("/"), "/");
        assert_eq!(clean("!/"), "!");
    }
}
