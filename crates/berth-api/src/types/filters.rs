//! The `filters` query parameter: a JSON map of key to values, in either of the shapes
//! clients send: `{"name": {"web": true}}` (current) or `{"name": ["web"]}` (API < 1.22, and
//! some SDKs). Values of one key are ORed, keys are ANDed, except `label`, whose values must
//! all match, as in dockerd.

use std::collections::BTreeMap;

use serde::Deserialize;
use thiserror::Error;

/// A bad `filters` parameter (a 400 in Docker's terms).
#[derive(Debug, Error, PartialEq, Eq)]
pub enum FilterError {
    #[error("invalid filters parameter {text:?}: {reason}")]
    Malformed { text: String, reason: String },
    /// dockerd's message for a key the endpoint does not know.
    #[error("invalid filter '{0}'")]
    UnknownKey(String),
}

/// Parsed filters: key to its values, both sorted and without duplicates.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filters {
    fields: BTreeMap<String, Vec<String>>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Values {
    /// `{"value": true}`; dockerd keeps a value whatever its boolean.
    Map(BTreeMap<String, bool>),
    List(Vec<String>),
}

impl Filters {
    pub fn new() -> Filters {
        Filters::default()
    }

    /// Parses the query parameter's value (already URL-decoded). An empty string, `{}` and
    /// `null` are no filters.
    pub fn parse(text: &str) -> Result<Filters, FilterError> {
        let trimmed = text.trim();
        if trimmed.is_empty() {
            return Ok(Filters::default());
        }
        let raw: Option<BTreeMap<String, Option<Values>>> =
            serde_json::from_str(trimmed).map_err(|e| FilterError::Malformed {
                text: text.to_string(),
                reason: e.to_string(),
            })?;
        let mut filters = Filters::default();
        for (key, values) in raw.unwrap_or_default() {
            let values: Vec<String> = match values {
                None => Vec::new(),
                Some(Values::Map(m)) => m.into_keys().collect(),
                Some(Values::List(v)) => v,
            };
            for v in values {
                filters.add(&key, &v);
            }
            filters.fields.entry(key).or_default();
        }
        Ok(filters)
    }

    /// Adds `value` under `key` (builder for clients).
    pub fn add(&mut self, key: &str, value: &str) -> &mut Filters {
        let values = self.fields.entry(key.to_string()).or_default();
        if let Err(at) = values.binary_search_by(|v| v.as_str().cmp(value)) {
            values.insert(at, value.to_string());
        }
        self
    }

    /// The JSON for the query parameter, in the current shape: `{"key":{"value":true}}`.
    pub fn to_json(&self) -> String {
        let map: BTreeMap<&str, BTreeMap<&str, bool>> = self
            .fields
            .iter()
            .map(|(k, vs)| (k.as_str(), vs.iter().map(|v| (v.as_str(), true)).collect()))
            .collect();
        serde_json::to_string(&map).unwrap_or_else(|_| "{}".into())
    }

    pub fn is_empty(&self) -> bool {
        self.fields.values().all(Vec::is_empty)
    }

    /// The values given for `key`; empty when the key is absent.
    pub fn get(&self, key: &str) -> &[String] {
        self.fields.get(key).map(Vec::as_slice).unwrap_or(&[])
    }

    /// Whether `key` was given at all.
    pub fn contains(&self, key: &str) -> bool {
        self.fields.get(key).is_some_and(|v| !v.is_empty())
    }

    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.fields.keys().map(String::as_str)
    }

    /// Refuses keys not in `allowed`, as dockerd does per endpoint.
    pub fn validate(&self, allowed: &[&str]) -> Result<(), FilterError> {
        match self.keys().find(|k| !allowed.contains(k)) {
            Some(k) => Err(FilterError::UnknownKey(k.to_string())),
            None => Ok(()),
        }
    }

    /// True when `key` is not filtered on, or when `value` is one of its values (exact match;
    /// values of one key are ORed).
    pub fn include(&self, key: &str, value: &str) -> bool {
        let values = self.get(key);
        values.is_empty() || values.iter().any(|v| v == value)
    }

    /// Like [`Filters::include`] for an object with several candidate values (a container's
    /// names, an image's tags): true if any of them is listed.
    pub fn include_any<'a>(
        &self,
        key: &str,
        candidates: impl IntoIterator<Item = &'a str>,
    ) -> bool {
        let values = self.get(key);
        values.is_empty()
            || candidates
                .into_iter()
                .any(|c| values.iter().any(|v| v == c))
    }

    /// True when `key` is not filtered on, or when one of its values is a substring of `value`
    /// (dockerd matches `name` that way).
    pub fn include_substring(&self, key: &str, value: &str) -> bool {
        let values = self.get(key);
        values.is_empty() || values.iter().any(|v| value.contains(v.as_str()))
    }

    /// The `label` filter (and its negation `label!`): every `key` value must be a label of
    /// the object and every `key=value` must match exactly; no `label!` entry may match.
    pub fn matches_label(&self, labels: &BTreeMap<String, String>) -> bool {
        let matches = |spec: &str| match spec.split_once('=') {
            Some((k, v)) => labels.get(k).is_some_and(|have| have == v),
            None => labels.contains_key(spec),
        };
        self.get("label").iter().all(|s| matches(s))
            && !self.get("label!").iter().any(|s| matches(s))
    }

    /// A boolean filter such as `dangling=true`: `None` when absent, an error for anything
    /// but `true`/`1`/`false`/`0` or conflicting values.
    pub fn get_bool(&self, key: &str) -> Result<Option<bool>, FilterError> {
        let mut result = None;
        for v in self.get(key) {
            let b = match v.to_ascii_lowercase().as_str() {
                "true" | "1" => true,
                "false" | "0" => false,
                _ => {
                    return Err(FilterError::Malformed {
                        text: format!("{key}={v}"),
                        reason: "expected true or false".into(),
                    })
                }
            };
            if result.is_some_and(|r| r != b) {
                return Err(FilterError::Malformed {
                    text: key.to_string(),
                    reason: "both true and false given".into(),
                });
            }
            result = Some(b);
        }
        Ok(result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn parses_the_map_shape_the_cli_sends() {
        // docker ps -a --filter name=web --filter name=db --filter status=exited
        let f =
            Filters::parse(r#"{"name":{"web":true,"db":true},"status":{"exited":true}}"#).unwrap();
        assert_eq!(f.get("name"), ["db", "web"]);
        assert_eq!(f.get("status"), ["exited"]);
        assert!(f.get("label").is_empty());
        assert!(f.include("name", "web") && f.include("name", "db"));
        assert!(!f.include("name", "cache"));
        assert!(f.include("label", "anything"), "absent key filters nothing");
    }

    #[test]
    fn parses_the_legacy_list_shape() {
        let f = Filters::parse(r#"{"label":["a","b=2"],"type":["container"]}"#).unwrap();
        assert_eq!(f.get("label"), ["a", "b=2"]);
        assert_eq!(f.get("type"), ["container"]);
    }

    #[test]
    fn empty_null_and_bad_json() {
        assert!(Filters::parse("").unwrap().is_empty());
        assert!(Filters::parse("{}").unwrap().is_empty());
        assert!(Filters::parse("null").unwrap().is_empty());
        let err = Filters::parse("{not json").unwrap_err();
        assert!(
            err.to_string().starts_with("invalid filters parameter"),
            "{err}"
        );
        assert!(Filters::parse(r#"{"name":"web"}"#).is_err());
    }

    #[test]
    fn labels_all_must_match() {
        let f = Filters::parse(r#"{"label":{"app":true,"tier=web":true}}"#).unwrap();
        assert!(f.matches_label(&labels(&[("app", "x"), ("tier", "web")])));
        assert!(!f.matches_label(&labels(&[("app", "x"), ("tier", "db")])));
        assert!(!f.matches_label(&labels(&[("tier", "web")])));
        let none = Filters::default();
        assert!(none.matches_label(&labels(&[])));
        let neg = Filters::parse(r#"{"label!":{"tier=db":true}}"#).unwrap();
        assert!(neg.matches_label(&labels(&[("tier", "web")])));
        assert!(!neg.matches_label(&labels(&[("tier", "db")])));
    }

    #[test]
    fn validate_and_bool_and_round_trip() {
        let f = Filters::parse(r#"{"dangling":{"true":true},"nope":{"x":true}}"#).unwrap();
        assert_eq!(
            f.validate(&["dangling", "label"]).unwrap_err().to_string(),
            "invalid filter 'nope'"
        );
        assert_eq!(f.get_bool("dangling"), Ok(Some(true)));
        assert_eq!(f.get_bool("absent"), Ok(None));
        assert!(f.get_bool("nope").is_err());

        let mut built = Filters::new();
        built
            .add("type", "container")
            .add("event", "die")
            .add("event", "die");
        assert_eq!(
            built.to_json(),
            r#"{"event":{"die":true},"type":{"container":true}}"#
        );
        assert_eq!(Filters::parse(&built.to_json()).unwrap(), built);
        assert!(built.include_any("event", ["start", "die"]));
        assert!(built.include_substring("type", "a-container-x"));
    }
}
