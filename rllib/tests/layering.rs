//! The library's layering, checked from its sources: no import circle between its files, no
//! path to the application crate, and no application dependency in its manifest.
//!
//! Edges are drawn from every `crate::`, `self::` and `super::` path in a file's non-test code
//! (everything before its `#[cfg(test)]` module), resolved to the longest module path that is a
//! file: `crate::ppo::loss::ppo_loss` is an edge to `ppo/loss.rs`, `crate::ppo::Ppo` to
//! `ppo/mod.rs`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn src_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Every `.rs` file under `dir`, with its module path (`ppo::loss`; `ppo/mod.rs` is `ppo`,
/// `lib.rs` is the empty path).
fn modules(dir: &Path, prefix: &[String], out: &mut BTreeMap<String, PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let stem = path.file_stem().unwrap().to_string_lossy().to_string();
        if path.is_dir() {
            modules(&path, &[prefix, &[stem]].concat(), out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let parts = match stem.as_str() {
                "mod" | "lib" => prefix.to_vec(),
                _ => [prefix, &[stem]].concat(),
            };
            out.insert(parts.join("::"), path);
        }
    }
}

/// The code of a file without its test module and comments.
fn code(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap();
    let text = text.split("#[cfg(test)]").next().unwrap();
    text.lines().filter(|l| !l.trim_start().starts_with("//")).collect::<Vec<_>>().join("\n")
}

/// The module paths a file's code names, each as segments after `crate::` (relative paths
/// resolved against the file's own module `here`). Brace groups are expanded one level deep.
fn referenced(code: &str, here: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let base: Vec<String> = if here.is_empty() { vec![] } else { here.split("::").map(String::from).collect() };
    for (root, prefix) in
        [("crate::", vec![]), ("self::", base.clone()), ("super::", base[..base.len().saturating_sub(1)].to_vec())]
    {
        let mut rest = code;
        while let Some(i) = rest.find(root) {
            let before = rest[..i].chars().last();
            rest = &rest[i + root.len()..];
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
                continue;
            }
            let path: String = rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':').collect();
            let mut segs: Vec<String> = prefix.clone();
            segs.extend(path.split("::").filter(|s| !s.is_empty()).map(String::from));
            let after = &rest[path.len()..];
            if after.starts_with('{') {
                let group = &after[1..after.find('}').unwrap_or(after.len())];
                for item in group.split(',').filter(|i| !i.trim().is_empty()) {
                    let item: Vec<String> = item.trim().split("::").map(|s| s.trim().to_string()).collect();
                    out.push([segs.clone(), item].concat());
                }
            } else {
                out.push(segs);
            }
        }
    }
    out
}

/// The file a path lands in: its longest prefix that is a module.
fn resolve(segs: &[String], mods: &BTreeMap<String, PathBuf>) -> Option<String> {
    (1..=segs.len()).rev().map(|n| segs[..n].join("::")).find(|m| mods.contains_key(m))
}

fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let mut mods = BTreeMap::new();
    modules(&src_dir(), &[], &mut mods);
    let mut edges = BTreeMap::new();
    for (m, path) in &mods {
        let deps: BTreeSet<String> = referenced(&code(path), m)
            .iter()
            .filter_map(|segs| resolve(segs, &mods))
            .filter(|d| d != m && !d.is_empty())
            .collect();
        edges.insert(m.clone(), deps);
    }
    edges
}

/// A cycle of `edges`, if any, as the list of modules around it.
fn find_cycle(edges: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        m: &str,
        edges: &BTreeMap<String, BTreeSet<String>>,
        done: &mut BTreeSet<String>,
        stack: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        if let Some(i) = stack.iter().position(|s| s == m) {
            return Some(stack[i..].iter().cloned().chain([m.to_string()]).collect());
        }
        if !done.insert(m.to_string()) {
            return None;
        }
        stack.push(m.to_string());
        for d in edges.get(m).into_iter().flatten() {
            if let Some(c) = visit(d, edges, done, stack) {
                return Some(c);
            }
        }
        stack.pop();
        None
    }
    let mut done = BTreeSet::new();
    edges.keys().find_map(|m| visit(m, edges, &mut done, &mut Vec::new()))
}

#[test]
fn no_import_circle_between_the_library_files() {
    let edges = graph();
    // The graph is really drawn: the PPO driver depends on the loss and the shared loop.
    assert!(edges["ppo"].contains("ppo::loss") && edges["ppo"].contains("algorithm"), "{:?}", edges["ppo"]);
    assert!(edges["algorithm"].contains("run_dir"), "{:?}", edges["algorithm"]);
    if let Some(cycle) = find_cycle(&edges) {
        panic!("import circle: {}", cycle.join(" -> "));
    }
}

#[test]
fn the_cycle_finder_finds_cycles() {
    let edges: BTreeMap<String, BTreeSet<String>> = [("a", &["b"][..]), ("b", &["c"]), ("c", &["a"]), ("d", &[])]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.iter().map(|s| s.to_string()).collect()))
        .collect();
    assert_eq!(find_cycle(&edges).unwrap(), ["a", "b", "c", "a"]);
    let refs = referenced("use crate::{a::B, c};\nuse super::x; let y = self::z::w();", "p::q");
    assert_eq!(refs, [vec!["a", "B"], vec!["c"], vec!["p", "q", "z", "w"], vec!["p", "x"]]);
}

#[test]
fn the_library_knows_nothing_of_the_application() {
    let mut mods = BTreeMap::new();
    modules(&src_dir(), &[], &mut mods);
    for path in mods.values() {
        let text = std::fs::read_to_string(path).unwrap();
        for name in ["rl_cli", "clap", "indicatif", "plotters"] {
            assert!(!text.contains(&format!("{name}::")), "{} uses {name}", path.display());
        }
    }
    let manifest = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml")).unwrap();
    for dep in ["rl-cli", "clap", "indicatif", "plotters", "anyhow"] {
        assert!(!manifest.lines().any(|l| l.starts_with(&format!("{dep} "))), "rllib depends on {dep}");
    }
}
