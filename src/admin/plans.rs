//! Admin API: usage plans. Plans from `[plans.X]` in routes.toml are listed
//! read-only; plans created here live in the store and can be changed or
//! deleted (not while keys use them).

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use serde::{Deserialize, Serialize};
use utoipa::{OpenApi, ToSchema};

use super::keys::{keys, store_error};
use super::{AdminError, AdminJson, AdminState, ErrorBody};
use crate::auth::api_key::{parse_period, period_name, plan_from_record};
use crate::config::PlanConfig;
use crate::store::{PlanRecord, now_secs};

#[derive(OpenApi)]
#[openapi(
    paths(list_plans, create_plan, get_plan, update_plan, delete_plan),
    components(schemas(PlanView, PlanInput, PlanLimits, ThrottleView, QuotaView)),
    tags((name = "plans", description = "Usage plans: throttles and quotas for keys"))
)]
pub struct PlansApi;

pub fn router() -> Router<AdminState> {
    Router::new()
        .route("/plans", get(list_plans).post(create_plan))
        .route(
            "/plans/{name}",
            get(get_plan).put(update_plan).delete(delete_plan),
        )
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ThrottleView {
    /// Requests per second, more than 0 and at most 1e9.
    pub rate: f64,
    /// Bucket size, 1 to 4294967295 (default: the rate, rounded up).
    pub burst: Option<u32>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QuotaView {
    /// Requests per period, at least 1.
    pub limit: u64,
    /// `day`, `week` or `month` (UTC).
    pub period: String,
}

/// A usage plan.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PlanView {
    pub name: String,
    /// `config` (routes.toml, read-only) or `store` (created here).
    pub source: String,
    pub throttle: Option<ThrottleView>,
    pub quota: Option<QuotaView>,
    pub description: Option<String>,
}

/// A new plan.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PlanInput {
    pub name: String,
    pub throttle: Option<ThrottleView>,
    pub quota: Option<QuotaView>,
    pub description: Option<String>,
}

/// A plan's new limits.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PlanLimits {
    pub throttle: Option<ThrottleView>,
    pub quota: Option<QuotaView>,
    pub description: Option<String>,
}

fn view(p: &PlanConfig, source: &str) -> PlanView {
    PlanView {
        name: p.name.clone(),
        source: source.to_string(),
        throttle: p.throttle.map(|t| ThrottleView {
            rate: t.rate,
            burst: Some(t.burst),
        }),
        quota: p.quota.map(|q| QuotaView {
            limit: q.limit,
            period: period_name(q.period).to_string(),
        }),
        description: p.description.clone(),
    }
}

/// Checks limits as strictly as routes.toml does and builds the row.
fn record(
    name: &str,
    throttle: Option<ThrottleView>,
    quota: Option<QuotaView>,
    description: Option<String>,
) -> Result<PlanRecord, AdminError> {
    let ok_name = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-'));
    if !ok_name {
        return Err(AdminError::bad_request(format!(
            "invalid plan name `{name}`: use 1-64 letters, digits, `_` or `-`"
        )));
    }
    if let Some(t) = &throttle {
        if !(t.rate.is_finite() && t.rate > 0.0 && t.rate <= 1e9) {
            return Err(AdminError::bad_request(format!(
                "throttle `rate` must be more than 0 and at most 1e9 requests per second, not {}",
                t.rate
            )));
        }
        if t.burst == Some(0) {
            return Err(AdminError::bad_request(
                "throttle `burst` must be at least 1",
            ));
        }
    }
    if let Some(q) = &quota {
        if q.limit == 0 || q.limit > i64::MAX as u64 {
            return Err(AdminError::bad_request(
                "quota `limit` must be a positive number of requests",
            ));
        }
        if parse_period(&q.period).is_none() {
            return Err(AdminError::bad_request(format!(
                "quota `period` `{}` is not one of \"day\", \"week\" or \"month\"",
                q.period
            )));
        }
    }
    Ok(PlanRecord {
        name: name.to_string(),
        rate: throttle.map(|t| t.rate),
        burst: throttle.and_then(|t| t.burst).map(i64::from),
        quota_limit: quota.as_ref().map(|q| q.limit as i64),
        quota_period: quota.map(|q| q.period),
        description,
        created_at: now_secs(),
    })
}

fn config_plan<'a>(state: &'a AdminState, name: &str) -> Option<&'a PlanConfig> {
    state.gateway.config.plans.get(name)
}

/// Every plan: routes.toml's, then the store's.
#[utoipa::path(get, path = "/plans", tag = "plans",
    responses((status = 200, body = Vec<PlanView>), (status = 401, body = ErrorBody)))]
pub async fn list_plans(
    State(state): State<AdminState>,
) -> Result<Json<Vec<PlanView>>, AdminError> {
    let mut out: Vec<PlanView> = state
        .gateway
        .config
        .plans
        .values()
        .map(|p| view(p, "config"))
        .collect();
    for r in keys(&state)?.store().plans().await.map_err(store_error)? {
        out.push(view(&plan_from_record(&r), "store"));
    }
    Ok(Json(out))
}

/// Create a plan.
#[utoipa::path(post, path = "/plans", tag = "plans", request_body = PlanInput,
    responses(
        (status = 201, body = PlanView),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "a plan with this name exists"),
    ))]
pub async fn create_plan(
    State(state): State<AdminState>,
    AdminJson(body): AdminJson<PlanInput>,
) -> Result<impl IntoResponse, AdminError> {
    let rec = record(&body.name, body.throttle, body.quota, body.description)?;
    if config_plan(&state, &rec.name).is_some() {
        return Err(AdminError::conflict(format!(
            "plan `{}` is defined in routes.toml",
            rec.name
        )));
    }
    let keys = keys(&state)?;
    let saved = keys.store().create_plan(&rec).await.map_err(store_error)?;
    keys.invalidate_plan(&saved.name).await;
    Ok((
        StatusCode::CREATED,
        Json(view(&plan_from_record(&saved), "store")),
    ))
}

/// One plan.
#[utoipa::path(get, path = "/plans/{name}", tag = "plans", params(("name" = String, Path, description = "plan name")),
    responses((status = 200, body = PlanView), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get_plan(
    State(state): State<AdminState>,
    Path(name): Path<String>,
) -> Result<Json<PlanView>, AdminError> {
    if let Some(p) = config_plan(&state, &name) {
        return Ok(Json(view(p, "config")));
    }
    match keys(&state)?
        .store()
        .plan(&name)
        .await
        .map_err(store_error)?
    {
        Some(r) => Ok(Json(view(&plan_from_record(&r), "store"))),
        None => Err(AdminError::not_found(format!("no plan `{name}`"))),
    }
}

/// Replace a store plan's limits (routes.toml plans are read-only: 409).
#[utoipa::path(put, path = "/plans/{name}", tag = "plans", params(("name" = String, Path, description = "plan name")),
    request_body = PlanLimits,
    responses((status = 200, body = PlanView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn update_plan(
    State(state): State<AdminState>,
    Path(name): Path<String>,
    AdminJson(body): AdminJson<PlanLimits>,
) -> Result<Json<PlanView>, AdminError> {
    if config_plan(&state, &name).is_some() {
        return Err(AdminError::conflict(format!(
            "plan `{name}` is defined in routes.toml; change it there"
        )));
    }
    let rec = record(&name, body.throttle, body.quota, body.description)?;
    let keys = keys(&state)?;
    let saved = keys.store().update_plan(&rec).await.map_err(store_error)?;
    keys.invalidate_plan(&name).await;
    match saved {
        Some(r) => Ok(Json(view(&plan_from_record(&r), "store"))),
        None => Err(AdminError::not_found(format!("no plan `{name}`"))),
    }
}

/// Delete a store plan; 409 while keys use it or when it is in routes.toml.
#[utoipa::path(delete, path = "/plans/{name}", tag = "plans", params(("name" = String, Path, description = "plan name")),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn delete_plan(
    State(state): State<AdminState>,
    Path(name): Path<String>,
) -> Result<StatusCode, AdminError> {
    if config_plan(&state, &name).is_some() {
        return Err(AdminError::conflict(format!(
            "plan `{name}` is defined in routes.toml; remove it there"
        )));
    }
    let keys = keys(&state)?;
    let users = keys
        .store()
        .keys_on_plan(&name)
        .await
        .map_err(store_error)?;
    if users > 0 {
        return Err(AdminError::conflict(format!(
            "plan `{name}` is used by {users} key(s); move them first"
        )));
    }
    let deleted = keys.store().delete_plan(&name).await.map_err(store_error)?;
    keys.invalidate_plan(&name).await;
    if deleted {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(AdminError::not_found(format!("no plan `{name}`")))
    }
}
