//! The query string: percent-decoding, and lenient typed reads (unknown parameters are
//! ignored; booleans as Docker reads them, `1`, `true`, `True`...).

use crate::error::ApiError;

/// Decoded `key=value` pairs, in order; a key may repeat (`names=a&names=b`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Query {
    pairs: Vec<(String, String)>,
}

/// Percent-decodes `s`; with `plus`, `+` is a space (query strings).
pub fn percent_decode(s: &str, plus: bool) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b'+' if plus => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

impl Query {
    pub fn parse(raw: Option<&str>) -> Query {
        let pairs = raw
            .unwrap_or("")
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|p| {
                let (k, v) = p.split_once('=').unwrap_or((p, ""));
                (percent_decode(k, true), percent_decode(v, true))
            })
            .collect();
        Query { pairs }
    }

    /// The last value of `key` (as Go's `r.Form.Get` takes the first; clients send one).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The value of `key`, `None` when absent or empty.
    pub fn non_empty(&self, key: &str) -> Option<&str> {
        self.get(key).filter(|v| !v.is_empty())
    }

    pub fn get_all(&self, key: &str) -> Vec<String> {
        self.pairs
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// Docker's `BoolValue`: anything but absent, ``, `0`, `no`, `false`, `none` is true.
    pub fn bool(&self, key: &str) -> bool {
        match self.get(key) {
            None => false,
            Some(v) => !matches!(
                v.trim().to_ascii_lowercase().as_str(),
                "" | "0" | "no" | "false" | "none"
            ),
        }
    }

    /// Like [`Query::bool`], with a default when the parameter is absent.
    pub fn bool_or(&self, key: &str, default: bool) -> bool {
        if self.get(key).is_some() {
            self.bool(key)
        } else {
            default
        }
    }

    /// An integer parameter; absent or empty is `None`, anything else must parse.
    pub fn int(&self, key: &str) -> Result<Option<i64>, ApiError> {
        match self.non_empty(key) {
            None => Ok(None),
            Some(v) => v.trim().parse().map(Some).map_err(|_| {
                ApiError::bad_request(format!("invalid value for {key}: {v:?} is not an integer"))
            }),
        }
    }

    /// A required `u16` (`h`, `w` of resize).
    pub fn u16_required(&self, key: &str) -> Result<u16, ApiError> {
        let v = self
            .non_empty(key)
            .ok_or_else(|| ApiError::bad_request(format!("missing query parameter {key}")))?;
        v.trim().parse().map_err(|_| {
            ApiError::bad_request(format!(
                "invalid value for {key}: {v:?} is not a number from 0 to 65535"
            ))
        })
    }

    /// The `filters` parameter.
    pub fn filters(&self) -> Result<berth_api::Filters, ApiError> {
        Ok(berth_api::Filters::parse(
            self.get("filters").unwrap_or(""),
        )?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_and_reads_leniently() {
        let q = Query::parse(Some(
            "all=1&size=True&force=false&name=a%20b+c&names=x&names=y%2Fz&t=10&junk&filters=%7B%22name%22%3A%7B%22web%22%3Atrue%7D%7D",
        ));
        assert!(q.bool("all"));
        assert!(q.bool("size"));
        assert!(!q.bool("force"));
        assert!(!q.bool("absent"));
        assert!(q.bool_or("absent", true));
        assert_eq!(q.get("name"), Some("a b c"));
        assert_eq!(q.get_all("names"), vec!["x", "y/z"]);
        assert_eq!(q.int("t"), Ok(Some(10)));
        assert_eq!(q.int("absent"), Ok(None));
        assert_eq!(q.get("junk"), Some(""));
        assert!(q.filters().unwrap().include("name", "web"));
        assert!(!q.filters().unwrap().include("name", "db"));
        let bad = Query::parse(Some("t=ten&h=70000"));
        assert_eq!(bad.int("t").unwrap_err().status.as_u16(), 400);
        assert!(bad.u16_required("h").is_err());
        assert!(bad.u16_required("w").is_err());
    }

    #[test]
    fn percent_decoding_edge_cases() {
        assert_eq!(percent_decode("100%", false), "100%");
        assert_eq!(percent_decode("%zz", false), "%zz");
        assert_eq!(percent_decode("a+b", false), "a+b");
        assert_eq!(percent_decode("%2f%2F", false), "//");
        assert_eq!(percent_decode("%4", false), "%4");
    }
}
