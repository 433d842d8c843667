//! The chunked transfer coding (RFC 9112 §7.1), decoded the same way for
//! request bodies on the listener and response bodies from upstreams.

use std::io;

use bytes::{Buf, Bytes, BytesMut};

/// Trailers and chunk extensions are read and dropped, up to this much.
const MAX_CHUNK_OVERHEAD: usize = 64 * 1024;

/// A chunked body's decoder (RFC 9112 §7.1): sizes, extensions (dropped),
/// data, trailers (dropped).
#[derive(Debug, Default)]
pub struct ChunkDecoder {
    state: ChunkState,
    /// Extension and trailer bytes seen so far (bounded).
    overhead: usize,
}

#[derive(Debug, Default, Clone, Copy, PartialEq)]
enum ChunkState {
    /// Reading the hex size; the value so far and whether a digit was seen.
    #[default]
    Start,
    Size(u64),
    /// After the size: optional whitespace and extensions up to CRLF.
    Extension(u64),
    SizeLf(u64),
    Data(u64),
    DataCr,
    DataLf,
    /// After the last chunk: trailer lines; `true` at a line's start.
    Trailer(bool),
    TrailerLf(bool),
    End,
}

/// What a decoding step found.
#[derive(Debug, PartialEq)]
pub enum Decoded {
    Data(Bytes),
    NeedMore,
    End,
}

impl ChunkDecoder {
    /// Consumes framing bytes from `buf` and returns the next data, or
    /// says more bytes are needed or the body ended.
    pub fn decode(&mut self, buf: &mut BytesMut) -> io::Result<Decoded> {
        use ChunkState::*;
        let invalid = |m: &str| io::Error::new(io::ErrorKind::InvalidData, m.to_string());
        loop {
            if let Data(left) = self.state {
                if buf.is_empty() {
                    return Ok(Decoded::NeedMore);
                }
                let n = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
                let left = left - n as u64;
                self.state = if left == 0 { DataCr } else { Data(left) };
                return Ok(Decoded::Data(buf.split_to(n).freeze()));
            }
            if self.state == End {
                return Ok(Decoded::End);
            }
            let Some(&b) = buf.first() else {
                return Ok(Decoded::NeedMore);
            };
            buf.advance(1);
            self.state = match (self.state, b) {
                (Start, _) => match char::from(b).to_digit(16) {
                    Some(d) => Size(u64::from(d)),
                    None => return Err(invalid("bad chunk size")),
                },
                (Size(n), _) if b.is_ascii_hexdigit() => {
                    let d = u64::from(char::from(b).to_digit(16).unwrap_or(0));
                    match n.checked_mul(16).and_then(|n| n.checked_add(d)) {
                        Some(n) => Size(n),
                        None => return Err(invalid("chunk size overflows")),
                    }
                }
                (Size(n) | Extension(n), b'\r') => SizeLf(n),
                (Size(n) | Extension(n), b'\n') => self.after_size(n),
                (Size(n), b' ' | b'\t' | b';') | (Extension(n), _) => {
                    self.count_overhead()?;
                    Extension(n)
                }
                (Size(_), _) => return Err(invalid("bad chunk size")),
                (SizeLf(n), b'\n') => self.after_size(n),
                (SizeLf(_), _) => return Err(invalid("bad chunk size line")),
                (DataCr, b'\r') => DataLf,
                (DataCr | DataLf, b'\n') => Start,
                (DataCr | DataLf, _) => return Err(invalid("chunk data not followed by CRLF")),
                (Trailer(line_start), b'\r') => TrailerLf(line_start),
                (Trailer(true) | TrailerLf(true), b'\n') => End,
                (Trailer(false) | TrailerLf(false), b'\n') => Trailer(true),
                (TrailerLf(_), _) => return Err(invalid("bad trailer line")),
                (Trailer(_), _) => {
                    self.count_overhead()?;
                    Trailer(false)
                }
                (Data(_) | End, _) => unreachable!("handled above"),
            };
        }
    }

    fn after_size(&self, n: u64) -> ChunkState {
        if n == 0 {
            ChunkState::Trailer(true)
        } else {
            ChunkState::Data(n)
        }
    }

    fn count_overhead(&mut self) -> io::Result<()> {
        self.overhead += 1;
        if self.overhead > MAX_CHUNK_OVERHEAD {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "chunk extensions or trailers too large",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(input: &[u8], step: usize) -> io::Result<(Vec<u8>, bool)> {
        let mut dec = ChunkDecoder::default();
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        for piece in input.chunks(step.max(1)) {
            buf.extend_from_slice(piece);
            loop {
                match dec.decode(&mut buf)? {
                    Decoded::Data(b) => out.extend_from_slice(&b),
                    Decoded::NeedMore => break,
                    Decoded::End => return Ok((out, true)),
                }
            }
        }
        Ok((out, false))
    }

    #[test]
    fn chunked_bodies_decode_whatever_the_read_sizes() {
        let body = b"5;ext=1\r\nhello\r\nA \r\n, chunked!\r\n0\r\nX-Trailer: yes\r\n\r\n";
        for step in [1, 2, 3, 7, body.len()] {
            let (out, ended) = decode_all(body, step).unwrap();
            assert_eq!(out, b"hello, chunked!", "step {step}");
            assert!(ended, "step {step}");
        }
        let (out, ended) = decode_all(b"0\r\n\r\n", 1).unwrap();
        assert!(out.is_empty() && ended);
        // A bare LF ends lines too, as most servers accept.
        let (out, ended) = decode_all(b"3\nabc\n0\n\n", 1).unwrap();
        assert_eq!((out.as_slice(), ended), (&b"abc"[..], true));
    }

    #[test]
    fn bad_chunked_framing_is_an_error_not_a_panic() {
        for bad in [
            &b"g\r\n"[..],
            b"\r\n",
            b"5\r\nhelloXX",
            b"ffffffffffffffffff\r\n",
            b"0\r\nX: 1\rZ",
        ] {
            assert!(decode_all(bad, 1).is_err(), "{bad:?}");
        }
        let huge = [b"1;".as_slice(), &vec![b'x'; MAX_CHUNK_OVERHEAD + 1]].concat();
        assert!(decode_all(&huge, 4096).is_err());
    }
}
