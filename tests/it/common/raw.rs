//! A raw-socket HTTP/1.1 client, for tests that send bytes no real client
//! would and watch framing and connection closes themselves.
//!
//! Readers keep what follows an answer in the caller's `buf`, so pipelined
//! answers on one connection are read one after another. Every read waits
//! at most [`READ_WAIT`] and panics when the connection ends mid-answer;
//! tests that expect a close use [`closed_within`] and its siblings, which
//! never panic on one.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long one read of an expected answer may take.
pub const READ_WAIT: Duration = Duration::from_secs(10);

/// One parsed answer: status, lower-cased headers in the order sent, body.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Answer {
    /// The first header called `name` (lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as text (invalid UTF-8 replaced).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// A connection to `addr` with Nagle off, so small writes go out at once.
pub async fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).await.unwrap();
    s.set_nodelay(true).unwrap();
    s
}

/// Appends at least one byte read from `s` to `buf`; panics if none comes
/// within [`READ_WAIT`] or the connection ends.
pub async fn fill(s: &mut TcpStream, buf: &mut Vec<u8>) {
    let mut chunk = [0u8; 16 * 1024];
    let n = tokio::time::timeout(READ_WAIT, s.read(&mut chunk))
        .await
        .expect("an answer in time")
        .unwrap_or_else(|e| panic!("connection failed mid-answer ({e}); have {buf:?}"));
    assert!(
        n > 0,
        "connection closed early; have {:?}",
        String::from_utf8_lossy(buf)
    );
    buf.extend_from_slice(&chunk[..n]);
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Reads and removes one answer's head from `buf`; the status line must be
/// HTTP/1.1 and every header line a `name: value`.
async fn read_head(s: &mut TcpStream, buf: &mut Vec<u8>) -> Answer {
    let end = loop {
        if let Some(end) = find(buf, b"\r\n\r\n") {
            break end;
        }
        fill(s, buf).await;
    };
    let head = String::from_utf8(buf[..end].to_vec()).unwrap();
    buf.drain(..end + 4);
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap();
    assert!(status_line.starts_with("HTTP/1.1 "), "{status_line}");
    let status = status_line[9..12].parse().unwrap();
    let headers = lines
        .map(|l| {
            let (n, v) = l
                .split_once(':')
                .unwrap_or_else(|| panic!("not a header line: {l:?}"));
            (n.to_ascii_lowercase(), v.trim().to_string())
        })
        .collect();
    Answer {
        status,
        headers,
        body: Vec::new(),
    }
}

/// Reads one answer framed as RFC 9112 §6.3 says: no body for `HEAD`
/// (`head_request`), `1xx`, `204` and `304`; otherwise by chunked coding,
/// `Content-Length`, or until the connection closes. An answer carrying
/// both a length and chunked coding fails the test: the gateway must never
/// send one.
pub async fn read_answer(s: &mut TcpStream, buf: &mut Vec<u8>, head_request: bool) -> Answer {
    let mut answer = read_head(s, buf).await;
    let status = answer.status;
    if head_request || status == 204 || status == 304 || status < 200 {
        return answer;
    }
    let chunked = answer.header("transfer-encoding") == Some("chunked");
    let length = answer.header("content-length");
    assert!(
        !(chunked && length.is_some()),
        "both Content-Length and chunked: {answer:?}"
    );
    if let Some(len) = length {
        let len: usize = len.parse().unwrap();
        while buf.len() < len {
            fill(s, buf).await;
        }
        answer.body = buf.drain(..len).collect();
    } else if chunked {
        loop {
            let line_end = loop {
                if let Some(e) = find(buf, b"\r\n") {
                    break e;
                }
                fill(s, buf).await;
            };
            let size =
                usize::from_str_radix(std::str::from_utf8(&buf[..line_end]).unwrap(), 16).unwrap();
            buf.drain(..line_end + 2);
            while buf.len() < size + 2 {
                fill(s, buf).await;
            }
            answer.body.extend(buf.drain(..size));
            assert_eq!(buf.drain(..2).collect::<Vec<_>>(), b"\r\n");
            if size == 0 {
                break;
            }
        }
    } else {
        tokio::time::timeout(READ_WAIT, s.read_to_end(buf))
            .await
            .expect("a close-delimited body ends in time")
            .unwrap();
        answer.body = std::mem::take(buf);
    }
    answer
}

/// Reads one answer whose body is framed by `Content-Length` alone (none
/// means empty), whatever the status. For the codec's own answers, which
/// always carry a length: anything else the server sends stays in `buf`
/// for the test to see.
pub async fn read_answer_by_length(s: &mut TcpStream, buf: &mut Vec<u8>) -> Answer {
    let mut answer = read_head(s, buf).await;
    let len: usize = answer
        .header("content-length")
        .map_or(0, |v| v.parse().unwrap());
    while buf.len() < len {
        fill(s, buf).await;
    }
    answer.body = buf.drain(..len).collect();
    answer
}

/// Reads one answer (head, then a `Content-Length` body) from a fresh read
/// of `s` and returns its bytes as text, unparsed.
pub async fn read_answer_text(s: &mut TcpStream) -> String {
    let mut buf = Vec::new();
    loop {
        fill(s, &mut buf).await;
        let Some(end) = find(&buf, b"\r\n\r\n") else {
            continue;
        };
        let len = String::from_utf8_lossy(&buf[..end])
            .lines()
            .find_map(|l| {
                l.to_ascii_lowercase()
                    .strip_prefix("content-length:")
                    .map(|v| v.trim().parse::<usize>().unwrap())
            })
            .unwrap_or(0);
        if buf.len() >= end + 4 + len {
            buf.truncate(end + 4 + len);
            return String::from_utf8_lossy(&buf).into_owned();
        }
    }
}

/// Writes `request` on a new connection and reads one answer (with no body
/// when `request` is a `HEAD`); the connection is returned open.
pub async fn exchange(addr: SocketAddr, request: &[u8]) -> (Answer, TcpStream) {
    let mut s = connect(addr).await;
    s.write_all(request).await.unwrap();
    let head_request = request.starts_with(b"HEAD ");
    let answer = read_answer(&mut s, &mut Vec::new(), head_request).await;
    (answer, s)
}

/// Writes `request` on a new connection, then returns everything read
/// until the server closes it (a reset ends the read too); panics if it is
/// still open after [`READ_WAIT`].
pub async fn exchange_until_closed(addr: SocketAddr, request: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(request).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(READ_WAIT, s.read_to_end(&mut out))
        .await
        .expect("server kept the connection open");
    String::from_utf8_lossy(&out).into_owned()
}

/// How a peer ended a connection.
#[derive(Debug)]
pub struct Closed {
    /// What it sent before ending it.
    pub bytes: Vec<u8>,
    /// Whether a read failed (a reset) rather than reaching end of stream.
    pub reset: bool,
}

/// Reads from `s` until the peer ends the connection, at most `within`;
/// `None` if it is still open then.
pub async fn wait_for_close(s: &mut TcpStream, within: Duration) -> Option<Closed> {
    let mut bytes = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    let deadline = Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, s.read(&mut chunk)).await {
            Err(_) => return None,
            Ok(Ok(0)) => {
                return Some(Closed {
                    bytes,
                    reset: false,
                });
            }
            Ok(Err(_)) => return Some(Closed { bytes, reset: true }),
            Ok(Ok(n)) => bytes.extend_from_slice(&chunk[..n]),
        }
    }
}

/// Everything read until the peer closes `s` (EOF or reset) within
/// `within`; `None` if it is still open then.
pub async fn read_until_closed(s: &mut TcpStream, within: Duration) -> Option<Vec<u8>> {
    wait_for_close(s, within).await.map(|c| c.bytes)
}

/// Whether the peer closes `s` (EOF or reset) within `within`, whatever it
/// sends first.
pub async fn closed_within(s: &mut TcpStream, within: Duration) -> bool {
    wait_for_close(s, within).await.is_some()
}

/// Whether the peer closes `s` (EOF or reset) within `within` without
/// sending anything more first.
pub async fn closed_quietly_within(s: &mut TcpStream, within: Duration) -> bool {
    wait_for_close(s, within)
        .await
        .is_some_and(|c| c.bytes.is_empty())
}

/// Whether the peer ends `s` with a clean end of stream (not a reset)
/// within `within`, without sending anything more first.
pub async fn closed_cleanly_within(s: &mut TcpStream, within: Duration) -> bool {
    wait_for_close(s, within)
        .await
        .is_some_and(|c| c.bytes.is_empty() && !c.reset)
}
