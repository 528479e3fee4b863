//! What an admin credential may do: scopes for admin API keys, roles for operators.
//!
//! The scopes are a fixed, documented set (docs/api.md, "Credentials"); every admin route
//! names the one it needs in the route table. An operator's role grants scopes: `admin`
//! every scope but the two that change who may do what (`operators:write`,
//! `security:write`), `super_admin` all of them.

use std::fmt;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// One permission of the admin API.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema,
)]
pub enum Scope {
    /// Read licenses, customers, devices and sessions.
    #[serde(rename = "licenses:read")]
    LicensesRead,
    /// Issue and change licenses.
    #[serde(rename = "licenses:write")]
    LicensesWrite,
    /// Delete licenses.
    #[serde(rename = "licenses:delete")]
    LicensesDelete,
    /// Create and change products and plans, publish releases.
    #[serde(rename = "products:write")]
    ProductsWrite,
    /// Read the event stream.
    #[serde(rename = "events:read")]
    EventsRead,
    /// Read the audit log.
    #[serde(rename = "audit:read")]
    AuditRead,
    /// Manage webhooks.
    #[serde(rename = "webhooks:write")]
    WebhooksWrite,
    /// Read the security settings, feature flags and plugins' status; record hook events.
    #[serde(rename = "security:read")]
    SecurityRead,
    /// Change the security settings and feature flags; reload the plugins.
    #[serde(rename = "security:write")]
    SecurityWrite,
    /// Manage operator accounts and admin keys.
    #[serde(rename = "operators:write")]
    OperatorsWrite,
    /// Every scope, including ones added later.
    #[serde(rename = "*")]
    All,
}

impl Scope {
    /// Every scope, in documentation order.
    pub const ALL: &'static [Scope] = &[
        Scope::LicensesRead,
        Scope::LicensesWrite,
        Scope::LicensesDelete,
        Scope::ProductsWrite,
        Scope::EventsRead,
        Scope::AuditRead,
        Scope::WebhooksWrite,
        Scope::SecurityRead,
        Scope::SecurityWrite,
        Scope::OperatorsWrite,
        Scope::All,
    ];

    /// The scope's name as keys and docs write it (`licenses:read`, `*`).
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::LicensesRead => "licenses:read",
            Scope::LicensesWrite => "licenses:write",
            Scope::LicensesDelete => "licenses:delete",
            Scope::ProductsWrite => "products:write",
            Scope::EventsRead => "events:read",
            Scope::AuditRead => "audit:read",
            Scope::WebhooksWrite => "webhooks:write",
            Scope::SecurityRead => "security:read",
            Scope::SecurityWrite => "security:write",
            Scope::OperatorsWrite => "operators:write",
            Scope::All => "*",
        }
    }

    /// Parses one scope name.
    pub fn parse(name: &str) -> Option<Scope> {
        Scope::ALL
            .iter()
            .copied()
            .find(|s| s.as_str() == name.trim())
    }

    /// Parses a comma-separated list (`licenses:read,licenses:write`); names the bad one.
    pub fn parse_list(list: &str) -> Result<Vec<Scope>, String> {
        let mut out: Vec<Scope> = Vec::new();
        for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            let scope = Scope::parse(name).ok_or_else(|| {
                let known: Vec<&str> = Scope::ALL.iter().map(|s| s.as_str()).collect();
                format!("unknown scope `{name}` (known: {})", known.join(", "))
            })?;
            if !out.contains(&scope) {
                out.push(scope);
            }
        }
        if out.is_empty() {
            return Err("at least one scope is required".into());
        }
        out.sort();
        Ok(out)
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether a set of granted scopes covers `needed`.
pub fn grants(granted: &[Scope], needed: Scope) -> bool {
    granted.iter().any(|s| *s == Scope::All || *s == needed)
}

/// An operator's role.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Day-to-day administration: every scope but operators, security and deleting licenses.
    Admin,
    /// Everything, including operators, security and emergency controls.
    SuperAdmin,
}

impl Role {
    /// The role's name (`admin`, `super_admin`).
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::SuperAdmin => "super_admin",
        }
    }

    /// Parses a role name.
    pub fn parse(name: &str) -> Option<Role> {
        match name.trim() {
            "admin" => Some(Role::Admin),
            "super_admin" => Some(Role::SuperAdmin),
            _ => None,
        }
    }

    /// Whether this role may use `scope`.
    pub fn grants(self, scope: Scope) -> bool {
        match self {
            Role::SuperAdmin => true,
            Role::Admin => !matches!(
                scope,
                Scope::OperatorsWrite | Scope::SecurityWrite | Scope::LicensesDelete | Scope::All
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scope_lists_parse_dedupe_and_name_the_unknown_one() {
        assert_eq!(
            Scope::parse_list("licenses:write, licenses:read,licenses:read"),
            Ok(vec![Scope::LicensesRead, Scope::LicensesWrite])
        );
        let err = Scope::parse_list("licenses:read,licences:write").err();
        assert!(err.is_some_and(|e| e.contains("`licences:write`")));
        assert!(Scope::parse_list(" , ").is_err());
    }

    #[test]
    fn the_star_grants_everything_and_roles_split_as_documented() {
        assert!(grants(&[Scope::All], Scope::OperatorsWrite));
        assert!(!grants(&[Scope::LicensesRead], Scope::LicensesWrite));
        assert!(!Role::Admin.grants(Scope::LicensesDelete));
        assert!(Role::SuperAdmin.grants(Scope::LicensesDelete));
        assert!(!Role::Admin.grants(Scope::SecurityWrite));
        assert!(Role::SuperAdmin.grants(Scope::OperatorsWrite));
    }

    #[test]
    fn names_round_trip_through_serde() {
        for s in Scope::ALL {
            let json = serde_json::to_string(s).unwrap_or_default();
            assert_eq!(json, format!("\"{}\"", s.as_str()));
        }
    }
}
