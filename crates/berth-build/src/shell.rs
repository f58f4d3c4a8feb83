//! Docker's word processing for instruction arguments.
//!
//! This reproduces the semantics of BuildKit's `frontend/dockerfile/shell/lex.go`:
//!
//! - single quotes are literal; inside double quotes the escape character escapes only `"`,
//!   `$` and itself (anything else keeps the escape character); outside quotes the escape
//!   character escapes any character and is dropped (a trailing one is dropped too);
//! - `$NAME`, `${NAME}`, `${NAME:-word}`, `${NAME-word}`, `${NAME:+word}`, `${NAME+word}`,
//!   `${NAME:?msg}`, `${NAME?msg}`, `${NAME#pat}`, `${NAME##pat}`, `${NAME%pat}`,
//!   `${NAME%%pat}`, `${NAME/pat/repl}` and `${NAME//pat/repl}`;
//! - patterns know `*` and `?` only (no bracket expressions), with `\` escaping `*`, `?`,
//!   `\`, `}` and `/`;
//! - an unset variable expands to the empty string, a `$` not followed by a name stays
//!   literal, `$1`, `$@`, `$$`... are looked up as variables of those names;
//! - `${#NAME}`, `${NAME:offset}`, `${NAME:=word}` and the like are errors
//!   (`unsupported modifier`), as in BuildKit.
//!
//! Word splitting ([`Lexer::process_words`]) happens after expansion: whitespace coming from
//! a variable's value or a `${...:-default}` splits words, quoted text never does, and empty
//! words are dropped.
//!
//! Known, deliberate differences from BuildKit:
//!
//! - `${NAME` (end of input right after the name) reports `syntax error: missing '}'`
//!   where BuildKit reports an `unsupported modifier` with a replacement character.
//! - The replacement of `${NAME/pat/repl}` is inserted literally; Go's regexp would expand
//!   `$1`-style references in it (only reachable through an escaped `\$`).
//! - Prefix and suffix removal use true shortest/longest shell matching; BuildKit uses a
//!   lazy or greedy regular expression, which gives the same result for the patterns that
//!   occur in practice.

use std::collections::{BTreeMap, HashMap};
use std::hash::BuildHasher;

/// Variables visible to expansion (build args and env of the stage), looked up by name.
///
/// Implemented for `HashMap<String, String>`, `BTreeMap<String, String>`,
/// `Vec<(String, String)>` and `&[(String, String)]` (for the lists the last entry of a name
/// wins, like a sequence of `ENV` instructions).
pub trait Vars {
    /// The value of `name`, or `None` when it is not set (which is different from set to
    /// the empty string for `${NAME-word}` and friends).
    fn get(&self, name: &str) -> Option<String>;
}

impl<S: BuildHasher> Vars for HashMap<String, String, S> {
    fn get(&self, name: &str) -> Option<String> {
        HashMap::get(self, name).cloned()
    }
}

impl Vars for BTreeMap<String, String> {
    fn get(&self, name: &str) -> Option<String> {
        BTreeMap::get(self, name).cloned()
    }
}

impl Vars for &[(String, String)] {
    fn get(&self, name: &str) -> Option<String> {
        self.iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    }
}

impl Vars for Vec<(String, String)> {
    fn get(&self, name: &str) -> Option<String> {
        Vars::get(&self.as_slice(), name)
    }
}

/// No variables at all (everything is unset).
pub(crate) struct NoVars;

impl Vars for NoVars {
    fn get(&self, _name: &str) -> Option<String> {
        None
    }
}

/// An error from word processing: an unterminated quote, a bad substitution, a failing
/// `${NAME:?message}`...
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ShellError {
    /// The human-readable message, e.g.
    /// `failed to process "${A:?}": A: is not allowed to be empty`.
    pub message: String,
}

impl ShellError {
    fn new(message: impl Into<String>) -> Self {
        ShellError {
            message: message.into(),
        }
    }
}

/// Docker's word processor, parameterised by the Dockerfile's escape character.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lexer {
    /// The escape character: `\` (default) or `` ` `` (from the `# escape=` directive).
    pub escape: char,
}

impl Default for Lexer {
    fn default() -> Self {
        Lexer { escape: '\\' }
    }
}

impl Lexer {
    /// One word: quotes removed, escapes applied, variables expanded (no splitting: `a b`
    /// stays one word). This is what Docker applies to ENV/LABEL keys and values, WORKDIR,
    /// USER, COPY sources and destination, flag values...
    pub fn process_word(&self, word: &str, vars: &dyn Vars) -> Result<String, ShellError> {
        run(word, self.escape, Opts::default(), vars).map(|(w, _)| w)
    }

    /// Several words: split on unquoted whitespace after expansion, as Docker does for the
    /// shell form of EXPOSE and friends. Empty words are dropped (`""` alone gives nothing).
    pub fn process_words(&self, text: &str, vars: &dyn Vars) -> Result<Vec<String>, ShellError> {
        run(text, self.escape, Opts::default(), vars).map(|(_, words)| words)
    }

    /// Variable expansion only: quotes are ordinary characters and are kept, escapes are
    /// applied (`\` followed by any character gives that character). This is how BuildKit
    /// expands the body of a COPY/ADD heredoc whose delimiter is unquoted; BuildKit uses `\`
    /// there whatever the escape directive says, so use `Lexer { escape: '\\' }` for parity.
    pub fn expand_keep_quotes(&self, text: &str, vars: &dyn Vars) -> Result<String, ShellError> {
        let opts = Opts {
            skip_quotes: true,
            ..Opts::default()
        };
        run(text, self.escape, opts, vars).map(|(w, _)| w)
    }
}

/// Lexer switches, mirroring the fields of BuildKit's `shell.Lex`.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Opts {
    /// Keep quote characters in the output.
    pub(crate) raw_quotes: bool,
    /// Keep escape characters in the output.
    pub(crate) raw_escapes: bool,
    /// Leave references to unset variables as written.
    pub(crate) skip_unset: bool,
    /// Quotes are not special at all.
    pub(crate) skip_quotes: bool,
    /// `<<` absorbs the whitespace after it into the same word (heredoc detection).
    pub(crate) heredoc_lt: bool,
}

/// Process `text` with the given switches; returns the single-word result and the split
/// words.
pub(crate) fn run(
    text: &str,
    escape: char,
    opts: Opts,
    vars: &dyn Vars,
) -> Result<(String, Vec<String>), ShellError> {
    let mut sw = ShellWord {
        chars: text.chars().collect(),
        pos: 0,
        escape,
        opts,
        raw_escapes: opts.raw_escapes,
        vars,
    };
    sw.process_stop_on(None, opts.raw_escapes)
        .map_err(|e| ShellError::new(format!("failed to process {text:?}: {}", e.message)))
}

/// Accumulates split words, with BuildKit's rules for which characters may split.
#[derive(Default)]
struct Words {
    buf: String,
    words: Vec<String>,
    in_word: bool,
}

impl Words {
    /// A character subject to splitting.
    fn add_char(&mut self, ch: char) {
        if ch.is_whitespace() {
            if self.in_word && !self.buf.is_empty() {
                self.words.push(std::mem::take(&mut self.buf));
                self.in_word = false;
            }
        } else {
            self.add_raw_char(ch);
        }
    }

    /// A character that never splits (escaped).
    fn add_raw_char(&mut self, ch: char) {
        self.buf.push(ch);
        self.in_word = true;
    }

    /// Text subject to splitting (a variable's value).
    fn add_string(&mut self, s: &str) {
        for ch in s.chars() {
            self.add_char(ch);
        }
    }

    /// Text that never splits (quoted).
    fn add_raw_string(&mut self, s: &str) {
        self.buf.push_str(s);
        self.in_word = true;
    }

    fn finish(mut self) -> Vec<String> {
        if !self.buf.is_empty() {
            self.words.push(std::mem::take(&mut self.buf));
        }
        self.words
    }
}

struct ShellWord<'a> {
    chars: Vec<char>,
    pos: usize,
    escape: char,
    opts: Opts,
    /// The current raw-escapes mode (temporarily on inside `#`, `%` and `/` patterns).
    raw_escapes: bool,
    vars: &'a dyn Vars,
}

impl ShellWord<'_> {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn next(&mut self) -> Option<char> {
        let ch = self.chars.get(self.pos).copied();
        if ch.is_some() {
            self.pos += 1;
        }
        ch
    }

    fn lookup(&self, name: &str) -> Option<String> {
        self.vars.get(name)
    }

    /// Process until `stop` (consumed) or the end of input; `stop: None` means the end.
    fn process_stop_on(
        &mut self,
        stop: Option<char>,
        raw_escapes: bool,
    ) -> Result<(String, Vec<String>), ShellError> {
        let saved = self.raw_escapes;
        self.raw_escapes = raw_escapes;
        let mut result = String::new();
        let mut words = Words::default();

        while let Some(ch) = self.peek() {
            if Some(ch) == stop {
                self.next();
                self.raw_escapes = saved;
                return Ok((result, words.finish()));
            }
            match ch {
                '$' => {
                    let value = self.process_dollar()?;
                    result.push_str(&value);
                    words.add_string(&value);
                }
                '\'' if !self.opts.skip_quotes => {
                    let value = self.process_single_quote()?;
                    result.push_str(&value);
                    words.add_raw_string(&value);
                }
                '"' if !self.opts.skip_quotes => {
                    let value = self.process_double_quote()?;
                    result.push_str(&value);
                    words.add_raw_string(&value);
                }
                '<' if self.opts.heredoc_lt => {
                    let value = self.process_possible_heredoc();
                    result.push_str(&value);
                    words.add_raw_string(&value);
                }
                _ => {
                    self.next();
                    if ch == self.escape {
                        if self.raw_escapes {
                            words.add_raw_char(ch);
                            result.push(ch);
                        }
                        match self.next() {
                            None => break,
                            Some(escaped) => {
                                words.add_raw_char(escaped);
                                result.push(escaped);
                            }
                        }
                    } else {
                        words.add_char(ch);
                        result.push(ch);
                    }
                }
            }
        }
        self.raw_escapes = saved;
        if let Some(stop) = stop {
            return Err(ShellError::new(format!(
                "unexpected end of statement while looking for matching {stop}"
            )));
        }
        Ok((result, words.finish()))
    }

    fn process_single_quote(&mut self) -> Result<String, ShellError> {
        let mut result = String::new();
        let open = self.next();
        if self.opts.raw_quotes {
            result.extend(open);
        }
        loop {
            match self.next() {
                None => {
                    return Err(ShellError::new(
                        "unexpected end of statement while looking for matching single-quote",
                    ))
                }
                Some('\'') => {
                    if self.opts.raw_quotes {
                        result.push('\'');
                    }
                    return Ok(result);
                }
                Some(ch) => result.push(ch),
            }
        }
    }

    fn process_double_quote(&mut self) -> Result<String, ShellError> {
        let mut result = String::new();
        let open = self.next();
        if self.opts.raw_quotes {
            result.extend(open);
        }
        loop {
            match self.peek() {
                None => {
                    return Err(ShellError::new(
                        "unexpected end of statement while looking for matching double-quote",
                    ))
                }
                Some('"') => {
                    self.next();
                    if self.opts.raw_quotes {
                        result.push('"');
                    }
                    return Ok(result);
                }
                Some('$') => {
                    let value = self.process_dollar()?;
                    result.push_str(&value);
                }
                Some(_) => {
                    let Some(mut ch) = self.next() else {
                        continue;
                    };
                    if ch == self.escape {
                        if self.raw_escapes {
                            result.push(ch);
                        }
                        match self.peek() {
                            // A trailing escape is dropped (the loop then reports the
                            // missing closing quote).
                            None => continue,
                            Some(c) if c == '"' || c == '$' || c == self.escape => {
                                self.next();
                                ch = c;
                            }
                            // Any other escaped character keeps the escape character.
                            Some(_) => {}
                        }
                    }
                    result.push(ch);
                }
            }
        }
    }

    /// `<` not followed by `<` is itself; `<<` swallows the whitespace after it.
    fn process_possible_heredoc(&mut self) -> String {
        self.next();
        if self.peek() != Some('<') {
            return "<".to_string();
        }
        self.next();
        let mut result = "<<".to_string();
        while let Some(ch) = self.peek() {
            if !ch.is_whitespace() {
                break;
            }
            result.push(ch);
            self.next();
        }
        result
    }

    /// A name after `$`: a run of digits, one special parameter character, or letters,
    /// digits and underscores. Empty when none of those follows.
    fn process_name(&mut self) -> String {
        let mut name = String::new();
        while let Some(ch) = self.peek() {
            if name.is_empty() && ch.is_ascii_digit() {
                while let Some(d) = self.peek() {
                    if !d.is_ascii_digit() {
                        break;
                    }
                    name.push(d);
                    self.next();
                }
                return name;
            }
            if name.is_empty() && is_special_param(ch) {
                self.next();
                return ch.to_string();
            }
            if !ch.is_alphanumeric() && ch != '_' {
                break;
            }
            name.push(ch);
            self.next();
        }
        name
    }

    fn process_dollar(&mut self) -> Result<String, ShellError> {
        self.next(); // the '$'

        if self.peek() != Some('{') {
            let name = self.process_name();
            if name.is_empty() {
                return Ok("$".to_string());
            }
            return Ok(match self.lookup(&name) {
                Some(value) => value,
                None if self.opts.skip_unset => format!("${name}"),
                None => String::new(),
            });
        }

        self.next(); // the '{'
        match self.peek() {
            None => return Err(ShellError::new("syntax error: missing '}'")),
            Some('{' | '}' | ':') => return Err(ShellError::new("syntax error: bad substitution")),
            Some(_) => {}
        }
        let name = self.process_name();
        let Some(ch) = self.next() else {
            return Err(ShellError::new("syntax error: missing '}'"));
        };
        match ch {
            '}' => Ok(match self.lookup(&name) {
                Some(value) => value,
                None if self.opts.skip_unset => format!("${{{name}}}"),
                None => String::new(),
            }),
            ':' | '+' | '-' | '?' | '#' | '%' => {
                let (null_is_unset, modifier, chs) = if ch == ':' {
                    let m = self.next();
                    let mut chs = String::from(":");
                    chs.extend(m);
                    (true, m, chs)
                } else {
                    (false, Some(ch), ch.to_string())
                };
                let raw = matches!(modifier, Some('#' | '%'));
                if null_is_unset && raw {
                    return Err(ShellError::new(format!(
                        "unsupported modifier ({chs}) in substitution"
                    )));
                }
                let word = match self.process_stop_on(Some('}'), raw) {
                    Ok((word, _)) => word,
                    Err(e) => {
                        if self.peek().is_none() {
                            return Err(ShellError::new("syntax error: missing '}'"));
                        }
                        return Err(e);
                    }
                };
                let value = self.lookup(&name);
                let Some(modifier) = modifier else {
                    return Err(ShellError::new("syntax error: missing '}'"));
                };
                if self.opts.skip_unset && value.is_none() {
                    return Ok(format!("${{{name}{chs}{word}}}"));
                }
                let empty = value
                    .as_deref()
                    .is_none_or(|v| null_is_unset && v.is_empty());
                match modifier {
                    '-' => Ok(if empty {
                        word
                    } else {
                        value.unwrap_or_default()
                    }),
                    '+' => Ok(if empty { String::new() } else { word }),
                    '?' => match value {
                        None => Err(ShellError::new(format!(
                            "{name}: {}",
                            if word.is_empty() {
                                "is not allowed to be unset"
                            } else {
                                &word
                            }
                        ))),
                        Some(v) if null_is_unset && v.is_empty() => Err(ShellError::new(format!(
                            "{name}: {}",
                            if word.is_empty() {
                                "is not allowed to be empty"
                            } else {
                                &word
                            }
                        ))),
                        Some(v) => Ok(v),
                    },
                    '#' | '%' => {
                        let (greedy, pattern) = match word.strip_prefix(modifier) {
                            Some(rest) => (true, rest.to_string()),
                            None => (false, word),
                        };
                        let value = value.unwrap_or_default();
                        let tokens = parse_pattern(&pattern).map_err(|e| {
                            ShellError::new(format!(
                                "invalid pattern ({pattern}) in substitution: {e}"
                            ))
                        })?;
                        Ok(if modifier == '#' {
                            trim_prefix(&tokens, &value, greedy)
                        } else {
                            trim_suffix(&tokens, &value, greedy)
                        })
                    }
                    _ => Err(ShellError::new(format!(
                        "unsupported modifier ({chs}) in substitution"
                    ))),
                }
            }
            '/' => {
                let replace_all = self.peek() == Some('/');
                if replace_all {
                    self.next();
                }
                let pattern = match self.process_stop_on(Some('/'), true) {
                    Ok((p, _)) => p,
                    Err(e) => {
                        if self.peek().is_none() {
                            return Err(ShellError::new("syntax error: missing '/' in ${}"));
                        }
                        return Err(e);
                    }
                };
                let replacement = match self.process_stop_on(Some('}'), true) {
                    Ok((r, _)) => r,
                    Err(e) => {
                        if self.peek().is_none() {
                            return Err(ShellError::new("syntax error: missing '}'"));
                        }
                        return Err(e);
                    }
                };
                let value = self.lookup(&name);
                if self.opts.skip_unset && value.is_none() {
                    return Ok(format!("${{{name}/{pattern}/{replacement}}}"));
                }
                let value = value.unwrap_or_default();
                let tokens = parse_pattern(&pattern).map_err(|e| {
                    ShellError::new(format!("invalid pattern ({pattern}) in substitution: {e}"))
                })?;
                Ok(replace(&tokens, &value, &replacement, replace_all))
            }
            other => Err(ShellError::new(format!(
                "unsupported modifier ({other}) in substitution"
            ))),
        }
    }
}

/// POSIX special parameters (`$@`, `$#`...), looked up as variables of that name.
fn is_special_param(ch: char) -> bool {
    matches!(ch, '@' | '*' | '#' | '?' | '-' | '$' | '!' | '0')
}

/// One element of a `${NAME#pattern}`-style pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PatTok {
    /// `*`: any run of characters other than a newline.
    Star,
    /// `?`: any one character other than a newline.
    Any,
    /// A literal character.
    Lit(char),
}

/// Parse a substitution pattern: `*`, `?`, and `\` escaping `*`, `?` or `\` (`\}` and `\/`
/// just drop the backslash). Any other escape is an error, as in BuildKit.
fn parse_pattern(pattern: &str) -> Result<Vec<PatTok>, String> {
    let chars: Vec<char> = pattern.chars().collect();
    let mut out = Vec::with_capacity(chars.len());
    let mut i = 0;
    while i < chars.len() {
        let ch = chars[i];
        i += 1;
        match ch {
            '*' => out.push(PatTok::Star),
            '?' => out.push(PatTok::Any),
            '\\' => match chars.get(i) {
                Some('}' | '/') => {}
                Some(&c @ ('*' | '?' | '\\')) => {
                    out.push(PatTok::Lit(c));
                    i += 1;
                }
                Some(c) => return Err(format!("invalid escape '\\{c}'")),
                None => return Err("invalid escape '\\'".to_string()),
            },
            c => out.push(PatTok::Lit(c)),
        }
    }
    Ok(out)
}

/// Whether `tokens` match all of `s`.
fn pattern_matches(tokens: &[PatTok], s: &[char]) -> bool {
    // Classic wildcard matching with a single backtrack point (the last star), which is
    // complete for patterns made of `*`, `?` and literals. A star cannot cross a newline
    // (Go's `.` does not match one); a newline inside a star's span invalidates it.
    let (mut ti, mut si) = (0usize, 0usize);
    let mut backtrack: Option<(usize, usize)> = None;
    while si < s.len() {
        match tokens.get(ti) {
            Some(PatTok::Star) => {
                backtrack = Some((ti, si));
                ti += 1;
                continue;
            }
            Some(PatTok::Any) if s[si] != '\n' => {
                ti += 1;
                si += 1;
                continue;
            }
            Some(PatTok::Lit(c)) if *c == s[si] => {
                ti += 1;
                si += 1;
                continue;
            }
            _ => {}
        }
        match backtrack {
            Some((star_ti, star_si)) if s[star_si] != '\n' => {
                backtrack = Some((star_ti, star_si + 1));
                ti = star_ti + 1;
                si = star_si + 1;
            }
            _ => return false,
        }
    }
    tokens[ti..].iter().all(|t| *t == PatTok::Star)
}

fn trim_prefix(tokens: &[PatTok], value: &str, greedy: bool) -> String {
    let chars: Vec<char> = value.chars().collect();
    let n = chars.len();
    let mut ends: Box<dyn Iterator<Item = usize>> = if greedy {
        Box::new((0..=n).rev())
    } else {
        Box::new(0..=n)
    };
    match ends.find(|&end| pattern_matches(tokens, &chars[..end])) {
        Some(end) => chars[end..].iter().collect(),
        None => value.to_string(),
    }
}

fn trim_suffix(tokens: &[PatTok], value: &str, greedy: bool) -> String {
    let chars: Vec<char> = value.chars().collect();
    let n = chars.len();
    let mut starts: Box<dyn Iterator<Item = usize>> = if greedy {
        Box::new(0..=n)
    } else {
        Box::new((0..=n).rev())
    };
    match starts.find(|&start| pattern_matches(tokens, &chars[start..])) {
        Some(start) => chars[..start].iter().collect(),
        None => value.to_string(),
    }
}

/// The leftmost match starting at or after `from`, longest at that start.
fn find_match(tokens: &[PatTok], chars: &[char], from: usize) -> Option<(usize, usize)> {
    (from..=chars.len()).find_map(|start| {
        (start..=chars.len())
            .rev()
            .find(|&end| pattern_matches(tokens, &chars[start..end]))
            .map(|end| (start, end))
    })
}

/// `${NAME/pattern/replacement}` and `${NAME//pattern/replacement}`, with Go's regexp
/// replacement rules for empty matches.
fn replace(tokens: &[PatTok], value: &str, replacement: &str, all: bool) -> String {
    let chars: Vec<char> = value.chars().collect();
    if !all {
        return match find_match(tokens, &chars, 0) {
            Some((start, end)) => {
                let mut out: String = chars[..start].iter().collect();
                out.push_str(replacement);
                out.extend(&chars[end..]);
                out
            }
            None => value.to_string(),
        };
    }
    let mut out = String::new();
    let mut search = 0usize;
    let mut last_end = 0usize;
    while search <= chars.len() {
        let Some((start, end)) = find_match(tokens, &chars, search) else {
            break;
        };
        out.extend(&chars[last_end..start]);
        // No replacement for an empty match right after a previous match.
        if end > last_end || start == 0 {
            out.push_str(replacement);
        }
        last_end = end;
        search = if search + 1 > end { search + 1 } else { end };
    }
    out.extend(&chars[last_end.min(chars.len())..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env() -> Vec<(String, String)> {
        [
            ("PWD", "/home"),
            ("SHELL", "bash"),
            ("KOREAN", "한국어"),
            ("EMPTY", ""),
            ("SPACED", "a b  c"),
            ("FILE", "archive.tar.gz"),
            ("PATHV", "/usr/local/bin"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    fn word(s: &str) -> String {
        Lexer::default()
            .process_word(s, &env())
            .unwrap_or_else(|e| panic!("{s:?}: {e}"))
    }

    fn words(s: &str) -> Vec<String> {
        Lexer::default()
            .process_words(s, &env())
            .unwrap_or_else(|e| panic!("{s:?}: {e}"))
    }

    fn err(s: &str) -> String {
        match Lexer::default().process_word(s, &env()) {
            Ok(w) => panic!("{s:?} should fail, gave {w:?}"),
            Err(e) => e.message,
        }
    }

    /// Cases from BuildKit's `envVarTest` (PWD=/home, SHELL=bash, KOREAN=한국어, NULL=).
    #[test]
    fn buildkit_env_var_table() {
        let vars: Vec<(String, String)> = [
            ("PWD", "/home"),
            ("SHELL", "bash"),
            ("KOREAN", "한국어"),
            ("NULL", ""),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let lex = Lexer::default();
        let cases: &[(&str, Option<&str>)] = &[
            ("hello", Some("hello")),
            ("he'll'o", Some("hello")),
            ("he'llo", None),
            ("he\\'llo", Some("he'llo")),
            ("he\\\\'llo", None),
            ("abc\\tdef", Some("abctdef")),
            ("\"abc\\tdef\"", Some("abc\\tdef")),
            ("\"abc\\\\tdef\"", Some("abc\\tdef")),
            ("'abc\\tdef'", Some("abc\\tdef")),
            ("hello\\", Some("hello")),
            ("hello\\\\", Some("hello\\")),
            ("\"hello", None),
            ("\"hello\\\"", None),
            ("\"hel'lo\"", Some("hel'lo")),
            ("'hello", None),
            ("'hello\\'", Some("hello\\")),
            ("'hello\\there'", Some("hello\\there")),
            ("'hello\\\\there'", Some("hello\\\\there")),
            ("\"''\"", Some("''")),
            ("$.", Some("$.")),
            ("he$1x", Some("hex")),
            ("he$.x", Some("he$.x")),
            ("he$pwd.", Some("he.")),
            ("he$PWD", Some("he/home")),
            ("he\\$PWD", Some("he$PWD")),
            ("he\\\\$PWD", Some("he\\/home")),
            ("\"he\\$PWD\"", Some("he$PWD")),
            ("\"he\\\\$PWD\"", Some("he\\/home")),
            ("\\${}", Some("${}")),
            ("\\${}aaa", Some("${}aaa")),
            ("he\\${}", Some("he${}")),
            ("he\\${}xx", Some("he${}xx")),
            ("${}", None),
            ("${}aaa", None),
            ("he${}", None),
            ("he${}xx", None),
            ("he${hi}", Some("he")),
            ("he${hi}xx", Some("hexx")),
            ("he${PWD}", Some("he/home")),
            ("he${.}", None),
            ("he${XXX:-000}xx", Some("he000xx")),
            ("he${PWD:-000}xx", Some("he/homexx")),
            ("he${XXX:-$PWD}xx", Some("he/homexx")),
            ("he${XXX:-${PWD:-yyy}}xx", Some("he/homexx")),
            ("he${XXX:-${YYY:-yyy}}xx", Some("heyyyxx")),
            ("he${XXX:YYY}", None),
            ("he${XXX?}", None),
            ("he${XXX:?}", None),
            ("he${PWD?}", Some("he/home")),
            ("he${PWD:?}", Some("he/home")),
            ("he${NULL?}", Some("he")),
            ("he${NULL:?}", None),
            ("he${XXX:+${PWD}}xx", Some("hexx")),
            ("he${PWD:+${XXX}}xx", Some("hexx")),
            ("he${PWD:+${SHELL}}xx", Some("hebashxx")),
            ("he${XXX:+000}xx", Some("hexx")),
            ("he${PWD:+000}xx", Some("he000xx")),
            ("'he${XX}'", Some("he${XX}")),
            ("\"he${PWD}\"", Some("he/home")),
            ("\"he'$PWD'\"", Some("he'/home'")),
            ("\"$PWD\"", Some("/home")),
            ("'$PWD'", Some("$PWD")),
            ("'\\$PWD'", Some("\\$PWD")),
            ("'\"hello\"'", Some("\"hello\"")),
            ("'he\\$PWD'", Some("he\\$PWD")),
            ("he${PWD", None),
            ("he${PWD:=000}xx", None),
            ("he${PWD:+${PWD}:}xx", Some("he/home:xx")),
            ("he${XXX:-\\$PWD:}xx", Some("he$PWD:xx")),
            ("he${XXX:-\\${PWD}z}xx", Some("he${PWDz}xx")),
            ("안녕하세요", Some("안녕하세요")),
            ("안'녕'하세요", Some("안녕하세요")),
            ("안'녕하세요", None),
            ("안녕\\'하세요", Some("안녕'하세요")),
            ("안\\\\'녕하세요", None),
            ("안녕\\t하세요", Some("안녕t하세요")),
            ("\"안녕\\t하세요\"", Some("안녕\\t하세요")),
            ("'안녕\\t하세요", None),
            ("안녕하세요\\", Some("안녕하세요")),
            ("안녕하세요\\\\", Some("안녕하세요\\")),
            ("\"안녕하세요", None),
            ("\"안녕하세요\\\"", None),
            ("\"안녕'하세요\"", Some("안녕'하세요")),
            ("'안녕하세요'", Some("안녕하세요")),
            ("'안녕하세요\\'", Some("안녕하세요\\")),
            ("$KOREAN", Some("한국어")),
            ("안녕$KOREAN", Some("안녕한국어")),
        ];
        for (input, expected) in cases {
            let got = lex.process_word(input, &vars);
            match expected {
                Some(e) => assert_eq!(got.as_deref(), Ok(*e), "input {input:?}"),
                None => assert!(got.is_err(), "input {input:?} gave {got:?}"),
            }
        }
    }

    /// Cases from BuildKit's `wordsTest`.
    #[test]
    fn buildkit_words_table() {
        let vars: Vec<(String, String)> = [
            ("hi", "hi"),
            ("space", "abc  def"),
            ("leading", "  ab c"),
            ("trailing", "ab c   "),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let lex = Lexer::default();
        let cases: &[(&str, &[&str])] = &[
            ("hello", &["hello"]),
            ("hello${hi}bye", &["hellohibye"]),
            ("hello${space}bye", &["helloabc", "defbye"]),
            ("hello\"${space}\"bye", &["helloabc  defbye"]),
            ("hello \"${space}\"bye", &["hello", "abc  defbye"]),
            ("hello${leading}def", &["hello", "ab", "cdef"]),
            ("hello\"${leading}\" def", &["hello  ab c", "def"]),
            ("hello\"${leading}\"", &["hello  ab c"]),
            ("hello${leading}", &["hello", "ab", "c"]),
            ("hello${trailing}", &["helloab", "c"]),
            ("hello${trailing}d", &["helloab", "c", "d"]),
            ("hello\"${trailing}\"d", &["helloab c   d"]),
            ("hel\"lo${trailing}\"", &["helloab c   "]),
            ("hello\" there  \"", &["hello there  "]),
            ("hello there     ", &["hello", "there"]),
            ("hello\\ there", &["hello there"]),
            ("hello\\\" there", &["hello\"", "there"]),
            ("hello\"\\\\there\"", &["hello\\there"]),
            ("hello\"\\there\"", &["hello\\there"]),
            ("hello'\\\\there'", &["hello\\\\there"]),
            ("hello'\\there'", &["hello\\there"]),
            ("hello'$there'", &["hello$there"]),
        ];
        for (input, expected) in cases {
            let got = lex
                .process_words(input, &vars)
                .unwrap_or_else(|e| panic!("{input:?}: {e}"));
            assert_eq!(got, *expected, "input {input:?}");
        }
        assert!(lex.process_words("hello\" there", &vars).is_err());
    }

    #[test]
    fn plain_and_quotes() {
        assert_eq!(word("hello"), "hello");
        assert_eq!(word("he'll'o"), "hello");
        assert_eq!(word("'$PWD'"), "$PWD");
        assert_eq!(word("\"$PWD\""), "/home");
        assert_eq!(word("a b"), "a b");
        assert_eq!(word("\"a  b\""), "a  b");
        assert_eq!(word("'a\\b'"), "a\\b");
        assert_eq!(word("\"it's\""), "it's");
        assert_eq!(word("'say \"hi\"'"), "say \"hi\"");
    }

    #[test]
    fn escapes() {
        assert_eq!(word("\\$PWD"), "$PWD");
        assert_eq!(word("a\\nb"), "anb");
        assert_eq!(word("\"a\\nb\""), "a\\nb");
        assert_eq!(word("\"a\\\"b\""), "a\"b");
        assert_eq!(word("\"\\$PWD\""), "$PWD");
        assert_eq!(word("\"a\\\\b\""), "a\\b");
        assert_eq!(word("\\'x"), "'x");
        assert_eq!(word("abc\\"), "abc");
        assert_eq!(word("a\\ b"), "a b");
    }

    #[test]
    fn backtick_escape() {
        let lex = Lexer { escape: '`' };
        let vars = env();
        assert_eq!(
            lex.process_word("C:\\dir\\$PWD", &vars).unwrap(),
            "C:\\dir\\/home"
        );
        assert_eq!(lex.process_word("`$PWD", &vars).unwrap(), "$PWD");
        assert_eq!(lex.process_word("\"a`\"b\"", &vars).unwrap(), "a\"b");
        assert_eq!(lex.process_word("\"a\\\"", &vars).unwrap(), "a\\");
        assert_eq!(
            lex.process_words("a` b c", &vars).unwrap(),
            vec!["a b".to_string(), "c".to_string()]
        );
    }

    #[test]
    fn simple_variables() {
        assert_eq!(word("$PWD"), "/home");
        assert_eq!(word("${PWD}"), "/home");
        assert_eq!(word("x${PWD}y"), "x/homey");
        assert_eq!(word("$PWD/x"), "/home/x");
        assert_eq!(word("$KOREAN"), "한국어");
        assert_eq!(word("$UNSET"), "");
        assert_eq!(word("${UNSET}x"), "x");
        assert_eq!(word("$"), "$");
        assert_eq!(word("a$"), "a$");
        assert_eq!(word("$ x"), "$ x");
        assert_eq!(word("$/"), "$/");
        assert_eq!(word("$1"), "");
        assert_eq!(word("$12x"), "x");
        assert_eq!(word("$@"), "");
        assert_eq!(word("$$"), "");
        assert_eq!(word("$PWD_X"), "");
        assert_eq!(word("${PWD}_X"), "/home_X");
    }

    #[test]
    fn default_and_alternative() {
        assert_eq!(word("${UNSET:-def}"), "def");
        assert_eq!(word("${EMPTY:-def}"), "def");
        assert_eq!(word("${PWD:-def}"), "/home");
        assert_eq!(word("${UNSET-def}"), "def");
        assert_eq!(word("${EMPTY-def}"), "");
        assert_eq!(word("${PWD-def}"), "/home");
        assert_eq!(word("${UNSET:+alt}"), "");
        assert_eq!(word("${EMPTY:+alt}"), "");
        assert_eq!(word("${PWD:+alt}"), "alt");
        assert_eq!(word("${UNSET+alt}"), "");
        assert_eq!(word("${EMPTY+alt}"), "alt");
        assert_eq!(word("${PWD+alt}"), "alt");
        assert_eq!(word("${UNSET:-$PWD/x}"), "/home/x");
        assert_eq!(word("${UNSET:-${SHELL:-no}}"), "bash");
        assert_eq!(word("${UNSET:-'a}b'}"), "a}b");
        assert_eq!(word("${UNSET:-a\\}b}"), "a}b");
        assert_eq!(word("${UNSET:-}"), "");
    }

    #[test]
    fn required() {
        assert_eq!(word("${PWD:?oops}"), "/home");
        assert_eq!(word("${EMPTY?oops}"), "");
        assert_eq!(
            err("${UNSET:?}"),
            "failed to process \"${UNSET:?}\": UNSET: is not allowed to be unset"
        );
        assert_eq!(
            err("${EMPTY:?}"),
            "failed to process \"${EMPTY:?}\": EMPTY: is not allowed to be empty"
        );
        assert!(err("${UNSET?custom message}").ends_with("UNSET: custom message"));
        assert!(err("${EMPTY:?need it}").ends_with("EMPTY: need it"));
    }

    #[test]
    fn prefix_suffix_removal() {
        assert_eq!(word("${FILE#*.}"), "tar.gz");
        assert_eq!(word("${FILE##*.}"), "gz");
        assert_eq!(word("${FILE%.*}"), "archive.tar");
        assert_eq!(word("${FILE%%.*}"), "archive");
        assert_eq!(word("${PATHV#/usr}"), "/local/bin");
        assert_eq!(word("${PATHV%/bin}"), "/usr/local");
        assert_eq!(word("${PATHV#nomatch}"), "/usr/local/bin");
        assert_eq!(word("${PATHV##*/}"), "bin");
        assert_eq!(word("${PATHV%/*}"), "/usr/local");
        assert_eq!(word("${FILE#?rch}"), "ive.tar.gz");
        assert_eq!(word("${UNSET#x}"), "");
        assert_eq!(word("${FILE#*}"), "archive.tar.gz");
        assert_eq!(word("${FILE##*}"), "");
        // Escaped wildcard is literal.
        let vars = vec![("S".to_string(), "a*b*c".to_string())];
        let lex = Lexer::default();
        assert_eq!(lex.process_word("${S#a\\*}", &vars).unwrap(), "b*c");
        assert_eq!(lex.process_word("${S%\\*c}", &vars).unwrap(), "a*b");
        assert!(lex.process_word("${S#\\x}", &vars).is_err());
        assert!(err("${PWD:#x}").contains("unsupported modifier (:#) in substitution"));
        assert!(err("${PWD:%x}").contains("unsupported modifier (:%) in substitution"));
    }

    #[test]
    fn replacement() {
        assert_eq!(word("${PATHV/local/LOCAL}"), "/usr/LOCAL/bin");
        assert_eq!(word("${PATHV/\\//:}"), ":usr/local/bin");
        assert_eq!(word("${PATHV//\\//:}"), ":usr:local:bin");
        assert_eq!(word("${FILE/a*./X}"), "Xgz");
        assert_eq!(word("${FILE//a/A}"), "Archive.tAr.gz");
        assert_eq!(word("${FILE/zzz/A}"), "archive.tar.gz");
        assert_eq!(word("${FILE/?/X}"), "Xrchive.tar.gz");
        assert_eq!(word("${UNSET/a/b}"), "");
        assert_eq!(word("${SHELL///-}"), "-b-a-s-h-");
        assert!(err("${PWD/abc").contains("missing '/' in ${}"));
        assert!(err("${PWD/abc/x").contains("missing '}'"));
    }

    #[test]
    fn substitution_errors() {
        assert!(err("${}").contains("bad substitution"));
        assert!(err("${:x}").contains("bad substitution"));
        assert!(err("${{x}").contains("bad substitution"));
        assert!(err("${").contains("missing '}'"));
        assert!(err("${PWD").contains("missing '}'"));
        assert!(err("${PWD:-abc").contains("missing '}'"));
        assert!(err("${#PWD}").contains("unsupported modifier (P) in substitution"));
        assert!(err("${PWD:=x}").contains("unsupported modifier (:=) in substitution"));
        assert!(err("${PWD:1}").contains("unsupported modifier (:1) in substitution"));
        assert!(err("${PWD=x}").contains("unsupported modifier (=) in substitution"));
        assert!(err("'abc").contains("matching single-quote"));
        assert!(err("\"abc").contains("matching double-quote"));
        assert!(err("\"abc\\").contains("matching double-quote"));
    }

    #[test]
    fn splitting() {
        assert_eq!(words("a b  c"), vec!["a", "b", "c"]);
        assert_eq!(words("  a  "), vec!["a"]);
        assert_eq!(words("\"a b\" c"), vec!["a b", "c"]);
        assert_eq!(words("a\\ b c"), vec!["a b", "c"]);
        assert_eq!(words("$SPACED"), vec!["a", "b", "c"]);
        assert_eq!(words("\"$SPACED\""), vec!["a b  c"]);
        assert_eq!(words("x${SPACED}y"), vec!["xa", "b", "cy"]);
        assert_eq!(words("${UNSET:-1 2} 3"), vec!["1", "2", "3"]);
        assert_eq!(words("a \"\" b"), vec!["a", "b"]);
        assert_eq!(words("''"), Vec::<String>::new());
        assert_eq!(words(""), Vec::<String>::new());
        assert_eq!(words("80/tcp 443"), vec!["80/tcp", "443"]);
    }

    #[test]
    fn vars_impls() {
        let mut hm = HashMap::new();
        hm.insert("A".to_string(), "1".to_string());
        let mut bt = BTreeMap::new();
        bt.insert("A".to_string(), "2".to_string());
        let list = vec![
            ("A".to_string(), "3".to_string()),
            ("A".to_string(), "4".to_string()),
        ];
        let slice: &[(String, String)] = &list;
        let lex = Lexer::default();
        assert_eq!(lex.process_word("$A", &hm).unwrap(), "1");
        assert_eq!(lex.process_word("$A", &bt).unwrap(), "2");
        assert_eq!(lex.process_word("$A", &list).unwrap(), "4");
        assert_eq!(lex.process_word("$A", &slice).unwrap(), "4");
        assert_eq!(lex.process_word("${B-unset}", &slice).unwrap(), "unset");
    }

    #[test]
    fn keep_quotes_expansion() {
        let lex = Lexer::default();
        let vars = env();
        assert_eq!(
            lex.expand_keep_quotes("echo \"$SHELL\" '$PWD'\n", &vars)
                .unwrap(),
            "echo \"bash\" '/home'\n"
        );
        assert_eq!(
            lex.expand_keep_quotes("printf \"a\\nb\"", &vars).unwrap(),
            "printf \"anb\""
        );
        assert_eq!(
            lex.expand_keep_quotes("it's $UNSET.", &vars).unwrap(),
            "it's ."
        );
    }

    #[test]
    fn raw_modes_for_heredoc_detection() {
        let opts = Opts {
            raw_quotes: true,
            raw_escapes: true,
            skip_unset: true,
            heredoc_lt: true,
            ..Opts::default()
        };
        let (_, w) = run(
            "RUN cat <<'EOF' \"a b\" \\x $X ${Y:-z}",
            '\\',
            opts,
            &NoVars,
        )
        .unwrap();
        assert_eq!(
            w,
            vec!["RUN", "cat", "<<'EOF'", "\"a b\"", "\\x", "$X", "${Y:-z}"]
        );
        let (_, w) = run("cat << EOF", '\\', opts, &NoVars).unwrap();
        assert_eq!(w, vec!["cat", "<< EOF"]);
    }

    #[test]
    fn pattern_engine() {
        let p = parse_pattern("a*c").unwrap();
        let s = |x: &str| x.chars().collect::<Vec<_>>();
        assert!(pattern_matches(&p, &s("abc")));
        assert!(pattern_matches(&p, &s("ac")));
        assert!(pattern_matches(&p, &s("abcbc")));
        assert!(!pattern_matches(&p, &s("abcb")));
        assert!(!pattern_matches(&p, &s("a\nc")));
        let p = parse_pattern("*").unwrap();
        assert!(pattern_matches(&p, &s("")));
        let p = parse_pattern("??").unwrap();
        assert!(pattern_matches(&p, &s("ab")));
        assert!(!pattern_matches(&p, &s("abc")));
    }
}
