//! The Dockerfile parser.
//!
//! [`parse`] turns the text of a Dockerfile into typed instructions grouped in build
//! stages, following what BuildKit's Dockerfile frontend (`frontend/dockerfile/parser` and
//! `frontend/dockerfile/instructions`) accepts and rejects:
//!
//! - parser directives (`# escape=`, `# syntax=`, `# check=`) at the very top only;
//! - comment lines (first non-blank character `#`), dropped even inside a continuation;
//! - line continuation with the escape character as the last non-blank character (not when
//!   it is itself escaped), blank lines inside a continuation dropped;
//! - case-insensitive keywords, `--flag=value` flags before the arguments;
//! - JSON (exec) form when the arguments parse as a JSON array of strings, shell form
//!   otherwise (a JSON array holding something else than strings is an error);
//! - heredocs (`<<EOF`, `<<-EOF`, `<<"EOF"`, `<<'EOF'`) in RUN, COPY and ADD (also as an
//!   ONBUILD trigger), read after the instruction's line;
//! - only ARG before the first FROM.
//!
//! Arguments are kept raw (quotes and variables included): expansion happens at build time
//! with [`crate::shell::Lexer`], against the stage's variables.
//!
//! Error lines are 1-based and name the line where the faulty instruction starts. A
//! Dockerfile without any FROM (an empty one included) fails with
//! `no build stage in Dockerfile`, reported on line 1.
//!
//! Where this parser is stricter than Docker (it reports at parse time what Docker reports
//! when the instruction runs, or silently ignores): unknown flags on STOPSIGNAL and on
//! `HEALTHCHECK NONE` are errors, an ONBUILD trigger is parsed (and checked) as an
//! instruction, `COPY --parents` and `--exclude` are refused as unsupported, and RUN, CMD
//! and ENTRYPOINT need an argument (`CMD []` and `ENTRYPOINT []` are accepted).

use std::collections::BTreeMap;
use std::time::Duration;

use crate::shell::{self, NoVars, Opts};

/// A parsed Dockerfile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dockerfile {
    /// The escape character (`\` or `` ` `` from `# escape=` directive).
    pub escape: char,
    /// ARG instructions before the first FROM (only ARG is allowed there; anything else is
    /// an error naming the line).
    pub meta_args: Vec<Instruction>,
    /// Build stages in order, each starting at its FROM.
    pub stages: Vec<Stage>,
}

/// One build stage: a FROM and the instructions up to the next FROM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stage {
    /// The stage's FROM instruction, whose `cmd` is always [`Command::From`].
    pub from: Instruction,
    /// The instructions after the FROM, in order.
    pub instructions: Vec<Instruction>,
}

/// One instruction with its position in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instruction {
    /// 1-based line where the instruction starts.
    pub line: usize,
    /// 1-based line where it ends (after continuations and heredoc bodies, terminators
    /// included).
    pub end_line: usize,
    /// The instruction as written on one line: continuations joined (the way docker shows
    /// it in build output `Step 2/5 : RUN echo hi` and in history), without the heredoc
    /// bodies, trimmed.
    pub original: String,
    /// What the instruction says.
    pub cmd: Command,
}

impl Instruction {
    /// The instruction's text followed by its heredoc bodies, each as `\n<body><NAME>`:
    /// the form Docker stores for an ONBUILD trigger in the image config (and that
    /// [`parse`] reads back). Without heredocs this is `original`.
    pub fn text_with_heredocs(&self) -> String {
        let heredocs = match &self.cmd {
            Command::Run { heredocs, .. }
            | Command::Copy { heredocs, .. }
            | Command::Add { heredocs, .. } => heredocs.as_slice(),
            _ => &[],
        };
        let mut text = self.original.clone();
        for h in heredocs {
            text.push('\n');
            text.push_str(&h.content);
            if !h.content.is_empty() && !h.content.ends_with('\n') {
                text.push('\n');
            }
            text.push_str(&h.name);
        }
        text
    }
}

/// The two ways of writing a command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShellOrExec {
    /// Shell form: the raw text, run as `/bin/sh -c TEXT` (or with SHELL) at build time.
    Shell(String),
    /// Exec form: the parsed JSON array.
    Exec(Vec<String>),
}

/// A heredoc attached to RUN, COPY or ADD.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heredoc {
    /// The delimiter word with quotes removed, e.g. `EOF`.
    pub name: String,
    /// The body, each line ending in `\n` (leading tabs stripped when `<<-`). Line endings
    /// are kept as written (a CRLF file gives `\r\n`).
    pub content: String,
    /// False when the delimiter was quoted (`<<"EOF"`, `<<'EOF'`, or any part quoted).
    pub expand: bool,
    /// `<<-`: leading tabs were stripped from the body and the terminator.
    pub chomp: bool,
}

/// A typed instruction. Words are raw: quotes and `$VAR` references are kept, to be
/// processed by [`crate::shell::Lexer`] when the instruction runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `FROM [--platform=P] image [AS name]`.
    From {
        /// The base image reference (or an earlier stage's name), raw.
        image: String,
        /// The stage name, lowercased like docker.
        stage_name: Option<String>,
        /// `--platform`, raw (it may use build args).
        platform: Option<String>,
    },
    /// `RUN [flags] command`.
    Run {
        /// The command. With heredocs it is the shell-form text of the line (`<<EOF`,
        /// `cat <<EOF >/x`...), the bodies being in `heredocs`.
        cmd: ShellOrExec,
        /// The heredocs of the line, in order.
        heredocs: Vec<Heredoc>,
        /// The `--mount`, `--network` and `--security` flags in order, as (name without
        /// the leading dashes, raw value), e.g. `("network", "none")`. `--mount` may repeat.
        flags: Vec<(String, String)>,
    },
    /// `COPY [flags] src... dest`.
    Copy {
        /// The sources, raw; a heredoc source appears as its name (its body is in
        /// `heredocs`).
        srcs: Vec<String>,
        /// The destination, raw.
        dest: String,
        /// `--from` (a stage name, index or image).
        from: Option<String>,
        /// `--chown`.
        chown: Option<String>,
        /// `--chmod`.
        chmod: Option<String>,
        /// `--link`.
        link: bool,
        /// The heredocs of the line, in order.
        heredocs: Vec<Heredoc>,
    },
    /// `ADD [flags] src... dest`.
    Add {
        /// The sources, raw; a heredoc source appears as its name.
        srcs: Vec<String>,
        /// The destination, raw.
        dest: String,
        /// `--chown`.
        chown: Option<String>,
        /// `--chmod`.
        chmod: Option<String>,
        /// `--checksum`.
        checksum: Option<String>,
        /// `--keep-git-dir`.
        keep_git_dir: bool,
        /// `--link`.
        link: bool,
        /// The heredocs of the line, in order.
        heredocs: Vec<Heredoc>,
    },
    /// `ENV k=v ...` or `ENV k v`: raw (key, value) words, quotes kept.
    Env(Vec<(String, String)>),
    /// `ARG name[=default] ...`: name and raw default.
    Arg(Vec<(String, Option<String>)>),
    /// `WORKDIR path` (the rest of the line).
    Workdir(String),
    /// `USER user[:group]` (the rest of the line).
    User(String),
    /// `STOPSIGNAL signal` (the rest of the line).
    StopSignal(String),
    /// `MAINTAINER name` (deprecated; the rest of the line).
    Maintainer(String),
    /// `CMD`.
    Cmd(ShellOrExec),
    /// `ENTRYPOINT`.
    Entrypoint(ShellOrExec),
    /// `SHELL ["executable", "args"...]` (JSON form only).
    Shell(Vec<String>),
    /// `EXPOSE port...`: the raw words, sorted like docker does.
    Expose(Vec<String>),
    /// `VOLUME`: JSON array or whitespace-separated raw words.
    Volume(Vec<String>),
    /// `LABEL k=v ...` (or the old `LABEL k v`): raw (key, value) words.
    Label(Vec<(String, String)>),
    /// `HEALTHCHECK`; `None` is `HEALTHCHECK NONE`.
    Healthcheck(Option<Health>),
    /// `ONBUILD trigger`: the trigger parsed as an instruction (same lines as the ONBUILD;
    /// its `original` is the trigger text).
    Onbuild(Box<Instruction>),
}

/// `HEALTHCHECK [flags] CMD ...`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Health {
    /// The test command (shell form is stored as `CMD-SHELL` in the image config).
    pub test: ShellOrExec,
    /// `--interval`, when given (a zero duration means "the default", like docker).
    pub interval: Option<Duration>,
    /// `--timeout`, when given.
    pub timeout: Option<Duration>,
    /// `--start-period`, when given.
    pub start_period: Option<Duration>,
    /// `--start-interval`, when given.
    pub start_interval: Option<Duration>,
    /// `--retries`, when given.
    pub retries: Option<u32>,
}

/// A Dockerfile syntax error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Dockerfile:{line}: {}{message}", instruction.as_ref().map(|i| format!("{i}: ")).unwrap_or_default())]
pub struct ParseError {
    /// The 1-based line where the faulty instruction starts.
    pub line: usize,
    /// The upper-case keyword of the faulty instruction, when there is one.
    pub instruction: Option<String>,
    /// What is wrong.
    pub message: String,
}

impl ParseError {
    fn new(line: usize, instruction: Option<&str>, message: impl Into<String>) -> Self {
        ParseError {
            line,
            instruction: instruction.map(str::to_string),
            message: message.into(),
        }
    }
}

/// Parse a Dockerfile.
pub fn parse(text: &str) -> Result<Dockerfile, ParseError> {
    let lines = split_lines(text);
    let mut directives = Directives::default();
    let mut escape = '\\';
    let mut meta_args = Vec::new();
    let mut stages: Vec<Stage> = Vec::new();

    let mut idx = 0;
    while idx < lines.len() {
        let number = idx + 1;
        let mut raw = lines[idx].text;
        if idx == 0 {
            raw = raw.strip_prefix('\u{feff}').unwrap_or(raw);
        }
        idx += 1;

        let line = trim_newline(raw).trim_start();
        if let Some(value) = directives
            .parse_line(line)
            .map_err(|m| ParseError::new(number, None, m))?
        {
            escape = match value.as_str() {
                "\\" => '\\',
                "`" => '`',
                other => {
                    return Err(ParseError::new(
                        number,
                        None,
                        format!("invalid escape token '{other}' does not match ` or \\"),
                    ))
                }
            };
        }
        let processed = if line.starts_with('#') { "" } else { line };
        let (first, mut end_of_line) = trim_continuation(processed, escape);
        if end_of_line && first.is_empty() {
            continue;
        }
        let mut logical = first.to_string();
        let start = number;
        while !end_of_line && idx < lines.len() {
            let cont = trim_newline(lines[idx].text);
            idx += 1;
            if is_comment(cont) || cont.trim_start().is_empty() {
                continue;
            }
            let (text, eol) = trim_continuation(cont, escape);
            logical.push_str(text);
            end_of_line = eol;
        }

        let mut reader = BodyReader {
            lines: &lines,
            idx: &mut idx,
        };
        let ins = parse_instruction(&logical, start, escape, &mut reader)?;

        match (&ins.cmd, stages.last_mut()) {
            (Command::From { .. }, _) => stages.push(Stage {
                from: ins,
                instructions: Vec::new(),
            }),
            (_, Some(stage)) => stage.instructions.push(ins),
            (Command::Arg(_), None) => meta_args.push(ins),
            (_, None) => {
                let keyword = keyword_of(&ins.original);
                return Err(ParseError::new(
                    ins.line,
                    Some(&keyword),
                    "no build stage in current context (only ARG may precede the first FROM)",
                ));
            }
        }
    }

    if stages.is_empty() {
        return Err(ParseError::new(1, None, "no build stage in Dockerfile"));
    }
    Ok(Dockerfile {
        escape,
        meta_args,
        stages,
    })
}

/// A physical line and whether it ended with `\n`.
struct Line<'a> {
    text: &'a str,
    newline: bool,
}

fn split_lines(text: &str) -> Vec<Line<'_>> {
    let mut out = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        match rest.find('\n') {
            Some(i) => {
                out.push(Line {
                    text: &rest[..i],
                    newline: true,
                });
                rest = &rest[i + 1..];
            }
            None => {
                out.push(Line {
                    text: rest,
                    newline: false,
                });
                rest = "";
            }
        }
    }
    out
}

fn trim_newline(s: &str) -> &str {
    s.trim_end_matches(['\r', '\n'])
}

fn is_comment(s: &str) -> bool {
    trim_newline(s).trim_start().starts_with('#')
}

/// Whether `line` ends in a continuation; returns the line without it.
///
/// The escape character must be the last character before optional spaces and tabs, and
/// must not itself be preceded by the escape character (unless it is alone on the line).
fn trim_continuation(line: &str, escape: char) -> (&str, bool) {
    let body = line.trim_end_matches([' ', '\t']);
    let Some(before) = body.strip_suffix(escape) else {
        return (line, true);
    };
    if before.is_empty() || !before.ends_with(escape) {
        (before, false)
    } else {
        (line, true)
    }
}

/// Parser directive state: directives are only recognised before anything else.
#[derive(Default)]
struct Directives {
    done: bool,
    seen: Vec<String>,
}

impl Directives {
    /// Look at one (left-trimmed) line; returns the escape directive's value if it is one.
    fn parse_line(&mut self, line: &str) -> Result<Option<String>, String> {
        if self.done {
            return Ok(None);
        }
        let Some(rest) = line.strip_prefix('#') else {
            self.done = true;
            return Ok(None);
        };
        let Some((key, value)) = match_directive(rest.trim_start()) else {
            self.done = true;
            return Ok(None);
        };
        let key = key.to_ascii_lowercase();
        if !matches!(key.as_str(), "escape" | "syntax" | "check") {
            self.done = true;
            return Ok(None);
        }
        if self.seen.contains(&key) {
            return Err(format!("only one {key} parser directive can be used"));
        }
        self.seen.push(key.clone());
        Ok((key == "escape").then_some(value))
    }
}

/// `^([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$`
fn match_directive(s: &str) -> Option<(String, String)> {
    let mut chars = s.char_indices();
    let (_, first) = chars.next()?;
    if !first.is_ascii_alphabetic() {
        return None;
    }
    let key_end = s
        .char_indices()
        .find(|(_, c)| !c.is_ascii_alphanumeric())
        .map_or(s.len(), |(i, _)| i);
    let rest = s[key_end..].trim_start_matches(is_re_space);
    let rest = rest.strip_prefix('=')?;
    let value = rest.trim_matches(is_re_space);
    if value.is_empty() {
        return None;
    }
    Some((s[..key_end].to_string(), value.to_string()))
}

/// Go regexp's `\s`: `[\t\n\f\r ]`.
fn is_re_space(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\x0c' | '\r' | ' ')
}

/// BuildKit's `[\t\v\f\r ]` separator between words.
fn is_sep(c: char) -> bool {
    matches!(c, '\t' | '\x0b' | '\x0c' | '\r' | ' ')
}

/// The upper-cased first word of an instruction line.
fn keyword_of(line: &str) -> String {
    line.split(is_sep)
        .next()
        .unwrap_or_default()
        .to_ascii_uppercase()
}

/// Reads heredoc bodies from the lines after an instruction.
struct BodyReader<'a, 'b> {
    lines: &'a [Line<'a>],
    idx: &'b mut usize,
}

impl BodyReader<'_, '_> {
    fn read(&mut self, spec: HeredocSpec, start: usize) -> Result<Heredoc, ParseError> {
        let mut content = String::new();
        while let Some(line) = self.lines.get(*self.idx) {
            *self.idx += 1;
            let mut candidate = trim_newline(line.text);
            if spec.chomp {
                candidate = candidate.trim_start_matches('\t');
            }
            if candidate == spec.name {
                let content = if spec.chomp {
                    chomp_tabs(&content)
                } else {
                    content
                };
                return Ok(Heredoc {
                    name: spec.name,
                    content,
                    expand: spec.expand,
                    chomp: spec.chomp,
                });
            }
            content.push_str(line.text);
            if line.newline {
                content.push('\n');
            }
        }
        Err(ParseError::new(start, None, "unterminated heredoc"))
    }

    fn line(&self) -> usize {
        *self.idx
    }
}

/// Remove leading tabs from every line.
fn chomp_tabs(s: &str) -> String {
    s.split_inclusive('\n')
        .map(|l| l.trim_start_matches('\t'))
        .collect()
}

/// A heredoc delimiter found in an instruction line.
#[derive(Debug, Clone, PartialEq, Eq)]
struct HeredocSpec {
    name: String,
    expand: bool,
    chomp: bool,
}

/// Recognise one word as a heredoc: `^(\d*)<<(-?)\s*([^<]*)$` with a non-empty, single-word
/// delimiter. Quoting any part of the delimiter turns expansion off.
fn heredoc_from_word(word: &str) -> Result<Option<HeredocSpec>, String> {
    let digits = word.len() - word.trim_start_matches(|c: char| c.is_ascii_digit()).len();
    let Some(rest) = word[digits..].strip_prefix("<<") else {
        return Ok(None);
    };
    let (chomp, rest) = match rest.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, rest),
    };
    let rest = rest.trim_start_matches(is_re_space);
    if rest.is_empty() || rest.contains('<') {
        return Ok(None);
    }
    let plain = Opts {
        skip_unset: true,
        ..Opts::default()
    };
    let (_, words) = shell::run(rest, '\\', plain, &NoVars).map_err(|e| e.message)?;
    let [name] = words.as_slice() else {
        return Ok(None);
    };
    let raw = Opts {
        raw_quotes: true,
        ..plain
    };
    let (_, raw_words) = shell::run(rest, '\\', raw, &NoVars).map_err(|e| e.message)?;
    let [raw_name] = raw_words.as_slice() else {
        return Err(format!(
            "internal lexing of heredoc produced inconsistent results: {rest}"
        ));
    };
    let quotes = |s: &str| s.chars().filter(|c| *c == '\'' || *c == '"').count();
    Ok(Some(HeredocSpec {
        name: name.clone(),
        expand: quotes(name) == quotes(raw_name),
        chomp,
    }))
}

/// The heredocs an instruction line declares, in order.
fn heredocs_in_line(line: &str) -> Result<Vec<HeredocSpec>, String> {
    let opts = Opts {
        raw_quotes: true,
        raw_escapes: true,
        skip_unset: true,
        heredoc_lt: true,
        ..Opts::default()
    };
    // Like BuildKit, a line the lexer cannot split declares no heredoc.
    let Ok((_, words)) = shell::run(line, '\\', opts, &NoVars) else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for word in words {
        if let Some(spec) = heredoc_from_word(&word)? {
            out.push(spec);
        }
    }
    Ok(out)
}

/// Split an instruction line into keyword, flag words and the argument text.
fn split_command(line: &str) -> (String, Vec<String>, String) {
    let line = line.trim();
    let (keyword, rest) = match line.find(is_sep) {
        Some(i) => (&line[..i], line[i..].trim_start_matches(is_sep)),
        None => (line, ""),
    };
    let (args, flags) = extract_flags(rest);
    (keyword.to_string(), flags, args.trim().to_string())
}

/// BuildKit's `extractBuilderFlags`: leading words starting with `--` are flags (quotes
/// and backslash escapes in them are processed); `--` alone ends the flags.
fn extract_flags(line: &str) -> (String, Vec<String>) {
    #[derive(PartialEq)]
    enum Phase {
        Spaces,
        Word,
        Quote,
    }
    let chars: Vec<char> = line.chars().collect();
    let n = chars.len();
    let rest_from = |pos: usize| chars[pos..].iter().collect::<String>();
    let mut words = Vec::new();
    let mut phase = Phase::Spaces;
    let mut word = String::new();
    let mut quote = '\0';
    let mut blank_ok = false;
    let mut pos = 0;
    while pos <= n {
        let at_end = pos == n;
        let mut ch = chars.get(pos).copied().unwrap_or('\0');
        if phase == Phase::Spaces {
            if at_end {
                break;
            }
            if ch.is_whitespace() {
                pos += 1;
                continue;
            }
            if ch != '-' || chars.get(pos + 1) != Some(&'-') {
                return (rest_from(pos), words);
            }
            phase = Phase::Word;
        }
        if at_end {
            if word != "--" && (blank_ok || !word.is_empty()) {
                words.push(word);
            }
            break;
        }
        if phase == Phase::Word {
            if ch.is_whitespace() {
                phase = Phase::Spaces;
                if word == "--" {
                    return (rest_from(pos), words);
                }
                if blank_ok || !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
                word.clear();
                blank_ok = false;
                pos += 1;
                continue;
            }
            if ch == '\'' || ch == '"' {
                quote = ch;
                blank_ok = true;
                phase = Phase::Quote;
                pos += 1;
                continue;
            }
            if ch == '\\' {
                if pos + 1 == n {
                    pos += 1;
                    continue;
                }
                pos += 1;
                ch = chars[pos];
            }
            word.push(ch);
            pos += 1;
            continue;
        }
        // In quotes.
        if ch == quote {
            phase = Phase::Word;
            pos += 1;
            continue;
        }
        if ch == '\\' {
            if pos + 1 == n {
                phase = Phase::Word;
                pos += 1;
                continue;
            }
            pos += 1;
            ch = chars[pos];
        }
        word.push(ch);
        pos += 1;
    }
    (String::new(), words)
}

/// BuildKit's `parseWords`: split on whitespace outside quotes, keeping quotes and escapes
/// in the words.
fn parse_words(rest: &str, escape: char) -> Vec<String> {
    #[derive(PartialEq)]
    enum Phase {
        Spaces,
        Word,
        Quote,
    }
    let chars: Vec<char> = rest.chars().collect();
    let n = chars.len();
    let mut words = Vec::new();
    let mut phase = Phase::Spaces;
    let mut quote = '\0';
    let mut blank_ok = false;
    let mut buf = String::new();
    let mut pos = 0;
    while pos <= n {
        let at_end = pos == n;
        let mut ch = chars.get(pos).copied().unwrap_or('\0');
        if phase == Phase::Spaces {
            if at_end {
                break;
            }
            if ch.is_whitespace() {
                pos += 1;
                continue;
            }
            phase = Phase::Word;
        }
        if at_end {
            if blank_ok || !buf.is_empty() {
                words.push(buf);
            }
            break;
        }
        if phase == Phase::Word {
            if ch.is_whitespace() {
                phase = Phase::Spaces;
                if blank_ok || !buf.is_empty() {
                    words.push(std::mem::take(&mut buf));
                }
                blank_ok = false;
                pos += 1;
                continue;
            }
            if ch == '\'' || ch == '"' {
                quote = ch;
                blank_ok = true;
                phase = Phase::Quote;
            }
            if ch == escape {
                if pos + 1 == n {
                    pos += 1;
                    continue;
                }
                buf.push(ch);
                pos += 1;
                ch = chars[pos];
            }
            buf.push(ch);
            pos += 1;
            continue;
        }
        // In quotes.
        if ch == quote {
            phase = Phase::Word;
        }
        if ch == escape && quote != '\'' {
            if pos + 1 == n {
                phase = Phase::Word;
                pos += 1;
                continue;
            }
            pos += 1;
            buf.push(ch);
            ch = chars[pos];
        }
        buf.push(ch);
        pos += 1;
    }
    words
}

/// Split on runs of `[\t\v\f\r ]`.
fn split_whitespace(rest: &str) -> Vec<String> {
    if rest.is_empty() {
        return Vec::new();
    }
    rest.split(is_sep)
        .filter(|w| !w.is_empty())
        .map(str::to_string)
        .collect()
}

/// Split `rest` at the first run of separators into two parts.
fn split_two(rest: &str) -> Option<(&str, &str)> {
    let i = rest.find(is_sep)?;
    Some((&rest[..i], rest[i..].trim_start_matches(is_sep)))
}

/// JSON form: `Ok(Some(array))` when `rest` is a JSON array of strings, `Ok(None)` when it
/// is not JSON at all, an error when it is a JSON array with a non-string in it.
fn parse_json(rest: &str) -> Result<Option<Vec<String>>, String> {
    let rest = rest.trim_start();
    if !rest.starts_with('[') {
        return Ok(None);
    }
    let Ok(values) = serde_json::from_str::<Vec<serde_json::Value>>(rest) else {
        return Ok(None);
    };
    values
        .into_iter()
        .map(|v| match v {
            serde_json::Value::String(s) => Ok(s),
            _ => Err(
                "when using JSON array syntax, arrays must be comprised of strings only"
                    .to_string(),
            ),
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

/// How a flag takes its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FlagKind {
    /// `--name`, `--name=true|false`.
    Bool,
    /// `--name=value`, at most once.
    Str,
    /// `--name=value`, repeatable.
    Strings,
}

/// Parsed flags: name → values in order, plus the order of all flags.
#[derive(Default)]
struct Flags {
    values: BTreeMap<String, Vec<String>>,
    order: Vec<(String, String)>,
}

impl Flags {
    fn string(&self, name: &str) -> Option<String> {
        self.values
            .get(name)
            .and_then(|v| v.last())
            .filter(|v| !v.is_empty())
            .cloned()
    }

    fn bool(&self, name: &str) -> bool {
        self.values
            .get(name)
            .and_then(|v| v.last())
            .is_some_and(|v| v == "true")
    }

    fn used(&self, name: &str) -> bool {
        self.values.contains_key(name)
    }
}

/// BuildKit's `BFlags.Parse` for the flags an instruction allows.
fn parse_flags(words: &[String], allowed: &[(&str, FlagKind)]) -> Result<Flags, String> {
    let mut flags = Flags::default();
    for word in words {
        let Some(body) = word.strip_prefix("--") else {
            return Err(format!("arg should start with -- : {word}"));
        };
        if body.is_empty() {
            break;
        }
        let (name, value) = match body.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (body, None),
        };
        let Some(&(_, kind)) = allowed.iter().find(|(n, _)| *n == name) else {
            return Err(format!("unknown flag: --{name}"));
        };
        if kind != FlagKind::Strings && flags.used(name) {
            return Err(format!("duplicate flag specified: --{name}"));
        }
        let value = match kind {
            FlagKind::Bool => match value {
                None => "true".to_string(),
                Some("") => return Err(format!("missing a value on flag: --{name}")),
                Some(v) => match v.to_ascii_lowercase().as_str() {
                    b @ ("true" | "false") => b.to_string(),
                    _ => {
                        return Err(format!(
                            "expecting boolean value for flag --{name}, not: {v}"
                        ))
                    }
                },
            },
            FlagKind::Str | FlagKind::Strings => match value {
                None => return Err(format!("missing a value on flag: --{name}")),
                Some(v) => v.to_string(),
            },
        };
        flags
            .values
            .entry(name.to_string())
            .or_default()
            .push(value.clone());
        flags.order.push((name.to_string(), value));
    }
    Ok(flags)
}

/// Parse one logical line (continuations joined) into an instruction, reading its heredoc
/// bodies from `reader`.
fn parse_instruction(
    line: &str,
    start: usize,
    escape: char,
    reader: &mut BodyReader<'_, '_>,
) -> Result<Instruction, ParseError> {
    let (keyword, flag_words, args) = split_command(line);
    let upper = keyword.to_ascii_uppercase();
    let lower = keyword.to_ascii_lowercase();
    let err = |m: String| ParseError::new(start, Some(&upper), m);

    // Heredocs: RUN, COPY, ADD (or ONBUILD wrapping one), not in JSON form.
    let heredoc_args = match lower.as_str() {
        "run" | "copy" | "add" => Some(args.clone()),
        "onbuild" => {
            let (inner, _, inner_args) = split_command(&args);
            let inner = inner.to_ascii_lowercase();
            matches!(inner.as_str(), "run" | "copy" | "add").then_some(inner_args)
        }
        _ => None,
    };
    let mut heredocs = Vec::new();
    if let Some(target_args) = &heredoc_args {
        let is_json = matches!(parse_json(target_args), Ok(Some(_)));
        if !is_json && line.contains("<<") {
            let specs = heredocs_in_line(line).map_err(err)?;
            for spec in specs {
                heredocs.push(reader.read(spec, start)?);
            }
        }
    }
    let end_line = reader.line().max(start);

    let cmd = if lower == "onbuild" {
        let inner = parse_trigger(&args, start, escape, heredocs).map_err(|e| {
            let message = match &e.instruction {
                Some(i) => format!("{i}: {}", e.message),
                None => e.message.clone(),
            };
            ParseError::new(start, Some("ONBUILD"), message)
        })?;
        if !flag_words.is_empty() {
            parse_flags(&flag_words, &[]).map_err(err)?;
        }
        Command::Onbuild(Box::new(Instruction {
            line: start,
            end_line,
            original: args.clone(),
            cmd: inner,
        }))
    } else {
        parse_command(&lower, &flag_words, &args, escape, heredocs).map_err(|e| match e {
            CmdError::Message(m) => err(m),
            CmdError::Unknown => {
                ParseError::new(start, None, format!("unknown instruction: {upper}"))
            }
        })?
    };

    Ok(Instruction {
        line: start,
        end_line,
        original: line.trim().to_string(),
        cmd,
    })
}

/// The trigger of an ONBUILD, parsed as an instruction.
fn parse_trigger(
    text: &str,
    line: usize,
    escape: char,
    heredocs: Vec<Heredoc>,
) -> Result<Command, ParseError> {
    let (keyword, flag_words, args) = split_command(text);
    if keyword.is_empty() {
        return Err(ParseError::new(
            line,
            None,
            "requires at least one argument",
        ));
    }
    let upper = keyword.to_ascii_uppercase();
    let lower = keyword.to_ascii_lowercase();
    match lower.as_str() {
        "onbuild" => {
            return Err(ParseError::new(
                line,
                None,
                "Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed",
            ))
        }
        "from" | "maintainer" => {
            return Err(ParseError::new(
                line,
                None,
                format!("{upper} isn't allowed as an ONBUILD trigger"),
            ))
        }
        _ => {}
    }
    parse_command(&lower, &flag_words, &args, escape, heredocs).map_err(|e| match e {
        CmdError::Message(m) => ParseError::new(line, Some(&upper), m),
        CmdError::Unknown => ParseError::new(line, None, format!("unknown instruction: {upper}")),
    })
}

enum CmdError {
    Unknown,
    Message(String),
}

impl From<String> for CmdError {
    fn from(m: String) -> Self {
        CmdError::Message(m)
    }
}

impl From<&str> for CmdError {
    fn from(m: &str) -> Self {
        CmdError::Message(m.to_string())
    }
}

const AT_LEAST_ONE: &str = "requires at least one argument";
const EXACTLY_ONE: &str = "requires exactly one argument";
const NO_DEST: &str =
    "requires at least two arguments, but only one was provided. Destination could not be determined.";

fn parse_command(
    lower: &str,
    flag_words: &[String],
    args: &str,
    escape: char,
    heredocs: Vec<Heredoc>,
) -> Result<Command, CmdError> {
    use FlagKind::{Bool, Str, Strings};
    let no_flags = || parse_flags(flag_words, &[]);
    let one_string = |args: &str| -> Result<String, CmdError> {
        no_flags()?;
        if args.is_empty() {
            return Err(EXACTLY_ONE.into());
        }
        Ok(args.to_string())
    };
    let cmd = match lower {
        "from" => {
            let flags = parse_flags(flag_words, &[("platform", Str)])?;
            let words = split_whitespace(args);
            let (image, stage_name) = match words.as_slice() {
                [image] => (image.clone(), None),
                [image, as_kw, name] if as_kw.eq_ignore_ascii_case("as") => {
                    let lowered = name.to_lowercase();
                    if !valid_stage_name(&lowered) {
                        return Err(format!(
                            "invalid name for build stage: {name:?}, name can't start with a number or contain symbols"
                        )
                        .into());
                    }
                    (image.clone(), Some(lowered))
                }
                _ => return Err("requires either one or three arguments".into()),
            };
            Command::From {
                image,
                stage_name,
                platform: flags.string("platform"),
            }
        }
        "run" => {
            let flags = parse_flags(
                flag_words,
                &[("mount", Strings), ("network", Str), ("security", Str)],
            )?;
            let cmd = shell_or_exec(args)?;
            match &cmd {
                ShellOrExec::Exec(v) if v.is_empty() => return Err(AT_LEAST_ONE.into()),
                ShellOrExec::Shell(s) if s.is_empty() => return Err(AT_LEAST_ONE.into()),
                _ => {}
            }
            Command::Run {
                cmd,
                heredocs,
                flags: flags.order,
            }
        }
        "cmd" | "entrypoint" => {
            no_flags()?;
            let cmd = shell_or_exec(args)?;
            if matches!(&cmd, ShellOrExec::Shell(s) if s.is_empty()) {
                return Err(AT_LEAST_ONE.into());
            }
            if lower == "cmd" {
                Command::Cmd(cmd)
            } else {
                Command::Entrypoint(cmd)
            }
        }
        "shell" => {
            no_flags()?;
            match parse_json(args)? {
                Some(v) if v.is_empty() => return Err(AT_LEAST_ONE.into()),
                Some(v) => Command::Shell(v),
                None if args.is_empty() => return Err(AT_LEAST_ONE.into()),
                None => return Err("requires the arguments to be in JSON form".into()),
            }
        }
        "copy" => {
            let flags = parse_flags(
                flag_words,
                &[
                    ("from", Str),
                    ("chown", Str),
                    ("chmod", Str),
                    ("link", Bool),
                    ("parents", Bool),
                    ("exclude", Strings),
                ],
            )?;
            for unsupported in ["parents", "exclude"] {
                if flags.used(unsupported) {
                    return Err(format!("--{unsupported} is not supported").into());
                }
            }
            let (srcs, dest) = sources_and_dest(args, &heredocs)?;
            Command::Copy {
                srcs,
                dest,
                from: flags.string("from"),
                chown: flags.string("chown"),
                chmod: flags.string("chmod"),
                link: flags.bool("link"),
                heredocs,
            }
        }
        "add" => {
            let flags = parse_flags(
                flag_words,
                &[
                    ("chown", Str),
                    ("chmod", Str),
                    ("checksum", Str),
                    ("keep-git-dir", Bool),
                    ("link", Bool),
                ],
            )?;
            let (srcs, dest) = sources_and_dest(args, &heredocs)?;
            Command::Add {
                srcs,
                dest,
                chown: flags.string("chown"),
                chmod: flags.string("chmod"),
                checksum: flags.string("checksum"),
                keep_git_dir: flags.bool("keep-git-dir"),
                link: flags.bool("link"),
                heredocs,
            }
        }
        "env" => {
            no_flags()?;
            Command::Env(parse_name_val(args, escape)?)
        }
        "label" => {
            no_flags()?;
            Command::Label(parse_name_val(args, escape)?)
        }
        "arg" => {
            no_flags()?;
            let words = parse_words(args, escape);
            if words.is_empty() {
                return Err(AT_LEAST_ONE.into());
            }
            let mut out = Vec::with_capacity(words.len());
            for word in words {
                match word.split_once('=') {
                    Some(("", _)) => return Err("names can not be blank".into()),
                    Some((k, v)) => out.push((k.to_string(), Some(v.to_string()))),
                    None => out.push((word, None)),
                }
            }
            Command::Arg(out)
        }
        "workdir" => Command::Workdir(one_string(args)?),
        "user" => Command::User(one_string(args)?),
        "stopsignal" => Command::StopSignal(one_string(args)?),
        "maintainer" => Command::Maintainer(one_string(args)?),
        "expose" => {
            no_flags()?;
            let mut ports = split_whitespace(args);
            if ports.is_empty() {
                return Err(AT_LEAST_ONE.into());
            }
            ports.sort();
            Command::Expose(ports)
        }
        "volume" => {
            no_flags()?;
            let list = match parse_json(args)? {
                Some(v) => v,
                None => split_whitespace(args),
            };
            if list.is_empty() {
                return Err(AT_LEAST_ONE.into());
            }
            let mut volumes = Vec::with_capacity(list.len());
            for v in list {
                let v = v.trim();
                if v.is_empty() {
                    return Err("specified can not be an empty string".into());
                }
                volumes.push(v.to_string());
            }
            Command::Volume(volumes)
        }
        "healthcheck" => parse_healthcheck(flag_words, args)?,
        _ => return Err(CmdError::Unknown),
    };
    Ok(cmd)
}

/// `^[a-z][a-z0-9-_.]*$`
fn valid_stage_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-_.".contains(c))
}

fn shell_or_exec(args: &str) -> Result<ShellOrExec, String> {
    Ok(match parse_json(args)? {
        Some(v) => ShellOrExec::Exec(v),
        None => ShellOrExec::Shell(args.to_string()),
    })
}

/// COPY/ADD arguments: JSON array or whitespace-separated words, the last one the
/// destination; heredoc words become the heredoc's name.
fn sources_and_dest(args: &str, heredocs: &[Heredoc]) -> Result<(Vec<String>, String), String> {
    let words = match parse_json(args)? {
        Some(v) => v,
        None => split_whitespace(args),
    };
    let Some((dest, srcs)) = words.split_last() else {
        return Err(NO_DEST.to_string());
    };
    if srcs.is_empty() {
        return Err(NO_DEST.to_string());
    }
    if matches!(heredoc_from_word(dest), Ok(Some(_))) {
        return Err("cannot accept a heredoc as a destination".to_string());
    }
    let srcs = srcs
        .iter()
        .map(|s| match heredoc_from_word(s) {
            Ok(Some(spec)) if heredocs.iter().any(|h| h.name == spec.name) => spec.name,
            _ => s.clone(),
        })
        .collect();
    Ok((srcs, dest.clone()))
}

/// ENV and LABEL: `key value` (old form, the rest of the line is the value) or
/// `k=v k2="v 2"...`.
fn parse_name_val(args: &str, escape: char) -> Result<Vec<(String, String)>, String> {
    let words = parse_words(args, escape);
    let Some(first) = words.first() else {
        return Err(AT_LEAST_ONE.to_string());
    };
    if !first.contains('=') {
        let Some((key, value)) = split_two(args) else {
            return Err("must have two arguments".to_string());
        };
        return Ok(vec![(key.to_string(), value.to_string())]);
    }
    let mut out = Vec::with_capacity(words.len());
    for word in &words {
        let Some((key, value)) = word.split_once('=') else {
            return Err(format!(
                "Syntax error - can't find = in {word:?}. Must be of the form: name=value"
            ));
        };
        if key.is_empty() {
            return Err("names can not be blank".to_string());
        }
        out.push((key.to_string(), value.to_string()));
    }
    Ok(out)
}

fn parse_healthcheck(flag_words: &[String], args: &str) -> Result<Command, CmdError> {
    use FlagKind::Str;
    let (typ, rest) = match args.find(char::is_whitespace) {
        Some(i) => (&args[..i], args[i..].trim_start()),
        None => (args, ""),
    };
    if typ.is_empty() {
        return Err(AT_LEAST_ONE.into());
    }
    let typ = typ.to_ascii_uppercase();
    if typ == "NONE" {
        if !rest.is_empty() {
            return Err("NONE takes no arguments".into());
        }
        if !flag_words.is_empty() {
            return Err("NONE takes no flags".into());
        }
        return Ok(Command::Healthcheck(None));
    }
    let flags = parse_flags(
        flag_words,
        &[
            ("interval", Str),
            ("timeout", Str),
            ("start-period", Str),
            ("start-interval", Str),
            ("retries", Str),
        ],
    )?;
    if typ != "CMD" {
        return Err(format!("unknown type {typ:?} (try CMD)").into());
    }
    let test = shell_or_exec(rest)?;
    match &test {
        ShellOrExec::Exec(v) if v.is_empty() => return Err("missing command after CMD".into()),
        ShellOrExec::Shell(s) if s.is_empty() => return Err("missing command after CMD".into()),
        _ => {}
    }
    let interval = |name: &str| -> Result<Option<Duration>, String> {
        match flags.string(name) {
            None => Ok(None),
            Some(v) => health_interval(name, &v).map(Some),
        }
    };
    let retries = match flags.string("retries") {
        None => None,
        Some(v) => {
            let n: i64 = v
                .parse()
                .map_err(|_| format!("strconv.ParseInt: parsing {v:?}: invalid syntax"))?;
            if n < 0 {
                return Err(format!("--retries cannot be negative ({n})").into());
            }
            let n = u32::try_from(n)
                .ok()
                .filter(|n| *n <= i32::MAX as u32)
                .ok_or_else(|| format!("strconv.ParseInt: parsing {v:?}: value out of range"))?;
            Some(n)
        }
    };
    Ok(Command::Healthcheck(Some(Health {
        test,
        interval: interval("interval")?,
        timeout: interval("timeout")?,
        start_period: interval("start-period")?,
        start_interval: interval("start-interval")?,
        retries,
    })))
}

/// A HEALTHCHECK duration: Go syntax; zero is allowed (docker's "use the default"),
/// anything else must be at least 1ms.
fn health_interval(name: &str, value: &str) -> Result<Duration, String> {
    let nanos = parse_go_duration(value)?;
    if nanos == 0 {
        return Ok(Duration::ZERO);
    }
    if nanos < 1_000_000 {
        return Err(format!("Interval {name:?} cannot be less than 1ms"));
    }
    let nanos = u64::try_from(nanos).map_err(|_| format!("time: invalid duration {value:?}"))?;
    Ok(Duration::from_nanos(nanos))
}

/// Go's `time.ParseDuration`, in nanoseconds (negative allowed).
fn parse_go_duration(value: &str) -> Result<i128, String> {
    let invalid = || format!("time: invalid duration {value:?}");
    let mut s = value;
    let mut negative = false;
    if let Some(rest) = s.strip_prefix('-') {
        negative = true;
        s = rest;
    } else if let Some(rest) = s.strip_prefix('+') {
        s = rest;
    }
    if s == "0" {
        return Ok(0);
    }
    if s.is_empty() {
        return Err(invalid());
    }
    let mut total: u128 = 0;
    while !s.is_empty() {
        let int_len = s.len() - s.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        let int_part = &s[..int_len];
        s = &s[int_len..];
        let mut frac_part = "";
        if let Some(rest) = s.strip_prefix('.') {
            let frac_len = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
            frac_part = &rest[..frac_len];
            s = &rest[frac_len..];
            if int_part.is_empty() && frac_part.is_empty() {
                return Err(invalid());
            }
        } else if int_part.is_empty() {
            return Err(invalid());
        }
        let unit_len = s
            .find(|c: char| c == '.' || c.is_ascii_digit())
            .unwrap_or(s.len());
        let unit = &s[..unit_len];
        s = &s[unit_len..];
        let scale: u128 = match unit {
            "ns" => 1,
            "us" | "\u{b5}s" | "\u{3bc}s" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            "" => return Err(format!("time: missing unit in duration {value:?}")),
            other => {
                return Err(format!(
                    "time: unknown unit {other:?} in duration {value:?}"
                ))
            }
        };
        let int: u128 = if int_part.is_empty() {
            0
        } else {
            int_part.parse().map_err(|_| invalid())?
        };
        let mut component = int.checked_mul(scale).ok_or_else(invalid)?;
        if !frac_part.is_empty() {
            // Fractions beyond the nanosecond are truncated, as in Go.
            let mut frac_value: u128 = 0;
            let mut frac_scale: u128 = 1;
            for d in frac_part.bytes().take(18) {
                frac_value = frac_value * 10 + u128::from(d - b'0');
                frac_scale *= 10;
            }
            component += frac_value * scale / frac_scale;
        }
        total = total.checked_add(component).ok_or_else(invalid)?;
        if total > (1u128 << 63) {
            return Err(invalid());
        }
    }
    if !negative && total == (1u128 << 63) {
        return Err(invalid());
    }
    let total = i128::try_from(total).map_err(|_| invalid())?;
    Ok(if negative { -total } else { total })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shell::Lexer;

    fn ok(text: &str) -> Dockerfile {
        parse(text).unwrap_or_else(|e| panic!("{e}"))
    }

    fn fail(text: &str) -> ParseError {
        match parse(text) {
            Ok(df) => panic!("expected an error, got {df:?}"),
            Err(e) => e,
        }
    }

    /// The commands of the first stage.
    fn cmds(text: &str) -> Vec<Command> {
        ok(text).stages[0]
            .instructions
            .iter()
            .map(|i| i.cmd.clone())
            .collect()
    }

    fn one(body: &str) -> Command {
        let c = cmds(&format!("FROM scratch\n{body}\n"));
        assert_eq!(c.len(), 1, "{c:?}");
        c[0].clone()
    }

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    fn kv(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn basic_structure() {
        let df = ok("ARG V=1\nFROM alpine:$V AS Build\nRUN echo hi\n\nFROM scratch\nCOPY --from=build /a /b\n");
        assert_eq!(df.escape, '\\');
        assert_eq!(df.meta_args.len(), 1);
        assert_eq!(
            df.meta_args[0].cmd,
            Command::Arg(vec![("V".into(), Some("1".into()))])
        );
        assert_eq!(df.stages.len(), 2);
        assert_eq!(
            df.stages[0].from.cmd,
            Command::From {
                image: "alpine:$V".into(),
                stage_name: Some("build".into()),
                platform: None
            }
        );
        assert_eq!(df.stages[0].from.line, 2);
        assert_eq!(df.stages[0].instructions[0].original, "RUN echo hi");
        assert_eq!(df.stages[0].instructions[0].line, 3);
        assert_eq!(df.stages[1].from.line, 5);
        assert_eq!(
            df.stages[1].instructions[0].cmd,
            Command::Copy {
                srcs: s(&["/a"]),
                dest: "/b".into(),
                from: Some("build".into()),
                chown: None,
                chmod: None,
                link: false,
                heredocs: vec![]
            }
        );
    }

    #[test]
    fn keywords_are_case_insensitive() {
        let c = cmds("from scratch\nrUn echo\nEnV a=b\n");
        assert_eq!(
            c,
            vec![
                Command::Run {
                    cmd: ShellOrExec::Shell("echo".into()),
                    heredocs: vec![],
                    flags: vec![]
                },
                Command::Env(kv(&[("a", "b")])),
            ]
        );
    }

    #[test]
    fn unknown_instruction_line() {
        let e = fail("FROM scratch\n# comment\nRUNN echo\n");
        assert_eq!(e.to_string(), "Dockerfile:3: unknown instruction: RUNN");
        assert_eq!(e.line, 3);
        assert_eq!(e.instruction, None);
    }

    #[test]
    fn empty_and_fromless() {
        assert_eq!(
            fail("").to_string(),
            "Dockerfile:1: no build stage in Dockerfile"
        );
        assert_eq!(
            fail("# just a comment\n\n").message,
            "no build stage in Dockerfile"
        );
        assert_eq!(fail("ARG A=1\n").message, "no build stage in Dockerfile");
        let e = fail("ARG A\nRUN echo\nFROM scratch\n");
        assert_eq!(e.line, 2);
        assert_eq!(e.instruction.as_deref(), Some("RUN"));
        assert!(e.message.starts_with("no build stage in current context"));
    }

    #[test]
    fn continuation_and_comments() {
        let df = ok("FROM scratch\nRUN echo a \\\n    b \\\n# a comment\n  # indented comment\n\n   \\\n  c\nRUN x\n");
        let ins = &df.stages[0].instructions;
        assert_eq!(ins[0].original, "RUN echo a     b      c");
        assert_eq!(ins[0].line, 2);
        assert_eq!(ins[0].end_line, 8);
        assert_eq!(ins[1].line, 9);
        assert_eq!(
            ins[0].cmd,
            Command::Run {
                cmd: ShellOrExec::Shell("echo a     b      c".into()),
                heredocs: vec![],
                flags: vec![]
            }
        );
    }

    #[test]
    fn continuation_with_trailing_whitespace_and_eof() {
        let c = cmds("FROM scratch\nRUN a \\  \t\n b\nRUN last \\");
        assert_eq!(
            c,
            vec![
                Command::Run {
                    cmd: ShellOrExec::Shell("a  b".into()),
                    heredocs: vec![],
                    flags: vec![]
                },
                Command::Run {
                    cmd: ShellOrExec::Shell("last".into()),
                    heredocs: vec![],
                    flags: vec![]
                },
            ]
        );
    }

    #[test]
    fn escaped_escape_is_not_continuation() {
        let c = cmds("FROM scratch\nRUN echo \\\\\nRUN two\n");
        assert_eq!(c.len(), 2);
        assert_eq!(
            c[0],
            Command::Run {
                cmd: ShellOrExec::Shell("echo \\\\".into()),
                heredocs: vec![],
                flags: vec![]
            }
        );
    }

    #[test]
    fn crlf_and_bom() {
        let df = ok("\u{feff}FROM scratch\r\nRUN a \\\r\n b\r\n");
        assert_eq!(df.stages[0].instructions[0].original, "RUN a  b");
    }

    #[test]
    fn escape_directive_backtick() {
        let df = ok("# escape=`\nFROM mcr.microsoft.com/windows\nRUN dir C:\\ `\n  /s\nCOPY a\\b c:\\dest\\\n");
        assert_eq!(df.escape, '`');
        let ins = &df.stages[0].instructions;
        assert_eq!(ins[0].original, "RUN dir C:\\   /s");
        assert_eq!(
            ins[1].cmd,
            Command::Copy {
                srcs: s(&["a\\b"]),
                dest: "c:\\dest\\".into(),
                from: None,
                chown: None,
                chmod: None,
                link: false,
                heredocs: vec![]
            }
        );
    }

    #[test]
    fn directives_rules() {
        // Case-insensitive name, spaces allowed, syntax and check accepted.
        let df = ok("# syntax=docker/dockerfile:1\n#ESCAPE = `\n# check=skip=all\nFROM scratch\n");
        assert_eq!(df.escape, '`');
        // After a blank line, a comment or an instruction it is a plain comment.
        assert_eq!(ok("\n# escape=`\nFROM scratch\n").escape, '\\');
        assert_eq!(ok("# hello\n# escape=`\nFROM scratch\n").escape, '\\');
        assert_eq!(ok("FROM scratch\n# escape=`\n").escape, '\\');
        let e = fail("# escape=x\nFROM scratch\n");
        assert_eq!(e.line, 1);
        assert!(e.message.contains("invalid escape token 'x'"), "{e}");
        let e = fail("# escape=\\\n# escape=`\nFROM scratch\n");
        assert_eq!(e.line, 2);
        assert_eq!(e.message, "only one escape parser directive can be used");
    }

    #[test]
    fn json_and_shell_forms() {
        assert_eq!(
            one("CMD [\"a\", \"b c\"]"),
            Command::Cmd(ShellOrExec::Exec(s(&["a", "b c"])))
        );
        assert_eq!(
            one("CMD echo [x]"),
            Command::Cmd(ShellOrExec::Shell("echo [x]".into()))
        );
        // Not valid JSON: shell form, as docker does.
        assert_eq!(
            one("CMD ['a','b']"),
            Command::Cmd(ShellOrExec::Shell("['a','b']".into()))
        );
        assert_eq!(
            one("ENTRYPOINT [\"a\"] # c"),
            Command::Entrypoint(ShellOrExec::Shell("[\"a\"] # c".into()))
        );
        assert_eq!(
            one("ENTRYPOINT []"),
            Command::Entrypoint(ShellOrExec::Exec(vec![]))
        );
        assert_eq!(
            one("RUN [\"sh\", \"-c\", \"echo $HOME\"]"),
            Command::Run {
                cmd: ShellOrExec::Exec(s(&["sh", "-c", "echo $HOME"])),
                heredocs: vec![],
                flags: vec![]
            }
        );
        let e = fail("FROM scratch\nCMD [\"a\", 1]\n");
        assert_eq!(e.line, 2);
        assert!(e
            .message
            .contains("arrays must be comprised of strings only"));
        assert_eq!(
            one("SHELL [\"/bin/bash\", \"-c\"]"),
            Command::Shell(s(&["/bin/bash", "-c"]))
        );
        let e = fail("FROM scratch\nSHELL /bin/bash -c\n");
        assert_eq!(
            e.to_string(),
            "Dockerfile:2: SHELL: requires the arguments to be in JSON form"
        );
        assert!(fail("FROM scratch\nSHELL []\n")
            .message
            .contains("at least one"));
    }

    #[test]
    fn missing_arguments() {
        let e = fail("FROM scratch\nCOPY onlyone\n");
        assert_eq!(
            e.to_string(),
            "Dockerfile:2: COPY: requires at least two arguments, but only one was provided. Destination could not be determined."
        );
        assert_eq!(
            fail("FROM scratch\nADD\n").instruction.as_deref(),
            Some("ADD")
        );
        assert_eq!(fail("FROM scratch\nRUN\n").message, AT_LEAST_ONE);
        assert_eq!(fail("FROM scratch\nCMD\n").message, AT_LEAST_ONE);
        assert_eq!(fail("FROM scratch\nEXPOSE\n").message, AT_LEAST_ONE);
        assert_eq!(fail("FROM scratch\nVOLUME\n").message, AT_LEAST_ONE);
        assert_eq!(fail("FROM scratch\nWORKDIR\n").message, EXACTLY_ONE);
        assert_eq!(fail("FROM scratch\nUSER\n").message, EXACTLY_ONE);
        assert_eq!(fail("FROM scratch\nENV\n").message, AT_LEAST_ONE);
        assert_eq!(fail("FROM scratch\nARG\n").message, AT_LEAST_ONE);
        assert_eq!(fail("FROM scratch\nLABEL\n").message, AT_LEAST_ONE);
        assert_eq!(
            fail("FROM scratch\nONBUILD\n").message,
            "requires at least one argument"
        );
        assert_eq!(
            fail("FROM\n").message,
            "requires either one or three arguments"
        );
    }

    #[test]
    fn from_forms() {
        let df = ok("FROM --platform=$BUILDPLATFORM golang:1.22 as Builder-1.x\n");
        assert_eq!(
            df.stages[0].from.cmd,
            Command::From {
                image: "golang:1.22".into(),
                stage_name: Some("builder-1.x".into()),
                platform: Some("$BUILDPLATFORM".into())
            }
        );
        let e = fail("FROM a AS 1abc\n");
        assert!(
            e.message.contains("invalid name for build stage: \"1abc\""),
            "{e}"
        );
        assert!(fail("FROM a AS b@c\n").message.contains("invalid name"));
        assert_eq!(
            fail("FROM a b\n").message,
            "requires either one or three arguments"
        );
        assert_eq!(
            fail("FROM a AS b c\n").message,
            "requires either one or three arguments"
        );
        assert_eq!(
            fail("FROM a FOR b\n").message,
            "requires either one or three arguments"
        );
        assert_eq!(fail("FROM --plat=x a\n").message, "unknown flag: --plat");
    }

    #[test]
    fn run_flags() {
        assert_eq!(
            one("RUN --mount=type=cache,target=/root/.cache --network=none --mount=type=tmpfs,target=/t make"),
            Command::Run {
                cmd: ShellOrExec::Shell("make".into()),
                heredocs: vec![],
                flags: kv(&[
                    ("mount", "type=cache,target=/root/.cache"),
                    ("network", "none"),
                    ("mount", "type=tmpfs,target=/t"),
                ])
            }
        );
        assert_eq!(
            one("RUN --security=insecure -- --not-a-flag"),
            Command::Run {
                cmd: ShellOrExec::Shell("--not-a-flag".into()),
                heredocs: vec![],
                flags: kv(&[("security", "insecure")])
            }
        );
        // Quotes in a flag value are removed.
        assert_eq!(
            one("RUN --mount=type=bind,target=\"/a b\" ls"),
            Command::Run {
                cmd: ShellOrExec::Shell("ls".into()),
                heredocs: vec![],
                flags: kv(&[("mount", "type=bind,target=/a b")])
            }
        );
        let e = fail("FROM scratch\nRUN --foo=bar echo\n");
        assert_eq!(e.to_string(), "Dockerfile:2: RUN: unknown flag: --foo");
        assert_eq!(
            fail("FROM scratch\nRUN --network echo\n").message,
            "missing a value on flag: --network"
        );
        assert_eq!(
            fail("FROM scratch\nRUN --network=a --network=b echo\n").message,
            "duplicate flag specified: --network"
        );
        assert_eq!(
            fail("FROM scratch\nRUN --device=x echo\n").message,
            "unknown flag: --device"
        );
        assert_eq!(
            fail("FROM scratch\nENV --x=1 a=b\n").message,
            "unknown flag: --x"
        );
    }

    #[test]
    fn copy_and_add() {
        assert_eq!(
            one("COPY --chown=1000:1000 --chmod=755 --link a b* /dest/"),
            Command::Copy {
                srcs: s(&["a", "b*"]),
                dest: "/dest/".into(),
                from: None,
                chown: Some("1000:1000".into()),
                chmod: Some("755".into()),
                link: true,
                heredocs: vec![]
            }
        );
        assert_eq!(
            one("COPY --link=false [\"a b\", \"/c d/\"]"),
            Command::Copy {
                srcs: s(&["a b"]),
                dest: "/c d/".into(),
                from: None,
                chown: None,
                chmod: None,
                link: false,
                heredocs: vec![]
            }
        );
        // Shell form splits on whitespace only (quotes are not grouping here).
        match one("COPY \"a b\" /x") {
            Command::Copy { srcs, dest, .. } => {
                assert_eq!(srcs, s(&["\"a", "b\""]));
                assert_eq!(dest, "/x");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            one("ADD --checksum=sha256:abc --keep-git-dir https://x/y.tar /"),
            Command::Add {
                srcs: s(&["https://x/y.tar"]),
                dest: "/".into(),
                chown: None,
                chmod: None,
                checksum: Some("sha256:abc".into()),
                keep_git_dir: true,
                link: false,
                heredocs: vec![]
            }
        );
        assert_eq!(
            fail("FROM scratch\nCOPY --checksum=x a b\n").message,
            "unknown flag: --checksum"
        );
        assert_eq!(
            fail("FROM scratch\nADD --from=x a b\n").message,
            "unknown flag: --from"
        );
        assert_eq!(
            fail("FROM scratch\nCOPY --parents a b\n").message,
            "--parents is not supported"
        );
        assert_eq!(
            fail("FROM scratch\nCOPY --exclude=*.md a b\n").message,
            "--exclude is not supported"
        );
        assert_eq!(
            fail("FROM scratch\nCOPY --link=maybe a b\n").message,
            "expecting boolean value for flag --link, not: maybe"
        );
        assert_eq!(
            fail("FROM scratch\nCOPY --link= a b\n").message,
            "missing a value on flag: --link"
        );
    }

    #[test]
    fn env_forms() {
        assert_eq!(one("ENV A 1 2  3"), Command::Env(kv(&[("A", "1 2  3")])));
        assert_eq!(
            one("ENV A=1 B=\"two words\" C='x y' D=a\\ b E="),
            Command::Env(kv(&[
                ("A", "1"),
                ("B", "\"two words\""),
                ("C", "'x y'"),
                ("D", "a\\ b"),
                ("E", "")
            ]))
        );
        assert_eq!(one("ENV A=\"x=y\""), Command::Env(kv(&[("A", "\"x=y\"")])));
        assert_eq!(
            fail("FROM scratch\nENV A\n").message,
            "must have two arguments"
        );
        let e = fail("FROM scratch\nENV A=1 B\n");
        assert_eq!(
            e.message,
            "Syntax error - can't find = in \"B\". Must be of the form: name=value"
        );
        assert_eq!(
            fail("FROM scratch\nENV =x\n").message,
            "names can not be blank"
        );
    }

    #[test]
    fn env_and_label_end_to_end_with_shell() {
        let df = ok(
            "FROM scratch\nENV GREETING=\"hello world\" NAME=joe\\ bloggs SINGLE='$NOPE' MIX=a\"$X\"b\nLABEL \"com.example.key\"=\"a value\" other=v\n",
        );
        let lex = Lexer { escape: df.escape };
        let vars = vec![("X".to_string(), "-x-".to_string())];
        let Command::Env(pairs) = &df.stages[0].instructions[0].cmd else {
            panic!()
        };
        let expanded: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| {
                (
                    lex.process_word(k, &vars).unwrap(),
                    lex.process_word(v, &vars).unwrap(),
                )
            })
            .collect();
        assert_eq!(
            expanded,
            kv(&[
                ("GREETING", "hello world"),
                ("NAME", "joe bloggs"),
                ("SINGLE", "$NOPE"),
                ("MIX", "a-x-b")
            ])
        );
        let Command::Label(labels) = &df.stages[0].instructions[1].cmd else {
            panic!()
        };
        let expanded: Vec<(String, String)> = labels
            .iter()
            .map(|(k, v)| {
                (
                    lex.process_word(k, &vars).unwrap(),
                    lex.process_word(v, &vars).unwrap(),
                )
            })
            .collect();
        assert_eq!(
            expanded,
            kv(&[("com.example.key", "a value"), ("other", "v")])
        );
    }

    #[test]
    fn label_old_form_and_arg() {
        assert_eq!(
            one("LABEL version 1.0 beta"),
            Command::Label(kv(&[("version", "1.0 beta")]))
        );
        assert_eq!(
            one("ARG A B=2 C=\"x y\" D="),
            Command::Arg(vec![
                ("A".into(), None),
                ("B".into(), Some("2".into())),
                ("C".into(), Some("\"x y\"".into())),
                ("D".into(), Some(String::new())),
            ])
        );
        assert_eq!(
            fail("FROM scratch\nARG =1\n").message,
            "names can not be blank"
        );
    }

    #[test]
    fn simple_instructions() {
        assert_eq!(one("WORKDIR /a b/c"), Command::Workdir("/a b/c".into()));
        assert_eq!(one("USER app:app"), Command::User("app:app".into()));
        assert_eq!(
            one("STOPSIGNAL SIGTERM"),
            Command::StopSignal("SIGTERM".into())
        );
        assert_eq!(
            one("MAINTAINER Jane <j@x>"),
            Command::Maintainer("Jane <j@x>".into())
        );
        assert_eq!(
            one("EXPOSE 8080/tcp 443 53/udp"),
            Command::Expose(s(&["443", "53/udp", "8080/tcp"]))
        );
        assert_eq!(
            one("VOLUME /data /logs"),
            Command::Volume(s(&["/data", "/logs"]))
        );
        assert_eq!(
            one("VOLUME [\"/a b\", \"/c\"]"),
            Command::Volume(s(&["/a b", "/c"]))
        );
        assert!(fail("FROM scratch\nVOLUME [\"\"]\n")
            .message
            .contains("empty string"));
        assert!(fail("FROM scratch\nUSER --x=1 a\n")
            .message
            .contains("unknown flag"));
    }

    #[test]
    fn healthcheck_forms() {
        assert_eq!(one("HEALTHCHECK NONE"), Command::Healthcheck(None));
        assert_eq!(one("healthcheck none"), Command::Healthcheck(None));
        assert_eq!(
            one("HEALTHCHECK --interval=1m30s --timeout=500ms --start-period=1h --start-interval=2s --retries=3 CMD curl -f http://x/ || exit 1"),
            Command::Healthcheck(Some(Health {
                test: ShellOrExec::Shell("curl -f http://x/ || exit 1".into()),
                interval: Some(Duration::from_secs(90)),
                timeout: Some(Duration::from_millis(500)),
                start_period: Some(Duration::from_secs(3600)),
                start_interval: Some(Duration::from_secs(2)),
                retries: Some(3),
            }))
        );
        assert_eq!(
            one("HEALTHCHECK --interval=0s CMD [\"/bin/check\", \"-q\"]"),
            Command::Healthcheck(Some(Health {
                test: ShellOrExec::Exec(s(&["/bin/check", "-q"])),
                interval: Some(Duration::ZERO),
                timeout: None,
                start_period: None,
                start_interval: None,
                retries: None,
            }))
        );
        assert_eq!(
            fail("FROM scratch\nHEALTHCHECK --interval=-5s CMD x\n").message,
            "Interval \"interval\" cannot be less than 1ms"
        );
        assert!(fail("FROM scratch\nHEALTHCHECK --timeout=5 CMD x\n")
            .message
            .contains("missing unit"));
        assert!(fail("FROM scratch\nHEALTHCHECK --timeout=5x CMD x\n")
            .message
            .contains("unknown unit"));
        assert!(fail("FROM scratch\nHEALTHCHECK --interval=500us CMD x\n")
            .message
            .contains("less than 1ms"));
        assert_eq!(
            fail("FROM scratch\nHEALTHCHECK --retries=-1 CMD x\n").message,
            "--retries cannot be negative (-1)"
        );
        assert!(fail("FROM scratch\nHEALTHCHECK --retries=x CMD x\n")
            .message
            .contains("invalid syntax"));
        assert_eq!(
            fail("FROM scratch\nHEALTHCHECK --interval=5s NONE\n").message,
            "NONE takes no flags"
        );
        assert_eq!(
            fail("FROM scratch\nHEALTHCHECK NONE x\n").message,
            "NONE takes no arguments"
        );
        assert_eq!(
            fail("FROM scratch\nHEALTHCHECK CMD\n").message,
            "missing command after CMD"
        );
        assert_eq!(
            fail("FROM scratch\nHEALTHCHECK test\n").message,
            "unknown type \"TEST\" (try CMD)"
        );
        assert_eq!(
            fail("FROM scratch\nHEALTHCHECK --foo=1 CMD x\n").message,
            "unknown flag: --foo"
        );
    }

    #[test]
    fn go_durations() {
        assert_eq!(parse_go_duration("0"), Ok(0));
        assert_eq!(parse_go_duration("1h2m3.5s"), Ok(3_723_500_000_000));
        assert_eq!(parse_go_duration(".5s"), Ok(500_000_000));
        assert_eq!(parse_go_duration("1.s"), Ok(1_000_000_000));
        assert_eq!(parse_go_duration("-1.5h"), Ok(-5_400_000_000_000));
        assert_eq!(parse_go_duration("10\u{b5}s"), Ok(10_000));
        assert_eq!(parse_go_duration("3ns"), Ok(3));
        assert!(parse_go_duration("").is_err());
        assert!(parse_go_duration(".s").is_err());
        assert!(parse_go_duration("s").is_err());
        assert!(parse_go_duration("1").is_err());
        assert!(parse_go_duration("9999999999999h").is_err());
    }

    #[test]
    fn onbuild_triggers() {
        let c = one("ONBUILD RUN echo $HOME");
        let Command::Onbuild(inner) = c else {
            panic!("{c:?}")
        };
        assert_eq!(inner.original, "RUN echo $HOME");
        assert_eq!(
            inner.cmd,
            Command::Run {
                cmd: ShellOrExec::Shell("echo $HOME".into()),
                heredocs: vec![],
                flags: vec![]
            }
        );
        assert_eq!(
            one("onbuild copy a /b"),
            Command::Onbuild(Box::new(Instruction {
                line: 2,
                end_line: 2,
                original: "copy a /b".into(),
                cmd: Command::Copy {
                    srcs: s(&["a"]),
                    dest: "/b".into(),
                    from: None,
                    chown: None,
                    chmod: None,
                    link: false,
                    heredocs: vec![]
                }
            }))
        );
        let e = fail("FROM scratch\nONBUILD ONBUILD RUN x\n");
        assert_eq!(e.instruction.as_deref(), Some("ONBUILD"));
        assert!(e.message.contains("Chaining ONBUILD"));
        assert_eq!(
            fail("FROM scratch\nONBUILD FROM x\n").to_string(),
            "Dockerfile:2: ONBUILD: FROM isn't allowed as an ONBUILD trigger"
        );
        assert!(fail("FROM scratch\nONBUILD MAINTAINER x\n")
            .message
            .contains("isn't allowed"));
        assert_eq!(
            fail("FROM scratch\nONBUILD RUNX x\n").to_string(),
            "Dockerfile:2: ONBUILD: unknown instruction: RUNX"
        );
        assert_eq!(
            fail("FROM scratch\nONBUILD RUN --bad=1 x\n").to_string(),
            "Dockerfile:2: ONBUILD: RUN: unknown flag: --bad"
        );
    }

    #[test]
    fn heredoc_run_basic() {
        let df = ok("FROM scratch\nRUN <<EOF\necho $HOME\n  # not a comment\nEOF\nRUN after\n");
        let ins = &df.stages[0].instructions;
        assert_eq!(ins.len(), 2);
        assert_eq!(ins[0].line, 2);
        assert_eq!(ins[0].end_line, 5);
        assert_eq!(ins[0].original, "RUN <<EOF");
        assert_eq!(
            ins[0].cmd,
            Command::Run {
                cmd: ShellOrExec::Shell("<<EOF".into()),
                heredocs: vec![Heredoc {
                    name: "EOF".into(),
                    content: "echo $HOME\n  # not a comment\n".into(),
                    expand: true,
                    chomp: false
                }],
                flags: vec![]
            }
        );
        assert_eq!(ins[1].line, 6);
    }

    #[test]
    fn heredoc_quoted_and_chomp() {
        let c = one("RUN <<'EOF' bash\n$X\nEOF");
        let Command::Run { heredocs, cmd, .. } = c else {
            panic!()
        };
        assert_eq!(cmd, ShellOrExec::Shell("<<'EOF' bash".into()));
        assert_eq!(heredocs[0].name, "EOF");
        assert!(!heredocs[0].expand);
        let c = one("RUN cat <<\"END\" > /x\nbody\nEND");
        let Command::Run { heredocs, .. } = c else {
            panic!()
        };
        assert_eq!(heredocs[0].name, "END");
        assert!(!heredocs[0].expand);
        let c = one("RUN <<-EOT\n\techo a\n\t\t\techo b\n  c\n\tEOT");
        let Command::Run { heredocs, .. } = c else {
            panic!()
        };
        assert_eq!(
            heredocs,
            vec![Heredoc {
                name: "EOT".into(),
                content: "echo a\necho b\n  c\n".into(),
                expand: true,
                chomp: true
            }]
        );
        // Without `-`, tabs are kept and an indented terminator does not end the body.
        let c = one("RUN <<EOT\n\ta\n\tEOT\nEOT");
        let Command::Run { heredocs, .. } = c else {
            panic!()
        };
        assert_eq!(heredocs[0].content, "\ta\n\tEOT\n");
        // Partly quoted delimiter: no expansion; escaped quote: expansion.
        let c = one("RUN <<E'O'F\nx\nEOF");
        let Command::Run { heredocs, .. } = c else {
            panic!()
        };
        assert_eq!(
            (heredocs[0].name.as_str(), heredocs[0].expand),
            ("EOF", false)
        );
        let c = one("RUN <<eo\\'f\nx\neo'f");
        let Command::Run { heredocs, .. } = c else {
            panic!()
        };
        assert_eq!(
            (heredocs[0].name.as_str(), heredocs[0].expand),
            ("eo'f", true)
        );
        // Space after << is allowed.
        let c = one("RUN cat << EOF\nx\nEOF");
        let Command::Run { heredocs, .. } = c else {
            panic!()
        };
        assert_eq!(heredocs[0].name, "EOF");
    }

    #[test]
    fn heredoc_several_and_copy() {
        let df = ok("FROM scratch\nCOPY <<X <<Y /dest/\nY\nX\nX\nY\nRUN done\n");
        let ins = &df.stages[0].instructions;
        assert_eq!(ins[0].end_line, 6);
        assert_eq!(
            ins[0].cmd,
            Command::Copy {
                srcs: s(&["X", "Y"]),
                dest: "/dest/".into(),
                from: None,
                chown: None,
                chmod: None,
                link: false,
                heredocs: vec![
                    Heredoc {
                        name: "X".into(),
                        content: "Y\n".into(),
                        expand: true,
                        chomp: false
                    },
                    Heredoc {
                        name: "Y".into(),
                        content: "X\n".into(),
                        expand: true,
                        chomp: false
                    },
                ]
            }
        );
        assert_eq!(ins[1].line, 7);
        let c = one("ADD --chmod=644 <<'CONF' /etc/app.conf\nkey=$value\nCONF");
        let Command::Add {
            srcs,
            heredocs,
            chmod,
            ..
        } = c
        else {
            panic!()
        };
        assert_eq!(srcs, s(&["CONF"]));
        assert_eq!(chmod.as_deref(), Some("644"));
        assert_eq!(heredocs[0].content, "key=$value\n");
        assert!(!heredocs[0].expand);
        let e = fail("FROM scratch\nCOPY a <<EOF\nx\nEOF\n");
        assert_eq!(
            e.to_string(),
            "Dockerfile:2: COPY: cannot accept a heredoc as a destination"
        );
    }

    #[test]
    fn heredoc_missing_terminator() {
        let e = fail("FROM scratch\nRUN true\nRUN <<EOF\necho hi\nEOFX\n");
        assert_eq!(e.to_string(), "Dockerfile:3: unterminated heredoc");
        let e = fail("FROM scratch\nCOPY <<A <<B /x\nA\nb-body\n");
        assert_eq!(e.line, 2);
        assert_eq!(e.message, "unterminated heredoc");
    }

    #[test]
    fn heredoc_only_where_allowed() {
        // ENV, CMD and JSON form: `<<` is literal and following lines are instructions.
        let c = cmds("FROM scratch\nCMD cat <<EOF\nENV A=<<B\nRUN [\"cat\", \"<<EOF\"]\n");
        assert_eq!(c.len(), 3);
        assert_eq!(c[0], Command::Cmd(ShellOrExec::Shell("cat <<EOF".into())));
        assert_eq!(c[1], Command::Env(kv(&[("A", "<<B")])));
        // A quoted `<<` is no heredoc; `cat<<EOF` (no word start) neither.
        let c = cmds("FROM scratch\nRUN echo \"<<EOF\"\nRUN echo '<<X'\n");
        assert_eq!(c.len(), 2);
        let e = fail("FROM scratch\nRUN cat<<EOF\nhello\nEOF\n");
        assert_eq!(e.to_string(), "Dockerfile:3: unknown instruction: HELLO");
    }

    #[test]
    fn heredoc_after_continuation_and_in_onbuild() {
        let df = ok("FROM scratch\nRUN --network=none \\\n  cat <<EOF\nhi\nEOF\n");
        let ins = &df.stages[0].instructions[0];
        assert_eq!((ins.line, ins.end_line), (2, 5));
        assert_eq!(ins.original, "RUN --network=none   cat <<EOF");
        let c = one("ONBUILD RUN <<EOF\necho hi\nEOF");
        let Command::Onbuild(inner) = c else { panic!() };
        let Command::Run { heredocs, .. } = &inner.cmd else {
            panic!()
        };
        assert_eq!(heredocs[0].content, "echo hi\n");
        assert_eq!(inner.end_line, 4);
    }

    #[test]
    fn trigger_text_round_trips() {
        let c = one("ONBUILD COPY <<A <<-B /x/\nline a\nA\n\tline b\n\tB");
        let Command::Onbuild(inner) = c else { panic!() };
        let text = inner.text_with_heredocs();
        assert_eq!(text, "COPY <<A <<-B /x/\nline a\nA\nline b\nB");
        let again = cmds(&format!("FROM scratch\n{text}\n"));
        assert_eq!(again, vec![inner.cmd.clone()]);
        let plain = one("ONBUILD RUN make");
        let Command::Onbuild(inner) = plain else {
            panic!()
        };
        assert_eq!(inner.text_with_heredocs(), "RUN make");
    }

    #[test]
    fn error_display_format() {
        let e = ParseError {
            line: 7,
            instruction: Some("COPY".into()),
            message: "boom".into(),
        };
        assert_eq!(e.to_string(), "Dockerfile:7: COPY: boom");
        let e = ParseError {
            line: 1,
            instruction: None,
            message: "boom".into(),
        };
        assert_eq!(e.to_string(), "Dockerfile:1: boom");
    }

    #[test]
    fn word_helpers() {
        assert_eq!(
            parse_words("a=\"b c\" d='e f' g=h\\ i", '\\'),
            s(&["a=\"b c\"", "d='e f'", "g=h\\ i"])
        );
        assert_eq!(
            parse_words("a=\"b\\\" c\" x", '\\'),
            s(&["a=\"b\\\" c\"", "x"])
        );
        assert_eq!(parse_words("a b\\", '\\'), s(&["a", "b"]));
        assert_eq!(
            extract_flags("--a=1 --b=\"x y\" rest of line"),
            ("rest of line".to_string(), s(&["--a=1", "--b=x y"]))
        );
        assert_eq!(extract_flags("-x y"), ("-x y".to_string(), vec![]));
        assert_eq!(extract_flags("--only"), (String::new(), s(&["--only"])));
        assert_eq!(trim_continuation("a \\", '\\'), ("a ", false));
        assert_eq!(trim_continuation("\\", '\\'), ("", false));
        assert_eq!(trim_continuation("a \\\\", '\\'), ("a \\\\", true));
        assert_eq!(trim_continuation("a `", '`'), ("a ", false));
        assert_eq!(trim_continuation("a \\", '`'), ("a \\", true));
    }
}
