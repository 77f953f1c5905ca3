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

/// A Unix timestamp in milliseconds as UTC RFC 3339 text, `2024-05-06T07:08:09.010Z`
/// (chrono; a time outside chrono's range, some 262,000 years away, reads as the epoch).
pub fn format_unix_ms(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_format_as_utc() {
        assert_eq!(format_unix_ms(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(format_unix_ms(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(
            format_unix_ms(1_715_000_000_123),
            "2024-05-06T12:53:20.123Z"
        );
        assert_eq!(format_unix_ms(-1), "1969-12-31T23:59:59.999Z");
        assert_eq!(format_unix_ms(i64::MAX), "1970-01-01T00:00:00.000Z");
    }

    #[test]
    fn system_clock_is_after_2020() {
        assert!(SystemClock.now_unix_ms() > 1_577_836_800_000);
    }
}
