//! Responses: the success a route documents (its `response_schema` and
//! `response` offers) and its `method_responses`.

use utoipa::openapi::{ContentBuilder, ObjectBuilder, Ref, RefOr, ResponseBuilder, Schema, Type};

use super::{GenerateError, Generator};
use crate::config::{IntegrationConfig, RouteConfig};

impl Generator<'_> {
    /// The success response's media types: the route's `response` offers
    /// (templates render text), else JSON with the `response_schema`.
    pub(super) fn success_content(
        &mut self,
        route: &RouteConfig,
        mut r: ResponseBuilder,
    ) -> Result<ResponseBuilder, GenerateError> {
        let json_schema: Option<RefOr<Schema>> = match &route.response_schema {
            Some(file) => Some(Ref::from_schema_name(self.schema_component(file)?).into()),
            None => None,
        };
        match &route.response {
            Some(offers) if !offers.offers.is_empty() => {
                for offer in &offers.offers {
                    let schema: RefOr<Schema> = match (&offer.template, &json_schema) {
                        (None, Some(s)) => s.clone(),
                        (None, None) => ObjectBuilder::new().into(),
                        (Some(_), _) => ObjectBuilder::new().schema_type(Type::String).into(),
                    };
                    r = r.content(
                        offer.media_type.clone(),
                        ContentBuilder::new().schema(Some(schema)).build(),
                    );
                }
            }
            _ => {
                if let Some(s) = json_schema {
                    r = r.content(
                        "application/json",
                        ContentBuilder::new().schema(Some(s)).build(),
                    );
                }
            }
        }
        Ok(r)
    }

    /// One `method_responses` entry as an OpenAPI response.
    pub(super) fn method_response(
        &mut self,
        route: &RouteConfig,
        m: &crate::openapi::MethodResponse,
    ) -> Result<utoipa::openapi::Response, GenerateError> {
        let success = (200..300).contains(&m.status);
        let description = m
            .description
            .clone()
            .unwrap_or_else(|| default_description(route, m.status));
        let mut r = ResponseBuilder::new().description(description);
        if matches!(m.status, 204 | 205 | 304) {
            return Ok(r.build());
        }
        let json_schema = match &route.response_schema {
            Some(file) if success => Some(self.schema_component(file)?),
            _ => None,
        };
        match (&m.schema, &m.content_type) {
            (Some(file), content_type) => {
                let name = self.schema_component(file)?;
                r = r.content(
                    content_type.as_deref().unwrap_or("application/json"),
                    ContentBuilder::new()
                        .schema(Some(Ref::from_schema_name(name)))
                        .build(),
                );
            }
            (None, Some(content_type)) => {
                let schema: RefOr<Schema> = match &json_schema {
                    Some(name) if is_json(content_type) => Ref::from_schema_name(name).into(),
                    _ => media_schema(content_type),
                };
                r = r.content(
                    content_type.clone(),
                    ContentBuilder::new().schema(Some(schema)).build(),
                );
            }
            (None, None) if success => r = self.success_content(route, r)?,
            (None, None) => {}
        }
        Ok(r.build())
    }
}

/// The description of a documented response that gives none: the
/// integration's for a success, else API Gateway's `"404 response"` style.
pub fn default_description(route: &RouteConfig, status: u16) -> String {
    if !(200..300).contains(&status) {
        return format!("{status} response");
    }
    match &route.integration {
        IntegrationConfig::Function { function, .. } => {
            format!("The response of function `{function}`.")
        }
        IntegrationConfig::Http { backend } => format!("The response of upstream `{backend}`."),
        IntegrationConfig::Mock(_) => "The route's static (mock) response.".to_string(),
    }
}

/// `application/json`, `application/problem+json`, ...
fn is_json(media_type: &str) -> bool {
    media_type == "application/json" || media_type.ends_with("+json")
}

/// The schema of a body known only by its media type: any JSON value, text,
/// or bytes.
fn media_schema(media_type: &str) -> RefOr<Schema> {
    if is_json(media_type) {
        return ObjectBuilder::new().into();
    }
    let text = media_type.starts_with("text/")
        || media_type.ends_with("xml")
        || media_type == "application/x-www-form-urlencoded";
    let mut s = ObjectBuilder::new().schema_type(Type::String);
    if !text {
        s = s.format(Some(utoipa::openapi::SchemaFormat::KnownFormat(
            utoipa::openapi::KnownFormat::Binary,
        )));
    }
    s.into()
}
