//! The Pacemaker CIB equivalent to a spec set, for timing `crm_simulate` on the same
//! problem. It passes Pacemaker 2.1's schema (`pacemaker-3.9`; check a file with
//! `crm_verify -x FILE -V`).
//!
//! How each part maps:
//! - a node is a `<node>` with its attributes (and `standby` when in standby), online
//!   in the status section; the cluster has quorum (`have-quorum="1"`) and its
//!   `noQuorumPolicy` as `no-quorum-policy`;
//! - a bundle is a globally unique clone of an `ocf:pacemaker:Dummy` primitive with
//!   `clone-max` = replicas, `clone-node-max` = replicasPerHost, the bundle's
//!   `priority`, a monitor operation with its interval, timeout and `on-fail`, and
//!   `requires="fencing"` for `recovery: fence` or `requires="quorum"` for
//!   `recovery: restart`. Globally unique, because quorate's instances are distinct
//!   (own name, address, storage), and Pacemaker allows more than one instance of a
//!   clone per node only for globally unique clones;
//! - the cluster defaults become `rsc_defaults`: `resource-stickiness`,
//!   `migration-threshold`, `failure-timeout`;
//! - fencing: `stonith-enabled` as the spec says, one `stonith:fence_ipmilan` primitive
//!   per Fence document (`pcmk_host_list` = its targets), and a `fencing-topology` with
//!   one level per node and level number holding the devices of that level;
//! - location (node or rule), colocation and order constraints map one to one
//!   (orders on clones with `interleave` off, as quorate waits for every instance of
//!   `first`); groups and resource sets are written as the pairs quorate expands them
//!   into (a group of clones has no CIB form; Pacemaker expands its own groups into the
//!   same chain of colocations and orders), each id made of the constraint's name;
//! - capacity: `placement-strategy`, a node's `capacity` and a bundle's `needs` as
//!   `<utilization>` of the node and of the clone's primitive;
//! - start-up probes are off (`enable-startup-probes=false`): quorate's planner is given
//!   what runs where and schedules no discovery, so Pacemaker is not asked to probe
//!   every resource on every node either.
//!
//! What differs: quorate runs containers (bundles); Pacemaker's bundle resource would
//! add a container, an address and a remote connection resource per replica, so the
//! lighter clone is used, which favours Pacemaker. Node votes have no CIB form (corosync
//! counts them); quorum is given as present.

use std::collections::BTreeMap;
use std::fmt::Write;

use quorate::observed::Observed;
use quorate::spec::bundle::{BundleSpec, OnFail, Recovery};
use quorate::spec::cluster::NoQuorumPolicy;
use quorate::spec::constraint::{ConstraintSpec, OrderKind, Rule, RuleOperator, RuleType};
use quorate::spec::fence::FenceSpec;
use quorate::spec::{Duration, Name, SpecSet};

/// Escapes text for an XML attribute value.
fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn secs(d: Duration) -> String {
    format!("{}s", d.get().as_secs())
}

/// The CIB XML for `spec` with every node online and nothing running.
pub fn cib(spec: &SpecSet) -> String {
    with_status(spec, None)
}

/// The CIB XML for `spec` with every node online and running what `observed` says runs
/// on it (each instance started and monitored, as Pacemaker records it), and each fence
/// device started on a node it does not target. Fail a node of it with
/// `crm_simulate --node-fail`.
pub fn converged(spec: &SpecSet, observed: &Observed) -> String {
    with_status(spec, Some(observed))
}

fn with_status(spec: &SpecSet, observed: Option<&Observed>) -> String {
    let mut x = String::from(
        "<cib crm_feature_set=\"3.16.1\" validate-with=\"pacemaker-3.9\" epoch=\"1\" num_updates=\"0\" admin_epoch=\"0\" have-quorum=\"1\" dc-uuid=\"1\">\n<configuration>\n",
    );
    crm_config(spec, &mut x);
    nodes(spec, &mut x);
    resources(spec, &mut x);
    constraints(spec, &mut x);
    fencing_topology(spec, &mut x);
    x.push_str("</configuration>\n<status>\n");
    let homes = fence_homes(spec);
    for (i, n) in spec.cluster.nodes.iter().enumerate() {
        let _ = write!(
            x,
            "<node_state id=\"{}\" uname=\"{}\" in_ccm=\"true\" crmd=\"online\" join=\"member\" expected=\"member\">",
            i + 1,
            n.name
        );
        if let Some(observed) = observed {
            let _ = write!(x, "<lrm id=\"{}\"><lrm_resources>", i + 1);
            lrm_fences(spec, &homes, i, &mut x);
            for inst in observed
                .nodes
                .get(n.name.as_str())
                .map_or(&[][..], |o| o.instances.as_slice())
            {
                if let Some(b) = spec.bundles.get(inst.bundle.as_str()) {
                    lrm_instance(inst.bundle.as_str(), inst.index, b, &mut x);
                }
            }
            x.push_str("</lrm_resources></lrm>");
        }
        x.push_str("</node_state>\n");
    }
    x.push_str("</status>\n</cib>\n");
    x
}

/// Pacemaker's digest of an operation's parameters: MD5 of the `<parameters>` element,
/// attributes sorted by name, as the scheduler computes it. With the right digest an
/// operation in the status section counts as done with the current definition.
fn digest(params: &[(&str, String)]) -> String {
    let mut sorted: Vec<&(&str, String)> = params.iter().collect();
    sorted.sort_by_key(|(k, _)| *k);
    let mut text = String::from(" <parameters");
    for (k, v) in sorted {
        let _ = write!(text, " {k}=\"{}\"", esc(v));
    }
    text.push_str("/>\n");
    format!("{:x}", md5::compute(text.as_bytes()))
}

/// An operation that succeeded, as `crm_simulate` records it.
fn lrm_op(x: &mut String, rsc: &str, op: &str, interval_ms: u64, call: u32, digest: &str) {
    let id = if interval_ms == 0 {
        format!("{rsc}_last_0")
    } else {
        format!("{rsc}_{op}_{interval_ms}")
    };
    let _ = write!(
        x,
        "<lrm_rsc_op id=\"{id}\" operation_key=\"{rsc}_{op}_{interval_ms}\" operation=\"{op}\" crm-debug-origin=\"quorate-bench\" crm_feature_set=\"3.16.1\" \
transition-key=\"{call}:-1:0:xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx\" transition-magic=\"0:0;{call}:-1:0:xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx\" \
exit-reason=\"\" call-id=\"{call}\" rc-code=\"0\" op-status=\"0\" interval=\"{interval_ms}\" last-rc-change=\"1700000000\" exec-time=\"0\" queue-time=\"0\" op-digest=\"{digest}\"/>"
    );
}

fn lrm_instance(bundle: &str, index: u32, b: &BundleSpec, x: &mut String) {
    let rsc = format!("{bundle}:{index}");
    let _ = write!(
        x,
        "<lrm_resource id=\"{rsc}\" class=\"ocf\" provider=\"pacemaker\" type=\"Dummy\">"
    );
    lrm_op(x, &rsc, "start", 0, 1, &digest(&[]));
    let timeout = b.monitor.timeout.get().as_millis().to_string();
    let interval = u64::try_from(b.monitor.interval.get().as_millis()).unwrap_or(u64::MAX);
    let monitor = digest(&[("CRM_meta_timeout", timeout)]);
    lrm_op(x, &rsc, "monitor", interval, 2, &monitor);
    x.push_str("</lrm_resource>");
}

/// The node each fence device is started on: device *k* (in name order) runs on the
/// (*k*+2)-th node it does not target, which spreads them and keeps them off the first
/// node (the one the benchmark fails).
fn fence_homes(spec: &SpecSet) -> Vec<Option<usize>> {
    spec.fences
        .values()
        .enumerate()
        .map(|(k, f)| {
            let targets: std::collections::HashSet<&str> =
                f.targets.iter().map(|t| t.as_str()).collect();
            let others: Vec<usize> = (0..spec.cluster.nodes.len())
                .filter(|i| !targets.contains(spec.cluster.nodes[*i].name.as_str()))
                .collect();
            others.get((k + 1) % others.len().max(1)).copied()
        })
        .collect()
}

/// The fence devices started on node `node`, `homes` as [`fence_homes`] made them.
fn lrm_fences(spec: &SpecSet, homes: &[Option<usize>], node: usize, x: &mut String) {
    for ((name, f), home) in spec.fences.iter().zip(homes) {
        if *home != Some(node) {
            continue;
        }
        let rsc = format!("stonith-{name}");
        let _ = write!(
            x,
            "<lrm_resource id=\"{rsc}\" class=\"stonith\" type=\"fence_ipmilan\">"
        );
        lrm_op(x, &rsc, "start", 0, 1, &digest(&stonith_params(f)));
        x.push_str("</lrm_resource>");
    }
}

/// The instance attributes of a fence device's stonith primitive.
fn stonith_params(f: &FenceSpec) -> Vec<(&'static str, String)> {
    let hosts: Vec<&str> = f.targets.iter().map(|t| t.as_str()).collect();
    vec![
        ("pcmk_host_list", hosts.join(" ")),
        ("ip", f.ipmi.address.clone()),
        ("ipport", f.ipmi.port.to_string()),
        ("username", f.ipmi.username.clone()),
        ("lanplus", "1".to_owned()),
        ("pcmk_delay_base", secs(f.delay)),
    ]
}

fn crm_config(spec: &SpecSet, x: &mut String) {
    let c = &spec.cluster;
    let policy = match c.quorum.no_quorum_policy {
        NoQuorumPolicy::Freeze => "freeze",
        NoQuorumPolicy::Stop => "stop",
        NoQuorumPolicy::Ignore => "ignore",
    };
    let _ = writeln!(
        x,
        "<crm_config><cluster_property_set id=\"options\">\
<nvpair id=\"opt-stonith\" name=\"stonith-enabled\" value=\"{}\"/>\
<nvpair id=\"opt-stonith-timeout\" name=\"stonith-timeout\" value=\"{}\"/>\
<nvpair id=\"opt-quorum\" name=\"no-quorum-policy\" value=\"{policy}\"/>\
<nvpair id=\"opt-probes\" name=\"enable-startup-probes\" value=\"false\"/>\
<nvpair id=\"opt-recheck\" name=\"cluster-recheck-interval\" value=\"{}\"/>\
<nvpair id=\"opt-placement\" name=\"placement-strategy\" value=\"{}\"/>\
</cluster_property_set></crm_config>",
        c.fencing.enabled,
        secs(c.fencing.timeout),
        secs(c.defaults.recheck_interval),
        c.placement_strategy.as_str(),
    );
    let _ = writeln!(
        x,
        "<rsc_defaults><meta_attributes id=\"rsc-defaults\">\
<nvpair id=\"rsc-stickiness\" name=\"resource-stickiness\" value=\"{}\"/>\
<nvpair id=\"rsc-migration\" name=\"migration-threshold\" value=\"{}\"/>\
<nvpair id=\"rsc-failure-timeout\" name=\"failure-timeout\" value=\"{}\"/>\
</meta_attributes></rsc_defaults>",
        c.defaults.stickiness,
        c.defaults.migration_threshold,
        secs(c.defaults.failure_timeout),
    );
}

fn nodes(spec: &SpecSet, x: &mut String) {
    x.push_str("<nodes>\n");
    for (i, n) in spec.cluster.nodes.iter().enumerate() {
        let _ = write!(
            x,
            "<node id=\"{}\" uname=\"{}\"><instance_attributes id=\"node-{i}-attrs\">",
            i + 1,
            n.name
        );
        for (j, (k, v)) in n.attributes.iter().enumerate() {
            let _ = write!(
                x,
                "<nvpair id=\"node-{i}-a{j}\" name=\"{}\" value=\"{}\"/>",
                esc(k),
                esc(v)
            );
        }
        if n.standby {
            let _ = write!(
                x,
                "<nvpair id=\"node-{i}-standby\" name=\"standby\" value=\"on\"/>"
            );
        }
        x.push_str("</instance_attributes>");
        utilization(x, &format!("node-{i}-util"), &n.capacity);
        x.push_str("</node>\n");
    }
    x.push_str("</nodes>\n");
}

fn resources(spec: &SpecSet, x: &mut String) {
    x.push_str("<resources>\n");
    for (name, f) in &spec.fences {
        let _ = write!(
            x,
            "<primitive id=\"stonith-{name}\" class=\"stonith\" type=\"fence_ipmilan\"><instance_attributes id=\"stonith-{name}-attrs\">"
        );
        for (k, v) in stonith_params(f) {
            let _ = write!(
                x,
                "<nvpair id=\"stonith-{name}-{k}\" name=\"{k}\" value=\"{}\"/>",
                esc(&v)
            );
        }
        x.push_str("</instance_attributes></primitive>\n");
    }
    for (name, b) in &spec.bundles {
        let requires = match b.recovery {
            Recovery::Fence => "fencing",
            Recovery::Restart => "quorum",
        };
        let on_fail = match b.monitor.on_fail {
            OnFail::Ignore => "ignore",
            OnFail::Block => "block",
            OnFail::Stop => "stop",
            OnFail::Restart => "restart",
            OnFail::Fence => "fence",
        };
        let _ = writeln!(
            x,
            "<clone id=\"{name}-clone\"><meta_attributes id=\"{name}-meta\">\
<nvpair id=\"{name}-max\" name=\"clone-max\" value=\"{}\"/>\
<nvpair id=\"{name}-node-max\" name=\"clone-node-max\" value=\"{}\"/>\
<nvpair id=\"{name}-unique\" name=\"globally-unique\" value=\"true\"/>\
<nvpair id=\"{name}-priority\" name=\"priority\" value=\"{}\"/>\
<nvpair id=\"{name}-requires\" name=\"requires\" value=\"{requires}\"/>\
</meta_attributes><primitive id=\"{name}\" class=\"ocf\" provider=\"pacemaker\" type=\"Dummy\"><operations>\
<op id=\"{name}-monitor\" name=\"monitor\" interval=\"{}\" timeout=\"{}\" on-fail=\"{on_fail}\"/>\
</operations>{}</primitive></clone>",
            b.replicas,
            b.replicas_per_host,
            b.priority,
            secs(b.monitor.interval),
            secs(b.monitor.timeout),
            {
                let mut u = String::new();
                utilization(&mut u, &format!("{name}-util"), &b.needs);
                u
            },
        );
    }
    x.push_str("</resources>\n");
}

/// A `<utilization>` element with one nvpair per quantity (none when `amounts` is empty).
fn utilization(x: &mut String, id: &str, amounts: &BTreeMap<Name, u64>) {
    if amounts.is_empty() {
        return;
    }
    let _ = write!(x, "<utilization id=\"{id}\">");
    for (q, n) in amounts {
        let _ = write!(x, "<nvpair id=\"{id}-{q}\" name=\"{q}\" value=\"{n}\"/>");
    }
    x.push_str("</utilization>");
}

/// A constraint's name as an XML id: what is not a letter, digit, `-`, `_` or `.`
/// (the spaces and colons of the names groups and sets expand into) becomes `-`.
fn xml_id(name: &str) -> String {
    name.chars()
        .map(|c| match c {
            'a'..='z' | 'A'..='Z' | '0'..='9' | '-' | '_' | '.' => c,
            _ => '-',
        })
        .collect()
}

fn constraints(spec: &SpecSet, x: &mut String) {
    x.push_str("<constraints>\n");
    for (name, c) in &spec.constraints {
        let id = xml_id(name.as_str());
        match c {
            ConstraintSpec::Location(l) => match (&l.node, &l.rule) {
                (Some(node), _) => {
                    let _ = writeln!(
                        x,
                        "<rsc_location id=\"c-{id}\" rsc=\"{}-clone\" node=\"{node}\" score=\"{}\"/>",
                        l.bundle, l.score
                    );
                }
                (None, Some(r)) => {
                    let mut body = String::new();
                    rule_xml(&mut body, &format!("c-{id}-rule"), r, Some(l.score));
                    let _ = writeln!(
                        x,
                        "<rsc_location id=\"c-{id}\" rsc=\"{}-clone\">{body}</rsc_location>",
                        l.bundle,
                    );
                }
                (None, None) => {}
            },
            ConstraintSpec::Colocation(c) => {
                let _ = writeln!(
                    x,
                    "<rsc_colocation id=\"c-{id}\" rsc=\"{}-clone\" with-rsc=\"{}-clone\" score=\"{}\"/>",
                    c.bundle, c.with, c.score
                );
            }
            ConstraintSpec::Order(o) => {
                let kind = match o.kind {
                    OrderKind::Mandatory => "Mandatory",
                    OrderKind::Optional => "Optional",
                    OrderKind::Serialize => "Serialize",
                };
                let _ = writeln!(
                    x,
                    "<rsc_order id=\"c-{id}\" first=\"{}-clone\" then=\"{}-clone\" kind=\"{kind}\" symmetrical=\"{}\"/>",
                    o.first, o.then, o.symmetrical
                );
            }
        }
    }
    x.push_str("</constraints>\n");
}

/// One `fencing-level` per node and level, listing that level's devices.
fn fencing_topology(spec: &SpecSet, x: &mut String) {
    let mut levels: BTreeMap<(&str, u32), Vec<String>> = BTreeMap::new();
    for (name, f) in &spec.fences {
        for t in &f.targets {
            levels
                .entry((t.as_str(), f.level))
                .or_default()
                .push(format!("stonith-{name}"));
        }
    }
    if levels.is_empty() {
        return;
    }
    x.push_str("<fencing-topology>\n");
    for ((node, level), devices) in levels {
        let _ = writeln!(
            x,
            "<fencing-level id=\"fl-{node}-{level}\" target=\"{node}\" index=\"{level}\" devices=\"{}\"/>",
            devices.join(",")
        );
    }
    x.push_str("</fencing-topology>\n");
}

/// A quorate rule as a Pacemaker `<rule>` (`and`/`or` as `boolean-op`, nested rules as
/// nested `<rule>`s), with `score` on the outermost.
fn rule_xml(x: &mut String, id: &str, r: &Rule, score: Option<quorate::spec::Score>) {
    let score = score.map_or(String::new(), |s| format!(" score=\"{s}\""));
    let (op, rules) = if r.or.is_empty() {
        ("and", &r.and)
    } else {
        ("or", &r.or)
    };
    let _ = write!(x, "<rule id=\"{id}\"{score} boolean-op=\"{op}\">");
    if rules.is_empty() {
        expression_xml(x, &format!("{id}-expr"), r);
    }
    for (i, inner) in rules.iter().enumerate() {
        if inner.and.is_empty() && inner.or.is_empty() {
            expression_xml(x, &format!("{id}-{i}"), inner);
        } else {
            rule_xml(x, &format!("{id}-{i}"), inner, None);
        }
    }
    x.push_str("</rule>");
}

fn expression_xml(x: &mut String, id: &str, r: &Rule) {
    let operator = r.operator.unwrap_or(RuleOperator::Eq);
    let op = match operator {
        RuleOperator::Eq => "eq",
        RuleOperator::Ne => "ne",
        RuleOperator::Lt => "lt",
        RuleOperator::Lte => "lte",
        RuleOperator::Gt => "gt",
        RuleOperator::Gte => "gte",
        RuleOperator::Exists => "defined",
        RuleOperator::NotExists => "not_defined",
    };
    // quorate compares lt/lte/gt/gte as integers unless the rule says otherwise.
    let typed = match r.value_type {
        Some(RuleType::String) => " type=\"string\"",
        Some(RuleType::Integer) => " type=\"integer\"",
        Some(RuleType::Version) => " type=\"version\"",
        None if r.value.is_some() && !matches!(operator, RuleOperator::Eq | RuleOperator::Ne) => {
            " type=\"integer\""
        }
        None => "",
    };
    let value = r
        .value
        .as_ref()
        .map_or(String::new(), |v| format!(" value=\"{}\"", esc(v)));
    let _ = write!(
        x,
        "<expression id=\"{id}\" attribute=\"{}\" operation=\"{op}\"{value}{typed}/>",
        esc(&r.attribute)
    );
}
