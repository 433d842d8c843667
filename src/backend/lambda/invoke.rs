//! The Invoke API client: one `POST /2015-03-31/functions/{name}/invocations`
//! per invocation, signed with `aws-sigv4`, over a pooled hyper client
//! (rustls for `https` endpoints, HTTP/2 where the endpoint offers it).
//!
//! The request is the one `aws-sdk-lambda` sends for `Invoke` (same path
//! and query encoding, same headers but the SDK's own telemetry ones; the
//! tests check it against the SDK), built without the SDK's per-call
//! orchestration: the endpoint is resolved once, with the SDK's resolver,
//! and credentials are cached and refreshed before they expire.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwapOption;
use aws_credential_types::Credentials;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use bytes::Bytes;
use http::{Method, Request};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

/// Credentials are renewed this long before they expire.
const REFRESH_BEFORE_EXPIRY: Duration = Duration::from_secs(300);

/// The most response bytes read from the endpoint: Lambda's own limit on a
/// synchronous response is 6 MB; twice that bounds what another endpoint
/// can make the gateway hold.
const MAX_RESPONSE_BYTES: usize = 12 * 1024 * 1024;

/// One invocation, as the backend asks for it.
pub struct Call<'a> {
    pub function: &'a str,
    pub qualifier: Option<&'a str>,
    pub payload: Bytes,
    pub log_tail: bool,
    pub client_context: Option<&'a str>,
}

/// What the endpoint answered.
pub struct Answer {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: Bytes,
}

/// Why an invocation got no answer.
#[derive(Debug)]
pub enum CallError {
    /// No credentials could be had (the message says why).
    Credentials(String),
    /// The request never got an answer (connect, TLS, reset, protocol).
    Transport(String),
    /// The answer was larger than [`MAX_RESPONSE_BYTES`].
    TooLarge,
}

type HttpsClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>;

pub struct Invoker {
    /// `scheme://authority` of the endpoint, and the base path it may carry.
    endpoint: String,
    /// Signed as `host`; the HTTP client sends it (it must not be a header
    /// of the request too: on HTTP/2 it would be a second `Host`).
    host: String,
    region: String,
    credentials: CredentialCache,
    keys: SigningKeys,
    client: HttpsClient,
}

impl Invoker {
    /// `endpoint` is the resolved endpoint URL (no trailing `/` needed).
    pub fn new(
        endpoint: &str,
        region: &str,
        credentials: Option<SharedCredentialsProvider>,
    ) -> Result<Self, String> {
        let uri: http::Uri = endpoint
            .parse()
            .map_err(|_| format!("`{endpoint}` is not a URL"))?;
        let authority = uri
            .authority()
            .ok_or_else(|| format!("`{endpoint}` has no host"))?;
        // The `Host` the HTTP client sends on HTTP/1.1 (`:authority` on
        // HTTP/2): the port only when it is not the scheme's default.
        let default_port = if uri.scheme_str() == Some("https") {
            443
        } else {
            80
        };
        let host = match authority.port_u16() {
            Some(p) if p != default_port => authority.as_str().to_string(),
            _ => authority.host().to_string(),
        };
        // Without TCP_NODELAY a body written after its head waits for the
        // head's ACK, which the endpoint delays: stalls of tens to hundreds
        // of milliseconds under load.
        let mut tcp = HttpConnector::new();
        tcp.enforce_http(false);
        tcp.set_nodelay(true);
        tcp.set_keepalive(Some(Duration::from_secs(60)));
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let builder = match hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_native_roots(provider.clone())
        {
            Ok(b) => b,
            // A machine without CA certificates can still invoke a plain
            // `http://` endpoint (LocalStack, another lambdagate); an
            // `https://` one then fails its handshake, and says why. (Not
            // covered by a test: in debug builds aws-config's own HTTP
            // client asserts that native roots exist.)
            Err(e) => {
                tracing::warn!(error = %e, endpoint, "no trusted root certificates; https endpoints will be refused");
                let tls = rustls::ClientConfig::builder_with_provider(provider)
                    .with_safe_default_protocol_versions()
                    .map_err(|e| format!("cannot set up TLS: {e}"))?
                    .with_root_certificates(rustls::RootCertStore::empty())
                    .with_no_client_auth();
                hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(tls)
            }
        };
        let connector = builder
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .wrap_connector(tcp);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(256)
            .build(connector);
        Ok(Self {
            endpoint: endpoint.trim_end_matches('/').to_string(),
            host,
            region: region.to_string(),
            credentials: CredentialCache::new(credentials),
            keys: SigningKeys::default(),
            client,
        })
    }

    /// Sends one invocation and reads its whole answer.
    pub async fn invoke(&self, call: &Call<'_>) -> Result<Answer, CallError> {
        let credentials = self.credentials.get().await?;
        let request = self
            .request(call, &credentials, SystemTime::now())
            .map_err(CallError::Transport)?;
        let response = self
            .client
            .request(request)
            .await
            .map_err(|e| CallError::Transport(describe(&e)))?;
        let (parts, body) = response.into_parts();
        let body = Limited::new(body, MAX_RESPONSE_BYTES)
            .collect()
            .await
            .map_err(|e| {
                if e.is::<http_body_util::LengthLimitError>() {
                    CallError::TooLarge
                } else {
                    CallError::Transport(format!("reading the answer: {e}"))
                }
            })?
            .to_bytes();
        Ok(Answer {
            status: parts.status.as_u16(),
            headers: parts.headers,
            body,
        })
    }

    /// The signed request for `call` at `time`.
    pub fn request(
        &self,
        call: &Call<'_>,
        credentials: &Credentials,
        time: SystemTime,
    ) -> Result<Request<Full<Bytes>>, String> {
        let target = invoke_target(call.function, call.qualifier);
        let mut builder = Request::builder()
            .method(Method::POST)
            .uri(format!("{}{target}", self.endpoint))
            .header("x-amz-invocation-type", "RequestResponse");
        if call.log_tail {
            builder = builder.header("x-amz-log-type", "Tail");
        }
        if let Some(cc) = call.client_context {
            builder = builder.header("x-amz-client-context", cc);
        }
        let mut request = builder
            .header(http::header::CONTENT_TYPE, "application/octet-stream")
            .header(http::header::CONTENT_LENGTH, call.payload.len())
            .body(Full::new(call.payload.clone()))
            .map_err(|e| format!("cannot build the request: {e}"))?;
        self.sign(&mut request, &call.payload, credentials, time)?;
        Ok(request)
    }

    /// Adds `x-amz-date`, `x-amz-security-token` and `authorization` to
    /// `request`, signing every header it has and `host`, as aws-sigv4
    /// signs for the SDK (the tests hold the two to the same signature),
    /// with a signing key derived once per (day, credentials).
    fn sign<B>(
        &self,
        request: &mut Request<B>,
        payload: &[u8],
        credentials: &Credentials,
        time: SystemTime,
    ) -> Result<(), String> {
        use sha2::Digest;
        let at = time::OffsetDateTime::from(time);
        let day = format!("{:04}{:02}{:02}", at.year(), u8::from(at.month()), at.day());
        let amz_date = format!(
            "{day}T{:02}{:02}{:02}Z",
            at.hour(),
            at.minute(),
            at.second()
        );
        let value = |v: &str| {
            http::HeaderValue::from_str(v)
                .map_err(|_| format!("cannot sign: bad header value `{v}`"))
        };
        let headers = request.headers_mut();
        headers.insert("x-amz-date", value(&amz_date)?);
        if let Some(token) = credentials.session_token() {
            headers.insert("x-amz-security-token", value(token)?);
        }
        // Canonical headers: `host` and every header, by lowercase name
        // (each appears once here).
        let mut pairs: Vec<(&str, &str)> = vec![("host", self.host.as_str())];
        for (k, v) in request.headers() {
            let v = v
                .to_str()
                .map_err(|_| format!("cannot sign: `{k}` is not text"))?;
            pairs.push((k.as_str(), v));
        }
        pairs.sort_unstable_by(|a, b| a.0.cmp(b.0));
        let signed = pairs.iter().map(|(k, _)| *k).collect::<Vec<_>>().join(";");
        let uri = request.uri();
        // The path is already encoded (only unreserved characters, `/` and
        // `%XX` escapes), so encoding it again, as SigV4 does for every
        // service but S3, only escapes each `%`. The query's one value is
        // already in SigV4's own encoding.
        let canonical_uri = uri.path().replace('%', "%25");
        let mut canonical = format!("POST\n{canonical_uri}\n{}\n", uri.query().unwrap_or(""));
        for (k, v) in &pairs {
            canonical.push_str(k);
            canonical.push(':');
            push_canonical_value(&mut canonical, v);
            canonical.push('\n');
        }
        canonical.push('\n');
        canonical.push_str(&signed);
        canonical.push('\n');
        canonical.push_str(&hex::encode(sha2::Sha256::digest(payload)));
        let scope = format!("{day}/{}/lambda/aws4_request", self.region);
        let string_to_sign = format!(
            "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
            hex::encode(sha2::Sha256::digest(canonical.as_bytes()))
        );
        let key = self.keys.get(credentials, &day, time, &self.region);
        let signature = aws_sigv4::sign::v4::calculate_signature(&*key, string_to_sign.as_bytes());
        let authorization = format!(
            "AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders={signed}, Signature={signature}",
            credentials.access_key_id()
        );
        let authorization = value(&authorization)?;
        request
            .headers_mut()
            .insert(http::header::AUTHORIZATION, authorization);
        Ok(())
    }
}

/// Appends a header value as SigV4 canonicalises it (as aws-sigv4 does):
/// spaces, and only spaces, trimmed at both ends, and each run of spaces
/// inside made one.
fn push_canonical_value(out: &mut String, value: &str) {
    let mut after_space = false;
    for c in value.trim_matches(' ').chars() {
        if c == ' ' && after_space {
            continue;
        }
        after_space = c == ' ';
        out.push(c);
    }
}

/// The last signing key derived, with the day and credentials it is for:
/// deriving one costs four HMACs, and it changes once a day (or when the
/// credentials are renewed).
#[derive(Default)]
struct SigningKeys {
    last: std::sync::Mutex<Option<DerivedKey>>,
}

struct DerivedKey {
    day: String,
    access_key: String,
    secret: String,
    key: Arc<[u8]>,
}

impl SigningKeys {
    fn get(
        &self,
        credentials: &Credentials,
        day: &str,
        time: SystemTime,
        region: &str,
    ) -> Arc<[u8]> {
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(k) = last.as_ref().filter(|k| {
            k.day == day
                && k.access_key == credentials.access_key_id()
                && k.secret == credentials.secret_access_key()
        }) {
            return k.key.clone();
        }
        let derived = aws_sigv4::sign::v4::generate_signing_key(
            credentials.secret_access_key(),
            time,
            region,
            "lambda",
        );
        let key: Arc<[u8]> = derived.as_ref().into();
        *last = Some(DerivedKey {
            day: day.to_string(),
            access_key: credentials.access_key_id().to_string(),
            secret: credentials.secret_access_key().to_string(),
            key: key.clone(),
        });
        key
    }
}

/// The request target (path and query) the SDK sends for an invocation,
/// encoded with the SDK's own label and query encoders.
pub fn invoke_target(function: &str, qualifier: Option<&str>) -> String {
    use aws_smithy_http::label::{EncodingStrategy, fmt_string};
    let mut target = format!(
        "/2015-03-31/functions/{}/invocations",
        fmt_string(function, EncodingStrategy::Default)
    );
    if let Some(q) = qualifier {
        target.push_str("?Qualifier=");
        target.push_str(&aws_smithy_http::query::fmt_string(q));
    }
    target
}

/// The chain's credentials, fetched once and again shortly before they
/// expire; one fetch at a time, however many requests wait for it.
struct CredentialCache {
    provider: Option<SharedCredentialsProvider>,
    current: ArcSwapOption<Credentials>,
    refresh: tokio::sync::Mutex<()>,
}

impl CredentialCache {
    fn new(provider: Option<SharedCredentialsProvider>) -> Self {
        Self {
            provider,
            current: ArcSwapOption::empty(),
            refresh: tokio::sync::Mutex::new(()),
        }
    }

    async fn get(&self) -> Result<Arc<Credentials>, CallError> {
        if let Some(c) = self.fresh() {
            return Ok(c);
        }
        let _one = self.refresh.lock().await;
        if let Some(c) = self.fresh() {
            return Ok(c);
        }
        let Some(provider) = &self.provider else {
            return Err(CallError::Credentials(
                "no AWS credentials are configured (environment, profile, SSO, container or instance role)".into(),
            ));
        };
        match provider.provide_credentials().await {
            Ok(c) => {
                let c = Arc::new(c);
                self.current.store(Some(c.clone()));
                Ok(c)
            }
            // Credentials about to expire still sign until they do.
            Err(e) => match self.current.load_full() {
                Some(old) if !expired(&old, Duration::ZERO) => {
                    tracing::warn!(error = %aws_smithy_types::error::display::DisplayErrorContext(&e), "cannot refresh AWS credentials; using the current ones until they expire");
                    Ok(old)
                }
                _ => Err(CallError::Credentials(
                    aws_smithy_types::error::display::DisplayErrorContext(&e).to_string(),
                )),
            },
        }
    }

    fn fresh(&self) -> Option<Arc<Credentials>> {
        self.current
            .load_full()
            .filter(|c| !expired(c, REFRESH_BEFORE_EXPIRY))
    }
}

/// Whether `c` expires within `margin` (never, without an expiry).
fn expired(c: &Credentials, margin: Duration) -> bool {
    c.expiry()
        .is_some_and(|at| at <= SystemTime::now() + margin)
}

/// An error and its causes on one line.
fn describe(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

#[cfg(test)]
#[path = "invoke_tests.rs"]
mod tests;
