//! What to do with each instance: compare where it runs with where placement wants it,
//! and turn the difference into actions, or into a reason it has to wait.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet};

use super::builder::{Builder, Inst};
use super::current::{
    Copy, Current, Whereabouts, by_index, live_failures, of_index, unfenceable_because,
};
use super::hash::BundleHash;
use super::model::{QuorumStatus, StepId};
use super::placement::{Placed, Promoted};
use super::{HashMap, Options};
use crate::observed::{InstanceState, Observed};
use crate::spec::bundle::{BundleSpec, OnFail, Recovery, Settings};
use crate::spec::cluster::NoQuorumPolicy;
use crate::spec::constraint::{ConstraintSpec, OrderConstraint, OrderKind};
use crate::spec::{Name, SpecSet};

/// The state of one planning run.
pub struct Changes<'a, 'p> {
    spec: &'a SpecSet,
    observed: &'p Observed,
    current: &'p Current<'a>,
    placed: &'p Placed<'a>,
    /// The promoted instances placement was given (see `plan::primaries`).
    promoted: Option<&'p Promoted>,
    /// The instances promotion passes over (see `plan::primaries`).
    shunned: &'p super::Shunned,
    quorum: &'p QuorumStatus,
    options: &'p Options,
    b: Builder,
    /// Fence steps planned, per node.
    fences: BTreeMap<&'a str, StepId>,
    /// New instances of the bundle under way blocked so far, by reason: where their entry
    /// is in the blocked list (the first one's; the others only count in it).
    unplaced: BTreeMap<Unplaced, usize>,
    /// Bundles with an instance that restarts or moves in this plan (a stop, then a start
    /// again), or that start while none of their instances runs, with what that instance
    /// does (`db-0 restarts`): the `then` of a mandatory order from them restarts after
    /// them.
    restarting: HashMap<&'a str, String>,
    /// For the bundle under way: why its running instances restart after the `first` of
    /// a mandatory order (one of its instances restarts or moves), if one does.
    restart_after: Option<String>,
    /// Whether an instance of the bundle under way runs now: when none does, its starts
    /// restart the `then` of its mandatory orders like a restart does.
    bundle_runs: bool,
    /// The mandatory orders by their `then`, with their names.
    mandatory_into: HashMap<&'a str, Vec<(&'a Name, &'a OrderConstraint)>>,
    /// The bundle under way, its spec and its copies ([`Current::all_of`]), which every
    /// instance of it looks up.
    under_way: Option<(&'a str, &'a BundleSpec, &'p [Copy<'a>])>,
}

/// What one instance has before its step is chosen (see `Changes::seen`).
struct Seen<'a, 'p> {
    /// Its copies, on every node.
    copies: &'p [Copy<'a>],
    /// The node placement chose for it, if any.
    desired: Option<&'a Name>,
    /// The running copy it keeps: the one on `desired`, else the first that runs.
    keep: Option<&'p Copy<'a>>,
    /// No copy runs, and `desired` has an exited one that starts again in place.
    restart_here: bool,
}

/// Why a new instance (one with no copy anywhere) is blocked: the same for every new
/// instance of a bundle after the first, so they share one blocked entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Unplaced {
    /// Its bundle waits for the `first` of a mandatory order to run.
    Waits,
    /// No node can take it.
    Nowhere,
}

impl<'a, 'p> Changes<'a, 'p> {
    pub fn new(
        spec: &'a SpecSet,
        observed: &'p Observed,
        current: &'p Current<'a>,
        (placed, promoted, shunned): (&'p Placed<'a>, Option<&'p Promoted>, &'p super::Shunned),
        quorum: &'p QuorumStatus,
        options: &'p Options,
    ) -> Self {
        Changes {
            promoted,
            shunned,
            spec,
            observed,
            current,
            placed,
            quorum,
            options,
            b: Builder::default(),
            fences: BTreeMap::new(),
            unplaced: BTreeMap::new(),
            restarting: HashMap::default(),
            restart_after: None,
            bundle_runs: false,
            mandatory_into: mandatory_into(spec),
            under_way: None,
        }
    }

    /// Plans fences, then every bundle in order-constraint order, then leftovers.
    pub fn run(mut self) -> Builder {
        self.fence_lost_nodes();
        let awaited = super::order::awaited(self.spec, &self.placed.starved);
        for (name, spec) in bundle_order(self.spec) {
            let bundle = name.as_str();
            // Suspended (`quorate suspend`): shown as observed, no step at all.
            if let Some(why) = self.observed.suspended.why(bundle) {
                let entries = super::suspended::entries(self.current, name, spec.replicas, &why);
                self.b.suspended.extend(entries);
                continue;
            }
            let copies = self.current.all_of(bundle);
            self.under_way = Some((bundle, spec, copies));
            let waits_for = awaited.get(bundle).cloned();
            let mut restarts_left = spec.update.max_parallel;
            self.unplaced.clear();
            self.restart_after = self.first_restarts(bundle);
            self.bundle_runs = copies.iter().any(Copy::running);
            let hashes = BundleHash::new(name.as_str(), spec);
            for index in 0..spec.replicas {
                let inst = Inst {
                    bundle: name,
                    index,
                };
                self.instance(
                    inst,
                    (spec, &hashes),
                    waits_for.as_deref(),
                    &mut restarts_left,
                );
            }
            self.count_unplaced(name, waits_for.as_deref());
        }
        self.leftovers();
        let cx = super::promotion::Context {
            spec: self.spec,
            observed: self.observed,
            current: self.current,
            quorum: self.quorum,
            fences: &self.fences,
            before: self.promoted,
            shunned: self.shunned,
            explain: self.options.explain,
            #[cfg(feature = "sim")]
            unsafe_skip_fence_dependency: self.options.unsafe_skip_fence_dependency,
        };
        super::promotion::run(&cx, &mut self.b);
        if !self.quorum.may_act() && self.quorum.policy == NoQuorumPolicy::Stop {
            self.stop_everything_reachable();
        }
        self.b
    }

    fn no_quorum(&self) -> String {
        self.quorum.lacking()
    }

    /// Invariants 2 and 3: a lost node is fenced only with quorum, fencing enabled and a
    /// device that covers it (`Current::unfenceable` says why not otherwise). So is a node
    /// where an instance fails its check with `onFail: fence` (`Current::failing`, which
    /// holds only nodes that can be fenced): its instances are recovered after the fence.
    fn fence_lost_nodes(&mut self) {
        let current = self.current;
        let lost = current
            .lost
            .iter()
            .filter(|n| !current.unfenceable.contains_key(*n))
            .map(|n| {
                let why =
                    format!("{n} stopped answering; power it off before recovering its instances");
                (*n, why)
            });
        let failing = current.failing.iter().map(|(n, why)| (*n, why.clone()));
        for (node, reason) in lost.chain(failing) {
            let Some(name) = self.spec.cluster.node(node).map(|n| &n.name) else {
                continue;
            };
            let step = self.b.fence(name, reason);
            self.fences.insert(node, step);
        }
    }

    /// The step of one instance: its copies tidied (one running copy at most, exited
    /// ones removed), then what the mandatory order it waits for, recovery, placement or
    /// its own state asks of it.
    fn instance(
        &mut self,
        inst: Inst<'a>,
        (spec, hashes): (&'a BundleSpec, &BundleHash<'_>),
        waits_for: Option<&str>,
        restarts_left: &mut u32,
    ) {
        let seen = self.seen(inst);
        self.tidy(inst, &seen);
        if let Some(first) = waits_for {
            return self.wait(inst, spec.monitor.on_fail, &seen, first);
        }
        let unknown: Vec<&Copy> = seen
            .copies
            .iter()
            .filter(|c| c.whereabouts == Whereabouts::Unknown)
            .collect();
        if seen.keep.is_none() && !unknown.is_empty() {
            return self.recover(inst, spec.recovery, &unknown, seen.desired);
        }
        match seen.keep {
            None => self.start(inst, &seen),
            Some(k) => self.keep(inst, k, seen.desired, (spec, hashes), restarts_left),
        }
    }

    /// The copies of `inst`, the node placement chose for it, and the running copy it
    /// keeps: the one on that node, else the first that runs.
    fn seen(&self, inst: Inst) -> Seen<'a, 'p> {
        let bundle = inst.bundle.as_str();
        let copies = self.copies(inst);
        let desired = self.placed.node.get(bundle, inst.index).flatten();
        let keep = desired
            .and_then(|d| copies.iter().find(|c| c.running() && c.node == d))
            .or_else(|| copies.iter().find(|c| c.running()));
        let restart_here = keep.is_none()
            && desired.is_some_and(|d| {
                copies
                    .iter()
                    .any(|c| c.node == d && c.whereabouts == Whereabouts::Reachable)
            });
        Seen {
            copies,
            desired,
            keep,
            restart_here,
        }
    }

    /// Invariant 1: a copy seen on two reachable nodes (a healed partition) is cut to
    /// the one kept. Exited containers that are not restarted in place are removed
    /// (housekeeping that waits for quorum like everything but stopping what runs).
    fn tidy(&mut self, inst: Inst<'a>, seen: &Seen<'a, 'p>) {
        let kept = seen.keep.map(|k| k.node);
        for c in seen.copies.iter().filter(|c| c.running()) {
            if Some(c.node) != kept {
                let reason = format!(
                    "{} also runs on {}: keep one copy",
                    inst.name(),
                    kept.map_or("another node", |k| k.as_str())
                );
                self.stop(c.node, inst, reason);
            }
        }
        for c in seen.copies.iter().filter(|c| {
            c.whereabouts == Whereabouts::Reachable && !c.running() && self.quorum.may_act()
        }) {
            if !(seen.restart_here && Some(c.node) == seen.desired) {
                self.stop(
                    c.node,
                    inst,
                    format!("remove the exited container of {}", inst.name()),
                );
            }
        }
    }

    /// An instance whose bundle waits for `first`, the `first` of a mandatory order,
    /// to run. Invariant 2 holds through `stop`: without quorum it is blocked, not done.
    /// A copy `onFail: block` holds is left alone even then (neither moved nor stopped),
    /// as placement leaves it.
    fn wait(&mut self, inst: Inst<'a>, on_fail: OnFail, seen: &Seen<'a, 'p>, first: &str) {
        match seen.keep {
            Some(k) if k.held(on_fail) => {
                let why = format!(
                    "fails its check on {} and onFail: block leaves it alone; it would wait for {first} (mandatory order)",
                    k.node
                );
                self.b.block(inst, why);
            }
            Some(k) => {
                let why = format!(
                    "{first} cannot run, and {} runs only after it (mandatory order)",
                    inst.name()
                );
                self.stop(k.node, inst, why);
                self.b
                    .block(inst, format!("waits for {first} to run (mandatory order)"));
            }
            None if seen.copies.is_empty() => self.block_new(inst, Unplaced::Waits, first),
            None => self
                .b
                .block(inst, format!("waits for {first} to run (mandatory order)")),
        }
    }

    /// An instance with no running copy (and none that may run on a lost node): started
    /// where placement put it, restarted in place, or blocked when it has no node. Every
    /// start goes through `act` (invariant 2: only with quorum).
    fn start(&mut self, inst: Inst<'a>, seen: &Seen<'a, 'p>) {
        let copies = seen.copies;
        match seen.desired {
            None if copies.is_empty() => self.block_new(inst, Unplaced::Nowhere, ""),
            None => self.b.block(inst, self.nowhere(inst)),
            Some(d) if seen.restart_here => {
                let why = format!("{} exited on {d}; start it again", inst.name());
                self.act(inst, Act::Restart(d), why);
            }
            Some(d) => {
                let why = match copies.iter().find(|c| c.whereabouts == Whereabouts::Gone) {
                    Some(c) => format!(
                        "recover {} from {}, which is confirmed off",
                        inst.name(),
                        c.node
                    ),
                    None if copies.is_empty() => format!("new instance {}", inst.name()),
                    None => format!("{} is not running", inst.name()),
                };
                self.act(inst, Act::Start(d), why);
            }
        }
    }

    /// An instance running as `k`: stopped when placement has no node for it, moved to
    /// another, restarted in place when its spec changed (in turn, `update.maxParallel`
    /// at a time) or after the `first` of a mandatory order restarts, or left alone.
    /// Moves and restarts go through `act` (invariants 1 and 2: the start after the
    /// stop, only with quorum).
    fn keep(
        &mut self,
        inst: Inst<'a>,
        k: &'p Copy<'a>,
        desired: Option<&'a Name>,
        (spec, hashes): (&'a BundleSpec, &BundleHash<'_>),
        restarts_left: &mut u32,
    ) {
        let on_fail = spec.monitor.on_fail;
        match desired {
            None => {
                let why = match self.fence_guard(inst) {
                    Err(frozen) => format!("it may not stay on {}, and {frozen}", k.node),
                    Ok(_) => self.nowhere(inst),
                };
                self.stop(k.node, inst, why.clone());
                self.b.block(inst, why);
            }
            // Failing its check with `onFail: block`: left alone, even by a spec change.
            Some(d) if d == k.node && k.held(on_fail) => self.failed(inst, k, on_fail),
            Some(d) if d == k.node => {
                if k.instance.spec_hash != hashes.instance(inst.index) {
                    self.update(inst, d, spec.update.max_parallel, restarts_left);
                } else if k.state == InstanceState::Failed {
                    self.failed(inst, k, on_fail);
                } else if let Some(why) = self.restart_after.clone() {
                    // Invariants 1 and 2 as for any restart (`act`): in place, its start
                    // after its own stop, and only with quorum.
                    self.act(inst, Act::Restart(d), why);
                }
            }
            Some(d) => {
                let why = self.why_move(inst, k, d);
                let to = Act::Move {
                    from: k.node,
                    to: d,
                };
                self.act(inst, to, why);
            }
        }
    }

    /// A spec change rolled out in place on `d`: restarted while the bundle's turns last
    /// (`update.maxParallel`), blocked until the next plan after that.
    fn update(&mut self, inst: Inst<'a>, d: &'a Name, max_parallel: u32, left: &mut u32) {
        if *left == 0 {
            let why = format!("rolling update: waits its turn (update.maxParallel {max_parallel})");
            self.b.block(inst, why);
        } else {
            *left -= 1;
            let why = "the spec changed (image, command, environment, ports, storage or address)";
            self.act(inst, Act::Restart(d), why.to_owned());
        }
    }

    /// Recovery of an instance whose only copy is on a lost node.
    fn recover(
        &mut self,
        inst: Inst<'a>,
        recovery: Recovery,
        unknown: &[&Copy<'a>],
        desired: Option<&'a Name>,
    ) {
        let lost = unknown[0].node;
        if recovery == Recovery::Fence
            && let Err(why) = self.fence_guard(inst)
        {
            return self.b.block(inst, why);
        }
        // A node this plan fences for a failed check, rather than a lost one.
        let fenced = self.current.failing.get(lost.as_str());
        let Some(to) = desired else {
            let was = match fenced {
                Some(why) => format!("{} was on {lost}, which is fenced ({why})", inst.name()),
                None => format!("{} was on lost node {lost}", inst.name()),
            };
            return self.b.block(inst, format!("{was}; {}", self.nowhere(inst)));
        };
        let gone = match fenced {
            Some(why) => format!("{lost} is fenced ({why})"),
            None => format!("{lost} is lost"),
        };
        match recovery {
            Recovery::Restart => {
                let why = format!(
                    "{gone}; recovery: restart starts {} elsewhere at once",
                    inst.name()
                );
                self.act(
                    inst,
                    Act::Recover {
                        from: lost,
                        to,
                        after: Vec::new(),
                    },
                    why,
                );
            }
            Recovery::Fence => {
                let why = format!(
                    "{gone}; start {} elsewhere once {lost} is fenced",
                    inst.name()
                );
                self.act(
                    inst,
                    Act::Recover {
                        from: lost,
                        to,
                        after: Vec::new(),
                    },
                    why,
                );
            }
        }
    }

    /// Invariants 1 and 3: before a single-writer instance starts anywhere, every lost
    /// node that may still run a copy of it must be fenced. Returns those fence steps, or
    /// why the instance has to wait.
    fn fence_guard(&self, inst: Inst) -> Result<Vec<StepId>, String> {
        let mut after = Vec::new();
        let copies = self.copies(inst);
        for c in copies
            .iter()
            .filter(|c| c.whereabouts == Whereabouts::Unknown)
        {
            match self.fences.get(c.node.as_str()) {
                Some(step) => after.push(*step),
                None => {
                    let why = self
                        .current
                        .unfenceable
                        .get(c.node.as_str())
                        .cloned()
                        .unwrap_or_default();
                    return Err(format!(
                        "{} may still run on lost node {}, which cannot be fenced: {why}; after checking it is off, run `quorate fence confirm {}`",
                        inst.name(),
                        c.node,
                        c.node
                    ));
                }
            }
        }
        #[cfg(feature = "sim")]
        if self.options.unsafe_skip_fence_dependency {
            after.clear();
        }
        Ok(after)
    }

    /// A running instance failing its check, handled as its monitor's `onFail` says.
    fn failed(&mut self, inst: Inst<'a>, k: &Copy<'a>, on_fail: OnFail) {
        let d = self.settings(inst);
        let failures = live_failures(
            self.observed,
            k.node.as_str(),
            &inst.name(),
            d.failure_timeout_secs,
        );
        match on_fail {
            OnFail::Ignore => {}
            OnFail::Block => self.b.block(
                inst,
                format!(
                    "{} fails its check; onFail: block leaves it alone",
                    inst.name()
                ),
            ),
            OnFail::Stop => {
                self.stop(
                    k.node,
                    inst,
                    format!("{} fails its check; onFail: stop", inst.name()),
                );
                self.b.block(
                    inst,
                    "stopped after failing its check (onFail: stop)".to_owned(),
                );
            }
            OnFail::Restart => {
                let why = format!(
                    "{} fails its check (failure {failures} of {} before it moves)",
                    inst.name(),
                    d.migration_threshold
                );
                self.act(inst, Act::Restart(k.node), why);
            }
            // A node that can be fenced is fenced from the start of the plan
            // (`Current::failing`), and this copy counts as on it; here it cannot be.
            OnFail::Fence => {
                let why = unfenceable_because(self.spec, self.quorum, k.node.as_str())
                    .unwrap_or_else(|| format!("{} is not fenced by this plan", k.node));
                self.b
                    .block(inst, format!("fails its check (onFail: fence), but {why}"));
            }
        }
    }

    fn why_move(&self, inst: Inst, k: &Copy, to: &Name) -> String {
        let from = k.node.as_str();
        let d = self.settings(inst);
        if !self.current.usable.contains(from) {
            return format!(
                "{from} is in standby or not in the spec; move {} to {to}",
                inst.name()
            );
        }
        let failures = live_failures(
            self.observed,
            k.node.as_str(),
            &inst.name(),
            d.failure_timeout_secs,
        );
        let counted = self
            .bundle_spec(inst.bundle.as_str())
            .is_some_and(|b| b.monitor.on_fail.counts_failures());
        if counted && failures >= d.migration_threshold {
            return format!(
                "{} failed {failures} times on {from} (migrationThreshold {})",
                inst.name(),
                d.migration_threshold
            );
        }
        format!("{to} scores higher than {from} (constraints outweigh stickiness)")
    }

    /// The spec of `bundle`: the one under way without looking it up.
    fn bundle_spec(&self, bundle: &str) -> Option<&'a BundleSpec> {
        match self.under_way {
            Some((name, spec, _)) if name == bundle => Some(spec),
            _ => self.spec.bundles.get(bundle),
        }
    }

    /// The copies of `inst`: those of the bundle under way without looking them up.
    fn copies(&self, inst: Inst) -> &'p [Copy<'a>] {
        match self.under_way {
            Some((name, _, all)) if name == inst.bundle.as_str() => of_index(all, inst.index),
            _ => self.current.of(inst.bundle.as_str(), inst.index),
        }
    }

    /// The stickiness and failure settings of the instance's bundle.
    fn settings(&self, inst: Inst) -> Settings {
        let d = &self.spec.cluster.defaults;
        self.bundle_spec(inst.bundle.as_str())
            .map_or(Settings::of_cluster(d), |b| b.settings(d))
    }

    fn nowhere(&self, inst: Inst) -> String {
        let name = inst.name();
        self.nowhere_for(&name, &name)
    }

    /// Why no node takes `what`, whose first instance is `instance`: the capacity the
    /// nodes lack when that is what kept it out (a strategy other than `default`).
    fn nowhere_for(&self, what: &str, instance: &str) -> String {
        if let Some(short) = self.placed.short.get(instance) {
            return format!("no node can take {what}: {short} (see `quorate plan --explain`)");
        }
        let total = self.spec.cluster.nodes.len();
        let usable = self.current.usable.len();
        format!(
            "no node can take {what}: {} of {total} nodes are unavailable, the rest are excluded by -INFINITY constraints or replicasPerHost (see `quorate plan --explain`)",
            total - usable
        )
    }

    /// Blocks `inst`, which has no copy anywhere, for `kind` (waiting for `first`): the
    /// first such instance of its bundle gets an entry, the ones after it only count in
    /// that entry, so a bundle asking for far more than fits costs one entry, not one per
    /// instance.
    fn block_new(&mut self, inst: Inst, kind: Unplaced, first: &str) {
        if let Some(entry) = self
            .unplaced
            .get(&kind)
            .and_then(|at| self.b.blocked.get_mut(*at))
        {
            entry.count = entry.count.saturating_add(1);
            return;
        }
        let reason = match kind {
            Unplaced::Waits => format!("waits for {first} to run (mandatory order)"),
            Unplaced::Nowhere => self.nowhere(inst),
        };
        self.unplaced.insert(kind, self.b.blocked.len());
        self.b.block(inst, reason);
    }

    /// Rewrites the reason of each entry of `bundle` that counts several new instances.
    fn count_unplaced(&mut self, bundle: &Name, waits_for: Option<&str>) {
        let entries: Vec<(Unplaced, usize)> =
            self.unplaced.iter().map(|(k, at)| (*k, *at)).collect();
        for (kind, at) in entries {
            let Some((count, first)) = self
                .b
                .blocked
                .get(at)
                .filter(|e| e.count > 1)
                .map(|e| (e.count, e.instance.clone()))
            else {
                continue;
            };
            let more = count - 1;
            let s = if more == 1 { "" } else { "s" };
            let reason = match kind {
                Unplaced::Nowhere => self.nowhere_for(
                    &format!("{first} and {more} more new instance{s} of {bundle}"),
                    &first,
                ),
                Unplaced::Waits => format!(
                    "waits for {} to run (mandatory order), with {more} more new instance{s} of {bundle}",
                    waits_for.unwrap_or("its first")
                ),
            };
            if let Some(e) = self.b.blocked.get_mut(at) {
                e.reason = reason;
            }
        }
    }

    /// Copies of instances the spec no longer wants: removed bundles, lower replicas.
    /// The observed bundles and the spec's are both in name order: one walk over the
    /// two finds each observed bundle's replicas, without a search per copy.
    fn leftovers(&mut self) {
        let current = self.current;
        let mut specs = self.spec.bundles.iter().peekable();
        for (bundle, all) in current.by_bundle() {
            while specs.next_if(|(name, _)| name.as_str() < bundle).is_some() {}
            let replicas = specs
                .next_if(|(name, _)| name.as_str() == bundle)
                .map(|(_, b)| b.replicas);
            for (index, copies) in by_index(all) {
                if replicas.is_none_or(|r| index >= r) {
                    self.leftover(index, copies, replicas);
                }
            }
        }
    }

    /// Stops the copies of instance `index` of a bundle that now has `replicas` (`None`:
    /// removed), or shows them as suspended.
    fn leftover(&mut self, index: u32, copies: &[Copy], replicas: Option<u32>) {
        let Some(first) = copies.first() else {
            return;
        };
        let inst = Inst {
            bundle: &first.instance.bundle,
            index,
        };
        let bundle = inst.bundle;
        if let Some(why) = self.observed.suspended.why(bundle.as_str()) {
            let entry = super::suspended::entry(bundle, index, copies, &why);
            self.b.suspended.push(entry);
            return;
        }
        let why = match replicas {
            None => format!("bundle {bundle} was removed"),
            Some(r) => format!("bundle {bundle} is scaled down to {r} replicas"),
        };
        for c in copies.iter().filter(|c| {
            c.whereabouts == Whereabouts::Reachable && (c.running() || self.quorum.may_act())
        }) {
            self.stop(c.node, inst, why.clone());
        }
    }

    /// `noQuorumPolicy: stop`: whatever runs where we can reach it stops.
    fn stop_everything_reachable(&mut self) {
        let stopping: BTreeSet<(String, String)> = self
            .b
            .actions
            .iter()
            .filter_map(|a| Some((a.instance.clone()?, a.node.as_ref()?.to_string())))
            .collect();
        let why = self.no_quorum();
        let current = self.current;
        for (_, copies) in current.by_bundle() {
            let suspended = &self.observed.suspended;
            let left = copies
                .iter()
                .filter(|c| c.running() && !suspended.covers(c.instance.bundle.as_str()));
            for c in left {
                let inst = Inst {
                    bundle: &c.instance.bundle,
                    index: c.index,
                };
                if !stopping.contains(&(inst.name(), c.node.to_string())) {
                    self.b.stop(c.node, inst, why.clone());
                }
            }
        }
    }

    fn stop(&mut self, node: &Name, inst: Inst, reason: String) {
        if self.quorum.may_act() || self.quorum.policy == NoQuorumPolicy::Stop {
            self.b.stop(node, inst, reason);
        } else {
            self.b.block(
                inst,
                format!("{}: would stop it on {node} ({reason})", self.no_quorum()),
            );
        }
    }

    /// Why the running instances of `then` restart in this plan: an instance of the
    /// `first` of one of its mandatory orders restarts or moves (Pacemaker restarts what
    /// depends on a resource that restarts). Bundles are planned `first` before `then`, so
    /// `restarting` already holds every `first`. With `requireAll: false` (`any_of`),
    /// not while another of those firsts is placed and does not restart: it keeps `then`
    /// going.
    fn first_restarts(&self, then: &str) -> Option<String> {
        let steady = |f: &Name| {
            !self.restarting.contains_key(f.as_str())
                && self.placed.node.of(f.as_str()).any(|(_, n)| n.is_some())
        };
        let orders = self.mandatory_into.get(then)?;
        orders.iter().find_map(|(name, o)| {
            let inst = self.restarting.get(o.first.as_str())?;
            if o.any_of.iter().any(steady) {
                return None;
            }
            Some(format!(
                "{inst}, and {then} runs only after {} (mandatory order {name}): restart after it",
                o.first
            ))
        })
    }

    /// Starts, restarts and moves: only with quorum (invariant 2).
    fn act(&mut self, inst: Inst<'a>, act: Act<'a>, reason: String) {
        if !self.quorum.may_act() {
            let what = match &act {
                Act::Start(d) => format!("start it on {d}"),
                Act::Restart(d) => format!("restart it on {d}"),
                Act::Move { from, to } => format!("move it from {from} to {to}"),
                Act::Recover { from, to, .. } => format!("recover it from {from} on {to}"),
            };
            return self.b.block(
                inst,
                format!("{}: would {what} ({reason})", self.no_quorum()),
            );
        }
        let guard = match self.bundle_spec(inst.bundle.as_str()).map(|b| b.recovery) {
            Some(Recovery::Fence) => match self.fence_guard(inst) {
                Ok(steps) => steps,
                Err(why) => return self.b.block(inst, why),
            },
            _ => Vec::new(),
        };
        let verb = match act {
            Act::Start(_) if self.bundle_runs => None,
            Act::Start(_) => Some("starts"),
            Act::Restart(_) => Some("restarts"),
            Act::Move { .. } | Act::Recover { .. } => Some("moves"),
        };
        if let Some(verb) = verb {
            self.restarting
                .entry(inst.bundle.as_str())
                .or_insert_with(|| format!("{} {verb}", inst.name()));
        }
        match act {
            Act::Start(d) => {
                self.b.start(d, inst, reason, guard);
            }
            Act::Restart(d) => {
                self.b.restart(d, inst, reason, guard);
            }
            Act::Move { from, to } => {
                self.b.relocate(from, to, inst, true, reason, guard);
            }
            Act::Recover {
                from,
                to,
                mut after,
            } => {
                after.extend(guard);
                self.b.relocate(from, to, inst, false, reason, after);
            }
        }
    }
}

/// A change that needs quorum.
enum Act<'a> {
    Start(&'a Name),
    Restart(&'a Name),
    Move {
        from: &'a Name,
        to: &'a Name,
    },
    /// Start on `to` an instance whose copy is on a lost node `from`, after the steps
    /// `after` (for single-writer instances the fence guard is added).
    Recover {
        from: &'a Name,
        to: &'a Name,
        after: Vec<StepId>,
    },
}

/// Bundles in order-constraint order (a `first` before its `then`), otherwise by name,
/// with their specs. Sorted by their positions in name order, which compare as their
/// names do; the positions of the orders' ends are hashed, not searched by name.
fn bundle_order(spec: &SpecSet) -> Vec<(&Name, &BundleSpec)> {
    let bundles: Vec<(&Name, &BundleSpec)> = spec.bundles.iter().collect();
    let index = super::positions(bundles.iter().map(|(b, _)| b.as_str()));
    let at = |b: &Name| index.get(b.as_str()).copied();
    let edges = spec.constraints.values().filter_map(|c| match c {
        ConstraintSpec::Order(o) => Some((at(&o.first)?, at(&o.then)?)),
        _ => None,
    });
    let sorted = crate::graph::toposort(0..bundles.len(), edges, Reverse);
    // Validation refuses order cycles; should one get here, its bundles still get planned.
    let order = sorted.order.into_iter().chain(sorted.left);
    order.filter_map(|i| bundles.get(i).copied()).collect()
}

/// The mandatory orders of `spec` by their `then` (looked up, never walked: hashed),
/// those of each `then` in the orders' name order.
fn mandatory_into(spec: &SpecSet) -> HashMap<&str, Vec<(&Name, &OrderConstraint)>> {
    let mut into: HashMap<&str, Vec<(&Name, &OrderConstraint)>> = HashMap::default();
    for (name, c) in &spec.constraints {
        if let ConstraintSpec::Order(o) = c
            && o.kind == OrderKind::Mandatory
        {
            into.entry(o.then.as_str()).or_default().push((name, o));
        }
    }
    into
}
