//! Request URIs as logs may show them: license keys in paths (`/api/license/info/{key}`,
//! `/api/admin/licenses/{key}/status`) and query values masked like
//! [`tessera_actors::LicenseKey::masked`] (`ABCD-…-WXYZ`).
//!
//! The gateway logs before routing, so it cannot know which segment is a key: any segment or
//! query value longer than 8 characters that is not a plain lower-case route word (`a-z`,
//! `_`, `.`) is masked. Route words stay readable; keys, tokens and opaque ids do not.

use std::fmt;

use axum::http::Uri;

/// Displays a URI with the license keys in it masked.
pub(crate) struct MaskedUri<'a>(pub(crate) &'a Uri);

fn secret_like(part: &str) -> bool {
    part.len() > 8
        && part
            .bytes()
            .any(|b| !(b.is_ascii_lowercase() || b == b'_' || b == b'.'))
}

fn write_part(f: &mut fmt::Formatter<'_>, part: &str) -> fmt::Result {
    if secret_like(part) {
        tessera_actors::model::mask(part, f)
    } else {
        f.write_str(part)
    }
}

impl fmt::Display for MaskedUri<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, segment) in self.0.path().split('/').enumerate() {
            if i > 0 {
                f.write_str("/")?;
            }
            write_part(f, segment)?;
        }
        if let Some(query) = self.0.query() {
            f.write_str("?")?;
            for (i, pair) in query.split('&').enumerate() {
                if i > 0 {
                    f.write_str("&")?;
                }
                match pair.split_once('=') {
                    Some((name, value)) => {
                        f.write_str(name)?;
                        f.write_str("=")?;
                        write_part(f, value)?;
                    }
                    None => write_part(f, pair)?,
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shown(uri: &str) -> String {
        let uri: Uri = uri.parse().unwrap_or_else(|e| panic!("{uri}: {e}"));
        MaskedUri(&uri).to_string()
    }

    #[test]
    fn license_keys_in_paths_and_queries_are_masked() {
        assert_eq!(
            shown("/api/admin/licenses/ABCD-EFGH-JKMN-WXYZ/status"),
            "/api/admin/licenses/ABCD-…-WXYZ/status"
        );
        assert_eq!(
            shown("/api/license/info/abcd-efgh-jkmn-wxyz"),
            "/api/license/info/abcd-…-wxyz"
        );
        assert_eq!(
            shown("/api/x?license_key=ABCD-EFGH-JKMN-WXYZ&limit=50"),
            "/api/x?license_key=ABCD-…-WXYZ&limit=50"
        );
        // Route words stay readable.
        for plain in [
            "/api/v2/register_instance",
            "/api/license/session/heartbeat",
            "/openapi.json",
            "/",
            "/api/admin/licenses/12",
        ] {
            assert_eq!(shown(plain), plain);
        }
    }
}
