//! Tracing set-up: one JSON object per line in Lambda (CloudWatch Logs Insights reads the
//! fields), compact human-readable lines locally. `RUST_LOG` filters as usual.

use tracing_subscriber::{EnvFilter, fmt, prelude::*};

/// Installs the global subscriber. Safe to call more than once (later calls are no-ops),
/// which lets tests and devstack share start-up code.
pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
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
