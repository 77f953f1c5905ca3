//! The one backoff: delays that double from a first delay up to a cap, without jitter (so
//! a simulation with the same seed waits the same), from the `backon` crate. Used by the
//! reconcile loop after failed passes, by fence runs between tries on a device, and by
//! the IPMI agent while it polls for the power state.

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};

/// The delays: `first`, `2 × first`, `4 × first`, ... never more than `max`, without end.
pub(crate) fn delays(first: Duration, max: Duration) -> impl Iterator<Item = Duration> {
    ExponentialBuilder::new()
        .with_min_delay(first)
        .with_max_delay(max)
        .without_max_times()
        .build()
        .map(move |d| d.min(max))
}

/// The delay after the `n`-th failure in a row (1 for the first): `first` doubled
/// `n - 1` times, never more than `max`.
pub(crate) fn after(n: u32, first: Duration, max: Duration) -> Duration {
    // Past 64 doublings every cap is reached; counting further changes nothing.
    let index = usize::try_from(n.clamp(1, 64) - 1).unwrap_or(0);
    delays(first, max).nth(index).unwrap_or(max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_the_cap_and_stays_there() {
        let ms = Duration::from_millis;
        let d: Vec<Duration> = delays(ms(500), ms(3_000)).take(6).collect();
        assert_eq!(
            d,
            [
                ms(500),
                ms(1_000),
                ms(2_000),
                ms(3_000),
                ms(3_000),
                ms(3_000)
            ]
        );
        assert_eq!(after(1, ms(500), Duration::from_secs(30)), ms(500));
        assert_eq!(after(4, ms(500), Duration::from_secs(30)), ms(4_000));
        assert_eq!(
            after(u32::MAX, ms(500), Duration::from_secs(30)),
            Duration::from_secs(30)
        );
        assert_eq!(after(0, ms(500), Duration::from_secs(30)), ms(500));
    }
}
