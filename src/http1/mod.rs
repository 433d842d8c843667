//! The gateway's one HTTP/1.1 codec, used by the listener ([`server`],
//! reading heads with [`request`]) and by the `http` integration's upstream
//! client ([`client`]). Both sides share the framing decision and the head
//! error type ([`head`]), the header-field rules ([`fields`]) and the
//! chunked decoder ([`chunked`]), so a message is framed the same way
//! whichever way it travels.

pub(crate) mod chunked;
pub(crate) mod client;
pub(crate) mod fields;
pub(crate) mod head;
pub(crate) mod request;
pub(crate) mod server;

pub use server::fuzz_request;

/// Request extension: the listener terminated TLS on the connection the
/// request came in on (absent on plain connections). The `http`
/// integration reads it to say `X-Forwarded-Proto: https`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TlsTerminated;
