//! The Pacemaker CIB equivalent to a generated spec set, for timing `crm_simulate` on
//! the same problem: each bundle becomes a clone of a Dummy primitive with
//! `clone-max` = replicas and `clone-node-max` = replicasPerHost, with the same location
//! rules, colocations and orders. Fencing is off on both sides of the comparison's
//! fresh-cluster case, so the schedulers do the same placement work.

use std::fmt::Write;

use quorate::spec::constraint::{ConstraintSpec, OrderKind, RuleOperator};
use quorate::spec::{Score, SpecSet};

fn score(s: Score) -> String {
    s.to_string()
}

/// The CIB XML for `spec`, every node online, nothing running.
pub fn cib(spec: &SpecSet) -> String {
    let mut x = String::from(
        "<cib crm_feature_set=\"3.16.1\" validate-with=\"pacemaker-3.9\" epoch=\"1\" num_updates=\"0\" admin_epoch=\"0\">\n<configuration>\n<crm_config><cluster_property_set id=\"opts\">\n<nvpair id=\"opt-stonith\" name=\"stonith-enabled\" value=\"false\"/>\n<nvpair id=\"opt-stick\" name=\"default-resource-stickiness\" value=\"100\"/>\n</cluster_property_set></crm_config>\n<nodes>\n",
    );
    for (i, n) in spec.cluster.nodes.iter().enumerate() {
        let _ = writeln!(
            x,
            "<node id=\"{}\" uname=\"{}\"><instance_attributes id=\"na-{i}\">",
            i + 1,
            n.name
        );
        for (k, v) in &n.attributes {
            let _ = writeln!(x, "<nvpair id=\"na-{i}-{k}\" name=\"{k}\" value=\"{v}\"/>");
        }
        x.push_str("</instance_attributes></node>\n");
    }
    x.push_str("</nodes>\n<resources>\n");
    for (name, b) in &spec.bundles {
        let _ = writeln!(
            x,
            "<clone id=\"{name}-clone\"><meta_attributes id=\"{name}-meta\"><nvpair id=\"{name}-cm\" name=\"clone-max\" value=\"{}\"/><nvpair id=\"{name}-cnm\" name=\"clone-node-max\" value=\"{}\"/><nvpair id=\"{name}-prio\" name=\"priority\" value=\"{}\"/></meta_attributes><primitive id=\"{name}\" class=\"ocf\" provider=\"pacemaker\" type=\"Dummy\"/></clone>",
            b.replicas, b.replicas_per_host, b.priority
        );
    }
    x.push_str("</resources>\n<constraints>\n");
    for (id, c) in &spec.constraints {
        match c {
            ConstraintSpec::Location(l) => match (&l.node, &l.rule) {
                (Some(node), _) => {
                    let _ = writeln!(
                        x,
                        "<rsc_location id=\"{id}\" rsc=\"{}-clone\" node=\"{node}\" score=\"{}\"/>",
                        l.bundle,
                        score(l.score)
                    );
                }
                (None, Some(r)) => {
                    let op = match r.operator {
                        RuleOperator::Eq => "eq",
                        RuleOperator::Ne => "ne",
                        RuleOperator::Lt => "lt",
                        RuleOperator::Lte => "lte",
                        RuleOperator::Gt => "gt",
                        RuleOperator::Gte => "gte",
                        RuleOperator::Exists => "defined",
                        RuleOperator::NotExists => "not_defined",
                    };
                    let value = r
                        .value
                        .as_ref()
                        .map_or(String::new(), |v| format!(" value=\"{v}\""));
                    let _ = writeln!(
                        x,
                        "<rsc_location id=\"{id}\" rsc=\"{}-clone\"><rule id=\"{id}-r\" score=\"{}\"><expression id=\"{id}-e\" attribute=\"{}\" operation=\"{op}\"{value}/></rule></rsc_location>",
                        l.bundle,
                        score(l.score),
                        r.attribute
                    );
                }
                (None, None) => {}
            },
            ConstraintSpec::Colocation(c) => {
                let _ = writeln!(
                    x,
                    "<rsc_colocation id=\"{id}\" rsc=\"{}-clone\" with-rsc=\"{}-clone\" score=\"{}\"/>",
                    c.bundle,
                    c.with,
                    score(c.score)
                );
            }
            ConstraintSpec::Order(o) => {
                let kind = match o.kind {
                    OrderKind::Mandatory => "Mandatory",
                    OrderKind::Optional => "Optional",
                };
                let _ = writeln!(
                    x,
                    "<rsc_order id=\"{id}\" first=\"{}-clone\" then=\"{}-clone\" kind=\"{kind}\" symmetrical=\"{}\"/>",
                    o.first, o.then, o.symmetrical
                );
            }
        }
    }
    x.push_str("</constraints>\n</configuration>\n<status>\n");
    for (i, n) in spec.cluster.nodes.iter().enumerate() {
        let _ = writeln!(
            x,
            "<node_state id=\"{}\" uname=\"{}\" in_ccm=\"true\" crmd=\"online\" join=\"member\" expected=\"member\"/>",
            i + 1,
            n.name
        );
    }
    x.push_str("</status>\n</cib>\n");
    x
}
