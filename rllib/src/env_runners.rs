//! The env runners (rollout workers) of an algorithm and their fault tolerance: spawning them,
//! sampling from them under a timeout, restarting or dropping the ones that fail.
//!
//! ```text
//! sample(weights):
//!     restart the failed runners whose restart delay has passed      (same index, restarts + 1)
//!     every healthy runner: SetWeights(weights), Sample               (answers within sample_timeout_s)
//!     a runner that panics, errs, times out, or whose process or node dies has failed:
//!         kill it; restart it after delay_between_env_runner_restarts_s while restarts remain,
//!         else drop it (ignore_env_runner_failures) or fail the run
//!     no batch at all: wait for the next restart and sample again
//! ```
//!
//! The semantics are RLlib's `fault_tolerance` settings ([`FaultToleranceConfig`]). A restarted
//! runner is built from its constructor: a message in flight when it failed is not replayed
//! (at-most-once calls, Ray's default for actor tasks), and it re-seeds its envs from its index
//! and restart count. The iteration goes on with the batches of the runners that answered.

use std::time::{Duration, Instant};

use rl_runtime::cluster::PlacementGroup;
use rl_runtime::{ActorHandle, ActorLocation, ActorOptions, Isolation, ObjectRef, Placement, Runtime, RuntimeError};

use crate::acting::Exploration;
use crate::config::{EnvRunnerIsolation, FaultToleranceConfig, TrainConfig};
use crate::error::{Error, Result};
use crate::normalization::{DriverNormalization, ObservationNormalization};
use crate::rollout::{EnvRunnerState, RolloutMsg, RolloutReply, RolloutWorker, RolloutWorkerInit};

/// Seconds between attempts to restart a runner while there is no room for it.
const NO_ROOM_RETRY_S: f64 = 0.2;

/// One runner slot: worker index `index` and its current actor, if it has a healthy one.
#[derive(Debug)]
struct Slot {
    index: u32,
    actor: Option<ActorHandle<RolloutWorker>>,
    /// Restarts so far.
    restarts: u32,
    /// Failed and waiting to be restarted at this time.
    restart_at: Option<Instant>,
    /// Failed for good (dropped with `ignore_env_runner_failures`).
    dropped: bool,
}

/// How many times one step samples again after the learner lost batches with their node.
pub const MAX_RESAMPLES: usize = 3;

/// What one round of sampling produced.
#[derive(Debug, Default)]
pub struct Samples {
    /// Batch refs, in worker-index order (only the runners that answered).
    pub batches: Vec<ObjectRef>,
    /// Sub-environments restarted while sampling (`restart_failed_sub_environments`).
    pub sub_env_restarts: u32,
}

/// The env runners of a run, supervised per [`FaultToleranceConfig`].
#[derive(Debug)]
pub struct EnvRunnerGroup {
    rt: Runtime,
    config: TrainConfig,
    /// The bundle index of worker 0 in `group` (the learner may take bundle 0).
    first_bundle: u32,
    group: Option<PlacementGroup>,
    slots: Vec<Slot>,
    restarts_total: u64,
    sub_env_restarts_total: u64,
    normalization: DriverNormalization,
}

impl EnvRunnerGroup {
    /// Spawns `num_env_runners` runners; on a cluster, worker `i` goes to bundle
    /// `first_bundle + i` of `group`, which the group owns from here on (and removes when
    /// dropped).
    pub fn new(rt: &Runtime, config: &TrainConfig, group: Option<PlacementGroup>, first_bundle: u32) -> Result<Self> {
        let mut me = Self {
            rt: rt.clone(),
            config: config.clone(),
            first_bundle,
            group,
            slots: Vec::new(),
            restarts_total: 0,
            sub_env_restarts_total: 0,
            normalization: DriverNormalization::new(config),
        };
        if config.env_runner_isolation == EnvRunnerIsolation::Process && rt.address().is_empty() {
            return Err(Error::config(
                "env_runner_isolation",
                "process needs a cluster (`rl train --address`); the embedded runtime runs env runners as threads",
            ));
        }
        for index in 0..config.num_env_runners as u32 {
            let actor = me.spawn(index, 0)?;
            me.slots.push(Slot { index, actor: Some(actor), restarts: 0, restart_at: None, dropped: false });
        }
        Ok(me)
    }

    fn ft(&self) -> &FaultToleranceConfig {
        &self.config.fault_tolerance
    }

    fn spawn(&self, index: u32, restarts: u32) -> Result<ActorHandle<RolloutWorker>> {
        let opts = ActorOptions {
            name: Some(format!("env_runner_{index}")),
            num_cpus: self.config.num_cpus_per_env_runner,
            placement: self.group.as_ref().map_or(Placement::Any, |g| g.bundle(Some(index + self.first_bundle))),
            isolation: match self.config.env_runner_isolation {
                EnvRunnerIsolation::Thread => Isolation::Thread,
                EnvRunnerIsolation::Process => Isolation::Process,
            },
            ..Default::default()
        };
        let init = RolloutWorkerInit { config: self.config.clone(), worker_index: index, restarts };
        Ok(self.rt.spawn::<RolloutWorker>(init, opts)?)
    }

    /// Runners with a live actor now.
    pub fn num_healthy(&self) -> usize {
        self.slots.iter().filter(|s| s.actor.is_some()).count()
    }

    /// Runner restarts over the run.
    pub fn num_restarts(&self) -> u64 {
        self.restarts_total
    }

    /// Sub-environment restarts over the run.
    pub fn num_sub_env_restarts(&self) -> u64 {
        self.sub_env_restarts_total
    }

    /// The healthy runners' actors, in index order.
    pub fn actors(&self) -> impl Iterator<Item = &ActorHandle<RolloutWorker>> {
        self.slots.iter().filter_map(|s| s.actor.as_ref())
    }

    /// Where each healthy runner runs.
    pub fn locations(&self) -> Vec<(String, ActorLocation)> {
        self.actors().map(|a| (a.name().to_string(), a.location())).collect()
    }

    /// One sample-then-learn step: samples with `weights` loaded and hands the batch refs to
    /// the learner through `learn`, which answers `Ok(stats)`, or `Err(why)` when the learner
    /// could not fetch batches that lived only on a node that died. Lost batches are sampled
    /// again (their runners fail on the next call and are restarted elsewhere), up to
    /// [`MAX_RESAMPLES`] times in a row before the step fails. The seconds spent are added to
    /// `sample_s` and `learn_s`.
    pub fn sample_and_learn<R>(
        &mut self,
        weights: &ObjectRef,
        exploration: Exploration,
        (sample_s, learn_s): (&mut f64, &mut f64),
        mut learn: impl FnMut(Vec<ObjectRef>) -> Result<std::result::Result<R, String>>,
    ) -> Result<R> {
        let mut resamples = 0;
        loop {
            let start = Instant::now();
            let samples = self.sample(weights, exploration)?;
            *sample_s += start.elapsed().as_secs_f64();
            let start = Instant::now();
            let outcome = learn(samples.batches)?;
            *learn_s += start.elapsed().as_secs_f64();
            match outcome {
                Ok(stats) => return Ok(stats),
                Err(why) if resamples < MAX_RESAMPLES => {
                    resamples += 1;
                    tracing::warn!(error = %why, attempt = resamples, "batches were lost with their node; sampling again");
                }
                Err(why) => return Err(Error::EnvRunners(format!("batches lost {resamples} times in a row: {why}"))),
            }
        }
    }

    /// Samples one fragment from every healthy runner with `weights` loaded, exploring as
    /// `exploration` says, restarting failed runners first when their delay has passed. See the
    /// module docs.
    pub fn sample(&mut self, weights: &ObjectRef, exploration: Exploration) -> Result<Samples> {
        loop {
            self.restart_due()?;
            if self.num_healthy() == 0 {
                self.wait_for_restart()?;
                continue;
            }
            let timeout = Duration::from_secs_f64(self.ft().sample_timeout_s);
            let filter = self.normalization.filter().cloned().map(Box::new);
            let pending: Vec<_> = self
                .slots
                .iter()
                .filter_map(|s| {
                    s.actor.as_ref().map(|a| {
                        let set = a.call(RolloutMsg::SetWeights(weights.clone()));
                        (s.index, set, a.call(RolloutMsg::Sample(filter.clone(), exploration)))
                    })
                })
                .collect();
            let deadline = Instant::now() + timeout;
            let mut out = Samples::default();
            let mut stats = Vec::new();
            for (index, set, sample) in pending {
                let left = deadline.saturating_duration_since(Instant::now());
                let answer = set
                    .wait_timeout(left)
                    .and_then(|_| sample.wait_timeout(deadline.saturating_duration_since(Instant::now())));
                match answer {
                    Ok(RolloutReply::Batch { batch, sub_env_restarts, observation_stats }) => {
                        // A batch made on another node starts moving here while the others finish.
                        self.rt.prefetch(std::slice::from_ref(&batch));
                        out.batches.push(batch);
                        out.sub_env_restarts += sub_env_restarts;
                        stats.extend(observation_stats.map(|s| *s));
                    }
                    Ok(other) => unreachable!("Sample answers Batch, got {other:?}"),
                    Err(RuntimeError::Timeout { .. }) => {
                        let why = format!("no sample within sample_timeout_s = {} s", self.ft().sample_timeout_s);
                        self.fail(index, why)?;
                    }
                    // A bug in the env (a non-finite observation): a rebuilt runner would meet it
                    // again, so the run stops with the runner's own error.
                    Err(e @ RuntimeError::ActorFailed { recoverable: false, .. }) => {
                        if let Some(actor) = self.slots[index as usize].actor.take() {
                            actor.kill();
                        }
                        return Err(e.into());
                    }
                    Err(e) => self.fail(index, e.to_string())?,
                }
            }
            self.sub_env_restarts_total += u64::from(out.sub_env_restarts);
            self.normalization.merge(stats);
            if !out.batches.is_empty() {
                return Ok(out);
            }
        }
    }

    /// Marks runner `index` failed because of `why` (kills its actor) and goes on as
    /// [`EnvRunnerGroup::after_failure`] says.
    fn fail(&mut self, index: u32, why: String) -> Result<()> {
        let Some(actor) = self.slots[index as usize].actor.take() else { return Ok(()) };
        actor.kill();
        self.after_failure(index as usize, why)
    }

    /// What follows a failure of the runner in slot `i` (its actor gone, or its restart failed):
    /// a restart after the delay while restarts remain, else dropping it
    /// (`ignore_env_runner_failures`) or failing the run, per the fault-tolerance settings.
    fn after_failure(&mut self, i: usize, why: String) -> Result<()> {
        let ft = self.config.fault_tolerance.clone();
        let slot = &mut self.slots[i];
        let name = format!("env_runner_{}", slot.index);
        if ft.restart_failed_env_runners && slot.restarts < ft.max_num_env_runner_restarts {
            let delay = ft.delay_between_env_runner_restarts_s;
            tracing::warn!(runner = %name, error = %why, restart = slot.restarts + 1,
                max = ft.max_num_env_runner_restarts, delay_s = delay, "env runner failed; restarting it");
            slot.restart_at = Some(Instant::now() + Duration::from_secs_f64(delay));
            return Ok(());
        }
        slot.restart_at = None;
        let why = if ft.restart_failed_env_runners {
            format!("{name} failed after {} restarts (max_num_env_runner_restarts): {why}", slot.restarts)
        } else {
            format!("{name} failed and restart_failed_env_runners is false: {why}")
        };
        if !ft.ignore_env_runner_failures {
            return Err(Error::EnvRunners(format!(
                "{why}; set fault_tolerance.ignore_env_runner_failures to go on with the healthy runners"
            )));
        }
        slot.dropped = true;
        tracing::warn!(error = %why, "env runner dropped (ignore_env_runner_failures); going on with the others");
        if self.slots.iter().all(|s| s.dropped) {
            return Err(Error::EnvRunners(format!("no env runner is left: {why}")));
        }
        Ok(())
    }

    /// Restarts the failed runners whose delay has passed.
    fn restart_due(&mut self) -> Result<()> {
        let now = Instant::now();
        for i in 0..self.slots.len() {
            let slot = &self.slots[i];
            if slot.actor.is_some() || slot.dropped || slot.restart_at.is_none_or(|t| t > now) {
                continue;
            }
            let (index, restarts) = (slot.index, slot.restarts + 1);
            match self.spawn(index, restarts) {
                Ok(actor) => {
                    tracing::info!(runner = actor.name(), restarts, "env runner restarted");
                    let slot = &mut self.slots[i];
                    slot.actor = Some(actor);
                    slot.restarts = restarts;
                    slot.restart_at = None;
                    self.restarts_total += 1;
                }
                Err(Error::Runtime(e))
                    if matches!(
                        *e,
                        RuntimeError::InsufficientResources { .. }
                            | RuntimeError::Unschedulable { .. }
                            | RuntimeError::NodeUnreachable { .. }
                    ) =>
                {
                    // No room yet (a killed thread runner that cannot be interrupted still holds
                    // its CPUs until its call returns), or the node picked is dying and not yet
                    // declared dead: try again soon, without using a restart.
                    tracing::debug!(runner = index, error = %e, "no room to restart the env runner yet");
                    let wait = self.ft().delay_between_env_runner_restarts_s.max(NO_ROOM_RETRY_S);
                    self.slots[i].restart_at = Some(now + Duration::from_secs_f64(wait));
                }
                Err(e) => {
                    // The restart itself failed (a constructor error): that uses up a restart
                    // like any other failure.
                    self.slots[i].restarts = restarts;
                    self.after_failure(i, format!("its restart failed: {e}"))?;
                }
            }
        }
        Ok(())
    }

    /// Waits for the earliest scheduled restart (none healthy, so nothing else can run).
    fn wait_for_restart(&self) -> Result<()> {
        let next = self.slots.iter().filter(|s| !s.dropped).filter_map(|s| s.restart_at).min();
        match next {
            // A restart delay is a wait the config asks for, not a synchronization.
            Some(t) => std::thread::sleep(t.saturating_duration_since(Instant::now())),
            None => return Err(Error::EnvRunners("no env runner is left".into())),
        }
        Ok(())
    }

    /// Every runner's state, for a checkpoint. A runner that fails to answer fails the
    /// checkpoint (a checkpoint must be complete).
    pub fn states(&mut self) -> Result<Vec<EnvRunnerState>> {
        let mut out = Vec::with_capacity(self.slots.len());
        for slot in &self.slots {
            let Some(actor) = &slot.actor else { continue };
            let timeout = Duration::from_secs_f64(self.config.fault_tolerance.sample_timeout_s);
            let RolloutReply::State(s) = actor.call(RolloutMsg::State).wait_timeout(timeout)? else {
                unreachable!("State answers State")
            };
            out.push(*s);
        }
        Ok(out)
    }

    /// Hands each saved state to the runner of its index; returns false if any runner's envs
    /// could not be restored exactly (they were re-seeded). The restart counts carry over.
    pub fn restore(&mut self, states: &[EnvRunnerState]) -> Result<bool> {
        let mut exact = true;
        for state in states {
            let Some(slot) = self.slots.get_mut(state.worker_index as usize) else {
                return Err(Error::Resume(format!(
                    "the checkpoint has env runner {}, the config only {} (num_env_runners changed?)",
                    state.worker_index, self.config.num_env_runners
                )));
            };
            slot.restarts = state.restarts;
            let Some(actor) = &slot.actor else { continue };
            let RolloutReply::Restored(e) = actor.call(RolloutMsg::Restore(Box::new(state.clone()))).wait()? else {
                unreachable!("Restore answers Restored")
            };
            exact &= e;
        }
        self.restarts_total = states.iter().map(|s| u64::from(s.restarts)).sum();
        Ok(exact)
    }

    /// The observation normalization evaluation uses (frozen), when observations are normalized.
    pub fn observation_normalization(&self) -> Option<ObservationNormalization> {
        self.normalization.frozen()
    }

    /// Takes over the driver's normalization statistics from a checkpoint.
    pub fn restore_normalization(&mut self, saved: &ObservationNormalization) -> Result<()> {
        self.normalization.restore(saved)
    }

    /// Sets the run's sub-environment restart count (from a checkpoint).
    pub fn set_num_sub_env_restarts(&mut self, n: u64) {
        self.sub_env_restarts_total = n;
    }

    /// The checkpoint file of the driver's observation statistics (`normalization.json`), when
    /// observations are normalized: what every algorithm adds to its `extra_files`.
    pub fn normalization_file(&self) -> Result<Option<(String, Vec<u8>)>> {
        match self.observation_normalization() {
            Some(n) => Ok(Some((ObservationNormalization::FILE.to_string(), n.to_json()?))),
            None => Ok(None),
        }
    }

    /// Everything of a checkpoint that belongs to the runners: the restart count, the
    /// observation statistics (from `extra_files`, when there) and each runner's state. Returns
    /// false if any runner's envs could not be restored exactly ([`EnvRunnerGroup::restore`]).
    pub fn restore_from_checkpoint(
        &mut self,
        num_sub_env_restarts: u64,
        extra_files: &[(String, Vec<u8>)],
        states: &[EnvRunnerState],
    ) -> Result<bool> {
        self.set_num_sub_env_restarts(num_sub_env_restarts);
        if let Some((name, bytes)) = extra_files.iter().find(|(name, _)| name == ObservationNormalization::FILE) {
            self.restore_normalization(&ObservationNormalization::from_json(bytes, std::path::Path::new(name))?)?;
        }
        self.restore(states)
    }

    /// Where the learner `learner` and each healthy runner run, the learner first.
    pub fn locations_with<A: rl_runtime::Actor>(&self, learner: &ActorHandle<A>) -> Vec<(String, ActorLocation)> {
        std::iter::once((learner.name().to_string(), learner.location())).chain(self.locations()).collect()
    }
}

impl Drop for EnvRunnerGroup {
    fn drop(&mut self) {
        if let Some(g) = self.group.take()
            && let Err(e) = g.remove()
        {
            tracing::warn!("cannot remove the env runners' placement group {}: {e}", g.id());
        }
    }
}
