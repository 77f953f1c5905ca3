//! `quorate lab`: a cluster on one machine, made of real parts, to try quorate on.
//!
//! [`Lab::up`] builds N node hosts, each a network namespace on a bridge with its own
//! Podman service (own storage) on its own address, a BMC per node (`ipmi_sim`) whose
//! power control really kills or revives that node, the image (busybox and Redis) on every
//! node, and a git repository with the lab's specs. [`Lab::cut`]/[`Lab::heal`] pull and
//! put back a node's network cable (its BMC stays reachable); [`Lab::power`] goes through
//! the BMC; [`Lab::status`] reports each node; [`Lab::down`] removes everything `up` made,
//! and is safe to run twice. Everything is shelled out to `ip`, `nsenter`, `unshare`,
//! `setsid`, `podman`, `ipmi_sim`, `git`, `tar` and `ldd`, every call checked. Needs root.
//!
//! Modules, one concept each: [`config`] (names, addresses, paths), [`net`] (bridge,
//! namespaces, veths), [`node`] (a node's power and Podman service), [`bmc`] (`ipmi_sim`
//! and its chassis control), [`image`], [`repo`], [`specs`], [`state`] (`lab.json`),
//! [`status`]; `cmd` and `procs` run programs and kill processes; `error` says what failed.

pub(crate) mod bmc;
mod cmd;
pub(crate) mod config;
mod error;
pub(crate) mod image;
pub mod net;
pub(crate) mod node;
mod prereq;
mod procs;
pub(crate) mod repo;
pub(crate) mod specs;
pub(crate) mod state;
pub(crate) mod status;

use std::path::{Path, PathBuf};
use std::time::Duration;

pub use config::{IMAGE, LabConfig, LabNode};
pub use error::LabError;
pub use state::LabState;
pub use status::NodeStatus;

use crate::fence::ipmi::IpmiAgent;
use crate::fence::{FenceAgent, PowerState};
use crate::runtime::Connection;

/// The Podman settings for every node's service (the repo's `lab/containers.conf`).
const CONTAINERS_CONF: &str = include_str!("../../lab/containers.conf");
/// Podman's default network for every node's service: the project's own bridge and
/// subnet, never the host's `podman0` (the repo's `lab/quorate-network.json`).
const DEFAULT_NETWORK: &str = include_str!("../../lab/quorate-network.json");
/// Its file name in a network config dir (the name `containers.conf` gives it).
const DEFAULT_NETWORK_FILE: &str = "quorate.json";

/// A lab that is up (or partly up), as recorded in its `lab.json`.
#[derive(Debug, Clone)]
pub struct Lab {
    state: LabState,
}

/// What `lab down` found and removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DownReport {
    /// Whether there was a lab at all.
    pub found: bool,
    /// Processes killed.
    pub killed: usize,
    /// Problems met on the way (the rest was still removed).
    pub problems: Vec<String>,
}

impl Lab {
    /// Builds the lab `cfg` describes. `quorate` is the binary the BMCs' chassis scripts
    /// run (`std::env::current_exe()` for the CLI). On failure, whatever was made is
    /// removed again.
    #[tracing::instrument(name = "lab.up", skip_all, fields(lab = %cfg.name, nodes = cfg.nodes))]
    pub async fn up(cfg: &LabConfig, quorate: &Path) -> Result<Lab, LabError> {
        cfg.validate()?;
        // SAFETY: geteuid(2) has no preconditions and touches no memory.
        if unsafe { libc::geteuid() } != 0 {
            return Err(LabError::NotRoot);
        }
        prereq::check()?;
        let problems = specs::errors(cfg);
        if !problems.is_empty() {
            return Err(LabError::Config(format!(
                "the generated specs do not validate: {problems:?}"
            )));
        }
        if LabState::load(&cfg.dir)?.is_some() {
            return Err(LabError::Exists(cfg.dir.clone()));
        }
        let created_dir = !cfg.dir.exists();
        if !created_dir
            && std::fs::read_dir(&cfg.dir)
                .map_err(|e| LabError::io(&cfg.dir, e))?
                .next()
                .is_some()
        {
            return Err(LabError::Config(format!(
                "{} is not empty: give --dir a new or empty directory",
                cfg.dir.display()
            )));
        }
        net::check_free(cfg).await?;
        std::fs::create_dir_all(&cfg.dir).map_err(|e| LabError::io(&cfg.dir, e))?;
        let mut lab = Lab {
            state: LabState::new(cfg.clone(), created_dir, quorate.to_owned()),
        };
        // Recorded before anything is made, so `down` can remove a half-built lab.
        lab.state.save()?;
        match lab.build().await {
            Ok(()) => Ok(lab),
            Err(e) => {
                tracing::warn!(error = %e, "lab up failed; removing what was made");
                let _ = Lab::down(&cfg.dir).await;
                Err(e)
            }
        }
    }

    async fn build(&mut self) -> Result<(), LabError> {
        let cfg = self.state.config.clone();
        let conf = cfg.containers_conf();
        std::fs::write(&conf, CONTAINERS_CONF).map_err(|e| LabError::io(&conf, e))?;
        let password = bmc::new_password()?;
        bmc::write_password(&cfg, &password)?;
        net::create_bridge(&cfg.bridge(), cfg.host_address()).await?;
        for n in cfg.nodes() {
            node::prepare(&cfg, &n)?;
            bmc::prepare(&cfg, &n, &self.state.quorate, &password)?;
        }
        drop(password);
        // Safe: a fresh node has no containers; power-on starts only its Podman service.
        for n in cfg.nodes() {
            node::power_on(&cfg, &n).await?;
        }
        let tar = image::build(&cfg).await?;
        for n in cfg.nodes() {
            node::wait_ready(&cfg, &n, node::START_TIMEOUT).await?;
            image::load(&n, &tar).await?;
        }
        for n in cfg.nodes() {
            let pid = bmc::start(&cfg, &n).await?;
            self.state.bmc_pids.insert(n.name.clone(), pid);
            self.state.save()?;
            let power = bmc::agent(&cfg, &n)?.status().await?;
            if power != PowerState::On {
                return Err(LabError::Config(format!(
                    "{}'s BMC reports power {power} right after start",
                    n.name
                )));
            }
        }
        for i in 0..specs::DB_REPLICAS {
            let d = specs::db_storage_root(&cfg).join(format!("db-{i}"));
            std::fs::create_dir_all(&d).map_err(|e| LabError::io(&d, e))?;
        }
        repo::create(&cfg, &specs::repo_files(&cfg)).await
    }

    /// The lab recorded in `dir`.
    pub fn open(dir: &Path) -> Result<Lab, LabError> {
        match LabState::load(dir)? {
            Some(state) => Ok(Lab { state }),
            None => Err(LabError::NoLab(dir.to_owned())),
        }
    }

    /// Removes the lab in `dir`: its BMCs first (so nothing powers a node back on), then
    /// every node's processes, cable and namespace, the bridge, and the files. A directory
    /// without a lab is left alone, so a second `down` succeeds and does nothing.
    #[tracing::instrument(name = "lab.down", skip_all, fields(dir = %dir.display()))]
    pub async fn down(dir: &Path) -> Result<DownReport, LabError> {
        let Some(state) = LabState::load(dir)? else {
            return Ok(DownReport::default());
        };
        let cfg = &state.config;
        let mut report = DownReport {
            found: true,
            ..DownReport::default()
        };
        let mut note = |r: Result<usize, LabError>| match r {
            Ok(n) => report.killed += n,
            Err(e) => report.problems.push(e.to_string()),
        };
        note(bmc::stop_all(cfg).await);
        for n in cfg.nodes() {
            note(node::power_off(cfg, &n).await);
        }
        note(net::delete_link(&cfg.bridge()).await.map(|()| 0));
        let entries = [
            "containers.conf",
            "secrets",
            "bmc-password", // where a lab of an older quorate kept it
            "image.tar",
            "image-rootfs",
            "nodes",
            "bmc",
            "data",
            "repo.git",
            "repo",
            "state",
        ];
        for e in entries {
            note(remove(&cfg.dir.join(e)).map(|()| 0));
        }
        note(remove(&cfg.state_file()).map(|()| 0));
        if state.created_dir {
            note(
                std::fs::remove_dir(&cfg.dir)
                    .or_else(|e| match e.kind() {
                        std::io::ErrorKind::NotFound => Ok(()),
                        _ => Err(e),
                    })
                    .map(|()| 0)
                    .map_err(|e| LabError::io(&cfg.dir, e)),
            );
        }
        Ok(report)
    }

    /// What `lab.json` records.
    pub fn state(&self) -> &LabState {
        &self.state
    }

    /// What the lab was built from.
    pub fn config(&self) -> &LabConfig {
        &self.state.config
    }

    /// Every node.
    pub fn nodes(&self) -> Vec<LabNode> {
        self.state.config.nodes()
    }

    /// The node called `name`.
    pub fn node(&self, name: &str) -> Result<LabNode, LabError> {
        self.state.config.node(name)
    }

    /// The spec directory (in the lab repo's clone), for `--specs`.
    pub fn specs_dir(&self) -> PathBuf {
        self.state.specs.clone()
    }

    /// A connection to `node`'s Podman (plain TCP, `insecure`), with `timeout` per call.
    pub fn connection(&self, node: &str, timeout: Duration) -> Result<Connection, LabError> {
        node::connection(&self.node(node)?, timeout)
    }

    /// quorate's IPMI agent for `node`'s BMC, configured as the lab's Fence spec says.
    pub fn bmc(&self, node: &str) -> Result<IpmiAgent, LabError> {
        bmc::agent(self.config(), &self.node(node)?)
    }

    /// Pulls `node`'s network cable: its runtime stops answering, its BMC does not.
    /// Returns false when the node is powered off (the cable stays pulled at power on).
    pub async fn cut(&self, node: &str) -> Result<bool, LabError> {
        self.set_cable(node, false).await
    }

    /// Puts `node`'s cable back. Returns false when the node is powered off.
    pub async fn heal(&self, node: &str) -> Result<bool, LabError> {
        self.set_cable(node, true).await
    }

    #[tracing::instrument(name = "lab.cable", skip(self))]
    async fn set_cable(&self, name: &str, up: bool) -> Result<bool, LabError> {
        let n = self.node(name)?;
        node::mark_cut(self.config(), &n, !up)?;
        if !net::link_exists(&n.veth) {
            return Ok(false);
        }
        net::set_link(&n.veth, up).await?;
        Ok(true)
    }

    /// Powers `node` off or on through its BMC (quorate's IPMI agent, as a fence would),
    /// and returns the power state the BMC confirmed. After an `on`, waits until the
    /// node's Podman answers (unless its cable is cut; its containers stay stopped:
    /// invariant 5).
    ///
    /// Safety: this is the lab's stand-in for a power failure or a hand on the power
    /// button, not a fence: nothing is recorded, so the reconciler still has to fence a
    /// node it lost this way before it starts that node's instances elsewhere
    /// (invariant 3). Powering on starts no container (invariant 5).
    #[tracing::instrument(name = "lab.power", skip(self))]
    pub async fn power(&self, node: &str, on: bool) -> Result<PowerState, LabError> {
        let n = self.node(node)?;
        let agent = bmc::agent(self.config(), &n)?;
        let state = if on {
            agent.on().await?
        } else {
            agent.off().await?
        };
        // Through a pulled cable Podman cannot be asked; `heal` lets it be reached.
        if on && !node::is_cut(self.config(), &n) {
            node::wait_ready(self.config(), &n, node::START_TIMEOUT).await?;
        }
        Ok(state)
    }

    /// Every node's namespace, cable, Podman and BMC, asked now.
    pub async fn status(&self) -> Vec<NodeStatus> {
        status::gather(self.config()).await
    }
}

/// Removes a file or directory tree; an absent one is fine.
fn remove(path: &Path) -> Result<(), LabError> {
    let r = match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => Err(e),
        Ok(m) if m.is_dir() => std::fs::remove_dir_all(path),
        Ok(_) => std::fs::remove_file(path),
    };
    r.map_err(|e| LabError::io(path, e))
}
