//! The entry point of training: the runtime (embedded, or a cluster's driver), the configured
//! algorithm, the shared loop.

use std::path::Path;

use rl_env::Space;
use rl_runtime::{Runtime, RuntimeOptions};

use crate::algorithm::{self, Algorithm};
use crate::callbacks::Callbacks;
use crate::checkpoint::ResumePoint;
use crate::config::{AlgorithmId, TrainConfig};
use crate::dqn::DqnLearner;
use crate::error::{Error, Result};
use crate::off_policy::OffPolicy;
use crate::ppo::Ppo;
use crate::run_dir::{RunDir, TrainSummary};
use crate::sac::SacLearner;

/// Trains the configured algorithm on an embedded runtime and writes the run directory at
/// `output` (which must not exist or be empty), reporting to `callbacks`.
///
/// Everything that can fail on bad input (the output directory, the env, its arguments, the
/// model, the actors) fails before the run directory is created.
pub fn train(config: &TrainConfig, output: &Path, callbacks: &mut dyn Callbacks) -> Result<TrainSummary> {
    check(config, output)?;
    let rt = Runtime::local(runtime_options(config, RuntimeOptions::default()))?;
    let result = train_on(&rt, config, output, callbacks);
    rt.shutdown();
    result
}

/// Trains on a runtime the caller started and keeps: on a cluster, a driver joined with
/// `Runtime::join` (rollout workers go to worker nodes, the learner stays in this process).
/// Writes the same run directory as [`train`], plus `cluster.json` on a cluster (where each
/// actor ran, what each node transferred). The same config and seed give the same learning
/// curve on either.
pub fn train_on(
    rt: &Runtime,
    config: &TrainConfig,
    output: &Path,
    callbacks: &mut dyn Callbacks,
) -> Result<TrainSummary> {
    check(config, output)?;
    let mut algo = build(rt, config)?;
    let summary = algorithm::run(algo.as_mut(), config, output, callbacks)?;
    if !rt.address().is_empty() {
        write_cluster_file(rt, algo.as_ref(), output)?;
    }
    Ok(summary)
}

/// The configured algorithm, its actors spawned on `rt`.
pub fn build(rt: &Runtime, config: &TrainConfig) -> Result<Box<dyn Algorithm>> {
    Ok(match config.algorithm {
        AlgorithmId::Ppo => Box::new(Ppo::new(rt, config)?),
        AlgorithmId::Dqn => Box::new(OffPolicy::<DqnLearner>::new(rt, config)?),
        AlgorithmId::Sac => Box::new(OffPolicy::<SacLearner>::new(rt, config)?),
    })
}

/// Continues the unfinished run in `run_dir` from its newest complete checkpoint on an embedded
/// runtime, with the config the run recorded (see [`crate::algorithm::resume`]).
pub fn resume(run_dir: &Path, callbacks: &mut dyn Callbacks) -> Result<TrainSummary> {
    let (run, config, point) = resume_point(run_dir)?;
    let rt = Runtime::local(runtime_options(&config, RuntimeOptions::default()))?;
    let result = resume_with(&rt, &run, &config, point, callbacks);
    rt.shutdown();
    result
}

/// [`resume`] on a runtime the caller started (a cluster's driver).
pub fn resume_on(rt: &Runtime, run_dir: &Path, callbacks: &mut dyn Callbacks) -> Result<TrainSummary> {
    let (run, config, point) = resume_point(run_dir)?;
    resume_with(rt, &run, &config, point, callbacks)
}

fn resume_with(
    rt: &Runtime,
    run: &RunDir,
    config: &TrainConfig,
    point: ResumePoint,
    callbacks: &mut dyn Callbacks,
) -> Result<TrainSummary> {
    let mut algo = build(rt, config)?;
    let summary = algorithm::resume(algo.as_mut(), config, run, point, callbacks)?;
    if !rt.address().is_empty() {
        write_cluster_file(rt, algo.as_ref(), run.path())?;
    }
    Ok(summary)
}

/// The run directory, its config and the checkpoint to resume from, with what is wrong named.
fn resume_point(run_dir: &Path) -> Result<(RunDir, TrainConfig, ResumePoint)> {
    let run = RunDir::open(run_dir)?;
    if run.is_finished() {
        return Err(Error::Resume(format!(
            "{} is a finished run (it has {}); train a new one, e.g. from its checkpoints/final",
            run_dir.display(),
            crate::run_dir::SUMMARY_FILE
        )));
    }
    let config_path = run.file(crate::run_dir::CONFIG_FILE);
    let text = std::fs::read_to_string(&config_path).map_err(Error::io("read config", &config_path))?;
    let config = TrainConfig::parse(&text, &config_path.display().to_string(), &[])?;
    let Some(dir) = ResumePoint::latest(&run)? else {
        return Err(Error::Resume(format!(
            "{} has no complete checkpoint yet (set checkpoint.frequency to write them during training)",
            run_dir.display()
        )));
    };
    let point = ResumePoint::load(&dir)?;
    if point.metadata.algorithm != config.algorithm.name() || point.metadata.env != config.env {
        return Err(Error::Resume(format!(
            "checkpoint {} is of {} on {}, the run's config trains {} on {}",
            dir.display(),
            point.metadata.algorithm,
            point.metadata.env,
            config.algorithm.name(),
            config.env
        )));
    }
    Ok((run, config, point))
}

/// What fails on bad input before anything starts: the output directory, the env, warnings.
fn check(config: &TrainConfig, output: &Path) -> Result<()> {
    RunDir::check_new(output)?;
    let (_, action_space) = config.env_spaces()?;
    for warning in config_warnings(config, &action_space) {
        tracing::warn!("{warning}");
    }
    Ok(())
}

/// Writes `cluster.json`: the driver, every actor's node and process, and every node of the
/// head's table with its transfer counters (this process's own counters are read directly;
/// other nodes' are as of their last heartbeat).
fn write_cluster_file(rt: &Runtime, algo: &dyn Algorithm, output: &Path) -> Result<()> {
    use serde_json::json;
    let (nodes, _) = rt.cluster_nodes()?;
    let transfers = |t: &rl_runtime::cluster::proto::TransferStats| {
        json!({
            "objects_pulled": t.objects_pulled, "bytes_pulled": t.bytes_pulled,
            "objects_served": t.objects_served, "bytes_served": t.bytes_served,
            "calls_sent": t.calls_sent, "calls_received": t.calls_received,
        })
    };
    let nodes: Vec<_> = nodes
        .iter()
        .map(|n| {
            let t = if n.node_id == rt.node_id() { rt.transfer_stats() } else { n.transfers.unwrap_or_default() };
            json!({
                "node_id": n.node_id, "address": n.address, "pid": n.pid, "is_driver": n.is_driver,
                "alive": n.state == rl_runtime::cluster::proto::NodeState::Alive as i32,
                "transfers": transfers(&t),
            })
        })
        .collect();
    let actors: Vec<_> = algo
        .actor_locations()
        .into_iter()
        .map(|(name, l)| json!({"name": name, "node_id": l.node_id, "pid": l.pid, "address": l.address}))
        .collect();
    use rl_runtime::cluster::placement_group::{state_name, strategy_name};
    let groups: Vec<_> = rt
        .placement_groups()?
        .iter()
        .filter(|g| g.creator == rt.node_id() && g.state() != rl_runtime::cluster::PlacementGroupState::Removed)
        .map(|g| {
            let nodes: Vec<u32> = g.bundles.iter().map(|b| b.node_id).collect();
            json!({"id": g.group_id, "name": g.name, "strategy": strategy_name(g.strategy()),
                   "state": state_name(g.state()), "bundle_nodes": nodes})
        })
        .collect();
    let doc = json!({
        "head": rt.head_address(),
        "driver": {"node_id": rt.node_id(), "pid": std::process::id(), "address": rt.address()},
        "actors": actors,
        "nodes": nodes,
        "placement_groups": groups,
    });
    let path = output.join(crate::run_dir::CLUSTER_FILE);
    let text = serde_json::to_string_pretty(&doc).expect("JSON values serialize");
    std::fs::write(&path, text + "\n").map_err(crate::Error::io("write", &path))
}

/// Warnings about settings that run but are unlikely to do what the user meant.
fn config_warnings(config: &TrainConfig, action_space: &Space) -> Vec<String> {
    let mut out = Vec::new();
    // CleanRL's discrete ppo.py uses an entropy bonus of 0.01; its continuous ppo_continuous_action.py
    // and rl-baselines3-zoo's Pendulum settings use none: on a Gaussian policy the bonus keeps
    // widening the log-std instead of letting the policy settle.
    if config.algorithm == AlgorithmId::Ppo && matches!(action_space, Space::Box(_)) && config.entropy_coeff > 0.0 {
        out.push(format!(
            "{} has continuous (Box) actions and entropy_coeff is {}: an entropy bonus tuned for discrete actions \
             keeps a Gaussian policy from settling; configs/ppo-pendulum.yaml has settings for continuous control \
             (entropy_coeff 0.0)",
            config.env, config.entropy_coeff
        ));
    }
    // RLlib's vf_clip_param caps squared value errors (default 10.0); a value like 0.2 reads as
    // CleanRL's value clipping, which is clip_vloss.
    if let Some(v) = config.vf_clip_param.filter(|v| *v < 1.0) {
        out.push(format!(
            "vf_clip_param {v} caps every squared value error at {v} (RLlib's meaning), which nearly stops the \
             critic from learning; CleanRL-style value clipping is clip_vloss: true"
        ));
    }
    out
}

/// The embedded runtime's options: `defaults`, with logical CPUs raised to what the env runners
/// reserve when the machine has fewer. The runners then share the cores (oversubscribed, like
/// SB3's vectorized envs) and a warning says so; a real cluster instead keeps such actors
/// pending until a node has room.
fn runtime_options(config: &TrainConfig, defaults: RuntimeOptions) -> RuntimeOptions {
    let needed = config.num_env_runners as f64 * config.num_cpus_per_env_runner;
    if needed <= defaults.num_cpus {
        return defaults;
    }
    tracing::warn!(
        "num_env_runners {} x num_cpus_per_env_runner {} reserve {needed} logical CPUs and this machine has {}: \
         the env runners will share the cores (lower num_env_runners to avoid oversubscribing)",
        config.num_env_runners,
        config.num_cpus_per_env_runner,
        defaults.num_cpus
    );
    RuntimeOptions { num_cpus: needed, ..defaults }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_that_defeat_learning_are_warned_about() {
        let parse = |text: &str| TrainConfig::parse(text, "t.yaml", &[]).unwrap();
        let warn = |c: &TrainConfig| config_warnings(c, &c.env_spaces().unwrap().1);
        let pendulum = parse("env: Pendulum-v1\nstop: {training_iteration: 1}\n");
        assert!(warn(&pendulum)[0].starts_with("Pendulum-v1 has continuous (Box) actions and entropy_coeff is 0.01"));
        assert!(warn(&parse("env: Pendulum-v1\nentropy_coeff: 0.0\nstop: {training_iteration: 1}\n")).is_empty());
        assert!(warn(&parse("env: CartPole-v1\nstop: {training_iteration: 1}\n")).is_empty());
        let capped = parse("env: CartPole-v1\nvf_clip_param: 0.2\nstop: {training_iteration: 1}\n");
        assert!(
            warn(&capped)[0].starts_with("vf_clip_param 0.2 caps every squared value error"),
            "{:?}",
            warn(&capped)
        );
        assert!(warn(&parse("env: CartPole-v1\nvf_clip_param: 10.0\nstop: {training_iteration: 1}\n")).is_empty());
    }

    #[test]
    fn more_env_runners_than_cores_are_granted_logical_cpus() {
        let config = |runners: usize| {
            let text = format!("env: CartPole-v1\nnum_env_runners: {runners}\nstop: {{training_iteration: 1}}\n");
            TrainConfig::parse(&text, "t.yaml", &[]).unwrap()
        };
        let one_cpu = RuntimeOptions { num_cpus: 1.0, ..RuntimeOptions::default() };
        assert_eq!(runtime_options(&config(4), one_cpu.clone()).num_cpus, 4.0);
        assert_eq!(runtime_options(&config(1), one_cpu.clone()).num_cpus, 1.0);
        // Four runners really train on a one-CPU runtime.
        let rt = Runtime::local(runtime_options(&config(4), one_cpu)).unwrap();
        let dir = std::env::temp_dir().join(format!("rllib-oversubscribe-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let c = config(4);
        let mut ppo = Ppo::new(&rt, &c).unwrap();
        let summary = algorithm::run(&mut ppo, &c, &dir, &mut ()).unwrap();
        assert_eq!(summary.env_steps, 4 * 2 * 128);
        rt.shutdown();
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
