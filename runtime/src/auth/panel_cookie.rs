//! The panel's credential: an operator token in an `HttpOnly`, `SameSite=Strict` cookie
//! (`Secure` and named `__Host-tessera_panel` behind TLS, so no sibling subdomain can plant
//! one), so page scripts never hold it. A request that changes something with the cookie
//! must also carry `X-CSRF-Token`, a value derived from the token that only the panel's own
//! pages can read (`GET /api/panel/session`, which no other origin may read), and must not
//! come from another site: `Sec-Fetch-Site`, which browsers set themselves, or else the
//! `Origin` compared with the host the request was sent to.

use axum::http::header::{COOKIE, HOST, ORIGIN};
use axum::http::{HeaderMap, HeaderValue, Method, Uri};
use cookie::{Cookie, SameSite};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::tokens::TOKEN_PREFIX;
use crate::http::error::{ApiError, ErrorCode};

/// The cookie's name over plain HTTP.
pub const COOKIE_NAME: &str = "tessera_panel";
/// The cookie's name over TLS: the `__Host-` prefix makes the browser refuse it unless it
/// is `Secure`, for `Path=/` and without a `Domain`, so no other host can set it.
pub const SECURE_COOKIE_NAME: &str = "__Host-tessera_panel";
/// The header a cookie-authenticated change must carry.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// The operator token in the request's panel cookie, if it has one that looks like a token
/// (the `__Host-` cookie first).
pub fn token(headers: &HeaderMap) -> Option<&str> {
    let pairs = || {
        headers
            .get_all(COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
    };
    [SECURE_COOKIE_NAME, COOKIE_NAME]
        .into_iter()
        .find_map(|want| {
            pairs()
                .filter(|(name, _)| *name == want)
                .map(|(_, value)| value.trim())
                .find(|v| v.starts_with(TOKEN_PREFIX) && v.len() <= 128)
        })
}

/// The CSRF value of a token: whoever knows it knew the token (or read it from the panel's
/// session route, which only this origin can).
pub fn csrf_for(token: &str) -> String {
    let mut h = Sha256::new();
    h.update(b"tessera-panel-csrf:");
    h.update(token.as_bytes());
    hex::encode(&h.finalize()[..20])
}

fn refused(why: &str) -> ApiError {
    ApiError::new(ErrorCode::CsrfFailed, why.to_owned())
}

/// Refuses a request a browser sent from another site. `Sec-Fetch-Site` is set by the
/// browser and cannot be forged by a page: only `same-origin` (or `none`, typed by the
/// user) passes. A browser without it is judged by `Origin`, whose host must be the one the
/// request was sent to (`Host`, the HTTP/2 authority, or a proxy's `X-Forwarded-Host`).
/// A request with neither header is not a browser's cross-site request.
pub fn check_same_origin(uri: &Uri, headers: &HeaderMap) -> Result<(), ApiError> {
    let text = |name| {
        headers
            .get(name)
            .and_then(|v: &HeaderValue| v.to_str().ok())
    };
    if let Some(site) = text("sec-fetch-site") {
        return match site {
            "same-origin" | "none" => Ok(()),
            _ => Err(refused(
                "the panel's cookie is not accepted from another site",
            )),
        };
    }
    let Some(origin) = text(ORIGIN.as_str()) else {
        return Ok(());
    };
    let origin_host = origin.split_once("://").map_or("", |(_, rest)| rest);
    let sent_to = [
        text(HOST.as_str()),
        uri.authority().map(|a| a.as_str()),
        text("x-forwarded-host"),
    ];
    if sent_to
        .into_iter()
        .flatten()
        .any(|h| h.eq_ignore_ascii_case(origin_host))
    {
        Ok(())
    } else {
        Err(refused(
            "a change made with the panel's cookie must come from the panel's own origin",
        ))
    }
}

/// Refuses a cookie-authenticated change that lacks the CSRF value or comes from another
/// site. Reads (GET, HEAD) need neither: they change nothing, and another origin cannot
/// read their answers.
pub fn check_change(
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    token: &str,
) -> Result<(), ApiError> {
    if matches!(*method, Method::GET | Method::HEAD) {
        return Ok(());
    }
    let sent = headers
        .get(CSRF_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let want = csrf_for(token);
    if sent.len() != want.len() || !bool::from(sent.as_bytes().ct_eq(want.as_bytes())) {
        return Err(refused(
            "a change made with the panel's cookie needs the X-CSRF-Token of its session",
        ));
    }
    check_same_origin(uri, headers)
}

/// `Set-Cookie` for a fresh login: the token for `max_age_secs`; over TLS `Secure` and
/// under the `__Host-` name.
pub fn set(token: &str, max_age_secs: i64, secure: bool) -> Option<HeaderValue> {
    let name = if secure {
        SECURE_COOKIE_NAME
    } else {
        COOKIE_NAME
    };
    let c = Cookie::build((name, token))
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
/// says so with `X-Forwarded-Proto: https` (a spoofed header only makes the cookie
/// stricter).
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
        let uri = Uri::from_static("/api/admin/licenses");
        let check = |m: &Method, h: &HeaderMap| check_change(m, &uri, h, t);
        assert!(check(&Method::GET, &headers(&[])).is_ok());
        assert!(check(&Method::POST, &headers(&[])).is_err());
        assert!(check(&Method::POST, &headers(&[("x-csrf-token", "00")])).is_err());
        let ok = headers(&[
            ("x-csrf-token", &csrf),
            ("host", "h:1"),
            ("origin", "http://h:1"),
        ]);
        assert!(check(&Method::POST, &ok).is_ok());
        let other = headers(&[
            ("x-csrf-token", &csrf),
            ("host", "h:1"),
            ("origin", "https://evil"),
        ]);
        assert!(check(&Method::DELETE, &other).is_err());
        assert_ne!(csrf_for("tso_other"), csrf);
    }

    #[test]
    fn the_browsers_fetch_site_header_decides_when_it_is_sent() {
        let uri = Uri::from_static("/x");
        let with =
            |site: &str| headers(&[("sec-fetch-site", site), ("origin", "https://elsewhere")]);
        assert!(check_same_origin(&uri, &with("same-origin")).is_ok());
        assert!(check_same_origin(&uri, &with("same-site")).is_err());
        assert!(check_same_origin(&uri, &with("cross-site")).is_err());
    }

    #[test]
    fn without_a_host_header_the_origin_is_compared_with_the_http2_authority_or_the_proxys() {
        let h2 = Uri::from_static("https://panel.example:8443/api/admin/licenses");
        let origin = headers(&[("origin", "https://panel.example:8443")]);
        assert!(check_same_origin(&h2, &origin).is_ok());
        let plain = Uri::from_static("/api/admin/licenses");
        assert!(check_same_origin(&plain, &origin).is_err());
        let proxied = headers(&[
            ("origin", "https://panel.example:8443"),
            ("host", "tessera"),
            ("x-forwarded-host", "panel.example:8443"),
        ]);
        assert!(check_same_origin(&plain, &proxied).is_ok());
        assert!(
            check_same_origin(&plain, &headers(&[])).is_ok(),
            "not a browser's request"
        );
    }

    #[test]
    fn over_tls_the_cookie_has_the_host_prefix_and_both_names_are_read() {
        let c = set("tso_x", 60, true).map(|v| v.to_str().unwrap_or("").to_string());
        assert!(
            c.unwrap_or_default()
                .starts_with("__Host-tessera_panel=tso_x")
        );
        let both = headers(&[(
            "cookie",
            "tessera_panel=tso_planted; __Host-tessera_panel=tso_real",
        )]);
        assert_eq!(token(&both), Some("tso_real"), "the __Host- cookie wins");
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
