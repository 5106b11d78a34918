//! Placement groups on the head: where each bundle goes under Ray's four strategies, and the
//! table of groups with what their bundles hold back from other work.
//!
//! A group's bundles are reserved in the head's accounting, not on the nodes: a node's free
//! resources for ordinary spawns are what it reports, less spawns in flight, less the unused part
//! of every bundle placed on it. An actor spawned into a bundle takes from the bundle (and the
//! node reports it as used); when the actor dies, its share goes back to the bundle, not to the
//! node. Everything here is pure bookkeeping, tested without I/O.

use std::collections::{BTreeMap, BTreeSet};

use super::proto::{self, PlacementGroupState as State, PlacementStrategy as Strategy};

/// Amounts of named resources.
pub(crate) type Res = BTreeMap<String, f64>;

const EPS: f64 = 1e-9;

fn fits(free: &Res, need: &Res) -> bool {
    need.iter().all(|(r, v)| *v <= free.get(r).copied().unwrap_or(0.0) + EPS)
}

fn take(free: &mut Res, need: &Res) {
    for (r, v) in need {
        *free.entry(r.clone()).or_insert(0.0) -= v;
    }
}

fn cpu(r: &Res) -> f64 {
    r.get("CPU").copied().unwrap_or(0.0)
}

/// The node for every bundle, keeping the ones in `fixed` where they are, or `None` if the
/// strategy cannot be met with `free` (per node, already net of other reservations).
///
/// Bundles are placed largest first (by CPU, then index), each on the node the strategy prefers:
/// - `STRICT_PACK`: all on one node (the one already holding some, else the tightest fit);
/// - `PACK`: one node if one can hold them all, else nodes already used first, tightest fit;
/// - `STRICT_SPREAD`: each on a node no other bundle of the group uses, the most free first;
/// - `SPREAD`: like `STRICT_SPREAD` while unused nodes fit, then any node with room.
///
/// Ties go to the lowest node id, so a plan is deterministic.
pub(crate) fn plan(
    strategy: Strategy,
    bundles: &[Res],
    fixed: &[Option<u32>],
    free: &BTreeMap<u32, Res>,
) -> Option<Vec<u32>> {
    let mut free = free.clone();
    let mut used: BTreeSet<u32> = fixed.iter().flatten().copied().collect();
    let mut todo: Vec<usize> = (0..bundles.len()).filter(|i| fixed.get(*i).copied().flatten().is_none()).collect();
    todo.sort_by(|a, b| cpu(&bundles[*b]).total_cmp(&cpu(&bundles[*a])).then(a.cmp(b)));
    let mut out: Vec<Option<u32>> = (0..bundles.len()).map(|i| fixed.get(i).copied().flatten()).collect();

    // The node with the least (tightest) or most free CPU among `candidates` that fits `need`.
    let choose = |free: &BTreeMap<u32, Res>, candidates: &mut dyn Iterator<Item = u32>, need: &Res, tight: bool| {
        candidates.filter(|n| free.get(n).is_some_and(|f| fits(f, need))).min_by(|a, b| {
            let (fa, fb) = (cpu(&free[a]), cpu(&free[b]));
            let by_cpu = if tight { fa.total_cmp(&fb) } else { fb.total_cmp(&fa) };
            by_cpu.then(a.cmp(b))
        })
    };
    let all: Vec<u32> = free.keys().copied().collect();
    let mut total = Res::new();
    for i in &todo {
        for (r, v) in &bundles[*i] {
            *total.entry(r.clone()).or_insert(0.0) += v;
        }
    }
    let one_node = match strategy {
        Strategy::StrictPack if !used.is_empty() => {
            let node = *used.iter().next()?;
            if used.len() > 1 || !free.get(&node).is_some_and(|f| fits(f, &total)) {
                return None;
            }
            Some(node)
        }
        Strategy::StrictPack => Some(choose(&free, &mut all.iter().copied(), &total, true)?),
        Strategy::Pack => choose(&free, &mut used.iter().copied(), &total, true)
            .or_else(|| choose(&free, &mut all.iter().copied(), &total, true)),
        _ => None,
    };
    for i in todo {
        let need = &bundles[i];
        let node = match (strategy, one_node) {
            (_, Some(node)) => node,
            (Strategy::Pack, None) => choose(&free, &mut used.iter().copied(), need, true)
                .or_else(|| choose(&free, &mut all.iter().copied(), need, false))?,
            (Strategy::StrictSpread, _) => {
                choose(&free, &mut all.iter().copied().filter(|n| !used.contains(n)), need, false)?
            }
            _ => choose(&free, &mut all.iter().copied().filter(|n| !used.contains(n)), need, false)
                .or_else(|| choose(&free, &mut all.iter().copied(), need, false))?,
        };
        take(free.get_mut(&node).expect("chosen from free"), need);
        used.insert(node);
        out[i] = Some(node);
    }
    out.into_iter().collect()
}

/// One bundle of a group.
pub(crate) struct Bundle {
    pub(crate) need: Res,
    pub(crate) node: Option<u32>,
    /// Actors spawned into it, with what each took.
    pub(crate) actors: BTreeMap<u64, Res>,
    /// What spawns into it that have not answered yet will take.
    pub(crate) in_flight: Res,
}

impl Bundle {
    /// What is left of it for more actors, counting only actors `alive` says are alive.
    pub(crate) fn free(&self, alive: &dyn Fn(u64) -> bool) -> Res {
        let mut left = self.need.clone();
        for (_, took) in self.actors.iter().filter(|(id, _)| alive(**id)) {
            take(&mut left, took);
        }
        take(&mut left, &self.in_flight);
        left
    }

    /// Whether an actor needing `need` fits in what is left.
    pub(crate) fn has_room(&self, need: &Res, alive: &dyn Fn(u64) -> bool) -> bool {
        fits(&self.free(alive), need)
    }
}

/// A placement group as the head keeps it.
pub(crate) struct Group {
    pub(crate) id: u64,
    pub(crate) name: String,
    pub(crate) strategy: Strategy,
    pub(crate) state: State,
    pub(crate) creator: u32,
    pub(crate) bundles: Vec<Bundle>,
}

impl Group {
    /// Its wire form.
    pub(crate) fn info(&self) -> proto::PlacementGroupInfo {
        proto::PlacementGroupInfo {
            group_id: self.id,
            name: self.name.clone(),
            strategy: self.strategy as i32,
            state: self.state as i32,
            creator: self.creator,
            bundles: self
                .bundles
                .iter()
                .map(|b| proto::BundleInfo {
                    resources: Some(proto::Resources { amounts: b.need.clone().into_iter().collect() }),
                    node_id: b.node.unwrap_or(0),
                    actor_ids: b.actors.keys().copied().collect(),
                })
                .collect(),
        }
    }

    fn holds_resources(&self) -> bool {
        matches!(self.state, State::Created | State::Rescheduling)
    }
}

/// Every placement group of the cluster.
#[derive(Default)]
pub(crate) struct Groups {
    pub(crate) groups: BTreeMap<u64, Group>,
    next_id: u64,
}

impl Groups {
    /// Adds a PENDING group; returns its id.
    pub(crate) fn create(&mut self, name: String, strategy: Strategy, bundles: Vec<Res>, creator: u32) -> u64 {
        self.next_id += 1;
        let id = self.next_id;
        let bundles = bundles
            .into_iter()
            .map(|need| Bundle { need, node: None, actors: BTreeMap::new(), in_flight: Res::new() })
            .collect();
        self.groups.insert(id, Group { id, name, strategy, state: State::Pending, creator, bundles });
        id
    }

    /// Per node, what placed bundles hold back from other work: their unused part.
    pub(crate) fn reserved(&self, alive: &dyn Fn(u64) -> bool) -> BTreeMap<u32, Res> {
        let mut out: BTreeMap<u32, Res> = BTreeMap::new();
        for g in self.groups.values().filter(|g| g.holds_resources()) {
            for b in &g.bundles {
                let Some(node) = b.node else { continue };
                let slot = out.entry(node).or_default();
                for (r, v) in b.free(alive) {
                    *slot.entry(r).or_insert(0.0) += v.max(0.0);
                }
            }
        }
        out
    }

    /// Places what waits (PENDING groups whole, RESCHEDULING ones' lost bundles), oldest group
    /// first, each taking from `free` what it reserves. Returns whether any group changed.
    pub(crate) fn place_waiting(&mut self, free: &mut BTreeMap<u32, Res>) -> bool {
        let mut changed = false;
        for g in self.groups.values_mut() {
            if !matches!(g.state, State::Pending | State::Rescheduling) {
                continue;
            }
            let needs: Vec<Res> = g.bundles.iter().map(|b| b.need.clone()).collect();
            let fixed: Vec<Option<u32>> = g.bundles.iter().map(|b| b.node).collect();
            let Some(nodes) = plan(g.strategy, &needs, &fixed, free) else { continue };
            for (b, node) in g.bundles.iter_mut().zip(nodes) {
                if b.node.is_none() {
                    take(free.get_mut(&node).expect("planned from free"), &b.need);
                    b.node = Some(node);
                }
            }
            g.state = State::Created;
            changed = true;
            tracing::info!(group = g.id, name = %g.name, "placement group created");
        }
        changed
    }

    /// `node` died: groups it created are removed (a group shares its creator's fate, as a
    /// non-detached group in Ray shares its job's); bundles on it lose their node and actors, and
    /// their groups wait for room again.
    pub(crate) fn node_dead(&mut self, node: u32) {
        let created: Vec<u64> =
            self.groups.values().filter(|g| g.creator == node && g.state != State::Removed).map(|g| g.id).collect();
        for id in created {
            // Their actors were the creator's: they stop with it (fate-sharing of actors).
            self.remove(id);
            tracing::info!(group = id, node, "placement group removed with the node that created it");
        }
        for g in self.groups.values_mut().filter(|g| g.holds_resources()) {
            let mut lost = false;
            for b in g.bundles.iter_mut().filter(|b| b.node == Some(node)) {
                b.node = None;
                b.actors.clear();
                b.in_flight.clear();
                lost = true;
            }
            if lost {
                g.state = State::Rescheduling;
                tracing::warn!(group = g.id, node, "placement group lost bundles with their node; rescheduling");
            }
        }
    }

    /// Removes group `id`: its reservations end. Returns its actors with their nodes, to stop.
    pub(crate) fn remove(&mut self, id: u64) -> Option<Vec<(u32, u64)>> {
        let g = self.groups.get_mut(&id)?;
        g.state = State::Removed;
        let mut actors = Vec::new();
        for b in &mut g.bundles {
            if let Some(node) = b.node.take() {
                actors.extend(b.actors.keys().map(|a| (node, *a)));
            }
            b.actors.clear();
            b.in_flight.clear();
        }
        Some(actors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res(cpus: f64) -> Res {
        Res::from([("CPU".to_string(), cpus)])
    }

    fn nodes(cpus: &[(u32, f64)]) -> BTreeMap<u32, Res> {
        cpus.iter().map(|(n, c)| (*n, res(*c))).collect()
    }

    #[test]
    fn strict_spread_needs_a_node_per_bundle() {
        let b = vec![res(1.0); 3];
        assert_eq!(plan(Strategy::StrictSpread, &b, &[None; 3], &nodes(&[(2, 4.0), (3, 4.0)])), None);
        let p = plan(Strategy::StrictSpread, &b, &[None; 3], &nodes(&[(2, 4.0), (3, 4.0), (4, 1.0)])).unwrap();
        assert_eq!(p.iter().collect::<BTreeSet<_>>().len(), 3, "{p:?}");
    }

    #[test]
    fn strict_pack_needs_one_node_for_all() {
        let b = vec![res(1.0); 3];
        assert_eq!(plan(Strategy::StrictPack, &b, &[None; 3], &nodes(&[(2, 2.0), (3, 2.0)])), None);
        // The tightest node that holds all three.
        let p = plan(Strategy::StrictPack, &b, &[None; 3], &nodes(&[(2, 8.0), (3, 3.0), (4, 2.0)])).unwrap();
        assert_eq!(p, vec![3, 3, 3]);
        // A bundle already on node 2 pins the rest there.
        let p = plan(Strategy::StrictPack, &b, &[Some(2), None, None], &nodes(&[(2, 2.0), (3, 9.0)])).unwrap();
        assert_eq!(p, vec![2, 2, 2]);
        assert_eq!(plan(Strategy::StrictPack, &b, &[Some(2), None, None], &nodes(&[(2, 1.0), (3, 9.0)])), None);
    }

    #[test]
    fn pack_and_spread_are_best_effort() {
        let b = vec![res(1.0); 3];
        let free = nodes(&[(2, 2.0), (3, 2.0)]);
        let p = plan(Strategy::Pack, &b, &[None; 3], &free).unwrap();
        assert_eq!(p.iter().collect::<BTreeSet<_>>().len(), 2, "spills over to a second node: {p:?}");
        let p = plan(Strategy::Pack, &b, &[None; 3], &nodes(&[(2, 2.0), (3, 4.0)])).unwrap();
        assert_eq!(p, vec![3, 3, 3], "one node when one can hold them all");
        let p = plan(Strategy::Spread, &b, &[None; 3], &free).unwrap();
        assert_eq!(p.iter().filter(|n| **n == 2).count() + p.iter().filter(|n| **n == 3).count(), 3);
        assert!(p.contains(&2) && p.contains(&3), "both nodes used: {p:?}");
        assert_eq!(plan(Strategy::Spread, &b, &[None; 3], &nodes(&[(2, 1.0), (3, 1.0)])), None);
    }

    #[test]
    fn bundles_hold_back_their_unused_part_until_removed() {
        let mut groups = Groups::default();
        let id = groups.create("g".into(), Strategy::StrictSpread, vec![res(1.0), res(1.0)], 1);
        let mut free = nodes(&[(2, 2.0)]);
        assert!(!groups.place_waiting(&mut free), "one node cannot hold a strict spread of two");
        free = nodes(&[(2, 2.0), (3, 2.0)]);
        assert!(groups.place_waiting(&mut free));
        let alive = |_: u64| true;
        assert_eq!(groups.reserved(&alive), BTreeMap::from([(2, res(1.0)), (3, res(1.0))]));
        // An actor in the bundle on node 2 uses its CPU: nothing of that bundle is held back.
        let b = groups.groups.get_mut(&id).unwrap().bundles.iter_mut().find(|b| b.node == Some(2)).unwrap();
        b.actors.insert(7, res(1.0));
        assert!(!b.has_room(&res(1.0), &alive));
        assert_eq!(groups.reserved(&alive)[&2], res(0.0));
        // Once the actor is dead, the bundle holds its CPU again.
        assert_eq!(groups.reserved(&|a| a != 7)[&2], res(1.0));
        // Node 3 dies: the group reschedules that bundle only; a group node 3 made is removed.
        let made_by_3 = groups.create("h".into(), Strategy::Pack, vec![res(1.0)], 3);
        groups.node_dead(3);
        assert_eq!(groups.groups[&made_by_3].state, State::Removed);
        assert_eq!(groups.groups[&id].state, State::Rescheduling);
        let mut free = nodes(&[(2, 1.0), (4, 1.0)]);
        assert!(groups.place_waiting(&mut free));
        let on: Vec<_> = groups.groups[&id].bundles.iter().map(|b| b.node).collect();
        assert!(on.contains(&Some(2)) && on.contains(&Some(4)), "{on:?}");
        let stopped = groups.remove(id).unwrap();
        assert_eq!(stopped, vec![(2, 7)]);
        assert!(groups.reserved(&alive).is_empty());
    }
}
