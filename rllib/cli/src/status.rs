//! `rl status`: the cluster's nodes, actors, placement groups and jobs, as text or as the JSON
//! document the dashboard also serves.
//!
//! The JSON document is the one source: the text view is rendered from it, so both always say
//! the same. Its shape (every field is always present; unknown ones are `null`):
//!
//! ```json
//! {"head": "127.0.0.1:6380",
//!  "nodes": [{"id": 1, "address": "…", "state": "ALIVE", "role": "head", "pid": 1, "parent": null,
//!             "resources_total": {"CPU": 2.0}, "resources_free": {"CPU": 1.0},
//!             "store_used_bytes": 0, "store_capacity_bytes": 0, "spilled_bytes": 0,
//!             "bytes_pulled": 0, "bytes_served": 0, "last_heartbeat_ms_ago": 12, "death_reason": null}],
//!  "actors": [{"id": 5, "name": "env_runner_1", "type": "RolloutWorker", "node": 3,
//!              "state": "ALIVE", "restarts": 0, "death_reason": null}],
//!  "placement_groups": [{"id": 1, "name": "…", "strategy": "SPREAD", "state": "CREATED",
//!                        "bundles": [{"resources": {"CPU": 1.0}, "node": 2}]}],
//!  "jobs": [{"id": "job-1", "name": "ppo", "state": "RUNNING", "entrypoint": "train …",
//!            "submitted_at_ms": 0, "ended_at_ms": null}]}
//! ```

use std::io::Write;

use anyhow::{Context, Result};
use rl_runtime::cluster::placement_group::{state_name, strategy_name};
use rl_runtime::cluster::proto::{self, NodeState};
use serde_json::{Value, json};

use crate::cluster::{ClusterAccess, HeadAccess};

/// The KV key under which the head's job manager keeps the job table (a JSON array).
pub const JOBS_KEY: &str = "rl/jobs";

fn amounts(r: &Option<proto::Resources>) -> Value {
    json!(r.as_ref().map(|r| r.amounts.iter().collect::<std::collections::BTreeMap<_, _>>()).unwrap_or_default())
}

/// The status document of a head at `head` whose table is `reply`, with the job table `jobs`.
pub fn document(head: &str, reply: &proto::ListNodesReply, jobs: Value) -> Value {
    let nodes: Vec<Value> = reply
        .nodes
        .iter()
        .map(|n| {
            let alive = n.state == NodeState::Alive as i32;
            let role = if n.node_id == 1 {
                "head"
            } else if n.is_driver {
                "driver"
            } else if n.parent != 0 {
                // The worker process of a process actor, started by node `parent`.
                "actor process"
            } else {
                "node"
            };
            let t = n.transfers.unwrap_or_default();
            json!({
                "id": n.node_id, "address": n.address, "state": if alive { "ALIVE" } else { "DEAD" },
                "role": role, "pid": n.pid, "parent": (n.parent != 0).then_some(n.parent),
                "resources_total": amounts(&n.total), "resources_free": amounts(&n.available),
                "store_used_bytes": t.store_bytes, "store_capacity_bytes": t.store_capacity_bytes,
                "spilled_bytes": t.spilled_bytes,
                "bytes_pulled": t.bytes_pulled, "bytes_served": t.bytes_served,
                "last_heartbeat_ms_ago": alive.then_some(n.last_heartbeat_ms_ago),
                "death_reason": (!alive).then(|| n.death_reason.clone()),
            })
        })
        .collect();
    let actors: Vec<Value> = reply
        .actors
        .iter()
        .map(|a| {
            json!({
                "id": a.actor_id, "name": a.name, "type": a.type_name, "node": a.node_id,
                "state": if a.alive { "ALIVE" } else { "DEAD" }, "restarts": a.restarts,
                "death_reason": (!a.alive).then(|| a.death_reason.clone()),
            })
        })
        .collect();
    let groups: Vec<Value> = reply
        .placement_groups
        .iter()
        .map(|g| {
            let bundles: Vec<Value> = g
                .bundles
                .iter()
                .map(|b| json!({"resources": amounts(&b.resources), "node": (b.node_id != 0).then_some(b.node_id)}))
                .collect();
            json!({
                "id": g.group_id, "name": g.name, "strategy": strategy_name(g.strategy()),
                "state": state_name(g.state()), "bundles": bundles,
            })
        })
        .collect();
    json!({"head": head, "nodes": nodes, "actors": actors, "placement_groups": groups, "jobs": jobs})
}

/// The job table from the head's KV store (an empty list if no job was ever submitted).
pub fn jobs_from_kv(value: Option<bytes::Bytes>) -> Result<Value> {
    match value {
        None => Ok(json!([])),
        Some(v) => serde_json::from_slice(&v).context("the head's job table is not valid JSON"),
    }
}

/// `rl status [--address A] [--json]`.
pub fn run(address: Option<&str>, access: &ClusterAccess, as_json: bool, out: &mut dyn Write) -> Result<()> {
    let HeadAccess { address, token, tls } = access.head(address)?;
    let reply = rl_runtime::cluster::status(&address, &token, tls.as_ref())?;
    let jobs = jobs_from_kv(rl_runtime::cluster::read_kv(&address, &token, tls.as_ref(), JOBS_KEY)?)?;
    let doc = document(&address, &reply, jobs);
    if as_json {
        serde_json::to_writer_pretty(&mut *out, &doc)?;
        writeln!(out)?;
        return Ok(());
    }
    render(&doc, out)
}

fn s(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        v => v.to_string(),
    }
}

fn cpu(v: &Value) -> f64 {
    v["CPU"].as_f64().unwrap_or(0.0)
}

/// Renders the status document as the text `rl status` prints.
pub fn render(doc: &Value, out: &mut dyn Write) -> Result<()> {
    writeln!(out, "head {}", s(&doc["head"]))?;
    let row = |out: &mut dyn Write, c: [&str; 10]| {
        writeln!(
            out,
            "{:<5} {:<6} {:<22} {:<8} {:<7} {:<10} {:<10} {:>11} {:>9} {:>9}",
            c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7], c[8], c[9]
        )
    };
    row(out, ["node", "state", "address", "pid", "role", "CPU free", "heartbeat", "store", "pulled", "served"])?;
    for n in doc["nodes"].as_array().into_iter().flatten() {
        let alive = n["state"] == "ALIVE";
        let free = format!("{}/{}", cpu(&n["resources_free"]), cpu(&n["resources_total"]));
        let beat = match n["last_heartbeat_ms_ago"].as_u64() {
            Some(ms) => format!("{:.1} s ago", ms as f64 / 1000.0),
            None => "-".into(),
        };
        let mut store = human_bytes(n["store_used_bytes"].as_u64().unwrap_or(0));
        if let Some(spilled) = n["spilled_bytes"].as_u64().filter(|b| *b > 0) {
            store = format!("{store} +{} disk", human_bytes(spilled));
        }
        let (id, pid) = (s(&n["id"]), s(&n["pid"]));
        let (pulled, served) = (
            human_bytes(n["bytes_pulled"].as_u64().unwrap_or(0)),
            human_bytes(n["bytes_served"].as_u64().unwrap_or(0)),
        );
        row(
            out,
            [&id, &s(&n["state"]), &s(&n["address"]), &pid, &s(&n["role"]), &free, &beat, &store, &pulled, &served],
        )?;
        if !alive {
            writeln!(out, "      {}", s(&n["death_reason"]))?;
        }
    }
    let actors = doc["actors"].as_array().cloned().unwrap_or_default();
    let alive = actors.iter().filter(|a| a["state"] == "ALIVE").count();
    writeln!(out, "actors: {alive} alive, {} dead", actors.len() - alive)?;
    for a in &actors {
        let state =
            if a["state"] == "ALIVE" { "alive".to_string() } else { format!("dead: {}", s(&a["death_reason"])) };
        let restarts = match a["restarts"].as_u64() {
            Some(n) if n > 0 => format!(", restarted {n}x"),
            _ => String::new(),
        };
        writeln!(out, "  {} ({}) on node {}: {state}{restarts}", s(&a["name"]), s(&a["type"]), s(&a["node"]))?;
    }
    let groups = doc["placement_groups"].as_array().cloned().unwrap_or_default();
    writeln!(out, "placement groups: {}", groups.len())?;
    for g in &groups {
        let bundles: Vec<String> = g["bundles"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|b| {
                format!(
                    "CPU {} on {}",
                    cpu(&b["resources"]),
                    b["node"].as_u64().map_or("-".into(), |n| format!("node {n}"))
                )
            })
            .collect();
        writeln!(
            out,
            "  {} {} {} {}: {}",
            s(&g["id"]),
            s(&g["name"]),
            s(&g["strategy"]),
            s(&g["state"]),
            bundles.join(", ")
        )?;
    }
    let jobs = doc["jobs"].as_array().cloned().unwrap_or_default();
    writeln!(out, "jobs: {}", jobs.len())?;
    for j in &jobs {
        writeln!(out, "  {} {} {}: {}", s(&j["id"]), s(&j["name"]), s(&j["state"]), s(&j["entrypoint"]))?;
    }
    Ok(())
}

/// `1.5 MiB`.
pub fn human_bytes(b: u64) -> String {
    match b {
        0..1024 => format!("{b} B"),
        1024..1_048_576 => format!("{:.1} KiB", b as f64 / 1024.0),
        1_048_576..1_073_741_824 => format!("{:.1} MiB", b as f64 / 1_048_576.0),
        _ => format!("{:.2} GiB", b as f64 / 1_073_741_824.0),
    }
}
