//! Models → JSON Schema files (`schemas/NAME.json`, referenced models
//! inlined under `$defs`) for request bodies and responses.

use serde_json::{Map, Value};

use super::out::OutRequest;
use super::{Importer, OpContext};

impl Importer {
    pub(super) fn body_schema(
        &mut self,
        ctx: &OpContext<'_>,
        key: &str,
        request: &mut OutRequest,
        schema: &Value,
        validated: bool,
        _op: &Value,
    ) {
        if !validated {
            if !is_empty_model(schema) {
                self.warn(format!(
                    "route `{key}`: the request body model is not validated in this export (no request validator with validateRequestBody); not imported"
                ));
            }
            return;
        }
        request.body_schema = self.schema_file(ctx, schema, key, "body");
    }

    /// Writes `schemas/NAME.json` with every referenced model inlined
    /// under `$defs`; returns its path.
    pub(super) fn schema_file(
        &mut self,
        ctx: &OpContext<'_>,
        schema: &Value,
        key: &str,
        what: &str,
    ) -> Option<String> {
        let (name, mut root) = match schema.get("$ref").and_then(|r| r.as_str()) {
            Some(r) => {
                let n = ref_name(r)?.to_string();
                (n.clone(), model(ctx.api, &n)?.clone())
            }
            None => {
                let n: String = format!("{key} {what}")
                    .chars()
                    .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
                    .collect::<String>()
                    .trim_matches('_')
                    .to_string();
                (n, schema.clone())
            }
        };
        let mut defs = Map::new();
        let mut pending: Vec<String> = Vec::new();
        collect_refs(&root, &mut pending);
        while let Some(n) = pending.pop() {
            if n == name || defs.contains_key(&n) {
                continue;
            }
            match model(ctx.api, &n) {
                Some(m) => {
                    collect_refs(m, &mut pending);
                    defs.insert(n, m.clone());
                }
                None => self.warn(format!(
                    "route `{key}`: schema `{n}` is referenced but not defined"
                )),
            }
        }
        rewrite_model_refs(&mut root, &name);
        for v in defs.values_mut() {
            rewrite_model_refs(v, &name);
        }
        if !defs.is_empty()
            && let Some(o) = root.as_object_mut()
        {
            o.insert("$defs".into(), Value::Object(defs));
        }
        let file = format!("schemas/{}.json", safe_file_name(&name));
        let text = serde_json::to_string_pretty(&root).unwrap_or_default() + "\n";
        match self.files.get(&file) {
            Some(existing) if *existing != text => {
                self.warn(format!(
                    "schema `{name}` differs between uses; {file} keeps the first"
                ));
            }
            _ => {
                self.files.insert(file.clone(), text);
            }
        }
        Some(file)
    }
}

/// `#/definitions/X` or `#/components/schemas/X` → `X`.
fn ref_name(r: &str) -> Option<&str> {
    r.strip_prefix("#/definitions/")
        .or_else(|| r.strip_prefix("#/components/schemas/"))
}

fn model<'a>(api: &'a Value, name: &str) -> Option<&'a Value> {
    api.get("definitions")
        .and_then(|d| d.get(name))
        .or_else(|| api.pointer(&format!("/components/schemas/{name}")))
}

/// A `$ref` to a response, parameter or request body, followed once.
pub(super) fn resolve(api: &Value, v: &Value) -> Value {
    if let Some(r) = v.get("$ref").and_then(|r| r.as_str())
        && let Some(path) = r.strip_prefix('#')
        && let Some(target) = api.pointer(path)
    {
        return target.clone();
    }
    v.clone()
}

/// API Gateway's built-in `Empty` model documents nothing.
pub(super) fn is_empty_model(schema: &Value) -> bool {
    schema
        .get("$ref")
        .and_then(|r| r.as_str())
        .and_then(ref_name)
        == Some("Empty")
}

fn collect_refs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(o) => {
            if let Some(n) = o.get("$ref").and_then(|r| r.as_str()).and_then(ref_name) {
                out.push(n.to_string());
            }
            o.values().for_each(|c| collect_refs(c, out));
        }
        Value::Array(a) => a.iter().for_each(|c| collect_refs(c, out)),
        _ => {}
    }
}

/// Model refs → `#/$defs/X` (or `#` for the file's own model).
fn rewrite_model_refs(v: &mut Value, root: &str) {
    match v {
        Value::Object(o) => {
            if let Some(Value::String(r)) = o.get_mut("$ref")
                && let Some(n) = ref_name(r)
            {
                *r = if n == root {
                    "#".to_string()
                } else {
                    format!("#/$defs/{n}")
                };
            }
            o.values_mut().for_each(|c| rewrite_model_refs(c, root));
        }
        Value::Array(a) => a.iter_mut().for_each(|c| rewrite_model_refs(c, root)),
        _ => {}
    }
}

fn safe_file_name(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect()
}
