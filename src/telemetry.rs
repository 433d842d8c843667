//! Request id & access log phase (outermost): gives every request an id,
//! returns it the way AWS does, and writes one access-log line per request
//! (target `lambdagate::access`) plus the per-request metrics. Later phases
//! add what only they know (integration time, key id, principal) to the
//! request's [`AccessRecord`]. Also sets up `tracing` for the binary.
//!
//! The access log never holds a secret: an API key is logged by its id,
//! a caller by its principal (JWT `sub`, authorizer `principalId`, IAM ARN).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime};

use axum::extract::Request;
use axum::extract::connect_info::ConnectInfo;
use axum::http::{HeaderName, HeaderValue, Method};
use axum::response::Response;

use crate::auth::{AuthContext, AuthorizerOutput};
use crate::config::Flavor;
use crate::error::ErrorDetail;
use crate::metrics::RouteMetrics;
use crate::pipeline::phase::{Next, Phase, PhaseFuture};
use crate::routing::{RouteContext, RouteRuntime};

pub mod line;

/// The request id header of REST APIs (also sent to `http` upstreams).
pub(crate) static X_AMZN_REQUESTID: HeaderName = HeaderName::from_static("x-amzn-requestid");
pub(crate) static APIGW_REQUESTID: HeaderName = HeaderName::from_static("apigw-requestid");

/// Facts about a request known before any phase runs.
#[derive(Debug, Clone)]
pub struct RequestInfo {
    pub request_id: String,
    /// `request_id` as a header value, with the response header that
    /// carries it (by flavor), set on the way out (in place when a
    /// templated refusal has room for it); `None` if the id is not a
    /// valid header value (accepted and generated ids always are).
    pub id_header: Option<(&'static HeaderName, HeaderValue)>,
    pub received_at: SystemTime,
    pub started: Instant,
    pub source_ip: IpAddr,
    /// What later phases add for the access log.
    pub record: Arc<AccessRecord>,
}

/// Per-request facts only later phases know, shared through [`RequestInfo`].
#[derive(Default)]
pub struct AccessRecord {
    /// Nanoseconds waiting on the integration, plus one (0: none).
    integration: AtomicU64,
    /// The route the integration served, for the log line and metrics
    /// (a refusal carries its route in the response's extensions instead).
    route: OnceLock<Arc<RouteRuntime>>,
    key_id: Mutex<Option<Arc<str>>>,
    principal: Mutex<Option<String>>,
    bytes_in: AtomicU64,
}

impl std::fmt::Debug for AccessRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessRecord")
            .field("integration", &self.integration_time())
            .field("route", &self.route.get().map(|r| &r.route_key))
            .field("key_id", &self.key_id())
            .field("principal", &self.principal())
            .field("bytes_in", &self.bytes_in)
            .finish_non_exhaustive()
    }
}

impl AccessRecord {
    /// Time spent waiting on the integration (added up if called twice).
    pub fn add_integration_time(&self, d: Duration) {
        let nanos = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX - 1);
        let _ = self
            .integration
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                Some(n.max(1).saturating_add(nanos))
            });
    }

    pub fn integration_time(&self) -> Option<Duration> {
        match self.integration.load(Ordering::Relaxed) {
            0 => None,
            n => Some(Duration::from_nanos(n - 1)),
        }
    }

    /// The route whose integration answered (set once, by the integration).
    pub fn set_route(&self, route: Arc<RouteRuntime>) {
        let _ = self.route.set(route);
    }

    /// Records who the caller is: the API key's id (never the key) and the
    /// authorizer's principal.
    pub fn note_auth(&self, auth: &AuthContext) {
        if let Some(k) = &auth.api_key
            && let Ok(mut g) = self.key_id.lock()
        {
            *g = Some(k.id.clone());
        }
        let principal = match &auth.authorizer {
            Some(AuthorizerOutput::Jwt { claims, .. }) => claims
                .get("sub")
                .and_then(|v| v.as_str())
                .map(str::to_string),
            Some(AuthorizerOutput::Lambda { principal_id, .. }) => principal_id.clone(),
            Some(AuthorizerOutput::Iam(i)) => i
                .user_arn
                .clone()
                .or_else(|| i.caller_id.clone())
                .or_else(|| Some(i.access_key.clone())),
            None => None,
        };
        if let Some(p) = principal
            && let Ok(mut g) = self.principal.lock()
        {
            *g = Some(p);
        }
    }

    fn key_id(&self) -> Option<Arc<str>> {
        self.key_id.lock().ok().and_then(|g| g.clone())
    }

    fn principal(&self) -> Option<String> {
        self.principal.lock().ok().and_then(|g| g.clone())
    }
}

/// A request body that counts the bytes read through it.
struct CountingBody {
    inner: axum::body::Body,
    record: Arc<AccessRecord>,
}

impl http_body::Body for CountingBody {
    type Data = bytes::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled
            && let Some(data) = frame.data_ref()
        {
            self.record
                .bytes_in
                .fetch_add(data.len() as u64, Ordering::Relaxed);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// The request id a client sent, if API Gateway would keep it: 1 to 128
/// letters, digits, `-` or `_` (which are also valid header bytes).
fn acceptable_id(v: &HeaderValue) -> Option<String> {
    let s = v.to_str().ok()?;
    (!s.is_empty()
        && s.len() <= 128
        && s.bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'))
    .then(|| s.to_string())
}

/// Request id & access log phase: the flavor (which request id header a
/// response carries) and the metrics of requests no route serves.
pub struct RequestLog {
    pub flavor: Flavor,
    /// Request metrics of requests no route served (route label `-`).
    pub unrouted_metrics: RouteMetrics,
}

/// The id, the record and the request's counting body are set up before
/// the rest of the pipeline runs; only what comes after (headers, metrics,
/// the log line) is a future, so the request itself is never moved into it.
impl Phase for RequestLog {
    fn call(self: Arc<Self>, req: Request, next: Next) -> PhaseFuture {
        request_id_and_log(self, req, next)
    }
}

fn request_id_and_log(state: Arc<RequestLog>, mut req: Request, next: Next) -> PhaseFuture {
    let request_id = req
        .headers()
        .get(&X_AMZN_REQUESTID)
        .and_then(acceptable_id)
        .unwrap_or_else(new_request_id);
    let id_name = match state.flavor {
        Flavor::Rest => &X_AMZN_REQUESTID,
        Flavor::Http => &APIGW_REQUESTID,
    };
    // An accepted or generated id is letters, digits, `-` and `_` only,
    // always a valid header value; made now, before the id moves into the
    // request's extensions.
    let id_header = HeaderValue::from_str(&request_id)
        .ok()
        .map(|v| (id_name, v));
    // Taken, not read: the address lives on in `RequestInfo`, and one
    // entry fewer keeps the extension map from growing (a rehash) when
    // auth adds its context.
    let source_ip = req
        .extensions_mut()
        .remove::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
        .unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST));
    let record = Arc::new(AccessRecord::default());
    let started = Instant::now();
    let method = req.method().clone();
    // The log line's path, kept only when the line is written (a `Uri`
    // clone shares its bytes).
    let log = tracing::enabled!(target: "lambdagate::access", tracing::Level::INFO);
    let uri = log.then(|| req.uri().clone());
    // A body that has ended already (no body at all) has no bytes to count.
    let count_body = !http_body::Body::is_end_stream(req.body());
    req.extensions_mut().insert(RequestInfo {
        request_id,
        id_header: id_header.clone(),
        received_at: SystemTime::now(),
        started,
        source_ip,
        record: record.clone(),
    });
    let req = if count_body {
        req.map(|inner| {
            axum::body::Body::new(CountingBody {
                inner,
                record: record.clone(),
            })
        })
    } else {
        req
    };
    crate::metrics::in_flight(1.0);
    let rest = next.run(req);
    Box::pin(async move {
        let res = rest.await;
        crate::metrics::in_flight(-1.0);
        log_response(
            &state, res, id_header, source_ip, &record, started, &method, uri,
        )
    })
}

/// The way out: the request id header on the response, the
/// request's metrics and its access-log line.
#[allow(clippy::too_many_arguments)]
fn log_response(
    state: &RequestLog,
    mut res: Response,
    id_header: Option<(&'static HeaderName, HeaderValue)>,
    source_ip: IpAddr,
    record: &AccessRecord,
    started: Instant,
    method: &Method,
    uri: Option<axum::http::Uri>,
) -> Response {
    // Replaces the id a templated refusal already carries (in place, no
    // growth of the map) or one a backend sent.
    if let Some((name, v)) = &id_header {
        res.headers_mut().insert(*name, v.clone());
    }
    // The route: from a refusal that carries it, else from the integration.
    let from_response = res.extensions().get::<RouteContext>().map(|c| &c.route);
    let route = from_response.or_else(|| record.route.get());
    let latency = started.elapsed();
    let integration = record.integration_time();
    let status = res.status().as_u16();
    route
        .map_or(&state.unrouted_metrics, |r| &r.metrics)
        .record(method, status, latency, integration);
    if let Some(uri) = uri {
        // Letters, digits, `-` and `_` (see above): always text.
        let request_id = id_header
            .as_ref()
            .and_then(|(_, v)| v.to_str().ok())
            .unwrap_or("");
        let route_key = route.map_or("-", |r| r.route_key.as_str());
        let error: Option<&dyn std::fmt::Display> =
            res.extensions().get::<ErrorDetail>().map(|e| &e.0 as _);
        // Bytes out: known exactly for buffered bodies; streamed ones log -1.
        let bytes_out = http_body::Body::size_hint(res.body())
            .exact()
            .map_or(-1, |n| n as i64);
        let key_id = record.key_id();
        let principal = record.principal();
        line::with_text(error, |error| {
            line::Access {
                request_id,
                source_ip,
                method: method.as_str(),
                path: uri.path(),
                route: route_key,
                status,
                latency_us: latency.as_micros() as u64,
                integration_latency_us: integration.map_or(-1, |d| d.as_micros() as i64),
                key_id: key_id.as_deref().unwrap_or("-"),
                principal: principal.as_deref().unwrap_or("-"),
                bytes_in: record.bytes_in.load(Ordering::Relaxed),
                bytes_out,
                error,
            }
            .log();
        });
    }
    res
}

/// Identity-for-the-log phase (right after auth): copies who the caller is
/// into the access record. A no-op when auth left no `AuthContext`.
pub struct NoteIdentity;

impl Phase for NoteIdentity {
    fn call(self: Arc<Self>, req: Request, next: Next) -> PhaseFuture {
        note_identity(req, next)
    }
}

fn note_identity(req: Request, next: Next) -> PhaseFuture {
    if let (Some(auth), Some(info)) = (
        req.extensions().get::<AuthContext>(),
        req.extensions().get::<RequestInfo>(),
    ) {
        info.record.note_auth(auth);
    }
    next.run(req)
}

/// Sets up logging for the binary: `RUST_LOG`-style filtering, text or JSON,
/// to stderr through [`LogSink`] (access-log lines batched), access lines
/// spelled by [`line::LineFormat`].
pub fn init_logging(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colours only on a terminal: redirected logs stay plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(LogSink);
    let stock = tracing_subscriber::fmt::format();
    let installed = if json {
        builder
            .json()
            .event_format(line::LineFormat::new(stock.json(), true))
            .try_init()
    } else {
        builder
            .event_format(line::LineFormat::new(stock, false))
            .try_init()
    };
    if installed.is_ok() {
        if !ansi {
            line::spell_directly(json);
        }
        start_log_flusher();
    }
}

/// How long an access-log line may wait in the batch before it is written.
pub const ACCESS_LOG_FLUSH: Duration = Duration::from_millis(100);
/// A batch this large is written at once.
const ACCESS_LOG_BATCH: usize = 32 * 1024;

/// Held by unit tests that read or flush [`LOG_BATCH`].
#[cfg(test)]
pub(crate) static BATCH_TEST: Mutex<()> = Mutex::new(());

/// Access-log lines formatted and not yet written to stderr.
static LOG_BATCH: Mutex<Vec<u8>> = Mutex::new(Vec::new());

/// The log's writer. Access-log lines (`lambdagate::access`, one per
/// request) are batched, as nginx's `access_log ... buffer= flush=` and
/// Envoy's flush interval do, and written when the batch reaches 32 KiB or
/// every [`ACCESS_LOG_FLUSH`], rather than a write system call per
/// request. Every other line
/// (warnings, errors, start-up) writes the batch and itself at once, so
/// lines stay in order and nothing that explains a failure waits.
/// [`flush_logs`] writes the rest on the way out.
#[derive(Clone, Copy)]
pub struct LogSink;

/// One event's writer from [`LogSink`].
pub struct LogLine {
    batched: bool,
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogSink {
    type Writer = LogLine;

    fn make_writer(&'a self) -> LogLine {
        LogLine { batched: false }
    }

    fn make_writer_for(&'a self, meta: &tracing::Metadata<'_>) -> LogLine {
        LogLine {
            batched: meta.target() == line::ACCESS_TARGET && *meta.level() >= tracing::Level::INFO,
        }
    }
}

impl std::io::Write for LogLine {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.write_all(buf)?;
        Ok(buf.len())
    }

    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        let mut batch = LOG_BATCH.lock().unwrap_or_else(|p| p.into_inner());
        batch.extend_from_slice(buf);
        if self.batched && batch.len() < ACCESS_LOG_BATCH {
            return Ok(());
        }
        write_batch(&mut batch)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Adds an access-log line to the batch (written as [`LogSink`] writes
/// one).
fn append_access_line(line: &[u8]) {
    let _ = std::io::Write::write_all(&mut LogLine { batched: true }, line);
}

/// Writes the batch to stderr and empties it (releasing a batch that grew
/// past its usual size). A failed write drops the batch, as a failed
/// `eprintln!` would drop its line.
fn write_batch(batch: &mut Vec<u8>) -> std::io::Result<()> {
    if batch.is_empty() {
        return Ok(());
    }
    let res = std::io::Write::write_all(&mut std::io::stderr().lock(), batch);
    batch.clear();
    if batch.capacity() > 4 * ACCESS_LOG_BATCH {
        batch.shrink_to(ACCESS_LOG_BATCH);
    }
    res
}

/// Writes the access-log lines still batched. The binary calls it before
/// it exits; a panic writes them too.
pub fn flush_logs() {
    let mut batch = LOG_BATCH.lock().unwrap_or_else(|p| p.into_inner());
    let _ = write_batch(&mut batch);
}

/// The thread that writes a waiting batch every [`ACCESS_LOG_FLUSH`], and
/// a panic hook that writes it before the panic's own message.
fn start_log_flusher() {
    let spawned = std::thread::Builder::new()
        .name("lambdagate-log".into())
        .spawn(|| {
            loop {
                std::thread::sleep(ACCESS_LOG_FLUSH);
                flush_logs();
            }
        });
    if spawned.is_err() {
        // No thread: every line is written at once instead.
        return;
    }
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        flush_logs();
        previous(info);
    }));
}

/// A random (v4) UUID from the thread-local RNG: no syscall per request,
/// unlike `Uuid::new_v4`, which asks the OS for every id. Encoded straight
/// into a buffer, as `Uuid`'s `Display` spells it, without a formatter.
pub fn new_request_id() -> String {
    let mut buf = uuid::Uuid::encode_buffer();
    // One `u128` is two draws from the generator; a `[u8; 16]` would be 16.
    let random: u128 = rand::random();
    let id = uuid::Builder::from_random_bytes(random.to_ne_bytes())
        .into_uuid()
        .hyphenated()
        .encode_lower(&mut buf);
    String::from(&*id)
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    #[test]
    fn access_lines_wait_in_the_batch_and_other_lines_take_it_along() {
        let _serial = super::BATCH_TEST.lock().unwrap_or_else(|p| p.into_inner());
        let batched = |b: &[u8]| {
            let batch = super::LOG_BATCH.lock().unwrap();
            batch.windows(b.len()).any(|w| w == b)
        };
        super::LogLine { batched: true }
            .write_all(b"(telemetry unit test: batched line)\n")
            .unwrap();
        assert!(
            batched(b"(telemetry unit test: batched line)\n"),
            "an access line waits"
        );
        // Any other line writes the batch (and itself) at once.
        super::LogLine { batched: false }
            .write_all(b"(telemetry unit test: immediate line)\n")
            .unwrap();
        assert!(!batched(b"(telemetry unit test: batched line)\n"));
        assert!(!batched(b"(telemetry unit test: immediate line)\n"));
        super::LogLine { batched: true }
            .write_all(b"(telemetry unit test: flushed line)\n")
            .unwrap();
        super::flush_logs();
        assert!(
            !batched(b"(telemetry unit test: flushed line)\n"),
            "flush_logs empties the batch"
        );
    }

    #[test]
    fn request_ids_are_v4_uuids() {
        for _ in 0..64 {
            let id = super::new_request_id();
            let uuid = uuid::Uuid::parse_str(&id).unwrap();
            assert_eq!(uuid.get_version_num(), 4);
            assert_eq!(uuid.get_variant(), uuid::Variant::RFC4122);
            assert_eq!(uuid.hyphenated().to_string(), id);
        }
    }
}
