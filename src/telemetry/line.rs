//! How an access-log line is spelled. The line is the same text or JSON
//! that tracing-subscriber's stock formatter writes (tests compare the
//! two byte for byte), built in a reused buffer with a formatter call only
//! for `%` values: the stock formatter costs more per access line than the
//! gateway spends on a whole `mock` request, mostly on ANSI styling objects
//! that paint nothing when colours are off and on a `write!` per field and
//! per timestamp part.
//!
//! Two ways in. [`Access::log`], the gateway's own line, spells its typed
//! fields straight into the binary's log batch when the binary's
//! subscriber is the one in use; under any
//! other subscriber it is a tracing event like any other. [`LineFormat`]
//! spells access events that reach the binary's subscriber as events
//! (about 4k, the event's dispatch and a visit per field included).
//! Only events of the access target, with no span in scope and no
//! colours, take either path; every other line goes to the stock
//! formatter.

use std::cell::{Cell, RefCell};
use std::fmt::{self, Write};
use std::net::IpAddr;
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// The access log's target.
pub const ACCESS_TARGET: &str = "lambdagate::access";

/// An event formatter: access lines spelled here, the rest by `inner`
/// (tracing-subscriber's text or JSON format, whichever `json` says).
pub struct LineFormat<F> {
    inner: F,
    json: bool,
}

impl<F> LineFormat<F> {
    pub fn new(inner: F, json: bool) -> Self {
        Self { inner, json }
    }
}

impl<S, N, F> FormatEvent<S, N> for LineFormat<F>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        let ours = meta.target() == ACCESS_TARGET
            && !writer.has_ansi_escapes()
            && meta.fields().field("message").is_none()
            && ctx.event_scope().is_none();
        let stamp = if ours {
            timestamp(SystemTime::now())
        } else {
            None
        };
        let Some(stamp) = stamp else {
            return self.inner.format_event(ctx, writer, event);
        };
        with_line(|line| {
            spell(line, event, &stamp, self.json)?;
            writer.write_str(line)
        })
    }
}

/// One request's access-log line: its fields, in the order they are logged.
pub struct Access<'a> {
    pub request_id: &'a str,
    pub source_ip: IpAddr,
    pub method: &'a str,
    pub path: &'a str,
    pub route: &'a str,
    pub status: u16,
    pub latency_us: u64,
    pub integration_latency_us: i64,
    pub key_id: &'a str,
    pub principal: &'a str,
    pub bytes_in: u64,
    pub bytes_out: i64,
    pub error: &'a str,
}

impl Access<'_> {
    /// Logs the line: straight into the binary's log batch, spelled here,
    /// when the subscriber in use is the binary's own (the same bytes its
    /// formatter would write, without an event, its dispatch and a visit
    /// per field); else as a
    /// tracing event at INFO, which any subscriber sees. The caller has
    /// checked that access lines are enabled.
    pub fn log(&self) {
        if let Some(json) = direct()
            && let Some(stamp) = timestamp(SystemTime::now())
        {
            with_line(|line| {
                if self.spell(line, &stamp, json).is_ok() {
                    super::append_access_line(line.as_bytes());
                }
            });
            return;
        }
        tracing::info!(
            target: "lambdagate::access",
            request_id = %self.request_id,
            source_ip = %IpText(self.source_ip),
            method = %self.method,
            path = %self.path,
            route = %self.route,
            status = self.status,
            latency_us = self.latency_us,
            integration_latency_us = self.integration_latency_us,
            key_id = self.key_id,
            principal = self.principal,
            bytes_in = self.bytes_in,
            bytes_out = self.bytes_out,
            error = self.error,
        );
    }

    /// The line as the stock formatter writes the event [`Access::log`]
    /// emits (`%` fields shown, `&str` fields quoted).
    fn spell(&self, line: &mut String, stamp: &Stamp, json: bool) -> fmt::Result {
        let values = [
            Value::Shown(self.request_id),
            Value::Ip(self.source_ip),
            Value::Shown(self.method),
            Value::Shown(self.path),
            Value::Shown(self.route),
            Value::U64(u64::from(self.status)),
            Value::U64(self.latency_us),
            Value::I64(self.integration_latency_us),
            Value::Str(self.key_id),
            Value::Str(self.principal),
            Value::U64(self.bytes_in),
            Value::I64(self.bytes_out),
            Value::Str(self.error),
        ];
        framed(
            line,
            stamp,
            &tracing::Level::INFO,
            ACCESS_TARGET,
            json,
            |line| {
                for ((text, in_json), value) in ACCESS_FIELDS.iter().zip(values) {
                    line.push_str(if json { in_json } else { text });
                    value.write(line, json)?;
                }
                Ok(())
            },
        )
    }
}

/// The access line's fields in the order [`Access::log`]'s event has
/// them, each with what comes before its value: `name=` after a space in
/// text, `"name":` after a comma in JSON (the first without either).
const ACCESS_FIELDS: [(&str, &str); 13] = [
    ("request_id=", "\"request_id\":"),
    (" source_ip=", ",\"source_ip\":"),
    (" method=", ",\"method\":"),
    (" path=", ",\"path\":"),
    (" route=", ",\"route\":"),
    (" status=", ",\"status\":"),
    (" latency_us=", ",\"latency_us\":"),
    (" integration_latency_us=", ",\"integration_latency_us\":"),
    (" key_id=", ",\"key_id\":"),
    (" principal=", ",\"principal\":"),
    (" bytes_in=", ",\"bytes_in\":"),
    (" bytes_out=", ",\"bytes_out\":"),
    (" error=", ",\"error\":"),
];

/// Set by [`spell_directly`]: whether access lines written directly are
/// JSON.
static DIRECT: OnceLock<bool> = OnceLock::new();

/// Lets [`Access::log`] write lines itself while the subscriber in use
/// writes to [`super::LogSink`] through [`LineFormat`] with no colours,
/// text or `json`. Called once, by the binary's logging set-up.
pub(super) fn spell_directly(json: bool) {
    let _ = DIRECT.set(json);
}

/// Whether [`Access::log`] writes its line itself, and in which format:
/// only when the subscriber of this moment is the one [`spell_directly`]
/// describes (a scoped one, in a test, is not) and no span is entered,
/// which would put it in the stock line.
fn direct() -> Option<bool> {
    let json = *DIRECT.get()?;
    tracing::dispatcher::get_default(|d| {
        d.is::<super::LogSink>() && d.current_span().id().is_none()
    })
    .then_some(json)
}

/// Spells the access line of `event` into `line`.
fn spell(line: &mut String, event: &Event<'_>, stamp: &Stamp, json: bool) -> fmt::Result {
    let meta = event.metadata();
    framed(line, stamp, meta.level(), meta.target(), json, |line| {
        let mut fields = Fields::new(line, json);
        event.record(&mut fields);
        fields.result
    })
}

/// A line in the stock format: the stamp, the level and the target around
/// the fields `fields` writes.
fn framed(
    line: &mut String,
    stamp: &Stamp,
    level: &tracing::Level,
    target: &str,
    json: bool,
    fields: impl FnOnce(&mut String) -> fmt::Result,
) -> fmt::Result {
    let level = level.as_str();
    if json {
        line.push_str("{\"timestamp\":\"");
        line.push_str(stamp.as_str());
        line.push_str("\",\"level\":\"");
        line.push_str(level);
        line.push_str("\",\"fields\":{");
        fields(line)?;
        line.push_str("},\"target\":\"");
        json_escaped(line, target)?;
        line.push_str("\"}\n");
    } else {
        line.push_str(stamp.as_str());
        // The stock format: the stamp, a space, the level right-aligned in
        // five columns.
        line.push_str(&"      "[..6 - level.len().min(5)]);
        line.push_str(level);
        line.push(' ');
        line.push_str(target);
        line.push_str(": ");
        fields(line)?;
        line.push('\n');
    }
    Ok(())
}

/// Runs `f` on the buffer in `slot`, emptied, and puts it back unless it
/// grew past `keep` bytes: one allocation per thread instead of one per
/// call. A call from inside `f` (a field's `Display` that logs) finds the
/// slot empty and gets a buffer of its own.
fn reused<R>(
    slot: &'static std::thread::LocalKey<Cell<String>>,
    keep: usize,
    f: impl FnOnce(&mut String) -> R,
) -> R {
    let mut buf = slot.try_with(Cell::take).unwrap_or_default();
    buf.clear();
    let r = f(&mut buf);
    if buf.capacity() <= keep {
        let _ = slot.try_with(|cell| cell.set(buf));
    }
    r
}

/// Runs `f` on this thread's line buffer.
fn with_line<R>(f: impl FnOnce(&mut String) -> R) -> R {
    thread_local! {
        static LINE: Cell<String> = const { Cell::new(String::new()) };
    }
    reused(&LINE, 64 * 1024, f)
}

/// Runs `f` on `value` spelled by its `Display` (`""` for none), in a
/// buffer this thread reuses instead of a new `String` per call.
pub fn with_text<R>(value: Option<&dyn fmt::Display>, f: impl FnOnce(&str) -> R) -> R {
    thread_local! {
        static TEXT: Cell<String> = const { Cell::new(String::new()) };
    }
    let Some(value) = value else {
        return f("");
    };
    reused(&TEXT, 4096, |text| {
        // A `Display` that fails leaves what it wrote so far.
        let _ = write!(text, "{value}");
        f(text)
    })
}

/// An address as `IpAddr`'s `Display` spells it; an IPv4 address is
/// written in one piece instead of four formatter calls.
pub struct IpText(pub IpAddr);

impl fmt::Display for IpText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let IpAddr::V4(v4) = self.0 else {
            return fmt::Display::fmt(&self.0, f);
        };
        let (bytes, len) = v4_text(v4);
        // Digits and dots only.
        f.pad(std::str::from_utf8(&bytes[..len]).unwrap_or(""))
    }
}

/// An IPv4 address in dotted decimal, and its length.
fn v4_text(v4: std::net::Ipv4Addr) -> ([u8; 15], usize) {
    let mut out = [0u8; 15];
    let mut len = 0;
    for (i, octet) in v4.octets().into_iter().enumerate() {
        if i > 0 {
            out[len] = b'.';
            len += 1;
        }
        // One to three digits, no leading zeros.
        for (at_least, place) in [(100, 100), (10, 10), (0, 1)] {
            if octet >= at_least {
                out[len] = b'0' + octet / place % 10;
                len += 1;
            }
        }
    }
    (out, len)
}

/// `2026-11-27T03:44:13.907067Z`: RFC 3339 in UTC with microseconds,
/// as tracing-subscriber's `SystemTime` timer writes it.
pub struct Stamp([u8; 27]);

impl Stamp {
    pub fn as_str(&self) -> &str {
        // Only ASCII digits and punctuation are ever written.
        std::str::from_utf8(&self.0).unwrap_or("")
    }
}

/// The stamp of `at`; `None` before 1970 or after 9999, which the stock
/// timer spells differently (the caller falls back to it). The date and
/// time of day are worked out once per second per thread.
pub fn timestamp(at: SystemTime) -> Option<Stamp> {
    thread_local! {
        static SECOND: RefCell<(u64, [u8; 19])> = const { RefCell::new((u64::MAX, [0; 19])) };
    }
    let since = at.duration_since(UNIX_EPOCH).ok()?;
    let secs = since.as_secs();
    let head = SECOND
        .try_with(|cell| {
            let mut cell = cell.borrow_mut();
            if cell.0 != secs {
                *cell = (secs, date_time(secs)?);
            }
            Some(cell.1)
        })
        .ok()
        .flatten()?;
    let mut out = [0u8; 27];
    out[..19].copy_from_slice(&head);
    out[19] = b'.';
    digits(&mut out[20..26], u64::from(since.subsec_micros()));
    out[26] = b'Z';
    Some(Stamp(out))
}

/// `YYYY-MM-DDTHH:MM:SS` of a Unix time, for years up to 9999.
fn date_time(secs: u64) -> Option<[u8; 19]> {
    let t = time::OffsetDateTime::from_unix_timestamp(i64::try_from(secs).ok()?).ok()?;
    let year = u64::try_from(t.year()).ok().filter(|y| *y <= 9999)?;
    let mut out = *b"0000-00-00T00:00:00";
    digits(&mut out[0..4], year);
    digits(&mut out[5..7], u64::from(u8::from(t.month())));
    digits(&mut out[8..10], u64::from(t.day()));
    digits(&mut out[11..13], u64::from(t.hour()));
    digits(&mut out[14..16], u64::from(t.minute()));
    digits(&mut out[17..19], u64::from(t.second()));
    Some(out)
}

/// Writes `n` in decimal into all of `out`, zero-padded on the left.
fn digits(out: &mut [u8], mut n: u64) {
    for b in out.iter_mut().rev() {
        *b = b'0' + (n % 10) as u8;
        n /= 10;
    }
}

/// Whether the stock text format's `{:?}` of `s` is just `s` in quotes:
/// printable ASCII with no quote or backslash.
fn debug_is_plain(s: &str) -> bool {
    s.bytes()
        .all(|b| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\')
}

/// Fields as the stock formats write them. Text: `name=value` separated by
/// spaces, strings quoted and escaped as `{:?}` does, `%` values as their
/// `Display`, numbers in decimal. JSON: one object member per field,
/// strings and `%`/`?` values as JSON strings, numbers as numbers.
struct Fields<'a> {
    w: &'a mut String,
    json: bool,
    first: bool,
    result: fmt::Result,
}

impl<'a> Fields<'a> {
    fn new(w: &'a mut String, json: bool) -> Self {
        Self {
            w,
            json,
            first: true,
            result: Ok(()),
        }
    }

    /// The separator and `name=` or `"name":`; false once a write failed.
    fn name(&mut self, name: &str) -> bool {
        if self.result.is_err() {
            return false;
        }
        let first = std::mem::replace(&mut self.first, false);
        if self.json {
            self.w.push_str(if first { "\"" } else { ",\"" });
            self.result = json_escaped(self.w, name);
            self.w.push_str("\":");
        } else {
            if !first {
                self.w.push(' ');
            }
            self.w.push_str(name.strip_prefix("r#").unwrap_or(name));
            self.w.push('=');
        }
        self.result.is_ok()
    }

    /// A value spelled the same in both formats (a number).
    fn raw(&mut self, name: &str, text: &str) {
        if self.name(name) {
            self.w.push_str(text);
        }
    }

    fn value(&mut self, name: &str, value: Value<'_>) {
        if self.name(name) {
            self.result = value.write(self.w, self.json);
        }
    }
}

/// A field's value, spelled as the stock formats spell it.
#[derive(Clone, Copy)]
enum Value<'a> {
    /// A `%` value already spelled: as is in text, a JSON string in JSON.
    Shown(&'a str),
    /// `%IpText(ip)`: as `Shown`, and an address needs no JSON escaping.
    Ip(IpAddr),
    U64(u64),
    I64(i64),
    /// A `&str` value: quoted and escaped as `{:?}` does in text, a JSON
    /// string in JSON.
    Str(&'a str),
}

impl Value<'_> {
    fn write(self, w: &mut String, json: bool) -> fmt::Result {
        match self {
            Value::Shown(s) | Value::Str(s) if json => {
                w.push('"');
                json_escaped(w, s)?;
                w.push('"');
            }
            Value::Shown(s) => w.push_str(s),
            Value::Str(s) if debug_is_plain(s) => {
                w.push('"');
                w.push_str(s);
                w.push('"');
            }
            Value::Str(s) => write!(w, "{s:?}")?,
            Value::Ip(ip) => {
                if json {
                    w.push('"');
                }
                match ip {
                    IpAddr::V4(v4) => {
                        let (bytes, len) = v4_text(v4);
                        w.push_str(std::str::from_utf8(&bytes[..len]).unwrap_or(""));
                    }
                    IpAddr::V6(_) => write!(w, "{ip}")?,
                }
                if json {
                    w.push('"');
                }
            }
            Value::U64(n) => w.push_str(itoa::Buffer::new().format(n)),
            Value::I64(n) => w.push_str(itoa::Buffer::new().format(n)),
        }
        Ok(())
    }
}

impl Visit for Fields<'_> {
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.value(field.name(), Value::U64(value));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.value(field.name(), Value::I64(value));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.raw(field.name(), if value { "true" } else { "false" });
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        if self.json {
            // serde_json's spelling (`null` for NaN and infinities).
            self.raw(field.name(), &serde_json::Value::from(value).to_string());
        } else {
            self.record_debug(field, &value);
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.value(field.name(), Value::Str(value));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if !self.name(field.name()) {
            return;
        }
        if self.json {
            self.w.push('"');
            self.result = write!(JsonEscaping(self.w), "{value:?}");
            self.w.push('"');
        } else {
            self.result = write!(self.w, "{value:?}");
        }
    }
}

/// Writes `s` escaped for a JSON string, as serde_json escapes it.
fn json_escaped(w: &mut impl Write, s: &str) -> fmt::Result {
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escape: &str = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0x08 => "\\b",
            0x0c => "\\f",
            0..0x20 => "",
            _ => continue,
        };
        // Splits only at ASCII bytes, so both slices are whole characters.
        w.write_str(&s[start..i])?;
        if escape.is_empty() {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            w.write_str("\\u00")?;
            w.write_char(char::from(HEX[usize::from(b >> 4)]))?;
            w.write_char(char::from(HEX[usize::from(b & 0xf)]))?;
        } else {
            w.write_str(escape)?;
        }
        start = i + 1;
    }
    w.write_str(&s[start..])
}

/// A `fmt::Write` that JSON-escapes what is written through it.
struct JsonEscaping<'a, W>(&'a mut W);

impl<W: Write> Write for JsonEscaping<'_, W> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        json_escaped(self.0, s)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    use tracing_subscriber::fmt::format::Writer;
    use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
    use tracing_subscriber::registry::LookupSpan;

    use super::{ACCESS_TARGET, LineFormat, json_escaped, timestamp};

    /// Lines an event makes through a subscriber with format `F`.
    #[derive(Clone, Default)]
    struct Capture(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Capture {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Capture {
        type Writer = Capture;

        fn make_writer(&'a self) -> Capture {
            self.clone()
        }
    }

    impl Capture {
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
        }
    }

    /// The stock formatter, counting the lines [`LineFormat`] leaves to it.
    struct Counted<F>(F, Arc<AtomicUsize>);

    impl<S, N, F> FormatEvent<S, N> for Counted<F>
    where
        S: tracing::Subscriber + for<'a> LookupSpan<'a>,
        N: for<'a> FormatFields<'a> + 'static,
        F: FormatEvent<S, N>,
    {
        fn format_event(
            &self,
            ctx: &FmtContext<'_, S, N>,
            writer: Writer<'_>,
            event: &tracing::Event<'_>,
        ) -> std::fmt::Result {
            self.1.fetch_add(1, Ordering::Relaxed);
            self.0.format_event(ctx, writer, event)
        }
    }

    /// Emits the same access events (and other lines) through the stock
    /// formatter and through [`LineFormat`], text or JSON; checks that
    /// `LineFormat` left only the three that are not plain access lines
    /// (a message, another target, a span in scope) to the stock one.
    fn both(json: bool, emit: &dyn Fn()) -> (String, String) {
        let run = |fast: bool| {
            let out = Capture::default();
            let b = tracing_subscriber::fmt()
                .with_ansi(false)
                .with_writer(out.clone());
            let stock = tracing_subscriber::fmt::format();
            let left = Arc::new(AtomicUsize::new(0));
            let dispatch: tracing::Dispatch = match (json, fast) {
                (false, false) => b.finish().into(),
                (false, true) => b
                    .event_format(LineFormat::new(Counted(stock, left.clone()), false))
                    .finish()
                    .into(),
                (true, false) => b.json().finish().into(),
                (true, true) => b
                    .json()
                    .event_format(LineFormat::new(Counted(stock.json(), left.clone()), true))
                    .finish()
                    .into(),
            };
            tracing::dispatcher::with_default(&dispatch, emit);
            if fast {
                assert_eq!(left.load(Ordering::Relaxed), 3);
            }
            out.text()
        };
        (run(false), run(true))
    }

    /// The lines without their timestamps, which differ between runs, and
    /// the timestamps' shapes checked.
    fn untimed(lines: &str, json: bool) -> Vec<String> {
        lines
            .lines()
            .map(|l| {
                let (stamp, rest) = if json {
                    let v: serde_json::Value = serde_json::from_str(l).unwrap();
                    let stamp = v["timestamp"].as_str().unwrap().to_owned();
                    (stamp.clone(), l.replacen(&stamp, "", 1))
                } else {
                    // A raw newline in a `%` value continues a line.
                    match l.split_once(' ') {
                        Some((s, r)) if s.len() == 27 && s.ends_with('Z') => {
                            (s.to_owned(), r.to_owned())
                        }
                        _ => return l.to_owned(),
                    }
                };
                assert_eq!(stamp.len(), 27, "{stamp}");
                time::OffsetDateTime::parse(&stamp, &time::format_description::well_known::Rfc3339)
                    .unwrap();
                rest
            })
            .collect()
    }

    fn access_events() {
        let odd = [
            "plain",
            "",
            "-",
            "with \"quotes\" and \\ back",
            "tab\there\nnewline\r\u{1}\u{1f}\u{7f}",
            "ünïcödé ✓ \u{200b} \u{301}",
            "esc \u{1b}[31m red",
        ];
        for s in odd {
            tracing::info!(
                target: "lambdagate::access",
                request_id = %s,
                source_ip = %super::IpText(std::net::IpAddr::from([127, 0, 0, 1])),
                method = %axum::http::Method::GET,
                path = %s,
                route = %"GET /items/{id}",
                status = 200u16,
                latency_us = 48u64,
                integration_latency_us = -1i64,
                key_id = s,
                principal = "-",
                bytes_in = 0u64,
                bytes_out = u64::MAX,
                error = s,
                ok = true,
                ratio = 0.5f64,
                none = f64::NAN,
                whole = 3.0f64,
                debug = ?Some(s),
            );
        }
        tracing::warn!(target: "lambdagate::access", status = 500u16);
        tracing::info!(target: "lambdagate::access", "a message takes the stock path");
        tracing::info!(target: "lambdagate::server", open = 0, "another target");
        let _in_span = tracing::info_span!("conn", peer = 7).entered();
        tracing::info!(target: "lambdagate::access", status = 200u16);
    }

    #[test]
    fn access_lines_are_byte_for_byte_the_stock_text_lines() {
        let (stock, fast) = both(false, &access_events);
        // Eleven events; two `%` values hold a raw newline, as they do in the
        // stock format.
        assert_eq!(stock.lines().count(), 13);
        assert_eq!(untimed(&stock, false), untimed(&fast, false));
        assert!(fast.contains(" INFO lambdagate::access: request_id=plain "));
        assert!(fast.contains(r#"key_id="with \"quotes\" and \\ back""#));
    }

    #[test]
    fn access_lines_are_byte_for_byte_the_stock_json_lines() {
        let (stock, fast) = both(true, &access_events);
        assert_eq!(stock.lines().count(), 11);
        assert_eq!(untimed(&stock, true), untimed(&fast, true));
        for line in fast.lines() {
            serde_json::from_str::<serde_json::Value>(line).unwrap();
        }
    }

    /// Access lines across the odd cases: escapes, empty and long values,
    /// both address families, extreme numbers.
    fn accesses() -> Vec<super::Access<'static>> {
        let odd = [
            "plain",
            "",
            "with \"quotes\" and \\ back",
            "tab\there\nnewline\r\u{1}\u{7f}",
            "ünïcödé ✓ \u{200b}",
            "esc \u{1b}[31m red",
        ];
        let v6: std::net::IpAddr = "2001:db8::8a2e:370:7334".parse().unwrap();
        let v4 = std::net::IpAddr::from([10, 0, 200, 7]);
        odd.iter()
            .enumerate()
            .map(|(i, s)| super::Access {
                request_id: s,
                source_ip: if i % 2 == 0 { v4 } else { v6 },
                method: if i == 1 { "PURGE" } else { "GET" },
                path: s,
                route: "GET /items/{id}",
                status: [200, 429, 0, u16::MAX][i % 4],
                latency_us: [0, 48, u64::MAX][i % 3],
                integration_latency_us: [-1, 0, i64::MAX, i64::MIN][i % 4],
                key_id: s,
                principal: if i == 0 { "-" } else { s },
                bytes_in: i as u64,
                bytes_out: [-1, 37][i % 2],
                error: s,
            })
            .collect()
    }

    /// What `Access::spell` writes is, byte for byte, what the stock
    /// formatter writes for the event `Access::log` emits when it cannot
    /// write the line itself (here: the subscriber is not the binary's).
    #[test]
    fn access_lines_spelled_directly_are_the_stock_lines_of_the_event() {
        for json in [false, true] {
            let out = Capture::default();
            let b = tracing_subscriber::fmt()
                .with_ansi(false)
                .with_writer(out.clone());
            let dispatch: tracing::Dispatch = if json {
                b.json().finish().into()
            } else {
                b.finish().into()
            };
            tracing::dispatcher::with_default(&dispatch, || {
                assert_eq!(super::direct(), None, "not the binary's subscriber");
                for a in accesses() {
                    a.log();
                }
            });
            let stamp = timestamp(SystemTime::now()).unwrap();
            let mut direct = String::new();
            for a in accesses() {
                a.spell(&mut direct, &stamp, json).unwrap();
            }
            assert_eq!(direct.matches(ACCESS_TARGET).count(), accesses().len());
            assert_eq!(
                untimed(&out.text(), json),
                untimed(&direct, json),
                "json: {json}"
            );
        }
    }

    /// `Access::log` writes its line itself only under a subscriber that
    /// writes to `LogSink` and only outside spans; either way the line
    /// reaches the batch once.
    #[test]
    fn access_lines_skip_the_event_only_under_the_binarys_subscriber() {
        let _serial = crate::telemetry::BATCH_TEST
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        super::spell_directly(false);
        // Built as `init_logging` builds the binary's.
        let dispatch: tracing::Dispatch = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new("info"))
            .with_ansi(false)
            .with_writer(crate::telemetry::LogSink)
            .event_format(LineFormat::new(tracing_subscriber::fmt::format(), false))
            .finish()
            .into();
        let mut access = accesses().swap_remove(0);
        let batched = |id: &str| {
            let batch = crate::telemetry::LOG_BATCH.lock().unwrap();
            String::from_utf8_lossy(&batch)
                .lines()
                .filter(|l| l.contains(&format!("request_id={id} ")))
                .map(str::to_owned)
                .collect::<Vec<_>>()
        };
        assert_eq!(super::direct(), None, "no LogSink subscriber in use");
        tracing::dispatcher::with_default(&dispatch, || {
            assert_eq!(super::direct(), Some(false));
            access.request_id = "line-unit-direct";
            access.log();
            let _in = tracing::info_span!("conn").entered();
            assert_eq!(super::direct(), None, "a span is entered");
            access.request_id = "line-unit-in-span";
            access.log();
        });
        let direct = batched("line-unit-direct");
        assert_eq!(direct.len(), 1, "{direct:?}");
        assert!(direct[0].contains(" INFO lambdagate::access: request_id=line-unit-direct "));
        let in_span = batched("line-unit-in-span");
        assert_eq!(in_span.len(), 1, "{in_span:?}");
        assert!(
            in_span[0].contains(" INFO conn: lambdagate::access: "),
            "{in_span:?}"
        );
        crate::telemetry::flush_logs();
    }

    #[test]
    fn timestamps_match_rfc3339_with_microseconds() {
        let format = time::macros::format_description!(
            "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z"
        );
        let mut n: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..2000 {
            n ^= n << 13;
            n ^= n >> 7;
            n ^= n << 17;
            // Any time from 1970 to the end of 9999, to the nanosecond.
            let at =
                UNIX_EPOCH + Duration::new(n % 253_402_300_800, (n >> 11) as u32 % 1_000_000_000);
            let want = time::OffsetDateTime::from(at).format(&format).unwrap();
            assert_eq!(timestamp(at).unwrap().as_str(), want);
        }
        assert!(timestamp(UNIX_EPOCH - Duration::from_secs(1)).is_none());
        assert!(timestamp(UNIX_EPOCH + Duration::from_secs(253_402_300_800)).is_none());
        let now = timestamp(SystemTime::now()).unwrap();
        assert!(now.as_str().starts_with("20"), "{}", now.as_str());
    }

    #[test]
    fn addresses_are_spelled_as_std_spells_them() {
        let mut n: u32 = 0x1234_5678;
        for _ in 0..2000 {
            n ^= n << 13;
            n ^= n >> 17;
            n ^= n << 5;
            let v4 = std::net::IpAddr::from(n.to_be_bytes());
            assert_eq!(super::IpText(v4).to_string(), v4.to_string());
        }
        for ip in [
            "0.0.0.0",
            "255.255.255.255",
            "10.0.0.1",
            "::1",
            "2001:db8::8a2e:370:7334",
        ] {
            let ip: std::net::IpAddr = ip.parse().unwrap();
            assert_eq!(super::IpText(ip).to_string(), ip.to_string());
            assert_eq!(format!("{:>20}", super::IpText(ip)), format!("{ip:>20}"));
        }
    }

    #[test]
    fn text_is_the_display_also_when_nested_or_long() {
        assert_eq!(super::with_text(None, str::to_owned), "");
        let inner: &dyn std::fmt::Display = &"inner";
        let outer: &dyn std::fmt::Display = &42;
        // The buffer is reused: a shorter value after a longer one.
        for _ in 0..2 {
            let (o, i) = super::with_text(Some(outer), |o| {
                (o.to_owned(), super::with_text(Some(inner), str::to_owned))
            });
            assert_eq!((o.as_str(), i.as_str()), ("42", "inner"));
        }
        let long = "x".repeat(10_000);
        let shown: &dyn std::fmt::Display = &long;
        assert_eq!(super::with_text(Some(shown), str::len), 10_000);
        assert_eq!(super::with_text(Some(inner), str::to_owned), "inner");
    }

    #[test]
    fn json_escaping_is_serde_json_s() {
        let mut all: String = (0u32..0x300).filter_map(char::from_u32).collect();
        all.push_str("\u{2028}\u{feff}✓");
        for s in [all.as_str(), "", "\"", "a\\b", "\u{0}"] {
            let mut ours = String::new();
            json_escaped(&mut ours, s).unwrap();
            assert_eq!(format!("\"{ours}\""), serde_json::to_string(s).unwrap());
        }
    }
}
