//! Auth phase, IAM `Condition` blocks in authorizer policies, evaluated per
//! request as IAM does: every operator and every key in a block must hold
//! (AND), any one of a key's values may match (OR; for negated operators,
//! none may). A key absent from the request makes a condition false, except
//! for negated operators (true), `...IfExists` (true) and `Null` (which tests
//! presence). `ForAnyValue:`/`ForAllValues:` qualify multi-valued keys; the
//! keys here hold one value, so they act on a set of one (or of none when
//! absent: `ForAllValues` holds, `ForAnyValue` does not).
//!
//! Operators: `String[Not]Equals[IgnoreCase]`, `String[Not]Like`,
//! `Numeric*`, `Date*`, `Bool`, `[Not]IpAddress`, `Arn[Not]Equals/Like`,
//! `Null`. Keys (the global keys API Gateway offers every authorization
//! type): `aws:SourceIp`, `aws:CurrentTime`, `aws:EpochTime`,
//! `aws:SecureTransport`, `aws:UserAgent`, `aws:Referer`; the private-API
//! keys `aws:SourceVpc`, `aws:SourceVpce` and `aws:VpcSourceIp` are never
//! present. Anything else — another key, operator or a value of the wrong
//! type — cannot be evaluated: it is reported when the policy is parsed and
//! makes its statement fail closed.

use std::borrow::Cow;
use std::net::IpAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use ipnet::IpNet;
use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::{Iso8601, Rfc3339};

use super::policy::wildcard_matches;

/// What a request offers to conditions.
#[derive(Debug, Clone)]
pub struct RequestFacts<'a> {
    pub source_ip: IpAddr,
    pub now: SystemTime,
    /// Whether the request came over TLS.
    pub secure_transport: bool,
    pub user_agent: Option<&'a str>,
    pub referer: Option<&'a str>,
}

/// A condition's outcome; `Unknown` when it cannot be evaluated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Truth {
    True,
    False,
    Unknown,
}

/// A statement's `Condition`, compiled. Empty: no condition (always true).
#[derive(Debug, Clone, Default)]
pub struct ConditionBlock {
    clauses: Vec<Clause>,
}

#[derive(Debug, Clone)]
enum Clause {
    Test(Test),
    /// Could not be compiled (reported at parse time).
    Unsupported,
}

#[derive(Debug, Clone)]
struct Test {
    key: Key,
    set: SetQualifier,
    if_exists: bool,
    negated: bool,
    values: Values,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SetQualifier {
    Single,
    ForAnyValue,
    ForAllValues,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Key {
    SourceIp,
    CurrentTime,
    EpochTime,
    SecureTransport,
    UserAgent,
    Referer,
    /// A key API Gateway defines that is never present here.
    NeverPresent,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cmp {
    Eq,
    Lt,
    Le,
    Gt,
    Ge,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StringMatch {
    Exact,
    IgnoreCase,
    Like,
}

#[derive(Debug, Clone)]
enum Values {
    Strings(StringMatch, Vec<String>),
    Numbers(Cmp, Vec<f64>),
    /// Unix time in nanoseconds.
    Dates(Cmp, Vec<i128>),
    Bools(Vec<bool>),
    Nets(Vec<IpNet>),
    /// `Null`: `true` means the key must be absent.
    Null(bool),
}

/// The operator families, before their values are read.
#[derive(Debug, Clone, Copy)]
enum Family {
    String(StringMatch),
    Numeric(Cmp),
    Date(Cmp),
    Bool,
    Ip,
    Null,
}

impl ConditionBlock {
    /// Compiles a `Condition` value; what cannot be evaluated is noted in
    /// `problems` and fails closed.
    pub fn parse(v: &Value, problems: &mut Vec<String>) -> Self {
        let mut clauses = Vec::new();
        let Some(ops) = v.as_object() else {
            problems.push("`Condition` is not an object".into());
            return Self {
                clauses: vec![Clause::Unsupported],
            };
        };
        for (op, keys) in ops {
            let Some(keys) = keys.as_object() else {
                problems.push(format!("condition `{op}` does not map keys to values"));
                clauses.push(Clause::Unsupported);
                continue;
            };
            for (key, values) in keys {
                match compile(op, key, values) {
                    Ok(t) => clauses.push(Clause::Test(t)),
                    Err(why) => {
                        problems.push(why);
                        clauses.push(Clause::Unsupported);
                    }
                }
            }
        }
        Self { clauses }
    }

    /// All clauses must hold.
    pub fn evaluate(&self, facts: &RequestFacts<'_>) -> Truth {
        let mut unknown = false;
        for c in &self.clauses {
            match c {
                Clause::Unsupported => unknown = true,
                Clause::Test(t) => {
                    if !t.holds(facts) {
                        return Truth::False;
                    }
                }
            }
        }
        if unknown { Truth::Unknown } else { Truth::True }
    }
}

fn compile(op: &str, key: &str, values: &Value) -> Result<Test, String> {
    let unsupported = || format!("condition operator `{op}` is not supported");
    let (set, rest) = if let Some(r) = op.strip_prefix("ForAnyValue:") {
        (SetQualifier::ForAnyValue, r)
    } else if let Some(r) = op.strip_prefix("ForAllValues:") {
        (SetQualifier::ForAllValues, r)
    } else {
        (SetQualifier::Single, op)
    };
    let (base, if_exists) = match rest.strip_suffix("IfExists") {
        Some(b) => (b, true),
        None => (rest, false),
    };
    let (family, negated) = operator(base).ok_or_else(unsupported)?;
    if matches!(family, Family::Null) && (if_exists || set != SetQualifier::Single) {
        return Err(unsupported());
    }
    let known = match key.to_ascii_lowercase().as_str() {
        "aws:sourceip" => Key::SourceIp,
        "aws:currenttime" => Key::CurrentTime,
        "aws:epochtime" => Key::EpochTime,
        "aws:securetransport" => Key::SecureTransport,
        "aws:useragent" => Key::UserAgent,
        "aws:referer" => Key::Referer,
        "aws:sourcevpc" | "aws:sourcevpce" | "aws:vpcsourceip" => Key::NeverPresent,
        _ => {
            return Err(format!(
                "condition key `{key}` is not available to authorizer policies"
            ));
        }
    };
    let raw: Vec<String> = match values {
        Value::Array(items) => items.iter().map(scalar).collect::<Option<_>>(),
        v => scalar(v).map(|s| vec![s]),
    }
    .ok_or_else(|| {
        format!("condition `{op}` on `{key}` has a value that is not a string, number or boolean")
    })?;
    let bad = |v: &str, what: &str| format!("condition `{op}` on `{key}`: `{v}` is not {what}");
    let values = match family {
        Family::String(m) => Values::Strings(m, raw),
        Family::Numeric(c) => Values::Numbers(
            c,
            raw.iter()
                .map(|v| v.trim().parse::<f64>().map_err(|_| bad(v, "a number")))
                .collect::<Result<_, _>>()?,
        ),
        Family::Date(c) => Values::Dates(
            c,
            raw.iter()
                .map(|v| parse_date(v).ok_or_else(|| bad(v, "a date")))
                .collect::<Result<_, _>>()?,
        ),
        Family::Bool => Values::Bools(
            raw.iter()
                .map(|v| parse_bool(v).ok_or_else(|| bad(v, "true or false")))
                .collect::<Result<_, _>>()?,
        ),
        Family::Ip => Values::Nets(
            raw.iter()
                .map(|v| parse_net(v).ok_or_else(|| bad(v, "an IP address or CIDR block")))
                .collect::<Result<_, _>>()?,
        ),
        Family::Null => match raw.as_slice() {
            [one] => Values::Null(parse_bool(one).ok_or_else(|| bad(one, "true or false"))?),
            _ => return Err(format!("condition `Null` on `{key}` takes one value")),
        },
    };
    Ok(Test {
        key: known,
        set,
        if_exists,
        negated,
        values,
    })
}

/// Operator name → family and whether it is a negated ("Not") form.
fn operator(base: &str) -> Option<(Family, bool)> {
    use Cmp::*;
    let cmp = |s: &str| match s {
        "Equals" => Some((Eq, false)),
        "NotEquals" => Some((Eq, true)),
        "LessThan" => Some((Lt, false)),
        "LessThanEquals" => Some((Le, false)),
        "GreaterThan" => Some((Gt, false)),
        "GreaterThanEquals" => Some((Ge, false)),
        _ => None,
    };
    if let Some(rest) = base.strip_prefix("Numeric") {
        return cmp(rest).map(|(c, n)| (Family::Numeric(c), n));
    }
    if let Some(rest) = base.strip_prefix("Date") {
        return cmp(rest).map(|(c, n)| (Family::Date(c), n));
    }
    let s = |m| Some((Family::String(m), false));
    let not = |m| Some((Family::String(m), true));
    match base {
        "StringEquals" => s(StringMatch::Exact),
        "StringNotEquals" => not(StringMatch::Exact),
        "StringEqualsIgnoreCase" => s(StringMatch::IgnoreCase),
        "StringNotEqualsIgnoreCase" => not(StringMatch::IgnoreCase),
        // ARN operators both take wildcards in IAM.
        "StringLike" | "ArnEquals" | "ArnLike" => s(StringMatch::Like),
        "StringNotLike" | "ArnNotEquals" | "ArnNotLike" => not(StringMatch::Like),
        "Bool" => Some((Family::Bool, false)),
        "IpAddress" => Some((Family::Ip, false)),
        "NotIpAddress" => Some((Family::Ip, true)),
        "Null" => Some((Family::Null, false)),
        _ => None,
    }
}

fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn parse_bool(s: &str) -> Option<bool> {
    if s.eq_ignore_ascii_case("true") {
        Some(true)
    } else if s.eq_ignore_ascii_case("false") {
        Some(false)
    } else {
        None
    }
}

fn parse_net(s: &str) -> Option<IpNet> {
    let s = s.trim();
    s.parse::<IpNet>()
        .ok()
        .or_else(|| s.parse::<IpAddr>().ok().map(IpNet::from))
        .map(|n| match n {
            // `::ffff:a.b.c.d/120` and friends compare as IPv4.
            IpNet::V6(v6) => match v6.addr().to_ipv4_mapped() {
                Some(v4) => ipnet::Ipv4Net::new(v4, v6.prefix_len().saturating_sub(96))
                    .map(IpNet::V4)
                    .unwrap_or(n),
                None => n,
            },
            v4 => v4,
        })
}

/// ISO 8601 (`2024-05-01T12:00:00Z`, with or without fractions), a bare
/// date, or seconds since the epoch.
fn parse_date(s: &str) -> Option<i128> {
    let s = s.trim();
    if let Ok(t) = OffsetDateTime::parse(s, &Rfc3339) {
        return Some(t.unix_timestamp_nanos());
    }
    if let Ok(t) = OffsetDateTime::parse(s, &Iso8601::DEFAULT) {
        return Some(t.unix_timestamp_nanos());
    }
    if let Ok(d) = time::Date::parse(s, time::macros::format_description!("[year]-[month]-[day]")) {
        return Some(d.midnight().assume_utc().unix_timestamp_nanos());
    }
    s.parse::<i64>()
        .ok()
        .map(|secs| i128::from(secs) * 1_000_000_000)
}

fn nanos(t: SystemTime) -> i128 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_nanos() as i128,
        Err(e) => -(e.duration().as_nanos() as i128),
    }
}

/// One key's value in this request, typed as the gateway knows it.
enum Fact<'a> {
    Ip(IpAddr),
    Time { at: SystemTime, epoch: bool },
    Bool(bool),
    Text(&'a str),
}

impl Fact<'_> {
    fn text(&self) -> Cow<'_, str> {
        match self {
            Fact::Ip(ip) => Cow::Owned(ip.to_string()),
            Fact::Time { at, epoch: true } => Cow::Owned((nanos(*at) / 1_000_000_000).to_string()),
            Fact::Time { at, epoch: false } => Cow::Owned(
                OffsetDateTime::from(*at)
                    .replace_nanosecond(0)
                    .ok()
                    .and_then(|t| t.format(&Rfc3339).ok())
                    .unwrap_or_default(),
            ),
            Fact::Bool(b) => Cow::Borrowed(if *b { "true" } else { "false" }),
            Fact::Text(s) => Cow::Borrowed(s),
        }
    }
}

impl<'a> RequestFacts<'a> {
    fn fact(&self, key: Key) -> Option<Fact<'a>> {
        match key {
            Key::SourceIp => Some(Fact::Ip(self.source_ip.to_canonical())),
            Key::CurrentTime => Some(Fact::Time {
                at: self.now,
                epoch: false,
            }),
            Key::EpochTime => Some(Fact::Time {
                at: self.now,
                epoch: true,
            }),
            Key::SecureTransport => Some(Fact::Bool(self.secure_transport)),
            Key::UserAgent => self.user_agent.map(Fact::Text),
            Key::Referer => self.referer.map(Fact::Text),
            Key::NeverPresent => None,
        }
    }
}

impl Test {
    fn holds(&self, facts: &RequestFacts<'_>) -> bool {
        let fact = facts.fact(self.key);
        if let Values::Null(must_be_absent) = self.values {
            return fact.is_none() == must_be_absent;
        }
        let Some(fact) = fact else {
            return match self.set {
                SetQualifier::Single => self.if_exists || self.negated,
                SetQualifier::ForAnyValue => self.if_exists,
                SetQualifier::ForAllValues => true,
            };
        };
        // One value: any/all/single agree. A value of the wrong type matches
        // nothing, and then no condition on it holds.
        match self.any_value_matches(&fact) {
            Some(hit) => hit != self.negated,
            None => false,
        }
    }

    fn any_value_matches(&self, fact: &Fact<'_>) -> Option<bool> {
        let cmp = |c: Cmp, a: f64, b: f64| match c {
            Cmp::Eq => a == b,
            Cmp::Lt => a < b,
            Cmp::Le => a <= b,
            Cmp::Gt => a > b,
            Cmp::Ge => a >= b,
        };
        match &self.values {
            Values::Strings(how, values) => {
                let text = fact.text();
                Some(values.iter().any(|v| match how {
                    StringMatch::Exact => v == text.as_ref(),
                    StringMatch::IgnoreCase => v.to_lowercase() == text.to_lowercase(),
                    StringMatch::Like => wildcard_matches(v.as_bytes(), text.as_bytes()),
                }))
            }
            Values::Numbers(c, values) => {
                let n = match fact {
                    Fact::Time { at, epoch: true } => (nanos(*at) / 1_000_000_000) as f64,
                    Fact::Text(s) => s.trim().parse().ok()?,
                    _ => return None,
                };
                Some(values.iter().any(|v| cmp(*c, n, *v)))
            }
            Values::Dates(c, values) => {
                let t = match fact {
                    Fact::Time { at, .. } => nanos(*at),
                    Fact::Text(s) => parse_date(s)?,
                    _ => return None,
                };
                Some(values.iter().any(|v| match c {
                    Cmp::Eq => t == *v,
                    Cmp::Lt => t < *v,
                    Cmp::Le => t <= *v,
                    Cmp::Gt => t > *v,
                    Cmp::Ge => t >= *v,
                }))
            }
            Values::Bools(values) => {
                let b = match fact {
                    Fact::Bool(b) => *b,
                    Fact::Text(s) => parse_bool(s)?,
                    _ => return None,
                };
                Some(values.contains(&b))
            }
            Values::Nets(nets) => {
                let ip = match fact {
                    Fact::Ip(ip) => *ip,
                    Fact::Text(s) => s.trim().parse::<IpAddr>().ok()?.to_canonical(),
                    _ => return None,
                };
                Some(nets.iter().any(|n| n.contains(&ip)))
            }
            Values::Null(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::time::Duration;

    fn facts() -> RequestFacts<'static> {
        RequestFacts {
            source_ip: "::ffff:203.0.113.9".parse().unwrap(),
            // 2024-05-01T12:00:00Z
            now: UNIX_EPOCH + Duration::from_secs(1_714_564_800),
            secure_transport: false,
            user_agent: Some("Mozilla/5.0 (X11) Firefox/125"),
            referer: None,
        }
    }

    fn eval(c: Value) -> Truth {
        let mut problems = Vec::new();
        let b = ConditionBlock::parse(&c, &mut problems);
        b.evaluate(&facts())
    }

    #[test]
    fn strings_and_wildcards() {
        assert_eq!(
            eval(json!({"StringLike": {"aws:UserAgent": "*Firefox*"}})),
            Truth::True
        );
        assert_eq!(
            eval(json!({"StringNotLike": {"aws:UserAgent": ["*Chrome*", "curl/*"]}})),
            Truth::True
        );
        assert_eq!(
            eval(json!({"StringEquals": {"aws:useragent": "mozilla/5.0 (X11) Firefox/125"}})),
            Truth::False
        );
        assert_eq!(
            eval(
                json!({"StringEqualsIgnoreCase": {"aws:UserAgent": "mozilla/5.0 (x11) firefox/125"}})
            ),
            Truth::True
        );
    }

    #[test]
    fn absent_keys_follow_iam() {
        // No Referer: positive operators fail, negated ones and IfExists hold.
        assert_eq!(
            eval(json!({"StringLike": {"aws:Referer": "*"}})),
            Truth::False
        );
        assert_eq!(
            eval(json!({"StringNotEquals": {"aws:Referer": "x"}})),
            Truth::True
        );
        assert_eq!(
            eval(json!({"StringEqualsIfExists": {"aws:Referer": "x"}})),
            Truth::True
        );
        assert_eq!(eval(json!({"Null": {"aws:Referer": "true"}})), Truth::True);
        assert_eq!(
            eval(json!({"Null": {"aws:UserAgent": "true"}})),
            Truth::False
        );
        assert_eq!(
            eval(json!({"ForAllValues:StringEquals": {"aws:Referer": ["a"]}})),
            Truth::True
        );
        assert_eq!(
            eval(json!({"ForAnyValue:StringEquals": {"aws:Referer": ["a"]}})),
            Truth::False
        );
        assert_eq!(
            eval(json!({"StringEquals": {"aws:SourceVpc": "vpc-1"}})),
            Truth::False
        );
    }

    #[test]
    fn ip_time_numbers_and_bools() {
        assert_eq!(
            eval(json!({"IpAddress": {"aws:SourceIp": "203.0.113.0/24"}})),
            Truth::True
        );
        assert_eq!(
            eval(json!({"NotIpAddress": {"aws:SourceIp": ["203.0.113.0/24", "10.0.0.0/8"]}})),
            Truth::False
        );
        assert_eq!(
            eval(
                json!({"DateGreaterThan": {"aws:CurrentTime": "2024-05-01T11:59:59Z"},
                        "DateLessThan": {"aws:CurrentTime": "2024-05-02"}})
            ),
            Truth::True
        );
        assert_eq!(
            eval(json!({"DateLessThan": {"aws:EpochTime": 1714564800}})),
            Truth::False
        );
        assert_eq!(
            eval(json!({"NumericGreaterThanEquals": {"aws:EpochTime": "1714564800"}})),
            Truth::True
        );
        assert_eq!(
            eval(json!({"Bool": {"aws:SecureTransport": "false"}})),
            Truth::True
        );
        assert_eq!(
            eval(json!({"Bool": {"aws:SecureTransport": true}})),
            Truth::False
        );
        // Every operator must hold.
        assert_eq!(
            eval(json!({"Bool": {"aws:SecureTransport": "false"},
                        "IpAddress": {"aws:SourceIp": "10.0.0.0/8"}})),
            Truth::False
        );
    }

    #[test]
    fn what_cannot_be_evaluated_is_unknown_and_reported() {
        for c in [
            json!({"StringEquals": {"aws:PrincipalTag/team": "x"}}),
            json!({"StringSoundsLike": {"aws:UserAgent": "x"}}),
            json!({"NumericLessThan": {"aws:EpochTime": "soon"}}),
            json!({"IpAddress": {"aws:SourceIp": "not-an-ip"}}),
            json!({"NullIfExists": {"aws:Referer": "true"}}),
            json!(["not", "an", "object"]),
        ] {
            let mut problems = Vec::new();
            let b = ConditionBlock::parse(&c, &mut problems);
            assert_eq!(b.evaluate(&facts()), Truth::Unknown, "{c}");
            assert_eq!(problems.len(), 1, "{c}: {problems:?}");
        }
    }
}
