//! The panel's credential: an operator token in an `HttpOnly`, `SameSite=Strict` cookie
//! (`Secure` behind TLS), so page scripts never hold it. A request that changes something
//! with the cookie must also carry `X-CSRF-Token`, a value derived from the token that only
//! the panel's own pages can read (`GET /api/panel/session`, which no other origin may
//! read), and, when the browser names one, an `Origin` that is this server.

use axum::http::header::{COOKIE, HOST, ORIGIN};
use axum::http::{HeaderMap, HeaderValue, Method};
use cookie::{Cookie, SameSite};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::tokens::TOKEN_PREFIX;
use crate::http::error::{ApiError, ErrorCode};

/// The cookie's name.
pub const COOKIE_NAME: &str = "tessera_panel";
/// The header a cookie-authenticated change must carry.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// The operator token in the request's panel cookie, if it has one that looks like a token.
pub fn token(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| {
            let (name, value) = pair.trim().split_once('=')?;
            (name == COOKIE_NAME).then_some(value.trim())
        })
        .find(|v| v.starts_with(TOKEN_PREFIX) && v.len() <= 128)
}

/// The CSRF value of a token: whoever knows it knew the token (or read it from the panel's
/// session route, which only this origin can).
pub fn csrf_for(token: &str) -> String {
    let mut h = Sha256::new();
    h.update(b"tessera-panel-csrf:");
    h.update(token.as_bytes());
    hex::encode(&h.finalize()[..20])
}

/// Refuses a cookie-authenticated change that lacks the CSRF value or comes from another
/// origin. Reads (GET, HEAD) need neither: they change nothing, and another origin cannot
/// read their answers.
pub fn check_change(method: &Method, headers: &HeaderMap, token: &str) -> Result<(), ApiError> {
    if matches!(*method, Method::GET | Method::HEAD) {
        return Ok(());
    }
    let sent = headers
        .get(CSRF_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let want = csrf_for(token);
    if sent.len() != want.len() || !bool::from(sent.as_bytes().ct_eq(want.as_bytes())) {
        return Err(ApiError::new(
            ErrorCode::CsrfFailed,
            "a change made with the panel's cookie needs the X-CSRF-Token of its session",
        ));
    }
    if let Some(origin) = headers.get(ORIGIN).and_then(|v| v.to_str().ok()) {
        let host = headers
            .get(HOST)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let origin_host = origin.split_once("://").map_or("", |(_, rest)| rest);
        if origin_host != host {
            return Err(ApiError::new(
                ErrorCode::CsrfFailed,
                "a change made with the panel's cookie must come from the panel's own origin",
            ));
        }
    }
    Ok(())
}

/// `Set-Cookie` for a fresh login: the token for `max_age_secs`, `Secure` when the browser
/// reached the server over TLS.
pub fn set(token: &str, max_age_secs: i64, secure: bool) -> Option<HeaderValue> {
    let c = Cookie::build((COOKIE_NAME, token))
        .path("/")
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(secure)
        .max_age(cookie::time::Duration::seconds(max_age_secs.max(0)))
        .build();
    HeaderValue::from_str(&c.to_string()).ok()
}

/// `Set-Cookie` that removes the cookie (logout).
pub fn clear(secure: bool) -> Option<HeaderValue> {
    set("", 0, secure)
}

/// Whether the browser reached the server over TLS: the server's own, or a proxy's that
/// says so (a spoofed header only makes the cookie stricter).
pub fn over_tls(server_tls: bool, headers: &HeaderMap) -> bool {
    server_tls
        || headers
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|p| p.eq_ignore_ascii_case("https"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                *k,
                HeaderValue::from_str(v).unwrap_or(HeaderValue::from_static("")),
            );
        }
        h
    }

    #[test]
    fn the_token_is_read_among_other_cookies() {
        let h = headers(&[("cookie", "a=1; tessera_panel=tso_abc; b=2")]);
        assert_eq!(token(&h), Some("tso_abc"));
        assert_eq!(
            token(&headers(&[("cookie", "tessera_panel=tsa_key")])),
            None
        );
        assert_eq!(token(&headers(&[])), None);
    }

    #[test]
    fn a_change_needs_the_csrf_value_and_the_same_origin() {
        let t = "tso_secret";
        let csrf = csrf_for(t);
        assert!(check_change(&Method::GET, &headers(&[]), t).is_ok());
        assert!(check_change(&Method::POST, &headers(&[]), t).is_err());
        assert!(check_change(&Method::POST, &headers(&[("x-csrf-token", "00")]), t).is_err());
        let ok = headers(&[
            ("x-csrf-token", &csrf),
            ("host", "h:1"),
            ("origin", "http://h:1"),
        ]);
        assert!(check_change(&Method::POST, &ok, t).is_ok());
        let other = headers(&[
            ("x-csrf-token", &csrf),
            ("host", "h:1"),
            ("origin", "https://evil"),
        ]);
        assert!(check_change(&Method::DELETE, &other, t).is_err());
        assert_ne!(csrf_for("tso_other"), csrf);
    }

    #[test]
    fn the_cookie_is_http_only_strict_and_secure_over_tls() {
        let c = set("tso_x", 60, true).map(|v| v.to_str().unwrap_or("").to_string());
        let c = c.unwrap_or_default();
        for part in [
            "tessera_panel=tso_x",
            "HttpOnly",
            "SameSite=Strict",
            "Secure",
            "Path=/",
            "Max-Age=60",
        ] {
            assert!(c.contains(part), "{c} lacks {part}");
        }
        let plain = set("tso_x", 60, false).map(|v| v.to_str().unwrap_or("").to_string());
        assert!(!plain.unwrap_or_default().contains("Secure"));
    }
}
