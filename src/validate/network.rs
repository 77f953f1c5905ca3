//! The shape of each bundle beyond what types say: addresses, ports, storage, environment.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use super::Findings;
use crate::diag::Diagnostic;
use crate::spec::bundle::{BundleSpec, PortMapping, Promotable};
use crate::spec::{Kind, Name, SpecSet};

pub(crate) const MOUNT_OPTIONS: &[&str] = &[
    "rw", "ro", "z", "Z", "noexec", "nosuid", "nodev", "bind", "rbind", "shared", "rshared",
    "slave", "rslave", "private", "rprivate",
];

pub(super) fn check(set: &SpecSet, f: &mut Findings) {
    subnets(set, f);
    let mut ranges: Vec<(&Name, u32, u32)> = Vec::new();
    for (name, b) in &set.bundles {
        let n = name.as_str();
        basics(n, b, f);
        storage(n, b, f);
        if let Some(net) = &b.network {
            for (i, p) in net.ports.iter().enumerate() {
                port(n, i, p, f);
            }
            if let Some(start) = net.ip_range_start {
                if let Some(range) = address_range(set, n, b, start, f) {
                    ranges.push((name, range.0, range.1));
                }
            } else if b.replicas_per_host > 1 && !net.ports.is_empty() {
                f.push(
                    Diagnostic::error(
                        "quorate::network::port-clash",
                        "several instances on one node would publish the same host ports",
                    )
                    .with_help("give the bundle an ipRangeStart so each instance has its own address, or set replicasPerHost: 1"),
                    Kind::Bundle,
                    n,
                    "spec.replicasPerHost",
                );
            }
        }
    }
    overlaps(ranges, f);
    host_port_clashes(set, f);
}

/// Address ranges that overlap one before them, by start (then name): each is reported
/// once, beside the range before it that reaches furthest, not beside every range it
/// overlaps (which is quadratic when many share one address).
fn overlaps(mut ranges: Vec<(&Name, u32, u32)>, f: &mut Findings) {
    ranges.sort_by_key(|(name, first, _)| (*first, *name));
    let mut furthest: Option<(&Name, u32, u32)> = None;
    for b in ranges {
        if let Some(a) = furthest
            && b.1 <= a.2
        {
            f.push_related(
                Diagnostic::error(
                    "quorate::network::ip-overlap",
                    format!(
                        "the addresses of `{}` ({}-{}) overlap those of `{}` ({}-{})",
                        b.0,
                        Ipv4Addr::from(b.1),
                        Ipv4Addr::from(b.2),
                        a.0,
                        Ipv4Addr::from(a.1),
                        Ipv4Addr::from(a.2)
                    ),
                )
                .with_help("move one ipRangeStart so the ranges (start + replicas) do not overlap"),
                (Kind::Bundle, b.0.as_str(), "spec.network.ipRangeStart"),
                (
                    Kind::Bundle,
                    a.0.as_str(),
                    "spec.network.ipRangeStart",
                    "the other range starts here",
                ),
            );
        }
        if furthest.is_none_or(|a| b.2 > a.2) {
            furthest = Some(b);
        }
    }
}

/// A subnet is written with its network address: `10.88.10.5/24` is either a typo or an
/// address taken for a network, and runtimes refuse it or silently widen it.
fn subnets(set: &SpecSet, f: &mut Findings) {
    for (i, net) in set.cluster.networks.iter().enumerate() {
        let network = net.subnet.network();
        if network != net.subnet {
            f.push(
                Diagnostic::error(
                    "quorate::network::subnet-host-bits",
                    format!(
                        "subnet {} of network `{}` has host bits set: {} is an address in {network}, not a network address",
                        net.subnet, net.name, net.subnet.addr
                    ),
                )
                .with_help(format!("write the network address: `subnet: {network}`")),
                Kind::Cluster,
                set.cluster_name.as_str(),
                &format!("spec.networks.{i}.subnet"),
            );
        }
    }
}

/// A promotable bundle: limits of at least 1, commands that name a program.
fn promotable(n: &str, b: &BundleSpec, p: &Promotable, f: &mut Findings) {
    let limits = [
        (p.max_promoted, "maxPromoted"),
        (p.max_promoted_per_node, "maxPromotedPerNode"),
    ];
    for (value, field) in limits {
        if value == 0 {
            f.push(
                Diagnostic::error(
                    "quorate::bundle::promotable-limit",
                    format!("promotable.{field} must be at least 1"),
                )
                .with_help(
                    "use 1 for one primary; a bundle with no primary need not be promotable",
                ),
                Kind::Bundle,
                n,
                &format!("spec.promotable.{field}"),
            );
        }
    }
    if p.max_promoted > b.replicas {
        f.push(
            Diagnostic::warning(
                "quorate::bundle::promotable-limit",
                format!(
                    "promotable.maxPromoted ({}) is more than the bundle's replicas ({})",
                    p.max_promoted, b.replicas
                ),
            )
            .with_help("at most `replicas` instances can be promoted; lower maxPromoted"),
            Kind::Bundle,
            n,
            "spec.promotable.maxPromoted",
        );
    }
    let commands = [
        (Some(&p.promote), "promote"),
        (Some(&p.demote), "demote"),
        (Some(&p.role), "role"),
        (p.preference.as_ref(), "preference"),
    ];
    for (command, field) in commands {
        if command.is_some_and(|c| c.first().is_none_or(|p| p.trim().is_empty())) {
            f.push(
                Diagnostic::error(
                    "quorate::bundle::promotable-command",
                    format!("promotable.{field} is empty"),
                )
                .with_help("list the program to run in the container and its arguments"),
                Kind::Bundle,
                n,
                &format!("spec.promotable.{field}"),
            );
        }
    }
    if p.timeout.get().is_zero() {
        f.push(
            Diagnostic::error(
                "quorate::bundle::promotable-timeout",
                "promotable.timeout must be more than 0",
            )
            .with_help("give each command the time it needs, like `10s`"),
            Kind::Bundle,
            n,
            "spec.promotable.timeout",
        );
    }
}

fn basics(n: &str, b: &BundleSpec, f: &mut Findings) {
    if b.image.trim().is_empty() {
        f.push(
            Diagnostic::error("quorate::bundle::image", "the image is empty")
                .with_help("name an image, like `docker.io/library/postgres:16`"),
            Kind::Bundle,
            n,
            "spec.image",
        );
    }
    if b.replicas_per_host == 0 {
        f.push(
            Diagnostic::error(
                "quorate::bundle::replicas-per-host",
                "replicasPerHost must be at least 1",
            )
            .with_help("use 1 to allow one instance per node"),
            Kind::Bundle,
            n,
            "spec.replicasPerHost",
        );
    }
    if b.update.max_parallel == 0 {
        f.push(
            Diagnostic::error(
                "quorate::bundle::max-parallel",
                "update.maxParallel must be at least 1",
            )
            .with_help("use 1 to restart one instance at a time"),
            Kind::Bundle,
            n,
            "spec.update.maxParallel",
        );
    }
    if b.command.as_ref().is_some_and(Vec::is_empty) {
        f.push(
            Diagnostic::error("quorate::bundle::command", "the command is empty").with_help(
                "remove `command` to use the image's, or list the program and its arguments",
            ),
            Kind::Bundle,
            n,
            "spec.command",
        );
    }
    if let Some(p) = &b.promotable {
        promotable(n, b, p, f);
    }
    env_names(n, b, f);
    monitor(n, b, f);
}

/// Every variable of `env` has a name a shell accepts.
fn env_names(n: &str, b: &BundleSpec, f: &mut Findings) {
    for key in b.env.keys() {
        let ok = key
            .bytes()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == b'_')
            && key.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_');
        if !ok {
            f.push(
                Diagnostic::error(
                    "quorate::bundle::env-name",
                    format!("`{key}` is not a valid environment variable name"),
                )
                .with_help("use letters, digits and `_`, not starting with a digit"),
                Kind::Bundle,
                n,
                &format!("spec.env.{key}"),
            );
        }
    }
}

/// A check that takes longer than its interval would overlap the next one.
fn monitor(n: &str, b: &BundleSpec, f: &mut Findings) {
    if b.monitor.timeout > b.monitor.interval {
        f.push(
            Diagnostic::warning(
                "quorate::monitor::timeout",
                format!(
                    "the monitor timeout ({}) is longer than its interval ({})",
                    b.monitor.timeout, b.monitor.interval
                ),
            )
            .with_help("checks would overlap; make the timeout shorter than the interval"),
            Kind::Bundle,
            n,
            "spec.monitor.timeout",
        );
    }
}

fn storage(n: &str, b: &BundleSpec, f: &mut Findings) {
    for (i, s) in b.storage.iter().enumerate() {
        let at = format!("spec.storage.{i}");
        if s.source_dir.is_some() == s.source_dir_root.is_some() {
            f.push(
                Diagnostic::error("quorate::storage::source", "a storage mapping needs exactly one of `sourceDir` or `sourceDirRoot`")
                    .with_help("sourceDir: one directory shared by all instances; sourceDirRoot: one directory per instance under it"),
                Kind::Bundle,
                n,
                &at,
            );
        }
        for (path, field) in [
            (s.source_dir.as_ref(), "sourceDir"),
            (s.source_dir_root.as_ref(), "sourceDirRoot"),
            (Some(&s.target_dir), "targetDir"),
        ] {
            if path.is_some_and(|p| !p.is_absolute()) {
                f.push(
                    Diagnostic::error(
                        "quorate::storage::relative-path",
                        format!("`{field}` must be an absolute path"),
                    )
                    .with_help("start the path with `/`"),
                    Kind::Bundle,
                    n,
                    &format!("{at}.{field}"),
                );
            }
        }
        if let Some(opts) = &s.options {
            let list: Vec<&str> = opts.split(',').map(str::trim).collect();
            let bad: Vec<&str> = list
                .iter()
                .copied()
                .filter(|o| !MOUNT_OPTIONS.contains(o))
                .collect();
            if !bad.is_empty() || (list.contains(&"rw") && list.contains(&"ro")) {
                f.push(
                    Diagnostic::error(
                        "quorate::storage::options",
                        format!("invalid mount options `{opts}`"),
                    )
                    .with_help(format!(
                        "use `rw` or `ro`, optionally with: {}",
                        MOUNT_OPTIONS[2..].join(", ")
                    )),
                    Kind::Bundle,
                    n,
                    &format!("{at}.options"),
                );
            }
        }
    }
}

fn port(n: &str, i: usize, p: &PortMapping, f: &mut Findings) {
    let at = format!("spec.network.ports.{i}");
    if p.port.is_some() == p.range.is_some() {
        f.push(
            Diagnostic::error(
                "quorate::network::port-mapping",
                "a port mapping needs exactly one of `port` or `range`",
            )
            .with_help("`port: 80` (optionally with internalPort), or `range: 8000-8010`"),
            Kind::Bundle,
            n,
            &at,
        );
    }
    if p.range.is_some() && p.internal_port.is_some() {
        f.push(
            Diagnostic::error(
                "quorate::network::port-mapping",
                "`internalPort` cannot be combined with `range`",
            )
            .with_help("a range is published one to one; remove internalPort"),
            Kind::Bundle,
            n,
            &format!("{at}.internalPort"),
        );
    }
}

/// The instance addresses of a bundle as a `u32` range, after checking them.
fn address_range(
    set: &SpecSet,
    n: &str,
    b: &BundleSpec,
    start: Ipv4Addr,
    f: &mut Findings,
) -> Option<(u32, u32)> {
    let path = "spec.network.ipRangeStart";
    let first = u32::from(start);
    let Some(last) = first.checked_add(b.replicas.saturating_sub(1)) else {
        f.push(
            Diagnostic::error(
                "quorate::network::ip-range",
                "the address range runs past 255.255.255.255",
            )
            .with_help("choose a lower ipRangeStart"),
            Kind::Bundle,
            n,
            path,
        );
        return None;
    };
    let net_name = b.network.as_ref().and_then(|x| x.name.as_ref());
    match net_name.and_then(|nn| set.cluster.networks.iter().find(|x| x.name == *nn)) {
        Some(net) => {
            let outside = !net.subnet.contains(start) || !net.subnet.contains(Ipv4Addr::from(last));
            let reserved = [
                u32::from(net.subnet.addr),
                u32::from(net.subnet.broadcast()),
            ];
            if outside
                || (net.subnet.prefix < 31 && reserved.iter().any(|r| (first..=last).contains(r)))
            {
                f.push(
                    Diagnostic::error(
                        "quorate::network::ip-range",
                        format!(
                            "the addresses {}-{} do not fit in network `{}` ({})",
                            start,
                            Ipv4Addr::from(last),
                            net.name,
                            net.subnet
                        ),
                    )
                    .with_help("choose an ipRangeStart so every replica's address is a host address of the subnet"),
                    Kind::Bundle,
                    n,
                    path,
                );
            }
        }
        None if net_name.is_none() => f.push(
            Diagnostic::error(
                "quorate::network::needs-network",
                "ipRangeStart needs a runtime network",
            )
            .with_help("set spec.network.name to one of the Cluster's spec.networks"),
            Kind::Bundle,
            n,
            path,
        ),
        None => {} // an unknown network is reported by the reference checks
    }
    Some((first, last))
}

/// Two bundles without their own addresses publishing the same host port can collide
/// when placed on the same node.
fn host_port_clashes(set: &SpecSet, f: &mut Findings) {
    let apart = kept_apart(set);
    let mut seen: BTreeMap<u16, &Name> = BTreeMap::new();
    for (name, b) in &set.bundles {
        let Some(net) = b.network.as_ref().filter(|n| n.ip_range_start.is_none()) else {
            continue;
        };
        for (i, p) in net.ports.iter().enumerate() {
            let ports: Vec<u16> = match (p.port, p.range) {
                (Some(p), _) => vec![p.get()],
                (None, Some(r)) => (r.first.get()..=r.last.get()).collect(),
                _ => vec![],
            };
            for port in ports {
                match seen.get(&port) {
                    Some(other)
                        if *other != name
                            && !apart.contains(&(name, *other))
                            && !apart.contains(&(*other, name)) =>
                    {
                        f.push_related(
                            Diagnostic::warning(
                                "quorate::network::port-clash",
                                format!("`{name}` and `{other}` both publish host port {port}"),
                            )
                            .with_help("they cannot run on the same node; add a -INFINITY colocation between them, or give them ipRangeStart addresses"),
                            (Kind::Bundle, name.as_str(), &format!("spec.network.ports.{i}")),
                            (Kind::Bundle, other.as_str(), "spec.network.ports", "also published here"),
                        );
                    }
                    Some(_) => {}
                    None => {
                        seen.insert(port, name);
                    }
                }
            }
        }
    }
}

/// The pairs of bundles a -INFINITY colocation keeps off each other's nodes, as written
/// (`bundle`, `with`).
fn kept_apart(set: &SpecSet) -> BTreeSet<(&Name, &Name)> {
    let apart = set.constraints.values().filter_map(|c| match c {
        crate::spec::ConstraintSpec::Colocation(c) if c.score.is_neg_infinity() => {
            Some((&c.bundle, &c.with))
        }
        _ => None,
    });
    apart.collect()
}
