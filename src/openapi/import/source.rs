//! Reading an export: JSON or YAML (CloudFormation short-form tags
//! tolerated), and the API documents inside a SAM/CloudFormation template.

use serde_json::Value;

use super::ImportError;

/// Reads JSON or YAML. CloudFormation short-form tags are tolerated:
/// `!Sub "x"` is its string, `!Ref X` is `${X}`, `!GetAtt X.Arn` is `${X.Arn}`.
pub fn load_document(text: &str) -> Result<Value, ImportError> {
    if let Ok(v) = serde_json::from_str::<Value>(text) {
        return Ok(v);
    }
    let y: yaml_serde::Value =
        yaml_serde::from_str(text).map_err(|e| ImportError::Parse(e.to_string()))?;
    Ok(yaml_to_json(y))
}

fn yaml_to_json(v: yaml_serde::Value) -> Value {
    use yaml_serde::Value as Y;
    match v {
        Y::Null => Value::Null,
        Y::Bool(b) => Value::Bool(b),
        Y::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::from(i)
            } else if let Some(u) = n.as_u64() {
                Value::from(u)
            } else {
                n.as_f64()
                    .and_then(serde_json::Number::from_f64)
                    .map_or(Value::Null, Value::Number)
            }
        }
        Y::String(s) => Value::String(s),
        Y::Sequence(s) => Value::Array(s.into_iter().map(yaml_to_json).collect()),
        Y::Mapping(m) => Value::Object(
            m.into_iter()
                .map(|(k, v)| {
                    let key = match yaml_to_json(k) {
                        Value::String(s) => s,
                        other => other.to_string(),
                    };
                    (key, yaml_to_json(v))
                })
                .collect(),
        ),
        Y::Tagged(t) => {
            let tag = t.tag.to_string();
            let inner = yaml_to_json(t.value);
            match (tag.as_str(), inner) {
                ("!Ref", Value::String(s)) => Value::String(format!("${{{s}}}")),
                ("!GetAtt", Value::String(s)) => Value::String(format!("${{{s}}}")),
                ("!GetAtt", Value::Array(parts)) => Value::String(format!(
                    "${{{}}}",
                    parts
                        .iter()
                        .filter_map(|p| p.as_str())
                        .collect::<Vec<_>>()
                        .join(".")
                )),
                // `!Sub [template, {vars}]`: the template.
                ("!Sub", Value::Array(mut parts)) if !parts.is_empty() => parts.swap_remove(0),
                (_, inner) => inner,
            }
        }
    }
}

/// The API documents in `doc`: itself, or the `Body`/`DefinitionBody` of
/// each API resource of a CloudFormation/SAM template.
pub(super) fn api_documents(doc: &Value, warnings: &mut Vec<String>) -> Vec<(String, Value)> {
    if doc.get("paths").is_some() {
        return vec![(String::new(), doc.clone())];
    }
    let mut out = Vec::new();
    if let Some(resources) = doc.get("Resources").and_then(|r| r.as_object()) {
        for (name, r) in resources {
            let props = r.get("Properties");
            let body = props
                .and_then(|p| p.get("Body").or_else(|| p.get("DefinitionBody")))
                .filter(|b| b.get("paths").is_some());
            match body {
                Some(b) => out.push((name.clone(), b.clone())),
                None => warnings.push(format!(
                    "template resource `{name}` ({}) is not an API and was not imported{}",
                    r.get("Type").and_then(|t| t.as_str()).unwrap_or("no Type"),
                    if r.get("Type").and_then(|t| t.as_str()) == Some("AWS::Serverless::Function") {
                        "; give [functions.NAME] a `command` to run it on the local backend"
                    } else {
                        ""
                    }
                )),
            }
        }
    }
    if out.len() > 1 {
        warnings.push(format!(
            "the template holds {} APIs ({}); their routes are merged into one routes file",
            out.len(),
            out.iter()
                .map(|(n, _)| n.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cloudformation_tags_are_tolerated() {
        let v = load_document(
            "a: !Sub arn:${AWS::Region}:x\nb: !Ref Thing\nc: !GetAtt Fn.Arn\nd: !Sub [\"x-${y}\", {y: 1}]\n",
        )
        .unwrap();
        assert_eq!(v["a"], "arn:${AWS::Region}:x");
        assert_eq!(v["b"], "${Thing}");
        assert_eq!(v["c"], "${Fn.Arn}");
        assert_eq!(v["d"], "x-${y}");
    }
}
