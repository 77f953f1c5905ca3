//! Shared support for the integration tests.

#![allow(dead_code)]

pub mod ipmi_sim;

/// Whether we run under CI, where a test that cannot start its service must fail.
pub fn in_ci() -> bool {
    std::env::var_os("CI").is_some_and(|v| !v.is_empty())
}

/// A service could not start: under CI that fails the test; elsewhere the test is skipped
/// with the reason printed. Returns `None` so callers can `let Some(x) = ... else { return }`.
pub fn skip_or_fail<T>(what: &str, why: &str) -> Option<T> {
    if in_ci() {
        panic!("{what} could not start under CI: {why}");
    }
    eprintln!("SKIPPED: {what} could not start: {why}");
    None
}
