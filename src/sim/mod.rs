//! Deterministic simulation of the whole reconcile loop under faults.
//!
//! An in-memory world ([`world`]) of nodes, links, BMCs and containers sits behind the
//! same traits as the real Podman, IPMI and clock ([`drivers`]), so the reconciler under
//! test is the real [`crate::reconcile`] loop, with its durable store kept across crashes.
//! Time is virtual (tokio's paused clock) and every random choice comes from one seed
//! ([`rng`]), so a seed replays a run exactly. [`schedule`] draws the faults; [`run`]
//! drives a simulation and checks the design invariants: at every start and fence as it
//! happens, after every 100 ms step, and convergence once the faults end.

pub(crate) mod drivers;
pub mod ha;
pub(crate) mod rng;
pub(crate) mod run;
pub mod schedule;
pub(crate) mod world;

pub use ha::{HaBite, HaConfig, Scenario, run_ha};
pub use run::{Bite, Config, Outcome, run};

/// A single-threaded runtime whose clock stands still until every task waits, for tests
/// that run minutes of simulated time in milliseconds.
#[cfg(test)]
pub(crate) fn paused_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap()
}

/// `m` locked; a lock a panicking thread left poisoned is taken as it is (the
/// simulation reports what it finds, and a panic fails its test anyway).
pub(crate) fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
