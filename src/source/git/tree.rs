//! Reading a commit's spec files from its tree: the git counterpart of
//! [`crate::source::fs`], with the same rules.
//!
//! Entries are visited depth first in name order; names starting with `.` are skipped;
//! only `*.yaml` and `*.yml` blobs are read, each at most [`MAX_FILE_BYTES`] (checked from
//! the object header, before the blob is loaded), all of them within the set's
//! [`budget`](crate::source::budget): every entry walked, every spec file name and its
//! bytes count, so one blob under many names, or one tree under many paths, cannot make
//! a small repository read gigabytes. A blob is read from the object database once
//! however many names it has. File names are repository-relative
//! paths. Symbolic links and submodules are not followed: they are reported as errors,
//! because a link that is silently skipped could drop specs, and the reconciler would then
//! stop what those specs describe.

use std::collections::HashMap;
use std::path::Path;

use git2::{ErrorCode, ObjectType, Odb, Oid, Repository, TreeEntry};

use super::GitError;
use crate::diag::Diagnostic;
use crate::source::budget::{Budget, Exceeded};
use crate::source::fs::{MAX_FILE_BYTES, is_spec_file};
use crate::source::{FileId, Sources};

/// Git's file mode for a symbolic link.
const MODE_LINK: i32 = 0o120000;

/// Reads the spec files of `commit` (a full or abbreviated hex id, or any revision git
/// understands) under `subdir` of its tree.
///
/// Fails only when the commit or its objects cannot be read; problems with the files
/// themselves (too large, links, a missing subdirectory) become diagnostics, and a tree
/// over the budget is refused ([`Sources::exceeded`]).
pub(crate) fn read_commit(
    repo: &Repository,
    commit: &str,
    subdir: Option<&Path>,
) -> Result<Sources, GitError> {
    let not_found = |source| GitError::NoCommit {
        commit: commit.to_owned(),
        source,
    };
    let object = repo.revparse_single(commit).map_err(not_found)?;
    let commit_obj = object.peel_to_commit().map_err(not_found)?;
    let tree = commit_obj
        .tree()
        .map_err(GitError::read("the commit's tree"))?;
    let mut sources = Sources::new();
    let Some(dir) = subdir.filter(|d| !d.as_os_str().is_empty()) else {
        walk(repo, tree.id(), String::new(), &mut sources)?;
        return Ok(sources);
    };
    let shown = dir.display().to_string();
    match tree.get_path(dir) {
        Ok(entry) if entry.kind() == Some(ObjectType::Tree) => {
            walk(repo, entry.id(), format!("{shown}/"), &mut sources)?;
        }
        Ok(_) => problem(
            &mut sources,
            shown.clone(),
            "quorate::file::not-a-directory",
            format!(
                "{shown} is not a directory in commit {}",
                short(&commit_obj.id())
            ),
            "point quorate at the directory that holds the spec files",
        ),
        Err(e) if e.code() == ErrorCode::NotFound => problem(
            &mut sources,
            shown.clone(),
            "quorate::file::no-directory",
            format!(
                "commit {} has no directory {shown}",
                short(&commit_obj.id())
            ),
            "commit the spec directory, or point quorate at the one that exists",
        ),
        Err(e) => return Err(GitError::read("the spec directory")(e)),
    }
    Ok(sources)
}

/// One tree entry waiting to be visited.
struct Pending {
    path: String,
    id: Oid,
    kind: Option<ObjectType>,
    mode: i32,
}

/// What a walk keeps: where it reads from, what it has spent, which blobs it has read.
struct Walk<'r> {
    repo: &'r Repository,
    odb: Odb<'r>,
    budget: Budget,
    /// The first file read from each blob, so a blob under many names is read once.
    read: HashMap<Oid, FileId>,
}

/// Why a walk stopped early.
enum Stop {
    /// The set went over its budget: it is refused.
    Over(Exceeded),
    /// The repository could not be read.
    Failed(GitError),
}

impl From<Exceeded> for Stop {
    fn from(e: Exceeded) -> Stop {
        Stop::Over(e)
    }
}

impl From<GitError> for Stop {
    fn from(e: GitError) -> Stop {
        Stop::Failed(e)
    }
}

/// Visits the tree `root` depth first, in name order, without recursion (a hostile
/// repository could nest trees deep enough to overflow the stack). Over the budget, the
/// set is refused.
fn walk(
    repo: &Repository,
    root: Oid,
    prefix: String,
    sources: &mut Sources,
) -> Result<(), GitError> {
    let mut w = Walk {
        repo,
        odb: repo.odb().map_err(GitError::read("the object database"))?,
        budget: Budget::default(),
        read: HashMap::new(),
    };
    match visit(&mut w, root, &prefix, sources) {
        Ok(()) => Ok(()),
        Err(Stop::Over(exceeded)) => {
            sources.refuse(exceeded);
            Ok(())
        }
        Err(Stop::Failed(e)) => Err(e),
    }
}

fn visit(w: &mut Walk<'_>, root: Oid, prefix: &str, sources: &mut Sources) -> Result<(), Stop> {
    let mut stack = Vec::new();
    push_children(w, root, prefix, &mut stack)?;
    while let Some(entry) = stack.pop() {
        match entry.kind {
            Some(ObjectType::Tree) => {
                push_children(w, entry.id, &format!("{}/", entry.path), &mut stack)?;
            }
            Some(ObjectType::Blob) if entry.mode == MODE_LINK => {
                w.budget.file()?;
                problem(
                    sources,
                    entry.path.clone(),
                    "quorate::file::symlink",
                    format!(
                        "{} is a symbolic link; quorate does not follow links in a commit",
                        entry.path
                    ),
                    "commit the file or directory itself instead of a link to it",
                );
            }
            Some(ObjectType::Blob) if is_spec_file(Path::new(&entry.path)) => {
                read_blob(w, entry, sources)?;
            }
            Some(ObjectType::Commit) => {
                w.budget.file()?;
                problem(
                    sources,
                    entry.path.clone(),
                    "quorate::file::submodule",
                    format!(
                        "{} is a submodule; quorate does not read submodules",
                        entry.path
                    ),
                    "commit the spec files into this repository",
                );
            }
            _ => {}
        }
    }
    Ok(())
}

/// Pushes the visible entries of tree `id` so that they pop in name order, counting
/// them all in the budget before any is kept.
fn push_children(
    w: &mut Walk<'_>,
    id: Oid,
    prefix: &str,
    stack: &mut Vec<Pending>,
) -> Result<(), Stop> {
    let tree = w.repo.find_tree(id).map_err(GitError::read("a tree"))?;
    w.budget.entries(tree.len() as u64)?;
    let mut children: Vec<(Vec<u8>, Pending)> = tree
        .iter()
        .filter(|e| e.name_bytes().first() != Some(&b'.'))
        .map(|e: TreeEntry<'_>| {
            let name = e.name_bytes().to_vec();
            let pending = Pending {
                path: format!("{prefix}{}", String::from_utf8_lossy(&name)),
                id: e.id(),
                kind: e.kind(),
                mode: e.filemode(),
            };
            (name, pending)
        })
        .collect();
    // Git orders a directory as if its name ended in '/'; people (and `source::fs`) expect
    // plain name order.
    children.sort_by(|a, b| b.0.cmp(&a.0));
    stack.extend(children.into_iter().map(|(_, p)| p));
    Ok(())
}

/// Reads one spec file: counted as a file, its size checked from the object header and
/// counted before the blob is loaded; a blob already read is copied, not read again.
fn read_blob(w: &mut Walk<'_>, entry: Pending, sources: &mut Sources) -> Result<(), Stop> {
    w.budget.file()?;
    let (size, _) = w
        .odb
        .read_header(entry.id)
        .map_err(GitError::read("a blob header"))?;
    if size as u64 > MAX_FILE_BYTES {
        problem(
            sources,
            entry.path.clone(),
            "quorate::file::too-large",
            format!(
                "{} is {size} bytes, over the limit of {MAX_FILE_BYTES} bytes per spec file",
                entry.path
            ),
            "split the specs into several files",
        );
        return Ok(());
    }
    w.budget.bytes(size as u64)?;
    let bytes = match w.read.get(&entry.id).and_then(|f| sources.get(*f)) {
        Some(first) => first.bytes.clone(),
        None => {
            let blob = w
                .repo
                .find_blob(entry.id)
                .map_err(GitError::read("a blob"))?;
            blob.content().to_vec()
        }
    };
    let id = sources.add(entry.path, bytes);
    w.read.entry(entry.id).or_insert(id);
    Ok(())
}

/// Records a problem with the file (or directory) `name`.
fn problem(sources: &mut Sources, name: String, code: &'static str, message: String, help: &str) {
    let id: FileId = sources.add(name, Vec::new());
    sources
        .problems
        .push(Diagnostic::error(code, message).with_help(help).in_file(id));
}

fn short(id: &Oid) -> String {
    let s = id.to_string();
    s.get(..12).unwrap_or(&s).to_owned()
}
