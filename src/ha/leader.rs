//! The election: an etcd lease, kept alive, and the election key `P/leader` created under
//! it by whoever gets there first. The key's create revision is the leader's fencing
//! token ([`super::store`]); the time rule is [`super::lease`]. The loop also records this
//! replica under `P/replicas/<name>` (gone with its lease) and publishes the HA status.

use std::sync::Arc;
use std::time::Duration;

use etcd_client::{
    Compare, CompareOp, LeaseKeepAliveStream, LeaseKeeper, PutOptions, Txn, TxnOp, TxnOpResponse,
};
use tokio::sync::watch;
use tokio::time::Instant;

use super::lease::{Lease, NotLeader, Timing};
use super::store::EtcdStore;
use super::{HaView, ReplicaView, Role};

/// One replica's side of the election.
pub struct Campaign {
    store: EtcdStore,
    name: String,
    timing: Timing,
    lease: Arc<Lease>,
    /// The role, for `quorate run` (which starts and stops the reconcile loop) and status.
    role: watch::Sender<Role>,
    view: watch::Sender<Option<HaView>>,
    /// The etcd lease held, with its keep-alive stream.
    held: Option<Held>,
    /// When this replica's own lease ends by its clock (leader or not).
    until: Option<Instant>,
}

struct Held {
    id: i64,
    keeper: LeaseKeeper,
    stream: LeaseKeepAliveStream,
}

impl Campaign {
    /// A campaign for replica `name`; `lease` is what the guards ask.
    pub fn new(
        store: EtcdStore,
        name: &str,
        timing: Timing,
        lease: Arc<Lease>,
    ) -> (
        Campaign,
        watch::Receiver<Role>,
        watch::Receiver<Option<HaView>>,
    ) {
        let (role, role_rx) = watch::channel(Role::Follower);
        let (view, view_rx) = watch::channel(None);
        let c = Campaign {
            store,
            name: name.to_owned(),
            timing,
            lease,
            role,
            view,
            held: None,
            until: None,
        };
        (c, role_rx, view_rx)
    }

    /// How often the lease is renewed and the election tried.
    fn tick(&self) -> Duration {
        (self.timing.ttl / 5).max(Duration::from_millis(200))
    }

    /// Runs until `stop` turns true; then gives up the lease (and with it the key).
    pub async fn run(mut self, mut stop: watch::Receiver<bool>) {
        loop {
            let problem = self.round().await.err();
            if let Some(p) = &problem {
                tracing::warn!(problem = %p, "etcd: cannot hold or renew the lease");
            }
            self.publish(problem).await;
            tokio::select! {
                () = tokio::time::sleep(self.tick()) => {}
                _ = stop.wait_for(|s| *s) => break,
            }
        }
        self.lease.lost();
        let _ = self.role.send(Role::Follower);
        if let Some(h) = self.held.take() {
            let _ = self.store.client().lease_revoke(h.id).await;
        }
    }

    /// One round: renew (or get) the lease, then run for the key or check it is ours.
    async fn round(&mut self) -> Result<(), String> {
        self.renew().await?;
        let id = self.held.as_ref().map(|h| h.id).ok_or("no lease")?;
        match self.lease.token() {
            // The lease is extended only once the key is known to be still ours.
            Some(token) => {
                self.verify(token).await?;
                if let Some(until) = self.until {
                    self.lease.renewed(until);
                }
                Ok(())
            }
            None => self.elect(id).await,
        }
    }

    /// Renews the lease (or takes a new one), measuring validity from the send.
    async fn renew(&mut self) -> Result<(), String> {
        let ttl = self.timing.ttl;
        let mut client = self.store.client();
        if self.held.is_none() {
            let secs = i64::try_from(ttl.as_secs().max(1)).unwrap_or(i64::MAX);
            let sent = Instant::now();
            let granted = client
                .lease_grant(secs, None)
                .await
                .map_err(|e| e.to_string())?;
            let (keeper, stream) = client
                .lease_keep_alive(granted.id())
                .await
                .map_err(|e| e.to_string())?;
            self.until = Some(self.timing.valid_until(sent, secs_of(granted.ttl())));
            self.held = Some(Held {
                id: granted.id(),
                keeper,
                stream,
            });
            return Ok(());
        }
        let tick = self.tick();
        let Some(h) = self.held.as_mut() else {
            return Ok(());
        };
        let sent = Instant::now();
        let answer = tokio::time::timeout(tick, async {
            h.keeper.keep_alive().await?;
            h.stream.message().await
        })
        .await;
        match answer {
            Ok(Ok(Some(r))) if r.ttl() > 0 => {
                let until = self.timing.valid_until(sent, secs_of(r.ttl()));
                self.until = Some(until);
                Ok(())
            }
            Ok(Ok(Some(_))) => {
                self.held = None;
                self.give_up("the lease expired in etcd");
                Err("the lease expired in etcd; taking a new one".into())
            }
            Ok(Ok(None)) | Ok(Err(_)) | Err(_) => {
                let why = match answer {
                    Err(_) => "no answer in time".to_owned(),
                    Ok(Err(e)) => e.to_string(),
                    _ => "keep-alive stream closed".to_owned(),
                };
                self.restream(&mut client).await?;
                Err(format!("cannot renew the lease: {why}"))
            }
        }
    }

    /// A new keep-alive stream for the lease held, after the old one broke (etcd was
    /// away): renewed through it next round, so a replica whose lease outlived the
    /// outage in etcd keeps it. When etcd answers that the lease is gone (it expired
    /// while the stream was down), the lease is dropped and this replica follows
    /// (invariant 9: stepping down early is safe); a new lease is taken next round.
    /// Retrying a lost lease would keep this replica out of every election.
    async fn restream(&mut self, client: &mut etcd_client::Client) -> Result<(), String> {
        let Some(h) = self.held.as_mut() else {
            return Ok(());
        };
        match client.lease_keep_alive(h.id).await {
            Ok((keeper, stream)) => {
                h.keeper = keeper;
                h.stream = stream;
                Ok(())
            }
            // The client's only keep-alive error when opening a stream: etcd answered
            // the first keep-alive with no time left.
            Err(etcd_client::Error::LeaseKeepAliveError(_)) => {
                self.held = None;
                self.give_up("the lease expired in etcd while it was away");
                Err("the lease expired in etcd while it was away; taking a new one".into())
            }
            // etcd is still away: the same lease, through a new stream, next round.
            Err(_) => Ok(()),
        }
    }

    /// Creates the election key if nobody holds it.
    async fn elect(&mut self, lease_id: i64) -> Result<(), String> {
        let key = self.store.leader_key();
        let txn = Txn::new()
            .when([Compare::create_revision(key.as_str(), CompareOp::Equal, 0)])
            .and_then([TxnOp::put(
                key.as_str(),
                self.name.as_str(),
                Some(PutOptions::new().with_lease(lease_id)),
            )])
            .or_else([TxnOp::get(key.as_str(), None)]);
        let resp = self
            .store
            .client()
            .txn(txn)
            .await
            .map_err(|e| e.to_string())?;
        if !resp.succeeded() {
            let _ = self.role.send_replace(Role::Follower);
            return Ok(());
        }
        let token = resp.header().map_or(0, |h| h.revision());
        let Some(until) = self.until else {
            return Err("no lease".into());
        };
        let act_from = Instant::now() + self.timing.takeover_wait();
        self.lease.won(token, until, act_from);
        tracing::info!(token, wait = ?self.timing.takeover_wait(),
            "elected leader; acting once the old leader's lease and steps are over (invariant 9)");
        Ok(())
    }

    /// Checks the election key is still the one this replica created.
    async fn verify(&mut self, token: i64) -> Result<(), String> {
        let resp = self
            .store
            .client()
            .get(self.store.leader_key(), None)
            .await
            .map_err(|e| e.to_string())?;
        let ours = resp
            .kvs()
            .first()
            .is_some_and(|kv| kv.create_revision() == token);
        if !ours {
            self.give_up("the election key is no longer ours");
        }
        Ok(())
    }

    fn give_up(&mut self, why: &str) {
        if self.lease.token().is_some() {
            tracing::warn!(reason = why, "no longer the leader; following");
        }
        self.lease.lost();
    }

    /// The role now, by the lease rule.
    fn role_now(&self, problem: bool) -> Role {
        match self.lease.check() {
            Ok(_) => Role::Leader,
            Err(NotLeader::Waiting(_)) => Role::Waiting,
            Err(NotLeader::Expired) => Role::Unavailable,
            Err(NotLeader::Follower) if problem => Role::Unavailable,
            Err(NotLeader::Follower) => Role::Follower,
        }
    }

    /// Records this replica in etcd and publishes the HA view.
    async fn publish(&mut self, problem: Option<String>) {
        let role = self.role_now(problem.is_some());
        let _ = self
            .role
            .send_if_modified(|r| std::mem::replace(r, role) != role);
        let mut view = HaView {
            name: self.name.clone(),
            role,
            leader: None,
            problem: problem.clone(),
            replicas: Vec::new(),
        };
        if let Err(e) = self.read_replicas(&mut view, role).await {
            view.problem.get_or_insert(format!("cannot read etcd: {e}"));
        }
        if role == Role::Unavailable && view.problem.is_none() {
            view.problem = Some("the lease is no longer sure by this replica's clock".into());
        }
        let _ = self.view.send_replace(Some(view));
    }

    async fn read_replicas(&self, view: &mut HaView, role: Role) -> Result<(), String> {
        let mut client = self.store.client();
        if let Some(h) = &self.held {
            let me = ReplicaView {
                name: self.name.clone(),
                role,
            };
            let value = serde_json::to_vec(&me).map_err(|e| e.to_string())?;
            client
                .put(
                    self.store.key(&format!("replicas/{}", self.name)),
                    value,
                    Some(PutOptions::new().with_lease(h.id)),
                )
                .await
                .map_err(|e| e.to_string())?;
        }
        let txn = Txn::new().and_then([
            TxnOp::get(self.store.leader_key(), None),
            TxnOp::get(
                self.store.key("replicas/"),
                Some(etcd_client::GetOptions::new().with_prefix()),
            ),
        ]);
        let resp = client.txn(txn).await.map_err(|e| e.to_string())?;
        let mut answers = resp.op_responses().into_iter();
        if let Some(TxnOpResponse::Get(g)) = answers.next() {
            view.leader = g
                .kvs()
                .first()
                .map(|kv| String::from_utf8_lossy(kv.value()).into_owned());
        }
        if let Some(TxnOpResponse::Get(g)) = answers.next() {
            view.replicas = g
                .kvs()
                .iter()
                .filter_map(|kv| serde_json::from_slice(kv.value()).ok())
                .collect();
        }
        Ok(())
    }
}

fn secs_of(ttl: i64) -> Duration {
    Duration::from_secs(u64::try_from(ttl).unwrap_or(0))
}
