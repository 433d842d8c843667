//! What the listener's request parser ([`super::server`]) and the upstream
//! client's response parser ([`super::client`]) share about a message head:
//! the framing fields read in one pass ([`FramingFields`]), the one framing
//! decision taken from them (RFC 9112 §6.1–6.3; [`FramingFields::request`]
//! and [`FramingFields::response`] differ only where the RFC makes them
//! differ), and the one error type a head that cannot be used becomes
//! ([`HeadError`]), with the answer a client gets for each.

use std::io;

use axum::http::{HeaderValue, StatusCode, Version};
use axum::response::{IntoResponse, Response};

use super::fields::{list_tokens, merge_content_length};
use crate::error::GatewayError;

/// How a message's body is delimited (RFC 9112 §6.3).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Framing {
    /// No body.
    None,
    /// `Content-Length`.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// Until the connection closes: responses only (a request without
    /// either field has no body).
    UntilClose,
}

/// A response's framing and what it means for its connection.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct ResponseFraming {
    pub(crate) framing: Framing,
    /// Whether the connection can carry another exchange after this body
    /// (before what `Connection` says).
    pub(crate) reusable: bool,
    /// `Content-Length` came with `Transfer-Encoding` and means nothing.
    pub(crate) drop_length: bool,
}

/// The `Content-Length` and `Transfer-Encoding` fields of one head, folded
/// in as its header lines are read.
#[derive(Debug, Default)]
pub(crate) struct FramingFields {
    /// The one length all `Content-Length` elements agreed on.
    length: Option<u64>,
    /// `Content-Length` came as a list or in several fields, so the header
    /// as received is not a plain number.
    length_listed: bool,
    /// A `Transfer-Encoding` field was present (even an empty one).
    transfer_encoding: bool,
    /// How many times `chunked` was listed, over every field.
    chunked: u32,
    /// Whether the last coding listed was `chunked`.
    chunked_last: bool,
    /// A coding other than `chunked` was listed.
    other_coding: bool,
}

impl FramingFields {
    /// Folds in one header line; `Ok(false)` if it is not a framing field.
    /// Malformed or disagreeing `Content-Length` values are an error here.
    #[inline]
    pub(crate) fn fold(&mut self, name: &[u8], value: &[u8]) -> Result<bool, HeadError> {
        match name.len() {
            14 if name.eq_ignore_ascii_case(b"content-length") => {
                self.length_listed |= self.length.is_some() || value.contains(&b',');
                merge_content_length(value, &mut self.length).map_err(HeadError::Bad)?;
                Ok(true)
            }
            17 if name.eq_ignore_ascii_case(b"transfer-encoding") => {
                self.transfer_encoding = true;
                for coding in list_tokens(value) {
                    self.chunked_last = coding.eq_ignore_ascii_case(b"chunked");
                    if self.chunked_last {
                        self.chunked = self.chunked.saturating_add(1);
                    } else {
                        self.other_coding = true;
                    }
                }
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    /// The length to write as the message's one `Content-Length` value,
    /// when the header as received was a list of equal values or repeated
    /// (`5, 5` is `5`): later readers parse the header as one number.
    pub(crate) fn length_to_normalise(&self) -> Option<u64> {
        self.length.filter(|_| self.length_listed)
    }

    /// A request's framing (RFC 9112 §6.1, §6.3). `Transfer-Encoding` must
    /// be exactly `chunked`: with `Content-Length` too it is a smuggling
    /// attempt (`400`), on HTTP/1.0 it cannot be trusted (`400`), another
    /// coding cannot be decoded (`501`), and `chunked` twice is malformed
    /// (`400`).
    pub(crate) fn request(&self, version: Version) -> Result<Framing, HeadError> {
        if !self.transfer_encoding {
            return Ok(match self.length {
                None | Some(0) => Framing::None,
                Some(n) => Framing::Length(n),
            });
        }
        if self.length.is_some() {
            return Err(HeadError::Conflict);
        }
        if version == Version::HTTP_10 {
            return Err(HeadError::Bad("Transfer-Encoding in an HTTP/1.0 request"));
        }
        if self.other_coding {
            return Err(HeadError::UnsupportedCoding);
        }
        match self.chunked {
            0 => Err(HeadError::Bad("empty Transfer-Encoding")),
            1 => Ok(Framing::Chunked),
            _ => Err(HeadError::Bad("chunked applied more than once")),
        }
    }

    /// A response's framing (RFC 9112 §6.3): none for a `HEAD` request's
    /// answer, `204` and `304`; chunked when `chunked` is the last coding;
    /// until the connection closes for another final coding or when no
    /// length is given. `Transfer-Encoding` overrides `Content-Length`, and
    /// a response with both may be a smuggling attempt, so its connection
    /// is not reused.
    /// Whether a `Transfer-Encoding` field was present.
    pub(crate) fn transfer_coded(&self) -> bool {
        self.transfer_encoding
    }

    pub(crate) fn response(&self, status: StatusCode, head_request: bool) -> ResponseFraming {
        let mut out = ResponseFraming {
            framing: Framing::None,
            reusable: true,
            drop_length: false,
        };
        let codings = self.chunked > 0 || self.other_coding;
        if head_request || status == StatusCode::NO_CONTENT || status == StatusCode::NOT_MODIFIED {
            return out;
        }
        if codings {
            if self.length.is_some() {
                out.drop_length = true;
                out.reusable = false;
            }
            if self.chunked_last {
                out.framing = Framing::Chunked;
            } else {
                out.reusable = false;
                out.framing = Framing::UntilClose;
            }
        } else if let Some(n) = self.length {
            out.framing = Framing::Length(n);
        } else {
            out.reusable = false;
            out.framing = Framing::UntilClose;
        }
        out
    }
}

/// Why a head could not be used. On the listener each is answered (see
/// [`HeadError::response`]) and the connection closed; on the upstream
/// client each is a bad response (`502`).
#[derive(Debug)]
pub(crate) enum HeadError {
    /// Malformed; the message says how. `400`.
    Bad(&'static str),
    /// Both `Content-Length` and `Transfer-Encoding`. `400`.
    Conflict,
    /// A transfer coding other than `chunked`. `501`.
    UnsupportedCoding,
    /// Too many header bytes or lines. `431`.
    TooLarge,
    /// A request line that does not fit the head's byte budget. `414`.
    UriTooLong,
    /// An HTTP version other than 1.x. `505`.
    Version,
    /// HTTP/2's connection preface: handed to the HTTP/2 server when it
    /// opens a connection, else `400`.
    Http2,
    /// Upstream only: the connection failed before any of the response
    /// arrived.
    Io(io::Error),
    /// Upstream only: the connection failed after part of the head arrived.
    Cut(io::Error),
}

impl HeadError {
    /// What a client that sent this head gets: the API Gateway-style
    /// refusal, with `Connection: close` (the connection closes after it).
    pub(crate) fn response(&self) -> Response {
        let error = match self {
            HeadError::Conflict => GatewayError::BadRequest(
                "Content-Length and Transfer-Encoding must not both be present".into(),
            ),
            HeadError::UnsupportedCoding => GatewayError::NotImplemented,
            HeadError::TooLarge => GatewayError::HeadersTooLarge,
            HeadError::UriTooLong => GatewayError::UriTooLong,
            HeadError::Version => GatewayError::HttpVersionNotSupported,
            HeadError::Bad(m) => GatewayError::BadRequest((*m).to_string()),
            HeadError::Http2 => GatewayError::BadRequest("unexpected HTTP/2 preface".into()),
            HeadError::Io(_) | HeadError::Cut(_) => {
                GatewayError::BadRequest("malformed request head".into())
            }
        };
        let mut res = error.into_response();
        res.headers_mut().insert(
            axum::http::header::CONNECTION,
            HeaderValue::from_static("close"),
        );
        res
    }
}

impl std::fmt::Display for HeadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HeadError::Bad(m) => write!(f, "malformed head: {m}"),
            HeadError::Conflict => {
                write!(
                    f,
                    "malformed head: both Content-Length and Transfer-Encoding"
                )
            }
            HeadError::UnsupportedCoding => write!(f, "unsupported transfer coding"),
            HeadError::TooLarge => write!(f, "head too large"),
            HeadError::UriTooLong => write!(f, "request line too long"),
            HeadError::Version => write!(f, "unsupported HTTP version"),
            HeadError::Http2 => write!(f, "unexpected HTTP/2 preface"),
            HeadError::Io(e) => write!(f, "{e}"),
            HeadError::Cut(e) => write!(f, "connection failed mid-head: {e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(lines: &[(&str, &str)]) -> Result<FramingFields, HeadError> {
        let mut f = FramingFields::default();
        for (n, v) in lines {
            f.fold(n.as_bytes(), v.as_bytes())?;
        }
        Ok(f)
    }

    fn request(lines: &[(&str, &str)]) -> Result<Framing, HeadError> {
        fields(lines)?.request(Version::HTTP_11)
    }

    #[test]
    fn request_framing() {
        assert_eq!(request(&[]).unwrap(), Framing::None);
        assert_eq!(request(&[("Content-Length", "0")]).unwrap(), Framing::None);
        assert_eq!(
            request(&[("content-length", "5, 5"), ("Content-Length", "5")]).unwrap(),
            Framing::Length(5)
        );
        assert_eq!(
            request(&[("Transfer-Encoding", "Chunked")]).unwrap(),
            Framing::Chunked
        );
        for (lines, want) in [
            (
                &[("Content-Length", "1"), ("Content-Length", "2")][..],
                "Bad",
            ),
            (&[("Content-Length", "1, 2")], "Bad"),
            (&[("Content-Length", "+1")], "Bad"),
            (&[("Content-Length", "")], "Bad"),
            (&[("Content-Length", "1,,1")], "Bad"),
            (
                &[("Transfer-Encoding", "chunked"), ("Content-Length", "3")],
                "Conflict",
            ),
            (
                &[("Content-Length", "3"), ("Transfer-Encoding", "gzip")],
                "Conflict",
            ),
            (&[("Transfer-Encoding", "chunked, chunked")], "Bad"),
            (
                &[
                    ("Transfer-Encoding", "chunked"),
                    ("Transfer-Encoding", "chunked"),
                ],
                "Bad",
            ),
            (&[("Transfer-Encoding", "")], "Bad"),
            (&[("Transfer-Encoding", " , ")], "Bad"),
            (
                &[("Transfer-Encoding", "gzip, chunked")],
                "UnsupportedCoding",
            ),
            (
                &[("Transfer-Encoding", "identity, chunked")],
                "UnsupportedCoding",
            ),
            (
                &[("Transfer-Encoding", "chunked, gzip")],
                "UnsupportedCoding",
            ),
            (
                &[
                    ("Transfer-Encoding", "gzip"),
                    ("Transfer-Encoding", "chunked"),
                ],
                "UnsupportedCoding",
            ),
            (&[("Transfer-Encoding", "chunked;q=1")], "UnsupportedCoding"),
            (&[("Transfer-Encoding", "x-unknown")], "UnsupportedCoding"),
        ] {
            let got = format!("{:?}", request(lines));
            assert!(got.starts_with(&format!("Err({want}")), "{lines:?}: {got}");
        }
        assert!(matches!(
            fields(&[("Transfer-Encoding", "chunked")])
                .unwrap()
                .request(Version::HTTP_10),
            Err(HeadError::Bad(_))
        ));
    }

    #[test]
    fn listed_lengths_are_normalised() {
        let norm = |l: &[(&str, &str)]| fields(l).unwrap().length_to_normalise();
        assert_eq!(norm(&[("Content-Length", "7")]), None);
        assert_eq!(norm(&[("Content-Length", "7, 7")]), Some(7));
        assert_eq!(
            norm(&[("Content-Length", "7"), ("content-length", "7")]),
            Some(7)
        );
        assert_eq!(norm(&[]), None);
    }

    #[test]
    fn response_framing() {
        let resp = |l: &[(&str, &str)], status: u16, head: bool| {
            fields(l)
                .unwrap()
                .response(StatusCode::from_u16(status).unwrap(), head)
        };
        let r = resp(&[("Content-Length", "5")], 200, false);
        assert_eq!((r.framing, r.reusable), (Framing::Length(5), true));
        let r = resp(&[("Transfer-Encoding", "chunked")], 200, false);
        assert_eq!((r.framing, r.reusable), (Framing::Chunked, true));
        let r = resp(
            &[("Content-Length", "3"), ("Transfer-Encoding", "chunked")],
            200,
            false,
        );
        assert_eq!(
            (r.framing, r.reusable, r.drop_length),
            (Framing::Chunked, false, true)
        );
        let r = resp(&[("Transfer-Encoding", "chunked, gzip")], 200, false);
        assert_eq!((r.framing, r.reusable), (Framing::UntilClose, false));
        let r = resp(&[], 200, false);
        assert_eq!((r.framing, r.reusable), (Framing::UntilClose, false));
        for (status, head) in [(204, false), (304, false), (200, true)] {
            let r = resp(&[("Content-Length", "9")], status, head);
            assert_eq!((r.framing, r.reusable), (Framing::None, true));
        }
    }

    #[test]
    fn each_request_error_has_its_status_and_closes() {
        for (e, status) in [
            (HeadError::Bad("x"), 400),
            (HeadError::Conflict, 400),
            (HeadError::UnsupportedCoding, 501),
            (HeadError::TooLarge, 431),
            (HeadError::UriTooLong, 414),
            (HeadError::Version, 505),
            (HeadError::Http2, 400),
        ] {
            let res = e.response();
            assert_eq!(res.status().as_u16(), status, "{e:?}");
            assert_eq!(res.headers()["connection"], "close", "{e:?}");
        }
    }
}
