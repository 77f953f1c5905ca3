//! Where each document of a spec set came from, so that findings about the typed model
//! can point back at the exact YAML node.
//!
//! Loading keeps no document's tree: the index holds each document's file, its place in
//! the file and the span of its name. A finding that points deeper has the [`Locator`]
//! parse that file again, once, when it is first asked for.

use std::collections::{BTreeMap, HashMap};

use super::yaml::{self, Node, Value};
use crate::diag::{Location, Span};
use crate::source::{FileId, Sources};
use crate::spec::{Kind, Name};

/// A document's file, its place there and its name's span.
#[derive(Debug, Clone)]
pub struct DocOrigin {
    /// The file.
    pub file: FileId,
    /// Which document of the file it is, from 0.
    pub ordinal: usize,
    /// Where `metadata.name` is written.
    pub name: Span,
}

impl DocOrigin {
    /// Where the document's name is written.
    pub fn name_location(&self) -> Location {
        Location {
            file: self.file,
            span: Some(self.name),
        }
    }
}

/// Every document of a spec set by kind and name, plus spans that must never be shown.
/// Hashed by name: validation looks a document up for most findings and references.
#[derive(Debug, Default, Clone)]
pub struct SpecIndex {
    docs: BTreeMap<Kind, Named>,
    redactions: Vec<(FileId, Span)>,
}

/// The documents of one kind by name.
type Named = std::collections::HashMap<Name, DocOrigin, foldhash::fast::RandomState>;

impl SpecIndex {
    /// Records a document.
    pub fn insert(&mut self, kind: Kind, name: Name, origin: DocOrigin) {
        self.docs.entry(kind).or_default().insert(name, origin);
    }

    /// The document `kind`/`name`, if one was declared (valid or not).
    pub fn origin(&self, kind: Kind, name: &str) -> Option<&DocOrigin> {
        self.docs.get(&kind)?.get(name)
    }

    /// Whether a document `kind`/`name` was declared (even one whose spec is invalid).
    pub fn declared(&self, kind: Kind, name: &str) -> bool {
        self.origin(kind, name).is_some()
    }

    /// Names of the declared documents of `kind`, sorted.
    pub fn names(&self, kind: Kind) -> Vec<&str> {
        let mut names: Vec<&str> = self
            .docs
            .get(&kind)
            .into_iter()
            .flat_map(|named| named.keys().map(Name::as_str))
            .collect();
        names.sort_unstable();
        names
    }

    /// Number of documents declared.
    pub fn len(&self) -> usize {
        self.docs.values().map(Named::len).sum()
    }

    /// Whether no document was declared.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
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

/// Locates paths in the documents of an index, parsing a file again the first time one
/// of its documents is asked for (the same bytes parse to the same documents).
pub(crate) struct Locator<'a> {
    index: &'a SpecIndex,
    sources: &'a Sources,
    parsed: HashMap<FileId, Vec<Node<'a>>>,
}

impl<'a> Locator<'a> {
    pub(crate) fn new(index: &'a SpecIndex, sources: &'a Sources) -> Locator<'a> {
        Locator {
            index,
            sources,
            parsed: HashMap::new(),
        }
    }

    /// The index it locates in.
    pub(crate) fn index(&self) -> &'a SpecIndex {
        self.index
    }

    /// The location of `path` (dot-separated keys and sequence indices, such as
    /// `spec.nodes.2.name`) in document `kind`/`name`. When the path does not exist all
    /// the way, the deepest node that does is given.
    pub(crate) fn locate(&mut self, kind: Kind, name: &str, path: &str) -> Option<Location> {
        let origin = self.index.origin(kind, name)?;
        let sources = self.sources;
        let roots = self.parsed.entry(origin.file).or_insert_with(|| {
            sources
                .get(origin.file)
                .and_then(|f| yaml::parse_documents(&f.bytes).ok())
                .unwrap_or_default()
        });
        // Only with other bytes than were loaded: the name is the best place left.
        let Some(root) = roots.get(origin.ordinal) else {
            return Some(origin.name_location());
        };
        Some(Location {
            file: origin.file,
            span: Some(walk(root, path).span),
        })
    }
}

fn walk<'a, 't>(root: &'a Node<'t>, path: &str) -> &'a Node<'t> {
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

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "\
apiVersion: quorate.io/v1alpha1
kind: Bundle
metadata: {name: a}
spec: {image: 'x:1'}
---
apiVersion: quorate.io/v1alpha1
kind: Bundle
metadata:
  name: b
spec:
  image: 'y:1'
  replicas: 2
";

    #[test]
    fn a_path_is_found_in_its_own_document_of_the_file() {
        let mut sources = Sources::new();
        sources.add("first.yaml", b"# nothing here\n".to_vec());
        sources.add("two.yaml", FILE.as_bytes().to_vec());
        let loaded = crate::load::load(&sources);
        let b = loaded
            .index
            .origin(Kind::Bundle, "b")
            .expect("b is indexed");
        assert_eq!((b.file, b.ordinal), (FileId(1), 1));
        assert_eq!((b.name.line, b.name.column), (9, 9));
        let mut locator = Locator::new(&loaded.index, &sources);
        let at = |l: Option<Location>| l.and_then(|l| l.span).map(|s| (s.line, s.column));
        let replicas = locator.locate(Kind::Bundle, "b", "spec.replicas");
        assert_eq!(at(replicas), Some((12, 13)));
        // A path that goes on past what is written stops at the deepest node there is.
        let deeper = locator.locate(Kind::Bundle, "a", "spec.image.tag");
        assert_eq!(at(deeper), Some((4, 15)));
        assert_eq!(locator.locate(Kind::Bundle, "c", "spec"), None);
        assert_eq!(locator.parsed.len(), 1, "one file parsed once");
    }
}
