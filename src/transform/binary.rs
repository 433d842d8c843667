//! Binary payloads for non-proxy integrations: API Gateway's
//! `contentHandling`. (Proxy integrations use the text/base64 table in
//! `event::encode_body` and the function's `isBase64Encoded`.)
//!
//! | where    | handling            | payload                 | becomes              |
//! |----------|---------------------|-------------------------|----------------------|
//! | request  | none (passthrough)  | any                     | text as received     |
//! | request  | `CONVERT_TO_TEXT`   | binary media type/UTF-8-invalid | base64 text  |
//! | request  | `CONVERT_TO_TEXT`   | text                    | text as received     |
//! | request  | `CONVERT_TO_BINARY` | base64 text             | decoded bytes        |
//! | response | none / `CONVERT_TO_TEXT` | function output    | sent as text         |
//! | response | `CONVERT_TO_BINARY` | base64 text (or a JSON string of it) | decoded bytes |

use base64::Engine;

use crate::config::ContentHandling;
use crate::event::is_binary_media_type;

/// The request body as the mapping template's `input.body` sees it, and the
/// raw bytes sent to the function when there is no template.
pub fn request_body(
    body: &[u8],
    content_type: Option<&str>,
    binary_media_types: &[String],
    handling: Option<ContentHandling>,
) -> Result<Vec<u8>, String> {
    match handling {
        Some(ContentHandling::ConvertToText) => {
            let binary = is_binary_media_type(content_type, binary_media_types)
                || std::str::from_utf8(body).is_err();
            if binary {
                Ok(base64::engine::general_purpose::STANDARD
                    .encode(body)
                    .into_bytes())
            } else {
                Ok(body.to_vec())
            }
        }
        Some(ContentHandling::ConvertToBinary) => {
            let text = std::str::from_utf8(body)
                .map_err(|_| "request body is not base64 text".to_string())?;
            crate::event::decode_base64_body(text)
                .ok_or_else(|| "request body is not valid base64".to_string())
        }
        None => Ok(body.to_vec()),
    }
}

/// The response body after `contentHandling`.
pub fn response_body(text: Vec<u8>, handling: Option<ContentHandling>) -> Result<Vec<u8>, String> {
    match handling {
        Some(ContentHandling::ConvertToBinary) => {
            let s = std::str::from_utf8(&text)
                .map_err(|_| "function output is not text".to_string())?;
            let trimmed = s.trim();
            // A function returning the base64 as its JSON result sends `"..."`.
            let b64 = match serde_json::from_str::<serde_json::Value>(trimmed) {
                Ok(serde_json::Value::String(inner)) => inner,
                _ => trimmed.to_string(),
            };
            crate::event::decode_base64_body(&b64).ok_or_else(|| {
                "function output is not valid base64 for CONVERT_TO_BINARY".to_string()
            })
        }
        Some(ContentHandling::ConvertToText) | None => Ok(text),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_conversions() {
        let png = vec![0x89, b'P', b'N', b'G', 0, 0xff];
        let types = vec!["image/*".to_string()];
        let t = request_body(
            &png,
            Some("image/png"),
            &types,
            Some(ContentHandling::ConvertToText),
        )
        .unwrap();
        assert_eq!(t, b"iVBORwD/".to_vec());
        let b = request_body(
            &t,
            Some("text/plain"),
            &types,
            Some(ContentHandling::ConvertToBinary),
        )
        .unwrap();
        assert_eq!(b, png);
        let same = request_body(
            b"{\"a\":1}",
            Some("application/json"),
            &types,
            Some(ContentHandling::ConvertToText),
        )
        .unwrap();
        assert_eq!(same, b"{\"a\":1}".to_vec());
    }

    #[test]
    fn response_conversions() {
        assert_eq!(
            response_body(b"\"aGk=\"".to_vec(), Some(ContentHandling::ConvertToBinary)).unwrap(),
            b"hi".to_vec()
        );
        assert_eq!(
            response_body(b"aGk=".to_vec(), Some(ContentHandling::ConvertToBinary)).unwrap(),
            b"hi".to_vec()
        );
        assert!(response_body(b"{}".to_vec(), Some(ContentHandling::ConvertToBinary)).is_err());
        assert_eq!(response_body(b"x".to_vec(), None).unwrap(), b"x".to_vec());
    }
}
