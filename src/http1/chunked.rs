//! The chunked transfer coding (RFC 9112 §7.1), decoded the same way for
//! request bodies on the listener and response bodies from upstreams.
//!
//! The grammar is enforced strictly, because two parsers that disagree on
//! where a chunked body ends let a request be smuggled past one of them:
//! every line ends in CRLF (a bare CR or LF is an error), a chunk size is
//! at most 16 hex digits (leading zeros included), extensions follow the
//! size only as `*( BWS ";" BWS name [ BWS "=" BWS value ] )`, and trailer
//! lines are header fields. Extensions and trailers are read and dropped,
//! up to [`MAX_CHUNK_OVERHEAD`] bytes per body.

use std::io;

use bytes::{Buf, Bytes, BytesMut};

/// Extension and trailer bytes a body may carry in all; past this it is
/// refused (they are dropped, so they only cost the reader).
pub(crate) const MAX_CHUNK_OVERHEAD: usize = 64 * 1024;
/// Hex digits in a chunk size, leading zeros included: 16 is every `u64`.
pub(crate) const MAX_SIZE_DIGITS: u8 = 16;

/// A chunked body's decoder: sizes, extensions (dropped), data, trailers
/// (dropped).
#[derive(Debug, Default)]
pub struct ChunkDecoder {
    state: ChunkState,
    /// Extension and trailer bytes seen so far (bounded).
    overhead: usize,
}

#[derive(Debug, Default, Clone, Copy, PartialEq)]
enum ChunkState {
    /// A chunk-size line's first byte: a hex digit.
    #[default]
    Start,
    /// The size so far and how many digits it had.
    Size(u64, u8),
    /// Spaces or tabs after the size: only `;` may follow.
    SizeSpace(u64),
    /// After `;`: optional spaces, then an extension name.
    ExtBeforeName(u64),
    ExtName(u64),
    /// Spaces after a name: `=`, `;` or the line's end may follow.
    ExtAfterName(u64),
    /// After `=`: optional spaces, then a token or a quoted string.
    ExtBeforeValue(u64),
    ExtToken(u64),
    ExtQuoted(u64),
    /// After a backslash inside a quoted string.
    ExtQuotedPair(u64),
    /// After a value: spaces, `;` or the line's end.
    ExtAfterValue(u64),
    /// The CR of a size line was read; LF must follow.
    SizeLf(u64),
    Data(u64),
    DataCr,
    DataLf,
    /// After the last chunk: the start of a trailer line or the final CRLF.
    TrailerStart,
    TrailerName,
    TrailerValue,
    TrailerLf,
    /// The final CR was read; LF must follow.
    EndLf,
    End,
}

/// What a decoding step found.
#[derive(Debug, PartialEq)]
pub enum Decoded {
    Data(Bytes),
    NeedMore,
    End,
}

/// `tchar` (RFC 9110 §5.6.2): what names and token values are made of.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// `qdtext` (RFC 9110 §5.6.4): what a quoted string holds unescaped.
fn is_qdtext(b: u8) -> bool {
    matches!(b, b'\t' | b' ' | 0x21 | 0x23..=0x5b | 0x5d..=0x7e | 0x80..=0xff)
}

/// What a field value holds: visible bytes, spaces, tabs, obs-text.
fn is_field_byte(b: u8) -> bool {
    matches!(b, b'\t' | b' '..=0x7e | 0x80..=0xff)
}

fn invalid(m: &'static str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, m)
}

impl ChunkDecoder {
    /// Consumes framing bytes from `buf` and returns the next data, or
    /// says more bytes are needed or the body ended.
    pub fn decode(&mut self, buf: &mut BytesMut) -> io::Result<Decoded> {
        use ChunkState::*;
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
            self.state = self.step(b)?;
        }
    }

    /// One framing byte.
    fn step(&mut self, b: u8) -> io::Result<ChunkState> {
        use ChunkState::*;
        let is_space = b == b' ' || b == b'\t';
        Ok(match self.state {
            Start => match hex(b) {
                Some(d) => Size(d, 1),
                None => return Err(invalid("bad chunk size")),
            },
            Size(n, digits) => {
                if let Some(d) = hex(b) {
                    if digits >= MAX_SIZE_DIGITS {
                        return Err(invalid("chunk size has too many digits"));
                    }
                    // 16 digits never overflow.
                    return Ok(Size((n << 4) | d, digits + 1));
                }
                match b {
                    b'\r' => SizeLf(n),
                    b';' => self.extension(ExtBeforeName(n))?,
                    _ if is_space => self.extension(SizeSpace(n))?,
                    _ => return Err(invalid("bad chunk size")),
                }
            }
            SizeSpace(n) => match b {
                b';' => self.extension(ExtBeforeName(n))?,
                _ if is_space => self.extension(SizeSpace(n))?,
                _ => return Err(invalid("bad chunk size line")),
            },
            ExtBeforeName(n) => match b {
                _ if is_space => self.extension(ExtBeforeName(n))?,
                _ if is_tchar(b) => self.extension(ExtName(n))?,
                _ => return Err(invalid("bad chunk extension")),
            },
            ExtName(n) | ExtAfterName(n) => match b {
                b'\r' => SizeLf(n),
                b';' => self.extension(ExtBeforeName(n))?,
                b'=' => self.extension(ExtBeforeValue(n))?,
                _ if is_space => self.extension(ExtAfterName(n))?,
                _ if is_tchar(b) && self.state == ExtName(n) => self.extension(ExtName(n))?,
                _ => return Err(invalid("bad chunk extension")),
            },
            ExtBeforeValue(n) => match b {
                b'"' => self.extension(ExtQuoted(n))?,
                _ if is_space => self.extension(ExtBeforeValue(n))?,
                _ if is_tchar(b) => self.extension(ExtToken(n))?,
                _ => return Err(invalid("bad chunk extension")),
            },
            ExtToken(n) | ExtAfterValue(n) => match b {
                b'\r' => SizeLf(n),
                b';' => self.extension(ExtBeforeName(n))?,
                _ if is_space => self.extension(ExtAfterValue(n))?,
                _ if is_tchar(b) && self.state == ExtToken(n) => self.extension(ExtToken(n))?,
                _ => return Err(invalid("bad chunk extension")),
            },
            ExtQuoted(n) => match b {
                b'"' => self.extension(ExtAfterValue(n))?,
                b'\\' => self.extension(ExtQuotedPair(n))?,
                _ if is_qdtext(b) => self.extension(ExtQuoted(n))?,
                _ => return Err(invalid("bad chunk extension")),
            },
            ExtQuotedPair(n) => match b {
                b'\t' | b' '..=0x7e | 0x80..=0xff => self.extension(ExtQuoted(n))?,
                _ => return Err(invalid("bad chunk extension")),
            },
            SizeLf(n) => match b {
                b'\n' if n == 0 => TrailerStart,
                b'\n' => Data(n),
                _ => return Err(invalid("chunk size line not ended by CRLF")),
            },
            DataCr => match b {
                b'\r' => DataLf,
                _ => return Err(invalid("chunk data not followed by CRLF")),
            },
            DataLf => match b {
                b'\n' => Start,
                _ => return Err(invalid("chunk data not followed by CRLF")),
            },
            TrailerStart => match b {
                b'\r' => EndLf,
                _ if is_tchar(b) => self.extension(TrailerName)?,
                _ => return Err(invalid("bad trailer line")),
            },
            TrailerName => match b {
                b':' => self.extension(TrailerValue)?,
                _ if is_tchar(b) => self.extension(TrailerName)?,
                _ => return Err(invalid("bad trailer line")),
            },
            TrailerValue => match b {
                b'\r' => TrailerLf,
                _ if is_field_byte(b) => self.extension(TrailerValue)?,
                _ => return Err(invalid("bad trailer line")),
            },
            TrailerLf => match b {
                b'\n' => TrailerStart,
                _ => return Err(invalid("trailer line not ended by CRLF")),
            },
            EndLf => match b {
                b'\n' => End,
                _ => return Err(invalid("chunked body not ended by CRLF")),
            },
            Data(_) | End => unreachable!("handled by decode"),
        })
    }

    /// Counts one extension or trailer byte against the cap and moves to
    /// `next`.
    fn extension(&mut self, next: ChunkState) -> io::Result<ChunkState> {
        self.overhead += 1;
        if self.overhead > MAX_CHUNK_OVERHEAD {
            return Err(invalid("chunk extensions or trailers too large"));
        }
        Ok(next)
    }
}

fn hex(b: u8) -> Option<u64> {
    char::from(b).to_digit(16).map(u64::from)
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
        let body = b"5;ext=1\r\nhello\r\nA \t; a ; b = \"q\\\"d\" ;c=t\r\n, chunked!\r\n0\r\nX-Trailer: yes\r\nY:\r\n\r\n";
        for step in [1, 2, 3, 7, body.len()] {
            let (out, ended) = decode_all(body, step).unwrap();
            assert_eq!(out, b"hello, chunked!", "step {step}");
            assert!(ended, "step {step}");
        }
        let (out, ended) = decode_all(b"0\r\n\r\n", 1).unwrap();
        assert!(out.is_empty() && ended);
        // Sixteen digits, leading zeros included, are still a size.
        let (out, ended) = decode_all(b"0000000000000003\r\nabc\r\n0000\r\n\r\n", 1).unwrap();
        assert_eq!((out.as_slice(), ended), (&b"abc"[..], true));
        // Bytes after the end are the next message's, left in the buffer.
        let mut dec = ChunkDecoder::default();
        let mut buf = BytesMut::from(&b"0\r\n\r\nGET /"[..]);
        assert_eq!(dec.decode(&mut buf).unwrap(), Decoded::End);
        assert_eq!(&buf[..], b"GET /");
    }

    #[test]
    fn bare_line_ends_are_errors_everywhere() {
        for bad in [
            &b"3\nabc\r\n0\r\n\r\n"[..],
            b"3\r\nabc\n0\r\n\r\n",
            b"3\r\nabc\r\n0\n\r\n",
            b"3\r\nabc\r\n0\r\n\n",
            b"0\r\nX: 1\n\r\n",
            b"3\rabc\r\n",
            b"3\r\nabc\rX",
            b"0\r\n\rX",
            b"0\r\nX: 1\rZ",
            b"3;a\nabc",
            b"3;a=\"x\ny\"\r\n",
        ] {
            assert!(
                decode_all(bad, 1).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
            assert!(decode_all(bad, bad.len()).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn sizes_and_extensions_follow_the_grammar() {
        for bad in [
            &b"g\r\n"[..],
            b"\r\n",
            b"5\r\nhelloXX",
            b"-1\r\n",
            b"+1\r\n",
            b"0x1\r\n",
            b"1 \r\n",
            b"1 x\r\n",
            b"1x\r\n",
            b"1;\r\n",
            b"1; \r\n",
            b"1;=v\r\n",
            b"1;a=\r\n",
            b"1;a b\r\n",
            b"1;a=b c\r\n",
            b"1;a=\"unterminated\r\n",
            b"1;a=\"x\x00\"\r\n",
            b"1;a\x01\r\n",
            b"1;a=b\x7f\r\n",
            // Seventeen digits, even all zeros.
            b"00000000000000001\r\n",
            b"ffffffffffffffff0\r\n",
            // Trailers are header fields.
            b"0\r\n: x\r\n\r\n",
            b"0\r\nX : 1\r\n\r\n",
            b"0\r\n X: 1\r\n\r\n",
            b"0\r\nX 1\r\n\r\n",
            b"0\r\nX: a\x00b\r\n\r\n",
        ] {
            assert!(
                decode_all(bad, 1).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
            assert!(decode_all(bad, bad.len()).is_err(), "{bad:?}");
        }
        // A never-ending run of zeros is refused, not read forever.
        let zeros = vec![b'0'; 1 << 20];
        assert!(decode_all(&zeros, 4096).is_err());
        // The largest size parses (and then waits for its data).
        assert_eq!(
            decode_all(b"ffffffffffffffff\r\nab", 1).unwrap(),
            (b"ab".to_vec(), false)
        );
    }

    #[test]
    fn extensions_and_trailers_are_bounded() {
        let name = vec![b'x'; MAX_CHUNK_OVERHEAD + 1];
        let huge = [b"1;".as_slice(), &name].concat();
        assert!(decode_all(&huge, 4096).is_err());
        let spaces = [b"1".as_slice(), &vec![b' '; MAX_CHUNK_OVERHEAD + 1]].concat();
        assert!(decode_all(&spaces, 4096).is_err());
        let trailer = [b"0\r\nX: ".as_slice(), &name].concat();
        assert!(decode_all(&trailer, 4096).is_err());
        // Many small ones add up across chunks.
        let many: Vec<u8> = (0..MAX_CHUNK_OVERHEAD / 8 + 1)
            .flat_map(|_| b"1;abcdefg\r\nx\r\n".to_vec())
            .collect();
        assert!(decode_all(&many, 4096).is_err());
    }
}
