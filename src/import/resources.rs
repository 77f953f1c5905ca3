//! The `<resources>` section: bundles, container primitives, their clones, groups, and
//! the stonith primitives (handed to `fences.rs`). One handler per kind of element
//! ([`KINDS`]); each records what the resource id became in `Draft::resources`, which the
//! constraints and the status section look up.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use roxmltree::Node;

use super::config::{duration, score};
use super::{Ctx, Doc, Form, Handler, Resource, is_true, nvpairs, xml};
use crate::spec::bundle::{
    BundleNetwork, BundleSpec, Check, Monitor, OnFail, PortMapping, Promotable, Protocol, Recovery,
    StorageMapping, UpdatePolicy,
};
use crate::spec::cluster::{NetworkSpec, Subnet};
use crate::spec::{Duration, GroupSpec, Name, Port, PortRange, Score};

/// The kinds of element in `<resources>`.
const KINDS: &[(&str, Handler)] = &[
    ("bundle", bundle),
    ("primitive", primitive),
    ("clone", clone),
    ("master", clone),
    ("group", group),
    ("template", template),
];

/// Container runtimes of a `<bundle>` that quorate drives.
const RUNTIMES: &[&str] = &["docker", "podman"];

/// Pacemaker's default operation timeout.
const PCMK_OP_TIMEOUT: Duration = Duration::from_secs(20);

/// The `<resources>` section.
pub(super) fn resources(ctx: &mut Ctx<'_>, node: Node<'_, '_>) {
    for r in node.children().filter(|c| c.is_element()) {
        match KINDS.iter().find(|(n, _)| r.has_tag_name(*n)) {
            Some((_, handle)) => handle(ctx, r),
            None => ctx.not_carried(
                r,
                format!("{} is not a resource quorate knows", xml::describe(r)),
                "carry it over by hand, if it matters",
            ),
        }
    }
}

fn id<'a>(node: Node<'a, '_>) -> &'a str {
    node.attribute("id").unwrap_or("")
}

fn left(ctx: &mut Ctx<'_>, node: Node<'_, '_>) {
    ctx.draft
        .resources
        .insert(id(node).to_owned(), Resource::Left);
}

/// A `<bundle>`: its container, network, storage, inner primitive and meta attributes.
fn bundle(ctx: &mut Ctx<'_>, node: Node<'_, '_>) {
    let container = node
        .children()
        .find(|c| c.is_element() && ["docker", "podman", "rkt"].contains(&c.tag_name().name()));
    let Some(container) = container else {
        ctx.not_carried(
            node,
            format!("{} has no container", xml::describe(node)),
            "give it a <podman> or <docker> element",
        );
        return left(ctx, node);
    };
    let runtime = container.tag_name().name();
    if !RUNTIMES.contains(&runtime) {
        ctx.not_carried(
            container,
            format!(
                "{} is not carried over: quorate drives Podman and Docker",
                xml::describe(container)
            ),
            "run the image with Podman or Docker",
        );
        return left(ctx, node);
    }
    let Some(image) = container
        .attribute("image")
        .filter(|i| !i.trim().is_empty())
    else {
        ctx.not_carried(
            container,
            "the container has no image".into(),
            "give it an image",
        );
        return left(ctx, node);
    };
    let Some(name) = ctx.name(node, id(node), |d| &mut d.bundle_names) else {
        return left(ctx, node);
    };
    let mut spec = new_bundle(ctx, image);
    container_attributes(ctx, container, &mut spec);
    if let Some(net) = xml::child(node, "network") {
        network(ctx, net, container, &mut spec);
    } else if let Some(n) = container.attribute("network") {
        container_network(ctx, container, n);
    }
    if let Some(storage) = xml::child(node, "storage") {
        spec.storage = storage_mappings(ctx, storage);
    }
    if let Some(inner) = xml::child(node, "primitive") {
        inner_primitive(ctx, inner, &mut spec);
    }
    meta(ctx, node, &mut spec);
    if !ctx.draft.runtimes.iter().any(|r| r == runtime) {
        ctx.draft.runtimes.push(runtime.to_owned());
    }
    let form = Form::PcmkBundle {
        id: id(node).to_owned(),
        runtime: runtime.to_owned(),
    };
    add_bundle(ctx, node, name, spec, form);
}

/// A bundle with Pacemaker's defaults where they differ from quorate's.
fn new_bundle(ctx: &Ctx<'_>, image: &str) -> BundleSpec {
    BundleSpec {
        image: image.trim().to_owned(),
        replicas: 1,
        replicas_per_host: 1,
        network: None,
        storage: Vec::new(),
        env: BTreeMap::new(),
        command: None,
        // Without a monitor operation, quorate's default monitor; with one, its settings
        // (see `operations`).
        monitor: Monitor::default(),
        // Pacemaker's `requires` defaults to fencing while fencing is on, quorum otherwise.
        recovery: if ctx.draft.stonith_disabled {
            Recovery::Restart
        } else {
            Recovery::Fence
        },
        priority: 0,
        update: UpdatePolicy::default(),
        stop_timeout: ctx.draft.op_timeout.unwrap_or(PCMK_OP_TIMEOUT),
        stickiness: None,
        migration_threshold: None,
        failure_timeout: None,
        needs: BTreeMap::new(),
        promotable: None,
    }
}

fn add_bundle(ctx: &mut Ctx<'_>, node: Node<'_, '_>, name: Name, spec: BundleSpec, form: Form) {
    let origin = ctx.origin(node);
    ctx.draft.bundles.insert(name.clone(), Doc { spec, origin });
    ctx.draft
        .resources
        .insert(id(node).to_owned(), Resource::Bundle { name, form });
}

fn container_attributes(ctx: &mut Ctx<'_>, c: Node<'_, '_>, spec: &mut BundleSpec) {
    let count = |ctx: &mut Ctx<'_>, key: &str| -> Option<u32> {
        let v = c.attribute(key)?;
        let n = v.trim().parse().ok();
        if n.is_none() {
            ctx.not_carried(
                c,
                format!("{key} `{}` is not a number", xml::truncate(v)),
                "write a whole number",
            );
        }
        n
    };
    let promoted = count(ctx, "promoted-max").or(count(ctx, "masters"));
    spec.replicas = count(ctx, "replicas").or(promoted).unwrap_or(1);
    spec.replicas_per_host = count(ctx, "replicas-per-host").unwrap_or(1).max(1);
    if let Some(max) = promoted.filter(|p| *p > 0) {
        promotable(ctx, c, spec, max, 1);
    }
    if let Some(cmd) = c.attribute("run-command") {
        spec.command = Some(cmd.split_whitespace().map(str::to_owned).collect());
        if cmd.contains(['"', '\'', '\\']) {
            ctx.adjusted(
                c,
                "run-command is split at spaces, not as a shell would".into(),
                "check `command` in bundles.yaml",
            );
        }
    }
    if let Some(opts) = c.attribute("options").filter(|o| !o.trim().is_empty()) {
        ctx.not_carried(
            c,
            format!(
                "the container options `{}` are not carried over",
                xml::truncate(opts)
            ),
            "write what they do as the bundle's env, ports, storage or command",
        );
    }
}

/// A container `network` attribute without an address range.
fn container_network(ctx: &mut Ctx<'_>, c: Node<'_, '_>, network: &str) {
    ctx.not_carried(
        c,
        format!(
            "the container network `{}` is not carried over: quorate puts instances on a network only with fixed addresses",
            xml::truncate(network)
        ),
        "give the bundle an ip-range-start, or publish its ports on the host",
    );
}

/// `<network>`: the address range and the port mappings.
fn network(ctx: &mut Ctx<'_>, net: Node<'_, '_>, container: Node<'_, '_>, spec: &mut BundleSpec) {
    let mut out = BundleNetwork {
        name: None,
        ip_range_start: None,
        ports: port_mappings(ctx, net),
    };
    match net.attribute("ip-range-start") {
        Some(start) => match start.trim().parse::<Ipv4Addr>() {
            Ok(ip) => {
                out.name = Some(subnet_network(ctx, net, container, ip));
                out.ip_range_start = Some(ip);
            }
            Err(_) => ctx.not_carried(
                net,
                format!(
                    "ip-range-start `{}` is not an IPv4 address",
                    xml::truncate(start)
                ),
                "quorate's addresses are IPv4",
            ),
        },
        None => {
            if let Some(n) = container.attribute("network") {
                container_network(ctx, container, n);
            }
        }
    }
    for key in ["host-interface", "control-port", "add-host"] {
        if net.attribute(key).is_some() {
            ctx.adjusted(
                net,
                format!(
                    "`{key}` is dropped: quorate has no Pacemaker Remote connection or host address"
                ),
                "instances get their address on the runtime network instead",
            );
        }
    }
    spec.network = Some(out);
}

/// The runtime network holding `ip`: the subnet `ip/host-netmask`, named after the
/// container's `network` attribute (or `bundles`), shared by every bundle in it.
fn subnet_network(
    ctx: &mut Ctx<'_>,
    net: Node<'_, '_>,
    container: Node<'_, '_>,
    ip: Ipv4Addr,
) -> Name {
    let prefix = net
        .attribute("host-netmask")
        .and_then(|m| m.trim().parse::<u8>().ok())
        .filter(|p| *p <= 30);
    if prefix.is_none() {
        ctx.adjusted(
            net,
            "the bundle's subnet is taken as /24 (host-netmask is missing or leaves no room for instances)".into(),
            "check `networks` in cluster.yaml",
        );
    }
    let subnet = Subnet {
        addr: ip,
        prefix: prefix.unwrap_or(24),
    }
    .network();
    let networks = &mut ctx.draft.cluster.networks;
    if let Some(n) = networks.iter().find(|n| n.subnet == subnet) {
        return n.name.clone();
    }
    let wanted = container
        .attribute("network")
        .filter(|n| !["host", "bridge", "none", "default"].contains(n))
        .unwrap_or("bundles");
    let base = super::names::sanitize(wanted).unwrap_or_else(|| Name::from_static("bundles"));
    let mut name = base.clone();
    let mut k = 2;
    while networks.iter().any(|n| n.name == name) {
        name = format!("{base}-{k}")
            .parse()
            .unwrap_or_else(|_| base.clone());
        k += 1;
    }
    networks.push(NetworkSpec {
        name: name.clone(),
        subnet,
    });
    name
}

fn port_mappings(ctx: &mut Ctx<'_>, net: Node<'_, '_>) -> Vec<PortMapping> {
    let mut out = Vec::new();
    for pm in xml::children(net, "port-mapping") {
        let port = |key: &str| {
            pm.attribute(key)
                .and_then(|p| p.trim().parse::<Port>().ok())
        };
        let range = pm
            .attribute("range")
            .and_then(|r| r.trim().parse::<PortRange>().ok());
        let mapping = PortMapping {
            id: pm.attribute("id").map(str::to_owned),
            port: port("port"),
            internal_port: port("internal-port").filter(|_| range.is_none()),
            range: range.filter(|_| port("port").is_none()),
            protocol: Protocol::Tcp,
        };
        if mapping.port.is_none() && mapping.range.is_none() {
            ctx.not_carried(
                pm,
                format!("{} has no port or range quorate reads", xml::describe(pm)),
                "write port=\"N\" or range=\"A-B\"",
            );
            continue;
        }
        out.push(mapping);
    }
    out
}

fn storage_mappings(ctx: &mut Ctx<'_>, storage: Node<'_, '_>) -> Vec<StorageMapping> {
    let mut out = Vec::new();
    for sm in xml::children(storage, "storage-mapping") {
        let Some(target) = sm.attribute("target-dir") else {
            ctx.not_carried(
                sm,
                format!("{} has no target-dir", xml::describe(sm)),
                "give it a target-dir",
            );
            continue;
        };
        let mut options = Vec::new();
        for o in sm
            .attribute("options")
            .unwrap_or("")
            .split(',')
            .map(str::trim)
        {
            if o.is_empty() {
                continue;
            }
            if crate::validate::network::MOUNT_OPTIONS.contains(&o) {
                options.push(o);
            } else {
                ctx.not_carried(
                    sm,
                    format!("the mount option `{}` of {} is not carried over", xml::truncate(o), xml::describe(sm)),
                    "quorate takes rw or ro, and z, Z, noexec, nosuid, nodev and the propagation options",
                );
            }
        }
        out.push(StorageMapping {
            id: sm.attribute("id").map(str::to_owned),
            source_dir: sm.attribute("source-dir").map(Into::into),
            source_dir_root: sm.attribute("source-dir-root").map(Into::into),
            target_dir: target.into(),
            options: (!options.is_empty()).then(|| options.join(",")),
        });
    }
    out
}

/// The primitive inside a bundle: quorate has no inner resource, the container is the
/// service; its monitor's interval, timeout and on-fail, and its stop timeout, carry over.
fn inner_primitive(ctx: &mut Ctx<'_>, p: Node<'_, '_>, spec: &mut BundleSpec) {
    operations(ctx, p, spec);
    let agent = agent(p);
    ctx.adjusted(
        p,
        format!(
            "the resource agent {agent} inside the bundle is not run: the container is the service, and its monitor checks that the container runs"
        ),
        "add a monitor.check (exec, tcp or http) to check the service itself",
    );
    meta(ctx, p, spec);
}

/// `class:provider:type` of a primitive.
fn agent(p: Node<'_, '_>) -> String {
    let class = p.attribute("class").unwrap_or("?");
    let t = p.attribute("type").unwrap_or("?");
    match p.attribute("provider") {
        Some(provider) => format!("{class}:{provider}:{t}"),
        None => format!("{class}:{t}"),
    }
}

/// The monitor and stop operations of a primitive.
fn operations(ctx: &mut Ctx<'_>, p: Node<'_, '_>, spec: &mut BundleSpec) {
    let Some(ops) = xml::child(p, "operations") else {
        return;
    };
    let mut monitored = false;
    for op in xml::children(ops, "op") {
        let timeout = op.attribute("timeout").and_then(|t| duration(ctx, t, op));
        match op.attribute("name") {
            Some("monitor") if op.attribute("role").is_none() && !monitored => {
                monitored = true;
                if let Some(i) = op.attribute("interval").and_then(|i| duration(ctx, i, op))
                    && !i.is_zero()
                {
                    spec.monitor.interval = i;
                }
                // The op's timeout, else op_defaults', else quorate's 5s (Pacemaker's 20s
                // would be longer than most monitor intervals).
                if let Some(t) = timeout.or(ctx.draft.op_timeout) {
                    spec.monitor.timeout = t;
                }
                if let Some(f) = op.attribute("on-fail") {
                    spec.monitor.on_fail = on_fail(ctx, op, f);
                }
            }
            Some("stop") => {
                if let Some(t) = timeout {
                    spec.stop_timeout = t;
                }
            }
            Some("monitor") => ctx.not_carried(
                op,
                format!(
                    "{} is not carried over: a bundle has one monitor, for every role",
                    xml::describe(op)
                ),
                "quorate has no roles; the first monitor without a role is kept",
            ),
            _ => {}
        }
    }
}

fn on_fail(ctx: &mut Ctx<'_>, op: Node<'_, '_>, value: &str) -> OnFail {
    match value {
        "ignore" => OnFail::Ignore,
        "block" => OnFail::Block,
        "stop" => OnFail::Stop,
        "restart" => OnFail::Restart,
        "fence" => OnFail::Fence,
        other => {
            ctx.not_carried(
                op,
                format!("on-fail `{}` is not carried over: quorate knows ignore, block, stop, restart and fence", xml::truncate(other)),
                "the import keeps restart",
            );
            OnFail::Restart
        }
    }
}

/// A promotable bundle or clone (`promoted-max`, `promotable=true`): promotable with its
/// limits, and with `promote`, `demote` and `role` commands that fail. Pacemaker's agent
/// did those inside the container, and the import cannot know the commands: with a role
/// that is never known, every instance holds a place (invariant 8) and nothing is
/// promoted until the user writes them, which the finding asks for.
fn promotable(
    ctx: &mut Ctx<'_>,
    node: Node<'_, '_>,
    spec: &mut BundleSpec,
    max: u32,
    per_node: u32,
) {
    let unknown = || vec!["false".to_owned()];
    spec.promotable = Some(Box::new(Promotable {
        max_promoted: max,
        max_promoted_per_node: per_node,
        promote: unknown(),
        demote: unknown(),
        role: unknown(),
        preference: None,
        timeout: Duration::from_secs(10),
    }));
    ctx.not_carried(
        node,
        format!(
            "{} is promotable: the agent's promote, demote and role actions are not carried over, and until they are written nothing is promoted",
            xml::describe(node)
        ),
        "write promotable.promote, demote and role (and preference) in bundles.yaml: commands run in the container (see the README's promotable section)",
    );
}

/// A handler of one meta attribute of a resource.
type MetaHandler = for<'a, 'i> fn(&mut Ctx<'_>, &str, Node<'a, 'i>, &mut BundleSpec);

/// The meta attributes of a bundle, a primitive or a clone.
const META: &[(&str, MetaHandler)] = &[
    ("priority", meta_priority),
    ("target-role", meta_target_role),
    ("requires", meta_requires),
    ("resource-stickiness", meta_default),
    ("migration-threshold", meta_default),
    ("failure-timeout", meta_default),
    ("is-managed", meta_managed),
    ("maintenance", meta_maintenance),
];

/// Meta attributes handled where they belong (clones) or meaningless for quorate.
const META_ELSEWHERE: &[&str] = &[
    "clone-max",
    "clone-node-max",
    "clone-min",
    "globally-unique",
    "interleave",
    "ordered",
    "promotable",
    "promoted-max",
    "promoted-node-max",
    "master-max",
    "master-node-max",
    "notify",
    "collocated",
    "description",
    "container-attribute-target",
];

/// The meta attributes of a bundle or primitive, and its `utilization` (the bundle's
/// `needs`).
fn meta(ctx: &mut Ctx<'_>, node: Node<'_, '_>, spec: &mut BundleSpec) {
    super::config::utilization(ctx, node, &mut spec.needs);
    for (key, value, nv) in nvpairs(ctx, node, "meta_attributes") {
        match META.iter().find(|(k, _)| *k == key) {
            Some((_, handle)) => handle(ctx, value, nv, spec),
            None if META_ELSEWHERE.contains(&key) => {}
            None => ctx.not_carried(
                nv,
                format!(
                    "the meta attribute `{}` is not carried over",
                    xml::truncate(key)
                ),
                "see docs/import.md for the meta attributes quorate has",
            ),
        }
    }
}

fn meta_priority(ctx: &mut Ctx<'_>, value: &str, nv: Node<'_, '_>, spec: &mut BundleSpec) {
    if let Some(s) = score(ctx, value, nv) {
        spec.priority = i32::try_from(s.value()).unwrap_or(i32::MAX);
    }
}

fn meta_target_role(ctx: &mut Ctx<'_>, value: &str, nv: Node<'_, '_>, spec: &mut BundleSpec) {
    match value.to_ascii_lowercase().as_str() {
        "started" | "unpromoted" | "slave" => {}
        "stopped" => {
            spec.replicas = 0;
            ctx.adjusted(
                nv,
                "target-role Stopped becomes replicas: 0".into(),
                "raise replicas to start it",
            );
        }
        // Promoted (Master): promotion allowed, as it is for a promotable bundle.
        "promoted" | "master" if spec.promotable.is_some() => {}
        _ => ctx.not_carried(
            nv,
            format!("target-role `{}` is not carried over", xml::truncate(value)),
            "a bundle that is not promotable runs its instances as equals",
        ),
    }
}

fn meta_requires(ctx: &mut Ctx<'_>, value: &str, nv: Node<'_, '_>, spec: &mut BundleSpec) {
    spec.recovery = match value {
        "fencing" | "unfencing" => Recovery::Fence,
        "quorum" | "nothing" => Recovery::Restart,
        other => {
            ctx.not_carried(
                nv,
                format!("requires `{}` is not carried over", xml::truncate(other)),
                "quorate has recovery: fence or restart",
            );
            spec.recovery
        }
    };
}

/// Stickiness, migration threshold, failure timeout: the bundle's own when it differs
/// from the cluster's defaults (`rsc_defaults`, read before the resources).
fn meta_default(ctx: &mut Ctx<'_>, value: &str, nv: Node<'_, '_>, spec: &mut BundleSpec) {
    let key = nv.attribute("name").unwrap_or("");
    let d = &ctx.draft.cluster.defaults;
    let understood = match key {
        "resource-stickiness" => score_of(value).map(|v| {
            spec.stickiness = (v != d.stickiness).then_some(v);
        }),
        "migration-threshold" => super::config::threshold_of(value).map(|v| {
            spec.migration_threshold = (v != d.migration_threshold).then_some(v);
        }),
        _ => super::config::parse_duration(value).map(|v| {
            spec.failure_timeout = (v != d.failure_timeout).then_some(v);
        }),
    };
    if understood.is_none() {
        ctx.not_carried(
            nv,
            format!(
                "{key} `{}` is not a value quorate reads",
                xml::truncate(value)
            ),
            "the cluster's default applies to this bundle; write the bundle's own value by hand",
        );
    }
}

fn score_of(value: &str) -> Option<Score> {
    value.trim().to_ascii_uppercase().parse().ok()
}

fn meta_managed(ctx: &mut Ctx<'_>, value: &str, nv: Node<'_, '_>, _: &mut BundleSpec) {
    if !is_true(value) {
        ctx.not_yet(
            nv,
            "unmanaged bundles (is-managed=false)",
            "leave it out of the spec set while you manage it by hand",
        );
    }
}

fn meta_maintenance(ctx: &mut Ctx<'_>, value: &str, nv: Node<'_, '_>, _: &mut BundleSpec) {
    if is_true(value) {
        ctx.not_yet(
            nv,
            "maintenance mode for a bundle",
            "leave it out of the spec set while you work on it",
        );
    }
}

/// A `<primitive>`: a stonith device, a container primitive (`ocf:heartbeat:podman` or
/// `docker`) as a one-replica bundle, or something quorate does not run.
fn primitive(ctx: &mut Ctx<'_>, p: Node<'_, '_>) {
    if p.attribute("class") == Some("stonith") {
        return super::fences::primitive(ctx, p);
    }
    if p.attribute("template").is_some() {
        ctx.not_yet(
            p,
            "resource templates",
            "write the primitive's settings in full before importing",
        );
        return left(ctx, p);
    }
    match container_primitive(
        ctx,
        p,
        Form::Primitive {
            id: id(p).to_owned(),
        },
        1,
    ) {
        Some(_) => {}
        None => left(ctx, p),
    }
}

/// Whether `p` is `ocf:heartbeat:podman` or `ocf:heartbeat:docker`; if so it becomes a
/// bundle of `replicas`, and its name is returned.
fn container_primitive(
    ctx: &mut Ctx<'_>,
    p: Node<'_, '_>,
    form: Form,
    replicas: u32,
) -> Option<Name> {
    let runtime = p.attribute("type").filter(|t| RUNTIMES.contains(t));
    let ocf = p.attribute("class") == Some("ocf") && p.attribute("provider") == Some("heartbeat");
    let Some(runtime) = runtime.filter(|_| ocf) else {
        not_a_container(ctx, p);
        return None;
    };
    let params = nvpairs(ctx, p, "instance_attributes");
    let Some(image) = params
        .iter()
        .find(|(k, _, _)| *k == "image")
        .map(|(_, v, _)| *v)
    else {
        ctx.not_carried(
            p,
            format!("{} has no image", xml::describe(p)),
            "give it an image parameter",
        );
        return None;
    };
    let name = ctx.name(p, id(p), |d| &mut d.bundle_names)?;
    let mut spec = new_bundle(ctx, image);
    spec.replicas = replicas;
    for (key, value, nv) in params {
        match key {
            "image" | "name" | "allow_pull" | "reuse" | "force_kill" => {}
            "run_cmd" => spec.command = Some(value.split_whitespace().map(str::to_owned).collect()),
            "monitor_cmd" => {
                spec.monitor.check = Some(Check::Exec {
                    command: vec!["/bin/sh".into(), "-c".into(), value.to_owned()],
                })
            }
            _ => ctx.not_carried(
                nv,
                format!(
                    "the parameter `{}` of {} is not carried over",
                    xml::truncate(key),
                    xml::describe(p)
                ),
                "write what it does as the bundle's env, ports, storage or command",
            ),
        }
    }
    operations(ctx, p, &mut spec);
    meta(ctx, p, &mut spec);
    if !ctx.draft.runtimes.iter().any(|r| r == runtime) {
        ctx.draft.runtimes.push(runtime.to_owned());
    }
    add_bundle(ctx, p, name.clone(), spec, form);
    Some(name)
}

fn not_a_container(ctx: &mut Ctx<'_>, p: Node<'_, '_>) {
    let agent = agent(p);
    if agent == "ocf:pacemaker:remote" {
        return ctx.not_yet(
            p,
            "Pacemaker Remote nodes",
            "give quorate the machine as a node with its own container runtime",
        );
    }
    ctx.not_carried(
        p,
        format!(
            "{} ({agent}) is not carried over: quorate runs containers only",
            xml::describe(p)
        ),
        "run the service in a container (a <bundle>) and import again, or keep it outside quorate",
    );
}

/// A `<clone>` (or `<master>`) of a container primitive: one bundle with `clone-max`
/// replicas, `clone-node-max` per node.
fn clone(ctx: &mut Ctx<'_>, c: Node<'_, '_>) {
    let Some(inner) = c
        .children()
        .find(|x| x.is_element() && !x.tag_name().name().ends_with("attributes"))
    else {
        return left(ctx, c);
    };
    if !inner.has_tag_name("primitive") || inner.attribute("class") == Some("stonith") {
        ctx.not_yet(
            c,
            "clones of groups or of fence devices",
            "clone each member on its own: one bundle each",
        );
        left(ctx, inner);
        return left(ctx, c);
    }
    let meta: BTreeMap<&str, &str> = nvpairs(ctx, c, "meta_attributes")
        .into_iter()
        .map(|(k, v, _)| (k, v))
        .collect();
    let nodes = u32::try_from(ctx.draft.cluster.nodes.len()).unwrap_or(u32::MAX);
    let max = meta
        .get("clone-max")
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(nodes);
    let promotable = c.has_tag_name("master") || meta.get("promotable").is_some_and(|v| is_true(v));
    let limits = promoted_limits(&meta);
    let form = Form::Clone {
        id: id(inner).to_owned(),
    };
    let Some(name) = container_primitive(ctx, inner, form, max) else {
        left(ctx, inner);
        return left(ctx, c);
    };
    let cloned_by = ctx.origin(c);
    let Some(doc) = ctx.draft.bundles.get_mut(&name) else {
        return left(ctx, c);
    };
    doc.spec.replicas_per_host = meta
        .get("clone-node-max")
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(1)
        .max(1);
    doc.origin = format!("{}, cloned by {cloned_by}", doc.origin);
    let mut spec = doc.spec.clone();
    if promotable {
        self::promotable(ctx, c, &mut spec, limits.0, limits.1);
    }
    self::meta(ctx, c, &mut spec);
    clone_min(ctx, c, &name, &meta);
    if let Some(doc) = ctx.draft.bundles.get_mut(&name) {
        doc.spec = spec;
    }
    let resource = ctx
        .draft
        .resources
        .get(id(inner))
        .cloned()
        .unwrap_or(Resource::Left);
    ctx.draft.resources.insert(id(c).to_owned(), resource);
}

/// A promotable clone's `promoted-max` and `promoted-node-max` (or their older
/// `master-` names), 1 where absent or not a positive number.
fn promoted_limits(meta: &BTreeMap<&str, &str>) -> (u32, u32) {
    let limit = |keys: [&str; 2]| {
        keys.iter()
            .find_map(|k| meta.get(k))
            .and_then(|v| v.trim().parse::<u32>().ok())
            .filter(|n| *n > 0)
            .unwrap_or(1)
    };
    (
        limit(["promoted-max", "master-max"]),
        limit(["promoted-node-max", "master-node-max"]),
    )
}

/// A clone's `clone-min`, kept for the orders after bundle `name` (their
/// `minInstances`), or a finding when it is not a positive number.
fn clone_min(ctx: &mut Ctx<'_>, c: Node<'_, '_>, name: &Name, meta: &BTreeMap<&str, &str>) {
    match meta.get("clone-min").map(|v| v.trim().parse::<u32>()) {
        Some(Ok(min)) if min > 0 => {
            ctx.draft.clone_min.insert(name.clone(), min);
        }
        Some(_) => ctx.not_carried(
            c,
            "clone-min is not a positive number".into(),
            "write `minInstances` on the orders after this bundle",
        ),
        None => {}
    }
}

/// A `<group>` of container primitives: each member a bundle, the group a `Group` of
/// them in order (placed together, started in order, stopped in reverse, as in
/// Pacemaker). quorate's groups are always ordered and collocated: a group that says
/// otherwise (deprecated in Pacemaker) is a finding, its members imported on their own.
fn group(ctx: &mut Ctx<'_>, g: Node<'_, '_>) {
    let mut members = Vec::new();
    for p in xml::children(g, "primitive") {
        let form = Form::Primitive {
            id: id(p).to_owned(),
        };
        match container_primitive(ctx, p, form, 1) {
            Some(name) => members.push(name),
            None => left(ctx, p),
        }
    }
    // Whether the members still make a Group (not when it must be unordered or apart).
    let mut whole = true;
    for (key, value, nv) in nvpairs(ctx, g, "meta_attributes") {
        let (help, keeps_group) = match key {
            "ordered" | "collocated" if is_true(value) => continue,
            "ordered" | "collocated" => (
                "quorate's groups are ordered and collocated: write the colocations or orders you want between the members instead",
                false,
            ),
            _ => (
                "set it on each member, where quorate has it (see docs/import.md)",
                true,
            ),
        };
        whole &= keeps_group;
        ctx.not_carried(
            nv,
            format!(
                "the meta attribute `{}` of a group is not carried over",
                xml::truncate(key)
            ),
            help,
        );
    }
    let named = (whole && !members.is_empty())
        .then(|| ctx.name(g, id(g), |d| &mut d.bundle_names))
        .flatten();
    let Some(name) = named else {
        return left(ctx, g);
    };
    let origin = ctx.origin(g);
    let spec = GroupSpec { bundles: members };
    ctx.draft.groups.insert(name.clone(), Doc { spec, origin });
    ctx.draft
        .resources
        .insert(id(g).to_owned(), Resource::Group(name));
}

fn template(ctx: &mut Ctx<'_>, t: Node<'_, '_>) {
    ctx.not_yet(
        t,
        "resource templates",
        "write each primitive's settings in full before importing",
    );
    left(ctx, t);
}
