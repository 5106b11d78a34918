//! Env state as JSON that round-trips bit for bit: the encoding behind [`Env::save_state`].
//!
//! serde_json writes NaN and infinities as `null` and does not promise to parse every float back
//! to the same bits, so floats are stored as bit patterns: an `f64` as the `u64` of its bits, an
//! `f32` as the `u32`. PCG64's 128-bit words are decimal strings, since many JSON readers cap
//! integers at 64 bits. A saved state is a JSON object whose `"type"` names the env id or wrapper
//! that saved it; [`StateReader`] checks that tag and reads typed fields, failing with
//! [`EnvError::InvalidState`] naming the env and the key, never panicking.
//!
//! ```
//! use rl_env::state::{StateReader, f64_bits};
//!
//! let saved = serde_json::json!({"type": "Walk-v0", "position": f64_bits(0.1), "steps": 3});
//! let text = serde_json::to_string(&saved).unwrap();
//! let back: serde_json::Value = serde_json::from_str(&text).unwrap();
//! let r = StateReader::new("Walk-v0", &back, "Walk-v0")?;
//! assert_eq!(r.f64("position")?.to_bits(), 0.1f64.to_bits());
//! assert_eq!(r.u64("steps")?, 3);
//! let err = StateReader::new("Walk-v0", &back, "TimeLimit").unwrap_err();
//! assert_eq!(err.to_string(), "Walk-v0: cannot restore state: expected a state saved by TimeLimit, got one saved by Walk-v0");
//! # Ok::<(), rl_env::EnvError>(())
//! ```
//!
//! [`Env::save_state`]: crate::Env::save_state

use serde_json::{Map, Value, json};

use crate::error::{EnvError, Result};
use crate::rng::NpRandom;

/// The key naming what saved a state.
const TYPE_KEY: &str = "type";

/// An `f64` as the JSON number of its bits.
pub fn f64_bits(x: f64) -> Value {
    Value::from(x.to_bits())
}

/// `f64`s as a JSON list of their bits.
pub fn f64s_bits(xs: &[f64]) -> Value {
    xs.iter().map(|x| x.to_bits()).collect()
}

/// `f32`s as a JSON list of their bits.
pub fn f32s_bits(xs: &[f32]) -> Value {
    xs.iter().map(|x| x.to_bits()).collect()
}

/// A generator's full state, or `null` for a generator not created yet (an env never reset).
pub fn rng_state(rng: Option<&NpRandom>) -> Value {
    match rng {
        None => Value::Null,
        Some(rng) => {
            let (state, inc, buffered_u32) = rng.raw_state();
            json!({"state": state.to_string(), "inc": inc.to_string(), "buffered_u32": buffered_u32})
        }
    }
}

/// The state of a classic-control env that is its physics vector (if reset) and its generator,
/// tagged with `env`: what [`read_physics`] reads back.
pub fn physics(env: &str, state: Option<&[f64]>, rng: Option<&NpRandom>) -> Value {
    serde_json::json!({ TYPE_KEY: env, "state": state.map(f64s_bits), "rng": rng_state(rng) })
}

/// Reads a state written by [`physics`] for `env`: the physics vector of `N` values (or none
/// before the first reset) and the generator.
pub fn read_physics<const N: usize>(env: &str, saved: &Value) -> Result<(Option<[f64; N]>, Option<NpRandom>)> {
    let r = StateReader::new(env, saved, env)?;
    Ok((r.opt_f64_array("state")?, r.rng("rng")?))
}

/// Reads the fields of a saved state, with errors naming the env and the key.
#[derive(Debug)]
pub struct StateReader<'a> {
    env: &'a str,
    obj: &'a Map<String, Value>,
}

impl<'a> StateReader<'a> {
    /// Starts reading `state` for the env `env`; it must be an object whose `"type"` is `saved_by`.
    pub fn new(env: &'a str, state: &'a Value, saved_by: &str) -> Result<Self> {
        let invalid = |message: String| EnvError::InvalidState { env: env.to_string(), message };
        let obj = state.as_object().ok_or_else(|| invalid(format!("expected a JSON object, got {}", brief(state))))?;
        match obj.get(TYPE_KEY).and_then(Value::as_str) {
            Some(t) if t == saved_by => Ok(Self { env, obj }),
            Some(t) => Err(invalid(format!("expected a state saved by {saved_by}, got one saved by {t}"))),
            None => Err(invalid(format!("expected a state saved by {saved_by}, got one without a \"type\""))),
        }
    }

    /// An [`EnvError::InvalidState`] saying that `key` must be `expected`.
    pub fn invalid(&self, key: &str, expected: &str) -> EnvError {
        let found = self.obj.get(key).map_or_else(|| "nothing".to_string(), brief);
        EnvError::InvalidState { env: self.env.to_string(), message: format!("{key} must be {expected}, got {found}") }
    }

    /// The raw value of `key`, for nested states; missing is an error.
    pub fn value(&self, key: &str) -> Result<&'a Value> {
        self.obj.get(key).ok_or_else(|| self.invalid(key, "present"))
    }

    fn field<T>(&self, key: &str, expected: &str, parse: impl Fn(&Value) -> Option<T>) -> Result<T> {
        self.obj.get(key).and_then(parse).ok_or_else(|| self.invalid(key, expected))
    }

    fn list<T>(&self, key: &str, expected: &str, parse: impl Fn(&Value) -> Option<T>) -> Result<Vec<T>> {
        let items = self.obj.get(key).and_then(Value::as_array).ok_or_else(|| self.invalid(key, expected))?;
        items.iter().map(&parse).collect::<Option<Vec<T>>>().ok_or_else(|| self.invalid(key, expected))
    }

    /// A non-negative integer.
    pub fn u64(&self, key: &str) -> Result<u64> {
        self.field(key, "a non-negative integer", Value::as_u64)
    }

    /// An integer from 0 to `u32::MAX`.
    pub fn u32(&self, key: &str) -> Result<u32> {
        self.field(key, "an integer from 0 to 4294967295", as_u32)
    }

    /// A non-negative integer or `null`.
    pub fn opt_u64(&self, key: &str) -> Result<Option<u64>> {
        self.field(
            key,
            "a non-negative integer or null",
            |v| if v.is_null() { Some(None) } else { v.as_u64().map(Some) },
        )
    }

    /// A boolean.
    pub fn bool(&self, key: &str) -> Result<bool> {
        self.field(key, "true or false", Value::as_bool)
    }

    /// An `f64` stored by [`f64_bits`].
    pub fn f64(&self, key: &str) -> Result<f64> {
        self.field(key, "the bits of a float64 (an integer)", |v| v.as_u64().map(f64::from_bits))
    }

    /// `f64`s stored by [`f64s_bits`].
    pub fn f64_vec(&self, key: &str) -> Result<Vec<f64>> {
        self.list(key, "a list of float64 bit patterns", |v| v.as_u64().map(f64::from_bits))
    }

    /// Exactly `N` `f64`s stored by [`f64s_bits`].
    pub fn f64_array<const N: usize>(&self, key: &str) -> Result<[f64; N]> {
        let v = self.f64_vec(key)?;
        v.try_into().map_err(|_| self.invalid(key, &format!("a list of {N} float64 bit patterns")))
    }

    /// `None` for `null`, else exactly `N` `f64`s stored by [`f64s_bits`].
    pub fn opt_f64_array<const N: usize>(&self, key: &str) -> Result<Option<[f64; N]>> {
        if self.value(key)?.is_null() { Ok(None) } else { self.f64_array(key).map(Some) }
    }

    /// `f32`s stored by [`f32s_bits`].
    pub fn f32_vec(&self, key: &str) -> Result<Vec<f32>> {
        self.list(key, "a list of float32 bit patterns", |v| as_u32(v).map(f32::from_bits))
    }

    /// A list of non-negative integers.
    pub fn u64_vec(&self, key: &str) -> Result<Vec<u64>> {
        self.list(key, "a list of non-negative integers", Value::as_u64)
    }

    /// A list of integers from 0 to `u32::MAX`.
    pub fn u32_vec(&self, key: &str) -> Result<Vec<u32>> {
        self.list(key, "a list of integers from 0 to 4294967295", as_u32)
    }

    /// A list of booleans.
    pub fn bool_vec(&self, key: &str) -> Result<Vec<bool>> {
        self.list(key, "a list of booleans", Value::as_bool)
    }

    /// A generator stored by [`rng_state`]; `None` for `null`.
    pub fn rng(&self, key: &str) -> Result<Option<NpRandom>> {
        let expected = "null or a generator state {\"state\", \"inc\": decimal strings, \"buffered_u32\"}";
        let v = self.value(key)?;
        if v.is_null() {
            return Ok(None);
        }
        let parse = || -> Option<NpRandom> {
            let u128_of = |k: &str| v.get(k)?.as_str()?.parse::<u128>().ok();
            let buffered = match v.get("buffered_u32")? {
                Value::Null => None,
                b => Some(as_u32(b)?),
            };
            Some(NpRandom::from_raw_state(u128_of("state")?, u128_of("inc")?, buffered))
        };
        parse().map(Some).ok_or_else(|| self.invalid(key, expected))
    }
}

fn as_u32(v: &Value) -> Option<u32> {
    v.as_u64().and_then(|n| u32::try_from(n).ok())
}

/// A value for an error message, cut short when long.
fn brief(v: &Value) -> String {
    let s = v.to_string();
    if s.chars().count() <= 60 { s } else { format!("{}...", s.chars().take(60).collect::<String>()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_round_trip_through_json_text_bit_for_bit() {
        let xs = [0.1, -0.0, f64::NAN, f64::INFINITY, f64::MIN_POSITIVE / 3.0, 1.0 / 3.0];
        let saved = json!({"type": "T", "x": f64s_bits(&xs), "y": f32s_bits(&[f32::NAN, 0.1]), "one": f64_bits(0.7)});
        let back: Value = serde_json::from_str(&serde_json::to_string(&saved).unwrap()).unwrap();
        let r = StateReader::new("T", &back, "T").unwrap();
        let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&r.f64_vec("x").unwrap()), bits(&xs));
        assert_eq!(
            r.f32_vec("y").unwrap().iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
            [f32::NAN.to_bits(), 0.1f32.to_bits()]
        );
        assert_eq!(r.f64("one").unwrap(), 0.7);
    }

    #[test]
    fn generators_round_trip_and_bad_ones_are_errors() {
        let mut rng = NpRandom::from_seed(9);
        rng.integers(0, 3).unwrap();
        let saved = json!({"type": "T", "rng": rng_state(Some(&rng)), "none": rng_state(None), "bad": {"state": 1}});
        let back: Value = serde_json::from_str(&serde_json::to_string(&saved).unwrap()).unwrap();
        let r = StateReader::new("T", &back, "T").unwrap();
        assert_eq!(r.rng("rng").unwrap(), Some(rng));
        assert_eq!(r.rng("none").unwrap(), None);
        let err = r.rng("bad").unwrap_err().to_string();
        assert!(err.starts_with("T: cannot restore state: bad must be null or a generator state"), "{err}");
    }

    #[test]
    fn malformed_states_name_the_key() {
        let v = json!({"type": "T", "n": -1, "xs": [1, "a"], "arr": [1, 2]});
        let r = StateReader::new("E-v0", &v, "T").unwrap();
        assert_eq!(
            r.u64("n").unwrap_err().to_string(),
            "E-v0: cannot restore state: n must be a non-negative integer, got -1"
        );
        assert!(r.f64_vec("xs").is_err());
        assert!(r.f64_array::<3>("arr").is_err());
        assert_eq!(r.f64_array::<2>("arr").unwrap().map(f64::to_bits), [1, 2]);
        assert!(
            r.u64("missing").unwrap_err().to_string().ends_with("missing must be a non-negative integer, got nothing")
        );
        let err = StateReader::new("E-v0", &json!([1]), "T").unwrap_err().to_string();
        assert_eq!(err, "E-v0: cannot restore state: expected a JSON object, got [1]");
        let err = StateReader::new("E-v0", &json!({}), "T").unwrap_err().to_string();
        assert!(err.ends_with("got one without a \"type\""), "{err}");
    }
}
