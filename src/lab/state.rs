//! `lab.json`: what `lab up` made, so that every other lab command (and `lab down`, twice)
//! acts on exactly that. It holds names, addresses, ports, paths and pids; never the BMC
//! password (design invariant 7), only the path of the file that holds it.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::LabError;
use super::config::{BMC_PORT, IMAGE, LabConfig, LabNode, PODMAN_PORT};

/// Format version of `lab.json`.
pub const VERSION: u32 = 1;

/// The contents of `lab.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LabState {
    /// Format version ([`VERSION`]).
    pub version: u32,
    /// What the lab was built from.
    pub config: LabConfig,
    /// Whether `lab up` created the directory (then `lab down` removes it).
    pub created_dir: bool,
    /// The `quorate` binary the BMCs' chassis scripts run.
    pub quorate: PathBuf,
    /// The bridge in the host's namespace.
    pub bridge: String,
    /// The host's address on the bridge.
    pub host_address: Ipv4Addr,
    /// TCP port of every node's Podman API.
    pub podman_port: u16,
    /// UDP port of every BMC.
    pub bmc_port: u16,
    /// The image loaded on every node.
    pub image: String,
    /// Every node with its names and addresses.
    pub nodes: Vec<LabNode>,
    /// `ipmi_sim` pids by node.
    pub bmc_pids: BTreeMap<String, u32>,
    /// The bare git repository with the specs (branch `main`).
    pub repo: PathBuf,
    /// Its clone, to edit and push from.
    pub work_tree: PathBuf,
    /// The spec directory in the clone.
    pub specs: PathBuf,
    /// The file holding the BMC password.
    pub password_file: PathBuf,
}

impl LabState {
    /// The state of a lab about to be built from `config`.
    pub fn new(config: LabConfig, created_dir: bool, quorate: PathBuf) -> LabState {
        LabState {
            version: VERSION,
            created_dir,
            quorate,
            bridge: config.bridge(),
            host_address: config.host_address(),
            podman_port: PODMAN_PORT,
            bmc_port: BMC_PORT,
            image: IMAGE.to_owned(),
            nodes: config.nodes(),
            bmc_pids: BTreeMap::new(),
            repo: config.repo_bare(),
            work_tree: config.repo_work(),
            specs: config.specs_dir(),
            password_file: config.password_file(),
            config,
        }
    }

    /// Reads `dir/lab.json`; `Ok(None)` when there is none.
    pub fn load(dir: &Path) -> Result<Option<LabState>, LabError> {
        let path = dir.join("lab.json");
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(LabError::io(&path, e)),
        };
        let state: LabState = serde_json::from_str(&text)
            .map_err(|e| LabError::State(format!("{}: {e}", path.display())))?;
        if state.version != VERSION {
            return Err(LabError::State(format!(
                "{}: version {} (this quorate reads {VERSION})",
                path.display(),
                state.version
            )));
        }
        Ok(Some(state))
    }

    /// Writes `lab.json` (to a temporary file first, then renamed into place).
    pub fn save(&self) -> Result<(), LabError> {
        let path = self.config.state_file();
        let tmp = path.with_extension("json.tmp");
        let mut text = serde_json::to_string_pretty(self)
            .map_err(|e| LabError::State(format!("{}: {e}", path.display())))?;
        text.push('\n');
        std::fs::write(&tmp, text).map_err(|e| LabError::io(&tmp, e))?;
        std::fs::rename(&tmp, &path).map_err(|e| LabError::io(&path, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_other_versions() {
        let dir = tempfile::tempdir().unwrap();
        let config = LabConfig {
            dir: dir.path().into(),
            ..LabConfig::default()
        };
        assert_eq!(LabState::load(dir.path()).unwrap(), None);
        let mut state = LabState::new(config, false, "/usr/bin/quorate".into());
        state.bmc_pids.insert("worker1".into(), 42);
        state.save().unwrap();
        assert_eq!(LabState::load(dir.path()).unwrap(), Some(state.clone()));
        let text = std::fs::read_to_string(dir.path().join("lab.json")).unwrap();
        assert!(text.contains("\"netns\": \"qlab-worker1\""), "{text}");
        std::fs::write(
            dir.path().join("lab.json"),
            text.replace("\"version\": 1", "\"version\": 9"),
        )
        .unwrap();
        assert!(LabState::load(dir.path()).is_err());
    }
}
