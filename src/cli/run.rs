//! `quorate run`: follow a git repository and keep the cluster converged.
//!
//! The git source ([`crate::source::watch::follow`]) yields each new head with its spec
//! files. A head that validates is recorded as applied and handed to the reconcile loop
//! ([`crate::reconcile::driver::run`]); one that does not is recorded as rejected with
//! its findings and changes nothing (design invariant 6). A restart that finds no pass
//! planned from the last commit adopted rejects it and keeps the last good one in force
//! (invariant 10, [`resume`]). The HTTP server serves status, metrics, operator requests
//! and the git webhook, within the bounds of [`crate::server::listen`]. The state directory
//! is locked for the process's lifetime. SIGTERM or SIGINT stops it: HTTP requests under way
//! get a few seconds, the pass under way finishes, then the process exits.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use super::{EXIT_USAGE, SecretPolicyArgs, StateDirArg};
use crate::fence::{Clock, SystemClock};
use crate::ha::Role;
use crate::ha::env::LeasedEnvironment;
use crate::ha::store::{Commits, EtcdStore};
use crate::reconcile::driver::{self, SharedStatus, Trigger};
use crate::reconcile::real::RealEnvironment;
use crate::reconcile::{Desired, Options, Reconciler};
use crate::secret::{Secret, SecretPolicy, SecretRef};
use crate::server::listen::{self, Limits};
use crate::server::{self, ServerState};
use crate::source::Sources;
use crate::source::git::{Commit, Credentials, GitSource};
use crate::source::watch::{self, WatchOptions};
use crate::source::webhook::{self, HookState};
use crate::state::{AppliedCommit, KEEP_REJECTED, RejectedCommit, Resume};
use crate::status::RejectedView;
use crate::validate::validate_with;

/// Arguments of `quorate run`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Exit codes: 0 stopped by SIGTERM or SIGINT, 1 could not start \
                        (bad flag, unusable state dir or repository, address in use, state dir \
                        in use by another quorate, state database lost: see --start-fresh)."
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
    /// Most nodes probed or listed at once (each call holds a connection to its node
    /// while it lasts), and most steps run at once (at most 4 on one node).
    #[arg(long, value_name = "N", default_value_t = crate::reconcile::DEFAULT_NODE_CONCURRENCY,
          value_parser = clap::value_parser!(u32).range(1..=65_536))]
    node_concurrency: u32,
    /// Most HTTP connections open at once. At the limit, the connection that has waited
    /// longest for a request is closed to admit a new one.
    #[arg(long, value_name = "N", default_value_t = listen::DEFAULT_MAX_CONNECTIONS,
          value_parser = clap::value_parser!(u32).range(1..=65_536))]
    http_max_connections: u32,
    /// Time an HTTP client has to send a request's headers, on a new connection and
    /// between the requests of a kept-alive one; then it is disconnected.
    #[arg(long, value_name = "DURATION", default_value = listen::DEFAULT_HEADER_TIMEOUT)]
    http_header_timeout: crate::spec::Duration,
    /// Start with an empty state database if the one in the state directory is missing,
    /// empty or unreadable (the old file is kept aside as state.db.refused-<time>).
    #[arg(long)]
    start_fresh: bool,
    #[command(flatten)]
    secrets: SecretPolicyArgs,
    /// HA mode: `--etcd` and the replica's settings.
    #[command(flatten)]
    ha: super::ha::HaArgs,
    /// Serve HTTPS with this certificate chain (PEM); needs --tls-key.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM; PKCS#8, PKCS#1 or SEC1).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// POST events (node lost, fence started and done, instance blocked, commit refused)
    /// as Alertmanager-style JSON to this URL, with retries.
    #[arg(long, value_name = "URL")]
    notify: Option<url::Url>,
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
            .chain([&self.tls_key])
            .flatten()
            .fold(self.secrets.policy(), |p, f| p.deny(f))
    }
}

/// How long a stop waits for the pass under way (after the HTTP server's
/// [`listen::SHUTDOWN_GRACE`]).
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
    store: Arc<dyn Commits>,
    status: SharedStatus,
    timeout: Duration,
    /// Most nodes probed or listed at once.
    node_concurrency: usize,
    /// The secret references the specs may use.
    secrets: SecretPolicy,
    /// The commit in force.
    current: Option<String>,
    /// The reconcile loop's inbox; its receiver waits here until a spec is in force.
    triggers: mpsc::Sender<Trigger>,
    inbox: Option<mpsc::Receiver<Trigger>>,
    driver: Option<tokio::task::JoinHandle<()>>,
    /// HA mode: the lease the reconciler acts under, and whether this replica leads.
    ha: Option<HaState>,
}

/// What HA mode adds to the loop.
struct HaState {
    lease: Arc<crate::ha::lease::Lease>,
    /// This replica may act (leader, past the takeover wait): the reconcile loop runs.
    leading: bool,
    /// The newest head that validated, adopted when this replica comes to lead.
    latest: Option<(Commit, Sources)>,
    /// The commit in force as the store says, read back from quorate's own clone.
    reader: Option<GitSource>,
    /// The shared state, for the status of a follower.
    etcd: EtcdStore,
}

/// HA mode set up: the store, the lease and the election under way.
struct HaStart {
    store: EtcdStore,
    lease: Arc<crate::ha::lease::Lease>,
    role: tokio::sync::watch::Receiver<Role>,
    view: tokio::sync::watch::Receiver<Option<crate::ha::HaView>>,
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

/// Connects to etcd and starts running for leader.
async fn start_ha(args: &Args, cfg: &crate::ha::EtcdConfig) -> Result<HaStart, String> {
    let timing = args.ha.timing(args.timeout.get())?;
    let name = args.ha.name()?;
    let client = crate::ha::connect(cfg).await?;
    let lease = Arc::new(crate::ha::lease::Lease::default());
    let store = EtcdStore::leader(client, &args.ha.etcd.etcd_prefix, lease.clone());
    let (campaign, role, view) =
        crate::ha::leader::Campaign::new(store.clone(), &name, timing, lease.clone());
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(campaign.run(stop_rx));
    tracing::info!(name, endpoints = %cfg.endpoints.join(","), lease = ?timing.ttl,
        "HA mode: running for leader");
    Ok(HaStart {
        store,
        lease,
        role,
        view,
        stop,
        task,
    })
}

impl Follower {
    /// HA mode, not leading: the commit is validated and kept for when this replica
    /// leads, and nothing is written (the leader records commits). Returns whether it
    /// was handled so.
    fn follow_commit(&mut self, commit: &Commit, sources: &Sources) -> bool {
        let Some(h) = &mut self.ha else { return false };
        let short = crate::reconcile::short(&commit.id);
        let valid = validate_with(sources, Some(&self.secrets))
            .valid_set()
            .is_some();
        if valid {
            h.latest = Some((commit.clone(), sources.clone()));
        }
        if h.leading {
            return false;
        }
        if valid {
            tracing::info!(commit = %short, "commit validates; the leader puts it in force");
        } else {
            tracing::warn!(commit = %short, "commit does not validate; the leader records it as rejected");
        }
        true
    }

    /// The role changed: start the loop when this replica may act, stop it when not.
    async fn role(&mut self, role: Role) {
        let Some(h) = &mut self.ha else { return };
        let lead = role == Role::Leader;
        if lead == h.leading {
            return;
        }
        h.leading = lead;
        if lead {
            tracing::info!("leading: the reconcile loop starts");
            self.lead().await;
        } else {
            tracing::warn!(
                role = role.as_str(),
                "not leading: the reconcile loop stops; nothing is started, stopped or fenced here (invariant 9)"
            );
            if let Some(d) = self.driver.take() {
                d.abort();
            }
            let (tx, rx) = mpsc::channel(16);
            self.triggers = tx;
            self.inbox = Some(rx);
            self.current = None;
        }
    }

    /// Comes to lead: what the old leader left in force (refusing a commit it stopped
    /// while planning, invariant 10), then the newest head that validated.
    async fn lead(&mut self) {
        let good = match resume(self.store.as_ref()).await {
            Ok(g) => g,
            Err(e) => {
                tracing::error!(error = %e, "cannot read the commit in force from etcd");
                None
            }
        };
        let Some(h) = &self.ha else { return };
        let latest = h.latest.clone();
        let in_force = good.and_then(|g| {
            let reader = h.reader.as_ref()?;
            reader.sources_at(&g.commit.id).ok().map(|s| (g.commit, s))
        });
        if let Some((commit, sources)) = in_force {
            self.offer(commit, &sources, true).await;
        }
        if let Some((commit, sources)) = latest {
            self.offer(commit, &sources, false).await;
        }
        self.show_rejected().await;
    }

    /// Shows the HA view, and for a follower the last pass and commit from etcd.
    async fn show_ha(&self, view: Option<crate::ha::HaView>) {
        let Some(h) = &self.ha else { return };
        let shared = if h.leading {
            None
        } else {
            let pass = crate::reconcile::store::Store::passes(&h.etcd, 1).await;
            let commit = h.etcd.in_force().await;
            Some((pass, commit))
        };
        if let Ok(mut s) = self.status.write() {
            s.metrics.leader(
                view.as_ref()
                    .is_some_and(|v| v.role == crate::ha::Role::Leader),
            );
            s.ha = view;
            if let Some((pass, commit)) = shared {
                if let Ok(p) = pass {
                    s.last_pass = p.into_iter().next();
                    s.observed = None;
                }
                if let Ok(Some(c)) = commit {
                    s.commit = c.commit.id;
                    s.adopted_unix_ms = c.at_unix_ms;
                }
            }
        }
    }
}

async fn serve(args: &Args) -> Result<(), String> {
    let dir = &args.state.dir;
    // Held until the process exits: one reconciler per state directory.
    let (_lock, sqlite) = super::open_exclusive(dir, args.start_fresh)?;
    let limits = http_limits(args)?;
    // HA mode: the shared state and the election in etcd; the state directory keeps this
    // replica's clone (and its lock).
    let ha = match args.ha.etcd.config() {
        Some(cfg) => Some(start_ha(args, &cfg).await?),
        None => None,
    };
    let store: Arc<dyn Commits> = match &ha {
        Some(h) => Arc::new(h.store.clone()),
        None => Arc::new(sqlite),
    };
    // `GET /history` reads where the state is kept: etcd in HA mode (any replica).
    let history = store.clone();
    let source = git_source(args)?.with_credentials(Credentials {
        ssh_key: args.ssh_key.clone(),
        ssh_known_hosts: args.ssh_known_hosts.clone(),
        https_token: args.git_token_file.clone().map(SecretRef::FromFile),
        https_user: args.git_user.clone(),
    });
    let token = match &args.token_file {
        Some(p) => Some(Arc::new(read_secret(p)?)),
        None => None,
    };
    // In HA mode only the leader resumes, when it comes to lead.
    let resumed = match &ha {
        None => resumed(store.as_ref(), &source).await?,
        Some(_) => None,
    };
    let status = status_with_notifier(args)?;
    let (triggers, inbox) = mpsc::channel(16);
    let mut f = Follower {
        store,
        status: status.clone(),
        timeout: args.timeout.get(),
        node_concurrency: args.node_concurrency as usize,
        secrets: args.secret_policy(),
        current: None,
        triggers: triggers.clone(),
        inbox: Some(inbox),
        driver: None,
        ha: None,
    };
    let mut election = Election::start(ha, &mut f, args)?;
    f.show_rejected().await;
    if let Some((commit, sources)) = resumed {
        f.offer(commit, &sources, true).await;
    }
    let options = WatchOptions {
        poll_interval: args.poll_interval.get().max(Duration::from_secs(1)),
        ..WatchOptions::default()
    };
    let (mut commits, fetch) = watch::follow(source, &options).map_err(|e| e.to_string())?;
    // In HA mode the loop is started and stopped with leadership: the server's requests
    // reach the loop of the moment through this relay.
    let (relay, mut relayed) = mpsc::channel(16);
    let state = ServerState {
        status,
        triggers: if f.ha.is_some() { relay } else { triggers },
        token,
        store: Some(history),
    };
    let app = router(args, state, fetch)?;
    // Handled from before the address is announced: a SIGTERM right after it stops
    // gracefully too.
    let mut signals = Signals::new()?;
    let (stop_server, server) = listen_on(args, app, limits).await?;
    f.follow(&mut commits, &mut signals, &mut election, &mut relayed)
        .await;
    tracing::info!("stopping: HTTP requests under way and the pass under way finish first");
    let _ = stop_server.send(true);
    let _ = server.await;
    drop(commits);
    f.stop().await;
    election.stop().await;
    Ok(())
}

/// The repository quorate follows, opened in its clone under the state directory.
fn git_source(args: &Args) -> Result<GitSource, String> {
    GitSource::open(
        &args.repo,
        &args.branch,
        args.path.as_deref(),
        &args.state.dir,
    )
    .map_err(|e| e.to_string())
}

/// What was in force before a restart, read from quorate's own clone: the cluster keeps
/// being reconciled towards it even while the repository cannot be reached.
async fn resumed(
    store: &dyn Commits,
    source: &GitSource,
) -> Result<Option<(Commit, Sources)>, String> {
    let Some(applied) = resume(store).await? else {
        return Ok(None);
    };
    Ok(source
        .sources_at(&applied.commit.id)
        .map(|s| (applied.commit, s))
        .map_err(|e| tracing::warn!(error = %e, "the commit in force cannot be read back"))
        .ok())
}

/// The status the server shows, with the notifier of `--notify` started.
fn status_with_notifier(args: &Args) -> Result<SharedStatus, String> {
    let status = SharedStatus::default();
    if let Some(url) = &args.notify {
        let (notifier, sender) = crate::notify::Notifier::to(url.clone())?;
        tokio::spawn(sender);
        if let Ok(mut s) = status.write() {
            s.notifier = notifier;
        }
    }
    Ok(status)
}

/// The HTTP API, and the webhook when `--webhook-secret-file` is given.
fn router(
    args: &Args,
    state: ServerState,
    fetch: watch::FetchHandle,
) -> Result<axum::Router, String> {
    let app = server::router(state);
    let Some(p) = &args.webhook_secret_file else {
        return Ok(app);
    };
    read_secret(p)?;
    Ok(app.merge(webhook::router(HookState {
        secret: SecretRef::FromFile(p.clone()),
        branch: args.branch.clone(),
        fetch,
    })))
}

/// Serves `app` on `--listen` (HTTPS with `--tls-cert`), announced on stdout and to
/// systemd; the sender stops it gracefully.
async fn listen_on(args: &Args, app: axum::Router, limits: Limits) -> Result<Stoppable, String> {
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let tls = tls_acceptor(args)?;
    println!("listening on {addr}");
    tracing::info!(%addr, https = tls.is_some(), repo = %args.repo, branch = %args.branch, "quorate run started");
    systemd_ready();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let server = tokio::spawn(async move {
        let mut stop = stop_rx;
        let shutdown = async move {
            let _ = stop.wait_for(|s| *s).await;
        };
        listen::serve_tls(listener, app, limits, tls, shutdown).await;
    });
    Ok((stop_tx, server))
}

/// The election as the loop sees it: this replica's role and the view of the replicas.
/// Without HA mode neither ever changes; their senders are kept, unused, for the loop's
/// receivers to wait on.
struct Election {
    role: tokio::sync::watch::Receiver<Role>,
    view: tokio::sync::watch::Receiver<Option<crate::ha::HaView>>,
    _standalone: Option<StandaloneSenders>,
    campaign: Option<Stoppable>,
}

/// A task that stops when `true` is sent, and its handle.
type Stoppable = (
    tokio::sync::watch::Sender<bool>,
    tokio::task::JoinHandle<()>,
);

type StandaloneSenders = (
    tokio::sync::watch::Sender<Role>,
    tokio::sync::watch::Sender<Option<crate::ha::HaView>>,
);

impl Election {
    /// The election of `ha`, its state given to `f`'s loop.
    fn start(ha: Option<HaStart>, f: &mut Follower, args: &Args) -> Result<Election, String> {
        let Some(h) = ha else {
            let (r, role) = tokio::sync::watch::channel(Role::Follower);
            let (v, view) = tokio::sync::watch::channel(None);
            return Ok(Election {
                role,
                view,
                _standalone: Some((r, v)),
                campaign: None,
            });
        };
        f.ha = Some(HaState {
            lease: h.lease,
            leading: false,
            latest: None,
            reader: Some(git_source(args)?),
            etcd: h.store,
        });
        Ok(Election {
            role: h.role,
            view: h.view,
            _standalone: None,
            campaign: Some((h.stop, h.task)),
        })
    }

    /// Stops running for leader, giving the campaign up to 5 s to step down.
    async fn stop(self) {
        if let Some((stop, task)) = self.campaign {
            let _ = stop.send(true);
            let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
        }
    }
}

impl Follower {
    /// Follows the repository, the election and the server's requests until a signal
    /// comes or the watcher ends.
    async fn follow(
        &mut self,
        commits: &mut mpsc::Receiver<watch::Trigger>,
        signals: &mut Signals,
        election: &mut Election,
        relayed: &mut mpsc::Receiver<Trigger>,
    ) {
        loop {
            tokio::select! {
                got = commits.recv() => match got {
                    Some(watch::Trigger::NewCommit { commit, sources, .. }) => {
                        self.source_problem(None);
                        self.offer(commit, &sources, false).await;
                    }
                    // Logged by the source; the spec in force stays, the status says why.
                    Some(watch::Trigger::Failed { error, .. }) => {
                        self.metrics().git_fetch_error();
                        self.source_problem(Some(error.to_string()));
                    }
                    Some(watch::Trigger::Recovered { .. }) => self.source_problem(None),
                    None => break,
                },
                () = signals.next() => break,
                Ok(()) = election.role.changed() => {
                    let role = *election.role.borrow_and_update();
                    self.role(role).await;
                }
                Ok(()) = election.view.changed() => {
                    let view = election.view.borrow_and_update().clone();
                    self.show_ha(view).await;
                }
                Some(t) = relayed.recv() => {
                    if self.driver.is_some() {
                        let _ = self.triggers.try_send(t);
                    }
                }
            }
        }
    }

    /// Puts `commit` in force if its specs validate, or records it as rejected.
    /// `resumed`: it was in force before a restart (already recorded as applied).
    async fn offer(&mut self, commit: Commit, sources: &Sources, resumed: bool) {
        if self.current.as_deref() == Some(commit.id.as_str()) {
            return;
        }
        let short = crate::reconcile::short(&commit.id).to_owned();
        if self.follow_commit(&commit, sources) {
            return;
        }
        // Invariant 10: a commit quorate stopped while planning is not adopted again.
        match self.store.refused_adoption(&commit.id).await {
            Ok(false) => {}
            _ if resumed => {}
            Ok(true) => {
                tracing::warn!(commit = %short, "commit not adopted again: quorate stopped while planning it (see status)");
                return;
            }
            Err(e) => {
                tracing::error!(error = %e, commit = %short, "cannot read the rejected commits; not adopted");
                return;
            }
        }
        // A reference outside the operator's secret policy makes the commit invalid.
        let report = validate_with(sources, Some(&self.secrets));
        let spec = match report.valid_set() {
            Some(set) => Arc::new(set.clone()),
            None => {
                // Invariant 6: an invalid commit is never applied; the one in force stays.
                let errors = report.errors();
                tracing::warn!(commit = %short, errors, "commit rejected: its specs do not validate");
                self.metrics().commit_rejected();
                if let Ok(s) = self.status.read() {
                    s.notifier.send(vec![crate::notify::rejected(
                        &commit.id,
                        errors,
                        SystemClock.now_unix_ms(),
                    )]);
                }
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
        let env: Arc<dyn crate::reconcile::env::Environment> = env;
        // HA mode: every start, stop and power command first checks the lease (invariant 9).
        let env = match &self.ha {
            Some(h) => Arc::new(LeasedEnvironment::new(env, h.lease.clone())),
            None => env,
        };
        let store: Arc<dyn crate::reconcile::store::Store> = self.store.clone();
        let options = Options {
            node_concurrency: self.node_concurrency,
            ..Options::default()
        };
        match Reconciler::new(env, store, desired, options) {
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

    /// Shows in the status why the branch cannot be read (`None`: it can).
    /// The process's metrics.
    fn metrics(&self) -> crate::metrics::Metrics {
        self.status
            .read()
            .map(|s| s.metrics.clone())
            .unwrap_or_default()
    }

    fn source_problem(&self, problem: Option<String>) {
        if let Ok(mut s) = self.status.write() {
            s.source_problem = problem;
        }
    }

    /// Copies the rejected commits the store keeps (bounded) into the status.
    async fn show_rejected(&self) {
        let kept = usize::try_from(KEEP_REJECTED).unwrap_or(usize::MAX);
        let rejected = match self.store.rejected(kept).await {
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

    /// Closes the loop's inbox and waits for the pass under way. A commit adopted but not
    /// planned from before this clean stop is withdrawn, not refused at the next start
    /// (only a stop that did not come this way counts against it).
    async fn stop(self) {
        drop(self.triggers);
        drop(self.inbox);
        if self.ha.as_ref().is_some_and(|h| !h.leading) {
            // A follower runs no loop and writes nothing.
            return;
        }
        let Some(d) = self.driver else { return };
        match tokio::time::timeout(STOP_GRACE, d).await {
            Err(_) => {
                tracing::warn!("the pass under way did not finish in {STOP_GRACE:?}; exiting");
            }
            Ok(Err(e)) => tracing::error!(error = %e, "the reconcile loop failed"),
            Ok(Ok(())) => match self.store.withdraw_unfinished().await {
                Ok(0) => {}
                Ok(_) => tracing::info!(
                    "no pass planned from the commit adopted last before the stop; the next start adopts the branch's head again"
                ),
                Err(e) => tracing::error!(error = %e, "cannot withdraw the unfinished adoption"),
            },
        }
    }
}

/// The commit in force after a restart: the last one adopted, unless no pass planned from
/// it, in which case quorate stopped while planning it (out of memory, a crash) and would
/// again: it is rejected and the last good commit stays in force (design invariant 10).
async fn resume(store: &dyn Commits) -> Result<Option<AppliedCommit>, String> {
    let now = SystemClock.now_unix_ms();
    match store.resume(now).await? {
        Resume::Nothing => Ok(None),
        Resume::InForce(applied) => Ok(Some(applied)),
        Resume::Refused { refused, good } => {
            let commit = crate::reconcile::short(&refused.commit.id);
            let kept = good
                .as_ref()
                .map_or("none", |g| crate::reconcile::short(&g.commit.id));
            tracing::error!(
                commit,
                kept,
                "commit rejected: quorate stopped while planning it (no pass planned from it); the last good commit stays in force"
            );
            Ok(good)
        }
    }
}

/// The HTTP server's bounds from the flags.
fn http_limits(args: &Args) -> Result<Limits, String> {
    let header_timeout = args.http_header_timeout.get();
    if header_timeout.is_zero() {
        return Err("--http-header-timeout must be longer than 0s".into());
    }
    Ok(Limits {
        max_connections: args.http_max_connections as usize,
        header_timeout,
    })
}

/// Under systemd (`Type=notify`): says the service is ready (the state directory is
/// locked, the HTTP server listens) and, when the unit sets `WatchdogSec`, pings the
/// watchdog at half its interval for as long as the async runtime runs tasks. Elsewhere
/// (no `NOTIFY_SOCKET`) nothing is sent.
fn systemd_ready() {
    if let Err(e) = sd_notify::notify(&[sd_notify::NotifyState::Ready]) {
        tracing::warn!(error = %e, "cannot tell systemd the service is ready");
    }
    if let Some(every) = sd_notify::watchdog_enabled() {
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every / 2);
            loop {
                tick.tick().await;
                if let Err(e) = sd_notify::notify(&[sd_notify::NotifyState::Watchdog]) {
                    tracing::warn!(error = %e, "cannot ping the systemd watchdog");
                }
            }
        });
    }
}

/// The TLS side of the HTTP server from `--tls-cert` and `--tls-key`, if given.
fn tls_acceptor(args: &Args) -> Result<Option<tokio_rustls::TlsAcceptor>, String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let (Some(cert), Some(key)) = (&args.tls_cert, &args.tls_key) else {
        return Ok(None);
    };
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("--tls-cert {}: {e}", cert.display()))?;
    if chain.is_empty() {
        return Err(format!(
            "--tls-cert {}: no certificate in it",
            cert.display()
        ));
    }
    // The key's bytes never reach a message: only its path and what kind of problem.
    let key_der = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| format!("--tls-key {}: not a PEM private key ({e})", key.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .and_then(|b| b.with_no_client_auth().with_single_cert(chain, key_der))
        .map_err(|e| format!("--tls-cert/--tls-key: {e}"))?;
    Ok(Some(tokio_rustls::TlsAcceptor::from(Arc::new(config))))
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
