//! Docker Engine API request and response bodies, plus the serde helpers they share.
//!
//! Conventions, so that JSON from the docker CLI 28, the Python SDK and older clients parses
//! and what Berth sends parses in them:
//! - every struct is `#[serde(default)]`: a field a client leaves out takes its zero value;
//!   unknown fields are ignored;
//! - a list or map that Docker may send as `null` is either an `Option` (serialised back as
//!   `null`, as dockerd does for a nil slice) or, where clients depend on an object or array
//!   being there (`NetworkSettings.Ports`, `Networks`, `Names`...), a plain collection read
//!   with [`null_default`], so it can never be written as `null`;
//! - `null` for any field means "not given", as with Go's encoding/json (the Python SDK
//!   sends `"Interval": null` inside `Healthcheck`): every struct is declared through
//!   `wire!`, which reads each field with [`null_default`];
//! - durations are integers in nanoseconds, as in Docker.

/// Declares a wire struct as written, reading every field with [`null_default`], so that
/// `null` is the same as leaving the field out. (`Option` fields stay `None`; a field that
/// must never be written as `null`, like `NetworkSettings.Ports`, is a plain map.)
///
/// Flattened fields go in a trailing `flatten { ... }` block: they get `#[serde(flatten)]`
/// and no null reader, which would make serde swallow their errors.
macro_rules! wire {
    (
        $(#[$m:meta])*
        pub struct $name:ident {
            $(
                $(#[$fm:meta])*
                pub $f:ident : $t:ty
            ),* $(,)?
        }
        $(
            flatten {
                $(
                    $(#[$xm:meta])*
                    pub $x:ident : $xt:ty
                ),* $(,)?
            }
        )?
    ) => {
        $(#[$m])*
        pub struct $name {
            $(
                $(#[$fm])*
                #[serde(deserialize_with = "crate::types::null_default")]
                pub $f: $t,
            )*
            $($(
                $(#[$xm])*
                #[serde(flatten)]
                pub $x: $xt,
            )*)?
        }
    };
}

pub mod container;
pub mod exec;
pub mod filters;
pub mod image;
pub mod network;
pub mod stats;
pub mod swarm;
pub mod system;
pub mod volume;

pub use container::*;
pub use exec::*;
pub use image::*;
pub use network::*;
pub use stats::*;
pub use system::*;
pub use volume::*;

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A string-keyed map as Docker sends it (`Labels`, `Options`...); sorted, so output is stable.
pub type StringMap = BTreeMap<String, String>;

/// Reads `null` as the type's default value (an empty list or map, `""`, `0`).
pub fn null_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// The empty object Docker uses as a set member: `"ExposedPorts": {"80/tcp": {}}`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Empty {}

/// A command line that clients send either as a string or as an array of strings
/// (`Cmd`, `Entrypoint`, `Shell`, `CapAdd`): Docker's `strslice.StrSlice`. Always written as
/// an array. A string is one element, not split on spaces: `"Entrypoint": "/bin/sh -c"` is
/// the program `/bin/sh -c`, as in dockerd.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StrSlice(pub Vec<String>);

impl StrSlice {
    pub fn new<I: IntoIterator<Item = S>, S: Into<String>>(items: I) -> StrSlice {
        StrSlice(items.into_iter().map(Into::into).collect())
    }

    pub fn as_slice(&self) -> &[String] {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl Serialize for StrSlice {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

impl<'de> Deserialize<'de> for StrSlice {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<StrSlice, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Either {
            One(String),
            Many(Vec<String>),
        }
        Ok(match Option::<Either>::deserialize(d)? {
            None => StrSlice::default(),
            Some(Either::One(s)) => StrSlice(vec![s]),
            Some(Either::Many(v)) => StrSlice(v),
        })
    }
}

impl From<Vec<String>> for StrSlice {
    fn from(v: Vec<String>) -> StrSlice {
        StrSlice(v)
    }
}

wire! {
    /// `{"Id": "..."}`: the reply of exec create and of commit.
    #[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(default)]
    pub struct IdResponse {
        #[serde(rename = "Id")]
        pub id: String,
    }
}

wire! {
    /// Every error body: `{"message": "No such container: nope"}`.
    #[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(default)]
    pub struct ErrorResponse {
        pub message: String,
    }
}

#[cfg(test)]
mod wire_tests;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strslice_reads_string_array_and_null() {
        let one: StrSlice = serde_json::from_str(r#""/bin/sh -c""#).unwrap();
        assert_eq!(one.0, vec!["/bin/sh -c"]);
        let many: StrSlice = serde_json::from_str(r#"["sh","-c","echo hi"]"#).unwrap();
        assert_eq!(many.0, vec!["sh", "-c", "echo hi"]);
        let none: Option<StrSlice> = serde_json::from_str("null").unwrap();
        assert!(none.is_none());
        assert_eq!(serde_json::to_string(&one).unwrap(), r#"["/bin/sh -c"]"#);
    }

    #[test]
    fn error_response_shape() {
        let e: ErrorResponse =
            serde_json::from_str(r#"{"message":"No such container: nope"}"#).unwrap();
        assert_eq!(e.message, "No such container: nope");
        assert_eq!(
            serde_json::to_string(&e).unwrap(),
            r#"{"message":"No such container: nope"}"#
        );
    }
}
