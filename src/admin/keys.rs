//! Admin API: API keys. Create (the key is in the answer, once), list, get,
//! enable/disable, rotate, attach to a plan, delete, and read usage. Every
//! change forgets this node's cached copy at once; other nodes see it within
//! `[api_keys] cache_ttl`.

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post, put};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, OpenApi, ToSchema};

use super::{AdminError, AdminJson, AdminState, ErrorBody};
use crate::auth::api_key::{self, ApiKeys};
use crate::store::{KeyRecord, NewKey, StoreError, now_secs};
use crate::throttle::quota::{day_string, period_bounds};

#[derive(OpenApi)]
#[openapi(
    paths(create_key, list_keys, get_key, delete_key, enable_key, disable_key, rotate_key, set_plan, key_usage),
    components(schemas(CreateKey, KeyView, CreatedKey, SetPlan, KeyUsage, QuotaUsage, DayUsage)),
    tags((name = "keys", description = "API keys for third parties"))
)]
pub struct KeysApi;

pub fn router() -> Router<AdminState> {
    Router::new()
        .route("/keys", post(create_key).get(list_keys))
        .route("/keys/{id}", get(get_key).delete(delete_key))
        .route("/keys/{id}/enable", post(enable_key))
        .route("/keys/{id}/disable", post(disable_key))
        .route("/keys/{id}/rotate", post(rotate_key))
        .route("/keys/{id}/plan", put(set_plan))
        .route("/keys/{id}/usage", get(key_usage))
}

/// A new key.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateKey {
    /// Unique name, e.g. the partner's (letters, digits, `.`, `_`, `-`).
    pub name: String,
    /// The usage plan (from routes.toml or created at run time).
    pub plan: Option<String>,
    /// Lifetime from now, like `30d`, `12h`.
    pub expires_in: Option<String>,
}

/// A key as stored (never the key itself).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct KeyView {
    /// Public id (`requestContext.identity.apiKeyId`).
    pub id: String,
    pub name: String,
    pub plan: Option<String>,
    pub enabled: bool,
    /// Unix seconds.
    pub created_at: i64,
    pub updated_at: i64,
    pub expires_at: Option<i64>,
}

impl From<&KeyRecord> for KeyView {
    fn from(r: &KeyRecord) -> Self {
        Self {
            id: r.id.clone(),
            name: r.name.clone(),
            plan: r.plan.clone(),
            enabled: r.enabled,
            created_at: r.created_at,
            updated_at: r.updated_at,
            expires_at: r.expires_at,
        }
    }
}

/// A key just created or rotated: `key` is shown this once.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CreatedKey {
    #[serde(flatten)]
    pub record: KeyView,
    /// The key to hand to the client; only its hash is kept.
    pub key: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetPlan {
    /// The plan, or null to detach.
    pub plan: Option<String>,
}

/// A key's usage.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct KeyUsage {
    pub id: String,
    pub plan: Option<String>,
    pub quota: Option<QuotaUsage>,
    /// Requests per UTC day, oldest first.
    pub days: Vec<DayUsage>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct QuotaUsage {
    pub limit: u64,
    /// `day`, `week` or `month` (UTC).
    pub period: String,
    pub used: u64,
    pub remaining: u64,
    /// Unix seconds.
    pub period_start: i64,
    pub resets_at: i64,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DayUsage {
    /// `YYYY-MM-DD` (UTC).
    pub day: String,
    pub requests: u64,
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct UsageQuery {
    /// How many days back (default 30, at most 366).
    pub days: Option<u32>,
}

pub(super) fn keys(state: &AdminState) -> Result<&Arc<ApiKeys>, AdminError> {
    state
        .gateway
        .api_keys
        .as_ref()
        .ok_or_else(|| AdminError::internal("the store is not open"))
}

pub(super) fn store_error(e: StoreError) -> AdminError {
    match e {
        StoreError::Conflict(m) => AdminError::conflict(m),
        other => AdminError::internal(other),
    }
}

fn check_name(name: &str) -> Result<(), AdminError> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err(AdminError::bad_request(format!(
            "invalid key name `{name}`: use 1-128 letters, digits, `.`, `_` or `-`"
        )))
    }
}

/// 400 unless `plan` exists (in routes.toml or the store).
async fn check_plan(keys: &ApiKeys, plan: &str) -> Result<(), AdminError> {
    match keys.plan(plan).await {
        Ok(Some(_)) => Ok(()),
        Ok(None) => Err(AdminError::bad_request(format!(
            "unknown plan `{plan}`; define it as [plans.{plan}] in routes.toml or POST /plans"
        ))),
        Err(e) => Err(AdminError::internal(e)),
    }
}

fn found(r: Option<KeyRecord>, id: &str) -> Result<KeyRecord, AdminError> {
    r.ok_or_else(|| AdminError::not_found(format!("no API key `{id}`")))
}

/// Create a key; the answer holds the key itself, shown only this once.
#[utoipa::path(post, path = "/keys", tag = "keys", request_body = CreateKey,
    responses(
        (status = 201, body = CreatedKey),
        (status = 400, body = ErrorBody, description = "bad JSON, name, plan or expiry"),
        (status = 401, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "a key with this name exists"),
    ))]
pub async fn create_key(
    State(state): State<AdminState>,
    AdminJson(body): AdminJson<CreateKey>,
) -> Result<impl IntoResponse, AdminError> {
    let keys = keys(&state)?;
    check_name(&body.name)?;
    if let Some(p) = &body.plan {
        check_plan(keys, p).await?;
    }
    let now = now_secs();
    let expires_at = match &body.expires_in {
        Some(e) => {
            let d = api_key::parse_expiry(e).map_err(AdminError::bad_request)?;
            if d.is_zero() {
                return Err(AdminError::bad_request("`expires_in` must be more than 0"));
            }
            Some(now + d.as_secs() as i64)
        }
        None => None,
    };
    let generated = api_key::generate();
    let record = keys
        .store()
        .create_key(&NewKey {
            id: &generated.id,
            name: &body.name,
            key_hash: &generated.hash,
            plan: body.plan.as_deref(),
            expires_at,
            now,
        })
        .await
        .map_err(store_error)?;
    tracing::info!(target: "lambdagate::admin", key_id = %record.id, name = %record.name, "API key created");
    keys.invalidate_key(&record.id).await;
    Ok((
        StatusCode::CREATED,
        Json(CreatedKey {
            record: KeyView::from(&record),
            key: generated.key,
        }),
    ))
}

/// List keys (without secrets).
#[utoipa::path(get, path = "/keys", tag = "keys",
    responses((status = 200, body = Vec<KeyView>), (status = 401, body = ErrorBody)))]
pub async fn list_keys(State(state): State<AdminState>) -> Result<Json<Vec<KeyView>>, AdminError> {
    let list = keys(&state)?.store().keys().await.map_err(store_error)?;
    Ok(Json(list.iter().map(KeyView::from).collect()))
}

/// One key.
#[utoipa::path(get, path = "/keys/{id}", tag = "keys", params(("id" = String, Path, description = "key id")),
    responses((status = 200, body = KeyView), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get_key(
    State(state): State<AdminState>,
    Path(id): Path<String>,
) -> Result<Json<KeyView>, AdminError> {
    let r = keys(&state)?.store().key(&id).await.map_err(store_error)?;
    Ok(Json(KeyView::from(&found(r, &id)?)))
}

/// Delete a key and its counters.
#[utoipa::path(delete, path = "/keys/{id}", tag = "keys", params(("id" = String, Path, description = "key id")),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn delete_key(
    State(state): State<AdminState>,
    Path(id): Path<String>,
) -> Result<StatusCode, AdminError> {
    let keys = keys(&state)?;
    let deleted = keys.store().delete_key(&id).await.map_err(store_error)?;
    keys.invalidate_key(&id).await;
    if deleted {
        tracing::info!(target: "lambdagate::admin", key_id = %id, "API key deleted");
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(AdminError::not_found(format!("no API key `{id}`")))
    }
}

async fn set_enabled(
    state: &AdminState,
    id: &str,
    enabled: bool,
) -> Result<Json<KeyView>, AdminError> {
    let keys = keys(state)?;
    let r = keys
        .store()
        .set_key_enabled(id, enabled, now_secs())
        .await
        .map_err(store_error)?;
    keys.invalidate_key(id).await;
    let r = found(r, id)?;
    tracing::info!(target: "lambdagate::admin", key_id = %id, enabled, "API key state changed");
    Ok(Json(KeyView::from(&r)))
}

/// Enable a key.
#[utoipa::path(post, path = "/keys/{id}/enable", tag = "keys", params(("id" = String, Path, description = "key id")),
    responses((status = 200, body = KeyView), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn enable_key(
    State(state): State<AdminState>,
    Path(id): Path<String>,
) -> Result<Json<KeyView>, AdminError> {
    set_enabled(&state, &id, true).await
}

/// Disable (revoke) a key: refused on every node within the cache TTL.
#[utoipa::path(post, path = "/keys/{id}/disable", tag = "keys", params(("id" = String, Path, description = "key id")),
    responses((status = 200, body = KeyView), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn disable_key(
    State(state): State<AdminState>,
    Path(id): Path<String>,
) -> Result<Json<KeyView>, AdminError> {
    set_enabled(&state, &id, false).await
}

/// Give a key a new secret (same id); the old secret stops working.
#[utoipa::path(post, path = "/keys/{id}/rotate", tag = "keys", params(("id" = String, Path, description = "key id")),
    responses((status = 200, body = CreatedKey), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn rotate_key(
    State(state): State<AdminState>,
    Path(id): Path<String>,
) -> Result<Json<CreatedKey>, AdminError> {
    let keys = keys(&state)?;
    let generated = api_key::generate_for(&id);
    let r = keys
        .store()
        .set_key_hash(&id, &generated.hash, now_secs())
        .await
        .map_err(store_error)?;
    keys.invalidate_key(&id).await;
    let r = found(r, &id)?;
    tracing::info!(target: "lambdagate::admin", key_id = %id, "API key rotated");
    Ok(Json(CreatedKey {
        record: KeyView::from(&r),
        key: generated.key,
    }))
}

/// Attach a key to a plan (or detach it with `null`).
#[utoipa::path(put, path = "/keys/{id}/plan", tag = "keys", params(("id" = String, Path, description = "key id")),
    request_body = SetPlan,
    responses((status = 200, body = KeyView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn set_plan(
    State(state): State<AdminState>,
    Path(id): Path<String>,
    AdminJson(body): AdminJson<SetPlan>,
) -> Result<Json<KeyView>, AdminError> {
    let keys = keys(&state)?;
    if let Some(p) = &body.plan {
        check_plan(keys, p).await?;
    }
    let r = keys
        .store()
        .set_key_plan(&id, body.plan.as_deref(), now_secs())
        .await
        .map_err(store_error)?;
    keys.invalidate_key(&id).await;
    Ok(Json(KeyView::from(&found(r, &id)?)))
}

/// A key's requests per day and what is left of its quota.
#[utoipa::path(get, path = "/keys/{id}/usage", tag = "keys",
    params(("id" = String, Path, description = "key id"), UsageQuery),
    responses((status = 200, body = KeyUsage), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn key_usage(
    State(state): State<AdminState>,
    Path(id): Path<String>,
    Query(q): Query<UsageQuery>,
) -> Result<Json<KeyUsage>, AdminError> {
    let keys = keys(&state)?;
    let store = keys.store();
    let r = found(store.key(&id).await.map_err(store_error)?, &id)?;
    // This node's pending counts first, so the answer includes them.
    state.gateway.throttles.flush().await;
    let now = time::OffsetDateTime::now_utc();
    let back = i64::from(q.days.unwrap_or(30).clamp(1, 366)) - 1;
    let since = day_string(now - time::Duration::days(back));
    let days = store
        .daily_usage(&id, &since)
        .await
        .map_err(store_error)?
        .into_iter()
        .map(|(day, requests)| DayUsage { day, requests })
        .collect();
    let plan = match &r.plan {
        Some(p) => keys.plan(p).await.map_err(AdminError::internal)?,
        None => None,
    };
    let quota = match plan.as_ref().and_then(|p| p.quota) {
        Some(qc) => {
            let (start, end) = period_bounds(qc.period, now);
            // What this node holds unspent is counted in the store but not
            // used yet.
            let used = store
                .quota_used(&id, start)
                .await
                .map_err(store_error)?
                .saturating_sub(state.gateway.throttles.unspent_quota(&id, start));
            Some(QuotaUsage {
                limit: qc.limit,
                period: api_key::period_name(qc.period).to_string(),
                used,
                remaining: qc.limit.saturating_sub(used),
                period_start: start,
                resets_at: end,
            })
        }
        None => None,
    };
    Ok(Json(KeyUsage {
        id: r.id,
        plan: r.plan,
        quota,
        days,
    }))
}
