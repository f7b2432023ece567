//! The process-wide metrics recorder (Prometheus), shared by every role; `/metrics` renders it.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

/// Seconds: fine below 10 ms, where popup requests should be, coarse above.
const LATENCY_BUCKETS: &[f64] =
    &[0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// The process-wide metrics recorder, installed on first use.
pub fn metrics_handle() -> Option<&'static PrometheusHandle> {
    static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            match PrometheusBuilder::new()
                // Fixed buckets make every timing a few counter increments; the default summaries run a
                // quantile sketch per request on the hot path.
                .set_buckets(LATENCY_BUCKETS)
                .and_then(|builder| builder.install_recorder())
            {
                Ok(handle) => Some(handle),
                Err(error) => {
                    tracing::warn!(%error, "metrics are disabled");
                    None
                }
            }
        })
        .as_ref()
}
