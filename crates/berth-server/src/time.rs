//! Times on the wire: RFC 3339 to Unix seconds (ps and images show `Created` as seconds),
//! `since`/`until` query values (Unix seconds with an optional fraction), and durations since
//! a timestamp for `docker ps`'s STATUS.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::error::ApiError;

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
}

/// Unix nanoseconds of an RFC 3339 time (`2024-05-01T10:00:00.123456789Z`,
/// `2024-05-01T12:00:00+02:00`); `None` if it is not one.
pub fn parse_rfc3339_nanos(s: &str) -> Option<i64> {
    let s = s.trim();
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let t = s.get(r)?;
        if t.bytes().all(|c| c.is_ascii_digit()) {
            t.parse().ok()
        } else {
            None
        }
    };
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let (hour, min, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || min > 59 || sec > 60 {
        return None;
    }
    let mut i = 19;
    let mut nanos: i64 = 0;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        let frac = s.get(start..i)?;
        if frac.is_empty() {
            return None;
        }
        let mut digits: String = frac.chars().take(9).collect();
        while digits.len() < 9 {
            digits.push('0');
        }
        nanos = digits.parse().ok()?;
    }
    let offset = match s.get(i..)? {
        "Z" | "z" => 0,
        tz if tz.len() == 6 && (tz.starts_with('+') || tz.starts_with('-')) => {
            let h: i64 = tz.get(1..3)?.parse().ok()?;
            let m: i64 = tz.get(4..6)?.parse().ok()?;
            let sign = if tz.starts_with('-') { -1 } else { 1 };
            sign * (h * 3600 + m * 60)
        }
        _ => return None,
    };
    let days = days_from_civil(year, month, day);
    let secs = days * 86400 + hour * 3600 + min * 60 + sec - offset;
    secs.checked_mul(1_000_000_000)?.checked_add(nanos)
}

/// Unix seconds of an RFC 3339 time; 0 when unset or unparsable, and for Go's zero time.
pub fn rfc3339_to_unix(s: &str) -> i64 {
    match parse_rfc3339_nanos(s) {
        Some(n) if n > 0 => n / 1_000_000_000,
        _ => 0,
    }
}

/// Now, in Unix nanoseconds.
pub fn now_nanos() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

/// Time elapsed since an RFC 3339 time (zero if it is in the future or unparsable).
pub fn since(s: &str) -> Duration {
    match parse_rfc3339_nanos(s) {
        Some(t) if t > 0 => {
            let d = now_nanos().saturating_sub(t);
            Duration::from_nanos(d.max(0) as u64)
        }
        _ => Duration::ZERO,
    }
}

/// A `since`/`until` query value in Unix nanoseconds: `1700000000`, `1700000000.5`,
/// `1700000000.000000001`, or an RFC 3339 time. Empty is `None`.
pub fn parse_timestamp(key: &str, v: &str) -> Result<Option<i64>, ApiError> {
    let v = v.trim();
    if v.is_empty() {
        return Ok(None);
    }
    if let Some(n) = parse_rfc3339_nanos(v) {
        return Ok(Some(n));
    }
    let bad =
        || ApiError::bad_request(format!("invalid value for {key}: {v:?} is not a timestamp"));
    let (secs, frac) = v.split_once('.').unwrap_or((v, ""));
    let secs: i64 = secs.parse().map_err(|_| bad())?;
    if !frac.bytes().all(|c| c.is_ascii_digit()) {
        return Err(bad());
    }
    let mut digits: String = frac.chars().take(9).collect();
    while digits.len() < 9 {
        digits.push('0');
    }
    let nanos: i64 = digits.parse().map_err(|_| bad())?;
    secs.checked_mul(1_000_000_000)
        .and_then(|s| s.checked_add(if secs < 0 { -nanos } else { nanos }))
        .map(Some)
        .ok_or_else(bad)
}

/// Unix nanoseconds as RFC 3339 UTC with nanoseconds (`2024-05-01T10:00:00.000000001Z`).
pub fn format_rfc3339_nanos(nanos: i64) -> String {
    let secs = nanos.div_euclid(1_000_000_000);
    let frac = nanos.rem_euclid(1_000_000_000);
    let days = secs.div_euclid(86400);
    let rem = secs.rem_euclid(86400);
    // civil_from_days
    let z = days + 719468;
    let era = if z >= 0 { z } else { z - 146096 } / 146097;
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{frac:09}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_round_trip() {
        assert_eq!(rfc3339_to_unix("1970-01-01T00:00:00Z"), 0);
        assert_eq!(rfc3339_to_unix("2024-05-01T10:00:00Z"), 1714557600);
        assert_eq!(rfc3339_to_unix("2024-05-01T12:00:00+02:00"), 1714557600);
        assert_eq!(
            parse_rfc3339_nanos("2024-05-01T10:00:00.5Z"),
            Some(1_714_557_600_500_000_000)
        );
        assert_eq!(rfc3339_to_unix("0001-01-01T00:00:00Z"), 0);
        assert_eq!(rfc3339_to_unix("garbage"), 0);
        assert_eq!(
            format_rfc3339_nanos(1_714_557_600_000_000_001),
            "2024-05-01T10:00:00.000000001Z"
        );
        let n = 1_700_000_123_456_789_012;
        assert_eq!(parse_rfc3339_nanos(&format_rfc3339_nanos(n)), Some(n));
    }

    #[test]
    fn query_timestamps() {
        assert_eq!(parse_timestamp("since", ""), Ok(None));
        assert_eq!(
            parse_timestamp("since", "1700000000"),
            Ok(Some(1_700_000_000_000_000_000))
        );
        assert_eq!(
            parse_timestamp("since", "1700000000.25"),
            Ok(Some(1_700_000_000_250_000_000))
        );
        assert_eq!(
            parse_timestamp("until", "1700000000.000000001"),
            Ok(Some(1_700_000_000_000_000_001))
        );
        assert!(parse_timestamp("since", "yesterday").is_err());
        assert!(parse_timestamp("since", "1.x").is_err());
    }
}
