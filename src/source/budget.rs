//! What reading one spec set may cost: the spec files, their bytes and documents, and
//! the entries walked to find them, in total over one commit or one `quorate validate`
//! run. The per-file limits ([`MAX_FILE_BYTES`](super::fs::MAX_FILE_BYTES), the YAML
//! budgets of [`crate::load::yaml`]) bound one file; these bound the set, so a commit
//! cannot multiply a file that is within its own limits (one blob under thousands of
//! names, a tree reachable through thousands of paths) into gigabytes.
//!
//! A set over any of them is refused as a whole with one finding,
//! `quorate::set::too-large`, naming the budget; nothing of it is loaded.
//!
//! The numbers leave room for the largest set quorate is measured on: the planner
//! benchmark's huge set (10,000 nodes, 100,000 instances, the most instances a set may
//! ask for) is 135,011 documents in 13,502 files, 41 MB.

use crate::diag::Diagnostic;

/// Spec files (`*.yaml`, `*.yml`; in a commit also every link and submodule) in one set.
pub const MAX_SET_FILES: u64 = 20_000;
/// Bytes of the spec files of one set, each name counted (a blob under two names is
/// parsed twice, so it counts twice; it is read from git once).
pub const MAX_SET_BYTES: u64 = 64 * 1024 * 1024;
/// YAML documents in the spec files of one set.
pub const MAX_SET_DOCUMENTS: u64 = 200_000;
/// Entries (files and directories of any kind, each path counted) visited to find the
/// spec files.
pub const MAX_SET_ENTRIES: u64 = 100_000;

/// The budget a spec set went over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exceeded {
    /// More than [`MAX_SET_FILES`] spec files.
    Files,
    /// More than [`MAX_SET_BYTES`] bytes of spec files.
    Bytes,
    /// More than [`MAX_SET_DOCUMENTS`] documents.
    Documents,
    /// More than [`MAX_SET_ENTRIES`] entries walked.
    Entries,
}

impl Exceeded {
    /// The limit that was exceeded.
    pub fn limit(self) -> u64 {
        match self {
            Exceeded::Files => MAX_SET_FILES,
            Exceeded::Bytes => MAX_SET_BYTES,
            Exceeded::Documents => MAX_SET_DOCUMENTS,
            Exceeded::Entries => MAX_SET_ENTRIES,
        }
    }

    /// The finding that refuses the set.
    pub fn diagnostic(self) -> Diagnostic {
        let limit = thousands(self.limit());
        let (message, help) = match self {
            Exceeded::Files => (
                format!(
                    "the spec set has more than {limit} spec files (the limit per commit or directory)"
                ),
                "merge small spec files, or point quorate at the directory that holds only the specs",
            ),
            Exceeded::Bytes => (
                format!(
                    "the spec files hold more than {limit} bytes in total (the limit per commit or directory; a file under several names counts once per name)"
                ),
                "remove what is not a spec from the spec directory; specs of even a large cluster are far smaller",
            ),
            Exceeded::Documents => (
                format!(
                    "the spec files hold more than {limit} YAML documents in total (the limit per commit or directory)"
                ),
                "remove the documents that are not specs; a spec set has one document per cluster, bundle, fence or constraint",
            ),
            Exceeded::Entries => (
                format!(
                    "more than {limit} files and directories were walked to find the spec files (the limit per commit or directory)"
                ),
                "point quorate at the directory that holds only the specs (`--path` of `quorate run`)",
            ),
        };
        Diagnostic::error("quorate::set::too-large", message).with_help(help)
    }
}

/// `1234567` as `1,234,567`.
pub(crate) fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// What reading one spec set has used so far.
#[derive(Debug, Default)]
pub(crate) struct Budget {
    entries: u64,
    files: u64,
    bytes: u64,
}

impl Budget {
    /// Counts `n` entries about to be visited.
    pub(crate) fn entries(&mut self, n: u64) -> Result<(), Exceeded> {
        self.entries = self.entries.saturating_add(n);
        (self.entries <= MAX_SET_ENTRIES)
            .then_some(())
            .ok_or(Exceeded::Entries)
    }

    /// Counts one spec file (a name), before anything of it is read.
    pub(crate) fn file(&mut self) -> Result<(), Exceeded> {
        self.files += 1;
        (self.files <= MAX_SET_FILES)
            .then_some(())
            .ok_or(Exceeded::Files)
    }

    /// Counts `n` bytes of spec file, before they are read when the size is known.
    pub(crate) fn bytes(&mut self, n: u64) -> Result<(), Exceeded> {
        self.bytes = self.bytes.saturating_add(n);
        (self.bytes <= MAX_SET_BYTES)
            .then_some(())
            .ok_or(Exceeded::Bytes)
    }

    /// Bytes that may still be read.
    pub(crate) fn bytes_left(&self) -> u64 {
        MAX_SET_BYTES.saturating_sub(self.bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_budget_allows_its_limit_and_refuses_one_more() {
        let mut b = Budget::default();
        assert_eq!(b.entries(MAX_SET_ENTRIES), Ok(()));
        assert_eq!(b.entries(1), Err(Exceeded::Entries));
        for _ in 0..MAX_SET_FILES {
            assert_eq!(b.file(), Ok(()));
        }
        assert_eq!(b.file(), Err(Exceeded::Files));
        assert_eq!(b.bytes(MAX_SET_BYTES - 1), Ok(()));
        assert_eq!(b.bytes_left(), 1);
        assert_eq!(b.bytes(2), Err(Exceeded::Bytes));
        assert_eq!(b.bytes_left(), 0);
    }

    #[test]
    fn the_finding_names_the_budget_and_its_limit() {
        let d = Exceeded::Bytes.diagnostic();
        assert_eq!(d.code, "quorate::set::too-large");
        assert!(d.message.contains("67,108,864 bytes"), "{}", d.message);
        let d = Exceeded::Documents.diagnostic();
        assert!(
            d.message.contains("200,000 YAML documents"),
            "{}",
            d.message
        );
        assert!(
            Exceeded::Files
                .diagnostic()
                .message
                .contains("20,000 spec files")
        );
        assert!(
            Exceeded::Entries
                .diagnostic()
                .message
                .contains("100,000 files and directories")
        );
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_000), "1,000");
    }
}
