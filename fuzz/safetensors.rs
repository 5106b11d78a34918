//! Structure-aware mutations of safetensors files for the fuzz targets of the weight, batch and
//! optimizer decoders: edits of the JSON header (tensor names, dtypes, shapes, offsets,
//! metadata, the header length) that keep the rest of the file as it was, so a decoder meets
//! files that parse but lie. Included by path next to `harness.rs`; needs `serde_json`.

#![allow(dead_code)]

use proptest::prelude::*;
use proptest::sample::Index;
use serde_json::{Map, Value, json};

/// One edit of a safetensors header.
#[derive(Debug, Clone)]
pub enum HeaderEdit {
    /// Renames a tensor.
    Rename(Index, String),
    /// Changes a tensor's dtype.
    Dtype(Index, String),
    /// Changes a tensor's shape.
    Shape(Index, Vec<u64>),
    /// Changes a tensor's data offsets.
    Offsets(Index, u64, u64),
    /// Removes a tensor.
    Drop(Index),
    /// Copies a tensor under another name.
    Copy(Index, String),
    /// Sets a metadata key.
    Meta(String, String),
    /// Removes a metadata key.
    DropMeta(String),
    /// Writes a wrong header length.
    HeaderLen(u64),
    /// Cuts the data section.
    CutData(Index),
}

const NAMES: &[&str] = &[
    "",
    "obs",
    "actions",
    "rewards",
    "last_values",
    "episode_returns",
    "actor.0.weight",
    "actor.0.bias",
    "pi.weight",
    "vf.bias",
    "log_std",
    "m.0",
    "__metadata__",
    "ü\u{0}\n",
];
const DTYPES: &[&str] = &["F32", "F64", "F16", "BF16", "I64", "I32", "U8", "I8", "BOOL", "F8_E4M3", "U64", "X"];
const META_KEYS: &[&str] = &["format_version", "policy_version", "architecture", "n_envs", "worker_index", "adam_step"];
const META_VALUES: &[&str] = &[
    "",
    "0",
    "1",
    "2",
    "-1",
    "4294967296",
    "18446744073709551615",
    "18446744073709551616",
    "1152921504606846976",
    "NaN",
    "1e309",
    "null",
    "{}",
    "[]",
    "x",
    r#"{"config":{"fcnet_hiddens":[1152921504606846976],"fcnet_activation":"tanh","vf_share_layers":false,"log_std_init":0.0},"obs_dim":4,"action":{"Discrete":{"n":2}}}"#,
    r#"{"config":{"fcnet_hiddens":[65536,65536],"fcnet_activation":"tanh","vf_share_layers":false,"log_std_init":0.0},"obs_dim":65536,"action":{"Continuous":{"dim":65536}}}"#,
    r#"{"config":{"fcnet_hiddens":[8],"fcnet_activation":"tanh","vf_share_layers":true,"log_std_init":1e308},"obs_dim":4,"action":{"Continuous":{"dim":2}}}"#,
];

fn odd_dim() -> impl Strategy<Value = u64> {
    prop_oneof![0u64..6, Just(1 << 31), Just(1 << 32), Just(1 << 60), Just(u64::MAX), Just(u64::MAX / 4 + 1)]
}

fn text(options: &'static [&'static str]) -> impl Strategy<Value = String> {
    prop_oneof![4 => proptest::sample::select(options).prop_map(str::to_string), 1 => ".{0,12}"]
}

fn edit() -> impl Strategy<Value = HeaderEdit> {
    prop_oneof![
        (any::<Index>(), text(NAMES)).prop_map(|(i, n)| HeaderEdit::Rename(i, n)),
        (any::<Index>(), text(DTYPES)).prop_map(|(i, d)| HeaderEdit::Dtype(i, d)),
        (any::<Index>(), proptest::collection::vec(odd_dim(), 0..4)).prop_map(|(i, s)| HeaderEdit::Shape(i, s)),
        (any::<Index>(), odd_dim(), odd_dim()).prop_map(|(i, a, b)| HeaderEdit::Offsets(i, a, b)),
        any::<Index>().prop_map(HeaderEdit::Drop),
        (any::<Index>(), text(NAMES)).prop_map(|(i, n)| HeaderEdit::Copy(i, n)),
        (text(META_KEYS), text(META_VALUES)).prop_map(|(k, v)| HeaderEdit::Meta(k, v)),
        text(META_KEYS).prop_map(HeaderEdit::DropMeta),
        prop_oneof![Just(0u64), Just(7), Just(u64::MAX), Just(1 << 40), 0u64..4096].prop_map(HeaderEdit::HeaderLen),
        any::<Index>().prop_map(HeaderEdit::CutData),
    ]
}

/// The header and data section of a safetensors file, if it has them.
fn split(file: &[u8]) -> Option<(Map<String, Value>, Vec<u8>)> {
    let len = usize::try_from(u64::from_le_bytes(file.get(..8)?.try_into().ok()?)).ok()?;
    let header = file.get(8..8usize.checked_add(len)?)?;
    let map = serde_json::from_slice::<Value>(header).ok()?.as_object()?.clone();
    Some((map, file[8 + len..].to_vec()))
}

/// `file` with `edits` applied to its header (a file without a readable header is kept).
pub fn apply(file: &[u8], edits: &[HeaderEdit]) -> Vec<u8> {
    let Some((mut header, mut data)) = split(file) else { return file.to_vec() };
    let mut header_len = None;
    for e in edits {
        let names: Vec<String> = header.keys().filter(|k| *k != "__metadata__").cloned().collect();
        let pick = |i: &Index| (!names.is_empty()).then(|| names[i.index(names.len())].clone());
        match e {
            HeaderEdit::Rename(i, new) => {
                if let Some(old) = pick(i)
                    && let Some(v) = header.remove(&old)
                {
                    header.insert(new.clone(), v);
                }
            }
            HeaderEdit::Dtype(i, d) => {
                if let Some(t) = pick(i).and_then(|n| header.get_mut(&n)) {
                    t["dtype"] = json!(d);
                }
            }
            HeaderEdit::Shape(i, s) => {
                if let Some(t) = pick(i).and_then(|n| header.get_mut(&n)) {
                    t["shape"] = json!(s);
                }
            }
            HeaderEdit::Offsets(i, a, b) => {
                if let Some(t) = pick(i).and_then(|n| header.get_mut(&n)) {
                    t["data_offsets"] = json!([a, b]);
                }
            }
            HeaderEdit::Drop(i) => {
                if let Some(n) = pick(i) {
                    header.remove(&n);
                }
            }
            HeaderEdit::Copy(i, new) => {
                if let Some(t) = pick(i).and_then(|n| header.get(&n).cloned()) {
                    header.insert(new.clone(), t);
                }
            }
            HeaderEdit::Meta(k, v) => {
                if let Value::Object(m) = header.entry("__metadata__").or_insert_with(|| json!({})) {
                    m.insert(k.clone(), json!(v));
                }
            }
            HeaderEdit::DropMeta(k) => {
                if let Some(Value::Object(m)) = header.get_mut("__metadata__") {
                    m.remove(k);
                }
            }
            HeaderEdit::HeaderLen(n) => header_len = Some(*n),
            HeaderEdit::CutData(i) => {
                let k = i.index(data.len() + 1);
                data.truncate(k);
            }
        }
    }
    let mut json = serde_json::to_vec(&header).expect("a JSON map serializes");
    while json.len() % 8 != 0 {
        json.push(b' ');
    }
    let mut out = header_len.unwrap_or(json.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(&json);
    out.extend_from_slice(&data);
    out
}

/// Valid safetensors files with one to three header edits each; `valid` must not be empty.
pub fn edited(valid: Vec<Vec<u8>>) -> impl Strategy<Value = Vec<u8>> {
    let n = valid.len();
    (0..n, proptest::collection::vec(edit(), 1..4)).prop_map(move |(k, edits)| apply(&valid[k], &edits))
}

/// Dtypes a well-formed file may use.
const WELL_FORMED_DTYPES: &[safetensors::Dtype] = &[
    safetensors::Dtype::F32,
    safetensors::Dtype::F64,
    safetensors::Dtype::F16,
    safetensors::Dtype::I64,
    safetensors::Dtype::I32,
    safetensors::Dtype::U8,
    safetensors::Dtype::BOOL,
];

/// Files that any safetensors reader accepts but whose content lies: each tensor of `tensors`
/// present or not, mostly with its expected dtype, with small shapes that need not agree with
/// each other, and each metadata key of `keys` mostly set to a small number, else to an odd
/// value.
pub fn well_formed(
    tensors: &'static [(&'static str, safetensors::Dtype)],
    keys: &'static [&'static str],
) -> impl Strategy<Value = Vec<u8>> {
    let dtype = |expected: safetensors::Dtype| prop_oneof![6 => Just(expected), 1 => proptest::sample::select(WELL_FORMED_DTYPES)];
    let tensor = |(name, expected): (&'static str, safetensors::Dtype)| {
        proptest::option::weighted(0.9, (dtype(expected), proptest::collection::vec(0usize..5, 0..3), any::<u8>()))
            .prop_map(move |t| t.map(|(d, s, fill)| (name, d, s, fill)))
    };
    let value = prop_oneof![3 => (0u64..4).prop_map(|n| n.to_string()), 1 => text(META_VALUES)];
    let meta = keys
        .iter()
        .map(|k| proptest::option::weighted(0.9, value.clone()).prop_map(move |v| v.map(|v| (k.to_string(), v))))
        .collect::<Vec<_>>();
    let all = tensors.iter().map(|t| tensor(*t)).collect::<Vec<_>>();
    (all, meta).prop_map(|(tensors, meta)| {
        // One tensor per name (a later one replaces an earlier one).
        let data: std::collections::BTreeMap<&str, (safetensors::Dtype, Vec<usize>, Vec<u8>)> = tensors
            .into_iter()
            .flatten()
            .map(|(n, d, s, fill)| {
                let len = s.iter().product::<usize>() * d.bitsize() / 8;
                (n, (d, s, vec![fill; len]))
            })
            .collect();
        let views: Vec<(&str, safetensors::tensor::TensorView<'_>)> = data
            .iter()
            .map(|(n, (d, s, b))| (*n, safetensors::tensor::TensorView::new(*d, s.clone(), b).expect("sized to fit")))
            .collect();
        let meta: std::collections::HashMap<String, String> = meta.into_iter().flatten().collect();
        safetensors::serialize(views, Some(meta)).expect("a well-formed file serializes")
    })
}
