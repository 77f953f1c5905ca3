//! `quorate validate DIR` reads only what is inside DIR. A spec repository is written by
//! whoever can open a pull request, and CI validates it: a symlink `x.yaml -> ~/.token`
//! would otherwise be read and its content quoted in the findings, into the CI log. A
//! symlink found by the walk is followed only if its target, fully resolved, is inside the
//! root; one that leaves it is reported by its name alone and not read. The roots
//! themselves are what the operator gave and are taken as given.

use std::cell::RefCell;
use std::path::{Path, PathBuf};

use walkdir::DirEntry;

use super::Sources;
use crate::diag::Diagnostic;

/// The root a walk must stay in, and the links it refused.
pub(super) struct Confinement {
    /// The root, resolved; `None` if it cannot be (the walk then reports the root).
    area: Option<PathBuf>,
    refused: RefCell<Vec<PathBuf>>,
}

impl Confinement {
    pub(super) fn new(root: &Path) -> Self {
        Confinement {
            area: std::fs::canonicalize(root).ok(),
            refused: RefCell::new(Vec::new()),
        }
    }

    /// Whether the walk may read or enter `entry`: anything that is not a symlink (it is
    /// under a directory already admitted), a symlink whose target is inside the root.
    /// A link that cannot be resolved is admitted, so the walk reports it as unreadable.
    pub(super) fn admit(&self, entry: &DirEntry) -> bool {
        if entry.depth() == 0 || !entry.path_is_symlink() {
            return true;
        }
        let (Some(area), Ok(target)) = (&self.area, std::fs::canonicalize(entry.path())) else {
            return true;
        };
        if target.starts_with(area) {
            return true;
        }
        self.refused.borrow_mut().push(entry.path().to_path_buf());
        false
    }

    /// One finding per refused link, naming the link and neither its target nor content.
    pub(super) fn report(self, sources: &mut Sources) {
        for link in self.refused.into_inner() {
            let name = link.display().to_string();
            let id = sources.add(name.clone(), Vec::new());
            sources.problems.push(
                Diagnostic::error(
                    "quorate::file::outside-root",
                    format!("{name} is a symlink that leaves the directory being validated; it is not read"),
                )
                .with_help("replace the link by the file itself, or point it inside the directory")
                .in_file(id),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;

    #[test]
    fn links_leaving_the_root_are_reported_by_name_and_not_read() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("specs");
        std::fs::create_dir_all(root.join("sub")).unwrap();
        std::fs::write(dir.path().join("token.yaml"), "t0ken").unwrap();
        std::fs::write(root.join("a.yaml"), "a").unwrap();
        symlink(dir.path().join("token.yaml"), root.join("x.yaml")).unwrap();
        symlink(dir.path(), root.join("sub/up")).unwrap();
        symlink(root.join("a.yaml"), root.join("sub/b.yaml")).unwrap();
        let s = super::super::fs::read_paths(std::slice::from_ref(&root)).unwrap();
        let read: Vec<_> = s
            .iter()
            .filter(|(_, f)| !f.bytes.is_empty())
            .map(|(_, f)| f.name.clone())
            .collect();
        let a = root.join("a.yaml").display().to_string();
        let b = root.join("sub/b.yaml").display().to_string();
        assert_eq!(read, [a, b], "the link inside the root is read");
        assert!(s.iter().all(|(_, f)| f.bytes != b"t0ken"));
        let refused: Vec<_> = s.problems.iter().map(|d| d.message.clone()).collect();
        assert_eq!(refused.len(), 2, "{refused:?}");
        assert!(refused.iter().all(|m| m.contains("leaves the directory")));
        assert!(
            refused.iter().all(|m| !m.contains("token.yaml")),
            "{refused:?}"
        );
    }
}
