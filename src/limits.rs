//! Limits phase: refuses requests whose line + headers or declared body
//! exceed the configured limits before anything buffers them, and caps the
//! body stream so a lying or absent `Content-Length` cannot get past. Also
//! refuses paths that would climb out of a route ([`check_path`]).

use std::sync::Arc;

use axum::body::Body;
use axum::extract::Request;
use axum::http::header;
use axum::response::IntoResponse;

use crate::config::Limits;
use crate::error::GatewayError;
use crate::pipeline::phase::{Next, Phase, PhaseFuture, answer};

/// Bytes of the request line (`METHOD target HTTP/1.1` and its CRLF).
pub fn request_line_bytes(req: &Request) -> usize {
    req.method().as_str().len() + req.uri().path_and_query().map_or(1, |p| p.as_str().len()) + 12
}

/// Bytes of the request line and headers, counted as they appear on the wire.
pub fn header_bytes(req: &Request) -> usize {
    request_line_bytes(req)
        + req
            .headers()
            .iter()
            .map(|(k, v)| k.as_str().len() + v.len() + 4)
            .sum::<usize>()
}

/// Path policy (docs/routes.md, "Paths"): a `.` or `..` segment — sent
/// plainly, percent-encoded (`%2e%2e`), hidden behind an encoded slash or
/// backslash (`a%2f..`), or followed by a `;` path parameter (`..;`,
/// `..;jsessionid=x`, `%2e%2e%3b`: servlet containers drop the parameter and
/// then climb) — and a NUL byte are refused with `400`, because an
/// `http` upstream that normalises them would let `/{proxy+}` escape its
/// base path. Other paths are matched as sent: `//` is an empty segment that
/// no `{param}` or literal matches (it may sit inside a `{proxy+}`), and an
/// encoded slash stays inside its segment (decoded only in
/// `pathParameters`, forwarded still encoded).
pub fn check_path(raw_path: &str) -> Result<(), GatewayError> {
    // A dot segment needs a `.` or an encoded byte; a raw NUL never parses.
    if !raw_path.bytes().any(|b| b == b'.' || b == b'%') {
        return Ok(());
    }
    let decoded = percent_encoding::percent_decode_str(raw_path).collect::<Vec<u8>>();
    let bad = decoded.contains(&0)
        || decoded
            .split(|b| *b == b'/' || *b == b'\\')
            .any(is_dot_segment);
    if bad {
        return Err(GatewayError::BadRequest("Invalid request path".into()));
    }
    Ok(())
}

/// `.` or `..`, with or without a `;` parameter after it.
fn is_dot_segment(seg: &[u8]) -> bool {
    let name = match seg.iter().position(|b| *b == b';') {
        Some(at) => &seg[..at],
        None => seg,
    };
    name == b"." || name == b".."
}

/// Limits phase: `[gateway.limits]`.
pub struct EnforceLimits {
    pub limits: Limits,
}

/// All of its work comes before the rest of the pipeline, so it hands back
/// the rest's future (or its refusal) instead of awaiting it.
impl Phase for EnforceLimits {
    fn call(self: Arc<Self>, req: Request, next: Next) -> PhaseFuture {
        enforce(self.limits, req, next)
    }
}

fn enforce(limits: Limits, req: Request, next: Next) -> PhaseFuture {
    // Before route match, so a dot segment never selects a route.
    if let Err(e) = check_path(req.uri().path()) {
        return answer(e.into_response());
    }
    // A request line that alone exceeds the head's budget is a target too
    // long (414), not too many header bytes (431).
    if request_line_bytes(&req) > limits.max_header_bytes {
        return answer(GatewayError::UriTooLong.into_response());
    }
    if header_bytes(&req) > limits.max_header_bytes {
        return answer(GatewayError::HeadersTooLarge.into_response());
    }
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limits.max_body as u64) {
        return answer(GatewayError::PayloadTooLarge.into_response());
    }
    // A body that has ended already (none at all) has nothing to cap.
    if http_body::Body::is_end_stream(req.body()) {
        return next.run(req);
    }
    let (parts, body) = req.into_parts();
    let body = Body::new(http_body_util::Limited::new(body, limits.max_body));
    next.run(Request::from_parts(parts, body))
}

/// Reads a (limited) body whole; an overflow is a 413.
pub async fn collect_body(body: Body, max: usize) -> Result<bytes::Bytes, GatewayError> {
    axum::body::to_bytes(body, max)
        .await
        .map_err(|e| body_error(&e))
}

/// What the client is answered when its request body could not be read: a
/// body over `max_body` (the cap this phase puts on the stream) is a 413; a
/// body that did not arrive in time (`body_timeout`, or `idle_timeout`
/// without a byte) a 408; anything else (broken chunked framing, a
/// connection that ended mid-body) is the client's fault too, a 400. Never
/// a backend failure, whichever integration was reading.
pub(crate) fn body_error(e: &(dyn std::error::Error + 'static)) -> GatewayError {
    let mut source = Some(e);
    while let Some(s) = source {
        if s.is::<http_body_util::LengthLimitError>() {
            return GatewayError::PayloadTooLarge;
        }
        // The listener's whole-body deadline (`body_timeout`) passed.
        if s.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::TimedOut)
        {
            return GatewayError::RequestTimeout;
        }
        source = s.source();
    }
    if e.to_string().contains("length limit") {
        return GatewayError::PayloadTooLarge;
    }
    GatewayError::BadRequest("could not read the request body".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{config, function};
    use axum::http::StatusCode;

    /// The phase with `[gateway.limits]` of 64 header bytes and a 16-byte
    /// body, with a terminal `Next`.
    #[tokio::test]
    async fn the_phase_refuses_oversized_requests_before_the_rest() {
        let config = config(
            r#"
[gateway.limits]
max_header_bytes = 64
max_body = 16
"#,
        );
        let phase = Arc::new(EnforceLimits {
            limits: config.gateway.limits,
        });
        let f = function(StatusCode::OK, "{}");
        let call = |req: Request| phase.clone().call(req, f.next.clone());
        let ok = Request::post("/a").body(Body::from("small")).unwrap();
        assert_eq!(call(ok).await.status(), 200);
        let long_target = Request::get(format!("/{}", "a".repeat(64)))
            .body(Body::empty())
            .unwrap();
        assert_eq!(call(long_target).await.status(), 414);
        let many_headers = Request::get("/a")
            .header("x-padding", "p".repeat(40))
            .body(Body::empty())
            .unwrap();
        assert_eq!(call(many_headers).await.status(), 431);
        let declared = Request::post("/a")
            .header("content-length", "17")
            .body(Body::from("x".repeat(17)))
            .unwrap();
        assert_eq!(call(declared).await.status(), 413);
        let dots = Request::get("/a/../b").body(Body::empty()).unwrap();
        assert_eq!(call(dots).await.status(), 400);
        assert_eq!(f.calls(), 1);
    }

    #[tokio::test]
    async fn an_undeclared_body_is_capped_for_whoever_reads_it() {
        let config = config("[gateway.limits]\nmax_body = 16\n");
        let phase = Arc::new(EnforceLimits {
            limits: config.gateway.limits,
        });
        // The rest reads the body, as validation or the integration would.
        let next = Next::terminal(|req: Request| -> PhaseFuture {
            Box::pin(async move {
                match collect_body(req.into_body(), usize::MAX).await {
                    Ok(_) => axum::http::StatusCode::OK.into_response(),
                    Err(e) => e.into_response(),
                }
            })
        });
        let stream = Body::from_stream(futures::stream::iter([Ok::<_, std::io::Error>(
            bytes::Bytes::from("x".repeat(17)),
        )]));
        let req = Request::post("/a").body(stream).unwrap();
        assert_eq!(phase.call(req, next).await.status(), 413);
    }

    #[test]
    fn dot_segments_in_any_spelling_are_refused() {
        for p in [
            "/a/../b",
            "/a/./b",
            "/..",
            "/a/%2e%2e/b",
            "/a/%2E%2e",
            "/a/.%2e/b",
            "/a/b%2f..%2fc",
            "/a/b%5c..%5cc",
            "/a/%00",
            "/a/..;/b",
            "/a/..;jsessionid=x/b",
            "/a/.;/b",
            "/a/%2e%2e%3b/b",
            "/a/%2E%2E%3Bx=1",
            "/a/.%2e;/b",
            "/a/%2e.;",
            "/a/b%2f..;%2fc",
        ] {
            assert!(check_path(p).is_err(), "{p} should be refused");
        }
        for p in [
            "/",
            "/a//b",
            "/a/..b",
            "/a/b..",
            "/a/%2e%2ea",
            "/a/b%2fc",
            "/.well-known/x",
            "/a/b;c",
            "/a/..x;y",
            "/a/;../b",
            "/a/...;/b",
        ] {
            assert!(check_path(p).is_ok(), "{p} should pass");
        }
    }
}
