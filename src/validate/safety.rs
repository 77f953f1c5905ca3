//! Security and high-availability safety: inline secrets, unauthenticated APIs, and the
//! configurations that quietly remove the protection quorate exists for.

use std::collections::BTreeSet;

use super::Findings;
use crate::diag::Diagnostic;
use crate::secret::{SecretRef, is_secret_name};
use crate::spec::bundle::{EnvValue, Recovery};
use crate::spec::cluster::NoQuorumPolicy;
use crate::spec::endpoint::{RuntimeKind, Transport};
use crate::spec::fence::{IpmiAuthType, IpmiInterface, IpmiSpec};
use crate::spec::{Kind, SpecSet};

/// Checks that need the cluster: runtime endpoints, quorum, fencing coverage.
pub(super) fn cluster(set: &SpecSet, f: &mut Findings) {
    runtimes(set, f);
    quorum(set, f);
    fencing_coverage(set, f);
}

/// Checks of each fence device on its own: secrets and IPMI security.
pub(super) fn fences(set: &SpecSet, f: &mut Findings) {
    for (name, fence) in &set.fences {
        let (n, ipmi) = (name.as_str(), &fence.ipmi);
        if ipmi.password == SecretRef::Inline {
            f.push(
                Diagnostic::error(
                    "quorate::secret::inline",
                    "the BMC password is written inline; specs live in git and must not hold secrets",
                )
                .with_help("use `password: {fromEnv: VARIABLE}` or `password: {fromFile: /etc/quorate/bmc-password}`, and change the password: it is in the repository's history"),
                Kind::Fence,
                n,
                "spec.ipmi.password",
            );
        }
        cipher_suite(n, ipmi, f);
        let insecure = match ipmi.interface {
            IpmiInterface::Lanplus => lanplus(n, ipmi, f),
            IpmiInterface::Lan => lan(n, ipmi.auth_type, f),
        };
        match (insecure, ipmi.allow_insecure) {
            (Some((why, path)), false) => f.push(
                Diagnostic::error("quorate::fence::insecure", format!("{why}: anyone on the BMC network could power nodes off"))
                    .with_help("use interface lanplus with cipherSuite 3; set allowInsecure: true only for a lab"),
                Kind::Fence,
                n,
                path,
            ),
            (Some((why, path)), true) => f.push(
                Diagnostic::warning("quorate::fence::insecure", format!("{why} (allowed by allowInsecure)"))
                    .with_help("acceptable in a lab only"),
                Kind::Fence,
                n,
                path,
            ),
            (None, _) => {}
        }
    }
}

/// A cipher suite that does not exist, or that the IPMI library cannot speak.
fn cipher_suite(n: &str, ipmi: &IpmiSpec, f: &mut Findings) {
    if ipmi.cipher_suite > 17 {
        f.push(
            Diagnostic::error("quorate::fence::cipher-suite", format!("cipher suite {} does not exist", ipmi.cipher_suite))
                .with_help("IPMI 2.0 cipher suites are 0-17; 3 (AES-CBC-128 with HMAC-SHA1) is the common secure one"),
            Kind::Fence,
            n,
            "spec.ipmi.cipherSuite",
        );
    } else if ipmi.cipher_suite != 3 && ipmi.interface == IpmiInterface::Lanplus {
        // What the IPMI library can do (ipmi-rs 0.6 proposes suite 3 only); the agent
        // refuses the same at run time.
        f.push(
            Diagnostic::error(
                "quorate::fence::unsupported-cipher-suite",
                format!("cipher suite {} is not supported: quorate's IPMI library speaks only cipher suite 3", ipmi.cipher_suite),
            )
            .with_help("use cipherSuite: 3 (RAKP-HMAC-SHA1, HMAC-SHA1-96, AES-CBC-128) and enable it on the BMC; ipmitool's -C 3"),
            Kind::Fence,
            n,
            "spec.ipmi.cipherSuite",
        );
    }
}

/// What leaves an IPMI 2.0 (`lanplus`) device open to anyone on its network, and the
/// field that says so; an `authType`, which only IPMI 1.5 has, is refused.
fn lanplus(n: &str, ipmi: &IpmiSpec, f: &mut Findings) -> Option<(&'static str, &'static str)> {
    if ipmi.auth_type.is_some() {
        f.push(
            Diagnostic::error(
                "quorate::fence::auth-type",
                "`authType` applies only to `interface: lan` (IPMI 1.5)",
            )
            .with_help("remove authType; RMCP+ authentication is chosen by cipherSuite"),
            Kind::Fence,
            n,
            "spec.ipmi.authType",
        );
    }
    (ipmi.cipher_suite == 0).then_some((
        "cipher suite 0 sends commands without authentication",
        "spec.ipmi.cipherSuite",
    ))
}

/// What leaves an IPMI 1.5 (`lan`) device open to anyone on its network, and the field
/// that says so; a missing `authType`, and one the IPMI library cannot verify, are
/// refused.
fn lan(
    n: &str,
    auth: Option<IpmiAuthType>,
    f: &mut Findings,
) -> Option<(&'static str, &'static str)> {
    match auth {
        None => {
            f.push(
                Diagnostic::error(
                    "quorate::fence::auth-type",
                    "`interface: lan` (IPMI 1.5) needs an `authType`",
                )
                .with_help("prefer `interface: lanplus`; otherwise set authType: md5"),
                Kind::Fence,
                n,
                "spec.ipmi.interface",
            );
            None
        }
        Some(IpmiAuthType::None) => Some((
            "IPMI 1.5 with authType none sends commands without authentication",
            "spec.ipmi.authType",
        )),
        Some(IpmiAuthType::Straight) => Some((
            "IPMI 1.5 with authType straight sends the password in clear text",
            "spec.ipmi.authType",
        )),
        Some(auth @ (IpmiAuthType::Md5 | IpmiAuthType::Md2)) => {
            // ipmi-rs 0.6 rejects every MD5/MD2-authenticated IPMI 1.5 reply, so such a
            // device could never fence.
            let name = if auth == IpmiAuthType::Md5 {
                "md5"
            } else {
                "md2"
            };
            f.push(
                Diagnostic::error(
                    "quorate::fence::unsupported-auth-type",
                    format!("IPMI 1.5 with authType {name} is not supported: quorate's IPMI library cannot verify {} replies", name.to_uppercase()),
                )
                .with_help("use `interface: lanplus` with cipherSuite 3 (IPMI 2.0); nearly every BMC offers it"),
                Kind::Fence,
                n,
                "spec.ipmi.authType",
            );
            None
        }
    }
}

/// Environment variables whose name says they hold a secret but whose value is written
/// inline. Only a warning (the name may mislead), but the value is masked in every output
/// all the same (`load::inline_secrets`), and never repeated in the finding.
pub(super) fn env_secrets(set: &SpecSet, f: &mut Findings) {
    for (name, bundle) in &set.bundles {
        for (var, value) in &bundle.env {
            if !matches!(value, EnvValue::Plain(_)) || !is_secret_name(var) {
                continue;
            }
            let file = format!(
                "/etc/quorate/secrets/{}",
                var.to_ascii_lowercase().replace('_', "-")
            );
            f.push(
                Diagnostic::warning(
                    "quorate::secret::inline-env",
                    format!("`{var}` looks like a secret but its value is written inline; specs live in git and must not hold secrets"),
                )
                .with_help(format!("reference it instead, `{var}: {{fromFile: {file}}}` or `{var}: {{fromEnv: {var}}}` (read when the container is created), and change the value: it is in the repository's history")),
                Kind::Bundle,
                name.as_str(),
                &format!("spec.env.{var}"),
            );
        }
    }
}

fn runtimes(set: &SpecSet, f: &mut Findings) {
    let cluster = set.cluster_name.as_str();
    for (i, node) in set.cluster.nodes.iter().enumerate() {
        let at = |field: &str| format!("spec.nodes.{i}.{field}");
        let (tcp, ssh) = (
            matches!(node.runtime.transport, Transport::Tcp { .. }),
            matches!(node.runtime.transport, Transport::Ssh { .. }),
        );
        if node.tls.is_some() && !(tcp && node.runtime.kind == RuntimeKind::Docker) {
            f.push(
                Diagnostic::error(
                    "quorate::runtime::tls",
                    "`tls` applies only to docker+tcp endpoints",
                )
                .with_help("Podman's API has no TLS: reach a remote Podman through podman+ssh"),
                Kind::Cluster,
                cluster,
                &at("tls"),
            );
        }
        if node.ssh.is_some() && !ssh {
            f.push(
                Diagnostic::error(
                    "quorate::runtime::ssh",
                    "`ssh` applies only to +ssh endpoints",
                )
                .with_help(
                    "remove it, or change the runtime endpoint to podman+ssh:// or docker+ssh://",
                ),
                Kind::Cluster,
                cluster,
                &at("ssh"),
            );
        }
        if tcp && node.tls.is_none() {
            if node.insecure {
                f.push(
                    Diagnostic::warning(
                        "quorate::runtime::insecure",
                        format!("node `{}` exposes its container runtime over plain TCP", node.name),
                    )
                    .with_help("anyone who reaches that port is root on the node; keep it to a private lab network"),
                    Kind::Cluster,
                    cluster,
                    &at("insecure"),
                );
            } else {
                f.push(
                    Diagnostic::error(
                        "quorate::runtime::unauthenticated",
                        format!("node `{}`: plain TCP to a container runtime is unauthenticated", node.name),
                    )
                    .with_help("use docker+tcp with `tls` client certificates, or podman+ssh; or set `insecure: true` for a private lab network"),
                    Kind::Cluster,
                    cluster,
                    &at("runtime"),
                );
            }
        }
    }
}

fn quorum(set: &SpecSet, f: &mut Findings) {
    let c = &set.cluster;
    let cluster = set.cluster_name.as_str();
    let expected = c.expected_votes();
    let possible = c
        .nodes
        .iter()
        .map(|n| n.votes)
        .fold(c.quorum.reconciler_votes, u32::saturating_add);
    if expected == 0 || possible <= expected / 2 {
        f.push(
            Diagnostic::error(
                "quorate::quorum::unreachable",
                format!("quorum needs more than {} of {expected} expected votes, but all nodes and the reconciler hold only {possible}", expected / 2),
            )
            .with_help("lower expectedVotes or give nodes votes"),
            Kind::Cluster,
            cluster,
            "spec.quorum",
        );
    }
    if expected > 0 {
        reconciler_alone(set, expected, f);
    }
    if c.quorum.no_quorum_policy == NoQuorumPolicy::Ignore {
        f.push(
            Diagnostic::warning(
                "quorate::safety::no-quorum-ignore",
                "noQuorumPolicy: ignore lets a partition without quorum start and fence: two copies of a database can run at once",
            )
            .with_help("use freeze (the default) or stop; add a reconcilerVotes tie-breaker for two-node clusters"),
            Kind::Cluster,
            cluster,
            "spec.quorum.noQuorumPolicy",
        );
    }
    let voters = c.nodes.iter().filter(|n| n.votes > 0).count();
    if voters == 2 && c.quorum.reconciler_votes == 0 {
        f.push(
            Diagnostic::warning(
                "quorate::safety::two-node-tie",
                "two voting nodes and no tie-breaker: losing either node loses quorum",
            )
            .with_help("set quorum.reconcilerVotes: 1 so the reconciler breaks the tie"),
            Kind::Cluster,
            cluster,
            "spec.quorum",
        );
    }
}

/// The reconciler's votes must not make quorum on their own: a reconciler cut off from
/// every node would still be quorate, and, keeping invariant 2 in name only, start
/// instances elsewhere and fence every node it cannot reach (in a split, the nodes that
/// are fine). Quorum is present × 2 > expected (`plan/quorum.rs`), so the reconciler
/// alone must hold at most half of the expected votes.
fn reconciler_alone(set: &SpecSet, expected: u32, f: &mut Findings) {
    let q = &set.cluster.quorum;
    let own = q.reconciler_votes;
    if u64::from(own) * 2 <= u64::from(expected) {
        return;
    }
    let nodes = set
        .cluster
        .nodes
        .iter()
        .map(|n| n.votes)
        .fold(0, u32::saturating_add);
    let (of, help) = match q.expected_votes {
        Some(_) => (
            format!("{expected} expected votes"),
            format!(
                "set expectedVotes to at least {} (twice reconcilerVotes), or lower reconcilerVotes to at most {}; a tie-breaker needs only `reconcilerVotes: 1`",
                u64::from(own) * 2,
                expected / 2
            ),
        ),
        None if nodes == 0 => (
            format!("{expected} expected votes (no node has a vote)"),
            "give the nodes votes (`votes: 1` is the default); the reconciler only breaks ties between them".to_owned(),
        ),
        None => (
            format!("{expected} expected votes (the nodes' {nodes} and its own {own})"),
            format!(
                "set reconcilerVotes to at most {nodes}, the nodes' votes together; a tie-breaker needs only `reconcilerVotes: 1`"
            ),
        ),
    };
    f.push(
        Diagnostic::error(
            "quorate::quorum::reconciler-majority",
            format!(
                "the reconciler's {own} votes alone are more than half of the {of}: cut off from every node it would still have quorum, and would fence every node it cannot reach"
            ),
        )
        .with_help(help),
        Kind::Cluster,
        set.cluster_name.as_str(),
        "spec.quorum.reconcilerVotes",
    );
}

fn fencing_coverage(set: &SpecSet, f: &mut Findings) {
    let cluster = set.cluster_name.as_str();
    let fenced_bundles: Vec<&str> = set
        .bundles
        .iter()
        .filter(|(_, b)| b.recovery == Recovery::Fence && b.replicas > 0)
        .map(|(n, _)| n.as_str())
        .collect();
    if !set.cluster.fencing.enabled {
        if !fenced_bundles.is_empty() {
            f.push(
                Diagnostic::warning(
                    "quorate::safety::fencing-disabled",
                    format!(
                        "fencing is disabled while {} use recovery: fence; their instances on a lost node stay down until an operator confirms the node is off",
                        fenced_bundles.join(", ")
                    ),
                )
                .with_help("enable fencing and add a Fence device per node"),
                Kind::Cluster,
                cluster,
                "spec.fencing.enabled",
            );
        }
        return;
    }
    let covered: BTreeSet<&str> = set
        .fences
        .values()
        .flat_map(|fd| fd.targets.iter().map(|t| t.as_str()))
        .collect();
    for (i, node) in set.cluster.nodes.iter().enumerate() {
        let anything_to_fence = !set.fences.is_empty() || !fenced_bundles.is_empty();
        if anything_to_fence && !covered.contains(node.name.as_str()) {
            f.push(
                Diagnostic::warning(
                    "quorate::safety::node-unfenced",
                    format!("no fence device covers node `{}`: if it is lost, its instances with recovery: fence cannot be recovered automatically", node.name),
                )
                .with_help(format!("add a Fence document with `targets: [{}]`", node.name)),
                Kind::Cluster,
                cluster,
                &format!("spec.nodes.{i}.name"),
            );
        }
    }
}
