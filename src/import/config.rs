//! Cluster-wide settings: `crm_config` properties, `rsc_defaults`, `op_defaults` and the
//! node list, into the `Cluster` document. Settings the CIB leaves out take Pacemaker's
//! defaults, written explicitly (stickiness 0, migration threshold INFINITY, failures
//! never expire), so the imported set behaves like the cluster it came from rather than
//! like a fresh quorate cluster.

use roxmltree::Node;

use super::{Ctx, is_true, nvpairs, xml};
use crate::spec::cluster::{NoQuorumPolicy, PlacementStrategy};
use crate::spec::{Duration, Name, Score};

/// A handler of one `crm_config` property: the context, its value, its nvpair.
type Property = for<'a, 'i> fn(&mut Ctx<'_>, &str, Node<'a, 'i>);

/// The cluster properties quorate carries over or reports.
const PROPERTIES: &[(&str, Property)] = &[
    ("cluster-name", cluster_name),
    ("stonith-enabled", stonith_enabled),
    ("stonith-timeout", stonith_timeout),
    ("stonith-action", stonith_action),
    ("no-quorum-policy", no_quorum_policy),
    ("symmetric-cluster", symmetric_cluster),
    ("placement-strategy", placement_strategy),
    ("maintenance-mode", maintenance_mode),
    ("start-failure-is-fatal", start_failure_is_fatal),
    ("cluster-recheck-interval", recheck_interval),
    ("stop-all-resources", stop_all_resources),
];

/// Properties about Pacemaker's own daemons, which have no meaning for quorate.
const DAEMON_PROPERTIES: &[&str] = &[
    "dc-version",
    "cluster-infrastructure",
    "have-watchdog",
    "last-lrm-refresh",
    "enable-startup-probes",
    "dc-deadtime",
    "election-timeout",
    "shutdown-escalation",
    "join-integration-timeout",
    "join-finalization-timeout",
    "transition-delay",
    "batch-limit",
    "migration-limit",
    "pe-error-series-max",
    "pe-warn-series-max",
    "pe-input-series-max",
    "cluster-ipc-limit",
    "load-threshold",
    "node-action-limit",
    "concurrent-fencing",
    "priority-fencing-delay",
    "stonith-max-attempts",
    "stonith-watchdog-timeout",
];

/// The `crm_config` section.
pub(super) fn crm_config(ctx: &mut Ctx<'_>, node: Node<'_, '_>) {
    ctx.draft.cluster_origin.push(ctx.origin(node));
    for (name, value, nv) in nvpairs(ctx, node, "cluster_property_set") {
        if let Some((_, handle)) = PROPERTIES.iter().find(|(n, _)| *n == name) {
            handle(ctx, value, nv);
        } else if !DAEMON_PROPERTIES.contains(&name) {
            ctx.not_carried(
                nv,
                format!(
                    "the cluster property `{}` is not carried over: quorate has no counterpart",
                    xml::truncate(name)
                ),
                "see docs/import.md for what each property becomes",
            );
        }
    }
}

fn cluster_name(ctx: &mut Ctx<'_>, value: &str, nv: Node<'_, '_>) {
    let Some(name) = super::names::sanitize(value) else {
        return;
    };
    if name.as_str() != value {
        ctx.adjusted(
            nv,
            format!("the cluster `{}` is called `{name}`", xml::truncate(value)),
            "quorate names are lower-case letters, digits and `-`",
        );
    }
    ctx.draft.cluster_name = Some(name);
}

fn stonith_enabled(ctx: &mut Ctx<'_>, value: &str, _: Node<'_, '_>) {
    ctx.draft.stonith_disabled = !is_true(value);
    ctx.draft.cluster.fencing.enabled = is_true(value);
}

fn stonith_timeout(ctx: &mut Ctx<'_>, value: &str, nv: Node<'_, '_>) {
    if let Some(d) = duration(ctx, value, nv) {
        ctx.draft.cluster.fencing.timeout = d;
    }
}

fn stonith_action(ctx: &mut Ctx<'_>, value: &str, nv: Node<'_, '_>) {
    if value != "off" && value != "poweroff" {
        ctx.adjusted(
            nv,
            format!(
                "stonith-action `{}` becomes a power off: quorate fences by powering off and confirming off",
                xml::truncate(value)
            ),
            "power the node back on by hand (`quorate fence NODE --action on`) after checking it",
        );
    }
}

fn no_quorum_policy(ctx: &mut Ctx<'_>, value: &str, nv: Node<'_, '_>) {
    let policy = match value {
        "freeze" => NoQuorumPolicy::Freeze,
        "stop" => NoQuorumPolicy::Stop,
        "ignore" => NoQuorumPolicy::Ignore,
        other => {
            ctx.not_carried(
                nv,
                format!(
                    "no-quorum-policy `{}` is not carried over: quorate knows freeze, stop and ignore",
                    xml::truncate(other)
                ),
                "the import keeps Pacemaker's default `stop`; choose freeze or stop",
            );
            NoQuorumPolicy::Stop
        }
    };
    ctx.draft.cluster.quorum.no_quorum_policy = policy;
}

fn symmetric_cluster(ctx: &mut Ctx<'_>, value: &str, nv: Node<'_, '_>) {
    if !is_true(value) {
        ctx.not_yet(
            nv,
            "opt-in clusters (symmetric-cluster=false)",
            "bundles may run on every node: add a -INFINITY location on the nodes each bundle must avoid",
        );
    }
}

fn placement_strategy(ctx: &mut Ctx<'_>, value: &str, nv: Node<'_, '_>) {
    let strategy = match value.to_ascii_lowercase().as_str() {
        "default" => PlacementStrategy::Default,
        "utilization" => PlacementStrategy::Utilization,
        "balanced" => PlacementStrategy::Balanced,
        "minimal" => PlacementStrategy::Minimal,
        _ => {
            return ctx.not_carried(
                nv,
                format!(
                    "placement-strategy `{}` is not one of default, utilization, balanced, minimal",
                    xml::truncate(value)
                ),
                "set placementStrategy in the Cluster by hand",
            );
        }
    };
    ctx.draft.cluster.placement_strategy = strategy;
}

/// The `utilization` sets of `node` (a node's capacity, a resource's needs) into `into`:
/// each name made a quantity name (lower case), each value a non-negative integer.
pub(crate) fn utilization(
    ctx: &mut Ctx<'_>,
    node: Node<'_, '_>,
    into: &mut std::collections::BTreeMap<Name, u64>,
) {
    for (key, value, nv) in nvpairs(ctx, node, "utilization") {
        let name = key.to_ascii_lowercase().parse::<Name>();
        match (name, value.trim().parse::<u64>()) {
            (Ok(name), Ok(amount)) => {
                into.insert(name, amount);
            }
            _ => ctx.not_carried(
                nv,
                format!(
                    "the utilization `{}={}` is not a quantity name with a non-negative integer",
                    xml::truncate(key),
                    xml::truncate(value)
                ),
                "write it as a name of lower-case letters, digits and `-` with a whole number, in capacity or needs",
            ),
        }
    }
}

fn maintenance_mode(ctx: &mut Ctx<'_>, value: &str, nv: Node<'_, '_>) {
    if is_true(value) {
        ctx.not_yet(
            nv,
            "maintenance mode",
            "stop `quorate run` while you work on the cluster instead",
        );
    }
}

fn start_failure_is_fatal(ctx: &mut Ctx<'_>, value: &str, nv: Node<'_, '_>) {
    if !is_true(value) {
        ctx.not_yet(
            nv,
            "start-failure-is-fatal",
            "failed starts count towards migrationThreshold like other failures",
        );
    }
}

fn recheck_interval(ctx: &mut Ctx<'_>, value: &str, nv: Node<'_, '_>) {
    match duration(ctx, value, nv) {
        Some(d) if !d.is_zero() => ctx.draft.cluster.defaults.recheck_interval = d,
        Some(_) => ctx.adjusted(
            nv,
            "cluster-recheck-interval 0 (disabled) becomes quorate's default, 60s".into(),
            "the reconciler always passes at least this often",
        ),
        None => {}
    }
}

fn stop_all_resources(ctx: &mut Ctx<'_>, value: &str, nv: Node<'_, '_>) {
    if is_true(value) {
        ctx.not_yet(
            nv,
            "switch that stops every bundle",
            "set replicas: 0 on the bundles that should stop",
        );
    }
}

/// The meta attributes of `rsc_defaults`.
pub(super) fn rsc_defaults(ctx: &mut Ctx<'_>, node: Node<'_, '_>) {
    ctx.draft.cluster_origin.push(ctx.origin(node));
    for (name, value, nv) in nvpairs(ctx, node, "meta_attributes") {
        ctx.draft
            .rsc_defaults
            .insert(name.to_owned(), value.to_owned());
        match name {
            "resource-stickiness" | "default-resource-stickiness" => {
                if let Some(s) = score(ctx, value, nv) {
                    ctx.draft.cluster.defaults.stickiness = s;
                }
            }
            "migration-threshold" => {
                if let Some(n) = threshold(ctx, value, nv) {
                    ctx.draft.cluster.defaults.migration_threshold = n;
                }
            }
            "failure-timeout" => {
                if let Some(d) = duration(ctx, value, nv) {
                    ctx.draft.cluster.defaults.failure_timeout = d;
                }
            }
            other => ctx.not_carried(
                nv,
                format!(
                    "the resource default `{}` is not carried over",
                    xml::truncate(other)
                ),
                "set it on each bundle, where quorate has it (see docs/import.md)",
            ),
        }
    }
}

/// `op_defaults`: an operation `timeout` becomes the monitors' timeout where they give
/// none; the rest is reported.
pub(super) fn op_defaults(ctx: &mut Ctx<'_>, node: Node<'_, '_>) {
    for (name, value, nv) in nvpairs(ctx, node, "meta_attributes") {
        match name {
            "timeout" => {
                if let Some(d) = duration(ctx, value, nv) {
                    ctx.draft.op_timeout = Some(d);
                }
            }
            other => ctx.not_carried(
                nv,
                format!(
                    "the operation default `{}` is not carried over",
                    xml::truncate(other)
                ),
                "set it in each bundle's monitor, where quorate has it",
            ),
        }
    }
}

/// The `<nodes>` section.
pub(super) fn nodes(ctx: &mut Ctx<'_>, node: Node<'_, '_>) {
    ctx.draft.cluster_origin.push(ctx.origin(node));
    for n in node.children().filter(|c| c.is_element()) {
        if !n.has_tag_name("node") {
            ctx.not_carried(
                n,
                format!("{} is not a node", xml::describe(n)),
                "remove it",
            );
            continue;
        }
        one_node(ctx, n);
    }
}

fn one_node(ctx: &mut Ctx<'_>, n: Node<'_, '_>) {
    let uname = n.attribute("uname").or(n.attribute("id")).unwrap_or("");
    match n.attribute("type") {
        None | Some("member") | Some("normal") => {}
        Some(other) => {
            ctx.not_yet(
                n,
                &format!("{other} nodes (Pacemaker Remote and guest nodes)"),
                "give quorate the machine as a node with its own container runtime",
            );
            return;
        }
    }
    let Some(name) = ctx.name(n, uname, |d| &mut d.node_names) else {
        return;
    };
    let mut spec = crate::spec::cluster::NodeSpec {
        name: name.clone(),
        runtime: placeholder_endpoint(),
        insecure: false,
        tls: None,
        ssh: None,
        votes: 1,
        attributes: Default::default(),
        standby: false,
        capacity: Default::default(),
    };
    for (key, value, nv) in nvpairs(ctx, n, "instance_attributes") {
        match key {
            "standby" => spec.standby = is_true(value),
            "maintenance" if is_true(value) => ctx.not_yet(
                nv,
                "maintenance mode for a node",
                "put the node in standby instead (standby: true)",
            ),
            _ => {
                spec.attributes.insert(key.to_owned(), value.to_owned());
            }
        }
    }
    utilization(ctx, n, &mut spec.capacity);
    ctx.draft.nodes.insert(uname.to_owned(), name.clone());
    if let Some(id) = n.attribute("id") {
        ctx.draft.node_ids.insert(id.to_owned(), name);
    }
    ctx.draft.cluster.nodes.push(spec);
}

fn placeholder_endpoint() -> crate::spec::endpoint::Endpoint {
    // Replaced in `finish` once the bundles' runtime is known; this literal parses.
    "podman+unix:///run/podman/podman.sock"
        .parse()
        .unwrap_or_else(|_| unreachable!("a constant endpoint parses"))
}

/// Settles what depends on everything read: the nodes' runtime endpoints, the
/// tie-breaker of a two-node cluster, the cluster's name.
pub(super) fn finish(ctx: &mut Ctx<'_>) {
    let kind = if !ctx.draft.runtimes.is_empty() && ctx.draft.runtimes.iter().all(|r| r == "docker")
    {
        "docker"
    } else {
        "podman"
    };
    let hosts: Vec<(usize, String)> = ctx
        .draft
        .nodes
        .iter()
        .filter_map(|(uname, name)| {
            let i = ctx
                .draft
                .cluster
                .nodes
                .iter()
                .position(|n| &n.name == name)?;
            Some((i, uname.clone()))
        })
        .collect();
    for (i, uname) in hosts {
        let node = &mut ctx.draft.cluster.nodes[i];
        node.runtime = [uname.as_str(), node.name.as_str()]
            .iter()
            .find_map(|host| format!("{kind}+ssh://root@{host}").parse().ok())
            .unwrap_or_else(placeholder_endpoint);
    }
    if !ctx.draft.cluster.nodes.is_empty() {
        ctx.general(
            format!(
                "the CIB does not say where each node's container runtime listens: every node gets `{kind}+ssh://root@<node>`"
            ),
            "set each node's `runtime` (and `ssh` key) in cluster.yaml",
        );
    }
    if ctx.draft.cluster.nodes.len() == 2 {
        ctx.draft.cluster.quorum.reconciler_votes = 1;
        ctx.general(
            "a two-node cluster gets `reconcilerVotes: 1`, quorate's tie-breaker (corosync's `two_node` has no CIB form)".into(),
            "run `quorate run` on a third machine, or remove the vote and accept that one node alone has no quorum",
        );
    }
}

/// A Pacemaker interval or timeout (`30`, `30s`, `500ms`, `5min`, `1h`, `PT1M30S`).
pub(super) fn parse_duration(value: &str) -> Option<Duration> {
    let v = value.trim();
    if let Some(iso) = v.strip_prefix("PT").or(v.strip_prefix("pt")) {
        return iso_duration(iso);
    }
    let digits = v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len());
    let n: u64 = v[..digits].parse().ok()?;
    let ms = match v[digits..].trim() {
        "" | "s" | "sec" => n.checked_mul(1000)?,
        "ms" | "msec" => n,
        "us" | "usec" => n / 1000,
        "m" | "min" => n.checked_mul(60_000)?,
        "h" | "hr" => n.checked_mul(3_600_000)?,
        _ => return None,
    };
    let d = std::time::Duration::from_millis(ms);
    (d <= Duration::MAX).then(|| Duration::from(d))
}

fn iso_duration(s: &str) -> Option<Duration> {
    let mut total = 0u64;
    let mut num = String::new();
    for c in s.chars() {
        if c.is_ascii_digit() {
            num.push(c);
            continue;
        }
        let n: u64 = std::mem::take(&mut num).parse().ok()?;
        let unit = match c.to_ascii_uppercase() {
            'H' => 3600,
            'M' => 60,
            'S' => 1,
            _ => return None,
        };
        total = total.checked_add(n.checked_mul(unit)?)?;
    }
    let d = std::time::Duration::from_secs(total);
    (num.is_empty() && d <= Duration::MAX).then(|| Duration::from(d))
}

/// A duration, or a finding on `nv`.
pub(super) fn duration(ctx: &mut Ctx<'_>, value: &str, nv: Node<'_, '_>) -> Option<Duration> {
    let d = parse_duration(value);
    if d.is_none() {
        ctx.not_carried(
            nv,
            format!(
                "`{}` is not a duration quorate reads (at most a year)",
                xml::truncate(value)
            ),
            "write it as seconds, or with ms, s, min or h",
        );
    }
    d
}

/// A score, or a finding on `nv`.
pub(super) fn score(ctx: &mut Ctx<'_>, value: &str, nv: Node<'_, '_>) -> Option<Score> {
    let s = value.trim().to_ascii_uppercase().parse::<Score>().ok();
    if s.is_none() {
        ctx.not_carried(
            nv,
            format!("`{}` is not a score", xml::truncate(value)),
            "write an integer, INFINITY or -INFINITY",
        );
    }
    s
}

/// A migration threshold, or a finding on `nv`.
pub(super) fn threshold(ctx: &mut Ctx<'_>, value: &str, nv: Node<'_, '_>) -> Option<u32> {
    let n = threshold_of(value);
    if n.is_none() {
        ctx.not_carried(
            nv,
            format!("`{}` is not a migration threshold", xml::truncate(value)),
            "write a whole number or INFINITY",
        );
    }
    n
}

/// A migration threshold: a whole number, `INFINITY` (and Pacemaker's 0, which turns the
/// threshold off) as 1,000,000.
pub(super) fn threshold_of(value: &str) -> Option<u32> {
    let s = value.trim().to_ascii_uppercase().parse::<Score>().ok()?;
    let infinite = u32::try_from(Score::INFINITY_VALUE).ok();
    match s.value() {
        0 => infinite,
        v if s.is_infinity() => u32::try_from(v).ok(),
        v if v < 0 => None,
        v => u32::try_from(v).ok(),
    }
}

/// An empty draft with Pacemaker's defaults where they differ from quorate's: no
/// stickiness, a migration threshold of INFINITY, failures that never expire,
/// `no-quorum-policy=stop`.
pub(super) fn pacemaker_defaults() -> super::Draft {
    let mut draft = super::Draft::default();
    let d = &mut draft.cluster.defaults;
    d.stickiness = Score::ZERO;
    d.migration_threshold = u32::try_from(Score::INFINITY_VALUE).unwrap_or(u32::MAX);
    d.failure_timeout = Duration::from_secs(0);
    draft.cluster.quorum.no_quorum_policy = NoQuorumPolicy::Stop;
    draft
}

/// The name the cluster gets when the CIB has no `cluster-name`.
pub(super) fn default_cluster_name() -> Name {
    Name::from_static("pacemaker")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pacemaker_durations_parse() {
        let ms = |s: &str| parse_duration(s).map(|d| d.get().as_millis());
        assert_eq!(ms("30"), Some(30_000));
        assert_eq!(ms("30s"), Some(30_000));
        assert_eq!(ms("500ms"), Some(500));
        assert_eq!(ms("5min"), Some(300_000));
        assert_eq!(ms("2h"), Some(7_200_000));
        assert_eq!(ms("PT1M30S"), Some(90_000));
        assert_eq!(ms("0"), Some(0));
        assert_eq!(ms("10 s"), Some(10_000));
        assert_eq!(ms("ten"), None);
        assert_eq!(ms("5d"), None);
        assert_eq!(ms("99999999999h"), None);
        assert_eq!(ms("PT5X"), None);
    }
}
