//! The CIB's `<status>` section as an observed-state snapshot: which nodes are online,
//! unclean or cleanly offline, which instances run where (from each resource's operation
//! history), and fail counts. With it, `quorate plan --observed` on the imported set
//! answers the question `crm_simulate` answers on the CIB.
//!
//! Node states, as Pacemaker decides them: a node in the membership whose controller is
//! online and joined is `online`; a node that left cleanly (not expected up) ran nothing
//! and counts as `fenced` (off, nothing to fence); any other node, and a node with no
//! `node_state` at all, is unclean: `lost`, with the instances last recorded on it, so
//! the plan fences it first (Pacemaker's startup fencing does the same).

use std::collections::BTreeMap;

use roxmltree::Node;

use super::{Ctx, Form, Resource, is_true, xml};
use crate::observed::{
    Failures, InstanceState, NodeState, Observed, ObservedInstance, ObservedNode, Timestamp,
};
use crate::spec::{Name, Score};

/// The snapshot of the status section of the CIB whose root is `root`.
pub(super) fn observed(ctx: &mut Ctx<'_>, root: Node<'_, '_>) -> Observed {
    let mut o = Observed::default();
    let instances = Instances::new(ctx);
    let mut latest: Timestamp = 0;
    let mut seen = Vec::new();
    for ns in xml::child(root, "status")
        .into_iter()
        .flat_map(|s| xml::children(s, "node_state"))
    {
        if ns.attribute("remote_node").is_some_and(is_true) {
            continue;
        }
        let uname = ns.attribute("uname").unwrap_or("");
        let Some(name) = ctx.node(uname).or_else(|| {
            ns.attribute("id")
                .and_then(|id| ctx.draft.node_ids.get(id).cloned())
        }) else {
            ctx.adjusted(
                ns,
                format!(
                    "the status of `{}`, which is not a node of the CIB, is left out",
                    xml::truncate(uname)
                ),
                "nothing to do",
            );
            continue;
        };
        let (node, t) = node_state(ctx, ns, &instances);
        latest = latest.max(t);
        seen.push(name.clone());
        o.nodes.insert(name, node);
    }
    for n in &ctx.draft.cluster.nodes {
        if !seen.contains(&n.name) {
            // Never seen: Pacemaker fences it at start-up (startup-fencing).
            o.nodes.insert(
                n.name.clone(),
                ObservedNode {
                    state: NodeState::Lost,
                    ..ObservedNode::default()
                },
            );
        }
    }
    o.now = root
        .attribute("execution-date")
        .and_then(|d| d.trim().parse().ok())
        .unwrap_or(latest);
    for node in o.nodes.values_mut() {
        if node.state != NodeState::Online {
            node.since = Some(o.now);
        }
    }
    if root.attribute("have-quorum").is_some_and(|q| !is_true(q)) {
        ctx.adjusted(root, "the CIB says the cluster has no quorum; quorate counts the votes of the nodes it sees online".into(), "compare the plan's quorum line with the cluster's");
    }
    o
}

/// Pacemaker's view of one node: online, cleanly down (fenced), or unclean (lost).
fn membership(ns: Node<'_, '_>) -> NodeState {
    let yes = |key: &str, word: &str| {
        ns.attribute(key)
            .is_some_and(|v| v == word || is_true(v) || v.parse::<u64>().is_ok_and(|t| t > 0))
    };
    let in_ccm = yes("in_ccm", "true");
    let crmd = yes("crmd", "online");
    let join = ns.attribute("join").unwrap_or("down");
    let expected = ns.attribute("expected").unwrap_or("down");
    if in_ccm && crmd && join == "member" {
        NodeState::Online
    } else if !in_ccm && expected != "member" && join != "member" {
        NodeState::Fenced
    } else {
        NodeState::Lost
    }
}

fn node_state(
    ctx: &mut Ctx<'_>,
    ns: Node<'_, '_>,
    instances: &Instances,
) -> (ObservedNode, Timestamp) {
    let state = membership(ns);
    let mut node = ObservedNode {
        state,
        ..ObservedNode::default()
    };
    let mut latest = 0;
    let mut anonymous: BTreeMap<Name, u32> = BTreeMap::new();
    let resources = xml::child(ns, "lrm").and_then(|l| xml::child(l, "lrm_resources"));
    for r in resources
        .into_iter()
        .flat_map(|rs| xml::children(rs, "lrm_resource"))
    {
        let (st, t) = history(ctx, r);
        latest = latest.max(t);
        let Some((bundle, index)) = instances.find(r.attribute("id").unwrap_or(""), &mut anonymous)
        else {
            continue;
        };
        if state == NodeState::Fenced {
            continue;
        }
        if let Some(st) = st {
            let spec_hash = ctx
                .draft
                .bundles
                .get(&bundle)
                .map(|d| crate::plan::hash::instance_hash(bundle.as_str(), &d.spec, index))
                .unwrap_or_default();
            node.instances.push(ObservedInstance {
                bundle,
                index,
                spec_hash,
                state: st,
                role: None,
            });
        }
    }
    node.instances
        .sort_by(|a, b| (&a.bundle, a.index).cmp(&(&b.bundle, b.index)));
    let attrs = xml::child(ns, "transient_attributes");
    for (key, value, _) in attrs
        .into_iter()
        .flat_map(|t| super::nvpairs(ctx, t, "instance_attributes"))
    {
        latest = latest.max(transient(&mut node, instances, key, value));
    }
    (node, latest)
}

/// One transient node attribute: standby, a fail count, a last failure. Returns the
/// time it carries, if any.
fn transient(node: &mut ObservedNode, instances: &Instances, key: &str, value: &str) -> Timestamp {
    if key == "standby" {
        node.standby = is_true(value);
        return 0;
    }
    let (count, rest) = match (
        key.strip_prefix("fail-count-"),
        key.strip_prefix("last-failure-"),
    ) {
        (Some(rest), _) => (true, rest),
        (None, Some(rest)) => (false, rest),
        _ => return 0,
    };
    let rsc = rest.split('#').next().unwrap_or(rest);
    let mut scratch = BTreeMap::new();
    let Some((bundle, index)) = instances.find(rsc, &mut scratch) else {
        return 0;
    };
    let entry = node
        .failures
        .entry(crate::spec::bundle::instance_name(bundle.as_str(), index))
        .or_insert(Failures {
            count: 0,
            last: None,
        });
    let v = value.trim();
    if count {
        let n = v
            .to_ascii_uppercase()
            .parse::<Score>()
            .map_or(0, |s| s.value().max(0));
        entry.count = entry
            .count
            .saturating_add(u32::try_from(n).unwrap_or(u32::MAX));
        0
    } else {
        let t = v.parse::<Timestamp>().unwrap_or(0);
        entry.last = Some(entry.last.unwrap_or(0).max(t));
        t
    }
}

/// What a resource's operation history says of it: running, failed or not running
/// (`None`), and the latest time in it.
fn history(ctx: &mut Ctx<'_>, r: Node<'_, '_>) -> (Option<InstanceState>, Timestamp) {
    let mut ops: Vec<(i64, Node<'_, '_>)> = xml::children(r, "lrm_rsc_op")
        .filter(|op| op.attribute("op-status") != Some("-1"))
        .map(|op| {
            (
                op.attribute("call-id")
                    .and_then(|c| c.parse().ok())
                    .unwrap_or(-1),
                op,
            )
        })
        .collect();
    ops.sort_by_key(|(call, _)| *call);
    let mut state = None;
    let mut latest = 0;
    for (_, op) in ops {
        let num = |k: &str| {
            op.attribute(k)
                .and_then(|v| v.trim().parse::<i64>().ok())
                .unwrap_or(0)
        };
        latest = latest.max(u64::try_from(num("last-rc-change")).unwrap_or(0));
        let (rc, status, interval) = (num("rc-code"), num("op-status"), num("interval"));
        let ok = rc == 0 && status == 0;
        state = match op.attribute("operation").unwrap_or("") {
            "start" | "promote" | "demote" | "migrate_from" => Some(if ok {
                InstanceState::Running
            } else {
                InstanceState::Failed
            }),
            "stop" if ok => None,
            "stop" => {
                ctx.adjusted(op, format!("{} records a failed stop: Pacemaker fences the node; the snapshot shows the instance failed", xml::describe(op)), "fence the node by hand if it still holds the instance");
                Some(InstanceState::Failed)
            }
            "monitor" if rc == 7 && interval == 0 => None,
            "monitor" if ok || rc == 8 => state.or(Some(InstanceState::Running)),
            "monitor" => Some(InstanceState::Failed),
            _ => state,
        };
    }
    (state, latest)
}

/// Resource ids of the status section to instances of the imported bundles.
struct Instances {
    /// `<bundle>-<runtime>-`, `<primitive>:`, or `<primitive>` exactly, to the bundle.
    prefixes: Vec<(String, Name, bool)>,
    exact: BTreeMap<String, (Name, bool)>,
}

impl Instances {
    fn new(ctx: &Ctx<'_>) -> Self {
        let mut prefixes = Vec::new();
        let mut exact = BTreeMap::new();
        for r in ctx.draft.resources.values() {
            let Resource::Bundle { name, form } = r else {
                continue;
            };
            match form {
                Form::PcmkBundle { id, runtime } => {
                    prefixes.push((format!("{id}-{runtime}-"), name.clone(), false))
                }
                Form::Primitive { id } => {
                    exact.insert(id.clone(), (name.clone(), false));
                }
                Form::Clone { id } => {
                    prefixes.push((format!("{id}:"), name.clone(), true));
                    exact.insert(id.clone(), (name.clone(), true));
                }
            }
        }
        Instances { prefixes, exact }
    }

    /// The instance `id` stands for. An anonymous clone's instances are numbered on each
    /// node in turn (`anonymous` counts per bundle on the node).
    fn find(&self, id: &str, anonymous: &mut BTreeMap<Name, u32>) -> Option<(Name, u32)> {
        if let Some((name, clone)) = self.exact.get(id) {
            if !clone {
                return Some((name.clone(), 0));
            }
            let n = anonymous.entry(name.clone()).or_insert(0);
            *n += 1;
            return Some((name.clone(), *n - 1));
        }
        self.prefixes.iter().find_map(|(prefix, name, _)| {
            let index = id.strip_prefix(prefix.as_str())?.parse().ok()?;
            Some((name.clone(), index))
        })
    }
}
