//! Image references (`[domain/]path[:tag][@digest]`): parsing and normalisation like Docker's
//! `ParseNormalizedNamed`, and the short "familiar" form docker prints.

use std::fmt;
use std::str::FromStr;

use crate::store::Digest;

/// The registry used when a reference names none.
pub const DEFAULT_DOMAIN: &str = "docker.io";
/// The namespace of official images on the default registry.
pub const OFFICIAL_NAMESPACE: &str = "library";
/// The tag used when a reference has neither tag nor digest.
pub const DEFAULT_TAG: &str = "latest";

const LEGACY_DEFAULT_DOMAIN: &str = "index.docker.io";
const MAX_NAME_LEN: usize = 255;
const MAX_TAG_LEN: usize = 128;

/// A reference that could not be parsed.
#[derive(Debug, thiserror::Error)]
#[error("invalid reference format {reference:?}: {reason}")]
pub struct ReferenceError {
    pub reference: String,
    pub reason: String,
}

pub type Result<T, E = ReferenceError> = std::result::Result<T, E>;

/// A normalised image reference.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Reference {
    /// Registry host with optional port, e.g. `docker.io`, `localhost:5000`.
    pub domain: String,
    /// Repository path inside the registry, e.g. `library/busybox`.
    pub path: String,
    /// Tag; `latest` when the reference named neither tag nor digest.
    pub tag: Option<String>,
    /// Manifest digest pinned by `@sha256:...`.
    pub digest: Option<Digest>,
}

impl Reference {
    /// Parse and normalise a reference: `busybox` is `docker.io/library/busybox:latest`.
    pub fn parse(s: &str) -> Result<Reference> {
        let err = |reason: &str| ReferenceError {
            reference: s.to_string(),
            reason: reason.to_string(),
        };
        if s.is_empty() {
            return Err(err("empty reference"));
        }
        let (rest, digest) = match s.split_once('@') {
            Some((rest, d)) => {
                let digest = Digest::from_str(d).map_err(|e| err(&e.to_string()))?;
                (rest, Some(digest))
            }
            None => (s, None),
        };
        // A tag follows the last ':' that comes after the last '/'.
        let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => {
                let i = last_slash + i;
                (&rest[..i], Some(&rest[i + 1..]))
            }
            None => (rest, None),
        };
        if let Some(tag) = tag {
            if !valid_tag(tag) {
                return Err(err(&format!("invalid tag {tag:?}")));
            }
        }
        if name.is_empty() {
            return Err(err("empty repository name"));
        }
        if name.len() > MAX_NAME_LEN {
            return Err(err(
                "repository name must not be longer than 255 characters",
            ));
        }
        if is_full_hex_id(name) {
            return Err(err(
                "cannot specify 64-byte hexadecimal strings as a repository name",
            ));
        }

        let (mut domain, mut path) = split_domain(name);
        if domain == LEGACY_DEFAULT_DOMAIN {
            domain = DEFAULT_DOMAIN.to_string();
        }
        if domain == DEFAULT_DOMAIN && !path.contains('/') {
            path = format!("{OFFICIAL_NAMESPACE}/{path}");
        }
        if path.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(err("repository name must be lowercase"));
        }
        if !valid_domain(&domain) {
            return Err(err(&format!("invalid registry domain {domain:?}")));
        }
        if !path.split('/').all(valid_path_component) {
            return Err(err(&format!("invalid repository path {path:?}")));
        }
        if domain.len() + 1 + path.len() > MAX_NAME_LEN {
            return Err(err(
                "repository name must not be longer than 255 characters",
            ));
        }
        let tag = match (tag, &digest) {
            (Some(t), _) => Some(t.to_string()),
            (None, Some(_)) => None,
            (None, None) => Some(DEFAULT_TAG.to_string()),
        };
        Ok(Reference {
            domain,
            path,
            tag,
            digest,
        })
    }

    /// The repository in full form: `docker.io/library/busybox`.
    pub fn repository(&self) -> String {
        format!("{}/{}", self.domain, self.path)
    }

    /// The repository in the short form docker prints: `busybox`, `user/app`,
    /// `localhost:5000/x`.
    pub fn familiar_repository(&self) -> String {
        if self.domain != DEFAULT_DOMAIN {
            return self.repository();
        }
        match self.path.strip_prefix("library/") {
            Some(rest) if !rest.contains('/') => rest.to_string(),
            _ => self.path.clone(),
        }
    }

    /// The short form docker prints: `busybox:latest`, `user/app:1`.
    pub fn familiar(&self) -> String {
        let mut s = self.familiar_repository();
        self.push_suffix(&mut s);
        s
    }

    /// The tag, or `latest` when the reference has none.
    pub fn tag_or_default(&self) -> &str {
        self.tag.as_deref().unwrap_or(DEFAULT_TAG)
    }

    /// The same repository with another tag and no digest.
    pub fn with_tag(&self, tag: &str) -> Result<Reference> {
        if !valid_tag(tag) {
            return Err(ReferenceError {
                reference: format!("{}:{tag}", self.repository()),
                reason: format!("invalid tag {tag:?}"),
            });
        }
        Ok(Reference {
            domain: self.domain.clone(),
            path: self.path.clone(),
            tag: Some(tag.to_string()),
            digest: None,
        })
    }

    fn push_suffix(&self, s: &mut String) {
        if let Some(tag) = &self.tag {
            s.push(':');
            s.push_str(tag);
        }
        if let Some(d) = &self.digest {
            s.push('@');
            s.push_str(d.as_str());
        }
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = self.repository();
        self.push_suffix(&mut s);
        f.write_str(&s)
    }
}

impl FromStr for Reference {
    type Err = ReferenceError;

    fn from_str(s: &str) -> Result<Reference> {
        Reference::parse(s)
    }
}

impl serde::Serialize for Reference {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> serde::Deserialize<'de> for Reference {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Reference::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// Whether `s` is 64 lowercase hex characters (an image id, never a repository name).
pub(crate) fn is_full_hex_id(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Split a name into domain and path like Docker's `splitDockerDomain`.
fn split_domain(name: &str) -> (String, String) {
    match name.split_once('/') {
        Some((first, rest))
            if first.contains('.')
                || first.contains(':')
                || first == "localhost"
                || first.bytes().any(|b| b.is_ascii_uppercase()) =>
        {
            (first.to_string(), rest.to_string())
        }
        _ => (DEFAULT_DOMAIN.to_string(), name.to_string()),
    }
}

/// `[\w][\w.-]{0,127}`
fn valid_tag(tag: &str) -> bool {
    let b = tag.as_bytes();
    !b.is_empty()
        && b.len() <= MAX_TAG_LEN
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b[1..]
            .iter()
            .all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
}

/// `host[:port]` where host is a dotted list of `[a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?` or a
/// bracketed IPv6 address.
fn valid_domain(domain: &str) -> bool {
    let (host, port) = if let Some(rest) = domain.strip_prefix('[') {
        let Some((v6, after)) = rest.split_once(']') else {
            return false;
        };
        if v6.is_empty() || !v6.bytes().all(|b| b.is_ascii_hexdigit() || b == b':') {
            return false;
        }
        match after {
            "" => return true,
            p => match p.strip_prefix(':') {
                Some(port) => (None, Some(port)),
                None => return false,
            },
        }
    } else {
        match domain.rsplit_once(':') {
            Some((h, p)) => (Some(h), Some(p)),
            None => (Some(domain), None),
        }
    };
    if let Some(port) = port {
        if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
            return false;
        }
    }
    match host {
        None => true,
        Some(h) => !h.is_empty() && h.split('.').all(valid_domain_component),
    }
}

fn valid_domain_component(c: &str) -> bool {
    let b = c.as_bytes();
    !b.is_empty()
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter().all(|&x| x.is_ascii_alphanumeric() || x == b'-')
}

/// `[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*`
fn valid_path_component(c: &str) -> bool {
    let b = c.as_bytes();
    let alnum = |x: u8| x.is_ascii_lowercase() || x.is_ascii_digit();
    if b.is_empty() || !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        // A separator run: ".", "_", "__", or one or more "-".
        let start = i;
        while i < b.len() && !alnum(b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-');
        if !ok {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    fn full(s: &str) -> String {
        Reference::parse(s).unwrap().to_string()
    }

    #[test]
    fn normalises_like_docker() {
        let cases = [
            (
                "busybox",
                "docker.io/library/busybox:latest",
                "busybox:latest",
            ),
            (
                "busybox:1.36",
                "docker.io/library/busybox:1.36",
                "busybox:1.36",
            ),
            (
                "library/busybox",
                "docker.io/library/busybox:latest",
                "busybox:latest",
            ),
            (
                "docker.io/busybox",
                "docker.io/library/busybox:latest",
                "busybox:latest",
            ),
            (
                "index.docker.io/busybox",
                "docker.io/library/busybox:latest",
                "busybox:latest",
            ),
            ("user/app:1", "docker.io/user/app:1", "user/app:1"),
            (
                "docker.io/library/a/b",
                "docker.io/library/a/b:latest",
                "library/a/b:latest",
            ),
            ("localhost/x", "localhost/x:latest", "localhost/x:latest"),
            (
                "localhost:5000/x",
                "localhost:5000/x:latest",
                "localhost:5000/x:latest",
            ),
            (
                "registry.example.com/a/b:tag",
                "registry.example.com/a/b:tag",
                "registry.example.com/a/b:tag",
            ),
            (
                "foo_bar.com:8080/x",
                "foo_bar.com:8080/x:latest",
                "foo_bar.com:8080/x:latest",
            ),
            (
                "a__b/c-d--e.f",
                "docker.io/a__b/c-d--e.f:latest",
                "a__b/c-d--e.f:latest",
            ),
            ("[::1]:5000/x:v1", "[::1]:5000/x:v1", "[::1]:5000/x:v1"),
            (
                "Example.COM/x",
                "Example.COM/x:latest",
                "Example.COM/x:latest",
            ),
        ];
        for (input, want_full, want_familiar) in cases {
            if input.starts_with("foo_bar") {
                // '_' is not allowed in a domain: docker refuses it.
                assert!(Reference::parse(input).is_err(), "{input}");
                continue;
            }
            let r = Reference::parse(input).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(r.to_string(), want_full, "{input}");
            assert_eq!(r.familiar(), want_familiar, "{input}");
            // Round trip through the full form.
            assert_eq!(Reference::parse(&r.to_string()).unwrap(), r);
        }
    }

    #[test]
    fn digests() {
        let r = Reference::parse(&format!("localhost:5000/x@{D}")).unwrap();
        assert_eq!(r.domain, "localhost:5000");
        assert_eq!(r.path, "x");
        assert_eq!(r.tag, None);
        assert_eq!(r.digest.as_ref().map(|d| d.as_str()), Some(D));
        assert_eq!(r.to_string(), format!("localhost:5000/x@{D}"));
        assert_eq!(r.familiar(), format!("localhost:5000/x@{D}"));
        let r = Reference::parse(&format!("busybox:1@{D}")).unwrap();
        assert_eq!(r.to_string(), format!("docker.io/library/busybox:1@{D}"));
        assert_eq!(r.familiar(), format!("busybox:1@{D}"));
        assert_eq!(r.repository(), "docker.io/library/busybox");
        assert!(Reference::parse("busybox@sha256:abc").is_err());
        assert!(Reference::parse(&format!("busybox@{}", D.replace("sha256", "md5"))).is_err());
    }

    #[test]
    fn repository_forms() {
        let r = Reference::parse("busybox").unwrap();
        assert_eq!(r.repository(), "docker.io/library/busybox");
        assert_eq!(r.familiar_repository(), "busybox");
        let r = Reference::parse("user/app:1").unwrap();
        assert_eq!(r.repository(), "docker.io/user/app");
        assert_eq!(r.familiar_repository(), "user/app");
        assert_eq!(r.tag_or_default(), "1");
        assert_eq!(full("user/app:1"), "docker.io/user/app:1");
        assert_eq!(r.with_tag("2").unwrap().familiar(), "user/app:2");
        assert!(r.with_tag("-bad").is_err());
    }

    #[test]
    fn refuses_bad_references() {
        let bad = [
            "",
            "Busybox",
            "user/App",
            "docker.io/Library/busybox",
            "busybox:",
            "busybox:-tag",
            "busybox:.tag",
            "busybox:ta/g",
            "busybox:tag!",
            ":tag",
            "/busybox",
            "busybox/",
            "a//b",
            "a..b",
            "a---",
            "-a",
            "a.-b",
            "a___b",
            "localhost:port/x",
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            "busybox@",
            "bus box",
        ];
        for b in bad {
            let err = Reference::parse(b).expect_err(b);
            let msg = err.to_string();
            assert!(msg.starts_with("invalid reference format"), "{msg}");
            assert!(msg.contains(&format!("{b:?}")), "{msg}");
        }
        let long_tag = format!("busybox:{}", "a".repeat(129));
        assert!(Reference::parse(&long_tag).is_err());
        assert!(Reference::parse(&format!("busybox:{}", "a".repeat(128))).is_ok());
        let long_name = "a".repeat(256);
        assert!(Reference::parse(&long_name).is_err());
    }

    #[test]
    fn bad_tag_error_names_the_reference() {
        let err = Reference::parse("busybox:bad~tag").unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid reference format \"busybox:bad~tag\": invalid tag \"bad~tag\""
        );
        let err = Reference::parse("Busybox").unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid reference format \"Busybox\": repository name must be lowercase"
        );
    }

    #[test]
    fn serde_uses_full_form() {
        let r = Reference::parse("busybox").unwrap();
        let j = serde_json::to_string(&r).unwrap();
        assert_eq!(j, "\"docker.io/library/busybox:latest\"");
        assert_eq!(serde_json::from_str::<Reference>(&j).unwrap(), r);
    }
}
