//! Request extractors whose rejections are [`ApiError`]s in the JSON error shape.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use serde::de::DeserializeOwned;

use crate::http::client_ip::ClientIp;
use crate::http::error::{ApiError, ErrorCode};

/// JSON body extractor for API handlers: `ApiJson(req): ApiJson<ActivateRequest>`.
///
/// Unlike `axum::Json`, every failure is an [`ApiError`] naming the problem:
/// - body over `server.body_limit_bytes` → 413 `PAYLOAD_TOO_LARGE`;
/// - a `Content-Type` that is not JSON → 415 `UNSUPPORTED_MEDIA_TYPE` (a *missing* one is
///   accepted: seed-000 clients do not all send it);
/// - not well-formed JSON → 400 `INVALID_JSON` with line and column;
/// - well-formed but the wrong shape → 400 `VALIDATION_ERROR` naming the field path
///   (`activation.machine_name: invalid type: integer, expected a string`); a body that is
///   not a JSON object (an array, a number) is one too, on every route.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiJson<T>(pub T);

impl<T, S> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        check_json_content_type(req.headers())?;
        let bytes = Bytes::from_request(req, state).await.map_err(|rej| {
            if rej.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ErrorCode::PayloadTooLarge.into()
            } else {
                ApiError::new(
                    ErrorCode::InvalidJson,
                    format!("Could not read the request body: {}", rej.body_text()),
                )
            }
        })?;
        parse_json(&bytes).map(ApiJson)
    }
}

/// Rejects a present, non-JSON `Content-Type` with 415.
fn check_json_content_type(headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(ct) = headers.get(header::CONTENT_TYPE) else {
        return Ok(());
    };
    let essence = ct
        .to_str()
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let is_json = essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"));
    if is_json {
        Ok(())
    } else {
        Err(ApiError::new(
            ErrorCode::UnsupportedMediaType,
            format!("Expected Content-Type: application/json, got `{essence}`"),
        ))
    }
}

/// Deserializes a JSON object body into `T`, with [`ApiJson`]'s error mapping. Also opens
/// seed 003's envelope `data`, so both layers of a v2 request must be objects.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::new(
            ErrorCode::InvalidJson,
            "Request body is empty; expected a JSON object",
        ));
    }
    // serde reads a struct from a JSON array too (its sequence form: `[null, null]` is a
    // struct with two absent fields). Every request body is an object: anything else is a
    // shape error, or INVALID_JSON when it is not JSON at all.
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(
            match serde_json::from_slice::<serde::de::IgnoredAny>(bytes) {
                Ok(_) => ApiError::new(
                    ErrorCode::ValidationError,
                    "The request body must be a JSON object",
                ),
                Err(e) => ApiError::new(ErrorCode::InvalidJson, format!("Invalid JSON: {e}")),
            },
        );
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let parsed = serde_path_to_error::deserialize(&mut de);
    let value = match parsed {
        Ok(value) => value,
        Err(e) if e.inner().is_data() => match integral_floats_as_integers(bytes) {
            // JSON Schema (and the OpenAPI document) counts `3.0` as an integer; serde does
            // not. Only a body that failed takes this second, slower read.
            // `from_slice` read the whole body: nothing trails it.
            Some(normalized) => {
                return serde_path_to_error::deserialize(normalized).map_err(shape_error);
            }
            None => return Err(shape_error(e)),
        },
        Err(e) => return Err(shape_error(e)),
    };
    de.end().map_err(|e| {
        ApiError::new(
            ErrorCode::InvalidJson,
            format!("Invalid JSON: {e} (trailing data after the JSON value)"),
        )
    })?;
    Ok(value)
}

fn shape_error(e: serde_path_to_error::Error<serde_json::Error>) -> ApiError {
    let path = e.path().to_string();
    let inner = e.into_inner();
    if inner.is_data() {
        if path == "." {
            ApiError::new(ErrorCode::ValidationError, inner.to_string())
        } else {
            ApiError::validation(&path, inner)
        }
    } else {
        ApiError::new(ErrorCode::InvalidJson, format!("Invalid JSON: {inner}"))
    }
}

/// The body with every number that has a zero fraction (`3.0`, `1e3`) as an integer, or
/// `None` when it is not JSON or has no such number.
fn integral_floats_as_integers(bytes: &[u8]) -> Option<serde_json::Value> {
    fn walk(v: &mut serde_json::Value) -> bool {
        match v {
            serde_json::Value::Number(n) if !n.is_i64() && !n.is_u64() => {
                let Some(f) = n.as_f64() else { return false };
                let integer = if f.fract() != 0.0 {
                    None
                } else if f >= 0.0 && f < u64::MAX as f64 {
                    Some(serde_json::Number::from(f as u64))
                } else if f < 0.0 && f >= i64::MIN as f64 {
                    Some(serde_json::Number::from(f as i64))
                } else {
                    None
                };
                integer.map(|i| *n = i).is_some()
            }
            serde_json::Value::Array(items) => items.iter_mut().fold(false, |c, i| walk(i) | c),
            serde_json::Value::Object(map) => map.values_mut().fold(false, |c, i| walk(i) | c),
            _ => false,
        }
    }
    let mut value: serde_json::Value = serde_json::from_slice(bytes).ok()?;
    walk(&mut value).then_some(value)
}

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(parts
            .extensions
            .get::<ClientIp>()
            .copied()
            .unwrap_or(ClientIp(std::net::IpAddr::from([0, 0, 0, 0]))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Req {
        license_key: String,
        inner: Option<Inner>,
    }

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Inner {
        n: u32,
    }

    fn err(body: &str) -> ApiError {
        match parse_json::<Req>(body.as_bytes()) {
            Err(e) => e,
            Ok(v) => panic!("parsed {v:?}"),
        }
    }

    #[test]
    fn syntax_errors_are_invalid_json_with_position() {
        let e = err(r#"{"license_key": "A",}"#);
        assert_eq!(e.code(), ErrorCode::InvalidJson);
        assert!(e.to_string().contains("line 1 column"), "{e}");
        assert_eq!(err("").code(), ErrorCode::InvalidJson);
        assert_eq!(
            err(r#"{"license_key":"A"} x"#).code(),
            ErrorCode::InvalidJson
        );
    }

    #[test]
    fn shape_errors_name_the_field() {
        let e = err(r#"{"license_key": "A", "inner": {"n": "x"}}"#);
        assert_eq!(e.code(), ErrorCode::ValidationError);
        assert!(e.to_string().contains("inner.n: invalid type"), "{e}");
        let e = err(r#"{}"#);
        assert!(e.to_string().contains("missing field `license_key`"), "{e}");
    }

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct AllOptional {
        a: Option<String>,
        b: Option<u32>,
    }

    #[test]
    fn a_json_array_is_never_read_as_a_struct() {
        let e = parse_json::<AllOptional>(b"[null, null]").err();
        assert_eq!(e.map(|e| e.code()), Some(ErrorCode::ValidationError));
        assert_eq!(err(r#"["A", null]"#).code(), ErrorCode::ValidationError);
        // Other non-objects are shape errors too; broken JSON stays INVALID_JSON.
        assert_eq!(err("42").code(), ErrorCode::ValidationError);
        assert_eq!(err(" [1, ").code(), ErrorCode::InvalidJson);
        assert!(parse_json::<AllOptional>(br#" {"a": "x"} "#).is_ok());
    }

    #[derive(Debug, serde::Deserialize)]
    struct Counts {
        n: u32,
        list: Vec<i64>,
    }

    #[test]
    fn integral_floats_read_as_integers_and_fractions_stay_errors() {
        let ok = parse_json::<Counts>(br#"{"n": 3.0, "list": [1e2, -2.0, 4]}"#).ok();
        assert_eq!(ok.map(|c| (c.n, c.list)), Some((3, vec![100, -2, 4])));
        let e = parse_json::<Counts>(br#"{"n": 3.5, "list": []}"#).err();
        assert_eq!(e.map(|e| e.code()), Some(ErrorCode::ValidationError));
    }

    #[test]
    fn content_type_rules() {
        let mut h = HeaderMap::new();
        assert!(check_json_content_type(&h).is_ok());
        h.insert(
            header::CONTENT_TYPE,
            "application/json; charset=utf-8"
                .parse()
                .unwrap_or_else(|_| unreachable!()),
        );
        assert!(check_json_content_type(&h).is_ok());
        h.insert(
            header::CONTENT_TYPE,
            "text/plain".parse().unwrap_or_else(|_| unreachable!()),
        );
        assert_eq!(
            check_json_content_type(&h).err().map(|e| e.code()),
            Some(ErrorCode::UnsupportedMediaType)
        );
    }
}
