//! Feasibility filters: the nodes an instance may not use. Each verdict is a [`Ban`],
//! which scores `-INFINITY` and says why in `--explain`. [`Fit`] puts them together with
//! capacity for one instance, as selection asks node by node.

use std::cell::RefCell;

use super::capacity::{Capacity, Need, Shortfall};
use super::rank::Own;
use super::scores::Scores;
use super::{Bundle, Counts, Nodes, Placer, part};
use crate::plan::current::live_failures;
use crate::plan::model::{ScorePart, Stage};
use crate::spec::Score;

/// Why a node is not feasible for an instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Ban<'b> {
    /// Lost, fenced, in standby or fenced by this plan.
    Unavailable,
    /// The instance failed there `failures` times, at least the migration threshold.
    Failed { failures: u32, threshold: u32 },
    /// An unmanaged container there has the instance's name.
    NameTaken,
    /// The node holds `replicasPerHost` instances of the bundle already.
    ReplicasPerHost(u32),
    /// The first member of a colocation cycle has as many nodes as `member` has
    /// instances (`most`): a new node would have no `member`.
    CycleSpread { member: &'b str, most: usize },
    /// The node has less of `quantity` free than the instance needs (a strategy other
    /// than `default`; see [`super::capacity`]); `joined` when `needed` counts the
    /// dependents that must join it.
    Capacity {
        quantity: &'b str,
        needed: u64,
        free: u64,
        total: u64,
        joined: bool,
    },
}

impl Ban<'_> {
    /// What `--explain` says.
    pub(super) fn reason(&self) -> String {
        match self {
            Ban::Unavailable => {
                "node unavailable (lost, fenced, in standby or fenced by this plan)".to_owned()
            }
            Ban::Failed {
                failures,
                threshold,
            } => format!("failed {failures} times (migrationThreshold {threshold})"),
            Ban::NameTaken => "an unmanaged container holds the name".to_owned(),
            Ban::ReplicasPerHost(n) => format!("replicasPerHost {n} reached"),
            Ban::CycleSpread { member, most } => {
                format!("colocation cycle: {member} has {most} instance(s), for as many nodes")
            }
            Ban::Capacity {
                quantity,
                needed,
                free,
                total,
                joined,
            } => {
                let with = if *joined {
                    " with the dependents that must join it"
                } else {
                    ""
                };
                format!("needs {needed} {quantity}{with}, {free} of {total} free")
            }
        }
    }
}

/// The filter shared by every instance: nodes that cannot take anything.
pub(super) fn unavailable(s: &mut Scores, unusable: &[usize]) {
    for &i in unusable {
        s.add(
            i,
            Stage::Feasibility,
            || Ban::Unavailable.reason(),
            Score::NEG_INFINITY,
        );
    }
}

/// Whether [`instance_bans`] may keep this instance off a node: failures of it are on
/// record, or an unmanaged container has its name. Its siblings are not kept off by them.
pub(super) fn may_ban_alone(p: &Placer<'_, '_>, name: &str) -> bool {
    p.current.failed_on.contains_key(name)
        || p.current
            .conflicts
            .values()
            .any(|names| names.contains(name))
}

/// The filters of one instance that touch few nodes: too many failures on a node ban the
/// instance from it, with or without a container there, until the failures expire
/// (`onFail: ignore` and `block` keep an instance where it is whatever its count); an
/// unmanaged container with its name bans the node.
pub(super) fn instance_bans(p: &Placer<'_, '_>, b: &Bundle<'_, '_>, name: &str, own: &mut Own) {
    let counted = b.spec.monitor.on_fail.counts_failures();
    let settings = b.spec.settings(&p.spec.cluster.defaults);
    let (threshold, timeout) = (settings.migration_threshold, settings.failure_timeout_secs);
    for node in p
        .current
        .failed_on
        .get(name)
        .map(Vec::as_slice)
        .unwrap_or(&[])
        .iter()
        .filter(|_| counted)
    {
        let failures = live_failures(p.observed, node.as_str(), name, timeout);
        if failures >= threshold
            && let Some(i) = p.nodes.of(node.as_str())
        {
            let ban = Ban::Failed {
                failures,
                threshold,
            };
            own.add(
                i,
                part(Stage::Feasibility, ban.reason(), Score::NEG_INFINITY),
            );
        }
    }
    for (node, names) in &p.current.conflicts {
        if names.contains(name)
            && let Some(i) = p.nodes.of(node)
        {
            let reason = Ban::NameTaken.reason();
            own.add(i, part(Stage::Feasibility, reason, Score::NEG_INFINITY));
        }
    }
}

/// The filters of one instance that depend on what is placed so far on every node.
pub(super) struct Limits<'l, 'b> {
    mine: &'l Counts,
    per_host: u32,
    spread: Option<(usize, &'b str)>,
    /// Nodes the bundle uses so far (only counted for the first member of a cycle).
    used: usize,
}

impl<'l, 'b> Limits<'l, 'b> {
    pub(super) fn new(b: &'l Bundle<'b, '_>) -> Limits<'l, 'b> {
        let used = match b.spread {
            Some(_) => b.mine.node_count(),
            None => 0,
        };
        Limits {
            mine: &b.mine,
            per_host: b.spec.replicas_per_host,
            spread: b.spread,
            used,
        }
    }

    /// Why node `i` is full for the next instance, if it is.
    pub(super) fn ban(&self, i: usize) -> Option<Ban<'b>> {
        let here = self.mine.on(i);
        if here >= self.per_host {
            return Some(Ban::ReplicasPerHost(self.per_host));
        }
        match self.spread {
            Some((most, member)) if here == 0 && self.used >= most => {
                Some(Ban::CycleSpread { member, most })
            }
            _ => None,
        }
    }
}

/// One instance's verdict on every node, as selection asks it node by node: its score
/// there (the bundle's shared score with the instance's own parts) and whether the node
/// is banned, by the instance's [`Limits`] or by capacity, counting the dependents that
/// must join it where some node has room for them all.
pub(super) struct Fit<'f, 'b, 'a> {
    base: &'f Scores,
    /// The instance's own parts, summed per node they touch, in node order.
    added: Vec<(usize, Score)>,
    limits: Limits<'f, 'b>,
    capacity: &'f Capacity<'a>,
    need: Need<'f>,
    /// The node its needs were counted on: it keeps the instance even when full.
    ran: Option<usize>,
    /// The node the instance is on, unless it cannot run without its joiners there.
    anchored: Option<usize>,
    /// Whether it cannot run where the dependents that must join it do not fit.
    with_joiners: bool,
    /// Whether the needs of the dependents that must join it count with its own: only
    /// where some node has room for them all.
    joins: bool,
    /// What a node needs free at least to take it ([`Capacity::floor`]).
    floor: Vec<u64>,
    /// Its own needs alone, on the node it is anchored to, when that differs from `floor`.
    alone: Option<Vec<u64>>,
    /// The nodes [`Fit::banned`] found without `floor` free, for [`super::select::Load`]
    /// to pass over until their free capacity changes.
    lacked: RefCell<Vec<usize>>,
}

impl<'f, 'b, 'a> Fit<'f, 'b, 'a> {
    /// The verdicts for instance `index` of `b`, whose needs were counted on `ran` until
    /// released for this choice.
    pub(super) fn new(
        b: &'f Bundle<'b, 'a>,
        (index, own): (u32, &Own),
        capacity: &'f Capacity<'a>,
        ran: Option<usize>,
    ) -> Self {
        let mut fit = Fit {
            base: &b.base,
            added: own.added(),
            limits: Limits::new(b),
            capacity,
            need: capacity.need(b.name, index),
            ran,
            // Never the node the instance is on for the dependents' needs (they never
            // make it leave), unless it cannot run without them: it cannot stay where
            // they cannot join it.
            anchored: b.home(index).filter(|_| !b.with_joiners),
            with_joiners: b.with_joiners,
            joins: false,
            floor: Vec::new(),
            alone: None,
            lacked: RefCell::new(Vec::new()),
        };
        // The node its needs were counted on is asked first: a running instance most
        // often still fits there, and a cluster as full as its nodes are may have few
        // others that do. The others looked at are those the bundle's shared score does
        // not ban: no other node ever takes it.
        fit.joins = fit.need.joins()
            && (ran.is_some_and(|i| fit.fits(i)) || b.base.open().any(|i| fit.fits(i)));
        fit.floor = capacity.floor(&fit.need, fit.joins);
        fit.alone = fit
            .anchored
            .filter(|_| fit.joins)
            .map(|_| capacity.floor(&fit.need, false));
        fit
    }

    /// What a node needs free at least to take the instance (the node it is anchored to
    /// aside).
    pub(super) fn floor(&self) -> &[u64] {
        &self.floor
    }

    /// The nodes found without [`Fit::floor`] free so far.
    pub(super) fn lacked(&self) -> Vec<usize> {
        self.lacked.take()
    }

    /// The score on node `i` before any ban.
    pub(super) fn unbanned(&self, i: usize) -> Score {
        match self.added.binary_search_by_key(&i, |(n, _)| *n) {
            Ok(k) => self.base.at(i) + self.added[k].1,
            Err(_) => self.base.at(i),
        }
    }

    /// The score on node `i`, `-INFINITY` where it is banned.
    pub(super) fn score(&self, i: usize) -> Score {
        match self.banned(i) {
            true => self.unbanned(i) + Score::NEG_INFINITY,
            false => self.unbanned(i),
        }
    }

    /// Why node `i` lacks room for the instance with the dependents that must join it.
    fn joined(&self, i: usize) -> Option<Ban<'_>> {
        if self.ran == Some(i) && !(self.with_joiners && self.need.joins_on(i)) {
            return None;
        }
        self.capacity
            .short_for(i, &self.need, self.anchored != Some(i))
    }

    /// Whether node `i` may take the instance, room aside: its score and its limits.
    fn allowed(&self, i: usize) -> bool {
        !self.unbanned(i).is_neg_infinity() && self.limits.ban(i).is_none()
    }

    /// Whether node `i` takes the instance with everything that must join it.
    fn fits(&self, i: usize) -> bool {
        self.allowed(i) && self.joined(i).is_none()
    }

    /// Why node `i` lacks room for the instance, if it does (never the node it ran on,
    /// unless its joiners count).
    fn short(&self, i: usize) -> Option<Ban<'_>> {
        match i {
            _ if self.joins => self.joined(i),
            _ if self.ran == Some(i) => None,
            _ => self.capacity.short_for(i, &self.need, false),
        }
    }

    /// Why node `i` is banned, if it is.
    pub(super) fn ban(&self, i: usize) -> Option<Ban<'_>> {
        self.limits.ban(i).or_else(|| self.short(i))
    }

    /// Whether node `i` is banned. A node without room for what the instance needs at
    /// least there bans it (but the node it ran on, which keeps it): asked first, as it is
    /// cheap and most nodes a crowded cluster's selection passes over are such nodes.
    pub(super) fn banned(&self, i: usize) -> bool {
        let alone = self.alone.as_ref().filter(|_| self.anchored == Some(i));
        let lacks = self.ran != Some(i) && !self.capacity.has_room(i, alone.unwrap_or(&self.floor));
        if lacks && alone.is_none() {
            self.lacked.borrow_mut().push(i);
        }
        debug_assert!(
            !lacks || self.ban(i).is_some(),
            "node {i} lacks room but is not banned"
        );
        lacks || self.ban(i).is_some()
    }

    /// What `--explain` adds on node `i`: the ban, and the node's free capacity.
    pub(super) fn parts(&self, i: usize) -> Vec<ScorePart> {
        let ban = self.ban(i);
        let banned = ban.map(|ban| part(Stage::Feasibility, ban.reason(), Score::NEG_INFINITY));
        banned.into_iter().chain(self.capacity.part(i)).collect()
    }

    /// Why no node takes the instance, when capacity is enforced and every node that
    /// would otherwise take it lacks room.
    pub(super) fn shortfall(&self, nodes: &Nodes<'_>) -> Option<Shortfall> {
        if !self.capacity.enforced() {
            return None;
        }
        let bans = self
            .base
            .open()
            .filter(|i| self.allowed(*i))
            .filter_map(|i| Some((i, self.short(i)?)))
            .collect();
        Shortfall::of(nodes, bans)
    }
}
