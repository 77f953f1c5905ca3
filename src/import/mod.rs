//! `quorate import pacemaker`: a Pacemaker cluster's CIB to a spec set.
//!
//! Pure: [`pacemaker`] reads the CIB's bytes and returns the YAML files of the spec set,
//! the findings (what was not carried over, what was carried over with a change), and,
//! when asked, the CIB's status section as an observed-state snapshot. Nothing is read
//! from or written to disk here; `cli/import.rs` does that.
//!
//! Every CIB element is handled by one small function found through a table: the
//! sections of `<configuration>` here ([`SECTIONS`]), the kinds of resource in
//! `resources.rs`, the cluster properties and meta attributes in `config.rs`, the fence
//! agents in `fences.rs`, the constraint kinds in `constraints.rs`. Carrying over a new
//! concept (groups, utilization, promotable bundles) is one new entry and one function.
//! An element nobody handles is a finding, never silently dropped.
//!
//! The output is checked by the real validator before anything is written
//! ([`emit::check`]): the import never hands out a set `quorate validate` refuses.

mod config;
mod constraints;
mod emit;
mod fences;
mod names;
mod resources;
mod status;
pub(crate) mod xml;

use std::collections::BTreeMap;

use roxmltree::Node;

use crate::diag::{Diagnostic, Location, Span};
use crate::observed::Observed;
use crate::source::FileId;
use crate::spec::{BundleSpec, ClusterSpec, ConstraintSpec, FenceSpec, GroupSpec, Name};

pub(crate) use emit::OutputFile;

/// A finding: something of the CIB was not carried over (the import exits 1).
pub(crate) const NOT_CARRIED: &str = "quorate::import::not-carried";
/// A finding: carried over, but changed or guessed; check it.
pub(crate) const ADJUSTED: &str = "quorate::import::adjusted";
/// The imported set does not validate (a bug of the import, or a CIB quorate refuses).
pub(crate) const INVALID_OUTPUT: &str = "quorate::import::invalid-output";

/// What an import produced.
#[derive(Debug)]
pub(crate) struct Import {
    /// The spec files, in the order written, each with its name and YAML text.
    pub files: Vec<OutputFile>,
    /// Findings about the CIB, located in it.
    pub findings: Vec<Diagnostic>,
    /// Spans of the CIB that hold secrets (BMC passwords): never shown in a snippet.
    pub redactions: Vec<(FileId, Span)>,
    /// The status section as a snapshot, when asked for.
    pub observed: Option<Observed>,
    /// Warnings of the validator about the imported set (the set has no errors).
    pub validation: Vec<Diagnostic>,
}

impl Import {
    /// Whether something of the CIB was left out.
    pub(crate) fn left_out(&self) -> usize {
        self.findings.iter().filter(|d| d.is_error()).count()
    }
}

/// Why an import produced nothing.
#[derive(Debug)]
pub(crate) enum Failure {
    /// The CIB does not parse or breaks a limit.
    Xml(Box<Diagnostic>),
    /// The imported set does not validate: the files and what the validator said
    /// (located in those files, numbered from 1: file 0 is the CIB).
    Invalid {
        files: Vec<OutputFile>,
        findings: Vec<Diagnostic>,
        validation: Vec<Diagnostic>,
        redactions: Vec<(FileId, Span)>,
    },
}

/// Imports the CIB `bytes` (file `file`, shown as `cib_name` in comments). With
/// `observed`, the status section also becomes a snapshot.
pub(crate) fn pacemaker(
    file: FileId,
    cib_name: &str,
    bytes: &[u8],
    observed: bool,
) -> Result<Import, Failure> {
    let doc = xml::parse(file, bytes).map_err(Failure::Xml)?;
    let mut ctx = Ctx::new(file, bytes);
    redact_secrets(&mut ctx, &doc);
    let root = doc.root_element();
    match xml::child(root, "configuration") {
        Some(configuration) => configure(&mut ctx, configuration),
        None => ctx.not_carried(
            root,
            "the CIB has no <configuration>".into(),
            "give the whole CIB (`cibadmin --query`)",
        ),
    }
    fences::finish(&mut ctx);
    config::finish(&mut ctx);
    let snapshot = observed.then(|| status::observed(&mut ctx, root));
    crate::diag::sort(&mut ctx.findings);
    let files = emit::files(&ctx.draft, cib_name);
    let redactions = ctx.redactions;
    match emit::check(&files, &ctx.draft) {
        Ok(validation) => Ok(Import {
            files,
            findings: ctx.findings,
            redactions,
            observed: snapshot,
            validation,
        }),
        Err(validation) => Err(Failure::Invalid {
            files,
            findings: ctx.findings,
            validation,
            redactions,
        }),
    }
}

/// Masks, in every snippet, the value of each nvpair whose name says it holds a secret
/// (`password`, `passwd`, `db_token`, ...), wherever it is in the CIB.
fn redact_secrets(ctx: &mut Ctx<'_>, doc: &roxmltree::Document<'_>) {
    for nv in doc.descendants().filter(|n| n.has_tag_name("nvpair")) {
        let name = nv.attribute("name").unwrap_or("");
        if (crate::secret::is_secret_name(name) || name.to_ascii_lowercase().contains("passwd"))
            && let Some(value) = nv.attribute_node("value")
        {
            ctx.redact(&value);
        }
    }
}

/// A handler of one kind of CIB element.
pub(crate) type Handler = for<'a, 'i> fn(&mut Ctx<'_>, Node<'a, 'i>);

/// The sections of `<configuration>`, in the order they are handled: resources before
/// the fencing topology and the constraints that refer to them.
const SECTIONS: &[(&str, Handler)] = &[
    ("crm_config", config::crm_config),
    ("rsc_defaults", config::rsc_defaults),
    ("op_defaults", config::op_defaults),
    ("nodes", config::nodes),
    ("resources", resources::resources),
    ("fencing-topology", fences::topology),
    ("constraints", constraints::constraints),
    ("tags", tags),
    ("acls", acls),
    ("alerts", alerts),
];

fn configure(ctx: &mut Ctx<'_>, configuration: Node<'_, '_>) {
    for (name, handler) in SECTIONS {
        for section in configuration
            .children()
            .filter(|c| c.is_element() && c.tag_name().name() == *name)
        {
            handler(ctx, section);
        }
    }
    for other in configuration.children().filter(|c| c.is_element()) {
        if !SECTIONS.iter().any(|(n, _)| *n == other.tag_name().name()) {
            ctx.not_carried(
                other,
                format!("{} is not a section quorate knows", xml::describe(other)),
                "carry it over by hand, if it matters",
            );
        }
    }
}

fn tags(ctx: &mut Ctx<'_>, node: Node<'_, '_>) {
    for tag in node.children().filter(|c| c.is_element()) {
        ctx.not_yet(
            tag,
            "tags",
            "refer to each bundle by name in the constraints instead",
        );
    }
}

fn acls(ctx: &mut Ctx<'_>, node: Node<'_, '_>) {
    ctx.not_carried(
        node,
        "access control lists are not carried over: quorate has none".into(),
        "who may change the cluster is who may push to the repository: use the git server's permissions",
    );
}

fn alerts(ctx: &mut Ctx<'_>, node: Node<'_, '_>) {
    for alert in node.children().filter(|c| c.is_element()) {
        ctx.not_carried(
            alert,
            format!(
                "{} is not carried over: quorate has no alert agents",
                xml::describe(alert)
            ),
            "watch `quorate status --format json` or the metrics of `quorate run` (GET /metrics)",
        );
    }
}

/// A document of the spec set being built, with the CIB element it came from.
#[derive(Debug, Clone)]
pub(crate) struct Doc<S> {
    /// The spec.
    pub spec: S,
    /// The CIB element, as a comment: `<bundle id="db"> at line 12`.
    pub origin: String,
}

/// How a CIB resource id was carried over, for the constraints and the status section.
#[derive(Debug, Clone)]
pub(crate) enum Resource {
    /// A bundle (from a `<bundle>`, a container primitive, or a clone of one).
    Bundle { name: Name, form: Form },
    /// A group of container primitives, written as a `Group` of that name.
    Group(Name),
    /// A fence device.
    Fence,
    /// Not carried over (a finding says why).
    Left,
}

/// The CIB form a bundle came from, which names its instances in the status section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Form {
    /// A `<bundle>`: its containers are `<id>-<runtime>-<i>`.
    PcmkBundle { id: String, runtime: String },
    /// A container primitive (`ocf:heartbeat:podman` or `docker`): one instance, `<id>`.
    Primitive { id: String },
    /// A clone of a container primitive: instances `<id>:<i>`, or `<id>` on each node
    /// for an anonymous clone.
    Clone { id: String },
}

/// The spec set being built.
#[derive(Debug, Default)]
pub(crate) struct Draft {
    /// From `cluster-name`.
    pub cluster_name: Option<Name>,
    /// The cluster.
    pub cluster: ClusterSpec,
    /// Where the cluster's settings came from.
    pub cluster_origin: Vec<String>,
    /// The container runtimes the bundles name (`podman`, `docker`).
    pub runtimes: Vec<String>,
    /// Bundles.
    pub bundles: BTreeMap<Name, Doc<BundleSpec>>,
    /// Fence devices.
    pub fences: BTreeMap<Name, Doc<FenceSpec>>,
    /// Constraints from `<constraints>`.
    pub constraints: BTreeMap<Name, Doc<ConstraintSpec>>,
    /// Groups.
    pub groups: BTreeMap<Name, Doc<GroupSpec>>,
    /// What each CIB resource id became.
    pub resources: BTreeMap<String, Resource>,
    /// Node names by CIB `uname`, and by node `id`.
    pub nodes: BTreeMap<String, Name>,
    pub node_ids: BTreeMap<String, Name>,
    /// Whether `stonith-enabled` is on (the default).
    pub stonith_disabled: bool,
    /// Names given per kind.
    pub bundle_names: names::Names,
    pub fence_names: names::Names,
    pub constraint_names: names::Names,
    pub node_names: names::Names,
    /// Stonith devices waiting for the fencing topology.
    pub devices: Vec<fences::Device>,
    /// `(node, level index, device ids)` from the fencing topology.
    pub levels: Vec<(Name, u32, Vec<String>)>,
    /// Meta attributes of `rsc_defaults`, by name, for comparing a resource's own.
    pub rsc_defaults: BTreeMap<String, String>,
    /// The operation timeout of `op_defaults`.
    pub op_timeout: Option<crate::spec::Duration>,
    /// `clone-min` of each cloned bundle: an order after it waits for that many.
    pub clone_min: BTreeMap<Name, u32>,
}

/// The importer's state: the CIB's bytes, the set being built, the findings.
pub(crate) struct Ctx<'b> {
    pub file: FileId,
    pub bytes: &'b [u8],
    pub draft: Draft,
    pub findings: Vec<Diagnostic>,
    pub redactions: Vec<(FileId, Span)>,
}

impl<'b> Ctx<'b> {
    fn new(file: FileId, bytes: &'b [u8]) -> Self {
        Ctx {
            file,
            bytes,
            draft: config::pacemaker_defaults(),
            findings: Vec::new(),
            redactions: Vec::new(),
        }
    }

    /// Where `node` is.
    pub(crate) fn at(&self, node: Node<'_, '_>) -> Location {
        Location {
            file: self.file,
            span: Some(xml::span_of(self.bytes, node)),
        }
    }

    /// The comment naming `node`: `<bundle id="db"> at line 12`.
    pub(crate) fn origin(&self, node: Node<'_, '_>) -> String {
        let line = xml::span_of(self.bytes, node).line;
        format!("{} at line {line}", xml::describe(node))
    }

    /// Something of `node` was not carried over: an error finding (the import exits 1).
    pub(crate) fn not_carried(&mut self, node: Node<'_, '_>, message: String, help: &str) {
        let d = Diagnostic::error(NOT_CARRIED, message)
            .with_help(help)
            .at(self.at(node));
        self.findings.push(d);
    }

    /// `node` is not carried over because quorate lacks `concept` for now.
    pub(crate) fn not_yet(&mut self, node: Node<'_, '_>, concept: &str, help: &str) {
        let message = format!(
            "{} is not carried over: not yet supported by quorate ({concept})",
            xml::describe(node)
        );
        self.not_carried(node, message, help);
    }

    /// `node` was carried over with a change or a guess: a warning finding.
    pub(crate) fn adjusted(&mut self, node: Node<'_, '_>, message: String, help: &str) {
        let d = Diagnostic::warning(ADJUSTED, message)
            .with_help(help)
            .at(self.at(node));
        self.findings.push(d);
    }

    /// A warning about the whole import, not one element.
    pub(crate) fn general(&mut self, message: String, help: &str) {
        self.findings
            .push(Diagnostic::warning(ADJUSTED, message).with_help(help));
    }

    /// Masks the value of a secret attribute in every snippet.
    pub(crate) fn redact(&mut self, attr: &roxmltree::Attribute<'_, '_>) {
        self.redactions
            .push((self.file, xml::value_span(self.bytes, attr)));
    }

    /// The quorate name of node `uname`, if it is a node of the CIB.
    pub(crate) fn node(&self, uname: &str) -> Option<Name> {
        self.draft.nodes.get(uname).cloned()
    }

    /// A name for a new document of kind `names` from CIB id `id`, with a finding when
    /// it had to change. `None` (with a finding) when the id has no usable character.
    pub(crate) fn name(
        &mut self,
        node: Node<'_, '_>,
        id: &str,
        pick: fn(&mut Draft) -> &mut names::Names,
    ) -> Option<Name> {
        let Some(given) = pick(&mut self.draft).give(id) else {
            self.not_carried(
                node,
                format!("{} has an id with no letter or digit", xml::describe(node)),
                "give it an id with letters or digits",
            );
            return None;
        };
        if given.renamed {
            self.adjusted(
                node,
                format!(
                    "`{}` is called `{}` (quorate names are lower-case letters, digits and `-`)",
                    xml::truncate(id),
                    given.name
                ),
                "keep the new name, or rename it in the CIB before importing",
            );
        }
        Some(given.name)
    }
}

/// The nvpairs of the `set` children of `node` (`instance_attributes`,
/// `meta_attributes`, `utilization`), as `(name, value, nvpair)` in document order. A
/// set with a rule or an `id-ref` is a finding and skipped: quorate has no conditional
/// settings.
pub(crate) fn nvpairs<'a, 'i>(
    ctx: &mut Ctx<'_>,
    node: Node<'a, 'i>,
    set: &'static str,
) -> Vec<(&'a str, &'a str, Node<'a, 'i>)> {
    let mut out = Vec::new();
    for s in xml::children(node, set) {
        if xml::child(s, "rule").is_some() {
            ctx.not_yet(
                s,
                "rules on settings (a set that applies only when a rule matches)",
                "write the settings that should hold, without the rule",
            );
            continue;
        }
        if s.attribute("id-ref").is_some() {
            ctx.not_carried(
                s,
                format!(
                    "{} refers to another set (`id-ref`), which is not carried over",
                    xml::describe(s)
                ),
                "copy the referred settings into this element before importing",
            );
            continue;
        }
        for nv in xml::children(s, "nvpair") {
            if let (Some(name), Some(value)) = (nv.attribute("name"), nv.attribute("value")) {
                out.push((name, value, nv));
            }
        }
    }
    out
}

/// Whether a Pacemaker boolean is true (`true`, `on`, `yes`, `y`, `1`, any case).
pub(crate) fn is_true(v: &str) -> bool {
    matches!(
        v.trim().to_ascii_lowercase().as_str(),
        "true" | "on" | "yes" | "y" | "1"
    )
}
