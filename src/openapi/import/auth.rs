//! Security schemes → `[auth.*]` (JWT, Lambda, IAM authorizers) and the
//! functions named by Lambda ARNs.

use serde_json::Value;

use super::Importer;
use super::out::{OutAuth, OutFunction};

impl Importer {
    /// Records the region and account of an ARN; the first one wins.
    fn note_arn(&mut self, region: &str, account: Option<&str>) {
        if self.region.is_none() && !region.is_empty() && !region.contains('$') {
            self.region = Some(region.to_string());
        }
        if let Some(a) = account
            && self.account.is_none()
            && !a.is_empty()
            && !a.contains('$')
        {
            self.account = Some(a.to_string());
        }
    }

    /// The function key for a Lambda integration or authorizer URI, and
    /// its `[functions.*]` entry.
    pub(super) fn function_from_uri(&mut self, uri: &str, what: &str) -> Option<String> {
        // `arn:aws:apigateway:REGION:lambda:path/2015-03-31/functions/ARN/invocations`
        let arn = match uri.split_once("/functions/") {
            Some((head, rest)) => {
                let region = head.split(':').nth(3).unwrap_or_default().to_string();
                self.note_arn(&region, None);
                rest.strip_suffix("/invocations")
                    .unwrap_or(rest)
                    .to_string()
            }
            None => uri.to_string(),
        };
        let name = if let Some((head, name)) = arn.split_once(":function:") {
            let parts: Vec<&str> = head.split(':').collect();
            let region = parts.get(3).copied().unwrap_or_default().to_string();
            let account = parts.get(4).copied().map(str::to_string);
            self.note_arn(&region, account.as_deref());
            name.to_string()
        } else if let Some(inner) = arn.strip_prefix("${").and_then(|a| a.strip_suffix('}')) {
            // A CloudFormation reference such as `${HelloWorldFunction.Arn}`.
            inner.strip_suffix(".Arn").unwrap_or(inner).to_string()
        } else {
            self.warn(format!(
                "{what}: cannot find a Lambda function in `{uri}`; the whole value is used as the function name"
            ));
            arn
        };
        if name.is_empty() {
            return None;
        }
        let base = name.split(':').next().unwrap_or(&name);
        let mut key: String = base
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect::<String>()
            .trim_matches('_')
            .to_string();
        if key.is_empty() {
            key = "function".into();
        }
        let entry = OutFunction {
            name: (name != key).then(|| name.clone()),
        };
        match self.out.functions.get(&key) {
            Some(existing) if existing.name != entry.name => {
                let mut n = 2;
                while self.out.functions.contains_key(&format!("{key}{n}")) {
                    n += 1;
                }
                key = format!("{key}{n}");
                self.out.functions.insert(
                    key.clone(),
                    OutFunction {
                        name: Some(name.clone()),
                    },
                );
            }
            Some(_) => {}
            None => {
                self.out.functions.insert(key.clone(), entry);
            }
        }
        Some(key)
    }

    pub(super) fn security_scheme(&mut self, name: &str, scheme: &Value) {
        let authtype = scheme
            .get("x-amazon-apigateway-authtype")
            .and_then(|a| a.as_str())
            .unwrap_or_default()
            .to_ascii_lowercase();
        let authorizer = scheme.get("x-amazon-apigateway-authorizer");
        let kind = authorizer
            .and_then(|a| a.get("type"))
            .and_then(|t| t.as_str())
            .unwrap_or_default()
            .to_ascii_lowercase();
        let auth = if authtype == "awssigv4" {
            OutAuth {
                kind: "sigv4".into(),
                ..Default::default()
            }
        } else if kind == "jwt" {
            let a = authorizer.cloned().unwrap_or_default();
            let source = identity_sources(a.get("identitySource"));
            OutAuth {
                kind: "jwt".into(),
                issuer: a
                    .pointer("/jwtConfiguration/issuer")
                    .and_then(|i| i.as_str())
                    .map(str::to_string),
                audience: a
                    .pointer("/jwtConfiguration/audience")
                    .and_then(|a| a.as_array())
                    .into_iter()
                    .flatten()
                    .filter_map(|s| s.as_str().map(str::to_string))
                    .collect(),
                identity_sources: if source == ["$request.header.Authorization"] {
                    Vec::new()
                } else {
                    source
                },
                ..Default::default()
            }
        } else if kind == "token" || kind == "request" {
            let a = authorizer.cloned().unwrap_or_default();
            let function = a
                .get("authorizerUri")
                .and_then(|u| u.as_str())
                .and_then(|u| self.function_from_uri(u, &format!("authorizer `{name}`")));
            for k in ["identityValidationExpression", "authorizerCredentials"] {
                if let Some(v) = a.get(k) {
                    self.warn(format!(
                        "authorizer `{name}`: `{k}` ({v}) is not supported and was not imported"
                    ));
                }
            }
            let ttl = a
                .get("authorizerResultTtlInSeconds")
                .and_then(|t| t.as_u64())
                .filter(|t| *t != 300)
                .map(|t| format!("{t}s"));
            let mut sources = identity_sources(a.get("identitySource"));
            if sources.is_empty()
                && scheme.get("in").and_then(|i| i.as_str()) == Some("header")
                && let Some(h) = scheme.get("name").and_then(|n| n.as_str())
            {
                // A TOKEN authorizer reads the header its scheme names.
                sources.push(format!("$request.header.{h}"));
            }
            OutAuth {
                kind: "lambda".into(),
                function,
                authorizer_type: Some(kind.clone()),
                identity_sources: sources,
                response: (a.get("enableSimpleResponses") == Some(&Value::Bool(true)))
                    .then(|| "simple".to_string()),
                payload_version: a
                    .get("authorizerPayloadFormatVersion")
                    .and_then(|p| p.as_str())
                    .filter(|p| *p != "2.0")
                    .map(str::to_string),
                ttl,
                ..Default::default()
            }
        } else if kind == "cognito_user_pools" || authtype == "cognito_user_pools" {
            self.warn(format!(
                "security scheme `{name}`: Cognito user pool authorizers are not supported; use a `jwt` authorizer with the pool's issuer"
            ));
            return;
        } else if scheme.get("type").and_then(|t| t.as_str()) == Some("apiKey")
            && scheme
                .get("name")
                .and_then(|n| n.as_str())
                .is_some_and(|n| n.eq_ignore_ascii_case("x-api-key"))
        {
            // API Gateway's API key: routes get `api_key = true`.
            return;
        } else {
            self.warn(format!(
                "security scheme `{name}` has no API Gateway authorizer this importer knows; not imported"
            ));
            return;
        };
        self.out.auth.insert(name.to_string(), auth);
    }
}

/// `method.request.header.X` / `$request.header.X`, comma-separated or a
/// list → `$request.header.X` entries.
fn identity_sources(v: Option<&Value>) -> Vec<String> {
    let raw: Vec<String> = match v {
        Some(Value::String(s)) => s.split(',').map(|p| p.trim().to_string()).collect(),
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(|s| s.as_str().map(|s| s.trim().to_string()))
            .collect(),
        _ => Vec::new(),
    };
    raw.into_iter()
        .filter(|s| !s.is_empty())
        .map(|s| match s.strip_prefix("method.request.") {
            Some(rest) => format!("$request.{rest}"),
            None => s,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_sources_use_http_api_spelling() {
        assert_eq!(
            identity_sources(Some(&Value::String(
                "method.request.header.header, method.request.querystring.query".into()
            ))),
            ["$request.header.header", "$request.querystring.query"]
        );
    }
}
