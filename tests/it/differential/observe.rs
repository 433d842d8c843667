//! How the differential test watches a parser take a case: over a socket
//! for a server (the gateway, hyper), through a Python process for llhttp.
//! Each case goes out as `case bytes + SENTINEL` on a fresh connection,
//! whose write side is then shut, and what comes back is boiled down to a
//! [`Verdict`]: was the first message accepted, with which body, and was
//! the sentinel then answered as a request of its own.

use std::fmt;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use bytes::Bytes;
use futures::StreamExt;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::cases::{Case, SENTINEL};

/// Marks who answered: the echoing upstream or reference server (`echo`),
/// or the sentinel's route (`sentinel`).
pub const MARK: &str = "x-differential";

/// How long one case's connection may stay open after the client's side
/// is shut; a server still holding it then is reported as hung.
const CASE_DEADLINE: Duration = Duration::from_secs(5);

/// Connections in flight at once against one server.
const PARALLEL: usize = 16;

/// What became of the case's first message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Parsed and handed on: what the application (the upstream, or the
    /// reference server's service) received as its body.
    Accepted(Vec<u8>),
    /// Refused: the server's status (`None` from llhttp, which has none).
    Refused(Option<u16>),
    /// No answer: the bytes ran out inside the message, or the server
    /// closed (or hung) without one.
    NoAnswer,
}

/// One parser's reading of one case.
#[derive(Clone, Debug)]
pub struct Verdict {
    pub outcome: Outcome,
    /// Whether the sentinel was answered after the first message.
    pub sentinel: bool,
    /// Free text for the report (llhttp's error, a hang).
    pub detail: String,
}

impl Verdict {
    /// What the comparison looks at: accepted or not (a refusal and no
    /// answer both leave the message unserved), the body when accepted, and
    /// where the message ended (whether the sentinel was a request of its
    /// own).
    pub fn key(&self) -> (bool, Option<&[u8]>, bool) {
        match &self.outcome {
            Outcome::Accepted(body) => (true, Some(body), self.sentinel),
            _ => (false, None, self.sentinel),
        }
    }

    pub fn accepted(&self) -> bool {
        matches!(self.outcome, Outcome::Accepted(_))
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.outcome {
            Outcome::Accepted(body) => write!(f, "accept body={}", escape(body, 60))?,
            Outcome::Refused(Some(s)) => write!(f, "refuse {s}")?,
            Outcome::Refused(None) => write!(f, "refuse")?,
            Outcome::NoAnswer => write!(f, "no answer")?,
        }
        if self.sentinel {
            write!(f, " +sentinel")?;
        }
        if !self.detail.is_empty() {
            write!(f, " ({})", self.detail)?;
        }
        Ok(())
    }
}

/// Bytes as printable ASCII with escapes, cut at `max` bytes.
pub fn escape(bytes: &[u8], max: usize) -> String {
    let mut s: String = bytes
        .iter()
        .take(max)
        .flat_map(|b| std::ascii::escape_default(*b))
        .map(char::from)
        .collect();
    if bytes.len() > max {
        s.push_str(&format!("...(+{} bytes)", bytes.len() - max));
    }
    format!("\"{s}\"")
}

/// The reference server and the gateway's upstream: hyper's HTTP/1
/// server, answering every request `200` with the body it read, or the
/// sentinel (`GET /sentinel`) with a mark of its own. A body that cannot be
/// read whole (broken framing, the connection ended) gets no answer.
pub struct EchoServer {
    pub addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for EchoServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// `limits`: hyper's default limits (the reference server) or roomy ones
/// (the gateway's upstream, which must not refuse what the gateway adds,
/// such as `X-Forwarded-*` on a request with many fields).
pub async fn echo_server(limits: Limits) -> EchoServer {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("local addr");
    let task = tokio::spawn(async move {
        let mut connections = tokio::task::JoinSet::new();
        while let Ok((io, _)) = listener.accept().await {
            let mut builder = hyper::server::conn::http1::Builder::new();
            // The client shuts its side after the last request; what it
            // sent is still to be answered.
            builder.half_close(true).timer(TokioTimer::new());
            if limits == Limits::Roomy {
                builder.max_headers(1000).max_buf_size(1 << 20);
            }
            connections.spawn(async move {
                let _ = builder
                    .serve_connection(TokioIo::new(io), service_fn(echo))
                    .await;
            });
            // Reap finished connections as we go.
            while connections.try_join_next().is_some() {}
        }
    });
    EchoServer { addr, task }
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Limits {
    HyperDefaults,
    Roomy,
}

async fn echo(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, hyper::Error> {
    let mark = if req.method() == hyper::Method::GET && req.uri().path() == "/sentinel" {
        "sentinel"
    } else {
        "echo"
    };
    let body = req.into_body().collect().await?.to_bytes();
    let mut res = Response::new(Full::new(body));
    res.headers_mut()
        .insert(MARK, hyper::header::HeaderValue::from_static(mark));
    Ok(res)
}

/// Sends every case to the server at `addr`, [`PARALLEL`] at a time.
pub async fn over_sockets(addr: SocketAddr, cases: &[Case]) -> Vec<Verdict> {
    futures::stream::iter(cases)
        .map(|case| one_connection(addr, &case.bytes))
        .buffered(PARALLEL)
        .collect()
        .await
}

async fn one_connection(addr: SocketAddr, case: &[u8]) -> Verdict {
    let mut s = match TcpStream::connect(addr).await {
        Ok(s) => s,
        Err(e) => return no_answer(format!("connect: {e}")),
    };
    // The server may refuse and close before reading it all; what it sent
    // back is still read below.
    let _ = s.write_all(&[case, SENTINEL].concat()).await;
    let _ = s.shutdown().await;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    let hung = loop {
        match tokio::time::timeout(CASE_DEADLINE, s.read(&mut chunk)).await {
            Err(_) => break true,
            Ok(Ok(0)) | Ok(Err(_)) => break false,
            Ok(Ok(n)) => buf.extend_from_slice(&chunk[..n]),
        }
    };
    let mut verdict = verdict_from_responses(&buf);
    if hung {
        verdict.detail = format!("held open past {CASE_DEADLINE:?}; {}", verdict.detail);
    }
    verdict
}

fn no_answer(detail: String) -> Verdict {
    Verdict {
        outcome: Outcome::NoAnswer,
        sentinel: false,
        detail,
    }
}

/// One response read back: its status and who answered.
struct Answer {
    status: u16,
    mark: Option<String>,
    body: Vec<u8>,
}

/// The verdict from every response a connection carried.
fn verdict_from_responses(buf: &[u8]) -> Verdict {
    let (answers, trouble) = responses(buf);
    let mut answers = answers.into_iter();
    let detail = trouble.unwrap_or_default();
    let Some(first) = answers.next() else {
        return no_answer(detail);
    };
    let is_sentinel = |a: &Answer| a.mark.as_deref() == Some("sentinel");
    if is_sentinel(&first) {
        // The case's request vanished (taken as noise before the sentinel).
        return Verdict {
            outcome: Outcome::NoAnswer,
            sentinel: true,
            detail: format!("only the sentinel was answered {detail}"),
        };
    }
    let outcome = if (200..300).contains(&first.status) && first.mark.as_deref() == Some("echo") {
        Outcome::Accepted(first.body)
    } else {
        Outcome::Refused(Some(first.status))
    };
    let sentinel = answers.any(|a| is_sentinel(&a));
    Verdict {
        outcome,
        sentinel,
        detail,
    }
}

/// Splits a connection's bytes into final responses (`1xx` skipped). A
/// response that cannot be read ends the list, with what went wrong.
fn responses(mut buf: &[u8]) -> (Vec<Answer>, Option<String>) {
    let mut out = Vec::new();
    while !buf.is_empty() {
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut res = httparse::Response::new(&mut headers);
        let head_len = match res.parse(buf) {
            Ok(httparse::Status::Complete(n)) => n,
            Ok(httparse::Status::Partial) => return (out, Some("truncated response".into())),
            Err(e) => return (out, Some(format!("unreadable response: {e}"))),
        };
        let status = res.code.unwrap_or(0);
        let header = |name: &str| {
            res.headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case(name))
                .map(|h| String::from_utf8_lossy(h.value).trim().to_string())
        };
        let mark = header(MARK);
        let length = header("content-length").and_then(|v| v.parse::<usize>().ok());
        let chunked =
            header("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked"));
        buf = &buf[head_len..];
        if (100..200).contains(&status) {
            continue;
        }
        let body = if status == 204 || status == 304 {
            Vec::new()
        } else if let Some(n) = length {
            let Some(body) = buf.get(..n) else {
                return (out, Some("truncated response body".into()));
            };
            buf = &buf[n..];
            body.to_vec()
        } else if chunked {
            match dechunk(buf) {
                Some((body, used)) => {
                    buf = &buf[used..];
                    body
                }
                None => return (out, Some("unreadable chunked response".into())),
            }
        } else {
            // Close-delimited.
            let body = buf.to_vec();
            buf = &[];
            body
        };
        out.push(Answer { status, mark, body });
    }
    (out, None)
}

/// A chunked response body (from a server under test, so read leniently
/// about extensions): the data and the bytes it took.
fn dechunk(buf: &[u8]) -> Option<(Vec<u8>, usize)> {
    let mut at = 0;
    let mut body = Vec::new();
    loop {
        let line_end = at + buf[at..].windows(2).position(|w| w == b"\r\n")?;
        let line = std::str::from_utf8(&buf[at..line_end]).ok()?;
        let size = usize::from_str_radix(line.split(';').next()?.trim(), 16).ok()?;
        at = line_end + 2;
        if size == 0 {
            // Trailers, up to the empty line.
            loop {
                let end = at + buf[at..].windows(2).position(|w| w == b"\r\n")?;
                let empty = end == at;
                at = end + 2;
                if empty {
                    return Some((body, at));
                }
            }
        }
        body.extend_from_slice(buf.get(at..at + size)?);
        at += size + 2;
    }
}

/// Runs `script` (llhttp through httptools) once over every case with the
/// project's Python; panics with the way to install it if it is missing.
pub async fn llhttp(python: &Path, script: &Path, cases: &[Case]) -> Vec<Verdict> {
    let setup =
        "run scripts/setup-test-deps.sh to install the test dependencies (httptools in .venv)";
    assert!(python.exists(), "{} is missing: {setup}", python.display());
    let mut child = tokio::process::Command::new(python)
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}; {setup}", python.display()));
    let mut input = String::new();
    for case in cases {
        let line = serde_json::json!({
            "id": case.id,
            "data": B64.encode([&case.bytes[..], SENTINEL].concat()),
        });
        input.push_str(&line.to_string());
        input.push('\n');
    }
    let mut stdin = child.stdin.take().expect("piped stdin");
    let writer = tokio::spawn(async move {
        let _ = stdin.write_all(input.as_bytes()).await;
    });
    let out = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("the llhttp script finishes within 60 s")
        .expect("the llhttp script runs");
    let _ = writer.await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    if out.status.code() == Some(3) {
        panic!("{}{setup}", stderr);
    }
    assert!(out.status.success(), "the llhttp script failed:\n{stderr}");
    let mut verdicts: Vec<Option<Verdict>> = vec![None; cases.len()];
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let v: serde_json::Value = serde_json::from_str(line).expect("a JSON line from the script");
        let id = v["id"].as_u64().expect("an id") as usize;
        let body = v["body"]
            .as_str()
            .map(|b| B64.decode(b).expect("base64 body"));
        let outcome = match (v["outcome"].as_str(), body) {
            (Some("accept"), Some(body)) => Outcome::Accepted(body),
            (Some("refuse"), _) => Outcome::Refused(None),
            _ => Outcome::NoAnswer,
        };
        let slot = verdicts.get_mut(id).expect("an id the test sent");
        *slot = Some(Verdict {
            outcome,
            sentinel: v["sentinel"].as_bool().unwrap_or(false),
            detail: v["detail"].as_str().unwrap_or("").to_string(),
        });
    }
    verdicts
        .into_iter()
        .enumerate()
        .map(|(id, v)| v.unwrap_or_else(|| panic!("the llhttp script skipped case {id}")))
        .collect()
}
