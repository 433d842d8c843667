//! The routes.toml shapes the importer writes (serialized with `toml`).

use std::collections::BTreeMap;

use serde::Serialize;

#[derive(Serialize, Default)]
pub(super) struct OutConfig {
    pub(super) gateway: OutGateway,
    pub(super) openapi: OutOpenApi,
    pub(super) stages: BTreeMap<String, OutStage>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub(super) backends: BTreeMap<String, OutBackend>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub(super) functions: BTreeMap<String, OutFunction>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub(super) auth: BTreeMap<String, OutAuth>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) api_keys: Option<OutApiKeys>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) cors: Option<OutCors>,
    pub(super) routes: Vec<OutRoute>,
}

#[derive(Serialize, Default)]
pub(super) struct OutGateway {
    pub(super) flavor: String,
    pub(super) stage: String,
    pub(super) region: String,
    pub(super) account_id: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(super) binary_media_types: Vec<String>,
}

#[derive(Serialize, Default)]
pub(super) struct OutOpenApi {
    pub(super) title: String,
    pub(super) version: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) description: Option<String>,
}

#[derive(Serialize, Default)]
pub(super) struct OutStage {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) backend: Option<String>,
}

#[derive(Serialize)]
pub(super) struct OutBackend {
    pub(super) kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) region: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) url: Option<String>,
}

#[derive(Serialize, Default)]
pub(super) struct OutFunction {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) name: Option<String>,
}

#[derive(Serialize, Default)]
pub(super) struct OutAuth {
    pub(super) kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) issuer: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(super) audience: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) function: Option<String>,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub(super) authorizer_type: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(super) identity_sources: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) response: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) payload_version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) ttl: Option<String>,
}

#[derive(Serialize, Default)]
pub(super) struct OutCors {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(super) allow_origins: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(super) allow_methods: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(super) allow_headers: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(super) expose_headers: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) allow_credentials: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) max_age: Option<String>,
}

#[derive(Serialize, Default)]
pub(super) struct OutRoute {
    pub(super) method: String,
    pub(super) path: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) function: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) backend: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) payload_version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) timeout: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) auth: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(super) scopes: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) api_key: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) summary: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) description: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(super) tags: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) operation_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) response_schema: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(super) method_responses: Vec<OutMethodResponse>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) request: Option<OutRequest>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) mock: Option<OutMock>,
}

#[derive(Serialize, Default)]
pub(super) struct OutRequest {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) body_schema: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(super) required_query: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(super) required_headers: Vec<String>,
}

#[derive(Serialize, Default)]
pub(super) struct OutMock {
    pub(super) status: u16,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub(super) body: String,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub(super) headers: BTreeMap<String, String>,
}

#[derive(Serialize, Default, PartialEq)]
pub(super) struct OutMethodResponse {
    pub(super) status: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) schema: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) content_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) description: Option<String>,
}

#[derive(Serialize)]
pub(super) struct OutApiKeys {
    pub(super) source: String,
}
