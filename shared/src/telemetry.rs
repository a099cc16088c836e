//! Tracing set-up: one JSON object per line in Lambda (CloudWatch Logs Insights reads the
//! fields), compact human-readable lines locally.
//!
//! `RUST_LOG` filters by level and target: a default level and `target=level` pairs, comma
//! separated (`info`, `warn,shared=debug`, `tower_http=off`). These are
//! [`Targets`](tracing_subscriber::filter::Targets) directives, not `EnvFilter`'s: span and
//! field filters (`[span{field=value}]`) are not read: `EnvFilter`, which reads them, links
//! a regex engine into every function (docs/benchmarks.md, "Under 10 MB"). A value that does
//! not parse, an empty one or none at all means `info`.

use tracing_subscriber::{filter::Targets, fmt, prelude::*};

/// The filter `RUST_LOG` describes; `info` when it is unset, empty or not understood.
fn filter_from(raw: Option<&str>) -> Targets {
    raw.map(str::trim)
        .filter(|raw| !raw.is_empty())
        .and_then(|raw| raw.parse::<Targets>().ok())
        .unwrap_or_else(|| Targets::new().with_default(tracing::Level::INFO))
}

/// Installs the global subscriber. Safe to call more than once (later calls are no-ops),
/// which lets tests and devstack share start-up code.
pub fn init() {
    let filter = filter_from(std::env::var("RUST_LOG").ok().as_deref());
    let in_lambda = std::env::var_os("AWS_LAMBDA_FUNCTION_NAME").is_some();
    let registry = tracing_subscriber::registry().with(filter);
    let result = if in_lambda {
        registry
            .with(
                fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_current_span(true)
                    .with_span_list(false)
                    .without_time(), // CloudWatch stamps every line itself
            )
            .try_init()
    } else {
        registry.with(fmt::layer().compact()).try_init()
    };
    // Already initialised (a second call in one process): keep the first subscriber.
    drop(result);
}

#[cfg(test)]
mod tests {
    use tracing::Level;

    use super::*;

    #[test]
    fn rust_log_sets_a_default_level_and_per_target_levels() {
        let filter = filter_from(Some("warn,shared=debug,tower_http=off"));
        assert!(filter.would_enable("agents", &Level::WARN));
        assert!(!filter.would_enable("agents", &Level::INFO));
        assert!(filter.would_enable("shared::db", &Level::DEBUG));
        assert!(!filter.would_enable("shared::db", &Level::TRACE));
        assert!(!filter.would_enable("tower_http::trace", &Level::ERROR));
    }

    #[test]
    fn no_empty_or_unreadable_rust_log_means_info() {
        for raw in [None, Some(""), Some("  "), Some("info,[span{x=1}]=debug")] {
            let filter = filter_from(raw);
            assert!(filter.would_enable("agents", &Level::INFO), "{raw:?}");
            assert!(!filter.would_enable("agents", &Level::DEBUG), "{raw:?}");
        }
    }
}
