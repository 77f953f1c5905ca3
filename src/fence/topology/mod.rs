//! Running a fence over a node's topology: levels in order, every device of a level must
//! confirm, a per-device delay, retries with backoff, all inside one overall timeout; every
//! try recorded.
//!
//! All waiting uses `tokio::time`, so a simulation with paused time drives delays, backoff
//! and timeouts; timestamps come from the injected [`Clock`].

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use tokio::time::Instant;
use tracing::Instrument;

use super::log::{AttemptFailure, FenceAttempt, FenceOutcome};
use super::{Clock, FenceAction, FenceAgent, FenceError, FenceLog, PowerState};

/// One fence device of a node.
pub struct FenceDevice {
    /// The device name (from the spec).
    pub name: String,
    /// Its level: lower levels are tried first.
    pub level: u32,
    /// Wait this long before fencing through it (breaks fence races in two-node clusters).
    pub delay: Duration,
    /// The agent that talks to it.
    pub agent: Box<dyn FenceAgent>,
}

impl fmt::Debug for FenceDevice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FenceDevice")
            .field("name", &self.name)
            .field("level", &self.level)
            .field("delay", &self.delay)
            .field("agent", &self.agent.describe())
            .finish()
    }
}

/// The fence devices of one node.
#[derive(Debug)]
pub struct NodeTopology {
    /// The node they fence.
    pub node: String,
    /// Its devices, in any order; within a level, the order given is the order used.
    pub devices: Vec<FenceDevice>,
}

/// Time budget and retries of a fence run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FencePolicy {
    /// The whole run (delays, tries, backoff) must end within this.
    pub timeout: Duration,
    /// Tries per device before its level counts as failed.
    pub max_tries: u32,
    /// Pause before the second try; doubles for each further try.
    pub backoff_first: Duration,
    /// The longest pause between tries.
    pub backoff_max: Duration,
}

impl Default for FencePolicy {
    fn default() -> Self {
        FencePolicy {
            timeout: Duration::from_secs(60),
            max_tries: 3,
            backoff_first: Duration::from_millis(500),
            backoff_max: Duration::from_secs(8),
        }
    }
}

/// What a fence run achieved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FenceResult {
    /// Every device of `level` confirmed `state`.
    Confirmed {
        /// The level that succeeded.
        level: u32,
        /// The confirmed state.
        state: PowerState,
    },
    /// A status query: the devices' answers are in the attempts.
    Queried,
    /// No level succeeded.
    Failed {
        /// Why, level by level.
        cause: String,
    },
}

/// The printable report of a fence run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FenceReport {
    /// The node.
    pub node: String,
    /// What was asked.
    pub action: FenceAction,
    /// When the run started (Unix ms).
    pub started_unix_ms: i64,
    /// How long it took.
    pub duration: Duration,
    /// What it achieved.
    pub result: FenceResult,
    /// Every try, in order.
    pub attempts: Vec<FenceAttempt>,
    /// Records that could not be written (the fence result stands regardless).
    pub log_errors: Vec<String>,
}

impl FenceReport {
    /// Whether the action was confirmed (or, for status, every device answered).
    pub fn succeeded(&self) -> bool {
        match self.result {
            FenceResult::Confirmed { .. } => true,
            FenceResult::Queried => self.attempts.iter().all(|a| a.result.is_ok()),
            FenceResult::Failed { .. } => false,
        }
    }
}

impl FenceReport {
    /// The report without its tries (for one who printed them as they happened): the
    /// result line and the records that could not be written.
    pub fn summary(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = self.write(&mut out, false);
        out
    }

    fn write(&self, f: &mut impl fmt::Write, attempts: bool) -> fmt::Result {
        write!(f, "{} {}: ", self.action, self.node)?;
        match &self.result {
            FenceResult::Confirmed { level, state } => writeln!(
                f,
                "confirmed {state} by level {level} in {:.2?}",
                self.duration
            )?,
            FenceResult::Queried => writeln!(f, "queried in {:.2?}", self.duration)?,
            FenceResult::Failed { cause } => {
                writeln!(f, "FAILED after {:.2?}: {cause}", self.duration)?
            }
        }
        for a in self.attempts.iter().filter(|_| attempts) {
            writeln!(f, "  {a}")?;
        }
        for e in &self.log_errors {
            writeln!(f, "  warning: not recorded: {e}")?;
        }
        Ok(())
    }
}

impl fmt::Display for FenceReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.write(f, true)
    }
}

/// Shared state of one run.
struct Run<'a> {
    node: &'a str,
    action: FenceAction,
    policy: &'a FencePolicy,
    clock: &'a dyn Clock,
    log: &'a dyn FenceLog,
    deadline: Instant,
    attempts: Vec<FenceAttempt>,
    log_errors: Vec<String>,
}

/// Runs `action` over the node's topology and records it in `log` (status queries are not
/// recorded: they change nothing).
///
/// Safety (invariant 3): the result is `Confirmed` only when every device of one level
/// returned the target state; a failed or unconfirmed device fails its level. A record that
/// cannot be written is reported, not fatal: a missing success record only makes the
/// planner fence again, never start an instance early.
pub async fn run_fence(
    topology: &NodeTopology,
    action: FenceAction,
    policy: &FencePolicy,
    clock: &dyn Clock,
    log: &dyn FenceLog,
) -> FenceReport {
    let span = tracing::info_span!("fence", node = %topology.node, %action);
    run_inner(topology, action, policy, clock, log)
        .instrument(span)
        .await
}

async fn run_inner(
    topology: &NodeTopology,
    action: FenceAction,
    policy: &FencePolicy,
    clock: &dyn Clock,
    log: &dyn FenceLog,
) -> FenceReport {
    let started_unix_ms = clock.now_unix_ms();
    let t0 = Instant::now();
    let mut run = Run {
        node: &topology.node,
        action,
        policy,
        clock,
        log,
        deadline: t0 + policy.timeout,
        attempts: Vec::new(),
        log_errors: Vec::new(),
    };
    let mut levels: BTreeMap<u32, Vec<&FenceDevice>> = BTreeMap::new();
    for d in &topology.devices {
        levels.entry(d.level).or_default().push(d);
    }

    let result = if levels.is_empty() {
        FenceResult::Failed {
            cause: "the node has no fence devices".into(),
        }
    } else if action == FenceAction::Status {
        for d in &topology.devices {
            let _ = run.device(d).await;
        }
        FenceResult::Queried
    } else {
        run.levels(&levels).await
    };

    let duration = t0.elapsed();
    tracing::info!(?result, ?duration, "fence run finished");
    if action != FenceAction::Status {
        let outcome = FenceOutcome {
            node: topology.node.clone(),
            action,
            started_unix_ms,
            duration,
            result: match &result {
                FenceResult::Confirmed { level, .. } => Ok(*level),
                FenceResult::Queried => Err("no level ran".into()),
                FenceResult::Failed { cause } => Err(cause.clone()),
            },
        };
        if let Err(e) = log.record_outcome(&outcome).await {
            tracing::error!(error = %e, "cannot record fence outcome");
            run.log_errors.push(e.to_string());
        }
    }
    FenceReport {
        node: topology.node.clone(),
        action,
        started_unix_ms,
        duration,
        result,
        attempts: run.attempts,
        log_errors: run.log_errors,
    }
}

impl Run<'_> {
    async fn levels(&mut self, levels: &BTreeMap<u32, Vec<&FenceDevice>>) -> FenceResult {
        let mut causes = Vec::new();
        'levels: for (&level, devices) in levels {
            for d in devices {
                if let Err(e) = self.device(d).await {
                    tracing::warn!(level, device = %d.name, error = %e, "fence level failed");
                    causes.push(format!("level {level} device {}: {e}", d.name));
                    continue 'levels;
                }
            }
            if let Some(state) = self.action.target() {
                return FenceResult::Confirmed { level, state };
            }
        }
        FenceResult::Failed {
            cause: causes.join("; "),
        }
    }

    /// Delay, then tries with backoff until the device confirms, fails for good, runs out
    /// of tries, or the run's deadline passes.
    async fn device(&mut self, d: &FenceDevice) -> Result<PowerState, FenceError> {
        let span = tracing::info_span!("fence_device", device = %d.name, level = d.level);
        async {
            let fencing = matches!(self.action, FenceAction::Off | FenceAction::Reboot);
            if fencing && !d.delay.is_zero() {
                if Instant::now() + d.delay >= self.deadline {
                    return Err(FenceError::Deadline(self.policy.timeout));
                }
                tracing::info!(delay = ?d.delay, "waiting before fencing");
                tokio::time::sleep(d.delay).await;
            }
            let mut backoff =
                crate::backoff::delays(self.policy.backoff_first, self.policy.backoff_max);
            let mut try_number = 0;
            loop {
                try_number += 1;
                let result = self.attempt(d, try_number).await;
                match result {
                    Ok(state) => return Ok(state),
                    Err(e) if !e.is_retryable() || try_number >= self.policy.max_tries => {
                        return Err(e);
                    }
                    Err(e) => {
                        let pause = backoff.next().unwrap_or(self.policy.backoff_max);
                        if Instant::now() + pause >= self.deadline {
                            return Err(e);
                        }
                        tracing::info!(error = %e, ?pause, "retrying");
                        tokio::time::sleep(pause).await;
                    }
                }
            }
        }
        .instrument(span)
        .await
    }

    async fn attempt(
        &mut self,
        d: &FenceDevice,
        try_number: u32,
    ) -> Result<PowerState, FenceError> {
        let started_unix_ms = self.clock.now_unix_ms();
        let t = Instant::now();
        let remaining = self.deadline.saturating_duration_since(t);
        let result = match tokio::time::timeout(remaining, d.agent.run(self.action)).await {
            Err(_) => Err(FenceError::Deadline(self.policy.timeout)),
            // Safety (invariant 3): an agent that answers with the wrong state has not
            // confirmed anything.
            Ok(Ok(state)) if self.action.target().is_some_and(|t| t != state) => {
                Err(FenceError::Protocol {
                    address: d.agent.describe(),
                    detail: format!("agent answered {state} to {}", self.action),
                })
            }
            Ok(r) => r,
        };
        let attempt = FenceAttempt {
            node: self.node.to_string(),
            device: d.name.clone(),
            level: d.level,
            action: self.action,
            try_number,
            started_unix_ms,
            duration: t.elapsed(),
            result: result.clone().map_err(|e| AttemptFailure {
                kind: e.kind().to_string(),
                cause: e.to_string(),
            }),
        };
        if self.action != FenceAction::Status
            && let Err(e) = self.log.record_attempt(&attempt).await
        {
            tracing::error!(error = %e, "cannot record fence attempt");
            self.log_errors.push(e.to_string());
        }
        self.attempts.push(attempt);
        result
    }
}

#[cfg(test)]
mod tests;
