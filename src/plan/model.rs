//! What a plan is: changes (actions) for people, steps for the executor, and the
//! instances that cannot be handled now (blocked), each with its reason.

use serde::{Serialize, Serializer};

use crate::spec::cluster::NoQuorumPolicy;
use crate::spec::{Name, Score};

/// The quorum situation a plan was made in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct QuorumStatus {
    /// Votes present: online nodes plus the reconciler's own.
    pub present: u32,
    /// Votes expected.
    pub expected: u32,
    /// Whether `present` is a strict majority of `expected`.
    pub quorate: bool,
    /// The cluster's policy without quorum.
    pub policy: NoQuorumPolicy,
}

impl QuorumStatus {
    /// Whether the plan may start, move and fence: quorate, or told to ignore quorum.
    pub fn may_act(&self) -> bool {
        self.quorate || self.policy == NoQuorumPolicy::Ignore
    }

    /// `no quorum (1 of 3 votes, noQuorumPolicy freeze)`, for reasons.
    pub fn lacking(&self) -> String {
        let policy = match self.policy {
            NoQuorumPolicy::Freeze => "freeze",
            NoQuorumPolicy::Stop => "stop",
            NoQuorumPolicy::Ignore => "ignore",
        };
        format!(
            "no quorum ({} of {} votes, noQuorumPolicy {policy})",
            self.present, self.expected
        )
    }
}

/// Identifier of an action, shown as `a1`, `a2`, ...
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ActionId(pub u32);

/// Serializes `n` after the letter `prefix` (`a12`, `s3`), without the formatting
/// machinery: a plan has one such id per action and step, and more where they wait.
fn prefixed<S: Serializer>(s: S, prefix: u8, n: u32) -> Result<S::Ok, S::Error> {
    let mut digits = itoa::Buffer::new();
    let digits = digits.format(n).as_bytes();
    let mut id = [prefix; 11];
    id[1..=digits.len()].copy_from_slice(digits);
    match std::str::from_utf8(&id[..=digits.len()]) {
        Ok(id) => s.serialize_str(id),
        Err(_) => s.collect_str(&format_args!("{}{n}", char::from(prefix))),
    }
}

impl Serialize for ActionId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        prefixed(s, b'a', self.0)
    }
}

impl std::fmt::Display for ActionId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "a{}", self.0)
    }
}

/// Identifier of a step, shown as `s1`, `s2`, ...
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StepId(pub u32);

impl Serialize for StepId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        prefixed(s, b's', self.0)
    }
}

impl std::fmt::Display for StepId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "s{}", self.0)
    }
}

/// The kinds of change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ActionType {
    /// Power a node off through its fence devices and confirm it is off.
    Fence,
    /// Stop and remove an instance.
    Stop,
    /// Create and start an instance.
    Start,
    /// Stop an instance and start it again on the same node (new spec, or a failure).
    Restart,
    /// Stop an instance on one node (unless that node is confirmed off) and start it on
    /// another.
    Move,
    /// Make an instance of a promotable bundle its primary.
    Promote,
    /// Make an instance of a promotable bundle a replica that follows the primary.
    Demote,
}

impl ActionType {
    /// The word used in human output.
    pub fn as_str(self) -> &'static str {
        match self {
            ActionType::Fence => "fence",
            ActionType::Stop => "stop",
            ActionType::Start => "start",
            ActionType::Restart => "restart",
            ActionType::Move => "move",
            ActionType::Promote => "promote",
            ActionType::Demote => "demote",
        }
    }
}

/// One change, as a person reads it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Action {
    /// Identifier.
    pub id: ActionId,
    /// What kind of change.
    #[serde(rename = "type")]
    pub kind: ActionType,
    /// The node acted on: the fenced node, or where the instance runs afterwards (for a
    /// stop, where it stops).
    pub node: Option<Name>,
    /// For a move, where the instance was.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<Name>,
    /// The bundle, for instance actions.
    pub bundle: Option<Name>,
    /// The instance name `<bundle>-<i>`, for instance actions.
    pub instance: Option<String>,
    /// Why.
    pub reason: String,
    /// Actions that must finish before this one completes.
    pub after: Vec<ActionId>,
}

/// What a step does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "op", rename_all = "lowercase")]
pub enum StepOp {
    /// Fence `node`.
    Fence {
        /// The node.
        node: Name,
    },
    /// Stop and remove instance `index` of `bundle` on `node`.
    Stop {
        /// The node.
        node: Name,
        /// The bundle.
        bundle: Name,
        /// The instance number.
        index: u32,
    },
    /// Create and start instance `index` of `bundle` on `node`.
    Start {
        /// The node.
        node: Name,
        /// The bundle.
        bundle: Name,
        /// The instance number.
        index: u32,
    },
    /// Run the promote command of instance `index` of `bundle` on `node`.
    Promote {
        /// The node.
        node: Name,
        /// The bundle.
        bundle: Name,
        /// The instance number.
        index: u32,
    },
    /// Run the demote command of instance `index` of `bundle` on `node`, telling it the
    /// promoted instance it follows (none when no instance is promoted yet).
    Demote {
        /// The node.
        node: Name,
        /// The bundle.
        bundle: Name,
        /// The instance number.
        index: u32,
        /// The promoted instance it follows: its number and node.
        #[serde(skip_serializing_if = "Option::is_none")]
        follow: Option<(u32, Name)>,
        /// Whether the instance may be promoted now: a failed demote then fences its node
        /// (invariant 8). A replica only told whom to follow is not.
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        primary: bool,
    },
}

impl StepOp {
    /// The node the step acts on (for a fence, the node powered off).
    pub fn node(&self) -> &Name {
        match self {
            StepOp::Fence { node }
            | StepOp::Stop { node, .. }
            | StepOp::Start { node, .. }
            | StepOp::Promote { node, .. }
            | StepOp::Demote { node, .. } => node,
        }
    }

    /// The instance the step acts on, if any: its bundle and number.
    pub fn instance(&self) -> Option<(&Name, u32)> {
        match self {
            StepOp::Fence { .. } => None,
            StepOp::Stop { bundle, index, .. }
            | StepOp::Start { bundle, index, .. }
            | StepOp::Promote { bundle, index, .. }
            | StepOp::Demote { bundle, index, .. } => Some((bundle, *index)),
        }
    }
}

/// One primitive operation of an action, as the executor runs it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Step {
    /// Identifier.
    pub id: StepId,
    /// The action it belongs to.
    pub action: ActionId,
    /// What it does.
    #[serde(flatten)]
    pub op: StepOp,
    /// Steps that must succeed first.
    pub after: Vec<StepId>,
}

/// An instance that cannot be started, recovered or changed now; or, with a `count` above
/// 1, that many new instances of one bundle blocked for one reason, from `instance` on
/// (one entry per bundle, so a plan's size follows what can be placed, not what is asked
/// for).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Blocked {
    /// `<bundle>-<i>`: the instance, or the first of those counted.
    pub instance: String,
    /// The bundle.
    pub bundle: Name,
    /// Why.
    pub reason: String,
    /// How many instances the entry stands for (not shown when 1).
    #[serde(skip_serializing_if = "is_one")]
    pub count: u32,
}

fn is_one(n: &u32) -> bool {
    *n == 1
}

/// The scores behind one placement, for `--explain`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Placement {
    /// `<bundle>-<i>`.
    pub instance: String,
    /// The node chosen, if any.
    pub chosen: Option<Name>,
    /// Every node considered, best first.
    pub candidates: Vec<Candidate>,
}

/// One node's score for one instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Candidate {
    /// The node.
    pub node: Name,
    /// Total score (`-INFINITY`: not allowed).
    pub score: Score,
    /// What the score is made of.
    pub parts: Vec<ScorePart>,
}

/// A contribution to a score.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ScorePart {
    /// Where it comes from (`location web-on-r1`, `stickiness`, ...).
    pub source: String,
    /// How much.
    pub score: Score,
    /// The placement stage that added it.
    pub stage: Stage,
}

/// The stages of placement, in the order they run for an instance; each adds its own
/// parts to a node's score (`--explain` names the stage of every part).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Stage {
    /// Decided before scoring: the instance stays where it is, or waits.
    Pinned,
    /// Feasibility filters: a node the instance may not use (unavailable, failed there
    /// too often, its name taken, `replicasPerHost` reached, a colocation cycle's nodes
    /// all taken).
    Feasibility,
    /// Location constraints.
    Location,
    /// Colocations with bundles placed before.
    Colocation,
    /// A cycle of `INFINITY` colocations placed as one group.
    Cycle,
    /// The preferences of the bundles colocated with this one (its dependents), weighted
    /// by the colocation's score (Pacemaker's rule for the primary of a colocation).
    Dependents,
    /// Stickiness to the node the instance is on.
    Stickiness,
    /// The cluster's `placementStrategy`: what the node has free, and how ties between
    /// nodes of equal score are broken (adds 0).
    Strategy,
}

impl Stage {
    /// The stage's name, as in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Pinned => "pinned",
            Stage::Feasibility => "feasibility",
            Stage::Location => "location",
            Stage::Colocation => "colocation",
            Stage::Cycle => "cycle",
            Stage::Dependents => "dependents",
            Stage::Stickiness => "stickiness",
            Stage::Strategy => "strategy",
        }
    }
}

/// A complete plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Plan {
    /// The quorum situation.
    pub quorum: QuorumStatus,
    /// Changes, in an order that respects their dependencies.
    pub actions: Vec<Action>,
    /// Instances left as they are, and why.
    pub blocked: Vec<Blocked>,
    /// Number of changes.
    pub changes: usize,
    /// The primitive steps, with their dependencies, for the executor.
    pub steps: Vec<Step>,
    /// Scores of every placement decision.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub placements: Vec<Placement>,
    /// Instances of suspended bundles (`quorate suspend`): shown as observed, never acted
    /// on; no step touches them.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub suspended: Vec<Unmanaged>,
    /// How the promoted instances of each promotable bundle were chosen (`--explain`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub promotions: Vec<Promotion>,
}

/// The promotion decision of one promotable bundle, for `--explain`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Promotion {
    /// The bundle.
    pub bundle: Name,
    /// The instances promoted once the plan is carried out.
    pub promoted: Vec<String>,
    /// Every instance that runs once the plan is carried out, best candidate first:
    /// promoted now, then by preference, then running before new, then by number.
    pub candidates: Vec<PromotionCandidate>,
}

/// One instance considered for promotion.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PromotionCandidate {
    /// `<bundle>-<i>`.
    pub instance: String,
    /// Where it runs once the plan is carried out.
    pub node: Name,
    /// Its node's score for the promoted role: locations with `role: promoted`, plus the
    /// stickiness when it is promoted now, plus the locations of the bundles colocated
    /// with its primaries, weighted by those colocations.
    pub score: Score,
    /// Its node's score from the bundle's other locations.
    pub placement: Score,
    /// Whether it is promoted now.
    pub promoted_now: bool,
    /// Its promotion preference, if it reported one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub preference: Option<i64>,
    /// Whether the plan starts it (a new container starts unpromoted).
    pub starting: bool,
}

/// An instance the plan leaves alone because it is suspended, "suspended, not managed";
/// with a `count` above 1, that many instances of one bundle observed nowhere, from
/// `instance` on (one entry per bundle, like [`Blocked`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Unmanaged {
    /// `<bundle>-<i>`: the instance, or the first of those counted.
    pub instance: String,
    /// The bundle.
    pub bundle: Name,
    /// The nodes a copy of it is observed on, with its state there (`running`, `failed`,
    /// `stopped`, `lost`: on a node that does not answer); empty when it is nowhere.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub on: Vec<(Name, String)>,
    /// Why it is not managed (`bundle db is suspended (reason)`).
    pub reason: String,
    /// How many instances the entry stands for (not shown when 1).
    #[serde(skip_serializing_if = "is_one")]
    pub count: u32,
}

impl Plan {
    /// How many instances are blocked (entries may count several).
    pub fn blocked_instances(&self) -> u64 {
        self.blocked.iter().map(|b| u64::from(b.count)).sum()
    }

    /// The action with `id`.
    pub fn action(&self, id: ActionId) -> Option<&Action> {
        self.actions.iter().find(|a| a.id == id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(v: impl Serialize) -> String {
        serde_json::to_string(&v).unwrap_or_default()
    }

    #[test]
    fn ids_serialize_as_their_letter_and_number() {
        assert_eq!(json(ActionId(12)), "\"a12\"");
        assert_eq!(json(StepId(0)), "\"s0\"");
        // The longest number still fits beside its letter.
        assert_eq!(json(StepId(u32::MAX)), "\"s4294967295\"");
        assert_eq!(json(ActionId(7)), format!("\"{}\"", ActionId(7)));
    }
}
