//! Spec sets from a git repository: the reconciler's source of truth.
//!
//! A [`GitSource`] follows one branch of one repository (a local path, working or bare, or
//! a `file://`, `http(s)://`, `ssh://` or `git://` URL), optionally below a subdirectory.
//! It keeps its own bare clone under the state directory and fetches only that branch into
//! it, force-updating its ref, so rewritten history is just a new head. Specs are read
//! from the commit's tree ([`GitSource::sources_at`]), never from a work tree someone
//! may be editing.
//!
//! Everything here is blocking (libgit2): call it from `spawn_blocking`, or let
//! [`super::watch::follow`] do so.

mod cred;
mod tree;

use std::path::{Component, Path, PathBuf};
use std::sync::Once;

use git2::{AutotagOption, ErrorCode, FetchOptions, FetchPrune, Oid, Reference, Repository};
use serde::{Deserialize, Serialize};

pub use cred::Credentials;

use super::Sources;

/// Directory of the clone inside the state directory.
pub const CLONE_DIR: &str = "repo";

/// One commit, as shown to people and recorded in the state store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Commit {
    /// Full hex id.
    pub id: String,
    /// First line of the message.
    pub summary: String,
    /// `Name <email>` of the author.
    pub author: String,
    /// Commit time, Unix seconds.
    pub time: i64,
}

impl Commit {
    fn from_git(c: &git2::Commit<'_>) -> Commit {
        let author = c.author();
        Commit {
            id: c.id().to_string(),
            summary: c.summary().ok().flatten().unwrap_or("").to_owned(),
            author: format!(
                "{} <{}>",
                String::from_utf8_lossy(author.name_bytes()),
                String::from_utf8_lossy(author.email_bytes())
            ),
            time: c.time().seconds(),
        }
    }
}

/// Where the repository is, which decides how changes are noticed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RepoKind {
    /// A repository on this machine (a path or `file://` URL); `git_dir` holds its refs
    /// (`refs/heads/…`, `packed-refs`), which are watched.
    Local {
        /// The repository's common git directory.
        git_dir: PathBuf,
    },
    /// A repository elsewhere: polled, and fetched when a webhook says it changed.
    Remote,
}

/// A failure to use the repository. Never holds a credential.
#[derive(Debug, thiserror::Error)]
pub enum GitError {
    /// The branch name is not a valid git branch name.
    #[error("{0:?} is not a valid branch name")]
    BadBranch(String),
    /// The subdirectory is absolute or leaves the repository.
    #[error("{} is not a subdirectory of the repository (give a relative path without `..`)", .0.display())]
    BadSubdir(PathBuf),
    /// The repository cannot be used as given.
    #[error("cannot use the repository {repo}: {reason}")]
    BadRepo {
        /// The repository, without credentials.
        repo: String,
        /// Why.
        reason: String,
    },
    /// The clone in the state directory could not be prepared.
    #[error("cannot prepare the clone in {}: {reason}", path.display())]
    Clone {
        /// The clone's directory.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The fetch failed.
    #[error("cannot fetch branch {branch} from {repo}: {}", .source.message())]
    Fetch {
        /// The repository, without credentials.
        repo: String,
        /// The branch.
        branch: String,
        /// libgit2's error.
        source: git2::Error,
    },
    /// The remote has no such branch (or no longer has it).
    #[error("{repo} has no branch {branch}")]
    NoBranch {
        /// The repository, without credentials.
        repo: String,
        /// The branch.
        branch: String,
    },
    /// The commit is not in the clone.
    #[error("no commit {commit}: {}", .source.message())]
    NoCommit {
        /// The id asked for.
        commit: String,
        /// libgit2's error.
        source: git2::Error,
    },
    /// An object could not be read.
    #[error("cannot read {what}: {}", .source.message())]
    Read {
        /// What was being read.
        what: &'static str,
        /// libgit2's error.
        source: git2::Error,
    },
}

impl GitError {
    pub(crate) fn read(what: &'static str) -> impl FnOnce(git2::Error) -> GitError {
        move |source| GitError::Read { what, source }
    }
}

/// Reads the spec files of `commit` under `subdir` from `repo`'s object database: what
/// [`GitSource::sources_at`] does, for any repository (the pre-receive hook uses it on the
/// repository it runs in).
pub fn read_commit(
    repo: &Repository,
    commit: &str,
    subdir: Option<&Path>,
) -> Result<Sources, GitError> {
    tree::read_commit(repo, commit, subdir)
}

/// Checks that `subdir` is a plain relative path inside the repository; `None` for the
/// root (`""`, `.`).
pub fn normalize_subdir(subdir: Option<&Path>) -> Result<Option<PathBuf>, GitError> {
    let Some(dir) = subdir else { return Ok(None) };
    let mut out = PathBuf::new();
    for c in dir.components() {
        match c {
            Component::Normal(part) => out.push(part),
            Component::CurDir => {}
            _ => return Err(GitError::BadSubdir(dir.to_path_buf())),
        }
    }
    Ok((!out.as_os_str().is_empty()).then_some(out))
}

/// One branch of one repository, followed through a private bare clone.
pub struct GitSource {
    clone: Repository,
    kind: RepoKind,
    /// What libgit2 fetches from.
    url: String,
    /// The repository as shown in logs and errors (no credentials).
    shown: String,
    /// `name` or `[name]:port` of an ssh remote, for pinned host keys.
    ssh_host: Option<String>,
    branch: String,
    subdir: Option<PathBuf>,
    credentials: Credentials,
    head: Option<Commit>,
}

impl std::fmt::Debug for GitSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GitSource")
            .field("repo", &self.shown)
            .field("branch", &self.branch)
            .field("subdir", &self.subdir)
            .field("head", &self.head.as_ref().map(|c| &c.id))
            .finish_non_exhaustive()
    }
}

impl GitSource {
    /// Opens (creating if needed) the clone in `state_dir/repo` for `branch` of `repo`.
    /// Does not fetch: [`head`](Self::head) is what the clone held from a previous run
    /// (`None` for a new clone) until the first [`fetch`](Self::fetch).
    pub fn open(
        repo: &str,
        branch: &str,
        subdir: Option<&Path>,
        state_dir: &Path,
    ) -> Result<GitSource, GitError> {
        set_timeouts();
        if branch.is_empty() || !Reference::is_valid_name(&format!("refs/heads/{branch}")) {
            return Err(GitError::BadBranch(branch.to_owned()));
        }
        let subdir = normalize_subdir(subdir)?;
        let place = locate(repo)?;
        let path = state_dir.join(CLONE_DIR);
        let clone_err = |reason: String| GitError::Clone {
            path: path.clone(),
            reason,
        };
        let clone = if path.join("HEAD").exists() {
            Repository::open_bare(&path).map_err(|e| clone_err(e.message().to_owned()))?
        } else {
            std::fs::create_dir_all(&path).map_err(|e| clone_err(e.to_string()))?;
            Repository::init_bare(&path).map_err(|e| clone_err(e.message().to_owned()))?
        };
        let mut source = GitSource {
            clone,
            kind: place.kind,
            url: place.url,
            shown: place.shown,
            ssh_host: place.ssh_host,
            branch: branch.to_owned(),
            subdir,
            credentials: Credentials::default(),
            head: None,
        };
        source.head = source.local_head()?;
        Ok(source)
    }

    /// Uses `credentials` for fetches from now on.
    pub fn with_credentials(mut self, credentials: Credentials) -> Self {
        self.credentials = credentials;
        self
    }

    /// How changes are noticed: watching refs on this machine, or polling a remote.
    pub fn kind(&self) -> &RepoKind {
        &self.kind
    }

    /// The repository as shown to people (without credentials).
    pub fn repo(&self) -> &str {
        &self.shown
    }

    /// The branch followed.
    pub fn branch(&self) -> &str {
        &self.branch
    }

    /// The subdirectory the specs are read from (`None`: the whole tree).
    pub fn subdir(&self) -> Option<&Path> {
        self.subdir.as_deref()
    }

    /// The branch head as last fetched (or as the clone held it at open).
    pub fn head(&self) -> Option<&Commit> {
        self.head.as_ref()
    }

    /// Fetches the branch. Returns the new head when it moved since the last fetch (or
    /// since open), whether forward or to rewritten history; `None` when it did not.
    pub fn fetch(&mut self) -> Result<Option<Commit>, GitError> {
        let branch = self.branch.clone();
        let refspec = format!("+refs/heads/{branch}:{}", self.local_ref());
        let fail = |source| GitError::Fetch {
            repo: self.shown.clone(),
            branch: branch.clone(),
            source,
        };
        let mut remote = self.clone.remote_anonymous(&self.url).map_err(fail)?;
        let mut options = FetchOptions::new();
        options
            .remote_callbacks(self.credentials.callbacks(self.ssh_host.clone()))
            .download_tags(AutotagOption::None)
            .update_fetchhead(false)
            // A branch deleted upstream disappears here too, so it is noticed.
            .prune(FetchPrune::On);
        remote
            .fetch(&[refspec.as_str()], Some(&mut options), None)
            .map_err(fail)?;
        drop(remote);
        let Some(now) = self.local_head()? else {
            return Err(GitError::NoBranch {
                repo: self.shown.clone(),
                branch,
            });
        };
        if self.head.as_ref().is_some_and(|h| h.id == now.id) {
            return Ok(None);
        }
        tracing::info!(repo = %self.shown, branch = %self.branch, commit = %now.id, "new head");
        self.head = Some(now.clone());
        Ok(Some(now))
    }

    /// The spec files of `commit` (from the clone), under the subdirectory.
    pub fn sources_at(&self, commit: &str) -> Result<Sources, GitError> {
        tree::read_commit(&self.clone, commit, self.subdir.as_deref())
    }

    /// The commit with id `commit`, from the clone.
    pub fn commit(&self, commit: &str) -> Result<Commit, GitError> {
        let not_found = |source| GitError::NoCommit {
            commit: commit.to_owned(),
            source,
        };
        let oid = Oid::from_str(commit).map_err(not_found)?;
        let c = self.clone.find_commit(oid).map_err(not_found)?;
        Ok(Commit::from_git(&c))
    }

    fn local_ref(&self) -> String {
        format!("refs/remotes/origin/{}", self.branch)
    }

    fn local_head(&self) -> Result<Option<Commit>, GitError> {
        let r = match self.clone.find_reference(&self.local_ref()) {
            Ok(r) => r,
            Err(e) if e.code() == ErrorCode::NotFound => return Ok(None),
            Err(e) => return Err(GitError::read("the fetched branch")(e)),
        };
        let c = r
            .peel_to_commit()
            .map_err(GitError::read("the fetched branch's commit"))?;
        Ok(Some(Commit::from_git(&c)))
    }
}

/// Where a repository string points.
#[derive(Debug)]
struct Place {
    kind: RepoKind,
    url: String,
    shown: String,
    ssh_host: Option<String>,
}

fn locate(repo: &str) -> Result<Place, GitError> {
    let bad = |reason: &str| GitError::BadRepo {
        repo: repo.to_owned(),
        reason: reason.to_owned(),
    };
    if repo.contains("://") {
        let url = url::Url::parse(repo).map_err(|_| bad("not a valid URL"))?;
        let mut shown = url.clone();
        if url.password().is_some() {
            return Err(GitError::BadRepo {
                repo: strip_userinfo(shown),
                reason: "the URL holds a password; give quorate a token file instead".into(),
            });
        }
        return match url.scheme() {
            "file" => {
                let path = url
                    .to_file_path()
                    .map_err(|()| bad("not a local file URL"))?;
                let kind = local_kind(&path, repo)?;
                Ok(Place {
                    kind,
                    url: repo.to_owned(),
                    shown: repo.to_owned(),
                    ssh_host: None,
                })
            }
            "http" | "https" | "git" | "ssh" => {
                let ssh_host = (url.scheme() == "ssh").then(|| {
                    let host = url.host_str().unwrap_or_default();
                    match url.port() {
                        Some(p) if p != 22 => format!("[{host}]:{p}"),
                        _ => host.to_owned(),
                    }
                });
                if url.scheme() != "ssh" {
                    shown = url::Url::parse(&strip_userinfo(shown)).unwrap_or(url.clone());
                }
                Ok(Place {
                    kind: RepoKind::Remote,
                    url: repo.to_owned(),
                    shown: shown.to_string(),
                    ssh_host,
                })
            }
            other => Err(bad(&format!("quorate does not fetch over {other}://"))),
        };
    }
    if let Some((host, _)) = scp_like(repo) {
        let host = host.rsplit('@').next().unwrap_or(host).to_owned();
        return Ok(Place {
            kind: RepoKind::Remote,
            url: repo.to_owned(),
            shown: repo.to_owned(),
            ssh_host: Some(host),
        });
    }
    let path = std::fs::canonicalize(repo).map_err(|e| bad(&e.to_string()))?;
    let kind = local_kind(&path, repo)?;
    let url = path.to_string_lossy().into_owned();
    Ok(Place {
        kind,
        shown: url.clone(),
        url,
        ssh_host: None,
    })
}

/// `[user@]host:path`, git's short ssh syntax: a colon before any slash, and not a path
/// that exists here.
fn scp_like(repo: &str) -> Option<(&str, &str)> {
    let (host, path) = repo.split_once(':')?;
    (!host.is_empty() && !host.contains('/') && !Path::new(repo).exists()).then_some((host, path))
}

fn local_kind(path: &Path, repo: &str) -> Result<RepoKind, GitError> {
    let r = Repository::open(path).map_err(|e| GitError::BadRepo {
        repo: repo.to_owned(),
        reason: e.message().to_owned(),
    })?;
    Ok(RepoKind::Local {
        git_dir: r.commondir().to_path_buf(),
    })
}

fn strip_userinfo(mut url: url::Url) -> String {
    let _ = url.set_password(None);
    let _ = url.set_username("");
    url.to_string()
}

/// Bounds on network waits, so a remote that stops answering fails the fetch (and is
/// retried) instead of stalling the source forever.
fn set_timeouts() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // SAFETY: these set two integers in libgit2's global options. They run once, on
        // the first `GitSource::open`, before this process starts any network operation
        // through libgit2 (a fetch needs an open source first).
        unsafe {
            let _ = git2::opts::set_server_connect_timeout_in_milliseconds(10_000);
            let _ = git2::opts::set_server_timeout_in_milliseconds(60_000);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subdirs_must_stay_inside() {
        assert_eq!(normalize_subdir(None).unwrap(), None);
        assert_eq!(normalize_subdir(Some(Path::new("."))).unwrap(), None);
        assert_eq!(
            normalize_subdir(Some(Path::new("./a/b"))).unwrap(),
            Some(PathBuf::from("a/b"))
        );
        assert!(normalize_subdir(Some(Path::new("../a"))).is_err());
        assert!(normalize_subdir(Some(Path::new("/etc"))).is_err());
    }

    #[test]
    fn remotes_are_classified_and_shown_without_credentials() {
        let p = locate("https://deploy@git.example/org/specs.git").unwrap();
        assert_eq!(p.kind, RepoKind::Remote);
        assert_eq!(p.shown, "https://git.example/org/specs.git");
        let p = locate("ssh://git@git.example:2222/specs.git").unwrap();
        assert_eq!(p.ssh_host.as_deref(), Some("[git.example]:2222"));
        let p = locate("git@git.example:org/specs.git").unwrap();
        assert_eq!(p.ssh_host.as_deref(), Some("git.example"));
        let e = locate("https://u:hunter2@git.example/x.git").unwrap_err();
        assert!(!e.to_string().contains("hunter2"), "{e}");
        assert!(locate("ftp://git.example/x.git").is_err());
        assert!(locate("/nonexistent/quorate/repo").is_err());
    }

    #[test]
    fn bad_branch_names_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let e = GitSource::open("/nonexistent", "a..b", None, dir.path()).unwrap_err();
        assert!(matches!(e, GitError::BadBranch(_)), "{e}");
    }
}
