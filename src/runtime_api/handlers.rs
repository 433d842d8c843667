//! The Lambda Runtime API routes, all declared in [`router`]. A function
//! process long-polls `/next` for an invocation and posts its answer to
//! `/{id}/response` or `/{id}/error`, or reports a failed start to
//! `/init/error`. Refusals are 4xx with the Runtime API's JSON error shape;
//! nothing a process sends can panic the gateway.

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use super::EnvironmentState;
use super::queue::{Outcome, ReplyError};

/// The largest response a function may post (Lambda's synchronous limit).
pub const MAX_RESPONSE_BYTES: usize = 6 * 1024 * 1024;
/// Error documents are small; a larger one is cut at this size.
const MAX_ERROR_BYTES: usize = 256 * 1024;

/// Every Runtime API route of one execution environment.
pub fn router(env: Arc<EnvironmentState>) -> Router {
    Router::new()
        .route("/2018-06-01/runtime/invocation/next", get(next))
        .route(
            "/2018-06-01/runtime/invocation/{request_id}/response",
            post(response),
        )
        .route(
            "/2018-06-01/runtime/invocation/{request_id}/error",
            post(error),
        )
        .route("/2018-06-01/runtime/init/error", post(init_error))
        .fallback(unknown_route)
        .with_state(env)
}

/// The Runtime API's error body.
fn refuse(status: StatusCode, error_type: &str, message: &str) -> Response {
    let body = serde_json::json!({ "errorMessage": message, "errorType": error_type });
    (
        status,
        [("content-type", "application/json")],
        body.to_string(),
    )
        .into_response()
}

fn accepted() -> Response {
    (
        StatusCode::ACCEPTED,
        [("content-type", "application/json")],
        r#"{"status":"OK"}"#,
    )
        .into_response()
}

async fn unknown_route() -> Response {
    refuse(
        StatusCode::NOT_FOUND,
        "InvalidRoute",
        "not a Lambda Runtime API route",
    )
}

/// `GET /runtime/invocation/next`: waits for the next invocation.
async fn next(State(env): State<Arc<EnvironmentState>>) -> Response {
    let _ = env.first_next.set(Instant::now());
    let Some(inv) = env.queue.next().await else {
        return refuse(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Runtime.Shutdown",
            "the environment is shutting down",
        );
    };
    env.log.begin(&inv.request_id);
    let mut headers = HeaderMap::new();
    let mut set = |name: &'static str, value: &str| {
        if let Ok(v) = HeaderValue::from_str(value) {
            headers.insert(name, v);
        }
    };
    set("content-type", "application/json");
    set("lambda-runtime-aws-request-id", &inv.request_id);
    set("lambda-runtime-deadline-ms", &inv.deadline_ms.to_string());
    set("lambda-runtime-invoked-function-arn", &inv.function_arn);
    set("lambda-runtime-trace-id", &inv.trace_id);
    if let Some(cc) = &inv.client_context {
        set("lambda-runtime-client-context", cc);
    }
    (StatusCode::OK, headers, Body::from(inv.payload)).into_response()
}

/// Reads at most `limit` bytes; `None` when the body is larger (or broken).
async fn read_body(req: Request, limit: usize) -> Option<Bytes> {
    axum::body::to_bytes(req.into_body(), limit).await.ok()
}

fn reply(env: &EnvironmentState, request_id: &str, outcome: Outcome) -> Response {
    match env.queue.complete(request_id, outcome) {
        Ok(()) => accepted(),
        Err(ReplyError::UnknownRequestId) => refuse(
            StatusCode::BAD_REQUEST,
            "InvalidRequestID",
            &format!("no invocation `{request_id}` is waiting for a reply"),
        ),
    }
}

/// `POST /runtime/invocation/{id}/response`.
async fn response(
    State(env): State<Arc<EnvironmentState>>,
    Path(request_id): Path<String>,
    req: Request,
) -> Response {
    match read_body(req, MAX_RESPONSE_BYTES).await {
        Some(body) => reply(&env, &request_id, Outcome::Response(body)),
        None => {
            let _ = env.queue.complete(&request_id, Outcome::ResponseTooLarge);
            refuse(
                StatusCode::PAYLOAD_TOO_LARGE,
                "RequestEntityTooLarge",
                &format!("the response is over the {MAX_RESPONSE_BYTES} byte limit"),
            )
        }
    }
}

/// The error document a function posted, or one made from its error-type
/// header when the body is empty.
async fn error_document(req: Request) -> Bytes {
    let error_type = req
        .headers()
        .get("lambda-runtime-function-error-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("Unhandled")
        .to_string();
    let body = read_body(req, MAX_ERROR_BYTES).await.unwrap_or_default();
    if body.iter().all(u8::is_ascii_whitespace) {
        let doc = serde_json::json!({ "errorMessage": "the function reported an error", "errorType": error_type });
        return Bytes::from(doc.to_string());
    }
    body
}

/// `POST /runtime/invocation/{id}/error`.
async fn error(
    State(env): State<Arc<EnvironmentState>>,
    Path(request_id): Path<String>,
    req: Request,
) -> Response {
    let doc = error_document(req).await;
    reply(&env, &request_id, Outcome::FunctionError(doc))
}

/// `POST /runtime/init/error`: the process could not initialise.
async fn init_error(State(env): State<Arc<EnvironmentState>>, req: Request) -> Response {
    let doc = error_document(req).await;
    tracing::warn!(
        function = %env.function,
        error = %String::from_utf8_lossy(&doc[..doc.len().min(512)]),
        "function init failed"
    );
    env.queue.fail_init(doc);
    accepted()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime_api::queue::Invocation;
    use tower::ServiceExt;

    fn state() -> Arc<EnvironmentState> {
        Arc::new(EnvironmentState::new("f"))
    }

    async fn call(app: &Router, method: &str, uri: &str, body: &'static str) -> (u16, String) {
        let req = axum::http::Request::builder()
            .method(method)
            .uri(uri)
            .body(Body::from(body))
            .unwrap();
        let res = app.clone().oneshot(req).await.unwrap();
        let status = res.status().as_u16();
        let body = axum::body::to_bytes(res.into_body(), usize::MAX)
            .await
            .unwrap();
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    #[tokio::test]
    async fn unknown_request_id_is_a_400_and_unknown_route_a_404() {
        let app = router(state());
        let (s, b) = call(
            &app,
            "POST",
            "/2018-06-01/runtime/invocation/nope/response",
            "{}",
        )
        .await;
        assert_eq!(s, 400);
        assert!(b.contains("InvalidRequestID"), "{b}");
        let (s, _) = call(&app, "GET", "/2018-06-01/runtime/other", "").await;
        assert_eq!(s, 404);
    }

    #[tokio::test]
    async fn next_carries_the_runtime_headers_and_response_completes() {
        let env = state();
        let app = router(env.clone());
        let rx = env
            .queue
            .submit(Invocation {
                request_id: "r1".into(),
                payload: Bytes::from_static(b"{\"a\":1}"),
                deadline_ms: 42,
                function_arn: "arn:aws:lambda:us-east-1:123456789012:function:f".into(),
                trace_id: "Root=1-x".into(),
                client_context: None,
            })
            .unwrap();
        let req = axum::http::Request::builder()
            .uri("/2018-06-01/runtime/invocation/next")
            .body(Body::empty())
            .unwrap();
        let res = app.clone().oneshot(req).await.unwrap();
        assert_eq!(res.headers()["lambda-runtime-aws-request-id"], "r1");
        assert_eq!(res.headers()["lambda-runtime-deadline-ms"], "42");
        assert_eq!(res.headers()["lambda-runtime-trace-id"], "Root=1-x");
        let (s, _) = call(&app, "POST", "/2018-06-01/runtime/invocation/r1/error", "").await;
        assert_eq!(s, 202);
        match rx.await.unwrap() {
            Outcome::FunctionError(doc) => {
                assert!(String::from_utf8_lossy(&doc).contains("Unhandled"))
            }
            other => panic!("{other:?}"),
        }
    }
}
