//! Schemas: the JSON Schema files routes name become components, their
//! `$defs` components of their own; what utoipa cannot carry is reported.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;
use utoipa::openapi::{ObjectBuilder, RefOr, Schema};

use super::{ERROR_SCHEMA, GenerateError, Generator};

impl Generator<'_> {
    /// Loads a schema file once and registers it as a component.
    pub(super) fn schema_component(&mut self, path: &Path) -> Result<String, GenerateError> {
        if let Some(name) = self.schema_names.get(path) {
            return Ok(name.clone());
        }
        let text = std::fs::read_to_string(path).map_err(|e| GenerateError::Schema {
            path: path.to_path_buf(),
            message: format!("cannot read the schema: {e}"),
        })?;
        let mut value: Value = serde_json::from_str(&text).map_err(|e| GenerateError::Schema {
            path: path.to_path_buf(),
            message: format!("not JSON: {e}"),
        })?;
        let stem = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("Schema")
            .to_string();
        let name = self.unique_schema_name(&component_name(&stem), &value);
        self.schema_names.insert(path.to_path_buf(), name.clone());

        // `$defs` become components of their own, and refs follow them.
        let mut renames: BTreeMap<String, String> = BTreeMap::new();
        let defs = value
            .as_object_mut()
            .and_then(|o| o.remove("$defs").or_else(|| o.remove("definitions")));
        let mut def_values = Vec::new();
        if let Some(Value::Object(defs)) = defs {
            for (def, mut v) in defs {
                rewrite_refs(&mut v, &BTreeMap::new());
                let n = self.unique_schema_name(&component_name(&def), &v);
                renames.insert(def.clone(), n.clone());
                def_values.push((n, v));
            }
        }
        for (n, mut v) in def_values {
            rewrite_refs(&mut v, &renames);
            let s = self.convert_schema(&v, &format!("{} ($defs/{n})", path.display()));
            self.schemas.insert(n, s);
        }
        rewrite_refs(&mut value, &renames);
        if let Some(o) = value.as_object_mut() {
            o.remove("$schema");
            o.remove("$id");
        }
        let s = self.convert_schema(&value, &path.display().to_string());
        self.schemas.insert(name.clone(), s);
        Ok(name)
    }

    /// A name not yet used by a different schema (equal schemas share one).
    fn unique_schema_name(&self, base: &str, value: &Value) -> String {
        let normal = |v: &Value| {
            serde_json::from_value::<RefOr<Schema>>(v.clone())
                .ok()
                .and_then(|s| serde_json::to_value(s).ok())
        };
        let wanted = normal(value);
        let mut name = base.to_string();
        let mut n = 2;
        loop {
            match self.schemas.get(&name) {
                None if name != ERROR_SCHEMA => return name,
                Some(existing)
                    if wanted.is_some() && serde_json::to_value(existing).ok() == wanted =>
                {
                    return name;
                }
                _ => {
                    name = format!("{base}{n}");
                    n += 1;
                }
            }
        }
    }

    /// JSON Schema → utoipa's `Schema`; keywords utoipa cannot carry are
    /// reported.
    fn convert_schema(&mut self, value: &Value, what: &str) -> RefOr<Schema> {
        match serde_json::from_value::<RefOr<Schema>>(value.clone()) {
            Ok(s) => {
                let back = serde_json::to_value(&s).unwrap_or(Value::Null);
                let mut lost = Vec::new();
                lost_keywords(value, &back, "", &mut lost);
                if !lost.is_empty() {
                    self.warnings.push(format!(
                        "schema {what}: OpenAPI output drops {}",
                        lost.join(", ")
                    ));
                }
                s
            }
            Err(e) => {
                self.warnings.push(format!(
                    "schema {what} cannot be expressed ({e}); documented as any value"
                ));
                RefOr::T(Schema::Object(ObjectBuilder::new().build()))
            }
        }
    }
}

/// A component name from a file stem or `$defs` key.
fn component_name(s: &str) -> String {
    let n: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if n.is_empty() { "Schema".into() } else { n }
}

/// `#/$defs/X` (or `#/definitions/X`) → `#/components/schemas/<renamed X>`.
fn rewrite_refs(v: &mut Value, renames: &BTreeMap<String, String>) {
    match v {
        Value::Object(o) => {
            if let Some(Value::String(r)) = o.get_mut("$ref") {
                let def = r
                    .strip_prefix("#/$defs/")
                    .or_else(|| r.strip_prefix("#/definitions/"));
                if let Some(def) = def {
                    let target = renames.get(def).cloned().unwrap_or_else(|| def.to_string());
                    *r = format!("#/components/schemas/{target}");
                }
            }
            for (_, child) in o.iter_mut() {
                rewrite_refs(child, renames);
            }
        }
        Value::Array(a) => a.iter_mut().for_each(|c| rewrite_refs(c, renames)),
        _ => {}
    }
}

/// Keywords present in `original` and missing from `back`, as JSON pointers.
fn lost_keywords(original: &Value, back: &Value, at: &str, lost: &mut Vec<String>) {
    match (original, back) {
        (Value::Object(o), Value::Object(b)) => {
            for (k, v) in o {
                let here = format!("{at}/{k}");
                match b.get(k) {
                    None => lost.push(format!("`{here}`")),
                    Some(bv) => lost_keywords(v, bv, &here, lost),
                }
            }
        }
        (Value::Array(o), Value::Array(b)) => {
            for (i, (ov, bv)) in o.iter().zip(b).enumerate() {
                lost_keywords(ov, bv, &format!("{at}/{i}"), lost);
            }
        }
        _ => {}
    }
}
