//! `/v1/metrics`: the server's counters in Prometheus' text format.
//!
//! HTTP requests are counted here, by route (the API method, such as `projects.models.predict`,
//! or the path pattern outside the `/v1` API) and status; the serving counters and predict
//! latency of each loaded version come from the registry, and the jobs that have not ended from
//! the store. An administrator's token reads the endpoint, and so does the token given to the
//! server for scrapers alone (`--metrics-token-file`), which reads nothing else.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use kiln_registry::VersionStats;
use kiln_serve::histogram::{BOUNDS, Histogram, Snapshot};

/// Requests of one route.
#[derive(Default)]
struct RouteStats {
    /// Time from a request's arrival to its response's headers.
    latency: Histogram,
    /// Responses by status code.
    statuses: Mutex<HashMap<u16, u64>>,
}

/// The HTTP counters, by route.
#[derive(Default)]
pub struct HttpMetrics {
    routes: RwLock<HashMap<String, Arc<RouteStats>>>,
}

impl HttpMetrics {
    /// Counts one response of `route` with `status`, `elapsed` after its request arrived.
    pub fn record(&self, route: &str, status: u16, elapsed: Duration) {
        let known = self
            .routes
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get(route)
            .cloned();
        let stats = match known {
            Some(stats) => stats,
            None => Arc::clone(
                self.routes
                    .write()
                    .unwrap_or_else(|poisoned| poisoned.into_inner())
                    .entry(route.to_string())
                    .or_default(),
            ),
        };
        stats.latency.record(elapsed);
        *stats
            .statuses
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .entry(status)
            .or_default() += 1;
    }

    /// Each route's latency and responses by status, by route name.
    fn snapshot(&self) -> Vec<RouteSnapshot> {
        let routes = self
            .routes
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut snapshot: Vec<_> = routes
            .iter()
            .map(|(route, stats)| {
                let mut statuses: Vec<(u16, u64)> = stats
                    .statuses
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner())
                    .iter()
                    .map(|(status, count)| (*status, *count))
                    .collect();
                statuses.sort_unstable();
                RouteSnapshot {
                    route: route.clone(),
                    latency: stats.latency.snapshot(),
                    statuses,
                }
            })
            .collect();
        snapshot.sort_by(|a, b| a.route.cmp(&b.route));
        snapshot
    }
}

/// One route's counters at one moment.
struct RouteSnapshot {
    route: String,
    latency: Snapshot,
    /// Responses by status code, by code.
    statuses: Vec<(u16, u64)>,
}

/// One per-version series: name, type, help, and its value in a version's counters.
type VersionSeries = (
    &'static str,
    &'static str,
    &'static str,
    fn(&VersionStats) -> u64,
);

/// What `/v1/metrics` reports.
pub struct Report<'a> {
    pub http: &'a HttpMetrics,
    pub versions: &'a [VersionStats],
    /// Jobs that have not ended, by state; `None` when the store could not be read.
    pub jobs: Option<&'a [(kiln_api::JobState, u64)]>,
}

/// The report in Prometheus' text exposition format (version 0.0.4).
pub fn render(report: &Report<'_>) -> String {
    let mut text = String::new();
    let http = report.http.snapshot();
    header(
        &mut text,
        "kiln_http_requests_total",
        "counter",
        "HTTP responses by route and status.",
    );
    for RouteSnapshot {
        route, statuses, ..
    } in &http
    {
        for (status, count) in statuses {
            let _ = writeln!(
                text,
                "kiln_http_requests_total{{route=\"{}\",status=\"{status}\"}} {count}",
                escape(route)
            );
        }
    }
    header(
        &mut text,
        "kiln_http_request_duration_seconds",
        "histogram",
        "Time from a request's arrival to its response, by route.",
    );
    for RouteSnapshot { route, latency, .. } in &http {
        histogram(
            &mut text,
            "kiln_http_request_duration_seconds",
            &format!("route=\"{}\"", escape(route)),
            latency,
        );
    }

    let versions = report.versions;
    header(
        &mut text,
        "kiln_versions_loaded",
        "gauge",
        "Versions whose model is loaded.",
    );
    let _ = writeln!(text, "kiln_versions_loaded {}", versions.len());
    header(
        &mut text,
        "kiln_version_engine",
        "gauge",
        "What runs each loaded version's model.",
    );
    for stats in versions {
        let _ = writeln!(
            text,
            "kiln_version_engine{{version=\"{}\",engine=\"{}\"}} 1",
            escape(&stats.version),
            escape(&stats.engine)
        );
    }
    let series: [VersionSeries; 6] = [
        (
            "kiln_predict_requests_total",
            "counter",
            "Requests run by the model.",
            |stats| stats.requests,
        ),
        (
            "kiln_predict_instances_total",
            "counter",
            "Instances predicted.",
            |stats| stats.instances,
        ),
        (
            "kiln_predict_batches_total",
            "counter",
            "Model calls.",
            |stats| stats.batches,
        ),
        (
            "kiln_predict_rejected_total",
            "counter",
            "Requests refused with 429.",
            |stats| stats.rejected,
        ),
        (
            "kiln_predict_queued",
            "gauge",
            "Requests waiting for the model.",
            |stats| stats.queued as u64,
        ),
        (
            "kiln_predict_workers_awake",
            "gauge",
            "Model workers awake: the first, and helpers while batches leave work behind or the \
             model is slow.",
            |stats| stats.awake as u64,
        ),
    ];
    for (metric, kind, help, value) in series {
        header(&mut text, metric, kind, help);
        for stats in versions {
            let _ = writeln!(
                text,
                "{metric}{{version=\"{}\"}} {}",
                escape(&stats.version),
                value(stats)
            );
        }
    }
    header(
        &mut text,
        "kiln_predict_duration_seconds",
        "histogram",
        "Time from a predict or inference request's arrival at its version's queue to its answer.",
    );
    for stats in versions {
        histogram(
            &mut text,
            "kiln_predict_duration_seconds",
            &format!("version=\"{}\"", escape(&stats.version)),
            &stats.latency,
        );
    }

    if let Some(jobs) = report.jobs {
        header(
            &mut text,
            "kiln_jobs",
            "gauge",
            "Jobs of every project that have not ended, by state.",
        );
        for (state, count) in jobs {
            let state = serde_json::to_value(state)
                .ok()
                .and_then(|value| value.as_str().map(str::to_string))
                .unwrap_or_default();
            let _ = writeln!(text, "kiln_jobs{{state=\"{state}\"}} {count}");
        }
    }
    text
}

fn header(text: &mut String, metric: &str, kind: &str, help: &str) {
    let _ = writeln!(text, "# HELP {metric} {help}\n# TYPE {metric} {kind}");
}

/// A histogram's `_bucket`, `_sum` and `_count` lines, with `labels` on each.
fn histogram(text: &mut String, metric: &str, labels: &str, snapshot: &Snapshot) {
    for (bound, count) in BOUNDS.iter().zip(&snapshot.cumulative) {
        let _ = writeln!(text, "{metric}_bucket{{{labels},le=\"{bound}\"}} {count}");
    }
    let _ = writeln!(
        text,
        "{metric}_bucket{{{labels},le=\"+Inf\"}} {}",
        snapshot.count()
    );
    let _ = writeln!(text, "{metric}_sum{{{labels}}} {}", snapshot.sum_seconds);
    let _ = writeln!(text, "{metric}_count{{{labels}}} {}", snapshot.count());
}

/// A label value with Prometheus' escapes.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The `/v1/metrics` handler: the counters as Prometheus scrapes them.
pub(crate) async fn scrape(
    axum::extract::State(services): axum::extract::State<crate::Services>,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let registry = &services.registry;
    let versions = registry.serving_stats();
    let jobs = match registry.active_job_counts() {
        Ok(jobs) => Some(jobs),
        Err(error) => {
            tracing::warn!(%error, "metrics without job counts: the store cannot be read");
            None
        }
    };
    let text = render(&Report {
        http: &services.http_metrics,
        versions: &versions,
        jobs: jobs.as_deref(),
    });
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_counted_by_route_and_status_with_a_histogram() {
        let http = HttpMetrics::default();
        http.record("projects.models.predict", 200, Duration::from_millis(2));
        http.record("projects.models.predict", 200, Duration::from_millis(30));
        http.record("projects.models.predict", 429, Duration::from_micros(100));
        http.record("/healthz", 200, Duration::from_micros(10));
        let text = render(&Report {
            http: &http,
            versions: &[],
            jobs: Some(&[(kiln_api::JobState::Running, 2)]),
        });
        for line in [
            "kiln_http_requests_total{route=\"projects.models.predict\",status=\"200\"} 2",
            "kiln_http_requests_total{route=\"projects.models.predict\",status=\"429\"} 1",
            "kiln_http_request_duration_seconds_bucket{route=\"projects.models.predict\",le=\"0.0005\"} 1",
            "kiln_http_request_duration_seconds_bucket{route=\"projects.models.predict\",le=\"0.0025\"} 2",
            "kiln_http_request_duration_seconds_bucket{route=\"projects.models.predict\",le=\"+Inf\"} 3",
            "kiln_http_request_duration_seconds_count{route=\"projects.models.predict\"} 3",
            "kiln_http_request_duration_seconds_count{route=\"/healthz\"} 1",
            "kiln_jobs{state=\"RUNNING\"} 2",
            "# TYPE kiln_predict_duration_seconds histogram",
        ] {
            assert!(text.lines().any(|got| got == line), "{line}\n{text}");
        }
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
