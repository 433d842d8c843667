//! Auth phase, IAM policy evaluation for `execute-api:Invoke`: the policy a
//! Lambda authorizer returns is evaluated against each request's method ARN
//! the way IAM does — an explicit Deny wins, then an Allow grants, otherwise
//! the request is denied. `Action`/`NotAction` and `Resource`/`NotResource`
//! take IAM wildcards (`*`, `?`); `Condition` blocks are evaluated with
//! [`condition`](super::condition) against the request (source IP, time, TLS,
//! user agent, referer), so a cached policy is decided anew for every request.
//!
//! A condition the gateway cannot evaluate (unknown operator or key, a value
//! of the wrong type) fails closed: its Allow grants nothing and its Deny
//! still denies. Such problems are found when the policy is parsed and
//! reported to the caller for the log.

use serde_json::Value;

use super::condition::{ConditionBlock, RequestFacts, Truth};

/// One policy statement about `execute-api:Invoke`.
#[derive(Debug, Clone)]
pub struct Statement {
    pub allow: bool,
    actions: Patterns,
    resources: Patterns,
    /// Empty when the statement has no `Condition`.
    condition: ConditionBlock,
}

/// `Action`/`Resource` patterns, or their `Not...` complements.
#[derive(Debug, Clone)]
struct Patterns {
    values: Vec<String>,
    negated: bool,
}

impl Patterns {
    fn matches(&self, f: impl Fn(&str) -> bool) -> bool {
        self.values.iter().any(|v| f(v)) != self.negated
    }
}

/// What a statement says about a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// An Allow applies (and no Deny does).
    Allow,
    /// A Deny applies.
    ExplicitDeny,
    /// Nothing applies: denied.
    ImplicitDeny,
}

/// Parses `policyDocument.Statement` (an array or one object). Problems that
/// make a statement fail closed are pushed to `problems`; a statement that
/// cannot be read at all is an error.
pub fn parse_statements(doc: &Value, problems: &mut Vec<String>) -> Result<Vec<Statement>, String> {
    let raw: Vec<&Value> = match doc.get("Statement") {
        Some(Value::Array(a)) => a.iter().collect(),
        Some(o @ Value::Object(_)) => vec![o],
        _ => return Err("`policyDocument.Statement` is missing".into()),
    };
    raw.into_iter()
        .map(|s| parse_statement(s, problems))
        .collect()
}

fn parse_statement(s: &Value, problems: &mut Vec<String>) -> Result<Statement, String> {
    let effect = s.get("Effect").and_then(Value::as_str).unwrap_or_default();
    let allow = match effect.to_ascii_lowercase().as_str() {
        "allow" => true,
        "deny" => false,
        _ => {
            return Err(format!(
                "a statement's Effect `{effect}` is not Allow or Deny"
            ));
        }
    };
    let actions = patterns(s, "Action", "NotAction")?;
    let resources = patterns(s, "Resource", "NotResource")?;
    let condition = match s.get("Condition") {
        None | Some(Value::Null) => ConditionBlock::default(),
        Some(c) => ConditionBlock::parse(c, problems),
    };
    Ok(Statement {
        allow,
        actions,
        resources,
        condition,
    })
}

fn patterns(s: &Value, name: &str, not_name: &str) -> Result<Patterns, String> {
    match (s.get(name), s.get(not_name)) {
        (Some(v), None) => Ok(Patterns {
            values: strings(v),
            negated: false,
        }),
        (None, Some(v)) => Ok(Patterns {
            values: strings(v),
            negated: true,
        }),
        (None, None) => Ok(Patterns {
            values: Vec::new(),
            negated: false,
        }),
        (Some(_), Some(_)) => Err(format!("a statement has both `{name}` and `{not_name}`")),
    }
}

fn strings(v: &Value) -> Vec<String> {
    match v {
        Value::String(s) => vec![s.clone()],
        Value::Array(a) => a
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect(),
        _ => Vec::new(),
    }
}

/// Evaluates statements for `method_arn` and this request's facts.
pub fn evaluate(statements: &[Statement], method_arn: &str, facts: &RequestFacts<'_>) -> Verdict {
    let mut allowed = false;
    for s in statements {
        let in_scope = s.actions.matches(action_matches)
            && s.resources.matches(|r| arn_matches(r, method_arn));
        if !in_scope {
            continue;
        }
        let truth = s.condition.evaluate(facts);
        if s.allow {
            allowed |= truth == Truth::True;
        } else if truth != Truth::False {
            // A Deny whose condition cannot be evaluated still denies.
            return Verdict::ExplicitDeny;
        }
    }
    if allowed {
        Verdict::Allow
    } else {
        Verdict::ImplicitDeny
    }
}

fn action_matches(action: &str) -> bool {
    ["*", "execute-api:*", "execute-api:invoke"]
        .iter()
        .any(|a| action.eq_ignore_ascii_case(a))
}

/// IAM wildcard matching: `*` is any run of characters (slashes included),
/// `?` any one character; everything else compares exactly.
pub fn arn_matches(pattern: &str, arn: &str) -> bool {
    wildcard_matches(pattern.as_bytes(), arn.as_bytes())
}

/// `*`/`?` matching over bytes (`?` matches one byte; patterns and ARNs
/// here are ASCII in practice, and a multi-byte character only makes a
/// `?` pattern stricter).
pub fn wildcard_matches(p: &[u8], s: &[u8]) -> bool {
    let (mut pi, mut si) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while si < s.len() {
        if pi < p.len() && (p[pi] == b'?' || p[pi] == s[si]) {
            pi += 1;
            si += 1;
        } else if pi < p.len() && p[pi] == b'*' {
            // Only stars left in the pattern: they take the rest, whatever it is.
            if p[pi..].iter().all(|&c| c == b'*') {
                return true;
            }
            star = Some(pi);
            mark = si;
            pi += 1;
        } else if let Some(st) = star {
            pi = st + 1;
            mark += 1;
            si = mark;
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == b'*' {
        pi += 1;
    }
    pi == p.len()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::net::IpAddr;
    use std::time::SystemTime;

    const ARN: &str = "arn:aws:execute-api:us-east-1:123456789012:api/dev";

    fn facts(ip: &str) -> RequestFacts<'static> {
        RequestFacts {
            source_ip: ip.parse::<IpAddr>().unwrap(),
            now: SystemTime::now(),
            secure_transport: false,
            user_agent: Some("curl/8"),
            referer: None,
        }
    }

    fn statements(v: Value) -> (Vec<Statement>, Vec<String>) {
        let mut problems = Vec::new();
        let s = parse_statements(&json!({ "Statement": v }), &mut problems).unwrap();
        (s, problems)
    }

    #[test]
    fn wildcards_match_like_iam() {
        assert!(arn_matches(
            &format!("{ARN}/GET/pets/*"),
            &format!("{ARN}/GET/pets/1/toys")
        ));
        assert!(!arn_matches(
            &format!("{ARN}/GET/pets/*"),
            &format!("{ARN}/DELETE/pets/1")
        ));
        assert!(arn_matches(
            &format!("{ARN}/*/pets/?"),
            &format!("{ARN}/DELETE/pets/1")
        ));
        assert!(arn_matches("*", ARN));
    }

    #[test]
    fn not_resource_and_not_action() {
        let (s, _) = statements(json!([
            {"Effect": "Allow", "Action": "execute-api:Invoke", "Resource": "*"},
            {"Effect": "Deny", "Action": "execute-api:Invoke", "NotResource": format!("{ARN}/GET/*")}
        ]));
        let f = facts("10.0.0.1");
        assert_eq!(evaluate(&s, &format!("{ARN}/GET/x"), &f), Verdict::Allow);
        assert_eq!(
            evaluate(&s, &format!("{ARN}/POST/x"), &f),
            Verdict::ExplicitDeny
        );
        let (s, _) = statements(json!([
            {"Effect": "Allow", "NotAction": "s3:*", "Resource": "*"}
        ]));
        assert_eq!(evaluate(&s, ARN, &f), Verdict::Allow);
    }

    #[test]
    fn conditions_decide_per_request() {
        let (s, problems) = statements(json!([
            {"Effect": "Allow", "Action": "execute-api:Invoke", "Resource": "*",
             "Condition": {"IpAddress": {"aws:SourceIp": ["10.0.0.0/8", "192.0.2.7"]}}}
        ]));
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(evaluate(&s, ARN, &facts("10.1.2.3")), Verdict::Allow);
        assert_eq!(evaluate(&s, ARN, &facts("192.0.2.7")), Verdict::Allow);
        assert_eq!(
            evaluate(&s, ARN, &facts("192.0.2.8")),
            Verdict::ImplicitDeny
        );
    }

    #[test]
    fn unknown_conditions_fail_closed() {
        let (allow, problems) = statements(json!([
            {"Effect": "Allow", "Action": "execute-api:Invoke", "Resource": "*",
             "Condition": {"StringEquals": {"aws:SomethingNew": "x"}}}
        ]));
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(
            evaluate(&allow, ARN, &facts("10.0.0.1")),
            Verdict::ImplicitDeny
        );
        let (deny, problems) = statements(json!([
            {"Effect": "Allow", "Action": "execute-api:Invoke", "Resource": "*"},
            {"Effect": "Deny", "Action": "execute-api:Invoke", "Resource": "*",
             "Condition": {"StringSounds": {"aws:UserAgent": "x"}}}
        ]));
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(
            evaluate(&deny, ARN, &facts("10.0.0.1")),
            Verdict::ExplicitDeny
        );
    }
}
