//! The one place the tracing subscriber is built. `RUST_LOG` chooses what quorate logs, but
//! never opens the debug and trace levels of a dependency: those dump payloads. bollard
//! logs container-create bodies (the environment, secrets included), the Podman client
//! (containers-api, podman-api) logs raw responses, and ipmi-rs logs its RAKP exchange, from
//! which a BMC password can be recovered offline. Their `info`, `warn` and `error` events
//! carry no payload and still reach the log.
//!
//! Below the filter, the build compiles out what it would drop anyway (Cargo.toml): the
//! trace level of every crate (`tracing`'s `max_level_debug`; quorate logs nothing there)
//! and the debug and trace levels of the crates that log through `log`.

use tracing::{Level, Metadata};
use tracing_subscriber::filter::{self, FilterExt};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, fmt};

use super::{LogFormat, color_stderr};

/// The most verbose level logged from any crate other than quorate, whatever `RUST_LOG`
/// says.
pub(crate) const DEPENDENCY_MAX_LEVEL: Level = Level::INFO;

/// Logs go to stderr; `RUST_LOG` chooses what (`default` when unset or unparsable), within
/// [`allowed`].
pub(crate) fn init(format: LogFormat, default: &str) {
    let env = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let asked = env.to_string();
    let filter = env.and(filter::filter_fn(allowed));
    let layer = fmt::layer().with_writer(std::io::stderr);
    let layer = match format {
        LogFormat::Text => layer.with_ansi(color_stderr()).with_filter(filter).boxed(),
        LogFormat::Json => layer
            .json()
            .with_current_span(true)
            .with_span_list(true)
            .with_filter(filter)
            .boxed(),
    };
    // `try_init` also routes the `log` crate's records (bollard, ipmi-rs, the Podman
    // client) through this filter.
    let _ = tracing_subscriber::registry().with(layer).try_init();
    tracing::debug!(
        filter = %asked,
        "logging; other crates at most {DEPENDENCY_MAX_LEVEL} (their debug and trace dump payloads)"
    );
}

/// Whether a span or event may be logged at all: any level of quorate's own targets (they
/// never hold a secret value: secrets are redacting types), at most
/// [`DEPENDENCY_MAX_LEVEL`] of every other target.
pub(crate) fn allowed(meta: &Metadata<'_>) -> bool {
    own(meta.target()) || *meta.level() <= DEPENDENCY_MAX_LEVEL
}

fn own(target: &str) -> bool {
    target == "quorate" || target.starts_with("quorate::")
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing::callsite::Identifier;
    use tracing::field::FieldSet;
    use tracing::metadata::Kind;

    struct Site;
    impl tracing::callsite::Callsite for Site {
        fn set_interest(&self, _: tracing::subscriber::Interest) {}
        fn metadata(&self) -> &Metadata<'_> {
            unreachable!("not registered")
        }
    }
    static SITE: Site = Site;

    fn meta(target: &'static str, level: Level) -> Metadata<'static> {
        Metadata::new(
            "event",
            target,
            level,
            None,
            None,
            None,
            FieldSet::new(&[], Identifier(&SITE)),
            Kind::EVENT,
        )
    }

    #[test]
    fn dependencies_never_log_below_info_and_quorate_logs_everything() {
        for target in [
            "bollard::docker",
            "ipmi_rs::rmcp::v2_0",
            "containers_api::conn::client",
            "hyper",
            "log",
            "quorate_x",
        ] {
            assert!(!allowed(&meta(target, Level::TRACE)), "{target}");
            assert!(!allowed(&meta(target, Level::DEBUG)), "{target}");
            assert!(allowed(&meta(target, Level::INFO)), "{target}");
            assert!(allowed(&meta(target, Level::ERROR)), "{target}");
        }
        for target in ["quorate", "quorate::reconcile"] {
            assert!(allowed(&meta(target, Level::TRACE)), "{target}");
        }
    }

    #[test]
    fn the_levels_no_dependency_may_log_at_are_compiled_out() {
        use tracing::level_filters::{LevelFilter, STATIC_MAX_LEVEL};
        assert_eq!(STATIC_MAX_LEVEL, LevelFilter::DEBUG);
        assert_eq!(log::STATIC_MAX_LEVEL, log::LevelFilter::Info);
    }
}
