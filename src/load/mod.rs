//! Loading a spec set: sources to typed documents, with every problem located.
//!
//! Pure: [`load`] reads only the in-memory [`Sources`]. It runs the first two validation
//! layers (YAML, then shape) and assembles the [`SpecSet`]; the third layer (meaning)
//! is [`crate::validate`]. A document that fails a layer is reported and left out, and
//! loading goes on, so one run reports the problems of every file.

pub(crate) mod de;
pub(crate) mod index;
mod secret_spans;
pub mod yaml;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

use de::{MAX_ERRORS, ShapeErrorKind, from_node};
pub(crate) use index::Locator;
pub use index::{DocOrigin, SpecIndex};
use yaml::{Node, ParseErrorKind, Value};

use crate::diag::{Diagnostic, Location, Span};
use crate::source::budget::{Exceeded, MAX_SET_DOCUMENTS};
use crate::source::{FileId, Sources};
use crate::spec::{
    API_VERSION, BundleSpec, ClusterSpec, ConstraintSpec, FenceSpec, GroupSpec, Kind, Metadata,
    Name, SpecSet, packed,
};

/// The result of loading: the spec set, where every document came from, and what was
/// wrong.
#[derive(Debug)]
pub struct Loaded {
    /// The documents that loaded. When there is no single valid Cluster document its place
    /// is taken by an empty one and `cluster_ok` is false, so the meaning checks that do
    /// not need the nodes can still run; such a set is never valid.
    pub set: SpecSet,
    /// Whether `set.cluster` is the one Cluster document of the sources.
    pub cluster_ok: bool,
    /// Where each document is, for locating later findings.
    pub index: SpecIndex,
    /// Problems of the YAML and shape layers.
    pub diagnostics: Vec<Diagnostic>,
}

impl Loaded {
    /// Nothing loaded: the set went over its budget, and `diagnostics` say so.
    fn refused(diagnostics: Vec<Diagnostic>) -> Loaded {
        Loaded {
            set: SpecSet {
                cluster_name: Name::from_static("unknown"),
                cluster: ClusterSpec::default(),
                bundles: BTreeMap::new(),
                fences: BTreeMap::new(),
                constraints: BTreeMap::new(),
                groups: BTreeMap::new(),
            },
            cluster_ok: false,
            index: SpecIndex::default(),
            diagnostics,
        }
    }
}

/// Documents found so far in all files of one set, shared by the threads that load them,
/// so loading stops decoding (and parsing) once the set is over [`MAX_SET_DOCUMENTS`].
#[derive(Default)]
struct DocumentCount(AtomicU64);

impl DocumentCount {
    /// The set already holds more documents than its budget.
    fn over(&self) -> bool {
        self.0.load(Ordering::Relaxed) > MAX_SET_DOCUMENTS
    }

    /// Counts `n` more documents; false once the set holds more than its budget.
    fn add(&self, n: u64) -> bool {
        self.0.fetch_add(n, Ordering::Relaxed).saturating_add(n) <= MAX_SET_DOCUMENTS
    }
}

const TOP_LEVEL: &[&str] = &["apiVersion", "kind", "metadata", "spec"];
const KINDS: &[&str] = &["Cluster", "Bundle", "Fence", "Constraint", "Group"];

/// A document after the YAML and shape layers, before it joins the set.
struct Decoded {
    origin: DocOrigin,
    kind: Kind,
    name: Name,
    spec: Option<TypedSpec>,
}

enum TypedSpec {
    Cluster(ClusterSpec),
    Bundle(BundleSpec),
    Fence(FenceSpec),
    Constraint(ConstraintSpec),
    Group(GroupSpec),
}

/// Loads every document of every file in `sources`.
///
/// Files are parsed and decoded on all cores (each file on its own is pure work); the
/// results are then joined in file order, so the outcome does not depend on threads. A
/// set over its budget (refused while read, or holding more than
/// [`MAX_SET_DOCUMENTS`] documents in all) loads nothing: its one finding says which.
pub fn load(sources: &Sources) -> Loaded {
    if sources.exceeded().is_some() {
        return Loaded::refused(sources.problems.clone());
    }
    let files: Vec<(FileId, &[u8])> = sources
        .iter()
        .map(|(id, f)| (id, f.bytes.as_slice()))
        .collect();
    let count = DocumentCount::default();
    let decoded = crate::parallel::map(&files, |(file, bytes)| decode_file(*file, bytes, &count));
    if count.over() {
        return Loaded::refused(vec![Exceeded::Documents.diagnostic()]);
    }
    let mut diagnostics = sources.problems.clone();
    let mut set = Gathered::default();
    for (docs, diags, secrets) in decoded.into_iter().flatten() {
        diagnostics.extend(diags);
        for (file, span) in secrets {
            set.index.redact(file, span);
        }
        for doc in docs {
            set.add(doc, &mut diagnostics);
        }
    }
    set.loaded(diagnostics)
}

/// The documents of a set gathered in file order: the specs by kind, and every
/// document's origin (valid or not).
#[derive(Default)]
struct Gathered {
    index: SpecIndex,
    clusters: Vec<(Name, ClusterSpec)>,
    bundles: BTreeMap<Name, BundleSpec>,
    fences: BTreeMap<Name, FenceSpec>,
    constraints: BTreeMap<Name, ConstraintSpec>,
    groups: BTreeMap<Name, GroupSpec>,
}

impl Gathered {
    /// Adds `doc`, or says where the first document of its kind and name is.
    fn add(&mut self, doc: Decoded, diagnostics: &mut Vec<Diagnostic>) {
        let Decoded {
            origin,
            kind,
            name,
            spec,
        } = doc;
        if let Some(first) = self.index.origin(kind, name.as_str()) {
            let first = first.name_location();
            diagnostics.push(
                Diagnostic::error(
                    "quorate::set::duplicate-name",
                    format!("a {kind} named `{name}` is already defined"),
                )
                .with_help(format!("rename one of the two {kind} documents"))
                .at(origin.name_location())
                .with_related(first, "first defined here"),
            );
            return;
        }
        match spec {
            None => {}
            Some(TypedSpec::Cluster(s)) => self.clusters.push((name.clone(), s)),
            Some(TypedSpec::Bundle(s)) => {
                self.bundles.insert(name.clone(), s);
            }
            Some(TypedSpec::Fence(s)) => {
                self.fences.insert(name.clone(), s);
            }
            Some(TypedSpec::Constraint(s)) => {
                self.constraints.insert(name.clone(), s);
            }
            Some(TypedSpec::Group(s)) => {
                self.groups.insert(name.clone(), s);
            }
        }
        self.index.insert(kind, name, origin);
    }

    /// The set, with its one Cluster document assembled.
    fn loaded(self, mut diagnostics: Vec<Diagnostic>) -> Loaded {
        let cluster = assemble(self.clusters, &self.index, &mut diagnostics);
        let cluster_ok = cluster.is_some();
        let (cluster_name, cluster) =
            cluster.unwrap_or_else(|| (Name::from_static("unknown"), ClusterSpec::default()));
        Loaded {
            set: SpecSet {
                cluster_name,
                cluster,
                bundles: packed(self.bundles),
                fences: self.fences,
                constraints: packed(self.constraints),
                groups: self.groups,
            },
            cluster_ok,
            index: self.index,
            diagnostics,
        }
    }
}

/// What one file gave: its documents, its problems, and the spans of inline secrets.
type DecodedFile = (Vec<Decoded>, Vec<Diagnostic>, Vec<(FileId, Span)>);

/// The YAML and shape layers for one file, its documents counted in `count`; `None` once
/// the set is over its budget of documents (nothing more of it is decoded).
fn decode_file(file: FileId, bytes: &[u8], count: &DocumentCount) -> Option<DecodedFile> {
    if count.over() {
        return None;
    }
    let roots = match yaml::parse_documents(bytes) {
        Ok(roots) => roots,
        Err(e) if e.kind == ParseErrorKind::TooManyDocuments => {
            count.add(MAX_SET_DOCUMENTS + 1);
            return None;
        }
        Err(e) => {
            // No tree to trust: the secrets are found by the file's lines.
            let secrets = secret_spans::in_lines(bytes);
            let secrets = secrets.into_iter().map(|span| (file, span)).collect();
            return Some((Vec::new(), vec![parse_diagnostic(file, &e)], secrets));
        }
    };
    if !count.add(roots.len() as u64) {
        return None;
    }
    let mut diags = Vec::new();
    let secrets = roots
        .iter()
        .flat_map(secret_spans::in_tree)
        .map(|span| (file, span))
        .collect();
    let mut docs = Vec::with_capacity(roots.len());
    for (ordinal, root) in roots.into_iter().enumerate() {
        let first = diags.len();
        let decoded = header(file, &root, &mut diags);
        let spec = decoded.as_ref().and_then(|(kind, _, usable)| {
            let n = root.get("spec").filter(|_| *usable)?;
            match kind {
                Kind::Cluster => typed(file, n, &mut diags).map(TypedSpec::Cluster),
                Kind::Bundle => typed(file, n, &mut diags).map(TypedSpec::Bundle),
                Kind::Fence => typed(file, n, &mut diags).map(TypedSpec::Fence),
                Kind::Constraint => typed(file, n, &mut diags).map(TypedSpec::Constraint),
                Kind::Group => typed(file, n, &mut diags).map(TypedSpec::Group),
            }
        });
        cap_document(&mut diags, first);
        let Some((kind, metadata, _)) = decoded else {
            continue;
        };
        let name = root.get("metadata").and_then(|m| m.get("name"));
        docs.push(Decoded {
            origin: DocOrigin {
                file,
                ordinal,
                name: name.unwrap_or(&root).span,
            },
            kind,
            name: metadata.name,
            spec,
        });
    }
    Some((docs, diags, secrets))
}

/// The one Cluster, or `None` (reported) when there is none, several, or it is invalid.
fn assemble(
    clusters: Vec<(Name, ClusterSpec)>,
    index: &SpecIndex,
    diags: &mut Vec<Diagnostic>,
) -> Option<(Name, ClusterSpec)> {
    let declared = index.names(Kind::Cluster);
    if declared.len() > 1 {
        let at = |name| {
            index
                .origin(Kind::Cluster, name)
                .map(DocOrigin::name_location)
        };
        let first = at(declared[0]);
        for other in &declared[1..] {
            let mut d = Diagnostic::error(
                "quorate::set::multiple-clusters",
                format!("a second Cluster document `{other}`: a spec set describes exactly one cluster"),
            )
            .with_help("keep one Cluster document; put each cluster's specs in its own directory or repository");
            if let Some(l) = at(other) {
                d = d.at(l);
            }
            if let Some(f) = first {
                d = d.with_related(f, "the first Cluster");
            }
            diags.push(d);
        }
        return None;
    }
    if declared.is_empty() {
        diags.push(
            Diagnostic::error(
                "quorate::set::no-cluster",
                "the spec set has no Cluster document",
            )
            .with_help("add a document with `kind: Cluster` listing the nodes (see examples/)"),
        );
        return None;
    }
    clusters.into_iter().next()
}

/// Checks the fixed part of a document and returns its kind, its metadata, and whether
/// the rest is usable. A document with a name but a broken header is still recorded, so
/// references to it do not cascade into more errors; its spec is not used.
fn header(
    file: FileId,
    root: &Node,
    diags: &mut Vec<Diagnostic>,
) -> Option<(Kind, Metadata, bool)> {
    let Value::Map(entries) = &root.value else {
        if root.value != Value::Null {
            diags.push(
                Diagnostic::error(
                    "quorate::doc::not-a-mapping",
                    format!(
                        "a document must be a mapping, found {}",
                        root.value.type_name()
                    ),
                )
                .with_help("start each document with `apiVersion: quorate.io/v1alpha1` and `kind:`")
                .at(located(file, root.span)),
            );
        }
        return None;
    };
    let mut ok = known_fields(file, entries, diags);
    ok &= api_version(file, root, diags);
    let kind = kind_of(file, root, diags);
    let metadata = match root.get("metadata") {
        None => {
            diags.push(missing(
                file,
                root,
                "metadata",
                "add `metadata:` with a `name:`",
            ));
            None
        }
        Some(m) => typed::<Metadata>(file, m, diags),
    };
    if root.get("spec").is_none() && kind.is_some() {
        ok = false;
        let help = "add `spec:` with the settings of this kind (see the README)";
        diags.push(missing(file, root, "spec", help));
    }
    let (kind, metadata) = kind.zip(metadata)?;
    Some((kind, metadata, ok))
}

/// `span` in `file`.
fn located(file: FileId, span: Span) -> Location {
    Location {
        file,
        span: Some(span),
    }
}

/// A required top-level `field` missing from the document `root`.
fn missing(file: FileId, root: &Node, field: &str, help: &str) -> Diagnostic {
    Diagnostic::error(
        "quorate::shape::missing-field",
        format!("missing required field `{field}`"),
    )
    .with_help(help.to_owned())
    .at(located(file, root.span))
}

/// Whether every top-level field of a document is one a document has; each other one
/// is reported.
fn known_fields(file: FileId, entries: &[(Node, Node)], diags: &mut Vec<Diagnostic>) -> bool {
    let mut ok = true;
    for (k, _) in entries {
        let key = k.as_str().unwrap_or("");
        if !TOP_LEVEL.contains(&key) {
            ok = false;
            let e = de::suggest(key, TOP_LEVEL.iter().copied()).map_or_else(
                || format!("unknown top-level field `{key}`"),
                |s| format!("unknown top-level field `{key}` (did you mean `{s}`?)"),
            );
            diags.push(
                Diagnostic::error("quorate::shape::unknown-field", e)
                    .with_help("a document has only apiVersion, kind, metadata and spec; settings go under spec")
                    .at(located(file, k.span)),
            );
        }
    }
    ok
}

/// Whether the document's `apiVersion` is the one this version reads; otherwise why not
/// is reported.
fn api_version(file: FileId, root: &Node, diags: &mut Vec<Diagnostic>) -> bool {
    match root.get("apiVersion") {
        None => {
            let help = "add `apiVersion: quorate.io/v1alpha1`";
            diags.push(missing(file, root, "apiVersion", help));
            false
        }
        Some(v) if v.as_str() != Some(API_VERSION) => {
            diags.push(
                Diagnostic::error(
                    "quorate::doc::api-version",
                    format!("unsupported apiVersion {}", scalar_text(v)),
                )
                .with_help(format!(
                    "this version of quorate reads `apiVersion: {API_VERSION}`"
                ))
                .at(located(file, v.span)),
            );
            false
        }
        Some(_) => true,
    }
}

/// The document's `kind`, or `None` (reported) when it is missing or unknown.
fn kind_of(file: FileId, root: &Node, diags: &mut Vec<Diagnostic>) -> Option<Kind> {
    let Some(v) = root.get("kind") else {
        let help = "add `kind:` with one of Cluster, Bundle, Fence, Constraint, Group";
        diags.push(missing(file, root, "kind", help));
        return None;
    };
    let k = v.as_str().and_then(Kind::parse);
    if k.is_none() {
        let text = scalar_text(v);
        let hint = v
            .as_str()
            .and_then(|s| de::suggest(s, KINDS.iter().copied()))
            .map_or_else(String::new, |s| format!(" (did you mean `{s}`?)"));
        diags.push(
            Diagnostic::error("quorate::doc::kind", format!("unknown kind {text}{hint}"))
                .with_help("kind is one of Cluster, Bundle, Fence, Constraint, Group")
                .at(located(file, v.span)),
        );
    }
    k
}

fn scalar_text(n: &Node) -> String {
    match &n.value {
        Value::Str(s) => format!("`{}`", s.chars().take(60).collect::<String>()),
        other => other.type_name().to_owned(),
    }
}

/// Decodes `node` as `T`, turning shape errors into diagnostics.
fn typed<'a, T: serde::Deserialize<'a>>(
    file: FileId,
    node: &'a Node<'a>,
    diags: &mut Vec<Diagnostic>,
) -> Option<T> {
    let e = match from_node::<T>(node) {
        Ok(v) => return Some(v),
        Err(e) => e,
    };
    let at = |span: Option<Span>| Location {
        file,
        span: span.or(Some(node.span)),
    };
    for x in e.errors {
        let (code, default_help) = match &x.kind {
            ShapeErrorKind::UnknownField { expected, .. } => (
                "quorate::shape::unknown-field",
                if expected.is_empty() {
                    "remove it".to_owned()
                } else {
                    format!("fields allowed here: {}", expected.join(", "))
                },
            ),
            ShapeErrorKind::MissingField(f) => {
                ("quorate::shape::missing-field", format!("add `{f}:` here"))
            }
            ShapeErrorKind::InvalidType => (
                "quorate::shape::invalid-type",
                "change the value to the expected type (the README lists every field)".to_owned(),
            ),
            ShapeErrorKind::InvalidValue => (
                "quorate::shape::invalid-value",
                "correct the value as the message says".to_owned(),
            ),
            ShapeErrorKind::UnknownVariant => (
                "quorate::shape::unknown-variant",
                "use one of the listed values".to_owned(),
            ),
        };
        diags.push(
            Diagnostic::error(code, x.message)
                .with_help(x.help.unwrap_or(default_help))
                .at(at(x.span)),
        );
    }
    if e.more {
        let last = diags.last().and_then(|d| d.location);
        diags.push(too_many().at(last.unwrap_or(at(None))));
    }
    None
}

const TOO_MANY: &str = "quorate::shape::too-many-problems";

/// The note that a document has more problems than are shown.
fn too_many() -> Diagnostic {
    Diagnostic::error(
        TOO_MANY,
        format!(
            "there may be more problems from here on: quorate reports at most {MAX_ERRORS} per document (fewer in a very large one)"
        ),
    )
    .with_help("fix the problems above and validate again")
}

/// Keeps at most [`MAX_ERRORS`] findings of the document whose findings start at
/// `first`, and one note when there were more or decoding stopped early, so a hostile
/// document cannot flood the output.
fn cap_document(diags: &mut Vec<Diagnostic>, first: usize) {
    let doc = diags.split_off(first.min(diags.len()));
    let (notes, mut found): (Vec<_>, Vec<_>) = doc.into_iter().partition(|d| d.code == TOO_MANY);
    if found.len() > MAX_ERRORS || !notes.is_empty() {
        let at = found
            .get(MAX_ERRORS)
            .or(found.last())
            .and_then(|d| d.location)
            .or_else(|| notes.first().and_then(|n| n.location));
        found.truncate(MAX_ERRORS);
        found.push(match at {
            Some(l) => too_many().at(l),
            None => too_many(),
        });
    }
    diags.extend(found);
}

fn parse_diagnostic(file: FileId, e: &yaml::ParseError) -> Diagnostic {
    let (code, help) = match e.kind {
        ParseErrorKind::Encoding => ("quorate::yaml::encoding", "save the file as UTF-8"),
        ParseErrorKind::Syntax => ("quorate::yaml::syntax", yaml::syntax_help(&e.message)),
        ParseErrorKind::Budget => (
            "quorate::yaml::budget",
            "specs are small and shallow; remove the deep nesting, huge values or alias chains",
        ),
        // `load` refuses the whole set first; kept for a file decoded on its own.
        ParseErrorKind::TooManyDocuments => return Exceeded::Documents.diagnostic(),
        ParseErrorKind::DuplicateKey => (
            "quorate::yaml::duplicate-key",
            "remove one of the two entries with this key",
        ),
        ParseErrorKind::Tag => (
            "quorate::yaml::tag",
            "remove the tag: specs use plain YAML values only",
        ),
    };
    Diagnostic::error(code, e.message.clone())
        .with_help(help)
        .at(located(file, e.span))
}
