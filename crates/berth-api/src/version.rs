//! API versions: the `/v1.NN/` path prefix, comparison, the range Berth speaks and the errors
//! Docker gives outside it.
//!
//! The docker CLI pings first and then speaks min(its own version, the server's
//! `Api-Version`); a server that sends no `Api-Version` is taken to speak 1.24. So the
//! version Berth advertises decides which request and response shapes the CLI 28 (API 1.50)
//! will use against it.
//!
//! [`MAX_API`] is 1.43, the version of Docker 24. It is the newest version whose shapes the
//! engine means to implement fully, and every version the issue asks for (1.41 and up) is
//! below it. The versions after it change things Berth does not do yet, or takes
//! away things clients still read: 1.44 adds several networks at create time, moves
//! `MacAddress` to the endpoint and adds the health check `StartInterval`; 1.45 and later
//! drop `ContainerConfig` from image inspect (older compose versions read it) and add the
//! image manifest and platform fields of 1.46 to 1.50. Advertising 1.43 makes the CLI send
//! shapes the engine understands; raise it here once the server implements what a later
//! version adds. Requests for any version from [`MIN_API`] up to [`MAX_API`] are accepted,
//! and unversioned paths are served as [`MAX_API`], as dockerd does.

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

use thiserror::Error;

/// The newest API version Berth speaks and advertises (see the module doc).
pub const MAX_API: &str = "1.43";
/// The oldest API version Berth accepts (as dockerd 28 does).
pub const MIN_API: &str = "1.24";
/// The version a client assumes when `/_ping` has no `Api-Version` header.
pub const PING_FALLBACK: &str = "1.24";

/// An API version, `major.minor`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ApiVersion {
    pub major: u32,
    pub minor: u32,
}

/// A version outside the supported range, or not a version.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum VersionError {
    #[error("invalid API version {0:?}")]
    Invalid(String),
    /// dockerd's exact message (a 400).
    #[error("client version {requested} is too new. Maximum supported API version is {max}")]
    TooNew { requested: String, max: String },
    /// dockerd's exact message (a 400).
    #[error("client version {requested} is too old. Minimum supported API version is {min}, please upgrade your client to a newer version")]
    TooOld { requested: String, min: String },
}

impl ApiVersion {
    pub const fn new(major: u32, minor: u32) -> ApiVersion {
        ApiVersion { major, minor }
    }

    /// [`MAX_API`].
    pub fn max() -> ApiVersion {
        ApiVersion::new(1, 43)
    }

    /// [`MIN_API`].
    pub fn min() -> ApiVersion {
        ApiVersion::new(1, 24)
    }

    /// `1.41`; also `1` (= 1.0) and `1.41.0` (patch ignored), like Docker's comparison.
    pub fn parse(s: &str) -> Result<ApiVersion, VersionError> {
        let bad = || VersionError::Invalid(s.to_string());
        let mut parts = s.split('.');
        let num = |p: Option<&str>| -> Result<Option<u32>, VersionError> {
            match p {
                None => Ok(None),
                Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => {
                    p.parse().map(Some).map_err(|_| bad())
                }
                Some(_) => Err(bad()),
            }
        };
        let major = num(parts.next())?.ok_or_else(bad)?;
        let minor = num(parts.next())?.unwrap_or(0);
        num(parts.next())?;
        if parts.next().is_some() {
            return Err(bad());
        }
        Ok(ApiVersion { major, minor })
    }

    /// Whether this version is at least `other` (`v.at_least(ApiVersion::new(1, 42))`).
    pub fn at_least(self, other: ApiVersion) -> bool {
        self >= other
    }

    /// The path prefix `/v1.43`.
    pub fn prefix(self) -> String {
        format!("/v{self}")
    }
}

impl fmt::Display for ApiVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

impl FromStr for ApiVersion {
    type Err = VersionError;
    fn from_str(s: &str) -> Result<ApiVersion, VersionError> {
        ApiVersion::parse(s)
    }
}

/// Compares two version strings as Docker does (`versions.Compare`); strings that are not
/// versions compare as equal to nothing and sort first.
pub fn compare(a: &str, b: &str) -> Ordering {
    match (ApiVersion::parse(a), ApiVersion::parse(b)) {
        (Ok(a), Ok(b)) => a.cmp(&b),
        (Err(_), Ok(_)) => Ordering::Less,
        (Ok(_), Err(_)) => Ordering::Greater,
        (Err(_), Err(_)) => a.cmp(b),
    }
}

/// Splits a request path into its version and the rest: `/v1.41/containers/json` gives
/// `(Some(1.41), "/containers/json")`; `/containers/json` gives `(None, "/containers/json")`;
/// `/v1.41` gives `(Some(1.41), "/")`. A first segment that looks like a version
/// (`v` then digits and dots) but is not one is an error.
pub fn split_version_path(path: &str) -> Result<(Option<ApiVersion>, &str), VersionError> {
    let Some(rest) = path.strip_prefix("/v") else {
        return Ok((None, path));
    };
    let (segment, tail) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let looks_like_version = segment.starts_with(|c: char| c.is_ascii_digit())
        && segment.bytes().all(|b| b.is_ascii_digit() || b == b'.');
    if !looks_like_version {
        return Ok((None, path));
    }
    Ok((Some(ApiVersion::parse(segment)?), tail))
}

/// The version to serve a request at: the requested one if within [`MIN_API`]..=[`MAX_API`],
/// [`MAX_API`] when the path had none.
pub fn check(requested: Option<ApiVersion>) -> Result<ApiVersion, VersionError> {
    let Some(v) = requested else {
        return Ok(ApiVersion::max());
    };
    if v > ApiVersion::max() {
        return Err(VersionError::TooNew {
            requested: v.to_string(),
            max: MAX_API.to_string(),
        });
    }
    if v < ApiVersion::min() {
        return Err(VersionError::TooOld {
            requested: v.to_string(),
            min: MIN_API.to_string(),
        });
    }
    Ok(v)
}

/// What a client should speak: min(its own newest, the server's `Api-Version`), with 1.24
/// when the server sent none or something unparsable.
pub fn negotiate(client_max: ApiVersion, server: Option<&str>) -> ApiVersion {
    let server = server
        .and_then(|s| ApiVersion::parse(s.trim()).ok())
        .unwrap_or(ApiVersion::new(1, 24));
    client_max.min(server)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constants_agree() {
        assert_eq!(ApiVersion::max().to_string(), MAX_API);
        assert_eq!(ApiVersion::min().to_string(), MIN_API);
        assert_eq!(ApiVersion::parse(PING_FALLBACK), Ok(ApiVersion::min()));
    }

    #[test]
    fn parse_and_compare() {
        assert_eq!(ApiVersion::parse("1.41"), Ok(ApiVersion::new(1, 41)));
        assert_eq!(ApiVersion::parse("1"), Ok(ApiVersion::new(1, 0)));
        assert_eq!(ApiVersion::parse("1.41.0"), Ok(ApiVersion::new(1, 41)));
        for bad in ["", "1.", "x", "1.4a", "1.2.3.4", ".1", "-1.2"] {
            assert!(ApiVersion::parse(bad).is_err(), "{bad:?}");
        }
        // Numeric, not lexical: 1.9 < 1.24 < 1.100.
        assert!(ApiVersion::new(1, 9) < ApiVersion::new(1, 24));
        assert_eq!(compare("1.24", "1.100"), Ordering::Less);
        assert_eq!(compare("1.41", "1.41.0"), Ordering::Equal);
        assert!(ApiVersion::new(1, 43).at_least(ApiVersion::new(1, 42)));
        assert_eq!(ApiVersion::new(1, 41).prefix(), "/v1.41");
    }

    #[test]
    fn split_paths() {
        assert_eq!(
            split_version_path("/v1.41/containers/json"),
            Ok((Some(ApiVersion::new(1, 41)), "/containers/json"))
        );
        assert_eq!(
            split_version_path("/containers/json"),
            Ok((None, "/containers/json"))
        );
        assert_eq!(split_version_path("/version"), Ok((None, "/version")));
        assert_eq!(split_version_path("/volumes"), Ok((None, "/volumes")));
        assert_eq!(
            split_version_path("/v1.50/_ping"),
            Ok((Some(ApiVersion::new(1, 50)), "/_ping"))
        );
        assert_eq!(
            split_version_path("/v1.43"),
            Ok((Some(ApiVersion::new(1, 43)), "/"))
        );
        assert!(split_version_path("/v1..2/info").is_err());
    }

    #[test]
    fn range_and_messages() {
        assert_eq!(check(None), Ok(ApiVersion::max()));
        assert_eq!(
            check(Some(ApiVersion::new(1, 41))),
            Ok(ApiVersion::new(1, 41))
        );
        assert_eq!(
            check(Some(ApiVersion::new(1, 99))).unwrap_err().to_string(),
            "client version 1.99 is too new. Maximum supported API version is 1.43"
        );
        assert_eq!(
            check(Some(ApiVersion::new(1, 23))).unwrap_err().to_string(),
            "client version 1.23 is too old. Minimum supported API version is 1.24, please upgrade your client to a newer version"
        );
    }

    #[test]
    fn negotiation() {
        let cli28 = ApiVersion::new(1, 50);
        assert_eq!(negotiate(cli28, Some(MAX_API)), ApiVersion::new(1, 43));
        assert_eq!(negotiate(cli28, Some("1.41")), ApiVersion::new(1, 41));
        assert_eq!(negotiate(cli28, None), ApiVersion::new(1, 24));
        assert_eq!(negotiate(cli28, Some("garbage")), ApiVersion::new(1, 24));
        assert_eq!(
            negotiate(ApiVersion::new(1, 40), Some("1.43")),
            ApiVersion::new(1, 40)
        );
    }
}
