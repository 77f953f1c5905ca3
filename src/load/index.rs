//! Where each document of a spec set came from, so that findings about the typed model
//! can point back at the exact YAML node.

use std::collections::BTreeMap;

use super::yaml::Node;
use crate::diag::{Location, Span};
use crate::source::FileId;
use crate::spec::{Kind, Name};

/// A document's file and tree.
#[derive(Debug, Clone)]
pub struct DocOrigin {
    /// The file.
    pub file: FileId,
    /// The whole document.
    pub root: Node,
}

/// Every document of a spec set by kind and name, plus spans that must never be shown.
#[derive(Debug, Default, Clone)]
pub struct SpecIndex {
    docs: BTreeMap<(Kind, Name), DocOrigin>,
    redactions: Vec<(FileId, Span)>,
}

impl SpecIndex {
    /// Records a document.
    pub fn insert(&mut self, kind: Kind, name: Name, file: FileId, root: Node) {
        self.docs.insert((kind, name), DocOrigin { file, root });
    }

    /// The document `kind`/`name`, if one was declared (valid or not).
    pub fn origin(&self, kind: Kind, name: &str) -> Option<&DocOrigin> {
        let name: Name = name.parse().ok()?;
        self.docs.get(&(kind, name))
    }

    /// Whether a document `kind`/`name` was declared (even one whose spec is invalid).
    pub fn declared(&self, kind: Kind, name: &str) -> bool {
        self.origin(kind, name).is_some()
    }

    /// Names of the declared documents of `kind`, sorted.
    pub fn names(&self, kind: Kind) -> Vec<&str> {
        self.docs
            .keys()
            .filter(|(k, _)| *k == kind)
            .map(|(_, n)| n.as_str())
            .collect()
    }

    /// The location of `path` (dot-separated keys and sequence indices, such as
    /// `spec.nodes.2.name`) in document `kind`/`name`. When the path does not exist all
    /// the way, the deepest node that does is given.
    pub fn locate(&self, kind: Kind, name: &str, path: &str) -> Option<Location> {
        let origin = self.origin(kind, name)?;
        Some(Location {
            file: origin.file,
            span: Some(walk(&origin.root, path).span),
        })
    }

    /// Number of documents declared.
    pub fn len(&self) -> usize {
        self.docs.len()
    }

    /// Whether no document was declared.
    pub fn is_empty(&self) -> bool {
        self.docs.is_empty()
    }

    /// Marks a span whose text must never be displayed (an inline secret).
    pub fn redact(&mut self, file: FileId, span: Span) {
        self.redactions.push((file, span));
    }

    /// Spans that renderers must mask.
    pub fn redactions(&self) -> &[(FileId, Span)] {
        &self.redactions
    }
}

fn walk<'a>(root: &'a Node, path: &str) -> &'a Node {
    use super::yaml::Value;
    let mut node = root;
    for seg in path.split('.').filter(|s| !s.is_empty()) {
        let next = match (&node.value, seg.parse::<usize>()) {
            (Value::Seq(items), Ok(i)) => items.get(i),
            _ => node.get(seg),
        };
        match next {
            Some(n) => node = n,
            None => break,
        }
    }
    node
}
