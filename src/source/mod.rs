//! The files a spec set is read from, held in memory.
//!
//! Loading and validation work on [`Sources`] only, so they are pure: the same bytes give
//! the same result whether they came from a directory ([`fs`]) or a git commit ([`git`]).
//! [`watch`] notices new commits and [`webhook`] lets a forge announce them. Reading one
//! set is bounded in total by [`budget`].

pub mod budget;
mod confine;
pub mod fs;
pub mod git;
pub mod watch;
pub mod webhook;

use crate::diag::Diagnostic;
use budget::Exceeded;

/// Index of a file in a [`Sources`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FileId(pub u32);

/// One input file: its display name and its raw bytes.
#[derive(Debug, Clone)]
pub struct SourceFile {
    /// The path shown to people, as given or relative to the root that was walked.
    pub name: String,
    /// Raw content; not necessarily UTF-8 (invalid encodings are reported by the loader).
    pub bytes: Vec<u8>,
}

/// All files of one spec set, plus the problems met while collecting them.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    files: Vec<SourceFile>,
    /// Problems met while collecting the files (unreadable, too large, loops).
    pub problems: Vec<Diagnostic>,
    /// The budget the set went over, if it did.
    exceeded: Option<Exceeded>,
}

impl Sources {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a file and returns its id.
    pub fn add(&mut self, name: impl Into<String>, bytes: Vec<u8>) -> FileId {
        let id = FileId(u32::try_from(self.files.len()).unwrap_or(u32::MAX));
        self.files.push(SourceFile {
            name: name.into(),
            bytes,
        });
        id
    }

    /// The file with `id`.
    pub fn get(&self, id: FileId) -> Option<&SourceFile> {
        self.files.get(id.0 as usize)
    }

    /// The display name of `id`, or `"<unknown>"`.
    pub fn name(&self, id: FileId) -> &str {
        self.get(id).map_or("<unknown>", |f| f.name.as_str())
    }

    /// Every file with its id, in the order added.
    pub fn iter(&self) -> impl Iterator<Item = (FileId, &SourceFile)> {
        self.files
            .iter()
            .enumerate()
            .map(|(i, f)| (FileId(u32::try_from(i).unwrap_or(u32::MAX)), f))
    }

    /// Number of files.
    pub fn len(&self) -> usize {
        self.files.len()
    }

    /// Whether there are no files.
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    /// Gives up on the set because it went over `exceeded`: what was read is dropped, and
    /// the one problem left is the finding that names the budget.
    pub fn refuse(&mut self, exceeded: Exceeded) {
        self.files = Vec::new();
        self.problems = vec![exceeded.diagnostic()];
        self.exceeded = Some(exceeded);
    }

    /// The budget the set went over, if it did (then it holds no files).
    pub fn exceeded(&self) -> Option<Exceeded> {
        self.exceeded
    }
}
