//! Metrics: every Prometheus metric the gateway exports is named here, with
//! one small recording function each, so feature modules (auth, throttle,
//! cache, the local backend) record through these functions and never spell
//! a metric name themselves. Not a pipeline phase: the access-log phase in
//! `telemetry.rs` records the per-request metrics; other phases call the
//! functions below where their decision is made.
//!
//! Recording is cheap and never fails: until [`install`] has run (the
//! binary runs it; an embedding app may not), the calls are no-ops.
//! `/metrics` on the admin listener renders [`render`].

use std::sync::{OnceLock, RwLock};
use std::time::Duration;

use axum::http::Method;
use metrics::{Counter, Gauge, Histogram, counter, gauge, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Requests answered, by `route` (route key or `-`), `method`, `status`.
pub const REQUESTS: &str = "lambdagate_requests_total";
/// Seconds from request received to response head, by `route`.
pub const REQUEST_DURATION: &str = "lambdagate_request_duration_seconds";
/// The gateway's own share of a request's time (total − integration), by `route`.
pub const GATEWAY_OVERHEAD: &str = "lambdagate_gateway_overhead_seconds";
/// Seconds spent waiting on the integration (function, upstream), by `route`.
pub const INTEGRATION_DURATION: &str = "lambdagate_integration_duration_seconds";
/// Auth decisions, by `authorizer` and `decision` (`allow`, `deny`, `error`).
pub const AUTH_DECISIONS: &str = "lambdagate_auth_decisions_total";
/// Requests refused by a throttle, by `scope` (`route`, `key`, `stage`, `global`, ...).
pub const THROTTLED: &str = "lambdagate_throttled_total";
/// Requests refused because a usage plan's quota is spent, by `plan`.
pub const QUOTA_EXCEEDED: &str = "lambdagate_quota_exceeded_total";
/// Response-cache lookups that hit, by `route`.
pub const CACHE_HITS: &str = "lambdagate_cache_hits_total";
/// Response-cache lookups that missed, by `route`.
pub const CACHE_MISSES: &str = "lambdagate_cache_misses_total";
/// Local-backend function processes started for an invocation, by `function`.
pub const COLD_STARTS: &str = "lambdagate_cold_starts_total";
/// Local-backend function processes alive, by `function`.
pub const POOL_SIZE: &str = "lambdagate_pool_size";
/// Invocations waiting for a free function process, by `function`.
pub const QUEUE_DEPTH: &str = "lambdagate_queue_depth";
/// Invocations or forwards that failed, by `backend` and `kind`.
pub const BACKEND_ERRORS: &str = "lambdagate_backend_errors_total";
/// Requests being handled right now.
pub const IN_FLIGHT: &str = "lambdagate_in_flight_requests";
/// Client connections open right now.
pub const CONNECTIONS: &str = "lambdagate_connections_open";
/// Connections closed at once because `max_connections` were open.
pub const CONNECTIONS_REFUSED: &str = "lambdagate_connections_refused_total";
/// Config reloads, by `result` (`ok`, `invalid`).
pub const CONFIG_RELOADS: &str = "lambdagate_config_reloads_total";

/// Latency buckets in seconds: 100 µs to 30 s (the integration timeout).
const BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0, 30.0,
];

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the process-wide Prometheus recorder (once; later calls return
/// the same handle). `None` if another recorder was installed first.
pub fn install() -> Option<&'static PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), BUCKETS)
                .ok()?;
            let handle = builder.install_recorder().ok()?;
            spawn_upkeep(handle.clone());
            describe();
            let _ = IN_FLIGHT_GAUGE.set(gauge!(IN_FLIGHT));
            Some(handle)
        })
        .as_ref()
}

/// How often histogram samples are folded into their buckets when nobody
/// scrapes `/metrics`.
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// The thread that does it (within the kernel's 15 bytes for a name).
const UPKEEP_THREAD: &str = "metrics-upkeep";

/// The recorder keeps every histogram sample until an upkeep folds it into
/// the buckets; a render does one, but a gateway nobody scrapes would hold
/// a few samples per request for ever. A thread of its own, so it runs
/// whichever runtime (if any) the embedding app has.
fn spawn_upkeep(handle: PrometheusHandle) {
    let spawned = std::thread::Builder::new()
        .name(UPKEEP_THREAD.into())
        .spawn(move || {
            loop {
                std::thread::sleep(UPKEEP_EVERY);
                handle.run_upkeep();
            }
        });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "cannot start the metrics upkeep thread; histograms are folded only when /metrics is scraped");
    }
}

/// The Prometheus text exposition of every metric, or `None` when no
/// recorder is installed.
pub fn render() -> Option<String> {
    let handle = install()?;
    handle.run_upkeep();
    Some(handle.render())
}

fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_counter!(REQUESTS, "Requests answered, by route, method and status");
    describe_histogram!(
        REQUEST_DURATION,
        Unit::Seconds,
        "Time from request received to response head"
    );
    describe_histogram!(
        GATEWAY_OVERHEAD,
        Unit::Seconds,
        "Gateway time excluding the integration"
    );
    describe_histogram!(
        INTEGRATION_DURATION,
        Unit::Seconds,
        "Time waiting on the integration"
    );
    describe_counter!(AUTH_DECISIONS, "Auth decisions by authorizer and decision");
    describe_counter!(THROTTLED, "Requests refused by a throttle, by scope");
    describe_counter!(QUOTA_EXCEEDED, "Requests refused by a spent quota, by plan");
    describe_counter!(CACHE_HITS, "Response cache hits by route");
    describe_counter!(CACHE_MISSES, "Response cache misses by route");
    describe_counter!(COLD_STARTS, "Local function processes started, by function");
    describe_gauge!(POOL_SIZE, "Local function processes alive, by function");
    describe_gauge!(QUEUE_DEPTH, "Invocations waiting for a function process");
    describe_counter!(BACKEND_ERRORS, "Backend failures by backend and kind");
    describe_gauge!(IN_FLIGHT, "Requests being handled");
    describe_gauge!(CONNECTIONS, "Client connections open");
    describe_counter!(
        CONNECTIONS_REFUSED,
        "Connections closed because max_connections were open"
    );
    describe_counter!(CONFIG_RELOADS, "Config reloads by result");
}

/// A route's request metrics: handles looked up once, when the gateway is
/// built, instead of by name and labels on every request. Built after
/// [`install`] (the binary installs first); an embedding app that installs
/// its own recorder later gets no-op handles for gateways built before.
pub struct RouteMetrics {
    route: String,
    duration: Histogram,
    overhead: Histogram,
    integration: Histogram,
    /// `requests_total` by method and status, added as they first occur.
    requests: RwLock<Vec<(Method, u16, Counter)>>,
}

/// Distinct (method, status) pairs a route keeps handles for; rarer ones
/// are looked up by name (any method token is valid HTTP).
const MAX_REQUEST_COUNTERS: usize = 64;

impl RouteMetrics {
    pub fn new(route: &str) -> Self {
        RouteMetrics {
            route: route.to_string(),
            duration: histogram!(REQUEST_DURATION, "route" => route.to_string()),
            overhead: histogram!(GATEWAY_OVERHEAD, "route" => route.to_string()),
            integration: histogram!(INTEGRATION_DURATION, "route" => route.to_string()),
            requests: RwLock::new(Vec::new()),
        }
    }

    /// One answered request on this route.
    pub fn record(
        &self,
        method: &Method,
        status: u16,
        total: Duration,
        integration: Option<Duration>,
    ) {
        self.requests_counter(method, status).increment(1);
        self.duration.record(total.as_secs_f64());
        let overhead = total.saturating_sub(integration.unwrap_or_default());
        self.overhead.record(overhead.as_secs_f64());
        if let Some(i) = integration {
            self.integration.record(i.as_secs_f64());
        }
    }

    fn requests_counter(&self, method: &Method, status: u16) -> Counter {
        let find = |v: &[(Method, u16, Counter)]| {
            v.iter()
                .find(|(m, s, _)| *s == status && m == method)
                .map(|(_, _, c)| c.clone())
        };
        if let Some(c) = self.requests.read().ok().and_then(|v| find(&v)) {
            return c;
        }
        let counter = counter!(REQUESTS, "route" => self.route.clone(), "method" => method.to_string(), "status" => status.to_string());
        if let Ok(mut v) = self.requests.write()
            && v.len() < MAX_REQUEST_COUNTERS
            && find(&v).is_none()
        {
            v.push((method.clone(), status, counter.clone()));
        }
        counter
    }
}

/// An authorizer's decision: `decision` is `allow`, `deny` or `error`.
pub fn auth_decision(authorizer: &str, decision: &'static str) {
    counter!(AUTH_DECISIONS, "authorizer" => authorizer.to_string(), "decision" => decision)
        .increment(1);
}

/// The counter of requests refused by a throttle; `scope` says which
/// (`route`, `key`, `stage`, `global`). A handle, looked up once, for the
/// throttle phase to keep: a refusal then costs no lookup by name.
pub fn throttled_counter(scope: &'static str) -> Counter {
    counter!(THROTTLED, "scope" => scope)
}

/// A request refused because `plan`'s quota is spent.
pub fn quota_exceeded(plan: &str) {
    counter!(QUOTA_EXCEEDED, "plan" => plan.to_string()).increment(1);
}

/// Handles of a route's cache hit and miss counters, for a phase to keep
/// and increment without looking the metric up on every request.
pub fn cache_counters(route: &str) -> (metrics::Counter, metrics::Counter) {
    (
        counter!(CACHE_HITS, "route" => route.to_string()),
        counter!(CACHE_MISSES, "route" => route.to_string()),
    )
}

/// The local backend started a process for `function`.
pub fn cold_start(function: &str) {
    counter!(COLD_STARTS, "function" => function.to_string()).increment(1);
}

/// Processes alive for `function` in the local backend.
pub fn pool_size(function: &str, processes: usize) {
    gauge!(POOL_SIZE, "function" => function.to_string()).set(processes as f64);
}

/// Invocations of `function` waiting for a process.
pub fn queue_depth(function: &str, waiting: usize) {
    gauge!(QUEUE_DEPTH, "function" => function.to_string()).set(waiting as f64);
}

/// A backend failure; `kind` is short and fixed (`timeout`, `throttled`,
/// `function_error`, `bad_response`, `unreachable`, ...).
pub fn backend_error(backend: &str, kind: &'static str) {
    counter!(BACKEND_ERRORS, "backend" => backend.to_string(), "kind" => kind).increment(1);
}

/// A config reload attempt.
pub fn config_reload(ok: bool) {
    counter!(CONFIG_RELOADS, "result" => if ok { "ok" } else { "invalid" }).increment(1);
}

/// The in-flight gauge's handle, kept once [`install`] has run.
static IN_FLIGHT_GAUGE: OnceLock<Gauge> = OnceLock::new();

/// Requests in flight went up (`+1`) or down (`-1`).
pub fn in_flight(delta: f64) {
    match IN_FLIGHT_GAUGE.get() {
        Some(g) => g.increment(delta),
        // Another recorder (an embedding app's) or none: look it up.
        None => gauge!(IN_FLIGHT).increment(delta),
    }
}

/// Open connections went up (`+1`) or down (`-1`).
pub fn connections(delta: f64) {
    gauge!(CONNECTIONS).increment(delta);
}

/// A connection was closed at once because the limit was reached.
pub fn connection_refused() {
    counter!(CONNECTIONS_REFUSED).increment(1);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recorded_metrics_render_as_prometheus_text() {
        assert!(install().is_some());
        RouteMetrics::new("GET /unit").record(
            &Method::GET,
            200,
            Duration::from_millis(5),
            Some(Duration::from_millis(3)),
        );
        backend_error("unit-backend", "timeout");
        cache_counters("GET /unit").0.increment(1);
        let text = render().unwrap();
        assert!(text.contains(
            r#"lambdagate_requests_total{route="GET /unit",method="GET",status="200"} 1"#
        ));
        assert!(
            text.contains(r#"lambdagate_integration_duration_seconds_bucket{route="GET /unit""#)
        );
        assert!(text.contains(r#"lambdagate_gateway_overhead_seconds_bucket{route="GET /unit""#));
        assert!(text.contains(
            r#"lambdagate_backend_errors_total{backend="unit-backend",kind="timeout"} 1"#
        ));
        assert!(text.contains(r#"lambdagate_cache_hits_total{route="GET /unit"} 1"#));
    }

    /// Without a scraper, only the upkeep thread keeps the recorder's
    /// histogram samples from piling up (one per request and histogram).
    #[test]
    fn the_recorder_is_kept_up_without_a_scraper() {
        assert!(install().is_some());
        let named = |name: &str| {
            std::fs::read_dir("/proc/self/task")
                .unwrap()
                .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
                .any(|comm| comm.trim() == name)
        };
        // A new thread shows its creator's name until it has set its own.
        let found = (0..200).any(|_| {
            named(UPKEEP_THREAD) || {
                std::thread::sleep(Duration::from_millis(25));
                false
            }
        });
        assert!(found, "no thread named {UPKEEP_THREAD}");
    }
}
