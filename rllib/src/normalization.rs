//! Observation and reward normalization in env runners, their statistics across runners, and the
//! frozen observation normalization that evaluation uses.
//!
//! Two observation schemes, chosen in the config:
//!
//! - `normalize_observation`: Gymnasium's `NormalizeObservation` on every sub-env, each with its
//!   own running mean and variance updated at every observation it returns (the reset one, each
//!   step's, and an episode's final one), then clipped, exactly as CleanRL's
//!   `ppo_continuous_action.py` wraps each env (`NormalizeObservation`, then
//!   `TransformObservation(np.clip(obs, -10, 10))`).
//! - `observation_filter: MeanStdFilter`: RLlib's filter, one per runner; every iteration the
//!   driver merges what each runner saw since the last sync into its own filter and hands the merged
//!   filter back to every runner before it samples again (RLlib's `FilterManager.synchronize`).
//!
//! `normalize_reward` is Gymnasium's `NormalizeReward` per sub-env (scaled by the running standard
//! deviation of a discounted return, then clipped), as CleanRL applies it. The episode returns the
//! runners report stay the env's own: normalization happens after the vector env recorded them,
//! where CleanRL's `RecordEpisodeStatistics` sits inside the normalizing wrappers.
//!
//! The normalizers sit in the runner, after its vector env, rather than as wrappers inside it, so
//! that episode statistics see the raw rewards; the order of updates is the wrappers' own (a
//! finished episode's final observation before the next episode's first).

use rl_env::{MeanStdFilter, ObservationNormalizer, RewardNormalizer, RunningMeanStd, RunningStat, SyncVectorEnv};
use serde::{Deserialize, Serialize};

use crate::config::{ObservationFilter, TrainConfig};
use crate::error::{Error, Result};

/// A runner's observation normalization.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum ObservationNorm {
    /// Observations pass through.
    Off,
    /// Gymnasium's `NormalizeObservation`, one per sub-env.
    PerSubEnv(Vec<ObservationNormalizer>),
    /// RLlib's `MeanStdFilter`, one for the runner, synced through the driver.
    Filter(MeanStdFilter),
}

/// A runner's normalizers' state, for checkpoints.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunnerNormalizerState {
    observations: ObservationNorm,
    rewards: Vec<RewardNormalizer>,
    /// The normalized current observations as the policy saw them (a runner-wide filter moved on
    /// after normalizing the first sub-envs' rows, so they cannot be recomputed).
    current: Vec<f32>,
}

/// What a runner reports about its observation statistics with each sample.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ObservationStats {
    /// `normalize_observation`: its sub-envs' statistics merged (the driver merges those of all
    /// runners into the statistics evaluation uses).
    Gymnasium(RunningMeanStd),
    /// `MeanStdFilter`: what the runner's filter saw since the last sync.
    FilterDelta(RunningStat),
}

/// The normalizers of one runner's vector env, and the normalized observations the policy sees.
#[derive(Debug, Clone)]
pub struct RunnerNormalizers {
    obs_dim: usize,
    observations: ObservationNorm,
    rewards: Vec<RewardNormalizer>,
    /// The normalized current observations, `[n_envs, obs_dim]`.
    current: Vec<f32>,
    /// The normalized final observations of the last step, `[n_envs, obs_dim]`; a row is valid
    /// where the vector env has a final observation.
    finals: Vec<f32>,
}

impl RunnerNormalizers {
    /// The normalizers `config` asks for, for `n_envs` sub-envs with `obs_dim` observations.
    pub fn new(config: &TrainConfig, n_envs: usize, obs_dim: usize) -> Self {
        let observations = if let Some(c) = &config.normalize_observation {
            ObservationNorm::PerSubEnv(vec![ObservationNormalizer::new(obs_dim, c.epsilon, c.clip); n_envs])
        } else if config.observation_filter == ObservationFilter::MeanStdFilter {
            ObservationNorm::Filter(MeanStdFilter::new(obs_dim, None))
        } else {
            ObservationNorm::Off
        };
        let rewards = match &config.normalize_reward {
            Some(c) => vec![RewardNormalizer::new(c.gamma.unwrap_or(config.gamma), c.epsilon, c.clip); n_envs],
            None => Vec::new(),
        };
        Self { obs_dim, observations, rewards, current: Vec::new(), finals: vec![0.0; n_envs * obs_dim] }
    }

    /// True when observations or rewards are normalized.
    pub fn normalizes_anything(&self) -> bool {
        self.observations != ObservationNorm::Off || !self.rewards.is_empty()
    }

    /// Takes in the observations of a reset of every sub-env (updating the statistics).
    pub fn on_reset(&mut self, envs: &SyncVectorEnv) {
        self.current.clear();
        self.current.extend_from_slice(envs.observations());
        for (i, row) in self.current.chunks_mut(self.obs_dim).enumerate() {
            self.observations.apply(i, row);
        }
    }

    /// Takes in the observations of a step (each finished episode's final observation first,
    /// then the next episode's first, as the wrappers see them) and returns the step's rewards,
    /// normalized when `normalize_reward` is on.
    pub fn on_step(&mut self, envs: &SyncVectorEnv, rewards: &mut Vec<f32>) {
        let d = self.obs_dim;
        for i in 0..envs.n_envs() {
            if let Some(final_obs) = envs.final_observation(i) {
                let row = &mut self.finals[i * d..(i + 1) * d];
                row.copy_from_slice(final_obs);
                self.observations.apply(i, row);
            }
            let row = &mut self.current[i * d..(i + 1) * d];
            row.copy_from_slice(&envs.observations()[i * d..(i + 1) * d]);
            self.observations.apply(i, row);
        }
        rewards.clear();
        for (i, &r) in envs.rewards().iter().enumerate() {
            let r = match self.rewards.get_mut(i) {
                Some(norm) => norm.normalize(r, envs.terminated()[i]),
                None => r,
            };
            rewards.push(r as f32);
        }
    }

    /// The normalized current observations, `[n_envs, obs_dim]`.
    pub fn observations(&self) -> &[f32] {
        &self.current
    }

    /// Sub-env `i`'s normalized final observation of the last step (valid only where the vector
    /// env has one).
    pub fn final_observation(&self, i: usize) -> &[f32] {
        &self.finals[i * self.obs_dim..(i + 1) * self.obs_dim]
    }

    /// The statistics to report with a sample (taking the filter's buffer), if observations are
    /// normalized.
    pub fn take_stats(&mut self) -> Option<ObservationStats> {
        match &mut self.observations {
            ObservationNorm::Off => None,
            ObservationNorm::PerSubEnv(norms) => Some(ObservationStats::Gymnasium(merged(norms))),
            ObservationNorm::Filter(f) => Some(ObservationStats::FilterDelta(f.take_buffer())),
        }
    }

    /// Takes the driver's merged filter (`MeanStdFilter` only; otherwise ignored).
    pub fn sync_filter(&mut self, driver: &MeanStdFilter) {
        if let ObservationNorm::Filter(f) = &mut self.observations {
            f.sync_from(driver);
        }
    }

    /// The state for a checkpoint.
    pub fn state(&self) -> RunnerNormalizerState {
        RunnerNormalizerState {
            observations: self.observations.clone(),
            rewards: self.rewards.clone(),
            current: self.current.clone(),
        }
    }

    /// Takes over a checkpointed state, normalized current observations included (for envs
    /// restored exactly); it must come from the same normalization settings.
    pub fn restore(&mut self, state: RunnerNormalizerState) -> Result<()> {
        let same_kind = std::mem::discriminant(&state.observations) == std::mem::discriminant(&self.observations)
            && state.rewards.len() == self.rewards.len();
        let same_size = match (&state.observations, &self.observations) {
            (ObservationNorm::PerSubEnv(a), ObservationNorm::PerSubEnv(b)) => a.len() == b.len(),
            _ => true,
        };
        if !same_kind || !same_size || state.current.len() != self.current.len() {
            return Err(Error::Resume(
                "the checkpoint's normalization state does not fit the config (normalize_observation, \
                 normalize_reward, observation_filter or num_envs_per_env_runner changed?)"
                    .into(),
            ));
        }
        self.observations = state.observations;
        self.rewards = state.rewards;
        self.current = state.current;
        Ok(())
    }
}

impl ObservationNorm {
    fn apply(&mut self, i: usize, row: &mut [f32]) {
        match self {
            Self::Off => {}
            Self::PerSubEnv(norms) => norms[i].normalize(row),
            Self::Filter(f) => f.apply(row),
        }
    }
}

/// The statistics of several normalizers merged into one population's.
fn merged(norms: &[ObservationNormalizer]) -> RunningMeanStd {
    let mut all = norms[0].stats().clone();
    for n in &norms[1..] {
        all.merge(n.stats());
    }
    all
}

/// The observation normalization evaluation applies, frozen: the statistics of every training
/// sub-env merged (`normalize_observation`), or the driver's merged filter (`MeanStdFilter`).
/// Saved in checkpoints as `normalization.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ObservationNormalization {
    /// Gymnasium's `NormalizeObservation` with fixed statistics.
    Gymnasium(ObservationNormalizer),
    /// RLlib's `MeanStdFilter` with fixed statistics.
    MeanStdFilter(MeanStdFilter),
}

impl ObservationNormalization {
    /// The checkpoint file it is saved in.
    pub const FILE: &'static str = "normalization.json";

    /// Normalizes `obs` (one or more rows) without updating the statistics.
    pub fn apply(&self, obs: &mut [f32]) {
        match self {
            Self::Gymnasium(n) => {
                let d = n.stats().dim();
                obs.chunks_mut(d).for_each(|row| n.normalize_frozen(row));
            }
            Self::MeanStdFilter(f) => {
                obs.chunks_mut(f.dim()).for_each(|row| f.apply_frozen(row));
            }
        }
    }

    /// As JSON text for the checkpoint.
    pub fn to_json(&self) -> Result<Vec<u8>> {
        let text = serde_json::to_string_pretty(self)
            .map_err(|e| Error::Serialize { what: "the normalization statistics", message: e.to_string() })?;
        Ok((text + "\n").into_bytes())
    }

    /// Reads it back from a checkpoint's file `path`.
    pub fn from_json(bytes: &[u8], path: &std::path::Path) -> Result<Self> {
        serde_json::from_slice(bytes).map_err(|e| Error::Format {
            path: path.to_path_buf(),
            line: Some(e.line()),
            message: format!("not the normalization statistics this version writes: {e}"),
        })
    }
}

/// The driver's side: merges the runners' statistics every iteration. Its size comes from the
/// first report, so the driver never builds an env to learn it.
#[derive(Debug, Clone, PartialEq)]
pub enum DriverNormalization {
    /// Observations are not normalized.
    Off,
    /// `normalize_observation`: the merged statistics of every runner's sub-envs as of the last
    /// sample (none before the first).
    Gymnasium {
        /// The normalizers' epsilon.
        epsilon: f64,
        /// The normalizers' clip.
        clip: Option<f64>,
        /// The merged statistics.
        merged: Option<RunningMeanStd>,
    },
    /// `MeanStdFilter`: the driver's filter, which every runner takes before it samples (none
    /// before the first report).
    Filter(Option<MeanStdFilter>),
}

impl DriverNormalization {
    /// The driver's side of `config`'s observation normalization.
    pub fn new(config: &TrainConfig) -> Self {
        if let Some(c) = &config.normalize_observation {
            Self::Gymnasium { epsilon: c.epsilon, clip: c.clip, merged: None }
        } else if config.observation_filter == ObservationFilter::MeanStdFilter {
            Self::Filter(None)
        } else {
            Self::Off
        }
    }

    /// The filter runners take before sampling (`MeanStdFilter`, after the first report).
    pub fn filter(&self) -> Option<&MeanStdFilter> {
        match self {
            Self::Filter(f) => f.as_ref(),
            _ => None,
        }
    }

    /// Takes in the statistics the runners reported with one round of samples.
    pub fn merge(&mut self, reports: Vec<ObservationStats>) {
        match self {
            Self::Off => {}
            Self::Gymnasium { merged, .. } => {
                let mut all: Option<RunningMeanStd> = None;
                for r in reports {
                    if let ObservationStats::Gymnasium(s) = r {
                        match &mut all {
                            Some(a) => a.merge(&s),
                            None => all = Some(s),
                        }
                    }
                }
                if all.is_some() {
                    *merged = all;
                }
            }
            Self::Filter(filter) => {
                for r in reports {
                    if let ObservationStats::FilterDelta(delta) = r {
                        filter.get_or_insert_with(|| MeanStdFilter::new(delta.dim(), None)).apply_changes(&delta);
                    }
                }
            }
        }
    }

    /// The frozen normalization for evaluation and checkpoints: `None` when observations are not
    /// normalized or no runner reported yet.
    pub fn frozen(&self) -> Option<ObservationNormalization> {
        match self {
            Self::Off => None,
            Self::Gymnasium { epsilon, clip, merged } => {
                let stats = merged.as_ref()?;
                let mut n = ObservationNormalizer::new(stats.dim(), *epsilon, *clip);
                n.set_stats(stats.clone()).expect("the normalizer was sized for these statistics");
                Some(ObservationNormalization::Gymnasium(n))
            }
            Self::Filter(f) => f.clone().map(ObservationNormalization::MeanStdFilter),
        }
    }

    /// Takes over the frozen normalization a checkpoint saved.
    pub fn restore(&mut self, saved: &ObservationNormalization) -> Result<()> {
        match (self, saved) {
            (Self::Gymnasium { merged, .. }, ObservationNormalization::Gymnasium(n)) => {
                *merged = Some(n.stats().clone());
                Ok(())
            }
            (Self::Filter(f), ObservationNormalization::MeanStdFilter(saved)) => {
                *f = Some(saved.clone());
                Ok(())
            }
            _ => Err(Error::Resume(
                "the checkpoint's normalization.json does not fit the config's observation normalization".into(),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use rl_env::{Action, Actions, Env, Kwargs, NormalizeObservation, NormalizeReward, make};

    use super::*;

    /// The runner's normalizers after a vector env give, bit for bit, what CleanRL's stack of
    /// Gymnasium wrappers gives on each env: `NormalizeReward(NormalizeObservation(env))` with
    /// both clips, the final observation of an episode normalized before the next first one.
    #[test]
    fn runner_normalizers_match_the_wrappers_on_each_sub_env() {
        let text = "env: CartPole-v1\nnormalize_observation: {}\nnormalize_reward: {gamma: 0.9}\nstop: {training_iteration: 1}\n";
        let config = TrainConfig::parse(text, "t.yaml", &[]).unwrap();
        let n = 3;
        let mut envs = SyncVectorEnv::make("CartPole-v1", &Kwargs::new(), n).unwrap();
        envs.reset(Some(7)).unwrap();
        let mut norms = RunnerNormalizers::new(&config, n, envs.obs_dim());
        norms.on_reset(&envs);

        let mut wrapped: Vec<_> = (0..n)
            .map(|_| {
                let obs =
                    NormalizeObservation::new(make("CartPole-v1", &Kwargs::new()).unwrap(), 1e-8).with_clip(Some(10.0));
                NormalizeReward::new(obs, 0.9, 1e-8).with_clip(Some(10.0))
            })
            .collect();
        let mut expected: Vec<Vec<f32>> =
            wrapped.iter_mut().enumerate().map(|(i, e)| e.reset(Some(7 + i as u64), None).unwrap().0).collect();
        assert_eq!(norms.observations(), expected.concat());

        let mut rewards = Vec::new();
        let mut episodes_ended = 0;
        for t in 0..300u64 {
            // Actions that end episodes at different times in different sub-envs.
            let actions: Vec<i64> = (0..n as u64).map(|i| ((t * (i + 2)) / 3 % 2) as i64).collect();
            envs.step(Actions::Discrete(&actions)).unwrap();
            norms.on_step(&envs, &mut rewards);
            for (i, env) in wrapped.iter_mut().enumerate() {
                let step = env.step(Action::Discrete(actions[i])).unwrap();
                assert_eq!(rewards[i], step.reward as f32, "step {t}, sub-env {i}");
                if step.terminated || step.truncated {
                    episodes_ended += 1;
                    assert_eq!(norms.final_observation(i), step.obs.as_slice(), "final obs, step {t}");
                    expected[i] = env.reset(None, None).unwrap().0;
                } else {
                    expected[i] = step.obs;
                }
            }
            assert_eq!(norms.observations(), expected.concat(), "step {t}");
        }
        assert!(episodes_ended >= 10, "{episodes_ended}");
    }
}
