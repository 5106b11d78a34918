//! Gymnasium spaces as the bridge's Python half describes them, turned into [`Space`]s, and
//! actions and observations as the bytes that cross to Python.

use serde_json::Value;

use crate::error::{EnvError, Result};
use crate::space::{Action, Space};

/// The observation and action spaces of a made Gymnasium env.
#[derive(Debug)]
pub(super) struct Spaces {
    pub(super) observation: Space,
    pub(super) action: Space,
}

/// Parses the `describe` JSON of the Python half. A space the bridge cannot carry (Dict, Tuple,
/// Text, MultiBinary, MultiDiscrete with a start or more than one dimension) is an error naming
/// the env and the space.
pub(super) fn parse_spaces(env: &str, json: &[u8]) -> Result<Spaces> {
    let bad = |what: String| EnvError::custom(env, format!("the bridge's space description is malformed: {what}"));
    let desc: Value = serde_json::from_slice(json).map_err(|e| bad(e.to_string()))?;
    let space = |role: &str| -> Result<Space> {
        let d = desc.get(format!("{role}_space")).ok_or_else(|| bad(format!("no {role}_space")))?;
        parse_space(env, role, d).map_err(|e| match e {
            EnvError::InvalidSpace(message) => EnvError::custom(env, format!("{role} space: {message}")),
            other => other,
        })
    };
    Ok(Spaces { observation: space("observation")?, action: space("action")? })
}

fn parse_space(env: &str, role: &str, d: &Value) -> Result<Space> {
    let bad = |what: &str| EnvError::custom(env, format!("the bridge's {role} space description lacks {what}: {d}"));
    let kind = d.get("kind").and_then(Value::as_str).ok_or_else(|| bad("kind"))?;
    match kind {
        "discrete" => {
            let n = d.get("n").and_then(Value::as_u64).ok_or_else(|| bad("n"))?;
            let start = d.get("start").and_then(Value::as_i64).ok_or_else(|| bad("start"))?;
            Space::discrete_from(n, start)
        }
        "box" => {
            let shape: Vec<usize> = d
                .get("shape")
                .and_then(Value::as_array)
                .and_then(|s| s.iter().map(|v| v.as_u64().map(|n| n as usize)).collect())
                .ok_or_else(|| bad("shape"))?;
            let low = d.get("low").and_then(Value::as_str).and_then(hex_f32).ok_or_else(|| bad("low"))?;
            let high = d.get("high").and_then(Value::as_str).and_then(hex_f32).ok_or_else(|| bad("high"))?;
            Space::boxed(low, high, shape)
        }
        "multi_discrete" => {
            let nvec: Vec<u64> = d
                .get("nvec")
                .and_then(Value::as_array)
                .and_then(|s| s.iter().map(Value::as_u64).collect())
                .ok_or_else(|| bad("nvec"))?;
            Space::multi_discrete(nvec)
        }
        _ => {
            let repr = d.get("repr").and_then(Value::as_str).unwrap_or(kind);
            Err(EnvError::custom(
                env,
                format!(
                    "its {role} space {repr} is not supported: the bridge carries Discrete, Box and \
                     one-dimensional MultiDiscrete starting at 0 (wrap the env in Python, e.g. with \
                     gymnasium.wrappers.FlattenObservation, to get one of those)"
                ),
            ))
        }
    }
}

/// Little-endian float32 values from their hex text (`numpy.ndarray.tobytes().hex()`).
fn hex_f32(hex: &str) -> Option<Vec<f32>> {
    if !hex.len().is_multiple_of(8) || !hex.is_ascii() {
        return None;
    }
    (0..hex.len() / 8)
        .map(|i| {
            let chunk = &hex[i * 8..i * 8 + 8];
            let mut bytes = [0u8; 4];
            for (j, b) in bytes.iter_mut().enumerate() {
                *b = u8::from_str_radix(&chunk[2 * j..2 * j + 2], 16).ok()?;
            }
            Some(f32::from_le_bytes(bytes))
        })
        .collect()
}

/// Writes `action` as the bytes the Python half decodes: int64 for Discrete and MultiDiscrete,
/// float32 for Box, little-endian. The caller has checked it against the action space.
pub(super) fn encode_action(action: Action<'_>, buf: &mut Vec<u8>) {
    buf.clear();
    match action {
        Action::Discrete(a) => buf.extend_from_slice(&a.to_le_bytes()),
        Action::Continuous(x) => x.iter().for_each(|v| buf.extend_from_slice(&v.to_le_bytes())),
        Action::MultiDiscrete(a) => a.iter().for_each(|v| buf.extend_from_slice(&v.to_le_bytes())),
    }
}

/// Copies little-endian float32 bytes into `obs`; `Err` names both lengths when they differ.
pub(super) fn decode_obs(bytes: &[u8], obs: &mut [f32]) -> std::result::Result<(), String> {
    if bytes.len() != 4 * obs.len() {
        return Err(format!(
            "the bridge returned {} bytes of observation, the observation space needs {}",
            bytes.len(),
            4 * obs.len()
        ));
    }
    for (o, chunk) in obs.iter_mut().zip(bytes.chunks_exact(4)) {
        *o = f32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
    }
    Ok(())
}

/// Parses info JSON bytes; empty bytes are an empty info.
pub(super) fn decode_info(bytes: &[u8]) -> std::result::Result<crate::env::Info, String> {
    if bytes.is_empty() {
        return Ok(crate::env::Info::new());
    }
    serde_json::from_slice(bytes).map_err(|e| format!("the bridge returned info that is not a JSON object: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_supported_space_with_infinite_bounds() {
        let low = [f32::NEG_INFINITY, -1.5].iter().flat_map(|v| v.to_le_bytes()).map(|b| format!("{b:02x}"));
        let high = [f32::INFINITY, 2.0].iter().flat_map(|v| v.to_le_bytes()).map(|b| format!("{b:02x}"));
        let json = serde_json::json!({
            "observation_space": {"kind": "box", "shape": [2], "low": low.collect::<String>(), "high": high.collect::<String>()},
            "action_space": {"kind": "discrete", "n": 3, "start": -1},
        });
        let s = parse_spaces("gym:T-v0", json.to_string().as_bytes()).unwrap();
        assert_eq!(
            s.observation,
            Space::boxed(vec![f32::NEG_INFINITY, -1.5], vec![f32::INFINITY, 2.0], vec![2]).unwrap()
        );
        assert_eq!(s.action, Space::discrete_from(3, -1).unwrap());
        let json = r#"{"observation_space": {"kind": "multi_discrete", "nvec": [2, 3]},
                      "action_space": {"kind": "unsupported", "repr": "Dict('a': Discrete(2))"}}"#;
        let err = parse_spaces("gym:T-v0", json.as_bytes()).unwrap_err().to_string();
        assert!(err.starts_with("gym:T-v0: its action space Dict('a': Discrete(2)) is not supported"), "{err}");
    }

    #[test]
    fn actions_and_observations_round_trip_as_little_endian_bytes() {
        let mut buf = Vec::new();
        encode_action(Action::Discrete(-2), &mut buf);
        assert_eq!(buf, (-2i64).to_le_bytes());
        encode_action(Action::Continuous(&[1.5, -0.25]), &mut buf);
        let mut obs = [0.0f32; 2];
        decode_obs(&buf, &mut obs).unwrap();
        assert_eq!(obs, [1.5, -0.25]);
        assert!(decode_obs(&buf, &mut [0.0; 3]).is_err());
        assert!(decode_info(b"").unwrap().is_empty());
        assert_eq!(decode_info(br#"{"a":1}"#).unwrap()["a"], 1);
    }
}
