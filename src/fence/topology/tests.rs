//! The topology policy under paused tokio time, with scripted in-memory agents.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use super::*;
use crate::fence::log::HistoryEntry;
use crate::fence::{FenceLog, MemoryFenceLog};

/// Answers from a script; records when each call began; takes `latency` per call.
struct Scripted {
    name: &'static str,
    script: Mutex<VecDeque<Result<PowerState, FenceError>>>,
    calls: Calls,
    latency: Duration,
}

type Calls = Arc<Mutex<Vec<(&'static str, FenceAction, Instant)>>>;

#[async_trait]
impl FenceAgent for Scripted {
    fn describe(&self) -> String {
        self.name.into()
    }
    async fn status(&self) -> Result<PowerState, FenceError> {
        self.next(FenceAction::Status).await
    }
    async fn off(&self) -> Result<PowerState, FenceError> {
        self.next(FenceAction::Off).await
    }
    async fn on(&self) -> Result<PowerState, FenceError> {
        self.next(FenceAction::On).await
    }
    async fn reboot(&self) -> Result<PowerState, FenceError> {
        self.next(FenceAction::Reboot).await
    }
}

impl Scripted {
    async fn next(&self, action: FenceAction) -> Result<PowerState, FenceError> {
        self.calls
            .lock()
            .unwrap()
            .push((self.name, action, Instant::now()));
        tokio::time::sleep(self.latency).await;
        let next = self.script.lock().unwrap().pop_front();
        next.unwrap_or(Err(FenceError::Config("script exhausted".into())))
    }
}

fn dev(
    calls: &Calls,
    name: &'static str,
    level: u32,
    delay: Duration,
    script: Vec<Result<PowerState, FenceError>>,
) -> FenceDevice {
    FenceDevice {
        name: name.into(),
        level,
        delay,
        agent: Box::new(Scripted {
            name,
            script: Mutex::new(script.into()),
            calls: Arc::clone(calls),
            latency: Duration::from_millis(10),
        }),
    }
}

fn timeout_err() -> FenceError {
    FenceError::Timeout {
        address: "x".into(),
        after: Duration::from_secs(1),
        during: "ping".into(),
    }
}

fn auth_err() -> FenceError {
    FenceError::Auth {
        address: "x".into(),
        reason: "wrong password".into(),
    }
}

/// A clock driven by tokio's (paused) time, from a fixed epoch.
struct TokioClock(Instant);
impl Clock for TokioClock {
    fn now_unix_ms(&self) -> i64 {
        1_000_000 + i64::try_from(self.0.elapsed().as_millis()).unwrap()
    }
}

fn topo(devices: Vec<FenceDevice>) -> NodeTopology {
    NodeTopology {
        node: "n1".into(),
        devices,
    }
}

async fn run(t: &NodeTopology, action: FenceAction, log: &MemoryFenceLog) -> FenceReport {
    let clock = TokioClock(Instant::now());
    run_fence(t, action, &FencePolicy::default(), &clock, log).await
}

#[tokio::test(start_paused = true)]
async fn first_level_success_stops_there() {
    let calls = Calls::default();
    let t = topo(vec![
        dev(&calls, "b", 2, Duration::ZERO, vec![Ok(PowerState::Off)]),
        dev(&calls, "a", 1, Duration::ZERO, vec![Ok(PowerState::Off)]),
    ]);
    let log = MemoryFenceLog::new();
    let r = run(&t, FenceAction::Off, &log).await;
    assert_eq!(
        r.result,
        FenceResult::Confirmed {
            level: 1,
            state: PowerState::Off
        }
    );
    assert_eq!(calls.lock().unwrap().len(), 1);
    assert_eq!(calls.lock().unwrap()[0].0, "a");
    assert_eq!(r.attempts[0].started_unix_ms, 1_000_000);
}

#[tokio::test(start_paused = true)]
async fn every_device_of_a_level_must_confirm() {
    let calls = Calls::default();
    let t = topo(vec![
        dev(&calls, "psu1", 1, Duration::ZERO, vec![Ok(PowerState::Off)]),
        dev(&calls, "psu2", 1, Duration::ZERO, vec![Err(auth_err())]),
        dev(&calls, "bmc", 2, Duration::ZERO, vec![Ok(PowerState::Off)]),
    ]);
    let log = MemoryFenceLog::new();
    let r = run(&t, FenceAction::Off, &log).await;
    assert_eq!(
        r.result,
        FenceResult::Confirmed {
            level: 2,
            state: PowerState::Off
        }
    );
    let names: Vec<_> = calls.lock().unwrap().iter().map(|c| c.0).collect();
    assert_eq!(
        names,
        ["psu1", "psu2", "bmc"],
        "auth errors are not retried"
    );
    let h = log.history(None).await.unwrap();
    assert_eq!(h.len(), 4, "three attempts and the outcome");
    assert!(matches!(&h[3], HistoryEntry::Outcome(o) if o.result == Ok(2)));
}

#[tokio::test(start_paused = true)]
async fn transient_failures_are_retried_with_doubling_backoff() {
    let calls = Calls::default();
    let script = vec![Err(timeout_err()), Err(timeout_err()), Ok(PowerState::Off)];
    let t = topo(vec![dev(&calls, "a", 1, Duration::ZERO, script)]);
    let r = run(&t, FenceAction::Off, &MemoryFenceLog::new()).await;
    assert!(r.succeeded(), "{r}");
    let at: Vec<Instant> = calls.lock().unwrap().iter().map(|c| c.2).collect();
    let latency = Duration::from_millis(10);
    assert_eq!(at[1] - at[0], latency + Duration::from_millis(500));
    assert_eq!(at[2] - at[1], latency + Duration::from_millis(1000));
    let tries: Vec<u32> = r.attempts.iter().map(|a| a.try_number).collect();
    assert_eq!(tries, [1, 2, 3]);
}

#[tokio::test(start_paused = true)]
async fn all_tries_failing_fails_the_fence() {
    let calls = Calls::default();
    let t = topo(vec![dev(
        &calls,
        "a",
        1,
        Duration::ZERO,
        vec![Err(timeout_err()), Err(timeout_err()), Err(timeout_err())],
    )]);
    let log = MemoryFenceLog::new();
    let r = run(&t, FenceAction::Off, &log).await;
    assert!(
        matches!(&r.result, FenceResult::Failed { cause } if cause.contains("level 1 device a"))
    );
    assert_eq!(r.attempts.len(), 3);
    assert_eq!(log.off_evidence("n1").await.unwrap(), None);
}

#[tokio::test(start_paused = true)]
async fn the_overall_timeout_bounds_a_hanging_device() {
    let calls = Calls::default();
    let mut d = dev(&calls, "hang", 1, Duration::ZERO, vec![Ok(PowerState::Off)]);
    d.agent = Box::new(Scripted {
        name: "hang",
        script: Mutex::new(VecDeque::new()),
        calls: Arc::clone(&calls),
        latency: Duration::from_secs(3600),
    });
    let t = topo(vec![d]);
    let t0 = Instant::now();
    let r = run(&t, FenceAction::Off, &MemoryFenceLog::new()).await;
    assert_eq!(t0.elapsed(), FencePolicy::default().timeout);
    assert_eq!(r.attempts[0].result.as_ref().unwrap_err().kind, "deadline");
    assert!(!r.succeeded());
}

#[tokio::test(start_paused = true)]
async fn the_delay_comes_before_fencing_only() {
    let calls = Calls::default();
    let delay = Duration::from_secs(5);
    let t = topo(vec![dev(
        &calls,
        "a",
        1,
        delay,
        vec![Ok(PowerState::On), Ok(PowerState::Off)],
    )]);
    let t0 = Instant::now();
    let log = MemoryFenceLog::new();
    run(&t, FenceAction::Status, &log).await;
    assert_eq!(
        calls.lock().unwrap()[0].2,
        t0,
        "no delay for a status query"
    );
    assert!(
        log.history(None).await.unwrap().is_empty(),
        "status is not recorded"
    );
    let t1 = Instant::now();
    let r = run(&t, FenceAction::Off, &log).await;
    assert!(r.succeeded());
    assert_eq!(calls.lock().unwrap()[1].2, t1 + delay);
}

#[tokio::test(start_paused = true)]
async fn a_delay_beyond_the_timeout_fails_without_acting() {
    let calls = Calls::default();
    let t = topo(vec![dev(
        &calls,
        "a",
        1,
        Duration::from_secs(120),
        vec![Ok(PowerState::Off)],
    )]);
    let r = run(&t, FenceAction::Off, &MemoryFenceLog::new()).await;
    assert!(!r.succeeded());
    assert!(calls.lock().unwrap().is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_wrong_state_is_not_a_confirmation() {
    let calls = Calls::default();
    let t = topo(vec![dev(
        &calls,
        "liar",
        1,
        Duration::ZERO,
        vec![Ok(PowerState::On), Ok(PowerState::On), Ok(PowerState::On)],
    )]);
    let r = run(&t, FenceAction::Off, &MemoryFenceLog::new()).await;
    assert!(!r.succeeded(), "{r}");
    assert_eq!(r.attempts[0].result.as_ref().unwrap_err().kind, "protocol");
}

#[tokio::test(start_paused = true)]
async fn no_devices_is_a_failure() {
    let r = run(&topo(vec![]), FenceAction::Off, &MemoryFenceLog::new()).await;
    assert!(matches!(r.result, FenceResult::Failed { .. }));
    assert!(r.to_string().contains("no fence devices"), "{r}");
}
