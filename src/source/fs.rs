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
use std::sync::atomic::{AtomicU64, Ordering};

use walkdir::WalkDir;

use super::Sources;
use super::budget::{Budget, Exceeded, MAX_SET_FILES};
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
    let started = std::time::Instant::now();
    let mut sources = Sources::new();
    let mut budget = Budget::default();
    for root in roots {
        if let Err(exceeded) = read_root(root, &mut budget, &mut sources) {
            sources.refuse(exceeded);
            break;
        }
    }
    tracing::debug!(files = sources.len(), took = ?started.elapsed(), "spec files read");
    Ok(sources)
}

fn read_root(root: &Path, budget: &mut Budget, sources: &mut Sources) -> Result<(), Exceeded> {
    let confine = Confinement::new(root);
    let found = walk(root, &confine, budget)?;
    // The files are read on every core (open, size and read are a few system calls each:
    // over a tenth of a second for 13,500 files on one), then counted and kept in walk
    // order, so what is kept or refused does not depend on the threads.
    let left = AtomicU64::new(budget.bytes_left());
    let fetched = crate::parallel::map(&found, |f| match f {
        Found::File(path, true) => Some(fetch(path, &left)),
        _ => None,
    });
    let mut over = false;
    for (found, fetched) in found.into_iter().zip(fetched) {
        match found {
            Found::Broken(name, message, help) => {
                budget.file()?;
                problem(sources, name, ("quorate::file::unreadable", message, help));
            }
            Found::File(path, _) => {
                let fetched = fetched.unwrap_or(Fetched::NotRegular);
                over |= matches!(fetched, Fetched::Over(_));
                keep(&path, fetched, budget, sources)?;
            }
        }
    }
    // A file is left unread only when the files add up to more than the budget:
    // counting them in order finds where, above, unless what went over is a file that
    // grew while it was read.
    if over {
        return Err(Exceeded::Bytes);
    }
    confine.report(sources);
    Ok(())
}

/// What the walk found: a spec file (and whether it is a regular one), or an entry it
/// could not read (its name, what went wrong and what to do).
enum Found {
    File(PathBuf, bool),
    Broken(String, String, &'static str),
}

/// The spec files under `root` in name order, counting every entry in `budget`.
fn walk(root: &Path, confine: &Confinement, budget: &mut Budget) -> Result<Vec<Found>, Exceeded> {
    let walk = WalkDir::new(root)
        .follow_links(true)
        // In name order: the entries of one directory are its path joined with each name,
        // so their paths compare as their names do. Comparing the names themselves
        // (`sort_by_file_name`) splits both paths into components at every comparison:
        // 17 M instructions for 2,700 files in one directory.
        .sort_by(|a, b| a.path().as_os_str().cmp(b.path().as_os_str()))
        .into_iter()
        .filter_entry(|e| {
            (e.depth() == 0 || !e.file_name().to_string_lossy().starts_with('.'))
                && confine.admit(e)
        });
    let mut found = Vec::new();
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
                found.push(Found::File(path.to_path_buf(), entry.file_type().is_file()));
            }
            Err(err) => {
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
                found.push(Found::Broken(name, message, help));
            }
        }
        // Counting them goes over the budget of files by this one: the rest is not
        // looked for.
        if found.len() as u64 > MAX_SET_FILES {
            break;
        }
    }
    Ok(found)
}

fn io_reason(err: &walkdir::Error) -> String {
    err.io_error()
        .map_or_else(|| err.to_string(), std::io::Error::to_string)
}

/// One spec file as read, before it is counted.
enum Fetched {
    /// Not a regular file: not opened.
    NotRegular,
    /// Could not be opened.
    Unopened(std::io::Error),
    /// Over [`MAX_FILE_BYTES`] by its size: not read.
    TooLarge(u64),
    /// Not read: with it, the files read so far would be over the set's bytes (its
    /// size).
    Over(u64),
    /// Its size, then what reading it gave: its bytes (at most one past
    /// [`MAX_FILE_BYTES`]), or the error.
    Read(u64, std::io::Result<Vec<u8>>),
}

/// Reads one spec file, taking its size, and what it grew by while read, from the bytes
/// the set has `left` (shared by the threads reading); over them, it is not read.
fn fetch(path: &Path, left: &AtomicU64) -> Fetched {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) => return Fetched::Unopened(e),
    };
    let size = file.metadata().map(|m| m.len()).unwrap_or(0);
    if size > MAX_FILE_BYTES {
        return Fetched::TooLarge(size);
    }
    let take = |n: u64| {
        left.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |l| l.checked_sub(n))
            .is_ok()
    };
    if !take(size) {
        return Fetched::Over(size);
    }
    let mut bytes = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
    // Read one byte more than allowed, so a file that grows while read is still caught.
    let allowed = MAX_FILE_BYTES.min(size.saturating_add(left.load(Ordering::Relaxed)));
    let read = file.take(allowed + 1).read_to_end(&mut bytes);
    let grew = (bytes.len() as u64).saturating_sub(size);
    if !take(grew) {
        return Fetched::Over(size);
    }
    Fetched::Read(size, read.map(|_| bytes))
}

/// Counts one spec file in `budget` (before reading, from its size, and again from what
/// was read, in case it grew) and keeps it in `sources`, or the reason it could not be
/// read.
fn keep(
    path: &Path,
    fetched: Fetched,
    budget: &mut Budget,
    sources: &mut Sources,
) -> Result<(), Exceeded> {
    budget.file()?;
    let name = path.display().to_string();
    let too_large = (
        "quorate::file::too-large",
        "split the specs into several files",
    );
    let (code, message, help) = match fetched {
        Fetched::Over(size) => return budget.bytes(size),
        Fetched::Read(size, read) => {
            budget.bytes(size)?;
            match read {
                Ok(bytes) if bytes.len() as u64 <= MAX_FILE_BYTES => {
                    budget.bytes((bytes.len() as u64).saturating_sub(size))?;
                    sources.add(name, bytes);
                    return Ok(());
                }
                Ok(_) => (
                    too_large.0,
                    format!("{name} is over the limit of {MAX_FILE_BYTES} bytes per spec file"),
                    too_large.1,
                ),
                Err(e) => (
                    "quorate::file::unreadable",
                    format!("cannot read {name}: {e}"),
                    "check the file is readable by quorate",
                ),
            }
        }
        Fetched::NotRegular => (
            "quorate::file::not-regular",
            format!("{name} is not a regular file"),
            "spec files must be plain files; remove the device, socket or pipe",
        ),
        Fetched::Unopened(e) => (
            "quorate::file::unreadable",
            format!("cannot read {name}: {e}"),
            "check the file exists and is readable by quorate",
        ),
        Fetched::TooLarge(size) => (
            too_large.0,
            format!(
                "{name} is {size} bytes, over the limit of {MAX_FILE_BYTES} bytes per spec file"
            ),
            too_large.1,
        ),
    };
    problem(sources, name, (code, message, help));
    Ok(())
}

/// Keeps file `name` without content, and the finding that says why.
fn problem(
    sources: &mut Sources,
    name: String,
    (code, message, help): (&'static str, String, &str),
) {
    let id = sources.add(name, Vec::new());
    sources
        .problems
        .push(Diagnostic::error(code, message).with_help(help).in_file(id));
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
    fn each_directory_is_walked_in_name_order_before_the_names_after_it() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir(root.join("b")).unwrap();
        std::fs::write(root.join("b/x.yaml"), "b/x").unwrap();
        std::fs::write(root.join("a.yaml"), "a").unwrap();
        std::fs::write(root.join("a-1.yaml"), "a-1").unwrap();
        std::fs::create_dir(root.join("a")).unwrap();
        std::fs::write(root.join("a/z.yaml"), "a/z").unwrap();
        std::fs::write(root.join("a/y.yaml"), "a/y").unwrap();
        let s = read_paths(&[root.to_path_buf()]).unwrap();
        let read: Vec<String> = s
            .iter()
            .map(|(_, f)| String::from_utf8(f.bytes.clone()).unwrap())
            .collect();
        // `a` before `a-1.yaml` (a prefix first), `-` before `.`, a directory's files
        // where its name falls.
        assert_eq!(read, ["a/y", "a/z", "a-1", "a", "b/x"]);
    }

    #[test]
    fn files_read_on_several_threads_are_kept_in_name_order_with_their_problems() {
        let dir = tempfile::tempdir().unwrap();
        for i in 0..40 {
            std::fs::write(dir.path().join(format!("f{i:02}.yaml")), format!("{i}")).unwrap();
        }
        std::os::unix::fs::symlink("nowhere.yaml", dir.path().join("f10a.yaml")).unwrap();
        let s = read_paths(&[dir.path().to_path_buf()]).unwrap();
        let names: Vec<String> = s
            .iter()
            .map(|(_, f)| {
                let path = Path::new(&f.name);
                path.file_name().unwrap().to_string_lossy().into_owned()
            })
            .collect();
        let mut expected: Vec<String> = (0..40).map(|i| format!("f{i:02}.yaml")).collect();
        expected.insert(11, "f10a.yaml".into());
        assert_eq!(names, expected);
        let bytes: Vec<Vec<u8>> = s.iter().map(|(_, f)| f.bytes.clone()).collect();
        assert_eq!(bytes[12], b"11".to_vec());
        assert_eq!(s.problems.len(), 1, "{:?}", s.problems);
        assert_eq!(s.problems[0].code, "quorate::file::unreadable");
    }

    #[test]
    fn a_file_is_read_only_within_the_bytes_left() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.yaml");
        std::fs::write(&path, [b'x'; 100]).unwrap();
        let left = AtomicU64::new(99);
        assert!(matches!(fetch(&path, &left), Fetched::Over(100)));
        assert_eq!(left.load(Ordering::Relaxed), 99, "nothing taken");
        let left = AtomicU64::new(1_000);
        match fetch(&path, &left) {
            Fetched::Read(100, Ok(bytes)) => assert_eq!(bytes.len(), 100),
            _ => panic!("not read"),
        }
        assert_eq!(left.load(Ordering::Relaxed), 900);
    }

    #[test]
    fn a_missing_root_is_an_error() {
        assert!(read_paths(&[PathBuf::from("/nonexistent/quorate")]).is_err());
    }
}
