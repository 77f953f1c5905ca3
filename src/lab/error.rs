//! [`LabError`]: what can go wrong building, changing or removing a lab.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::fence::FenceError;

/// What can go wrong building, changing or removing a lab. Never holds the BMC password.
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    /// A program ran and failed.
    #[error("`{command}` failed ({status}): {stderr}")]
    Command {
        /// The command line.
        command: String,
        /// Its exit status.
        status: String,
        /// Its stderr.
        stderr: String,
    },
    /// A program could not be started.
    #[error("cannot run `{command}`: {reason}")]
    Spawn {
        /// The command line.
        command: String,
        /// Why.
        reason: String,
    },
    /// A file or directory could not be used.
    #[error("{path}: {reason}")]
    Io {
        /// The path.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// Something did not happen in time.
    #[error("{what}: nothing after {after:?}{}", if .detail.is_empty() { String::new() } else { format!("\n{}", .detail) })]
    Timeout {
        /// What was waited for.
        what: String,
        /// How long.
        after: Duration,
        /// A log tail or what was seen.
        detail: String,
    },
    /// An invalid lab setting.
    #[error("{0}")]
    Config(String),
    /// Something of the same name or on the same addresses exists already.
    #[error("{0}")]
    Clash(String),
    /// A program or file the lab needs is missing.
    #[error("missing: {0}")]
    Missing(String),
    /// There is no lab in the directory.
    #[error("no lab in {0} (no lab.json); bring one up with `quorate lab up`")]
    NoLab(PathBuf),
    /// A lab is up in the directory already.
    #[error("a lab is already up in {0}; remove it first with `quorate lab down`")]
    Exists(PathBuf),
    /// `lab.json` is unreadable.
    #[error("lab state: {0}")]
    State(String),
    /// No node of that name.
    #[error("no node `{node}` in this lab (nodes: {})", .known.join(", "))]
    UnknownNode {
        /// The name asked for.
        node: String,
        /// The lab's nodes.
        known: Vec<String>,
    },
    /// A node's runtime did not do what was asked.
    #[error("runtime: {0}")]
    Runtime(String),
    /// A BMC did not do what was asked.
    #[error("BMC: {0}")]
    Fence(#[from] FenceError),
    /// `lab up` needs root (namespaces, bridges, rootful Podman).
    #[error("the lab needs root (network namespaces, a bridge, rootful Podman)")]
    NotRoot,
}

impl LabError {
    pub(crate) fn io(path: &Path, e: std::io::Error) -> LabError {
        LabError::Io {
            path: path.to_owned(),
            reason: e.to_string(),
        }
    }
}
