//! The spec set as YAML files, serialized from the spec types (never written by hand), and
//! the check that they mean what the import built: the real validator reads them back,
//! and the set it loads must equal the one built. A difference is a bug of the import.

use std::collections::BTreeMap;

use serde::Serialize;

use super::{Doc, Draft, INVALID_OUTPUT};
use crate::diag::Diagnostic;
use crate::source::{FileId, Sources};
use crate::spec::{API_VERSION, Document, Kind, Metadata, Name, SpecSet};

/// One file of the imported set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OutputFile {
    /// The file name, e.g. `bundles.yaml`.
    pub name: &'static str,
    /// Its YAML text.
    pub text: String,
}

/// The files of `draft`: cluster, bundles, fences, constraints, groups (a file with no
/// document is left out).
pub(crate) fn files(draft: &Draft, cib_name: &str) -> Vec<OutputFile> {
    let cluster = Doc {
        spec: draft.cluster.clone(),
        origin: draft.cluster_origin.join(", "),
    };
    let cluster_name = cluster_name(draft);
    let mut out = Vec::new();
    let mut push = |name: &'static str, text: String| {
        if !text.is_empty() {
            out.push(OutputFile {
                name,
                text: format!(
                    "# Imported from {cib_name} by `quorate import pacemaker` (see docs/import.md).\n{text}"
                ),
            });
        }
    };
    push(
        "cluster.yaml",
        document(Kind::Cluster, &cluster_name, &cluster, cib_name),
    );
    push(
        "bundles.yaml",
        documents(Kind::Bundle, &draft.bundles, cib_name),
    );
    push(
        "fences.yaml",
        documents(Kind::Fence, &draft.fences, cib_name),
    );
    push(
        "constraints.yaml",
        documents(Kind::Constraint, &draft.constraints, cib_name),
    );
    push(
        "groups.yaml",
        documents(Kind::Group, &draft.groups, cib_name),
    );
    out
}

fn cluster_name(draft: &Draft) -> Name {
    draft
        .cluster_name
        .clone()
        .unwrap_or_else(super::config::default_cluster_name)
}

fn documents<S: Serialize>(kind: Kind, docs: &BTreeMap<Name, Doc<S>>, cib: &str) -> String {
    docs.iter()
        .map(|(name, doc)| document(kind, name, doc, cib))
        .collect::<Vec<_>>()
        .join("")
}

/// One document: a comment naming where it came from, then the YAML.
fn document<S: Serialize>(kind: Kind, name: &Name, doc: &Doc<S>, cib: &str) -> String {
    let d = Document {
        api_version: API_VERSION.to_owned(),
        kind: kind.as_str().to_owned(),
        metadata: Metadata {
            name: name.clone(),
            labels: BTreeMap::new(),
            annotations: BTreeMap::new(),
        },
        spec: &doc.spec,
    };
    // The spec types are plain data (strings, numbers, maps, lists): serializing them
    // does not fail; if it ever did, the read-back check below reports the missing
    // document as a difference.
    let yaml = serde_saphyr::to_string(&d).unwrap_or_default();
    let origin = doc.origin.replace('\n', " ");
    format!("---\n# from {origin} of {cib}\n{yaml}")
}

/// The set `draft` stands for, as validation would build it (groups and sets expanded).
fn expected(draft: &Draft) -> SpecSet {
    let set = SpecSet {
        cluster_name: cluster_name(draft),
        cluster: draft.cluster.clone(),
        bundles: specs(&draft.bundles),
        fences: specs(&draft.fences),
        constraints: specs(&draft.constraints),
        groups: specs(&draft.groups),
    };
    crate::spec::expand::expand(set).set
}

fn specs<S: Clone>(docs: &BTreeMap<Name, Doc<S>>) -> BTreeMap<Name, S> {
    docs.iter()
        .map(|(n, d)| (n.clone(), d.spec.clone()))
        .collect()
}

/// Validates `files` with the real validator. `Ok` with its warnings when the set is
/// valid and reads back as `draft`; `Err` with its findings otherwise (located in the
/// files, numbered from 1: file 0 is the CIB).
pub(crate) fn check(
    files: &[OutputFile],
    draft: &Draft,
) -> Result<Vec<Diagnostic>, Vec<Diagnostic>> {
    let mut sources = Sources::new();
    for f in files {
        sources.add(f.name, f.text.as_bytes().to_vec());
    }
    let report = crate::validate::validate(&sources);
    let mut diagnostics: Vec<Diagnostic> = report.diagnostics.iter().cloned().map(shift).collect();
    match report.valid_set() {
        Some(set) if *set == expected(draft) => Ok(diagnostics),
        Some(_) => {
            diagnostics.push(
                Diagnostic::error(INVALID_OUTPUT, "the written spec set reads back differently from the one imported")
                    .with_help("this is a bug of `quorate import`: please report it with the CIB (passwords removed)"),
            );
            Err(diagnostics)
        }
        None => Err(diagnostics),
    }
}

/// A finding of the validator, renumbered for a file list that starts with the CIB.
fn shift(mut d: Diagnostic) -> Diagnostic {
    let next = |f: FileId| FileId(f.0.saturating_add(1));
    if let Some(l) = d.location.as_mut() {
        l.file = next(l.file);
    }
    for r in &mut d.related {
        r.location.file = next(r.location.file);
    }
    d
}
