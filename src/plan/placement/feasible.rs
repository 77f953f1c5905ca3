//! Feasibility filters: the nodes an instance may not use. Each verdict is a [`Ban`],
//! which scores `-INFINITY` and says why in `--explain`.

use super::rank::Own;
use super::scores::Scores;
use super::{Bundle, Counts, Placer, part};
use crate::plan::current::live_failures;
use crate::plan::model::Stage;
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
