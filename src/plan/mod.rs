//! The planner: one pure function from spec and observed state to a plan.
//!
//! `plan(spec, observed, options)` decides everything the reconciler does: which nodes
//! to fence, which instances to stop, start, restart or move, in which order, and which
//! instances must wait, each with a reason. It reads no clock and does no I/O: the same
//! input gives the same plan, byte for byte. The safety invariants of the design are
//! decided here:
//!
//! 1. an instance with `recovery: fence` never runs on two nodes: a copy on a lost node is
//!    unknown, and the instance starts elsewhere only after that node's fence step (or a
//!    manual confirmation); copies seen twice after a partition heals are cut to one;
//! 2. without quorum nothing is started, moved or fenced (unless `noQuorumPolicy: ignore`);
//! 3. see 1: recovery depends on the fence step of the lost node;
//! 4. a move stops the old copy first; the executor fences the node if that stop fails.
//!
//! Submodules: [`quorum`], [`current`] (the observed state indexed), [`placement`]
//! (scores), [`changes`] (what to do per instance), [`order`] (the step graph),
//! [`render`] (human, JSON and Graphviz output).

pub mod apply;
mod builder;
mod changes;
pub(crate) mod colocation;
pub mod current;
pub mod hash;
pub mod model;
mod order;
pub mod placement;
pub mod promotion;
pub mod quorum;
pub mod render;
mod suspended;

pub use model::{
    Action, ActionId, ActionType, Blocked, Plan, QuorumStatus, Step, StepId, StepOp, Unmanaged,
};

use crate::observed::Observed;
use crate::spec::{Name, SpecSet};

/// The maps planning looks names up in (never walks in order): hashed with foldhash,
/// faster than the standard library's SipHash on short names, and seeded per process
/// (from address-space randomization and the clock), so that a spec author cannot
/// choose names that collide.
type HashMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;
type HashSet<T> = std::collections::HashSet<T, foldhash::fast::RandomState>;

/// An empty map with room for `n` entries, for a map that gets an entry per bundle as
/// planning goes: grown as it fills, it would move every entry it holds each time it
/// doubles, and at thousands of bundles those moves miss the cache.
fn map_for<K, V>(n: usize) -> HashMap<K, V> {
    HashMap::with_capacity_and_hasher(n, foldhash::fast::RandomState::default())
}

/// Each of `names` by its position among them (bundles in some order, nodes), hashed:
/// what constraints name is looked up in it, and positions index vectors.
fn positions<'a>(names: impl IntoIterator<Item = &'a str>) -> HashMap<&'a str, usize> {
    names.into_iter().enumerate().map(|(i, n)| (n, i)).collect()
}

/// Planning options.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Record the score of every candidate node for every placement (`--explain`).
    pub explain: bool,
    /// Simulation only: drop the dependency of recoveries on fencing, to prove the
    /// simulation catches the resulting double start.
    #[cfg(feature = "sim")]
    pub unsafe_skip_fence_dependency: bool,
}

/// Plans the changes that take the cluster from `observed` to `spec`.
pub fn plan(spec: &SpecSet, observed: &Observed, options: &Options) -> Plan {
    let quorum = quorum::status(spec, observed);
    let current = current::Current::new(spec, observed, &quorum);
    let (promoted, shunned) = if has_role_colocation(spec) {
        primaries(spec, observed, &current, &quorum, options)
    } else {
        (Some(placement::Promoted::new()), Shunned::new())
    };
    let placed = placement::place(spec, observed, &current, promoted.as_ref(), options.explain);
    let built = changes::Changes::new(
        spec,
        observed,
        &current,
        (&placed, promoted.as_ref(), &shunned),
        &quorum,
        options,
    )
    .run();
    let (actions, steps) = order::finish(spec, built.actions, built.steps);
    Plan {
        quorum,
        changes: actions.len(),
        actions,
        blocked: built.blocked,
        steps,
        placements: placed.explain,
        suspended: built.suspended,
        promotions: built.promotions,
    }
}

/// How many times at most the primaries are decided again for colocations with them.
const PRIMARY_ROUNDS: usize = 6;

/// Instances of promotable bundles that promotion ranks after those it cannot otherwise
/// tell apart, by bundle and number (see [`unjoined`]).
pub(crate) type Shunned = std::collections::BTreeSet<(Name, u32)>;

/// The primaries a plan ends with, for the colocations with `role: promoted` (none when
/// they do not settle), and the instances promotion was told to pass over on the way.
/// Those colocations follow the instances the plan promotes and do not move them, so the
/// first round plans without them to know the primaries; their bundles then take
/// capacity or starve others through orders, which can change the primaries, so the
/// rounds go on until the primaries stay the same instances (one or two rounds but for
/// contradictory specs). When a primary new in this plan leaves such a dependent nowhere
/// ([`unjoined`]), the rounds start over once, with promotion passing over it.
fn primaries(
    spec: &SpecSet,
    observed: &Observed,
    current: &current::Current,
    quorum: &QuorumStatus,
    options: &Options,
) -> (Option<placement::Promoted>, Shunned) {
    let quiet = Options {
        explain: false,
        ..options.clone()
    };
    let mut promoted = placement::Promoted::new();
    let mut shunned = Shunned::new();
    for _ in 0..PRIMARY_ROUNDS {
        let placed = placement::place(spec, observed, current, Some(&promoted), false);
        let built = changes::Changes::new(
            spec,
            observed,
            current,
            (&placed, Some(&promoted), &shunned),
            quorum,
            &quiet,
        )
        .run();
        if built.promoted_on == promoted {
            return (Some(promoted), shunned);
        }
        let left = unjoined(spec, current, &promoted, &placed);
        if shunned.is_empty() && !left.is_empty() {
            shunned = left;
            promoted = placement::Promoted::new();
        } else {
            promoted = built.promoted_on;
        }
    }
    (None, shunned)
}

/// The instances of `promoted` (what the round before promoted) that a colocation of
/// `INFINITY` with their promoted role left without its bundle: none of its instances is
/// placed on their node while one is placed nowhere (not for want of a mandatory
/// `first`). An instance that runs promoted now is never among them: passing it over
/// would move a working primary.
fn unjoined(
    spec: &SpecSet,
    current: &current::Current,
    promoted: &placement::Promoted,
    placed: &placement::Placed,
) -> Shunned {
    let mut left = Shunned::new();
    for c in role_colocations(spec) {
        if !c.score.is_infinity() || placed.starved.contains_key(c.bundle.as_str()) {
            continue;
        }
        let (Some(primaries), Some(dependent)) =
            (promoted.get(&c.with), spec.bundles.get(&c.bundle))
        else {
            continue;
        };
        let on: Vec<Option<&Name>> = (0..dependent.replicas)
            .map(|i| placed.node.get(c.bundle.as_str(), i).flatten())
            .collect();
        if !on.contains(&None) {
            continue;
        }
        for (index, node) in primaries {
            let runs = current.of(c.with.as_str(), *index);
            let works = runs.iter().any(|r| r.node == node && r.runs_promoted());
            if !works && !on.contains(&Some(node)) {
                left.insert((c.with.clone(), *index));
            }
        }
    }
    left
}

/// Whether a colocation of `spec` follows the promoted instances of a bundle.
fn has_role_colocation(spec: &SpecSet) -> bool {
    role_colocations(spec).next().is_some()
}

/// The colocations of `spec` that follow the promoted instances of a bundle.
fn role_colocations(
    spec: &SpecSet,
) -> impl Iterator<Item = &crate::spec::constraint::ColocationConstraint> {
    spec.constraints.values().filter_map(|c| match c {
        crate::spec::constraint::ConstraintSpec::Colocation(c) if c.role.is_some() => Some(&**c),
        _ => None,
    })
}
