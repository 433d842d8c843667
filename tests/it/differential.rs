//! Differential testing of the gateway's HTTP/1.1 request parser against
//! two independent ones, hyper's server and llhttp (through Python's
//! `httptools`). Generated request heads and chunked bodies (valid,
//! borderline, hostile; `differential/cases.rs`) go to all three, each
//! followed by a well-formed sentinel request, and the test fails wherever
//! the gateway disagrees with either on accepting the message, on the body
//! it carried, or on where it ended (whether the sentinel was answered as
//! a request of its own), except for the deliberate differences listed,
//! with their reasons, in `differential/deliberate.toml`
//! (docs/http1-conformance.md explains both).
//!
//! Black-box over sockets: the gateway runs with an `http` backend that
//! echoes what it received, so what reached the upstream is what the client
//! reads back. `DIFFERENTIAL_TABLE=1` prints every disagreement, excused or
//! not; `DIFFERENTIAL_TABLE=all` prints every case.

mod cases;
mod observe;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use serde::Deserialize;

use crate::common::start;
use cases::Case;
use observe::{Outcome, Verdict, escape};

/// The deliberate (and pending) differences, read at compile time so an
/// edit re-runs the test.
const DIFFERENCES: &str = include_str!("differential/deliberate.toml");

/// The two independent parsers, in report order.
const PARSERS: [&str; 2] = ["hyper", "llhttp"];

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DifferenceList {
    difference: Vec<Difference>,
}

/// One known difference between the gateway and an independent parser.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Difference {
    /// Case tags; a trailing `*` matches any tag with that prefix.
    cases: Vec<String>,
    /// Which independent parsers the gateway may disagree with here.
    parsers: Vec<String>,
    /// What the gateway does: `accept`, `refuse`, `no answer`, a status
    /// (`400`) or a class (`4xx`); the difference is excused only then.
    gateway: String,
    /// `deliberate`: the gateway means to differ. `pending`: a gap the
    /// strict codec closes; once it excuses nothing it must be deleted.
    kind: Kind,
    reason: String,
}

#[derive(Deserialize, PartialEq, Clone, Copy, Debug)]
#[serde(rename_all = "lowercase")]
enum Kind {
    Deliberate,
    Pending,
}

impl Difference {
    fn covers(&self, tag: &str, parser: &str, gateway: &Verdict) -> bool {
        self.parsers.iter().any(|p| p == parser)
            && self
                .cases
                .iter()
                .any(|pattern| match pattern.strip_suffix('*') {
                    Some(prefix) => tag.starts_with(prefix),
                    None => tag == pattern,
                })
            && gateway_does(&self.gateway, gateway)
    }
}

/// Whether the gateway's verdict is what `expected` says.
fn gateway_does(expected: &str, v: &Verdict) -> bool {
    match (expected, &v.outcome) {
        ("accept", Outcome::Accepted(_)) => true,
        ("refuse", Outcome::Refused(_)) => true,
        ("no answer", Outcome::NoAnswer) => true,
        (_, Outcome::Refused(Some(status))) => {
            let status = status.to_string();
            match expected.strip_suffix("xx") {
                Some(class) => status.starts_with(class),
                None => expected == status,
            }
        }
        _ => false,
    }
}

/// The statuses a refusal for the client's bytes has: malformed (400),
/// too large (413, 414, 431), not implemented (501), version (505). When
/// the independent parsers refuse too, any other status (a 502 above all)
/// blames something other than the client.
const PARSER_REFUSALS: [u16; 6] = [400, 413, 414, 431, 501, 505];

/// Where the gateway's verdict differs from another parser's, if it does.
fn differs(gateway: &Verdict, other: &Verdict) -> Option<&'static str> {
    let (g_accepted, g_body, g_sentinel) = gateway.key();
    let (o_accepted, o_body, o_sentinel) = other.key();
    if g_accepted != o_accepted {
        return Some("accept/refuse");
    }
    if g_body != o_body {
        return Some("body");
    }
    if g_sentinel != o_sentinel {
        return Some("message end");
    }
    match gateway.outcome {
        Outcome::Refused(Some(s)) if !PARSER_REFUSALS.contains(&s) => Some("refusal status"),
        _ => None,
    }
}

/// One case on which the gateway and an independent parser differ.
struct Disagreement<'a> {
    case: &'a Case,
    parser: &'static str,
    /// On what: accept/refuse, body, message end, refusal status.
    what: &'static str,
    gateway: &'a Verdict,
    other: &'a Verdict,
    /// The difference that excuses it, by its index in the list.
    excused_by: Option<usize>,
}

fn routes(upstream: std::net::SocketAddr) -> String {
    format!(
        r#"
[backends.up]
kind = "http"
url = "http://{upstream}"

[[routes]]
method = "ANY"
path = "/{{proxy+}}"
backend = "up"

[[routes]]
method = "ANY"
path = "/"
backend = "up"

[[routes]]
method = "GET"
path = "/sentinel"
mock = {{ status = 200, body = "sentinel", headers = {{ {mark} = "sentinel" }} }}
"#,
        mark = observe::MARK,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_parses_requests_as_hyper_and_llhttp_do_or_differs_deliberately() {
    let list: DifferenceList =
        toml::from_str(DIFFERENCES).unwrap_or_else(|e| panic!("differential/deliberate.toml: {e}"));
    let cases = cases::all();
    assert!(cases.len() > 500, "only {} cases generated", cases.len());

    let upstream = observe::echo_server(observe::Limits::Roomy).await;
    let reference = observe::echo_server(observe::Limits::HyperDefaults).await;
    let gw = start(&routes(upstream.addr)).await;
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let python = root.join(".venv/bin/python");
    let script = root.join("tests/it/differential/llhttp.py");
    let (gateway, hyper, llhttp) = tokio::join!(
        observe::over_sockets(gw.addr, &cases),
        observe::over_sockets(reference.addr, &cases),
        observe::llhttp(&python, &script, &cases),
    );
    gw.stop().await;

    // The harness itself: plain valid requests are accepted by everyone,
    // with the body that was sent, and the sentinel after them answered.
    for (i, case) in cases.iter().enumerate() {
        if case.tag.starts_with("valid/") {
            for (name, v) in [
                ("gateway", &gateway[i]),
                ("hyper", &hyper[i]),
                ("llhttp", &llhttp[i]),
            ] {
                assert!(
                    v.accepted() && v.sentinel,
                    "{name} did not serve a valid request {}: {v}",
                    escape(&case.bytes, 400)
                );
            }
        }
    }

    let mut disagreements = Vec::new();
    for (i, case) in cases.iter().enumerate() {
        for (parser, other) in PARSERS.into_iter().zip([&hyper[i], &llhttp[i]]) {
            let Some(what) = differs(&gateway[i], other) else {
                continue;
            };
            let excused_by = list
                .difference
                .iter()
                .position(|d| d.covers(&case.tag, parser, &gateway[i]));
            disagreements.push(Disagreement {
                case,
                parser,
                what,
                gateway: &gateway[i],
                other,
                excused_by,
            });
        }
    }

    let table = std::env::var("DIFFERENTIAL_TABLE").unwrap_or_default();
    if table == "all" {
        for (i, case) in cases.iter().enumerate() {
            eprintln!(
                "#{} {} {}\n    gateway: {}\n    hyper:   {}\n    llhttp:  {}",
                case.id,
                case.tag,
                escape(&case.bytes, 300),
                gateway[i],
                hyper[i],
                llhttp[i]
            );
        }
    } else if !table.is_empty() {
        eprintln!("{}", report(&disagreements, &list, true));
    }

    let mut uses = vec![0usize; list.difference.len()];
    for d in &disagreements {
        if let Some(i) = d.excused_by {
            uses[i] += 1;
        }
    }
    let mut failures = String::new();
    if disagreements.iter().any(|d| d.excused_by.is_none()) {
        failures.push_str(&report(&disagreements, &list, false));
    }
    for (i, d) in list.difference.iter().enumerate() {
        match (d.kind, uses[i]) {
            (Kind::Pending, 0) => {
                let _ = writeln!(
                    failures,
                    "pending difference {:?} ({}) excuses nothing any more: delete it from \
                     differential/deliberate.toml",
                    d.cases, d.reason
                );
            }
            (Kind::Pending, n) => {
                eprintln!(
                    "pending (the strict codec should remove it): {:?} against {:?}, {n} disagreement(s): {}",
                    d.cases, d.parsers, d.reason
                );
            }
            (Kind::Deliberate, 0) => {
                eprintln!("deliberate difference not seen in this run: {:?}", d.cases);
            }
            (Kind::Deliberate, _) => {}
        }
    }
    eprintln!(
        "{} cases; {} disagreements, {} excused",
        cases.len(),
        disagreements.len(),
        disagreements
            .iter()
            .filter(|d| d.excused_by.is_some())
            .count()
    );
    assert!(failures.is_empty(), "{failures}");
}

/// The disagreements (only the unexcused ones unless `all`), the cases on
/// which hyper and llhttp agree with each other against the gateway first:
/// that is where the gateway is most likely wrong.
fn report(disagreements: &[Disagreement<'_>], list: &DifferenceList, all: bool) -> String {
    // Per case: which parsers disagree.
    let mut by_case: BTreeMap<usize, Vec<&Disagreement<'_>>> = BTreeMap::new();
    for d in disagreements {
        if all || d.excused_by.is_none() {
            by_case.entry(d.case.id).or_default().push(d);
        }
    }
    let both_against =
        |ds: &Vec<&Disagreement<'_>>| ds.len() == 2 && ds[0].other.key() == ds[1].other.key();
    let mut out = String::new();
    for (title, want_both) in [
        (
            "hyper and llhttp agree with each other, not with the gateway",
            true,
        ),
        ("the gateway differs from one independent parser", false),
    ] {
        let mut lines = String::new();
        for ds in by_case.values().filter(|ds| both_against(ds) == want_both) {
            let first = ds[0];
            let _ = writeln!(
                lines,
                "  #{} {} {}\n      gateway: {}",
                first.case.id,
                first.case.tag,
                escape(&first.case.bytes, 300),
                first.gateway
            );
            for d in ds {
                let excused = match d.excused_by {
                    Some(i) => format!(
                        "  [{:?}: {}]",
                        list.difference[i].kind, list.difference[i].reason
                    ),
                    None => String::new(),
                };
                let _ = writeln!(
                    lines,
                    "      {:<8} {} [{}]{excused}",
                    format!("{}:", d.parser),
                    d.other,
                    d.what
                );
            }
        }
        if !lines.is_empty() {
            let _ = writeln!(out, "{title}:\n{lines}");
        }
    }
    out
}
