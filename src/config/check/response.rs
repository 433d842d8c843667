//! How a route's answer is rendered: the proxy route's `response`
//! (templates per media type) and the non-proxy mapping (`request_template`,
//! `responses`, `content_handling`).

use toml::Spanned;

use crate::config::error::Diagnostics;
use crate::config::raw::{RawIntegrationResponse, RawRoute, RawRouteResponse, Str};
use crate::config::shaping::{
    ContentHandling, IntegrationResponse, Mapping, ResponseOffer, RouteResponse,
};
use crate::config::values::{header_name, media_type};
use crate::transform::template::TemplateSetBuilder;

/// The media type a template file renders by its extension.
fn media_type_for(path: &str) -> &'static str {
    let ext = path
        .rsplit('.')
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase();
    match ext.as_str() {
        "html" | "htm" => "text/html",
        "xml" => "application/xml",
        "csv" => "text/csv",
        "json" => "application/json",
        "md" => "text/markdown",
        _ => "text/plain",
    }
}

pub(super) fn check_route_response(
    resp: &Spanned<RawRouteResponse>,
    templates: &mut TemplateSetBuilder,
    d: &mut Diagnostics<'_>,
) -> Option<RouteResponse> {
    let raw = resp.get_ref();
    let mut offers: Vec<ResponseOffer> = Vec::new();
    if let Some(t) = &raw.template {
        let media_type = match &raw.content_type {
            Some(ct) => media_type(ct, d),
            None => media_type_for(t.get_ref()).to_string(),
        };
        let name = templates.add_file(t, d);
        offers.push(ResponseOffer {
            media_type,
            template: name,
        });
    } else if let Some(ct) = &raw.content_type {
        d.at(
            ct.span(),
            "`content_type` describes `template`; set `template` too",
        );
    }
    for (media, file) in raw.templates.iter().flatten() {
        let media_span = Spanned::new(file.span(), media.clone());
        let media_type = media_type(&media_span, d);
        let name = templates.add_file(file, d);
        offers.push(ResponseOffer {
            media_type,
            template: name,
        });
    }
    if raw.json.unwrap_or(false) {
        offers.push(ResponseOffer {
            media_type: "application/json".to_string(),
            template: None,
        });
    }
    if offers.iter().all(|o| o.template.is_none()) {
        d.at(
            resp.span(),
            "`response` needs a `template` (or `templates`) to render the function's JSON with",
        );
        return None;
    }
    for (i, o) in offers.iter().enumerate() {
        if offers[..i].iter().any(|p| p.media_type == o.media_type) {
            d.at(
                resp.span(),
                format!("`response` offers `{}` twice", o.media_type),
            );
        }
    }
    let default =
        chosen_default(raw.default.as_ref(), &offers, "the offered types", d).unwrap_or(0);
    Some(RouteResponse { offers, default })
}

/// The index of the configured `default` among `offers` (`None` when unset);
/// a type that is not offered is reported and the first offer used.
fn chosen_default(
    default: Option<&Str>,
    offers: &[ResponseOffer],
    offered: &str,
    d: &mut Diagnostics<'_>,
) -> Option<usize> {
    let def = default?;
    let t = def.get_ref().trim().to_ascii_lowercase();
    let found = offers.iter().position(|o| o.media_type == t);
    if found.is_none() {
        let list = offers
            .iter()
            .map(|o| o.media_type.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        d.at(
            def.span(),
            format!("`default` `{t}` is not one of {offered}: {list}"),
        );
    }
    Some(found.unwrap_or(0))
}

fn content_handling(v: &Str, d: &mut Diagnostics<'_>) -> Option<ContentHandling> {
    match v.get_ref().as_str() {
        "CONVERT_TO_TEXT" => Some(ContentHandling::ConvertToText),
        "CONVERT_TO_BINARY" => Some(ContentHandling::ConvertToBinary),
        other => {
            d.at(
                v.span(),
                format!("`content_handling` `{other}` is not \"CONVERT_TO_TEXT\" or \"CONVERT_TO_BINARY\""),
            );
            None
        }
    }
}

pub(super) fn check_mapping(
    r: &RawRoute,
    file_name: &str,
    templates: &mut TemplateSetBuilder,
    d: &mut Diagnostics<'_>,
) -> Mapping {
    let request_template = r
        .request_template
        .as_ref()
        .and_then(|t| templates.add_inline(t, file_name, d));
    let content_handling_req = r
        .content_handling
        .as_ref()
        .and_then(|c| content_handling(c, d));
    let mut responses = Vec::new();
    let mut default_seen = false;
    for resp in r.responses.iter().flatten() {
        let raw = resp.get_ref();
        let pattern = match &raw.pattern {
            None => {
                if default_seen {
                    d.at(
                        resp.span(),
                        "only one response may leave out `pattern` (the default response)",
                    );
                }
                default_seen = true;
                None
            }
            Some(p) => match regex::Regex::new(&format!("^(?:{})$", p.get_ref())) {
                Ok(re) => Some(re),
                Err(e) => {
                    d.at(p.span(), format!("`pattern` is not a valid regex: {e}"));
                    None
                }
            },
        };
        let status = *raw.status.get_ref();
        if !(200..=599).contains(&status) {
            d.at(
                raw.status.span(),
                "`status` must be a final HTTP status (200-599)",
            );
        }
        let mut headers = Vec::new();
        for (name, value) in raw.headers.iter().flatten() {
            if header_name(name, value.span(), d).is_none() {
                continue;
            }
            if let Some(t) = templates.add_inline(value, file_name, d) {
                headers.push((name.to_ascii_lowercase(), t));
            }
        }
        let (offers, default) = check_response_templates(resp, file_name, templates, d);
        responses.push(IntegrationResponse {
            pattern,
            status: status.clamp(100, 599) as u16,
            headers,
            offers,
            default,
            content_handling: raw
                .content_handling
                .as_ref()
                .and_then(|c| content_handling(c, d)),
        });
    }
    Mapping {
        request_template,
        content_handling: content_handling_req,
        responses,
    }
}

/// An integration response's renderings: `template` (with `content_type`,
/// default `application/json`) and/or `templates` (media type → template),
/// and the one served when `Accept` names none: `default`, else
/// `application/json` when offered, else the first.
fn check_response_templates(
    resp: &Spanned<RawIntegrationResponse>,
    file_name: &str,
    templates: &mut TemplateSetBuilder,
    d: &mut Diagnostics<'_>,
) -> (Vec<ResponseOffer>, usize) {
    let raw = resp.get_ref();
    let mut offers: Vec<ResponseOffer> = Vec::new();
    let short_form = raw.template.is_some() || raw.content_type.is_some();
    if short_form || raw.templates.is_none() {
        offers.push(ResponseOffer {
            media_type: match &raw.content_type {
                Some(ct) => media_type(ct, d),
                None => "application/json".to_string(),
            },
            template: raw
                .template
                .as_ref()
                .and_then(|t| templates.add_inline(t, file_name, d)),
        });
    }
    for (media, t) in raw.templates.iter().flatten() {
        let media_type = media_type(&Spanned::new(t.span(), media.clone()), d);
        if offers.iter().any(|o| o.media_type == media_type) {
            d.at(
                t.span(),
                format!("this response renders `{media_type}` twice"),
            );
            continue;
        }
        offers.push(ResponseOffer {
            media_type,
            template: templates.add_inline(t, file_name, d),
        });
    }
    let default = chosen_default(
        raw.default.as_ref(),
        &offers,
        "this response's media types",
        d,
    )
    .unwrap_or_else(|| {
        offers
            .iter()
            .position(|o| o.media_type == "application/json")
            .unwrap_or(0)
    });
    (offers, default)
}
