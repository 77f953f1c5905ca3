//! `quorate run`: follow a git repository and keep the cluster converged.
//!
//! The git source ([`crate::source::watch::follow`]) yields each new head with its spec
//! files. A head that validates is recorded as applied and handed to the reconcile loop
//! ([`crate::reconcile::driver::run`]); one that does not is recorded as rejected with
//! its findings and changes nothing (design invariant 6). The HTTP server serves status,
//! metrics, operator requests and the git webhook. SIGTERM or SIGINT stops it: the pass
//! under way finishes, then the process exits.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use super::{EXIT_USAGE, SecretPolicyArgs, StateDirArg};
use crate::fence::{Clock, SystemClock};
use crate::reconcile::driver::{self, SharedStatus, Trigger};
use crate::reconcile::real::RealEnvironment;
use crate::reconcile::{Desired, Options, Reconciler};
use crate::secret::{Secret, SecretPolicy, SecretRef};
use crate::server::{self, ServerState};
use crate::source::Sources;
use crate::source::git::{Commit, Credentials, GitSource};
use crate::source::watch::{self, WatchOptions};
use crate::source::webhook::{self, HookState};
use crate::state::RejectedCommit;
use crate::state::StateStore;
use crate::status::RejectedView;
use crate::validate::validate_with;

/// Arguments of `quorate run`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Exit codes: 0 stopped by SIGTERM or SIGINT, 2 could not start \
                        (bad flag, unusable state dir or repository, address in use)."
)]
pub struct Args {
    /// The spec repository: a local path (working or bare) or a URL (file://, https://,
    /// http://, ssh://, git://, or git@host:path).
    #[arg(long, value_name = "URL|PATH")]
    repo: String,
    /// The branch followed.
    #[arg(long, value_name = "NAME", default_value = "main")]
    branch: String,
    /// Subdirectory of the tree that holds the specs (default: the whole tree).
    #[arg(long, value_name = "SUBDIR", value_parser = super::pre_receive::subdir_arg)]
    path: Option<PathBuf>,
    #[command(flatten)]
    state: StateDirArg,
    /// Address of the HTTP server (status, metrics, webhook, reconcile requests).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:7777")]
    listen: SocketAddr,
    /// File holding the bearer token that `POST /v1/reconcile` must carry (without it,
    /// changing requests are refused).
    #[arg(long, value_name = "FILE")]
    token_file: Option<PathBuf>,
    /// File holding the webhook secret (without it, `POST /hooks/git` is not served).
    #[arg(long, value_name = "FILE")]
    webhook_secret_file: Option<PathBuf>,
    /// Private key for an ssh remote (unencrypted, mode 0600); without it, the ssh agent.
    #[arg(long, value_name = "FILE")]
    ssh_key: Option<PathBuf>,
    /// known_hosts file whose keys are the only ones accepted for an ssh remote.
    #[arg(long, value_name = "FILE")]
    ssh_known_hosts: Option<PathBuf>,
    /// File holding the access token for an https remote (read at each fetch).
    #[arg(long, value_name = "FILE")]
    git_token_file: Option<PathBuf>,
    /// User name sent with the token (default: the user in the URL, else `git`).
    #[arg(long, value_name = "NAME")]
    git_user: Option<String>,
    /// How often the repository is fetched without being told.
    #[arg(long, value_name = "DURATION", default_value = "60s")]
    poll_interval: crate::spec::Duration,
    /// Bound on each call to a node's runtime.
    #[arg(long, value_name = "DURATION", default_value = "10s")]
    timeout: crate::spec::Duration,
    #[command(flatten)]
    secrets: SecretPolicyArgs,
}

impl Args {
    /// The secret policy of the specs: the flags', with quorate's own credential files
    /// refused even when they lie inside the secrets directory.
    fn secret_policy(&self) -> SecretPolicy {
        let own = [
            &self.token_file,
            &self.webhook_secret_file,
            &self.git_token_file,
            &self.ssh_key,
        ];
        own.into_iter()
            .flatten()
            .fold(self.secrets.policy(), |p, f| p.deny(f))
    }
}

/// Rejected commits shown in the status.
const SHOWN_REJECTED: usize = 10;
/// How long a stop waits for the pass under way.
const STOP_GRACE: Duration = Duration::from_secs(30);

pub fn run(args: &Args) -> ExitCode {
    let runtime = match super::cluster_runtime() {
        Ok(r) => r,
        Err(code) => return code,
    };
    match runtime.block_on(serve(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(why) => {
            eprintln!("error: {why}");
            ExitCode::from(EXIT_USAGE)
        }
    }
}

/// What the loop keeps between commits.
struct Follower {
    store: StateStore,
    status: SharedStatus,
    timeout: Duration,
    /// The secret references the specs may use.
    secrets: SecretPolicy,
    /// The commit in force.
    current: Option<String>,
    /// The reconcile loop's inbox; its receiver waits here until a spec is in force.
    triggers: mpsc::Sender<Trigger>,
    inbox: Option<mpsc::Receiver<Trigger>>,
    driver: Option<tokio::task::JoinHandle<()>>,
}

async fn serve(args: &Args) -> Result<(), String> {
    let dir = &args.state.dir;
    let store = StateStore::open(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let source = GitSource::open(&args.repo, &args.branch, args.path.as_deref(), dir)
        .map_err(|e| e.to_string())?
        .with_credentials(Credentials {
            ssh_key: args.ssh_key.clone(),
            ssh_known_hosts: args.ssh_known_hosts.clone(),
            https_token: args.git_token_file.clone().map(SecretRef::FromFile),
            https_user: args.git_user.clone(),
        });
    let token = match &args.token_file {
        Some(p) => Some(Arc::new(read_secret(p)?)),
        None => None,
    };
    // What was in force before a restart, read from quorate's own clone: the cluster
    // keeps being reconciled towards it even while the repository cannot be reached.
    let resumed = match store.last_applied().await.map_err(|e| e.to_string())? {
        Some(applied) => source
            .sources_at(&applied.commit.id)
            .map(|s| (applied.commit, s))
            .map_err(|e| tracing::warn!(error = %e, "the commit in force cannot be read back"))
            .ok(),
        None => None,
    };
    let status = SharedStatus::default();
    let (triggers, inbox) = mpsc::channel(16);
    let mut f = Follower {
        store,
        status: status.clone(),
        timeout: args.timeout.get(),
        secrets: args.secret_policy(),
        current: None,
        triggers: triggers.clone(),
        inbox: Some(inbox),
        driver: None,
    };
    f.show_rejected().await;
    if let Some((commit, sources)) = resumed {
        f.offer(commit, &sources, true).await;
    }

    let options = WatchOptions {
        poll_interval: args.poll_interval.get().max(Duration::from_secs(1)),
        ..WatchOptions::default()
    };
    let (mut commits, fetch) = watch::follow(source, &options).map_err(|e| e.to_string())?;
    let mut app = server::router(ServerState {
        status,
        triggers,
        token,
        clock: Arc::new(SystemClock),
    });
    if let Some(p) = &args.webhook_secret_file {
        read_secret(p)?;
        app = app.merge(webhook::router(HookState {
            secret: SecretRef::FromFile(p.clone()),
            branch: args.branch.clone(),
            fetch,
        }));
    }
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    println!("listening on {addr}");
    tracing::info!(%addr, repo = %args.repo, branch = %args.branch, "quorate run started");
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let server = tokio::spawn(async move {
        let mut stop = stop_rx;
        let shutdown = async move {
            let _ = stop.wait_for(|s| *s).await;
        };
        if let Err(e) = axum::serve(listener, app)
            .with_graceful_shutdown(shutdown)
            .await
        {
            tracing::error!(error = %e, "the HTTP server stopped");
        }
    });

    let mut signals = Signals::new()?;
    loop {
        tokio::select! {
            got = commits.recv() => match got {
                Some(watch::Trigger::NewCommit { commit, sources, .. }) => {
                    f.offer(commit, &sources, false).await;
                }
                // Logged by the source; the spec in force stays.
                Some(watch::Trigger::Failed { .. }) => {}
                None => break,
            },
            () = signals.next() => break,
        }
    }
    tracing::info!("stopping: the pass under way finishes first");
    let _ = stop_tx.send(true);
    let _ = server.await;
    drop(commits);
    f.stop().await;
    Ok(())
}

impl Follower {
    /// Puts `commit` in force if its specs validate, or records it as rejected.
    /// `resumed`: it was in force before a restart (already recorded as applied).
    async fn offer(&mut self, commit: Commit, sources: &Sources, resumed: bool) {
        if self.current.as_deref() == Some(commit.id.as_str()) {
            return;
        }
        // A reference outside the operator's secret policy makes the commit invalid.
        let report = validate_with(sources, Some(&self.secrets));
        let short = crate::reconcile::short(&commit.id).to_owned();
        let spec = match report.valid_set() {
            Some(set) => Arc::new(set.clone()),
            None => {
                // Invariant 6: an invalid commit is never applied; the one in force stays.
                let errors = report.errors();
                tracing::warn!(commit = %short, errors, "commit rejected: its specs do not validate");
                let now = SystemClock.now_unix_ms();
                match RejectedCommit::new(commit, now, &report.diagnostics, sources) {
                    Ok(r) => {
                        if let Err(e) = self.store.record_rejected(&r).await {
                            tracing::error!(error = %e, "cannot record the rejected commit");
                        }
                    }
                    Err(e) => tracing::error!(error = %e, "cannot record the rejected commit"),
                }
                self.show_rejected().await;
                return;
            }
        };
        if !resumed {
            // Recorded before it is adopted: after a crash the restart resumes it.
            let now = SystemClock.now_unix_ms();
            if let Err(e) = self.store.record_applied(&commit, now).await {
                tracing::error!(error = %e, commit = %short, "cannot record the commit; not adopted");
                return;
            }
        }
        tracing::info!(commit = %short, summary = %commit.summary, "commit in force");
        self.current = Some(commit.id.clone());
        let desired = Desired {
            spec,
            commit: commit.id,
        };
        match self.inbox.take() {
            None => {
                if self.triggers.send(Trigger::Adopt(desired)).await.is_err() {
                    tracing::error!("the reconcile loop has stopped");
                }
            }
            Some(inbox) => self.start(desired, inbox),
        }
        self.show_rejected().await;
    }

    /// Starts the reconcile loop with its first spec.
    fn start(&mut self, desired: Desired, inbox: mpsc::Receiver<Trigger>) {
        let env = Arc::new(RealEnvironment::new(
            &desired.spec,
            self.timeout,
            self.secrets.clone(),
        ));
        let store = Arc::new(self.store.clone());
        match Reconciler::new(env, store, desired, Options::default()) {
            Ok(r) => {
                self.driver = Some(tokio::spawn(driver::run(r, inbox, self.status.clone())));
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot start the reconciler");
                self.current = None;
                self.inbox = Some(inbox);
            }
        }
    }

    /// Copies the latest rejected commits into the status.
    async fn show_rejected(&self) {
        let rejected = match self.store.rejected(SHOWN_REJECTED).await {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = %e, "cannot read the rejected commits");
                return;
            }
        };
        let views: Vec<RejectedView> = rejected.iter().map(RejectedView::from).collect();
        if let Ok(mut s) = self.status.write() {
            s.rejected = views;
        }
    }

    /// Closes the loop's inbox and waits for the pass under way.
    async fn stop(self) {
        drop(self.triggers);
        drop(self.inbox);
        if let Some(d) = self.driver
            && tokio::time::timeout(STOP_GRACE, d).await.is_err()
        {
            tracing::warn!("the pass under way did not finish in {STOP_GRACE:?}; exiting");
        }
    }
}

fn read_secret(path: &std::path::Path) -> Result<Secret, String> {
    SecretRef::FromFile(path.to_path_buf())
        .read()
        .map_err(|e| e.to_string())
}

/// SIGTERM and SIGINT.
struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl Signals {
    fn new() -> Result<Signals, String> {
        use tokio::signal::unix::{SignalKind, signal};
        let err = |e: std::io::Error| format!("cannot handle signals: {e}");
        Ok(Signals {
            term: signal(SignalKind::terminate()).map_err(err)?,
            int: signal(SignalKind::interrupt()).map_err(err)?,
        })
    }

    async fn next(&mut self) {
        tokio::select! {
            _ = self.term.recv() => {}
            _ = self.int.recv() => {}
        }
    }
}
