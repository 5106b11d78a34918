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

use std::fmt;

use serde::de::{self, DeserializeSeed, EnumAccess, SeqAccess, VariantAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Number, Value};

use crate::env::Kwargs;

/// The deepest nesting of maps and lists a binary-decoded kwargs map may have, itself counted
/// (serde_json's limit for text). The tree arrives from other processes, so its depth is
/// bounded before recursion on it can overflow the stack.
pub const MAX_DEPTH: usize = 128;

/// A JSON value as a binary codec can carry it. Its `Deserialize` is [`WireSeed`], which counts
/// the depth; the variant order here is the wire's.
#[derive(Serialize)]
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

const VARIANTS: &[&str] = &["Null", "Bool", "U64", "I64", "F64", "String", "Array", "Object"];

/// Reads one [`WireValue`] nested `depth` levels deep.
#[derive(Clone, Copy)]
struct WireSeed {
    depth: usize,
}

impl<'de> DeserializeSeed<'de> for WireSeed {
    type Value = WireValue;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<WireValue, D::Error> {
        d.deserialize_enum("WireValue", VARIANTS, self)
    }
}

impl<'de> Visitor<'de> for WireSeed {
    type Value = WireValue;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a tagged env kwargs value")
    }

    fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<WireValue, A::Error> {
        let (tag, v): (u32, _) = data.variant()?;
        let inner = WireSeed { depth: self.depth + 1 };
        if matches!(tag, 6 | 7) && inner.depth >= MAX_DEPTH {
            return Err(de::Error::custom(format!("env kwargs nested deeper than {MAX_DEPTH} levels")));
        }
        match tag {
            0 => v.unit_variant().map(|()| WireValue::Null),
            1 => v.newtype_variant().map(WireValue::Bool),
            2 => v.newtype_variant().map(WireValue::U64),
            3 => v.newtype_variant().map(WireValue::I64),
            4 => v.newtype_variant().map(WireValue::F64),
            5 => v.newtype_variant().map(WireValue::String),
            6 => v.newtype_variant_seed(ListSeed(inner)).map(WireValue::Array),
            7 => v.newtype_variant_seed(MapSeed(inner)).map(WireValue::Object),
            _ => Err(de::Error::invalid_value(de::Unexpected::Unsigned(u64::from(tag)), &"a variant index 0 to 7")),
        }
    }
}

/// Reads a list of values one level below the seed's depth.
struct ListSeed(WireSeed);

impl<'de> DeserializeSeed<'de> for ListSeed {
    type Value = Vec<WireValue>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for ListSeed {
    type Value = Vec<WireValue>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a list of env kwargs values")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        // The claimed length is the peer's word: grow as elements arrive.
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1024));
        while let Some(v) = seq.next_element_seed(self.0)? {
            out.push(v);
        }
        Ok(out)
    }
}

/// Reads a map (a list of key and value pairs) whose values sit at the seed's depth.
struct MapSeed(WireSeed);

impl<'de> DeserializeSeed<'de> for MapSeed {
    type Value = Vec<(String, WireValue)>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for MapSeed {
    type Value = Vec<(String, WireValue)>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a map of env kwargs")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1024));
        while let Some(entry) = seq.next_element_seed(EntrySeed(self.0))? {
            out.push(entry);
        }
        Ok(out)
    }
}

/// Reads one `(key, value)` pair of a map.
struct EntrySeed(WireSeed);

impl<'de> DeserializeSeed<'de> for EntrySeed {
    type Value = (String, WireValue);

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_tuple(2, self)
    }
}

impl<'de> Visitor<'de> for EntrySeed {
    type Value = (String, WireValue);

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a key and an env kwargs value")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let key = seq.next_element::<String>()?.ok_or_else(|| de::Error::invalid_length(0, &self))?;
        let value = seq.next_element_seed(self.0)?.ok_or_else(|| de::Error::invalid_length(1, &self))?;
        Ok((key, value))
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
        let tree = MapSeed(WireSeed { depth: 0 }).deserialize(d)?;
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

    /// `{"k": [[...[null]...]]}` nested `depth` lists deep, in postcard.
    fn nested(depth: usize) -> Vec<u8> {
        let mut bytes = vec![1, 1, b'k'];
        for _ in 0..depth {
            bytes.extend([6, 1]);
        }
        bytes.push(0);
        bytes
    }

    /// Found by the actor-message fuzz target: a list nested a million levels deep (two bytes a
    /// level) overflowed the decoding thread's stack and aborted the process.
    #[test]
    fn nesting_is_bounded_when_decoding() {
        let ok: Holder = postcard::from_bytes(&nested(MAX_DEPTH - 1)).unwrap();
        assert_eq!(serde_json::to_string(&ok.kwargs).unwrap().matches('[').count(), MAX_DEPTH - 1);
        for depth in [MAX_DEPTH, 1_000_000] {
            let err = postcard::from_bytes::<Holder>(&nested(depth)).unwrap_err();
            assert!(matches!(err, postcard::Error::SerdeDeCustom), "{err}");
        }
        // A key claiming more entries than there are bytes is refused without reserving them.
        assert!(postcard::from_bytes::<Holder>(&[0xff, 0xff, 0xff, 0xff, 0x0f]).is_err());
    }
}
