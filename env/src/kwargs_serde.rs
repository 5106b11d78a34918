//! Serde for [`Kwargs`] fields that must cross the wire as well as live in config files.
//!
//! `Kwargs` is a JSON object, and serde's JSON values deserialize only from self-describing
//! formats (YAML, JSON): compact binary codecs such as postcard, which the runtime uses for actor
//! messages, cannot decode them. Put `#[serde(with = "rl_env::kwargs_serde")]` on a `Kwargs`
//! field of any type that is both written to files and sent to actors: human-readable formats
//! see the plain map, binary ones a tagged tree that keeps every value exactly (unsigned,
//! signed and float numbers apart, nested lists and maps in order).
//!
//! ```
//! use rl_env::Kwargs;
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Debug, PartialEq, Serialize, Deserialize)]
//! struct Init {
//!     #[serde(with = "rl_env::kwargs_serde")]
//!     env_config: Kwargs,
//! }
//!
//! let init = Init { env_config: serde_json::from_str(r#"{"g": 9.81, "sizes": [1, -2], "mode": {"hard": true}}"#).unwrap() };
//! assert_eq!(serde_json::to_string(&init).unwrap(), r#"{"env_config":{"g":9.81,"mode":{"hard":true},"sizes":[1,-2]}}"#);
//! let bytes = postcard::to_stdvec(&init).unwrap();
//! assert_eq!(postcard::from_bytes::<Init>(&bytes).unwrap(), init);
//! ```

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Number, Value};

use crate::env::Kwargs;

/// A JSON value as a binary codec can carry it.
#[derive(Serialize, Deserialize)]
enum WireValue {
    Null,
    Bool(bool),
    U64(u64),
    I64(i64),
    F64(f64),
    String(String),
    Array(Vec<WireValue>),
    Object(Vec<(String, WireValue)>),
}

impl From<&Value> for WireValue {
    fn from(v: &Value) -> Self {
        match v {
            Value::Null => Self::Null,
            Value::Bool(b) => Self::Bool(*b),
            Value::Number(n) => match (n.as_u64(), n.as_i64(), n.as_f64()) {
                (Some(u), _, _) => Self::U64(u),
                (None, Some(i), _) => Self::I64(i),
                (None, None, Some(f)) => Self::F64(f),
                (None, None, None) => Self::Null,
            },
            Value::String(s) => Self::String(s.clone()),
            Value::Array(a) => Self::Array(a.iter().map(Self::from).collect()),
            Value::Object(m) => Self::Object(m.iter().map(|(k, v)| (k.clone(), Self::from(v))).collect()),
        }
    }
}

impl From<WireValue> for Value {
    fn from(v: WireValue) -> Self {
        match v {
            WireValue::Null => Value::Null,
            WireValue::Bool(b) => Value::Bool(b),
            WireValue::U64(u) => Value::Number(u.into()),
            WireValue::I64(i) => Value::Number(i.into()),
            WireValue::F64(f) => Number::from_f64(f).map_or(Value::Null, Value::Number),
            WireValue::String(s) => Value::String(s),
            WireValue::Array(a) => Value::Array(a.into_iter().map(Value::from).collect()),
            WireValue::Object(m) => Value::Object(m.into_iter().map(|(k, v)| (k, Value::from(v))).collect()),
        }
    }
}

/// Serializes `kwargs`: the plain map for human-readable formats, a tagged tree otherwise.
pub fn serialize<S: Serializer>(kwargs: &Kwargs, s: S) -> Result<S::Ok, S::Error> {
    if s.is_human_readable() {
        kwargs.serialize(s)
    } else {
        let tree: Vec<(&str, WireValue)> = kwargs.iter().map(|(k, v)| (k.as_str(), WireValue::from(v))).collect();
        tree.serialize(s)
    }
}

/// Deserializes what [`serialize`] wrote.
pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Kwargs, D::Error> {
    if d.is_human_readable() {
        Kwargs::deserialize(d)
    } else {
        let tree = Vec::<(String, WireValue)>::deserialize(d)?;
        Ok(tree.into_iter().map(|(k, v)| (k, Value::from(v))).collect())
    }
}

#[cfg(test)]
mod tests {
    use serde::{Deserialize, Serialize};

    use super::*;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Holder {
        #[serde(with = "super")]
        kwargs: Kwargs,
    }

    #[test]
    fn every_kind_of_value_round_trips_through_a_binary_codec_exactly() {
        let text = r#"{"null": null, "yes": true, "no": false, "big": 18446744073709551615, "neg": -9223372036854775808,
            "pi": 3.141592653589793, "tiny": 5e-324, "text": "ü ✓", "empty_list": [], "empty_map": {},
            "nested": {"list": [1, -1, 1.5, "x", [true, null], {"deep": {"deeper": [0]}}]}}"#;
        let h = Holder { kwargs: serde_json::from_str(text).unwrap() };
        let back: Holder = postcard::from_bytes(&postcard::to_stdvec(&h).unwrap()).unwrap();
        assert_eq!(back, h);
        // Numbers keep their kind: unsigned, signed and float stay apart.
        assert!(back.kwargs["big"].is_u64() && back.kwargs["neg"].is_i64() && back.kwargs["pi"].is_f64());
        assert_eq!(serde_json::to_string(&back.kwargs).unwrap(), serde_json::to_string(&h.kwargs).unwrap());
        // Human-readable formats see the plain map.
        let json = serde_json::to_string(&h).unwrap();
        assert!(json.starts_with(r#"{"kwargs":{"big":18446744073709551615,"#), "{json}");
        assert_eq!(serde_json::from_str::<Holder>(&json).unwrap(), h);
    }
}
