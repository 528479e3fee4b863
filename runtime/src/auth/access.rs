//! What a route requires of its caller, and the check. The route table (`api/routes.rs`)
//! gives every route one [`Access`]; the route gate resolves the caller and calls
//! [`Access::admit`] before the handler runs.

use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;

use super::admin_keys::AdminKey;
use super::scopes::{Role, Scope, grants};
use super::tokens::ValidToken;
use crate::http::error::{ApiError, ErrorCode};

/// Who may call a route.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Anyone (health, docs, public config).
    Public,
    /// Anyone, under the `login` rate limit per address (challenge, login).
    Login,
    /// Client software: the system API key, `api` rate limit per address.
    Client,
    /// Client software on the session routes: the system API key, the `sessions` limit per
    /// address and the handlers' limit per session.
    Sessions,
    /// Client software on seed 003's `/api/v2`: the system API key travels inside the
    /// encrypted envelope, so the handler checks it, not the gate.
    Envelope,
    /// An admin key holding this scope, or an operator whose role grants it.
    Admin(Scope),
    /// A super_admin operator (emergency controls); no admin key, whatever its scopes.
    SuperAdmin,
    /// Any logged-in operator (`/api/auth/me`, `/api/auth/logout`).
    Operator,
}

impl Access {
    /// Whether the route needs an admin credential (a bearer key or token).
    pub fn is_admin(self) -> bool {
        matches!(
            self,
            Access::Admin(_) | Access::SuperAdmin | Access::Operator
        )
    }

    /// The route table's short description (`admin:licenses:read`, `client`, ...).
    pub fn describe(self) -> String {
        match self {
            Access::Public => "public".into(),
            Access::Login => "login".into(),
            Access::Client => "client".into(),
            Access::Sessions => "client (sessions)".into(),
            Access::Envelope => "client (key in the seed 003 envelope)".into(),
            Access::Admin(s) => format!("admin key with `{s}` or an operator whose role grants it"),
            Access::SuperAdmin => "super_admin operator".into(),
            Access::Operator => "any operator".into(),
        }
    }

    /// Admits or refuses a resolved caller. `system_key_sent` says whether the request
    /// carried the valid system API key (which never reaches an admin route).
    pub fn admit(self, caller: Option<&Caller>, system_key_sent: bool) -> Result<(), ApiError> {
        let Some(caller) = caller else {
            return Err(if system_key_sent {
                ApiError::new(
                    ErrorCode::InsufficientScope,
                    "the system API key reaches the client API only; admin routes need an admin key or an operator token",
                )
            } else {
                ErrorCode::Unauthenticated.into()
            });
        };
        let (allowed, code) = match (self, caller) {
            (Access::Admin(s), Caller::Key(k)) => {
                (grants(&k.scopes, s), ErrorCode::InsufficientScope)
            }
            (Access::Admin(s), Caller::Operator(t)) => (t.role.grants(s), ErrorCode::ForbiddenRole),
            (Access::SuperAdmin, Caller::Key(_)) => (false, ErrorCode::InsufficientScope),
            (Access::SuperAdmin, Caller::Operator(t)) => {
                (t.role == Role::SuperAdmin, ErrorCode::ForbiddenRole)
            }
            (Access::Operator, Caller::Key(_)) => (false, ErrorCode::InsufficientScope),
            (Access::Operator, Caller::Operator(_)) => (true, ErrorCode::ForbiddenRole),
            _ => (true, ErrorCode::ForbiddenRole),
        };
        if allowed {
            Ok(())
        } else {
            let needed = self.describe();
            Err(ApiError::new(code, format!("this route needs: {needed}")))
        }
    }
}

/// An authenticated admin caller, put in the request's extensions for the handler.
#[derive(Clone, Debug)]
pub enum Caller {
    /// An admin API key.
    Key(AdminKey),
    /// A logged-in operator.
    Operator(ValidToken),
}

impl Caller {
    /// Who acted, for logs and the audit trail: `key:<name>` or `operator:<username>`.
    pub fn actor(&self) -> String {
        match self {
            Caller::Key(k) => format!("key:{}", k.name),
            Caller::Operator(t) => format!("operator:{}", t.username),
        }
    }
}

/// The bearer credential of `Authorization: Bearer <credential>`, if one was sent.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, rest) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| rest.trim())
        .filter(|c| !c.is_empty())
}
