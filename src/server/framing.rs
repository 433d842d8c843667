//! Request-smuggling guard for HTTP/1 connections. hyper follows RFC 9112
//! when a request carries both `Content-Length` and `Transfer-Encoding`: it
//! drops `Content-Length` and reads chunked, so the application never sees
//! the conflict. Behind another proxy that framed the same bytes by
//! `Content-Length`, that disagreement is exactly how smuggling works, so
//! lambdagate refuses such requests (`400`, connection closed), as the RFC
//! allows.
//!
//! [`FramingGuard`] watches the bytes hyper reads, follows HTTP/1 message
//! framing (head, fixed-length or chunked body) just far enough to find each
//! request head, and raises a per-connection flag when a head carries both
//! headers. It never changes the bytes. On anything it does not understand
//! (HTTP/2 preface, parse errors) it stops watching and leaves the verdict to
//! hyper's own parser.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Largest head the guard buffers; hyper refuses larger ones itself.
const MAX_HEAD: usize = 64 * 1024;

#[derive(Debug)]
enum State {
    Head(Vec<u8>),
    Fixed(u64),
    ChunkSize(Vec<u8>),
    ChunkData(u64),
    ChunkDataEnd,
    Trailers(Vec<u8>),
    Off,
}

/// Follows HTTP/1 framing over the bytes a connection reads.
#[derive(Debug)]
pub struct FramingTracker {
    state: State,
    conflict: Arc<AtomicBool>,
}

impl FramingTracker {
    pub fn new(conflict: Arc<AtomicBool>) -> Self {
        Self {
            state: State::Head(Vec::new()),
            conflict,
        }
    }

    /// Feeds bytes in the order they were read.
    pub fn feed(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            match &mut self.state {
                State::Off => return,
                State::Head(buf) if buf.is_empty() => {
                    // The common case: a whole head arrived in one read;
                    // look at it where it is instead of copying it.
                    let skip = data
                        .iter()
                        .take_while(|b| **b == b'\r' || **b == b'\n')
                        .count();
                    let rest = &data[skip..];
                    let complete = if rest.starts_with(b"PRI ") {
                        None
                    } else {
                        head_end(rest).filter(|end| *end <= MAX_HEAD)
                    };
                    let Some(end) = complete else {
                        // Partial, oversized or HTTP/2: the buffered path decides.
                        buf.extend_from_slice(data);
                        if buf.starts_with(b"PRI ") || buf.len() > MAX_HEAD {
                            self.state = State::Off;
                        }
                        return;
                    };
                    self.state = self.after_head(&rest[..end]);
                    data = &rest[end..];
                }
                State::Head(buf) => {
                    let before = buf.len();
                    buf.extend_from_slice(data);
                    if buf.starts_with(b"PRI ") || buf.len() > MAX_HEAD {
                        self.state = State::Off;
                        return;
                    }
                    // Blank lines before a request line are allowed.
                    let skip = buf
                        .iter()
                        .take_while(|b| **b == b'\r' || **b == b'\n')
                        .count();
                    let Some(end) = head_end(&buf[skip..]).map(|e| e + skip) else {
                        return;
                    };
                    let consumed_from_data = end - before;
                    let head = std::mem::take(buf);
                    self.state = self.after_head(&head[skip..end]);
                    data = &data[consumed_from_data..];
                }
                State::Fixed(n) => {
                    let take = (*n).min(data.len() as u64) as usize;
                    *n -= take as u64;
                    data = &data[take..];
                    if *n == 0 {
                        self.state = State::Head(Vec::new());
                    }
                }
                State::ChunkSize(line) => {
                    let Some(nl) = data.iter().position(|b| *b == b'\n') else {
                        line.extend_from_slice(data);
                        if line.len() > 1024 {
                            self.state = State::Off;
                        }
                        return;
                    };
                    line.extend_from_slice(&data[..nl]);
                    data = &data[nl + 1..];
                    let text = String::from_utf8_lossy(line);
                    let hex = text.split(';').next().unwrap_or("").trim();
                    self.state = match u64::from_str_radix(hex, 16) {
                        Ok(0) => State::Trailers(Vec::new()),
                        Ok(n) => State::ChunkData(n),
                        Err(_) => State::Off,
                    };
                }
                State::ChunkData(n) => {
                    let take = (*n).min(data.len() as u64) as usize;
                    *n -= take as u64;
                    data = &data[take..];
                    if *n == 0 {
                        self.state = State::ChunkDataEnd;
                    }
                }
                State::ChunkDataEnd => {
                    // The CRLF after a chunk's data.
                    match data.iter().position(|b| *b == b'\n') {
                        Some(nl) => {
                            data = &data[nl + 1..];
                            self.state = State::ChunkSize(Vec::new());
                        }
                        None => return,
                    }
                }
                State::Trailers(line) => {
                    let Some(nl) = data.iter().position(|b| *b == b'\n') else {
                        line.extend_from_slice(data);
                        if line.len() > MAX_HEAD {
                            self.state = State::Off;
                        }
                        return;
                    };
                    line.extend_from_slice(&data[..nl]);
                    data = &data[nl + 1..];
                    let empty = line.iter().all(|b| *b == b'\r');
                    line.clear();
                    if empty {
                        self.state = State::Head(Vec::new());
                    }
                }
            }
        }
    }

    fn after_head(&self, head: &[u8]) -> State {
        // Uninitialised: zeroing 128 headers per request costs more than
        // parsing a small head.
        let mut headers = [const { std::mem::MaybeUninit::<httparse::Header>::uninit() }; 128];
        let mut req = httparse::Request::new(&mut []);
        if !matches!(
            req.parse_with_uninit_headers(head, &mut headers),
            Ok(httparse::Status::Complete(_))
        ) {
            return State::Off;
        }
        let mut length: Option<u64> = None;
        let mut chunked = false;
        let mut te = false;
        for h in req.headers.iter() {
            if h.name.eq_ignore_ascii_case("transfer-encoding") {
                te = true;
                chunked = String::from_utf8_lossy(h.value)
                    .rsplit(',')
                    .next()
                    .is_some_and(|last| last.trim().eq_ignore_ascii_case("chunked"));
            } else if h.name.eq_ignore_ascii_case("content-length") {
                length = std::str::from_utf8(h.value)
                    .ok()
                    .and_then(|v| v.trim().parse().ok());
                if length.is_none() {
                    return State::Off;
                }
            }
        }
        if te && length.is_some() {
            self.conflict.store(true, Ordering::SeqCst);
            return State::Off;
        }
        if req
            .method
            .is_some_and(|m| m.eq_ignore_ascii_case("CONNECT"))
        {
            return State::Off;
        }
        match (te, chunked, length) {
            (true, true, _) => State::ChunkSize(Vec::new()),
            (true, false, _) => State::Off, // hyper answers 400 itself
            (false, _, Some(0)) | (false, _, None) => State::Head(Vec::new()),
            (false, _, Some(n)) => State::Fixed(n),
        }
    }
}

/// Index just past the blank line ending a head (`\r\n\r\n` or `\n\n`).
fn head_end(buf: &[u8]) -> Option<usize> {
    memchr::memchr_iter(b'\n', buf).find_map(|i| match buf.get(i + 1..i + 3) {
        Some([b'\n', _]) => Some(i + 2),
        Some([b'\r', b'\n']) => Some(i + 3),
        None if buf.get(i + 1) == Some(&b'\n') => Some(i + 2),
        _ => None,
    })
}

/// An I/O stream whose reads pass through a [`FramingTracker`].
pub struct FramingGuard<S> {
    inner: S,
    tracker: FramingTracker,
}

impl<S> FramingGuard<S> {
    pub fn new(inner: S, conflict: Arc<AtomicBool>) -> Self {
        Self {
            inner,
            tracker: FramingTracker::new(conflict),
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for FramingGuard<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = &polled {
            let fresh = buf.filled()[before..].to_vec();
            self.tracker.feed(&fresh);
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for FramingGuard<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conflict_after(chunks: &[&[u8]]) -> bool {
        let flag = Arc::new(AtomicBool::new(false));
        let mut t = FramingTracker::new(flag.clone());
        for c in chunks {
            t.feed(c);
        }
        flag.load(Ordering::SeqCst)
    }

    #[test]
    fn both_headers_in_one_head_is_a_conflict() {
        assert!(conflict_after(&[
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n"
        ]));
        assert!(conflict_after(&[
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nHost: a\r\n",
            b"content-length: 4\r\n\r\n0\r\n\r\n"
        ]));
    }

    #[test]
    fn bodies_that_look_like_heads_are_skipped() {
        // A fixed body and a chunked body, each holding header-like text.
        let body = b"X\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n";
        let mut stream = format!(
            "POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .into_bytes();
        stream.extend_from_slice(body);
        stream.extend_from_slice(
            b"POST /b HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n",
        );
        stream.extend_from_slice(format!("{:x}\r\n", body.len()).as_bytes());
        stream.extend_from_slice(body);
        stream.extend_from_slice(b"\r\n0\r\n\r\nGET /c HTTP/1.1\r\nHost: a\r\n\r\n");
        assert!(!conflict_after(&[&stream]));
        // Byte by byte gives the same answer.
        let bytes: Vec<&[u8]> = stream.chunks(1).collect();
        assert!(!conflict_after(&bytes));
    }

    #[test]
    fn a_large_body_read_with_its_head_does_not_stop_the_watch() {
        let body = vec![b'x'; 2 * MAX_HEAD];
        let mut first = format!(
            "POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .into_bytes();
        first.extend_from_slice(&body);
        assert!(conflict_after(&[
            &first,
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\nTransfer-Encoding: chunked\r\n\r\n"
        ]));
    }

    #[test]
    fn a_conflict_in_a_later_pipelined_request_is_found() {
        assert!(conflict_after(&[
            b"GET / HTTP/1.1\r\nHost: a\r\n\r\nPOST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\nTransfer-Encoding: chunked\r\n\r\n"
        ]));
    }
}
