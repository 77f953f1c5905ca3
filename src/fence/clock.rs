//! The wall clock, behind a trait so a simulation can drive the timestamps it records.
//!
//! Only timestamps come from here. Waiting and measuring durations use `tokio::time`, which
//! a simulation drives by pausing tokio time.

use std::time::{SystemTime, UNIX_EPOCH};

/// A source of wall-clock timestamps.
pub trait Clock: Send + Sync {
    /// Milliseconds since the Unix epoch.
    fn now_unix_ms(&self) -> i64;
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_unix_ms(&self) -> i64 {
        // A clock set before 1970 reads as the epoch rather than failing a fence.
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_clock_is_after_2020() {
        assert!(SystemClock.now_unix_ms() > 1_577_836_800_000);
    }
}
