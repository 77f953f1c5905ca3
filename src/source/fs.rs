//! Collecting spec files from the file system: the only I/O in spec loading.
//!
//! Directories are walked in name order (so results are deterministic), following
//! symlinks with loop detection. Only `*.yaml` and `*.yml` regular files are read, each at
//! most [`MAX_FILE_BYTES`], all of them within the set's [`budget`](super::budget);
//! anything that cannot be read becomes a diagnostic naming the file instead of an abort,
//! so one bad file never hides the others' problems.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use walkdir::WalkDir;

use super::Sources;
use super::budget::{Budget, Exceeded};
use super::confine::Confinement;
use crate::diag::Diagnostic;

/// Largest spec file quorate reads. Spec files are small; a larger one is a mistake or an
/// attack, refused before it is read into memory.
pub const MAX_FILE_BYTES: u64 = 4 * 1024 * 1024;

/// A path given on the command line that does not exist or cannot be opened at all.
#[derive(Debug, thiserror::Error)]
#[error("cannot read {path}: {source}")]
pub struct PathError {
    /// The path as given.
    pub path: PathBuf,
    /// Why.
    #[source]
    pub source: std::io::Error,
}

/// Whether `path` names a spec file by its extension.
pub fn is_spec_file(path: &Path) -> bool {
    matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("yaml" | "yml")
    )
}

/// Reads every spec file under each of `roots` (files or directories).
///
/// Fails only when a root itself does not exist; problems with files inside become
/// diagnostics in [`Sources::problems`]. The whole run is one spec set for the
/// [`budget`](super::budget): over it, the set is refused ([`Sources::exceeded`]).
pub fn read_paths(roots: &[PathBuf]) -> Result<Sources, PathError> {
    for root in roots {
        std::fs::metadata(root).map_err(|source| PathError {
            path: root.clone(),
            source,
        })?;
    }
    let mut sources = Sources::new();
    let mut budget = Budget::default();
    for root in roots {
        if let Err(exceeded) = read_root(root, &mut budget, &mut sources) {
            sources.refuse(exceeded);
            break;
        }
    }
    Ok(sources)
}

fn read_root(root: &Path, budget: &mut Budget, sources: &mut Sources) -> Result<(), Exceeded> {
    let confine = Confinement::new(root);
    let walk = WalkDir::new(root)
        .follow_links(true)
        .sort_by_file_name()
        .into_iter()
        .filter_entry(|e| {
            (e.depth() == 0 || !e.file_name().to_string_lossy().starts_with('.'))
                && confine.admit(e)
        });
    for entry in walk {
        // Every entry counts, spec file or not: links to directories can make a small
        // tree look huge.
        budget.entries(1)?;
        match entry {
            Ok(entry) => {
                let path = entry.path();
                if entry.file_type().is_dir() || !(entry.depth() == 0 || is_spec_file(path)) {
                    continue;
                }
                read_file(path, entry.file_type().is_file(), budget, sources)?;
            }
            Err(err) => {
                budget.file()?;
                let name = err
                    .path()
                    .map_or_else(|| root.display().to_string(), |p| p.display().to_string());
                let (message, help) = if err.loop_ancestor().is_some() {
                    (
                        format!("symlink loop at {name}"),
                        "remove the link that points back into its own parent directory",
                    )
                } else {
                    (
                        format!("cannot read {name}: {}", io_reason(&err)),
                        "check the path exists and is readable by quorate",
                    )
                };
                let id = sources.add(name, Vec::new());
                sources.problems.push(
                    Diagnostic::error("quorate::file::unreadable", message)
                        .with_help(help)
                        .in_file(id),
                );
            }
        }
    }
    confine.report(sources);
    Ok(())
}

fn io_reason(err: &walkdir::Error) -> String {
    err.io_error()
        .map_or_else(|| err.to_string(), std::io::Error::to_string)
}

/// Reads one spec file, counting it and its bytes in `budget` (before reading, from its
/// size, and again from what was read, in case it grew).
fn read_file(
    path: &Path,
    is_regular: bool,
    budget: &mut Budget,
    sources: &mut Sources,
) -> Result<(), Exceeded> {
    budget.file()?;
    let name = path.display().to_string();
    let fail = |sources: &mut Sources, code, message: String, help: &str| {
        let id = sources.add(name.clone(), Vec::new());
        sources
            .problems
            .push(Diagnostic::error(code, message).with_help(help).in_file(id));
        Ok(())
    };
    if !is_regular {
        return fail(
            sources,
            "quorate::file::not-regular",
            format!("{name} is not a regular file"),
            "spec files must be plain files; remove the device, socket or pipe",
        );
    }
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) => {
            return fail(
                sources,
                "quorate::file::unreadable",
                format!("cannot read {name}: {e}"),
                "check the file exists and is readable by quorate",
            );
        }
    };
    let size = file.metadata().map(|m| m.len()).unwrap_or(0);
    if size > MAX_FILE_BYTES {
        return fail(
            sources,
            "quorate::file::too-large",
            format!(
                "{name} is {size} bytes, over the limit of {MAX_FILE_BYTES} bytes per spec file"
            ),
            "split the specs into several files",
        );
    }
    budget.bytes(size)?;
    let mut bytes = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
    // Read one byte more than allowed, so a file that grows while read is still caught.
    let allowed = MAX_FILE_BYTES.min(size.saturating_add(budget.bytes_left()));
    match file.take(allowed + 1).read_to_end(&mut bytes) {
        Ok(n) if n as u64 > MAX_FILE_BYTES => fail(
            sources,
            "quorate::file::too-large",
            format!("{name} is over the limit of {MAX_FILE_BYTES} bytes per spec file"),
            "split the specs into several files",
        ),
        Ok(n) => {
            budget.bytes((n as u64).saturating_sub(size))?;
            sources.add(name, bytes);
            Ok(())
        }
        Err(e) => fail(
            sources,
            "quorate::file::unreadable",
            format!("cannot read {name}: {e}"),
            "check the file is readable by quorate",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_yaml_files_are_read_in_name_order() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("b.yaml"), "b").unwrap();
        std::fs::write(dir.path().join("a.yml"), "a").unwrap();
        std::fs::write(dir.path().join("notes.txt"), "x").unwrap();
        std::fs::create_dir(dir.path().join(".git")).unwrap();
        std::fs::write(dir.path().join(".git/c.yaml"), "c").unwrap();
        let s = read_paths(&[dir.path().to_path_buf()]).unwrap();
        let names: Vec<_> = s.iter().map(|(_, f)| f.bytes.clone()).collect();
        assert_eq!(names, vec![b"a".to_vec(), b"b".to_vec()]);
        assert!(s.problems.is_empty());
    }

    #[test]
    fn a_missing_root_is_an_error() {
        assert!(read_paths(&[PathBuf::from("/nonexistent/quorate")]).is_err());
    }
}
