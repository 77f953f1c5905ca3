//! Noticing that the branch may have moved, and following it.
//!
//! Two layers:
//! - [`wakes`]: reasons to fetch now, on a channel. For a repository on this machine,
//!   `notify` watches its refs (`refs/…` and `packed-refs`), so a push is seen at once
//!   (debounced: a push touches several files); every repository is also polled at an
//!   interval, which for a remote is the main way, and for a local one a backstop. A
//!   [`FetchHandle`] lets the webhook ask for a fetch too. Wakes that arrive while one is
//!   pending are merged.
//! - [`follow`]: owns a [`GitSource`], fetches on every wake (off the async threads), and
//!   sends [`Trigger::NewCommit`] with the commit's spec files whenever the head moves.
//!   The reconcile loop validates them and either adopts the commit or records it as
//!   rejected (design invariant 6); it never touches git itself.
//!
//! Before handing the source to [`follow`], the loop can read the last applied commit's
//! specs with [`GitSource::sources_at`] to put the last good spec back in force at start.

use std::path::{Path, PathBuf};
use std::time::Duration;

use notify::{EventKind, RecursiveMode, Watcher};
use tokio::sync::mpsc;
use tokio::time::MissedTickBehavior;

use super::Sources;
use super::git::{Commit, GitError, GitSource, RepoKind};

/// Why the source fetches now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wake {
    /// The follower started.
    Start,
    /// The refs of the local repository changed.
    Refs,
    /// The poll interval passed.
    Interval,
    /// A webhook (or an operator) asked.
    Request,
}

/// What the source tells the reconcile loop.
#[derive(Debug)]
pub enum Trigger {
    /// The branch has a head the loop has not been given yet: at start, the head as it
    /// is; later, each new head (forward or rewritten).
    NewCommit {
        /// The commit.
        commit: Commit,
        /// Its spec files, read from its tree (problems included as diagnostics).
        sources: Sources,
        /// What made the source look.
        wake: Wake,
    },
    /// A fetch or read failed (the branch was deleted, the repository cannot be
    /// reached); the spec in force stays. The next wake tries again.
    Failed {
        /// What failed.
        error: GitError,
        /// What made the source look.
        wake: Wake,
    },
    /// A fetch succeeded after [`Failed`](Trigger::Failed) ones, and the head is the one
    /// the loop was given last (a new head comes as [`NewCommit`](Trigger::NewCommit)).
    Recovered {
        /// What made the source look.
        wake: Wake,
    },
}

/// Timing of [`wakes`] and [`follow`].
#[derive(Debug, Clone)]
pub struct WatchOptions {
    /// How often to fetch without being told (remotes; a backstop for local ones).
    pub poll_interval: Duration,
    /// How long the refs must be quiet after a change before the fetch.
    pub debounce: Duration,
}

impl Default for WatchOptions {
    fn default() -> Self {
        WatchOptions {
            poll_interval: Duration::from_secs(60),
            debounce: Duration::from_millis(20),
        }
    }
}

/// The refs of a local repository could not be watched.
#[derive(Debug, thiserror::Error)]
#[error("cannot watch {}: {source}", path.display())]
pub struct WatchError {
    /// What was to be watched.
    pub path: PathBuf,
    /// Why not.
    #[source]
    pub source: notify::Error,
}

/// Asks for a fetch now: the webhook's way in. Cheap to clone.
#[derive(Debug, Clone)]
pub struct FetchHandle(mpsc::Sender<Wake>);

impl FetchHandle {
    /// Asks for a fetch. Returns false when the source has stopped. A request made while
    /// another is pending is merged with it.
    pub fn fetch_now(&self) -> bool {
        !matches!(
            self.0.try_send(Wake::Request),
            Err(mpsc::error::TrySendError::Closed(_))
        )
    }
}

/// Reasons to fetch, as they come. Dropping it stops the watcher and the poll timer.
pub struct Wakes {
    rx: mpsc::Receiver<Wake>,
    tx: mpsc::Sender<Wake>,
    _watcher: Option<notify::RecommendedWatcher>,
}

impl Wakes {
    /// The next reason to fetch.
    pub async fn next(&mut self) -> Option<Wake> {
        self.rx.recv().await
    }

    /// A handle to ask for a fetch.
    pub fn handle(&self) -> FetchHandle {
        FetchHandle(self.tx.clone())
    }
}

/// Starts noticing changes of a repository of `kind`. Call it inside a tokio runtime.
pub fn wakes(kind: &RepoKind, options: &WatchOptions) -> Result<Wakes, WatchError> {
    // Capacity 1: a wake sent while one is pending is merged into it.
    let (tx, rx) = mpsc::channel(1);
    let watcher = match kind {
        RepoKind::Local { git_dir } => Some(watch_refs(git_dir, tx.clone(), options.debounce)?),
        RepoKind::Remote => None,
    };
    let ticks = tx.clone();
    let every = options.poll_interval.max(Duration::from_millis(10));
    tokio::spawn(async move {
        let mut interval = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        interval.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticks.closed() => break,
                _ = interval.tick() => {
                    if let Err(mpsc::error::TrySendError::Closed(_)) = ticks.try_send(Wake::Interval) {
                        break;
                    }
                }
            }
        }
    });
    Ok(Wakes {
        rx,
        tx,
        _watcher: watcher,
    })
}

/// Watches `git_dir/refs` (recursively) and `git_dir` itself (for `packed-refs`); sends
/// [`Wake::Refs`] once the branch refs have been quiet for `debounce`.
fn watch_refs(
    git_dir: &Path,
    wake: mpsc::Sender<Wake>,
    debounce: Duration,
) -> Result<notify::RecommendedWatcher, WatchError> {
    let refs = git_dir.join("refs");
    let heads = refs.join("heads");
    let packed = git_dir.join("packed-refs");
    let (raw_tx, mut raw_rx) = mpsc::unbounded_channel::<()>();
    let relevant = move |path: &Path| {
        path == packed || (path.starts_with(&heads) && path.extension().is_none_or(|e| e != "lock"))
    };
    let mut watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
        match res {
            Ok(event) => {
                if !matches!(event.kind, EventKind::Access(_))
                    && event.paths.iter().any(|p| relevant(p))
                {
                    let _ = raw_tx.send(());
                }
            }
            // The watcher lost events (queue overflow): a fetch costs little, so look.
            Err(_) => {
                let _ = raw_tx.send(());
            }
        }
    })
    .map_err(|source| WatchError {
        path: git_dir.to_path_buf(),
        source,
    })?;
    for (path, mode) in [
        (&refs, RecursiveMode::Recursive),
        (&git_dir.to_path_buf(), RecursiveMode::NonRecursive),
    ] {
        watcher.watch(path, mode).map_err(|source| WatchError {
            path: path.clone(),
            source,
        })?;
    }
    tokio::spawn(async move {
        while raw_rx.recv().await.is_some() {
            // Quiet period: keep waiting while events keep coming.
            loop {
                tokio::time::sleep(debounce).await;
                let mut more = false;
                while raw_rx.try_recv().is_ok() {
                    more = true;
                }
                if !more {
                    break;
                }
            }
            if let Err(mpsc::error::TrySendError::Closed(_)) = wake.try_send(Wake::Refs) {
                break;
            }
        }
    });
    Ok(watcher)
}

/// Follows `source`: fetches at start and on every wake, and sends the loop a
/// [`Trigger`] for each new head and each failure. Returns the channel and a handle for
/// the webhook. Stops when the receiver is dropped. Call it inside a tokio runtime.
pub fn follow(
    source: GitSource,
    options: &WatchOptions,
) -> Result<(mpsc::Receiver<Trigger>, FetchHandle), WatchError> {
    let mut wakes = wakes(source.kind(), options)?;
    let handle = wakes.handle();
    let (tx, rx) = mpsc::channel(4);
    tokio::spawn(async move {
        let mut source = source;
        let mut wake = Wake::Start;
        let mut failing = false;
        loop {
            let first = wake == Wake::Start;
            let Ok((back, found)) = tokio::task::spawn_blocking(move || {
                let found = look(&mut source, first);
                (source, found)
            })
            .await
            else {
                tracing::error!("the git fetch task failed; the source stops");
                break;
            };
            source = back;
            let trigger = match found {
                Ok(found) => {
                    let was_failing = std::mem::replace(&mut failing, false);
                    match found {
                        Some((commit, sources)) => Some(Trigger::NewCommit {
                            commit,
                            sources,
                            wake,
                        }),
                        None => was_failing.then_some(Trigger::Recovered { wake }),
                    }
                }
                Err(error) => {
                    failing = true;
                    log_failure(&source, &error);
                    Some(Trigger::Failed { error, wake })
                }
            };
            if let Some(t) = trigger
                && tx.send(t).await.is_err()
            {
                break;
            }
            wake = tokio::select! {
                w = wakes.next() => match w { Some(w) => w, None => break },
                _ = tx.closed() => break,
            };
        }
    });
    Ok((rx, handle))
}

/// A followed branch that is gone is an error (someone must put it back or point
/// quorate elsewhere); other failures (an unreachable remote) may pass by themselves.
fn log_failure(source: &GitSource, error: &GitError) {
    if matches!(error, GitError::NoBranch { .. }) {
        tracing::error!(repo = %source.repo(), branch = %source.branch(), %error,
            "the followed branch is gone; the commit in force stays");
    } else {
        tracing::warn!(repo = %source.repo(), %error, "fetch failed; the spec in force stays");
    }
}

/// One look: fetch, and read the new head's specs. At start the head counts as new.
fn look(source: &mut GitSource, first: bool) -> Result<Option<(Commit, Sources)>, GitError> {
    let moved = source.fetch()?;
    let commit = match moved {
        Some(c) => c,
        None if first => match source.head() {
            Some(c) => c.clone(),
            None => return Ok(None),
        },
        None => return Ok(None),
    };
    let sources = source.sources_at(&commit.id)?;
    Ok(Some((commit, sources)))
}
