//! Stonith primitives and the `fencing-topology`, into `Fence` documents.
//!
//! A device's targets and levels come from two places in a CIB: its `pcmk_host_list`
//! and the `fencing-level` elements that name it. A node with levels uses exactly the
//! devices of its levels (as in Pacemaker); a node without any uses the devices whose
//! host list names it, at level 1. quorate gives each Fence document one level, so a
//! device used at two levels becomes two documents (`<device>`, `<device>-level2`).
//!
//! The BMC password is never carried over: it becomes a reference named after the
//! device ([`password_reference`]), and its value is masked in every snippet.

use std::collections::{BTreeMap, BTreeSet};

use roxmltree::Node;

use super::config::duration;
use super::{Ctx, Doc, Resource, is_true, nvpairs, xml};
use crate::secret::SecretRef;
use crate::spec::fence::{FenceMethod, FenceSpec, IpmiPrivilege, IpmiSpec};
use crate::spec::{Duration, Name, Port};

/// The secret reference of the BMC password of `device`, read from the environment of
/// `quorate run`. The one place that names it: change the scheme here.
pub(crate) fn password_reference(device: &Name) -> SecretRef {
    let upper: String = device
        .as_str()
        .chars()
        .map(|c| {
            if c == '-' {
                '_'
            } else {
                c.to_ascii_uppercase()
            }
        })
        .collect();
    SecretRef::FromEnv(format!("QUORATE_FENCE_{upper}_PASSWORD"))
}

/// A stonith device read from `<resources>`, waiting for the topology.
#[derive(Debug, Clone)]
pub(crate) struct Device {
    pub id: String,
    pub name: Name,
    pub spec: FenceSpec,
    pub hosts: Vec<Name>,
    pub origin: String,
    /// The line of the primitive, for findings made once the topology is known.
    pub offset: usize,
}

/// A handler of one fence agent's primitive.
type Agent = for<'a, 'i> fn(&mut Ctx<'_>, Node<'a, 'i>) -> Option<FenceSpec>;

/// The fence agents quorate carries over.
const AGENTS: &[(&str, Agent)] = &[("fence_ipmilan", ipmilan), ("fence_ipmilanplus", ipmilan)];

/// Parameters of fence_ipmilan that mean nothing to quorate's IPMI agent.
const IGNORED: &[&str] = &[
    "port",
    "plug",
    "action",
    "verbose",
    "debug",
    "timeout",
    "power_wait",
    "shell_timeout",
    "login_timeout",
    "retry_on",
    "auth",
    "hexadecimal_kg",
    "target",
    "ipmitool_path",
];

/// A `class="stonith"` primitive.
pub(super) fn primitive(ctx: &mut Ctx<'_>, p: Node<'_, '_>) {
    let id = p.attribute("id").unwrap_or("").to_owned();
    let agent = p.attribute("type").unwrap_or("");
    let Some((_, handle)) = AGENTS.iter().find(|(a, _)| *a == agent) else {
        ctx.not_carried(
            p,
            format!(
                "{} uses the fence agent `{}`, which quorate does not have: it fences through IPMI (fence_ipmilan)",
                xml::describe(p),
                xml::truncate(agent)
            ),
            "give each node an IPMI Fence document by hand, or confirm fences by hand (`quorate fence confirm`)",
        );
        ctx.draft.resources.insert(id, Resource::Left);
        return;
    };
    let Some(spec) = handle(ctx, p) else {
        ctx.draft.resources.insert(id, Resource::Left);
        return;
    };
    let Some(name) = ctx.name(p, &id, |d| &mut d.fence_names) else {
        return;
    };
    let mut spec = spec;
    spec.ipmi.password = password_reference(&name);
    let hosts = host_list(ctx, p);
    let origin = ctx.origin(p);
    ctx.draft.resources.insert(id.clone(), Resource::Fence);
    ctx.draft.devices.push(Device {
        id,
        name,
        spec,
        hosts,
        origin,
        offset: p.range().start,
    });
}

/// The nodes of `pcmk_host_list` (or the keys of `pcmk_host_map`).
fn host_list(ctx: &mut Ctx<'_>, p: Node<'_, '_>) -> Vec<Name> {
    let mut hosts = Vec::new();
    for (key, value, nv) in nvpairs(ctx, p, "instance_attributes") {
        let names: Vec<&str> = match key {
            "pcmk_host_list" => value.split([' ', ',', ';']).collect(),
            "pcmk_host_map" => value
                .split([' ', ';'])
                .filter_map(|e| e.split(':').next())
                .collect(),
            _ => continue,
        };
        for host in names.into_iter().map(str::trim).filter(|h| !h.is_empty()) {
            match ctx.node(host) {
                Some(n) if !hosts.contains(&n) => hosts.push(n),
                Some(_) => {}
                None => ctx.adjusted(
                    nv,
                    format!(
                        "`{}` in {key} is not a node of the CIB: left out",
                        xml::truncate(host)
                    ),
                    "add the node to the CIB's <nodes>, or remove it from the host list",
                ),
            }
        }
    }
    hosts
}

/// fence_ipmilan's parameters into a Fence spec (targets and level come later).
fn ipmilan(ctx: &mut Ctx<'_>, p: Node<'_, '_>) -> Option<FenceSpec> {
    let mut spec = FenceSpec {
        targets: Vec::new(),
        level: 1,
        ipmi: IpmiSpec {
            address: String::new(),
            port: Port::IPMI,
            username: String::new(),
            password: SecretRef::Inline,
            interface: Default::default(),
            cipher_suite: 3,
            auth_type: None,
            privilege: IpmiPrivilege::Administrator,
            allow_insecure: false,
        },
        method: FenceMethod::Onoff,
        power_wait: Duration::from_secs(20),
        delay: Duration::from_secs(0),
    };
    let mut lanplus = p.attribute("type") == Some("fence_ipmilanplus");
    for (key, value, nv) in nvpairs(ctx, p, "instance_attributes") {
        match key {
            "ip" | "ipaddr" => spec.ipmi.address = value.trim().to_owned(),
            "ipport" | "udpport" => match value.trim().parse::<Port>() {
                Ok(port) => spec.ipmi.port = port,
                Err(_) => ctx.not_carried(nv, format!("ipport `{}` is not a port", xml::truncate(value)), "write a port number"),
            },
            "username" | "login" => spec.ipmi.username = value.to_owned(),
            "password" | "passwd" => {}
            "password_script" | "passwd_script" => ctx.adjusted(
                nv,
                "the password script is not run: the password is read from the environment variable the Fence names".into(),
                "put the BMC password in that variable (see fences.yaml)",
            ),
            "lanplus" => lanplus = is_true(value),
            "cipher" => cipher(ctx, nv, value),
            "privlvl" => privilege(ctx, nv, value, &mut spec.ipmi),
            "delay" | "pcmk_delay_base" => {
                if let Some(d) = duration(ctx, value, nv) {
                    spec.delay = d;
                }
            }
            "pcmk_delay_max" => ctx.not_yet(nv, "random fence delays (pcmk_delay_max)", "give one node of each pair a fixed delay instead"),
            "method" => match value {
                "onoff" => spec.method = FenceMethod::Onoff,
                "cycle" => spec.method = FenceMethod::Cycle,
                other => ctx.not_carried(nv, format!("method `{}` is not carried over", xml::truncate(other)), "quorate has onoff and cycle"),
            },
            "power_timeout" => {
                if let Some(d) = duration(ctx, value, nv) {
                    spec.power_wait = d;
                }
            }
            "pcmk_host_list" | "pcmk_host_map" => {}
            k if IGNORED.contains(&k) || k.starts_with("pcmk_") => {}
            other => ctx.not_carried(
                nv,
                format!("the fence_ipmilan parameter `{}` is not carried over", xml::truncate(other)),
                "see docs/import.md for the parameters quorate has",
            ),
        }
    }
    lan(ctx, p, lanplus);
    if spec.ipmi.address.is_empty() || spec.ipmi.username.is_empty() {
        ctx.not_carried(
            p,
            format!(
                "{} is not carried over: it needs an ip and a username",
                xml::describe(p)
            ),
            "give the device ip= and username= (quorate logs in to the BMC with a user)",
        );
        return None;
    }
    Some(spec)
}

fn lan(ctx: &mut Ctx<'_>, p: Node<'_, '_>, lanplus: bool) {
    if lanplus {
        return;
    }
    let explicit = nvpairs(ctx, p, "instance_attributes")
        .iter()
        .any(|(k, _, _)| *k == "lanplus");
    let message = format!(
        "{} talks IPMI 1.5 (lan); quorate talks IPMI 2.0 (lanplus) to it",
        xml::describe(p)
    );
    let help = "check the BMC speaks IPMI 2.0 (ipmitool -I lanplus); quorate refuses IPMI 1.5 authentication";
    if explicit {
        ctx.not_carried(p, message, help);
    } else {
        ctx.adjusted(p, message, help);
    }
}

fn cipher(ctx: &mut Ctx<'_>, nv: Node<'_, '_>, value: &str) {
    if value.trim() != "3" {
        ctx.not_carried(
            nv,
            format!(
                "cipher suite `{}` is not carried over: quorate uses cipher suite 3",
                xml::truncate(value)
            ),
            "check the BMC offers cipher suite 3 (ipmitool -C 3)",
        );
    }
}

fn privilege(ctx: &mut Ctx<'_>, nv: Node<'_, '_>, value: &str, ipmi: &mut IpmiSpec) {
    match value.to_ascii_lowercase().as_str() {
        "operator" => ipmi.privilege = IpmiPrivilege::Operator,
        "administrator" => ipmi.privilege = IpmiPrivilege::Administrator,
        other => ctx.not_carried(
            nv,
            format!(
                "privilege `{}` is not carried over: quorate has operator and administrator",
                xml::truncate(other)
            ),
            "use operator, enough for chassis control on most BMCs",
        ),
    }
}

/// The `<fencing-topology>` section.
pub(super) fn topology(ctx: &mut Ctx<'_>, node: Node<'_, '_>) {
    for level in xml::children(node, "fencing-level") {
        one_level(ctx, level);
    }
}

fn one_level(ctx: &mut Ctx<'_>, level: Node<'_, '_>) {
    let Some(target) = level.attribute("target") else {
        ctx.not_yet(
            level,
            "fencing levels by node pattern or attribute",
            "write one level per node, with target=",
        );
        return;
    };
    let Some(node) = ctx.node(target) else {
        ctx.not_carried(
            level,
            format!(
                "{} targets `{}`, which is not a node of the CIB",
                xml::describe(level),
                xml::truncate(target)
            ),
            "remove the level or add the node",
        );
        return;
    };
    let Some(index) = level
        .attribute("index")
        .and_then(|i| i.trim().parse::<u32>().ok())
        .filter(|i| *i > 0)
    else {
        ctx.not_carried(
            level,
            format!("{} has no index from 1", xml::describe(level)),
            "give it index=\"1\" or higher",
        );
        return;
    };
    let mut devices = Vec::new();
    for d in level
        .attribute("devices")
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|d| !d.is_empty())
    {
        if matches!(ctx.draft.resources.get(d), Some(Resource::Fence)) {
            devices.push(d.to_owned());
        } else {
            ctx.not_carried(
                level,
                format!("{} names the device `{}`, which was not carried over", xml::describe(level), xml::truncate(d)),
                "a level succeeds only when all its devices do: the level is imported without it, check it",
            );
        }
    }
    ctx.draft.levels.push((node, index, devices));
}

/// Writes the Fence documents once devices and levels are known.
pub(super) fn finish(ctx: &mut Ctx<'_>) {
    let with_levels: BTreeSet<Name> = ctx.draft.levels.iter().map(|(n, _, _)| n.clone()).collect();
    for device in std::mem::take(&mut ctx.draft.devices) {
        let mut by_level: BTreeMap<u32, Vec<Name>> = BTreeMap::new();
        for (node, index, devices) in &ctx.draft.levels {
            if devices.contains(&device.id) {
                by_level.entry(*index).or_default().push(node.clone());
            }
        }
        for host in device.hosts.iter().filter(|h| !with_levels.contains(*h)) {
            by_level.entry(1).or_default().push(host.clone());
        }
        if by_level.is_empty() {
            let span = crate::diag::Span::at_offset(ctx.bytes, device.offset, 1);
            ctx.findings.push(
                crate::diag::Diagnostic::error(
                    super::NOT_CARRIED,
                    format!("the fence device `{}` names no node (no pcmk_host_list, no fencing level) and is not carried over", device.id),
                    )
                    .with_help("give it pcmk_host_list=\"NODE\"")
                    .at(crate::diag::Location { file: ctx.file, span: Some(span) }),
            );
            continue;
        }
        write_levels(ctx, device, by_level);
    }
}

fn write_levels(ctx: &mut Ctx<'_>, device: Device, by_level: BTreeMap<u32, Vec<Name>>) {
    let mut first = true;
    for (level, mut targets) in by_level {
        targets.sort();
        targets.dedup();
        let name = if first {
            Some(device.name.clone())
        } else {
            ctx.draft
                .fence_names
                .give(&format!("{}-level{level}", device.name))
                .map(|g| g.name)
        };
        first = false;
        let Some(name) = name else { continue };
        let mut spec = device.spec.clone();
        spec.targets = targets;
        spec.level = level;
        spec.ipmi.password = password_reference(&device.name);
        ctx.draft.fences.insert(
            name,
            Doc {
                spec,
                origin: device.origin.clone(),
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_password_reference_is_named_after_the_device() {
        let name: Name = "bmc-node1".parse().unwrap();
        assert_eq!(
            password_reference(&name),
            SecretRef::FromEnv("QUORATE_FENCE_BMC_NODE1_PASSWORD".into())
        );
    }
}
