//! Placement groups for users: create one on the head, wait for it, spawn actors into its
//! bundles, remove it (Ray's `placement_group`, `pg.wait`, `remove_placement_group`).
//!
//! A group is a list of bundles (amounts of resources) with a strategy saying how they spread
//! over nodes. Creating one returns at once; the head places it as soon as the cluster can hold
//! every bundle (a node joining or resources freeing up both retry), and reserves the bundles'
//! resources so other work cannot take them. Actors spawned with [`Placement::Group`] take from a
//! bundle. Removing the group stops its actors and frees the reservation. When a node holding
//! some bundles dies, the group is RESCHEDULING until those bundles find room again.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use super::node::NodeCore;
use super::proto;
pub use super::proto::{PlacementGroupInfo, PlacementGroupState, PlacementStrategy};
use super::status_error;
use crate::actor::Placement;
use crate::error::{Result, RuntimeError};
use crate::runtime::Runtime;

/// Parses a strategy by Ray's name: `PACK`, `SPREAD`, `STRICT_PACK` or `STRICT_SPREAD`.
pub fn parse_strategy(name: &str) -> Result<PlacementStrategy> {
    PlacementStrategy::from_str_name(&format!("PLACEMENT_STRATEGY_{name}"))
        .filter(|s| *s != PlacementStrategy::Unspecified)
        .ok_or_else(|| {
            RuntimeError::Cluster(format!(
                "unknown placement strategy {name:?}; expected PACK, SPREAD, STRICT_PACK or STRICT_SPREAD"
            ))
        })
}

/// Ray's name of a strategy (`STRICT_SPREAD`).
pub fn strategy_name(s: PlacementStrategy) -> &'static str {
    s.as_str_name().trim_start_matches("PLACEMENT_STRATEGY_")
}

/// The short name of a group state (`CREATED`).
pub fn state_name(s: PlacementGroupState) -> &'static str {
    s.as_str_name().trim_start_matches("PLACEMENT_GROUP_STATE_")
}

/// A placement group on the cluster's head. Dropping the handle keeps the group; call
/// [`PlacementGroup::remove`] to end it (Ray's groups also outlive their handles).
#[derive(Debug, Clone)]
pub struct PlacementGroup {
    core: Arc<NodeCore>,
    id: u64,
}

impl PlacementGroup {
    /// Its cluster-wide id.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Where an actor goes to run in bundle `index` (`None`: the first bundle with room).
    pub fn bundle(&self, index: Option<u32>) -> Placement {
        Placement::Group { group: self.id, bundle: index }
    }

    /// Its state as the head has it now.
    pub fn info(&self) -> Result<PlacementGroupInfo> {
        self.get(Duration::ZERO)
    }

    /// Waits up to `timeout` for every bundle to be placed; returns the group then, with each
    /// bundle's node. Fails with [`RuntimeError::Timeout`] if it is still waiting for room, and
    /// with a cluster error if it was removed.
    pub fn wait(&self, timeout: Duration) -> Result<PlacementGroupInfo> {
        let info = self.get(timeout)?;
        match info.state() {
            PlacementGroupState::Created => Ok(info),
            PlacementGroupState::Removed => {
                Err(RuntimeError::Cluster(format!("placement group {} ({}) was removed", self.id, info.name)))
            }
            state => Err(RuntimeError::Timeout(
                timeout,
                format!("placement group {} ({}) to be placed; it is {}", self.id, info.name, state_name(state)),
            )),
        }
    }

    /// Removes the group: its actors are stopped and its resources are free again.
    pub fn remove(&self) -> Result<()> {
        let (core, id) = (self.core.clone(), self.id);
        self.core.block_on(async move {
            let reply =
                core.head.clone().remove_placement_group(proto::RemovePlacementGroupRequest { group_id: id }).await;
            reply.map(|_| ()).map_err(|s| status_error(&s, 0, &core.head_address))
        })?
    }

    fn get(&self, wait: Duration) -> Result<PlacementGroupInfo> {
        let (core, id) = (self.core.clone(), self.id);
        let request = proto::GetPlacementGroupRequest { group_id: id, wait_ms: wait.as_millis() as u64 };
        self.core.block_on(async move {
            let reply = core.head.clone().get_placement_group(request).await;
            let reply = reply.map_err(|s| status_error(&s, 0, &core.head_address))?.into_inner();
            reply.group.ok_or_else(|| RuntimeError::Cluster(format!("the head sent no state for placement group {id}")))
        })?
    }
}

impl Runtime {
    /// Creates a placement group of `bundles` (each an amount per resource name, such as
    /// `{"CPU": 1.0}`) under `strategy`. Returns at once; the group is PENDING until the cluster
    /// can hold it ([`PlacementGroup::wait`]). Fails outside a cluster.
    pub fn create_placement_group(
        &self,
        name: &str,
        strategy: PlacementStrategy,
        bundles: Vec<BTreeMap<String, f64>>,
    ) -> Result<PlacementGroup> {
        let core = self.cluster_core()?;
        let request = proto::CreatePlacementGroupRequest {
            name: name.to_string(),
            strategy: strategy as i32,
            bundles: bundles.into_iter().map(|b| proto::Resources { amounts: b.into_iter().collect() }).collect(),
            caller: core.node_id,
        };
        let c = core.clone();
        let info = core.block_on(async move {
            let reply = c.head.clone().create_placement_group(request).await;
            let reply = reply.map_err(|s| status_error(&s, 0, &c.head_address))?.into_inner();
            reply.group.ok_or_else(|| RuntimeError::Cluster("the head sent no placement group".into()))
        })??;
        Ok(PlacementGroup { core, id: info.group_id })
    }

    /// Every placement group the head knows, removed ones included.
    pub fn placement_groups(&self) -> Result<Vec<PlacementGroupInfo>> {
        Ok(self.cluster_status()?.placement_groups)
    }
}
