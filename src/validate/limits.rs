//! How much one spec set may ask for. The reconciler keeps every instance, node and
//! published port of the commit in force in memory and plans them on every pass, so a
//! commit that asks for a billion replicas must be refused here, not discovered when
//! `quorate run` is killed for want of memory (design invariant 10). The limits are those
//! of the largest cluster the planner is measured on (10,000 nodes, 100,000 instances).
//!
//! A set over a limit is refused before the other meaning checks run: several of them
//! cost time or memory in proportion to what is asked for. The number of documents, files
//! and bytes of a set is bounded where the set is read (`source::budget`), not here.

use super::Findings;
use crate::diag::Diagnostic;
use crate::spec::{Kind, SpecSet};

/// Most nodes in the Cluster: the planner benchmark's huge cluster.
pub const MAX_NODES: usize = 10_000;
/// Most replicas of one bundle.
pub const MAX_REPLICAS: u32 = 10_000;
/// Largest `replicasPerHost`: more than [`MAX_REPLICAS`] would mean nothing more.
pub const MAX_REPLICAS_PER_HOST: u32 = MAX_REPLICAS;
/// Most instances of all bundles together.
pub const MAX_INSTANCES: u64 = 100_000;
/// Most published ports of all instances together: every port a bundle publishes counts
/// once per instance (once for a bundle with no replicas, whose ranges are still read).
pub const MAX_PUBLISHED_PORTS: u64 = 1_000_000;
/// Most distinct quantities in the nodes' `capacity` and the bundles' `needs` together:
/// placement keeps what each node has free of each.
pub const MAX_QUANTITIES: usize = 64;
/// Most pairs of bundles the resource sets of all constraints expand into (two sets of
/// 1,000 bundles that are not sequential already make 1,000,000).
pub const MAX_SET_PAIRS: u64 = 100_000;

/// Reports every limit the set goes over; returns whether it went over any.
pub(super) fn check(set: &SpecSet, f: &mut Findings) -> bool {
    let before = f.diags.len();
    nodes(set, f);
    bundles(set, f);
    quantities(set, f);
    set_pairs(set, f);
    f.diags.len() > before
}

fn nodes(set: &SpecSet, f: &mut Findings) {
    let count = set.cluster.nodes.len();
    if count <= MAX_NODES {
        return;
    }
    f.push(
        Diagnostic::error(
            "quorate::limit::nodes",
            format!("the cluster lists {count} nodes; quorate manages at most {MAX_NODES}"),
        )
        .with_help("list at most that many nodes; this is the first one beyond the limit"),
        Kind::Cluster,
        set.cluster_name.as_str(),
        &format!("spec.nodes.{MAX_NODES}"),
    );
}

/// The pairs resource sets expand into, reported at the constraint that takes the total
/// over.
fn set_pairs(set: &SpecSet, f: &mut Findings) {
    let mut total: u64 = 0;
    for (name, c) in &set.constraints {
        total = total.saturating_add(crate::spec::expand::pair_count(c));
        if total > MAX_SET_PAIRS {
            f.push(
                Diagnostic::error(
                    "quorate::limit::set-pairs",
                    format!("the resource sets of the constraints make more than {MAX_SET_PAIRS} pairs of bundles with this one"),
                )
                .with_help("make long sets sequential (a chain makes one pair per bundle), or split the bundles into groups"),
                Kind::Constraint,
                name.as_str(),
                "spec",
            );
            return;
        }
    }
}

/// Replicas, replicasPerHost, and the totals of instances and published ports, which are
/// reported at the bundle (in name order) that takes them over.
fn bundles(set: &SpecSet, f: &mut Findings) {
    let mut instances: u64 = 0;
    let mut ports: u64 = 0;
    let (mut instances_over, mut ports_over) = (false, false);
    for (name, b) in &set.bundles {
        let n = name.as_str();
        if b.replicas > MAX_REPLICAS {
            f.push(
                Diagnostic::error(
                    "quorate::limit::replicas",
                    format!(
                        "bundle `{n}` asks for {} replicas; quorate runs at most {MAX_REPLICAS} instances of one bundle",
                        b.replicas
                    ),
                )
                .with_help(format!("lower replicas to {MAX_REPLICAS} or fewer")),
                Kind::Bundle,
                n,
                "spec.replicas",
            );
        }
        if b.replicas_per_host > MAX_REPLICAS_PER_HOST {
            f.push(
                Diagnostic::error(
                    "quorate::limit::replicas-per-host",
                    format!(
                        "bundle `{n}` has replicasPerHost {}; the largest quorate accepts is {MAX_REPLICAS_PER_HOST}",
                        b.replicas_per_host
                    ),
                )
                .with_help(format!(
                    "lower replicasPerHost to {MAX_REPLICAS_PER_HOST} or fewer (no bundle has more replicas than that)"
                )),
                Kind::Bundle,
                n,
                "spec.replicasPerHost",
            );
        }
        instances += u64::from(b.replicas);
        if instances > MAX_INSTANCES && !instances_over {
            instances_over = true;
            f.push(
                Diagnostic::error(
                    "quorate::limit::instances",
                    format!(
                        "with the {} replicas of `{n}` the spec set asks for {instances} instances or more; quorate runs at most {MAX_INSTANCES} in one cluster",
                        b.replicas
                    ),
                )
                .with_help("lower the replicas of this or other bundles"),
                Kind::Bundle,
                n,
                "spec.replicas",
            );
        }
        ports += per_instance_ports(b) * u64::from(b.replicas.max(1));
        if ports > MAX_PUBLISHED_PORTS && !ports_over {
            ports_over = true;
            f.push(
                Diagnostic::error(
                    "quorate::limit::ports",
                    format!(
                        "with the {} port(s) `{n}` publishes per instance, the spec set publishes {ports} host ports or more; quorate allows at most {MAX_PUBLISHED_PORTS} (every port counts once per instance)",
                        per_instance_ports(b)
                    ),
                )
                .with_help("publish smaller port ranges, or fewer replicas of the bundles with large ranges"),
                Kind::Bundle,
                n,
                "spec.network.ports",
            );
        }
    }
}

/// Distinct capacity quantities, reported at the first node, else bundle (in name
/// order), that names one beyond the limit.
fn quantities(set: &SpecSet, f: &mut Findings) {
    let mut seen = std::collections::BTreeSet::new();
    let nodes = set.cluster.nodes.iter().enumerate().map(|(i, n)| {
        let at = (
            Kind::Cluster,
            set.cluster_name.as_str(),
            format!("spec.nodes.{i}.capacity"),
        );
        (&n.capacity, at)
    });
    let bundles = set.bundles.iter().map(|(name, b)| {
        (
            &b.needs,
            (Kind::Bundle, name.as_str(), "spec.needs".to_owned()),
        )
    });
    for (map, (kind, name, path)) in nodes.chain(bundles) {
        seen.extend(map.keys());
        if seen.len() > MAX_QUANTITIES {
            f.push(
                Diagnostic::error(
                    "quorate::limit::quantities",
                    format!("the spec set names more than {MAX_QUANTITIES} capacity quantities; this is where it goes over"),
                )
                .with_help("use fewer quantity names in the nodes' capacity and the bundles' needs"),
                kind,
                name,
                &path,
            );
            return;
        }
    }
}

/// Host ports one instance of `b` publishes: one per `port`, the length of each `range`.
fn per_instance_ports(b: &crate::spec::BundleSpec) -> u64 {
    b.network
        .iter()
        .flat_map(|n| &n.ports)
        .filter_map(|m| m.published())
        .map(|(_, _, count)| u64::from(count))
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::Sources;
    use crate::source::budget::thousands;

    const CLUSTER: &str = "apiVersion: quorate.io/v1alpha1
kind: Cluster
metadata: {name: c}
spec:
  nodes: [{name: n1, runtime: 'podman+unix:///n1.sock'}]
  fencing: {enabled: false}
";

    fn bundle(name: &str, spec: &str) -> String {
        format!(
            "---\napiVersion: quorate.io/v1alpha1\nkind: Bundle\nmetadata: {{name: {name}}}\nspec: {{image: i, recovery: restart, {spec}}}\n"
        )
    }

    fn codes(text: &str) -> Vec<(&'static str, u32)> {
        let mut sources = Sources::new();
        sources.add("s.yaml", text.as_bytes().to_vec());
        let report = crate::validate::validate(&sources);
        report
            .diagnostics
            .iter()
            .filter(|d| d.is_error())
            .map(|d| {
                (
                    d.code,
                    d.location.and_then(|l| l.span).map_or(0, |s| s.line),
                )
            })
            .collect()
    }

    fn line_of(text: &str, marker: &str) -> u32 {
        let at = text.find(marker).unwrap();
        u32::try_from(text[..at].matches('\n').count() + 1).unwrap()
    }

    #[test]
    fn replicas_and_replicas_per_host_at_the_limit_pass_and_one_more_is_refused() {
        let at = format!(
            "{CLUSTER}{}",
            bundle(
                "web",
                &format!("replicas: {MAX_REPLICAS}, replicasPerHost: {MAX_REPLICAS_PER_HOST}")
            )
        );
        assert_eq!(codes(&at), []);
        let over = format!(
            "{CLUSTER}{}",
            bundle(
                "web",
                &format!(
                    "replicas: {}, replicasPerHost: {}",
                    MAX_REPLICAS + 1,
                    MAX_REPLICAS_PER_HOST + 1
                )
            )
        );
        let line = line_of(&over, "spec: {image");
        assert_eq!(
            codes(&over),
            [
                ("quorate::limit::replicas", line),
                ("quorate::limit::replicas-per-host", line)
            ]
        );
    }

    /// Issue 12: this set passed `validate --strict`, and `quorate run` was killed for want
    /// of memory planning it, at start and after every restart.
    #[test]
    fn a_billion_replicas_are_refused() {
        let text = format!(
            "{CLUSTER}{}",
            bundle("web", "replicas: 1000000000, replicasPerHost: 1000000000")
        );
        let line = line_of(&text, "spec: {image");
        assert_eq!(
            codes(&text),
            [
                ("quorate::limit::instances", line),
                ("quorate::limit::replicas", line),
                ("quorate::limit::replicas-per-host", line),
            ]
        );
    }

    #[test]
    fn the_total_of_instances_is_refused_at_the_bundle_that_goes_over() {
        let per = u32::try_from(MAX_INSTANCES / 10).unwrap();
        let mut text = String::from(CLUSTER);
        for i in 0..10 {
            text += &bundle(
                &format!("b{i}"),
                &format!("replicas: {per}, replicasPerHost: {per}"),
            );
        }
        assert_eq!(codes(&text), [], "exactly at the limit");
        text += &bundle("extra", "replicas: 1");
        assert_eq!(
            codes(&text),
            [(
                "quorate::limit::instances",
                line_of(&text, "name: extra}") + 1
            )]
        );
    }

    #[test]
    fn published_ports_count_once_per_instance() {
        // 1,000 instances publishing a 1,000-port range each: exactly the limit.
        let cluster = CLUSTER.replace(
            "  fencing:",
            "  networks: [{name: x, subnet: 10.0.0.0/8}]\n  fencing:",
        );
        let rtp = |replicas: u32| {
            bundle(
                "rtp",
                &format!(
                    "replicas: {replicas}, replicasPerHost: 2000, network: {{name: x, ipRangeStart: 10.0.0.1, ports: [{{range: 20000-20999}}]}}"
                ),
            )
        };
        let at = format!("{cluster}{}", rtp(1000));
        assert_eq!(codes(&at), [], "{at}");
        let over = format!("{cluster}{}", rtp(1001));
        assert_eq!(
            codes(&over),
            [("quorate::limit::ports", line_of(&over, "spec: {image"))]
        );
    }

    #[test]
    fn too_many_nodes_are_refused_at_the_first_one_beyond_the_limit() {
        let mut text = String::from(
            "apiVersion: quorate.io/v1alpha1\nkind: Cluster\nmetadata: {name: c}\nspec:\n  fencing: {enabled: false}\n  nodes:\n",
        );
        for i in 0..=MAX_NODES {
            text += &format!("    - {{name: n{i}, runtime: 'podman+unix:///n{i}.sock'}}\n");
        }
        assert_eq!(
            codes(&text),
            [(
                "quorate::limit::nodes",
                line_of(&text, &format!("name: n{MAX_NODES},"))
            )]
        );
    }

    #[test]
    fn every_limit_is_in_the_docs_with_its_value() {
        let docs = include_str!("../../docs/validate.md");
        for (code, value) in [
            ("quorate::limit::nodes", MAX_NODES as u64),
            ("quorate::limit::replicas", u64::from(MAX_REPLICAS)),
            (
                "quorate::limit::replicas-per-host",
                u64::from(MAX_REPLICAS_PER_HOST),
            ),
            ("quorate::limit::instances", MAX_INSTANCES),
            ("quorate::limit::ports", MAX_PUBLISHED_PORTS),
            ("quorate::limit::set-pairs", MAX_SET_PAIRS),
        ] {
            let value = thousands(value);
            let row = docs.lines().find(|l| {
                l.starts_with('|') && l.contains(&format!("`{code}`")) && l.contains(&value)
            });
            assert!(
                row.is_some(),
                "docs/validate.md has no limit row with `{code}` and {value}"
            );
        }
    }
}
