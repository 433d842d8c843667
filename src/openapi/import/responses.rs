//! Operation responses → the route's `response_schema` (the first success
//! with a JSON schema) and `method_responses` (every other documented
//! response). The gateway's own error responses are skipped: the gateway
//! documents them itself.

use serde_json::Value;

use super::out::{OutMethodResponse, OutRoute};
use super::routes::media_types;
use super::schemas::{is_empty_model, resolve};
use super::{Importer, OpContext};
use crate::openapi::generate::GATEWAY_RESPONSES;

/// One documented response, as read from the export.
struct Documented {
    status: u16,
    description: String,
    media_type: String,
    schema: Option<Value>,
}

impl Importer {
    pub(super) fn responses(
        &mut self,
        ctx: &OpContext<'_>,
        key: &str,
        op: &Value,
        route: &mut OutRoute,
    ) {
        let Some(responses) = op.get("responses").and_then(|r| r.as_object()) else {
            return;
        };
        // Swagger 2: one `produces` list for every response.
        let produces = media_types(op.get("produces").or_else(|| ctx.api.get("produces")));
        let produced = preferred(produces.iter());
        for t in produces.iter().filter(|t| Some(*t) != produced) {
            self.warn(format!(
                "route `{key}`: response media type `{t}` (produces) is not imported; only `{}` is documented",
                produced.map_or("application/json", |p| p.as_str())
            ));
        }
        let mut documented = Vec::new();
        for (code, r) in responses {
            if let Some(rf) = r.get("$ref").and_then(|r| r.as_str())
                && let Some(n) = rf.strip_prefix("#/components/responses/")
                && GATEWAY_RESPONSES.iter().any(|(g, _, _)| *g == n)
            {
                continue;
            }
            let Ok(status) = code.parse::<u16>() else {
                self.warn(format!(
                    "route `{key}`: response `{code}` is not one status; not imported"
                ));
                continue;
            };
            let r = resolve(ctx.api, r);
            if r.get("headers")
                .and_then(|h| h.as_object())
                .is_some_and(|h| !h.is_empty())
                && route.mock.is_none()
            {
                self.warn(format!(
                    "route `{key}`: response {code} headers are documentation only; not imported"
                ));
            }
            let (media_type, schema) = match r.get("content").and_then(|c| c.as_object()) {
                Some(content) => {
                    let chosen = preferred(content.keys()).cloned().unwrap_or_default();
                    for t in content.keys().filter(|t| **t != chosen) {
                        self.warn(format!(
                            "route `{key}`: response {code} type `{t}` is not imported; only `{chosen}` is documented"
                        ));
                    }
                    let schema = content.get(&chosen).and_then(|m| m.get("schema")).cloned();
                    (chosen, schema)
                }
                None => (
                    produced
                        .cloned()
                        .unwrap_or_else(|| "application/json".into()),
                    r.get("schema").cloned(),
                ),
            };
            documented.push(Documented {
                status,
                description: r
                    .get("description")
                    .and_then(|d| d.as_str())
                    .unwrap_or_default()
                    .to_string(),
                media_type: if media_type.is_empty() {
                    "application/json".into()
                } else {
                    media_type
                },
                schema: schema.filter(|s| !is_empty_model(s)),
            });
        }

        let mock_status = route.mock.as_ref().map(|m| m.status);
        let success_schema = documented
            .iter()
            .filter(|_| mock_status.is_none())
            .find(|d| is_success(d.status) && is_json(&d.media_type) && d.schema.is_some())
            .and_then(|d| d.schema.clone());
        if let Some(s) = &success_schema {
            route.response_schema = self.schema_file(ctx, s, key, "response");
        }
        let successes = documented.iter().filter(|d| is_success(d.status)).count();
        for d in &documented {
            if Some(d.status) == mock_status {
                continue; // the mock documents its own answer
            }
            let schema = match &d.schema {
                Some(s) if is_success(d.status) && Some(s) == success_schema.as_ref() => None,
                Some(s) if is_json(&d.media_type) => {
                    self.schema_file(ctx, s, key, &format!("response {}", d.status))
                }
                Some(s) if !is_plain_body(s) => {
                    self.warn(format!(
                        "route `{key}`: the schema of response {} (`{}`) is not imported",
                        d.status, d.media_type
                    ));
                    None
                }
                _ => None,
            };
            let entry = OutMethodResponse {
                status: d.status,
                schema,
                content_type: (d.media_type != "application/json").then(|| d.media_type.clone()),
                description: (!is_default_description(d.status, &d.description))
                    .then(|| d.description.clone()),
            };
            let bare = entry.schema.is_none()
                && entry.content_type.is_none()
                && entry.description.is_none();
            // A plain 200 is what the gateway documents anyway.
            if bare && d.status == 200 && successes == 1 {
                continue;
            }
            route.method_responses.push(entry);
        }
    }
}

fn is_success(status: u16) -> bool {
    (200..300).contains(&status)
}

fn is_json(media_type: &str) -> bool {
    media_type == "application/json" || media_type.ends_with("+json")
}

/// `application/json` when offered, else the first media type.
fn preferred<'a>(mut types: impl Iterator<Item = &'a String> + Clone) -> Option<&'a String> {
    types
        .clone()
        .find(|t| *t == "application/json")
        .or_else(|| types.next())
}

/// A text or bytes body schema, all the generator writes for non-JSON types.
fn is_plain_body(schema: &Value) -> bool {
    let Some(o) = schema.as_object() else {
        return false;
    };
    o.iter().all(|(k, v)| match k.as_str() {
        "type" => v == "string",
        "format" => v == "binary",
        "description" | "title" => true,
        _ => false,
    })
}

/// Descriptions the generator writes (and API Gateway's `"200 response"`).
fn is_default_description(status: u16, description: &str) -> bool {
    description.is_empty()
        || description == format!("{status} response")
        || (is_success(status)
            && (description == "The route's static (mock) response."
                || (description.ends_with("`.")
                    && (description.starts_with("The response of function `")
                        || description.starts_with("The response of upstream `")))))
}
