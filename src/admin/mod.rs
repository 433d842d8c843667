//! Admin API: its own listener (default `127.0.0.1:9081`), never the public
//! one. Every route behind [`require_token`] needs `Authorization: Bearer
//! <token>` with the admin token from `token_env`/`token_file` (compared in
//! constant time, never logged). JSON in, JSON out; errors are
//! `{"message": ...}` with 400/401/404/409. Its OpenAPI document is derived
//! with `utoipa` and served at `/openapi.json`.
//!
//! Layout: [`router`] merges one sub-router per concern. Routes that must stay
//! reachable without the token (health, metrics) are merged in [`router`]
//! outside the token layer.

pub mod keys;
pub mod ops;
pub mod plans;

use std::future::Future;
use std::sync::{Arc, Mutex};

use axum::extract::{FromRequest, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{Next, from_fn_with_state};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tokio::net::TcpListener;
use tower::ServiceExt;
use utoipa::OpenApi;

use crate::app::{BuildError, GatewayState};
use crate::config::AdminConfig;

/// The environment variable read for the admin token when `[admin]` names
/// neither `token_env` nor `token_file`.
pub const DEFAULT_TOKEN_ENV: &str = "LAMBDAGATE_ADMIN_TOKEN";

/// The admin token. Only its SHA-256 is kept, so neither `Debug` nor a
/// careless log line can reveal it.
pub struct AdminToken {
    digest: [u8; 32],
}

impl std::fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AdminToken(<redacted>)")
    }
}

impl AdminToken {
    pub fn new(token: &str) -> Self {
        Self {
            digest: Sha256::digest(token.as_bytes()).into(),
        }
    }

    /// Reads the token named by `[admin]`: `token_file` first, then
    /// `token_env` (default `LAMBDAGATE_ADMIN_TOKEN`). A missing or empty
    /// token is a start-up error: the admin API never runs unprotected.
    pub fn from_config(admin: &AdminConfig) -> Result<Self, BuildError> {
        let token = match (&admin.token_file, &admin.token_env) {
            (Some(path), _) => std::fs::read_to_string(path).map_err(|e| {
                BuildError(format!(
                    "[admin] token_file `{}` cannot be read: {e}",
                    path.display()
                ))
            })?,
            (None, env) => {
                let name = env.as_deref().unwrap_or(DEFAULT_TOKEN_ENV);
                std::env::var(name).map_err(|_| {
                    BuildError(format!(
                        "[admin] needs a token: set the environment variable `{name}` or `token_file`"
                    ))
                })?
            }
        };
        let token = token.trim();
        if token.is_empty() {
            return Err(BuildError("[admin] token is empty".into()));
        }
        Ok(Self::new(token))
    }

    /// Constant-time comparison (of digests, so the length leaks nothing).
    pub fn matches(&self, presented: &str) -> bool {
        let d: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        d.ct_eq(&self.digest).into()
    }
}

/// What every admin handler can reach.
#[derive(Clone)]
pub struct AdminState {
    pub gateway: Arc<GatewayState>,
    pub token: Arc<AdminToken>,
}

/// An admin API error: `{"message": ...}` with its status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminError {
    pub status: StatusCode,
    pub message: String,
}

impl AdminError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, message)
    }
    pub fn internal(message: impl std::fmt::Display) -> Self {
        tracing::error!(error = %message, "admin API failure");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "Internal server error")
    }
}

impl IntoResponse for AdminError {
    fn into_response(self) -> Response {
        (
            self.status,
            Json(serde_json::json!({ "message": self.message })),
        )
            .into_response()
    }
}

/// `{"message": ...}`, the body of every admin error.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub message: String,
}

/// A JSON body whose rejections are admin errors (`400 {"message": ...}`)
/// rather than axum's plain-text ones.
pub struct AdminJson<T>(pub T);

impl<T, S> FromRequest<S> for AdminJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = AdminError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(v)) => Ok(Self(v)),
            Err(rejection) => Err(AdminError::bad_request(format!(
                "invalid JSON body: {}",
                rejection.body_text()
            ))),
        }
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "lambdagate admin API",
        description = "API keys, usage plans and usage. Every operation needs `Authorization: Bearer <admin token>`."
    ),
    components(schemas(ErrorBody)),
    modifiers(&BearerAuth)
)]
pub struct AdminApi;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "admin_token",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        openapi.security = Some(vec![utoipa::openapi::security::SecurityRequirement::new(
            "admin_token",
            Vec::<String>::new(),
        )]);
    }
}

/// The admin API's OpenAPI document.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let mut doc = AdminApi::openapi();
    doc.merge(keys::KeysApi::openapi());
    doc.merge(plans::PlansApi::openapi());
    doc
}

async fn openapi_json() -> Response {
    Json(openapi()).into_response()
}

/// The whole admin API. Sub-routers are merged here; add public routes
/// (health, metrics) with `.merge(...)` after the token layer.
pub fn router(state: AdminState) -> Router {
    let protected = Router::new()
        .merge(keys::router())
        .merge(plans::router())
        .route("/openapi.json", get(openapi_json))
        .route_layer(from_fn_with_state(state.clone(), require_token));
    Router::new()
        .merge(protected)
        // /metrics, /healthz, /readyz: public on the admin listener (ops.rs).
        .merge(ops::router())
        .fallback(|| async { AdminError::not_found("Not Found") })
        .with_state(state)
}

/// `401 {"message":"Unauthorized"}` unless the request carries the admin
/// token as `Authorization: Bearer <token>`.
pub async fn require_token(State(state): State<AdminState>, req: Request, next: Next) -> Response {
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim);
    match presented {
        Some(t) if state.token.matches(t) => next.run(req).await,
        _ => AdminError::new(StatusCode::UNAUTHORIZED, "Unauthorized").into_response(),
    }
}

/// Serves the admin router on `listener` until `shutdown` completes, under
/// the same listener policy as the API ([`crate::server::serve_router`]);
/// a request body is capped at the gateway's `max_body`.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    policy: crate::server::ListenerPolicy,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    crate::server::serve_router(listener, router, policy, shutdown).await
}

/// The admin router of whichever gateway is live, rebuilt once per hot
/// reload (when the live gateway's state changes) so a reload's admin
/// settings — token, `[plans.*]`, store, cluster — take effect. The
/// listener itself cannot move: its address is bound once at start.
pub struct LiveAdmin {
    current: crate::invoke_api::CurrentGateway,
    /// The router built for the gateway state it holds (held, so the
    /// pointer comparison below can never see a reused address).
    built: Mutex<Option<(Arc<GatewayState>, Option<Router>)>>,
}

impl LiveAdmin {
    pub fn new(current: crate::invoke_api::CurrentGateway) -> Self {
        Self {
            current,
            built: Mutex::new(None),
        }
    }

    /// The live gateway's admin router; `None` when its config has no
    /// `[admin]` (removed by a reload).
    pub fn router(&self) -> Option<Router> {
        let gateway = (self.current)();
        let mut built = self.built.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((state, router)) = built.as_ref()
            && Arc::ptr_eq(state, gateway.state())
        {
            return router.clone();
        }
        let router = gateway.admin_router();
        *built = Some((gateway.state().clone(), router.clone()));
        router
    }

    /// A router that hands every request to the live admin router.
    pub fn into_router(self) -> Router {
        let live = Arc::new(self);
        Router::new().fallback_service(tower::service_fn(move |req: Request| {
            let router = live.router();
            async move {
                Ok::<_, std::convert::Infallible>(match router {
                    Some(r) => r.oneshot(req).await.unwrap_or_else(|e| match e {}),
                    None => AdminError::not_found(
                        "the admin API is not configured: [admin] was removed by a reload \
                         (restart to close this listener)",
                    )
                    .into_response(),
                })
            }
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_compares_by_value_and_hides_itself() {
        let t = AdminToken::new("s3cret");
        assert!(t.matches("s3cret"));
        assert!(!t.matches("s3cret "));
        assert!(!t.matches(""));
        assert!(!format!("{t:?}").contains("s3cret"));
    }
}
