//! The lease rule (design invariant 9), decided here and nowhere else: when a replica may
//! act, by its own monotonic clock.
//!
//! A replica holds leadership through an etcd lease of `ttl`. etcd expires the lease `ttl`
//! after the last renewal it received; the replica cannot know when that was, only when it
//! *sent* the renewal (`sent`), which is earlier. So its own view of the lease ends at
//! `sent + ttl·(1 − drift) − margin`: earlier than etcd's, as long as the replica's clock
//! runs no more than `drift` faster than etcd's. A new leader cannot know when the old one
//! last checked its lease, only that its view had ended by the time etcd expired the lease;
//! a step the old leader began just before may still be in flight for up to the step
//! timeout. So the new leader acts only `ttl·(1 + drift) + step_timeout` after it won,
//! which also covers an old lease etcd extended across a change of its own leader.
//!
//! [`Lease`] holds the state the leadership loop updates; [`Lease::check`] is asked before
//! every start, stop and power command (`ha::env`).

use std::sync::Mutex;
use std::time::Duration;

// Monotonic: the system's monotonic clock in the binary; the simulation's virtual clock
// under tokio's paused time.
use tokio::time::Instant;

/// The clock assumptions, from the flags.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Timing {
    /// The lease's time to live.
    pub ttl: Duration,
    /// The most two clocks' rates may differ, as a fraction (0.05 = 5 %).
    pub drift: f64,
    /// Taken off the lease's end besides the drift (scheduling, one more round trip).
    pub margin: Duration,
    /// The longest a start, stop or power command may stay in flight.
    pub step_timeout: Duration,
}

impl Timing {
    /// Until when a lease renewed by a request sent at `sent` (and granted `ttl`) is valid
    /// by this replica's clock.
    pub fn valid_until(&self, sent: Instant, ttl: Duration) -> Instant {
        let keep = ttl.mul_f64((1.0 - self.drift).clamp(0.0, 1.0));
        sent + keep.saturating_sub(self.margin)
    }

    /// How long a new leader waits after winning before its first action.
    pub fn takeover_wait(&self) -> Duration {
        self.ttl.mul_f64(1.0 + self.drift.max(0.0)) + self.step_timeout
    }
}

/// Why a replica may not act now.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotLeader {
    /// Another replica leads, or nobody does yet.
    #[error("not the leader")]
    Follower,
    /// This replica won, and waits until nothing the old leader sent can still arrive.
    #[error("leader, but waiting {0:?} more for the old leader's steps to be over")]
    Waiting(Duration),
    /// This replica led, but its lease is no longer sure by its own clock (etcd
    /// unreachable, a pause, no majority).
    #[error("lease no longer valid by this replica's clock")]
    Expired,
}

/// The leadership as this replica knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct State {
    /// The election key's create revision while this replica holds it (the fencing token).
    token: Option<i64>,
    /// When the lease ends by this replica's clock.
    valid_until: Option<Instant>,
    /// When this replica may act first.
    act_from: Option<Instant>,
}

/// Shared between the leadership loop (which writes) and the guards (which ask).
#[derive(Debug, Default)]
pub struct Lease {
    state: Mutex<State>,
}

impl Lease {
    /// Whether this replica may act now; if so, its fencing token.
    pub fn check(&self) -> Result<i64, NotLeader> {
        self.check_at(Instant::now())
    }

    /// [`Lease::check`] at `now`.
    pub fn check_at(&self, now: Instant) -> Result<i64, NotLeader> {
        let s = self.state.lock().map(|s| *s).unwrap_or_default();
        decide(&s, now)
    }

    /// The fencing token while this replica holds the election key, acting or not: the
    /// guard of every write to the shared state.
    pub fn token(&self) -> Option<i64> {
        self.state.lock().ok().and_then(|s| s.token)
    }

    /// This replica won the election with `token` at `now`; it acts from `act_from`.
    pub fn won(&self, token: i64, valid_until: Instant, act_from: Instant) {
        if let Ok(mut s) = self.state.lock() {
            *s = State {
                token: Some(token),
                valid_until: Some(valid_until),
                act_from: Some(act_from),
            };
        }
    }

    /// The lease was renewed: valid until `until` (never shortened by a late answer).
    pub fn renewed(&self, until: Instant) {
        if let Ok(mut s) = self.state.lock() {
            s.valid_until = Some(s.valid_until.map_or(until, |u| u.max(until)));
        }
    }

    /// Leadership is over (lost, expired, or given up).
    pub fn lost(&self) {
        if let Ok(mut s) = self.state.lock() {
            *s = State::default();
        }
    }
}

/// The rule itself.
fn decide(s: &State, now: Instant) -> Result<i64, NotLeader> {
    let (Some(token), Some(until), Some(from)) = (s.token, s.valid_until, s.act_from) else {
        return Err(NotLeader::Follower);
    };
    if now >= until {
        return Err(NotLeader::Expired);
    }
    if now < from {
        return Err(NotLeader::Waiting(from - now));
    }
    Ok(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timing() -> Timing {
        Timing {
            ttl: Duration::from_secs(10),
            drift: 0.05,
            margin: Duration::from_millis(500),
            step_timeout: Duration::from_secs(10),
        }
    }

    #[test]
    fn the_lease_ends_before_etcd_can_expire_it() {
        let t = timing();
        let sent = Instant::now();
        let until = t.valid_until(sent, t.ttl);
        // etcd's expiry is at least ttl after `sent` by its clock; ours is shorter by
        // the drift and the margin.
        assert_eq!(until - sent, Duration::from_millis(9_000));
        assert!(until - sent < t.ttl);
    }

    #[test]
    fn a_new_leader_waits_the_lease_and_the_step_timeout() {
        assert_eq!(timing().takeover_wait(), Duration::from_millis(20_500));
    }

    #[test]
    fn only_a_winner_inside_its_lease_and_after_its_wait_acts() {
        let lease = Lease::default();
        let t0 = Instant::now();
        assert_eq!(lease.check_at(t0), Err(NotLeader::Follower));
        lease.won(42, t0 + Duration::from_secs(9), t0 + Duration::from_secs(5));
        assert_eq!(lease.token(), Some(42));
        assert!(matches!(lease.check_at(t0), Err(NotLeader::Waiting(_))));
        assert_eq!(lease.check_at(t0 + Duration::from_secs(6)), Ok(42));
        // A pause past the lease: refused by the process's own clock, whatever etcd says.
        assert_eq!(
            lease.check_at(t0 + Duration::from_secs(9)),
            Err(NotLeader::Expired)
        );
        lease.renewed(t0 + Duration::from_secs(18));
        assert_eq!(lease.check_at(t0 + Duration::from_secs(12)), Ok(42));
        // A late answer never shortens the lease.
        lease.renewed(t0 + Duration::from_secs(1));
        assert_eq!(lease.check_at(t0 + Duration::from_secs(12)), Ok(42));
        lease.lost();
        assert_eq!(lease.token(), None);
        assert_eq!(
            lease.check_at(t0 + Duration::from_secs(12)),
            Err(NotLeader::Follower)
        );
    }
}
