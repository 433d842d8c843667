//! The signature's parts as the client sent them — the `Authorization`
//! header or the presigned query — and the checks on its time.

use std::time::{Duration, SystemTime};

use axum::http::HeaderName;
use percent_encoding::percent_decode_str;

use super::{
    ALGORITHM, MAX_PRESIGN_EXPIRES, MAX_SKEW, Sigv4Refusal, X_AMZ_DATE, X_AMZ_SECURITY_TOKEN,
    canonical,
};

/// The signature's parts as the client sent them.
pub(super) struct Presented<'a> {
    pub(super) access_key_id: &'a str,
    pub(super) date: &'a str,
    pub(super) region: &'a str,
    pub(super) service: &'a str,
    /// `host;x-amz-date;...`, as sent.
    pub(super) signed_headers: &'a str,
    pub(super) signature: &'a str,
    pub(super) amz_date: &'a str,
    pub(super) security_token: Option<&'a str>,
    /// `Some(seconds)` for a presigned URL.
    pub(super) expires: Option<u64>,
}

impl Presented<'_> {
    pub(super) fn signs(&self, header: &str) -> bool {
        split_ascii(self.signed_headers, b';').any(|h| h == header)
    }
}

/// `s` split at an ASCII byte. For the short strings of a signature,
/// `str::split`'s searcher (a `memchr` per piece) costs more than the scan.
pub(super) fn split_ascii(s: &str, separator: u8) -> impl Iterator<Item = &str> {
    let mut rest = Some(s);
    std::iter::from_fn(move || {
        let r = rest?;
        match r.bytes().position(|b| b == separator) {
            // An ASCII byte is always a character boundary.
            Some(i) => {
                rest = r.get(i + 1..);
                r.get(..i)
            }
            None => {
                rest = None;
                Some(r)
            }
        }
    })
}

/// `AWS4-HMAC-SHA256 Credential=AKID/20240101/us-east-1/execute-api/aws4_request, SignedHeaders=host;x-amz-date, Signature=hex`
pub(super) fn parse_header_form<'a>(
    auth: &'a str,
    header: &impl Fn(&HeaderName) -> Option<&'a str>,
) -> Result<Presented<'a>, Sigv4Refusal> {
    let rest = auth[ALGORITHM.len()..].trim();
    let (mut credential, mut signed, mut signature) = (None, None, None);
    for part in split_ascii(rest, b',') {
        let part = part.trim();
        if let Some(v) = part.strip_prefix("Credential=") {
            credential = Some(v);
        } else if let Some(v) = part.strip_prefix("SignedHeaders=") {
            signed = Some(v);
        } else if let Some(v) = part.strip_prefix("Signature=") {
            signature = Some(v);
        }
    }
    let missing = |what: &str| {
        Sigv4Refusal::Incomplete(format!(
            "Authorization header requires '{what}' parameter. Authorization={auth_prefix}",
            auth_prefix = ALGORITHM
        ))
    };
    let credential = credential.ok_or_else(|| missing("Credential"))?;
    let signed = signed.ok_or_else(|| missing("SignedHeaders"))?;
    let signature = signature.ok_or_else(|| missing("Signature"))?;
    let (access_key_id, date, region, service) = parse_scope(credential)?;
    let amz_date = header(&X_AMZ_DATE).ok_or_else(|| {
        Sigv4Refusal::Incomplete(
            "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header."
                .into(),
        )
    })?;
    Ok(Presented {
        access_key_id,
        date,
        region,
        service,
        signed_headers: signed,
        signature,
        amz_date,
        security_token: header(&X_AMZ_SECURITY_TOKEN),
        expires: None,
    })
}

pub(super) fn parse_query_form<'a>(
    qp: &impl Fn(&str) -> Option<&'a str>,
) -> Result<Presented<'a>, Sigv4Refusal> {
    if qp("X-Amz-Algorithm") != Some(ALGORITHM) {
        return Err(Sigv4Refusal::Incomplete(
            "X-Amz-Algorithm only supports \"AWS4-HMAC-SHA256\"".into(),
        ));
    }
    let need = |n: &str| {
        qp(n).ok_or_else(|| {
            Sigv4Refusal::Incomplete(format!("AWS query-string parameters must include '{n}'."))
        })
    };
    let (access_key_id, date, region, service) = parse_scope(need("X-Amz-Credential")?)?;
    let expires = need("X-Amz-Expires")?
        .parse::<u64>()
        .ok()
        .filter(|e| *e >= 1 && *e <= MAX_PRESIGN_EXPIRES)
        .ok_or_else(|| {
            Sigv4Refusal::Incomplete("X-Amz-Expires must be 1..604800 seconds".into())
        })?;
    Ok(Presented {
        access_key_id,
        date,
        region,
        service,
        signed_headers: need("X-Amz-SignedHeaders")?,
        signature: need("X-Amz-Signature")?,
        amz_date: need("X-Amz-Date")?,
        security_token: qp("X-Amz-Security-Token"),
        expires: Some(expires),
    })
}

/// `AKID/20240101/us-east-1/execute-api/aws4_request`
fn parse_scope(credential: &str) -> Result<(&str, &str, &str, &str), Sigv4Refusal> {
    let mut it = split_ascii(credential, b'/');
    match (
        it.next(),
        it.next(),
        it.next(),
        it.next(),
        it.next(),
        it.next(),
    ) {
        (Some(akid), Some(date), Some(region), Some(service), Some("aws4_request"), None)
            if !akid.is_empty() =>
        {
            Ok((akid, date, region, service))
        }
        _ => Err(Sigv4Refusal::Incomplete(format!(
            "Credential should be KEY/DATE/REGION/SERVICE/aws4_request, not `{}`",
            credential.split('/').skip(1).collect::<Vec<_>>().join("/")
        ))),
    }
}

/// `yyyyMMddTHHmmssZ`, read by hand: every request pays for it, and
/// `time`'s format-description parser costs more than the whole check.
pub(super) fn parse_amz_date(s: &str) -> Option<SystemTime> {
    if !canonical::is_amz_date(s) {
        return None;
    }
    let d = s.as_bytes();
    let num = |from: usize, to: usize| {
        d[from..to]
            .iter()
            .fold(0u16, |n, &b| n * 10 + u16::from(b - b'0'))
    };
    let date = time::Date::from_calendar_date(
        i32::from(num(0, 4)),
        time::Month::try_from(u8::try_from(num(4, 6)).ok()?).ok()?,
        u8::try_from(num(6, 8)).ok()?,
    )
    .ok()?;
    let time = time::Time::from_hms(
        u8::try_from(num(9, 11)).ok()?,
        u8::try_from(num(11, 13)).ok()?,
        u8::try_from(num(13, 15)).ok()?,
    )
    .ok()?;
    Some(time::PrimitiveDateTime::new(date, time).assume_utc().into())
}

fn format_amz_date(t: SystemTime) -> String {
    time::OffsetDateTime::from(t)
        .format(time::macros::format_description!(
            "[year][month][day]T[hour][minute][second]Z"
        ))
        .unwrap_or_default()
}

/// Header form: within five minutes either way. Presigned: not before the
/// signing time (minus skew) and not after it plus `X-Amz-Expires`.
pub(super) fn check_time(
    amz_date: &str,
    signed_at: SystemTime,
    now: SystemTime,
    expires: Option<u64>,
) -> Result<(), Sigv4Refusal> {
    if signed_at > now + MAX_SKEW {
        return Err(Sigv4Refusal::invalid(
            "the signature's time is more than 5 minutes in the future".into(),
            format!(
                "Signature not yet current: {amz_date} is still later than {} ({} + 5 min.)",
                format_amz_date(now + MAX_SKEW),
                format_amz_date(now)
            ),
        ));
    }
    match expires {
        None if signed_at + MAX_SKEW < now => Err(Sigv4Refusal::invalid(
            "the signature is more than 5 minutes old (replayed or clock skew)".into(),
            format!(
                "Signature expired: {amz_date} is now earlier than {} ({} - 5 min.)",
                format_amz_date(now - MAX_SKEW),
                format_amz_date(now)
            ),
        )),
        Some(secs) if signed_at + Duration::from_secs(secs) < now => Err(Sigv4Refusal::invalid(
            "the presigned URL has expired".into(),
            format!(
                "Signature expired: {amz_date} is now earlier than {} ({} - {secs} sec.)",
                format_amz_date(now - Duration::from_secs(secs)),
                format_amz_date(now)
            ),
        )),
        _ => Ok(()),
    }
}

/// The query without the presigning parameters, in its original encoding.
pub(super) fn strip_signing_params(query: &str) -> String {
    const SIGNING: [&str; 7] = [
        "X-Amz-Algorithm",
        "X-Amz-Credential",
        "X-Amz-Date",
        "X-Amz-Expires",
        "X-Amz-SignedHeaders",
        "X-Amz-Security-Token",
        "X-Amz-Signature",
    ];
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .filter(|p| {
            let k = p.split('=').next().unwrap_or_default();
            let k = percent_decode_str(k).decode_utf8_lossy();
            !SIGNING.contains(&k.as_ref())
        })
        .collect::<Vec<_>>()
        .join("&")
}
