//! Output as the docker CLI writes it: tab-aligned tables, `--format` with a small subset of
//! Go templates (`{{.Field}}`, `{{.A.B}}`, `{{json .}}`, `{{json .X}}`, `{{index .M "k"}}`,
//! `{{upper}}`/`{{lower}}`, `table` prefix, `\t` and `\n`), sizes and durations.

use std::io::{self, Write};
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::Value;

use crate::{Failure, Result};

/// Docker's tabwriter settings: minimum cell width 10, padding 3.
const MIN_WIDTH: usize = 10;
const PADDING: usize = 3;

/// Rows of cells aligned like Go's `tabwriter.NewWriter(out, 10, 1, 3, ' ', 0)`: every cell
/// but the last of a row is padded to its column's width.
pub fn table(rows: &[Vec<String>]) -> String {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let mut widths = vec![0usize; cols];
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            if i + 1 < r.len() {
                let w = (c.chars().count() + PADDING).max(MIN_WIDTH);
                widths[i] = widths[i].max(w);
            }
        }
    }
    let mut out = String::new();
    for r in rows {
        let mut line = String::new();
        for (i, c) in r.iter().enumerate() {
            if i + 1 < r.len() {
                line.push_str(&format!("{c:<w$}", w = widths[i]));
            } else {
                line.push_str(c);
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// Writes text to stdout, ignoring a closed pipe.
pub fn print(text: &str) {
    let _ = io::stdout().lock().write_all(text.as_bytes());
}

/// A parsed `--format` value.
pub enum Format {
    /// The command's default table.
    Table,
    /// `json`: one JSON object per line.
    Json,
    /// A template; `table` says a header row goes first and cells are aligned.
    Template { text: String, table: bool },
}

impl Format {
    pub fn parse(f: Option<&str>) -> Format {
        match f.map(str::trim) {
            None | Some("") | Some("table") => Format::Table,
            Some("json") => Format::Json,
            Some(t) => match t.strip_prefix("table") {
                Some(rest) if rest.starts_with(char::is_whitespace) => Format::Template {
                    text: rest.trim_start().to_string(),
                    table: true,
                },
                _ => Format::Template {
                    text: t.to_string(),
                    table: false,
                },
            },
        }
    }
}

/// Renders `items` (each a JSON object of the command's fields) with `format`; `default` is the
/// template of the default table and `header(field)` the column title of a field.
pub fn render(
    items: &[Value],
    format: &Format,
    default: &str,
    header: &dyn Fn(&str) -> String,
) -> Result<String> {
    let (text, is_table) = match format {
        Format::Table => (default.to_string(), true),
        Format::Json => {
            let mut out = String::new();
            for it in items {
                out.push_str(&it.to_string());
                out.push('\n');
            }
            return Ok(out);
        }
        Format::Template { text, table } => (text.clone(), *table),
    };
    let tpl = Template::parse(&text)?;
    if !is_table {
        let mut out = String::new();
        for it in items {
            out.push_str(&tpl.render(it)?);
            out.push('\n');
        }
        return Ok(out);
    }
    let mut rows = vec![tpl
        .header(header)
        .split('\t')
        .map(str::to_string)
        .collect::<Vec<_>>()];
    for it in items {
        rows.push(tpl.render(it)?.split('\t').map(str::to_string).collect());
    }
    Ok(table(&rows))
}

/// One piece of a template.
#[derive(Debug, Clone, PartialEq)]
enum Piece {
    Text(String),
    /// A function applied to a field path (`json`, `upper`, `lower`, `index KEY`, or none).
    Action {
        func: Option<String>,
        path: Vec<String>,
        arg: Option<String>,
    },
}

/// A parsed Go-like template.
#[derive(Debug, Clone)]
pub struct Template {
    pieces: Vec<Piece>,
}

impl Template {
    pub fn parse(text: &str) -> Result<Template> {
        let text = text.replace("\\t", "\t").replace("\\n", "\n");
        let mut pieces = Vec::new();
        let mut rest = text.as_str();
        while let Some(start) = rest.find("{{") {
            if start > 0 {
                pieces.push(Piece::Text(rest[..start].to_string()));
            }
            let after = &rest[start + 2..];
            let end = after.find("}}").ok_or_else(|| {
                Failure::new(format!(
                    "template parsing error: unclosed action in {text:?}"
                ))
            })?;
            let action = after[..end].trim().trim_matches('-').trim();
            pieces.push(parse_action(action, &text)?);
            rest = &after[end + 2..];
        }
        if !rest.is_empty() {
            pieces.push(Piece::Text(rest.to_string()));
        }
        Ok(Template { pieces })
    }

    /// The template applied to one object.
    pub fn render(&self, v: &Value) -> Result<String> {
        let mut out = String::new();
        for p in &self.pieces {
            match p {
                Piece::Text(t) => out.push_str(t),
                Piece::Action { func, path, arg } => {
                    let mut val = lookup(v, path);
                    if let (Some("index"), Some(k)) = (func.as_deref(), arg) {
                        val = val.and_then(|m| m.get(k.as_str()));
                    }
                    let val = val.cloned().unwrap_or(Value::Null);
                    match func.as_deref() {
                        Some("json") => out.push_str(&val.to_string()),
                        Some("upper") => out.push_str(&go_value(&val).to_uppercase()),
                        Some("lower") => out.push_str(&go_value(&val).to_lowercase()),
                        _ => {
                            if val.is_null() && !path.is_empty() && lookup(v, path).is_none() {
                                out.push_str("<no value>");
                            } else {
                                out.push_str(&go_value(&val));
                            }
                        }
                    }
                }
            }
        }
        Ok(out)
    }

    /// The header row of a `table` template: each action replaced by its field's title.
    fn header(&self, title: &dyn Fn(&str) -> String) -> String {
        let mut out = String::new();
        for p in &self.pieces {
            match p {
                Piece::Text(t) => out.push_str(t),
                Piece::Action { path, .. } => {
                    out.push_str(&title(path.first().map(String::as_str).unwrap_or("")))
                }
            }
        }
        out
    }
}

fn parse_action(action: &str, text: &str) -> Result<Piece> {
    let bad = || {
        Failure::new(format!(
            "template parsing error: bad action {{{{{action}}}}} in {text:?}"
        ))
    };
    let words: Vec<&str> = action.split_whitespace().collect();
    let (func, field, arg) = match words.as_slice() {
        [f] if f.starts_with('.') => (None, *f, None),
        [func, f] if f.starts_with('.') => (Some(func.to_string()), *f, None),
        ["index", f, k] if f.starts_with('.') => (
            Some("index".to_string()),
            *f,
            Some(k.trim_matches('"').to_string()),
        ),
        _ => return Err(bad()),
    };
    if let Some(f) = &func {
        if !matches!(f.as_str(), "json" | "upper" | "lower" | "index") {
            return Err(Failure::new(format!(
                "template parsing error: function {f:?} not defined"
            )));
        }
    }
    let path = field
        .trim_start_matches('.')
        .split('.')
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    Ok(Piece::Action { func, path, arg })
}

fn lookup<'a>(v: &'a Value, path: &[String]) -> Option<&'a Value> {
    let mut cur = v;
    for k in path {
        cur = cur.get(k.as_str())?;
    }
    Some(cur)
}

/// A value printed the way Go's `fmt` prints it in a template.
pub fn go_value(v: &Value) -> String {
    match v {
        Value::Null => "<nil>".into(),
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::Array(a) => format!("[{}]", a.iter().map(go_value).collect::<Vec<_>>().join(" ")),
        Value::Object(m) => format!(
            "map[{}]",
            m.iter()
                .map(|(k, v)| format!("{k}:{}", go_value(v)))
                .collect::<Vec<_>>()
                .join(" ")
        ),
    }
}

/// Docker's `units.HumanSizeWithPrecision(n, 3)` (images, ps): decimal units, 3 significant
/// digits ("4.26MB", "124MB").
pub fn human_size(bytes: f64) -> String {
    human_size_digits(bytes, 3)
}

/// Decimal units with `sig` significant digits, like Go's `%.{sig}g` in go-units.
pub fn human_size_digits(bytes: f64, sig: usize) -> String {
    let units = ["B", "kB", "MB", "GB", "TB", "PB"];
    let mut size = bytes.max(0.0);
    let mut i = 0;
    while size >= 1000.0 && i < units.len() - 1 {
        size /= 1000.0;
        i += 1;
    }
    format!("{}{}", sig_digits(size, sig), units[i])
}

/// `%.{sig}g` for values below 10000: `sig` significant digits, trailing zeros dropped.
fn sig_digits(v: f64, sig: usize) -> String {
    let int_digits = if v < 1.0 {
        1
    } else {
        (v.log10().floor() as usize) + 1
    };
    let decimals = sig.saturating_sub(int_digits);
    let mut text = format!("{v:.decimals$}");
    if text.contains('.') {
        text = text.trim_end_matches('0').trim_end_matches('.').to_string();
    }
    text
}

/// Docker's `units.BytesSize`: binary units, four significant digits ("1.5KiB"), for stats.
pub fn bytes_size(bytes: f64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut size = bytes.max(0.0);
    let mut i = 0;
    while size >= 1024.0 && i < units.len() - 1 {
        size /= 1024.0;
        i += 1;
    }
    format!("{}{}", sig_digits(size, 4), units[i])
}

pub fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// "2 hours ago" for a Unix time, like docker's `units.HumanDuration`.
pub fn human_since(then: i64) -> String {
    let s = (now_secs() - then).max(0) as u64;
    format!(
        "{} ago",
        berth_api::types::human_duration(std::time::Duration::from_secs(s))
    )
}

/// Seconds since the epoch of `YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)`.
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    if s.len() < 19 {
        return None;
    }
    let num = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, se) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let days = days_from_civil(y, mo, d);
    let mut t = days * 86400 + h * 3600 + mi * 60 + se;
    let rest = s.get(19..)?;
    let tz = rest.trim_start_matches(|c: char| c == '.' || c.is_ascii_digit());
    if let Some(sign) = tz.chars().next().filter(|c| *c == '+' || *c == '-') {
        let oh: i64 = tz.get(1..3)?.parse().ok()?;
        let om: i64 = tz.get(4..6)?.parse().ok()?;
        let off = oh * 3600 + om * 60;
        t -= if sign == '+' { off } else { -off };
    }
    Some(t)
}

/// Days since 1970-01-01 (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, mo: i64, d: i64) -> i64 {
    let y2 = if mo <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `2024-01-02 03:04:05 +0000 UTC`: Go's default time format, which docker shows in CreatedAt.
pub fn go_time(secs: i64) -> String {
    let days = secs.div_euclid(86400);
    let rem = secs.rem_euclid(86400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} +0000 UTC",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// A `--since`/`--until` value as the API wants it: Unix seconds (with fraction) from an
/// RFC 3339 time, a duration before now (`10m`, `1h30m`, `5s`) or a Unix time.
pub fn api_time(s: &str) -> Result<String> {
    if s.parse::<f64>().is_ok() {
        return Ok(s.to_string());
    }
    if let Some(t) = parse_rfc3339(s) {
        return Ok(t.to_string());
    }
    if let Some(d) = parse_duration(s) {
        return Ok((now_secs() - d as i64).to_string());
    }
    Err(Failure::new(format!(
        "invalid time {s:?}: expected an RFC 3339 time, a Unix time or a duration like 10m"
    )))
}

/// Go's `time.ParseDuration` in whole seconds for `h`, `m`, `s`, `ms` units (`1h30m`, `90s`).
pub fn parse_duration_secs_f(s: &str) -> Option<f64> {
    let mut total = 0.0;
    let mut rest = s.trim();
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let n_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let n: f64 = rest[..n_end].parse().ok()?;
        rest = &rest[n_end..];
        let u_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let mult = match &rest[..u_end] {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 0.001,
            "us" | "µs" => 0.000_001,
            "ns" => 0.000_000_001,
            _ => return None,
        };
        total += n * mult;
        rest = &rest[u_end..];
    }
    Some(total)
}

fn parse_duration(s: &str) -> Option<u64> {
    parse_duration_secs_f(s).map(|f| f as u64)
}

/// A `--health-interval`-style duration in nanoseconds.
pub fn duration_nanos(flag: &str, s: &str) -> Result<i64> {
    parse_duration_secs_f(s)
        .map(|f| (f * 1e9) as i64)
        .ok_or_else(|| Failure::new(format!("invalid duration {s:?} for {flag}: e.g. 30s, 1m")))
}

/// Docker's `RAMInBytes`: `512m`, `1g`, `100k`, `1024` (binary units).
pub fn ram_in_bytes(s: &str) -> Result<i64> {
    let t = s.trim().to_ascii_lowercase();
    let t = t.strip_suffix('b').unwrap_or(&t);
    let (num, mult) = match t.chars().last() {
        Some('k') => (&t[..t.len() - 1], 1i64 << 10),
        Some('m') => (&t[..t.len() - 1], 1 << 20),
        Some('g') => (&t[..t.len() - 1], 1 << 30),
        Some('t') => (&t[..t.len() - 1], 1 << 40),
        _ => (t, 1),
    };
    let n: f64 = num
        .parse()
        .map_err(|_| Failure::new(format!("invalid size: {s:?}")))?;
    Ok((n * mult as f64) as i64)
}

/// Docker's `stringid.TruncateID`: 12 hex digits, without `sha256:`.
pub fn short_id(id: &str) -> String {
    let hex = id.split_once(':').map(|(_, h)| h).unwrap_or(id);
    hex.chars().take(12).collect()
}

/// Docker's `Ellipsis`: at most `max` characters, the last one `…` when cut.
pub fn ellipsis(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(max.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}

/// `POST /{what}/prune` with the filters, if any.
pub fn prune_path(base: &str, filters: &berth_api::Filters) -> String {
    if filters.is_empty() {
        base.to_string()
    } else {
        berth_api::client::with_query(base, &[("filters", &filters.to_json())])
    }
}

/// What `docker ... prune` prints: the deleted ids under a title, then the space reclaimed.
pub fn print_pruned(title: &str, deleted: &[String], space_reclaimed: u64) {
    if !deleted.is_empty() {
        outln!("{title}");
        for d in deleted {
            outln!("{d}");
        }
        outln!();
    }
    outln!(
        "Total reclaimed space: {}",
        human_size(space_reclaimed as f64)
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn tables_align_like_tabwriter() {
        let t = table(&[
            vec!["CONTAINER ID".into(), "IMAGE".into(), "NAMES".into()],
            vec!["abc".into(), "busybox".into(), "x".into()],
        ]);
        assert_eq!(
            t,
            "CONTAINER ID   IMAGE     NAMES\nabc            busybox   x\n"
        );
    }

    #[test]
    fn templates() {
        let v = json!({"Names": "web", "ID": "abc", "State": {"Running": true},
                       "Labels": {"a": "1"}, "Cmd": ["sh", "-c"]});
        let t = |s: &str| Template::parse(s).unwrap().render(&v).unwrap();
        assert_eq!(t("{{.Names}}"), "web");
        assert_eq!(t("{{.ID}}\\t{{.Names}}"), "abc\tweb");
        assert_eq!(t("{{.State.Running}}"), "true");
        assert_eq!(t("{{json .Cmd}}"), r#"["sh","-c"]"#);
        assert_eq!(t("{{index .Labels \"a\"}}"), "1");
        assert_eq!(t("{{.Cmd}}"), "[sh -c]");
        assert_eq!(t("{{upper .Names}}"), "WEB");
        assert!(Template::parse("{{.Names").is_err());
        assert!(Template::parse("{{nope .Names}}").is_err());
        let rows = render(
            std::slice::from_ref(&v),
            &Format::parse(Some("table {{.ID}}\t{{.Names}}")),
            "",
            &|f| f.to_uppercase(),
        )
        .unwrap();
        assert_eq!(rows, "ID        NAMES\nabc       web\n");
    }

    #[test]
    fn sizes_and_times() {
        assert_eq!(human_size(0.0), "0B");
        assert_eq!(human_size(4_261_000.0), "4.26MB");
        assert_eq!(human_size(124_300_000.0), "124MB");
        assert_eq!(bytes_size(1536.0), "1.5KiB");
        assert_eq!(human_size_digits(4_126_000.0, 4), "4.126MB");
        assert_eq!(human_size_digits(0.0, 4), "0B");
        assert_eq!(parse_rfc3339("2000-01-01T00:00:00Z"), Some(946_684_800));
        assert_eq!(
            parse_rfc3339("2000-01-01T01:00:00.123+01:00"),
            Some(946_684_800)
        );
        assert_eq!(go_time(946_684_800), "2000-01-01 00:00:00 +0000 UTC");
        assert_eq!(parse_duration_secs_f("1h30m"), Some(5400.0));
        assert_eq!(parse_duration_secs_f("500ms"), Some(0.5));
        assert_eq!(ram_in_bytes("512m").unwrap(), 512 << 20);
        assert_eq!(ram_in_bytes("1g").unwrap(), 1 << 30);
        assert_eq!(short_id("sha256:0123456789abcdef"), "0123456789ab");
        assert_eq!(ellipsis("abcdef", 4), "abc…");
    }
}
