//! The differential test's cases: request heads and chunked bodies, valid,
//! borderline and hostile, generated from a fixed seed so every run sends
//! the same bytes. Each case is one variant (its tag, `family/name`)
//! applied to a randomly dressed base request (method, target, benign
//! fields, body bytes, chunk splits), so a variant is tried in several
//! surroundings; hand-written smuggling vectors and plain valid requests
//! are added as their own families.

use std::collections::HashSet;

/// A well-formed request sent after every case on the same connection: a
/// parser that found the case's end where the others did answers it too.
pub const SENTINEL: &[u8] = b"GET /sentinel HTTP/1.1\r\nHost: x\r\n\r\n";

/// The fixed seed; change it only to widen the search, then pin again.
const SEED: u64 = 0x5eed_d1ff_0001;

/// How many dressed instances of each variant (duplicates are dropped).
const INSTANCES: usize = 3;

/// How many instances of each plain valid family.
const VALID_INSTANCES: usize = 40;

/// One case: the bytes of one (possibly broken) request.
pub struct Case {
    pub id: usize,
    /// `family/variant`, what the deliberate-difference list matches on.
    pub tag: String,
    pub bytes: Vec<u8>,
}

/// SplitMix64: small, deterministic across platforms and crate versions.
pub struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n > 0`).
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// A number in `lo..=hi`.
    fn between(&mut self, lo: usize, hi: usize) -> usize {
        lo + self.below(hi - lo + 1)
    }

    fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[self.below(xs.len())]
    }

    fn coin(&mut self) -> bool {
        self.next() & 1 == 1
    }

    /// A short lower-case word.
    fn word(&mut self) -> String {
        let len = self.between(1, 8);
        (0..len)
            .map(|_| char::from(b'a' + self.below(26) as u8))
            .collect()
    }

    /// Body bytes: mostly text, sometimes CR, LF, NUL and high bytes (a
    /// body may hold anything, and framing must not care).
    fn body(&mut self) -> Vec<u8> {
        let len = self.between(1, 48);
        (0..len)
            .map(|_| match self.below(10) {
                0 => *self.pick(b"\r\n\0\xff0;"),
                _ => b'a' + self.below(26) as u8,
            })
            .collect()
    }
}

/// One request as its parts, so a variant can change any of them.
#[derive(Clone)]
struct Msg {
    line: Vec<u8>,
    fields: Vec<Vec<u8>>,
    body: Vec<u8>,
}

impl Msg {
    fn render(&self) -> Vec<u8> {
        self.render_with(b"\r\n")
    }

    /// With `eol` ending every line of the head.
    fn render_with(&self, eol: &[u8]) -> Vec<u8> {
        let mut out = self.line.clone();
        out.extend_from_slice(eol);
        for f in &self.fields {
            out.extend_from_slice(f);
            out.extend_from_slice(eol);
        }
        out.extend_from_slice(eol);
        out.extend_from_slice(&self.body);
        out
    }

    /// Adds a field at a random place among the others.
    fn insert(&mut self, rng: &mut Rng, field: impl AsRef<[u8]>) {
        let at = rng.below(self.fields.len() + 1);
        self.fields.insert(at, field.as_ref().to_vec());
    }

    /// Adds fields, in this order, together at a random place.
    fn insert_all(&mut self, rng: &mut Rng, fields: &[String]) {
        let at = rng.below(self.fields.len() + 1);
        for (i, f) in fields.iter().enumerate() {
            self.fields.insert(at + i, f.as_bytes().to_vec());
        }
    }

    /// Adds a field after all the others.
    fn push(&mut self, field: impl AsRef<[u8]>) {
        self.fields.push(field.as_ref().to_vec());
    }

    /// Drops every field whose name is `name` (any case).
    fn remove(&mut self, name: &str) {
        self.fields.retain(|f| {
            !f.get(..name.len() + 1).is_some_and(|p| {
                p[..name.len()].eq_ignore_ascii_case(name.as_bytes()) && p[name.len()] == b':'
            })
        });
    }

    fn set_line(&mut self, method: &str, target: &[u8], version: &str) {
        let mut line = method.as_bytes().to_vec();
        line.push(b' ');
        line.extend_from_slice(target);
        line.push(b' ');
        line.extend_from_slice(version.as_bytes());
        self.line = line;
    }
}

/// An origin-form target: `/r/word`, sometimes with a query.
fn target(rng: &mut Rng) -> Vec<u8> {
    let mut t = format!("/r/{}", rng.word());
    if rng.coin() {
        t.push_str(&format!("/{}", rng.word()));
    }
    if rng.coin() {
        t.push_str(&format!("?{}={}", rng.word(), rng.word()));
    }
    t.into_bytes()
}

/// A body-less request with `Host` and a few benign fields.
fn get(rng: &mut Rng) -> Msg {
    let method = *rng.pick(&["GET", "GET", "DELETE", "OPTIONS"]);
    let mut m = Msg {
        line: Vec::new(),
        fields: Vec::new(),
        body: Vec::new(),
    };
    m.set_line(method, &target(rng), "HTTP/1.1");
    let benign = [
        "User-Agent: differential/1".to_string(),
        "Accept: */*".to_string(),
        format!("X-Trace-{}: {}", rng.below(100), rng.word()),
        "Cache-Control: no-cache".to_string(),
        format!("Cookie: {}={}", rng.word(), rng.word()),
    ];
    for _ in 0..rng.below(4) {
        let f = rng.pick(&benign).clone();
        m.push(f);
    }
    m.insert(rng, "Host: example.test");
    m
}

/// A request with a method that carries a body, not yet framed.
fn unframed(rng: &mut Rng) -> (Msg, Vec<u8>) {
    let mut m = get(rng);
    let method = *rng.pick(&["POST", "PUT", "PATCH"]);
    let rest = m.line[m.line.iter().position(|b| *b == b' ').unwrap_or(0)..].to_vec();
    m.line = [method.as_bytes(), &rest].concat();
    (m, rng.body())
}

/// A request whose body is framed by `Content-Length`.
fn with_length(rng: &mut Rng) -> Msg {
    let (mut m, data) = unframed(rng);
    m.insert(rng, format!("Content-Length: {}", data.len()));
    m.body = data;
    m
}

/// A request framed as chunked, its chunks written by `encode`.
fn with_chunks(rng: &mut Rng, encode: impl FnOnce(&mut Rng, &[u8]) -> Vec<u8>) -> Msg {
    let (mut m, data) = unframed(rng);
    m.insert(rng, "Transfer-Encoding: chunked");
    m.body = encode(rng, &data);
    m
}

/// `data` cut into random pieces, each written by `chunk(size, piece)`.
fn pieces(rng: &mut Rng, data: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut rest = data;
    while !rest.is_empty() {
        let n = rng.between(1, rest.len());
        out.push(rest[..n].to_vec());
        rest = &rest[n..];
    }
    out
}

/// A size in hex, in random letter case.
fn hex(rng: &mut Rng, n: usize) -> String {
    if rng.coin() {
        format!("{n:x}")
    } else {
        format!("{n:X}")
    }
}

/// A valid chunked body.
fn chunks(rng: &mut Rng, data: &[u8]) -> Vec<u8> {
    chunks_with(
        rng,
        data,
        |rng, size| format!("{}\r\n", hex(rng, size)),
        b"0\r\n\r\n",
    )
}

/// A chunked body whose every size line is written by `size_line` (CRLF
/// included) and which ends with `last` (last chunk, trailers, final CRLF).
fn chunks_with(
    rng: &mut Rng,
    data: &[u8],
    mut size_line: impl FnMut(&mut Rng, usize) -> String,
    last: &[u8],
) -> Vec<u8> {
    let mut out = Vec::new();
    for piece in pieces(rng, data) {
        out.extend_from_slice(size_line(rng, piece.len()).as_bytes());
        out.extend_from_slice(&piece);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(last);
    out
}

/// A chunked body of one chunk written out by hand: `size_line`, the data,
/// then `after_data` and `last`.
fn one_chunk(data: &[u8], size_line: &str, after_data: &[u8], last: &[u8]) -> Vec<u8> {
    [size_line.as_bytes(), data, after_data, last].concat()
}

type Variant = (String, Box<dyn Fn(&mut Rng) -> Vec<u8>>);

fn variant(tag: &str, f: impl Fn(&mut Rng) -> Vec<u8> + 'static) -> Variant {
    (tag.to_string(), Box::new(f))
}

/// The request line: methods, spacing, targets, versions.
fn request_line() -> Vec<Variant> {
    let mut v = Vec::new();
    for method in ["GET", "DELETE", "OPTIONS", "POST", "PUT", "PATCH"] {
        v.push(variant(&format!("line/method/{method}"), move |rng| {
            let mut m = with_length(rng);
            m.set_line(method, &target(rng), "HTTP/1.1");
            m.render()
        }));
    }
    for (name, method) in [
        ("unknown", "FOO"),
        ("purge", "PURGE"),
        ("lower-case", "get"),
        ("at-sign", "G@T"),
        ("nul", "GET\0"),
        ("quoted", "\"GET\""),
        ("empty", ""),
    ] {
        v.push(variant(&format!("line/method/{name}"), move |rng| {
            let mut m = get(rng);
            m.set_line(method, &target(rng), "HTTP/1.1");
            m.render()
        }));
    }
    for (name, line) in [
        ("double-space", "GET  /r/a HTTP/1.1"),
        ("tabs", "GET\t/r/a\tHTTP/1.1"),
        ("trailing-space", "GET /r/a HTTP/1.1 "),
        ("leading-space", " GET /r/a HTTP/1.1"),
    ] {
        v.push(variant(&format!("line/space/{name}"), move |rng| {
            let mut m = get(rng);
            m.line = line.as_bytes().to_vec();
            m.render()
        }));
    }
    for (name, prefix) in [
        ("crlf", &b"\r\n"[..]),
        ("crlf-twice", b"\r\n\r\n"),
        ("lf", b"\n"),
    ] {
        v.push(variant(&format!("line/leading/{name}"), move |rng| {
            [prefix, &get(rng).render()].concat()
        }));
    }
    let targets: [(&str, &[u8]); 24] = [
        ("origin-query", b"/r/a?b=c&d=&e"),
        ("percent", b"/r/%7Euser/%20x"),
        ("absolute", b"http://example.test/r/a"),
        ("absolute-other-host", b"http://other.test/r/a"),
        ("absolute-upper-scheme", b"HTTP://EXAMPLE.TEST/r/a"),
        ("absolute-https", b"https://example.test/r/a"),
        ("absolute-no-path", b"http://example.test"),
        ("absolute-userinfo", b"http://u:p@example.test/r/a"),
        ("asterisk", b"*"),
        ("authority", b"example.test:80"),
        ("fragment", b"/r/a#frag"),
        ("space-inside", b"/r/a b"),
        ("high-bytes", b"/r/\xc3\xa9\xff"),
        ("control", b"/r/a\x01b"),
        ("del", b"/r/a\x7fb"),
        ("backslash", b"/r/a\\b"),
        ("unsafe-chars", b"/r/a\"{}|^`<>"),
        ("bad-percent", b"/r/%zz"),
        ("double-slash", b"//r/a"),
        ("dot-segment", b"/r/../a"),
        ("encoded-dot-segment", b"/r/%2e%2e/a"),
        ("no-slash", b"r/a"),
        ("nul", b"/r/a\0b"),
        ("tab", b"/r/a\tb"),
    ];
    for (name, t) in targets {
        v.push(variant(&format!("line/target/{name}"), move |rng| {
            let mut m = get(rng);
            let method = if t == b"*" { "OPTIONS" } else { "GET" };
            m.set_line(method, t, "HTTP/1.1");
            m.render()
        }));
    }
    for (name, len) in [("long-4k", 4000), ("long-9k", 9000), ("long-16k", 16_000)] {
        v.push(variant(&format!("line/target/{name}"), move |rng| {
            let mut m = get(rng);
            let mut t = b"/r/".to_vec();
            t.resize(len, b'a');
            m.set_line("GET", &t, "HTTP/1.1");
            m.render()
        }));
    }
    for (name, version) in [
        ("1.0", "HTTP/1.0"),
        ("1.1", "HTTP/1.1"),
        ("1.2", "HTTP/1.2"),
        ("1.9", "HTTP/1.9"),
        ("2.0", "HTTP/2.0"),
        ("3.0", "HTTP/3.0"),
        ("0.9", "HTTP/0.9"),
        ("9.9", "HTTP/9.9"),
        ("1.10", "HTTP/1.10"),
        ("01.1", "HTTP/01.1"),
        ("lower-case", "http/1.1"),
        ("no-minor", "HTTP/1"),
        ("junk-after", "HTTP/1.1x"),
        ("space-inside", "HTTP/ 1.1"),
        ("missing", ""),
    ] {
        v.push(variant(&format!("line/version/{name}"), move |rng| {
            let mut m = with_length(rng);
            let method =
                std::str::from_utf8(&m.line[..m.line.iter().position(|b| *b == b' ').unwrap_or(0)])
                    .unwrap_or("POST")
                    .to_string();
            if version.is_empty() {
                m.line = format!("{method} /r/a").into_bytes();
            } else {
                m.set_line(&method, &target(rng), version);
            }
            m.render()
        }));
    }
    v
}

/// Header fields: Host, folding, whitespace, line ends, odd bytes, sizes.
fn fields() -> Vec<Variant> {
    let mut v = Vec::new();
    let hosts: [(&str, &[&str]); 10] = [
        ("missing", &[]),
        (
            "duplicate-same",
            &["Host: example.test", "Host: example.test"],
        ),
        (
            "duplicate-different",
            &["Host: example.test", "Host: other.test"],
        ),
        ("empty", &["Host:"]),
        ("space-inside", &["Host: exa mple.test"]),
        ("bad-port", &["Host: example.test:http"]),
        ("ipv6", &["Host: [::1]:8080"]),
        ("userinfo", &["Host: user@example.test"]),
        ("list", &["Host: example.test, other.test"]),
        ("upper-case-name", &["HOST: example.test"]),
    ];
    for (name, host_fields) in hosts {
        let host_fields: Vec<String> = host_fields.iter().map(|s| s.to_string()).collect();
        v.push(variant(&format!("field/host/{name}"), move |rng| {
            let mut m = get(rng);
            m.remove("host");
            m.insert_all(rng, &host_fields);
            m.render()
        }));
    }
    v.push(variant("field/host/missing-http10", |rng| {
        let mut m = get(rng);
        m.remove("host");
        let t = target(rng);
        m.set_line("GET", &t, "HTTP/1.0");
        m.render()
    }));
    v.push(variant("field/host/absolute-target-wins", |rng| {
        let mut m = with_length(rng);
        m.remove("host");
        m.insert(rng, "Host: other.test");
        m.set_line("POST", b"http://example.test/r/a", "HTTP/1.1");
        m.render()
    }));
    let odd_fields: [(&str, &[u8]); 28] = [
        ("obs-fold-space", b"X-Folded: a\r\n b"),
        ("obs-fold-tab", b"X-Folded: a\r\n\tb"),
        ("ws-before-colon", b"X-Spaced : b"),
        ("tab-before-colon", b"X-Spaced\t: b"),
        ("ws-inside-name", b"X Spaced: b"),
        ("name-paren", b"X(A): b"),
        ("name-empty", b": b"),
        ("no-colon", b"Bad Header"),
        ("colon-only", b":"),
        ("name-high-bytes", b"X-\xc3\xa9: b"),
        ("name-underscore", b"X_Under: b"),
        ("name-nul", b"X-\0: b"),
        ("value-empty", b"X-Empty:"),
        ("value-ows", b"X-Ows:   b \t"),
        ("value-tab", b"X-Tab: a\tb"),
        ("value-obs-text", b"X-Text: caf\xe9 \x80\xff"),
        ("value-utf8", b"X-Text: caf\xc3\xa9"),
        ("value-nul", b"X-Nul: a\0b"),
        ("value-ctl", b"X-Ctl: a\x01b"),
        ("value-del", b"X-Del: a\x7fb"),
        ("value-vtab", b"X-Vt: a\x0bb"),
        ("value-formfeed", b"X-Ff: a\x0cb"),
        ("value-bare-cr", b"X-Cr: a\rb"),
        ("value-quoted-crlf", b"X-Q: \"a\r\nb\""),
        ("bare-lf-line", b"X-Lf: a\nX-After: b"),
        ("bare-cr-line", b"X-Cr: a\rX-After: b"),
        ("cr-cr-lf", b"X-Crcr: a\r"),
        ("value-trailing-cr", b"X-Cr: a \r"),
    ];
    for (name, field) in odd_fields {
        v.push(variant(&format!("field/{name}"), move |rng| {
            let mut m = get(rng);
            m.insert(rng, field);
            m.render()
        }));
    }
    let folded_framing: [(&str, &str); 5] = [
        ("obs-fold-host", "Host: example.test\r\n .other"),
        ("ws-before-colon-host", "Host : example.test"),
        ("obs-fold-content-length", "Content-Length:\r\n {n}"),
        ("ws-before-colon-content-length", "Content-Length : {n}"),
        (
            "obs-fold-transfer-encoding",
            "Transfer-Encoding:\r\n chunked",
        ),
    ];
    for (name, field) in folded_framing {
        v.push(variant(&format!("field/{name}"), move |rng| {
            let (mut m, data) = unframed(rng);
            if field.starts_with("Host") {
                m.remove("host");
            }
            if field.starts_with("Transfer") {
                m.insert(rng, field);
                m.body = chunks(rng, &data);
            } else if field.starts_with("Content") {
                m.insert(rng, field.replace("{n}", &data.len().to_string()));
                m.body = data;
            } else {
                m.insert(rng, field);
                m.insert(rng, format!("Content-Length: {}", data.len()));
                m.body = data;
            }
            m.render()
        }));
    }
    v.push(variant("field/ws-before-colon-transfer-encoding", |rng| {
        let (mut m, data) = unframed(rng);
        m.insert(rng, "Transfer-Encoding : chunked");
        m.body = chunks(rng, &data);
        m.render()
    }));
    v.push(variant("field/obs-fold-first-line", |rng| {
        let mut m = get(rng);
        m.fields.insert(0, b" X-Leading: space".to_vec());
        m.render()
    }));
    for (name, eol) in [("bare-lf-all", &b"\n"[..]), ("bare-cr-all", b"\r")] {
        v.push(variant(&format!("field/{name}"), move |rng| {
            get(rng).render_with(eol)
        }));
    }
    v.push(variant("field/bare-lf-head-end", |rng| {
        let mut out = get(rng).render();
        out.truncate(out.len() - 2);
        out.push(b'\n');
        out
    }));
    v.push(variant("field/bare-lf-request-line", |rng| {
        let m = get(rng);
        let mut out = m.line.clone();
        out.push(b'\n');
        out.extend_from_slice(
            &Msg {
                line: Vec::new(),
                ..m
            }
            .render()[2..],
        );
        out
    }));
    for (name, name_len, value_len) in [
        ("long-value-4k", 5, 4000),
        ("long-value-12k", 5, 12_000),
        ("long-name-4k", 4000, 1),
    ] {
        v.push(variant(&format!("field/{name}"), move |rng| {
            let mut m = get(rng);
            let mut f = vec![b'X'; name_len];
            f.extend_from_slice(b": ");
            f.resize(name_len + 2 + value_len, b'v');
            m.insert(rng, f);
            m.render()
        }));
    }
    for count in [50, 99, 120] {
        v.push(variant(&format!("field/many-{count}"), move |rng| {
            let mut m = get(rng);
            m.fields.truncate(0);
            m.push("Host: example.test");
            for i in 1..count {
                m.push(format!("X-Many-{i}: {i}"));
            }
            m.render()
        }));
    }
    v
}

/// `Content-Length` and `Transfer-Encoding`, alone and together.
fn framing() -> Vec<Variant> {
    let mut v = Vec::new();
    // `{n}` is the body's length, `{m}` another length.
    let lengths: [(&str, &[&str]); 21] = [
        ("valid", &["Content-Length: {n}"]),
        ("ows", &["Content-Length:   {n}  "]),
        ("plus", &["Content-Length: +{n}"]),
        ("minus", &["Content-Length: -{n}"]),
        ("leading-zeros", &["Content-Length: 00{n}"]),
        ("hex", &["Content-Length: 0x{n}"]),
        ("decimal-point", &["Content-Length: {n}.0"]),
        ("list-equal", &["Content-Length: {n}, {n}"]),
        ("list-equal-no-space", &["Content-Length: {n},{n}"]),
        ("list-different", &["Content-Length: {n}, {m}"]),
        ("list-trailing-comma", &["Content-Length: {n},"]),
        ("list-empty-element", &["Content-Length: {n},,{n}"]),
        (
            "fields-equal",
            &["Content-Length: {n}", "Content-Length: {n}"],
        ),
        (
            "fields-different",
            &["Content-Length: {n}", "Content-Length: {m}"],
        ),
        ("empty", &["Content-Length:"]),
        ("space-inside", &["Content-Length: 1 {n}"]),
        ("overflow", &["Content-Length: 99999999999999999999"]),
        ("u64-max", &["Content-Length: 18446744073709551615"]),
        ("over-max-body", &["Content-Length: 20000000"]),
        ("longer-than-body", &["Content-Length: {m}"]),
        ("upper-case-name", &["CONTENT-LENGTH: {n}"]),
    ];
    for (name, fields) in lengths {
        v.push(variant(&format!("cl/{name}"), move |rng| {
            let (mut m, data) = unframed(rng);
            let n = data.len();
            // `{m}` is always longer, so a parser that takes it swallows
            // the sentinel.
            let other = n + rng.between(1, 64);
            let fields: Vec<String> = fields
                .iter()
                .map(|f| {
                    f.replace("{n}", &n.to_string())
                        .replace("{m}", &other.to_string())
                })
                .collect();
            m.insert_all(rng, &fields);
            m.body = data;
            m.render()
        }));
    }
    v.push(variant("cl/shorter-than-body", |rng| {
        let (mut m, data) = unframed(rng);
        let n = rng.below(data.len());
        m.insert(rng, format!("Content-Length: {n}"));
        m.body = data;
        m.render()
    }));
    v.push(variant("cl/zero", |rng| {
        let mut m = get(rng);
        m.insert(rng, "Content-Length: 0");
        m.render()
    }));
    v.push(variant("cl/on-get", |rng| {
        let mut m = with_length(rng);
        let t = target(rng);
        m.set_line("GET", &t, "HTTP/1.1");
        m.render()
    }));
    v.push(variant("cl/http10", |rng| {
        let mut m = with_length(rng);
        let t = target(rng);
        m.set_line("POST", &t, "HTTP/1.0");
        m.push("Connection: keep-alive");
        m.render()
    }));
    let codings: [(&str, &[&str]); 22] = [
        ("chunked", &["chunked"]),
        ("upper-case", &["CHUNKED"]),
        ("mixed-case", &["ChUnKeD"]),
        ("ows", &["  chunked  "]),
        ("gzip-chunked", &["gzip, chunked"]),
        ("chunked-gzip", &["chunked, gzip"]),
        ("chunked-chunked", &["chunked, chunked"]),
        ("identity", &["identity"]),
        ("identity-chunked", &["identity, chunked"]),
        ("gzip", &["gzip"]),
        ("fields-gzip-then-chunked", &["gzip", "chunked"]),
        ("fields-chunked-then-gzip", &["chunked", "gzip"]),
        ("fields-chunked-twice", &["chunked", "chunked"]),
        ("trailing-comma", &["chunked,"]),
        ("leading-comma", &[",chunked"]),
        ("xchunked", &["xchunked"]),
        ("chunked-vtab", &["chunked\x0b"]),
        ("chunked-param", &["chunked;q=1"]),
        ("quoted", &["\"chunked\""]),
        ("empty", &[""]),
        ("unknown", &["foo, chunked"]),
        ("tab-before", &["\tchunked"]),
    ];
    for (name, values) in codings {
        v.push(variant(&format!("te/{name}"), move |rng| {
            let (mut m, data) = unframed(rng);
            let fields: Vec<String> = values
                .iter()
                .map(|v| format!("Transfer-Encoding: {v}"))
                .collect();
            m.insert_all(rng, &fields);
            m.body = chunks(rng, &data);
            m.render()
        }));
    }
    v.push(variant("te/http10", |rng| {
        let mut m = with_chunks(rng, chunks);
        let t = target(rng);
        m.set_line("POST", &t, "HTTP/1.0");
        m.push("Connection: keep-alive");
        m.render()
    }));
    v.push(variant("te/on-get", |rng| {
        let mut m = with_chunks(rng, chunks);
        let t = target(rng);
        m.set_line("GET", &t, "HTTP/1.1");
        m.render()
    }));
    // Both at once; the body is chunked, `Content-Length` says `{n}` (the
    // chunked body's own length), `{d}` (the data's) or 0.
    for (name, cl, te_first) in [
        ("cl-first", "{n}", false),
        ("te-first", "{n}", true),
        ("cl-of-data", "{d}", false),
        ("cl-zero", "0", true),
    ] {
        v.push(variant(&format!("cl+te/{name}"), move |rng| {
            let (mut m, data) = unframed(rng);
            m.body = chunks(rng, &data);
            let cl = cl
                .replace("{n}", &m.body.len().to_string())
                .replace("{d}", &data.len().to_string());
            let te = "Transfer-Encoding: chunked".to_string();
            let cl = format!("Content-Length: {cl}");
            if te_first {
                m.push(te);
                m.push(cl);
            } else {
                m.push(cl);
                m.push(te);
            }
            m.render()
        }));
    }
    v.push(variant("cl+te/te-gzip", |rng| {
        let (mut m, data) = unframed(rng);
        m.insert(rng, format!("Content-Length: {}", data.len()));
        m.insert(rng, "Transfer-Encoding: gzip");
        m.body = data;
        m.render()
    }));
    v
}

/// Chunked bodies: sizes, extensions, line ends, last chunk, trailers.
fn chunked() -> Vec<Variant> {
    let mut v = Vec::new();
    type SizeLine = fn(&mut Rng, usize) -> String;
    let size_lines: [(&str, SizeLine); 20] = [
        ("valid", |rng, n| format!("{}\r\n", hex(rng, n))),
        ("leading-zeros", |_, n| format!("000{n:x}\r\n")),
        ("16-digits", |_, n| format!("{n:016x}\r\n")),
        ("17-digits", |_, n| format!("{n:017x}\r\n")),
        ("ext", |_, n| format!("{n:x};name=value\r\n")),
        ("ext-quoted", |_, n| format!("{n:x};name=\"a b;c\"\r\n")),
        ("ext-name-only", |_, n| format!("{n:x};name\r\n")),
        ("ext-several", |_, n| format!("{n:x};a=1;b;c=\"d\"\r\n")),
        ("ext-bws", |_, n| format!("{n:x} ;name=value\r\n")),
        ("ext-bws-tab", |_, n| format!("{n:x}\t;name\r\n")),
        ("ext-no-semicolon", |_, n| format!("{n:x} name\r\n")),
        ("ext-empty", |_, n| format!("{n:x};\r\n")),
        ("trailing-space", |_, n| format!("{n:x} \r\n")),
        ("junk-after-size", |_, n| format!("{n:x}x\r\n")),
        ("bare-lf", |_, n| format!("{n:x}\n")),
        ("bare-cr", |_, n| format!("{n:x}\r")),
        ("negative", |_, n| format!("-{n:x}\r\n")),
        ("hex-prefix", |_, n| format!("0x{n:x}\r\n")),
        ("plus", |_, n| format!("+{n:x}\r\n")),
        ("ext-with-bare-lf", |_, n| format!("{n:x};a\nb\r\n")),
    ];
    for (name, size_line) in size_lines {
        v.push(variant(&format!("chunk/size/{name}"), move |rng| {
            with_chunks(rng, |rng, data| {
                chunks_with(rng, data, size_line, b"0\r\n\r\n")
            })
            .render()
        }));
    }
    let after_data: [(&str, &[u8]); 5] = [
        ("bare-lf", b"\n"),
        ("bare-cr", b"\r"),
        ("missing", b""),
        ("extra-byte", b"x\r\n"),
        ("lf-cr", b"\n\r"),
    ];
    for (name, after) in after_data {
        v.push(variant(&format!("chunk/after-data/{name}"), move |rng| {
            with_chunks(rng, |_, data| {
                one_chunk(data, &format!("{:x}\r\n", data.len()), after, b"0\r\n\r\n")
            })
            .render()
        }));
    }
    v.push(variant("chunk/size/empty-line", |rng| {
        with_chunks(rng, |_, data| {
            one_chunk(
                data,
                &format!("\r\n{:x}\r\n", data.len()),
                b"\r\n",
                b"0\r\n\r\n",
            )
        })
        .render()
    }));
    v.push(variant("chunk/size/smaller-than-data", |rng| {
        with_chunks(rng, |_, data| {
            let data = [data, b"zz"].concat();
            one_chunk(
                &data,
                &format!("{:x}\r\n", data.len() - 2),
                b"\r\n",
                b"0\r\n\r\n",
            )
        })
        .render()
    }));
    v.push(variant("chunk/size/overflow", |rng| {
        with_chunks(rng, |_, data| {
            one_chunk(data, "1ffffffffffffffff\r\n", b"\r\n", b"0\r\n\r\n")
        })
        .render()
    }));
    v.push(variant("chunk/size/u64-max", |rng| {
        with_chunks(rng, |_, data| {
            one_chunk(data, "ffffffffffffffff\r\n", b"\r\n", b"0\r\n\r\n")
        })
        .render()
    }));
    let endings: [(&str, &[u8]); 16] = [
        ("valid", b"0\r\n\r\n"),
        ("leading-zeros", b"000\r\n\r\n"),
        ("ext", b"0;name=value\r\n\r\n"),
        ("trailer", b"0\r\nX-Trailer: a\r\n\r\n"),
        (
            "trailers-several",
            b"0\r\nX-A: a\r\nX-B: b\r\nX-C: c\r\n\r\n",
        ),
        ("trailer-content-length", b"0\r\nContent-Length: 5\r\n\r\n"),
        ("trailer-no-colon", b"0\r\nBad Trailer\r\n\r\n"),
        ("trailer-bad-name", b"0\r\nX(A): a\r\n\r\n"),
        ("trailer-obs-fold", b"0\r\nX-A: a\r\n b\r\n\r\n"),
        ("trailer-ws-before-colon", b"0\r\nX-A : a\r\n\r\n"),
        ("trailer-bare-lf", b"0\r\nX-A: a\n\r\n"),
        ("trailer-nul", b"0\r\nX-A: a\0b\r\n\r\n"),
        ("bare-lf", b"0\n\n"),
        ("bare-lf-final", b"0\r\n\n"),
        ("missing-final-crlf", b"0\r\n"),
        ("missing-last-chunk", b""),
    ];
    for (name, last) in endings {
        v.push(variant(&format!("chunk/end/{name}"), move |rng| {
            with_chunks(rng, |rng, data| {
                chunks_with(rng, data, |rng, n| format!("{}\r\n", hex(rng, n)), last)
            })
            .render()
        }));
    }
    v.push(variant("chunk/end/trailer-4k", |rng| {
        with_chunks(rng, |rng, data| {
            let mut last = b"0\r\nX-Long: ".to_vec();
            last.resize(4000, b'v');
            last.extend_from_slice(b"\r\n\r\n");
            chunks_with(rng, data, |rng, n| format!("{}\r\n", hex(rng, n)), &last)
        })
        .render()
    }));
    v.push(variant("chunk/empty-body", |rng| {
        with_chunks(rng, |_, _| b"0\r\n\r\n".to_vec()).render()
    }));
    v
}

/// Persistence: which requests leave the connection open for the sentinel.
fn persistence() -> Vec<Variant> {
    let mut v = Vec::new();
    for (name, version, connection) in [
        ("close", "HTTP/1.1", Some("close")),
        ("close-upper-case", "HTTP/1.1", Some("CLOSE")),
        ("close-in-list", "HTTP/1.1", Some("foo, close")),
        ("keep-alive-http11", "HTTP/1.1", Some("keep-alive")),
        ("http10", "HTTP/1.0", None),
        ("keep-alive-http10", "HTTP/1.0", Some("keep-alive")),
        (
            "close-and-keep-alive-http10",
            "HTTP/1.0",
            Some("keep-alive, close"),
        ),
    ] {
        v.push(variant(&format!("conn/{name}"), move |rng| {
            let mut m = with_length(rng);
            let method = if rng.coin() { "POST" } else { "PUT" };
            let t = target(rng);
            m.set_line(method, &t, version);
            if let Some(c) = connection {
                m.insert(rng, format!("Connection: {c}"));
            }
            m.render()
        }));
    }
    v.push(variant("conn/expect-continue", |rng| {
        let mut m = with_length(rng);
        m.insert(rng, "Expect: 100-continue");
        m.render()
    }));
    v
}

/// Hand-written request-smuggling and borderline vectors, as published
/// for CL.TE / TE.CL / TE.TE desync attacks, each with its own tag.
fn vectors() -> Vec<(String, Vec<u8>)> {
    let h = "POST /r/v HTTP/1.1\r\nHost: example.test\r\n";
    let list: [(&str, String); 14] = [
        (
            "cl-te",
            format!("{h}Content-Length: 13\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nSMUGGLED"),
        ),
        (
            "te-cl",
            format!(
                "{h}Content-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n8\r\nSMUGGLED\r\n0\r\n\r\n"
            ),
        ),
        (
            "te-te-space-before-colon",
            format!(
                "{h}Transfer-Encoding : chunked\r\nContent-Length: 4\r\n\r\n5c\r\nGPOST / HTTP/1.1\r\n\r\n0\r\n\r\n"
            ),
        ),
        (
            "te-te-xchunked",
            format!("{h}Transfer-Encoding: xchunked\r\nContent-Length: 4\r\n\r\n5c\r\n"),
        ),
        (
            "te-te-two-fields",
            format!("{h}Transfer-Encoding: chunked\r\nTransfer-encoding: x\r\n\r\n0\r\n\r\n"),
        ),
        (
            "te-te-leading-space",
            format!("{h} Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n"),
        ),
        (
            "te-te-tab-value",
            format!("{h}Transfer-Encoding:\tchunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"),
        ),
        (
            "te-te-lf-name",
            format!("{h}X: y\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"),
        ),
        (
            "cl-cl",
            format!("{h}Content-Length: 4\r\nContent-Length: 40\r\n\r\nabcd"),
        ),
        (
            "chunk-size-overflow-wrap",
            format!("{h}Transfer-Encoding: chunked\r\n\r\n10000000000000003\r\nabc\r\n0\r\n\r\n"),
        ),
        (
            "chunk-ext-smuggle",
            format!(
                "{h}Transfer-Encoding: chunked\r\n\r\n3;x=\"\r\n0\r\n\r\nGET /evil HTTP/1.1\r\n\"\r\nabc\r\n0\r\n\r\n"
            ),
        ),
        (
            "get-with-body",
            "GET /r/v HTTP/1.1\r\nHost: example.test\r\nContent-Length: 5\r\n\r\nhello".to_string(),
        ),
        (
            "pipelined-twice",
            format!("{h}Content-Length: 1\r\n\r\nxGET /r/w HTTP/1.1\r\nHost: example.test\r\n\r\n"),
        ),
        (
            "lf-only-request",
            "POST /r/v HTTP/1.1\nHost: example.test\nContent-Length: 3\n\nabc".to_string(),
        ),
    ];
    list.into_iter()
        .map(|(name, bytes)| (format!("vector/{name}"), bytes.into_bytes()))
        .collect()
}

/// Every case, in a fixed order with ids from 0.
pub fn all() -> Vec<Case> {
    let mut rng = Rng(SEED);
    let mut seen = HashSet::new();
    let mut out: Vec<(String, Vec<u8>)> = Vec::new();
    let variants = [
        request_line(),
        fields(),
        framing(),
        chunked(),
        persistence(),
    ];
    for (tag, make) in variants.iter().flatten() {
        for _ in 0..INSTANCES {
            out.push((tag.clone(), make(&mut rng)));
        }
    }
    for _ in 0..VALID_INSTANCES {
        out.push(("valid/get".to_string(), get(&mut rng).render()));
        out.push(("valid/length".to_string(), with_length(&mut rng).render()));
        out.push((
            "valid/chunked".to_string(),
            with_chunks(&mut rng, chunks).render(),
        ));
    }
    out.extend(vectors());
    out.into_iter()
        .filter(|(_, bytes)| seen.insert(bytes.clone()))
        .enumerate()
        .map(|(id, (tag, bytes))| Case { id, tag, bytes })
        .collect()
}
